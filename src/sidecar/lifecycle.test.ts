import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SidecarLifecycle, type LifecycleOptions, type Phase } from './lifecycle.js';
import { SteppedClock } from '../../test/support/clock.js';
import { isSettled } from '../../test/support/wait.js';
import { silentLogger } from '../log.js';

function make(o: Partial<LifecycleOptions> = {}) {
  const clock = new SteppedClock();
  const markers: string[] = [];
  const life = new SidecarLifecycle({
    clock, log: silentLogger, drainDeadlineMs: 600_000, lingerMs: 20_000, upstreamDownMs: 60_000,
    writeMarker: async (trigger) => { markers.push(trigger); return `/run/drained-${trigger}`; }, ...o,
  });
  const phases: Phase[] = [];
  life.on('phase', (s: { phase: Phase }) => { if (phases.at(-1) !== s.phase) phases.push(s.phase); });
  return { clock, life, markers, phases };
}

test('lifecycle: serving → draining → drained at 0 sessions; a later deadline does not extend the drain, an earlier one wins', async () => {
  const { life, clock, phases } = make();
  life.serve();
  life.observeSessions(0); // serving: ignored
  assert.equal(life.phase, 'serving');
  const first = life.requestDrain({ deadlineMs: 60_000, trigger: 'http' });
  assert.equal(life.requestDrain({ deadlineMs: 120_000 }).deadlineAt, first.deadlineAt);
  assert.ok(life.requestDrain({ deadlineMs: 30_000 }).deadlineAt! < first.deadlineAt!);
  assert.equal(life.draining, true);
  const waiting = life.drained();
  life.observeSessions(3);
  assert.equal(life.status().drain.sessionsLeft, 3);
  life.observeSessions(0);
  assert.equal((await waiting).outcome, 'empty');
  assert.deepEqual(phases, ['serving', 'draining', 'drained']);
  assert.equal(life.requestDrain({ deadlineMs: 1000 }).phase, 'drained', 'a drained pod stays drained');
  await clock.advance(3_600_000);
  assert.equal(life.phase, 'drained', 'not terminating: it never ends by itself');
  assert.equal(clock.pending, 0, 'no timer left armed');
});

test('lifecycle: the deadline ends the drain, not a moment before', async () => {
  const { life, clock } = make();
  life.serve();
  life.requestDrain({ deadlineMs: 30_000 });
  life.observeSessions(2);
  const waiting = life.drained();
  await clock.advance(29_999);
  assert.equal(await isSettled(waiting), false);
  await clock.advance(1);
  const s = await waiting;
  assert.deepEqual([s.outcome, s.sessionsLeft], ['deadline', 2]);
});

test('lifecycle: rtpengine down while draining ends the drain (upstream-down); back up in time keeps draining; Infinity waits for the deadline', async () => {
  const a = make({ upstreamDownMs: 40_000 });
  a.life.serve();
  a.life.upstream(false); // serving: nothing armed
  await a.clock.advance(60_000);
  assert.equal(a.life.phase, 'serving');
  a.life.requestDrain({ trigger: 'test' }); // already down: armed now
  await a.clock.advance(39_999);
  assert.equal(a.life.phase, 'draining');
  await a.clock.advance(1);
  assert.equal((await a.life.drained()).outcome, 'upstream-down');

  const b = make({ upstreamDownMs: 60_000 });
  b.life.serve();
  b.life.requestDrain({});
  b.life.upstream(false);
  await b.clock.advance(20_000);
  b.life.upstream(true);
  await b.clock.advance(80_000);
  assert.equal(b.life.phase, 'draining', 'a short outage does not end the drain');
  b.life.upstream(false);
  await b.clock.advance(60_000);
  assert.equal((await b.life.drained()).outcome, 'upstream-down');

  const c = make({ upstreamDownMs: Infinity });
  c.life.serve();
  c.life.requestDrain({ deadlineMs: 50_000 });
  c.life.upstream(false);
  await c.clock.advance(50_000);
  assert.equal((await c.life.drained()).outcome, 'deadline');
});

test('lifecycle: SIGTERM drains, lingers from the completion, then asks to stop with exit 0; no marker', async () => {
  const { life, clock, phases, markers } = make();
  life.serve();
  life.terminate('SIGTERM');
  assert.equal(life.draining, true);
  const stop = life.stopRequested();
  await clock.advance(5_000);
  life.observeSessions(0);
  assert.equal(life.phase, 'lingering');
  assert.equal(life.status().lingerUntil, clock.now() + 20_000);
  await clock.advance(19_999);
  assert.equal(await isSettled(stop), false, 'still answering during the linger');
  await clock.advance(1);
  assert.deepEqual(await stop, { why: 'drain empty (SIGTERM)', code: 0 });
  life.stopped();
  assert.deepEqual(phases, ['serving', 'draining', 'lingering', 'stopping', 'stopped']);
  assert.deepEqual(markers, [], 'a terminating pod writes no marker');
});

