// Starts a real Kamailio (Debian's 5.6) from a config text on free loopback ports for a test,
// with -A defines, a binrpc control socket (kamcmd) and a JSON-RPC FIFO; always stopped.
// Generic: the config decides which defines it uses (see PROXY_TEST_CFG for the ng proxy tests).
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync, mkdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePort } from './ports.js';
import { kamailioConfig } from '../../src/local/kamailio-cfg.js';

export interface KamailioOptions {
  /** The kamailio.cfg text. It may use the defines below with `#!ifndef … #!define` defaults. */
  config: string;
  /** Extra `-A NAME=VALUE` defines (VALUE verbatim: quote strings yourself, e.g. '"udp:…"'). */
  defines?: Record<string, string | number>;
  /** SIP address to listen on; a free UDP port on 127.0.0.1 by default (define SIP_LISTEN). */
  sipHost?: string;
  sipPort?: number;
  binary?: string;
  /** Wait after the control socket answers (start-up rtpengine pings happen here). Default 500 ms. */
  settleMs?: number;
  /** Start-up budget. Default 15 s. */
  timeoutMs?: number;
}

export interface KamailioHandle {
  /** Temporary directory holding the config, pid file, sockets and FIFOs (removed on stop). */
  dir: string;
  configPath: string;
  sipHost: string;
  sipPort: number;
  /** `unix:<dir>/kam_ctl` — the CTL_SOCK define. */
  ctlSock: string;
  /** The JSONRPC_FIFO define; usable when the config loads jsonrpcs with it. */
  jsonrpcFifo: string;
  pid: number;
  proc: ChildProcess;
  logs(): string;
  /** Runs `kamcmd -s CTL_SOCK args…` and returns its stdout (rejects with stderr on failure). */
  kamcmd(...args: string[]): Promise<string>;
  /** One JSON-RPC call over the FIFO (config must load jsonrpcs with JSONRPC_FIFO/JSONRPC_REPLY_DIR). */
  jsonrpc(method: string, params?: unknown[]): Promise<unknown>;
  /** SIGTERM to the main process, wait (SIGKILL after 5 s), remove the directory. Idempotent. */
  stop(): Promise<void>;
}

const q = (s: string) => `"${s}"`;

/** `kamailio -c`: resolves the output when the config parses, rejects with it otherwise. */
export function checkKamailioConfig(config: string, defines: Record<string, string | number> = {}, binary = 'kamailio'): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'kamcheck-'));
  const path = join(dir, 'kamailio.cfg');
  writeFileSync(path, config);
  const args = ['-c', '-f', path, ...Object.entries(defines).flatMap(([k, v]) => ['-A', `${k}=${v}`])];
  return new Promise((resolve, reject) => {
    execFile(binary, args, { timeout: 15_000 }, (err, stdout, stderr) => {
      rmSync(dir, { recursive: true, force: true });
      if (err) reject(new Error(`kamailio -c failed: ${stderr || stdout || err.message}`));
      else resolve(stdout + stderr);
    });
  });
}

