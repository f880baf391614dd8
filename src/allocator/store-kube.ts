// The `kubernetes` AllocationStore: one coordination.k8s.io Lease per (node, table) holding the
// allocation record (holder = pod UID, owner reference to the pod when in the same namespace), and
// media IPs as permanent entries in whereabouts' IPPools (ADR 0010, 0011).
import { createHash } from 'node:crypto';
import type { Informer, KubePort, Lease, IPPool, OverlappingRangeIPReservation } from '../kube/client.js';
import { kubeStatus } from '../kube/client.js';
import { V1MicroTime } from '../kube/k8s.js';
import { AllocError, KubeError, isCoded } from '../errors.js';
import type { Logger } from '../log.js';
import type { AllocatedAddress, Allocation, AllocationStore, StoreState } from './store.js';
import type { PoolSpan } from './pools.js';
import { IPPoolWriter, ipOfOripName, ipPoolName, oripName, ourEntryId, parseOurEntryId, type IPPoolWriterOptions } from './ippool.js';
import { offsetKey, parseCidr, parseIp } from './pools.js';

export const LABEL_MANAGED = 'app.kubernetes.io/managed-by';
export const LABEL_NODE = 'rtpengine-k8s.io/node';
export const LABEL_TABLE = 'rtpengine-k8s.io/table';
export const LABEL_UID = 'rtpengine-k8s.io/pod-uid';
export const ANNOTATION_ALLOCATION = 'rtpengine-k8s.io/allocation';
/** Addresses read from the pod's network-status (network-status IP mode): recorded, never reserved. */
export const ANNOTATION_CNI = 'rtpengine-k8s.io/cni-addresses';
/** The full node name (label values stop at 63 characters). */
export const ANNOTATION_NODE = 'rtpengine-k8s.io/node';
/** On the per-node release-times Lease: `released-t<N>` = wall-clock ms of table N's last release. */
export const ANNOTATION_RELEASED_PREFIX = 'rtpengine-k8s.io/released-t';
export const LABEL_ROLE = 'rtpengine-k8s.io/role';
/** Keeps a Lease (and so the record of its kernel table) until we cleaned up, even after GC. */
export const FINALIZER = 'rtpengine-k8s.io/release';
const MANAGER = 'rtpengine-k8s';

export interface KubePoolConfig {
  span: PoolSpan;
  /** whereabouts `network_name` (IPPool name prefix). */
  networkName?: string;
  /**
   * 'reserve' (default): we write our own entry into the IPPool.
   * 'network-status': the address is the one whereabouts gave the pod (nothing to reserve here).
   */
  mode?: 'reserve' | 'network-status';
}

export interface KubeStoreOptions {
  kube: KubePort;
  node: string;
  /** Namespace of the table Leases (owner references only to pods in this namespace). */
  leaseNamespace: string;
  /** Namespace of the whereabouts IPPools (whereabouts' own namespace; default kube-system). */
  poolNamespace: string;
  pools: KubePoolConfig[];
  log?: Logger;
  ippool?: IPPoolWriterOptions;
  now?: () => number;
  /**
   * Keep the pool namespace's OverlappingRangeIPReservations in an informer (list+watch, started by
   * load(), stopped by close()) and check each Acquire's address against its cache instead of a GET
   * (ADR 0012). Falls back to the GET while the watch is down. Off: a GET per address per Acquire.
   */
  watchReservations?: boolean;
  /** Start even when RBAC denies listing the pool namespace's IPPools (overlap check skipped, logged). Default: refuse. */
  allowUncheckedOverlap?: boolean;
}

/**
 * Remove our finalizer (if the Lease has it), then delete it with its UID as precondition; false
 * when it was already gone. 404/409 from the finalizer update surface to the caller.
 */
