// The ng proxy in front of a real rtpengine, driven by raw ng datagrams: forwarding byte for byte,
// session tracking against rtpengine's own count, cookie isolation, retransmissions, bad input,
// the drain gate and rtpengine failure answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { requires } from '../support/require.js';
import { startRtpengine, type RtpengineHandle, sessionsOwn, offersExecuted, freeze } from '../support/rtpengine.js';
import { freePort } from '../support/ports.js';
import { startRawRelay } from '../../bench/raw-relay.js';
import { startNgProxy, type NgProxy } from '../../src/sidecar/proxy.js';
import { proxyConfigWith, type ProxyConfig } from '../../src/sidecar/proxy-options.js';
import { createRegistry, type Registry } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { NgUdpClient } from '../../src/ng/client.js';
import type { NgUpstream } from '../../src/ng/types.js';
import { decodeDict, encodeDict, str } from '../../src/ng/codec.js';

const skip = requires('rtpengine');
const SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n';

interface Rig { rtp: RtpengineHandle; proxy: NgProxy; registry: Registry; port: number; direct: NgUdpClient; close(): Promise<void> }

async function rig(overrides: Partial<ProxyConfig> = {}, upstreamPort?: (rtp: RtpengineHandle) => Promise<number>): Promise<Rig> {
  const rtp = await startRtpengine();
  const registry = createRegistry({ defaultMetrics: false });
  const port = await freePort();
  const up = upstreamPort ? await upstreamPort(rtp) : rtp.ngPort;
  let proxy: NgProxy;
  try {
    proxy = await startNgProxy(proxyConfigWith({
      ngListen: [`127.0.0.1:${port}`], ngUpstream: `127.0.0.1:${up}`, deleteDelaySeconds: 0,
      ngHealthIntervalMs: 100, ngReconcileIntervalMs: 60_000, ngDrainPollMs: 100, ...overrides,
    }), { log: silentLogger, registry });
  } catch (e) {
    await rtp.stop();
    throw e;
  }
  // The test's own view of rtpengine: patient (a busy CI machine can hold a `statistics` past 1 s;
  // a retransmission is answered from rtpengine's cookie cache).
  const direct = new NgUdpClient({ host: '127.0.0.1', port: rtp.ngPort, timeoutMs: 2000, retries: 3 });
  return {
    rtp, proxy, registry, port, direct,
    close: async () => { direct.close(); await proxy.close(); await rtp.stop(); },
  };
}

/** rtpengine answered a ping and the start-up reconciliation it triggers is over: calls created
 *  directly on rtpengine from now on stay unknown to the proxy until the next reconciliation. */
async function settled(r: Rig): Promise<void> {
  while (r.proxy.status().rtpengine.up !== true) await new Promise((res) => setTimeout(res, 10));
  await r.proxy.reconcile();
}

/** A bare UDP sender: full control of cookies and bytes, like Kamailio. */
async function sender(): Promise<{ sock: Socket; send(port: number, cookie: string, dict: Buffer | string, waitMs?: number): Promise<Buffer | undefined>; close(): void }> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return {
    sock,
    send(port, cookie, dict, waitMs = 2000) {
      return new Promise((resolve) => {
        const t = setTimeout(() => { sock.off('message', on); resolve(undefined); }, waitMs);
        const on = (m: Buffer) => {
          if (!m.toString('latin1').startsWith(`${cookie} `)) return;
          clearTimeout(t);
          sock.off('message', on);
          resolve(m);
        };
        sock.on('message', on);
        sock.send(Buffer.concat([Buffer.from(`${cookie} `), Buffer.from(dict)]), port, '127.0.0.1');
      });
    },
    close: () => sock.close(),
  };
}

const offer = (callId: string, supports = true) => encodeDict({ command: 'offer', 'call-id': callId, 'from-tag': 'ft1', sdp: SDP, ...(supports ? { supports: ['load limit'] } : {}) });
const del = (callId: string) => encodeDict({ command: 'delete', 'call-id': callId, 'from-tag': 'ft1', supports: ['load limit'] });
const cookie = () => `t${randomBytes(6).toString('hex')}`;
const dictOf = (m: Buffer | undefined) => { assert.ok(m, 'expected a reply'); return decodeDict(m.subarray(m.indexOf(0x20) + 1)); };
async function metric(reg: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await reg.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values as Array<{ labels: Record<string, unknown>; value: number }> | undefined)?.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

