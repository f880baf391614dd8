// The cost of rtpengine's call persistence (--redis/--redis-write, as the sidecar renders it): call
// set-up (offer+answer+delete) with and without Redis, side by side in one run on two daemons
// interleaved call by call; and the time to restore 1,000 calls after a kill -9.
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import type { Row, Suite } from './suite.js';
import { summarize, median } from './stats.js';
import { freePort, freePortRange } from '../test/support/ports.js';
import { pingOnce } from '../test/support/rtpengine.js';
import { startRedis } from '../test/support/redis.js';
import { sampleSdp } from '../test/support/ng-sample.js';
import { NgUdpClient } from '../src/ng/client.js';
import { systemClock } from '../src/clock.js';
import { RedisClient, parseRedisUrl, rtpengineRedisValue, type RedisTarget } from '../src/persistence/resp.js';
import { awaitRestore } from '../src/persistence/restore.js';

interface Daemon { proc: ChildProcess; ng: number; exited: Promise<void>; logs: () => string; restoreMs: () => number | undefined; stop(): Promise<void> }

/** rtpengine with room for 1,000 calls: 4 sockets each, so a raised descriptor limit and port range. */
async function daemon(ng: number, ports: { min: number; max: number }, redis?: RedisTarget): Promise<Daemon> {
  const args = ['--config-file=none', '--table=-1', '--delete-delay=0', '--foreground', '--log-stderr', '--interface=127.0.0.1',
    `--listen-ng=127.0.0.1:${ng}`, `--port-min=${ports.min}`, `--port-max=${ports.max}`, '--num-threads=2', '--log-level=6',
    ...(redis ? [`--redis=${rtpengineRedisValue(redis)}`, `--redis-write=${rtpengineRedisValue(redis)}`, '--redis-num-threads=2'] : [])];
  const proc = spawn('sh', ['-c', 'ulimit -n 16384 && exec rtpengine "$@"', 'rtpengine', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let restoreMs: number | undefined;
  const keep = (c: Buffer) => {
    out = (out + c.toString()).slice(-20_000);
    const m = /Redis restore time = (\d+) ms/.exec(out);
    if (m) restoreMs = Number(m[1]);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  for (let i = 0; !(await pingOnce('127.0.0.1', ng, 200)); i++) {
    if (proc.exitCode !== null || i > 150) throw new Error(`rtpengine did not start: ${out.slice(-2000)}`);
  }
  return { proc, ng, exited, logs: () => out, restoreMs: () => restoreMs, async stop() { if (proc.exitCode === null && proc.signalCode === null) { proc.kill('SIGTERM'); await exited; } } };
}

async function call(c: NgUdpClient, id: string, i: number, del = true): Promise<void> {
  const o = await c.command({ command: 'offer', 'call-id': id, 'from-tag': 'a', sdp: sampleSdp('127.0.0.1', 20000 + (i % 10000) * 4) });
  if (o.result !== 'ok') throw new Error(`offer: ${JSON.stringify(o)}`);
  const a = await c.command({ command: 'answer', 'call-id': id, 'from-tag': 'a', 'to-tag': 'b', sdp: sampleSdp('127.0.0.1', 60000 - (i % 10000) * 4) });
  if (a.result !== 'ok') throw new Error(`answer: ${JSON.stringify(a)}`);
  if (del) await c.command({ command: 'delete', 'call-id': id, 'from-tag': 'a' });
}

const suite: Suite = {
  name: 'persistence',
  needs: ['rtpengine', 'redis-server'],
  async run(ctx) {
    const redis = await startRedis();
    const rows: Row[] = [];
    const run = randomBytes(4).toString('hex');
    const daemons: Daemon[] = [];
    try {
      // --- set-up cost: two daemons, one with Redis, interleaved call by call ----------------------
      const plain = await daemon(await freePort(), await freePortRange(200));
      const persisted = await daemon(await freePort(), await freePortRange(200), parseRedisUrl(redis.url(1)));
      daemons.push(plain, persisted);
      const targets = [{ name: 'without Redis', d: plain }, { name: 'with Redis', d: persisted }].map((t) => ({
        ...t, c: new NgUdpClient({ host: '127.0.0.1', port: t.d.ng, timeoutMs: 2000, retries: 1 }), lat: [] as number[], busyMs: [] as number[],
      }));
      const warm = ctx.quick ? 50 : 300;
      const rounds = ctx.quick ? 2 : 5;
      const perRound = ctx.quick ? 200 : 1000;
      for (let i = 0; i < warm; i++) for (const t of targets) await call(t.c, `w-${run}-${i}`, i);
      for (let r = 0; r < rounds; r++) {
        const busy = targets.map(() => 0);
        for (let i = 0; i < perRound; i++) {
          // Alternate which target goes first, so neither always follows the other.
          const order = (i + r) % 2 ? [1, 0] : [0, 1];
          for (const k of order) {
            const t = targets[k]!;
            const t0 = performance.now();
            await call(t.c, `b-${run}-${r}-${i}`, i);
            const ms = performance.now() - t0;
            t.lat.push(ms);
            busy[k]! += ms;
          }
        }
        targets.forEach((t, k) => t.busyMs.push(busy[k]!));
      }
      const tput: number[] = [];
      for (const t of targets) {
        const s = summarize(t.lat);
        const callsPerS = median(t.busyMs.map((ms) => perRound / (ms / 1000)));
        tput.push(callsPerS);
        rows.push({ suite: 'persistence', name: `offer+answer+delete, sequential, ${t.name}: throughput`, unit: 'calls/s', value: callsPerS, note: `median of ${rounds} rounds of ${perRound}` });
        rows.push({ suite: 'persistence', name: `offer+answer+delete, sequential, ${t.name}: latency per call`, unit: 'ms', value: s.p50, p99: s.p99 });
        ctx.log(`${t.name}: ${callsPerS.toFixed(0)} calls/s, p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms`);
        t.c.close();
      }
      rows.push({ suite: 'persistence', name: 'offer+answer+delete throughput, with / without Redis', unit: 'ratio', value: tput[1]! / tput[0]! });
      await plain.stop();
      await persisted.stop();

      // --- restore time: 1,000 calls, kill -9, start again over the same database ----------------
      const n = ctx.quick ? 200 : 1000;
      const target = parseRedisUrl(redis.url(2))!;
      const ng = await freePort();
      const ports = await freePortRange(n * 4 + 200);
      let d = await daemon(ng, ports, target);
      daemons.push(d);
      const c = new NgUdpClient({ host: '127.0.0.1', port: ng, timeoutMs: 2000, retries: 1 });
      const ids = Array.from({ length: n }, (_, i) => `r-${run}-${i}@bench`);
      let next = 0;
      await Promise.all(Array.from({ length: 8 }, async () => { while (next < n) { const i = next++; await call(c, ids[i]!, i, false); } }));
      // rtpengine writes a call to Redis after answering it (its own thread): a call answered just
      // before a crash may not be stored yet. Measure that lag, then crash with all n stored, so
      // the restore figure is the restore's alone.
      const tAnswered = performance.now();
      const wc = await RedisClient.connect(target);
      let stored = 0;
      try {
        for (;;) {
          stored = ((await wc.command(['EXISTS', ...ids])) as number);
          if (stored >= n || performance.now() - tAnswered > 30_000) break;
          await new Promise((r) => setTimeout(r, 5));
        }
      } finally { wc.close(); }
      if (stored < n) throw new Error(`only ${stored} of ${n} calls reached Redis within 30 s of their answers`);
      const writeLag = performance.now() - tAnswered;
      rows.push({ suite: 'persistence', name: `Redis write lag: last of ${n.toLocaleString('en')} calls answered → all stored`, unit: 'ms', value: writeLag });
      ctx.log(`write lag: all ${n} calls in Redis ${writeLag.toFixed(0)} ms after the last answer`);
      d.proc.kill('SIGKILL');
      await d.exited;
      const t0 = performance.now();
      d = await daemon(ng, ports, target);
      daemons.push(d);
      const tUp = performance.now() - t0;
      const rc = await RedisClient.connect(target);
      let res;
      try { res = await awaitRestore({ ng: c, redis: rc, clock: systemClock }, ids, { deadlineMs: 120_000, pollMs: 50, concurrency: 16 }); } finally { rc.close(); }
      const total = performance.now() - t0;
      const own = d.restoreMs();
      c.close();
      if (res.restored.length !== n) throw new Error(`restored ${res.restored.length} of ${n} (lost ${res.lost.length}, pending ${res.pending.length})`);
      rows.push({ suite: 'persistence', name: `restore ${n.toLocaleString('en')} calls after kill -9: start → every call answers query`, unit: 'ms', value: total, note: `rtpengine up (pong) after ${tUp.toFixed(0)} ms` });
      if (own !== undefined) rows.push({ suite: 'persistence', name: `restore ${n.toLocaleString('en')} calls: rtpengine's own "Redis restore time"`, unit: 'ms', value: own });
      ctx.log(`restore of ${n}: ${total.toFixed(0)} ms to all answering (pong after ${tUp.toFixed(0)} ms; rtpengine says ${own} ms)`);
    } finally {
      for (const d of daemons) await d.stop();
      await redis.stop();
    }
    return rows;
  },
};
export default suite;
