{{/* The sidecar container: as a native sidecar (init container, restartPolicy Always), a plain
     container beside rtpengine, or alone in exec mode. */}}
{{- define "rtpengine-k8s.sidecarContainer" -}}
{{- $exec := eq .Values.rtpengine.mode "exec" -}}
{{- $native := and (not $exec) .Values.rtpengine.nativeSidecar -}}
{{- /* rtpengine's options: delete-delay from values (the drain counts it), then the extras. */ -}}
{{- $opts := dict "delete-delay" .Values.rtpengine.deleteDelaySeconds -}}
{{- range $k, $v := .Values.rtpengine.extraOptions }}{{ $_ := set $opts $k $v }}{{ end -}}
- name: sidecar
  image: {{ if $exec }}{{ include "rtpengine-k8s.execImage" . }}{{ else }}{{ include "rtpengine-k8s.image" . }}{{ end }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if $native }}
  restartPolicy: Always
  {{- end }}
  args: ["sidecar"]
  env:
    {{- include "rtpengine-k8s.downwardEnv" . | nindent 4 }}
    - name: RTPE_K8S_LOG_LEVEL
      value: {{ .Values.logLevel | quote }}
    - name: RTPE_K8S_ALLOCATOR_SOCKET
      value: {{ printf "%s/allocator.sock" .Values.socketDir | quote }}
    # This pod's projected token (volume allocator-token): the allocator checks every Acquire,
    # Renew and Release comes from the pod it names (kubernetes store; ignored by the file store).
    - name: RTPE_K8S_ALLOCATOR_TOKEN_FILE
      value: "/var/run/secrets/rtpengine-k8s/allocator-token/token"
    - name: RTPE_K8S_POOLS
      value: {{ (index .Values.pools 0).name | quote }}
    - name: RTPE_K8S_RTPENGINE_MODE
      value: {{ .Values.rtpengine.mode | quote }}
    - name: RTPE_K8S_RTPENGINE_CONFIG
      value: "/etc/rtpengine-k8s/rtpengine.conf"
    - name: RTPE_K8S_RTPENGINE_OPTIONS
      value: {{ toJson $opts | quote }}
    # The shared node directory: files are per pod UID (sidecar-<uid>.json, rtpengine-<uid>.pid),
    # so `rtpengine-k8s status` in any pod that mounts it lists the node's sidecars.
    - name: RTPE_K8S_RUN_DIR
      value: {{ .Values.socketDir | quote }}
    - name: RTPE_K8S_PORT_MIN
      value: {{ .Values.rtpengine.portMin | quote }}
    - name: RTPE_K8S_PORT_MAX
      value: {{ .Values.rtpengine.portMax | quote }}
    {{- with .Values.rtpengine.advertisedAddress }}
    - name: RTPE_K8S_ADVERTISED_ADDRESS
      value: {{ . | quote }}
    {{- end }}
    - name: RTPE_K8S_REQUIRE_KERNEL
      value: {{ .Values.rtpengine.requireKernel | quote }}
    # reserved: the allocator reserved the IP and the sidecar adds it; cni: Multus/whereabouts did.
    - name: RTPE_K8S_MEDIA_ADDRESS_MODE
      value: {{ ternary "cni" "reserved" (eq .Values.allocator.ipMode "network-status") | quote }}
    - name: RTPE_K8S_MEDIA_INTERFACE
      value: {{ ternary .Values.multus.interfaceName .Values.rtpengine.interface .Values.multus.enabled | quote }}
    - name: RTPE_K8S_NG_LISTEN
      value: {{ printf "0.0.0.0:%d" (int .Values.sidecar.ngPort) | quote }}
    - name: RTPE_K8S_NG_UPSTREAM
      value: {{ printf "127.0.0.1:%d" (int .Values.sidecar.upstreamPort) | quote }}
    {{- with .Values.sidecar.allowedSources }}
    - name: RTPE_K8S_NG_ALLOW_CIDRS
      value: {{ join "," . | quote }}
    {{- end }}
    # Every address of the pod: kamailio-sync reads GET /status on the pod IP (port "control").
    # POST /drain stays loopback-only (RTPE_K8S_CONTROL_REMOTE_DRAIN is never set here).
    - name: RTPE_K8S_CONTROL_LISTEN
      value: {{ printf "0.0.0.0:%d" (int .Values.sidecar.controlPort) | quote }}
    - name: RTPE_K8S_DELETE_DELAY_SECONDS
      value: {{ .Values.rtpengine.deleteDelaySeconds | quote }}
    - name: RTPE_K8S_DRAIN_DEADLINE_SECONDS
      value: {{ .Values.sidecar.drainDeadlineSeconds | quote }}
    - name: RTPE_K8S_DRAIN_LINGER_SECONDS
      value: {{ .Values.sidecar.drainLingerSeconds | quote }}
    - name: RTPE_K8S_DELETION_COST
      value: {{ .Values.sidecar.deletionCost.enabled | quote }}
    - name: RTPE_K8S_DELETION_COST_INTERVAL_SECONDS
      value: {{ .Values.sidecar.deletionCost.minIntervalSeconds | quote }}
    {{- if .Values.rtpengine.persistence.enabled }}
    # Call persistence: the pod's own Redis container (db 0); rtpengine gets --redis/--redis-write.
    - name: RTPE_K8S_PERSISTENCE_REDIS
      value: {{ printf "redis://127.0.0.1:%d/0" (int .Values.rtpengine.persistence.port) | quote }}
    {{- end }}
    {{- with .Values.sidecar.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: ng
      containerPort: {{ .Values.sidecar.ngPort }}
      protocol: UDP
    - name: control
      containerPort: {{ .Values.sidecar.controlPort }}
      protocol: TCP
  {{- if $native }}
  # Passes once the allocation is held and rtpengine.conf is written; rtpengine starts after it.
  startupProbe:
    exec:
      command: ["test", "-s", "/etc/rtpengine-k8s/rtpengine.conf"]
    periodSeconds: 1
    failureThreshold: 300
  {{- end }}
  livenessProbe:
    httpGet: { path: /healthz, port: control }
    periodSeconds: 10
    failureThreshold: 3
  readinessProbe:
    # Ready = rtpengine answers ping and the pod is not draining. Three misses in a row, not one:
    # a not-Ready pod is the first removed on scale-in whatever its deletion cost, and
    # kamailio-sync drops it from Kamailio's set (ADR 0054).
    httpGet: { path: /readyz, port: control }
    periodSeconds: 2
    timeoutSeconds: 1
    failureThreshold: 3
    successThreshold: 1
  {{- if not $native }}
  lifecycle:
    preStop:
      # As a plain container (or alone, in exec mode) TERM order is not defined: the sidecar
      # itself must wait for the calls to end.
      {{- include "rtpengine-k8s.preStopDrain" . | nindent 6 }}
  {{- end }}
  securityContext:
    # uid 0 for iptables-restore and `ip addr`; NET_ADMIN covers both, inside this pod's own
    # network namespace only. No privileged mode, no host network.
    runAsUser: 0
    runAsNonRoot: false
    allowPrivilegeEscalation: false
    capabilities:
      drop: ["ALL"]
      add: {{ toJson (concat (list "NET_ADMIN") .Values.sidecar.extraCapabilities) }}
  volumeMounts:
    - name: config
      mountPath: /etc/rtpengine-k8s
    - name: allocator-socket
      mountPath: {{ .Values.socketDir }}
    # The allocator authenticates its callers with this token (TokenReview, audience
    # rtpengine-k8s-allocator); only the sidecar mounts it.
    - name: allocator-token
      mountPath: /var/run/secrets/rtpengine-k8s/allocator-token
      readOnly: true
  resources:
    {{- toYaml .Values.sidecar.resources | nindent 4 }}
{{- end -}}

{{/* Call persistence: the pod's Redis, a native sidecar started before the rtpengine-k8s sidecar
     (its startup probe gates it) and stopped after it. Nothing on disk: it lives as long as the pod. */}}
{{- define "rtpengine-k8s.redisContainer" -}}
{{- $p := .Values.rtpengine.persistence -}}
{{- $port := printf "%d" (int $p.port) -}}
- name: redis
  image: {{ printf "%s:%s" $p.image.repository $p.image.tag | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  restartPolicy: Always
  command: ["redis-server", "--port", {{ $port | quote }}, "--bind", "127.0.0.1", "--protected-mode", "yes", "--save", "", "--appendonly", "no", "--dir", "/tmp"]
  startupProbe:
    exec: { command: ["redis-cli", "-p", {{ $port | quote }}, "ping"] }
    periodSeconds: 1
    failureThreshold: 30
  livenessProbe:
    exec: { command: ["redis-cli", "-p", {{ $port | quote }}, "ping"] }
    periodSeconds: 10
    timeoutSeconds: 2
    failureThreshold: 3
  readinessProbe:
    exec: { command: ["redis-cli", "-p", {{ $port | quote }}, "ping"] }
    periodSeconds: 5
    timeoutSeconds: 2
    failureThreshold: 3
  securityContext:
    runAsUser: 999
    runAsGroup: 999
    runAsNonRoot: true
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities:
      drop: ["ALL"]
  resources:
    {{- toYaml $p.resources | nindent 4 }}
{{- end -}}
