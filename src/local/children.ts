// Child processes of `rtpengine-k8s local` (Kamailio, SIPp, sidecars, drain hooks): each started
// under util-linux `setpriv --pdeathsig KILL`, so it dies with this process even on kill -9,
// in its own process group, its output appended to a log file; stop() signals it and waits (SIGKILL after a grace period).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { dieWithParent, findSetpriv } from '../exec.js';

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (128 + n for a signal) when the process ends. */
  readonly exited: Promise<number>;
  alive(): boolean;
  /** The last ~20 kB of output (for error messages). */
  tail(): string;
  /** Sends `signal`, waits up to graceMs, then SIGKILL. Resolves with the exit code. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number>;
}

export interface ChildOptions {
  logFile?: string;
  cwd?: string;
  onLine?: (line: string) => void;
  /**
   * Sent to it when this process dies. KILL (default) for single processes; TERM for a daemon
   * whose workers would outlive a killed main process (Kamailio stops its workers on SIGTERM).
   */
  deathSignal?: 'KILL' | 'TERM';
}

const SIGNUM: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

export function startChild(name: string, binary: string, args: readonly string[], o: ChildOptions = {}): Child {
  const { binary: bin, args: argv } = dieWithParent(binary, args, findSetpriv(), o.deathSignal);
  // Own process group: a terminal's Ctrl-C reaches only this process, which then stops them in order.
  const proc = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: o.cwd, detached: true });
  const log = o.logFile ? createWriteStream(o.logFile, { flags: 'a' }) : undefined;
  let tail = '';
  let partial = '';
  const onData = (c: Buffer) => {
    const s = c.toString();
    tail = (tail + s).slice(-20_000);
    log?.write(c);
    if (o.onLine) {
      const lines = (partial + s).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) o.onLine(l);
    }
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  let code: number | undefined;
  const exited = new Promise<number>((resolve) => {
    proc.once('error', (e) => { tail += `spawn error: ${e.message}\n`; });
    proc.once('close', (c, sig) => { code = c ?? 128 + (sig ? SIGNUM[sig] ?? 0 : 0); log?.end(); resolve(code); });
  });
  return {
    name, proc, pid: proc.pid ?? -1, exited,
    alive: () => code === undefined,
    tail: () => tail,
    async stop(signal = 'SIGTERM', graceMs = 5000) {
      if (code !== undefined) return code;
      try { proc.kill(signal); } catch { /* already gone */ }
      const t = setTimeout(() => { try { proc.kill('SIGKILL'); } catch { /* gone */ } }, graceMs);
      const c = await exited;
      clearTimeout(t);
      return c;
    },
  };
}
