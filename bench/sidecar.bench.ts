// Sidecar start to ready with a local allocator (file store, unix socket), excluding rtpengine's
// own start-up: exec mode (real rtpengine, its spawn-to-pong time subtracted) and config mode
// (config file written, no daemon). Goal from the issue: ≤ 300 ms.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Row, Suite } from './suite.js';
import { summarize, median } from './stats.js';
import { silentLogger } from '../src/log.js';
import { createRegistry } from '../src/metrics.js';
import { parseOptions } from '../src/config.js';
import { startAllocator } from '../src/allocator/allocator.js';
import { parseTableRange } from '../src/allocator/tables.js';
import { startSidecar, type FullSidecarConfig } from '../src/sidecar/main.js';
import { sidecarOptions } from '../src/sidecar/options.js';
import { proxyOptions } from '../src/sidecar/proxy-options.js';
import { freePort, freePortRange } from '../test/support/ports.js';

const suite: Suite = {
  name: 'sidecar',
  needs: ['rtpengine'],
  async run(ctx) {
    const dir = await mkdtemp(join(tmpdir(), 'rtpe-bench-sidecar-'));
    const alloc = await startAllocator({
      node: 'bench', socket: join(dir, 'a.sock'), tableRange: parseTableRange('0-63'),
      pools: [{ name: 'lo', cidr: '127.0.2.0/24', rangeStart: '127.0.2.10' }],
      stateFile: join(dir, 'state.json'), procRoot: join(dir, 'no-module'), leaseTtlMs: 60_000, sweepIntervalMs: 5000,
    }, { log: silentLogger });
    const runs = ctx.quick ? 4 : 12;
    const rows: Row[] = [];
    const steps = new Map<string, number[]>();
    try {
      for (const mode of ['exec', 'config'] as const) {
        const ready: number[] = [];
        for (let i = 0; i < runs; i++) {
          const { min, max } = await freePortRange(20);
          const { config } = parseOptions({ ...sidecarOptions, ...proxyOptions }, [
            '--allocator-socket', alloc.socket, '--rtpengine-mode', mode, '--run-dir', join(dir, 'run'),
            '--rtpengine-config', join(dir, `rtpengine-${i}.conf`), '--rtpengine-era', mode === 'config' ? 'mr11' : 'auto',
            '--proc-root', join(dir, 'no-module'), '--media-address-mode', 'none', '--no-deletion-cost',
            '--ng-listen', `127.0.0.1:${await freePort()}`, '--ng-upstream', `127.0.0.1:${await freePort()}`, '--control-listen', '127.0.0.1:0',
            '--port-min', String(min), '--port-max', String(max), '--delete-delay-seconds', '0', '--rtpengine-options', '{"num-threads":2}',
            '--drain-deadline-seconds', '2', '--drain-linger-seconds', '0',
          ], { POD_NAME: `bench-${i}`, POD_NAMESPACE: 'bench', POD_UID: randomUUID(), NODE_NAME: 'bench' });
          const h = await startSidecar(config as FullSidecarConfig, { log: silentLogger, registry: createRegistry({ defaultMetrics: false }) });
          ready.push(h.readyMs);
          let prev = 0;
          for (const s of h.status().steps) {
            const k = `${mode}: ${s.step}`;
            steps.set(k, [...(steps.get(k) ?? []), s.atMs - prev]);
            prev = s.atMs;
          }
          await h.stop('bench');
        }
        const s = summarize(ready);
        ctx.log(`${mode}: ready ${ready.map((x) => x.toFixed(0)).join(' ')} ms`);
        rows.push({
          suite: 'sidecar', name: `start to ready, ${mode} mode, local allocator${mode === 'exec' ? ' (rtpengine start excluded)' : ''}`,
          unit: 'ms', value: s.p50, p99: s.p99, goal: '≤ 300 ms', met: s.p50 <= 300, note: `${runs} starts, new pod UID each`,
        });
      }
      for (const [k, v] of steps) ctx.log(`  step ${k}: median ${median(v).toFixed(0)} ms`);
    } finally {
      await alloc.close();
      await rm(dir, { recursive: true, force: true });
    }
    return rows;
  },
};
export default suite;
