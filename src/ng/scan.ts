// The proxy's hot path: one pass over the top-level bencode dictionary that reads only the routing
// keys (command, call-id, tags, via-branch, supports) and skips every other value without building
// objects, while still validating the whole dictionary. JSON payloads (rare) go through JSON.parse.
import { NgError } from '../errors.js';
import { INVALID, TRUNCATED, skipString, skipValue, stringStart, walkError } from './bencode.js';
import { decodeDict, dictFormat, str, walkFailure } from './codec.js';
import { NG_COMMANDS, NG_RESULTS, type NgDict, type Routing } from './types.js';

export type { Routing } from './types.js';

const E = 0x65;
const L = 0x6c;

const F_NONE = 0, F_COMMAND = 1, F_CALL_ID = 2, F_FROM_TAG = 3, F_TO_TAG = 4, F_VIA_BRANCH = 5, F_SUPPORTS = 6, F_RESULT = 7;

const lit = (s: string) => Buffer.from(s, 'latin1');
const K_COMMAND = lit('command');
const K_CALL_ID = [lit('call-id'), lit('call-ID'), lit('call id'), lit('call ID')];
const K_FROM_TAG = [lit('from-tag'), lit('from tag')];
const K_SUPPORTS = lit('supports');
const K_TO_TAG = [lit('to-tag'), lit('to_tag'), lit('to tag')];
const K_VIA_BRANCH = lit('via-branch');
const K_RESULT = lit('result');
const V_LOAD_LIMIT = lit('load limit');

function eq(b: Uint8Array, at: number, k: Uint8Array): boolean {
  for (let i = 0; i < k.length; i++) if (b[at + i] !== k[i]) return false;
  return true;
}
function eqAny(b: Uint8Array, at: number, ks: Uint8Array[]): boolean {
  for (const k of ks) if (eq(b, at, k)) return true;
  return false;
}

/** Which routing field a key names, by length first so most keys cost one comparison. */
function requestField(b: Uint8Array, at: number, len: number): number {
  switch (len) {
    case 7: return b[at + 1] === 0x6f ? (eq(b, at, K_COMMAND) ? F_COMMAND : F_NONE) : eqAny(b, at, K_CALL_ID) ? F_CALL_ID : F_NONE;
    case 8: return b[at] === 0x66 ? (eqAny(b, at, K_FROM_TAG) ? F_FROM_TAG : F_NONE) : eq(b, at, K_SUPPORTS) ? F_SUPPORTS : F_NONE;
    case 6: return eqAny(b, at, K_TO_TAG) ? F_TO_TAG : F_NONE;
    case 10: return eq(b, at, K_VIA_BRANCH) ? F_VIA_BRANCH : F_NONE;
    default: return F_NONE;
  }
}
function replyField(b: Uint8Array, at: number, len: number): number {
  if (len === 6) return eq(b, at, K_RESULT) ? F_RESULT : F_NONE;
  if (len === 7) return eq(b, at, K_CALL_ID[0]!) ? F_CALL_ID : F_NONE; // replies spell it one way
  return F_NONE;
}

// Buffer#latin1Slice/utf8Slice skip toString()'s encoding dispatch (a third of the scan's time);
// they are undocumented, so fall back to toString() if a Node version lacks them.
type Slice = (this: Buffer, s: number, e: number) => string;
const proto = Buffer.prototype as unknown as { latin1Slice?: Slice; utf8Slice?: Slice };
const latin1Slice: Slice = typeof proto.latin1Slice === 'function' ? proto.latin1Slice : function (this: Buffer, s, e) { return this.toString('latin1', s, e); };
const utf8Slice: Slice = typeof proto.utf8Slice === 'function' ? proto.utf8Slice : function (this: Buffer, s, e) { return this.toString('utf8', s, e); };

/** Bytes [s, e) as latin1 text (one char per byte), without toString()'s encoding dispatch. */
export function latin1(b: Buffer, s: number, e: number): string {
  return latin1Slice.call(b, s, e);
}

/** Text of bytes [s, e): latin1 fast path when ASCII (identical result), UTF-8 otherwise. */
function text(b: Buffer, s: number, e: number): string {
  for (let i = s; i < e; i++) if (b[i]! >= 0x80) return utf8Slice.call(b, s, e);
  return latin1Slice.call(b, s, e);
}

