// The few Kubernetes calls this project makes, as one port (KubePort) with one implementation over
// @kubernetes/client-node 2.x. Every failure becomes KubeError('KUBE_API', {verb, resource, status})
// with status = HTTP code (0 = unreachable), so callers branch on kubeStatus(e) (404, 409, 422);
// 429 (API priority and fairness) is retried after Retry-After, bounded.
import {
  ApiException, CoordinationV1Api, CoreV1Api, CustomObjectsApi, DiscoveryV1Api, KubeConfig, PatchStrategy, Watch,
  setHeaderOptions, type KubernetesObject, type V1EndpointSlice, type V1Lease, type V1Pod,
} from './k8s.js';
import { KubeError, isCoded } from '../errors.js';
import { backoff } from '../backoff.js';

export type Pod = V1Pod;
export type Lease = V1Lease;
export type EndpointSlice = V1EndpointSlice;

/** whereabouts.cni.cncf.io/v1alpha1 IPPool, as whereabouts writes it. */
export interface IPPool {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; uid?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { range: string; allocations?: Record<string, { id: string; podref: string; ifname?: string }> };
}
/** whereabouts OverlappingRangeIPReservation: named by the IP (`:` → `-`), `<network_name>-` prefixed when set. */
export interface OverlappingRangeIPReservation {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  spec: { podref: string; containerid?: string; ifname?: string };
}
/** whereabouts NodeSlicePool (node_slice_size mode): the range is cut into per-node IPPools. */
export interface NodeSlicePool {
  metadata: { name: string; namespace?: string };
  spec: { range: string; sliceSize: string };
  status?: { allocations?: Array<{ nodeName: string; sliceRange: string }> };
}
export type JsonPatchOp =
  | { op: 'add' | 'replace' | 'test'; path: string; value: unknown }
  | { op: 'remove'; path: string };

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** A list+watch cache that restarts itself after errors (API outage, 500s) with backoff. */
export interface Informer<T> {
  /** Resolves after the first successful list (the cache is then complete). */
  synced: Promise<void>;
  list(): T[];
  get(name: string, namespace?: string): T | undefined;
  stop(): Promise<void>;
}
export interface InformerHandlers<T> {
  add?(o: T): void;
  update?(o: T): void;
  delete?(o: T): void;
  /** A list or watch failed; the informer retries on its own after `retryMs`. */
  error?(e: KubeError, retryMs: number): void;
  /** A watch was accepted (200): the cache follows the server again from here. */
  watching?(): void;
}

export interface KubePort {
  /** The pod, or undefined when it does not exist (404). */
  getPod(namespace: string, name: string): Promise<Pod | undefined>;
  /** Merge-patch annotations (null deletes one); e.g. controller.kubernetes.io/pod-deletion-cost. */
  patchPodAnnotations(namespace: string, name: string, annotations: Record<string, string | null>): Promise<Pod>;
  listPods(q: { namespace?: string; fieldSelector?: string; labelSelector?: string }): Promise<Pod[]>;
  /** Informer over pods; `fieldSelector: 'spec.nodeName=<node>'` keeps it to one node. */
  watchPods(q: { namespace?: string; fieldSelector?: string; labelSelector?: string }, h: InformerHandlers<Pod>): Informer<Pod>;

  /** Create; 409 AlreadyExists surfaces as KubeError with status 409. */
  createLease(namespace: string, lease: Lease): Promise<Lease>;
  getLease(namespace: string, name: string): Promise<Lease | undefined>;
  /** Replace carrying metadata.resourceVersion: a stale one → status 409. */
  replaceLease(namespace: string, lease: Lease): Promise<Lease>;
  /** Delete; false when already gone. `uid` makes it conditional (409 when another object took the name). */
  deleteLease(namespace: string, name: string, preconditions?: { uid?: string; resourceVersion?: string }): Promise<boolean>;
  listLeases(namespace: string, labelSelector: string): Promise<Lease[]>;
  /** Merge-patch a Lease's annotations (null deletes one); 404 when the Lease does not exist. */
  patchLeaseAnnotations(namespace: string, name: string, annotations: Record<string, string | null>): Promise<Lease>;

