// `rtpengine-k8s ctl cleanup --yes` through the real CLI (what the chart's pre-delete hook runs):
// every IPPool entry and table Lease of the installation, any node, finalizers included, and the
// sweeper Lease are freed and printed; other writers' entries stay; without --yes nothing happens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubeTarget } from '../support/kube-target.js';
import { createKubeClient, type IPPool, type Pod } from '../../src/kube/client.js';
import { AllocatorService } from '../../src/allocator/service.js';
import { ProcKernel } from '../../src/allocator/kernel.js';
import { KubeStore } from '../../src/allocator/store-kube.js';
import { KubeReconciler } from '../../src/allocator/reconcile-kube.js';
import { NodeSweeper, SWEEPER_LEASE } from '../../src/allocator/sweeper.js';
import { ipPoolName, IPPoolWriter } from '../../src/allocator/ippool.js';
import { compilePool, type PoolConfig } from '../../src/allocator/pools.js';
import { systemClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { Exit, isCoded } from '../../src/errors.js';
import { ProcRtpengine } from '../support/proc-rtpengine.js';
import { cleanupKube, randomRange } from '../support/kube-cleanup.js';

const POOL_NS = 'kube-system';
const podRef = (p: Pod) => ({ namespace: p.metadata!.namespace!, name: p.metadata!.name!, uid: p.metadata!.uid! });
const cli = (args: string[], env: Record<string, string> = {}) => new Promise<{ code: number; out: string; err: string }>((ok) => {
  execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'ctl', 'cleanup', ...args], { cwd: process.cwd(), timeout: 60_000, env: { ...process.env, ...env } },
    (e, out, err) => ok({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out, err }));
});

