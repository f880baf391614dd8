// Media IP reservations inside whereabouts' own IPPool objects, written exactly as whereabouts
// writes them: decimal offset keys, a JSON Patch whose first op tests metadata.resourceVersion,
// re-read and jittered retry on 409/422, pool created with its canonical range when absent.
import type { KubePort, IPPool, JsonPatchOp } from '../kube/client.js';
import { kubeStatus } from '../kube/client.js';
import { AllocError, KubeError } from '../errors.js';
import { backoff } from '../backoff.js';

/**
 * Set on our IPPools by `ctl cleanup` before it frees anything (ADR 0059): every later pool write
 * (resourceVersion-tested, so it re-reads and sees the mark) is refused with ALLOC_UNINSTALLING.
 */
export const ANNOTATION_UNINSTALLED = 'rtpengine-k8s.io/uninstalled';

export interface PoolEntry { id: string; podref: string; ifname?: string }

/** whereabouts' IPPoolName/normalizeRange: canonical range, `0` after a trailing `:`, `:`/`/` → `-`. */
export function ipPoolName(canonicalRange: string, networkName?: string): string {
  let r = canonicalRange;
  if (r.endsWith(':')) r += '0';
  const name = r.replace(/[:/]/g, '-');
  return networkName ? `${networkName}-${name}` : name;
}

/**
 * whereabouts' OverlappingRangeIPReservation name for an IP (NormalizeIP): the IP's text, `0`
 * appended after a trailing `:`, every `:` → `-`, prefixed `<network_name>-` when set.
 */
export function oripName(ip: string, networkName?: string): string {
  let t = ip;
  if (t.endsWith(':')) t += '0';
  t = t.replace(/:/g, '-');
  return networkName ? `${networkName}-${t}` : t;
}

/** The IP an ORIP name stands for under our network_name prefix (undefined: another network's). */
export function ipOfOripName(name: string, networkName?: string): string | undefined {
  const prefix = networkName ? `${networkName}-` : '';
  if (!name.startsWith(prefix)) return undefined;
  const rest = name.slice(prefix.length);
  return rest.includes('.') ? rest : rest.replace(/-/g, ':');
}

/** Our entries' `id`: never a container ID, so whereabouts' CNI DEL never matches it. */
export const OUR_ID_PREFIX = 'rtpe-alloc/';
export const ourEntryId = (node: string, uid: string) => `${OUR_ID_PREFIX}${node}/${uid}`;
export function parseOurEntryId(id: string): { node: string; uid: string } | undefined {
  if (!id.startsWith(OUR_ID_PREFIX)) return undefined;
  const rest = id.slice(OUR_ID_PREFIX.length);
  const i = rest.lastIndexOf('/');
  return i > 0 ? { node: rest.slice(0, i), uid: rest.slice(i + 1) } : undefined;
}

export type ReserveResult = { ok: true } | { ok: false; holder: PoolEntry };

export interface IPPoolWriterOptions {
  /** whereabouts' DatastoreRetries. */
  maxRetries?: number;
  /** Upper bound of the random wait before a retry (ms), doubled per attempt up to 16×. */
  jitterMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/**
 * One writer per namespace. Keeps the last pool it saw per name so the common path is one PATCH
 * (the resourceVersion test makes a stale cache harmless: 422, re-read, retry).
 */
export class IPPoolWriter {
  private cache = new Map<string, IPPool>();
  private readonly maxRetries: number;
  private readonly jitterMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(private readonly kube: KubePort, readonly namespace: string, o: IPPoolWriterOptions = {}) {
    this.maxRetries = o.maxRetries ?? 100;
    this.jitterMs = o.jitterMs ?? 10;
    this.sleep = o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.random = o.random ?? Math.random;
  }

  /** Fresh read; creates the pool (canonical range, empty allocations) when absent. */
  async read(name: string, range: string): Promise<IPPool> {
    for (let i = 0; i < 3; i++) {
      const got = await this.kube.getIPPool(this.namespace, name);
      if (got) { this.cache.set(name, got); return got; }
      try {
        const made = await this.kube.createIPPool(this.namespace, { metadata: { name }, spec: { range, allocations: {} } });
        this.cache.set(name, made);
        return made;
      } catch (e) {
        if (kubeStatus(e) !== 409) throw e; // AlreadyExists: someone (whereabouts) created it; re-read
      }
    }
    throw new KubeError('KUBE_RETRIES_EXHAUSTED', { resource: `ippools ${this.namespace}/${name}`, attempts: 3 });
  }

  /** The last pool seen by this writer (no request), if any. */
  cached(name: string): IPPool | undefined { return this.cache.get(name); }

  /** The last pool seen (no request), or a fresh read. */
  async current(name: string, range: string): Promise<IPPool> {
    return this.cache.get(name) ?? this.read(name, range);
  }

