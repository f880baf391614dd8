import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { AllocatorService, type ServiceConfig } from './service.js';
import { FileStore } from './store-file.js';
import { ProcKernel } from './kernel.js';
import { ProcRtpengine } from '../../test/support/proc-rtpengine.js';
import { silentLogger } from '../log.js';
import { isCoded } from '../errors.js';
import type { Clock } from '../clock.js';
import { mountSkip, mountTmpfs } from '../../test/support/small-tmpfs.js';

function manualClock(start = 1_000_000): Clock & { advance(ms: number): void } {
  let now = start;
  return {
    now: () => now, monotonic: () => now, advance(ms) { now += ms; },
    setTimeout: () => ({ cancel() {} }), setInterval: () => ({ cancel() {} }), sleep: async () => {},
  };
}

const cfg: ServiceConfig = { node: 'n1', tableRange: { min: 2, max: 5 }, pools: [{ name: 'media', cidr: '10.0.0.0/29', gateway: '10.0.0.6' }], leaseTtlMs: 10_000 };
const pod = (i: number, gen = 0) => ({ namespace: 'voice', name: `rtp-${i}`, uid: `uid-${i}-${gen}` });

async function world() {
  const dir = mkdtempSync(join(tmpdir(), 'alloc-svc-'));
  const proc = new ProcRtpengine();
  const clock = manualClock();
  const kernel = new ProcKernel({ root: proc.root, fs: proc });
  let store: FileStore | undefined;
  // A restart: the previous store is closed first (it holds the state file's lock).
  const open = async (over: Partial<ServiceConfig> = {}) => {
    await store?.close();
    store = new FileStore(join(dir, 'state.json'));
    return AllocatorService.open({ ...cfg, ...over }, { store, kernel, clock, log: silentLogger });
  };
  return { dir, proc, clock, open, done: async () => { await store?.close(); rmSync(dir, { recursive: true, force: true }); proc.remove(); } };
}

test('service: acquire is idempotent per UID; new UID under the same name is a new pod; release is idempotent', async () => {
  const w = await world();
  try {
    const s = await w.open();
    const a = await s.acquire({ pod: pod(1) });
    assert.equal(a.table, 2);
    assert.deepEqual(a.addresses, [{ pool: 'media', ip: '10.0.0.1', prefixLength: 29, gateway: '10.0.0.6', offset: '1' }]);
    const again = await s.acquire({ pod: pod(1) });
    assert.equal(again.table, a.table);
    assert.equal(again.addresses[0]!.ip, a.addresses[0]!.ip);
    const newer = await s.acquire({ pod: pod(1, 1) });
    assert.notEqual(newer.table, a.table);
    assert.equal(newer.addresses[0]!.ip, '10.0.0.2');
    assert.equal((await s.release({ uid: a.pod.uid })).allocation?.state, 'released');
    assert.deepEqual(await s.release({ uid: a.pod.uid }), { found: false });
    // Least recently released last: table 2 was just released, so 4 comes next.
    assert.equal((await s.acquire({ pod: pod(2) })).table, 4);
  } finally { await w.done(); }
});

test('service: tables in /proc/rtpengine are skipped unless the same pod holds them; busy tables stay reserved', async () => {
  const w = await world();
  try {
    const s = await w.open();
    w.proc.daemonStart(2, 777); // someone else's daemon
    const a = await s.acquire({ pod: pod(1) });
    assert.equal(a.table, 3);
    w.proc.daemonStart(3, 888); // the pod's own daemon takes its table
    const rel = await s.release({ uid: a.pod.uid });
    assert.equal(rel.allocation?.state, 'busy-table');
    assert.deepEqual(s.list().allocations.map((x) => [x.table, x.state]), [[3, 'busy-table']]);
    // The same pod comes back: it gets its table (its daemon holds it) and the record is active again.
    const back = await s.acquire({ pod: pod(1) });
    assert.equal(back.table, 3);
    assert.equal(back.state, 'active');
    await s.release({ uid: a.pod.uid });
    // Others never get table 3 while it is busy.
    const b = await s.acquire({ pod: pod(2) });
    assert.equal(b.table, 4);
    w.proc.daemonClose(3);
    await s.sweep();
    assert.deepEqual(w.proc.tables(), [2]);
    assert.deepEqual(s.list().allocations.map((x) => x.table), [4]);
  } finally { await w.done(); }
});

