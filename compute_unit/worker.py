"""Ray shells of a Compute Unit: a placement group of N one-core ``ExecutionWorker`` actors.

The CU hands each worker whole groups (one round trip per worker per block, never per
transaction) and collects ``TxOutcome``s; or, with Block-STM (``execute_stm``), each worker
keeps a replica of the block's multi-version store and runs batches the scheduler hands out
(``compute_unit/stm.py``). A worker that dies mid-block is replaced by a fresh
actor in the same bundle and its groups are run again, so a block always completes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import ray
from ray.exceptions import GetTimeoutError, RayActorError
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from compute_unit.executor import BlockEnv, CrashPlan, TxOutcome, decode_known, run_group
from compute_unit.groups import Group, assign_groups
from compute_unit.replica import Replica
from compute_unit.scheduler import Batch, ExecTask, LogEntry
from compute_unit.state import StateReader, WriteLayer
from compute_unit.stm import StmRun, WorkerLost, run_block_stm


@ray.remote(num_cpus=1, max_restarts=0)
class ExecutionWorker:
    """One core of a Compute Unit: runs groups of transactions on py-evm."""

    def run_groups(
        self,
        env: BlockEnv,
        snapshot: StateReader,
        groups: Sequence[Sequence[tuple[int, bytes, bytes | None]]],
        crash: CrashPlan | None = None,
        preimages: bool = True,
    ) -> list[TxOutcome]:
        outcomes: list[TxOutcome] = []
        for group in groups:
            if crash is not None and any(index == crash.index for index, _, _ in group):
                os._exit(1)
            txs = [(index, decode_known(env, raw, sender)) for index, raw, sender in group]
            outcomes.extend(run_group(env, WriteLayer(snapshot), txs, preimages))
        return outcomes

    # -- Block-STM (``compute_unit/stm.py``): a replica per block, batches of tasks ----------
    def stm_begin(
        self,
        env: BlockEnv,
        base: StateReader,
        raw_txs: Sequence[bytes],
        senders: Sequence[bytes] | None,
        crash: CrashPlan | None = None,
        preimages: bool = True,
    ) -> None:
        self.replica = Replica(env, base, raw_txs, senders, preimages)
        self.crash = crash

    def stm_run(self, log: Sequence[LogEntry], tasks: Sequence[ExecTask]) -> Batch:
        crash = getattr(self, "crash", None)
        if crash is not None and any(task.index == crash.index for task in tasks):
            os._exit(1)
        self.replica.catch_up(log)
        return self.replica.run(tasks)

    def stm_end(self) -> tuple[float, float]:
        """The block's seconds catching up and running batches here; the replica goes."""
        replica, self.replica = getattr(self, "replica", None), None
        return (0.0, 0.0) if replica is None else (replica.catch_up_s, replica.run_s)

    def pid(self) -> int:
        return os.getpid()


class CuUnavailable(RuntimeError):
    """The cluster has no room for another Compute Unit's placement group (yet)."""


def request_placement(name: str, workers: int) -> PlacementGroup:
    """Ask the cluster for a Compute Unit's CPUs: one bundle of one CPU per worker, packed.
    While it waits, Ray's autoscaler sees the demand and may add a node for it."""
    return placement_group([{"CPU": 1}] * workers, strategy="PACK", name=name)


def placed(placement: PlacementGroup, timeout: float) -> bool:
    """Whether the cluster has placed the group, waiting at most ``timeout`` seconds."""
    ready, _ = ray.wait([placement.ready()], timeout=timeout)
    return bool(ready)


