// EndpointSlices of the rtpengine headless Service → the rows Kamailio's `rtpengine` table should
// hold: `udp:<pod IP>:<ng port>` per ready pod. Pure: the watch lives behind EndpointSource.
// Draining pods stay until their sidecar reports the drain complete or they leave the slice: ADR 0040, 0041.
import type { KubePort } from '../kube/client.js';

/** The part of a discovery.k8s.io/v1 EndpointSlice this program reads. */
export interface EndpointSlice {
  metadata: { name?: string; namespace?: string; labels?: Record<string, string> };
  addressType: string;
  endpoints?: Array<{
    addresses: string[];
    conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null };
    targetRef?: { kind?: string; name?: string; namespace?: string; uid?: string };
    nodeName?: string | null;
  }> | null;
  ports?: Array<{ name?: string | null; port?: number | null; protocol?: string | null }> | null;
}

/** Where the slices come from (the Kubernetes watch in production). */
export interface EndpointSource {
  /**
   * Start watching. `onSnapshot` gets every slice of the Service after the initial list and after
   * each change; `onError` reports a failure (the source keeps retrying on its own).
   */
  start(h: { onSnapshot(slices: EndpointSlice[]): void; onError(e: unknown): void }): void;
  stop(): Promise<void>;
}

/** Pod annotations, looked up by the endpoint's targetRef (needs get on pods). */
export type PodAnnotations = (namespace: string, name: string) => Promise<Record<string, string> | undefined>;

export const ANNOTATION_SETID = 'rtpengine-k8s.io/kamailio-setid';
export const ANNOTATION_WEIGHT = 'rtpengine-k8s.io/kamailio-weight';

export interface DesiredNode {
  url: string;
  setid: number;
  weight: number;
  /** `namespace/name` of the pod (or the address when the endpoint has no targetRef). */
  pod: string;
  ip: string;
  terminating: boolean;
  /** Not ready and not terminating, kept because its sidecar reports a drain (HTTP/CLI). */
  draining?: boolean;
}

export interface SelectOptions {
  /** Name of the ng port in the Service (EndpointSlice ports are named after it). */
  portName: string;
  /** Name of the sidecar's control (HTTP /status) port; '' or absent: no drain probing (ADR 0041). */
  controlPortName?: string;
  /** IPv4 or IPv6 slices (a dual-stack Service has one slice family each). */
  addressType: 'IPv4' | 'IPv6';
  setid: number;
  weight: number;
}

/** Kamailio's URL for a node: `udp:1.2.3.4:2223`, `udp6:[fd00::1]:2223` (checked with 5.6.3). */
export function nodeUrl(ip: string, port: number): string {
  return ip.includes(':') ? `udp6:[${ip}]:${port}` : `udp:${ip}:${port}`;
}

/**
 * What the pod's sidecar says about its drain (GET /status on the control port): `draining` while
 * calls are left, `drained` once complete (it lingers, still answering, until Kamailio dropped it).
 */
export type DrainReport = 'serving' | 'draining' | 'drained';

/**
 * Which endpoints belong in the table (ADR 0040, amended by ADR 0041):
 * - ready and not terminating: always (nil counts as ready, as Kubernetes defines it);
 * - its sidecar reports the drain complete: never — ADR 0041: Kamailio drops it while
 *   the sidecar still answers (it lingers for that);
 * - terminating (draining): only if already in the table, whatever `serving` says — the sidecar
 *   keeps answering and refuses new calls with `load limit`, so its pinned calls finish there.
 *   A terminating endpoint is never added: no new call may land on a pod that is going away;
 * - not ready, not terminating: stays only if in the table and its sidecar reports draining (a drain
 *   started over HTTP or the CLI on a live pod); otherwise (rtpengine down, starting) it leaves.
 */
export function belongs(c: { ready?: boolean | null; terminating?: boolean | null } | undefined, inTable: boolean, report?: DrainReport): boolean {
  if (!c?.terminating && (c?.ready ?? true)) return true;
  if (report === 'drained') return false;
  if (c?.terminating) return inTable;
  return inTable && report === 'draining';
}

