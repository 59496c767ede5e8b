{{/* ---------- names and labels ---------- */}}

{{- define "omniroute.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "omniroute.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "omniroute.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object name of one component: (dict "root" $ "name" "edge") */}}
{{- define "omniroute.componentName" -}}
{{- printf "%s-%s" (include "omniroute.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: (dict "root" $ "component" "executor" "family" "openai") */}}
{{- define "omniroute.selectorLabels" -}}
app.kubernetes.io/name: {{ include "omniroute.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .family }}
omniroute.io/executor-family: {{ .family }}
{{- end }}
{{- end -}}

{{- define "omniroute.labels" -}}
{{ include "omniroute.selectorLabels" . }}
app.kubernetes.io/part-of: omniroute
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "omniroute.chart" .root }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "omniroute.image" -}}
{{- $cfg := .cfg | default dict -}}
{{- $img := $cfg.image | default dict -}}
{{- $repo := $img.repository | default (printf "%s/%s" .root.Values.image.registry .image) -}}
{{- $tag := $img.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{/* ---------- backing services ---------- */}}

{{/* Fullname a bitnami/nats/qdrant subchart gives itself: (dict "root" $ "chart" "redis") */}}
{{- define "omniroute.subchartFullname" -}}
{{- $sub := index .root.Values .chart | default dict -}}
{{- if $sub.fullnameOverride -}}
{{- $sub.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := $sub.nameOverride | default .chart -}}
{{- if contains $name .root.Release.Name -}}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "omniroute.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "omniroute.fullname" .) -}}
{{- end -}}

{{/* true when DATABASE_URL is composed from the bundled PostgreSQL's own Secret */}}
{{- define "omniroute.bundledDatabase" -}}
{{- if and .Values.postgresql.enabled (not .Values.secrets.databaseUrl) -}}true{{- end -}}
{{- end -}}

{{- define "omniroute.natsUrl" -}}
{{- if .Values.nats.enabled -}}
{{- printf "nats://%s:4222" (include "omniroute.subchartFullname" (dict "root" . "chart" "nats")) -}}
{{- else -}}
{{- required "externalNats.url is required when nats.enabled is false" .Values.externalNats.url -}}
{{- end -}}
{{- end -}}

{{/* Where every executor family is reachable: "family=host:port,..." (EXECUTOR_ADDRS). */}}
{{- define "omniroute.executorAddrs" -}}
{{- $addrs := list }}
{{- range $family, $fam := .Values.executor.families }}
{{- if ne (toString ($fam | default dict).enabled) "false" }}
{{- $addrs = append $addrs (printf "%s=%s" $family (include "omniroute.executorAddr" (dict "root" $ "family" $family))) }}
{{- end }}
{{- end }}
{{- join "," $addrs }}
{{- end -}}

{{/* host:port of one family's executors: (dict "root" $ "family" "openai") */}}
{{- define "omniroute.executorAddr" -}}
{{- $fam := index .root.Values.executor.families .family | default dict -}}
{{- printf "%s-headless:%v" (include "omniroute.componentName" (dict "root" .root "name" (printf "executor-%s" .family))) ($fam.port | default .root.Values.executor.port) -}}
{{- end -}}

{{/* EXECUTOR_ADDR: where a family without its own Deployment goes (executor.defaultFamily). */}}
{{- define "omniroute.defaultExecutorAddr" -}}
{{- $default := .Values.executor.defaultFamily -}}
{{- $fam := index .Values.executor.families $default -}}
{{- if or (not (hasKey .Values.executor.families $default)) (eq (toString ($fam | default dict).enabled) "false") -}}
{{- fail (printf "executor.defaultFamily %q must be one of the enabled executor.families" $default) -}}
{{- end -}}
{{- include "omniroute.executorAddr" (dict "root" . "family" $default) -}}
{{- end -}}

{{- define "omniroute.qdrantUrl" -}}
{{- if .Values.qdrant.enabled -}}
{{- printf "http://%s:6333" (include "omniroute.subchartFullname" (dict "root" . "chart" "qdrant")) -}}
{{- else -}}
{{- .Values.externalQdrant.url -}}
{{- end -}}
{{- end -}}

{{/* The router's semantic cache without a Qdrant server: Qdrant local mode on a per-pod
     emptyDir (one process per path; each router pod keeps its own cache). */}}
{{- define "omniroute.localQdrantPath" -}}/var/cache/omniroute/qdrant{{- end -}}

{{- define "omniroute.env.database" -}}
{{- if include "omniroute.bundledDatabase" . }}
{{- $pg := .Values.postgresql.auth }}
- name: OMNIROUTE_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $pg.existingSecret | default (include "omniroute.subchartFullname" (dict "root" . "chart" "postgresql")) }}
      key: {{ ($pg.secretKeys | default dict).userPasswordKey | default "password" }}
- name: DATABASE_URL
  value: {{ printf "postgresql://%s:$(OMNIROUTE_DB_PASSWORD)@%s:5432/%s" $pg.username (include "omniroute.subchartFullname" (dict "root" . "chart" "postgresql")) $pg.database | quote }}
{{- else }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "omniroute.secretName" . }}
      key: DATABASE_URL
{{- end }}
{{- end -}}

{{- define "omniroute.env.redis" -}}
{{- if .Values.redis.enabled }}
{{- $host := printf "%s-master" (include "omniroute.subchartFullname" (dict "root" . "chart" "redis")) }}
{{- if .Values.redis.auth.enabled }}
- name: OMNIROUTE_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.auth.existingSecret | default (include "omniroute.subchartFullname" (dict "root" . "chart" "redis")) }}
      key: {{ .Values.redis.auth.existingSecretPasswordKey | default "redis-password" }}
