// Starts a real rtpengine daemon (Debian's rtpengine-daemon) on free loopback ports for a test
// or bench, userspace-only, and always stops it. Logs are kept for failure messages.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { freePort, freePortRange } from './ports.js';
import type { NgUdpClient } from '../../src/ng/client.js';

export interface RtpengineHandle {
  host: string;
  ngPort: number;
  cliPort: number;
  portMin: number;
  portMax: number;
  pid: number;
  proc: ChildProcess;
  logs(): string;
  /** SIGTERM, wait for exit (SIGKILL after 5 s). Idempotent. */
  stop(): Promise<void>;
}

export interface RtpengineOptions {
  host?: string;
  /** Media ports in the block (default 100: about 50 calls). */
  ports?: number;
  extraArgs?: string[];
  binary?: string;
}

/** One ping over UDP with a fresh cookie; resolves true on pong. */
export function pingOnce(host: string, port: number, timeoutMs = 300): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const cookie = randomBytes(8).toString('hex');
    const t = setTimeout(() => { s.close(); resolve(false); }, timeoutMs);
    s.on('message', (m) => {
      if (m.toString('latin1').startsWith(`${cookie} `)) { clearTimeout(t); s.close(); resolve(m.includes('pong')); }
    });
    s.on('error', () => { clearTimeout(t); s.close(); resolve(false); });
    s.send(Buffer.from(`${cookie} d7:command4:pinge`), port, host);
  });
}

/**
 * SIGSTOP a process and wait until every one of its threads is stopped. A group stop begins only
 * when one thread dequeues the signal; on a loaded machine that thread may wait in the run queue
 * while another thread, woken by a datagram, still answers it. Tests that need silence wait here.
 */
export async function freeze(proc: ChildProcess, timeoutMs = 5000): Promise<void> {
  const pid = proc.pid!;
  proc.kill('SIGSTOP');
  const state = (tid: string) => {
    try {
      const st = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      return st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3);
    } catch { return 'gone'; }
  };
  const until = Date.now() + timeoutMs;
  for (;;) {
    const states = readdirSync(`/proc/${pid}/task`).map(state);
    if (states.every((s) => s === 'T' || s === 'gone')) return;
    if (Date.now() > until) throw new Error(`pid ${pid} not stopped after ${timeoutMs} ms: thread states ${states.join('')}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export async function startRtpengine(opts: RtpengineOptions = {}): Promise<RtpengineHandle> {
  const host = opts.host ?? '127.0.0.1';
  const ngPort = await freePort(host);
  const cliPort = await freePort(host);
  const { min, max } = await freePortRange(opts.ports ?? 100, host);
  const args = [
    '--config-file=none', '--table=-1', '--delete-delay=0', '--foreground', '--log-stderr',
    `--interface=${host}`, `--listen-ng=${host.includes(':') ? `[${host}]` : host}:${ngPort}`,
    `--listen-cli=${host.includes(':') ? `[${host}]` : host}:${cliPort}`,
    `--port-min=${min}`, `--port-max=${max}`, '--num-threads=2', '--log-level=5',
    ...(opts.extraArgs ?? []),
  ];
  const proc = spawn(opts.binary ?? 'rtpengine', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (c: Buffer) => { out = (out + c.toString()).slice(-20000); };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  let exited = false;
  const exit = new Promise<void>((r) => proc.once('exit', () => { exited = true; r(); }));
  const stop = async () => {
    if (exited) return;
    proc.kill('SIGTERM');
    const k = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exit;
    clearTimeout(k);
  };
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`rtpengine exited at start-up: ${out.slice(-2000)}`);
    if (await pingOnce(host, ngPort)) {
      return { host, ngPort, cliPort, portMin: min, portMax: max, pid: proc.pid!, proc, logs: () => out, stop };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`rtpengine did not answer ping within 10 s: ${out.slice(-2000)}`);
}

/** rtpengine's own count of the calls it owns (`statistics` → currentstatistics.sessionsown). */
export async function sessionsOwn(c: NgUdpClient): Promise<number> {
  const r = await c.command({ command: 'statistics' });
  return Number((r.statistics as any).currentstatistics.sessionsown);
}

/** Offers rtpengine executed (duplicates answered from its cookie cache are not counted). */
export async function offersExecuted(c: NgUdpClient): Promise<number> {
  const r = await c.command({ command: 'statistics' });
  return Number((r.statistics as any).controlstatistics.totaloffercount);
}
