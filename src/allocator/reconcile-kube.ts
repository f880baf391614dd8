// Kubernetes-mode wiring around the allocator service: a pod informer on this node releases the
// allocation of a deleted or replaced pod (kernel table cleaned by the service), a periodic resync
// catches what events missed, and Acquire passes the identity check first.
import { createKubeClient, kubeConfigFrom, type KubePort, type Pod, type Informer } from '../kube/client.js';
import { KubeStore } from './store-kube.js';
import type { Logger } from '../log.js';
import type { PodRef } from './store.js';
import type { AllocationView } from './wire.js';
import { verifyPod, addressFromNetworkStatus, type PodLookup } from './identity.js';
import { compilePool, offsetKey, type PoolConfig } from './pools.js';
import { isCoded } from '../errors.js';
import { NodeSweeper, type Freed } from './sweeper.js';

/** What the reconciler needs of the allocator service (AllocatorService satisfies it). */
export interface ReconcileTarget {
  list(): { allocations: AllocationView[] };
  release(sel: { uid?: string }, reason?: string): Promise<{ found: boolean }>;
  acquire(req: { pod: PodRef; pools?: string[]; interface?: string }): Promise<AllocationView>;
  /** Replace the offsets of `pool` held by other writers (AllocatorService; absent = not refreshed). */
  setForeignAddresses?(pool: string, offsets: Iterable<string>): void;
}

export interface KubeReconcilerOptions {
  kube: KubePort;
  node: string;
  service: ReconcileTarget;
  /** Full resync period (ms); 0 disables the timer (tests call resync()). */
  resyncMs: number;
  log: Logger;
  now?: () => number;
  /** Pools whose address comes from the pod's network-status (interface name per pool). */
  networkStatusPools?: Array<{ pool: PoolConfig; interface: string }>;
  /** The Kubernetes store: foreign IPPool offsets refreshed each resync, network-status addresses recorded. */
  store?: KubeStore;
  /** A reclaim decided here (pod-deleted, pod-replaced, pod-gone): rtpengine_k8s_allocator_reclaims_total. */
  onReclaim?: (reason: string) => void;
}

export class KubeReconciler {
  private informer: Informer<Pod> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private resyncing: Promise<number> | undefined;
  private readonly log: Logger;
  private readonly now: () => number;
  /** UIDs whose reclaim is in flight here (a delete and a replacement event for one pod count once). */
  private readonly reclaiming = new Map<string, Promise<boolean>>();

  constructor(private readonly o: KubeReconcilerOptions) {
    this.log = o.log.child({ component: 'kube-reconcile' });
    this.now = o.now ?? Date.now;
  }

  /** Start the informer, wait for its first list, release what is gone: call before serving. */
  async start(): Promise<void> {
    const svc = this.o.service;
    if (this.o.store && svc.setForeignAddresses) this.o.store.attachForeignSink((pool, offsets) => svc.setForeignAddresses!(pool, offsets));
    this.informer = this.o.kube.watchPods({ fieldSelector: `spec.nodeName=${this.o.node}` }, {
      add: (p) => this.onPod(p),
      update: (p) => this.onPod(p),
      delete: (p) => { void this.releaseUid(p.metadata?.uid, 'pod-deleted', p); },
      error: (e, retryMs) => this.log.warn({ error: e.message, retryMs }, 'pod watch failed; retrying (allocations are kept meanwhile)'),
    });
    await this.informer.synced;
    await this.resync();
    if (this.o.resyncMs > 0) {
      this.timer = setInterval(() => { void this.resync().catch((e) => this.log.error({ error: (e as Error).message }, 'resync failed; next round retries')); }, this.o.resyncMs);
      this.timer.unref();
    }
  }

  /** Identity lookups: the informer cache first, then one GET. */
  readonly lookup: PodLookup = {
    cached: (ns, name) => this.informer?.get(name, ns),
    fetch: (ns, name) => this.o.kube.getPod(ns, name),
  };

