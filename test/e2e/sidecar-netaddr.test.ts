// The media address in a pod-like namespace joined by a veth pair to a "router" namespace (both
// created here): add, announce (the router learns the MAC without asking), verify, remove.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createNetns, type Netns } from '../support/netns.js';
import { requires } from '../support/require.js';
import { createLogger, silentLogger } from '../../src/log.js';
import type { Runner } from '../../src/exec.js';
import { systemClock } from '../../src/clock.js';
import { MediaAddressManager, findAddress } from '../../src/sidecar/netaddr.js';

const need = requires('netns', 'arping', 'sysctl');

function neighbours(ns: Netns, dev: string): Array<{ dst: string; lladdr?: string }> {
  return JSON.parse(ns.sh('ip', '-j', 'neigh', 'show', 'dev', dev) || '[]');
}
/** Runs binaries in the namespace the way an unprivileged container sees /proc/sys: read-only
 *  (runc mounts it so for every non-privileged container, NET_ADMIN or not). Records each call. */
function containerRunner(ns: Netns, calls: string[][]): Runner {
  return {
    run: (binary, args, opts) => {
      calls.push([binary, ...args]);
      return ns.runner.run('unshare', ['--mount', '--', 'sh', '-c',
        'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$@"', 'sh', binary, ...args], opts);
    },
  };
}

async function until<T>(fn: () => T | undefined, ms = 4000): Promise<T | undefined> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('reserved mode adds, announces (ARP and NA reach the router) and removes the media address', { skip: need }, async () => {
  const pod = createNetns('rtpe-pod');
  const router = createNetns('rtpe-rtr');
  try {
    pod.sh('ip', 'link', 'add', 'media0', 'type', 'veth', 'peer', 'name', 'up0', 'netns', router.name);
    pod.sh('ip', 'link', 'set', 'media0', 'up');
    router.sh('ip', 'link', 'set', 'up0', 'up');
    router.sh('ip', 'addr', 'add', '10.77.0.1/24', 'dev', 'up0');
    router.sh('ip', 'addr', 'add', 'fd77::1/64', 'dev', 'up0', 'nodad');
    // The router accepts unsolicited announcements into its neighbour table (so we can see them).
    router.sh('sysctl', '-q', '-w', 'net.ipv4.conf.up0.arp_accept=1');
    router.sh('sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1');
    router.sh('sysctl', '-q', '-w', 'net.ipv6.conf.up0.accept_untracked_na=1');
    const podMac = JSON.parse(pod.sh('ip', '-j', 'link', 'show', 'media0'))[0].address as string;

    // What the pod's securityContext.sysctls set when the sandbox is made (chart value
    // sidecar.ipv6NdiscNotify): the sidecar itself cannot write /proc/sys in its container.
    pod.sh('sysctl', '-q', '-w', 'net.ipv6.conf.all.ndisc_notify=1');
    const calls: string[][] = [];
    const mgr = new MediaAddressManager({ runner: containerRunner(pod, calls), log: silentLogger, clock: systemClock }, 'reserved', 'media0');
    const v4 = { ip: '10.77.0.5', prefixLength: 24 };
    const v6 = { ip: 'fd77::5', prefixLength: 64 };
    assert.deepEqual(await mgr.ensure(v4), { action: 'added' });
    assert.deepEqual(await mgr.ensure(v4), { action: 'present' }, 'a restarted sidecar finds its address and keeps it');
    assert.ok(await findAddress(pod.runner, 'media0', '10.77.0.5'));
    const arp = await until(() => neighbours(router, 'up0').find((n) => n.dst === '10.77.0.5'));
    assert.equal(arp?.lladdr, podMac, 'router learned the media IP from the gratuitous ARP');

    assert.deepEqual(await mgr.ensure(v6), { action: 'added' });
    const a6 = await findAddress(pod.runner, 'media0', 'fd77::5');
    assert.ok(a6 && !a6.tentative, 'IPv6 address finished DAD before ensure() returned');
    const na = await until(() => neighbours(router, 'up0').find((n) => n.dst === 'fd77::5'));
    assert.equal(na?.lladdr, podMac, 'router learned the media IP from the unsolicited NA');

    assert.equal(await mgr.remove(v4), true);
    assert.equal(await mgr.remove(v6), true);
    assert.equal(await findAddress(pod.runner, 'media0', '10.77.0.5'), undefined);
    assert.equal(await findAddress(pod.runner, 'media0', 'fd77::5'), undefined);
  } finally {
    pod.delete();
    router.delete();
  }
});

