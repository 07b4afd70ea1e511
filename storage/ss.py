"""State Storage (SS): the current state, flat in RocksDB, read by state key.

One RocksDB (rocksdict, raw mode) with column families:

- ``index``: 20-byte address -> 5-byte big-endian sequence, allocated in creation order;
- ``hashed``: keccak(address) -> the same sequence (the State Commitment's account leaves
  are keyed by it and keep only hashes: it finds their records here);
- ``account``: sequence -> the account trie's leaf, RLP(nonce, balance, storage root, code
  hash), stored slim as geth's snapshot stores accounts: an empty storage root and an empty
  code hash each one byte (``0x80``) instead of 33 (most accounts have one or both; it is
  handed out whole, ``full_record``);
- ``contract``: sequence ‖ 32-byte slot -> value (big-endian, no leading zeros);
- ``code``: code hash -> code;
- ``writeset``: 8-byte block number -> the keys the block wrote (``storage/writeset.py``:
  their values are the flat state's), its state root and the block committed before it,
  for the last ``writeset_window`` blocks (recovery replays those since SC's last
  checkpoint), unless ``keep_writesets`` is off (validators);
- ``meta``: layout version, next sequence, last committed block and its state root.

A block's changes go in one atomic write batch (``write_block``), synced before it returns
(``write_synced``: the write-ahead log is fsync'd), so a power cut loses no committed block. A
deleted account leaves no index entry behind unless a slot of it is still stored. Reading
an account takes two point reads (index, account), a slot two (index, contract);
``get_many`` batches them for the preloader. Ray workers open the same directory read-only
or as a secondary instance.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3
from eth_hash.auto import keccak
from rocksdict import AccessType, BlockBasedOptions, Options, Rdict, WriteBatch, WriteOptions

from storage import open_stores
from storage.keys import (
    ACCT,
    CODE,
    SLOT,
    AccountFields,
    AccountRecord,
    StateKey,
    int_bytes,
    list_prefix,
)
from storage.writeset import encode_writeset

LAYOUT_VERSION = 9  # 3: page digests in child references, checksummed SC records;
# 4: delta pages, stored in packs (a build of layout 3 would misread their references);
# 5: small storage tries only in SS (a build of layout 4 would find no storage in SC);
# 6: hash-only account leaves in SC, their records found in SS by keccak(address); delta
# pages keep unchanged node paths as SAME; 7: write sets keep the written keys only (a build
# of layout 6 would read no values in them); 8: slim account records (a build of layout 7
# would refuse them as corrupt); 9: delta pages list a branch's changed children by a bitmap
# (a build of layout 8 would misread them)
WAL_BUFFERS = 4  # the write-ahead log's cap, in write buffers (``db_options``)
DEFAULT_WRITE_BUFFER = 64 << 20  # RocksDB's own
COLUMN_FAMILIES = ("index", "hashed", "account", "contract", "code", "writeset", "meta")
SEQ_BYTES = 5
META_LAYOUT = b"layout"
META_NEXT_SEQ = b"next_seq"
META_LAST = b"last_block"
DEFAULT_WRITESET_WINDOW = 32  # recovery replays SC from its last checkpoint, which a
# committer writes every 32 blocks by default (``storage/committer.py``: there the window
# follows its checkpoints)

SYNCED = WriteOptions()
SYNCED.sync = True


UNLOGGED = WriteOptions()
UNLOGGED.disable_wal = True


def write_synced(db: Rdict, batch: WriteBatch) -> None:
    """Write ``batch`` atomically and durably: it returns once RocksDB's write-ahead log is
    fsync'd (and with it every earlier write of this DB), so a power cut keeps it."""
    db.write(batch, write_opt=SYNCED)


def write_unlogged(db: Rdict, batch: WriteBatch) -> None:
    """Write ``batch`` atomically to the memtables only, not to the write-ahead log: a crash
    loses it unless a flush persisted it first (for a store that can be rebuilt from
    another's log; a DB written so must never be written with the log too, or recovery
    would replay a logged write over a state missing the unlogged ones before it)."""
    db.write(batch, write_opt=UNLOGGED)


