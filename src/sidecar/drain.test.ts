import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gate, DrainController, type GateInput, type GateDecision } from './drain.js';
import { SteppedClock } from '../../test/support/clock.js';
import { isSettled } from '../../test/support/wait.js';
import { silentLogger } from '../log.js';

type Row = [string, Partial<GateInput>, GateDecision];
const base: GateInput = { command: 'offer', known: false, hasCallId: true, draining: false, upstreamUp: true };
const F: GateDecision = { action: 'forward' };
const RD: GateDecision = { action: 'refuse', why: 'draining' };
const RU: GateDecision = { action: 'refuse', why: 'upstream-down' };
const FU: GateDecision = { action: 'fail', why: 'upstream-down' };
const P: GateDecision = { action: 'probe' };

const rows: Row[] = [
  ['serving: new offer forwarded', {}, F],
  ['serving: answer for unknown call forwarded (rtpengine decides)', { command: 'answer' }, F],
  ['serving: statistics forwarded', { command: 'statistics', hasCallId: false }, F],
  ['draining: ping forwarded (pong keeps the node enabled)', { command: 'ping', hasCallId: false, draining: true }, F],
  ['draining: offer for a call-id the registry lacks → probe rtpengine (may be a re-INVITE)', { draining: true }, P],
  ['draining: offer without call-id refused', { draining: true, hasCallId: false }, RD],
  ['draining: re-INVITE offer for a held call forwarded', { draining: true, known: true }, F],
  ['draining: answer for a held call forwarded', { command: 'answer', draining: true, known: true }, F],
  ['draining: delete for a held call forwarded', { command: 'delete', draining: true, known: true }, F],
  ['draining: query for a held call forwarded', { command: 'query', draining: true, known: true }, F],
  ['draining: publish for a new call refused', { command: 'publish', draining: true, hasCallId: false }, RD],
  ['draining: create with an unknown call-id → probe', { command: 'create', draining: true }, P],
  ['draining: create without call-id refused', { command: 'create', draining: true, hasCallId: false }, RD],
  ['draining: transform refused', { command: 'transform', draining: true, hasCallId: false }, RD],
  ['draining: delete for a call the registry lacks → probe', { command: 'delete', draining: true }, P],
  ['draining: answer for a call the registry lacks → probe', { command: 'answer', draining: true }, P],
  ['draining: query for a call the registry lacks → probe', { command: 'query', draining: true }, P],
  ['draining: upstream health unknown (null counts as up) → probe', { command: 'answer', draining: true, upstreamUp: true }, P],
  ['serving: unknown call never probed (hot path untouched)', { command: 'delete' }, F],
  ['down and draining: answer for an unknown call → load limit, no probe', { command: 'answer', draining: true, upstreamUp: false }, RD],
  ['draining: statistics (no call-id) forwarded', { command: 'statistics', hasCallId: false, draining: true }, F],
  ['draining: list forwarded', { command: 'list', hasCallId: false, draining: true }, F],
  ['down: new offer refused (fail over at once)', { upstreamUp: false }, RU],
  ['down: publish refused', { command: 'publish', hasCallId: false, upstreamUp: false }, RU],
  ['down: re-INVITE for a held call fails with the reason', { known: true, upstreamUp: false }, FU],
  ['down: delete for a held call fails', { command: 'delete', known: true, upstreamUp: false }, FU],
  ['down: answer for an unknown call fails', { command: 'answer', upstreamUp: false }, FU],
  ['down: ping answered with an error, never silence', { command: 'ping', hasCallId: false, upstreamUp: false }, FU],
  ['down: statistics fails', { command: 'statistics', hasCallId: false, upstreamUp: false }, FU],
  ['down and draining: new offer refused as draining', { draining: true, upstreamUp: false }, RD],
  ['down and draining: held call fails', { command: 'delete', known: true, draining: true, upstreamUp: false }, FU],
  ['no command at all: forwarded (rtpengine explains)', { command: undefined, hasCallId: false }, F],
  ['unknown command, unknown call, draining → probe', { command: 'block media', draining: true }, P],
  ['unknown command, no call-id, draining → forwarded', { command: 'block media', hasCallId: false, draining: true }, F],
];

