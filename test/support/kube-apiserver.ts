// In-repo stand-in for the Kubernetes API server: the resources this project uses, over real HTTP,
// with real semantics (schema validation → 400/422, resourceVersion, no-op writes, merge + JSON patch,
// selectors, watches with timeouts/bookmarks/410, async GC, pod grace, an EndpointSlice controller,
// a server version) plus fault injection and a request log for tests and benches.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { KubeConfig } from '../../src/kube/k8s.js';
import { dropUnknownFields, normalizeTimes, preloadSchemas, statusFor, validateObjectSync, warningsFor } from './k8s-schema.js';
import { MANAGED_BY, SERVICE_NAME_LABEL, desiredSlices } from './kube-endpointslice-controller.js';
import { tokenAuthority } from './kube-tokenreview.js';

/** A stored object: plain JSON as the API would return it. */
export type KObj = { apiVersion?: string; kind?: string; metadata: KMeta; [k: string]: any };
export interface KMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generateName?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: Array<{ apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }>;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  creationTimestamp?: string;
  finalizers?: string[];
  [k: string]: unknown;
}

interface ResourceDef { plural: string; group: string; version: string; kind: string; fields: string[]; clusterScoped?: boolean }

/** The resources served. Field selectors: what the real server supports for each, as far as we use them. */
export const RESOURCES: Record<string, ResourceDef> = {
  pods: { plural: 'pods', group: '', version: 'v1', kind: 'Pod', fields: ['metadata.name', 'metadata.namespace', 'spec.nodeName', 'status.phase', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'status.podIP', 'status.nominatedNodeName'] },
  leases: { plural: 'leases', group: 'coordination.k8s.io', version: 'v1', kind: 'Lease', fields: ['metadata.name', 'metadata.namespace'] },
  ippools: { plural: 'ippools', group: 'whereabouts.cni.cncf.io', version: 'v1alpha1', kind: 'IPPool', fields: ['metadata.name', 'metadata.namespace'] },
  overlappingrangeipreservations: { plural: 'overlappingrangeipreservations', group: 'whereabouts.cni.cncf.io', version: 'v1alpha1', kind: 'OverlappingRangeIPReservation', fields: ['metadata.name', 'metadata.namespace'] },
  endpointslices: { plural: 'endpointslices', group: 'discovery.k8s.io', version: 'v1', kind: 'EndpointSlice', fields: ['metadata.name', 'metadata.namespace', 'addressType'] },
  services: { plural: 'services', group: '', version: 'v1', kind: 'Service', fields: ['metadata.name', 'metadata.namespace', 'spec.clusterIP', 'spec.type'] },
  nodes: { plural: 'nodes', group: '', version: 'v1', kind: 'Node', fields: ['metadata.name', 'spec.unschedulable'], clusterScoped: true },
  customresourcedefinitions: { plural: 'customresourcedefinitions', group: 'apiextensions.k8s.io', version: 'v1', kind: 'CustomResourceDefinition', fields: ['metadata.name'], clusterScoped: true },
  nodeslicepools: { plural: 'nodeslicepools', group: 'whereabouts.cni.cncf.io', version: 'v1alpha1', kind: 'NodeSlicePool', fields: ['metadata.name', 'metadata.namespace'] },
};
export type Resource = keyof typeof RESOURCES & string;
const isCustom = (r: ResourceDef) => r.group.endsWith('.cncf.io');
const apiVersionOf = (r: ResourceDef) => (r.group ? `${r.group}/${r.version}` : r.version);

interface WatchEvent { rv: number; type: 'ADDED' | 'MODIFIED' | 'DELETED'; resource: string; obj: KObj; old?: KObj }
interface Watcher {
  resource: string; namespace?: string; label: Selector; field: Selector;
  res: ServerResponse; closed: boolean; timer?: NodeJS.Timeout; bookmarks?: NodeJS.Timeout;
}

export interface RequestRecord {
  verb: string; resource: string; namespace?: string; name?: string; path: string; status: number;
  /** The query string (`?watch=true&resourceVersion=…`), '' when none. */
  query: string;
  /** Warning headers sent (unknown fields dropped). */
  warnings?: string[];
  /** Watches: resourceVersion of the last BOOKMARK sent on this request. */
  lastBookmark?: string;
}
export interface FaultRule { remaining: number; status: number; verb?: string; resource?: string; retryAfterSeconds?: number }

export interface KubeApiServer {
  url: string;
  /** A KubeConfig (from @kubernetes/client-node) pointing at this server, namespace `default`. */
  kubeconfig(): KubeConfig;
  /** Seed/inspect objects directly (no request logged, same semantics as create). */
  store: StoreAccess;
  faults: Faults;
  requests: RequestLog;
  /** Forget watch history so any resourceVersion older than now gets 410 Gone. */
  compact(): void;
  /** Run the garbage collector now (with `gc: 'manual'`; in 'auto' it runs on its own, asynchronously). */
  runGc(): void;
  /** The `/version` this server reports and the EndpointSlice controller follows ("1.29", "1.32"). */
  serverVersion: string;
  close(): Promise<void>;
}
export interface StoreAccess {
  create(resource: Resource, obj: KObj): KObj;
  get(resource: Resource, namespace: string, name: string): KObj | undefined;
  list(resource: Resource, namespace?: string): KObj[];
  /** Replace the object (resourceVersion bumped, no precondition). */
  update(resource: Resource, obj: KObj): KObj;
  /** Delete; pods with `graceful` are only marked (deletionTimestamp) until `finalize`. */
  delete(resource: Resource, namespace: string, name: string, opts?: { graceful?: boolean }): KObj | undefined;
  finalize(resource: Resource, namespace: string, name: string): void;
  /**
   * A running pod on `nodeName` with a fresh UID (helper for the common seed). `podIP` (+ `ready`,
   * default true) makes it an endpoint candidate; `containers`/`initContainers` replace the default.
   */
  addPod(p: { namespace: string; name: string; nodeName: string; uid?: string; annotations?: Record<string, string>; labels?: Record<string, string>; phase?: string;
    podIP?: string; ready?: boolean; containers?: any[]; initContainers?: any[]; terminationGracePeriodSeconds?: number }): KObj;
  /** Set a pod's Ready condition (as the kubelet would after a probe). */
  setPodReady(namespace: string, name: string, ready: boolean): KObj;
  resourceVersion(): number;
}
export interface Faults {
  /** The next `n` matching requests answer `status` (default 500) with a Status body; 429 carries `Retry-After: <retryAfterSeconds>` (default 1). */
  failNext(n: number, status?: number, match?: { verb?: string; resource?: string; retryAfterSeconds?: number }): void;
  /** While on, every connection is reset without an answer and open watches are cut. */
  outage(on: boolean): void;
  /** Delay every answer by `ms`. */
  latency(ms: number): void;
  clear(): void;
}
export interface RequestLog {
  all(): RequestRecord[];
  count(match?: { verb?: string; resource?: string; name?: string }): number;
  reset(): void;
}

