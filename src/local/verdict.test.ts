import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verdictOf, summarize, BYE_RACE_MS } from './verdict.js';
import type { CallRecord } from './media.js';

const call = (o: Partial<CallRecord> = {}): CallRecord => ({
  callId: 'c', phase: 'completed', invitedAt: 0, upAt: 100, byeAt: 10_100, endAt: 10_150, remote: { ip: '127.0.1.10', port: 30000 },
  sent: 500, received: 500, firstRxAt: 120, lastRxAt: 10_090, maxGapMs: 40, rtpe: { samples: 9, stalledAt: [], unknownAt: [] }, ...o,
});

test('dropped: set-up failed, BYE failed, media silent > 1 s before the BYE or in between; otherwise completed', () => {
  assert.equal(verdictOf(call()), 'completed');
  assert.equal(verdictOf(call({ phase: 'failed', upAt: undefined })), 'dropped-setup');
  assert.equal(verdictOf(call({ phase: 'bye-failed' })), 'dropped-bye');
  assert.equal(verdictOf(call({ lastRxAt: 9_000 })), 'dropped-media', 'last echo 1.1 s before the BYE');
  assert.equal(verdictOf(call({ lastRxAt: 9_200 })), 'completed', 'last echo 0.9 s before the BYE');
  assert.equal(verdictOf(call({ maxGapMs: 1_001 })), 'dropped-media', 'a 1 s gap in the middle');
  assert.equal(verdictOf(call({ received: 0, firstRxAt: undefined, lastRxAt: undefined })), 'dropped-media', 'no media at all');
  assert.equal(verdictOf(call({ phase: 'up', byeAt: undefined, endAt: undefined })), 'in-progress');
});

test("rtpengine's view: a stall or an unknown call while up drops it, unless the query may have crossed the BYE", () => {
  assert.equal(verdictOf(call({ rtpe: { samples: 9, stalledAt: [5_000], unknownAt: [] } })), 'dropped-media');
  assert.equal(verdictOf(call({ rtpe: { samples: 9, stalledAt: [], unknownAt: [5_000] } })), 'dropped-media');
  assert.equal(verdictOf(call({ rtpe: { samples: 9, stalledAt: [], unknownAt: [10_100 - BYE_RACE_MS + 1] } })), 'completed');
});

test('summary: failovers are counted apart and never as dropped; the cross-check says which source saw what', () => {
  const s = summarize({
    calls: [call(), call({ callId: 'f', phase: 'failed', upAt: undefined }), call({ callId: 'g', lastRxAt: 8_000 }), call({ callId: 'r', rtpe: { samples: 9, stalledAt: [4_000], unknownAt: [] } })],
    failovers: 7, pods: [], loopDelayMaxMs: 12,
  });
  assert.deepEqual([s.placed, s.completed, s.failed, s.failedOver, s.mediaDropped, s.dropped], [4, 1, 1, 7, 2, 3]);
  assert.deepEqual([s.crossCheck.endpointOnly, s.crossCheck.rtpengineOnly, s.crossCheck.both], [1, 1, 0]);
  assert.equal(s.worstMediaGapMs, 2_100);
});
