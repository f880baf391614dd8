// The allocator over a real unix socket: typed client, error mapping, health, socket rules,
// 64 concurrent Acquires, metrics, and the ctl command through the real CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import http2 from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAllocator, type AllocatorConfig } from '../../src/allocator/allocator.js';
import { AllocatorClient } from '../../src/allocator/client.js';
import { ProcRtpengine } from '../support/proc-rtpengine.js';
import type { ProcFs } from '../../src/allocator/kernel.js';
import { silentLogger } from '../../src/log.js';
import { isCoded, GrpcStatus } from '../../src/errors.js';
import { freePort } from '../support/ports.js';
import { mountSkip, mountTmpfs } from '../support/small-tmpfs.js';
import { waitFor } from '../support/wait.js';
import { captureLog } from '../support/log-capture.js';

const run = promisify(execFile);

function setup(over: Partial<AllocatorConfig> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'alloc-e2e-'));
  const proc = new ProcRtpengine();
  const config: AllocatorConfig = {
    node: 'node-a', socket: join(dir, 'run', 'allocator.sock'), tableRange: { min: 0, max: 63 },
    pools: [{ name: 'media', cidr: '10.20.0.0/24', gateway: '10.20.0.1', exclude: ['10.20.0.1'] }, { name: 'v6', cidr: 'fd00:20::/64' }],
    stateFile: join(dir, 'state', 'allocator.json'), procRoot: proc.root, leaseTtlMs: 30_000, sweepIntervalMs: 200, ...over,
  };
  return { dir, proc, config, done: () => { rmSync(dir, { recursive: true, force: true }); proc.remove(); } };
}

test('gRPC: acquire/renew/get/list/release over the unix socket, errors mapped to coded statuses', async () => {
  const w = setup();
  const h = await startAllocator(w.config, { log: silentLogger, procFs: w.proc });
  const c = new AllocatorClient({ socket: w.config.socket });
  try {
    assert.equal(statSync(w.config.socket).mode & 0o777, 0o660);
    assert.equal(await c.health(), 'SERVING');
    const p = { namespace: 'voice', name: 'rtpengine-0', uid: 'u-0' };
    const a = await c.acquire({ pod: p, pools: ['media', 'v6'], interface: 'net1' });
    assert.equal(a.node, 'node-a');
    assert.equal(a.table, 0);
    assert.deepEqual(a.addresses.map((x) => [x.pool, x.ip, x.prefixLength, x.gateway, x.offset]), [['media', '10.20.0.2', 24, '10.20.0.1', '2'], ['v6', 'fd00:20::1', 64, '', '1']]);
    assert.equal(a.state, 'active');
    assert.equal(a.leaseTtlMs, 30_000);
    assert.ok(a.leaseExpiresAt > Date.now());
    assert.deepEqual((await c.acquire({ pod: p, pools: ['media', 'v6'] })).table, 0);
    const r = await c.renew('u-0');
    assert.ok(r.renewedAt >= a.renewedAt);
    assert.equal((await c.get({ namespace: 'voice', name: 'rtpengine-0' })).pod.uid, 'u-0');
    const l = await c.list();
    assert.equal(l.node, 'node-a');
    assert.equal(l.tablesTotal, 64);
    assert.equal(l.tablesFree, 63);
    assert.equal(l.allocations.length, 1);

    // Coded errors survive the wire: code, gRPC status and details.
    await assert.rejects(c.acquire({ pod: { namespace: 'voice', name: 'x', uid: '' } }), (e) => isCoded(e, 'ALLOC_INVALID_ARGUMENT') && e.grpcStatus === GrpcStatus.INVALID_ARGUMENT && e.details.field === 'pod.uid');
    await assert.rejects(c.acquire({ pod: { namespace: 'voice', name: 'x', uid: 'u-x' }, pools: ['nope'] }), (e) => isCoded(e, 'ALLOC_UNKNOWN_POOL') && e.details.pool === 'nope');
    await assert.rejects(c.renew('unknown'), (e) => isCoded(e, 'ALLOC_NOT_FOUND') && e.grpcStatus === GrpcStatus.NOT_FOUND);
    await assert.rejects(c.get({ uid: 'unknown' }), (e) => isCoded(e, 'ALLOC_NOT_FOUND'));

    const rel = await c.release({ uid: 'u-0' });
    assert.deepEqual([rel.found, rel.allocation?.state], [true, 'released']);
    assert.deepEqual(await c.release({ uid: 'u-0' }), { found: false, allocation: undefined });
    assert.equal((await c.list()).allocations.length, 0);
  } finally {
    c.close();
    await h.close();
    w.done();
  }
});

