{{/* The release's name prefix for every object. */}}
{{- define "uptake.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries; `component` names the service. */}}
{{- define "uptake.labels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "uptake.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "uptake.image" -}}
{{ .root.Values.image.registry }}uptake-{{ .image }}:{{ .root.Values.image.tag }}
{{- end -}}

{{- define "uptake.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "uptake.fullname" .)) -}}
{{- end -}}

{{/* The pod security every uptake container runs with: the images are FROM scratch, user 65534. */}}
{{- define "uptake.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65534
  runAsGroup: 65534
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "uptake.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end -}}

{{/* Liveness on /healthz, readiness on /readyz, both on the admin port. */}}
{{- define "uptake.probes" -}}
livenessProbe:
  httpGet: { path: /healthz, port: {{ .port }} }
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet: { path: /readyz, port: {{ .port }} }
  periodSeconds: 5
  failureThreshold: 2
{{- end -}}


{{/* aggregator.toml: Kafka and ClickHouse from the values, then `aggregator.extraConfig`. */}}
{{- define "uptake.aggregatorToml" -}}
[kafka]
brokers = {{ .Values.kafka.brokers | quote }}
events_topic = {{ .Values.kafka.eventsTopic | quote }}
dlq_topic = {{ .Values.kafka.dlqTopic | quote }}
alerts_topic = {{ .Values.kafka.alertsTopic | quote }}
suppressions_topic = {{ .Values.kafka.suppressionsTopic | quote }}

[clickhouse]
url = {{ .Values.clickhouse.url | quote }}
database = {{ .Values.clickhouse.database | quote }}
user = {{ .Values.clickhouse.user | quote }}
{{- with .Values.clickhouse.cluster }}
cluster = {{ . | quote }}
{{- end }}
{{- with .Values.clickhouse.failoverUrls }}
failover_urls = [{{ range $i, $u := . }}{{ if $i }}, {{ end }}{{ $u | quote }}{{ end }}]
{{- end }}
{{- with .Values.aggregator.extraConfig }}
{{ . }}
{{- end }}
{{- end -}}

{{/* The config volume (the ConfigMap at /etc/uptake) and a writable /tmp. */}}
{{- define "uptake.volumes" -}}
volumes:
  - name: config
    configMap:
      name: {{ include "uptake.fullname" . }}-config
  - name: tmp
    emptyDir: {}
{{- end -}}

{{- define "uptake.volumeMounts" -}}
volumeMounts:
  - name: config
    mountPath: /etc/uptake
    readOnly: true
  - name: tmp
    mountPath: /tmp
{{- end -}}

{{/* An environment variable from the chart's (or the existing) Secret. */}}
{{- define "uptake.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "uptake.secretName" .root }}
      key: {{ .key }}
{{- end -}}