- name: REDIS_URL
  value: {{ printf "redis://:$(OMNIROUTE_REDIS_PASSWORD)@%s:6379/0" $host | quote }}
{{- else }}
- name: REDIS_URL
  value: {{ printf "redis://%s:6379/0" $host | quote }}
{{- end }}
{{- else }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "omniroute.secretName" . }}
      key: REDIS_URL
{{- end }}
{{- end -}}

{{/* An env value as a string. Numbers from values files arrive as float64: 1048576 must not
     become "1.048576e+06". */}}
{{- define "omniroute.envString" -}}
{{- if and (kindIs "float64" .) (eq (float64 .) (floor .)) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/*
Environment of one component: (dict "root" $ "component" "router" "needs" (list "db" "redis" "nats" "qdrant" "masterKey") "cfg" $cfg "vars" (dict NAME value ...))
Plain values (the chart's own, the component's `vars`, then `<service>.env`, later ones winning)
are emitted once each, sorted; a name also listed in `<service>.extraEnv` is left to extraEnv.
Kubernetes (and server-side apply) refuses duplicate names, so every name appears once.
*/}}
{{- define "omniroute.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $plain := dict
  "OMNIROUTE_ENV" $v.environment
  "OMNIROUTE_BIND" "0.0.0.0"
  "LOG_LEVEL" $v.logLevel
  "OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS" (toString $v.allowPrivateUpstreams)
  "OTEL_SERVICE_NAME" (printf "omniroute-%s" .component)
  "OMNIROUTE_METRICS_PORT" (toString $v.metrics.port)
  "OTEL_EXPORTER_PROMETHEUS_HOST" "0.0.0.0"
  "OTEL_EXPORTER_PROMETHEUS_PORT" (toString $v.metrics.port)
  "OTEL_METRICS_EXPORTER" (ternary $v.metrics.exporter "none" (and $v.metrics.enabled (not (empty $v.metrics.exporter)))) -}}
{{- if .cfg.terminationGracePeriodSeconds }}
{{- /* How long SIGTERM may drain in-flight streams: grace period less the preStop sleep and a margin. */}}
{{- $_ := set $plain "OMNIROUTE_DRAIN_S" (toString (max 1 (sub (int .cfg.terminationGracePeriodSeconds) (add (int $v.preStopSleepSeconds) 5)))) }}
{{- end }}
{{- if has "nats" .needs }}
{{- $_ := set $plain "NATS_URL" (include "omniroute.natsUrl" $root) }}
{{- end }}
{{- if has "qdrant" .needs }}
{{- $_ := set $plain "QDRANT_URL" (include "omniroute.qdrantUrl" $root | default (include "omniroute.localQdrantPath" $root)) }}
{{- end }}
{{- $attrs := list "service.namespace=omniroute" (printf "service.version=%s" $root.Chart.AppVersion) "k8s.pod.name=$(POD_NAME)" "k8s.namespace.name=$(POD_NAMESPACE)" }}
{{- range $k, $val := $v.otel.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%v" $k $val) }}
{{- end }}
{{- $_ := set $plain "OTEL_RESOURCE_ATTRIBUTES" (join "," $attrs) }}
{{- if $v.otel.enabled }}
{{- $_ := set $plain "OTEL_TRACES_EXPORTER" "otlp" }}
{{- $_ := set $plain "OTEL_EXPORTER_OTLP_ENDPOINT" $v.otel.endpoint }}
{{- $_ := set $plain "OTEL_EXPORTER_OTLP_PROTOCOL" $v.otel.protocol }}
{{- $_ := set $plain "OTEL_TRACES_SAMPLER" $v.otel.tracesSampler }}
{{- $_ := set $plain "OTEL_TRACES_SAMPLER_ARG" $v.otel.tracesSamplerArg }}
{{- else }}
{{- $_ := set $plain "OTEL_TRACES_EXPORTER" "none" }}
{{- end }}
{{- range $k, $val := (.vars | default dict) }}
{{- $_ := set $plain $k (include "omniroute.envString" $val) }}
{{- end }}
{{- range $k, $val := (.cfg.env | default dict) }}
{{- $_ := set $plain $k (include "omniroute.envString" $val) }}
{{- end }}
{{- range $e := (.cfg.extraEnv | default list) }}
{{- $_ := unset $plain $e.name }}
{{- end -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- if has "db" .needs }}
{{- include "omniroute.env.database" $root }}
{{- end }}
{{- if has "redis" .needs }}
{{- include "omniroute.env.redis" $root }}
{{- end }}
{{- if has "masterKey" .needs }}
- name: OMNIROUTE_MASTER_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "omniroute.secretName" $root }}
      key: OMNIROUTE_MASTER_KEY
{{- end }}
{{- with .secretEnv }}
{{ . }}
{{- end }}
{{- range $k := keys $plain | sortAlpha }}
- name: {{ $k }}
  value: {{ index $plain $k | quote }}
{{- end }}
{{- with .cfg.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* ---------- pod pieces ---------- */}}

