"""tests/kuberay_pods.py against what KubeRay v1.7 (commit feeaf72) does with a RayCluster: the
``ray start`` commands, the environment, the token auth wiring, and a head Pod KubeRay made."""

import copy
import os
import stat
import subprocess
from pathlib import Path

import helm_python as helm
import kuberay_pods as kp
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NS = "chain"
FQDN = "demo-head-svc.chain.svc.cluster.local"
ULIMIT = "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}"

SAMPLE = {
    "apiVersion": "ray.io/v1",
    "kind": "RayCluster",
    "metadata": {"name": "demo", "namespace": NS},
    "spec": {
        "rayVersion": "2.52.0",
        "enableInTreeAutoscaling": True,
        "authOptions": {"mode": "token"},
        "headGroupSpec": {
            "rayStartParams": {
                "dashboard-host": "0.0.0.0",
                "dashboard-port": "8265",
                "num-cpus": "0",
            },
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "evmpp"}},
                "spec": {
                    "containers": [
                        {
                            "name": "ray-head",
                            "image": "registry.example/evmpp:1.0",
                            "ports": [{"name": "gcs", "containerPort": 6379}],
                            "env": [{"name": "RAY_DEDUP_LOGS", "value": "0"}],
                            "resources": {"limits": {"cpu": "2", "memory": "4Gi"}},
                        },
                        {
                            "name": "evmpp",
                            "image": "registry.example/evmpp:1.0",
                            "command": ["evmpp"],
                            "args": ["serve", "--address=127.0.0.1:6379", "--port=8545"],
                            "env": [{"name": "EVMPP_LOG", "value": "info"}],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        },
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
        "workerGroupSpecs": [
            {
                "groupName": "cu",
                "replicas": 2,
                "minReplicas": 1,
                "maxReplicas": 4,
                "rayStartParams": {"num-cpus": "3"},
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "ray-worker",
                                "image": "registry.example/evmpp:1.0",
                                "resources": {
                                    "requests": {"cpu": "3", "memory": "6Gi"},
                                    "limits": {"cpu": "3", "memory": "6Gi"},
                                },
                            }
                        ]
                    }
                },
            }
        ],
    },
}


def cluster(**spec) -> dict:
    rc = copy.deepcopy(SAMPLE)
    rc["spec"].update(spec)
    return rc


def test_head_ray_start_command():
    pod = kp.head_pod(SAMPLE, NS)
    ray = pod.ray_container
    # BuildPod: `Command = utils.GetContainerCommand([]string{})` -> /bin/bash -c --
    assert ray.command == ["/bin/bash", "-c", "--"]
    # setMissingRayStartParams adds block, dashboard-agent-listen-port, metrics-export-port;
    # autoscaling adds no-monitor; memory is the limit in bytes; flags sorted, " --%s " each.
    start = (
        "ray start --head  --block  --dashboard-agent-listen-port=52365  --dashboard-host=0.0.0.0"
        "  --dashboard-port=8265  --memory=4294967296  --metrics-export-port=8080  --no-monitor"
        "  --num-cpus=0 "
    )
    assert ray.args == [f"{ULIMIT}; {start}"]
    assert pod.ray_start_command == start == ray.env["KUBERAY_GEN_RAY_START_CMD"]
    assert pod.name == "demo-head-h0000"
    assert pod.service_account == "demo"  # the autoscaler's RBAC: GetHeadGroupServiceAccountName
    assert ("metrics", 8080) in ray.ports  # "add a default one for Prometheus"


