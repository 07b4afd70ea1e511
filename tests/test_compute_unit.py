"""The Ray Compute Unit: real worker actors, and workers that die mid-block."""

import time

import pytest
import ray
from support import assert_identical, env_for, generator, small_genesis

from compute_unit.executor import CrashPlan
from compute_unit.worker import ComputeUnit, CuUnavailable
from coordinator.coordinator import RayCuFactory
from coordinator.pipeline import ChainRunner, ParallelExecutor


def test_compute_unit_blocks_match_and_survive_dead_workers(ray_cluster):
    genesis = small_genesis()
    cu = ComputeUnit(2, name="cu-test")
    try:
        pids = set(ray.get([w.pid.remote() for w in cu.workers]))
        assert len(pids) == 2
        with ChainRunner(genesis.state.items(), ParallelExecutor(cu)) as chain:
            gen = generator(genesis, "transfer=0.2,erc20=0.5,swap=0.2,mint=0.1", 0.8, seed=9)

            txs = gen.block(80)
            report, _, _ = chain.run_block(env_for(1, txs), txs)
            assert_identical(report)
            assert report.groups == 2 and report.worker_restarts == 0

            ray.kill(cu.workers[0])  # killed between blocks
            txs = gen.block(80)
            report, _, _ = chain.run_block(env_for(2, txs), txs)
            assert_identical(report)
            assert cu.restarts == 1

            txs = gen.block(80)  # a worker process exits in the middle of its groups
            report, _, _ = chain.run_block(env_for(3, txs), txs, crash=CrashPlan(index=40))
            assert_identical(report)
            assert cu.restarts == 2
            assert len(set(ray.get([w.pid.remote() for w in cu.workers]))) == 2
    finally:
        cu.shutdown()


def test_a_compute_unit_the_cluster_cannot_place_is_refused_cleanly(ray_cluster):
    with pytest.raises(CuUnavailable, match="no room"):
        ComputeUnit(64, name="cu-too-big", ready_timeout=1.0)
    assert not any(
        pg["name"] == "cu-too-big" and pg["state"] != "REMOVED"
        for pg in ray.util.placement_group_table().values()
    )


def test_a_cu_that_does_not_fit_stays_requested_without_stalling(ray_cluster):
    factory = RayCuFactory(max_waiting=1)
    try:
        started = time.monotonic()
        assert factory("cu-huge", 64) is None  # waits for a node the autoscaler could add
        assert time.monotonic() - started < 0.5  # without waiting itself
        assert list(factory.waiting) == ["cu-huge"]
        assert factory("cu-huge-2", 64) is None  # no second request piles up
        assert list(factory.waiting) == ["cu-huge"]
        states = {pg["name"]: pg["state"] for pg in ray.util.placement_group_table().values()}
        assert states["cu-huge"] == "PENDING" and "cu-huge-2" not in states
    finally:
        factory.close()
    states = {pg["name"]: pg["state"] for pg in ray.util.placement_group_table().values()}
    assert states["cu-huge"] == "REMOVED"


def test_a_cu_that_fits_is_handed_out_once_its_actors_run(ray_cluster):
    factory = RayCuFactory()
    try:
        assert factory("cu-soon", 1) is None  # asked for: made on the factory's thread
        deadline = time.monotonic() + 60
        asks = iter(range(1000))
        while (cu := factory(f"cu-later-{next(asks)}", 1)) is None:
            assert time.monotonic() < deadline, "the CU never came"
            time.sleep(0.1)
        assert cu.name == "cu-soon" and cu.size == 1
        names = {pg["name"] for pg in ray.util.placement_group_table().values()}
        assert not any(name.startswith("cu-later") for name in names)  # no pile of requests
        cu.shutdown()
    finally:
        factory.close()
