// `npm run bench`: every bench/*.bench.ts suite (or those named on the command line) in one run,
// one table on stdout, all figures in bench/results.json (median over runs, p99, goals).
// Each suite runs in a fresh child process (`run.ts --child <file> <out.json>`), so one suite's
// heap, JIT state and leftover timers cannot skew the next suite's figures.
import { readdirSync, readFileSync, writeFileSync, accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { cpus, tmpdir } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';
import type { Row, Suite } from './suite.js';

const dir = dirname(fileURLToPath(import.meta.url));
const quick = process.env.BENCH_QUICK === '1';

if (process.argv[2] === '--child') {
  // One suite, in this fresh process: rows to the file the parent named.
  const [file, out] = process.argv.slice(3) as [string, string];
  const suite = (await import(pathToFileURL(join(dir, file)).href)).default as Suite;
  const rows = await suite.run({ quick, log: (m) => process.stderr.write(`  ${m}\n`) });
  writeFileSync(out, JSON.stringify(rows));
  process.exit(0);
}

/** Runs one suite file in a child process; resolves with its rows or rejects with why it failed. */
async function runChild(file: string): Promise<Row[]> {
  const tmp = mkdtempSync(join(tmpdir(), 'rtpengine-k8s-bench-'));
  const out = join(tmp, 'rows.json');
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', file, out], { stdio: ['ignore', 'inherit', 'inherit'] });
      child.once('error', reject);
      child.once('exit', (c, sig) => resolve(sig ? -1 : c));
    });
    if (code !== 0) throw new Error(`suite process exited with ${code === -1 ? 'a signal' : `code ${code}`} (its error is printed above)`);
    return JSON.parse(readFileSync(out, 'utf8')) as Row[];
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const only = process.argv.slice(2);
const files = readdirSync(dir).filter((f) => f.endsWith('.bench.ts')).sort();

const has = (bin: string) => ['/usr/bin', '/usr/sbin', '/usr/local/bin'].some((d) => { try { accessSync(join(d, bin), constants.X_OK); return true; } catch { return false; } });

const rows: Row[] = [];
const notRun: Array<{ suite: string; reason: string }> = [];
let failed = false;
for (const f of files) {
  const suite = (await import(pathToFileURL(join(dir, f)).href)).default as Suite;
  if (only.length && !only.includes(suite.name)) continue;
  const missing = (suite.needs ?? []).filter((b) => !has(b));
  if (missing.length) { notRun.push({ suite: suite.name, reason: `missing ${missing.join(', ')}` }); continue; }
  process.stderr.write(`bench: ${suite.name} …\n`);
  const t0 = performance.now();
  try {
    rows.push(...(await runChild(f)));
  } catch (e) {
    notRun.push({ suite: suite.name, reason: `failed: ${(e as Error).message}` });
    failed = true;
  }
  process.stderr.write(`bench: ${suite.name} done in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

const fmt = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const table = [
  '| suite | measure | median | p99 | unit | goal | met |',
  '|---|---|---:|---:|---|---|---|',
  ...rows.map((r) => `| ${r.suite} | ${r.name} | ${fmt(r.value)} | ${fmt(r.p99)} | ${r.unit} | ${r.goal ?? ''} | ${r.met === undefined ? '' : r.met ? 'yes' : 'NO'} |`),
].join('\n');
process.stdout.write(table + '\n');
for (const n of notRun) process.stdout.write(`not run: ${n.suite} (${n.reason})\n`);

if (!only.length) {
  writeFileSync(join(dir, 'results.json'), JSON.stringify({
    date: new Date().toISOString(), node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, quick, rows, notRun,
  }, null, 2) + '\n');
  process.stderr.write('bench: wrote bench/results.json\n');
  // Keep the README's Performance table equal to this run.
  const readme = join(dir, '..', 'README.md');
  const text = readFileSync(readme, 'utf8');
  const start = '<!-- bench:start -->';
  const end = '<!-- bench:end -->';
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a >= 0 && b > a) {
    const stamp = `Run of ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, Node ${process.version}, ${cpus().length} cores${quick ? ', quick mode' : ''}.`;
    const gaps = notRun.map((n) => `\nNot run: ${n.suite} (${n.reason}).`).join('');
    writeFileSync(readme, `${text.slice(0, a + start.length)}\n${stamp}\n\n${table}\n${gaps}\n${text.slice(b)}`);
    process.stderr.write('bench: updated the Performance table in README.md\n');
  }
}
// A suite that threw is a failed benchmark run, not a quiet gap in the table.
if (failed) process.exitCode = 1;
