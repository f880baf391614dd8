// Kubernetes mode end to end: the real AllocatorService over the `kubernetes` store, the real
// @kubernetes/client-node, and the API stand-in (or a real cluster with KUBECONFIG). Race with a
// whereabouts-algorithm writer, restart mid-burst, identity, reconciliation, R2 survival.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kubeTarget, needsStandIn, type KubeTarget } from '../support/kube-target.js';
import { createKubeClient, kubeStatus, type KubePort, type IPPool, type Pod } from '../../src/kube/client.js';
import { AllocatorService } from '../../src/allocator/service.js';
import { ProcKernel, type ProcFs } from '../../src/allocator/kernel.js';
import { KubeStore, leaseName } from '../../src/allocator/store-kube.js';
import { KubeReconciler } from '../../src/allocator/reconcile-kube.js';
import { ipPoolName, IPPoolWriter } from '../../src/allocator/ippool.js';
import { compilePool, ipFromOffset, type PoolConfig } from '../../src/allocator/pools.js';
import { NETWORK_STATUS } from '../../src/allocator/identity.js';
import { systemClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { isCoded } from '../../src/errors.js';

const POOL: PoolConfig = { name: 'media', cidr: '10.77.0.0/24' };
const POOL_NS = 'kube-system';

/** /proc/rtpengine stand-in: `list` and `control` with the kernel's `del N` semantics. */
function procStandIn(tables = new Set<number>()): ProcFs & { tables: Set<number> } {
  return {
    tables,
    exists: async (p) => p.endsWith('/control') || p.endsWith('/list'),
    readFile: async (p) => { if (p.endsWith('/list')) return [...tables].sort((a, b) => a - b).join('\n') + '\n'; throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' }); },
    writeFile: async (_p, data) => {
      const n = Number(/^del (\d+)/.exec(data)?.[1]);
      if (!tables.delete(n)) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    },
  };
}

interface Agent { service: AllocatorService; reconciler: KubeReconciler; store: KubeStore; stop(): Promise<void> }
async function startAgent(t: KubeTarget, node: string, opts: { proc?: ProcFs; resyncMs?: number; pools?: PoolConfig[]; networkStatus?: boolean } = {}): Promise<Agent> {
  const kube = createKubeClient(t.kubeconfig(), { retryMinMs: 50, retryMaxMs: 500 });
  const pools = opts.networkStatus ? [] : (opts.pools ?? [POOL]);
  const store = new KubeStore({ kube, node, leaseNamespace: t.namespace, poolNamespace: POOL_NS, pools: pools.map((p) => ({ span: compilePool(p) })), ippool: { jitterMs: 2 } });
  const service = await AllocatorService.open({ node, tableRange: { min: 0, max: 63 } as any, pools, leaseTtlMs: 0 },
    { store, kernel: new ProcKernel({ root: '/stand-in/proc/rtpengine', fs: opts.proc ?? procStandIn() }), clock: systemClock, log: silentLogger });
  const reconciler = new KubeReconciler({ kube, node, service, resyncMs: opts.resyncMs ?? 0, log: silentLogger,
    networkStatusPools: opts.networkStatus ? [{ pool: POOL, interface: 'net1' }] : [] });
  await reconciler.start();
  return { service, reconciler, store, stop: async () => { await reconciler.stop(); await service.drain(); } };
}

const podRef = (p: Pod) => ({ namespace: p.metadata!.namespace!, name: p.metadata!.name!, uid: p.metadata!.uid! });
const poolName = ipPoolName('10.77.0.0/24');
async function readPool(kube: KubePort): Promise<IPPool> { return (await kube.getIPPool(POOL_NS, poolName))!; }
const until = async (cond: () => boolean | Promise<boolean>, ms = 8000) => {
  const end = Date.now() + ms;
  while (!(await cond())) { if (Date.now() > end) throw new Error('condition not reached'); await new Promise((r) => setTimeout(r, 20)); }
};

/** A writer following whereabouts' documented algorithm: read, lowest free offset, test-and-patch, retry. */
async function whereaboutsAssign(kube: KubePort, podref: string, containerId: string): Promise<string> {
  const span = compilePool(POOL);
  for (let i = 0; i < 100; i++) {
    let pool = await kube.getIPPool(POOL_NS, poolName);
    if (!pool) {
      try { pool = await kube.createIPPool(POOL_NS, { metadata: { name: poolName }, spec: { range: span.range, allocations: {} } }); } catch (e) { if (kubeStatus(e) === 409) continue; throw e; }
    }
    const taken = new Set(Object.keys(pool.spec.allocations ?? {}));
    let off = span.first;
    while (off <= span.last && taken.has(off.toString())) off++;
    if (off > span.last) throw new Error('pool full');
    try {
      await kube.patchIPPool(POOL_NS, poolName, [
        { op: 'test', path: '/metadata/resourceVersion', value: pool.metadata.resourceVersion },
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

test('race: allocator and a whereabouts-algorithm writer on one IPPool → no duplicates, no lost entries', async () => {
  const t = await kubeTarget();
  const node = t.nodes[0]!;
  const agent = await startAgent(t, node);
  const kube = createKubeClient(t.kubeconfig());
  try {
    const pods = await Promise.all(Array.from({ length: 20 }, (_, i) => t.createPod({ name: `race-${i}`, nodeName: node })));
    const ours = pods.map((p) => agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] }));
    const theirs = Array.from({ length: 20 }, (_, i) => whereaboutsAssign(kube, `other/wb-${i}`, `ctr-${i}`));
    const [a, w] = await Promise.all([Promise.all(ours), Promise.all(theirs)]);
    const ourIps = a.map((v) => v.addresses[0]!.ip);
    const theirIps = w.map((o) => ipFromOffset(compilePool(POOL), o));
    const all = [...ourIps, ...theirIps];
    assert.equal(new Set(all).size, 40, 'no address handed out twice');
    const pool = await readPool(kube);
    const entries = pool.spec.allocations ?? {};
    assert.equal(Object.keys(entries).length, 40, 'every allocation is an IPPool entry (none lost)');
    for (const v of a) assert.match(entries[v.addresses[0]!.offset]!.id, /^rtpe-alloc\//);
    for (let i = 0; i < 20; i++) assert.equal(entries[w[i]!]!.id, `ctr-${i}`);
    assert.equal(new Set(a.map((v) => v.table)).size, 20, 'tables unique');
  } finally { await agent.stop(); await t.close(); }
});

test('restart: killed mid-burst, restarted → no duplicate table or IP; pods deleted while down reclaimed in one resync', async () => {
  const t = await kubeTarget();
  const node = t.nodes[0]!;
  const kube = createKubeClient(t.kubeconfig());
  const proc = procStandIn();
  const first = await startAgent(t, node, { proc });
  try {
    const pods = await Promise.all(Array.from({ length: 16 }, (_, i) => t.createPod({ name: `burst-${i}`, nodeName: node })));
    // "kill" mid-burst: stop the first agent while half of the Acquires are still in flight
    const inflight = pods.map((p) => first.reconciler.acquire({ pod: podRef(p), pools: ['media'] }).catch(() => undefined));
    await Promise.all(inflight.slice(0, 8));
    await first.stop();
    const done = (await Promise.all(inflight)).filter(Boolean);
    for (const v of done) proc.tables.add(v!.table); // their daemons hold their tables
    // pods deleted while no allocator runs
    const gone = done.slice(0, 3).map((v) => v!.pod);
    for (const g of gone) await t.deletePod(g.name);

    const second = await startAgent(t, node, { proc });
    try {
      const after = second.service.list().allocations;
      assert.ok(gone.every((g) => !after.some((a) => a.pod.uid === g.uid)), 'pods deleted while down were reclaimed by the start-up resync');
      for (const g of gone) assert.ok(!proc.tables.has(done.find((v) => v!.pod.uid === g.uid)!.table), 'their kernel tables were deleted');
      // every pod still present gets an allocation; earlier ones get the same one back
      const live = pods.filter((p) => !gone.some((g) => g.uid === p.metadata!.uid));
      const again = await Promise.all(live.map((p) => second.reconciler.acquire({ pod: podRef(p), pools: ['media'] })));
      for (const v of again) {
        const before = done.find((d) => d!.pod.uid === v.pod.uid);
        if (before) { assert.equal(v.table, before.table); assert.equal(v.addresses[0]!.ip, before.addresses[0]!.ip); }
      }
      assert.equal(new Set(again.map((v) => v.table)).size, again.length, 'no duplicate table');
      assert.equal(new Set(again.map((v) => v.addresses[0]!.ip)).size, again.length, 'no duplicate IP');
      const entries = Object.values((await readPool(kube)).spec.allocations ?? {});
      assert.equal(entries.length, again.length, 'IPPool holds exactly the live allocations');
      const leases = await kube.listLeases(t.namespace, 'app.kubernetes.io/managed-by=rtpengine-k8s');
      assert.equal(leases.length, again.length, 'one Lease per live allocation');
    } finally { await second.stop(); }
  } finally { await first.stop().catch(() => undefined); await t.close(); }
});

test('identity: unknown pod, wrong UID, wrong node → PERMISSION_DENIED naming why; nothing allocated', async () => {
  const t = await kubeTarget();
  const [node, other] = [t.nodes[0]!, t.nodes[1] ?? 'no-such-node'];
  const agent = await startAgent(t, node);
  try {
    const here = await t.createPod({ name: 'here', nodeName: node });
    const there = await t.createPod({ name: 'there', nodeName: other });
    const cases: Array<[string, { namespace: string; name: string; uid: string }, RegExp]> = [
      ['unknown pod', { namespace: t.namespace, name: 'ghost', uid: 'u-1' }, /does not exist/],
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
  } finally { await agent.stop(); await t.close(); }
});

test('reconcile: deleted pod → table, kernel table, Lease and IPPool entry released; same name new UID → old released', async () => {
  const t = await kubeTarget();
  const node = t.nodes[0]!;
  const proc = procStandIn();
  const agent = await startAgent(t, node, { proc });
  const kube = createKubeClient(t.kubeconfig());
  try {
    const p = await t.createPod({ name: 'recon', nodeName: node });
    const v = await agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] });
    proc.tables.add(v.table);
    assert.ok(await kube.getLease(t.namespace, leaseName(node, v.table)));
    await t.deletePod('recon');
    await until(() => agent.service.list().allocations.length === 0);
    assert.ok(!proc.tables.has(v.table), 'kernel table deleted');
    await until(async () => !(await kube.getLease(t.namespace, leaseName(node, v.table))));
    await until(async () => !(await readPool(kube)).spec.allocations?.[v.addresses[0]!.offset]);

    const a1 = await t.createPod({ name: 'reused', nodeName: node });
    const v1 = await agent.reconciler.acquire({ pod: podRef(a1), pools: ['media'] });
    await t.deletePod('reused');
    const a2 = await t.createPod({ name: 'reused', nodeName: node });
    await until(() => !agent.service.list().allocations.some((x) => x.pod.uid === v1.pod.uid));
    const v2 = await agent.reconciler.acquire({ pod: podRef(a2), pools: ['media'] });
    assert.notEqual(v2.pod.uid, v1.pod.uid);
  } finally { await agent.stop(); await t.close(); }
});

test('R2: our empty-podref entries survive a simulated whereabouts ip-reconciler and pod controller', async () => {
  const t = await kubeTarget();
  const node = t.nodes[0]!;
  const agent = await startAgent(t, node);
  const kube = createKubeClient(t.kubeconfig());
  try {
    const p = await t.createPod({ name: 'r2', nodeName: node });
    const v = await agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] });
    await whereaboutsAssign(kube, `${t.namespace}/gone-pod`, 'ctr-gone'); // an orphan whereabouts entry
    // ip-reconciler (pkg/reconciler/iploop.go): drop entries whose podref is not a live pod carrying
    // the IP; entries with an empty podref are skipped ("pod ref missing").
    const writer = new IPPoolWriter(kube, POOL_NS);
    const pool = await readPool(kube);
    for (const [off, e] of Object.entries(pool.spec.allocations ?? {})) {
      if (e.podref === '') continue;
      const [ns, name] = e.podref.split('/');
      const live = await kube.getPod(ns!, name!);
      if (!live) await writer.release(poolName, pool.spec.range, off, e.id);
    }
    // pod controller (pkg/controlloop/pod.go): on a pod DELETE, drop entries with podref == ns/name.
    const deleted = `${t.namespace}/r2`;
    const after = await readPool(kube);
    for (const [off, e] of Object.entries(after.spec.allocations ?? {})) if (e.podref === deleted) await writer.release(poolName, after.spec.range, off, e.id);
    const final = (await readPool(kube)).spec.allocations ?? {};
    assert.ok(final[v.addresses[0]!.offset], 'our entry survived both');
    assert.equal(Object.keys(final).length, 1, 'the orphan whereabouts entry was reclaimed by the simulated reconciler');
    // and we free it ourselves when the pod goes
    await t.deletePod('r2');
    await until(async () => !(await readPool(kube)).spec.allocations?.[v.addresses[0]!.offset]);
  } finally { await agent.stop(); await t.close(); }
});

