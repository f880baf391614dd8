// Identity decisions and network-status parsing (pure parts; the API path is in test/e2e/kube-allocator.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { identityProblem, addressFromNetworkStatus, NETWORK_STATUS } from './identity.js';
import { isCoded } from '../errors.js';
import type { Pod } from '../kube/client.js';

const pod = (o: { uid?: string; node?: string; phase?: string; status?: string } = {}): Pod => ({
  metadata: { namespace: 'v', name: 'p', uid: o.uid ?? 'u1', annotations: (o.status ? { [NETWORK_STATUS]: o.status } : {}) as Record<string, string> },
  spec: { nodeName: o.node ?? 'n1', containers: [] }, status: { phase: o.phase ?? 'Running' },
});
const claim = { namespace: 'v', name: 'p', uid: 'u1' };

test('identityProblem names the reason', () => {
  assert.equal(identityProblem(claim, pod(), 'n1'), undefined);
  assert.match(identityProblem(claim, undefined, 'n1')!, /does not exist/);
  assert.match(identityProblem(claim, pod({ uid: 'u2' }), 'n1')!, /has UID u2, not u1/);
  assert.match(identityProblem(claim, pod({ node: 'n2' }), 'n1')!, /runs on node n2, this allocator serves node n1/);
  assert.match(identityProblem(claim, pod({ phase: 'Succeeded' }), 'n1')!, /finished/);
});

test('network-status: non-default entry on the interface, family filter, coded errors', () => {
  const status = JSON.stringify([{ name: 'k8s-pod-network', interface: 'net1', ips: ['10.244.0.5'], default: true },
    { name: 'voice/media', interface: 'net1', ips: ['fd00::7', '10.20.0.42'] }]);
  assert.equal(addressFromNetworkStatus(pod({ status }), 'net1', 4).ip, '10.20.0.42');
  assert.equal(addressFromNetworkStatus(pod({ status }), 'net1', 6).ip, 'fd00::7');
  assert.throws(() => addressFromNetworkStatus(pod({ status }), 'net2'), (e) => isCoded(e, 'ALLOC_NO_CNI_ADDRESS'));
  assert.throws(() => addressFromNetworkStatus(pod(), 'net1'), (e) => isCoded(e, 'ALLOC_NO_CNI_ADDRESS'));
  assert.throws(() => addressFromNetworkStatus(pod({ status: '{' }), 'net1'), (e) => isCoded(e, 'ALLOC_INVALID_ARGUMENT'));
});
