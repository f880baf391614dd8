// KubePort over the real @kubernetes/client-node against the API stand-in: status mapping,
// patches, leases, informers that survive an API outage, EndpointSlice watch.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startKubeApiServer, type KubeApiServer } from '../../test/support/kube-apiserver.js';
import { createKubeClient, kubeConfigFrom, kubeStatus, type KubePort, type Pod, type EndpointSlice } from './client.js';
import { isCoded } from '../errors.js';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let srv: KubeApiServer;
let kube: KubePort;
before(async () => { srv = await startKubeApiServer(); kube = createKubeClient(srv.kubeconfig(), { retryMinMs: 50, retryMaxMs: 200 }); });
after(async () => { await srv.close(); });
const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) { if (Date.now() > end) throw new Error('condition not reached'); await new Promise((r) => setTimeout(r, 10)); }
};
const statusOf = async (p: Promise<unknown>) => { try { await p; return 200; } catch (e) { return kubeStatus(e); } };

test('pods: get (404 → undefined), merge-patch annotations, list by field selector', async () => {
  srv.store.addPod({ namespace: 'a', name: 'p', nodeName: 'n1' });
  srv.store.addPod({ namespace: 'b', name: 'q', nodeName: 'n2' });
  assert.equal(await kube.getPod('a', 'missing'), undefined);
  const p = await kube.patchPodAnnotations('a', 'p', { 'controller.kubernetes.io/pod-deletion-cost': '7' });
  assert.equal(p.metadata?.annotations?.['controller.kubernetes.io/pod-deletion-cost'], '7');
  const again = await kube.patchPodAnnotations('a', 'p', { 'controller.kubernetes.io/pod-deletion-cost': null });
  assert.equal(again.metadata?.annotations?.['controller.kubernetes.io/pod-deletion-cost'], undefined);
  assert.deepEqual((await kube.listPods({ fieldSelector: 'spec.nodeName=n2' })).map((x) => x.metadata?.name), ['q']);
  const err = await kube.patchPodAnnotations('a', 'p', { 'controller.kubernetes.io/pod-deletion-cost': 'x' }).catch((e) => e);
  assert.ok(isCoded(err, 'KUBE_API'));
  assert.equal(err.details.status, 422);
});

test('leases and IPPools: 409 on create-exists / stale replace, 422 on failed test op, conditional delete', async () => {
  const l = await kube.createLease('kube-system', { metadata: { name: 'x' }, spec: { holderIdentity: 'u1' } });
  assert.equal(await statusOf(kube.createLease('kube-system', { metadata: { name: 'x' } })), 409);
  const l2 = await kube.replaceLease('kube-system', { ...l, spec: { holderIdentity: 'u2' } });
  assert.equal(await statusOf(kube.replaceLease('kube-system', { ...l, spec: { holderIdentity: 'u3' } })), 409);
  const l3 = await kube.patchLeaseAnnotations('kube-system', 'x', { 'a/b': '1', 'a/c': '2' });
  assert.deepEqual(l3.metadata?.annotations, { 'a/b': '1', 'a/c': '2' });
  assert.deepEqual((await kube.patchLeaseAnnotations('kube-system', 'x', { 'a/b': null })).metadata?.annotations, { 'a/c': '2' });
  assert.equal(l3.spec?.holderIdentity, 'u2', 'a merge patch leaves the rest alone');
  assert.equal(await statusOf(kube.patchLeaseAnnotations('kube-system', 'nope', { 'a/b': '1' })), 404);
  assert.equal(await statusOf(kube.deleteLease('kube-system', 'x', { uid: 'not-it' })), 409);
  assert.equal(await kube.deleteLease('kube-system', 'x', { uid: l2.metadata!.uid! }), true);
  assert.equal(await kube.deleteLease('kube-system', 'x'), false);

  const pool = await kube.createIPPool('kube-system', { metadata: { name: '10.9.0.0-24' }, spec: { range: '10.9.0.0/24', allocations: {} } });
  assert.equal(await statusOf(kube.createIPPool('kube-system', { metadata: { name: '10.9.0.0-24' }, spec: { range: '10.9.0.0/24' } })), 409);
  const rv = pool.metadata.resourceVersion!;
  await kube.patchIPPool('kube-system', '10.9.0.0-24', [{ op: 'test', path: '/metadata/resourceVersion', value: rv }, { op: 'add', path: '/spec/allocations/5', value: { id: 'a', podref: '' } }]);
  assert.equal(await statusOf(kube.patchIPPool('kube-system', '10.9.0.0-24', [{ op: 'test', path: '/metadata/resourceVersion', value: rv }])), 422);
  assert.deepEqual((await kube.getIPPool('kube-system', '10.9.0.0-24'))?.spec.allocations, { 5: { id: 'a', podref: '' } });
  assert.equal(await kube.getIPPool('kube-system', 'nope'), undefined);
});

