// The one logger root: pino JSON to stdout (stderr for CLI-style commands); components take
// `log.child({ component })`. Repeated lines are rate-limited with a summary count, and output is a
// bounded queue (dropped lines counted) so a slow or stalled stdout never grows memory or holds exit.
import { writeSync, write as fsWrite } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { pino, symbols, type Logger, type DestinationStream, type LogFn } from 'pino';

export type { Logger };

export interface RepeatLimit {
  /** Lines with the same level, component bindings and message allowed per window; 0 = no limit. */
  max: number;
  windowMs: number;
  /** Monotonic milliseconds (tests step it); default performance.now. */
  now?: () => number;
}

export interface LogOptions {
  level: string;
  /** Human-readable single lines instead of JSON (local runs); JSON is the default. */
  pretty?: boolean;
  /** 1 = stdout (default), 2 = stderr. */
  fd?: 1 | 2;
  name?: string;
  /** Default: 20 lines per 10 s per (level, component, message). */
  repeat?: RepeatLimit;
  /** Output queued beyond this many bytes (stdout slower than the logs) is dropped and counted. */
  maxQueuedBytes?: number;
}

export const DEFAULT_REPEAT: RepeatLimit = { max: 20, windowMs: 10_000 };
export const DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024;

interface Root { limiter?: RepeatLimiter; out?: BoundedFdStream }
const roots = new WeakMap<Logger, Root>();

export function createLogger(opts: LogOptions, dest?: DestinationStream): Logger {
  const out = dest ? undefined : new BoundedFdStream(opts.fd ?? 1, opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES, !!opts.pretty);
  const destination: DestinationStream = dest ?? out!;
  const repeat = opts.repeat ?? DEFAULT_REPEAT;
  const limiter = repeat.max > 0 ? new RepeatLimiter(repeat) : undefined;
  const hooks = limiter ? { hooks: { logMethod(this: Logger, args: Parameters<LogFn>, method: LogFn, level: number) { limiter.log(this, args, method, level); } } } : {};
  const log = opts.pretty
    ? pino({ level: opts.level, name: opts.name, base: undefined, timestamp: false, ...hooks }, prettyStream(destination))
    : pino({ level: opts.level, name: opts.name, base: { pid: process.pid }, ...hooks }, destination);
  roots.set(log, { limiter, out });
  return log;
}

/**
 * Log the summaries of suppressed repeats, then wait for queued output to be written, at most
 * `timeoutMs`. Resolves false when output is still pending (stdout stalled): the caller exits anyway.
 */
export async function closeLogger(log: Logger, timeoutMs: number): Promise<boolean> {
  const root = roots.get(log);
  root?.limiter?.summarise(true);
  if (!root?.out) { log.flush?.(); return true; }
  return root.out.drained(timeoutMs);
}

