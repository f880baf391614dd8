// Kubernetes mode end to end: the real AllocatorService over the `kubernetes` store, the real
// @kubernetes/client-node, and the API stand-in (or a real cluster with KUBECONFIG). Race with a
// whereabouts-algorithm writer, restart after a real kill mid-burst, identity, reconciliation,
// R2 survival, foreign entries that come and go, busy tables, release order across restarts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kubeTarget, needsStandIn, type KubeTarget } from '../support/kube-target.js';
import { createKubeClient, kubeStatus, type KubePort, type IPPool, type Pod } from '../../src/kube/client.js';
import { AllocatorService } from '../../src/allocator/service.js';
import { ProcKernel } from '../../src/allocator/kernel.js';
import { KubeStore, leaseName, releaseTimesName } from '../../src/allocator/store-kube.js';
import { KubeReconciler, guard } from '../../src/allocator/reconcile-kube.js';
import { allocatorMetrics } from '../../src/allocator/metrics.js';
import { AllocatorClient } from '../../src/allocator/client.js';
import type { AllocatorConfig } from '../../src/allocator/allocator.js';
import { createRegistry } from '../../src/metrics.js';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ipPoolName, IPPoolWriter } from '../../src/allocator/ippool.js';
import { compilePool, ipFromOffset, type PoolConfig } from '../../src/allocator/pools.js';
import { NETWORK_STATUS } from '../../src/allocator/identity.js';
import { systemClock } from '../../src/clock.js';
import { ProcRtpengine } from '../support/proc-rtpengine.js';
import { cleanupKube, randomRange } from '../support/kube-cleanup.js';
import { silentLogger } from '../../src/log.js';
import { isCoded } from '../../src/errors.js';

const POOL_NS = 'kube-system';

/** One test's world: the target, its own random pool range, and cleanup of what it wrote. */
interface World { t: KubeTarget; pool: PoolConfig; poolName: string; kube: KubePort; proc: ProcRtpengine; done(): Promise<void> }
async function world(prefix = 24): Promise<World> {
  const t = await kubeTarget();
  const pool: PoolConfig = { name: 'media', cidr: randomRange(prefix) };
  const poolName = ipPoolName(compilePool(pool).range);
  const proc = new ProcRtpengine();
  return {
    t, pool, poolName, kube: createKubeClient(t.kubeconfig()), proc,
    done: async () => {
      await cleanupKube(t.kubeconfig(), { poolNamespace: POOL_NS, pools: [poolName], leaseNamespace: t.namespace }).catch(() => undefined);
      await t.close();
      proc.remove();
    },
  };
}

interface Agent { service: AllocatorService; reconciler: KubeReconciler; store: KubeStore; stop(): Promise<void> }
async function startAgent(w: World, node: string, opts: { resyncMs?: number; networkStatus?: boolean; onReclaim?: (r: string) => void; tables?: { min: number; max: number } } = {}): Promise<Agent> {
  const kube = createKubeClient(w.t.kubeconfig(), { retryMinMs: 50, retryMaxMs: 500 });
  const pools = opts.networkStatus ? [] : [w.pool];
  const store = new KubeStore({ kube, node, leaseNamespace: w.t.namespace, poolNamespace: POOL_NS, pools: pools.map((p) => ({ span: compilePool(p) })), ippool: { jitterMs: 2 } });
  const service = await AllocatorService.open({ node, tableRange: opts.tables ?? { min: 0, max: 63 }, pools, leaseTtlMs: 0 },
    { store, kernel: new ProcKernel({ root: w.proc.root, fs: w.proc }), clock: systemClock, log: silentLogger });
  const reconciler = new KubeReconciler({ kube, node, service, store, resyncMs: opts.resyncMs ?? 0, log: silentLogger, onReclaim: opts.onReclaim,
    networkStatusPools: opts.networkStatus ? [{ pool: w.pool, interface: 'net1' }] : [] });
  await reconciler.start();
  return { service, reconciler, store, stop: async () => { await reconciler.stop(); await service.drain(); } };
}

