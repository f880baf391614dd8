// The caller's RTP endpoint and the call ledger: one UDP socket named in every offer; each call,
// once up, sends 20 ms PCMU packets (50/s) to rtpengine's address from the 200 OK, and SIPp's
// callee echoes them back (50/s the other way). Every echo's arrival is timed per call.
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import type { TrafficEvent } from './traffic.js';

/** Epoch ms from the monotonic clock (sub-ms, never steps back): every media time stamp here. */
export const wallNow = (): number => performance.timeOrigin + performance.now();

export const PACKET_MS = 20;
/** A call whose media stopped longer than this before its BYE (or in between) is dropped. */
export const MEDIA_GAP_LIMIT_MS = 1000;

export type CallPhase = 'inviting' | 'up' | 'ending' | 'completed' | 'failed' | 'bye-failed';

export interface CallRecord {
  callId: string;
  phase: CallPhase;
  invitedAt: number;
  upAt?: number;
  byeAt?: number;
  endAt?: number;
  /** rtpengine's address for the caller's leg (its media IP names the pod). */
  remote?: { ip: string; port: number };
  sent: number;
  received: number;
  firstRxAt?: number;
  lastRxAt?: number;
  /** Longest silence seen between echoes while up (ms), including the first one's wait. */
  maxGapMs: number;
  /** rtpengine's own view (query samples), filled by the sampler. */
  rtpe: { samples: number; lastAt?: number; last?: number[]; stalledAt: number[]; unknownAt: number[]; resets?: number };
}

export interface MediaSummary { worstGapMs: number; gapCalls: number }

/** Silence at the end of a call: from its last echo (or from when it came up) to its BYE. */
export function tailGapMs(c: CallRecord): number {
  if (c.upAt === undefined || c.byeAt === undefined) return 0;
  return c.byeAt - (c.lastRxAt ?? c.upAt);
}

/** The media verdict for one call from the endpoint's own timing. */
export function mediaGapMs(c: CallRecord): number {
  return Math.max(c.maxGapMs, tailGapMs(c));
}

export class CallerMedia {
  readonly calls = new Map<string, CallRecord>();
  private readonly byRemote = new Map<string, CallRecord>();
  private readonly active = new Set<CallRecord>();
  private readonly ssrc = new Map<CallRecord, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly payload = Buffer.alloc(160, 0xff);
  stray = 0;

  private constructor(private readonly sock: Socket, readonly port: number, private readonly now: () => number) {
    sock.on('message', (_m, r) => this.onPacket(`${r.address}:${r.port}`));
    this.timer = setInterval(() => this.tick(), PACKET_MS / 2);
  }

  static async open(port: number, now: () => number = wallNow): Promise<CallerMedia> {
    const sock = createSocket('udp4');
    await new Promise<void>((resolve, reject) => { sock.once('error', reject); sock.bind(port, '127.0.0.1', () => { sock.off('error', reject); resolve(); }); });
    sock.setRecvBufferSize(4 << 20);
    sock.setSendBufferSize(4 << 20);
    return new CallerMedia(sock, port, now);
  }

  /** One step of one call from the caller's log. */
  onEvent(e: TrafficEvent): void {
    const t = this.now();
    let c = this.calls.get(e.callId);
    if (!c) {
      c = { callId: e.callId, phase: 'inviting', invitedAt: t, sent: 0, received: 0, maxGapMs: 0, rtpe: { samples: 0, stalledAt: [], unknownAt: [] } };
      this.calls.set(e.callId, c);
    }
    switch (e.kind) {
      case 'UP':
        c.phase = 'up'; c.upAt = t; c.remote = { ip: e.ip, port: e.port };
        this.byRemote.set(`${e.ip}:${e.port}`, c);
        this.ssrc.set(c, randomBytes(4).readUInt32BE(0));
        this.active.add(c);
        break;
      case 'BYE':
        c.phase = 'ending'; c.byeAt = t;
        if (c.lastRxAt === undefined && c.upAt !== undefined) c.maxGapMs = Math.max(c.maxGapMs, t - c.upAt);
        this.active.delete(c);
        break;
      case 'END': c.phase = 'completed'; c.endAt = t; this.forget(c); break;
      case 'FAIL': c.phase = 'failed'; c.endAt = t; this.active.delete(c); this.forget(c); break;
      case 'BYEFAIL': c.phase = 'bye-failed'; c.endAt = t; this.forget(c); break;
      default: break;
    }
  }

  /** Calls up now (media flowing or due). */
  upCalls(): CallRecord[] { return [...this.active]; }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.sock.close();
  }

  private forget(c: CallRecord): void {
    if (c.remote) this.byRemote.delete(`${c.remote.ip}:${c.remote.port}`);
    this.ssrc.delete(c);
  }

  private tick(): void {
    const t = this.now();
    for (const c of this.active) {
      const due = Math.floor((t - c.upAt!) / PACKET_MS) + 1;
      // After a stall of this process, catch up by at most 3 packets (the rest are skipped, and the echo gap shows it).
      if (due - c.sent > 3) c.sent = due - 3;
      while (c.sent < due) this.send(c);
    }
  }

  private send(c: CallRecord): void {
    const b = Buffer.allocUnsafe(172);
    b[0] = 0x80; b[1] = 0; // RTP v2, PCMU
    b.writeUInt16BE(c.sent & 0xffff, 2);
    b.writeUInt32BE((c.sent * 160) >>> 0, 4);
    b.writeUInt32BE(this.ssrc.get(c) ?? 0, 8);
    this.payload.copy(b, 12);
    c.sent++;
    this.sock.send(b, c.remote!.port, c.remote!.ip);
  }

  private onPacket(from: string): void {
    const c = this.byRemote.get(from);
    if (!c) { this.stray++; return; }
    const t = this.now();
    if (c.phase !== 'up') return; // echoes still in flight after the BYE
    c.received++;
    const since = c.lastRxAt ?? c.upAt!;
    if (t - since > c.maxGapMs) c.maxGapMs = t - since;
    c.firstRxAt ??= t;
    c.lastRxAt = t;
  }
}
