// ng over TCP (rtpengine --listen-tcp-ng): no length prefix, so messages are cut where a complete
// `<cookie> SP <dict>` ends, found by walking the bencode (JSON bodies, which rtpengine pushes for
// DTMF notifications, by bracket balance). The client keeps the UDP client's request() contract.
import { connect, isIPv6, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.js';
import { NgError } from '../errors.js';
import { MAX_DICT_BYTES, TRUNCATED, skipValue, truncatedNeed } from './bencode.js';
import { walkFailure, parseReply } from './codec.js';
import { MAX_COOKIE, joinMessage } from './framing.js';
import { checkRemote, commandOf, encodeRequest } from './client.js';
import type { NgReply, NgRequestOptions, NgRequestResult, NgUpstream } from './types.js';

const SP = 0x20, CR = 0x0d, LF = 0x0a, D = 0x64, BRACE = 0x7b;

/** End offset of a JSON object/array starting at `p`, or -1 while incomplete (syntax is checked later by JSON.parse). */
function jsonEnd(b: Buffer, p: number, end: number): number {
  let depth = 0;
  let inStr = false;
  for (let i = p; i < end; i++) {
    const c = b[i]!;
    if (inStr) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inStr = false;
      continue;
    }
    if (c === 0x22) inStr = true;
    else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      if (--depth === 0) return i + 1;
    }
  }
  return -1;
}

export interface NgStreamDecoderOptions {
  /** Bytes that may wait for the rest of a message (default: a full 64 KiB dictionary + cookie). */
  maxBuffered?: number;
  /** For error details. */
  peer?: string;
}

/** Splits a TCP byte stream into whole ng messages (`<cookie> SP <dict>`, views, cookie included). */
export class NgStreamDecoder {
  /** Unparsed bytes, kept as chunks until enough have arrived to be worth a parse. */
  private chunks: Buffer[] = [];
  private held = 0;
  /** Bytes the first pending message needs at least (from its length prefixes): below this,
   *  a new chunk is only queued — a large SDP arriving in many segments costs linear time. */
  private need = 0;
  private readonly max: number;
  private readonly peer: string;

  constructor(opts: NgStreamDecoderOptions = {}) {
    this.max = opts.maxBuffered ?? MAX_DICT_BYTES + MAX_COOKIE + 1;
    this.peer = opts.peer ?? 'stream';
  }

  /** Bytes held back waiting for the rest of a message. */
  get buffered(): number {
    return this.held;
  }

  /** Adds bytes; returns every message now complete. Throws coded NgErrors on a corrupt stream (close it). */
  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.held += chunk.length;
    if (this.held < this.need) {
      if (this.held > this.max) throw new NgError('NG_TCP_BUFFER', { peer: this.peer, buffered: this.held, max: this.max });
      return [];
    }
    let b = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.held);
    this.need = 0;
    const out: Buffer[] = [];
    for (;;) {
      let s = 0;
      while (s < b.length && (b[s] === CR || b[s] === LF)) s++; // tolerate line breaks between messages
      b = b.subarray(s);
      if (b.length === 0) break;
      const sp = b.subarray(0, MAX_COOKIE + 1).indexOf(SP);
      if (sp === 0) throw new NgError('NG_NO_COOKIE', { reason: 'message starts with a space (empty cookie)', peer: this.peer });
      if (sp < 0) {
        if (b.length > MAX_COOKIE) throw new NgError('NG_COOKIE_TOO_LONG', { length: `more than ${MAX_COOKIE}`, max: MAX_COOKIE, peer: this.peer });
        break;
      }
      const start = sp + 1;
      if (start >= b.length) break;
      let end: number;
      if (b[start] === D) {
        end = skipValue(b, start, b.length, 0);
        if (end === TRUNCATED) { this.need = Math.max(truncatedNeed.at, b.length + 1); break; }
        if (end < 0) throw walkFailure(end, b.length - start);
      } else if (b[start] === BRACE) {
        end = jsonEnd(b, start, b.length);
        if (end < 0) break;
      } else {
        throw new NgError('NG_BAD_FORMAT', { byte: `0x${b[start]!.toString(16).padStart(2, '0')}`, peer: this.peer });
      }
      out.push(b.subarray(0, end));
      b = b.subarray(end);
    }
    if (b.length > this.max) throw new NgError('NG_TCP_BUFFER', { peer: this.peer, buffered: b.length, max: this.max });
    // Copy the remainder so emitted messages do not pin a large concatenation forever.
    this.chunks = b.length ? [Buffer.from(b)] : [];
    this.held = b.length;
    return out;
  }
}

export interface NgTcpClientOptions {
  host: string;
  port: number;
  timeoutMs?: number;
  retries?: number;
  log?: Logger;
  /** Messages that answer no request (rtpengine's DTMF notifications with --dtmf-log-ng-tcp). */
  onUnsolicited?: (msg: Buffer) => void;
}

interface Pending {
  cookie: string;
  bytes: Buffer;
  attempts: number;
  maxAttempts: number;
  timeoutMs: number;
  timer?: NodeJS.Timeout;
  resolve: (r: NgRequestResult) => void;
  reject: (e: Error) => void;
  cleanup: () => void;
}

/** ng client over one TCP connection, (re)connected on demand; same contract as NgUdpClient. */
export class NgTcpClient implements NgUpstream {
  readonly peer: string;
  private readonly opts: NgTcpClientOptions;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly log?: Logger;
  private readonly pending = new Map<string, Pending>();
  private readonly prefix = randomBytes(8).toString('hex');
  private seq = 0;
  private closed = false;
  private conn?: Promise<Socket>;

