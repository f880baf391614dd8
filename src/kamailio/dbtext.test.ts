import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { escapeValue, splitLine, renderRtpengineTable, parseRtpengineTable, writeDbTextFile, ensureVersionRow, RTPENGINE_HEADER } from './dbtext.js';
import { isCoded } from '../errors.js';
import { mountSkip, mountTmpfs } from '../../test/support/small-tmpfs.js';

test('escapes exactly the characters db_text escapes', () => {
  assert.equal(escapeValue('udp:127.0.0.1:2223'), 'udp\\:127.0.0.1\\:2223');
  assert.equal(escapeValue('udp6:[fd00::1]:2223'), 'udp6\\:[fd00\\:\\:1]\\:2223');
  assert.equal(escapeValue('a\\b\nc\rd\te\0f'), 'a\\\\b\\nc\\rd\\te\\0f');
});

test('escape then split is the identity for any string (fields never split on escaped colons)', () => {
  fc.assert(fc.property(fc.array(fc.string({ unit: 'binary' }), { minLength: 1, maxLength: 5 }), (fields) => {
    const line = fields.map(escapeValue).join(':');
    assert.deepEqual(splitLine(line, { path: 'x', line: 1 }), fields);
  }));
});

test('an unknown escape is a coded parse error, as db_text rejects it', () => {
  assert.throws(() => splitLine('a\\qb', { path: 'f', line: 3 }), (e) => isCoded(e, 'DBTEXT_PARSE') && /line 3/.test((e as Error).message));
});

test('renders the table the way the testing notes show Kamailio accepts it', () => {
  const text = renderRtpengineTable([
    { setid: 0, url: 'udp:127.0.0.1:23001', weight: 1, disabled: false },
    { setid: 2, url: 'udp6:[::1]:23002', weight: 5, disabled: true },
  ]);
  assert.equal(text, `${RTPENGINE_HEADER}\n1:0:udp\\:127.0.0.1\\:23001:1:0:0\n2:2:udp6\\:[\\:\\:1]\\:23002:5:1:0\n`);
  assert.deepEqual(parseRtpengineTable(text), [
    { setid: 0, url: 'udp:127.0.0.1:23001', weight: 1, disabled: false },
    { setid: 2, url: 'udp6:[::1]:23002', weight: 5, disabled: true },
  ]);
});

test('bad rows are refused with a coded error, not written', () => {
  assert.throws(() => renderRtpengineTable([{ setid: -1, url: 'udp:1.2.3.4:1', weight: 1, disabled: false }]), (e) => isCoded(e, 'DBTEXT_WRITE_FAILED'));
  assert.throws(() => parseRtpengineTable(`${RTPENGINE_HEADER}\n1:0:udp\\:x:1:0\n`), (e) => isCoded(e, 'DBTEXT_PARSE'));
  assert.throws(() => parseRtpengineTable('garbage\n'), (e) => isCoded(e, 'DBTEXT_PARSE'));
});

test('parses a hand-written table with another column order', () => {
  const rows = parseRtpengineTable('url(string) disabled(int) weight(int) setid(int)\nudp\\:10.0.0.1\\:2223:0:3:1\n\n');
  assert.deepEqual(rows, [{ url: 'udp:10.0.0.1:2223', disabled: false, weight: 3, setid: 1 }]);
});

test('atomic write leaves no temp file, replaces content, and moves the mtime past a given second', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dbt-'));
  try {
    const p = join(dir, 'rtpengine');
    writeFileSync(p, 'old');
    const future = Math.floor(Date.now() / 1000) + 5;
    const m = await writeDbTextFile(p, 'new\n', { minMtimeS: future });
    assert.equal(readFileSync(p, 'utf8'), 'new\n');
    assert.equal(m, future);
    assert.equal(Math.floor(statSync(p).mtimeMs / 1000), future);
    assert.deepEqual(readdirSync(dir), ['rtpengine']);
    await assert.rejects(writeDbTextFile(join(dir, 'missing-dir', 'x'), 'y'), (e) => isCoded(e, 'DBTEXT_WRITE_FAILED'));
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('a db_text write that fails (disk full) keeps the previous table and its mtime, no temp file', { skip: mountSkip() }, async () => {
  const fs = mountTmpfs(64);
  try {
    const p = join(fs.dir, 'rtpengine');
    const good = renderRtpengineTable([{ setid: 0, url: 'udp:10.0.0.1:2223', weight: 1, disabled: false }]);
    const m = await writeDbTextFile(p, good);
    const rows = Array.from({ length: 300 }, (_, i) => ({ setid: 0, url: `udp:10.0.${i >> 8}.${i & 255}:2223`, weight: 1, disabled: false }));
    const big = renderRtpengineTable(rows);
    fs.fillLeaving(big.length);
    const before = readdirSync(fs.dir).sort();
    await assert.rejects(writeDbTextFile(p, big, { minMtimeS: m + 5 }), (e) => isCoded(e, 'DBTEXT_WRITE_FAILED') && /ENOSPC/.test(e.message));
    assert.equal(readFileSync(p, 'utf8'), good, 'Kamailio still reads the previous, whole table');
    assert.equal(Math.floor(statSync(p).mtimeMs / 1000), m, 'mtime not moved: db_text does not reload');
    assert.deepEqual(readdirSync(fs.dir).sort(), before, 'no temp file left');
  } finally { fs.close(); }
});

test('version row is added once and other tables are kept', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dbt-'));
  try {
    assert.equal(await ensureVersionRow(dir, 'rtpengine'), true);
    assert.equal(readFileSync(join(dir, 'version'), 'utf8'), 'table_name(str) table_version(int)\nrtpengine:1\n');
    assert.equal(await ensureVersionRow(dir, 'rtpengine'), false);
    writeFileSync(join(dir, 'version'), 'table_name(str) table_version(int)\nsubscriber:7\nrtpengine:0\n');
    assert.equal(await ensureVersionRow(dir, 'rtpengine'), true);
    assert.equal(readFileSync(join(dir, 'version'), 'utf8'), 'table_name(str) table_version(int)\nsubscriber:7\nrtpengine:1\n');
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