test('network-status IP mode: the address whereabouts gave the pod is handed out, nothing reserved', async () => {
  const t = await kubeTarget();
  const node = t.nodes[0]!;
  const agent = await startAgent(t, node, { networkStatus: true });
  const kube = createKubeClient(t.kubeconfig());
  try {
    const status = JSON.stringify([{ name: 'k8s-pod-network', ips: ['10.244.1.17'], default: true }, { name: 'voice/media', interface: 'net1', ips: ['10.77.0.42'] }]);
    const p = await t.createPod({ name: 'ns-mode', nodeName: node, annotations: { [NETWORK_STATUS]: status } });
    const v = await agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] });
    assert.deepEqual(v.addresses.map((x) => [x.ip, x.offset, x.prefixLength]), [['10.77.0.42', '42', 24]]);
    assert.equal(await kube.getIPPool(POOL_NS, poolName), undefined, 'no IPPool written in this mode');
    const bare = await t.createPod({ name: 'no-status', nodeName: node });
    await assert.rejects(agent.reconciler.acquire({ pod: podRef(bare), pools: ['media'] }), (e: unknown) => isCoded(e, 'ALLOC_NO_CNI_ADDRESS'));
  } finally { await agent.stop(); await t.close(); }
});

test('API outage: Acquire fails with a coded error, nothing half-done; works again after', { skip: needsStandIn() }, async () => {
  const t = await kubeTarget();
  const node = t.nodes[0]!;
  const agent = await startAgent(t, node);
  try {
    const p = await t.createPod({ name: 'outage', nodeName: node });
    t.standIn!.faults.failNext(1, 500, { verb: 'patch', resource: 'ippools' });
    await assert.rejects(agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] }), (e: unknown) => isCoded(e, 'ALLOC_STATE_WRITE'));
    assert.equal(t.standIn!.store.list('leases', t.namespace).length, 0, 'the Lease of the failed create was rolled back');
    const v = await agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] });
    assert.equal(v.pod.uid, p.metadata!.uid);
  } finally { await agent.stop(); await t.close(); }
});