test('pod informer on one node: add/update/delete, and it recovers after an API outage', async () => {
  const events: string[] = [];
  const errors: number[] = [];
  const inf = kube.watchPods({ fieldSelector: 'spec.nodeName=inf-node' }, {
    add: (p: Pod) => events.push(`add:${p.metadata?.name}`),
    update: (p: Pod) => events.push(`update:${p.metadata?.name}`),
    delete: (p: Pod) => events.push(`delete:${p.metadata?.name}`),
    error: (e) => errors.push(Number(e.details.status)),
  });
  srv.store.addPod({ namespace: 'i', name: 'one', nodeName: 'inf-node' });
  await inf.synced;
  await until(() => inf.list().length === 1);
  srv.store.addPod({ namespace: 'i', name: 'other-node', nodeName: 'elsewhere' });
  srv.faults.outage(true);
  await until(() => errors.length > 0);
  srv.store.addPod({ namespace: 'i', name: 'two', nodeName: 'inf-node' });
  srv.store.delete('pods', 'i', 'one');
  srv.faults.outage(false);
  await until(() => events.includes('delete:one') && events.includes('add:two'));
  assert.deepEqual(inf.list().map((p) => p.metadata?.name), ['two']);
  assert.ok(!events.some((e) => e.endsWith('other-node')));
  assert.equal(errors[0], 0, 'outage reported as unreachable (status 0)');
  await inf.stop();
});

test('watchEndpointSlices: events carry the full current set', async () => {
  let last: EndpointSlice[] = [];
  const types: string[] = [];
  const stop = kube.watchEndpointSlices('voice', 'kubernetes.io/service-name=rtpe', (t, _s, all) => { types.push(t); last = all; }, () => undefined);
  srv.store.create('endpointslices', { metadata: { name: 's1', namespace: 'voice', labels: { 'kubernetes.io/service-name': 'rtpe' } }, addressType: 'IPv4', endpoints: [] });
  srv.store.create('endpointslices', { metadata: { name: 's2', namespace: 'voice', labels: { 'kubernetes.io/service-name': 'other' } }, addressType: 'IPv4', endpoints: [] });
  await until(() => last.length === 1);
  srv.store.delete('endpointslices', 'voice', 's1');
  await until(() => types.includes('DELETED'));
  assert.equal(last.length, 0);
  assert.deepEqual((await kube.listEndpointSlices('voice', 'kubernetes.io/service-name=other')).map((s) => s.metadata?.name), ['s2']);
  await stop();
});

test('kubeConfigFrom: explicit file works, a bad one is KUBE_CONFIG', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kc-'));
  const file = join(dir, 'config');
  writeFileSync(file, srv.kubeconfig().exportConfig());
  assert.equal(kubeConfigFrom({ kubeconfig: file }).getCurrentCluster()?.server, srv.url);
  assert.throws(() => kubeConfigFrom({ kubeconfig: join(dir, 'missing') }), (e) => isCoded(e, 'KUBE_CONFIG'));
  assert.throws(() => kubeConfigFrom({ kubeconfig: file, context: 'nope' }), (e) => isCoded(e, 'KUBE_CONFIG'));
});

