// rtpengine's own persistence, as the sidecar renders it (--redis/--redis-write to one database):
// calls set up with offer+answer survive a kill -9 of rtpengine and come back on the same media
// ports; without persistence the same sequence loses them (so this test can fail).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { requires } from '../support/require.js';
import { freePort, freePortRange } from '../support/ports.js';
import { pingOnce } from '../support/rtpengine.js';
import { startRedis } from '../support/redis.js';
import { sampleSdp } from '../support/ng-sample.js';
import { NgUdpClient } from '../../src/ng/client.js';
import { isCoded } from '../../src/errors.js';
import { systemClock } from '../../src/clock.js';
import { RedisClient, parseRedisUrl, rtpengineRedisValue } from '../../src/persistence/resp.js';
import { OWNER_KEY, inspect, writeOwner } from '../../src/persistence/owner.js';
import { awaitRestore } from '../../src/persistence/restore.js';

const skip = requires('rtpengine', 'redis-server');

async function daemon(args: string[], ng: number): Promise<{ proc: ChildProcess; exited: Promise<void>; logs: () => string }> {
  const proc = spawn('rtpengine', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (c) => { out += c; });
  proc.stderr!.on('data', (c) => { out += c; });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  for (let i = 0; !(await pingOnce('127.0.0.1', ng, 200)); i++) {
    if (proc.exitCode !== null || i > 100) throw new Error(`rtpengine did not start: ${out.slice(-2000)}`);
  }
  return { proc, exited, logs: () => out };
}

/** Every local media port rtpengine reports for a call (`query`). */
function localPorts(q: Record<string, unknown>): number[] {
  const ports: number[] = [];
  for (const tag of Object.values((q.tags ?? {}) as Record<string, { medias?: Array<{ streams?: Array<Record<string, unknown>> }> }>)) {
    for (const m of tag.medias ?? []) for (const s of m.streams ?? []) ports.push(Number(s['local port']));
  }
  return ports.sort((a, b) => a - b);
}

async function crashCycle(persist: boolean) {
  const redis = persist ? await startRedis() : undefined;
  const ng = await freePort();
  const { min, max } = await freePortRange(100);
  const target = redis ? parseRedisUrl(redis.url(7))! : undefined;
  const args = ['--config-file=none', '--table=-1', '--delete-delay=0', '--foreground', '--log-stderr', '--interface=127.0.0.1',
    `--listen-ng=127.0.0.1:${ng}`, `--port-min=${min}`, `--port-max=${max}`, '--num-threads=2', '--log-level=5',
    ...(target ? [`--redis=${rtpengineRedisValue(target)}`, `--redis-write=${rtpengineRedisValue(target)}`] : [])];
  const client = new NgUdpClient({ host: '127.0.0.1', port: ng, timeoutMs: 1000, retries: 2 });
  const run = randomBytes(4).toString('hex');
  const ids = Array.from({ length: 10 }, (_, i) => `crash-${run}-${i}@pbx`);
  let d = await daemon(args, ng);
  try {
    const before = new Map<string, number[]>();
    for (const [i, id] of ids.entries()) {
      assert.equal((await client.command({ command: 'offer', 'call-id': id, 'from-tag': 'a', sdp: sampleSdp('127.0.0.1', 40000 + i * 4) })).result, 'ok');
      assert.equal((await client.command({ command: 'answer', 'call-id': id, 'from-tag': 'a', 'to-tag': 'b', sdp: sampleSdp('127.0.0.1', 42000 + i * 4) })).result, 'ok');
      before.set(id, localPorts(await client.command({ command: 'query', 'call-id': id }) as Record<string, unknown>));
    }
    d.proc.kill('SIGKILL');
    await d.exited;
    d = await daemon(args, ng);
    const after = new Map<string, number[] | 'lost'>();
    if (target) {
      const r = await RedisClient.connect(target);
      try { await awaitRestore({ ng: client, redis: r, clock: systemClock }, ids, { deadlineMs: 20_000 }); } finally { r.close(); }
    }
    for (const id of ids) {
      try {
        after.set(id, localPorts(await client.command({ command: 'query', 'call-id': id }) as Record<string, unknown>));
      } catch (e) {
        assert.ok(isCoded(e, 'NG_REMOTE_ERROR'), String(e));
        after.set(id, 'lost');
      }
    }
    return { before, after, target };
  } finally {
    client.close();
    d.proc.kill('SIGTERM');
    await d.exited;
    await redis?.stop();
  }
}

