import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AddressPool, IntervalSet, canonicalRange, compilePool, formatIp, ipFromOffset, offsetKey, parseIp, usableCount, MAX_WHEREABOUTS_OFFSET, type PoolConfig } from './pools.js';
import { isCoded } from '../errors.js';

/** Allocate n addresses in a fresh pool, lowest first, as whereabouts' IterateForAssignment would. */
function firstN(cfg: Omit<PoolConfig, 'name'>, n: number): string[] {
  const p = AddressPool.fromConfig({ name: 'p', ...cfg });
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const o = p.lowestFree();
    if (o === undefined) break;
    p.take(o);
    out.push(ipFromOffset(p.span, o));
  }
  return out;
}

// Fixtures: whereabouts' documented behaviour (README, allocate_test.go, iphelpers GetIPRange).
const fixtures: Array<{ what: string; cfg: Omit<PoolConfig, 'name'>; n: number; want: string[] }> = [
  { what: 'network address never handed out; lowest first', cfg: { cidr: '192.168.1.0/24' }, n: 3, want: ['192.168.1.1', '192.168.1.2', '192.168.1.3'] },
  { what: 'broadcast never handed out (/30: two usable)', cfg: { cidr: '10.0.0.0/30' }, n: 5, want: ['10.0.0.1', '10.0.0.2'] },
  { what: 'host bits in the CIDR are dropped', cfg: { cidr: '192.168.2.225/28' }, n: 1, want: ['192.168.2.225'] },
  { what: 'excluded subnet skipped whole', cfg: { cidr: '192.168.0.0/29', exclude: ['192.168.0.0/30'] }, n: 5, want: ['192.168.0.4', '192.168.0.5', '192.168.0.6'] },
  { what: 'exclude entry with host bits covers its whole subnet', cfg: { cidr: '192.168.0.0/24', exclude: ['192.168.0.2/31'] }, n: 3, want: ['192.168.0.1', '192.168.0.4', '192.168.0.5'] },
  { what: 'a bare address excludes just itself (/32)', cfg: { cidr: '10.1.0.0/24', exclude: ['10.1.0.1', '10.1.0.3'] }, n: 3, want: ['10.1.0.2', '10.1.0.4', '10.1.0.5'] },
  { what: 'exclusion outside the pool has no effect', cfg: { cidr: '10.1.0.0/24', exclude: ['10.9.0.0/16'] }, n: 1, want: ['10.1.0.1'] },
  { what: 'range_start inside the span is honoured', cfg: { cidr: '192.168.1.0/24', rangeStart: '192.168.1.200' }, n: 2, want: ['192.168.1.200', '192.168.1.201'] },
  { what: 'range_start = network address is outside the usable span: ignored', cfg: { cidr: '192.168.1.0/24', rangeStart: '192.168.1.0' }, n: 1, want: ['192.168.1.1'] },
  { what: 'range_start in another subnet: ignored', cfg: { cidr: '192.168.1.0/24', rangeStart: '192.168.9.5' }, n: 1, want: ['192.168.1.1'] },
  { what: 'range_end bounds the span', cfg: { cidr: '192.168.1.0/24', rangeStart: '192.168.1.10', rangeEnd: '192.168.1.12' }, n: 9, want: ['192.168.1.10', '192.168.1.11', '192.168.1.12'] },
  { what: 'range_end = broadcast is outside the span: ignored', cfg: { cidr: '10.0.0.0/29', rangeEnd: '10.0.0.7' }, n: 9, want: ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6'] },
  { what: 'range_end below range_start: ignored', cfg: { cidr: '10.0.0.0/29', rangeStart: '10.0.0.5', rangeEnd: '10.0.0.3' }, n: 9, want: ['10.0.0.5', '10.0.0.6'] },
  { what: 'range plus excludes', cfg: { cidr: '10.0.0.0/24', rangeStart: '10.0.0.8', rangeEnd: '10.0.0.15', exclude: ['10.0.0.8/30', '10.0.0.13'] }, n: 9, want: ['10.0.0.12', '10.0.0.14', '10.0.0.15'] },
  { what: 'IPv6, lowest first', cfg: { cidr: '2001:db8::/116' }, n: 2, want: ['2001:db8::1', '2001:db8::2'] },
  { what: 'IPv6 exclusion of a /120 jumps past it', cfg: { cidr: '2001:db8::/116', exclude: ['2001:db8::/120'] }, n: 2, want: ['2001:db8::100', '2001:db8::101'] },
  { what: 'IPv6 range_start', cfg: { cidr: 'fd00:10::/64', rangeStart: 'fd00:10::a:0' }, n: 1, want: ['fd00:10::a:0'] },
  { what: 'IPv6 /126: two usable', cfg: { cidr: 'fd00::/126' }, n: 5, want: ['fd00::1', 'fd00::2'] },
];

for (const f of fixtures) {
  test(`pools (whereabouts): ${f.what}`, () => {
    assert.deepEqual(firstN(f.cfg, f.n), f.want);
  });
}

test('pools: /31, /32, /127, /128 have no usable address, as whereabouts says', () => {
  for (const cidr of ['10.0.0.0/31', '10.0.0.1/32', 'fd00::/127', 'fd00::1/128']) {
    assert.throws(() => compilePool({ name: 'tiny', cidr }), (e) => isCoded(e, 'ALLOC_POOL_INVALID') && /no usable address/.test(e.message) && /tiny/.test(e.message), cidr);
  }
});

test('pools: bad settings are coded errors naming the pool and field', () => {
  const bad: Array<[Partial<PoolConfig>, RegExp]> = [
    [{ cidr: 'nonsense' }, /cidr/],
    [{ cidr: '10.0.0.0/33' }, /cidr/],
    [{ cidr: '10.0.0.0/24', rangeStart: 'x' }, /range_start/],
    [{ cidr: '10.0.0.0/24', rangeEnd: 'fd00::1' }, /range_end .*IPv6/],
    [{ cidr: '10.0.0.0/24', exclude: ['10.0.0.0/40'] }, /exclude/],
    [{ cidr: '10.0.0.0/24', exclude: ['fd00::/64'] }, /exclude.*IPv6/],
    [{ cidr: '10.0.0.0/24', gateway: 'gw' }, /gateway/],
  ];
  for (const [cfg, re] of bad) {
    assert.throws(() => compilePool({ name: 'media', cidr: '', ...cfg } as PoolConfig), (e) => isCoded(e, 'ALLOC_POOL_INVALID') && re.test(e.message) && /media/.test(e.message), JSON.stringify(cfg));
  }
});

test('pools: whereabouts silently ignores out-of-span range_start/end; we note it', () => {
  const s = compilePool({ name: 'p', cidr: '10.0.0.0/24', rangeStart: '10.0.1.1', rangeEnd: '10.0.0.255' });
  assert.equal(s.first, 1n);
  assert.equal(s.last, 254n);
  assert.equal(s.notes.length, 2);
});

test('pools: canonical range and the offset key are whereabouts\' IPPool range and allocation key', () => {
  assert.equal(canonicalRange('192.168.2.225/28'), '192.168.2.224/28');
  assert.equal(canonicalRange('fd00:10:0:0::5/64'), 'fd00:10::/64');
  const s = compilePool({ name: 'p', cidr: '10.20.0.0/24' });
  assert.equal(offsetKey(s, '10.20.0.42'), '42');
  assert.equal(ipFromOffset(s, '42'), '10.20.0.42');
  const s6 = compilePool({ name: 'p6', cidr: 'fd00:10::/64' });
  assert.equal(offsetKey(s6, 'fd00:10::1:0'), '65536');
  assert.equal(ipFromOffset(s6, 65536n), 'fd00:10::1:0');
  assert.throws(() => offsetKey(s, '10.21.0.1'), (e) => isCoded(e, 'ALLOC_POOL_INVALID'));
});

test('pools: IPv6 /64 and wider keep to the first /65 (whereabouts stores uint64 offsets)', () => {
  const s = compilePool({ name: 'p', cidr: 'fd00::/48' });
  assert.equal(s.last, MAX_WHEREABOUTS_OFFSET);
  assert.ok(s.notes.some((n) => /\/65/.test(n)));
  const s64 = compilePool({ name: 'p', cidr: 'fd00::/65' });
  assert.equal(s64.last, (1n << 63n) - 2n);
  assert.equal(s64.notes.length, 0);
});

test('pools: address text round-trips in canonical form (RFC 5952 for IPv6)', () => {
  const cases: Array<[string, string]> = [
    ['10.0.0.1', '10.0.0.1'], ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], ['2001:db8::', '2001:db8::'],
    ['::1', '::1'], ['::', '::'], ['fe80:0:0:1::', 'fe80:0:0:1::'], ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
  ];
  for (const [inp, out] of cases) {
    const p = parseIp(inp)!;
    assert.equal(formatIp(p.value, p.family), out, inp);
  }
});

