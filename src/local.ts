// `rtpengine-k8s local` (what `npm start` runs): an allocator with the file store and N sidecars
// in exec mode, each with a real rtpengine on a loopback media IP, then a live status table and
// the logs. Ctrl-C drains and stops everything. Steps that need root or the kernel module are skipped, and said so.
import { mkdir, appendFile, readdir, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineCommand } from './command.js';
import { opt } from './config.js';
import { createLogger, type Logger } from './log.js';
import { createRegistry } from './metrics.js';
import { Exit } from './errors.js';
import { startAllocator, type AllocatorHandle } from './allocator/allocator.js';
import { parseTableRange } from './allocator/tables.js';
import { startSidecar, type FullSidecarConfig, type SidecarHandle } from './sidecar/main.js';
import { detectKernel } from './sidecar/rtpengine.js';
import { renderStatusTable, rowFromStatus } from './sidecar/status-command.js';
import { parseOptions } from './config.js';
import { sidecarOptions } from './sidecar/options.js';
import { proxyOptions } from './sidecar/proxy-options.js';

const localOptions = {
  sidecars: opt.int('how many sidecars (each with its own rtpengine)', 2, { min: 1, max: 8 }),
  dir: opt.string('working directory: allocator state, sockets, logs', join(tmpdir(), 'rtpengine-k8s-local')),
  ngPort: opt.int('ng port of the first sidecar for Kamailio (next ones +1)', 22222, { min: 1024, max: 65000 }),
  controlPort: opt.int('control HTTP port of the first sidecar (/status, /metrics, POST /drain; next ones +1)', 9450, { min: 1024, max: 65000 }),
  rtpengineNgPort: opt.int("first rtpengine's own ng port on loopback (next ones +1)", 22300, { min: 1024, max: 65000 }),
  mediaPortBase: opt.int('first media port; each rtpengine gets a block of 1000', 30000, { min: 1024, max: 60000 }),
  rtpengineBinary: opt.string('rtpengine binary', 'rtpengine'),
  procRoot: opt.string("the kernel module's proc tree", '/proc/rtpengine'),
  drainSeconds: opt.int('on Ctrl-C, wait this long for calls to end before stopping', 10, { min: 1 }),
  refreshMs: opt.int('status table refresh period', 1000, { min: 200 }),
};

/** Log lines for the screen (ring) and the log file. */
function logSink(file: string, live: boolean, out: NodeJS.WritableStream) {
  const ring: string[] = [];
  let pending = Promise.resolve();
  return {
    ring,
    dest: {
      write(line: string) {
        pending = pending.then(() => appendFile(file, line).catch(() => undefined));
        if (live) { ring.push(line.trimEnd()); if (ring.length > 200) ring.shift(); } else out.write(line);
      },
    },
    flush: () => pending,
  };
}

