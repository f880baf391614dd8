// The node sweeper (ADR 0013): what the allocator of a node that no longer exists left in the API —
// table Leases held by a finalizer and IPPool entries — is freed by the one leader allocator; live
// nodes' allocations are untouched; the leader Lease moves only when it expires.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { kubeTarget, needsStandIn, type KubeTarget } from '../support/kube-target.js';
import { createKubeClient, type IPPool, type Pod } from '../../src/kube/client.js';
import { AllocatorService } from '../../src/allocator/service.js';
import { ProcKernel } from '../../src/allocator/kernel.js';
import { KubeStore } from '../../src/allocator/store-kube.js';
import { KubeReconciler } from '../../src/allocator/reconcile-kube.js';
import { NodeSweeper, SWEEPER_LEASE, type Freed } from '../../src/allocator/sweeper.js';
import { allocatorMetrics } from '../../src/allocator/metrics.js';
import { ipPoolName } from '../../src/allocator/ippool.js';
import { compilePool, type PoolConfig } from '../../src/allocator/pools.js';
import { createRegistry } from '../../src/metrics.js';
import { systemClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { ProcRtpengine } from '../support/proc-rtpengine.js';
import { SteppedClock } from '../support/clock.js';
import { cleanupKube, randomRange } from '../support/kube-cleanup.js';

const POOL_NS = 'kube-system';
const podRef = (p: Pod) => ({ namespace: p.metadata!.namespace!, name: p.metadata!.name!, uid: p.metadata!.uid! });

async function agent(t: KubeTarget, pool: PoolConfig, node: string, proc: ProcRtpengine) {
  const kube = createKubeClient(t.kubeconfig());
  const store = new KubeStore({ kube, node, leaseNamespace: t.namespace, poolNamespace: POOL_NS, pools: [{ span: compilePool(pool) }], ippool: { jitterMs: 2 } });
  const service = await AllocatorService.open({ node, tableRange: { min: 0, max: 63 }, pools: [pool], leaseTtlMs: 0 },
    { store, kernel: new ProcKernel({ root: proc.root, fs: proc }), clock: systemClock, log: silentLogger });
  const reconciler = new KubeReconciler({ kube, node, service, store, resyncMs: 0, log: silentLogger });
  await reconciler.start();
  return { reconciler, stop: async () => { await reconciler.stop(); await service.drain(); } };
}

test('node sweeper: a vanished node\'s Leases (finalizers included) and IPPool entries are freed by the leader; live nodes untouched; counted', async () => {
  const t = await kubeTarget();
  const pool: PoolConfig = { name: 'media', cidr: randomRange(24) };
  const poolName = ipPoolName(compilePool(pool).range);
  const procGone = new ProcRtpengine();
  const procLive = new ProcRtpengine();
  const gone = `vanished-${randomBytes(3).toString('hex')}`;
  const live = t.nodes[0]!;
  const kube = createKubeClient(t.kubeconfig());
  const scope = { kube, leaseNamespace: t.namespace, poolNamespace: POOL_NS, pools: [{ span: compilePool(pool) }], log: silentLogger };
  try {
    // The allocator of `gone` hands out two allocations, then its node disappears without cleanup.
    const a = await agent(t, pool, gone, procGone);
    for (const name of ['g1', 'g2']) await a.reconciler.acquire({ pod: podRef(await t.createPod({ name, nodeName: gone })), pools: ['media'] });
    await a.stop();
    const b = await agent(t, pool, live, procLive);
    await b.reconciler.acquire({ pod: podRef(await t.createPod({ name: 'l1', nodeName: live })), pools: ['media'] });
    const leases = async () => (await kube.listLeases(t.namespace, 'app.kubernetes.io/managed-by=rtpengine-k8s,rtpengine-k8s.io/table')).map((l) => l.metadata!.annotations!['rtpengine-k8s.io/node']).sort();
    const entryNodes = async () => Object.values(((await kube.getIPPool(POOL_NS, poolName)) as IPPool).spec.allocations ?? {}).map((e) => e.id.split('/')[1]).sort();
    assert.deepEqual(await leases(), [gone, gone, live].sort());
    assert.deepEqual(await entryNodes(), [gone, gone, live].sort());

    const registry = createRegistry({ defaultMetrics: false });
    const metrics = allocatorMetrics(registry);
    const clock = new SteppedClock();
    const leader = new NodeSweeper({ ...scope, identity: live, intervalMs: 0, leaseDurationSeconds: 15, clock, onFreed: (f: Freed) => metrics.swept(f) });
    assert.deepEqual(await leader.round(), [], 'first seen absent: nothing freed yet');
    await clock.advance(15_000);
    const freed = await leader.round();
    assert.deepEqual(freed.map((f) => `${f.kind} ${f.node}`).sort(), [`ippool-entry ${gone}`, `ippool-entry ${gone}`, `lease ${gone}`, `lease ${gone}`]);
    assert.deepEqual(await leases(), [live], 'the vanished node\'s Leases are gone, finalizers and all');
    assert.deepEqual(await entryNodes(), [live]);
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === 'rtpengine_k8s_allocator_swept_total')!;
    assert.deepEqual(Object.fromEntries(m.values.map((v) => [v.labels.kind, v.value])), { lease: 2, 'ippool-entry': 2 });

    // Another allocator is not the leader while the Lease is fresh; after it expires (unchanged for a
    // lease duration of its own time) it takes over.
    const other = t.nodes[1] ?? `${live}-other`;
    const otherClock = new SteppedClock();
    const later = new NodeSweeper({ ...scope, identity: other, intervalMs: 0, clock: otherClock });
    assert.equal(await later.lead(), false);
    await otherClock.advance(15_000);
    assert.equal(await later.lead(), true);
    const l = (await kube.getLease(t.namespace, SWEEPER_LEASE))!;
    assert.equal(l.spec?.holderIdentity, other);
    assert.equal(l.spec?.leaseTransitions, 1);
    assert.equal(await leader.lead(), false, 'the old leader sees the new holder');
    await b.stop();
  } finally {
    await kube.deleteLease(t.namespace, SWEEPER_LEASE).catch(() => undefined);
    await cleanupKube(t.kubeconfig(), { poolNamespace: POOL_NS, pools: [poolName], leaseNamespace: t.namespace }).catch(() => undefined);
    await t.close();
    procGone.remove(); procLive.remove();
  }
});

