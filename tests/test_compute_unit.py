"""The Ray Compute Unit: real worker actors, and workers that die mid-block."""

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
    factory = RayCuFactory(wait_s=0.5, max_waiting=1)
    try:
        assert factory("cu-huge", 64) is None  # waits for a node the autoscaler could add
        assert list(factory.waiting) == ["cu-huge"]
        assert factory("cu-huge-2", 64) is None  # no second request piles up
        assert list(factory.waiting) == ["cu-huge"]
        states = {pg["name"]: pg["state"] for pg in ray.util.placement_group_table().values()}
        assert states["cu-huge"] == "PENDING" and "cu-huge-2" not in states
    finally:
        factory.close()
    states = {pg["name"]: pg["state"] for pg in ray.util.placement_group_table().values()}
    assert states["cu-huge"] == "REMOVED"