test('gRPC: 64 concurrent Acquires get 64 distinct tables and IPs; the 65th is RESOURCE_EXHAUSTED naming tables and node', async () => {
  const w = setup();
  const h = await startAllocator(w.config, { log: silentLogger, procFs: w.proc });
  const c = new AllocatorClient({ socket: w.config.socket });
  try {
    const all = await Promise.all(Array.from({ length: 64 }, (_, i) => c.acquire({ pod: { namespace: 'voice', name: `rtp-${i}`, uid: `uid-${i}` } })));
    assert.equal(new Set(all.map((a) => a.table)).size, 64);
    assert.equal(new Set(all.map((a) => a.addresses[0]!.ip)).size, 64);
    await assert.rejects(c.acquire({ pod: { namespace: 'voice', name: 'rtp-64', uid: 'uid-64' } }),
      (e) => isCoded(e, 'ALLOC_TABLES_EXHAUSTED') && e.grpcStatus === GrpcStatus.RESOURCE_EXHAUSTED && /node-a/.test(e.message) && e.details.node === 'node-a');
    // Everything acknowledged is on disk: a restart sees the same 64.
    await h.close();
    const h2 = await startAllocator(w.config, { log: silentLogger, procFs: w.proc });
    try {
      const c2 = new AllocatorClient({ socket: w.config.socket });
      const l = await c2.list();
      assert.deepEqual(l.allocations.map((a) => a.pod.uid).sort(), all.map((a) => a.pod.uid).sort());
      c2.close();
    } finally { await h2.close(); }
  } finally {
    c.close();
    await h.close();
    w.done();
  }
});

