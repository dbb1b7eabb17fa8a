{{/*
Names, labels and shared pieces of the asya-gateway chart. Defines are global across an
umbrella render, so every name here starts with "asya.gateway.".
*/}}

{{- define "asya.gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "asya.gateway.fullname" -}}
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

{{/* The gateway pods' selector; the component keeps the migration Job's pods out of the Service. */}}
{{- define "asya.gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "asya.gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{/* Labels; call with (dict "root" $ "component" "gateway") */}}
{{- define "asya.gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "asya.gateway.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ .component | default "gateway" }}
app.kubernetes.io/part-of: asya
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- define "asya.gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "asya.gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "asya.gateway.image" -}}
{{- $registry := default .Values.image.registry (.Values.global).imageRegistry }}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString }}
{{- if $registry }}
{{- printf "%s/%s:%s" $registry .Values.image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* global.imagePullSecrets + imagePullSecrets, de-duplicated, as `imagePullSecrets:` or nothing. */}}
{{- define "asya.gateway.imagePullSecrets" -}}
{{- $names := list }}
{{- range (concat ((.Values.global).imagePullSecrets | default list) (.Values.imagePullSecrets | default list)) }}
{{- $n := . }}
{{- if kindIs "map" . }}{{ $n = .name }}{{ end }}
{{- if not (has $n $names) }}{{ $names = append $names $n }}{{ end }}
{{- end }}
{{- with $names }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* The token Secret's name (created here, or by the user). */}}
{{- define "asya.gateway.authSecretName" -}}
{{- .Values.auth.secretName | default (printf "%s-auth" (include "asya.gateway.fullname" .)) }}
{{- end }}

{{/* "true" when this chart creates the token Secret from values; fails on half a configuration. */}}
{{- define "asya.gateway.createAuthSecret" -}}
{{- $a := .Values.auth }}
{{- if and $a.enabled (or $a.clientTokens $a.reportToken) (not (and $a.clientTokens $a.reportToken)) }}
{{- fail "gateway auth: set both auth.clientTokens and auth.reportToken (this chart then creates the token Secret), or neither (the Secret auth.secretName is pre-created)" }}
{{- end }}
{{- range $a.clientTokens }}
{{- if contains "," . }}
{{- fail "gateway auth.clientTokens: a token may not contain ',' (entries are stored comma-separated)" }}
{{- end }}
{{- end }}
{{- ternary "true" "false" (and $a.enabled (not (empty $a.clientTokens)) (not (empty $a.reportToken))) }}
{{- end }}

{{/* The DSN Secret as a dict {name, key}. */}}
{{- define "asya.gateway.databaseSecret" -}}
{{- $g := (.Values.global).database | default dict }}
{{- if .Values.database.url }}
{{- toYaml (dict "name" (printf "%s-database" (include "asya.gateway.fullname" .)) "key" "url") }}
{{- else }}
{{- if not $g.secretName }}
{{- fail "gateway: no database: set global.database.secretName (a Secret with the DSN) or gateway database.url" }}
{{- end }}
{{- toYaml (dict "name" $g.secretName "key" ($g.urlKey | default "url")) }}
{{- end }}
{{- end }}

{{/* The DSN env entry (gateway, init container and migration Job). */}}
{{- define "asya.gateway.databaseEnv" -}}
{{- $db := include "asya.gateway.databaseSecret" . | fromYaml }}
- name: ASYA_GATEWAY_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $db.name }}
      key: {{ $db.key }}
- name: ASYA_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- end }}

{{/* Whether the database is created by the same release (the umbrella's evaluation postgresql). */}}
{{- define "asya.gateway.databaseInRelease" -}}
{{- ternary "false" "true" (eq (toString (((.Values.global).externalDatabase | default dict).enabled | default false)) "true") }}
{{- end }}

