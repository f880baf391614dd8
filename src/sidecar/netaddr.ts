// The media address on the pod's interface, through iproute2 (Runner port; needs NET_ADMIN):
// add + announce (gratuitous ARP via iputils `arping -U`; IPv6 unsolicited NA from the kernel on
// DAD completion if the pod set ndisc_notify) and remove on exit when we reserved it; CNI: verify.
import type { Runner } from '../exec.js';
import type { Logger } from '../log.js';
import type { Clock } from '../clock.js';
import { SidecarError } from '../errors.js';

export type AddressMode = 'reserved' | 'cni' | 'none';
export const ADDRESS_MODES = ['reserved', 'cni', 'none'] as const;

export interface MediaAddress { ip: string; prefixLength: number }

interface AddrInfo { family: string; local: string; prefixlen: number; tentative?: boolean; dadfailed?: boolean }

const isV6 = (ip: string) => ip.includes(':');

async function addrs(runner: Runner, dev: string): Promise<AddrInfo[]> {
  const r = await runner.run('ip', ['-j', 'addr', 'show', 'dev', dev]);
  if (r.code !== 0) throw new SidecarError('NET_ADDR_FAILED', { op: 'list addresses of', ip: '-', dev, reason: r.stderr.trim() || `ip exit ${r.code}` });
  let links: unknown;
  try {
    links = JSON.parse(r.stdout || '[]');
  } catch (e) {
    throw new SidecarError('NET_ADDR_FAILED', { op: 'list addresses of', ip: '-', dev, reason: `unparseable \`ip -j addr\` output (${(e as Error).message}): ${r.stdout.slice(0, 200)}` });
  }
  if (!Array.isArray(links)) {
    throw new SidecarError('NET_ADDR_FAILED', { op: 'list addresses of', ip: '-', dev, reason: `\`ip -j addr\` output is not a JSON array: ${r.stdout.slice(0, 200)}` });
  }
  return (links as Array<{ addr_info?: AddrInfo[] } | null>).flatMap((l) => (Array.isArray(l?.addr_info) ? l.addr_info : []));
}

/** The address as the kernel holds it on `dev`, or undefined. */
export async function findAddress(runner: Runner, dev: string, ip: string): Promise<AddrInfo | undefined> {
  return (await addrs(runner, dev)).find((a) => a.local === ip);
}

export interface NetAddrDeps { runner: Runner; log: Logger; clock: Clock }

export class MediaAddressManager {
  private readonly added = new Set<string>();
  private ndiscChecked = false;
  constructor(private readonly deps: NetAddrDeps, private readonly mode: AddressMode, private readonly dev: string) {}

  /** reserved: add (idempotent) and announce; cni: verify; none: nothing. */
  async ensure(addr: MediaAddress): Promise<{ action: 'added' | 'present' | 'verified' | 'skipped' }> {
    const { runner, log } = this.deps;
    const facts = { ip: addr.ip, dev: this.dev, mode: this.mode };
    if (this.mode === 'none') return { action: 'skipped' };
    const existing = await findAddress(runner, this.dev, addr.ip);
    if (this.mode === 'cni') {
      if (!existing) throw new SidecarError('NET_ADDR_MISSING', { ip: addr.ip, dev: this.dev });
      log.info(facts, 'media address assigned by the CNI is present');
      return { action: 'verified' };
    }
    let action: 'added' | 'present' = 'present';
    if (!existing) {
      if (isV6(addr.ip)) await this.checkNdiscNotify();
      const r = await runner.run('ip', ['addr', 'add', `${addr.ip}/${addr.prefixLength}`, 'dev', this.dev]);
      if (r.code !== 0 && !/File exists/.test(r.stderr)) {
        throw new SidecarError('NET_ADDR_FAILED', { op: 'add', ip: addr.ip, dev: this.dev, reason: r.stderr.trim() });
      }
      action = 'added';
    }
    this.added.add(addr.ip);
    if (isV6(addr.ip)) await this.waitDad(addr.ip);
    // Announcing does not gate readiness (arping takes a second or two); it is logged when done.
    else void this.announceV4(addr.ip);
    log.info({ ...facts, action }, 'media address in place');
    return { action };
  }

