// whereabouts' overlapping-range protection and node slices (ADR 0012): an IP with an
// OverlappingRangeIPReservation is taken; setups our entries cannot make safe (a NodeSlicePool over
// our range, another IPPool overlapping it) are refused at start with a coded error. Also: the
// number of API requests of a new Acquire (≤ 3 with the ORIP check).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CustomObjectsApi } from '../../src/kube/k8s.js';
import { kubeTarget, needsStandIn, type KubeTarget } from '../support/kube-target.js';
import { createKubeClient, type Pod } from '../../src/kube/client.js';
import { AllocatorService } from '../../src/allocator/service.js';
import { ProcKernel } from '../../src/allocator/kernel.js';
import { KubeStore } from '../../src/allocator/store-kube.js';
import { KubeReconciler } from '../../src/allocator/reconcile-kube.js';
import { ipPoolName, oripName } from '../../src/allocator/ippool.js';
import { compilePool, ipFromOffset, type PoolConfig } from '../../src/allocator/pools.js';
import { systemClock } from '../../src/clock.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { isCoded } from '../../src/errors.js';
import { ProcRtpengine } from '../support/proc-rtpengine.js';
import { cleanupKube, randomRange } from '../support/kube-cleanup.js';
import { waitFor } from '../support/wait.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type V1Pod } from '../../src/kube/k8s.js';
import { startAllocator } from '../../src/allocator/allocator.js';
import { AllocatorClient } from '../../src/allocator/client.js';
import { DEFAULT_TOKEN_AUDIENCE } from '../../src/kube/tokenreview.js';

/** A pod-bound, audience-bound token as the kubelet projects it (TokenRequest). */
async function podToken(t: KubeTarget, pod: V1Pod): Promise<string> {
  const r = await t.kubeconfig().makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    name: pod.spec?.serviceAccountName ?? 'default', namespace: pod.metadata!.namespace!,
    body: { spec: { audiences: [DEFAULT_TOKEN_AUDIENCE], expirationSeconds: 600, boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod.metadata!.name!, uid: pod.metadata!.uid! } } },
  });
  return r.status?.token ?? '';
}

const POOL_NS = 'kube-system';
const WB = { group: 'whereabouts.cni.cncf.io', version: 'v1alpha1', namespace: POOL_NS };

interface World { t: KubeTarget; pool: PoolConfig; poolName: string; proc: ProcRtpengine; orips: string[]; extraPools: string[]; done(): Promise<void> }
async function world(): Promise<World> {
  const t = await kubeTarget();
  const pool: PoolConfig = { name: 'media', cidr: randomRange(24) };
  const w: World = {
    t, pool, poolName: ipPoolName(compilePool(pool).range), proc: new ProcRtpengine(), orips: [], extraPools: [],
    done: async () => {
      const custom = t.kubeconfig().makeApiClient(CustomObjectsApi);
      for (const name of w.orips) await custom.deleteNamespacedCustomObject({ ...WB, plural: 'overlappingrangeipreservations', name }).catch(() => undefined);
      await cleanupKube(t.kubeconfig(), { poolNamespace: POOL_NS, pools: [w.poolName, ...w.extraPools], leaseNamespace: t.namespace }).catch(() => undefined);
      await t.close();
      w.proc.remove();
    },
  };
  return w;
}

async function startAgent(w: World, node: string, log = silentLogger, watchReservations = false, allowUncheckedOverlap = false) {
  const kube = createKubeClient(w.t.kubeconfig(), { retryMinMs: 50, retryMaxMs: 500 });
  const store = new KubeStore({ kube, node, leaseNamespace: w.t.namespace, poolNamespace: POOL_NS, pools: [{ span: compilePool(w.pool) }], ippool: { jitterMs: 2 }, watchReservations, allowUncheckedOverlap, log });
  const service = await AllocatorService.open({ node, tableRange: { min: 0, max: 63 }, pools: [w.pool], leaseTtlMs: 0 },
    { store, kernel: new ProcKernel({ root: w.proc.root, fs: w.proc }), clock: systemClock, log: silentLogger });
  const reconciler = new KubeReconciler({ kube, node, service, store, resyncMs: 0, log });
  await reconciler.start();
  return { service, reconciler, store, stop: async () => { await reconciler.stop(); await service.drain(); await store.close(); } };
}
const podRef = (p: Pod) => ({ namespace: p.metadata!.namespace!, name: p.metadata!.name!, uid: p.metadata!.uid! });

