"""Benchmark: K-Persist storage (SS + paged SC) vs the Ethereum hash scheme on RocksDB.

A state of ``--accounts`` accounts, each with ``--slots`` storage slots, is committed as block
0; then ``--blocks`` blocks of ``--updates`` random updates (half account balances, half
storage slots of random accounts). All sides get the same write sets and must give the same
root after every block (asserted). Each side runs in a process of its own, and they
commit each block in turn (``SideProcess``).

- ours: ``storage.committer.Committer`` (SS batch ∥ SC dirty pages);
- baseline: py-trie ``HexaryTrie`` (account trie + one storage trie per account) storing
  every node under its hash in a RocksDB of its own, each block's new nodes in one batch
  (``squash_changes``: only the block's final nodes are written, as clients do);
- with ``--write-behind``, ours again as a node runs it with ``write_behind``
  (``WriteBehindSide``): its time to the root (the write settled apart, untimed) is its
  critical path when execution outlasts the write: ``commit_speedup_write_behind`` (not a
  target; off by default: a third store's compactions share the cores and disturb the
  other two sides' times).

The baseline also keeps a flat snapshot (geth's layout: ``a`` ‖ keccak(address) -> slim
account, ``o`` ‖ keccak(address) ‖ keccak(slot) -> value), since our State Storage is one; so
``total_bytes_ratio`` compares like with like and ``sc_bytes_ratio`` compares the tries alone.

Both sides' RocksDBs get small write buffers (``--write-buffer``) so that flushes and
compactions really run during the blocks, and bloom filters, as production stores use.
Measured:

- per block: batch operations and bytes (SS, SC; baseline nodes, snapshot), commit ms;
- RocksDB's own statistics over the blocks (genesis excluded: each side's stores are
  flushed and compacted whole after it, as a node's store settled by running, so that the
  blocks do not flush and compact what genesis left in memtables and L0 files, up to a
  write buffer per column family): write-ahead log, flush and compaction bytes, hence
  ``write_amplification`` (those bytes over the encoded write sets);
- at the end, every column family flushed: the bytes on disk with default pruning (128
  versions) over the live state (the flat state's keys and values): ``disk_ratio``, with
  each column family's SST bytes (``disk_by_family``); and, since where each family is in
  its cycle of flushes and compactions at the last block moves that figure by a quarter of
  the live state, the bytes on disk after each of the last 50 blocks:
  ``disk_ratio_median_last_50`` (not a target);
- block reads per lookup counted by the engine (block-cache misses) on a store reopened with
  a cold block cache: ``reads_per_account`` (index + account record), ``reads_per_slot``;
- proofs: account and storage proofs of a sample, checked with py-trie against the root;
- then each side closed and reopened, and two more blocks (the same on both sides, roots
  compared): ``reopen_ms``, ``first_block_after_reopen_ms`` (every page it rewrites read
  from disk: what the length of delta chains costs cold), ``second_block_after_reopen_ms``,
  and the baseline's first block (not targets).

Writes ``bench/results/storage_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import MutableMapping
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import rlp
from eth.constants import BLANK_ROOT_HASH
from eth.rlp.accounts import Account
from eth_hash.auto import keccak
from rocksdict import WriteBatch
from trie import HexaryTrie

from storage.committer import Committer
from storage.keys import AccountFields, acct_key, int_bytes, slot_key
from storage.sc import FAMILIES as SC_FAMILIES
from storage.ss import COLUMN_FAMILIES as SS_FAMILIES
from storage.ss import (
    StateStorage,
    close_db,
    compact_all,
    db_options,
    flush_all,
    open_rocksdb,
    rocksdb_tickers,
    write_synced,
)

RESULTS = Path(__file__).parent / "results" / "storage_bench.json"
WAL, FLUSH, COMPACT = (
    "rocksdb.wal.bytes",
    "rocksdb.flush.write.bytes",
    "rocksdb.compact.write.bytes",
)
TICKERS = (WAL, FLUSH, COMPACT, "rocksdb.compact.read.bytes", "rocksdb.bytes.written")
BLOCK_READS = "rocksdb.block.cache.miss"
SST_BYTES = "rocksdb.total-sst-files-size"
FLAT_STATE = ("index", "account", "contract", "code")


class CountingNodes(MutableMapping):
    """The baseline's node store: RocksDB by hash, counting reads; writes go to a batch."""

    def __init__(self, path: Path, write_buffer: int) -> None:
        self.options = db_options(statistics=True, write_buffer_bytes=write_buffer)
        self.db = open_rocksdb(
            path, ["nodes", "snapshot"], options=self.options, write_buffer_bytes=write_buffer
        )
        self.nodes = self.db.get_column_family("nodes")
        self.handle = self.db.get_column_family_handle("nodes")
        self.snapshot = self.db.get_column_family_handle("snapshot")
        self.pending: dict[bytes, bytes] = {}
        self.flat: dict[bytes, bytes | None] = {}  # snapshot records of the block (None: gone)
        self.reads = 0

    def __getitem__(self, key: bytes) -> bytes:
        if key in self.pending:
            return self.pending[key]
        self.reads += 1
        value = self.nodes.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.pending[key] = value

    def __delitem__(self, key: bytes) -> None:
        raise NotImplementedError("the hash scheme never deletes nodes")

    def __iter__(self):
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def write(self) -> tuple[int, int, int]:
        """The block's nodes and snapshot records in one batch: (operations, node bytes,
        snapshot bytes)."""
        batch = WriteBatch(raw_mode=True)
        for key, value in self.pending.items():
            batch.put(key, value, self.handle)
        node_bytes = batch.size_in_bytes()
        for key, value in self.flat.items():
            if value is None:
                batch.delete(key, self.snapshot)
            else:
                batch.put(key, value, self.snapshot)
        stats = (batch.len(), node_bytes, batch.size_in_bytes() - node_bytes)
        write_synced(self.db, batch)  # as durable as ours
        self.pending, self.flat = {}, {}
        return stats


