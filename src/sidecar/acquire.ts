// Acquire this pod's table + media IP from the node's allocator with bounded retries and backoff
// (logging what it waits for), keep the lease renewed, and release it on exit. The allocator is
// idempotent per pod UID, so a restarted sidecar gets the same table and IP back.
import type { AllocatorClient, AcquireRequest } from '../allocator/client.js';
import type { AllocationView } from '../allocator/wire.js';
import type { Clock, Timer } from '../clock.js';
import type { Logger } from '../log.js';
import { SidecarError, isCoded, type ErrorCode } from '../errors.js';
import { backoff, type BackoffPolicy } from '../backoff.js';

export type AllocatorPort = Pick<AllocatorClient, 'acquire' | 'renew' | 'release' | 'target'>;

/** Errors that cannot heal by waiting: a wrong request is wrong every time. */
const PERMANENT: ReadonlySet<ErrorCode> = new Set(['ALLOC_INVALID_ARGUMENT', 'ALLOC_UNKNOWN_POOL', 'ALLOC_POOL_INVALID', 'ALLOC_STATE_VERSION']);

export interface RetryPolicy extends BackoffPolicy {
  /** Give up after this long in total (ms). */
  timeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { timeoutMs: 120_000, initialDelayMs: 200, maxDelayMs: 5000 };

/** The one backoff (src/backoff.ts), ±20 % jitter by default so a node full of restarting sidecars does not stampede. */
export { backoff };

export interface AcquireDeps { allocator: AllocatorPort; clock: Clock; log: Logger }

export async function acquireWithRetry(deps: AcquireDeps, req: AcquireRequest, policy: RetryPolicy = DEFAULT_RETRY, signal?: AbortSignal): Promise<AllocationView> {
  const { allocator, clock, log } = deps;
  const start = clock.monotonic();
  const facts = { pod: `${req.pod.namespace}/${req.pod.name}`, uid: req.pod.uid, allocator: allocator.target };
  for (let attempt = 1; ; attempt++) {
    try {
      const a = await allocator.acquire(req);
      log.info({ ...facts, attempt, table: a.table, addresses: a.addresses.map((x) => `${x.ip}/${x.prefixLength}`), state: a.state, ms: Math.round(clock.monotonic() - start) }, 'allocation acquired');
      return a;
    } catch (e) {
      const code = isCoded(e) ? e.code : undefined;
      const reason = (e as Error).message;
      const elapsed = clock.monotonic() - start;
      if ((code && PERMANENT.has(code)) || !isCoded(e)) throw e;
      const wait = backoff(attempt, policy);
      if (signal?.aborted || elapsed + wait > policy.timeoutMs) {
        throw new SidecarError('SIDECAR_ACQUIRE_FAILED', { pod: facts.pod, attempts: attempt, elapsedS: Math.round(elapsed / 100) / 10, reason, code }, { cause: e });
      }
      log.warn({ ...facts, attempt, waitingFor: code, reason, retryInMs: wait }, 'allocator not ready to give us a table yet; retrying');
      await clock.sleep(wait, signal);
    }
  }
}

/** Renews the lease every third of its TTL (sending the allocation held); failures are logged and retried at the next tick. */
export function keepLease(deps: AcquireDeps, uid: string, leaseTtlMs: number, held?: AllocationView, onLost?: (e: Error) => void): { stop(): void } {
  const every = Math.max(1000, Math.floor(leaseTtlMs / 3));
  let timer: Timer | undefined;
  let stopped = false;
  const tick = async () => {
    try {
      // What we hold travels along: an allocator that lost it with a damaged state file re-adopts it.
      await deps.allocator.renew(uid, held);
    } catch (e) {
      // NOT_FOUND: the allocator reclaimed it (after a pause); the table and IP may be the next pod's (#15 defect 5).
      if (onLost && isCoded(e, 'ALLOC_NOT_FOUND')) { stopped = true; onLost(e as Error); return; }
      deps.log.warn({ uid, err: (e as Error).message, retryInMs: every }, 'lease renewal failed');
    }
    if (!stopped) timer = deps.clock.setTimeout(() => void tick(), every);
  };
  if (leaseTtlMs > 0) timer = deps.clock.setTimeout(() => void tick(), every);
  return { stop() { stopped = true; timer?.cancel(); } };
}

/** Release; failures are logged (the allocator reclaims allocations of pods that are gone). */
export async function releaseAllocation(deps: AcquireDeps, uid: string, reason: string): Promise<boolean> {
  try {
    const r = await deps.allocator.release({ uid }, reason);
    deps.log.info({ uid, found: r.found, reason }, 'allocation released');
    return r.found;
  } catch (e) {
    deps.log.warn({ uid, err: (e as Error).message }, 'release failed; the allocator will reclaim the allocation when the pod is gone');
    return false;
  }
}
