// Whole-file atomic replacement for every file this project rewrites (allocator state, db_text,
// drain marker, rtpengine config): temp file beside it, every byte written (short writes checked),
// fsync, rename, fsync of the directory; on any failure the temp file is removed and nothing replaced.
import { openSync, writeSync, closeSync, renameSync, unlinkSync, linkSync, fdatasync, fsync, mkdirSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { FileError, isCoded, type RtpeK8sError } from '../errors.js';

/** Builds the caller's catalogue error from a reason (default FILE_WRITE_FAILED). */
export type WriteErrorFactory = (reason: string, cause: unknown) => RtpeK8sError;

export interface AtomicFileOptions {
  /** Mode of a newly written file (default 0o644; umask applies). */
  mode?: number;
  /** The caller's own error (e.g. ALLOC_STATE_WRITE); default FILE_WRITE_FAILED. */
  error?: WriteErrorFactory;
  /**
   * Keep the generation being replaced under this name (hard link, renamed into place, made
   * durable by the same directory fsync): a reader finding the current file damaged can fall back.
   */
  previous?: string;
  /** Create the parent directory if missing (default false). */
  mkdir?: boolean;
}

let seq = 0;

/** Temp-file prefix for `path` (a crash may leave `<prefix>*`; owners may remove them at start). */
export const tempPrefix = (path: string): string => `.${basename(path)}.tmp-`;

/**
 * write(2) until every byte is in: a short write (nearly full disk, signal) continues where it
 * stopped; an error (ENOSPC, EIO, …) or a write of 0 bytes throws. Returns the byte count.
 */
export function writeFully(fd: number, data: string | Uint8Array): number {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let off = 0;
  while (off < buf.length) {
    const n = writeSync(fd, buf, off, buf.length - off);
    if (!(n > 0)) throw Object.assign(new Error(`write returned ${n} after ${off} of ${buf.length} bytes`), { code: 'EIO' });
    off += n;
  }
  return off;
}

/** One flush on the thread pool (callback API: one hop, no FileHandle wrapper). */
function flush(op: typeof fsync, fd: number): Promise<void> {
  return new Promise((resolve, reject) => op(fd, (e) => (e ? reject(e) : resolve())));
}

const errText = (e: unknown): string => {
  const code = (e as NodeJS.ErrnoException)?.code;
  const msg = (e as Error)?.message ?? String(e);
  return code && !msg.startsWith(code) ? `${code}: ${msg}` : msg;
};

/**
 * A file replaced whole on every write. Cheap steps (open, write into the page cache, close, rename)
 * are synchronous; the two flushes go to the thread pool. The directory is opened once and kept
 * (close() releases it). Writes to one AtomicFile must not overlap (callers serialise them).
 */
export class AtomicFile {
  readonly path: string;
  private readonly dir: string;
  private readonly opts: AtomicFileOptions;
  private dirFd: number | undefined;

  constructor(path: string, opts: AtomicFileOptions = {}) {
    this.path = path;
    this.dir = dirname(path);
    this.opts = opts;
  }

  private fail(reason: string, cause: unknown): RtpeK8sError {
    return this.opts.error ? this.opts.error(reason, cause) : new FileError('FILE_WRITE_FAILED', { path: this.path, reason }, { cause });
  }

  /**
   * Replace the file with `data`; resolves once data and name are durable. `beforeRename(tmp)` may
   * adjust the finished temp file (e.g. its mtime). Any failure: temp removed, old file untouched,
   * the caller's catalogue error thrown.
   */
  async write(data: string | Uint8Array, beforeRename?: (tmp: string) => void | Promise<void>): Promise<void> {
    const tmp = join(this.dir, `${tempPrefix(this.path)}${process.pid}-${++seq}`);
    let renamed = false;
    try {
      if (this.opts.mkdir) mkdirSync(this.dir, { recursive: true });
      const fd = openSync(tmp, 'wx', this.opts.mode ?? 0o644);
      try {
        writeFully(fd, data);
        // fdatasync: data and size (what a reader needs); the mtime is not worth a flush.
        await flush(fdatasync, fd);
      } finally { closeSync(fd); }
      if (beforeRename) await beforeRename(tmp);
      if (this.opts.previous) this.keepPrevious(this.opts.previous);
      renameSync(tmp, this.path);
      renamed = true;
      // The rename is durable only once the directory is: without this a power cut may bring the old name back.
      this.dirFd ??= openSync(this.dir, 'r');
      try { await flush(fsync, this.dirFd); } catch (e) {
        // Filesystems that cannot fsync a directory say EINVAL: nothing more can be done there.
        if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
      }
    } catch (e) {
      if (!renamed) { try { unlinkSync(tmp); } catch { /* never created */ } }
      if (isCoded(e)) throw e;
      throw this.fail(renamed ? `renamed into place but the directory flush failed (${errText(e)}); the new content may not survive a power cut` : errText(e), e);
    }
  }

  /** Hard-link the current file to `<previous>` (via a temp name, so `previous` is always whole). */
  private keepPrevious(previous: string): void {
    const tmp = join(this.dir, `${tempPrefix(this.path)}prev-${process.pid}-${++seq}`);
    try { linkSync(this.path, tmp); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // first write: nothing to keep
      throw e;
    }
    try { renameSync(tmp, previous); } catch (e) { try { unlinkSync(tmp); } catch { /* gone */ } throw e; }
  }

  /** Release the kept directory handle. */
  close(): void {
    if (this.dirFd !== undefined) { try { closeSync(this.dirFd); } catch { /* already closed */ } this.dirFd = undefined; }
  }
}

/** One-shot atomic write (opens and closes the directory handle). */
export async function writeFileAtomic(path: string, data: string | Uint8Array, opts: AtomicFileOptions & { beforeRename?: (tmp: string) => void | Promise<void> } = {}): Promise<void> {
  const f = new AtomicFile(path, opts);
  try { await f.write(data, opts.beforeRename); } finally { f.close(); }
}
