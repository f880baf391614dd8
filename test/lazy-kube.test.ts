// @kubernetes/client-node (~35 MB of heap, ~1 s to load) is loaded only by what talks to the
// Kubernetes API: the CLI, the file-store allocator and the sidecar without pod-deletion-cost run
// in a process where the library cannot even be resolved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProcRtpengine } from './support/proc-rtpengine.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Runs `args` under tsx with @kubernetes/client-node unresolvable; resolves with the outcome. */
function blocked(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', './test/support/block-kube-client.ts', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) => child.once('exit', (code) => { clearTimeout(killer); resolve({ code, out, err }); }));
}

test('the block works: importing the Kubernetes client fails in such a process', async () => {
  const r = await blocked(['--input-type=module', '-e', "await import('./src/kube/client.ts')"]);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /blocked by test: @kubernetes\/client-node/);
});

test('the CLI lists its commands without @kubernetes/client-node', async () => {
  const r = await blocked(['src/cli.ts', 'help']);
  assert.equal(r.code, 0, r.err);
  for (const c of ['allocator', 'sidecar', 'drain', 'kamailio-sync']) assert.match(r.out, new RegExp(c));
});

test('a file-store allocator starts, serves and stops without @kubernetes/client-node', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lazy-kube-'));
  const proc = new ProcRtpengine();
  try {
    const config = { node: 'n1', socket: join(dir, 'a.sock'), tableRange: { min: 0, max: 3 }, pools: [{ name: 'media', cidr: '10.31.0.0/29' }], stateFile: join(dir, 'state.json'), procRoot: proc.root };
    const script = `
      const { startAllocator } = await import('./src/allocator/allocator.ts');
      const { AllocatorClient } = await import('./src/allocator/client.ts');
      const { ProcRtpengine } = await import('./test/support/proc-rtpengine.ts');
      const { silentLogger } = await import('./src/log.ts');
      const config = ${JSON.stringify(config)};
      const h = await startAllocator(config, { log: silentLogger, procFs: new ProcRtpengine(config.procRoot) });
      const c = new AllocatorClient({ socket: config.socket });
      const a = await c.acquire({ pod: { namespace: 'ns', name: 'p', uid: 'u1' } });
      process.stdout.write('table ' + a.table + ' ip ' + a.addresses[0].ip);
      c.close();
      await h.close();
    `;
    const r = await blocked(['--input-type=module', '-e', script]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^table \d ip 10\.31\.0\.\d$/);
  } finally {
    proc.remove();
    rmSync(dir, { recursive: true, force: true });
  }
});
