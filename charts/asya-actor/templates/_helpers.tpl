{{/*
Names, labels and the per-actor merge of the asya-actor chart. Defines are global across an
umbrella and its subcharts, so every name here starts with "asya.actor.".
*/}}

{{- define "asya.actor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "asya.actor.fullname" -}}
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

{{- define "asya.actor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Call: include "asya.actor.labels" (dict "root" $ "component" "<actor>") */}}
{{- define "asya.actor.labels" -}}
helm.sh/chart: {{ include "asya.actor.chart" .root }}
app.kubernetes.io/name: {{ include "asya.actor.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: asya
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- define "asya.actor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "asya.actor.fullname" .) .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Env lists merged by name, first-seen order kept, later entries win. Call with a list of lists. */}}
{{- define "asya.actor.mergeEnv" -}}
{{- $order := list }}
{{- $byName := dict }}
{{- range . }}
{{- range . }}
{{- if not (hasKey $byName .name) }}{{ $order = append $order .name }}{{ end }}
{{- $_ := set $byName .name . }}
{{- end }}
{{- end }}
{{- $out := list }}
{{- range $order }}{{ $out = append $out (get $byName .) }}{{ end }}
{{- toYaml (dict "env" $out) }}
{{- end }}

{{/* An image reference: a string as written; a mapping {registry, repository, tag} with global.imageRegistry winning. */}}
{{- define "asya.actor.image" -}}
{{- $img := .image }}
{{- if kindIs "map" $img }}
{{- $registry := $img.registry | default "" }}
{{- with (.root.Values.global).imageRegistry }}{{ $registry = . }}{{ end }}
{{- $ref := $img.repository | default "" }}
{{- if not $ref }}{{ fail (printf "actors[%s].image.repository: required" .actor) }}{{ end }}
{{- if $registry }}{{ $ref = printf "%s/%s" $registry $ref }}{{ end }}
{{- with $img.tag }}{{ $ref = printf "%s:%v" $ref . }}{{ end }}
{{- $ref }}
{{- else if $img }}
{{- $img }}
{{- else }}
{{- fail (printf "actors[%s].image: required (set it on the actor or in defaults.image): the image with your handler" .actor) }}
{{- end }}
{{- end }}

{{/* The pod count a PodDisruptionBudget protects: minReplicas with scaling on, replicas otherwise. */}}
{{- define "asya.actor.steadyReplicas" -}}
{{- if .scaling.enabled }}{{ .scaling.minReplicas | int }}{{ else }}{{ .replicas | int }}{{ end }}
{{- end }}

{{/*
The actors after validation, each merged over `defaults`, as YAML {actors: [...]}. Every
template ranges over this one list, so they cannot disagree.
*/}}
{{- define "asya.actor.resolved" -}}
{{- $seen := dict }}
{{- $out := list }}
{{- range $i, $a := .Values.actors }}
{{- if not $a.name }}{{ fail (printf "actors[%d].name: required" $i) }}{{ end }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $a.name) }}
{{- fail (printf "actors[%d].name %q: must be a DNS-1123 label (lowercase letters, digits, '-'); it names the queue asya-<name>" $i $a.name) }}
{{- end }}
{{- if gt (len $a.name) 58 }}
{{- fail (printf "actors[%d].name %q: at most 58 characters, so the queue name asya-<name> stays a 63-character label" $i $a.name) }}
{{- end }}
{{- if has $a.name (list "happy-end" "error-end") }}
{{- fail (printf "actors[%d].name %q: reserved for the end actors of the asya-crew chart" $i $a.name) }}
{{- end }}
{{- if hasKey $seen $a.name }}{{ fail (printf "actors[%d].name %q: declared twice" $i $a.name) }}{{ end }}
{{- $_ := set $seen $a.name true }}
{{- if not $a.handler }}{{ fail (printf "actors[%s].handler: required (module.function or module.Class.method)" $a.name) }}{{ end }}
{{- /* mergeOverwrite, not merge: merge would let a default `true` beat an actor's `scaling.enabled: false` */}}
{{- $m := mergeOverwrite (deepCopy $.Values.defaults) (deepCopy $a) }}
{{- $env := include "asya.actor.mergeEnv" (list ($.Values.defaults.env | default list) ($a.env | default list)) | fromYaml }}
{{- $_ := set $m "env" $env.env }}
{{- $senv := include "asya.actor.mergeEnv" (list ((($.Values.defaults).sidecar).env | default list) ((($a.sidecar) | default dict).env | default list)) | fromYaml }}
{{- $_ := set $m.sidecar "env" $senv.env }}
{{- $_ := set $m "transport" ($m.transport | default ((($.Values.global).transport).name)) }}
{{- if not $m.transport }}{{ fail (printf "actors[%s].transport: set it, defaults.transport or global.transport.name" $a.name) }}{{ end }}
{{- if and $m.scaling.enabled (gt (int $m.scaling.minReplicas) (int $m.scaling.maxReplicas)) }}
{{- fail (printf "actors[%s].scaling: minReplicas (%v) is above maxReplicas (%v)" $a.name $m.scaling.minReplicas $m.scaling.maxReplicas) }}
{{- end }}
{{- $_ := set $m "imageRef" (include "asya.actor.image" (dict "image" $m.image "root" $ "actor" $a.name)) }}
{{- $out = append $out $m }}
{{- end }}
{{- toYaml (dict "actors" $out) }}
{{- end }}

{{- define "asya.actor.imagePullSecrets" -}}
{{- $names := list }}
{{- range (concat ((.root.Values.global).imagePullSecrets | default list) (.actor.imagePullSecrets | default list)) }}
{{- $n := . }}
{{- if kindIs "map" . }}{{ $n = .name }}{{ end }}
{{- if not (has $n $names) }}{{ $names = append $names $n }}{{ end }}
{{- end }}
{{- $out := list }}
{{- range $names }}{{ $out = append $out (dict "name" .) }}{{ end }}
{{- toYaml (dict "list" $out) }}
{{- end }}

{{/* The AsyncActor spec of one resolved actor, as a dict rendered with toYaml. */}}
{{- define "asya.actor.spec" -}}
{{- $a := .actor }}
{{- $root := .root }}
{{- $container := dict "name" "asya-runtime" "image" $a.imageRef "imagePullPolicy" $a.imagePullPolicy }}
{{- $handlerEnv := list (dict "name" "ASYA_HANDLER" "value" $a.handler) (dict "name" "ASYA_HANDLER_MODE" "value" $a.handlerMode) }}
{{- $env := include "asya.actor.mergeEnv" (list $handlerEnv $a.env) | fromYaml }}
{{- $_ := set $container "env" $env.env }}
{{- with $a.resources }}{{ $_ := set $container "resources" . }}{{ end }}
{{- with $a.securityContext }}{{ $_ := set $container "securityContext" . }}{{ end }}
{{- with $a.volumeMounts }}{{ $_ := set $container "volumeMounts" . }}{{ end }}
{{- $pod := dict "containers" (list $container) "automountServiceAccountToken" false }}
{{- $sa := $a.serviceAccountName | default (include "asya.actor.serviceAccountName" $root) }}
{{- with $sa }}{{ $_ := set $pod "serviceAccountName" . }}{{ end }}
{{- $pull := include "asya.actor.imagePullSecrets" (dict "root" $root "actor" $a) | fromYaml }}
{{- with $pull.list }}{{ $_ := set $pod "imagePullSecrets" . }}{{ end }}
{{- with $a.podSecurityContext }}{{ $_ := set $pod "securityContext" . }}{{ end }}
{{- with $a.volumes }}{{ $_ := set $pod "volumes" . }}{{ end }}
{{- with $a.nodeSelector }}{{ $_ := set $pod "nodeSelector" . }}{{ end }}
{{- with $a.tolerations }}{{ $_ := set $pod "tolerations" . }}{{ end }}
{{- with $a.affinity }}{{ $_ := set $pod "affinity" . }}{{ end }}
{{- with $a.topologySpreadConstraints }}{{ $_ := set $pod "topologySpreadConstraints" . }}{{ end }}
{{- with $a.priorityClassName }}{{ $_ := set $pod "priorityClassName" . }}{{ end }}
{{- /* the operator sets app.kubernetes.io/name (= the actor) and asya.sh/actor on the pods itself */}}
{{- $podLabels := merge (dict "app.kubernetes.io/instance" $root.Release.Name "app.kubernetes.io/part-of" "asya") ($a.podLabels | default dict) }}
{{- $meta := dict "labels" $podLabels }}
{{- with $a.podAnnotations }}{{ $_ := set $meta "annotations" . }}{{ end }}
{{- $workload := dict "type" $a.workloadType "pythonExecutable" $a.pythonExecutable "template" (dict "metadata" $meta "spec" $pod) }}
{{- $scaling := pick $a.scaling "enabled" "minReplicas" "maxReplicas" "queueLength" "pollingInterval" "cooldownPeriod" "advanced" "behavior" }}
{{- $sidecar := dict "prefetch" $a.sidecar.prefetch }}
{{- with $a.sidecar.image }}{{ $_ := set $sidecar "image" . }}{{ end }}
{{- with $a.sidecar.imagePullPolicy }}{{ $_ := set $sidecar "imagePullPolicy" . }}{{ end }}
{{- with $a.sidecar.resources }}{{ $_ := set $sidecar "resources" . }}{{ end }}
{{- with $a.sidecar.env }}{{ $_ := set $sidecar "env" . }}{{ end }}
{{- $spec := dict "transport" $a.transport "scaling" $scaling "sidecar" $sidecar "timeout" $a.timeout "retry" $a.retry "queue" (dict "deletionPolicy" $a.queueDeletionPolicy) "workload" $workload }}
{{- if not $a.scaling.enabled }}{{ $_ := set $spec "replicas" $a.replicas }}{{ end }}
{{- toYaml $spec }}
{{- end }}
