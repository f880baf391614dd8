// A small interpreter for the subset of Go text/template + Helm/Sprig functions our chart uses, so
// the chart can be rendered and checked without a helm binary. Anything outside the subset is an
// error naming what is unsupported — never silently skipped. Not a general Helm replacement.
import * as yaml from 'js-yaml';

type Node =
  | { t: 'text'; s: string }
  | { t: 'action'; pipe: Pipe; decl?: { vars: string[]; assign: boolean } }
  | { t: 'if'; branches: Array<{ cond: Pipe | null; body: Node[] }> }
  | { t: 'with'; pipe: Pipe; body: Node[]; elseBody: Node[] }
  | { t: 'range'; pipe: Pipe; vars: string[]; body: Node[]; elseBody: Node[] }
  | { t: 'template'; name: string; pipe: Pipe | null };

type Operand =
  | { k: 'field'; base: 'dot' | string; path: string[] } // base: 'dot' or a $variable name
  | { k: 'lit'; v: unknown }
  | { k: 'fn'; name: string }
  | { k: 'paren'; pipe: Pipe; path: string[] };
type Cmd = Operand[];
type Pipe = Cmd[];

export class TemplateError extends Error {}

// ---------------------------------------------------------------- lexing into text/actions ----
interface Tok { kind: 'text' | 'action'; s: string; file: string; line: number }

function lex(src: string, file: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  let trimNext = false;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    let text = open < 0 ? src.slice(i) : src.slice(i, open);
    if (trimNext) text = text.replace(/^\s+/, '');
    if (open < 0) { if (text) toks.push({ kind: 'text', s: text, file, line: 0 }); break; }
    let body: string;
    let close: number;
    const line = src.slice(0, open).split('\n').length;
    const trimLeft = src.startsWith('{{-', open) && /\s/.test(src[open + 3] ?? '');
    if (trimLeft) text = text.replace(/\s+$/, '');
    if (text) toks.push({ kind: 'text', s: text, file, line });
    const start = open + (trimLeft ? 3 : 2);
    const rest = src.slice(start).trimStart();
    if (rest.startsWith('/*')) {
      const endComment = src.indexOf('*/', start);
      if (endComment < 0) throw new TemplateError(`${file}:${line}: unclosed comment`);
      close = src.indexOf('}}', endComment);
      body = '';
    } else {
      close = findClose(src, start, file, line);
      body = src.slice(start, close);
    }
    const trimRight = /\s-$/.test(src.slice(close - 2, close)) ;
    if (trimRight) body = body.replace(/\s-$/, '');
    if (body.trim()) toks.push({ kind: 'action', s: body.trim(), file, line });
    trimNext = trimRight;
    i = close + 2;
  }
  return toks;
}

// The closing braces of an action, skipping string literals.
function findClose(src: string, from: number, file: string, line: number): number {
  let i = from;
  while (i < src.length) {
    const c = src[i];
    if (c === '"') { i++; while (i < src.length && src[i] !== '"') i += src[i] === '\\' ? 2 : 1; i++; continue; }
    if (c === '`') { i = src.indexOf('`', i + 1) + 1; if (i === 0) break; continue; }
    if (src.startsWith('}}', i)) return i;
    i++;
  }
  throw new TemplateError(`${file}:${line}: unclosed action`);
}

// ---------------------------------------------------------------- parsing pipelines -----------
function tokenizeAction(s: string, where: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (/\s/.test(c)) { i++; continue; }
    if (c === '"') {
      let j = i + 1;
      while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
      out.push(s.slice(i, j + 1)); i = j + 1; continue;
    }
    if (c === '`') { const j = s.indexOf('`', i + 1); out.push(s.slice(i, j + 1)); i = j + 1; continue; }
    if (c === '(' || c === '|' || c === ',') { out.push(c); i++; continue; }
    if (c === ')') {
      // a parenthesised pipeline may be followed by .field access
      let j = i + 1;
      while (j < s.length && /[\w.]/.test(s[j]!)) j++;
      out.push(s.slice(i, j)); i = j; continue;
    }
    if (s.startsWith(':=', i)) { out.push(':='); i += 2; continue; }
    if (c === '=' ) { out.push('='); i++; continue; }
    let j = i;
    while (j < s.length && !/[\s()|,]/.test(s[j]!) && !s.startsWith(':=', j)) j++;
    if (j === i) throw new TemplateError(`${where}: cannot read '${s.slice(i)}'`);
    out.push(s.slice(i, j)); i = j;
  }
  return out;
}

