// Judges any Kubernetes object's schema as the API server would: built-in kinds against the
// published OpenAPI schemas shipped on npm, custom resources against the published CRD manifests
// copied in test/crds/. Test-only (devDependencies); the API stand-in and the chart tests use it.
//
// USAGE
//   import { validateObject, statusFor } from '../support/k8s-schema.js';
//   const issues = await validateObject(obj);           // [] when the server would accept the schema
//   for (const i of issues) console.log(i.path, i.message, i.class);
//   const st = statusFor(obj, issues);                   // {code, status, warnings} or undefined
//   // code 400 (BadRequest: JSON that cannot be decoded, e.g. a bad MicroTime), 422 (Invalid:
//   // required/enum/CRD schema), status = the Status body the real server sends.
//   // Synchronous use (e.g. inside a request handler): await preloadSchemas([{apiVersion, kind}]),
//   // then validateObjectSync(obj).
//
// ISSUE CLASSES (what the real server does with them)
//   'decode'        built-in kinds only: a value Go's JSON decoder refuses (wrong type, Time not RFC 3339,
//                   MicroTime without exactly six fractional digits) → 400 BadRequest.
//   'invalid'       required field missing, enum/format/CRD-schema violation → 422 Invalid.
//   'unknown-field' a field the schema does not have. The server's default (fieldValidation=Warn,
//                   1.27+) DROPS it and answers with a `Warning: 299 - "unknown field \"spec.x\""`
//                   header; with fieldValidation=Strict it is 400 BadRequest. `statusFor` follows that.
//   'unknown-kind'  no schema known here for apiVersion/kind (the server would answer 404).
//
// SOURCES (never a hand-written copy)
//   - kubernetes-models (npm, tommy351/kubernetes-models-ts): compiled validators of the official
//     OpenAPI definitions: types, required, enums, formats of every built-in kind.
//   - @kubernetes/client-node's generated model catalogue (OpenAPI spec release-1.36): the field
//     names of every built-in type (unknown fields) and which are Time (`date-time`) or MicroTime
//     (`date-time-micro`); parsed here as apimachinery's Time/MicroTime UnmarshalJSON does
//     (time.RFC3339 resp. RFC3339Micro "2006-01-02T15:04:05.000000Z07:00").
//   - test/crds/*.yaml: whereabouts IPPool, OverlappingRangeIPReservation, NodeSlicePool and Multus
//     NetworkAttachmentDefinition CRDs as published (see test/crds/README.md), checked with ajv.
//   - @kubernetes-models/keda (ScaledObject, ScaledJob, TriggerAuthentication, …) and
//     @kubernetes-models/prometheus-operator (ServiceMonitor, PodMonitor, PrometheusRule, …): their
//     generated validators of those projects' CRD schemas (types/required; unknown fields are not
//     detected for these two families).
// Not covered: the server's Go validation beyond the schema (name formats, immutable fields,
// cross-field rules) — the stand-in adds the few rules this project can trip over itself.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv from 'ajv';
import * as yaml from 'js-yaml';
import * as k8s from '../../src/kube/k8s.js';

export type IssueClass = 'decode' | 'invalid' | 'unknown-field' | 'unknown-kind';
export interface SchemaIssue {
  /** Field path as the API server prints it: `spec.containers[0].name`, `metadata.labels.app`. */
  path: string;
  message: string;
  class: IssueClass;
  /** The same location as JSON-pointer tokens (to drop unknown fields). */
  pointer: string[];
}
export interface TypeRef { apiVersion: string; kind: string }

const CRD_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'crds');

