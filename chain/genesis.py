"""Genesis: the chain's block 0 and its pre-state, read from a geth ``genesis.json``.

Read once, when a node first starts on an empty store: the ``alloc`` seeds the state, whose
root (computed by the storage layer) goes into ``genesis_header``; that header's hash is the
parent of block 1 and the chain's identity.

Parsing follows geth's JSON rules: quantities are JSON integers or strings, hex with ``0x`` or
decimal (``"0x10"``, ``"16"``); byte strings are ``0x`` hex; ``alloc`` keys may omit the
``0x``; storage keys and values are hex of at most 32 bytes, left-padded. ``config``,
``gasLimit``, ``difficulty`` and ``alloc`` are required, as in geth; unknown keys are ignored.
A malformed value raises ``GenesisError`` naming its path (``alloc.0xabc….balance``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

from eth.abc import BlockHeaderAPI
from eth.constants import BLANK_ROOT_HASH, EMPTY_UNCLE_HASH, ZERO_HASH32
from eth.vm.forks.london.constants import INITIAL_BASE_FEE

from chain.spec import ChainSpec, ChainSpecError

ZERO_ADDRESS = b"\x00" * 20
GENESIS_GAS_LIMIT_DEFAULT = 5000
"""geth's ``params.GenesisGasLimit``: the gas limit of a genesis that states 0."""

_UINT64 = 2**64 - 1
_UINT256 = 2**256 - 1
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class GenesisError(ValueError):
    """A malformed genesis; the message starts with the offending field's path."""


@dataclass(frozen=True)
class GenesisAccount:
    """One ``alloc`` entry: an account's state at block 0 (storage slot -> value)."""

    balance: int
    nonce: int = 0
    code: bytes = b""
    storage: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Genesis:
    """A chain's genesis: its spec, pre-state and the fields of block 0's header.

    ``base_fee_per_gas`` is what the file states (``None`` if absent); ``header_base_fee`` is
    what block 0 carries. ``nonce`` is the header's 8 bytes.
    """

    spec: ChainSpec
    alloc: Mapping[bytes, GenesisAccount]
    gas_limit: int
    difficulty: int = 0
    timestamp: int = 0
    extra_data: bytes = b""
    coinbase: bytes = ZERO_ADDRESS
    mix_hash: bytes = ZERO_HASH32
    nonce: bytes = b"\x00" * 8
    base_fee_per_gas: int | None = None
    excess_blob_gas: int | None = None
    blob_gas_used: int | None = None

    def __post_init__(self) -> None:
        for name, size in (("coinbase", 20), ("mix_hash", 32), ("nonce", 8)):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != size:
                raise GenesisError(f"{name}: expected {size} bytes, got {value!r}")
        for address in self.alloc:
            if not isinstance(address, bytes) or len(address) != 20:
                raise GenesisError(f"alloc: key {address!r} is not a 20-byte address")

    @property
    def header_base_fee(self) -> int | None:
        """Block 0's base fee: the stated one, or 1 gwei, if London is active at block 0."""
        if not _reached(self.spec.london_block, 0):
            return None
        return INITIAL_BASE_FEE if self.base_fee_per_gas is None else self.base_fee_per_gas

    def to_geth_json(self) -> dict[str, Any]:
        """The geth ``genesis.json`` object (as geth writes it: hex quantities, ``alloc``
        keys without ``0x``); ``parse_genesis`` reads it back to an equal ``Genesis``."""
        out: dict[str, Any] = {
            "config": self.spec.to_geth_config(),
            "nonce": hex(int.from_bytes(self.nonce, "big")),
            "timestamp": hex(self.timestamp),
            "extraData": "0x" + self.extra_data.hex(),
            "gasLimit": hex(self.gas_limit),
            "difficulty": hex(self.difficulty),
            "mixHash": "0x" + self.mix_hash.hex(),
            "coinbase": "0x" + self.coinbase.hex(),
            "alloc": {address.hex(): _account_json(acct) for address, acct in self.alloc.items()},
            "number": "0x0",
            "gasUsed": "0x0",
            "parentHash": "0x" + ZERO_HASH32.hex(),
        }
        for key, value in (
            ("baseFeePerGas", self.base_fee_per_gas),
            ("excessBlobGas", self.excess_blob_gas),
            ("blobGasUsed", self.blob_gas_used),
        ):
            if value is not None:
                out[key] = hex(value)
        return out


