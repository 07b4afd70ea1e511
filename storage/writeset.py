"""A block's write set as bytes: what State Storage keeps per block (``writeset`` column
family) and what recovery replays into the State Commitment after a crash.

Encoding: RLP of ``[wiped addresses, [[kind, address-or-hash, slot, value], ...]]`` with kind
``a`` (account: RLP of nonce, balance, code hash; empty for a deleted account), ``s`` (slot,
value as a big-endian integer) or ``c`` (code by hash).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import rlp
from rlp.codec import encode_raw
from rlp.exceptions import DecodingError

from storage.keys import ACCT, CODE, SLOT, AccountFields, StateKey, int_bytes


class WriteSetError(ValueError):
    """Bytes that are not an encoded write set."""


@dataclass(frozen=True)
class WriteSet:
    writes: dict[StateKey, Any]
    wiped: frozenset[bytes]


def encode_writeset(writes: Mapping[StateKey, Any], wiped: Iterable[bytes]) -> bytes:
    items = []
    for key, value in writes.items():
        if key[0] == ACCT:
            body = (
                b""
                if value is None
                else encode_raw([int_bytes(value.nonce), int_bytes(value.balance), value.code_hash])
            )
            items.append([b"a", key[1], b"", body])
        elif key[0] == SLOT:
            items.append([b"s", key[1], int_bytes(key[2]), int_bytes(value or 0)])
        else:
            items.append([b"c", key[1], b"", value])
    return encode_raw([sorted(wiped), items])


def decode_writeset(data: bytes) -> WriteSet:
    try:
        wiped, items = rlp.decode(data)
        writes: dict[StateKey, Any] = {}
        for kind, ident, slot, value in items:
            if kind == b"a":
                if value:
                    nonce, balance, code_hash = rlp.decode(value)
                    account = AccountFields(_int(nonce), _int(balance), code_hash)
                else:
                    account = None
                writes[(ACCT, ident)] = account
            elif kind == b"s":
                writes[(SLOT, ident, _int(slot))] = _int(value)
            elif kind == b"c":
                writes[(CODE, ident)] = value
            else:
                raise WriteSetError(f"unknown entry kind {kind!r}")
        return WriteSet(writes, frozenset(wiped))
    except (DecodingError, ValueError, TypeError) as err:
        raise WriteSetError(f"not a write set: {err}") from err


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")


def merge_writesets(blocks: Iterable[WriteSet]) -> WriteSet:
    """Consecutive blocks' write sets as one: applied at once (wipes first, then the writes)
    it leaves the state the blocks leave in turn. A wipe drops the slot writes before it."""
    writes: dict[StateKey, Any] = {}
    wiped: set[bytes] = set()
    for block in blocks:
        if block.wiped:
            wiped |= block.wiped
            for key in [k for k in writes if k[0] == SLOT and k[1] in block.wiped]:
                del writes[key]
        writes.update(block.writes)
    return WriteSet(writes, frozenset(wiped))
