// The API stand-in's token authority: the TokenRequest subresource (POST .../serviceaccounts/SA/token,
// pod-bound, audience-bound, expiring) and TokenReview (POST /apis/authentication.k8s.io/v1/tokenreviews),
// with the real server's shapes and refusals (k8s.io/kubernetes pkg/registry/authentication/tokenreview,
// pkg/registry/core/serviceaccount/storage/token.go, pkg/serviceaccount claims). Tokens are JWTs signed
// with a per-server key (HS256 here; the real server uses its service-account signing key).
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { KObj, StoreAccess } from './kube-apiserver.js';

/** The API server's own audience (what an empty spec.audiences means). */
export const API_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';
const ISSUER = 'https://kubernetes.default.svc.cluster.local';

interface Answer { status: number; body: unknown }
const status = (code: number, reason: string, message: string, details?: Record<string, unknown>): Answer =>
  ({ status: code, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, details, code } });
const nowIso = (ms = Date.now()) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

interface Claims {
  iss: string; aud: string[]; exp: number; iat: number; nbf: number; sub: string; jti: string;
  'kubernetes.io': { namespace: string; serviceaccount: { name: string; uid: string }; pod?: { name: string; uid: string }; node?: { name: string } };
}

/** `now` (ms): the authority's clock for issuing and expiring tokens; tests step it past a token's exp. */
export function tokenAuthority(store: () => StoreAccess, now: () => number = Date.now) {
  const key = randomBytes(32);
  const saUids = new Map<string, string>();
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const sign = (data: string) => createHmac('sha256', key).update(data).digest();

  /** Service accounts: `default` exists in every namespace (the controller creates it), others once a pod names them. */
  function serviceAccount(ns: string, name: string): { uid: string } | undefined {
    const exists = name === 'default' || store().list('pods', ns).some((p) => (p.spec?.serviceAccountName ?? 'default') === name);
    if (!exists) return undefined;
    const k = `${ns}/${name}`;
    if (!saUids.has(k)) saUids.set(k, randomUUID());
    return { uid: saUids.get(k)! };
  }

  function tokenRequest(ns: string, sa: string, body: any): Answer {
    if (!body || typeof body !== 'object') return status(400, 'BadRequest', 'the body of the request was in an unknown format');
    const acct = serviceAccount(ns, sa);
    if (!acct) return status(404, 'NotFound', `serviceaccounts "${sa}" not found`, { name: sa, kind: 'serviceaccounts' });
    const spec = body.spec ?? {};
    const exp = spec.expirationSeconds ?? 3600;
    if (typeof exp !== 'number' || !Number.isInteger(exp)) return status(400, 'BadRequest', 'spec.expirationSeconds: must be an integer');
    if (exp < 600) return status(422, 'Invalid', `TokenRequest.authentication.k8s.io "${sa}" is invalid: spec.expirationSeconds: Invalid value: ${exp}: may not specify a duration less than 10 minutes`);
    if (exp > 2 ** 32) return status(422, 'Invalid', `TokenRequest.authentication.k8s.io "${sa}" is invalid: spec.expirationSeconds: Invalid value: ${exp}: may not specify a duration larger than 2^32 seconds`);
    const audiences: string[] = Array.isArray(spec.audiences) && spec.audiences.length ? spec.audiences : [API_AUDIENCE];
    const claims: Claims['kubernetes.io'] = { namespace: ns, serviceaccount: { name: sa, uid: acct.uid } };
    const ref = spec.boundObjectRef;
    if (ref) {
      if (ref.kind !== 'Pod') return status(400, 'BadRequest', `cannot bind token to object of type ${ref.kind} (the stand-in binds to Pods only)`);
      const pod: KObj | undefined = store().get('pods', ns, ref.name);
      if (!pod) return status(404, 'NotFound', `pods "${ref.name}" not found`, { name: ref.name, kind: 'pods' });
      if (ref.uid && ref.uid !== pod.metadata.uid) return status(409, 'Conflict', `Operation cannot be fulfilled on pod "${ref.name}": the UID in the bound object reference (${ref.uid}) does not match the UID in record. The object might have been deleted and then recreated`);
      const podSa = pod.spec?.serviceAccountName ?? 'default';
      if (podSa !== sa) return status(400, 'BadRequest', `cannot bind token for serviceaccount "${sa}" to pod running with serviceaccount "${podSa}"`);
      claims.pod = { name: pod.metadata.name, uid: pod.metadata.uid! };
      if (pod.spec?.nodeName) claims.node = { name: pod.spec.nodeName };
    }
    const iat = Math.floor(now() / 1000);
    const payload: Claims = { iss: ISSUER, aud: audiences, exp: iat + exp, iat, nbf: iat, sub: `system:serviceaccount:${ns}:${sa}`, jti: randomUUID(), 'kubernetes.io': claims };
    const head = `${b64({ alg: 'HS256', kid: 'stand-in' })}.${b64(payload)}`;
    const token = `${head}.${sign(head).toString('base64url')}`;
    return { status: 201, body: {
      kind: 'TokenRequest', apiVersion: 'authentication.k8s.io/v1',
      metadata: { name: sa, namespace: ns, creationTimestamp: null },
      spec: { audiences, expirationSeconds: exp, boundObjectRef: ref ?? null },
      status: { token, expirationTimestamp: nowIso((iat + exp) * 1000) },
    } };
  }

  /** Why a token is not valid now, or its claims. */
  function check(token: string, wanted: string[]): { claims: Claims; audiences: string[] } | string {
    const parts = token.split('.');
    if (parts.length !== 3) return 'invalid bearer token';
    const sig = Buffer.from(parts[2]!, 'base64url');
    const good = sign(`${parts[0]}.${parts[1]}`);
    if (sig.length !== good.length || !timingSafeEqual(sig, good)) return 'invalid bearer token, square/go-jose: error in cryptographic primitive';
    let c: Claims;
    try { c = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Claims; } catch { return 'invalid bearer token'; }
    if (c.exp <= Math.floor(now() / 1000)) return 'invalid bearer token, service account token has expired';
    const audiences = wanted.filter((a) => c.aud.includes(a));
    if (!audiences.length) return `invalid bearer token, token audiences ${JSON.stringify(c.aud)} is invalid for the target audiences ${JSON.stringify(wanted)}`;
    const k = c['kubernetes.io'];
    const sa = serviceAccount(k.namespace, k.serviceaccount.name);
    if (!sa || sa.uid !== k.serviceaccount.uid) return `invalid bearer token, service account ${k.namespace}/${k.serviceaccount.name} has been deleted`;
    if (k.pod) {
      const pod = store().get('pods', k.namespace, k.pod.name);
      if (!pod || pod.metadata.uid !== k.pod.uid) return `invalid bearer token, pod ${k.namespace}/${k.pod.name} (uid ${k.pod.uid}) has been deleted`;
      const del = pod.metadata.deletionTimestamp ? Date.parse(pod.metadata.deletionTimestamp) : undefined;
      if (del !== undefined && del < Date.now() - 60_000) return `invalid bearer token, pod ${k.namespace}/${k.pod.name} is being deleted`;
    }
    return { claims: c, audiences };
  }

  function tokenReview(body: any): Answer {
    if (!body || typeof body !== 'object') return status(400, 'BadRequest', 'the body of the request was in an unknown format');
    const spec = body.spec ?? {};
    if (typeof spec.token !== 'string' || !spec.token) return status(400, 'BadRequest', 'token is required for TokenReview in authentication');
    const wanted: string[] = Array.isArray(spec.audiences) && spec.audiences.length ? spec.audiences : [API_AUDIENCE];
    const r = check(spec.token, wanted);
    const out = { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, spec };
    if (typeof r === 'string') return { status: 201, body: { ...out, status: { user: {}, error: `[${r}]` } } };
    const k = r.claims['kubernetes.io'];
    const extra: Record<string, string[]> = { 'authentication.kubernetes.io/credential-id': [`JTI=${r.claims.jti}`] };
    if (k.node) extra['authentication.kubernetes.io/node-name'] = [k.node.name];
    if (k.pod) { extra['authentication.kubernetes.io/pod-name'] = [k.pod.name]; extra['authentication.kubernetes.io/pod-uid'] = [k.pod.uid]; }
    return { status: 201, body: { ...out, status: {
      authenticated: true,
      user: { username: `system:serviceaccount:${k.namespace}:${k.serviceaccount.name}`, uid: k.serviceaccount.uid, groups: ['system:serviceaccounts', `system:serviceaccounts:${k.namespace}`, 'system:authenticated'], extra },
      audiences: r.audiences,
    } } };
  }

  /** Answers the two routes (POST only), or undefined for any other request. */
  async function route(method: string, pathname: string, readBody: () => Promise<unknown>): Promise<Answer | undefined> {
    const p = pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const isReview = p[0] === 'apis' && p[1] === 'authentication.k8s.io' && p[2] === 'v1' && (p[3] === 'tokenreviews' || (p[3] === 'namespaces' && p[5] === 'tokenreviews'));
    const isRequest = p.length === 7 && p[0] === 'api' && p[1] === 'v1' && p[2] === 'namespaces' && p[4] === 'serviceaccounts' && p[6] === 'token';
    if (!isReview && !isRequest) return undefined;
    if (method !== 'POST') return status(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
    if (isReview && p.length !== 4) return status(404, 'NotFound', 'the server could not find the requested resource (tokenreviews are cluster-scoped)');
    let body: unknown;
    try { body = await readBody(); } catch (e) { return status(400, 'BadRequest', (e as Error).message); }
    return isReview ? tokenReview(body) : tokenRequest(p[3]!, p[5]!, body);
  }

  return { route };
}
