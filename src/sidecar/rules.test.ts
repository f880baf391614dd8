import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chainName, chainRules, existingJumps, jumpSpec, renderApply, renderRemove } from './rules.js';

const spec = { table: 7, addresses: ['10.20.0.5', '2001:db8::5'], portMin: 30000, portMax: 39999 };

test('production rule text is exactly the mr11 RTPENGINE rule for this table and media IP', () => {
  assert.deepEqual(chainRules(spec, 'ipv4'), ['-A RTPE-K8S-T7 -d 10.20.0.5/32 -p udp -m udp --dport 30000:39999 -j RTPENGINE --id 7']);
  assert.deepEqual(chainRules(spec, 'ipv6'), ['-A RTPE-K8S-T7 -d 2001:db8::5/128 -p udp -m udp --dport 30000:39999 -j RTPENGINE --id 7']);
});

test('apply text flushes only our chain, inserts one jump, and replaces old jumps in one COMMIT', () => {
  const save = [
    '*filter', ':INPUT ACCEPT [0:0]', ':RTPE-K8S-T7 - [0:0]', ':RTPE-K8S-T70 - [0:0]',
    '-A INPUT -p udp -m comment --comment "rtpengine-k8s table 7" -j RTPE-K8S-T7',
    '-A INPUT -p udp -m comment --comment "rtpengine-k8s table 70" -j RTPE-K8S-T70',
    '-A INPUT -j RTPE-K8S-T7', 'COMMIT',
  ].join('\n');
  assert.deepEqual(existingJumps(save, 'RTPE-K8S-T7'), ['-p udp -m comment --comment "rtpengine-k8s table 7" -j RTPE-K8S-T7', '-j RTPE-K8S-T7']);
  assert.equal(renderApply(spec, 'ipv4', save), [
    '*filter',
    ':RTPE-K8S-T7 - [0:0]',
    '-A RTPE-K8S-T7 -d 10.20.0.5/32 -p udp -m udp --dport 30000:39999 -j RTPENGINE --id 7',
    '-D INPUT -p udp -m comment --comment "rtpengine-k8s table 7" -j RTPE-K8S-T7',
    '-D INPUT -j RTPE-K8S-T7',
    '-I INPUT 1 -p udp -m comment --comment "rtpengine-k8s table 7" -j RTPE-K8S-T7',
    'COMMIT', '',
  ].join('\n'));
});

test('remove text deletes jumps then our chain, and is empty when nothing of ours exists', () => {
  const save = `*filter\n:INPUT ACCEPT [0:0]\n:RTPE-K8S-T7 - [0:0]\n-A INPUT ${jumpSpec(7)}\nCOMMIT\n`;
  assert.equal(renderRemove(7, save), `*filter\n-D INPUT ${jumpSpec(7)}\n:RTPE-K8S-T7 - [0:0]\n-X RTPE-K8S-T7\nCOMMIT\n`);
  assert.equal(renderRemove(7, '*filter\n:INPUT ACCEPT [0:0]\n:OTHER - [0:0]\nCOMMIT\n'), '');
});

test('chain names stay within the 28-character iptables limit for every table', () => {
  for (let t = 0; t < 64; t++) assert.ok(chainName(t).length <= 28);
});

test('a substituted target (module absent) changes only the jump', () => {
  assert.deepEqual(chainRules({ ...spec, target: 'ACCEPT' }, 'ipv4'), ['-A RTPE-K8S-T7 -d 10.20.0.5/32 -p udp -m udp --dport 30000:39999 -j ACCEPT']);
});
