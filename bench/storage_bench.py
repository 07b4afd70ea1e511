"""Benchmark: K-Persist storage (SS + paged SC) vs the Ethereum hash scheme on RocksDB.

A state of ``--accounts`` accounts, each with ``--slots`` storage slots, is committed as block
0; then ``--blocks`` blocks of ``--updates`` random updates (half account balances, half
storage slots of random accounts). Both sides get the same write sets and must give the same
root after every block (asserted).

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
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="evmpp-storage-bench-"))
    ours = Committer(workdir / "ours", statistics=True)
    baseline = Baseline(workdir / "baseline")

    fields, state = genesis(args.accounts, args.slots, rng)
    started = time.perf_counter()
    ours_root = ours.load_genesis(state.items())
    ours_load = time.perf_counter() - started
    started = time.perf_counter()
    base_root = baseline.commit(state)[0]
    base_load = time.perf_counter() - started
    matches = [ours_root == base_root]
    print(
        f"genesis: {args.accounts:,} accounts x {args.slots} slots; load ours "
        f"{ours_load:.1f} s, baseline {base_load:.1f} s"
    )

    rows = []
    print(
        f"{'block':>5} {'writes':>7} {'base writes':>11} {'KB':>8} {'base KB':>8} "
        f"{'ms':>8} {'base ms':>8}"
    )
    for number in range(1, args.blocks + 1):
        writes = random_block(fields, args.updates, args.slots, rng)
        started = time.perf_counter()
        root = ours.commit(number, writes, ())
        ours_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        base_root, base_ops, base_bytes = baseline.commit(writes)
        base_ms = (time.perf_counter() - started) * 1000
        matches.append(root == base_root)
        ss_ops, ss_bytes = ours.ss.last_batch
        sc_ops, sc_bytes = ours.sc.last_batch
        row = {
            "block": number,
            "writes": ss_ops + sc_ops,
            "ss_writes": ss_ops,
            "sc_writes": sc_ops,
            "bytes": ss_bytes + sc_bytes,
            "commit_ms": round(ours_ms, 1),
            "baseline_writes": base_ops,
            "baseline_bytes": base_bytes,
            "baseline_commit_ms": round(base_ms, 1),
        }
        rows.append(row)
        print(
            f"{number:>5} {row['writes']:>7} {base_ops:>11} {row['bytes'] / 1024:>8.0f} "
            f"{base_bytes / 1024:>8.0f} {ours_ms:>8.1f} {base_ms:>8.1f}"
        )

    sample = rng.sample(list(fields), min(args.lookups, len(fields)))
    reads = []
    for address in sample:
        seq = ours.ss.sequence_of(address)  # read 1: index
        reads.append(1 + (seq is not None))  # read 2: the account record
        ours.ss.account_record(address)
    base_reads = [baseline.lookup(address) for address in sample]

    ours.ss.flush()
    ours.sc.flush()
    baseline.nodes.db.flush()
    tickers = {
        "ours_ss": {k: v for k, v in rocksdb_tickers(ours.ss_options).items() if k in TICKERS},
        "ours_sc": {k: v for k, v in rocksdb_tickers(ours.sc_options).items() if k in TICKERS},
        "baseline": {
            k: v for k, v in rocksdb_tickers(baseline.nodes.options).items() if k in TICKERS
        },
    }
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
    ours.close()
    if not summary["roots_match"]:
        raise SystemExit("roots differ between ours and the baseline")


if __name__ == "__main__":
    main()
