"""Block-STM over a Compute Unit's workers: the loop between the scheduler and the workers.

``run_block_stm`` hands a block to the workers (``StmWorkers.begin``), then keeps every
worker busy: each idle worker gets a batch of ready transactions with the scheduler's log
since its last batch (``compute_unit/scheduler.py``, ``compute_unit/replica.py``), and each
batch's results go back to the scheduler, which validates them and moves the commit frontier
while the other workers run. A worker lost mid-batch is replaced (``StmWorkers.submit``
raising ``WorkerLost`` on ``wait``): its tasks become ready again and its new replica gets
the whole log. The block is done when every transaction is final; the outcomes are the
sequential ones, in block order.

``StmWorkers`` is what the loop needs of a CU: the Ray shell (``compute_unit/worker.py``) and
``InlineWorkers`` (in this process, one replica per worker slot, a seeded order of completion:
tests, including adversarial schedules) both satisfy it.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from compute_unit.executor import BlockEnv, CrashPlan, TxOutcome
from compute_unit.groups import Group, lanes_of, predecessors
from compute_unit.replica import Replica
from compute_unit.scheduler import Batch, ExecTask, LogEntry, Scheduler, StmStats
from compute_unit.state import CachedReader, StateReader


class WorkerLost(RuntimeError):
    """A worker died with a batch in hand."""

    def __init__(self, slot: int) -> None:
        super().__init__(f"worker {slot} was lost mid-batch")
        self.slot = slot


class StmWorkers(Protocol):
    size: int

    def begin(
        self,
        env: BlockEnv,
        base: StateReader,
        raw_txs: Sequence[bytes],
        senders: Sequence[bytes] | None,
        crash: CrashPlan | None,
        preimages: bool = True,
    ) -> None: ...
    def submit(self, slot: int, log: Sequence[LogEntry], tasks: Sequence[ExecTask]) -> None: ...
    def wait(self) -> tuple[int, Batch]: ...
    def end(self) -> tuple[float, float]:
        """The block is over: the workers' seconds catching up and running, summed."""
        ...


@dataclass
class StmRun:
    outcomes: dict[int, TxOutcome]
    stats: StmStats
    # the pre-block state the outcomes were validated against, holding what the workers
    # read (the final pass reads it rather than the store, once a sample of it agrees)
    pre_block: CachedReader | None = None
    batches: int = 0
    workers_busy_s: float = 0.0  # summed over workers: time with a batch in hand
    wall_s: float = 0.0
    idle_s: float = 0.0  # wall time with no batch in flight at all (the serial part)
    scheduler_s: float = 0.0  # coordinator time handing out tasks and taking results
    catch_up_s: float = 0.0  # summed over workers: replicas brought up to date
    run_s: float = 0.0  # summed over workers: running batches (the rest of busy is transport)
    replaced: int = 0
    per_worker: dict[int, int] = field(default_factory=dict)  # transactions run per slot


