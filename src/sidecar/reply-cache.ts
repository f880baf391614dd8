// Replies already sent downstream, keyed by (source address, source port, client cookie), so a
// late retransmission is answered without reaching rtpengine again. Two generations (like
// rtpengine's own cookie cache): entries live one to two `ttlMs`, and total bytes are bounded.
import type { Clock } from '../clock.js';

export interface ReplyCacheOptions {
  clock: Clock;
  /** Minimum lifetime of an entry unless memory pressure rotates earlier (default 60 s). */
  ttlMs?: number;
  /** Bound on both generations together, keys and replies counted (default 32 MiB). */
  maxBytes?: number;
}

const ENTRY_OVERHEAD = 96; // Map slot + Buffer header, roughly; keeps the bound honest for tiny replies

export class ReplyCache {
  private cur = new Map<string, Buffer>();
  private prev = new Map<string, Buffer>();
  private curBytes = 0;
  private prevBytes = 0;
  private genStart: number;
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly maxBytes: number;
  /** Generations dropped early because of the memory bound (for metrics/status). */
  evictions = 0;

  constructor(opts: ReplyCacheOptions) {
    this.clock = opts.clock;
    this.ttlMs = opts.ttlMs ?? 60_000;
    this.maxBytes = opts.maxBytes ?? 32 * 1024 * 1024;
    this.genStart = this.clock.monotonic();
  }

  get(key: string): Buffer | undefined {
    this.maybeRotate();
    return this.cur.get(key) ?? this.prev.get(key);
  }

  set(key: string, reply: Buffer): void {
    this.maybeRotate();
    const size = key.length * 2 + reply.length + ENTRY_OVERHEAD;
    if (size > this.maxBytes / 2) return; // would evict everything else for one reply
    const old = this.cur.get(key);
    if (old) this.curBytes -= key.length * 2 + old.length + ENTRY_OVERHEAD;
    this.cur.set(key, reply);
    this.curBytes += size;
    if (this.curBytes > this.maxBytes / 2) {
      this.evictions++;
      this.rotate();
    }
  }

  get size(): number { return this.cur.size + this.prev.size; }
  get bytes(): number { return this.curBytes + this.prevBytes; }

  clear(): void {
    this.cur = new Map();
    this.prev = new Map();
    this.curBytes = this.prevBytes = 0;
  }

  private maybeRotate(): void {
    const now = this.clock.monotonic();
    if (now - this.genStart < this.ttlMs) return;
    // Idle for two generations: both are stale.
    if (now - this.genStart >= 2 * this.ttlMs) this.clear();
    else this.rotate();
    this.genStart = now;
  }

  private rotate(): void {
    this.prev = this.cur;
    this.prevBytes = this.curBytes;
    this.cur = new Map();
    this.curBytes = 0;
  }
}
