// Allocation-free bencode structure walker: finds where a value ends, or why it cannot.
// Shared by the decoder (validation before the bencode package builds objects), the routing scan
// and TCP framing, which must tell "incomplete, wait for more" from "malformed, give up".

/** Nesting limit: the root dictionary is depth 1. rtpengine's own messages nest 4-5 deep. */
export const MAX_DEPTH = 32;
/** Largest dictionary accepted (rtpengine's UDP receive buffer is 64 KiB). */
export const MAX_DICT_BYTES = 64 * 1024;

/** Walk results below zero: the input ended early, is malformed, or nests too deep. */
export const TRUNCATED = -1;
export const INVALID = -2;
export const TOO_DEEP = -3;

/** Where and why the last walk failed (module scratch: the walker is synchronous and non-reentrant). */
export const walkError = { offset: 0, reason: '' };
/** After TRUNCATED: the input length below which the value certainly stays incomplete. */
export const truncatedNeed = { at: 0 };
/** Set when a dictionary key `__proto__` was seen (plain-object decoders would lose it). */
export const walkFlags = { sawProtoKey: false };

const D = 0x64; // d
const L = 0x6c; // l
const I = 0x69; // i
const E = 0x65; // e
const COLON = 0x3a;
const MINUS = 0x2d;
/** Longest digit run accepted in a length prefix or integer: bounds the arithmetic, not the data. */
const MAX_LEN_DIGITS = 9;
const MAX_INT_DIGITS = 20;

const stack = new Uint8Array(MAX_DEPTH + 2);

function fail(code: number, offset: number, reason: string): number {
  walkError.offset = offset;
  walkError.reason = reason;
  if (code === TRUNCATED) truncatedNeed.at = offset + 1;
  return code;
}

/**
 * Byte string at `p` (`<len>:<bytes>`): returns the offset after it, or a negative code.
 * `stringStart` receives the first content byte's offset.
 */
export const stringStart = { at: 0 };
export function skipString(b: Uint8Array, p: number, end: number): number {
  let len = 0;
  let digits = 0;
  let q = p;
  for (;;) {
    if (q >= end) return fail(TRUNCATED, q, 'input ends inside a string length');
    const c = b[q]!;
    if (c >= 0x30 && c <= 0x39) {
      if (++digits > MAX_LEN_DIGITS) return fail(INVALID, p, 'string length prefix too long');
      len = len * 10 + (c - 0x30);
      q++;
      continue;
    }
    if (c !== COLON) return fail(INVALID, q, `expected ':' after string length, got byte ${c}`);
    if (digits === 0) return fail(INVALID, q, 'string without a length');
    q++;
    break;
  }
  stringStart.at = q;
  if (q + len > end) {
    fail(TRUNCATED, q, `string of ${len} bytes runs past the end`);
    truncatedNeed.at = q + len + 1; // the string, then at least one byte closing its container
    return TRUNCATED;
  }
  return q + len;
}

function skipInt(b: Uint8Array, p: number, end: number): number {
  let q = p + 1;
  if (q < end && b[q] === MINUS) q++;
  const first = q;
  for (;;) {
    if (q >= end) return fail(TRUNCATED, q, 'input ends inside an integer');
    const c = b[q]!;
    if (c >= 0x30 && c <= 0x39) {
      if (q - first >= MAX_INT_DIGITS) return fail(INVALID, p, 'integer too long');
      q++;
      continue;
    }
    if (c !== E) return fail(INVALID, q, `unexpected byte ${c} in integer`);
    if (q === first) return fail(INVALID, q, 'integer without digits');
    return q + 1;
  }
}

/**
 * Skips one complete value starting at `p`, sitting inside `depth` open containers.
 * Returns the offset just after it, or TRUNCATED / INVALID / TOO_DEEP (details in walkError).
 * Iterative with a fixed stack, so hostile nesting costs no recursion.
 */
export function skipValue(b: Uint8Array, p: number, end: number, depth: number): number {
  let sp = 0;
  let keyNext = false;
  for (;;) {
    if (p >= end) return fail(TRUNCATED, p, 'input ends inside a value');
    const c = b[p]!;
    if (keyNext) {
      if (c === E) {
        sp--;
        p++;
      } else if (c >= 0x30 && c <= 0x39) {
        const q = skipString(b, p, end);
        if (q < 0) return q;
        if (q - stringStart.at === 9 && b[stringStart.at] === 0x5f && isProto(b, stringStart.at)) walkFlags.sawProtoKey = true;
        p = q;
        keyNext = false;
        continue;
      } else {
        return fail(INVALID, p, `dictionary key must be a byte string, got byte ${c}`);
      }
    } else if (c >= 0x30 && c <= 0x39) {
      p = skipString(b, p, end);
      if (p < 0) return p;
    } else if (c === D || c === L) {
      if (depth + sp + 1 > MAX_DEPTH) return fail(TOO_DEEP, p, `nesting deeper than ${MAX_DEPTH}`);
      stack[sp++] = c;
      p++;
      keyNext = c === D;
      continue;
    } else if (c === I) {
      p = skipInt(b, p, end);
      if (p < 0) return p;
    } else if (c === E && sp > 0 && stack[sp - 1] === L) {
      sp--;
      p++;
    } else {
      return fail(INVALID, p, c === E ? "unexpected 'e'" : `unexpected byte ${c}`);
    }
    // One value completed (scalar or a closed container).
    if (sp === 0) return p;
    keyNext = stack[sp - 1] === D;
  }
}

const PROTO = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f];
function isProto(b: Uint8Array, at: number): boolean {
  for (let i = 0; i < 9; i++) if (b[at + i] !== PROTO[i]) return false;
  return true;
}