export interface EndpointRef { namespace: string; name: string; ip: string; port: number; ready: boolean; terminating: boolean; controlPort?: number }

/** Every endpoint of the wanted family with its ng port; one per URL (first wins). */
export function endpointsOf(slices: readonly EndpointSlice[], o: Pick<SelectOptions, 'portName' | 'addressType' | 'controlPortName'>): Array<EndpointRef & { conditions: NonNullable<EndpointSlice['endpoints']>[number]['conditions'] }> {
  const out = new Map<string, EndpointRef & { conditions: NonNullable<EndpointSlice['endpoints']>[number]['conditions'] }>();
  for (const s of slices) {
    if (s.addressType !== o.addressType) continue;
    const port = (s.ports ?? []).find((p) => (p.name ?? '') === o.portName && (p.protocol ?? 'TCP') === 'UDP')?.port
      ?? (s.ports ?? []).find((p) => (p.name ?? '') === o.portName)?.port;
    if (!port) continue;
    const controlPort = o.controlPortName ? (s.ports ?? []).find((p) => (p.name ?? '') === o.controlPortName && (p.protocol ?? 'TCP') === 'TCP')?.port ?? undefined : undefined;
    for (const ep of s.endpoints ?? []) {
      const ip = ep.addresses?.[0];
      if (!ip) continue;
      const url = nodeUrl(ip, port);
      if (out.has(url)) continue;
      out.set(url, {
        namespace: ep.targetRef?.namespace ?? s.metadata.namespace ?? '',
        name: ep.targetRef?.name ?? ip,
        ip, port, ready: ep.conditions?.ready ?? true, terminating: ep.conditions?.terminating ?? false, conditions: ep.conditions,
        ...(controlPort ? { controlPort } : {}),
      });
    }
  }
  return [...out.values()];
}

/** The endpoints that belong in the table, given the URLs it holds now and the sidecars' drain reports (by URL). */
export function selectedEndpoints(slices: readonly EndpointSlice[], o: Pick<SelectOptions, 'portName' | 'addressType' | 'controlPortName'>, inTable: ReadonlySet<string> = new Set(),
  reports?: ReadonlyMap<string, DrainReport>) {
  return endpointsOf(slices, o).filter((e) => { const url = nodeUrl(e.ip, e.port); return belongs(e.conditions, inTable.has(url), reports?.get(url)); });
}

/**
 * Endpoints whose sidecar must be asked about its drain: in the table, and terminating or not
 * ready (a ready, non-terminating one belongs whatever it says), with a control port to ask on.
 */
export function drainProbeTargets(slices: readonly EndpointSlice[], o: Pick<SelectOptions, 'portName' | 'addressType' | 'controlPortName'>, inTable: ReadonlySet<string>): Array<EndpointRef & { url: string; controlPort: number }> {
  return endpointsOf(slices, o)
    .filter((e) => e.controlPort !== undefined && (e.terminating || !e.ready) && inTable.has(nodeUrl(e.ip, e.port)))
    .map((e) => ({ ...e, url: nodeUrl(e.ip, e.port), controlPort: e.controlPort! }));
}

/** One sidecar's answer: its drain state and the linger it will keep after completing. */
export interface SidecarDrainState { report: DrainReport; lingerSeconds?: number }

/** Asks one sidecar; undefined when it does not answer or answers nonsense (the caller keeps what it knew). */
export type DrainProbe = (ip: string, controlPort: number) => Promise<SidecarDrainState | undefined>;

/** The sidecar's GET /status JSON (src/sidecar/main.ts SidecarStatus) → its drain state. */
export function drainStateOf(body: unknown): SidecarDrainState | undefined {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return undefined;
  const b = body as Record<string, unknown>;
  const linger = typeof b.drainLingerSeconds === 'number' ? { lingerSeconds: b.drainLingerSeconds } : {};
  const phase = ((b.proxy as Record<string, unknown> | undefined)?.drain as Record<string, unknown> | undefined)?.phase;
  if (b.drainComplete === true || b.state === 'drained' || b.state === 'lingering' || b.state === 'stopping' || b.state === 'stopped' || phase === 'drained') return { report: 'drained', ...linger };
  if (b.state === 'draining' || phase === 'draining') return { report: 'draining', ...linger };
  if (b.state === 'serving' || b.state === 'starting' || phase === 'serving') return { report: 'serving', ...linger };
  return undefined;
}

