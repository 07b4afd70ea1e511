"""Block-STM on the workers (``compute_unit/stm.py``): the multi-version store, and whole
blocks that must give the sequential result whatever the order workers finish in, whatever
the lanes (hints right or wrong), with a worker lost mid-batch; on in-process workers and on
a real Ray CU. Every block here reaches the workers (the fallback is off) and goes through
the parallel validation: the coordinator's final pass must find nothing to re-execute."""

import pytest
import ray
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import (
    InlineComputeUnit,
    assert_identical,
    env_for,
    generator,
    small_genesis,
)

from compute_unit.blockstm import validate_block
from compute_unit.executor import CrashPlan
from compute_unit.mv_memory import ESTIMATE, Blocked, Credit, MVMemory, entries_of
from compute_unit.sequential import SequentialChain
from compute_unit.state import DictSnapshot, TxAccess
from compute_unit.stm import InlineWorkers, run_block_stm
from coordinator.pipeline import ChainRunner, ParallelExecutor
from storage.keys import AccountFields, acct_key, slot_key

A, B = b"\xaa" * 20, b"\xbb" * 20
HOT = "swap=0.6,erc20=0.3,mint=0.1"


# -- the multi-version store ------------------------------------------------------------------
def test_a_read_sees_the_latest_entry_below_it_with_credits_on_top():
    base = DictSnapshot({acct_key(A): AccountFields(1, 100), slot_key(A, 1): 5})
    memory = MVMemory(base)
    memory.record(2, entries_of(TxAccess({}, {acct_key(A): AccountFields(2, 50)})))
    memory.record(4, entries_of(TxAccess({}, {}, credits={A: 7})))
    memory.record(6, entries_of(TxAccess({}, {}, credits={A: 3})))
    assert memory.read(acct_key(A), 0) == AccountFields(1, 100)  # the pre-block state
    assert memory.read(acct_key(A), 3) == AccountFields(2, 50)
    assert memory.read(acct_key(A), 7) == AccountFields(2, 60)  # both credits
    assert isinstance(memory.entry(acct_key(A), 4), Credit)
    memory.estimate(4)
    with pytest.raises(Blocked) as blocked:
        memory.read(acct_key(A), 5)
    assert blocked.value.blocking == 4 and memory.entry(acct_key(A), 4) is ESTIMATE
    assert memory.read(acct_key(A), 4) == AccountFields(2, 50)  # below the estimate
    assert memory.record(4, {}) is False  # it wrote nothing new: its entry is gone
    assert memory.read(acct_key(A), 7) == AccountFields(2, 53)


def test_a_wipe_hides_older_slot_writes_but_not_the_wiping_transactions_own():
    memory = MVMemory(DictSnapshot({slot_key(A, 1): 5, slot_key(A, 2): 6}))
    memory.record(1, entries_of(TxAccess({}, {slot_key(A, 1): 9})))
    memory.record(3, entries_of(TxAccess({}, {slot_key(A, 2): 8}, wiped=frozenset({A}))))
    assert memory.read(slot_key(A, 1), 2) == 9
    assert memory.read(slot_key(A, 1), 4) == 0  # wiped by 3 after 1 wrote it (as WriteLayer)
    assert memory.read(slot_key(A, 5), 4) is None  # wiped, never written in the block
    assert memory.read(slot_key(A, 2), 4) == 8  # 3 wiped, then wrote it
    assert memory.read(slot_key(B, 1), 4) is None
    memory.estimate(3)
    with pytest.raises(Blocked):
        memory.read(slot_key(A, 1), 4)


def test_a_blocked_read_is_not_an_exception_py_evm_can_swallow():
    from compute_unit.mv_memory import MVReader

    memory = MVMemory(DictSnapshot())
    memory.record(0, {acct_key(A): AccountFields(1, 1)})
    memory.estimate(0)
    reader = MVReader(memory)
    reader.at(1)
    try:
        reader.get(acct_key(A))
    except Exception:  # what py-evm's EIP-7702 authorization loop catches
        pytest.fail("Blocked was caught as an Exception")
    except Blocked:
        pass
    assert reader.blocked == 0  # and the replica sees it even if something caught it


