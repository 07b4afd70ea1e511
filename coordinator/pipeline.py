"""Drives one block through the pipeline: admission, grouping, Compute Unit, validation,
commit, and the check against the sequential oracle.

``ChainRunner`` keeps the two chains side by side: py-evm's own (the oracle) and the parallel
one (State Storage and State Commitment on disk). Every block runs on both; the parallel
block must give byte-identical receipts, the same gas and the same state root.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from eth.abc import SignedTransactionAPI

from compute_unit import system_ops
from compute_unit.blockstm import ValidatedBlock, WriteStep, validate_block
from compute_unit.executor import BlockEnv, CrashPlan, TxOutcome, known_senders, run_group
from compute_unit.preload import (
    PreloadedReader,
    PreloadedState,
    Preloader,
    PreloadJob,
    hit_rate,
    preload_keys,
)
from compute_unit.sequential import SequentialChain, SequentialResult
from compute_unit.state import CachedReader, StateReader, WriteLayer
from compute_unit.stm import StmRun
from coordinator.admission import Rejection, admit
from coordinator.grouping import FallbackPolicy, Group, sequential_reason
from coordinator.learner import Prediction
from coordinator.planner import BlockPlan, Planner, SenderPlanner
from storage.committer import Committer, block_wipes
from storage.keys import StateKey
from storage.ss import FarReads, StorageView, store_identity
from storage.write_behind import BehindReader


class ComputeUnitAPI(Protocol):
    """What the pipeline needs of a Compute Unit (``compute_unit.worker.ComputeUnit``)."""

    size: int
    restarts: int

    def execute(
        self,
        env: BlockEnv,
        snapshot: StateReader,
        groups: Sequence[Group],
        raw_txs: Sequence[bytes],
        crash: CrashPlan | None = None,
        senders: Sequence[bytes] | None = None,
        preimages: bool = True,
    ) -> dict[int, TxOutcome]: ...


DEFAULT_FALLBACK = FallbackPolicy()
VIEW_SAMPLE = 64  # pre-block values the workers read, checked against the store per block


def same_pre_state(
    values: Mapping[StateKey, Any], snapshot: StateReader, sample: int = VIEW_SAMPLE
) -> bool:
    """Whether a sample of the pre-block values the workers read (and Block-STM validated
    against) is what the coordinator's own view of the store holds: a worker's view that is
    wrong (a store not caught up, a bad preload patch or overlay) shows in many keys."""
    keys = list(values)
    if len(keys) > sample:
        keys = random.Random(len(keys)).sample(keys, sample)
    return all(snapshot.get(key) == values[key] for key in keys)


@dataclass
class ParallelResult:
    block: ValidatedBlock
    groups: list[Group]
    elapsed_s: float
    fallback: str | None = None  # why the block ran sequentially in process, if it did
    state_root: bytes = b""  # after commit
    prior: dict[StateKey, Any] | None = None  # pre-block values of written keys (history)
    stm: StmRun | None = None  # the Block-STM run on the workers, if it ran so
    on_workers_s: float = 0.0  # of elapsed_s, the time work was on the workers
    phases_ms: dict[str, float] = field(default_factory=dict)  # where elapsed_s went


class ParallelExecutor:
    """Plans a block, runs the groups on a Compute Unit, validates in block order.

    A block the fallback policy judges not worth dispatching runs as one group in this
    process instead (and goes through the same validation).
    """

    def __init__(
        self,
        cu: ComputeUnitAPI,
        planner: Planner | None = None,
        policy: FallbackPolicy | None = DEFAULT_FALLBACK,
        drop_invalid: bool = False,
        stm: bool = False,
    ) -> None:
        """``drop_invalid``: blocks are being built, so a transaction invalid at its
        position is left out instead of failing the block (``validate_block``); ``stm``:
        run blocks by Block-STM on the CU's workers (``compute_unit/stm.py``: validation and
        re-execution there, the plan's groups only lanes), where the CU can."""
        self.cu = cu
        self.stm = stm
        self.planner = planner or SenderPlanner()
        self.policy = policy
        self.drop_invalid = drop_invalid

    @property
    def restarts(self) -> int:
        return self.cu.restarts

    def plan(
        self,
        env: BlockEnv,
        txs: Sequence[SignedTransactionAPI],
        state: StateReader | None = None,
    ) -> BlockPlan:
        return self.planner.plan(env, txs, self.cu.size, state)

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
        """``snapshot`` is the pre-block state here (validation reads it); ``remote`` the
        same state as the workers reach it (a picklable view, or the preloaded state) and
        ``local`` as a run in this process reads it, when they differ. ``groups`` overrides
        the plan (tests); ``plan`` is the planner's, if made already."""
        started = time.perf_counter()
        fallback = None
        stm_run: StmRun | None = None
        on_workers = 0.0  # seconds with work on the CU's workers
        if groups is None:
            plan = plan or self.plan(env, txs)
            groups = plan.groups
            if self.policy is not None:
                fallback = sequential_reason(groups, plan.weights, self.policy)
        preimages = self.planner.wants_preimages  # the outcomes are leaner without
        if fallback is not None:
            groups = [list(range(len(txs)))]
            layer = WriteLayer(local or snapshot)
            in_order = run_group(env, layer, list(enumerate(txs)), preimages)
            outcomes = {outcome.index: outcome for outcome in in_order}
        else:
            raw = [tx.encode() for tx in txs]
            senders = known_senders(txs)
            execute_stm = getattr(self.cu, "execute_stm", None) if self.stm else None
            if execute_stm is not None:
                stm_run = execute_stm(
                    env, remote or snapshot, raw, senders, groups, crash, preimages
                )
            if stm_run is not None:
                outcomes = stm_run.outcomes
                on_workers = stm_run.wall_s - stm_run.idle_s
            else:
                dispatched = time.perf_counter()
                outcomes = self.cu.execute(
                    env, remote or snapshot, groups, raw, crash, senders, preimages
                )
                on_workers = time.perf_counter() - dispatched
        # after Block-STM the outcomes are final: this pass re-executes nothing (a check that
        # costs comparisons) and assembles the write set and receipts, over the pre-block
        # state the scheduler validated against (it holds what the workers read), once a
        # sample of it matches the store; else over the store, re-executing what read wrong
        validating = time.perf_counter()
        pre_block = snapshot
        if stm_run is not None and same_pre_state(stm_run.pre_block.values, snapshot):
            pre_block = stm_run.pre_block
        block = validate_block(env, pre_block, txs, outcomes, self.drop_invalid)
        done = time.perf_counter()
        result = ParallelResult(block, groups, done - started, fallback, stm=stm_run)
        result.on_workers_s = on_workers
        result.phases_ms = {
            "execute": round(on_workers * 1000, 2),
            "validate": round((done - validating) * 1000, 2),
        }
        return result


