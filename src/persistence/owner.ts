// Whose calls a Redis database holds. rtpengine names each key by call-id and restores every key of
// its database (KEYS *), so the sidecar keeps one extra key naming the pod, table and media IPs the
// calls belong to, and decides before rtpengine starts whether they may be restored here (ADR 0042).
import type { RedisClient } from './resp.js';

/** Not a call: rtpengine's restore skips it with a warning (10.5) or deletes it (newer): rewritten after each restore. */
export const OWNER_KEY = 'rtpengine-k8s:owner';

export interface Owner { podUid: string; pod: string; table: number; ips: string[] }

export type Decision =
  | { action: 'fresh' }
  | { action: 'restore'; callIds: string[] }
  | { action: 'refuse'; why: 'unknown' | 'other-pod' | 'other-table-or-ip'; callIds: string[]; owner?: Owner };

const sameSet = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join();

export function parseOwner(v: string | null): Owner | undefined {
  if (!v) return undefined;
  try {
    const o = JSON.parse(v) as Partial<Owner>;
    if (typeof o.podUid !== 'string' || typeof o.table !== 'number' || !Array.isArray(o.ips)) return undefined;
    return { podUid: o.podUid, pod: String(o.pod ?? ''), table: o.table, ips: o.ips.map(String) };
  } catch { return undefined; }
}

/**
 * Pure: restore only this pod's calls on the same table and media IPs. Anything else is refused
 * and left untouched (another pod may still own it): rtpengine then runs without persistence.
 */
export function decide(self: Owner, owner: Owner | undefined, callIds: string[]): Decision {
  if (!callIds.length) return { action: 'fresh' };
  if (!owner) return { action: 'refuse', why: 'unknown', callIds };
  if (owner.podUid !== self.podUid) return { action: 'refuse', why: 'other-pod', callIds, owner };
  if (owner.table !== self.table || !sameSet(owner.ips, self.ips)) return { action: 'refuse', why: 'other-table-or-ip', callIds, owner };
  return { action: 'restore', callIds };
}

/** Reads the database as rtpengine will find it. */
export async function inspect(redis: RedisClient, self: Owner): Promise<Decision> {
  const keys = await redis.keys();
  const owner = parseOwner(keys.includes(OWNER_KEY) ? await redis.get(OWNER_KEY) : null);
  return decide(self, owner, keys.filter((k) => k !== OWNER_KEY));
}

export async function writeOwner(redis: RedisClient, self: Owner): Promise<void> {
  await redis.set(OWNER_KEY, JSON.stringify({ ...self, at: new Date().toISOString() }));
}

export const describeOwner = (o: Owner | undefined) => (o ? `pod ${o.pod} (uid ${o.podUid}), table ${o.table}, IP ${o.ips.join(',')}` : 'an unknown owner (no rtpengine-k8s:owner key)');
