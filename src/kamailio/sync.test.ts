import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../../test/support/require.js';
import { freePort } from '../../test/support/ports.js';
import { startKamailioDb, addRtpenginePod, addRtpengineService } from '../../test/support/kamailio-db.js';
import { startKubeApiServer } from '../../test/support/kube-apiserver.js';
import { createKubeClient } from '../kube/client.js';
import { createRegistry } from '../metrics.js';
import { silentLogger } from '../log.js';
import { systemClock } from '../clock.js';
import { KamailioSync, defaultSyncOptions, writeOnce, type SyncStatus } from './sync.js';
import { kubeEndpointSource } from './endpoints.js';
import { httpRpc, showNodes } from './jsonrpc.js';
import { ensureVersionRow, parseRtpengineTable, renderRtpengineTable } from './dbtext.js';
import { waitFor as waitUntil } from '../../test/support/wait.js';

const NS = 'media';
const SVC = 'rtpengine';
const select = { portName: 'ng', addressType: 'IPv4' as const, setid: 0, weight: 1 };
const waitFor = (what: string, f: () => boolean | Promise<boolean>, ms = 30_000) => waitUntil(what, f, { timeoutMs: ms, intervalMs: 100 });
const metric = async (reg: ReturnType<typeof createRegistry>, name: string, labels: Record<string, string> = {}) => {
  const m = (await reg.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).filter((v) => Object.entries(labels).every(([k, l]) => (v.labels as any)[k] === l)).reduce((a, v) => a + Number(v.value), 0);
};

test('sync against real Kamailio: no needless reload, outage and empty lists keep the table, a burst of changes is one reload after a refused early one',
  { skip: requires('kamailio') }, async () => {
    const api = await startKubeApiServer();
    const dbDir = mkdtempSync(join(tmpdir(), 'ksync-'));
    const tablePath = join(dbDir, 'rtpengine');
    const [pA, pB, pC, pD] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    // Kamailio starts from a table naming A and B (as the init container leaves it).
    await ensureVersionRow(dbDir, 'rtpengine');
    writeFileSync(tablePath, renderRtpengineTable([pA, pB].map((p) => ({ setid: 0, url: `udp:127.0.0.1:${p}`, weight: 1, disabled: false }))));
    const kam = await startKamailioDb({ dbDir });
    const registry = createRegistry({ defaultMetrics: false });
    const kube = createKubeClient(api.kubeconfig(), { retryMinMs: 200, retryMaxMs: 400 });
    const sync = new KamailioSync(
      { ...defaultSyncOptions, dbDir, select },
      { source: kubeEndpointSource(kube, NS, `kubernetes.io/service-name=${SVC}`), rpc: httpRpc(kam.rpcUrl), clock: systemClock, log: silentLogger, registry },
    );
    const rounds: SyncStatus[] = [];
    sync.onApplied((s) => rounds.push(s));
    const urls = (ports: number[]) => ports.map((p) => `udp:127.0.0.1:${p}`).sort();
    const fileUrls = () => parseRtpengineTable(readFileSync(tablePath, 'utf8')).map((r) => r.url).sort();
    try {
      // Empty first list (no slices yet): nothing is written.
      addRtpengineService(api, NS, SVC);
      await sync.start();
      // The source has listed (nothing) and watches: an empty first list is no snapshot at all.
      await waitFor('the empty list read and a watch open', () => api.requests.count({ verb: 'watch', resource: 'endpointslices' }) >= 1);
      assert.deepEqual(fileUrls(), urls([pA, pB]));
      // A slice with only unready pods is empty too: kept, and counted.
      addRtpenginePod(api, NS, SVC, 'a', pA!, { ready: false });
      await waitFor('empty list ignored', async () => (await metric(registry, 'rtpengine_k8s_kamailio_empty_lists_ignored_total')) >= 1);
      assert.deepEqual(fileUrls(), urls([pA, pB]));

      // The real list equals what Kamailio loaded at start: verified with rtpengine.show, no reload.
      api.store.setPodReady(NS, 'a', true);
      addRtpenginePod(api, NS, SVC, 'b', pB!);
      await waitFor('in sync without reload', () => sync.status().loaded);
      assert.equal(sync.status().reloads, 0);
      assert.equal(await metric(registry, 'rtpengine_k8s_kamailio_reload_failures_total'), 0);

      // API outage: watch errors are counted, the table stays as it was.
      api.faults.outage(true);
      // Two failed watch attempts (the second after a retry delay): the table has outlived an error.
      await waitFor('source errors counted', async () => (await metric(registry, 'rtpengine_k8s_kamailio_endpoint_errors_total')) >= 2);
      assert.deepEqual(fileUrls(), urls([pA, pB]));
      assert.deepEqual((await showNodes(httpRpc(kam.rpcUrl))).map((n) => n.url).sort(), urls([pA, pB]));
      api.faults.outage(false);

      // A burst (C added, D added, B flaps away and back) right after Kamailio's start: the first
      // reload is refused (10 s window since start), then exactly one reload carries all of it.
      addRtpenginePod(api, NS, SVC, 'c', pC!);
      api.store.delete('pods', NS, 'b');
      addRtpenginePod(api, NS, SVC, 'd', pD!);
      addRtpenginePod(api, NS, SVC, 'b', pB!);
      await waitFor('reloaded', () => sync.status().reloads === 1, 25_000);
      assert.deepEqual(fileUrls(), urls([pA, pB, pC, pD]));
      assert.deepEqual((await showNodes(httpRpc(kam.rpcUrl))).map((n) => n.url).sort(), urls([pA, pB, pC, pD]));
      assert.equal(await metric(registry, 'rtpengine_k8s_kamailio_reloads_total'), 1);
      assert.ok(await metric(registry, 'rtpengine_k8s_kamailio_reload_failures_total', { reason: 'too_soon' }) >= 1, 'the early reload was refused and retried');
      assert.equal(await metric(registry, 'rtpengine_k8s_kamailio_table_writes_total'), 1, 'one write for the whole burst');
      assert.equal(await metric(registry, 'rtpengine_k8s_kamailio_nodes'), 4);
      assert.equal(await metric(registry, 'rtpengine_k8s_kamailio_in_sync'), 1);
    } finally {
      await sync.stop();
      await kam.stop();
      await api.close();
      rmSync(dbDir, { recursive: true, force: true });
    }
  });

