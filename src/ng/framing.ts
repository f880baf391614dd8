// ng message framing: `<cookie> SP <dictionary>`. The cookie is opaque bytes up to the first
// space (rtpengine splits the same way); nothing here copies or re-encodes the dictionary.
import { NgError } from '../errors.js';

/** Longest cookie accepted (Kamailio's are ~12 bytes, UUIDs 36). */
export const MAX_COOKIE = 256;
const SP = 0x20;

/** Splits a datagram into cookie and dictionary bytes (views into `msg`, no copies). */
export function splitMessage(msg: Buffer): { cookie: Buffer; dict: Buffer } {
  // Look no further than one byte past the longest cookie: the answer is known by then.
  const sp = msg.subarray(0, MAX_COOKIE + 1).indexOf(SP);
  if (sp === 0) throw new NgError('NG_NO_COOKIE', { reason: 'message starts with a space (empty cookie)' });
  if (sp < 0) {
    if (msg.length > MAX_COOKIE) {
      const full = msg.indexOf(SP);
      if (full > 0) throw new NgError('NG_COOKIE_TOO_LONG', { length: full, max: MAX_COOKIE });
    }
    throw new NgError('NG_NO_COOKIE', { reason: msg.length === 0 ? 'empty message' : 'no space before the dictionary' });
  }
  if (sp + 1 >= msg.length) throw new NgError('NG_NO_PAYLOAD', { cookieLength: sp });
  return { cookie: msg.subarray(0, sp), dict: msg.subarray(sp + 1) };
}

/** Builds `<cookie> SP <dict>`; the cookie must be 1-256 bytes without a space. */
export function joinMessage(cookie: Buffer | string, dict: Buffer): Buffer {
  const c = typeof cookie === 'string' ? Buffer.from(cookie, 'latin1') : cookie;
  if (c.length === 0) throw new NgError('NG_NO_COOKIE', { reason: 'empty cookie' });
  if (c.length > MAX_COOKIE) throw new NgError('NG_COOKIE_TOO_LONG', { length: c.length, max: MAX_COOKIE });
  if (c.indexOf(SP) >= 0) throw new NgError('NG_NO_COOKIE', { reason: 'cookie contains a space' });
  if (dict.length === 0) throw new NgError('NG_NO_PAYLOAD', { cookieLength: c.length });
  const out = Buffer.allocUnsafe(c.length + 1 + dict.length);
  c.copy(out, 0);
  out[c.length] = SP;
  dict.copy(out, c.length + 1);
  return out;
}

/** The cookie if the message has a usable one (1-256 bytes then a space), else undefined. Never throws. */
export function tryCookie(msg: Buffer): Buffer | undefined {
  const sp = msg.subarray(0, MAX_COOKIE + 1).indexOf(SP);
  return sp > 0 ? msg.subarray(0, sp) : undefined;
}
