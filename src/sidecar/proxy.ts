// The sidecar's ng proxy: Kamailio → rtpengine on loopback, dictionary bytes forwarded untouched,
// retransmissions deduplicated, sessions tracked, drain and rtpengine failures answered so that
// Kamailio fails over at once instead of stalling.
//
// Public API (everything else in src/sidecar/{sessions,drain,reply-cache,http}.ts is internal):
//   const proxy = await startNgProxy(config: NgProxyConfig, deps: NgProxyDeps)
//   proxy.sessions            SessionRegistry: count(), has(callId), on('change', n => …)
//   proxy.events              'upstream' (up: boolean), 'drain' (DrainStatus)
//   proxy.drain({deadlineMs?, trigger?}) → DrainStatus   (idempotent; POST /drain, SIGTERM, CLI)
//   proxy.drained()           Promise<DrainStatus> resolved at 0 rtpengine sessions or the deadline
//   proxy.ready() / status()  readiness (rtpengine answers pings, not draining) and a JSON view
//   proxy.addresses           bound ng listeners;  proxy.close()
// The proxy is a ControlTarget: pass it to startControlServer() (http.ts) for the HTTP endpoints.
import { createSocket, type Socket, type RemoteInfo } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { isIPv6 } from 'node:net';
import type { Registry } from 'prom-client';
import { NgError, isCoded } from '../errors.js';
import type { Logger } from '../log.js';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { MAX_COOKIE } from '../ng/framing.js';
import { scanRouting, scanReplyResult, replyResult, replyScratch, UNREADABLE, latin1 } from '../ng/scan.js';
import { decodeDict, encodeDict, str } from '../ng/codec.js';
import { NgUdpClient, type NgForwardHandler } from '../ng/client.js';
import type { NgUpstream, Routing } from '../ng/types.js';
import { SessionRegistry } from './sessions.js';
import { ReplyCache, hashKey } from './reply-cache.js';
import { CREATING_COMMANDS, gate, type GateDecision } from './drain.js';
import { SidecarLifecycle, type DrainStatus, type LifecycleStatus } from './lifecycle.js';
import { createProxyMetrics, type ProxyMetrics } from './proxy-metrics.js';
import { parseHostPort, sourceMatcher, type ProxyConfig } from './proxy-options.js';
import type { ControlTarget, Readiness } from './http.js';

/** The proxy's part of the sidecar configuration (see proxy-options.ts for meanings). */
export type NgProxyConfig = Omit<ProxyConfig, 'controlListen' | 'controlRemoteDrain'>;

export interface NgProxyDeps {
  log: Logger;
  registry: Registry;
  clock?: Clock;
  /** The ng client towards rtpengine; default: an NgUdpClient to config.ngUpstream, closed with the proxy. */
  upstream?: NgUpstream;
  /** Where drain state lives (the sidecar's); default: the proxy's own, serving at once. */
  lifecycle?: SidecarLifecycle;
}

export interface NgProxy extends ControlTarget {
  readonly sessions: SessionRegistry;
  readonly events: EventEmitter;
  readonly addresses: ReadonlyArray<{ host: string; port: number }>;
  drain(opts?: { deadlineMs?: number; trigger?: string }): DrainStatus & Record<string, unknown>;
  drained(): Promise<DrainStatus>;
  ready(): Readiness;
  status(): ProxyStatus & Record<string, unknown>;
  /** Runs one reconciliation with rtpengine now (also runs on a timer). */
  reconcile(): Promise<void>;
  close(): Promise<void>;
}

export interface ProxyStatus {
  drain: DrainStatus;
  sessions: number;
  rtpengine: {
    upstream: string; up: boolean | null; reason?: string;
    sessionsOwn?: number; sessionsTotal?: number; lastReconcileAt?: number;
  };
  inFlight: number;
  replyCache: { entries: number; bytes: number };
  listeners: Array<{ host: string; port: number }>;
}

