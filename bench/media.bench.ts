// Suite 'media': the limits of `npm start`'s story on this machine. (1) Concurrent calls with
// media on one pod (userspace forwarding) before the first media gap: calls of 10 min are added
// at a fixed rate until some call's echoes stop for > 250 ms (and > 1 s: a dropped call); the
// calls up at that moment are the figure — a bound for the whole demo (SIPp's echo and the Node
// caller endpoint share the 2 cores with rtpengine). (2) Call set-up rate through Kamailio +
// sidecar vs Kamailio + rtpengine directly (same pod, same SIPp, calls of 1 ms, 50 at once).
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { Suite, Row } from './suite.js';
import { silentLogger } from '../src/log.js';
import { LocalRun } from '../src/local/run.js';
import { localPorts } from '../src/local.js';
import { LocalPods } from '../src/local/pods.js';
import { startLocalKamailio } from '../src/local/kamailio.js';
import { startTraffic, type TrafficEvent } from '../src/local/traffic.js';
import { startAllocator } from '../src/allocator/allocator.js';
import { parseTableRange } from '../src/allocator/tables.js';
import { renderRtpengineTable, writeDbTextFile } from '../src/kamailio/dbtext.js';
import { nodeUrl } from '../src/kamailio/endpoints.js';
import { freePortBlock } from '../test/support/ports.js';

const GAP_MS = 250;

async function ports() {
  return localPorts({ ngPort: await freePortBlock(2), controlPort: await freePortBlock(2), rtpengineNgPort: await freePortBlock(2), mediaPortMin: 40000, mediaPortMax: 49999,
    sipPort: await freePortBlock(1), rpcPort: await freePortBlock(1), sippPortBase: await freePortBlock(8) });
}

async function callsBeforeGap(ctx: { quick: boolean; log: (m: string) => void }): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-media-'));
  const rate = ctx.quick ? 20 : 25;
  const cap = ctx.quick ? 400 : 3000;
  const run = new LocalRun({ dir, pods: 1, traffic: true, rate, durationMinMs: 600_000, durationMaxMs: 600_000, ports: await ports(),
    procRoot: join(dir, 'no-module'), kernel: false, rtpengineBinary: 'rtpengine', drainDeadlineSeconds: 60 }, silentLogger);
  let first250: number | undefined;
  let first1s: number | undefined;
  try {
    await run.start();
    const up = () => run.media!.upCalls();
    await run.until(() => {
      const n = up().length;
      const worst = Math.max(0, ...up().map((c) => c.maxGapMs));
      if (first250 === undefined && worst > GAP_MS) { first250 = n; ctx.log(`first gap > ${GAP_MS} ms with ${n} calls up`); }
      if (first1s === undefined && worst > 1000) { first1s = n; ctx.log(`first gap > 1 s with ${n} calls up`); }
      return first1s !== undefined || n >= cap;
    }, cap / rate * 1000 * 2 + 60_000, 'the first media gap');
  } finally {
    await run.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
  const note = `one pod, userspace; calls of 10 min added at ${rate}/s with 50 packets/s each way; stops at ${cap} calls`;
  return [
    { suite: 'media', name: `concurrent calls with media on one pod before the first gap > ${GAP_MS} ms`, unit: 'calls', value: first250 ?? cap, note: first250 === undefined ? `${note}; no gap up to the cap` : note },
    { suite: 'media', name: 'concurrent calls with media on one pod before the first gap > 1 s (a dropped call)', unit: 'calls', value: first1s ?? cap, note: first1s === undefined ? `${note}; no gap up to the cap` : note },
  ];
}

