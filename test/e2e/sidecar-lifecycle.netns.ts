// Runs INSIDE a network namespace created by sidecar-lifecycle.test.ts (never on its own): a real
// allocator (file store), the Kubernetes API stand-in, the sidecar as a child process in exec mode
// with a real rtpengine, real iptables and a real media address on the namespace's veth `media0`.
// Stand-ins: /proc/rtpengine is a directory (so the sidecar takes the kernel path and passes
// --table=N), and the RTPENGINE target is swapped for ACCEPT (no module: it cannot load here).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { randomUUID, randomBytes } from 'node:crypto';
import { startAllocator, type AllocatorHandle } from '../../src/allocator/allocator.js';
import { AllocatorClient } from '../../src/allocator/client.js';
import { parseTableRange } from '../../src/allocator/tables.js';
import { NgUdpClient } from '../../src/ng/client.js';
import { silentLogger } from '../../src/log.js';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-apiserver.js';
import { freePort, freePortRange } from '../support/ports.js';
import { DELETION_COST_ANNOTATION, MIN_DELETION_COST } from '../../src/sidecar/deletion-cost.js';

const NETNS = process.env.RTPE_K8S_NETNS;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}
const sh = (bin: string, ...args: string[]) => execFileSync(bin, args, { encoding: 'utf8' });
const cmdline = (pid: number) => { try { return execFileSync('cat', [`/proc/${pid}/cmdline`], { encoding: 'utf8' }).split('\0'); } catch { return undefined; } };
const alive = (pid: number) => { try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; } };

interface Running { proc: ChildProcess; out: () => string; exit: Promise<{ code: number | null; signal: string | null }> }

