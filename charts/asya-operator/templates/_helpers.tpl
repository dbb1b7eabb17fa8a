{{/*
Names and labels of the asya-operator chart. Defines are global across an umbrella and its
subcharts, so every name here starts with "asya.operator.".
*/}}

{{- define "asya.operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or the release name alone when it already contains the chart name. */}}
{{- define "asya.operator.fullname" -}}
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

{{- define "asya.operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "asya.operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "asya.operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "asya.operator.labels" -}}
helm.sh/chart: {{ include "asya.operator.chart" . }}
{{ include "asya.operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: asya
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "asya.operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "asya.operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "asya.operator.leaseName" -}}
{{- .Values.leaderElection.leaseName | default "asya-operator" }}
{{- end }}

{{/*
An image reference from {registry, repository, tag}: global.imageRegistry wins over the
image's registry, an empty tag means the chart's appVersion.
Call: include "asya.operator.image" (dict "image" .Values.image "root" $)
*/}}
{{- define "asya.operator.image" -}}
{{- $registry := .image.registry }}
{{- with .root.Values.global }}{{ with .imageRegistry }}{{ $registry = . }}{{ end }}{{ end }}
{{- $tag := .image.tag | default .root.Chart.AppVersion | toString }}
{{- if $registry }}
{{- printf "%s/%s:%s" $registry .image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/* global.imagePullSecrets + imagePullSecrets, de-duplicated, as a list of {name}. */}}
{{- define "asya.operator.imagePullSecrets" -}}
{{- $names := list }}
{{- range (concat ((.Values.global).imagePullSecrets | default list) (.Values.imagePullSecrets | default list)) }}
{{- $n := . }}
{{- if kindIs "map" . }}{{ $n = .name }}{{ end }}
{{- if not (has $n $names) }}{{ $names = append $names $n }}{{ end }}
{{- end }}
{{- range $names }}
- name: {{ . }}
{{- end }}
{{- end }}

{{/* The env var that carries a transport's URL for the operator's own connection. */}}
{{- define "asya.operator.urlEnv" -}}
{{- printf "ASYA_TRANSPORT_URL_%s" (. | upper | replace "-" "_") }}
{{- end }}

{{/*
The transports of the operator configuration, as a YAML mapping: the one derived from
global.transport (with global.rabbitmq / global.sqs), then .Values.transports over it by
name. A rabbitmq/sqs entry with a secretRef and neither url nor urlEnv gets
urlEnv ASYA_TRANSPORT_URL_<NAME>, which the Deployment fills from that same Secret key.
*/}}
{{- define "asya.operator.transports" -}}
{{- $out := dict }}
{{- $g := .Values.global | default dict }}
{{- $gt := $g.transport | default dict }}
{{- if $gt.name }}
{{- if eq ($gt.type | default "rabbitmq") "rabbitmq" }}
{{- $rmq := $g.rabbitmq | default dict }}
{{- $_ := set $out $gt.name (dict "type" "rabbitmq" "secretRef" (dict "name" ($rmq.secretName | default "asya-rabbitmq") "key" ($rmq.urlKey | default "url"))) }}
{{- else if eq $gt.type "sqs" }}
{{- $sqs := $g.sqs | default dict }}
{{- $t := dict "type" "sqs" "region" ($sqs.region | default "us-east-1") }}
{{- with $sqs.endpoint }}{{ $_ := set $t "endpoint" . }}{{ end }}
{{- with $sqs.credentialsSecret }}
{{- $_ := set $t "credentialsSecret" (dict "name" . "accessKeyIdKey" ($sqs.accessKeyIdKey | default "AWS_ACCESS_KEY_ID") "secretAccessKeyKey" ($sqs.secretAccessKeyKey | default "AWS_SECRET_ACCESS_KEY")) }}
{{- end }}
{{- with $sqs.podIdentity }}{{ $_ := set $t "podIdentity" . }}{{ end }}
{{- $_ := set $out $gt.name $t }}
{{- else }}
{{- fail (printf "global.transport.type: must be rabbitmq or sqs, got %q" $gt.type) }}
{{- end }}
{{- end }}
{{- range $name, $t := .Values.transports }}
{{- $_ := set $out $name (deepCopy $t) }}
{{- end }}
{{- range $name, $t := $out }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $name) }}
{{- fail (printf "transports.%s: a transport name must be a DNS-1123 label (AsyncActors name it in spec.transport)" $name) }}
{{- end }}
{{- if regexMatch "://[^/@]*:[^/@]*@" ($t.url | default "") }}
{{- fail (printf "transports.%s.url: holds a password; put the URL in a Secret and set secretRef instead" $name) }}
{{- end }}
{{- if and $t.secretRef (not $t.url) (not $t.urlEnv) (ne $t.type "local") }}
{{- $_ := set $t "urlEnv" (include "asya.operator.urlEnv" $name) }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* The whole operator configuration file (shape: python/src/asya/operator/config.py). */}}
{{- define "asya.operator.config" -}}
{{- $cfg := dict "transports" (include "asya.operator.transports" . | fromYaml) }}
{{- $sidecar := dict "image" (include "asya.operator.image" (dict "image" .Values.sidecar.image "root" .)) "imagePullPolicy" .Values.sidecar.imagePullPolicy "resources" .Values.sidecar.resources "env" (.Values.sidecar.env | default list) }}
{{- $_ := set $cfg "sidecar" $sidecar }}
{{- $_ := set $cfg "crew" (dict "image" (include "asya.operator.image" (dict "image" .Values.crew.image "root" .))) }}
{{- with .Values.scaling.behavior }}{{ $_ := set $cfg "scaling" (dict "behavior" .) }}{{ end }}
{{- with .Values.gatewayUrl }}{{ $_ := set $cfg "gatewayUrl" . }}{{ end }}
{{- if and .Values.gatewayUrl .Values.gatewayToken.secretName }}
{{- $_ := set $cfg "gatewayToken" (dict "name" .Values.gatewayToken.secretName "key" .Values.gatewayToken.key) }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}