// ---------------------------------------------------------------- Time / MicroTime (apimachinery)
const DATE = '(\\d{4})-(\\d{2})-(\\d{2})T(\\d{2}):(\\d{2}):(\\d{2})';
const ZONE = '(Z|[+-](\\d{2}):(\\d{2}))';
const TIME_RE = new RegExp(`^${DATE}(?:[.,]\\d+)?${ZONE}$`);
const MICRO_RE = new RegExp(`^${DATE}[.,]\\d{6}${ZONE}$`);
function fieldsInRange(m: RegExpMatchArray): boolean {
  const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i]));
  if (mo! < 1 || mo! > 12 || h! > 23 || mi! > 59 || s! > 59 || d! < 1) return false;
  const days = new Date(Date.UTC(y!, mo!, 0)).getUTCDate();
  if (d! > days) return false;
  const zh = m[m.length - 2]; const zm = m[m.length - 1];
  return zh === undefined || (Number(zh) <= 23 && Number(zm) <= 59);
}
/** metav1.Time: Go's time.Parse(time.RFC3339, s) — seconds, optional fraction, `Z` or ±hh:mm. */
export function isValidTime(s: string): boolean { const m = s.match(TIME_RE); return !!m && fieldsInRange(m); }
/** metav1.MicroTime: time.Parse(RFC3339Micro) — exactly six fractional digits. */
export function isValidMicroTime(s: string): boolean { const m = s.match(MICRO_RE); return !!m && fieldsInRange(m); }

/**
 * As the server stores and answers them: metav1.Time marshals `t.UTC().Format(RFC3339)` (UTC,
 * whole seconds), MicroTime `t.UTC().Format(RFC3339Micro)` (UTC, six digits). Input must be valid.
 */
export function normalTime(s: string, micro: boolean): string {
  const m = s.match(/^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}:\d{2})$/);
  if (!m) return s;
  const whole = new Date(`${m[1]}${m[3]}`).toISOString().slice(0, 19);
  return micro ? `${whole}.${(m[2] ?? '').padEnd(6, '0').slice(0, 6)}Z` : `${whole}Z`;
}

/** Rewrite every Time/MicroTime of a built-in object (by its type catalogue) to the server's form, in place. */
export function normalizeTimes(obj: unknown): void {
  const t = typeOf(obj);
  if (!t) return;
  const walk = (v: any, type: string, fmt: string, set: (x: unknown) => void): void => {
    if (v === null || v === undefined) return;
    let m: RegExpMatchArray | null;
    if ((m = type.match(/^Array<(.+)>$/))) { if (Array.isArray(v)) v.forEach((e, i) => walk(e, m![1]!, '', (x) => { v[i] = x; })); return; }
    if ((m = type.match(/^\{ \[key: string\]: (.+); \}$/))) { if (isPlainObject(v)) for (const k of Object.keys(v)) walk(v[k], m[1]!, '', (x) => { v[k] = x; }); return; }
    if (type === 'Date') { if (typeof v === 'string' && fmt === 'date-time' && isValidTime(v)) set(normalTime(v, false)); return; }
    if (type === 'V1MicroTime') { if (typeof v === 'string' && isValidMicroTime(v)) set(normalTime(v, true)); return; }
    const attrs = attrsOf(type);
    if (!attrs || !isPlainObject(v)) return;
    for (const a of attrs) if (a.baseName in v) walk(v[a.baseName], a.type, a.format, (x) => { v[a.baseName] = x; });
  };
  const builtin = attrsOf(builtinType(t)) ? builtinType(t) : undefined;
  if (builtin) walk(obj, builtin, '', () => undefined);
  else if (isPlainObject((obj as any).metadata)) walk((obj as any).metadata, 'V1ObjectMeta', '', () => undefined);
}

// ---------------------------------------------------------------- built-in kinds
type Attr = { baseName: string; type: string; format: string };
const models = k8s as unknown as Record<string, { getAttributeTypeMap?: () => Attr[] } | undefined>;
const attrsOf = (type: string): Attr[] | undefined => models[type]?.getAttributeTypeMap?.();
const verPrefix = (version: string) => version.charAt(0).toUpperCase() + version.slice(1);

const goType = (t: string, fmt: string) => (t === 'number' ? (fmt === 'double' ? 'float64' : fmt || 'int32') : t);

