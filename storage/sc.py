"""State Commitment (SC): the state root, from Ethereum's Merkle Patricia tries kept in pages.

The account trie (keccak(address) -> RLP(nonce, balance, storage root, code hash)) and one
storage trie per account (keccak(slot) -> RLP(value)) are ``storage/mpt.py`` tries whose
nodes live in K-Persist pages (``storage/pages.py``) in their own RocksDB (column families
``pages`` and ``meta``). An account's leaf anchors its storage trie's root page if that trie
is paged. A small storage trie (``page_target // 8`` bytes or less, every node inline) is not
stored in SC at all: its slots are State Storage's (``ss``), and the trie is rebuilt from
them, and checked against the storage root its account records, when a block changes it or a
proof reads it; once a storage trie is paged it stays paged. Likewise the account trie's
leaves keep only their hashes: the records are State Storage's, read by keccak(address) when
a block changes an account (or moves its leaf, or a proof reads it) and checked against the
leaf's hash. (Without ``ss``, every storage trie is paged and leaves keep their values.)
Since State Storage keeps only the latest state, a proof at an earlier block can be given
for accounts and small storage unchanged since; anything else is an error, never a wrong
proof. Committing a block is two steps:

1. ``update(writes, wiped)`` applies changes to the tries in memory and returns each changed
   account's record (the leaf value, storage root included, as State Storage keeps it) and
   the new state root (merkelization; it may be called once per transaction when receipts
   need intermediate roots);
2. ``write(number)`` writes every page the block dirtied, as new versions, in one batch
   together with the block's root record, synced: durable when it returns (or, with
   ``durable_every_block`` off, as a committer keeping write sets runs it, written without
   the write-ahead log between checkpoints and durable at the next). Pages it replaced or
   no longer reaches are listed as the block's garbage; with ``keep_versions`` N (128 unless
   told: geth keeps 128 diff layers; at least 2, since recovery may roll back a block; None
   keeps every version, an archive), the root of the block leaving the window is deleted, and
   the garbage of every block up to the oldest checkpoint kept (proofs are read at
   checkpoints and at the last block: see ``at``), each read from where the last pruning
   stopped, so the last N roots, and the proofs of the checkpoints among them, stay readable
   and no earlier record or tombstone is rescanned.

Every page read is checked twice: its bytes against the digest its parent's reference
recorded (the root page's against the block's root record, which carries a checksum of its
own), and its entry against the hash its parent's node recorded (for the root page, the
block's state root). A garbled, truncated or missing page is an error naming its key, never a
wrong root. Memory is bounded: decoded pages are kept in an LRU cache of ``cache_pages``, and
once a trie has loaded ``max_loaded`` entries it is dropped after a write and loaded again on
demand (the page cache dropped with it: its pages hold the trie's nodes).
"""

from __future__ import annotations

import bisect
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from itertools import compress
from operator import is_not
from pathlib import Path
from typing import Any

import rlp
from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3
from rocksdict import Options, WriteBatch

from storage import open_stores
from storage.keys import (
    ACCT,
    SLOT,
    StateKey,
    StoredState,
    decode_account,
    encode_account,
    int_bytes,
)
from storage.mpt import Leaf, Node, Stub, Trie, encode_raw, hp_encode, keccak
from storage.pages import (
    PACK_DEPTH,
    PAGE_KEY_BYTES,
    Entry,
    Page,
    PageError,
    PageRef,
    decode_pack,
    decode_page,
    describe_key,
    digest,
    encode_delta,
    encode_entry,
    encode_pack,
    encode_page,
    entry_parts,
    pack_key,
    page_key,
    seal,
    unpack,
    unpaged_size,
    unseal,
)
from storage.ss import (
    META_LAYOUT,
    CommitMark,
    StorageError,
    check_layout,
    compact_all,
    db_options,
    flush_all,
    open_rocksdb,
    write_synced,
    write_unlogged,
)

FAMILIES = ("pages", "meta")
META_LAST = b"last_block"
META_NEXT_SEQ = b"next_seq"
ROOT_PREFIX = b"root/"
GARBAGE_PREFIX = b"garbage/"
PACKS_PREFIX = b"packs/"  # a block's packs: how many of their versions pruning has yet to free
META_PRUNED = b"pruned_through"  # oldest block kept at the last pruning
META_FREED = b"freed_through"  # the last block whose garbage pruning has deleted
META_CHECKPOINT = b"checkpoint"  # the last block whose top pages are on disk
IN_MEMORY = b"\x01"  # a root record's flag: the block's top pages were held in memory only
DEFAULT_TOP_DEPTHS = 2  # page depths of the account trie held in memory between checkpoints
DEFAULT_LEVELS = 2
DEFAULT_TARGET = 4096
DEFAULT_KEEP_VERSIONS = 128
DEFAULT_CACHE_PAGES = 32_768  # (~11,000 pages hold 100,000 accounts: a block's rewrite reads
# the pages it replaces, so the live ones should fit; beyond, memory is traded for reads)
DEFAULT_CACHE_PACKS = 1024  # decoded packs (~4 KB each) for cold reads of delta chains
DEFAULT_MAX_LOADED = 500_000
DEFAULT_MAX_DELTAS = 64  # delta pages over a full one before it is stored full again (at
# 100,000 accounts after 200 blocks, against 16: SC bytes a block 499 -> 288 KB, write
# amplification 15 -> 10, disk 3.2 -> 2.5 times the live state; a cold page read goes
# through twice as many deltas: first block after reopening 4.7 -> 9.0 s)
DEFAULT_DELTA_RATIO = 2.0  # ... or before their bytes reach this share of the full page's


_UNWRITTEN = object()  # an account a block's writes leave as it was
_PAST_PAGES = b"\xff" * (PAGE_KEY_BYTES + 1)  # after every page and pack key


def _block_key(prefix: bytes, number: int) -> bytes:
    return prefix + number.to_bytes(8, "big")


