// Replies already sent downstream, keyed by (source address, source port, client cookie), so a
// late retransmission is answered without reaching rtpengine again. Two generations (like
// rtpengine's own cookie cache): entries live one to two `ttlMs`, and total bytes are bounded.
// A timer rotates the generations, so get/set never read the clock (they run per datagram).
//
// Every reply is kept for a minute, so at thousands of requests per second the cache holds
// hundreds of thousands of entries. Held as JS objects (a Map of strings to Buffers) they cost the
// proxy ~25 µs of garbage collection per request (measured: docs/proxy.md). So each generation
// is one byte slab (entries appended: key, reply) and an open-addressing index in two typed
// arrays: no per-entry object the GC has to trace, copy or promote. The two generations' slabs are
// recycled on rotation (a fresh 16 MiB slab per rotation costs page faults and makes V8 run a full
// collection for the new external memory); get() returns a copy, so no view into a slab escapes.
import type { Clock, Timer } from '../clock.js';

export interface ReplyCacheOptions {
  clock: Clock;
  /** Minimum lifetime of an entry unless memory pressure rotates earlier (default 60 s). */
  ttlMs?: number;
  /** Bound on both generations together: slabs and indexes (default 32 MiB). */
  maxBytes?: number;
}

/** Entry header in the slab: key length (u16), reply length (u32). */
const HEADER = 6;
/** Index slots per byte of generation budget (one slot = 8 bytes: offset + hash). */
const BYTES_PER_SLOT = 64;
const MAX_KEY = 0xffff;

/**
 * FNV-1a over the key's char codes, in the same pass checking that the key is latin1 (addresses,
 * ports, cookies always are): NaN for a key the slab cannot hold byte for byte. A caller that
 * both looks up and stores a key passes the hash to both (one pass per request).
 */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  let bits = 0;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    bits |= c;
    h = Math.imul(h ^ c, 0x01000193);
  }
  return bits > 0xff ? NaN : h | 0;
}

/** Bytes between page touches when a slab is allocated (the smallest page size in use). */
const PAGE = 4096;

/**
 * A slab with every page already mapped: one page-touching pass when the slab is allocated
 * (a few ms, once per slab) instead of a page fault every third reply while the first tens of
 * MiB of replies are written (measured: ~3.4 µs per cached reply on this VM).
 */
function allocSlab(bytes: number): Buffer {
  const slab = Buffer.allocUnsafeSlow(bytes);
  for (let i = 0; i < bytes; i += PAGE) slab[i] = 0;
  return slab;
}

class Generation {
  /** Allocated on the first entry (an idle cache holds no slab). */
  slab: Buffer | undefined;
  used = 0;
  count = 0;
  /** Slot → entry offset + 1 (0 = empty). */
  readonly slots: Int32Array;
  readonly hashes: Int32Array;
  private readonly mask: number;

  constructor(readonly slabBytes: number, capacity: number) {
    this.slots = new Int32Array(capacity);
    this.hashes = new Int32Array(capacity);
    this.mask = capacity - 1;
  }

  get indexBytes(): number { return this.slots.byteLength + this.hashes.byteLength; }

  /** Empty again; the slab is kept for reuse unless `release` (an idle cache gives its memory back). */
  reset(release: boolean): void {
    if (this.count) this.slots.fill(0);
    this.used = 0;
    this.count = 0;
    if (release) this.slab = undefined;
  }

  /** The slot holding `key`, or the empty slot where it would go. */
  private find(key: string, h: number): number {
    const slab = this.slab;
    let i = h & this.mask;
    for (;;) {
      const at = this.slots[i]!;
      if (at === 0) return i;
      if (this.hashes[i] === h && slab && this.keyAt(slab, at - 1, key)) return i;
      i = (i + 1) & this.mask;
    }
  }

  private keyAt(slab: Buffer, off: number, key: string): boolean {
    const len = slab.readUInt16LE(off);
    if (len !== key.length) return false;
    const k = off + HEADER;
    for (let j = 0; j < len; j++) if (slab[k + j] !== key.charCodeAt(j)) return false;
    return true;
  }