/** A vanished node's two allocations and a live node's one, in a fresh pool. */
async function vanishedAndLive(t: KubeTarget) {
  const pool: PoolConfig = { name: 'media', cidr: randomRange(24) };
  const poolName = ipPoolName(compilePool(pool).range);
  const procs = [new ProcRtpengine(), new ProcRtpengine()];
  const gone = `vanished-${randomBytes(3).toString('hex')}`;
  const live = t.nodes[0]!;
  const kube = createKubeClient(t.kubeconfig());
  const a = await agent(t, pool, gone, procs[0]!);
  for (const name of ['g1', 'g2']) await a.reconciler.acquire({ pod: podRef(await t.createPod({ name, nodeName: gone })), pools: ['media'] });
  await a.stop();
  const b = await agent(t, pool, live, procs[1]!);
  await b.reconciler.acquire({ pod: podRef(await t.createPod({ name: 'l1', nodeName: live })), pools: ['media'] });
  const entryNodes = async () => Object.values(((await kube.getIPPool(POOL_NS, poolName)) as IPPool).spec.allocations ?? {}).map((e) => e.id.split('/')[1]).sort();
  const leaseNodes = async () => (await kube.listLeases(t.namespace, 'app.kubernetes.io/managed-by=rtpengine-k8s,rtpengine-k8s.io/table')).map((l) => l.metadata!.annotations!['rtpengine-k8s.io/node']).sort();
  const all = [gone, gone, live].sort();
  const scope = { kube, leaseNamespace: t.namespace, poolNamespace: POOL_NS, pools: [{ span: compilePool(pool) }], log: silentLogger };
  return {
    gone, live, kube, scope, entryNodes, leaseNodes, all,
    close: async () => {
      await b.stop();
      await kube.deleteLease(t.namespace, SWEEPER_LEASE).catch(() => undefined);
      await cleanupKube(t.kubeconfig(), { poolNamespace: POOL_NS, pools: [poolName], leaseNamespace: t.namespace }).catch(() => undefined);
      for (const p of procs) p.remove();
    },
  };
}

