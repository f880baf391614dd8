// Suite 'allocator': Acquire/Release latency and throughput over the unix socket, a 64-pod
// burst, and allocation time in a 99.9%-full /16 (the interval finder vs whereabouts' scan).
import { mkdtempSync, rmSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Suite, Row } from './suite.js';
import { summarize, median } from './stats.js';
import { startAllocator } from '../src/allocator/allocator.js';
import { AllocatorClient } from '../src/allocator/client.js';
import { AddressPool } from '../src/allocator/pools.js';
import { silentLogger } from '../src/log.js';
import { ProcRtpengine } from '../test/support/proc-rtpengine.js';

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

    // 1b. The durability floor on this disk: one state write = temp write + fsync + rename + dir fsync.
    {
      const fsync: number[] = [];
      const path = join(dir, 'floor.json');
      const body = JSON.stringify({ pad: 'x'.repeat(4000) });
      for (let i = 0; i < (ctx.quick ? 50 : 300); i++) {
        const t = performance.now();
        const fh = await fsp.open(`${path}.tmp`, 'w');
        await fh.writeFile(body); await fh.sync(); await fh.close();
        await fsp.rename(`${path}.tmp`, path);
        const d = await fsp.open(dir, 'r'); await d.sync(); await d.close();
        fsync.push(performance.now() - t);
      }
      const f = summarize(fsync);
      rows.push({ suite: S, name: 'durability floor: one atomic state write (2 fsyncs)', unit: 'ms', value: f.p50, p99: f.p99, note: 'every Acquire/Release waits for one such write' });
    }
    const h = await startAllocator({
      node: 'bench', socket: join(dir, 'a.sock'), tableRange: { min: 0, max: 63 }, pools: [{ name: 'media', cidr: '10.40.0.0/16' }],
      stateFile: join(dir, 'state.json'), procRoot: proc.root, leaseTtlMs: 60_000, sweepIntervalMs: 5000,
    }, { log: silentLogger, procFs: proc });
    const c = new AllocatorClient({ socket: join(dir, 'a.sock') });
    try {
      // 2. Sequential Acquire then Release (each persisted with fsync before the reply).
      const acq: number[] = [];
      const rel: number[] = [];
      const rounds = ctx.quick ? 200 : 1500;
      await c.health();
      const t0 = performance.now();
      for (let i = 0; i < rounds; i++) {
        const pod = { namespace: 'bench', name: `p-${i}`, uid: `u-${i}` };
        let t = performance.now();
        await c.acquire({ pod });
        acq.push(performance.now() - t);
        t = performance.now();
        await c.release({ uid: pod.uid });
        rel.push(performance.now() - t);
      }
      const wall = (performance.now() - t0) / 1000;
      const a = summarize(acq), r = summarize(rel);
      rows.push({ suite: S, name: 'Acquire over unix socket (sequential)', unit: 'ms', value: a.p50, p99: a.p99, goal: 'p99 ≤ 2 ms', met: a.p99 <= 2 });
      rows.push({ suite: S, name: 'Release over unix socket (sequential, del N)', unit: 'ms', value: r.p50, p99: r.p99, goal: 'p99 ≤ 2 ms', met: r.p99 <= 2 });
      rows.push({ suite: S, name: 'Acquire+Release pairs, sequential', unit: 'ops/s', value: (2 * rounds) / wall });

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
      ctx.log(`state file writes: ${(h.store as { writes?: number }).writes ?? '?'}`);
    } finally {
      c.close();
      await h.close();
      rmSync(dir, { recursive: true, force: true });
      proc.remove();
    }
    return rows;
  },
};
export default suite;
