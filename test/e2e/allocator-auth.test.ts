// Kubernetes mode: callers are authenticated by their projected service-account token (TokenReview),
// and a pod may act only for itself (issue 14.4). Runs on the API stand-in (or a real cluster with
// KUBECONFIG: TokenRequest and TokenReview are real there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type V1Pod } from '../../src/kube/k8s.js';
import { startAllocator, type AllocatorConfig } from '../../src/allocator/allocator.js';
import { AllocatorClient } from '../../src/allocator/client.js';
import { createLogger } from '../../src/log.js';
import { isCoded } from '../../src/errors.js';
import { DEFAULT_TOKEN_AUDIENCE } from '../../src/kube/tokenreview.js';
import { kubeTarget, type KubeTarget } from '../support/kube-target.js';
import { cleanupKube } from '../support/kube-cleanup.js';
import { captureLog } from '../support/log-capture.js';

const run = promisify(execFile);

/** A pod-bound, audience-bound token as the kubelet projects it (TokenRequest, 600 s). */
async function podToken(t: KubeTarget, pod: V1Pod, audience = DEFAULT_TOKEN_AUDIENCE): Promise<string> {
  const core = t.kubeconfig().makeApiClient(CoreV1Api);
  const r = await core.createNamespacedServiceAccountToken({
    name: pod.spec?.serviceAccountName ?? 'default', namespace: pod.metadata!.namespace!,
    body: { spec: { audiences: [audience], expirationSeconds: 600, boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod.metadata!.name!, uid: pod.metadata!.uid! } } },
  });
  return r.status?.token ?? '';
}

const ref = (p: V1Pod) => ({ namespace: p.metadata!.namespace!, name: p.metadata!.name!, uid: p.metadata!.uid! });

