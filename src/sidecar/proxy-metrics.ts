// Prometheus metrics of the ng proxy, registered on the process registry. Label values are
// bounded (known ng commands, known results); children are cached so the hot path does no
// label hashing.
import { Counter, Gauge, type Registry } from 'prom-client';
import { METRIC_PREFIX } from '../metrics.js';
import type { DrainPhase } from './drain.js';
import { NG_COMMANDS } from '../ng/types.js';

const COMMANDS: ReadonlySet<string> = new Set(NG_COMMANDS);

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
  /** A draining proxy asked rtpengine (`query`) about a call-id its registry lacked. */
  drainProbe(outcome: DrainProbeOutcome): void;
}

/** found: the call is on rtpengine (forwarded); unknown: it is not (refused); failed: no answer. */
export type DrainProbeOutcome = 'found' | 'unknown' | 'failed';

const ORIGINS: ReplyOrigin[] = ['rtpengine', 'proxy', 'cache'];
interface Counted { labels: { command: string; result: string; origin: string }; n: number }
interface Hist { counts: Float64Array; sum: number; count: number }
interface CommandChildren {
  label: string;
  hist: Hist;
  /** By raw result string (bounded results only) and by label: [rtpengine, proxy, cache]. */
  results: Map<string | undefined, Counted[]>;
  resultsByLabel: Map<string, Counted[]>;
}

export interface ProxyMetricsSources {
  /** Tracked calls (the registry), read at scrape time. */
  sessions: () => number;
  inFlight: () => number;
  replyCacheBytes: () => number;
}

const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const PHASES: DrainPhase[] = ['serving', 'draining', 'drained'];

/** Gauges read from the proxy at scrape time; returns the one set on reconciliation (sessions own). */
function registerGauges(registry: Registry, src: ProxyMetricsSources): Gauge {
  const p = METRIC_PREFIX;
  new Gauge({
    name: `${p}sessions`, help: 'Calls on this rtpengine as tracked by the proxy (reconciled with rtpengine list)',
    registers: [registry], collect() { this.set(src.sessions()); },
  });
  new Gauge({ name: `${p}ng_in_flight`, help: 'ng requests forwarded and not yet answered', registers: [registry], collect() { this.set(src.inFlight()); } });
  new Gauge({ name: `${p}ng_reply_cache_bytes`, help: 'Bytes held by the retransmission reply cache', registers: [registry], collect() { this.set(src.replyCacheBytes()); } });
  return new Gauge({
    name: `${p}rtpengine_sessions_own`, help: "rtpengine's own session count (statistics sessionsown, includes delete-delay) at the last reconciliation",
    registers: [registry],
  });
}

/** ng_requests_total as a custom collector over plain counters (read at scrape time only). */
function registerRequestCounter(registry: Registry, reqCounts: Counted[]): void {
  const name = `${METRIC_PREFIX}ng_requests_total`;
  const help = 'ng requests answered, by command, result and origin of the reply';
  registry.registerMetric({
    name: `${METRIC_PREFIX}ng_requests_total`, help, type: 'counter',
    get: async () => ({ name, help, type: 'counter', aggregator: 'sum',
      values: reqCounts.filter((c) => c.n > 0).map((c) => ({ labels: { ...c.labels }, value: c.n })) }),
    reset: () => { for (const c of reqCounts) c.n = 0; },
  } as never);
}

/** ng_request_duration_seconds as a custom collector over per-command bucket arrays. */
function registerLatency(registry: Registry, lat: Map<string, Hist>): void {
  const latName = `${METRIC_PREFIX}ng_request_duration_seconds`;
  const latHelp = 'Time from receiving an ng request to sending its reply';
  registry.registerMetric({
    name: `${METRIC_PREFIX}ng_request_duration_seconds`, help: latHelp, type: 'histogram',
    get: async () => {
      const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
      for (const [command, h] of lat) {
        if (h.count === 0) continue;
        let cum = 0;
        for (let i = 0; i < BUCKETS.length; i++) {
          cum += h.counts[i]!;
          values.push({ labels: { le: BUCKETS[i]!, command }, value: cum, metricName: `${latName}_bucket` });
        }
        values.push({ labels: { le: '+Inf', command }, value: h.count, metricName: `${latName}_bucket` });
        values.push({ labels: { command }, value: h.sum, metricName: `${latName}_sum` });
        values.push({ labels: { command }, value: h.count, metricName: `${latName}_count` });
      }
      return { name: latName, help: latHelp, type: 'histogram', aggregator: 'sum', values };
    },
    reset: () => { for (const h of lat.values()) { h.counts.fill(0); h.sum = 0; h.count = 0; } },
  } as never);
}

