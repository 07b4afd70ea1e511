"""State keys: the one flat key space every layer speaks (R/W sets, hints, preload, write sets).

``('acct', address)`` holds an account's nonce, balance and code hash, ``('code', code_hash)``
its bytecode, ``('slot', address, slot)`` one storage word. Values are ``AccountFields`` (or
``None`` for an account that does not exist), ``bytes`` and ``int`` respectively.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import rlp
from eth.constants import EMPTY_SHA3
from eth_hash.auto import keccak
from rlp.codec import encode_raw

ACCT = "acct"
CODE = "code"
SLOT = "slot"

AcctKey = tuple[str, bytes]
CodeKey = tuple[str, bytes]
SlotKey = tuple[str, bytes, int]
StateKey = AcctKey | CodeKey | SlotKey


class AccountFields(NamedTuple):
    """An account's fields other than storage (the storage root is derived at commit)."""

    nonce: int = 0
    balance: int = 0
    code_hash: bytes = EMPTY_SHA3

    @property
    def is_empty(self) -> bool:
        """EIP-161 emptiness: no nonce, no balance, no code."""
        return self.nonce == 0 and self.balance == 0 and self.code_hash == EMPTY_SHA3


EMPTY_ACCOUNT = AccountFields()


def acct_key(address: bytes) -> AcctKey:
    return (ACCT, address)


def code_key(code_hash: bytes) -> CodeKey:
    return (CODE, code_hash)


def slot_key(address: bytes, slot: int) -> SlotKey:
    return (SLOT, address, slot)


def describe(key: StateKey) -> str:
    """Human-readable form of a key, for error messages and reports."""
    if key[0] == SLOT:
        return f"slot(0x{key[1].hex()}, {key[2]:#x})"
    return f"{key[0]}(0x{key[1].hex()})"


class AccountRecord(NamedTuple):
    """An account as the account trie's leaf and State Storage's record hold it."""

    nonce: int
    balance: int
    storage_root: bytes
    code_hash: bytes


def encode_account(nonce: int, balance: int, storage_root: bytes, code_hash: bytes) -> bytes:
    """RLP(nonce, balance, storage root, code hash), as py-evm's ``Account`` encodes it."""
    return encode_raw([int_bytes(nonce), int_bytes(balance), storage_root, code_hash])


def decode_account(data: bytes) -> AccountRecord:
    nonce, balance, storage_root, code_hash = rlp.decode(data)
    if len(storage_root) != 32 or len(code_hash) != 32:
        raise ValueError("an account's storage root and code hash are 32 bytes")
    return AccountRecord(
        int.from_bytes(nonce, "big"), int.from_bytes(balance, "big"), storage_root, code_hash
    )


def int_bytes(value: int) -> bytes:
    """Minimal big-endian bytes, as RLP encodes an integer (0 is empty)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def list_prefix(length: int) -> bytes:
    """The RLP header of a list whose items take ``length`` bytes (for lists encoded by
    hand from items already encoded)."""
    if length < 56:
        return bytes([0xC0 + length])
    size = int_bytes(length)
    return bytes([0xF7 + len(size)]) + size


def genesis_state(alloc: Mapping[bytes, Any]) -> list[tuple[StateKey, Any]]:
    """A genesis ``alloc`` (address -> ``chain.GenesisAccount``) as state key/value pairs:
    each account's fields, its code by hash, its non-zero storage words."""
    items: list[tuple[StateKey, Any]] = []
    for address, account in alloc.items():
        code_hash = keccak(account.code) if account.code else EMPTY_SHA3
        items.append((acct_key(address), AccountFields(account.nonce, account.balance, code_hash)))
        if account.code:
            items.append((code_key(code_hash), bytes(account.code)))
        items.extend(
            (slot_key(address, slot), value) for slot, value in account.storage.items() if value
        )
    return items


class StateReader(Protocol):
    """Read side of a state: raw stored values (``None`` when absent) by state key."""

    def get(self, key: StateKey) -> Any: ...


class StoredState(Protocol):
    """What the State Commitment reads of State Storage, as of the last committed block: the
    account records its account trie's leaves keep only the hashes of, and the slots of the
    storage tries it does not page."""

    def stored_slots(
        self, addresses: Iterable[bytes]
    ) -> Mapping[bytes, Iterable[tuple[bytes, bytes]]]:
        """The non-zero storage slots of many accounts at once (a block's small storage
        tries), as stored: (32-byte slot, value big-endian without leading zeros)."""
        ...

    def record_by_hash(self, hashed_address: bytes) -> bytes | None:
        """The account record (the account trie's leaf value) of keccak(address)."""
        ...

    def records_by_hash(self, hashed_addresses: Sequence[bytes]) -> list[bytes | None]:
        """``record_by_hash`` of many accounts at once (a block's changed leaves)."""
        ...


@dataclass
class StateDump:
    """Accounts, code and storage of a state, for loading into another store."""

    accounts: dict[bytes, AccountFields] = field(default_factory=dict)
    code: dict[bytes, bytes] = field(default_factory=dict)
    storage: dict[bytes, dict[int, int]] = field(default_factory=dict)

    @classmethod
    def from_items(cls, items: Iterable[tuple[StateKey, Any]]) -> StateDump:
        dump = cls()
        for key, value in items:
            if value is None:
                continue
            if key[0] == ACCT:
                dump.accounts[key[1]] = value
            elif key[0] == CODE:
                dump.code[key[1]] = value
            elif value:
                dump.storage.setdefault(key[1], {})[key[2]] = value
        return dump