export async function stripAndDeleteLease(kube: KubePort, namespace: string, lease: Lease): Promise<boolean> {
  let cur = lease;
  if (cur.metadata?.finalizers?.includes(FINALIZER)) {
    cur = await kube.replaceLease(namespace, { ...cur, metadata: { ...cur.metadata, finalizers: cur.metadata.finalizers.filter((f) => f !== FINALIZER) } });
  }
  return kube.deleteLease(namespace, cur.metadata!.name!, { uid: cur.metadata!.uid! });
}

/** Label values are ≤ 63 characters: long node names are hashed (the annotation keeps the name). */
export const nodeLabel = (node: string) =>
  /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(node) ? node : `h-${createHash('sha256').update(node).digest('hex').slice(0, 40)}`;
const DNS_SUBDOMAIN_MAX = 253;
/**
 * `rtpe-<node><suffix>`; when that exceeds a DNS-1123 subdomain (253), the node part is cut and a
 * hash of the whole node name keeps it unique and deterministic (the node label/annotation name it).
 */
export function nodeObjectName(node: string, suffix: string): string {
  const plain = `rtpe-${node}${suffix}`;
  if (plain.length <= DNS_SUBDOMAIN_MAX) return plain;
  const h = createHash('sha256').update(node).digest('hex').slice(0, 16);
  const head = node.slice(0, DNS_SUBDOMAIN_MAX - 'rtpe-'.length - 1 - h.length - suffix.length).replace(/[-.]+$/, '');
  return `rtpe-${head}-${h}${suffix}`;
}
export const leaseName = (node: string, table: number) => nodeObjectName(node, `-t${table}`);
/** The one per-node Lease holding table release times (least-recently-released order survives restarts). */
export const releaseTimesName = (node: string) => nodeObjectName(node, '-released');
const ROLE_RELEASE_TIMES = 'release-times';

/** The allocation record kept in the Lease annotation (the Lease itself is the table claim). */
type Record_ = Omit<Allocation, never>;

export class KubeStore implements AllocationStore {
  readonly kind = 'kubernetes';
  private readonly kube: KubePort;
  private readonly pools = new Map<string, KubePoolConfig>();
  private readonly writer: IPPoolWriter;
  /** Last Lease seen per table (for resourceVersion on replace). */
  private readonly leases = new Map<number, Lease>();
  private readonly releasedAt: Record<string, number> = {};
  private readonly now: () => number;
  /** network-status mode: addresses per pod UID, recorded in the Lease (ANNOTATION_CNI). */
  private readonly cni = new Map<string, AllocatedAddress[]>();
  /** Where fresh foreign-offset sets go (the service's setForeignAddresses); see attachForeignSink. */
  private foreignSink: ((pool: string, offsets: string[]) => void) | undefined;
  private loadedForeign: Record<string, string[]> = {};
  private foreignSeq = 0;
  private readonly foreignApplied = new Map<string, number>();
  private orips: Informer<OverlappingRangeIPReservation> | undefined;
  /** The ORIP watch is accepted (cache current); false before, and after any list/watch error. */
  private oripsLive = false;

  constructor(private readonly o: KubeStoreOptions) {
    this.kube = o.kube;
    for (const p of o.pools) this.pools.set(p.span.name, p);
    this.writer = new IPPoolWriter(o.kube, o.poolNamespace, o.ippool);
    this.now = o.now ?? Date.now;
  }

  private pool(name: string): KubePoolConfig {
    const p = this.pools.get(name);
    if (!p) throw new AllocError('ALLOC_UNKNOWN_POOL', { pool: name, known: [...this.pools.keys()].join(', ') });
    return p;
  }
  private poolObjectName(p: KubePoolConfig) { return ipPoolName(p.span.range, p.networkName); }
  private reserves(p: KubePoolConfig) { return (p.mode ?? 'reserve') === 'reserve'; }

