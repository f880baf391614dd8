import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { get as httpGet } from 'node:http';
import { startControlServer, mayDrain } from './http.js';
import { startNgProxy } from './proxy.js';
import { proxyConfigWith } from './proxy-options.js';
import { proxyView } from './drain-command.js';
import { createRegistry } from '../metrics.js';
import { silentLogger } from '../log.js';
import { freePort } from '../../test/support/ports.js';
import { waitFor } from '../../test/support/wait.js';

test('control server: metrics text, healthz, readyz, status, POST /drain (validated), 404/405', async () => {
  const registry = createRegistry({ defaultMetrics: false });
  const port = await freePort();
  const dead = await freePort();
  const proxy = await startNgProxy(proxyConfigWith({ ngListen: [`127.0.0.1:${port}`], ngUpstream: `127.0.0.1:${dead}`, ngUpstreamTimeoutMs: 30, ngUpstreamRetries: 0, ngHealthIntervalMs: 50 }), { log: silentLogger, registry });
  const http = await startControlServer({ host: '127.0.0.1', port: 0, registry, target: proxy, log: silentLogger });
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  try {
    // One request answered by the proxy itself (rtpengine is not there): ping → error.
    const got = new Promise<Buffer>((r) => sock.once('message', r));
    sock.send(Buffer.from('m1 d7:command4:pinge'), port, '127.0.0.1');
    assert.match((await got).toString(), /^m1 d6:result5:error12:error-reason\d+:rtpengine at 127\.0\.0\.1:\d+ failed/);

    const metrics = await (await fetch(`${http.url}/metrics`)).text();
    assert.match(metrics, /rtpengine_k8s_ng_requests_total\{command="ping",result="error",origin="proxy"\} 1/);
    assert.match(metrics, /rtpengine_k8s_ng_request_duration_seconds_bucket\{le="\+Inf",command="ping"\} 1/);
    assert.match(metrics, /rtpengine_k8s_ng_request_duration_seconds_count\{command="ping"\} 1/);
    assert.match(metrics, /rtpengine_k8s_sessions 0/);
    assert.match(metrics, /rtpengine_k8s_rtpengine_up 0/);
    assert.match(metrics, /rtpengine_k8s_drain_state\{phase="serving"\} 1/);
    assert.match(metrics, /rtpengine_k8s_ng_upstream_timeouts_total \d+/);
    assert.match(metrics, /rtpengine_k8s_ng_dropped_datagrams_total\{reason="no_cookie"\} 0/);

    assert.equal((await fetch(`${http.url}/healthz`)).status, 200);
    const rz = await fetch(`${http.url}/readyz`);
    assert.equal(rz.status, 503, 'rtpengine does not answer pings');
    assert.match(((await rz.json()) as { reasons: string[] }).reasons[0]!, /not answering pings/);

    assert.equal((await fetch(`${http.url}/drain`, { method: 'POST', body: '{"deadlineSeconds": -1}' })).status, 400);
    assert.equal((await fetch(`${http.url}/drain`, { method: 'POST', body: 'nope' })).status, 400);
    assert.equal((await fetch(`${http.url}/drain`)).status, 405);
    const d = await fetch(`${http.url}/drain`, { method: 'POST', body: '{"deadlineSeconds": 600}' });
    assert.equal(d.status, 202);
    const view = proxyView(await d.json());
    assert.equal(view?.drain.phase, 'draining');
    const status = proxyView(await (await fetch(`${http.url}/status`)).json());
    assert.equal(status?.drain.phase, 'draining');
    assert.ok(status!.drain.deadlineAt! - status!.drain.startedAt! === 600_000);
    assert.match(await (await fetch(`${http.url}/metrics`)).text(), /rtpengine_k8s_drain_state\{phase="draining"\} 1/);
    assert.equal((await fetch(`${http.url}/nope`)).status, 404);
  } finally {
    sock.close();
    await http.close();
    await proxy.close();
  }
});

test('proxyView reads the proxy status, the sidecar status and a bare drain status', () => {
  assert.equal(proxyView({ drain: { phase: 'draining' }, sessions: 2 })?.sessions, 2);
  assert.equal(proxyView({ state: 'serving', proxy: { drain: { phase: 'serving' }, sessions: 1 } })?.drain.phase, 'serving');
  assert.equal(proxyView({ phase: 'drained', outcome: 'empty', sessions: 0 })?.drain.outcome, 'empty');
  assert.equal(proxyView({ phase: 'bogus' }), undefined);
  assert.equal(proxyView(null), undefined);
});