def _outcome(index, reads=None, writes=None, wiped=frozenset()):
    from compute_unit.executor import TxOutcome

    return TxOutcome(index, True, 21_000, None, TxAccess(reads or {}, writes or {}, wiped))


@pytest.mark.parametrize(
    "change",
    [
        {"writes": {acct_key(A): AccountFields(2, 0)}},
        {"writes": {acct_key(A): None}},  # a deletion: an entry of None
        {"wiped": frozenset({A}), "writes": {}},  # a wipe reaches the slot's readers
    ],
    ids=["write", "delete", "wipe"],
)
def test_a_lower_result_arriving_late_aborts_the_readers_it_changes_at_once(change):
    from compute_unit.scheduler import EXECUTED, Scheduler, TaskResult

    base = DictSnapshot({acct_key(A): AccountFields(1, 0), slot_key(A, 1): 5})
    scheduler = Scheduler(3, base)
    tasks = scheduler.take(3)
    reads = {acct_key(A): AccountFields(1, 0), slot_key(A, 1): 5}
    scheduler.deliver([TaskResult(2, tasks[2].incarnation, _outcome(2, reads))])
    assert scheduler.status[2] == EXECUTED
    # tx 1 still runs: the frontier stops at it, so only arrival-time validation sees tx 2
    scheduler.deliver([TaskResult(0, tasks[0].incarnation, _outcome(0, **change))])
    assert scheduler.frontier == 1
    assert scheduler.status[2] != EXECUTED and scheduler.stats.aborts == 1


def test_an_execution_that_raises_above_the_frontier_runs_again_once_below_is_final():
    from compute_unit.scheduler import READY, WAITING, Scheduler, TaskResult

    scheduler = Scheduler(3, DictSnapshot())
    tasks = scheduler.take(3)
    scheduler.deliver([TaskResult(2, tasks[2].incarnation, failed="MissingBytecode: 0x..")])
    assert scheduler.status[2] == WAITING
    scheduler.deliver([TaskResult(i, tasks[i].incarnation, _outcome(i)) for i in (0, 1)])
    assert scheduler.status[2] == READY and scheduler.frontier == 2
    [again] = scheduler.take(1)
    with pytest.raises(RuntimeError, match="transaction 2 failed to execute"):
        scheduler.deliver([TaskResult(2, again.incarnation, failed="MissingBytecode: 0x..")])


# -- whole blocks, in process -------------------------------------------------------------------
def _sequential(genesis, env, txs):
    return SequentialChain(genesis.state.items()).execute(
        env, [env.decode(t.encode()) for t in txs]
    )


def _stm(genesis, env, txs, workers, groups=None):
    snapshot = DictSnapshot(dict(genesis.state))
    raw = [tx.encode() for tx in txs]
    run = run_block_stm(env, snapshot, raw, workers, [tx.sender for tx in txs], groups)
    block = validate_block(env, snapshot, txs, run.outcomes)
    return run, block


