"""Benchmark: K-Persist storage (SS + paged SC) vs the Ethereum hash scheme on RocksDB.

A state of ``--accounts`` accounts, each with ``--slots`` storage slots, is committed as block
0; then ``--blocks`` blocks of ``--updates`` random updates (half account balances, half
storage slots of random accounts). Both sides get the same write sets and must give the same
root after every block (asserted). Each side runs in a process of its own, and the two
commit each block in turn (``SideProcess``).

- ours: ``storage.committer.Committer`` (SS batch ∥ SC dirty pages);
- baseline: py-trie ``HexaryTrie`` (account trie + one storage trie per account) storing
  every node under its hash in a RocksDB of its own, each block's new nodes in one batch
  (``squash_changes``: only the block's final nodes are written, as clients do).

Per block: DB writes (batch operations), bytes written, commit ms. Then random account reads:
DB reads per lookup (ours: SS index + account record; baseline: trie nodes from the root),
and RocksDB's own tickers after a flush. Writes ``bench/results/storage_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import random
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
from storage.keys import AccountFields, acct_key, slot_key
from storage.ss import db_options, open_rocksdb, rocksdb_tickers

RESULTS = Path(__file__).parent / "results" / "storage_bench.json"
TICKERS = ("rocksdb.bytes.written", "rocksdb.flush.write.bytes", "rocksdb.compact.write.bytes")


class CountingNodes(MutableMapping):
    """The baseline's node store: RocksDB by hash, counting reads; writes go to a batch."""

    def __init__(self, path: Path) -> None:
        self.options = db_options(statistics=True)
        self.db = open_rocksdb(path, ["nodes"], options=self.options)
        self.nodes = self.db.get_column_family("nodes")
        self.handle = self.db.get_column_family_handle("nodes")
        self.batch = WriteBatch(raw_mode=True)
        self.pending: dict[bytes, bytes] = {}
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

    def write(self) -> tuple[int, int]:
        batch = WriteBatch(raw_mode=True)
        for key, value in self.pending.items():
            batch.put(key, value, self.handle)
        stats = (batch.len(), batch.size_in_bytes())
        self.db.write(batch)
        self.pending = {}
        return stats


class Baseline:
    """Account trie and storage tries, every node under its hash (py-trie)."""

    def __init__(self, path: Path) -> None:
        self.nodes = CountingNodes(path)
        self.root = BLANK_ROOT_HASH
        self.storage_roots: dict[bytes, bytes] = {}

    def commit(self, writes: dict) -> tuple[bytes, int, int]:
        """Apply a write set that holds every touched account's fields."""
        slots: dict[bytes, list[tuple[int, int]]] = {}
        for key, value in writes.items():
            if key[0] == "slot":
                slots.setdefault(key[1], []).append((key[2], value))
        for address, changes in slots.items():
            trie = HexaryTrie(self.nodes, self.storage_roots.get(address, BLANK_ROOT_HASH))
            with trie.squash_changes() as batch:
                for slot, value in changes:
                    batch[keccak(slot.to_bytes(32, "big"))] = rlp.encode(value) if value else b""
            self.storage_roots[address] = trie.root_hash
        trie = HexaryTrie(self.nodes, self.root)
        with trie.squash_changes() as batch:
            for address in {key[1] for key in writes}:
                fields = writes[acct_key(address)]
                root = self.storage_roots.get(address, BLANK_ROOT_HASH)
                account = Account(fields.nonce, fields.balance, root, fields.code_hash)
                batch[keccak(address)] = rlp.encode(account)
        self.root = trie.root_hash
        ops, size = self.nodes.write()
        return self.root, ops, size

    def lookup(self, address: bytes) -> int:
        before = self.nodes.reads
        HexaryTrie(self.nodes, self.root)[keccak(address)]
        return self.nodes.reads - before


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


