import { test } from 'node:test';
import assert from 'node:assert/strict';
import { desiredNodes, diffNodes, belongs, nodeUrl, drainProbeTargets, drainStateOf, ANNOTATION_WEIGHT, ANNOTATION_SETID, type EndpointSlice } from './endpoints.js';

const sel = { portName: 'ng', addressType: 'IPv4' as const, setid: 0, weight: 1 };
const ep = (ip: string, pod: string, conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean }) =>
  ({ addresses: [ip], conditions, targetRef: { kind: 'Pod', name: pod, namespace: 'media' } });
const slice = (endpoints: ReturnType<typeof ep>[], extra: Partial<EndpointSlice> = {}): EndpointSlice => ({
  metadata: { name: 'rtpe-abc', namespace: 'media', labels: { 'kubernetes.io/service-name': 'rtpengine' } },
  addressType: 'IPv4', endpoints, ports: [{ name: 'metrics', port: 9100, protocol: 'TCP' }, { name: 'ng', port: 2223, protocol: 'UDP' }], ...extra,
});

test('node URLs follow Kamailio syntax for both families', () => {
  assert.equal(nodeUrl('10.1.2.3', 2223), 'udp:10.1.2.3:2223');
  assert.equal(nodeUrl('fd00::7', 2223), 'udp6:[fd00::7]:2223');
});

test('ready pods belong; a terminating pod only stays if already in the table, whatever serving says', () => {
  assert.equal(belongs(undefined, false), true, 'nil conditions mean ready');
  assert.equal(belongs({ ready: false }, true), false, 'an unready running pod leaves');
  assert.equal(belongs({ ready: false, terminating: true }, false), false, 'a draining pod is never added');
  assert.equal(belongs({ ready: false, terminating: true }, true), true, 'a draining pod stays');
});

test('one row per ready pod with the ng port by name, sorted by URL; draining pods kept only when present', () => {
  const eps = [
    ep('10.0.0.9', 'b', { ready: true, serving: true, terminating: false }),
    ep('10.0.0.2', 'a'),
    ep('10.0.0.5', 'starting', { ready: false, serving: false, terminating: false }),
    ep('10.0.0.7', 'draining', { ready: false, serving: false, terminating: true }),
    ep('10.0.0.8', 'never-added', { ready: false, serving: true, terminating: true }),
  ];
  const nodes = desiredNodes([slice(eps)], sel, new Set(['udp:10.0.0.7:2223']));
  assert.deepEqual(nodes.map((n) => [n.url, n.pod, n.terminating]), [
    ['udp:10.0.0.2:2223', 'media/a', false],
    ['udp:10.0.0.7:2223', 'media/draining', true],
    ['udp:10.0.0.9:2223', 'media/b', false],
  ]);
  assert.deepEqual(desiredNodes([slice(eps)], sel).map((n) => n.pod), ['media/a', 'media/b']);
});

test('slices of the other family or without the named port give nothing', () => {
  assert.deepEqual(desiredNodes([slice([ep('10.0.0.1', 'a')], { addressType: 'IPv6' })], sel), []);
  assert.deepEqual(desiredNodes([slice([ep('10.0.0.1', 'a')], { ports: [{ name: 'other', port: 1 }] })], sel), []);
  const v6 = desiredNodes([slice([ep('fd00::1', 'a')], { addressType: 'IPv6' })], { ...sel, addressType: 'IPv6' });
  assert.deepEqual(v6.map((n) => n.url), ['udp6:[fd00::1]:2223']);
});

test('annotations override set id and weight; bad values are reported and ignored', () => {
  const bad: string[] = [];
  const ann = new Map<string, Record<string, string>>([
    ['media/a', { [ANNOTATION_WEIGHT]: '5', [ANNOTATION_SETID]: '2' }],
    ['media/b', { [ANNOTATION_WEIGHT]: 'heavy' }],
  ]);
  const nodes = desiredNodes([slice([ep('10.0.0.1', 'a'), ep('10.0.0.2', 'b')])], { ...sel, weight: 3 }, new Set(), ann, (pod, key) => bad.push(`${pod} ${key}`));
  assert.deepEqual(nodes.map((n) => [n.pod, n.setid, n.weight]), [['media/a', 2, 5], ['media/b', 0, 3]]);
  assert.deepEqual(bad, [`media/b ${ANNOTATION_WEIGHT}`]);
});

