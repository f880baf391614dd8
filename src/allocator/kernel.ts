// KernelPort: the allocator's view of /proc/rtpengine (tables in use, their holder, `del N`).
// The real implementation reads and writes files under a configurable root through a ProcFs
// port; tests pass a stand-in ProcFs with the kernel's control-file semantics.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { AllocError } from '../errors.js';

/** Result of `del N`: removed, refused because a daemon holds it (EBUSY), or no such table (ENOENT). */
export type DeleteResult = 'ok' | 'busy' | 'absent';

export interface TableStatus {
  table: number;
  /** Host PID holding `N/control` (≤ mr26.1 `Control PID:`), 0 = none, undefined = not reported (mr26.2+). */
  holderPid?: number;
  /** mr26.2+ `Opencount:`. */
  openCount?: number;
  raw: string;
}

export interface KernelPort {
  /** Whether the module's proc tree exists at all (absent → nothing to check or clean). */
  available(): Promise<boolean>;
  /** Table IDs from `list`, ascending; [] when the module is absent. */
  listTables(): Promise<number[]>;
  /** Parsed `N/status`, or undefined if the table does not exist. */
  tableStatus(n: number): Promise<TableStatus | undefined>;
  /** Write `del N` to `control`. Other errors → AllocError KERNEL_PROC_FAILED. */
  deleteTable(n: number): Promise<DeleteResult>;
}

/** The file operations the real kernel port needs; node:fs by default. */
export interface ProcFs {
  readFile(path: string): Promise<string>;
  /** One write() of `data`; the kernel answers per write with an errno. */
  writeFile(path: string, data: string): Promise<void>;
  exists(path: string): Promise<boolean>;
}

export const nodeProcFs: ProcFs = {
  readFile: (p) => fsp.readFile(p, 'utf8'),
  async writeFile(p, data) {
    // No O_CREAT/O_TRUNC: /proc control files exist or the module is not loaded.
    const fh = await fsp.open(p, 'r+');
    try { await fh.write(data); } finally { await fh.close(); }
  },
  async exists(p) { try { await fsp.access(p); return true; } catch { return false; } },
};

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

export class ProcKernel implements KernelPort {
  readonly root: string;
  private readonly fs: ProcFs;

  constructor(opts: { root?: string; fs?: ProcFs } = {}) {
    this.root = opts.root ?? '/proc/rtpengine';
    this.fs = opts.fs ?? nodeProcFs;
  }

  available(): Promise<boolean> { return this.fs.exists(join(this.root, 'control')); }

  async listTables(): Promise<number[]> {
    let text: string;
    try { text = await this.fs.readFile(join(this.root, 'list')); } catch (e) {
      if (errno(e) === 'ENOENT') return [];
      throw new AllocError('KERNEL_PROC_FAILED', { op: 'read', path: join(this.root, 'list'), reason: (e as Error).message });
    }
    return text.split('\n').map((l) => l.trim()).filter((l) => /^\d+$/.test(l)).map(Number).sort((a, b) => a - b);
  }

  async tableStatus(n: number): Promise<TableStatus | undefined> {
    const path = join(this.root, String(n), 'status');
    let raw: string;
    try { raw = await this.fs.readFile(path); } catch (e) {
      if (errno(e) === 'ENOENT') return undefined;
      throw new AllocError('KERNEL_PROC_FAILED', { op: 'read', path, reason: (e as Error).message });
    }
    const num = (re: RegExp) => { const m = re.exec(raw); return m ? Number(m[1]) : undefined; };
    return { table: n, holderPid: num(/Control PID:\s*(\d+)/i), openCount: num(/Opencount:\s*(\d+)/i), raw };
  }

  async deleteTable(n: number): Promise<DeleteResult> {
    const path = join(this.root, 'control');
    if (!(await this.fs.exists(path))) return 'absent';
    try {
      await this.fs.writeFile(path, `del ${n}\n`);
      return 'ok';
    } catch (e) {
      if (errno(e) === 'EBUSY') return 'busy';
      if (errno(e) === 'ENOENT') return 'absent';
      throw new AllocError('KERNEL_PROC_FAILED', { op: `write 'del ${n}'`, path, reason: (e as Error).message });
    }
  }
}
