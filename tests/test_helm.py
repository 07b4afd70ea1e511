"""The Helm chart, rendered, linted and schema-checked by the real Helm engine (Helm v4's Go
SDK, through helm-python-sdk); every RayCluster it renders validated against KubeRay's own CRD
(``../shared/kuberay``) as the API server applies it, every other manifest against
Kubernetes' schemas; every value in its field, every bad value refused by name."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from crd_schema import validate as validate_crd
from crd_schema import validate_raycluster_metadata

from cli.serve import settings_from_file

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "evmpp"
KUBERNETES = "1.30.0"

OVERRIDES = {
    "image": {"repository": "registry.example/evmpp", "tag": "9.9.9", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "registry-creds"}],
    "rayVersion": "2.61.0",
    "auth": {"mode": "token", "secretName": "chain-token"},
    "upgradeStrategy": "None",
    "coordinator": {
        "blockInterval": 0.5,
        "pbsGasLimit": 45000000,
        "basicCUs": 2,
        "cuCores": 3,
        "ebsSlots": 6,
        "genesis": "/etc/evmpp/genesis.json",
        "seed": 42,
        "verifierMaxLag": 16,
    },
    "scaling": {"up": 1.5, "down": 0.2, "target": 0.7, "window": 5, "maxCUs": 12},
    "validators": {"count": 7},
    "api": {"port": 9000, "serviceType": "LoadBalancer"},
    "dashboard": {"port": 8300, "serviceType": "NodePort"},
    "metrics": {
        "port": 9090,
        "podMonitor": {"enabled": True, "labels": {"release": "prometheus"}, "interval": "30s"},
        "grafanaDashboard": {"enabled": True},
    },
    "head": {
        "resources": {
            "requests": {"cpu": "500m", "memory": "5Gi"},
            "limits": {"cpu": 3, "memory": "6Gi"},
        },
        "labels": {"team": "chain"},
        "annotations": {"example.com/owner": "chain-ops"},
        "nodeSelector": {"pool": "head"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "head"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                    ]
                }
            }
        },
        "podSecurityContext": {"fsGroup": 2000, "runAsUser": 1000},
        "securityContext": {"allowPrivilegeEscalation": False},
        "containerEnv": [{"name": "RAY_BACKEND_LOG_LEVEL", "value": "warning"}],
        "envFrom": [{"secretRef": {"name": "extra-env"}}],
        "volumes": [{"name": "genesis", "configMap": {"name": "chain-genesis"}}],
        "volumeMounts": [{"name": "genesis", "mountPath": "/etc/evmpp-genesis"}],
        "serviceAccountName": "evmpp-head",
    },
    "worker": {
        "groupName": "cus",
        "replicas": 2,
        "minReplicas": 1,
        "maxReplicas": 11,
        "cpus": 8,
        "resources": {
            "requests": {"cpu": "8", "memory": "16Gi"},
            "limits": {"cpu": "8", "memory": "16Gi"},
        },
        "nodeSelector": {"pool": "cu"},
        "containerEnv": [{"name": "RAY_DISABLE_DOCKER_CPU_WARNING", "value": "1"}],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
    },
    "autoscaler": {"idleTimeoutSeconds": 120, "upscalingMode": "Conservative"},
    "persistence": {
        "size": "200Gi",
        "storageClassName": "fast-ssd",
        "accessModes": ["ReadWriteOncePod"],
    },
}


@pytest.fixture(scope="module")
def chart():
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def by_kind(manifests: dict[str, str]) -> dict:
    """Rendered manifests by kind (Services by name), and NOTES.txt."""
    out: dict = {"Service": {}}
    for source, body in manifests.items():
        if source.endswith("NOTES.txt"):
            out["NOTES"] = body
            continue
        for doc in yaml.safe_load_all(body):
            if not doc:
                continue
            if doc["kind"] == "Service":
                out["Service"][doc["metadata"]["name"]] = doc
            else:
                out.setdefault(doc["kind"], []).append(doc)
    return out


def render(chart, values: dict | None = None, release: str = "demo") -> dict:
    """What `helm install <release> helm/evmpp -n chain -f values` would apply."""
    chart.validate_schema(values)
    out = by_kind(chart.render(values, name=release, namespace="chain", is_install=True))
    validate_manifests(out)  # every render of every test: what the API server would take
    return out


def pod_templates(cluster: dict) -> list[dict]:
    spec = cluster["spec"]
    return [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]


def validate_manifests(out: dict) -> None:
    """Every manifest as the API server would take it: the RayCluster against KubeRay's CRD
    (and KubeRay's own name checks), the rest, and each pod template, against Kubernetes."""
    [cluster] = out["RayCluster"]
    validate_crd(cluster)
    validate_raycluster_metadata(cluster)
    for template in pod_templates(cluster):
        kubernetes_validate.validate(
            {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "t"},
                "template": template,
            },
            KUBERNETES,
            strict=True,
        )
    core = [*out["ConfigMap"], *out["PersistentVolumeClaim"], *out["Service"].values()]
    for doc in core:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