class StateCommitment:
    """Versioned, paged account and storage tries; ``root`` is the committed state root."""

    def __init__(
        self,
        path: str | Path,
        *,
        levels: int = DEFAULT_LEVELS,
        page_target: int = DEFAULT_TARGET,
        keep_versions: int | None = DEFAULT_KEEP_VERSIONS,
        read_only: bool = False,
        options: Options | None = None,
        cache_pages: int = DEFAULT_CACHE_PAGES,
        cache_packs: int = DEFAULT_CACHE_PACKS,
        max_loaded: int = DEFAULT_MAX_LOADED,
        write_buffer_bytes: int | None = None,
        max_deltas: int = DEFAULT_MAX_DELTAS,
        delta_ratio: float = DEFAULT_DELTA_RATIO,
        ss: StoredState | None = None,
        checkpoint_every: int = 1,
        top_depths: int = DEFAULT_TOP_DEPTHS,
        durable_every_block: bool = True,
    ) -> None:
        if keep_versions is not None and keep_versions < 2:
            raise ValueError(
                f"keep_versions must be at least 2 (or None, an archive), not {keep_versions}: "
                "recovery may roll back to the block before the last"
            )
        if checkpoint_every < 1 or (
            keep_versions is not None and checkpoint_every >= keep_versions
        ):
            raise ValueError(
                f"checkpoint_every must be at least 1 and under keep_versions ({keep_versions}), "
                f"not {checkpoint_every}: recovery starts from the last checkpoint's pages"
            )
        self.path = Path(path)
        self.ss = ss
        self.checkpoint_every, self.top_depths = checkpoint_every, top_depths
        # top pages (account trie, depth < top_depths) as of the last block written, if
        # written since the last checkpoint: their key -> the page, held here instead of on
        # disk (every block changes them all), never encoded (a checkpoint writes them
        # afresh); a version superseded is let go (holding each block's would keep each
        # block's replaced nodes alive until the checkpoint: ~200 MB at 100,000 accounts,
        # and a 0.3 s stall freeing them)
        self._volatile: dict[bytes, Page] = {}
        self._replaying = False  # in ``update(replay=True)``: State Storage is a block ahead
        self.cache_pages, self.cache_packs, self.max_loaded = cache_pages, cache_packs, max_loaded
        self.max_deltas, self.delta_ratio = max_deltas, delta_ratio
        self.loaded = 0  # entries loaded into the tries since they were last dropped
        self.levels, self.page_target, self.keep_versions = levels, page_target, keep_versions
        self.read_only = read_only
        # False: the blocks between checkpoints are written without the write-ahead log (a
        # crash loses them; recovery goes back to the last checkpoint anyway and replays
        # State Storage's write sets), and a checkpoint is made durable by flushing the
        # memtables, pages first, then their records: RocksDB's own flushes persist every
        # family as of one write (``atomic_flush``), but one asked for flushes one family,
        # so after a crash the pages are never behind their records (pages ahead of them
        # are orphans: ``_drop_orphans``)
        self.durable_every_block = durable_every_block
        if options is None:
            options = db_options(write_buffer_bytes=write_buffer_bytes)
        options.set_atomic_flush(not durable_every_block)  # (on the options given, too)
        self._db = open_rocksdb(
            self.path,
            FAMILIES,
            read_only=read_only,
            options=options,
            write_buffer_bytes=write_buffer_bytes,
        )
        self.closed = False
        open_stores.opened(self)
        self.last_batch = (0, 0)  # operations and bytes of the last block's batch
        self._pages = self._db.get_column_family("pages")
        self._meta = self._db.get_column_family("meta")
        self._handles = {name: self._db.get_column_family_handle(name) for name in FAMILIES}
        try:
            check_layout(self._meta, str(self.path), writable=not read_only)
        except StorageError:
            self.close()
            raise
        self._cache: OrderedDict[bytes, Page] = OrderedDict()  # LRU, trimmed between writes
        self._packs: OrderedDict[bytes, dict[tuple[int, int], bytes]] = OrderedDict()  # LRU
        self._next_seq = int.from_bytes(self._meta.get(META_NEXT_SEQ, b"\0"), "big")
        mark = self.last_committed()
        self.number = mark.number if mark else 0
        if mark is not None and not read_only:
            self._drop_orphans(mark.number)
        # the last block whose trie is wholly on disk (None: nothing written yet); blocks
        # after it are replayed from State Storage's write sets (``storage/committer.py``)
        stored = self._meta.get(META_CHECKPOINT)
        self.checkpoint: int | None = int.from_bytes(stored, "big") if stored else None
        if mark is not None and self.checkpoint is None:
            self.checkpoint = mark.number  # (a store of checkpoints before they were recorded)
        root_hash, self._root_ref = BLANK_ROOT_HASH, None
        if self.checkpoint is not None:
            root_hash, self._root_ref, _ = self._root_record(self.checkpoint)
        self.accounts = self._trie(self._root_ref, root_hash)
        self._pending: dict[bytes, Trie] = {}
        # each pending storage trie's pages as its account anchored them before the block
        # (None: not paged; then a small trie stays unpaged, and its leaf is not looked up)
        self._pending_sub: dict[bytes, PageRef | None] = {}
        self._dropped: list[PageRef] = []  # storage pages of accounts deleted since the write
        self.pages_written = 0
        self.bytes_written = 0
        self.splits = 0  # pages split off an oversized page, since open
        self.merges = 0  # underfull sibling pages merged away, since open

    def holds_one_block(self) -> bool:
        """Whether SC holds a single block and has never pruned (its first block alone)."""
        if self._meta.get(META_PRUNED) is not None:
            return False
        records = iter(self._meta.keys(from_key=ROOT_PREFIX))
        first, second = next(records, None), next(records, None)
        return (
            first is not None
            and first.startswith(ROOT_PREFIX)
            and not (second is not None and second.startswith(ROOT_PREFIX))
        )

    def reset(self) -> None:
        """Forget everything (its layout kept); reopen to see it. For a first block that
        State Storage never got: a crash between the two stores' writes of it."""
        batch = WriteBatch(raw_mode=True)
        batch.delete_range(b"", _PAST_PAGES, self._handles["pages"])
        for key, _ in self._meta.items():
            if key != META_LAYOUT:
                batch.delete(key, self._handles["meta"])
        write_synced(self._db, batch)

    def _drop_orphans(self, last: int) -> None:
        """Delete the pages (and packs) of versions after ``last``, SC's last block: none is
        reachable, and no block's garbage lists them. A kill between a checkpoint's two
        flushes (pages, then meta: RocksDB flushes one family at a time when asked) leaves
        them; recovery rolls SC back and replays without them, and pruning never would."""
        start = page_key(last + 1, 0, 0)
        if next(iter(self._pages.keys(from_key=start)), None) is None:
            return
        batch = WriteBatch(raw_mode=True)
        batch.delete_range(start, _PAST_PAGES, self._handles["pages"])
        write_synced(self._db, batch)

    def close(self) -> None:
        """Release the DB (column-family views and handles hold it open too); once."""
        if self.closed:
            return
        for family in (self._pages, self._meta):
            family.close()
        self._handles.clear()
        self._db.close()
        self.closed = True
        open_stores.closed(self)

    # -- reading ----------------------------------------------------------------------------
    def last_committed(self) -> CommitMark | None:
        data = self._meta.get(META_LAST)
        return None if data is None else CommitMark.decode(data, f"{self.path}: meta/last_block")

    @property
    def root(self) -> bytes:
        return self.accounts.root_hash

    def _root_record(self, number: int) -> tuple[bytes, PageRef | None, bool]:
        """(state root, root page, whether its top pages were held in memory only)."""
        key = _block_key(ROOT_PREFIX, number)
        data = self._meta.get(key)
        if data is None:
            raise StorageError(f"{self.path}: meta/root/{number}: no root kept for block {number}")
        return self._decode_root(data, number)

    def _decode_root(self, data: bytes, number: int) -> tuple[bytes, PageRef | None, bool]:
        try:
            root, ref, *flag = rlp.decode(unseal(data, f"meta/root/{number}"))
            return root, PageRef.from_raw(ref) if ref else None, flag == [IN_MEMORY]
        except (rlp.exceptions.DecodingError, ValueError) as err:
            raise StorageError(f"{self.path}: meta/root/{number}: corrupt: {err}") from err

    def last_checkpoint(self, at_most: int) -> int | None:
        """The newest block at or before ``at_most`` whose top pages are on disk."""
        for key, data in self._meta.items(
            from_key=_block_key(ROOT_PREFIX, at_most), backwards=True
        ):
            if not key.startswith(ROOT_PREFIX):
                return None
            number = int.from_bytes(key[len(ROOT_PREFIX) :], "big")
            if not self._decode_root(data, number)[2]:
                return number
        return None

    def _trie(self, ref: PageRef | None, root_hash: bytes) -> Trie:
        if ref is None or root_hash == BLANK_ROOT_HASH:
            return Trie(None, self._load)
        return Trie(Stub(root_hash, (0, ref, b""), ref.seq), self._load)

    def _page(self, depth: int, ref: PageRef) -> Page:
        return self._version(depth, ref.seq, ref.version, ref.digest, ref.pack)

    def _version(
        self, depth: int, seq: int, version: int, checksum: int, pack: int, keep: bool = True
    ) -> Page:
        """Page ``seq`` as of ``version`` (a delta page applied to the versions before it),
        each stored version checked against the digest its reader recorded; ``pack`` says
        which of the block's packs holds it (0: none, it has a record of its own). Cached if
        ``keep``: the versions a delta is read over are not (else a cold read of a chain of
        deltas would fill the cache with versions nothing reads again, evicting live pages),
        nor are their nodes built (only the version read last is used as nodes)."""
        key = page_key(version, depth, seq)
        page = self._cache.get(key)
        if page is not None:
            self._cache.move_to_end(key)
            return page
        held = None if pack else self._volatile.get(key)
        if held is not None:  # (in memory since it was written: no bytes to check)
            return held
        stored = pack_key(version, pack - 1) if pack else key
        data = self._packed(stored) if pack else self._pages.get(stored)
        if data is None:
            raise StorageError(
                f"{self.path}: pages/{describe_key(stored)}: {'pack' if pack else 'page'} is "
                f"missing (version {version} of sequence {seq}, depth {depth})"
            )
        try:
            if pack:
                data = unpack(data, stored, depth, seq)
            if digest(data) != checksum:
                raise PageError(
                    f"{describe_key(key)}: the page does not match the digest its parent "
                    "recorded (corrupt page or child reference)"
                )
            page = decode_page(
                data,
                stored,
                seq,
                lambda v, check, in_pack: self._version(depth, seq, v, check, in_pack, False),
                self._fetch,
                nodes=keep,
            )
        except PageError as err:
            raise StorageError(f"{self.path}: pages/{err}") from err
        if keep:
            self._cache[key] = page
        return page

    def _packed(self, key: bytes) -> dict[tuple[int, int], bytes] | None:
        """The pack under ``key``, decoded; the last ``cache_packs`` read are kept decoded. A
        chain of deltas read cold takes each version from another block's pack, and the pages
        read next (in path order) take theirs from the same packs: without the cache, each
        pack would be read and decoded again for every page it holds (most of a cold block's
        time). Packs are never rewritten, only deleted (``_free_packs`` drops them here)."""
        items = self._packs.get(key)
        if items is not None:
            self._packs.move_to_end(key)
            return items
        data = self._pages.get(key)
        if data is None:
            return None
        try:
            items = decode_pack(data, key)
        except PageError as err:
            raise StorageError(f"{self.path}: pages/{err}") from err
        self._packs[key] = items
        if len(self._packs) > self.cache_packs:
            self._packs.popitem(last=False)
        return items

    def _trim(self) -> None:
        """Between writes: the page cache back to its bound, and the tries dropped (to be
        loaded again as needed) once they hold more than ``max_loaded`` loaded entries."""
        while len(self._cache) > self.cache_pages:
            self._cache.popitem(last=False)
        if self.loaded > self.max_loaded and not self._pending:
            self._forget()

    def _forget(self, replay: bool = False) -> None:
        """Drop the loaded tries, and the page cache, whose pages hold their nodes (the pages
        the writer built hold the tries' own, and through them all the tries loaded: kept,
        the tries would come back whole at the next load); the packs stay (bytes only),
        except after a replay, whose leaves may hold records read unchecked."""
        self.accounts = self._trie(self._root_ref, self.accounts.root_hash)
        self.loaded = 0
        self._cache.clear()
        if replay:
            self._packs.clear()

    def _load(self, stub: Stub) -> Node:
        depth, ref, path = stub.locator
        node = self._node_at(depth, ref, path)
        self.loaded += 1
        if node.ref != stub.stub_ref:
            raise StorageError(
                f"{self.path}: pages/{describe_key(ref.key(depth))}: entry "
                f"{path.hex() or 'root'} hashes to {_show(node.ref)}, its parent recorded "
                f"{_show(stub.stub_ref)}"
            )
        return node

    def _node_at(self, depth: int, ref: PageRef, path: bytes) -> Node:
        """The node of the entry at ``path`` in page ``ref``."""
        entry = self._page(depth, ref).entry(path)
        if entry is None:
            key = describe_key(ref.key(depth))
            raise StorageError(f"{self.path}: pages/{key}: no entry at path {path.hex()}")
        return entry.node

    def storage_trie(
        self, address: bytes, accounts: Trie | None = None, check: bool = True
    ) -> Trie:
        """The storage trie of ``address`` in ``accounts`` (the latest, unless told): its root
        page's, or rebuilt from State Storage's slots if it is not paged, and then checked
        against the storage root the account records unless ``check`` is off."""
        return self._storage_of(address, (accounts or self.accounts).leaf(keccak(address)), check)

    def _storage_of(
        self,
        address: bytes,
        leaf: Leaf | None,
        check: bool,
        stored: Mapping[bytes, Iterable[tuple[bytes, bytes]]] | None = None,
    ) -> Trie:
        """``storage_trie`` given the account's leaf (and ``stored``: State Storage's slots
        of accounts read already, maybe this one's)."""
        if leaf is None:
            return Trie(None, self._load)
        if leaf.sub is not None and self._replaying:
            # (a replay's records are State Storage's, a block or more ahead: their storage
            # root may be a later block's, while the pages hold the trie as of the checkpoint
            # the replay starts from, each checked against its parent's digest)
            return Trie(self._node_at(0, leaf.sub, b""), self._load)
        storage_root = decode_account(leaf.value).storage_root
        if leaf.sub is not None or storage_root == BLANK_ROOT_HASH:
            return self._trie(leaf.sub, storage_root)
        if self.ss is None:
            raise StorageError(
                f"{self.path}: the storage of 0x{address.hex()} is not paged, and this State "
                "Commitment was opened without State Storage to read its slots from"
            )
        slots = (
            stored[address]
            if stored is not None and address in stored
            else self.ss.stored_slots([address])[address]
        )
        # (the stored bytes hashed as they are: a value stored with a leading zero would
        # give another root, refused below)
        trie = Trie.build(((keccak(slot), encode_raw(value)) for slot, value in slots), self._load)
        if check and trie.root_hash != storage_root:
            raise StorageError(
                f"{self.path}: the slots State Storage holds for 0x{address.hex()} hash to "
                f"0x{trie.root_hash.hex()}, and its account records 0x{storage_root.hex()} "
                "(State Storage keeps only the latest slots: a proof at an older block needs "
                "storage unchanged since)"
            )
        return trie

    def at(self, number: int) -> Trie:
        """The account trie as committed at block ``number`` (if still kept)."""
        root, ref, in_memory = self._root_record(number)
        if in_memory and (ref is None or ref.key(0) not in self._volatile):
            raise StorageError(
                f"{self.path}: block {number}: its top pages were held in memory only (SC "
                f"checkpoints them every {self.checkpoint_every} blocks) and are gone: old "
                "roots are readable at checkpoints and at the last block written"
            )
        return self._trie(ref, root)

    def root_at(self, number: int) -> bytes:
        return self._root_record(number)[0]

    def account_proof(self, number: int, address: bytes) -> tuple[Any, ...]:
        return self.at(number).proof(keccak(address))

    def storage_proof(self, number: int, address: bytes, slot: int) -> tuple[Any, ...]:
        accounts = self.at(number)
        return self.storage_trie(address, accounts).proof(keccak(slot.to_bytes(32, "big")))

    # -- committing -------------------------------------------------------------------------
    def update(
        self, writes: Mapping[StateKey, Any], wiped: Iterable[bytes], replay: bool = False
    ) -> tuple[dict[bytes, bytes | None], bytes]:
        """Apply changes in memory: (the account record of every changed account, None for a
        deleted one, exactly as State Storage keeps it; the new state root).

        State Storage is read as of the block before (its slots of unpaged storage tries);
        ``replay``: it holds this block already (recovery rolling SC forward). Its slots
        are then this block's, so a rebuilt storage trie is not checked against the storage
        root before the block: the writes, applied again, leave it the same, and recovery
        checks the state root the replay gives against the one State Storage recorded; the
        records of hashed account leaves are this block's too, and are not checked either
        (nor is their storage root used: a paged storage trie is read from its pages)."""
        self._replaying = replay
        try:
            return self._update(writes, set(wiped), replay)
        finally:
            self._replaying = False

    def _update(
        self, writes: Mapping[StateKey, Any], wiped: set[bytes], replay: bool
    ) -> tuple[dict[bytes, bytes | None], bytes]:
        slots: dict[bytes, list[tuple[int, int]]] = {address: [] for address in wiped}
        for key, value in writes.items():
            if key[0] == SLOT:
                slots.setdefault(key[1], []).append((key[2], value or 0))
        accounts = self.accounts
        # each account's leaf before the block's puts, walked to once, in path order: pages
        # not cached are then read in the order a block's packs hold them (``_packed``)
        leaves = {
            address: (key, accounts.leaf(key))
            for key, address in sorted(
                (keccak(address), address)
                for address in {key[1] for key in writes if key[0] == ACCT} | set(slots)
            )
        }
        # (what the block reads of State Storage, read in batches: the changed accounts'
        # records, and the slots of the storage tries it may rebuild from State Storage)
        self._fetch_many(leaf for _, leaf in leaves.values())
        rebuilt = [
            address
            for address in slots
            if address not in wiped
            and address not in self._pending
            and (leaf := leaves[address][1]) is not None
            and leaf.sub is None
        ]
        stored = self.ss.stored_slots(rebuilt) if self.ss is not None and rebuilt else None
        storage_roots = {}
        for address, changes in slots.items():
            leaf = leaves[address][1]
            self._pending_sub.setdefault(address, None if leaf is None else leaf.sub)
            if address in wiped:
                trie = Trie(None, self._load)
            else:
                trie = self._pending.get(address) or self._storage_of(
                    address, leaf, not replay, stored
                )
            # (the last write of a slot wins, as the block's order had it)
            last = {keccak(slot.to_bytes(32, "big")): value for slot, value in changes}
            trie.put_many(
                (hashed, encode_raw(int_bytes(value)) if value else b"", None)
                for hashed, value in last.items()
            )
            self._pending[address] = trie
            storage_roots[address] = trie.root_hash
        records: dict[bytes, bytes | None] = {}
        puts: list[tuple[bytes, bytes, Any]] = []  # (the leaves read first: then put at once)
        for address, (key, leaf) in leaves.items():
            fields = writes.get((ACCT, address), _UNWRITTEN)
            current = None  # (read only if needed: a hashed leaf fetches its record for it)
            if leaf is not None and (
                fields is _UNWRITTEN or (fields is not None and address not in storage_roots)
            ):
                current = decode_account(leaf.value)
            if fields is _UNWRITTEN:
                fields = current
            if fields is None:
                if leaf is not None:
                    puts.append((key, b"", None))
                    records[address] = None
                    if leaf.sub is not None:
                        self._dropped.append(leaf.sub)
                continue  # (storage of an account that does not exist anchors nothing)
            storage_root = storage_roots.get(address) or (
                current.storage_root if current else BLANK_ROOT_HASH
            )
            record = encode_account(fields.nonce, fields.balance, storage_root, fields.code_hash)
            puts.append((key, record, leaf.sub if leaf else None))
            records[address] = record
        accounts.put_many(puts)
        return records, accounts.root_hash

    def write(
        self, number: int, checkpoint: bool = False, roots: Mapping[int, bytes] | None = None
    ) -> bytes:
        """Write the pages changed since the last write, and the root record of ``number``.

        The account trie's top pages (``top_depths`` deep: every block changes them all) are
        held in memory, not written, except at a checkpoint: every ``checkpoint_every``
        blocks, or when told; then every top page held in memory is written in full.
        ``roots``: earlier blocks' state roots (a replay's), recorded for those of them
        with no root record (lost in a crash: see ``durable_every_block``), as blocks whose
        top pages were held in memory: their roots readable, their proofs not."""
        if self.read_only:
            raise StorageError(f"{self.path}: opened read-only")
        checkpoint = (
            checkpoint
            or self.checkpoint is None
            or number - self.checkpoint >= self.checkpoint_every
        )
        batch = WriteBatch(raw_mode=True)
        writer = _PageWriter(self, number, batch, checkpoint)
        accounts = self.accounts
        for ref in self._dropped:
            writer.drop(0, ref)
        for address, trie in sorted(self._pending.items()):
            # small storage is State Storage's alone (rebuilt from its slots when needed);
            # once paged it stays paged: parts of it may not be loaded
            if self._pending_sub[address] is None and self.ss is not None and self._small(trie):
                continue
            leaf = accounts.leaf(keccak(address))
            if leaf is None:  # storage of a deleted account is dropped with it
                continue
            leaf.sub = writer.flush_root(trie.root, leaf.sub)
        # account records are State Storage's: with it, the account leaves keep hashes only
        self._root_ref = writer.flush_root(
            accounts.root, self._root_ref, self.ss is not None, self.top_depths
        )
        writer.write_packs()
        root = accounts.root_hash
        meta = self._handles["meta"]
        ref_raw = self._root_ref.raw() if self._root_ref else b""
        # (a root page on disk has every top page below it on disk: a checkpoint wrote them)
        held = (
            not checkpoint
            and self._root_ref is not None
            and self._root_ref.stored_key(0) in self._volatile
        )
        record = [root, ref_raw, IN_MEMORY] if held else [root, ref_raw]
        batch.put(_block_key(ROOT_PREFIX, number), seal(rlp.encode(record)), meta)
        for block, state_root in (roots or {}).items():
            if block != number and self._meta.get(_block_key(ROOT_PREFIX, block)) is None:
                lost = seal(rlp.encode([state_root, b"", IN_MEMORY]))
                batch.put(_block_key(ROOT_PREFIX, block), lost, meta)
        # (versions held in memory were never on disk: nothing to prune; a checkpoint
        # supersedes those still held)
        garbage = [key for key in writer.garbage if key not in self._volatile]
        if self.keep_versions is not None and self.checkpoint is not None:
            # A version written after the last checkpoint and replaced now was read by no
            # root kept (proofs are read at checkpoints and at the last block; recovery
            # rolls back to a checkpoint): deleted now, not a window later. (``_prune`` frees
            # in the same batch only versions at or before the last checkpoint, so no pack
            # count is read twice before the batch lands.)
            unread = self.checkpoint.to_bytes(8, "big")
            self._delete_garbage([key for key in garbage if key[:8] > unread], batch)
            garbage = [key for key in garbage if key[:8] <= unread]
        if number == self.number:  # a checkpoint of the block last written: adds to its garbage
            garbage_key = _block_key(GARBAGE_PREFIX, number)
            earlier = self._meta.get(garbage_key)
            if earlier is not None:
                garbage = rlp.decode(self._unseal(earlier, f"meta/garbage/{number}")) + garbage
        batch.put(_block_key(GARBAGE_PREFIX, number), seal(rlp.encode(garbage)), meta)
        if checkpoint:
            batch.put(META_CHECKPOINT, number.to_bytes(8, "big"), meta)
        batch.put(META_NEXT_SEQ, self._next_seq.to_bytes(5, "big"), meta)
        batch.put(META_LAST, CommitMark(number, root).encode(), meta)
        if self.keep_versions is not None:
            self._prune(number, batch)
        self.last_batch = (batch.len(), batch.size_in_bytes())
        if self.durable_every_block:
            write_synced(self._db, batch)
        else:
            write_unlogged(self._db, batch)
            if checkpoint:  # (pages first: a page is on disk before any record naming it)
                flush_all(self._db, FAMILIES)
        if checkpoint:  # every top page held in memory is superseded by one on disk now
            self._volatile.clear()
            self.checkpoint = number
        for key in writer.garbage:  # replaced or unreachable: read again only for old roots
            self._cache.pop(key, None)
        self.pages_written += len(writer.written)
        self.bytes_written += sum(writer.written.values())
        self.number = number
        self._pending = {}
        self._pending_sub = {}
        self._dropped = []
        self._trim()
        return root

    def checkpoint_now(self) -> None:
        """Write the top pages held in memory as of the last block written (a clean
        shutdown), unless that block is a checkpoint or changes since are pending."""
        if (
            self.read_only
            or self.checkpoint in (None, self.number)
            or self._pending
            or self._dropped
            or self.accounts.root_hash != self.root_at(self.number)
        ):
            return
        self.write(self.number, checkpoint=True)

    def _small(self, trie: Trie) -> bool:
        """Whether a storage trie (every node loaded) is small enough not to be paged."""
        return trie.root is None or unpaged_size(trie.root) <= self.page_target // 8

    def _fetch(self, leaf: Leaf) -> bytes:
        """The record of a hashed account leaf, from State Storage, checked against the
        leaf's hash (except in a replay, when State Storage is a block ahead: the records
        it gives are then this block's, which the replay writes anyway)."""
        assert leaf.key is not None, "a hashed leaf without its key"
        if self.ss is None:
            raise StorageError(
                f"{self.path}: account leaf 0x{leaf.key.hex()} keeps only its hash, and this State "
                "Commitment was opened without State Storage to read its record from"
            )
        return self._checked(leaf, self.ss.record_by_hash(leaf.key))

    def _fetch_many(self, leaves: Iterable[Leaf | None]) -> None:
        """``_fetch`` for the hashed leaves among ``leaves`` still without a value, their
        records read from State Storage in one batch (a block changes thousands)."""
        unfetched = [leaf for leaf in leaves if leaf is not None and not leaf.fetched]
        if self.ss is None or not unfetched:
            return
        records = self.ss.records_by_hash([leaf.key for leaf in unfetched])  # type: ignore[misc]
        for leaf, record in zip(unfetched, records, strict=True):
            leaf.supply(self._checked(leaf, record))

    def _checked(self, leaf: Leaf, record: bytes | None) -> bytes:
        """``record``, State Storage's of a hashed leaf, checked against the leaf's hash."""
        key = "0x" + leaf.key.hex()  # type: ignore[union-attr]
        if record is None and self._replaying:
            # deleted by a block the replay holds, and so deleted by it too: this leaf only
            # moves on its way out (a survivor would give a root recovery refuses)
            return encode_account(0, 0, BLANK_ROOT_HASH, EMPTY_SHA3)
        if record is None:
            raise StorageError(f"{self.path}: State Storage holds no account for leaf {key}")
        if not self._replaying and keccak(encode_raw([hp_encode(leaf.path, True), record])) != (
            leaf.ref
        ):
            raise StorageError(
                f"{self.path}: State Storage's record of account leaf {key} does not hash to the "
                "leaf (State Storage keeps only the latest records: a proof at an older block "
                "needs the account unchanged since)"
            )
        return record

    def commit(
        self,
        number: int,
        writes: Mapping[StateKey, Any],
        wiped: Iterable[bytes],
        replay: bool = False,
        roots: Mapping[int, bytes] | None = None,
    ) -> bytes:
        """``update`` then ``write``: one block, its state root. A replay is written as a
        checkpoint, and the loaded tries and pages are dropped after it: their leaves may
        hold records read unchecked. ``roots``: as ``write`` takes them."""
        self.update(writes, wiped, replay)
        root = self.write(number, checkpoint=replay, roots=roots)
        if replay:
            self._forget(replay=True)
        return root

    def roll_back(self, number: int, roots_through: int | None = None) -> None:
        """Forget blocks after ``number``, a checkpoint (their pages; their root records
        after ``roots_through``, if given: blocks to be replayed keep their roots on record);
        reopen to see it."""
        last = self.last_committed()
        if last is None or (last.number <= number and self.checkpoint == last.number):
            return
        if self._root_record(number)[2]:
            raise StorageError(f"{self.path}: cannot roll back to block {number}: no checkpoint")
        batch = WriteBatch(raw_mode=True)
        pages, meta = self._handles["pages"], self._handles["meta"]
        after, end = number + 1, last.number + 1
        batch.delete_range(page_key(after, 0, 0), page_key(end, 0, 0), pages)
        # (packs of blocks kept that pruning after ``number`` freed stay freed, as it recorded)
        for prefix in (GARBAGE_PREFIX, PACKS_PREFIX):
            batch.delete_range(_block_key(prefix, after), _block_key(prefix, end), meta)
        roots_after = max(number, roots_through or number) + 1
        if roots_after < end:
            batch.delete_range(
                _block_key(ROOT_PREFIX, roots_after), _block_key(ROOT_PREFIX, end), meta
            )
        batch.put(META_LAST, CommitMark(number, self.root_at(number)).encode(), meta)
        batch.put(META_CHECKPOINT, number.to_bytes(8, "big"), meta)
        write_synced(self._db, batch)

    def _prune(self, number: int, batch: WriteBatch) -> None:
        """Drop what only blocks older than the last ``keep_versions`` could read: older
        roots, and the pages no kept root reads. Pages are read for proofs only at
        checkpoints and at the last block written (the top pages of the blocks between were
        held in memory, see ``at``), and recovery rolls back to a checkpoint kept, so the
        pages replaced at or before the oldest checkpoint kept (its garbage and that of the
        blocks before it) are read by none: a retained checkpoint's top pages go when its own
        root leaves the window, not a checkpoint interval later. Records are read from where
        the last pruning stopped (``meta/pruned_through``, ``meta/freed_through``) by a seek,
        so the tombstones of earlier ones are never rescanned; a block's pruning meets a few
        records of each kind (block numbers skip: a chain's genesis may be block 0 and its
        next block 19,932,703, so records are iterated, not numbers)."""
        oldest_kept = number - self.keep_versions + 1
        if oldest_kept <= 0:
            return
        meta = self._handles["meta"]
        done = self._meta.get(META_PRUNED)
        start = 0 if done is None else int.from_bytes(done, "big") + 1
        freed_done = self._meta.get(META_FREED)
        first_free = start if freed_done is None else int.from_bytes(freed_done, "big") + 1
        free_through = self._oldest_checkpoint(oldest_kept, number)
        garbage: list[bytes] = []  # (freed together: a pack's count is read once a batch)
        for block, key, data in self._records(GARBAGE_PREFIX, first_free, free_through + 1):
            garbage += rlp.decode(self._unseal(data, f"meta/garbage/{block}"))
            batch.delete(key, meta)
        self._delete_garbage(garbage, batch)
        for _, key, _ in self._records(ROOT_PREFIX, max(0, start - 1), oldest_kept):
            batch.delete(key, meta)
        batch.put(META_PRUNED, oldest_kept.to_bytes(8, "big"), meta)
        batch.put(META_FREED, max(free_through, first_free - 1).to_bytes(8, "big"), meta)

    def _delete_garbage(self, keys: list[bytes], batch: WriteBatch) -> None:
        """Delete the page versions ``keys`` names: a page's record, or its version's share
        of a pack (listed once per version), the pack deleted once none of it is kept (once a
        batch: the counts are read from the store, not the batch)."""
        freed: dict[int, Counter[int]] = {}  # block -> pack number -> versions freed in it
        for page in keys:
            if page[8] == PACK_DEPTH:
                freed.setdefault(int.from_bytes(page[:8], "big"), Counter())[
                    int.from_bytes(page[9:], "big")
                ] += 1
                continue
            batch.delete(page, self._handles["pages"])
            self._cache.pop(page, None)
        for block, packs in sorted(freed.items()):
            self._free_packs(block, packs, batch)

    def _oldest_checkpoint(self, oldest_kept: int, number: int) -> int:
        """The oldest block from ``oldest_kept`` on, before ``number``, whose top pages are on
        disk (a few root records read: checkpoints are ``checkpoint_every`` apart); else
        ``oldest_kept`` (pruning as if every kept block were read)."""
        for block, _, data in self._records(ROOT_PREFIX, oldest_kept, number):
            if not self._decode_root(data, block)[2]:
                return block
        return oldest_kept

    def _free_packs(self, block: int, freed: Counter[int], batch: WriteBatch) -> None:
        """Count versions freed in ``block``'s packs; a pack none of whose versions a kept
        root reaches is deleted (and the count record once every pack is)."""
        key = _block_key(PACKS_PREFIX, block)
        data = self._meta.get(key)
        if data is None:
            raise StorageError(f"{self.path}: meta/packs/{block}: no pack counts for block {block}")
        live = [
            int.from_bytes(n, "big") for n in rlp.decode(self._unseal(data, f"meta/packs/{block}"))
        ]
        for number, count in freed.items():
            if number >= len(live) or live[number] < count:
                raise StorageError(
                    f"{self.path}: meta/packs/{block}: pack {number} frees {count} versions "
                    "it does not hold"
                )
            live[number] -= count
            if live[number] == 0:
                batch.delete(pack_key(block, number), self._handles["pages"])
                self._packs.pop(pack_key(block, number), None)
        if any(live):
            batch.put(key, seal(rlp.encode(live)), self._handles["meta"])
        else:
            batch.delete(key, self._handles["meta"])

    def _records(self, prefix: bytes, first: int, end: int) -> Iterator[tuple[int, bytes, bytes]]:
        """(block, key, value) of the ``prefix`` records of blocks ``first`` to ``end - 1``."""
        for key, data in self._meta.items(from_key=_block_key(prefix, first)):
            if not key.startswith(prefix):
                return
            block = int.from_bytes(key[len(prefix) :], "big")
            if block >= end:
                return
            yield block, key, data

    def _unseal(self, data: bytes, where: str) -> bytes:
        try:
            return unseal(data, where)
        except PageError as err:
            raise StorageError(f"{self.path}: {err}") from err

    def new_seq(self) -> int:
        self._next_seq += 1
        return self._next_seq - 1

    def flush(self) -> None:
        """Every column family's memtable to SST files."""
        flush_all(self._db, FAMILIES)

    def compact(self) -> None:
        """Every column family flushed and compacted whole (``compact_all``)."""
        compact_all(self._db, FAMILIES)


