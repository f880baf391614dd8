import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BoundedFdStream, closeLogger, createLogger, flushRepeats } from './log.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, dest: { write: (l: string) => { lines.push(JSON.parse(l) as Record<string, unknown>); } } };
}

test('a repeated line is logged `max` times per window, then one summary counts the rest', () => {
  let now = 0;
  const { lines, dest } = capture();
  const log = createLogger({ level: 'info', repeat: { max: 5, windowMs: 1000, now: () => now } }, dest);
  const proxy = log.child({ component: 'ng-proxy' });
  for (let i = 0; i < 1000; i++) proxy.info({ from: `127.0.0.1:${i}` }, 'bad ng request answered with error');
  proxy.warn('another message'); // its own budget
  log.child({ component: 'other' }).info('bad ng request answered with error'); // another component: its own budget
  assert.equal(lines.filter((l) => l.msg === 'bad ng request answered with error').length, 6);
  flushRepeats(log);
  const sums = lines.filter((l) => l.msg === 'repeated log line suppressed');
  assert.equal(sums.length, 1);
  assert.deepEqual({ ...sums[0], time: undefined, pid: undefined, level: undefined },
    { time: undefined, pid: undefined, level: undefined, msg: 'repeated log line suppressed', component: 'ng-proxy', repeated: 'bad ng request answered with error', suppressed: 995, windowS: 1 });
  assert.equal(sums[0]!.level, 30, 'the summary keeps the level of the line it stands for');

  // A new window: the line is allowed again; the window's suppressed lines are summarised when it ends.
  now = 1000;
  for (let i = 0; i < 7; i++) proxy.info('bad ng request answered with error');
  now = 2500;
  proxy.info('bad ng request answered with error');
  const after = lines.filter((l) => l.msg === 'repeated log line suppressed');
  assert.equal(after.length, 2);
  assert.equal(after[1]!.suppressed, 2);
});

test('repeat limit 0 logs everything', () => {
  const { lines, dest } = capture();
  const log = createLogger({ level: 'info', repeat: { max: 0, windowMs: 1000 } }, dest);
  for (let i = 0; i < 100; i++) log.info('same');
  assert.equal(lines.length, 100);
});

test('output to a stalled pipe is bounded; the dropped lines are counted once the reader catches up', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'log-fifo-'));
  const fifo = join(dir, 'out');
  execFileSync('mkfifo', [fifo]);
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  try {
    // Fill the pipe so that nothing more can be written until the reader reads.
    const block = Buffer.alloc(4096, 0x20);
    for (;;) { try { writeSync(writer, block); } catch { break; } }
    const out = new BoundedFdStream(writer, 64 * 1024);
    const log = createLogger({ level: 'info', repeat: { max: 0, windowMs: 1000 } }, out);
    const written = 20_000;
    for (let i = 0; i < written; i++) log.info({ i, pad: 'x'.repeat(300) }, 'flood');
    assert.ok(out.queuedBytes <= 64 * 1024, `queued ${out.queuedBytes}`);
    assert.ok(out.droppedLines > 0);
    assert.equal(await closeLogger(log, 50), true, 'a logger with its own destination is not waited for'); // dest given: nothing owned
    assert.equal(await out.drained(50), false, 'still stalled');

    // The reader catches up: everything queued arrives, then a summary of what was dropped.
    const dropped = out.droppedLines;
    let text = '';
    const buf = Buffer.alloc(65536);
    // Poll the reader until the summary arrives (the writer retries EAGAIN on a timer).
    for (let polls = 0; polls < 5000 && !text.includes('lines dropped'); polls++) {
      let n = 0;
      try { n = readSync(reader, buf); } catch { n = 0; }
      if (n > 0) text += buf.toString('latin1', 0, n);
      else await new Promise((r) => setTimeout(r, 2));
    }
    const lines = text.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('{'));
    const floods = lines.filter((l) => l.includes('"flood"')).length;
    const summary = JSON.parse(lines.find((l) => l.includes('lines dropped'))!) as { dropped: number };
    assert.equal(summary.dropped, dropped);
    assert.equal(floods + dropped, written, 'every line is either written or counted');
    assert.equal(await out.drained(1000), true);
  } finally {
    closeSync(reader);
    closeSync(writer);
    rmSync(dir, { recursive: true, force: true });
  }
});
