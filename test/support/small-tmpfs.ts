// A small tmpfs the test mounts itself (root only) and fills, to exercise writes on a nearly full disk.
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from './require.js';

/**
 * A test's `skip` for mounting: false as root; otherwise the reason, and under CI
 * (RTPE_K8S_REQUIRE_ALL=1) a thrown error, so a root-only test fails there rather than skips.
 */
export const mountSkip = (): string | false => requires('root');

export interface SmallTmpfs {
  dir: string;
  /** Bytes still free for an unprivileged writer. */
  free(): number;
  /** Fill with a filler file so that fewer than `leave` bytes (but at least one page) stay free. */
  fillLeaving(leave: number): void;
  close(): void;
}

export function mountTmpfs(sizeKiB: number): SmallTmpfs {
  const dir = mkdtempSync(join(tmpdir(), 'small-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k,mode=0755`, 'tmpfs', dir]);
  const free = () => { const s = statfsSync(dir); return s.bavail * s.bsize; };
  return {
    dir,
    free,
    fillLeaving(leave) {
      const page = statfsSync(dir).bsize;
      const target = Math.max(page, Math.floor((leave - 1) / page) * page);
      const f = free();
      if (f > target) writeFileSync(join(dir, 'filler'), Buffer.alloc(f - target), { flag: 'w' });
      const now = free();
      if (now >= leave || now < 1) throw new Error(`tmpfs fill left ${now} bytes, wanted 1..${leave - 1}`);
    },
    close() {
      try { execFileSync('umount', [dir]); } finally { rmSync(dir, { recursive: true, force: true }); }
    },
  };
}
