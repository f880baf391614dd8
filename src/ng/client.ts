// UDP ng client: one socket, many requests in flight matched by cookie, per-attempt timeout and
// retransmission of the byte-identical datagram (Kamailio's rtpengine_tout_ms / rtpengine_retr).
// Cookies are a random 64-bit prefix plus a counter, so they never repeat across clients or runs;
// the counter (decimal) is what a reply is matched by: no cookie string per request.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { isIP, isIPv6 } from 'node:net';
import type { Logger } from '../log.js';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { NgError, isCoded } from '../errors.js';
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
  /** Monotonic time and the one timeout timer (default: the system clock). */
  clock?: Clock;
  /**
   * From its first request on, keep the process alive until the client is closed (a daemon's
   * upstream: no ref/unref per request). Default false: only while requests wait, so an idle
   * client lets a CLI exit. Before the first request the client never holds the process.
   */
  holdOpen?: boolean;
}

/**
 * Receiver of a `forward()` outcome: fixed functions plus a per-request context, so a caller on a
 * hot path allocates no closures per request. Exactly one of the two is called, once.
 */
export interface NgForwardHandler<C> {
  /**
   * The received datagram: the request's cookie, a space, and from `dictStart` the dictionary.
   * The datagram is the handler's from here on (the client keeps no reference to it).
   */
  reply(ctx: C, datagram: Buffer, dictStart: number): void;
  fail(ctx: C, err: NgError): void;
}