test('offer/answer/delete through the proxy: reply bytes untouched, sessions match rtpengine', { skip }, async () => {
  const r = await rig();
  const s = await sender();
  try {
    const id = `call-${randomBytes(4).toString('hex')}`;
    const c = cookie();
    const rep = await s.send(r.port, c, offer(id));
    const d = dictOf(rep);
    assert.equal(str(d.result), 'ok');
    assert.match(str(d.sdp) ?? '', /m=audio \d+ RTP\/AVP 0/);
    assert.equal(r.proxy.sessions.count(), 1);
    assert.ok(r.proxy.sessions.has(id));
    assert.equal(await sessionsOwn(r.direct), 1);

    const ans = await s.send(r.port, cookie(), encodeDict({ command: 'answer', 'call-id': id, 'from-tag': 'ft1', 'to-tag': 'tt1', sdp: SDP, supports: ['load limit'] }));
    assert.equal(str(dictOf(ans).result), 'ok');
    assert.equal(r.proxy.sessions.get(id)?.toTag, 'tt1');

    const bye = await s.send(r.port, cookie(), del(id));
    assert.equal(str(dictOf(bye).result), 'ok');
    assert.equal(r.proxy.sessions.count(), 0);
    assert.equal(await sessionsOwn(r.direct), 0);
    assert.equal(await metric(r.registry, 'rtpengine_k8s_ng_requests_total', { command: 'offer', result: 'ok', origin: 'rtpengine' }), 1);
  } finally {
    s.close();
    await r.close();
  }
});

test('the reply is rtpengine\'s dictionary byte for byte behind the client\'s cookie', { skip }, async () => {
  const r = await rig();
  const s = await sender();
  try {
    // An odd but valid request: unsorted keys, a JSON twin; compare with the direct answer.
    const rep = await s.send(r.port, 'k_1', 'd7:command4:pinge');
    assert.equal(rep?.toString(), 'k_1 d6:result4:ponge');
    const js = await s.send(r.port, 'k_2', '{"command":"ping"}');
    assert.equal(js?.toString(), 'k_2 {"result":"pong"}');
    // Cookies of every length around the proxy's own (its reply is written over rtpengine's
    // datagram when the client's cookie fits there, framed anew when it is longer), up to 256.
    for (const n of [1, 15, 16, 17, 18, 19, 20, 21, 22, 30, 256]) {
      const c = 'c'.repeat(n - 1) + String(n % 10);
      const q = await s.send(r.port, c, 'd7:command4:pinge');
      assert.ok(q, `a reply for a ${n}-byte cookie`);
      const direct = await s.send(r.rtp.ngPort, c, 'd7:command4:pinge');
      assert.equal(q.toString('latin1'), direct?.toString('latin1'), `${n}-byte cookie: the proxy's reply equals rtpengine's own`);
    }
    // A cached reply (offers are cached, pings are not) is the rewritten datagram, byte for byte:
    // a late retransmission gets exactly the first answer. The proxy's own cookie is 18–20 bytes
    // here (prefix of 17 and a counter below 1000), so 18–20 covers the equal-length rewrite.
    for (const n of [1, 18, 19, 20, 21, 256]) {
      const c = 'r'.repeat(n - 1) + String(n % 10);
      const id = `len-${n}-${cookie()}`;
      const first = await s.send(r.port, c, offer(id));
      assert.equal(str(dictOf(first).result), 'ok', `${n}-byte cookie: offer answered ok`);
      const again = await s.send(r.port, c, offer(id));
      assert.equal(again?.toString('latin1'), first!.toString('latin1'), `${n}-byte cookie: the retransmission is answered with the first reply`);
      assert.equal(str(dictOf(await s.send(r.port, `del-${n}`, del(id))).result), 'ok');
    }
    assert.equal(await metric(r.registry, 'rtpengine_k8s_ng_requests_total', { command: 'none', result: 'none', origin: 'cache' }), 6);
  } finally {
    s.close();
    await r.close();
  }
});

test('calls rtpengine holds but the proxy never saw are found by reconciliation', { skip }, async () => {
  const r = await rig();
  try {
    await settled(r);
    const id = `direct-${randomBytes(4).toString('hex')}`;
    await r.direct.command({ command: 'offer', 'call-id': id, 'from-tag': 'x', sdp: SDP });
    assert.equal(r.proxy.sessions.has(id), false);
    await r.proxy.reconcile();
    assert.equal(r.proxy.sessions.has(id), true);
    assert.equal(r.proxy.status().rtpengine.sessionsOwn, 1);
    await r.direct.command({ command: 'delete', 'call-id': id, 'from-tag': 'x' });
    await r.proxy.reconcile();
    assert.equal(r.proxy.sessions.count(), 0);
  } finally {
    await r.close();
  }
});

