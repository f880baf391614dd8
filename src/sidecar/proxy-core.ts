// The proxy's hot path: one datagram in → forwarded byte for byte, answered from the reply cache,
// or answered by the proxy (gate, rtpengine failure). A class with a fixed handler and a per-request
// context: no promise and no closure per request (ADR 0023, 0055).
import type { Socket, RemoteInfo } from 'node:dgram';
import { NgError, isCoded } from '../errors.js';
import type { Logger } from '../log.js';
import type { Clock } from '../clock.js';
import { MAX_COOKIE } from '../ng/framing.js';
import { scanRouting, replyResult, replyScratch, UNREADABLE, latin1 } from '../ng/scan.js';
import { decodeDict, encodeDict, str } from '../ng/codec.js';
import { NgUdpClient, type NgForwardHandler } from '../ng/client.js';
import type { NgUpstream, Routing } from '../ng/types.js';
import type { SessionRegistry } from './sessions.js';
import { ReplyCache, hashKey } from './reply-cache.js';
import { CREATING_COMMANDS, gate, type GateDecision } from './drain.js';
import type { SidecarLifecycle } from './lifecycle.js';
import type { ProxyMetrics } from './proxy-metrics.js';
import { failureReason, type UpstreamHealth } from './upstream-health.js';

/** A request on its way: `msg` is the client's datagram (its first `cookieLen` bytes are the cookie). */
interface Origin { sock: Socket; address: string; port: number; msg: Buffer; cookieLen: number; t0: number }
export interface InFlight extends Origin {
  key: string;
  /** hashKey(key) for the reply cache; undefined until needed (hashed on insert then). */
  hash: number | undefined;
  routing: Routing;
  /** The call is on this rtpengine; undefined = not looked up yet (the fast path skips it). */
  known: boolean | undefined;
  retransmissions: number;
}

const SP = 0x20;
const READ_ONLY: ReadonlySet<string> = new Set(['ping', 'query', 'list', 'statistics']);
/**
 * Whether replies to `command` go into the reply cache. Read-only commands are safe to run twice:
 * a late retransmission is simply forwarded again, which keeps high-rate pings and queries out of
 * the cache (memory) and spares them the lookup.
 */
const cacheable = (command: string | undefined): boolean => command === undefined || !READ_ONLY.has(command);
/** New calls held while the first ping is out, at most. */
const HOLD_MAX = 1024;
const REFUSE_UNKNOWN: GateDecision = { action: 'refuse', why: 'upstream-down' };
const FAIL_DOWN: GateDecision = { action: 'fail', why: 'upstream-down' };
const REFUSE_DRAINING = { action: 'refuse', why: 'draining' } as const;

/** A flat dictionary of strings in the request's format (bencode or JSON). */
export function localReply(format: 'bencode' | 'json', fields: Record<string, string>): Buffer {
  if (format === 'json') return Buffer.from(JSON.stringify(fields));
  let s = 'd';
  for (const [k, v] of Object.entries(fields)) s += `${Buffer.byteLength(k)}:${k}${Buffer.byteLength(v)}:${v}`;
  return Buffer.from(s + 'e');
}

/** The client's cookie (copied from its request) + one space + `dict`. */
function frame(o: Origin, dict: Buffer): Buffer {
  const n = o.cookieLen;
  const out = Buffer.allocUnsafe(n + 1 + dict.length);
  o.msg.copy(out, 0, 0, n);
  out[n] = SP;
  dict.copy(out, n + 1);
  return out;
}

// Replies to the client: no completion callback. A reply the kernel refuses is lost like one lost
// on the way, and the client's retransmission is answered from the reply cache.
const send = (sock: Socket, buf: Buffer, port: number, address: string) => { sock.send(buf, port, address); };

export interface ProxyCoreDeps {
  upstream: NgUpstream;
  upstreamName: string;
  sessions: SessionRegistry;
  cache: ReplyCache;
  life: SidecarLifecycle;
  health: UpstreamHealth;
  metrics: ProxyMetrics;
  clock: Clock;
  log: Logger;
  /** Source allowlist (undefined: everyone). */
  allowed: ((address: string) => boolean) | undefined;
}

