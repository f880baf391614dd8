// CLI commands of the allocator program: `allocator` (runs the node service until SIGTERM) and
// `ctl list` / `ctl release <ns/pod | uid>` for operators, over the same gRPC socket.
import { defineCommand } from '../command.js';
import { ConfigError, Exit } from '../errors.js';
import { allocatorOptions, ctlOptions } from './options.js';
import { configFromOptions, startAllocator } from './allocator.js';
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
  summary: "operate the node allocator: 'ctl list', 'ctl release <namespace/pod | uid>'",
  usage: 'ctl list | ctl release <namespace/pod | uid>',
  options: ctlOptions,
  async run(config, positionals, ctx) {
    const [verb, arg] = positionals;
    if (verb !== 'list' && verb !== 'release') throw new ConfigError('CLI_USAGE', { reason: `ctl needs 'list' or 'release <namespace/pod | uid>', got '${verb ?? ''}'` });
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