// ---------------------------------------------------------------- selectors
type Req = { key: string; op: '=' | '!=' | 'in' | 'notin' | 'exists' | '!'; values: string[] };
type Selector = Req[];

export function parseLabelSelector(s: string | null | undefined): Selector {
  if (!s) return [];
  const out: Selector = [];
  // split on commas not inside parentheses
  const parts: string[] = [];
  let depth = 0; let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) { parts.push(cur); cur = ''; } else cur += ch;
  }
  parts.push(cur);
  for (const raw of parts.map((p) => p.trim()).filter(Boolean)) {
    let m: RegExpMatchArray | null;
    if ((m = raw.match(/^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$/))) out.push({ key: m[1]!, op: m[2] as 'in' | 'notin', values: m[3]!.split(',').map((v) => v.trim()).filter(Boolean) });
    else if ((m = raw.match(/^([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)$/))) out.push({ key: m[1]!, op: m[2] === '!=' ? '!=' : '=', values: [m[3]!] });
    else if ((m = raw.match(/^!\s*([^\s!=]+)$/))) out.push({ key: m[1]!, op: '!', values: [] });
    else if ((m = raw.match(/^([^\s!=(),]+)$/))) out.push({ key: m[1]!, op: 'exists', values: [] });
    else throw new HttpError(400, 'BadRequest', `unable to parse requirement: ${raw}`);
  }
  return out;
}

function parseFieldSelector(s: string | null | undefined, def: ResourceDef): Selector {
  if (!s) return [];
  return s.split(',').map((p) => p.trim()).filter(Boolean).map((raw) => {
    const m = raw.match(/^([^=!]+)(==|=|!=)(.*)$/);
    if (!m) throw new HttpError(400, 'BadRequest', `invalid field selector: ${raw}`);
    const key = m[1]!.trim();
    if (!def.fields.includes(key)) throw new HttpError(400, 'BadRequest', `field label not supported: ${key}`);
    return { key, op: m[2] === '!=' ? '!=' : '=', values: [m[3]!.trim()] } as Req;
  });
}

function matches(sel: Selector, get: (k: string) => string | undefined): boolean {
  return sel.every((r) => {
    const v = get(r.key);
    switch (r.op) {
      case '=': return v === r.values[0];
      case '!=': return v !== r.values[0];
      case 'in': return v !== undefined && r.values.includes(v);
      case 'notin': return v === undefined || !r.values.includes(v);
      case 'exists': return v !== undefined;
      case '!': return v === undefined;
    }
    return false;
  });
}
const labelGetter = (o: KObj) => (k: string) => o.metadata.labels?.[k];
const fieldGetter = (o: KObj) => (k: string): string | undefined => {
  let cur: any = o;
  for (const p of k.split('.')) cur = cur?.[p];
  // unset string fields compare as ''
  return cur === undefined || cur === null ? '' : String(cur);
};

// ---------------------------------------------------------------- object meta (apimachinery validation)
const DNS_LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const DNS_SUBDOMAIN_RE = new RegExp(`^${DNS_LABEL}(\\.${DNS_LABEL})*$`);
const DNS_SUBDOMAIN_MSG = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_MSG = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (an optional DNS subdomain prefix and '/')";
const LABEL_VALUE_MSG = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63)";
export const isDnsSubdomain = (s: string) => s.length <= 253 && DNS_SUBDOMAIN_RE.test(s);
const NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
export function isQualifiedName(s: string): boolean {
  const parts = s.split('/');
  if (parts.length > 2) return false;
  const [prefix, name] = parts.length === 2 ? parts : [undefined, parts[0]!];
  if (prefix !== undefined && (!prefix || !isDnsSubdomain(prefix))) return false;
  return !!name && name.length <= 63 && NAME_PART.test(name);
}
export const isLabelValue = (v: string) => v === '' || (v.length <= 63 && NAME_PART.test(v));

// ---------------------------------------------------------------- JSON patch / merge patch
class HttpError extends Error {
  constructor(readonly status: number, readonly reason: string, message: string, readonly details?: Record<string, unknown>) { super(message); }
}
const clone = <T>(v: T): T => structuredClone(v);

const stripUndefined = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a as object); const kb = Object.keys(b as object);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual((a as any)[k], (b as any)[k]));
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new HttpError(422, 'Invalid', `invalid JSON pointer ${path}`);
  return path.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** RFC 6902 over a clone; any failure (including a failed `test`) is 422 as the real server answers. */