_EMPTY_ROOT_ITEM = b"\xa0" + BLANK_ROOT_HASH
_EMPTY_CODE_ITEM = b"\xa0" + EMPTY_SHA3
_BLANK = b"\x80"  # RLP's empty string


def slim_record(record: bytes) -> bytes:
    """An account record as stored: its empty storage root and empty code hash as empty
    strings. (The record is canonical RLP, as ``encode_account`` gives it: its payload of
    68 bytes or more, so a two-byte list header, and the root and code hash items last.)"""
    root, code = record[-66:-33], record[-33:]
    if root != _EMPTY_ROOT_ITEM and code != _EMPTY_CODE_ITEM:
        return record
    if len(record) < 70 or record[0] != 0xF8 or record[1] != len(record) - 2:
        raise ValueError(f"not an account record: 0x{record.hex()}")
    payload = b"".join(
        (
            record[2:-66],
            _BLANK if root == _EMPTY_ROOT_ITEM else root,
            _BLANK if code == _EMPTY_CODE_ITEM else code,
        )
    )
    return list_prefix(len(payload)) + payload


def full_record(stored: bytes) -> bytes:
    """The account record (the account trie's leaf value) a slim stored one stands for;
    ``ValueError`` if ``stored`` is not canonical RLP of the four fields as ``slim_record``
    gives them (SC checks the record it is given against a leaf's hash, except in a replay:
    a garbled one must not come back looking whole)."""
    nonce, balance, root, code = _slim_parts(stored)
    return bytes((0xF8, len(nonce) + len(balance) + 66)) + b"".join(
        (nonce, balance, b"\xa0", root, b"\xa0", code)
    )


def decode_slim(stored: bytes) -> AccountRecord:
    """A stored slim record's fields (``ValueError`` as ``full_record``)."""
    nonce, balance, root, code = _slim_parts(stored)
    return AccountRecord(_item_int(nonce), _item_int(balance), root, code)


