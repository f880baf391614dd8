// The sidecar's one lifecycle: starting → serving → draining → drained → lingering → stopping →
// stopped, with the drain (deadline, rtpengine down, 0 sessions), `terminating`, the linger and the
// drained marker. Driven by events only; the proxy reads `draining` for its gate (docs/sidecar.md).
import { EventEmitter } from 'node:events';
import type { Clock, Timer } from '../clock.js';
import type { Logger } from '../log.js';

export type Phase = 'starting' | 'serving' | 'draining' | 'drained' | 'lingering' | 'stopping' | 'stopped';
export type DrainPhase = 'serving' | 'draining' | 'drained';
/** empty: rtpengine holds 0 calls. deadline: time ran out. upstream-down: rtpengine stopped
 *  answering for `upstreamDownMs` while draining (its calls are gone or unreachable). */
export type DrainOutcome = 'empty' | 'deadline' | 'upstream-down';

export interface DrainStatus {
  phase: DrainPhase;
  /** Wall-clock ms (epoch) of the transitions, for operators. */
  startedAt?: number;
  deadlineAt?: number;
  completedAt?: number;
  outcome?: DrainOutcome;
  /** What asked for the drain: 'http', 'signal', 'cli', 'api', 'lease lost', … */
  trigger?: string;
  /** rtpengine's own session count at the last observation while draining. */
  sessionsLeft?: number;
}

export interface LifecycleStatus {
  phase: Phase;
  /** SIGTERM (or a fault that ends the sidecar) received: it ends after the drain and the linger. */
  terminating: boolean;
  drain: DrainStatus;
  /** True from the moment the drain completed: what kamailio-sync waits for (ADR 0041). */
  drainComplete: boolean;
  /** Epoch ms when the linger ends (terminating and drained). */
  lingerUntil?: number;
  /** The drained marker that keeps this pod drained across restarts, when written. */
  drainedMarker?: string;
  /** Why the sidecar stops, and with what exit code (set on entering `stopping`). */
  stop?: StopRequest;
}

export interface StopRequest { why: string; code: number }

export interface LifecycleOptions {
  clock: Clock;
  log: Logger;
  /** Default drain deadline (ms) when a trigger gives none. */
  drainDeadlineMs: number;
  /** How long a terminating sidecar keeps answering after its drain completed (ms). */
  lingerMs: number;
  /** While draining, rtpengine down this long ends the drain (default 60 s; Infinity: never). */
  upstreamDownMs?: number;
  /** Persists a drain on a pod that is not terminating (resolves with the marker's path). */
  writeMarker?: (trigger: string) => Promise<string>;
}

/** Triggers whose drain is not persisted: the pod may serve again after a restart. */
const TRANSIENT_TRIGGERS: ReadonlySet<string> = new Set(['lease lost']);

/**
 * Emits 'phase' (LifecycleStatus) on every change of phase or drain state, and 'stop'
 * (StopRequest) once, when the sidecar should tear down. Every method is idempotent.
 */
export class SidecarLifecycle extends EventEmitter {
  private ph: Phase = 'starting';
  private term = false;
  private dr: DrainStatus = { phase: 'serving' };
  private lingerUntil: number | undefined;
  private marker: string | undefined;
  private markerWrite: Promise<void> | undefined;
  private stopReq: StopRequest | undefined;
  private upstreamIsDown = false;
  private deadlineTimer: Timer | undefined;
  private downTimer: Timer | undefined;
  private lingerTimer: Timer | undefined;
  private drainWaiters: Array<(s: DrainStatus) => void> = [];
  private stopWaiters: Array<(s: StopRequest) => void> = [];
  private readonly upstreamDownMs: number;

  constructor(private readonly o: LifecycleOptions) {
    super();
    this.upstreamDownMs = o.upstreamDownMs ?? 60_000;
  }

  get phase(): Phase { return this.ph; }
  get terminating(): boolean { return this.term; }
  /** The proxy's gate: new calls are refused from the moment a drain is asked for. */
  get draining(): boolean { return this.dr.startedAt !== undefined; }
  get drainPhase(): DrainPhase { return this.dr.phase; }

  status(): LifecycleStatus {
    return {
      phase: this.ph, terminating: this.term, drain: { ...this.dr }, drainComplete: this.dr.completedAt !== undefined,
      ...(this.lingerUntil !== undefined ? { lingerUntil: this.lingerUntil } : {}),
      ...(this.marker ? { drainedMarker: this.marker } : {}), ...(this.stopReq ? { stop: this.stopReq } : {}),
    };
  }

