// `rtpengine-k8s local` (what `npm start` runs): the whole story on one machine — allocator, N
// sidecar pods with real rtpengines, a real Kamailio fed by kamailio-sync, SIPp calls with RTP
// both ways — with a live view; `+`/`-` or `local scale N` scale it; Ctrl-C drains and sums up.
import { createServer, request, type Server } from 'node:http';
import { mkdir, appendFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineCommand } from './command.js';
import { opt } from './config.js';
import { createLogger, type Logger } from './log.js';
import { Exit, ConfigError } from './errors.js';
import { detectKernel } from './sidecar/rtpengine.js';
import { LocalRun, LOCAL_LINGER_SECONDS } from './local/run.js';
import { callsLine, podTable, summaryText } from './local/view.js';
import { MAX_PODS } from './local/pods.js';

/** rtpengine uses 4 ports per call (RTP + RTCP on each side). */
export const PORTS_PER_CALL = 4;

const localOptions = {
  sidecars: opt.int('how many sidecar pods to start with (each with its own rtpengine)', 2, { min: 1, max: MAX_PODS }),
  dir: opt.string('working directory: allocator state, sockets, logs', join(tmpdir(), 'rtpengine-k8s-local')),
  traffic: opt.bool('place SIPp calls with RTP through Kamailio (--no-traffic: idle pods only)', true),
  rate: opt.int('new calls per second', 2, { min: 1, max: 200 }),
  callMinSeconds: opt.int('shortest call', 10, { min: 1 }),
  callMaxSeconds: opt.int('longest call (durations are drawn uniformly in between)', 30, { min: 1 }),
  ngPort: opt.int('ng port of the first pod for Kamailio (next ones +1)', 22222, { min: 1024, max: 65000 }),
  controlPort: opt.int('control HTTP port of the first pod (/status, /metrics, POST /drain; next ones +1)', 9450, { min: 1024, max: 65000 }),
  rtpengineNgPort: opt.int("first rtpengine's own ng port on loopback (next ones +1)", 22300, { min: 1024, max: 65000 }),
  mediaPortMin: opt.int('first media port of every rtpengine (each has its own media IP, so the ranges do not collide)', 30000, { min: 1024, max: 65535 }),
  mediaPortMax: opt.int(`last media port (${PORTS_PER_CALL} ports per call: the default range holds 2,500 calls per pod)`, 39999, { min: 1024, max: 65535 }),
  sipPort: opt.int("Kamailio's SIP port (UDP, loopback)", 25060, { min: 1024, max: 65535 }),
  rpcPort: opt.int("Kamailio's JSON-RPC port (HTTP, loopback)", 25071, { min: 1024, max: 65535 }),
  sippPortBase: opt.int('first of the ports SIPp and the caller RTP endpoint use (caller SIP, callee SIP, echo +0/+2, control, caller RTP, caller media: base..base+7)', 25080, { min: 1024, max: 65000 }),
  rtpengineBinary: opt.string('rtpengine binary', 'rtpengine'),
  procRoot: opt.string("the kernel module's proc tree", '/proc/rtpengine'),
  drainDeadlineSeconds: opt.int("a pod's drain gives up after this long", 120, { min: 1 }),
  refreshMs: opt.int('view refresh period', 1000, { min: 200 }),
  persistence: opt.bool('call persistence: a local redis-server for the run, one database per pod; rtpengine gets --redis/--redis-write and a crashed rtpengine comes back with its calls (--no-persistence: off)', true),
  redisPort: opt.int("the local redis-server's port (loopback; with persistence)", 25090, { min: 1024, max: 65535 }),
  brokenDrain: opt.bool('TEST ONLY: scale-in kills the pod at once instead of draining it (shows that scale-proof catches a broken drain)', false),
};

/** The ports one run uses, all derived from the options (a test reserves exactly these). */
export function localPorts(c: { ngPort: number; controlPort: number; rtpengineNgPort: number; mediaPortMin: number; mediaPortMax: number; sipPort: number; rpcPort: number; sippPortBase: number }) {
  const b = c.sippPortBase;
  return {
    ng: c.ngPort, control: c.controlPort, rtpengineNg: c.rtpengineNgPort, mediaMin: c.mediaPortMin, mediaMax: c.mediaPortMax,
    sip: c.sipPort, rpc: c.rpcPort, uac: b, uas: b + 1, echo: b + 2, sippControl: b + 5, callerRtp: b + 6, uacMedia: b + 7,
  };
}

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

