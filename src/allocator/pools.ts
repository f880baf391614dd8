// Address pools with whereabouts' semantics (canonical range, usable span, range_start/end,
// excludes, lowest free first, decimal offset keys) and a free-address finder that skips whole
// blocked intervals, so a nearly full pool allocates in O(log n). Pure: no I/O.
import { isIP } from 'node:net';
import { AllocError } from '../errors.js';

export interface PoolConfig {
  name: string;
  /** IPv4 or IPv6 CIDR; host bits are dropped (whereabouts stores `ipNet.String()`). */
  cidr: string;
  /** Honoured only inside the usable span (network+1 … broadcast−1), as whereabouts does. */
  rangeStart?: string;
  /** Honoured only inside [start … broadcast−1] (after rangeStart is applied). */
  rangeEnd?: string;
  /** CIDRs or single addresses (/32, /128); the whole subnet is skipped. */
  exclude?: string[];
  gateway?: string;
}

export type Family = 4 | 6;

export interface ParsedIp { family: Family; value: bigint }

/** A pool compiled from its config: every figure as an offset from the canonical network address. */
export interface PoolSpan {
  name: string;
  family: Family;
  /** Canonical range text, e.g. `192.168.2.224/28` — whereabouts' `spec.range`. */
  range: string;
  network: bigint;
  prefixLength: number;
  /** First and last offsets that may be handed out (after range_start/range_end). */
  first: bigint;
  last: bigint;
  /** Excluded offset intervals clipped to [first, last], merged, ascending. */
  excluded: Array<[bigint, bigint]>;
  gateway: string;
  /** Settings whereabouts would silently ignore (logged at start). */
  notes: string[];
}

/**
 * whereabouts stores offsets as uint64 and documents that for IPv6 ranges of /64 or wider only the
 * first /65 is usable; we clamp the same way so both agree on every key.
 */
export const MAX_WHEREABOUTS_OFFSET = (1n << 63n) - 1n;

const bits = (f: Family) => (f === 4 ? 32 : 128);

export function parseIp(text: string): ParsedIp | undefined {
  const s = text.trim();
  const kind = isIP(s);
  if (kind === 4) {
    const v = s.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
    return { family: 4, value: v };
  }
  if (kind !== 6) return undefined;
  let head = s;
  let tailV4: bigint | undefined;
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    const v4 = parseIp(s.slice(lastColon + 1));
    if (!v4) return undefined;
    tailV4 = v4.value;
    head = s.slice(0, lastColon + 1) + '0:0';
  }
  const [l, r] = head.includes('::') ? head.split('::') : [head, undefined];
  const left = l ? l.split(':') : [];
  const right = r === undefined ? [] : r ? r.split(':') : [];
  const groups = r === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  let v = groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
  if (tailV4 !== undefined) v = (v & ~0xffffffffn) | tailV4;
  return { family: 6, value: v };
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 (longest zero run of ≥ 2 groups compressed). */
export function formatIp(value: bigint, family: Family): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((sh) => String((value >> sh) & 0xffn)).join('.');
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  let bestAt = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

/** `a.b.c.d/NN` → network value and prefix; host bits cleared. */
export function parseCidr(text: string): { family: Family; network: bigint; prefixLength: number } | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseIp(text.slice(0, slash));
  const pfx = text.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(pfx)) return undefined;
  const prefixLength = Number(pfx);
  if (prefixLength > bits(ip.family)) return undefined;
  const host = (1n << BigInt(bits(ip.family) - prefixLength)) - 1n;
  return { family: ip.family, network: ip.value & ~host, prefixLength };
}

/** The canonical range string whereabouts writes into `IPPool.spec.range`. */
export function canonicalRange(cidr: string): string {
  const c = parseCidr(cidr);
  if (!c) throw new AllocError('ALLOC_POOL_INVALID', { pool: cidr, reason: `'${cidr}' is not a CIDR` });
  return `${formatIp(c.network, c.family)}/${c.prefixLength}`;
}

const invalid = (pool: string, reason: string) => new AllocError('ALLOC_POOL_INVALID', { pool, reason });