@pytest.mark.parametrize("values", [None, OVERRIDES], ids=["defaults", "overrides"])
def test_lint_strict_is_clean(values):
    report = helm.lint(CHART, values, strict=True, namespace="chain", kube_version="v1.30.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []  # no warning, no error


@pytest.mark.parametrize("values", [None, OVERRIDES], ids=["defaults", "overrides"])
def test_rendered_manifests_are_valid(chart, values):
    validate_manifests(render(chart, values))


def test_the_validators_do_fail(chart):
    """A RayCluster the CRD refuses, a Service with a misspelt field: both caught."""
    from crd_schema import CrdValidationError

    [cluster] = render(chart)["RayCluster"]
    broken = copy.deepcopy(cluster)
    broken["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0
    with pytest.raises(CrdValidationError, match="num-cpus"):
        validate_crd(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "s"},
                "spec": {"prots": []},
            },
            KUBERNETES,
            strict=True,
        )


def with_value(path: str, value) -> dict:
    """Values with one field set (a dotted path; a list index as a number)."""
    values: dict = {}
    node: dict = values
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return values


BAD_VALUES = [
    ("head.resources.requests.cpu", 0.5),  # a quantity is an integer or a string
    ("head.resources.limits.memory", "8GB"),  # not a quantity
    ("worker.resources.requests.cpu", "four"),
    ("persistence.size", "50 GiB"),
    ("worker.maxReplicas", 3000000000),  # over int32
    ("worker.replicas", -1),
    ("autoscaler.idleTimeoutSeconds", 2**31),
    ("worker.groupName", 1234),  # rendered unquoted it was an integer
    ("worker.groupName", "CU_Workers"),  # not a DNS-1035 label
    ("nameOverride", "9lives"),
    ("fullnameOverride", "a" * 54),  # over KubeRay's 53
    ("auth.mode", "password"),
    ("upgradeStrategy", "Rolling"),
    ("api.port", 70000),
    ("coordinator.pbsGasLimit", 1.5),
    ("head.labels", {"team": 7}),  # a label value is a string
    ("unknownTopLevel", True),
]


@pytest.mark.parametrize(
    ("path", "value"), BAD_VALUES, ids=[f"{p}={v!r}"[:60] for p, v in BAD_VALUES]
)
def test_a_bad_value_is_refused_by_name(chart, path, value):
    values = with_value(path, value)
    with pytest.raises(helm.HelmValuesError) as refused:
        chart.validate_schema(values)
    message = str(refused.value)
    leaf = path.split(".")[-1]
    assert leaf in message or f"'{leaf}'" in message, message
    with pytest.raises(helm.HelmError):  # helm install refuses them too, not only the test
        chart.render(values, name="demo", namespace="chain")


@pytest.mark.parametrize(
    ("release", "reason"),
    [
        ("1234", "is not a DNS-1035 label"),  # Helm takes it; KubeRay would not
        ("a" * 48, "is 54 characters; KubeRay allows at most 53"),
        ("a-b.c", "is not a DNS-1035 label"),
    ],
    ids=["numeric", "over-53", "dotted"],
)
def test_a_release_name_kuberay_refuses_is_refused(chart, release, reason):
    with pytest.raises(helm.HelmRenderError, match=f"the RayCluster name .* {reason}"):
        chart.render(None, name=release, namespace="chain")


@pytest.mark.parametrize(
    ("worker", "reason"),
    [
        ({"minReplicas": 7, "maxReplicas": 6, "replicas": 6}, "minReplicas .7. is more than"),
        ({"replicas": 7}, r"replicas .7. is outside worker.minReplicas..worker.maxReplicas"),
    ],
    ids=["min-over-max", "replicas-outside"],
)
def test_worker_replicas_kuberay_refuses_are_refused(chart, worker, reason):
    chart.validate_schema({"worker": worker})
    with pytest.raises(helm.HelmRenderError, match=reason):
        chart.render({"worker": worker}, name="demo", namespace="chain")


