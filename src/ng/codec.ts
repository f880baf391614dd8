// ng dictionary codec: bencode (`d…e`, via the bencode package after our own structural check)
// or JSON (`{…}`). Our walker enforces what the package does not: no trailing bytes, depth and
// size limits, coded errors only. Encoding is bencode through the package, inputs checked first.
import bencode from 'bencode';
import { NgError } from '../errors.js';
import { MAX_DEPTH, MAX_DICT_BYTES, TOO_DEEP, TRUNCATED, skipValue, walkError, walkFlags } from './bencode.js';
import { NG_RESULTS, type NgDict, type NgReply, type NgValue } from './types.js';

export type { NgDict, NgValue, NgRequest, NgReply, NgOkReply, NgErrorReply, NgPongReply, NgLoadLimitReply } from './types.js';

const D = 0x64;
const BRACE = 0x7b;

/** Checks size and the first byte; returns the format or throws NG_NO_PAYLOAD / NG_TOO_LARGE / NG_NOT_DICT / NG_BAD_FORMAT. */
export function dictFormat(dict: Uint8Array): 'bencode' | 'json' {
  if (dict.length === 0) throw new NgError('NG_NO_PAYLOAD', {});
  if (dict.length > MAX_DICT_BYTES) throw new NgError('NG_TOO_LARGE', { size: dict.length, max: MAX_DICT_BYTES });
  const c = dict[0];
  if (c === D) return 'bencode';
  if (c === BRACE) return 'json';
  const root = c === 0x6c ? 'list' : c === 0x69 ? 'integer' : c! >= 0x30 && c! <= 0x39 ? 'byte string' : c === 0x5b ? 'JSON array' : undefined;
  if (root) throw new NgError('NG_NOT_DICT', { type: root });
  throw new NgError('NG_BAD_FORMAT', { byte: `0x${c!.toString(16).padStart(2, '0')}` });
}

/** Throws the coded error for a failed walk (see bencode.ts). */
export function walkFailure(code: number, size: number): NgError {
  if (code === TOO_DEEP) return new NgError('NG_TOO_DEEP', { max: MAX_DEPTH, offset: walkError.offset });
  return new NgError('NG_BENCODE_INVALID', { offset: walkError.offset, reason: walkError.reason, truncated: code === TRUNCATED, size });
}

/** Validates a bencode dictionary occupying exactly `dict`; throws coded errors. */
export function validateBencodeDict(dict: Uint8Array): void {
  const end = skipValue(dict, 0, dict.length, 0);
  if (end < 0) throw walkFailure(end, dict.length);
  if (end !== dict.length) {
    throw new NgError('NG_BENCODE_INVALID', { offset: end, reason: `${dict.length - end} trailing byte(s) after the dictionary`, size: dict.length });
  }
}

/** Decodes a request or reply dictionary. Byte strings stay Uint8Array (bencode) or text (JSON). */
export function decodeDict(dict: Buffer): NgDict {
  if (dictFormat(dict) === 'json') return decodeJson(dict);
  walkFlags.sawProtoKey = false;
  validateBencodeDict(dict);
  // The package assigns keys to a plain object, where `__proto__` would replace the prototype.
  if (walkFlags.sawProtoKey) throw new NgError('NG_BENCODE_INVALID', { offset: 0, reason: "key '__proto__' is not allowed", size: dict.length });
  try {
    return bencode.decode(dict) as NgDict;
  } catch (e) {
    // Unreachable after validation; kept so no uncoded error can escape.
    throw new NgError('NG_BENCODE_INVALID', { offset: 0, reason: (e as Error).message, size: dict.length }, { cause: e });
  }
}

