import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter } from 'prom-client';
import { createRegistry } from '../metrics.js';
import { silentLogger } from '../log.js';
import { json, startMetricsServer } from './metrics-server.js';

test('metrics server: /metrics from the given registry, /healthz, /readyz from the check, extra routes, 404/405', async () => {
  const registry = createRegistry({ defaultMetrics: false });
  new Counter({ name: 'rtpengine_k8s_test_total', help: 'test', registers: [registry] }).inc(3);
  let ready = false;
  const s = await startMetricsServer({
    host: '127.0.0.1', port: 0, registry, log: silentLogger,
    ready: () => ({ ready, reasons: ready ? [] : ['upstream down'] }),
    routes: { '/status': (_req, res) => json(res, 200, { phase: 'serving' }), '/metrics-shadow': (_req, res) => { res.end('x'); } },
  });
  try {
    const m = await fetch(`${s.url}/metrics`);
    assert.equal(m.status, 200);
    assert.match(await m.text(), /^rtpengine_k8s_test_total 3$/m);
    assert.equal(await (await fetch(`${s.url}/healthz`)).text(), 'ok\n');
    const r1 = await fetch(`${s.url}/readyz`);
    assert.equal(r1.status, 503);
    assert.deepEqual(await r1.json(), { ready: false, reasons: ['upstream down'] });
    ready = true;
    assert.equal((await fetch(`${s.url}/readyz`)).status, 200);
    assert.deepEqual(await (await fetch(`${s.url}/status`)).json(), { phase: 'serving' });
    const nf = await fetch(`${s.url}/nope`);
    assert.equal(nf.status, 404);
    assert.match(((await nf.json()) as { error: string }).error, /\/metrics \/healthz \/readyz \/status/);
    assert.equal((await fetch(`${s.url}/metrics`, { method: 'POST' })).status, 405);
  } finally { await s.close(); }
});

test('metrics server: /readyz without a check is ready; a port in use rejects the start', async () => {
  const registry = createRegistry({ defaultMetrics: false });
  const a = await startMetricsServer({ host: '127.0.0.1', port: 0, registry, log: silentLogger });
  try {
    assert.equal((await fetch(`${a.url}/readyz`)).status, 200);
    await assert.rejects(startMetricsServer({ host: '127.0.0.1', port: a.port, registry, log: silentLogger }), /EADDRINUSE/);
  } finally { await a.close(); }
});
