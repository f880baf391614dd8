// `rtpengine-k8s local` (what `npm start` runs) as a user would: the process starts an allocator and
// two sidecars with real rtpengines, prints the table and what it skipped, answers ng on the
// printed ports, and a Ctrl-C (SIGINT) stops everything cleanly with exit 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../support/require.js';
import { freePort } from '../support/ports.js';
import { pingOnce } from '../support/rtpengine.js';
import { collectStatus } from '../../src/sidecar/status-command.js';

test('local: two sidecars with real rtpengine, status table, skipped steps explained, Ctrl-C exits 0', { skip: requires('rtpengine'), timeout: 180_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rtpe-local-'));
  const ng = await freePort();
  await freePort(); // ng + 1 is used by the second sidecar; keep it from other tests in this process
  const ctl = await freePort();
  const up = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'local', '--dir', dir, '--ng-port', String(ng), '--control-port', String(ctl),
    '--rtpengine-ng-port', String(up), '--media-port-base', '45000', '--refresh-ms', '300'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c) => { out += c; });
  child.stderr.on('data', (c) => { out += c; });
  const exit = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  try {
    const end = Date.now() + 90_000;
    while (!/local\/local-b +\d+ +127\.0\.1\.\d+ .* serving/.test(out)) {
      if (Date.now() > end || child.exitCode !== null) throw new Error(`local did not come up:\n${out.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(out, /note: kernel forwarding: (skipped|on)/);
    assert.match(out, /note: pod-deletion-cost: skipped/);
    assert.ok(await pingOnce('127.0.0.1', ng, 1000), 'sidecar a answers ng');
    assert.ok(await pingOnce('127.0.0.1', ng + 1, 1000), 'sidecar b answers ng');
    const { rows } = await collectStatus({ runDir: join(dir, 'run'), allocatorSocket: join(dir, 'allocator.sock') });
    assert.deepEqual(rows.map((r) => [r.pod, r.state]), [['local/local-a', 'serving'], ['local/local-b', 'serving']]);
    assert.notEqual(rows[0]!.table, rows[1]!.table, 'distinct tables');
    assert.notEqual(rows[0]!.mediaIp, rows[1]!.mediaIp, 'distinct media IPs');
    child.kill('SIGINT');
    assert.equal(await exit, 0, out.slice(-3000));
    assert.match(out, /allocator stopped/);
    assert.equal(await pingOnce('127.0.0.1', up, 300), false, 'rtpengine stopped');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});
