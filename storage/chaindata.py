"""Chain data: blocks, receipts, the transaction index, logs, dropped transactions and recent
state history, in their own RocksDB, so a node answers JSON-RPC the same after a restart.

Layer 1: it knows nothing of execution. Every value is an encoding the caller made (header
RLP, a transaction's canonical encoding, a receipt's consensus encoding) and is handed back
byte for byte.

One RocksDB (rocksdict, raw mode) with column families, block numbers as 8-byte big-endian
keys (so they sort):

- ``headers``: number -> [hash, header RLP, bloom, gas used, base fee?, timestamp];
- ``bodies``: number -> [transactions, senders, tx hashes, effective tips, contract
  addresses, gas used per tx, system transfers?] (the system transfers made at the block's
  start, ``[[sender, recipient, amount], ...]``; a body of six parts has none);
- ``receipts``: number -> [receipt, ...];
- ``logs``: number -> [[address, topics, data, tx index, log index, tx hash], ...];
- ``hashes``: block hash -> number;
- ``txindex``: tx hash -> number ‖ 4-byte index in the block;
- ``dropped``: tx hash -> [reason, block number?] for transactions dropped from blocks;
- ``history``: number -> the block's history record: every state key it wrote with its value
  *before* the block, and the addresses whose storage it wiped (the last ``history_blocks``
  blocks are kept);
- ``registry``: the elastic block space ledger's records as of the head (opaque to this
  store: ``ebs/stakes.py`` encodes them), written in the block's batch;
- ``meta``: layout version, head, oldest history record kept.

Every value is RLP framed with a CRC32 of its payload (``4-byte CRC ‖ payload``): a record
that is truncated, garbled or does not decode is a ``StorageError`` naming its column family
and key, never a wrong answer. A block is written in one atomic, synced write batch
(``write_block``): after a crash the store holds every block up to its head, completely.
One process writes; reads are not synchronized with writes from other threads.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rlp
from eth_bloom import BloomFilter
from rlp.codec import encode_raw
from rlp.exceptions import DecodingError
from rocksdict import WriteBatch, WriteOptions

from chain import SystemTransfer
from storage import open_stores
from storage.keys import ACCT, CODE, SLOT, AccountFields, StateKey, describe, int_bytes
from storage.ss import StorageError, close_rocksdb, open_rocksdb

LAYOUT_VERSION = 2  # 2: the registry family, system transfers in bodies
COLUMN_FAMILIES = (
    "headers",
    "bodies",
    "receipts",
    "logs",
    "hashes",
    "txindex",
    "dropped",
    "history",
    "registry",
    "meta",
)
BLOCK_FAMILIES = ("headers", "bodies", "receipts", "logs")
META_LAYOUT = b"chaindata_layout"
META_HEAD = b"head"
META_HISTORY_FLOOR = b"history_floor"  # the oldest history record kept
MAX_BLOCK_RANGE = 10_000
MAX_LOGS = 10_000
_CHUNK = 512  # blocks read per multi-get when filtering logs


class RangeTooLarge(StorageError):
    """A log query over more blocks, or matching more logs, than allowed."""


class HistoryUnavailable(StorageError):
    """State at a block the node no longer (or never) keeps enough history to answer."""


@dataclass(frozen=True)
class StoredLog:
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes
    tx_index: int
    log_index: int  # position in the block
    tx_hash: bytes


@dataclass(frozen=True)
class FoundLog:
    """A log a query matched, with the block holding it."""

    block_number: int
    block_hash: bytes
    log: StoredLog


@dataclass(frozen=True)
class StoredBlock:
    number: int
    hash: bytes
    header: bytes  # header RLP
    transactions: tuple[bytes, ...]  # canonical encodings, as in a block body
    senders: tuple[bytes, ...]
    receipts: tuple[bytes, ...]  # consensus encodings (typed receipts with their type byte)
    logs: tuple[StoredLog, ...]
    bloom: bytes
    tx_hashes: tuple[bytes, ...]
    gas_used: int
    base_fee: int | None
    timestamp: int
    effective_tips: tuple[int, ...]
    contract_addresses: tuple[bytes | None, ...]
    gas_used_per_tx: tuple[int, ...]
    transfers: tuple[SystemTransfer, ...] = ()  # made before its first transaction


@dataclass(frozen=True)
class DroppedTx:
    hash: bytes
    reason: str
    block_number: int | None


@dataclass(frozen=True)
class LogQuery:
    """An ``eth_getLogs`` filter over resolved block numbers (inclusive).

    ``addresses``: any of these (empty: any address). ``topics``: positional; ``None`` or an
    empty set at a position matches any topic there, a set any of its topics. As in geth, a
    log with fewer topics than the filter has positions does not match.
    """

    from_block: int
    to_block: int
    addresses: frozenset[bytes] = frozenset()
    topics: tuple[frozenset[bytes] | None, ...] = ()


@dataclass(frozen=True)
class HistoryRecord:
    """What a block overwrote: each written key's value before the block (None: absent)."""

    prior: dict[StateKey, Any]
    wiped: frozenset[bytes]