def _same(block, sequential) -> bool:
    return [r.encode() for r in block.receipts] == [r.encode() for r in sequential.receipts]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mix=st.sampled_from(["erc20=1", HOT, "transfer=0.5,erc20=0.3,mint=0.2"]),
    skew=st.sampled_from([0.0, 0.8, 1.2]),
    seed=st.integers(0, 10**6),
    workers=st.integers(1, 4),
    order=st.one_of(st.none(), st.integers(0, 10**6)),
    lanes=st.sampled_from(["none", "right", "random"]),
)
def test_any_schedule_and_any_lanes_give_the_sequential_block(
    mix, skew, seed, workers, order, lanes
):
    genesis = small_genesis()
    txs = generator(genesis, mix, skew, seed).block(60)
    env = env_for(1, txs)
    groups = None
    if lanes == "right":  # the sender planner's groups
        from coordinator.planner import SenderPlanner

        groups = SenderPlanner().plan(env, txs, workers).groups
    elif lanes == "random":  # hints that are wrong
        import random

        rng = random.Random(seed)
        chosen = [rng.randrange(workers + 1) for _ in txs]
        groups = [[i for i, c in enumerate(chosen) if c == g] for g in range(workers + 1)]
        groups = [group for group in groups if group]
    pool = InlineWorkers(workers, order)
    run, block = _stm(genesis, env, txs, pool, groups)
    assert pool.ran >= len(txs)  # every transaction ran on a worker
    assert block.reexecutions == 0, "Block-STM left a stale outcome"
    sequential = _sequential(genesis, env, txs)
    assert _same(block, sequential) and block.gas_used == sequential.gas_used


def test_a_hot_block_goes_through_parallel_validation_and_aborts():
    genesis = small_genesis()
    txs = generator(genesis, HOT, 1.2, 4).block(120)
    env = env_for(1, txs)
    run, block = _stm(genesis, env, txs, InlineWorkers(3, seed=5))
    assert run.stats.aborts > 0 and run.stats.validations > len(txs)
    assert run.stats.executions > len(txs)  # re-executions ran on the workers
    assert block.reexecutions == 0 and _same(block, _sequential(genesis, env, txs))


def test_a_worker_lost_mid_batch_is_replaced_and_the_block_still_sequential():
    genesis = small_genesis()
    txs = generator(genesis, HOT, 0.8, 6).block(100)
    env = env_for(1, txs)
    pool = InlineWorkers(2, seed=1)
    pool.lose = {1}
    run, block = _stm(genesis, env, txs, pool)
    assert run.replaced == 1 and not pool.lose
    assert block.reexecutions == 0 and _same(block, _sequential(genesis, env, txs))


def test_the_pipeline_runs_blocks_by_block_stm_on_the_cu():
    genesis = small_genesis()
    cu = InlineComputeUnit(2)
    cu.stm_seed = 3
    executor = ParallelExecutor(cu, policy=None, stm=True)
    gen = generator(genesis, "transfer=0.2,erc20=0.5,swap=0.2,mint=0.1", 0.8, seed=9)
    with ChainRunner(genesis.state.items(), executor) as chain:
        for number in (1, 2, 3):
            txs = gen.block(80)
            before = cu.executed
            report, parallel, _ = chain.run_block(env_for(number, txs), txs)
            assert_identical(report)
            assert parallel.stm is not None and cu.executed - before >= len(txs)
            assert report.serial_reexecutions == 0 and report.stm_aborts is not None


# -- on a real CU ------------------------------------------------------------------------------
def test_block_stm_on_ray_workers_survives_a_worker_dying(ray_cluster):
    from compute_unit.worker import ComputeUnit

    genesis = small_genesis()
    cu = ComputeUnit(2, name="cu-stm")
    try:
        executor = ParallelExecutor(cu, policy=None, stm=True)
        gen = generator(genesis, "transfer=0.2,erc20=0.5,swap=0.2,mint=0.1", 0.8, seed=2)
        with ChainRunner(genesis.state.items(), executor) as chain:
            txs = gen.block(120)
            report, parallel, _ = chain.run_block(env_for(1, txs), txs)
            assert_identical(report)
            assert report.serial_reexecutions == 0
            assert set(parallel.stm.per_worker) == {0, 1}  # both workers ran transactions
            txs = gen.block(120)
            report, parallel, _ = chain.run_block(env_for(2, txs), txs, crash=CrashPlan(60))
            assert_identical(report)
            assert parallel.stm.replaced == 1 and cu.restarts == 1
            assert report.serial_reexecutions == 0
            assert len(set(ray.get([w.pid.remote() for w in cu.workers]))) == 2
    finally:
        cu.shutdown()
