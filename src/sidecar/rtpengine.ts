// rtpengine itself: version detection and firewall-era classification, the forwarding plan
// (kernel or userspace, who owns the rule), the options rendered as a config file for a separate
// container or as argv for exec mode, and the supervisor of an exec'd daemon.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { stat, writeFile, rename, mkdir, readFile, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Runner } from '../exec.js';
import type { Logger } from '../log.js';
import type { Clock } from '../clock.js';
import { SidecarError } from '../errors.js';

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

const hostPort = (host: string, port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

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

/** Atomic write (temp file + rename) so rtpengine never reads half a file. */
export async function writeConfigFile(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o644 });
  await rename(tmp, path);
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

export function spawnRtpengine(binary: string, args: readonly string[], log: Logger): SupervisedRtpengine {
  // Its own process group: a terminal's Ctrl-C (SIGINT to the group) must reach only the sidecar,
  // which drains first and then stops rtpengine; a direct signal would drop every call at once.
  const child = spawn(binary, [...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let tail = '';
  let partial = '';
  const onData = (c: Buffer) => {
    const text = partial + c.toString('utf8');
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      tail = (tail + line + '\n').slice(-4000);
      if (LOUD.test(line)) log.warn({ line }, 'rtpengine'); else log.debug({ line }, 'rtpengine');
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  let stopping = false;
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('error', (e) => { tail += `spawn error: ${e.message}\n`; resolve({ code: 127, signal: null }); });
    child.once('exit', (code, signal) => resolve({ code, signal }));
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
export async function adoptOrSpawn(o: { pidFile: string; binary: string; args: readonly string[]; log: Logger; clock: Clock }): Promise<{ proc: SupervisedRtpengine; adopted: boolean }> {
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
  const proc = spawnRtpengine(o.binary, o.args, o.log);
  if (proc.pid > 0) {
    await mkdir(dirname(o.pidFile), { recursive: true });
    await writeFile(o.pidFile, JSON.stringify({ pid: proc.pid, args: o.args }));
  }
  return { proc, adopted: false };
}

export async function removePidFile(pidFile: string): Promise<void> {
  await unlink(pidFile).catch(() => undefined);
}
