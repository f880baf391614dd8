// The sidecar with --persistence-redis (exec mode, real rtpengine, real redis-server): calls set up
// through its proxy survive a kill -9 of the pod's processes (sidecar and rtpengine) into the
// restarted sidecar (same pod UID, so the same table and media IP), are re-learned into its session
// registry, and are removed at a clean stop. Redis down at start: rtpengine runs without --redis.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { requires } from '../support/require.js';
import { freePort, freePortRange } from '../support/ports.js';
import { startRedis } from '../support/redis.js';
import { sampleSdp } from '../support/ng-sample.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { createRegistry } from '../../src/metrics.js';
import { parseOptions } from '../../src/config.js';
import { startAllocator } from '../../src/allocator/allocator.js';
import { parseTableRange } from '../../src/allocator/tables.js';
import { startSidecar, type FullSidecarConfig } from '../../src/sidecar/main.js';
import { sidecarOptions } from '../../src/sidecar/options.js';
import { proxyOptions } from '../../src/sidecar/proxy-options.js';
import { NgUdpClient } from '../../src/ng/client.js';
import { RedisClient, parseRedisUrl } from '../../src/persistence/resp.js';
import { OWNER_KEY } from '../../src/persistence/owner.js';
import { isCoded } from '../../src/errors.js';
import { waitFor } from '../support/wait.js';

const skip = requires('rtpengine', 'redis-server');

async function setup(redisUrl: string | undefined) {
  const dir = await mkdtemp(join(tmpdir(), 'rtpe-persist-'));
  const alloc = await startAllocator({
    node: 'n', socket: join(dir, 'a.sock'), tableRange: parseTableRange('0-63'),
    pools: [{ name: 'lo', cidr: '127.0.4.0/24', rangeStart: '127.0.4.10' }],
    stateFile: join(dir, 'state.json'), procRoot: join(dir, 'no-module'), leaseTtlMs: 60_000, sweepIntervalMs: 5000,
  }, { log: silentLogger });
  const { min, max } = await freePortRange(40);
  const ng = await freePort();
  const argv = ['--allocator-socket', alloc.socket, '--rtpengine-mode', 'exec', '--run-dir', join(dir, 'run'), '--proc-root', join(dir, 'no-module'),
    '--media-address-mode', 'none', '--no-deletion-cost', '--ng-listen', `127.0.0.1:${ng}`, '--ng-upstream', `127.0.0.1:${await freePort()}`,
    '--control-listen', '127.0.0.1:0', '--port-min', String(min), '--port-max', String(max), '--delete-delay-seconds', '0',
    '--drain-deadline-seconds', '5', '--drain-linger-seconds', '0', '--rtpengine-options', '{"num-threads":2}', ...(redisUrl ? ['--persistence-redis', redisUrl] : [])];
  const env = { POD_NAME: 'rtpe-p', POD_NAMESPACE: 'media', POD_UID: randomUUID(), NODE_NAME: 'n' };
  const config = parseOptions({ ...sidecarOptions, ...proxyOptions }, argv, env).config as FullSidecarConfig;
  return { dir, alloc, ng, config, argv, env, close: async () => { await alloc.close(); await rm(dir, { recursive: true, force: true }); } };
}

const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);

