// kamailio-sync end to end: real Kamailio 5.6 (db_text, db_mode 1, JSON-RPC over HTTP), real ng
// proxies (sidecars) in front of real rtpengines, EndpointSlices from the API stand-in through the
// real @kubernetes/client-node. Scale-out, drain of a terminating pod, its removal, an API outage.
// Planned for two reloads (Kamailio allows one per 10 s): add C; remove A. Draining needs none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../support/require.js';
import { startRtpengine } from '../support/rtpengine.js';
import { startKamailioDb, addRtpenginePod, addRtpengineService, terminatePod, type KamailioDb } from '../support/kamailio-db.js';
import { SipUac, callIdFor, type Dialog } from '../support/sip.js';
import { freePort } from '../support/ports.js';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-apiserver.js';
import { startNgProxy, type NgProxy } from '../../src/sidecar/proxy.js';
import { proxyConfigWith } from '../../src/sidecar/proxy-options.js';
import { createKubeClient, type KubePort } from '../../src/kube/client.js';
import { createRegistry } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { systemClock } from '../../src/clock.js';
import { KamailioSync, defaultSyncOptions, writeOnce } from '../../src/kamailio/sync.js';
import { kubeEndpointSource, type EndpointSlice } from '../../src/kamailio/endpoints.js';
import { httpRpc, showNodes } from '../../src/kamailio/jsonrpc.js';
import { parseRtpengineTable } from '../../src/kamailio/dbtext.js';
import { waitFor as waitUntil } from '../support/wait.js';

const NS = 'media';
const SVC = 'rtpengine';
const SELECTOR = `kubernetes.io/service-name=${SVC}`;
const select = { portName: 'ng', addressType: 'IPv4' as const, setid: 0, weight: 1 };

interface Pod { name: string; proxy: NgProxy; port: number; url: string }

const waitFor = (what: string, f: () => boolean | Promise<boolean>, ms = 30_000) => waitUntil(what, f, { timeoutMs: ms, intervalMs: 100 });