export const localCommand = defineCommand({
  name: 'local',
  summary: 'run it all on this machine (npm start): allocator + sidecars with real rtpengines on loopback, live status table',
  options: localOptions,
  async run(config, _positionals, ctx) {
    const out = ctx.stdout as NodeJS.WriteStream;
    const live = Boolean(out.isTTY);
    await mkdir(config.dir, { recursive: true });
    // The local pods reuse fixed UIDs: a drain left from an earlier run must not carry over.
    const runDir = join(config.dir, 'run');
    for (const f of await readdir(runDir).catch(() => [] as string[])) {
      if (f.startsWith('drained-')) await unlink(join(runDir, f)).catch(() => undefined);
    }
    const sink = logSink(join(config.dir, 'local.log'), live, out);
    const log: Logger = createLogger({ level: 'info', pretty: true }, sink.dest);
    const notes: string[] = [];

    // What this machine allows: say what is skipped and why, up front.
    const root = process.getuid?.() === 0;
    const kernel = await detectKernel(config.procRoot);
    const kernelOk = kernel.present && root;
    if (!kernel.present) notes.push(`kernel forwarding: skipped — ${kernel.reason}; rtpengine runs in userspace (table -1)`);
    else if (!root) notes.push('kernel forwarding: skipped — the module is loaded but installing the iptables rule needs root; userspace instead');
    else notes.push(`kernel forwarding: on — tables from the allocator, iptables chain per sidecar (${config.procRoot})`);
    notes.push('media addresses: not added — 127.0.1.x on loopback are already local (no NET_ADMIN needed)');
    notes.push('pod-deletion-cost: skipped — no Kubernetes API in local mode');

    let allocator: AllocatorHandle | undefined;
    const sidecars: SidecarHandle[] = [];
    let timer: NodeJS.Timeout | undefined;
    try {
      allocator = await startAllocator({
        node: 'local', socket: join(config.dir, 'allocator.sock'), tableRange: parseTableRange('0-63'),
        pools: [{ name: 'local', cidr: '127.0.1.0/24', rangeStart: '127.0.1.10' }],
        stateFile: join(config.dir, 'allocator-state.json'), procRoot: kernelOk ? config.procRoot : join(config.dir, 'no-kernel-module'),
        leaseTtlMs: 60_000, sweepIntervalMs: 2000,
      }, { log });

      for (let i = 0; i < config.sidecars; i++) {
        const name = `local-${String.fromCharCode(97 + i)}`;
        const env = { POD_NAME: name, POD_NAMESPACE: 'local', POD_UID: `00000000-0000-4000-8000-${String(i + 1).padStart(12, '0')}`, NODE_NAME: 'local' };
        // The sidecar's own option schema fills every default; only the local choices are given.
        const { config: sc } = parseOptions({ ...sidecarOptions, ...proxyOptions }, [
          '--allocator-socket', allocator.socket, '--rtpengine-mode', 'exec', '--rtpengine-binary', config.rtpengineBinary,
          '--run-dir', join(config.dir, 'run'), '--proc-root', kernelOk ? config.procRoot : join(config.dir, 'no-kernel-module'),
          '--media-address-mode', 'none', '--no-deletion-cost',
          '--ng-listen', `127.0.0.1:${config.ngPort + i}`, '--ng-upstream', `127.0.0.1:${config.rtpengineNgPort + i}`,
          '--control-listen', `127.0.0.1:${config.controlPort + i}`,
          '--port-min', String(config.mediaPortBase + i * 1000), '--port-max', String(config.mediaPortBase + i * 1000 + 999),
          '--drain-deadline-seconds', String(config.drainSeconds), '--delete-delay-seconds', '0',
          // No Kamailio table to leave on this machine: stop as soon as the drain is done.
          '--drain-linger-seconds', '0',
          '--rtpengine-options', JSON.stringify({ 'num-threads': 2 }),
        ], env);
        const handle = await startSidecar(sc as FullSidecarConfig, { log: log.child({ pod: `local/${name}` }), registry: createRegistry({ labels: { pod: `local/${name}` } }), signal: ctx.signal });
        sidecars.push(handle);
        if (ctx.signal.aborted) break;
      }

      const draw = () => {
        const table = renderStatusTable(sidecars.map((s) => rowFromStatus(s.status() as unknown as Record<string, unknown>)));
        if (!live) return table;
        const rows = out.rows ?? 40;
        const head = [
          'rtpengine-k8s local — Ctrl-C drains and stops everything', '',
          table.trimEnd(), '',
          ...notes.map((n) => `· ${n}`),
          `· allocator: ${allocator!.socket}   logs: ${join(config.dir, 'local.log')}`,
          `· try: echo -n 'c1 d7:command4:pinge' | nc -u -w1 127.0.0.1 ${config.ngPort}`, '',
          '── logs ──',
        ];
        const room = Math.max(3, rows - head.length - 1);
        const cols = out.columns ?? 120;
        return '\x1b[H\x1b[2J' + [...head, ...sink.ring.slice(-room).map((l) => l.slice(0, cols))].join('\n') + '\n';
      };
      if (!live) {
        out.write(notes.map((n) => `note: ${n}\n`).join(''));
      }
      let last = '';
      const tick = () => {
        const frame = draw();
        if (live || frame !== last) out.write(frame);
        last = frame;
      };
      tick();
      timer = setInterval(tick, config.refreshMs);

      // Run until Ctrl-C (or a sidecar ends by itself, e.g. its rtpengine died).
      const aborted = new Promise<string>((r) => ctx.signal.addEventListener('abort', () => r('interrupted'), { once: true }));
      const ended = Promise.race(sidecars.map((s, i) => s.done.then((code) => `sidecar ${i} ended (exit ${code})`)));
      const why = ctx.signal.aborted ? 'interrupted' : await Promise.race([aborted, ended]);
      log.info({ why }, 'stopping: draining sidecars (new calls refused), then rtpengine, then the allocator');
      const codes = await Promise.all(sidecars.map((s) => s.stop('local stop')));
      return codes.every((c) => c === Exit.OK) ? Exit.OK : Exit.SOFTWARE;
    } finally {
      if (timer) clearInterval(timer);
      for (const s of sidecars) await s.stop('local stop').catch(() => undefined);
      await allocator?.close();
      if (live) out.write([...sink.ring.slice(-15), 'stopped.', ''].join('\n'));
      await sink.flush();
    }
  },
});
