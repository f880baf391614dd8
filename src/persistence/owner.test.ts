import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, parseOwner, type Owner } from './owner.js';
import { parseRedisUrl, rtpengineRedisValue } from './resp.js';
import { parseOptions } from '../config.js';
import { persistenceOptions } from './options.js';
import { isCoded } from '../errors.js';

const self: Owner = { podUid: 'u1', pod: 'media/a', table: 4, ips: ['10.0.0.5', 'fd00::5'] };

test('decide: only this pod\'s calls on the same table and IPs are restored; everything else is refused', () => {
  assert.deepEqual(decide(self, undefined, []), { action: 'fresh' });
  assert.deepEqual(decide(self, { ...self, podUid: 'old' }, []), { action: 'fresh' }, 'an owner key without calls is no obstacle');
  assert.deepEqual(decide(self, { ...self, ips: ['fd00::5', '10.0.0.5'] }, ['c1']), { action: 'restore', callIds: ['c1'] }, 'IP order does not matter');
  assert.equal((decide(self, undefined, ['c1']) as { why: string }).why, 'unknown');
  assert.equal((decide(self, { ...self, podUid: 'u0' }, ['c1']) as { why: string }).why, 'other-pod');
  assert.equal((decide(self, { ...self, table: 5 }, ['c1']) as { why: string }).why, 'other-table-or-ip');
  assert.equal((decide(self, { ...self, ips: ['10.0.0.6', 'fd00::5'] }, ['c1']) as { why: string }).why, 'other-table-or-ip');
  assert.equal(parseOwner('not json'), undefined);
  assert.equal(parseOwner('{"podUid":"x"}'), undefined);
});

test('Redis URLs: parsed, rendered the way rtpengine spells --redis, bad ones refused at config parse', () => {
  assert.deepEqual(parseRedisUrl('redis://127.0.0.1:6379/3'), { host: '127.0.0.1', port: 6379, db: 3, password: undefined });
  assert.deepEqual(parseRedisUrl('redis://:s3cret@[::1]:6380/0'), { host: '::1', port: 6380, db: 0, password: 's3cret' });
  assert.equal(rtpengineRedisValue(parseRedisUrl('redis://:s3cret@[::1]:6380/0')!), 's3cret@[::1]:6380/0');
  assert.equal(rtpengineRedisValue(parseRedisUrl('redis://10.1.2.3:6379/12')!), '10.1.2.3:6379/12');
  for (const bad of ['127.0.0.1:6379/1', 'redis://127.0.0.1/1', 'redis://127.0.0.1:6379', 'redis://h:99999/1']) assert.equal(parseRedisUrl(bad), undefined, bad);
  assert.throws(() => parseOptions(persistenceOptions, ['--persistence-redis', 'redis://x:1'], {}), (e) => isCoded(e, 'CONFIG_INVALID'));
  assert.equal(parseOptions(persistenceOptions, [], {}).config.persistenceRedis, undefined);
});