{{- define "omniroute.topologySpread" -}}
{{- if .cfg.topologySpreadConstraints }}
{{- toYaml .cfg.topologySpreadConstraints }}
{{- else if .root.Values.topologySpread.enabled }}
{{- range $key := list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
- maxSkew: {{ $.root.Values.topologySpread.maxSkew }}
  topologyKey: {{ $key }}
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "omniroute.selectorLabels" $ | nindent 6 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* HTTP (edge, admin, accounting, analytics) or gRPC (router, executor) probes on the
     named container port. */}}
{{- define "omniroute.probes" -}}
startupProbe:
  {{- if eq .protocol "grpc" }}
  grpc:
    port: {{ .cfg.port }}
  {{- else }}
  httpGet:
    path: /healthz
    port: {{ .portName }}
  {{- end }}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  {{- if eq .protocol "grpc" }}
  grpc:
    port: {{ .cfg.port }}
  {{- else }}
  httpGet:
    path: /healthz
    port: {{ .portName }}
  {{- end }}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  {{- if eq .protocol "grpc" }}
  grpc:
    port: {{ .cfg.port }}
  {{- else }}
  httpGet:
    path: /readyz
    port: {{ .portName }}
  {{- end }}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/*
One service: ServiceAccount, Deployment, Service(s), HPA, PDB.
(dict "root" $ "component" "edge" "name" "edge" "family" "" "image" "edge"
      "protocol" "http|grpc" "portName" "http|grpc|health" "exposePort" true
      "portEnv" "OMNIROUTE_PORT" "sessionPort" 50052 "args" (list) "needs" (list ...) "cfg" $cfg
      "vars" (dict NAME value) "secretEnv" "<EnvVar yaml with valueFrom>"
      "volumes" "<yaml>" "volumeMounts" "<yaml>" "checksums" (list ...) "headless" false)
sessionPort (router, executor): the plain-TCP port of the session streams — a `sessions`
container/Service port and OMNIROUTE_HOP_TCP_PORT; clients learn it from the gRPC port and
connect to the pod's address. Components without one render no such port.
*/}}
{{- define "omniroute.workload" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $cfg := .cfg -}}
{{- $name := include "omniroute.componentName" (dict "root" $root "name" .name) -}}
{{- $sel := dict "root" $root "component" .component "family" .family -}}
{{- $metricsPort := int $v.metrics.port -}}
{{- if $v.serviceAccount.create }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "omniroute.labels" $sel | nindent 4 }}
  {{- with $v.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "omniroute.labels" $sel | nindent 4 }}
