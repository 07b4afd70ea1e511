"""``make compare``: build a synthetic genesis, generate blocks, run each one in parallel on a
Compute Unit and on sequential py-evm (the oracle), and print the comparison per block.
(Recorded blocks: ``evmpp replay``, ``cli/replay.py``.)"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from bench.workload.blocks import DEFAULT_MIX, BlockGenerator, Mix
from bench.workload.genesis import block_env, build_genesis
from cluster.runtime import start_ray
from compute_unit.worker import ComputeUnit
from coordinator.hints import DEFAULT_CAP_BYTES, HintTable
from coordinator.pipeline import BlockReport, ChainRunner, ParallelExecutor
from coordinator.planner import HintPlanner
from storage.sc import DEFAULT_KEEP_VERSIONS

COLUMNS = (
    ("block", 6, "number"),
    ("txs", 6, "txs"),
    ("gas", 12, "gas_used"),
    ("seq ms", 9, "sequential_ms"),
    ("par ms", 9, "parallel_ms"),
    ("speedup", 8, "speedup"),
    ("re-exec", 8, "reexecutions"),
    ("groups", 6, "groups"),
    ("share", 6, "largest_share"),
    ("prec", 6, "precision"),
    ("recall", 6, "recall"),
    ("hit", 6, "preload_hit_rate"),
    ("root", 6, "root_match"),
)


def _cell(report: BlockReport, attr: str, width: int) -> str:
    value = getattr(report, attr)
    if value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "ok" if value else "DIFF"
    elif attr in ("largest_share", "precision", "recall", "preload_hit_rate"):
        text = f"{value:.0%}" if value < 1 else "100%"
    elif isinstance(value, float):
        text = f"{value:.2f}x" if attr == "speedup" else f"{value:.1f}"
    else:
        text = f"{value:,}" if attr == "gas_used" else str(value)
    return text.rjust(width)


def header_line() -> str:
    return " ".join(title.rjust(width) for title, width, _ in COLUMNS)


def row_line(report: BlockReport) -> str:
    return " ".join(_cell(report, attr, width) for _, width, attr in COLUMNS)


def run(args: argparse.Namespace) -> int:
    mix = Mix.parse(args.mix) if args.mix else DEFAULT_MIX
    if args.data_dir and Path(args.data_dir).exists() and any(Path(args.data_dir).iterdir()):
        print(f"error: --data-dir {args.data_dir} is not empty; give a new folder", file=sys.stderr)
        return 2
    print(f"genesis: {args.accounts} accounts ...", file=sys.stderr)
    genesis = build_genesis(args.accounts, seed=args.seed)
    generator = BlockGenerator(genesis, mix, args.skew, args.seed)
    start_ray(num_cpus=args.workers, address=args.address)
    cu = ComputeUnit(args.workers)
    table = None if args.no_hints else HintTable(hints_path(args), args.hint_cap_bytes)
    if table is not None and table.rebuilt:
        print(f"warning: {table.rebuilt}", file=sys.stderr)
    chain = ChainRunner(
        genesis.state.items(),
        ParallelExecutor(cu, None if table is None else HintPlanner(table)),
        args.data_dir or None,
        preload=table is not None,
        keep_versions=args.keep_versions or None,
        keep_writesets=not args.no_writesets,
        write_behind=not args.sync_commit,
    )
    reports: list[BlockReport] = []
    started = time.perf_counter()
    print(header_line())
    upcoming = generator.block(args.txs)
    for number in tqdm(range(1, args.blocks + 1), desc="blocks", file=sys.stderr):
        txs, upcoming = upcoming, generator.block(args.txs) if number < args.blocks else []
        env = block_env(number, gas_limit=max(30_000_000, sum(tx.gas for tx in txs)))
        if upcoming:
            chain.prefetch(upcoming)  # the next block preloads while this one runs
        report, _, _ = chain.run_block(env, txs)
        reports.append(report)
        tqdm.write(row_line(report))
        for rejection in chain.last_rejections:
            tqdm.write(f"  {rejection}")
        if args.workers > 1 and report.largest_share > 1 / args.workers:
            tqdm.write(
                f"  unbalanced: one conflict component, {report.largest_share:.0%} of the gas"
            )
    cu.shutdown()
    chain.close()
    if table is not None:
        table.close()
    all_match = all(r.matches for r in reports)
    speedups = sorted(r.speedup for r in reports)
    summary = {
        "blocks": len(reports),
        "workers": args.workers,
        "txs_per_block": args.txs,
        "mix": dict(mix.shares),
        "skew": args.skew,
        "seed": args.seed,
        "median_speedup": round(speedups[len(speedups) // 2], 3) if speedups else 0.0,
        "total_reexecutions": sum(r.reexecutions for r in reports),
        "all_roots_match": all(r.root_match for r in reports),
        "all_receipts_match": all(r.receipts_match and r.gas_match for r in reports),
        "wall_s": round(time.perf_counter() - started, 2),
    }
    print(
        f"\n{len(reports)} blocks, median speedup {summary['median_speedup']:.2f}x on "
        f"{args.workers} workers, {summary['total_reexecutions']} re-executions; "
        f"parallel == sequential (receipts, gas, state root): {'yes' if all_match else 'NO'}"
    )
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [r.as_dict() for r in reports]
        path.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))
    return 0 if all_match else 1


def hints_path(args: argparse.Namespace) -> Path | None:
    """Where the hint table persists: ``--hints``, else beside the chain's data."""
    if args.hints:
        return Path(args.hints)
    return Path(args.data_dir) / "hints" if args.data_dir else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    p.add_argument("--blocks", type=int, default=5, help="blocks to generate (default 5)")
    p.add_argument("--txs", type=int, default=1000, help="transactions per block")
    p.add_argument("--workers", type=int, default=2, help="workers in the Compute Unit")
    p.add_argument("--mix", default="", help="e.g. transfer=0.2,erc20=0.5,swap=0.2,mint=0.1")
    p.add_argument("--skew", type=float, default=0.6, help="Zipf exponent over accounts")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--accounts", type=int, default=2000, help="funded genesis accounts")
    p.add_argument("--json", default="", help="write every row and a summary to this path")
    p.add_argument("--address", default=None, help="join this Ray cluster instead")
    p.add_argument(
        "--data-dir",
        default="",
        help="an empty folder for State Storage and State Commitment (default: a temporary one)",
    )
    p.add_argument(
        "--keep-versions",
        type=int,
        default=DEFAULT_KEEP_VERSIONS,
        help="keep the state commitment of the last N blocks only, N >= 2 (default: "
        f"{DEFAULT_KEEP_VERSIONS}, as geth keeps 128 diff layers; 0 keeps all, an archive)",
    )
    p.add_argument(
        "--no-writesets",
        action="store_true",
        help="do not keep each block's write set in State Storage (validators)",
    )
    p.add_argument(
        "--sync-commit",
        action="store_true",
        help="write each block's stores before the next block starts (default: write behind, "
        "while the next block runs)",
    )
    p.add_argument(
        "--no-hints",
        action="store_true",
        help="group by sender as the foundation did, without the hint table or preloading",
    )
    p.add_argument(
        "--hints",
        default="",
        help="the hint table's folder, kept across runs (default: under --data-dir, if any)",
    )
    p.add_argument(
        "--hint-cap-bytes",
        type=int,
        default=DEFAULT_CAP_BYTES,
        help="the hint table's size cap; the least useful entries are evicted past it",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("blocks", "txs", "workers", "accounts", "keep_versions"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            build_parser().error(f"--{name.replace('_', '-')} must be at least 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
