import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProcKernel, writeControl } from './kernel.js';
import { ProcRtpengine } from '../../test/support/proc-rtpengine.js';
import { isCoded } from '../errors.js';

test('lists tables, reads holders, and maps del N to ok / busy / absent like the kernel', async () => {
  const proc = new ProcRtpengine();
  try {
    const k = new ProcKernel({ root: proc.root, fs: proc });
    assert.equal(await k.available(), true);
    assert.deepEqual(await k.listTables(), []);
    proc.daemonStart(7, 1234);
    proc.daemonStart(3, 99);
    assert.deepEqual(await k.listTables(), [3, 7]);
    assert.equal((await k.tableStatus(7))?.holderPid, 1234);
    assert.equal(await k.tableStatus(5), undefined);
    assert.equal(await k.deleteTable(7), 'busy');
    assert.deepEqual(await k.listTables(), [3, 7]);
    proc.daemonClose(7);
    assert.equal((await k.tableStatus(7))?.holderPid, 0);
    assert.equal(await k.deleteTable(7), 'ok');
    assert.equal(await k.deleteTable(7), 'absent');
    assert.deepEqual(await k.listTables(), [3]);
  } finally { proc.remove(); }
});

test('a missing proc tree means no module: nothing listed, delete is absent', async () => {
  const k = new ProcKernel({ root: '/nonexistent/proc/rtpengine' });
  assert.equal(await k.available(), false);
  assert.deepEqual(await k.listTables(), []);
  assert.equal(await k.deleteTable(1), 'absent');
});

test('an unexpected kernel errno becomes KERNEL_PROC_FAILED naming the write', async () => {
  const proc = new ProcRtpengine();
  try {
    const k = new ProcKernel({ root: proc.root, fs: { ...proc, exists: proc.exists.bind(proc), readFile: proc.readFile.bind(proc), writeFile: async () => { throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }); } } });
    await assert.rejects(k.deleteTable(4), (e) => isCoded(e, 'KERNEL_PROC_FAILED') && /del 4/.test(e.message) && /proc_uid/.test(e.message));
  } finally { proc.remove(); }
});

test('the real node fs writes one line to a control file', async () => {
  const proc = new ProcRtpengine();
  try {
    const k = new ProcKernel({ root: proc.root });
    assert.equal(await k.deleteTable(9), 'ok');
    const { readFileSync } = await import('node:fs');
    assert.equal(readFileSync(`${proc.root}/control`, 'utf8'), 'del 9\n');
  } finally { proc.remove(); }
});

test('a control write the kernel takes only in part is an error naming the counts, never continued as a second command (review 14/16 finding 7)', async () => {
  const proc = new ProcRtpengine();
  const { openSync, closeSync, readFileSync } = await import('node:fs');
  const fd = openSync(`${proc.root}/control`, 'r+');
  try {
    const calls: number[] = [];
    // write(2) as the kernel would answer had it consumed 3 bytes: the line must not be resumed.
    assert.throws(() => writeControl(fd, 'del 9\n', (_fd, b) => { calls.push(b.length); return 3; }),
      (e: NodeJS.ErrnoException) => e.code === 'EIO' && /3 of 6 bytes/.test(e.message));
    assert.deepEqual(calls, [6], 'one write, not resumed');
    writeControl(fd, 'del 8\n'); // the real write(2): whole line taken
    assert.equal(readFileSync(`${proc.root}/control`, 'utf8'), 'del 8\n');
  } finally { closeSync(fd); proc.remove(); }
  // Through the port: the short write surfaces as KERNEL_PROC_FAILED naming the command.
  const proc2 = new ProcRtpengine();
  try {
    const short = { exists: proc2.exists.bind(proc2), readFile: proc2.readFile.bind(proc2), writeFile: async (_p: string, d: string) => writeControl(0, d, () => 2) };
    await assert.rejects(new ProcKernel({ root: proc2.root, fs: short }).deleteTable(9), (e) => isCoded(e, 'KERNEL_PROC_FAILED') && /del 9/.test(e.message) && /2 of 6 bytes/.test(e.message));
  } finally { proc2.remove(); }
});
