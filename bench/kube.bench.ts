// Suite 'kube': a new pod's Acquire through the Kubernetes-mode allocator's gRPC server with the
// pod's projected token (TokenReview, ORIP informer check, Lease, IPPool test-and-patch) against
// the API stand-in over real HTTP: latency and API requests per Acquire.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Suite, Row } from './suite.js';
import { summarize } from './stats.js';
import { startKubeApiServer, type KObj } from '../test/support/kube-apiserver.js';
import { CoreV1Api } from '../src/kube/k8s.js';
import { startAllocator } from '../src/allocator/allocator.js';
import { AllocatorClient } from '../src/allocator/client.js';
import { DEFAULT_TOKEN_AUDIENCE } from '../src/kube/tokenreview.js';
import { silentLogger } from '../src/log.js';

const suite: Suite = {
  name: 'kube',
  async run(ctx) {
    const n = ctx.quick ? 40 : 60; // ≤ 64 tables per node
    const srv = await startKubeApiServer();
    const dir = mkdtempSync(join(tmpdir(), 'rtpe-bench-kube-'));
    const node = 'bench-node';
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, srv.kubeconfig().exportConfig());
    const core = srv.kubeconfig().makeApiClient(CoreV1Api);
    // the pods and their projected tokens exist before the allocator starts (its pod informer has them: the common path)
    const pods: Array<{ pod: KObj; client?: AllocatorClient; tokenFile: string }> = [];
    for (let i = 0; i < n; i++) {
      const pod = srv.store.addPod({ namespace: 'rtpe', name: `rtpe-${i}`, nodeName: node });
      const r = await core.createNamespacedServiceAccountToken({ name: 'default', namespace: 'rtpe',
        body: { spec: { audiences: [DEFAULT_TOKEN_AUDIENCE], expirationSeconds: 3600, boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod.metadata.name, uid: pod.metadata.uid } } } });
      const tokenFile = join(dir, `token-${i}`);
      writeFileSync(tokenFile, r.status?.token ?? '');
      pods.push({ pod, tokenFile });
    }
    const socket = join(dir, 'alloc.sock');
    const h = await startAllocator({
      node, socket, tableRange: { min: 0, max: 63 }, pools: [{ name: 'media', cidr: '10.88.0.0/22' }], stateFile: join(dir, 'unused.json'),
      procRoot: '/nonexistent/proc/rtpengine', leaseTtlMs: 0, sweepIntervalMs: 3_600_000,
      kubernetes: { kubeconfig, leaseNamespace: 'rtpe', poolNamespace: 'kube-system', ipMode: 'reserve', networkStatusInterface: 'net1', resyncIntervalMs: 0 },
      callerAuth: { audience: DEFAULT_TOKEN_AUDIENCE },
    }, { log: silentLogger });
    const acquire = (p: (typeof pods)[number]) => (p.client ??= new AllocatorClient({ socket, tokenFile: p.tokenFile }))
      .acquire({ pod: { namespace: 'rtpe', name: p.pod.metadata.name, uid: p.pod.metadata.uid! }, pools: ['media'] });
    try {
      await acquire(pods[0]!); // warm-up: creates the IPPool
      srv.requests.reset();
      const lat: number[] = [];
      for (const p of pods.slice(1)) {
        const t0 = performance.now();
        await acquire(p);
        lat.push(performance.now() - t0);
      }
      const perAcquire = srv.requests.all().filter((r) => r.verb !== 'watch').length / (n - 1);
      const s = summarize(lat.sort((a, b) => a - b));
      ctx.log(`kube: ${n - 1} sequential new Acquires over gRPC with a token, ${perAcquire.toFixed(2)} API requests each`);
      const rows: Row[] = [
        { suite: 'kube', name: 'Acquire over gRPC (new pod: TokenReview + ORIP informer check + Lease + IPPool patch), stand-in over HTTP', unit: 'ms', value: s.p50, p99: s.p99 },
        { suite: 'kube', name: 'API requests per new Acquire over gRPC (common path, TokenReview and ORIP check included)', unit: 'requests', value: perAcquire, goal: '≤ 3', met: perAcquire <= 3, note: 'TokenReview + Lease create + IPPool patch (ORIPs from an informer)' },
      ];
      // repeated Acquire of the same pod (restarted sidecar): the TokenReview verdict is cached, no write
      srv.requests.reset();
      const again: number[] = [];
      for (const p of pods.slice(1, 21)) {
        const t0 = performance.now();
        await acquire(p);
        again.push(performance.now() - t0);
      }
      const perRepeat = srv.requests.all().filter((r) => r.verb !== 'watch').length / 20;
      rows.push({ suite: 'kube', name: 'Acquire again over gRPC (same UID)', unit: 'ms', value: summarize(again.sort((a, b) => a - b)).p50, note: `${perRepeat.toFixed(2)} requests each` });
      return rows;
    } finally {
      for (const p of pods) p.client?.close();
      await h.close();
      await srv.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
export default suite;