  private onPod(p: Pod): void {
    // A pod name reused with a new UID (StatefulSet-style replacement): the old allocation goes.
    const uid = p.metadata?.uid;
    for (const a of this.o.service.list().allocations) {
      if (a.pod.namespace === p.metadata?.namespace && a.pod.name === p.metadata?.name && a.pod.uid !== uid && a.state !== 'released') {
        void this.releaseUid(a.pod.uid, 'pod-replaced', p);
      }
    }
  }

  private async releaseUid(uid: string | undefined, reason: string, p: Pod): Promise<void> {
    if (!uid) return;
    try {
      if (!(await this.reclaim(uid, reason))) return;
      this.log.info({ decision: 'reclaim', reason, uid, pod: `${p.metadata?.namespace}/${p.metadata?.name}` }, 'pod gone: allocation released');
    } catch (e) {
      this.log.error({ uid, reason, error: (e as Error).message }, 'release after pod event failed; the next resync retries');
    }
  }

  /** Release `uid` once, counting it; false when someone else got there first (or nothing was held). */
  private reclaim(uid: string, reason: string): Promise<boolean> {
    const inFlight = this.reclaiming.get(uid);
    if (inFlight) return inFlight.then(() => false);
    // Already released (busy-table / releasing: the sweep retries its cleanup) → not a new reclaim.
    const held = this.o.service.list().allocations.find((a) => a.pod.uid === uid);
    if (!held || held.state !== 'active') return Promise.resolve(false);
    const p = this.o.service.release({ uid }, reason)
      .then((r) => { if (r.found) this.o.onReclaim?.(reason); return r.found; })
      .finally(() => this.reclaiming.delete(uid));
    this.reclaiming.set(uid, p);
    return p;
  }

  /**
   * Fresh list of this node's pods; every allocation made before the list whose UID is not among
   * them is released. Returns how many were released.
   */
  resync(): Promise<number> {
    if (!this.resyncing) this.resyncing = this.doResync().finally(() => { this.resyncing = undefined; });
    return this.resyncing;
  }

  private async doResync(): Promise<number> {
    const listedAt = this.now();
    const pods = await this.o.kube.listPods({ fieldSelector: `spec.nodeName=${this.o.node}` });
    const live = new Set(pods.map((p) => p.metadata?.uid));
    let n = 0;
    for (const a of this.o.service.list().allocations) {
      // an allocation newer than the list may belong to a pod the list could not show yet
      if (live.has(a.pod.uid) || a.createdAt >= listedAt) continue;
      try {
        if (await this.reclaim(a.pod.uid, 'pod-gone')) { n++; this.log.info({ decision: 'reclaim', reason: 'pod-gone', uid: a.pod.uid, pod: `${a.pod.namespace}/${a.pod.name}`, table: a.table }, 'resync: pod no longer on this node; released'); }
      } catch (e) {
        this.log.error({ uid: a.pod.uid, error: (e as Error).message }, 'resync release failed; retried next round');
      }
    }
    // Other writers' IPPool entries come and go: replace the service's view of them.
    try { await this.o.store?.refreshForeign(); } catch (e) { this.log.error({ error: (e as Error).message }, 'refreshing foreign IPPool entries failed; retried next round'); }
    // A NAD added since start may make the setup unsafe (ADR 0012): refusing now would strand running
    // pods, so it is an error in the log each round until fixed (the next start refuses).
    try { await this.o.store?.checkWhereaboutsSetup(); } catch (e) {
      if (isCoded(e, 'ALLOC_WHEREABOUTS_UNSAFE') || isCoded(e, 'ALLOC_WHEREABOUTS_UNCHECKED')) this.log.error({ code: e.code, ...e.details }, `${e.message} (appeared after start: duplicates with whereabouts are possible until fixed)`);
      else this.log.warn({ error: (e as Error).message }, 'whereabouts setup check failed; retried next round');
    }
    return n;
  }

