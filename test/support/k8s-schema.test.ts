// The schema validator refuses what the API server refuses: MicroTime digits, Time format, wrong
// types, missing required fields, unknown fields (dropped or Strict), CRD schemas from test/crds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateObject, statusFor, warningsFor, dropUnknownFields, isValidMicroTime, isValidTime } from './k8s-schema.js';

const lease = (spec: Record<string, unknown>, meta: Record<string, unknown> = {}) => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'l', namespace: 'd', ...meta }, spec });

test('MicroTime: exactly six fractional digits (RFC3339Micro), else 400', async () => {
  assert.deepEqual(await validateObject(lease({ renewTime: '2026-12-07T17:06:52.105000Z', acquireTime: '2026-12-07T17:06:52.105000+01:00' })), []);
  for (const bad of ['2026-12-07T17:06:52.105Z', '2026-12-07T17:06:52Z', '2026-12-07T17:06:52.1050000Z', '2026-12-07 17:06:52.105000Z', '2026-13-07T17:06:52.105000Z']) {
    const issues = await validateObject(lease({ renewTime: bad }));
    assert.equal(issues.length, 1, bad);
    assert.equal(issues[0]!.class, 'decode');
    assert.equal(issues[0]!.path, 'spec.renewTime');
    assert.equal(statusFor(lease({ renewTime: bad }), issues)!.code, 400);
  }
  assert.equal(isValidMicroTime('2026-02-29T00:00:00.000000Z'), false); // not a leap year
  assert.equal(isValidMicroTime('2028-02-29T00:00:00.000000Z'), true);
});

test('Time: RFC 3339 (fraction optional), else 400', async () => {
  assert.equal(isValidTime('2026-12-07T17:06:52Z'), true);
  assert.equal(isValidTime('2026-12-07T17:06:52.105Z'), true);
  assert.equal(isValidTime('2026-12-07T17:06:52'), false);
  assert.equal(isValidTime(''), false);
  const obj = lease({}, { creationTimestamp: '2026-12-07' });
  const issues = await validateObject(obj);
  assert.equal(issues[0]!.class, 'decode');
  assert.equal(statusFor(obj, issues)!.code, 400);
});

test('wrong type on a built-in is a decode error (400); missing required is 422', async () => {
  const bad = lease({ holderIdentity: 7, leaseDurationSeconds: 1.5 });
  const issues = await validateObject(bad);
  assert.deepEqual(issues.map((i) => [i.path, i.class]), [['spec.holderIdentity', 'decode'], ['spec.leaseDurationSeconds', 'decode']]);
  assert.equal(statusFor(bad, issues)!.code, 400);
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ image: 'x' }] } };
  const pi = await validateObject(pod);
  assert.deepEqual(pi.map((i) => [i.path, i.class]), [['spec.containers[0].name', 'invalid']]);
  const st = statusFor(pod, pi)!;
  assert.equal(st.code, 422);
  assert.equal(st.status.reason, 'Invalid');
  assert.match(st.status.message, /^Pod "p" is invalid: spec\.containers\[0\]\.name: Required value$/);
});

test('unknown fields: dropped with a warning by default, 400 with fieldValidation=Strict', async () => {
  const obj = lease({ holderIdentity: 'a', junk: 1 }, { bogus: true });
  const issues = await validateObject(obj);
  assert.deepEqual(issues.map((i) => i.path).sort(), ['metadata.bogus', 'spec.junk']);
  assert.equal(statusFor(obj, issues), undefined);
  assert.equal(warningsFor(issues).length, 2);
  assert.deepEqual(dropUnknownFields(obj, issues), lease({ holderIdentity: 'a' }));
  assert.equal(statusFor(obj, issues, { fieldValidation: 'Strict' })!.code, 400);
});

test('whereabouts IPPool against its published CRD', async () => {
  const pool = (spec: unknown) => ({ apiVersion: 'whereabouts.cni.cncf.io/v1alpha1', kind: 'IPPool', metadata: { name: '10.0.0.0-24', namespace: 'kube-system' }, spec });
  assert.deepEqual(await validateObject(pool({ range: '10.0.0.0/24', allocations: { 5: { id: 'x', podref: '', ifname: '' } } })), []);
  const missing = pool({ range: '10.0.0.0/24', allocations: { 5: { id: 'x' } } });
  const mi = await validateObject(missing);
  assert.deepEqual(mi.map((i) => [i.path, i.class]), [['spec.allocations[5].podref', 'invalid']]);
  assert.equal(statusFor(missing, mi)!.code, 422);
  const typed = pool({ range: 10, allocations: {} });
  assert.equal(statusFor(typed, await validateObject(typed))!.code, 422);
  const extra = pool({ range: '10.0.0.0/24', allocations: { 5: { id: 'x', podref: '', node: 'n' } } });
  assert.deepEqual((await validateObject(extra)).map((i) => [i.path, i.class]), [['spec.allocations[5].node', 'unknown-field']]);
  const noAlloc = pool({ range: '10.0.0.0/24' });
  assert.equal(statusFor(noAlloc, await validateObject(noAlloc))!.code, 422);
});

test('ORIP, NodeSlicePool, NetworkAttachmentDefinition, ScaledObject, ServiceMonitor are known', async () => {
  const orip = { apiVersion: 'whereabouts.cni.cncf.io/v1alpha1', kind: 'OverlappingRangeIPReservation', metadata: { name: '10.0.0.5' }, spec: {} };
  assert.deepEqual((await validateObject(orip)).map((i) => i.path), ['spec.podref']);
  const nsp = { apiVersion: 'whereabouts.cni.cncf.io/v1alpha1', kind: 'NodeSlicePool', metadata: { name: 'x' }, spec: { range: '10.0.0.0/16', sliceSize: '/24' } };
  assert.deepEqual(await validateObject(nsp), []);
  const nad = { apiVersion: 'k8s.cni.cncf.io/v1', kind: 'NetworkAttachmentDefinition', metadata: { name: 'm' }, spec: {} };
  assert.deepEqual((await validateObject(nad)).map((i) => i.path), ['spec.config']);
  const so = { apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name: 's' }, spec: { scaleTargetRef: { name: 'd' }, triggers: [{ type: 'prometheus', metadata: { query: 'q' } }] } };
  assert.deepEqual(await validateObject(so), []);
  const soBad = { ...so, spec: { scaleTargetRef: { name: 'd' } } };
  assert.ok((await validateObject(soBad)).some((i) => i.path === 'spec.triggers' && i.class === 'invalid'));
  const sm = { apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: { name: 's' }, spec: { selector: {}, endpoints: [{ port: 'metrics' }] } };
  assert.deepEqual(await validateObject(sm), []);
  const smBad = { ...sm, spec: { selector: {}, endpoints: [{ port: 7 }] } };
  assert.ok((await validateObject(smBad)).some((i) => i.class === 'invalid'));
  const nope = { apiVersion: 'example.com/v1', kind: 'Nope', metadata: { name: 'n' } };
  assert.equal((await validateObject(nope))[0]!.class, 'unknown-kind');
});

test('built-ins the chart renders validate clean when well-formed', async () => {
  const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { selector: { a: 'b' }, ports: [{ name: 'ng', port: 2223, targetPort: 2223, protocol: 'UDP' }] } };
  assert.deepEqual(await validateObject(svc), []);
  const ds = { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'd' }, spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i', ports: [{ containerPort: 'x' }] }] } } } };
  const di = await validateObject(ds);
  assert.deepEqual(di.map((i) => [i.path, i.class]), [['spec.template.spec.containers[0].ports[0].containerPort', 'decode']]);
});
