// The allocator's domain logic: decides tables and addresses in memory (one process per node),
// persists through the AllocationStore, cleans kernel tables on release/reclaim, and reclaims
// allocations whose lease ran out. Transport-free: server.ts maps gRPC onto these methods.
import type { Logger } from '../log.js';
import type { Clock } from '../clock.js';
import { AllocError, isCoded } from '../errors.js';
import { AddressPool, compilePool, ipFromOffset, type PoolConfig } from './pools.js';
import { pickTable, freeTables, rangeSize, rangeText, type TableRange } from './tables.js';
import type { KernelPort } from './kernel.js';
import { podKey, type Allocation, type AllocationStore, type AllocatedAddress, type PodRef, type StateRecovery } from './store.js';
import { LIMITS, clip } from './limits.js';
import type { AllocationView } from './wire.js';

export interface ServiceConfig {
  node: string;
  tableRange: TableRange;
  pools: PoolConfig[];
  /** Pools used when a request names none; default: the first configured pool (none = table only). */
  defaultPools?: string[];
  /** Lease TTL in ms; 0 = allocations never expire (Kubernetes mode: pod lifecycle decides). */
  leaseTtlMs: number;
}

export interface ServiceDeps {
  store: AllocationStore;
  kernel: KernelPort;
  clock: Clock;
  log: Logger;
  /** Observations for metrics.ts. */
  onAcquire?: (seconds: number, outcome: 'new' | 'existing' | 'error') => void;
  onReclaim?: (reason: string) => void;
  onCleanup?: (result: string) => void;
  /** A start from a damaged state's previous generation: how many allocations were recovered, dropped, … */
  onRecovery?: (counts: RecoveryCounts) => void;
  /** A lost allocation re-adopted from its sidecar's Renew. */
  onReadopt?: () => void;
}

export interface RecoveryCounts { recovered: number; dropped: number; unknownKernelTables: number }

/** What a sidecar says it holds (Renew's optional claim). */
export type HeldAllocation = Pick<Allocation, 'pod' | 'table' | 'addresses' | 'createdAt'>;

export interface AcquireInput { pod: PodRef; pools?: string[]; interface?: string }
export type Selector = { uid?: string; namespace?: string; name?: string };

