// Kernel forwarding rules for exactly one table (rtpengine ≤ mr11): one owned chain per pod,
// rendered whole as iptables-restore text (kube-proxy style) plus one jump from INPUT, applied in
// one transaction per family. Idempotent across restarts; other chains are never touched.
import type { Logger } from '../log.js';
import { refuseControlCharacters } from '../config.js';
import type { Family, Iptables } from './iptables.js';

export interface RuleSpec {
  table: number;
  /** Media IPs this pod's rtpengine listens on (IPv4 and/or IPv6). */
  addresses: readonly string[];
  portMin: number;
  portMax: number;
  /**
   * The jump target. Always `RTPENGINE` (rendered `-j RTPENGINE --id <table>`) in production;
   * tests on hosts without the kernel module swap in another target (e.g. `ACCEPT`).
   */
  target?: string;
}

export const familyOf = (ip: string): Family => (ip.includes(':') ? 'ipv6' : 'ipv4');

/** Per-table and so per-pod on the node (the allocator never hands a table to two pods). ≤ 28 chars. */
export function chainName(table: number): string {
  return `RTPE-K8S-T${table}`;
}

/** The rules inside the owned chain, in iptables-save's own spelling so a save reads back equal. */
export function chainRules(spec: RuleSpec, family: Family): string[] {
  const chain = chainName(spec.table);
  const target = spec.target ?? 'RTPENGINE';
  const jump = target === 'RTPENGINE' ? `-j RTPENGINE --id ${spec.table}` : `-j ${target}`;
  const mask = family === 'ipv6' ? 128 : 32;
  return spec.addresses
    .filter((ip) => familyOf(ip) === family)
    .map((ip) => `-A ${chain} -d ${ip}/${mask} -p udp -m udp --dport ${spec.portMin}:${spec.portMax} ${jump}`);
}

/** The jump from INPUT, as iptables-save prints it (after `-A INPUT `). */
export function jumpSpec(table: number): string {
  return `-p udp -m comment --comment "rtpengine-k8s table ${table}" -j ${chainName(table)}`;
}

/** Every rule in INPUT that jumps to `chain`, as saved (so `-D INPUT <spec>` deletes exactly it). */
export function existingJumps(save: string, chain: string): string[] {
  const tail = new RegExp(` -j ${chain.replace(/[-]/g, '\\-')}(\\s|$)`);
  return save.split('\n')
    .filter((l) => l.startsWith('-A INPUT ') && tail.test(l))
    .map((l) => l.slice('-A INPUT '.length).trim());
}

export const chainExists = (save: string, chain: string) => save.split('\n').some((l) => l.startsWith(`:${chain} `));

/**
 * Restore text that makes the filter table hold exactly our chain and one jump to it, whatever
 * was there before: `:CHAIN - [0:0]` flushes only our chain, old jumps are deleted and one is
 * inserted first in INPUT, all in one COMMIT.
 */
export function renderApply(spec: RuleSpec, family: Family, currentSave: string): string {
  const chain = chainName(spec.table);
  const rules = chainRules(spec, family);
  refuseControlCharacters({ 'iptables rules': rules });
  const lines = ['*filter', `:${chain} - [0:0]`, ...rules];
  for (const j of existingJumps(currentSave, chain)) lines.push(`-D INPUT ${j}`);
  lines.push(`-I INPUT 1 ${jumpSpec(spec.table)}`, 'COMMIT', '');
  return lines.join('\n');
}

/** Restore text that removes our jumps and chain; '' when nothing of ours is there. */
export function renderRemove(table: number, currentSave: string): string {
  const chain = chainName(table);
  const jumps = existingJumps(currentSave, chain);
  const exists = chainExists(currentSave, chain);
  if (!jumps.length && !exists) return '';
  const lines = ['*filter', ...jumps.map((j) => `-D INPUT ${j}`)];
  if (exists) lines.push(`:${chain} - [0:0]`, `-X ${chain}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

export const familiesOf = (spec: RuleSpec): Family[] =>
  (['ipv4', 'ipv6'] as const).filter((f) => spec.addresses.some((ip) => familyOf(ip) === f));

/** Applies and removes one pod's forwarding rules through the iptables port. */
export class ForwardingRules {
  constructor(private readonly ipt: Iptables, private readonly spec: RuleSpec, private readonly log: Logger) {}

  get chain(): string { return chainName(this.spec.table); }

  async apply(): Promise<void> {
    for (const family of familiesOf(this.spec)) {
      const save = await this.ipt.save(family);
      const text = renderApply(this.spec, family, save);
      await this.ipt.restore(family, text);
      this.log.info({ family, chain: this.chain, table: this.spec.table, rules: chainRules(this.spec, family), replacedJumps: existingJumps(save, this.chain).length, backend: this.ipt.backend }, 'forwarding rules applied');
    }
    // A family we no longer have an address in keeps no chain of ours.
    for (const family of (['ipv4', 'ipv6'] as const).filter((f) => !familiesOf(this.spec).includes(f))) {
      await this.removeFamily(family).catch((e) => this.log.warn({ family, err: (e as Error).message }, 'could not check for stale rules'));
    }
  }

  async remove(): Promise<void> {
    let firstError: unknown;
    for (const family of ['ipv4', 'ipv6'] as const) {
      try { await this.removeFamily(family); } catch (e) { firstError ??= e; }
    }
    if (firstError) throw firstError;
  }

  private async removeFamily(family: Family): Promise<void> {
    const text = renderRemove(this.spec.table, await this.ipt.save(family));
    if (!text) return;
    await this.ipt.restore(family, text);
    this.log.info({ family, chain: this.chain }, 'forwarding rules removed');
  }
}