const podRef = (p: Pod) => ({ namespace: p.metadata!.namespace!, name: p.metadata!.name!, uid: p.metadata!.uid! });
async function readPool(w: World): Promise<IPPool> { return (await w.kube.getIPPool(POOL_NS, w.poolName))!; }
const until = async (cond: () => boolean | Promise<boolean>, ms = 8000) => {
  const end = Date.now() + ms;
  while (!(await cond())) { if (Date.now() > end) throw new Error('condition not reached'); await new Promise((r) => setTimeout(r, 20)); }
};
const TABLE_LEASES = 'app.kubernetes.io/managed-by=rtpengine-k8s,rtpengine-k8s.io/table';

/** A writer following whereabouts' documented algorithm: read, lowest free offset, test-and-patch, retry. */
async function whereaboutsAssign(w: World, podref: string, containerId: string): Promise<string> {
  const span = compilePool(w.pool);
  for (let i = 0; i < 100; i++) {
    let pool = await w.kube.getIPPool(POOL_NS, w.poolName);
    if (!pool) {
      try { pool = await w.kube.createIPPool(POOL_NS, { metadata: { name: w.poolName }, spec: { range: span.range, allocations: {} } }); } catch (e) { if (kubeStatus(e) === 409) continue; throw e; }
    }
    const taken = new Set(Object.keys(pool.spec.allocations ?? {}));
    let off = span.first;
    while (off <= span.last && taken.has(off.toString())) off++;
    if (off > span.last) throw new Error('pool full');
    try {
      await w.kube.patchIPPool(POOL_NS, w.poolName, [
        { op: 'test', path: '/metadata/resourceVersion', value: pool.metadata.resourceVersion },
        { op: 'test', path: `/spec/allocations/${off}`, value: null },
        { op: 'add', path: `/spec/allocations/${off}`, value: { id: containerId, podref, ifname: 'net1' } },
      ]);
      return off.toString();
    } catch (e) {
      if (kubeStatus(e) === 422 || kubeStatus(e) === 409) continue;
      throw e;
    }
  }
  throw new Error('whereabouts writer: retries exhausted');
}

/** whereabouts' CNI DEL for one container: remove the entry with that id, test-and-patch. */
async function whereaboutsRelease(w: World, containerId: string): Promise<void> {
  const writer = new IPPoolWriter(w.kube, POOL_NS);
  const pool = await readPool(w);
  for (const [off, e] of Object.entries(pool.spec.allocations ?? {})) if (e.id === containerId) await writer.release(w.poolName, pool.spec.range, off, e.id);
}

test('race: allocator and a whereabouts-algorithm writer on one IPPool → no duplicates, no lost entries', async () => {
  const w = await world();
  const node = w.t.nodes[0]!;
  const agent = await startAgent(w, node);
  try {
    const pods = await Promise.all(Array.from({ length: 20 }, (_, i) => w.t.createPod({ name: `race-${i}`, nodeName: node })));
    const ours = pods.map((p) => agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] }));
    const theirs = Array.from({ length: 20 }, (_, i) => whereaboutsAssign(w, `other/wb-${i}`, `ctr-${i}`));
    const [a, wb] = await Promise.all([Promise.all(ours), Promise.all(theirs)]);
    const ourIps = a.map((v) => v.addresses[0]!.ip);
    const theirIps = wb.map((o) => ipFromOffset(compilePool(w.pool), o));
    assert.equal(new Set([...ourIps, ...theirIps]).size, 40, 'no address handed out twice');
    const entries = (await readPool(w)).spec.allocations ?? {};
    assert.equal(Object.keys(entries).length, 40, 'every allocation is an IPPool entry (none lost)');
    for (const v of a) assert.match(entries[v.addresses[0]!.offset]!.id, /^rtpe-alloc\//);
    for (let i = 0; i < 20; i++) assert.equal(entries[wb[i]!]!.id, `ctr-${i}`);
    assert.equal(new Set(a.map((v) => v.table)).size, 20, 'tables unique');
  } finally { await agent.stop(); await w.done(); }
});

