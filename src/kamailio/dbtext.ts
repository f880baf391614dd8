// Kamailio db_text files for the `rtpengine` table: render and parse with db_text's own escaping
// (dbt_file.c: `\:` `\\` `\n` `\r` `\t` `\0`), written by the one atomic writer (src/fs/atomic-file.ts) so
// Kamailio never reads half a table, with an mtime that always moves forward (db_text compares seconds).
import { readFile, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { KamailioError } from '../errors.js';
import { writeFileAtomic } from '../fs/atomic-file.js';

/** One row of Kamailio's `rtpengine` table (the columns rtpengine_db.c reads, plus id/stamp). */
export interface RtpengineRow {
  setid: number;
  url: string;
  weight: number;
  disabled: boolean;
}

export const RTPENGINE_HEADER = 'id(int,auto) setid(int) url(string) weight(int) disabled(int) stamp(int)';
export const VERSION_HEADER = 'table_name(str) table_version(int)';
/** rtpengine_db.c: RTPP_TABLE_VERSION. */
export const RTPENGINE_TABLE_VERSION = 1;

/** Escape a string value exactly as dbt_print_table does. */
export function escapeValue(s: string): string {
  let out = '';
  for (const ch of s) {
    switch (ch) {
      case '\n': out += '\\n'; break;
      case '\r': out += '\\r'; break;
      case '\t': out += '\\t'; break;
      case '\\': out += '\\\\'; break;
      case ':': out += '\\:'; break;
      case '\0': out += '\\0'; break;
      default: out += ch;
    }
  }
  return out;
}

/** Split one data line into unescaped fields; a backslash before anything else is an error (as dbt_load_file). */
export function splitLine(line: string, where: { path: string; line: number }): string[] {
  const fields: string[] = [];
  let cur = '';
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === ':') { fields.push(cur); cur = ''; continue; }
    if (ch !== '\\') { cur += ch; continue; }
    const next = line[++i];
    const map: Record<string, string> = { n: '\n', r: '\r', t: '\t', '\\': '\\', ':': ':', '0': '\0' };
    if (next === undefined || !(next in map)) {
      throw new KamailioError('DBTEXT_PARSE', { ...where, reason: `invalid escape '\\${next ?? ''}' at column ${i}` });
    }
    cur += map[next];
  }
  fields.push(cur);
  return fields;
}

/** The whole `rtpengine` table file: header, then rows with ids 1..n in the given order. */
export function renderRtpengineTable(rows: readonly RtpengineRow[]): string {
  const lines = [RTPENGINE_HEADER];
  rows.forEach((r, i) => {
    for (const [k, v] of [['setid', r.setid], ['weight', r.weight]] as const) {
      if (!Number.isInteger(v) || v < 0) throw new KamailioError('DBTEXT_WRITE_FAILED', { path: 'rtpengine', reason: `${k} must be a non-negative integer, got ${v}` });
    }
    if (!r.url) throw new KamailioError('DBTEXT_WRITE_FAILED', { path: 'rtpengine', reason: 'empty url' });
    lines.push([String(i + 1), String(r.setid), escapeValue(r.url), String(r.weight), r.disabled ? '1' : '0', '0'].join(':'));
  });
  return lines.join('\n') + '\n';
}

