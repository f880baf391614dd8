// Crash safety: a real allocator process is SIGKILLed at random points during 1,000 mixed
// operations and restarted; no table or IP may ever be held twice and every acknowledged
// Acquire (not acknowledged-released since) must still be there with the same table and IP.
// The seed is printed; RTPE_K8S_SEED=<seed> replays a run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { AllocatorClient } from '../../src/allocator/client.js';
import type { AllocatorConfig } from '../../src/allocator/allocator.js';
import { ProcRtpengine } from '../support/proc-rtpengine.js';
import { requires } from '../support/require.js';

const CHILD = [process.execPath, '--import', 'tsx', 'test/support/allocator-child.ts'];
/** As PID 1 of a fresh PID namespace, like a container's process (root only). */
const IN_NEW_PID_NS = ['unshare', '--pid', '--fork', '--kill-child=SIGKILL', '--'];

function spawnChild(config: AllocatorConfig, prefix: string[] = []): ChildProcess {
  const [cmd, ...args] = [...prefix, ...CHILD, JSON.stringify(config)];
  return spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

function startChild(config: AllocatorConfig, prefix: string[] = []): Promise<ChildProcess> {
  const child = spawnChild(config, prefix);
  let err = '';
  child.stderr!.on('data', (d) => { err += d; });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`allocator child exited ${code}: ${err}`)));
  });
}

const kill9 = (c: ChildProcess) => new Promise<void>((r) => { if (c.exitCode !== null || c.signalCode) return r(); c.once('exit', () => r()); c.kill('SIGKILL'); });

