"""The Kubernetes deploy, run: the chart rendered by the real Helm engine, its RayCluster turned
into the head pod and a worker pod the way the KubeRay operator builds them
(``kuberay_pods``), and each container run as a local process from the rendered command, args,
env and mounts, in a mount and PID namespace of its own, each pod in a network namespace of its
own (``pod_sandbox``). Token authentication is on, the token handed to the pods as KubeRay
hands it (the Secret's ``auth_token`` in ``RAY_AUTH_TOKEN``).

The head pod must serve the API, produce blocks with the Compute Unit on the worker pod, keep
the chain in the volume, and, killed and started again on the same volume (as Kubernetes
restarts it), resume at the same block and state root. Not run: KubeRay's autoscaler sidecar
(it talks to the Kubernetes API; ``test_autoscaling.py`` puts Ray's autoscaler in the loop).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import helm_python as helm
import pytest
import yaml
from eth_account import Account
from eth_utils import to_checksum_address
from kuberay_pods import (
    PodRun,
    auth_secret,
    environ,
    head_pod,
    head_service_host,
    head_service_name,
    shell_command,
    worker_pod,
)
from pod_sandbox import Container, Mount, Pod, PodNetwork, missing

from chain.dev import dev_accounts

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "chain"
RELEASE = "evmpp"

pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))

# A small cluster: one basic CU of two workers, on one worker pod of two CPUs.
VALUES = {
    "coordinator": {"blockInterval": 0.5, "basicCUs": 1, "cuCores": 2, "ebsSlots": 0},
    "scaling": {"maxCUs": 1},
    "head": {
        "resources": {
            "requests": {"cpu": "1", "memory": "2Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        }
    },
    "worker": {
        "cpus": 2,
        "replicas": 1,
        "maxReplicas": 1,
        "resources": {
            "requests": {"cpu": "2", "memory": "2Gi"},
            "limits": {"cpu": "2", "memory": "2Gi"},
        },
    },
}


class Deploy:
    """The rendered release and the "cluster" its pods run on."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        with helm.Chart.load(ROOT / "helm" / "evmpp") as chart:
            chart.validate_schema(VALUES)
            rendered = chart.render(VALUES, name=RELEASE, namespace=NAMESPACE, is_install=True)
        docs = [
            doc
            for source, body in rendered.items()
            if not source.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(body)
            if doc
        ]
        [self.raycluster] = [d for d in docs if d["kind"] == "RayCluster"]
        self.config_maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
        self.pvcs = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
        [api] = [
            d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-api")
        ]
        [head] = self.raycluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
        # The Service's target, a port of the head container (reached here on the pod's IP).
        target = api["spec"]["ports"][0]["targetPort"]
        self.api_port = next(p["containerPort"] for p in head["ports"] if p["name"] == target)
        self.metrics_port = next(
            p["containerPort"] for p in head["ports"] if p["name"] == "metrics"
        )
        secret = auth_secret(self.raycluster)
        assert secret is not None, "token authentication is off in the chart's defaults"
        self.token = secrets.token_hex(32)  # what KubeRay's reconcileAuthSecret stores
        self.secrets = {secret: self.token}
        self.network = PodNetwork(workdir)
        self.pvc_dirs = {name: workdir / "pvc" / name for name in self.pvcs}
        for path in self.pvc_dirs.values():
            path.mkdir(parents=True)
        self._starts = 0

    def volume(self, pod: PodRun, name: str, spec: dict) -> Path:
        """A directory holding the volume's content, as the kubelet would mount it."""
        if "configMap" in spec:
            data = self.config_maps[spec["configMap"]["name"]]["data"]
            path = self.workdir / f"configmap-{spec['configMap']['name']}-{self._starts}"
            path.mkdir()
            for key, value in data.items():
                (path / key).write_text(value)
            return path
        if "persistentVolumeClaim" in spec:
            return self.pvc_dirs[spec["persistentVolumeClaim"]["claimName"]]
        if "emptyDir" in spec:  # new with each pod
            path = self.workdir / f"emptydir-{pod.name}-{name}-{self._starts}"
            path.mkdir()
            return path
        raise AssertionError(f"{pod.name}: a volume this test cannot provide: {name} {spec}")

    def run(self, pod_run: PodRun, pod: Pod) -> list[Container]:
        """Start a pod: its init containers to completion, then its containers."""
        self._starts += 1
        self.network.hosts = {
            head_service_host(self.raycluster, NAMESPACE): self.head_ip,
            head_service_name(self.raycluster): self.head_ip,
        }
        volumes = {name: self.volume(pod_run, name, spec) for name, spec in pod_run.volumes.items()}
        image_env = {  # what the image's environment gives (Ray's image: PATH with ray, evmpp)
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "RAY_USAGE_STATS_ENABLED": "0",  # no network out of the sandbox
            # Cluster DNS is the pods' /etc/hosts here, which gRPC's own resolver (c-ares)
            # does not read; the system resolver does.
            "GRPC_DNS_RESOLVER": "native",
        }
        fields = {"status.podIP": pod.ip, "metadata.name": pod_run.name}

        def start(container) -> Container:
            mounts = [
                Mount(volumes[m.volume], m.path, m.read_only)
                for m in container.volume_mounts
                if m.path != "/dev/shm"  # KubeRay's shared-mem: the sandbox's own tmpfs
            ]
            env = {**image_env, **environ(container, self.secrets, fields=fields)}
            return self.network.start(
                pod, container.name, shell_command(container, env), env, mounts
            )

        for init in pod_run.init_containers:
            process = start(init)
            try:
                code = process.process.wait(timeout=180)
            except subprocess.TimeoutExpired:
                process.kill()
                raise AssertionError(f"{init.name} never finished\n{self.logs()}") from None
            assert code == 0, f"{init.name} exited {code}\n{self.logs()}"
        return [start(c) for c in pod_run.containers if not c.autoscaler]

    @property
    def head_ip(self) -> str:
        return self.head.ip

    def start(self) -> None:
        self.head = self.network.pod("head")
        self.worker = self.network.pod("worker")

    def start_head(self) -> Container:
        [container] = self.run(head_pod(self.raycluster, NAMESPACE), self.head)
        return container

    def start_worker(self) -> Container:
        [container] = self.run(worker_pod(self.raycluster, 0, 0, NAMESPACE), self.worker)
        return container

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ---\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted(self.workdir.glob("*.log"))
        )