function decodeJson(dict: Buffer): NgDict {
  let v: unknown;
  try {
    v = JSON.parse(dict.toString('utf8'));
  } catch (e) {
    throw new NgError('NG_JSON_INVALID', { reason: (e as Error).message }, { cause: e });
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new NgError('NG_NOT_DICT', { type: v === null ? 'null' : Array.isArray(v) ? 'list' : typeof v });
  }
  if (jsonDepth(v, 1) > MAX_DEPTH) throw new NgError('NG_TOO_DEEP', { max: MAX_DEPTH });
  return v as NgDict;
}

/** Depth of a parsed JSON value, stopping once past the limit (bounded recursion). */
function jsonDepth(v: unknown, depth: number): number {
  if (depth > MAX_DEPTH) return depth;
  let max = depth;
  const items = Array.isArray(v) ? v : Object.values(v as object);
  for (const x of items) {
    if (x !== null && typeof x === 'object') {
      max = Math.max(max, jsonDepth(x, depth + 1));
      if (max > MAX_DEPTH) return max;
    }
  }
  return max;
}

/** Bencodes a dictionary. Accepts strings, Buffers/Uint8Arrays, safe integers, arrays, plain objects; skips undefined/null. */
export function encodeDict(obj: Record<string, unknown>): Buffer {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj) || ArrayBuffer.isView(obj)) {
    throw new NgError('NG_ENCODE_INVALID', { path: '(root)', reason: 'the root must be a plain object' });
  }
  checkEncodable(obj, '', 1);
  const u8 = bencode.encode(obj);
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

function checkEncodable(v: unknown, path: string, depth: number): void {
  if (v === undefined || v === null || typeof v === 'string' || ArrayBuffer.isView(v)) return;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new NgError('NG_ENCODE_INVALID', { path: path || '(root)', reason: `bencode integers only, got ${v}` });
    return;
  }
  if (typeof v === 'object') {
    if (depth > MAX_DEPTH) throw new NgError('NG_ENCODE_INVALID', { path, reason: `nesting deeper than ${MAX_DEPTH}` });
    if (Array.isArray(v)) {
      v.forEach((x, i) => checkEncodable(x, `${path}[${i}]`, depth + 1));
      return;
    }
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) {
      throw new NgError('NG_ENCODE_INVALID', { path: path || '(root)', reason: `unsupported object type ${(v as object).constructor?.name ?? 'unknown'}` });
    }
    for (const [k, x] of Object.entries(v)) checkEncodable(x, path ? `${path}.${k}` : k, depth + 1);
    return;
  }
  throw new NgError('NG_ENCODE_INVALID', { path: path || '(root)', reason: `unsupported type ${typeof v}` });
}

/** Text of a byte-string value (UTF-8), or undefined when `v` is not a string. */
export function str(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8');
  return undefined;
}

/** A decoded value with every byte string turned into UTF-8 text (for typed replies and logs). */
export function plain(v: NgValue): unknown {
  if (v instanceof Uint8Array) return str(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      // A `__proto__` key (legal in JSON) must stay data, not become the prototype.
      if (k === '__proto__') Object.defineProperty(out, k, { value: plain(x), enumerable: true, writable: true, configurable: true });
      else out[k] = plain(x);
    }
    return out;
  }
  return v;
}

/** Decodes a reply dictionary into a typed, plain view; any problem is NG_BAD_REPLY. */
export function parseReply(dict: Buffer): NgReply {
  let d: NgDict;
  try {
    d = decodeDict(dict);
  } catch (e) {
    throw new NgError('NG_BAD_REPLY', { reason: (e as Error).message, code: (e as NgError).code }, { cause: e });
  }
  const result = str(d.result);
  if (result === undefined) throw new NgError('NG_BAD_REPLY', { reason: "no 'result' key" });
  if (!(NG_RESULTS as readonly string[]).includes(result)) throw new NgError('NG_BAD_REPLY', { reason: `unknown result '${result}'` });
  const reply = plain(d) as NgReply;
  if (reply.result === 'error' && typeof reply['error-reason'] !== 'string') reply['error-reason'] = '';
  return reply;
}
