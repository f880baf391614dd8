// Property tests for everything that reads untrusted ng bytes (split, decode, scan): >100,000
// random and mutated datagrams, zero uncoded exceptions, and scan/decode agreement.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isCoded } from '../errors.js';
import { MAX_DICT_BYTES } from './bencode.js';
import { decodeDict, encodeDict, plain, str } from './codec.js';
import { splitMessage, MAX_COOKIE } from './framing.js';
import { UNREADABLE, replyResult, replyScratch, routingOf, scanReplyResult, scanRouting } from './scan.js';
import { sampleOffer } from '../../test/support/ng-sample.js';

// --- a model of bencode values that keeps dictionary key order (rtpengine does not sort) ---
type V = Uint8Array | number | V[] | Map<string, V>;

function enc(v: V): Buffer {
  if (v instanceof Uint8Array) return Buffer.concat([Buffer.from(`${v.length}:`), v]);
  if (typeof v === 'number') return Buffer.from(`i${v}e`);
  if (Array.isArray(v)) return Buffer.concat([Buffer.from('l'), ...v.map(enc), Buffer.from('e')]);
  const parts: Buffer[] = [Buffer.from('d')];
  for (const [k, x] of v) parts.push(enc(Buffer.from(k, 'utf8')), enc(x));
  parts.push(Buffer.from('e'));
  return Buffer.concat(parts);
}
function toPlain(v: V): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  if (typeof v === 'number' || Array.isArray(v)) return Array.isArray(v) ? v.map(toPlain) : v;
  return Object.fromEntries([...v].map(([k, x]) => [k, toPlain(x)]));
}

const ROUTING_KEYS = ['command', 'call-id', 'call-ID', 'call id', 'call ID', 'from-tag', 'from tag', 'to-tag', 'to_tag', 'to tag', 'via-branch', 'supports', 'sdp', 'flags', 'result'];
const key = fc.oneof(fc.constantFrom(...ROUTING_KEYS), fc.string({ maxLength: 12 })).filter((k) => k !== '__proto__');
const bytes = fc.oneof(
  fc.constantFrom('offer', 'answer', 'delete', 'ping', 'load limit', 'ok', 'pong', 'c7f2@pbx', 'ünï').map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 40 }),
);
const { value } = fc.letrec<{ value: V; dict: Map<string, V> }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true },
    bytes, fc.integer({ min: -1e12, max: 1e12 }),
    fc.array(tie('value'), { maxLength: 4 }), tie('dict')),
  dict: fc.uniqueArray(fc.tuple(key, tie('value')), { maxLength: 6, selector: (t) => t[0] }).map((es) => new Map(es)),
}));
const topDict = fc.uniqueArray(fc.tuple(key, value), { maxLength: 10, selector: (t) => t[0] }).map((es) => new Map<string, V>(es));
const cookie = fc.oneof(fc.constantFrom('1_11617_0', '5c3e2f9a-4b1d-4c5e-9f0a-1b2c3d4e5f60'), fc.stringMatching(/^[!-~]{1,20}$/));

const show = (b: Buffer) => JSON.stringify(b.toString('latin1').slice(0, 120));

/** Runs every decoder on `msg`; each must return or throw a coded error. Returns what succeeded. */
function exercise(msg: Buffer): { decoded?: unknown; scanned?: unknown; protoKey: boolean } {
  const out: { decoded?: unknown; scanned?: unknown; protoKey: boolean } = { protoKey: msg.includes('9:__proto__') };
  let dict: Buffer;
  try {
    dict = splitMessage(msg).dict;
  } catch (e) {
    if (!isCoded(e)) assert.fail(`split threw uncoded: ${String(e)}`);
    dict = msg; // still feed the raw bytes to the dictionary readers
  }
  for (const [name, fn] of [['decode', decodeDict], ['scan', scanRouting], ['reply', scanReplyResult]] as const) {
    try {
      const r = fn(dict);
      if (name === 'decode') out.decoded = r;
      if (name === 'scan') out.scanned = r;
    } catch (e) {
      if (!isCoded(e) || !e.code.startsWith('NG_')) assert.fail(`${name} threw uncoded on ${show(dict)}: ${String(e)}`);
    }
  }
  // The trusted-reply reader never throws, whatever the bytes; on a valid dictionary it agrees.
  let quick: string | undefined | null = UNREADABLE;
  try { quick = replyResult(dict, true); } catch (e) { assert.fail(`replyResult threw on ${show(dict)}: ${String(e)}`); }
  assert.ok(quick === UNREADABLE || quick === undefined || typeof quick === 'string');
  // Scan and decode validate the same grammar (decode additionally refuses `__proto__` keys).
  if (!out.protoKey && (out.decoded !== undefined) !== (out.scanned !== undefined)) assert.fail(`scan/decode disagree on ${show(dict)}`);
  return out;
}

let total = 0;