export class ProxyCore implements NgForwardHandler<InFlight> {
  readonly inflight = new Map<string, InFlight>();
  closed = false;
  private readonly held: Array<{ sock: Socket; msg: Buffer; rinfo: RemoteInfo; t0: number }> = [];
  /** The UDP client's callback form spares a promise and two closures per forwarded request. */
  private readonly udp: NgUdpClient | undefined;
  private readonly health: UpstreamHealth;
  private readonly life: SidecarLifecycle;

  constructor(private readonly d: ProxyCoreDeps) {
    this.udp = d.upstream instanceof NgUdpClient ? d.upstream : undefined;
    this.health = d.health;
    this.life = d.life;
  }

  onMessage(sock: Socket, msg: Buffer, rinfo: RemoteInfo, t0 = this.d.clock.monotonic()): void {
    const { metrics, cache } = this.d;
    if (this.d.allowed && !this.d.allowed(rinfo.address)) { metrics.dropped('source_denied'); return; }
    // The cookie: 1-256 bytes before the first space (framing.ts's rule, without a Buffer view).
    const cookieLen = msg.indexOf(SP);
    if (cookieLen <= 0 || cookieLen > MAX_COOKIE) {
      metrics.dropped('no_cookie');
      this.d.log.debug({ from: `${rinfo.address}:${rinfo.port}`, size: msg.length }, 'ng datagram without a cookie dropped');
      return;
    }
    const key = `${rinfo.address} ${rinfo.port} ${latin1(msg, 0, cookieLen)}`;
    const pending = this.inflight.get(key);
    if (pending) { pending.retransmissions++; metrics.dropped('retransmission_in_flight'); return; }
    const dict = msg.subarray(cookieLen + 1);
    const r = this.route(sock, msg, rinfo, cookieLen, dict, t0);
    if (!r) return;
    // A late retransmission of a command already answered gets that answer again. Read-only
    // commands (ping, query, …) are never cached, so they skip the lookup and its key hash.
    let hash: number | undefined;
    if (cache.size > 0 && cacheable(r.command)) {
      hash = hashKey(key);
      const cached = cache.get(key, hash);
      if (cached) {
        send(sock, cached, rinfo.port, rinfo.address);
        metrics.request(undefined, undefined, 'cache', (this.d.clock.monotonic() - t0) / 1000); // labels command=none result=none
        return;
      }
    }
    const f: InFlight = { sock, address: rinfo.address, port: rinfo.port, msg, cookieLen, t0, key, hash, routing: r, known: undefined, retransmissions: 0 };
    // Serving with rtpengine up, the gate forwards everything: skip it and the registry lookup.
    if (this.health.up !== true || this.life.draining) {
      if (!this.gated(f, dict, rinfo)) return;
    }
    this.inflight.set(key, f);
    this.forward(f, dict);
  }

  /** Routing fields, or undefined after answering a request that has none (answered each time, not cached). */
  private route(sock: Socket, msg: Buffer, rinfo: RemoteInfo, cookieLen: number, dict: Buffer, t0: number): Routing | undefined {
    try {
      if (dict.length === 0) throw new NgError('NG_NO_PAYLOAD', { cookieLength: cookieLen });
      return scanRouting(dict);
    } catch (e) {
      const reason = isCoded(e) ? e.ngReason : 'Could not decode bencode dictionary';
      this.d.log.info({ from: `${rinfo.address}:${rinfo.port}`, code: isCoded(e) ? e.code : undefined, reason: (e as Error).message }, 'bad ng request answered with error');
      const fmt = dict[0] === 0x7b ? 'json' : 'bencode';
      this.answerLocally({ sock, address: rinfo.address, port: rinfo.port, msg, cookieLen, t0 }, undefined, undefined, undefined, localReply(fmt, { result: 'error', 'error-reason': reason }), 'error');
      return undefined;
    }
  }