# -- encodings ------------------------------------------------------------------------------
def _num(number: int) -> bytes:
    return number.to_bytes(8, "big")


def _int(data: bytes) -> int:
    if not isinstance(data, bytes):
        raise TypeError("expected bytes, found a list")
    return int.from_bytes(data, "big")


def _bytes(data: Any, size: int | None = None) -> bytes:
    if not isinstance(data, bytes):
        raise TypeError("expected bytes, found a list")
    if size is not None and len(data) != size:
        raise ValueError(f"expected {size} bytes, found {len(data)}")
    return data


def _list(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise TypeError("expected a list, found bytes")
    return data


def _opt(value: bytes | None) -> list[bytes]:
    """An optional value: [] absent, [value] present (absent differs from empty bytes)."""
    return [] if value is None else [value]


def _unopt(item: Any) -> bytes | None:
    if not isinstance(item, list) or len(item) > 1:
        raise ValueError("malformed optional value")
    return _bytes(item[0]) if item else None


def seal(payload: bytes) -> bytes:
    """A stored value: CRC32 of the payload, then the payload."""
    return zlib.crc32(payload).to_bytes(4, "big") + payload


def _encode_header(block: StoredBlock) -> bytes:
    base_fee = None if block.base_fee is None else int_bytes(block.base_fee)
    return encode_raw(
        [
            block.hash,
            block.header,
            block.bloom,
            int_bytes(block.gas_used),
            _opt(base_fee),
            int_bytes(block.timestamp),
        ]
    )


def _encode_body(block: StoredBlock) -> bytes:
    return encode_raw(
        [
            list(block.transactions),
            list(block.senders),
            list(block.tx_hashes),
            [int_bytes(tip) for tip in block.effective_tips],
            [b"" if address is None else address for address in block.contract_addresses],
            [int_bytes(gas) for gas in block.gas_used_per_tx],
            *_encode_transfers(block.transfers),
        ]
    )


def _encode_transfers(transfers: tuple[SystemTransfer, ...]) -> list[list[list[bytes]]]:
    """The body's optional seventh part (absent when there are none: the older layout)."""
    if not transfers:
        return []
    return [[[t.sender, t.recipient, int_bytes(t.amount)] for t in transfers]]


def _encode_logs(logs: Iterable[StoredLog]) -> bytes:
    return encode_raw(
        [
            [
                log.address,
                list(log.topics),
                log.data,
                int_bytes(log.tx_index),
                int_bytes(log.log_index),
                log.tx_hash,
            ]
            for log in logs
        ]
    )


def _decode_logs(items: Any) -> tuple[StoredLog, ...]:
    return tuple(
        StoredLog(
            _bytes(address, 20),
            tuple(_bytes(topic, 32) for topic in _list(topics)),
            _bytes(data),
            _int(tx_index),
            _int(log_index),
            _bytes(tx_hash, 32),
        )
        for address, topics, data, tx_index, log_index, tx_hash in _list(items)
    )


def encode_history(prior_state: Mapping[StateKey, Any], wiped: Iterable[bytes]) -> bytes:
    """RLP ``[wiped addresses, [[kind, address-or-hash, slot, value?], ...]]``: kinds ``a``
    (value: RLP of nonce, balance, code hash), ``s`` (big-endian integer) and ``c`` (code),
    each value optional (``[]``: absent before the block),
    since a slot or code that did not exist differs from a zero slot or empty code."""
    items = []
    for key, value in prior_state.items():
        if key[0] == ACCT:
            body = (
                None
                if value is None
                else encode_raw([int_bytes(value.nonce), int_bytes(value.balance), value.code_hash])
            )
            items.append([b"a", key[1], b"", _opt(body)])
        elif key[0] == SLOT:
            items.append([b"s", key[1], int_bytes(key[2]), _opt(_maybe_int(value))])
        elif key[0] == CODE:
            items.append([b"c", key[1], b"", _opt(value)])
        else:
            raise ValueError(f"not a state key: {key!r}")
    return encode_raw([sorted(set(wiped)), items])


def _maybe_int(value: int | None) -> bytes | None:
    return None if value is None else int_bytes(value)


def decode_history(payload: bytes) -> HistoryRecord:
    wiped, items = _list(rlp.decode(payload))
    prior: dict[StateKey, Any] = {}
    for kind, ident, slot, item in _list(items):
        value = _unopt(item)
        if kind == b"a":
            if value is not None:
                nonce, balance, code_hash = rlp.decode(value)
                value = AccountFields(_int(nonce), _int(balance), _bytes(code_hash, 32))
            prior[(ACCT, _bytes(ident, 20))] = value
        elif kind == b"s":
            prior[(SLOT, _bytes(ident, 20), _int(slot))] = None if value is None else _int(value)
        elif kind == b"c":
            prior[(CODE, _bytes(ident, 32))] = value
        else:
            raise ValueError(f"unknown entry kind {kind!r}")
    return HistoryRecord(prior, frozenset(_bytes(address, 20) for address in _list(wiped)))


def _check_block(block: StoredBlock) -> None:
    """Refuse a malformed block before anything is written (a caller's bug)."""
    count = len(block.transactions)
    if len(block.hash) != 32 or len(block.bloom) != 256:
        raise ValueError(f"block {block.number}: hash is 32 bytes and bloom 256")
    for name in (
        "senders",
        "receipts",
        "tx_hashes",
        "effective_tips",
        "contract_addresses",
        "gas_used_per_tx",
    ):
        if len(getattr(block, name)) != count:
            raise ValueError(f"block {block.number}: {name} has not one entry per transaction")
    if any(len(sender) != 20 for sender in block.senders) or any(
        address is not None and len(address) != 20 for address in block.contract_addresses
    ):
        raise ValueError(f"block {block.number}: addresses are 20 bytes")
    if any(len(tx_hash) != 32 for tx_hash in block.tx_hashes):
        raise ValueError(f"block {block.number}: transaction hashes are 32 bytes")
    for log in block.logs:
        if len(log.address) != 20 or any(len(topic) != 32 for topic in log.topics):
            raise ValueError(f"block {block.number}: a log's address or topic has a wrong size")
        if not 0 <= log.tx_index < count:
            raise ValueError(f"block {block.number}: a log of transaction {log.tx_index}")


def _bloom_admits(bloom: BloomFilter, query: LogQuery) -> bool:
    """False when the block's bloom proves no log of it matches ``query``."""
    if query.addresses and not any(address in bloom for address in query.addresses):
        return False
    return all(not wanted or any(topic in bloom for topic in wanted) for wanted in query.topics)


def _matches(log: StoredLog, query: LogQuery) -> bool:
    if query.addresses and log.address not in query.addresses:
        return False
    if len(query.topics) > len(log.topics):
        return False
    return all(
        not wanted or topic in wanted
        for wanted, topic in zip(query.topics, log.topics, strict=False)
    )


class ChainData:
    """The chain's blocks and what JSON-RPC reads of them, durable across restarts.

    ``history_blocks``: how many recent blocks' state stays readable (``value_at``) besides the
    head's; ``history_cache``: decoded history records kept in memory (default: the window,
    so a scan over the whole window does not thrash).
    """

    def __init__(
        self,
        path: str | Path,
        history_blocks: int = 128,
        *,
        history_cache: int | None = None,
    ) -> None:
        if history_blocks < 1:
            raise ValueError("history_blocks is at least 1")
        self.path = Path(path)
        self.history_blocks = history_blocks
        self._cache_size = history_cache if history_cache is not None else history_blocks
        self._cache: OrderedDict[int, HistoryRecord] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._sync = WriteOptions()
        self._sync.sync = True
        self._db = open_rocksdb(self.path, COLUMN_FAMILIES)
        self.closed = False
        open_stores.opened(self)
        self._cf = {name: self._db.get_column_family(name) for name in COLUMN_FAMILIES}
        self._handles = {name: self._db.get_column_family_handle(name) for name in COLUMN_FAMILIES}
        try:
            self._check_layout()
            head = self._read_number("meta", META_HEAD)
            self._head = head
            floor = self._read_number("meta", META_HISTORY_FLOOR)
            self._floor = 0 if floor is None else floor
        except StorageError:
            self.close()
            raise

    def close(self) -> None:
        """Release the DB (column-family views first); once."""
        if self.closed:
            return
        self._cache.clear()
        close_rocksdb(self)

    def __enter__(self) -> ChainData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ChainData({str(self.path)!r})"

    # -- records ----------------------------------------------------------------------------
    def _check_layout(self) -> None:
        stored = self._cf["meta"].get(META_LAYOUT)
        if stored is None:
            if self._cf["meta"].get(META_HEAD) is not None:
                raise StorageError(f"{self.path}: meta/{META_LAYOUT.decode()} is missing")
            self._db.write(self._stamp(), write_opt=self._sync)
            return
        version = int.from_bytes(self._payload("meta", META_LAYOUT, stored), "big")
        if version != LAYOUT_VERSION:
            raise StorageError(
                f"{self.path}: meta/{META_LAYOUT.decode()} is version {version}, "
                f"this build reads {LAYOUT_VERSION}"
            )

    def _stamp(self) -> WriteBatch:
        batch = WriteBatch(raw_mode=True)
        batch.put(META_LAYOUT, seal(LAYOUT_VERSION.to_bytes(4, "big")), self._handles["meta"])
        return batch

    def _where(self, family: str, key: bytes) -> str:
        shown = key.decode() if family == "meta" else key.hex()
        if family in BLOCK_FAMILIES or family == "history":
            shown = f"{int.from_bytes(key, 'big')} (0x{key.hex()})"
        return f"{self.path}: {family}/{shown}"

    def _payload(self, family: str, key: bytes, data: bytes) -> bytes:
        """A stored value's payload, its checksum verified."""
        if len(data) < 4 or zlib.crc32(data[4:]).to_bytes(4, "big") != data[:4]:
            raise StorageError(
                f"{self._where(family, key)}: corrupt record (checksum mismatch, {len(data)} bytes)"
            )
        return data[4:]

    def _decode(self, family: str, key: bytes, data: bytes, decode: Callable[[bytes], Any]) -> Any:
        payload = self._payload(family, key, data)
        try:
            return decode(payload)
        except (DecodingError, ValueError, TypeError) as err:
            raise StorageError(f"{self._where(family, key)}: corrupt record: {err}") from err

    def _read(self, family: str, key: bytes, decode: Callable[[bytes], Any]) -> Any:
        data = self._cf[family].get(key)
        return None if data is None else self._decode(family, key, data, decode)

    def _read_number(self, family: str, key: bytes) -> int | None:
        return self._read(family, key, lambda payload: _int(_bytes(payload, 8)))

    # -- writes -----------------------------------------------------------------------------
    def write_block(
        self,
        block: StoredBlock,
        prior_state: Mapping[StateKey, Any],
        wiped: Iterable[bytes],
        registry: Mapping[bytes, bytes | None] | None = None,
    ) -> None:
        """Store block ``head() + 1`` (0 first) in one atomic, synced batch: the block, its
        hash and transaction index, its logs, the new head, and its history record.

        ``prior_state`` maps every state key the block wrote to its value before the block
        (``AccountFields`` | code bytes | slot int; None: absent); ``wiped`` the addresses whose
        storage the block wiped. The history record falling out of the window is deleted in
        the same batch. A transaction included here loses its dropped record, if any.
        ``registry``: the block's changes to the registry records (None deletes one).
        """
        expected = 0 if self._head is None else self._head + 1
        if block.number != expected:
            raise StorageError(
                f"{self.path}: block {block.number} written out of order: the next block is "
                f"{expected}"
            )
        _check_block(block)
        h = self._handles
        key = _num(block.number)
        batch = WriteBatch(raw_mode=True)
        batch.put(key, seal(_encode_header(block)), h["headers"])
        batch.put(key, seal(_encode_body(block)), h["bodies"])
        batch.put(key, seal(encode_raw(list(block.receipts))), h["receipts"])
        batch.put(key, seal(_encode_logs(block.logs)), h["logs"])
        batch.put(block.hash, seal(key), h["hashes"])
        for index, tx_hash in enumerate(block.tx_hashes):
            batch.put(tx_hash, seal(key + index.to_bytes(4, "big")), h["txindex"])
            batch.delete(tx_hash, h["dropped"])
        batch.put(key, seal(encode_history(prior_state, wiped)), h["history"])
        for record_key, record in (registry or {}).items():
            if record is None:
                batch.delete(record_key, h["registry"])
            else:
                batch.put(record_key, seal(record), h["registry"])
        floor = max(self._floor, block.number - self.history_blocks + 1)
        if floor == self._floor + 1:  # the usual case: one record falls out of the window
            batch.delete(_num(self._floor), h["history"])
        elif floor > self._floor:  # the window shrank since the store was written
            batch.delete_range(_num(self._floor), _num(floor), h["history"])
        batch.put(META_HISTORY_FLOOR, seal(_num(floor)), h["meta"])
        batch.put(META_HEAD, seal(key), h["meta"])
        self._db.write(batch, write_opt=self._sync)
        self._head = block.number
        with self._cache_lock:
            for number in range(self._floor, floor):
                self._cache.pop(number, None)
        self._floor = floor

    def record_dropped(self, items: Iterable[DroppedTx]) -> None:
        """Remember transactions dropped from blocks (durable when this returns)."""
        batch = WriteBatch(raw_mode=True)
        for item in items:
            if len(item.hash) != 32:
                raise ValueError("a transaction hash is 32 bytes")
            number = None if item.block_number is None else int_bytes(item.block_number)
            value = encode_raw([item.reason.encode(), _opt(number)])
            batch.put(item.hash, seal(value), self._handles["dropped"])
        if batch.len():
            self._db.write(batch, write_opt=self._sync)

    # -- reads ------------------------------------------------------------------------------
    def registry_records(self) -> dict[bytes, bytes]:
        """Every registry record as of the head, checksums verified, by key."""
        family = self._cf["registry"]
        return {
            bytes(key): self._payload("registry", bytes(key), bytes(value))
            for key, value in family.items()
        }

    def head(self) -> int | None:
        """The last block stored, None before genesis."""
        return self._head

    def number_of(self, block_hash: bytes) -> int | None:
        return self._read_number("hashes", block_hash)

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """(block number, index in the block) of an included transaction."""

        def decode(payload: bytes) -> tuple[int, int]:
            _bytes(payload, 12)
            return _int(payload[:8]), _int(payload[8:])

        return self._read("txindex", tx_hash, decode)

    def dropped(self, tx_hash: bytes) -> DroppedTx | None:
        """Why a transaction was dropped from a block. A transaction can be dropped and later
        included: callers check ``tx_location`` first (``write_block`` also deletes the
        dropped record of every transaction it includes)."""

        def decode(payload: bytes) -> DroppedTx:
            reason, number = _list(rlp.decode(payload))
            number = _unopt(number)
            return DroppedTx(
                tx_hash, _bytes(reason).decode(), None if number is None else _int(number)
            )

        return self._read("dropped", tx_hash, decode)

    def hash_of(self, number: int) -> bytes | None:
        """A stored block's hash, from its header record alone."""
        if number < 0:
            return None
        key = _num(number)
        raw = self._cf["headers"].get(key)
        return None if raw is None else self._decode("headers", key, raw, _decode_header)[0]

    def block(self, number: int) -> StoredBlock | None:
        if number < 0:
            return None
        key = _num(number)
        raw = self._cf["headers"].get(key)
        if raw is None:
            return None
        block_hash, header, bloom, gas_used, base_fee, timestamp = self._decode(
            "headers", key, raw, _decode_header
        )
        parts = {}
        for family, decode in (
            ("bodies", _decode_body),
            ("receipts", _decode_receipts),
            ("logs", lambda payload: _decode_logs(rlp.decode(payload))),
        ):
            parts[family] = self._read(family, key, decode)
            if parts[family] is None:
                raise StorageError(f"{self._where(family, key)}: missing (the header is stored)")
        txs, senders, tx_hashes, tips, contracts, gas_per_tx, transfers = parts["bodies"]
        return StoredBlock(
            number=number,
            hash=block_hash,
            header=header,
            transactions=txs,
            senders=senders,
            receipts=parts["receipts"],
            logs=parts["logs"],
            bloom=bloom,
            tx_hashes=tx_hashes,
            gas_used=gas_used,
            base_fee=base_fee,
            timestamp=timestamp,
            effective_tips=tips,
            contract_addresses=contracts,
            gas_used_per_tx=gas_per_tx,
            transfers=transfers,
        )

    def logs(
        self, query: LogQuery, max_blocks: int = MAX_BLOCK_RANGE, max_logs: int = MAX_LOGS
    ) -> list[FoundLog]:
        """The logs matching ``query`` in block then log order, over blocks from ``from_block``
        to ``to_block`` (inclusive, clamped to the stored blocks). Each block's bloom skips
        blocks that cannot match. ``RangeTooLarge`` past ``max_blocks`` blocks or
        ``max_logs`` results."""
        if self._head is None:
            return []
        low, high = max(query.from_block, 0), min(query.to_block, self._head)
        if low > high:
            return []
        if high - low + 1 > max_blocks:
            raise RangeTooLarge(
                f"query exceeds max block range {max_blocks} "
                f"(blocks {low} to {high} are {high - low + 1})"
            )
        found: list[FoundLog] = []
        for number, block_hash in self._candidates(query, low, high):
            key = _num(number)
            logs = self._read("logs", key, lambda payload: _decode_logs(rlp.decode(payload)))
            if logs is None:
                raise StorageError(f"{self._where('logs', key)}: missing (the header is stored)")
            for log in logs:
                if _matches(log, query):
                    if len(found) == max_logs:
                        raise RangeTooLarge(
                            f"query returned more than {max_logs} results; "
                            "narrow the block range or the filter"
                        )
                    found.append(FoundLog(number, block_hash, log))
        return found

    def _candidates(self, query: LogQuery, low: int, high: int) -> Iterator[tuple[int, bytes]]:
        """Blocks in ``low..high`` whose bloom admits ``query``, with their hashes."""
        for start in range(low, high + 1, _CHUNK):
            numbers = range(start, min(start + _CHUNK, high + 1))
            keys = [_num(number) for number in numbers]
            for number, key, raw in zip(numbers, keys, self._cf["headers"].get(keys), strict=True):
                if raw is None:
                    raise StorageError(f"{self._where('headers', key)}: missing (below the head)")
                block_hash, _, bloom, *_ = self._decode("headers", key, raw, _decode_header)
                if _bloom_admits(BloomFilter(int.from_bytes(bloom, "big")), query):
                    yield number, block_hash

    # -- state history ----------------------------------------------------------------------
    def oldest_state(self) -> int | None:
        """The oldest block whose state ``value_at`` can read (None before genesis)."""
        if self._head is None:
            return None
        return max(self._floor - 1, self._head - self.history_blocks, 0)

    def value_at(self, key: StateKey, number: int, current: Callable[[StateKey], Any]) -> Any:
        """The value of ``key`` at the end of block ``number`` (None: absent).

        ``current`` reads the latest committed state, that of ``head()``. The history records
        of blocks ``number + 1 .. head`` are scanned in order: the first that wrote ``key``
        holds its value before that block, which is the answer; none did: ``current(key)``.

        Records hold prior values of written keys only, so a slot of an address whose storage
        a later block wiped (without writing that slot) is unknown: ``HistoryUnavailable``
        naming the block. Since Cancun (EIP-6780) storage is only wiped for a contract created
        in the same transaction, which had no storage before, so this does not arise on
        post-Cancun chains. A block older than the window is ``HistoryUnavailable`` too.
        """
        # The current value first, then the head and the records: a block is stored (with
        # its record) before its state is committed, so a commit landing in between is
        # always covered by a record read after it.
        latest = current(key)
        head = self._head
        if head is None or not 0 <= number <= head:
            raise StorageError(f"{self.path}: block {number} is not stored (head: {head})")
        oldest = self.oldest_state()
        assert oldest is not None
        if number < oldest:
            raise HistoryUnavailable(
                f"state at block {number} is no longer kept: the node keeps the last "
                f"{self.history_blocks} blocks (oldest available: {oldest}, head: {head})"
            )
        for later in range(number + 1, head + 1):
            record = self.history(later)
            if key in record.prior:
                return record.prior[key]
            if key[0] == SLOT and key[1] in record.wiped:
                raise HistoryUnavailable(
                    f"state of {describe(key)} at block {number} is not available: block {later} "
                    "wiped the account's storage and the node keeps prior values of written "
                    "slots only"
                )
        return latest

    def history(self, number: int) -> HistoryRecord:
        """Block ``number``'s history record (decoded once, then from a bounded LRU)."""
        with self._cache_lock:  # RPC threads read while the producer writes
            record = self._cache.get(number)
            if record is not None:
                self._cache.move_to_end(number)
                return record
        key = _num(number)
        record = self._read("history", key, decode_history)
        if record is None:
            raise HistoryUnavailable(f"{self._where('history', key)}: no history record")
        with self._cache_lock:
            self._cache[number] = record
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return record


def _decode_header(payload: bytes) -> tuple[bytes, bytes, bytes, int, int | None, int]:
    block_hash, header, bloom, gas_used, base_fee, timestamp = _list(rlp.decode(payload))
    base_fee = _unopt(base_fee)
    return (
        _bytes(block_hash, 32),
        _bytes(header),
        _bytes(bloom, 256),
        _int(gas_used),
        None if base_fee is None else _int(base_fee),
        _int(timestamp),
    )


def _decode_body(payload: bytes) -> tuple[tuple[Any, ...], ...]:
    parts = _list(rlp.decode(payload))
    if len(parts) not in (6, 7):
        raise ValueError(f"a body has 6 or 7 parts, not {len(parts)}")
    txs, senders, tx_hashes, tips, contracts, gas_per_tx = (_list(part) for part in parts[:6])
    transfers = (
        tuple(
            SystemTransfer(_bytes(sender, 20), _bytes(recipient, 20), _int(amount))
            for sender, recipient, amount in (_triple(item) for item in _list(parts[6]))
        )
        if len(parts) == 7
        else ()
    )
    count = len(txs)
    if not all(len(part) == count for part in (senders, tx_hashes, tips, contracts, gas_per_tx)):
        raise ValueError("parts of the body are not one entry per transaction")
    return (
        tuple(_bytes(tx) for tx in txs),
        tuple(_bytes(sender, 20) for sender in senders),
        tuple(_bytes(tx_hash, 32) for tx_hash in tx_hashes),
        tuple(_int(tip) for tip in tips),
        tuple(None if _bytes(address) == b"" else _bytes(address, 20) for address in contracts),
        tuple(_int(gas) for gas in gas_per_tx),
        transfers,
    )


def _triple(item: Any) -> list[Any]:
    parts = _list(item)
    if len(parts) != 3:
        raise ValueError("a system transfer is [sender, recipient, amount]")
    return parts


def _decode_receipts(payload: bytes) -> tuple[bytes, ...]:
    return tuple(_bytes(receipt) for receipt in _list(rlp.decode(payload)))
