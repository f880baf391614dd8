import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplyCache } from './reply-cache.js';
import { systemClock } from '../clock.js';

test('get returns what set stored, keyed by the whole key', () => {
  const c = new ReplyCache({ clock: systemClock });
  c.set('127.0.0.1 5060 k1', Buffer.from('k1 d6:result4:ponge'));
  assert.equal(c.get('127.0.0.1 5060 k1')?.toString(), 'k1 d6:result4:ponge');
  assert.equal(c.get('127.0.0.1 5061 k1'), undefined, 'another source port is another sender');
  assert.equal(c.get('127.0.0.2 5060 k1'), undefined);
  assert.equal(c.size, 1);
});

test('entries survive one generation and are gone after two', async () => {
  const c = new ReplyCache({ clock: systemClock, ttlMs: 40 });
  c.set('a', Buffer.from('x'));
  await new Promise((r) => setTimeout(r, 50));
  c.set('b', Buffer.from('y')); // the generation timer rotated at 40 ms: 'a' is in the previous generation
  assert.equal(c.get('a')?.toString(), 'x');
  await new Promise((r) => setTimeout(r, 45));
  assert.equal(c.get('b')?.toString(), 'y', 'still within its second generation');
  assert.equal(c.get('a'), undefined);
  await new Promise((r) => setTimeout(r, 90));
  assert.equal(c.get('b'), undefined);
  assert.equal(c.size, 0);
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

test('close stops the generation timer and empties the cache', async () => {
  const c = new ReplyCache({ clock: systemClock, ttlMs: 20 });
  c.set('a', Buffer.from('x'));
  c.close();
  assert.equal(c.size, 0);
  c.set('b', Buffer.from('y'));
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(c.get('b')?.toString(), 'y', 'no rotation after close');
});