/** Known values by byte length, for `interned()`. */
type Interned = Array<Array<{ bytes: Buffer; name: string }>>;
function internTable(names: readonly string[]): Interned {
  const t: Interned = [];
  for (const name of names) (t[name.length] ??= []).push({ bytes: lit(name), name });
  return t;
}
const COMMANDS = internTable(NG_COMMANDS);
const RESULTS = internTable(NG_RESULTS);

/** Bytes [s, e) as the one shared string when `table` knows them (no string per message, its hash cached), else decoded. */
function interned(table: Interned, b: Buffer, s: number, e: number): string {
  const known = table[e - s];
  if (known) for (const k of known) if (eq(b, s, k.bytes)) return k.name;
  return text(b, s, e);
}

function fail(code: number, size: number): never {
  throw walkFailure(code, size);
}

/**
 * Walks the top-level dictionary, calling `onField(field, start, end)` for each key `classify`
 * recognises (start -1: the value is not a byte string) and `onLoadLimit` for a `load limit`
 * item in a `supports` list; validates everything else.
 */
function walkTop(b: Buffer, classify: (b: Uint8Array, at: number, len: number) => number, onField: (f: number, s: number, e: number) => void, onLoadLimit: () => void): void {
  const end = b.length;
  let p = 1;
  for (;;) {
    if (p >= end) { walkError.offset = p; walkError.reason = 'input ends inside the dictionary'; fail(TRUNCATED, end); }
    const c = b[p]!;
    if (c === E) { p++; break; }
    if (c < 0x30 || c > 0x39) { walkError.offset = p; walkError.reason = `dictionary key must be a byte string, got byte ${c}`; fail(INVALID, end); }
    const kEnd = skipString(b, p, end);
    if (kEnd < 0) fail(kEnd, end);
    const field = classify(b, stringStart.at, kEnd - stringStart.at);
    p = kEnd;
    if (p >= end) { walkError.offset = p; walkError.reason = 'dictionary key without a value'; fail(TRUNCATED, end); }
    const v = b[p]!;
    if (field === F_NONE) {
      const q = skipValue(b, p, end, 1);
      if (q < 0) fail(q, end);
      p = q;
    } else if (v >= 0x30 && v <= 0x39) {
      const q = skipString(b, p, end);
      if (q < 0) fail(q, end);
      onField(field, stringStart.at, q);
      p = q;
    } else {
      // A routing key with a non-string value clears the field: the last occurrence decides,
      // exactly as in the decoded object.
      onField(field, -1, -1);
      if (field === F_SUPPORTS && v === L) {
        p++;
        for (;;) {
          if (p >= end) { walkError.offset = p; walkError.reason = 'input ends inside a list'; fail(TRUNCATED, end); }
          const c2 = b[p]!;
          if (c2 === E) { p++; break; }
          const q = skipValue(b, p, end, 2);
          if (q < 0) fail(q, end);
          if (c2 >= 0x30 && c2 <= 0x39 && q - stringStart.at === V_LOAD_LIMIT.length && eq(b, stringStart.at, V_LOAD_LIMIT)) onLoadLimit();
          p = q;
        }
      } else {
        const q = skipValue(b, p, end, 1);
        if (q < 0) fail(q, end);
        p = q;
      }
    }
  }
  if (p !== end) throw new NgError('NG_BENCODE_INVALID', { offset: p, reason: `${end - p} trailing byte(s) after the dictionary`, size: end });
}

// Module-level targets and callbacks: no closure is allocated per scan (this runs per datagram).
let route: Routing;
let routeBuf: Buffer;
function onRouteField(f: number, s: number, e: number): void {
  if (f === F_SUPPORTS) { route.supportsLoadLimit = false; return; }
  if (f === F_COMMAND) { route.command = s < 0 ? undefined : interned(COMMANDS, routeBuf, s, e); return; }
  const t = s < 0 ? undefined : text(routeBuf, s, e);
  if (f === F_CALL_ID) route.callId = t;
  else if (f === F_FROM_TAG) route.fromTag = t;
  else if (f === F_TO_TAG) route.toTag = t;
  else if (f === F_VIA_BRANCH) route.viaBranch = t;
}
function onRouteLoadLimit(): void {
  route.supportsLoadLimit = true;
}

/** Routing view of a request dictionary (bencode or JSON). Throws coded NgErrors only. */
export function scanRouting(dict: Buffer): Routing {
  if (dictFormat(dict) === 'json') return routingOf(decodeDict(dict), 'json');
  const r: Routing = { format: 'bencode', command: undefined, callId: undefined, fromTag: undefined, toTag: undefined, viaBranch: undefined, supportsLoadLimit: false };
  route = r;
  routeBuf = dict;
  walkTop(dict, requestField, onRouteField, onRouteLoadLimit);
  return r;
}