  /**
   * Acquire for Kubernetes mode: identity first (PERMISSION_DENIED naming why), then the service;
   * pools in network-status mode get the address whereabouts gave the pod instead of a reservation.
   */
  async acquire(req: { pod: PodRef; pools?: string[]; interface?: string }): Promise<AllocationView> {
    const pod = await verifyPod(this.lookup, req.pod, this.o.node);
    const ns = new Map((this.o.networkStatusPools ?? []).map((x) => [x.pool.name, x]));
    const wanted = req.pools ?? [];
    // network-status pools are not configured in the service (see docs/kubernetes.md); no pools
    // named = every network-status pool plus the service's defaults.
    const fromCniPools = wanted.length ? wanted.filter((p) => ns.has(p)) : [...ns.keys()];
    const fromCni = fromCniPools.map((name) => {
      const x = ns.get(name)!;
      const span = compilePool(x.pool);
      const got = addressFromNetworkStatus(pod, req.interface || x.interface, span.family);
      return { pool: name, ip: got.ip, prefixLength: span.prefixLength, gateway: span.gateway, offset: offsetKey(span, got.ip) };
    });
    // Recorded with the allocation (the Lease's create/update writes it), so Get/List/ctl show it.
    if (fromCni.length) this.o.store?.noteCniAddresses(req.pod.uid, fromCni);
    const serviceReq = { ...req, pools: wanted.filter((p) => !ns.has(p)) };
    try {
      let view;
      try {
        view = await this.o.service.acquire(serviceReq);
      } catch (e) {
        // "Exhausted" may rest on other writers' entries freed since we last looked: judge it on a fresh read.
        if (!isCoded(e, 'ALLOC_POOL_EXHAUSTED') || !this.o.store || typeof e.details.pool !== 'string') throw e;
        await this.o.store.refreshForeign(e.details.pool);
        view = await this.o.service.acquire(serviceReq);
      }
      return this.withCni(view);
    } catch (e) {
      this.o.store?.dropCniAddresses(req.pod.uid);
      throw e;
    }
  }

  /** A service view plus the pod's recorded network-status addresses (none without a store / in reserve mode). */
  withCni<V extends { pod: PodRef; addresses: AllocationView['addresses'] }>(view: V): V {
    const extra = this.o.store?.cniAddresses(view.pod.uid) ?? [];
    const have = new Set(view.addresses.map((x) => `${x.pool}/${x.ip}`));
    const add = extra.filter((x) => !have.has(`${x.pool}/${x.ip}`));
    return add.length ? { ...view, addresses: [...view.addresses, ...add] } : view;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.informer?.stop();
    await this.resyncing?.catch(() => undefined);
  }
}

export interface KubernetesModeConfig {
  node: string;
  pools: PoolConfig[];
  kubeconfig?: string;
  leaseNamespace: string;
  poolNamespace: string;
  networkName?: string;
  ipMode: 'reserve' | 'network-status';
  networkStatusInterface: string;
  resyncIntervalMs: number;
  /** Start even when the IPPool overlap check cannot run (RBAC denies list on ippools); default refuse. */
  allowUncheckedOverlap?: boolean;
  /**
   * Lease TTL for this mode, only when the operator set one explicitly; default 0: the pod's
   * lifecycle (informer + resync) decides, a Renew is answered from memory without an API write.
   */
  leaseTtlMs?: number;
}

/**
 * Wiring for `--store kubernetes` (called by allocator.ts):
 *   const km = kubernetesMode(cfg, log);            // before AllocatorService.open: km.store, km.servicePools, km.leaseTtlMs
 *   const guarded = await km.attach(service, { onReclaim: metrics.reclaim }); // rebuild + first resync, before serving
 *   startServer(guarded, …); on close: await km.stop();
 * `guarded` is the service with acquire() behind the identity check (and network-status addresses).
 */