def _slim_parts(stored: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """A slim record's nonce and balance as their RLP items, and its storage root and code
    hash (32 bytes each, the empty ones filled in); every stored byte checked canonical."""
    if len(stored) < 2 or not (0xC0 <= stored[0] <= 0xF8):
        raise ValueError("not a slim account record: not an RLP list of its fields")
    start = 1 if stored[0] < 0xF8 else 2
    length = stored[0] - 0xC0 if start == 1 else stored[1]
    if len(stored) - start != length or (start == 2 and length < 56):
        raise ValueError("not a slim account record: its list header and length disagree")
    items = []
    at = start
    for _ in range(2):  # nonce, balance: canonical integers of at most 32 bytes
        head = stored[at] if at < len(stored) else 0xFF
        size = head - 0x80 if 0x80 < head <= 0xA0 else 0
        if (
            head > 0xA0
            or head == 0
            or (size and stored[at + 1 : at + 2] in (b"", b"\0"))
            or (size == 1 and stored[at + 1] < 0x80)
        ):
            raise ValueError("not a slim account record: a nonce or balance not canonical")
        items.append(stored[at : at + 1 + size])
        at += 1 + size
    for empty in (BLANK_ROOT_HASH, EMPTY_SHA3):
        if stored[at : at + 1] == _BLANK:
            items.append(empty)
            at += 1
        elif stored[at : at + 1] == b"\xa0" and at + 33 <= len(stored):
            items.append(stored[at + 1 : at + 33])
            at += 33
        else:
            raise ValueError("not a slim account record: a storage root or code hash cut short")
    if at != len(stored):
        raise ValueError("not a slim account record: bytes after its code hash")
    return items[0], items[1], items[2], items[3]


def _item_int(item: bytes) -> int:
    """The integer a canonical RLP item of at most 32 bytes encodes."""
    return item[0] if item[0] < 0x80 else int.from_bytes(item[1:], "big")


class StorageError(RuntimeError):
    """A store that cannot be read as written: wrong layout, corrupt record (key named)."""


@dataclass(frozen=True)
class CommitMark:
    """The last block a store holds completely, and its state root."""

    number: int
    state_root: bytes

    def encode(self) -> bytes:
        return self.number.to_bytes(8, "big") + self.state_root

    @classmethod
    def decode(cls, data: bytes, where: str) -> CommitMark:
        if len(data) != 40:
            raise StorageError(f"{where}: commit mark of {len(data)} bytes, expected 40")
        return cls(int.from_bytes(data[:8], "big"), data[8:])


L0_COMPACTION_TRIGGER = 4  # RocksDB's default: L0 files that start a compaction


def family_options(write_buffer_bytes: int | None = None) -> Options:
    """Options of each column family: bloom filters (10 bits a key, as geth's stores use), so
    a point read probes one SST file's data block rather than one per level, and the write
    buffer (memtable) size if given (RocksDB's default is 64 MB).

    With a write buffer given, the levels are sized from it as RocksDB's defaults size them
    from theirs (its tuning guide: the first level about as big as L0 when it compacts, a
    write buffer times the L0 trigger, 256 MB for 64 MB; files a tenth of that, about): kept
    at the defaults with a small buffer, everything below L0 was one level of one file,
    rewritten whole by every L0 compaction. (At 100,000 accounts, a 4 MB buffer, 500 blocks:
    SC's compaction 3.79 -> 2.44 bytes per write-set byte, disk_ratio 2.61 -> 2.50.)"""
    options = Options(raw_mode=True)
    table = BlockBasedOptions()
    table.set_bloom_filter(10, False)
    options.set_block_based_table_factory(table)
    if write_buffer_bytes is not None:
        options.set_write_buffer_size(write_buffer_bytes)
        options.set_level_zero_file_num_compaction_trigger(L0_COMPACTION_TRIGGER)
        options.set_max_bytes_for_level_base(write_buffer_bytes * L0_COMPACTION_TRIGGER)
        options.set_target_file_size_base(max(1 << 20, write_buffer_bytes // 2))
        options.set_level_compaction_dynamic_level_bytes(True)
    return options


def db_options(statistics: bool = False, write_buffer_bytes: int | None = None) -> Options:
    """Options for our stores; ``statistics`` turns RocksDB's tickers on (benchmarks).

    The write-ahead log is capped at ``WAL_BUFFERS`` write buffers. RocksDB keeps a log file
    until every column family with writes in it has flushed them, and by default lets the
    logs reach four times all the families' buffers before it flushes the laggards: SS's
    ``meta`` family (a few keys rewritten each block) would not fill a buffer in thousands
    of blocks, so every log since the store opened was kept (100,000 accounts, 4 MB
    buffers, 200 blocks: 46 MB of logs, the store 134 MB on disk where it was 88 once
    flushed). Past the cap, the families holding the oldest log are flushed instead."""
    options = family_options(write_buffer_bytes)
    options.set_max_total_wal_size(WAL_BUFFERS * (write_buffer_bytes or DEFAULT_WRITE_BUFFER))
    options.create_if_missing(True)
    options.create_missing_column_families(True)
    if statistics:
        options.enable_statistics()
    return options


def open_rocksdb(
    path: Path,
    families: Sequence[str],
    read_only: bool = False,
    secondary: Path | None = None,
    options: Options | None = None,
    write_buffer_bytes: int | None = None,
) -> Rdict:
    """A RocksDB with the given column families, for writing, read-only or as a secondary."""
    columns = {name: family_options(write_buffer_bytes) for name in families}
    if secondary is not None:
        access = AccessType.secondary(str(secondary))
    else:
        access = AccessType.read_only() if read_only else AccessType.read_write()
    options = options or db_options(write_buffer_bytes=write_buffer_bytes)
    return Rdict(str(path), options=options, column_families=columns, access_type=access)


def close_rocksdb(store: Any) -> None:
    """Close a store's RocksDB: its column-family views first (each holds the DB open),
    then the DB; the store leaves the open-store registry."""
    close_db(store._db, store._cf)
    store._cf.clear()
    store._handles.clear()
    store.closed = True
    open_stores.closed(store)


def close_db(db: Rdict, families: Mapping[str, Rdict]) -> None:
    """Close a RocksDB and its column-family views (views first: each holds the DB open)."""
    for family in families.values():
        family.close()
    db.close()


def rocksdb_tickers(options: Options) -> dict[str, int]:
    """RocksDB's cumulative counters (``rocksdb.bytes.written`` ...) of a store opened with
    ``db_options(statistics=True)``."""
    tickers = {}
    for line in (options.get_statistics() or "").splitlines():
        name, _, rest = line.partition(" COUNT : ")
        if rest and rest.strip().isdigit():
            tickers[name.strip()] = int(rest.strip())
    return tickers


def check_layout(meta: Rdict, where: str, writable: bool) -> None:
    """Refuse a store written with another layout; stamp a new one."""
    stored = meta.get(META_LAYOUT)
    if stored is None:
        if writable:
            meta.put(META_LAYOUT, LAYOUT_VERSION.to_bytes(4, "big"), SYNCED)
        return
    version = int.from_bytes(stored, "big")
    if version != LAYOUT_VERSION:
        raise StorageError(
            f"{where}: meta/layout is version {version}, this build reads {LAYOUT_VERSION}"
        )


class StateStorage:
    """The flat current state; a ``StateReader`` (``get``) with batched reads and block writes."""

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        secondary: str | Path | None = None,
        keep_writesets: bool = True,
        writeset_window: int = DEFAULT_WRITESET_WINDOW,
        options: Options | None = None,
        write_buffer_bytes: int | None = None,
    ) -> None:
        if writeset_window < 1:
            raise ValueError("writeset_window must keep at least the last block (recovery)")
        self.path = Path(path)
        self.writeset_window = writeset_window
        self.secondary = Path(secondary) if secondary is not None else None
        self.last_batch = (0, 0)  # operations and bytes of the last block's batch
        self.read_only = read_only or secondary is not None
        self.keep_writesets = keep_writesets
        self._options, self._write_buffer = options, write_buffer_bytes
        self._catch_up_lock = threading.Lock()
        self._retired: tuple[Rdict, dict[str, Rdict]] | None = None  # a secondary replaced
        self._open()
        try:
            check_layout(self._cf["meta"], f"{self.path}", writable=not self.read_only)
        except StorageError:
            self.close()
            raise

    def _open(self) -> None:
        db = open_rocksdb(
            self.path,
            COLUMN_FAMILIES,
            read_only=self.read_only and self.secondary is None,
            secondary=self.secondary,
            options=self._options,
            write_buffer_bytes=self._write_buffer,
        )
        families = {name: db.get_column_family(name) for name in COLUMN_FAMILIES}
        handles = {name: db.get_column_family_handle(name) for name in COLUMN_FAMILIES}
        # (swapped whole: a reader on another thread sees the old instance or the new one)
        self._db, self._cf, self._handles = db, families, handles
        self.closed = False
        open_stores.opened(self)

    def close(self) -> None:
        """Release the DB (every column-family view holds it open too); once."""
        if not self.closed:
            self._close_retired()
            close_rocksdb(self)

    def _close_retired(self) -> None:
        if self._retired is not None:
            db, families = self._retired
            self._retired = None
            close_db(db, families)

    def catch_up(self) -> None:
        """A secondary instance: see what the primary has written since.

        RocksDB's secondary keeps the memtables it replayed from the primary's write-ahead
        log even after the primary has flushed them to SST files and deleted that log; a
        value changed since then reads stale from them, shadowing the SST that holds the new
        one (seen with the RocksDB rocksdict ships: a key written in block 1, changed in 2,
        flushed, read back as block 1's while the commit mark said block 3). So when a
        catch-up brings new SST files (a flush or a compaction), the secondary is opened
        afresh instead, which reads the SST files and only the live log.

        One secondary serves every thread of its process (in-process Compute Units), so the
        new instance is opened before it replaces the old one, and the old one is closed only
        at the next reopen (a block later, its readers long done), never under a reader.
        """
        with self._catch_up_lock:
            files = self._db.live_files()
            self._db.try_catch_up_with_primary()
            if self._db.live_files() == files:
                return
            self._close_retired()
            old = (self._db, self._cf)
            self._open()  # (a failure here leaves the old instance in place, still working)
            self._retired = old

    # -- reads ------------------------------------------------------------------------------
    def last_committed(self) -> CommitMark | None:
        data = self._cf["meta"].get(META_LAST)
        return None if data is None else CommitMark.decode(data, f"{self.path}: meta/last_block")

    def sequence_of(self, address: bytes) -> bytes | None:
        return self._cf["index"].get(address)

    def get(self, key: StateKey) -> Any:
        if key[0] == CODE:
            return self._cf["code"].get(key[1])
        seq = self._cf["index"].get(key[1])
        if seq is None:
            return None
        if key[0] == ACCT:
            return self._value(key, seq, self._cf["account"].get(seq))
        return self._value(key, seq, self._cf["contract"].get(seq + key[2].to_bytes(32, "big")))

    def _value(self, key: StateKey, seq: bytes, raw: bytes | None) -> Any:
        """An account's fields or a slot's integer from its stored bytes."""
        if raw is None:
            return None
        if key[0] == ACCT:
            return self._fields(seq, raw)
        return int.from_bytes(raw, "big")

    def get_many(self, keys: Sequence[StateKey]) -> list[Any]:
        """Values of many state keys in three batched lookups (index, then accounts and slots,
        then code)."""
        addresses = sorted({key[1] for key in keys if key[0] != CODE})
        seqs = (
            dict(zip(addresses, self._cf["index"].get(addresses), strict=True)) if addresses else {}
        )
        account_keys = sorted({seqs[key[1]] for key in keys if key[0] == ACCT and seqs[key[1]]})
        slot_keys = sorted(
            {seqs[k[1]] + k[2].to_bytes(32, "big") for k in keys if k[0] == SLOT and seqs[k[1]]}
        )
        code_keys = sorted({key[1] for key in keys if key[0] == CODE})
        accounts = self._multi("account", account_keys)
        slots = self._multi("contract", slot_keys)
        codes = self._multi("code", code_keys)
        values = []
        for key in keys:
            if key[0] == CODE:
                values.append(codes.get(key[1]))
                continue
            seq = seqs[key[1]]
            if seq is None:
                values.append(None)
            elif key[0] == ACCT:
                values.append(self._value(key, seq, accounts.get(seq)))
            else:
                values.append(self._value(key, seq, slots.get(seq + key[2].to_bytes(32, "big"))))
        return values

    def _multi(self, family: str, keys: list[bytes]) -> dict[bytes, bytes]:
        if not keys:
            return {}
        found = self._cf[family].get(keys)
        return {key: value for key, value in zip(keys, found, strict=True) if value is not None}

    def _record(self, seq: bytes, data: bytes) -> AccountRecord:
        try:
            return decode_slim(data)
        except ValueError as err:
            raise StorageError(f"{self.path}: account/{seq.hex()}: corrupt record: {err}") from err

    def _full(self, seq: bytes, data: bytes) -> bytes:
        try:
            return full_record(data)
        except ValueError as err:
            raise StorageError(f"{self.path}: account/{seq.hex()}: corrupt record: {err}") from err

    def _fields(self, seq: bytes, data: bytes) -> AccountFields:
        record = self._record(seq, data)
        return AccountFields(record.nonce, record.balance, record.code_hash)

    def account_record(self, address: bytes) -> AccountRecord | None:
        """The stored account with its storage root (the account trie's leaf)."""
        seq = self.sequence_of(address)
        data = None if seq is None else self._cf["account"].get(seq)
        return None if data is None else self._record(seq, data)

    def record_by_hash(self, hashed_address: bytes) -> bytes | None:
        """The stored record of the account whose address hashes to ``hashed_address``."""
        seq = self._cf["hashed"].get(hashed_address)
        data = None if seq is None else self._cf["account"].get(seq)
        return None if data is None else self._full(seq, data)

    def records_by_hash(self, hashed_addresses: Sequence[bytes]) -> list[bytes | None]:
        """``record_by_hash`` of many accounts, in two batched lookups."""
        if not hashed_addresses:
            return []
        seqs = self._cf["hashed"].get(list(hashed_addresses))
        records = self._multi("account", sorted({seq for seq in seqs if seq is not None}))
        return [
            self._full(seq, records[seq]) if seq is not None and seq in records else None
            for seq in seqs
        ]

    def stored_slots(self, addresses: Iterable[bytes]) -> dict[bytes, list[tuple[bytes, bytes]]]:
        """The slots of many accounts as stored: (32-byte slot, value big-endian without
        leading zeros), in slot order (the State Commitment hashes these bytes as they
        are); their sequences in one batched lookup, then one iterator seeking each in turn
        (one made per account cost more than its slots did: a block rebuilds a thousand
        small storage tries from here)."""
        addresses = sorted(set(addresses))
        found: dict[bytes, list[tuple[bytes, bytes]]] = {address: [] for address in addresses}
        seqs = self._cf["index"].get(addresses) if addresses else []
        located = sorted(
            (seq, address) for address, seq in zip(addresses, seqs, strict=True) if seq
        )
        if not located:
            return found
        cursor = self._cf["contract"].iter()
        for seq, address in located:
            slots = found[address]
            cursor.seek(seq)
            while cursor.valid():
                key = cursor.key()
                if key[:SEQ_BYTES] != seq:
                    break
                slots.append((key[SEQ_BYTES:], cursor.value()))
                cursor.next()
        del cursor  # (an iterator holds the DB open: let go before any close)
        return found

    def writeset(self, number: int) -> bytes | None:
        return self._cf["writeset"].get(number.to_bytes(8, "big"))

    def writesets(self, after: int, through: int) -> dict[int, bytes]:
        """The write sets kept of the blocks after ``after`` through ``through``."""
        found = {}
        for key, data in self._cf["writeset"].items(from_key=(after + 1).to_bytes(8, "big")):
            number = int.from_bytes(key, "big")
            if number > through:
                break
            found[number] = data
        return found

    # -- writes -----------------------------------------------------------------------------
    def write_block(
        self,
        mark: CommitMark,
        writes: Mapping[StateKey, Any],
        wiped: Iterable[bytes],
        records: Mapping[bytes, bytes | None],
    ) -> None:
        """Apply one block's changes (wipes first) in one atomic batch, then record ``mark``.

        ``records`` holds the new record of every changed account (None: deleted), as the
        State Commitment encodes its leaves, storage root included.
        """
        if self.read_only:
            raise StorageError(f"{self.path}: opened read-only")
        wiped = sorted(set(wiped))
        batch = WriteBatch(raw_mode=True)
        addresses = sorted({key[1] for key in writes if key[0] == SLOT} | set(records) | set(wiped))
        found = self._cf["index"].get(addresses) if addresses else []
        seqs = dict(zip(addresses, found, strict=True))
        next_seq = int.from_bytes(self._cf["meta"].get(META_NEXT_SEQ, b"\0"), "big")
        stored = {key[1] for key, value in writes.items() if key[0] == SLOT and value}
        stored |= {address for address, record in records.items() if record is not None}
        for address in addresses:  # sequences in creation order (sorted within a block)
            if seqs[address] is None and address in stored:
                seqs[address] = next_seq.to_bytes(SEQ_BYTES, "big")
                batch.put(address, seqs[address], self._handles["index"])
                batch.put(keccak(address), seqs[address], self._handles["hashed"])
                next_seq += 1
        contract = self._handles["contract"]
        for address in wiped:
            seq = seqs[address]
            if seq is not None:
                end = (int.from_bytes(seq, "big") + 1).to_bytes(SEQ_BYTES, "big")
                batch.delete_range(seq, end, contract)
        accounts = self._handles["account"]
        for address, record in records.items():
            if record is not None:
                batch.put(seqs[address], slim_record(record), accounts)
            elif seqs[address] is not None:
                batch.delete(seqs[address], accounts)
                if not self._keeps_slots(address, seqs[address], writes, stored, wiped):
                    batch.delete(address, self._handles["index"])  # nothing left to find
                    batch.delete(keccak(address), self._handles["hashed"])
        for key, value in writes.items():
            if key[0] == SLOT and seqs[key[1]] is not None:  # else: zeroing what never was
                slot = seqs[key[1]] + key[2].to_bytes(32, "big")
                if value:
                    batch.put(slot, int_bytes(value), contract)
                else:
                    batch.delete(slot, contract)
            elif key[0] == CODE:
                batch.put(key[1], value, self._handles["code"])
        if self.keep_writesets:
            family = self._handles["writeset"]
            last = self.last_committed()
            record = encode_writeset(last and last.number, mark.state_root, writes, wiped)
            batch.put(mark.number.to_bytes(8, "big"), record, family)
            if mark.number >= self.writeset_window:  # one leaves the window each block
                batch.delete((mark.number - self.writeset_window).to_bytes(8, "big"), family)
        meta = self._handles["meta"]
        batch.put(META_NEXT_SEQ, next_seq.to_bytes(SEQ_BYTES, "big"), meta)
        batch.put(META_LAST, mark.encode(), meta)
        self.last_batch = (batch.len(), batch.size_in_bytes())
        write_synced(self._db, batch)

    def _keeps_slots(
        self,
        address: bytes,
        seq: bytes,
        writes: Mapping[StateKey, Any],
        stored: set[bytes],
        wiped: Sequence[bytes],
    ) -> bool:
        """Whether a deleted account still has a stored slot after this block's writes
        (then its index entry stays, so the slot can still be read); ``stored`` holds the
        addresses given a non-zero slot in this block."""
        if address in stored:
            return True
        if address in wiped:
            return False
        for key in self._cf["contract"].keys(from_key=seq):
            if key[:SEQ_BYTES] != seq:
                return False
            if writes.get((SLOT, address, int.from_bytes(key[SEQ_BYTES:], "big")), 1):
                return True  # (a slot this block does not zero)
        return False

    def flush(self) -> None:
        """Flush every column family's memtable to SST files (``Rdict.flush`` alone flushes
        only the default family)."""
        flush_all(self._db, COLUMN_FAMILIES)

    def compact(self) -> None:
        """Every column family flushed and compacted whole (``compact_all``)."""
        compact_all(self._db, COLUMN_FAMILIES)


def flush_all(db: Rdict, families: Iterable[str]) -> None:
    db.flush()
    for name in families:
        family = db.get_column_family(name)
        try:
            family.flush()
        finally:
            family.close()


def compact_all(db: Rdict, families: Sequence[str]) -> None:
    """Flush every column family, then compact each whole, waiting for it (an operator's
    ``db compact``): every key's latest version alone, in the bottom level, so that what
    runs next starts from a settled store (a bulk load's memtables and L0 files would
    otherwise be flushed and compacted into the blocks after it)."""
    flush_all(db, families)
    for name in families:
        family = db.get_column_family(name)
        try:
            family.compact_range(None, None)
        finally:
            family.close()


class SecondaryStores:
    """This process's secondary instances of stores, by path, most recently used last.

    Each has a scratch directory (RocksDB's secondary keeps its info log there) named after
    the process, so directories left by processes that died without cleaning up (a killed Ray
    worker) are swept on the next open. Every store is closed at exit: RocksDB must not be
    torn down by interpreter finalization in arbitrary order.
    """

    PREFIX = "evmpp-ss-secondary-"

    def __init__(self, keep_open: int) -> None:
        self.keep_open = keep_open
        self.stores: dict[str, StateStorage] = {}
        self._swept = False
        atexit.register(self.close_all)

    def open(self, path: str) -> StateStorage:
        store = self.stores.pop(path, None)
        if store is None:
            if not self._swept:
                sweep_dead_secondaries(Path(tempfile.gettempdir()), self.PREFIX)
                self._swept = True
            scratch = tempfile.mkdtemp(prefix=f"{self.PREFIX}{os.getpid()}-")
            store = StateStorage(path, secondary=scratch)
        self.stores[path] = store
        while len(self.stores) > self.keep_open:  # stores of earlier chains (e.g. replays)
            close_secondary(self.stores.pop(next(iter(self.stores))))
        return store

    def release(self, path: str) -> None:
        """Close this process's secondary of ``path``, if open (its chain is closing)."""
        store = self.stores.pop(path, None)
        if store is not None:
            close_secondary(store)

    def close_all(self) -> None:
        for path in list(self.stores):
            self.release(path)


def close_secondary(store: StateStorage) -> None:
    store.close()
    assert store.secondary is not None
    shutil.rmtree(store.secondary, ignore_errors=True)


def sweep_dead_secondaries(directory: Path, prefix: str) -> list[Path]:
    """Remove the scratch directories of processes that no longer exist; returns them."""
    removed = []
    for scratch in directory.glob(f"{prefix}*"):
        pid = scratch.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(scratch, ignore_errors=True)
            removed.append(scratch)
    return removed


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class FarReads(Protocol):
    """Reads of a store on another machine (``compute_unit/remote_state.py`` serves them from
    the store's own node): the values of ``keys`` as of block ``number``."""

    def read(self, path: str, number: int, keys: Sequence[StateKey]) -> list[Any]: ...


def store_identity(path: str | Path) -> str | None:
    """The RocksDB's identity (its IDENTITY file: a UUID made when the DB was created), or
    None where there is no DB: tells this store from another at the same path elsewhere."""
    try:
        return (Path(path) / "IDENTITY").read_text().strip()
    except OSError:
        return None


class StorageView:
    """A picklable handle on the state as of block ``number``, for other processes.

    In a Ray worker on the store's machine it opens the store as a RocksDB secondary instance
    (once per process, see ``SecondaryStores``) and catches up with the primary when it is
    behind ``number``. On another machine (a Kubernetes worker pod: the volume is mounted in
    the head pod only) the path does not hold this store, told by its identity, so it reads
    through ``far``. Either way it memoizes what it reads, since the state does not change
    while a block executes.
    """

    opened = SecondaryStores(keep_open=2)

    def __init__(
        self,
        path: str | Path,
        number: int,
        far: FarReads | None = None,
        identity: str | None = None,
    ) -> None:
        self.path, self.number, self.far = str(path), number, far
        self.identity = identity if identity is not None else store_identity(path)
        self._values: dict[StateKey, Any] = {}
        self._reader: StateStorage | None = None
        self._local: bool | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "number": self.number, "far": self.far, "id": self.identity}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["number"], state["far"], state["id"])

    def _store(self) -> StateStorage:
        store = self.opened.open(self.path)
        mark = store.last_committed()
        if mark is None or mark.number < self.number:
            store.catch_up()
        return store

    def is_local(self) -> bool:
        """Whether this process sees the store itself (and not, say, an empty mount point)."""
        if self._local is None:
            self._local = self.identity is not None and store_identity(self.path) == self.identity
        return self._local

    def get(self, key: StateKey) -> Any:
        try:
            return self._values[key]
        except KeyError:
            pass
        if self.is_local():
            if self._reader is None:
                self._reader = self._store()
            value = self._reader.get(key)
        elif self.far is not None:
            [value] = self.far.read(self.path, self.number, [key])
        else:
            raise StorageError(
                f"{self.path}: State Storage is not on this machine and no remote reads were "
                "given (run the workers beside the store, or give the view far reads)"
            )
        self._values[key] = value
        return value