function walkBuiltin(v: unknown, type: string, fmt: string, ptr: string[], out: SchemaIssue[]): void {
  if (v === null || v === undefined) return; // JSON null decodes to the zero value
  const path = fieldPath(ptr);
  const decode = (message: string): void => { out.push({ path, message, class: 'decode', pointer: ptr }); };
  let m: RegExpMatchArray | null;
  if ((m = type.match(/^Array<(.+)>$/))) {
    if (!Array.isArray(v)) return decode(`json: cannot unmarshal ${jsonKind(v)} into Go struct field ${path} of type []${m[1]}`);
    v.forEach((e, i) => walkBuiltin(e, m![1]!, '', [...ptr, String(i)], out));
    return;
  }
  if ((m = type.match(/^\{ \[key: string\]: (.+); \}$/))) {
    if (!isPlainObject(v)) return decode(`json: cannot unmarshal ${jsonKind(v)} into Go struct field ${path} of type map[string]${m[1]}`);
    for (const [k, e] of Object.entries(v)) walkBuiltin(e, m[1]!, '', [...ptr, k], out);
    return;
  }
  switch (type) {
    case 'string': if (typeof v !== 'string') decode(`json: cannot unmarshal ${jsonKind(v)} into Go struct field ${path} of type string`); return;
    case 'boolean': if (typeof v !== 'boolean') decode(`json: cannot unmarshal ${jsonKind(v)} into Go struct field ${path} of type bool`); return;
    case 'number':
      if (typeof v !== 'number') return decode(`json: cannot unmarshal ${jsonKind(v)} into Go struct field ${path} of type ${goType(type, fmt)}`);
      if (fmt !== 'double' && !Number.isInteger(v)) decode(`json: cannot unmarshal number ${v} into Go struct field ${path} of type ${goType(type, fmt)}`);
      else if (fmt === 'int32' && (v < -2147483648 || v > 2147483647)) decode(`json: cannot unmarshal number ${v} into Go struct field ${path} of type int32`);
      return;
    case 'IntOrString': if (typeof v !== 'string' && !(typeof v === 'number' && Number.isInteger(v))) decode(`json: cannot unmarshal ${jsonKind(v)} into Go value of type intstr.IntOrString`); return;
    case 'Date':
      if (typeof v !== 'string') return decode(`json: cannot unmarshal ${jsonKind(v)} into Go value of type string`);
      if (fmt === 'date-time' && !isValidTime(v)) decode(`parsing time "${v}" as "2006-01-02T15:04:05Z07:00": cannot parse "${v}" as RFC 3339 (field ${path})`);
      return;
    case 'V1MicroTime':
      if (typeof v !== 'string') return decode(`json: cannot unmarshal ${jsonKind(v)} into Go value of type string`);
      if (!isValidMicroTime(v)) decode(`parsing time "${v}" as "2006-01-02T15:04:05.000000Z07:00": MicroTime needs exactly six fractional digits (field ${path})`);
      return;
    case 'any': case 'object': return;
  }
  const attrs = attrsOf(type);
  if (!attrs) return; // an enum or a type the catalogue does not describe: nothing more to check
  if (!isPlainObject(v)) return decode(`json: cannot unmarshal ${jsonKind(v)} into Go struct field ${path} of type ${type}`);
  const known = new Map(attrs.map((a) => [a.baseName, a]));
  for (const [k, e] of Object.entries(v)) {
    const a = known.get(k);
    if (!a) { out.push({ path: fieldPath([...ptr, k]), message: `unknown field "${fieldPath([...ptr, k])}"`, class: 'unknown-field', pointer: [...ptr, k] }); continue; }
    walkBuiltin(e, a.type, a.format, [...ptr, k], out);
  }
}

// kubernetes-models: module per apiVersion, export per kind, static validate via instance.validate()
type ModelClass = new (data: unknown) => { validate(): void };
const modelCache = new Map<string, ModelClass | null>();
const modelKey = (t: TypeRef) => `${t.apiVersion}|${t.kind}`;

async function importModel(t: TypeRef): Promise<ModelClass | null> {
  const k = modelKey(t);
  if (modelCache.has(k)) return modelCache.get(k)!;
  const candidates = [`kubernetes-models/${t.apiVersion}`, `@kubernetes-models/keda/${t.apiVersion}`, `@kubernetes-models/prometheus-operator/${t.apiVersion}`];
  let found: ModelClass | null = null;
  for (const spec of candidates) {
    try {
      const mod = (await import(spec)) as Record<string, unknown>;
      const c = mod[t.kind] as (ModelClass & { kind?: string; apiVersion?: string }) | undefined;
      if (typeof c === 'function' && c.kind === t.kind && c.apiVersion === t.apiVersion) { found = c; break; }
    } catch (_e) { /* this family does not serve that apiVersion */ }
  }
  modelCache.set(k, found);
  return found;
}