  private leaseBody(a: Allocation): Lease {
    const ownerReferences = a.pod.namespace === this.o.leaseNamespace
      ? [{ apiVersion: 'v1', kind: 'Pod', name: a.pod.name, uid: a.pod.uid, blockOwnerDeletion: false }]
      : undefined;
    // MicroTime fields: the API server parses exactly six fractional digits; a plain Date serialises
    // three and every write would be refused 400 (kubernetes-client/javascript#828).
    const t = new V1MicroTime(a.createdAt || this.now());
    return {
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
      metadata: {
        name: leaseName(this.o.node, a.table),
        labels: { [LABEL_MANAGED]: MANAGER, [LABEL_NODE]: nodeLabel(this.o.node), [LABEL_TABLE]: String(a.table), [LABEL_UID]: a.pod.uid },
        annotations: { [ANNOTATION_ALLOCATION]: JSON.stringify(a satisfies Record_), [ANNOTATION_NODE]: this.o.node, ...this.cniAnnotation(a.pod.uid) },
        ownerReferences,
        finalizers: [FINALIZER],
      },
      spec: { holderIdentity: a.pod.uid, acquireTime: t, renewTime: new V1MicroTime(a.renewedAt || t.getTime()) },
    };
  }

  private cniAnnotation(uid: string): Record<string, string> {
    const c = this.cni.get(uid);
    return c?.length ? { [ANNOTATION_CNI]: JSON.stringify(c) } : {};
  }

  /** network-status mode: the addresses to record with `uid`'s allocation (written by its create/update). */
  noteCniAddresses(uid: string, addresses: AllocatedAddress[]): void {
    if (addresses.length) this.cni.set(uid, addresses.map((x) => ({ ...x }))); else this.cni.delete(uid);
  }
  /** The recorded network-status addresses of `uid` (empty when none). */
  cniAddresses(uid: string): AllocatedAddress[] { return (this.cni.get(uid) ?? []).map((x) => ({ ...x })); }
  /** Forget noted addresses of a pod that got no allocation after all (failed Acquire). */
  dropCniAddresses(uid: string): void { if (![...this.leases.values()].some((l) => l.spec?.holderIdentity === uid)) this.cni.delete(uid); }

  private static record(l: Lease): Allocation | undefined {
    try {
      const a = JSON.parse(l.metadata?.annotations?.[ANNOTATION_ALLOCATION] ?? '') as Allocation;
      return a && typeof a.table === 'number' && a.pod?.uid ? a : undefined;
    } catch { return undefined; }
  }

  /**
   * Refuse whereabouts setups our empty-podref entries cannot make safe (ADR 0012): a NodeSlicePool
   * over our range (whereabouts then allocates from per-node IPPools we never write), or another
   * IPPool whose range overlaps ours (another range or network_name: whereabouts keeps those apart
   * only through OverlappingRangeIPReservations, which we do not create).
   */
  async checkWhereaboutsSetup(): Promise<void> {
    const ns = this.o.poolNamespace;
    const ours = [...this.pools.values()].filter((p) => this.reserves(p));
    if (!ours.length) return;
    const unsafe = (p: KubePoolConfig, reason: string) => new AllocError('ALLOC_WHEREABOUTS_UNSAFE', { pool: p.span.name, range: p.span.range, reason });
    const slices = await this.kube.listNodeSlicePools(ns);
    for (const sp of slices ?? []) {
      for (const p of ours) if (rangesOverlap(sp.spec.range, p.span.range)) throw unsafe(p, `NodeSlicePool ${ns}/${sp.metadata.name} (range ${sp.spec.range}, slices ${sp.spec.sliceSize}) cuts this range into per-node IPPools that the allocator does not write`);
    }
    let pools: IPPool[];
    try { pools = await this.kube.listIPPools(ns); } catch (e) {
      if (kubeStatus(e) !== 403) throw e;
      // Fail closed: an unchecked overlap means silent duplicate IPs (ADR 0012); only an explicit opt-out starts.
      const unchecked = new AllocError('ALLOC_WHEREABOUTS_UNCHECKED', { namespace: ns, reason: `RBAC denies list on ippools (${(e as Error).message})` }, { cause: e });
      if (!this.o.allowUncheckedOverlap) throw unchecked;
      this.o.log?.warn({ code: unchecked.code, ...unchecked.details }, `${unchecked.message} — started anyway (--allow-unchecked-overlap): overlapping whereabouts ranges were NOT checked`);
      return;
    }
    for (const other of pools) {
      for (const p of ours) {
        if (other.metadata.name === this.poolObjectName(p)) continue;
        if (rangesOverlap(other.spec.range, p.span.range)) throw unsafe(p, `IPPool ${ns}/${other.metadata.name} (range ${other.spec.range}) overlaps it: whereabouts hands out its addresses checking only OverlappingRangeIPReservations, which the allocator does not create`);
      }
    }
  }

