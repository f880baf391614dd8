import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { FastNgUpstream } from './upstream.js';
import { systemClock } from '../clock.js';
import { isCoded } from '../errors.js';

async function sink(reply?: (m: Buffer, n: number) => Buffer | undefined) {
  const s = createSocket('udp4');
  const got: Buffer[] = [];
  s.on('message', (m, ri) => {
    got.push(m);
    const r = reply?.(m, got.length);
    if (r) s.send(r, ri.port, ri.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return { port: s.address().port, got, close: () => s.close() };
}

test('retransmits the byte-identical datagram, then times out with NG_TIMEOUT', async () => {
  const peer = await sink();
  const up = new FastNgUpstream({ host: '127.0.0.1', port: peer.port, timeoutMs: 40, attempts: 3, clock: systemClock });
  try {
    await assert.rejects(up.request(Buffer.from('d7:command4:pinge')), (e) => isCoded(e, 'NG_TIMEOUT') && (e.details.attempts === 3));
    assert.equal(peer.got.length, 3);
    assert.deepEqual(peer.got[1], peer.got[0]);
    assert.deepEqual(peer.got[2], peer.got[0]);
    assert.equal(up.inFlight, 0);
  } finally {
    up.close();
    peer.close();
  }
});

test('a reply to the retransmission resolves; cookies are unique per request', async () => {
  const peer = await sink((m, n) => (n === 1 ? undefined : Buffer.concat([m.subarray(0, m.indexOf(0x20) + 1), Buffer.from('d6:result4:ponge')])));
  const up = new FastNgUpstream({ host: '127.0.0.1', port: peer.port, timeoutMs: 40, attempts: 3, clock: systemClock });
  try {
    const r = await up.request({ command: 'ping' });
    assert.equal(r.reply.toString(), 'd6:result4:ponge');
    const r2 = await up.request({ command: 'ping' });
    assert.notEqual(r2.cookie, r.cookie);
  } finally {
    up.close();
    peer.close();
  }
});

test('close rejects what is in flight with NG_CLOSED, and later requests too', async () => {
  const peer = await sink();
  const up = new FastNgUpstream({ host: '127.0.0.1', port: peer.port, timeoutMs: 1000, attempts: 1, clock: systemClock });
  const p = up.request(Buffer.from('d7:command4:pinge'));
  up.close();
  await assert.rejects(p, (e) => isCoded(e, 'NG_CLOSED'));
  await assert.rejects(up.request(Buffer.from('d7:command4:pinge')), (e) => isCoded(e, 'NG_CLOSED'));
  peer.close();
});
