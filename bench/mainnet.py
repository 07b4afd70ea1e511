"""Benchmark: real mainnet blocks, parallel (Compute Unit, 2 workers) vs sequential py-evm.

Every block folder under ``../shared/mainnet-blocks`` (or ``$EVMPP_MAINNET_BLOCKS``) runs
through ``evmpp replay``'s path: the oracle (``vm.apply_all_transactions`` to the persisted
root) and the pipeline (grouping, workers, validation, commit to the state root), side by
side, after one untimed warm-up pass over all blocks (imports, code caches, the KZG setup in
every process). ``--runs`` timed passes follow; per block the median of the per-run ratios is
reported, and every run of every block must pass every check.

Writes ``bench/results/mainnet.json``: a row per block and ``summary.geomean_speedup``,
``summary.min_speedup``, ``summary.all_checks_pass``, the blocks that fell back to sequential
and why. For scale: pevm reports about 2.0x on average over mainnet blocks on 8+ threads,
worst 0.89x; two workers bound the gain at 2.0x.
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
from compute_unit.worker import ComputeUnit
from coordinator.block_import import ImportedBlock, load_block_folder

RESULTS = Path(__file__).parent / "results" / "mainnet.json"


def summarize(block: ImportedBlock, rows: list[ReplayRow]) -> dict:
    reports = [row.report for row in rows if row.report is not None]
    ratios = [r.sequential_ms / r.parallel_ms for r in reports]
    return {
        "block": block.number,
        "fork": block.fork,
        "txs": len(block.transactions),
        "gas_used": block.expected.gas_used,
        "sequential_ms": round(statistics.median(r.sequential_ms for r in reports), 1),
        "parallel_ms": round(statistics.median(r.parallel_ms for r in reports), 1),
        "speedup": round(statistics.median(ratios), 3),
        "speedups": [round(ratio, 3) for ratio in ratios],
        "reexecutions": statistics.median(r.reexecutions for r in reports),
        "groups": reports[-1].groups,
        "fallback": reports[-1].fallback,
        "checks_pass": all(row.passed for row in rows) and len(reports) == len(rows),
        "errors": sorted({row.error for row in rows if row.error}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--blocks", type=Path, default=None, help="folder of block folders")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    folders = expand_folders([str(args.blocks or mainnet_blocks_dir())])
    blocks = [load_block_folder(folder) for folder in folders]
    start_ray(num_cpus=args.workers)
    cu = ComputeUnit(args.workers, name="cu-bench")
    try:
        for block in blocks:  # warm-up pass, untimed
            replay_block(block, cu)
        runs: dict[int, list[ReplayRow]] = {block.number: [] for block in blocks}
        for _ in range(args.runs):
            for block in blocks:
                runs[block.number].append(replay_block(block, cu))
    finally:
        cu.shutdown()

    rows = [summarize(block, runs[block.number]) for block in blocks]
    speedups = [row["speedup"] for row in rows]
    summary = {
        "blocks": len(rows),
        "workers": args.workers,
        "runs": args.runs,
        "geomean_speedup": round(math.exp(statistics.fmean(map(math.log, speedups))), 3),
        "min_speedup": min(speedups),
        "all_checks_pass": all(row["checks_pass"] for row in rows),
        "sequential_fallbacks": {row["block"]: row["fallback"] for row in rows if row["fallback"]},
        "reference": "pevm on mainnet blocks: ~2.0x average on 8+ threads, worst 0.89x",
    }
    print(
        f"{'block':>9} {'fork':<15} {'txs':>5} {'seq ms':>8} {'par ms':>8} {'speedup':>8} "
        f"{'re-exec':>7} {'groups':>6} checks"
    )
    for row in rows:
        mode = f"  sequential: {row['fallback']}" if row["fallback"] else ""
        print(
            f"{row['block']:>9} {row['fork']:<15} {row['txs']:>5} {row['sequential_ms']:>8.1f} "
            f"{row['parallel_ms']:>8.1f} {row['speedup']:>7.2f}x {row['reexecutions']:>7} "
            f"{row['groups']:>6} {'ok' if row['checks_pass'] else 'FAIL'}{mode}"
        )
    print(
        f"geomean speedup {summary['geomean_speedup']:.2f}x, min {summary['min_speedup']:.2f}x, "
        f"all checks pass: {summary['all_checks_pass']}, "
        f"sequential fallback on {len(summary['sequential_fallbacks'])} blocks"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