  /** Start the ORIP informer once (watchReservations); its first list must succeed, else the GET path stays. */
  private async startReservationWatch(): Promise<void> {
    if (!this.o.watchReservations || this.orips) return;
    let failed: ((e: Error) => void) | undefined;
    const first = new Promise<never>((_, reject) => { failed = reject; });
    const inf = this.kube.watchOverlappingReservations(this.o.poolNamespace, {
      watching: () => { this.oripsLive = true; },
      error: (e, retryMs) => {
        this.oripsLive = false;
        failed?.(e);
        this.o.log?.warn({ namespace: this.o.poolNamespace, err: e.message, retryMs }, 'OverlappingRangeIPReservation watch failed; each Acquire reads its address\'s reservation (GET) until it is back');
      },
    });
    try { await Promise.race([inf.synced, first]); } catch (e) {
      await inf.stop();
      throw e;
    } finally { failed = undefined; }
    this.orips = inf;
  }

  /** The namespace's ORIPs: from the informer's cache when it is current, else one list. */
  private async reservations(): Promise<Array<{ metadata: { name: string } }>> {
    await this.startReservationWatch();
    if (this.orips && this.oripsLive) return this.orips.list();
    return this.kube.listOverlappingReservations(this.o.poolNamespace);
  }

  /** The ORIP of `name`, if any: the informer's cache when current, else a GET. */
  private async reservation(name: string): Promise<OverlappingRangeIPReservation | undefined> {
    if (this.orips && this.oripsLive) return this.orips.get(name, this.o.poolNamespace);
    return this.kube.getOverlappingReservation(this.o.poolNamespace, name);
  }

  /** Whether the ORIP informer's cache holds `name` (diagnostics; false without watchReservations). */
  reservationCached(name: string): boolean { return !!this.orips?.get(name, this.o.poolNamespace); }

  /** Offsets of `p` reserved by OverlappingRangeIPReservations under our network_name (taken for us). */
  private async oripOffsets(p: KubePoolConfig, orips?: Array<{ metadata: { name: string } }>): Promise<string[]> {
    const list = orips ?? await this.reservations();
    const out: string[] = [];
    for (const o of list) {
      const ip = ipOfOripName(o.metadata.name, p.networkName);
      if (!ip || !parseIp(ip) || parseIp(ip)!.family !== p.span.family) continue;
      try { const off = offsetKey(p.span, ip); if (BigInt(off) >= 0n && BigInt(off) <= p.span.last) out.push(off); } catch { /* outside this pool */ }
    }
    return out;
  }

