import { test } from 'node:test';
import assert from 'node:assert/strict';
import { slicesOf, localEndpointSource, type LocalEndpoint } from './local-endpoints.js';
import { desiredNodes } from './endpoints.js';
import type { EndpointSlice } from './endpoints.js';

const ep = (name: string, port: number, o: Partial<LocalEndpoint> = {}): LocalEndpoint =>
  ({ name, namespace: 'local', ip: '127.0.0.1', ngPort: port, controlPort: port + 100, ready: true, terminating: false, ...o });
const select = { portName: 'ng', controlPortName: 'control', addressType: 'IPv4' as const, setid: 0, weight: 1 };

test('local pods become the nodes the EndpointSlice path selects: ready ones added, a terminating one kept only while in the table', () => {
  const slices = slicesOf('rtpengine', [ep('a', 2000), ep('b', 2001, { terminating: true }), ep('c', 2002, { ready: false })]);
  assert.deepEqual(desiredNodes(slices, select).map((n) => n.url), ['udp:127.0.0.1:2000']);
  const inTable = new Set(['udp:127.0.0.1:2000', 'udp:127.0.0.1:2001']);
  assert.deepEqual(desiredNodes(slices, select, inTable).map((n) => n.url), ['udp:127.0.0.1:2000', 'udp:127.0.0.1:2001']);
  assert.equal(slices[1]!.endpoints![0]!.conditions!.ready, false, 'a terminating pod is not ready');
  assert.deepEqual(slices[0]!.ports!.map((p) => p.name), ['ng', 'control']);
});

test('the source reports a snapshot on start and on every change only', async () => {
  let pods = [ep('a', 2000)];
  const seen: EndpointSlice[][] = [];
  const src = localEndpointSource('rtpengine', () => pods, 10);
  src.start({ onSnapshot: (s) => seen.push(s), onError: (e) => assert.fail(String(e)) });
  assert.equal(seen.length, 1);
  pods = [ep('a', 2000), ep('b', 2001)];
  await new Promise<void>((resolve) => { const t = setInterval(() => { if (seen.length >= 2) { clearInterval(t); resolve(); } }, 5); });
  const before = seen.length;
  await new Promise((r) => setTimeout(r, 50)); // several polls with no change
  assert.equal(seen.length, before, 'no snapshot without a change');
  assert.equal(seen.at(-1)!.length, 2);
  await src.stop();
});