test('two senders with the same cookie each get their own reply (direct to rtpengine they cross)', { skip }, async () => {
  const r = await rig();
  const a = await sender();
  const b = await sender();
  try {
    const c = cookie();
    const id = `same-${randomBytes(4).toString('hex')}`;
    const [ra, rb] = await Promise.all([a.send(r.port, c, offer(id)), b.send(r.port, c, 'd7:command4:pinge')]);
    assert.equal(str(dictOf(ra).result), 'ok');
    assert.ok(dictOf(ra).sdp, 'the offer got an SDP answer');
    assert.equal(str(dictOf(rb).result), 'pong');
    // Control: the same two requests straight to rtpengine: its cookie cache answers the second
    // sender with the first one's reply.
    const c2 = cookie();
    const ra2 = await a.send(r.rtp.ngPort, c2, offer(`${id}-2`));
    const rb2 = await b.send(r.rtp.ngPort, c2, 'd7:command4:pinge');
    assert.equal(str(dictOf(ra2).result), 'ok');
    assert.notEqual(str(dictOf(rb2).result), 'pong', 'rtpengine alone crosses replies for a shared cookie');
  } finally {
    a.close();
    b.close();
    await r.close();
  }
});

test('a lost upstream reply: the retransmission waits for the one upstream request; one call in rtpengine', { skip }, async () => {
  let relay: Awaited<ReturnType<typeof startRawRelay>> | undefined;
  // Proxy → lossy relay → rtpengine; the relay drops the first offer reply. The proxy's client
  // retransmits with the same upstream cookie, rtpengine answers from its cookie cache.
  const r = await rig({ ngUpstreamTimeoutMs: 400, ngUpstreamRetries: 2 }, async (rtp) => {
    relay = await startRawRelay({ upstreamHost: '127.0.0.1', upstreamPort: rtp.ngPort, dropReply: (m) => m.includes('3:sdp') && relay!.dropped === 0 });
    return relay.port;
  });
  const s = await sender();
  try {
    const id = `lost-${randomBytes(4).toString('hex')}`;
    const c = cookie();
    const first = s.send(r.port, c, offer(id), 3000);
    await new Promise((res) => setTimeout(res, 150));
    s.sock.send(Buffer.concat([Buffer.from(`${c} `), offer(id)]), r.port, '127.0.0.1'); // client retransmits while in flight
    const rep = await first;
    assert.equal(str(dictOf(rep).result), 'ok');
    assert.equal(relay!.dropped, 1);
    assert.equal(await metric(r.registry, 'rtpengine_k8s_ng_dropped_datagrams_total', { reason: 'retransmission_in_flight' }), 1);
    assert.equal(await sessionsOwn(r.direct), 1, 'exactly one call in rtpengine');
    assert.equal(await offersExecuted(r.direct), 1, 'rtpengine executed the offer once (its cookie cache answered the proxy retry)');

    // A late retransmission (after the reply) is answered from the reply cache, same bytes.
    const late = await s.send(r.port, c, offer(id));
    assert.deepEqual(late, rep);
    assert.equal(await metric(r.registry, 'rtpengine_k8s_ng_requests_total', { origin: 'cache' }), 1);
    assert.equal(await offersExecuted(r.direct), 1);
  } finally {
    s.close();
    await r.close();
    await relay?.close();
  }
});

test('bad input: broken dictionary → error with reason; no cookie → dropped and counted; proxy keeps serving', { skip }, async () => {
  const r = await rig();
  const s = await sender();
  try {
    const bad = await s.send(r.port, 'b1', 'd7:command4:pin');
    assert.equal(str(dictOf(bad).result), 'error');
    assert.equal(str(dictOf(bad)['error-reason']), 'Could not decode bencode dictionary');
    const fmt = await s.send(r.port, 'b2', 'xyz');
    assert.equal(str(dictOf(fmt)['error-reason']), 'Invalid NG data format');
    const js = await s.send(r.port, 'b3', '{"command": ');
    assert.equal(str(JSON.parse(js!.subarray(3).toString())['error-reason']), 'Could not decode JSON dictionary');
    const empty = await s.send(r.port, 'b5', Buffer.alloc(0));
    assert.equal(str(dictOf(empty)['error-reason']), 'Invalid data (no payload)');
    s.sock.send(Buffer.from('no-space-at-all'), r.port, '127.0.0.1');
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(await metric(r.registry, 'rtpengine_k8s_ng_dropped_datagrams_total', { reason: 'no_cookie' }), 1);
    const ok = await s.send(r.port, 'b4', 'd7:command4:pinge');
    assert.equal(str(dictOf(ok).result), 'pong');
  } finally {
    s.close();
    await r.close();
  }
});

