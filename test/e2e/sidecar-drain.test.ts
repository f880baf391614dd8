// How a drain ends in the sidecar (ADR 0041), with real rtpengines: an HTTP drain on a pod that is not
// terminating stays up drained and survives a restart (marker keyed by pod UID); config mode waits for
// the separate rtpengine (started by the test) to stop before releasing, bounded by its deadline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { requires } from '../support/require.js';
import { waitFor, isSettled } from '../support/wait.js';
import { freePort, freePortRange } from '../support/ports.js';
import { pingOnce, startRtpengine } from '../support/rtpengine.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { createRegistry } from '../../src/metrics.js';
import { parseOptions } from '../../src/config.js';
import { startAllocator } from '../../src/allocator/allocator.js';
import { AllocatorClient } from '../../src/allocator/client.js';
import { parseTableRange } from '../../src/allocator/tables.js';
import { NgUdpClient } from '../../src/ng/client.js';
import { startSidecar, drainedMarkerName, type FullSidecarConfig } from '../../src/sidecar/main.js';
import { sidecarOptions } from '../../src/sidecar/options.js';
import { proxyOptions } from '../../src/sidecar/proxy-options.js';

const SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n';
const until = (what: string, f: () => boolean | Promise<boolean>, ms = 15_000) => waitFor(what, f, { timeoutMs: ms, intervalMs: 50 });
const pending = async (p: Promise<unknown>) => !(await isSettled(p));

async function setup() {
  const dir = await mkdtemp(join(tmpdir(), 'rtpe-drain-'));
  const alloc = await startAllocator({
    node: 'n', socket: join(dir, 'a.sock'), tableRange: parseTableRange('0-63'),
    pools: [{ name: 'lo', cidr: '127.0.6.0/24', rangeStart: '127.0.6.10' }],
    stateFile: join(dir, 'state.json'), procRoot: join(dir, 'no-module'), leaseTtlMs: 60_000, sweepIntervalMs: 5000,
  }, { log: silentLogger });
  const uid = randomUUID();
  const ng = await freePort();
  const control = await freePort();
  const { min, max } = await freePortRange(20);
  const config = (extra: string[]) => parseOptions({ ...sidecarOptions, ...proxyOptions }, [
    '--allocator-socket', alloc.socket, '--run-dir', join(dir, 'run'), '--proc-root', join(dir, 'no-module'),
    '--media-address-mode', 'none', '--no-deletion-cost', '--ng-listen', `127.0.0.1:${ng}`, '--control-listen', `127.0.0.1:${control}`,
    '--port-min', String(min), '--port-max', String(max), '--delete-delay-seconds', '0', '--ng-drain-poll-ms', '100', '--drain-deadline-seconds', '10',
    ...extra,
  ], { POD_NAME: 'rtpe-d', POD_NAMESPACE: 'media', POD_UID: uid, NODE_NAME: 'n' }).config as FullSidecarConfig;
  const client = new AllocatorClient({ socket: alloc.socket });
  const allocState = () => client.get({ uid }).then((a) => a.state as string, (e: { code: string }) => e.code);
  const ngc = new NgUdpClient({ host: '127.0.0.1', port: ng, timeoutMs: 1000, retries: 1 });
  const lines: string[] = [];
  const log = createLogger({ level: 'info' }, { write: (l: string) => { lines.push(l); if (process.env.RTPE_K8S_E2E_LOG) process.stderr.write(l); } });
  return {
    dir, uid, ng, control, config, allocState, ngc, log, lines,
    close: async () => { ngc.close(); client.close(); await alloc.close(); await rm(dir, { recursive: true, force: true }); },
  };
}

