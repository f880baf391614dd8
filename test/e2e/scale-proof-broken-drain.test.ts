// scale-proof can fail: with a deliberately broken drain (`--broken-drain`: scale-in kills the pods
// at once, their rtpengines with them) it must report dropped calls and exit 1. Every loopback port
// it uses is reserved first (its media ports are on the pods' own 127.0.1.x addresses).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '../support/require.js';
import { freePortBlock } from '../support/ports.js';

test('scale-proof with a broken drain reports dropped calls and fails', { skip: requires('rtpengine', 'kamailio', 'sipp', 'setpriv'), timeout: 300_000 }, async () => {
  const out = await mkdtemp(join(tmpdir(), 'scale-proof-broken-'));
  try {
    const base = await freePortBlock(34);
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/scale-proof.ts', '--broken-drain', '--out', out, '--port-base', String(base)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (c) => { text += c; });
    child.stderr.on('data', (c) => { text += c; });
    const code = await new Promise((r) => child.once('exit', r));
    assert.equal(code, 1, text.slice(-3000));
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as { passed: boolean; calls: { dropped: number; byeFailed: number }; worstMediaGapMs: number; peakConcurrentCalls: number };
    assert.equal(report.passed, false);
    assert.ok(report.peakConcurrentCalls >= 60, 'it got as far as the scale-in');
    assert.ok(report.calls.dropped > 0, `calls dropped: ${JSON.stringify(report.calls)}`);
    assert.ok(report.worstMediaGapMs > 1000, 'their media stopped');
    assert.match(text, /FAIL: \d+ call\(s\) dropped/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