export function applyJsonPatch(doc: unknown, ops: unknown): any {
  if (!Array.isArray(ops)) throw new HttpError(400, 'BadRequest', 'json patch body must be an array of operations');
  let root: any = clone(doc);
  const fail = (msg: string) => { throw new HttpError(422, 'Invalid', `the server rejected our request due to an error in our request: ${msg}`); };
  const parentOf = (path: string): [any, string] => {
    const toks = pointer(path);
    if (!toks.length) fail(`cannot address the document root in ${path}`);
    let cur = root;
    for (const t of toks.slice(0, -1)) {
      if (cur === null || typeof cur !== 'object' || !(t in cur)) fail(`path ${path} does not exist`);
      cur = cur[t];
    }
    if (cur === null || typeof cur !== 'object') fail(`path ${path} does not exist`);
    return [cur, toks[toks.length - 1]!];
  };
  const getAt = (path: string): { ok: boolean; v?: unknown } => {
    let cur: any = root;
    for (const t of pointer(path)) {
      if (cur === null || typeof cur !== 'object' || !(t in cur)) return { ok: false };
      cur = cur[t];
    }
    return { ok: true, v: cur };
  };
  const add = (path: string, value: unknown) => {
    if (path === '') { root = clone(value); return; }
    const [p, k] = parentOf(path);
    if (Array.isArray(p)) {
      const i = k === '-' ? p.length : Number(k);
      if (!Number.isInteger(i) || i < 0 || i > p.length) fail(`array index ${k} out of range in ${path}`);
      p.splice(i, 0, clone(value));
    } else p[k] = clone(value);
  };
  const remove = (path: string) => {
    const [p, k] = parentOf(path);
    if (Array.isArray(p)) {
      const i = Number(k);
      if (!Number.isInteger(i) || i < 0 || i >= p.length) fail(`array index ${k} out of range in ${path}`);
      p.splice(i, 1);
    } else {
      if (!(k in p)) fail(`unable to remove nonexistent key: ${k}: missing value`);
      delete p[k];
    }
  };
  for (const op of ops as Array<{ op: string; path: string; value?: unknown; from?: string }>) {
    if (!op || typeof op.path !== 'string') fail('operation lacks a path');
    switch (op.op) {
      case 'add': add(op.path, op.value); break;
      case 'remove': remove(op.path); break;
      case 'replace': {
        if (!getAt(op.path).ok) fail(`replace operation does not apply: doc is missing key: ${op.path}`);
        if (op.path === '') { root = clone(op.value); break; }
        remove(op.path); add(op.path, op.value); break;
      }
      case 'move': {
        const g = getAt(op.from ?? ''); if (!g.ok) fail(`move from missing path ${op.from}`);
        remove(op.from!); add(op.path, g.v); break;
      }
      case 'copy': {
        const g = getAt(op.from ?? ''); if (!g.ok) fail(`copy from missing path ${op.from}`);
        add(op.path, g.v); break;
      }
      case 'test': {
        const g = getAt(op.path);
        // As evanphx/json-patch (the API server's): a null value tests that the key is absent
        // from an existing parent (whereabouts' "path is empty" test before each add).
        if (!g.ok && (op.value === null || op.value === undefined)) { parentOf(op.path); break; }
        if (!g.ok || !deepEqual(g.v, op.value)) fail(`testing value ${op.path} failed: test failed`);
        break;
      }
      default: fail(`unexpected op ${String(op.op)}`);
    }
  }
  return root;
}

