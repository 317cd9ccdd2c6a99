{{/*
The chart name, or nameOverride.
*/}}
{{- define "sigserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, else <release>-<chart> (just <release>
when it already contains the chart name). DNS labels are limited to 63 characters.
*/}}
{{- define "sigserve.fullname" -}}
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

{{- define "sigserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sigserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sigserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sigserve.labels" -}}
helm.sh/chart: {{ include "sigserve.chart" . }}
{{ include "sigserve.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: model-server
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "sigserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sigserve.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
repository:tag, or repository@digest when a digest is given.
*/}}
{{- define "sigserve.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The shortest safe termination grace period: the preStop sleep, then the server's drain, which
lasts up to the request timeout plus 5 s after SIGTERM.
*/}}
{{- define "sigserve.minTerminationGracePeriod" -}}
{{- $timeout := .Values.server.timeout | float64 | ceil | int }}
{{- add (int .Values.shutdown.preStopSleepSeconds) $timeout 5 }}
{{- end }}

{{- define "sigserve.terminationGracePeriod" -}}
{{- $min := include "sigserve.minTerminationGracePeriod" . | int }}
{{- $set := .Values.shutdown.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $set }}
{{- add $min (int .Values.shutdown.marginSeconds) }}
{{- else if lt (int $set) $min }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds=%d is shorter than preStopSleepSeconds + server.timeout + 5 = %d: pods would be killed while draining requests" (int $set) $min) }}
{{- else }}
{{- int $set }}
{{- end }}
{{- end }}

{{/*
Cross-field rules the JSON schema cannot express.
*/}}
{{- define "sigserve.validate" -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) is greater than autoscaling.maxReplicas (%d)" (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (include "sigserve.metricsNeedToken" .) (not .Values.serviceMonitor.bearerTokenSecret.key) }}
{{- fail "auth.enabled covers /metrics, so the ServiceMonitor needs a token: set serviceMonitor.bearerTokenSecret.key (a Secret key holding one of the accepted tokens), or auth.metricsWithoutAuth=true" }}
{{- end }}
{{- if and .Values.grpc.enabled (eq (int .Values.grpc.port) (int .Values.server.port)) }}
{{- fail (printf "grpc.port and server.port are both %d: gRPC needs a port of its own" (int .Values.server.port)) }}
{{- end }}
{{- if and .Values.grpc.enabled (eq (int .Values.service.grpcPort) (int .Values.service.port)) }}
{{- fail (printf "service.grpcPort and service.port are both %d: the Service needs one port for HTTP and another for gRPC" (int .Values.service.port)) }}
{{- end }}
{{- if and .Values.grpc.probes .Values.tls.enabled }}
{{- fail "grpc.probes with tls.enabled: the gRPC port then serves TLS, which the kubelet's gRPC probe cannot speak; keep the HTTPS probes (grpc.probes=false)" }}
{{- end }}
{{- include "sigserve.validateModels" . }}
{{- end }}

{{/*
The container port's name, and the scheme of the probes and the scrape: https with tls.enabled.
*/}}
{{- define "sigserve.portName" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end }}
{{- end }}

{{/*
"true" when the server asks a token for /metrics, else empty.
*/}}
{{- define "sigserve.metricsNeedToken" -}}
{{- if and .Values.auth.enabled (not .Values.auth.metricsWithoutAuth) }}true{{ end }}
{{- end }}

{{/*
Where the Secrets are mounted (no subPath, so a rotated Secret reaches the running pod).
*/}}
{{- define "sigserve.authDir" -}}/etc/sigserve/auth{{- end }}
{{- define "sigserve.tlsDir" -}}/etc/sigserve/tls{{- end }}

{{/*
A number as an environment value: integers without exponent or decimals (values arrive as
float64, which would print 67108864 as 6.7108864e+07), other numbers as they are.
*/}}
{{- define "sigserve.number" -}}
{{- if eq (float64 .) (floor .) }}
{{- int64 . | toString }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/*
Several models: "true" when the server reads a models.yaml (the chart's or the user's), else empty.
*/}}
{{- define "sigserve.hasModelsConfig" -}}
{{- if or .Values.models .Values.modelsConfig.existingConfigMap }}true{{ end }}
{{- end }}

{{- define "sigserve.modelsConfigMapName" -}}
{{- default (printf "%s-models" (include "sigserve.fullname" .) | trunc 63 | trimSuffix "-") .Values.modelsConfig.existingConfigMap }}
{{- end }}

{{/*
Where models.yaml is mounted (the directory, mounted whole) and the file SIGSERVE_CONFIG names.
*/}}
{{- define "sigserve.modelsDir" -}}/etc/sigserve/models{{- end }}
{{- define "sigserve.modelsFile" -}}{{ include "sigserve.modelsDir" . }}/models.yaml{{- end }}

{{/*
The models.yaml the chart writes: `models` (uri first) and `traffic` copied as they are. Its
sha256 is the pod template's checksum/models-config annotation, so a changed list rolls the pods.
*/}}
{{- define "sigserve.modelsYaml" -}}
# sigserve models.yaml, written by the Helm chart from the values `models` and `traffic`.
models:
{{- range .Values.models }}
  - uri: {{ toJson .uri }}
    {{- range $key, $value := omit . "uri" }}
    {{ $key }}: {{ toJson $value }}
    {{- end }}
{{- end }}
{{- with .Values.traffic }}
traffic:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A models entry's route name when the chart can tell it (an explicit name, or the registered
name of a models:/ URI), else empty: the server names other models after their directory.
*/}}
{{- define "sigserve.routeName" -}}
{{- if .name }}
{{- .name }}
{{- else if hasPrefix "models:/" .uri }}
{{- $rest := trimPrefix "models:/" .uri }}
{{- $registered := regexReplaceAll "[@/].*$" $rest "" }}
{{- if not (and (hasPrefix "m-" $registered) (eq $registered $rest)) }}{{ $registered }}{{ end }}
{{- end }}
{{- end }}

{{/*
What values.schema.json cannot say about the models list: no model listed twice, and (when
every route name is known) each traffic policy names a model listed in at least two versions.
*/}}
{{- define "sigserve.validateModels" -}}
{{- $seen := dict }}
{{- $versions := dict }}
{{- $allNamed := true }}
{{- range $i, $m := .Values.models }}
{{- $key := printf "%s name=%s" $m.uri ($m.name | default "") }}
{{- if hasKey $seen $key }}
{{- fail (printf "models[%d] (%s) is listed twice" $i $m.uri) }}
{{- end }}
{{- $_ := set $seen $key true }}
{{- $name := include "sigserve.routeName" $m }}
{{- if $name }}
{{- $_ := set $versions $name (add1 (get $versions $name | default 0)) }}
{{- else }}
{{- $allNamed = false }}
{{- end }}
{{- end }}
{{- if $allNamed }}
{{- range $name, $policy := .Values.traffic }}
{{- $count := get $versions $name | default 0 | int }}
{{- if eq $count 0 }}
{{- fail (printf "traffic.%s names no model: the models are %s (a model's name is its `name`, else its registered name)" $name (keys $versions | sortAlpha | join ", ")) }}
{{- else if and (lt $count 2) (ne $policy.policy "champion") }}
{{- fail (printf "traffic.%s (%s) needs two versions of %s in models, a champion and a challenger (e.g. models:/%s@champion and models:/%s@challenger); there is one" $name $policy.policy $name $name $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
