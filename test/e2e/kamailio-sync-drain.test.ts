// How a drain ends (ADR 0041), end to end: real Kamailio 5.6 (db_text + JSON-RPC), three real
// sidecars (exec mode, each with its real rtpengine), EndpointSlices from the API stand-in, and
// kamailio-sync asking the sidecars' control port. A terminating pod keeps its row while it has
// calls; once they end, its row leaves Kamailio BEFORE the sidecar stops answering ping. A pod
// drained over HTTP (not terminating) keeps its row while draining, then leaves and stays up drained.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { requires } from '../support/require.js';
import { pingOnce } from '../support/rtpengine.js';
import { startKamailioDb, addRtpenginePod, addRtpengineService, terminatePod, type KamailioDb } from '../support/kamailio-db.js';
import { SipUac, callIdFor, type Dialog } from '../support/sip.js';
import { freePort, freePortRange } from '../support/ports.js';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-apiserver.js';
import { createKubeClient, type KubePort } from '../../src/kube/client.js';
import { createRegistry } from '../../src/metrics.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { systemClock } from '../../src/clock.js';
import { parseOptions } from '../../src/config.js';
import { startAllocator } from '../../src/allocator/allocator.js';
import { parseTableRange } from '../../src/allocator/tables.js';
import { startSidecar, drainedMarkerName, type FullSidecarConfig, type SidecarHandle } from '../../src/sidecar/main.js';
import { sidecarOptions } from '../../src/sidecar/options.js';
import { proxyOptions } from '../../src/sidecar/proxy-options.js';
import { KamailioSync, defaultSyncOptions, writeOnce } from '../../src/kamailio/sync.js';
import { httpDrainProbe, kubeEndpointSource, type EndpointSlice } from '../../src/kamailio/endpoints.js';
import { httpRpc, showNodes } from '../../src/kamailio/jsonrpc.js';
import { parseRtpengineTable } from '../../src/kamailio/dbtext.js';
import { NgUdpClient } from '../../src/ng/client.js';
import { waitFor as waitUntil } from '../support/wait.js';

const NS = 'media';
const SVC = 'rtpengine';
const SELECTOR = `kubernetes.io/service-name=${SVC}`;
const select = { portName: 'ng', controlPortName: 'control', addressType: 'IPv4' as const, setid: 0, weight: 1 };

interface Pod { name: string; uid: string; h: SidecarHandle; ng: number; control: number; url: string }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const waitFor = (what: string, f: () => boolean | Promise<boolean>, ms = 30_000) => waitUntil(what, f, { timeoutMs: ms, intervalMs: 100 });

