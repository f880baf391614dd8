import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTableRange, pickTable, freeTables } from './tables.js';
import { isCoded } from '../errors.js';

const none = new Set<number>();

test('tables: range parsing stays inside 0-63', () => {
  assert.deepEqual(parseTableRange('0-63'), { min: 0, max: 63 });
  assert.deepEqual(parseTableRange(' 8 - 15 '), { min: 8, max: 15 });
  assert.deepEqual(parseTableRange('5'), { min: 5, max: 5 });
  for (const bad of ['0-64', '10-3', 'a-b', '', '-1-3']) {
    assert.throws(() => parseTableRange(bad), (e) => isCoded(e, 'ALLOC_INVALID_ARGUMENT') && /table-range/.test(e.message), bad);
  }
});

test('tables: never-released first (lowest ID), then least recently released', () => {
  const range = { min: 0, max: 3 };
  assert.equal(pickTable({ range, held: none, inKernel: none, foreign: none, releasedAt: {} }), 0);
  assert.equal(pickTable({ range, held: none, inKernel: none, foreign: none, releasedAt: { 0: 100 } }), 1);
  assert.equal(pickTable({ range, held: new Set([1, 2, 3]), inKernel: none, foreign: none, releasedAt: { 0: 100 } }), 0);
  const releasedAt = { 0: 300, 1: 100, 2: 200, 3: 400 };
  assert.equal(pickTable({ range, held: none, inKernel: none, foreign: none, releasedAt }), 1);
  assert.equal(pickTable({ range, held: new Set([1]), inKernel: none, foreign: none, releasedAt }), 2);
});

test('tables: IDs listed in /proc/rtpengine or claimed elsewhere are never picked', () => {
  const range = { min: 0, max: 2 };
  assert.equal(pickTable({ range, held: none, inKernel: new Set([0]), foreign: new Set([1]), releasedAt: {} }), 2);
  assert.equal(pickTable({ range, held: new Set([2]), inKernel: new Set([0]), foreign: new Set([1]), releasedAt: {} }), undefined);
  assert.equal(freeTables({ range, held: new Set([2]), inKernel: new Set([0]), foreign: none }), 1);
});