test('foreign entries freed after start: a /29 filled by whereabouts and emptied again is usable (conflict refresh)', async () => {
  const w = await world(29); // 6 usable addresses
  const node = w.t.nodes[0]!;
  const agent = await startAgent(w, node);
  try {
    const filled = await Promise.all(Array.from({ length: 6 }, (_, i) => whereaboutsAssign(w, `other/wb-${i}`, `fill-${i}`)));
    assert.equal(new Set(filled).size, 6);
    const first = await w.t.createPod({ name: 'after-fill', nodeName: node });
    // the pool is really full now: the allocator learns that from its first conflict
    await assert.rejects(agent.reconciler.acquire({ pod: podRef(first), pools: ['media'] }), (e: unknown) => isCoded(e, 'ALLOC_POOL_EXHAUSTED'));
    for (let i = 0; i < 6; i++) await whereaboutsRelease(w, `fill-${i}`);
    assert.deepEqual((await readPool(w)).spec.allocations ?? {}, {}, 'the IPPool is empty');
    // the resync replaces the view of other writers' entries
    await agent.reconciler.resync();
    assert.equal(agent.service.poolStats()[0]!.inUse, 0, 'nothing held after the resync');
    const v = await agent.reconciler.acquire({ pod: podRef(first), pools: ['media'] });
    assert.equal(v.addresses[0]!.offset, String(compilePool(w.pool).first), 'lowest address again');
    // and without a resync: fill, let us see the conflict, empty most of it, acquire again (the
    // service believes the pool full; "exhausted" is re-judged on a fresh read)
    await Promise.all(Array.from({ length: 5 }, (_, i) => whereaboutsAssign(w, `other/wb2-${i}`, `fill2-${i}`)));
    const second = await w.t.createPod({ name: 'after-fill-2', nodeName: node });
    await assert.rejects(agent.reconciler.acquire({ pod: podRef(second), pools: ['media'] }), (e: unknown) => isCoded(e, 'ALLOC_POOL_EXHAUSTED'));
    for (let i = 0; i < 4; i++) await whereaboutsRelease(w, `fill2-${i}`);
    const third = await w.t.createPod({ name: 'after-fill-3', nodeName: node });
    const v3 = await agent.reconciler.acquire({ pod: podRef(third), pools: ['media'] });
    const entries = (await readPool(w)).spec.allocations ?? {};
    assert.equal(v3.addresses[0]!.offset, String(compilePool(w.pool).first + 1n), 'the lowest address whereabouts freed');
    assert.match(entries[v3.addresses[0]!.offset]!.id, /^rtpe-alloc\//);
    assert.equal(Object.keys(entries).length, 3, 'ours (2) + the one whereabouts entry left');
  } finally { await agent.stop(); await w.done(); }
});

test('foreign entries added after start: 10 whereabouts entries on a /24 cost one conflict, not ALLOC_CONFLICT', async () => {
  const w = await world(24);
  const node = w.t.nodes[0]!;
  const agent = await startAgent(w, node);
  try {
    const warm = await w.t.createPod({ name: 'warm', nodeName: node });
    await agent.reconciler.acquire({ pod: podRef(warm), pools: ['media'] }); // offset 1, pool exists
    for (let i = 0; i < 10; i++) await whereaboutsAssign(w, `other/wb-${i}`, `late-${i}`); // offsets 2..11
    const pods = await Promise.all(Array.from({ length: 3 }, (_, i) => w.t.createPod({ name: `late-${i}`, nodeName: node })));
    const got: string[] = [];
    for (const p of pods) got.push((await agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] })).addresses[0]!.offset);
    assert.deepEqual(got, ['12', '13', '14'], 'the lowest free offsets after the whereabouts entries');
    assert.equal(agent.service.poolStats()[0]!.inUse, 14, '4 ours + 10 foreign, nothing else held');
  } finally { await agent.stop(); await w.done(); }
});

