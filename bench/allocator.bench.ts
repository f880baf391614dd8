// Suite 'allocator': Acquire/Release latency and throughput over the unix socket against a real
// allocator process beside its two floors (one durable state write; grpc-js answering constants)
// and both together (grpc-js answering a constant after one durable write through the same store),
// a 64-pod burst, and allocation time in a 99.9%-full /16 (the interval finder vs whereabouts'
// scan). Latencies: p50/p99 over all runs' samples.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Suite, Row } from './suite.js';
import { summarize, median } from './stats.js';
import type { AllocatorConfig } from '../src/allocator/allocator.js';
import { FileStore } from '../src/allocator/store-file.js';
import type { Allocation } from '../src/allocator/store.js';
import { AllocatorClient } from '../src/allocator/client.js';
import { AddressPool } from '../src/allocator/pools.js';
import { AllocError } from '../src/errors.js';
import { ProcRtpengine } from '../test/support/proc-rtpengine.js';

const CHILD = fileURLToPath(new URL('../test/support/allocator-child.ts', import.meta.url));
const FLOOR = fileURLToPath(new URL('./grpc-floor.ts', import.meta.url));

/** A child process (`node --import tsx file ...args`), ready once it prints a line. */
function spawnReady(file: string, args: string[], target: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new AllocError('ALLOC_UNAVAILABLE', { target, reason: `bench child ${file} exited ${code}` })));
  });
}

/** A real allocator process (the crash test's child). */
const startChild = (config: AllocatorConfig) => spawnReady(CHILD, [JSON.stringify(config)], config.socket);

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode) { resolve(); return; }
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => { clearTimeout(t); resolve(); });
    child.kill('SIGTERM');
  });
}

