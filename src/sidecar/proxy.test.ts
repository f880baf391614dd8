// The proxy's own answers, without rtpengine: bad input is answered or dropped, never a crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import fc from 'fast-check';
import { startNgProxy, localReply } from './proxy.js';
import { proxyConfigWith, parseHostPort, sourceMatcher } from './proxy-options.js';
import { createRegistry } from '../metrics.js';
import { silentLogger } from '../log.js';
import { scanRouting } from '../ng/scan.js';
import { decodeDict, str } from '../ng/codec.js';
import { freePort } from '../../test/support/ports.js';
import { waitFor } from '../../test/support/wait.js';
import { requires } from '../../test/support/require.js';
import { startRtpengine } from '../../test/support/rtpengine.js';
import { startRawRelay } from '../../bench/raw-relay.js';

/** Sends one ng request from `sock` and waits for the reply with that cookie. */
function ask(sock: ReturnType<typeof createSocket>, port: number, cookie: string, dict: string): Promise<Buffer> {
  return new Promise((resolve) => {
    const on = (m: Buffer) => {
      if (!m.toString('latin1').startsWith(`${cookie} `)) return;
      sock.off('message', on);
      resolve(m.subarray(cookie.length + 1));
    };
    sock.on('message', on);
    sock.send(Buffer.from(`${cookie} ${dict}`), port, '127.0.0.1');
  });
}
const OFFER = (id: string) => `d7:call-id${id.length}:${id}7:command5:offer8:from-tag2:ft3:sdp${SDP.length}:${SDP}8:supportsl10:load limitee`;
const SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n';

test('localReply: bencode and JSON flat dictionaries', () => {
  assert.equal(localReply('bencode', { result: 'load limit', message: 'draining' }).toString(), 'd6:result10:load limit7:message8:draininge');
  assert.equal(localReply('json', { result: 'error', 'error-reason': 'x' }).toString(), '{"result":"error","error-reason":"x"}');
  assert.equal(str(decodeDict(localReply('bencode', { result: 'error', 'error-reason': 'ünï' }))['error-reason']), 'ünï');
});

test('options: host:port and CIDR parsing, allowlist matching (IPv4, IPv6, mapped)', () => {
  assert.deepEqual(parseHostPort('[::1]:2223'), { host: '::1', port: 2223 });
  assert.deepEqual(parseHostPort('10.0.0.1:22222'), { host: '10.0.0.1', port: 22222 });
  assert.equal(parseHostPort('10.0.0.1'), undefined);
  assert.equal(parseHostPort('10.0.0.1:70000'), undefined);
  const m = sourceMatcher(['10.0.0.0/8', 'fd00::/8'])!;
  assert.equal(m('10.1.2.3'), true);
  assert.equal(m('::ffff:10.1.2.3'), true);
  assert.equal(m('11.0.0.1'), false);
  assert.equal(m('fd12::1'), true);
  assert.equal(m('fe80::1'), false);
  assert.equal(sourceMatcher([]), undefined);
});

test('bad input never crashes the proxy: every datagram with a cookie and a broken dictionary gets an error with a reason', async () => {
  const port = await freePort();
  const dead = await freePort(); // nothing listens: valid requests would time out, so only broken ones are sent
  const registry = createRegistry({ defaultMetrics: false });
  const proxy = await startNgProxy(proxyConfigWith({ ngListen: [`127.0.0.1:${port}`], ngUpstream: `127.0.0.1:${dead}`, ngUpstreamTimeoutMs: 50, ngUpstreamRetries: 0, ngHealthIntervalMs: 60_000 }), { log: silentLogger, registry });
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const replies = new Map<string, Buffer>();
  sock.on('message', (m) => replies.set(m.toString('latin1', 0, m.indexOf(0x20)), m));
  try {
    const inputs: Buffer[] = [];
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom('d', '{', 'l', 'x', ''), (bytes, lead) => {
      const dict = Buffer.concat([Buffer.from(lead), Buffer.from(bytes)]);
      try { scanRouting(dict); return; } catch { /* broken: keep it */ }
      inputs.push(dict);
    }), { numRuns: 300 });
    for (const [i, dict] of inputs.entries()) {
      sock.send(Buffer.concat([Buffer.from(`fz${i} `), dict]), port, '127.0.0.1');
      if (i % 25 === 24) await new Promise((r) => setTimeout(r, 5)); // stay inside socket buffers
    }
    await waitFor('every broken request answered', () => replies.size === inputs.length, { timeoutMs: 5000 });
    assert.equal(replies.size, inputs.length, 'every broken request was answered');
    for (const [c, m] of replies) {
      const body = m.subarray(c.length + 1);
      const d = body[0] === 0x7b ? JSON.parse(body.toString()) : decodeDict(body);
      assert.equal(str(d.result), 'error');
      assert.ok((str(d['error-reason']) ?? '').length > 0);
    }
    // No cookie: dropped and counted, no reply.
    sock.send(Buffer.from('nospace'), port, '127.0.0.1');
    sock.send(Buffer.from(' leading-space'), port, '127.0.0.1');
    const noCookie = async () => (await registry.getSingleMetric('rtpengine_k8s_ng_dropped_datagrams_total')!.get()).values.find((v) => v.labels.reason === 'no_cookie')?.value ?? 0;
    await waitFor('both datagrams counted as dropped', async () => (await noCookie()) >= 2);
    assert.equal(await noCookie(), 2);
  } finally {
    sock.close();
    await proxy.close();
  }
});

