{{/*
Names and labels for asya-rabbitmq. Defines are global across an umbrella render, so every
name is prefixed `asya.rabbitmq.` to stay clear of the sibling charts' helpers.
*/}}

{{- define "asya.rabbitmq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "asya.rabbitmq.fullname" -}}
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

{{- define "asya.rabbitmq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "asya.rabbitmq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "asya.rabbitmq.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "asya.rabbitmq.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: broker
app.kubernetes.io/part-of: asya
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "asya.rabbitmq.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "asya.rabbitmq.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Secret with username, password, erlang-cookie and the AMQP URL. A pre-created Secret
(auth.existingSecret) wins; otherwise the name the rest of Asya reads
(global.rabbitmq.secretName), so the operator and KEDA find it without extra wiring.
*/}}
{{- define "asya.rabbitmq.secretName" -}}
{{- $global := (.Values.global).rabbitmq | default dict }}
{{- if .Values.auth.existingSecret }}
{{- if and $global.secretName (ne $global.secretName .Values.auth.existingSecret) }}
{{- fail (printf "rabbitmq.auth.existingSecret is %q but global.rabbitmq.secretName is %q: set global.rabbitmq.secretName to %q too, so the operator and KEDA read the same Secret" .Values.auth.existingSecret $global.secretName .Values.auth.existingSecret) }}
{{- end }}
{{- .Values.auth.existingSecret }}
{{- else }}
{{- default (include "asya.rabbitmq.fullname" .) $global.secretName }}
{{- end }}
{{- end }}

{{- define "asya.rabbitmq.urlKey" -}}
{{- default "url" ((.Values.global).rabbitmq).urlKey }}
{{- end }}

{{- define "asya.rabbitmq.image" -}}
{{- $registry := default .Values.image.registry (.Values.global).imageRegistry }}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if $registry }}
{{- printf "%s/%s:%s" $registry .Values.image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "asya.rabbitmq.imagePullSecrets" -}}
{{- $names := list }}
{{- range (concat ((.Values.global).imagePullSecrets | default list) (.Values.imagePullSecrets | default list)) }}
{{- if kindIs "string" . }}
{{- $names = append $names . }}
{{- else }}
{{- $names = append $names .name }}
{{- end }}
{{- end }}
{{- with ($names | uniq) }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* The broker's config: the official image's defaults plus what Asya needs, then extraConfig. */}}
{{- define "asya.rabbitmq.config" -}}
# Rendered by the asya-rabbitmq chart; replaces the image's /etc/rabbitmq.
loopback_users.guest = false
listeners.tcp.default = {{ .Values.service.ports.amqp }}
log.console = true
log.console.level = {{ .Values.logLevel }}
log.file = false
{{- if .Values.management.enabled }}
management.tcp.port = {{ .Values.service.ports.management }}
{{- end }}
{{- if .Values.metrics.enabled }}
prometheus.tcp.port = {{ .Values.service.ports.prometheus }}
{{- end }}
{{- with .Values.extraConfig }}
{{ . }}
{{- end }}
{{- end }}

{{- define "asya.rabbitmq.plugins" -}}
{{- $plugins := list }}
{{- if .Values.management.enabled }}{{ $plugins = append $plugins "rabbitmq_management" }}{{ end }}
{{- if .Values.metrics.enabled }}{{ $plugins = append $plugins "rabbitmq_prometheus" }}{{ end }}
{{- $plugins = concat $plugins .Values.extraPlugins | uniq }}
{{- printf "[%s]." (join "," $plugins) }}
{{- end }}

{{/*
"true" unless the umbrella points Asya elsewhere: global.externalRabbitmq.enabled, or an
SQS transport. Helm conditions cannot compute that, so every template asks this instead.
*/}}
{{- define "asya.rabbitmq.active" -}}
{{- $g := .Values.global | default dict }}
{{- $external := ($g.externalRabbitmq | default dict).enabled }}
{{- $sqs := eq (($g.transport | default dict).type | default "rabbitmq") "sqs" }}
{{- ternary "true" "false" (not (or $external $sqs)) }}
{{- end }}
