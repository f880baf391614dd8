import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SessionRegistry } from './sessions.js';
import { systemClock } from '../clock.js';
import { SteppedClock } from '../../test/support/clock.js';

test('learn / forget / count, change events', () => {
  const r = new SessionRegistry({ clock: systemClock, tombstoneMs: 60_000 });
  const counts: number[] = [];
  r.on('change', (n) => counts.push(n));
  r.learn('a', { fromTag: 'f' });
  r.learn('b');
  r.learn('a', { toTag: 't' }); // update, no count change
  assert.equal(r.count(), 2);
  assert.deepEqual(r.get('a')?.fromTag, 'f');
  assert.deepEqual(r.get('a')?.toTag, 't');
  assert.equal(r.forget('a'), true);
  assert.equal(r.count(), 1);
  assert.equal(r.has('a'), true, 'deleted but inside delete-delay: still here');
  assert.equal(r.forget('zzz'), false);
  assert.deepEqual(counts, [1, 2, 1]);
});

test('tombstones expire', async () => {
  const clock = new SteppedClock();
  const r = new SessionRegistry({ clock, tombstoneMs: 20_000 });
  r.learn('a');
  r.forget('a');
  await clock.advance(19_999);
  assert.equal(r.has('a'), true);
  await clock.advance(1);
  assert.equal(r.has('a'), false);
});

test('reconcile: adds calls rtpengine holds, removes timed-out ones, keeps fresh ones, skips tombstones', async () => {
  const clock = new SteppedClock();
  const r = new SessionRegistry({ clock, tombstoneMs: 60_000 });
  r.learn('old-gone');
  r.learn('kept');
  r.learn('deleted');
  r.forget('deleted');
  await clock.advance(5);
  const startedAt = clock.monotonic();
  r.learn('fresh'); // created after the list request went out: not in the list, kept
  const res = r.reconcile(['kept', 'from-rtpengine', 'deleted'], startedAt);
  assert.deepEqual(res, { added: 1, removed: 1, count: 3 });
  assert.deepEqual(new Set(r.ids()), new Set(['kept', 'fresh', 'from-rtpengine']));
  assert.equal(r.get('from-rtpengine')?.source, 'rtpengine');
});

test('property: after reconcile at a later start, the registry equals the list minus tombstones', () => {
  fc.assert(fc.property(
    fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f')), fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f')), fc.array(fc.constantFrom('a', 'b', 'c')),
    (learned, listed, deleted) => {
      const r = new SessionRegistry({ clock: systemClock, tombstoneMs: 60_000 });
      for (const x of learned) r.learn(x);
      for (const x of deleted) r.forget(x);
      r.reconcile(listed, systemClock.monotonic() + 1);
      const want = new Set(listed.filter((x) => !(deleted as string[]).includes(x)));
      assert.deepEqual(new Set(r.ids()), want);
      assert.equal(r.count(), want.size);
    },
  ));
});