function modelIssues(Model: ModelClass, obj: unknown, builtin: boolean): SchemaIssue[] {
  try { new Model(obj).validate(); return []; } catch (e) {
    const errs = ((e as { errors?: unknown[] }).errors ?? []) as Array<{ instancePath: string; keyword: string; params: Record<string, any>; message?: string }>;
    const out: SchemaIssue[] = [];
    for (const er of errs) {
      const ptr = er.instancePath.split('/').slice(1).map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
      // Types, integer widths and Time/MicroTime formats of built-ins are judged by the decoder walk (Go's rules).
      if (builtin && (er.keyword === 'type' || (er.keyword === 'format' && /^(date-time|int32|int64)/.test(String(er.params.format))))) continue;
      if (er.keyword === 'required') {
        const p = [...ptr, String(er.params.missingProperty)];
        out.push({ path: fieldPath(p), message: `${fieldPath(p)}: Required value`, class: 'invalid', pointer: p });
      } else {
        out.push({ path: fieldPath(ptr), message: `${fieldPath(ptr) || '<root>'}: Invalid value: ${er.message ?? er.keyword}`, class: 'invalid', pointer: ptr });
      }
    }
    if (!out.length && !errs.length) out.push({ path: '', message: (e as Error).message, class: 'invalid', pointer: [] });
    return out;
  }
}

// ---------------------------------------------------------------- CRDs (test/crds)
interface CrdVersion { group: string; version: string; kind: string; plural: string; schema: any; validate: (o: unknown) => boolean; errors: () => any[] }
let crdIndex: Map<string, CrdVersion> | undefined;

function stripForAjv(s: any): any {
  if (Array.isArray(s)) return s.map(stripForAjv);
  if (!isPlainObject(s)) return s;
  const out: any = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === 'description' || k.startsWith('x-kubernetes-')) continue;
    out[k] = k === 'properties' || k === 'patternProperties' ? Object.fromEntries(Object.entries(v as object).map(([pk, pv]) => [pk, stripForAjv(pv)])) : stripForAjv(v);
  }
  if (s['x-kubernetes-int-or-string']) { delete out.type; out.anyOf = [{ type: 'integer' }, { type: 'string' }]; }
  if (s.nullable) { delete out.nullable; if (out.type) out.type = [out.type, 'null']; }
  return out;
}

/** The CRD versions known from test/crds/ (keyed `group/version|Kind`). */
export function crds(): Map<string, CrdVersion> {
  if (crdIndex) return crdIndex;
  const AjvClass: any = (Ajv as any).default ?? Ajv; // CJS default export under NodeNext
  const ajv = new AjvClass({ allErrors: true, strict: false });
  crdIndex = new Map();
  for (const f of readdirSync(CRD_DIR).filter((n) => n.endsWith('.yaml'))) {
    for (const doc of yaml.loadAll(readFileSync(join(CRD_DIR, f), 'utf8')) as any[]) {
      if (doc?.kind !== 'CustomResourceDefinition') continue;
      for (const v of doc.spec.versions as any[]) {
        const schema = v.schema.openAPIV3Schema;
        const fn = ajv.compile(stripForAjv(schema));
        crdIndex.set(`${doc.spec.group}/${v.name}|${doc.spec.names.kind}`, {
          group: doc.spec.group, version: v.name, kind: doc.spec.names.kind, plural: doc.spec.names.plural, schema,
          validate: (o) => fn(o) as boolean, errors: () => fn.errors ?? [],
        });
      }
    }
  }
  return crdIndex;
}

