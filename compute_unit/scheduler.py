"""The Block-STM scheduler: which transaction runs next, and which results still hold.

The coordinator's side of a block's execution on the workers (pevm's ``scheduler.rs``, with
the validation targeted by a read index instead of a validation cursor). Every transaction
has an incarnation; a worker asks for a batch of execution tasks (the lowest ready positions,
its own lane's first: transactions the hint table predicts to depend on each other share a
lane, so one worker runs them in order; another lane's is taken once its predicted
predecessor has run), runs them against its replica of the multi-version store
(``compute_unit/mv_memory.py``) and sends back each one's outcome, or the lower transaction
it found an ``ESTIMATE`` of. On an outcome the scheduler:

1. installs its entries in the store (and the log the workers' replicas follow);
2. validates it against the store as it is now (it may have run on an older replica), and
   every executed higher transaction that read a key whose entry changed; a transaction
   whose reads no longer hold is aborted: its entries become ``ESTIMATE``, its incarnation
   goes up, and it runs again once the transaction that wrote the value it read wrongly is
   final (running it sooner, over a writer that may itself be aborted, is how a hot key's
   chain of transactions re-executes over and over);
3. wakes the transactions that waited for it;
4. moves the commit frontier: the lowest transaction not yet final is final once executed,
   since everything below it is final and it is valid against the store (so the result is
   the sequential one). It is not validated again there: it was when its result came, and
   again whenever an entry below it that it read changed (step 2); an aborted writer's
   estimates hold the frontier below it until it runs again, and its new entries are
   such a change. The coordinator's final pass (``compute_unit/blockstm.py``) checks that
   nothing was left stale.

Validation is a comparison of values (``read_holds``), cheap next to running py-evm; it runs
here while the workers execute. The block is done when the frontier reaches its end.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from compute_unit.executor import TxOutcome
from compute_unit.mv_memory import WIPE, Blocked, MVMemory, entries_of
from compute_unit.state import CachedReader, StateReader, read_holds
from storage.keys import SLOT, StateKey

READY, RUNNING, EXECUTED, WAITING = "ready", "running", "executed", "waiting"
_MISSING = object()  # no entry (unlike an entry of None: a deleted account)


@dataclass(frozen=True)
class ExecTask:
    index: int
    incarnation: int


@dataclass(frozen=True)
class TaskResult:
    """A task's result: the outcome, or the lower transaction whose estimate it met."""

    index: int
    incarnation: int
    outcome: TxOutcome | None = None
    blocked_on: int | None = None
    failed: str | None = None  # py-evm raised (over a speculative state, most often)