Encoded = list[tuple[Entry, bytes]]  # entries with their encodings, in path order
Written = tuple[PageRef, Encoded | None, int]  # a page; its entries and size if written now


def _show(ref: Any) -> str:
    return "0x" + ref.hex() if isinstance(ref, bytes) else repr(ref)


class _PageWriter:
    """Writes one block's dirty pages of any trie into the block's batch."""

    def __init__(
        self, sc: StateCommitment, number: int, batch: WriteBatch, checkpoint: bool
    ) -> None:
        self.sc, self.number, self.batch, self.checkpoint = sc, number, batch, checkpoint
        self.top = 0  # page depths of the trie being written held in memory between checkpoints
        self.pages_cf = sc._handles["pages"]
        self.garbage: list[bytes] = []
        self.written: dict[bytes, int] = {}  # page key -> bytes
        self.packs: list[list[tuple[int, int, bytes]]] = []  # the block's (depth, seq, delta)
        self.pack_bytes = 0  # in the last pack
        self.hashed = False  # whether the trie being written keeps its leaves by hash

    def flush_root(
        self, root: Node | None, old: PageRef | None, hashed: bool = False, top: int = 0
    ) -> PageRef | None:
        """Write what changed under a trie root; the reference of its root page. ``hashed``:
        the trie's leaves are written by hash alone (their values are kept elsewhere);
        ``top``: its pages this shallow are held in memory unless at a checkpoint."""
        self.hashed, self.top = hashed, top
        if root is None:
            if old is not None:
                self.drop(0, old)
            return None
        refs = self.flush_children(0, [b""], [root], [old] if old else [])
        if isinstance(root, Stub):  # unloaded, its page rewritten (a checkpoint): located
            # afresh, as ``write_pages`` does for the stubs below (its page may have been a
            # version held in memory, which the checkpoint replaced by one on disk)
            root.locator, root.origin = (0, refs[0], b""), refs[0].seq
        return refs[0]

    def flush_children(
        self,
        depth: int,
        paths: list[bytes],
        nodes: list[Node],
        old_refs: list[PageRef],
        stubs: list[tuple[bytes, Stub]] | None = None,
    ) -> list[PageRef]:
        """Pages at ``depth`` for the subtrees below one parent entry (their root nodes at
        ``paths``), reusing clean ones; the unloaded children of the pages written are added
        to ``stubs``."""
        if not old_refs:
            if not paths:
                return []  # a leaf entry (most of them): nothing below
            return self._merge(depth, self.write_pages(depth, paths, nodes, None, None, stubs))
        # The children come in path order (a trie walked depth first; no child's path is a
        # prefix of another's), and each old page holds a key range: page i takes the
        # children from its start to the next page's (the first also those before it). A
        # page is clean if it gets exactly its own children back, every one stored in it
        # and unchanged (``origin``: the page a node is stored in; None for a new node).
        # (Slices and ``list.count`` keep the ~200 children of a parent at C speed.)
        origins = [node.origin for node in nodes]
        bounds = [0, *(bisect.bisect_left(paths, ref.start) for ref in old_refs[1:])]
        bounds.append(len(paths))
        pages: list[Written] = []
        for index, ref in enumerate(old_refs):
            low, high = bounds[index], bounds[index + 1]
            if low == high:
                self.drop(depth, ref)
                continue
            if (
                high - low == ref.count
                and origins[low:high].count(ref.seq) == ref.count
                and not self.stale(depth, ref)
            ):
                pages.append((ref, None, 0))
                continue
            page = self.sc._page(depth, ref)
            pages.extend(
                self.write_pages(depth, paths[low:high], nodes[low:high], ref, page, stubs)
            )
        return self._merge(depth, pages)

    def stale(self, depth: int, ref: PageRef | None) -> bool:
        """A top page held in memory, at a checkpoint: it must be written (in full)."""
        return (
            self.checkpoint
            and ref is not None
            and depth < self.top
            and ref.stored_key(depth) in self.sc._volatile
        )

    def held(self, depth: int) -> bool:
        """Whether a page written now at ``depth`` is held in memory instead of on disk."""
        return not self.checkpoint and depth < self.top

    def drop(self, depth: int, ref: PageRef) -> None:
        """A page the new version no longer reaches: it and every page below it are garbage.

        (Storage pages anchored by its leaves are not: accounts keep them when they move.)
        """
        page = self.sc._page(depth, ref)
        self.sc._cache.pop(ref.key(depth), None)
        if self.sc._volatile.pop(ref.key(depth), None) is None:  # (else never on disk)
            self.garbage.extend(page.chain)
        for entry in page.entries:
            for child in entry.refs:
                self.drop(depth + 1, child)

    def write_pages(
        self,
        depth: int,
        paths: list[bytes],
        nodes: list[Node],
        before: PageRef | None,
        old: Page | None,
        stubs: list[tuple[bytes, Stub]] | None = None,
    ) -> list[Written]:
        """Entries for the subtrees at ``paths`` (their own child pages written first), in
        path order, split by size; as a
        delta page over ``old`` (the page as of ``before``) when the page keeps its entries
        in one page and the deltas since its full base stay under ``delta_ratio`` times it.
        Nodes not loaded are added to ``stubs`` (their page is written now: they must be
        located afresh)."""
        seq = None if before is None else before.seq
        stale = self.stale(depth, before)  # (then every entry is written again: its child
        # pages may be held in memory too)
        if before is not None:  # superseded: the cache keeps the versions the writer reads
            self.sc._cache.pop(before.key(depth), None)
        removed: list[Entry] = []
        same_paths = old is not None and paths == old.paths  # (the usual case)
        if old is not None and not same_paths:  # entries gone take their child pages along
            kept = set(paths)
            removed = [entry for entry in old.entries if entry.path not in kept]
            for entry in removed:
                for child in entry.refs:
                    self.drop(depth + 1, child)
        held = self.held(depth)
        if same_paths and not stale:  # only the nodes that are not the entry's (C speed)
            entries: list[Entry] = list(old.entries)
            todo: Iterable[int] = compress(range(len(paths)), map(is_not, old.nodes, nodes))
        else:
            entries = [None] * len(paths)  # type: ignore[list-item]  # (each set below)
            todo = range(len(paths))
        changed: list[tuple[Entry, Entry | None]] = []  # (an entry written now, its old one)
        for index in todo:
            path, node = paths[index], nodes[index]
            if same_paths:
                old_entry = old.entries[index]
            else:
                old_entry = old.entry(path) if old is not None else None
            if isinstance(node, Stub):
                if stubs is not None:
                    stubs.append((path, node))
                if old_entry is not None and not stale and old_entry.node.ref == node.stub_ref:
                    # Unloaded, so unchanged since it was located: the old entry, as is.
                    # (After a reopen or ``_forget`` most of a dirty page's entries are
                    # stubs; loading each to find it unchanged cost a second a block.)
                    entries[index] = old_entry
                    continue
                node = self.sc._load(node)
            if old_entry is not None and old_entry.node is node and not stale:
                entries[index] = old_entry  # unchanged, with its encoding
                continue
            entry = Entry(path, node)
            node_raw, below_paths, below_nodes = entry_parts(entry, self.sc.levels, self.hashed)
            moved: list[tuple[bytes, Stub]] = []
            old_refs = old_entry.refs if old_entry else []
            entry.refs = self.flush_children(depth + 1, below_paths, below_nodes, old_refs, moved)
            if not held:
                encode_entry(entry, node_raw)
            entries[index] = entry
            changed.append((entry, old_entry))
            for child_path, child in moved:
                # An unloaded subtree shared with the entry's previous version whose page was
                # rewritten, split or merged just now: located afresh (else it would name a
                # version that pruning deletes). (Those in pages kept are where they were.)
                ref = entry.ref_for(child_path)
                child.locator, child.origin = (depth + 1, ref, child_path), ref.seq
        if held:  # one page until the checkpoint, which sizes and splits it
            # (a version held in memory is let go; one on disk is garbage from now)
            if old is not None and self.sc._volatile.pop(before.key(depth), None) is None:
                self.garbage.extend(old.chain)
            page_seq = seq if seq is not None else self.sc.new_seq()
            return [(self._hold(Page(depth, entries), paths, page_seq), None, 0)]
        if old is not None and not stale:  # the old page's bytes, less what changed
            size = old.size - sum(len(encode_entry(entry)) for entry in removed)
            for entry, was in changed:
                size += len(entry.encoded) - (0 if was is None else len(encode_entry(was)))
        else:
            size = sum(len(encode_entry(entry)) for entry in entries)
        if (
            before is not None
            and old is not None
            and (size <= self.sc.page_target or len(entries) == 1)  # (one page: not split)
            and len(old.chain) <= self.sc.max_deltas
            # (a page that lost entries is stored full: a neighbour written now may take it in,
            # or it a small neighbour; see ``_merge``)
            and len(entries) >= len(old.entries)
            and not stale
        ):
            data = encode_delta(depth, before, [entry.path for entry in removed], changed)
            if old.delta_bytes + len(data) < self.sc.delta_ratio * size:
                page = Page(depth, entries, (b"", *old.chain), old.delta_bytes + len(data))
                page.paths, page.size = paths, size
                if same_paths:  # (the nodes as the old page's, but for those changed)
                    page.nodes = list(old.nodes)
                    for entry, _ in changed:
                        page.nodes[bisect.bisect_left(paths, entry.path)] = entry.node
                fresh = [entry for entry, _ in changed]
                return [(self._store(page, data, before.seq, packed=True, fresh=fresh), None, 0)]
        encoded = [encode_entry(entry) for entry in entries]
        chunks: list[list[tuple[Entry, bytes]]] = [[]]
        sizes = [0]
        for entry, data in zip(entries, encoded, strict=True):
            if chunks[-1] and sizes[-1] + len(data) > self.sc.page_target:
                chunks.append([])
                sizes.append(0)
            chunks[-1].append((entry, data))
            sizes[-1] += len(data)
        if old is not None:  # stored full: the versions it was read from are garbage
            self.garbage.extend(old.chain)
        self.sc.splits += len(chunks) - 1
        out = []
        for index, chunk in enumerate(chunks):
            page_seq = seq if index == 0 and seq is not None else self.sc.new_seq()
            out.append((self._put(depth, chunk, page_seq), chunk, sizes[index]))
        return out

    def _merge(self, depth: int, pages: list[Written]) -> list[PageRef]:
        """Sibling pages in path order; a page written in this block under a quarter of the
        target merges with a neighbour also written now, if together they fit the target
        (kept pages are not touched)."""
        pages.sort(key=lambda item: item[0].start)
        merged: list[Written] = []
        for ref, entries, size in pages:
            last = merged[-1] if merged else None
            if (
                last is not None
                and last[1] is not None
                and entries is not None
                and min(last[2], size) < self.sc.page_target // 4
                and last[2] + size <= self.sc.page_target
            ):
                merged.pop()
                self.sc.merges += 1
                key = ref.key(depth)  # (a page held in memory is not merged: ``_hold``)
                self.batch.delete(key, self.pages_cf)
                self.sc._cache.pop(key, None)
                self.written.pop(key, None)
                combined = last[1] + entries
                merged.append((self._put(depth, combined, last[0].seq), combined, last[2] + size))
            else:
                merged.append((ref, entries, size))
        return [ref for ref, _, _ in merged]

    def _put(self, depth: int, encoded: Encoded, seq: int) -> PageRef:
        """A full page of ``encoded`` entries."""
        entries = [entry for entry, _ in encoded]
        data = encode_page(depth, [data for _, data in encoded])
        return self._store(Page(depth, entries, (b"",)), data, seq)

    def _store(
        self,
        page: Page,
        data: bytes,
        seq: int,
        packed: bool = False,
        fresh: list[Entry] | None = None,
    ) -> PageRef:
        """Store ``data`` (``page`` full, or a delta: ``packed``) as this block's version of
        ``seq``; ``page.chain`` starts with a placeholder for its own key. ``fresh``: the
        entries new in it, if not all (the others are stored in it already)."""
        entries = page.entries
        pack = self._pack(page.depth, seq, data) if packed else 0
        ref = PageRef(
            entries[0].path, entries[-1].path, self.number, seq, len(entries), digest(data), pack
        )
        stored = ref.stored_key(page.depth)
        page.chain = (stored, *page.chain[1:])
        if not packed:
            self.batch.put(stored, data, self.pages_cf)
            self.written[stored] = len(data)
        return self._cached(page, ref, page.entries if fresh is None else fresh)

    def _hold(self, page: Page, paths: list[bytes], seq: int) -> PageRef:
        """Hold ``page`` in memory as this block's version of ``seq``, unencoded: its
        reference records no digest (it has no bytes until a checkpoint writes it)."""
        entries = page.entries
        ref = PageRef(entries[0].path, entries[-1].path, self.number, seq, len(entries), 0)
        key = ref.key(page.depth)
        page.chain, page.paths = (key,), paths
        self.sc._volatile[key] = page
        return self._cached(page, ref, page.entries)

    def _cached(self, page: Page, ref: PageRef, fresh: list[Entry]) -> PageRef:
        """The page cached; its ``fresh`` entries' nodes marked as stored in it."""
        self.sc._cache[ref.key(page.depth)] = page
        for entry in fresh:
            entry.node.origin = ref.seq
        return ref

    def _pack(self, depth: int, seq: int, data: bytes) -> int:
        """Add a delta to the block's packs (a new one once the last would pass the page
        target); which pack holds it, counted from 1."""
        if not self.packs or (self.pack_bytes + len(data) > self.sc.page_target and self.packs[-1]):
            self.packs.append([])
            self.pack_bytes = 0
        self.packs[-1].append((depth, seq, data))
        self.pack_bytes += len(data)
        return len(self.packs)

    def write_packs(self) -> None:
        """The block's packs into its batch, with how many versions each holds (pruning
        counts them down: ``StateCommitment._free_packs``)."""
        for number, items in enumerate(self.packs):
            key = pack_key(self.number, number)
            data = encode_pack(items)
            self.batch.put(key, data, self.pages_cf)
            self.written[key] = len(data)
        if self.packs:
            counts = rlp.encode([len(items) for items in self.packs])
            key = _block_key(PACKS_PREFIX, self.number)
            self.batch.put(key, seal(counts), self.sc._handles["meta"])
