// Drain: the state machine (serving → draining → drained at 0 sessions or the deadline) and the
// gate that decides, per ng request, forward / refuse (Kamailio fails over) / fail (error reply).
// Pure decisions; the proxy feeds it facts (command, call known here, upstream health).
import { EventEmitter } from 'node:events';
import type { Clock, Timer } from '../clock.js';
import type { Logger } from '../log.js';

export type DrainPhase = 'serving' | 'draining' | 'drained';
export type DrainOutcome = 'empty' | 'deadline';

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
  /** The call-id is on this rtpengine (tracked, or deleted but inside delete-delay). */
  known: boolean;
  hasCallId: boolean;
  draining: boolean;
  upstreamUp: boolean;
}

/**
 * forward: send to rtpengine. refuse: `load limit` (or error "Parallel session limit reached"
 * without `supports`) so Kamailio tries the next node at once without disabling this one.
 * fail: `error` naming the upstream failure (no failover: the call lives here).
 */
export type GateDecision =
  | { action: 'forward' }
  | { action: 'refuse'; why: 'draining' | 'upstream-down' }
  | { action: 'fail'; why: 'upstream-down' };

const FORWARD: GateDecision = { action: 'forward' };
const REFUSE_DRAINING: GateDecision = { action: 'refuse', why: 'draining' };
const REFUSE_DOWN: GateDecision = { action: 'refuse', why: 'upstream-down' };
const FAIL_DOWN: GateDecision = { action: 'fail', why: 'upstream-down' };

export function gate(i: GateInput): GateDecision {
  if (i.command === 'ping') return i.upstreamUp ? FORWARD : FAIL_DOWN;
  if (i.known) return i.upstreamUp ? FORWARD : FAIL_DOWN;
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
}

/**
 * Emits 'phase' (DrainStatus) on every transition. start() is idempotent: a second trigger keeps
 * the first deadline unless it is earlier.
 */
export class DrainController extends EventEmitter {
  private st: DrainStatus = { phase: 'serving' };
  private timer: Timer | undefined;
  private readonly clock: Clock;
  private readonly log: Logger;
  private waiters: Array<(s: DrainStatus) => void> = [];

  constructor(opts: DrainOptions) {
    super();
    this.clock = opts.clock;
    this.log = opts.log;
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

  /** Resolves when drained (at once if already). */
  wait(): Promise<DrainStatus> {
    if (this.st.phase === 'drained') return Promise.resolve(this.status());
    return new Promise((r) => this.waiters.push(r));
  }

  close(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer?.cancel();
    this.timer = this.clock.setTimeout(() => this.complete('deadline'), Math.max(0, ms));
  }

  private complete(outcome: DrainOutcome): void {
    if (this.st.phase !== 'draining') return;
    this.timer?.cancel();
    this.timer = undefined;
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