  async load(): Promise<StoreState> {
    await this.checkWhereaboutsSetup();
    // A starting allocator is an installation that stays: clear a mark a past `ctl cleanup` left (ADR 0059).
    for (const p of this.pools.values()) {
      if (this.reserves(p) && await this.writer.markUninstalled(this.poolObjectName(p), p.span.range, undefined)) {
        this.o.log?.info({ pool: this.poolObjectName(p) }, 'cleared the uninstalled mark of a previous ctl cleanup');
      }
    }
    const leases = await this.kube.listLeases(this.o.leaseNamespace, `${LABEL_MANAGED}=${MANAGER},${LABEL_NODE}=${nodeLabel(this.o.node)}`);
    const allocations: Allocation[] = [];
    this.leases.clear();
    for (const k of Object.keys(this.releasedAt)) delete this.releasedAt[k];
    this.cni.clear();
    for (const l of leases) {
      if (l.metadata?.labels?.[LABEL_ROLE] === ROLE_RELEASE_TIMES) {
        for (const [k, v] of Object.entries(l.metadata.annotations ?? {})) {
          const t = k.startsWith(ANNOTATION_RELEASED_PREFIX) ? k.slice(ANNOTATION_RELEASED_PREFIX.length) : '';
          if (/^\d+$/.test(t) && Number.isFinite(Number(v))) this.releasedAt[t] = Number(v);
        }
        continue;
      }
      const a = KubeStore.record(l);
      if (!a || a.node !== this.o.node) { this.o.log?.warn({ lease: l.metadata?.name }, 'lease without a readable allocation record; ignored (left in place for inspection)'); continue; }
      this.leases.set(a.table, l);
      allocations.push(a);
      try {
        const c = JSON.parse(l.metadata?.annotations?.[ANNOTATION_CNI] ?? '[]') as AllocatedAddress[];
        if (Array.isArray(c) && c.length) this.cni.set(a.pod.uid, c);
      } catch { this.o.log?.warn({ lease: l.metadata?.name }, 'unreadable network-status address record; not shown until the pod acquires again'); }
    }
    const foreignAddresses: Record<string, string[]> = {};
    const orips = [...this.pools.values()].some((p) => this.reserves(p)) ? await this.reservations() : [];
    for (const p of this.pools.values()) {
      if (!this.reserves(p)) { foreignAddresses[p.span.name] = []; continue; }
      const pool = await this.writer.read(this.poolObjectName(p), p.span.range);
      foreignAddresses[p.span.name] = [...new Set([...await this.foreignIn(p, pool), ...await this.oripOffsets(p, orips)])];
    }
    this.loadedForeign = foreignAddresses;
    // An active allocation must still hold its entries (repair if someone removed them and the address is free).
    for (const a of allocations) {
      for (const ad of a.addresses) {
        const p = this.pools.get(ad.pool);
        if (!p || !this.reserves(p)) continue;
        const r = await this.writer.reserve(this.poolObjectName(p), p.span.range, ad.offset, this.entry(a));
        if (!r.ok) this.o.log?.error({ pod: a.pod, pool: ad.pool, offset: ad.offset, holder: r.holder }, 'our address was taken over by another IPPool entry; the pod keeps using it — investigate');
      }
    }
    return { allocations, tableReleasedAt: { ...this.releasedAt }, foreignAddresses };
  }

  /**
   * Offsets of `pool` held by anyone but a live allocation of ours: whereabouts' entries, other
   * nodes' allocators, and our own entries whose record does not list them. Our entries whose
   * allocation is gone (Lease garbage-collected, failed roll-back) are freed here.
   */
  private async foreignIn(p: KubePoolConfig, pool: IPPool): Promise<string[]> {
    const name = this.poolObjectName(p);
    const holders = new Map<string, Allocation>();
    for (const l of this.leases.values()) { const a = KubeStore.record(l); if (a) holders.set(a.pod.uid, a); }
    const foreign: string[] = [];
    for (const [offset, e] of Object.entries(pool.spec.allocations ?? {})) {
      if (!/^\d+$/.test(offset)) { this.o.log?.warn({ pool: name, key: offset }, 'IPPool key is not a decimal offset; ignored as whereabouts does'); continue; }
      const mine = parseOurEntryId(e.id);
      if (mine && mine.node === this.o.node) {
        const a = holders.get(mine.uid);
        if (!a) {
          // Re-checked by id on a fresh read inside release(): a concurrent create writes its Lease first.
          if (await this.writer.release(name, p.span.range, offset, e.id)) this.o.log?.info({ pool: name, offset, uid: mine.uid }, 'freed IPPool entry whose allocation is gone');
          continue;
        }
        if (a.addresses.some((x) => x.pool === p.span.name && x.offset === offset)) continue;
      }
      foreign.push(offset);
    }
    return foreign;
  }