async function addOrip(w: World, ip: string, podref: string): Promise<void> {
  const name = oripName(ip);
  await w.t.kubeconfig().makeApiClient(CustomObjectsApi).createNamespacedCustomObject({ ...WB, plural: 'overlappingrangeipreservations',
    body: { apiVersion: 'whereabouts.cni.cncf.io/v1alpha1', kind: 'OverlappingRangeIPReservation', metadata: { name }, spec: { podref, containerid: 'c0ffee', ifname: 'net1' } } });
  w.orips.push(name);
}

/** whereabouts' pool of a NAD whose range contains ours (a /23 around our /24); its name. */
async function addWiderPool(w: World): Promise<string> {
  const first = ipFromOffset(compilePool(w.pool), 0n).split('.');
  const range = compilePool({ name: 'x', cidr: `${first[0]}.${first[1]}.${Number(first[2]) & ~1}.0/23` }).range;
  const name = ipPoolName(range);
  await w.t.kubeconfig().makeApiClient(CustomObjectsApi).createNamespacedCustomObject({ ...WB, plural: 'ippools',
    body: { apiVersion: 'whereabouts.cni.cncf.io/v1alpha1', kind: 'IPPool', metadata: { name }, spec: { range, allocations: {} } } });
  w.extraPools.push(name);
  return name;
}

for (const watch of [false, true]) test(`an IP reserved by an OverlappingRangeIPReservation is never handed out (present at start, and created later) — ${watch ? 'ORIP informer (allocator default)' : 'GET per Acquire'}`, async () => {
  const w = await world();
  const node = w.t.nodes[0]!;
  const span = compilePool(w.pool);
  try {
    // .1 reserved by whereabouts through another range before the allocator starts
    await addOrip(w, ipFromOffset(span, 1n), 'other/pod-a');
    const agent = await startAgent(w, node, silentLogger, watch);
    try {
      const p1 = await w.t.createPod({ name: 'orip-1', nodeName: node });
      const a1 = await agent.reconciler.acquire({ pod: podRef(p1), pools: ['media'] });
      assert.equal(a1.addresses[0]!.ip, ipFromOffset(span, 2n), 'skips the ORIP-held .1');
      // .3 reserved after start (the allocator's view does not have it yet): the Acquire's own check sees it
      await addOrip(w, ipFromOffset(span, 3n), 'other/pod-b');
      if (watch) await waitFor('the ORIP informer has it', () => agent.store.reservationCached(oripName(ipFromOffset(span, 3n))));
      const p2 = await w.t.createPod({ name: 'orip-2', nodeName: node });
      const a2 = await agent.reconciler.acquire({ pod: podRef(p2), pools: ['media'] });
      assert.equal(a2.addresses[0]!.ip, ipFromOffset(span, 4n), 'skips the ORIP-held .3');
    } finally { await agent.stop(); }
  } finally { await w.done(); }
});

test('start refused (ALLOC_WHEREABOUTS_UNSAFE) when another IPPool overlaps the range', async () => {
  const w = await world();
  try {
    const other = await addWiderPool(w);
    const err = await startAgent(w, w.t.nodes[0]!).then(async (a) => { await a.stop(); return undefined; }, (e) => e);
    assert.ok(isCoded(err, 'ALLOC_WHEREABOUTS_UNSAFE'), String(err));
    assert.match(err.message, new RegExp(`IPPool ${POOL_NS}/${other.replace(/\./g, '\\.')}`));
  } finally { await w.done(); }
});

test('an overlapping IPPool that appears after start is an error in the log at every resync', async () => {
  const w = await world();
  const lines: string[] = [];
  const log = createLogger({ level: 'info' }, { write: (l: string) => { lines.push(l); } });
  try {
    const agent = await startAgent(w, w.t.nodes[0]!, log);
    try {
      await addWiderPool(w);
      assert.equal(lines.filter((l) => l.includes('ALLOC_WHEREABOUTS_UNSAFE')).length, 0);
      await agent.reconciler.resync();
      const err = lines.map((l) => JSON.parse(l)).find((l) => l.code === 'ALLOC_WHEREABOUTS_UNSAFE');
      assert.ok(err, 'logged');
      assert.equal(err.level, 50);
      assert.match(err.msg, /appeared after start/);
    } finally { await agent.stop(); }
  } finally { await w.done(); }
});