  /** Apply `change` to the pool under the resourceVersion test, re-reading on 409/422. */
  private async mutate<T>(name: string, range: string, change: (pool: IPPool) => { ops: JsonPatchOp[]; result: T } | { done: T }, ignoreMark = false): Promise<T> {
    const cached = this.cache.get(name);
    let fresh = !cached;
    let pool = cached ?? await this.read(name, range);
    for (let attempt = 1; attempt <= this.maxRetries; attempt++) {
      if (pool.spec.range !== range) {
        throw new KubeError('KUBE_API', { verb: 'patch', resource: `ippools ${this.namespace}/${name}`, status: '-', reason: `pool range is '${pool.spec.range}', expected canonical '${range}': offsets would disagree with whereabouts` });
      }
      const since = pool.metadata.annotations?.[ANNOTATION_UNINSTALLED];
      if (since !== undefined && !ignoreMark) throw new AllocError('ALLOC_UNINSTALLING', { pool: `${this.namespace}/${name}`, since });
      const c = change(pool);
      // A verdict without a write ("held by X", "not ours") must come from a fresh read, never the cache.
      if ('done' in c && !fresh) { pool = await this.read(name, range); fresh = true; attempt--; continue; }
      if ('done' in c) return c.done;
      try {
        const ops: JsonPatchOp[] = [{ op: 'test', path: '/metadata/resourceVersion', value: pool.metadata.resourceVersion }, ...c.ops];
        const next = await this.kube.patchIPPool(this.namespace, name, ops);
        this.cache.set(name, next);
        return c.result;
      } catch (e) {
        const st = kubeStatus(e);
        if (st === 404) { this.cache.delete(name); pool = await this.read(name, range); fresh = true; continue; }
        if (st !== 409 && st !== 422) throw e;
        // lost the race: wait a little (jitter against lock-step retries), re-read, recompute
        await this.sleep(backoff(attempt, { initialDelayMs: this.jitterMs, maxDelayMs: 16 * this.jitterMs, jitter: 'full' }, this.random));
        pool = await this.read(name, range);
        fresh = true;
      }
    }
    throw new KubeError('KUBE_RETRIES_EXHAUSTED', { resource: `ippools ${this.namespace}/${name}`, attempts: this.maxRetries });
  }

  /** Put `entry` at `offset`; an entry with the same id there already counts as success. */
  reserve(name: string, range: string, offset: string, entry: PoolEntry): Promise<ReserveResult> {
    return this.mutate<ReserveResult>(name, range, (pool) => {
      const held = pool.spec.allocations?.[offset];
      if (held) return { done: held.id === entry.id ? { ok: true } : { ok: false, holder: held } };
      // whereabouts tests each added path empty (a null `test`) besides the resourceVersion.
      const ops: JsonPatchOp[] = pool.spec.allocations
        ? [{ op: 'test', path: `/spec/allocations/${offset}`, value: null }, { op: 'add', path: `/spec/allocations/${offset}`, value: entry }]
        : [{ op: 'test', path: '/spec/allocations', value: null }, { op: 'add', path: '/spec/allocations', value: { [offset]: entry } }];
      return { ops, result: { ok: true } };
    });
  }

  /** Set (`at`) or clear (undefined) the uninstalled mark; false when the pool does not exist. */
  async markUninstalled(name: string, range: string, at: string | undefined): Promise<boolean> {
    try { if (!(await this.kube.getIPPool(this.namespace, name))) return false; } catch (e) { if (kubeStatus(e) !== 404) throw e; return false; }
    const key = `/metadata/annotations/${ANNOTATION_UNINSTALLED.replace(/~/g, '~0').replace(/\//g, '~1')}`;
    return this.mutate<boolean>(name, range, (pool) => {
      const has = pool.metadata.annotations?.[ANNOTATION_UNINSTALLED] !== undefined;
      if (at === undefined) return has ? { ops: [{ op: 'remove', path: key }], result: true } : { done: false };
      if (!pool.metadata.annotations) return { ops: [{ op: 'add', path: '/metadata/annotations', value: { [ANNOTATION_UNINSTALLED]: at } }], result: true };
      return { ops: [{ op: 'add', path: key, value: at }], result: true };
    }, true);
  }

  /** Remove the entry at `offset` only if it is ours (`id`); true when something was removed. */
  release(name: string, range: string, offset: string, id: string, ignoreMark = false): Promise<boolean> {
    return this.mutate<boolean>(name, range, (pool) => {
      const held = pool.spec.allocations?.[offset];
      if (!held || held.id !== id) return { done: false };
      return { ops: [{ op: 'remove', path: `/spec/allocations/${offset}` }], result: true };
    }, ignoreMark);
  }
}
