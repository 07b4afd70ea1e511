"""``evmpp replay``: run recorded blocks (e.g. Ethereum mainnet) through the pipeline.

Each block folder is imported (``coordinator/block_import.py``) on the chain ``--chain``
names (a built-in name or a geth genesis/config file, mainnet by default; a ``chain.json`` in
or beside a folder wins for that folder), its pre-state becomes the chain state of a fresh
``ChainRunner``, and the block runs on the oracle and in parallel on the shared Compute Unit,
exactly as ``evmpp run`` runs generated blocks, except that no admission filters it: a
recorded block is run as it is, and an invalid transaction fails it.

A folder that fails to import (bad JSON, a header that does not fit its fork, a missing
pre-state) is a failed row with its reason, and the rest still run; the exit status is 0
only when every row passes, 1 otherwise, and 2 for an unknown ``--chain``.

The results are checked against the recorded header (gasUsed, logsBloom, and from Byzantium
receiptsRoot; the post-state root cannot be, as the pre-state holds only what the block
touches) and parallel against sequential (receipts, gas, state root).

``--hints DIR`` plans and preloads every block from the hint table in DIR, which learns from
each block replayed (so a block's predictions come from the ones before it, and from earlier
runs): each row gives the predictions' ``precision`` and ``recall`` and the
``preload_hit_rate``. ``--stm`` runs the dispatched blocks by Block-STM on the workers.
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

from chain.networks import chain_spec
from chain.spec import ChainSpec, ChainSpecError
from cluster.runtime import start_ray
from compute_unit.blockstm import InvalidBlockError
from compute_unit.worker import ComputeUnit
from coordinator.block_import import (
    BlockFolderError,
    HeaderForkError,
    ImportedBlock,
    load_block_folder,
)
from coordinator.grouping import FallbackPolicy
from coordinator.hints import HintTable
from coordinator.pipeline import (
    DEFAULT_FALLBACK,
    BlockReport,
    ChainRunner,
    ComputeUnitAPI,
    ParallelExecutor,
)
from coordinator.planner import HintPlanner, Planner

HEADER_CHECKS = ("gasUsed", "logsBloom", "receiptsRoot")
REPORT_FIELDS = (
    "txs",
    "gas_used",
    "sequential_ms",
    "parallel_ms",
    "speedup",
    "reexecutions",
    "serial_share",
    "precision",
    "recall",
    "preload_hit_rate",
    "profile",
)


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
    """One replayed block: its report and every check (None when a check does not apply).

    A folder that did not import has no number (and a fork only if its header named one)."""

    folder: str
    number: int | None
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
    block: ImportedBlock,
    cu: ComputeUnitAPI,
    policy: FallbackPolicy | None = DEFAULT_FALLBACK,
    stm: bool = False,
    planner: Planner | None = None,
    one_worker: bool = False,
) -> ReplayRow:
    """Run one imported block sequentially and in parallel; check both against the header.

    ``policy`` None always dispatches to the workers, even where running in process pays;
    ``stm``: by Block-STM on the workers (``compute_unit/stm.py``); ``planner``: a hint
    planner plans the block and its predicted state is preloaded (it learns from the block:
    precision, recall and preload hit rate are in the report); by sender otherwise.
    ``one_worker``: the whole block as one group on one worker (the same stack's baseline).
    """
    row = ReplayRow(str(block.path), block.number, block.fork)
    executor = ParallelExecutor(cu, planner, policy=policy, stm=stm)
    chain = ChainRunner(block.pre_state, executor, preload=isinstance(planner, HintPlanner))
    try:
        whole = [list(range(len(block.transactions)))] if one_worker else None
        report, parallel, sequential = chain.import_block(block.env, block.transactions, whole)
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
        label = Path(row.folder).name if row.number is None else row.number
        return f"{label:>9} {row.fork or '-':<15} ERROR {row.error}"
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


@dataclass
class ImportResult:
    """The folders named on the command line, imported: blocks to run, and the rows of the
    folders that did not import, each at its place in the order given."""

    slots: list[ImportedBlock | ReplayRow]

    @property
    def blocks(self) -> list[ImportedBlock]:
        return [slot for slot in self.slots if isinstance(slot, ImportedBlock)]


def import_folders(paths: Sequence[str], spec: ChainSpec) -> ImportResult:
    """Import every block folder under ``paths``; one that fails becomes a failed row with
    its reason, so one broken folder never stops the others."""
    slots: list[ImportedBlock | ReplayRow] = []
    for name in paths:
        try:
            folders = expand_folders([name])
        except BlockFolderError as err:
            slots.append(ReplayRow(name, None, "", error=f"import failed: {err}"))
            continue
        for folder in folders:
            try:
                slots.append(load_block_folder(folder, spec))
            except HeaderForkError as err:
                row = ReplayRow(str(folder), None, err.fork, error=f"import failed: {err}")
                slots.append(row)
            except BlockFolderError as err:
                slots.append(ReplayRow(str(folder), None, "", error=f"import failed: {err}"))
    return ImportResult(slots)


def replay(args: argparse.Namespace) -> int:
    try:
        spec = chain_spec(args.chain)
    except ChainSpecError as err:
        print(f"error: --chain: {err}", file=sys.stderr)
        return 2
    imported = import_folders(args.folders, spec)
    rows: list[ReplayRow] = []
    print(_header_line())
    blocks = imported.blocks
    cu = None
    table = HintTable(args.hints) if args.hints else None
    planner = HintPlanner(table) if table is not None else None
    if blocks:  # no cluster for a run in which nothing imported
        start_ray(num_cpus=args.workers, address=args.address)
        cu = ComputeUnit(args.workers)
    try:
        for slot in tqdm(imported.slots, desc="blocks", file=sys.stderr):
            if isinstance(slot, ReplayRow):
                row = slot
            else:
                policy = None if args.always_parallel else DEFAULT_FALLBACK
                row = replay_block(slot, cu, policy, args.stm, planner)
            rows.append(row)
            tqdm.write(_format_row(row))
    finally:
        if cu is not None:
            cu.shutdown()
        if table is not None:
            table.close()  # what it learnt stays for the next run
    passed = sum(row.passed for row in rows)
    failed_imports = len(rows) - len(blocks)
    not_imported = f" ({failed_imports} did not import)" if failed_imports else ""
    print(f"\n{passed}/{len(rows)} blocks pass every check on {args.workers} workers{not_imported}")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        summary = {
            "blocks": len(rows),
            "passed": passed,
            "import_failed": failed_imports,
            "all_checks_pass": passed == len(rows),
        }
        path.write_text(
            json.dumps({"rows": [r.as_dict() for r in rows], "summary": summary}, indent=2)
        )
    return 0 if passed == len(rows) else 1


def add_parser(commands: Any) -> None:
    p = commands.add_parser("replay", help="replay recorded block folders (e.g. mainnet)")
    p.add_argument("folders", nargs="+", help="block folders, or directories holding them")
    p.add_argument(
        "--chain",
        default="mainnet",
        help="the chain the blocks are on: mainnet, sepolia, holesky, a fixture network "
        "(Cancun, BerlinToLondonAt5, ...) or a geth genesis/config JSON file; a chain.json "
        "in or beside a block folder wins for that folder (default: mainnet)",
    )
    p.add_argument(
        "--always-parallel",
        action="store_true",
        help="dispatch every block to the workers, even those too small to gain from it",
    )
    p.add_argument("--workers", type=int, default=2, help="workers in the Compute Unit")
    p.add_argument(
        "--stm",
        action="store_true",
        help="run the dispatched blocks by Block-STM on the workers (validation and "
        "re-execution there) instead of fixed groups",
    )
    p.add_argument(
        "--hints",
        default="",
        metavar="DIR",
        help="plan and preload each block from the hint table in DIR (created if absent), "
        "which keeps learning across the blocks replayed",
    )
    p.add_argument("--json", default="", help="write every row and a summary to this path")
    p.add_argument("--address", default=None, help="join this Ray cluster instead")
    p.set_defaults(func=replay)
