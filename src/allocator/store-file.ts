// The embedded store: one JSON state file with a format version, rewritten atomically (temp file,
// fsync, rename, fsync of the directory) so kill -9 leaves the old or the new state, never half.
// Concurrent operations share one write (group commit); each resolves once its change is on disk.
// Cheap steps (open, write to the page cache, close, rename) are synchronous; only the two disk
// flushes go to the thread pool, so the event loop is never blocked on the disk (docs/allocator.md).
// One allocator per state file: an flock'd lock file beside it, released by the kernel (ADR 0005).
import { promises as fsp, openSync, closeSync, unlinkSync, readFileSync, readdirSync, readlinkSync, ftruncateSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { AllocError } from '../errors.js';
import { AtomicFile, tempPrefix, writeFully } from '../fs/atomic-file.js';
import type { Allocation, AllocationStore, StoreState } from './store.js';

export const STATE_FORMAT = 'rtpengine-k8s/allocator-state';
export const STATE_VERSION = 1;

const addressSchema = z.object({
  pool: z.string(), ip: z.string(), prefixLength: z.number().int(), gateway: z.string(), offset: z.string().regex(/^\d+$/),
});
const allocationSchema = z.object({
  pod: z.object({ namespace: z.string(), name: z.string(), uid: z.string().min(1) }),
  node: z.string(),
  table: z.number().int().min(0).max(63),
  addresses: z.array(addressSchema),
  state: z.enum(['active', 'releasing', 'busy-table']),
  createdAt: z.number(), renewedAt: z.number(), leaseExpiresAt: z.number(),
  releasedAt: z.number().optional(), releaseReason: z.string().optional(),
});
const fileSchema = z.object({
  format: z.literal(STATE_FORMAT),
  version: z.literal(STATE_VERSION),
  allocations: z.record(z.string(), allocationSchema),
  tableReleasedAt: z.record(z.string().regex(/^\d+$/), z.number()),
});
type StateFile = z.infer<typeof fileSchema>;

/** The store's own copy (allocations hold only plain fields, a pod and addresses). */
const copy = (a: Allocation): Allocation => ({ ...a, pod: { ...a.pod }, addresses: a.addresses.map((x) => ({ ...x })) });

/** One queued change: applied to the in-memory document now, re-applied onto the durable state if an earlier write fails. */
interface Waiter { apply: (d: Doc) => void; resolve: () => void; reject: (e: unknown) => void }
type Doc = Pick<StateFile, 'allocations' | 'tableReleasedAt'>;

/** What a holder writes into the lock file: only to name it in the refusal (the flock decides). */
interface LockInfo { pid: number; pidNs: string; start: string; host: string }

const pidNamespace = (): string => { try { return readlinkSync('/proc/self/ns/pid'); } catch { return ''; } };
/** Start time of a process (field 22 of /proc/PID/stat), written for operators next to the PID. */
function processStart(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch { return ''; }
}

/** flock(1) exits with this when the lock is held (-n -E). */
const FLOCK_HELD = 75;

/**
 * flock(LOCK_EX|LOCK_NB) on `fd`'s open file description. Node has no flock(2); flock(1) from
 * util-linux gets the same description as its fd 3 and locks it, then exits: the lock belongs to
 * the description, which our fd keeps open, so it stays ours until we close the fd or die — the
 * kernel releases it then, whatever PID namespace either side lives in (ADR 0005).
 */
export function flockNonBlocking(fd: number): 'locked' | 'held' {
  const r = spawnSync('flock', ['-n', '-x', '-E', String(FLOCK_HELD), '3'], { stdio: ['ignore', 'ignore', 'pipe', fd], timeout: 10_000 });
  if (r.status === 0) return 'locked';
  if (r.status === FLOCK_HELD) return 'held';
  const why = r.error ? `${(r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'flock(1) from util-linux is not installed' : r.error.message}` : `flock(1) exited ${r.status ?? r.signal}: ${String(r.stderr).trim()}`;
  throw new Error(why);
}

export class FileStore implements AllocationStore {
  readonly kind = 'file';
  readonly path: string;
  readonly lockPath: string;
  /** The generation before the current one (a hard link kept by every write). */
  readonly previousPath: string;
  private doc: StateFile = { format: STATE_FORMAT, version: STATE_VERSION, allocations: {}, tableReleasedAt: {} };
  /** What the file on disk holds (the last acknowledged write); rollbacks rebuild from it. */
  private durable: Doc = { allocations: {}, tableReleasedAt: {} };
  private waiting: Waiter[] = [];
  /** Descriptor holding the flock on lockPath (undefined: not locked). */
  private lockFd: number | undefined;
  private writing: Promise<void> | undefined;
  /** Whole-file atomic writer (every byte checked, fsync file + directory), keeping the previous generation. */
  private readonly file: AtomicFile;
  /** Serialised form of each stored record (records are replaced on change, never mutated). */
  private readonly json = new WeakMap<Allocation, string>();
  /** Completed atomic writes (tests and metrics). */
  writes = 0;

  constructor(path: string) {
    this.path = path;
    this.lockPath = `${path}.lock`;
    this.previousPath = `${path}.prev`;
    this.file = new AtomicFile(path, {
      mode: 0o640,
      previous: this.previousPath,
      error: (reason, cause) => new AllocError('ALLOC_STATE_WRITE', { path, reason }, { cause }),
    });
  }

  /** Lock, clear temp files a crash left, read. The lock is held until close(); a failed load releases it. */
  async load(): Promise<StoreState> {
    // The directory first: the lock file lives beside the state file, and the first write cannot fail on it.
    await fsp.mkdir(dirname(this.path), { recursive: true });
    this.lock();
    try {
      this.removeStaleTemps();
      return await this.read();
    } catch (e) { this.unlock(); throw e; }
  }

  private async read(): Promise<StoreState> {
    let text: string;
    try {
      text = await fsp.readFile(this.path, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw new AllocError('ALLOC_STATE_UNREADABLE', { path: this.path, reason: `${code ?? 'error'}: ${(e as Error).message}` });
      return { allocations: [], tableReleasedAt: {}, foreignAddresses: {} };
    }
    let raw: unknown;
    try { raw = JSON.parse(text); } catch (e) {
      throw new AllocError('ALLOC_STATE_CORRUPT', { path: this.path, reason: `not JSON: ${(e as Error).message}` });
    }
    const r = raw as { format?: unknown; version?: unknown } | null;
    if (!r || typeof r !== 'object' || r.format !== STATE_FORMAT) {
      throw new AllocError('ALLOC_STATE_CORRUPT', { path: this.path, reason: `field 'format' is ${JSON.stringify(r && typeof r === 'object' ? r.format : r)}, expected '${STATE_FORMAT}'` });
    }
    if (r.version !== STATE_VERSION) throw new AllocError('ALLOC_STATE_VERSION', { path: this.path, found: r.version, supported: STATE_VERSION });
    const parsed = fileSchema.safeParse(raw);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      throw new AllocError('ALLOC_STATE_CORRUPT', { path: this.path, reason: `at ${i.path.join('.') || '(root)'}: ${i.message}` });
    }
    this.checkUnique(parsed.data);
    this.doc = parsed.data;
    this.durable = { allocations: { ...this.doc.allocations }, tableReleasedAt: { ...this.doc.tableReleasedAt } };
    return {
      allocations: Object.values(this.doc.allocations).map((a) => structuredClone(a)),
      tableReleasedAt: { ...this.doc.tableReleasedAt },
      foreignAddresses: {},
    };
  }

  /**
   * Exclusive flock on `<state-file>.lock`, held through an open descriptor until close() or death
   * (the kernel releases it: a restart — also in a fresh PID namespace — takes it at once). Held by
   * a live allocator → ALLOC_STATE_LOCKED at once, naming the holder from the file's content.
   */
  private lock(): void {
    if (this.lockFd !== undefined) return;
    let fd: number;
    try { fd = openSync(this.lockPath, 'a+', 0o640); } catch (e) {
      throw new AllocError('ALLOC_STATE_WRITE', { path: this.lockPath, reason: `cannot open the lock file: ${(e as Error).message}` }, { cause: e });
    }
    let got: 'locked' | 'held';
    try { got = flockNonBlocking(fd); } catch (e) {
      closeSync(fd);
      throw new AllocError('ALLOC_STATE_WRITE', { path: this.lockPath, reason: `cannot lock: ${(e as Error).message}` }, { cause: e });
    }
    if (got === 'held') {
      let holder = 'another process';
      try {
        const info = JSON.parse(readFileSync(this.lockPath, 'utf8')) as Partial<LockInfo>;
        if (typeof info.pid === 'number') holder = `pid ${info.pid}${info.pidNs && info.pidNs !== pidNamespace() ? ` in another PID namespace (${info.pidNs})` : ''}${info.host ? ` on ${info.host}` : ''}`;
      } catch { /* holder still writing its name, or an old lock */ }
      closeSync(fd);
      throw new AllocError('ALLOC_STATE_LOCKED', { path: this.path, lock: this.lockPath, holder });
    }
    // Ours: say who holds it (for the refusal message of a second allocator; the flock decides).
    const info: LockInfo = { pid: process.pid, pidNs: pidNamespace(), start: processStart(process.pid), host: hostname() };
    try { ftruncateSync(fd, 0); writeFully(fd, `${JSON.stringify(info)}\n`); } catch { /* only a description */ }
    this.lockFd = fd;
  }

  private unlock(): void {
    if (this.lockFd === undefined) return;
    // The file stays (unlinking a flock'd file races with a starter that just opened it); closing releases the lock.
    closeSync(this.lockFd);
    this.lockFd = undefined;
  }

  /** Temp files of writes a crash interrupted (ours hold the lock, so none is in flight). */
  private removeStaleTemps(): void {
    const prefix = tempPrefix(this.path);
    for (const f of readdirSync(dirname(this.path))) {
      if (f.startsWith(prefix)) { try { unlinkSync(join(dirname(this.path), f)); } catch { /* raced away */ } }
    }
  }

  /** A file naming one table or address twice was not written by us: refuse it. */
  private checkUnique(d: StateFile): void {
    const tables = new Map<number, string>();
    const addrs = new Map<string, string>();
    for (const [uid, a] of Object.entries(d.allocations)) {
      if (a.pod.uid !== uid) throw new AllocError('ALLOC_STATE_CORRUPT', { path: this.path, reason: `allocation key ${uid} holds pod uid ${a.pod.uid}` });
      const t = tables.get(a.table);
      if (t) throw new AllocError('ALLOC_STATE_CORRUPT', { path: this.path, reason: `table ${a.table} held by both ${t} and ${uid}` });
      tables.set(a.table, uid);
      for (const x of a.addresses) {
        const k = `${x.pool}/${x.offset}`;
        const o = addrs.get(k);
        if (o) throw new AllocError('ALLOC_STATE_CORRUPT', { path: this.path, reason: `address ${x.ip} (pool ${x.pool}) held by both ${o} and ${uid}` });
        addrs.set(k, uid);
      }
    }
  }

  // Each change is a function of the document, checked against the record it finds: it runs once
  // on the live document now, and again onto the durable state if an earlier write fails.

  async create(a: Allocation): Promise<void> {
    const rec = copy(a);
    await this.commit((d) => {
      const prev = d.allocations[a.pod.uid];
      if (prev && prev.table !== a.table) throw new AllocError('ALLOC_CONFLICT', { resource: `pod ${a.pod.uid}`, reason: `already stored with table ${prev.table}` });
      d.allocations[a.pod.uid] = rec;
    });
  }

  async update(a: Allocation): Promise<void> {
    const rec = copy(a);
    await this.commit((d) => {
      const prev = d.allocations[a.pod.uid];
      if (!prev) throw new AllocError('ALLOC_NOT_FOUND', { pod: `${a.pod.namespace}/${a.pod.name}`, uid: a.pod.uid, node: a.node });
      d.allocations[a.pod.uid] = { ...rec, table: prev.table, addresses: prev.addresses };
    });
  }

  async remove(a: Allocation, releasedAt: number): Promise<void> {
    await this.commit((d) => {
      delete d.allocations[a.pod.uid];
      d.tableReleasedAt[String(a.table)] = releasedAt;
    });
  }

  async close(): Promise<void> {
    while (this.writing) await this.writing.catch(() => undefined);
    this.file.close();
    this.unlock();
  }

  /** Apply the change in memory (a refused change throws here, nothing queued) and queue it for the next write. */
  private commit(apply: (d: Doc) => void): Promise<void> {
    apply(this.doc);
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ apply, resolve, reject });
      if (!this.writing) this.writing = this.drain();
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.waiting.length) {
        const batch = this.waiting.splice(0);
        // Exactly durable + batch: changes queued from here on are not in this write.
        const written: Doc = { allocations: { ...this.doc.allocations }, tableReleasedAt: { ...this.doc.tableReleasedAt } };
        try {
          await this.file.write(this.serialize());
          this.writes++;
          this.durable = written;
          for (const w of batch) w.resolve();
        } catch (e) {
          this.rollback(e);
          for (const w of batch) w.reject(e);
        }
      }
    } finally {
      this.writing = undefined;
    }
  }

  /**
   * The failed batch is dropped: the document becomes the durable state plus the changes still
   * queued (a later change to the same record keeps its value). A queued change that no longer
   * applies (e.g. an update of a record whose create failed) fails with the same write error.
   */
  private rollback(cause: unknown): void {
    const d: Doc = { allocations: { ...this.durable.allocations }, tableReleasedAt: { ...this.durable.tableReleasedAt } };
    this.waiting = this.waiting.filter((w) => {
      try { w.apply(d); return true; } catch { w.reject(cause); return false; }
    });
    this.doc.allocations = d.allocations;
    this.doc.tableReleasedAt = d.tableReleasedAt;
  }

  /**
   * The whole document, one allocation per line. Each allocation's JSON is cached by object
   * (records are replaced, never changed in place), so a write with 64 pods costs a join, not a
   * full stringify (~0.2 ms for 64 pods on the development VM).
   */
  private serialize(): string {
    const d = this.doc;
    const rows = Object.entries(d.allocations).map(([uid, a]) => {
      let text = this.json.get(a);
      if (text === undefined) { text = JSON.stringify(a); this.json.set(a, text); }
      return `${JSON.stringify(uid)}:${text}`;
    });
    return `{"format":${JSON.stringify(d.format)},"version":${d.version},"allocations":{\n${rows.join(',\n')}\n},"tableReleasedAt":${JSON.stringify(d.tableReleasedAt)}}\n`;
  }
}