test('service: bad requests name the field; exhaustion names the resource and node', async () => {
  const w = await world();
  try {
    const s = await w.open();
    const check = async (p: Promise<unknown>, code: string, re: RegExp) => assert.rejects(p, (e) => isCoded(e) && e.code === code && re.test(e.message));
    await check(s.acquire({ pod: { namespace: 'voice', name: 'x', uid: '' } }), 'ALLOC_INVALID_ARGUMENT', /pod\.uid/);
    await check(s.acquire({ pod: { namespace: 'Bad_NS', name: 'x', uid: 'u' } }), 'ALLOC_INVALID_ARGUMENT', /pod\.namespace/);
    await check(s.acquire({ pod: pod(1), pools: ['nope'] }), 'ALLOC_UNKNOWN_POOL', /nope.*media/);
    await check(s.acquire({ pod: pod(1), pools: ['media', 'media'] }), 'ALLOC_INVALID_ARGUMENT', /pools/);
    for (let i = 0; i < 4; i++) await s.acquire({ pod: pod(i) });
    await check(s.acquire({ pod: pod(9) }), 'ALLOC_TABLES_EXHAUSTED', /node n1.*4 of 4/);
    assert.equal(s.list().allocations.length, 4, 'a failed acquire holds nothing');
  } finally { await w.done(); }
});

test('service: an unrenewed lease is reclaimed and its kernel table deleted; restart restarts leases', async () => {
  const w = await world();
  try {
    let s = await w.open();
    const a = await s.acquire({ pod: pod(1) });
    const b = await s.acquire({ pod: pod(2) });
    w.proc.daemonStart(a.table, 0); // leftover table of a SIGKILLed daemon (unheld)
    w.clock.advance(6_000);
    await s.renew(b.pod.uid);
    w.clock.advance(6_000);
    await s.sweep();
    assert.deepEqual(s.list().allocations.map((x) => x.pod.uid), [b.pod.uid]);
    assert.deepEqual(w.proc.tables(), [], 'the reclaimed pod\'s table was deleted');
    await assert.rejects(s.renew(a.pod.uid), (e) => isCoded(e, 'ALLOC_NOT_FOUND'));
    // Allocator down longer than the TTL: leases restart at load instead of mass reclaim.
    w.clock.advance(60_000);
    s = await w.open();
    await s.sweep();
    assert.deepEqual(s.list().allocations.map((x) => x.pod.uid), [b.pod.uid]);
  } finally { await w.done(); }
});

/** UIDs a plain object would resolve to its prototype's members (issue 14.6): the property test uses them. */
const PROTO_UIDS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'];
const ppod = (i: number, gen = 0) => ({ ...pod(i, gen), uid: gen === 0 && i < PROTO_UIDS.length ? PROTO_UIDS[i]! : pod(i, gen).uid });