test('source allowlist: others dropped and counted', { skip }, async () => {
  const r = await rig({ ngAllowCidrs: ['10.0.0.0/8'] });
  const s = await sender();
  try {
    assert.equal(await s.send(r.port, 'a1', 'd7:command4:pinge', 300), undefined);
    assert.equal(await metric(r.registry, 'rtpengine_k8s_ng_dropped_datagrams_total', { reason: 'source_denied' }), 1);
  } finally {
    s.close();
    await r.close();
  }
});

test('drain: pong kept, new offers load limit / PSLR, known calls forwarded, complete at 0 sessions', { skip }, async () => {
  const r = await rig();
  const s = await sender();
  try {
    const held = `held-${randomBytes(4).toString('hex')}`;
    assert.equal(str(dictOf(await s.send(r.port, cookie(), offer(held))).result), 'ok');
    const st = r.proxy.drain({ trigger: 'test' });
    assert.equal(st.phase, 'draining');
    assert.equal(r.proxy.ready().ready, false);

    assert.equal(str(dictOf(await s.send(r.port, cookie(), 'd7:command4:pinge')).result), 'pong');
    const ll = dictOf(await s.send(r.port, cookie(), offer('new-1')));
    assert.equal(str(ll.result), 'load limit');
    assert.equal(str(ll.message), 'draining');
    const pslr = dictOf(await s.send(r.port, cookie(), offer('new-2', false)));
    assert.equal(str(pslr.result), 'error');
    assert.equal(str(pslr['error-reason']), 'Parallel session limit reached');
    const pub = dictOf(await s.send(r.port, cookie(), encodeDict({ command: 'publish', sdp: SDP, supports: ['load limit'] })));
    assert.equal(str(pub.result), 'load limit', 'publish is gated too (rtpengine does not limit it)');
    const unknownAnswer = dictOf(await s.send(r.port, cookie(), encodeDict({ command: 'answer', 'call-id': 'elsewhere', 'from-tag': 'a', 'to-tag': 'b', sdp: SDP, supports: ['load limit'] })));
    assert.equal(str(unknownAnswer.result), 'load limit');
    // The held call: re-INVITE offer, query and delete all reach rtpengine.
    assert.equal(str(dictOf(await s.send(r.port, cookie(), offer(held))).result), 'ok');
    assert.equal(str(dictOf(await s.send(r.port, cookie(), encodeDict({ command: 'query', 'call-id': held }))).result), 'ok');
    assert.equal(await sessionsOwn(r.direct), 1, 'no refused offer reached rtpengine');
    assert.equal(r.proxy.status().drain.phase, 'draining');
    assert.equal(str(dictOf(await s.send(r.port, cookie(), del(held))).result), 'ok');
    // A retransmitted delete inside the delete-delay window is still "here": forwarded.
    const done = await r.proxy.drained();
    assert.equal(done.phase, 'drained');
    assert.equal(done.outcome, 'empty');
    assert.equal(await metric(r.registry, 'rtpengine_k8s_drain_state', { phase: 'drained' }), 1);
  } finally {
    s.close();
    await r.close();
  }
});

test('drain deadline: completes with outcome deadline while a call is left', { skip }, async () => {
  const r = await rig();
  const s = await sender();
  try {
    assert.equal(str(dictOf(await s.send(r.port, cookie(), offer(`dl-${randomBytes(3).toString('hex')}`))).result), 'ok');
    r.proxy.drain({ deadlineMs: 300 });
    const done = await r.proxy.drained();
    assert.equal(done.outcome, 'deadline');
    assert.equal(done.sessionsLeft, 1);
  } finally {
    s.close();
    await r.close();
  }
});

