// `rtpengine-k8s local` (what `npm start` runs) as a user would. Every port it uses is reserved
// first (its media ports are on the pods' own 127.0.1.x addresses, which nothing else here binds).
// Idle mode: two sidecars with real rtpengines, the table, what was skipped, the per-pod call limit
// (≥ 2,000 calls each), Ctrl-C or a closed terminal (SIGHUP) stops everything with exit 0. With
// traffic: SIPp calls with RTP through Kamailio complete with no call dropped; kill -9 of `local`
// takes every process it started with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../support/require.js';
import { freePortBlock } from '../support/ports.js';
import { pingOnce } from '../support/rtpengine.js';
import { waitFor } from '../support/wait.js';
import { collectStatus } from '../../src/sidecar/status-command.js';

interface Local { child: ChildProcess; dir: string; out: () => string; exit: Promise<number | null>; ng: number; up: number }

async function startLocal(extra: string[], pods = 2): Promise<Local> {
  const dir = await mkdtemp(join(tmpdir(), 'rtpe-local-'));
  // Pod i uses base + i: room for the pods a test scales out to (`local scale 3` from 2).
  const room = pods + 2;
  const ng = await freePortBlock(room);
  const ctl = await freePortBlock(room);
  const up = await freePortBlock(room);
  const sip = await freePortBlock(2);
  const sipp = await freePortBlock(8);
  const redis = await freePortBlock(1);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'local', '--dir', dir, '--sidecars', String(pods), '--ng-port', String(ng), '--control-port', String(ctl),
    '--rtpengine-ng-port', String(up), '--sip-port', String(sip), '--rpc-port', String(sip + 1), '--sipp-port-base', String(sipp), '--refresh-ms', '300', '--redis-port', String(redis), ...extra],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c) => { out += c; });
  child.stderr!.on('data', (c) => { out += c; });
  const exit = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  return { child, dir, out: () => out, exit, ng, up };
}

/** Every process below `pid` (from /proc), children first found first. */
async function descendants(pid: number): Promise<number[]> {
  const parent = new Map<number, number>();
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = await readFile(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]));
    } catch { /* gone */ }
  }
  const out: number[] = [];
  const walk = (p: number) => { for (const [c, pp] of parent) if (pp === p) { out.push(c); walk(c); } };
  walk(pid);
  return out;
}
const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

async function idleUp(l: Local): Promise<void> {
  await waitFor('two serving pods in the table', () => /local-a +\d+ +127\.0\.1\.\d+ +\d+ +serving.*\nlocal-b +\d+ +127\.0\.1\.\d+ +\d+ +serving/.test(l.out()) || l.child.exitCode !== null, { timeoutMs: 90_000, intervalMs: 200 });
  assert.equal(l.child.exitCode, null, l.out().slice(-3000));
}

const comms = (pids: number[]) => Promise.all(pids.map((p) => readFile(`/proc/${p}/comm`, 'utf8').then((s) => s.trim()).catch(() => '')));

test('local --no-traffic: two sidecars with real rtpengine, status table, skipped steps and the call limit explained, Ctrl-C exits 0', { skip: requires('rtpengine'), timeout: 180_000 }, async () => {
  const l = await startLocal(['--no-traffic']);
  try {
    await idleUp(l);
    assert.match(l.out(), /note: kernel forwarding: (skipped|on)/);
    assert.match(l.out(), /note: pod-deletion-cost: skipped/);
    assert.match(l.out(), /note: call persistence: on — redis-server on 127\.0\.0\.1:\d+/);
    await waitFor('persistence on for each pod in the table', () => /\nlocal-a .* on\n/.test(l.out()) && /\nlocal-b .* on\n/.test(l.out()), { timeoutMs: 30_000, intervalMs: 200 });
    assert.match(l.out(), /note: limit: media ports 30000–39999 per pod on its own IP → at most 2,500 calls per pod/);
    assert.ok(await pingOnce('127.0.0.1', l.ng, 1000), 'sidecar a answers ng');
    assert.ok(await pingOnce('127.0.0.1', l.ng + 1, 1000), 'sidecar b answers ng');
    const { rows } = await collectStatus({ runDir: join(l.dir, 'run'), allocatorSocket: join(l.dir, 'allocator.sock') });
    assert.deepEqual(rows.map((r) => [r.pod, r.state]).sort(), [['local/local-a', 'serving'], ['local/local-b', 'serving']]);
    assert.notEqual(rows[0]!.table, rows[1]!.table, 'distinct tables');
    assert.notEqual(rows[0]!.mediaIp, rows[1]!.mediaIp, 'distinct media IPs');
    l.child.kill('SIGINT');
    assert.equal(await l.exit, 0, l.out().slice(-3000));
    assert.match(l.out(), /allocator stopped/);
    assert.equal(await pingOnce('127.0.0.1', l.up, 300), false, 'rtpengine stopped');
  } finally {
    if (l.child.exitCode === null) l.child.kill('SIGKILL');
    await rm(l.dir, { recursive: true, force: true });
  }
});

