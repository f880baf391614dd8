// #13 defect 5: an Acquire that meets 429 Too Many Requests (API priority and fairness) waits
// Retry-After and succeeds instead of failing; a throttle that does not end fails it with a coded
// error after a bounded wait, leaving nothing half-done.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kubeTarget, needsStandIn } from '../support/kube-target.js';
import { createKubeClient, type Pod } from '../../src/kube/client.js';
import { AllocatorService } from '../../src/allocator/service.js';
import { ProcKernel } from '../../src/allocator/kernel.js';
import { KubeStore } from '../../src/allocator/store-kube.js';
import { KubeReconciler } from '../../src/allocator/reconcile-kube.js';
import { compilePool, type PoolConfig } from '../../src/allocator/pools.js';
import { systemClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { isCoded } from '../../src/errors.js';
import { ProcRtpengine } from '../support/proc-rtpengine.js';
import { randomRange } from '../support/kube-cleanup.js';

const podRef = (p: Pod) => ({ namespace: p.metadata!.namespace!, name: p.metadata!.name!, uid: p.metadata!.uid! });

test('Acquire under 429: waits Retry-After (as sent, each wait capped at 5 s) and succeeds; an endless 429 fails it (coded) after a bounded wait', { skip: needsStandIn() }, async () => {
  const t = await kubeTarget();
  const api = t.standIn!;
  const proc = new ProcRtpengine();
  const pool: PoolConfig = { name: 'media', cidr: randomRange(24) };
  const waits: number[] = [];
  // the client's sleep is injected: the test records the waits instead of spending them
  const kube = createKubeClient(t.kubeconfig(), { sleep: async (ms) => { waits.push(ms); } });
  const node = t.nodes[0]!;
  const store = new KubeStore({ kube, node, leaseNamespace: t.namespace, poolNamespace: 'kube-system', pools: [{ span: compilePool(pool) }] });
  const service = await AllocatorService.open({ node, tableRange: { min: 0, max: 63 }, pools: [pool], leaseTtlMs: 0 },
    { store, kernel: new ProcKernel({ root: proc.root, fs: proc }), clock: systemClock, log: silentLogger });
  const rec = new KubeReconciler({ kube, node, service, store, resyncMs: 0, log: silentLogger });
  await rec.start();
  try {
    api.faults.failNext(2, 429, { verb: 'create', resource: 'leases' });
    const a = await rec.acquire({ pod: podRef(await t.createPod({ name: 'th-1', nodeName: node })), pools: ['media'] });
    assert.equal(a.table, 0);
    assert.deepEqual(waits, [1000, 1000]);
    assert.equal(api.requests.all().filter((r) => r.verb === 'create' && r.resource === 'leases').map((r) => r.status).join(','), '429,429,201');
    // Retry-After as the server says (3 s), and capped per wait (30 s → 5 s): the injected sleep records, no clock runs
    waits.length = 0;
    api.faults.failNext(1, 429, { verb: 'create', resource: 'leases', retryAfterSeconds: 3 });
    api.faults.failNext(1, 429, { verb: 'patch', resource: 'ippools', retryAfterSeconds: 30 });
    await rec.acquire({ pod: podRef(await t.createPod({ name: 'th-ra', nodeName: node })), pools: ['media'] });
    assert.deepEqual(waits, [3000, 5000]);
    waits.length = 0;
    api.faults.failNext(1000, 429, { verb: 'patch', resource: 'ippools' });
    const err = await rec.acquire({ pod: podRef(await t.createPod({ name: 'th-2', nodeName: node })), pools: ['media'] }).catch((e) => e);
    assert.ok(isCoded(err, 'ALLOC_STATE_WRITE'), String(err));
    assert.match(err.message, /429/);
    assert.ok(waits.length === 5 && waits.reduce((x, y) => x + y, 0) <= 15_000, `bounded: ${waits.join(',')}`);
    api.faults.clear();
    assert.equal(service.list().allocations.length, 2, 'the failed Acquire left no allocation');
    assert.equal((await kube.listLeases(t.namespace, 'rtpengine-k8s.io/table')).length, 2, 'and no Lease');
  } finally {
    await rec.stop(); await service.drain();
    await t.close(); proc.remove();
  }
});