  getIPPool(namespace: string, name: string): Promise<IPPool | undefined>;
  /** Create; 409 when it exists already (re-read then). */
  createIPPool(namespace: string, pool: IPPool): Promise<IPPool>;
  /** application/json-patch+json; a failed `test` op → status 422. */
  patchIPPool(namespace: string, name: string, ops: JsonPatchOp[]): Promise<IPPool>;

  /** Every IPPool in the namespace (overlap check at start-up). */
  listIPPools(namespace: string): Promise<IPPool[]>;
  /** The ORIP of that name, or undefined (404). */
  getOverlappingReservation(namespace: string, name: string): Promise<OverlappingRangeIPReservation | undefined>;
  /** Every ORIP in the namespace ([] when the CRD is not installed). */
  listOverlappingReservations(namespace: string): Promise<OverlappingRangeIPReservation[]>;
  /** Informer over the namespace's ORIPs (the per-Acquire check reads its cache, not the API). */
  watchOverlappingReservations(namespace: string, h: InformerHandlers<OverlappingRangeIPReservation>): Informer<OverlappingRangeIPReservation>;
  /** NodeSlicePools in the namespace; undefined when the CRD is not installed (404). */
  listNodeSlicePools(namespace: string): Promise<NodeSlicePool[] | undefined>;
  /** Names of the cluster's nodes. */
  listNodeNames(): Promise<string[]>;

  listEndpointSlices(namespace: string, labelSelector: string): Promise<EndpointSlice[]>;
  /**
   * Watch EndpointSlices (e.g. `kubernetes.io/service-name=rtpengine`). `onEvent` gets each change
   * and the full current set; `onError` each failure (it keeps retrying). Returns stop().
   */
  watchEndpointSlices(namespace: string, labelSelector: string,
    onEvent: (type: WatchEventType, slice: EndpointSlice, all: EndpointSlice[]) => void,
    onError: (e: KubeError) => void): () => Promise<void>;
}

/** HTTP status of a KubeError from this port (0 = no answer), undefined for anything else. */
export function kubeStatus(e: unknown): number | undefined {
  return isCoded(e, 'KUBE_API') ? Number(e.details.status) : undefined;
}

function toKubeError(e: unknown, verb: string, resource: string): KubeError {
  if (isCoded(e, 'KUBE_API')) return e as KubeError;
  if (e instanceof ApiException) {
    let reason: string;
    try { const b = typeof e.body === 'string' ? JSON.parse(e.body) : e.body; reason = b?.reason ? `${b.reason}: ${b.message}` : String(b?.message ?? ''); } catch { reason = String(e.body).slice(0, 200); }
    return new KubeError('KUBE_API', { verb, resource, status: e.code, reason }, { cause: e });
  }
  const err = e as { statusCode?: number; code?: number | string; message?: string; cause?: { code?: string; message?: string } };
  const status = typeof err?.statusCode === 'number' ? err.statusCode : 0;
  const reason = err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(e);
  return new KubeError('KUBE_API', { verb, resource, status, reason: status ? reason : `unreachable (${reason})` }, { cause: e });
}

const WB = { group: 'whereabouts.cni.cncf.io', version: 'v1alpha1', plural: 'ippools' } as const;

export interface KubeClientOptions {
  /** Informer restart backoff (ms): first delay and cap. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /**
   * Server-side watch timeout (s, default 300): the server ends each watch after it and the
   * informer resumes from the last event or BOOKMARK (no list); only 410 Gone relists.
   */
  watchTimeoutSeconds?: number;
  /** 429 Too Many Requests: at most this many retries per call (default 5) ... */
  throttleRetries?: number;
  /** ... waiting Retry-After (default 1 s when absent), each wait capped here (default 5000 ms) ... */
  throttleMaxDelayMs?: number;
  /** ... and at most this long in all per call (default 15000 ms); then the 429 is the answer. */
  throttleBudgetMs?: number;
  /** Injected for tests. */
  sleep?: (ms: number) => Promise<void>;
}

/** Retry-After of a 429 answer in ms (undefined: not a 429). */
export function retryAfterMs(e: unknown): number | undefined {
  if (!(e instanceof ApiException) || e.code !== 429) return undefined;
  const h = (e.headers ?? {}) as Record<string, string | string[] | undefined>;
  const v = h['retry-after'] ?? h['Retry-After'];
  const n = Number(Array.isArray(v) ? v[0] : v);
  return Number.isFinite(n) && n >= 0 ? n * 1000 : 1000;
}

