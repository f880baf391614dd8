import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatHostPort, parseHostPort, parseListen } from './host-port.js';

test('host:port: IPv4, bracketed IPv6, names; malformed → undefined; PORT alone only for listen addresses', () => {
  assert.deepEqual(parseHostPort('10.0.0.1:22222'), { host: '10.0.0.1', port: 22222 });
  assert.deepEqual(parseHostPort(' [::1]:2223 '), { host: '::1', port: 2223 });
  assert.deepEqual(parseHostPort('localhost:0'), { host: 'localhost', port: 0 });
  for (const bad of ['10.0.0.1', '::1:2223', '10.0.0.1:70000', ':80', 'a:b', '']) assert.equal(parseHostPort(bad), undefined, bad);
  assert.deepEqual(parseListen('9451'), { host: '127.0.0.1', port: 9451 });
  assert.deepEqual(parseListen('0.0.0.0:9451'), { host: '0.0.0.0', port: 9451 });
  assert.equal(parseListen('99999'), undefined);
  assert.equal(formatHostPort('::1', 5), '[::1]:5');
  assert.equal(formatHostPort('127.0.0.1', 5), '127.0.0.1:5');
});