/** RFC 7386 merge patch. */
export function applyMergePatch(target: unknown, patch: unknown): any {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return clone(patch);
  const out: any = target !== null && typeof target === 'object' && !Array.isArray(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch as object)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

// ---------------------------------------------------------------- the server
export interface StandInOptions {
  /** Watch events kept for resume; older resourceVersions get 410 Gone (default 5000). */
  historyLimit?: number;
  /** Reported by /version; decides the EndpointSlice controller's named-port rule (default "1.29"). */
  serverVersion?: string;
  /** Period of BOOKMARK events on watches that allow them (default 60 s, the apiserver's cacher). */
  bookmarkIntervalMs?: number;
  /** Watches without timeoutSeconds close after a random time in [this, 2×this] (default 1800 s). */
  minRequestTimeoutSeconds?: number;
  /** 'auto' (default): owner-reference GC runs asynchronously after a change; 'manual': only runGc(). */
  gc?: 'auto' | 'manual';
  /** Clock of TokenRequest/TokenReview (ms, default Date.now): a test steps it past a token's exp (kube-tokenreview.ts). */
  tokenClock?: () => number;
  /**
   * 'served' (default): custom resources are served as if their CRDs were installed. 'required':
   * as the real server, a custom resource is served only once its CRD exists and is Established
   * (else 404, e.g. whereabouts not installed).
   */
  crds?: 'served' | 'required';
}

const SCHEMA_TYPES = Object.values(RESOURCES).map((d) => ({ apiVersion: apiVersionOf(d), kind: d.kind }));
const nowSeconds = (ms = Date.now()) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

export async function startKubeApiServer(opts: StandInOptions = {}): Promise<KubeApiServer> {
  const historyLimit = opts.historyLimit ?? 5000;
  const serverVersion = opts.serverVersion ?? '1.29';
  const serverMinor = Number(serverVersion.split('.')[1]);
  const bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 60_000;
  const minRequestTimeout = opts.minRequestTimeoutSeconds ?? 1800;
  await preloadSchemas(SCHEMA_TYPES);
  let rv = 1000;
  /** Warning headers of the write being handled (unknown fields dropped under fieldValidation=Warn). */
  let pendingWarnings: string[] = [];
  const objects = new Map<string, Map<string, KObj>>(); // resource → "ns/name" → obj
  for (const r of Object.keys(RESOURCES)) objects.set(r, new Map());
  let history: WatchEvent[] = [];
  let compactedBefore = rv; // events with rv <= this are gone
  const watchers = new Set<Watcher>();
  const sockets = new Set<Socket>();
  const log: RequestRecord[] = [];
  let rules: FaultRule[] = [];
  let down = false;
  let delayMs = 0;
  const graceTimers = new Set<NodeJS.Timeout>();
  const tokens = tokenAuthority(() => store, opts.tokenClock);

  const key = (ns: string | undefined, name: string) => `${ns ?? ''}/${name}`;
  const decorate = (resource: string, o: KObj): KObj => {
    const def = RESOURCES[resource]!;
    return { apiVersion: apiVersionOf(def), kind: def.kind, ...o };
  };

  function emit(resource: string, type: WatchEvent['type'], obj: KObj, old?: KObj): void {
    const ev: WatchEvent = { rv: Number(obj.metadata.resourceVersion), type, resource, obj: clone(obj), old: old && clone(old) };
    history.push(ev);
    if (history.length > historyLimit) {
      const cut = history.length - historyLimit;
      compactedBefore = history[cut - 1]!.rv;
      history = history.slice(cut);
    }
    for (const w of watchers) deliver(w, ev);
    if (resource === 'pods' || resource === 'services' || (resource === 'endpointslices' && obj.metadata.labels?.['endpointslice.kubernetes.io/managed-by'] === MANAGED_BY)) scheduleSlices(obj.metadata.namespace ?? '');
  }

  // -------------------------------------------------------------- EndpointSlice controller
  const sliceNamespaces = new Set<string>();
  function scheduleSlices(ns: string): void {
    if (sliceNamespaces.has(ns)) return;
    sliceNamespaces.add(ns);
    setImmediate(() => { sliceNamespaces.delete(ns); reconcileSlices(ns); });
  }
  function reconcileSlices(ns: string): void {
    const services = [...objects.get('services')!.values()].filter((o) => o.metadata.namespace === ns && o.spec?.selector && Object.keys(o.spec.selector).length);
    const pods = [...objects.get('pods')!.values()].filter((o) => o.metadata.namespace === ns);
    const slices = objects.get('endpointslices')!;
    const managed = [...slices.values()].filter((o) => o.metadata.namespace === ns && o.metadata.labels?.['endpointslice.kubernetes.io/managed-by'] === MANAGED_BY);
    for (const svc of services) {
      const mine = managed.filter((o) => o.metadata.labels?.[SERVICE_NAME_LABEL] === svc.metadata.name);
      const used = new Set<KObj>();
      for (const want of desiredSlices(svc, pods, serverMinor)) {
        const same = mine.find((o) => !used.has(o) && o.addressType === want.addressType && JSON.stringify(o.ports ?? []) === JSON.stringify(want.ports));
        const body: KObj = {
          metadata: {
            name: same?.metadata.name ?? '', generateName: `${svc.metadata.name}-`, namespace: ns,
            labels: { ...(svc.metadata.labels ?? {}), [SERVICE_NAME_LABEL]: svc.metadata.name, 'endpointslice.kubernetes.io/managed-by': MANAGED_BY },
            ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: svc.metadata.name, uid: svc.metadata.uid!, controller: true, blockOwnerDeletion: true }],
          },
          addressType: want.addressType, endpoints: want.endpoints, ports: want.ports,
        };
        if (same) { used.add(same); ops.write('endpointslices', same, { ...body, metadata: { ...same.metadata, labels: body.metadata.labels } }); } else { delete (body.metadata as any).name; ops.create('endpointslices', ns, body); }
      }
      for (const o of mine) if (!used.has(o)) removeNow('endpointslices', o);
    }
    // slices of Services that are gone (or lost their selector)
    for (const o of managed) if (!services.some((s) => s.metadata.name === o.metadata.labels?.[SERVICE_NAME_LABEL]) && slices.has(key(ns, o.metadata.name))) removeNow('endpointslices', o);
  }

  function deliver(w: Watcher, ev: WatchEvent): void {
    if (w.closed || w.resource !== ev.resource) return;
    if (w.namespace && ev.obj.metadata.namespace !== w.namespace) return;
    const now = matches(w.label, labelGetter(ev.obj)) && matches(w.field, fieldGetter(ev.obj));
    const before = ev.old ? matches(w.label, labelGetter(ev.old)) && matches(w.field, fieldGetter(ev.old)) : false;
    let type: string = ev.type;
    // As the real server: an object leaving the selection is DELETED for this watcher, entering is ADDED.
    if (ev.type === 'MODIFIED') {
      if (now && !before) type = 'ADDED';
      else if (!now && before) type = 'DELETED';
      else if (!now) return;
    } else if (!now) return;
    w.res.write(JSON.stringify({ type, object: decorate(ev.resource, ev.obj) }) + '\n');
  }

  function gc(): void {
    // Background cascading deletion: a dependent all of whose owners are gone is deleted.
    const uids = new Set<string>();
    for (const m of objects.values()) for (const o of m.values()) if (o.metadata.uid) uids.add(o.metadata.uid);
    for (const [resource, m] of objects) {
      for (const o of [...m.values()]) {
        const refs = o.metadata.ownerReferences;
        if (refs?.length && refs.every((r) => !uids.has(r.uid))) removeNow(resource, o);
      }
    }
  }
  let gcPending = false;
  const scheduleGc = () => {
    if (gcPending || opts.gc === 'manual') return;
    gcPending = true;
    setImmediate(() => { gcPending = false; gc(); });
  };

  function removeNow(resource: string, o: KObj): void {
    const m = objects.get(resource)!;
    const k = key(o.metadata.namespace, o.metadata.name);
    if (!m.has(k)) return;
    const cur = m.get(k)!;
    if ((cur.metadata.finalizers as string[] | undefined)?.length) {
      // Finalizers hold the object: mark it terminating; it goes when the last finalizer is removed.
      if (cur.metadata.deletionTimestamp) return;
      const marked = clone(cur);
      marked.metadata.deletionTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      marked.metadata.deletionGracePeriodSeconds = 0;
      marked.metadata.resourceVersion = String(++rv);
      m.set(k, marked);
      emit(resource, 'MODIFIED', marked, cur);
      return;
    }
    m.delete(k);
    const gone = { ...clone(o), metadata: { ...clone(o.metadata), resourceVersion: String(++rv) } };
    emit(resource, 'DELETED', gone);
    scheduleGc();
  }

  /**
   * Schema admission of the object about to be stored, as the real server judges it: decode errors
   * 400, invalid 422, unknown fields dropped with a Warning (400 under fieldValidation=Strict).
   */
  function admit(resource: string, obj: KObj, fieldValidation?: string | null): KObj {
    const full = clone(decorate(resource, obj));
    const issues = validateObjectSync(full);
    if (!issues.length) { normalizeTimes(full); delete full.apiVersion; delete full.kind; return full; }
    const verdict = statusFor(full, issues, { fieldValidation: (fieldValidation ?? undefined) as 'Strict' | undefined });
    if (verdict) throw new HttpError(verdict.code, verdict.status.reason, verdict.status.message, verdict.status.details as Record<string, unknown> | undefined);
    pendingWarnings.push(...warningsFor(issues));
    const kept = dropUnknownFields(full, issues);
    normalizeTimes(kept);
    delete kept.apiVersion; delete kept.kind;
    return kept;
  }

  /** The apiextensions controller's part: a new CRD's names are accepted and it is Established. */
  function establish(k: string): void {
    const cur = objects.get('customresourcedefinitions')!.get(k);
    if (!cur) return;
    const now = nowSeconds();
    const conditions = ['NamesAccepted', 'Established'].map((type) => ({ type, status: 'True', reason: type === 'Established' ? 'InitialNamesAccepted' : 'NoConflicts', message: '', lastTransitionTime: now }));
    ops.write('customresourcedefinitions', cur, { ...cur, status: { conditions, acceptedNames: cur.spec?.names, storedVersions: (cur.spec?.versions ?? []).filter((v: any) => v.storage).map((v: any) => v.name) } });
  }

  const ops = {
    create(resource: string, namespace: string | undefined, body: KObj | undefined, fieldValidation?: string | null): KObj {
      const def = RESOURCES[resource]!;
      if (!body || typeof body !== 'object' || !body.metadata) throw new HttpError(400, 'BadRequest', 'object has no metadata');
      const meta = { ...body.metadata };
      if (!meta.name && meta.generateName) meta.name = meta.generateName + randomUUID().slice(0, 5);
      if (!meta.name) throw new HttpError(422, 'Invalid', `${def.kind} "" is invalid: metadata.name: Required value: name or generateName is required`);
      if (meta.namespace && namespace && meta.namespace !== namespace) throw new HttpError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
      meta.namespace = namespace ?? meta.namespace;
      if (def.clusterScoped) delete meta.namespace;
      if (meta.resourceVersion) throw new HttpError(400, 'BadRequest', 'resourceVersion should not be set on objects to be created');
      const m = objects.get(resource)!;
      const k = key(meta.namespace, meta.name);
      if (m.has(k)) throw new HttpError(409, 'AlreadyExists', `${resource}${def.group ? '.' + def.group : ''} "${meta.name}" already exists`, { name: meta.name, group: def.group, kind: resource });
      validateValues(resource, body);
      meta.uid = randomUUID();
      meta.creationTimestamp = nowSeconds();
      delete meta.deletionTimestamp;
      let obj: KObj = { ...clone(body), metadata: meta };
      delete obj.apiVersion; delete obj.kind;
      if (resource === 'pods') obj.status = { phase: 'Pending', ...(obj.status ?? {}) };
      obj = admit(resource, obj, fieldValidation);
      obj.metadata.resourceVersion = String(++rv);
      m.set(k, obj);
      emit(resource, 'ADDED', obj);
      if (resource === 'customresourcedefinitions') setImmediate(() => establish(k));
      if (meta.ownerReferences?.length) scheduleGc();
      return clone(obj);
    },
    get(resource: string, namespace: string | undefined, name: string): KObj {
      const o = objects.get(resource)!.get(key(namespace, name));
      if (!o) throw notFound(resource, name);
      return clone(o);
    },
    list(resource: string, namespace: string | undefined, label: Selector, field: Selector): KObj[] {
      return [...objects.get(resource)!.values()]
        .filter((o) => !namespace || o.metadata.namespace === namespace)
        .filter((o) => matches(label, labelGetter(o)) && matches(field, fieldGetter(o)))
        .sort((a, b) => key(a.metadata.namespace, a.metadata.name).localeCompare(key(b.metadata.namespace, b.metadata.name)))
        .map(clone);
    },
    /** Store `next` over the current object, with an optimistic-lock check on any resourceVersion it carries. */
    write(resource: string, current: KObj, next: KObj, fieldValidation?: string | null): KObj {
      if (!next || typeof next !== 'object' || !next.metadata) throw new HttpError(400, 'BadRequest', 'object has no metadata');
      if (next.metadata.name !== current.metadata.name) throw new HttpError(400, 'BadRequest', 'the name of the object does not match the name on the URL');
      const want = next.metadata.resourceVersion;
      if (want !== undefined && want !== '' && want !== current.metadata.resourceVersion) {
        throw new HttpError(409, 'Conflict', `Operation cannot be fulfilled on ${resource} "${current.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`, { name: current.metadata.name, kind: resource });
      }
      validateValues(resource, next);
      let obj: KObj = clone(next);
      delete obj.apiVersion; delete obj.kind;
      // immutable/system fields stay the server's
      obj.metadata = { ...obj.metadata, uid: current.metadata.uid, namespace: current.metadata.namespace, creationTimestamp: current.metadata.creationTimestamp, resourceVersion: current.metadata.resourceVersion };
      if (RESOURCES[resource]!.clusterScoped) delete obj.metadata.namespace;
      if (current.metadata.deletionTimestamp) { obj.metadata.deletionTimestamp = current.metadata.deletionTimestamp; obj.metadata.deletionGracePeriodSeconds = current.metadata.deletionGracePeriodSeconds; }
      if (resource === 'pods' && current.spec?.nodeName && obj.spec?.nodeName !== current.spec.nodeName) {
        throw new HttpError(422, 'Invalid', `Pod "${current.metadata.name}" is invalid: spec: Forbidden: pod updates may not change fields other than …`);
      }
      obj = admit(resource, obj, fieldValidation);
      // A write that changes nothing is a no-op: same resourceVersion, no watch event (GuaranteedUpdate).
      if (deepEqual(stripUndefined(obj), stripUndefined(current))) return clone(current);
      obj.metadata.resourceVersion = String(++rv);
      objects.get(resource)!.set(key(current.metadata.namespace, current.metadata.name), obj);
      emit(resource, 'MODIFIED', obj, current);
      if (obj.metadata.deletionTimestamp && !(obj.metadata.finalizers as string[] | undefined)?.length && resource !== 'pods') removeNow(resource, obj);
      if (obj.metadata.ownerReferences?.length) scheduleGc();
      return clone(obj);
    },
    delete(resource: string, namespace: string | undefined, name: string, o: { gracePeriodSeconds?: number; preconditions?: { uid?: string; resourceVersion?: string } } = {}): KObj {
      const m = objects.get(resource)!;
      const cur = m.get(key(namespace, name));
      if (!cur) throw notFound(resource, name);
      const pre = o.preconditions ?? {};
      if (pre.uid && pre.uid !== cur.metadata.uid) throw new HttpError(409, 'Conflict', `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${cur.metadata.uid}`);
      if (pre.resourceVersion && pre.resourceVersion !== cur.metadata.resourceVersion) throw new HttpError(409, 'Conflict', `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${cur.metadata.resourceVersion}`);
      // Pods: the request's grace, else the pod's terminationGracePeriodSeconds (default 30); an
      // unscheduled or finished pod goes at once (the pod strategy's CheckGracefulDelete).
      const finished = cur.status?.phase === 'Succeeded' || cur.status?.phase === 'Failed';
      const grace = resource !== 'pods' ? o.gracePeriodSeconds
        : !cur.spec?.nodeName || finished ? 0
        : o.gracePeriodSeconds ?? cur.spec?.terminationGracePeriodSeconds ?? 30;
      if (resource === 'pods' && grace !== undefined && grace > 0) {
        // Graceful: mark terminating (as the API does until the kubelet confirms), remove after the grace period.
        if (cur.metadata.deletionTimestamp) return clone(cur);
        const marked: KObj = clone(cur);
        marked.metadata.deletionTimestamp = nowSeconds(Date.now() + grace * 1000);
        marked.metadata.deletionGracePeriodSeconds = grace;
        marked.metadata.resourceVersion = String(++rv);
        m.set(key(namespace, name), marked);
        emit(resource, 'MODIFIED', marked, cur);
        const t = setTimeout(() => { graceTimers.delete(t); const now = m.get(key(namespace, name)); if (now && now.metadata.uid === cur.metadata.uid) removeNow(resource, now); }, grace * 1000);
        t.unref();
        graceTimers.add(t);
        return clone(marked);
      }
      removeNow(resource, cur);
      return clone(cur);
    },
  };

  function validateValues(resource: string, o: KObj): void {
    // Only the validations the real server applies that our code could trip over.
    const cost = o.metadata.annotations?.['controller.kubernetes.io/pod-deletion-cost'];
    if (resource === 'pods' && cost !== undefined) {
      const n = Number(cost);
      if (!/^-?\d+$/.test(cost) || n < -2147483648 || n > 2147483647) throw new HttpError(422, 'Invalid', `Pod "${o.metadata.name}" is invalid: metadata.annotations: Invalid value: "${cost}": must be a 32bit integer`);
    }
    // apimachinery's ValidateObjectMeta: names, label keys/values, annotation keys and size, finalizers.
    const def = RESOURCES[resource]!;
    const invalid = (field: string, value: string, why: string) => new HttpError(422, 'Invalid', `${def.kind}${def.group ? '.' + def.group : ''} "${o.metadata.name}" is invalid: ${field}: Invalid value: "${value}": ${why}`,
      { name: o.metadata.name, group: def.group, kind: def.kind, causes: [{ reason: 'FieldValueInvalid', message: `Invalid value: "${value}": ${why}`, field }] });
    const name = o.metadata.name;
    if (name && resource === 'services' && !(name.length <= 63 && /^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(name))) throw invalid('metadata.name', name, "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character");
    if (name && !isDnsSubdomain(name)) throw invalid('metadata.name', name, DNS_SUBDOMAIN_MSG);
    for (const [k, v] of Object.entries(o.metadata.labels ?? {})) {
      if (!isQualifiedName(k)) throw invalid('metadata.labels', k, QUALIFIED_NAME_MSG);
      if (typeof v !== 'string' || !isLabelValue(v)) throw invalid(`metadata.labels`, String(v), LABEL_VALUE_MSG);
    }
    let size = 0;
    for (const [k, v] of Object.entries(o.metadata.annotations ?? {})) {
      if (!isQualifiedName(k.toLowerCase())) throw invalid('metadata.annotations', k, QUALIFIED_NAME_MSG);
      size += k.length + String(v).length;
    }
    if (size > 256 * 1024) throw invalid('metadata.annotations', '', 'Too long: must have at most 262144 bytes');
    for (const f of (o.metadata.finalizers as string[] | undefined) ?? []) if (!isQualifiedName(f)) throw invalid('metadata.finalizers', f, QUALIFIED_NAME_MSG);
  }

  const notFound = (resource: string, name: string) => {
    const def = RESOURCES[resource]!;
    return new HttpError(404, 'NotFound', `${resource}${def.group ? '.' + def.group : ''} "${name}" not found`, { name, group: def.group, kind: resource });
  };

  // -------------------------------------------------------------- routing
  interface Route { resource: string; namespace?: string; name?: string; subresource?: string }
  /**
   * The pod strategies' PrepareForUpdate: through the main resource a status change is ignored
   * (the old status kept); through `/status` only the status changes (spec kept).
   */
  const podStrategy = (r: Route, cur: KObj, next: KObj): KObj => {
    if (r.resource !== 'pods' || !next || typeof next !== 'object') return next;
    return r.subresource === 'status' ? { ...next, spec: cur.spec } : { ...next, status: cur.status };
  };
  function route(pathname: string): Route | undefined {
    const p = pathname.split('/').filter(Boolean).map(decodeURIComponent);
    let rest: string[];
    let group = '';
    let version: string;
    if (p[0] === 'api') { version = p[1]!; rest = p.slice(2); } else if (p[0] === 'apis') { group = p[1]!; version = p[2]!; rest = p.slice(3); } else return undefined;
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) { namespace = rest[1]; rest = rest.slice(2); }
    const def = RESOURCES[rest[0] ?? ''];
    if (!def || def.group !== group || def.version !== version) return undefined;
    if (rest.length > 3 || (def.clusterScoped && namespace)) return undefined;
    return { resource: def.plural, namespace, name: rest[1], subresource: rest[2] };
  }

  function sendStatus(res: ServerResponse, e: HttpError): void {
    res.writeHead(e.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: e.message, reason: e.reason, details: e.details, code: e.status }));
  }
  const sendJson = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  async function readBody(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if (!text) return undefined;
    try { return JSON.parse(text); } catch (e) { throw new HttpError(400, 'BadRequest', `body is not JSON: ${(e as Error).message}`); }
  }

  function verbOf(method: string, r: Route, q: URLSearchParams): string {
    if (method === 'GET') return r.name ? 'get' : isWatch(q) ? 'watch' : 'list';
    return ({ POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: r.name ? 'delete' : 'deletecollection' } as Record<string, string>)[method] ?? method.toLowerCase();
  }
  const isWatch = (q: URLSearchParams) => q.get('watch') === 'true' || q.get('watch') === '1';

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const r = route(url.pathname);
    const method = req.method ?? 'GET';
    const rec: RequestRecord = { verb: r ? verbOf(method, r, url.searchParams) : method.toLowerCase(), resource: r?.resource ?? url.pathname, namespace: r?.namespace, name: r?.name, path: url.pathname, status: 0, query: url.search };
    log.push(rec);
    res.on('finish', () => { if (!rec.status) rec.status = res.statusCode; });
    if (delayMs) await new Promise((ok) => setTimeout(ok, delayMs));
    try {
      const rule = rules.find((f) => f.remaining > 0 && (!f.verb || f.verb === rec.verb) && (!f.resource || f.resource === rec.resource));
      if (rule) {
        rule.remaining--;
        // API priority and fairness rejects with 429 + Retry-After (the request was not processed).
        if (rule.status === 429) {
          const after = rule.retryAfterSeconds ?? 1;
          res.setHeader('Retry-After', String(after));
          throw new HttpError(429, 'TooManyRequests', 'Too many requests, please try again later.', { retryAfterSeconds: after });
        }
        throw new HttpError(rule.status, ({ 403: 'Forbidden', 404: 'NotFound', 503: 'ServiceUnavailable' } as Record<number, string>)[rule.status] ?? 'InternalError', `injected fault (${rule.status})`);
      }
      const tok = await tokens.route(method, url.pathname, () => readBody(req)); if (tok) return sendJson(res, tok.status, tok.body); // TokenRequest / TokenReview: kube-tokenreview.ts
      if (!r && method === 'GET' && url.pathname === '/version') {
        const [major, minor] = serverVersion.split('.');
        return sendJson(res, 200, { major, minor, gitVersion: `v${serverVersion}.0`, platform: 'linux/amd64' });
      }
      if (!r) throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);
      const def = RESOURCES[r.resource]!;
      if (isCustom(def) && opts.crds === 'required') {
        const crd = objects.get('customresourcedefinitions')!.get(key(undefined, `${def.plural}.${def.group}`));
        if (!crd?.status?.conditions?.some((c: any) => c.type === 'Established' && c.status === 'True')) throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
      }
      if (r.subresource && !(r.resource === 'pods' && r.subresource === 'status')) throw new HttpError(404, 'NotFound', `subresource ${r.subresource} not served by the stand-in`);
      const q = url.searchParams;
      const fv = q.get('fieldValidation');
      if (fv !== null && !['Strict', 'Warn', 'Ignore'].includes(fv)) throw new HttpError(400, 'BadRequest', `fieldValidation must be one of "Ignore", "Warn", or "Strict", got "${fv}"`);
      pendingWarnings = [];
      const withWarnings = () => { const w = pendingWarnings; pendingWarnings = []; if (w.length && fv !== 'Ignore') { res.setHeader('Warning', w); rec.warnings = w; } };
      if (method === 'GET' && !r.name) {
        const label = parseLabelSelector(q.get('labelSelector'));
        const field = parseFieldSelector(q.get('fieldSelector'), def);
        if (isWatch(q)) return startWatch(req, res, r, label, field, q, rec);
        const items = ops.list(r.resource, r.namespace, label, field).map((o) => decorate(r.resource, o));
        return sendJson(res, 200, { apiVersion: apiVersionOf(def), kind: `${def.kind}List`, metadata: { resourceVersion: String(rv) }, items });
      }
      if (method === 'GET') return sendJson(res, 200, decorate(r.resource, ops.get(r.resource, r.namespace, r.name!)));
      if (method === 'POST' && !r.name) {
        const body = (await readBody(req)) as KObj;
        // The pod strategy's PrepareForCreate: whatever status was sent, a new pod is Pending.
        // (after decoding: a status that cannot be decoded is still a 400)
        if (r.resource === 'pods' && body && typeof body === 'object' && body.metadata) {
          try { admit(r.resource, clone(body), fv); } catch (e) { if ((e as HttpError).status === 400) throw e; }
          pendingWarnings = [];
          body.status = { phase: 'Pending' };
        }
        const created = ops.create(r.resource, r.namespace, body, fv);
        withWarnings();
        return sendJson(res, 201, decorate(r.resource, created));
      }
      if (method === 'PUT' && r.name) {
        const body = (await readBody(req)) as KObj;
        const cur = ops.get(r.resource, r.namespace, r.name);
        // custom resources do not allow unconditional updates (the CR strategy), built-ins do
        if (isCustom(def) && !body?.metadata?.resourceVersion) throw new HttpError(422, 'Invalid', `${def.kind}.${def.group} "${r.name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`);
        const written = ops.write(r.resource, cur, podStrategy(r, cur, body), fv);
        withWarnings();
        return sendJson(res, 200, decorate(r.resource, written));
      }
      if (method === 'PATCH' && r.name) {
        const ctype = String(req.headers['content-type'] ?? '').split(';')[0]!.trim();
        const body = await readBody(req);
        const cur = ops.get(r.resource, r.namespace, r.name);
        const base = decorate(r.resource, cur);
        let next: KObj;
        if (ctype === 'application/json-patch+json') next = applyJsonPatch(base, body);
        else if (ctype === 'application/merge-patch+json') next = applyMergePatch(base, body);
        else if (ctype === 'application/strategic-merge-patch+json' && !isCustom(def)) next = applyMergePatch(base, body); // maps only; lists are not merged by key here
        else throw new HttpError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json${isCustom(def) ? '' : ', application/strategic-merge-patch+json'}`);
        // a resourceVersion changed by the patch is an optimistic-lock precondition, as in the real server
        if (next?.metadata && next.metadata.resourceVersion === cur.metadata.resourceVersion) delete next.metadata.resourceVersion;
        const written = ops.write(r.resource, cur, podStrategy(r, cur, next), fv);
        withWarnings();
        return sendJson(res, 200, decorate(r.resource, written));
      }
      if (method === 'DELETE' && r.name) {
        const body = ((await readBody(req)) ?? {}) as { gracePeriodSeconds?: number; preconditions?: { uid?: string; resourceVersion?: string } };
        const grace = q.get('gracePeriodSeconds') !== null ? Number(q.get('gracePeriodSeconds')) : body.gracePeriodSeconds;
        const o = ops.delete(r.resource, r.namespace, r.name, { gracePeriodSeconds: grace, preconditions: body.preconditions });
        return sendJson(res, 200, decorate(r.resource, o));
      }
      throw new HttpError(405, 'MethodNotAllowed', `${method} is not supported on ${url.pathname}`);
    } catch (e) {
      if (e instanceof HttpError) return sendStatus(res, e);
      return sendStatus(res, new HttpError(500, 'InternalError', (e as Error).message));
    }
  }

  function startWatch(req: IncomingMessage, res: ServerResponse, r: Route, label: Selector, field: Selector, q: URLSearchParams, rec: RequestRecord): void {
    const from = q.get('resourceVersion');
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const w: Watcher = { resource: r.resource, namespace: r.namespace, label, field, res, closed: false };
    const end = () => { if (w.closed) return; w.closed = true; if (w.timer) clearTimeout(w.timer); if (w.bookmarks) clearTimeout(w.bookmarks); watchers.delete(w); res.end(); };
    req.on('close', end);
    res.on('close', end);
    if (!from || from === '0') {
      // "Start at most recent": synthetic ADDED for the current state, then live events.
      for (const o of ops.list(r.resource, r.namespace, label, field)) res.write(JSON.stringify({ type: 'ADDED', object: decorate(r.resource, o) }) + '\n');
    } else {
      const n = Number(from);
      if (!Number.isFinite(n) || n < compactedBefore) {
        res.write(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${from} (${compactedBefore + 1})`, reason: 'Expired', code: 410 } }) + '\n');
        end();
        return;
      }
      for (const ev of history) if (ev.rv > n) deliver(w, ev);
    }
    watchers.add(w);
    // The server ends every watch: after timeoutSeconds, else after a random time in
    // [minRequestTimeout, 2×minRequestTimeout] (kube-apiserver's --min-request-timeout, 1800 s).
    const asked = Number(q.get('timeoutSeconds'));
    const timeoutMs = asked > 0 ? asked * 1000 : (minRequestTimeout + Math.random() * minRequestTimeout) * 1000;
    const deadline = Date.now() + timeoutMs;
    w.timer = setTimeout(end, timeoutMs); w.timer.unref();
    if (q.get('allowWatchBookmarks') === 'true') {
      // As the cacher: a BOOKMARK every bookmarkFrequency and one shortly (2 s) before the deadline;
      // the first only after bookmarkFrequency, so never before the initial events of a watch.
      const bookmark = () => {
        if (w.closed) return;
        rec.lastBookmark = String(rv);
        res.write(JSON.stringify({ type: 'BOOKMARK', object: { kind: RESOURCES[r.resource]!.kind, apiVersion: apiVersionOf(RESOURCES[r.resource]!), metadata: { resourceVersion: String(rv) } } }) + '\n');
        arm();
      };
      const arm = () => {
        const now = Date.now();
        const heartbeat = deadline - 2000;
        const next = heartbeat > now ? Math.min(now + bookmarkIntervalMs, heartbeat) : now + bookmarkIntervalMs;
        if (next >= deadline) return;
        w.bookmarks = setTimeout(bookmark, next - now); w.bookmarks.unref();
      };
      arm();
    }
  }

  const server: Server = createServer((req, res) => {
    if (down) { req.socket.destroy(); return; }
    void handle(req, res);
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); if (down) s.destroy(); });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as { port: number };
  const url = `http://127.0.0.1:${port}`;

  const store: StoreAccess = {
    create: (resource, obj) => decorate(resource, ops.create(resource, obj.metadata.namespace, obj)),
    get: (resource, ns, name) => { const o = objects.get(resource)!.get(key(ns, name)); return o && decorate(resource, clone(o)); },
    list: (resource, ns) => ops.list(resource, ns, [], []).map((o) => decorate(resource, o)),
    update: (resource, obj) => {
      const cur = ops.get(resource, obj.metadata.namespace, obj.metadata.name);
      const next = clone(obj); delete next.metadata.resourceVersion;
      return decorate(resource, ops.write(resource, cur, next));
    },
    delete: (resource, ns, name, o = {}) => {
      const cur = objects.get(resource)!.get(key(ns, name));
      if (!cur) return undefined;
      if (o.graceful && resource === 'pods') {
        if (cur.metadata.deletionTimestamp) return clone(cur);
        const marked = clone(cur);
        marked.metadata.deletionTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
        marked.metadata.deletionGracePeriodSeconds = 30;
        marked.metadata.resourceVersion = String(++rv);
        objects.get(resource)!.set(key(ns, name), marked);
        emit(resource, 'MODIFIED', marked, cur);
        return clone(marked);
      }
      removeNow(resource, cur);
      return clone(cur);
    },
    finalize: (resource, ns, name) => { const cur = objects.get(resource)!.get(key(ns, name)); if (cur) removeNow(resource, cur); },
    addPod: (p) => {
      const ready = p.ready ?? true;
      const obj: KObj = {
        metadata: { name: p.name, namespace: p.namespace, labels: p.labels, annotations: p.annotations },
        spec: {
          nodeName: p.nodeName, containers: p.containers ?? [{ name: 'main', image: 'registry.k8s.io/pause:3.9' }],
          ...(p.initContainers ? { initContainers: p.initContainers } : {}),
          ...(p.terminationGracePeriodSeconds !== undefined ? { terminationGracePeriodSeconds: p.terminationGracePeriodSeconds } : {}),
        },
        status: {
          phase: p.phase ?? 'Running',
          ...(p.podIP ? { podIP: p.podIP, podIPs: [{ ip: p.podIP }], conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: nowSeconds() }] } : {}),
        },
      };
      const created = ops.create('pods', p.namespace, obj);
      if (p.uid) {
        // tests sometimes need a known UID: rewrite it in place (no extra event, as if created so)
        const stored = objects.get('pods')!.get(key(p.namespace, p.name))!;
        stored.metadata.uid = p.uid;
        for (const ev of history) if (ev.obj.metadata.resourceVersion === created.metadata.resourceVersion) ev.obj.metadata.uid = p.uid;
        created.metadata.uid = p.uid;
      }
      return decorate('pods', created);
    },
    resourceVersion: () => rv,
    setPodReady: (ns, name, ready) => {
      const cur = ops.get('pods', ns, name);
      const conditions = [...(cur.status?.conditions ?? []).filter((c: any) => c.type !== 'Ready'), { type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: nowSeconds() }];
      return decorate('pods', ops.write('pods', cur, { ...cur, status: { ...cur.status, conditions } }));
    },
  };

  const faults: Faults = {
    failNext: (n, status = 500, match = {}) => { rules.push({ remaining: n, status, ...match }); },
    outage: (on) => {
      down = on;
      if (on) {
        for (const w of [...watchers]) { w.closed = true; watchers.delete(w); w.res.destroy(); }
        for (const s of sockets) s.destroy();
      }
    },
    latency: (ms) => { delayMs = ms; },
    clear: () => { rules = []; down = false; delayMs = 0; },
  };

  const requests: RequestLog = {
    all: () => log.map((r) => ({ ...r })),
    count: (m = {}) => log.filter((r) => (!m.verb || r.verb === m.verb) && (!m.resource || r.resource === m.resource) && (!m.name || r.name === m.name)).length,
    reset: () => { log.length = 0; },
  };

  return {
    url,
    kubeconfig: () => {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'stand-in', server: url, skipTLSVerify: true }],
        users: [{ name: 'stand-in', token: 'stand-in-token' }],
        contexts: [{ name: 'stand-in', cluster: 'stand-in', user: 'stand-in', namespace: 'default' }],
        currentContext: 'stand-in',
      });
      return kc;
    },
    store,
    faults,
    requests,
    compact: () => { compactedBefore = rv; history = []; },
    runGc: () => gc(),
    serverVersion,
    close: async () => {
      for (const t of graceTimers) clearTimeout(t);
      for (const w of [...watchers]) { w.closed = true; watchers.delete(w); w.res.destroy(); }
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}
