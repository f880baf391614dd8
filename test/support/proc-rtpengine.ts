// Stand-in for /proc/rtpengine (one of the three allowed): a real directory with the module's
// files (control, list, N/status, N/list, N/control) and a ProcFs whose writes to `control`
// follow proc_main_control_write(): add/del, EEXIST, ENOENT, EBUSY while a daemon holds N/control,
// EINVAL otherwise (and EBUSY while a rule references N, mr26.2). All state lives in the files,
// so several processes can share one tree. Reads are synchronous, like the real port's.
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProcFs } from '../../src/allocator/kernel.js';

const errnoError = (code: string, msg: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: ${msg}`), { code });

export class ProcRtpengine implements ProcFs {
  readonly root: string;

  /** A fresh tree in a temp directory, or an existing one (another process's stand-in). */
  constructor(root?: string) {
    this.root = root ?? mkdtempSync(join(tmpdir(), 'proc-rtpengine-'));
    if (!existsSync(join(this.root, 'control'))) writeFileSync(join(this.root, 'control'), '');
    if (!existsSync(join(this.root, 'list'))) writeFileSync(join(this.root, 'list'), '');
  }

  tables(): number[] {
    return readdirSync(this.root).filter((f) => /^\d+$/.test(f)).map(Number).sort((a, b) => a - b);
  }

  private writeList(): void {
    writeFileSync(join(this.root, 'list'), this.tables().map((t) => `${t}\n`).join(''));
  }

  holder(n: number): number {
    const p = join(this.root, String(n), 'status');
    if (!existsSync(p)) return 0;
    const m = /Control PID:\s*(\d+)/.exec(readFileSync(p, 'utf8'));
    return m ? Number(m[1]) : 0;
  }

  private writeStatus(n: number, pid: number): void {
    writeFileSync(join(this.root, String(n), 'status'), `Refcount:    ${pid ? 2 : 1}\nControl PID: ${pid}\nTargets:     0\n`);
  }

  /** The kernel's handling of one write() to /proc/rtpengine/control. */
  control(data: string): void {
    if (data.length < 6 || data.length > 20) throw errnoError('EINVAL', 'invalid argument, write');
    const m = /^(add|del) (\d+)\n?$/.exec(data);
    if (!m) throw errnoError('EINVAL', 'invalid argument, write');
    const n = Number(m[2]);
    if (n >= 64) throw errnoError('EINVAL', 'invalid argument, write');
    const dir = join(this.root, String(n));
    if (m[1] === 'add') {
      if (existsSync(dir)) throw errnoError('EEXIST', 'file already exists, write');
      mkdirSync(dir);
      writeFileSync(join(dir, 'control'), '');
      writeFileSync(join(dir, 'list'), '');
      this.writeStatus(n, 0);
    } else {
      if (!existsSync(dir)) throw errnoError('ENOENT', 'no such file or directory, write');
      if (this.holder(n) || existsSync(join(dir, '.rule-ref'))) throw errnoError('EBUSY', 'resource busy or locked, write');
      rmSync(dir, { recursive: true, force: true });
    }
    this.writeList();
  }

  /** What a daemon does at start with --table=N: del N (ENOENT ignored), add N, open N/control. */
  daemonStart(n: number, pid = 4242): void {
    try { this.control(`del ${n}\n`); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
    this.control(`add ${n}\n`);
    this.writeStatus(n, pid);
  }

  /** The daemon closed N/control (exit, SIGKILL): the table stays, unheld. */
  daemonClose(n: number): void { if (existsSync(join(this.root, String(n)))) this.writeStatus(n, 0); }

  /** mr26.2: a firewall rule referencing N makes `del N` EBUSY although the status shows no holder. */
  ruleRef(n: number, on: boolean): void {
    const p = join(this.root, String(n), '.rule-ref');
    if (on) writeFileSync(p, ''); else rmSync(p, { force: true });
  }

  // ProcFs: reads are plain file reads; the control file gets the kernel's semantics.
  async readFile(path: string): Promise<string> { return readFileSync(path, 'utf8'); }
  async writeFile(path: string, data: string): Promise<void> {
    if (path === join(this.root, 'control')) { this.control(data); return; }
    writeFileSync(path, data);
  }
  async exists(path: string): Promise<boolean> { return existsSync(path); }

  remove(): void { rmSync(this.root, { recursive: true, force: true }); }
}
