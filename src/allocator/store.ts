// The storage contract behind the allocator: what an allocation is and the atomic operations a
// store must offer. Two implementations: store-file.ts (one state file) and store-kube.ts
// (a Lease per table, whereabouts IPPool entries keyed by decimal offset).

/** The pod an allocation belongs to. `uid` is the identity; namespace/name are for people and IPPool podrefs. */
export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
}

/** One media address handed to a pod. */
export interface AllocatedAddress {
  /** Pool name from the allocator's configuration. */
  pool: string;
  /** Canonical text form (IPv6 compressed, lower case). */
  ip: string;
  prefixLength: number;
  /** '' when the pool has no gateway. */
  gateway: string;
  /**
   * Decimal offset of `ip` from the pool's canonical network address — exactly the key whereabouts
   * uses in `IPPool.spec.allocations`, so the Kubernetes store writes it unchanged.
   */
  offset: string;
}

/**
 * active       — handed out and in use (its lease is renewed by the sidecar in file mode).
 * releasing    — release/reclaim decided, kernel table cleanup not yet confirmed (e.g. the /proc write
 *                failed for a reason other than EBUSY); retried by the cleanup loop.
 * busy-table   — released, but `del N` answered EBUSY: a daemon still holds the table. The record keeps
 *                its table AND addresses (a live daemon probably still uses the IP) until a retry
 *                succeeds; then it is removed. Never handed to another pod meanwhile. If the SAME pod
 *                (same UID) acquires again, the record becomes active again (its daemon is the holder).
 */
export type AllocationState = 'active' | 'releasing' | 'busy-table';

export interface Allocation {
  pod: PodRef;
  /** Node name the allocation was made on (the allocator's NODE_NAME). */
  node: string;
  /** Kernel forwarding table ID, 0–63, unique on the node. */
  table: number;
  /** One address per requested pool, in request order. */
  addresses: AllocatedAddress[];
  state: AllocationState;
  /** Wall-clock milliseconds since the epoch. */
  createdAt: number;
  renewedAt: number;
  /** The allocation is reclaimed when now > leaseExpiresAt (file mode; 0 = never expires). */
  leaseExpiresAt: number;
  /** When release/reclaim was decided (set with state releasing/busy-table). */
  releasedAt?: number;
  /** Why it left `active`: 'release' (RPC or ctl) or 'lease-expired'. */
  releaseReason?: string;
}

/** Everything a store knows about this node, read once at start (and by reconcile loops). */
export interface StoreState {
  /** This node's allocations in any state. */
  allocations: Allocation[];
  /**
   * Table ID (decimal string key) → wall-clock ms of its last release. Tables never released are
   * absent (treated as 0), so they are picked first; the most recently released is picked last.
   */
  tableReleasedAt: Record<string, number>;
  /**
   * Pool name → offsets held by someone other than this allocator (e.g. whereabouts' own IPPool
   * entries). Never handed out. The file store returns {}.
   */
  foreignAddresses: Record<string, string[]>;
  /** Set when the current state was damaged and the store started from its previous generation. */
  recovery?: StateRecovery;
}

/** What a store recovered from (file store: the previous generation beside a damaged state file). */
export interface StateRecovery {
  /** Why the current state could not be used. */
  reason: string;
  /** Where the recovered allocations come from. */
  from: string;
  /** Where the damaged file was moved for inspection. */
  damagedKeptAs?: string;
  /** Records still readable in the damaged file (untrusted: reported, never adopted as they are). */
  salvaged: Allocation[];
}

/**
 * Atomic operations; each resolves only once the change is durable (file fsynced / API accepted).
 * The service decides in memory (one process per node is the only writer of its allocations) and
 * calls these to persist; a store must still refuse to overwrite someone else's claim:
 *
 * - `create(a)`: claim `a.table` and every address in `a.addresses` for `a.pod.uid`, all or nothing.
 *   A claim held by another owner → AllocError('ALLOC_CONFLICT', { resource: 'table', table }) or
 *   ({ resource: 'address', pool, offset }); the service marks that resource taken and picks again.
 *   Creating an allocation that already exists with the same uid/table/addresses succeeds (retries).
 * - `update(a)`: replace the mutable fields (state, renewedAt, leaseExpiresAt, releasedAt,
 *   releaseReason) of the allocation with `a.pod.uid`. The table and addresses never change.
 *   Missing → AllocError('ALLOC_NOT_FOUND').
 * - `remove(a, releasedAt)`: free the table and addresses of `a.pod.uid` and record `releasedAt` as
 *   the table's last release (for least-recently-released ordering). Idempotent: absent is fine.
 * - Write failures → AllocError('ALLOC_STATE_WRITE', { path, reason }) — nothing is assumed done.
 */
export interface AllocationStore {
  /** 'file' | 'kubernetes' — for logs and `ctl`. */
  readonly kind: string;
  /** Read the node's state. Corrupt → ALLOC_STATE_CORRUPT, unknown format → ALLOC_STATE_VERSION. */
  load(): Promise<StoreState>;
  create(a: Allocation): Promise<void>;
  update(a: Allocation): Promise<void>;
  remove(a: Allocation, releasedAt: number): Promise<void>;
  /** Flush pending writes and release handles. */
  close(): Promise<void>;
}

export const emptyState = (): StoreState => ({ allocations: [], tableReleasedAt: {}, foreignAddresses: {} });

/** `namespace/name` — the form whereabouts writes as podref and `ctl release` accepts. */
export const podKey = (p: { namespace: string; name: string }): string => `${p.namespace}/${p.name}`;