async function setupRate(ctx: { quick: boolean; log: (m: string) => void }): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-setup-'));
  const p = await ports();
  const calls = ctx.quick ? 300 : 2000;
  const rows: Row[] = [];
  const allocator = await startAllocator({ node: 'bench', socket: join(dir, 'a.sock'), tableRange: parseTableRange('0-63'), pools: [{ name: 'b', cidr: '127.0.1.0/24', rangeStart: '127.0.1.10' }],
    stateFile: join(dir, 'state.json'), procRoot: join(dir, 'no-module'), leaseTtlMs: 60_000, sweepIntervalMs: 5000 }, { log: silentLogger });
  const pods = new LocalPods({ dir, allocatorSocket: allocator.socket, ngPort: p.ng, controlPort: p.control, rtpengineNgPort: p.rtpengineNg, mediaPortMin: p.mediaMin, mediaPortMax: p.mediaMax,
    procRoot: join(dir, 'no-module'), rtpengineBinary: 'rtpengine', drainDeadlineSeconds: 30, drainLingerSeconds: 0 });
  try {
    pods.start(200);
    const pod = await pods.create();
    while (pod.state !== 'serving') await new Promise((r) => setTimeout(r, 100));
    for (const [label, port] of [['Kamailio + sidecar', pod.ports.ng], ['Kamailio + rtpengine directly', pod.ports.upstream]] as const) {
      const kdir = join(dir, `kam-${port}`);
      // Kamailio's one node, written before it starts (it reads the table at start-up).
      await mkdir(join(kdir, 'kamailio-db'), { recursive: true });
      await writeDbTextFile(join(kdir, 'kamailio-db', 'rtpengine'), renderRtpengineTable([{ setid: 0, url: nodeUrl('127.0.0.1', port), weight: 1, disabled: false }]));
      const kam = await startLocalKamailio({ dir: kdir, sipPort: p.sip, httpPort: p.rpc, callee: { host: '127.0.0.1', port: p.uas } });
      let up = 0; let failed = 0; let ended = 0; let firstAt = 0; let lastAt = 0;
      const onEvent = (e: TrafficEvent) => {
        const t = performance.now();
        if (e.kind === 'INV' && !firstAt) firstAt = t;
        if (e.kind === 'UP') up++;
        if (e.kind === 'FAIL' || e.kind === 'BYEFAIL') failed++;
        if (e.kind === 'END' || e.kind === 'FAIL' || e.kind === 'BYEFAIL') { ended++; lastAt = t; }
      };
      const traffic = await startTraffic({ dir: kdir, kamailio: kam.sip, uacPort: p.uac, uasPort: p.uas, echoPort: p.echo, controlPort: p.sippControl, callerRtpPort: p.callerRtp,
        uacMediaPort: p.uacMedia, rate: 20000, durationMinMs: 1, durationMaxMs: 1, maxCalls: calls, concurrencyLimit: 50 }, onEvent);
      await Promise.race([traffic.uac.exited, new Promise((r) => setTimeout(r, 300_000))]);
      await traffic.stop();
      await kam.stop();
      const cps = ended / ((lastAt - firstAt) / 1000);
      ctx.log(`${label}: ${ended} calls in ${((lastAt - firstAt) / 1000).toFixed(1)} s → ${cps.toFixed(0)} calls/s, ${failed} failed`);
      rows.push({ suite: 'media', name: `call set-up rate (INVITE→200→ACK→BYE→200), ${label}`, unit: 'calls/s', value: Math.round(cps), note: `${calls} calls, 50 at once, SIPp ↔ Kamailio (4 workers); ${up} set up, ${failed} failed` });
    }
    const [viaSidecar, direct] = [rows[0]!.value, rows[1]!.value];
    rows.push({ suite: 'media', name: 'set-up rate through the sidecar relative to rtpengine directly', unit: 'ratio', value: Number((viaSidecar / direct).toFixed(2)),
      note: 'SIPp, Kamailio, sidecar and rtpengine share the 2 cores: two runs here gave 1.10 and 0.80' });
  } finally {
    await pods.stopAll().catch(() => undefined);
    await allocator.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

const suite: Suite = {
  name: 'media',
  needs: ['rtpengine', 'kamailio', 'sipp'],
  async run(ctx) {
    return [...(await setupRate(ctx)), ...(await callsBeforeGap(ctx))];
  },
};
export default suite;