test('25 kill -9 restarts at random points during 1,000 mixed operations: no acknowledged Acquire lost, never a table or IP twice, state file equal to List after every restart', { timeout: 240_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'alloc-crash-'));
  const proc = new ProcRtpengine();
  const config: AllocatorConfig = {
    node: 'crash-node', socket: join(dir, 'allocator.sock'), tableRange: { min: 0, max: 63 },
    pools: [{ name: 'media', cidr: '10.30.0.0/25' }], stateFile: join(dir, 'state.json'), procRoot: proc.root,
    leaseTtlMs: 0, sweepIntervalMs: 1000,
  };
  const seed = Number(process.env.RTPE_K8S_SEED ?? process.env.CRASH_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`seed ${seed} (replay: RTPE_K8S_SEED=${seed})`);
  process.stderr.write(`allocator-crash: seed ${seed} (replay: RTPE_K8S_SEED=${seed})\n`);
  const rand = fc.sample(fc.integer({ min: 0, max: 999_999 }), { numRuns: 5000, seed });
  let ri = 0;
  const rnd = (n: number) => rand[ri++ % rand.length]! % n;

  /** Acknowledged and not released since: uid → what it was given. */
  const held = new Map<string, { table: number; ip: string }>();
  /** Outcome unknown (the reply was lost in a crash): may or may not exist. */
  const maybe = new Set<string>();
  let child = await startChild(config);
  let client = new AllocatorClient({ socket: config.socket, timeoutMs: 3000 });
  let nextUid = 0;
  let kills = 0;
  let acked = 0;
  const TOTAL = 1000;
  /**
   * 24 kill points at random operation counts (plus one at the end: 25 kill -9 restarts, as measured in issue 14), one per slot of SLOT
   * operations and more than MAX_BATCH apart, so no two fall into one batch: exactly 24 + 1 kills.
   */
  const KILLS = 24;
  const MAX_BATCH = 8;
  const SLOT = Math.floor((TOTAL - 60) / KILLS);
  const killAt = Array.from({ length: KILLS }, (_, i) => 30 + i * SLOT + rnd(SLOT - MAX_BATCH));
  let lost = 0;

  const check = async () => {
    const l = await client.list();
    const tables = l.allocations.map((a) => a.table);
    const ips = l.allocations.map((a) => a.addresses[0]!.ip);
    assert.equal(new Set(tables).size, tables.length, `seed ${seed}: a table is held twice`);
    assert.equal(new Set(ips).size, ips.length, `seed ${seed}: an IP is held twice`);
    const byUid = new Map(l.allocations.map((a) => [a.pod.uid, a]));
    for (const [uid, want] of held) {
      const got = byUid.get(uid);
      assert.ok(got, `seed ${seed}: acknowledged ${uid} is gone after a crash`);
      assert.deepEqual({ table: got.table, ip: got.addresses[0]!.ip }, want, `seed ${seed}: ${uid} changed`);
    }
    for (const a of l.allocations) assert.ok(held.has(a.pod.uid) || maybe.has(a.pod.uid), `seed ${seed}: ${a.pod.uid} exists but was never acquired`);
    // The state file says exactly what List says (read right after a restart, before any new write).
    const file = JSON.parse(readFileSync(config.stateFile, 'utf8')) as { allocations: Record<string, { table: number; state: string; addresses: Array<{ ip: string }> }> };
    const fromFile = Object.entries(file.allocations).map(([uid, a]) => [uid, a.table, a.addresses[0]!.ip, a.state].join(' ')).sort();
    const fromList = l.allocations.map((a) => [a.pod.uid, a.table, a.addresses[0]!.ip, a.state].join(' ')).sort();
    assert.deepEqual(fromFile, fromList, `seed ${seed}: state file differs from List`);
    // Settle unknowns into facts so later checks are exact.
    for (const uid of maybe) { const a = byUid.get(uid); if (a) held.set(uid, { table: a.table, ip: a.addresses[0]!.ip }); }
    maybe.clear();
  };

  try {
    let done = 0;
    while (done < TOTAL) {
      // A batch of 1–8 concurrent operations, with a kill at a random moment in some batches.
      const n = 1 + rnd(MAX_BATCH);
      const ops = Array.from({ length: n }, () => {
        const r = rnd(10);
        const live = [...held.keys()];
        if (r < 5 || live.length < 4) {
          const uid = rnd(5) === 0 && live.length ? live[rnd(live.length)]! : `uid-${nextUid++}`;
          return { k: 'acquire' as const, uid };
        }
        if (r < 8) return { k: 'release' as const, uid: live[rnd(live.length)]! };
        return { k: 'renew' as const, uid: live[rnd(live.length)]! };
      });
      // Several ops on one uid in a batch would make the expected outcome order-dependent: skip dups.
      const seen = new Set<string>();
      const batch = ops.filter((o) => !seen.has(o.uid) && seen.add(o.uid));
      // Batches cover [done, done + batch.length) back to back, so each kill point falls in exactly one.
      const killThis = killAt.some((k) => k >= done && k < done + batch.length);
      const running = batch.map(async (o) => {
        try {
          if (o.k === 'acquire') {
            if (held.size >= 60 && !held.has(o.uid)) return;
            const a = await client.acquire({ pod: { namespace: 'crash', name: `p-${o.uid}`, uid: o.uid } });
            const prev = held.get(o.uid);
            if (prev) assert.deepEqual({ table: a.table, ip: a.addresses[0]!.ip }, prev, `seed ${seed}: re-acquire of ${o.uid} changed`);
            held.set(o.uid, { table: a.table, ip: a.addresses[0]!.ip });
            acked++;
          } else if (o.k === 'release') {
            await client.release({ uid: o.uid });
            held.delete(o.uid);
          } else {
            await client.renew(o.uid);
          }
        } catch (e) {
          if ((e as { code?: string }).code === 'ALLOC_TABLES_EXHAUSTED' || (e as { code?: string }).code === 'ALLOC_POOL_EXHAUSTED') return;
          if ((e as { code?: string }).code !== 'ALLOC_UNAVAILABLE' || !killThis) throw e;
          // Lost in the crash: the operation may or may not have happened.
          lost++;
          if (o.k === 'acquire' && !held.has(o.uid)) maybe.add(o.uid);
          if (o.k === 'release') { held.delete(o.uid); maybe.add(o.uid); }
        }
      });
      if (killThis) {
        await new Promise((r) => setTimeout(r, rnd(4)));
        await kill9(child);
        kills++;
      }
      await Promise.all(running);
      done += batch.length;
      if (killThis) {
        client.close();
        child = await startChild(config);
        client = new AllocatorClient({ socket: config.socket, timeoutMs: 3000 });
        await check();
      }
    }
    await kill9(child);
    kills++;
    child = await startChild(config);
    client.close();
    client = new AllocatorClient({ socket: config.socket, timeoutMs: 3000 });
    await check();
    t.diagnostic(`seed ${seed}: ${kills} kills, ${acked} acknowledged acquires, ${lost} replies lost in crashes, ${held.size} held at the end`);
    assert.equal(kills, KILLS + 1, `seed ${seed}: the schedule kills exactly ${KILLS + 1} times`);
    assert.ok(acked > 200, `only ${acked} acquires acknowledged (seed ${seed})`);
  } finally {
    client.close();
    await kill9(child);
    rmSync(dir, { recursive: true, force: true });
    proc.remove();
  }
});

