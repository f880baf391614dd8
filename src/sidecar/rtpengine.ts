// rtpengine itself: version detection and firewall-era classification, the forwarding plan
// (kernel or userspace, who owns the rule), the options rendered as a config file for a separate
// container or as argv for exec mode, and the supervisor of an exec'd daemon.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { stat, readFile, unlink, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../fs/atomic-file.js';
import { dieWithParent, type Runner } from '../exec.js';
import { formatHostPort } from '../net/host-port.js';
import type { Logger } from '../log.js';
import type { Clock } from '../clock.js';
import { SidecarError } from '../errors.js';
import { refuseControlCharacters } from '../config.js';

// ---- version and era -----------------------------------------------------------------------

/**
 * Firewall eras (docs/kernel.md): `mr11` — we own `-j RTPENGINE --id N` (iptables);
 * `mr12` — the daemon manages nftables but defaults to one shared chain (mr12.0–mr14.0);
 * `mr14.1` — the daemon manages nftables with a per-table default chain.
 */
export type Era = 'mr11' | 'mr12' | 'mr14.1';
export const ERAS = ['mr11', 'mr12', 'mr14.1'] as const;

export interface RtpengineVersion { raw: string; major: number; minor: number }

/** `rtpengine --version` prints e.g. "Version: 10.5.3.5-1+deb12u1" or "Version: mr12.5.1.3-1". */
export function parseVersion(output: string): RtpengineVersion | undefined {
  const m = /Version:\s*(?:mr)?(\d+)\.(\d+)[^\s]*/i.exec(output);
  if (!m) return undefined;
  return { raw: m[0].replace(/^Version:\s*/i, ''), major: Number(m[1]), minor: Number(m[2]) };
}

export function classifyEra(v: { major: number; minor: number }): Era {
  if (v.major <= 11) return 'mr11';
  if (v.major < 14 || (v.major === 14 && v.minor < 1)) return 'mr12';
  return 'mr14.1';
}

export async function detectVersion(runner: Runner, binary: string): Promise<{ version: RtpengineVersion; era: Era }> {
  const r = await runner.run(binary, ['--version'], { timeoutMs: 10_000 });
  const version = parseVersion(`${r.stdout}\n${r.stderr}`);
  if (r.code !== 0 || !version) {
    throw new SidecarError('RTPENGINE_VERSION_UNKNOWN', { binary, output: (r.stdout + r.stderr).trim().slice(0, 200) || `exit ${r.code}` });
  }
  return { version, era: classifyEra(version) };
}

// ---- kernel module and the forwarding plan -------------------------------------------------

/** The module is loaded when its proc tree has a control file (`<procRoot>/control`). */
export async function detectKernel(procRoot: string): Promise<{ present: boolean; reason: string }> {
  try {
    await stat(join(procRoot, 'control'));
    return { present: true, reason: `${procRoot}/control exists` };
  } catch (e) {
    return { present: false, reason: `${procRoot}/control: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (rtpengine kernel module not loaded on this node)` };
  }
}

export interface ForwardingPlan {
  /** What rtpengine gets as --table: the allocated ID, or -1 for userspace. */
  table: number;
  kernel: boolean;
  /** Who puts the packet into the table: our iptables chain (mr11), the daemon (mr12+), nobody. */
  rules: 'iptables' | 'daemon' | 'none';
  /** mr12+: a chain name no other instance uses (mr12–mr14.0 default to a shared one). */
  nftablesChain?: string;
}

export function planForwarding(o: { kernel: boolean; era: Era; table: number; requireKernel: boolean; kernelReason?: string }): ForwardingPlan {
  if (!o.kernel) {
    if (o.requireKernel) throw new SidecarError('KERNEL_REQUIRED', { reason: o.kernelReason ?? 'the rtpengine kernel module is not loaded' });
    return { table: -1, kernel: false, rules: 'none' };
  }
  if (o.era === 'mr11') return { table: o.table, kernel: true, rules: 'iptables' };
  return { table: o.table, kernel: true, rules: 'daemon', nftablesChain: `rtpe_k8s_${o.table}` };
}

// ---- options: config file or argv ---------------------------------------------------------

export interface RtpengineSettings {
  plan: ForwardingPlan;
  /** Media IPs (one per address family at most, usually one). */
  addresses: readonly string[];
  /** Logical interface name (`name/IP`); optional. */
  interfaceName?: string;
  /** Address written into SDP instead of the media IP (`IP!advertised`). */
  advertised?: string;
  ngHost: string;
  ngPort: number;
  portMin: number;
  portMax: number;
  /** Pass-through options (long names without dashes). Must not name a managed option. */
  extra?: Readonly<Record<string, string | number | boolean>>;
}