function parsePipe(toks: string[], pos: { i: number }, where: string, stop?: string): Pipe {
  const pipe: Pipe = [];
  let cmd: Cmd = [];
  while (pos.i < toks.length) {
    const t = toks[pos.i]!;
    if (stop && t.startsWith(stop)) break;
    pos.i++;
    if (t === '|') { pipe.push(cmd); cmd = []; continue; }
    if (t === '(') {
      const inner = parsePipe(toks, pos, where, ')');
      const close = toks[pos.i++];
      if (!close) throw new TemplateError(`${where}: unclosed (`);
      const path = close.slice(1).split('.').filter(Boolean);
      cmd.push({ k: 'paren', pipe: inner, path });
      continue;
    }
    cmd.push(operand(t, where));
  }
  if (cmd.length) pipe.push(cmd);
  if (!pipe.length) throw new TemplateError(`${where}: empty pipeline`);
  return pipe;
}

function operand(t: string, where: string): Operand {
  if (t.startsWith('"')) return { k: 'lit', v: JSON.parse(t) };
  if (t.startsWith('`')) return { k: 'lit', v: t.slice(1, -1) };
  if (/^-?\d+(\.\d+)?$/.test(t)) return { k: 'lit', v: Number(t) };
  if (t === 'true' || t === 'false') return { k: 'lit', v: t === 'true' };
  if (t === 'nil') return { k: 'lit', v: null };
  if (t === '.') return { k: 'field', base: 'dot', path: [] };
  if (t.startsWith('.')) return { k: 'field', base: 'dot', path: t.slice(1).split('.') };
  if (t.startsWith('$')) { const [v, ...path] = t.split('.'); return { k: 'field', base: v!, path }; }
  if (/^[A-Za-z_]\w*$/.test(t)) return { k: 'fn', name: t };
  throw new TemplateError(`${where}: unsupported operand '${t}'`);
}

function parseAction(s: string, where: string): { kw: string; rest: string } {
  const m = /^(if|else if|else with|else|end|range|with|define|template|include|block)\b\s*([\s\S]*)$/.exec(s);
  if (m && m[1] !== 'include') return { kw: m[1]!, rest: m[2]! };
  void where;
  return { kw: '', rest: s };
}

function parseExpr(rest: string, where: string): { pipe: Pipe; vars: string[]; assign: boolean } {
  const toks = tokenizeAction(rest, where);
  const di = toks.findIndex((t) => t === ':=' || t === '=');
  if (di > 0 && toks.slice(0, di).every((t) => t.startsWith('$') || t === ',')) {
    const vars = toks.slice(0, di).filter((t) => t !== ',');
    return { pipe: parsePipe(toks, { i: di + 1 }, where), vars, assign: toks[di] === '=' };
  }
  return { pipe: parsePipe(toks, { i: 0 }, where), vars: [], assign: false };
}

interface Parsed { nodes: Node[]; defines: Map<string, Node[]> }

function parse(toks: Tok[], defines: Map<string, Node[]>): Node[] {
  const pos = { i: 0 };
  const nodes = parseList(toks, pos, defines, []);
  if (pos.i < toks.length) {
    const t = toks[pos.i]!;
    throw new TemplateError(`${t.file}:${t.line}: unexpected {{${t.s}}}`);
  }
  return nodes;
}

