import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalPod, LocalPods } from './pods.js';
import type { Child } from './children.js';

const child = { exited: new Promise<number>(() => undefined) } as unknown as Child;
function pod(name: string, sessions: number, createdAgoMs: number, o: Partial<LocalPod> = {}): LocalPod {
  const p = new LocalPod(0, name, name, { ng: 1, control: 2, upstream: 3 }, child);
  Object.assign(p, { state: 'serving', sessions, createdAt: Date.now() - createdAgoMs, ...o });
  return p;
}

test('scale-in removes the pod a ReplicaSet would: lowest pod-deletion-cost (bucketed sessions), then the newest', () => {
  const pods = new LocalPods({} as never);
  pods.pods.push(pod('a', 40, 3000), pod('b', 9, 2000), pod('c', 12, 1000));
  // b (9 → bucket 8) and c (12 → bucket 8) cost the same: the newer one (c) goes first.
  assert.equal(pods.victim()!.name, 'c');
  pods.pods.push(pod('d', 0, 5000));
  assert.equal(pods.victim()!.name, 'd', 'an idle pod costs 0');
  pods.pods.find((p) => p.name === 'd')!.terminating = true;
  assert.equal(pods.victim()!.name, 'c', 'a pod already being deleted is not a replica');
  assert.equal(pod('e', 100, 0, { state: 'draining' }).deletionCost(), -2147483648, 'a draining pod costs the minimum');
});