/** The process `unshare --fork` started (the allocator, PID 1 inside its namespace), by its PID out here. */
function innerPid(unsharePid: number): number {
  const kids = readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  assert.equal(kids.length, 1, `unshare ${unsharePid} has children ${kids.join(',')}`);
  return kids[0]!;
}

/** Exit code and stderr of a child that is expected to refuse to start. */
function refusal(child: ChildProcess): Promise<{ code: number | null; stderr: string; stdout: string }> {
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  child.stdout!.on('data', (d) => { stdout += d; });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr, stdout })));
}

test('container restart: kill -9 of an allocator that is PID 1 in its PID namespace, restart in a fresh one takes the state at once; a second allocator on a held state is refused at once (issue 14.2)', { skip: requires('root', 'unshare'), timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'alloc-pidns-'));
  const proc = new ProcRtpengine();
  const config: AllocatorConfig = {
    node: 'pidns-node', socket: join(dir, 'a.sock'), tableRange: { min: 0, max: 63 },
    pools: [{ name: 'media', cidr: '10.31.0.0/24' }], stateFile: join(dir, 'state.json'), procRoot: proc.root,
    leaseTtlMs: 0, sweepIntervalMs: 1000,
  };
  let first: ChildProcess | undefined;
  let again: ChildProcess | undefined;
  let client: AllocatorClient | undefined;
  try {
    first = await startChild(config, IN_NEW_PID_NS);
    client = new AllocatorClient({ socket: config.socket, timeoutMs: 3000 });
    const a = await client.acquire({ pod: { namespace: 'voice', name: 'rtp-a', uid: 'uid-a' } });
    client.close();

    // A second allocator (its own PID namespace and socket) on the held state file: refused at once.
    const second = await refusal(spawnChild({ ...config, socket: join(dir, 'b.sock') }, IN_NEW_PID_NS));
    assert.equal(second.code, 75, `exit ${second.code}: ${second.stderr}`);
    assert.match(second.stderr, /^ALLOC_STATE_LOCKED .*in use by another allocator/);
    assert.equal(second.stdout, '', 'never served');

    // kill -9 the allocator (PID 1 inside); unshare exits once it is dead.
    const inner = innerPid(first.pid!);
    const gone = new Promise<void>((r) => first!.once('exit', () => r()));
    process.kill(inner, 'SIGKILL');
    await gone;
    // The restart, as PID 1 again in a new PID namespace, is not refused and has the allocation.
    again = await startChild(config, IN_NEW_PID_NS);
    client = new AllocatorClient({ socket: config.socket, timeoutMs: 3000 });
    const back = await client.get({ uid: 'uid-a' });
    assert.deepEqual([back.table, back.addresses[0]!.ip], [a.table, a.addresses[0]!.ip]);
  } finally {
    client?.close();
    for (const c of [first, again]) if (c) await kill9(c);
    rmSync(dir, { recursive: true, force: true });
    proc.remove();
  }
});
