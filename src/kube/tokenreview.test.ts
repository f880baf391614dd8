import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api } from './k8s.js';
import { TokenVerifier, kubeTokenReviewer, DEFAULT_TOKEN_AUDIENCE } from './tokenreview.js';
import { isCoded } from '../errors.js';
import { startKubeApiServer } from '../../test/support/kube-apiserver.js';

test('token verifier: pod identity from TokenReview; verdicts cached (bounded, TTL, never past exp), one review per token in flight; refusals coded', async () => {
  const srv = await startKubeApiServer();
  try {
    const kc = srv.kubeconfig();
    const core = kc.makeApiClient(CoreV1Api);
    const pods = Array.from({ length: 4 }, (_, i) => srv.store.addPod({ namespace: 'voice', name: `p${i}`, nodeName: 'n1' }));
    const mint = async (i: number, audience = DEFAULT_TOKEN_AUDIENCE, expirationSeconds = 600) => (await core.createNamespacedServiceAccountToken({
      name: 'default', namespace: 'voice', body: { spec: { audiences: [audience], expirationSeconds, boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pods[i]!.metadata.name, uid: pods[i]!.metadata.uid } } },
    })).status?.token ?? '';
    let now = Date.now();
    const v = new TokenVerifier(await kubeTokenReviewer(kc), { cacheTtlMs: 30_000, maxEntries: 2, now: () => now });
    const t0 = await mint(0);
    assert.deepEqual(await v.verifyHeader(`Bearer ${t0}`), { namespace: 'voice', serviceAccount: 'default', name: 'p0', uid: pods[0]!.metadata.uid });
    // Concurrent calls with one token share one review; then it is cached.
    const t1 = await mint(1);
    await Promise.all([v.verify(t1), v.verify(t1), v.verify(t1)]);
    assert.equal(v.reviews, 2);
    await v.verify(t1);
    assert.equal(v.reviews, 2, 'cached');
    // TTL: reviewed again after 30 s.
    now += 30_001;
    await v.verify(t1);
    assert.equal(v.reviews, 3);
    // Bounded: a third token evicts the oldest (t0 was the oldest entry) → t0 reviewed again.
    const t2 = await mint(2);
    await v.verify(t2);
    await v.verify(t0);
    assert.equal(v.reviews, 5);
    // Refusals: no header, not Bearer, another audience, a forged token, a deleted pod; none cached.
    const unauth = (re: RegExp) => (e: unknown) => isCoded(e, 'ALLOC_UNAUTHENTICATED') && re.test((e as Error).message);
    await assert.rejects(v.verifyHeader(undefined), unauth(/no authorization/));
    await assert.rejects(v.verifyHeader(`Basic ${t0}`), unauth(/Bearer/));
    await assert.rejects(v.verify(await mint(3, 'another')), unauth(/audience/));
    await assert.rejects(v.verify(`${t2.slice(0, -4)}AAAA`), unauth(/rejected by TokenReview/));
    const t3 = await mint(3);
    srv.store.delete('pods', 'voice', 'p3');
    await assert.rejects(v.verify(t3), unauth(/deleted/));
    const reviews = v.reviews;
    await assert.rejects(v.verify(t3), unauth(/deleted/));
    assert.equal(v.reviews, reviews + 1, 'a refusal is not cached');
  } finally { await srv.close(); }
});

test('token verifier: a verdict is never cached past the token\'s exp, and an expired token is refused by TokenReview (review 14/16 finding 5)', async () => {
  // One stepped clock for the API stand-in's token authority and the verifier.
  let now = Date.now();
  const srv = await startKubeApiServer({ tokenClock: () => now });
  try {
    const kc = srv.kubeconfig();
    const core = kc.makeApiClient(CoreV1Api);
    const pod = srv.store.addPod({ namespace: 'voice', name: 'p0', nodeName: 'n1' });
    const r = await core.createNamespacedServiceAccountToken({
      name: 'default', namespace: 'voice', body: { spec: { audiences: [DEFAULT_TOKEN_AUDIENCE], expirationSeconds: 600, boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'p0', uid: pod.metadata.uid } } },
    });
    const token = r.status?.token ?? '';
    const exp = Date.parse(String(r.status?.expirationTimestamp));
    // A cache TTL far beyond the token's life: only exp can end the cached verdict.
    const v = new TokenVerifier(await kubeTokenReviewer(kc), { cacheTtlMs: 24 * 3600_000, now: () => now });
    assert.equal((await v.verify(token)).uid, pod.metadata.uid);
    now = exp - 1000;
    assert.equal((await v.verify(token)).uid, pod.metadata.uid);
    assert.equal(v.reviews, 1, 'cached while the token is valid');
    now = exp + 1000;
    await assert.rejects(v.verify(token), (e) => isCoded(e, 'ALLOC_UNAUTHENTICATED') && /expired/.test((e as Error).message));
    assert.equal(v.reviews, 2, 'past exp: reviewed again (and refused), never answered from the cache');
    await assert.rejects(v.verify(token), (e) => isCoded(e, 'ALLOC_UNAUTHENTICATED'));
    assert.equal(v.reviews, 3, 'the refusal is not cached');
  } finally { await srv.close(); }
});
