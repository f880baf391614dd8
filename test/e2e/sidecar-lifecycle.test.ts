// End-to-end sidecar lifecycle in a network namespace this test creates: the scenario itself
// (sidecar-lifecycle.netns.ts) runs as a child inside the namespace, so rtpengine, the proxy, the
// allocator, the API stand-in, iptables and the media address all live there and nowhere else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { withNetns } from '../support/netns.js';
import { requires } from '../support/require.js';

const need = requires('rtpengine', 'netns', 'iptables-restore', 'arping');

test('exec mode: Acquire → rtpengine with table and media IP → call → kill -9 + restart → SIGTERM drain → exit 0, released, clean', { skip: need, timeout: 240_000 }, async () => {
  await withNetns(async (ns) => {
    ns.sh('ip', 'link', 'add', 'media0', 'type', 'veth', 'peer', 'name', 'media0p');
    ns.sh('ip', 'link', 'set', 'media0', 'up');
    ns.sh('ip', 'link', 'set', 'media0p', 'up');
    const foreign = '*filter\n:SOMEONE-ELSE - [0:0]\n-A SOMEONE-ELSE -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -j SOMEONE-ELSE\nCOMMIT\n';
    await ns.runner.run('iptables-restore', ['--noflush'], { input: foreign });
    // The child is a test run of its own, not a subtest of this one.
    const env: Record<string, string | undefined> = { ...process.env, RTPE_K8S_NETNS: ns.name };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '--import', 'tsx', '--test', '--test-reporter=spec', 'test/e2e/sidecar-lifecycle.netns.ts'],
      { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { out += c; });
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    assert.equal(code, 0, out.slice(-8000));
    assert.match(out, /pass 1/, out.slice(-2000));
    const after = ns.sh('iptables-save', '-t', 'filter');
    assert.ok(!after.includes('RTPE-K8S'), after);
    assert.ok(after.includes('-A SOMEONE-ELSE -p tcp -m tcp --dport 22 -j ACCEPT') && after.includes('-A INPUT -j SOMEONE-ELSE'), after);
  });
});
