// The value sets the chart tests render: together they take every branch of the templates
// (chart.test.ts checks that) and every object they render is schema-checked (manifests.test.ts).
export const variants: Record<string, Record<string, unknown>> = {
  defaults: {},
  plainSidecar: { rtpengine: { nativeSidecar: false, podAnnotations: { team: 'voice' }, podLabels: { tier: 'media' } } },
  exec: { rtpengine: { mode: 'exec', advertisedAddress: '203.0.113.7', extraOptions: { 'num-threads': '4' } } },
  multus: { multus: { enabled: true }, allocator: { ipMode: 'network-status' }, rtpengine: { interface: 'net1' } },
  hostDevice: { multus: { enabled: true, type: 'host-device', device: 'ens5' } },
  fileStore: { allocator: { store: 'file', privileged: true } },
  keda: { autoscaling: { hpa: { enabled: false }, keda: { enabled: true } } },
  full: {
    serviceMonitor: { enabled: true, labels: { release: 'prom' } }, kamailioSync: { enabled: true, podAnnotations: true },
    imagePullSecrets: [{ name: 'regcred' }], fullnameOverride: 'media',
    allocator: { nodeSelector: { media: 'yes' }, tolerations: [{ key: 'media', operator: 'Exists' }], affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'media', operator: 'In', values: ['yes'] }] }] } } }, priorityClassName: 'system-node-critical', extraEnv: [{ name: 'RTPE_K8S_LOG_PRETTY', value: 'false' }], podAnnotations: { x: 'y' } },
    rtpengine: { nodeSelector: { media: 'yes' }, tolerations: [{ key: 'media', operator: 'Exists' }], affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'media', operator: 'In', values: ['yes'] }] }] } } }, topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway' }], priorityClassName: 'high', image: { repository: 'example/rtpengine', tag: 'mr11.5' }, preStop: 'exec' },
    sidecar: { allowedSources: ['10.0.0.0/8'], extraCapabilities: ['NET_RAW'], extraEnv: [{ name: 'RTPE_K8S_LOG_PRETTY', value: 'false' }], ipv6NdiscNotify: true, admissionPolicy: { enabled: true } },
    nameOverride: 'rtpe',
  },
  persistence: { rtpengine: { persistence: { enabled: true } } },
  persistenceExec: { rtpengine: { mode: 'exec', persistence: { enabled: true, port: 6380, image: { repository: 'example/redis', tag: '7' } } } },
  noAllocator: { allocator: { enabled: false }, sidecar: { deletionCost: { enabled: false } }, pdb: { enabled: false }, autoscaling: { hpa: { enabled: false } }, rbac: { create: false } },
};

