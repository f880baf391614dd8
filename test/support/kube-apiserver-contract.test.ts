// The stand-in refuses what the real API server refuses, and does the controllers' work: each rule
// is a known-bad write refused (MicroTime first) or a behaviour the project depends on.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  ApiException, CoordinationV1Api, CoreV1Api, CustomObjectsApi, DiscoveryV1Api, PatchStrategy, Watch, setHeaderOptions, V1MicroTime,
} from '../../src/kube/k8s.js';
import { startKubeApiServer, type KubeApiServer } from './kube-apiserver.js';
import { waitFor } from './wait.js';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as yaml from 'js-yaml';
import { createKubeClient } from '../../src/kube/client.js';

let srv: KubeApiServer;
before(async () => { srv = await startKubeApiServer({ bookmarkIntervalMs: 50 }); });
after(async () => { await srv.close(); });

const failure = async (p: Promise<unknown>): Promise<{ code: number; body: any }> => {
  try { await p; return { code: 200, body: undefined }; } catch (e) {
    if (e instanceof ApiException) return { code: e.code, body: typeof e.body === 'string' ? JSON.parse(e.body) : e.body };
    throw e;
  }
};
const raw = async (method: string, path: string, body?: unknown, ctype = 'application/json') => {
  const r = await fetch(srv.url + path, { method, headers: { 'content-type': ctype }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, body: await r.json() as any, warning: r.headers.get('warning') };
};

test('MicroTime: a Lease with a JS Date (3 digits) is refused 400; six digits (V1MicroTime) accepted', async () => {
  const co = srv.kubeconfig().makeApiClient(CoordinationV1Api);
  const bad = await failure(co.createNamespacedLease({ namespace: 'mt', body: { metadata: { name: 'a' }, spec: { holderIdentity: 'x', renewTime: new Date() as any } } }));
  assert.equal(bad.code, 400);
  assert.equal(bad.body.reason, 'BadRequest');
  assert.match(bad.body.message, /^Lease in version "v1" cannot be handled as a Lease: parsing time/);
  assert.equal(srv.store.get('leases', 'mt', 'a'), undefined, 'nothing stored');
  const ok = await co.createNamespacedLease({ namespace: 'mt', body: { metadata: { name: 'a' }, spec: { holderIdentity: 'x', renewTime: new V1MicroTime() } } });
  assert.match(String(srv.store.get('leases', 'mt', 'a')!.spec.renewTime), /\.\d{6}Z$/);
  // an update and a patch are judged on their result too
  assert.equal((await raw('PUT', '/apis/coordination.k8s.io/v1/namespaces/mt/leases/a', { ...ok, spec: { renewTime: '2026-01-01T00:00:00Z' } })).status, 400);
  assert.equal((await raw('PATCH', '/apis/coordination.k8s.io/v1/namespaces/mt/leases/a', { spec: { acquireTime: '2026-01-01T00:00:00.5Z' } }, 'application/merge-patch+json')).status, 400);
});

test('Time: creationTimestamp-like fields must be RFC 3339 → 400', async () => {
  const r = await raw('POST', '/api/v1/namespaces/t/pods', { metadata: { name: 'p', labels: {} }, spec: { containers: [{ name: 'c', image: 'i' }] }, status: { startTime: '07/12/2026' } });
  assert.equal(r.status, 400);
  assert.match(r.body.message, /cannot be handled as a Pod/);
});

test('wrong type 400, missing required 422 (built-in and CRD), unknown field dropped with a Warning or 400 when Strict', async () => {
  const wrong = await raw('POST', '/apis/coordination.k8s.io/v1/namespaces/s/leases', { metadata: { name: 'w' }, spec: { leaseDurationSeconds: '15' } });
  assert.equal(wrong.status, 400);
  const req = await raw('POST', '/api/v1/namespaces/s/pods', { metadata: { name: 'r' }, spec: { containers: [{ image: 'i' }] } });
  assert.equal(req.status, 422);
  assert.equal(req.body.reason, 'Invalid');
  assert.equal(req.body.details.causes[0].field, 'spec.containers[0].name');
  const pool = await failure(srv.kubeconfig().makeApiClient(CustomObjectsApi).createNamespacedCustomObject({ group: 'whereabouts.cni.cncf.io', version: 'v1alpha1', namespace: 's', plural: 'ippools',
    body: { apiVersion: 'whereabouts.cni.cncf.io/v1alpha1', kind: 'IPPool', metadata: { name: '10.1.0.0-24' }, spec: { range: '10.1.0.0/24', allocations: { 1: { id: 'x' } } } } }));
  assert.equal(pool.code, 422);
  assert.match(pool.body.message, /spec\.allocations\[1\]\.podref: Required value/);
  const unknown = await raw('POST', '/apis/coordination.k8s.io/v1/namespaces/s/leases', { metadata: { name: 'u' }, spec: { holderIdentity: 'h', holder: 'typo' } });
  assert.equal(unknown.status, 201);
  assert.equal(unknown.warning, '299 - "unknown field \\"spec.holder\\""');
  assert.equal(unknown.body.spec.holder, undefined, 'dropped');
  assert.equal(srv.requests.all().at(-1)!.warnings?.length, 1);
  const strict = await raw('POST', '/apis/coordination.k8s.io/v1/namespaces/s/leases?fieldValidation=Strict', { metadata: { name: 'u2' }, spec: { holder: 'typo' } });
  assert.equal(strict.status, 400);
  assert.match(strict.body.message, /strict decoding error: unknown field "spec.holder"/);
});

test('object meta as apimachinery validates it: names, label keys and values, annotation size, finalizers → 422', async () => {
  const lease = (metadata: Record<string, unknown>) => raw('POST', '/apis/coordination.k8s.io/v1/namespaces/meta/leases', { metadata, spec: {} });
  for (const [bad, field] of [
    [{ name: 'Upper' }, 'metadata.name'],
    [{ name: 'a'.repeat(254) }, 'metadata.name'],
    [{ name: 'ok', labels: { 'rtpengine-k8s.io/node': 'x'.repeat(64) } }, 'metadata.labels'],
    [{ name: 'ok', labels: { 'bad key!': 'v' } }, 'metadata.labels'],
    [{ name: 'ok', annotations: { big: 'x'.repeat(262_145) } }, 'metadata.annotations'],
    [{ name: 'ok', finalizers: ['not a name'] }, 'metadata.finalizers'],
  ] as const) {
    const r = await lease(bad);
    assert.equal(r.status, 422, JSON.stringify(bad).slice(0, 80));
    assert.equal(r.body.details.causes[0].field, field);
  }
  assert.equal((await lease({ name: 'rtpe-node-a.example.com-t0', labels: { 'rtpengine-k8s.io/node': 'h-' + 'a'.repeat(40) }, finalizers: ['rtpengine-k8s.io/release'] })).status, 201);
  assert.equal((await raw('POST', '/api/v1/namespaces/meta/services', { metadata: { name: '1svc' }, spec: { ports: [{ port: 1 }] } })).status, 422, 'Service names are DNS-1035 labels');
});

test('no-op writes keep the resourceVersion and emit no MODIFIED', async () => {
  const co = srv.kubeconfig().makeApiClient(CoordinationV1Api);
  const l = await co.createNamespacedLease({ namespace: 'noop', body: { metadata: { name: 'n', annotations: { a: '1' } }, spec: { holderIdentity: 'h' } } });
  const seen: string[] = [];
  const ctl = await new Watch(srv.kubeconfig()).watch('/apis/coordination.k8s.io/v1/namespaces/noop/leases', { resourceVersion: l.metadata!.resourceVersion }, (t) => seen.push(t), () => undefined);
  const same = await co.patchNamespacedLease({ namespace: 'noop', name: 'n', body: { metadata: { annotations: { a: '1' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  assert.equal(same.metadata!.resourceVersion, l.metadata!.resourceVersion);
  const replaced = await co.replaceNamespacedLease({ namespace: 'noop', name: 'n', body: l });
  assert.equal(replaced.metadata!.resourceVersion, l.metadata!.resourceVersion);
  const changed = await co.patchNamespacedLease({ namespace: 'noop', name: 'n', body: { metadata: { annotations: { a: '2' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  assert.notEqual(changed.metadata!.resourceVersion, l.metadata!.resourceVersion);
  await waitFor('the one MODIFIED', () => seen.length >= 1);
  ctl.abort();
  assert.deepEqual(seen, ['MODIFIED']);
});

test('watches: closed by the server after timeoutSeconds; bookmarks only when allowed, never before the initial events', async () => {
  let ended = false;
  const events: string[] = [];
  await new Watch(srv.kubeconfig()).watch('/api/v1/namespaces/wt/pods', { timeoutSeconds: 1 }, (t) => events.push(t), () => { ended = true; });
  await waitFor('the server to end the watch', () => ended);
  assert.deepEqual(events, [], 'no bookmarks without allowWatchBookmarks');
  const marks: string[] = [];
  // The pod is added before the watch starts, from a resourceVersion before it: its ADDED is the
  // watch's initial event, and no BOOKMARK may come before it.
  const from = String(srv.store.resourceVersion());
  srv.store.addPod({ namespace: 'wt', name: 'p', nodeName: 'n' });
  const ctl = await new Watch(srv.kubeconfig()).watch('/api/v1/namespaces/wt/pods', { allowWatchBookmarks: true, resourceVersion: from },
    (t, o) => marks.push(`${t}:${o.metadata.resourceVersion}`), () => undefined);
  await waitFor('two bookmarks', () => marks.filter((m) => m.startsWith('BOOKMARK')).length >= 2);
  ctl.abort();
  assert.equal(marks[0], `ADDED:${srv.store.get('pods', 'wt', 'p')!.metadata.resourceVersion}`, 'the initial event first, never a BOOKMARK');
  assert.equal(marks.filter((m) => m.startsWith('ADDED')).length, 1);
  const last = marks.filter((m) => m.startsWith('BOOKMARK')).at(-1)!;
  assert.equal(last.split(':')[1], String(srv.store.resourceVersion()), 'a bookmark carries the current resourceVersion');
});

test('410 Gone for a compacted resourceVersion', async () => {
  const rvOld = String(srv.store.resourceVersion());
  srv.store.addPod({ namespace: 'gone', name: 'x', nodeName: 'n' });
  srv.compact();
  let code = 0;
  let ended = false;
  await new Watch(srv.kubeconfig()).watch('/api/v1/namespaces/gone/pods', { resourceVersion: rvOld }, (t, o) => { if (t === 'ERROR') code = o.code; }, () => { ended = true; });
  await waitFor('the watch to end', () => ended);
  assert.equal(code, 410);
});

test('garbage collection is asynchronous: the dependent outlives its owner until the collector runs', async () => {
  const manual = await startKubeApiServer({ gc: 'manual' });
  try {
    const owner = manual.store.addPod({ namespace: 'gc', name: 'o', nodeName: 'n' });
    manual.store.create('leases', { metadata: { name: 'dep', namespace: 'gc', ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: 'o', uid: owner.metadata.uid! }] }, spec: {} });
    await manual.kubeconfig().makeApiClient(CoreV1Api).deleteNamespacedPod({ name: 'o', namespace: 'gc', gracePeriodSeconds: 0 });
    assert.ok(manual.store.get('leases', 'gc', 'dep'), 'still there right after the owner is gone');
    manual.runGc();
    assert.equal(manual.store.get('leases', 'gc', 'dep'), undefined);
  } finally { await manual.close(); }
});

test('pod DELETE honours the grace period: terminationGracePeriodSeconds by default, terminating until then', async () => {
  const core = srv.kubeconfig().makeApiClient(CoreV1Api);
  srv.store.addPod({ namespace: 'grace', name: 'g', nodeName: 'n', terminationGracePeriodSeconds: 3600 });
  const marked = await core.deleteNamespacedPod({ name: 'g', namespace: 'grace' });
  assert.ok(marked.metadata?.deletionTimestamp);
  assert.equal(marked.metadata?.deletionGracePeriodSeconds, 3600);
  assert.ok(srv.store.get('pods', 'grace', 'g'), 'still there (terminating)');
  await core.deleteNamespacedPod({ name: 'g', namespace: 'grace', gracePeriodSeconds: 0 });
  assert.equal(srv.store.get('pods', 'grace', 'g'), undefined, 'grace 0 removes it');
  // an unscheduled pod goes at once
  srv.store.create('pods', { metadata: { name: 'u', namespace: 'grace' }, spec: { containers: [{ name: 'c', image: 'i' }] } });
  await core.deleteNamespacedPod({ name: 'u', namespace: 'grace' });
  assert.equal(srv.store.get('pods', 'grace', 'u'), undefined);
});

const svcBody = (name: string, targetPort: number | string) => ({ metadata: { name, namespace: 'eps' }, spec: { selector: { app: name }, ports: [{ name: 'ng', port: 2223, targetPort, protocol: 'UDP' }] } });
const sidecarPod = (name: string, app: string, ip: string) => ({
  namespace: 'eps', name, nodeName: 'n1', podIP: ip, labels: { app },
  containers: [{ name: 'rtpengine', image: 'r' }],
  initContainers: [{ name: 'sidecar', image: 's', restartPolicy: 'Always', ports: [{ name: 'ng', containerPort: 2223, protocol: 'UDP' }] }],
});

test('EndpointSlice controller: readiness, terminating, and named ports of native sidecars unresolved before 1.32', async () => {
  const disc = srv.kubeconfig().makeApiClient(DiscoveryV1Api);
  const slices = async (svc: string) => (await disc.listNamespacedEndpointSlice({ namespace: 'eps', labelSelector: `kubernetes.io/service-name=${svc}` })).items;
  srv.store.create('services', svcBody('named', 'ng'));
  srv.store.create('services', svcBody('numeric', 2223));
  srv.store.addPod(sidecarPod('a', 'named', '10.9.0.1'));
  srv.store.addPod(sidecarPod('b', 'numeric', '10.9.0.2'));
  srv.store.addPod({ ...sidecarPod('c', 'numeric', '10.9.0.3'), ready: false });
  await waitFor('slices for both services', async () => (await slices('named')).length === 1 && (await slices('numeric')).length === 1 && (await slices('numeric'))[0]!.endpoints!.length === 2);
  assert.equal(srv.serverVersion, '1.29');
  const named = (await slices('named'))[0]!;
  assert.deepEqual(named.ports, [], 'the sidecar\'s named port is not resolved on 1.29');
  assert.equal(named.endpoints![0]!.addresses[0], '10.9.0.1');
  const numeric = (await slices('numeric'))[0]!;
  assert.deepEqual(numeric.ports?.map((p) => [p.name, p.port, p.protocol]), [['ng', 2223, 'UDP']]);
  const byPod = Object.fromEntries(numeric.endpoints!.map((e) => [e.targetRef!.name, { ...e.conditions }]));
  assert.deepEqual(byPod.b, { ready: true, serving: true, terminating: false });
  assert.deepEqual(byPod.c, { ready: false, serving: false, terminating: false });
  // readiness change and a graceful delete flow through
  srv.store.setPodReady('eps', 'c', true);
  await waitFor('c ready', async () => (await slices('numeric'))[0]!.endpoints!.find((e) => e.targetRef!.name === 'c')!.conditions!.ready === true);
  await srv.kubeconfig().makeApiClient(CoreV1Api).deleteNamespacedPod({ name: 'b', namespace: 'eps', gracePeriodSeconds: 3600 });
  await waitFor('b terminating', async () => {
    const e = (await slices('numeric'))[0]!.endpoints!.find((x) => x.targetRef!.name === 'b')!;
    return e.conditions!.terminating === true && e.conditions!.ready === false && e.conditions!.serving === true;
  });
  await srv.kubeconfig().makeApiClient(CoreV1Api).deleteNamespacedPod({ name: 'b', namespace: 'eps', gracePeriodSeconds: 0 });
  await waitFor('b gone from the slice', async () => (await slices('numeric'))[0]!.endpoints!.length === 1);
  // a pod without an IP is no endpoint
  srv.store.addPod({ namespace: 'eps', name: 'noip', nodeName: 'n1', labels: { app: 'numeric' } });
  await srv.kubeconfig().makeApiClient(CoreV1Api).deleteNamespacedService({ name: 'numeric', namespace: 'eps' });
  await waitFor('slices of a deleted Service go', async () => (await slices('numeric')).length === 0);
});

test('EndpointSlice controller on 1.32: the native sidecar\'s named port resolves', async () => {
  const v132 = await startKubeApiServer({ serverVersion: '1.32' });
  try {
    v132.store.create('services', svcBody('named', 'ng'));
    v132.store.addPod(sidecarPod('a', 'named', '10.9.0.1'));
    const disc = v132.kubeconfig().makeApiClient(DiscoveryV1Api);
    let ports: unknown;
    await waitFor('a slice', async () => { const s = (await disc.listNamespacedEndpointSlice({ namespace: 'eps' })).items; ports = s[0]?.ports?.map((p) => ({ ...p })); return s.length === 1; });
    assert.deepEqual(ports, [{ name: 'ng', port: 2223, protocol: 'UDP' }]);
    const version = await (await fetch(`${v132.url}/version`)).json() as { gitVersion: string };
    assert.equal(version.gitVersion, 'v1.32.0');
  } finally { await v132.close(); }
});

test('pod status as the pod strategy: reset to Pending on create, ignored through the main resource, written only through /status', async () => {
  const core = srv.kubeconfig().makeApiClient(CoreV1Api);
  const spec = { nodeName: 'n', containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.9' }] };
  const created = await core.createNamespacedPod({ namespace: 'ps', body: { metadata: { name: 'p' }, spec, status: { phase: 'Running', podIP: '127.0.0.9' } } });
  assert.deepEqual({ ...created.status }, { phase: 'Pending' }, 'the status sent with a create is dropped');
  const put = await core.replaceNamespacedPod({ namespace: 'ps', name: 'p', body: { ...created, metadata: { ...created.metadata, labels: { a: 'b' } }, status: { phase: 'Running' } } });
  assert.equal(put.status?.phase, 'Pending', 'a status change through the main resource is ignored');
  assert.equal(put.metadata?.labels?.a, 'b', 'the rest of the update applies');
  const patched = await core.patchNamespacedPod({ namespace: 'ps', name: 'p', body: { status: { phase: 'Running' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  assert.equal(patched.status?.phase, 'Pending', 'nor through a patch');
  const st = await core.patchNamespacedPodStatus({ namespace: 'ps', name: 'p', body: { status: { phase: 'Running' }, spec: { nodeName: 'other' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  assert.equal(st.status?.phase, 'Running', '/status writes the status');
  assert.equal(st.spec?.nodeName, 'n', 'and not the spec');
});

test('with crds: required, whereabouts resources are 404 until their CRD is created and Established (as without whereabouts installed)', async () => {
  const api = await startKubeApiServer({ crds: 'required' });
  try {
    const kube = createKubeClient(api.kubeconfig());
    assert.deepEqual(await kube.listOverlappingReservations('kube-system'), [], 'no ORIP CRD: the client reads 404 as none');
    assert.equal(await kube.listNodeSlicePools('kube-system'), undefined, 'no NodeSlicePool CRD: undefined');
    const custom = api.kubeconfig().makeApiClient(CustomObjectsApi);
    const WBO = { group: 'whereabouts.cni.cncf.io', version: 'v1alpha1', namespace: 'kube-system', plural: 'overlappingrangeipreservations' };
    const body = { apiVersion: 'whereabouts.cni.cncf.io/v1alpha1', kind: 'OverlappingRangeIPReservation', metadata: { name: '10.1.2.3' }, spec: { podref: 'a/b' } };
    assert.equal((await failure(custom.createNamespacedCustomObject({ ...WBO, body }))).code, 404);
    const manifest = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'crds', 'whereabouts.cni.cncf.io_overlappingrangeipreservations.yaml'), 'utf8');
    const crd = (yaml.loadAll(manifest) as any[]).find((d) => d?.kind === 'CustomResourceDefinition');
    await custom.createClusterCustomObject({ group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions', body: crd });
    await waitFor('the ORIP CRD Established', async () => (await kube.listOverlappingReservations('kube-system').then(() => true, () => false)) && (await failure(custom.listNamespacedCustomObject(WBO))).code === 200);
    await custom.createNamespacedCustomObject({ ...WBO, body });
    assert.equal((await kube.listOverlappingReservations('kube-system')).length, 1);
    assert.equal(await kube.listNodeSlicePools('kube-system'), undefined, 'still no NodeSlicePool CRD');
  } finally { await api.close(); }
});

test('Time and MicroTime are stored as the server marshals them: UTC, Time in whole seconds, MicroTime six digits', async () => {
  const coord = srv.kubeconfig().makeApiClient(CoordinationV1Api);
  const core = srv.kubeconfig().makeApiClient(CoreV1Api);
  const l = await raw('POST', '/apis/coordination.k8s.io/v1/namespaces/tn/leases', { metadata: { name: 'tz' }, spec: { holderIdentity: 'x', renewTime: '2026-03-01T10:00:00.123456+02:00', acquireTime: '2026-03-01T08:00:00.000001Z' } });
  assert.equal(l.status, 201);
  const got = await coord.readNamespacedLease({ namespace: 'tn', name: 'tz' });
  const rawLease = (await raw('GET', '/apis/coordination.k8s.io/v1/namespaces/tn/leases/tz')).body;
  assert.equal(rawLease.spec.renewTime, '2026-03-01T08:00:00.123456Z', 'MicroTime: to UTC, six digits kept');
  assert.equal(rawLease.spec.acquireTime, '2026-03-01T08:00:00.000001Z');
  assert.ok(got.spec?.renewTime);
  const p = await raw('POST', '/api/v1/namespaces/tn/pods', { metadata: { name: 'tp', deletionTimestamp: undefined }, spec: { containers: [{ name: 'c', image: 'i' }], activeDeadlineSeconds: 5 } });
  assert.equal(p.status, 201);
  const pod = await core.readNamespacedPod({ namespace: 'tn', name: 'tp' });
  srv.store.update('pods', { ...srv.store.get('pods', 'tn', 'tp')!, status: { phase: 'Running' } });
  const st = await raw('PATCH', '/api/v1/namespaces/tn/pods/tp/status', { status: { startTime: '2026-03-01T10:00:00.987+02:00' } }, 'application/merge-patch+json');
  assert.equal(st.status, 200, JSON.stringify(st.body));
  assert.equal(st.body.status.startTime, '2026-03-01T08:00:00Z', 'Time: to UTC, whole seconds');
  assert.ok(pod.metadata?.creationTimestamp);
});