  /** Off the fast path (draining, or rtpengine not known up): true when the request goes upstream. */
  private gated(f: InFlight, dict: Buffer, rinfo: RemoteInfo): boolean {
    const r = f.routing;
    const up = this.d.health.up;
    const known = f.known = r.callId !== undefined && this.d.sessions.has(r.callId);
    // rtpengine known gone (restarting): nothing to forward to; new calls fail over, the rest get the coded reason.
    let d = this.health.held !== undefined
      ? (!known && r.command !== undefined && CREATING_COMMANDS.has(r.command) ? REFUSE_UNKNOWN : FAIL_DOWN)
      : gate({ command: r.command, known, hasCallId: r.callId !== undefined, draining: this.d.life.draining, upstreamUp: up !== false });
    if (d.action === 'forward' && up === null && !known && r.command !== undefined && CREATING_COMMANDS.has(r.command)) {
      // rtpengine not known up yet: a new call waits for the first ping's outcome (at most
      // HOLD_MAX of them), then or otherwise gets load limit, like while rtpengine is down.
      if (!this.d.health.firstOutcome && this.held.length < HOLD_MAX) { this.held.push({ sock: f.sock, msg: f.msg, rinfo, t0: f.t0 }); return false; }
      d = REFUSE_UNKNOWN;
    }
    if (d.action === 'probe') { this.probe(f, dict); return false; }
    if (d.action === 'forward') return true;
    const rep = this.decisionReply(d, r);
    if (r.command !== 'ping') this.d.log.debug({ command: r.command, callId: r.callId, decision: d }, 'ng request answered by the proxy');
    this.answerLocally(f, f.key, f.hash, r.command, rep.dict, rep.result);
    return false;
  }

  /** The first ping has an outcome: the new calls held for it go through the gate again. */
  releaseHeld(): void {
    if (this.closed) return;
    for (const h of this.held.splice(0)) this.onMessage(h.sock, h.msg, h.rinfo, h.t0);
  }

  /** Send the original dictionary bytes upstream (the NgUdpClient's callback form when it is one). */
  private forward(f: InFlight, dict: Buffer): void {
    if (this.udp) this.udp.forward(dict, f, this);
    else this.d.upstream.request(dict).then((res) => this.reply(f, res.reply, 0), (e: unknown) => this.fail(f, e as NgError));
  }

  /**
   * Draining, and the registry lacks the call-id: is it on rtpengine (`query`)? Never on the serving
   * hot path. The request is in flight meanwhile, so its retransmissions wait for the one answer.
   */
  private probe(f: InFlight, dict: Buffer): void {
    this.inflight.set(f.key, f);
    const q = encodeDict({ command: 'query', 'call-id': f.routing.callId! });
    this.d.upstream.request(q).then((res) => this.probed(f, dict, res.reply), (e: unknown) => { this.d.metrics.drainProbe('failed'); this.fail(f, e as NgError); });
  }

  private probed(f: InFlight, dict: Buffer, reply: Buffer): void {
    if (this.closed) { this.inflight.delete(f.key); return; }
    const r = f.routing;
    const callId = r.callId!;
    let result: string | undefined;
    let reason: string | undefined;
    try {
      const d = decodeDict(reply);
      result = str(d.result);
      reason = str(d['error-reason']);
    } catch { result = 'invalid'; }
    if (result === 'ok') {
      this.d.metrics.drainProbe('found');
      // Here after all (a call the registry missed): remember it and send the request on.
      this.d.sessions.learn(callId, { fromTag: r.fromTag, toTag: r.toTag });
      f.known = true;
      this.d.log.info({ command: r.command, callId }, 'draining: call missing from the registry found on rtpengine; forwarded');
      this.forward(f, dict);
      return;
    }
    // Not here ("Unknown call-id"; any other answer does not show the call here either).
    this.inflight.delete(f.key);
    this.d.metrics.drainProbe('unknown');
    if (result !== 'error' || reason !== 'Unknown call-id') this.d.log.warn({ command: r.command, callId, result, reason }, 'draining: unexpected answer to the call probe; refused as not here');
    const rep = this.decisionReply(REFUSE_DRAINING, r);
    this.answerLocally(f, f.key, f.hash, r.command, rep.dict, rep.result);
  }

  private isKnown(f: InFlight): boolean {
    return (f.known ??= f.routing.callId !== undefined && this.d.sessions.has(f.routing.callId));
  }