test('lifecycle: an HTTP drain on a pod that is not terminating writes the marker; SIGTERM long after lingers only what is left', async () => {
  const { life, clock, markers } = make();
  life.serve();
  life.requestDrain({ trigger: 'http' });
  await life.settled();
  assert.deepEqual(markers, ['http']);
  assert.equal(life.status().drainedMarker, '/run/drained-http');
  life.observeSessions(0);
  await clock.advance(15_000);
  assert.equal(life.phase, 'drained');
  life.terminate('SIGTERM');
  assert.equal(life.phase, 'lingering');
  await clock.advance(5_000);
  assert.equal(life.phase, 'stopping');
});

test('lifecycle: SIGTERM while starting drains right after start-up; a drain asked for while starting is served drained', async () => {
  const a = make();
  a.life.terminate('SIGTERM');
  assert.equal(a.life.phase, 'starting');
  a.life.serve();
  assert.equal(a.life.phase, 'draining');
  a.life.observeSessions(0);
  assert.equal(a.life.phase, 'lingering');

  const b = make();
  b.life.restoreMarker('/run/m');
  b.life.requestDrain({ trigger: 'restart' });
  b.life.serve();
  assert.equal(b.life.phase, 'draining');
  assert.deepEqual(b.markers, [], 'a restored marker is not written again');
  assert.ok(b.life.notReadyReasons().length > 0, 'never ready');
});

test('lifecycle: a fault stops at once; a lost lease gates new calls and resumes only if nothing else drained', async () => {
  const a = make();
  a.life.serve();
  a.life.fail('rtpengine exited', 70);
  assert.equal(a.life.phase, 'stopping');
  assert.deepEqual(await a.life.stopRequested(), { why: 'rtpengine exited', code: 70 });

  const b = make();
  b.life.serve();
  b.life.requestDrain({ trigger: 'lease lost' });
  assert.equal(b.life.draining, true);
  await b.life.settled();
  assert.deepEqual(b.markers, [], 'a lease-lost drain is not persisted');
  assert.equal(b.life.resumeAfterLease(), true);
  assert.equal(b.life.phase, 'serving');
  assert.equal(b.clock.pending, 0);
  b.life.requestDrain({ trigger: 'http' });
  assert.equal(b.life.resumeAfterLease(), false, 'an operator drain is never undone');
});

type Ev = { k: 'drain' | 'sessions' | 'up' | 'down' | 'term' | 'tick' | 'fail'; n: number };
const ev: fc.Arbitrary<Ev> = fc.record({ k: fc.constantFrom('drain', 'sessions', 'up', 'down', 'term', 'tick', 'fail'), n: fc.integer({ min: 0, max: 3 }) }) as fc.Arbitrary<Ev>;

test('property: whatever the events, phases only move forward, a terminating lifecycle always comes to stop, a drain never un-drains', async () => {
  const order: Phase[] = ['starting', 'serving', 'draining', 'drained', 'lingering', 'stopping', 'stopped'];
  await fc.assert(fc.asyncProperty(fc.array(ev, { maxLength: 30 }), async (events) => {
    const { life, clock, phases } = make({ drainDeadlineMs: 50_000, lingerMs: 10_000, upstreamDownMs: 30_000 });
    life.serve();
    let wasDraining = false;
    for (const e of events) {
      if (e.k === 'drain') life.requestDrain({ trigger: 'http' });
      if (e.k === 'sessions') life.observeSessions(e.n);
      if (e.k === 'up') life.upstream(true);
      if (e.k === 'down') life.upstream(false);
      if (e.k === 'term') life.terminate('SIGTERM');
      if (e.k === 'tick') await clock.advance(e.n * 10_000);
      if (e.k === 'fail') life.fail('x', 1);
      if (wasDraining) assert.equal(life.draining || life.phase === 'stopping', true);
      wasDraining ||= life.draining;
    }
    const idx = phases.map((p) => order.indexOf(p));
    assert.deepEqual(idx, [...idx].sort((x, y) => x - y), `phases ${phases.join('→')}`);
    if (life.terminating) {
      await clock.advance(200_000);
      assert.equal(life.phase, 'stopping', `terminating ends: ${phases.join('→')}`);
    }
  }), { numRuns: 200 });
});
