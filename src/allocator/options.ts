// The allocator's and ctl's options (flags/env, zod-checked); src/cli.ts parses them once.
import { z } from 'zod';
import { opt, type OptionDef, type OptionSet } from '../config.js';

export const poolSchema = z.object({
  name: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'lower-case letters, digits, - and .'),
  cidr: z.string().min(3),
  rangeStart: z.string().optional(),
  rangeEnd: z.string().optional(),
  exclude: z.array(z.string()).optional(),
  gateway: z.string().optional(),
}).strict();
export const poolsSchema = z.array(poolSchema);

const tableRange: OptionDef<string> = {
  kind: 'string',
  schema: z.string().regex(/^\s*\d{1,2}\s*(-\s*\d{1,2}\s*)?$/, "MIN-MAX inside 0-63, e.g. '0-63'").default('0-63'),
  help: 'kernel table IDs this allocator hands out (xt_RTPENGINE/nft_rtpengine keep 0-63 per host)',
  default: '0-63',
};

export const DEFAULT_SOCKET = '/run/rtpengine-k8s/allocator.sock';

export const allocatorOptions = {
  nodeName: opt.optionalString('node this allocator serves (downward API spec.nodeName); default: the host name', { env: 'NODE_NAME' }),
  socket: opt.string('unix socket the gRPC service listens on (mode 0660, parent created)', DEFAULT_SOCKET),
  tcpListen: opt.optionalString('also serve gRPC on TCP: PORT (loopback) or HOST:PORT'),
  tableRange,
  pools: opt.json('address pools as JSON: [{"name","cidr","rangeStart"?,"rangeEnd"?,"exclude"?:[…],"gateway"?}] (whereabouts semantics)', poolsSchema, []),
  poolsFile: opt.optionalString('JSON file with the address pools (same form as --pools; both may be given, names must differ)'),
  defaultPools: opt.list('pools used when a request names none (default: the first pool)', []),
  stateFile: opt.string('the embedded store: one JSON state file, written atomically', '/var/lib/rtpengine-k8s/allocator-state.json'),
  procRoot: opt.string('root of the kernel module proc tree (a directory with the same files in tests)', '/proc/rtpengine'),
  leaseTtl: opt.number('file store: lease TTL in seconds, an allocation not renewed (Renew RPC) within it is reclaimed; 0 = never. Kubernetes mode has no TTL: the pod lifecycle decides', 60, { min: 0 }),
  sweepInterval: opt.number('seconds between lease/busy-table sweeps', 2, { min: 0.05 }),
  metricsListen: opt.optionalString('serve /metrics and /healthz over HTTP: PORT (loopback) or HOST:PORT'),
  callerAuth: opt.enum("Kubernetes mode: 'token' = every Acquire/Renew/Release carries the pod's projected service-account token (verified by TokenReview; the token's pod must be the request's pod); 'none' = the socket's file mode is the only boundary (always so in file mode)", ['token', 'none'] as const, 'token'),
  tokenAudience: opt.string('audience the pods\' projected tokens are issued for (TokenReview checks it)', 'rtpengine-k8s-allocator'),
  operatorSocket: opt.string('with --caller-auth token: root-only (0600) socket where calls act as an operator (ctl release), logged as operator actions; keep it out of the pods\' mounts', '/var/lib/rtpengine-k8s/operator.sock'),
  maxConnections: opt.int('open connections accepted on the allocator socket (and the operator socket); a connection beyond it is closed at once, logged and counted (rtpengine_k8s_allocator_connections_refused_total)', 1024, { min: 1 }),
  idleTimeout: opt.number('seconds a gRPC connection with no call in flight stays open (clients reconnect transparently); keepalive pings find dead peers', 120, { min: 0.1 }),
  // Kubernetes mode (docs/kubernetes.md; wiring in reconcile-kube.ts: startKubernetesMode)
  store: opt.enum('where allocations are kept', ['file', 'kubernetes'] as const, 'file'),
  kubeconfig: opt.optionalString('kubeconfig file for --store kubernetes (default: in-cluster / KUBECONFIG search)', { env: 'RTPE_K8S_KUBECONFIG' }),
  leaseNamespace: opt.string('namespace of the table Leases (owner references only to pods in it)', 'kube-system'),
  poolNamespace: opt.string("namespace of whereabouts' IPPools (the whereabouts DaemonSet's namespace)", 'kube-system'),
  networkName: opt.optionalString('whereabouts network_name: IPPool names get this prefix'),
  allowUncheckedOverlap: opt.bool("start even when RBAC denies listing the pool namespace's IPPools, so ranges overlapping the media pools cannot be checked (logged); default: refuse to start (ALLOC_WHEREABOUTS_UNCHECKED)"),
  ipMode: opt.enum('media IPs: reserve entries in IPPools, or use the address whereabouts gave the pod (network-status)', ['reserve', 'network-status'] as const, 'reserve'),
  networkStatusInterface: opt.string('pod interface read from k8s.v1.cni.cncf.io/network-status in --ip-mode network-status', 'net1'),
  resyncInterval: opt.number('seconds between full pod resyncs in Kubernetes mode', 300, { min: 1 }),
} satisfies OptionSet;

export const ctlOptions = {
  socket: opt.string('allocator unix socket', DEFAULT_SOCKET),
  address: opt.optionalString('allocator TCP address HOST:PORT instead of the socket'),
  timeout: opt.number('per-call deadline in seconds', 5, { min: 0.1 }),
  yes: opt.bool("confirm 'ctl cleanup' (it frees every node's allocations of this installation)"),
  // 'ctl cleanup' takes the allocator's store options unchanged (the chart's pre-delete hook passes them)
  store: allocatorOptions.store,
  kubeconfig: allocatorOptions.kubeconfig,
  leaseNamespace: allocatorOptions.leaseNamespace,
  poolNamespace: allocatorOptions.poolNamespace,
  networkName: allocatorOptions.networkName,
  ipMode: allocatorOptions.ipMode,
  networkStatusInterface: allocatorOptions.networkStatusInterface,
  resyncInterval: allocatorOptions.resyncInterval,
  pools: allocatorOptions.pools,
  poolsFile: allocatorOptions.poolsFile,
} satisfies OptionSet;