for (const [name, input, want] of rows) {
  test(`gate: ${name}`, () => assert.deepEqual(gate({ ...base, ...input }), want));
}

test('drain controller: serving → draining → drained at 0 sessions; wait() resolves; start idempotent', async () => {
  const clock = new SteppedClock();
  const d = new DrainController({ clock, log: silentLogger });
  const phases: string[] = [];
  d.on('phase', (s) => phases.push(s.phase));
  assert.equal(d.phase, 'serving');
  d.observe(0); // not draining: ignored
  assert.equal(d.phase, 'serving');
  const first = d.start(60_000, 'test');
  const again = d.start(120_000, 'test');
  assert.equal(again.deadlineAt, first.deadlineAt, 'a later deadline does not extend the drain');
  const earlier = d.start(30_000, 'test');
  assert.ok(earlier.deadlineAt! < first.deadlineAt!, 'an earlier deadline wins');
  const waiting = d.wait();
  d.observe(3);
  assert.equal(d.status().sessionsLeft, 3);
  d.observe(0);
  const done = await waiting;
  assert.equal(done.outcome, 'empty');
  assert.deepEqual(phases, ['draining', 'drained']);
  assert.equal(d.start(1000).phase, 'drained', 'a drained controller stays drained');
  assert.equal(clock.pending, 0, 'no timer left armed');
  d.close();
});

test('drain controller: deadline ends the drain with outcome deadline, not a moment before', async () => {
  const clock = new SteppedClock();
  const d = new DrainController({ clock, log: silentLogger });
  d.start(30_000, 'test');
  d.observe(2);
  const waiting = d.wait();
  await clock.advance(29_999);
  assert.equal(await isSettled(waiting), false);
  await clock.advance(1);
  const s = await waiting;
  assert.equal(s.outcome, 'deadline');
  assert.equal(s.sessionsLeft, 2);
  d.close();
});

test('drain controller: rtpengine down while draining ends the drain with outcome upstream-down', async () => {
  const clock = new SteppedClock();
  const d = new DrainController({ clock, log: silentLogger, upstreamDownMs: 40_000 });
  d.upstream(false); // serving: nothing armed
  await clock.advance(60_000);
  assert.equal(d.phase, 'serving');
  d.start(600_000, 'test'); // already down at start: armed now
  d.observe(4);
  await clock.advance(39_999);
  assert.equal(d.phase, 'draining');
  await clock.advance(1);
  const s = await d.wait();
  assert.equal(s.outcome, 'upstream-down');
  assert.equal(s.sessionsLeft, 4);
  d.close();
});

test('drain controller: rtpengine back up in time keeps draining; down again re-arms', async () => {
  const clock = new SteppedClock();
  const d = new DrainController({ clock, log: silentLogger, upstreamDownMs: 60_000 });
  d.start(600_000, 'test');
  d.upstream(false);
  await clock.advance(20_000);
  d.upstream(true);
  await clock.advance(80_000);
  assert.equal(d.phase, 'draining', 'a short outage does not end the drain');
  d.upstream(false);
  await clock.advance(60_000);
  const s = await d.wait();
  assert.equal(s.outcome, 'upstream-down');
  d.close();
});

test('drain controller: upstreamDownMs Infinity waits for the deadline', async () => {
  const clock = new SteppedClock();
  const d = new DrainController({ clock, log: silentLogger, upstreamDownMs: Infinity });
  d.start(50_000, 'test');
  d.upstream(false);
  await clock.advance(50_000);
  assert.equal((await d.wait()).outcome, 'deadline');
  d.close();
});
