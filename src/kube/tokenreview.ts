// Caller authentication for the allocator in Kubernetes mode: a pod's projected service-account
// token is verified with a TokenReview (audience-bound), and the pod it was issued for (pod-name /
// pod-uid claims) becomes the caller's identity. Verified tokens are cached briefly (bounded).
import { createHash } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { AllocError, isCoded } from '../errors.js';

export const DEFAULT_TOKEN_AUDIENCE = 'rtpengine-k8s-allocator';
export const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name';
export const POD_UID_EXTRA = 'authentication.kubernetes.io/pod-uid';

/** What TokenReview answers (authentication.k8s.io/v1 TokenReviewStatus). */
export interface TokenReviewStatus {
  authenticated?: boolean;
  audiences?: string[];
  error?: string;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
}

/** The API call, as a port (one real implementation: kubeTokenReviewer). */
export interface TokenReviewer { review(token: string, audiences: string[]): Promise<TokenReviewStatus> }

/** The pod a token was issued for. */
export interface PodIdentity { namespace: string; serviceAccount: string; name: string; uid: string }

/** POST /apis/authentication.k8s.io/v1/tokenreviews through @kubernetes/client-node. */
export async function kubeTokenReviewer(kc: KubeConfig): Promise<TokenReviewer> {
  const { AuthenticationV1Api } = await import('@kubernetes/client-node');
  const api = kc.makeApiClient(AuthenticationV1Api);
  return {
    async review(token, audiences) {
      const r = await api.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } } });
      return (r.status ?? {}) as TokenReviewStatus;
    },
  };
}

export interface VerifierOptions {
  audience?: string;
  /** How long a verified token is trusted without another review (ms, default 30 s; never past the token's exp). */
  cacheTtlMs?: number;
  /** Cache size bound (entries, default 1024; oldest evicted first). */
  maxEntries?: number;
  now?: () => number;
}

const SA_USER = /^system:serviceaccount:([^:]+):([^:]+)$/;

/** The token's `exp` (seconds) read without verifying it: only to cap how long a verdict is cached. */
function expiryMs(token: string): number | undefined {
  const part = token.split('.')[1];
  if (!part || part.length > 8192) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch { return undefined; }
}

export class TokenVerifier {
  readonly audience: string;
  private readonly ttl: number;
  private readonly max: number;
  private readonly now: () => number;
  private readonly cache = new Map<string, { id: PodIdentity; until: number }>();
  private readonly inFlight = new Map<string, Promise<PodIdentity>>();
  /** TokenReviews made (tests, metrics). */
  reviews = 0;

  constructor(private readonly reviewer: TokenReviewer, o: VerifierOptions = {}) {
    this.audience = o.audience ?? DEFAULT_TOKEN_AUDIENCE;
    this.ttl = o.cacheTtlMs ?? 30_000;
    this.max = o.maxEntries ?? 1024;
    this.now = o.now ?? Date.now;
  }

  private unauth(reason: string): AllocError { return new AllocError('ALLOC_UNAUTHENTICATED', { reason, audience: this.audience }); }

  /** The `authorization` metadata value → the pod it authenticates; ALLOC_UNAUTHENTICATED otherwise. */
  async verifyHeader(header: string | undefined): Promise<PodIdentity> {
    if (!header) throw this.unauth('no authorization metadata');
    const m = /^Bearer ([A-Za-z0-9._~+/=-]{1,8192})$/.exec(header);
    if (!m) throw this.unauth("authorization metadata is not 'Bearer <token>'");
    return this.verify(m[1]!);
  }

  async verify(token: string): Promise<PodIdentity> {
    const key = createHash('sha256').update(token).digest('base64url');
    const hit = this.cache.get(key);
    if (hit && hit.until > this.now()) return hit.id;
    if (hit) this.cache.delete(key);
    let p = this.inFlight.get(key);
    if (!p) {
      p = this.review(token).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, p);
    }
    const id = await p;
    const exp = expiryMs(token);
    const until = Math.min(this.now() + this.ttl, exp ?? Infinity);
    if (until > this.now()) {
      this.cache.delete(key);
      this.cache.set(key, { id, until });
      while (this.cache.size > this.max) this.cache.delete(this.cache.keys().next().value!);
    }
    return id;
  }

  private async review(token: string): Promise<PodIdentity> {
    let st: TokenReviewStatus;
    try {
      this.reviews++;
      st = await this.reviewer.review(token, [this.audience]);
    } catch (e) {
      if (isCoded(e)) throw e;
      throw new AllocError('ALLOC_UNAVAILABLE', { target: 'the Kubernetes API (TokenReview)', reason: (e as Error).message }, { cause: e });
    }
    if (!st.authenticated) throw this.unauth(`token rejected by TokenReview${st.error ? `: ${st.error.slice(0, 200)}` : ''}`);
    // An audience-aware authenticator echoes the audience it accepted; an empty list would mean "the API server's own audience".
    if (!st.audiences?.includes(this.audience)) throw this.unauth(`token is not for audience ${this.audience} (TokenReview audiences: ${JSON.stringify(st.audiences ?? []).slice(0, 200)})`);
    const u = st.user ?? {};
    const sa = SA_USER.exec(u.username ?? '');
    if (!sa) throw this.unauth(`token is not a service-account token (user ${String(u.username).slice(0, 100)})`);
    const one = (k: string) => { const v = u.extra?.[k]; return Array.isArray(v) && v.length === 1 && typeof v[0] === 'string' && v[0] ? v[0] : undefined; };
    const name = one(POD_NAME_EXTRA);
    const uid = one(POD_UID_EXTRA);
    if (!name || !uid) throw this.unauth('token is not bound to a pod (no pod-name/pod-uid claims: use a projected service-account token)');
    return { namespace: sa[1]!, serviceAccount: sa[2]!, name, uid };
  }
}