/**
 * Requests and latency are counted in plain objects on the hot path and handed to prom-client
 * only at scrape time (custom collectors): no label hashing per request. Children are bound
 * lazily per command and per result, looked up by the raw strings (bounded: unknown commands
 * and results share the `other` child and are not remembered), origin by array index.
 */
class ProxyMetricsImpl implements ProxyMetrics {
  private readonly reqCounts: Counted[] = [];
  private readonly lat = new Map<string, Hist>();
  private readonly byLabel = new Map<string, CommandChildren>();
  private readonly byCommand = new Map<string | undefined, CommandChildren>();
  private readonly own: Gauge;
  private readonly timeouts: Counter;
  private readonly drops: Counter<'reason'>;
  private readonly drain: Gauge<'phase'>;
  private readonly probes: Counter<'outcome'>;
  private readonly up: Gauge;

  constructor(registry: Registry, src: ProxyMetricsSources) {
    const p = METRIC_PREFIX;
    this.own = registerGauges(registry, src);
    registerRequestCounter(registry, this.reqCounts);
    registerLatency(registry, this.lat);
    this.timeouts = new Counter({ name: `${p}ng_upstream_timeouts_total`, help: 'Forwarded ng requests rtpengine did not answer within the retry budget', registers: [registry] });
    this.drops = new Counter({ name: `${p}ng_dropped_datagrams_total`, help: 'ng datagrams not answered, by reason', labelNames: ['reason'] as const, registers: [registry] });
    this.drain = new Gauge({ name: `${p}drain_state`, help: 'Drain phase: 1 for the current phase', labelNames: ['phase'] as const, registers: [registry] });
    this.probes = new Counter({ name: `${p}ng_drain_probes_total`, help: 'While draining: query probes for call-ids the session registry lacked, by outcome', labelNames: ['outcome'] as const, registers: [registry] });
    this.up = new Gauge({ name: `${p}rtpengine_up`, help: '1 while rtpengine answers pings', registers: [registry] });
    for (const r of ['no_cookie', 'source_denied', 'retransmission_in_flight', 'send_failed']) this.drops.labels(r).inc(0);
    this.timeouts.inc(0);
    for (const o of ['found', 'unknown', 'failed']) this.probes.labels(o).inc(0);
    this.drainPhase('serving');
  }

  /** The hot path: two map lookups, one increment, one bucket search. */
  request(command: string | undefined, result: string | undefined, origin: ReplyOrigin, seconds: number): void {
    const c = this.children(command);
    let rs = c.results.get(result);
    if (!rs) {
      const label = resultLabel(result);
      rs = this.resultChildren(c, label);
      if (label !== 'other') c.results.set(result, rs);
    }
    rs[origin === 'rtpengine' ? 0 : origin === 'proxy' ? 1 : 2]!.n++;
    const h = c.hist;
    h.sum += seconds;
    h.count++;
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) { h.counts[i]!++; break; }
  }

  private children(command: string | undefined): CommandChildren {
    let c = this.byCommand.get(command);
    if (c) return c;
    const label = commandLabel(command);
    c = this.byLabel.get(label);
    if (!c) {
      const hist: Hist = { counts: new Float64Array(BUCKETS.length), sum: 0, count: 0 };
      this.lat.set(label, hist);
      c = { label, hist, results: new Map(), resultsByLabel: new Map() };
      this.byLabel.set(label, c);
    }
    if (label !== 'other') this.byCommand.set(command, c); // raw keys only for the bounded set
    return c;
  }

  private resultChildren(c: CommandChildren, label: string): Counted[] {
    let rs = c.resultsByLabel.get(label);
    if (!rs) {
      rs = ORIGINS.map((origin) => ({ labels: { command: c.label, result: label, origin }, n: 0 }));
      for (const x of rs) this.reqCounts.push(x);
      c.resultsByLabel.set(label, rs);
    }
    return rs;
  }

  dropped(reason: DropReason): void { this.drops.labels(reason).inc(); }
  upstreamTimeout(): void { this.timeouts.inc(); }
  drainPhase(ph: DrainPhase): void { for (const x of PHASES) this.drain.labels(x).set(x === ph ? 1 : 0); }
  upstreamUp(u: boolean): void { this.up.set(u ? 1 : 0); }
  upstreamSessions(n: number): void { this.own.set(n); }
  drainProbe(o: DrainProbeOutcome): void { this.probes.labels(o).inc(); }
}

export function createProxyMetrics(registry: Registry, src: ProxyMetricsSources): ProxyMetrics {
  return new ProxyMetricsImpl(registry, src);
}
