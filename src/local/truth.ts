// rtpengine's own view of every call that is up, the ground truth for "media kept flowing": once
// a second each call is queried (ng `query`) on the rtpengine that holds it — directly, not
// through the sidecar — and its per-party packet counters must have grown since the last look.
import { NgUdpClient } from '../ng/client.js';
import { wallNow, type CallRecord } from './media.js';

/** Packets rtpengine received from each party of the call (sorted by tag), from a `query` reply. */
export function packetsByParty(reply: Record<string, unknown>): number[] | undefined {
  const tags = reply.tags as Record<string, { medias?: Array<{ streams?: Array<{ stats?: { packets?: number } }> }> }> | undefined;
  if (!tags || typeof tags !== 'object') return undefined;
  return Object.keys(tags).sort().map((k) => (tags[k]!.medias ?? []).reduce((a, m) => a + (m.streams ?? []).reduce((b, s) => b + Number(s.stats?.packets ?? 0), 0), 0));
}

/**
 * One sample against the previous one: every party's count grew, or one did not (a stall). Counters
 * never go back within one rtpengine: a lower one means it restarted with the call restored from
 * Redis (counters as last saved), a new baseline rather than a stall.
 */
export function counterStep(prev: number[] | undefined, now: number[]): 'first' | 'grew' | 'stall' | 'reset' {
  if (!prev || prev.length !== now.length) return 'first';
  if (now.some((n, i) => n < prev[i]!)) return 'reset';
  return now.some((n, i) => n === prev[i]!) ? 'stall' : 'grew';
}

const QUERY_BATCH = 16;

export interface RtpengineAt { mediaIp: string; host: string; ngPort: number }

/**
 * Samples the calls that are up every `intervalMs`. A sample where a party's count did not grow
 * is recorded as a stall; a call rtpengine does not know while SIP says it is up as unknown (the
 * verdict ignores both within BYE_RACE_MS of the BYE: the query may have crossed it).
 */
export class MediaSampler {
  private readonly clients = new Map<string, NgUdpClient>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  queries = 0;
  /** Queries rtpengine did not answer in time: no evidence either way (counted, not judged). */
  unanswered = 0;
  readonly unansweredBy: Record<string, number> = {};

  constructor(private readonly calls: () => CallRecord[], private readonly rtpengines: () => RtpengineAt[], private readonly intervalMs = 1000) {}

  start(): void { this.timer = setInterval(() => { void this.round(); }, this.intervalMs); }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private client(r: RtpengineAt): NgUdpClient {
    const key = `${r.host}:${r.ngPort}`;
    let c = this.clients.get(key);
    if (!c) { c = new NgUdpClient({ host: r.host, port: r.ngPort, timeoutMs: 1000, retries: 1 }); this.clients.set(key, c); }
    return c;
  }

  private async round(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const where = new Map(this.rtpengines().map((r) => [r.mediaIp, r]));
      // At most QUERY_BATCH queries in flight: rtpengine's replies (a few kB each) arriving all at
      // once would overflow the client socket's receive buffer and look like timeouts.
      const calls = this.calls();
      for (let i = 0; i < calls.length; i += QUERY_BATCH) await Promise.all(calls.slice(i, i + QUERY_BATCH).map(async (c) => {
        // Only well inside the call: not in its first second, not once its BYE is on its way.
        if (c.phase !== 'up' || !c.remote || c.upAt === undefined || wallNow() - c.upAt < this.intervalMs) return;
        const r = where.get(c.remote.ip);
        const at = wallNow();
        let reply: Record<string, unknown> | undefined;
        let unknown = false;
        try {
          this.queries++;
          if (!r) { unknown = true; throw new Error('no rtpengine on this media IP any more'); }
          reply = await this.client(r).command({ command: 'query', 'call-id': c.callId });
        } catch (e) {
          // rtpengine said it does not know the call: evidence. No answer in time (a busy machine): none.
          if ((e as { code?: string }).code === 'NG_REMOTE_ERROR') unknown = true;
          if (!unknown) { this.unanswered++; const k = (e as { code?: string }).code ?? (e as Error).message; this.unansweredBy[k] = (this.unansweredBy[k] ?? 0) + 1; }
        }
        if (c.phase !== 'up') return; // the BYE overtook the query
        if (unknown) { c.rtpe.unknownAt.push(at); return; }
        if (!reply) return;
        const now = packetsByParty(reply);
        if (!now) return;
        const prev = c.rtpe.last;
        const step = counterStep(prev, now);
        if (step === 'reset') c.rtpe.resets = (c.rtpe.resets ?? 0) + 1;
        else if (step === 'stall') c.rtpe.stalledAt.push(at);
        c.rtpe.last = now;
        c.rtpe.lastAt = at;
        c.rtpe.samples++;
      }));
    } finally {
      this.running = false;
    }
  }
}