test('persistence on: calls survive kill -9 of the sidecar and rtpengine into the restarted sidecar, re-learned; removed at a clean stop', { skip, timeout: 180_000 }, async () => {
  const redis = await startRedis();
  const url = redis.url(11);
  const s = await setup(url);
  const client = new NgUdpClient({ host: '127.0.0.1', port: s.ng, timeoutMs: 1000, retries: 2 });
  const run = randomBytes(4).toString('hex');
  const ids = Array.from({ length: 8 }, (_, i) => `sp-${run}-${i}@pbx`);
  const control = await freePort();
  // The first incarnation as its own process, so it can die without tearing anything down.
  const argv = s.argv.map((a) => (a === '127.0.0.1:0' ? `127.0.0.1:${control}` : a));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'sidecar', ...argv], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...s.env } });
  let stderr = '';
  child.stderr!.on('data', (c) => { stderr += c; });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let rtpenginePid: number | undefined;
  try {
    for (let i = 0; !(await fetch(`http://127.0.0.1:${control}/readyz`).then((r) => r.ok, () => false)); i++) {
      if (child.exitCode !== null || i > 600) throw new Error(`first sidecar not ready: ${stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const status = await (await fetch(`http://127.0.0.1:${control}/status`)).json() as { rtpenginePid: number; table: number; persistence: boolean };
    rtpenginePid = status.rtpenginePid;
    assert.equal(status.persistence, true, '/status says rtpengine runs with --redis');
    const args1 = readFileSync(`/proc/${rtpenginePid}/cmdline`, 'utf8').split('\0');
    assert.ok(args1.includes(`--redis=127.0.0.1:${redis.port}/11`) && args1.includes(`--redis-write=127.0.0.1:${redis.port}/11`), args1.join(' '));
    for (const [i, id] of ids.entries()) {
      assert.equal((await client.command({ command: 'offer', 'call-id': id, 'from-tag': 'a', sdp: sampleSdp('127.0.0.1', 40000 + i * 4), supports: ['load limit'] })).result, 'ok');
      assert.equal((await client.command({ command: 'answer', 'call-id': id, 'from-tag': 'a', 'to-tag': 'b', sdp: sampleSdp('127.0.0.1', 42000 + i * 4) })).result, 'ok');
    }
    child.kill('SIGKILL');
    await exited;
    try { process.kill(rtpenginePid, 'SIGKILL'); } catch { /* died with its parent */ }
    for (let i = 0; i < 100 && alive(rtpenginePid); i++) await new Promise((r) => setTimeout(r, 50));

    const lines: string[] = [];
    const reg2 = createRegistry({ defaultMetrics: false });
    const h2 = await startSidecar(s.config, { log: createLogger({ level: 'info' }, { write: (l: string) => { lines.push(l); } }), registry: reg2 });
    try {
      const text = await reg2.metrics();
      assert.equal(metric(text, 'rtpengine_k8s_persistence_enabled'), 1);
      assert.equal(metric(text, 'rtpengine_k8s_persistence_restored_calls'), ids.length);
      assert.equal(h2.status().sessions, ids.length, 're-learned into the session registry');
      for (const id of ids) assert.equal((await client.command({ command: 'query', 'call-id': id })).result, 'ok', id);
      assert.ok(lines.some((l) => l.includes('calls restored from Redis')));
    } finally {
      assert.equal(await h2.stop('test'), 0);
    }
    const r = await RedisClient.connect(parseRedisUrl(url)!);
    try { assert.deepEqual(await r.keys(), [], 'a clean stop removes the pod\'s calls and owner key'); } finally { r.close(); }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (rtpenginePid && alive(rtpenginePid)) process.kill(rtpenginePid, 'SIGKILL');
    client.close();
    await s.close();
    await redis.stop();
  }
});

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '); } catch { return false; }
}

test('Redis lost while running: logged once with its code, the metric goes 0; rtpengine keeps serving', { skip, timeout: 120_000 }, async () => {
  const redis = await startRedis();
  const s = await setup(redis.url(16));
  const lines: string[] = [];
  const registry = createRegistry({ defaultMetrics: false });
  const client = new NgUdpClient({ host: '127.0.0.1', port: s.ng, timeoutMs: 1000, retries: 2 });
  try {
    const h = await startSidecar({ ...s.config, persistenceCheckSeconds: 1 }, { log: createLogger({ level: 'info' }, { write: (l: string) => { lines.push(l); } }), registry });
    try {
      assert.equal(metric(await registry.metrics(), 'rtpengine_k8s_persistence_enabled'), 1);
      await redis.stop();
      await waitFor('persistence reported lost', async () => metric(await registry.metrics(), 'rtpengine_k8s_persistence_enabled') === 0, { timeoutMs: 30_000 });
      await waitFor('logged', () => lines.some((l) => l.includes('PERSISTENCE_REDIS_LOST')), { timeoutMs: 5000 });
      assert.equal(lines.filter((l) => l.includes('PERSISTENCE_REDIS_LOST')).length, 1, 'once, not every check');
      assert.equal((await client.command({ command: 'ping' })).result, 'pong');
    } finally {
      await h.stop('test');
    }
  } finally {
    client.close();
    await s.close();
  }
});

test('Redis down at start: rtpengine runs without --redis, loudly, and the metric says 0', { skip, timeout: 120_000 }, async () => {
  const redis = await startRedis();
  const url = redis.url(12);
  await redis.stop();
  const s = await setup(url);
  const lines: string[] = [];
  const registry = createRegistry({ defaultMetrics: false });
  try {
    const h = await startSidecar(s.config, { log: createLogger({ level: 'info' }, { write: (l: string) => { lines.push(l); } }), registry });
    try {
      const args = readFileSync(`/proc/${h.status().rtpenginePid}/cmdline`, 'utf8').split('\0');
      assert.equal(args.some((a) => a.startsWith('--redis')), false, args.join(' '));
      assert.equal(metric(await registry.metrics(), 'rtpengine_k8s_persistence_enabled'), 0);
      assert.ok(lines.some((l) => l.includes('PERSISTENCE_OFF_REDIS_DOWN') && l.includes('"level":50')), 'logged as an error with its code');
    } finally {
      await h.stop('test');
    }
  } finally {
    await s.close();
  }
});