test('socket: a second allocator refuses with ALLOC_SOCKET_IN_USE; a stale socket file is replaced', async () => {
  const w = setup();
  const h = await startAllocator(w.config, { log: silentLogger, procFs: w.proc });
  try {
    await assert.rejects(startAllocator({ ...w.config, stateFile: join(w.dir, 'other.json') }, { log: silentLogger, procFs: w.proc }),
      (e) => isCoded(e, 'ALLOC_SOCKET_IN_USE') && e.message.includes(w.config.socket));
    const c = new AllocatorClient({ socket: w.config.socket });
    assert.equal(await c.health(), 'SERVING', 'the first allocator still serves');
    c.close();
  } finally { await h.close(); }
  // Leave a socket file nobody listens on (a crashed allocator's).
  // A process that bound the socket and was SIGKILLed leaves the file; nothing answers on it.
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(w.config.socket)}, () => process.stdout.write('up'))`]);
  await new Promise<void>((r) => child.stdout.once('data', () => r()));
  child.kill('SIGKILL');
  await new Promise<void>((r) => child.once('exit', () => r()));
  assert.ok(statSync(w.config.socket).isSocket());
  const h2 = await startAllocator(w.config, { log: silentLogger, procFs: w.proc });
  try {
    const c = new AllocatorClient({ socket: w.config.socket });
    assert.equal(await c.health(), 'SERVING');
    c.close();
  } finally { await h2.close(); w.done(); }
  // A non-socket file at the path is never removed.
  const w3 = setup();
  try {
    (await import('node:fs')).mkdirSync(join(w3.dir, 'run'), { recursive: true });
    writeFileSync(w3.config.socket, 'not a socket');
    await assert.rejects(startAllocator(w3.config, { log: silentLogger, procFs: w3.proc }), (e) => isCoded(e, 'ALLOC_SOCKET_IN_USE') && /not a socket/.test(e.message));
  } finally { w3.done(); }
});

/** The stand-in's ProcFs, recording every call (a refused allocator must not touch /proc at all). */
function recording(fs: ProcFs): { fs: ProcFs; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    fs: {
      readFile: (p) => { calls.push(`read ${p}`); return fs.readFile(p); },
      writeFile: (p, d) => { calls.push(`write ${p} ${d.trim()}`); return fs.writeFile(p, d); },
      exists: (p) => { calls.push(`exists ${p}`); return fs.exists(p); },
    },
  };
}

test('socket: a second allocator on a live socket refuses before touching the state file, /proc or the Kubernetes API', async () => {
  const w = setup();
  const h = await startAllocator(w.config, { log: silentLogger, procFs: w.proc });
  const api = createServer((_req, res) => { apiRequests++; res.writeHead(500).end(); });
  let apiRequests = 0;
  try {
    const c = new AllocatorClient({ socket: w.config.socket });
    await c.acquire({ pod: { namespace: 'voice', name: 'p0', uid: 'u-0' } });
    c.close();
    // A leftover table nobody holds: a second allocator that got as far as sweeping would `del` it.
    w.proc.daemonStart(40);
    w.proc.daemonClose(40);
    const state = readFileSync(w.config.stateFile, 'utf8');
    const mtime = statSync(w.config.stateFile).mtimeMs;
    const rec = recording(w.proc);
    // Same socket AND same state file: the socket check comes first (not the state lock).
    await assert.rejects(startAllocator(w.config, { log: silentLogger, procFs: rec.fs }),
      (e) => isCoded(e, 'ALLOC_SOCKET_IN_USE') && e.message.includes(w.config.socket));
    assert.deepEqual(rec.calls, [], 'no /proc access');
    assert.equal(readFileSync(w.config.stateFile, 'utf8'), state);
    assert.equal(statSync(w.config.stateFile).mtimeMs, mtime);
    assert.deepEqual(w.proc.tables(), [40]);

    // Kubernetes mode: refused before the informer, resync or any release reaches the API.
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', () => r()));
    const kubeconfig = join(w.dir, 'kubeconfig');
    writeFileSync(kubeconfig, JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'x',
      clusters: [{ name: 'c', cluster: { server: `http://127.0.0.1:${(api.address() as { port: number }).port}` } }],
      users: [{ name: 'u', user: { token: 't' } }], contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    }));
    await assert.rejects(startAllocator({ ...w.config, kubernetes: { kubeconfig, leaseNamespace: 'kube-system', poolNamespace: 'kube-system', ipMode: 'reserve', networkStatusInterface: 'net1', resyncIntervalMs: 60_000 } },
      { log: silentLogger, procFs: rec.fs }), (e) => isCoded(e, 'ALLOC_SOCKET_IN_USE'));
    assert.equal(apiRequests, 0, 'no request to the Kubernetes API');
    assert.deepEqual(rec.calls, []);
    assert.deepEqual(w.proc.tables(), [40]);
  } finally { api.close(); await h.close(); w.done(); }
});

test('state: two allocators on one state file with different sockets → the second refuses with ALLOC_STATE_LOCKED', async () => {
  const w = setup();
  const h = await startAllocator(w.config, { log: silentLogger, procFs: w.proc });
  try {
    const c = new AllocatorClient({ socket: w.config.socket });
    await c.acquire({ pod: { namespace: 'voice', name: 'p0', uid: 'u-0' } });
    const state = readFileSync(w.config.stateFile, 'utf8');
    const rec = recording(w.proc);
    const other = join(w.dir, 'run', 'other.sock');
    await assert.rejects(startAllocator({ ...w.config, socket: other }, { log: silentLogger, procFs: rec.fs }),
      (e) => isCoded(e, 'ALLOC_STATE_LOCKED') && e.message.includes(w.config.stateFile));
    assert.ok(!existsSync(other), 'the refused allocator does not serve');
    assert.deepEqual(rec.calls, [], 'no /proc access');
    assert.equal(readFileSync(w.config.stateFile, 'utf8'), state);
    assert.equal(await c.health(), 'SERVING', 'the first allocator still serves');
    c.close();
  } finally { await h.close(); }
  // Once the first one is stopped, the lock is free again.
  const h2 = await startAllocator({ ...w.config, socket: join(w.dir, 'run', 'other.sock') }, { log: silentLogger, procFs: w.proc });
  try {
    assert.deepEqual(h2.service.list().allocations.map((a) => a.pod.uid), ['u-0']);
  } finally { await h2.close(); w.done(); }
});

