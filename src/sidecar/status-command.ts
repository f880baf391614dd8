// `rtpengine-k8s status`: one row per sidecar (pod, table, media IP, ng address, sessions, state),
// read from each sidecar's control server (found through the run directory) and completed with
// the allocator's list, so a pod whose sidecar is down still shows its allocation.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defineCommand } from '../command.js';
import { opt } from '../config.js';
import { AllocatorClient, DEFAULT_SOCKET } from '../allocator/client.js';
import { Exit } from '../errors.js';

export interface StatusRow {
  pod: string;
  table: string;
  mediaIp: string;
  ng: string;
  sessions: string;
  state: string;
  kernel: string;
}

const COLUMNS: Array<[keyof StatusRow, string]> = [
  ['pod', 'POD'], ['table', 'TABLE'], ['mediaIp', 'MEDIA IP'], ['ng', 'NG ADDRESS'], ['sessions', 'SESSIONS'], ['state', 'STATE'], ['kernel', 'FORWARDING'],
];

export function renderStatusTable(rows: readonly StatusRow[]): string {
  const widths = COLUMNS.map(([k, h]) => Math.max(h.length, ...rows.map((r) => r[k].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(COLUMNS.map(([, h]) => h)), ...rows.map((r) => line(COLUMNS.map(([k]) => r[k])))].join('\n') + '\n';
}

/** A sidecar's /status JSON → a row. */
export function rowFromStatus(s: Record<string, any>): StatusRow {
  return {
    pod: String(s.pod ?? '?'),
    table: s.table === undefined ? '-' : String(s.table),
    mediaIp: Array.isArray(s.mediaIps) && s.mediaIps.length ? s.mediaIps.join(',') : '-',
    ng: Array.isArray(s.ng) && s.ng.length ? s.ng.join(',') : '-',
    sessions: s.sessions === undefined ? '-' : String(s.sessions),
    state: String(s.state ?? '?'),
    kernel: s.kernelForwarding === undefined ? '-' : s.kernelForwarding ? 'kernel' : 'userspace',
  };
}

export async function collectStatus(o: { runDir: string; allocatorSocket?: string; timeoutMs?: number }): Promise<{ rows: StatusRow[]; problems: string[] }> {
  const rows: StatusRow[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  let files: string[] = [];
  try { files = (await readdir(o.runDir)).filter((f) => /^sidecar-.*\.json$/.test(f)); } catch (e) {
    problems.push(`cannot read ${o.runDir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  await Promise.all(files.sort().map(async (f) => {
    let info: { pod: string; uid: string; control: string };
    try { info = JSON.parse(await readFile(join(o.runDir, f), 'utf8')); } catch { return; }
    try {
      const res = await fetch(`${info.control}/status`, { signal: AbortSignal.timeout(o.timeoutMs ?? 2000) });
      rows.push(rowFromStatus(await res.json() as Record<string, unknown>));
    } catch (e) {
      rows.push({ pod: info.pod, table: '-', mediaIp: '-', ng: '-', sessions: '-', state: 'unreachable', kernel: '-' });
      problems.push(`${info.pod}: control server ${info.control} not answering (${(e as Error).message})`);
    }
    seen.add(info.pod);
  }));
  if (o.allocatorSocket) {
    const client = new AllocatorClient({ socket: o.allocatorSocket, timeoutMs: o.timeoutMs ?? 2000 });
    try {
      const list = await client.list();
      for (const a of list.allocations) {
        const pod = `${a.pod.namespace}/${a.pod.name}`;
        if (seen.has(pod)) continue;
        rows.push({ pod, table: String(a.table), mediaIp: a.addresses.map((x) => x.ip).join(',') || '-', ng: '-', sessions: '-', state: `no sidecar (allocation ${a.state})`, kernel: '-' });
      }
    } catch (e) {
      problems.push(`allocator ${o.allocatorSocket}: ${(e as Error).message}`);
    } finally {
      client.close();
    }
  }
  rows.sort((a, b) => a.pod.localeCompare(b.pod));
  return { rows, problems };
}

export const statusCommand = defineCommand({
  name: 'status',
  summary: 'print the sidecars on this node (or in this pod): pod, table, media IP, ng address, sessions, state',
  options: {
    runDir: opt.string('run directory the sidecars announce themselves in', '/run/rtpengine-k8s'),
    allocatorSocket: opt.string("also list the allocator's allocations (empty = skip)", DEFAULT_SOCKET),
    json: opt.bool('print JSON instead of a table', false),
  },
  async run(config, _positionals, ctx) {
    const { rows, problems } = await collectStatus({ runDir: config.runDir, allocatorSocket: config.allocatorSocket || undefined });
    if (config.json) ctx.stdout.write(JSON.stringify({ rows, problems }, null, 2) + '\n');
    else {
      ctx.stdout.write(rows.length ? renderStatusTable(rows) : 'no sidecars found\n');
      for (const p of problems) ctx.stdout.write(`note: ${p}\n`);
    }
    return rows.length ? Exit.OK : Exit.UNAVAILABLE;
  },
});
