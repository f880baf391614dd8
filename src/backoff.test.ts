import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoff } from './backoff.js';

test('backoff: doubles from the first delay to the cap; spread ±20 %, full 0..delay, none exact', () => {
  const p = { initialDelayMs: 100, maxDelayMs: 1000 };
  assert.deepEqual([1, 2, 3, 4, 5, 9].map((a) => backoff(a, { ...p, jitter: 'none' })), [100, 200, 400, 800, 1000, 1000]);
  assert.deepEqual([0, 0.5, 1].map((r) => backoff(3, p, () => r)), [320, 400, 480], 'spread is the default');
  assert.deepEqual([0, 0.25, 1].map((r) => backoff(3, { ...p, jitter: 'full' }, () => r)), [0, 100, 400]);
  // The IPPool conflict retry: jitterMs·min(16, 2^(attempt−1)), as before the merge.
  const ippool = (a: number, r: number) => backoff(a, { initialDelayMs: 10, maxDelayMs: 160, jitter: 'full' }, () => r);
  assert.deepEqual([1, 5, 6, 20].map((a) => ippool(a, 1)), [10, 160, 160, 160]);
  assert.equal(backoff(0, { ...p, jitter: 'none' }), 100, 'attempt 0 counts as the first');
});
