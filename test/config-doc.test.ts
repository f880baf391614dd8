// The generated configuration reference and the metrics reference stay in step with the code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configDocPath, renderConfigDoc } from '../scripts/gen-config-doc.js';
import { commands } from '../src/commands.js';
import { describeOptions } from '../src/config.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

test('docs/configuration.md is what scripts/gen-config-doc.ts renders now', () => {
  const fresh = renderConfigDoc();
  let committed = '';
  try { committed = readFileSync(configDocPath, 'utf8'); } catch { /* missing counts as stale */ }
  assert.ok(committed === fresh, 'docs/configuration.md is stale: run `npx tsx scripts/gen-config-doc.ts` and commit the result');
});

test('the reference names every command and every env var', () => {
  const doc = renderConfigDoc();
  for (const c of commands) {
    assert.ok(doc.includes(`rtpengine-k8s ${c.usage ?? c.name}`), c.name);
    for (const r of describeOptions(c.options)) assert.ok(doc.includes(`\`${r.env}\``), `${c.name}: ${r.env}`);
  }
});

/** Metric names defined in src/ (prom-client `name:` fields, prefix constants resolved). */
function metricNames(): string[] {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const f of readdirSync(dir)) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) { if (f !== 'gen') walk(p); continue; }
      if (!f.endsWith('.ts') || f.endsWith('.test.ts')) continue;
      const src = readFileSync(p, 'utf8');
      for (const m of src.matchAll(/name:\s*`\$\{\w+\}(\w+)`/g)) names.add(`rtpengine_k8s_${m[1]}`);
      for (const m of src.matchAll(/name:\s*['"`](rtpengine_k8s_\w+)['"`]/g)) names.add(m[1]!);
    }
  };
  walk(join(repo, 'src'));
  return [...names].sort();
}

test('docs/metrics.md documents every metric defined in src/, and no other', () => {
  const doc = readFileSync(join(repo, 'docs', 'metrics.md'), 'utf8');
  const defined = metricNames();
  assert.ok(defined.length > 0, 'no metric definitions found: the extraction pattern is broken');
  const missing = defined.filter((n) => !new RegExp(`\`${n}\``).test(doc));
  assert.deepEqual(missing, [], 'add these to docs/metrics.md');
  const documented = [...doc.matchAll(/^\| `(rtpengine_k8s_\w+)`/gm)].map((m) => m[1]!);
  assert.deepEqual(documented.filter((n) => !defined.includes(n)), [], 'documented but not defined in src/');
});
