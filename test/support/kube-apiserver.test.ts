// The API stand-in, driven by the real @kubernetes/client-node: the semantics the project relies
// on (resourceVersion, conflicts, patches, selectors, watches, 410, GC, faults).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  ApiException, CoordinationV1Api, CoreV1Api, CustomObjectsApi, DiscoveryV1Api, ListWatch, PatchStrategy, Watch, setHeaderOptions,
  type V1Pod,
} from '../../src/kube/k8s.js';
import { startKubeApiServer, applyJsonPatch, applyMergePatch, parseLabelSelector, type KubeApiServer } from './kube-apiserver.js';

let srv: KubeApiServer;
before(async () => { srv = await startKubeApiServer({ historyLimit: 50 }); });
after(async () => { await srv.close(); });

const code = async (p: Promise<unknown>): Promise<number> => {
  try { await p; return 200; } catch (e) { if (e instanceof ApiException) return e.code; throw e; }
};
const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) { if (Date.now() > end) throw new Error('condition not reached'); await new Promise((r) => setTimeout(r, 10)); }
};

test('create/get/replace: resourceVersion increments, 409 on exists and on stale replace, 404 on missing', async () => {
  const co = srv.kubeconfig().makeApiClient(CoordinationV1Api);
  const ns = 'crud';
  const l1 = await co.createNamespacedLease({ namespace: ns, body: { metadata: { name: 'a' }, spec: { holderIdentity: 'x' } } });
  assert.ok(l1.metadata?.uid);
  assert.equal(await code(co.createNamespacedLease({ namespace: ns, body: { metadata: { name: 'a' } } })), 409);
  const l2 = await co.replaceNamespacedLease({ name: 'a', namespace: ns, body: { ...l1, spec: { holderIdentity: 'y' } } });
  assert.ok(Number(l2.metadata!.resourceVersion) > Number(l1.metadata!.resourceVersion));
  assert.equal(l2.metadata?.uid, l1.metadata?.uid);
  assert.equal(await code(co.replaceNamespacedLease({ name: 'a', namespace: ns, body: { ...l1, spec: { holderIdentity: 'z' } } })), 409);
  assert.equal((await co.readNamespacedLease({ name: 'a', namespace: ns })).spec?.holderIdentity, 'y');
  assert.equal(await code(co.readNamespacedLease({ name: 'nope', namespace: ns })), 404);
  await co.deleteNamespacedLease({ name: 'a', namespace: ns });
  assert.equal(await code(co.deleteNamespacedLease({ name: 'a', namespace: ns })), 404);
});