  /** Removes the address only if this manager put it there (mode reserved); absent is fine. */
  async remove(addr: MediaAddress): Promise<boolean> {
    if (this.mode !== 'reserved' || !this.added.has(addr.ip)) return false;
    const r = await this.deps.runner.run('ip', ['addr', 'del', `${addr.ip}/${addr.prefixLength}`, 'dev', this.dev]);
    if (r.code !== 0 && !/Cannot assign requested address|not found/i.test(r.stderr)) {
      throw new SidecarError('NET_ADDR_FAILED', { op: 'remove', ip: addr.ip, dev: this.dev, reason: r.stderr.trim() });
    }
    this.added.delete(addr.ip);
    this.deps.log.info({ ip: addr.ip, dev: this.dev }, 'media address removed');
    return true;
  }

  /** Gratuitous ARP so the upstream router learns the new address at once (not fatal if absent). */
  private async announceV4(ip: string): Promise<void> {
    const r = await this.deps.runner.run('arping', ['-U', '-c', '2', '-w', '2', '-I', this.dev, ip], { timeoutMs: 5000 });
    // iputils arping exits 1 when no reply came back, which is the normal case for -U.
    if (r.code === 0 || r.code === 1) { this.deps.log.debug({ ip, dev: this.dev }, 'gratuitous ARP sent'); return; }
    this.deps.log.warn({ ip, dev: this.dev, code: r.code, stderr: r.stderr.trim() },
      'could not send a gratuitous ARP (is iputils-arping installed?); the router learns the address on its next ARP request');
  }

  /**
   * IPv6: the address must finish DAD before rtpengine can bind it, and with ndisc_notify=1 the
   * kernel sends the unsolicited neighbour advertisement itself when DAD completes.
   */
  private async waitDad(ip: string): Promise<void> {
    const start = this.deps.clock.monotonic();
    for (;;) {
      const a = await findAddress(this.deps.runner, this.dev, ip);
      if (a?.dadfailed) throw new SidecarError('NET_ADDR_FAILED', { op: 'add', ip, dev: this.dev, reason: 'duplicate address detection failed: another host uses this address' });
      if (a && !a.tentative) return;
      if (this.deps.clock.monotonic() - start > 5000) {
        throw new SidecarError('NET_ADDR_FAILED', { op: 'add', ip, dev: this.dev, reason: 'address still tentative (DAD) after 5 s' });
      }
      await this.deps.clock.sleep(100);
    }
  }

  /**
   * The kernel sends the unsolicited NA after DAD when ndisc_notify is 1 on the device or on
   * `all`. An unprivileged container cannot write it (/proc/sys is read-only there, NET_ADMIN or
   * not), so the pod sets it at creation (securityContext.sysctls, chart value
   * sidecar.ipv6NdiscNotify) and the sidecar only reads it, once, and says when it is off.
   */
  private async checkNdiscNotify(): Promise<void> {
    if (this.ndiscChecked) return;
    this.ndiscChecked = true;
    const read = async (key: string) => {
      const r = await this.deps.runner.run('sysctl', ['-n', key]);
      return r.code === 0 ? r.stdout.trim() : `unreadable (${r.stderr.trim() || `exit ${r.code}`})`;
    };
    // The slash form: an interface name may contain dots (eth0.100).
    const all = await read('net/ipv6/conf/all/ndisc_notify');
    const dev = await read(`net/ipv6/conf/${this.dev}/ndisc_notify`);
    if (all === '1' || dev === '1') return;
    this.deps.log.warn({ dev: this.dev, ndiscNotify: { all, [this.dev]: dev } },
      'IPv6 ndisc_notify is off in this pod: no unsolicited neighbour advertisement for the media address (neighbours learn it when they next solicit it). '
      + 'Set net.ipv6.conf.all.ndisc_notify=1 in the pod\'s securityContext.sysctls (chart value sidecar.ipv6NdiscNotify; the kubelet must allow it with --allowed-unsafe-sysctls)');
  }
}
