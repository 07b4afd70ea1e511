{{/* Names and labels shared by the chart's manifests. */}}
{{- define "evmpp.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "evmpp.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "evmpp.image" -}}
{{ required "image.repository is required" .Values.image.repository }}:{{ required "image.tag is required" .Values.image.tag }}
{{- end -}}

{{/* The coordinator's settings file (evmpp serve --config). */}}
{{- define "evmpp.settings" -}}
block_interval: {{ .Values.coordinator.blockInterval }}
pbs_gas_limit: {{ .Values.coordinator.pbsGasLimit | int64 }}
basic_cus: {{ .Values.coordinator.basicCUs }}
cu_cores: {{ .Values.coordinator.cuCores }}
ebs_slots: {{ .Values.coordinator.ebsSlots }}
validators: {{ .Values.validators.count }}
seed: {{ .Values.coordinator.seed }}
genesis: {{ .Values.coordinator.genesis | quote }}
policy:
  up: {{ .Values.scaling.up }}
  down: {{ .Values.scaling.down }}
  target: {{ .Values.scaling.target }}
  window: {{ .Values.scaling.window }}
  max_cus: {{ .Values.scaling.maxCUs }}
{{- end -}}
