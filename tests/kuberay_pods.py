"""The Pods the KubeRay operator would create from a RayCluster, as local processes can run them.

A pure-Python emulation (no Ray, no Kubernetes) of how the KubeRay operator v1.7
(ray-project/kuberay commit feeaf72, the CRD in ../shared/kuberay/ray.io_rayclusters.yaml) turns a
RayCluster's ``headGroupSpec`` / ``workerGroupSpecs`` into Pod specs. It follows, in
``ray-operator/controllers/ray/``:

- ``common/pod.go``: ``DefaultHeadPodTemplate``, ``DefaultWorkerPodTemplate`` (the
  ``wait-gcs-ready`` init container), ``BuildPod`` (the container command, ``/dev/shm``),
  ``setMissingRayStartParams`` (``--block``, ``--address``...), ``generateRayStartCommand``,
  ``convertParamMap``, ``addWellKnownAcceleratorResources``, ``updateRayStartParamsResources`` /
  ``Labels``, ``setContainerEnvVars``, ``setInitContainerEnvVars``, ``BuildAutoscalerContainer``,
  ``mergeAutoscalerOverrides``, ``configureTokenAuth`` / ``SetContainerTokenAuthEnvVars``,
  ``addEmptyDir``, ``labelPod``;
- ``utils/util.go`` (``GetContainerCommand``, ``GenerateHeadServiceName``,
  ``GenerateFQDNServiceName``, ``CheckName``, ``PodName``,
  ``GenerateHashWithoutReplicasAndWorkersToDelete``),
  ``utils/constant.go`` (ports, env names, annotation keys), ``utils/validation.go`` (auth needs
  Ray >= 2.52.0);
- ``raycluster_controller.go``: ``buildHeadPod`` / ``buildWorkerPod`` (pod names, operator-level
  sidecars), ``reconcileAuthSecret`` (the token Secret), ``shouldRecreatePodsForUpgrade``.

The Go lines quoted in the comments are from those files. What it leaves out, it refuses rather than
fakes: GCS fault tolerance, mTLS (``tlsOptions``) and the history-server collector raise
``NotImplementedError``. Probes, resources and scheduling fields are not emulated (a process has
none). Values the kubelet resolves at run time (the downward API, Secrets, ``$(VAR)``) are resolved
by ``environ`` and ``shell_command`` from what the caller provides.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, NamedTuple

KUBERAY_COMMIT = "feeaf72facab4881ba2b179248bb67315634e229"

# utils/constant.go
DEFAULT_CLIENT_PORT = 10001
DEFAULT_GCS_SERVER_PORT = 6379
DEFAULT_DASHBOARD_PORT = 8265
DEFAULT_METRICS_PORT = 8080
DEFAULT_DASHBOARD_AGENT_LISTEN_PORT = 52365
LOCAL_HOST = "127.0.0.1"
METRICS_PORT_NAME = "metrics"
HEAD_GROUP = "headgroup"  # RayNodeHeadGroupLabelValue
OVERWRITE_CONTAINER_CMD = "ray.io/overwrite-container-cmd"
FT_ENABLED_ANNOTATION = "ray.io/ft-enabled"
ORIGINATED_FROM_CRD_LABEL = "ray.io/originated-from-crd"
AUTH_TOKEN_SECRET_KEY = "auth_token"  # RAY_AUTH_TOKEN_SECRET_KEY
RAY_TOKEN_MOUNT_PATH = "/var/run/secrets/ray.io/serviceaccount"  # RayTokenMountPath
RAY_TOKEN_VOLUME = "ray-token"  # RayTokenVolumeName (its value as KubeRay's tests name it)
# common/pod.go
SHARED_MEMORY_VOLUME = "shared-mem"
SHARED_MEMORY_PATH = "/dev/shm"
RAY_LOG_VOLUME = "ray-logs"
RAY_LOG_PATH = "/tmp/ray"
AUTOSCALER_CONTAINER = "autoscaler"
WAIT_GCS_READY = "wait-gcs-ready"
PLASMA_DIRECTORY = "plasma-directory"

# BuildPod: `ulimitCmd := fmt.Sprintf("ulimit -n ${%s:-65536}", utils.RAY_START_ULIMIT_OPEN_FILES)`
ULIMIT = "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}"
# BuildAutoscalerContainer: `autoscalerStartCmd := "ray kuberay-autoscaler --cluster-name ..."`
AUTOSCALER_START_CMD = (
    "ray kuberay-autoscaler --cluster-name $(RAY_CLUSTER_NAME) "
    "--cluster-namespace $(RAY_CLUSTER_NAMESPACE)"
)
# DefaultWorkerPodTemplate: the wait-gcs-ready init container's script, verbatim.
WAIT_GCS_READY_SCRIPT = """
					SECONDS=0
					while true; do
						if (( SECONDS <= 120 )); then
							if ray health-check --address {host}:{port} > /dev/null 2>&1; then
								echo "GCS is ready."
								break
							fi
							echo "$SECONDS seconds elapsed: Waiting for GCS to be ready."
						else
							if ray health-check --address {host}:{port}; then
								echo "GCS is ready. Any error messages above can be safely ignored."
								break
							fi
							echo "$SECONDS seconds elapsed: Still waiting for GCS to be ready. For troubleshooting, refer to the FAQ at https://docs.ray.io/en/master/cluster/kubernetes/troubleshooting.html."
						fi
						sleep 5
					done
				"""  # noqa: E501

# pod.go: `customAcceleratorToRayResourceMap`
_CUSTOM_ACCELERATORS = {"aws.amazon.com/neuroncore": "neuron_cores", "google.com/tpu": "TPU"}
# convertParamMap: `specialParameterOptions := []string{"log-color", "include-dashboard", ...}`
_EXPLICIT_BOOLEAN_FLAGS = ("log-color", "include-dashboard", "include-log-monitor")


@dataclass(frozen=True)
class Operator:
    """The operator's own configuration, which shapes the Pods too.

    ``kuberay_version`` is ``utils.KUBERAY_VERSION`` (only in the head's
    ``RAY_USAGE_STATS_EXTRA_TAGS``); ``cluster_domain`` the operator's ``CLUSTER_DOMAIN`` env;
    ``enable_init_container_injection`` / ``enable_login_shell`` its
    ``ENABLE_INIT_CONTAINER_INJECTION`` / ``ENABLE_LOGIN_SHELL`` env;
    ``deterministic_head_pod_name`` the feature that names the head Pod ``<cluster>-head``; the
    rest its ``defaultContainerEnvs`` and ``headSidecarContainers`` / ``workerSidecarContainers``
    configuration."""

    kuberay_version: str = "v1.7.0"
    cluster_domain: str = "cluster.local"
    enable_init_container_injection: bool = True
    enable_login_shell: bool = False
    deterministic_head_pod_name: bool = False
    default_container_envs: tuple[dict, ...] = ()
    head_sidecar_containers: tuple[dict, ...] = ()
    worker_sidecar_containers: tuple[dict, ...] = ()


DEFAULT_OPERATOR = Operator()


class Mount(NamedTuple):
    volume: str
    path: str
    read_only: bool


@dataclass
class ContainerRun:
    """One container of a Pod, as a process would run it.

    ``env`` holds literal values and downward-API fields this module resolved (pod name,
    namespace, labels); ``env_from_secret`` the variables the kubelet reads from a Secret
    (``valueFrom.secretKeyRef``: name -> (secret, key)); ``env_from_config_map`` likewise;
    ``field_refs`` the downward-API fields only the kubelet knows (``status.podIP``...);
    ``env_order`` every variable in the Pod spec's order (``$(VAR)`` in a value sees only those
    before it). ``env_from`` is the container's ``envFrom`` as given. ``autoscaler`` marks the
    sidecar KubeRay adds for ``enableInTreeAutoscaling`` (it needs the Kubernetes API)."""

    name: str
    image: str | None
    command: list[str]
    args: list[str]
    env: dict[str, str]
    env_from_secret: dict[str, tuple[str, str]]
    volume_mounts: list[Mount]
    ports: list[tuple[str | None, int]]
    env_from_config_map: dict[str, tuple[str, str]] = field(default_factory=dict)
    field_refs: dict[str, str] = field(default_factory=dict)
    env_order: list[str] = field(default_factory=list)
    env_from: list[dict] = field(default_factory=list)
    sub_paths: dict[str, str] = field(default_factory=dict)  # mount path -> subPath
    working_dir: str | None = None
    autoscaler: bool = False


@dataclass
class PodRun:
    """One Pod: its containers (the Ray container first, then the user's sidecars, then what
    KubeRay adds), its init containers, and its volumes (name -> the Volume without its name).

    ``ray_start_params`` are the head's or group's ``rayStartParams`` once KubeRay completed them,
    ``ray_start_command`` what it generated from them (``KUBERAY_GEN_RAY_START_CMD``)."""

    name: str
    namespace: str
    group: str
    node_type: str  # "head" or "worker"
    containers: list[ContainerRun]
    init_containers: list[ContainerRun]
    volumes: dict[str, dict]
    labels: dict[str, str]
    annotations: dict[str, str]
    ray_start_params: dict[str, str]
    ray_start_command: str
    service_account: str | None = None
    restart_policy: str | None = None

    @property
    def ray_container(self) -> ContainerRun:
        return self.containers[0]  # utils.RayContainerIndex = 0

    def container(self, name: str) -> ContainerRun:
        for c in [*self.containers, *self.init_containers]:
            if c.name == name:
                return c
        raise KeyError(name)


# --- names -----------------------------------------------------------------------------------


def check_name(s: str) -> str:
    """utils.CheckName: keep the last 50 characters; no leading digit or punctuation."""
    if len(s) > 50:
        s = s[len(s) - 50 :]
    if s[0].isdigit() or not s[0].isalnum():
        s = "r" + s[1:]
    return s


def head_service_name(raycluster: dict) -> str:
    """utils.GenerateHeadServiceName: ``headGroupSpec.headService.metadata.name`` if set, else
    ``fmt.Sprintf("%s-%s-%s", ownerName, rayv1.HeadNode, "svc")``."""
    service = raycluster["spec"]["headGroupSpec"].get("headService") or {}
    return (service.get("metadata") or {}).get("name") or f"{_name(raycluster)}-head-svc"


def head_service_host(
    raycluster: dict, namespace: str, operator: Operator = DEFAULT_OPERATOR
) -> str:
    """utils.GenerateFQDNServiceName: ``fmt.Sprintf("%s.%s.svc.%s", headSvcName, namespace,
    GetClusterDomainName())``; workers join ``<this>:<head port>``."""
    return f"{head_service_name(raycluster)}.{namespace}.svc.{operator.cluster_domain}"


def head_port(raycluster: dict) -> str:
    """GetHeadPort: the head's ``rayStartParams["port"]``, else ``utils.DefaultGcsServerPort``."""
    params = raycluster["spec"]["headGroupSpec"].get("rayStartParams") or {}
    return params.get("port", str(DEFAULT_GCS_SERVER_PORT))