const suite: Suite = {
  name: 'allocator',
  async run(ctx) {
    const rows: Row[] = [];
    const S = 'allocator';

    // 1. Pool math: 99.9%-full /16 (65,534 usable, 65 free scattered), allocate + free one address.
    {
      const pool = AddressPool.fromConfig({ name: 'big', cidr: '10.0.0.0/16' });
      for (let o = 1n; o <= 65534n; o++) pool.take(o);
      const free = new Set<bigint>();
      while (free.size < 65) free.add(BigInt(1 + Math.floor(Math.random() * 65534)));
      for (const o of free) pool.free(o);
      const samples: number[] = [];
      const n = ctx.quick ? 2000 : 20000;
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        const o = pool.lowestFree()!;
        pool.take(o);
        samples.push(performance.now() - t0);
        pool.free(o);
      }
      const s = summarize(samples.map((ms) => ms * 1000));
      rows.push({ suite: S, name: 'allocate in a 99.9%-full /16', unit: 'µs', value: s.p50, p99: s.p99, goal: '≤ 1 ms', met: s.p99 <= 1000 });
    }

    const dir = mkdtempSync(join(tmpdir(), 'alloc-bench-'));
    const proc = new ProcRtpengine();
    const runs = ctx.quick ? 2 : 5;
    const range = (xs: number[][], pick: (s: ReturnType<typeof summarize>) => number) => xs.map((x) => pick(summarize(x)).toFixed(2)).join(' / ');

    // 1b. The durability floor on this disk: one state write exactly as the store does it
    // (temp file, fdatasync, rename, fsync of the directory), timed through FileStore.update.
    const floorRuns: number[][] = [];
    {
      const store = new FileStore(join(dir, 'floor', 'state.json'));
      await store.load();
      const a: Allocation = {
        pod: { namespace: 'bench', name: 'floor', uid: 'floor' }, node: 'bench', table: 0, state: 'active',
        addresses: [{ pool: 'media', ip: '10.40.0.1', prefixLength: 16, gateway: '', offset: '1' }], createdAt: 1, renewedAt: 1, leaseExpiresAt: 1,
      };
      await store.create(a);
      for (let r = 0; r < runs; r++) {
        const xs: number[] = [];
        for (let i = 0; i < (ctx.quick ? 100 : 300); i++) {
          const t = performance.now();
          await store.update({ ...a, renewedAt: i });
          xs.push(performance.now() - t);
        }
        floorRuns.push(xs);
      }
      await store.close();
      const w = summarize(floorRuns.flat());
      rows.push({ suite: S, name: 'durability floor: one atomic state write (fdatasync + dir fsync)', unit: 'ms', value: w.p50, p99: w.p99, note: `every Acquire/Release waits for one such write; p99 per run ${range(floorRuns, (x) => x.p99)}` });
    }

    // The allocator runs in its own process, as in production (the sidecar is another process).
    // Beside it, the gRPC floor: the same service from the same proto, answering constants.
    const socket = join(dir, 'a.sock');
    const floorSocket = join(dir, 'floor.sock');
    const bothSocket = join(dir, 'both.sock');
    const config: AllocatorConfig = {
      node: 'bench', socket, tableRange: { min: 0, max: 63 }, pools: [{ name: 'media', cidr: '10.40.0.0/16' }],
      stateFile: join(dir, 'state.json'), procRoot: proc.root, leaseTtlMs: 60_000, sweepIntervalMs: 5000,
    };
    const child = await startChild(config);
    const floorChild = await spawnReady(FLOOR, [floorSocket], floorSocket);
    mkdirSync(join(dir, 'both'));
    const bothChild = await spawnReady(FLOOR, [bothSocket, join(dir, 'both', 'state.json')], bothSocket);
    const c = new AllocatorClient({ socket });
    const fc = new AllocatorClient({ socket: floorSocket });
    const bc = new AllocatorClient({ socket: bothSocket });
    try {
      // 2. Sequential Acquire then Release on one client (one channel), each persisted before the
      // reply. The allocator is a long-running daemon: measure it warm (JIT done, heap grown), so
      // 1,000 warm-up pairs first. Then runs that interleave the three measurements, so drift in
      // the machine's load hits them alike; p99 over all runs' samples, per-run p99 in the note.
      await c.health();
      let uid = 0;
      const pair = async (acq?: number[], rel?: number[]) => {
        const pod = { namespace: 'bench', name: `p-${uid}`, uid: `u-${uid++}` };
        let t = performance.now();
        await c.acquire({ pod });
        acq?.push(performance.now() - t);
        t = performance.now();
        await c.release({ uid: pod.uid });
        rel?.push(performance.now() - t);
      };
      const held = { namespace: 'bench', name: 'held', uid: 'held' };
      const warm = ctx.quick ? 200 : 1000;
      for (let i = 0; i < warm; i++) { await pair(); await fc.acquire({ pod: held }); await fc.release({ uid: 'held' }); await fc.get({ uid: 'held' }); await bc.acquire({ pod: held }); }
      await c.acquire({ pod: held });
      const acqRuns: number[][] = [];
      const relRuns: number[][] = [];
      const getRuns: number[][] = [];
      const floorAcqRuns: number[][] = [];
      const floorGetRuns: number[][] = [];
      const bothRuns: number[][] = [];
      const rounds = ctx.quick ? 150 : 400;
      let pairs = 0;
      let wall = 0;
      const timed = async (xs: number[], op: () => Promise<unknown>) => { const t = performance.now(); await op(); xs.push(performance.now() - t); };
      for (let r = 0; r < runs; r++) {
        const acq: number[] = [];
        const rel: number[] = [];
        const get: number[] = [];
        const fAcq: number[] = [];
        const fGet: number[] = [];
        const both: number[] = [];
        const t0 = performance.now();
        for (let i = 0; i < rounds; i++) await pair(acq, rel);
        wall += performance.now() - t0;
        pairs += rounds;
        // Get answers from memory (no state write, no /proc read): our server's transport cost.
        for (let i = 0; i < rounds; i++) await timed(get, () => c.get({ uid: held.uid }));
        for (let i = 0; i < rounds; i++) {
          await timed(fAcq, () => fc.acquire({ pod: held }));
          await timed(fGet, () => fc.get({ uid: held.uid }));
        }
        for (let i = 0; i < rounds; i++) await timed(both, () => bc.acquire({ pod: held }));
        acqRuns.push(acq);
        relRuns.push(rel);
        getRuns.push(get);
        floorAcqRuns.push(fAcq);
        floorGetRuns.push(fGet);
        bothRuns.push(both);
      }
      await c.release({ uid: held.uid });
      const pooled = (xs: number[][]) => summarize(xs.flat());
      const perRunP99 = (xs: number[][]) => range(xs, (x) => x.p99);
      const fa = pooled(floorAcqRuns);
      rows.push({ suite: S, name: 'gRPC floor: Acquire answered with a constant (grpc-js, same proto, own process)', unit: 'ms', value: fa.p50, p99: fa.p99,
        note: `no store, no /proc, no logic: grpc-js over the unix socket alone; p99 per run ${perRunP99(floorAcqRuns)}` });
      const fg = pooled(floorGetRuns);
      rows.push({ suite: S, name: 'gRPC floor: Get answered with a constant', unit: 'ms', value: fg.p50, p99: fg.p99, note: `p99 per run ${perRunP99(floorGetRuns)}` });
      const g = pooled(getRuns);
      rows.push({ suite: S, name: 'Get over unix socket (allocator, no write)', unit: 'ms', value: g.p50, p99: g.p99, note: `p99 per run ${perRunP99(getRuns)}` });
      const fl = pooled(floorRuns);
      const a = pooled(acqRuns);
      const rl = pooled(relRuns);
      const note = (xs: number[][]) => `${runs} runs × ${rounds} after ${warm} warm-up pairs, p99 over all; per run ${perRunP99(xs)}; ` +
        `floors p99: grpc-js ${fa.p99.toFixed(2)} ms + one durable write ${fl.p99.toFixed(2)} ms`;
      rows.push({ suite: S, name: 'Acquire over unix socket (sequential)', unit: 'ms', value: a.p50, p99: a.p99, goal: 'p99 ≤ 2 ms', met: a.p99 <= 2, note: note(acqRuns) });
      rows.push({ suite: S, name: 'Release over unix socket (sequential, del N)', unit: 'ms', value: rl.p50, p99: rl.p99, goal: 'p99 ≤ 2 ms', met: rl.p99 <= 2, note: note(relRuns) });
      // What the allocator adds over what it cannot beat here: a grpc-js round trip that waits for
      // one durable write. Measured as one RPC (the 'both' server), because the two floors timed
      // apart sum to less than an RPC holding both: while the write is on the disk every thread
      // of both processes sleeps, and waking them again costs what neither floor alone contains.
      const b = pooled(bothRuns);
      rows.push({ suite: S, name: 'both floors in one RPC: grpc-js answering a constant after one durable write (same FileStore, own process)', unit: 'ms', value: b.p50, p99: b.p99,
        note: `the two floors timed apart sum to ${(fa.p50 + fl.p50).toFixed(3)} ms at p50 (grpc-js ${fa.p50.toFixed(3)} + write ${fl.p50.toFixed(3)}): holding both in one RPC adds ${(b.p50 - fa.p50 - fl.p50).toFixed(3)} ms of wake-ups; p99 per run ${perRunP99(bothRuns)}` });
      const over = a.p50 - b.p50;
      const perRunOver = acqRuns.map((x, i) => summarize(x).p50 - summarize(bothRuns[i]!).p50);
      const overSum = a.p50 - (fa.p50 + fl.p50);
      rows.push({ suite: S, name: "Acquire's cost over the two floors (grpc-js constant server + one durable write, in one RPC, same run)", unit: 'ms', value: over, goal: 'p50 ≤ 0.3 ms', met: over <= 0.3,
        note: `Acquire p50 ${a.p50.toFixed(3)} − both-floors RPC p50 ${b.p50.toFixed(3)}; per run ${perRunOver.map((x) => x.toFixed(3)).join(' / ')}; ` +
          `over the floors timed apart (their sum, no wake-ups between them): ${overSum.toFixed(3)} ms` });
      rows.push({ suite: S, name: 'Acquire+Release pairs, sequential', unit: 'ops/s', value: (2 * pairs) / (wall / 1000) });

      // 3. 64-pod burst: all tables at once, then all released at once.
      const bursts: number[] = [];
      for (let b = 0; b < (ctx.quick ? 3 : 10); b++) {
        const pods = Array.from({ length: 64 }, (_, i) => ({ namespace: 'bench', name: `b-${b}-${i}`, uid: `b-${b}-${i}` }));
        const t = performance.now();
        await Promise.all(pods.map((pod) => c.acquire({ pod })));
        bursts.push(performance.now() - t);
        await Promise.all(pods.map((pod) => c.release({ uid: pod.uid })));
      }
      const bm = median(bursts);
      rows.push({ suite: S, name: '64-pod Acquire burst, wall time', unit: 'ms', value: bm, p99: Math.max(...bursts), goal: '≤ 200 ms', met: bm <= 200 });
    } finally {
      c.close();
      fc.close();
      bc.close();
      await stopChild(floorChild);
      await stopChild(bothChild);
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
      proc.remove();
    }
    return rows;
  },
};
export default suite;