test('custom objects: JSON patch with a failing test op is 422, a passing one applies; merge patch; strategic merge 415', async () => {
  const co = srv.kubeconfig().makeApiClient(CustomObjectsApi);
  const ref = { group: 'whereabouts.cni.cncf.io', version: 'v1alpha1', namespace: 'kube-system', plural: 'ippools' };
  const pool = await co.createNamespacedCustomObject({ ...ref, body: { apiVersion: 'whereabouts.cni.cncf.io/v1alpha1', kind: 'IPPool', metadata: { name: '10.0.0.0-24' }, spec: { range: '10.0.0.0/24', allocations: {} } } }) as any;
  const rv = pool.metadata.resourceVersion;
  const json = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
  const ok = await co.patchNamespacedCustomObject({ ...ref, name: '10.0.0.0-24', body: [
    { op: 'test', path: '/metadata/resourceVersion', value: rv },
    { op: 'add', path: '/spec/allocations/1', value: { id: 'a', podref: 'ns/p' } },
  ] }, json) as any;
  assert.deepEqual(ok.spec.allocations, { 1: { id: 'a', podref: 'ns/p' } });
  assert.equal(await code(co.patchNamespacedCustomObject({ ...ref, name: '10.0.0.0-24', body: [
    { op: 'test', path: '/metadata/resourceVersion', value: rv },
    { op: 'add', path: '/spec/allocations/2', value: { id: 'b', podref: '' } },
  ] }, json)), 422);
  const now = await co.getNamespacedCustomObject({ ...ref, name: '10.0.0.0-24' }) as any;
  assert.deepEqual(Object.keys(now.spec.allocations), ['1'], 'a failed patch leaves nothing behind');
  const merged = await co.patchNamespacedCustomObject({ ...ref, name: '10.0.0.0-24', body: { spec: { allocations: { 1: null, 3: { id: 'c', podref: '' } } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch)) as any;
  assert.deepEqual(Object.keys(merged.spec.allocations), ['3']);
  assert.equal(await code(co.patchNamespacedCustomObject({ ...ref, name: '10.0.0.0-24', body: { spec: {} } },
    setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch))), 415);
  // merge patch carrying a stale resourceVersion is an optimistic lock → 409
  assert.equal(await code(co.patchNamespacedCustomObject({ ...ref, name: '10.0.0.0-24', body: { metadata: { resourceVersion: rv }, spec: { range: 'x' } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch))), 409);
  // replace of a custom object without resourceVersion is refused (CRs allow no unconditional update)
  const { metadata, ...rest } = now;
  assert.equal(await code(co.replaceNamespacedCustomObject({ ...ref, name: '10.0.0.0-24', body: { ...rest, metadata: { name: metadata.name } } })), 422);
});

test('pods: merge patch of annotations, invalid deletion cost 422, field selectors, unsupported field 400', async () => {
  const core = srv.kubeconfig().makeApiClient(CoreV1Api);
  srv.store.addPod({ namespace: 'sel', name: 'p1', nodeName: 'n1', labels: { app: 'rtpe' } });
  srv.store.addPod({ namespace: 'sel', name: 'p2', nodeName: 'n2', labels: { app: 'rtpe', tier: 'x' } });
  srv.store.addPod({ namespace: 'other', name: 'p3', nodeName: 'n1', labels: { app: 'kam' } });
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  const p = await core.patchNamespacedPod({ name: 'p1', namespace: 'sel', body: { metadata: { annotations: { 'controller.kubernetes.io/pod-deletion-cost': '-5' } } } }, merge);
  assert.equal(p.metadata?.annotations?.['controller.kubernetes.io/pod-deletion-cost'], '-5');
  assert.equal(p.spec?.nodeName, 'n1', 'merge patch keeps the rest');
  assert.equal(await code(core.patchNamespacedPod({ name: 'p1', namespace: 'sel', body: { metadata: { annotations: { 'controller.kubernetes.io/pod-deletion-cost': '99999999999' } } } }, merge)), 422);
  const names = (l: { items: V1Pod[] }) => l.items.map((x) => x.metadata!.name).sort();
  assert.deepEqual(names(await core.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=n1' })), ['p1', 'p3']);
  assert.deepEqual(names(await core.listNamespacedPod({ namespace: 'sel', fieldSelector: 'spec.nodeName=n1' })), ['p1']);
  assert.deepEqual(names(await core.listPodForAllNamespaces({ labelSelector: 'app=rtpe,!tier' })), ['p1']);
  assert.deepEqual(names(await core.listPodForAllNamespaces({ labelSelector: 'app in (rtpe,kam),tier notin (x)' })), ['p1', 'p3']);
  assert.deepEqual(names(await core.listPodForAllNamespaces({ fieldSelector: 'metadata.namespace=other' })), ['p3']);
  assert.equal(await code(core.listPodForAllNamespaces({ fieldSelector: 'spec.bogus=1' })), 400);
  const j = await core.patchNamespacedPod({ name: 'p2', namespace: 'sel', body: [{ op: 'add', path: '/metadata/annotations', value: { a: 'b' } }] }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
  assert.equal(j.metadata?.annotations?.a, 'b');
});

test('watch: ADDED/MODIFIED/DELETED in order, selector transitions, resume from resourceVersion, 410 Gone when compacted', async () => {
  const kc = srv.kubeconfig();
  const core = kc.makeApiClient(CoreV1Api);
  const ns = 'w';
  const start = srv.store.resourceVersion();
  const seen: string[] = [];
  const ctl = await new Watch(kc).watch(`/api/v1/namespaces/${ns}/pods`, { fieldSelector: 'spec.nodeName=n1', resourceVersion: String(start) },
    (type, obj) => seen.push(`${type}:${obj.metadata.name}`), () => undefined);
  const a = srv.store.addPod({ namespace: ns, name: 'a', nodeName: 'n1' });
  srv.store.addPod({ namespace: ns, name: 'b', nodeName: 'n2' });
  await core.patchNamespacedPod({ name: 'a', namespace: ns, body: { metadata: { labels: { x: 'y' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  await core.deleteNamespacedPod({ name: 'a', namespace: ns, gracePeriodSeconds: 0 });
  await until(() => seen.length >= 3);
  ctl.abort();
  assert.deepEqual(seen, ['ADDED:a', 'MODIFIED:a', 'DELETED:a']);
  assert.ok(a.metadata.uid);

  // resume: events after a resourceVersion are replayed
  const replay: string[] = [];
  const ctl2 = await new Watch(kc).watch(`/api/v1/namespaces/${ns}/pods`, { resourceVersion: String(start) }, (t, o) => replay.push(`${t}:${o.metadata.name}`), () => undefined);
  await until(() => replay.length >= 4);
  ctl2.abort();
  assert.deepEqual(replay, ['ADDED:a', 'ADDED:b', 'MODIFIED:a', 'DELETED:a']);

  // too old → ERROR 410 then the stream ends
  srv.compact();
  let errCode = 0; let ended = false;
  await new Watch(kc).watch(`/api/v1/namespaces/${ns}/pods`, { resourceVersion: String(start) }, (t, o) => { if (t === 'ERROR') errCode = o.code; }, () => { ended = true; });
  await until(() => ended);
  assert.equal(errCode, 410);
});

test('ListWatch informer with a field selector relists after 410 and sees deletes', async () => {
  const kc = srv.kubeconfig();
  const core = kc.makeApiClient(CoreV1Api);
  const ns = 'inf';
  srv.store.addPod({ namespace: ns, name: 'x', nodeName: 'n9' });
  const lw = new ListWatch(`/api/v1/namespaces/${ns}/pods`, new Watch(kc),
    () => core.listNamespacedPod({ namespace: ns, fieldSelector: 'spec.nodeName=n9' }), false, undefined, 'spec.nodeName=n9');
  const deleted: string[] = [];
  lw.on('delete', (o) => deleted.push(o.metadata!.name!));
  await lw.start();
  await until(() => lw.list(ns).length === 1);
  srv.store.addPod({ namespace: ns, name: 'y', nodeName: 'n9' });
  srv.store.addPod({ namespace: ns, name: 'z', nodeName: 'other' });
  await until(() => lw.list(ns).length === 2);
  srv.store.delete('pods', ns, 'x');
  await until(() => deleted.includes('x'));
  await lw.stop();
});

test('owner-reference GC deletes dependents of a deleted pod (and dependents created for a gone owner)', async () => {
  const kc = srv.kubeconfig();
  const coord = kc.makeApiClient(CoordinationV1Api);
  const pod = srv.store.addPod({ namespace: 'gc', name: 'owner', nodeName: 'n1' });
  const ref = { apiVersion: 'v1', kind: 'Pod', name: 'owner', uid: pod.metadata.uid! };
  await coord.createNamespacedLease({ namespace: 'gc', body: { metadata: { name: 'l1', ownerReferences: [ref] } } });
  await coord.createNamespacedLease({ namespace: 'gc', body: { metadata: { name: 'free' } } });
  srv.store.delete('pods', 'gc', 'owner', { graceful: true });
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(srv.store.get('leases', 'gc', 'l1'), 'a terminating owner keeps its dependents');
  srv.store.finalize('pods', 'gc', 'owner');
  await until(() => !srv.store.get('leases', 'gc', 'l1'));
  assert.ok(srv.store.get('leases', 'gc', 'free'));
  await coord.createNamespacedLease({ namespace: 'gc', body: { metadata: { name: 'orphan', ownerReferences: [ref] } } });
  await until(() => !srv.store.get('leases', 'gc', 'orphan'));
});

test('graceful pod delete over HTTP marks deletionTimestamp; EndpointSlices list by label', async () => {
  const kc = srv.kubeconfig();
  const core = kc.makeApiClient(CoreV1Api);
  srv.store.addPod({ namespace: 'g', name: 'p', nodeName: 'n1' });
  const marked = await core.deleteNamespacedPod({ name: 'p', namespace: 'g', gracePeriodSeconds: 30 });
  assert.ok(marked.metadata?.deletionTimestamp);
  assert.ok((await core.readNamespacedPod({ name: 'p', namespace: 'g' })).metadata?.deletionTimestamp);
  const disc = kc.makeApiClient(DiscoveryV1Api);
  srv.store.create('endpointslices', { metadata: { name: 'rtpe-abc', namespace: 'g', labels: { 'kubernetes.io/service-name': 'rtpe' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.1'] }] });
  srv.store.create('endpointslices', { metadata: { name: 'kam-abc', namespace: 'g', labels: { 'kubernetes.io/service-name': 'kam' } }, addressType: 'IPv4', endpoints: [] });
  const l = await disc.listNamespacedEndpointSlice({ namespace: 'g', labelSelector: 'kubernetes.io/service-name=rtpe' });
  assert.deepEqual(l.items.map((e) => e.metadata?.name), ['rtpe-abc']);
});

test('faults: next N fail with the given status, outage resets connections, request log counts verbs', async () => {
  const core = srv.kubeconfig().makeApiClient(CoreV1Api);
  srv.store.addPod({ namespace: 'f', name: 'p', nodeName: 'n1' });
  srv.requests.reset();
  srv.faults.failNext(2, 503, { verb: 'get' });
  assert.equal(await code(core.readNamespacedPod({ name: 'p', namespace: 'f' })), 503);
  assert.equal(await code(core.readNamespacedPod({ name: 'p', namespace: 'f' })), 503);
  assert.equal(await code(core.readNamespacedPod({ name: 'p', namespace: 'f' })), 200);
  assert.equal(srv.requests.count({ verb: 'get', resource: 'pods' }), 3);
  srv.faults.outage(true);
  await assert.rejects(core.readNamespacedPod({ name: 'p', namespace: 'f' }), (e: unknown) => !(e instanceof ApiException));
  srv.faults.outage(false);
  assert.equal(await code(core.readNamespacedPod({ name: 'p', namespace: 'f' })), 200);
});

test('patch helpers follow RFC 6902 / 7386; label selector parser rejects garbage', () => {
  assert.deepEqual(applyJsonPatch({ a: [1, 2] }, [{ op: 'add', path: '/a/-', value: 3 }, { op: 'move', from: '/a', path: '/b' }]), { b: [1, 2, 3] });
  assert.throws(() => applyJsonPatch({ a: 1 }, [{ op: 'remove', path: '/x' }]), /nonexistent/);
  assert.throws(() => applyJsonPatch({ 'a/b': 1 }, [{ op: 'test', path: '/a~1b', value: 2 }]), /test failed/);
  assert.deepEqual(applyMergePatch({ a: { b: 1, c: 2 } }, { a: { b: null } }), { a: { c: 2 } });
  assert.throws(() => parseLabelSelector('a in (b'), /unable to parse/);
});