class Baseline:
    """Account trie and storage tries, every node under its hash (py-trie)."""

    def __init__(self, path: Path, write_buffer: int) -> None:
        self.nodes = CountingNodes(path, write_buffer)
        self.root = BLANK_ROOT_HASH
        self.storage_roots: dict[bytes, bytes] = {}

    def commit(self, writes: dict) -> tuple[bytes, int, int, int]:
        """Apply a write set that holds every touched account's fields."""
        slots: dict[bytes, list[tuple[int, int]]] = {}
        for key, value in writes.items():
            if key[0] == "slot":
                slots.setdefault(key[1], []).append((key[2], value))
        for address, changes in slots.items():
            trie = HexaryTrie(self.nodes, self.storage_roots.get(address, BLANK_ROOT_HASH))
            with trie.squash_changes() as batch:
                for slot, value in changes:
                    hashed = keccak(slot.to_bytes(32, "big"))
                    batch[hashed] = rlp.encode(value) if value else b""
                    self.nodes.flat[b"o" + keccak(address) + hashed] = int_bytes(value) or None
            self.storage_roots[address] = trie.root_hash
        trie = HexaryTrie(self.nodes, self.root)
        with trie.squash_changes() as batch:
            for address in {key[1] for key in writes}:
                fields = writes[acct_key(address)]
                root = self.storage_roots.get(address, BLANK_ROOT_HASH)
                account = Account(fields.nonce, fields.balance, root, fields.code_hash)
                batch[keccak(address)] = rlp.encode(account)
                self.nodes.flat[b"a" + keccak(address)] = slim_account(account)
        self.root = trie.root_hash
        ops, node_bytes, flat_bytes = self.nodes.write()
        return self.root, ops, node_bytes, flat_bytes

    def lookup(self, address: bytes) -> int:
        before = self.nodes.reads
        HexaryTrie(self.nodes, self.root)[keccak(address)]
        return self.nodes.reads - before


def slim_account(account: Account) -> bytes:
    """geth's snapshot encoding: empty storage root and code hash left out."""
    root = b"" if account.storage_root == BLANK_ROOT_HASH else account.storage_root
    code = b"" if account.code_hash == keccak(b"") else account.code_hash
    return rlp.encode([account.nonce, account.balance, root, code])


def genesis(accounts: int, slots: int, rng: random.Random) -> tuple[dict, dict]:
    fields: dict[bytes, AccountFields] = {}
    writes: dict[Any, Any] = {}
    for i in range(accounts):
        address = keccak(i.to_bytes(8, "big"))[:20]
        fields[address] = writes[acct_key(address)] = AccountFields(1, rng.randrange(10**20))
        for slot in range(slots):
            writes[slot_key(address, slot)] = rng.randrange(1, 10**30)
    return fields, writes