  /** rtpengine answered (NgForwardHandler). */
  reply(f: InFlight, datagram: Buffer, dictStart: number): void {
    // rtpengine's datagram becomes the reply: the client's cookie is written over the end of
    // ours (the space stays), so it leaves as one buffer, the dictionary untouched. A client
    // cookie longer than ours (rare: ours is ~20 bytes) is framed into a new buffer.
    const n = f.cookieLen;
    const at = dictStart - 1 - n;
    let out: Buffer;
    if (at >= 0) {
      const m = f.msg;
      for (let i = 0; i < n; i++) datagram[at + i] = m[i]!;
      out = at === 0 ? datagram : datagram.subarray(at);
    } else out = frame(f, datagram.subarray(dictStart));
    send(f.sock, out, f.port, f.address);
    // Bookkeeping after the reply left: none of it delays the answer.
    this.inflight.delete(f.key);
    const r = f.routing;
    if (cacheable(r.command)) this.d.cache.set(f.key, out, f.hash);
    // rtpengine's reply is trusted (and already forwarded): read `result`, and `call-id` only
    // for requests without one (publish/create generate it), then stop.
    const wantCallId = r.callId === undefined;
    const got = replyResult(datagram, wantCallId, dictStart);
    const result = got === UNREADABLE ? 'invalid' : got;
    if (result === 'ok') this.track(f, wantCallId);
    this.d.metrics.request(r.command, result, 'rtpengine', (this.d.clock.monotonic() - f.t0) / 1000);
    if (f.retransmissions) this.d.log.debug({ command: r.command, callId: r.callId, retransmissions: f.retransmissions }, 'retransmissions answered by one upstream reply');
  }

  private track(f: InFlight, wantCallId: boolean): void {
    const r = f.routing;
    const callId = r.callId ?? (wantCallId ? replyScratch.callId : undefined);
    if (callId === undefined) return;
    if (r.command === 'delete') this.d.sessions.forget(callId);
    else if ((r.command !== undefined && CREATING_COMMANDS.has(r.command)) || r.command === 'answer' || r.command === 'query' || this.isKnown(f)) {
      this.d.sessions.learn(callId, { fromTag: r.fromTag, toTag: r.toTag });
    }
  }

  /**
   * rtpengine did not answer this request, or it could not be sent (NgForwardHandler). An error for
   * this request only: health is the pings' business (a reply rtpengine never sends, e.g. above
   * 64 KB, must not mark it down), so a timeout or a failed send only asks for a ping now.
   */
  fail(f: InFlight, e: NgError): void {
    this.inflight.delete(f.key);
    const r = f.routing;
    const reason = failureReason(e);
    if (isCoded(e, 'NG_TIMEOUT')) { this.d.metrics.upstreamTimeout(); void this.d.health.ping(); }
    else if (isCoded(e, 'NG_SOCKET')) void this.d.health.ping(); // not sent: does anything get through?
    if (isCoded(e, 'NG_CLOSED')) return; // shutting down: nothing to answer from
    const creating = r.command !== undefined && CREATING_COMMANDS.has(r.command) && !this.isKnown(f);
    const d: Exclude<GateDecision, { action: 'forward' }> = creating ? { action: 'refuse', why: 'upstream-down' } : { action: 'fail', why: 'upstream-down' };
    this.d.log.warn({ command: r.command, callId: r.callId, reason, answer: d.action }, 'rtpengine did not answer a forwarded request');
    const rep = this.decisionReply(d, r, reason);
    this.answerLocally(f, f.key, f.hash, r.command, rep.dict, rep.result);
  }

  private decisionReply(d: Exclude<GateDecision, { action: 'forward' }>, r: Routing, reason?: string): { dict: Buffer; result: string } {
    if (d.action === 'refuse') {
      if (r.supportsLoadLimit) return { dict: localReply(r.format, { result: 'load limit', message: d.why === 'draining' ? 'draining' : 'rtpengine unavailable' }), result: 'load limit' };
      return { dict: localReply(r.format, { result: 'error', 'error-reason': new NgError('PROXY_DRAINING').ngReason }), result: 'error' };
    }
    const err = new NgError('PROXY_UPSTREAM_FAILED', { upstream: this.d.upstreamName, callId: r.callId ?? '-', reason: reason ?? this.d.health.reason ?? 'not answering pings' });
    return { dict: localReply(r.format, { result: 'error', 'error-reason': err.message }), result: 'error' };
  }

  /** Sends a reply the proxy made; kept in the reply cache under `key` unless that is undefined. */
  private answerLocally(f: Origin, key: string | undefined, hash: number | undefined, command: string | undefined, dict: Buffer, result: string): void {
    const out = frame(f, dict);
    send(f.sock, out, f.port, f.address);
    if (key !== undefined && cacheable(command)) this.d.cache.set(key, out, hash);
    this.d.metrics.request(command, result, 'proxy', (this.d.clock.monotonic() - f.t0) / 1000);
  }
}