test('local --no-persistence: a closed terminal (SIGHUP) stops everything like Ctrl-C — exit 0, no rtpengine left; persistence off per pod', { skip: requires('rtpengine', 'setpriv'), timeout: 180_000 }, async () => {
  const l = await startLocal(['--no-traffic', '--no-persistence']);
  try {
    await idleUp(l);
    assert.match(l.out(), /note: call persistence: off \(--no-persistence\)/);
    await waitFor('persistence off for each pod in the table', () => /\nlocal-a .* off\n/.test(l.out()) && /\nlocal-b .* off\n/.test(l.out()), { timeoutMs: 30_000, intervalMs: 200 });
    const below = await descendants(l.child.pid!);
    assert.equal((await comms(below)).filter((c) => c === 'rtpengine').length, 2, 'two rtpengines run below local');
    l.child.kill('SIGHUP');
    assert.equal(await l.exit, 0, l.out().slice(-3000));
    await waitFor('every process local started to end', () => below.every((p) => !alive(p)), { timeoutMs: 10_000, intervalMs: 100 });
    assert.equal(await pingOnce('127.0.0.1', l.up, 300), false, 'rtpengine stopped');
  } finally {
    if (l.child.exitCode === null) l.child.kill('SIGKILL');
    await rm(l.dir, { recursive: true, force: true });
  }
});

test('local with traffic: SIPp calls with RTP both ways through Kamailio complete, none dropped; `local scale 3` adds a pod that joins Kamailio; kill -9 of local takes every child with it', { skip: requires('rtpengine', 'kamailio', 'sipp', 'setpriv'), timeout: 240_000 }, async () => {
  const l = await startLocal(['--rate', '4', '--call-min-seconds', '2', '--call-max-seconds', '4']);
  try {
    await waitFor('calls completing with media', () => /calls: \d+ active, (\d{2,}) completed/.test(l.out()) || l.child.exitCode !== null, { timeoutMs: 120_000, intervalMs: 200 });
    assert.equal(l.child.exitCode, null, l.out().slice(-3000));
    const last = [...l.out().matchAll(/calls: (\d+) active, (\d+) completed, (\d+) failed, (\d+) failed over, (\d+) dropped \(worst media gap (\d+) ms/g)].at(-1)!;
    assert.equal(last[5], '0', `no call dropped: ${last[0]}`);
    assert.ok(Number(last[6]) < 1000, `media kept flowing: ${last[0]}`);
    assert.match(l.out(), /local-a .* yes/, "pod a in Kamailio's set");
    // Scale out from another terminal: a third pod starts, serves and joins Kamailio's set.
    const scale = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'local', 'scale', '3', '--dir', l.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let said = '';
    scale.stdout.on('data', (c) => { said += c; });
    assert.equal(await new Promise((r) => scale.once('exit', r)), 0);
    assert.match(said, /scaling to 3 pod\(s\)/);
    await waitFor("a third pod serving and in Kamailio's set", () => /local-c +\d+ +127\.0\.1\.\d+ +\d+ +serving +yes/.test(l.out()), { timeoutMs: 60_000, intervalMs: 200 });
    const below = await descendants(l.child.pid!);
    const names = await comms(below);
    for (const want of ['rtpengine', 'kamailio', 'sipp']) assert.ok(names.includes(want), `${want} runs below local (${names.join(',')})`);
    l.child.kill('SIGKILL');
    await l.exit;
    await waitFor('every process local started to end after kill -9', () => below.every((p) => !alive(p)), { timeoutMs: 15_000, intervalMs: 100 });
  } finally {
    if (l.child.exitCode === null) l.child.kill('SIGKILL');
    await rm(l.dir, { recursive: true, force: true });
  }
});
