import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processRunner } from '../exec.js';
import { createLogger, silentLogger } from '../log.js';
import { NgUdpClient } from '../ng/client.js';
import { SteppedClock } from '../../test/support/clock.js';
import { waitFor } from '../../test/support/wait.js';
import { systemClock } from '../clock.js';
import { requires } from '../../test/support/require.js';
import { freePort, freePortRange } from '../../test/support/ports.js';
import {
  classifyEra, detectKernel, detectVersion, parseVersion, planForwarding, renderArgs, renderConfig,
  rtpengineOptions, spawnRtpengine, waitNgReady,
} from './rtpengine.js';
import { writeFileAtomic } from '../fs/atomic-file.js';
import { isCoded } from '../errors.js';
import { mountSkip, mountTmpfs } from '../../test/support/small-tmpfs.js';

test('versions parse and classify into the three firewall eras', () => {
  const cases: Array<[string, string]> = [
    ['Version: 10.5.3.5-1+deb12u1', 'mr11'],
    ['Version: 11.5.1.20-1~bpo12+1', 'mr11'],
    ['Version: mr12.0.1.3', 'mr12'],
    ['Version: 13.5.1.2-1', 'mr12'],
    ['Version: 14.0.1.1', 'mr12'],
    ['Version: 14.1.1.0', 'mr14.1'],
    ['Version: 26.2.0.0+0~mr26.2.0.0', 'mr14.1'],
  ];
  for (const [out, era] of cases) assert.equal(classifyEra(parseVersion(out)!), era, out);
  assert.equal(parseVersion('rtpengine: unknown option'), undefined);
});

test('Debian 12 rtpengine on this machine is classified mr11', { skip: requires('rtpengine') }, async () => {
  const { version, era } = await detectVersion(processRunner, 'rtpengine');
  assert.equal(version.major, 10);
  assert.equal(era, 'mr11');
});

test('an unusable binary gives a coded error, not a guess', async () => {
  await assert.rejects(detectVersion(processRunner, '/nonexistent/rtpengine'), (e: any) => e.code === 'RTPENGINE_VERSION_UNKNOWN');
});

test('forwarding plan per era, and userspace or fatal without the module', () => {
  assert.deepEqual(planForwarding({ kernel: true, era: 'mr11', table: 5, requireKernel: false }), { table: 5, kernel: true, rules: 'iptables' });
  assert.deepEqual(planForwarding({ kernel: true, era: 'mr12', table: 5, requireKernel: false }), { table: 5, kernel: true, rules: 'daemon', nftablesChain: 'rtpe_k8s_5' });
  assert.equal(planForwarding({ kernel: true, era: 'mr14.1', table: 6, requireKernel: false }).nftablesChain, 'rtpe_k8s_6');
  assert.deepEqual(planForwarding({ kernel: false, era: 'mr11', table: 5, requireKernel: false }), { table: -1, kernel: false, rules: 'none' });
  assert.throws(() => planForwarding({ kernel: false, era: 'mr11', table: 5, requireKernel: true }), (e: any) => e.code === 'KERNEL_REQUIRED');
});

test('kernel detection looks for <procRoot>/control', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'proc-rtpe-'));
  try {
    assert.equal((await detectKernel(dir)).present, false);
    await writeFile(join(dir, 'control'), '');
    assert.equal((await detectKernel(dir)).present, true);
  } finally { await rm(dir, { recursive: true, force: true }); }
});

test('config file and argv carry the same managed options plus pass-through', async () => {
  const opts = rtpengineOptions({
    plan: { table: 4, kernel: true, rules: 'daemon', nftablesChain: 'rtpe_k8s_4' },
    addresses: ['10.1.0.4', '2001:db8::4'], interfaceName: 'pub', advertised: '203.0.113.4',
    ngHost: '127.0.0.1', ngPort: 2223, portMin: 30000, portMax: 30999, extra: { 'num-threads': 4, 'delete-delay': 0 },
  });
  assert.equal(renderConfig(opts), [
    '[rtpengine]', 'table = 4', 'interface = pub/10.1.0.4!203.0.113.4;pub/2001:db8::4!203.0.113.4', 'listen-ng = 127.0.0.1:2223',
    'port-min = 30000', 'port-max = 30999', 'nftables-chain = rtpe_k8s_4', 'num-threads = 4', 'delete-delay = 0', '',
  ].join('\n'));
  assert.deepEqual(renderArgs(opts).slice(0, 5), ['--config-file=none', '--foreground', '--log-stderr', '--table=4', '--interface=pub/10.1.0.4!203.0.113.4']);
  assert.throws(() => rtpengineOptions({ plan: { table: -1, kernel: false, rules: 'none' }, addresses: ['127.0.0.1'], ngHost: '127.0.0.1', ngPort: 1, portMin: 1, portMax: 2, extra: { table: 3 } }),
    (e: any) => e.code === 'RTPENGINE_OPTION_MANAGED');
  const dir = await mkdtemp(join(tmpdir(), 'rtpe-conf-'));
  try {
    await writeFileAtomic(join(dir, 'sub', 'rtpengine.conf'), renderConfig(opts), { mkdir: true });
    assert.match(await readFile(join(dir, 'sub', 'rtpengine.conf'), 'utf8'), /^table = 4$/m);
  } finally { await rm(dir, { recursive: true, force: true }); }
});

