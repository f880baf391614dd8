// Reconciliation with rtpengine: its own session count (statistics) feeds the drain, its call list
// (`list`) corrects the registry. One run at a time; callers asking meanwhile share the next run.
import type { Clock, Timer } from '../clock.js';
import type { Logger } from '../log.js';
import { NgError } from '../errors.js';
import { decodeDict, str } from '../ng/codec.js';
import type { NgUpstream } from '../ng/types.js';
import type { SessionRegistry } from './sessions.js';
import type { SidecarLifecycle } from './lifecycle.js';

const STATISTICS = Buffer.from('d7:command10:statisticse');

const num = (v: unknown): number | undefined => {
  if (typeof v === 'number') return v;
  const s = str(v as never);
  return s !== undefined && s !== '' && Number.isFinite(Number(s)) ? Number(s) : undefined;
};

export interface ReconcilerOptions {
  upstream: NgUpstream;
  sessions: SessionRegistry;
  life: SidecarLifecycle;
  clock: Clock;
  log: Logger;
  /** `list` only while rtpengine holds at most this many calls. */
  listMax: number;
  intervalMs: number;
  /** The interval while draining. */
  drainPollMs: number;
  onSessionsOwn(own: number): void;
}

export class Reconciler {
  sessionsOwn: number | undefined;
  sessionsTotal: number | undefined;
  lastReconcileAt: number | undefined;
  private running: Promise<void> | undefined;
  private again: Promise<void> | undefined;
  private timer: Timer | undefined;
  private closed = false;

  constructor(private readonly o: ReconcilerOptions) {}

  /** A reconciliation that starts now, or right after the one running (callers share it). */
  reconcile(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.running) {
      this.again ??= this.running.then(() => { this.again = undefined; return this.reconcile(); });
      return this.again;
    }
    this.running = this.once()
      .catch((e: unknown) => this.o.log.warn({ err: (e as Error).message }, 'reconciliation with rtpengine failed'))
      .finally(() => { this.running = undefined; });
    return this.running;
  }

  /** Reconcile now and then on the timer (at the drain rate while draining). */
  now(): void {
    this.timer?.cancel();
    void this.reconcile().then(() => this.schedule());
  }

  schedule(): void {
    // One timer at a time: now() and the timer chain may both reschedule after a shared run.
    this.timer?.cancel();
    if (this.closed) return;
    const ms = this.o.life.drainPhase === 'draining' ? this.o.drainPollMs : this.o.intervalMs;
    this.timer = this.o.clock.setTimeout(() => this.now(), ms);
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
  }

  private async once(): Promise<void> {
    const { upstream, sessions, life } = this.o;
    const startedAt = this.o.clock.monotonic();
    // A count asked for before the drain began can predate calls created since: only a reading
    // taken while draining may end the drain.
    const drainingAtStart = life.drainPhase === 'draining';
    const st = decodeDict((await upstream.request(STATISTICS)).reply);
    const cur = (st.statistics as Record<string, unknown> | undefined)?.currentstatistics as Record<string, unknown> | undefined;
    const own = num(cur?.sessionsown);
    const total = num(cur?.sessionstotal);
    if (own === undefined) throw new NgError('NG_BAD_REPLY', { reason: 'statistics reply lacks currentstatistics.sessionsown' });
    this.sessionsOwn = own;
    this.sessionsTotal = total;
    this.o.onSessionsOwn(own);
    if (total !== undefined && total <= this.o.listMax) {
      const lr = decodeDict((await upstream.request(Buffer.from(`d7:command4:list5:limiti${total + 100}ee`))).reply);
      if (str(lr.result) === 'ok' && Array.isArray(lr.calls)) {
        const ids = lr.calls.map((c) => str(c)).filter((c): c is string => c !== undefined);
        const res = sessions.reconcile(ids, startedAt);
        if (res.added || res.removed) this.o.log.info({ ...res, sessionsOwn: own }, 'sessions reconciled with rtpengine list');
      }
    }
    this.lastReconcileAt = this.o.clock.now();
    if (drainingAtStart) life.observeSessions(own);
  }
}
