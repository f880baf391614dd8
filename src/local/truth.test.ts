import { test } from 'node:test';
import assert from 'node:assert/strict';
import { counterStep } from './truth.js';

test('counterStep: growth, a stall (a party did not grow), a restart with a restored call (a counter went back) re-baselines', () => {
  assert.equal(counterStep(undefined, [5, 5]), 'first');
  assert.equal(counterStep([5], [6, 6]), 'first');
  assert.equal(counterStep([5, 5], [55, 54]), 'grew');
  assert.equal(counterStep([5, 5], [55, 5]), 'stall');
  assert.equal(counterStep([5, 5], [5, 5]), 'stall');
  assert.equal(counterStep([1083, 1083], [40, 39]), 'reset');
  assert.equal(counterStep([1083, 1083], [1100, 39]), 'reset');
});