test('start refused (ALLOC_WHEREABOUTS_UNCHECKED) when RBAC denies listing IPPools (overlap not checkable); starts with a warning only with the explicit opt-out', { skip: needsStandIn() }, async () => {
  const w = await world();
  const node = w.t.nodes[0]!;
  const api = w.t.standIn!;
  try {
    api.faults.failNext(1, 403, { verb: 'list', resource: 'ippools' });
    const err = await startAgent(w, node).then(async (a) => { await a.stop(); return undefined; }, (e) => e);
    assert.ok(isCoded(err, 'ALLOC_WHEREABOUTS_UNCHECKED'), String(err));
    assert.match(err.message, /--allow-unchecked-overlap/);
    api.faults.failNext(1, 403, { verb: 'list', resource: 'ippools' });
    const lines: string[] = [];
    const log = createLogger({ level: 'info' }, { write: (l: string) => { lines.push(l); } });
    const agent = await startAgent(w, node, log, false, true);
    try {
      const warned = lines.map((l) => JSON.parse(l)).find((l) => l.code === 'ALLOC_WHEREABOUTS_UNCHECKED');
      assert.ok(warned, 'the skipped check is logged with its code');
      assert.equal(warned.level, 40);
      const p = await w.t.createPod({ name: 'unchecked-1', nodeName: node });
      assert.ok((await agent.reconciler.acquire({ pod: podRef(p), pools: ['media'] })).addresses.length, 'serves');
    } finally { await agent.stop(); }
  } finally { api.faults.clear(); await w.done(); }
});

test('start refused (ALLOC_WHEREABOUTS_UNSAFE) when a NodeSlicePool covers the range', { skip: needsStandIn() }, async () => {
  const w = await world();
  try {
    const span = compilePool(w.pool);
    w.t.standIn!.store.create('nodeslicepools', { metadata: { name: 'media-slices', namespace: POOL_NS }, spec: { range: `${ipFromOffset(span, 0n).split('.').slice(0, 2).join('.')}.0.0/16`, sliceSize: '/24' } });
    const err = await startAgent(w, w.t.nodes[0]!).then(async (a) => { await a.stop(); return undefined; }, (e) => e);
    assert.ok(isCoded(err, 'ALLOC_WHEREABOUTS_UNSAFE'), String(err));
    assert.match(err.message, /NodeSlicePool kube-system\/media-slices/);
  } finally { await w.done(); }
});

test('API requests of a new Acquire through the gRPC server with a pod token, ORIP check and TokenReview included: 3 (TokenReview, Lease create, IPPool patch)', { skip: needsStandIn() }, async () => {
  const w = await world();
  const node = w.t.nodes[0]!;
  const dir = mkdtempSync(join(tmpdir(), 'rtpe-count-'));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, w.t.kubeconfig().exportConfig());
  const clients: AllocatorClient[] = [];
  try {
    // pods (and their projected tokens) exist before the allocator starts: its pod informer has them (common path)
    const pods = await Promise.all([0, 1, 2, 3].map((i) => w.t.createPod({ name: `count-${i}`, nodeName: node })));
    const files: string[] = [];
    for (const [i, p] of pods.entries()) { files.push(join(dir, `token-${i}`)); writeFileSync(files[i]!, await podToken(w.t, p)); }
    const h = await startAllocator({
      node, socket: join(dir, 'alloc.sock'), tableRange: { min: 0, max: 63 }, pools: [w.pool], stateFile: join(dir, 'unused.json'),
      procRoot: w.proc.root, leaseTtlMs: 0, sweepIntervalMs: 60_000,
      kubernetes: { kubeconfig, leaseNamespace: w.t.namespace, poolNamespace: POOL_NS, ipMode: 'reserve', networkStatusInterface: 'net1', resyncIntervalMs: 0 },
      callerAuth: { audience: DEFAULT_TOKEN_AUDIENCE },
    }, { log: silentLogger });
    try {
      const as = (i: number) => { const c = new AllocatorClient({ socket: join(dir, 'alloc.sock'), tokenFile: files[i] }); clients.push(c); return c; };
      await as(0).acquire({ pod: podRef(pods[0]!), pools: ['media'] }); // warm-up: creates the IPPool
      const api = w.t.standIn!;
      api.requests.reset();
      for (const i of [1, 2, 3]) await as(i).acquire({ pod: podRef(pods[i]!), pools: ['media'] });
      const reqs = api.requests.all().filter((r) => r.verb !== 'watch');
      assert.deepEqual(reqs.map((r) => `${r.verb} ${r.resource}`), Array.from({ length: 3 }, () => ['post /apis/authentication.k8s.io/v1/tokenreviews', 'create leases', 'patch ippools']).flat());
    } finally { for (const c of clients) c.close(); await h.close(); }
  } finally { rmSync(dir, { recursive: true, force: true }); await w.done(); }
});