test('kubernetes mode: a pod acts only for itself (token pod claims via TokenReview); no token / wrong audience refused; the token file is re-read per call; operator socket releases and is logged; verdicts cached (issue 14.4)', { timeout: 120_000 }, async () => {
  const t = await kubeTarget();
  const dir = mkdtempSync(join(tmpdir(), 'rtpe-auth-'));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, t.kubeconfig().exportConfig());
  const { log, lines } = captureLog();
  const config: AllocatorConfig = {
    node: t.nodes[0]!, socket: join(dir, 'alloc.sock'), tableRange: { min: 0, max: 63 }, pools: [], stateFile: join(dir, 'unused.json'),
    procRoot: join(dir, 'no-proc'), leaseTtlMs: 0, sweepIntervalMs: 1000,
    kubernetes: { kubeconfig, leaseNamespace: t.namespace, poolNamespace: 'kube-system', ipMode: 'reserve', networkStatusInterface: 'net1', resyncIntervalMs: 0 },
    callerAuth: { audience: DEFAULT_TOKEN_AUDIENCE },
    operatorSocket: join(dir, 'operator', 'operator.sock'),
  };
  const h = await startAllocator(config, { log });
  const clients: AllocatorClient[] = [];
  const client = (tokenFile?: string, socket = config.socket) => { const c = new AllocatorClient({ socket, tokenFile }); clients.push(c); return c; };
  try {
    const a = await t.createPod({ name: 'rtpe-auth-a', nodeName: t.nodes[0]! });
    const b = await t.createPod({ name: 'rtpe-auth-b', nodeName: t.nodes[0]! });
    const fileA = join(dir, 'token-a');
    const fileB = join(dir, 'token-b');
    writeFileSync(fileA, await podToken(t, a));
    writeFileSync(fileB, await podToken(t, b));
    const asA = client(fileA);
    const asB = client(fileB);

    const got = await asA.acquire({ pod: ref(a) });
    assert.equal(got.pod.uid, a.metadata!.uid);
    await asB.acquire({ pod: ref(b) });

    // B acting for A: Acquire (returns A's allocation before the fix), Release by UID or by name, Renew.
    const denied = (e: unknown) => isCoded(e, 'ALLOC_PERMISSION_DENIED') && /a pod may act only for itself/.test((e as Error).message) && (e as Error).message.includes('rtpe-auth-b');
    await assert.rejects(asB.acquire({ pod: ref(a) }), denied);
    await assert.rejects(asB.release({ uid: a.metadata!.uid! }), denied);
    await assert.rejects(asB.release({ namespace: a.metadata!.namespace!, name: a.metadata!.name! }), denied);
    await assert.rejects(asB.renew(a.metadata!.uid!), denied);
    // A spoofed request naming A's UID under B's name is refused too (namespace, name and UID must all match).
    await assert.rejects(asB.acquire({ pod: { ...ref(b), uid: a.metadata!.uid! } }), denied);
    assert.deepEqual((await asA.get({ uid: a.metadata!.uid! })).table, got.table, "A's allocation is intact");

    // No token, a malformed one, another audience: UNAUTHENTICATED.
    const anonymous = client();
    const unauth = (e: unknown) => isCoded(e, 'ALLOC_UNAUTHENTICATED');
    await assert.rejects(anonymous.acquire({ pod: ref(a) }), unauth);
    await assert.rejects(anonymous.release({ uid: a.metadata!.uid! }), unauth);
    await assert.rejects(anonymous.renew(a.metadata!.uid!), unauth);
    const fileX = join(dir, 'token-x');
    writeFileSync(fileX, await podToken(t, a, 'https://kubernetes.default.svc.cluster.local'));
    await assert.rejects(client(fileX).acquire({ pod: ref(a) }), (e) => unauth(e) && /audience/.test((e as Error).message));
    writeFileSync(fileX, 'not-a-token');
    await assert.rejects(client(fileX).acquire({ pod: ref(a) }), unauth);

    // The file is read on every call (the kubelet rotates it): a new token for A works, B's token in A's file does not.
    writeFileSync(fileA, await podToken(t, a));
    assert.equal((await asA.renew(a.metadata!.uid!)).pod.uid, a.metadata!.uid);
    writeFileSync(fileA, await podToken(t, b));
    await assert.rejects(asA.renew(a.metadata!.uid!), denied);
    writeFileSync(fileA, await podToken(t, a));

    // Cheap Acquire: one TokenReview per token, then cached.
    if (t.standIn) {
      const reviews = () => t.standIn!.requests.count({ resource: '/apis/authentication.k8s.io/v1/tokenreviews' });
      const before = reviews();
      for (let i = 0; i < 5; i++) await asA.acquire({ pod: ref(a) });
      assert.equal(reviews() - before, 1, 'five Acquires with one token: one TokenReview');
    }

    assert.equal(statSync(config.operatorSocket!).mode & 0o777, 0o600, 'operator socket is root-only');
    assert.equal(statSync(config.socket).mode & 0o777, 0o660);
    // The operator socket (root only, 0600): ctl release through the real CLI, logged as an operator action.
    const cli = await run(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'ctl', 'release', `${b.metadata!.namespace}/${b.metadata!.name}`, '--socket', config.operatorSocket!], { cwd: process.cwd() });
    assert.match(cli.stdout, /rtpe-auth-b .*: released/);
    const op = lines.find((l) => l.decision === 'operator-release');
    assert.ok(op, 'operator action logged');
    assert.equal(op.pod, `${b.metadata!.namespace}/${b.metadata!.name}`);
    // The pods' socket still refuses an anonymous release (the operator path is the only bypass).
    await assert.rejects(anonymous.release({ uid: a.metadata!.uid! }), unauth);
  } finally {
    for (const c of clients) c.close();
    await h.close();
    await cleanupKube(t.kubeconfig(), { poolNamespace: 'kube-system', pools: [], leaseNamespace: t.namespace });
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('API stand-in: TokenRequest and TokenReview refuse what the real server refuses', { skip: process.env.KUBECONFIG ? 'stand-in contract only' : false }, async () => {
  const t = await kubeTarget();
  try {
    const base = t.standIn!.url;
    const post = async (path: string, body: unknown) => { const r = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }); return { status: r.status, body: await r.json() as any }; };
    const pod = await t.createPod({ name: 'rtpe-tok', nodeName: t.nodes[0]! });
    const tr = (spec: unknown) => post(`/api/v1/namespaces/${t.namespace}/serviceaccounts/default/token`, { spec });
    const bound = { kind: 'Pod', apiVersion: 'v1', name: 'rtpe-tok', uid: pod.metadata!.uid };
    assert.equal((await tr({ audiences: ['x'], expirationSeconds: 599, boundObjectRef: bound })).status, 422);
    assert.equal((await tr({ audiences: ['x'], boundObjectRef: { ...bound, uid: 'other' } })).status, 409);
    assert.equal((await tr({ audiences: ['x'], boundObjectRef: { ...bound, name: 'nope' } })).status, 404);
    assert.equal((await post(`/api/v1/namespaces/${t.namespace}/serviceaccounts/nosuch/token`, { spec: {} })).status, 404);
    const ok = await tr({ audiences: ['x'], expirationSeconds: 600, boundObjectRef: bound });
    assert.equal(ok.status, 201);
    const token = ok.body.status.token as string;
    const review = (spec: unknown) => post('/apis/authentication.k8s.io/v1/tokenreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec });
    assert.equal((await review({ token: '' })).status, 400);
    assert.equal((await post(`/apis/authentication.k8s.io/v1/namespaces/${t.namespace}/tokenreviews`, { spec: { token } })).status, 404);
    const good = await review({ token, audiences: ['x'] });
    assert.equal(good.status, 201);
    assert.equal(good.body.status.authenticated, true);
    assert.deepEqual(good.body.status.audiences, ['x']);
    assert.equal(good.body.status.user.username, `system:serviceaccount:${t.namespace}:default`);
    assert.deepEqual(good.body.status.user.extra['authentication.kubernetes.io/pod-uid'], [pod.metadata!.uid]);
    const other = await review({ token, audiences: ['y'] });
    assert.equal(other.body.status.authenticated, undefined);
    assert.match(other.body.status.error, /audiences/);
    const forged = `${token.slice(0, token.lastIndexOf('.'))}.${Buffer.from('forged').toString('base64url')}`;
    assert.match((await review({ token: forged, audiences: ['x'] })).body.status.error, /invalid bearer token/);
    await t.deletePod('rtpe-tok');
    assert.match((await review({ token, audiences: ['x'] })).body.status.error, /has been deleted/);
  } finally { await t.close(); }
});