# --- token authentication ----------------------------------------------------------------------


def auth_enabled(raycluster: dict) -> bool:
    """utils.IsAuthEnabled: ``authOptions`` with ``mode: token`` (an unset mode is not token)."""
    return (raycluster["spec"].get("authOptions") or {}).get("mode") == "token"


def k8s_token_auth(raycluster: dict) -> bool:
    """utils.IsK8sAuthEnabled: ``authOptions.enableK8sTokenAuth``."""
    return bool((raycluster["spec"].get("authOptions") or {}).get("enableK8sTokenAuth"))


def auth_secret(raycluster: dict) -> tuple[str, str] | None:
    """The Secret (name, key) every container KubeRay gives ``RAY_AUTH_TOKEN`` reads it from.

    SetContainerTokenAuthEnvVars: ``secretName := utils.CheckName(clusterName)``, or
    ``*authOptions.SecretName`` when set; ``Key: utils.RAY_AUTH_TOKEN_SECRET_KEY`` ("auth_token").
    None when auth is off, or with ``enableK8sTokenAuth`` (a projected ServiceAccount token then,
    no Secret)."""
    if not auth_enabled(raycluster) or k8s_token_auth(raycluster):
        return None
    name = raycluster["spec"]["authOptions"].get("secretName") or check_name(_name(raycluster))
    return name, AUTH_TOKEN_SECRET_KEY