/** Config → span. Errors name the pool and the field; whereabouts' silent ignores become notes. */
export function compilePool(cfg: PoolConfig): PoolSpan {
  const c = parseCidr(cfg.cidr);
  if (!c) throw invalid(cfg.name, `cidr '${cfg.cidr}' is not an IPv4/IPv6 CIDR`);
  const width = bits(c.family);
  const hostBits = width - c.prefixLength;
  // whereabouts' HasUsableIPs: a /31, /32, /127 or /128 has no usable address (network+1 > broadcast−1).
  if (hostBits < 2) throw invalid(cfg.name, `cidr ${cfg.cidr} has no usable address (whereabouts never hands out the network and broadcast addresses; /${width - 1} and /${width} are too small)`);
  const size = 1n << BigInt(hostBits);
  const notes: string[] = [];
  let first = 1n;
  let last = size - 2n;
  const inFamily = (field: string, text: string): bigint => {
    const ip = parseIp(text);
    if (!ip) throw invalid(cfg.name, `${field} '${text}' is not an IP address`);
    if (ip.family !== c.family) throw invalid(cfg.name, `${field} '${text}' is IPv${ip.family}, the pool is IPv${c.family}`);
    return ip.value;
  };
  const off = (v: bigint) => v - c.network;
  if (cfg.rangeStart) {
    const o = off(inFamily('range_start', cfg.rangeStart));
    if (o >= first && o <= last) first = o;
    else notes.push(`range_start ${cfg.rangeStart} is outside the usable span and is ignored (as whereabouts does)`);
  }
  if (cfg.rangeEnd) {
    const o = off(inFamily('range_end', cfg.rangeEnd));
    if (o >= first && o <= last) last = o;
    else notes.push(`range_end ${cfg.rangeEnd} is outside [range start … broadcast−1] and is ignored (as whereabouts does)`);
  }
  if (last > MAX_WHEREABOUTS_OFFSET) {
    last = MAX_WHEREABOUTS_OFFSET;
    notes.push(`only the first /65 of ${cfg.cidr} is used: whereabouts keeps offsets as uint64 (its documented limit)`);
  }
  const raw: Array<[bigint, bigint]> = [];
  for (const e of cfg.exclude ?? []) {
    const cidr = e.includes('/') ? parseCidr(e) : (() => { const ip = parseIp(e); return ip && { family: ip.family, network: ip.value, prefixLength: bits(ip.family) }; })();
    if (!cidr) throw invalid(cfg.name, `exclude entry '${e}' is neither a CIDR nor an IP address`);
    if (cidr.family !== c.family) throw invalid(cfg.name, `exclude entry '${e}' is IPv${cidr.family}, the pool is IPv${c.family}`);
    const lo = cidr.network - c.network;
    const hi = lo + (1n << BigInt(bits(cidr.family) - cidr.prefixLength)) - 1n;
    const a = lo < first ? first : lo;
    const b = hi > last ? last : hi;
    if (a <= b) raw.push([a, b]);
  }
  raw.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const excluded: Array<[bigint, bigint]> = [];
  for (const [a, b] of raw) {
    const top = excluded[excluded.length - 1];
    if (top && a <= top[1] + 1n) { if (b > top[1]) top[1] = b; } else excluded.push([a, b]);
  }
  let gateway = '';
  if (cfg.gateway) gateway = formatIp(inFamily('gateway', cfg.gateway), c.family);
  return { name: cfg.name, family: c.family, range: `${formatIp(c.network, c.family)}/${c.prefixLength}`, network: c.network, prefixLength: c.prefixLength, first, last, excluded, gateway, notes };
}

/** Decimal offset key of `ip` in the span (whereabouts' IPPool allocation key). */
export function offsetKey(span: PoolSpan, ip: string): string {
  const p = parseIp(ip);
  if (!p || p.family !== span.family) throw invalid(span.name, `'${ip}' is not an IPv${span.family} address`);
  const o = p.value - span.network;
  if (o < 0n || o >= 1n << BigInt(bits(span.family) - span.prefixLength)) throw invalid(span.name, `${ip} is outside ${span.range}`);
  return o.toString(10);
}

/** Address at a decimal offset (bigint or whereabouts key string) from the network address. */
export function ipFromOffset(span: PoolSpan, offset: bigint | string): string {
  const o = typeof offset === 'bigint' ? offset : BigInt(offset);
  return formatIp(span.network + o, span.family);
}

/** Addresses that may ever be handed out: [first, last] minus exclusions. */
export function usableCount(span: PoolSpan): bigint {
  let n = span.last - span.first + 1n;
  for (const [a, b] of span.excluded) n -= b - a + 1n;
  return n;
}

/**
 * Disjoint, merged, ascending integer intervals in two parallel arrays. Lookups are a binary
 * search; inserting a point merges with neighbours, so a run of taken addresses is one interval.
 */
export class IntervalSet {
  private lo: bigint[] = [];
  private hi: bigint[] = [];

  get intervals(): number { return this.lo.length; }

  /** Index of the last interval starting at or before x, or -1. */
  private find(x: bigint): number {
    let l = 0, r = this.lo.length - 1, ans = -1;
    while (l <= r) {
      const m = (l + r) >> 1;
      if (this.lo[m]! <= x) { ans = m; l = m + 1; } else r = m - 1;
    }
    return ans;
  }

  has(x: bigint): boolean {
    const i = this.find(x);
    return i >= 0 && this.hi[i]! >= x;
  }

  /** Add [a, b] (bulk build; merges everything it touches). */
  addRange(a: bigint, b: bigint): void {
    let i = this.find(a);
    if (i >= 0 && this.hi[i]! + 1n >= a) { a = this.lo[i]!; } else i += 1;
    let j = i;
    while (j < this.lo.length && this.lo[j]! <= b + 1n) { if (this.hi[j]! > b) b = this.hi[j]!; j++; }
    this.lo.splice(i, j - i, a);
    this.hi.splice(i, j - i, b);
  }

