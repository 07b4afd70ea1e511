"""Write-behind commits: block N's stores are written while block N + 1 runs, which reads
N's write set from memory (``storage/write_behind.py``, ``Committer.commit(background=True)``,
``ChainRunner(write_behind=True)``). Each test holds the writer up, so the next block really
runs with the write in flight, and checks the chain against the sequential oracle."""

import threading

import pytest
from support import (
    InlineComputeUnit,
    assert_identical,
    assert_reached_workers,
    env_for,
    generator,
    random_state_blocks,
    small_genesis,
)
from test_committer import reference

from coordinator.hints import HintTable
from coordinator.pipeline import ChainRunner, ParallelExecutor
from coordinator.planner import HintPlanner
from storage.committer import Committer
from storage.keys import SLOT
from storage.ss import StateStorage, StorageError
from storage.write_behind import BehindReader, InFlight

MIX = "swap=0.4,erc20=0.4,mint=0.1,deploy=0.05,revert=0.05"


class HeldWrites:
    """Holds each block's State Storage batch until the test releases that block."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._gates: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        write_block = StateStorage.write_block

        def held_write(store, mark, *args, **kwargs):
            if mark.number > 0:  # the genesis is written in place
                assert self._gate(mark.number).wait(30), f"block {mark.number} never released"
            return write_block(store, mark, *args, **kwargs)

        monkeypatch.setattr(StateStorage, "write_block", held_write)

    def _gate(self, number: int) -> threading.Event:
        with self._lock:
            return self._gates.setdefault(number, threading.Event())

    def release(self, number: int, after: float = 0.0) -> None:
        if after:
            threading.Timer(after, self._gate(number).set).start()
        else:
            self._gate(number).set()


def assert_write_in_flight(committer: Committer, number: int) -> None:
    """Block ``number`` is committed (its root known) and not yet in State Storage."""
    assert committer.in_flight is not None and committer.in_flight.number == number
    mark = committer.mark
    assert (mark.number if mark else 0) == number - 1


def test_background_commits_give_the_reference_roots_and_read_in_flight(tmp_path, monkeypatch):
    held = HeldWrites(monkeypatch)
    roots, model = reference(5)
    blocks = random_state_blocks(7, 5)
    committer = Committer(tmp_path / "data", levels=1, page_target=512)
    for number, (writes, wiped) in enumerate(blocks, start=1):
        if number > 1:
            held.release(number - 1)  # the next commit waits for it first
        assert committer.commit(number, writes, wiped, background=True) == roots[number]
        assert_write_in_flight(committer, number)
    keys = sorted(model.data, key=repr)
    # before it lands, the last block reads from memory over the store as last written
    reader = BehindReader(committer.in_flight, committer.ss)
    assert reader.get_many(keys) == [model.data[k] for k in keys]
    assert [reader.get(k) for k in keys] == [model.data[k] for k in keys]
    assert committer.ss.get_many(keys) != [model.data[k] for k in keys]  # the store: block 4
    held.release(5)
    committer.settle()
    assert committer.in_flight is None and committer.mark.number == 5
    assert committer.ss.get_many(keys) == [model.data[k] for k in keys]
    committer.close()
    reopened = Committer(tmp_path / "data", levels=1, page_target=512)
    assert reopened.recovery == "consistent" and reopened.state_root == roots[5]
    reopened.close()


def test_a_slot_written_zero_or_wiped_reads_as_absent():
    address = b"\x11" * 20
    in_flight = InFlight(1, b"", {(SLOT, address, 1): 0}, frozenset({b"\x22" * 20}))

    class Below:
        def get(self, key):
            return 5

        def get_many(self, keys):
            return [5] * len(keys)

    reader = BehindReader(in_flight, Below())
    keys = [(SLOT, address, 1), (SLOT, b"\x22" * 20, 3), (SLOT, address, 2)]
    assert [reader.get(k) for k in keys] == reader.get_many(keys) == [None, None, 5]


def releasing_at_execute(chain: ChainRunner, held: HeldWrites) -> list[int]:
    """Each block from the second one asserts, as it starts on the workers, that the block
    before it is still being written (admission and planning read through it too), then lets
    that write go on; the block numbers checked so."""
    checked: list[int] = []
    execute = chain.executor.execute

    def spy(env, *args, **kwargs):
        number = env.header.block_number
        if number > 1:
            assert_write_in_flight(chain.committer, number - 1)
            checked.append(number)
            held.release(number - 1, after=0.05)  # lands while this block runs
        return execute(env, *args, **kwargs)

    chain.executor.execute = spy
    return checked


@pytest.mark.parametrize("stm", [False, True], ids=["groups", "stm"])
def test_next_block_runs_over_the_write_in_flight(monkeypatch, stm):
    held = HeldWrites(monkeypatch)
    genesis = small_genesis()
    gen = generator(genesis, MIX, 1.0, seed=8)
    executor = ParallelExecutor(InlineComputeUnit(2), policy=None, stm=stm)
    with ChainRunner(genesis.state.items(), executor, write_behind=True) as chain:
        checked = releasing_at_execute(chain, held)
        for number in (1, 2, 3):
            txs = gen.block(50)
            report, _, _ = chain.run_block(env_for(number, txs), txs)
            assert_identical(report)
            assert_reached_workers(chain, report)
            assert report.rejected == 0  # admission read the nonces in flight
        held.release(3)
        chain.settle()
        assert chain.committer.mark.number == 3
    assert checked == [2, 3]


def test_prefetch_and_preload_read_through_the_write_in_flight(monkeypatch):
    """The next block's state is preloaded while the last one is still written: what the
    preloader read from State Storage is patched with the write set in flight, so every
    preloaded value is the block's pre-state."""
    held = HeldWrites(monkeypatch)
    genesis = small_genesis()
    gen = generator(genesis, "swap=0.4,erc20=0.45,mint=0.15", 1.2, 21)
    blocks = [gen.block(60) for _ in range(5)]
    executor = ParallelExecutor(InlineComputeUnit(2), HintPlanner(HintTable()), policy=None)
    with ChainRunner(genesis.state.items(), executor, preload=True, write_behind=True) as chain:
        checked = releasing_at_execute(chain, held)
        preload = chain._preload
        compared = []

        def checked_preload(predictions):
            state = preload(predictions)
            if chain.committer.in_flight is not None:
                assert chain.committer.mark.number < chain.committer.in_flight.number
                for key, value in state.values.items():
                    assert value == chain.snapshot.get(key), key
                compared.append(len(state.values))
            return state

        chain._preload = checked_preload
        for number, txs in enumerate(blocks, start=1):
            if number < len(blocks):
                chain.prefetch(blocks[number])
            report, _, _ = chain.run_block(env_for(number, txs), txs)
            assert_identical(report)
        held.release(len(blocks))
    assert checked == [2, 3, 4, 5] and len(compared) == 4 and min(compared) > 0


