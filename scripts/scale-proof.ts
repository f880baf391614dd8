// `npm run scale-proof`: the scripted scale-in proof with live media. Start N pods with SIPp
// traffic, ramp to the target number of concurrent calls, scale out by one (the new pod must
// receive new calls within 5 s of ready), then scale in to one while calls keep arriving and end
// naturally. Writes report.json and sessions.svg; exits 1 when any call is dropped.
import { mkdir, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../src/log.js';
import { LocalRun } from '../src/local/run.js';
import { localPorts } from '../src/local.js';
import { summaryText } from '../src/local/view.js';
import { sessionsChartSvg } from '../src/local/chart.js';

const { values: a } = parseArgs({
  options: {
    full: { type: 'boolean', default: false },
    'broken-drain': { type: 'boolean', default: false },
    out: { type: 'string', default: 'scale-proof-out' },
    // 34 consecutive loopback ports from here (ng, control, rtpengine ng: 8 each; SIP, RPC; SIPp 8).
    'port-base': { type: 'string', default: '23200' },
  },
});
// CI size (2 cores): 3 pods, ≥ 60 calls up at once. Full: 4 pods, ≥ 200 calls.
const plan = a.full
  ? { name: 'full', pods: 4, target: 200, rate: 14, minS: 10, maxS: 20 }
  : { name: 'ci', pods: 3, target: 60, rate: 5, minS: 10, maxS: 20 };
const NEW_POD_CALL_WITHIN_MS = 5000;

const base = Number(a['port-base']);
if (!Number.isInteger(base) || base < 1024 || base + 34 > 65535) throw new Error(`--port-base: expected a port 1024–65501, got ${a['port-base']}`);
const out = resolve(a.out);
await mkdir(out, { recursive: true });
const dir = join(tmpdir(), `rtpengine-k8s-scale-proof-${process.pid}`);
const logLines: string[] = [];
const log = createLogger({ level: 'info' }, { write: (l: string) => { logLines.push(l); } });
const say = (s: string) => process.stdout.write(`[scale-proof +${((Date.now() - t0) / 1000).toFixed(1)} s] ${s}\n`);
const t0 = Date.now();

const run = new LocalRun({
  dir, pods: plan.pods, traffic: true, rate: plan.rate, durationMinMs: plan.minS * 1000, durationMaxMs: plan.maxS * 1000,
  ports: localPorts({ ngPort: base, controlPort: base + 8, rtpengineNgPort: base + 16, mediaPortMin: 40000, mediaPortMax: 49999, sipPort: base + 24, rpcPort: base + 25, sippPortBase: base + 26 }),
  procRoot: join(dir, 'no-kernel-module'), kernel: false, rtpengineBinary: 'rtpengine', drainDeadlineSeconds: 120, brokenDrain: a['broken-drain'],
}, log);

const problems: string[] = [];
let peak = 0;
let newPod: { name: string; readyAfterMs?: number; firstCallAfterReadyMs?: number } | undefined;
let code = 1;
try {
  say(`plan ${plan.name}: ${plan.pods} pods, ${plan.rate} calls/s of ${plan.minS}–${plan.maxS} s, ramp to ≥ ${plan.target} concurrent calls, scale out to ${plan.pods + 1}, scale in to 1${a['broken-drain'] ? ' — with a BROKEN drain (pods killed at once)' : ''}`);
  await run.start();
  const up = () => run.media!.upCalls().length;
  const peakTimer = setInterval(() => { peak = Math.max(peak, up()); }, 200);
  await run.until(() => up() >= plan.target, 180_000, `${plan.target} concurrent calls`);
  say(`${up()} calls up with media on ${plan.pods} pods`);

  // Scale out: the new pod must get new calls within 5 s of being ready.
  const before = new Set(run.pods.pods.map((p) => p.name));
  run.note(`scale out to ${plan.pods + 1}`);
  await run.pods.scale(plan.pods + 1);
  const pod = run.pods.pods.find((p) => !before.has(p.name))!;
  newPod = { name: pod.name };
  await run.until(() => pod.readyAt !== undefined && pod.mediaIp !== undefined, 60_000, `${pod.name} ready`);
  newPod.readyAfterMs = pod.readyAt! - pod.createdAt;
  const firstCall = () => [...run.media!.calls.values()].filter((c) => c.remote?.ip === pod.mediaIp && c.upAt !== undefined).map((c) => c.upAt!).sort((x, y) => x - y)[0];
  await run.until(() => firstCall() !== undefined, 30_000, `a call on ${pod.name}`).catch(() => undefined);
  const first = firstCall();
  if (first === undefined) problems.push(`${pod.name} got no call within 30 s of ready`);
  else {
    newPod.firstCallAfterReadyMs = Math.max(0, Math.round(first - pod.readyAt!));
    if (newPod.firstCallAfterReadyMs > NEW_POD_CALL_WITHIN_MS) problems.push(`${pod.name}'s first call came ${newPod.firstCallAfterReadyMs} ms after ready (limit ${NEW_POD_CALL_WITHIN_MS})`);
  }
  say(`${pod.name} ready after ${newPod.readyAfterMs} ms; first call ${newPod.firstCallAfterReadyMs ?? '-'} ms after ready`);
  // Let the new pod fill up a little before the scale-in.
  await run.until(() => pod.sessions >= 5, 60_000, `${pod.name} holding calls`).catch(() => undefined);

  // Scale in to 1 while calls keep arriving: every deleted pod drains (preStop, SIGTERM).
  run.note('scale in to 1');
  say(`scale in to 1 with ${up()} calls up`);
  const deleting = run.pods.scale(1);
  await deleting;
  say('every deleted pod is gone');
  run.note('traffic stops');
  await run.traffic!.finish(plan.maxS * 1000 + 15_000);
  await run.traffic!.stop(); // reads the caller's last log lines
  clearInterval(peakTimer);
  const s = run.summary();
  if (peak < plan.target) problems.push(`peak concurrency ${peak} < ${plan.target}`);
  if (s.dropped > 0) problems.push(`${s.dropped} call(s) dropped`);
  if (s.inProgress > 0) problems.push(`${s.inProgress} call(s) never finished`);
  code = problems.length ? 1 : 0;
} catch (e) {
  problems.push(`run failed: ${(e as Error).message}`);
} finally {
  await run.close().catch(() => undefined);
}
const s = run.summary();
const report = {
  plan, brokenDrain: a['broken-drain'], passed: code === 0, problems, durationS: (Date.now() - t0) / 1000, peakConcurrentCalls: peak, newPod,
  calls: { placed: s.placed, completed: s.completed, failed: s.failed, failedOver: s.failedOver, byeFailed: s.byeFailed, mediaDropped: s.mediaDropped, dropped: s.dropped, inProgress: s.inProgress },
  worstMediaGapMs: s.worstMediaGapMs, crossCheck: s.crossCheck, unansweredQueriesBy: run.sampler?.unansweredBy, loopDelayMaxMs: s.loopDelayMaxMs,
  podDrainSeconds: Object.fromEntries(s.pods.filter((p) => p.drainSeconds !== undefined).map((p) => [p.pod, Number(p.drainSeconds!.toFixed(1))])),
  droppedCalls: run.droppedCalls().slice(0, 50),
  pods: s.pods, events: run.events.map((e) => ({ s: (e.t - run.startedAt) / 1000, what: e.what })),
};
await writeFile(join(out, 'report.json'), JSON.stringify(report, null, 2) + '\n');
await writeFile(join(out, 'sessions.svg'), await sessionsChartSvg(run.timeline, run.events, run.startedAt,
  `scale-proof (${plan.name}${a['broken-drain'] ? ', broken drain' : ''}): sessions per pod — ${s.placed} calls, ${s.dropped} dropped`));
await writeFile(join(out, 'run.log'), logLines.join(''));
process.stdout.write(`\n${summaryText(s)}\npeak ${peak} concurrent calls; ${JSON.stringify(newPod)}\n`);
process.stdout.write(`${code === 0 ? 'PASS' : `FAIL: ${problems.join('; ')}`}\nreport: ${join(out, 'report.json')}  picture: ${join(out, 'sessions.svg')}  log: ${join(out, 'run.log')}\n`);
await rm(dir, { recursive: true, force: true });
process.exit(code);
