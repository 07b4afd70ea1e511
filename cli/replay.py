"""``evmpp replay``: run recorded blocks (e.g. Ethereum mainnet) through the pipeline.

Each block folder is imported (``coordinator/block_import.py``), its pre-state becomes the
chain state of a fresh ``ChainRunner``, and the block runs on the oracle and in parallel on
the shared Compute Unit, exactly as ``evmpp run`` runs generated blocks, except that no
admission filters it: a recorded block is run as it is, and an invalid transaction fails it.

The results are checked against the recorded header (gasUsed, logsBloom, and from Byzantium
receiptsRoot; the post-state root cannot be, as the pre-state holds only what the block
touches) and parallel against sequential (receipts, gas, state root).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth.abc import ReceiptAPI
from eth.db.trie import make_trie_root_and_nodes
from eth_bloom import BloomFilter
from eth_utils import ValidationError
from tqdm import tqdm

from cluster.runtime import start_ray
from compute_unit.blockstm import InvalidBlockError
from compute_unit.worker import ComputeUnit
from coordinator.block_import import BlockFolderError, ImportedBlock, load_block_folder
from coordinator.grouping import FallbackPolicy
from coordinator.pipeline import (
    DEFAULT_FALLBACK,
    BlockReport,
    ChainRunner,
    ComputeUnitAPI,
    ParallelExecutor,
)

HEADER_CHECKS = ("gasUsed", "logsBloom", "receiptsRoot")
REPORT_FIELDS = ("txs", "gas_used", "sequential_ms", "parallel_ms", "speedup", "reexecutions")


def header_checks(block: ImportedBlock, receipts: Sequence[ReceiptAPI], gas_used: int) -> dict:
    """Compare a run's receipts with the recorded header; receiptsRoot only from Byzantium."""
    bloom = BloomFilter()
    for receipt in receipts:
        bloom |= receipt.bloom
    checks = {
        "gasUsed": gas_used == block.expected.gas_used,
        "logsBloom": int(bloom) == block.expected.bloom,
    }
    if block.receipts_root_checkable:
        root, _ = make_trie_root_and_nodes(tuple(receipts))
        checks["receiptsRoot"] = root == block.expected.receipts_root
    return checks


@dataclass
class ReplayRow:
    """One replayed block: its report and every check (None when a check does not apply)."""

    folder: str
    number: int
    fork: str
    report: BlockReport | None = None
    checks: dict[str, bool | None] = field(default_factory=dict)
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and all(v is not False for v in self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        report = self.report.as_dict() if self.report else {}
        return {
            "folder": self.folder,
            "block": self.number,
            "fork": self.fork,
            **{name: report.get(name) for name in (*REPORT_FIELDS, "groups", "fallback")},
            "checks": self.checks,
            "passed": self.passed,
            "error": self.error,
        }


def replay_block(
    block: ImportedBlock, cu: ComputeUnitAPI, policy: FallbackPolicy | None = DEFAULT_FALLBACK
) -> ReplayRow:
    """Run one imported block sequentially and in parallel; check both against the header.

    ``policy`` None always dispatches to the workers, even where running in process pays.
    """
    row = ReplayRow(str(block.path), block.number, block.fork)
    chain = ChainRunner(block.pre_state, ParallelExecutor(cu, policy=policy))
    try:
        report, parallel, sequential = chain.import_block(block.env, block.transactions)
    except (InvalidBlockError, ValidationError) as err:
        row.error = f"invalid block: {err}"
        return row
    finally:
        chain.close()
    seq_checks = header_checks(block, sequential.receipts, sequential.gas_used)
    par_checks = header_checks(block, parallel.block.receipts, parallel.block.gas_used)
    for name in HEADER_CHECKS:
        row.checks[name] = seq_checks[name] and par_checks[name] if name in seq_checks else None
    row.checks["parallel==sequential"] = report.matches
    row.report = report
    return row


COLUMNS = ("block", "fork", "txs", "gas", "seq ms", "par ms", "speedup", "re-exec", "checks")


def _format_row(row: ReplayRow) -> str:
    if row.report is None:
        return f"{row.number:>9} {row.fork:<15} ERROR {row.error}"
    r = row.report
    failed = [name for name, ok in row.checks.items() if ok is False]
    verdict = "ok" if not failed else "FAIL " + ",".join(failed)
    if r.fallback:
        verdict += f"  (sequential: {r.fallback})"
    return (
        f"{row.number:>9} {row.fork:<15} {r.txs:>5} {r.gas_used:>11,} {r.sequential_ms:>8.1f} "
        f"{r.parallel_ms:>8.1f} {r.speedup:>7.2f}x {r.reexecutions:>7} {verdict}"
    )


def _header_line() -> str:
    widths = (9, -15, 5, 11, 8, 8, 8, 7, -6)
    return " ".join(
        title.ljust(-w) if w < 0 else title.rjust(w)
        for title, w in zip(COLUMNS, widths, strict=True)
    )


def expand_folders(paths: Sequence[str]) -> list[Path]:
    """Block folders named directly, or every block folder inside a named directory."""
    folders: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir() and not (path / "block.json").exists():
            children = sorted(
                (p for p in path.iterdir() if (p / "block.json").exists()),
                key=lambda p: (len(p.name), p.name),
            )
            if not children:
                raise BlockFolderError(path, "", "no block folders (with block.json) inside")
            folders.extend(children)
        else:
            folders.append(path)
    return folders


def replay(args: argparse.Namespace) -> int:
    try:
        folders = expand_folders(args.folders)
        blocks = [load_block_folder(folder) for folder in folders]
    except BlockFolderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    start_ray(num_cpus=args.workers, address=args.address)
    cu = ComputeUnit(args.workers)
    rows: list[ReplayRow] = []
    print(_header_line())
    try:
        for block in tqdm(blocks, desc="blocks", file=sys.stderr):
            row = replay_block(block, cu, None if args.always_parallel else DEFAULT_FALLBACK)
            rows.append(row)
            tqdm.write(_format_row(row))
    finally:
        cu.shutdown()
    passed = sum(row.passed for row in rows)
    print(f"\n{passed}/{len(rows)} blocks pass every check on {args.workers} workers")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        summary = {"blocks": len(rows), "passed": passed, "all_checks_pass": passed == len(rows)}
        path.write_text(
            json.dumps({"rows": [r.as_dict() for r in rows], "summary": summary}, indent=2)
        )
    return 0 if passed == len(rows) else 1


def add_parser(commands: Any) -> None:
    p = commands.add_parser("replay", help="replay recorded block folders (e.g. mainnet)")
    p.add_argument("folders", nargs="+", help="block folders, or directories holding them")
    p.add_argument(
        "--always-parallel",
        action="store_true",
        help="dispatch every block to the workers, even those too small to gain from it",
    )
    p.add_argument("--workers", type=int, default=2, help="workers in the Compute Unit")
    p.add_argument("--json", default="", help="write every row and a summary to this path")
    p.add_argument("--address", default=None, help="join this Ray cluster instead")
    p.set_defaults(func=replay)
