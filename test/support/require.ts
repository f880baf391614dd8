// Test preconditions on real parts (binaries, root, namespaces). Missing → the test is skipped
// with the reason, except under CI (RTPE_K8S_REQUIRE_ALL=1), where it fails: never a silent pass.
import { accessSync, constants } from 'node:fs';
import { execFileSync } from 'node:child_process';

const STRICT = process.env.RTPE_K8S_REQUIRE_ALL === '1';

function findBinary(name: string): string | undefined {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/bin', '/usr/local/sbin']) {
    try { accessSync(`${dir}/${name}`, constants.X_OK); return `${dir}/${name}`; } catch { /* next */ }
  }
  return undefined;
}

/** Returns a skip reason (string) or false when every requirement is met; throws under CI. */
export function requires(...needs: Array<string | 'root' | 'netns'>): string | false {
  const missing: string[] = [];
  for (const n of needs) {
    if (n === 'root') { if (process.getuid?.() !== 0) missing.push('root'); continue; }
    if (n === 'netns') {
      if (process.getuid?.() !== 0 || !findBinary('ip')) { missing.push('network namespaces (root + iproute2)'); continue; }
      try { execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' }); } catch { missing.push('network namespaces'); }
      continue;
    }
    if (!findBinary(n)) missing.push(n);
  }
  if (!missing.length) return false;
  const reason = `not run: missing ${missing.join(', ')} (scripts/bootstrap.sh installs it as root)`;
  if (STRICT) throw new Error(`${reason} — CI requires every real dependency`);
  return reason;
}

export function binary(name: string): string {
  const p = findBinary(name);
  if (!p) throw new Error(`binary ${name} not found`);
  return p;
}