export const MANAGED_OPTIONS = ['table', 'interface', 'listen-ng', 'port-min', 'port-max', 'nftables-chain', 'config-file'] as const;

const hostPort = formatHostPort;

/** Ordered key/value pairs; `interface` may repeat (one per media IP). */
export function rtpengineOptions(s: RtpengineSettings): Array<[string, string]> {
  const out: Array<[string, string]> = [['table', String(s.plan.table)]];
  for (const ip of s.addresses) {
    out.push(['interface', `${s.interfaceName ? `${s.interfaceName}/` : ''}${ip}${s.advertised ? `!${s.advertised}` : ''}`]);
  }
  out.push(['listen-ng', hostPort(s.ngHost, s.ngPort)], ['port-min', String(s.portMin)], ['port-max', String(s.portMax)]);
  if (s.plan.nftablesChain) out.push(['nftables-chain', s.plan.nftablesChain]);
  for (const [k, v] of Object.entries(s.extra ?? {})) {
    if ((MANAGED_OPTIONS as readonly string[]).includes(k)) {
      throw new SidecarError('RTPENGINE_OPTION_MANAGED', { option: k });
    }
    out.push([k, String(v)]);
  }
  return out;
}

/** `[rtpengine]` INI for a separate rtpengine container; repeated keys are joined with `;`. */
export function renderConfig(opts: Array<[string, string]>, header = ''): string {
  refuseControlCharacters({ 'rtpengine.conf options': opts, 'rtpengine.conf header': header.split('\n') });
  const merged = new Map<string, string[]>();
  for (const [k, v] of opts) merged.set(k, [...(merged.get(k) ?? []), v]);
  const lines = [...(header ? header.split('\n').map((l) => `# ${l}`) : []), '[rtpengine]'];
  for (const [k, vs] of merged) lines.push(`${k} = ${vs.join(';')}`);
  return lines.join('\n') + '\n';
}

/** argv for exec mode: no config file, foreground, logs on stderr, then our options. */
export function renderArgs(opts: Array<[string, string]>): string[] {
  return ['--config-file=none', '--foreground', '--log-stderr', ...opts.map(([k, v]) => `--${k}=${v}`)];
}

// ---- ng readiness ---------------------------------------------------------------------------

/** One ng ping with a fresh cookie; true on pong. */
export function ngPing(host: string, port: number, timeoutMs = 300): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const cookie = randomBytes(8).toString('hex');
    const done = (ok: boolean) => { clearTimeout(t); try { s.close(); } catch { /* closed */ } resolve(ok); };
    const t = setTimeout(() => done(false), timeoutMs);
    s.on('message', (m) => { if (m.toString('latin1').startsWith(`${cookie} `)) done(m.includes('pong')); });
    s.on('error', () => done(false));
    s.send(Buffer.from(`${cookie} d7:command4:pinge`), port, host);
  });
}

/** Polls ping until pong, the deadline, or `abort` (e.g. the daemon exited). */
export async function waitNgReady(host: string, port: number, o: { timeoutMs: number; clock: Clock; abort?: AbortSignal }): Promise<void> {
  const start = o.clock.monotonic();
  while (o.clock.monotonic() - start < o.timeoutMs) {
    if (o.abort?.aborted) break;
    if (await ngPing(host, port, 200)) return;
    await o.clock.sleep(50, o.abort);
  }
  throw new SidecarError('RTPENGINE_NOT_READY', { ng: hostPort(host, port), timeoutMs: o.timeoutMs });
}

// ---- who holds the ng port ----------------------------------------------------------------

/** Socket inodes bound to UDP `port` (any address), from /proc/net/udp and udp6. */
export async function udpPortInodes(port: number, procNet = '/proc/net'): Promise<Set<string>> {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const out = new Set<string>();
  for (const f of ['udp', 'udp6']) {
    let text: string;
    try { text = await readFile(join(procNet, f), 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && cols[1]!.endsWith(`:${hex}`)) out.add(cols[9]!);
    }
  }
  return out;
}