spec:
  {{- if not $cfg.autoscaling.enabled }}
  replicas: {{ $cfg.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  selector:
    matchLabels:
      {{- include "omniroute.selectorLabels" $sel | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "omniroute.labels" $sel | nindent 8 }}
        {{- with $cfg.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- if $v.metrics.podAnnotations }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $metricsPort | quote }}
        prometheus.io/path: /metrics
        {{- end }}
        {{- range .checksums }}
        checksum/{{ . }}: {{ include (print $root.Template.BasePath "/" . ".yaml") $root | sha256sum }}
        {{- end }}
        {{- with $cfg.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ if $v.serviceAccount.create }}{{ $name }}{{ else }}default{{ end }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $cfg.terminationGracePeriodSeconds }}
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml ($cfg.podSecurityContext | default $v.podSecurityContext) | nindent 8 }}
      {{- $spread := include "omniroute.topologySpread" (dict "root" $root "component" .component "family" .family "cfg" $cfg) }}
      {{- if $spread }}
      topologySpreadConstraints:
        {{- $spread | trim | nindent 8 }}
      {{- end }}
      {{- with ($cfg.nodeSelector | default $v.nodeSelector) }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with ($cfg.tolerations | default $v.tolerations) }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with ($cfg.affinity | default $v.affinity) }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "omniroute.image" (dict "root" $root "cfg" $cfg "image" .image) }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          {{- with .args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            - name: {{ .portName }}
              containerPort: {{ $cfg.port }}
              protocol: TCP
            {{- with .sessionPort }}
            - name: sessions
              containerPort: {{ . }}
              protocol: TCP
            {{- end }}
            - name: metrics
              containerPort: {{ $metricsPort }}
              protocol: TCP
          env:
            {{- $vars := deepCopy (.vars | default dict) }}
            {{- if .portEnv }}
            {{- $_ := set $vars .portEnv (toString $cfg.port) }}
            {{- end }}
            {{- with .sessionPort }}
            {{- $_ := set $vars "OMNIROUTE_HOP_TCP_PORT" . }}
            {{- end }}
            {{- include "omniroute.env" (dict "root" $root "component" .component "needs" .needs "cfg" $cfg "vars" $vars "secretEnv" .secretEnv) | nindent 12 }}
          {{- include "omniroute.probes" (dict "protocol" .protocol "portName" .portName "cfg" $cfg) | nindent 10 }}
          lifecycle:
            preStop:
              exec:
                command: ["sleep", {{ $v.preStopSleepSeconds | quote }}]
          resources:
            {{- toYaml $cfg.resources | nindent 12 }}
          securityContext:
            {{- toYaml ($cfg.securityContext | default $v.securityContext) | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- with .volumeMounts }}
            {{- . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 256Mi
        {{- with .volumes }}
        {{- . | nindent 8 }}
        {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "omniroute.labels" $sel | nindent 4 }}
    omniroute.io/metrics: "true"
  {{- with ($cfg.service | default dict).annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ ($cfg.service | default dict).type | default "ClusterIP" }}
  selector:
    {{- include "omniroute.selectorLabels" $sel | nindent 4 }}
  ports:
    - name: {{ .portName }}
      port: {{ $cfg.port }}
      targetPort: {{ .portName }}
      protocol: TCP
      {{- if eq .protocol "grpc" }}
      appProtocol: grpc
      {{- else }}
      appProtocol: http
      {{- end }}
    {{- with .sessionPort }}
    - name: sessions
      port: {{ . }}
      targetPort: sessions
      protocol: TCP
    {{- end }}
    - name: metrics
      port: {{ $metricsPort }}
      targetPort: metrics
      protocol: TCP
{{- if .headless }}
---
# Headless: gRPC clients resolve every pod address (round_robin balancing across replicas);
# session-stream clients connect to those addresses' `sessions` port.
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}-headless
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "omniroute.labels" $sel | nindent 4 }}
spec:
  clusterIP: None
  publishNotReadyAddresses: false
  selector:
    {{- include "omniroute.selectorLabels" $sel | nindent 4 }}
  ports:
    - name: {{ .portName }}
      port: {{ $cfg.port }}
      targetPort: {{ .portName }}
      protocol: TCP
      appProtocol: grpc
    {{- with .sessionPort }}
    - name: sessions
      port: {{ . }}
      targetPort: sessions
      protocol: TCP
    {{- end }}
{{- end }}
{{- if $cfg.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "omniroute.labels" $sel | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $cfg.autoscaling.minReplicas }}
  maxReplicas: {{ $cfg.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $cfg.autoscaling.targetCPUUtilizationPercentage }}
    {{- with $cfg.autoscaling.metrics }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  behavior:
    scaleDown:
      # Long streams: scale down slowly, one pod at a time.
      stabilizationWindowSeconds: 300
      policies:
        - type: Pods
          value: 1
          periodSeconds: 60
{{- end }}
{{- if $cfg.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "omniroute.labels" $sel | nindent 4 }}
spec:
  {{- if hasKey $cfg.pdb "minAvailable" }}
  minAvailable: {{ $cfg.pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $cfg.pdb.maxUnavailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "omniroute.selectorLabels" $sel | nindent 6 }}
{{- end }}
{{- end -}}