test('a database holding another pod\'s calls: refused, left untouched, persistence off', { skip, timeout: 120_000 }, async () => {
  const redis = await startRedis();
  const url = redis.url(13);
  const r = await RedisClient.connect(parseRedisUrl(url)!);
  const s = await setup(url);
  const registry = createRegistry({ defaultMetrics: false });
  try {
    await r.set(OWNER_KEY, JSON.stringify({ podUid: 'someone-else', pod: 'media/old', table: 9, ips: ['127.0.4.99'] }));
    await r.set('old-call@pbx', '{"json":{"last_signal":"1"}}');
    const h = await startSidecar(s.config, { log: silentLogger, registry });
    try {
      const text = await registry.metrics();
      assert.equal(metric(text, 'rtpengine_k8s_persistence_enabled'), 0);
      assert.equal(metric(text, 'rtpengine_k8s_persistence_refused_calls'), 1);
      assert.deepEqual(h.status().steps.find((x) => x.step === 'call persistence')?.outcome, 'skipped');
    } finally {
      await h.stop('test');
    }
    assert.deepEqual((await r.keys()).sort(), ['old-call@pbx', OWNER_KEY].sort(), 'nothing of the other pod removed');
  } finally {
    r.close();
    await s.close();
    await redis.stop();
  }
});

test('config mode: rtpengine.conf gets redis and redis-write; the database is marked as this pod\'s', { skip, timeout: 120_000 }, async () => {
  const redis = await startRedis();
  const url = redis.url(14);
  const s = await setup(url);
  const conf = join(s.dir, 'rtpengine.conf');
  const config = { ...s.config, rtpengineMode: 'config' as const, rtpengineEra: 'mr11' as const, rtpengineConfig: conf, persistenceRestoreSeconds: 1, rtpengineStopWaitSeconds: 0 };
  const r = await RedisClient.connect(parseRedisUrl(url)!);
  try {
    const h = await startSidecar(config, { log: silentLogger, registry: createRegistry({ defaultMetrics: false }) });
    try {
      const text = readFileSync(conf, 'utf8');
      assert.match(text, new RegExp(`^redis = 127\\.0\\.0\\.1:${redis.port}/14$`, 'm'));
      assert.match(text, new RegExp(`^redis-write = 127\\.0\\.0\\.1:${redis.port}/14$`, 'm'));
      assert.equal(JSON.parse((await r.get(OWNER_KEY))!).podUid, s.config.podUid);
    } finally {
      await h.stop('test');
    }
  } finally {
    r.close();
    await s.close();
    await redis.stop();
  }
});

/** Supervised restart (exec mode): kill -9 of rtpengine alone; the sidecar restarts it with the same options. */
async function supervisedCrash(persist: boolean) {
  const redis = persist ? await startRedis() : undefined;
  const s = await setup(redis?.url(15));
  const client = new NgUdpClient({ host: '127.0.0.1', port: s.ng, timeoutMs: 1000, retries: 2 });
  const registry = createRegistry({ defaultMetrics: false });
  const run = randomBytes(4).toString('hex');
  const ids = Array.from({ length: 6 }, (_, i) => `sv-${run}-${i}@pbx`);
  const h = await startSidecar(s.config, { log: silentLogger, registry });
  try {
    for (const [i, id] of ids.entries()) {
      assert.equal((await client.command({ command: 'offer', 'call-id': id, 'from-tag': 'a', sdp: sampleSdp('127.0.0.1', 40000 + i * 4), supports: ['load limit'] })).result, 'ok');
      assert.equal((await client.command({ command: 'answer', 'call-id': id, 'from-tag': 'a', 'to-tag': 'b', sdp: sampleSdp('127.0.0.1', 42000 + i * 4) })).result, 'ok');
    }
    const pid1 = h.status().rtpenginePid!;
    process.kill(pid1, 'SIGKILL');
    await waitFor('rtpengine restarted and ready', () => h.status().rtpenginePid !== pid1 && (h.status().proxy as { rtpengine: { up: boolean | null } }).rtpengine.up === true, { timeoutMs: 60_000 });
    assert.equal(h.status().rtpengineRestarts, 1);
    const answers = new Map<string, string>();
    for (const id of ids) {
      answers.set(id, await client.command({ command: 'query', 'call-id': id }).then((r) => String(r.result), (e: unknown) => (isCoded(e, 'NG_REMOTE_ERROR') ? 'error' : String(e))));
    }
    return { answers, metrics: await registry.metrics(), sessions: h.status().sessions };
  } finally {
    await h.stop('test');
    client.close();
    await s.close();
    await redis?.stop();
  }
}

test('supervised restart (exec mode): with persistence, rtpengine killed -9 comes back with every call before it gets traffic again', { skip, timeout: 180_000 }, async () => {
  const r = await supervisedCrash(true);
  for (const [id, res] of r.answers) assert.equal(res, 'ok', id);
  assert.equal(metric(r.metrics, 'rtpengine_k8s_persistence_restored_calls'), r.answers.size);
  assert.equal(r.sessions, r.answers.size);
});

test('supervised restart without persistence: the same kill -9 loses every call', { skip, timeout: 180_000 }, async () => {
  const r = await supervisedCrash(false);
  for (const [id, res] of r.answers) assert.equal(res, 'error', id);
});
