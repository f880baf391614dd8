// The iptables port: iptables-restore/-save (IPv4) and ip6tables-* (IPv6) in the backend the host
// uses (nft or legacy, chosen as kubernetes-sigs/iptables-wrappers does), driven through Runner.
// Rules are applied only as whole restore texts with --noflush -w, never rule by rule.
import type { Runner } from '../exec.js';
import { SidecarError } from '../errors.js';

export type Family = 'ipv4' | 'ipv6';
export type Backend = 'nft' | 'legacy';

export interface Iptables {
  readonly backend: Backend;
  /** One atomic `*-restore --noflush -w` of the given text. */
  restore(family: Family, text: string): Promise<void>;
  /** `*-save -t <table>` output. */
  save(family: Family, table?: string): Promise<string>;
}

const BIN: Record<Family, string> = { ipv4: 'iptables', ipv6: 'ip6tables' };

export function binaryFor(family: Family, backend: Backend, tool: 'save' | 'restore'): string {
  return `${BIN[family]}-${backend}-${tool}`;
}

/** Kubelet's marker chains in `mangle` (Kubernetes ≥ 1.17): whichever backend holds them is the host's. */
const KUBELET_HINTS = /^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) /m;
const ruleCount = (save: string) => save.split('\n').filter((l) => l.startsWith('-')).length;

export interface BackendDecision { backend: Backend; reason: string; counts?: { legacy: number; nft: number } }

/**
 * Which backend the host (this network namespace) uses, in iptables-wrappers' order:
 * kubelet hint chains in nft, then in legacy; then ≥ 10 legacy rules → legacy; then more nft
 * rules than legacy → nft, more legacy → legacy; a tie (e.g. a fresh pod netns) → the mode of
 * the image's default `iptables` (Debian 12: nft), where iptables-wrappers would pick legacy.
 */
export async function detectBackend(runner: Runner): Promise<BackendDecision> {
  const save = async (b: Backend, f: Family, table?: string) => {
    const r = await runner.run(binaryFor(f, b, 'save'), table ? ['-t', table] : [], { timeoutMs: 5000 });
    return r.code === 0 ? r.stdout : '';
  };
  for (const b of ['nft', 'legacy'] as const) {
    const mangle = (await save(b, 'ipv4', 'mangle')) + (await save(b, 'ipv6', 'mangle'));
    if (KUBELET_HINTS.test(mangle)) return { backend: b, reason: `kubelet hint chain found in ${b} mangle table` };
  }
  const legacy = ruleCount(await save('legacy', 'ipv4')) + ruleCount(await save('legacy', 'ipv6'));
  if (legacy >= 10) return { backend: 'legacy', reason: `${legacy} legacy rules present`, counts: { legacy, nft: -1 } };
  const nft = ruleCount(await save('nft', 'ipv4')) + ruleCount(await save('nft', 'ipv6'));
  const counts = { legacy, nft };
  if (nft > legacy) return { backend: 'nft', reason: 'more nft rules than legacy rules', counts };
  if (legacy > nft) return { backend: 'legacy', reason: 'more legacy rules than nft rules', counts };
  const v = await runner.run('iptables', ['--version'], { timeoutMs: 5000 });
  if (v.code !== 0) {
    throw new SidecarError('RULES_NO_BACKEND', { reason: `no rules in either backend and 'iptables --version' failed: ${v.stderr.trim()}` });
  }
  const backend: Backend = /legacy/.test(v.stdout) ? 'legacy' : 'nft';
  return { backend, reason: `no rules in either backend; image default is ${backend} (${v.stdout.trim()})`, counts };
}

export function createIptables(runner: Runner, backend: Backend): Iptables {
  return {
    backend,
    async restore(family, text) {
      const binary = binaryFor(family, backend, 'restore');
      const r = await runner.run(binary, ['--noflush', '-w'], { input: text, timeoutMs: 20_000 });
      if (r.code !== 0) throw new SidecarError('RULES_APPLY_FAILED', { binary, code: r.code, stderr: r.stderr.trim() || r.stdout.trim(), input: text });
    },
    async save(family, table = 'filter') {
      const binary = binaryFor(family, backend, 'save');
      const r = await runner.run(binary, ['-t', table], { timeoutMs: 20_000 });
      if (r.code !== 0) throw new SidecarError('RULES_APPLY_FAILED', { binary, code: r.code, stderr: r.stderr.trim() });
      return r.stdout;
    },
  };
}