{{/* Every env entry of the gateway container, extraEnv last; ours give way to extraEnv by name. */}}
{{- define "asya.gateway.env" -}}
{{- $g := .Values.global | default dict }}
{{- $type := (($g.transport | default dict).type | default "rabbitmq") }}
{{- $env := include "asya.gateway.databaseEnv" . | fromYamlArray }}
{{- $env = append $env (dict "name" "ASYA_GATEWAY_HOST" "value" "0.0.0.0") }}
{{- $env = append $env (dict "name" "ASYA_GATEWAY_PORT" "value" "8080") }}
{{- $env = append $env (dict "name" "ASYA_GATEWAY_KEEPALIVE_S" "value" (toString .Values.keepaliveSeconds)) }}
{{- $env = append $env (dict "name" "ASYA_GATEWAY_DB_POOL" "value" (toString .Values.database.poolSize)) }}
{{- $env = append $env (dict "name" "ASYA_GATEWAY_LISTEN_CHECK_S" "value" (toString .Values.database.listenCheckSeconds)) }}
{{- if .Values.auth.enabled }}
{{- $secret := include "asya.gateway.authSecretName" . }}
{{- $env = append $env (dict "name" "ASYA_GATEWAY_AUTH" "value" "on") }}
{{- $env = append $env (dict "name" "ASYA_GATEWAY_TOKENS" "valueFrom" (dict "secretKeyRef" (dict "name" $secret "key" .Values.auth.clientTokensKey))) }}
{{- $env = append $env (dict "name" "ASYA_GATEWAY_REPORT_TOKEN" "valueFrom" (dict "secretKeyRef" (dict "name" $secret "key" .Values.auth.reportTokenKey))) }}
{{- else }}
{{- $env = append $env (dict "name" "ASYA_GATEWAY_AUTH" "value" "off") }}
{{- end }}
{{- $env = append $env (dict "name" "ASYA_TRANSPORT" "value" $type) }}
{{- if eq $type "rabbitmq" }}
{{- $r := $g.rabbitmq | default dict }}
{{- $env = append $env (dict "name" "ASYA_TRANSPORT_URL" "valueFrom" (dict "secretKeyRef" (dict "name" ($r.secretName | default "asya-rabbitmq") "key" ($r.urlKey | default "url")))) }}
{{- else if eq $type "sqs" }}
{{- $s := $g.sqs | default dict }}
{{- with $s.endpoint }}{{ $env = append $env (dict "name" "ASYA_TRANSPORT_URL" "value" .) }}{{ end }}
{{- $env = append $env (dict "name" "AWS_REGION" "value" ($s.region | default "us-east-1")) }}
{{- with $s.credentialsSecret }}
{{- $env = append $env (dict "name" "AWS_ACCESS_KEY_ID" "valueFrom" (dict "secretKeyRef" (dict "name" . "key" ($s.accessKeyIdKey | default "AWS_ACCESS_KEY_ID")))) }}
{{- $env = append $env (dict "name" "AWS_SECRET_ACCESS_KEY" "valueFrom" (dict "secretKeyRef" (dict "name" . "key" ($s.secretAccessKeyKey | default "AWS_SECRET_ACCESS_KEY")))) }}
{{- end }}
{{- else }}
{{- fail (printf "gateway: global.transport.type must be rabbitmq or sqs, got %q" $type) }}
{{- end }}
{{- range $k, $v := .Values.transportOptions }}
{{- $env = append $env (dict "name" (printf "ASYA_TRANSPORT_OPT_%s" (upper $k)) "value" (toString $v)) }}
{{- end }}
{{- if or .Values.tools.files .Values.tools.existingConfigMap }}
{{- $env = append $env (dict "name" "ASYA_GATEWAY_TOOLS" "value" "/etc/asya/tools") }}
{{- end }}
{{- $extra := list }}
{{- range .Values.extraEnv }}{{ $extra = append $extra .name }}{{ end }}
{{- $out := list }}
{{- range $env }}{{ if not (has .name $extra) }}{{ $out = append $out . }}{{ end }}{{ end }}
{{- toYaml (concat $out (.Values.extraEnv | default list)) }}
{{- end }}

{{/*
"true" when everything the migration Job reads exists before this release: the database
(global.externalDatabase.enabled) and its DSN Secret (not made from database.url or
global.externalDatabase.url by this release). Only then can the Job run before install.
*/}}
{{- define "asya.gateway.migrateBeforeInstall" -}}
{{- $ext := ((.Values.global).externalDatabase | default dict) }}
{{- ternary "true" "false" (and (eq (include "asya.gateway.databaseInRelease" .) "false") (not $ext.url) (not .Values.database.url)) }}
{{- end }}