test('state: a corrupt state file with no previous generation stops start-up with the path and reason', async () => {
  const w = setup();
  try {
    (await import('node:fs')).mkdirSync(join(w.dir, 'state'), { recursive: true });
    writeFileSync(w.config.stateFile, '{ half');
    await assert.rejects(startAllocator(w.config, { log: silentLogger, procFs: w.proc }), (e) => isCoded(e, 'ALLOC_STATE_CORRUPT') && e.message.includes(w.config.stateFile) && /no previous generation/.test(e.message));
    assert.equal(readFileSync(w.config.stateFile, 'utf8'), '{ half', 'left as it was');
  } finally { w.done(); }
});

test('state: one bad byte → start from the previous generation, reconciled with /proc, logged loudly and counted; both generations bad → refused (issue 14.3)', async () => {
  const w = setup({ leaseTtlMs: 0 });
  const pod = (n: string) => ({ namespace: 'voice', name: `rtp-${n}`, uid: `uid-${n}` });
  let h = await startAllocator(w.config, { log: silentLogger, procFs: w.proc });
  const c = new AllocatorClient({ socket: w.config.socket });
  let a: Awaited<ReturnType<AllocatorClient['acquire']>>, b: typeof a, lost: typeof a;
  try {
    a = await c.acquire({ pod: pod('a') });
    b = await c.acquire({ pod: pod('b') });
    lost = await c.acquire({ pod: pod('c') }); // only in the current generation
  } finally { c.close(); await h.close(); }
  w.proc.daemonStart(lost.table, 4711); // its rtpengine still runs
  const text = readFileSync(w.config.stateFile, 'utf8');
  const at = text.indexOf('"uid-a":{') + 3;
  writeFileSync(w.config.stateFile, `${text.slice(0, at)}\u0000${text.slice(at + 1)}`);
  const bad = readFileSync(w.config.stateFile);
  assert.notDeepEqual(bad.toString('utf8'), text);

  const mport = await freePort();
  const cap = captureLog();
  h = await startAllocator({ ...w.config, metricsListen: `127.0.0.1:${mport}` }, { log: cap.log, procFs: w.proc });
  const c2 = new AllocatorClient({ socket: w.config.socket });
  try {
    const l = await c2.list();
    assert.deepEqual(l.allocations.map((x) => [x.pod.uid, x.table, x.addresses[0]!.ip]), [['uid-a', a.table, a.addresses[0]!.ip], ['uid-b', b.table, b.addresses[0]!.ip]]);
    const rec = cap.lines.find((x) => x.decision === 'state-recovered');
    assert.ok(rec, 'the recovery is logged');
    assert.equal(rec.level, 50, 'at error level');
    assert.match(String(rec.msg), /STATE FILE DAMAGED/);
    assert.deepEqual((rec.dropped as Array<{ uid: string }>).map((x) => x.uid), ['uid-c']);
    assert.deepEqual((rec.unknownKernelTables as Array<{ table: number }>).map((x) => x.table), [lost.table]);
    assert.ok(cap.lines.some((x) => x.decision === 'state-recovery-dropped' && x.uid === 'uid-c'));
    const kept = String(rec.damagedKeptAs);
    assert.deepEqual(readFileSync(kept), bad, 'the damaged file is kept for inspection');
    const m = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
    assert.match(m, /rtpengine_k8s_allocator_state_recoveries_total 1/);
    assert.match(m, /rtpengine_k8s_allocator_state_recovery_allocations\{outcome="recovered"\} 2/);
    assert.match(m, /rtpengine_k8s_allocator_state_recovery_allocations\{outcome="dropped"\} 1/);
    assert.match(m, /rtpengine_k8s_allocator_state_recovery_allocations\{outcome="unknown_kernel_table"\} 1/);
    // The lost pod's sidecar renews with what it holds: re-adopted (same table and IP), counted.
    await assert.rejects(c2.renew('uid-c'), (e) => isCoded(e, 'ALLOC_NOT_FOUND'), 'a plain Renew of a lost record is not found');
    await assert.rejects(c2.renew('uid-z', { ...lost, pod: pod('z'), table: a.table }), (e) => isCoded(e, 'ALLOC_NOT_FOUND'), 'a claim on a held table is refused');
    const back = await c2.renew('uid-c', lost);
    assert.deepEqual([back.table, back.addresses[0]!.ip, back.state], [lost.table, lost.addresses[0]!.ip, 'active']);
    assert.ok(cap.lines.some((x) => x.decision === 'readopt' && x.uid === 'uid-c'));
    assert.ok(cap.lines.some((x) => x.decision === 'readopt-refused' && x.uid === 'uid-z'));
    const m2 = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
    assert.match(m2, /rtpengine_k8s_allocator_state_recovery_allocations\{outcome="readopted"\} 1/);
    // The lost pod's table stays out of use while its daemon holds it.
    const d = await c2.acquire({ pod: pod('d') });
    assert.notEqual(d.table, lost.table);
    assert.notEqual(d.table, a.table);
    assert.notEqual(d.table, b.table);
  } finally { c2.close(); await h.close(); }

  // Both generations damaged: refused, never an empty start.
  writeFileSync(w.config.stateFile, '{ half');
  writeFileSync(`${w.config.stateFile}.prev`, '{ also half');
  await assert.rejects(startAllocator(w.config, { log: silentLogger, procFs: w.proc }),
    (e) => isCoded(e, 'ALLOC_STATE_CORRUPT') && /previous generation .* is unusable too/.test(e.message));
  w.done();
});

