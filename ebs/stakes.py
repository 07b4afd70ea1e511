"""The stake ledger: what the registry holds for whom, and when it gives it back.

A subscription's stake is the value of its subscribe transaction, a plain transfer to the
registry address (``ebs/subscription.py``). The ledger is the registry's books, kept as a
pure function of the chain (each block's registry transactions, whether each succeeded, and
the accounts before the block), so the producer and the verifier replica, each keeping its own,
agree on it:

- a subscribe the registry accepts makes its stake *held* (``StakeEntry.due`` false);
- a cancel by the subscriber of a held subscription makes the stake *due*;
- any other ether a registry transaction sent (a refused subscribe's value, a cancel's value)
  is due back to its sender at once: the registry holds nothing but live stakes.

Whatever is due after block N is paid at the start of block N + 1, as system transfers from the
registry to each owner (``chain.SystemTransfer``: applied before the first transaction on the
parallel path and on the oracle alike, ``compute_unit/system_ops.py``,
``compute_unit/sequential.py``), so the owner can spend it in that block. ``due`` lists them
in key order, the same before and after a restart. A block's changes (``Settlement``) are
computed before its block is stored and written in the same batch (``storage/chaindata.py``
``registry``), so a restart resumes from the ledger as of its head.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import rlp
from eth.abc import SignedTransactionAPI
from rlp.codec import encode_raw

from chain import SystemTransfer
from ebs.subscription import (
    REGISTRY,
    Cancel,
    Subscribe,
    SubscriptionError,
    is_registry_call,
    parse,
)
from storage.keys import StateReader, int_bytes


class LedgerError(ValueError):
    """A stored ledger record that does not decode."""


@dataclass(frozen=True)
class StakeEntry:
    """Ether the registry holds for ``owner``: a subscription's stake, or a refund."""

    owner: bytes
    amount: int
    due: bool  # paid back at the start of the next block
    contracts: tuple[bytes, ...] = ()  # a held subscription's
    requested: int = 0  # the block that included its transaction

    def encode(self) -> bytes:
        return encode_raw(
            [
                self.owner,
                int_bytes(self.amount),
                b"\x01" if self.due else b"",
                list(self.contracts),
                int_bytes(self.requested),
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> StakeEntry:
        try:
            owner, amount, due, contracts, requested = rlp.decode(data)
            if len(owner) != 20 or not all(len(c) == 20 for c in contracts):
                raise ValueError("an address is 20 bytes")
            if due not in (b"", b"\x01"):
                raise ValueError(f"the due flag is 0x{due.hex()}")
            return cls(
                owner,
                int.from_bytes(amount, "big"),
                due == b"\x01",
                tuple(contracts),
                int.from_bytes(requested, "big"),
            )
        except (rlp.DecodingError, ValueError, TypeError) as err:
            raise LedgerError(f"a stake record does not decode: {err}") from err


@dataclass
class Settlement:
    """What one block's registry transactions did to the ledger."""

    number: int
    subscribed: list[Subscribe] = field(default_factory=list)
    cancelled: list[Cancel] = field(default_factory=list)
    refused: list[tuple[bytes, str]] = field(default_factory=list)  # tx hash, reason
    changes: dict[bytes, StakeEntry | None] = field(default_factory=dict)  # None: removed

    def records(self) -> dict[bytes, bytes | None]:
        """The changes as the chain data stores them."""
        return {
            key: None if entry is None else entry.encode() for key, entry in self.changes.items()
        }


class StakeLedger:
    """The registry's books: held stakes by subscription id, refunds due by tx hash."""

    def __init__(self, entries: Mapping[bytes, StakeEntry] | None = None) -> None:
        self.entries: dict[bytes, StakeEntry] = dict(entries or {})

    @classmethod
    def load(cls, records: Mapping[bytes, bytes]) -> StakeLedger:
        """The ledger from its stored records (``ChainData.registry_records``)."""
        entries = {}
        for key, value in records.items():
            try:
                entry = StakeEntry.decode(value)
            except LedgerError as err:
                raise LedgerError(f"registry/{key.hex()}: {err}") from err
            # a stake is kept under its subscription's id, a refund of other ether under its
            # transaction's hash (only ever due)
            if len(key) not in (8, 32) or (len(key) == 32 and not entry.due):
                raise LedgerError(f"registry/{key.hex()}: not a subscription id or a refund")
            entries[key] = entry
        return cls(entries)

    def held(self) -> dict[str, StakeEntry]:
        """Live subscriptions' stakes, by subscription id."""
        return {key.hex(): e for key, e in sorted(self.entries.items()) if not e.due}

    def due(self) -> tuple[SystemTransfer, ...]:
        """The transfers the next block starts with, in key order."""
        return tuple(
            SystemTransfer(REGISTRY, entry.owner, entry.amount)
            for _, entry in sorted(self.entries.items())
            if entry.due
        )

    def settle(
        self,
        number: int,
        txs: Sequence[SignedTransactionAPI],
        succeeded: Iterable[bool],
        accounts: StateReader,
    ) -> Settlement:
        """Block ``number``'s effect, its transactions taken in order (``accounts``: before
        the block); this ledger is unchanged until ``commit``."""
        settlement = Settlement(number)
        # what was due is paid at this block's start
        view = {key: entry for key, entry in self.entries.items() if not entry.due}
        settlement.changes = {key: None for key, entry in self.entries.items() if entry.due}

        def put(key: bytes, entry: StakeEntry) -> None:
            view[key] = entry
            settlement.changes[key] = entry

        for tx, ok in zip(txs, succeeded, strict=True):
            if not is_registry_call(tx) or not ok:
                continue  # a failed transaction sent the registry nothing
            try:
                request = parse(tx, accounts)
            except SubscriptionError as err:
                settlement.refused.append((tx.hash, str(err)))
                request = None
            returned = tx.value
            if isinstance(request, Subscribe):
                key = bytes.fromhex(request.id)
                if key not in view:
                    put(
                        key,
                        StakeEntry(
                            request.subscriber, request.stake, False, request.contracts, number
                        ),
                    )
                    settlement.subscribed.append(request)
                    returned = 0
                else:
                    settlement.refused.append((tx.hash, f"subscription {request.id} exists"))
            elif isinstance(request, Cancel):
                key = bytes.fromhex(request.id)
                held = view.get(key)
                if held is not None and not held.due and held.owner == request.subscriber:
                    put(key, StakeEntry(held.owner, held.amount, True, (), held.requested))
                    settlement.cancelled.append(request)
                else:
                    reason = f"no subscription {request.id} of 0x{request.subscriber.hex()}"
                    settlement.refused.append((tx.hash, f"cancel refused: {reason}"))
            if returned:
                put(tx.hash, StakeEntry(tx.sender, returned, True, (), number))
        return settlement

    def commit(self, settlement: Settlement) -> None:
        """Apply a settlement (once its block is stored)."""
        for key, entry in settlement.changes.items():
            if entry is None:
                self.entries.pop(key, None)
            else:
                self.entries[key] = entry
