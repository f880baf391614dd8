import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processRunner, type Runner } from '../exec.js';
import { findAddress } from './netaddr.js';

// A real process in place of `ip`: a script printing what a broken or foreign iproute2 might print.
async function fakeIp(stdout: string): Promise<{ runner: Runner; close(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'netaddr-'));
  const script = join(dir, 'ip');
  await writeFile(script, `#!/bin/sh\nprintf '%s' '${stdout.replace(/'/g, `'\\''`)}'\n`);
  await chmod(script, 0o755);
  return {
    runner: { run: (bin, args, o) => processRunner.run(bin === 'ip' ? script : bin, args, o) },
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

test('unparseable `ip -j` output is a coded NET_ADDR_FAILED, not a SyntaxError', async () => {
  for (const out of ['Object "addr" is unknown, try "ip help".', '[{"ifname":"eth0","addr_info":[{', '{"not":"an array"}']) {
    const f = await fakeIp(out);
    try {
      await assert.rejects(findAddress(f.runner, 'eth0', '10.0.0.1'), (e: any) => {
        assert.equal(e.code, 'NET_ADDR_FAILED');
        assert.equal(e.exitCode, 71);
        assert.match(e.message, /eth0/);
        assert.match(e.message, /ip -j addr/);
        return true;
      });
    } finally {
      await f.close();
    }
  }
});

test('well-formed `ip -j` output still finds the address (and tolerates links without addr_info)', async () => {
  const f = await fakeIp(JSON.stringify([{ ifname: 'lo' }, { ifname: 'eth0', addr_info: [{ family: 'inet', local: '10.0.0.1', prefixlen: 24 }] }]));
  try {
    assert.deepEqual(await findAddress(f.runner, 'eth0', '10.0.0.1'), { family: 'inet', local: '10.0.0.1', prefixlen: 24 });
    assert.equal(await findAddress(f.runner, 'eth0', '10.0.0.2'), undefined);
  } finally {
    await f.close();
  }
});
