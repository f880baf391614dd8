// Bounds on every caller-supplied field of the allocator's API (checked before any use) and the
// one way a caller's text is quoted back in a message: a bounded prefix, never the whole value.

/** Kubernetes: DNS subdomain names (pods) ≤ 253; namespaces are DNS labels ≤ 63; UIDs are 36, we allow 128. */
export const LIMITS = { podName: 253, namespace: 63, uid: 128, pool: 253, poolsPerRequest: 16, interface: 15, reason: 253 } as const;

/** How much of a caller's value a message may quote. */
export const QUOTE_MAX = 64;

/** A caller's value for a message: at most QUOTE_MAX characters, control characters escaped, length said when cut. */
export function clip(v: unknown, max = QUOTE_MAX): string {
  const t = typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v);
  const head = t.length > max ? t.slice(0, max) : t;
  // eslint-disable-next-line no-control-regex
  const safe = head.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return t.length > max ? `${safe}… (${t.length} characters)` : safe;
}
