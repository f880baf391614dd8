// The `kubernetes` AllocationStore: one coordination.k8s.io Lease per (node, table) holding the
// allocation record (holder = pod UID, owner reference to the pod when in the same namespace), and
// media IPs as permanent entries in whereabouts' IPPools (ADR 0010, 0011).
import { createHash } from 'node:crypto';
import type { KubePort, Lease } from '../kube/client.js';
import { kubeStatus } from '../kube/client.js';
import { AllocError, KubeError, isCoded } from '../errors.js';
import type { Logger } from '../log.js';
import type { Allocation, AllocationStore, StoreState } from './store.js';
import type { PoolSpan } from './pools.js';
import { IPPoolWriter, ipPoolName, ourEntryId, parseOurEntryId, type IPPoolWriterOptions } from './ippool.js';

export const LABEL_MANAGED = 'app.kubernetes.io/managed-by';
export const LABEL_NODE = 'rtpengine-k8s.io/node';
export const LABEL_TABLE = 'rtpengine-k8s.io/table';
export const LABEL_UID = 'rtpengine-k8s.io/pod-uid';
export const ANNOTATION_ALLOCATION = 'rtpengine-k8s.io/allocation';
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
}

/** Label values are ≤ 63 characters: long node names are hashed (the annotation keeps the name). */
export const nodeLabel = (node: string) =>
  /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(node) ? node : `h-${createHash('sha256').update(node).digest('hex').slice(0, 40)}`;
export const leaseName = (node: string, table: number) => `rtpe-${node}-t${table}`;

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
    const t = new Date(a.createdAt || this.now());
    return {
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
      metadata: {
        name: leaseName(this.o.node, a.table),
        labels: { [LABEL_MANAGED]: MANAGER, [LABEL_NODE]: nodeLabel(this.o.node), [LABEL_TABLE]: String(a.table), [LABEL_UID]: a.pod.uid },
        annotations: { [ANNOTATION_ALLOCATION]: JSON.stringify(a satisfies Record_) },
        ownerReferences,
        finalizers: [FINALIZER],
      },
      spec: { holderIdentity: a.pod.uid, acquireTime: t as any, renewTime: new Date(a.renewedAt || t.getTime()) as any },
    };
  }

  private static record(l: Lease): Allocation | undefined {
    try {
      const a = JSON.parse(l.metadata?.annotations?.[ANNOTATION_ALLOCATION] ?? '') as Allocation;
      return a && typeof a.table === 'number' && a.pod?.uid ? a : undefined;
    } catch { return undefined; }
  }

  async load(): Promise<StoreState> {
    const leases = await this.kube.listLeases(this.o.leaseNamespace, `${LABEL_MANAGED}=${MANAGER},${LABEL_NODE}=${nodeLabel(this.o.node)}`);
    const allocations: Allocation[] = [];
    this.leases.clear();
    for (const l of leases) {
      const a = KubeStore.record(l);
      if (!a || a.node !== this.o.node) { this.o.log?.warn({ lease: l.metadata?.name }, 'lease without a readable allocation record; ignored (left in place for inspection)'); continue; }
      this.leases.set(a.table, l);
      allocations.push(a);
    }
    const ours = new Set(allocations.map((a) => a.pod.uid));
    const foreignAddresses: Record<string, string[]> = {};
    for (const p of this.pools.values()) {
      if (!this.reserves(p)) { foreignAddresses[p.span.name] = []; continue; }
      const name = this.poolObjectName(p);
      const pool = await this.writer.read(name, p.span.range);
      const foreign: string[] = [];
      for (const [offset, e] of Object.entries(pool.spec.allocations ?? {})) {
        if (!/^\d+$/.test(offset)) { this.o.log?.warn({ pool: name, key: offset }, 'IPPool key is not a decimal offset; ignored as whereabouts does'); continue; }
        const mine = parseOurEntryId(e.id);
        if (mine && mine.node === this.o.node) {
          // Our entry without a Lease: its Lease was garbage-collected with the pod (or never made).
          if (!ours.has(mine.uid)) {
            await this.writer.release(name, p.span.range, offset, e.id);
            this.o.log?.info({ pool: name, offset, uid: mine.uid }, 'freed IPPool entry whose allocation is gone');
          }
          continue;
        }
        foreign.push(offset);
      }
      foreignAddresses[p.span.name] = foreign;
    }
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

  private entry(a: Allocation) { return { id: ourEntryId(this.o.node, a.pod.uid), podref: '', ifname: '' }; }

  async create(a: Allocation): Promise<void> {
    const name = leaseName(this.o.node, a.table);
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
        if (cur.metadata?.finalizers?.includes(FINALIZER)) {
          await this.kube.replaceLease(this.o.leaseNamespace, { ...cur, metadata: { ...cur.metadata, finalizers: cur.metadata.finalizers.filter((f) => f !== FINALIZER) } });
        }
        await this.kube.deleteLease(this.o.leaseNamespace, name, { uid: cur.metadata!.uid! });
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

  async remove(a: Allocation, releasedAt: number): Promise<void> {
    try {
      for (const ad of a.addresses) {
        const p = this.pools.get(ad.pool);
        if (!p || !this.reserves(p)) continue;
        await this.writer.release(this.poolObjectName(p), p.span.range, ad.offset, this.entry(a).id);
      }
      await this.deleteLease(a);
    } catch (e) {
      throw this.writeError(e, `allocation of ${a.pod.namespace}/${a.pod.name}`);
    }
    this.releasedAt[String(a.table)] = releasedAt;
  }

  async close(): Promise<void> { /* nothing buffered: every write is acknowledged by the API */ }

  private writeError(e: unknown, what: string): AllocError {
    if (e instanceof AllocError) return e;
    const reason = isCoded(e) ? e.message : (e as Error)?.message ?? String(e);
    return new AllocError('ALLOC_STATE_WRITE', { path: `Kubernetes API (${what})`, reason }, { cause: e });
  }
}
