"""The Helm chart rendered as helm would (Go text/template + sprig: helm/tools/render) with its
default values and with overrides; every manifest validated, and every value in its field."""

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from cli.serve import settings_from_file

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "evmpp"
KUBERNETES = "1.30.0"

OVERRIDES = {
    "image": {"repository": "registry.example/evmpp", "tag": "9.9.9", "pullPolicy": "Always"},
    "rayVersion": "2.61.0",
    "coordinator": {
        "blockInterval": 0.5,
        "pbsGasLimit": 45000000,
        "basicCUs": 2,
        "cuCores": 3,
        "ebsSlots": 6,
        "genesis": "/etc/evmpp/genesis.json",
        "seed": 42,
    },
    "scaling": {"up": 1.5, "down": 0.2, "target": 0.7, "window": 5, "maxCUs": 12},
    "validators": {"count": 7},
    "api": {"port": 9000, "serviceType": "LoadBalancer"},
    "dashboard": {"port": 8300, "serviceType": "NodePort"},
    "head": {
        "resources": {
            "requests": {"cpu": "3", "memory": "5Gi"},
            "limits": {"cpu": "3", "memory": "6Gi"},
        },
        "evmppResources": {
            "requests": {"cpu": "5", "memory": "18Gi"},
            "limits": {"cpu": "6", "memory": "20Gi"},
        },
    },
    "workers": {
        "groupName": "cus",
        "replicas": 2,
        "minReplicas": 1,
        "maxReplicas": 11,
        "cpus": 8,
        "resources": {
            "requests": {"cpu": "8", "memory": "16Gi"},
            "limits": {"cpu": "8", "memory": "16Gi"},
        },
    },
    "autoscaler": {"idleTimeoutSeconds": 120},
    "persistence": {
        "size": "200Gi",
        "storageClassName": "fast-ssd",
        "accessModes": ["ReadWriteOncePod"],
    },
}


@pytest.fixture(scope="session")
def renderer(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("render") / "render"
    build = subprocess.run(
        [str(ROOT / "helm" / "tools" / "build-render.sh"), str(out)],
        capture_output=True,
        text=True,
    )
    if build.returncode == 3:  # Debian's Go packages are not installed: `make helm-tools`
        pytest.skip(build.stderr.strip())
    assert build.returncode == 0, build.stderr
    return out


def render(
    renderer: Path, tmp_path: Path, overrides: dict | None = None, release: str = "demo"
) -> dict:
    """Rendered manifests by kind (Services by name), and NOTES.txt."""
    argv = [str(renderer), "-name", release, "-namespace", "chain"]
    if overrides:
        values = tmp_path / "values.yaml"
        values.write_text(yaml.safe_dump(overrides))
        argv += ["-f", str(values)]
    result = subprocess.run([*argv, str(CHART)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    out: dict = {"Service": {}}
    for chunk in re.split(r"^---\n# Source: ", result.stdout, flags=re.M)[1:]:
        source, body = chunk.split("\n", 1)
        if source.endswith("NOTES.txt"):
            out["NOTES"] = body
            continue
        for doc in yaml.safe_load_all(body):
            if doc["kind"] == "Service":
                out["Service"][doc["metadata"]["name"]] = doc
            else:
                out[doc["kind"]] = doc
    return out


def validate_kubernetes(doc: dict) -> None:
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def pod_templates(cluster: dict) -> list[dict]:
    spec = cluster["spec"]
    return [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]


@pytest.mark.parametrize("overrides", [None, OVERRIDES], ids=["defaults", "overrides"])
def test_rendered_manifests_are_valid(renderer, tmp_path, overrides):
    out = render(renderer, tmp_path, overrides)
    for doc in [out["ConfigMap"], out["PersistentVolumeClaim"], *out["Service"].values()]:
        validate_kubernetes(doc)
    cluster = out["RayCluster"]
    schema = json.loads((ROOT / "helm" / "tools" / "raycluster.schema.json").read_text())
    jsonschema.validate(cluster, schema)
    for template in pod_templates(cluster):
        validate_kubernetes(
            {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "t"},
                "template": template,
            }
        )
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    values_schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.validate(values, values_schema)
    if overrides:
        jsonschema.validate(overrides, values_schema)


def test_a_bad_manifest_is_caught():
    """The validators do fail: a RayCluster with an integer ray start parameter, a Service
    with a misspelt field."""
    schema = json.loads((ROOT / "helm" / "tools" / "raycluster.schema.json").read_text())
    bad = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": "x"},
        "spec": {"headGroupSpec": {"rayStartParams": {"num-cpus": 0}, "template": {"spec": {}}}},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_kubernetes(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "s"},
                "spec": {"prots": []},
            }
        )


