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

{{/* The exec preStop hook: drain through the sidecar's control port (loopback, where POST /drain
     is accepted) and wait until the last call is gone or the sidecar's deadline passes. Needs the
     rtpengine-k8s binary in the container it runs in. */}}
{{- define "rtpengine-k8s.preStopDrain" -}}
exec:
  command: ["rtpengine-k8s", "drain", "--wait", {{ printf "--url=http://127.0.0.1:%d" (int .Values.sidecar.controlPort) | quote }}]
{{- end -}}

{{/* Whether this release's sidecar serves the blocking GET /drain/wait that an httpGet preStop
     needs (ADR 0053). test/chart/chart.test.ts asks a real control server and fails when this
     answer is stale. */}}
{{- define "rtpengine-k8s.sidecarServesDrainWait" -}}true{{- end -}}

{{/* How the rtpengine container (config mode) waits for the drain: "exec" or "httpGet". auto =
     exec for this chart's image, httpGet for a custom one: that image lacks the rtpengine-k8s
     binary, so an exec hook would fail at once and rtpengine would get TERM with its calls
     (ADR 0053). httpGet is refused while the sidecar does not serve GET /drain/wait. */}}
{{- define "rtpengine-k8s.rtpenginePreStopMode" -}}
{{- $mode := .Values.rtpengine.preStop -}}
{{- $custom := ne .Values.rtpengine.image.repository "" -}}
{{- $served := eq (include "rtpengine-k8s.sidecarServesDrainWait" .) "true" -}}
{{- if eq $mode "auto" -}}
{{- $mode = ternary "httpGet" "exec" $custom -}}
{{- if and $custom (not $served) -}}
{{- fail (printf "rtpengine.image.repository=%s: the default preStop runs `rtpengine-k8s drain --wait` inside the rtpengine container, which a custom image does not contain (the hook would fail and rtpengine would get SIGTERM with its calls). Set rtpengine.preStop=exec if the image is built FROM this chart's image, or rtpengine.preStop=httpGet (image-independent; needs a sidecar serving GET /drain/wait)" .Values.rtpengine.image.repository) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $mode "httpGet") (not $served) -}}
{{- fail "rtpengine.preStop=httpGet needs the sidecar's blocking GET /drain/wait, which this release's sidecar does not serve yet: use this chart's rtpengine image with rtpengine.preStop=auto|exec (docs/adr/0053)" -}}
{{- end -}}
{{- $mode -}}
{{- end -}}

{{/* The rtpengine container's preStop hook (config mode). */}}
{{- define "rtpengine-k8s.rtpenginePreStop" -}}
{{- if eq (include "rtpengine-k8s.rtpenginePreStopMode" .) "httpGet" -}}
# Sent by the kubelet to the pod IP and held open until the drain is over (or the grace period
# ends). A port number: the kubelet resolves a hook's named port in this container only.
httpGet:
  path: /drain/wait
  port: {{ .Values.sidecar.controlPort }}
{{- else -}}
{{- include "rtpengine-k8s.preStopDrain" . -}}
{{- end -}}
{{- end -}}

{{/* The allocator's store options: the allocator DaemonSet and the uninstall cleanup Job
     (`ctl cleanup --yes`) both use exactly these, so the cleanup frees what the allocators wrote. */}}
{{- define "rtpengine-k8s.allocatorStoreEnv" -}}
- name: RTPE_K8S_STORE
  value: {{ .Values.allocator.store | quote }}
- name: RTPE_K8S_POOLS
  value: {{ toJson .Values.pools | quote }}
- name: RTPE_K8S_IP_MODE
  value: {{ .Values.allocator.ipMode | quote }}
{{- if eq .Values.allocator.ipMode "network-status" }}
- name: RTPE_K8S_NETWORK_STATUS_INTERFACE
  value: {{ .Values.multus.interfaceName | quote }}
{{- end }}
{{- if eq .Values.allocator.store "kubernetes" }}
# Leases live beside the rtpengine pods so they can be owner-referenced to them.
- name: RTPE_K8S_LEASE_NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: RTPE_K8S_POOL_NAMESPACE
  value: {{ .Values.allocator.ippoolNamespace | quote }}
{{- end }}
{{- end -}}
