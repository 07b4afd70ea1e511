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
    """Holds every State Storage batch until released, recording what was in flight when."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.release = threading.Event()
        self.held = 0
        write_block = StateStorage.write_block

        def held_write(store, mark, *args, **kwargs):
            if mark.number > 0:  # the genesis is written in place
                self.held += 1
                assert self.release.wait(30), "the writer was never released"
            return write_block(store, mark, *args, **kwargs)

        monkeypatch.setattr(StateStorage, "write_block", held_write)


def test_background_commits_give_the_reference_roots_and_read_in_flight(tmp_path):
    roots, model = reference(5)
    blocks = random_state_blocks(7, 5)
    committer = Committer(tmp_path / "data", levels=1, page_target=512)
    for number, (writes, wiped) in enumerate(blocks, start=1):
        assert committer.commit(number, writes, wiped, background=True) == roots[number]
        in_flight = committer.in_flight
        assert in_flight is not None and in_flight.number == number == committer.head
    keys = sorted(model.data, key=repr)
    # before it lands, the last block reads from memory over the store as last written
    reader = BehindReader(committer.in_flight, committer.ss)
    assert reader.get_many(keys) == [model.data[k] for k in keys]
    assert [reader.get(k) for k in keys] == [model.data[k] for k in keys]
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


@pytest.mark.parametrize("stm", [False, True], ids=["groups", "stm"])
def test_next_block_runs_over_the_write_in_flight(monkeypatch, stm):
    held = HeldWrites(monkeypatch)
    genesis = small_genesis()
    gen = generator(genesis, MIX, 1.0, seed=8)
    cu = InlineComputeUnit(2)
    executor = ParallelExecutor(cu, policy=None, stm=stm)
    in_flight_at_start = []
    execute = executor.execute

    def spy(*args, **kwargs):
        in_flight_at_start.append(chain.committer.in_flight is not None)
        if len(in_flight_at_start) > 1:
            # the writer goes on once this block is under way, reading the last one's writes
            threading.Timer(0.05, held.release.set).start()
        return execute(*args, **kwargs)

    executor.execute = spy
    chain = ChainRunner(genesis.state.items(), executor, write_behind=True)
    with chain:
        for number in (1, 2, 3):
            held.release.clear()
            txs = gen.block(50)
            report, _, _ = chain.run_block(env_for(number, txs), txs)
            assert_identical(report)
            assert_reached_workers(chain, report)
        chain.settle()
        assert chain.committer.mark.number == 3
    assert in_flight_at_start == [False, True, True]
    assert held.held == 3


def test_prefetch_and_preload_read_through_the_write_in_flight(monkeypatch):
    """The next block's state is preloaded while the last one is still written: what the
    preloader read from State Storage is patched with the write set in flight."""
    held = HeldWrites(monkeypatch)
    held.release.set()  # each block's write lands while the next one plans (a short hold)
    genesis = small_genesis()
    gen = generator(genesis, "swap=0.4,erc20=0.45,mint=0.15", 1.2, 21)
    blocks = [gen.block(60) for _ in range(5)]
    executor = ParallelExecutor(InlineComputeUnit(2), HintPlanner(HintTable()), policy=None)
    with ChainRunner(genesis.state.items(), executor, preload=True, write_behind=True) as chain:
        for number, txs in enumerate(blocks, start=1):
            if number < len(blocks):
                chain.prefetch(blocks[number])
            report, _, _ = chain.run_block(env_for(number, txs), txs)
            assert_identical(report)
    assert report.preloaded > 0


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
