"""An object checked against a CustomResourceDefinition the way the Kubernetes API server checks
a custom resource on create, with strict field validation (`kubectl --validate=strict`, Helm 4's
server-side apply); and a RayCluster's name and labels checked as KubeRay checks them.

The API server's pipeline for a custom resource, followed here in one walk over the object and
the structural schema `spec.versions[name].schema.openAPIV3Schema`:

1. Nulls: a null value of a property (or of a map entry) whose schema is not `nullable` is
   dropped, or replaced by the property's `default` if it has one (apiextensions'
   PruneNonNullableNullsWithoutDefaults and Default). A null array item is not dropped.
2. Defaults: a missing property that has a `default` is filled in, so a `required` property
   with a default (a worker group's minReplicas / maxReplicas) may be left out.
3. Unknown fields: a field that the schema does not declare (not in `properties`, no
   `additionalProperties` map schema, no `x-kubernetes-preserve-unknown-fields: true`) is an
   error under strict validation (pruned silently otherwise). Only the structural schema counts:
   properties named inside anyOf/allOf/oneOf/not never declare a field.
4. Values: `type` (integer: an int, or a float with no fraction as kube-openapi's isFloatInt
   accepts it, never a bool; number; string; boolean; object; array), `x-kubernetes-int-or-string`
   (an integer or a string: a resource quantity is one, with the quantity `pattern` on its string
   form, so `cpu: 0.5` and `memory: "8GB"` fail, `"500m"`, `2`, `"2Gi"` pass), `format` int32 /
   int64 bounds (enforced by the API server from Kubernetes 1.36, kubernetes/kubernetes#136582;
   older servers store an out-of-range value that KubeRay's int32 fields then cannot decode) and
   date-time, `enum`, `pattern`, `minLength`/`maxLength` (in characters),
   `minimum`/`maximum`/`exclusive*`/`multipleOf`, `minItems`/`maxItems`/`uniqueItems`,
   `minProperties`/`maxProperties`, `required`, `anyOf`/`allOf`/`oneOf`/`not`, and the
   uniqueness that `x-kubernetes-list-type: set` and `map` (by `x-kubernetes-list-map-keys`,
   defaults applied) impose.
5. CEL (`x-kubernetes-validations`): a rule of the form `self in ['a', 'b']` is evaluated;
   transition rules (those naming `oldSelf`) apply only to updates and so never to a create; any
   other rule is skipped. `cel_rules()` lists a CRD's rules and which of these each is.
6. The root `metadata` is an ObjectMeta, not checked by the schema: its fields and their types
   (an integer label value is refused), name (or generateName) as a DNS-1123 subdomain, namespace
   as a DNS-1123 label, label keys (qualified names) and values, annotation keys and total size,
   finalizers, owner references. `apiVersion` must be one of the CRD's served versions of its
   group (that version's schema is used) and `kind` the CRD's kind.

KubeRay's own checks of a RayCluster (its controller refuses to reconcile a RayCluster that fails
them, and its webhook, if installed, refuses it outright) are `raycluster_metadata_errors()`:
utils.ValidateRayClusterMetadata (a name of at most 53 characters, MaxRayClusterNameLength, 63 -
len("-serve-svc"), that is a DNS-1035 label: a lowercase letter first) and the label syntax of the
labels it puts on Pods and Ray nodes: the RayCluster's, each pod template's, and each group's Ray
`labels` (validateRayGroupLabels in ValidateRayClusterSpec, which also refuses
`rayStartParams.labels`).

Errors name the offending field by its path (`spec.workerGroupSpecs[0].maxReplicas`, map keys
that are not plain words in brackets: `metadata.labels["app.kubernetes.io/name"]`).
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

KUBERAY_CRDS = Path(__file__).resolve().parents[1].parent / "shared" / "kuberay"
RAYCLUSTER_CRD = KUBERAY_CRDS / "ray.io_rayclusters.yaml"

# KubeRay ray-operator/controllers/ray/utils/constant.go: 63 - len("-serve-svc"), the longest
# suffix KubeRay adds to a RayCluster's name for a Service's.
MAX_RAYCLUSTER_NAME_LENGTH = 53

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_MAX_JSON_FLOAT_INT = 2.0**53  # swag.IsFloat64AJSONInteger's bound
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_CEL_IN_LIST = re.compile(
    r"""\s*self\s+in\s+\[\s*((?:'[^'\\]*'|"[^"\\]*")(?:\s*,\s*(?:'[^'\\]*'|"[^"\\]*"))*)\s*\]\s*"""
)
_CEL_STRING = re.compile(r"""'([^'\\]*)'|"([^"\\]*)\"""")

_OBJECT_META = {  # metav1.ObjectMeta's JSON fields, and the JSON type each decodes from
    "name": "string",
    "generateName": "string",
    "namespace": "string",
    "selfLink": "string",
    "uid": "string",
    "resourceVersion": "string",
    "generation": "integer",
    "creationTimestamp": "string",
    "deletionTimestamp": "string",
    "deletionGracePeriodSeconds": "integer",
    "labels": "map",
    "annotations": "map",
    "ownerReferences": "array",
    "finalizers": "array",
    "managedFields": "array",
}
_OWNER_REFERENCE = {
    "apiVersion": "string",
    "kind": "string",
    "name": "string",
    "uid": "string",
    "controller": "boolean",
    "blockOwnerDeletion": "boolean",
}
_TOTAL_ANNOTATION_SIZE = 256 * 1024


class CrdValidationError(ValueError):
    """Every problem found in one object, each naming its field."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        n = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{n} problem{'s' if n != 1 else ''}:\n{lines}")


# --- the CRD -----------------------------------------------------------------------------------


@functools.cache
def _load_crd(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        crd = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
        raise ValueError(f"{path} is not a CustomResourceDefinition")
    return crd


def load_crd(path: str | Path = RAYCLUSTER_CRD) -> dict:
    """The whole CustomResourceDefinition (cached: do not change it)."""
    return _load_crd(str(Path(path).resolve()))


def load_crd_schema(path: str | Path = RAYCLUSTER_CRD, version: str = "v1") -> dict:
    """The version's openAPIV3Schema (cached: do not change it)."""
    for v in load_crd(path)["spec"]["versions"]:
        if v["name"] == version:
            return v["schema"]["openAPIV3Schema"]
    raise KeyError(f"{path} has no version {version!r}")


def cel_rules(path: str | Path = RAYCLUSTER_CRD, version: str = "v1") -> list[dict]:
    """The CRD's `x-kubernetes-validations` rules: field (schema path), rule, message, and how
    they are treated here: "checked", "transition" (names oldSelf: updates only) or "skipped"."""
    out: list[dict] = []

    def walk(schema: dict, field: str) -> None:
        for rule in schema.get("x-kubernetes-validations", []):
            out.append(
                {
                    "field": field,
                    "rule": rule["rule"],
                    "message": rule.get("message", ""),
                    "treatment": _cel_treatment(rule["rule"]),
                }
            )
        for key, sub in _subschemas(schema):
            walk(sub, _schema_path(field, key))

    walk(load_crd_schema(path, version), "")
    return out


def open_subtrees(path: str | Path = RAYCLUSTER_CRD, version: str = "v1") -> list[str]:
    """Schema paths marked `x-kubernetes-preserve-unknown-fields: true` (any content accepted)."""
    out: list[str] = []

    def walk(schema: dict, field: str) -> None:
        if schema.get("x-kubernetes-preserve-unknown-fields") is True:
            out.append(field)
        for key, sub in _subschemas(schema):
            walk(sub, _schema_path(field, key))

    walk(load_crd_schema(path, version), "")
    return out


def _subschemas(schema: dict):
    for key, sub in schema.get("properties", {}).items():
        yield key, sub
    if isinstance(schema.get("additionalProperties"), dict):
        yield "[*]", schema["additionalProperties"]
    if isinstance(schema.get("items"), dict):
        yield "[]", schema["items"]
    for junctor in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(junctor, [])):
            yield f"<{junctor}[{i}]>", sub
    if isinstance(schema.get("not"), dict):
        yield "<not>", schema["not"]


