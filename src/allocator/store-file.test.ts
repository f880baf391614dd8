import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, rmSync, chmodSync, mkdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStore, STATE_VERSION } from './store-file.js';
import type { Allocation } from './store.js';
import { isCoded } from '../errors.js';

const alloc = (uid: string, table: number, offset = table + 1): Allocation => ({
  pod: { namespace: 'voice', name: `rtp-${uid}`, uid }, node: 'n1', table,
  addresses: [{ pool: 'media', ip: `10.0.0.${offset}`, prefixLength: 24, gateway: '10.0.0.254', offset: String(offset) }],
  state: 'active', createdAt: 1000, renewedAt: 1000, leaseExpiresAt: 61000,
});

function tmp(): string { return mkdtempSync(join(tmpdir(), 'alloc-store-')); }

test('file store: create/update/remove persist and reload; no temp file left behind', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'sub', 'state.json');
    const s = new FileStore(path);
    assert.deepEqual((await s.load()).allocations, []);
    await Promise.all([s.create(alloc('a', 0)), s.create(alloc('b', 1)), s.create(alloc('c', 2))]);
    assert.ok(s.writes >= 1 && s.writes <= 3, 'concurrent creates share writes');
    await s.update({ ...alloc('b', 1), state: 'busy-table', releasedAt: 5000, releaseReason: 'release' });
    await s.remove(alloc('c', 2), 7000);
    await s.close();
    const reader = new FileStore(path);
    const again = await reader.load();
    await reader.close();
    assert.deepEqual(again.allocations.map((a) => [a.pod.uid, a.table, a.state]).sort(), [['a', 0, 'active'], ['b', 1, 'busy-table']]);
    assert.deepEqual(again.tableReleasedAt, { 2: 7000 });
    assert.deepEqual(readdirSync(join(dir, 'sub')).sort(), ['state.json', 'state.json.lock', 'state.json.prev']);
    assert.equal(JSON.parse(readFileSync(path, 'utf8')).version, STATE_VERSION);
    // The file (written from cached per-record JSON) is exactly the document, record for record.
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), {
      format: 'rtpengine-k8s/allocator-state', version: STATE_VERSION,
      allocations: { a: alloc('a', 0), b: { ...alloc('b', 1), state: 'busy-table', releasedAt: 5000, releaseReason: 'release' } },
      tableReleasedAt: { 2: 7000 },
    });
    await s.load();
    await s.remove(alloc('zzz', 9), 8000); // idempotent for unknown pods
    await assert.rejects(s.update(alloc('nope', 5)), (e) => isCoded(e, 'ALLOC_NOT_FOUND'));
    await s.close();
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('file store: corrupt or foreign files are refused, never replaced by an empty state', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'state.json');
    const cases: Array<[string, string, RegExp]> = [
      ['{"format": "rtpengine-k8s/allocator-st', 'ALLOC_STATE_CORRUPT', /not JSON/],
      ['[]', 'ALLOC_STATE_CORRUPT', /format/],
      [JSON.stringify({ format: 'rtpengine-k8s/allocator-state', version: 99, allocations: {} }), 'ALLOC_STATE_VERSION', /version 99.*reads 1/],
      [JSON.stringify({ format: 'rtpengine-k8s/allocator-state', version: 1, allocations: { a: { ...alloc('a', 70) } }, tableReleasedAt: {} }), 'ALLOC_STATE_CORRUPT', /allocations\.a\.table/],
      [JSON.stringify({ format: 'rtpengine-k8s/allocator-state', version: 1, allocations: { a: alloc('a', 3), b: alloc('b', 3, 9) }, tableReleasedAt: {} }), 'ALLOC_STATE_CORRUPT', /table 3 held by both/],
      [JSON.stringify({ format: 'rtpengine-k8s/allocator-state', version: 1, allocations: { a: alloc('a', 3), b: alloc('b', 4, 4) }, tableReleasedAt: {} }), 'ALLOC_STATE_CORRUPT', /10\.0\.0\.4.*held by both/],
    ];
    for (const [text, code, re] of cases) {
      writeFileSync(path, text);
      await assert.rejects(new FileStore(path).load(), (e) => isCoded(e) && e.code === code && re.test(e.message) && e.message.includes(path), text.slice(0, 60));
      assert.equal(readFileSync(path, 'utf8'), text, 'the bad file is left as it was');
    }
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('file store: a failed write is reported and undone in memory', { skip: process.getuid?.() === 0 ? 'root ignores directory permissions' : false }, async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'state.json');
    const s = new FileStore(path);
    await s.load();
    await s.create(alloc('a', 0));
    chmodSync(dir, 0o500);
    await assert.rejects(s.create(alloc('b', 1)), (e) => isCoded(e, 'ALLOC_STATE_WRITE'));
    chmodSync(dir, 0o700);
    await s.create(alloc('c', 2));
    await s.close();
    assert.deepEqual((await new FileStore(path).load()).allocations.map((a) => a.pod.uid).sort(), ['a', 'c']);
  } finally { chmodSync(dir, 0o700); rmSync(dir, { recursive: true, force: true }); }
});