def _account_json(account: GenesisAccount) -> dict[str, Any]:
    out: dict[str, Any] = {"balance": hex(account.balance)}
    if account.nonce:
        out["nonce"] = hex(account.nonce)
    if account.code:
        out["code"] = "0x" + account.code.hex()
    if account.storage:
        out["storage"] = {
            "0x" + slot.to_bytes(32, "big").hex(): "0x" + value.to_bytes(32, "big").hex()
            for slot, value in account.storage.items()
        }
    return out


def parse_genesis(data: Mapping[str, Any]) -> Genesis:
    """The ``Genesis`` of a decoded geth ``genesis.json`` object."""
    if not isinstance(data, Mapping):
        raise GenesisError(f"genesis: expected an object, got {type(data).__name__}")
    for key in ("config", "gasLimit", "difficulty", "alloc"):
        if data.get(key) is None:
            raise GenesisError(f"{key}: missing required field")
    try:
        spec = ChainSpec.from_geth_config(data["config"])
    except ChainSpecError as err:
        raise GenesisError(str(err)) from err
    for key in ("number", "gasUsed"):
        if data.get(key) is not None and _quantity(key, data[key], _UINT64) != 0:
            raise GenesisError(f"{key}: a genesis block has {key} 0")
    if data.get("parentHash") is not None and _hex_bytes(
        "parentHash", data["parentHash"], 32
    ) != bytes(32):
        raise GenesisError("parentHash: a genesis block has a zero parent hash")

    def optional(key: str, bits: int) -> int | None:
        value = data.get(key)
        return None if value is None else _quantity(key, value, bits)

    def present(key: str) -> bool:
        return data.get(key) is not None

    return Genesis(
        spec=spec,
        alloc=_parse_alloc(data["alloc"]),
        gas_limit=_quantity("gasLimit", data["gasLimit"], _UINT64),
        difficulty=_quantity("difficulty", data["difficulty"], _UINT256),
        timestamp=optional("timestamp", _UINT64) or 0,
        extra_data=_hex_bytes("extraData", data["extraData"]) if present("extraData") else b"",
        coinbase=_hex_bytes("coinbase", data["coinbase"], 20)
        if present("coinbase")
        else ZERO_ADDRESS,
        mix_hash=_hex_bytes("mixHash", data["mixHash"], 32) if present("mixHash") else ZERO_HASH32,
        nonce=(optional("nonce", _UINT64) or 0).to_bytes(8, "big"),
        base_fee_per_gas=optional("baseFeePerGas", _UINT256),
        excess_blob_gas=optional("excessBlobGas", _UINT64),
        blob_gas_used=optional("blobGasUsed", _UINT64),
    )