test('429 from API priority and fairness: retried after Retry-After, bounded; then the 429 is the answer', async () => {
  const waits: number[] = [];
  const k = createKubeClient(srv.kubeconfig(), { sleep: async (ms) => { waits.push(ms); } });
  srv.faults.failNext(2, 429, { verb: 'create', resource: 'leases' });
  const l = await k.createLease('throttle', { metadata: { name: 't' }, spec: { holderIdentity: 'u' } });
  assert.equal(l.metadata?.name, 't');
  assert.deepEqual(waits, [1000, 1000], 'waited Retry-After (1 s) twice');
  waits.length = 0;
  srv.faults.failNext(50, 429, { verb: 'get', resource: 'leases' });
  const err = await k.getLease('throttle', 't').catch((e) => e);
  assert.ok(isCoded(err, 'KUBE_API'));
  assert.equal(err.details.status, 429);
  assert.equal(waits.length, 5, 'at most 5 retries');
  srv.faults.clear();
});

test('pod informer: server-side timeoutSeconds + bookmarks, resumes from the last bookmark without listing; 410 relists only the selected pods', async () => {
  const s2 = await startKubeApiServer({ bookmarkIntervalMs: 100 });
  const k = createKubeClient(s2.kubeconfig(), { retryMinMs: 50, retryMaxMs: 200, watchTimeoutSeconds: 1 });
  const added: string[] = [];
  const deleted: string[] = [];
  const inf = k.watchPods({ fieldSelector: 'spec.nodeName=n1' }, { add: (p) => added.push(p.metadata!.name!), delete: (p) => deleted.push(p.metadata!.name!) });
  try {
    await inf.synced;
    s2.store.addPod({ namespace: 'w', name: 'mine', nodeName: 'n1' });
    await until(() => added.includes('mine'));
    // Changes elsewhere move the resourceVersion; only a bookmark can tell this watch about them.
    s2.store.addPod({ namespace: 'w', name: 'other', nodeName: 'n2' });
    const rvAfterOther = String(s2.store.resourceVersion());
    const watches = () => s2.requests.all().filter((r) => r.verb === 'watch');
    await until(() => watches().length >= 3 && watches().some((w) => w.lastBookmark === rvAfterOther), 15_000);
    const ws = watches();
    for (const w of ws) {
      const q = new URLSearchParams(w.query);
      assert.equal(q.get('allowWatchBookmarks'), 'true');
      assert.equal(q.get('timeoutSeconds'), '1');
      assert.equal(q.get('fieldSelector'), 'spec.nodeName=n1');
    }
    // each re-watch after a server close starts where the previous one's last bookmark left off
    const marked = ws.findIndex((w) => w.lastBookmark === rvAfterOther);
    await until(() => watches().length > marked + 1, 15_000);
    assert.equal(new URLSearchParams(watches()[marked + 1]!.query).get('resourceVersion'), watches()[marked]!.lastBookmark);
    assert.equal(s2.requests.count({ verb: 'list', resource: 'pods' }), 1, 'no relist on a server-closed watch');
    assert.ok(!added.includes('other'));
    // History compacted while a pod went away: the next watch gets 410 → one relist of this node's pods.
    s2.faults.outage(true);
    s2.store.delete('pods', 'w', 'mine');
    s2.compact();
    s2.faults.outage(false);
    await until(() => deleted.includes('mine'), 15_000);
    const lists = s2.requests.all().filter((r) => r.verb === 'list');
    assert.equal(lists.length, 2);
    assert.equal(new URLSearchParams(lists[1]!.query).get('fieldSelector'), 'spec.nodeName=n1');
  } finally {
    await inf.stop();
    await s2.close();
  }
});

test('informer stop() ends it while it waits out a retry backoff', async () => {
  const s3 = await startKubeApiServer();
  const k = createKubeClient(s3.kubeconfig(), { retryMinMs: 3_600_000, retryMaxMs: 3_600_000 });
  let errors = 0;
  s3.faults.outage(true);
  const inf = k.watchPods({}, { error: () => { errors++; } });
  await until(() => errors >= 1);
  await inf.stop(); // before the fix this never settled: the backoff timer was cleared, its promise left pending
  s3.faults.clear();
  await s3.close();
});