export function kubernetesMode(cfg: KubernetesModeConfig, log: Logger, kube?: KubePort) {
  const port = kube ?? createKubeClient(kubeConfigFrom({ kubeconfig: cfg.kubeconfig }));
  const reserve = cfg.ipMode === 'reserve';
  const store = new KubeStore({
    kube: port, node: cfg.node, leaseNamespace: cfg.leaseNamespace, poolNamespace: cfg.poolNamespace, log, watchReservations: true, allowUncheckedOverlap: cfg.allowUncheckedOverlap,
    pools: reserve ? cfg.pools.map((p) => ({ span: compilePool(p), networkName: cfg.networkName })) : [],
  });
  let reconciler: KubeReconciler | undefined;
  let sweeper: NodeSweeper | undefined;
  return {
    store,
    /** Pools the service itself allocates from (none in network-status mode). */
    servicePools: reserve ? cfg.pools : [],
    /** The service's leaseTtlMs in this mode: 0 (pod lifecycle decides) unless configured. */
    leaseTtlMs: cfg.leaseTtlMs ?? 0,
    async attach<S extends ReconcileTarget>(service: S, hooks: { onReclaim?: (reason: string) => void; onSwept?: (f: Freed) => void } = {}): Promise<S> {
      reconciler = new KubeReconciler({ kube: port, node: cfg.node, service, resyncMs: cfg.resyncIntervalMs, log, store, onReclaim: hooks.onReclaim,
        networkStatusPools: reserve ? [] : cfg.pools.map((pool) => ({ pool, interface: cfg.networkStatusInterface })) });
      await reconciler.start();
      // Leftovers of vanished nodes: one allocator (the Lease holder) sweeps, each resync period (ADR 0013).
      sweeper = new NodeSweeper({ kube: port, identity: cfg.node, leaseNamespace: cfg.leaseNamespace, poolNamespace: cfg.poolNamespace, log,
        pools: reserve ? cfg.pools.map((p) => ({ span: compilePool(p), networkName: cfg.networkName })) : [], intervalMs: cfg.resyncIntervalMs, onFreed: hooks.onSwept });
      sweeper.start();
      return guard(service, reconciler);
    },
    stop: async () => { await sweeper?.stop(); await reconciler?.stop(); },
  };
}

/**
 * The service as served in Kubernetes mode: acquire() behind the identity check, and every view
 * (Acquire, Renew, Get, List, Release) carrying the pod's recorded network-status addresses.
 * A proxy, not a prototype copy: every other method runs on the real service object.
 */
export function guard<S extends ReconcileTarget>(service: S, r: KubeReconciler): S {
  type View = AllocationView;
  const wrap: Record<string, (...a: any[]) => unknown> = {
    acquire: (req: Parameters<S['acquire']>[0]) => r.acquire(req),
    renew: async (uid: string) => r.withCni(await (service as any).renew(uid) as View),
    get: (sel: unknown) => r.withCni((service as any).get(sel) as View),
    list: () => { const l = service.list(); return { ...l, allocations: l.allocations.map((v) => r.withCni(v)) }; },
    release: async (sel: { uid?: string }, reason?: string) => {
      const before = (service as any).get ? safe(() => r.withCni((service as any).get(sel) as View)) : undefined;
      const res = await service.release(sel, reason) as { found: boolean; allocation?: View };
      const extra = before ? before.addresses.filter((x) => !res.allocation?.addresses.some((y) => y.pool === x.pool && y.ip === x.ip)) : [];
      return res.allocation && extra.length ? { ...res, allocation: { ...res.allocation, addresses: [...res.allocation.addresses, ...extra] } } : res;
    },
  };
  return new Proxy(service, {
    get: (t, k) => { if (typeof k === 'string' && wrap[k]) return wrap[k]; const v = Reflect.get(t, k, t); return typeof v === 'function' ? v.bind(t) : v; },
  });
}

function safe<T>(f: () => T): T | undefined { try { return f(); } catch { return undefined; } }
