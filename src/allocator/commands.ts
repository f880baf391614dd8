// CLI commands of the allocator program: `allocator` (runs the node service until SIGTERM),
// `ctl list` / `ctl release <ns/pod | uid>` for operators over the same gRPC socket, and
// `ctl cleanup --yes` (Kubernetes store, uninstall): frees every node's IPPool entries and Leases.
import { defineCommand, type CommandContext } from '../command.js';
import type { Parsed } from '../config.js';
import { ConfigError, Exit } from '../errors.js';
import { allocatorOptions, ctlOptions } from './options.js';
import { configFromOptions, poolsFromOptions, startAllocator } from './allocator.js';
import { AllocatorClient, type PodSelector } from './client.js';
import type { AllocationView } from './wire.js';

export const allocatorCommand = defineCommand({
  name: 'allocator',
  summary: 'per-node allocator: unique kernel table IDs and media IPs over gRPC (DaemonSet)',
  options: allocatorOptions,
  async run(config, _positionals, ctx) {
    const handle = await startAllocator(configFromOptions(config), { log: ctx.log });
    await new Promise<void>((resolve) => {
      if (ctx.signal.aborted) resolve();
      else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    await handle.close();
    return Exit.OK;
  },
});

function age(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** Plain aligned columns, one allocation per line. */
export function formatTable(rows: AllocationView[], now: number): string {
  const head = ['POD', 'UID', 'TABLE', 'IP', 'AGE', 'STATE'];
  const body = rows.map((a) => [`${a.pod.namespace}/${a.pod.name}`, a.pod.uid, String(a.table), a.addresses.map((x) => `${x.ip}/${x.prefixLength}`).join(',') || '-', age(now - a.createdAt), a.state]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  return [head, ...body].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ')).join('\n') + '\n';
}

export function selectorFor(arg: string): PodSelector {
  const slash = arg.indexOf('/');
  if (slash > 0 && slash < arg.length - 1) return { namespace: arg.slice(0, slash), name: arg.slice(slash + 1) };
  return { uid: arg };
}

export const ctlCommand = defineCommand({
  name: 'ctl',
  summary: "operate the node allocator: 'ctl list', 'ctl release <namespace/pod | uid>', 'ctl cleanup --yes' (uninstall)",
  usage: 'ctl list | ctl release <namespace/pod | uid> | ctl cleanup --yes --store kubernetes [store options]',
  options: ctlOptions,
  async run(config, positionals, ctx) {
    const [verb, arg] = positionals;
    if (verb === 'cleanup') return cleanup(config, ctx);
    if (verb !== 'list' && verb !== 'release') throw new ConfigError('CLI_USAGE', { reason: `ctl needs 'list', 'release <namespace/pod | uid>' or 'cleanup --yes', got '${verb ?? ''}'` });
    if (verb === 'release' && !arg) throw new ConfigError('CLI_USAGE', { reason: "ctl release needs a pod as 'namespace/name' or its UID" });
    const client = new AllocatorClient({ socket: config.socket, address: config.address || undefined, timeoutMs: config.timeout * 1000 });
    try {
      if (verb === 'list') {
        const l = await client.list();
        ctx.stdout.write(formatTable(l.allocations, Date.now()));
        ctx.stdout.write(`node ${l.node}: ${l.allocations.length} allocation(s), ${l.tablesFree} of ${l.tablesTotal} tables free\n`);
        return Exit.OK;
      }
      const res = await client.release(selectorFor(arg!), 'ctl');
      if (!res.found) { ctx.stdout.write(`nothing held for ${arg}\n`); return Exit.OK; }
      const a = res.allocation!;
      ctx.stdout.write(`${a.pod.namespace}/${a.pod.name} (uid ${a.pod.uid}) table ${a.table}: ${a.state}${a.state === 'busy-table' ? ' (kernel table still held; cleaned when its daemon lets go)' : ''}\n`);
      return Exit.OK;
    } finally {
      client.close();
    }
  },
});

/**
 * `ctl cleanup --yes`: what `helm uninstall` would leave — every IPPool entry and table Lease this
 * installation's allocators hold, on any node, finalizers included, and the node-sweeper Lease.
 * Prints each object it frees. Needs the allocator's store options (same namespaces and pools).
 */
async function cleanup(config: Parsed<typeof ctlOptions>, ctx: CommandContext): Promise<number> {
  if (config.store !== 'kubernetes') throw new ConfigError('CLI_USAGE', { reason: "ctl cleanup works on the Kubernetes store (--store kubernetes with the allocator's store options); the file store lives on each node and goes with it" });
  if (!config.yes) throw new ConfigError('CLI_USAGE', { reason: 'ctl cleanup frees every IPPool entry and table Lease of this installation on every node (kernel tables of running pods stay, their records go): confirm with --yes' });
  const pools = config.ipMode === 'reserve' ? poolsFromOptions(config) : [];
  // @kubernetes/client-node only here (the rest of ctl runs without it)
  const { createKubeClient, kubeConfigFrom } = await import('../kube/client.js');
  const { freeInstallation, SWEEPER_LEASE } = await import('./sweeper.js');
  const { compilePool } = await import('./pools.js');
  const kube = createKubeClient(kubeConfigFrom({ kubeconfig: config.kubeconfig }));
  const freed = await freeInstallation({ kube, leaseNamespace: config.leaseNamespace, poolNamespace: config.poolNamespace,
    pools: pools.map((p) => ({ span: compilePool(p), networkName: config.networkName || undefined })), markUninstalled: new Date().toISOString() }, () => true);
  for (const f of freed) ctx.stdout.write(`freed ${f.kind} ${f.name} (node ${f.node})\n`);
  const leader = await kube.deleteLease(config.leaseNamespace, SWEEPER_LEASE);
  if (leader) ctx.stdout.write(`freed lease ${SWEEPER_LEASE} (node sweeper leader)\n`);
  const n = (k: string) => freed.filter((f) => f.kind === k).length;
  ctx.stdout.write(`cleanup: ${n('ippool-entry')} IPPool entr${n('ippool-entry') === 1 ? 'y' : 'ies'} and ${n('lease') + (leader ? 1 : 0)} Lease(s) freed (lease namespace ${config.leaseNamespace}, pool namespace ${config.poolNamespace})\n`);
  return Exit.OK;
}