test('TCP listener, /metrics and /healthz, and ctl list/release through the CLI', async () => {
  const w = setup({ leaseTtlMs: 0 });
  const mport = await freePort();
  const h = await startAllocator({ ...w.config, tcpListen: '0', metricsListen: `127.0.0.1:${mport}` }, { log: silentLogger, procFs: w.proc });
  try {
    assert.match(h.tcpAddress!, /^127\.0\.0\.1:\d+$/);
    const tcp = new AllocatorClient({ address: h.tcpAddress });
    const a = await tcp.acquire({ pod: { namespace: 'voice', name: 'rtp-a', uid: 'uid-a' } });
    assert.equal(a.leaseExpiresAt, 0, 'TTL 0: never expires');
    await tcp.acquire({ pod: { namespace: 'voice', name: 'rtp-b', uid: 'uid-b' } });
    tcp.close();
    const m = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
    assert.match(m, /rtpengine_k8s_allocator_tables\{state="in_use"\} 2/);
    assert.match(m, /rtpengine_k8s_allocator_tables\{state="free"\} 62/);
    assert.match(m, /rtpengine_k8s_allocator_pool_addresses\{pool="media",state="in_use"\} 2/);
    assert.match(m, /rtpengine_k8s_allocator_acquire_duration_seconds_count\{outcome="new"\} 2/);
    assert.equal((await fetch(`http://127.0.0.1:${mport}/healthz`)).status, 200);

    const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'ctl', ...args, '--socket', w.config.socket], { cwd: process.cwd() });
    const list = await cli('list');
    assert.match(list.stdout, /^POD\s+UID\s+TABLE\s+IP\s+AGE\s+STATE/m);
    assert.match(list.stdout, /voice\/rtp-a\s+uid-a\s+0\s+10\.20\.0\.2\/24\s+\d+s\s+active/);
    assert.match(list.stdout, /2 allocation\(s\), 62 of 64 tables free/);
    w.proc.daemonStart(1, 4321); // rtp-b's daemon still holds table 1
    const rel = await cli('release', 'voice/rtp-b');
    assert.match(rel.stdout, /voice\/rtp-b \(uid uid-b\) table 1: busy-table/);
    const relA = await cli('release', 'uid-a');
    assert.match(relA.stdout, /table 0: released/);
    w.proc.daemonClose(1);
    await h.service.sweep();
    assert.equal((await cli('list')).stdout.includes('rtp-b'), false);
    assert.deepEqual(w.proc.tables(), []);
    const m2 = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
    assert.match(m2, /rtpengine_k8s_allocator_table_cleanups_total\{result="busy"\} [1-9]/, "retried while busy");
  } finally {
    await h.close();
    w.done();
  }
});

