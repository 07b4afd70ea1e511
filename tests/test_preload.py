"""Preloading and hint-planned blocks: the preloaded state is exactly State Storage's (patched
when a block commits meanwhile), misses fall back and are counted, and blocks planned from
learned or from deliberately wrong hints give the sequential result."""

import pickle
import random

from eth.constants import BLANK_ROOT_HASH
from support import InlineComputeUnit, assert_identical, env_for, generator, small_genesis

from compute_unit.preload import PreloadedReader, PreloadedState, Preloader, hit_rate
from compute_unit.state import DictSnapshot
from coordinator.hints import TRANSFER, HintTable, Rule
from coordinator.pipeline import ChainRunner, ParallelExecutor
from coordinator.planner import HintPlanner, tx_fields
from storage.keys import ACCT, CODE, SLOT, AccountFields, encode_account
from storage.ss import CommitMark, StateStorage

A, B, C = b"\xaa" * 20, b"\xbb" * 20, b"\xcc" * 20


def storage_with_state(tmp_path) -> StateStorage:
    ss = StateStorage(tmp_path / "ss")
    writes = {(ACCT, A): AccountFields(1, 10), (ACCT, B): AccountFields(2, 20), (SLOT, A, 1): 5}
    records = {
        address: encode_account(f.nonce, f.balance, BLANK_ROOT_HASH, f.code_hash)
        for (_, address), f in ((k, v) for k, v in writes.items() if k[0] == ACCT)
    }
    ss.write_block(CommitMark(0, b"\0" * 32), writes, frozenset(), records)
    return ss


def test_preloaded_values_are_state_storages_then_patched(tmp_path):
    ss = storage_with_state(tmp_path)
    preloader = Preloader(ss)
    static = {(SLOT, A, 1), (ACCT, A)}
    dynamic = {(ACCT, B), (ACCT, C), (SLOT, A, 2), (SLOT, A, 1)}
    state = preloader.start(static, dynamic).result()
    assert state.values == {key: ss.get(key) for key in static | dynamic}
    assert state.values[(ACCT, C)] is None  # known absent: no read at execution
    state.patch({(ACCT, A): AccountFields(1, 99), (SLOT, A, 2): 0, (ACCT, C): None}, {A})
    assert state.values[(ACCT, A)] == AccountFields(1, 99)
    assert state.values[(SLOT, A, 1)] is None  # A's storage was wiped
    assert state.values[(SLOT, A, 2)] is None
    preloader.close()
    ss.close()


def test_the_reader_counts_misses_and_reads_them_from_storage():
    state = PreloadedState({(ACCT, A): AccountFields(1, 10), (SLOT, A, 1): 5, (CODE, b"h"): None})
    fallback = DictSnapshot({(SLOT, A, 2): 7, (ACCT, B): AccountFields(3, 30)})
    reader = pickle.loads(pickle.dumps(PreloadedReader(state.table(), fallback)))
    assert reader.get((ACCT, A)) == AccountFields(1, 10)
    assert reader.get((SLOT, A, 1)) == 5
    assert reader.get((CODE, b"h")) is None
    assert (reader.hits, reader.misses) == (3, 0)
    assert reader.get((SLOT, A, 2)) == 7
    assert reader.get((ACCT, B)) == AccountFields(3, 30)
    assert (reader.hits, reader.misses) == (3, 2)
    assert len(reader) == 3
    assert hit_rate({(ACCT, A)}, [[(ACCT, A), (ACCT, B)], [(ACCT, A)]]) == 2 / 3


HOT_MIX = "swap=0.4,erc20=0.45,mint=0.15"


def hinted_chain(planner: HintPlanner) -> ChainRunner:
    genesis = small_genesis()
    executor = ParallelExecutor(InlineComputeUnit(2), planner, policy=None)
    return ChainRunner(genesis.state.items(), executor, preload=True)


def test_hint_planned_blocks_match_sequential_and_predict_well_once_warm():
    gen = generator(small_genesis(), HOT_MIX, 1.2, 21)
    blocks = [gen.block(80) for _ in range(5)]
    reports = []
    with hinted_chain(HintPlanner(HintTable())) as chain:
        for number, txs in enumerate(blocks, start=1):
            if number < len(blocks):
                chain.prefetch(blocks[number])
            report, _, _ = chain.run_block(env_for(number, txs), txs)
            assert_identical(report)
            reports.append(report)
    assert reports[0].recall < 0.5  # a cold table knows nothing
    warm = reports[2:]
    assert all(r.precision >= 0.99 and r.recall >= 0.99 for r in warm)
    assert all(r.preload_hit_rate >= 0.99 for r in warm)
    assert all(r.preloaded > 0 for r in warm)


def random_table(rng: random.Random, txs) -> HintTable:
    """An entry for every method in the block, full of confident rules naming random keys
    derived from each sender (the real conflicts, on the pair's reserves or hot balances,
    go unseen)."""
    table = HintTable()
    for tx in txs:
        entry = table.entry(tx_fields(tx).entry_key)
        entry.calls, entry.gas = 10, rng.randrange(21_000, 200_000)
        for _ in range(rng.randrange(1, 6)):
            contract = ("const", rng.randbytes(20).rjust(32, b"\0"))
            rule = Rule(SLOT, contract, ("hash", ("from",), ("const", rng.randbytes(32))))
            rule.seen = rule.hits = 10
            rule.writes = rng.choice([0, 10])
            entry.rules[rule.id] = rule
    return table


def test_random_hints_give_the_sequential_result_only_slower():
    g = small_genesis()
    rng = random.Random(4)
    gen = generator(g, HOT_MIX, 1.2, 33)
    planner = HintPlanner(HintTable())
    reexecutions = 0
    with hinted_chain(planner) as chain:
        for number in range(1, 4):
            txs = gen.block(80)
            table = random_table(rng, txs)
            planner.table.entries = table.entries
            report, _, _ = chain.run_block(env_for(number, txs), txs)
            assert_identical(report)
            reexecutions += report.reexecutions
    assert reexecutions > 0  # the wrong groups cost re-executions, never correctness
    assert TRANSFER not in planner.table.entries  # no plain transfers in this mix
