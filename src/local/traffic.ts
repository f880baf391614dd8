// The call generator: SIPp as callee (answers with its RTP echo port) and SIPp as caller through
// Kamailio, at a rate that can change while it runs (SIPp's UDP control port). The caller's steps
// come back through its -trace_logs file, tailed here line by line.
import { readFile, writeFile, open } from 'node:fs/promises';
import { createSocket } from 'node:dgram';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startChild, type Child } from './children.js';

const SIPP_DIR = join(dirname(fileURLToPath(import.meta.url)), 'sipp');

export interface TrafficOptions {
  dir: string;
  kamailio: { host: string; port: number };
  uacPort: number;
  uasPort: number;
  /** SIPp callee's RTP echo port (and +2, which SIPp also binds). */
  echoPort: number;
  /** SIPp caller's control port (rate changes, quit). */
  controlPort: number;
  /** Where the SDP offer asks for media: the project's caller RTP endpoint. */
  callerRtpPort: number;
  /** A port SIPp's caller binds for its own (unused) media socket. */
  uacMediaPort: number;
  rate: number;
  durationMinMs: number;
  durationMaxMs: number;
  /** Stop after this many calls (SIPp -m); default: run until told to finish. */
  maxCalls?: number;
  /** At most this many calls at once (SIPp -l). */
  concurrencyLimit?: number;
  binary?: string;
}

export type TrafficEvent =
  | { kind: 'INV'; callId: string }
  | { kind: 'UP'; callId: string; ip: string; port: number }
  | { kind: 'BYE' | 'END' | 'FAIL' | 'BYEFAIL'; callId: string };

export function parseTrafficLine(line: string): TrafficEvent | undefined {
  const m = /\b(INV|UP|BYE|END|FAIL|BYEFAIL) (\S+)(?: ([0-9.]+) (\d+))?\s*$/.exec(line);
  if (!m) return undefined;
  if (m[1] === 'UP') return m[3] && m[4] ? { kind: 'UP', callId: m[2]!, ip: m[3], port: Number(m[4]) } : undefined;
  return { kind: m[1] as 'INV', callId: m[2]! };
}

export async function uacScenario(o: Pick<TrafficOptions, 'callerRtpPort' | 'durationMinMs' | 'durationMaxMs'>): Promise<string> {
  const t = await readFile(join(SIPP_DIR, 'uac.xml'), 'utf8');
  return t.replaceAll('CALLER_RTP_PORT', String(o.callerRtpPort)).replaceAll('PAUSE_MIN_MS', String(o.durationMinMs))
    .replaceAll('PAUSE_MAX_MS', String(o.durationMaxMs)).replaceAll('SETUP_TIMEOUT_MS', '8000').replaceAll('BYE_TIMEOUT_MS', '8000');
}

export interface Traffic {
  uas: Child;
  uac: Child;
  setRate(cps: number): void;
  /** Stop placing calls; calls in progress end normally, then the caller exits (SIPp's soft quit). */
  finish(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts both SIPps; `onEvent` gets every step of every call, in order. */
export async function startTraffic(o: TrafficOptions, onEvent: (e: TrafficEvent) => void): Promise<Traffic> {
  const sipp = o.binary ?? 'sipp';
  const uas = startChild('sipp-callee', sipp, ['-sf', join(SIPP_DIR, 'uas.xml'), '-i', '127.0.0.1', '-p', String(o.uasPort),
    '-mi', '127.0.0.1', '-mp', String(o.echoPort), '-rtp_echo', '-nostdin', '-max_socket', '4096'], { logFile: join(o.dir, 'sipp-callee.out'), cwd: o.dir });
  const scen = join(o.dir, 'uac.xml');
  await writeFile(scen, await uacScenario(o));
  const logFile = join(o.dir, 'sipp-caller.log');
  await writeFile(logFile, '');
  const uac = startChild('sipp-caller', sipp, [`${o.kamailio.host}:${o.kamailio.port}`, '-sf', scen, '-i', '127.0.0.1', '-p', String(o.uacPort),
    '-mi', '127.0.0.1', '-mp', String(o.uacMediaPort), '-r', String(o.rate), '-rp', '1000', '-l', String(o.concurrencyLimit ?? 5000), ...(o.maxCalls ? ['-m', String(o.maxCalls)] : []),
    '-trace_logs', '-log_file', logFile, '-cp', String(o.controlPort), '-nostdin', '-max_socket', '4096'], { logFile: join(o.dir, 'sipp-caller.out'), cwd: o.dir });

  // Tail the caller's log (SIPp writes each <log> line as it happens).
  const fh = await open(logFile, 'r');
  let offset = 0;
  let partial = '';
  let reading = false;
  const buf = Buffer.alloc(1 << 20);
  const pump = async () => {
    if (reading) return;
    reading = true;
    try {
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
        if (!bytesRead) break;
        offset += bytesRead;
        const lines = (partial + buf.subarray(0, bytesRead).toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) { const e = parseTrafficLine(l); if (e) onEvent(e); }
      }
    } finally { reading = false; }
  };
  const timer = setInterval(() => { void pump(); }, 20);
  const ctl = createSocket('udp4');
  let stopped = false;
  const command = (text: string) => ctl.send(Buffer.from(text), o.controlPort, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 300));
  for (const c of [uas, uac]) if (!c.alive()) throw new Error(`${c.name} exited at start-up:\n${c.tail().slice(-2000)}`);
  return {
    uas, uac,
    setRate: (cps) => command(`cset rate ${cps}`),
    async finish(timeoutMs) {
      if (!uac.alive()) return;
      command('q');
      await Promise.race([uac.exited, new Promise((r) => setTimeout(r, timeoutMs))]);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await uac.stop('SIGTERM', 3000);
      await uas.stop('SIGTERM', 3000);
      clearInterval(timer);
      await pump();
      await fh.close();
      ctl.close();
    },
  };
}
