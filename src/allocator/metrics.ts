// Allocator metrics on the process registry: tables and pool addresses in use/free (read from
// the service at scrape time), Acquire latency, reclaims and kernel table cleanups.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { METRIC_PREFIX } from '../metrics.js';
import type { AllocatorService, RecoveryCounts } from './service.js';

export interface AllocatorMetrics {
  observeAcquire(seconds: number, outcome: string): void;
  reclaim(reason: string): void;
  /** Kubernetes mode: an IPPool entry or Lease of a vanished node freed by the node sweeper. */
  swept(f: { kind: string }): void;
  cleanup(result: string): void;
  recovery(counts: RecoveryCounts): void;
  readopt(): void;
  /** A connection closed at once because --max-connections were open. */
  connectionRefused(): void;
  attach(service: AllocatorService): void;
}

export function allocatorMetrics(registry: Registry): AllocatorMetrics {
  let svc: AllocatorService | undefined;
  new Gauge({
    name: `${METRIC_PREFIX}allocator_tables`, help: 'Kernel table IDs in the configured range, by state (in_use = held by an allocation, free = neither held nor listed in /proc/rtpengine)',
    labelNames: ['state'], registers: [registry],
    collect() {
      if (!svc) return;
      this.set({ state: 'in_use' }, svc.tablesInUse());
      this.set({ state: 'free' }, svc.tablesFree());
    },
  });
  new Gauge({
    name: `${METRIC_PREFIX}allocator_pool_addresses`, help: 'Media addresses per pool, by state (in_use includes addresses held by others, e.g. whereabouts)',
    labelNames: ['pool', 'state'], registers: [registry],
    collect() {
      if (!svc) return;
      for (const p of svc.poolStats()) {
        this.set({ pool: p.pool, state: 'in_use' }, p.inUse);
        this.set({ pool: p.pool, state: 'free' }, p.free);
      }
    },
  });
  const acquire = new Histogram({
    name: `${METRIC_PREFIX}allocator_acquire_duration_seconds`, help: 'Acquire handling time (persisted before the reply)',
    labelNames: ['outcome'], buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: [registry],
  });
  const reclaims = new Counter({ name: `${METRIC_PREFIX}allocator_reclaims_total`, help: 'Allocations reclaimed without a Release', labelNames: ['reason'], registers: [registry] });
  const swept = new Counter({ name: `${METRIC_PREFIX}allocator_swept_total`, help: 'Kubernetes mode: objects of nodes that no longer exist freed by the node sweeper (the leader allocator), by kind (lease, ippool-entry)', labelNames: ['kind'], registers: [registry] });
  const cleanups = new Counter({ name: `${METRIC_PREFIX}allocator_table_cleanups_total`, help: "Results of 'del N' on /proc/rtpengine/control (ok, absent, busy, failed)", labelNames: ['result'], registers: [registry] });
  const recoveries = new Counter({ name: `${METRIC_PREFIX}allocator_state_recoveries_total`, help: 'Starts from the previous generation of a damaged state file (alert on any)', registers: [registry] });
  const recovered = new Gauge({
    name: `${METRIC_PREFIX}allocator_state_recovery_allocations`, help: 'At the last start from a previous generation: allocations recovered, dropped (readable only in the damaged file), kernel tables held by daemons with no record, and allocations re-adopted since from their sidecars\' renewals',
    labelNames: ['outcome'], registers: [registry],
  });
  const refusedConns = new Counter({ name: `${METRIC_PREFIX}allocator_connections_refused_total`, help: 'Connections to the allocator socket closed at once because --max-connections were already open (a local caller holding connections?)', registers: [registry] });
  return {
    connectionRefused: () => refusedConns.inc(),
    readopt: () => recovered.inc({ outcome: 'readopted' }),
    recovery: (c) => {
      recovered.set({ outcome: 'readopted' }, 0);
      recoveries.inc();
      recovered.set({ outcome: 'recovered' }, c.recovered);
      recovered.set({ outcome: 'dropped' }, c.dropped);
      recovered.set({ outcome: 'unknown_kernel_table' }, c.unknownKernelTables);
    },
    observeAcquire: (s, outcome) => acquire.observe({ outcome }, s),
    reclaim: (reason) => reclaims.inc({ reason }),
    swept: (f) => swept.inc({ kind: f.kind }),
    cleanup: (result) => cleanups.inc({ result }),
    attach: (s) => { svc = s; },
  };
}
