// The stand-in's EndpointSlice controller: the slices a Service's selector and its pods give, as
// kube-controller-manager derives them (readiness, terminating, named target ports per pod, with the
// pre-1.32 rule that named ports of native sidecars are not resolved: kubernetes#127958/#128850).
import type { KObj } from './kube-apiserver.js';

export const MANAGED_BY = 'endpointslice-controller.k8s.io';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

interface SvcPort { name?: string; port: number; targetPort?: number | string; protocol?: string; appProtocol?: string }
export interface DesiredSlice { addressType: 'IPv4' | 'IPv6'; ports: Array<{ name: string; port: number; protocol: string; appProtocol?: string }>; endpoints: any[] }

/** kube's FindPort: a number as is; a name on a regular container — and on a native sidecar from 1.32 on. */
export function findPort(pod: KObj, sp: SvcPort, serverMinor: number): number | undefined {
  const target = sp.targetPort ?? sp.port;
  if (typeof target === 'number') return target;
  const proto = sp.protocol ?? 'TCP';
  const search = (containers: any[] | undefined) => {
    for (const c of containers ?? []) for (const p of c.ports ?? []) if (p.name === target && (p.protocol ?? 'TCP') === proto) return p.containerPort as number;
    return undefined;
  };
  const found = search(pod.spec?.containers);
  if (found !== undefined) return found;
  // #127976 (Endpoints) and #128850 (EndpointSlices) added restartable init containers in 1.32.
  if (serverMinor >= 32) return search((pod.spec?.initContainers ?? []).filter((c: any) => c.restartPolicy === 'Always'));
  return undefined;
}

const isReadyCondition = (pod: KObj) => (pod.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');

/** ShouldPodBeInEndpoints (includeTerminating=true for slices): has an IP, not finished. */
function inEndpoints(pod: KObj): boolean {
  if (!pod.status?.podIP) return false;
  const phase = pod.status?.phase;
  const rp = pod.spec?.restartPolicy ?? 'Always';
  if (rp === 'Never') return phase !== 'Failed' && phase !== 'Succeeded';
  if (rp === 'OnFailure') return phase !== 'Succeeded';
  return true;
}

function selects(selector: Record<string, string> | undefined, pod: KObj): boolean {
  if (!selector || !Object.keys(selector).length) return false; // no selector: slices are the user's own
  return Object.entries(selector).every(([k, v]) => pod.metadata.labels?.[k] === v);
}

/** The slices the controller wants for one Service (one per port set and address family). */
export function desiredSlices(svc: KObj, pods: KObj[], serverMinor: number): DesiredSlice[] {
  const out = new Map<string, DesiredSlice>();
  const publishNotReady = !!svc.spec?.publishNotReadyAddresses;
  for (const pod of pods) {
    if (pod.metadata.namespace !== svc.metadata.namespace || !selects(svc.spec?.selector, pod) || !inEndpoints(pod)) continue;
    const terminating = !!pod.metadata.deletionTimestamp;
    const ready = isReadyCondition(pod);
    const ports: DesiredSlice['ports'] = [];
    for (const sp of (svc.spec?.ports ?? []) as SvcPort[]) {
      const n = findPort(pod, sp, serverMinor);
      if (n === undefined) continue; // "Failed to find port for service": the port is left out
      ports.push({ name: sp.name ?? '', port: n, protocol: sp.protocol ?? 'TCP', ...(sp.appProtocol ? { appProtocol: sp.appProtocol } : {}) });
    }
    const ips: string[] = (pod.status.podIPs?.map((p: any) => p.ip) ?? [pod.status.podIP]);
    for (const ip of ips) {
      const addressType = ip.includes(':') ? 'IPv6' : 'IPv4';
      const k = `${addressType}|${JSON.stringify(ports)}`;
      let s = out.get(k);
      if (!s) { s = { addressType, ports, endpoints: [] }; out.set(k, s); }
      s.endpoints.push({
        addresses: [ip],
        conditions: { ready: publishNotReady || (ready && !terminating), serving: publishNotReady || ready, terminating },
        ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
        targetRef: { kind: 'Pod', namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid },
      });
    }
  }
  // No endpoints: the controller keeps one placeholder slice (no endpoints, no ports).
  if (!out.size) return [{ addressType: 'IPv4', ports: [], endpoints: [] }];
  return [...out.values()];
}
