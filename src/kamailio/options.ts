// kamailio-sync's options: where the rtpengine Service is, how rows look, where Kamailio's db_text
// table and JSON-RPC are, and the timing of debounce / reload coalescing.
import { opt, type OptionSet, type Parsed } from '../config.js';

export const kamailioSyncOptions = {
  namespace: opt.string('namespace of the rtpengine headless Service', 'default', { env: 'POD_NAMESPACE' }),
  service: opt.string('name of the rtpengine headless Service (its EndpointSlices are watched)', 'rtpengine'),
  labelSelector: opt.optionalString('EndpointSlice label selector; default kubernetes.io/service-name=<service>'),
  ngPortName: opt.string("name of the sidecar's ng port in the Service", 'ng'),
  controlPortName: opt.string("name of the sidecar's control (HTTP /status) port in the Service; draining pods are asked there whether their drain is complete (empty: never ask, ADR 0041)", 'control'),
  drainPollMs: opt.int("ask a draining pod's sidecar this often whether its drain is complete", 2000, { min: 200 }),
  drainProbeTimeoutMs: opt.int('timeout of one such question (no answer: keep the row as it is)', 1000, { min: 50 }),
  addressType: opt.enum('address family of the pod IPs to use', ['IPv4', 'IPv6'] as const, 'IPv4'),
  setid: opt.int('Kamailio rtpengine set id of every row (pod annotation rtpengine-k8s.io/kamailio-setid overrides)', 0, { min: 0 }),
  weight: opt.int('weight of every row (pod annotation rtpengine-k8s.io/kamailio-weight overrides)', 1, { min: 0 }),
  podAnnotations: opt.bool('read set id / weight annotations from the pods (needs RBAC get on pods)', false),
  dbDir: opt.string('db_text directory shared with Kamailio (its rtpengine db_url is text://<dir>)', '/var/lib/kamailio/db'),
  table: opt.string('table (file) name: the rtpengine module table_name parameter', 'rtpengine'),
  rpcTransport: opt.enum('how to reach Kamailio JSON-RPC', ['http', 'fifo'] as const, 'http'),
  rpcUrl: opt.string('JSON-RPC over HTTP URL (xhttp + jsonrpc_dispatch)', 'http://127.0.0.1:5071/RPC'),
  rpcFifo: opt.string('jsonrpcs fifo_name (for --rpc-transport fifo)', '/var/run/kamailio/kamailio_rpc.fifo'),
  rpcReplyDir: opt.string('jsonrpcs fifo_reply_dir, verbatim including the trailing slash', '/var/run/kamailio/'),
  rpcTimeoutMs: opt.int('JSON-RPC call timeout', 5000, { min: 100 }),
  debounceMs: opt.int('quiet time after an EndpointSlice change before acting (absorbs flapping)', 300, { min: 0 }),
  maxDelayMs: opt.int('act at the latest this long after the first pending change', 3000, { min: 0 }),
  reloadIntervalMs: opt.int("spacing of rtpengine.reload calls (Kamailio refuses reloads within 10 s)", 10_200, { min: 10_000 }),
  retryMs: opt.int('first retry delay when Kamailio RPC is unreachable (doubles up to the reload interval)', 1000, { min: 50 }),
  metricsListen: opt.string('HTTP server for /metrics and /healthz (empty: none)', '0.0.0.0:9451'),
  once: opt.bool('write the table from the current EndpointSlices and exit (init container before Kamailio starts)', false),
  onceTimeoutMs: opt.int('with --once: wait this long for a serving rtpengine', 60_000, { min: 0 }),
  kubeconfig: opt.optionalString('kubeconfig file (default: in-cluster or the usual search)'),
} satisfies OptionSet;

export type KamailioSyncConfig = Parsed<typeof kamailioSyncOptions>;

export const selectorOf = (c: Pick<KamailioSyncConfig, 'labelSelector' | 'service'>) => c.labelSelector || `kubernetes.io/service-name=${c.service}`;
