{{/*
Names and labels for asya-postgresql. Defines are global across an umbrella render, so every
name is prefixed `asya.postgresql.` to stay clear of the sibling charts' helpers.
*/}}

{{- define "asya.postgresql.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "asya.postgresql.fullname" -}}
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

{{- define "asya.postgresql.selectorLabels" -}}
app.kubernetes.io/name: {{ include "asya.postgresql.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "asya.postgresql.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "asya.postgresql.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: database
app.kubernetes.io/part-of: asya
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "asya.postgresql.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "asya.postgresql.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Secret with username, password, database and the DSN. A pre-created Secret
(auth.existingSecret) wins; otherwise the name the gateway reads (global.database.secretName),
so it finds the DSN without extra wiring.
*/}}
{{- define "asya.postgresql.secretName" -}}
{{- $global := (.Values.global).database | default dict }}
{{- if .Values.auth.existingSecret }}
{{- if and $global.secretName (ne $global.secretName .Values.auth.existingSecret) }}
{{- fail (printf "postgresql.auth.existingSecret is %q but global.database.secretName is %q: set global.database.secretName to %q too, so the gateway reads the same Secret" .Values.auth.existingSecret $global.secretName .Values.auth.existingSecret) }}
{{- end }}
{{- .Values.auth.existingSecret }}
{{- else }}
{{- default (include "asya.postgresql.fullname" .) $global.secretName }}
{{- end }}
{{- end }}

{{- define "asya.postgresql.urlKey" -}}
{{- default "url" ((.Values.global).database).urlKey }}
{{- end }}

{{- define "asya.postgresql.image" -}}
{{- $registry := default .Values.image.registry (.Values.global).imageRegistry }}
{{- $tag := default .Chart.AppVersion .Values.image.tag | toString }}
{{- if $registry }}
{{- printf "%s/%s:%s" $registry .Values.image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "asya.postgresql.imagePullSecrets" -}}
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
"true" unless the umbrella points the gateway at an external database
(global.externalDatabase.enabled). Helm conditions cannot compute that, so every template asks this.
*/}}
{{- define "asya.postgresql.active" -}}
{{- $ext := ((.Values.global | default dict).externalDatabase | default dict).enabled }}
{{- ternary "false" "true" (eq (toString $ext) "true") }}
{{- end }}
