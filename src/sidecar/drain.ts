// Drain: the state machine (serving → draining → drained at 0 sessions or the deadline) and the
// gate that decides, per ng request, forward / probe / refuse (Kamailio fails over) / fail (error
// reply). Pure decisions; the proxy feeds it facts (command, call known here, upstream health).
import { EventEmitter } from 'node:events';
import type { Clock, Timer } from '../clock.js';
import type { Logger } from '../log.js';

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
  /** What asked for the drain: 'http', 'signal', 'cli', 'api'. */
  trigger?: string;
  /** rtpengine's own session count at the last observation while draining. */
  sessionsLeft?: number;
}

/** Commands that can create a call in rtpengine (ng-protocol.md §2); only offer is limit-checked
 *  by rtpengine itself, so the proxy gates all of them while draining. */
export const CREATING_COMMANDS: ReadonlySet<string> = new Set(['offer', 'publish', 'create', 'transform']);

export interface GateInput {
  command: string | undefined;
  /** The registry knows the call-id is on this rtpengine (tracked, or deleted but inside
   *  delete-delay). The registry can miss calls (before the first reconciliation, or when
   *  rtpengine holds more than the list limit), so "not known" is not "not here". */
  known: boolean;
  hasCallId: boolean;
  draining: boolean;
  upstreamUp: boolean;
}

/**
 * forward: send to rtpengine. refuse: `load limit` (or error "Parallel session limit reached"
 * without `supports`) so Kamailio tries the next node at once without disabling this one.
 * fail: `error` naming the upstream failure (no failover: the call lives here).
 * probe: draining, and the registry does not know the call-id: ask rtpengine (`query`) first;
 * `ok` → the call is here, forward; "Unknown call-id" → refuse as draining (kamailio.md §7.3:
 * never `load limit` a pinned call).
 */
export type GateDecision =
  | { action: 'forward' }
  | { action: 'probe' }
  | { action: 'refuse'; why: 'draining' | 'upstream-down' }
  | { action: 'fail'; why: 'upstream-down' };

const FORWARD: GateDecision = { action: 'forward' };
const REFUSE_DRAINING: GateDecision = { action: 'refuse', why: 'draining' };
const REFUSE_DOWN: GateDecision = { action: 'refuse', why: 'upstream-down' };
const FAIL_DOWN: GateDecision = { action: 'fail', why: 'upstream-down' };
const PROBE: GateDecision = { action: 'probe' };

export function gate(i: GateInput): GateDecision {
  if (i.command === 'ping') return i.upstreamUp ? FORWARD : FAIL_DOWN;
  if (i.known) return i.upstreamUp ? FORWARD : FAIL_DOWN;
  // Draining with rtpengine up: a call-id the registry lacks may still be here (a re-INVITE,
  // answer or delete of a pinned call); rtpengine settles it. Down: nothing to ask.
  if (i.draining && i.hasCallId && i.upstreamUp) return PROBE;
  if (i.command !== undefined && CREATING_COMMANDS.has(i.command)) {
    if (i.draining) return REFUSE_DRAINING;
    return i.upstreamUp ? FORWARD : REFUSE_DOWN;
  }
  // Unknown call-id on a draining node: Kamailio lost the pin; `load limit` makes it walk on to
  // the node that holds the call (kamailio.md §7 step 4).
  if (i.hasCallId && i.draining) return REFUSE_DRAINING;
  return i.upstreamUp ? FORWARD : FAIL_DOWN;
}

export interface DrainOptions {
  clock: Clock;
  log: Logger;
  /** While draining, rtpengine down this long ends the drain with outcome 'upstream-down'
   *  (default 60 s; Infinity: never, wait for the deadline). */
  upstreamDownMs?: number;
}

/**
 * Emits 'phase' (DrainStatus) on every transition. start() is idempotent: a second trigger keeps
 * the first deadline unless it is earlier.
 */
