// Replies already sent downstream, keyed by (source address, source port, client cookie), so a
// late retransmission is answered without reaching rtpengine again. Two generations (like
// rtpengine's own cookie cache): entries live one to two `ttlMs`, and total bytes are bounded.
// A timer rotates the generations, so get/set never read the clock (they run per datagram).
import type { Clock, Timer } from '../clock.js';

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
  private readonly timer: Timer;
  private readonly ttlMs: number;
  private readonly maxBytes: number;
  /** Generations dropped early because of the memory bound (for metrics/status). */
  evictions = 0;

  constructor(opts: ReplyCacheOptions) {
    this.ttlMs = opts.ttlMs ?? 60_000;
    this.maxBytes = opts.maxBytes ?? 32 * 1024 * 1024;
    // Every ttlMs the current generation becomes the previous one and the previous one is
    // dropped: an entry lives one to two ttlMs; idle for two generations, both are gone.
    this.timer = opts.clock.setInterval(() => this.rotate(), this.ttlMs);
  }

  get(key: string): Buffer | undefined {
    return this.cur.get(key) ?? this.prev.get(key);
  }

  set(key: string, reply: Buffer): void {
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

  /** Stops the generation timer (the proxy's close). */
  close(): void {
    this.timer.cancel();
    this.clear();
  }

  private rotate(): void {
    if (this.cur.size === 0 && this.prev.size === 0) return;
    this.prev = this.cur;
    this.prevBytes = this.curBytes;
    this.cur = new Map();
    this.curBytes = 0;
  }
}
