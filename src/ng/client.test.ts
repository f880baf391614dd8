import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { isCoded } from '../errors.js';
import { NgUdpClient, MAX_DATAGRAM } from './client.js';
import { NgUdpServer, type NgHandler } from './server.js';
import { splitMessage, joinMessage } from './framing.js';
import { decodeDict, encodeDict, str } from './codec.js';

/** A real UDP ng peer on loopback with a scripted handler; the client under test talks to it. */
async function peer(handler: NgHandler, host = '127.0.0.1') {
  const srv = await NgUdpServer.bind({ host, port: 0 }, handler);
  return { srv, port: srv.address().port, [Symbol.asyncDispose]: () => srv.close() };
}
const pong = (msg: Buffer, reply: (b: Buffer) => void) => reply(joinMessage(splitMessage(msg).cookie, Buffer.from('d6:result4:ponge')));

test('request → reply matched by cookie; reply bytes untouched', async () => {
  await using p = await peer((m, _r, reply) => pong(m, reply));
  const c = new NgUdpClient({ host: '127.0.0.1', port: p.port });
  try {
    const r = await c.request({ command: 'ping' });
    assert.equal(r.reply.toString(), 'd6:result4:ponge');
    assert.match(r.cookie, /^[0-9a-f]{16}_[0-9a-z]+$/);
    assert.deepEqual(await c.command({ command: 'ping' }), { result: 'pong' });
  } finally {
    c.close();
  }
});

test('many in flight, answered out of order, each gets its own reply', async () => {
  await using p = await peer((m, _r, reply) => {
    const { cookie, dict } = splitMessage(m);
    const n = str(decodeDict(dict).n)!;
    setTimeout(() => reply(joinMessage(cookie, encodeDict({ result: 'ok', n }))), Math.random() * 30);
  });
  const c = new NgUdpClient({ host: '127.0.0.1', port: p.port });
  try {
    const rs = await Promise.all(Array.from({ length: 64 }, (_, i) => c.command({ command: 'query', n: String(i) })));
    rs.forEach((r, i) => assert.equal(r.n, String(i)));
    assert.equal(c.inFlight, 0);
  } finally {
    c.close();
  }
});

test('retransmits the byte-identical datagram with the same cookie until answered', async () => {
  const seen: string[] = [];
  await using p = await peer((m, _r, reply) => {
    seen.push(m.toString('latin1'));
    if (seen.length === 2) pong(m, reply); // drop the first, answer the retransmission
  });
  const c = new NgUdpClient({ host: '127.0.0.1', port: p.port, timeoutMs: 60, retries: 3 });
  try {
    const r = await c.request(Buffer.from('d7:command4:pinge'));
    assert.equal(seen.length, 2);
    assert.equal(seen[0], seen[1]);
    assert.equal(seen[0], `${r.cookie} d7:command4:pinge`);
  } finally {
    c.close();
  }
});

test('no reply: NG_TIMEOUT after the configured attempts, with peer, attempts, timeout and command', async () => {
  let n = 0;
  await using p = await peer(() => { n++; });
  const c = new NgUdpClient({ host: '127.0.0.1', port: p.port, timeoutMs: 40, retries: 2 });
  try {
    await assert.rejects(c.request({ command: 'offer', 'call-id': 'x' }, { retries: 3, timeoutMs: 30 }), (e) => {
      assert.ok(isCoded(e, 'NG_TIMEOUT'));
      assert.equal(e.details.attempts, 3);
      assert.equal(e.details.timeoutMs, 30);
      assert.equal(e.details.command, 'offer');
      assert.equal(e.details.peer, `127.0.0.1:${p.port}`);
      return true;
    });
    assert.equal(n, 3);
    await assert.rejects(c.request({ command: 'ping' }), (e) => isCoded(e, 'NG_TIMEOUT') && e.details.attempts === 2);
  } finally {
    c.close();
  }
});

test('cookies are unique per client and across clients', async () => {
  const cookies = new Set<string>();
  await using p = await peer((m, _r, reply) => { cookies.add(splitMessage(m).cookie.toString()); pong(m, reply); });
  const a = new NgUdpClient({ host: '127.0.0.1', port: p.port });
  const b = new NgUdpClient({ host: '127.0.0.1', port: p.port });
  try {
    await Promise.all([...Array.from({ length: 20 }, () => a.request({ command: 'ping' })), ...Array.from({ length: 20 }, () => b.request({ command: 'ping' }))]);
    assert.equal(cookies.size, 40);
    const prefixes = new Set([...cookies].map((k) => k.split('_')[0]));
    assert.equal(prefixes.size, 2);
  } finally {
    a.close();
    b.close();
  }
});