def test_every_value_reaches_its_field(renderer, tmp_path):
    out = render(renderer, tmp_path, OVERRIDES)
    o = OVERRIDES
    cluster = out["RayCluster"]["spec"]
    head = cluster["headGroupSpec"]
    ray_head, evmpp = head["template"]["spec"]["containers"]
    [workers] = cluster["workerGroupSpecs"]
    image = f"{o['image']['repository']}:{o['image']['tag']}"
    for container in [ray_head, evmpp, *workers["template"]["spec"]["containers"]]:
        assert container["image"] == image and container["imagePullPolicy"] == "Always"
    assert cluster["rayVersion"] == "2.61.0" and cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"]["idleTimeoutSeconds"] == 120
    assert head["rayStartParams"]["dashboard-port"] == "8300"
    assert ray_head["resources"] == o["head"]["resources"]
    assert evmpp["resources"] == o["head"]["evmppResources"]
    assert "--port=9000" in evmpp["args"] and evmpp["ports"][0]["containerPort"] == 9000
    assert evmpp["readinessProbe"]["httpGet"]["port"] == 9000
    assert (
        workers["groupName"],
        workers["replicas"],
        workers["minReplicas"],
        workers["maxReplicas"],
    ) == ("cus", 2, 1, 11)
    assert workers["rayStartParams"]["num-cpus"] == "8"
    assert workers["template"]["spec"]["containers"][0]["resources"] == o["workers"]["resources"]

    api, dashboard = out["Service"]["demo-evmpp-api"], out["Service"]["demo-evmpp-dashboard"]
    assert (api["spec"]["type"], api["spec"]["ports"][0]["port"]) == ("LoadBalancer", 9000)
    assert (dashboard["spec"]["type"], dashboard["spec"]["ports"][0]["port"]) == ("NodePort", 8300)
    pvc = out["PersistentVolumeClaim"]["spec"]
    assert pvc["resources"]["requests"]["storage"] == "200Gi"
    assert pvc["storageClassName"] == "fast-ssd" and pvc["accessModes"] == ["ReadWriteOncePod"]
    volumes = {v["name"]: v for v in head["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "demo-evmpp-data"
    assert volumes["settings"]["configMap"]["name"] == out["ConfigMap"]["metadata"]["name"]

    settings_file = tmp_path / "evmpp.yaml"
    settings_file.write_text(out["ConfigMap"]["data"]["evmpp.yaml"])
    settings, genesis = settings_from_file(settings_file)  # what evmpp serve reads
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
    ) == (0.5, 45_000_000, 2, 3, 6, 42, 7)
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
    assert "-n chain" in notes


def test_docs_commands_match_the_chart(renderer, tmp_path):
    """The service names, ports and paths docs/deploy.md uses are the chart's."""
    docs = (ROOT / "docs" / "deploy.md").read_text()
    out = render(renderer, tmp_path, release="evmpp")
    for name, service in out["Service"].items():
        port = service["spec"]["ports"][0]["port"]
        assert f"svc/{name} {port}:{port}" in docs
    assert "helm install evmpp helm/evmpp" in docs
    assert "/v1/ebs/subscriptions" in docs