function parseList(toks: Tok[], pos: { i: number }, defines: Map<string, Node[]>, stops: string[]): Node[] {
  const out: Node[] = [];
  while (pos.i < toks.length) {
    const tok = toks[pos.i]!;
    const where = `${tok.file}:${tok.line}`;
    if (tok.kind === 'text') { out.push({ t: 'text', s: tok.s }); pos.i++; continue; }
    const { kw, rest } = parseAction(tok.s, where);
    if (stops.includes(kw)) return out;
    pos.i++;
    switch (kw) {
      case '': {
        const e = parseExpr(rest, where);
        out.push({ t: 'action', pipe: e.pipe, decl: e.vars.length ? { vars: e.vars, assign: e.assign } : undefined });
        break;
      }
      case 'if': {
        const branches: Array<{ cond: Pipe | null; body: Node[] }> = [];
        let cond: Pipe | null = parseExpr(rest, where).pipe;
        for (;;) {
          const body = parseList(toks, pos, defines, ['else if', 'else', 'end']);
          branches.push({ cond, body });
          const end = toks[pos.i++];
          if (!end) throw new TemplateError(`${where}: if without end`);
          const e = parseAction(end.s, where);
          if (e.kw === 'end') break;
          cond = e.kw === 'else if' ? parseExpr(e.rest, where).pipe : null;
          if (e.kw === 'else') { branches.push({ cond: null, body: parseList(toks, pos, defines, ['end']) }); pos.i++; break; }
        }
        out.push({ t: 'if', branches });
        break;
      }
      case 'with':
      case 'range': {
        const e = parseExpr(rest, where);
        const body = parseList(toks, pos, defines, ['else', 'end']);
        const mid = toks[pos.i++];
        if (!mid) throw new TemplateError(`${where}: ${kw} without end`);
        let elseBody: Node[] = [];
        if (parseAction(mid.s, where).kw === 'else') { elseBody = parseList(toks, pos, defines, ['end']); pos.i++; }
        out.push(kw === 'with' ? { t: 'with', pipe: e.pipe, body, elseBody } : { t: 'range', pipe: e.pipe, vars: e.vars, body, elseBody });
        break;
      }
      case 'define': {
        const name = JSON.parse(rest.trim()) as string;
        const body = parseList(toks, pos, defines, ['end']);
        pos.i++;
        defines.set(name, body);
        break;
      }
      case 'template': {
        const toksA = tokenizeAction(rest, where);
        const name = JSON.parse(toksA[0]!) as string;
        out.push({ t: 'template', name, pipe: toksA.length > 1 ? parsePipe(toksA, { i: 1 }, where) : null });
        break;
      }
      default:
        throw new TemplateError(`${where}: unsupported action '${kw}'`);
    }
  }
  return out;
}

// ---------------------------------------------------------------- evaluation ------------------
export function truthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

function goString(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') {
    if (Array.isArray(v)) return `[${v.map(goString).join(' ')}]`;
    return `map[${Object.keys(v as object).sort().map((k) => `${k}:${goString((v as any)[k])}`).join(' ')}]`;
  }
  return String(v);
}

export function toYaml(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  return yaml.dump(v, { sortKeys: true, lineWidth: -1, noRefs: true }).replace(/\n$/, '');
}

function sprintf(fmt: string, args: unknown[]): string {
  let n = 0;
  return fmt.replace(/%([sdqv%])/g, (_m, c: string) => {
    if (c === '%') return '%';
    const a = args[n++];
    if (c === 'd') { if (typeof a !== 'number' || !Number.isInteger(a)) throw new TemplateError(`printf %d of ${JSON.stringify(a)}`); return String(a); }
    if (c === 'q') return JSON.stringify(goString(a));
    return goString(a);
  });
}

interface Scope { vars: Map<string, unknown>; parent?: Scope }
const lookupVar = (s: Scope, name: string): Scope | undefined => (s.vars.has(name) ? s : s.parent ? lookupVar(s.parent, name) : undefined);

export interface RenderContext {
  Values: unknown;
  Release: { Name: string; Namespace: string; Service: string };
  Chart: Record<string, unknown>;
  [k: string]: unknown;
}

export class Engine {
  readonly defines = new Map<string, Node[]>();
  private readonly files = new Map<string, Node[]>();

  add(file: string, src: string): void {
    this.files.set(file, parse(lex(src, file), this.defines));
  }

  render(file: string, root: RenderContext): string {
    const nodes = this.files.get(file);
    if (!nodes) throw new TemplateError(`no template ${file}`);
    return this.exec(nodes, root, { vars: new Map([['$', root]]) }, root);
  }