test('state: a read-only state directory stops start-up with ALLOC_STATE_DIR_UNWRITABLE and an explained message, also through the CLI (issue 14.7)', { skip: mountSkip() }, async () => {
  const w = setup();
  const fs = mountTmpfs(64);
  try {
    // A state file written while the directory was writable, then the file system remounted read-only.
    const stateFile = join(fs.dir, 'state', 'allocator.json');
    const h = await startAllocator({ ...w.config, stateFile }, { log: silentLogger, procFs: w.proc });
    await h.close();
    execFileSync('mount', ['-o', 'remount,ro', fs.dir]);
    for (const f of [stateFile, join(fs.dir, 'new', 'allocator.json')]) {
      await assert.rejects(startAllocator({ ...w.config, stateFile: f }, { log: silentLogger, procFs: w.proc }),
        (e) => isCoded(e, 'ALLOC_STATE_DIR_UNWRITABLE') && /read-only file system/.test(e.message) && e.message.includes(join(fs.dir)) && /Mount it read-write/.test(e.message));
    }
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'allocator', '--socket', w.config.socket, '--state-file', stateFile, '--proc-root', w.proc.root], { encoding: 'utf8' });
    assert.equal(r.status, 73, `exit ${r.status}: ${r.stderr}`);
    assert.match(r.stderr + r.stdout, /ALLOC_STATE_DIR_UNWRITABLE/);
    assert.doesNotMatch(r.stderr + r.stdout, /\n\s+at .*\.ts:\d+/, 'no stack trace');
  } finally { fs.close(); w.done(); }
});

test('hostile fields: 1 MB names, UIDs, pools and reasons are refused naming the field, never echoed; the connection keeps working (issue 14.5)', async () => {
  const w = setup();
  const h = await startAllocator(w.config, { log: silentLogger, procFs: w.proc });
  const c = new AllocatorClient({ socket: w.config.socket });
  try {
    const mb = 'a'.repeat(1 << 20);
    const big = 'b'.repeat(40_000); // under the transport limit: the field bound answers
    const ok = { namespace: 'voice', name: 'rtp-0', uid: 'u-0' };
    const calls: Array<[string, () => Promise<unknown>, string]> = [
      ['pod.name', () => c.acquire({ pod: { ...ok, name: big } }), 'pod.name'],
      ['pod.namespace', () => c.acquire({ pod: { ...ok, namespace: big } }), 'pod.namespace'],
      ['pod.uid', () => c.acquire({ pod: { ...ok, uid: big } }), 'pod.uid'],
      ['pool', () => c.acquire({ pod: ok, pools: [big] }), 'pools[0]'],
      ['many pools', () => c.acquire({ pod: ok, pools: Array.from({ length: 100 }, (_, i) => `p${i}`) }), 'pools'],
      ['renew uid', () => c.renew(big), 'uid'],
      ['release uid', () => c.release({ uid: big }), 'uid'],
      ['release name', () => c.release({ namespace: 'voice', name: big }), 'name'],
      ['release reason', () => c.release({ uid: 'u-0' }, big), 'reason'],
      ['get uid', () => c.get({ uid: big }), 'uid'],
      ['1 MB name', () => c.acquire({ pod: { ...ok, name: mb } }), 'request'],
      ['1 MB pool', () => c.acquire({ pod: ok, pools: [mb] }), 'request'],
      // Within the bounds but still not valid: echoed as a bounded prefix only.
      ['bad name', () => c.acquire({ pod: { ...ok, name: `X${'y'.repeat(250)}` } }), 'pod.name'],
      ['unknown pool', () => c.acquire({ pod: ok, pools: ['z'.repeat(253)] }), 'pools'],
      // Not ASCII: gRPC metadata is ASCII only (this once crashed the allocator).
      ['non-ASCII name', () => c.acquire({ pod: { ...ok, name: 'rtp-é\u0000☎' } }), 'pod.name'],
    ];
    for (const [what, call, field] of calls) {
      await assert.rejects(call(), (e) => {
        assert.ok(isCoded(e, 'ALLOC_INVALID_ARGUMENT') || isCoded(e, 'ALLOC_UNKNOWN_POOL'), `${what}: ${String(e).slice(0, 300)}`);
        if (isCoded(e, 'ALLOC_INVALID_ARGUMENT')) assert.equal(e.details.field, field, what);
        assert.ok(e.message.length < 1200, `${what}: message of ${e.message.length} characters`);
        assert.ok(JSON.stringify(e.details).length < 1200, `${what}: details of ${JSON.stringify(e.details).length} characters`);
        return true;
      });
      // The same connection still answers.
      assert.equal(await c.health(), 'SERVING', `after ${what}`);
    }
    assert.equal((await c.acquire({ pod: ok })).pod.uid, 'u-0');
  } finally { c.close(); await h.close(); w.done(); }
});