def test_worker_command_and_address():
    pod = kp.worker_pod(SAMPLE, 0, 1, NS)
    ray = pod.ray_container
    assert kp.head_service_host(SAMPLE, NS) == FQDN
    start = (
        f"ray start  --address={FQDN}:6379  --block  --dashboard-agent-listen-port=52365"
        "  --memory=6442450944  --metrics-export-port=8080  --num-cpus=3 "
    )
    assert ray.command == ["/bin/bash", "-c", "--"]
    assert ray.args == [f"{ULIMIT}; {start}"]
    assert pod.name == "demo-cu-worker-w0001"
    assert pod.group == "cu" and pod.labels["ray.io/group"] == "cu"
    # The worker waits for the GCS in an init container: `ray health-check --address %s:%s`.
    (init,) = pod.init_containers
    assert init.name == "wait-gcs-ready" and init.command == ["/bin/bash", "-c", "--"]
    assert f"ray health-check --address {FQDN}:6379 > /dev/null 2>&1" in init.args[0]
    assert init.env["FQ_RAY_IP"] == FQDN and init.env["RAY_IP"] == "demo-head-svc"
    assert init.env_from_secret["RAY_AUTH_TOKEN"] == ("demo", "auth_token")


def test_env_kuberay_injects():
    head, worker = kp.head_pod(SAMPLE, NS), kp.worker_pod(SAMPLE, 0, 0, NS)
    h, w = head.ray_container.env, worker.ray_container.env
    assert h["RAY_DEDUP_LOGS"] == "0"  # the user's own, first
    # setContainerEnvVars: head => LOCAL_HOST, worker => the head Service's FQDN; no head RAY_IP
    assert h["RAY_ADDRESS"] == "127.0.0.1:6379" and "RAY_IP" not in h and "FQ_RAY_IP" not in h
    assert w["RAY_ADDRESS"] == f"{FQDN}:6379"
    assert (w["FQ_RAY_IP"], w["RAY_IP"]) == (FQDN, "demo-head-svc")
    for pod, env in ((head, h), (worker, w)):
        assert env["RAY_PORT"] == "6379"
        assert env["RAY_CLUSTER_NAME"] == "demo" and env["RAY_CLUSTER_NAMESPACE"] == NS
        assert env["RAY_CLOUD_INSTANCE_ID"] == pod.name  # fieldRef metadata.name
        assert env["RAY_NODE_TYPE_NAME"] == pod.group  # fieldRef metadata.labels['ray.io/group']
        assert env["RAY_USAGE_STATS_KUBERAY_IN_USE"] == "1"
        assert env["RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE"] == "1"
        assert "MY_POD_IP" not in env and "--node-ip-address" not in pod.ray_start_command
    assert h["RAY_USAGE_STATS_EXTRA_TAGS"] == "kuberay_version=v1.7.0;kuberay_crd=RayCluster"
    assert "RAY_USAGE_STATS_EXTRA_TAGS" not in w
    # /dev/shm: an emptyDir in memory, as large as the Ray container's memory limit
    assert head.volumes["shared-mem"] == {"emptyDir": {"medium": "Memory", "sizeLimit": "4Gi"}}
    assert kp.Mount("shared-mem", "/dev/shm", False) in head.ray_container.volume_mounts