test('an HTTP drain on a pod that is not terminating stays up drained; a restart comes back drained; SIGTERM then ends it',
  { skip: requires('rtpengine'), timeout: 120_000 }, async () => {
    const s = await setup();
    const cfg = s.config(['--rtpengine-mode', 'exec', '--ng-upstream', `127.0.0.1:${await freePort()}`, '--rtpengine-options', '{"num-threads":2}', '--drain-linger-seconds', '2']);
    let h = await startSidecar(cfg, { log: s.log, registry: createRegistry({ defaultMetrics: false }) });
    try {
      const call = await s.ngc.command({ command: 'offer', 'call-id': 'held@x', 'from-tag': 'f', sdp: SDP, supports: ['load limit'] });
      assert.equal(call.result, 'ok');
      const res = await fetch(`http://127.0.0.1:${s.control}/drain`, { method: 'POST', signal: AbortSignal.timeout(5000) });
      assert.equal(res.status, 202);
      await until('draining', () => h.status().state === 'draining');
      const marker = drainedMarkerName(cfg.runDir, s.uid);
      await until('marker written and recorded', () => h.status().drainedMarker === marker);
      assert.ok(existsSync(marker));
      assert.equal(h.status().drainComplete, false);
      assert.equal((await s.ngc.command({ command: 'offer', 'call-id': 'new1@x', 'from-tag': 'f', sdp: SDP, supports: ['load limit'] })).result, 'load limit');

      // The call ends → drain complete; the sidecar stays up (no exit), drained, answering.
      assert.equal((await s.ngc.command({ command: 'delete', 'call-id': 'held@x', 'from-tag': 'f' })).result, 'ok');
      await until('drain complete', () => h.status().drainComplete);
      assert.equal(h.status().state, 'drained');
      const body = await (await fetch(`http://127.0.0.1:${s.control}/status`, { signal: AbortSignal.timeout(5000) })).json() as Record<string, unknown>;
      assert.deepEqual([body.state, body.drainComplete, body.terminating, body.drainLingerSeconds], ['drained', true, false, 2], 'GET /status says drain complete');
      // Not terminating: no linger is counted down, nothing will end it (the lifecycle's unit tests step a clock past it).
      await until('the not-terminating log line', () => s.lines.some((l) => l.includes('drain complete on a pod that is not terminating')));
      assert.equal(h.status().lingerUntil, undefined, 'no linger armed');
      assert.ok(await pending(h.done), 'the sidecar keeps running after the drain completed');
      assert.equal(h.status().state, 'drained');
      assert.ok(await pingOnce('127.0.0.1', s.ng, 500), 'ping → pong');
      assert.equal((await s.ngc.command({ command: 'offer', 'call-id': 'new2@x', 'from-tag': 'f', sdp: SDP, supports: ['load limit'] })).result, 'load limit');
      assert.equal((await fetch(`http://127.0.0.1:${s.control}/readyz`, { signal: AbortSignal.timeout(5000) })).status, 503);
      assert.equal(await s.allocState(), 'active');

      // Restart (the container is stopped and started again with the same pod UID): back drained.
      assert.equal(await h.stop('SIGTERM'), 0);
      assert.ok(existsSync(marker), 'the marker survives the restart');
      h = await startSidecar(cfg, { log: s.log, registry: createRegistry({ defaultMetrics: false }) });
      assert.notEqual(h.status().state, 'serving');
      assert.equal(h.status().steps.find((x) => x.step === 'drained marker')?.outcome, 'done');
      assert.equal((await fetch(`http://127.0.0.1:${s.control}/readyz`, { signal: AbortSignal.timeout(5000) })).status, 503, 'never ready after the restart');
      assert.equal((await s.ngc.command({ command: 'offer', 'call-id': 'new3@x', 'from-tag': 'f', sdp: SDP, supports: ['load limit'] })).result, 'load limit');
      await until('drain complete after restart', () => h.status().drainComplete);
      assert.ok(await pingOnce('127.0.0.1', s.ng, 500), 'ping → pong after the restart');
      assert.ok(await pending(h.done), 'still running');

      // SIGTERM on a pod drained long ago: it lingers only what is left, then ends.
      const t0 = Date.now();
      const code = await h.stop('SIGTERM');
      assert.equal(code, 0);
      assert.ok(h.status().lingerUntil !== undefined && h.status().lingerUntil! <= t0 + 2000, 'linger counted from the completion');
      assert.equal(await pingOnce('127.0.0.1', s.ng, 300), false, 'gone after stopping');
    } finally {
      await h.stop('test cleanup');
      await s.close();
    }
  });