def rpc(url: str, method: str, *params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    request = urllib.request.Request(url, body.encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert "error" not in answer, answer
    return answer["result"]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_healthy(url: str, deploy: Deploy, head: Container, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert head.process.poll() is None, f"the head exited\n{deploy.logs()}"
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    raise AssertionError(f"/healthz never answered 200\n{deploy.logs()}")


def send(url: str, key: bytes, nonce: int, to: str | None, data: bytes = b"", gas: int = 21000):
    """A signed EIP-1559 transaction's hash."""
    tx = {
        "value": 1 if to else 0,
        "gas": gas,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 1,
        "nonce": nonce,
        "chainId": 1337,
        "type": 2,
        "data": data,
    }
    if to:
        tx["to"] = to_checksum_address(to)
    signed = Account.sign_transaction(tx, key)
    return rpc(url, "eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())


def receipt_of(url: str, tx_hash: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        receipt = rpc(url, "eth_getTransactionReceipt", tx_hash)
        if receipt:
            return receipt
        time.sleep(0.25)
    raise AssertionError(f"{tx_hash} was never included")


# A contract counting calls per caller: slot CALLER += 1. Runtime CALLER SLOAD PUSH1 1 ADD
# CALLER SSTORE STOP; its init code copies it out. Its slots are not predictable before a
# first call (no hint yet), so the workers read them from State Storage.
COUNTER_RUNTIME = bytes.fromhex("3354600101335500")
COUNTER_INIT = bytes.fromhex("6008600c60003960086000f3") + COUNTER_RUNTIME
CALLS = 10  # per caller; gas limits adding up over the in-process fallback's 5M
CALL_GAS = 300_000


def count_calls(url: str, contract: str, callers: list, nonce: int) -> None:
    """``CALLS`` calls from each caller, sent together (one block, two groups by caller)."""
    hashes = [
        send(url, caller.private_key, nonce + i, contract, gas=CALL_GAS)
        for i in range(CALLS)
        for caller in callers
    ]
    for tx_hash in hashes:
        assert receipt_of(url, tx_hash)["status"] == "0x1"


def counted(url: str, contract: str, caller) -> int:
    slot = hex(int.from_bytes(caller.address, "big"))
    return int(rpc(url, "eth_getStorageAt", contract, slot, "latest"), 16)


def scraped(url: str, metric: str) -> float:
    """A metric's total over its series on a Prometheus endpoint (0 if absent)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(metric + "{") or line.startswith(metric + " ")
    )


def ray_health_check(address: str, token: str) -> int:
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    ray = str(Path(sys.executable).parent / "ray")
    return subprocess.run(
        [ray, "health-check", f"--address={address}"], env=env, capture_output=True, timeout=60
    ).returncode


@pytest.fixture
def deploy():
    workdir = Path(tempfile.mkdtemp(prefix="evmpp-pods-", dir="/var/tmp"))  # outside /tmp
    deployed = Deploy(workdir)
    try:
        deployed.start()
        yield deployed
    finally:
        deployed.network.close()
        shutil.rmtree(workdir, ignore_errors=True)


# Each restart takes the pods about 45 s to be healthy again: ``make test`` crashes the head
# (SIGKILL, the case that needs recovery); ``-m slow`` deletes it first (SIGTERM), then
# crashes it.
@pytest.mark.parametrize(
    "stops",
    [
        pytest.param([(signal.SIGKILL, None)], id="crash"),
        pytest.param(
            [(signal.SIGTERM, 143), (signal.SIGKILL, None)],
            id="delete-then-crash",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_the_rendered_pods_run_a_chain_that_survives_head_restarts(deploy, stops):
    head = deploy.start_head()
    worker = deploy.start_worker()
    url = f"http://{deploy.head_ip}:{deploy.api_port}"
    wait_healthy(url, deploy, head)
    deployer, *callers = dev_accounts()[:3]

    # The API answers, and blocks are produced: a contract deployed, then called.
    assert int(rpc(url, "eth_chainId"), 16) == 1337
    created = receipt_of(url, send(url, deployer.private_key, 0, None, COUNTER_INIT, 200_000))
    assert created["status"] == "0x1"
    contract = created["contractAddress"]
    count_calls(url, contract, callers, nonce=0)
    assert [counted(url, contract, c) for c in callers] == [CALLS, CALLS]

    # The chain's stores are in the volume; the worker pod does not see it.
    chain_dir = deploy.pvc_dirs[next(iter(deploy.pvc_dirs))] / "chain"
    assert chain_dir.is_dir() and any(chain_dir.iterdir()), "no chain files in the PVC"
    # (By a file only the volume holds: the machine's own /data, which the worker pod sees as
    # any unmounted path, may hold anything.)
    marker = f"volume-{secrets.token_hex(8)}"
    (chain_dir.parent / marker).write_text("the PVC")
    assert head.run_inside(["cat", f"/data/{marker}"]).stdout == "the PVC"
    assert worker.run_inside(["cat", f"/data/{marker}"]).returncode != 0
    assert "evmpp.json" in head.run_inside(["ls", "/etc/evmpp"]).stdout

    # The Compute Unit's workers run on the worker pod, the coordinator on the head pod.
    assert any("ray::ExecutionWorker" in line for line in worker.command_lines()), deploy.logs()
    assert not any("ray::ExecutionWorker" in line for line in head.command_lines())
    assert any("ray::CoordinatorActor" in line for line in head.command_lines())
    # Blocks reached them: what preloading did not bring (the counter's slots) they read
    # from the head's StateServer, which counts on the head's metrics port.
    metrics = f"http://{deploy.head_ip}:{deploy.metrics_port}/metrics"
    total = "ray_evmpp_remote_state_reads_total"
    wait_for(lambda: scraped(metrics, total) > 0, 90, f"{total} on the head's metrics port")

    # Token authentication is on: the cluster refuses a process without the token.
    gcs = f"{deploy.head_ip}:6379"
    assert ray_health_check(gcs, deploy.token) == 0
    assert ray_health_check(gcs, "0" * 64) != 0

    # Delete the head pod (SIGTERM: evmpp serve stops, closes its stores, then Ray), or
    # crash it (SIGKILL to the container's PID 1). Each time its Ray is gone, so the worker's
    # raylet exits too and the kubelet restarts that container; here, the same.
    nonce = CALLS
    for sig, code in stops:
        number = int(rpc(url, "eth_blockNumber"), 16)
        before = rpc(url, "eth_getBlockByNumber", hex(number), False)
        exited = head.kill(sig, timeout=100)
        if code is not None:
            assert exited == code, f"the head exited {exited}, not {code}\n{deploy.logs()}"
        worker.kill()
        deploy.head.containers.clear()
        deploy.worker.containers.clear()

        head = deploy.start_head()
        worker = deploy.start_worker()
        wait_healthy(url, deploy, head)
        after = rpc(url, "eth_getBlockByNumber", hex(number), False)
        assert (after["hash"], after["stateRoot"]) == (before["hash"], before["stateRoot"])
        assert int(rpc(url, "eth_blockNumber"), 16) >= number
        assert [counted(url, contract, c) for c in callers] == [nonce, nonce]  # resumed state
        count_calls(url, contract, callers, nonce=nonce)  # and the chain goes on
        nonce += CALLS
        assert [counted(url, contract, c) for c in callers] == [nonce, nonce]
