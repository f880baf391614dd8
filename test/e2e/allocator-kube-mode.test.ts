// The `allocator --store kubernetes` wiring as the CLI builds it: parsed options → startAllocator →
// gRPC over a real unix socket, with the real client-node talking to the API stand-in (or a cluster).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubeTarget } from '../support/kube-target.js';
import { cleanupKube, randomRange } from '../support/kube-cleanup.js';
import { compilePool, ipFromOffset } from '../../src/allocator/pools.js';
import { ipPoolName } from '../../src/allocator/ippool.js';
import { kubernetesMode } from '../../src/allocator/reconcile-kube.js';
import { parseOptions } from '../../src/config.js';
import { allocatorOptions } from '../../src/allocator/options.js';
import { configFromOptions, startAllocator } from '../../src/allocator/allocator.js';
import { AllocatorClient } from '../../src/allocator/client.js';
import { leaseName } from '../../src/allocator/store-kube.js';
import { createKubeClient } from '../../src/kube/client.js';
import { CoreV1Api } from '../../src/kube/k8s.js';
import { silentLogger } from '../../src/log.js';
import { isCoded } from '../../src/errors.js';

test('allocator --store kubernetes: identity-checked Acquire records a Lease and an IPPool entry', async () => {
  const t = await kubeTarget();
  const dir = mkdtempSync(join(tmpdir(), 'rtpe-kmode-'));
  const range = randomRange(24);
  const span = compilePool({ name: 'media', cidr: range });
  try {
    const node = t.nodes[0]!;
    const kubeconfigFile = join(dir, 'kubeconfig');
    writeFileSync(kubeconfigFile, t.kubeconfig().exportConfig());
    const { config } = parseOptions(allocatorOptions, [
      '--store', 'kubernetes', '--kubeconfig', kubeconfigFile, '--socket', join(dir, 'alloc.sock'),
      '--lease-namespace', t.namespace, '--pools', JSON.stringify([{ name: 'media', cidr: range }]),
      '--proc-root', join(dir, 'no-proc'), '--lease-ttl', '0', '--operator-socket', join(dir, 'operator.sock'),
    ], { NODE_NAME: node });
    const cfg = configFromOptions(config);
    assert.equal(cfg.kubernetes?.leaseNamespace, t.namespace);
    assert.deepEqual(cfg.callerAuth, { audience: 'rtpengine-k8s-allocator' }, 'callers are authenticated by default in this mode');
    const alloc = await startAllocator(cfg, { log: silentLogger });
    // The sidecar's projected token (issue 14.4; test/e2e/allocator-auth.test.ts covers refusals).
    const tokenFile = join(dir, 'token');
    const client = new AllocatorClient({ socket: join(dir, 'alloc.sock'), tokenFile });
    try {
      const pod = await t.createPod({ name: 'rtpe-kmode', nodeName: node });
      const ref = { namespace: pod.metadata!.namespace!, name: pod.metadata!.name!, uid: pod.metadata!.uid! };
      const tr = await t.kubeconfig().makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({ name: 'default', namespace: ref.namespace,
        body: { spec: { audiences: ['rtpengine-k8s-allocator'], expirationSeconds: 600, boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: ref.name, uid: ref.uid } } } });
      writeFileSync(tokenFile, tr.status?.token ?? '');
      const a = await client.acquire({ pod: ref });
      assert.equal(a.node, node);
      assert.equal(a.addresses[0]!.ip, ipFromOffset(span, span.first));

      const kube = createKubeClient(t.kubeconfig());
      const lease = await kube.getLease(t.namespace, leaseName(node, a.table));
      assert.equal(lease?.spec?.holderIdentity, ref.uid);
      const pool = await kube.getIPPool('kube-system', ipPoolName(span.range));
      const entry = pool?.spec.allocations?.['1'];
      assert.ok(entry, 'whereabouts IPPool entry for offset 1');
      assert.match(entry.id, new RegExp(ref.uid));
      assert.equal(entry.podref, '');

      // Same pod again: same table and IP (idempotent per UID).
      const again = await client.acquire({ pod: ref });
      assert.equal(again.table, a.table);
      assert.equal(again.addresses[0]!.ip, a.addresses[0]!.ip);

      // A UID the API does not know is refused, naming why.
      await assert.rejects(client.acquire({ pod: { ...ref, uid: '00000000-0000-0000-0000-000000000000' } }),
        (e: unknown) => isCoded(e, 'ALLOC_PERMISSION_DENIED'));
    } finally {
      client.close();
      await alloc.close();
    }
  } finally {
    await cleanupKube(t.kubeconfig(), { poolNamespace: 'kube-system', pools: [ipPoolName(span.range)], leaseNamespace: t.namespace });
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kubernetesMode: lease TTL 0 unless configured for this mode (pod lifecycle decides)', () => {
  const base = { node: 'n', pools: [], leaseNamespace: 'x', poolNamespace: 'kube-system', ipMode: 'reserve' as const, networkStatusInterface: 'net1', resyncIntervalMs: 0 };
  const kube = {} as Parameters<typeof kubernetesMode>[2];
  assert.equal(kubernetesMode(base, silentLogger, kube).leaseTtlMs, 0);
  assert.equal(kubernetesMode({ ...base, leaseTtlMs: 90_000 }, silentLogger, kube).leaseTtlMs, 90_000);
});