const CALL_ID_KEYS = ['call-id', 'call-ID', 'call id', 'call ID'];
const FROM_TAG_KEYS = ['from-tag', 'from tag'];
const TO_TAG_KEYS = ['to-tag', 'to_tag', 'to tag'];

/** Routing view of an already decoded dictionary (JSON path, and the reference for tests). */
export function routingOf(d: NgDict, format: 'bencode' | 'json'): Routing {
  // Later keys win, as in a bencode walk: JSON objects keep insertion order.
  const last = (keys: string[]): string | undefined => {
    let v: string | undefined;
    for (const k of Object.keys(d)) if (keys.includes(k)) v = str(d[k]);
    return v;
  };
  const sup = d.supports;
  return {
    format,
    command: str(d.command),
    callId: last(CALL_ID_KEYS),
    fromTag: last(FROM_TAG_KEYS),
    toTag: last(TO_TAG_KEYS),
    viaBranch: str(d['via-branch']),
    supportsLoadLimit: Array.isArray(sup) && sup.some((x) => str(x) === 'load limit'),
  };
}

/** A reply's `result` (and `call-id`, which publish/create replies carry), validating the dictionary. */
export function scanReplyResult(dict: Buffer): { result?: string; callId?: string } {
  if (dictFormat(dict) === 'json') {
    const d = decodeDict(dict);
    return { result: str(d.result), callId: str(d['call-id']) };
  }
  const r: { result?: string; callId?: string } = {};
  walkTop(dict, replyField, (f, s, e) => {
    const t = s < 0 ? undefined : text(dict, s, e);
    if (f === F_RESULT) r.result = t;
    else r.callId = t;
  }, () => {});
  return r;
}

const COLON = 0x3a;
/** The call-id found by the last replyResult() call (module scratch: no result object per reply). */
export const replyScratch: { callId: string | undefined } = { callId: undefined };
/** replyResult()'s answer for a reply it cannot read (the proxy counts it as `invalid`). */
export const UNREADABLE = null;

/**
 * The proxy's hot path for rtpengine's replies, which are trusted (forwarded byte for byte
 * anyway): `result` and, when `wantCallId`, `call-id` (into replyScratch), stopping as soon as
 * both are found. String values are skipped by their length prefix, other values by the walker;
 * the rest of the dictionary is not validated (scanReplyResult does that). Returns the result,
 * undefined without one, UNREADABLE (null) when the bytes read so far are not a dictionary.
 */
export function replyResult(b: Buffer, wantCallId: boolean, start = 0): string | undefined | null {
  replyScratch.callId = undefined;
  if (b[start] !== 0x64) {
    try {
      const d = decodeDict(start === 0 ? b : b.subarray(start));
      if (wantCallId) replyScratch.callId = str(d['call-id']);
      return str(d.result);
    } catch { return UNREADABLE; }
  }
  const end = b.length;
  let p = start + 1;
  let result: string | undefined;
  let haveResult = false;
  let haveCallId = !wantCallId;
  while (p < end) {
    let c = b[p]!;
    if (c === E) return result;
    let n = 0;
    while (c >= 0x30 && c <= 0x39) { n = n * 10 + c - 0x30; c = b[++p]!; }
    if (c !== COLON || n > end) return UNREADABLE;
    const ks = p + 1;
    p = ks + n;
    const v = b[p];
    if (v === undefined) return UNREADABLE;
    if (v >= 0x30 && v <= 0x39) {
      let m = 0;
      c = v;
      while (c >= 0x30 && c <= 0x39) { m = m * 10 + c - 0x30; c = b[++p]!; }
      if (c !== COLON) return UNREADABLE;
      const vs = p + 1;
      p = vs + m;
      if (p > end) return UNREADABLE;
      if (n === 6 && eq(b, ks, K_RESULT)) {
        result = interned(RESULTS, b, vs, p);
        haveResult = true;
        if (haveCallId) return result;
      } else if (n === 7 && !haveCallId && eq(b, ks, K_CALL_ID[0]!)) {
        replyScratch.callId = text(b, vs, p);
        haveCallId = true;
        if (haveResult) return result;
      }
    } else {
      const q = skipValue(b, p, end, 1);
      if (q < 0) return UNREADABLE;
      p = q;
    }
  }
  return UNREADABLE;
}
