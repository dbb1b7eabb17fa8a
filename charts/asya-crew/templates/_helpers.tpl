{{/*
Names, labels and the end-actor AsyncActor of the asya-crew chart. Defines are global across
an umbrella and its subcharts, so every name here starts with "asya.crew.".
*/}}

{{- define "asya.crew.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "asya.crew.fullname" -}}
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

{{- define "asya.crew.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "asya.crew.selectorLabels" -}}
app.kubernetes.io/name: {{ include "asya.crew.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Call: include "asya.crew.labels" (dict "root" $ "component" "happy-end") */}}
{{- define "asya.crew.labels" -}}
helm.sh/chart: {{ include "asya.crew.chart" .root }}
{{ include "asya.crew.selectorLabels" .root }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: asya
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- define "asya.crew.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "asya.crew.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* global.imageRegistry wins over image.registry; an empty tag means the chart's appVersion. */}}
{{- define "asya.crew.image" -}}
{{- $registry := .image.registry }}
{{- with .root.Values.global }}{{ with .imageRegistry }}{{ $registry = . }}{{ end }}{{ end }}
{{- $tag := .image.tag | default .root.Chart.AppVersion | toString }}
{{- if $registry }}
{{- printf "%s/%s:%s" $registry .image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{- define "asya.crew.imagePullSecrets" -}}
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

{{- define "asya.crew.transport" -}}
{{- $t := .Values.transport | default (((.Values.global).transport).name) }}
{{- if not $t }}{{ fail "transport: set transport or global.transport.name (a transport declared in the operator's configuration)" }}{{ end }}
{{- $t }}
{{- end }}

{{/* The storage URL: storage.url, else s3://<bucket>[/<prefix>]. */}}
{{- define "asya.crew.storageUrl" -}}
{{- $s := .Values.storage }}
{{- if $s.url }}
{{- $s.url }}
{{- else }}
{{- $bucket := $s.bucket | default (((.Values.global).s3).bucket) }}
{{- if not $bucket }}{{ fail "storage: set storage.bucket (or global.s3.bucket) or storage.url: happy-end and error-end store every result and dead letter" }}{{ end }}
{{- $prefix := $s.prefix | trimAll "/" }}
{{- if $prefix }}{{ printf "s3://%s/%s" $bucket $prefix }}{{ else }}{{ printf "s3://%s" $bucket }}{{ end }}
{{- end }}
{{- end }}

{{/* Replicas of one end actor with scaling off: {root, actor} -> int */}}
{{- define "asya.crew.replicas" -}}
{{- if kindIs "invalid" .actor.replicas }}{{ .root.Values.replicaCount }}{{ else }}{{ .actor.replicas }}{{ end }}
{{- end }}

{{/* scaling with one end actor's overrides key by key (sprig's merge would turn an override `false` into the default's `true`). */}}
{{- define "asya.crew.scaling" -}}
{{- $out := deepCopy .root.Values.scaling }}
{{- range $k, $val := (.actor.scaling | default dict) }}{{ $_ := set $out $k $val }}{{ end }}
{{- toYaml $out }}
{{- end }}

{{/* The pod count a PodDisruptionBudget protects: minReplicas with scaling on, replicas otherwise. */}}
{{- define "asya.crew.steadyReplicas" -}}
{{- $scaling := include "asya.crew.scaling" . | fromYaml }}
{{- if $scaling.enabled }}{{ $scaling.minReplicas }}{{ else }}{{ include "asya.crew.replicas" . }}{{ end }}
{{- end }}

{{/* The container env of one end actor; the operator adds the transport and retry contract env itself. */}}
{{- define "asya.crew.env" -}}
{{- $root := .root }}
{{- $s := $root.Values.storage }}
{{- $g := ($root.Values.global).s3 | default dict }}
- name: ASYA_STORAGE_URL
  value: {{ include "asya.crew.storageUrl" $root | quote }}
{{- with ($s.endpoint | default $g.endpoint) }}
- name: ASYA_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with ($s.region | default $g.region) }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- $idKey := $s.accessKeyIdKey }}
{{- $secretKey := $s.secretAccessKeyKey }}
{{- if not $s.existingSecret }}
{{- $idKey = $g.accessKeyIdKey | default $idKey }}
{{- $secretKey = $g.secretAccessKeyKey | default $secretKey }}
{{- end }}
{{- with ($s.existingSecret | default $g.secretName) }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $idKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $secretKey }}
{{- end }}
- name: ASYA_HEALTH_PORT
  value: "8080"
{{- if eq .name "error-end" }}
- name: ASYA_RETRY_JITTER
  value: {{ $root.Values.retry.jitter | toString | quote }}
- name: ASYA_RETRY_NON_RETRYABLE
  value: {{ join "," $root.Values.retry.nonRetryable | quote }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with .actor.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
One end actor as an AsyncActor. Call: include "asya.crew.asyncActor" (dict "root" $ "name" "happy-end" "actor" .Values.happyEnd)
*/}}
{{- define "asya.crew.asyncActor" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $scaling := include "asya.crew.scaling" . | fromYaml }}
apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata:
  # fixed name: every sidecar routes finished and failed envelopes to asya-happy-end / asya-error-end
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "asya.crew.labels" (dict "root" $root "component" .name) | nindent 4 }}
spec:
  transport: {{ include "asya.crew.transport" $root }}
  {{- if not $scaling.enabled }}
  replicas: {{ include "asya.crew.replicas" . }}
  {{- end }}
  scaling:
    enabled: {{ $scaling.enabled }}
    minReplicas: {{ $scaling.minReplicas }}
    maxReplicas: {{ $scaling.maxReplicas }}
    queueLength: {{ $scaling.queueLength }}
    pollingInterval: {{ $scaling.pollingInterval }}
    cooldownPeriod: {{ $scaling.cooldownPeriod }}
  sidecar:
    # end actors have no sidecar: the operator gives prefetch to the crew process as ASYA_PREFETCH
    prefetch: {{ $v.prefetch }}
  timeout:
    processing: {{ $v.timeout.processing }}
    gracefulShutdown: {{ $v.timeout.gracefulShutdown }}
  {{- if eq .name "error-end" }}
  retry:
    maxAttempts: {{ $v.retry.maxAttempts }}
    backoff:
      initialSeconds: {{ $v.retry.backoff.initialSeconds }}
      maxSeconds: {{ $v.retry.backoff.maxSeconds }}
  {{- end }}
  workload:
    type: Deployment
    template:
      metadata:
        labels:
          # the operator sets app.kubernetes.io/name (the actor's name) and asya.sh/actor itself
          app.kubernetes.io/instance: {{ $root.Release.Name }}
          app.kubernetes.io/part-of: asya
          {{- with $v.podLabels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        {{- with $v.podAnnotations }}
        annotations:
          {{- toYaml . | nindent 10 }}
        {{- end }}
      spec:
        {{- with (include "asya.crew.serviceAccountName" $root) }}
        serviceAccountName: {{ . }}
        {{- end }}
        automountServiceAccountToken: false
        {{- with (include "asya.crew.imagePullSecrets" $root) }}
        imagePullSecrets:
          {{- . | nindent 10 }}
        {{- end }}
        {{- with $v.priorityClassName }}
        priorityClassName: {{ . }}
        {{- end }}
        securityContext:
          {{- toYaml $v.podSecurityContext | nindent 10 }}
        containers:
          - name: asya-crew
            image: {{ include "asya.crew.image" (dict "image" $v.image "root" $root) | quote }}
            imagePullPolicy: {{ $v.image.pullPolicy }}
            env:
              {{- include "asya.crew.env" . | trim | nindent 14 }}
            ports:
              - name: http
                containerPort: 8080
                protocol: TCP
            startupProbe:
              httpGet: {path: /healthz, port: http}
              periodSeconds: 2
              failureThreshold: 60
            livenessProbe:
              httpGet: {path: /healthz, port: http}
              periodSeconds: 10
              failureThreshold: 3
            readinessProbe:
              httpGet: {path: /readyz, port: http}
              periodSeconds: 5
              failureThreshold: 3
            resources:
              {{- toYaml (.actor.resources | default $v.resources) | nindent 14 }}
            securityContext:
              {{- toYaml $v.securityContext | nindent 14 }}
        {{- with $v.nodeSelector }}
        nodeSelector:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        {{- with $v.affinity }}
        affinity:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        {{- with $v.tolerations }}
        tolerations:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        {{- with $v.topologySpreadConstraints }}
        topologySpreadConstraints:
          {{- toYaml . | nindent 10 }}
        {{- end }}
{{- end }}
