// No kernel module (this machine): the sidecar warns, runs rtpengine in userspace (--table=-1),
// exports rtpengine_k8s_kernel_forwarding 0, and `--require-kernel` makes it fatal instead —
// releasing the allocation it took. Also `rtpengine-k8s status` against a running sidecar.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { requires } from '../support/require.js';
import { freePort, freePortRange } from '../support/ports.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { createRegistry } from '../../src/metrics.js';
import { parseOptions } from '../../src/config.js';
import { startAllocator } from '../../src/allocator/allocator.js';
import { AllocatorClient } from '../../src/allocator/client.js';
import { parseTableRange } from '../../src/allocator/tables.js';
import { startSidecar, type FullSidecarConfig } from '../../src/sidecar/main.js';
import { sidecarOptions } from '../../src/sidecar/options.js';
import { proxyOptions } from '../../src/sidecar/proxy-options.js';
import { collectStatus, renderStatusTable } from '../../src/sidecar/status-command.js';

async function setup() {
  const dir = await mkdtemp(join(tmpdir(), 'rtpe-us-'));
  const alloc = await startAllocator({
    node: 'n', socket: join(dir, 'a.sock'), tableRange: parseTableRange('0-63'),
    pools: [{ name: 'lo', cidr: '127.0.3.0/24', rangeStart: '127.0.3.10' }],
    stateFile: join(dir, 'state.json'), procRoot: join(dir, 'no-module'), leaseTtlMs: 60_000, sweepIntervalMs: 5000,
  }, { log: silentLogger });
  const { min, max } = await freePortRange(20);
  const uid = randomUUID();
  const config = async (extra: string[] = []) => parseOptions({ ...sidecarOptions, ...proxyOptions }, [
    '--allocator-socket', alloc.socket, '--rtpengine-mode', 'exec', '--run-dir', join(dir, 'run'), '--proc-root', join(dir, 'no-module'),
    '--media-address-mode', 'none', '--no-deletion-cost', '--ng-listen', `127.0.0.1:${await freePort()}`,
    '--ng-upstream', `127.0.0.1:${await freePort()}`, '--control-listen', '127.0.0.1:0', '--port-min', String(min), '--port-max', String(max),
    '--delete-delay-seconds', '0', '--drain-deadline-seconds', '5', '--drain-linger-seconds', '0', '--rtpengine-options', '{"num-threads":2}', ...extra,
  ], { POD_NAME: 'rtpe-u', POD_NAMESPACE: 'media', POD_UID: uid, NODE_NAME: 'n' }).config as FullSidecarConfig;
  const client = new AllocatorClient({ socket: alloc.socket });
  return { dir, alloc, uid, config, client, close: async () => { client.close(); await alloc.close(); await rm(dir, { recursive: true, force: true }); } };
}

test('module absent: loud warning, userspace table -1, kernel_forwarding 0, status table', { skip: requires('rtpengine') }, async () => {
  const s = await setup();
  const lines: string[] = [];
  const log = createLogger({ level: 'info' }, { write: (l: string) => { lines.push(l); } });
  const registry = createRegistry({ defaultMetrics: false });
  const h = await startSidecar(await s.config(), { log, registry });
  try {
    const st = h.status();
    assert.equal(st.kernelForwarding, false);
    assert.ok(readFileSync(`/proc/${st.rtpenginePid}/cmdline`, 'utf8').split('\0').includes('--table=-1'));
    assert.equal(lines.filter((l) => l.includes('KERNEL FORWARDING UNAVAILABLE')).length, 1, 'exactly one loud warning');
    assert.match(await registry.metrics(), /^rtpengine_k8s_kernel_forwarding 0$/m);
    assert.deepEqual(st.steps.find((x) => x.step === 'iptables rules')?.outcome, 'skipped');

    const { rows } = await collectStatus({ runDir: join(s.dir, 'run'), allocatorSocket: s.alloc.socket });
    assert.equal(rows.length, 1);
    assert.deepEqual({ ...rows[0], ng: undefined }, { pod: 'media/rtpe-u', table: String(h.allocation.table), mediaIp: '127.0.3.10', ng: undefined, sessions: '0', state: 'serving', kernel: 'userspace' });
    assert.match(renderStatusTable(rows), /^POD +TABLE +MEDIA IP +NG ADDRESS +SESSIONS +STATE +FORWARDING\nmedia\/rtpe-u +\d+ +127\.0\.3\.10 /);
  } finally {
    assert.equal(await h.stop('test'), 0);
    await s.close();
  }
});

test('--require-kernel without the module is fatal, and the allocation taken is released', { skip: requires('rtpengine') }, async () => {
  const s = await setup();
  try {
    await assert.rejects(startSidecar(await s.config(['--require-kernel']), { log: silentLogger, registry: createRegistry({ defaultMetrics: false }) }),
      (e: any) => e.code === 'KERNEL_REQUIRED' && e.exitCode === 69);
    const after = await s.client.get({ uid: s.uid }).then((a) => a.state, (e: any) => e.code);
    assert.notEqual(after, 'active');
  } finally {
    await s.close();
  }
});