test('diff names added, removed and re-weighted nodes', () => {
  const a = desiredNodes([slice([ep('10.0.0.1', 'a'), ep('10.0.0.2', 'b')])], sel);
  const b = desiredNodes([slice([ep('10.0.0.2', 'b'), ep('10.0.0.3', 'c')])], { ...sel, weight: 2 });
  const d = diffNodes(a, b);
  assert.deepEqual([d.added.map((n) => n.pod), d.removed.map((n) => n.pod), d.changed.map((n) => n.pod)], [['media/c'], ['media/a'], ['media/b']]);
});

test('drain reports (ADR 0041): complete → removed; a live pod drained over HTTP stays while draining; ready pods ignore reports', () => {
  // Terminating: kept while draining or unknown (probe failed), removed once the drain is complete.
  assert.equal(belongs({ ready: false, terminating: true }, true, 'draining'), true);
  assert.equal(belongs({ ready: false, terminating: true }, true, undefined), true, 'no answer keeps the row');
  assert.equal(belongs({ ready: false, terminating: true }, true, 'serving'), true, 'SIGTERM not seen yet: keep');
  assert.equal(belongs({ ready: false, terminating: true }, true, 'drained'), false);
  assert.equal(belongs({ ready: false, terminating: true }, false, 'draining'), false, 'never added');
  // Not ready, not terminating: an HTTP/CLI drain keeps the row; anything else (rtpengine down) does not.
  assert.equal(belongs({ ready: false, terminating: false }, true, 'draining'), true);
  assert.equal(belongs({ ready: false, terminating: false }, true, 'drained'), false);
  assert.equal(belongs({ ready: false, terminating: false }, true, 'serving'), false);
  assert.equal(belongs({ ready: false, terminating: false }, true, undefined), false);
  assert.equal(belongs({ ready: false, terminating: false }, false, 'draining'), false, 'a drained pod is never added');
  // Ready and not terminating belongs whatever a (stale) report says.
  assert.equal(belongs({ ready: true, terminating: false }, false, 'drained'), true);

  const ports = [{ name: 'ng', port: 2223, protocol: 'UDP' }, { name: 'control', port: 9450, protocol: 'TCP' }];
  const eps = [
    ep('10.0.0.1', 'up', { ready: true, terminating: false }),
    ep('10.0.0.2', 'http-drained', { ready: false, terminating: false }),
    ep('10.0.0.3', 'terminating', { ready: false, terminating: true }),
    ep('10.0.0.4', 'not-in-table', { ready: false, terminating: true }),
  ];
  const inTable = new Set(['udp:10.0.0.1:2223', 'udp:10.0.0.2:2223', 'udp:10.0.0.3:2223']);
  const withCtl = { ...sel, controlPortName: 'control' };
  assert.deepEqual(drainProbeTargets([slice(eps, { ports })], withCtl, inTable).map((t) => [t.name, t.url, t.controlPort]),
    [['http-drained', 'udp:10.0.0.2:2223', 9450], ['terminating', 'udp:10.0.0.3:2223', 9450]]);
  assert.deepEqual(drainProbeTargets([slice(eps, { ports })], sel, inTable), [], 'no control port name: nothing to ask');
  assert.deepEqual(drainProbeTargets([slice(eps)], withCtl, inTable), [], 'slice without the control port: nothing to ask');

  const reports = new Map([['udp:10.0.0.2:2223', 'draining' as const], ['udp:10.0.0.3:2223', 'drained' as const]]);
  const nodes = desiredNodes([slice(eps, { ports })], withCtl, inTable, undefined, undefined, reports);
  assert.deepEqual(nodes.map((n) => [n.pod, n.terminating, n.draining ?? false]), [['media/up', false, false], ['media/http-drained', false, true]]);
});

test("the sidecar's /status → drain state; nonsense → undefined", () => {
  assert.deepEqual(drainStateOf({ state: 'draining', drainComplete: false, drainLingerSeconds: 20, proxy: { drain: { phase: 'draining' } } }), { report: 'draining', lingerSeconds: 20 });
  assert.deepEqual(drainStateOf({ state: 'drained', drainComplete: true, drainLingerSeconds: 20 }), { report: 'drained', lingerSeconds: 20 });
  assert.deepEqual(drainStateOf({ state: 'stopping', drainComplete: true }), { report: 'drained' });
  assert.deepEqual(drainStateOf({ state: 'lingering', drainComplete: true }), { report: 'drained' });
  assert.deepEqual(drainStateOf({ state: 'serving', drainComplete: false }), { report: 'serving' });
  assert.deepEqual(drainStateOf({ drain: 'x', proxy: { drain: { phase: 'drained' } } }), { report: 'drained' }, 'an older sidecar: the proxy phase');
  for (const bad of [null, 'drained', [], {}, { state: 'weird' }]) assert.equal(drainStateOf(bad), undefined, JSON.stringify(bad));
});