@dataclass(frozen=True)
class Batch:
    """A worker's answer to a batch of tasks: each one's result, and the pre-block values it
    read first while running them (the scheduler validates against those, not the store)."""

    results: list[TaskResult]
    base_reads: dict[StateKey, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LogEntry:
    """A change to the store, for the replicas: ``entries`` installed at ``index``, or (None)
    the transaction's entries turned into estimates."""

    index: int
    entries: dict[StateKey, Any] | None


@dataclass
class StmStats:
    executions: int = 0
    aborts: int = 0  # outcomes invalidated (each costs a re-execution)
    blocked: int = 0  # executions stopped at an estimate
    validations: int = 0
    stale: int = 0  # results of an incarnation already superseded


@dataclass
class Scheduler:
    """One block's Block-STM state on the coordinator."""

    count: int
    base: StateReader
    lanes: Sequence[int] | None = None  # each transaction's lane (None: all in one)
    after: Sequence[int | None] | None = None  # each one's predicted predecessor (its group's)
    stats: StmStats = field(default_factory=StmStats)

    def __post_init__(self) -> None:
        # the pre-block state as the workers read it: what they send back is not read again
        self.pre_block = CachedReader(self.base)
        self.memory = MVMemory(self.pre_block)
        self.log: list[LogEntry] = []
        self.incarnation = [0] * self.count
        self.status = [READY] * self.count
        self.outcomes: list[TxOutcome | None] = [None] * self.count
        self.frontier = 0
        self._readers: dict[StateKey, set[int]] = {}
        self._slot_readers: dict[bytes, set[int]] = {}  # address -> readers of its slots
        self._dependents: dict[int, set[int]] = {}  # waiting for an estimate's writer to run
        self._final_waiters: dict[int, set[int]] = {}  # waiting for a writer to be final
        lanes = self.lanes or [0] * self.count
        self._lane = list(lanes)
        self._queues: dict[int, list[int]] = {}
        self._after = list(self.after or [None] * self.count)
        for index in range(self.count):
            self._queues.setdefault(self._lane[index], []).append(index)  # sorted: a heap

    @property
    def done(self) -> bool:
        return self.frontier >= self.count

    def final_outcomes(self) -> dict[int, TxOutcome]:
        if not self.done:
            raise RuntimeError(f"the block is final up to {self.frontier} of {self.count}")
        return {index: outcome for index, outcome in enumerate(self.outcomes) if outcome}

    # -- handing out work --------------------------------------------------------------------
    def take(self, limit: int, lane: int = 0) -> list[ExecTask]:
        """Up to ``limit`` ready transactions, lowest first: ``lane``'s own, then the
        fullest other lane's (work stealing)."""
        tasks: list[ExecTask] = []
        while len(tasks) < limit:
            index = self._pop(self._queues.get(lane))
            if index is None:
                index = self._steal(lane)
            if index is None:
                break
            self.status[index] = RUNNING
            tasks.append(ExecTask(index, self.incarnation[index]))
        return tasks

    def _pop(self, queue: list[int] | None) -> int | None:
        while queue:
            index = heapq.heappop(queue)
            if self.status[index] == READY:
                return index
        return None

    def _steal(self, lane: int) -> int | None:
        """The lowest ready transaction of another lane whose predicted predecessor has run
        (taken sooner, it would run over a state its predecessor is about to change)."""
        candidates = []
        for other, queue in self._queues.items():
            while queue and self.status[queue[0]] != READY:
                heapq.heappop(queue)
            if other != lane and queue:
                candidates.append((queue[0], other))
        for index, other in sorted(candidates):
            before = self._after[index]
            if before is None or self.status[before] == EXECUTED:
                return heapq.heappop(self._queues[other])
        return None

    def give_back(self, tasks: Sequence[ExecTask]) -> None:
        """Tasks a lost worker never finished: ready again, as a new incarnation (a late
        result of the old one is ignored)."""
        for task in tasks:
            if (
                self.status[task.index] == RUNNING
                and self.incarnation[task.index] == task.incarnation
            ):
                self.incarnation[task.index] += 1
                self._ready(task.index)

    def _ready(self, index: int) -> None:
        self.status[index] = READY
        heapq.heappush(self._queues.setdefault(self._lane[index], []), index)

    # -- results -----------------------------------------------------------------------------
    def deliver(
        self, results: Sequence[TaskResult], base_reads: dict[StateKey, Any] | None = None
    ) -> None:
        """Take a batch's results (and the pre-block values its worker read)."""
        if base_reads:
            self.pre_block.seed(base_reads)
        for result in sorted(results, key=lambda r: r.index):
            index = result.index
            if self.status[index] != RUNNING or result.incarnation != self.incarnation[index]:
                self.stats.stale += 1
                continue
            if result.failed is not None:
                self._failed(index, result.failed)
                continue
            if result.outcome is None:
                self._wait(index, result.blocked_on)
                continue
            self._install(index, result.outcome)
        self._advance()

    def _failed(self, index: int, error: str) -> None:
        """Execution raised: over a state no sequential run gives (a speculative code hash
        with no code, say) it runs again once everything below it is final; at the
        frontier the error is real."""
        if index == self.frontier:
            raise RuntimeError(f"transaction {index} failed to execute: {error}")
        self.stats.aborts += 1
        self.incarnation[index] += 1
        self._wait_final(index, index - 1)

    def _wait(self, index: int, blocking: int | None) -> None:
        self.stats.blocked += 1
        if blocking is None or self.status[blocking] == EXECUTED:
            self._ready(index)  # it has run since the worker's replica was made
            return
        self.status[index] = WAITING
        self._dependents.setdefault(blocking, set()).add(index)

    def _install(self, index: int, outcome: TxOutcome) -> None:
        self.stats.executions += 1
        if outcome.invalid is not None and index > self.frontier:
            self._invalid_early(index, outcome)
            return
        entries = {} if outcome.invalid is not None else entries_of(outcome.access)
        before = {key: self.memory.entry(key, index) for key in self.memory.written.get(index, ())}
        self.memory.record(index, entries)
        self.log.append(LogEntry(index, entries))
        changed = {
            key
            for key in before.keys() | entries.keys()
            if before.get(key, _MISSING) != entries.get(key, _MISSING)
        }
        previous = self.outcomes[index]
        if previous is not None:
            for key in previous.access.reads:
                self._readers.get(key, set()).discard(index)
                if key[0] == SLOT:
                    self._slot_readers.get(key[1], set()).discard(index)
        for key in outcome.access.reads:
            self._readers.setdefault(key, set()).add(index)
            if key[0] == SLOT:
                self._slot_readers.setdefault(key[1], set()).add(index)
        self.outcomes[index] = outcome
        self.status[index] = EXECUTED
        for waiting in sorted(self._dependents.pop(index, ())):
            if self.status[waiting] == WAITING:
                self._ready(waiting)
        self._check(index)
        for reader in sorted(self._affected(index, changed)):
            if self.status[reader] == EXECUTED:
                self._check(reader)

    def _affected(self, index: int, changed: set[StateKey]) -> set[int]:
        """Executed transactions above ``index`` that may have read a changed entry: the
        readers of each key up to the next entry that replaces its value (above that they
        read that one's; credits in between add to it), and of every slot of an address
        whose wipe changed."""
        affected: set[int] = set()
        for key in changed:
            readers = (
                self._slot_readers.get(key[1], ()) if key[0] == WIPE else self._readers.get(key, ())
            )
            above = [t for t in readers if t > index]
            if not above:  # the coinbase: every transaction credits it, few read it
                continue
            upto = None if key[0] == WIPE else self.memory.next_overwrite(key, index, max(above))
            affected.update(t for t in above if upto is None or t <= upto)
        return affected

    def _invalid_early(self, index: int, outcome: TxOutcome) -> None:
        """An invalid outcome (a nonce too high, a balance too low) above the frontier is
        most often a predecessor not yet run right (one sender's next transaction): it is
        not installed, and the transaction runs again once everything it read is final (at
        the frontier an invalid outcome is final: the block refuses or drops it)."""
        self.stats.aborts += 1
        if self.memory.written.get(index):
            self.memory.estimate(index)  # its last entries are about to go
            self.log.append(LogEntry(index, None))
        self.incarnation[index] += 1
        # what it waits for: what it read, its predicted predecessor (a sender's previous
        # transaction), or else everything below it
        waits = [self.memory.latest_writer(key, index) for key in outcome.access.reads]
        waits.append(self._after[index])
        pending = [w for w in waits if w is not None and w >= self.frontier]
        self._wait_final(index, max(pending, default=index - 1))

    def _wait_final(self, index: int, writer: int | None) -> None:
        """Ready once ``writer`` is final (now, if it is already)."""
        if writer is not None and writer >= self.frontier:
            self.status[index] = WAITING
            self._final_waiters.setdefault(writer, set()).add(index)
        else:
            self._ready(index)

    def _check(self, index: int) -> bool:
        """Validate an executed transaction; abort it if a read no longer holds."""
        writer = self._stale_read_writer(index)
        if writer is False:
            return True
        self._abort(index, writer)
        return False

    def _stale_read_writer(self, index: int) -> int | None | bool:
        """False when every read holds; else the highest transaction that wrote a read that
        does not (None: only the pre-block state): the rerun waits for all of them."""
        self.stats.validations += 1
        memory = self.memory
        stale = False
        writer: int | None = None
        for key, seen in self.outcomes[index].access.reads.items():
            try:
                if read_holds(seen, memory.read(key, index)):
                    continue
                latest = memory.latest_writer(key, index)
            except Blocked as blocked:
                latest = blocked.blocking
            stale = True
            if latest is not None and (writer is None or latest > writer):
                writer = latest
        return writer if stale else False

    def _abort(self, index: int, writer: int | None) -> None:
        self.stats.aborts += 1
        self.memory.estimate(index)
        self.log.append(LogEntry(index, None))
        self.incarnation[index] += 1
        self._wait_final(index, writer)

    def _advance(self) -> None:
        while self.frontier < self.count and self.status[self.frontier] == EXECUTED:
            for waiting in sorted(self._final_waiters.pop(self.frontier, ())):
                if self.status[waiting] == WAITING:
                    self._ready(waiting)
            self.frontier += 1