test('GET /drain/wait starts the drain and holds the answer until the target is drained', async () => {
  const registry = createRegistry({ defaultMetrics: false });
  let finish!: (s: object) => void;
  const done = new Promise<object>((r) => { finish = r; });
  const triggers: string[] = [];
  const target = {
    ready: () => ({ ready: true, reasons: [] }),
    status: () => ({ phase: triggers.length ? 'draining' : 'serving' }),
    drain: (o: { trigger: string }) => { triggers.push(o.trigger); return { phase: 'draining' }; },
    drained: () => done,
  };
  const http = await startControlServer({ host: '127.0.0.1', port: 0, registry, target, log: silentLogger });
  try {
    let answered = false;
    const first = fetch(`${http.url}/drain/wait`).then(async (r) => { answered = true; return { status: r.status, body: await r.json() }; });
    const second = fetch(`${http.url}/drain/wait`).then((r) => r.status);
    // Both requests reached the server (two drain calls) and neither was answered yet.
    await waitFor('both requests reached the server', () => triggers.length >= 2);
    assert.deepEqual(triggers, ['prestop-http', 'prestop-http']);
    assert.equal(answered, false, 'the answer waits for the drain');
    finish({ phase: 'drained', outcome: 'empty' });
    assert.deepEqual(await first, { status: 200, body: { phase: 'drained', outcome: 'empty' } });
    assert.equal(await second, 200);
    assert.equal((await fetch(`${http.url}/drain/wait`, { method: 'POST' })).status, 405);
  } finally {
    await http.close();
  }
});

/** A GET from a chosen local source address (127.0.0.6 is Istio's inbound passthrough source). */
function getFrom(url: string, localAddress: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { localAddress, headers }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.setTimeout(500, () => { req.destroy(); resolve(-1); }); // still held open: the drain was accepted
    req.on('error', reject);
  });
}

test('only the pod itself starts a drain: GET /drain/wait and POST /drain from a mesh passthrough source are refused; a token is required from everyone once set (#15 defect 1)', async () => {
  const registry = createRegistry({ defaultMetrics: false });
  const triggers: string[] = [];
  const target = {
    ready: () => ({ ready: true, reasons: [] }),
    status: () => ({}),
    drain: (o: { trigger: string }) => { triggers.push(o.trigger); return { phase: 'draining' }; },
    drained: () => new Promise<object>(() => {}),
  };
  const open = await startControlServer({ host: '0.0.0.0', port: 0, registry, target, log: silentLogger });
  const tok = await startControlServer({ host: '0.0.0.0', port: 0, registry, target, log: silentLogger, drainToken: 's3cret' });
  try {
    assert.equal(await getFrom(`http://127.0.0.1:${open.port}/drain/wait`, '127.0.0.6'), 403, 'a mesh-relayed peer is not the pod');
    assert.equal((await fetch(`http://127.0.0.1:${open.port}/drain`, { method: 'POST' }).then((r) => r.status)), 202, 'loopback POST still works');
    assert.deepEqual(triggers, ['http']);
    assert.equal(await getFrom(`http://127.0.0.1:${tok.port}/drain/wait`, '127.0.0.1'), 403, 'with a token, loopback alone is not enough');
    assert.equal(await getFrom(`http://127.0.0.1:${tok.port}/drain/wait`, '127.0.0.6', { 'x-drain-token': 'wrong!' }), 403);
    assert.equal(await getFrom(`http://127.0.0.1:${tok.port}/drain/wait`, '127.0.0.6', { 'x-drain-token': 's3cret' }), -1, 'the token holder drains (answer held until drained)');
    assert.deepEqual(triggers, ['http', 'prestop-http']);
  } finally {
    await open.close();
    await tok.close();
  }
});

test('mayDrain: loopback but not the mesh passthrough; remote peers never without the token', () => {
  for (const p of ['127.0.0.1', '::1', '::ffff:127.0.0.1', '127.1.2.3']) assert.equal(mayDrain(p, {}, {}), true, p);
  for (const p of ['127.0.0.6', '::ffff:127.0.0.6', '10.1.2.3', '192.0.2.1', 'fd00::1']) assert.equal(mayDrain(p, {}, {}), false, p);
  assert.equal(mayDrain('10.1.2.3', { authorization: 'Bearer t0k' }, { drainToken: 't0k' }), true);
  assert.equal(mayDrain('127.0.0.1', {}, { drainToken: 't0k' }), false);
  assert.equal(mayDrain('10.1.2.3', {}, { allowRemoteDrain: true }), true);
});