/** Log the summaries of repeats suppressed so far (also done every window and by closeLogger). */
export function flushRepeats(log: Logger): void {
  roots.get(log)?.limiter?.summarise(true);
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger: Logger = pino({ level: 'silent' });

// --- repeated lines ------------------------------------------------------------------------------

interface Window { start: number; count: number; suppressed: number; logger: Logger; level: number; msg: string }
const MAX_KEYS = 1024;
const chindings = symbols.chindingsSym as unknown as string;

class RepeatLimiter {
  private readonly windows = new Map<string, Window>();
  private readonly now: () => number;
  private sweep: NodeJS.Timeout | undefined;
  private emitting = false;

  constructor(private readonly limit: RepeatLimit) {
    this.now = limit.now ?? (() => performance.now());
  }

  log(logger: Logger, args: Parameters<LogFn>, method: LogFn, level: number): void {
    if (this.emitting) { method.apply(logger, args); return; }
    const msg = typeof args[0] === 'string' ? args[0] : typeof args[1] === 'string' ? args[1] : '';
    const key = `${level}\u0000${(logger as unknown as Record<string, string>)[chindings] ?? ''}\u0000${msg}`;
    const t = this.now();
    let w = this.windows.get(key);
    if (w && t - w.start >= this.limit.windowMs) { this.emit(w); this.windows.delete(key); w = undefined; }
    if (!w) {
      if (this.windows.size >= MAX_KEYS) this.summarise(false);
      if (this.windows.size >= MAX_KEYS) { method.apply(logger, args); return; } // the output queue still bounds memory
      w = { start: t, count: 0, suppressed: 0, logger, level, msg };
      this.windows.set(key, w);
    }
    if (++w.count <= this.limit.max) { method.apply(logger, args); return; }
    w.suppressed++;
    if (!this.sweep) {
      this.sweep = setInterval(() => this.summarise(false), this.limit.windowMs);
      this.sweep.unref();
    }
  }

  /** Summaries for windows that ended (all of them when `all`), and forget those windows. */
  summarise(all: boolean): void {
    const t = this.now();
    for (const [key, w] of this.windows) {
      if (!all && t - w.start < this.limit.windowMs) continue;
      this.emit(w);
      this.windows.delete(key);
    }
    if (this.sweep && ![...this.windows.values()].some((w) => w.suppressed)) { clearInterval(this.sweep); this.sweep = undefined; }
  }

  private emit(w: Window): void {
    if (!w.suppressed) return;
    const label = pino.levels.labels[w.level] ?? 'info';
    this.emitting = true;
    try {
      (w.logger[label as 'info'] as LogFn).call(w.logger, { repeated: w.msg, suppressed: w.suppressed, windowS: Math.round(this.limit.windowMs / 1000) },
        'repeated log line suppressed');
    } finally {
      this.emitting = false;
    }
    w.suppressed = 0;
  }
}

// --- bounded output --------------------------------------------------------------------------------

/**
 * Writes lines to a file descriptor through a queue of at most `maxBytes`; lines beyond it are
 * dropped and counted, and one summary line says how many once the queue has room again. Writes
 * are asynchronous (a blocked pipe blocks a pool thread, never the event loop) and partial writes
 * are resumed where they stopped.
 */
export class BoundedFdStream implements DestinationStream {
  private queue: Buffer[] = [];
  private queued = 0;
  private writing = false;
  private dropped = 0;
  private waiters: Array<() => void> = [];

  constructor(private readonly fd: number, private readonly maxBytes: number, private readonly pretty = false) {}

  write(line: string): void {
    const b = Buffer.from(line);
    if (this.queued + b.length > this.maxBytes) { this.dropped++; return; }
    this.push(b);
  }

  /** Lines dropped so far because the queue was full. */
  get droppedLines(): number { return this.dropped; }
  get queuedBytes(): number { return this.queued; }

  /** Resolves true once everything queued is written, false if that takes longer than `timeoutMs`. */
  drained(timeoutMs: number): Promise<boolean> {
    if (!this.writing && !this.queued) return Promise.resolve(true);
    return new Promise((resolve) => {
      // Not unref'd: the caller is waiting, and the wait is bounded.
      const t = setTimeout(() => { this.waiters = this.waiters.filter((w) => w !== done); resolve(false); }, timeoutMs);
      const done = () => { clearTimeout(t); resolve(true); };
      this.waiters.push(done);
    });
  }

  /** pino's flush(cb): best effort, never waits on a stalled descriptor. */
  flush(cb?: (err?: Error) => void): void { cb?.(); }

  /** Only for the process's last moments; a non-blocking descriptor may refuse part of it. */
  flushSync(): void {
    // Each buffer whole or nothing after it: a short write means the pipe is full, and the next
    // attempt then fails (EAGAIN) and ends the flush instead of writing past a torn line.
    try {
      for (const b of this.queue) {
        for (let off = 0; off < b.length;) { const n = writeSync(this.fd, b, off); if (n <= 0) return; off += n; }
      }
    } catch { /* stalled or closed: dropped */ }
  }

  private push(b: Buffer): void {
    this.queue.push(b);
    this.queued += b.length;
    if (!this.writing) this.next();
  }

  private next(): void {
    if (!this.queue.length && this.dropped) this.enqueueSummary();
    if (!this.queue.length) {
      this.writing = false;
      for (const w of this.waiters.splice(0)) w();
      return;
    }
    this.writing = true;
    const chunk = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue);
    this.queue = [chunk];
    fsWrite(this.fd, chunk, 0, chunk.length, null, (err, written) => {
      if (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') { const t = setTimeout(() => this.next(), 10); t.unref(); return; }
        // EPIPE, EBADF: nobody will ever read these lines; forget them rather than queue for ever.
        this.queue = [];
        this.queued = 0;
        this.dropped = 0;
        this.next();
        return;
      }
      const rest = chunk.subarray(written);
      this.queued -= written;
      this.queue = rest.length ? [rest] : [];
      this.next();
    });
  }

  private enqueueSummary(): void {
    const n = this.dropped;
    this.dropped = 0;
    const msg = 'log output could not keep up (stdout slow or stalled): lines dropped';
    const line = this.pretty ? `WARN  ${msg}  dropped=${n}\n`
      : `${JSON.stringify({ level: 40, time: Date.now(), pid: process.pid, dropped: n, msg })}\n`;
    const b = Buffer.from(line);
    this.queue.push(b);
    this.queued += b.length;
  }
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** Minimal pretty printer: `LEVEL component msg key=value …` per line, no extra dependency. */
function prettyStream(out: DestinationStream): DestinationStream {
  return {
    write(line: string) {
      try {
        const { level, msg, component, name, ...rest } = JSON.parse(line) as Record<string, unknown>;
        const facts = Object.entries(rest)
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ');
        const who = (component ?? name ?? '') as string;
        out.write(`${(LEVELS[level as number] ?? String(level)).padEnd(5)} ${who ? `[${who}] ` : ''}${msg ?? ''}${facts ? `  ${facts}` : ''}\n`);
      } catch {
        out.write(line);
      }
    },
  };
}
