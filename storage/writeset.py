"""A block's write set as State Storage keeps it: the keys the block wrote, not their values.

Recovery alone reads them: it rolls the State Commitment forward from its last checkpoint to
State Storage's block, and State Storage holds the values of that block already. So each
block's record (``writeset`` column family) names what changed, and recovery merges the
blocks' records, reads the keys' values from State Storage and replays them as one write set
(``WrittenKeys.replayed``). Keeping the values too would store every changed value twice in
State Storage (once flat, once in the record) for nothing: at 100,000 accounts, values were
most of a block's 178 KB record.

Encoding: RLP of ``[wiped addresses, [[address, account written, [slot, ...]], ...]]``,
addresses in order, ``account written`` ``0x01`` or empty, slots as big-endian integers.
Code is not named: the State Commitment has only its hash, in the account's fields.
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


def encode_written_keys(writes: Mapping[StateKey, Any], wiped: Iterable[bytes]) -> bytes:
    by_address: dict[bytes, tuple[list[bool], list[int]]] = {}
    for key in writes:
        if key[0] == ACCT:
            by_address.setdefault(key[1], ([False], []))[0][0] = True
        elif key[0] == SLOT:
            by_address.setdefault(key[1], ([False], []))[1].append(key[2])
    items = [
        [address, WRITTEN if account[0] else b"", [int_bytes(slot) for slot in sorted(slots)]]
        for address, (account, slots) in sorted(by_address.items())
    ]
    return encode_raw([sorted(set(wiped)), items])


def decode_written_keys(data: bytes) -> WrittenKeys:
    try:
        wiped, items = rlp.decode(data)
        accounts, slots = set(), set()
        for address, account, block_slots in items:
            if account not in (WRITTEN, b""):
                raise WriteSetError(f"account flag {account!r}, expected 0x01 or empty")
            if account:
                accounts.add(address)
            slots.update((address, int.from_bytes(slot, "big")) for slot in block_slots)
        return WrittenKeys(frozenset(accounts), frozenset(slots), frozenset(wiped))
    except (DecodingError, ValueError, TypeError) as err:
        raise WriteSetError(f"not a record of written keys: {err}") from err


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