test('restart: allocator process SIGKILLed mid-burst, restarted → no duplicate table or IP; pods deleted while down reclaimed', { timeout: 120_000 }, async () => {
  const w = await world();
  const node = w.t.nodes[0]!;
  const dir = mkdtempSync(join(tmpdir(), 'rtpe-kube-kill-'));
  const kubeconfigFile = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigFile, w.t.kubeconfig().exportConfig());
  const config: AllocatorConfig = {
    node, socket: join(dir, 'alloc.sock'), tableRange: { min: 0, max: 63 }, pools: [w.pool], stateFile: join(dir, 'unused.json'),
    procRoot: w.proc.root, leaseTtlMs: 0, sweepIntervalMs: 1000,
    kubernetes: { kubeconfig: kubeconfigFile, leaseNamespace: w.t.namespace, poolNamespace: POOL_NS, ipMode: 'reserve', networkStatusInterface: 'net1', resyncIntervalMs: 0 },
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/allocator-child.ts', JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const client = new AllocatorClient({ socket: config.socket, timeoutMs: 20_000 });
  try {
    let err = '';
    child.stderr!.on('data', (d) => { err += d; });
    await new Promise<void>((ok, fail) => { child.stdout!.once('data', () => ok()); child.once('exit', (c) => fail(new Error(`allocator child exited ${c}: ${err}`))); });
    const pods = await Promise.all(Array.from({ length: 24 }, (_, i) => w.t.createPod({ name: `burst-${i}`, nodeName: node })));
    let resolved = 0;
    const inflight = pods.map((p) => client.acquire({ pod: podRef(p) }).then((v) => { resolved++; return v; }, () => undefined));
    await until(() => resolved >= 4, 20_000);
    child.kill('SIGKILL'); // no drain: whatever is mid-write stays half-done in the API
    const pendingAtKill = 24 - resolved;
    await new Promise((r) => child.once('exit', r));
    const done = (await Promise.all(inflight)).filter((v): v is NonNullable<typeof v> => !!v);
    assert.ok(pendingAtKill > 0, 'the kill interrupted Acquires in flight');
    assert.ok(done.length < 24, 'some Acquires never got an answer');
    for (const v of done) w.proc.daemonStart(v.table); // their daemons hold their tables
    // pods deleted while no allocator runs (their daemons die with them)
    const gone = done.slice(0, 3).map((v) => v.pod);
    for (const g of gone) { w.proc.daemonClose(done.find((v) => v.pod.uid === g.uid)!.table); await w.t.deletePod(g.name); }

    const second = await startAgent(w, node);
    try {
      const after = second.service.list().allocations;
      assert.ok(gone.every((g) => !after.some((a) => a.pod.uid === g.uid)), 'pods deleted while down were reclaimed by the start-up resync');
      for (const g of gone) assert.ok(!w.proc.tables().includes(done.find((v) => v.pod.uid === g.uid)!.table), 'their kernel tables were deleted');
      const live = pods.filter((p) => !gone.some((g) => g.uid === p.metadata!.uid));
      const again = await Promise.all(live.map((p) => second.reconciler.acquire({ pod: podRef(p), pools: ['media'] })));
      for (const v of again) {
        const before = done.find((d) => d.pod.uid === v.pod.uid);
        if (before) { assert.equal(v.table, before.table, 'acknowledged table kept'); assert.equal(v.addresses[0]!.ip, before.addresses[0]!.ip, 'acknowledged IP kept'); }
      }
      assert.equal(new Set(again.map((v) => v.table)).size, again.length, 'no duplicate table');
      assert.equal(new Set(again.map((v) => v.addresses[0]!.ip)).size, again.length, 'no duplicate IP');
      const entries = (await readPool(w)).spec.allocations ?? {};
      assert.deepEqual(Object.keys(entries).sort(), again.map((v) => v.addresses[0]!.offset).sort(), 'IPPool holds exactly the live allocations');
      const leases = await w.kube.listLeases(w.t.namespace, TABLE_LEASES);
      assert.deepEqual(leases.map((l) => l.spec?.holderIdentity).sort(), again.map((v) => v.pod.uid).sort(), 'one Lease per live allocation');
    } finally { await second.stop(); }
  } finally {
    client.close();
    if (child.exitCode === null && !child.signalCode) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    await w.done();
  }
});

