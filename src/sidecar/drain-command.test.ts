import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { drainCommand } from './drain-command.js';
import { silentLogger } from '../log.js';
import { Exit } from '../errors.js';

/** A control server that answers POST /drain with `draining`, then GET /status with `final`. */
async function sidecarAnswering(final: Record<string, unknown>) {
  const srv = createServer((req, res) => {
    const body = req.method === 'POST' ? { drain: { phase: 'draining', startedAt: Date.now() }, sessions: 2 } : final;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

async function runDrain(url: string): Promise<{ code: number; out: string }> {
  let out = '';
  const stdout = new Writable({ write(c, _e, cb) { out += c.toString(); cb(); } });
  const code = await drainCommand.run({ url, wait: true, deadlineSeconds: 0, pollMs: 50, token: undefined }, [], {
    log: silentLogger, signal: new AbortController().signal, stopReason: () => undefined, stdout,
  });
  return { code, out };
}

test('drain --wait: 0 sessions exits 0; the deadline and rtpengine going down exit non-zero, named', async () => {
  const now = Date.now();
  const cases: Array<[Record<string, unknown>, number, RegExp]> = [
    [{ drain: { phase: 'drained', outcome: 'empty', startedAt: now }, sessions: 0 }, Exit.OK, /drained: 0 sessions/],
    [{ drain: { phase: 'drained', outcome: 'deadline', startedAt: now - 60_000, deadlineAt: now, sessionsLeft: 3 }, sessions: 3 }, Exit.TEMPFAIL, /deadline of 60 s passed with 3 session/],
    [{ drain: { phase: 'drained', outcome: 'upstream-down', startedAt: now, sessionsLeft: 1 }, sessions: 1 }, Exit.UNAVAILABLE, /rtpengine stopped answering/],
  ];
  for (const [final, code, text] of cases) {
    const s = await sidecarAnswering(final);
    try {
      const r = await runDrain(s.url);
      assert.equal(r.code, code, JSON.stringify(final));
      assert.match(r.out, text);
    } finally {
      await s.close();
    }
  }
});