  get(key: string, h: number): Buffer | undefined {
    if (this.count === 0) return undefined;
    const at = this.slots[this.find(key, h)]!;
    if (at === 0) return undefined;
    const off = at - 1;
    const slab = this.slab!;
    const start = off + HEADER + slab.readUInt16LE(off);
    // A copy: the slab is rewritten after two rotations, and a send may still hold its buffer.
    return Buffer.from(slab.subarray(start, start + slab.readUInt32LE(off + 2)));
  }

  /** Appends the entry; false when this generation is full (slab or index at half load). */
  put(key: string, h: number, reply: Buffer): boolean {
    const size = HEADER + key.length + reply.length;
    if (this.used + size > this.slabBytes || (this.count + 1) * 2 > this.slots.length) return false;
    this.slab ??= allocSlab(this.slabBytes);
    const slab = this.slab;
    const off = this.used;
    slab.writeUInt16LE(key.length, off);
    slab.writeUInt32LE(reply.length, off + 2);
    const k = off + HEADER;
    for (let j = 0; j < key.length; j++) slab[k + j] = key.charCodeAt(j);
    slab.set(reply, k + key.length);
    this.used += size;
    const i = this.find(key, h);
    if (this.slots[i] === 0) this.count++;
    this.slots[i] = off + 1;
    this.hashes[i] = h;
    return true;
  }
}

export class ReplyCache {
  private cur: Generation;
  private prev: Generation;
  private readonly timer: Timer;
  private readonly ttlMs: number;
  private readonly slabBytes: number;
  /** Generations dropped early because of the memory bound (for metrics/status). */
  evictions = 0;

  constructor(opts: ReplyCacheOptions) {
    this.ttlMs = opts.ttlMs ?? 60_000;
    const budget = Math.floor((opts.maxBytes ?? 32 * 1024 * 1024) / 2);
    let cap = 16;
    while (cap * 2 <= budget / BYTES_PER_SLOT) cap *= 2;
    this.slabBytes = budget - cap * 8;
    this.cur = new Generation(this.slabBytes, cap);
    this.prev = new Generation(this.slabBytes, cap);
    // Every ttlMs the current generation becomes the previous one and the previous one is
    // dropped: an entry lives one to two ttlMs; idle for two generations, both are gone.
    this.timer = opts.clock.setInterval(() => this.rotate(), this.ttlMs);
  }

  /** The reply sent for `key` (a copy; hits are rare: retransmissions). `h`: hashKey(key). */
  get(key: string, h = hashKey(key)): Buffer | undefined {
    if (this.cur.count === 0 && this.prev.count === 0) return undefined;
    if (Number.isNaN(h)) return undefined;
    return this.cur.get(key, h) ?? this.prev.get(key, h);
  }

  /** Keeps `reply` for `key` (`h`: hashKey(key)). */
  set(key: string, reply: Buffer, h = hashKey(key)): void {
    if (key.length > MAX_KEY || HEADER + key.length + reply.length > this.slabBytes) return; // would evict everything else for one reply
    if (Number.isNaN(h)) return; // not latin1: never produced by the proxy
    if (this.cur.put(key, h, reply)) return;
    this.evictions++;
    this.rotate(true);
    this.cur.put(key, h, reply);
  }

  get size(): number { return this.cur.count + this.prev.count; }
  /** Memory held: slab bytes in use plus the index of every generation holding entries. */
  get bytes(): number {
    let b = 0;
    for (const g of [this.cur, this.prev]) if (g.slab) b += g.used + g.indexBytes;
    return b;
  }

  clear(): void {
    this.cur.reset(true);
    this.prev.reset(true);
  }

  /** Stops the generation timer (the proxy's close). */
  close(): void {
    this.timer.cancel();
    this.clear();
  }

  private rotate(force = false): void {
    if (!force && this.cur.count === 0 && this.prev.count === 0) {
      // Idle for two generations: give the slabs back.
      this.clear();
      return;
    }
    const dropped = this.prev;
    this.prev = this.cur;
    dropped.reset(false);
    this.cur = dropped;
  }
}
