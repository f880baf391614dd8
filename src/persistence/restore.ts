// After rtpengine started over a database with calls: wait until each call is back (rtpengine
// answers `query` for it) or gone (rtpengine deletes a key it cannot restore), then hand the
// restored call-ids to the session registry. rtpengine answers ping before its restore finishes.
import type { Clock } from '../clock.js';
import type { NgUdpClient } from '../ng/client.js';
import { PersistenceError } from '../errors.js';
import { isCoded } from '../errors.js';
import type { RedisClient } from './resp.js';

export interface RestoreResult { restored: string[]; lost: string[]; pending: string[]; waitedMs: number }

export interface RestoreDeps { ng: Pick<NgUdpClient, 'command'>; redis: Pick<RedisClient, 'keys'>; clock: Clock }

/**
 * Polls until every expected call is restored or gone, or `deadlineMs` passes: what is left then is
 * `pending` (rtpengine 10.5 keeps a key it failed to restore; newer releases delete it).
 */
export async function awaitRestore(d: RestoreDeps, expected: readonly string[], o: { deadlineMs: number; pollMs?: number; concurrency?: number }): Promise<RestoreResult> {
  const t0 = d.clock.monotonic();
  const restored: string[] = [];
  const lost: string[] = [];
  let pending = [...expected];
  for (;;) {
    const next: string[] = [];
    const here = await queryAll(d.ng, pending, o.concurrency ?? 16);
    const inRedis = new Set(pending.some((_, i) => !here[i]) ? await d.redis.keys() : []);
    pending.forEach((id, i) => {
      if (here[i]) restored.push(id);
      else if (!inRedis.has(id)) lost.push(id); // rtpengine could not restore it and deleted the key
      else next.push(id);
    });
    pending = next;
    const waitedMs = Math.round(d.clock.monotonic() - t0);
    if (!pending.length) return { restored, lost, pending, waitedMs };
    if (waitedMs >= o.deadlineMs) return { restored, lost, pending, waitedMs };
    await d.clock.sleep(o.pollMs ?? 100);
  }
}

async function queryAll(ng: RestoreDeps['ng'], ids: readonly string[], concurrency: number): Promise<boolean[]> {
  const out = new Array<boolean>(ids.length).fill(false);
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const i = next++;
      try {
        await ng.command({ command: 'query', 'call-id': ids[i]! });
        out[i] = true;
      } catch (e) {
        // "Unknown call-id": not (yet) restored; no answer (rtpengine still starting): ask again later.
        if (!isCoded(e, 'NG_REMOTE_ERROR') && !isCoded(e, 'NG_TIMEOUT') && !isCoded(e, 'NG_SOCKET')) throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, worker));
  return out;
}

/** The coded error for a restore that left calls pending, for the log. */
export function incomplete(r: RestoreResult, expected: number): PersistenceError {
  return new PersistenceError('PERSISTENCE_RESTORE_INCOMPLETE', { restored: r.restored.length, expected, waitedMs: r.waitedMs, pending: r.pending.length, sample: r.pending[0] });
}