def test_a_failed_write_behind_stops_the_chain_with_the_block_named(tmp_path, monkeypatch):
    blocks = random_state_blocks(7, 3)
    committer = Committer(tmp_path / "data")
    committer.commit(1, *blocks[0], background=True)
    committer.settle()

    def broken(store, mark, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(StateStorage, "write_block", broken)
    committer.commit(2, *blocks[1], background=True)  # returns: the write fails behind
    with pytest.raises(StorageError, match="writing block 2 behind failed: OSError: disk full"):
        committer.commit(3, *blocks[2], background=True)
    with pytest.raises(StorageError, match="block 2"):  # and stays refused
        committer.commit(3, *blocks[2])
    monkeypatch.undo()
    with pytest.raises(StorageError, match="block 2"):
        committer.close()
    reopened = Committer(tmp_path / "data")  # nothing of block 1 lost; 2 can be redone
    roots, _ = reference(2)
    assert reopened.mark.number == 1 and reopened.state_root == roots[1]
    assert reopened.commit(2, *blocks[1]) == roots[2]
    reopened.close()


def test_a_worker_view_that_disagrees_with_the_store_is_not_trusted():
    """The final Block-STM pass reads the workers' pre-block values only if a sample of them
    matches the coordinator's own view; one wrong value in the sample is enough."""
    from compute_unit.state import DictSnapshot
    from coordinator.pipeline import same_pre_state
    from storage.keys import ACCT, AccountFields

    store = DictSnapshot()
    values = {(ACCT, bytes([i]) * 20): AccountFields(i, 10) for i in range(10)}
    store.apply(values, ())
    assert same_pre_state(values, store)
    wrong = {**values, (ACCT, bytes([3]) * 20): AccountFields(3, 11)}
    assert not same_pre_state(wrong, store)
