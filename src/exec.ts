// Process-runner port: the one way this project runs external binaries (iptables-restore, ip,
// rtpengine --version). Commands get an argument vector, never a shell string.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

export interface RunResult { code: number; stdout: string; stderr: string }
export interface RunOptions { input?: string; timeoutMs?: number }

export interface Runner {
  run(binary: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
}

export const processRunner: Runner = {
  run(binary, args, opts = {}) {
    return new Promise((resolve) => {
      const child = spawn(binary, args, {
        stdio: ['pipe', 'pipe', 'pipe'],
        timeout: opts.timeoutMs ?? 30_000,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
      child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
      child.on('error', (e: NodeJS.ErrnoException) => resolve({ code: e.code === 'ENOENT' ? 127 : 126, stdout, stderr: stderr + e.message }));
      child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
      child.stdin.on('error', () => { /* the child may exit before reading its input */ });
      child.stdin.end(opts.input ?? '');
    });
  },
};

/**
 * argv that makes a long-running child die with its parent, even on kill -9 of the parent: the
 * parent-death signal (prctl PR_SET_PDEATHSIG) set by util-linux `setpriv --pdeathsig KILL`, which
 * then execs the binary (same pid). Without setpriv the child is started as is. TERM instead of
 * KILL for a daemon whose own workers would outlive a killed main process (Kamailio).
 */
export function dieWithParent(binary: string, args: readonly string[], setpriv: string | undefined = findSetpriv(), signal: 'KILL' | 'TERM' = 'KILL'): { binary: string; args: string[] } {
  if (!setpriv) return { binary, args: [...args] };
  return { binary: setpriv, args: ['--pdeathsig', signal, '--', binary, ...args] };
}

let setprivPath: string | null | undefined;
/** util-linux's setpriv (Debian: package util-linux, Essential), found once. */
export function findSetpriv(dirs: readonly string[] = ['/usr/bin', '/bin', '/usr/sbin', '/sbin']): string | undefined {
  if (setprivPath === undefined) {
    setprivPath = null;
    for (const dir of dirs) {
      const p = `${dir}/setpriv`;
      try { accessSync(p, constants.X_OK); setprivPath = p; break; } catch { /* next */ }
    }
  }
  return setprivPath ?? undefined;
}
