// `npm run test:cluster`'s CRD step, run against the API stand-in as against a cluster (only
// KUBECONFIG): installs the CRDs of test/crds/ the cluster lacks, waits until Established, leaves
// existing ones alone, and `remove` deletes only what it installed. (The cluster run itself cannot
// happen here: no cluster is reachable.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKubeApiServer } from '../support/kube-apiserver.js';
import { needsStandIn } from '../support/kube-target.js';

const run = (verb: string, state: string, kubeconfig: string) => new Promise<{ code: number; out: string; err: string }>((ok) => {
  execFile(process.execPath, ['--import', 'tsx', 'scripts/test-cluster-crds.ts', verb, state], { cwd: process.cwd(), timeout: 60_000, env: { ...process.env, KUBECONFIG: kubeconfig } },
    (e, out, err) => ok({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out, err }));
});

test('test:cluster CRD step: installs the missing whereabouts/NAD CRDs, keeps existing ones, removes only its own', { skip: needsStandIn() }, async () => {
  const api = await startKubeApiServer();
  const dir = mkdtempSync(join(tmpdir(), 'rtpe-crds-'));
  try {
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, api.kubeconfig().exportConfig());
    // the cluster already has whereabouts' IPPool CRD (installed by whereabouts itself)
    api.store.create('customresourcedefinitions', { metadata: { name: 'ippools.whereabouts.cni.cncf.io' }, spec: { group: 'whereabouts.cni.cncf.io', scope: 'Namespaced', names: { kind: 'IPPool', plural: 'ippools' }, versions: [{ name: 'v1alpha1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object' } } }] } });
    const state = join(dir, 'state.json');
    const inst = await run('install', state, kubeconfig);
    assert.equal(inst.code, 0, inst.err);
    assert.match(inst.out, /ippools\.whereabouts\.cni\.cncf\.io: already installed/);
    const names = api.store.list('customresourcedefinitions').map((c) => c.metadata.name).sort();
    assert.deepEqual(names, ['ippools.whereabouts.cni.cncf.io', 'network-attachment-definitions.k8s.cni.cncf.io', 'nodeslicepools.whereabouts.cni.cncf.io', 'overlappingrangeipreservations.whereabouts.cni.cncf.io']);
    assert.ok(api.store.list('customresourcedefinitions').every((c) => c.status?.conditions?.some((x: any) => x.type === 'Established')));
    const rm = await run('remove', state, kubeconfig);
    assert.equal(rm.code, 0, rm.err);
    assert.deepEqual(api.store.list('customresourcedefinitions').map((c) => c.metadata.name), ['ippools.whereabouts.cni.cncf.io'], 'only what it installed is removed');
  } finally {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
