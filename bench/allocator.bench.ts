// Suite 'allocator': Acquire/Release latency and throughput over the unix socket against a real
// allocator process, the disk's durability floor, a 64-pod burst, and allocation time in a
// 99.9%-full /16 (the interval finder vs whereabouts' scan). Latencies: median over runs.
import { mkdtempSync, rmSync } from 'node:fs';
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

/** A real allocator process (the crash test's child), ready once it prints a line. */
function startChild(config: AllocatorConfig): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new AllocError('ALLOC_UNAVAILABLE', { target: config.socket, reason: `allocator child exited ${code}` })));
  });
}

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
    const perRun = (xs: number[][], pick: (s: ReturnType<typeof summarize>) => number) => median(xs.map((x) => pick(summarize(x))));
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
      rows.push({ suite: S, name: 'durability floor: one atomic state write (fdatasync + dir fsync)', unit: 'ms', value: perRun(floorRuns, (x) => x.p50), p99: perRun(floorRuns, (x) => x.p99), note: `every Acquire/Release waits for one such write; p99 per run ${range(floorRuns, (x) => x.p99)}` });
    }

    // The allocator runs in its own process, as in production (the sidecar is another process).
    const socket = join(dir, 'a.sock');
    const config: AllocatorConfig = {
      node: 'bench', socket, tableRange: { min: 0, max: 63 }, pools: [{ name: 'media', cidr: '10.40.0.0/16' }],
      stateFile: join(dir, 'state.json'), procRoot: proc.root, leaseTtlMs: 60_000, sweepIntervalMs: 5000,
    };
    const child = await startChild(config);
    const c = new AllocatorClient({ socket });
    try {
      // 2. Sequential Acquire then Release on one client (one channel), each persisted before the reply.
      // Warm-up first (JIT, connection); then several runs, each with its own p50/p99; median of runs.
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
      for (let i = 0; i < 100; i++) await pair();
      const acqRuns: number[][] = [];
      const relRuns: number[][] = [];
      const rounds = ctx.quick ? 150 : 400;
      let pairs = 0;
      let wall = 0;
      for (let r = 0; r < runs; r++) {
        const acq: number[] = [];
        const rel: number[] = [];
        const t0 = performance.now();
        for (let i = 0; i < rounds; i++) await pair(acq, rel);
        wall += performance.now() - t0;
        pairs += rounds;
        acqRuns.push(acq);
        relRuns.push(rel);
      }
      // The transport floor: Get answers from memory (no state write, no /proc read), so it is the
      // gRPC unix-socket round trip with (de)serialisation of one allocation.
      const held = { namespace: 'bench', name: 'held', uid: 'held' };
      await c.acquire({ pod: held });
      const getRuns: number[][] = [];
      for (let r = 0; r < runs; r++) {
        const xs: number[] = [];
        for (let i = 0; i < rounds; i++) {
          const t = performance.now();
          await c.get({ uid: held.uid });
          xs.push(performance.now() - t);
        }
        getRuns.push(xs);
      }
      await c.release({ uid: held.uid });
      rows.push({ suite: S, name: 'Get over unix socket (transport floor: no write)', unit: 'ms', value: perRun(getRuns, (x) => x.p50), p99: perRun(getRuns, (x) => x.p99), note: `p99 per run ${range(getRuns, (x) => x.p99)}` });
      const a99 = perRun(acqRuns, (x) => x.p99);
      const r99 = perRun(relRuns, (x) => x.p99);
      const note = (xs: number[][]) => `${runs} runs × ${rounds}, median of runs; p99 per run ${range(xs, (x) => x.p99)}; floor p99 ${perRun(floorRuns, (x) => x.p99).toFixed(2)} ms`;
      rows.push({ suite: S, name: 'Acquire over unix socket (sequential)', unit: 'ms', value: perRun(acqRuns, (x) => x.p50), p99: a99, goal: 'p99 ≤ 2 ms', met: a99 <= 2, note: note(acqRuns) });
      rows.push({ suite: S, name: 'Release over unix socket (sequential, del N)', unit: 'ms', value: perRun(relRuns, (x) => x.p50), p99: r99, goal: 'p99 ≤ 2 ms', met: r99 <= 2, note: note(relRuns) });
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
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
      proc.remove();
    }
    return rows;
  },
};
export default suite;
