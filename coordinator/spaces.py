"""Executes a block made of several block spaces, each on its own Compute Unit pool.

The coordinator builds a block as the public block space (PBS) followed by each elastic block
space (EBS); ``assignment`` says which of the block's transactions belong to which space.
Each space is planned on its own (hint predictions, conflict groups for its pool's workers)
and all spaces run at the same time, each on its pool; the block is then validated as one, in
block order (PBS first, then each EBS), so a transaction that read what another space wrote
is re-executed, as with any conflict. Each space's execution time is kept (``times``) for
its EBS parallelism and its pool's load.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from eth.abc import SignedTransactionAPI

from compute_unit.blockstm import validate_block
from compute_unit.executor import BlockEnv, CrashPlan, TxOutcome, known_senders
from compute_unit.state import StateReader
from coordinator.grouping import Group
from coordinator.pipeline import ComputeUnitAPI, ParallelResult
from coordinator.planner import BlockPlan, Planner


class SpacesExecutor:
    """A ``ParallelExecutor`` for blocks of several spaces, one pool each."""

    def __init__(
        self, pools: Mapping[str, ComputeUnitAPI], planner: Planner, drop_invalid: bool = True
    ) -> None:
        """``drop_invalid``: the block is being built, so a transaction invalid at its
        position is left out (``validate_block``) instead of failing the block."""
        self.pools = pools
        self.planner = planner
        self.drop_invalid = drop_invalid
        self.assignment: dict[str, list[int]] = {}
        self.times: dict[str, float] = {}
        self._threads = ThreadPoolExecutor(max_workers=16, thread_name_prefix="spaces")

    @property
    def restarts(self) -> int:
        return sum(pool.restarts for pool in self.pools.values())

    def plan(
        self,
        env: BlockEnv,
        txs: Sequence[SignedTransactionAPI],
        state: StateReader | None = None,
    ) -> BlockPlan:
        predictions: list[Any] = [None] * len(txs)
        weights = [0] * len(txs)
        by_space: dict[str, list[Group]] = {}
        share = 0.0
        for name, indices in self.assignment.items():
            if not indices:
                continue
            plan = self.planner.plan(env, [txs[i] for i in indices], self.pools[name].size, state)
            by_space[name] = [[indices[j] for j in group] for group in plan.groups]
            for j, i in enumerate(indices):
                weights[i] = plan.weights[j]
                if plan.predictions is not None:
                    predictions[i] = plan.predictions[j]
            share = max(share, plan.largest_share)
        groups = [group for space in by_space.values() for group in space]
        known = None if None in predictions else predictions
        return BlockPlan(groups, weights, share, known, by_space)

    def execute(
        self,
        env: BlockEnv,
        snapshot: StateReader,
        txs: Sequence[SignedTransactionAPI],
        groups: list[Group] | None = None,
        crash: CrashPlan | None = None,
        remote: StateReader | None = None,
        plan: BlockPlan | None = None,
        local: StateReader | None = None,
    ) -> ParallelResult:
        started = time.perf_counter()
        plan = plan or self.plan(env, txs)
        raw = [tx.encode() for tx in txs]
        senders = known_senders(txs)
        runs = {
            name: self._threads.submit(
                self._run,
                self.pools[name],
                env,
                remote or snapshot,
                space_groups,
                raw,
                crash,
                senders,
            )
            for name, space_groups in (plan.by_space or {}).items()
        }
        outcomes: dict[int, TxOutcome] = {}
        self.times = {}
        for name, run in runs.items():
            space_outcomes, self.times[name] = run.result()
            outcomes.update(space_outcomes)
        block = validate_block(env, snapshot, txs, outcomes, self.drop_invalid)
        return ParallelResult(block, plan.groups, time.perf_counter() - started)

    @staticmethod
    def _run(
        pool: ComputeUnitAPI,
        env: BlockEnv,
        snapshot: StateReader,
        groups: list[Group],
        raw: list[bytes],
        crash: CrashPlan | None,
        senders: list[bytes] | None,
    ) -> tuple[dict[int, TxOutcome], float]:
        started = time.perf_counter()
        outcomes = pool.execute(env, snapshot, groups, raw, crash, senders)
        return outcomes, time.perf_counter() - started

    def close(self) -> None:
        self._threads.shutdown()
