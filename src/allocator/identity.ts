// Kubernetes-mode identity: Acquire is served only for a pod that exists, runs on this node and has
// the UID the caller gave; anything else is PERMISSION_DENIED saying why. Also reads the address
// whereabouts gave a pod from Multus' network-status annotation (the second IP mode).
import type { Pod } from '../kube/client.js';
import { AllocError } from '../errors.js';

export interface PodClaim { namespace: string; name: string; uid: string }

/** Where pods are looked up: the informer's cache first (no request), then one GET. */
export interface PodLookup {
  cached(namespace: string, name: string): Pod | undefined;
  fetch(namespace: string, name: string): Promise<Pod | undefined>;
}

const deny = (c: PodClaim, reason: string, extra: Record<string, unknown> = {}) =>
  new AllocError('ALLOC_PERMISSION_DENIED', { pod: `${c.namespace}/${c.name}`, uid: c.uid, reason, ...extra });

/** Why `pod` may not act as `claim` on `node`, or undefined when it may. */
export function identityProblem(claim: PodClaim, pod: Pod | undefined, node: string): string | undefined {
  if (!pod) return `pod ${claim.namespace}/${claim.name} does not exist`;
  if (pod.metadata?.uid !== claim.uid) return `pod ${claim.namespace}/${claim.name} has UID ${pod.metadata?.uid}, not ${claim.uid} (it was deleted and recreated, or the caller is not that pod)`;
  const on = pod.spec?.nodeName;
  if (on !== node) return on ? `pod runs on node ${on}, this allocator serves node ${node}` : `pod is not scheduled to a node yet (this allocator serves ${node})`;
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return `pod has finished (phase ${phase})`;
  return undefined;
}

/**
 * Resolve the claim to the pod or throw PERMISSION_DENIED. A cache hit that matches costs no
 * request; a miss or a mismatch is re-checked with a GET (the cache may lag a new pod).
 */
export async function verifyPod(lookup: PodLookup, claim: PodClaim, node: string): Promise<Pod> {
  for (const [field, v] of Object.entries(claim)) {
    if (typeof v !== 'string' || !v) throw new AllocError('ALLOC_INVALID_ARGUMENT', { field, reason: 'is required in Kubernetes mode (identity check)' });
  }
  const hit = lookup.cached(claim.namespace, claim.name);
  if (hit && !identityProblem(claim, hit, node)) return hit;
  const pod = await lookup.fetch(claim.namespace, claim.name);
  const problem = identityProblem(claim, pod, node);
  if (problem) throw deny(claim, problem, { node });
  return pod!;
}

export const NETWORK_STATUS = 'k8s.v1.cni.cncf.io/network-status';

export interface NetworkStatusAddress { ip: string; network: string; interface: string }

/**
 * The address on `ifname` from the pod's network-status annotation (non-default entry), or a
 * ALLOC_NO_CNI_ADDRESS naming what is missing (the CNI may not have annotated it yet).
 */
export function addressFromNetworkStatus(pod: Pod, ifname: string, family?: 4 | 6): NetworkStatusAddress {
  const who = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
  const raw = pod.metadata?.annotations?.[NETWORK_STATUS];
  const fail = (reason: string) => new AllocError('ALLOC_NO_CNI_ADDRESS', { pod: who, reason });
  if (!raw) throw fail(`no ${NETWORK_STATUS} annotation yet`);
  let list: unknown;
  try { list = JSON.parse(raw); } catch (e) { throw new AllocError('ALLOC_INVALID_ARGUMENT', { field: NETWORK_STATUS, reason: `is not JSON: ${(e as Error).message}` }); }
  if (!Array.isArray(list)) throw new AllocError('ALLOC_INVALID_ARGUMENT', { field: NETWORK_STATUS, reason: 'is not a JSON array' });
  const entry = list.find((x) => x && typeof x === 'object' && x.interface === ifname && !x.default) as { name?: string; ips?: unknown } | undefined;
  if (!entry) throw fail(`network-status has no non-default interface '${ifname}'`);
  const ips = Array.isArray(entry.ips) ? entry.ips.filter((x): x is string => typeof x === 'string') : [];
  const ip = ips.find((x) => !family || (family === 6) === x.includes(':'));
  if (!ip) throw fail(`interface '${ifname}' has no ${family ? `IPv${family} ` : ''}address in network-status`);
  return { ip, network: String(entry.name ?? ''), interface: ifname };
}