test('scale-out reaches Kamailio; a draining pod keeps its calls and gets no new ones; removal; API outage keeps the table',
  { skip: requires('rtpengine', 'kamailio', 'mkfifo') }, async () => {
    const cleanup: Array<() => Promise<void>> = [];
    const failures: string[] = [];
    try {
      // Three "pods": a real rtpengine behind a real sidecar ng proxy each (ng port = proxy port).
      const pods: Pod[] = [];
      for (const name of ['a', 'b', 'c']) {
        const rtp = await startRtpengine();
        cleanup.push(() => rtp.stop());
        const port = await freePort();
        const proxy = await startNgProxy(proxyConfigWith({
          ngListen: [`127.0.0.1:${port}`], ngUpstream: `127.0.0.1:${rtp.ngPort}`, deleteDelaySeconds: 0,
          ngHealthIntervalMs: 200, ngDrainPollMs: 100, ngReconcileIntervalMs: 60_000,
        }), { log: silentLogger, registry: createRegistry({ defaultMetrics: false }) });
        cleanup.push(() => proxy.close());
        pods.push({ name, proxy, port, url: `udp:127.0.0.1:${port}` });
      }
      const [A, B, C] = pods as [Pod, Pod, Pod];
      const podName = (p: Pod) => `rtpengine-${p.name}`;
      const addPod = (p: Pod) => addRtpenginePod(api, NS, SVC, podName(p), p.port);

      const api: KubeApiServer = await startKubeApiServer();
      cleanup.push(() => api.close());
      const kube: KubePort = createKubeClient(api.kubeconfig(), { retryMinMs: 200, retryMaxMs: 500 });
      addRtpengineService(api, NS, SVC);
      addPod(A);
      addPod(B);
      await waitFor('the controller\'s slices', async () => (await kube.listEndpointSlices(NS, SELECTOR)).flatMap((s) => s.endpoints ?? []).length === 2);

      // Init container: the table exists before Kamailio starts.
      const dbDir = mkdtempSync(join(tmpdir(), 'ksync-e2e-'));
      cleanup.push(async () => rmSync(dbDir, { recursive: true, force: true }));
      const once = await writeOnce({ dbDir, table: 'rtpengine', select }, async () => (await kube.listEndpointSlices(NS, SELECTOR)) as EndpointSlice[],
        { clock: systemClock, log: silentLogger, timeoutMs: 5000 });
      assert.deepEqual(once, { rows: 2, wrote: true });

      const kam: KamailioDb = await startKamailioDb({ dbDir });
      cleanup.push(() => kam.stop());
      const rpc = httpRpc(kam.rpcUrl);
      const registry = createRegistry({ defaultMetrics: false });
      const sync = new KamailioSync({ ...defaultSyncOptions, dbDir, select },
        { source: kubeEndpointSource(kube, NS, SELECTOR), rpc, clock: systemClock, log: silentLogger, registry });
      cleanup.push(() => sync.stop());
      await sync.start();
      const shown = async () => (await showNodes(rpc)).map((n) => n.url).sort();
      const fileUrls = () => parseRtpengineTable(readFileSync(join(dbDir, 'rtpengine'), 'utf8')).map((r) => r.url).sort();

      const uac = await SipUac.open();
      cleanup.push(async () => uac.close());
      const target = { host: '127.0.0.1', port: kam.sipPort };
      const holder = (callId: string) => pods.find((p) => p.proxy.sessions.has(callId));
      const call = async (callId: string): Promise<{ dialog: Dialog; pod?: Pod }> => {
        const { res, dialog } = await uac.invite(target, { callId });
        if (res.status !== 200) failures.push(`INVITE ${callId}: ${res.status} ${res.reason}`);
        return { dialog, pod: holder(callId) };
      };
      const hangUp = async (d: Dialog) => {
        const r = await uac.bye(d);
        if (r.status !== 200) failures.push(`BYE ${d.callId}: ${r.status} ${r.reason}`);
      };

      // 1. Two pods: Kamailio already has them (no reload), and routes calls to both.
      await waitFor('first sync', () => sync.status().loaded);
      assert.equal(sync.status().reloads, 0);
      assert.deepEqual(await shown(), [A.url, B.url].sort());
      const first = [];
      for (let i = 0; i < 6; i++) first.push(await call(callIdFor(i % 2, 2, 'two')));
      const onA = first.filter((c) => c.pod === A);
      assert.ok(onA.length > 0 && first.some((c) => c.pod === B), `calls spread over A and B: ${first.map((c) => c.pod?.name).join(',')}`);
      for (const c of first.filter((x) => x.pod !== A)) await hangUp(c.dialog);

      // 2. Scale-out: C appears in the EndpointSlices → table + reload (the first try falls inside
      //    Kamailio's 10 s start window and is retried) → new calls reach C.
      addPod(C);
      await waitFor('C loaded by Kamailio', async () => sync.status().reloads === 1 && (await shown()).includes(C.url), 25_000);
      assert.deepEqual(await shown(), [A.url, B.url, C.url].sort());
      const third = [];
      for (let i = 0; i < 6; i++) third.push(await call(callIdFor(i % 3, 3, 'three')));
      assert.ok(third.some((c) => c.pod === C), `a new call reached C: ${third.map((c) => c.pod?.name).join(',')}`);
      for (const c of third.filter((x) => x.pod !== A)) await hangUp(c.dialog);
      const pinnedA = [...onA, ...third.filter((c) => c.pod === A)];
      assert.ok(pinnedA.length > 0);

      // 3. A terminates with active calls: its endpoint turns terminating (not ready, not serving),
      //    its sidecar drains. The table keeps A (no write, no reload); no new call lands on A.
      const writesBefore = (await registry.getSingleMetricAsString('rtpengine_k8s_kamailio_table_writes_total'));
      terminatePod(api, NS, podName(A));
      api.store.setPodReady(NS, podName(A), false);
      A.proxy.drain({ trigger: 'test' });
      await waitFor('the sync has seen A terminating', () => sync.status().desired?.find((n) => n.url === A.url)?.terminating === true);
      assert.equal(await registry.getSingleMetricAsString('rtpengine_k8s_kamailio_table_writes_total'), writesBefore, 'no table write for a draining pod');
      assert.ok(fileUrls().includes(A.url) && (await shown()).includes(A.url), 'A stays in the table and in Kamailio while draining');
      const aSessions = A.proxy.sessions.count();
      const during = [];
      for (let i = 0; i < 9; i++) during.push(await call(callIdFor(i % 3, 3, 'drain')));
      assert.ok(during.every((c) => c.pod && c.pod !== A), `no new call on A: ${during.map((c) => c.pod?.name).join(',')}`);
      assert.equal(A.proxy.sessions.count(), aSessions);
      for (const c of during) await hangUp(c.dialog);
      // Its pinned calls' BYEs still reach A.
      for (const c of pinnedA) await hangUp(c.dialog);
      await waitFor('A empty', () => A.proxy.sessions.count() === 0, 5000);

      // 4. API outage: the watch fails, the table and Kamailio's list stay as they were.
      api.faults.outage(true);
      // Two failed watch attempts (the second after a retry delay): the table has outlived an error.
      await waitFor('watch errors', async () => Number((await registry.getSingleMetricAsString('rtpengine_k8s_kamailio_endpoint_errors_total')).match(/ (\d+)$/m)?.[1] ?? 0) >= 2, 10_000);
      assert.deepEqual(fileUrls(), [A.url, B.url, C.url].sort());
      assert.deepEqual(await shown(), [A.url, B.url, C.url].sort());
      api.faults.outage(false);

      // 5. A's pod is gone: its endpoint leaves the slice → removed from the table and from Kamailio.
      api.store.delete('pods', NS, podName(A));
      await waitFor('A removed from Kamailio', async () => sync.status().reloads === 2 && !(await shown()).includes(A.url), 25_000);
      assert.deepEqual(fileUrls(), [B.url, C.url].sort());
      const after = [];
      for (let i = 0; i < 4; i++) after.push(await call(callIdFor(i % 2, 2, 'after')));
      assert.ok(after.every((c) => c.pod === B || c.pod === C));
      for (const c of after) await hangUp(c.dialog);

      assert.deepEqual(failures, [], 'zero failed SIP transactions');
      assert.equal(Number(/ (\d+)$/m.exec(await registry.getSingleMetricAsString('rtpengine_k8s_kamailio_reloads_total'))![1]), 2, 'two reloads in all');
    } finally {
      for (const f of cleanup.reverse()) await f().catch(() => undefined);
    }
  });
