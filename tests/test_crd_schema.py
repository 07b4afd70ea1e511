"""tests/crd_schema.py: a RayCluster checked against KubeRay's CRD as the API server checks it
(strict field validation), and its name and labels as KubeRay checks them."""

import copy
import re

import pytest
import yaml
from crd_schema import (
    MAX_RAYCLUSTER_NAME_LENGTH,
    QUANTITY_PATTERN,
    RAYCLUSTER_CRD,
    CrdValidationError,
    cel_rules,
    errors,
    load_crd_schema,
    open_subtrees,
    raycluster_metadata_errors,
    validate,
    validate_raycluster_metadata,
)

pytestmark = pytest.mark.skipif(
    not RAYCLUSTER_CRD.is_file(), reason=f"{RAYCLUSTER_CRD} is missing (shared/kuberay)"
)

HEAD = "spec.headGroupSpec"
HEAD_CONTAINER = f"{HEAD}.template.spec.containers[0]"
WORKERS = "spec.workerGroupSpecs[0]"


def raycluster() -> dict:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {
            "name": "demo-evmpp",
            "namespace": "chain",
            "labels": {"app.kubernetes.io/name": "evmpp", "release": "demo"},
        },
        "spec": {
            "rayVersion": "2.52.0",
            "enableInTreeAutoscaling": True,
            "headGroupSpec": {
                "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/component": "head"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "ray-head",
                                "image": "rayproject/ray:2.52.0",
                                "ports": [{"containerPort": 6379, "name": "gcs"}],
                                "resources": {
                                    "requests": {"cpu": "500m", "memory": "2Gi"},
                                    "limits": {"cpu": 2, "memory": "2Gi"},
                                },
                            }
                        ]
                    },
                },
            },
            "workerGroupSpecs": [
                {
                    "groupName": "cus",
                    "replicas": 1,
                    "minReplicas": 0,
                    "maxReplicas": 4,
                    "rayStartParams": {},
                    "template": {
                        "spec": {
                            "containers": [{"name": "ray-worker", "image": "rayproject/ray:2.52.0"}]
                        }
                    },
                }
            ],
        },
    }


_DELETE = object()


def changed(path: str, value) -> dict:
    """The minimal RayCluster with the field at path (`a.b[0]["c.d"]`, as errors name fields)
    set to value, appended (an index one past a list's end), or deleted (_DELETE)."""
    obj = copy.deepcopy(raycluster())
    parts = [
        key if key else int(index) if index else word
        for key, index, word in re.findall(r'\["([^"]*)"\]|\[(\d+)\]|([^.\[\]]+)', path)
    ]
    node = obj
    for part in parts[:-1]:
        node = node[part]
    last = parts[-1]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list) and last == len(node):
        node.append(value)
    else:
        node[last] = value
    return obj


def problems_at(obj: dict, path: str) -> list[str]:
    return [p for p in errors(obj) if p.startswith(path + ":")]


def test_a_minimal_raycluster_passes():
    obj = raycluster()
    assert errors(obj) == []
    validate(obj)
    validate_raycluster_metadata(obj)
    assert obj == raycluster()  # not changed by defaulting


