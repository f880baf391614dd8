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
import { createSocket, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { isIPv6 } from 'node:net';
import type { Registry } from 'prom-client';
import { NgError } from '../errors.js';
import type { Logger } from '../log.js';
import { systemClock, type Clock } from '../clock.js';
import { NgUdpClient } from '../ng/client.js';
import type { NgUpstream } from '../ng/types.js';
import { SessionRegistry } from './sessions.js';
import { ReplyCache } from './reply-cache.js';
import { SidecarLifecycle, type DrainStatus, type LifecycleStatus } from './lifecycle.js';
import { createProxyMetrics, type ProxyMetrics } from './proxy-metrics.js';
import { parseHostPort, sourceMatcher, type ProxyConfig } from './proxy-options.js';
import type { ControlTarget, Readiness } from './http.js';
import { ProxyCore } from './proxy-core.js';
import { UpstreamHealth } from './upstream-health.js';
import { Reconciler } from './reconcile.js';

export { localReply } from './proxy-core.js';

/** The proxy's part of the sidecar configuration (see proxy-options.ts for meanings). */
export type NgProxyConfig = Omit<ProxyConfig, 'controlListen' | 'controlRemoteDrain' | 'controlDrainToken'>;

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
  /** rtpengine is known gone (exec mode: exited, restarting): answer without forwarding, with `reason`. */
  upstreamGone(reason: string): void;
  /** A restarted rtpengine answers: health pings decide again. */
  upstreamBack(): void;
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

/**
 * dgram lookup for a listener: the proxy only ever sends to a request's source address, an IP
 * literal of the socket's own family from the kernel, so it is passed through synchronously (no
 * DNS, no validation regex per reply).
 */
function literalLookup(family: 4 | 6) {
  return (address: string, _family: unknown, cb: (err: Error | null, address: string, family: number) => void): void => cb(null, address, family);
}

/** Binds one UDP listener per address; all or none. */
async function bindListeners(listen: readonly string[], core: ProxyCore, metrics: ProxyMetrics, log: Logger): Promise<{ sockets: Socket[]; addresses: Array<{ host: string; port: number }> }> {
  const sockets: Socket[] = [];
  const addresses: Array<{ host: string; port: number }> = [];
  try {
    for (const l of listen) {
      const hp = parseHostPort(l)!;
      const v6 = isIPv6(hp.host);
      // Replies go to rinfo's address, always an IP literal: resolve it synchronously, so the
      // datagram leaves inside send() instead of after a nextTick (dns.lookup's fast path defers).
      const sock = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6, lookup: literalLookup(v6 ? 6 : 4) });
      sock.on('message', (m, ri) => core.onMessage(sock, m, ri));
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
    throw new NgError('NG_SOCKET', { peer: listen.join(','), reason: `cannot bind ng listener: ${(e as Error).message}` }, { cause: e });
  }
  return { sockets, addresses };
}

export async function startNgProxy(config: NgProxyConfig, deps: NgProxyDeps): Promise<NgProxy> {
  const log = deps.log.child({ component: 'ng-proxy' });
  const clock = deps.clock ?? systemClock;
  const up = parseHostPort(config.ngUpstream);
  if (!up) throw new NgError('NG_SOCKET', { peer: config.ngUpstream, reason: 'upstream is not host:port' });
  const upstreamName = config.ngUpstream;
  const attempts = config.ngUpstreamRetries + 1;
  const upstream = deps.upstream ?? new NgUdpClient({ host: up.host, port: up.port, timeoutMs: config.ngUpstreamTimeoutMs, retries: attempts, clock, log, holdOpen: true });
  const ownsUpstream = deps.upstream === undefined;
  const life = deps.lifecycle ?? new SidecarLifecycle({ clock, log, drainDeadlineMs: config.drainDeadlineSeconds * 1000, lingerMs: 0, upstreamDownMs: config.ngDrainUpstreamDownMs });
  if (!deps.lifecycle) life.serve();

  const events = new EventEmitter();
  const sessions = new SessionRegistry({ clock, tombstoneMs: config.deleteDelaySeconds * 1000 + 5000 });
  const cache = new ReplyCache({ clock, ttlMs: config.ngReplyCacheTtlMs, maxBytes: config.ngReplyCacheMaxBytes });
  const coreRef: { c?: ProxyCore } = {};
  const metrics: ProxyMetrics = createProxyMetrics(deps.registry, {
    sessions: () => sessions.count(), inFlight: () => coreRef.c?.inflight.size ?? 0, replyCacheBytes: () => cache.bytes,
  });
  const reconciler = new Reconciler({
    upstream, sessions, life, clock, log, listMax: config.ngReconcileListMax, intervalMs: config.ngReconcileIntervalMs, drainPollMs: config.ngDrainPollMs,
    onSessionsOwn: (own) => metrics.upstreamSessions(own),
  });
  const health = new UpstreamHealth({
    upstream, clock, log, name: upstreamName, intervalMs: config.ngHealthIntervalMs,
    timeoutMs: Math.min(config.ngHealthIntervalMs, config.ngUpstreamTimeoutMs * attempts), failures: config.ngHealthFailures,
    onChange: (isUp) => {
      metrics.upstreamUp(isUp);
      life.upstream(isUp);
      // Started or restarted: learn its calls now rather than at the next interval.
      if (isUp) reconciler.now();
      events.emit('upstream', isUp);
    },
    onFirstOutcome: () => coreRef.c?.releaseHeld(),
  });
  metrics.upstreamUp(false);
  const c = coreRef.c = new ProxyCore({ upstream, upstreamName, sessions, cache, life, health, metrics, clock, log, allowed: sourceMatcher(config.ngAllowCidrs) });

  let listeners: Awaited<ReturnType<typeof bindListeners>>;
  try {
    listeners = await bindListeners(config.ngListen, c, metrics, log);
  } catch (e) {
    if (ownsUpstream) upstream.close();
    if (!deps.lifecycle) life.close();
    throw e;
  }
  const { sockets, addresses } = listeners;
  log.info({ listen: addresses, upstream: upstreamName }, 'ng proxy listening');

  const unfollow = followDrainPhase(life, metrics, reconciler, events);
  // Not awaited: the first answer to a ping starts the first reconciliation.
  health.start();
  reconciler.schedule();

  return facade({ config, deps, upstream, ownsUpstream, life, events, sessions, cache, health, reconciler, core: c, sockets, addresses, log, unfollow });
}

