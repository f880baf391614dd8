// UDP ng client: one socket, many requests in flight matched by cookie, per-attempt timeout and
// retransmission of the byte-identical datagram (Kamailio's rtpengine_tout_ms / rtpengine_retr).
// Cookies are a random 64-bit prefix plus a counter, so they never repeat across clients or runs.
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { isIPv6 } from 'node:net';
import type { Logger } from '../log.js';
import { NgError, isCoded } from '../errors.js';
import { joinMessage, tryCookie } from './framing.js';
import { encodeDict, parseReply } from './codec.js';
import { scanRouting } from './scan.js';
import type { NgReply, NgRequestOptions, NgRequestResult, NgUpstream } from './types.js';

export type { NgUpstream, NgRequestOptions, NgRequestResult } from './types.js';

/** Largest UDP payload over IPv4 (65,535 - 8 UDP - 20 IP); IPv6 allows 65,527 but rtpengine reads 64 KiB. */
export const MAX_DATAGRAM = 65_507;

export interface NgClientOptions {
  host: string;
  port: number;
  /** Per-attempt wait, ms (default 1000, like rtpengine_tout_ms). */
  timeoutMs?: number;
  /** Total attempts including the first (default 2). */
  retries?: number;
  log?: Logger;
}

interface Pending {
  cookie: string;
  datagram: Buffer;
  attempts: number;
  maxAttempts: number;
  timeoutMs: number;
  timer?: NodeJS.Timeout;
  resolve: (r: NgRequestResult) => void;
  reject: (e: Error) => void;
  cleanup: () => void;
}

/** Finds the command of an outgoing dictionary for error details; never throws. */
export function commandOf(datagram: Buffer, cookieLen: number): string | undefined {
  try {
    return scanRouting(datagram.subarray(cookieLen + 1)).command;
  } catch {
    return undefined;
  }
}

/** The dictionary bytes of a request: objects are bencoded, Buffers pass untouched. */
export function encodeRequest(dict: Record<string, unknown> | Buffer): Buffer {
  return Buffer.isBuffer(dict) ? dict : encodeDict(dict);
}

/** Throws NG_REMOTE_ERROR for an `error` reply, so `command()` callers get a coded rejection. */
export function checkRemote(reply: NgReply, command: string | undefined): NgReply {
  if (reply.result === 'error') {
    throw new NgError('NG_REMOTE_ERROR', { command: command ?? 'unknown', reason: reply['error-reason'] });
  }
  return reply;
}

export class NgUdpClient implements NgUpstream {
  readonly peer: string;
  private readonly host: string;
  private readonly port: number;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly log?: Logger;
  private readonly socket: Socket;
  private readonly pending = new Map<string, Pending>();
  private readonly prefix = randomBytes(8).toString('hex');
  private seq = 0;
  private closed = false;
  /** Only replies from the peer's exact address count, when the peer is given as an IP. */
  private readonly peerIsIp: boolean;