function walkCrdUnknown(v: unknown, s: any, ptr: string[], out: SchemaIssue[]): void {
  if (!s || v === null || v === undefined) return;
  if (s['x-kubernetes-preserve-unknown-fields'] && !s.properties) return;
  if (Array.isArray(v)) { if (s.items) v.forEach((e, i) => walkCrdUnknown(e, s.items, [...ptr, String(i)], out)); return; }
  if (!isPlainObject(v)) return;
  if (ptr.length === 1 && ptr[0] === 'metadata') { walkBuiltin(v, 'V1ObjectMeta', '', ptr, out); return; }
  if (s.properties) {
    for (const [k, e] of Object.entries(v)) {
      if (k in s.properties) walkCrdUnknown(e, s.properties[k], [...ptr, k], out);
      else if (!s['x-kubernetes-preserve-unknown-fields'] && !(ptr.length === 0 && (k === 'apiVersion' || k === 'kind'))) {
        out.push({ path: fieldPath([...ptr, k]), message: `unknown field "${fieldPath([...ptr, k])}"`, class: 'unknown-field', pointer: [...ptr, k] });
      }
    }
  } else if (isPlainObject(s.additionalProperties)) {
    for (const [k, e] of Object.entries(v)) walkCrdUnknown(e, s.additionalProperties, [...ptr, k], out);
  }
}