test('valid dictionaries: decode matches the model; scanRouting and scanReplyResult agree with decode', () => {
  fc.assert(fc.property(topDict, (m) => {
    total++;
    const wire = enc(m);
    const d = decodeDict(wire);
    assert.deepEqual(plain(d), toPlain(m));
    assert.deepEqual(scanRouting(wire), routingOf(d, 'bencode'));
    const r = scanReplyResult(wire);
    assert.equal(r.result, str(d.result));
    assert.equal(r.callId, str(d['call-id']));
    assert.equal(replyResult(wire, true), str(d.result));
    assert.equal(replyScratch.callId, str(d['call-id']));
    assert.equal(replyResult(wire, false), str(d.result));
  }), { numRuns: 10_000 });
});

type Mutation = { kind: string; at: number; n: number; junk: Uint8Array };
const mutation = fc.record({
  kind: fc.constantFrom('truncate', 'flip', 'insert', 'delete', 'huge-length', 'dup', 'swap-root', 'drop-space', 'empty-cookie', 'depth-bomb', 'trail'),
  at: fc.nat(), n: fc.integer({ min: 1, max: 64 }), junk: fc.uint8Array({ minLength: 1, maxLength: 12 }),
});
function mutate(msg: Buffer, mu: Mutation): Buffer {
  const at = mu.at % (msg.length + 1);
  const sp = msg.indexOf(0x20);
  switch (mu.kind) {
    case 'truncate': return msg.subarray(0, at);
    case 'flip': { const c = Buffer.from(msg); if (at < c.length) c[at] = mu.junk[0]!; return c; }
    case 'insert': return Buffer.concat([msg.subarray(0, at), mu.junk, msg.subarray(at)]);
    case 'delete': return Buffer.concat([msg.subarray(0, at), msg.subarray(at + mu.n)]);
    case 'huge-length': {
      // Replace the first length prefix after `at` with an enormous one.
      const s = msg.toString('latin1');
      const m = /\d+:/.exec(s.slice(at));
      return m ? Buffer.from(s.slice(0, at + m.index) + ['99999999999:', '4294967296:', '65536:', '999999999:'][mu.n % 4] + s.slice(at + m.index + m[0].length), 'latin1') : msg;
    }
    case 'dup': return Buffer.concat([msg, msg.subarray(at, at + mu.n)]);
    case 'swap-root': return Buffer.concat([msg.subarray(0, sp + 1), Buffer.from(['l', 'i', '4', '[', 'x', ' '][mu.n % 6]!), msg.subarray(sp + 2)]);
    case 'drop-space': return sp >= 0 ? Buffer.concat([msg.subarray(0, sp), msg.subarray(sp + 1)]) : msg;
    case 'empty-cookie': return sp >= 0 ? msg.subarray(sp) : msg;
    case 'depth-bomb': {
      const depth = 25 + mu.n; // straddles the limit of 32
      const open = Array.from({ length: depth }, (_, i) => ((i + mu.at) % 2 ? 'l' : 'd1:k')).join('');
      const close = 'e'.repeat(depth);
      return Buffer.concat([msg.subarray(0, sp + 1), Buffer.from(`d1:a${open}i1e${close}e`)]);
    }
    default: return Buffer.concat([msg, mu.junk]);
  }
}

test('mutated datagrams (truncated, flipped, huge lengths, depth bombs, bad roots, no space, empty cookie): only coded errors', () => {
  const offer = encodeDict(sampleOffer(1200));
  const seeds = fc.oneof(
    fc.tuple(cookie, topDict).map(([c, m]) => Buffer.concat([Buffer.from(`${c} `), enc(m)])),
    cookie.map((c) => Buffer.concat([Buffer.from(`${c} `), offer])),
    fc.tuple(cookie, topDict).map(([c, m]) => Buffer.from(`${c} ${JSON.stringify(toPlain(m))}`)),
  );
  // Ten mutants per generated seed: generation, not decoding, is the expensive part here.
  const plans = fc.array(fc.array(mutation, { minLength: 1, maxLength: 3 }), { minLength: 10, maxLength: 10 });
  fc.assert(fc.property(seeds, plans, (seed, plan) => {
    for (const mus of plan) {
      total++;
      let msg: Buffer = seed;
      for (const mu of mus) msg = mutate(msg, mu);
      if (msg.length > MAX_DICT_BYTES + MAX_COOKIE + 1 + 200) assert.fail('inputs stay within the size bound');
      exercise(msg);
    }
  }), { numRuns: 7_000 });
});

test('random bytes: only coded errors', () => {
  const raw = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.concat([Buffer.from('c d'), u])),
    fc.array(fc.constantFrom('d', 'l', 'e', 'i', '1', '0', ':', '-', ' ', 'x', '9', '{', '}', '"'), { maxLength: 80 }).map((a) => Buffer.from(`k ${a.join('')}`)),
  );
  fc.assert(fc.property(raw, (u) => {
    total++;
    exercise(Buffer.from(u));
  }), { numRuns: 20_000 });
});

test('size bound by construction: oversized input is refused before any parsing', () => {
  const big = Buffer.alloc(1024 * 1024, 0x6c); // 1 MiB of 'l': a depth bomb if it were parsed
  big[0] = 0x64;
  for (const fn of [decodeDict, scanRouting, scanReplyResult]) assert.throws(() => fn(big), (e) => isCoded(e, 'NG_TOO_LARGE'));
  total += 3;
});

test('at least 100,000 datagrams were exercised', () => {
  assert.ok(total >= 100_000, `only ${total}`);
});