/** The socket inodes among `inodes` that process `pid` holds open. */
async function heldBy(pid: number, inodes: Set<string>): Promise<Set<string>> {
  const held = new Set<string>();
  let fds: string[];
  try { fds = await readdir(`/proc/${pid}/fd`); } catch { return held; }
  for (const fd of fds) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (m && inodes.has(m[1]!)) held.add(m[1]!);
  }
  return held;
}

/** Exec mode, before spawning: nobody may hold the ng port (rtpengine would co-bind it, #15 defect 4). */
export async function assertNgPortFree(host: string, port: number): Promise<void> {
  const inodes = await udpPortInodes(port);
  const taken = inodes.size > 0 || !(await canBindUdp(host, port));
  if (taken) throw new SidecarError('RTPENGINE_PORT_TAKEN', { ng: hostPort(host, port), holder: inodes.size ? `socket inode ${[...inodes].join(', ')}` : 'unknown' });
}

/** After spawning: the ng port is held by `pid` alone, so the pong came from our child. */
export async function assertNgPortOwner(host: string, port: number, pid: number): Promise<void> {
  const inodes = await udpPortInodes(port);
  const mine = await heldBy(pid, inodes);
  const others = [...inodes].filter((i) => !mine.has(i));
  if (mine.size === 0 || others.length) {
    throw new SidecarError('RTPENGINE_PORT_TAKEN', { ng: hostPort(host, port), holder: mine.size === 0 ? `not our rtpengine (pid ${pid} holds none of socket inodes ${[...inodes].join(', ') || 'none'})` : `socket inode ${others.join(', ')} besides our rtpengine (pid ${pid})` });
  }
}

function canBindUdp(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    s.once('error', () => { try { s.close(); } catch { /* closed */ } resolve(false); });
    s.bind(port, host, () => s.close(() => resolve(true)));
  });
}

// ---- exec-mode supervisor -----------------------------------------------------------------

export interface ExitStatus { code: number | null; signal: NodeJS.Signals | null }

export interface SupervisedRtpengine {
  pid: number;
  args: readonly string[];
  /** Resolves when the daemon exits, for whatever reason. */
  exited: Promise<ExitStatus>;
  /** True once stop() was called: an exit after that is expected. */
  readonly stopping: boolean;
  /** Last lines of its log, for error messages. */
  tail(): string;
  /** SIGTERM, then SIGKILL after `graceMs`. Idempotent. */
  stop(graceMs?: number): Promise<ExitStatus>;
}

const LOUD = /FAILED|ERR|CRIT|Fatal|KERNEL FORWARDING DISABLED/i;
/**
 * rtpengine's WARNING for a `query` of a call it does not hold: the answer to every drain probe of
 * a new call (ADR 0024), so one per refused call while draining. Counted, one INFO summary per
 * interval (#15 defect 7).
 */
const PROBE_NOISE = /Protocol error in packet .*: Unknown call-id \[.*7:command5:query/;

export interface RtpengineLogOptions { clock: Clock; summaryMs?: number }

/** Forwards rtpengine's log lines: loud ones at warn, the rest at debug, probe noise counted. */
function lineForwarder(log: Logger, o?: RtpengineLogOptions): { line(l: string): void; close(): void } {
  let unknown = 0;
  const timer = o?.clock.setInterval(() => {
    if (!unknown) return;
    log.info({ unknownCallIdQueries: unknown, intervalMs: o.summaryMs ?? 60_000 }, "rtpengine answered 'Unknown call-id' to queries (drain probes of new calls on a draining node; its warnings are counted, not logged)");
    unknown = 0;
  }, o?.summaryMs ?? 60_000);
  return {
    line(l) {
      if (PROBE_NOISE.test(l)) { unknown++; return; }
      if (LOUD.test(l)) log.warn({ line: l }, 'rtpengine'); else log.debug({ line: l }, 'rtpengine');
    },
    close() { timer?.cancel(); },
  };
}

export function spawnRtpengine(binary: string, args: readonly string[], log: Logger, logOpts?: RtpengineLogOptions): SupervisedRtpengine {
  // Its own process group: a terminal's Ctrl-C (SIGINT to the group) must reach only the sidecar,
  // which drains first and then stops rtpengine; a direct signal would drop every call at once.
  // It dies with the sidecar even on kill -9 (parent-death signal): a leftover daemon would hold
  // the table and co-bind the ng port of the next start (#15 defects 4 and 10).
  const cmd = dieWithParent(binary, args);
  const child = spawn(cmd.binary, cmd.args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let tail = '';
  let partial = '';
  const fwd = lineForwarder(log, logOpts);
  const onData = (c: Buffer) => {
    const text = partial + c.toString('utf8');
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      tail = (tail + line + '\n').slice(-4000);
      fwd.line(line);
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  let stopping = false;
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('error', (e) => { tail += `spawn error: ${e.message}\n`; resolve({ code: 127, signal: null }); });
    child.once('exit', (code, signal) => { fwd.close(); resolve({ code, signal }); });
  });
  if (child.pid === undefined) {
    // spawn() failed synchronously (e.g. ENOENT); the 'error' event carries the reason.
  }
  return {
    pid: child.pid ?? -1,
    args,
    exited,
    get stopping() { return stopping; },
    tail: () => tail + partial,
    async stop(graceMs = 10_000) {
      if (!stopping) {
        stopping = true;
        child.kill('SIGTERM');
        const k = setTimeout(() => { log.warn({ graceMs }, 'rtpengine ignored SIGTERM; killing it'); child.kill('SIGKILL'); }, graceMs);
        k.unref();
        void exited.then(() => clearTimeout(k));
      }
      return exited;
    },
  };
}

// ---- crash-only reattach (exec mode) --------------------------------------------------------

interface PidRecord { pid: number; args: string[] }

/** Running (not a zombie waiting for a parent that is not us to reap it). */
function alive(pid: number): boolean {
  try { process.kill(pid, 0); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false; }
  try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; }
}