/** Metrics, reconciliation pace and the 'drain' event follow the lifecycle's drain phase; returns the unsubscribe. */
function followDrainPhase(life: SidecarLifecycle, metrics: ProxyMetrics, reconciler: Reconciler, events: EventEmitter): () => void {
  let drainPhase = life.drainPhase;
  metrics.drainPhase(drainPhase);
  const onPhase = (s: LifecycleStatus) => {
    if (s.drain.phase === drainPhase) return;
    drainPhase = s.drain.phase;
    metrics.drainPhase(drainPhase);
    // Draining: look at rtpengine's count at once, and poll at the drain rate from now on.
    if (drainPhase === 'draining') reconciler.now();
    events.emit('drain', s.drain);
  };
  life.on('phase', onPhase);
  return () => life.off('phase', onPhase);
}

interface ProxyParts {
  config: NgProxyConfig; deps: NgProxyDeps; upstream: NgUpstream; ownsUpstream: boolean; life: SidecarLifecycle; events: EventEmitter;
  sessions: SessionRegistry; cache: ReplyCache; health: UpstreamHealth; reconciler: Reconciler; core: ProxyCore;
  sockets: Socket[]; addresses: Array<{ host: string; port: number }>; log: Logger; unfollow: () => void;
}

/** The proxy's public face over its parts. */
function facade(p: ProxyParts): NgProxy {
  const { life, sessions, health, reconciler, core, cache } = p;
  const upstreamName = p.config.ngUpstream;
  return {
    sessions: p.sessions,
    events: p.events,
    addresses: p.addresses,
    drain(opts = {}) {
      const s = life.requestDrain({ deadlineMs: opts.deadlineMs, trigger: opts.trigger ?? 'api' });
      return { ...s, sessions: sessions.count() };
    },
    drained: () => life.drained(),
    ready() {
      const reasons: string[] = [];
      if (health.up !== true) reasons.push(`rtpengine at ${upstreamName} is not answering pings${health.reason ? ` (${health.reason})` : ''}`);
      reasons.push(...life.notReadyReasons());
      return { ready: reasons.length === 0, reasons };
    },
    status: () => ({
      drain: life.drainStatus(),
      sessions: sessions.count(),
      rtpengine: { upstream: upstreamName, up: health.up, reason: health.reason, sessionsOwn: reconciler.sessionsOwn, sessionsTotal: reconciler.sessionsTotal, lastReconcileAt: reconciler.lastReconcileAt },
      inFlight: core.inflight.size,
      replyCache: { entries: cache.size, bytes: cache.bytes },
      listeners: p.addresses,
    }),
    reconcile: () => reconciler.reconcile(),
    upstreamGone: (reason) => health.hold(reason),
    upstreamBack: () => health.release(),
    async close() {
      if (core.closed) return;
      core.closed = true;
      health.close();
      reconciler.close();
      p.unfollow();
      if (!p.deps.lifecycle) life.close();
      cache.close();
      await Promise.all(p.sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
      if (p.ownsUpstream) p.upstream.close();
      p.log.info({ inFlight: core.inflight.size }, 'ng proxy closed');
    },
  };
}
