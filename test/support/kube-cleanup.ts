// Test hygiene for Kubernetes-mode tests that may run on a real cluster: a random pool range per
// test (no two runs or tests share an IPPool) and removal of the IPPools and Leases a test made
// (finalizers first, or a cluster namespace would never finish deleting).
import { randomInt } from 'node:crypto';
import { CoordinationV1Api, CustomObjectsApi, type KubeConfig } from '../../src/kube/k8s.js';

/** A fresh IPv4 range inside 10.64.0.0/10 with the given prefix (≥ 16), e.g. 10.93.17.0/24. */
export function randomRange(prefix = 24): string {
  const base = (10 << 24) | (randomInt(64, 128) << 16) | (randomInt(0, 256) << 8) | randomInt(0, 256);
  const mask = prefix === 32 ? 0xffffffff : (~((1 << (32 - prefix)) - 1)) >>> 0;
  const n = (base & mask) >>> 0;
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/${prefix}`;
}

/** Delete `pools` (IPPool names) in `poolNamespace` and every rtpengine-k8s Lease in `leaseNamespace`. */
export async function cleanupKube(kc: KubeConfig, o: { poolNamespace: string; pools: string[]; leaseNamespace: string }): Promise<void> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const coord = kc.makeApiClient(CoordinationV1Api);
  for (const name of o.pools) {
    await custom.deleteNamespacedCustomObject({ group: 'whereabouts.cni.cncf.io', version: 'v1alpha1', plural: 'ippools', namespace: o.poolNamespace, name }).catch(() => undefined);
  }
  const leases = await coord.listNamespacedLease({ namespace: o.leaseNamespace, labelSelector: 'app.kubernetes.io/managed-by=rtpengine-k8s' }).catch(() => ({ items: [] }));
  for (const l of leases.items) {
    const name = l.metadata!.name!;
    if (l.metadata?.finalizers?.length) await coord.replaceNamespacedLease({ namespace: o.leaseNamespace, name, body: { ...l, metadata: { ...l.metadata, finalizers: [] } } }).catch(() => undefined);
    await coord.deleteNamespacedLease({ namespace: o.leaseNamespace, name }).catch(() => undefined);
  }
}