  /**
   * Connect the service's setForeignAddresses: it first gets the sets load() returned, then a fresh
   * set (replacing, never adding to, the last) after every address conflict and every refreshForeign().
   */
  attachForeignSink(sink: (pool: string, offsets: string[]) => void): void {
    this.foreignSink = sink;
    for (const [pool, offsets] of Object.entries(this.loadedForeign)) sink(pool, offsets);
  }

  /**
   * Re-read every reserved pool and hand its foreign set to the sink (resync; after a conflict one
   * pool, plus the contested offset: the service marks it taken, so the set must own it to free it later).
   */
  async refreshForeign(only?: string, contested?: string): Promise<void> {
    for (const p of this.pools.values()) {
      if (!this.reserves(p) || (only && p.span.name !== only)) continue;
      const seq = ++this.foreignSeq;
      const pool = await this.writer.read(this.poolObjectName(p), p.span.range);
      const offsets = [...new Set([...await this.foreignIn(p, pool), ...await this.oripOffsets(p)])];
      if (contested !== undefined && !offsets.includes(contested)) offsets.push(contested);
      // two refreshes in flight: the one that started later wins
      if ((this.foreignApplied.get(p.span.name) ?? 0) > seq) continue;
      this.foreignApplied.set(p.span.name, seq);
      this.foreignSink?.(p.span.name, offsets);
    }
  }

  private entry(a: Allocation) { return { id: ourEntryId(this.o.node, a.pod.uid), podref: '', ifname: '' }; }

  async create(a: Allocation): Promise<void> {
    const name = leaseName(this.o.node, a.table);
    // An IP whereabouts reserved through an OverlappingRangeIPReservation is taken (ADR 0012): read
    // from the ORIP informer's cache (watchReservations), else one GET per address, before anything is written.
    for (const ad of a.addresses) {
      const p = this.pool(ad.pool);
      if (!this.reserves(p)) continue;
      const oname = oripName(ad.ip, p.networkName);
      const orip = await this.reservation(oname).catch((e) => { throw this.writeError(e, `overlappingrangeipreservations ${oname}`); });
      if (orip) {
        try { await this.refreshForeign(ad.pool, ad.offset); } catch (e) { this.o.log?.warn({ pool: ad.pool, err: (e as Error).message }, 'could not refresh foreign addresses after a conflict'); }
        throw new AllocError('ALLOC_CONFLICT', { resource: 'address', pool: ad.pool, offset: ad.offset, reason: `OverlappingRangeIPReservation ${this.o.poolNamespace}/${oname} holds ${ad.ip} for ${orip.spec?.podref || '(no podref)'}` });
      }
    }
    try {
      this.leases.set(a.table, await this.kube.createLease(this.o.leaseNamespace, this.leaseBody(a)));
    } catch (e) {
      if (kubeStatus(e) !== 409) throw this.writeError(e, `leases ${name}`);
      const cur = await this.kube.getLease(this.o.leaseNamespace, name).catch((x) => { throw this.writeError(x, `leases ${name}`); });
      if (cur?.spec?.holderIdentity !== a.pod.uid) {
        throw new AllocError('ALLOC_CONFLICT', { resource: 'table', table: a.table, reason: `Lease ${this.o.leaseNamespace}/${name} is held by ${cur?.spec?.holderIdentity ?? '(being deleted)'}` });
      }
      if (cur) this.leases.set(a.table, cur);
    }
    const done: Array<{ p: KubePoolConfig; offset: string }> = [];
    for (const ad of a.addresses) {
      const p = this.pool(ad.pool);
      if (!this.reserves(p)) continue;
      let r;
      try { r = await this.writer.reserve(this.poolObjectName(p), p.span.range, ad.offset, this.entry(a)); } catch (e) { await this.undo(a, done); throw this.writeError(e, `ippools ${this.poolObjectName(p)}`); }
      if (!r.ok) {
        await this.undo(a, done);
        // The service's view of other writers is stale: replace it from a fresh read before it picks again.
        try { await this.refreshForeign(ad.pool, ad.offset); } catch (e) { this.o.log?.warn({ pool: ad.pool, err: (e as Error).message }, 'could not refresh foreign addresses after a conflict'); }
        throw new AllocError('ALLOC_CONFLICT', { resource: 'address', pool: ad.pool, offset: ad.offset, reason: `IPPool ${this.poolObjectName(p)} entry ${ad.offset} is held by id=${r.holder.id} podref=${r.holder.podref}` });
      }
      done.push({ p, offset: ad.offset });
    }
  }