def _schema_path(field: str, key: str) -> str:
    return field + key if key[0] in "[<" else f"{field}.{key}" if field else key


def _cel_treatment(rule: str) -> str:
    if re.search(r"\boldSelf\b", rule):
        return "transition"
    return "checked" if _cel_in_list(rule) is not None else "skipped"


def _cel_in_list(rule: str) -> list[str] | None:
    """The strings of a rule `self in ['a', "b"]`, None for any other rule."""
    match = _CEL_IN_LIST.fullmatch(rule)
    if match is None:
        return None
    return [single or double for single, double in _CEL_STRING.findall(match.group(1))]


# --- the API -----------------------------------------------------------------------------------


def errors(obj: Any, crd_path: str | Path = RAYCLUSTER_CRD) -> list[str]:
    """Every problem the API server would report on creating `obj` from the CRD at crd_path."""
    crd = load_crd(crd_path)["spec"]
    check = _Checker()
    obj = _to_json(obj)
    if not isinstance(obj, dict):
        check.add((), f"{_show(obj)} is not of type object")
        return check.problems
    served = [v["name"] for v in crd["versions"] if v.get("served", True)]
    storage = next((v["name"] for v in crd["versions"] if v.get("storage")), served[0])
    version = storage
    api_version = obj.get("apiVersion")
    if api_version is None:
        check.add(("apiVersion",), "Required value")
    elif not (isinstance(api_version, str) and api_version.startswith(crd["group"] + "/")):
        check.add(("apiVersion",), f"{_show(api_version)} is not {crd['group']}/<version>")
    elif api_version.split("/", 1)[1] not in served:
        check.add(("apiVersion",), f"{_show(api_version)}: served versions are {served}")
    else:
        version = api_version.split("/", 1)[1]
    kind = crd["names"]["kind"]
    if "kind" not in obj:
        check.add(("kind",), f"Required value: {kind}")
    elif obj["kind"] != kind:
        check.add(("kind",), f"{_show(obj['kind'])} is not {_show(kind)}")
    if "metadata" in obj:
        check.object_meta(obj["metadata"], ("metadata",), crd.get("scope") == "Namespaced")
    else:
        check.add(("metadata", "name"), "Required value: name or generateName is required")
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    check.node(rest, load_crd_schema(crd_path, version), ())
    return check.problems