/** The real probe: GET http://<pod IP>:<control port>/status with a short timeout. */
export function httpDrainProbe(timeoutMs: number): DrainProbe {
  return async (ip, port) => {
    const host = ip.includes(':') ? `[${ip}]` : ip;
    try {
      const res = await fetch(`http://${host}:${port}/status`, { signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) { await res.body?.cancel(); return undefined; }
      return drainStateOf(await res.json());
    } catch {
      return undefined;
    }
  };
}

const intAnn = (a: Record<string, string> | undefined, k: string, min: number): number | undefined => {
  const v = a?.[k];
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  const n = Number(v.trim());
  return n >= min ? n : undefined;
};

/**
 * Desired nodes sorted by URL (a stable order keeps Kamailio's hash selection stable across
 * rewrites). `inTable` are the URLs the table holds now (draining pods stay only if there). Annotations, when given, override set id and weight per pod; invalid values are
 * reported through `onBadAnnotation` and the configured defaults used.
 */
export function desiredNodes(
  slices: readonly EndpointSlice[],
  o: SelectOptions,
  inTable: ReadonlySet<string> = new Set(),
  annotations?: ReadonlyMap<string, Record<string, string> | undefined>,
  onBadAnnotation?: (pod: string, key: string, value: string) => void,
  reports?: ReadonlyMap<string, DrainReport>,
): DesiredNode[] {
  const nodes = selectedEndpoints(slices, o, inTable, reports).map((e) => {
    const pod = `${e.namespace}/${e.name}`;
    const a = annotations?.get(pod);
    const pick = (key: string, def: number, min: number) => {
      const v = intAnn(a, key, min);
      if (v === undefined && a?.[key] !== undefined) onBadAnnotation?.(pod, key, a[key]!);
      return v ?? def;
    };
    return {
      url: nodeUrl(e.ip, e.port), pod, ip: e.ip, terminating: e.terminating, ...(!e.ready && !e.terminating ? { draining: true } : {}),
      setid: pick(ANNOTATION_SETID, o.setid, 0), weight: pick(ANNOTATION_WEIGHT, o.weight, 0),
    };
  });
  return nodes.sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0));
}

/** Two node lists as Kamailio sees them (url, set, weight): what was added, removed and changed. */
export function diffNodes(before: readonly DesiredNode[], after: readonly DesiredNode[]): { added: DesiredNode[]; removed: DesiredNode[]; changed: DesiredNode[] } {
  const b = new Map(before.map((n) => [n.url, n]));
  const a = new Map(after.map((n) => [n.url, n]));
  return {
    added: after.filter((n) => !b.has(n.url)),
    removed: before.filter((n) => !a.has(n.url)),
    changed: after.filter((n) => { const o = b.get(n.url); return !!o && (o.setid !== n.setid || o.weight !== n.weight); }),
  };
}

/**
 * The real EndpointSource: a list+watch of the Service's EndpointSlices through KubePort
 * (@kubernetes/client-node). The informer retries on its own; every failure is reported.
 */
export function kubeEndpointSource(kube: Pick<KubePort, 'watchEndpointSlices'>, namespace: string, labelSelector: string): EndpointSource {
  let stop: (() => Promise<void>) | undefined;
  return {
    start(h) {
      stop = kube.watchEndpointSlices(namespace, labelSelector,
        (_type, _slice, all) => h.onSnapshot(all as EndpointSlice[]),
        (e) => h.onError(e));
    },
    async stop() { await stop?.(); },
  };
}

/** Pod annotations through KubePort (RBAC: get on pods in the namespace). */
export function kubePodAnnotations(kube: Pick<KubePort, 'getPod'>): PodAnnotations {
  return async (namespace, name) => (await kube.getPod(namespace, name))?.metadata?.annotations ?? undefined;
}