test('sidecar lifecycle in exec mode with real rtpengine, iptables and a media address', { skip: NETNS ? false : 'runs only inside the namespace of sidecar-lifecycle.test.ts', timeout: 180_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rtpe-sidecar-e2e-'));
  const proc = join(dir, 'proc-rtpengine');
  await mkdir(proc);
  await writeFile(join(proc, 'control'), '');
  await writeFile(join(proc, 'list'), '');
  const uid = randomUUID();
  const socket = join(dir, 'allocator.sock');
  let kube: KubeApiServer | undefined;
  let alloc: AllocatorHandle | undefined;
  const children: Running[] = [];
  let rtpPid = 0;
  const ng = new Map<number, NgUdpClient>();
  try {
    kube = await startKubeApiServer();
    kube.store.addPod({ namespace: 'media', name: 'rtpe-a', nodeName: 'node-e2e', uid });
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, kube.kubeconfig().exportConfig());

    alloc = await startAllocator({
      node: 'node-e2e', socket, tableRange: parseTableRange('10-20'),
      pools: [{ name: 'media', cidr: '10.99.5.0/24', rangeStart: '10.99.5.10' }],
      stateFile: join(dir, 'state.json'), procRoot: proc, leaseTtlMs: 60_000, sweepIntervalMs: 1000,
    }, { log: silentLogger });

    const ngPort = await freePort();
    const upPort = await freePort();
    const ctlPort = await freePort();
    const { min, max } = await freePortRange(40);
    const args = [
      '--import', 'tsx', 'src/cli.ts', 'sidecar', '--rtpengine-mode', 'exec', '--allocator-socket', socket,
      '--proc-root', proc, '--iptables-target', 'ACCEPT', '--media-address-mode', 'reserved', '--media-interface', 'media0',
      '--ng-listen', `127.0.0.1:${ngPort}`, '--ng-upstream', `127.0.0.1:${upPort}`, '--control-listen', `127.0.0.1:${ctlPort}`,
      '--port-min', String(min), '--port-max', String(max), '--run-dir', join(dir, 'run'), '--kubeconfig', kubeconfig,
      '--deletion-cost-interval-seconds', '1', '--delete-delay-seconds', '0', '--ng-drain-poll-ms', '200',
      '--rtpengine-options', '{"num-threads":2}', '--log-level', 'debug', '--drain-linger-seconds', '1',
    ];
    const env = { ...process.env, POD_NAME: 'rtpe-a', POD_NAMESPACE: 'media', POD_UID: uid, NODE_NAME: 'node-e2e' };
    const start = (): Running => {
      const p = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout!.on('data', (c) => { out = (out + c).slice(-200_000); });
      p.stderr!.on('data', (c) => { out = (out + c).slice(-200_000); });
      const exit = new Promise<{ code: number | null; signal: string | null }>((r) => p.once('exit', (code, signal) => r({ code, signal })));
      const run = { proc: p, out: () => out, exit };
      children.push(run);
      return run;
    };
    const ready = async (r: Running) => until(`sidecar ready\n${r.out().slice(-3000)}`, async () => {
      const res = await fetch(`http://127.0.0.1:${ctlPort}/readyz`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    }, 30_000);
    const status = async () => (await (await fetch(`http://127.0.0.1:${ctlPort}/status`)).json()) as { table: number; mediaIps: string[]; rtpenginePid: number; state: string; sessions: number };
    const client = new AllocatorClient({ socket });
    const kill = (pid: number, sig: NodeJS.Signals) => { try { process.kill(pid, sig); } catch { /* gone */ } };

    // --- start → Acquire → rtpengine with the allocated table and media IP ---------------------
    let side = start();
    await ready(side);
    const a1 = await client.get({ uid });
    const st1 = await status();
    rtpPid = st1.rtpenginePid;
    assert.equal(st1.table, a1.table);
    assert.deepEqual(st1.mediaIps, ['10.99.5.10']);
    const argv = cmdline(rtpPid)!;
    assert.ok(argv.includes(`--table=${a1.table}`), argv.join(' '));
    assert.ok(argv.includes('--interface=10.99.5.10'), argv.join(' '));
    assert.match(sh('ip', '-j', 'addr', 'show', 'dev', 'media0'), /"local":"10\.99\.5\.10"/);
    const rulesUp = sh('iptables-save', '-t', 'filter');
    assert.ok(rulesUp.includes(`-A RTPE-K8S-T${a1.table} -d 10.99.5.10/32 -p udp -m udp --dport ${min}:${max} -j ACCEPT`), rulesUp);
    assert.equal(rulesUp.split('\n').filter((l) => l.includes(`-j RTPE-K8S-T${a1.table}`)).length, 1);

    // --- an active call through the sidecar: the offer's c= carries the media IP -----------------
    const ngc = new NgUdpClient({ host: '127.0.0.1', port: ngPort, timeoutMs: 1000, retries: 3 });
    ng.set(ngPort, ngc);
    const callId = `e2e-${randomBytes(6).toString('hex')}`;
    const sdp = 'v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n';
    const offer = await ngc.command({ command: 'offer', 'call-id': callId, 'from-tag': 'ft1', sdp });
    assert.equal(offer.result, 'ok');
    assert.match(String(offer.sdp), /c=IN IP4 10\.99\.5\.10\r\n/, String(offer.sdp));
    await until('pod-deletion-cost 1 for one session', () => kube!.store.get('pods', 'media', 'rtpe-a')?.metadata.annotations?.[DELETION_COST_ANNOTATION] === '1' || undefined);

    // --- kill -9 the sidecar: its rtpengine dies with it (parent-death signal, #15 defect 10) -----
    //     and a restart gets the same table and IP with a fresh rtpengine (call state is gone).
    kill(side.proc.pid!, 'SIGKILL');
    await side.exit;
    await until('rtpengine gone with its sidecar', () => (alive(rtpPid) ? undefined : true));
    side = start();
    await ready(side);
    const a2 = await client.get({ uid });
    const st2 = await status();
    assert.equal(a2.table, a1.table, 'same table after restart');
    assert.deepEqual(a2.addresses.map((x) => x.ip), ['10.99.5.10'], 'same media IP after restart');
    assert.notEqual(st2.rtpenginePid, rtpPid, 'a fresh rtpengine');
    rtpPid = st2.rtpenginePid;
    const argv2 = cmdline(rtpPid)!;
    assert.ok(argv2.includes(`--table=${a1.table}`) && argv2.includes('--interface=10.99.5.10'), argv2.join(' '));
    const rulesAgain = sh('iptables-save', '-t', 'filter');
    assert.equal(rulesAgain.split('\n').filter((l) => l.includes(`-j RTPE-K8S-T${a1.table}`)).length, 1, rulesAgain);
    assert.equal(rulesAgain.split('\n').filter((l) => l.startsWith(`-A RTPE-K8S-T${a1.table} `)).length, 1, rulesAgain);
    const offer2 = await ngc.command({ command: 'offer', 'call-id': callId, 'from-tag': 'ft1', sdp });
    assert.equal(offer2.result, 'ok', 'the call set up again on the fresh rtpengine');
    await until('call known after restart', async () => ((await status()).sessions === 1 ? true : undefined));

    // --- SIGTERM: it drains and waits while the call is up -------------------------------------
    kill(side.proc.pid!, 'SIGTERM');
    await until('draining', async () => ((await status()).state === 'draining' ? true : undefined));
    await until('pod-deletion-cost at the minimum', () => kube!.store.get('pods', 'media', 'rtpe-a')?.metadata.annotations?.[DELETION_COST_ANNOTATION] === String(MIN_DELETION_COST) || undefined);
    const refused = await ngc.request({ command: 'offer', 'call-id': `${callId}-new`, 'from-tag': 'x', sdp, supports: ['load limit'] });
    assert.match(refused.reply.toString('latin1'), /load limit/, 'a new call is refused while draining');
    assert.equal((await status()).state, 'draining', 'the sidecar waits for the active call');
    assert.equal(side.proc.exitCode, null);

    // --- delete the call → it exits 0; released, rules and address gone -------------------------
    const del = await ngc.command({ command: 'delete', 'call-id': callId, 'from-tag': 'ft1' });
    assert.equal(del.result, 'ok');
    const ex = await Promise.race([side.exit, sleep(20_000).then(() => ({ code: -1, signal: 'timeout' }))]);
    assert.deepEqual(ex, { code: 0, signal: null }, side.out().slice(-4000));
    assert.equal(alive(rtpPid), false, 'rtpengine stopped');
    // Released: gone, or kept by the allocator only to clean the kernel table (never 'active').
    const after = await client.get({ uid }).then((a) => a.state, (e: any) => e.code as string);
    if (process.env.RTPE_K8S_DEBUG_OUT) await writeFile(process.env.RTPE_K8S_DEBUG_OUT, side.out());
    assert.ok(['ALLOC_NOT_FOUND', 'released', 'releasing'].includes(after), `allocation after exit: ${after}`);
    assert.match(side.out(), /"found":true[^\n]*"msg":"allocation released"/);
    const rulesDown = sh('iptables-save', '-t', 'filter');
    assert.ok(!rulesDown.includes('RTPE-K8S'), rulesDown);
    assert.doesNotMatch(sh('ip', '-j', 'addr', 'show', 'dev', 'media0'), /10\.99\.5\.10/);
    client.close();
  } finally {
    for (const c of ng.values()) c.close();
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
    if (rtpPid && alive(rtpPid)) process.kill(rtpPid, 'SIGKILL');
    await alloc?.close();
    await kube?.close();
    await rm(dir, { recursive: true, force: true });
  }
});
