// Suite 'kamailio': time from an EndpointSlice change to Kamailio routing by it (rtpengine.show
// lists the new node set), through the real client-node watch, db_text and rtpengine.reload:
// in an idle reload window (goal ≤ 1 s) and right after a reload (bounded by the 10 s limit: ≤ 11 s).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Suite, Row } from './suite.js';
import { startRtpengine, type RtpengineHandle } from '../test/support/rtpengine.js';
import { startKamailioDb, addRtpenginePod, addRtpengineService } from '../test/support/kamailio-db.js';
import { startKubeApiServer } from '../test/support/kube-apiserver.js';
import { createKubeClient } from '../src/kube/client.js';
import { createRegistry } from '../src/metrics.js';
import { silentLogger } from '../src/log.js';
import { systemClock } from '../src/clock.js';
import { KamailioSync, defaultSyncOptions, writeOnce } from '../src/kamailio/sync.js';
import { kubeEndpointSource, type EndpointSlice } from '../src/kamailio/endpoints.js';
import { httpRpc, showNodes } from '../src/kamailio/jsonrpc.js';

const NS = 'media';
const SVC = 'rtpengine';
const select = { portName: 'ng', addressType: 'IPv4' as const, setid: 0, weight: 1 };

const suite: Suite = {
  name: 'kamailio',
  needs: ['kamailio', 'rtpengine'],
  async run(ctx) {
    const rows: Row[] = [];
    const cleanup: Array<() => Promise<void>> = [];
    try {
      const rtps: RtpengineHandle[] = [];
      for (let i = 0; i < 3; i++) { const r = await startRtpengine(); cleanup.push(() => r.stop()); rtps.push(r); }
      const url = (r: RtpengineHandle) => `udp:127.0.0.1:${r.ngPort}`;
      // The stand-in's EndpointSlice controller derives the slices from the Service and the pods.
      const addPod = (i: number) => addRtpenginePod(api, NS, SVC, `rtpengine-${i}`, rtps[i]!.ngPort);
      const api = await startKubeApiServer();
      cleanup.push(() => api.close());
      const kube = createKubeClient(api.kubeconfig());
      addRtpengineService(api, NS, SVC);
      addPod(0);
      while (!(await kube.listEndpointSlices(NS, `kubernetes.io/service-name=${SVC}`)).some((s) => s.endpoints?.length)) await new Promise((r) => setTimeout(r, 10));
      const dbDir = mkdtempSync(join(tmpdir(), 'ksync-bench-'));
      cleanup.push(async () => rmSync(dbDir, { recursive: true, force: true }));
      await writeOnce({ dbDir, table: 'rtpengine', select }, async () => (await kube.listEndpointSlices(NS, `kubernetes.io/service-name=${SVC}`)) as EndpointSlice[],
        { clock: systemClock, log: silentLogger, timeoutMs: 5000 });
      const kam = await startKamailioDb({ dbDir });
      const kamStarted = performance.now();
      cleanup.push(() => kam.stop());
      const rpc = httpRpc(kam.rpcUrl);
      const sync = new KamailioSync({ ...defaultSyncOptions, dbDir, select },
        { source: kubeEndpointSource(kube, NS, `kubernetes.io/service-name=${SVC}`), rpc, clock: systemClock, log: silentLogger, registry: createRegistry({ defaultMetrics: false }) });
      cleanup.push(() => sync.stop());
      await sync.start();

      /** Apply a change and time until rtpengine.show has exactly `want`. */
      const timed = async (change: () => void, want: string[]): Promise<number> => {
        const t0 = performance.now();
        change();
        const w = [...want].sort().join(',');
        for (;;) {
          const got = (await showNodes(rpc)).map((n) => n.url).sort().join(',');
          if (got === w) return performance.now() - t0;
          if (performance.now() - t0 > 30_000) throw new Error(`Kamailio never showed ${w} (has ${got})`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      const idle = async (since: number) => { const wait = since + 10_500 - performance.now(); if (wait > 0) await new Promise((r) => setTimeout(r, wait)); };

      // 1. Idle window: Kamailio's start counts as a reload; wait it out, then add a pod.
      await idle(kamStarted);
      ctx.log('adding a pod in an idle reload window');
      const tIdle = await timed(() => addPod(1), [url(rtps[0]!), url(rtps[1]!)]);
      rows.push({ suite: 'kamailio', name: 'EndpointSlice change → Kamailio routing, idle reload window', unit: 'ms', value: tIdle, goal: '≤ 1000 ms', met: tIdle <= 1000 });

      // 2. Right after that reload: the 10 s limit bounds it.
      ctx.log('adding a pod right after a reload');
      const reloadedAt = performance.now();
      const tBusy = await timed(() => addPod(2), rtps.map(url));
      rows.push({ suite: 'kamailio', name: 'EndpointSlice change → Kamailio routing, right after a reload', unit: 'ms', value: tBusy, goal: '≤ 11000 ms', met: tBusy <= 11_000 });

      if (!ctx.quick) {
        // 3. A removal in an idle window.
        await idle(reloadedAt + tBusy);
        ctx.log('removing a pod in an idle reload window');
        const tRemove = await timed(() => api.store.delete('pods', NS, 'rtpengine-1'), [url(rtps[0]!), url(rtps[2]!)]);
        rows.push({ suite: 'kamailio', name: 'EndpointSlice removal → Kamailio routing, idle reload window', unit: 'ms', value: tRemove, goal: '≤ 1000 ms', met: tRemove <= 1000 });
      }
      return rows;
    } finally {
      for (const f of cleanup.reverse()) await f().catch(() => undefined);
    }
  },
};

export default suite;
