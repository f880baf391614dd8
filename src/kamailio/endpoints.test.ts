import { test } from 'node:test';
import assert from 'node:assert/strict';
import { desiredNodes, diffNodes, belongs, nodeUrl, ANNOTATION_WEIGHT, ANNOTATION_SETID, type EndpointSlice } from './endpoints.js';

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