  /** All or nothing: a failed create gives back what it took. */
  private async undo(a: Allocation, done: Array<{ p: KubePoolConfig; offset: string }>): Promise<void> {
    try {
      for (const d of done) await this.writer.release(this.poolObjectName(d.p), d.p.span.range, d.offset, this.entry(a).id);
      await this.deleteLease(a);
    } catch (e) {
      this.o.log?.warn({ pod: a.pod, err: (e as Error).message }, 'roll-back of a failed create incomplete; reconciliation frees it');
    }
  }

  /** Drop our finalizer (a Lease the GC already marked then disappears), then delete. */
  private async deleteLease(a: Allocation): Promise<void> {
    const name = leaseName(this.o.node, a.table);
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = attempt === 0 ? (this.leases.get(a.table) ?? await this.kube.getLease(this.o.leaseNamespace, name)) : await this.kube.getLease(this.o.leaseNamespace, name);
      if (!cur || cur.spec?.holderIdentity !== a.pod.uid) break; // gone, or the name belongs to another holder now
      try {
        await stripAndDeleteLease(this.kube, this.o.leaseNamespace, cur);
        break;
      } catch (e) {
        const st = kubeStatus(e);
        if (st === 404) break;
        if (st !== 409) throw e; // stale cache or a concurrent change: re-read
      }
    }
    this.leases.delete(a.table);
  }

  async update(a: Allocation): Promise<void> {
    const name = leaseName(this.o.node, a.table);
    if (this.unchangedButRenewal(a)) return;
    for (let attempt = 0; attempt < 5; attempt++) {
      let cur = this.leases.get(a.table);
      if (!cur || attempt > 0) cur = await this.kube.getLease(this.o.leaseNamespace, name).catch((e) => { throw this.writeError(e, `leases ${name}`); });
      if (!cur || cur.spec?.holderIdentity !== a.pod.uid) throw new AllocError('ALLOC_NOT_FOUND', { pod: `${a.pod.namespace}/${a.pod.name}`, uid: a.pod.uid, node: this.o.node });
      const body = this.leaseBody(a);
      body.metadata!.resourceVersion = cur.metadata?.resourceVersion;
      body.metadata!.ownerReferences = cur.metadata?.ownerReferences;
      try {
        this.leases.set(a.table, await this.kube.replaceLease(this.o.leaseNamespace, body));
        return;
      } catch (e) {
        if (kubeStatus(e) !== 409 && kubeStatus(e) !== 404) throw this.writeError(e, `leases ${name}`);
      }
    }
    throw this.writeError(new KubeError('KUBE_RETRIES_EXHAUSTED', { resource: `leases ${name}`, attempts: 5 }), `leases ${name}`);
  }

  /**
   * Without a lease TTL (Kubernetes mode default) a Renew or repeated Acquire changes only
   * renewedAt: nothing anyone reads, so no API write (the pod's lifecycle decides, not renewals).
   */
  private unchangedButRenewal(a: Allocation): boolean {
    const cur = this.leases.get(a.table);
    const rec = cur && KubeStore.record(cur);
    if (!rec || rec.pod.uid !== a.pod.uid || a.leaseExpiresAt !== 0 || rec.leaseExpiresAt !== 0) return false;
    if (rec.state !== a.state || rec.releasedAt !== a.releasedAt || rec.releaseReason !== a.releaseReason) return false;
    return (cur.metadata?.annotations?.[ANNOTATION_CNI] ?? '') === (this.cniAnnotation(a.pod.uid)[ANNOTATION_CNI] ?? '');
  }

  async remove(a: Allocation, releasedAt: number): Promise<void> {
    try {
      for (const ad of a.addresses) {
        const p = this.pools.get(ad.pool);
        if (!p || !this.reserves(p)) continue;
        await this.writer.release(this.poolObjectName(p), p.span.range, ad.offset, this.entry(a).id);
      }
      await this.deleteLease(a);
    } catch (e) {
      // Uninstalled meanwhile (ctl cleanup freed our records): nothing left to remove or record.
      if (isCoded(e, 'ALLOC_UNINSTALLING')) { this.o.log?.info({ pod: a.pod, err: (e as Error).message }, 'release after uninstall cleanup: no record written'); this.leases.delete(a.table); this.cni.delete(a.pod.uid); return; }
      throw this.writeError(e, `allocation of ${a.pod.namespace}/${a.pod.name}`);
    }
    this.releasedAt[String(a.table)] = releasedAt;
    this.cni.delete(a.pod.uid);
    await this.recordRelease(a.table, releasedAt);
  }

  /**
   * Persist table N's release time as one annotation of the per-node release-times Lease (a merge
   * patch: no read, no conflict). Best effort: on failure the order falls back to ID order for N.
   */
  private async recordRelease(table: number, at: number): Promise<void> {
    const name = releaseTimesName(this.o.node);
    const annotations = { [`${ANNOTATION_RELEASED_PREFIX}${table}`]: String(at) };
    try {
      try { await this.kube.patchLeaseAnnotations(this.o.leaseNamespace, name, annotations); return; } catch (e) { if (kubeStatus(e) !== 404) throw e; }
      try {
        await this.kube.createLease(this.o.leaseNamespace, {
          apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
          metadata: { name, labels: { [LABEL_MANAGED]: MANAGER, [LABEL_NODE]: nodeLabel(this.o.node), [LABEL_ROLE]: ROLE_RELEASE_TIMES }, annotations: { [ANNOTATION_NODE]: this.o.node, ...annotations } },
          spec: {},
        });
      } catch (e) {
        if (kubeStatus(e) !== 409) throw e;
        await this.kube.patchLeaseAnnotations(this.o.leaseNamespace, name, annotations); // created meanwhile
      }
    } catch (e) {
      this.o.log?.warn({ table, lease: name, err: (e as Error).message }, 'could not record the table release time; least-recently-released order may ignore this release after a restart');
    }
  }

  /** Stops the ORIP informer (nothing buffered: every write is acknowledged by the API). */
  async close(): Promise<void> {
    const inf = this.orips;
    this.orips = undefined;
    this.oripsLive = false;
    await inf?.stop();
  }

  private writeError(e: unknown, what: string): AllocError {
    if (e instanceof AllocError) return e;
    const reason = isCoded(e) ? e.message : (e as Error)?.message ?? String(e);
    return new AllocError('ALLOC_STATE_WRITE', { path: `Kubernetes API (${what})`, reason }, { cause: e });
  }
}

/** Whether two CIDRs share an address. */
export function rangesOverlap(a: string, b: string): boolean {
  const x = parseCidr(a); const y = parseCidr(b);
  if (!x || !y || x.family !== y.family) return false;
  const bits = x.family === 4 ? 32n : 128n;
  const end = (c: { network: bigint; prefixLength: number }) => c.network + (1n << (bits - BigInt(c.prefixLength))) - 1n;
  return x.network <= end(y) && y.network <= end(x);
}