test('rtpengine gone: new offers fail over (load limit), known calls get an error naming the failure, not ready', { skip }, async () => {
  const r = await rig({ ngUpstreamTimeoutMs: 100, ngUpstreamRetries: 1, ngHealthIntervalMs: 100, ngHealthFailures: 2 });
  const s = await sender();
  try {
    const held = `k-${randomBytes(4).toString('hex')}`;
    assert.equal(str(dictOf(await s.send(r.port, cookie(), offer(held))).result), 'ok');
    const wentDown = new Promise<boolean>((res) => r.proxy.events.once('upstream', res));
    r.rtp.proc.kill('SIGKILL');
    // Before the health check notices: the forwarded offer times out and is answered load limit.
    const first = dictOf(await s.send(r.port, cookie(), offer('after-kill-1')));
    assert.equal(str(first.result), 'load limit');
    assert.equal(await wentDown, false);
    assert.equal(r.proxy.ready().ready, false);
    const timeoutsAtDown = await metric(r.registry, 'rtpengine_k8s_ng_upstream_timeouts_total');
    // Known down: a new call is answered at once, nothing forwarded.
    const second = dictOf(await s.send(r.port, cookie(), offer('after-kill-2', false)));
    assert.equal(str(second['error-reason']), 'Parallel session limit reached');
    const ping = dictOf(await s.send(r.port, cookie(), 'd7:command4:pinge'));
    assert.equal(str(ping.result), 'error', 'ping is answered (never silence), not with pong');
    assert.equal(await metric(r.registry, 'rtpengine_k8s_ng_upstream_timeouts_total'), timeoutsAtDown, 'neither went upstream');
    // A known call is still rtpengine's to answer (#15 defect 2): forwarded, and its failure named.
    const q = dictOf(await s.send(r.port, cookie(), encodeDict({ command: 'query', 'call-id': held })));
    assert.equal(str(q.result), 'error');
    assert.match(str(q['error-reason']) ?? '', /rtpengine at 127\.0\.0\.1:\d+ failed for call k-/);
    assert.ok(await metric(r.registry, 'rtpengine_k8s_ng_upstream_timeouts_total') > timeoutsAtDown, 'the known call went upstream');
    assert.equal(await metric(r.registry, 'rtpengine_k8s_rtpengine_up'), 0);
  } finally {
    s.close();
    await r.close();
  }
});

test('IPv4 and IPv6 listeners on one port: each answers from the socket the request came in on', { skip }, async () => {
  const port = await freePort();
  const r = await rig({ ngListen: [`127.0.0.1:${port}`, `[::1]:${port}`] });
  const v6 = createSocket('udp6');
  await new Promise<void>((res) => v6.bind(0, '::1', () => res()));
  try {
    assert.deepEqual(r.proxy.addresses.map((a) => a.host).sort(), ['127.0.0.1', '::1']);
    // A connected socket (like Kamailio's) only accepts the reply from the exact address it sent to.
    v6.connect(port, '::1');
    await new Promise<void>((res) => v6.once('connect', () => res()));
    const got = new Promise<Buffer>((res) => v6.once('message', res));
    v6.send(Buffer.from('v6c d7:command4:pinge'));
    assert.equal((await got).toString(), 'v6c d6:result4:ponge');
    const s = await sender();
    assert.equal((await s.send(port, 'v4c', 'd7:command4:pinge'))?.toString(), 'v4c d6:result4:ponge');
    s.close();
  } finally {
    v6.close();
    await r.close();
  }
});

