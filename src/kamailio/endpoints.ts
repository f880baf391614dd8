// EndpointSlices of the rtpengine headless Service → the rows Kamailio's `rtpengine` table should
// hold: `udp:<pod IP>:<ng port>` per ready pod. Pure: the watch lives behind EndpointSource.
// Draining (terminating) pods stay until they leave the slice: docs/adr/0040-draining-pods-stay-in-kamailio-table.md.
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
}

export interface SelectOptions {
  /** Name of the ng port in the Service (EndpointSlice ports are named after it). */
  portName: string;
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
 * Which endpoints belong in the table (docs/adr/0040-draining-pods-stay-in-kamailio-table.md):
 * - not terminating: when ready (nil counts as ready, as Kubernetes defines it);
 * - terminating (draining): only if already in the table, whatever `serving` says — the sidecar
 *   keeps answering and refuses new calls with `load limit`, so its pinned calls finish there.
 *   A terminating endpoint is never added: no new call may land on a pod that is going away.
 */
export function belongs(c: { ready?: boolean | null; terminating?: boolean | null } | undefined, inTable: boolean): boolean {
  if (c?.terminating) return inTable;
  return c?.ready ?? true;
}

export interface EndpointRef { namespace: string; name: string; ip: string; port: number; ready: boolean; terminating: boolean }

/** Every endpoint of the wanted family with its ng port; one per URL (first wins). */
export function endpointsOf(slices: readonly EndpointSlice[], o: Pick<SelectOptions, 'portName' | 'addressType'>): Array<EndpointRef & { conditions: NonNullable<EndpointSlice['endpoints']>[number]['conditions'] }> {
  const out = new Map<string, EndpointRef & { conditions: NonNullable<EndpointSlice['endpoints']>[number]['conditions'] }>();
  for (const s of slices) {
    if (s.addressType !== o.addressType) continue;
    const port = (s.ports ?? []).find((p) => (p.name ?? '') === o.portName && (p.protocol ?? 'TCP') === 'UDP')?.port
      ?? (s.ports ?? []).find((p) => (p.name ?? '') === o.portName)?.port;
    if (!port) continue;
    for (const ep of s.endpoints ?? []) {
      const ip = ep.addresses?.[0];
      if (!ip) continue;
      const url = nodeUrl(ip, port);
      if (out.has(url)) continue;
      out.set(url, {
        namespace: ep.targetRef?.namespace ?? s.metadata.namespace ?? '',
        name: ep.targetRef?.name ?? ip,
        ip, port, ready: ep.conditions?.ready ?? true, terminating: ep.conditions?.terminating ?? false, conditions: ep.conditions,
      });
    }
  }
  return [...out.values()];
}

/** The endpoints that belong in the table, given the URLs it holds now. */
export function selectedEndpoints(slices: readonly EndpointSlice[], o: Pick<SelectOptions, 'portName' | 'addressType'>, inTable: ReadonlySet<string> = new Set()) {
  return endpointsOf(slices, o).filter((e) => belongs(e.conditions, inTable.has(nodeUrl(e.ip, e.port))));
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
): DesiredNode[] {
  const nodes = selectedEndpoints(slices, o, inTable).map((e) => {
    const pod = `${e.namespace}/${e.name}`;
    const a = annotations?.get(pod);
    const pick = (key: string, def: number, min: number) => {
      const v = intAnn(a, key, min);
      if (v === undefined && a?.[key] !== undefined) onBadAnnotation?.(pod, key, a[key]!);
      return v ?? def;
    };
    return {
      url: nodeUrl(e.ip, e.port), pod, ip: e.ip, terminating: e.terminating,
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
