import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, closeSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AtomicFile, writeFileAtomic, writeFully } from './atomic-file.js';
import { AllocError, isCoded } from '../errors.js';
import { mountSkip, mountTmpfs } from '../../test/support/small-tmpfs.js';

test('atomic file: replaces whole, keeps the previous generation when asked, leaves no temp file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'atomic-'));
  try {
    const path = join(dir, 'f.json');
    const prev = join(dir, 'f.json.prev');
    const f = new AtomicFile(path, { previous: prev, mode: 0o600 });
    await f.write('one\n');
    assert.equal(readFileSync(path, 'utf8'), 'one\n');
    assert.equal(existsSync(prev), false, 'nothing to keep on the first write');
    await f.write('two\n');
    assert.equal(readFileSync(prev, 'utf8'), 'one\n');
    await f.write(Buffer.from('three\n'));
    assert.equal(readFileSync(path, 'utf8'), 'three\n');
    assert.equal(readFileSync(prev, 'utf8'), 'two\n');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    f.close();
    await writeFileAtomic(path, 'four\n', { beforeRename: (tmp) => assert.equal(readFileSync(tmp, 'utf8'), 'four\n') });
    assert.equal(readFileSync(path, 'utf8'), 'four\n');
    assert.deepEqual(readdirSync(dir).sort(), ['f.json', 'f.json.prev']);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('atomic file: writeFully writes every byte of a multi-byte string and returns the count', () => {
  const dir = mkdtempSync(join(tmpdir(), 'atomic-'));
  try {
    const p = join(dir, 'x');
    writeFileSync(p, '');
    const fd = openSync(p, 'w');
    try { assert.equal(writeFully(fd, 'é'.repeat(100_000)), 200_000); } finally { closeSync(fd); }
    assert.equal(statSync(p).size, 200_000);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('atomic file: on a nearly full filesystem the write fails with the catalogue error, the good file untouched, no temp left', { skip: mountSkip() }, async () => {
  const fs = mountTmpfs(64);
  try {
    const path = join(fs.dir, 'state');
    const good = 'g'.repeat(6000);
    await writeFileAtomic(path, good);
    const next = 'n'.repeat(12_000);
    fs.fillLeaving(next.length);
    const before = readdirSync(fs.dir).sort();
    // Default code, then the caller's own code.
    await assert.rejects(writeFileAtomic(path, next), (e) => isCoded(e, 'FILE_WRITE_FAILED') && /ENOSPC/.test(e.message) && e.message.includes(path));
    const f = new AtomicFile(path, { error: (reason, cause) => new AllocError('ALLOC_STATE_WRITE', { path, reason }, { cause }) });
    await assert.rejects(f.write(next), (e) => isCoded(e, 'ALLOC_STATE_WRITE') && /ENOSPC/.test(e.message));
    f.close();
    assert.equal(readFileSync(path, 'utf8'), good, 'the good file is untouched');
    assert.deepEqual(readdirSync(fs.dir).sort(), before, 'no temp file left');
  } finally { fs.close(); }
});
