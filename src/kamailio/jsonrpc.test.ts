import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../../test/support/require.js';
import { freePort } from '../../test/support/ports.js';
import { startKamailioDb } from '../../test/support/kamailio-db.js';
import { httpRpc, fifoRpc, isReloadTooSoon, showNodes } from './jsonrpc.js';
import { renderRtpengineTable, ensureVersionRow } from './dbtext.js';
import { isCoded } from '../errors.js';

test('JSON-RPC over HTTP and over the FIFO against a real Kamailio', { skip: requires('kamailio', 'mkfifo') }, async () => {
  const dbDir = mkdtempSync(join(tmpdir(), 'kdb-'));
  await ensureVersionRow(dbDir, 'rtpengine');
  writeFileSync(join(dbDir, 'rtpengine'), renderRtpengineTable([
    { setid: 0, url: 'udp:127.0.0.1:9', weight: 2, disabled: false },
    { setid: 1, url: 'udp6:[::1]:9', weight: 1, disabled: false },
  ]));
  const kam = await startKamailioDb({ dbDir });
  try {
    const http = httpRpc(kam.rpcUrl);
    const fifo = fifoRpc(kam.fifo, kam.replyDir);
    // Both transports see the rows the db_text file holds (IPv6 in udp6:[addr]:port syntax).
    for (const rpc of [http, fifo]) {
      const nodes = await showNodes(rpc);
      assert.deepEqual(nodes.map((n) => [n.url, n.set, n.weight]), [['udp:127.0.0.1:9', 0, 2], ['udp6:[::1]:9', 1, 1]], rpc.transport);
    }
    // Serialized FIFO conversations do not mix replies.
    const many = await Promise.all([1, 2, 3].map(() => fifo.call('core.version')));
    assert.ok(many.every((v) => typeof v === 'string' && v.includes('kamailio')), JSON.stringify(many));
    // Kamailio refuses reloads within 10 s of start: recognised as "too soon", over both transports.
    for (const rpc of [http, fifo]) {
      const e = await rpc.call('rtpengine.reload').then(() => undefined, (err: unknown) => err);
      assert.ok(isReloadTooSoon(e), `${rpc.transport}: ${String(e)}`);
    }
    // An unknown method is a coded fault with Kamailio's code.
    await assert.rejects(http.call('no.such.method'), (e) => isCoded(e, 'KAMAILIO_RPC_FAILED') && (e as any).details.faultCode !== undefined && !isReloadTooSoon(e));
  } finally {
    await kam.stop();
    rmSync(dbDir, { recursive: true, force: true });
  }
});

test('an unreachable Kamailio is a coded error without a fault code, on both transports', { skip: requires('mkfifo') }, async () => {
  const port = await freePort();
  await assert.rejects(httpRpc(`http://127.0.0.1:${port}/RPC`, { timeoutMs: 1000 }).call('core.version'),
    (e) => isCoded(e, 'KAMAILIO_RPC_FAILED') && (e as any).details.faultCode === undefined);
  const dir = mkdtempSync(join(tmpdir(), 'kfifo-'));
  try {
    await assert.rejects(fifoRpc(join(dir, 'nobody.fifo'), dir + '/').call('core.version'),
      (e) => isCoded(e, 'KAMAILIO_RPC_FAILED') && (e as any).details.faultCode === undefined);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
