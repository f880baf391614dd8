// Renders helm/rtpengine-k8s with test/chart/gotpl.ts (helm's value merging, Release/Chart
// objects) and records which .Values paths the templates read, for the chart tests.
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as yaml from 'js-yaml';
import { Engine, type RenderContext } from './gotpl.js';

export const chartDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'helm', 'rtpengine-k8s');

export const loadYaml = (file: string): any => yaml.load(readFileSync(file, 'utf8'));
export const defaultValues = (): Record<string, unknown> => loadYaml(join(chartDir, 'values.yaml'));

export function templateFiles(): string[] {
  return readdirSync(join(chartDir, 'templates')).filter((f) => /\.(ya?ml|tpl|txt)$/.test(f)).sort();
}

/** helm's coalescing: maps merge key by key, everything else (lists included) is replaced. */
export function mergeValues(base: any, over: any): any {
  if (!isMap(base) || !isMap(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? mergeValues(base[k], v) : v;
  return out;
}
const isMap = (v: unknown): v is Record<string, any> => !!v && typeof v === 'object' && !Array.isArray(v);

/** Wraps values so every read path (a.b.c; list items as a.b[]) is recorded. */
function tracked(v: unknown, path: string, seen: Set<string>): unknown {
  if (!v || typeof v !== 'object') return v;
  return new Proxy(v as object, {
    get(target, key, recv) {
      const val = Reflect.get(target, key, recv);
      if (typeof key !== 'string' || key === 'toJSON' || (Array.isArray(target) && !/^\d+$/.test(key))) return val;
      const p = Array.isArray(target) ? `${path}[]` : path ? `${path}.${key}` : key;
      if (!Array.isArray(target)) seen.add(p);
      return tracked(val, p, seen);
    },
  });
}

export interface Rendered {
  /** template file → rendered text (files starting with `_` render nothing). */
  files: Record<string, string>;
  /** every Kubernetes object, in file order. */
  objects: any[];
  /** .Values paths read while rendering. */
  read: Set<string>;
}

export function renderChart(overrides: Record<string, unknown> = {}, release = { name: 'rtpe', namespace: 'voice' }): Rendered {
  const chart = loadYaml(join(chartDir, 'Chart.yaml'));
  const engine = new Engine();
  const files = templateFiles();
  for (const f of files) engine.add(f, readFileSync(join(chartDir, 'templates', f), 'utf8'));
  const read = new Set<string>();
  const values = mergeValues(defaultValues(), overrides);
  const root: RenderContext = {
    Values: tracked(values, '', read),
    Release: { Name: release.name, Namespace: release.namespace, Service: 'Helm' },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
  };
  const out: Record<string, string> = {};
  const objects: any[] = [];
  for (const f of files) {
    if (f.startsWith('_')) continue;
    const text = engine.render(f, root);
    out[f] = text;
    if (f.endsWith('.txt')) continue;
    for (const doc of yaml.loadAll(text)) if (doc) objects.push(doc);
  }
  return { files: out, objects, read };
}
