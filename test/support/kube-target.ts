// Where Kubernetes-facing tests run: a real cluster when KUBECONFIG is set (`npm run test:cluster`),
// else the in-repo stand-in. Seeding goes through the API on both, so the same test runs on either;
// stand-in-only powers (faults, request log, compaction) are exposed as `standIn` when present.
import { randomBytes } from 'node:crypto';
import { CoreV1Api, KubeConfig, type V1Pod } from '../../src/kube/k8s.js';
import { startKubeApiServer, type KubeApiServer } from './kube-apiserver.js';

export interface KubeTarget {
  kind: 'stand-in' | 'cluster';
  kubeconfig(): KubeConfig;
  /** A namespace for this test's objects (created on a cluster, deleted on close). */
  namespace: string;
  /** Node names pods may be placed on (the stand-in invents them; a cluster lists its nodes). */
  nodes: string[];
  /** Create a running pod on `nodeName` through the API; resolves once it has a UID. */
  createPod(p: { name: string; nodeName: string; namespace?: string; annotations?: Record<string, string>; labels?: Record<string, string> }): Promise<V1Pod>;
  /** Delete a pod through the API (immediately: grace period 0). */
  deletePod(name: string, namespace?: string): Promise<void>;
  /** Present only on the stand-in: fault injection, request counts, direct store access. */
  standIn?: KubeApiServer;
  close(): Promise<void>;
}

/** Skip reason for tests that need the stand-in's powers (faults, request counting). */
export function needsStandIn(): string | false {
  return process.env.KUBECONFIG ? 'not run on a real cluster: needs the API stand-in (fault injection / request log)' : false;
}

export async function kubeTarget(): Promise<KubeTarget> {
  if (process.env.KUBECONFIG) return clusterTarget();
  const srv = await startKubeApiServer();
  const kc = srv.kubeconfig();
  // The invented nodes exist as Node objects (the node sweeper frees only what nodes that do not exist left).
  for (const name of ['node-a', 'node-b']) srv.store.create('nodes', { metadata: { name } });
  return withPods({ kind: 'stand-in', kubeconfig: () => kc, namespace: 'rtpe-test', nodes: ['node-a', 'node-b'], standIn: srv, close: () => srv.close() }, kc);
}

function withPods(t: Omit<KubeTarget, 'createPod' | 'deletePod'>, kc: KubeConfig): KubeTarget {
  const core = kc.makeApiClient(CoreV1Api);
  return {
    ...t,
    async createPod(p) {
      const namespace = p.namespace ?? t.namespace;
      const pod = await core.createNamespacedPod({ namespace, body: {
        metadata: { name: p.name, namespace, annotations: p.annotations, labels: p.labels },
        spec: { nodeName: p.nodeName, terminationGracePeriodSeconds: 0, containers: [{ name: 'pause', image: 'registry.k8s.io/pause:3.9' }] },
      } });
      if (t.standIn) {
        // No kubelet behind the stand-in: report the pod Running as a kubelet would.
        const stored = t.standIn.store.get('pods', namespace, p.name)!;
        t.standIn.store.update('pods', { ...stored, status: { ...stored.status, phase: 'Running' } });
      }
      return pod;
    },
    async deletePod(name, namespace) {
      await core.deleteNamespacedPod({ name, namespace: namespace ?? t.namespace, gracePeriodSeconds: 0 });
    },
  };
}

async function clusterTarget(): Promise<KubeTarget> {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = `rtpe-test-${randomBytes(3).toString('hex')}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const nodes = (await core.listNode()).items.map((n) => n.metadata!.name!);
  return withPods({
    kind: 'cluster', kubeconfig: () => kc, namespace, nodes,
    close: async () => { await core.deleteNamespace({ name: namespace }).catch(() => undefined); },
  }, kc);
}