  constructor(opts: NgClientOptions) {
    this.host = opts.host;
    this.port = opts.port;
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.retries = Math.max(1, opts.retries ?? 2);
    this.log = opts.log?.child({ component: 'ng-client' });
    const v6 = isIPv6(opts.host);
    this.peer = v6 ? `[${opts.host}]:${opts.port}` : `${opts.host}:${opts.port}`;
    this.peerIsIp = v6 || /^\d+\.\d+\.\d+\.\d+$/.test(opts.host);
    this.socket = createSocket({ type: v6 ? 'udp6' : 'udp4' });
    this.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address, rinfo.port));
    this.socket.on('error', (err) => this.failAll(new NgError('NG_SOCKET', { peer: this.peer, reason: err.message }, { cause: err })));
    // Pending requests hold timers; an idle client must not keep the process alive.
    this.socket.unref();
  }

  /** Requests currently waiting for a reply. */
  get inFlight(): number {
    return this.pending.size;
  }

  private nextCookie(): string {
    return `${this.prefix}_${(this.seq++).toString(36)}`;
  }

  request(dict: Record<string, unknown> | Buffer, opts: NgRequestOptions = {}): Promise<NgRequestResult> {
    if (this.closed) return Promise.reject(new NgError('NG_CLOSED', { peer: this.peer, inFlight: 0 }));
    let datagram: Buffer;
    const cookie = this.nextCookie();
    try {
      datagram = joinMessage(cookie, encodeRequest(dict));
    } catch (e) {
      return Promise.reject(e);
    }
    if (datagram.length > MAX_DATAGRAM) {
      return Promise.reject(new NgError('NG_TOO_LARGE', { size: datagram.length, max: MAX_DATAGRAM }));
    }
    const signal = opts.signal;
    if (signal?.aborted) {
      return Promise.reject(new NgError('NG_ABORTED', { peer: this.peer, command: commandOf(datagram, cookie.length), attempts: 0 }));
    }
    return new Promise<NgRequestResult>((resolve, reject) => {
      const onAbort = () => {
        this.finish(p);
        reject(new NgError('NG_ABORTED', { peer: this.peer, command: commandOf(datagram, cookie.length), attempts: p.attempts }));
      };
      const p: Pending = {
        cookie, datagram, attempts: 0,
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

  /** Encodes, sends, and parses the reply; an `error` reply rejects with NG_REMOTE_ERROR. */
  async command(obj: Record<string, unknown>, opts?: NgRequestOptions): Promise<NgReply> {
    const { reply } = await this.request(obj, opts);
    return checkRemote(parseReply(reply), typeof obj.command === 'string' ? obj.command : undefined);
  }

  private attempt(p: Pending): void {
    p.attempts++;
    p.timer = setTimeout(() => this.onTimeout(p), p.timeoutMs);
    this.socket.send(p.datagram, this.port, this.host, (err) => {
      if (!err || !this.pending.has(p.cookie)) return;
      this.finish(p);
      p.reject(new NgError('NG_SOCKET', { peer: this.peer, reason: err.message, cookie: p.cookie }, { cause: err }));
    });
  }

  private onTimeout(p: Pending): void {
    if (!this.pending.has(p.cookie)) return;
    if (p.attempts < p.maxAttempts) {
      this.log?.debug({ cookie: p.cookie, attempt: p.attempts + 1, peer: this.peer }, 'ng retransmit');
      this.attempt(p);
      return;
    }
    this.finish(p);
    p.reject(new NgError('NG_TIMEOUT', {
      peer: this.peer, attempts: p.attempts, timeoutMs: p.timeoutMs,
      command: commandOf(p.datagram, p.cookie.length) ?? 'unknown', cookie: p.cookie,
    }));
  }

  private finish(p: Pending): void {
    clearTimeout(p.timer);
    p.cleanup();
    this.pending.delete(p.cookie);
  }

  private onMessage(msg: Buffer, address: string, port: number): void {
    if (port !== this.port || (this.peerIsIp && !sameAddress(address, this.host))) {
      this.log?.debug({ from: `${address}:${port}`, peer: this.peer }, 'ng reply from an unexpected source ignored');
      return;
    }
    const c = tryCookie(msg);
    const p = c && this.pending.get(c.toString('latin1'));
    if (!p) {
      // Late reply to a request that timed out or was retransmitted: expected, not an error.
      this.log?.debug({ cookie: c?.toString('latin1'), peer: this.peer }, 'ng reply matches no pending request');
      return;
    }
    this.finish(p);
    p.resolve({ reply: msg.subarray(c.length + 1), cookie: p.cookie });
  }

  private failAll(err: NgError): void {
    for (const p of [...this.pending.values()]) {
      this.finish(p);
      p.reject(err);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const n = this.pending.size;
    this.failAll(new NgError('NG_CLOSED', { peer: this.peer, inFlight: n }));
    try {
      this.socket.close();
    } catch (e) {
      if (!isCoded(e)) this.log?.debug({ err: (e as Error).message }, 'ng socket close');
    }
  }
}

/** Compares two textual IPs, tolerating IPv4-mapped IPv6 forms. */
export function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  const strip = (x: string) => (x.startsWith('::ffff:') ? x.slice(7) : x);
  return strip(a) === strip(b);
}