/** A request on its way: `msg` is the client's datagram (its first `cookieLen` bytes are the cookie). */
interface Origin { sock: Socket; address: string; port: number; msg: Buffer; cookieLen: number; t0: number }
interface InFlight extends Origin {
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
const PING = Buffer.from('d7:command4:pinge');
/** New calls held while the first ping is out, at most. */
const HOLD_MAX = 1024;
const REFUSE_UNKNOWN: GateDecision = { action: 'refuse', why: 'upstream-down' };
const REFUSE_DRAINING = { action: 'refuse', why: 'draining' } as const;
const STATISTICS = Buffer.from('d7:command10:statisticse');

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

/**
 * dgram lookup for a listener: the proxy only ever sends to a request's source address, an IP
 * literal of the socket's own family from the kernel, so it is passed through synchronously (no
 * DNS, no validation regex per reply).
 */
function literalLookup(family: 4 | 6) {
  return (address: string, _family: unknown, cb: (err: Error | null, address: string, family: number) => void): void => cb(null, address, family);
}

const num = (v: unknown): number | undefined => {
  if (typeof v === 'number') return v;
  const s = str(v as never);
  return s !== undefined && s !== '' && Number.isFinite(Number(s)) ? Number(s) : undefined;
};

export async function startNgProxy(config: NgProxyConfig, deps: NgProxyDeps): Promise<NgProxy> {
  const log = deps.log.child({ component: 'ng-proxy' });
  const clock = deps.clock ?? systemClock;
  const up = parseHostPort(config.ngUpstream);
  if (!up) throw new NgError('NG_SOCKET', { peer: config.ngUpstream, reason: 'upstream is not host:port' });
  const upstreamName = config.ngUpstream;
  const attempts = config.ngUpstreamRetries + 1;
  const upstream = deps.upstream ?? new NgUdpClient({ host: up.host, port: up.port, timeoutMs: config.ngUpstreamTimeoutMs, retries: attempts, clock, log, holdOpen: true });
  const ownsUpstream = deps.upstream === undefined;
  // The UDP client's callback form spares a promise and two closures per forwarded request.
  const udp = upstream instanceof NgUdpClient ? upstream : undefined;
  const allowed = sourceMatcher(config.ngAllowCidrs);

  const events = new EventEmitter();
  const sessions = new SessionRegistry({ clock, tombstoneMs: config.deleteDelaySeconds * 1000 + 5000 });
  const cache = new ReplyCache({ clock, ttlMs: config.ngReplyCacheTtlMs, maxBytes: config.ngReplyCacheMaxBytes });
  const life = deps.lifecycle ?? new SidecarLifecycle({ clock, log, drainDeadlineMs: config.drainDeadlineSeconds * 1000, lingerMs: 0, upstreamDownMs: config.ngDrainUpstreamDownMs });
  if (!deps.lifecycle) life.serve();
  const inflight = new Map<string, InFlight>();
  const metrics: ProxyMetrics = createProxyMetrics(deps.registry, {
    sessions: () => sessions.count(), inFlight: () => inflight.size, replyCacheBytes: () => cache.bytes,
  });
  let started = false;
  let drainPhase = life.drainPhase;
  metrics.drainPhase(drainPhase);
  const onPhase = (s: LifecycleStatus) => {
    if (s.drain.phase === drainPhase) return;
    drainPhase = s.drain.phase;
    metrics.drainPhase(drainPhase);
    // Draining: look at rtpengine's count at once, and poll at the drain rate from now on.
    if (drainPhase === 'draining' && started) reconcileNow();
    events.emit('drain', s.drain);
  };
  life.on('phase', onPhase);

  // --- rtpengine health: null until the first ping answers ---------------------------------
  let upstreamUp: boolean | null = null;
  // startNgProxy does not wait for rtpengine (in config mode it starts after the sidecar). New
  // calls that arrive while the first ping is out wait for its answer (its timeout at most, and
  // HOLD_MAX datagrams): with rtpengine up that is a fraction of a millisecond, and nothing is
  // refused that rtpengine would take; otherwise they get load limit. Later, while still unknown,
  // new calls get load limit at once (readiness is false then too).
  let firstPing = true;
  const held: Array<{ sock: Socket; msg: Buffer; rinfo: RemoteInfo; t0: number }> = [];
  let downReason: string | undefined;
  let pingFailures = 0;
  const setHealth = (isUp: boolean, reason?: string) => {
    if (isUp === upstreamUp) return;
    upstreamUp = isUp;
    downReason = isUp ? undefined : reason;
    metrics.upstreamUp(isUp);
    life.upstream(isUp);
    if (isUp) {
      log.info({ upstream: upstreamName }, 'rtpengine answers: new calls accepted');
      // Started or restarted: learn its calls now rather than at the next interval.
      reconcileNow();
    }
    else log.warn({ upstream: upstreamName, reason }, 'rtpengine down: new offers get load limit, existing calls an error');
    events.emit('upstream', isUp);
  };
  metrics.upstreamUp(false);
  const failureReason = (e: unknown): string => (isCoded(e) ? e.ngReason : (e as Error).message);

  // --- the hot path -------------------------------------------------------------------------
  // No completion callback: without one, Node tries a synchronous send (uv_udp_try_send) first;
  // with one, every reply waits for the next event-loop turn. Failures surface as 'error' events.
  const send = (sock: Socket, buf: Buffer, port: number, address: string) => { sock.send(buf, port, address); };

  /** Sends a reply the proxy made; kept in the reply cache under `key` unless that is undefined. */
  const answerLocally = (f: Origin, key: string | undefined, hash: number | undefined, command: string | undefined, dict: Buffer, result: string) => {
    const out = frame(f, dict);
    send(f.sock, out, f.port, f.address);
    if (key !== undefined && cacheable(command)) cache.set(key, out, hash);
    metrics.request(command, result, 'proxy', (clock.monotonic() - f.t0) / 1000);
  };

  const decisionReply = (d: Exclude<GateDecision, { action: 'forward' }>, r: Routing, reason?: string): { dict: Buffer; result: string } => {
    if (d.action === 'refuse') {
      if (r.supportsLoadLimit) return { dict: localReply(r.format, { result: 'load limit', message: d.why === 'draining' ? 'draining' : 'rtpengine unavailable' }), result: 'load limit' };
      return { dict: localReply(r.format, { result: 'error', 'error-reason': new NgError('PROXY_DRAINING').ngReason }), result: 'error' };
    }
    const err = new NgError('PROXY_UPSTREAM_FAILED', { upstream: upstreamName, callId: r.callId ?? '-', reason: reason ?? downReason ?? 'not answering pings' });
    return { dict: localReply(r.format, { result: 'error', 'error-reason': err.message }), result: 'error' };
  };

  const onMessage = (sock: Socket, msg: Buffer, rinfo: RemoteInfo, t0 = clock.monotonic()) => {
    if (allowed && !allowed(rinfo.address)) { metrics.dropped('source_denied'); return; }
    // The cookie: 1-256 bytes before the first space (framing.ts's rule, without a Buffer view).
    const cookieLen = msg.indexOf(SP);
    if (cookieLen <= 0 || cookieLen > MAX_COOKIE) {
      metrics.dropped('no_cookie');
      log.debug({ from: `${rinfo.address}:${rinfo.port}`, size: msg.length }, 'ng datagram without a cookie dropped');
      return;
    }
    const key = `${rinfo.address} ${rinfo.port} ${latin1(msg, 0, cookieLen)}`;
    const pending = inflight.get(key);
    if (pending) { pending.retransmissions++; metrics.dropped('retransmission_in_flight'); return; }

    const dict = msg.subarray(cookieLen + 1);
    let r: Routing;
    try {
      if (dict.length === 0) throw new NgError('NG_NO_PAYLOAD', { cookieLength: cookieLen });
      r = scanRouting(dict);
    } catch (e) {
      // Answered again on every retransmission (the same bytes fail the same way): not cached.
      const reason = isCoded(e) ? e.ngReason : 'Could not decode bencode dictionary';
      log.info({ from: `${rinfo.address}:${rinfo.port}`, code: isCoded(e) ? e.code : undefined, reason: (e as Error).message }, 'bad ng request answered with error');
      const fmt = dict[0] === 0x7b ? 'json' : 'bencode';
      answerLocally({ sock, address: rinfo.address, port: rinfo.port, msg, cookieLen, t0 }, undefined, undefined, undefined, localReply(fmt, { result: 'error', 'error-reason': reason }), 'error');
      return;
    }
    // A late retransmission of a command already answered gets that answer again. Read-only
    // commands (ping, query, …) are never cached, so they skip the lookup and its key hash.
    let hash: number | undefined;
    if (cache.size > 0 && cacheable(r.command)) {
      hash = hashKey(key);
      const cached = cache.get(key, hash);
      if (cached) {
        send(sock, cached, rinfo.port, rinfo.address);
        metrics.request(undefined, undefined, 'cache', (clock.monotonic() - t0) / 1000); // labels command=none result=none
        return;
      }
    }
    const f: InFlight = { sock, address: rinfo.address, port: rinfo.port, msg, cookieLen, t0, key, hash, routing: r, known: undefined, retransmissions: 0 };
    // Serving with rtpengine up, the gate forwards everything: skip it and the registry lookup.
    if (upstreamUp !== true || life.draining) {
      const known = f.known = r.callId !== undefined && sessions.has(r.callId);
      let d = gate({ command: r.command, known, hasCallId: r.callId !== undefined, draining: life.draining, upstreamUp: upstreamUp !== false });
      if (d.action === 'forward' && upstreamUp === null && !known && r.command !== undefined && CREATING_COMMANDS.has(r.command)) {
        // rtpengine not known up yet: a new call waits for the first ping (see `held`), then or
        // otherwise gets load limit, like while rtpengine is down.
        if (firstPing && held.length < HOLD_MAX) { held.push({ sock, msg, rinfo, t0 }); return; }
        d = REFUSE_UNKNOWN;
      }
      if (d.action === 'probe') { probe(f, dict); return; }
      if (d.action !== 'forward') {
        const rep = decisionReply(d, r);
        if (r.command !== 'ping') log.debug({ command: r.command, callId: r.callId, decision: d }, 'ng request answered by the proxy');
        answerLocally(f, key, hash, r.command, rep.dict, rep.result);
        return;
      }
    }
    inflight.set(key, f);
    forward(f, dict);
  };

  /** Send the original dictionary bytes upstream (the NgUdpClient's callback form when it is one). */
  const forward = (f: InFlight, dict: Buffer) => {
    if (udp) udp.forward(dict, f, upstreamHandler);
    else upstream.request(dict).then((res) => onReply(f, res.reply, 0), (e: unknown) => onFail(f, e));
  };

  // --- drain probe: is a call-id the registry lacks on rtpengine? ------------------------------
  // Only while draining (never on the serving hot path). The request is in flight meanwhile, so
  // its retransmissions wait for the one answer.
  const probe = (f: InFlight, dict: Buffer) => {
    const r = f.routing;
    const callId = r.callId!;
    inflight.set(f.key, f);
    const q = encodeDict({ command: 'query', 'call-id': callId });
    upstream.request(q).then((res) => {
      if (closed) { inflight.delete(f.key); return; }
      let result: string | undefined;
      let reason: string | undefined;
      try {
        const d = decodeDict(res.reply);
        result = str(d.result);
        reason = str(d['error-reason']);
      } catch { result = 'invalid'; }
      if (result === 'ok') {
        metrics.drainProbe('found');
        // Here after all (a call the registry missed): remember it and send the request on.
        sessions.learn(callId, { fromTag: r.fromTag, toTag: r.toTag });
        f.known = true;
        log.info({ command: r.command, callId }, 'draining: call missing from the registry found on rtpengine; forwarded');
        forward(f, dict);
        return;
      }
      // Not here ("Unknown call-id"; any other answer does not show the call here either).
      inflight.delete(f.key);
      metrics.drainProbe('unknown');
      if (result !== 'error' || reason !== 'Unknown call-id') log.warn({ command: r.command, callId, result, reason }, 'draining: unexpected answer to the call probe; refused as not here');
      const rep = decisionReply(REFUSE_DRAINING, r);
      log.debug({ command: r.command, callId }, 'draining: call-id not on rtpengine; refused');
      answerLocally(f, f.key, f.hash, r.command, rep.dict, rep.result);
    }, (e: unknown) => { metrics.drainProbe('failed'); onFail(f, e); });
  };

  const isKnown = (f: InFlight): boolean => (f.known ??= f.routing.callId !== undefined && sessions.has(f.routing.callId));

  const onReply = (f: InFlight, datagram: Buffer, dictStart: number) => {
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
    const key = f.key;
    inflight.delete(key);
    const r = f.routing;
    if (cacheable(r.command)) cache.set(key, out, f.hash);
    // rtpengine's reply is trusted (and already forwarded): read `result`, and `call-id` only
    // for requests without one (publish/create generate it), then stop.
    const wantCallId = r.callId === undefined;
    const got = replyResult(datagram, wantCallId, dictStart);
    const result = got === UNREADABLE ? 'invalid' : got;
    if (result === 'ok') {
      const callId = r.callId ?? (wantCallId ? replyScratch.callId : undefined);
      if (callId !== undefined) {
        if (r.command === 'delete') sessions.forget(callId);
        else if ((r.command !== undefined && CREATING_COMMANDS.has(r.command)) || r.command === 'answer' || r.command === 'query' || isKnown(f)) {
          sessions.learn(callId, { fromTag: r.fromTag, toTag: r.toTag });
        }
      }
    }
    metrics.request(r.command, result, 'rtpengine', (clock.monotonic() - f.t0) / 1000);
    if (f.retransmissions) log.debug({ command: r.command, callId: r.callId, retransmissions: f.retransmissions }, 'retransmissions answered by one upstream reply');
  };

  const onFail = (f: InFlight, e: unknown) => {
    const key = f.key;
    inflight.delete(key);
    const r = f.routing;
    const reason = failureReason(e);
    if (isCoded(e, 'NG_TIMEOUT')) metrics.upstreamTimeout();
    if (isCoded(e, 'NG_TIMEOUT') || isCoded(e, 'NG_SOCKET')) setHealth(false, reason);
    if (isCoded(e, 'NG_CLOSED')) return; // shutting down: nothing to answer from
    const creating = r.command !== undefined && CREATING_COMMANDS.has(r.command) && !isKnown(f);
    const d: Exclude<GateDecision, { action: 'forward' }> = creating ? { action: 'refuse', why: 'upstream-down' } : { action: 'fail', why: 'upstream-down' };
    log.warn({ command: r.command, callId: r.callId, reason, answer: d.action }, 'rtpengine did not answer a forwarded request');
    const rep = decisionReply(d, r, reason);
    answerLocally(f, key, f.hash, r.command, rep.dict, rep.result);
  };

  const upstreamHandler: NgForwardHandler<InFlight> = { reply: onReply, fail: onFail };

  // --- listeners ------------------------------------------------------------------------------
  const sockets: Socket[] = [];
  const addresses: Array<{ host: string; port: number }> = [];
  try {
    for (const l of config.ngListen) {
      const hp = parseHostPort(l)!;
      const v6 = isIPv6(hp.host);
      // Replies go to rinfo's address, always an IP literal: resolve it synchronously, so the
      // datagram leaves inside send() instead of after a nextTick (dns.lookup's fast path defers).
      const sock = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6, lookup: literalLookup(v6 ? 6 : 4) });
      sock.on('message', (m, ri) => onMessage(sock, m, ri));
      sock.on('error', (err) => { metrics.dropped('send_failed'); log.warn({ err: err.message, listen: l }, 'ng listener error (a reply could not be sent)'); });
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind(hp.port, hp.host, () => { sock.off('error', reject); resolve(); });
      });
      // Bursts from many SIP workers must not overflow the default buffer (capped by rmem_max).
      try { sock.setRecvBufferSize(4 * 1024 * 1024); } catch { /* keep the default */ }
      sockets.push(sock);
      const a = sock.address();
      addresses.push({ host: a.address, port: a.port });
    }
  } catch (e) {
    for (const s of sockets) s.close();
    if (ownsUpstream) upstream.close();
    throw new NgError('NG_SOCKET', { peer: config.ngListen.join(','), reason: `cannot bind ng listener: ${(e as Error).message}` }, { cause: e });
  }
  log.info({ listen: addresses, upstream: upstreamName }, 'ng proxy listening');

  // --- health pings and reconciliation --------------------------------------------------------
  let closed = false;
  let pingBusy = false;
  const ping = async () => {
    if (pingBusy || closed) return;
    pingBusy = true;
    try {
      const res = await upstream.request(PING, { timeoutMs: Math.min(config.ngHealthIntervalMs, config.ngUpstreamTimeoutMs * attempts), retries: 1 });
      const { result } = scanReplyResult(res.reply);
      if (result !== 'pong') throw new NgError('NG_BAD_REPLY', { reason: `ping answered ${String(result)}` });
      pingFailures = 0;
      setHealth(true);
    } catch (e) {
      if (closed) return;
      pingFailures++;
      if (pingFailures >= config.ngHealthFailures) setHealth(false, failureReason(e));
    } finally {
      pingBusy = false;
      if (firstPing) {
        firstPing = false;
        if (!closed) for (const h of held.splice(0)) onMessage(h.sock, h.msg, h.rinfo, h.t0);
      }
    }
  };

  let sessionsOwn: number | undefined;
  let sessionsTotal: number | undefined;
  let lastReconcileAt: number | undefined;
  let reconciling: Promise<void> | undefined;
  const reconcileOnce = async () => {
    const startedAt = clock.monotonic();
    // A count asked for before the drain began can predate calls created since (and drain()
    // chains a fresh reconciliation after a running one): only a reading taken while draining
    // may end the drain.
    const drainingAtStart = life.drainPhase === 'draining';
    const st = decodeDict((await upstream.request(STATISTICS)).reply);
    const cur = (st.statistics as Record<string, unknown> | undefined)?.currentstatistics as Record<string, unknown> | undefined;
    const own = num(cur?.sessionsown);
    const total = num(cur?.sessionstotal);
    if (own === undefined) throw new NgError('NG_BAD_REPLY', { reason: 'statistics reply lacks currentstatistics.sessionsown' });
    sessionsOwn = own;
    sessionsTotal = total;
    metrics.upstreamSessions(own);
    if (total !== undefined && total <= config.ngReconcileListMax) {
      const lr = decodeDict((await upstream.request(Buffer.from(`d7:command4:list5:limiti${total + 100}ee`))).reply);
      if (str(lr.result) === 'ok' && Array.isArray(lr.calls)) {
        const ids = lr.calls.map((c) => str(c)).filter((c): c is string => c !== undefined);
        const res = sessions.reconcile(ids, startedAt);
        if (res.added || res.removed) log.info({ ...res, sessionsOwn: own }, 'sessions reconciled with rtpengine list');
      }
    }
    lastReconcileAt = clock.now();
    if (drainingAtStart) life.observeSessions(own);
  };
  let reconcileAgain: Promise<void> | undefined;
  /** A reconciliation that starts now, or right after the one running (callers share it). */
  const reconcile = (): Promise<void> => {
    if (closed) return Promise.resolve();
    if (reconciling) {
      reconcileAgain ??= reconciling.then(() => { reconcileAgain = undefined; return reconcile(); });
      return reconcileAgain;
    }
    reconciling = reconcileOnce()
      .catch((e: unknown) => log.warn({ err: (e as Error).message }, 'reconciliation with rtpengine failed'))
      .finally(() => { reconciling = undefined; });
    return reconciling;
  };

  const pingTimer: Timer = clock.setInterval(() => void ping(), config.ngHealthIntervalMs);
  let reconcileTimer: Timer | undefined;
  const scheduleReconcile = () => {
    // One timer at a time: drain() and the timer chain may both reschedule after a shared run.
    reconcileTimer?.cancel();
    if (closed) return;
    const ms = life.drainPhase === 'draining' ? config.ngDrainPollMs : config.ngReconcileIntervalMs;
    reconcileTimer = clock.setTimeout(() => { void reconcile().then(scheduleReconcile); }, ms);
  };
  function reconcileNow(): void {
    reconcileTimer?.cancel();
    void reconcile().then(scheduleReconcile);
  }
  // Not awaited: the first answer to a ping starts the first reconciliation (reconcileNow).
  started = true;
  void ping();
  scheduleReconcile();

  const status = (): ProxyStatus & Record<string, unknown> => ({
    drain: life.drainStatus(),
    sessions: sessions.count(),
    rtpengine: { upstream: upstreamName, up: upstreamUp, reason: downReason, sessionsOwn, sessionsTotal, lastReconcileAt },
    inFlight: inflight.size,
    replyCache: { entries: cache.size, bytes: cache.bytes },
    listeners: addresses,
  });

  return {
    sessions,
    events,
    addresses,
    drain(opts = {}) {
      const s = life.requestDrain({ deadlineMs: opts.deadlineMs, trigger: opts.trigger ?? 'api' });
      return { ...s, sessions: sessions.count() };
    },
    drained: () => life.drained(),
    ready() {
      const reasons: string[] = [];
      if (upstreamUp !== true) reasons.push(`rtpengine at ${upstreamName} is not answering pings${downReason ? ` (${downReason})` : ''}`);
      reasons.push(...life.notReadyReasons());
      return { ready: reasons.length === 0, reasons };
    },
    status,
    reconcile,
    async close() {
      if (closed) return;
      closed = true;
      pingTimer.cancel();
      reconcileTimer?.cancel();
      life.off('phase', onPhase);
      if (!deps.lifecycle) life.close();
      cache.close();
      await Promise.all(sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
      if (ownsUpstream) upstream.close();
      log.info({ inFlight: inflight.size }, 'ng proxy closed');
    },
  };
}