test('idle gRPC connections are closed (max_connection_idle), raw sockets too; a client in use reconnects transparently (issue 14.8)', { timeout: 60_000 }, async () => {
  const w = setup();
  const h = await startAllocator({ ...w.config, transport: { idleTimeoutMs: 300 } }, { log: silentLogger, procFs: w.proc });
  const sessions: http2.ClientHttp2Session[] = [];
  const raw: Socket[] = [];
  try {
    const closed: Array<Promise<void>> = [];
    for (let i = 0; i < 50; i++) {
      const s = http2.connect('http://localhost', { createConnection: () => netConnect(w.config.socket) });
      s.on('error', () => undefined);
      sessions.push(s);
      closed.push(new Promise((r) => s.once('close', () => r())));
      const r = netConnect(w.config.socket); // connects, reads, and never speaks HTTP/2
      r.resume();
      r.on('error', () => undefined);
      raw.push(r);
      closed.push(new Promise((res) => r.once('close', () => res())));
    }
    // Every idle connection is closed by the allocator (the test's timeout is the only bound).
    await Promise.all(closed);
    assert.ok(sessions.every((s) => s.closed || s.destroyed));
    const c = new AllocatorClient({ socket: w.config.socket });
    try {
      await c.acquire({ pod: { namespace: 'voice', name: 'rtp-0', uid: 'u-0' } });
      await new Promise<void>((r) => { const s = netConnect(w.config.socket); s.resume(); s.on('error', () => undefined); s.once('close', () => r()); }); // one more idle period passes
      assert.equal((await c.get({ uid: 'u-0' })).pod.uid, 'u-0', 'the client reconnects after its idle connection was closed');
    } finally { c.close(); }
  } finally {
    for (const s of sessions) s.destroy();
    for (const r of raw) r.destroy();
    await h.close();
    w.done();
  }
});

test('connection cap: beyond --max-connections a new connection is closed at once, logged and counted; a freed slot serves again (review 14/16 finding 6)', { timeout: 60_000 }, async () => {
  const w = setup();
  const mport = await freePort();
  const cap = captureLog();
  // Idle limit far away: only the cap can close these connections within the test.
  const h = await startAllocator({ ...w.config, metricsListen: `127.0.0.1:${mport}`, transport: { maxConnections: 4, idleTimeoutMs: 600_000 } }, { log: cap.log, procFs: w.proc });
  const held: Socket[] = [];
  const open = () => new Promise<Socket>((resolve, reject) => { const s = netConnect(w.config.socket); s.resume(); s.once('connect', () => resolve(s)); s.once('error', reject); });
  const closedSoon = (s: Socket) => new Promise<void>((r) => { if (s.destroyed) r(); else s.once('close', () => r()); });
  try {
    // A gRPC client holding a call-capable connection, and raw connections filling the cap.
    const c = new AllocatorClient({ socket: w.config.socket });
    assert.equal(await c.health(), 'SERVING');
    for (let i = 0; i < 3; i++) held.push(await open());
    const extra = await open();
    await closedSoon(extra); // the allocator closes it (the test's timeout is the only bound)
    const more = await Promise.all([open(), open()]);
    await Promise.all(more.map(closedSoon));
    assert.ok(held.every((s) => !s.destroyed), 'connections under the cap stay open');
    assert.equal(await c.health(), 'SERVING', 'the open gRPC connection still serves');
    const m = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
    assert.match(m, /rtpengine_k8s_allocator_connections_refused_total 3/);
    const line = cap.lines.find((l) => l.decision === 'connection-refused');
    assert.ok(line, 'the refusal is logged');
    assert.equal(line.maxConnections, 4);
    // A slot freed: a new client connects and is served.
    held.pop()!.destroy();
    const c2 = new AllocatorClient({ socket: w.config.socket });
    try {
      await waitFor('a freed slot to serve a new client', async () => { try { return (await c2.health()) === 'SERVING'; } catch { return false; } });
    } finally { c2.close(); }
    c.close();
  } finally {
    for (const s of held) s.destroy();
    await h.close();
    w.done();
  }
});