test('drain: calls on rtpengine the registry lacks (list skipped) are probed and forwarded; unknown ones get load limit', { skip }, async () => {
  // ngReconcileListMax 0: the `list` reconciliation never runs, as with more calls than the limit.
  const r = await rig({ ngReconcileListMax: 0 });
  const s = await sender();
  try {
    await settled(r);
    const tag = randomBytes(4).toString('hex');
    const [a, b, c] = [`pa-${tag}`, `pb-${tag}`, `pc-${tag}`];
    // Created directly on rtpengine: the proxy never sees these offers.
    for (const id of [a, b, c]) assert.equal(str((await r.direct.command({ command: 'offer', 'call-id': id, 'from-tag': 'ft1', sdp: SDP })).result), 'ok');
    r.proxy.drain({ trigger: 'test' });
    await r.proxy.reconcile();
    assert.equal(r.proxy.status().rtpengine.sessionsOwn, 3);
    for (const id of [a, b, c]) assert.equal(r.proxy.sessions.has(id), false, `${id} is not in the registry`);

    const ans = dictOf(await s.send(r.port, cookie(), encodeDict({ command: 'answer', 'call-id': a, 'from-tag': 'ft1', 'to-tag': 'tt1', sdp: SDP, supports: ['load limit'] })));
    assert.equal(str(ans.result), 'ok', 'answer for a pinned call forwarded');
    assert.match(str(ans.sdp) ?? '', /m=audio \d+ RTP\/AVP 0/);
    assert.equal(r.proxy.sessions.has(a), true, 'the probe taught the registry');
    const reoffer = dictOf(await s.send(r.port, cookie(), offer(b)));
    assert.equal(str(reoffer.result), 'ok', 're-INVITE offer for a pinned call forwarded');
    const bye = dictOf(await s.send(r.port, cookie(), del(c)));
    assert.equal(str(bye.result), 'ok', 'delete for a pinned call forwarded');
    assert.equal(bye.warning, undefined, 'the delete found the call (no "Call-ID not found" warning)');
    assert.equal(await sessionsOwn(r.direct), 2);

    // Truly unknown call-ids: load limit (Kamailio walks on), nothing created on rtpengine.
    const unknown = `nowhere-${tag}`;
    const u1 = dictOf(await s.send(r.port, cookie(), encodeDict({ command: 'answer', 'call-id': unknown, 'from-tag': 'x', 'to-tag': 'y', sdp: SDP, supports: ['load limit'] })));
    assert.equal(str(u1.result), 'load limit');
    assert.equal(str(u1.message), 'draining');
    assert.equal(str(dictOf(await s.send(r.port, cookie(), del(unknown))).result), 'load limit');
    assert.equal(str(dictOf(await s.send(r.port, cookie(), offer(unknown))).result), 'load limit');
    const pslr = dictOf(await s.send(r.port, cookie(), offer(unknown, false)));
    assert.equal(str(pslr['error-reason']), 'Parallel session limit reached');
    assert.equal(await sessionsOwn(r.direct), 2, 'no refused request created a call');
    assert.equal(await metric(r.registry, 'rtpengine_k8s_ng_drain_probes_total', { outcome: 'found' }), 3);
    assert.equal(await metric(r.registry, 'rtpengine_k8s_ng_drain_probes_total', { outcome: 'unknown' }), 4);

    // Known now: forwarded without a probe; the drain ends at 0 sessions.
    assert.equal(str(dictOf(await s.send(r.port, cookie(), del(a))).result), 'ok');
    assert.equal(str(dictOf(await s.send(r.port, cookie(), del(b))).result), 'ok');
    assert.equal(await metric(r.registry, 'rtpengine_k8s_ng_drain_probes_total', { outcome: 'found' }), 3);
    assert.equal((await r.proxy.drained()).outcome, 'empty');
  } finally {
    s.close();
    await r.close();
  }
});

test('serving: no probe (the hot path forwards unknown call-ids to rtpengine as before)', { skip }, async () => {
  const r = await rig({ ngReconcileListMax: 0 });
  const s = await sender();
  try {
    const rep = dictOf(await s.send(r.port, cookie(), encodeDict({ command: 'answer', 'call-id': 'never-offered', 'from-tag': 'x', 'to-tag': 'y', sdp: SDP })));
    assert.equal(str(rep.result), 'error');
    assert.equal(str(rep['error-reason']), 'Unknown call-id', "rtpengine's own answer");
    assert.equal(await metric(r.registry, 'rtpengine_k8s_ng_drain_probes_total', { outcome: 'unknown' }), 0);
  } finally {
    s.close();
    await r.close();
  }
});

test('drain: a probe rtpengine does not answer follows the upstream-down rules', { skip }, async () => {
  // Pings rarely: the probe, not the health check, meets the stalled rtpengine.
  const r = await rig({ ngReconcileListMax: 0, ngHealthIntervalMs: 60_000, ngUpstreamTimeoutMs: 100, ngUpstreamRetries: 0 });
  const s = await sender();
  try {
    await settled(r);
    const id = `stalled-${randomBytes(4).toString('hex')}`;
    assert.equal(str((await r.direct.command({ command: 'offer', 'call-id': id, 'from-tag': 'ft1', sdp: SDP })).result), 'ok');
    r.proxy.drain({ trigger: 'test' });
    await r.proxy.reconcile();
    await freeze(r.rtp.proc);
    const del1 = dictOf(await s.send(r.port, cookie(), del(id)));
    assert.equal(str(del1.result), 'error', 'a delete maybe for a call here: error naming the failure, not load limit');
    assert.match(str(del1['error-reason']) ?? '', new RegExp(`rtpengine at 127\\.0\\.0\\.1:\\d+ failed for call ${id}`));
    assert.equal(await metric(r.registry, 'rtpengine_k8s_ng_drain_probes_total', { outcome: 'failed' }), 1);
    assert.equal(r.proxy.status().rtpengine.up, true, 'one probe timeout does not mark rtpengine down: consecutive failed pings do (#15 defect 2)');
  } finally {
    r.rtp.proc.kill('SIGCONT');
    s.close();
    await r.close();
  }
});