test('node sweeper (review #1): a failing, empty or foreign node list frees nothing; a node is freed only after two absences a lease period apart, and one seen again starts over', { skip: needsStandIn() }, async () => {
  const t = await kubeTarget();
  const api = t.standIn!;
  const s = await vanishedAndLive(t);
  try {
    const clock = new SteppedClock();
    const sweeper = new NodeSweeper({ ...s.scope, identity: s.live, intervalMs: 0, leaseDurationSeconds: 15, clock });
    const untouched = async (why: string) => { assert.deepEqual(await s.entryNodes(), s.all, why); assert.deepEqual(await s.leaseNodes(), s.all, why); };

    // The node list fails: the round fails, nothing is freed.
    api.faults.failNext(1, 500, { verb: 'list', resource: 'nodes' });
    await assert.rejects(sweeper.round());
    await untouched('failed node list');

    // An empty list (wrong context, API answering from an empty cache): the live node would look vanished.
    const nodes = api.store.list('nodes');
    for (const n of nodes) api.store.delete('nodes', '', n.metadata.name);
    assert.deepEqual(await sweeper.round(), [], 'empty node list');
    await clock.advance(60_000);
    assert.deepEqual(await sweeper.round(), [], 'still empty, still lacking our own node');
    await untouched('empty node list');
    for (const n of nodes) api.store.create('nodes', { metadata: { name: n.metadata.name } });

    // The right list: first absence noted, nothing freed; too soon after, still nothing.
    assert.deepEqual(await sweeper.round(), [], 'first absence');
    await clock.advance(14_999);
    assert.deepEqual(await sweeper.round(), [], 'second absence less than a lease period later');
    await untouched('absent too briefly');

    // The node comes back (re-registered) for one round: its absence count starts over.
    api.store.create('nodes', { metadata: { name: s.gone } });
    await clock.advance(1);
    assert.deepEqual(await sweeper.round(), [], 'present again');
    api.store.delete('nodes', '', s.gone);
    await clock.advance(15_000);
    assert.deepEqual(await sweeper.round(), [], 'absent again: a first absence once more');
    await untouched('re-registered node');
    await clock.advance(15_000);
    const freed = await sweeper.round();
    assert.deepEqual(freed.map((f) => `${f.kind} ${f.node}`).sort(), [`ippool-entry ${s.gone}`, `ippool-entry ${s.gone}`, `lease ${s.gone}`, `lease ${s.gone}`]);
    assert.deepEqual(await s.entryNodes(), [s.live]);
    assert.deepEqual(await s.leaseNodes(), [s.live]);
  } finally {
    api.faults.clear();
    await s.close();
    await t.close();
  }
});

test('node sweeper (review #2): only the leader sweeps — a non-leader\'s rounds free nothing while a vanished node\'s objects wait', async () => {
  const t = await kubeTarget();
  const s = await vanishedAndLive(t);
  try {
    const clock = new SteppedClock();
    const leader = new NodeSweeper({ ...s.scope, identity: s.live, intervalMs: 0, leaseDurationSeconds: 15, clock });
    assert.equal(await leader.lead(), true);
    const other = new NodeSweeper({ ...s.scope, identity: t.nodes[1] ?? `${s.live}-other`, intervalMs: 0, leaseDurationSeconds: 15, clock });
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await other.round(), [], `non-leader round ${i + 1}`);
      await clock.advance(15_000);
      assert.equal(await leader.lead(), true, 'the leader renews');
    }
    assert.deepEqual(await s.entryNodes(), s.all, 'the vanished node\'s entries remain');
    assert.deepEqual(await s.leaseNodes(), s.all, 'and its Leases');
    assert.equal((await s.kube.getLease(t.namespace, SWEEPER_LEASE))!.spec?.holderIdentity, s.live, 'the leader keeps the Lease');
  } finally {
    await s.close();
    await t.close();
  }
});

test('node sweeper (review #3): leader expiry runs on the candidate\'s own elapsed time since the record last changed, not on clocks agreeing', async () => {
  const t = await kubeTarget();
  const s = await vanishedAndLive(t);
  try {
    const aClock = new SteppedClock(Date.now());
    const a = new NodeSweeper({ ...s.scope, identity: s.live, intervalMs: 0, leaseDurationSeconds: 15, clock: aClock });
    assert.equal(await a.lead(), true);
    // B's wall clock is an hour ahead: its view of A's renewTime says "expired long ago" — it must not matter.
    const bClock = new SteppedClock(Date.now() + 3_600_000);
    const b = new NodeSweeper({ ...s.scope, identity: t.nodes[1] ?? `${s.live}-other`, intervalMs: 0, leaseDurationSeconds: 15, clock: bClock });
    assert.equal(await b.lead(), false, 'a clock ahead does not take a fresh Lease');
    await bClock.advance(10_000);
    await aClock.advance(10_000);
    assert.equal(await a.lead(), true, 'A renews');
    await bClock.advance(10_000);
    assert.equal(await b.lead(), false, 'B sees A\'s renewed record now (20 s after it first saw the Lease): fresh again');
    await bClock.advance(14_999);
    assert.equal(await b.lead(), false, 'unchanged for just under 15 s of B\'s time');
    await bClock.advance(1);
    assert.equal(await b.lead(), true, 'unchanged for 15 s of B\'s time: expired, B takes over');
    assert.equal((await s.kube.getLease(t.namespace, SWEEPER_LEASE))!.spec?.holderIdentity, t.nodes[1] ?? `${s.live}-other`);
    // The round timer runs on the clock port: B sweeps when its clock says so, not the wall clock.
    const timed = new NodeSweeper({ ...s.scope, identity: t.nodes[1] ?? `${s.live}-other`, intervalMs: 1000, leaseDurationSeconds: 15, clock: bClock });
    timed.start();
    assert.equal(bClock.pending, 1, 'one interval timer on the injected clock');
    await timed.stop();
    assert.equal(bClock.pending, 0);
  } finally {
    await s.close();
    await t.close();
  }
});
