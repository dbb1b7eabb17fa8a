{{/*
Helpers of the umbrella chart, prefixed `asya.umbrella.` because defines are shared with
every subchart in one render.
*/}}

{{- define "asya.umbrella.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: asya
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The Service URL the evaluation s3 subchart answers on (what global.s3.endpoint defaults to). */}}
{{- define "asya.umbrella.evaluationS3Endpoint" -}}
{{- printf "http://%s:%v" (.Values.s3.fullnameOverride | default "asya-s3") (((.Values.s3).service).port | default 8333) }}
{{- end }}

{{/*
Helm conditions cannot be computed, so the evaluation subcharts switch themselves off from
`global` (a subchart sees only `global`): asya-rabbitmq renders nothing once
global.externalRabbitmq.enabled is true or the transport is sqs, asya-s3 once
global.externalS3.enabled is true. What is left to refuse here is a configuration that
cannot work, with the value to change.
*/}}
{{- define "asya.umbrella.validate" -}}
{{- $g := .Values.global }}
{{- $evalRabbit := and .Values.rabbitmq.enabled (not $g.externalRabbitmq.enabled) (ne $g.transport.type "sqs") }}
{{- $evalS3 := and .Values.s3.enabled (not $g.externalS3.enabled) }}
{{- if and $g.externalRabbitmq.url (not $g.externalRabbitmq.enabled) }}
{{- fail "global.externalRabbitmq.url is set but global.externalRabbitmq.enabled is false: enable it or drop the URL" }}
{{- end }}
{{- if and .Values.operator.enabled (eq $g.transport.type "rabbitmq") (not $evalRabbit) (not $g.externalRabbitmq.enabled) }}
{{- fail "global.transport.type is rabbitmq but no broker is configured: set rabbitmq.enabled=true (evaluation) or global.externalRabbitmq.enabled=true" }}
{{- end }}
{{- if and $g.externalRabbitmq.enabled (not $g.rabbitmq.secretName) }}
{{- fail "global.externalRabbitmq needs global.rabbitmq.secretName: the Secret the operator, KEDA and sidecars read the AMQP URL from" }}
{{- end }}
{{- if and $evalRabbit (not $g.rabbitmq.secretName) }}
{{- fail "rabbitmq.enabled needs global.rabbitmq.secretName: the evaluation broker creates its URL Secret under that name for the operator and KEDA" }}
{{- end }}
{{- if and $evalS3 (not $g.s3.endpoint) }}
{{- fail (printf "s3.enabled runs the evaluation S3, but global.s3.endpoint is empty (AWS S3): set it to %s, or set global.externalS3.enabled=true for AWS S3" (include "asya.umbrella.evaluationS3Endpoint" .)) }}
{{- end }}
{{- if and $evalS3 (not $g.s3.secretName) }}
{{- fail "s3.enabled needs global.s3.secretName: the evaluation S3 creates its keys Secret under that name for the crew" }}
{{- end }}
{{- if and .Values.crew.enabled (not $evalS3) (not $g.externalS3.enabled) }}
{{- fail "the crew stores results in S3 but none is configured: set s3.enabled=true (evaluation) or global.externalS3.enabled=true with global.s3.endpoint/bucket/region" }}
{{- end }}
{{- if and $g.externalS3.enabled (eq ($g.s3.endpoint | default "") (include "asya.umbrella.evaluationS3Endpoint" .)) }}
{{- fail (printf "global.externalS3.enabled is true but global.s3.endpoint still points at the evaluation service %s: set it to your S3 endpoint (empty = AWS S3)" $g.s3.endpoint) }}
{{- end }}
{{- if and (or $g.externalS3.accessKeyId $g.externalS3.secretAccessKey) (not (and $g.externalS3.accessKeyId $g.externalS3.secretAccessKey)) }}
{{- fail "global.externalS3 needs both accessKeyId and secretAccessKey, or neither (a pre-created Secret global.s3.secretName)" }}
{{- end }}
{{- if and $g.externalS3.accessKeyId (not $g.externalS3.enabled) }}
{{- fail "global.externalS3.accessKeyId is set but global.externalS3.enabled is false: enable it or drop the keys" }}
{{- end }}
{{- if and $g.externalS3.accessKeyId (not $g.s3.secretName) }}
{{- fail "global.externalS3 keys are set but global.s3.secretName is empty: name the Secret this chart should store them in" }}
{{- end }}
{{- $evalDB := and .Values.postgresql.enabled (not $g.externalDatabase.enabled) }}
{{- if and $g.externalDatabase.url (not $g.externalDatabase.enabled) }}
{{- fail "global.externalDatabase.url is set but global.externalDatabase.enabled is false: enable it or drop the DSN" }}
{{- end }}
{{- if and .Values.gateway.enabled (not $evalDB) (not $g.externalDatabase.enabled) }}
{{- fail "the gateway stores jobs in PostgreSQL but none is configured: set postgresql.enabled=true (evaluation) or global.externalDatabase.enabled=true" }}
{{- end }}
{{- if and (or $evalDB $g.externalDatabase.enabled) (not $g.database.secretName) }}
{{- fail "global.database.secretName is empty: name the Secret with the gateway's DSN (the evaluation postgresql or global.externalDatabase.url creates it under that name)" }}
{{- end }}
{{- if and .Values.gateway.enabled .Values.operator.enabled (not .Values.operator.gatewayUrl) }}
{{- fail (printf "the gateway is installed but operator.gatewayUrl is empty, so no actor would report progress: set it to http://%s:8080" (.Values.gateway.fullnameOverride | default "asya-gateway")) }}
{{- end }}
{{- if and (not .Values.gateway.enabled) (eq (.Values.operator.gatewayUrl | default "") (printf "http://%s:8080" (.Values.gateway.fullnameOverride | default "asya-gateway"))) }}
{{- fail (printf "gateway.enabled is false but operator.gatewayUrl still points at this release's gateway %s: set operator.gatewayUrl to your gateway, or empty for no progress reports" .Values.operator.gatewayUrl) }}
{{- end }}
{{- if and (or .Values.externalSqs.accessKeyId .Values.externalSqs.secretAccessKey) (not (and .Values.externalSqs.accessKeyId .Values.externalSqs.secretAccessKey)) }}
{{- fail "externalSqs needs both accessKeyId and secretAccessKey, or neither" }}
{{- end }}
{{- if and .Values.externalSqs.accessKeyId (not $g.sqs.credentialsSecret) }}
{{- fail "externalSqs keys are set but global.sqs.credentialsSecret is empty: name the Secret this chart should store them in" }}
{{- end }}
{{- end }}