def load_genesis(path: str | PathLike[str]) -> Genesis:
    """The ``Genesis`` of a geth ``genesis.json`` file."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except json.JSONDecodeError as err:
        raise GenesisError(f"genesis: {path} is not JSON: {err}") from err
    return parse_genesis(data)


def _parse_alloc(alloc: object) -> dict[bytes, GenesisAccount]:
    if not isinstance(alloc, Mapping):
        raise GenesisError(f"alloc: expected an object, got {type(alloc).__name__}")
    accounts: dict[bytes, GenesisAccount] = {}
    for key, entry in alloc.items():
        path = f"alloc.{key}"
        address = _address_key(path, key)
        if address in accounts:
            raise GenesisError(f"{path}: address given twice")
        if not isinstance(entry, Mapping):
            raise GenesisError(f"{path}: expected an object, got {type(entry).__name__}")
        if entry.get("balance") is None:
            raise GenesisError(f"{path}.balance: missing required field")
        storage_json = entry.get("storage") or {}
        if not isinstance(storage_json, Mapping):
            raise GenesisError(f"{path}.storage: expected an object")
        storage: dict[int, int] = {}
        for slot_text, value_text in storage_json.items():
            slot = _storage_word(f"{path}.storage", slot_text)
            storage[slot] = _storage_word(f"{path}.storage.{slot_text}", value_text)
        code = entry.get("code")
        nonce = entry.get("nonce")
        accounts[address] = GenesisAccount(
            balance=_quantity(f"{path}.balance", entry["balance"], _UINT256),
            nonce=0 if nonce is None else _quantity(f"{path}.nonce", nonce, _UINT64),
            code=b"" if code is None else _hex_bytes(f"{path}.code", code),
            storage=storage,
        )
    return accounts


def _quantity(path: str, value: object, limit: int) -> int:
    """A JSON integer or a hex (``0x``) or decimal string, in ``[0, limit]``."""
    if isinstance(value, bool):
        raise GenesisError(f"{path}: expected a quantity, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value
        if text[:2] in ("0x", "0X"):
            digits, base, valid = text[2:], 16, _HEX_DIGITS
        else:
            digits, base, valid = text, 10, frozenset("0123456789")
        if not digits or any(c not in valid for c in digits):
            raise GenesisError(f"{path}: {value!r} is not a hex or decimal quantity")
        number = int(digits, base)
    else:
        raise GenesisError(f"{path}: expected a quantity, got {value!r}")
    if not 0 <= number <= limit:
        raise GenesisError(f"{path}: {value!r} is out of range")
    return number


def _hex_bytes(path: str, value: object, length: int | None = None) -> bytes:
    """``0x``-prefixed hex bytes, of exactly ``length`` bytes when given."""
    if not isinstance(value, str) or value[:2] not in ("0x", "0X"):
        raise GenesisError(f"{path}: expected 0x-prefixed hex, got {value!r}")
    raw = _strict_hex(path, value, value[2:])
    if length is not None and len(raw) != length:
        raise GenesisError(f"{path}: expected {length} bytes, got {len(raw)}")
    return raw


def _address_key(path: str, key: object) -> bytes:
    """An ``alloc`` key: 20 bytes of hex, with or without ``0x``."""
    if not isinstance(key, str):
        raise GenesisError(f"{path}: address key must be a string")
    text = key[2:] if key[:2] in ("0x", "0X") else key
    if len(text) != 40:
        raise GenesisError(f"{path}: address must be 20 bytes of hex")
    return _strict_hex(path, key, text)


def _storage_word(path: str, text: object) -> int:
    """A storage key or value: hex (``0x`` optional) of at most 32 bytes, left-padded."""
    if not isinstance(text, str):
        raise GenesisError(f"{path}: expected a hex string, got {text!r}")
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    if len(digits) > 64:
        raise GenesisError(f"{path}: {text!r} is longer than 32 bytes")
    return int.from_bytes(_strict_hex(path, text, digits), "big")


def _strict_hex(path: str, value: str, digits: str) -> bytes:
    """``digits`` as bytes: an even number of hex digits and nothing else."""
    if any(c not in _HEX_DIGITS for c in digits):
        raise GenesisError(f"{path}: {value!r} is not valid hex")
    if len(digits) % 2:
        raise GenesisError(f"{path}: {value!r} has an odd number of hex digits")
    return bytes.fromhex(digits)


def genesis_header(genesis: Genesis, state_root: bytes) -> BlockHeaderAPI:
    """Block 0's header, in the header class of the fork active at block 0 (and the genesis
    timestamp), over the alloc's ``state_root``; its ``hash`` is the genesis hash.

    As geth's ``Genesis.ToBlock``: London and later carry the base fee, Shanghai and later an
    empty withdrawals root, Cancun and later blob gas fields (0 unless stated) and a zero
    parent beacon root, Prague and later the empty requests hash (py-evm's default).
    """
    if len(state_root) != 32:
        raise ValueError(f"state root is {len(state_root)} bytes, not 32")
    vm_class = genesis.spec.vm_class_at(0, genesis.timestamp)
    block_class = vm_class.get_block_class()
    header_class = block_class._meta.sedes[block_class._meta.field_names.index("header")]
    params: dict[str, Any] = {
        "parent_hash": ZERO_HASH32,
        "uncles_hash": EMPTY_UNCLE_HASH,
        "coinbase": genesis.coinbase,
        "state_root": state_root,
        "transaction_root": BLANK_ROOT_HASH,
        "receipt_root": BLANK_ROOT_HASH,
        "bloom": 0,
        "difficulty": genesis.difficulty,
        "block_number": 0,
        "gas_limit": genesis.gas_limit or GENESIS_GAS_LIMIT_DEFAULT,
        "gas_used": 0,
        "timestamp": genesis.timestamp,
        "extra_data": genesis.extra_data,
        "mix_hash": genesis.mix_hash,
        "nonce": genesis.nonce,
        "base_fee_per_gas": genesis.header_base_fee,
        "withdrawals_root": BLANK_ROOT_HASH,
        "blob_gas_used": genesis.blob_gas_used or 0,
        "excess_blob_gas": genesis.excess_blob_gas or 0,
        "parent_beacon_block_root": ZERO_HASH32,
    }
    names = set(header_class._meta.field_names)
    return header_class(**{name: value for name, value in params.items() if name in names})


def _reached(fork: int | None, at: int) -> bool:
    return fork is not None and at >= fork
