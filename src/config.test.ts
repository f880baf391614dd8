import { test } from 'node:test';
import assert from 'node:assert/strict';
import { opt, parseOptions, describeOptions } from './config.js';
import { isCoded } from './errors.js';

const set = {
  socket: opt.string('allocator socket', '/run/x.sock'),
  tableMin: opt.int('lowest table', 0, { min: 0, max: 63 }),
  requireKernel: opt.bool('fail without the module'),
  pools: opt.list('pool names'),
  podName: opt.string('pod name', undefined, { env: 'POD_NAME' }),
};

test('flags override env, env overrides defaults, types are coerced', () => {
  const { config, positionals } = parseOptions(set, ['--table-min', '5', '--require-kernel', 'extra', '--pools=a, b'], { POD_NAME: 'p1', RTPE_K8S_TABLE_MIN: '3', RTPE_K8S_SOCKET: '/tmp/s' });
  assert.deepEqual(config, { socket: '/tmp/s', tableMin: 5, requireKernel: true, pools: ['a', 'b'], podName: 'p1' });
  assert.deepEqual(positionals, ['extra']);
});

test('--no-flag turns a boolean off', () => {
  const { config } = parseOptions(set, ['--no-require-kernel'], { POD_NAME: 'p', RTPE_K8S_REQUIRE_KERNEL: 'true' });
  assert.equal(config.requireKernel, false);
});

test('every problem is listed at once, with the flag and env names', () => {
  try {
    parseOptions(set, ['--table-min', '99', '--bogus', '1'], {});
    assert.fail('should throw');
  } catch (e) {
    assert.ok(isCoded(e, 'CONFIG_INVALID'));
    const problems = e.details.problems as string[];
    assert.equal(problems.length, 3, problems.join('\n'));
    assert.match(problems.join('\n'), /unknown option --bogus/);
    assert.match(problems.join('\n'), /--table-min \(env RTPE_K8S_TABLE_MIN\).*99/);
    assert.match(problems.join('\n'), /--pod-name \(env POD_NAME\) is required/);
  }
});

test('describeOptions lists flag, env, default', () => {
  const rows = describeOptions(set);
  assert.deepEqual(rows[0], { flag: '--socket', env: 'RTPE_K8S_SOCKET', default: '/run/x.sock', help: 'allocator socket' });
  assert.equal(rows.find((r) => r.flag === '--pod-name')?.default, '(required)');
});
