{{/* Names, labels and image references shared by every template. */}}

{{- define "rtpengine-k8s.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rtpengine-k8s.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "rtpengine-k8s.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "rtpengine-k8s.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rtpengine-k8s.labels" -}}
app.kubernetes.io/name: {{ include "rtpengine-k8s.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "rtpengine-k8s.selector.rtpengine" -}}
app.kubernetes.io/name: {{ include "rtpengine-k8s.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: rtpengine
{{- end -}}

{{- define "rtpengine-k8s.selector.allocator" -}}
app.kubernetes.io/name: {{ include "rtpengine-k8s.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: allocator
{{- end -}}

{{- define "rtpengine-k8s.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The image with Debian's rtpengine-daemon (Dockerfile target runtime-exec). */}}
{{- define "rtpengine-k8s.execImage" -}}
{{- printf "%s:%s" .Values.image.repository (default (printf "%s-exec" .Chart.AppVersion) .Values.image.execTag) -}}
{{- end -}}

{{- define "rtpengine-k8s.rtpengineImage" -}}
{{- if .Values.rtpengine.image.repository -}}
{{- printf "%s:%s" .Values.rtpengine.image.repository (default "latest" .Values.rtpengine.image.tag) -}}
{{- else -}}
{{- include "rtpengine-k8s.execImage" . -}}
{{- end -}}
{{- end -}}

{{- define "rtpengine-k8s.nadName" -}}
{{- printf "%s-media" (include "rtpengine-k8s.fullname" .) -}}
{{- end -}}

{{/* Pod identity from the downward API (sidecar, allocator). */}}
{{- define "rtpengine-k8s.downwardEnv" -}}
- name: POD_NAME
  valueFrom: { fieldRef: { fieldPath: metadata.name } }
- name: POD_NAMESPACE
  valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
- name: POD_UID
  valueFrom: { fieldRef: { fieldPath: metadata.uid } }
- name: NODE_NAME
  valueFrom: { fieldRef: { fieldPath: spec.nodeName } }
{{- end -}}

{{/* terminationGracePeriodSeconds: the drain deadline plus the margin for delete-delay and exit. */}}
{{- define "rtpengine-k8s.gracePeriod" -}}
{{- add .Values.sidecar.drainDeadlineSeconds .Values.sidecar.drainMarginSeconds -}}
{{- end -}}

{{/* The preStop hook: drain through the sidecar's control port (loopback) and wait until the
     last call is gone or the sidecar's deadline passes. */}}
{{- define "rtpengine-k8s.preStopDrain" -}}
exec:
  command: ["rtpengine-k8s", "drain", "--wait", {{ printf "--url=http://127.0.0.1:%d" (int .Values.sidecar.httpPort) | quote }}]
{{- end -}}