def random_block(
    fields: dict[bytes, AccountFields], updates: int, slots: int, rng: random.Random
) -> dict:
    """Half balance updates, half slot updates (a new slot now and then), random accounts.

    Every touched account's fields are in the write set (the baseline rewrites its leaf).
    """
    addresses = list(fields)
    writes: dict[Any, Any] = {}
    for _ in range(updates // 2):
        address = rng.choice(addresses)
        fields[address] = AccountFields(1, rng.randrange(10**20))
        writes[acct_key(address)] = fields[address]
    for _ in range(updates - updates // 2):
        address = rng.choice(addresses)
        writes[slot_key(address, rng.randrange(slots * 2))] = rng.randrange(10**30)
        writes[acct_key(address)] = fields[address]
    return writes


def writeset_bytes(writes: dict) -> int:
    """A block's write set, keys and values, as bytes (the measure write amplification is
    taken over): RLP of ``[kind, address, slot, value]`` items, an account's value RLP of
    nonce, balance and code hash, a slot's its big-endian integer."""
    items = [
        [b"s", key[1], int_bytes(key[2]), int_bytes(value)]
        if key[0] == "slot"
        else [b"a", key[1], b"", rlp.encode([value.nonce, value.balance, value.code_hash])]
        for key, value in writes.items()
    ]
    return len(rlp.encode([[], items]))


class OursSide:
    """K-Persist (SS ∥ SC) on the seeded genesis and blocks."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.rng = args, random.Random(args.seed)
        self.dir = workdir / "ours"
        self.store = Committer(self.dir, statistics=True, write_buffer_bytes=args.write_buffer)
        self.fields, self.state = genesis(args.accounts, args.slots, self.rng)
        self.number = 0
        self.at_genesis: dict[str, int] = {}

    def load(self) -> bytes:
        root = self.store.load_genesis(self.state.items())
        self.store.compact()  # (genesis excluded: see the module docstring)
        self.at_genesis = self._engine()
        return root

    def _engine(self) -> dict[str, int]:
        ss, sc = _tickers(self.store.ss_options), _tickers(self.store.sc_options)
        return {name: ss.get(name, 0) + sc.get(name, 0) for name in TICKERS}

    def block(self) -> tuple[bytes, dict, float]:
        writes = random_block(self.fields, self.args.updates, self.args.slots, self.rng)
        started = time.perf_counter()
        root = self._commit(writes)
        ms = (time.perf_counter() - started) * 1000
        (ss_ops, ss_bytes), (sc_ops, sc_bytes) = self.store.ss.last_batch, self.store.sc.last_batch
        row = {"writes": ss_ops + sc_ops, "ss_writes": ss_ops, "sc_writes": sc_ops}
        row |= {"ss_bytes": ss_bytes, "sc_bytes": sc_bytes, "bytes": ss_bytes + sc_bytes}
        row |= {"disk_bytes": disk_bytes(self.dir)}
        return root, row | {"writeset_bytes": writeset_bytes(writes)}, ms

    def _commit(self, writes: dict) -> bytes:
        self.number += 1
        return self.store.commit(self.number, writes, ())

    def _reopen(self) -> None:
        self.store = Committer(self.dir, statistics=True, write_buffer_bytes=self.args.write_buffer)

    def _close(self) -> None:
        self.store.close()

    def reopened(self) -> tuple[list[bytes], dict[str, float]]:
        """Two more blocks on the store closed and reopened, its caches empty: the time to
        reopen, then each block's commit. The first reads from disk every page it rewrites
        (a full base and its deltas), so it is what a delta chain's length costs cold."""
        started = time.perf_counter()
        self._reopen()
        times = {"reopen_ms": round((time.perf_counter() - started) * 1000, 1)}
        rng = random.Random(self.args.seed + 1)  # (the same blocks on each side, whatever
        # else each side drew from its own generator since)
        roots = []
        for name in ("first_block_ms", "second_block_ms"):
            writes = random_block(self.fields, self.args.updates, self.args.slots, rng)
            started = time.perf_counter()
            roots.append(self._commit(writes))
            times[name] = round((time.perf_counter() - started) * 1000, 1)
        self._close()
        return roots, times

    def proofs(self) -> int:
        """Account and storage proofs of a sample at the last block, checked by py-trie."""
        sc, checked = self.store.sc, 0
        for address in self.rng.sample(list(self.fields), 50):
            found = HexaryTrie.get_from_proof(
                sc.root, keccak(address), sc.account_proof(self.number, address)
            )
            storage_root = rlp.decode(found, sedes=Account).storage_root
            slot_hash = keccak((0).to_bytes(32, "big"))
            value = HexaryTrie.get_from_proof(
                storage_root, slot_hash, sc.storage_proof(self.number, address, 0)
            )
            assert value == rlp.encode(self.store.ss.get(slot_key(address, 0)))
            checked += 2
        return checked

    def engine(self) -> dict:
        """RocksDB's statistics over the blocks, with every column family flushed; then the
        bytes on disk and the live state; then reads on a cold block cache."""
        self.store.ss.flush()
        self.store.sc.flush()
        now = self._engine()
        over_blocks = {name: now[name] - self.at_genesis.get(name, 0) for name in TICKERS}
        live = sum(
            len(key) + len(value)
            for name in FLAT_STATE
            for key, value in self.store.ss._db.get_column_family(name).items()
        )
        by_family = {
            f"{store}/{name}": db.get_column_family(name).property_int_value(SST_BYTES)
            for store, db, families in (
                ("ss", self.store.ss._db, SS_FAMILIES),
                ("sc", self.store.sc._db, SC_FAMILIES),
            )
            for name in families
        }
        self.store.close()
        disk = disk_bytes(self.dir)
        return {"over_blocks": over_blocks, "disk_bytes": disk, "live_state_bytes": live} | {
            "disk_by_family": by_family,
            "reads": self._cold_reads(),
        }

    def _cold_reads(self) -> dict[str, float]:
        """Engine block reads per lookup, each kind on a store just reopened (its block
        cache empty), over a fresh sample of accounts."""
        reads = {}
        for kind, key in (("account", acct_key), ("slot", lambda a: slot_key(a, 1))):
            options = db_options(statistics=True, write_buffer_bytes=self.args.write_buffer)
            ss = StateStorage(self.dir / "ss", read_only=True, options=options)
            sample = self.rng.sample(list(self.fields), min(self.args.lookups, len(self.fields)))
            before = rocksdb_tickers(options).get(BLOCK_READS, 0)
            for address in sample:
                ss.get(key(address))
            after = rocksdb_tickers(options).get(BLOCK_READS, 0)
            reads[kind] = round((after - before) / len(sample), 2)
            ss.close()
        return reads


class WriteBehindSide(OursSide):
    """Ours again, as a node runs it with ``write_behind``: a commit returns once the root
    is known, and the stores are written while the next block runs elsewhere. Its time is
    the node's critical path when the next block's execution outlasts the write: the driver
    lets the write finish (``settle``, not timed) before the other sides commit, so that it
    does not take their cores."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        super().__init__(args, workdir / "behind")

    def block(self) -> tuple[bytes, dict, float]:
        writes = random_block(self.fields, self.args.updates, self.args.slots, self.rng)
        self.number += 1
        started = time.perf_counter()
        root = self.store.commit(self.number, writes, (), background=True)
        return root, {}, (time.perf_counter() - started) * 1000

    def settle(self) -> bytes:
        self.store.settle()
        return self.store.state_root


class BaselineSide(OursSide):
    """The hash scheme on the same seeded genesis and blocks."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.rng = args, random.Random(args.seed)
        self.dir = workdir / "baseline"
        self.store = Baseline(self.dir, args.write_buffer)
        self.fields, self.state = genesis(args.accounts, args.slots, self.rng)

    def load(self) -> bytes:
        root = self.store.commit(self.state)[0]
        compact_all(self.store.nodes.db, ["nodes", "snapshot"])
        self.at_genesis = _tickers(self.store.nodes.options)
        return root

    def block(self) -> tuple[bytes, dict, float]:
        writes = random_block(self.fields, self.args.updates, self.args.slots, self.rng)
        started = time.perf_counter()
        root, ops, node_bytes, flat_bytes = self.store.commit(writes)
        ms = (time.perf_counter() - started) * 1000
        row = {"baseline_writes": ops, "baseline_bytes": node_bytes}
        return root, row | {"baseline_snapshot_bytes": flat_bytes}, ms

    def proofs(self) -> int:
        return 0

    def _commit(self, writes: dict) -> bytes:
        return self.store.commit(writes)[0]

    def _reopen(self) -> None:  # (the storage roots stay in memory: the baseline's favour)
        self._close()  # (ours was closed by ``engine``)
        self.store.nodes = CountingNodes(self.dir, self.args.write_buffer)

    def _close(self) -> None:
        nodes = self.store.nodes
        del nodes.handle, nodes.snapshot  # (a column family's handle holds the DB open too)
        close_db(nodes.db, {"nodes": nodes.nodes})

    def engine(self) -> dict:
        """Trie node reads per account lookup (calls into the node store), then RocksDB's
        statistics with every column family flushed."""
        sample = self.rng.sample(list(self.fields), min(self.args.lookups, len(self.fields)))
        node_reads = [self.store.lookup(address) for address in sample]
        flush_all(self.store.nodes.db, ["nodes", "snapshot"])
        now = _tickers(self.store.nodes.options)
        return {
            "over_blocks": {
                name: now.get(name, 0) - self.at_genesis.get(name, 0) for name in TICKERS
            },
            "node_reads_per_lookup": round(statistics.fmean(node_reads), 2),
        }


def _tickers(options: Any) -> dict[str, int]:
    return {k: v for k, v in rocksdb_tickers(options).items() if k in TICKERS}


class SideProcess:
    """A side in a process of its own, driven step by step: both sides commit each block in
    turn (side by side, so machine noise hits both), yet neither pays for the other's memory
    or garbage collections (in one process each side's collections walked the other's
    millions of trie objects)."""

    def __init__(self, side: type[OursSide], *args: Any) -> None:
        self.conn, child = get_context("fork").Pipe()
        self.process = get_context("fork").Process(  # (daemonic: a failed run exits)
            target=_serve, args=(side, args, child), daemon=True
        )
        self.process.start()

    def __call__(self, method: str) -> Any:
        self.conn.send(method)
        ok, result = self.conn.recv()
        if not ok:
            raise RuntimeError(f"{method} failed in the side process: {result}")
        return result

    def close(self) -> None:
        self.conn.send(None)
        self.process.join()


def _serve(side_type: type[OursSide], args: tuple, conn: Any) -> None:
    side = side_type(*args)
    while (method := conn.recv()) is not None:
        try:
            conn.send((True, getattr(side, method)()))
        except Exception as err:  # reported to the driver, which raises
            conn.send((False, repr(err)))


def disk_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (a file RocksDB deletes meanwhile counts none)."""
    total = 0
    for file in path.rglob("*"):
        try:
            total += file.stat().st_size if file.is_file() else 0
        except FileNotFoundError:
            continue
    return total


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


TARGETS = {  # issue 16's acceptance: field -> (comparison, bound)
    "sc_bytes_ratio": ("<=", 0.3),
    "total_bytes_ratio": ("<=", 0.6),
    "sc_writes_per_block": ("<=", 750),
    "write_amplification": ("<=", 5),
    "disk_ratio": ("<=", 2),
    "commit_speedup": (">=", 2.5),
    "commit_p99_over_p50": ("<=", 1.5),
    "reads_per_account": ("<=", 2),
    "reads_per_slot": ("<=", 3),
}


def summarize(rows: list[dict], ours: dict, base: dict, matches: bool, proofs: int) -> dict:
    median = statistics.median
    commit_ms = [r["commit_ms"] for r in rows]
    moved, theirs = ours["over_blocks"], base["over_blocks"]
    written = sum(r["writeset_bytes"] for r in rows)
    summary = {
        "sc_bytes_ratio": round(
            median(r["sc_bytes"] for r in rows) / median(r["baseline_bytes"] for r in rows), 2
        ),
        "total_bytes_ratio": round(
            median(r["bytes"] for r in rows)
            / median(r["baseline_bytes"] + r["baseline_snapshot_bytes"] for r in rows),
            2,
        ),
        "sc_writes_per_block": median(r["sc_writes"] for r in rows),
        "write_amplification": round((moved[WAL] + moved[FLUSH] + moved[COMPACT]) / written, 2),
        "baseline_write_amplification": round(
            (theirs[WAL] + theirs[FLUSH] + theirs[COMPACT]) / written, 2
        ),
        "disk_ratio": round(ours["disk_bytes"] / ours["live_state_bytes"], 2),
        "disk_ratio_median_last_50": round(
            median(r["disk_bytes"] for r in rows[-50:]) / ours["live_state_bytes"], 2
        ),
        "commit_speedup": round(
            median(r["baseline_commit_ms"] for r in rows) / median(commit_ms), 2
        ),
        "commit_p99_over_p50": round(percentile(commit_ms, 0.99) / median(commit_ms), 2),
        "reads_per_account": ours["reads"]["account"],
        "reads_per_slot": ours["reads"]["slot"],
        "baseline_node_reads_per_lookup": base["node_reads_per_lookup"],
        "sc_bytes_per_block": median(r["sc_bytes"] for r in rows),
        "baseline_bytes_per_block": median(r["baseline_bytes"] for r in rows),
        "compaction_bytes": moved[COMPACT],
        # (not targets: what reopening costs, its caches empty; see ``reopened``)
        "reopen_ms": ours["reopened"]["reopen_ms"],
        "first_block_after_reopen_ms": ours["reopened"]["first_block_ms"],
        "second_block_after_reopen_ms": ours["reopened"]["second_block_ms"],
        "baseline_first_block_after_reopen_ms": base["reopened"]["first_block_ms"],
        "proofs_verified": proofs,
        "roots_match": matches,
    }
    if "write_behind_commit_ms" in rows[0]:  # (not a target: see WriteBehindSide)
        summary["commit_speedup_write_behind"] = round(
            median(r["baseline_commit_ms"] for r in rows)
            / median(r["write_behind_commit_ms"] for r in rows),
            2,
        )
    summary["targets_met"] = {
        name: (summary[name] <= bound) if op == "<=" else (summary[name] >= bound)
        for name, (op, bound) in TARGETS.items()
    }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--slots", type=int, default=4, help="storage slots per account")
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--updates", type=int, default=2_000)
    parser.add_argument("--lookups", type=int, default=1_000)
    parser.add_argument(
        "--write-buffer",
        type=int,
        default=4 << 20,
        help="RocksDB write buffer (memtable) bytes per column family, both sides: small "
        "enough that flushes and compactions run within the blocks",
    )
    parser.add_argument(
        "--write-behind", action="store_true", help="also run ours with write-behind commits"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="evmpp-storage-bench-"))
    ours, base = SideProcess(OursSide, args, workdir), SideProcess(BaselineSide, args, workdir)
    behind = SideProcess(WriteBehindSide, args, workdir) if args.write_behind else None
    started = time.perf_counter()
    genesis_root = base("load")
    matches = [ours("load") == genesis_root]
    if behind is not None:
        matches.append(behind("load") == genesis_root)
    print(
        f"genesis: {args.accounts:,} accounts x {args.slots} slots, loaded in "
        f"{time.perf_counter() - started:.1f} s"
    )
    print(
        f"{'block':>5} {'SC ops':>7} {'base ops':>8} {'SC KB':>8} {'base KB':>8} "
        f"{'ms':>8} {'base ms':>8}"
    )
    rows = []
    for number in range(1, args.blocks + 1):
        if behind is not None:
            behind_root, _, behind_ms = behind("block")
            behind("settle")
        root, mine, ms = ours("block")
        base_root, theirs, base_ms = base("block")
        matches.append(root == base_root and (behind is None or behind_root == root))
        row = {"block": number} | mine | {"commit_ms": round(ms, 1)} | theirs
        row |= {"baseline_commit_ms": round(base_ms, 1)}
        if behind is not None:
            row["write_behind_commit_ms"] = round(behind_ms, 1)
        rows.append(row)
        if number % 10 == 0 or number == 1:
            print(
                f"{number:>5} {row['sc_writes']:>7} {row['baseline_writes']:>8} "
                f"{row['sc_bytes'] / 1024:>8.0f} {row['baseline_bytes'] / 1024:>8.0f} "
                f"{ms:>8.1f} {base_ms:>8.1f}"
            )
    if behind is not None:
        matches.append(behind("settle") == root)  # (the root after the last write)
        behind.close()
    proofs = ours("proofs")
    engine = {"ours": ours("engine"), "baseline": base("engine")}
    (roots, engine["ours"]["reopened"]), (base_roots, engine["baseline"]["reopened"]) = (
        ours("reopened"),
        base("reopened"),
    )
    matches.append(roots == base_roots)
    ours.close()
    base.close()
    summary = summarize(rows, engine["ours"], engine["baseline"], all(matches), proofs)
    summary["config"] = vars(args) | {"out": str(args.out)}
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "rocksdb": engine, "summary": summary}, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)
    if not summary["roots_match"]:
        raise SystemExit("roots differ between ours and the baseline")


if __name__ == "__main__":
    main()
