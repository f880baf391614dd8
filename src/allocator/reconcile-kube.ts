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

/** What the reconciler needs of the allocator service (AllocatorService satisfies it). */
export interface ReconcileTarget {
  list(): { allocations: AllocationView[] };
  release(sel: { uid?: string }, reason?: string): Promise<{ found: boolean }>;
  acquire(req: { pod: PodRef; pools?: string[]; interface?: string }): Promise<AllocationView>;
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
}

export class KubeReconciler {
  private informer: Informer<Pod> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private resyncing: Promise<number> | undefined;
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(private readonly o: KubeReconcilerOptions) {
    this.log = o.log.child({ component: 'kube-reconcile' });
    this.now = o.now ?? Date.now;
  }

  /** Start the informer, wait for its first list, release what is gone: call before serving. */
  async start(): Promise<void> {
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
      const r = await this.o.service.release({ uid }, reason);
      if (r.found) this.log.info({ decision: 'reclaim', reason, uid, pod: `${p.metadata?.namespace}/${p.metadata?.name}` }, 'pod gone: allocation released');
    } catch (e) {
      this.log.error({ uid, reason, error: (e as Error).message }, 'release after pod event failed; the next resync retries');
    }
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
        const r = await this.o.service.release({ uid: a.pod.uid }, 'pod-gone');
        if (r.found) { n++; this.log.info({ decision: 'reclaim', reason: 'pod-gone', uid: a.pod.uid, pod: `${a.pod.namespace}/${a.pod.name}`, table: a.table }, 'resync: pod no longer on this node; released'); }
      } catch (e) {
        this.log.error({ uid: a.pod.uid, error: (e as Error).message }, 'resync release failed; retried next round');
      }
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
    const view = await this.o.service.acquire({ ...req, pools: wanted.filter((p) => !ns.has(p)) });
    return fromCni.length ? { ...view, addresses: [...view.addresses, ...fromCni] } : view;
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
}

/**
 * Wiring for `--store kubernetes` (called by allocator.ts):
 *   const km = kubernetesMode(cfg, log);            // before AllocatorService.open: km.store, km.servicePools
 *   const guarded = await km.attach(service);       // rebuild + first resync, before serving
 *   startServer(guarded, …); on close: await km.stop();
 * `guarded` is the service with acquire() behind the identity check (and network-status addresses).
 */
export function kubernetesMode(cfg: KubernetesModeConfig, log: Logger, kube?: KubePort) {
  const port = kube ?? createKubeClient(kubeConfigFrom({ kubeconfig: cfg.kubeconfig }));
  const reserve = cfg.ipMode === 'reserve';
  const store = new KubeStore({
    kube: port, node: cfg.node, leaseNamespace: cfg.leaseNamespace, poolNamespace: cfg.poolNamespace, log,
    pools: reserve ? cfg.pools.map((p) => ({ span: compilePool(p), networkName: cfg.networkName })) : [],
  });
  let reconciler: KubeReconciler | undefined;
  return {
    store,
    /** Pools the service itself allocates from (none in network-status mode). */
    servicePools: reserve ? cfg.pools : [],
    async attach<S extends ReconcileTarget>(service: S): Promise<S> {
      reconciler = new KubeReconciler({ kube: port, node: cfg.node, service, resyncMs: cfg.resyncIntervalMs, log,
        networkStatusPools: reserve ? [] : cfg.pools.map((pool) => ({ pool, interface: cfg.networkStatusInterface })) });
      await reconciler.start();
      const r = reconciler;
      // A proxy, not a prototype copy: every other method runs on the real service object.
      const acquire = (req: Parameters<S['acquire']>[0]) => r.acquire(req);
      return new Proxy(service, {
        get: (t, k) => { if (k === 'acquire') return acquire; const v = Reflect.get(t, k, t); return typeof v === 'function' ? v.bind(t) : v; },
      });
    },
    stop: async () => { await reconciler?.stop(); },
  };
}