test('a config write that fails (disk full) leaves the previous config whole and no temp file', { skip: mountSkip() }, async () => {
  const fs = mountTmpfs(64);
  try {
    const file = join(fs.dir, 'rtpengine.conf');
    const base = { plan: { table: 4, kernel: true, rules: 'daemon' as const }, addresses: ['10.1.0.4'], ngHost: '127.0.0.1', ngPort: 2223, portMin: 30000, portMax: 30999 };
    const good = renderConfig(rtpengineOptions({ ...base, extra: {} }));
    await writeFileAtomic(file, good, { mkdir: true });
    const big = renderConfig(rtpengineOptions({ ...base, extra: { 'log-facility': 'x'.repeat(12_000) } }));
    fs.fillLeaving(big.length);
    const before = (await readdir(fs.dir)).sort();
    await assert.rejects(writeFileAtomic(file, big, { mkdir: true }), (e) => isCoded(e, 'FILE_WRITE_FAILED') && /ENOSPC/.test(e.message));
    assert.equal(await readFile(file, 'utf8'), good, 'rtpengine still reads the previous, whole config');
    assert.deepEqual((await readdir(fs.dir)).sort(), before, 'no temp file left');
  } finally { fs.close(); }
});

test('a rendered config file is accepted by the real daemon', { skip: requires('rtpengine') }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rtpe-conf-'));
  const ngPort = await freePort();
  const { min, max } = await freePortRange(20);
  const file = join(dir, 'rtpengine.conf');
  await writeFileAtomic(file, renderConfig(rtpengineOptions({
    plan: { table: -1, kernel: false, rules: 'none' }, addresses: ['127.0.0.1'], ngHost: '127.0.0.1', ngPort, portMin: min, portMax: max,
    extra: { 'delete-delay': 0, 'num-threads': 2 },
  })));
  const d = spawnRtpengine('rtpengine', [`--config-file=${file}`, '--foreground', '--log-stderr'], silentLogger);
  try {
    await waitNgReady('127.0.0.1', ngPort, { timeoutMs: 10_000, clock: systemClock });
  } finally {
    const st = await d.stop(5000);
    await rm(dir, { recursive: true, force: true });
    assert.equal(st.signal ?? 'exit', st.signal ? 'SIGTERM' : 'exit', d.tail());
  }
});

test('the supervisor reports an early exit with the daemon log tail', { skip: requires('rtpengine') }, async () => {
  const d = spawnRtpengine('rtpengine', ['--config-file=none', '--foreground', '--log-stderr', '--listen-ng=127.0.0.1:9'], silentLogger);
  const st = await d.exited;
  assert.notEqual(st.code, 0);
  assert.match(d.tail(), /Missing option --interface/);
});

test("rtpengine's 'Unknown call-id' warnings for drain probes are counted, one INFO summary per interval, never a WARN each (#15 defect 7)", { skip: requires('rtpengine'), timeout: 60_000 }, async () => {
  const ngPort = await freePort();
  const { min, max } = await freePortRange(10);
  const lines: Array<{ level: number; msg: string; unknownCallIdQueries?: number }> = [];
  const log = createLogger({ level: 'debug' }, { write: (l: string) => { lines.push(JSON.parse(l)); } });
  const clock = new SteppedClock();
  const d = spawnRtpengine('rtpengine', ['--config-file=none', '--foreground', '--log-stderr', '--table=-1', '--interface=127.0.0.1', `--listen-ng=127.0.0.1:${ngPort}`, `--port-min=${min}`, `--port-max=${max}`], log, { clock, summaryMs: 60_000 });
  const c = new NgUdpClient({ host: '127.0.0.1', port: ngPort, timeoutMs: 500, retries: 3 });
  try {
    await waitNgReady('127.0.0.1', ngPort, { timeoutMs: 10_000, clock: systemClock });
    for (let i = 0; i < 5; i++) assert.equal((await c.request({ command: 'query', 'call-id': `probe-${i}` })).reply.includes('Unknown call-id'), true);
    await waitFor("rtpengine's five warnings read", () => d.tail().split('\n').filter((l) => l.includes('Unknown call-id')).length >= 5);
    assert.deepEqual(lines.filter((l) => l.level >= 40 && /Unknown call-id/.test(JSON.stringify(l))), [], 'no WARN per probe');
    await clock.advance(60_000);
    const summary = lines.filter((l) => l.level === 30 && l.unknownCallIdQueries !== undefined);
    assert.deepEqual(summary.map((l) => l.unknownCallIdQueries), [5]);
    await clock.advance(60_000);
    assert.equal(lines.filter((l) => l.unknownCallIdQueries !== undefined).length, 1, 'nothing to summarise: no line');
  } finally {
    c.close();
    await d.stop(5000);
  }
});
