"""A worker's side of Block-STM: its replica of the multi-version store, and running tasks.

At a block's start a worker gets the block once (env, the pre-block state view, the raw
transactions and their recovered senders) and keeps it for the block: each transaction is
decoded once, however often it runs. Each task batch comes with the scheduler's log since the
worker's last batch, which brings the replica up to date; the batch's transactions then run
in order, each over the replica at its position, and each one's entries are put in the
replica (so a batch's later transactions, and the next batch's, see them as a sequential run
would). They stay: a result the scheduler takes it installs as it is and logs (the replica
records the same entries again), and it takes every result of a task it handed out, bar a
lost worker's, whose replica goes with it; what it aborts later comes as an estimate in the
log, after them.
A read that meets an ``ESTIMATE`` stops that transaction; it is reported as waiting.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from compute_unit.executor import BlockEnv, TransactionRunner, decode_known
from compute_unit.mv_memory import Blocked, MVMemory, MVReader, entries_of
from compute_unit.scheduler import Batch, ExecTask, LogEntry, TaskResult
from compute_unit.state import RecordingReader, StateReader


class Replica:
    """One worker's view of one block under Block-STM."""

    def __init__(
        self,
        env: BlockEnv,
        base: StateReader,
        raw_txs: Sequence[bytes],
        senders: Sequence[bytes] | None = None,
        preimages: bool = True,
    ) -> None:
        self.env = env
        self.preimages = preimages
        self.base = RecordingReader(base)  # its first reads go back with each batch
        self.memory = MVMemory(self.base)
        self.raw_txs = raw_txs
        self.senders = senders
        self.applied = 0  # log entries applied
        self._txs: dict[int, Any] = {}
        self._reader = MVReader(self.memory)
        self._runner: TransactionRunner | None = None
        self.catch_up_s = 0.0  # bringing the replica up to date
        self.run_s = 0.0  # running batches

    def catch_up(self, entries: Sequence[LogEntry]) -> None:
        started = time.perf_counter()
        for entry in entries:
            if entry.entries is None:
                self.memory.estimate(entry.index)
            else:
                self.memory.record(entry.index, entry.entries)
        self.applied += len(entries)
        self.catch_up_s += time.perf_counter() - started

    def _tx(self, index: int) -> Any:
        tx = self._txs.get(index)
        if tx is None:
            sender = self.senders[index] if self.senders else None
            tx = self._txs[index] = decode_known(self.env, self.raw_txs[index], sender)
        return tx

    def run(self, tasks: Sequence[ExecTask]) -> Batch:
        started = time.perf_counter()
        results: list[TaskResult] = []
        for task in sorted(tasks, key=lambda t: t.index):
            result = self._run_one(task)
            results.append(result)
            if result.outcome is not None:
                outcome = result.outcome
                entries = {} if outcome.invalid is not None else entries_of(outcome.access)
                self.memory.record(task.index, entries)
        self.run_s += time.perf_counter() - started
        return Batch(results, self.base.take())

    def _run_one(self, task: ExecTask) -> TaskResult:
        index = task.index
        self._reader.at(index)
        if self._runner is None:
            self._runner = TransactionRunner(self.env, self._reader, self.preimages)
        try:
            outcome = self._runner.run(index, self._tx(index))
        except Blocked as blocked:
            self._runner = None  # py-evm's state was left mid-transaction
            return TaskResult(index, task.incarnation, blocked_on=blocked.blocking)
        except Exception as err:  # over a speculative state py-evm may fail outright
            self._runner = None
            return TaskResult(index, task.incarnation, failed=f"{type(err).__name__}: {err}")
        if self._reader.blocked is not None:  # a read blocked, and py-evm caught it
            self._runner = None
            return TaskResult(index, task.incarnation, blocked_on=self._reader.blocked)
        return TaskResult(index, task.incarnation, outcome)