@dataclass
class BlockReport:
    """One block's row in the run table and JSON."""

    number: int
    txs: int
    rejected: int
    gas_used: int
    sequential_ms: float | None  # None: no oracle here (a node; its verifier checks)
    parallel_ms: float
    reexecutions: int
    groups: int
    worker_restarts: int
    receipts_match: bool | None
    gas_match: bool | None
    root_match: bool | None
    state_root: str
    fallback: str | None = None
    largest_share: float = 0.0  # the heaviest predicted conflict component's gas share
    precision: float | None = None  # of the hint predictions (None: no hints)
    recall: float | None = None
    preloaded: int = 0  # keys in the preloaded table
    preload_ms: float = 0.0  # reading them (a prefetch overlapped the block before)
    preload_hit_rate: float | None = None  # share of keys read that were preloaded
    stm_aborts: int | None = None  # Block-STM: outcomes invalidated on the workers' path
    serial_reexecutions: int = 0  # done by the coordinator's final pass (0 after Block-STM)
    serial_share: float = 1.0  # of the parallel time, the share spent outside the workers
    # the parallel time by phase (ms): plan (with preload), execute (work on the workers;
    # Block-STM's validation and re-execution included), validate (the coordinator's final
    # pass), commit (State Storage and Commitment); learn is after, off the parallel time
    profile: dict[str, float] = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        if not self.sequential_ms or not self.parallel_ms:
            return 0.0
        return self.sequential_ms / self.parallel_ms

    @property
    def matches(self) -> bool:
        """Checked against the oracle and equal (False when not checked)."""
        return bool(self.receipts_match and self.gas_match and self.root_match)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "speedup": round(self.speedup, 3), "matches": self.matches}