const parseCols = (header: string) =>
  header.trim().split(/\s+/).map((c) => {
    const m = /^([^(]+)\(([a-z]+)/i.exec(c);
    return m ? { name: m[1]!, type: m[2]!.toLowerCase() } : undefined;
  });

/** Parse an `rtpengine` table file (any column order, extra columns ignored). */
export function parseRtpengineTable(text: string, path = 'rtpengine'): RtpengineRow[] {
  const lines = text.split('\n');
  const cols = parseCols(lines[0] ?? '');
  if (cols.some((c) => !c)) throw new KamailioError('DBTEXT_PARSE', { path, line: 1, reason: `bad header '${lines[0]}'` });
  const idx = (n: string) => {
    const i = cols.findIndex((c) => c!.name === n);
    if (i < 0) throw new KamailioError('DBTEXT_PARSE', { path, line: 1, reason: `header lacks column '${n}'` });
    return i;
  };
  const [iSet, iUrl, iWeight, iDis] = [idx('setid'), idx('url'), idx('weight'), idx('disabled')];
  const rows: RtpengineRow[] = [];
  for (let n = 1; n < lines.length; n++) {
    if (lines[n] === '') continue;
    const f = splitLine(lines[n]!, { path, line: n + 1 });
    if (f.length !== cols.length) throw new KamailioError('DBTEXT_PARSE', { path, line: n + 1, reason: `${f.length} fields, header has ${cols.length}` });
    const int = (i: number) => {
      const v = f[i]!;
      if (v === '') return 0;
      if (!/^-?\d+$/.test(v)) throw new KamailioError('DBTEXT_PARSE', { path, line: n + 1, reason: `'${cols[i]!.name}' is not an integer: '${v}'` });
      return Number(v);
    };
    rows.push({ setid: int(iSet), url: f[iUrl]!, weight: int(iWeight), disabled: int(iDis) !== 0 });
  }
  return rows;
}

/**
 * Replace a db_text file through the one atomic writer (src/fs/atomic-file.ts); db_text reloads only
 * when st_mtime (whole seconds) grows, so the mtime is moved to `minMtimeS` when the clock is behind it.
 * Returns the file's mtime in seconds. Any failure: DBTEXT_WRITE_FAILED, the previous file untouched.
 */
export async function writeDbTextFile(path: string, text: string, opts: { minMtimeS?: number } = {}): Promise<number> {
  let mtimeS = Math.floor(Date.now() / 1000);
  await writeFileAtomic(path, text, {
    error: (reason, cause) => new KamailioError('DBTEXT_WRITE_FAILED', { path, reason }, { cause }),
    beforeRename: async (tmp) => {
      mtimeS = Math.floor(Date.now() / 1000);
      if (opts.minMtimeS !== undefined && mtimeS < opts.minMtimeS) {
        mtimeS = opts.minMtimeS;
        await utimes(tmp, mtimeS, mtimeS);
      }
    },
  });
  return mtimeS;
}

/** Current mtime of a file in whole seconds, or undefined when it does not exist. */
export async function mtimeSeconds(path: string): Promise<number | undefined> {
  try { return Math.floor((await stat(path)).mtimeMs / 1000); } catch { return undefined; }
}

/** Read the table file; undefined when it does not exist. */
export async function readRtpengineTable(path: string): Promise<RtpengineRow[] | undefined> {
  let text: string;
  try { text = await readFile(path, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new KamailioError('DBTEXT_PARSE', { path, line: 0, reason: (e as Error).message }, { cause: e });
  }
  return parseRtpengineTable(text, path);
}

/**
 * Make sure db_text's `version` file lists `table:version`, keeping other tables' rows.
 * Kamailio refuses to load the rtpengine table without it (db_check_table_version).
 */
export async function ensureVersionRow(dir: string, table: string, version = RTPENGINE_TABLE_VERSION): Promise<boolean> {
  const path = join(dir, 'version');
  let text = '';
  try { text = await readFile(path, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new KamailioError('DBTEXT_WRITE_FAILED', { path, reason: (e as Error).message });
  }
  const lines = text.split('\n').filter((l) => l !== '');
  if (!lines.length) lines.push(VERSION_HEADER);
  const rows = lines.slice(1).map((l, i) => splitLine(l, { path, line: i + 2 }));
  const mine = rows.findIndex((f) => f[0] === table);
  if (mine >= 0 && rows[mine]![1] === String(version)) return false;
  const row = [escapeValue(table), String(version)];
  if (mine >= 0) lines[mine + 1] = row.join(':'); else lines.push(row.join(':'));
  await writeDbTextFile(path, lines.join('\n') + '\n');
  return true;
}
