// Prometheus metrics of the ng proxy, registered on the process registry. Label values are
// bounded (known ng commands, known results); children are cached so the hot path does no
// label hashing.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { METRIC_PREFIX } from '../metrics.js';
import type { DrainPhase } from './drain.js';

const COMMANDS = new Set([
  'ping', 'offer', 'answer', 'delete', 'query', 'list', 'statistics', 'start recording', 'stop recording',
  'pause recording', 'block DTMF', 'unblock DTMF', 'block media', 'unblock media', 'silence media',
  'unsilence media', 'start forwarding', 'stop forwarding', 'play media', 'stop media', 'play DTMF',
  'publish', 'subscribe request', 'subscribe answer', 'unsubscribe', 'inject start', 'inject stop',
  'connect', 'create', 'create answer', 'mesh', 'transform', 'cli',
]);

/** Where a reply came from: rtpengine (forwarded), the proxy itself (gate, bad input, upstream
 *  failure), or the reply cache (a late retransmission). */
export type ReplyOrigin = 'rtpengine' | 'proxy' | 'cache';

export type DropReason = 'no_cookie' | 'source_denied' | 'retransmission_in_flight' | 'send_failed';

export const commandLabel = (c: string | undefined): string => (c === undefined ? 'none' : COMMANDS.has(c) ? c : 'other');
export const resultLabel = (r: string | undefined): string => {
  switch (r) {
    case 'ok': case 'error': case 'pong': return r;
    case 'load limit': return 'load_limit';
    case undefined: return 'none';
    default: return 'other';
  }
};

export interface ProxyMetrics {
  request(command: string | undefined, result: string | undefined, origin: ReplyOrigin, seconds: number): void;
  dropped(reason: DropReason): void;
  upstreamTimeout(): void;
  drainPhase(p: DrainPhase): void;
  upstreamUp(up: boolean): void;
  upstreamSessions(own: number): void;
}

export interface ProxyMetricsSources {
  /** Tracked calls (the registry), read at scrape time. */
  sessions: () => number;
  inFlight: () => number;
  replyCacheBytes: () => number;
}

export function createProxyMetrics(registry: Registry, src: ProxyMetricsSources): ProxyMetrics {
  const p = METRIC_PREFIX;
  new Gauge({
    name: `${p}sessions`, help: 'Calls on this rtpengine as tracked by the proxy (reconciled with rtpengine list)',
    registers: [registry], collect() { this.set(src.sessions()); },
  });
  const own = new Gauge({
    name: `${p}rtpengine_sessions_own`, help: "rtpengine's own session count (statistics sessionsown, includes delete-delay) at the last reconciliation",
    registers: [registry],
  });
  new Gauge({ name: `${p}ng_in_flight`, help: 'ng requests forwarded and not yet answered', registers: [registry], collect() { this.set(src.inFlight()); } });
  new Gauge({ name: `${p}ng_reply_cache_bytes`, help: 'Bytes held by the retransmission reply cache', registers: [registry], collect() { this.set(src.replyCacheBytes()); } });
  const requests = new Counter({
    name: `${p}ng_requests_total`, help: 'ng requests answered, by command, result and origin of the reply',
    labelNames: ['command', 'result', 'origin'] as const, registers: [registry],
  });
  const latency = new Histogram({
    name: `${p}ng_request_duration_seconds`, help: 'Time from receiving an ng request to sending its reply',
    labelNames: ['command'] as const, registers: [registry],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  const timeouts = new Counter({ name: `${p}ng_upstream_timeouts_total`, help: 'Forwarded ng requests rtpengine did not answer within the retry budget', registers: [registry] });
  const drops = new Counter({ name: `${p}ng_dropped_datagrams_total`, help: 'ng datagrams not answered, by reason', labelNames: ['reason'] as const, registers: [registry] });
  const drain = new Gauge({ name: `${p}drain_state`, help: 'Drain phase: 1 for the current phase', labelNames: ['phase'] as const, registers: [registry] });
  const up = new Gauge({ name: `${p}rtpengine_up`, help: '1 while rtpengine answers pings', registers: [registry] });

  for (const r of ['no_cookie', 'source_denied', 'retransmission_in_flight', 'send_failed']) drops.labels(r).inc(0);
  timeouts.inc(0);

  const reqChildren = new Map<string, ReturnType<typeof requests.labels>>();
  const latChildren = new Map<string, ReturnType<typeof latency.labels>>();
  const phases: DrainPhase[] = ['serving', 'draining', 'drained'];
  const m: ProxyMetrics = {
    request(command, result, origin, seconds) {
      const c = commandLabel(command);
      const key = `${c}\0${result}\0${origin}`;
      let child = reqChildren.get(key);
      if (!child) { child = requests.labels(c, resultLabel(result), origin); reqChildren.set(key, child); }
      child.inc();
      let h = latChildren.get(c);
      if (!h) { h = latency.labels(c); latChildren.set(c, h); }
      h.observe(seconds);
    },
    dropped(reason) { drops.labels(reason).inc(); },
    upstreamTimeout() { timeouts.inc(); },
    drainPhase(ph) { for (const x of phases) drain.labels(x).set(x === ph ? 1 : 0); },
    upstreamUp(u) { up.set(u ? 1 : 0); },
    upstreamSessions(n) { own.set(n); },
  };
  m.drainPhase('serving');
  return m;
}