  private exec(nodes: Node[], dot: unknown, scope: Scope, root: RenderContext): string {
    let out = '';
    for (const n of nodes) {
      switch (n.t) {
        case 'text': out += n.s; break;
        case 'action': {
          const v = this.pipe(n.pipe, dot, scope, root);
          if (n.decl) {
            if (n.decl.assign) {
              const s = lookupVar(scope, n.decl.vars[0]!);
              if (!s) throw new TemplateError(`assignment to undeclared ${n.decl.vars[0]}`);
              s.vars.set(n.decl.vars[0]!, v);
            } else scope.vars.set(n.decl.vars[0]!, v);
          } else out += goString(v);
          break;
        }
        case 'if': {
          for (const b of n.branches) {
            if (b.cond === null || truthy(this.pipe(b.cond, dot, scope, root))) {
              out += this.exec(b.body, dot, { vars: new Map(), parent: scope }, root);
              break;
            }
          }
          break;
        }
        case 'with': {
          const v = this.pipe(n.pipe, dot, scope, root);
          out += truthy(v) ? this.exec(n.body, v, { vars: new Map(), parent: scope }, root)
            : this.exec(n.elseBody, dot, { vars: new Map(), parent: scope }, root);
          break;
        }
        case 'range': {
          const v = this.pipe(n.pipe, dot, scope, root);
          const entries: Array<[unknown, unknown]> = Array.isArray(v) ? v.map((x, i) => [i, x])
            : v && typeof v === 'object' ? Object.keys(v).sort().map((k) => [k, (v as any)[k]]) : [];
          if (!entries.length) { out += this.exec(n.elseBody, dot, { vars: new Map(), parent: scope }, root); break; }
          for (const [k, x] of entries) {
            const s: Scope = { vars: new Map(), parent: scope };
            if (n.vars.length === 1) s.vars.set(n.vars[0]!, x);
            if (n.vars.length === 2) { s.vars.set(n.vars[0]!, k); s.vars.set(n.vars[1]!, x); }
            out += this.exec(n.body, x, s, root);
          }
          break;
        }
        case 'template': {
          const arg = n.pipe ? this.pipe(n.pipe, dot, scope, root) : undefined;
          out += this.include(n.name, arg, root);
          break;
        }
      }
    }
    return out;
  }

  include(name: string, dot: unknown, root: RenderContext): string {
    const body = this.defines.get(name);
    if (!body) throw new TemplateError(`include of undefined template "${name}"`);
    return this.exec(body, dot, { vars: new Map([['$', dot]]) }, root);
  }

  private pipe(p: Pipe, dot: unknown, scope: Scope, root: RenderContext): unknown {
    let prev: unknown;
    let first = true;
    for (const cmd of p) {
      prev = this.cmd(cmd, dot, scope, root, first ? [] : [prev]);
      first = false;
    }
    return prev;
  }

  private cmd(cmd: Cmd, dot: unknown, scope: Scope, root: RenderContext, piped: unknown[]): unknown {
    const head = cmd[0]!;
    if (head.k !== 'fn') {
      if (cmd.length > 1 || piped.length) throw new TemplateError('arguments given to a non-function');
      return this.operand(head, dot, scope, root);
    }
    const name = head.name;
    // and/or short-circuit like Go's (1.18+): evaluate lazily, return the deciding argument.
    if (name === 'and' || name === 'or') {
      const args = cmd.slice(1);
      let last: unknown;
      for (const a of args) {
        last = this.operand(a, dot, scope, root);
        if (name === 'and' ? !truthy(last) : truthy(last)) return last;
      }
      if (piped.length) last = piped[0];
      return last;
    }
    const args = [...cmd.slice(1).map((a) => this.operand(a, dot, scope, root)), ...piped];
    return this.call(name, args, root);
  }

  private operand(o: Operand, dot: unknown, scope: Scope, root: RenderContext): unknown {
    switch (o.k) {
      case 'lit': return o.v;
      case 'fn': return this.call(o.name, [], root);
      case 'paren': return walk(this.pipe(o.pipe, dot, scope, root), o.path);
      case 'field': {
        let base: unknown;
        if (o.base === 'dot') base = dot;
        else {
          const s = lookupVar(scope, o.base);
          if (!s) throw new TemplateError(`undefined variable ${o.base}`);
          base = s.vars.get(o.base);
        }
        return walk(base, o.path);
      }
    }
  }