def validate(obj: Any, crd_path: str | Path = RAYCLUSTER_CRD) -> None:
    """Raises CrdValidationError listing every problem of `errors(obj, crd_path)`."""
    problems = errors(obj, crd_path)
    if problems:
        raise CrdValidationError(problems)


def raycluster_metadata_errors(obj: Any) -> list[str]:
    """What KubeRay refuses in a RayCluster's name and labels (see the module's docstring)."""
    check = _Checker()
    obj = _to_json(obj)
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        check.add(("metadata",), "Required value")
        return check.problems
    name, where = meta.get("name"), ("metadata", "name")
    if not name and isinstance(meta.get("generateName"), str):
        where = ("metadata", "generateName")
        name = meta["generateName"] + "xxxxx"  # the API server appends 5 random characters
    if not isinstance(name, str):
        check.add(where, f"{_show(name)}: a RayCluster needs a name")
    elif len(name) > MAX_RAYCLUSTER_NAME_LENGTH:
        check.add(
            where,
            f"{_show(name)}: RayCluster name should be no more than "
            f"{MAX_RAYCLUSTER_NAME_LENGTH} characters (has {len(name)})",
        )
    elif problems := is_dns1035_label(name):
        for p in problems:
            check.add(where, f"{_show(name)}: RayCluster name: {p}")
    check.labels(meta.get("labels"), ("metadata", "labels"))
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    groups: list[tuple[tuple, Any]] = [(("spec", "headGroupSpec"), spec.get("headGroupSpec"))]
    workers = spec.get("workerGroupSpecs")
    if isinstance(workers, list):
        groups += [(("spec", "workerGroupSpecs", i), g) for i, g in enumerate(workers)]
    for path, group in groups:
        if not isinstance(group, dict):
            continue
        template = group.get("template")
        if isinstance(template, dict) and isinstance(template.get("metadata"), dict):
            check.labels(
                template["metadata"].get("labels"), (*path, "template", "metadata", "labels")
            )
        check.labels(group.get("labels"), (*path, "labels"))
        params = group.get("rayStartParams")
        if isinstance(params, dict) and "labels" in params:
            check.add(
                (*path, "rayStartParams", "labels"),
                "not supported: use the group's top-level labels field",
            )
    return check.problems


