import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startKubeApiServer } from '../../test/support/kube-apiserver.js';
import { createKubeClient } from '../kube/client.js';
import { silentLogger } from '../log.js';
import { SteppedClock } from '../../test/support/clock.js';
import { waitFor } from '../../test/support/wait.js';
import { createRegistry } from '../metrics.js';
import { DELETION_COST_ANNOTATION, DeletionCost, MIN_DELETION_COST, bucket } from './deletion-cost.js';

test('buckets: 0 when idle, then powers of two', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 7, 8, 100, 1023, 1024].map(bucket), [0, 1, 2, 2, 4, 4, 8, 64, 512, 1024]);
  assert.equal(bucket(-1), 0);
  assert.ok(bucket(2 ** 40) <= 2 ** 31 - 1);
});


test('patches reach the API: coarse, rate-limited, minimum at once on drain, failures not fatal', async () => {
  const srv = await startKubeApiServer();
  const pod = srv.store.addPod({ namespace: 'media', name: 'rtpe-0', nodeName: 'node-a' });
  const kube = createKubeClient(srv.kubeconfig());
  const cost = () => srv.store.get('pods', 'media', 'rtpe-0')!.metadata.annotations?.[DELETION_COST_ANNOTATION];
  const patches = () => srv.requests.count({ verb: 'patch', resource: 'pods' });
  const registry = createRegistry({ defaultMetrics: false });
  const clock = new SteppedClock();
  const dc = new DeletionCost({ kube, namespace: 'media', pod: pod.metadata.name, clock, log: silentLogger, intervalMs: 300_000, registry });
  /** Runs the write a timer started, then waits for its HTTP round trip to end. */
  const idle = () => waitFor('no write in flight', () => (dc as unknown as { inFlight?: unknown }).inFlight === undefined);
  try {
    dc.update(0);
    await clock.advance(0);
    await waitFor('first value written at once', () => cost() === '0');
    await idle();
    assert.equal(patches(), 1);

    // A burst inside one interval: nothing before the interval ends, then one write with the latest bucket.
    for (const n of [1, 2, 3, 5, 6]) dc.update(n);
    await clock.advance(299_999);
    assert.equal(patches(), 1, 'rate-limited: no write inside the interval');
    await clock.advance(1);
    await waitFor('burst written', () => cost() === '4');
    await idle();
    assert.equal(patches(), 2, 'burst coalesced into one patch');

    // Same bucket again: no write at all, and no timer armed for one.
    dc.update(7);
    assert.equal(clock.pending, 0, 'same bucket: nothing scheduled');
    await clock.advance(300_000);
    assert.equal(patches(), 2);

    // The API fails: logged, then retried after the interval.
    srv.faults.failNext(1, 500, { verb: 'patch', resource: 'pods' });
    dc.update(9);
    await clock.advance(0);
    await waitFor('the failed write', () => patches() === 3);
    await idle();
    assert.equal(cost(), '4', 'failed write changed nothing');
    await clock.advance(300_000);
    await waitFor('retried after a failure', () => cost() === '8');
    await idle();
    assert.equal(patches(), 4);
    assert.match(await registry.metrics(), /rtpengine_k8s_deletion_cost_patches_total\{result="error"\} 1/);

    // Drain: the minimum at once (no waiting for the interval), and later updates are ignored.
    dc.update(40);
    await dc.drain();
    assert.equal(cost(), String(MIN_DELETION_COST));
    dc.update(100);
    assert.equal(clock.pending, 0, 'drained: updates schedule nothing');
    await clock.advance(300_000);
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
  const clock = new SteppedClock();
  const dc = new DeletionCost({ kube, namespace: 'media', pod: 'rtpe-1', clock, log: silentLogger, intervalMs: 100 });
  try {
    dc.update(3);
    await clock.advance(0);
    await waitFor('the failed write to end', () => (dc as unknown as { inFlight?: unknown }).inFlight === undefined);
    await clock.advance(150);
    await dc.drain();
    assert.equal(dc.current, undefined);
  } finally {
    await dc.close();
    srv.faults.outage(false);
    await srv.close();
  }
});