@pytest.mark.parametrize(
    "path, value, field, message",
    [
        (
            f"{HEAD_CONTAINER}.resources.requests.cpu",
            0.5,
            None,
            "0.5 is not of type integer or string",
        ),
        (
            f"{HEAD_CONTAINER}.resources.requests.cpu",
            True,
            None,
            "is not of type integer or string",
        ),
        (f"{HEAD_CONTAINER}.resources.limits.memory", "8GB", None, "is not a resource quantity"),
        (f"{HEAD_CONTAINER}.resources.limits.memory", "2 Gi", None, "is not a resource quantity"),
        (f"{HEAD_CONTAINER}.resources.limits.memory", "2Gi\n", None, "is not a resource quantity"),
        (f"{WORKERS}.maxReplicas", 3_000_000_000, None, "out of range for int32"),
        (f"{WORKERS}.replicas", 1.5, None, "1.5 is not of type integer"),
        (f"{WORKERS}.replicas", True, None, "true is not of type integer"),
        (f"{WORKERS}.replicas", "1", None, '"1" is not of type integer'),
        (f"{WORKERS}.groupName", _DELETE, None, "Required value"),
        (f"{HEAD}.rayStartParam", {"num-cpus": "1"}, None, "unknown field"),
        (f"{HEAD}.template.spec.containers[0].resource", {}, None, "unknown field"),
        (f"{HEAD}.template.metadata.creationTimestamp", None, None, "unknown field"),
        (f"{HEAD}.rayStartParams", {"num-cpus": 0}, f"{HEAD}.rayStartParams.num-cpus", "0 is not"),
        ("spec.enableInTreeAutoscaling", "true", None, '"true" is not of type boolean'),
        ("spec.authOptions", {"mode": "foo"}, "spec.authOptions.mode", '"foo" is not one of'),
        ("spec.managedBy", "me", None, "the managedBy field value must be either"),
        ("spec.headGroupSpec", _DELETE, None, "Required value"),
        (f"{HEAD}.template.spec.containers[1]", None, None, "null is not of type object"),
        ("metadata.labels", {"app": 1234}, "metadata.labels.app", "1234 is not of type string"),
        ("metadata.labels", {"app": "a b"}, "metadata.labels.app", "label value"),
        ("metadata.labels", {"-app": "x"}, 'metadata.labels["-app"]', "label key"),
        ("metadata.name", "Demo", None, "RFC 1123 subdomain"),
        ("metadata.name", _DELETE, None, "Required value"),
        ("metadata.namespace", "chain.x", None, "RFC 1123 label"),
        ("metadata.clusterName", "x", None, "unknown field"),
        ("apiVersion", "ray.io/v2", None, "served versions are"),
        ("kind", "RayJob", None, '"RayJob" is not "RayCluster"'),
    ],
)
def test_a_bad_field_is_rejected_by_name(path, value, field, message):
    obj = changed(path, value)
    found = problems_at(obj, field or path)
    assert found, errors(obj)
    assert any(message in p for p in found), found
    with pytest.raises(CrdValidationError) as caught:
        validate(obj)
    assert (field or path) in str(caught.value)


@pytest.mark.parametrize(
    "path, value",
    [
        (f"{HEAD_CONTAINER}.resources.requests.cpu", "500m"),
        (f"{HEAD_CONTAINER}.resources.requests.cpu", 2),
        (f"{HEAD_CONTAINER}.resources.requests.cpu", 2.0),  # kube-openapi: a float with no fraction
        (f"{HEAD_CONTAINER}.resources.requests.cpu", "0.5"),
        (f"{HEAD_CONTAINER}.resources.requests.cpu", "1e3"),
        (f"{HEAD_CONTAINER}.resources.requests.memory", "2Gi"),
        (f"{HEAD_CONTAINER}.resources.requests.memory", "8G"),
        (f'{HEAD_CONTAINER}.resources.requests["nvidia.com/gpu"]', 1),
        (f"{WORKERS}.maxReplicas", 2**31 - 1),
        (f"{WORKERS}.maxReplicas", _DELETE),  # required, but defaulted (2147483647)
        (f"{WORKERS}.minReplicas", _DELETE),  # required, but defaulted (0)
        ("spec.suspend", None),  # a non-nullable null is dropped before validation
        # no minItems in the schema (KubeRay's ValidateRayClusterSpec refuses it: not checked here)
        (f"{HEAD}.template.spec.containers", []),
        ("spec.authOptions", {"mode": "token"}),
        ("spec.authOptions", {"mode": "disabled", "enableK8sTokenAuth": False}),
        ("spec.managedBy", "ray.io/kuberay-operator"),
        ("metadata.labels", {"example.com/tier": "", "a": "1.2_3-x"}),
        ("metadata.creationTimestamp", None),
        ("metadata.generateName", "demo-"),
    ],
)
def test_a_good_field_is_accepted(path, value):
    assert errors(changed(path, value)) == []


def test_every_problem_is_reported_at_once():
    obj = changed(f"{HEAD_CONTAINER}.resources.requests", {"cpu": 0.5, "memory": "8GB"})
    obj["spec"]["workerGroupSpecs"][0]["maxReplicas"] = 3_000_000_000
    obj["spec"]["headGroupSpec"]["rayStartParam"] = {}
    with pytest.raises(CrdValidationError) as caught:
        validate(obj)
    memory = f"{HEAD_CONTAINER}.resources.requests.memory"
    assert sorted(caught.value.problems) == [
        f"{HEAD}.rayStartParam: unknown field",
        f"{HEAD_CONTAINER}.resources.requests.cpu: 0.5 is not of type integer or string",
        f'{memory}: "8GB" is not a resource quantity (e.g. "500m", 2, "2Gi"): does not match '
        + QUANTITY_PATTERN,
        f"{WORKERS}.maxReplicas: 3000000000 is out of range for int32 [-2147483648, 2147483647]",
    ]
    assert str(caught.value).startswith("4 problems:\n")


