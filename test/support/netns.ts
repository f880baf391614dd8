// Network namespaces for tests: created with a unique name, loopback up, a Runner that executes
// inside it (`ip netns exec`), and always deleted — also when the test fails.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { processRunner, type Runner } from '../../src/exec.js';

export interface Netns {
  name: string;
  /** Runs binaries inside the namespace. */
  runner: Runner;
  /** Synchronous helper for set-up steps: runs `binary args…` in the namespace, returns stdout. */
  sh(binary: string, ...args: string[]): string;
  /** Deletes the namespace (idempotent). */
  delete(): void;
}

export function createNetns(prefix = 'rtpe'): Netns {
  const name = `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', name]);
  const sh = (binary: string, ...args: string[]) =>
    execFileSync('ip', ['netns', 'exec', name, binary, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  let deleted = false;
  const del = () => {
    if (deleted) return;
    deleted = true;
    try { execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore' }); } catch { /* already gone */ }
  };
  try {
    sh('ip', 'link', 'set', 'lo', 'up');
  } catch (e) {
    del();
    throw e;
  }
  const runner: Runner = { run: (binary, args, opts) => processRunner.run('ip', ['netns', 'exec', name, binary, ...args], opts) };
  return { name, runner, sh, delete: del };
}

/** Runs `fn` with a fresh namespace and deletes it afterwards whatever happens. */
export async function withNetns<T>(fn: (ns: Netns) => Promise<T>, prefix?: string): Promise<T> {
  const ns = createNetns(prefix);
  try {
    return await fn(ns);
  } finally {
    ns.delete();
  }
}
