"""JSON-RPC value codecs, as geth's ``hexutil`` and ``rpc`` types decode and encode them.

Decoders take the raw JSON value and return Python values (ints, bytes, block refs); a value
that is not well formed raises ``HexError`` with geth's message (the dispatcher turns it into
a -32602 "invalid argument N: ..." error). Encoders turn ints and bytes into JSON-RPC text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coordinator.node_api import BlockRef

TAGS = ("latest", "pending", "earliest", "safe", "finalized")
MAX_UINT64 = (1 << 64) - 1
MAX_INT64 = (1 << 63) - 1
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class HexError(ValueError):
    """A JSON-RPC value that does not decode; ``str()`` is geth's message."""


@dataclass(frozen=True)
class BlockHashRef:
    """An EIP-1898 ``{"blockHash": ..., "requireCanonical": ...}`` reference."""

    hash: bytes
    require_canonical: bool = False


# --- decoders ------------------------------------------------------------------------------


def _strip_prefix(value: Any, kind: str) -> str:
    if not isinstance(value, str):
        raise HexError(f"json: cannot unmarshal non-string into Go value of type {kind}")
    if value == "":
        raise HexError("empty hex string")
    if not value.startswith(("0x", "0X")):
        raise HexError("hex string without 0x prefix")
    return value[2:]


def _quantity(value: Any, bits: int, kind: str) -> int:
    digits = _strip_prefix(value, kind)
    if digits == "":
        raise HexError('hex string "0x"')
    if not set(digits) <= HEX_DIGITS:
        raise HexError("invalid hex string")
    if len(digits) > 1 and digits[0] == "0":
        raise HexError("hex number with leading zero digits")
    number = int(digits, 16)
    if number >> bits:
        raise HexError(f"hex number > {bits} bits")
    return number


def quantity(value: Any) -> int:
    """A 64-bit quantity (``hexutil.Uint64``): ``0x0``, ``0x1f``; no leading zeros."""
    return _quantity(value, 64, "hexutil.Uint64")


def big(value: Any) -> int:
    """A 256-bit quantity (``hexutil.Big``)."""
    return _quantity(value, 256, "hexutil.Big")


def data(value: Any) -> bytes:
    """``0x``-prefixed, even-length hex (``hexutil.Bytes``); ``0x`` is empty."""
    digits = _strip_prefix(value, "hexutil.Bytes")
    if len(digits) % 2:
        raise HexError("hex string of odd length")
    if not set(digits) <= HEX_DIGITS:
        raise HexError("invalid hex string")
    return bytes.fromhex(digits)


def _fixed(value: Any, size: int, kind: str) -> bytes:
    digits = _strip_prefix(value, kind)
    if len(digits) != 2 * size:
        raise HexError(f"hex string has length {len(digits)}, want {2 * size} for {kind}")
    if not set(digits) <= HEX_DIGITS:
        raise HexError("invalid hex string")
    return bytes.fromhex(digits)


def address(value: Any) -> bytes:
    """A 20-byte address, in any case (the checksum is not enforced)."""
    return _fixed(value, 20, "common.Address")


def hash32(value: Any) -> bytes:
    """A 32-byte hash."""
    return _fixed(value, 32, "common.Hash")


def storage_slot(value: Any) -> int:
    """A storage key as geth's ``decodeHash``: up to 32 bytes of hex, leading zeros and odd
    lengths allowed."""
    if not isinstance(value, str):
        raise HexError("json: cannot unmarshal non-string into Go value of type string")
    digits = value[2:] if value.startswith(("0x", "0X")) else value
    if len(digits) % 2:
        digits = "0" + digits
    if not set(digits) <= HEX_DIGITS:
        raise HexError(f"hex string invalid: {value!r}")
    if len(digits) > 64:
        raise HexError(f"hex string too long, want at most 32 bytes: {value!r}")
    return int(digits, 16) if digits else 0


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise HexError("json: cannot unmarshal non-bool into Go value of type bool")
    return value


def block_number(value: Any) -> BlockRef:
    """``rpc.BlockNumber``: a tag or a quantity up to int64."""
    if isinstance(value, str) and value in TAGS:
        return value  # type: ignore[return-value]
    number = quantity(value)
    if number > MAX_INT64:
        raise HexError("block number larger than int64")
    return number


def block_ref(value: Any) -> BlockRef | BlockHashRef:
    """``rpc.BlockNumberOrHash``: a tag, a quantity, a 32-byte hash, or an EIP-1898 object."""
    if isinstance(value, dict):
        has_number, has_hash = "blockNumber" in value, "blockHash" in value
        if has_number and has_hash:
            raise HexError("cannot specify both BlockHash and BlockNumber, choose one or the other")
        if has_hash:
            canonical = value.get("requireCanonical", False)
            return BlockHashRef(hash32(value["blockHash"]), boolean(canonical))
        if has_number:
            return block_number(value["blockNumber"])
        raise HexError("invalid block number or hash: neither blockNumber nor blockHash is set")
    if isinstance(value, str) and len(value) == 66:
        return BlockHashRef(hash32(value))
    return block_number(value)


def hex_or_decimal(value: Any) -> int:
    """``math.HexOrDecimal64``: a JSON number, a decimal string or a ``0x`` string."""
    if isinstance(value, bool):
        raise HexError("invalid hex or decimal integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value[2:], 16) if value.startswith(("0x", "0X")) else int(value, 10)
        except ValueError:
            raise HexError(f"invalid hex or decimal integer {value!r}") from None
    else:
        raise HexError(f"invalid hex or decimal integer {value!r}")
    if not 0 <= number <= MAX_UINT64:
        raise HexError(f"invalid hex or decimal integer {value!r}")
    return number


# --- encoders ------------------------------------------------------------------------------


def enc_quantity(number: int) -> str:
    return hex(number)


def enc_data(raw: bytes) -> str:
    return "0x" + raw.hex()


def enc_optional_data(raw: bytes | None) -> str | None:
    return None if raw is None else enc_data(raw)


def enc_word(number: int) -> str:
    """A 256-bit value as 32 bytes of hex (a storage value)."""
    return "0x" + number.to_bytes(32, "big").hex()