test('drain: rtpengine down for the bound while draining ends the drain with outcome upstream-down', { skip }, async () => {
  const r = await rig({ ngDrainUpstreamDownMs: 400, ngHealthIntervalMs: 100, ngHealthFailures: 2, ngUpstreamTimeoutMs: 100, ngUpstreamRetries: 0 } as Partial<ProxyConfig>);
  const s = await sender();
  try {
    const held = `ud-${randomBytes(4).toString('hex')}`;
    assert.equal(str(dictOf(await s.send(r.port, cookie(), offer(held))).result), 'ok');
    r.proxy.drain({ trigger: 'test' }); // default deadline: 1800 s
    await r.proxy.reconcile();
    const t0 = Date.now();
    // Stopped, not killed: the ng port stays taken, so no other rtpengine on this busy machine
    // can take it over and answer (a killed one is covered by 'rtpengine gone' above).
    await freeze(r.rtp.proc);
    const done = await r.proxy.drained();
    assert.equal(done.outcome, 'upstream-down', JSON.stringify({ done, ms: Date.now() - t0, st: r.proxy.status() }));
    assert.equal(done.sessionsLeft, 1, 'the last count rtpengine reported');
    assert.ok(Date.now() - t0 >= 400, 'not before the bound');
    assert.equal(await metric(r.registry, 'rtpengine_k8s_drain_state', { phase: 'drained' }), 1);
  } finally {
    r.rtp.proc.kill('SIGCONT');
    s.close();
    await r.close();
  }
});

test('drain: a session count asked for before the drain began cannot end it', { skip }, async () => {
  const rtp = await startRtpengine();
  const registry = createRegistry({ defaultMetrics: false });
  const real = new NgUdpClient({ host: '127.0.0.1', port: rtp.ngPort, timeoutMs: 500, retries: 2 });
  // The real client, except that statistics answers can be held back (a slow reconciliation).
  let hold: Promise<void> | undefined;
  let release = () => {};
  const upstream: NgUpstream = {
    async request(dict, opts) {
      const res = await real.request(dict, opts);
      if (hold && Buffer.isBuffer(dict) && dict.includes('10:statistics')) await hold;
      return res;
    },
    close: () => real.close(),
  };
  const port = await freePort();
  const proxy = await startNgProxy(proxyConfigWith({
    ngListen: [`127.0.0.1:${port}`], ngUpstream: `127.0.0.1:${rtp.ngPort}`, deleteDelaySeconds: 0,
    ngHealthIntervalMs: 100, ngReconcileIntervalMs: 60_000, ngDrainPollMs: 60_000,
  }), { log: silentLogger, registry, upstream });
  const s = await sender();
  try {
    await settled({ proxy } as Rig);
    hold = new Promise<void>((res) => { release = res; });
    const stale = proxy.reconcile(); // its statistics answer (0 calls) is held
    const id = `race-${randomBytes(4).toString('hex')}`;
    assert.equal(str(dictOf(await s.send(port, cookie(), offer(id))).result), 'ok');
    proxy.drain({ trigger: 'test' }); // chains a fresh reconciliation after the held one
    hold = undefined;
    release();
    await stale;
    await proxy.reconcile();
    assert.equal(proxy.status().drain.phase, 'draining', 'the stale 0 did not end the drain');
    assert.equal(proxy.status().drain.sessionsLeft, 1);
    assert.equal(str(dictOf(await s.send(port, cookie(), del(id))).result), 'ok');
    await proxy.reconcile();
    assert.equal((await proxy.drained()).outcome, 'empty');
  } finally {
    release();
    s.close();
    await proxy.close();
    upstream.close();
    await rtp.stop();
  }
});
