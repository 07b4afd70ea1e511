"""Benchmark: predictive grouping and preloading (hint table) vs the foundation's grouping.

``--blocks`` blocks of a hot mix (40% swaps on one AMM pair, 45% ERC20 transfers, 15% NFT
mints; Zipf 1.2 over the accounts), the same blocks and seed run by two chains side by side
on one 2-worker Compute Unit: with hints (a hint table learning from block 1 on, conflict
graph grouping, preloading, the next block prefetched while one runs) and without (sender
grouping, reads from State Storage). Each block is checked against sequential py-evm on
both chains. Speedup is sequential py-evm over the parallel path (grouping to committed
state root), per block; the summary takes blocks after ``--warmup`` (21-30 by default).
Writes ``bench/results/predictive.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from bench.workload.blocks import BlockGenerator, Mix
from bench.workload.genesis import block_env, build_genesis
from cluster.runtime import start_ray
from compute_unit.worker import ComputeUnit
from coordinator.hints import HintTable
from coordinator.pipeline import BlockReport, ChainRunner, ParallelExecutor
from coordinator.planner import HintPlanner

HOT_MIX = "swap=0.4,erc20=0.45,mint=0.15"
RESULTS = Path(__file__).parent / "results" / "predictive.json"


def row(hints: BlockReport, plain: BlockReport) -> dict:
    return {
        "block": hints.number,
        "txs": hints.txs,
        "sequential_ms": round(hints.sequential_ms, 1),
        "hints_ms": round(hints.parallel_ms, 1),
        "nohints_ms": round(plain.parallel_ms, 1),
        "speedup_hints": round(hints.speedup, 3),
        "speedup_nohints": round(plain.speedup, 3),
        "reexec_hints": hints.reexecutions,
        "reexec_nohints": plain.reexecutions,
        "groups_hints": hints.groups,
        "largest_share": hints.largest_share,
        "precision": hints.precision,
        "recall": hints.recall,
        "preload_hit_rate": hints.preload_hit_rate,
        "preloaded": hints.preloaded,
        "fallback_hints": hints.fallback,
        "fallback_nohints": plain.fallback,
        "matches": hints.matches and plain.matches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=20, help="blocks left out of the summary")
    parser.add_argument("--txs", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    genesis = build_genesis(args.accounts, seed=args.seed)
    generator = BlockGenerator(genesis, Mix.parse(HOT_MIX), 1.2, args.seed)
    blocks = [generator.block(args.txs) for _ in range(args.blocks)]
    start_ray(num_cpus=args.workers)
    cu = ComputeUnit(args.workers, name="cu-bench")
    workdir = Path(tempfile.mkdtemp(prefix="evmpp-predictive-"))
    table = HintTable(workdir / "hints")
    items = list(genesis.state.items())
    hinted = ChainRunner(items, ParallelExecutor(cu, HintPlanner(table)), preload=True)
    plain = ChainRunner(items, ParallelExecutor(cu))

    print(
        f"{'block':>5} {'seq ms':>8} {'hints ms':>9} {'plain ms':>9} {'x hints':>8} "
        f"{'x plain':>8} {'re-ex h':>7} {'re-ex p':>7} {'share':>6} {'prec':>6} "
        f"{'recall':>6} {'hit':>6}"
    )
    rows = []
    for number, txs in enumerate(blocks, start=1):
        env = block_env(number, gas_limit=max(30_000_000, sum(tx.gas for tx in txs)))
        if number < len(blocks):
            hinted.prefetch(blocks[number])
        hints_report, _, _ = hinted.run_block(env, txs)
        plain_report, _, _ = plain.run_block(env, txs)
        r = row(hints_report, plain_report)
        rows.append(r)
        print(
            f"{number:>5} {r['sequential_ms']:>8.0f} {r['hints_ms']:>9.0f} {r['nohints_ms']:>9.0f} "
            f"{r['speedup_hints']:>7.2f}x {r['speedup_nohints']:>7.2f}x {r['reexec_hints']:>7} "
            f"{r['reexec_nohints']:>7} {r['largest_share']:>6.0%} {r['precision']:>6.1%} "
            f"{r['recall']:>6.1%} {r['preload_hit_rate']:>6.1%}"
        )
    hinted.close()
    plain.close()
    table.close()
    cu.shutdown()

    warm = rows[args.warmup :]
    txs = sum(r["txs"] for r in warm)
    median = statistics.median
    summary = {
        "reexec_per_tx_hints": round(sum(r["reexec_hints"] for r in warm) / txs, 4),
        "reexec_per_tx_nohints": round(sum(r["reexec_nohints"] for r in warm) / txs, 4),
        "precision": round(median(r["precision"] for r in warm), 4),
        "recall": round(median(r["recall"] for r in warm), 4),
        "preload_hit_rate": round(median(r["preload_hit_rate"] for r in warm), 4),
        "speedup_hints": round(median(r["speedup_hints"] for r in warm), 3),
        "speedup_nohints": round(median(r["speedup_nohints"] for r in warm), 3),
        "largest_share": round(median(r["largest_share"] for r in warm), 3),
        "roots_match": all(r["matches"] for r in rows),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))
    if not summary["roots_match"]:
        raise SystemExit("a block differed from sequential py-evm")


if __name__ == "__main__":
    main()
