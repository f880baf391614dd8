import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { startAllocator, type AllocatorConfig } from '../allocator/allocator.js';
import { AllocatorClient } from '../allocator/client.js';
import { parseTableRange } from '../allocator/tables.js';
import { silentLogger, createLogger } from '../log.js';
import { systemClock } from '../clock.js';
import { acquireWithRetry, backoff, releaseAllocation, DEFAULT_RETRY } from './acquire.js';

const cfg = (dir: string): AllocatorConfig => ({
  node: 'n1', socket: join(dir, 'a.sock'), tableRange: parseTableRange('5-9'),
  pools: [{ name: 'media', cidr: '10.40.0.0/24', rangeStart: '10.40.0.10' }],
  stateFile: join(dir, 'state.json'), procRoot: join(dir, 'no-module'), leaseTtlMs: 60_000, sweepIntervalMs: 5000,
});
const pod = () => ({ namespace: 'media', name: 'rtpe-x', uid: randomUUID() });

test('backoff doubles up to the cap, with bounded jitter', () => {
  const p = { ...DEFAULT_RETRY, initialDelayMs: 100, maxDelayMs: 1000 };
  assert.deepEqual([1, 2, 3, 4, 5, 9].map((a) => backoff(a, p, () => 0.5)), [100, 200, 400, 800, 1000, 1000]);
  assert.equal(backoff(1, p, () => 0), 80);
  assert.equal(backoff(1, p, () => 1), 120);
});

test('waits for an allocator that starts late, logging what it waits for', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rtpe-acq-'));
  const lines: string[] = [];
  const log = createLogger({ level: 'info' }, { write: (l: string) => { lines.push(l); } });
  const client = new AllocatorClient({ socket: cfg(dir).socket, timeoutMs: 500 });
  let alloc: Awaited<ReturnType<typeof startAllocator>> | undefined;
  try {
    const late = new Promise<void>((r) => setTimeout(async () => { alloc = await startAllocator(cfg(dir), { log: silentLogger }); r(); }, 700));
    const p = pod();
    const a = await acquireWithRetry({ allocator: client, clock: systemClock, log }, { pod: p }, { timeoutMs: 20_000, initialDelayMs: 100, maxDelayMs: 400 });
    await late;
    assert.ok(a.table >= 5 && a.table <= 9);
    assert.equal(a.addresses[0]!.ip, '10.40.0.10');
    const waits = lines.filter((l) => l.includes('retrying'));
    assert.ok(waits.length >= 1, 'progress was logged while waiting');
    assert.match(waits[0]!, /"waitingFor":"ALLOC_UNAVAILABLE"/);
    // Same UID again (a restarted sidecar): the same table and IP.
    const again = await acquireWithRetry({ allocator: client, clock: systemClock, log: silentLogger }, { pod: p });
    assert.equal(again.table, a.table);
    assert.deepEqual(again.addresses.map((x) => x.ip), a.addresses.map((x) => x.ip));
    assert.equal(await releaseAllocation({ allocator: client, clock: systemClock, log: silentLogger }, p.uid, 'test'), true);
  } finally {
    client.close();
    await alloc?.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('gives up after the bounded time with a coded error, and never retries a bad request', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rtpe-acq-'));
  const client = new AllocatorClient({ socket: join(dir, 'nobody.sock'), timeoutMs: 200 });
  try {
    await assert.rejects(
      acquireWithRetry({ allocator: client, clock: systemClock, log: silentLogger }, { pod: pod() }, { timeoutMs: 600, initialDelayMs: 100, maxDelayMs: 200 }),
      (e: any) => e.code === 'SIDECAR_ACQUIRE_FAILED' && e.details.attempts >= 2 && e.details.code === 'ALLOC_UNAVAILABLE',
    );
  } finally { client.close(); }
  const alloc = await startAllocator(cfg(dir), { log: silentLogger });
  const c2 = new AllocatorClient({ socket: alloc.socket });
  try {
    const lines: string[] = [];
    const log = createLogger({ level: 'info' }, { write: (l: string) => { lines.push(l); } });
    await assert.rejects(
      acquireWithRetry({ allocator: c2, clock: systemClock, log }, { pod: pod(), pools: ['nope'] }, { timeoutMs: 30_000, initialDelayMs: 1000, maxDelayMs: 1000 }),
      (e: any) => e.code === 'ALLOC_UNKNOWN_POOL',
    );
    assert.equal(lines.filter((l) => l.includes('retrying')).length, 0, 'a permanent error is not retried');
  } finally {
    c2.close();
    await alloc.close();
    await rm(dir, { recursive: true, force: true });
  }
});