  /** Readiness reasons from the lifecycle alone (empty: it would take new calls). */
  notReadyReasons(): string[] {
    if (this.ph === 'serving' && !this.draining) return [];
    return [this.draining ? `draining (${this.dr.phase}${this.dr.trigger ? `, by ${this.dr.trigger}` : ''})` : `sidecar ${this.ph}`];
  }

  /** A drained marker found at start-up: this pod stays drained (no new marker is written). */
  restoreMarker(path: string): void { this.marker = path; }

  /** Start-up finished: serve, or go on with a drain asked for while starting. */
  serve(): void {
    if (this.ph !== 'starting') return;
    this.ph = this.dr.completedAt !== undefined ? 'drained' : this.draining ? 'draining' : 'serving';
    this.changed();
    if (this.term && !this.draining) this.requestDrain({ trigger: 'signal while starting' });
    else if (this.term && this.dr.completedAt !== undefined) this.enterLinger();
  }

  /** Start (or join) a drain. A second trigger keeps the first deadline unless it is earlier. */
  requestDrain(o: { deadlineMs?: number; trigger?: string } = {}): DrainStatus {
    if (this.ph === 'stopping' || this.ph === 'stopped' || this.dr.completedAt !== undefined) return this.drainStatus();
    const trigger = o.trigger ?? 'api';
    const ms = o.deadlineMs ?? this.o.drainDeadlineMs;
    const now = this.o.clock.now();
    if (this.draining) {
      if (now + ms < (this.dr.deadlineAt ?? Infinity)) {
        this.dr.deadlineAt = now + ms;
        this.armDeadline(ms);
        this.o.log.info({ deadlineAt: this.dr.deadlineAt, trigger }, 'drain deadline moved earlier');
      }
      return this.drainStatus();
    }
    this.dr = { phase: 'draining', startedAt: now, deadlineAt: now + ms, trigger };
    if (this.ph === 'serving') this.ph = 'draining';
    this.armDeadline(ms);
    if (this.upstreamIsDown) this.armDown();
    this.o.log.info({ deadlineMs: ms, trigger }, 'drain started: new calls refused, existing calls forwarded');
    if (!this.term && !TRANSIENT_TRIGGERS.has(trigger)) this.persist(trigger);
    this.changed();
    return this.drainStatus();
  }

  /** A drain asked for by a lost lease ends when the same allocation is had again. */
  resumeAfterLease(): boolean {
    if (this.term || this.dr.trigger !== 'lease lost' || this.dr.completedAt !== undefined) return false;
    this.clearDrainTimers();
    this.dr = { phase: 'serving' };
    if (this.ph === 'draining') this.ph = 'serving';
    this.o.log.info('lease restored with the same table and IP: serving again');
    this.changed();
    return true;
  }

  /** rtpengine's own session count (sessionsown, which includes delete-delay). */
  observeSessions(n: number): void {
    if (this.dr.phase !== 'draining') return;
    this.dr.sessionsLeft = n;
    if (n <= 0) this.completeDrain('empty');
  }

  /**
   * rtpengine's health. Down for `upstreamDownMs` while draining ends the drain: its userspace calls
   * are gone and kernel streams can no longer be signalled. Back up in time: the drain goes on.
   */
  upstream(up: boolean): void {
    this.upstreamIsDown = !up;
    if (this.dr.phase !== 'draining') return;
    if (!up) { this.armDown(); return; }
    if (this.downTimer) this.o.log.info('rtpengine answers again while draining: waiting for 0 sessions');
    this.downTimer?.cancel();
    this.downTimer = undefined;
  }

  /** SIGTERM: drain (or join the drain), linger, then stop. */
  terminate(trigger = 'signal'): void {
    if (this.term || this.ph === 'stopping' || this.ph === 'stopped') return;
    this.term = true;
    this.o.log.info({ trigger, phase: this.ph }, 'terminating: drain, linger, then stop');
    if (this.ph === 'starting') { if (!this.draining) this.requestDrain({ trigger }); this.changed(); return; }
    if (!this.draining) this.requestDrain({ trigger });
    else if (this.dr.completedAt !== undefined) this.enterLinger();
    else this.changed();
  }

  /** A fault that ends the sidecar now (no drain to wait for). */
  fail(why: string, code: number): void { this.requestStop(why, code); }

  /** The sidecar finished tearing down. */
  stopped(): void {
    if (this.ph === 'stopped') return;
    this.clearDrainTimers();
    this.lingerTimer?.cancel();
    this.ph = 'stopped';
    this.changed();
  }

