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

test('a control character in any value is refused with CONFIG_CONTROL_CHARACTERS, naming the option (no config line or iptables rule injected)', async () => {
  const { sidecarOptions } = await import('./sidecar/options.js');
  const { proxyOptions } = await import('./sidecar/proxy-options.js');
  const sidecar = { ...sidecarOptions, ...proxyOptions };
  const env = { POD_NAME: 'p', POD_NAMESPACE: 'n', POD_UID: 'u', NODE_NAME: 'node' };
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['--rtpengine-options', JSON.stringify({ timeout: '60\ninterface = evil/10.0.0.1' })], env, /--rtpengine-options .*U\+000A/],
    [['--rtpengine-options', JSON.stringify({ 'timeout\r': '60' })], env, /--rtpengine-options .*U\+000D/],
    [['--interface-name', 'pub\n[rtpengine]'], env, /--interface-name/],
    [['--iptables-target', 'RTPENGINE\n-A INPUT -j ACCEPT'], env, /--iptables-target/],
    [[], { ...env, POD_NAME: 'p\u0000' }, /--pod-name \(env POD_NAME\).*U\+0000/],
    [['--pools', 'a,b\u001b[2J'], env, /--pools/],
  ];
  for (const [argv, e, re] of cases) {
    assert.throws(() => parseOptions(sidecar, argv, e), (err) => {
      assert.ok(isCoded(err, 'CONFIG_CONTROL_CHARACTERS'), `${argv.join(' ')}: ${String(err)}`);
      assert.match((err.details.problems as string[]).join('\n'), re);
      return true;
    });
  }
  // Printable values still pass.
  assert.equal(parseOptions(sidecar, ['--interface-name', 'pub'], env).config.interfaceName, 'pub');
});

test('every option of every command refuses a line break (each reaches a file, a command line or a log)', async () => {
  const { commands } = await import('./commands.js');
  let checked = 0;
  for (const c of commands) {
    for (const [key, def] of Object.entries(c.options as Record<string, { kind: string; flag?: string }>)) {
      const flag = def.flag ?? key.replace(/[A-Z]/g, (x) => `-${x.toLowerCase()}`);
      const value = def.kind === 'json' ? JSON.stringify({ k: 'a\nb' }) : 'a\nb';
      assert.throws(() => parseOptions(c.options, [`--${flag}=${value}`], {}), (err) => isCoded(err, 'CONFIG_CONTROL_CHARACTERS'), `${c.name} --${flag}`);
      checked++;
    }
  }
  assert.ok(checked > 50, `only ${checked} options checked`);
});

test('renderers refuse a control character whatever its source: rtpengine.conf and iptables-restore text', async () => {
  const { renderConfig } = await import('./sidecar/rtpengine.js');
  const { renderApply } = await import('./sidecar/rules.js');
  assert.match(renderConfig([['interface', 'pub/10.0.0.5'], ['timeout', '60']]), /^interface = pub\/10\.0\.0\.5$/m);
  assert.throws(() => renderConfig([['interface', '10.0.0.5\n[rtpengine]\ntable = 7']]), (e) => isCoded(e, 'CONFIG_CONTROL_CHARACTERS'));
  assert.throws(() => renderConfig([['timeout', '60'], ['x\r', '1']]), (e) => isCoded(e, 'CONFIG_CONTROL_CHARACTERS'));
  const spec = { table: 3, addresses: ['10.0.0.5'], portMin: 30000, portMax: 39999, target: 'RTPENGINE' };
  assert.match(renderApply(spec, 'ipv4', ''), /-j RTPENGINE --id 3/);
  assert.throws(() => renderApply({ ...spec, addresses: ['10.0.0.5\n-A INPUT -j ACCEPT'] }, 'ipv4', ''), (e) => isCoded(e, 'CONFIG_CONTROL_CHARACTERS'));
  assert.throws(() => renderApply({ ...spec, target: 'ACCEPT\n-A INPUT -j ACCEPT' }, 'ipv4', ''), (e) => isCoded(e, 'CONFIG_CONTROL_CHARACTERS'));
});