def validate_raycluster_metadata(obj: Any) -> None:
    """Raises CrdValidationError listing every problem of `raycluster_metadata_errors(obj)`."""
    problems = raycluster_metadata_errors(obj)
    if problems:
        raise CrdValidationError(problems)


# --- k8s.io/apimachinery/pkg/util/validation ---------------------------------------------------

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def _too_long(value: str, n: int) -> list[str]:
    return [f"must be no more than {n} characters"] if len(value) > n else []


def is_dns1123_label(value: str) -> list[str]:
    problems = _too_long(value, 63)
    if not _DNS1123_LABEL.fullmatch(value):
        problems.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character"
        )
    return problems


def is_dns1123_subdomain(value: str) -> list[str]:
    problems = _too_long(value, 253)
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        problems.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character"
        )
    return problems


def is_dns1035_label(value: str) -> list[str]:
    problems = _too_long(value, 63)
    if not _DNS1035_LABEL.fullmatch(value):
        problems.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character"
        )
    return problems


def is_qualified_name(value: str) -> list[str]:
    """A label or annotation key: an optional DNS-1123 subdomain prefix and '/', then a name of
    at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric."""
    prefix, slash, name = value.rpartition("/")
    problems = []
    if slash:
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            problems += [f"prefix part {p}" for p in is_dns1123_subdomain(prefix)]
        if "/" in prefix:
            problems.append("a qualified name has at most one '/'")
    if not name:
        problems.append("name part must be non-empty")
    else:
        problems += [f"name part {p}" for p in _too_long(name, 63)]
        if not _QUALIFIED_NAME.fullmatch(name):
            problems.append(
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                "start and end with an alphanumeric character"
            )
    return problems


def is_valid_label_value(value: str) -> list[str]:
    problems = _too_long(value, 63)
    if not _LABEL_VALUE.fullmatch(value):
        problems.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character"
        )
    return problems


# --- the walk ----------------------------------------------------------------------------------