  private call(name: string, a: unknown[], root: RenderContext): unknown {
    const need = (n: number) => { if (a.length !== n) throw new TemplateError(`${name} wants ${n} arguments, got ${a.length}`); };
    switch (name) {
      case 'include': need(2); return this.include(String(a[0]), a[1], root);
      case 'toYaml': need(1); return toYaml(a[0]);
      case 'toJson': need(1); return JSON.stringify(a[0] ?? null);
      case 'nindent': need(2); return '\n' + indent(Number(a[0]), goString(a[1]));
      case 'indent': need(2); return indent(Number(a[0]), goString(a[1]));
      case 'quote': return a.map((x) => JSON.stringify(goString(x))).join(' ');
      case 'squote': return a.map((x) => `'${goString(x)}'`).join(' ');
      case 'default': need(2); return truthy(a[1]) ? a[1] : a[0];
      case 'printf': return sprintf(String(a[0]), a.slice(1));
      case 'eq': need(2); return a[0] === a[1];
      case 'ne': need(2); return a[0] !== a[1];
      case 'not': need(1); return !truthy(a[0]);
      case 'lt': need(2); return cmpNum(a[0], a[1]) < 0;
      case 'le': need(2); return cmpNum(a[0], a[1]) <= 0;
      case 'gt': need(2); return cmpNum(a[0], a[1]) > 0;
      case 'ge': need(2); return cmpNum(a[0], a[1]) >= 0;
      case 'add': return a.reduce((s: number, x) => s + toInt(x), 0);
      case 'int': need(1); return toInt(a[0]);
      case 'trunc': need(2); return goString(a[1]).slice(0, Number(a[0]));
      case 'trimSuffix': need(2); { const s = goString(a[1]); const suf = String(a[0]); return suf && s.endsWith(suf) ? s.slice(0, -suf.length) : s; }
      case 'contains': need(2); return goString(a[1]).includes(String(a[0]));
      case 'join': need(2); return (a[1] as unknown[]).map(goString).join(String(a[0]));
      case 'ternary': need(3); return truthy(a[2]) ? a[0] : a[1];
      case 'index': { let v = a[0]; for (const k of a.slice(1)) v = (v as any)?.[k as any]; return v; }
      case 'list': return [...a];
      case 'concat': return a.flatMap((x) => (Array.isArray(x) ? x : [x]));
      case 'len': need(1); return Array.isArray(a[0]) || typeof a[0] === 'string' ? (a[0] as string).length : Object.keys(a[0] ?? {}).length;
      case 'dict': { const d: Record<string, unknown> = {}; for (let i = 0; i < a.length; i += 2) d[String(a[i])] = a[i + 1]; return d; }
      case 'set': need(3); (a[0] as Record<string, unknown>)[String(a[1])] = a[2]; return a[0];
      case 'required': need(2); if (!truthy(a[1])) throw new TemplateError(`required: ${String(a[0])}`); return a[1];
      case 'fail': need(1); throw new TemplateError(`fail: ${String(a[0])}`);
      default: throw new TemplateError(`unsupported function '${name}'`);
    }
  }
}

// Go's lt/gt compare numbers of one kind only; a string would be a template error there too.
function cmpNum(a: unknown, b: unknown): number {
  if (typeof a !== 'number' || typeof b !== 'number') throw new TemplateError(`incompatible types for comparison: ${typeof a}, ${typeof b}`);
  return a - b;
}

function toInt(x: unknown): number {
  const n = typeof x === 'string' ? Number.parseInt(x, 10) : Number(x);
  if (!Number.isFinite(n)) throw new TemplateError(`not a number: ${JSON.stringify(x)}`);
  return Math.trunc(n);
}

function indent(n: number, s: string): string {
  const pad = ' '.repeat(n);
  return s.split('\n').map((l) => pad + l).join('\n');
}

// Field access like Go's: a missing map key yields undefined (helm prints nothing); access into
// nil is an error, as helm's "nil pointer evaluating" is.
function walk(v: unknown, path: string[]): unknown {
  let cur = v;
  for (const p of path) {
    if (cur === null || cur === undefined) throw new TemplateError(`nil pointer evaluating .${p}`);
    if (typeof cur !== 'object') throw new TemplateError(`can't evaluate field ${p} in ${typeof cur}`);
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

export type { Parsed };