const MAX_CONFLICT_RETRIES = 8;
const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export class AllocatorService {
  readonly cfg: ServiceConfig;
  private readonly d: ServiceDeps;
  private readonly log: Logger;
  private readonly byUid = new Map<string, Allocation>();
  private readonly tableOwner = new Map<number, string>();
  private readonly foreignTables = new Set<number>();
  private readonly pools = new Map<string, AddressPool>();
  private readonly pendingAcquire = new Map<string, Promise<AllocationView>>();
  private readonly pendingRelease = new Map<string, Promise<AllocationView>>();
  private releasedAt: Record<string, number> = {};
  private kernelTables = new Set<number>();
  /** Leftover tables (listed, not ours, no holder) seen by the last sweep: deleted when seen unheld again. */
  private leftoverSeen = new Set<number>();
  private sweeping: Promise<void> | undefined;
  /**
   * After a start from a damaged state's previous generation: until this time (ms), a Renew that
   * carries the allocation its sidecar holds re-adopts a record the recovery lost (0 = never).
   */
  private readoptUntil = 0;
  /** UIDs released or reclaimed by this process during the re-adoption window: never revived. */
  private readonly releasedSinceStart = new Set<string>();

  private constructor(cfg: ServiceConfig, deps: ServiceDeps) {
    this.cfg = cfg;
    this.d = deps;
    this.log = deps.log.child({ component: 'allocator' });
    for (const p of cfg.pools) {
      if (this.pools.has(p.name)) throw new AllocError('ALLOC_POOL_INVALID', { pool: p.name, reason: 'two pools have this name' });
      const span = compilePool(p);
      for (const note of span.notes) this.log.warn({ pool: p.name, note }, 'pool setting ignored');
      this.pools.set(p.name, new AddressPool(span));
    }
    for (const n of cfg.defaultPools ?? []) this.requirePool(n, 'default-pools');
  }

  /** Load the store and rebuild occupancy. A corrupt or unknown state file throws (never starts empty). */
  static async open(cfg: ServiceConfig, deps: ServiceDeps): Promise<AllocatorService> {
    const s = new AllocatorService(cfg, deps);
    const state = await deps.store.load();
    const now = deps.clock.now();
    s.releasedAt = { ...state.tableReleasedAt };
    for (const [pool, offsets] of Object.entries(state.foreignAddresses)) {
      for (const o of offsets) s.pools.get(pool)?.take(BigInt(o));
    }
    for (const a of state.allocations) {
      s.byUid.set(a.pod.uid, a);
      s.tableOwner.set(a.table, a.pod.uid);
      for (const x of a.addresses) {
        const pool = s.pools.get(x.pool);
        if (pool) pool.take(BigInt(x.offset));
        else s.log.warn({ pod: podKey(a.pod), uid: a.pod.uid, pool: x.pool, ip: x.ip }, 'allocation holds an address of a pool no longer configured; kept until released');
      }
      // Sidecars could not renew while we were down: restart every active lease from now.
      if (a.state === 'active' && cfg.leaseTtlMs > 0 && a.leaseExpiresAt < now + cfg.leaseTtlMs) {
        a.leaseExpiresAt = now + cfg.leaseTtlMs;
      }
    }
    s.kernelTables = new Set(await deps.kernel.listTables());
    if (state.recovery) await s.reconcileRecovery(state.recovery);
    s.log.info({ node: cfg.node, store: deps.store.kind, allocations: state.allocations.length, tables: rangeText(cfg.tableRange), kernelTables: [...s.kernelTables], pools: [...s.pools.keys()] }, 'allocator state loaded');
    return s;
  }

  /**
   * The store started from the previous generation of a damaged state: compare it with what is
   * known for sure, and say loudly what was recovered and what was lost. Ground truth here:
   * - /proc/rtpengine: a table in our range that a daemon holds and no recovered allocation names
   *   belongs to a pod whose record was lost; pickTable never hands out a listed table, and it is
   *   not treated as a leftover while held.
   * - the damaged file's still-readable records (untrusted): those not in the recovered generation
   *   are reported as dropped.
   * - the sidecars' renewals: every recovered lease restarts now; one not renewed within a TTL is
   *   reclaimed as usual (a record released since the previous generation was written).
   */
  private async reconcileRecovery(r: StateRecovery): Promise<void> {
    const { min, max } = this.cfg.tableRange;
    const unknown: Array<{ table: number; holderPid?: number }> = [];
    for (const t of this.kernelTables) {
      if (t < min || t > max || this.tableOwner.has(t)) continue;
      const st = await this.d.kernel.tableStatus(t).catch(() => undefined);
      const held = st && ((st.holderPid ?? 0) > 0 || (st.holderPid === undefined && (st.openCount ?? 0) > 0));
      if (held) unknown.push({ table: t, holderPid: st.holderPid });
    }
    const same = (x: Allocation, y: Allocation) => x.table === y.table && x.addresses.map((a) => a.ip).join() === y.addresses.map((a) => a.ip).join();
    const dropped = r.salvaged.filter((x) => { const a = this.byUid.get(x.pod.uid); return !a || !same(a, x); });
    const brief = (a: Allocation) => ({ pod: clip(podKey(a.pod)), uid: clip(a.pod.uid), table: a.table, ip: a.addresses.map((x) => x.ip) });
    this.log.error({
      decision: 'state-recovered', reason: r.reason, from: r.from, damagedKeptAs: r.damagedKeptAs,
      recovered: [...this.byUid.values()].map(brief), dropped: dropped.map(brief), unknownKernelTables: unknown,
    }, `STATE FILE DAMAGED: started from the previous generation (${r.from}); ${this.byUid.size} allocation(s) recovered, ${dropped.length} readable in the damaged file but not recovered (dropped), ${unknown.length} kernel table(s) held by daemons with no record (kept out of use). ${this.cfg.leaseTtlMs > 0 ? 'Recovered leases restart now; unrenewed ones are reclaimed after one TTL' : 'Lease TTL 0: recovered records are kept until released (file mode: ctl release; Kubernetes mode: when their pod is gone)'}`);
    for (const a of dropped) this.log.error({ decision: 'state-recovery-dropped', ...brief(a) }, 'allocation lost with the damaged state file: its table stays out of use while a daemon holds it; its address may be handed out again');
    for (const u of unknown) this.log.error({ decision: 'state-recovery-unknown-table', ...u }, 'kernel table held by a daemon no recovered allocation names: kept out of use');
    this.d.onRecovery?.({ recovered: this.byUid.size, dropped: dropped.length, unknownKernelTables: unknown.length });
    // The sidecars of lost records renew within a TTL (every TTL/3): accept their claims for two TTLs (≥ 2 min).
    this.readoptUntil = this.d.clock.now() + 2 * Math.max(this.cfg.leaseTtlMs, 60_000);
  }

  /**
   * A Renew for a UID we do not know, carrying what its sidecar holds, during the window after a
   * recovery: recreate that record if it is consistent (our range, configured pools, offsets that
   * give these IPs) and nobody holds its table or addresses meanwhile. Otherwise undefined.
   */
  private async readopt(uid: string, held: HeldAllocation): Promise<AllocationView | undefined> {
    const now = this.d.clock.now();
    if (now >= this.readoptUntil || this.releasedSinceStart.has(uid) || held.pod.uid !== uid) return undefined;
    const pod = this.validatePod(held.pod);
    const facts = { pod: clip(podKey(pod)), uid: clip(uid), table: held.table, ip: held.addresses.map((x) => clip(x.ip)) };
    const refuse = (why: string) => { this.log.error({ decision: 'readopt-refused', ...facts, why }, 'lost allocation claimed by its sidecar cannot be re-adopted'); return undefined; };
    const { min, max } = this.cfg.tableRange;
    if (!Number.isInteger(held.table) || held.table < min || held.table > max) return refuse('table outside the range');
    if (this.tableOwner.has(held.table) || this.foreignTables.has(held.table)) return refuse(`table ${held.table} is held by another allocation`);
    const addresses: AllocatedAddress[] = [];
    for (const x of held.addresses) {
      const pool = this.pools.get(x.pool);
      if (!pool || !/^\d{1,40}$/.test(x.offset)) return refuse(`address ${clip(x.ip)}: unknown pool or bad offset`);
      const o = BigInt(x.offset);
      if (!pool.isFree(o) || ipFromOffset(pool.span, o) !== x.ip) return refuse(`address ${clip(x.ip)} is taken or does not match pool ${clip(x.pool)}`);
      addresses.push({ pool: x.pool, ip: x.ip, prefixLength: pool.span.prefixLength, gateway: pool.span.gateway, offset: x.offset });
    }
    if (this.pendingAcquire.has(uid) || this.byUid.has(uid)) return undefined;
    const a: Allocation = { pod, node: this.cfg.node, table: held.table, addresses, state: 'active', createdAt: held.createdAt || now, renewedAt: now, leaseExpiresAt: this.expiry(now) };
    this.tableOwner.set(a.table, uid);
    this.byUid.set(uid, a);
    for (const x of addresses) this.pools.get(x.pool)!.take(BigInt(x.offset));
    try { await this.d.store.create(a); } catch (e) { this.unreserve(a); throw e; }
    this.log.warn({ decision: 'readopt', ...facts }, 'allocation lost with the damaged state file re-adopted from its sidecar\'s renewal');
    this.d.onReadopt?.();
    return this.view(a);
  }

  private requirePool(name: string, field: string): AddressPool {
    const p = this.pools.get(name);
    if (!p) throw new AllocError('ALLOC_UNKNOWN_POOL', { pool: clip(name), field, known: [...this.pools.keys()].join(', ') || '(none)' });
    return p;
  }

  view(a: Allocation, state?: 'released'): AllocationView {
    // A plain copy (structuredClone cost more than the rest of an Acquire's logic together).
    return { ...a, pod: { ...a.pod }, addresses: a.addresses.map((x) => ({ ...x })), state: state ?? a.state, leaseTtlMs: this.cfg.leaseTtlMs };
  }

  // --- Acquire ---------------------------------------------------------------------------------

  private validatePod(pod: PodRef | undefined | null): PodRef {
    const bad = (field: string, reason: string) => new AllocError('ALLOC_INVALID_ARGUMENT', { field, reason });
    if (!pod) throw bad('pod', 'is required');
    if (!pod.uid || pod.uid.length > LIMITS.uid) throw bad('pod.uid', `is required (1-${LIMITS.uid} characters)`);
    if (!pod.namespace || !NAME_RE.test(pod.namespace) || pod.namespace.length > LIMITS.namespace) throw bad('pod.namespace', `must be a Kubernetes namespace name, got '${clip(pod.namespace)}'`);
    if (!pod.name || !NAME_RE.test(pod.name) || pod.name.length > LIMITS.podName) throw bad('pod.name', `must be a Kubernetes pod name, got '${clip(pod.name)}'`);
    return { namespace: pod.namespace, name: pod.name, uid: pod.uid };
  }

  private wantedPools(req: AcquireInput): string[] {
    const names = req.pools && req.pools.length ? req.pools : (this.cfg.defaultPools ?? [...this.pools.keys()].slice(0, 1));
    if (new Set(names).size !== names.length) throw new AllocError('ALLOC_INVALID_ARGUMENT', { field: 'pools', reason: `names a pool twice: ${clip(names.join(', '))}` });
    for (const n of names) this.requirePool(n, 'pools');
    return names;
  }

  async acquire(req: AcquireInput): Promise<AllocationView> {
    const t0 = this.d.clock.monotonic();
    try {
      const pod = this.validatePod(req.pod);
      const pools = this.wantedPools(req);
      const pendingRel = this.pendingRelease.get(pod.uid);
      if (pendingRel) await pendingRel.catch(() => undefined);
      // A concurrent Acquire for this UID is in flight: share its result (its record is only reserved).
      const inFlight = this.pendingAcquire.get(pod.uid);
      if (inFlight) {
        const v = await inFlight;
        this.d.onAcquire?.((this.d.clock.monotonic() - t0) / 1000, 'existing');
        return v;
      }
      const existing = this.byUid.get(pod.uid);
      if (existing) {
        const v = await this.reuse(existing, pools);
        this.d.onAcquire?.((this.d.clock.monotonic() - t0) / 1000, 'existing');
        return v;
      }
      const p = this.allocate(pod, pools).finally(() => this.pendingAcquire.delete(pod.uid));
      this.pendingAcquire.set(pod.uid, p);
      const v = await p;
      this.d.onAcquire?.((this.d.clock.monotonic() - t0) / 1000, 'new');
      return v;
    } catch (e) {
      this.d.onAcquire?.((this.d.clock.monotonic() - t0) / 1000, 'error');
      throw e;
    }
  }

  /** Same UID again (restarted sidecar): same table and IPs; a busy/releasing record comes back to life. */
  private async reuse(a: Allocation, pools: string[]): Promise<AllocationView> {
    const have = a.addresses.map((x) => x.pool);
    if (have.join(',') !== pools.join(',')) this.log.warn({ pod: podKey(a.pod), uid: a.pod.uid, have, asked: pools }, 'acquire repeated with other pools; returning the existing allocation');
    const now = this.d.clock.now();
    const next: Allocation = { ...a, state: 'active', renewedAt: now, leaseExpiresAt: this.expiry(now), releasedAt: undefined, releaseReason: undefined };
    await this.d.store.update(next);
    const was = a.state;
    Object.assign(a, next);
    this.log.info({ decision: 'acquire', pod: podKey(a.pod), uid: a.pod.uid, table: a.table, ip: a.addresses.map((x) => x.ip), was }, 'acquire: existing allocation returned');
    return this.view(a);
  }

  private expiry(now: number): number { return this.cfg.leaseTtlMs > 0 ? now + this.cfg.leaseTtlMs : 0; }

  private async allocate(pod: PodRef, pools: string[]): Promise<AllocationView> {
    this.kernelTables = new Set(await this.d.kernel.listTables());
    for (let attempt = 0; ; attempt++) {
      const a = this.reserve(pod, pools);
      try {
        await this.d.store.create(a);
      } catch (e) {
        this.unreserve(a);
        if (isCoded(e, 'ALLOC_CONFLICT') && attempt < MAX_CONFLICT_RETRIES) {
          this.markForeign(e.details);
          this.log.warn({ pod: podKey(pod), uid: pod.uid, conflict: e.details }, 'claim taken by another writer; picking again');
          continue;
        }
        throw e;
      }
      this.log.info({ decision: 'acquire', pod: podKey(pod), uid: pod.uid, table: a.table, ip: a.addresses.map((x) => x.ip), pools }, 'acquire: new allocation');
      return this.view(a);
    }
  }

  private markForeign(d: Record<string, unknown>): void {
    if (d.resource === 'table' && typeof d.table === 'number') this.foreignTables.add(d.table);
    if (d.resource === 'address' && typeof d.pool === 'string' && typeof d.offset === 'string') this.pools.get(d.pool)?.take(BigInt(d.offset));
  }

  /** Per pool, the offsets given by the last setForeignAddresses (what it may free next time). */
  private readonly foreignOffsets = new Map<string, Set<string>>();

  /**
   * Replace (never add to) the offsets of `pool` held by other writers, e.g. whereabouts' IPPool
   * entries just read: offsets no longer listed become free unless an allocation of ours holds them.
   * The first call per pool must carry the set load() returned (the Kubernetes store does so).
   */
  setForeignAddresses(pool: string, offsets: Iterable<string>): void {
    const p = this.pools.get(pool);
    if (!p) return;
    const next = new Set(offsets);
    const ours = new Set<string>();
    for (const a of this.byUid.values()) for (const x of a.addresses) if (x.pool === pool) ours.add(x.offset);
    for (const o of this.foreignOffsets.get(pool) ?? []) if (!next.has(o) && !ours.has(o)) p.free(BigInt(o));
    for (const o of next) p.take(BigInt(o));
    this.foreignOffsets.set(pool, next);
  }

  /** Synchronous pick-and-hold, so concurrent Acquires never see the same table or address. */
  private reserve(pod: PodRef, pools: string[]): Allocation {
    const held = new Set(this.tableOwner.keys());
    const table = pickTable({ range: this.cfg.tableRange, held, inKernel: this.kernelTables, foreign: this.foreignTables, releasedAt: this.releasedAt });
    if (table === undefined) {
      throw new AllocError('ALLOC_TABLES_EXHAUSTED', { node: this.cfg.node, inUse: rangeSize(this.cfg.tableRange) - this.tablesFree(), size: rangeSize(this.cfg.tableRange), range: rangeText(this.cfg.tableRange) });
    }
    const addresses: AllocatedAddress[] = [];
    for (const name of pools) {
      const pool = this.pools.get(name)!;
      const o = pool.lowestFree();
      if (o === undefined) {
        for (const x of addresses) this.pools.get(x.pool)!.free(BigInt(x.offset));
        throw new AllocError('ALLOC_POOL_EXHAUSTED', { pool: name, cidr: pool.span.range, node: this.cfg.node, inUse: pool.inUse });
      }
      pool.take(o);
      addresses.push({ pool: name, ip: ipFromOffset(pool.span, o), prefixLength: pool.span.prefixLength, gateway: pool.span.gateway, offset: o.toString() });
    }
    const now = this.d.clock.now();
    const a: Allocation = { pod, node: this.cfg.node, table, addresses, state: 'active', createdAt: now, renewedAt: now, leaseExpiresAt: this.expiry(now) };
    this.tableOwner.set(table, pod.uid);
    this.byUid.set(pod.uid, a);
    return a;
  }

  private unreserve(a: Allocation): void {
    if (this.byUid.get(a.pod.uid) === a) this.byUid.delete(a.pod.uid);
    if (this.tableOwner.get(a.table) === a.pod.uid) this.tableOwner.delete(a.table);
    for (const x of a.addresses) this.pools.get(x.pool)?.free(BigInt(x.offset));
  }

  // --- Renew / Get / List ------------------------------------------------------------------------

  private find(sel: Selector): Allocation[] {
    // A UID names one record; namespace/name given with it narrow (never widen) the match.
    if (sel.uid) { const a = this.byUid.get(sel.uid); return a && (!sel.namespace || a.pod.namespace === sel.namespace) && (!sel.name || a.pod.name === sel.name) ? [a] : []; }
    if (sel.namespace && sel.name) return [...this.byUid.values()].filter((a) => a.pod.namespace === sel.namespace && a.pod.name === sel.name);
    throw new AllocError('ALLOC_INVALID_ARGUMENT', { field: 'uid', reason: 'is required (or namespace and name)' });
  }

  private notFound(sel: Selector): AllocError {
    return new AllocError('ALLOC_NOT_FOUND', { pod: sel.namespace && sel.name ? clip(`${sel.namespace}/${sel.name}`) : '(any)', uid: sel.uid ? clip(sel.uid) : '(any)', node: this.cfg.node });
  }

  async renew(uid: string, held?: HeldAllocation): Promise<AllocationView> {
    const [a] = this.find({ uid });
    if (!a && held && !this.pendingRelease.has(uid)) {
      const v = await this.readopt(uid, held);
      if (v) return v;
    }
    // Explicitly released pods stay released; a lease-expired one whose daemon still holds its table revives.
    if (!a || (a.state !== 'active' && a.releaseReason !== 'lease-expired')) throw this.notFound({ uid });
    const pendingRel = this.pendingRelease.get(uid);
    if (pendingRel) { await pendingRel.catch(() => undefined); if (!this.byUid.has(uid)) throw this.notFound({ uid }); }
    const now = this.d.clock.now();
    const next: Allocation = { ...a, state: 'active', renewedAt: now, leaseExpiresAt: this.expiry(now), releasedAt: undefined, releaseReason: undefined };
    await this.d.store.update(next);
    Object.assign(a, next);
    this.log.debug({ decision: 'renew', pod: podKey(a.pod), uid, table: a.table, leaseExpiresAt: a.leaseExpiresAt }, 'renew');
    return this.view(a);
  }

  get(sel: Selector): AllocationView {
    const found = this.find(sel);
    if (!found.length) throw this.notFound(sel);
    return this.view(found.find((a) => a.state === 'active') ?? found[0]!);
  }

  list(): { node: string; allocations: AllocationView[]; tablesFree: number; tablesTotal: number } {
    const allocations = [...this.byUid.values()].sort((x, y) => x.table - y.table).map((a) => this.view(a));
    return { node: this.cfg.node, allocations, tablesFree: this.tablesFree(), tablesTotal: rangeSize(this.cfg.tableRange) };
  }

  tablesFree(): number {
    return freeTables({ range: this.cfg.tableRange, held: new Set(this.tableOwner.keys()), inKernel: this.kernelTables, foreign: this.foreignTables });
  }

  tablesInUse(): number { return this.tableOwner.size; }

  poolStats(): Array<{ pool: string; inUse: number; free: number }> {
    return [...this.pools.values()].map((p) => ({ pool: p.span.name, inUse: p.inUse, free: Number(p.freeCount) }));
  }

  // --- Release / reclaim ---------------------------------------------------------------------

  /** Idempotent: nothing to release → found false. */
  async release(sel: Selector, reason = 'release'): Promise<{ found: boolean; allocation?: AllocationView }> {
    const found = this.find(sel);
    if (!found.length) {
      this.log.info({ decision: 'release', uid: sel.uid, pod: sel.namespace && `${sel.namespace}/${sel.name}`, found: false }, 'release: nothing held');
      return { found: false };
    }
    const views = await Promise.all(found.map((a) => this.finish(a, reason || 'release')));
    return { found: true, allocation: views[0] };
  }

  private finish(a: Allocation, reason: string): Promise<AllocationView> {
    let p = this.pendingRelease.get(a.pod.uid);
    if (!p) {
      p = this.cleanup(a, reason).finally(() => this.pendingRelease.delete(a.pod.uid));
      this.pendingRelease.set(a.pod.uid, p);
    }
    return p;
  }

  /** `del N`; on success (or no such table) forget the allocation, on EBUSY keep it as busy-table. */
  private async cleanup(a: Allocation, reason: string): Promise<AllocationView> {
    const now = this.d.clock.now();
    const facts = { pod: podKey(a.pod), uid: a.pod.uid, table: a.table, ip: a.addresses.map((x) => x.ip), reason };
    let result: 'ok' | 'busy' | 'absent' | 'failed';
    let failure: string | undefined;
    try { result = await this.d.kernel.deleteTable(a.table); } catch (e) { result = 'failed'; failure = (e as Error).message; }
    this.d.onCleanup?.(result);
    if (this.readoptUntil > now) this.releasedSinceStart.add(a.pod.uid);
    if (result === 'ok' || result === 'absent') {
      await this.d.store.remove(a, now);
      this.kernelTables.delete(a.table);
      this.releasedAt[String(a.table)] = now;
      if (this.byUid.get(a.pod.uid) === a) this.byUid.delete(a.pod.uid);
      if (this.tableOwner.get(a.table) === a.pod.uid) this.tableOwner.delete(a.table);
      for (const x of a.addresses) this.pools.get(x.pool)?.free(BigInt(x.offset));
      this.log.info({ decision: 'release', ...facts, kernel: result, was: a.state }, result === 'ok' ? 'released; kernel table deleted' : 'released; no kernel table to delete');
      return this.view(a, 'released');
    }
    const state = result === 'busy' ? 'busy-table' : 'releasing';
    const next: Allocation = { ...a, state, releasedAt: a.releasedAt ?? now, releaseReason: a.releaseReason ?? reason };
    await this.d.store.update(next);
    Object.assign(a, next);
    if (result === 'busy') this.log.warn({ decision: 'table-busy', ...facts }, 'kernel table still held by a daemon (EBUSY); kept reserved, will retry');
    else this.log.error({ decision: 'table-cleanup-failed', ...facts, error: failure }, 'kernel table cleanup failed; kept reserved, will retry');
    return this.view(a);
  }

  /** Reclaim expired leases and retry busy tables. Runs on a timer; safe to call any time. */
  sweep(): Promise<void> {
    if (!this.sweeping) this.sweeping = this.doSweep().finally(() => { this.sweeping = undefined; });
    return this.sweeping;
  }

  private async doSweep(): Promise<void> {
    const now = this.d.clock.now();
    for (const a of [...this.byUid.values()]) {
      if (this.pendingRelease.has(a.pod.uid) || this.pendingAcquire.has(a.pod.uid)) continue;
      try {
        if (a.state === 'active') {
          if (this.cfg.leaseTtlMs > 0 && a.leaseExpiresAt > 0 && now > a.leaseExpiresAt) {
            this.log.warn({ decision: 'reclaim', pod: podKey(a.pod), uid: a.pod.uid, table: a.table, ip: a.addresses.map((x) => x.ip), expiredMsAgo: now - a.leaseExpiresAt }, 'lease not renewed in time; reclaiming');
            this.d.onReclaim?.('lease-expired');
            await this.finish(a, 'lease-expired');
          }
        } else {
          await this.finish(a, a.releaseReason ?? 'release');
        }
      } catch (e) {
        this.log.error({ pod: podKey(a.pod), uid: a.pod.uid, table: a.table, error: (e as Error).message }, 'sweep step failed; retried next round');
      }
    }
    try { this.kernelTables = new Set(await this.d.kernel.listTables()); } catch (e) { this.log.error({ error: (e as Error).message }, 'reading kernel table list failed'); return; }
    await this.cleanLeftovers();
  }

  /**
   * A table in our range that /proc lists, no allocation of ours holds and whose status shows no
   * holder (`Control PID: 0` ≤ mr26.1, `Opencount: 0` mr26.2+) is a leftover (e.g. a SIGKILLed
   * daemon's): `del N` frees its ID, else pickTable skips it forever. It must be seen unheld on two
   * sweeps in a row, so a daemon between its `add N` and opening N/control is not hit. EBUSY → skipped
   * and retried (docs/kernel.md).
   */
  private async cleanLeftovers(): Promise<void> {
    const next = new Set<number>();
    const { min, max } = this.cfg.tableRange;
    for (const t of [...this.kernelTables]) {
      if (t < min || t > max || this.tableOwner.has(t) || this.foreignTables.has(t)) continue;
      try {
        const st = await this.d.kernel.tableStatus(t);
        if (!st || !(st.holderPid === 0 || (st.holderPid === undefined && st.openCount === 0))) continue;
        if (!this.leftoverSeen.has(t)) { next.add(t); continue; }
        if (this.tableOwner.has(t)) continue; // cannot happen while listed, but never delete a table of ours here
        const result = await this.d.kernel.deleteTable(t);
        this.d.onCleanup?.(result);
        if (result === 'busy') {
          next.add(t);
          this.log.warn({ decision: 'leftover-table-busy', table: t }, 'leftover kernel table shows no holder but del answered EBUSY; still skipped, retried next sweep');
        } else {
          this.kernelTables.delete(t);
          this.log.info({ decision: 'leftover-table-deleted', table: t, kernel: result }, 'leftover kernel table (no holder, no allocation) deleted; its ID is free again');
        }
      } catch (e) {
        this.d.onCleanup?.('failed');
        this.log.error({ decision: 'table-cleanup-failed', table: t, error: (e as Error).message }, 'leftover kernel table cleanup failed; still skipped, retried next sweep');
      }
    }
    this.leftoverSeen = next;
  }

  /** Wait for in-flight work. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.pendingAcquire.values(), ...this.pendingRelease.values(), this.sweeping]);
  }
}