def operator_creates_auth_secret(raycluster: dict) -> bool:
    """reconcileAuthSecret creates the Secret (a random token under ``auth_token``, labelled
    ``ray.io/cluster`` and owned by the RayCluster) only when none is named in
    ``authOptions.secretName`` and K8s token auth is off; a named Secret must exist already."""
    spec = raycluster["spec"]
    return auth_secret(raycluster) is not None and not spec["authOptions"].get("secretName")


def _token_auth_env(raycluster: dict, container: dict) -> None:
    """SetContainerTokenAuthEnvVars: RAY_AUTH_MODE=token, then RAY_AUTH_TOKEN from the Secret (or,
    with K8s token auth, RAY_ENABLE_K8S_TOKEN_AUTH=true and the ray-token mount), each only if the
    container does not set it already (``if !utils.EnvVarExists(...)``)."""
    env = container.setdefault("env", [])
    _add_env(env, {"name": "RAY_AUTH_MODE", "value": "token"})
    if k8s_token_auth(raycluster):
        _add_env(env, {"name": "RAY_ENABLE_K8S_TOKEN_AUTH", "value": "true"})
        mounts = container.setdefault("volumeMounts", [])
        if not any(m["name"] == RAY_TOKEN_VOLUME for m in mounts):
            mounts.append(
                {"name": RAY_TOKEN_VOLUME, "mountPath": RAY_TOKEN_MOUNT_PATH, "readOnly": True}
            )
    else:
        secret, key = auth_secret(raycluster)  # type: ignore[misc]
        ref = {"secretKeyRef": {"name": secret, "key": key}}
        _add_env(env, {"name": "RAY_AUTH_TOKEN", "valueFrom": ref})