/** `local scale N` from another terminal: asks the running `local` over its unix socket. */
function askScale(dir: string, n: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: join(dir, 'local.sock'), path: `/scale?n=${n}`, method: 'POST' }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(body))));
    });
    req.on('error', (e) => reject(new Error(`no local run answers at ${join(dir, 'local.sock')}: ${e.message}`)));
    req.end();
  });
}

export const localCommand = defineCommand({
  name: 'local',
  summary: 'run it all on this machine (npm start): allocator, sidecar pods with real rtpengines, Kamailio, SIPp calls with media; `local scale N` scales it',
  usage: 'local [scale N] [--sidecars N] [--rate R] [--no-traffic] …',
  options: localOptions,
  async run(config, positionals, ctx) {
    if (positionals[0] === 'scale') {
      const n = Number(positionals[1]);
      if (!Number.isInteger(n) || n < 0 || n > MAX_PODS) throw new ConfigError('CONFIG_INVALID', { problems: [`local scale: expected a number of pods 0–${MAX_PODS}, got '${positionals[1] ?? ''}'`] });
      ctx.stdout.write(await askScale(config.dir, n) + '\n');
      return Exit.OK;
    }
    if (config.callMaxSeconds < config.callMinSeconds) throw new ConfigError('CONFIG_INVALID', { problems: ['--call-max-seconds must be at least --call-min-seconds'] });
    if (config.mediaPortMax - config.mediaPortMin + 1 < 2000 * PORTS_PER_CALL) {
      throw new ConfigError('CONFIG_INVALID', { problems: [`--media-port-min..--media-port-max must hold at least 2,000 calls (${2000 * PORTS_PER_CALL} ports)`] });
    }
    const out = ctx.stdout as NodeJS.WriteStream;
    const live = Boolean(out.isTTY);
    await mkdir(config.dir, { recursive: true });
    const sink = logSink(join(config.dir, 'local.log'), live, out);
    const log: Logger = createLogger({ level: 'info', pretty: true }, sink.dest);
    const ac = new AbortController();
    ctx.signal.addEventListener('abort', () => ac.abort(), { once: true });

    const notes: string[] = [];
    const root = process.getuid?.() === 0;
    const kernel = await detectKernel(config.procRoot);
    const kernelOk = kernel.present && root;
    if (!kernel.present) notes.push(`kernel forwarding: skipped — ${kernel.reason}; rtpengine runs in userspace (table -1)`);
    else if (!root) notes.push('kernel forwarding: skipped — the module is loaded but installing the iptables rule needs root; userspace instead');
    else notes.push(`kernel forwarding: on — tables from the allocator, iptables chain per sidecar (${config.procRoot})`);
    notes.push('media addresses: not added — 127.0.1.x on loopback are already local (no NET_ADMIN needed)');
    notes.push('pod-deletion-cost: skipped — no Kubernetes API in local mode (computed here the same way to pick the pod to remove)');
    const perPod = Math.floor((config.mediaPortMax - config.mediaPortMin + 1) / PORTS_PER_CALL);
    notes.push(`limit: media ports ${config.mediaPortMin}–${config.mediaPortMax} per pod on its own IP → at most ${perPod.toLocaleString('en')} calls per pod`);
    notes.push(config.persistence
      ? `call persistence: on — redis-server on 127.0.0.1:${config.redisPort} (nothing saved to disk), one database per pod; kill -9 a pod's rtpengine and its calls come back (--no-persistence: off)`
      : 'call persistence: off (--no-persistence) — a crashed rtpengine loses its calls');
    notes.push(`drain: preStop \`rtpengine-k8s drain --wait\`, then SIGTERM; each pod lingers ${LOCAL_LINGER_SECONDS} s after its drain so Kamailio drops it first`);

    const run = new LocalRun({
      dir: config.dir, pods: config.sidecars, traffic: config.traffic, rate: config.rate,
      durationMinMs: config.callMinSeconds * 1000, durationMaxMs: config.callMaxSeconds * 1000,
      ports: localPorts(config), procRoot: kernelOk ? config.procRoot : join(config.dir, 'no-kernel-module'), kernel: kernelOk,
      rtpengineBinary: config.rtpengineBinary, drainDeadlineSeconds: config.drainDeadlineSeconds, brokenDrain: config.brokenDrain,
      ...(config.persistence ? { persistence: { redisPort: config.redisPort } } : {}),
    }, log);

    let server: Server | undefined;
    let timer: NodeJS.Timeout | undefined;
    const scaleTo = (n: number) => { void run.scale(n).catch((e: Error) => log.error({ err: e.message }, 'scale failed')); };
    const onKey = (k: Buffer) => {
      const s = k.toString();
      if (s === '+') scaleTo(run.pods.replicas().length + 1);
      else if (s === '-') scaleTo(run.pods.replicas().length - 1);
      else if (s === '\x03' || s === 'q') ac.abort();
    };
    try {
      if (!live) out.write(notes.map((n) => `note: ${n}\n`).join(''));
      const sock = join(config.dir, 'local.sock');
      await unlink(sock).catch(() => undefined);
      server = createServer((req, res) => {
        const n = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('n'));
        if (req.method !== 'POST' || !Number.isInteger(n) || n < 0 || n > MAX_PODS) { res.writeHead(400); res.end(`POST /scale?n=0..${MAX_PODS}`); return; }
        scaleTo(n);
        res.writeHead(200); res.end(`scaling to ${n} pod(s)`);
      });
      await new Promise<void>((r) => server!.listen(sock, r));

      const draw = () => {
        const head = [
          `rtpengine-k8s local — ${live ? '+/- scale, Ctrl-C drains and stops everything' : 'Ctrl-C drains and stops everything'}`, '',
          run.pods ? podTable(run) : 'starting…', '', run.pods ? callsLine(run) : '', '',
          ...notes.map((n) => `· ${n}`),
          `· scale from another terminal: rtpengine-k8s local scale N --dir ${config.dir}   logs: ${config.dir}/*.log`, '',
        ];
        if (!live) return head.slice(2, 5).join('\n') + '\n';
        const room = Math.max(3, (out.rows ?? 40) - head.length - 2);
        const cols = out.columns ?? 120;
        return '\x1b[H\x1b[2J' + [...head, '── logs ──', ...sink.ring.slice(-room).map((l) => l.slice(0, cols))].join('\n') + '\n';
      };
      let last = '';
      const tick = () => { const f = draw(); if (live || f !== last) out.write(f); last = f; };
      timer = setInterval(tick, config.refreshMs);
      if (live && process.stdin.isTTY) { process.stdin.setRawMode(true); process.stdin.resume(); process.stdin.on('data', onKey); }

      try {
        await run.start(ac.signal);
      } catch (e) {
        // Ctrl-C while starting is a stop like any other: drain what started, sum up, exit 0.
        if (!ac.signal.aborted) throw e;
      }
      tick();
      const why = ac.signal.aborted ? 'interrupted' : await new Promise<string>((resolve) => {
        // Until Ctrl-C (or a closed terminal, or `q`), or until every pod has ended by itself.
        const t = setInterval(() => { if (run.pods.live().length === 0) { clearInterval(t); resolve('every pod ended'); } }, 500);
        ac.signal.addEventListener('abort', () => { clearInterval(t); resolve('interrupted'); }, { once: true });
      });
      log.info({ why }, 'stopping: no new calls, calls in progress end, every pod drains (preStop, SIGTERM), then Kamailio and the allocator');
      await run.stop(config.callMaxSeconds * 1000 + 10_000);
      out.write(`\nsummary\n${summaryText(run.summary())}\n`);
      return Exit.OK;
    } finally {
      if (timer) clearInterval(timer);
      if (live && process.stdin.isTTY) { process.stdin.off('data', onKey); process.stdin.setRawMode(false); process.stdin.pause(); }
      await run.close().catch(() => undefined);
      await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
      log.info('allocator stopped; local run over');
      if (live) out.write([...sink.ring.slice(-10), 'stopped.', ''].join('\n'));
      await sink.flush();
      // Everything is stopped. Should anything still hold the process 10 s on (idle HTTP keep-alive sockets
      // close after 4 s; anything longer is a leak), say what and end anyway:
      // a user's Ctrl-C must never leave `npm start` hanging. (Unref'd: it never holds the process itself.)
      setTimeout(() => {
        const held = (process as unknown as { _getActiveHandles(): object[] })._getActiveHandles().map((h) => h.constructor?.name ?? typeof h);
        process.stderr.write(`rtpengine-k8s local: still running 10 s after stopping everything, held by: ${held.join(', ')}; exiting\n`);
        process.exit(process.exitCode ?? Exit.SOFTWARE);
      }, 10_000).unref();
    }
  },
});