  /** Add one point; false if it was already present. */
  add(x: bigint): boolean {
    const i = this.find(x);
    if (i >= 0 && this.hi[i]! >= x) return false;
    const joinLeft = i >= 0 && this.hi[i]! + 1n === x;
    const joinRight = i + 1 < this.lo.length && this.lo[i + 1]! === x + 1n;
    if (joinLeft && joinRight) { this.hi[i] = this.hi[i + 1]!; this.lo.splice(i + 1, 1); this.hi.splice(i + 1, 1); }
    else if (joinLeft) this.hi[i] = x;
    else if (joinRight) this.lo[i + 1] = x;
    else { this.lo.splice(i + 1, 0, x); this.hi.splice(i + 1, 0, x); }
    return true;
  }

  /** Remove one point; false if it was absent. */
  delete(x: bigint): boolean {
    const i = this.find(x);
    if (i < 0 || this.hi[i]! < x) return false;
    const a = this.lo[i]!, b = this.hi[i]!;
    if (a === b) { this.lo.splice(i, 1); this.hi.splice(i, 1); }
    else if (x === a) this.lo[i] = a + 1n;
    else if (x === b) this.hi[i] = b - 1n;
    else { this.hi[i] = x - 1n; this.lo.splice(i + 1, 0, x + 1n); this.hi.splice(i + 1, 0, b); }
    return true;
  }

  /** Lowest value ≥ x not in the set. Intervals are merged, so one jump suffices. */
  nextAbsent(x: bigint): bigint {
    const i = this.find(x);
    return i >= 0 && this.hi[i]! >= x ? this.hi[i]! + 1n : x;
  }
}

/**
 * One pool's occupancy. Blocked = exclusions ∪ taken offsets, kept merged; the lowest free offset
 * is one binary search away. Taken offsets outside [first, last] or inside an exclusion (possible
 * for foreign whereabouts entries) are remembered but never block anything else.
 */
export class AddressPool {
  readonly span: PoolSpan;
  private blocked = new IntervalSet();
  /**
   * Taken offsets outside the usable span or inside an exclusion (foreign whereabouts entries).
   * Usable taken offsets live only in `blocked`: a large JS Set under add/delete churn rehashes
   * all its entries every few operations when its size sits near a power of two.
   */
  private takenElsewhere = new Set<string>();
  private usable: bigint;
  private takenUsable = 0;

  constructor(span: PoolSpan) {
    this.span = span;
    for (const [a, b] of span.excluded) this.blocked.addRange(a, b);
    this.usable = usableCount(span);
  }

  static fromConfig(cfg: PoolConfig): AddressPool { return new AddressPool(compilePool(cfg)); }

  private inSpan(o: bigint): boolean { return o >= this.span.first && o <= this.span.last; }
  private usableOffset(o: bigint): boolean { return this.inSpan(o) && !this.isExcluded(o); }

  /** Is this offset free to hand out? */
  isFree(offset: bigint): boolean { return this.inSpan(offset) && !this.blocked.has(offset); }

  isTaken(offset: bigint): boolean {
    return this.usableOffset(offset) ? this.blocked.has(offset) : this.takenElsewhere.has(offset.toString());
  }

  /** Mark an offset taken (by us or by someone else); false if it already was. */
  take(offset: bigint): boolean {
    if (!this.usableOffset(offset)) {
      const key = offset.toString();
      if (this.takenElsewhere.has(key)) return false;
      this.takenElsewhere.add(key);
      return true;
    }
    if (!this.blocked.add(offset)) return false;
    this.takenUsable++;
    return true;
  }

  /** Free an offset taken before; false if it was not taken. */
  free(offset: bigint): boolean {
    if (!this.usableOffset(offset)) return this.takenElsewhere.delete(offset.toString());
    if (!this.blocked.delete(offset)) return false;
    this.takenUsable--;
    return true;
  }

  private isExcluded(o: bigint): boolean {
    const ex = this.span.excluded;
    let l = 0, r = ex.length - 1;
    while (l <= r) {
      const m = (l + r) >> 1;
      if (ex[m]![1] < o) l = m + 1; else if (ex[m]![0] > o) r = m - 1; else return true;
    }
    return false;
  }

  /** The lowest free offset (whereabouts' order), or undefined when the pool is full. */
  lowestFree(): bigint | undefined {
    const o = this.blocked.nextAbsent(this.span.first);
    return o <= this.span.last ? o : undefined;
  }

  /** Addresses taken inside the usable span. */
  get inUse(): number { return this.takenUsable; }
  /** Addresses still available. */
  get freeCount(): bigint { return this.usable - BigInt(this.takenUsable); }
  get usableCount(): bigint { return this.usable; }
}
