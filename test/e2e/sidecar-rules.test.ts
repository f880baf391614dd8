// Real iptables/ip6tables in a network namespace this test creates. The RTPENGINE target cannot
// load here (no xt_RTPENGINE module: "Extension RTPENGINE revision 0 not supported"), so the
// production rule text is asserted exactly in the unit test and here applied with `-j ACCEPT`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withNetns } from '../support/netns.js';
import { requires } from '../support/require.js';
import { silentLogger } from '../../src/log.js';
import { createIptables, detectBackend } from '../../src/sidecar/iptables.js';
import { ForwardingRules, chainRules } from '../../src/sidecar/rules.js';

const need = requires('netns', 'iptables-restore', 'ip6tables-restore');
const count = (save: string, needle: string) => save.split('\n').filter((l) => l.includes(needle)).length;

test('rules appear exactly once after repeated starts, foreign chains untouched, removed on exit (IPv4 + IPv6)', { skip: need }, async () => {
  await withNetns(async (ns) => {
    const decision = await detectBackend(ns.runner);
    assert.equal(decision.backend, 'nft', `Debian 12 default with an empty namespace: ${decision.reason}`);
    const ipt = createIptables(ns.runner, decision.backend);
    // Someone else's rules, before and after ours in INPUT, and their own chain.
    await ipt.restore('ipv4', '*filter\n:FOREIGN - [0:0]\n-A FOREIGN -p tcp --dport 22 -j ACCEPT\n-A INPUT -j FOREIGN\n-A INPUT -p icmp -j ACCEPT\nCOMMIT\n');
    await ipt.restore('ipv6', '*filter\n:FOREIGN6 - [0:0]\n-A FOREIGN6 -p tcp --dport 22 -j ACCEPT\n-A INPUT -j FOREIGN6\nCOMMIT\n');
    const before4 = await ipt.save('ipv4');
    const before6 = await ipt.save('ipv6');

    const spec = { table: 9, addresses: ['10.99.0.9', 'fd00:99::9'], portMin: 31000, portMax: 31999, target: 'ACCEPT' };
    for (let start = 0; start < 3; start++) {
      await new ForwardingRules(ipt, spec, silentLogger).apply();
    }
    const after4 = await ipt.save('ipv4');
    const after6 = await ipt.save('ipv6');
    assert.equal(count(after4, '-j RTPE-K8S-T9'), 1, after4);
    assert.equal(count(after4, ':RTPE-K8S-T9 '), 1, after4);
    assert.ok(after4.includes(chainRules(spec, 'ipv4')[0]!), after4);
    assert.equal(count(after4, '-A RTPE-K8S-T9 '), 1, after4);
    assert.equal(count(after6, '-A RTPE-K8S-T9 '), 1, after6);
    assert.ok(after6.includes('-A RTPE-K8S-T9 -d fd00:99::9/128 -p udp -m udp --dport 31000:31999 -j ACCEPT'), after6);
    // Our jump is first in INPUT; the foreign jump and rules are all still there.
    const input4 = after4.split('\n').filter((l) => l.startsWith('-A INPUT '));
    assert.match(input4[0]!, /-j RTPE-K8S-T9$/);
    assert.deepEqual(input4.slice(1), before4.split('\n').filter((l) => l.startsWith('-A INPUT ')));
    assert.ok(after4.includes('-A FOREIGN -p tcp -m tcp --dport 22 -j ACCEPT'), after4);
    assert.ok(after6.includes('-A FOREIGN6 -p tcp -m tcp --dport 22 -j ACCEPT'), after6);

    // A crash between jump and chain (someone left a stray duplicate jump): the next start dedupes.
    await ipt.restore('ipv4', '*filter\n-A INPUT -j RTPE-K8S-T9\nCOMMIT\n');
    await new ForwardingRules(ipt, spec, silentLogger).apply();
    assert.equal(count(await ipt.save('ipv4'), '-j RTPE-K8S-T9'), 1);

    // Exit: ours gone, theirs exactly as before (ignoring counters).
    const rules = new ForwardingRules(ipt, spec, silentLogger);
    await rules.remove();
    await rules.remove(); // idempotent
    const strip = (s: string) => s.split('\n').filter((l) => l.startsWith('-') || l.startsWith(':')).map((l) => l.replace(/\[\d+:\d+\]/, ''));
    assert.deepEqual(strip(await ipt.save('ipv4')), strip(before4));
    assert.deepEqual(strip(await ipt.save('ipv6')), strip(before6));
  });
});

test('the RTPENGINE target itself is refused without the kernel module (why the tests swap it)', { skip: need }, async () => {
  await withNetns(async (ns) => {
    const ipt = createIptables(ns.runner, 'nft');
    const rules = new ForwardingRules(ipt, { table: 3, addresses: ['10.99.0.3'], portMin: 30000, portMax: 30099 }, silentLogger);
    await assert.rejects(rules.apply(), (e: any) => e.code === 'RULES_APPLY_FAILED' && /RTPENGINE/.test(e.details.stderr));
    // The failed transaction left nothing behind: all or nothing.
    assert.equal(count(await ipt.save('ipv4'), 'RTPE-K8S-T3'), 0);
  });
});
