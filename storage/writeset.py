"""A block's write set as State Storage keeps it: the keys the block wrote, not their values.

Recovery alone reads them: it rolls the State Commitment forward from its last checkpoint to
State Storage's block, and State Storage holds the values of that block already. So each
block's record (``writeset`` column family) names what changed, and recovery merges the
blocks' records, reads the keys' values from State Storage and replays them as one write set
(``WrittenKeys.replayed``). Keeping the values too would store every changed value twice in
State Storage (once flat, once in the record) for nothing: at 100,000 accounts, values were
most of a block's 178 KB record.

Each record also names the block State Storage committed before it and the block's state
root: recovery follows the records back from State Storage's block to the checkpoint, so a
record missing on the way is an error naming it, never a replay short of a block; and it
gives the State Commitment back the roots of blocks whose records it lost (it writes the
blocks between its checkpoints without a write-ahead log).

Encoding: RLP of ``[previous block, state root, wiped addresses, [[address, account written,
[slot, ...]], ...]]``, the previous block 8 bytes big-endian (empty: none), addresses in
order, ``account written`` ``0x01`` or empty, slots as big-endian integers. Code is not
named: the State Commitment has only its hash, in the account's fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rlp
from rlp.codec import encode_raw
from rlp.exceptions import DecodingError

from storage.keys import ACCT, SLOT, StateKey, acct_key, int_bytes, slot_key

WRITTEN = b"\x01"


class WriteSetError(ValueError):
    """Bytes that are not an encoded record of a block's written keys."""


@dataclass(frozen=True)
class WrittenKeys:
    """What one block (or consecutive blocks, merged) wrote: accounts' fields, slots, and the
    accounts whose storage was wiped."""

    accounts: frozenset[bytes]
    slots: frozenset[tuple[bytes, int]]
    wiped: frozenset[bytes]

    def state_keys(self) -> list[StateKey]:
        """The written keys, accounts then slots, each in order."""
        return [acct_key(address) for address in sorted(self.accounts)] + [
            slot_key(address, slot) for address, slot in sorted(self.slots)
        ]

    def replayed(
        self, read: Callable[[Sequence[StateKey]], list[Any]]
    ) -> tuple[dict[StateKey, Any], frozenset[bytes]]:
        """The write set (and wipes) that, applied at once to the state before these blocks,
        leaves the state after them, given ``read``, the values of keys after them (State
        Storage's ``get_many``: ``None`` for an absent account or slot). Wipes go first, so a
        slot written before a wipe and not after it reads as absent and is zeroed again."""
        keys = self.state_keys()
        writes = {
            key: value if key[0] == ACCT else (value or 0)
            for key, value in zip(keys, read(keys), strict=True)
        }
        return writes, self.wiped


@dataclass(frozen=True)
class WriteSetRecord:
    """One block's record: the block committed before it (None: the first), its state root,
    the keys it wrote."""

    previous: int | None
    state_root: bytes
    keys: WrittenKeys


def encode_writeset(
    previous: int | None,
    state_root: bytes,
    writes: Mapping[StateKey, Any],
    wiped: Iterable[bytes],
) -> bytes:
    before = b"" if previous is None else previous.to_bytes(8, "big")
    return encode_raw([before, state_root, *_written_keys(writes, wiped)])


def decode_writeset(data: bytes) -> WriteSetRecord:
    try:
        previous, state_root, wiped, items = rlp.decode(data)
    except (DecodingError, ValueError, TypeError) as err:
        raise WriteSetError(f"not a write set record: {err}") from err
    if not (
        isinstance(previous, bytes)
        and len(previous) in (0, 8)
        and isinstance(state_root, bytes)
        and len(state_root) == 32
        and isinstance(wiped, list)
        and isinstance(items, list)
    ):
        raise WriteSetError(
            "not a write set record: its previous block (8 bytes or empty), state root (32 "
            "bytes), wiped addresses and written keys (lists) are not as encoded"
        )
    number = int.from_bytes(previous, "big") if previous else None
    return WriteSetRecord(number, state_root, _decode_keys(wiped, items))


def _written_keys(writes: Mapping[StateKey, Any], wiped: Iterable[bytes]) -> list[Any]:
    accounts: set[bytes] = set()
    slots: dict[bytes, list[int]] = {}
    for key in writes:  # (a block writes thousands of keys: no per-key allocation but these)
        if key[0] == SLOT:
            if key[1] in slots:
                slots[key[1]].append(key[2])
            else:
                slots[key[1]] = [key[2]]
        elif key[0] == ACCT:
            accounts.add(key[1])
    items = [
        [
            address,
            WRITTEN if address in accounts else b"",
            [int_bytes(slot) for slot in sorted(slots[address])] if address in slots else [],
        ]
        for address in sorted(accounts | slots.keys())
    ]
    return [sorted(set(wiped)), items]


def _decode_keys(wiped: Any, items: Any) -> WrittenKeys:
    try:
        accounts, slots = set(), set()
        for address, account, block_slots in items:
            if account not in (WRITTEN, b""):
                raise WriteSetError(f"account flag {account!r}, expected 0x01 or empty")
            if account:
                accounts.add(address)
            slots.update((address, int.from_bytes(slot, "big")) for slot in block_slots)
        return WrittenKeys(frozenset(accounts), frozenset(slots), frozenset(wiped))
    except (DecodingError, ValueError, TypeError) as err:
        raise WriteSetError(f"not a write set record: {err}") from err


def merge_written_keys(blocks: Iterable[WrittenKeys]) -> WrittenKeys:
    """Consecutive blocks' written keys as one (``replayed`` orders wipes before writes)."""
    accounts: set[bytes] = set()
    slots: set[tuple[bytes, int]] = set()
    wiped: set[bytes] = set()
    for block in blocks:
        accounts |= block.accounts
        slots |= block.slots
        wiped |= block.wiped
    return WrittenKeys(frozenset(accounts), frozenset(slots), frozenset(wiped))