test('drain end: the row leaves Kamailio before the sidecar stops answering; an HTTP drain on a live pod keeps its row until complete',
  { skip: requires('rtpengine', 'kamailio', 'mkfifo'), timeout: 180_000 }, async () => {
    const cleanup: Array<() => Promise<void>> = [];
    const failures: string[] = [];
    const logs: string[] = [];
    const log = createLogger({ level: 'info' }, { write: (l: string) => { logs.push(l); if (process.env.RTPE_K8S_E2E_LOG) process.stderr.write(l); } });
    try {
      const dir = mkdtempSync(join(tmpdir(), 'ksync-drain-'));
      cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
      const alloc = await startAllocator({
        node: 'n', socket: join(dir, 'a.sock'), tableRange: parseTableRange('0-63'),
        pools: [{ name: 'lo', cidr: '127.0.5.0/24', rangeStart: '127.0.5.10' }],
        stateFile: join(dir, 'state.json'), procRoot: join(dir, 'no-module'), leaseTtlMs: 60_000, sweepIntervalMs: 5000,
      }, { log: silentLogger });
      cleanup.push(() => alloc.close());

      // Three pods: a sidecar each (default --drain-linger-seconds, 20), in exec mode with its rtpengine.
      const pods: Pod[] = [];
      for (const name of ['a', 'b', 'c']) {
        const uid = randomUUID();
        const ng = await freePort();
        const control = await freePort();
        const { min, max } = await freePortRange(100);
        const cfg = parseOptions({ ...sidecarOptions, ...proxyOptions }, [
          '--allocator-socket', alloc.socket, '--rtpengine-mode', 'exec', '--run-dir', join(dir, 'run'), '--proc-root', join(dir, 'no-module'),
          '--media-address-mode', 'none', '--no-deletion-cost', '--ng-listen', `127.0.0.1:${ng}`,
          '--ng-upstream', `127.0.0.1:${await freePort()}`, '--control-listen', `127.0.0.1:${control}`, '--port-min', String(min), '--port-max', String(max),
          '--delete-delay-seconds', '0', '--ng-drain-poll-ms', '200', '--rtpengine-options', '{"num-threads":2}',
        ], { POD_NAME: `rtpengine-${name}`, POD_NAMESPACE: NS, POD_UID: uid, NODE_NAME: 'n' }).config as FullSidecarConfig;
        const h = await startSidecar(cfg, { log: log.child({ pod: name }), registry: createRegistry({ defaultMetrics: false }) });
        pods.push({ name, uid, h, ng, control, url: `udp:127.0.0.1:${ng}` });
      }
      // Clean-up never waits for calls a failed run left behind: the drain deadline moves to 1 s first.
      cleanup.push(async () => {
        await Promise.all(pods.map(async (p) => {
          await fetch(`http://127.0.0.1:${p.control}/drain`, { method: 'POST', body: '{"deadlineSeconds":1}', signal: AbortSignal.timeout(5000) }).catch(() => undefined);
          await p.h.stop('test cleanup');
        }));
      });
      const [A, B, C] = pods as [Pod, Pod, Pod];
      assert.equal(A.h.status().drainLingerSeconds, 20, 'the default linger');
      // The Service names both ports: ng (what Kamailio gets) and control (what the sync asks).
      const podName = (p: Pod) => `rtpengine-${p.name}`;

      const api: KubeApiServer = await startKubeApiServer();
      cleanup.push(() => api.close());
      const kube: KubePort = createKubeClient(api.kubeconfig(), { retryMinMs: 200, retryMaxMs: 500 });
      addRtpengineService(api, NS, SVC, { control: true });
      for (const p of pods) addRtpenginePod(api, NS, SVC, podName(p), p.ng, { controlPort: p.control });
      await waitFor('the controller\'s slices', async () => (await kube.listEndpointSlices(NS, `kubernetes.io/service-name=${SVC}`)).flatMap((s) => s.endpoints ?? []).length === pods.length);

      const dbDir = join(dir, 'db');
      mkdirSync(dbDir);
      const once = await writeOnce({ dbDir, table: 'rtpengine', select }, async () => (await kube.listEndpointSlices(NS, SELECTOR)) as EndpointSlice[],
        { clock: systemClock, log: silentLogger, timeoutMs: 5000 });
      assert.deepEqual(once, { rows: 3, wrote: true });
      const kam: KamailioDb = await startKamailioDb({ dbDir });
      cleanup.push(() => kam.stop());
      const rpc = httpRpc(kam.rpcUrl);
      const registry = createRegistry({ defaultMetrics: false });
      const sync = new KamailioSync({ ...defaultSyncOptions, dbDir, select },
        { source: kubeEndpointSource(kube, NS, SELECTOR), rpc, clock: systemClock, log, registry, drainProbe: httpDrainProbe(defaultSyncOptions.drainProbeTimeoutMs) });
      cleanup.push(() => sync.stop());
      await sync.start();
      const shown = async () => (await showNodes(rpc)).map((n) => n.url).sort();
      const fileUrls = () => parseRtpengineTable(readFileSync(join(dbDir, 'rtpengine'), 'utf8')).map((r) => r.url).sort();
      const probesDone = async () => (await registry.getMetricsAsJSON()).find((m) => m.name === 'rtpengine_k8s_kamailio_drain_probes_total')?.values.reduce((a, v) => a + Number(v.value), 0) ?? 0;
      const writes = async () => Number(/ (\d+)$/m.exec(await registry.getSingleMetricAsString('rtpengine_k8s_kamailio_table_writes_total'))![1]);

      const uac = await SipUac.open();
      cleanup.push(async () => uac.close());
      const target = { host: '127.0.0.1', port: kam.sipPort };
      // The pod whose session count grew holds the call (calls are placed one at a time).
      const call = async (callId: string): Promise<{ dialog: Dialog; pod?: Pod }> => {
        const before = pods.map((p) => p.h.status().sessions);
        const { res, dialog } = await uac.invite(target, { callId });
        if (res.status !== 200) failures.push(`INVITE ${callId}: ${res.status} ${res.reason}`);
        const grew = pods.find((p, i) => p.h.status().sessions > before[i]!);
        return { dialog, pod: grew };
      };
      const hangUp = async (d: Dialog) => {
        const r = await uac.bye(d);
        if (r.status !== 200) failures.push(`BYE ${d.callId}: ${r.status} ${r.reason}`);
      };

      // 1. Kamailio has all three; pin at least one call on A and on C.
      await waitFor('first sync', () => sync.status().loaded);
      assert.deepEqual(await shown(), [A.url, B.url, C.url].sort());
      const pinned: Array<{ dialog: Dialog; pod?: Pod }> = [];
      for (let i = 0; i < 30 && !(pinned.some((c) => c.pod === A) && pinned.some((c) => c.pod === C)); i++) {
        const c = await call(callIdFor(i % 3, 3, 'pin'));
        if (c.pod === A || c.pod === C) pinned.push(c); else await hangUp(c.dialog);
      }
      const onA = pinned.filter((c) => c.pod === A);
      const onC = pinned.filter((c) => c.pod === C);
      assert.ok(onA.length > 0 && onC.length > 0, `calls pinned on A (${onA.length}) and C (${onC.length})`);

      // 2. A's pod is deleted: endpoint terminating, SIGTERM → drain. C is drained over HTTP on a pod
      //    that stays: its endpoint turns not ready but not terminating.
      const writes0 = await writes();
      terminatePod(api, NS, podName(A));
      api.store.setPodReady(NS, podName(A), false);
      const aStopped = A.h.stop('SIGTERM');
      const res = await fetch(`http://127.0.0.1:${C.control}/drain`, { method: 'POST', signal: AbortSignal.timeout(5000) });
      assert.equal(res.status, 202);
      api.store.setPodReady(NS, podName(C), false);
      await waitFor('both drains seen by the sync', () => sync.status().drainReports[A.url] === 'draining' && sync.status().drainReports[C.url] === 'draining', 10_000);
      // Two more probe rounds of both sidecars: anything the sync would do with those reports, it has done.
      const probes0 = await probesDone();
      await waitFor('two more drain-probe rounds', async () => (await probesDone()) >= probes0 + 4);
      assert.equal(await writes(), writes0, 'no table write while A and C drain');
      assert.deepEqual(fileUrls(), [A.url, B.url, C.url].sort());
      assert.deepEqual(await shown(), [A.url, B.url, C.url].sort(), 'A (terminating) and C (HTTP drain, not terminating) stay in Kamailio');
      assert.equal(A.h.status().state, 'draining');
      assert.equal(C.h.status().state, 'draining');
      const during = [];
      for (let i = 0; i < 6; i++) during.push(await call(callIdFor(i % 3, 3, 'during')));
      assert.ok(during.every((c) => c.pod === B), `new calls all on B: ${during.map((c) => c.pod?.name).join(',')}`);
      for (const c of during) await hangUp(c.dialog);

      // 3. A's calls end → its drain completes. Record, every 100 ms, whether Kamailio still lists A
      //    and whether A still answers ping: the row must go first.
      const events: Array<{ t: number; what: string }> = [];
      for (const c of onA) await hangUp(c.dialog);
      await waitFor('A drained', () => A.h.status().drainComplete, 10_000);
      const tDrained = Date.now();
      assert.equal(A.h.status().state, 'lingering', 'terminating: drained, then lingering');
      let rowGoneAt: number | undefined;
      let pingGoneAt: number | undefined;
      while (pingGoneAt === undefined && Date.now() - tDrained < 60_000) {
        const listed = (await shown()).includes(A.url);
        const answers = await pingOnce('127.0.0.1', A.ng, 300);
        if (!listed && rowGoneAt === undefined) { rowGoneAt = Date.now(); events.push({ t: rowGoneAt - tDrained, what: `row gone from rtpengine.show (ping ${answers ? 'answered' : 'NOT answered'})` }); }
        if (!answers) { pingGoneAt = Date.now(); events.push({ t: pingGoneAt - tDrained, what: 'ping not answered' }); }
        if (rowGoneAt !== undefined && answers && !events.some((e) => e.what === 'ping answered after the row left')) events.push({ t: Date.now() - tDrained, what: 'ping answered after the row left' });
        await sleep(100);
      }
      assert.ok(rowGoneAt !== undefined && pingGoneAt !== undefined, JSON.stringify(events));
      assert.deepEqual(events.map((e) => e.what), ['row gone from rtpengine.show (ping answered)', 'ping answered after the row left', 'ping not answered'], JSON.stringify(events));
      assert.ok(pingGoneAt! - tDrained >= 20_000, `A answered through its linger (stopped after ${pingGoneAt! - tDrained} ms)`);
      assert.equal(await aStopped, 0, 'A exits 0');
      assert.deepEqual(fileUrls(), [B.url, C.url].sort());

      // 4. C's calls end → its drain completes; the row leaves, but C stays up drained: pong to pings,
      //    load limit to new offers, readiness false, the marker written.
      for (const c of onC) await hangUp(c.dialog);
      await waitFor('C drained', () => C.h.status().drainComplete, 10_000);
      assert.equal(C.h.status().state, 'drained');
      await waitFor('C removed from Kamailio', async () => !(await shown()).includes(C.url), 25_000);
      assert.deepEqual(await shown(), [B.url]);
      assert.deepEqual(fileUrls(), [B.url]);
      assert.ok(await pingOnce('127.0.0.1', C.ng, 500), 'C still answers ping');
      const ngc = new NgUdpClient({ host: '127.0.0.1', port: C.ng, timeoutMs: 1000, retries: 1 });
      cleanup.push(async () => ngc.close());
      const offer = await ngc.command({ command: 'offer', 'call-id': 'after-drain@x', 'from-tag': 'f', sdp: 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n', supports: ['load limit'] });
      assert.equal(offer.result, 'load limit');
      assert.equal((await fetch(`http://127.0.0.1:${C.control}/readyz`, { signal: AbortSignal.timeout(5000) })).status, 503);
      assert.ok(existsSync(drainedMarkerName(join(dir, 'run'), C.uid)), 'drained marker written');
      assert.equal(C.h.status().state, 'drained', 'C keeps running drained (no exit)');
      const after = [];
      for (let i = 0; i < 3; i++) after.push(await call(callIdFor(i % 3, 3, 'after')));
      assert.ok(after.every((c) => c.pod === B));
      for (const c of after) await hangUp(c.dialog);

      assert.deepEqual(failures, [], 'zero failed SIP transactions');
    } catch (e) {
      process.stderr.write(logs.slice(-80).join(''));
      throw e;
    } finally {
      for (const f of cleanup.reverse()) await f().catch(() => undefined);
    }
  });
