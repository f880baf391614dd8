// The pod's controller.kubernetes.io/pod-deletion-cost from the session count: bucketed (0, then
// powers of two), written only when the bucket changes and at most once per interval (every write
// is an API call), dropped to the minimum at once on drain. Failures are logged, never fatal.
import type { KubePort } from '../kube/client.js';
import type { Clock, Timer } from '../clock.js';
import type { Logger } from '../log.js';
import { Counter, type Registry } from 'prom-client';
import { METRIC_PREFIX } from '../metrics.js';

export const DELETION_COST_ANNOTATION = 'controller.kubernetes.io/pod-deletion-cost';
/** The lowest value the API accepts (int32): a draining pod is the first a scale-in removes. */
export const MIN_DELETION_COST = -2147483648;

/** 0 → 0; otherwise the largest power of two ≤ sessions (1, 2, 4, 8, …), capped below 2^31. */
export function bucket(sessions: number): number {
  if (!Number.isFinite(sessions) || sessions < 1) return 0;
  return 2 ** Math.min(30, Math.floor(Math.log2(sessions)));
}

export interface DeletionCostDeps {
  kube: Pick<KubePort, 'patchPodAnnotations'>;
  namespace: string;
  pod: string;
  clock: Clock;
  log: Logger;
  /** Minimum time between two writes (ms). */
  intervalMs: number;
  registry?: Registry;
}

export class DeletionCost {
  private desired: number | undefined;
  private written: number | undefined;
  private lastAttempt = -Infinity;
  private timer: Timer | undefined;
  private inFlight: Promise<void> | undefined;
  private draining = false;
  private closed = false;
  private readonly patches?: Counter<'result'>;

  constructor(private readonly d: DeletionCostDeps) {
    if (d.registry) {
      this.patches = new Counter({ name: `${METRIC_PREFIX}deletion_cost_patches_total`, help: 'pod-deletion-cost annotation writes by result', labelNames: ['result'], registers: [d.registry] });
    }
  }

  /** The value last written successfully (undefined before the first). */
  get current(): number | undefined { return this.written; }

  /** Called on every session-count change; cheap, writes happen later if at all. */
  update(sessions: number): void {
    if (this.draining || this.closed) return;
    this.desired = bucket(sessions);
    this.schedule();
  }

  /** Minimum at once, bypassing the rate limit; later updates are ignored. */
  drain(): Promise<void> {
    this.draining_ ??= this.doDrain();
    return this.draining_;
  }

  private draining_: Promise<void> | undefined;

  private async doDrain(): Promise<void> {
    if (this.closed) return;
    this.draining = true;
    this.cancelTimer();
    await this.inFlight;
    this.cancelTimer(); // the write just finished may have scheduled one
    this.desired = MIN_DELETION_COST;
    if (this.written !== MIN_DELETION_COST) await this.write(MIN_DELETION_COST);
  }

  /** Stops timers; waits for a write in flight. */
  async close(): Promise<void> {
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
    await this.inFlight;
  }

  private cancelTimer(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.closed || this.desired === undefined || this.desired === this.written || this.timer || this.inFlight) return;
    const wait = Math.max(0, this.lastAttempt + this.d.intervalMs - this.d.clock.monotonic());
    this.timer = this.d.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.desired !== undefined && this.desired !== this.written) void this.write(this.desired);
    }, wait);
  }

  private write(value: number): Promise<void> {
    this.lastAttempt = this.d.clock.monotonic();
    const facts = { pod: this.d.pod, namespace: this.d.namespace, cost: value, previous: this.written };
    const p = this.d.kube.patchPodAnnotations(this.d.namespace, this.d.pod, { [DELETION_COST_ANNOTATION]: String(value) }).then(
      () => { this.written = value; this.patches?.inc({ result: 'ok' }); this.d.log.info(facts, 'pod-deletion-cost updated'); },
      (e: unknown) => { this.patches?.inc({ result: 'error' }); this.d.log.warn({ ...facts, err: (e as Error).message, retryInMs: this.d.intervalMs }, 'pod-deletion-cost update failed; will retry'); },
    ).finally(() => {
      this.inFlight = undefined;
      this.schedule();
    });
    this.inFlight = p;
    return p;
  }
}