def first_receipt_mismatch(parallel: Sequence[Any], sequential: Sequence[Any]) -> int | None:
    """Index of the first receipt whose encoding differs (or the shorter length)."""
    for index, (ours, theirs) in enumerate(zip(parallel, sequential, strict=False)):
        if ours.encode() != theirs.encode():
            return index
    return None if len(parallel) == len(sequential) else min(len(parallel), len(sequential))


class ChainRunner:
    """The oracle chain and the parallel chain, advanced together block by block.

    The parallel chain lives on disk (``storage/committer.py``: State Storage and State
    Commitment under ``data_dir``, a temporary folder by default); blocks read their pre-block
    state from State Storage, the workers through a ``StorageView``.
    """

    def __init__(
        self,
        genesis: Iterable[tuple[StateKey, Any]],
        executor: ParallelExecutor,
        data_dir: str | Path | None = None,
        preload: bool = False,
        verify: bool = True,
        keep_prior: bool = False,
        far_state: FarReads | None = None,
        write_behind: bool = False,
        **storage: Any,
    ) -> None:
        """``preload``: execute over the preloaded predicted state (with a hint planner);
        ``verify``: run every block on the sequential oracle too, after the parallel chain
        committed it (replay, tests, benchmarks; a node verifies off its critical path);
        ``keep_prior``: read the pre-block value of every written key before commit (the
        node's state history); ``storage`` goes to the ``Committer`` (``keep_versions``,
        ``keep_writesets`` ...); ``far_state``: how workers on other machines read the
        state (``compute_unit/remote_state.py``); ``write_behind``: a block's stores are
        written while the next block runs (``Committer.commit(background=True)``: the next
        block reads the write set in flight from memory; ``settle`` waits for it). The genesis
        is loaded into an empty data directory only."""
        self.far_state = far_state
        self.write_behind = write_behind
        items = list(genesis)
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="evmpp-data-")
        self.committer = Committer(data_dir or self._tmp.name, **storage)
        # read once: each block's view carries it to the workers (tells the store elsewhere)
        self._store_identity = store_identity(self.committer.ss.path)
        if self.committer.mark is None:
            self.committer.load_genesis(items)
        self.oracle = SequentialChain(items) if verify else None
        self.keep_prior = keep_prior
        self.committing = False
        # (env, validated block, prior values, state root) -> None: called once a block's
        # root is known, before the state is written (``Committer.commit``); a node stores
        # its block there
        self.before_write: Callable[[BlockEnv, ValidatedBlock, Any, bytes], None] | None = None
        self.executor = executor
        self.preloader = Preloader(self.committer.ss) if preload else None
        self._prefetch: PreloadJob | None = None
        self._prefetch_patches: list[tuple[dict, frozenset[bytes]]] = []
        self.last_rejections: list[Rejection] = []
        self._new_block_view()

    def _new_block_view(self) -> None:
        """The next block's pre-state: as State Storage holds it, under the write set of the
        block still being written behind, if one is."""
        in_flight = self.committer.in_flight
        written = self.committer.mark.number
        ss = self.committer.ss
        view = StorageView(ss.path, written, self.far_state, self._store_identity)
        if in_flight is None:
            self.state: Any = ss
            self.remote: StateReader = view
        else:
            self.state = BehindReader(in_flight, ss)
            self.remote = BehindReader(in_flight, view)
        self.snapshot = CachedReader(self.state)

    def settle(self) -> None:
        """Wait until the last block's stores are written (``write_behind``)."""
        self.committer.settle()
        self._new_block_view()

    def close(self) -> None:
        try:
            if self.preloader is not None:
                self.preloader.close()
            StorageView.opened.release(str(self.committer.ss.path))
            self.committer.close()  # a failed write behind is raised here, after closing
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()

    def __enter__(self) -> ChainRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prefetch(self, candidates: Sequence[SignedTransactionAPI]) -> None:
        """Start preloading the next block's predicted keys now, while this block runs
        (reads that land before this block commits are patched with its write set)."""
        predict = getattr(self.executor.planner, "predict", None)
        if self.preloader is None or predict is None:
            return
        self._prefetch = self.preloader.start(*preload_keys(predict(candidates, self.snapshot)))
        # it reads State Storage: a block still written behind is not there yet
        in_flight = self.committer.in_flight
        self._prefetch_patches = [] if in_flight is None else [(in_flight.writes, in_flight.wiped)]

    def _preload(self, predictions: Sequence[Prediction]) -> PreloadedState:
        """The block's predicted state: the prefetched job's, patched, topped up with keys
        predicted only now (the order is final); else read now, static keys first."""
        static, dynamic = preload_keys(predictions)
        job, self._prefetch = self._prefetch, None
        if job is None:
            return self._behind(self.preloader.start(static, dynamic).result())
        state = job.result()
        for writes, wiped in self._prefetch_patches:
            state.patch(writes, wiped)
        state.dynamic_ms += state.read(self.committer.ss, static | dynamic)
        return self._behind(state)

    def _behind(self, state: PreloadedState) -> PreloadedState:
        """Values read from State Storage while the last block is still written behind:
        brought up to date with its write set."""
        in_flight = self.committer.in_flight
        if in_flight is not None:
            state.patch(in_flight.writes, in_flight.wiped)
        return state

    def run_block(
        self,
        env: BlockEnv,
        candidates: Sequence[bytes | SignedTransactionAPI],
        groups: list[Group] | None = None,
        crash: CrashPlan | None = None,
    ) -> tuple[BlockReport, ParallelResult, SequentialResult]:
        """Build a block from candidates: admission drops invalid ones, the rest runs."""
        admission = admit(env, self.snapshot, candidates)
        self.last_rejections = admission.rejected
        report, parallel, sequential = self.import_block(env, admission.accepted, groups, crash)
        report.rejected += len(admission.rejected)
        return report, parallel, sequential

    def import_block(
        self,
        env: BlockEnv,
        txs: Sequence[SignedTransactionAPI],
        groups: list[Group] | None = None,
        crash: CrashPlan | None = None,
    ) -> tuple[BlockReport, ParallelResult, SequentialResult | None]:
        """Run a block on the parallel chain, commit it, then (with ``verify``) on the oracle.

        An invalid transaction fails the block, unless the executor drops invalid ones (a
        block being built): then the block is the transactions it kept, and the oracle runs
        those. Parallel time runs from grouping to the committed state root, as the oracle's
        runs from its first transaction to its persisted root.
        """
        started = time.perf_counter()
        plan = self.executor.plan(env, txs, self.snapshot) if groups is None else None
        remote: StateReader = self.remote
        local: StateReader | None = None
        preloaded: set[StateKey] | None = None
        preload_ms = 0.0
        if self.preloader is not None and plan is not None and plan.predictions is not None:
            state = self._preload(plan.predictions)
            preload_ms = state.static_ms + state.dynamic_ms
            table = state.table()
            remote = PreloadedReader(table, self.remote)
            local = PreloadedReader(table, self.snapshot)
            preloaded = set(state.values)
        snapshot: StateReader = self.snapshot
        pre = system_ops.pre_block(env, snapshot)
        if pre:  # the transactions run over the system writes made before them
            snapshot = system_ops.OverlayReader(pre.writes, snapshot)
            remote = system_ops.OverlayReader(pre.writes, remote)
            local = None if local is None else system_ops.OverlayReader(pre.writes, local)
        planned_s = time.perf_counter() - started
        parallel = self.executor.execute(env, snapshot, txs, groups, crash, remote, plan, local)
        parallel.elapsed_s += planned_s
        block = parallel.block
        kept = [txs[i] for i in block.included] if block.dropped else list(txs)
        learning = time.perf_counter()
        score = None if plan is None else self.executor.planner.learn(env, kept, plan, block)
        learn_ms = (time.perf_counter() - learning) * 1000
        post = system_ops.post_block(env, system_ops.after(snapshot, block.writes, block.wiped))
        if env.intermediate_roots:
            block.steps = [
                *([WriteStep(pre.writes, frozenset())] if pre else []),
                *block.steps,
                *([WriteStep(post.writes, frozenset(post.wiped))] if post else []),
            ]
        if pre or post:
            whole = pre.then(system_ops.SystemWrites(block.writes, set(block.wiped))).then(post)
            block.writes, block.wiped = whole.writes, frozenset(whole.wiped)
        # the storage the block wipes as the committer takes it, deleted accounts' included:
        # the prefetch patch and the chain's history then record the same set
        wiped = block_wipes(block.writes, block.wiped)
        if env.intermediate_roots:
            wiped = wiped.union(*(block_wipes(step.writes, step.wiped) for step in block.steps))
        block.wiped = wiped
        if self.keep_prior:
            keys = list(block.writes)
            parallel.prior = dict(zip(keys, self.state.get_many(keys), strict=True))
        started = time.perf_counter()
        number = env.header.block_number
        self.committing = True  # from here a failure leaves the stores to recover on open
        if env.intermediate_roots:
            steps = [(step.writes, step.wiped) for step in block.steps]
            roots = self.committer.commit_steps(number, steps, block.writes, block.wiped)
            first = 1 if pre else 0  # the system steps' roots are in no receipt
            block.with_state_roots(roots[first : first + len(block.receipts)])
            root = self.committer.state_root
        else:
            hook = None
            if self.before_write is not None:
                hook = partial(self.before_write, env, block, parallel.prior)
            root = self.committer.commit(
                number, block.writes, block.wiped, before_write=hook, background=self.write_behind
            )
        commit_s = time.perf_counter() - started
        parallel.elapsed_s += commit_s
        parallel.state_root = root
        if self._prefetch is not None:
            self._prefetch_patches.append((block.writes, block.wiped))
        self._new_block_view()
        self.committing = False
        sequential = None
        if self.oracle is not None:
            oracle_txs = [env.decode(tx.encode()) for tx in kept]  # no sender recovered yet
            sequential = self.oracle.execute(env, oracle_txs)
        report = BlockReport(
            number=env.header.block_number,
            txs=len(kept),
            rejected=len(block.dropped),
            gas_used=block.gas_used,
            sequential_ms=None if sequential is None else sequential.elapsed_s * 1000,
            parallel_ms=parallel.elapsed_s * 1000,
            reexecutions=block.reexecutions
            + (0 if parallel.stm is None else parallel.stm.stats.aborts),
            serial_reexecutions=block.reexecutions,
            stm_aborts=None if parallel.stm is None else parallel.stm.stats.aborts,
            profile={
                "plan": round(planned_s * 1000, 2),
                **parallel.phases_ms,
                "commit": round(commit_s * 1000, 2),
                "learn": round(learn_ms, 2),
            },
            serial_share=round(1 - parallel.on_workers_s / parallel.elapsed_s, 4)
            if parallel.elapsed_s
            else 1.0,
            groups=len(parallel.groups),
            worker_restarts=self.executor.restarts,
            receipts_match=None
            if sequential is None
            else first_receipt_mismatch(block.receipts, sequential.receipts) is None,
            gas_match=None if sequential is None else block.gas_used == sequential.gas_used,
            root_match=None if sequential is None else root == sequential.state_root,
            state_root="0x" + root.hex(),
            fallback=parallel.fallback,
            largest_share=0.0 if plan is None else round(plan.largest_share, 3),
            precision=None if score is None else round(score.precision, 4),
            recall=None if score is None else round(score.recall, 4),
            preloaded=len(preloaded or ()),
            preload_ms=round(preload_ms, 2),
            preload_hit_rate=None
            if preloaded is None
            else round(hit_rate(preloaded, [o.access.reads for o in block.outcomes]), 4),
        )
        return report, parallel, sequential