test('pools: freed addresses come back lowest first; full pool → undefined; counts add up', () => {
  const p = AddressPool.fromConfig({ name: 'p', cidr: '10.0.0.0/29', exclude: ['10.0.0.3'] });
  assert.equal(usableCount(p.span), 5n);
  const got: bigint[] = [];
  for (let o = p.lowestFree(); o !== undefined; o = p.lowestFree()) { p.take(o); got.push(o); }
  assert.deepEqual(got, [1n, 2n, 4n, 5n, 6n]);
  assert.equal(p.inUse, 5);
  assert.equal(p.freeCount, 0n);
  p.free(5n); p.free(2n);
  assert.equal(p.lowestFree(), 2n);
  assert.equal(p.freeCount, 2n);
  // A foreign entry inside an exclusion or outside the span blocks nothing else and is not counted.
  assert.equal(p.take(3n), true);
  assert.equal(p.take(200n), true);
  assert.equal(p.inUse, 3);
  assert.equal(p.free(3n), true);
  assert.equal(p.lowestFree(), 2n);
});

/** whereabouts' algorithm, literally: walk up from first, skip taken, jump over excluded subnets. */
function linearModel(first: number, last: number, excl: Array<[number, number]>, taken: Set<number>): number | undefined {
  for (let ip = first; ip <= last; ip++) {
    if (taken.has(ip)) continue;
    const ex = excl.find(([a, b]) => ip >= a && ip <= b);
    if (ex) { ip = ex[1]; continue; }
    return ip;
  }
  return undefined;
}

