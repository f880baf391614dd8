// The few Kubernetes calls this project makes, as one port (KubePort) with one implementation over
// @kubernetes/client-node 2.x. Every failure becomes KubeError('KUBE_API', {verb, resource, status})
// with status = HTTP code (0 = unreachable), so callers branch on kubeStatus(e) (404, 409, 422).
import {
  ApiException, CoordinationV1Api, CoreV1Api, CustomObjectsApi, DiscoveryV1Api, KubeConfig, ListWatch, PatchStrategy, Watch,
  setHeaderOptions, type KubernetesObject, type V1EndpointSlice, type V1Lease, type V1Pod,
} from './k8s.js';
import { KubeError, isCoded } from '../errors.js';

export type Pod = V1Pod;
export type Lease = V1Lease;
export type EndpointSlice = V1EndpointSlice;

/** whereabouts.cni.cncf.io/v1alpha1 IPPool, as whereabouts writes it. */
export interface IPPool {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; uid?: string; labels?: Record<string, string> };
  spec: { range: string; allocations?: Record<string, { id: string; podref: string; ifname?: string }> };
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

  const call = async <T>(verb: string, resource: string, f: () => Promise<T>): Promise<T> => {
    try { return await f(); } catch (e) { throw toKubeError(e, verb, resource); }
  };
  /** A read where 404 means "absent". */
  const read = async <T>(resource: string, f: () => Promise<T>): Promise<T | undefined> => {
    try { return await call('get', resource, f); } catch (e) { if (kubeStatus(e) === 404) return undefined; throw e; }
  };

  function informer<T extends KubernetesObject>(path: string, what: string, listFn: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>,
    labelSelector: string | undefined, fieldSelector: string | undefined, h: InformerHandlers<T>): Informer<T> {
    let markSynced!: () => void;
    const synced = new Promise<void>((ok) => { markSynced = ok; });
    // Resolve after ListWatch has applied the list to its cache (it does so right after our promise).
    const wrappedList = async () => { const l = await listFn(); setImmediate(markSynced); return l as any; };
    const lw = new ListWatch<T>(path, watch, wrappedList, false, labelSelector, fieldSelector);
    let stopped = false;
    let delay = retryMin;
    let timer: NodeJS.Timeout | undefined;
    if (h.add) lw.on('add', h.add);
    if (h.update) lw.on('update', h.update);
    if (h.delete) lw.on('delete', h.delete);
    lw.on('error', (e: unknown) => {
      if (stopped) return;
      const ke = toKubeError(e, 'watch', what);
      const wait = delay;
      delay = Math.min(delay * 2, retryMax);
      h.error?.(ke, wait);
      timer = setTimeout(() => { timer = undefined; if (!stopped) void lw.start().then(() => { delay = retryMin; }, () => undefined); }, wait);
      timer.unref();
    });
    void lw.start().catch(() => undefined);
    return {
      synced,
      list: () => [...lw.list()],
      get: (name, namespace) => lw.get(name, namespace),
      stop: async () => { stopped = true; if (timer) clearTimeout(timer); await lw.stop(); },
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
