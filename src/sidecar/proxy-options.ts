// Options of the ng proxy and its control server: an OptionSet fragment the sidecar command
// merges into its own, plus the parsers for listen addresses and source CIDRs they need.
import { BlockList, isIP } from 'node:net';
import { z } from 'zod';
import { opt, type OptionSet, type Parsed } from '../config.js';
import { parseHostPort, type HostPort } from '../net/host-port.js';

export { parseHostPort, type HostPort };

const cidr = /^([0-9A-Fa-f:.]+)\/(\d{1,3})$/;

const hostPortSchema = z.string().refine((s) => parseHostPort(s) !== undefined, 'expected host:port or [ipv6]:port');
const cidrSchema = z.string().refine((s) => {
  const m = cidr.exec(s.trim());
  if (!m) return false;
  const fam = isIP(m[1]!);
  return fam !== 0 && Number(m[2]) <= (fam === 4 ? 32 : 128);
}, 'expected an IPv4 or IPv6 CIDR such as 10.0.0.0/8');

export const proxyOptions = {
  ngListen: {
    ...opt.list('ng listen addresses for Kamailio (host:port, [ipv6]:port), comma-separated', ['0.0.0.0:22222']),
    schema: z.preprocess((v) => (typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter(Boolean) : v), z.array(hostPortSchema).min(1)).default(['0.0.0.0:22222']) as z.ZodType<string[]>,
  },
  ngUpstream: {
    ...opt.string("rtpengine's ng address on loopback (its --listen-ng)", '127.0.0.1:2223'),
    schema: hostPortSchema.default('127.0.0.1:2223') as z.ZodType<string>,
  },
  ngAllowCidrs: {
    ...opt.list('source CIDRs allowed to send ng (empty = everyone); others are dropped and counted', []),
    schema: z.preprocess((v) => (typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter(Boolean) : v), z.array(cidrSchema)).default([]) as z.ZodType<string[]>,
  },
  ngUpstreamTimeoutMs: opt.int('wait per attempt for rtpengine; keep attempts × timeout below Kamailio rtpengine_tout_ms', 250, { min: 10, max: 60_000 }),
  ngUpstreamRetries: opt.int('retransmissions of the identical datagram to rtpengine after a timeout', 2, { min: 0, max: 10 }),
  ngHealthIntervalMs: opt.int('ping rtpengine this often to track health', 500, { min: 50 }),
  ngHealthFailures: opt.int('consecutive failed pings before rtpengine counts as down', 2, { min: 1 }),
  ngReconcileIntervalMs: opt.int("reconcile tracked sessions with rtpengine's statistics/list this often", 10_000, { min: 100 }),
  ngDrainPollMs: opt.int("while draining, read rtpengine's session count this often", 1000, { min: 50 }),
  ngDrainUpstreamDownMs: opt.int('while draining, rtpengine down (failing pings) this long ends the drain with outcome upstream-down: its calls are gone or can no longer be signalled (ADR 0024)', 60_000, { min: 1000 }),
  ngReconcileListMax: opt.int('ask rtpengine for its call list only up to this many sessions (a UDP reply must fit 64 KiB)', 1000, { min: 0 }),
  ngReplyCacheTtlMs: opt.int('keep sent replies for late retransmissions at least this long', 60_000, { min: 1000 }),
  ngReplyCacheMaxBytes: opt.int('memory bound of the reply cache', 32 * 1024 * 1024, { min: 64 * 1024 }),
  deleteDelaySeconds: opt.int("rtpengine's delete-delay: a deleted call still counts there this long", 30, { min: 0 }),
  drainDeadlineSeconds: opt.int('drain gives up after this long (match terminationGracePeriodSeconds)', 1800, { min: 1 }),
  controlListen: {
    ...opt.string('HTTP control server (/metrics, /healthz, /readyz, /status, POST /drain)', '0.0.0.0:9450'),
    schema: hostPortSchema.default('0.0.0.0:9450') as z.ZodType<string>,
  },
  controlRemoteDrain: opt.bool('accept POST /drain and GET /drain/wait from any source (default: only the pod itself: loopback, or the drain token)', false),
  controlDrainToken: opt.optionalString('a drain request (POST /drain, GET /drain/wait) must carry this token in header x-drain-token, from any source; set it behind a service mesh and for an httpGet preStop'),
} satisfies OptionSet;

export type ProxyConfig = Parsed<typeof proxyOptions>;

/** Allowlist matcher; undefined when the list is empty (everyone allowed). */
export function sourceMatcher(cidrs: readonly string[]): ((addr: string) => boolean) | undefined {
  if (!cidrs.length) return undefined;
  const bl = new BlockList();
  for (const c of cidrs) {
    const m = cidr.exec(c.trim())!;
    bl.addSubnet(m[1]!, Number(m[2]), isIP(m[1]!) === 6 ? 'ipv6' : 'ipv4');
  }
  return (addr) => {
    // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
    if (addr.startsWith('::ffff:') && isIP(addr.slice(7)) === 4) addr = addr.slice(7);
    const fam = isIP(addr);
    return fam !== 0 && bl.check(addr, fam === 6 ? 'ipv6' : 'ipv4');
  };
}

/** Every option at its default, then `overrides` (tests, benches, embedding). */
export function proxyConfigWith(overrides: Partial<ProxyConfig> = {}): ProxyConfig {
  const defaults: Record<string, unknown> = {};
  for (const [k, d] of Object.entries(proxyOptions)) defaults[k] = (d.schema as z.ZodType).parse(undefined);
  return { ...(defaults as ProxyConfig), ...overrides };
}
