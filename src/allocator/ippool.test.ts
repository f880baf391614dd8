// IPPool naming (whereabouts' IPPoolName/normalizeRange) and our entry IDs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipPoolName, ourEntryId, parseOurEntryId, IPPoolWriter } from './ippool.js';
import { createKubeClient } from '../kube/client.js';
import { startKubeApiServer } from '../../test/support/kube-apiserver.js';
import { canonicalRange } from './pools.js';

test('IPPool names follow whereabouts: canonical range, trailing-colon 0, : and / to -, network prefix', () => {
  assert.equal(ipPoolName(canonicalRange('10.20.0.0/24')), '10.20.0.0-24');
  assert.equal(ipPoolName(canonicalRange('192.168.2.225/28')), '192.168.2.224-28');
  assert.equal(ipPoolName(canonicalRange('fd00:10::/64')), 'fd00-10---64');
  assert.equal(ipPoolName(canonicalRange('10.20.0.0/24'), 'media'), 'media-10.20.0.0-24');
  assert.equal(ipPoolName('fd00::'), 'fd00--0');
});

test('our entry ids round-trip and never look like a container id', () => {
  const id = ourEntryId('node.example.com', 'b7f1-uid');
  assert.deepEqual(parseOurEntryId(id), { node: 'node.example.com', uid: 'b7f1-uid' });
  assert.equal(parseOurEntryId('3f1ce9a0d1'), undefined);
});

test('reserve: whereabouts-style patch (resourceVersion test, empty-path test, add); a held offset is judged on a fresh read', async () => {
  const srv = await startKubeApiServer();
  try {
    const real = createKubeClient(srv.kubeconfig());
    const sent: unknown[][] = [];
    const kube = { ...real, patchIPPool: (ns: string, name: string, ops: unknown[]) => { sent.push(ops); return real.patchIPPool(ns, name, ops as any); } };
    const w = new IPPoolWriter(kube, 'kube-system', { jitterMs: 1 });
    const range = '10.9.0.0/24';
    const name = ipPoolName(range);
    assert.deepEqual(await w.reserve(name, range, '1', { id: 'a', podref: '' }), { ok: true });
    assert.equal(sent.length, 1);
    assert.deepEqual((sent[0] as any[]).map((o) => [o.op, o.path, o.value === null ? null : typeof o.value]),
      [['test', '/metadata/resourceVersion', 'string'], ['test', '/spec/allocations/1', null], ['add', '/spec/allocations/1', 'object']]);
    // the empty-path test alone refuses an add over an existing entry (422), as the API server does
    await assert.rejects(real.patchIPPool('kube-system', name, [{ op: 'test', path: '/spec/allocations/1', value: null }, { op: 'add', path: '/spec/allocations/1', value: { id: 'x', podref: '' } }]),
      (e: any) => e.details?.status === 422);
    // someone else takes 2 and frees 1 behind the writer's cache: verdicts come from a fresh read
    await real.patchIPPool('kube-system', name, [{ op: 'add', path: '/spec/allocations/2', value: { id: 'wb', podref: 'x/y' } }]);
    const r = await w.reserve(name, range, '2', { id: 'b', podref: '' });
    assert.deepEqual(r, { ok: false, holder: { id: 'wb', podref: 'x/y' } });
    await real.patchIPPool('kube-system', name, [{ op: 'remove', path: '/spec/allocations/2' }]);
    assert.deepEqual(await w.reserve(name, range, '2', { id: 'b', podref: '' }), { ok: true }, 'stale "held" verdict re-checked');
  } finally { await srv.close(); }
});
