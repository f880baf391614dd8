// What counts as a dropped call (docs/operations.md), judged per call from two sources: the
// caller's RTP endpoint (every echo timed) and rtpengine's own counters (query samples).
import { MEDIA_GAP_LIMIT_MS, mediaGapMs, type CallRecord } from './media.js';

export type Verdict = 'completed' | 'in-progress' | 'dropped-setup' | 'dropped-bye' | 'dropped-media';

export function verdictOf(c: CallRecord): Verdict {
  if (c.phase === 'failed') return 'dropped-setup';
  if (c.phase === 'bye-failed') return 'dropped-bye';
  if (c.phase === 'inviting' || c.phase === 'up' || c.phase === 'ending') return 'in-progress';
  return mediaDropped(c) ? 'dropped-media' : 'completed';
}

/** A query answered within this long before the BYE line was read may have crossed the BYE itself. */
export const BYE_RACE_MS = 500;

/** rtpengine saw the call stall, or not at all, while it was up (a query that may have crossed the BYE aside). */
export function rtpengineSawStop(c: CallRecord): boolean {
  const before = (t: number) => c.byeAt === undefined || t < c.byeAt - BYE_RACE_MS;
  return c.rtpe.stalledAt.some(before) || c.rtpe.unknownAt.some(before);
}

/** Media stopped for more than 1 s before the BYE, as the endpoint or rtpengine saw it. */
export function mediaDropped(c: CallRecord): boolean {
  return mediaGapMs(c) > MEDIA_GAP_LIMIT_MS || rtpengineSawStop(c);
}

export interface PodReport { pod: string; created: string; readyAfterS?: number; deletedAt?: string; drainSeconds?: number; preStopExit?: number; exit?: number }

export interface RunSummary {
  placed: number;
  completed: number;
  inProgress: number;
  /** Set-up failed (no 2xx): always dropped — a refusal with failover never fails the call. */
  failed: number;
  /** Offers Kamailio moved to another node after a `load limit` (not dropped: the call went on). */
  failedOver: number;
  byeFailed: number;
  mediaDropped: number;
  dropped: number;
  /** The longest silence any finished call had before its BYE, per the endpoint (ms). */
  worstMediaGapMs: number;
  /** Cross-check of the two media sources over finished calls. */
  crossCheck: { endpointOnly: number; rtpengineOnly: number; both: number; sampledCalls: number; unansweredQueries: number };
  /** The longest event-loop stall of the measuring process (a gap it caused itself would show here). */
  loopDelayMaxMs: number;
  pods: PodReport[];
}

export function summarize(i: { calls: CallRecord[]; failovers: number; pods: Array<{ name: string; createdAt: number; readyAt?: number; deleteAt?: number; drainSeconds(): number | undefined; preStopCode?: number; exitCode?: number }>; loopDelayMaxMs: number; unansweredQueries?: number }): RunSummary {
  const v = i.calls.map((c) => [c, verdictOf(c)] as const);
  const n = (k: Verdict) => v.filter(([, x]) => x === k).length;
  const finished = i.calls.filter((c) => c.phase === 'completed' || c.phase === 'bye-failed');
  const ep = (c: CallRecord) => mediaGapMs(c) > MEDIA_GAP_LIMIT_MS;
  const rt = rtpengineSawStop;
  const dropped = n('dropped-setup') + n('dropped-bye') + n('dropped-media');
  return {
    placed: i.calls.length, completed: n('completed'), inProgress: n('in-progress'), failed: n('dropped-setup'), failedOver: i.failovers,
    byeFailed: n('dropped-bye'), mediaDropped: n('dropped-media'), dropped,
    worstMediaGapMs: Math.round(Math.max(0, ...finished.map(mediaGapMs))),
    crossCheck: {
      endpointOnly: finished.filter((c) => ep(c) && !rt(c)).length, rtpengineOnly: finished.filter((c) => !ep(c) && rt(c)).length,
      both: finished.filter((c) => ep(c) && rt(c)).length, sampledCalls: finished.filter((c) => c.rtpe.samples > 0).length, unansweredQueries: i.unansweredQueries ?? 0,
    },
    loopDelayMaxMs: Math.round(i.loopDelayMaxMs),
    pods: i.pods.map((p) => ({
      pod: p.name, created: new Date(p.createdAt).toISOString(),
      ...(p.readyAt ? { readyAfterS: (p.readyAt - p.createdAt) / 1000 } : {}),
      ...(p.deleteAt ? { deletedAt: new Date(p.deleteAt).toISOString(), drainSeconds: p.drainSeconds() } : {}),
      ...(p.preStopCode !== undefined ? { preStopExit: p.preStopCode } : {}), ...(p.exitCode !== undefined ? { exit: p.exitCode } : {}),
    })),
  };
}