test('ctl cleanup --yes frees every node\'s IPPool entries and Leases (finalizers included), prints them; without --yes nothing', async () => {
  const t = await kubeTarget();
  const pool: PoolConfig = { name: 'media', cidr: randomRange(24) };
  const span = compilePool(pool);
  const poolName = ipPoolName(span.range);
  const dir = mkdtempSync(join(tmpdir(), 'rtpe-cleanup-'));
  const procs: ProcRtpengine[] = [];
  const kube = createKubeClient(t.kubeconfig());
  const agents: Array<{ rec: KubeReconciler; service: AllocatorService; stop(): Promise<void> }> = [];
  const agent = async (node: string) => {
    const proc = new ProcRtpengine(); procs.push(proc);
    const store = new KubeStore({ kube, node, leaseNamespace: t.namespace, poolNamespace: POOL_NS, pools: [{ span }] });
    const service = await AllocatorService.open({ node, tableRange: { min: 0, max: 63 }, pools: [pool], leaseTtlMs: 0 },
      { store, kernel: new ProcKernel({ root: proc.root, fs: proc }), clock: systemClock, log: silentLogger });
    const rec = new KubeReconciler({ kube, node, service, store, resyncMs: 0, log: silentLogger });
    await rec.start();
    const a = { rec, service, stop: async () => { await rec.stop(); await service.drain(); } };
    agents.push(a);
    return a;
  };
  try {
    const pods: Pod[] = [];
    for (const [i, node] of [t.nodes[0]!, `${t.nodes[0]!}-2`].entries()) {
      const a = await agent(node);
      pods.push(await t.createPod({ name: `c${i}`, nodeName: node }));
      await a.rec.acquire({ pod: podRef(pods[i]!), pools: ['media'] });
    }
    // the second node's allocator stops; the first keeps running through the cleanup (uninstall race, review finding 6)
    await agents[1]!.stop();
    // whereabouts' own entry in the same pool, and a sweeper leader Lease
    await new IPPoolWriter(kube, POOL_NS).reserve(poolName, span.range, '200', { id: 'containerid-1', podref: 'other/pod', ifname: 'net1' });
    await new NodeSweeper({ kube, identity: t.nodes[0]!, leaseNamespace: t.namespace, poolNamespace: POOL_NS, pools: [], intervalMs: 0 }).lead();
    const kubeconfigFile = join(dir, 'kubeconfig');
    writeFileSync(kubeconfigFile, t.kubeconfig().exportConfig());
    const storeArgs = ['--store', 'kubernetes', '--kubeconfig', kubeconfigFile, '--lease-namespace', t.namespace, '--pool-namespace', POOL_NS, '--pools', JSON.stringify([pool])];
    const leases = async () => (await kube.listLeases(t.namespace, 'app.kubernetes.io/managed-by=rtpengine-k8s')).length;
    const ids = async () => Object.values(((await kube.getIPPool(POOL_NS, poolName)) as IPPool).spec.allocations ?? {}).map((e) => e.id).sort();
    assert.equal(await leases(), 3, 'two table Leases and the sweeper Lease');

    const refused = await cli(storeArgs);
    assert.equal(refused.code, Exit.USAGE);
    assert.match(refused.err, /--yes/);
    assert.equal(await leases(), 3, 'nothing freed without --yes');

    // exactly as the chart's pre-delete hook Job runs it: args `ctl cleanup --yes`, store options
    // in the environment (helm/…/cleanup-hook.yaml, allocatorStoreEnv)
    const done = await cli(['--yes'], {
      RTPE_K8S_STORE: 'kubernetes', RTPE_K8S_POOLS: JSON.stringify([pool]), RTPE_K8S_IP_MODE: 'reserve',
      RTPE_K8S_LEASE_NAMESPACE: t.namespace, RTPE_K8S_POOL_NAMESPACE: POOL_NS, RTPE_K8S_KUBECONFIG: kubeconfigFile,
    });
    assert.equal(done.code, 0, done.err);
    assert.equal(done.out.match(/^freed ippool-entry /gm)?.length, 2);
    assert.equal(done.out.match(/^freed lease rtpe-/gm)?.length, 2);
    assert.match(done.out, new RegExp(`^freed lease ${SWEEPER_LEASE} `, 'm'));
    assert.match(done.out, /cleanup: 2 IPPool entries and 3 Lease\(s\) freed/);
    assert.equal(await leases(), 0, 'Leases gone, finalizers and all');
    assert.deepEqual(await ids(), ['containerid-1'], 'whereabouts\' entry stays');

    // An allocator still running after the cleanup writes nothing more: a release re-creates no
    // release-times Lease, a new Acquire fails coded and leaves no Lease and no entry.
    const running = agents[0]!;
    assert.equal((await running.service.release({ uid: pods[0]!.metadata!.uid! }, 'test')).found, true);
    assert.equal(await leases(), 0, 'the release after cleanup wrote no Lease');
    const late = await running.rec.acquire({ pod: podRef(await t.createPod({ name: 'c-late', nodeName: t.nodes[0]! })), pools: ['media'] }).catch((e) => e);
    assert.ok(isCoded(late, 'ALLOC_UNINSTALLING'), String(late));
    assert.equal(await leases(), 0, 'the Acquire after cleanup rolled its Lease back');
    assert.deepEqual(await ids(), ['containerid-1'], 'and wrote no entry');
    await running.stop();

    // A new installation's allocator clears the mark at start and serves.
    const fresh = await agent(t.nodes[0]!);
    const again = await fresh.rec.acquire({ pod: podRef(await t.createPod({ name: 'c-new', nodeName: t.nodes[0]! })), pools: ['media'] });
    assert.equal(again.addresses.length, 1);
    await fresh.stop();
  } finally {
    for (const a of agents) await a.stop().catch(() => undefined);
    await cleanupKube(t.kubeconfig(), { poolNamespace: POOL_NS, pools: [poolName], leaseNamespace: t.namespace }).catch(() => undefined);
    await t.close();
    for (const p of procs) p.remove();
    rmSync(dir, { recursive: true, force: true });
  }
});