def test_a_long_release_name_fits_with_fullname_override(chart):
    out = render(chart, {"fullnameOverride": "chain"}, release="a" * 48)
    [cluster] = out["RayCluster"]
    assert cluster["metadata"]["name"] == "chain"
    validate_manifests(out)


def test_capacity_must_add_up(chart):
    """The workers must hold the basic pool at its most plus every EBS slot."""
    values = {"worker": {"maxReplicas": 2}}  # 2 × 4 CPUs < (8 + 4) × 2
    chart.validate_schema(values)
    with pytest.raises(helm.HelmRenderError, match=r"= 8 CPUs, but .* = 24"):
        chart.render(values, name="demo", namespace="chain")
    defaults = chart.values
    need = (defaults["scaling"]["maxCUs"] + defaults["coordinator"]["ebsSlots"]) * defaults[
        "coordinator"
    ]["cuCores"]
    assert defaults["worker"]["cpus"] * defaults["worker"]["maxReplicas"] >= need


def test_every_value_reaches_its_field(chart, tmp_path):
    out = render(chart, OVERRIDES)
    o = OVERRIDES
    [cluster_doc] = out["RayCluster"]
    cluster = cluster_doc["spec"]
    head = cluster["headGroupSpec"]
    [ray_head] = head["template"]["spec"]["containers"]
    [workers] = cluster["workerGroupSpecs"]
    [ray_worker] = workers["template"]["spec"]["containers"]
    image = f"{o['image']['repository']}:{o['image']['tag']}"
    for container in (ray_head, ray_worker):
        assert container["image"] == image and container["imagePullPolicy"] == "Always"
    assert cluster["rayVersion"] == "2.61.0" and cluster["enableInTreeAutoscaling"] is True
    assert cluster["authOptions"] == {"mode": "token", "secretName": "chain-token"}
    assert cluster["upgradeStrategy"] == {"type": "None"}
    assert cluster["autoscalerOptions"] == {
        "idleTimeoutSeconds": 120,
        "upscalingMode": "Conservative",
    }
    assert head["rayStartParams"]["dashboard-port"] == "8300"
    assert head["rayStartParams"]["metrics-export-port"] == "9090"
    assert ray_head["resources"] == o["head"]["resources"]
    ports = {p["name"]: p["containerPort"] for p in ray_head["ports"]}
    assert (ports["api"], ports["dashboard"], ports["metrics"]) == (9000, 8300, 9090)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert ray_head[probe]["httpGet"] == {"path": "/healthz", "port": "api"}
    head_pod = head["template"]["spec"]
    assert head_pod["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert head_pod["nodeSelector"] == {"pool": "head"}
    assert head_pod["tolerations"] == o["head"]["tolerations"]
    assert head_pod["affinity"] == o["head"]["affinity"]
    assert head_pod["securityContext"] == {"fsGroup": 2000, "runAsUser": 1000}
    assert head_pod["serviceAccountName"] == "evmpp-head"
    assert ray_head["securityContext"] == {"allowPrivilegeEscalation": False}
    assert ray_head["env"] == o["head"]["containerEnv"]
    assert ray_head["envFrom"] == o["head"]["envFrom"]
    assert head["template"]["metadata"]["labels"]["team"] == "chain"
    assert head["template"]["metadata"]["annotations"]["example.com/owner"] == "chain-ops"
    mounts = {m["name"]: m["mountPath"] for m in ray_head["volumeMounts"]}
    assert mounts == {"settings": "/etc/evmpp", "data": "/data", "genesis": "/etc/evmpp-genesis"}
    volumes = {v["name"]: v for v in head_pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "demo-evmpp-data"
    assert volumes["settings"]["configMap"]["name"] == "demo-evmpp-settings"
    assert volumes["genesis"] == o["head"]["volumes"][0]

    assert (
        workers["groupName"],
        workers["replicas"],
        workers["minReplicas"],
        workers["maxReplicas"],
    ) == ("cus", 2, 1, 11)
    assert workers["rayStartParams"]["num-cpus"] == "8"
    assert ray_worker["resources"] == o["worker"]["resources"]
    assert ray_worker["env"] == o["worker"]["containerEnv"]
    assert ray_worker["volumeMounts"] == o["worker"]["volumeMounts"]
    worker_pod = workers["template"]["spec"]
    assert worker_pod["nodeSelector"] == {"pool": "cu"}
    assert worker_pod["volumes"] == o["worker"]["volumes"]
    assert worker_pod["imagePullSecrets"] == [{"name": "registry-creds"}]

    api, dashboard = out["Service"]["demo-evmpp-api"], out["Service"]["demo-evmpp-dashboard"]
    assert (api["spec"]["type"], api["spec"]["ports"][0]["port"]) == ("LoadBalancer", 9000)
    assert (dashboard["spec"]["type"], dashboard["spec"]["ports"][0]["port"]) == ("NodePort", 8300)
    [pvc] = out["PersistentVolumeClaim"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "200Gi"
    assert pvc["spec"]["storageClassName"] == "fast-ssd"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOncePod"]

    settings, genesis = settings_from(out, tmp_path)
    s = o["scaling"]
    assert genesis == "/etc/evmpp/genesis.json"
    assert (
        settings.block_interval,
        settings.pbs_gas_limit,
        settings.basic_cus,
        settings.cu_cores,
        settings.ebs_slots,
        settings.seed,
        settings.validators,
        settings.verifier_max_lag,
    ) == (0.5, 45_000_000, 2, 3, 6, 42, 7, 16)
    assert (
        settings.policy.up,
        settings.policy.down,
        settings.policy.target,
        settings.policy.window,
        settings.policy.max_cus,
    ) == (s["up"], s["down"], s["target"], s["window"], s["maxCUs"])
    notes = out["NOTES"]
    assert "port-forward svc/demo-evmpp-api 9000:9000" in notes
    assert "port-forward svc/demo-evmpp-dashboard 8300:8300" in notes
    assert "get secret chain-token" in notes
    assert "-n chain" in notes


def settings_from(out: dict, tmp_path: Path):
    """What evmpp serve reads from the rendered ConfigMap."""
    config = next(c for c in out["ConfigMap"] if c["metadata"]["name"].endswith("-settings"))
    path = tmp_path / "evmpp.json"
    path.write_text(config["data"]["evmpp.json"])
    return settings_from_file(path)


def test_numbers_reach_serve_as_the_numbers_they_were(chart, tmp_path):
    """A values file holds numbers as floats in Helm; `{{ 1000000.0 }}` printed 1e+06."""
    values = helm.values_from_yaml(
        "coordinator: {pbsGasLimit: 1000000, seed: 12345678, blockInterval: 0.25}\n"
        "scaling: {window: 1000000, maxCUs: 100}\nworker: {maxReplicas: 100}\n"
    )
    settings, _ = settings_from(render(chart, values), tmp_path)
    assert settings.pbs_gas_limit == 1_000_000 and isinstance(settings.pbs_gas_limit, int)
    assert (settings.seed, settings.block_interval, settings.policy.window) == (
        12345678,
        0.25,
        1_000_000,
    )


def test_upgrade_recreates_the_pods_when_settings_change(chart):
    """KubeRay recreates the pods (upgradeStrategy Recreate) when a pod template changes; the
    settings' checksum in the head's template makes a settings change such a change."""
    [before] = render(chart)["RayCluster"]
    [after] = render(chart, {"coordinator": {"blockInterval": 2.0}})["RayCluster"]
    [same] = render(chart)["RayCluster"]
    assert before["spec"]["upgradeStrategy"] == {"type": "Recreate"}

    def checksum(cluster: dict) -> str:
        return cluster["spec"]["headGroupSpec"]["template"]["metadata"]["annotations"][
            "checksum/settings"
        ]

    assert checksum(before) != checksum(after) and checksum(before) == checksum(same)


def test_the_head_runs_evmpp_serve_beside_ray(chart):
    """One container: KubeRay's ray start (KUBERAY_GEN_RAY_START_CMD, the command left to the
    chart) and evmpp serve on the volume, pinned to that node (cli/serve.py)."""
    out = render(chart)
    [cluster] = out["RayCluster"]
    template = cluster["spec"]["headGroupSpec"]["template"]
    assert template["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    [container] = template["spec"]["containers"]
    assert container["command"] == ["/bin/bash", "/etc/evmpp/start-head.sh"]
    [config] = [c for c in out["ConfigMap"] if c["metadata"]["name"] == "demo-evmpp-settings"]
    script = config["data"]["start-head.sh"]
    assert 'eval "$KUBERAY_GEN_RAY_START_CMD" &' in script
    assert "--data-dir=/data/chain" in script and "--config=/etc/evmpp/evmpp.json" in script
    assert template["spec"]["securityContext"]["fsGroup"] == 100  # Ray's image: uid 1000, gid 100


def test_metrics_podmonitor_and_grafana_dashboard(chart):
    out = render(
        chart, {"metrics": {"podMonitor": {"enabled": True}, "grafanaDashboard": {"enabled": True}}}
    )
    [monitor] = out["PodMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"] == {"ray.io/cluster": "demo-evmpp"}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    [cluster] = out["RayCluster"]
    for template in pod_templates(cluster):
        [container] = template["spec"]["containers"]
        assert "metrics" in {p["name"] for p in container["ports"]}
    [board] = [c for c in out["ConfigMap"] if c["metadata"]["name"].endswith("-grafana-dashboard")]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(board["data"]["evmpp.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "evmpp.json").read_text())
    assert "PodMonitor" not in render(chart)  # off by default: it needs prometheus-operator


def test_the_dashboard_graphs_the_gauges_the_coordinator_sets():
    """Each panel's metric is one the coordinator or the StateServer exports (Ray prefixes
    ray_, counters get _total), and every gauge an operator watches has a panel."""
    source = "".join(
        (ROOT / path).read_text() for path in ("cluster/metrics.py", "compute_unit/remote_state.py")
    )
    gauges = set(re.findall(r'Gauge\(\s*"(evmpp_\w+)"', source))
    counters = set(re.findall(r'Counter\(\s*"(evmpp_\w+)"', source))
    exported = {f"ray_{g}" for g in gauges} | {f"ray_{c}_total" for c in counters}
    dashboard = json.loads((CHART / "dashboards" / "evmpp.json").read_text())
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"\bray_evmpp_\w+", target["expr"]))
    assert used <= exported, used - exported
    assert {f"ray_{g}" for g in gauges} <= used


def test_the_chart_works_as_a_subchart(tmp_path):
    """A parent chart with `global` values and this chart under charts/."""
    parent = tmp_path / "platform"
    (parent / "charts").mkdir(parents=True)
    shutil.copytree(CHART, parent / "charts" / "evmpp")
    (parent / "Chart.yaml").write_text(
        "apiVersion: v2\nname: platform\nversion: 1.0.0\n"
        "dependencies:\n  - name: evmpp\n    version: 0.1.0\n"
    )
    (parent / "values.yaml").write_text(
        "global: {imageRegistry: registry.example}\nevmpp: {api: {port: 8600}}\n"
    )
    with helm.Chart.load(parent) as platform:
        out = by_kind(platform.render(None, name="chain", namespace="chain"))
    assert out["Service"]["chain-evmpp-api"]["spec"]["ports"][0]["port"] == 8600
    validate_manifests(out)


def test_docs_commands_match_the_chart(chart):
    """The names, ports and paths docs/deploy.md uses are the chart's, through step 5."""
    docs = (ROOT / "docs" / "deploy.md").read_text()
    out = render(chart, release="evmpp")
    for name, service in out["Service"].items():
        port = service["spec"]["ports"][0]["port"]
        assert f"svc/{name} {port}:{port}" in docs
    assert "helm install evmpp helm/evmpp" in docs
    [cluster] = out["RayCluster"]
    assert f"raycluster {cluster['metadata']['name']}" in docs
    api_port = out["Service"]["evmpp-api"]["spec"]["ports"][0]["port"]
    assert f"--rpc http://localhost:{api_port}" in docs
    for command in ("evmpp ebs subscribe", "evmpp ebs status", "evmpp ebs cancel"):
        assert command in docs


def test_token_auth_is_on_and_disabled_reaches_every_ray_process(chart):
    """Token auth is KubeRay's (authOptions: its Secret reaches the Ray containers); the
    opt-out must be told to every Ray process, since Ray 2.60 turns tokens on by itself."""
    from kuberay_pods import cluster_pods

    [on] = render(chart)["RayCluster"]
    assert on["spec"]["authOptions"] == {"mode": "token"}
    for pod in cluster_pods(on, "chain"):
        assert pod.ray_container.env_from_secret["RAY_AUTH_TOKEN"] == ("demo-evmpp", "auth_token")
    [off] = render(chart, {"auth": {"mode": "disabled"}})["RayCluster"]
    assert off["spec"]["authOptions"] == {"mode": "disabled"}
    disabled = {"name": "RAY_AUTH_MODE", "value": "disabled"}
    assert disabled in off["spec"]["autoscalerOptions"]["env"]
    for template in pod_templates(off):
        assert disabled in template["spec"]["containers"][0]["env"]
    for pod in cluster_pods(off, "chain"):
        assert pod.ray_container.env["RAY_AUTH_MODE"] == "disabled"
        assert "RAY_AUTH_TOKEN" not in pod.ray_container.env_from_secret