test('config mode: after the drain the sidecar waits for the separate rtpengine to stop before releasing (progress logged)',
  { skip: requires('rtpengine'), timeout: 120_000 }, async () => {
    const s = await setup();
    const rtp = await startRtpengine({ extraArgs: ['--delete-delay=0'] }); // the "rtpengine container"
    try {
      const cfg = s.config(['--rtpengine-mode', 'config', '--rtpengine-era', 'mr11', '--rtpengine-config', join(s.dir, 'rtpengine.conf'),
        '--ng-upstream', `127.0.0.1:${rtp.ngPort}`, '--drain-linger-seconds', '0', '--rtpengine-stop-wait-seconds', '30']);
      const h = await startSidecar(cfg, { log: s.log, registry: createRegistry({ defaultMetrics: false }) });
      assert.ok(existsSync(join(s.dir, 'rtpengine.conf')));
      const stopped = h.stop('SIGTERM');
      await until('waiting for rtpengine', () => h.status().state === 'stopping');
      await until('a progress line (every 5 s)', () => s.lines.some((l) => l.includes('rtpengine still answers ping; waiting for it to stop')));
      assert.ok(await pending(stopped), 'not done while rtpengine answers');
      assert.equal(await s.allocState(), 'active', 'allocation kept while rtpengine runs');
      await rtp.stop();
      assert.equal(await stopped, 0);
      const after = await s.allocState();
      assert.ok(['ALLOC_NOT_FOUND', 'released', 'releasing'].includes(after), `allocation after exit: ${after}`);
      const iGone = s.lines.findIndex((l) => l.includes('rtpengine stopped answering ping'));
      const iReleased = s.lines.findIndex((l) => l.includes('allocation released'));
      assert.ok(iGone >= 0 && iReleased > iGone, `release after rtpengine stopped (${iGone}, ${iReleased})`);
      assert.equal(h.status().steps.find((x) => x.step === 'rtpengine stopped')?.outcome, 'done');
    } finally {
      await rtp.stop();
      await s.close();
    }
  });

test('config mode: an rtpengine that never stops holds the clean-up only until --rtpengine-stop-wait-seconds', { skip: requires('rtpengine'), timeout: 60_000 }, async () => {
  const s = await setup();
  const rtp = await startRtpengine();
  try {
    const cfg = s.config(['--rtpengine-mode', 'config', '--rtpengine-era', 'mr11', '--rtpengine-config', join(s.dir, 'rtpengine.conf'),
      '--ng-upstream', `127.0.0.1:${rtp.ngPort}`, '--drain-linger-seconds', '0', '--rtpengine-stop-wait-seconds', '2']);
    const h = await startSidecar(cfg, { log: s.log, registry: createRegistry({ defaultMetrics: false }) });
    const t0 = Date.now();
    assert.equal(await h.stop('SIGTERM'), 0);
    assert.ok(Date.now() - t0 >= 2000, 'waited the deadline');
    assert.equal(h.status().steps.find((x) => x.step === 'rtpengine stopped')?.outcome, 'failed');
    assert.ok(s.lines.some((l) => l.includes('still answers ping after the deadline')));
    assert.ok(await pingOnce('127.0.0.1', rtp.ngPort, 500), 'rtpengine itself was left alone');
    const after = await s.allocState();
    assert.ok(['ALLOC_NOT_FOUND', 'released', 'releasing'].includes(after), `allocation after exit: ${after}`);
  } finally {
    await rtp.stop();
    await s.close();
  }
});
