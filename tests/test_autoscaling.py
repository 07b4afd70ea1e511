"""Ray's autoscaler in the loop, on Ray's fake multi-node provider (one machine, the way Ray
tests its own autoscaler): a Compute Unit that does not fit makes the autoscaler launch a
node, the CU is placed there and runs blocks equal to sequential py-evm, and once the CU is
shut down (the scale-down path) the idle node is removed.

The cluster is what ``ray.cluster_utils.AutoscalingCluster`` starts (``ray start --head``
with an autoscaling config of provider ``fake_multinode``, ``RAY_FAKE_CLUSTER=1``, a 1 s
autoscaler update interval), started here by hand because as installed it cannot be used:
it reads the provider's ``example.yaml``, which the wheel does not ship, and it runs
``ray stop --force``, which kills every Ray process on the machine. This one has its own
ports and temp dir (so no ``ray.init()`` elsewhere finds it as "the current cluster"), its
processes in a session of their own, ended by pid, and the token authentication this
process has (see ``start``). Both autoscalers run: v1, Ray's default, and v2, which
``ray start`` turns on under KubeRay (the Helm chart's deployment).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import ray
from support import assert_identical, env_for, generator, small_genesis

from coordinator.coordinator import RayCuFactory
from coordinator.cu_supply import CuSupply
from coordinator.pipeline import ChainRunner, ParallelExecutor

CU_CORES = 2
NODE_TYPE = "cu.worker"
IDLE_TIMEOUT_S = 3
MiB = 2**20
# The fake provider's node ids, as Ray's own tests use them (fff...00000 is the head).
FAKE_HEAD_NODE_ID = "f" * 51 + "00000"
FAKE_PROVIDER = "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class FakeAutoscalingCluster:
    """A head node with no CPUs and one worker node type the autoscaler launches on demand
    (``max_workers`` nodes of ``CU_CORES`` CPUs), removed after ``IDLE_TIMEOUT_S`` idle."""

    def __init__(self, autoscaler: str, max_workers: int = 1) -> None:
        self.autoscaler = autoscaler
        self.dir = Path(tempfile.mkdtemp(prefix="evmpp-as-"))  # short: Ray's socket paths
        self.address = f"{ray.util.get_node_ip_address()}:{free_port()}"
        provider = {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "gcs_address": self.address,  # the fake nodes join this head, not port 6379
        }
        if autoscaler == "v2":
            # v2 fills the config out with the provider's example.yaml, missing from the
            # wheel: the same provider class named as an external one needs no defaults file
            provider |= {"type": "external", "module": FAKE_PROVIDER}
            provider |= {"launch_multiple": True, "head_node_id": FAKE_HEAD_NODE_ID}
        self.config = {
            "cluster_name": "evmpp-autoscaling-test",
            "max_workers": max_workers,
            "provider": provider,
            "available_node_types": {
                "ray.head.default": {"resources": {}, "node_config": {}, "max_workers": 0},
                NODE_TYPE: {
                    "resources": {"CPU": CU_CORES, "object_store_memory": 200 * MiB},
                    "node_config": {},
                    "min_workers": 0,
                    "max_workers": max_workers,
                },
            },
            "head_node_type": "ray.head.default",
            "upscaling_speed": 1.0,
            "idle_timeout_minutes": IDLE_TIMEOUT_S / 60,
            "auth": {},
            "docker": {},
            "file_mounts": {},
            "cluster_synced_files": [],
            "file_mounts_sync_continuously": False,
            "rsync_exclude": [],
            "rsync_filter": [],
            "initialization_commands": [],
            "setup_commands": [],
            "head_setup_commands": [],
            "worker_setup_commands": [],
            "head_start_ray_commands": [],
            "worker_start_ray_commands": [],
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        config = self.dir / "autoscaling.json"
        config.write_text(json.dumps(self.config))
        ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]  # `ray`, of this Python
        # Token auth as this process has it: a worker calls its owner (this driver) back,
        # and a driver in token mode refuses a worker without the token. Ray puts a process
        # in token mode at its first local ray.init() (RAY_AUTH_MODE=token in os.environ, a
        # token in ~/.ray/auth_token); `ray start` would turn it on whenever that file
        # exists, and a driver given an address never turns it on itself.
        auth = os.environ.get("RAY_AUTH_MODE", "disabled")
        if auth == "token":  # the token this process reads (made if missing, as ray.init does)
            subprocess.run(
                [*ray_cli, "get-auth-token", "--generate"], check=True, capture_output=True
            )
        env = dict(
            os.environ,
            RAY_FAKE_CLUSTER="1",
            AUTOSCALER_UPDATE_INTERVAL_S="1",
            RAY_USAGE_STATS_ENABLED="0",
            RAY_AUTH_MODE=auth,
        )
        if self.autoscaler == "v2":
            env |= {
                "RAY_enable_autoscaler_v2": "1",
                "RAY_CLOUD_INSTANCE_ID": FAKE_HEAD_NODE_ID,
                "RAY_OVERRIDE_NODE_ID_FOR_TESTING": FAKE_HEAD_NODE_ID,
            }
        port = self.address.rsplit(":", 1)[1]
        command = [
            *ray_cli,
            "start",
            "--head",
            "--block",  # stays in the foreground: SIGTERM stops the head's processes
            f"--port={port}",
            f"--autoscaling-config={config}",
            "--num-cpus=0",
            f"--object-store-memory={200 * MiB}",
            f"--ray-client-server-port={free_port()}",
            "--include-dashboard=false",
            "--dashboard-agent-listen-port=0",
            "--disable-usage-stats",
            f"--temp-dir={self.dir / 'ray'}",
        ]
        with open(self.dir / "ray-start.log", "wb") as log:
            self.proc = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def connect(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited: {self.log()}")
            try:
                ray.init(address=self.address, logging_level="WARNING")
                return
            except ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def log(self) -> str:
        return (self.dir / "ray-start.log").read_text()[-3000:]

    def _session(self) -> list[int]:
        """Processes still in the session ``ray start`` was started in: the head's, the
        fake nodes' (the autoscaler starts them), their workers."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[3]) == self.proc.pid:
                pids.append(int(entry.name))
        return pids

    def shutdown(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)  # `ray start --block` stops the head
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            # what outlived it (v2 leaves the log monitor; a fake node whose autoscaler
            # went first), by pid: SIGTERM, then SIGKILL
            for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                for pid in self._session():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                deadline = time.monotonic() + grace
                while self._session() and time.monotonic() < deadline:
                    time.sleep(0.2)
        shutil.rmtree(self.dir, ignore_errors=True)