/** The real KubePort. */
export function createKubeClient(kc: KubeConfig, opts: KubeClientOptions = {}): KubePort {
  const core = kc.makeApiClient(CoreV1Api);
  const coord = kc.makeApiClient(CoordinationV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const disc = kc.makeApiClient(DiscoveryV1Api);
  const watch = new Watch(kc);
  const retryMin = opts.retryMinMs ?? 500;
  const retryMax = opts.retryMaxMs ?? 30_000;
  const watchTimeoutSeconds = opts.watchTimeoutSeconds ?? 300;
  // The client's own inactivity timer must outlast the server's close (and the 60 s bookmarks).
  (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = (watchTimeoutSeconds + 30) * 1000;
  const throttleRetries = opts.throttleRetries ?? 5;
  const throttleMaxDelay = opts.throttleMaxDelayMs ?? 5000;
  const throttleBudget = opts.throttleBudgetMs ?? 15_000;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));

  const call = async <T>(verb: string, resource: string, f: () => Promise<T>): Promise<T> => {
    let waited = 0;
    for (let attempt = 0; ; attempt++) {
      try { return await f(); } catch (e) {
        const ra = retryAfterMs(e);
        const wait = ra === undefined ? undefined : Math.min(ra, throttleMaxDelay);
        // 429: the request was not processed (APF); wait as told, bounded, then the 429 is the answer.
        if (wait === undefined || attempt >= throttleRetries || waited + wait > throttleBudget) throw toKubeError(e, verb, resource);
        waited += wait;
        await sleep(wait);
      }
    }
  };
  /** A read where 404 means "absent". */
  const read = async <T>(resource: string, f: () => Promise<T>): Promise<T | undefined> => {
    try { return await call('get', resource, f); } catch (e) { if (kubeStatus(e) === 404) return undefined; throw e; }
  };

  /**
   * List once, then watch with allowWatchBookmarks and a server-side timeoutSeconds. When the server
   * ends a watch, resume from the last resourceVersion seen (event or BOOKMARK) without listing; only
   * 410 Gone (history compacted) relists — with the same selectors, so only this node's pods. Errors
   * retry with backoff.
   */
  function informer<T extends KubernetesObject>(path: string, what: string, listFn: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>,
    labelSelector: string | undefined, fieldSelector: string | undefined, h: InformerHandlers<T>): Informer<T> {
    let markSynced!: () => void;
    const synced = new Promise<void>((ok) => { markSynced = ok; });
    const cache = new Map<string, T>();
    const keyOf = (o: T) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
    let rv = '';
    let stopped = false;
    let failures = 0;
    let timer: NodeJS.Timeout | undefined;
    let wake: (() => void) | undefined;
    let ctl: AbortController | undefined;

    const relist = async () => {
      const l = await listFn();
      const seen = new Set<string>();
      for (const o of l.items) {
        const k = keyOf(o);
        seen.add(k);
        const had = cache.get(k);
        cache.set(k, o);
        if (!had) h.add?.(o); else if (had.metadata?.resourceVersion !== o.metadata?.resourceVersion) h.update?.(o);
      }
      for (const [k, o] of [...cache]) if (!seen.has(k)) { cache.delete(k); h.delete?.(o); }
      rv = l.metadata?.resourceVersion ?? '';
      markSynced();
    };

    /** One watch request; resolves when the server (or the client's inactivity timer) ends it. */
    const watchOnce = () => new Promise<void>((resolve, reject) => {
      let failed = false;
      const q: Record<string, string | number | boolean | undefined> = { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: watchTimeoutSeconds };
      if (labelSelector !== undefined) q.labelSelector = labelSelector;
      if (fieldSelector !== undefined) q.fieldSelector = fieldSelector;
      watch.watch(path, q, (type: string, obj: any) => {
        if (stopped) return;
        if (type === 'ERROR') { if (obj?.code === 410) rv = ''; return; } // the stream ends next
        if (type === 'BOOKMARK') { rv = obj?.metadata?.resourceVersion ?? rv; return; }
        const o = obj as T;
        const k = keyOf(o);
        if (type === 'DELETED') { if (cache.delete(k)) h.delete?.(o); } else { const had = cache.has(k); cache.set(k, o); if (had) h.update?.(o); else h.add?.(o); }
        rv = o.metadata?.resourceVersion ?? rv;
      }, (err: any) => {
        if (err) failed = true;
        if (!err || err.name === 'TimeoutError') return resolve();
        if (err.statusCode === 410 || err.code === 410) { rv = ''; return resolve(); }
        reject(err);
      }).then((c) => { ctl = c; if (stopped) c.abort(); else if (!failed) h.watching?.(); }, reject);
    });

    const loop = async () => {
      while (!stopped) {
        try {
          if (!rv) await relist();
          await watchOnce();
          failures = 0;
        } catch (e) {
          if (stopped) return;
          const ke = toKubeError(e, 'watch', what);
          const wait = backoff(++failures, { initialDelayMs: retryMin, maxDelayMs: retryMax, jitter: 'none' });
          h.error?.(ke, wait);
          await new Promise<void>((r) => { wake = r; timer = setTimeout(r, wait); timer.unref(); });
          timer = undefined; wake = undefined;
        }
      }
    };
    const running = loop();
    return {
      synced,
      list: () => [...cache.values()],
      get: (name, namespace) => cache.get(`${namespace ?? ''}/${name}`),
      stop: async () => {
        stopped = true;
        if (timer) clearTimeout(timer);
        wake?.(); // a loop waiting out its backoff ends now
        ctl?.abort();
        await running.catch(() => undefined);
      },
    };
  }

  const nsPath = (prefix: string, ns: string | undefined, plural: string) => (ns ? `${prefix}/namespaces/${ns}/${plural}` : `${prefix}/${plural}`);

  return {
    getPod: (namespace, name) => read(`pods ${namespace}/${name}`, () => core.readNamespacedPod({ namespace, name })),
    patchPodAnnotations: (namespace, name, annotations) => call('patch', `pods ${namespace}/${name}`, () =>
      core.patchNamespacedPod({ namespace, name, body: { metadata: { annotations } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch))),
    listPods: async (q) => call('list', 'pods', async () => (q.namespace
      ? await core.listNamespacedPod({ namespace: q.namespace, fieldSelector: q.fieldSelector, labelSelector: q.labelSelector })
      : await core.listPodForAllNamespaces({ fieldSelector: q.fieldSelector, labelSelector: q.labelSelector })).items),
    watchPods: (q, h) => informer<V1Pod>(nsPath('/api/v1', q.namespace, 'pods'), 'pods',
      () => call('list', 'pods', () => (q.namespace
        ? core.listNamespacedPod({ namespace: q.namespace, fieldSelector: q.fieldSelector, labelSelector: q.labelSelector })
        : core.listPodForAllNamespaces({ fieldSelector: q.fieldSelector, labelSelector: q.labelSelector }))),
      q.labelSelector, q.fieldSelector, h),

    createLease: (namespace, body) => call('create', `leases ${namespace}/${body.metadata?.name}`, () => coord.createNamespacedLease({ namespace, body })),
    getLease: (namespace, name) => read(`leases ${namespace}/${name}`, () => coord.readNamespacedLease({ namespace, name })),
    replaceLease: (namespace, body) => call('update', `leases ${namespace}/${body.metadata?.name}`, () => coord.replaceNamespacedLease({ namespace, name: body.metadata!.name!, body })),
    deleteLease: async (namespace, name, preconditions) => {
      try {
        await call('delete', `leases ${namespace}/${name}`, () => coord.deleteNamespacedLease({ namespace, name, body: preconditions ? { preconditions } : undefined }));
        return true;
      } catch (e) { if (kubeStatus(e) === 404) return false; throw e; }
    },
    listLeases: (namespace, labelSelector) => call('list', 'leases', async () => (await coord.listNamespacedLease({ namespace, labelSelector })).items),
    patchLeaseAnnotations: (namespace, name, annotations) => call('patch', `leases ${namespace}/${name}`, () =>
      coord.patchNamespacedLease({ namespace, name, body: { metadata: { annotations } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch))),

    getIPPool: (namespace, name) => read(`ippools ${namespace}/${name}`, () => custom.getNamespacedCustomObject({ ...WB, namespace, name }) as Promise<IPPool>),
    createIPPool: (namespace, pool) => call('create', `ippools ${namespace}/${pool.metadata.name}`, () =>
      custom.createNamespacedCustomObject({ ...WB, namespace, body: { apiVersion: `${WB.group}/${WB.version}`, kind: 'IPPool', ...pool } }) as Promise<IPPool>),
    patchIPPool: (namespace, name, ops) => call('patch', `ippools ${namespace}/${name}`, () =>
      custom.patchNamespacedCustomObject({ ...WB, namespace, name, body: ops }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch)) as Promise<IPPool>),

    listIPPools: (namespace) => call('list', 'ippools', async () => ((await custom.listNamespacedCustomObject({ ...WB, namespace })) as { items: IPPool[] }).items),
    getOverlappingReservation: (namespace, name) => read(`overlappingrangeipreservations ${namespace}/${name}`, () =>
      custom.getNamespacedCustomObject({ ...WB, plural: 'overlappingrangeipreservations', namespace, name }) as Promise<OverlappingRangeIPReservation>),
    listOverlappingReservations: async (namespace) => {
      try { return ((await call('list', 'overlappingrangeipreservations', () => custom.listNamespacedCustomObject({ ...WB, plural: 'overlappingrangeipreservations', namespace }))) as { items: OverlappingRangeIPReservation[] }).items; } catch (e) { if (kubeStatus(e) === 404) return []; throw e; }
    },
    watchOverlappingReservations: (namespace, h) => informer<OverlappingRangeIPReservation & KubernetesObject>(
      nsPath(`/apis/${WB.group}/${WB.version}`, namespace, 'overlappingrangeipreservations'), 'overlappingrangeipreservations',
      () => call('list', 'overlappingrangeipreservations', () => custom.listNamespacedCustomObject({ ...WB, plural: 'overlappingrangeipreservations', namespace }) as Promise<{ items: Array<OverlappingRangeIPReservation & KubernetesObject> }>),
      undefined, undefined, h as InformerHandlers<OverlappingRangeIPReservation & KubernetesObject>),
    listNodeSlicePools: async (namespace) => {
      try { return ((await call('list', 'nodeslicepools', () => custom.listNamespacedCustomObject({ ...WB, plural: 'nodeslicepools', namespace }))) as { items: NodeSlicePool[] }).items; } catch (e) { if (kubeStatus(e) === 404) return undefined; throw e; }
    },
    listNodeNames: () => call('list', 'nodes', async () => (await core.listNode()).items.map((n) => n.metadata?.name ?? '').filter(Boolean)),

    listEndpointSlices: (namespace, labelSelector) => call('list', 'endpointslices', async () => (await disc.listNamespacedEndpointSlice({ namespace, labelSelector })).items),
    watchEndpointSlices: (namespace, labelSelector, onEvent, onError) => {
      let inf: Informer<V1EndpointSlice> | undefined = undefined;
      const all = () => inf?.list() ?? [];
      inf = informer<V1EndpointSlice>(nsPath('/apis/discovery.k8s.io/v1', namespace, 'endpointslices'), 'endpointslices',
        () => call('list', 'endpointslices', () => disc.listNamespacedEndpointSlice({ namespace, labelSelector })), labelSelector, undefined, {
          add: (s) => onEvent('ADDED', s, all()),
          update: (s) => onEvent('MODIFIED', s, all()),
          delete: (s) => onEvent('DELETED', s, all()),
          error: (e) => onError(e),
        });
      return () => inf!.stop();
    },
  };
}

export interface KubeConfigOptions {
  /** Path of a kubeconfig file; empty = the library's default search (KUBECONFIG, ~/.kube/config, in-cluster). */
  kubeconfig?: string;
  /** Context to use instead of the file's current one. */
  context?: string;
  /** Force the in-cluster service-account configuration. */
  inCluster?: boolean;
}

/** Build a KubeConfig from the CLI's options; anything unusable → KubeError('KUBE_CONFIG'). */
export function kubeConfigFrom(o: KubeConfigOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (o.inCluster) kc.loadFromCluster();
    else if (o.kubeconfig) kc.loadFromFile(o.kubeconfig);
    else kc.loadFromDefault();
    if (o.context) kc.setCurrentContext(o.context);
  } catch (e) {
    throw new KubeError('KUBE_CONFIG', { reason: `${o.inCluster ? 'in-cluster' : o.kubeconfig ?? 'default search'}: ${(e as Error).message}` });
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) throw new KubeError('KUBE_CONFIG', { reason: `no current cluster with a server URL (${o.kubeconfig ?? 'default search'}${o.context ? `, context ${o.context}` : ''})` });
  return kc;
}
