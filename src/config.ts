// Configuration parsed once: each command declares its options (flag, env var, zod schema, help);
// parseOptions() reads argv + env into a typed object or fails listing every problem at once.
// Only src/cli.ts calls it; everything below receives the typed result.
import { z } from 'zod';
import { ConfigError } from './errors.js';

export type OptionKind = 'string' | 'int' | 'number' | 'bool' | 'list' | 'json';

export interface OptionDef<T = unknown> {
  kind: OptionKind;
  schema: z.ZodType<T>;
  help: string;
  /** Shown in help/docs; undefined = required (unless the schema is optional). */
  default?: unknown;
  /** Environment variable; default RTPE_K8S_<UPPER_SNAKE>. */
  env?: string;
  /** Long flag without dashes; default the key in kebab-case. */
  flag?: string;
}

export type OptionSet = Record<string, OptionDef<any>>;
export type Parsed<O extends OptionSet> = { [K in keyof O]: O[K] extends OptionDef<infer T> ? T : never };

interface Names { env?: string; flag?: string }

const toBool = (v: unknown) => {
  if (typeof v === 'boolean') return v;
  if (typeof v !== 'string') return v;
  const s = v.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
  return v;
};
const toList = (v: unknown) => (typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter(Boolean) : v);
const toJson = (v: unknown) => {
  if (typeof v !== 'string') return v;
  try { return JSON.parse(v); } catch (e) { return { __invalidJson: (e as Error).message }; }
};

/** Option constructors. A default makes the option optional; `optional` variants may stay unset. */
export const opt = {
  string: (help: string, def?: string, n: Names = {}): OptionDef<string> =>
    ({ kind: 'string', schema: def === undefined ? z.string().min(1) : z.string().default(def), help, default: def, ...n }),
  optionalString: (help: string, n: Names = {}): OptionDef<string | undefined> =>
    ({ kind: 'string', schema: z.string().optional(), help, default: '', ...n }),
  int: (help: string, def: number | undefined, bounds: { min?: number; max?: number } = {}, n: Names = {}): OptionDef<number> => {
    let s = z.coerce.number().int();
    if (bounds.min !== undefined) s = s.min(bounds.min);
    if (bounds.max !== undefined) s = s.max(bounds.max);
    return { kind: 'int', schema: def === undefined ? s : s.default(def), help, default: def, ...n };
  },
  number: (help: string, def: number, bounds: { min?: number; max?: number } = {}, n: Names = {}): OptionDef<number> => {
    let s = z.coerce.number();
    if (bounds.min !== undefined) s = s.min(bounds.min);
    if (bounds.max !== undefined) s = s.max(bounds.max);
    return { kind: 'number', schema: s.default(def), help, default: def, ...n };
  },
  bool: (help: string, def = false, n: Names = {}): OptionDef<boolean> =>
    ({ kind: 'bool', schema: z.preprocess(toBool, z.boolean()).default(def) as z.ZodType<boolean>, help, default: def, ...n }),
  list: (help: string, def: string[] = [], n: Names = {}): OptionDef<string[]> =>
    ({ kind: 'list', schema: z.preprocess(toList, z.array(z.string())).default(def) as z.ZodType<string[]>, help, default: def.join(','), ...n }),
  enum: <const E extends readonly [string, ...string[]]>(help: string, values: E, def: E[number], n: Names = {}): OptionDef<E[number]> =>
    ({ kind: 'string', schema: z.enum(values).default(def as any) as unknown as z.ZodType<E[number]>, help: `${help} (${values.join(' | ')})`, default: def, ...n }),
  /** A structured value given as JSON text (flag/env) — e.g. address pools. */
  json: <T>(help: string, schema: z.ZodType<T>, def: T, n: Names = {}): OptionDef<T> =>
    ({ kind: 'json', schema: z.preprocess(toJson, schema).default(def as any) as unknown as z.ZodType<T>, help, default: JSON.stringify(def), ...n }),
};

export const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
export const envName = (key: string, def: OptionDef) => def.env ?? `RTPE_K8S_${kebab(key).replace(/-/g, '_').toUpperCase()}`;
export const flagName = (key: string, def: OptionDef) => def.flag ?? kebab(key);

export interface ParseResult<O extends OptionSet> { config: Parsed<O>; positionals: string[] }