def _configure_token_auth(raycluster: dict, template: dict) -> None:
    """configureTokenAuth: the Ray container, and the ``wait-gcs-ready`` init container only
    (``if initContainer.Name != "wait-gcs-ready" { continue }``) -- never a user's sidecar."""
    spec = template["spec"]
    _token_auth_env(raycluster, spec["containers"][0])
    if k8s_token_auth(raycluster) and not any(
        v["name"] == RAY_TOKEN_VOLUME for v in spec.get("volumes", [])
    ):
        source = {"projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}
        spec.setdefault("volumes", []).append({"name": RAY_TOKEN_VOLUME, **source})
    for init in spec.get("initContainers", []):
        if init["name"] == WAIT_GCS_READY:
            _token_auth_env(raycluster, init)


# --- the Recreate upgrade strategy ---------------------------------------------------------------


def recreate_hash_input(spec: dict) -> dict:
    """What GenerateHashWithoutReplicasAndWorkersToDelete hashes: the spec without each group's
    ``replicas`` / ``minReplicas`` / ``maxReplicas`` / ``scaleStrategy.workersToDelete`` and
    without ``upgradeStrategy`` (Go hashes its typed struct; compare these dicts instead)."""
    spec = copy.deepcopy(spec)
    for group in spec.get("workerGroupSpecs") or []:
        for key in ("replicas", "minReplicas", "maxReplicas"):
            group.pop(key, None)
        (group.get("scaleStrategy") or {}).pop("workersToDelete", None)
    spec.pop("upgradeStrategy", None)
    return spec


def recreates_pods(old: dict, new: dict) -> bool:
    """shouldRecreatePodsForUpgrade: with ``upgradeStrategy.type: Recreate``, a spec change that
    moves the hash the head Pod was created with deletes every Pod of the cluster (head and
    workers) and creates them anew; a change of replicas alone, or no Recreate, changes nothing."""
    strategy = (new["spec"].get("upgradeStrategy") or {}).get("type")
    if strategy != "Recreate":
        return False
    return recreate_hash_input(old["spec"]) != recreate_hash_input(new["spec"])


# --- the Pods ---------------------------------------------------------------------------------


def head_pod(
    raycluster: dict,
    namespace: str,
    *,
    operator: Operator = DEFAULT_OPERATOR,
    suffix: str = "h0000",
) -> PodRun:
    """The head Pod: DefaultHeadPodTemplate, then BuildPod. ``suffix`` stands for the five
    characters Kubernetes appends to the ``generateName`` ``<cluster>-head-``."""
    _validate(raycluster)
    spec = raycluster["spec"]
    group = copy.deepcopy(spec["headGroupSpec"])
    template = copy.deepcopy(group["template"])
    template.setdefault("metadata", {})
    pod_spec = template["spec"]
    ray = pod_spec["containers"][0]
    params = _params(group)
    port = head_port(raycluster)
    fqdn = head_service_host(raycluster, namespace, operator)
    name = _name(raycluster)
    # PodName(instance.Name, rayv1.HeadNode, ...): prefix[:50] + "-head" (+ "-" for generateName)
    pod_name = f"{name[:50]}-head".lower()
    if not operator.deterministic_head_pod_name:
        pod_name += f"-{suffix}"

    _update_params_resources(params, group.get("resources"))
    _update_params_labels(params, group.get("labels"))
    merged = {**(template["metadata"].get("labels") or {}), **(group.get("labels") or {})}
    labels = _label_pod("head", name, HEAD_GROUP, merged)
    # setMissingRayStartParams (head): dashboard-host, metrics-export-port, block, agent port
    params.setdefault("dashboard-host", "0.0.0.0")
    _set_missing_common(params)
    annotations = _template_annotations(raycluster, template)

    service_account = pod_spec.get("serviceAccountName")
    restart_policy = pod_spec.get("restartPolicy")
    autoscaling = bool(spec.get("enableInTreeAutoscaling"))
    if autoscaling:
        # `headSpec.RayStartParams["no-monitor"] = "true"`: the sidecar replaces Ray's monitor
        params["no-monitor"] = "true"
        # `utils.CheckName(utils.GetHeadGroupServiceAccountName(&instance))`
        service_account = check_name(service_account or name)
        autoscaler = _autoscaler_container(raycluster, ray)
        pod_spec["containers"].append(autoscaler)
        version = (spec.get("autoscalerOptions") or {}).get("version")
        if version == "v2":  # setAutoscalerV2EnvVars, `RestartPolicy = corev1.RestartPolicyNever`
            ray.setdefault("env", []).append({"name": "RAY_enable_autoscaler_v2", "value": "true"})
            restart_policy = "Never"
        elif version == "v1":  # setAutoscalerV1EnvVars
            ray.setdefault("env", []).append({"name": "RAY_enable_autoscaler_v2", "value": "false"})
    # configureGCSFaultTolerance: `podTemplate.Annotations[utils.RayFTEnabledAnnotationKey] = ...`
    annotations[FT_ENABLED_ANNOTATION] = "false"
    _add_metrics_port(ray)
    if auth_enabled(raycluster):
        _configure_token_auth(raycluster, template)
    # buildHeadPod: `append(podConf.Spec.Containers, r.headSidecarContainers...)`
    pod_spec["containers"].extend(copy.deepcopy(list(operator.head_sidecar_containers)))
    return _build_pod(
        raycluster,
        template,
        "head",
        params,
        port,
        fqdn,
        autoscaling,
        operator,
        pod_name,
        namespace,
        HEAD_GROUP,
        labels,
        annotations,
        service_account,
        restart_policy,
    )


def worker_pod(
    raycluster: dict,
    group_index: int,
    index: int,
    namespace: str,
    *,
    operator: Operator = DEFAULT_OPERATOR,
    suffix: str | None = None,
) -> PodRun:
    """Worker ``index`` of ``workerGroupSpecs[group_index]``: DefaultWorkerPodTemplate, then
    BuildPod. ``suffix`` (default ``w`` + index) stands for the five characters Kubernetes appends
    to the ``generateName`` ``<cluster>-<group>-worker-``."""
    _validate(raycluster)
    spec = raycluster["spec"]
    group = copy.deepcopy(spec["workerGroupSpecs"][group_index])
    template = copy.deepcopy(group["template"])
    template.setdefault("metadata", {})
    pod_spec = template["spec"]
    ray = pod_spec["containers"][0]
    params = _params(group)
    port = head_port(raycluster)
    fqdn = head_service_host(raycluster, namespace, operator)
    name = _name(raycluster)
    group_name = group["groupName"]
    # PodName(fmt.Sprintf("%s-%s", instance.Name, worker.GroupName), rayv1.WorkerNode, true)
    prefix = f"{name}-{group_name}"[:50]
    pod_name = f"{prefix}-worker-{suffix if suffix is not None else f'w{index:04d}'}".lower()

    if operator.enable_init_container_injection:
        # "The Ray worker should only start once the GCS server is ready." The init container
        # copies the Ray container's env and mounts *as the user wrote them* (deepCopyRayContainer).
        init = {
            "name": WAIT_GCS_READY,
            "image": ray.get("image"),
            "command": _container_command(operator),
            "args": [WAIT_GCS_READY_SCRIPT.format(host=fqdn, port=port)],
            "env": copy.deepcopy(ray.get("env") or []),
            "volumeMounts": copy.deepcopy(ray.get("volumeMounts") or []),
        }
        pod_spec.setdefault("initContainers", []).append(init)
    _update_params_resources(params, group.get("resources"))
    _update_params_labels(params, group.get("labels"))
    merged = {**(template["metadata"].get("labels") or {}), **(group.get("labels") or {})}
    labels = _label_pod("worker", name, group_name, merged)
    # setMissingRayStartParams (worker): `address := fmt.Sprintf("%s:%s", fqdnRayIP, headPort)`
    params.setdefault("address", f"{fqdn}:{port}")
    _set_missing_common(params)
    annotations = _template_annotations(raycluster, template)
    _add_metrics_port(ray)
    restart_policy = pod_spec.get("restartPolicy")
    autoscaling = bool(spec.get("enableInTreeAutoscaling"))
    if autoscaling and (spec.get("autoscalerOptions") or {}).get("version") == "v2":
        restart_policy = "Never"
    if auth_enabled(raycluster):
        _configure_token_auth(raycluster, template)
    pod_spec["containers"].extend(copy.deepcopy(list(operator.worker_sidecar_containers)))
    return _build_pod(
        raycluster,
        template,
        "worker",
        params,
        port,
        fqdn,
        autoscaling,
        operator,
        pod_name,
        namespace,
        group_name,
        labels,
        annotations,
        pod_spec.get("serviceAccountName"),
        restart_policy,
    )


def desired_workers(group: dict) -> int:
    """utils.GetWorkerGroupDesiredReplicas (CRD defaults: replicas 0, minReplicas 0, maxReplicas
    2147483647), times ``numOfHosts``: the worker Pods of a group KubeRay keeps."""
    if group.get("suspend"):
        return 0
    lo, hi = group.get("minReplicas", 0), group.get("maxReplicas", 2147483647)
    replicas = group.get("replicas")
    if lo > hi:
        n = hi
    elif replicas is None or replicas < lo:
        n = lo
    else:
        n = min(replicas, hi)
    return n * group.get("numOfHosts", 1)


def cluster_pods(
    raycluster: dict, namespace: str, *, operator: Operator = DEFAULT_OPERATOR
) -> list[PodRun]:
    """The head Pod and every worker Pod KubeRay keeps for the cluster, head first."""
    pods = [head_pod(raycluster, namespace, operator=operator)]
    for i, group in enumerate(raycluster["spec"].get("workerGroupSpecs") or []):
        for j in range(desired_workers(group)):
            pods.append(worker_pod(raycluster, i, j, namespace, operator=operator))
    return pods


# --- what a process runner needs ----------------------------------------------------------------


def environ(
    container: ContainerRun,
    secrets: Mapping[tuple[str, str], str] | None = None,
    config_maps: Mapping[tuple[str, str], str] | None = None,
    fields: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment the kubelet gives the container's process: each variable in Pod-spec
    order, ``$(VAR)`` expanded against those before it (kubelet makeEnvironmentVariables).
    ``secrets`` maps (secret, key) to its value, ``fields`` a fieldPath (``status.podIP``) to its
    value; a variable whose source is missing raises KeyError, as the kubelet refuses to start the
    container. ``envFrom`` is not resolved (raise if the container has one)."""
    if container.env_from:
        raise NotImplementedError(f"{container.name}: envFrom {container.env_from}")
    secrets, config_maps, fields = secrets or {}, config_maps or {}, fields or {}
    out: dict[str, str] = {}
    for name in container.env_order:
        if name in container.env:
            out[name] = expand(container.env[name], out)
        elif name in container.env_from_secret:
            out[name] = secrets[container.env_from_secret[name]]
        elif name in container.env_from_config_map:
            out[name] = config_maps[container.env_from_config_map[name]]
        else:
            out[name] = fields[container.field_refs[name]]
    return out


def shell_command(
    container: ContainerRun,
    env: Mapping[str, str] | None = None,
    entrypoint: list[str] | None = None,
) -> list[str]:
    """The argv to execute: ``command + args``, with ``$(VAR)`` expanded as the kubelet does
    (against ``env``, default the container's literal ``env``). A container without ``command``
    runs its image's ENTRYPOINT, which only the caller knows (``entrypoint``)."""
    if env is None:
        env = {k: v for k, v in container.env.items()}
    command = container.command or entrypoint
    if not command:
        raise ValueError(f"{container.name}: no command; its image's ENTRYPOINT is not known here")
    return [expand(a, env) for a in [*command, *container.args]]


def expand(s: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (third_party/forked/golang/expansion): ``$(NAME)`` becomes
    the value of a defined NAME and stays as written otherwise; ``$$`` becomes ``$``; any other
    ``$`` (the shell's ``${X:-y}``) is left alone."""
    out, i = [], 0
    while i < len(s):
        if s[i] == "$" and i + 1 < len(s):
            nxt = s[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = s.find(")", i + 2)
                if end != -1:
                    name = s[i + 2 : end]
                    out.append(env[name] if name in env else s[i : end + 1])
                    i = end + 1
                    continue
        out.append(s[i])
        i += 1
    return "".join(out)


# --- ray start --------------------------------------------------------------------------------


def convert_param_map(params: Mapping[str, str]) -> str:
    """convertParamMap: flags in sorted key order, each written ``" --%s "`` (a true boolean) or
    ``" --%s=%s "``; a ``false`` boolean is dropped, except for ``log-color``,
    ``include-dashboard`` and ``include-log-monitor`` which keep ``=false``."""
    flags = []
    for key in sorted(params):
        value = params[key]
        if value.lower() in ("true", "false") and key not in _EXPLICIT_BOOLEAN_FLAGS:
            if value.lower() == "true":
                flags.append(f" --{key} ")
        else:
            flags.append(f" --{key}={value} ")
    return "".join(flags)


def ray_start_command(node_type: str, params: dict[str, str], resources: dict | None) -> str:
    """generateRayStartCommand: fills ``num-cpus`` (CPU limit, else request), ``memory`` (memory
    limit, bytes) and ``num-gpus`` / accelerator ``resources`` from the Ray container's resources
    when absent, then ``fmt.Sprintf("ray start --head %s", ...)`` or ``"ray start %s"``.
    ``params`` is completed in place, as the Go map is."""
    resources = resources or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    if "num-cpus" not in params:
        for source in (limits, requests):
            cpu = source.get("cpu")
            if cpu is not None and quantity(cpu) != 0:
                params["num-cpus"] = str(quantity_value(cpu))
                break
    memory = limits.get("memory")
    if "memory" not in params and memory is not None and quantity(memory) != 0:
        params["memory"] = str(quantity_value(memory))
    _add_accelerators(params, limits)
    head = "--head " if node_type == "head" else ""
    return f"ray start {head}{convert_param_map(params)}"


def quantity(q: str | int | float) -> Fraction:
    """A Kubernetes resource quantity (``"500m"``, ``"2Gi"``, ``"1e3"``) as an exact number."""
    if isinstance(q, (int, float)):
        return Fraction(q)
    m = re.fullmatch(r"([+-]?(?:\d+\.?\d*|\.\d+))([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE]?)", q.strip())
    if not m:
        raise ValueError(f"not a quantity: {q!r}")
    number, suffix = Fraction(m.group(1)), m.group(2)
    if suffix[:1] in ("e", "E"):
        return number * Fraction(10) ** int(suffix[1:])
    if suffix.endswith("i"):
        return number * 1024 ** ("KMGTPE".index(suffix[0]) + 1)
    exponent = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
    return number * Fraction(10) ** exponent[suffix]


def quantity_value(q: str | int | float) -> int:
    """resource.Quantity.Value(): rounded up to an integer ("500m" -> 1)."""
    return math.ceil(quantity(q))


# --- internals ---------------------------------------------------------------------------------


def _name(raycluster: dict) -> str:
    return raycluster["metadata"]["name"]


def _params(group: dict) -> dict[str, str]:
    params = dict(group.get("rayStartParams") or {})
    for key, value in params.items():
        if not isinstance(value, str):  # the CRD: `additionalProperties: {type: string}`
            raise TypeError(f"rayStartParams[{key!r}] must be a string, not {value!r}")
    return params


def _set_missing_common(params: dict[str, str]) -> None:
    """setMissingRayStartParams, both node types."""
    params.setdefault("metrics-export-port", str(DEFAULT_METRICS_PORT))
    # `rayStartParams["block"] = "true"` -- always, whatever the user wrote (kuberay#675)
    params["block"] = "true"
    params.setdefault("dashboard-agent-listen-port", str(DEFAULT_DASHBOARD_AGENT_LISTEN_PORT))


def _validate(raycluster: dict) -> None:
    spec = raycluster["spec"]
    if not spec["headGroupSpec"]["template"]["spec"].get("containers"):
        raise ValueError("headGroupSpec should have at least one container")
    for group in spec.get("workerGroupSpecs") or []:
        if not group["template"]["spec"].get("containers"):
            raise ValueError("workerGroupSpec should have at least one container")
    if spec.get("gcsFaultToleranceOptions") or (
        (raycluster["metadata"].get("annotations") or {}).get(FT_ENABLED_ANNOTATION, "").lower()
        == "true"
    ):
        raise NotImplementedError("GCS fault tolerance is not emulated")
    if (spec.get("tlsOptions") or {}).get("enabled"):
        raise NotImplementedError("mTLS (tlsOptions) is not emulated")
    if (spec.get("historyServerOptions") or {}).get("collectorOptions"):
        raise NotImplementedError("the history server collector is not emulated")
    # utils/validation.go: "authOptions.mode is 'token' but minimum Ray version is 2.52.0"
    if auth_enabled(raycluster):
        version = _version(spec.get("rayVersion") or "")
        if version is None:
            raise ValueError("authOptions.mode is 'token' but RayVersion was not specified")
        if version < (2, 52, 0):
            got = spec["rayVersion"]
            raise ValueError(
                f"authOptions.mode is 'token' but minimum Ray version is 2.52.0, got {got}"
            )
        if k8s_token_auth(raycluster):
            if version < (2, 55, 0):
                raise ValueError("authOptions.enableK8sTokenAuth needs Ray 2.55.0 or later")
            if spec["authOptions"].get("secretName"):
                raise ValueError("authOptions.enableK8sTokenAuth and secretName are both set")
    elif k8s_token_auth(raycluster):
        raise ValueError("authOptions.enableK8sTokenAuth is enabled but mode is not 'token'")


def _version(s: str) -> tuple[int, ...] | None:
    m = re.match(r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", s)
    return tuple(int(x or 0) for x in m.groups()) if m else None


def _template_annotations(raycluster: dict, template: dict) -> dict[str, str]:
    """initTemplateAnnotations: the template's annotations, plus the RayCluster's
    ``ray.io/overwrite-container-cmd: "true"`` copied onto it."""
    annotations = dict(template["metadata"].get("annotations") or {})
    cluster = raycluster["metadata"].get("annotations") or {}
    if cluster.get(OVERWRITE_CONTAINER_CMD, "").lower() == "true":
        annotations[OVERWRITE_CONTAINER_CMD] = "true"
    return annotations


def _label_pod(node_type: str, cluster: str, group: str, overrides: dict) -> dict[str, str]:
    """labelPod: KubeRay's labels; the template's override all but node-type, group, cluster."""
    labels = {
        "ray.io/is-ray-node": "yes",
        "ray.io/cluster": cluster,
        "ray.io/node-type": node_type,
        "ray.io/group": group,
        "ray.io/identifier": f"{cluster}-{node_type}"[-63:],  # CheckLabel(GenerateIdentifier(...))
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    for k, v in overrides.items():
        if k not in ("ray.io/node-type", "ray.io/group", "ray.io/cluster"):
            labels[k] = v
    return labels


def _add_metrics_port(ray: dict) -> None:
    """``if !isMetricsPortExists`` add ``{Name: "metrics", ContainerPort: 8080}``."""
    ports = ray.setdefault("ports", [])
    if not any(p.get("name") == METRICS_PORT_NAME for p in ports):
        ports.append({"name": METRICS_PORT_NAME, "containerPort": DEFAULT_METRICS_PORT})


def _update_params_resources(params: dict[str, str], resources: dict | None) -> None:
    """updateRayStartParamsResources: the group's top-level ``resources`` override num-cpus,
    memory, num-gpus, and the others become ``resources='{...}'``."""
    if not resources:
        return
    custom: dict[str, float] = {}
    for name, q in resources.items():
        try:
            value = quantity(q)
        except ValueError:
            continue  # "Skipping resource %s: failed to parse quantity"
        lower = name.lower()
        if lower == "cpu":
            params["num-cpus"] = str(math.ceil(value))
        elif lower == "memory":
            params["memory"] = str(math.ceil(value))
        elif _is_gpu(lower):
            params["num-gpus"] = str(math.ceil(value))
        else:
            custom[name] = float(value)
    if custom:
        params["resources"] = f"'{_go_json(custom)}'"


def _update_params_labels(params: dict[str, str], labels: dict | None) -> None:
    """updateRayStartParamsLabels: ``labels`` becomes ``--labels=k1=v1,k2=v2`` (sorted)."""
    if labels:
        params["labels"] = ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _is_gpu(key: str) -> bool:
    """utils.IsGPUResourceKey: ends with "gpu", or an NVIDIA MIG slice."""
    return key.endswith("gpu") or re.search(r"nvidia\.com/mig-\d+g\.\d+gb$", key) is not None


def _add_accelerators(params: dict[str, str], limits: dict) -> None:
    """addWellKnownAcceleratorResources: num-gpus from a GPU limit, and the first TPU / Neuron
    core limit (sorted keys) into ``resources`` unless one is there already."""
    if not limits:
        return
    try:
        existing = json.loads(params["resources"].strip("'\"` ")) if "resources" in params else {}
    except ValueError:
        return  # "failed to add accelerator resources to rayStartParams"
    added = any(r in existing for r in _CUSTOM_ACCELERATORS.values())
    for key in sorted(limits):
        value = quantity(limits[key])
        if "num-gpus" not in params and _is_gpu(key) and value != 0:
            params["num-gpus"] = str(math.ceil(value))
        if not added and key in _CUSTOM_ACCELERATORS and value != 0:
            ray_name = _CUSTOM_ACCELERATORS[key]
            if ray_name not in existing:
                existing[ray_name] = float(value)
                params["resources"] = f"'{_go_json(existing)}'"
            added = True


def _go_json(d: Mapping[str, float]) -> str:
    """encoding/json of a map[string]float64: sorted keys, no spaces, 1 not 1.0."""
    return json.dumps(
        {k: int(v) if float(v).is_integer() else v for k, v in d.items()},
        sort_keys=True,
        separators=(",", ":"),
    )


def _container_command(operator: Operator) -> list[str]:
    """utils.GetContainerCommand([]): ``/bin/bash -c --``; ``-cl`` with ENABLE_LOGIN_SHELL=true
    (the -l was the default before v1.4.0)."""
    return ["/bin/bash", "-cl" if operator.enable_login_shell else "-c", "--"]


def _autoscaler_container(raycluster: dict, ray: dict) -> dict:
    """BuildAutoscalerContainer (the Ray container's image), the token env, then
    mergeAutoscalerOverrides (``autoscalerOptions``: image, env appended, envFrom, volumeMounts,
    command, args replace)."""
    field_ref = {"fieldRef": {"fieldPath": "metadata.labels['ray.io/cluster']"}}
    container: dict[str, Any] = {
        "name": AUTOSCALER_CONTAINER,
        "image": ray.get("image"),
        "env": [
            {"name": "RAY_CLUSTER_NAME", "valueFrom": field_ref},
            {
                "name": "RAY_CLUSTER_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
            {
                "name": "RAY_HEAD_POD_NAME",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            },
            {"name": "KUBERAY_CRD_VER", "value": "v1"},
            {"name": "KUBERAY_GEN_AUTOSCALER_START_CMD", "value": AUTOSCALER_START_CMD},
        ],
        "command": ["/bin/bash", "-c", "--"],
        "args": [AUTOSCALER_START_CMD],
    }
    if auth_enabled(raycluster):
        _token_auth_env(raycluster, container)
    options = raycluster["spec"].get("autoscalerOptions") or {}
    if options.get("image"):
        container["image"] = options["image"]
    container["env"].extend(copy.deepcopy(options.get("env") or []))
    if options.get("envFrom"):
        container["envFrom"] = copy.deepcopy(options["envFrom"])
    if options.get("volumeMounts"):
        container["volumeMounts"] = copy.deepcopy(options["volumeMounts"])
    for key in ("command", "args"):
        if options.get(key):
            container[key] = list(options[key])
    return container


def _add_env(env: list[dict], var: dict) -> None:
    if not any(e["name"] == var["name"] for e in env):
        env.append(var)


def _add_empty_dir(
    container: dict, volumes: list[dict], name: str, path: str, medium: str | None
) -> None:
    """addEmptyDir: nothing if the container mounts something at ``path`` already; the volume
    unless one of that name exists; a read-write mount. A memory medium gets the container's
    memory limit (else request) as sizeLimit (makeEmptyDirVolume)."""
    mounts = container.setdefault("volumeMounts", [])
    if any(m["mountPath"] == path for m in mounts):
        return
    if not any(v["name"] == name for v in volumes):
        empty: dict[str, Any] = {}
        if medium == "Memory":
            empty["medium"] = "Memory"
            resources = container.get("resources") or {}
            size = (resources.get("limits") or {}).get("memory") or (
                resources.get("requests") or {}
            ).get("memory")
            if size is not None:
                empty["sizeLimit"] = size
        volumes.append({"name": name, "emptyDir": empty})
    mounts.append({"name": name, "mountPath": path})


def _build_pod(
    raycluster: dict,
    template: dict,
    node_type: str,
    params: dict[str, str],
    port: str,
    fqdn: str,
    autoscaling: bool,
    operator: Operator,
    pod_name: str,
    namespace: str,
    group: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    service_account: str | None,
    restart_policy: str | None,
) -> PodRun:
    """BuildPod."""
    pod_spec = template["spec"]
    containers = pod_spec["containers"]
    ray = containers[0]
    volumes = pod_spec.setdefault("volumes", [])
    creator = (raycluster["metadata"].get("labels") or {}).get(ORIGINATED_FROM_CRD_LABEL)
    creator = creator if creator in ("RayJob", "RayService") else "RayCluster"
    if creator == "RayService":  # RayClusterServingServiceLabelKey: the head starts unserved
        labels["ray.io/serve"] = "false" if node_type == "head" else "true"

    # "Add /dev/shm volumeMount for the object store ... Skip injection when users explicitly set
    # plasma-directory."
    if PLASMA_DIRECTORY not in params:
        _add_empty_dir(ray, volumes, SHARED_MEMORY_VOLUME, SHARED_MEMORY_PATH, "Memory")
    if node_type == "head" and autoscaling:
        # "The Ray autoscaler writes logs which are read by the Ray head." -- /tmp/ray shared
        # between the Ray container and the autoscaler (no other sidecar).
        autoscaler = next(c for c in containers if c["name"] == AUTOSCALER_CONTAINER)
        _add_empty_dir(ray, volumes, RAY_LOG_VOLUME, RAY_LOG_PATH, None)
        _add_empty_dir(autoscaler, volumes, RAY_LOG_VOLUME, RAY_LOG_PATH, None)

    # `cmd = convertCmdToString(Command)`, `cmd += convertCmdToString(Args)`: " %s " per element
    cmd = "".join(f" {v} " for v in [*(ray.get("command") or []), *(ray.get("args") or [])])
    start = ray_start_command(node_type, params, ray.get("resources"))
    overwrite = annotations.get(OVERWRITE_CONTAINER_CMD, "").lower() == "true"
    if not overwrite and "ray start" not in cmd:
        generated = f"{ULIMIT}; {start}"
        ray["command"] = _container_command(operator)
        # "If 'ray start' has --block specified, commands after it will not get executed.
        # so we need to put cmd before cont."
        ray["args"] = [f"{cmd} && {generated}" if cmd else generated]

    for init in pod_spec.get("initContainers", []):
        # setInitContainerEnvVars: appended, whether or not the container sets them
        init.setdefault("env", []).extend(
            [{"name": "FQ_RAY_IP", "value": fqdn}, {"name": "RAY_IP", "value": fqdn.split(".")[0]}]
        )
    _set_container_env(ray, node_type, fqdn, port, start, creator, operator)

    field_values = {
        "metadata.name": pod_name,
        "metadata.namespace": namespace,
        **{f"metadata.labels['{k}']": v for k, v in labels.items()},
        **{f"metadata.annotations['{k}']": v for k, v in annotations.items()},
    }
    if service_account:
        field_values["spec.serviceAccountName"] = service_account
    return PodRun(
        name=pod_name,
        namespace=namespace,
        group=group,
        node_type=node_type,
        containers=[_container_run(c, field_values) for c in containers],
        init_containers=[
            _container_run(c, field_values) for c in pod_spec.get("initContainers", [])
        ],
        volumes={v["name"]: {k: x for k, x in v.items() if k != "name"} for v in volumes},
        labels=labels,
        annotations=annotations,
        ray_start_params=params,
        ray_start_command=start,
        service_account=service_account,
        restart_policy=restart_policy,
    )


def _set_container_env(
    ray: dict, node_type: str, fqdn: str, port: str, start: str, creator: str, operator: Operator
) -> None:
    """setContainerEnvVars, in its order. Appended unconditionally (a user's value is overridden:
    the kubelet keeps the last duplicate): FQ_RAY_IP, RAY_IP (workers), RAY_CLUSTER_NAME,
    RAY_CLUSTER_NAMESPACE, RAY_CLOUD_INSTANCE_ID, RAY_NODE_TYPE_NAME, KUBERAY_GEN_RAY_START_CMD,
    RAY_USAGE_STATS_EXTRA_TAGS (head); only if absent: the operator's defaults, RAY_PORT,
    RAY_ADDRESS, RAY_USAGE_STATS_KUBERAY_IN_USE, RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE."""
    env = ray.setdefault("env", [])
    for default in operator.default_container_envs:
        _add_env(env, copy.deepcopy(default))
    ip = LOCAL_HOST  # "case 1: head => Use LOCAL_HOST; case 2: worker => Use fqdnRayIP"
    if node_type == "worker":
        ip = fqdn
        env.append({"name": "FQ_RAY_IP", "value": ip})
        env.append({"name": "RAY_IP", "value": ip.split(".")[0]})  # ExtractRayIPFromFQDN
    for name, path in (
        ("RAY_CLUSTER_NAME", "metadata.labels['ray.io/cluster']"),
        ("RAY_CLUSTER_NAMESPACE", "metadata.namespace"),
        ("RAY_CLOUD_INSTANCE_ID", "metadata.name"),
        ("RAY_NODE_TYPE_NAME", "metadata.labels['ray.io/group']"),
    ):
        env.append({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
    env.append({"name": "KUBERAY_GEN_RAY_START_CMD", "value": start})
    _add_env(env, {"name": "RAY_PORT", "value": port})
    if creator == "RayService":
        _add_env(env, {"name": "RAY_timeout_ms_task_wait_for_death_info", "value": "0"})
        _add_env(env, {"name": "RAY_gcs_server_request_timeout_seconds", "value": "5"})
        _add_env(env, {"name": "RAY_SERVE_KV_TIMEOUT_S", "value": "5"})
    _add_env(env, {"name": "RAY_ADDRESS", "value": f"{ip}:{port}"})
    _add_env(env, {"name": "RAY_USAGE_STATS_KUBERAY_IN_USE", "value": "1"})
    if node_type == "head":
        tags = f"kuberay_version={operator.kuberay_version};kuberay_crd={creator}"
        env.append({"name": "RAY_USAGE_STATS_EXTRA_TAGS", "value": tags})
    _add_env(env, {"name": "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE", "value": "1"})


def _container_run(c: dict, field_values: Mapping[str, str]) -> ContainerRun:
    run = ContainerRun(
        name=c["name"],
        image=c.get("image"),
        command=list(c.get("command") or []),
        args=list(c.get("args") or []),
        env={},
        env_from_secret={},
        volume_mounts=[
            Mount(m["name"], m["mountPath"], bool(m.get("readOnly")))
            for m in c.get("volumeMounts", [])
        ],
        ports=[(p.get("name"), int(p["containerPort"])) for p in c.get("ports") or []],
        env_from=copy.deepcopy(c.get("envFrom") or []),
        sub_paths={
            m["mountPath"]: m["subPath"] for m in c.get("volumeMounts", []) if m.get("subPath")
        },
        working_dir=c.get("workingDir"),
        autoscaler=c["name"] == AUTOSCALER_CONTAINER,
    )
    for var in c.get("env") or []:  # the kubelet: the last definition of a name wins
        name = var["name"]
        for table in (run.env, run.env_from_secret, run.env_from_config_map, run.field_refs):
            table.pop(name, None)
        if name not in run.env_order:
            run.env_order.append(name)
        source = var.get("valueFrom")
        if source is None:
            run.env[name] = var.get("value", "")
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            run.env_from_secret[name] = (ref["name"], ref["key"])
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            run.env_from_config_map[name] = (ref["name"], ref["key"])
        elif "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            if path in field_values:
                run.env[name] = field_values[path]
            else:
                run.field_refs[name] = path
        else:
            run.field_refs[name] = json.dumps(source, sort_keys=True)
    return run
