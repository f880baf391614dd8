import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplyCache } from './reply-cache.js';
import { systemClock, type Clock } from '../clock.js';

/** A clock whose interval timers run when the test says (`rotate()`), never on their own. */
function steppedClock(): Clock & { rotate(): void; timers: number } {
  const fns = new Set<() => void>();
  return {
    now: () => 0, monotonic: () => 0, sleep: async () => {},
    setTimeout: () => ({ cancel() {} }),
    setInterval(fn) { fns.add(fn); return { cancel: () => { fns.delete(fn); } }; },
    rotate() { for (const fn of [...fns]) fn(); },
    get timers() { return fns.size; },
  };
}

test('get returns what set stored, keyed by the whole key', () => {
  const c = new ReplyCache({ clock: systemClock });
  c.set('127.0.0.1 5060 k1', Buffer.from('k1 d6:result4:ponge'));
  assert.equal(c.get('127.0.0.1 5060 k1')?.toString(), 'k1 d6:result4:ponge');
  assert.equal(c.get('127.0.0.1 5061 k1'), undefined, 'another source port is another sender');
  assert.equal(c.get('127.0.0.2 5060 k1'), undefined);
  assert.equal(c.size, 1);
});

test('entries survive one generation and are gone after two', () => {
  const clock = steppedClock();
  const c = new ReplyCache({ clock, ttlMs: 40 });
  c.set('a', Buffer.from('x'));
  clock.rotate();
  c.set('b', Buffer.from('y')); // 'a' is in the previous generation now
  assert.equal(c.get('a')?.toString(), 'x');
  clock.rotate();
  assert.equal(c.get('b')?.toString(), 'y', 'still within its second generation');
  assert.equal(c.get('a'), undefined);
  clock.rotate();
  assert.equal(c.get('b'), undefined);
  assert.equal(c.size, 0);
  assert.ok(c.bytes > 0, 'the slabs are kept for reuse while traffic may come back');
  clock.rotate(); // a rotation with both generations empty: idle, the slabs are given back
  assert.equal(c.bytes, 0);
});

test('memory bound: total bytes never exceed maxBytes', () => {
  const max = 64 * 1024;
  const c = new ReplyCache({ clock: systemClock, maxBytes: max });
  const reply = Buffer.alloc(1000, 0x61);
  for (let i = 0; i < 1000; i++) {
    c.set(`10.0.0.1 5060 cookie_${i}`, reply);
    assert.ok(c.bytes <= max, `bytes ${c.bytes} > ${max} after ${i}`);
  }
  assert.ok(c.evictions > 0);
  assert.equal(c.get('10.0.0.1 5060 cookie_999')?.length, 1000, 'the newest entry is kept');
  assert.equal(c.get('10.0.0.1 5060 cookie_0'), undefined, 'the oldest went');
});

test('a reply larger than half the bound is not cached', () => {
  const c = new ReplyCache({ clock: systemClock, maxBytes: 64 * 1024 });
  c.set('big', Buffer.alloc(40 * 1024));
  assert.equal(c.get('big'), undefined);
  assert.equal(c.bytes, 0);
});

test('close stops the generation timer and empties the cache', () => {
  const clock = steppedClock();
  const c = new ReplyCache({ clock, ttlMs: 20 });
  c.set('a', Buffer.from('x'));
  assert.equal(clock.timers, 1);
  c.close();
  assert.equal(clock.timers, 0, 'the generation timer is cancelled');
  assert.equal(c.size, 0);
});

test('agrees with a Map on 20,000 keys, overwrites and near-identical keys included', () => {
  const c = new ReplyCache({ clock: systemClock, maxBytes: 64 * 1024 * 1024 });
  const model = new Map<string, string>();
  for (let i = 0; i < 20_000; i++) {
    // Keys that differ in one character, IPv6 sources, and every 7th key written twice.
    const key = i % 3 ? `10.0.${i % 251}.1 ${5060 + (i % 7)} 1234_${i}` : `fd00::${(i % 4096).toString(16)} 5060 1234_${i}`;
    const reply = `1234_${i} d6:result2:ok4:callx${i}e`;
    c.set(key, Buffer.from(reply, 'latin1'));
    model.set(key, reply);
    if (i % 7 === 0) {
      c.set(key, Buffer.from(`${reply}-again`, 'latin1'));
      model.set(key, `${reply}-again`);
    }
  }
  assert.equal(c.size, model.size);
  for (const [k, v] of model) assert.equal(c.get(k)?.toString('latin1'), v, k);
  assert.equal(c.get('10.0.1.1 5061 1234_1x'), undefined);
  assert.equal(c.get('10.0.1.1 5061 1234_'), undefined);
  assert.equal(c.evictions, 0);
});

test('a reply handed out is a copy: intact after its generation rotated out and the slab was reused', () => {
  const clock = steppedClock();
  const c = new ReplyCache({ clock, ttlMs: 20, maxBytes: 64 * 1024 });
  c.set('a', Buffer.from('first reply'));
  const view = c.get('a')!;
  c.set('b', Buffer.from('keeps the slabs in use'));
  clock.rotate();
  clock.rotate(); // two rotations: 'a' is gone, its slab is the current generation's again
  for (let i = 0; i < 200; i++) c.set(`k${i}`, Buffer.alloc(100, 0x7a)); // new generations fill up
  assert.equal(c.get('a'), undefined);
  assert.equal(view.toString(), 'first reply');
});

test('a key that is not latin1 is not cached (the proxy never builds one)', () => {
  const c = new ReplyCache({ clock: systemClock });
  c.set('10.0.0.1 5060 k€', Buffer.from('x'));
  assert.equal(c.get('10.0.0.1 5060 k€'), undefined);
  assert.equal(c.size, 0);
});