/** argv (after the command word) and env → typed config; every problem listed in one ConfigError. */
export function parseOptions<O extends OptionSet>(set: O, argv: readonly string[], env: Record<string, string | undefined>): ParseResult<O> {
  const byFlag = new Map<string, string>();
  for (const [key, def] of Object.entries(set)) byFlag.set(flagName(key, def), key);
  const raw: Record<string, unknown> = {};
  const problems: string[] = [];
  const positionals: string[] = [];

  for (const [key, def] of Object.entries(set)) {
    const v = env[envName(key, def)];
    if (v !== undefined && v !== '') raw[key] = v;
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') { positionals.push(...argv.slice(i + 1)); break; }
    if (!a.startsWith('--')) { positionals.push(a); continue; }
    const eq = a.indexOf('=');
    let name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    let value: string | boolean | undefined = eq >= 0 ? a.slice(eq + 1) : undefined;
    let key = byFlag.get(name);
    if (!key && name.startsWith('no-') && byFlag.has(name.slice(3))) {
      name = name.slice(3);
      key = byFlag.get(name);
      value = false;
    }
    if (!key) { problems.push(`unknown option --${name}`); continue; }
    const def = set[key]!;
    if (value === undefined) {
      if (def.kind === 'bool') value = true;
      else if (i + 1 < argv.length) value = argv[++i]!;
      else { problems.push(`--${name} needs a value`); continue; }
    }
    raw[key] = value;
  }

  const injected = controlCharacterProblems(set, raw);
  if (injected.length) throw new ConfigError('CONFIG_CONTROL_CHARACTERS', { problems: injected });

  const out: Record<string, unknown> = {};
  for (const [key, def] of Object.entries(set)) {
    const r = def.schema.safeParse(raw[key]);
    if (r.success) { out[key] = r.data; continue; }
    const where = `--${flagName(key, def)} (env ${envName(key, def)})`;
    if (raw[key] === undefined) { problems.push(`${where} is required: ${def.help}`); continue; }
    const bad = raw[key] as { __invalidJson?: string };
    if (bad && typeof bad === 'object' && bad.__invalidJson) { problems.push(`${where} is not valid JSON: ${bad.__invalidJson}`); continue; }
    for (const issue of r.error.issues) {
      const path = issue.path.length ? ` at ${issue.path.join('.')}` : '';
      problems.push(`${where}${path}: ${issue.message} (got ${JSON.stringify(raw[key])})`);
    }
  }
  if (problems.length) throw new ConfigError('CONFIG_INVALID', { problems });
  return { config: out as Parsed<O>, positionals };
}

// C0 controls (tab included), DEL, C1 controls and the Unicode line/paragraph separators: each could
// end a line of rtpengine.conf, an iptables-restore rule, a db_text row or a log line.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function firstControl(v: unknown, path: string): { path: string; at: number; char: string } | undefined {
  if (typeof v === 'string') {
    const m = CONTROL.exec(v);
    return m ? { path, at: m.index, char: `U+${m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}` } : undefined;
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) { const f = firstControl(v[i], `${path}[${i}]`); if (f) return f; }
  } else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      const f = firstControl(k, `${path} key ${JSON.stringify(k)}`) ?? firstControl(x, `${path}.${k}`);
      if (f) return f;
    }
  }
  return undefined;
}

/**
 * For renderers (rtpengine.conf, iptables-restore text): a value with a control character is
 * refused with CONFIG_CONTROL_CHARACTERS whatever its source (options are checked at parse already).
 */
export function refuseControlCharacters(values: Record<string, unknown>): void {
  const problems: string[] = [];
  for (const [where, v] of Object.entries(values)) {
    const f = firstControl(v, '');
    if (f) problems.push(`${where}${f.path ? ` at ${f.path}` : ''}: control character ${f.char} at offset ${f.at}`);
  }
  if (problems.length) throw new ConfigError('CONFIG_CONTROL_CHARACTERS', { problems });
}

/** Every raw value (and every string inside a JSON value) that holds a control character. */
function controlCharacterProblems(set: OptionSet, raw: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const [key, def] of Object.entries(set)) {
    if (raw[key] === undefined) continue;
    const value = def.kind === 'json' ? toJson(raw[key]) : raw[key];
    const f = firstControl(typeof value === 'object' && value && '__invalidJson' in value ? raw[key] : value, '');
    if (f) problems.push(`--${flagName(key, def)} (env ${envName(key, def)})${f.path ? ` at${f.path.startsWith(' ') ? '' : ' '}${f.path.replace(/^\./, '')}` : ''}: control character ${f.char} at offset ${f.at}`);
  }
  return problems;
}

/** Rows for `--help` and the generated configuration reference. */
export function describeOptions(set: OptionSet): Array<{ flag: string; env: string; default: string; help: string }> {
  return Object.entries(set).map(([key, def]) => ({
    flag: `--${flagName(key, def)}`,
    env: envName(key, def),
    default: def.default === undefined ? '(required)' : String(def.default),
    help: def.help,
  }));
}

/** Options every command takes. */
export const commonOptions = {
  logLevel: opt.enum('log level', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const, 'info'),
  logPretty: opt.bool('human-readable log lines instead of JSON', false),
  logRepeatLimit: opt.int('log at most this many lines with the same level, component and message per 10 s; the rest are counted in one "repeated log line suppressed" line (0 = no limit)', 20, { min: 0 }),
} satisfies OptionSet;