  /** Resolves when the drain is complete (at once if it already is). */
  drained(): Promise<DrainStatus> {
    if (this.dr.completedAt !== undefined) return Promise.resolve(this.drainStatus());
    return new Promise((r) => this.drainWaiters.push(r));
  }

  /** Resolves when the sidecar should tear down. */
  stopRequested(): Promise<StopRequest> {
    if (this.stopReq) return Promise.resolve(this.stopReq);
    return new Promise((r) => this.stopWaiters.push(r));
  }

  /** Waits for a marker write in flight (tests, shutdown). */
  async settled(): Promise<void> { await this.markerWrite; }

  close(): void {
    this.clearDrainTimers();
    this.lingerTimer?.cancel();
    this.lingerTimer = undefined;
  }

  drainStatus(): DrainStatus { return { ...this.dr }; }

  private completeDrain(outcome: DrainOutcome): void {
    if (this.dr.phase !== 'draining') return;
    this.clearDrainTimers();
    this.dr = { ...this.dr, phase: 'drained', outcome, completedAt: this.o.clock.now() };
    if (this.ph === 'draining') this.ph = 'drained';
    this.o.log[outcome === 'empty' ? 'info' : 'warn']({ outcome, sessionsLeft: this.dr.sessionsLeft, elapsedMs: this.dr.completedAt! - this.dr.startedAt! }, 'drain complete');
    const s = this.drainStatus();
    for (const r of this.drainWaiters.splice(0)) r(s);
    if (this.term && this.ph !== 'starting') { this.enterLinger(); return; }
    if (this.ph === 'drained') {
      this.o.log.info({ outcome, trigger: this.dr.trigger },
        'drain complete on a pod that is not terminating: staying up drained (pong to pings, load limit to new calls); kamailio-sync removes the node; delete the pod to end it');
    }
    this.changed();
  }

  /** Keep answering until Kamailio has dropped this node (ADR 0041). */
  private enterLinger(): void {
    if (this.ph === 'lingering' || this.ph === 'stopping' || this.ph === 'stopped') return;
    this.lingerUntil = (this.dr.completedAt ?? this.o.clock.now()) + this.o.lingerMs;
    const left = this.lingerUntil - this.o.clock.now();
    this.ph = 'lingering';
    this.changed();
    if (left <= 0) { this.requestStop(`drain ${this.dr.outcome ?? 'done'} (${this.dr.trigger ?? 'signal'})`, 0); return; }
    this.o.log.info({ lingerMs: Math.round(left) }, 'drain complete; still answering until Kamailio has dropped this node');
    this.lingerTimer = this.o.clock.setTimeout(() => { this.lingerTimer = undefined; this.requestStop(`drain ${this.dr.outcome ?? 'done'} (${this.dr.trigger ?? 'signal'})`, 0); }, left);
  }

  private requestStop(why: string, code: number): void {
    if (this.stopReq) return;
    this.stopReq = { why, code };
    this.term = true;
    this.clearDrainTimers();
    this.lingerTimer?.cancel();
    this.ph = 'stopping';
    this.changed();
    this.emit('stop', this.stopReq);
    for (const r of this.stopWaiters.splice(0)) r(this.stopReq);
  }

  private persist(trigger: string): void {
    const write = this.o.writeMarker;
    if (!write || this.marker || this.markerWrite) return;
    this.markerWrite = write(trigger)
      .then((p) => { this.marker = p; this.o.log.info({ marker: p, trigger }, 'drain on a pod that is not terminating: marker written, a restart comes back drained'); })
      .catch((e: unknown) => { this.o.log.error({ err: (e as Error).message }, 'could not write the drained marker: a restart of this container would serve again'); })
      .finally(() => { this.markerWrite = undefined; this.changed(); });
  }

  private armDeadline(ms: number): void {
    this.deadlineTimer?.cancel();
    this.deadlineTimer = this.o.clock.setTimeout(() => { this.deadlineTimer = undefined; this.completeDrain('deadline'); }, Math.max(0, ms));
  }

  private armDown(): void {
    if (this.downTimer || !Number.isFinite(this.upstreamDownMs)) return;
    this.o.log.warn({ upstreamDownMs: this.upstreamDownMs }, 'rtpengine down while draining: the drain ends if it stays down');
    this.downTimer = this.o.clock.setTimeout(() => { this.downTimer = undefined; this.completeDrain('upstream-down'); }, Math.max(0, this.upstreamDownMs));
  }

  private clearDrainTimers(): void {
    this.deadlineTimer?.cancel();
    this.deadlineTimer = undefined;
    this.downTimer?.cancel();
    this.downTimer = undefined;
  }

  private changed(): void { this.emit('phase', this.status()); }
}