class OursSide:
    """K-Persist (SS ∥ SC) on the seeded genesis and blocks."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.rng = args, random.Random(args.seed)
        self.store = Committer(workdir / "ours", statistics=True)
        self.fields, self.state = genesis(args.accounts, args.slots, self.rng)
        self.number = 0

    def load(self) -> bytes:
        return self.store.load_genesis(self.state.items())

    def block(self) -> tuple[bytes, dict, float]:
        writes = random_block(self.fields, self.args.updates, self.args.slots, self.rng)
        self.number += 1
        started = time.perf_counter()
        root = self.store.commit(self.number, writes, ())
        ms = (time.perf_counter() - started) * 1000
        (ss_ops, ss_bytes), (sc_ops, sc_bytes) = self.store.ss.last_batch, self.store.sc.last_batch
        row = {"writes": ss_ops + sc_ops, "ss_writes": ss_ops, "sc_writes": sc_ops}
        return root, row | {"bytes": ss_bytes + sc_bytes}, ms

    def lookups(self) -> list[int]:
        """DB reads per random account: SS index, then the account record."""
        reads = []
        for address in self.rng.sample(list(self.fields), min(self.args.lookups, len(self.fields))):
            seq = self.store.ss.sequence_of(address)
            reads.append(1 + (seq is not None))
            self.store.ss.account_record(address)
        return reads

    def tickers(self) -> dict:
        self.store.ss.flush()
        self.store.sc.flush()
        ss, sc = _tickers(self.store.ss_options), _tickers(self.store.sc_options)
        self.store.close()
        return {"ours_ss": ss, "ours_sc": sc}


class BaselineSide(OursSide):
    """The hash scheme on the same seeded genesis and blocks."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.rng = args, random.Random(args.seed)
        self.store = Baseline(workdir / "baseline")
        self.fields, self.state = genesis(args.accounts, args.slots, self.rng)

    def load(self) -> bytes:
        return self.store.commit(self.state)[0]

    def block(self) -> tuple[bytes, dict, float]:
        writes = random_block(self.fields, self.args.updates, self.args.slots, self.rng)
        started = time.perf_counter()
        root, ops, size = self.store.commit(writes)
        ms = (time.perf_counter() - started) * 1000
        return root, {"baseline_writes": ops, "baseline_bytes": size}, ms

    def lookups(self) -> list[int]:
        sample = self.rng.sample(list(self.fields), min(self.args.lookups, len(self.fields)))
        return [self.store.lookup(address) for address in sample]

    def tickers(self) -> dict:
        self.store.nodes.db.flush()
        return {"baseline": _tickers(self.store.nodes.options)}


def _tickers(options: Any) -> dict[str, int]:
    return {k: v for k, v in rocksdb_tickers(options).items() if k in TICKERS}


class SideProcess:
    """A side in a process of its own, driven step by step: both sides commit each block in
    turn (side by side, so machine noise hits both), yet neither pays for the other's memory
    or garbage collections (in one process each side's collections walked the other's
    millions of trie objects)."""

    def __init__(self, side: type[OursSide], *args: Any) -> None:
        self.conn, child = get_context("fork").Pipe()
        self.process = get_context("fork").Process(target=_serve, args=(side, args, child))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--slots", type=int, default=4, help="storage slots per account")
    parser.add_argument("--blocks", type=int, default=50)
    parser.add_argument("--updates", type=int, default=2_000)
    parser.add_argument("--lookups", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="evmpp-storage-bench-"))
    ours, base = SideProcess(OursSide, args, workdir), SideProcess(BaselineSide, args, workdir)
    started = time.perf_counter()
    matches = [ours("load") == base("load")]
    print(
        f"genesis: {args.accounts:,} accounts x {args.slots} slots, loaded in "
        f"{time.perf_counter() - started:.1f} s"
    )
    print(
        f"{'block':>5} {'writes':>7} {'base writes':>11} {'KB':>8} {'base KB':>8} "
        f"{'ms':>8} {'base ms':>8}"
    )
    rows = []
    for number in range(1, args.blocks + 1):
        root, mine, ms = ours("block")
        base_root, theirs, base_ms = base("block")
        matches.append(root == base_root)
        row = {"block": number} | mine | {"commit_ms": round(ms, 1)} | theirs
        rows.append(row | {"baseline_commit_ms": round(base_ms, 1)})
        print(
            f"{number:>5} {row['writes']:>7} {row['baseline_writes']:>11} "
            f"{row['bytes'] / 1024:>8.0f} {row['baseline_bytes'] / 1024:>8.0f} "
            f"{ms:>8.1f} {base_ms:>8.1f}"
        )
    reads, base_reads = ours("lookups"), base("lookups")
    tickers = ours("tickers") | base("tickers")
    ours.close()
    base.close()
    median = statistics.median
    summary = {
        "writes_ratio": round(
            median(r["baseline_writes"] for r in rows) / median(r["writes"] for r in rows), 2
        ),
        "sc_writes_ratio": round(
            median(r["baseline_writes"] for r in rows) / median(r["sc_writes"] for r in rows), 2
        ),
        "bytes_ratio": round(
            median(r["baseline_bytes"] for r in rows) / median(r["bytes"] for r in rows), 2
        ),
        "commit_speedup": round(
            median(r["baseline_commit_ms"] for r in rows) / median(r["commit_ms"] for r in rows), 2
        ),
        "reads_per_lookup": round(statistics.fmean(reads), 2),
        "baseline_reads_per_lookup": round(statistics.fmean(base_reads), 2),
        "roots_match": all(matches),
        "config": vars(args) | {"out": str(args.out)},
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=1))
    print(json.dumps(tickers, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"rows": rows, "rocksdb": tickers, "summary": summary}, indent=2)
    )
    if not summary["roots_match"]:
        raise SystemExit("roots differ between ours and the baseline")


if __name__ == "__main__":
    main()