test('busy table on reclaim: pod deleted while its daemon still holds the table → kept (Lease, IP) until the table is free', async () => {
  const w = await world();
  const node = w.t.nodes[0]!;
  const agent = await startAgent(w, node);
  try {
    const p = await w.t.createPod({ name: 'busy', nodeName: node });
    const v = await agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] });
    w.proc.daemonStart(v.table); // rtpengine holds N/control
    await w.t.deletePod('busy');
    await until(() => agent.service.list().allocations.some((a) => a.pod.uid === v.pod.uid && a.state === 'busy-table'));
    assert.equal(await agent.reconciler.resync(), 0, 'a busy-table record is not reclaimed again');
    assert.ok(w.proc.tables().includes(v.table), 'EBUSY: the kernel table is still there');
    const lease = await w.kube.getLease(w.t.namespace, leaseName(node, v.table));
    assert.equal(lease?.spec?.holderIdentity, v.pod.uid, 'the Lease still claims the table');
    assert.ok((await readPool(w)).spec.allocations?.[v.addresses[0]!.offset], 'the IP entry is kept (the daemon may still use it)');
    // another pod meanwhile never gets that table or IP
    const other = await w.t.createPod({ name: 'other', nodeName: node });
    const o = await agent.reconciler.acquire({ pod: podRef(other), pools: ['media'] });
    assert.notEqual(o.table, v.table);
    assert.notEqual(o.addresses[0]!.ip, v.addresses[0]!.ip);
    w.proc.daemonClose(v.table); // the daemon exits
    await agent.service.sweep();
    assert.ok(!agent.service.list().allocations.some((a) => a.pod.uid === v.pod.uid), 'released after the retry');
    assert.ok(!w.proc.tables().includes(v.table), 'kernel table deleted');
    assert.equal(await w.kube.getLease(w.t.namespace, leaseName(node, v.table)), undefined, 'Lease gone');
    assert.equal((await readPool(w)).spec.allocations?.[v.addresses[0]!.offset], undefined, 'IP entry gone');
  } finally { await agent.stop(); await w.done(); }
});

test('least-recently-released order survives a restart (release times on the per-node Lease)', async () => {
  const w = await world();
  const node = w.t.nodes[0]!;
  const tables = { min: 0, max: 3 };
  let agent = await startAgent(w, node, { tables });
  try {
    const pods = await Promise.all(Array.from({ length: 4 }, (_, i) => w.t.createPod({ name: `lrr-${i}`, nodeName: node })));
    const vs = [];
    for (const p of pods) vs.push(await agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] }));
    assert.deepEqual(vs.map((v) => v.table), [0, 1, 2, 3]);
    // release 2 first, then 0: reuse 2 (free longest) before 0 — ID order would say 0
    await agent.service.release({ uid: vs[2]!.pod.uid });
    await new Promise((r) => setTimeout(r, 5));
    await agent.service.release({ uid: vs[0]!.pod.uid });
    const times = await w.kube.getLease(w.t.namespace, releaseTimesName(node));
    assert.ok(times?.metadata?.annotations?.['rtpengine-k8s.io/released-t0'] && times.metadata.annotations['rtpengine-k8s.io/released-t2'], 'release times recorded in the API');
    await agent.stop();
    agent = await startAgent(w, node, { tables });
    // after the restart, 0 must still count as the most recently released: a new pod gets 2
    const n = await w.t.createPod({ name: 'lrr-new', nodeName: node });
    assert.equal((await agent.reconciler.acquire({ pod: podRef(n), pools: ['media'] })).table, 2, 'not the just-freed table 0');
    const m = await w.t.createPod({ name: 'lrr-new2', nodeName: node });
    assert.equal((await agent.reconciler.acquire({ pod: podRef(m), pools: ['media'] })).table, 0);
    assert.equal((await w.kube.listLeases(w.t.namespace, TABLE_LEASES)).length, 4, 'the release-times Lease is not read as an allocation');
  } finally { await agent.stop(); await w.done(); }
});