test('persistence on: 10 calls survive kill -9 of rtpengine, on the same media ports', { skip, timeout: 120_000 }, async () => {
  const { before, after } = await crashCycle(true);
  for (const [id, ports] of before) {
    assert.ok(ports.length >= 4, `${id}: ${ports.join(',')}`);
    assert.deepEqual(after.get(id), ports, `${id} restored with its ports`);
  }
});

test('persistence off: the same kill -9 loses every call', { skip, timeout: 120_000 }, async () => {
  const { before, after } = await crashCycle(false);
  assert.equal(before.size, 10);
  for (const id of before.keys()) assert.equal(after.get(id), 'lost', id);
});

test('the owner key: refused for another pod or IP, and rtpengine deletes it at restore (so the sidecar rewrites it)', { skip, timeout: 60_000 }, async () => {
  const redis = await startRedis();
  const target = parseRedisUrl(redis.url(3))!;
  const r = await RedisClient.connect(target);
  const ng = await freePort();
  const { min, max } = await freePortRange(20);
  try {
    const self = { podUid: 'uid-a', pod: 'media/a', table: 3, ips: ['127.0.0.1'] };
    assert.deepEqual(await inspect(r, self), { action: 'fresh' });
    await writeOwner(r, self);
    await r.set('call-1@pbx', '{"json":{}}');
    assert.deepEqual(await inspect(r, self), { action: 'restore', callIds: ['call-1@pbx'] });
    const other = await inspect(r, { ...self, podUid: 'uid-b', pod: 'media/b' });
    assert.equal(other.action === 'refuse' && other.why, 'other-pod');
    const moved = await inspect(r, { ...self, ips: ['127.0.0.2'] });
    assert.equal(moved.action === 'refuse' && moved.why, 'other-table-or-ip');
    await r.del(OWNER_KEY);
    const unknown = await inspect(r, self);
    assert.equal(unknown.action === 'refuse' && unknown.why, 'unknown');

    // rtpengine restores every key of its database: ours is not a call. 10.5 skips it with a warning and keeps it
    // (newer releases delete it, hence the sidecar writes it again after each restore); it never becomes a call.
    await writeOwner(r, self);
    const d = await daemon(['--config-file=none', '--table=-1', '--foreground', '--log-stderr', '--interface=127.0.0.1', `--listen-ng=127.0.0.1:${ng}`,
      `--port-min=${min}`, `--port-max=${max}`, `--redis=${rtpengineRedisValue(target)}`, `--redis-write=${rtpengineRedisValue(target)}`], ng);
    const client = new NgUdpClient({ host: '127.0.0.1', port: ng, timeoutMs: 1000, retries: 2 });
    try {
      const restore = await awaitRestore({ ng: client, redis: r, clock: systemClock }, ['call-1@pbx'], { deadlineMs: 1000, pollMs: 50 });
      assert.deepEqual(restore.restored, [], 'a broken call is not restored');
      assert.ok(restore.lost.length + restore.pending.length === 1);
      assert.deepEqual(((await client.command({ command: 'list' })).calls as string[]).filter((c) => c === OWNER_KEY || c === 'call-1@pbx'), []);
      await assert.rejects(client.command({ command: 'query', 'call-id': OWNER_KEY }), (e) => isCoded(e, 'NG_REMOTE_ERROR'));
      await writeOwner(r, self);
      assert.deepEqual(await inspect(r, self), { action: 'restore', callIds: (await r.keys()).filter((k) => k !== OWNER_KEY) });
    } finally {
      client.close();
      d.proc.kill('SIGTERM');
      await d.exited;
    }
  } finally {
    r.close();
    await redis.stop();
  }
});
