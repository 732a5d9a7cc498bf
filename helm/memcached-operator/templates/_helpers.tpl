{{/*
Names, labels and small computed values shared by the templates.
*/}}

{{- define "memcached-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name, unless it already contains the chart name.
Truncated to 63 characters (DNS label limit).
*/}}
{{- define "memcached-operator.fullname" -}}
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

{{- define "memcached-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "memcached-operator.labels" -}}
helm.sh/chart: {{ include "memcached-operator.chart" . }}
{{ include "memcached-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: memcached-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "memcached-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "memcached-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "memcached-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "memcached-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "memcached-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "memcached-operator.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{- define "memcached-operator.leaseName" -}}
{{- default (include "memcached-operator.fullname" .) .Values.leaderElection.id }}
{{- end }}

{{/*
A duration such as 15s, 1500ms, 2m or 1h in milliseconds (the schema allows
only these single-unit forms).
*/}}
{{- define "memcached-operator.durationMs" -}}
{{- $d := toString . }}
{{- if hasSuffix "ms" $d }}{{ trimSuffix "ms" $d | int64 }}
{{- else if hasSuffix "s" $d }}{{ mul (trimSuffix "s" $d | int64) 1000 }}
{{- else if hasSuffix "m" $d }}{{ mul (trimSuffix "m" $d | int64) 60000 }}
{{- else if hasSuffix "h" $d }}{{ mul (trimSuffix "h" $d | int64) 3600000 }}
{{- else }}{{ fail (printf "duration %q: want a number followed by ms, s, m or h" $d) }}
{{- end }}
{{- end }}

{{/*
Cross-value checks the schema cannot express; fail with a message that says
what to change.
*/}}
{{- define "memcached-operator.validate" -}}
{{- $le := .Values.leaderElection }}
{{- if $le.enabled }}
{{- $lease := include "memcached-operator.durationMs" $le.leaseDuration | int64 }}
{{- $renew := include "memcached-operator.durationMs" $le.renewDeadline | int64 }}
{{- $retry := include "memcached-operator.durationMs" $le.retryPeriod | int64 }}
{{- if le $lease $renew }}
{{- fail (printf "leaderElection.leaseDuration (%s) must be longer than leaderElection.renewDeadline (%s)" $le.leaseDuration $le.renewDeadline) }}
{{- end }}
{{- if le $renew $retry }}
{{- fail (printf "leaderElection.renewDeadline (%s) must be longer than leaderElection.retryPeriod (%s)" $le.renewDeadline $le.retryPeriod) }}
{{- end }}
{{- else if gt (int .Values.replicaCount) 1 }}
{{- fail (printf "replicaCount is %d but leaderElection.enabled is false: replicas would reconcile the same clusters at once; enable leader election or set replicaCount to 1" (int .Values.replicaCount)) }}
{{- end }}
{{- if eq (int .Values.metrics.port) (int .Values.health.port) }}
{{- fail "metrics.port and health.port must differ" }}
{{- end }}
{{- end }}

{{/* The address a server binds: all interfaces, or the pod IP. */}}
{{- define "memcached-operator.bindAddress" -}}
{{- if .root.Values.listenOnPodIP }}{{ printf "$(POD_IP):%d" (int .port) }}{{ else }}{{ printf ":%d" (int .port) }}{{ end }}
{{- end }}