test('identity: unknown pod, wrong UID, wrong node → PERMISSION_DENIED naming why; nothing allocated', async () => {
  const w = await world();
  const [node, other] = [w.t.nodes[0]!, w.t.nodes[1] ?? 'no-such-node'];
  const agent = await startAgent(w, node);
  try {
    const here = await w.t.createPod({ name: 'here', nodeName: node });
    const there = await w.t.createPod({ name: 'there', nodeName: other });
    const cases: Array<[string, { namespace: string; name: string; uid: string }, RegExp]> = [
      ['unknown pod', { namespace: w.t.namespace, name: 'ghost', uid: 'u-1' }, /does not exist/],
      ['wrong UID', { ...podRef(here), uid: 'not-the-uid' }, /has UID .* not not-the-uid/],
      ['wrong node', podRef(there), new RegExp(`runs on node ${other}, this allocator serves node ${node}`)],
    ];
    for (const [what, pod, why] of cases) {
      await assert.rejects(agent.reconciler.acquire({ pod, pools: ['media'] }), (e: unknown) => {
        assert.ok(isCoded(e, 'ALLOC_PERMISSION_DENIED'), `${what}: ${String(e)}`);
        assert.equal(e.grpcStatus, 7);
        assert.match(e.message, why, what);
        return true;
      });
    }
    assert.equal(agent.service.list().allocations.length, 0);
    const ok = await agent.reconciler.acquire({ pod: podRef(here), pools: ['media'] });
    assert.equal(ok.pod.uid, here.metadata!.uid);
  } finally { await agent.stop(); await w.done(); }
});

test('reconcile: deleted pod → table, kernel table, Lease and IPPool entry released; same name new UID → old released; reclaims counted', async () => {
  const w = await world();
  const node = w.t.nodes[0]!;
  const registry = createRegistry({ defaultMetrics: false });
  const metrics = allocatorMetrics(registry);
  const agent = await startAgent(w, node, { onReclaim: metrics.reclaim });
  const reclaims = async (reason: string) => (await registry.getSingleMetric('rtpengine_k8s_allocator_reclaims_total')!.get()).values.find((x) => x.labels.reason === reason)?.value ?? 0;
  try {
    const p = await w.t.createPod({ name: 'recon', nodeName: node });
    const v = await agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] });
    w.proc.daemonStart(v.table);
    w.proc.daemonClose(v.table); // the daemon exited; the table stays until deleted
    assert.ok(await w.kube.getLease(w.t.namespace, leaseName(node, v.table)));
    await w.t.deletePod('recon');
    await until(() => agent.service.list().allocations.length === 0);
    assert.ok(!w.proc.tables().includes(v.table), 'kernel table deleted');
    await until(async () => !(await w.kube.getLease(w.t.namespace, leaseName(node, v.table))));
    await until(async () => !(await readPool(w)).spec.allocations?.[v.addresses[0]!.offset]);
    assert.equal(await reclaims('pod-deleted'), 1);

    const a1 = await w.t.createPod({ name: 'reused', nodeName: node });
    const v1 = await agent.reconciler.acquire({ pod: podRef(a1), pools: ['media'] });
    await w.t.deletePod('reused');
    const a2 = await w.t.createPod({ name: 'reused', nodeName: node });
    await until(() => !agent.service.list().allocations.some((x) => x.pod.uid === v1.pod.uid));
    const v2 = await agent.reconciler.acquire({ pod: podRef(a2), pools: ['media'] });
    assert.notEqual(v2.pod.uid, v1.pod.uid);
    assert.equal((await reclaims('pod-deleted')) + (await reclaims('pod-replaced')), 2, 'the second reclaim counted too');

    // missed events: stop watching, delete, resync → pod-gone
    await agent.reconciler.stop();
    await w.t.deletePod('reused');
    assert.equal(await agent.reconciler.resync(), 1);
    assert.equal(await reclaims('pod-gone'), 1);
  } finally { await agent.stop(); await w.done(); }
});

