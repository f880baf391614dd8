import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRegistry } from '../metrics.js';
import { createProxyMetrics } from './proxy-metrics.js';

type Val = { labels: Record<string, unknown>; value: number; metricName?: string };
async function values(reg: ReturnType<typeof createRegistry>, name: string): Promise<Val[]> {
  return ((await reg.getMetricsAsJSON()).find((m) => m.name === name)?.values ?? []) as Val[];
}

test('requests counted per (command, result, origin); unknown commands/results share `other`; one histogram per command', async () => {
  const reg = createRegistry({ defaultMetrics: false });
  const m = createProxyMetrics(reg, { sessions: () => 0, inFlight: () => 0, replyCacheBytes: () => 0 });
  m.request('offer', 'ok', 'rtpengine', 0.0003);
  m.request('offer', 'ok', 'rtpengine', 0.002);
  m.request('offer', 'load limit', 'proxy', 0.00005);
  m.request(undefined, undefined, 'cache', 0.00001);
  m.request('frobnicate', 'ok', 'rtpengine', 0.001);
  m.request('wiggle', 'ok', 'rtpengine', 0.001);
  m.request('delete', 'weird-1', 'rtpengine', 0.001);
  m.request('delete', 'weird-2', 'rtpengine', 0.001);
  m.request('offer', 'invalid', 'rtpengine', 0.001);
  const req = await values(reg, 'rtpengine_k8s_ng_requests_total');
  const get = (command: string, result: string, origin: string) => req.filter((v) => v.labels.command === command && v.labels.result === result && v.labels.origin === origin);
  assert.deepEqual(get('offer', 'ok', 'rtpengine').map((v) => v.value), [2]);
  assert.deepEqual(get('offer', 'load_limit', 'proxy').map((v) => v.value), [1]);
  assert.deepEqual(get('none', 'none', 'cache').map((v) => v.value), [1]);
  assert.deepEqual(get('other', 'ok', 'rtpengine').map((v) => v.value), [2], 'unknown commands aggregated into one series');
  assert.deepEqual(get('delete', 'other', 'rtpengine').map((v) => v.value), [2], 'unknown results aggregated into one series');
  assert.deepEqual(get('offer', 'other', 'rtpengine').map((v) => v.value), [1]);
  assert.equal(req.length, 6, 'no zero-valued or duplicate series');
  const keys = req.map((v) => `${String(v.labels.command)}|${String(v.labels.result)}|${String(v.labels.origin)}`);
  assert.equal(new Set(keys).size, keys.length);

  const lat = await values(reg, 'rtpengine_k8s_ng_request_duration_seconds');
  const count = (command: string) => lat.find((v) => v.metricName === 'rtpengine_k8s_ng_request_duration_seconds_count' && v.labels.command === command)?.value;
  assert.equal(count('offer'), 4);
  assert.equal(count('other'), 2);
  assert.equal(count('none'), 1);
  const b = (command: string, le: number) => lat.find((v) => v.metricName === 'rtpengine_k8s_ng_request_duration_seconds_bucket' && v.labels.command === command && v.labels.le === le)?.value;
  assert.equal(b('offer', 0.0001), 1, 'the 50 µs refusal');
  assert.equal(b('offer', 0.0005), 2);
  assert.equal(b('offer', 0.0025), 4, 'cumulative');
});

test('drain probes counted by outcome, all outcomes present from the start', async () => {
  const reg = createRegistry({ defaultMetrics: false });
  const m = createProxyMetrics(reg, { sessions: () => 0, inFlight: () => 0, replyCacheBytes: () => 0 });
  m.drainProbe('found');
  m.drainProbe('found');
  m.drainProbe('failed');
  const v = await values(reg, 'rtpengine_k8s_ng_drain_probes_total');
  const of = (o: string) => v.find((x) => x.labels.outcome === o)?.value;
  assert.equal(of('found'), 2);
  assert.equal(of('unknown'), 0);
  assert.equal(of('failed'), 1);
});
