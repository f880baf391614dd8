import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startKubeApiServer } from '../../test/support/kube-apiserver.js';
import { createKubeClient } from '../kube/client.js';
import { silentLogger } from '../log.js';
import { systemClock } from '../clock.js';
import { createRegistry } from '../metrics.js';
import { DELETION_COST_ANNOTATION, DeletionCost, MIN_DELETION_COST, bucket } from './deletion-cost.js';

test('buckets: 0 when idle, then powers of two', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 7, 8, 100, 1023, 1024].map(bucket), [0, 1, 2, 2, 4, 4, 8, 64, 512, 1024]);
  assert.equal(bucket(-1), 0);
  assert.ok(bucket(2 ** 40) <= 2 ** 31 - 1);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(fn: () => boolean, ms = 5000) {
  const end = Date.now() + ms;
  while (!fn()) { if (Date.now() > end) return false; await sleep(20); }
  return true;
}

test('patches reach the API: coarse, rate-limited, minimum at once on drain, failures not fatal', async () => {
  const srv = await startKubeApiServer();
  const pod = srv.store.addPod({ namespace: 'media', name: 'rtpe-0', nodeName: 'node-a' });
  const kube = createKubeClient(srv.kubeconfig());
  const cost = () => srv.store.get('pods', 'media', 'rtpe-0')!.metadata.annotations?.[DELETION_COST_ANNOTATION];
  const patches = () => srv.requests.count({ verb: 'patch', resource: 'pods' });
  const registry = createRegistry({ defaultMetrics: false });
  const dc = new DeletionCost({ kube, namespace: 'media', pod: pod.metadata.name, clock: systemClock, log: silentLogger, intervalMs: 300, registry });
  try {
    dc.update(0);
    assert.ok(await until(() => cost() === '0'), 'first value written at once');
    assert.equal(patches(), 1);

    // A burst inside one interval: one write, with the latest bucket.
    for (const n of [1, 2, 3, 5, 6]) dc.update(n);
    assert.ok(await until(() => cost() === '4'));
    await sleep(400);
    assert.equal(patches(), 2, 'burst coalesced into one patch');

    // Same bucket again: no write at all.
    dc.update(7);
    await sleep(400);
    assert.equal(patches(), 2);

    // The API fails: logged, then retried after the interval.
    srv.faults.failNext(1, 500, { verb: 'patch', resource: 'pods' });
    dc.update(9);
    assert.ok(await until(() => cost() === '8'), 'retried after a failure');
    assert.equal(patches(), 4);
    assert.match(await registry.metrics(), /rtpengine_k8s_deletion_cost_patches_total\{result="error"\} 1/);

    // Drain: the minimum at once (no waiting for the interval), and later updates are ignored.
    dc.update(40);
    await dc.drain();
    assert.equal(cost(), String(MIN_DELETION_COST));
    dc.update(100);
    await sleep(400);
    assert.equal(cost(), String(MIN_DELETION_COST));
  } finally {
    await dc.close();
    await srv.close();
  }
});

test('an unreachable API never throws out of update() or drain()', async () => {
  const srv = await startKubeApiServer();
  srv.store.addPod({ namespace: 'media', name: 'rtpe-1', nodeName: 'node-a' });
  const kube = createKubeClient(srv.kubeconfig());
  srv.faults.outage(true);
  const dc = new DeletionCost({ kube, namespace: 'media', pod: 'rtpe-1', clock: systemClock, log: silentLogger, intervalMs: 100 });
  try {
    dc.update(3);
    await sleep(150);
    await dc.drain();
    assert.equal(dc.current, undefined);
  } finally {
    await dc.close();
    srv.faults.outage(false);
    await srv.close();
  }
});