test('service: state machine of acquire/release/renew/reclaim/restart/kernel holders keeps every invariant, UIDs like __proto__ included (property)', async () => {
  const op = fc.oneof(
    fc.record({ k: fc.constant('acquire' as const), i: fc.integer({ min: 0, max: 7 }), gen: fc.integer({ min: 0, max: 1 }) }),
    fc.record({ k: fc.constant('release' as const), i: fc.integer({ min: 0, max: 7 }), gen: fc.integer({ min: 0, max: 1 }) }),
    fc.record({ k: fc.constant('renew' as const), i: fc.integer({ min: 0, max: 7 }), gen: fc.integer({ min: 0, max: 1 }) }),
    fc.record({ k: fc.constant('tick' as const), ms: fc.integer({ min: 100, max: 8_000 }) }),
    fc.record({ k: fc.constant('hold' as const), i: fc.integer({ min: 0, max: 7 }), gen: fc.integer({ min: 0, max: 1 }) }),
    fc.record({ k: fc.constant('unhold' as const), t: fc.integer({ min: 2, max: 5 }) }),
    fc.record({ k: fc.constant('foreign' as const), t: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ k: fc.constant('restart' as const) }),
  );
  await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
    const w = await world();
    try {
      let s = await w.open();
      /** uid → table/ip it was acknowledged with, while it should still exist. */
      const acked = new Map<string, { table: number; ip: string }>();
      const lastSeen = new Map<string, number>();
      for (const o of ops) {
        if (o.k === 'acquire') {
          const p = ppod(o.i, o.gen);
          const before = new Set(w.proc.tables());
          try {
            const a = await s.acquire({ pod: p });
            const prev = acked.get(p.uid);
            if (prev) assert.deepEqual({ table: a.table, ip: a.addresses[0]!.ip }, prev, 'same UID, same allocation');
            else assert.ok(!before.has(a.table), `new table ${a.table} was listed in /proc/rtpengine`);
            acked.set(p.uid, { table: a.table, ip: a.addresses[0]!.ip });
            lastSeen.set(p.uid, w.clock.now());
          } catch (e) {
            assert.ok(isCoded(e, 'ALLOC_TABLES_EXHAUSTED') || isCoded(e, 'ALLOC_POOL_EXHAUSTED'), String(e));
            const l = s.list();
            if (isCoded(e, 'ALLOC_TABLES_EXHAUSTED')) assert.equal(l.tablesFree, 0);
            else assert.equal(s.poolStats()[0]!.free, 0);
          }
        } else if (o.k === 'release') {
          const uid = ppod(o.i, o.gen).uid;
          const r = await s.release({ uid });
          assert.equal(r.found, acked.has(uid));
          if (r.allocation?.state === 'released') acked.delete(uid);
        } else if (o.k === 'renew') {
          const uid = ppod(o.i, o.gen).uid;
          const cur = s.list().allocations.find((a) => a.pod.uid === uid);
          try { await s.renew(uid); assert.ok(cur); lastSeen.set(uid, w.clock.now()); } catch (e) { assert.ok(isCoded(e, 'ALLOC_NOT_FOUND')); }
        } else if (o.k === 'tick') {
          w.clock.advance(o.ms);
          await s.sweep();
        } else if (o.k === 'hold') {
          const a = s.list().allocations.find((x) => x.pod.uid === ppod(o.i, o.gen).uid && x.state === 'active');
          // A second daemon on a table already held fails to start (EBUSY from the kernel), as it would.
          if (a) {
            try { w.proc.daemonStart(a.table, 1000 + a.table); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'EBUSY') throw e; }
          }
        } else if (o.k === 'unhold') {
          w.proc.daemonClose(o.t);
        } else if (o.k === 'foreign') {
          const ours = s.list().allocations.some((a) => a.table === o.t);
          if (!ours && !w.proc.tables().includes(o.t)) w.proc.daemonStart(o.t, 5000 + o.t);
        } else {
          const before = s.list().allocations.map((a) => [a.pod.uid, a.table, a.state]);
          await s.drain();
          s = await w.open();
          assert.deepEqual(s.list().allocations.map((a) => [a.pod.uid, a.table, a.state]), before, 'restart keeps state');
        }
        // Invariants after every step.
        const all = s.list().allocations;
        assert.equal(new Set(all.map((a) => a.table)).size, all.length, 'a table held twice');
        assert.equal(new Set(all.map((a) => a.addresses[0]!.ip)).size, all.length, 'an IP held twice');
        for (const a of all) assert.ok(a.table >= 2 && a.table <= 5);
        // Every acknowledged and not released pod is still there (reclaims remove only expired leases).
        for (const [uid] of acked) {
          if (all.some((a) => a.pod.uid === uid)) continue;
          assert.ok(w.clock.now() - lastSeen.get(uid)! > cfg.leaseTtlMs, `${uid} vanished before its lease expired`);
          acked.delete(uid); // reclaimed by lease expiry
        }
        for (const a of all) if (a.state === 'active') assert.ok(acked.has(a.pod.uid), `unexpected active ${a.pod.uid}`);
      }
    } finally { await w.done(); }
  }), { numRuns: 60 });
});

test('service: leftover kernel tables (listed, not ours, no holder) are deleted on the second sweep that sees them; held or EBUSY ones stay skipped', async () => {
  const w = await world();
  try {
    const s = await w.open();
    w.proc.daemonStart(3, 0); // a SIGKILLed daemon's table: Control PID 0
    w.proc.daemonStart(4, 999); // a live daemon's table
    w.proc.daemonStart(5, 0);
    w.proc.ruleRef(5, true); // no holder in status, but del answers EBUSY (a rule references it)
    w.proc.daemonStart(10, 0); // outside our range 2-5: never ours to hand out, never touched
    await s.sweep();
    assert.deepEqual(w.proc.tables(), [3, 4, 5, 10], 'seen once: not deleted yet');
    assert.equal((await s.acquire({ pod: pod(1) })).table, 2);
    await s.sweep();
    assert.deepEqual(w.proc.tables(), [4, 5, 10], 'the unheld leftover 3 is deleted; held 4 and EBUSY 5 stay');
    assert.equal(s.tablesFree(), 1);
    assert.equal((await s.acquire({ pod: pod(2) })).table, 3, 'the freed ID is handed out again');
    await assert.rejects(s.acquire({ pod: pod(3) }), (e) => isCoded(e, 'ALLOC_TABLES_EXHAUSTED'), 'EBUSY table 5 is never handed out');
    await s.sweep();
    assert.deepEqual(w.proc.tables(), [4, 5, 10]);
    w.proc.ruleRef(5, false);
    await s.sweep();
    assert.deepEqual(w.proc.tables(), [4, 10]);
    assert.equal((await s.acquire({ pod: pod(3) })).table, 5);
    // Our own tables (a daemon of ours that exited) are never treated as leftovers.
    w.proc.daemonStart(2, 0);
    await s.sweep(); await s.sweep();
    assert.deepEqual(w.proc.tables(), [2, 4, 10]);
    assert.deepEqual(s.list().allocations.map((a) => a.table), [2, 3, 5]);
  } finally { await w.done(); }
});

