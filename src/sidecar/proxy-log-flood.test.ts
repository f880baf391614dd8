// A flood of bad ng datagrams (a fuzzer, a broken client) must not turn into a log line each:
// the logger root rate-limits repeats and a summary line says how many were suppressed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { startNgProxy } from './proxy.js';
import { proxyConfigWith } from './proxy-options.js';
import { createRegistry } from '../metrics.js';
import { createLogger, flushRepeats } from '../log.js';
import { freePort } from '../../test/support/ports.js';

test('10,000 bad datagrams: each answered, but bounded log output and one summary with the count', async () => {
  const port = await freePort();
  const dead = await freePort();
  const lines: Array<Record<string, unknown>> = [];
  let bytes = 0;
  // Time stands still for the limiter: the outcome does not depend on how fast this machine is.
  const log = createLogger({ level: 'info', repeat: { max: 20, windowMs: 10_000, now: () => 0 } },
    { write: (l: string) => { bytes += l.length; lines.push(JSON.parse(l) as Record<string, unknown>); } });
  const proxy = await startNgProxy(proxyConfigWith({ ngListen: [`127.0.0.1:${port}`], ngUpstream: `127.0.0.1:${dead}`, ngUpstreamTimeoutMs: 50, ngUpstreamRetries: 0, ngHealthIntervalMs: 60_000 }),
    { log, registry: createRegistry({ defaultMetrics: false }) });
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const total = 10_000;
  const answered = new Set<string>();
  try {
    // In slices of 100 so the socket buffers never drop a datagram: every one must be answered.
    for (let base = 0; base < total; base += 100) {
      const want = Math.min(total, base + 100);
      const done = new Promise<void>((resolve) => {
        const on = (m: Buffer) => {
          answered.add(m.toString('latin1', 0, m.indexOf(0x20)));
          if (answered.size >= want) { sock.off('message', on); resolve(); }
        };
        sock.on('message', on);
      });
      for (let i = base; i < want; i++) sock.send(Buffer.from(`fz${i} d3:fooi1e4:junk`), port, '127.0.0.1');
      await done;
    }
    assert.equal(answered.size, total, 'every bad datagram was answered');
    flushRepeats(log);
    const bad = lines.filter((l) => l.msg === 'bad ng request answered with error');
    const summary = lines.filter((l) => l.msg === 'repeated log line suppressed' && l.repeated === 'bad ng request answered with error');
    assert.equal(bad.length, 20);
    assert.equal(summary.length, 1);
    assert.equal(summary[0]!.suppressed, total - 20);
    assert.ok(bytes < 64 * 1024, `log output ${bytes} bytes for ${total} bad datagrams`);
  } finally {
    sock.close();
    await proxy.close();
  }
});