def batch_size(remaining: int, workers: int, most: int = 32) -> int:
    """Small batches near the end keep every worker busy; larger ones amortise round trips."""
    return max(1, min(most, remaining // (2 * workers) or 1))


def run_block_stm(
    env: BlockEnv,
    base: StateReader,
    raw_txs: Sequence[bytes],
    workers: StmWorkers,
    senders: Sequence[bytes] | None = None,
    groups: Sequence[Group] | None = None,
    crash: CrashPlan | None = None,
    preimages: bool = True,
    most: int = 32,
    depth: int = 2,
) -> StmRun:
    """The block's outcomes by Block-STM on ``workers``. ``groups`` (the plan's: predicted
    conflict components, or one sender's transactions) are lanes, not a partition: each is
    dealt to a worker, which takes its own lane's ready transactions first, and another
    worker takes one only once its predecessor in the group has run. ``depth``: batches in
    flight per worker (the next one waits in its queue while the last one's results travel:
    a round trip costs about as much as a few transactions)."""
    started = time.perf_counter()
    count = len(raw_txs)
    lanes = lanes_of(groups, workers.size, count) if groups else None
    after = predecessors(groups, count) if groups else None
    scheduler = Scheduler(count, base, lanes, after)
    run = StmRun({}, scheduler.stats, scheduler.pre_block)
    if not raw_txs:
        return run
    workers.begin(env, base, raw_txs, senders, crash, preimages)
    sent = [0] * workers.size  # log entries each worker's replica has
    in_hand: dict[int, deque[tuple[list[ExecTask], float]]] = {
        slot: deque() for slot in range(workers.size)
    }
    idle_since: float | None = None
    try:
        while not scheduler.done:
            remaining = scheduler.count - scheduler.frontier
            handing = time.perf_counter()
            for slot in range(workers.size):
                while len(in_hand[slot]) < depth:
                    tasks = scheduler.take(batch_size(remaining, workers.size, most), slot)
                    if not tasks:
                        break
                    workers.submit(slot, scheduler.log[sent[slot] :], tasks)
                    sent[slot] = len(scheduler.log)
                    in_hand[slot].append((tasks, time.perf_counter()))
                    run.batches += 1
            run.scheduler_s += time.perf_counter() - handing
            if not any(in_hand.values()):
                raise RuntimeError(
                    f"Block-STM stalled at transaction {scheduler.frontier}: nothing ready"
                )
            if idle_since is not None:
                run.idle_s += time.perf_counter() - idle_since
                idle_since = None
            try:
                slot, batch = workers.wait()
            except WorkerLost as lost:  # every batch it had in hand is gone with it
                while in_hand[lost.slot]:
                    scheduler.give_back(in_hand[lost.slot].popleft()[0])
                sent[lost.slot] = 0
                run.replaced += 1
                continue
            tasks, since = in_hand[slot].popleft()  # a worker's batches finish in order
            now = time.perf_counter()
            run.workers_busy_s += now - since
            run.per_worker[slot] = run.per_worker.get(slot, 0) + len(batch.results)
            if not any(in_hand.values()):
                idle_since = now
            scheduler.deliver(batch.results, batch.base_reads)
            run.scheduler_s += time.perf_counter() - now
    finally:
        run.catch_up_s, run.run_s = workers.end()
    if idle_since is not None:
        run.idle_s += time.perf_counter() - idle_since
    run.outcomes = scheduler.final_outcomes()
    run.wall_s = time.perf_counter() - started
    return run


class InlineWorkers:
    """``StmWorkers`` in this process: each slot a replica of its own; ``wait`` finishes the
    pending batches in a seeded random order (``seed=None``: in submission order), so a test
    can make any worker the slow one. ``lose``: slots whose next batch is lost (the worker
    dies mid-batch, its replica with it)."""

    def __init__(self, size: int = 2, seed: int | None = None) -> None:
        self.size = size
        self.rng = random.Random(seed) if seed is not None else None
        self.lose: set[int] = set()
        self.ran = 0  # transactions executed (the block reached the workers)
        self._pending: list[tuple[int, Sequence[LogEntry], Sequence[ExecTask]]] = []
        self._replicas: dict[int, Replica] = {}
        self._block: tuple | None = None

    def begin(self, env, base, raw_txs, senders, crash, preimages=True) -> None:
        self._block = (env, base, raw_txs, senders, preimages)
        self._replicas = {slot: Replica(*self._block) for slot in range(self.size)}

    def submit(self, slot: int, log: Sequence[LogEntry], tasks: Sequence[ExecTask]) -> None:
        self._pending.append((slot, list(log), list(tasks)))

    def wait(self) -> tuple[int, Batch]:
        slots = sorted({slot for slot, _, _ in self._pending})
        chosen = self.rng.choice(slots) if self.rng else self._pending[0][0]
        at = next(i for i, (slot, _, _) in enumerate(self._pending) if slot == chosen)
        slot, log, tasks = self._pending.pop(at)  # a worker's own batches in order
        if slot in self.lose:
            self.lose.discard(slot)
            self._pending = [p for p in self._pending if p[0] != slot]  # its queue too
            self._replicas[slot] = Replica(*self._block)  # a fresh worker: an empty replica
            raise WorkerLost(slot)
        replica = self._replicas[slot]
        replica.catch_up(log)
        self.ran += len(tasks)
        return slot, replica.run(tasks)

    def end(self) -> tuple[float, float]:
        self._pending.clear()
        replicas = self._replicas.values()
        return sum(r.catch_up_s for r in replicas), sum(r.run_s for r in replicas)