async function cmdline(pid: number): Promise<string[] | undefined> {
  try { return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean); } catch { return undefined; }
}

/** A daemon we did not spawn (left by our previous, killed incarnation): supervised by polling. */
function adopted(pid: number, args: readonly string[], log: Logger, clock: Clock): SupervisedRtpengine {
  let stopping = false;
  // A referenced timer on purpose: this poll is what keeps the process alive while we wait.
  const exited = new Promise<ExitStatus>((resolve) => {
    const t = setInterval(() => { if (!alive(pid)) { clearInterval(t); resolve({ code: null, signal: null }); } }, 200);
  });
  return {
    pid, args, exited,
    get stopping() { return stopping; },
    tail: () => '(adopted daemon: its log went to the previous sidecar)\n',
    async stop(graceMs = 10_000) {
      if (!stopping) {
        stopping = true;
        try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
        const k = clock.setTimeout(() => { log.warn({ pid }, 'adopted rtpengine ignored SIGTERM; killing it'); try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }, graceMs);
        void exited.then(() => k.cancel());
      }
      return exited;
    },
  };
}

/**
 * Exec mode after a crash: an rtpengine from our previous incarnation with the same arguments
 * still holds the table and the calls, so we adopt it instead of starting a second one. A stale
 * one with other arguments is stopped first. The pid file lives in the run directory.
 */
export async function adoptOrSpawn(o: { pidFile: string; binary: string; args: readonly string[]; log: Logger; clock: Clock; ng?: { host: string; port: number } }): Promise<{ proc: SupervisedRtpengine; adopted: boolean }> {
  let rec: PidRecord | undefined;
  try { rec = JSON.parse(await readFile(o.pidFile, 'utf8')) as PidRecord; } catch { rec = undefined; }
  if (rec && Number.isInteger(rec.pid) && rec.pid > 1 && alive(rec.pid)) {
    const running = await cmdline(rec.pid);
    const same = running !== undefined && JSON.stringify(running.slice(1)) === JSON.stringify([...o.args]);
    if (same) {
      o.log.info({ pid: rec.pid }, 'reattached to the rtpengine our previous incarnation started (same table, IP and calls)');
      return { proc: adopted(rec.pid, o.args, o.log, o.clock), adopted: true };
    }
    if (running && JSON.stringify(running.slice(1)) === JSON.stringify(rec.args)) {
      o.log.warn({ pid: rec.pid, was: rec.args, now: o.args }, 'stopping the rtpengine of our previous incarnation: its options differ');
      await adopted(rec.pid, rec.args, o.log, o.clock).stop(5000);
    }
  }
  if (o.ng) await assertNgPortFree(o.ng.host, o.ng.port);
  const proc = spawnRtpengine(o.binary, o.args, o.log, { clock: o.clock });
  if (proc.pid > 0) {
    await writeFileAtomic(o.pidFile, JSON.stringify({ pid: proc.pid, args: o.args }), { mkdir: true });
  }
  return { proc, adopted: false };
}

export async function removePidFile(pidFile: string): Promise<void> {
  await unlink(pidFile).catch(() => undefined);
}