def test_every_quantity_in_the_crd_has_the_quantity_pattern():
    def quantities(node):
        if isinstance(node, dict):
            if node.get("x-kubernetes-int-or-string") and "pattern" in node:
                yield node
            for value in node.values():
                yield from quantities(value)
        elif isinstance(node, list):
            for value in node:
                yield from quantities(value)

    found = list(quantities(load_crd_schema()))
    assert len(found) > 40
    assert all(q["pattern"] == QUANTITY_PATTERN for q in found)
    assert all(q["anyOf"] == [{"type": "integer"}, {"type": "string"}] for q in found)


def test_a_list_map_key_is_unique_with_defaults_applied():
    ports = [{"containerPort": 80}, {"containerPort": 80, "protocol": "TCP"}]
    obj = changed(f"{HEAD_CONTAINER}.ports", ports)
    assert problems_at(obj, f"{HEAD_CONTAINER}.ports[1]") == [
        f"{HEAD_CONTAINER}.ports[1]: Duplicate value: " + '{"containerPort": 80, "protocol": "TCP"}'
    ]
    ports[1]["protocol"] = "UDP"
    assert errors(obj) == []
    containers = obj["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    containers.append({"name": "ray-head", "image": "x"})
    assert [p.split(":")[0] for p in errors(obj)] == [f"{HEAD}.template.spec.containers[1]"]


def test_a_yaml_manifest_as_loaded():
    text = yaml.safe_dump(raycluster())
    assert errors(yaml.safe_load(text)) == []
    assert "cpu: 500m" in text
    float_cpu = yaml.safe_load(text.replace("cpu: 500m", "cpu: 0.5"))
    assert problems_at(float_cpu, f"{HEAD_CONTAINER}.resources.requests.cpu")
    assert errors(yaml.safe_load(text.replace("cpu: 500m", "cpu: 1.0"))) == []
    int_label = yaml.safe_load(text.replace("release: demo", "release: 1234"))
    assert errors(int_label) == ["metadata.labels.release: 1234 is not of type string"]


# --- KubeRay's own checks ---------------------------------------------------------------------


def test_kuberay_limits_a_raycluster_name_to_53_characters():
    assert len("-serve-svc") + MAX_RAYCLUSTER_NAME_LENGTH == 63
    longest = changed("metadata.name", "r" * 53)
    assert errors(longest) == [] and raycluster_metadata_errors(longest) == []
    too_long = changed("metadata.name", "r" * 54)
    assert errors(too_long) == []  # a valid DNS subdomain: the API server takes it
    [problem] = raycluster_metadata_errors(too_long)
    assert problem.startswith("metadata.name: ") and "no more than 53 characters" in problem
    with pytest.raises(CrdValidationError):
        validate_raycluster_metadata(too_long)


@pytest.mark.parametrize("name", ["1demo", "demo.evmpp", "demo-", "-demo", "Demo", "demo_x"])
def test_kuberay_wants_a_dns1035_label_for_a_name(name):
    problems = raycluster_metadata_errors(changed("metadata.name", name))
    assert problems and all(p.startswith("metadata.name: ") for p in problems), problems
    assert "DNS-1035 label" in problems[0]


def test_a_generated_name_counts_its_five_random_characters():
    obj = changed("metadata.name", _DELETE)
    obj["metadata"]["generateName"] = "r" * 48
    assert raycluster_metadata_errors(obj) == []
    obj["metadata"]["generateName"] = "r" * 49
    [problem] = raycluster_metadata_errors(obj)
    assert problem.startswith("metadata.generateName: ") and "no more than 53" in problem


@pytest.mark.parametrize(
    "path, labels, message",
    [
        ("metadata.labels", {"app": 1234}, "1234 is not of type string"),
        (f"{HEAD}.template.metadata.labels", {"app": "x" * 64}, "no more than 63 characters"),
        (f"{WORKERS}.template.metadata", {"labels": {"app": "a b"}}, "label value"),
        (f"{WORKERS}.template.metadata", {"labels": {"app": 7}}, "7 is not of type string"),
        (f"{WORKERS}.labels", {"ray.io/zone": "us east"}, "label value"),
        (f"{HEAD}.labels", {"bad key!": "x"}, "label key"),
    ],
)
def test_kuberay_checks_the_labels_it_puts_on_pods(path, labels, message):
    obj = changed(path, labels)
    problems = raycluster_metadata_errors(obj)
    where = path if path.endswith("labels") else f"{path}.labels"
    assert problems and all(p.startswith(where) for p in problems), problems
    assert any(message in p for p in problems), problems


def test_kuberay_refuses_labels_in_ray_start_params():
    obj = changed(f"{HEAD}.rayStartParams", {"labels": "zone=a"})
    assert errors(obj) == []
    assert raycluster_metadata_errors(obj) == [
        f"{HEAD}.rayStartParams.labels: not supported: use the group's top-level labels field"
    ]


# --- the CRD's rules --------------------------------------------------------------------------


def test_the_crds_cel_rules_are_all_handled():
    """Its x-kubernetes-validations: the immutability ones are transition rules (updates only),
    the managedBy membership rule is evaluated. A new rule fails this until it is handled."""
    rules = {(r["field"], r["rule"]): r["treatment"] for r in cel_rules()}
    assert rules == {
        ("spec.gcsFaultToleranceOptions.backend", "self == oldSelf"): "transition",
        ("spec.managedBy", "self == oldSelf"): "transition",
        (
            "spec.managedBy",
            "self in ['ray.io/kuberay-operator', 'kueue.x-k8s.io/multikueue']",
        ): "checked",
    }


def test_the_raycluster_crd_has_no_open_subtree():
    """Not one x-kubernetes-preserve-unknown-fields: every field is declared, maps (labels,
    rayStartParams, resources) are additionalProperties with a value schema."""
    assert open_subtrees() == []
    spec = load_crd_schema()["properties"]["spec"]["properties"]
    assert spec["headGroupSpec"]["properties"]["rayStartParams"]["additionalProperties"] == {
        "type": "string"
    }
    obj = changed("spec.autoscalerOptions", {"idleTimeoutSeconds": 60, "anything": {"a": 1}})
    assert errors(obj) == ["spec.autoscalerOptions.anything: unknown field"]


SMALL_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"kind": "Widget", "plural": "widgets"},
        "scope": "Cluster",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "format": "int32", "minimum": 1},
                                    "config": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                        "properties": {"level": {"type": "string"}},
                                    },
                                    "anything": {"x-kubernetes-preserve-unknown-fields": True},
                                    "weights": {
                                        "type": "object",
                                        "additionalProperties": {"type": "number"},
                                    },
                                    "tags": {
                                        "type": "array",
                                        "maxItems": 2,
                                        "x-kubernetes-list-type": "set",
                                        "items": {"type": "string", "maxLength": 3},
                                    },
                                    "note": {"type": "string", "nullable": True},
                                    "choice": {
                                        "oneOf": [{"type": "string"}, {"type": "integer"}],
                                        "not": {"enum": [0]},
                                    },
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture
def small_crd(tmp_path):
    path = tmp_path / "widgets.yaml"
    path.write_text(yaml.safe_dump(SMALL_CRD))
    return path