test('a reply with the right cookie from another source is ignored', async () => {
  const spoofer = createSocket('udp4');
  await new Promise<void>((r) => spoofer.bind(0, '127.0.0.1', () => r()));
  let clientPort = 0;
  await using p = await peer((m, rinfo, reply) => {
    clientPort = rinfo.port;
    const { cookie } = splitMessage(m);
    spoofer.send(joinMessage(cookie, Buffer.from('d6:result5:error12:error-reason5:spoofe')), rinfo.port, rinfo.address);
    setTimeout(() => reply(joinMessage(cookie, Buffer.from('d6:result4:ponge'))), 30);
  });
  const c = new NgUdpClient({ host: '127.0.0.1', port: p.port });
  try {
    assert.deepEqual(await c.command({ command: 'ping' }), { result: 'pong' });
    assert.ok(clientPort > 0);
  } finally {
    c.close();
    spoofer.close();
  }
});

test('command(): error replies reject with NG_REMOTE_ERROR; load limit resolves', async () => {
  await using p = await peer((m, _r, reply) => {
    const { cookie, dict } = splitMessage(m);
    const cmd = str(decodeDict(dict).command);
    reply(joinMessage(cookie, cmd === 'answer'
      ? Buffer.from('d6:result5:error12:error-reason15:Unknown call-ide')
      : Buffer.from('d6:result10:load limit7:message30:Parallel session limit reachede')));
  });
  const c = new NgUdpClient({ host: '127.0.0.1', port: p.port });
  try {
    await assert.rejects(c.command({ command: 'answer' }), (e) => isCoded(e, 'NG_REMOTE_ERROR') && e.details.reason === 'Unknown call-id' && e.details.command === 'answer');
    assert.deepEqual(await c.command({ command: 'offer' }), { result: 'load limit', message: 'Parallel session limit reached' });
  } finally {
    c.close();
  }
});

test('close() rejects waiting requests with NG_CLOSED; later requests too', async () => {
  await using p = await peer(() => {});
  const c = new NgUdpClient({ host: '127.0.0.1', port: p.port, timeoutMs: 5000 });
  const pending = c.request({ command: 'ping' });
  c.close();
  await assert.rejects(pending, (e) => isCoded(e, 'NG_CLOSED') && e.details.inFlight === 1);
  await assert.rejects(c.request({ command: 'ping' }), (e) => isCoded(e, 'NG_CLOSED'));
});

test('abort signal: NG_ABORTED, and the request is forgotten', async () => {
  await using p = await peer(() => {});
  const c = new NgUdpClient({ host: '127.0.0.1', port: p.port, timeoutMs: 5000 });
  try {
    const ac = new AbortController();
    const r = c.request({ command: 'delete' }, { signal: ac.signal });
    setTimeout(() => ac.abort(), 10);
    await assert.rejects(r, (e) => isCoded(e, 'NG_ABORTED') && e.details.command === 'delete');
    assert.equal(c.inFlight, 0);
    await assert.rejects(c.request({ command: 'ping' }, { signal: AbortSignal.abort() }), (e) => isCoded(e, 'NG_ABORTED'));
  } finally {
    c.close();
  }
});

test('datagrams up to the UDP limit go through both ways; larger ones are refused before sending', async () => {
  await using p = await peer((m, _r, reply) => {
    const { cookie, dict } = splitMessage(m);
    reply(joinMessage(cookie, encodeDict({ result: 'ok', sdp: Buffer.from((decodeDict(dict).sdp as Uint8Array)) })));
  });
  const c = new NgUdpClient({ host: '127.0.0.1', port: p.port });
  try {
    const sdp = 'a'.repeat(60_000);
    const r = await c.command({ command: 'offer', sdp });
    assert.equal(r.result === 'ok' && r.sdp, sdp);
    await assert.rejects(c.request({ command: 'offer', sdp: 'b'.repeat(MAX_DATAGRAM) }), (e) => isCoded(e, 'NG_TOO_LARGE'));
  } finally {
    c.close();
  }
});

test('bad request values are coded errors, not throws', async () => {
  const c = new NgUdpClient({ host: '127.0.0.1', port: 9 });
  try {
    await assert.rejects(c.request({ command: 'ping', x: 1.5 }), (e) => isCoded(e, 'NG_ENCODE_INVALID'));
  } finally {
    c.close();
  }
});

test('IPv6', async (t) => {
  let p;
  try {
    p = await peer((m, _r, reply) => pong(m, reply), '::1');
  } catch (e) {
    t.skip(`no IPv6 loopback: ${(e as Error).message}`);
    return;
  }
  const c = new NgUdpClient({ host: '::1', port: p.port });
  try {
    assert.deepEqual(await c.command({ command: 'ping' }), { result: 'pong' });
    assert.equal(c.peer, `[::1]:${p.port}`);
  } finally {
    c.close();
    await p.srv.close();
  }
});