export class DrainController extends EventEmitter {
  private st: DrainStatus = { phase: 'serving' };
  private timer: Timer | undefined;
  private downTimer: Timer | undefined;
  /** rtpengine's health as last reported: false = down (not answering pings). */
  private upstreamIsDown = false;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly upstreamDownMs: number;
  private waiters: Array<(s: DrainStatus) => void> = [];

  constructor(opts: DrainOptions) {
    super();
    this.clock = opts.clock;
    this.log = opts.log;
    this.upstreamDownMs = opts.upstreamDownMs ?? 60_000;
  }

  get phase(): DrainPhase { return this.st.phase; }
  get draining(): boolean { return this.st.phase !== 'serving'; }
  status(): DrainStatus { return { ...this.st }; }

  start(deadlineMs: number, trigger = 'api'): DrainStatus {
    if (this.st.phase === 'drained') return this.status();
    const now = this.clock.now();
    const deadlineAt = now + deadlineMs;
    if (this.st.phase === 'draining') {
      if (deadlineAt < (this.st.deadlineAt ?? Infinity)) {
        this.st.deadlineAt = deadlineAt;
        this.arm(deadlineMs);
        this.log.info({ deadlineAt, trigger }, 'drain deadline moved earlier');
      }
      return this.status();
    }
    this.st = { phase: 'draining', startedAt: now, deadlineAt, trigger };
    this.arm(deadlineMs);
    if (this.upstreamIsDown) this.armDown();
    this.log.info({ deadlineMs, trigger }, 'drain started: new calls refused, existing calls forwarded');
    this.emit('phase', this.status());
    return this.status();
  }

  /** rtpengine's own session count (sessionsown, which includes delete-delay). */
  observe(sessionsLeft: number): void {
    if (this.st.phase !== 'draining') return;
    this.st.sessionsLeft = sessionsLeft;
    if (sessionsLeft <= 0) this.complete('empty');
  }

  /**
   * rtpengine's health (answers pings or not). Down for `upstreamDownMs` while draining ends the
   * drain: rtpengine gone means its userspace calls are gone, and kernel-forwarded streams can no
   * longer be signalled (no re-INVITE, no delete), so waiting for the deadline only delays the
   * pod's exit. Back up in time: the drain goes on and ends at 0 sessions as usual.
   */
  upstream(up: boolean): void {
    this.upstreamIsDown = !up;
    if (this.st.phase !== 'draining') return;
    if (up) {
      if (this.downTimer) this.log.info('rtpengine answers again while draining: waiting for 0 sessions');
      this.downTimer?.cancel();
      this.downTimer = undefined;
    } else this.armDown();
  }

  /** Resolves when drained (at once if already). */
  wait(): Promise<DrainStatus> {
    if (this.st.phase === 'drained') return Promise.resolve(this.status());
    return new Promise((r) => this.waiters.push(r));
  }

  close(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.downTimer?.cancel();
    this.downTimer = undefined;
  }

  private armDown(): void {
    if (this.downTimer || !Number.isFinite(this.upstreamDownMs)) return;
    this.log.warn({ upstreamDownMs: this.upstreamDownMs }, 'rtpengine down while draining: the drain ends if it stays down');
    this.downTimer = this.clock.setTimeout(() => { this.downTimer = undefined; this.complete('upstream-down'); }, Math.max(0, this.upstreamDownMs));
  }

  private arm(ms: number): void {
    this.timer?.cancel();
    this.timer = this.clock.setTimeout(() => this.complete('deadline'), Math.max(0, ms));
  }

  private complete(outcome: DrainOutcome): void {
    if (this.st.phase !== 'draining') return;
    this.timer?.cancel();
    this.timer = undefined;
    this.downTimer?.cancel();
    this.downTimer = undefined;
    this.st = { ...this.st, phase: 'drained', outcome, completedAt: this.clock.now() };
    const level = outcome === 'empty' ? 'info' : 'warn';
    this.log[level]({ outcome, sessionsLeft: this.st.sessionsLeft, elapsedMs: this.st.completedAt! - this.st.startedAt! }, 'drain complete');
    const s = this.status();
    this.emit('phase', s);
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r(s);
  }
}
