// Suite 'kube': Acquire through the Kubernetes-mode allocator (identity check, Lease, IPPool
// test-and-patch) against the API stand-in over real HTTP: latency and API requests per Acquire.
import type { Suite, Row } from './suite.js';
import { summarize } from './stats.js';
import { startKubeApiServer } from '../test/support/kube-apiserver.js';
import { createKubeClient } from '../src/kube/client.js';
import { AllocatorService } from '../src/allocator/service.js';
import { ProcKernel } from '../src/allocator/kernel.js';
import { kubernetesMode } from '../src/allocator/reconcile-kube.js';
import { systemClock } from '../src/clock.js';
import { silentLogger } from '../src/log.js';

const suite: Suite = {
  name: 'kube',
  async run(ctx) {
    const n = ctx.quick ? 40 : 60; // ≤ 64 tables per node
    const srv = await startKubeApiServer();
    const node = 'bench-node';
    const pools = [{ name: 'media', cidr: '10.88.0.0/22' }];
    const km = kubernetesMode({ node, pools, leaseNamespace: 'rtpe', poolNamespace: 'kube-system', ipMode: 'reserve', networkStatusInterface: 'net1', resyncIntervalMs: 0 },
      silentLogger, createKubeClient(srv.kubeconfig()));
    const service = await AllocatorService.open({ node, tableRange: { min: 0, max: 63 }, pools: km.servicePools, leaseTtlMs: 0 },
      { store: km.store, kernel: new ProcKernel({ root: '/nonexistent/proc/rtpengine' }), clock: systemClock, log: silentLogger });
    const guarded = await km.attach(service);
    try {
      const pods = Array.from({ length: n }, (_, i) => srv.store.addPod({ namespace: 'rtpe', name: `rtpe-${i}`, nodeName: node }));
      await new Promise((r) => setTimeout(r, 200)); // let the informer see them (the common path: pod already cached)
      // warm-up: creates the IPPool once
      await guarded.acquire({ pod: { namespace: 'rtpe', name: pods[0]!.metadata.name, uid: pods[0]!.metadata.uid! }, pools: ['media'] });
      srv.requests.reset();
      const lat: number[] = [];
      for (const p of pods.slice(1)) {
        const t0 = performance.now();
        await guarded.acquire({ pod: { namespace: 'rtpe', name: p.metadata.name, uid: p.metadata.uid! }, pools: ['media'] });
        lat.push(performance.now() - t0);
      }
      const perAcquire = srv.requests.all().filter((r) => r.verb !== 'watch').length / (n - 1);
      const s = summarize(lat.sort((a, b) => a - b));
      ctx.log(`kube: ${n - 1} sequential new Acquires, ${perAcquire.toFixed(2)} requests each`);
      const rows: Row[] = [
        { suite: 'kube', name: 'Acquire (new pod, identity + ORIP get + Lease + IPPool patch), stand-in over HTTP', unit: 'ms', value: s.p50, p99: s.p99 },
        { suite: 'kube', name: 'API requests per new Acquire (common path, ORIP check included)', unit: 'requests', value: perAcquire, goal: '≤ 3', met: perAcquire <= 3, note: 'Lease create + ORIP get + IPPool patch' },
      ];
      // repeated Acquire of the same pod (restarted sidecar): one Lease replace
      srv.requests.reset();
      const again: number[] = [];
      for (const p of pods.slice(1, 21)) {
        const t0 = performance.now();
        await guarded.acquire({ pod: { namespace: 'rtpe', name: p.metadata.name, uid: p.metadata.uid! }, pools: ['media'] });
        again.push(performance.now() - t0);
      }
      const perRepeat = srv.requests.all().filter((r) => r.verb !== 'watch').length / 20;
      rows.push({ suite: 'kube', name: 'Acquire again (same UID)', unit: 'ms', value: summarize(again.sort((a, b) => a - b)).p50, note: `${perRepeat.toFixed(2)} requests each` });
      return rows;
    } finally {
      await km.stop();
      await service.drain();
      await srv.close();
    }
  },
};
export default suite;
