// The drain gate: per ng request, forward / probe / refuse (Kamailio fails over) / fail (error
// reply). Pure decisions; the proxy feeds it facts (command, call known here, upstream health,
// `draining` from the lifecycle, which owns all drain state: lifecycle.ts).

export type { DrainPhase, DrainOutcome, DrainStatus } from './lifecycle.js';

/** Commands that can create a call in rtpengine (rtpengine's docs/ng_control_protocol.md); only offer is limit-checked
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
 * `ok` → the call is here, forward; "Unknown call-id" → refuse as draining (ADR 0020:
 * never `load limit` a pinned call, Kamailio would not move it).
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
  // A call that lives here is always rtpengine's to answer, down or not (health is a guess from
  // pings; a delete refused unforwarded leaves the call in rtpengine): #15 defect 2.
  if (i.known) return FORWARD;
  if (i.command === 'delete' && !i.draining) return FORWARD;
  // Draining with rtpengine up: a call-id the registry lacks may still be here (a re-INVITE,
  // answer or delete of a pinned call); rtpengine settles it. Down: nothing to ask.
  if (i.draining && i.hasCallId && i.upstreamUp) return PROBE;
  if (i.command !== undefined && CREATING_COMMANDS.has(i.command)) {
    if (i.draining) return REFUSE_DRAINING;
    return i.upstreamUp ? FORWARD : REFUSE_DOWN;
  }
  // Unknown call-id on a draining node: Kamailio lost the pin; `load limit` makes it walk on to
  // the node that holds the call (ADR 0024).
  if (i.hasCallId && i.draining) return REFUSE_DRAINING;
  return i.upstreamUp ? FORWARD : FAIL_DOWN;
}