test('pools: the interval finder agrees with whereabouts\' linear scan (property)', () => {
  fc.assert(fc.property(
    fc.integer({ min: 26, max: 30 }),
    fc.array(fc.tuple(fc.integer({ min: 0, max: 63 }), fc.integer({ min: 30, max: 32 })), { maxLength: 4 }),
    fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 63 })), { maxLength: 80 }),
    (prefix, excludes, ops) => {
      const size = 1 << (32 - prefix);
      const exclude = excludes.map(([o, len]) => `10.0.0.${o % size}/${len}`);
      const pool = AddressPool.fromConfig({ name: 'p', cidr: `10.0.0.0/${prefix}`, exclude });
      const excl: Array<[number, number]> = excludes.map(([o, len]) => { const bs = 1 << (32 - len); const a = Math.floor((o % size) / bs) * bs; return [a, a + bs - 1]; });
      const taken = new Set<number>();
      for (const [alloc, x] of ops) {
        if (alloc) {
          const want = linearModel(1, size - 2, excl, taken);
          const got = pool.lowestFree();
          assert.equal(got === undefined ? undefined : Number(got), want);
          if (want !== undefined) { pool.take(BigInt(want)); taken.add(want); }
        } else {
          const o = x % size;
          assert.equal(pool.free(BigInt(o)), taken.delete(o));
        }
      }
    },
  ), { numRuns: 300 });
});

test('IntervalSet: add/delete keep intervals merged', () => {
  const s = new IntervalSet();
  for (const x of [5n, 7n, 6n, 1n, 2n]) s.add(x);
  assert.equal(s.intervals, 2);
  assert.equal(s.nextAbsent(5n), 8n);
  assert.equal(s.nextAbsent(3n), 3n);
  s.delete(6n);
  assert.equal(s.intervals, 3);
  assert.equal(s.nextAbsent(5n), 6n);
  s.addRange(0n, 10n);
  assert.equal(s.intervals, 1);
  assert.equal(s.nextAbsent(0n), 11n);
});
