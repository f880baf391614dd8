import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, rmSync, chmodSync } from 'node:fs';
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
    const again = await new FileStore(path).load();
    assert.deepEqual(again.allocations.map((a) => [a.pod.uid, a.table, a.state]).sort(), [['a', 0, 'active'], ['b', 1, 'busy-table']]);
    assert.deepEqual(again.tableReleasedAt, { 2: 7000 });
    assert.deepEqual(readdirSync(join(dir, 'sub')), ['state.json']);
    assert.equal(JSON.parse(readFileSync(path, 'utf8')).version, STATE_VERSION);
    // The file (written from cached per-record JSON) is exactly the document, record for record.
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), {
      format: 'rtpengine-k8s/allocator-state', version: STATE_VERSION,
      allocations: { a: alloc('a', 0), b: { ...alloc('b', 1), state: 'busy-table', releasedAt: 5000, releaseReason: 'release' } },
      tableReleasedAt: { 2: 7000 },
    });
    await s.remove(alloc('zzz', 9), 8000); // idempotent for unknown pods
    await assert.rejects(s.update(alloc('nope', 5)), (e) => isCoded(e, 'ALLOC_NOT_FOUND'));
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
    assert.deepEqual(readdirSync(dir).sort(), ['state.json']);
    rmSync(path, { recursive: true });
    await s.create(alloc('c', 2));
    assert.deepEqual((await new FileStore(path).load()).allocations.map((a) => a.pod.uid).sort(), ['a', 'c']);
    await s.close();
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