class ComputeUnit:
    """A fixed-size pool of worker actors pinned to one placement group named ``name``;
    its actors are named ``<name>/w<slot>`` (the Ray dashboard's Actors view shows them).

    ``ready_timeout``: how long to wait for the cluster to place it; past it the placement
    group is removed and ``CuUnavailable`` raised (None: wait as long as it takes).
    ``placement``: a placement group already requested (``request_placement``) to use.
    """

    def __init__(
        self,
        workers: int,
        name: str = "cu-0",
        ready_timeout: float | None = None,
        placement: PlacementGroup | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"a Compute Unit needs at least one worker, got {workers}")
        self.name = name
        self.size = workers
        self.restarts = 0
        self._pg = placement or request_placement(name, workers)
        try:
            ray.get(self._pg.ready(), timeout=ready_timeout)
        except GetTimeoutError as err:
            remove_placement_group(self._pg)
            raise CuUnavailable(f"{name}: no room for {workers} CPUs") from err
        self.workers = [self._spawn(slot) for slot in range(workers)]
        ray.get([worker.pid.remote() for worker in self.workers])

    def _spawn(self, slot: int) -> ray.actor.ActorHandle:
        strategy = PlacementGroupSchedulingStrategy(self._pg, placement_group_bundle_index=slot)
        suffix = f".{self.restarts}" if self.restarts else ""
        return ExecutionWorker.options(
            scheduling_strategy=strategy, name=f"{self.name}/w{slot}{suffix}"
        ).remote()

    def execute(
        self,
        env: BlockEnv,
        snapshot: StateReader,
        groups: Sequence[Group],
        raw_txs: Sequence[bytes],
        crash: CrashPlan | None = None,
        senders: Sequence[bytes] | None = None,
        preimages: bool = True,
    ) -> dict[int, TxOutcome]:
        """Run every group on the workers; returns outcomes by block index.

        The snapshot is put in the object store once and shared by all workers;
        ``senders`` (recovered already) go with their transactions; ``preimages``: the
        outcomes carry the Keccak preimages (for the hint learner).
        """
        snapshot_ref = ray.put(snapshot)
        shares = [
            [[(i, raw_txs[i], senders[i] if senders else None) for i in group] for group in share]
            for share in assign_groups(groups, self.size)
        ]
        pending = {
            self.workers[slot].run_groups.remote(env, snapshot_ref, share, crash, preimages): slot
            for slot, share in enumerate(shares)
            if share
        }
        outcomes: dict[int, TxOutcome] = {}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            slot = pending.pop(done[0])
            try:
                results = ray.get(done[0])
            except RayActorError:
                self.restarts += 1
                self.workers[slot] = self._spawn(slot)
                retry = self.workers[slot].run_groups.remote(
                    env, snapshot_ref, shares[slot], None, preimages
                )
                pending[retry] = slot
                continue
            outcomes.update((outcome.index, outcome) for outcome in results)
        return outcomes

    def execute_stm(
        self,
        env: BlockEnv,
        snapshot: StateReader,
        raw_txs: Sequence[bytes],
        senders: Sequence[bytes] | None = None,
        groups: Sequence[Group] | None = None,
        crash: CrashPlan | None = None,
        preimages: bool = True,
    ) -> StmRun:
        """The block by Block-STM on this CU's workers (``compute_unit/stm.py``)."""
        workers = RayStmWorkers(self)
        return run_block_stm(env, snapshot, raw_txs, workers, senders, groups, crash, preimages)

    def shutdown(self) -> None:
        for worker in self.workers:
            ray.kill(worker)
        remove_placement_group(self._pg)


class RayStmWorkers:
    """``StmWorkers`` on a CU's actors: the block and its state view go to the object store
    once; each batch is one actor call; a dead actor is replaced in its bundle (its new
    replica starts empty, so the loop resends the whole log) and reported as ``WorkerLost``."""

    def __init__(self, cu: ComputeUnit) -> None:
        self.cu = cu
        self.size = cu.size
        self._begin: tuple | None = None
        self._pending: dict[ray.ObjectRef, int] = {}

    def begin(self, env, base, raw_txs, senders, crash, preimages=True) -> None:
        self._begin = (env, ray.put(base), ray.put(list(raw_txs)), senders and list(senders))
        self._preimages = preimages
        for worker in self.cu.workers:  # calls to one actor run in order: no wait needed
            worker.stm_begin.remote(*self._begin, crash, preimages)

    def submit(self, slot: int, log: Sequence[LogEntry], tasks: Sequence[ExecTask]) -> None:
        self._pending[self.cu.workers[slot].stm_run.remote(list(log), list(tasks))] = slot

    def wait(self) -> tuple[int, Batch]:
        done, _ = ray.wait(list(self._pending), num_returns=1)
        slot = self._pending.pop(done[0])
        try:
            return slot, ray.get(done[0])
        except RayActorError as err:
            self._pending = {ref: s for ref, s in self._pending.items() if s != slot}
            self.cu.restarts += 1
            self.cu.workers[slot] = self.cu._spawn(slot)
            self.cu.workers[slot].stm_begin.remote(*self._begin, None, self._preimages)
            raise WorkerLost(slot) from err

    def end(self) -> tuple[float, float]:
        self._pending.clear()
        try:
            times = ray.get([worker.stm_end.remote() for worker in self.cu.workers], timeout=30)
        except (RayActorError, GetTimeoutError):
            return 0.0, 0.0  # a worker lost at the very end: the block is done all the same
        return sum(t[0] for t in times), sum(t[1] for t in times)
