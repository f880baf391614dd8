// Starts the local Kamailio (LOCAL_KAMAILIO_CFG) over a db_text directory that kamailio-sync
// owns, and reads its log for what only Kamailio knows: offers it moved to another node after a
// `load limit` (failover at set-up) and offers or deletes that failed.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LOCAL_KAMAILIO_CFG } from './kamailio-cfg.js';
import { startChild, type Child } from './children.js';
import { ensureVersionRow, readRtpengineTable, renderRtpengineTable, writeDbTextFile } from '../kamailio/dbtext.js';
import { httpRpc, type KamailioRpc } from '../kamailio/jsonrpc.js';

export interface LocalKamailioOptions {
  dir: string;
  sipPort: number;
  httpPort: number;
  callee: { host: string; port: number };
  binary?: string;
  children?: number;
}

export interface KamailioCounts { failovers: number; offerFailed: number; deleteFailed: number; answerFailed: number }

export interface LocalKamailio {
  child: Child;
  dbDir: string;
  rpc: KamailioRpc;
  sip: { host: string; port: number };
  counts: KamailioCounts;
  stop(): Promise<void>;
}

export async function startLocalKamailio(o: LocalKamailioOptions): Promise<LocalKamailio> {
  const dbDir = join(o.dir, 'kamailio-db');
  await mkdir(dbDir, { recursive: true });
  await ensureVersionRow(dbDir, 'rtpengine');
  // Kamailio needs the table file to start; kamailio-sync fills it (an existing one is kept).
  if (!(await readRtpengineTable(join(dbDir, 'rtpengine')).catch(() => undefined))) await writeDbTextFile(join(dbDir, 'rtpengine'), renderRtpengineTable([]));
  const cfg = join(o.dir, 'kamailio.cfg');
  await writeFile(cfg, LOCAL_KAMAILIO_CFG);
  const counts: KamailioCounts = { failovers: 0, offerFailed: 0, deleteFailed: 0, answerFailed: 0 };
  // Kamailio 5.6 logs the load-limit failover without a newline: count occurrences, not lines.
  const onLine = (l: string) => {
    counts.failovers += l.split('has reached its load limit').length - 1;
    if (l.includes('LOCAL offer-failed')) counts.offerFailed++;
    else if (l.includes('LOCAL delete-failed')) counts.deleteFailed++;
    else if (l.includes('LOCAL answer-failed')) counts.answerFailed++;
  };
  const defines = {
    SIP_LISTEN: `udp:127.0.0.1:${o.sipPort}`,
    HTTP_LISTEN: `tcp:127.0.0.1:${o.httpPort}`,
    CALLEE: `"sip:${o.callee.host}:${o.callee.port}"`,
    DB_URL: `"text://${dbDir}"`,
    SERVER_ID: 1 + (process.pid % 1000),
    CHILDREN: o.children ?? 4,
  };
  const args = ['-DD', '-E', '-f', cfg, '-P', join(o.dir, 'kamailio.pid'), '-Y', o.dir, '-w', o.dir,
    ...Object.entries(defines).flatMap(([k, v]) => ['-A', `${k}=${v}`])];
  const child = startChild('kamailio', o.binary ?? 'kamailio', args, { logFile: join(o.dir, 'kamailio.log'), cwd: o.dir, onLine, deathSignal: 'TERM' });
  const rpc = httpRpc(`http://127.0.0.1:${o.httpPort}/RPC`, { timeoutMs: 3000 });
  const end = Date.now() + 20_000;
  for (;;) {
    if (!child.alive()) throw new Error(`kamailio exited at start-up (log ${join(o.dir, 'kamailio.log')}):\n${child.tail().slice(-3000)}`);
    try { await rpc.call('core.version'); break; } catch { /* not up yet */ }
    if (Date.now() > end) { await child.stop('SIGKILL'); throw new Error(`kamailio did not answer JSON-RPC within 20 s:\n${child.tail().slice(-3000)}`); }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    child, dbDir, rpc, sip: { host: '127.0.0.1', port: o.sipPort }, counts,
    async stop() { await child.stop('SIGTERM', 5000); },
  };
}