test('file store: a failed write (state path is a directory) is reported and undone in memory', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'state.json');
    const s = new FileStore(path);
    await s.load();
    await s.create(alloc('a', 0));
    // Replace the file by a directory: rename() over it fails with EISDIR even for root.
    rmSync(path); (await import('node:fs')).mkdirSync(path);
    await assert.rejects(s.create(alloc('b', 1)), (e) => isCoded(e, 'ALLOC_STATE_WRITE') && e.message.includes(path));
    // The temp file of the failed write is not left behind.
    assert.deepEqual(readdirSync(dir).sort(), ['state.json', 'state.json.lock']);
    rmSync(path, { recursive: true });
    await s.create(alloc('c', 2));
    await s.close();
    assert.deepEqual((await new FileStore(path).load()).allocations.map((a) => a.pod.uid).sort(), ['a', 'c']);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

/** Make the state path a directory while the write in flight runs: its rename fails (EISDIR, also for root). */
const breakPath = (path: string) => { rmSync(path, { force: true }); mkdirSync(path); };
const onDisk = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as { allocations: Record<string, Allocation> };

test('file store: a failed group write does not undo a later queued change to the same record', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'state.json');
    const s = new FileStore(path);
    await s.load();
    await s.create(alloc('a', 0));
    breakPath(path);
    // p1 is written now (and fails at its rename); p2 is queued behind it and written next.
    const p1 = s.update({ ...alloc('a', 0), renewedAt: 2000 });
    // Runs before the next batch's rename (that waits for fdatasync on the thread pool).
    const r1 = p1.then(() => 'resolved', (e) => { rmSync(path, { recursive: true }); return isCoded(e, 'ALLOC_STATE_WRITE') ? 'write-error' : String(e); });
    const p2 = s.update({ ...alloc('a', 0), renewedAt: 3000, state: 'busy-table' });
    assert.equal(await r1, 'write-error');
    await p2;
    // Acknowledged p2 is what the file holds, not the value before the failed write.
    assert.equal(onDisk(path).allocations.a!.renewedAt, 3000);
    assert.equal(onDisk(path).allocations.a!.state, 'busy-table');
    await s.update({ ...alloc('a', 0), renewedAt: 4000, state: 'busy-table' });
    await s.close();
    const back = await new FileStore(path).load();
    assert.deepEqual(back.allocations.map((a) => [a.pod.uid, a.renewedAt, a.state]), [['a', 4000, 'busy-table']]);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('file store: a queued change that depended on a failed write fails with it; unrelated ones are written', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'state.json');
    const s = new FileStore(path);
    await s.load();
    breakPath(path);
    const c = s.create(alloc('b', 1));
    const rc = c.then(() => 'resolved', (e) => { rmSync(path, { recursive: true }); return isCoded(e, 'ALLOC_STATE_WRITE') ? 'write-error' : String(e); });
    const u = s.update({ ...alloc('b', 1), renewedAt: 9000 }); // needs b, whose create fails
    const other = s.create(alloc('x', 5));
    assert.equal(await rc, 'write-error');
    await assert.rejects(u, (e) => isCoded(e, 'ALLOC_STATE_WRITE'));
    await other;
    assert.deepEqual(Object.keys(onDisk(path).allocations), ['x']);
    await s.close();
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('file store: one store per state file (flock), released on close or when the holder dies, whatever the lock file says', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'state.json');
    const s = new FileStore(path);
    await s.load();
    await s.create(alloc('a', 0));
    const before = readFileSync(path, 'utf8');
    await assert.rejects(new FileStore(path).load(), (e) => isCoded(e, 'ALLOC_STATE_LOCKED') && e.message.includes(path) && e.message.includes(`pid ${process.pid}`));
    assert.equal(readFileSync(path, 'utf8'), before, 'the refused store wrote nothing');
    await s.close();
    const t2 = new FileStore(path);
    assert.deepEqual((await t2.load()).allocations.map((a) => a.pod.uid), ['a'], 'close releases the lock');
    await t2.close();

    // Another live process holds the flock (flock(1) -o: only flock itself holds it) → refused at once,
    // even though the lock file names a PID that does not exist; once the holder is killed → taken.
    writeFileSync(`${path}.lock`, JSON.stringify({ pid: 999_999_999 }) + '\n');
    const holder = spawn('flock', ['-o', '-x', `${path}.lock`, '-c', 'echo locked; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    try {
      await new Promise<void>((r) => holder.stdout!.once('data', () => r()));
      await assert.rejects(new FileStore(path).load(), (e) => isCoded(e, 'ALLOC_STATE_LOCKED'));
    } finally {
      await new Promise<void>((r) => { holder.once('exit', () => r()); process.kill(-holder.pid!, 'SIGKILL'); });
    }
    const t = new FileStore(path);
    assert.deepEqual((await t.load()).allocations.map((a) => a.pod.uid), ['a']);
    assert.equal(JSON.parse(readFileSync(`${path}.lock`, 'utf8')).pid, process.pid, 'the holder names itself in the lock file');
    await t.close();
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('file store: an unreadable state path is ALLOC_STATE_UNREADABLE; temp files of a crashed write are removed at start', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'state.json');
    mkdirSync(path);
    await assert.rejects(new FileStore(path).load(), (e) => isCoded(e, 'ALLOC_STATE_UNREADABLE') && /EISDIR/.test(e.message) && e.message.includes(path));
    rmSync(path, { recursive: true });
    const s = new FileStore(path); // a failed load released the lock
    await s.load();
    await s.create(alloc('a', 0));
    await s.close();
    writeFileSync(join(dir, '.state.json.tmp-99999'), '{"half": ');
    writeFileSync(join(dir, '.state.json.tmp-1'), '');
    const again = new FileStore(path);
    assert.deepEqual((await again.load()).allocations.map((a) => a.pod.uid), ['a']);
    assert.deepEqual(readdirSync(dir).sort(), ['state.json', 'state.json.lock']);
    await again.close();
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('file store: a missing state file beside a previous generation is recovered, not started empty; the recovered state becomes current (issue 14.3)', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'state.json');
    const s = new FileStore(path);
    await s.load();
    await s.create(alloc('a', 0));
    await s.create(alloc('b', 1));
    await s.close();
    rmSync(path);
    const t = new FileStore(path);
    const st = await t.load();
    assert.deepEqual(st.allocations.map((a) => a.pod.uid), ['a']);
    assert.match(st.recovery?.reason ?? '', /missing/);
    assert.deepEqual(st.recovery?.salvaged, []);
    assert.deepEqual(Object.keys(onDisk(path).allocations), ['a'], 'written back as the current file');
    await t.close();
    const u = new FileStore(path);
    assert.equal((await u.load()).recovery, undefined, 'a normal start afterwards');
    await u.close();
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