test('IPv6 in an unprivileged container: ndisc_notify is read, never written; off → one warning naming the pod sysctl', { skip: need }, async () => {
  const pod = createNetns('rtpe-pod');
  try {
    pod.sh('ip', 'link', 'add', 'media0', 'type', 'veth', 'peer', 'name', 'up0');
    pod.sh('ip', 'link', 'set', 'media0', 'up');
    pod.sh('ip', 'link', 'set', 'up0', 'up');
    const calls: string[][] = [];
    const lines: any[] = [];
    const log = createLogger({ level: 'warn' }, { write: (s: string) => { lines.push(JSON.parse(s)); } });
    const mgr = new MediaAddressManager({ runner: containerRunner(pod, calls), log, clock: systemClock }, 'reserved', 'media0');
    assert.deepEqual(await mgr.ensure({ ip: 'fd78::5', prefixLength: 64 }), { action: 'added' });
    assert.deepEqual(await mgr.ensure({ ip: 'fd78::6', prefixLength: 64 }), { action: 'added' });
    assert.deepEqual(calls.filter((c) => c[0] === 'sysctl' && c.includes('-w')), [], 'no sysctl write: it always fails in a container');
    const warned = lines.filter((l) => /ndisc_notify/.test(l.msg));
    assert.equal(warned.length, 1, 'one warning per sidecar, not per address');
    assert.match(warned[0].msg, /securityContext\.sysctls/);
    assert.match(warned[0].msg, /sidecar\.ipv6NdiscNotify/);
    assert.deepEqual(warned[0].ndiscNotify, { all: '0', media0: '0' });
  } finally {
    pod.delete();
  }
});

test('cni mode only verifies, and never removes what the CNI assigned', { skip: requires('netns') }, async () => {
  const pod = createNetns('rtpe-pod');
  try {
    pod.sh('ip', 'link', 'add', 'net1', 'type', 'veth', 'peer', 'name', 'net1p');
    pod.sh('ip', 'link', 'set', 'net1', 'up');
    const mgr = new MediaAddressManager({ runner: pod.runner, log: silentLogger, clock: systemClock }, 'cni', 'net1');
    await assert.rejects(mgr.ensure({ ip: '10.88.0.7', prefixLength: 24 }), (e: any) => e.code === 'NET_ADDR_MISSING');
    pod.sh('ip', 'addr', 'add', '10.88.0.7/24', 'dev', 'net1');
    assert.deepEqual(await mgr.ensure({ ip: '10.88.0.7', prefixLength: 24 }), { action: 'verified' });
    assert.equal(await mgr.remove({ ip: '10.88.0.7', prefixLength: 24 }), false);
    assert.ok(await findAddress(pod.runner, 'net1', '10.88.0.7'));
  } finally {
    pod.delete();
  }
});

test('without NET_ADMIN-like success the failure is coded and explained', { skip: requires('netns') }, async () => {
  const pod = createNetns('rtpe-pod');
  try {
    const mgr = new MediaAddressManager({ runner: pod.runner, log: silentLogger, clock: systemClock }, 'reserved', 'nosuchdev');
    await assert.rejects(mgr.ensure({ ip: '10.88.0.8', prefixLength: 24 }), (e: any) => e.code === 'NET_ADDR_FAILED' && /nosuchdev/.test(e.message));
  } finally {
    pod.delete();
  }
});
