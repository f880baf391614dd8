// A sidecar whose stdout nobody reads (a stalled log pipe) still serves, and still exits on SIGTERM:
// log lines are queued up to a bound and dropped beyond it, and exit never waits on the pipe.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, writeSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { requires } from '../support/require.js';
import { freePort, freePortRange } from '../support/ports.js';
import { silentLogger } from '../../src/log.js';
import { startAllocator } from '../../src/allocator/allocator.js';
import { parseTableRange } from '../../src/allocator/tables.js';

test('stdout stalled from the start: the sidecar serves, then exits 0 on SIGTERM with its rtpengine stopped', { skip: requires('rtpengine', 'mkfifo'), timeout: 120_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rtpe-stall-'));
  const alloc = await startAllocator({
    node: 'n', socket: join(dir, 'a.sock'), tableRange: parseTableRange('0-63'),
    pools: [{ name: 'lo', cidr: '127.0.3.0/24', rangeStart: '127.0.3.60' }],
    stateFile: join(dir, 'state.json'), procRoot: join(dir, 'no-module'), leaseTtlMs: 60_000, sweepIntervalMs: 5000,
  }, { log: silentLogger });
  // A pipe that is full before the sidecar starts, with a reader that never reads.
  const fifo = join(dir, 'stdout');
  execFileSync('mkfifo', [fifo]);
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const filler = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  for (const block = Buffer.alloc(4096, 0x20); ;) { try { writeSync(filler, block); } catch { break; } }
  const stdout = openSync(fifo, constants.O_WRONLY); // blocking, as a container runtime's log pipe is
  const ng = await freePort();
  const control = await freePort();
  const { min, max } = await freePortRange(20);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'sidecar',
    '--allocator-socket', alloc.socket, '--rtpengine-mode', 'exec', '--run-dir', join(dir, 'run'), '--proc-root', join(dir, 'no-module'),
    '--media-address-mode', 'none', '--no-deletion-cost', '--ng-listen', `127.0.0.1:${ng}`, '--ng-upstream', `127.0.0.1:${await freePort()}`,
    '--control-listen', `127.0.0.1:${control}`, '--port-min', String(min), '--port-max', String(max), '--delete-delay-seconds', '0',
    '--drain-deadline-seconds', '5', '--drain-linger-seconds', '0', '--rtpengine-options', '{"num-threads":2}'],
  { stdio: ['ignore', stdout, 'pipe'], env: { ...process.env, POD_NAME: 'rtpe-stall', POD_NAMESPACE: 'media', POD_UID: randomUUID(), NODE_NAME: 'n' } });
  closeSync(stdout);
  let stderr = '';
  child.stderr!.on('data', (c) => { stderr += c; });
  const exit = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  let rtpenginePid: number | undefined;
  try {
    // Ready although not one log line could be written.
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`sidecar exited: ${stderr.slice(-2000)}`);
      const ok = await fetch(`http://127.0.0.1:${control}/readyz`).then((r) => r.ok, () => false);
      if (ok) break;
      if (i > 600) throw new Error(`sidecar not ready: ${stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const children = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    rtpenginePid = children.find((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'rtpengine');
    assert.ok(rtpenginePid, 'the sidecar started rtpengine');
    // A flood of bad datagrams adds log lines the pipe cannot take.
    const sock = createSocket('udp4');
    for (let i = 0; i < 3000; i++) sock.send(Buffer.from(`s${i} d3:fooi1e4:junk`), ng, '127.0.0.1');
    await new Promise((r) => sock.close(() => r(undefined)));

    child.kill('SIGTERM');
    assert.equal(await exit, 0, stderr.slice(-2000));
    assert.equal(alive(rtpenginePid!), false, 'rtpengine stopped');
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (rtpenginePid && alive(rtpenginePid)) process.kill(rtpenginePid, 'SIGKILL');
    closeSync(reader);
    closeSync(filler);
    await alloc.close();
    await rm(dir, { recursive: true, force: true });
  }
});

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '); } catch { return false; }
}
