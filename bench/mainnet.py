"""Benchmark: real mainnet blocks, parallel (Compute Unit, 2 workers) vs sequential py-evm.

Every block folder under ``../shared/mainnet-blocks`` (or ``$EVMPP_MAINNET_BLOCKS``) runs
through ``evmpp replay``'s path: the oracle (``vm.apply_all_transactions`` to the persisted
root) and the pipeline (grouping, workers, validation, commit to the state root), side by
side, after one untimed warm-up pass over all blocks (imports, code caches, the KZG setup in
every process). ``--runs`` timed passes follow; per block the median of the per-run ratios is
reported, and every run of every block must pass every check.

Each block also runs as one group on one worker of the same CU (the same stack's baseline:
parallel efficiency), side by side. ``--hints`` plans and preloads each block from a hint table
warmed leave-one-out: taught by the other blocks' validated results (recorded in the warm-up
pass), never by the block itself, the fallback off; ``--stm`` runs it by Block-STM.

Writes ``bench/results/mainnet.json``: a row per block and ``summary.geomean_speedup``,
``summary.min_speedup``, ``summary.geomean_vs_one_worker``, ``summary.min_vs_one_worker``,
``summary.fallback_blocks`` (how many ran in process), ``summary.hint_recall`` and
``summary.hint_precision`` (medians over blocks, with ``--hints``),
``summary.all_checks_pass``, the blocks that fell back to sequential and why. For scale: pevm
reports about 2.0x on average over mainnet blocks on 8+ threads, worst 0.89x; two workers
bound the gain at 2.0x.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from bench.mainnet_blocks import mainnet_blocks_dir
from cli.replay import ReplayRow, expand_folders, replay_block
from cluster.runtime import start_ray
from compute_unit.state import DictSnapshot
from compute_unit.worker import ComputeUnit
from coordinator.block_import import ImportedBlock, load_block_folder
from coordinator.hints import HintTable
from coordinator.pipeline import DEFAULT_FALLBACK, ChainRunner, ParallelExecutor
from coordinator.planner import HintPlanner

RESULTS = Path(__file__).parent / "results" / "mainnet.json"


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 4) if values else None


def summarize(block: ImportedBlock, rows: list[ReplayRow], ones: list[ReplayRow]) -> dict:
    reports = [row.report for row in rows if row.report is not None]
    ratios = [r.sequential_ms / r.parallel_ms for r in reports]
    one_ms = [row.report.parallel_ms for row in ones if row.report is not None]
    vs_one = [o / r.parallel_ms for o, r in zip(one_ms, reports, strict=False)]
    return {
        "block": block.number,
        "fork": block.fork,
        "txs": len(block.transactions),
        "gas_used": block.expected.gas_used,
        "sequential_ms": round(statistics.median(r.sequential_ms for r in reports), 1),
        "parallel_ms": round(statistics.median(r.parallel_ms for r in reports), 1),
        "speedup": round(statistics.median(ratios), 3),
        "speedups": [round(ratio, 3) for ratio in ratios],
        "one_worker_ms": round(statistics.median(one_ms), 1) if one_ms else None,
        "vs_one_worker": round(statistics.median(vs_one), 3) if vs_one else None,
        "serial_share": _median([r.serial_share for r in reports]),
        "precision": _median([r.precision for r in reports]),
        "recall": _median([r.recall for r in reports]),
        "preload_hit_rate": _median([r.preload_hit_rate for r in reports]),
        "profile": reports[-1].profile if reports else {},
        "reexecutions": statistics.median(r.reexecutions for r in reports),
        "groups": reports[-1].groups,
        "fallback": reports[-1].fallback,
        "checks_pass": all(row.passed for row in [*rows, *ones]) and len(reports) == len(rows),
        "errors": sorted({row.error for row in [*rows, *ones] if row.error}),
    }


def warmed(blocks: list[ImportedBlock], results: dict, held_out: int, workers: int) -> HintPlanner:
    """A hint planner taught by every block's recorded result but ``held_out``'s."""
    planner = HintPlanner(HintTable(None))
    for block in blocks:
        if block.number == held_out:
            continue
        state = DictSnapshot(dict(block.pre_state))
        plan = planner.plan(block.env, block.transactions, workers, state)
        planner.learn(block.env, block.transactions, plan, results[block.number])
    return planner


def record(block: ImportedBlock, cu) -> object:
    """The block's validated result on the workers (what a hint table learns from)."""
    with ChainRunner(block.pre_state, ParallelExecutor(cu, policy=None), verify=False) as chain:
        _, parallel, _ = chain.import_block(block.env, block.transactions)
    return parallel.block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--blocks", type=Path, default=None, help="folder of block folders")
    parser.add_argument("--stm", action="store_true", help="Block-STM on the workers")
    parser.add_argument("--hints", action="store_true", help="hints warmed leave-one-out")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    folders = expand_folders([str(args.blocks or mainnet_blocks_dir())])
    blocks = [load_block_folder(folder) for folder in folders]
    start_ray(num_cpus=args.workers)
    cu = ComputeUnit(args.workers, name="cu-bench")
    policy = None if args.hints else DEFAULT_FALLBACK
    try:
        results = {block.number: record(block, cu) for block in blocks}  # also the warm-up
        runs: dict[int, list[ReplayRow]] = {block.number: [] for block in blocks}
        ones: dict[int, list[ReplayRow]] = {block.number: [] for block in blocks}
        for _ in range(args.runs):
            for block in blocks:
                planner = (
                    warmed(blocks, results, block.number, args.workers) if args.hints else None
                )
                runs[block.number].append(replay_block(block, cu, policy, args.stm, planner))
                ones[block.number].append(replay_block(block, cu, None, one_worker=True))
    finally:
        cu.shutdown()

    rows = [summarize(block, runs[block.number], ones[block.number]) for block in blocks]
    speedups = [row["speedup"] for row in rows]
    vs_one = [row["vs_one_worker"] for row in rows]
    summary = {
        "blocks": len(rows),
        "workers": args.workers,
        "runs": args.runs,
        "stm": args.stm,
        "hints": "leave-one-out" if args.hints else None,
        "geomean_speedup": round(math.exp(statistics.fmean(map(math.log, speedups))), 3),
        "min_speedup": min(speedups),
        "geomean_vs_one_worker": round(math.exp(statistics.fmean(map(math.log, vs_one))), 3),
        "min_vs_one_worker": min(vs_one),
        "fallback_blocks": sum(1 for row in rows if row["fallback"]),
        "hint_recall": _median([row["recall"] for row in rows]),
        "hint_precision": _median([row["precision"] for row in rows]),
        "all_checks_pass": all(row["checks_pass"] for row in rows),
        "sequential_fallbacks": {row["block"]: row["fallback"] for row in rows if row["fallback"]},
        "reference": "pevm on mainnet blocks: ~2.0x average on 8+ threads, worst 0.89x",
    }
    print(
        f"{'block':>9} {'fork':<15} {'txs':>5} {'seq ms':>8} {'par ms':>8} {'speedup':>8} "
        f"{'re-exec':>7} {'groups':>6} {'x 1-wkr':>7} checks"
    )
    for row in rows:
        mode = f"  sequential: {row['fallback']}" if row["fallback"] else ""
        print(
            f"{row['block']:>9} {row['fork']:<15} {row['txs']:>5} {row['sequential_ms']:>8.1f} "
            f"{row['parallel_ms']:>8.1f} {row['speedup']:>7.2f}x {row['reexecutions']:>7} "
            f"{row['groups']:>6} {row['vs_one_worker']:>6.2f}x "
            f"{'ok' if row['checks_pass'] else 'FAIL'}{mode}"
        )
    print(
        f"geomean speedup {summary['geomean_speedup']:.2f}x, min {summary['min_speedup']:.2f}x, "
        f"vs one worker {summary['geomean_vs_one_worker']:.2f}x "
        f"(min {summary['min_vs_one_worker']:.2f}x), "
        f"all checks pass: {summary['all_checks_pass']}, "
        f"sequential fallback on {len(summary['sequential_fallbacks'])} blocks"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