def widget(**spec) -> dict:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 1, **spec},
    }


def test_a_preserve_unknown_fields_subtree_takes_anything(small_crd):
    anything = {"x": [1, {"y": None}], "z": "ok", "deep": {"er": {"est": 2.5}}}
    assert errors(widget(config=anything, anything=anything), small_crd) == []
    assert errors(widget(anything=[1, "two", None]), small_crd) == []
    assert errors(widget(config={"level": 3, **anything}), small_crd) == [
        "spec.config.level: 3 is not of type string"
    ]
    assert errors(widget(other=anything), small_crd) == ["spec.other: unknown field"]


def test_the_small_crds_other_keywords(small_crd):
    def problems(**spec):
        return errors(widget(**spec), small_crd)

    assert problems(weights={"a": 1, "b": 0.5}, tags=["a", "b"], note=None, choice="x") == []
    assert problems(weights={"a": "1"}) == ['spec.weights.a: "1" is not of type number']
    assert problems(tags=["a", "a"]) == ['spec.tags[1]: Duplicate value: "a"']
    assert problems(tags=["a", "b", "c"]) == ["spec.tags: has 3 items, more than 2"]
    assert problems(tags=["abcd"]) == ['spec.tags[0]: "abcd" is longer than 3 characters']
    assert problems(size=0) == ["spec.size: 0: must be greater than or equal to 1"]
    assert problems(size=None) == ["spec.size: Required value"]  # pruned, then missing
    assert problems(choice=0) == ['spec.choice: 0 must not match {"enum": [0]}']
    assert problems(choice=[]) == ["spec.choice: [] matches 0 of oneOf, not exactly 1"]
    assert errors({**widget(), "metadata": {"name": "w", "namespace": "n"}}, small_crd) == [
        "metadata.namespace: not allowed on a cluster-scoped resource"
    ]