test('kubernetes mode: an operator socket that cannot be created (read-only place) is reported, and the allocator still serves with token checks', { timeout: 60_000 }, async () => {
  const t = await kubeTarget();
  const dir = mkdtempSync(join(tmpdir(), 'rtpe-auth-ro-'));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, t.kubeconfig().exportConfig());
  writeFileSync(join(dir, 'not-a-dir'), '');
  const { log, lines } = captureLog();
  const h = await startAllocator({
    node: t.nodes[0]!, socket: join(dir, 'alloc.sock'), tableRange: { min: 0, max: 63 }, pools: [], stateFile: join(dir, 'unused.json'),
    procRoot: join(dir, 'no-proc'), leaseTtlMs: 0, sweepIntervalMs: 1000,
    kubernetes: { kubeconfig, leaseNamespace: t.namespace, poolNamespace: 'kube-system', ipMode: 'reserve', networkStatusInterface: 'net1', resyncIntervalMs: 0 },
    callerAuth: { audience: DEFAULT_TOKEN_AUDIENCE },
    operatorSocket: join(dir, 'not-a-dir', 'operator.sock'), // its parent is a file: cannot be created
  }, { log });
  const c = new AllocatorClient({ socket: join(dir, 'alloc.sock') });
  try {
    assert.ok(lines.some((l) => l.level === 50 && /operator socket not available/.test(String(l.msg))));
    await assert.rejects(c.acquire({ pod: { namespace: t.namespace, name: 'x', uid: 'y' } }), (e) => isCoded(e, 'ALLOC_UNAUTHENTICATED'));
  } finally {
    c.close();
    await h.close();
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('token callers: Release by namespace/name frees only the token pod\'s own record, never an earlier pod of that name under another UID (review 14/16 finding 3)', { timeout: 60_000 }, async () => {
  const t = await kubeTarget();
  const dir = mkdtempSync(join(tmpdir(), 'rtpe-auth-name-'));
  const { kubeTokenReviewer } = await import('../../src/kube/tokenreview.js');
  // File store (no pod informer releasing the earlier pod's record), callers verified by the real TokenReview path.
  const h = await startAllocator({
    node: t.nodes[0]!, socket: join(dir, 'alloc.sock'), tableRange: { min: 0, max: 63 }, pools: [], stateFile: join(dir, 'state.json'),
    procRoot: join(dir, 'no-proc'), leaseTtlMs: 0, sweepIntervalMs: 60_000, callerAuth: { audience: DEFAULT_TOKEN_AUDIENCE },
  }, { log: createLogger({ level: 'silent' }), tokenReviewer: await kubeTokenReviewer(t.kubeconfig()) });
  const clients: AllocatorClient[] = [];
  try {
    const old = await t.createPod({ name: 'rtpe-auth-same', nodeName: t.nodes[0]! });
    const fileOld = join(dir, 'token-old');
    writeFileSync(fileOld, await podToken(t, old));
    const asOld = new AllocatorClient({ socket: join(dir, 'alloc.sock'), tokenFile: fileOld });
    clients.push(asOld);
    const first = await asOld.acquire({ pod: ref(old) });
    // The pod is replaced: same namespace and name, a new UID; the earlier record is still held.
    await t.deletePod('rtpe-auth-same');
    const now = await t.createPod({ name: 'rtpe-auth-same', nodeName: t.nodes[0]! });
    assert.notEqual(now.metadata!.uid, old.metadata!.uid);
    const fileNew = join(dir, 'token-new');
    writeFileSync(fileNew, await podToken(t, now));
    const asNew = new AllocatorClient({ socket: join(dir, 'alloc.sock'), tokenFile: fileNew });
    clients.push(asNew);
    const second = await asNew.acquire({ pod: ref(now) });
    assert.notEqual(second.table, first.table);
    const rel = await asNew.release({ namespace: now.metadata!.namespace!, name: 'rtpe-auth-same' });
    assert.equal(rel.found, true);
    assert.equal(rel.allocation?.pod.uid, now.metadata!.uid);
    assert.deepEqual(h.service.list().allocations.map((a) => [a.pod.uid, a.table, a.state]), [[old.metadata!.uid, first.table, 'active']], "the earlier pod's record is untouched");
  } finally {
    for (const c of clients) c.close();
    await h.close();
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('token callers: a Renew whose held claim names another pod (namespace or name) is refused, so a re-adoption can only recreate the caller\'s own pod (review 14/16 finding 9)', { timeout: 60_000 }, async () => {
  const t = await kubeTarget();
  const dir = mkdtempSync(join(tmpdir(), 'rtpe-auth-held-'));
  const { kubeTokenReviewer } = await import('../../src/kube/tokenreview.js');
  const h = await startAllocator({
    node: t.nodes[0]!, socket: join(dir, 'alloc.sock'), tableRange: { min: 0, max: 63 }, pools: [], stateFile: join(dir, 'state.json'),
    procRoot: join(dir, 'no-proc'), leaseTtlMs: 0, sweepIntervalMs: 60_000, callerAuth: { audience: DEFAULT_TOKEN_AUDIENCE },
  }, { log: createLogger({ level: 'silent' }), tokenReviewer: await kubeTokenReviewer(t.kubeconfig()) });
  const file = join(dir, 'token');
  const c = new AllocatorClient({ socket: join(dir, 'alloc.sock'), tokenFile: file });
  try {
    const a = await t.createPod({ name: 'rtpe-auth-held', nodeName: t.nodes[0]! });
    writeFileSync(file, await podToken(t, a));
    const got = await c.acquire({ pod: ref(a) });
    assert.equal((await c.renew(ref(a).uid, got)).pod.uid, ref(a).uid, 'its own claim is fine');
    const denied = (e: unknown) => isCoded(e, 'ALLOC_PERMISSION_DENIED');
    await assert.rejects(c.renew(ref(a).uid, { ...got, pod: { ...ref(a), name: 'someone-else' } }), denied);
    await assert.rejects(c.renew(ref(a).uid, { ...got, pod: { ...ref(a), namespace: 'other-ns' } }), denied);
    await assert.rejects(c.renew(ref(a).uid, { ...got, pod: { ...ref(a), uid: 'other-uid' } }), denied);
  } finally {
    c.close();
    await h.close();
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