test('service: on a nearly full filesystem Acquire fails ALLOC_STATE_WRITE, memory rolled back, the good state file untouched (issue 14.1)', { skip: mountSkip() }, async () => {
  const fs = mountTmpfs(96);
  const proc = new ProcRtpengine();
  const kernel = new ProcKernel({ root: proc.root, fs: proc });
  const path = join(fs.dir, 'state.json');
  const wide = { ...cfg, tableRange: { min: 0, max: 63 }, pools: [{ name: 'media', cidr: '10.0.0.0/24' }] };
  let store = new FileStore(path);
  try {
    const s = await AllocatorService.open(wide, { store, kernel, clock: manualClock(), log: silentLogger });
    for (let i = 0; i < 24; i++) await s.acquire({ pod: pod(i) });
    const good = readFileSync(path, 'utf8');
    assert.ok(good.length > 6000, `state file is ${good.length} bytes`);
    const listed = s.list();
    // Less room than one state file: the next whole-file write cannot fit.
    fs.fillLeaving(good.length);
    await assert.rejects(s.acquire({ pod: pod(99) }), (e) => isCoded(e, 'ALLOC_STATE_WRITE') && /ENOSPC/.test(e.message));
    await assert.rejects(s.renew(pod(3).uid), (e) => isCoded(e, 'ALLOC_STATE_WRITE'));
    await assert.rejects(s.release({ uid: pod(4).uid }), (e) => isCoded(e, 'ALLOC_STATE_WRITE'));
    assert.deepEqual(s.list(), listed, 'memory rolled back: nothing handed out, renewed or released');
    assert.equal(readFileSync(path, 'utf8'), good, 'the good file is untouched');
    assert.deepEqual(readdirSync(fs.dir).filter((f) => f.includes('.tmp-')), [], 'no temp file left');
    // Room again: the same pod gets the table and address nobody else took meanwhile, and a restart reads it all.
    rmSync(join(fs.dir, 'filler'));
    const a = await s.acquire({ pod: pod(99) });
    assert.equal(a.table, 24);
    assert.equal(a.addresses[0]!.ip, '10.0.0.25');
    await store.close();
    store = new FileStore(path);
    const again = await AllocatorService.open(wide, { store, kernel, clock: manualClock(), log: silentLogger });
    assert.equal(again.list().allocations.length, 25);
  } finally { await store.close(); fs.close(); proc.remove(); }
});

test('service: UIDs __proto__, constructor and toString are ordinary pods through acquire, renew, restart and release (issue 14.6)', async () => {
  const w = await world();
  try {
    let s = await w.open();
    const uids = ['__proto__', 'constructor', 'toString'];
    const got = [];
    for (const [i, uid] of uids.entries()) got.push(await s.acquire({ pod: { namespace: 'voice', name: `p-${i}`, uid } }));
    assert.deepEqual(got.map((a) => a.pod.uid), uids);
    assert.equal(new Set(got.map((a) => a.table)).size, 3);
    for (const uid of uids) assert.equal((await s.renew(uid)).pod.uid, uid);
    s = await w.open(); // restart: read back from the state file
    assert.deepEqual(s.list().allocations.map((a) => a.pod.uid).sort(), [...uids].sort());
    for (const uid of uids) assert.equal((await s.release({ uid })).allocation?.state, 'released');
    assert.equal(s.list().allocations.length, 0);
  } finally { await w.done(); }
});

test('service: a Renew carrying a held allocation never revives a released record outside a recovery (ADR 0001 kept)', async () => {
  const w = await world();
  try {
    const s = await w.open();
    const a = await s.acquire({ pod: pod(1) });
    await s.release({ uid: a.pod.uid });
    await assert.rejects(s.renew(a.pod.uid, a), (e) => isCoded(e, 'ALLOC_NOT_FOUND'));
    assert.equal(s.list().allocations.length, 0);
  } finally { await w.done(); }
});