  constructor(opts: NgTcpClientOptions) {
    this.opts = opts;
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.retries = Math.max(1, opts.retries ?? 2);
    this.log = opts.log?.child({ component: 'ng-tcp-client' });
    this.peer = isIPv6(opts.host) ? `[${opts.host}]:${opts.port}` : `${opts.host}:${opts.port}`;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  private connection(): Promise<Socket> {
    if (this.conn) return this.conn;
    const p = new Promise<Socket>((resolve, reject) => {
      const sock = connect({ host: this.opts.host, port: this.opts.port, noDelay: true });
      const decoder = new NgStreamDecoder({ peer: this.peer });
      let up = false;
      sock.once('connect', () => { up = true; sock.unref(); resolve(sock); });
      sock.on('data', (chunk: Buffer) => {
        let msgs: Buffer[];
        try {
          msgs = decoder.push(chunk);
        } catch (e) {
          this.log?.warn({ err: (e as Error).message, peer: this.peer }, 'ng tcp stream corrupt; closing');
          this.drop(p, e as NgError);
          sock.destroy();
          return;
        }
        for (const m of msgs) this.onMessage(m);
      });
      sock.on('error', (err) => {
        const e = new NgError('NG_SOCKET', { peer: this.peer, reason: err.message }, { cause: err });
        if (!up) reject(e);
        this.drop(p, e);
      });
      sock.on('close', () => this.drop(p, new NgError('NG_SOCKET', { peer: this.peer, reason: 'connection closed' })));
    });
    this.conn = p;
    return p;
  }

  /** Forget a dead connection and fail what waited on it. */
  private drop(conn: Promise<Socket>, err: NgError): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    for (const q of [...this.pending.values()]) {
      this.finish(q);
      q.reject(err);
    }
  }

  request(dict: Record<string, unknown> | Buffer, opts: NgRequestOptions = {}): Promise<NgRequestResult> {
    if (this.closed) return Promise.reject(new NgError('NG_CLOSED', { peer: this.peer, inFlight: 0 }));
    const cookie = `${this.prefix}_${(this.seq++).toString(36)}`;
    let bytes: Buffer;
    try {
      const body = encodeRequest(dict);
      // rtpengine frames TCP messages by bencode validity only: a JSON body would never end.
      if (body[0] !== D) throw new NgError('NG_BAD_FORMAT', { byte: `0x${(body[0] ?? 0).toString(16)} (only bencode can be framed over TCP)` });
      bytes = joinMessage(cookie, body);
    } catch (e) {
      return Promise.reject(e);
    }
    const signal = opts.signal;
    if (signal?.aborted) return Promise.reject(new NgError('NG_ABORTED', { peer: this.peer, command: commandOf(bytes, cookie.length), attempts: 0 }));
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.finish(p);
        reject(new NgError('NG_ABORTED', { peer: this.peer, command: commandOf(bytes, cookie.length), attempts: p.attempts }));
      };
      const p: Pending = {
        cookie, bytes, attempts: 0,
        maxAttempts: Math.max(1, opts.retries ?? this.retries),
        timeoutMs: opts.timeoutMs ?? this.timeoutMs,
        resolve, reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(cookie, p);
      this.attempt(p);
    });
  }

  async command(obj: Record<string, unknown>, opts?: NgRequestOptions): Promise<NgReply> {
    const { reply } = await this.request(obj, opts);
    return checkRemote(parseReply(reply), typeof obj.command === 'string' ? obj.command : undefined);
  }

  private attempt(p: Pending): void {
    p.attempts++;
    p.timer = setTimeout(() => this.onTimeout(p), p.timeoutMs);
    this.connection().then(
      (sock) => { if (this.pending.has(p.cookie)) sock.write(p.bytes); },
      (err: NgError) => {
        if (!this.pending.has(p.cookie)) return;
        this.finish(p);
        p.reject(err);
      },
    );
  }

  private onTimeout(p: Pending): void {
    if (!this.pending.has(p.cookie)) return;
    // Same cookie again: rtpengine's cookie cache answers a duplicate without re-executing it.
    if (p.attempts < p.maxAttempts) { this.attempt(p); return; }
    this.finish(p);
    p.reject(new NgError('NG_TIMEOUT', { peer: this.peer, attempts: p.attempts, timeoutMs: p.timeoutMs, command: commandOf(p.bytes, p.cookie.length) ?? 'unknown', cookie: p.cookie }));
  }

  private finish(p: Pending): void {
    clearTimeout(p.timer);
    p.cleanup();
    this.pending.delete(p.cookie);
  }

  private onMessage(m: Buffer): void {
    const sp = m.indexOf(SP);
    const cookie = m.subarray(0, sp).toString('latin1');
    const p = this.pending.get(cookie);
    if (!p) {
      if (this.opts.onUnsolicited) this.opts.onUnsolicited(m);
      else this.log?.debug({ cookie, peer: this.peer }, 'ng tcp message matches no pending request');
      return;
    }
    this.finish(p);
    p.resolve({ reply: m.subarray(sp + 1), cookie });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const conn = this.conn;
    this.conn = undefined;
    const n = this.pending.size;
    for (const q of [...this.pending.values()]) {
      this.finish(q);
      q.reject(new NgError('NG_CLOSED', { peer: this.peer, inFlight: n }));
    }
    conn?.then((s) => s.destroy(), () => {});
  }
}