test('R2: our empty-podref entries survive a simulated whereabouts ip-reconciler and pod controller', async () => {
  const w = await world();
  const node = w.t.nodes[0]!;
  const agent = await startAgent(w, node);
  try {
    const p = await w.t.createPod({ name: 'r2', nodeName: node });
    const v = await agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] });
    await whereaboutsAssign(w, `${w.t.namespace}/gone-pod`, 'ctr-gone'); // an orphan whereabouts entry
    // ip-reconciler (pkg/reconciler/iploop.go): drop entries whose podref is not a live pod carrying
    // the IP; entries with an empty podref are skipped ("pod ref missing").
    const writer = new IPPoolWriter(w.kube, POOL_NS);
    const pool = await readPool(w);
    for (const [off, e] of Object.entries(pool.spec.allocations ?? {})) {
      if (e.podref === '') continue;
      const [ns, name] = e.podref.split('/');
      const live = await w.kube.getPod(ns!, name!);
      if (!live) await writer.release(w.poolName, pool.spec.range, off, e.id);
    }
    // pod controller (pkg/controlloop/pod.go): on a pod DELETE, drop entries with podref == ns/name.
    const deleted = `${w.t.namespace}/r2`;
    const after = await readPool(w);
    for (const [off, e] of Object.entries(after.spec.allocations ?? {})) if (e.podref === deleted) await writer.release(w.poolName, after.spec.range, off, e.id);
    const final = (await readPool(w)).spec.allocations ?? {};
    assert.ok(final[v.addresses[0]!.offset], 'our entry survived both');
    assert.equal(Object.keys(final).length, 1, 'the orphan whereabouts entry was reclaimed by the simulated reconciler');
    // and we free it ourselves when the pod goes
    await w.t.deletePod('r2');
    await until(async () => !(await readPool(w)).spec.allocations?.[v.addresses[0]!.offset]);
  } finally { await agent.stop(); await w.done(); }
});

test('network-status IP mode: the address whereabouts gave the pod is handed out, recorded (Get/List, restart), nothing reserved', async () => {
  const w = await world();
  const node = w.t.nodes[0]!;
  let agent = await startAgent(w, node, { networkStatus: true });
  try {
    const span = compilePool(w.pool);
    const ip = ipFromOffset(span, 42n);
    const status = JSON.stringify([{ name: 'k8s-pod-network', ips: ['10.244.1.17'], default: true }, { name: 'voice/media', interface: 'net1', ips: [ip] }]);
    const p = await w.t.createPod({ name: 'ns-mode', nodeName: node, annotations: { [NETWORK_STATUS]: status } });
    const v = await agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] });
    assert.deepEqual(v.addresses.map((x) => [x.ip, x.offset, x.prefixLength]), [[ip, '42', 24]]);
    assert.equal(await w.kube.getIPPool(POOL_NS, w.poolName), undefined, 'no IPPool written in this mode');
    const served = guard(agent.service, agent.reconciler);
    const shown = (x: { addresses: Array<{ ip: string }> }) => x.addresses.map((a) => a.ip);
    assert.deepEqual(shown(served.get({ uid: v.pod.uid })), [ip], 'Get shows it');
    assert.deepEqual(served.list().allocations.map(shown), [[ip]], 'List shows it');
    const lease = await w.kube.getLease(w.t.namespace, leaseName(node, v.table));
    assert.match(lease!.metadata!.annotations!['rtpengine-k8s.io/cni-addresses']!, new RegExp(ip.replace(/\./g, '\\.')), 'recorded on the Lease');
    await agent.stop();
    agent = await startAgent(w, node, { networkStatus: true });
    assert.deepEqual(guard(agent.service, agent.reconciler).list().allocations.map(shown), [[ip]], 'still shown after a restart');
    const bare = await w.t.createPod({ name: 'no-status', nodeName: node });
    await assert.rejects(agent.reconciler.acquire({ pod: podRef(bare), pools: ['media'] }), (e: unknown) => isCoded(e, 'ALLOC_NO_CNI_ADDRESS'));
  } finally { await agent.stop(); await w.done(); }
});

