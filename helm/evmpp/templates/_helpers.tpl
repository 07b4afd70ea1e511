{{/* Names, labels and checks shared by the chart's manifests. */}}

{{/*
The RayCluster's name, which prefixes every resource. KubeRay refuses a RayCluster whose
name is not a DNS-1035 label of at most 53 characters (its pods and services are named
after it), so this template refuses one too, at render time, naming the value to change.
*/}}
{{- define "evmpp.fullname" -}}
{{- $name := "" -}}
{{- if .Values.fullnameOverride -}}
{{- $name = .Values.fullnameOverride -}}
{{- else -}}
{{- $chart := default .Chart.Name .Values.nameOverride -}}
{{- if contains $chart .Release.Name -}}
{{- $name = .Release.Name -}}
{{- else -}}
{{- $name = printf "%s-%s" .Release.Name $chart -}}
{{- end -}}
{{- end -}}
{{- if gt (len $name) 53 -}}
{{- fail (printf "the RayCluster name %q is %d characters; KubeRay allows at most 53: choose a shorter release name or set fullnameOverride" $name (len $name)) -}}
{{- end -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) -}}
{{- fail (printf "the RayCluster name %q is not a DNS-1035 label (lower-case letters, digits and '-', starting with a letter): choose another release name or set fullnameOverride" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{- define "evmpp.name" -}}
{{- default .Chart.Name .Values.nameOverride -}}
{{- end -}}

{{/* Labels of every resource; values quoted, since a label value must be a string. */}}
{{- define "evmpp.labels" -}}
app.kubernetes.io/name: {{ include "evmpp.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{- define "evmpp.image" -}}
{{ required "image.repository is required" .Values.image.repository }}:{{ required "image.tag is required" .Values.image.tag }}
{{- end -}}

{{/*
The coordinator's settings file (evmpp serve --config), as JSON (which YAML reads): Helm
holds a number from a values file as a float, and `{{ 1000000.0 }}` prints 1e+06, which
evmpp could not read as an integer; toJson prints it as 1000000.
*/}}
{{- define "evmpp.settings" -}}
{{- $c := .Values.coordinator -}}
{{- $s := .Values.scaling -}}
{{- toPrettyJson (dict
    "block_interval" $c.blockInterval
    "pbs_gas_limit" $c.pbsGasLimit
    "basic_cus" $c.basicCUs
    "cu_cores" $c.cuCores
    "ebs_slots" $c.ebsSlots
    "validators" .Values.validators.count
    "seed" $c.seed
    "verifier_max_lag" $c.verifierMaxLag
    "genesis" $c.genesis
    "policy" (dict "up" $s.up "down" $s.down "target" $s.target "window" $s.window "max_cus" $s.maxCUs)) -}}
{{- end -}}

{{/*
Refuses values whose capacity does not add up: the worker group must hold every Compute
Unit the coordinator may ask for (the basic pool at its most, and every EBS slot).
*/}}
{{- define "evmpp.checkCapacity" -}}
{{- $need := mul (add .Values.scaling.maxCUs .Values.coordinator.ebsSlots) .Values.coordinator.cuCores -}}
{{- $have := mul .Values.worker.cpus .Values.worker.maxReplicas -}}
{{- if lt (int64 $have) (int64 $need) -}}
{{- fail (printf "worker.cpus × worker.maxReplicas = %d CPUs, but (scaling.maxCUs + coordinator.ebsSlots) × coordinator.cuCores = %d: raise worker.maxReplicas or worker.cpus, or lower the CUs" (int64 $have) (int64 $need)) -}}
{{- end -}}
{{- $w := .Values.worker -}}
{{- if gt (int64 $w.minReplicas) (int64 $w.maxReplicas) -}}
{{- fail (printf "worker.minReplicas (%d) is more than worker.maxReplicas (%d)" (int64 $w.minReplicas) (int64 $w.maxReplicas)) -}}
{{- end -}}
{{- if or (lt (int64 $w.replicas) (int64 $w.minReplicas)) (gt (int64 $w.replicas) (int64 $w.maxReplicas)) -}}
{{- fail (printf "worker.replicas (%d) is outside worker.minReplicas..worker.maxReplicas (%d..%d)" (int64 $w.replicas) (int64 $w.minReplicas) (int64 $w.maxReplicas)) -}}
{{- end -}}
{{- if gt (int64 .Values.coordinator.basicCUs) (int64 .Values.scaling.maxCUs) -}}
{{- fail (printf "coordinator.basicCUs (%d) is more than scaling.maxCUs (%d)" (int64 .Values.coordinator.basicCUs) (int64 .Values.scaling.maxCUs)) -}}
{{- end -}}
{{- end -}}

{{/*
The head container's program: Ray's head, started by the command KubeRay generates from
rayStartParams (KUBERAY_GEN_RAY_START_CMD, given because the pod template asks KubeRay not to
write the container's command), and evmpp serve beside it once the GCS answers. The container
lives as long as both do: if either exits, the other is stopped and the container exits with
its code, so Kubernetes restarts the pod. SIGTERM (pod deletion, helm upgrade) stops evmpp
serve first, which closes the chain's stores, then Ray.
*/}}
{{- define "evmpp.startHead" -}}
set -u
ulimit -n 65536
eval "$KUBERAY_GEN_RAY_START_CMD" &  # eval: KubeRay quotes some flags (--resources='{...}')
ray_pid=$!
serve_pid=""
stop() {
  [ -n "$serve_pid" ] && kill -TERM "$serve_pid" 2>/dev/null && wait "$serve_pid"
  ray stop --force >/dev/null 2>&1
}
trap 'stop; exit 143' TERM INT
until ray health-check --address=127.0.0.1:6379 >/dev/null 2>&1; do
  kill -0 "$ray_pid" 2>/dev/null || { echo "ray start exited before its GCS answered" >&2; exit 1; }
  sleep 1
done
evmpp serve --address=127.0.0.1:6379 --host=0.0.0.0 --port={{ .Values.api.port }} \
  --config=/etc/evmpp/evmpp.json --data-dir=/data/chain --hints=/data/hints &
serve_pid=$!
wait -n "$ray_pid" "$serve_pid"
code=$?
stop
exit "$code"
{{- end -}}

{{/* A pod's scheduling, security context, pull secrets and service account. */}}
{{- define "evmpp.podScheduling" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.serviceAccountName }}
serviceAccountName: {{ . | quote }}
{{- end }}
{{- with .pod.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
With auth.mode "disabled", every Ray process is told so: Ray 2.60 turns token authentication
on by itself for a new cluster, and KubeRay sets no RAY_AUTH_MODE when authOptions.mode is
"disabled", so a worker would join a head that wants a token it does not have.
*/}}
{{- define "evmpp.authEnv" -}}
{{- if eq .Values.auth.mode "disabled" -}}
- name: RAY_AUTH_MODE
  value: disabled
{{- end -}}
{{- end -}}