test('--once (init container): writes the list; with no ready pod keeps an existing table, creates an empty one only when none exists', async () => {
  const api = await startKubeApiServer();
  const dbDir = mkdtempSync(join(tmpdir(), 'konce-'));
  const kube = createKubeClient(api.kubeconfig());
  const list = async () => (await kube.listEndpointSlices(NS, `kubernetes.io/service-name=${SVC}`)) as any[];
  const d = { clock: systemClock, log: silentLogger, timeoutMs: 300, pollMs: 100 };
  try {
    assert.deepEqual(await writeOnce({ dbDir, table: 'rtpengine', select }, list, d), { rows: 0, wrote: true });
    assert.deepEqual(parseRtpengineTable(readFileSync(join(dbDir, 'rtpengine'), 'utf8')), []);
    // addresses only written to the table, never contacted
    addRtpengineService(api, NS, SVC);
    addRtpenginePod(api, NS, SVC, 'x', 2223, { ip: '10.0.0.1' });
    addRtpenginePod(api, NS, SVC, 'y', 2223, { ip: '10.0.0.2', ready: false });
    await waitUntil('the controller\'s slice', async () => (await list()).length === 1);
    assert.deepEqual(await writeOnce({ dbDir, table: 'rtpengine', select }, list, d), { rows: 1, wrote: true });
    api.store.delete('pods', NS, 'x');
    api.store.delete('pods', NS, 'y');
    await waitUntil('the slice emptied', async () => (await list()).every((s) => !s.endpoints?.length));
    assert.deepEqual(await writeOnce({ dbDir, table: 'rtpengine', select }, list, d), { rows: 1, wrote: false });
    assert.deepEqual(parseRtpengineTable(readFileSync(join(dbDir, 'rtpengine'), 'utf8')).map((r) => r.url), ['udp:10.0.0.1:2223']);
    assert.equal(readFileSync(join(dbDir, 'version'), 'utf8'), 'table_name(str) table_version(int)\nrtpengine:1\n');
  } finally {
    await api.close();
    rmSync(dbDir, { recursive: true, force: true });
  }
});
