// The one retry backoff: the delay before attempt N doubles from a first delay up to a cap, with
// a jitter chosen by the caller (±20 % spread against stampedes, full 0..delay against lock-step
// writers, or none where one client retries alone). Used by acquire, the rtpengine supervisor,
// the Kubernetes informers, kamailio-sync's reload retry and the IPPool conflict retry.

export interface BackoffPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  /** spread (default): ×0.8–1.2; full: 0..delay (AWS "full jitter"); none: the delay itself. */
  jitter?: 'spread' | 'full' | 'none';
}

/** The wait before retry number `attempt` (1-based): min(max, initial·2^(attempt−1)), jittered, whole ms. */
export function backoff(attempt: number, p: BackoffPolicy, rnd: () => number = Math.random): number {
  const base = Math.min(p.maxDelayMs, p.initialDelayMs * 2 ** Math.max(0, attempt - 1));
  switch (p.jitter ?? 'spread') {
    case 'none': return base;
    case 'full': return Math.round(base * rnd());
    default: return Math.round(base * (0.8 + 0.4 * rnd()));
  }
}