test('no lease TTL (Kubernetes mode default): Renew and a repeated Acquire write nothing to the API', { skip: needsStandIn() }, async () => {
  const w = await world();
  const node = w.t.nodes[0]!;
  const agent = await startAgent(w, node);
  try {
    const p = await w.t.createPod({ name: 'renew', nodeName: node });
    const v = await agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] });
    w.t.standIn!.requests.reset();
    for (let i = 0; i < 5; i++) await agent.service.renew(v.pod.uid);
    await agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] });
    const writes = w.t.standIn!.requests.all().filter((r) => r.verb !== 'get' && r.verb !== 'list' && r.verb !== 'watch');
    assert.deepEqual(writes, [], 'no API write');
    assert.equal(agent.service.get({ uid: v.pod.uid }).leaseExpiresAt, 0);
  } finally { await agent.stop(); await w.done(); }
});

test('long node names: Lease names stay valid DNS-1123 subdomains, distinct per node and table, node recorded', async () => {
  const w = await world();
  const long = `${'n'.repeat(60)}.${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.example`; // 253 characters
  const sibling = long.slice(0, -1) + 'f';
  const subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
  const names = [long, sibling].flatMap((n) => [leaseName(n, 0), leaseName(n, 63), releaseTimesName(n)]);
  for (const n of names) { assert.ok(n.length <= 253, `${n.length}`); assert.match(n, subdomain); }
  assert.equal(new Set(names).size, names.length, 'distinct');
  assert.equal(leaseName(long, 5), leaseName(long, 5), 'deterministic');
  assert.equal(leaseName('node-a', 5), 'rtpe-node-a-t5', 'short names unchanged');
  const agent = await startAgent(w, long);
  try {
    const p = await w.t.createPod({ name: 'longnode', nodeName: long });
    const v = await agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] });
    const lease = await w.kube.getLease(w.t.namespace, leaseName(long, v.table));
    assert.equal(lease?.spec?.holderIdentity, v.pod.uid);
    assert.equal(lease?.metadata?.annotations?.['rtpengine-k8s.io/node'], long);
    assert.match(lease!.metadata!.labels!['rtpengine-k8s.io/node']!, /^h-[0-9a-f]{40}$/);
  } finally { await agent.stop(); await w.done(); }
});

test('API outage: Acquire fails with a coded error, nothing half-done; works again after', { skip: needsStandIn() }, async () => {
  const w = await world();
  const node = w.t.nodes[0]!;
  const agent = await startAgent(w, node);
  try {
    const p = await w.t.createPod({ name: 'outage', nodeName: node });
    w.t.standIn!.faults.failNext(1, 500, { verb: 'patch', resource: 'ippools' });
    await assert.rejects(agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] }), (e: unknown) => isCoded(e, 'ALLOC_STATE_WRITE'));
    assert.equal(w.t.standIn!.store.list('leases', w.t.namespace).length, 0, 'the Lease of the failed create was rolled back');
    const v = await agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] });
    assert.equal(v.pod.uid, p.metadata!.uid);
  } finally { await agent.stop(); await w.done(); }
});