test('startNgProxy does not wait for rtpengine: it returns before the first ping could have answered', { timeout: 20_000 }, async () => {
  const port = await freePort();
  const dead = await freePort();
  // A ping that waits 30 s: had start-up awaited it, this test would time out instead.
  const proxy = await startNgProxy(proxyConfigWith({ ngListen: [`127.0.0.1:${port}`], ngUpstream: `127.0.0.1:${dead}`, ngUpstreamTimeoutMs: 30_000, ngUpstreamRetries: 0, ngHealthIntervalMs: 30_000, ngHealthFailures: 1 }),
    { log: silentLogger, registry: createRegistry({ defaultMetrics: false }) });
  try {
    assert.equal(proxy.status().rtpengine.up, null);
    assert.equal(proxy.ready().ready, false);
    assert.match(proxy.ready().reasons.join(), /not answering pings/);
  } finally {
    await proxy.close();
  }
});

test('rtpengine starting after the proxy: new calls get load limit meanwhile, then the proxy turns ready, reconciles and forwards', { skip: requires('rtpengine'), timeout: 60_000 }, async () => {
  const port = await freePort();
  const upPort = await freePort();
  const proxy = await startNgProxy(proxyConfigWith({ ngListen: [`127.0.0.1:${port}`], ngUpstream: `127.0.0.1:${upPort}`, ngUpstreamTimeoutMs: 100, ngUpstreamRetries: 0, ngHealthIntervalMs: 100, ngHealthFailures: 2, ngReconcileIntervalMs: 60_000, deleteDelaySeconds: 0 }),
    { log: silentLogger, registry: createRegistry({ defaultMetrics: false }) });
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  let rtp: Awaited<ReturnType<typeof startRtpengine>> | undefined;
  let relay: Awaited<ReturnType<typeof startRawRelay>> | undefined;
  try {
    // Sent while the first ping is out (it is held for it), and after it failed (refused at once).
    for (const id of ['early-1', 'early-2']) {
      const d = decodeDict(await ask(sock, port, `c-${id}`, OFFER(id)));
      assert.equal(str(d.result), 'load limit');
      assert.equal(str(d.message), 'rtpengine unavailable');
    }
    assert.notEqual(proxy.status().rtpengine.up, true);
    assert.equal(proxy.status().rtpengine.lastReconcileAt, undefined);

    // rtpengine comes up at the proxy's upstream address (a no-parse relay on that port in front of it).
    rtp = await startRtpengine();
    const upEvent = new Promise<boolean>((r) => proxy.events.on('upstream', (u: boolean) => { if (u) r(u); }));
    relay = await startRawRelay({ listenPort: upPort, upstreamHost: '127.0.0.1', upstreamPort: rtp.ngPort });
    assert.equal(await upEvent, true);
    assert.deepEqual(proxy.ready(), { ready: true, reasons: [] });
    // The transition to up reconciles at once (the interval is a minute).
    await waitFor('the reconciliation the transition to up starts', () => proxy.status().rtpengine.lastReconcileAt !== undefined);
    assert.equal(proxy.status().rtpengine.sessionsOwn, 0);
    const ok = decodeDict(await ask(sock, port, 'c-late', OFFER('late-1')));
    assert.equal(str(ok.result), 'ok');
    assert.equal(proxy.sessions.has('late-1'), true);
  } finally {
    sock.close();
    await proxy.close();
    await relay?.close();
    await rtp?.stop();
  }
});