function crdIssues(c: CrdVersion, obj: any): SchemaIssue[] {
  const out: SchemaIssue[] = [];
  if (!c.validate(obj)) {
    for (const er of c.errors()) {
      const ptr = String(er.instancePath).split('/').slice(1).map((t: string) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
      if (er.keyword === 'required') {
        const p = [...ptr, String(er.params.missingProperty)];
        out.push({ path: fieldPath(p), message: `${fieldPath(p)}: Required value`, class: 'invalid', pointer: p });
      } else if (er.keyword === 'type') {
        out.push({ path: fieldPath(ptr), message: `${fieldPath(ptr)}: Invalid value: "${jsonKind(getAt(obj, ptr))}": ${fieldPath(ptr)} in body must be of type ${er.params.type}: "${jsonKind(getAt(obj, ptr))}"`, class: 'invalid', pointer: ptr });
      } else {
        out.push({ path: fieldPath(ptr), message: `${fieldPath(ptr)}: Invalid value: ${er.message}`, class: 'invalid', pointer: ptr });
      }
    }
  }
  walkCrdUnknown(obj, c.schema, [], out);
  return out;
}

// ---------------------------------------------------------------- entry points
function typeOf(obj: unknown): TypeRef | undefined {
  if (!isPlainObject(obj) || typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') return undefined;
  return { apiVersion: obj.apiVersion, kind: obj.kind };
}
const builtinType = (t: TypeRef) => `${verPrefix(t.apiVersion.split('/').pop()!)}${t.kind}`;

/** Load what validateObjectSync needs for these kinds (CRDs from test/crds need nothing). */
export async function preloadSchemas(types: TypeRef[]): Promise<void> {
  for (const t of types) if (!crds().has(modelKey(t))) await importModel(t);
}

/** Schema issues of `obj` (needs apiVersion and kind); [] = the server would accept its schema. */
export async function validateObject(obj: unknown): Promise<SchemaIssue[]> {
  const t = typeOf(obj);
  if (t && !crds().has(`${t.apiVersion}|${t.kind}`)) await importModel(t);
  return validateObjectSync(obj);
}

/** As validateObject, for kinds already loaded by preloadSchemas (or served from test/crds). */
export function validateObjectSync(obj: unknown): SchemaIssue[] {
  const t = typeOf(obj);
  if (!t) return [{ path: '', message: 'Object \'Kind\' or \'apiVersion\' is missing', class: 'invalid', pointer: [] }];
  const crd = crds().get(`${t.apiVersion}|${t.kind}`);
  if (crd) return crdIssues(crd, obj);
  const k = modelKey(t);
  if (!modelCache.has(k)) throw new Error(`k8s-schema: ${t.apiVersion} ${t.kind} not preloaded (await preloadSchemas or validateObject)`);
  const Model = modelCache.get(k);
  if (!Model) return [{ path: '', message: `no schema for ${t.apiVersion}, Kind=${t.kind}`, class: 'unknown-kind', pointer: [] }];
  const isBuiltin = !!attrsOf(builtinType(t));
  const out: SchemaIssue[] = [];
  if (isBuiltin) walkBuiltin(obj, builtinType(t), '', [], out);
  else if (isPlainObject((obj as any).metadata)) walkBuiltin((obj as any).metadata, 'V1ObjectMeta', '', ['metadata'], out);
  out.push(...modelIssues(Model, obj, isBuiltin));
  return out;
}

export interface ServerVerdict {
  /** HTTP status the real server answers (400 or 422). */
  code: number;
  /** The Status body it sends. */
  status: { kind: 'Status'; apiVersion: 'v1'; metadata: Record<string, never>; status: 'Failure'; message: string; reason: string; details?: unknown; code: number };
}

/**
 * What the API server answers for `obj` with these issues: a refusal, or undefined (accepted; with
 * fieldValidation=Warn the unknown fields are dropped — `warningsFor` gives the headers).
 */
export function statusFor(obj: any, issues: SchemaIssue[], opts: { fieldValidation?: 'Strict' | 'Warn' | 'Ignore' } = {}): ServerVerdict | undefined {
  const t = typeOf(obj) ?? { apiVersion: 'v1', kind: 'Unknown' };
  const group = t.apiVersion.includes('/') ? t.apiVersion.split('/')[0]! : '';
  const version = t.apiVersion.split('/').pop()!;
  const name = obj?.metadata?.name ?? '';
  const mk = (code: number, reason: string, message: string, details?: unknown): ServerVerdict => ({ code, status: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, details, code } });
  const decode = issues.filter((i) => i.class === 'decode');
  if (decode.length) return mk(400, 'BadRequest', `${t.kind} in version "${version}" cannot be handled as a ${t.kind}: ${decode[0]!.message}`);
  const unknown = issues.filter((i) => i.class === 'unknown-field');
  if (unknown.length && opts.fieldValidation === 'Strict') return mk(400, 'BadRequest', `${t.kind} in version "${version}" cannot be handled as a ${t.kind}: strict decoding error: ${unknown.map((u) => u.message).join(', ')}`);
  const kinds = issues.filter((i) => i.class === 'unknown-kind');
  if (kinds.length) return mk(404, 'NotFound', kinds[0]!.message);
  const invalid = issues.filter((i) => i.class === 'invalid');
  if (!invalid.length) return undefined;
  const qkind = group ? `${t.kind}.${group}` : t.kind;
  const msgs = invalid.map((i) => i.message);
  return mk(422, 'Invalid', `${qkind} "${name}" is invalid: ${msgs.length === 1 ? msgs[0] : `[${msgs.join(', ')}]`}`, {
    name, group, kind: t.kind,
    causes: invalid.map((i) => ({ reason: /Required value/.test(i.message) ? 'FieldValueRequired' : 'FieldValueInvalid', message: i.message.replace(/^[^:]*: /, ''), field: i.path })),
  });
}

/** The `Warning` header values the server sends for dropped unknown fields (fieldValidation=Warn). */
export function warningsFor(issues: SchemaIssue[]): string[] {
  return issues.filter((i) => i.class === 'unknown-field').map((i) => `299 - "${i.message.replace(/"/g, '\\"')}"`);
}

/** A copy of `obj` without the unknown fields (what the server stores under Warn / Ignore). */
export function dropUnknownFields<T>(obj: T, issues: SchemaIssue[]): T {
  const out = structuredClone(obj) as any;
  for (const i of issues) {
    if (i.class !== 'unknown-field') continue;
    let cur = out;
    for (const t of i.pointer.slice(0, -1)) cur = cur?.[t];
    if (cur && typeof cur === 'object') delete cur[i.pointer[i.pointer.length - 1]!];
  }
  return out;
}

// ---------------------------------------------------------------- helpers
function isPlainObject(v: unknown): v is Record<string, any> { return v !== null && typeof v === 'object' && !Array.isArray(v); }
function jsonKind(v: unknown): string { return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'object' ? 'object' : typeof v; }
function getAt(o: any, ptr: string[]): unknown { for (const t of ptr) o = o?.[t]; return o; }
/** `spec.containers[0].name` from ['spec','containers','0','name']. */
export function fieldPath(ptr: string[]): string {
  let s = '';
  for (const t of ptr) s += /^\d+$/.test(t) ? `[${t}]` : s ? `.${t}` : t;
  return s;
}
