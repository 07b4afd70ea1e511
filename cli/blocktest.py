"""``evmpp blocktest PATH...``: Ethereum's BlockchainTests through the parallel pipeline, as
geth's ``evm blocktest`` (``coordinator/blocktest.py`` runs one test).

PATHs are fixture JSON files or folders (searched recursively). Every block runs on the
Compute Unit's workers, the small-block fallback off unless ``--allow-fallback``. One line per
file, then a failed test's reason and each expected refusal's reason (``-v``), then
``N passed, N failed`` with skips counted apart. Exit 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cluster.runtime import start_ray
from compute_unit.worker import ComputeUnit
from coordinator.blocktest import FixtureRunner, TestResult
from coordinator.pipeline import DEFAULT_FALLBACK


def expand_paths(paths: Sequence[str]) -> list[Path]:
    """Fixture files named directly, or every ``*.json`` under a named folder, sorted."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(sorted(path.rglob("*.json")))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return files


def file_line(path: Path, results: Sequence[TestResult]) -> str:
    counts = Counter(result.status for result in results)
    verdict = "FAIL" if counts["failed"] else ("ok" if counts["passed"] else "SKIP")
    parts = [f"{counts[s]} {s}" for s in ("passed", "failed", "skipped") if counts[s]]
    return f"{verdict:<4} {path}  ({', '.join(parts) or 'no tests'})"


def summary_line(results: Sequence[TestResult]) -> str:
    counts = Counter(result.status for result in results)
    line = f"{counts['passed']} passed, {counts['failed']} failed"
    if counts["skipped"]:
        reasons = Counter(r.reason for r in results if r.status == "skipped")
        why = "; ".join(f"{n}: {reason}" for reason, n in reasons.most_common())
        line += f", {counts['skipped']} skipped ({why})"
    return line


def run_files(
    files: Sequence[Path], runner: FixtureRunner, verbose: bool = False, out: Any = None
) -> list[TestResult]:
    out = out or sys.stdout
    results: list[TestResult] = []
    for path in files:
        file_results = runner.run_file(path)
        results.extend(file_results)
        print(file_line(path, file_results), file=out, flush=True)
        for result in file_results:
            if result.status != "passed":
                print(f"     {result.status}: {result.name}: {result.reason[:400]}", file=out)
            if verbose:
                for refusal in result.refused:
                    print(f"     refused: {result.name}: {refusal[:400]}", file=out)
    return results


def blocktest(args: argparse.Namespace) -> int:
    try:
        files = expand_paths(args.paths)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    start_ray(num_cpus=args.workers, address=args.address)
    cu = ComputeUnit(args.workers, name="cu-blocktest")
    try:
        policy = DEFAULT_FALLBACK if args.allow_fallback else None
        runner = FixtureRunner(cu, policy, hints=args.planner == "hints")
        results = run_files(files, runner, args.verbose)
    finally:
        cu.shutdown()
    print(summary_line(results))
    failed = sum(result.status == "failed" for result in results)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        counts = Counter(result.status for result in results)
        data = {"tests": [r.as_dict() for r in results], "summary": dict(counts)}
        path.write_text(json.dumps(data, indent=2))
    return 1 if failed else 0


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "blocktest", help="run Ethereum BlockchainTests fixtures through the parallel pipeline"
    )
    p.add_argument("paths", nargs="+", help="fixture JSON files, or folders holding them")
    p.add_argument(
        "--allow-fallback",
        action="store_true",
        help="let small blocks run in process instead of on the workers",
    )
    p.add_argument(
        "--planner",
        choices=("hints", "sender"),
        default="hints",
        help="group transactions by a hint table learnt over each test's blocks, or by sender",
    )
    p.add_argument("--workers", type=int, default=2, help="workers in the Compute Unit")
    p.add_argument("--json", default="", help="write every test's result and a summary here")
    p.add_argument("-v", "--verbose", action="store_true", help="print each expected refusal")
    p.add_argument("--address", default=None, help="join this Ray cluster instead")
    p.set_defaults(func=blocktest)
