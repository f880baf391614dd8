// Options of the `sidecar` command: pod identity from the downward API, the allocator, rtpengine
// (exec or config mode), kernel forwarding, the media address and pod-deletion-cost. The ng proxy's
// own options (src/sidecar/proxy-options.ts) are merged in by the command.
import { z } from 'zod';
import { opt, type OptionSet, type Parsed } from '../config.js';
import { DEFAULT_SOCKET } from '../allocator/client.js';
import { ERAS } from './rtpengine.js';
import { ADDRESS_MODES } from './netaddr.js';
import { persistenceOptions } from '../persistence/options.js';

const scalar = z.union([z.string(), z.number(), z.boolean()]);

export const sidecarOptions = {
  podName: opt.string('this pod (downward API metadata.name)', undefined, { env: 'POD_NAME' }),
  podNamespace: opt.string('its namespace (downward API metadata.namespace)', undefined, { env: 'POD_NAMESPACE' }),
  podUid: opt.string('its UID (downward API metadata.uid): the allocation key', undefined, { env: 'POD_UID' }),
  nodeName: opt.string('the node (downward API spec.nodeName)', undefined, { env: 'NODE_NAME' }),

  allocatorSocket: opt.string("the node allocator's unix socket", DEFAULT_SOCKET),
  allocatorTokenFile: opt.optionalString("Kubernetes mode: this pod's projected service-account token for the allocator (audience rtpengine-k8s-allocator), re-read on every call and sent as 'authorization: Bearer'; empty = none (file mode)"),
  pools: opt.list('address pools to take a media IP from (empty = the allocator default)', []),
  acquireTimeoutSeconds: opt.int('give up acquiring after this long (then exit, and the kubelet restarts us)', 120, { min: 1 }),

  rtpengineMode: opt.enum('exec: start and supervise rtpengine; config: write its config file for a separate container', ['config', 'exec'] as const, 'config'),
  rtpengineBinary: opt.string('rtpengine binary (exec mode, and version detection)', 'rtpengine'),
  rtpengineEra: opt.enum('rtpengine firewall era; auto runs `rtpengine --version`', ['auto', ...ERAS] as const, 'auto'),
  rtpengineConfig: opt.string('config mode: where to write rtpengine.conf (a volume shared with the rtpengine container)', '/etc/rtpengine-k8s/rtpengine.conf'),
  rtpengineOptions: opt.json('extra rtpengine options as JSON, e.g. {"num-threads":4,"timeout":60}', z.record(z.string(), scalar), {}),
  rtpengineReadySeconds: opt.int('exec mode: wait this long for rtpengine to answer ping', 30, { min: 1 }),
  rtpengineRestarts: opt.int('exec mode: when rtpengine dies, restart it (same table and media IP) up to this many times in a row before the sidecar exits; meanwhile new calls get load limit and known calls an error', 5, { min: 0, max: 1000 }),
  runDir: opt.string('runtime directory, kept across container restarts (an emptyDir): rtpengine\'s pid (exec mode, to reattach), the status file, and the drained marker of an HTTP/CLI drain', '/run/rtpengine-k8s'),
  portMin: opt.int('first media port', 30000, { min: 1024, max: 65535 }),
  portMax: opt.int('last media port', 39999, { min: 1024, max: 65535 }),
  interfaceName: opt.optionalString("rtpengine logical interface name (`name/IP`)"),
  advertisedAddress: opt.optionalString('public address written into SDP instead of the media IP (`IP!advertised`)'),

  procRoot: opt.string("the kernel module's proc tree", '/proc/rtpengine'),
  requireKernel: opt.bool('fail instead of falling back to userspace forwarding when the kernel module is absent', false),
  iptablesBackend: opt.enum('iptables backend; auto detects the host\'s as iptables-wrappers does', ['auto', 'nft', 'legacy'] as const, 'auto'),
  iptablesTarget: opt.string('jump target of the forwarding rule; RTPENGINE in production (tests on hosts without the module swap it)', 'RTPENGINE'),

  mediaAddressMode: opt.enum('reserved: add the allocated IP to --media-interface and remove it on exit; cni: only verify it is there; none: leave addresses alone', ADDRESS_MODES, 'reserved'),
  mediaInterface: opt.string('interface that carries the media IP (Multus: net1)', 'eth0'),

  drainLingerSeconds: opt.int('after a drain completes, keep answering (ping → pong, new offers → load limit) this long before shutting down, so kamailio-sync removes the node from Kamailio first (default 20 > its poll 2 s + probe timeout 1 s + debounce 0.3 s + reload window 10.2 s; ADR 0041)', 20, { min: 0, max: 3600 }),
  rtpengineStopWaitSeconds: opt.int('config mode: after the drain, wait up to this long for the separate rtpengine container to stop answering ping before removing rules and address and releasing', 60, { min: 0, max: 3600 }),

  deletionCost: opt.bool('keep controller.kubernetes.io/pod-deletion-cost in line with the session count', true),
  deletionCostIntervalSeconds: opt.int('write pod-deletion-cost at most this often', 30, { min: 1 }),
  kubeconfig: opt.optionalString('kubeconfig file (default: in-cluster or the usual search)'),
  ...persistenceOptions,
} satisfies OptionSet;

export type SidecarConfig = Parsed<typeof sidecarOptions>;