def test_auth_token_reaches_the_ray_containers_only():
    assert kp.auth_secret(SAMPLE) == ("demo", "auth_token")
    assert kp.operator_creates_auth_secret(SAMPLE)
    head, worker = kp.head_pod(SAMPLE, NS), kp.worker_pod(SAMPLE, 0, 0, NS)
    for c in (head.ray_container, head.container("autoscaler"), worker.ray_container):
        assert c.env["RAY_AUTH_MODE"] == "token"
        assert c.env_from_secret == {"RAY_AUTH_TOKEN": ("demo", "auth_token")}
    # configureTokenAuth touches the Ray container (and wait-gcs-ready), never a user's sidecar.
    evmpp = head.container("evmpp")
    assert not {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"} & set(evmpp.env_order)
    # A Secret of one's own: referenced, not created.
    named = cluster(authOptions={"mode": "token", "secretName": "ray-token-of-mine"})
    assert kp.auth_secret(named) == ("ray-token-of-mine", "auth_token")
    assert not kp.operator_creates_auth_secret(named)
    assert kp.head_pod(named, NS).ray_container.env_from_secret["RAY_AUTH_TOKEN"] == (
        "ray-token-of-mine",
        "auth_token",
    )
    # Off, or too old a Ray for token auth (utils/validation.go: 2.52.0).
    off = cluster(authOptions={"mode": "disabled"})
    assert kp.auth_secret(off) is None
    assert "RAY_AUTH_MODE" not in kp.head_pod(off, NS).ray_container.env
    with pytest.raises(ValueError, match="2.52.0"):
        kp.head_pod(cluster(rayVersion="2.46.0"), NS)


def test_autoscaler_sidecar():
    head = kp.head_pod(SAMPLE, NS)
    assert [c.name for c in head.containers] == ["ray-head", "evmpp", "autoscaler"]
    scaler = head.container("autoscaler")
    assert scaler.autoscaler and not head.ray_container.autoscaler
    assert kp.shell_command(scaler) == [
        "/bin/bash",
        "-c",
        "--",
        "ray kuberay-autoscaler --cluster-name demo --cluster-namespace chain",
    ]
    assert scaler.env["RAY_HEAD_POD_NAME"] == head.name and scaler.env["KUBERAY_CRD_VER"] == "v1"
    # /tmp/ray is shared by the Ray container and the autoscaler, not by the user's sidecar.
    log = kp.Mount("ray-logs", "/tmp/ray", False)
    assert log in head.ray_container.volume_mounts and log in scaler.volume_mounts
    assert log not in head.container("evmpp").volume_mounts
    assert head.volumes["ray-logs"] == {"emptyDir": {}}
    assert (
        "no-monitor" not in kp.head_pod(cluster(enableInTreeAutoscaling=False), NS).ray_start_params
    )


def test_sidecar_is_left_as_given():
    evmpp = kp.head_pod(SAMPLE, NS).container("evmpp")
    assert kp.shell_command(evmpp) == ["evmpp", "serve", "--address=127.0.0.1:6379", "--port=8545"]
    assert evmpp.env == {"EVMPP_LOG": "info"}
    assert evmpp.volume_mounts == [kp.Mount("data", "/data", False)]


def test_user_command_runs_before_ray_start():
    rc = copy.deepcopy(SAMPLE)
    worker = rc["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    worker["command"], worker["args"] = ["sh", "-c"], ["echo warming up"]
    ray = kp.worker_pod(rc, 0, 0, NS).ray_container
    # `args = fmt.Sprintf("%s && %s", cmd, generatedCmd)`, cmd each element as " %s ", unquoted
    assert ray.command == ["/bin/bash", "-c", "--"]
    assert ray.args[0].startswith(f" sh  -c  echo warming up  && {ULIMIT}; ray start  --address=")
    # A command that already says "ray start" is kept as it is.
    worker["command"], worker["args"] = ["/bin/bash", "-c"], ["ray start --address=x:1 --block"]
    ray = kp.worker_pod(rc, 0, 0, NS).ray_container
    assert (ray.command, ray.args) == (["/bin/bash", "-c"], ["ray start --address=x:1 --block"])


def test_overwrite_container_cmd_annotation():
    rc = copy.deepcopy(SAMPLE)
    rc["metadata"]["annotations"] = {"ray.io/overwrite-container-cmd": "true"}
    head = rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["command"] = ["/bin/bash", "-c", "--"]
    head["args"] = ["ulimit -n 4096; echo before; $KUBERAY_GEN_RAY_START_CMD"]
    pod = kp.head_pod(rc, NS)
    assert pod.ray_container.args == head["args"] and pod.ray_container.command == head["command"]
    assert pod.ray_container.env["KUBERAY_GEN_RAY_START_CMD"].startswith(
        "ray start --head  --block"
    )
    assert pod.annotations["ray.io/overwrite-container-cmd"] == "true"


def test_login_shell_and_custom_accelerators():
    operator = kp.Operator(enable_login_shell=True)
    assert kp.head_pod(SAMPLE, NS, operator=operator).ray_container.command == [
        "/bin/bash",
        "-cl",
        "--",
    ]
    params = {}
    kp.ray_start_command("worker", params, {"limits": {"cpu": "500m", "google.com/tpu": "4"}})
    assert params["num-cpus"] == "1" and params["resources"] == "'{\"TPU\":4}'"


def test_recreate_upgrade_strategy():
    new = cluster(upgradeStrategy={"type": "Recreate"})
    new["spec"]["workerGroupSpecs"][0]["replicas"] = 3  # the autoscaler's field: muted
    assert not kp.recreates_pods(SAMPLE, new)
    new["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = "other:2"
    assert kp.recreates_pods(SAMPLE, new)
    del new["spec"]["upgradeStrategy"]
    assert not kp.recreates_pods(SAMPLE, new)  # without Recreate, KubeRay leaves running Pods be


def test_cluster_pods_and_environ():
    pods = kp.cluster_pods(SAMPLE, NS)
    assert [p.name for p in pods] == [
        "demo-head-h0000",
        "demo-cu-worker-w0000",
        "demo-cu-worker-w0001",
    ]
    env = kp.environ(pods[1].ray_container, secrets={("demo", "auth_token"): "s3cret"})
    assert env["RAY_AUTH_TOKEN"] == "s3cret" and env["RAY_ADDRESS"] == f"{FQDN}:6379"
    with pytest.raises(KeyError):
        kp.environ(pods[1].ray_container)  # the Secret is missing: the kubelet would not start it


def test_the_argv_runs_under_bash(tmp_path):
    """The generated argv is a valid bash invocation: a stand-in `ray` records what it gets."""
    fake = tmp_path / "ray"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$RECORD"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    ray = kp.head_pod(SAMPLE, NS).ray_container
    env = kp.environ(ray, secrets={("demo", "auth_token"): "t"})
    env |= {"PATH": f"{tmp_path}:{os.environ['PATH']}", "RECORD": str(tmp_path / "argv")}
    done = subprocess.run(kp.shell_command(ray, env), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "argv").read_text().split() == [
        "start",
        "--head",
        "--block",
        "--dashboard-agent-listen-port=52365",
        "--dashboard-host=0.0.0.0",
        "--dashboard-port=8265",
        "--memory=4294967296",
        "--metrics-export-port=8080",
        "--no-monitor",
        "--num-cpus=0",
    ]


def test_wait_gcs_ready_runs_under_bash(tmp_path):
    """The init container's script loops on `ray health-check` until it succeeds."""
    fake = tmp_path / "ray"
    fake.write_text('#!/bin/sh\necho "$@" >> "$RECORD"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    init = kp.worker_pod(SAMPLE, 0, 0, NS).container("wait-gcs-ready")
    env = kp.environ(init, secrets={("demo", "auth_token"): "t"})
    env |= {"PATH": f"{tmp_path}:{os.environ['PATH']}", "RECORD": str(tmp_path / "calls")}
    done = subprocess.run(kp.shell_command(init, env), env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "GCS is ready.", done.stderr
    assert (tmp_path / "calls").read_text() == f"health-check --address {FQDN}:6379\n"


# The head Pod of KubeRay's e2e TestRayClusterAuthOptions as `kubectl get pod -o yaml` showed it
# (kuberay issue #4356, KubeRay v1.5.1, Ray image 2.46.0): the parts the operator wrote.
RECORDED_HEAD = yaml.safe_load(
    """
args:
- 'ulimit -n 65536; ray start --head  --block  --dashboard-agent-listen-port=52365  --dashboard-host=0.0.0.0  --memory=2000000000  --metrics-export-port=8080  --num-cpus=1 '
command: [/bin/bash, -c, --]
env: [RAY_AUTH_MODE, RAY_AUTH_TOKEN, RAY_CLUSTER_NAME, RAY_CLOUD_INSTANCE_ID, RAY_NODE_TYPE_NAME,
      KUBERAY_GEN_RAY_START_CMD, RAY_PORT, RAY_ADDRESS, RAY_USAGE_STATS_KUBERAY_IN_USE,
      RAY_USAGE_STATS_EXTRA_TAGS, RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE]
volumes: {shared-mem: {emptyDir: {medium: Memory, sizeLimit: 2G}}}
labels:
  app.kubernetes.io/created-by: kuberay-operator
  app.kubernetes.io/name: kuberay
  ray.io/cluster: raycluster-auth-token
  ray.io/group: headgroup
  ray.io/identifier: raycluster-auth-token-head
  ray.io/is-ray-node: "yes"
  ray.io/node-type: head
"""  # noqa: E501
)


def test_matches_a_head_pod_kuberay_made():
    rc = {
        "metadata": {"name": "raycluster-auth-token", "namespace": "test-ns-5msxm"},
        "spec": {
            "rayVersion": "2.52",
            "authOptions": {"mode": "token"},
            "headGroupSpec": {
                "rayStartParams": {},
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "ray-head",
                                "image": "rayproject/ray:2.46.0",
                                "resources": {
                                    "limits": {"cpu": "500m", "memory": "2G"},
                                    "requests": {"cpu": "300m", "memory": "1G"},
                                },
                            }
                        ]
                    }
                },
            },
            "workerGroupSpecs": [],
        },
    }
    pod = kp.head_pod(rc, "test-ns-5msxm", operator=kp.Operator(kuberay_version="v1.5.1"))
    ray = pod.ray_container
    recorded = RECORDED_HEAD["args"][0]
    # v1.7 differs in two places only: the ulimit (kuberay#4860) and RAY_CLUSTER_NAMESPACE.
    assert ray.args == [recorded.replace("ulimit -n 65536", ULIMIT)]
    assert ray.command == RECORDED_HEAD["command"]
    assert [n for n in ray.env_order if n != "RAY_CLUSTER_NAMESPACE"] == RECORDED_HEAD["env"]
    assert ray.env["KUBERAY_GEN_RAY_START_CMD"] == recorded.split("; ", 1)[1]
    assert ray.env["RAY_USAGE_STATS_EXTRA_TAGS"] == "kuberay_version=v1.5.1;kuberay_crd=RayCluster"
    assert ray.env_from_secret["RAY_AUTH_TOKEN"] == ("raycluster-auth-token", "auth_token")
    assert pod.volumes == RECORDED_HEAD["volumes"]
    assert pod.labels == RECORDED_HEAD["labels"]
    assert pod.annotations == {"ray.io/ft-enabled": "false"}


@pytest.fixture(scope="module")
def rendered() -> dict:
    """The chart's RayCluster with its defaults, rendered by the real Helm engine."""
    with helm.Chart.load(ROOT / "helm" / "evmpp") as chart:
        manifests = chart.render(None, name="evmpp", namespace=NS)
    body = manifests["evmpp/templates/raycluster.yaml"]
    return next(d for d in yaml.safe_load_all(body) if d and d.get("kind") == "RayCluster")


def test_the_charts_raycluster(rendered):
    """The chart's RayCluster goes through: what the local test will run. KubeRay leaves the
    head's command to the chart and hands it the ray start it generated."""
    pods = kp.cluster_pods(rendered, NS)
    head = pods[0]
    assert [c.name for c in head.containers] == ["ray-head", "autoscaler"]
    ray = head.ray_container
    assert ray.command == ["/bin/bash", "/etc/evmpp/start-head.sh"] and ray.args == []
    assert ray.env["KUBERAY_GEN_RAY_START_CMD"].startswith("ray start --head  --block  ")
    assert ray.env_from_secret["RAY_AUTH_TOKEN"] == ("evmpp", "auth_token")
    name = rendered["metadata"]["name"]
    for worker in pods[1:]:
        assert worker.ray_container.env["RAY_ADDRESS"] == (
            f"{name}-head-svc.{NS}.svc.cluster.local:6379"
        )
        assert worker.ray_container.env_from_secret["RAY_AUTH_TOKEN"] == ("evmpp", "auth_token")