def alive_nodes() -> dict[str, dict]:
    return {node["NodeID"]: node for node in ray.nodes() if node["Alive"]}


def placement(name: str) -> dict:
    groups = [g for g in ray.util.placement_group_table().values() if g["name"] == name]
    # more than one: the factory's CU failed to start and was asked for again
    assert len(groups) == 1, f"{name} requested {len(groups)} times: {groups}"
    return groups[0]


def node_of(pid: int) -> str:
    """The node a worker process runs on: the ``--node_id`` of the raylet that started it."""
    parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
    args = Path(f"/proc/{parent}/cmdline").read_bytes().decode().split("\0")
    assert Path(args[0]).name == "raylet", args[0]
    [node] = [a.split("=", 1)[1] for a in args if a.startswith("--node_id=")]
    return node


# v2 (what the chart's deployment runs) in ``make test``; v1, the same tests again on a
# second cluster, in ``-m slow`` (they take half a minute).
@pytest.fixture(scope="module", params=[pytest.param("v1", marks=pytest.mark.slow), "v2"])
def autoscaling(request):
    ray.shutdown()  # this module's cluster only, and the local one started again after it
    cluster = FakeAutoscalingCluster(request.param)
    try:
        cluster.start()
        cluster.connect()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_a_cu_that_does_not_fit_gets_a_node_runs_blocks_and_the_idle_node_goes(autoscaling):
    [(head, node)] = alive_nodes().items()
    assert "node:__internal_head__" in node["Resources"]
    assert ray.cluster_resources().get("CPU", 0) == 0  # nothing fits a CU yet

    factory = RayCuFactory()
    supply = CuSupply(factory, CU_CORES)  # where the producer's CUs come from
    try:
        started = time.monotonic()
        assert supply.new() is None  # asked for: the placement group waits for a node
        assert placement("cu-0")["state"] == "PENDING"
        cu = wait_for(supply.new, 90, "the autoscaler to launch a node for the CU")
        launched_in = time.monotonic() - started
        assert cu.name == "cu-0" and cu.size == CU_CORES

        nodes = alive_nodes()
        [new] = set(nodes) - {head}
        assert nodes[new]["Resources"]["CPU"] == CU_CORES
        group = placement("cu-0")
        assert group["state"] == "CREATED"
        assert set(group["bundles_to_node_id"].values()) == {new}
        pids = ray.get([worker.pid.remote() for worker in cu.workers])
        assert len(set(pids)) == CU_CORES
        assert {node_of(pid) for pid in pids} == {new}  # the actors run there

        genesis = small_genesis()
        gen = generator(genesis, "transfer=0.2,erc20=0.5,swap=0.2,mint=0.1", 0.8, seed=11)
        # policy=None: every block goes to the CU's workers, none runs in this process
        with ChainRunner(genesis.state.items(), ParallelExecutor(cu, policy=None)) as chain:
            for number in range(1, 4):
                txs = gen.block(60)
                report, parallel, _ = chain.run_block(env_for(number, txs), txs)
                assert_identical(report)  # receipts, gas and state root of sequential py-evm
                assert report.txs == 60 and report.groups >= CU_CORES
                assert parallel.fallback is None
        assert cu.restarts == 0

        cu.shutdown()  # the scale-down path (coordinator/scaling.py): actors, then the group
        assert placement("cu-0")["state"] == "REMOVED"
        removed_in = time.monotonic()
        wait_for(lambda: set(alive_nodes()) == {head}, 60, "the idle node to be removed", 0.5)
        removed_in = time.monotonic() - removed_in
        assert ray.cluster_resources().get("CPU", 0) == 0
        assert not factory.waiting
        print(f"{autoscaling.autoscaler}: node in {launched_in:.1f} s, gone {removed_in:.1f} s")
    finally:
        factory.close()
