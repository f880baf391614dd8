// A lost lease (#15 defect 5): Renew answered NOT_FOUND, so the allocator reclaimed our table and IP
// and may have given them to the next pod. New calls stop at once (drain gate); if re-acquiring gets
// the same table and IP we serve again, otherwise we end after our calls, leaving its rules alone.
import { Counter } from 'prom-client';
import { METRIC_PREFIX } from '../metrics.js';
import { acquireWithRetry, keepLease } from './acquire.js';
import type { StartContext } from './startup.js';
import type { AllocationView } from '../allocator/wire.js';

const sameAllocation = (a: AllocationView, b: AllocationView): boolean =>
  a.table === b.table && JSON.stringify(a.addresses.map((x) => x.ip).sort()) === JSON.stringify(b.addresses.map((x) => x.ip).sort());

/** Keeps the lease of ctx.allocation; a loss is handled as above. stop() ends the renewals. */
export function leaseKeeper(ctx: StartContext): { stop(): void } {
  const { cfg, log } = ctx;
  const adeps = { allocator: ctx.allocator, clock: ctx.clock, log };
  const lost = new Counter({ name: `${METRIC_PREFIX}sidecar_lease_lost_total`, help: 'leases the allocator reclaimed under this sidecar, by outcome (restored: the same table and IP again; lost: not)', labelNames: ['outcome'], registers: [ctx.registry] });
  let current = { stop() {} };
  let stopped = false;
  const keep = (a: AllocationView) => { current = keepLease(adeps, cfg.podUid, a.leaseTtlMs, a, (e) => { onLost(e).catch((err: unknown) => log.error({ pod: ctx.pod, err: (err as Error).message }, 'handling the lost lease failed')); }); };
  const onLost = async (e: Error) => {
    const held = ctx.allocation!;
    log.error({ pod: ctx.pod, table: held.table, mediaIps: ctx.mediaIps, err: e.message }, 'lease lost: the allocator reclaimed this pod\'s table and IP; new calls refused at once, re-acquiring');
    ctx.life.requestDrain({ trigger: 'lease lost' });
    let again: AllocationView | undefined;
    try {
      const podRef = { namespace: cfg.podNamespace, name: cfg.podName, uid: cfg.podUid };
      again = await acquireWithRetry(adeps, { pod: podRef, pools: cfg.pools.length ? cfg.pools : undefined, interface: cfg.mediaInterface },
        { timeoutMs: cfg.acquireTimeoutSeconds * 1000, initialDelayMs: 200, maxDelayMs: 5000 }, ctx.signal);
    } catch (err) {
      log.error({ pod: ctx.pod, err: (err as Error).message }, 'could not re-acquire after losing the lease');
    }
    if (stopped) return;
    if (again && sameAllocation(again, held) && ctx.life.resumeAfterLease()) {
      lost.inc({ outcome: 'restored' });
      ctx.record('lease', 'done', `lost, then re-acquired the same table ${again.table} and IP`);
      keep(again);
      return;
    }
    lost.inc({ outcome: 'lost' });
    // The table (and its chain name) may be the next pod's now: our teardown must not remove its rules.
    ctx.allocationLost = true;
    if (again) ctx.allocation = again; // held under our UID now: Release at the end frees it
    ctx.record('lease', 'failed', again ? `lost; the allocator offered table ${again.table} instead: ending after the calls` : 'lost and not re-acquired: ending after the calls');
    log.error({ pod: ctx.pod, table: held.table, offered: again?.table }, 'lease lost for good: not ready, ending once the calls have ended');
    ctx.life.terminate('lease lost');
  };
  keep(ctx.allocation!);
  return { stop() { stopped = true; current.stop(); } };
}