def _to_json(value: Any) -> Any:
    """The JSON the API server would receive for a YAML-loaded value: map keys as strings (as
    sigs.k8s.io/yaml turns them), tuples as lists, dates as their text. Other non-JSON values
    are kept, to be reported."""
    if isinstance(value, dict):
        return {_json_key(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def _json_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return key if isinstance(key, str) else str(key)


def _kind(value: Any) -> str | None:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number" if math.isfinite(value) else None
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return None


def _as_integer(value: Any) -> int | None:
    """The integer a JSON value is to kube-openapi: an int, or a float with no fraction."""
    kind = _kind(value)
    if kind == "integer":
        return value
    if kind == "number" and value.is_integer() and abs(value) <= _MAX_JSON_FLOAT_INT:
        return int(value)
    return None


def _has_type(value: Any, t: str) -> bool:
    if t == "integer":
        return _as_integer(value) is not None
    if t == "number":
        return _kind(value) in ("integer", "number")
    return _kind(value) == t


def _json_equal(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if {ka, kb} <= {"integer", "number"}:
        return a == b
    if ka != kb:
        return False
    if ka == "array":
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if ka == "object":
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return a == b


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _show(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt_path(path: tuple) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "<root>"


@functools.cache
def _regex(pattern: str) -> re.Pattern:
    """A schema pattern (Go RE2 syntax) for Python: `$` outside a class is the end of the text,
    as in Go, not also before a final newline as in Python."""
    out, in_class, i = [], False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class and c == "]":
            in_class = False
        elif not in_class and c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]":  # a leading ] is a member
                out.append("[]")
                i += 2
                continue
        out.append(r"\Z" if c == "$" and not in_class else c)
        i += 1
    return re.compile("".join(out), re.ASCII)


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, path: tuple, message: str) -> None:
        self.problems.append(f"{_fmt_path(path)}: {message}")

    def passes(self, value: Any, schema: dict, path: tuple) -> list[str]:
        """The problems of value against a junctor's subschema (value validation only)."""
        sub = _Checker()
        sub.node(value, schema, path, structural=False)
        return sub.problems

    def node(self, value: Any, schema: dict, path: tuple, structural: bool = True) -> None:
        if value is None and schema.get("nullable"):
            return
        int_or_string = schema.get("x-kubernetes-int-or-string")
        if int_or_string and _as_integer(value) is None and not isinstance(value, str):
            self.add(path, f"{_show(value)} is not of type integer or string")
            return
        t = schema.get("type")
        if t and not _has_type(value, t):
            self.add(path, f"{_show(value)} is not of type {t}")
            return
        kind = _kind(value)
        if kind is None:
            self.add(path, f"{value!r} is not a JSON value")
            return
        if "enum" in schema and not any(_json_equal(value, e) for e in schema["enum"]):
            self.add(path, f"{_show(value)} is not one of {_show(schema['enum'], 200)}")
        if kind == "string":
            self.string(value, schema, path)
        elif kind in ("integer", "number"):
            self.number(value, schema, path)
        elif kind == "array":
            self.array(value, schema, path, structural)
        elif kind == "object":
            self.object(value, schema, path, structural)
        for sub in schema.get("allOf", []):
            self.node(value, sub, path, structural=False)
        if "anyOf" in schema:
            results = [self.passes(value, sub, path) for sub in schema["anyOf"]]
            if all(results):
                why = "; ".join(r[0] for r in results)
                self.add(path, f"{_show(value)} matches none of anyOf ({why})")
        if "oneOf" in schema:
            matched = sum(not self.passes(value, sub, path) for sub in schema["oneOf"])
            if matched != 1:
                self.add(path, f"{_show(value)} matches {matched} of oneOf, not exactly 1")
        if "not" in schema and not self.passes(value, schema["not"], path):
            self.add(path, f"{_show(value)} must not match {_show(schema['not'], 200)}")
        for rule in schema.get("x-kubernetes-validations", []):
            allowed = _cel_in_list(rule["rule"])
            if allowed is not None and value not in allowed:
                self.add(path, f"{_show(value)}: {rule.get('message') or rule['rule']}")

    def string(self, value: str, schema: dict, path: tuple) -> None:
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            self.add(path, f"{_show(value)} is longer than {schema['maxLength']} characters")
        if "minLength" in schema and len(value) < schema["minLength"]:
            self.add(path, f"{_show(value)} is shorter than {schema['minLength']} characters")
        pattern = schema.get("pattern")
        if pattern is not None and not _regex(pattern).search(value):
            if pattern == QUANTITY_PATTERN:
                self.add(
                    path,
                    f'{_show(value)} is not a resource quantity (e.g. "500m", 2, "2Gi"): '
                    f"does not match {pattern}",
                )
            else:
                self.add(path, f"{_show(value)} does not match {pattern}")
        if schema.get("format") == "date-time" and not _DATE_TIME.fullmatch(value):
            self.add(path, f"{_show(value)} is not an RFC 3339 date-time")

    def number(self, value: float, schema: dict, path: tuple) -> None:
        as_int = _as_integer(value)
        if schema.get("type") == "integer" or schema.get("x-kubernetes-int-or-string"):
            low, high = _INT_RANGES.get(schema.get("format", ""), _INT_RANGES["int64"])
            if not low <= as_int <= high:
                self.add(
                    path,
                    f"{_show(value)} is out of range for {schema.get('format', 'int64')} "
                    f"[{low}, {high}]",
                )
        if "maximum" in schema:
            top, exclusive = schema["maximum"], schema.get("exclusiveMaximum", False)
            if value > top or (exclusive and value == top):
                also = "" if exclusive else "or equal to "
                self.add(path, f"{_show(value)}: must be less than {also}{top}")
        if "minimum" in schema:
            bottom, exclusive = schema["minimum"], schema.get("exclusiveMinimum", False)
            if value < bottom or (exclusive and value == bottom):
                also = "" if exclusive else "or equal to "
                self.add(path, f"{_show(value)}: must be greater than {also}{bottom}")
        if "multipleOf" in schema:
            quotient = value / schema["multipleOf"]
            if not math.isclose(quotient, round(quotient)):
                self.add(path, f"{_show(value)} is not a multiple of {schema['multipleOf']}")

    def array(self, value: list, schema: dict, path: tuple, structural: bool) -> None:
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                if item is None and not items.get("nullable") and "default" in items:
                    continue  # defaulted
                self.node(item, items, (*path, i), structural)
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            self.add(path, f"has {len(value)} items, more than {schema['maxItems']}")
        if "minItems" in schema and len(value) < schema["minItems"]:
            self.add(path, f"has {len(value)} items, fewer than {schema['minItems']}")
        list_type = schema.get("x-kubernetes-list-type")
        if schema.get("uniqueItems") or list_type == "set":
            seen: set[str] = set()
            for i, item in enumerate(value):
                key = _canonical(item)
                if key in seen:
                    self.add((*path, i), f"Duplicate value: {_show(item)}")
                seen.add(key)
        if list_type == "map" and isinstance(items, dict):
            keys = schema.get("x-kubernetes-list-map-keys", [])
            props = items.get("properties", {})
            seen = set()
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                ident = {k: item.get(k, props.get(k, {}).get("default")) for k in keys}
                key = _canonical(ident)
                if key in seen:
                    self.add((*path, i), f"Duplicate value: {_show(ident)}")
                seen.add(key)

    def object(self, value: dict, schema: dict, path: tuple, structural: bool) -> None:
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        open_ = schema.get("x-kubernetes-preserve-unknown-fields") is True or extra is True
        embedded = schema.get("x-kubernetes-embedded-resource") is True
        present = set()
        for key, item in value.items():
            sub = props.get(key)
            if sub is None and isinstance(extra, dict):
                sub = extra
            if sub is None:
                if embedded and key in ("apiVersion", "kind"):
                    present.add(key)
                    if not isinstance(item, str):
                        self.add((*path, key), f"{_show(item)} is not of type string")
                elif embedded and key == "metadata":
                    present.add(key)
                    self.object_meta(item, (*path, key), namespaced=True, name_required=False)
                elif structural and not open_:
                    self.add((*path, key), "unknown field")
                continue
            if structural and item is None and not sub.get("nullable"):
                if "default" in sub:  # defaulted, else pruned
                    present.add(key)
                continue
            present.add(key)
            self.node(item, sub, (*path, key), structural)
        for key in schema.get("required", []):
            if key not in present and not (structural and "default" in props.get(key, {})):
                self.add((*path, key), "Required value")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            self.add(path, f"has {len(value)} properties, more than {schema['maxProperties']}")
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            self.add(path, f"has {len(value)} properties, fewer than {schema['minProperties']}")

    def object_meta(
        self, meta: Any, path: tuple, namespaced: bool, name_required: bool = True
    ) -> None:
        if not isinstance(meta, dict):
            self.add(path, f"{_show(meta)} is not of type object")
            return
        for key, item in meta.items():
            want = _OBJECT_META.get(key)
            if want is None:
                self.add((*path, key), "unknown field")
            elif item is None:
                continue  # decodes to the zero value
            elif want == "map":
                if not isinstance(item, dict):
                    self.add((*path, key), f"{_show(item)} is not of type object")
                    continue
                for k, v in item.items():
                    if not isinstance(v, str):
                        self.add((*path, key, k), f"{_show(v)} is not of type string")
            elif not _has_type(item, want):
                self.add((*path, key), f"{_show(item)} is not of type {want}")
        ok = {  # the fields that decoded: checked further
            k: v
            for k, v in meta.items()
            if k in _OBJECT_META
            and v is not None
            and (_has_type(v, _OBJECT_META[k]) or _OBJECT_META[k] == "map" and isinstance(v, dict))
        }
        name, generate = ok.get("name", ""), ok.get("generateName", "")
        if name:
            for p in is_dns1123_subdomain(name):
                self.add((*path, "name"), f"{_show(name)}: {p}")
        elif generate:
            for p in is_dns1123_subdomain(generate[:-1] if generate.endswith("-") else generate):
                self.add((*path, "generateName"), f"{_show(generate)}: {p}")
        elif name_required:
            self.add((*path, "name"), "Required value: name or generateName is required")
        namespace = ok.get("namespace", "")
        if namespace and not namespaced:
            self.add((*path, "namespace"), "not allowed on a cluster-scoped resource")
        elif namespace:
            for p in is_dns1123_label(namespace):
                self.add((*path, "namespace"), f"{_show(namespace)}: {p}")
        labels = ok.get("labels")
        if isinstance(labels, dict):
            self.labels(labels, (*path, "labels"), types=False)
        annotations = ok.get("annotations")
        if isinstance(annotations, dict):
            size = 0
            for k, v in annotations.items():
                for p in is_qualified_name(k.lower()):
                    self.add((*path, "annotations", k), f"key {_show(k)}: {p}")
                size += len(k.encode()) + (len(v.encode()) if isinstance(v, str) else 0)
            if size > _TOTAL_ANNOTATION_SIZE:
                self.add(
                    (*path, "annotations"),
                    f"Too long: must have at most {_TOTAL_ANNOTATION_SIZE} bytes (has {size})",
                )
        for i, finalizer in enumerate(ok.get("finalizers", [])):
            if not isinstance(finalizer, str):
                self.add((*path, "finalizers", i), f"{_show(finalizer)} is not of type string")
            else:
                for p in is_qualified_name(finalizer):
                    self.add((*path, "finalizers", i), f"{_show(finalizer)}: {p}")
        controllers = 0
        for i, ref in enumerate(ok.get("ownerReferences", [])):
            where = (*path, "ownerReferences", i)
            if not isinstance(ref, dict):
                self.add(where, f"{_show(ref)} is not of type object")
                continue
            for key, item in ref.items():
                want = _OWNER_REFERENCE.get(key)
                if want is None:
                    self.add((*where, key), "unknown field")
                elif item is not None and not _has_type(item, want):
                    self.add((*where, key), f"{_show(item)} is not of type {want}")
            for key in ("apiVersion", "kind", "name", "uid"):
                if not ref.get(key):
                    self.add((*where, key), "Required value")
            controllers += ref.get("controller") is True
        if controllers > 1:
            self.add((*path, "ownerReferences"), "Only one reference can have Controller set")

    def labels(self, labels: Any, path: tuple, types: bool = True) -> None:
        """Label keys as qualified names and values as label values (strings of at most 63)."""
        if labels is None:
            return
        if not isinstance(labels, dict):
            if types:
                self.add(path, f"{_show(labels)} is not of type object")
            return
        for key, value in labels.items():
            for p in is_qualified_name(key):
                self.add((*path, key), f"label key {_show(key)}: {p}")
            if not isinstance(value, str):
                if types:
                    self.add((*path, key), f"{_show(value)} is not of type string")
                continue
            for p in is_valid_label_value(value):
                self.add((*path, key), f"label value {_show(value)}: {p}")
