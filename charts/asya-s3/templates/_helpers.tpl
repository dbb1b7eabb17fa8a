{{/*
Names and labels for asya-s3. Defines are global across an umbrella render, so every
name is prefixed `asya.s3.` to stay clear of the sibling charts' helpers.
*/}}

{{- define "asya.s3.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "asya.s3.fullname" -}}
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

{{- define "asya.s3.selectorLabels" -}}
app.kubernetes.io/name: {{ include "asya.s3.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "asya.s3.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "asya.s3.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: storage
app.kubernetes.io/part-of: asya
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "asya.s3.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "asya.s3.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "asya.s3.image" -}}
{{- $registry := default .Values.image.registry (.Values.global).imageRegistry }}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if $registry }}
{{- printf "%s/%s:%s" $registry .Values.image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "asya.s3.imagePullSecrets" -}}
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

{{/*
The Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. A pre-created Secret
(auth.existingSecret) wins; otherwise the name the crew reads (global.s3.secretName).
*/}}
{{- define "asya.s3.secretName" -}}
{{- $global := (.Values.global).s3 | default dict }}
{{- if .Values.auth.existingSecret }}
{{- if and $global.secretName (ne $global.secretName .Values.auth.existingSecret) }}
{{- fail (printf "s3.auth.existingSecret is %q but global.s3.secretName is %q: set global.s3.secretName to %q too, so the crew reads the same Secret" .Values.auth.existingSecret $global.secretName .Values.auth.existingSecret) }}
{{- end }}
{{- .Values.auth.existingSecret }}
{{- else }}
{{- default (include "asya.s3.fullname" .) $global.secretName }}
{{- end }}
{{- end }}

{{/* Buckets created at start: `buckets` plus `global.s3.bucket` (the one the crew writes to). */}}
{{- define "asya.s3.buckets" -}}
{{- $buckets := .Values.buckets | default list }}
{{- with ((.Values.global).s3).bucket }}
{{- $buckets = append $buckets . }}
{{- end }}
{{- join "," ($buckets | uniq) }}
{{- end }}

{{/*
"true" unless the umbrella points Asya at another object store (global.externalS3.enabled).
Helm conditions cannot compute that, so every template asks this instead.
*/}}
{{- define "asya.s3.active" -}}
{{- $g := .Values.global | default dict }}
{{- ternary "true" "false" (not ($g.externalS3 | default dict).enabled) }}
{{- end }}
