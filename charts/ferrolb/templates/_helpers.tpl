{{/* Names, labels and small computed values shared by the templates. */}}

{{- define "ferrolb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "ferrolb.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ferrolb.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ferrolb.labels" -}}
helm.sh/chart: {{ include "ferrolb.chart" . }}
{{ include "ferrolb.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ferrolb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferrolb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Object names. Cluster-scoped ones carry the fullname: one release per name per cluster. */}}
{{- define "ferrolb.controller.fullname" -}}{{ include "ferrolb.fullname" . }}-controller{{- end }}
{{- define "ferrolb.speaker.fullname" -}}{{ include "ferrolb.fullname" . }}-speaker{{- end }}
{{- define "ferrolb.webhookService" -}}{{ include "ferrolb.fullname" . }}-webhook-service{{- end }}
{{- define "ferrolb.webhookConfiguration" -}}{{ include "ferrolb.fullname" . }}-webhook-configuration{{- end }}
{{- define "ferrolb.leaseName" -}}{{ include "ferrolb.fullname" . }}-controller{{- end }}

{{- define "ferrolb.controller.serviceAccountName" -}}
{{- if .Values.controller.serviceAccount.create }}
{{- default (include "ferrolb.controller.fullname" .) .Values.controller.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.controller.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ferrolb.speaker.serviceAccountName" -}}
{{- if .Values.speaker.serviceAccount.create }}
{{- default (include "ferrolb.speaker.fullname" .) .Values.speaker.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.speaker.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The gossip key Secret: the user's, or the one this chart creates. */}}
{{- define "ferrolb.memberlistSecretName" -}}
{{- default (printf "%s-memberlist" (include "ferrolb.fullname" .)) .Values.speaker.secretName }}
{{- end }}

{{/* image reference: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "ferrolb.image" -}}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository (default .appVersion .tag) }}
{{- end }}
{{- end }}

{{/* MetalLB's log levels as a RUST_LOG filter. */}}
{{- define "ferrolb.rustLog" -}}
{{- $levels := dict "all" "trace" "debug" "debug" "info" "info" "warn" "warn" "error" "error" "none" "off" }}
{{- get $levels . }}
{{- end }}

{{- define "ferrolb.speaker.metricsPort" -}}
{{- if .Values.speaker.metricsPort }}{{ .Values.speaker.metricsPort }}{{ else }}{{ .Values.prometheus.metricsPort }}{{ end }}
{{- end }}

{{/* An httpGet probe on path `.path`, port `.port` (name or number), with the values' timing. */}}
{{- define "ferrolb.probe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
  {{- with .host }}
  host: {{ . }}
  {{- end }}
failureThreshold: {{ .probe.failureThreshold }}
initialDelaySeconds: {{ .probe.initialDelaySeconds }}
periodSeconds: {{ .probe.periodSeconds }}
successThreshold: {{ .probe.successThreshold }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
{{- end }}

{{/* Refuses value combinations the schema cannot express, naming the keys. */}}
{{- define "ferrolb.validate" -}}
{{- if and .Values.prometheus.podMonitor.enabled .Values.prometheus.serviceMonitor.enabled }}
{{- fail "prometheus.podMonitor.enabled and prometheus.serviceMonitor.enabled are exclusive: choose one" }}
{{- end }}
{{- if .Values.speaker.frr.enabled }}
{{- fail "speaker.frr.enabled: FerroLB speaks BGP itself and has no FRR sidecar; remove the key" }}
{{- end }}
{{- if and .Values.speaker.enabled (not .Values.speaker.memberlist.enabled) .Values.speaker.nodeSelector }}
{{- fail "speaker.nodeSelector must be empty when speaker.memberlist.enabled is false: without gossip a speaker counts every Ready Node as alive, so every Node needs a speaker" }}
{{- end }}
{{- if and .Values.controller.enabled (gt (int .Values.controller.replicas) 1) (not .Values.controller.leaderElection.enabled) }}
{{- fail "controller.leaderElection.enabled=false needs controller.replicas=1: two replicas without a leader would both allocate" }}
{{- end }}
{{- if and .Values.speaker.enabled .Values.speaker.excludeInterfaces.enabled }}
{{- range .Values.speaker.excludeInterfaces.patterns }}
{{- if contains "," . }}
{{- fail (printf "speaker.excludeInterfaces.patterns: %q contains a comma (the speaker's flag is a comma list)" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