export async function startKamailio(o: KamailioOptions): Promise<KamailioHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'kam-'));
  const runDir = join(dir, 'run');
  mkdirSync(runDir);
  const configPath = join(dir, 'kamailio.cfg');
  writeFileSync(configPath, o.config);
  const sipHost = o.sipHost ?? '127.0.0.1';
  const sipPort = o.sipPort ?? (await freePort(sipHost));
  const ctlPath = join(dir, 'kam_ctl');
  const ctlSock = `unix:${ctlPath}`;
  const jsonrpcFifo = join(dir, 'kam_jsonrpc_fifo');
  const pidFile = join(dir, 'kamailio.pid');
  const defines: Record<string, string | number> = {
    SIP_LISTEN: `udp:${sipHost.includes(':') ? `[${sipHost}]` : sipHost}:${sipPort}`,
    CTL_SOCK: q(ctlSock),
    JSONRPC_FIFO: q(jsonrpcFifo),
    JSONRPC_REPLY_DIR: q(`${dir}/`), // jsonrpcs concatenates dir and reply name as they are
    RUN_DIR: q(runDir),
    ...o.defines,
  };
  const args = ['-DD', '-E', '-f', configPath, '-P', pidFile, '-Y', runDir, '-w', dir,
    ...Object.entries(defines).flatMap(([k, v]) => ['-A', `${k}=${v}`])];
  const proc = spawn(o.binary ?? 'kamailio', args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  let out = '';
  const keep = (c: Buffer) => { out = (out + c.toString()).slice(-50_000); };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  let exited = false;
  const exit = new Promise<void>((r) => proc.once('exit', () => { exited = true; r(); }));

  const kamcmd = (...a: string[]) => new Promise<string>((resolve, reject) => {
    execFile('kamcmd', ['-s', ctlSock, ...a], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kamcmd ${a.join(' ')} failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });

  const jsonrpc = async (method: string, params: unknown[] = []) => {
    const replyName = `rpl_${randomBytes(6).toString('hex')}`;
    const replyPath = join(dir, replyName);
    // The client creates the reply FIFO; jsonrpcs only opens it for writing.
    await new Promise<void>((resolve, reject) => execFile('mkfifo', [replyPath], (e) => (e ? reject(e) : resolve())));
    try {
      const req = JSON.stringify({ jsonrpc: '2.0', method, params, reply_name: replyName, id: 1 }) + '\n';
      const reading = (async () => {
        const rf = await open(replyPath, 'r'); // blocks (in the thread pool) until Kamailio opens it
        try { return (await rf.readFile()).toString(); } finally { await rf.close(); }
      })();
      const fifo = await open(jsonrpcFifo, 'w');
      try { await fifo.write(req); } finally { await fifo.close(); }
      const text = await Promise.race([reading, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`no JSON-RPC reply for ${method} within 5 s`)), 5000).unref())]);
      const parsed = JSON.parse(text) as { result?: unknown; error?: { message?: string } };
      if (parsed.error) throw new Error(`JSON-RPC ${method}: ${parsed.error.message ?? JSON.stringify(parsed.error)}`);
      return parsed.result;
    } finally {
      rmSync(replyPath, { force: true });
    }
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      // -DD: the pid file holds the main process; SIGTERM to it stops every child.
      let mainPid = proc.pid!;
      try { mainPid = Number(readFileSync(pidFile, 'utf8').trim()) || mainPid; } catch { /* not written yet */ }
      try { process.kill(mainPid, 'SIGTERM'); } catch { /* gone */ }
      const k = setTimeout(() => { try { proc.kill('SIGKILL'); } catch { /* gone */ } }, 5000);
      await exit;
      clearTimeout(k);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const handle: KamailioHandle = {
    dir, configPath, sipHost, sipPort, ctlSock, jsonrpcFifo, pid: proc.pid!, proc, logs: () => out, kamcmd, jsonrpc, stop,
  };
  const deadline = Date.now() + (o.timeoutMs ?? 15_000);
  try {
    for (;;) {
      if (exited) throw new Error(`kamailio exited at start-up:\n${out.slice(-4000)}`);
      if (Date.now() > deadline) throw new Error(`kamailio control socket did not answer in time:\n${out.slice(-4000)}`);
      if (existsSync(ctlPath)) {
        try { await kamcmd('core.version'); break; } catch { /* not ready yet */ }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, o.settleMs ?? 500));
    if (exited) throw new Error(`kamailio exited at start-up:\n${out.slice(-4000)}`);
    return handle;
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * The ng proxy tests' config: the project's builder (src/local/kamailio-cfg.ts) with a fixed node
 * list, INVITE → rtpengine_offer (200 OK echoes the rewritten SDP), BYE/CANCEL → rtpengine_delete,
 * binrpc at CTL_SOCK, JSON-RPC FIFO. Defines: SIP_LISTEN, RTPE_SOCK, CTL_SOCK, SERVER_ID,
 * RTPE_TOUT_MS, RTPE_RETR, JSONRPC_FIFO, JSONRPC_REPLY_DIR.
 */
export const PROXY_TEST_CFG = kamailioConfig({ nodes: 'sock', sip: 'uas', http: false, testControl: true, children: 2 });

/** The rtpengine_sock value for a list of ng endpoints: `"udp:H:P udp:H:P"`. */
export function rtpengineSock(nodes: Array<{ host: string; port: number }>): string {
  return q(nodes.map((n) => (n.host.includes(':') ? `udp6:[${n.host}]:${n.port}` : `udp:${n.host}:${n.port}`)).join(' '));
}
