import { test } from 'node:test';
import assert from 'node:assert/strict';
import { slicesOf, localEndpointSource, type LocalEndpoint } from './local-endpoints.js';
import { desiredNodes } from './endpoints.js';
import type { EndpointSlice } from './endpoints.js';
import { SteppedClock } from '../../test/support/clock.js';

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
  const clock = new SteppedClock();
  let pods = [ep('a', 2000)];
  const seen: EndpointSlice[][] = [];
  const src = localEndpointSource('rtpengine', () => pods, 250, clock);
  src.start({ onSnapshot: (s) => seen.push(s), onError: (e) => assert.fail(String(e)) });
  assert.equal(seen.length, 1);
  await clock.advance(1000);
  assert.equal(seen.length, 1, 'four polls, no change, no snapshot');
  pods = [ep('a', 2000), ep('b', 2001)];
  await clock.advance(250);
  assert.equal(seen.length, 2);
  assert.equal(seen.at(-1)!.length, 2);
  pods = [ep('a', 2000), ep('b', 2001, { terminating: true })];
  await clock.advance(250);
  assert.equal(seen.at(-1)![1]!.endpoints![0]!.conditions!.terminating, true);
  await src.stop();
  pods = [];
  await clock.advance(1000);
  assert.equal(seen.length, 3, 'nothing after stop');
});