interface Pending {
  seq: number;
  /** Cookie, space, dictionary: sent, and resent on retransmission, as is. */
  datagram: Buffer;
  /** Where the dictionary starts in `datagram`. */
  dictStart: number;
  attempts: number;
  maxAttempts: number;
  timeoutMs: number;
  /** Monotonic ms when the current attempt times out. */
  deadline: number;
  /** The kernel took at least one attempt (a failed send before that: the request was never sent). */
  sent: boolean;
  /** Attempts the kernel refused; equal to `attempts` with none sent: nothing of it went out. */
  refused: number;
  /** The code of this request's last refused send (named in its NG_TIMEOUT). */
  sendError: string | undefined;
  startedAt: number;
  ctx: unknown;
  handler: NgForwardHandler<unknown>;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const SP = 0x20;
/** ICMP errors a connected UDP socket reports on receive: not attributable to one request. */
const SOFT_ERRORS: ReadonlySet<string> = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN']);

/** request()'s handler: settles the promise whose functions are the context. */
interface Settle { resolve: (r: NgRequestResult) => void; reject: (e: Error) => void }
const PROMISE_HANDLER: NgForwardHandler<Settle> = {
  reply(ctx, datagram, dictStart) { ctx.resolve({ reply: datagram.subarray(dictStart), cookie: datagram.toString('latin1', 0, dictStart - 1) }); },
  fail(ctx, err) { ctx.reject(err); },
};

/** Finds the command of an outgoing dictionary for error details; never throws. */
export function commandOf(datagram: Buffer, cookieLen: number): string | undefined {
  return dictCommand(datagram.subarray(cookieLen + 1));
}

function dictCommand(dict: Buffer): string | undefined {
  try {
    return scanRouting(dict).command;
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

/**
 * Per request: one Pending object and the datagram, nothing else — no timer (one timer for the
 * whole client, armed at the earliest deadline), no closure: the send callback is one function for
 * the whole client. Node drops the error of a send without a callback (EPERM from a firewall,
 * ENOBUFS), so every send has that callback; a connected socket's callbacks come back in send
 * order (libuv sends in order and tries a synchronous send only when nothing is queued), so a
 * FIFO of the requests sent tells whose send it was.
 */
export class NgUdpClient implements NgUpstream {
  readonly peer: string;
  private readonly host: string;
  private readonly port: number;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly log?: Logger;
  private readonly clock: Clock;
  private readonly socket: Socket;
  private readonly pending = new Map<number, Pending>();
  private readonly prefix = randomBytes(8).toString('hex') + '_';
  private readonly prefixBytes = Buffer.from(this.prefix, 'latin1');
  /** Next counter; wraps below 2^31 (a cookie repeats after 2 billion requests, never while pending). */
  private seq = 0;
  private closed = false;
  /**
   * An IP peer gets a connected socket: no address lookup per send, and the kernel delivers only
   * the peer's datagrams (the reply source check). A host name is looked up per send, as before.
   */
  private readonly connect: boolean;
  private connected = false;
  /** Requests whose datagram waits for connect() to complete (the first few at most). */
  private early: Pending[] | undefined;
  /** Requests handed to the connected socket whose send callback has not come back yet, in send order. */
  private readonly unconfirmed: Pending[] = [];
  private unconfirmedHead = 0;
  private timer: Timer | undefined;
  private timerAt = Infinity;
  /** The socket is ref'd while requests wait, or from the first request on with `holdOpen`. */
  private refd = false;
  private readonly holdOpen: boolean;
  private lastSoftError: { code: string; at: number } | undefined;

  constructor(opts: NgClientOptions) {
    this.host = opts.host;
    this.port = opts.port;
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.retries = Math.max(1, opts.retries ?? 2);
    this.log = opts.log?.child({ component: 'ng-client' });
    this.clock = opts.clock ?? systemClock;
    const v6 = isIPv6(opts.host);
    this.peer = v6 ? `[${opts.host}]:${opts.port}` : `${opts.host}:${opts.port}`;
    this.connect = isIP(opts.host) !== 0;
    this.socket = createSocket({ type: v6 ? 'udp6' : 'udp4' });
    this.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    this.socket.on('error', (err) => this.onSocketError(err));
    if (this.connect) this.startConnect();
    this.holdOpen = opts.holdOpen ?? false;
    this.socket.unref();
  }

  /** Requests currently waiting for a reply. */
  get inFlight(): number {
    return this.pending.size;
  }

  request(dict: Record<string, unknown> | Buffer, opts: NgRequestOptions = {}): Promise<NgRequestResult> {
    if (this.closed) return Promise.reject(new NgError('NG_CLOSED', { peer: this.peer, inFlight: 0 }));
    let body: Buffer;
    try {
      body = encodeRequest(dict);
      if (body.length === 0) throw new NgError('NG_NO_PAYLOAD', { cookieLength: 0 });
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<NgRequestResult>((resolve, reject) => {
      this.forward(body, { resolve, reject }, PROMISE_HANDLER, opts);
    });
  }

  /**
   * request() without a promise, for hot paths: `dict` (a complete dictionary, sent untouched)
   * goes out behind a fresh cookie, and `handler` gets `ctx` back with the reply or a coded
   * error. `handler.fail` may be called before forward() returns (closed client, too large,
   * already aborted). `dict` is copied into the datagram (retransmissions resend that copy):
   * the caller may reuse it at once.
   */
  forward<C>(dict: Buffer, ctx: C, handler: NgForwardHandler<C>, opts?: NgRequestOptions): void {
    if (this.closed) {
      handler.fail(ctx, new NgError('NG_CLOSED', { peer: this.peer, inFlight: 0 }));
      return;
    }
    const signal = opts?.signal;
    if (signal?.aborted) {
      handler.fail(ctx, new NgError('NG_ABORTED', { peer: this.peer, command: dictCommand(dict), attempts: 0 }));
      return;
    }
    const seq = this.seq;
    this.seq = seq === 0x7ffffffe ? 0 : seq + 1;
    let digits = 1;
    for (let x = seq; x >= 10; x = (x / 10) | 0) digits++;
    const pre = this.prefixBytes;
    const dictStart = pre.length + digits + 1;
    const size = dictStart + dict.length;
    if (size > MAX_DATAGRAM) {
      handler.fail(ctx, new NgError('NG_TOO_LARGE', { size, max: MAX_DATAGRAM }));
      return;
    }
    // One buffer (the dictionary copied once: cheaper than a second iovec's bookkeeping).
    const datagram = Buffer.allocUnsafe(size);
    for (let i = 0; i < pre.length; i++) datagram[i] = pre[i]!;
    for (let i = dictStart - 2, x = seq; i >= pre.length; i--, x = (x / 10) | 0) datagram[i] = 0x30 + (x % 10);
    datagram[dictStart - 1] = SP;
    datagram.set(dict, dictStart);
    const timeoutMs = opts?.timeoutMs ?? this.timeoutMs;
    const now = this.clock.monotonic();
    const p: Pending = {
      seq, datagram, dictStart, attempts: 1, maxAttempts: opts?.retries === undefined ? this.retries : Math.max(1, opts.retries),
      timeoutMs, deadline: now + timeoutMs, startedAt: now, sent: false, refused: 0, sendError: undefined,
      ctx, handler: handler as NgForwardHandler<unknown>, signal, onAbort: undefined,
    };
    if (signal) {
      p.onAbort = () => this.abort(p);
      signal.addEventListener('abort', p.onAbort, { once: true });
    }
    this.pending.set(seq, p);
    if (!this.refd) {
      this.refd = true;
      this.socket.ref();
    }
    if (p.deadline < this.timerAt) this.arm(p.deadline, now);
    this.transmit(p);
  }

  /** The cookie of a request, as text (logs, errors, request() results). */
  private cookieOf(p: Pending): string {
    return this.prefix + p.seq;
  }

  /** Encodes, sends, and parses the reply; an `error` reply rejects with NG_REMOTE_ERROR. */
  async command(obj: Record<string, unknown>, opts?: NgRequestOptions): Promise<NgReply> {
    const { reply } = await this.request(obj, opts);
    return checkRemote(parseReply(reply), typeof obj.command === 'string' ? obj.command : undefined);
  }

  private transmit(p: Pending): void {
    if (this.connected) this.sendConnected(p);
    else if (this.early) this.early.push(p);
    else if (this.connect) { this.startConnect(); this.early!.push(p); } // the last connect failed: try again
    // A host name: looked up per send, and lookups may finish out of order, so this rare path
    // ties the outcome to its request with a closure.
    else this.socket.send(p.datagram, this.port, this.host, (err) => this.sendDone(p, err));
  }

  private sendConnected(p: Pending): void {
    this.socket.send(p.datagram, this.onSent);
    // After the call: its callback never runs before send() returns, and a send that throws
    // (socket gone) must leave no entry that would shift every later callback onto the wrong request.
    this.unconfirmed.push(p);
  }

  /** The send callback of the connected socket: the oldest unconfirmed send is this one. */
  private readonly onSent = (err: Error | null): void => {
    const p = this.unconfirmed[this.unconfirmedHead++];
    if (this.unconfirmedHead === this.unconfirmed.length) { this.unconfirmed.length = 0; this.unconfirmedHead = 0; }
    else if (this.unconfirmedHead >= 1024 && this.unconfirmedHead * 2 >= this.unconfirmed.length) { this.unconfirmed.splice(0, this.unconfirmedHead); this.unconfirmedHead = 0; }
    if (p) this.sendDone(p, err);
  };

  /**
   * The kernel took the datagram, or refused it. A refusal that is the peer's ICMP answer to an
   * earlier datagram (a connected socket reports ECONNREFUSED etc. on the next send) is soft, as
   * on receive: a restarting rtpengine may answer the retransmission. Any other (a firewall's
   * EPERM, ENOBUFS): a request every attempt of which was refused — none went out, none is still
   * on its way — fails now with NG_SOCKET (#15 defect 2), never as a timeout; one that went out
   * keeps waiting for its reply, and its timeout names the refused retransmission.
   */
  private sendDone(p: Pending, err: Error | null | undefined): void {
    if (!err) { p.sent = true; return; }
    if (this.pending.get(p.seq) !== p) return; // answered or settled meanwhile
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    if (SOFT_ERRORS.has(code)) { this.lastSoftError = { code, at: this.clock.monotonic() }; return; }
    p.sendError = code;
    if (p.sent || ++p.refused < p.attempts) return;
    this.settle(p);
    this.log?.debug({ code, peer: this.peer, cookie: this.cookieOf(p) }, 'ng request could not be sent');
    p.handler.fail(p.ctx, new NgError('NG_SOCKET', {
      peer: this.peer, reason: `${code}: ${err.message} (request not sent)`, command: dictCommand(p.datagram.subarray(p.dictStart)) ?? 'unknown',
    }, { cause: err }));
  }

  /** Connect the socket; datagrams wait in `early` meanwhile (once per client, again after a failure). */
  private startConnect(): void {
    this.early = [];
    this.socket.connect(this.port, this.host, (err?: Error) => this.onConnect(err));
  }

  /**
   * A failed connect (no route, network down) means nothing waiting was sent: each such request
   * gets NG_SOCKET now, not a timeout later (#15 defect 2); the next request connects again.
   */
  private onConnect(err: Error | undefined): void {
    const early = this.early!;
    this.early = undefined;
    if (this.closed) return;
    if (err) {
      this.log?.warn({ peer: this.peer, err: err.message }, 'ng socket cannot connect to rtpengine; the requests waiting were not sent');
      this.failAll(new NgError('NG_SOCKET', { peer: this.peer, reason: `${err.message} (request not sent)` }, { cause: err }));
      return;
    }
    this.connected = true;
    for (const p of early) if (this.pending.get(p.seq) === p) this.sendConnected(p);
  }

  /** The one timer: fires at the earliest deadline, retransmits or times out what is due. */
  private arm(at: number, now: number): void {
    this.timer?.cancel();
    this.timerAt = at;
    this.timer = this.clock.setTimeout(this.onTimer, Math.max(1, Math.ceil(at - now)));
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.timerAt = Infinity;
    if (this.closed) return;
    const now = this.clock.monotonic();
    let next = Infinity;
    for (const p of this.pending.values()) {
      if (p.deadline > now) {
        if (p.deadline < next) next = p.deadline;
        continue;
      }
      if (p.attempts < p.maxAttempts) {
        p.attempts++;
        p.deadline = now + p.timeoutMs;
        if (p.deadline < next) next = p.deadline;
        this.log?.debug({ cookie: this.cookieOf(p), attempt: p.attempts, peer: this.peer }, 'ng retransmit');
        this.transmit(p);
        continue;
      }
      this.settle(p);
      const details: Record<string, unknown> = {
        peer: this.peer, attempts: p.attempts, timeoutMs: p.timeoutMs,
        command: dictCommand(p.datagram.subarray(p.dictStart)) ?? 'unknown', cookie: this.cookieOf(p),
      };
      // A retransmission of this request the kernel refused, else the peer's ICMP answer (port
      // closed, no route) seen while this request waited.
      if (p.sendError) details.socketError = p.sendError;
      else if (this.lastSoftError && this.lastSoftError.at >= p.startedAt) details.socketError = this.lastSoftError.code;
      p.handler.fail(p.ctx, new NgError('NG_TIMEOUT', details));
    }
    if (!this.closed && next < this.timerAt) this.arm(next, now);
  };

  /** Forgets a request (reply, timeout, abort, close); the caller then notifies its handler. */
  private settle(p: Pending): void {
    this.pending.delete(p.seq);
    if (p.onAbort) p.signal!.removeEventListener('abort', p.onAbort);
    if (this.pending.size === 0 && this.refd && !this.holdOpen) {
      this.refd = false;
      this.socket.unref();
    }
  }

  private abort(p: Pending): void {
    if (this.pending.get(p.seq) !== p) return;
    this.settle(p);
    p.handler.fail(p.ctx, new NgError('NG_ABORTED', { peer: this.peer, command: dictCommand(p.datagram.subarray(p.dictStart)), attempts: p.attempts }));
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    // The kernel delivers only the peer's datagrams to a connected socket; a looked-up host name
    // (possibly several addresses) is checked by port.
    if (!this.connect && rinfo.port !== this.port) {
      this.log?.debug({ from: `${rinfo.address}:${rinfo.port}`, peer: this.peer }, 'ng reply from an unexpected source ignored');
      return;
    }
    const seq = this.seqOf(msg);
    const p = seq >= 0 ? this.pending.get(seq) : undefined;
    if (!p) {
      const sp = msg.indexOf(SP);
      // Late reply to a request that timed out or was retransmitted: expected, not an error.
      this.log?.debug({ cookie: sp > 0 ? msg.toString('latin1', 0, sp) : undefined, peer: this.peer }, 'ng reply matches no pending request');
      return;
    }
    this.settle(p);
    p.handler.reply(p.ctx, msg, p.dictStart);
  }

  /** The counter of a reply's cookie when it is one of ours (prefix, digits, space), else -1. */
  private seqOf(msg: Buffer): number {
    const pre = this.prefixBytes;
    const n = pre.length;
    if (msg.length <= n) return -1;
    for (let i = 0; i < n; i++) if (msg[i] !== pre[i]) return -1;
    let seq = 0;
    let i = n;
    for (; i < n + 11; i++) {
      const c = msg[i]!;
      if (c === SP) break;
      if (c < 0x30 || c > 0x39) return -1;
      seq = seq * 10 + (c - 0x30);
    }
    // No digits, too many, or a leading zero (never sent): not a cookie of ours.
    return msg[i] === SP && i > n && (msg[n] !== 0x30 || i === n + 1) ? seq : -1;
  }

  private onSocketError(err: NodeJS.ErrnoException): void {
    if (err.code !== undefined && SOFT_ERRORS.has(err.code)) {
      // The peer's port is closed or unreachable right now. Which request caused it is unknown, and
      // a restarting rtpengine may still answer a retransmission: requests keep their timeouts.
      this.lastSoftError = { code: err.code, at: this.clock.monotonic() };
      this.log?.debug({ code: err.code, peer: this.peer }, 'ng peer unreachable (ICMP)');
      return;
    }
    this.failAll(new NgError('NG_SOCKET', { peer: this.peer, reason: err.message }, { cause: err }));
  }

  private failAll(err: NgError): void {
    for (const p of [...this.pending.values()]) {
      this.settle(p);
      p.handler.fail(p.ctx, err);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
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
