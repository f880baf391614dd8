// A minimal SIP user agent over UDP for end-to-end tests: INVITE with an SDP body, ACK, BYE;
// replies matched by Call-ID + CSeq. No retransmissions by default, so every lost or stalled
// transaction shows up as a failure (a timeout) instead of being papered over.
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';

export interface SipResponse {
  status: number;
  reason: string;
  headers: Record<string, string>;
  body: string;
  /** Milliseconds from sending the request to this final response. */
  elapsedMs: number;
}

export interface Dialog { callId: string; fromTag: string; toTag?: string; target: Target; cseq: number }
export interface Target { host: string; port: number }

const COMPACT: Record<string, string> = { i: 'call-id', f: 'from', t: 'to', v: 'via', l: 'content-length', c: 'content-type', m: 'contact' };

export function parseSipResponse(text: string): Omit<SipResponse, 'elapsedMs'> | undefined {
  const split = text.indexOf('\r\n\r\n');
  const head = split < 0 ? text : text.slice(0, split);
  const body = split < 0 ? '' : text.slice(split + 4);
  const [first, ...lines] = head.split('\r\n');
  const m = /^SIP\/2\.0 (\d{3}) ?(.*)$/.exec(first ?? '');
  if (!m) return undefined;
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i <= 0) continue;
    let name = l.slice(0, i).trim().toLowerCase();
    name = COMPACT[name] ?? name;
    if (!(name in headers)) headers[name] = l.slice(i + 1).trim();
  }
  return { status: Number(m[1]), reason: m[2] ?? '', headers, body };
}

export const tagOf = (header: string | undefined): string | undefined => /;\s*tag=([^;>\s]+)/i.exec(header ?? '')?.[1];

export function sdpOffer(host = '127.0.0.1', port = 40000): string {
  const ip = host.includes(':') ? `IP6 ${host}` : `IP4 ${host}`;
  return ['v=0', `o=- ${Date.now()} 1 IN ${ip}`, 's=-', `c=IN ${ip}`, 't=0 0', `m=audio ${port} RTP/AVP 0 8 101`,
    'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:101 telephone-event/8000', 'a=sendrecv', ''].join('\r\n');
}

interface Pending { resolve: (r: SipResponse) => void; reject: (e: Error) => void; t0: number; timer: NodeJS.Timeout }

export class SipUac {
  private readonly pending = new Map<string, Pending>();
  private constructor(private readonly sock: Socket, readonly host: string, readonly port: number) {
    sock.on('message', (m) => this.onMessage(m.toString('utf8')));
  }

  static async open(host = '127.0.0.1'): Promise<SipUac> {
    const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => { sock.once('error', reject); sock.bind(0, host, () => { sock.off('error', reject); resolve(); }); });
    return new SipUac(sock, host, sock.address().port);
  }

  /** Sends an INVITE with an SDP offer; resolves with the final response (1xx are skipped). */
  async invite(target: Target, o: { callId?: string; fromTag?: string; sdp?: string; timeoutMs?: number } = {}): Promise<{ res: SipResponse; dialog: Dialog }> {
    const dialog: Dialog = { callId: o.callId ?? `${randomBytes(8).toString('hex')}@uac`, fromTag: o.fromTag ?? randomBytes(4).toString('hex'), target, cseq: 1 };
    const res = await this.request('INVITE', dialog, o.sdp ?? sdpOffer(this.host), o.timeoutMs);
    dialog.toTag = tagOf(res.headers.to);
    if (res.status >= 200 && res.status < 300) this.send(this.build('ACK', dialog, ''));
    return { res, dialog };
  }

  async bye(dialog: Dialog, timeoutMs?: number): Promise<SipResponse> {
    dialog.cseq++;
    return this.request('BYE', dialog, '', timeoutMs);
  }

  close(): void {
    for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(new Error('SIP client closed')); }
    this.pending.clear();
    this.sock.close();
  }

  private request(method: string, d: Dialog, body: string, timeoutMs = 10_000): Promise<SipResponse> {
    const key = `${d.callId}|${d.cseq} ${method}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(key);
        reject(new Error(`no final response to ${method} ${d.callId} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(key, { resolve, reject, t0: performance.now(), timer });
      this.send(this.build(method, d, body));
    });
  }

  private build(method: string, d: Dialog, body: string): string {
    const hp = (h: string, p: number) => (h.includes(':') ? `[${h}]:${p}` : `${h}:${p}`);
    const uri = `sip:bob@${hp(d.target.host, d.target.port)}`;
    const cseq = method === 'ACK' ? 1 : d.cseq;
    const lines = [
      `${method} ${uri} SIP/2.0`,
      `Via: SIP/2.0/UDP ${hp(this.host, this.port)};branch=z9hG4bK${randomBytes(6).toString('hex')};rport`,
      'Max-Forwards: 70',
      `From: <sip:alice@${hp(this.host, this.port)}>;tag=${d.fromTag}`,
      `To: <sip:bob@${hp(d.target.host, d.target.port)}>${d.toTag ? `;tag=${d.toTag}` : ''}`,
      `Call-ID: ${d.callId}`,
      `CSeq: ${cseq} ${method}`,
      `Contact: <sip:alice@${hp(this.host, this.port)}>`,
      ...(body ? ['Content-Type: application/sdp'] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ];
    return lines.join('\r\n');
  }

  private send(text: string): void {
    // Target comes from the message's own request URI line would be clumsy; we keep it per dialog.
    const m = /^\S+ sip:[^@]+@(\[[^\]]+\]|[^:;>\s]+):(\d+)/.exec(text);
    const host = m![1]!.replace(/^\[|\]$/g, '');
    this.sock.send(Buffer.from(text), Number(m![2]), host);
  }

  private onMessage(text: string): void {
    const r = parseSipResponse(text);
    if (!r || r.status < 200) return;
    const key = `${r.headers['call-id']}|${(r.headers.cseq ?? '').replace(/\s+/g, ' ')}`;
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    clearTimeout(p.timer);
    p.resolve({ ...r, elapsedMs: performance.now() - p.t0 });
  }
}

/** Byte sum of a call-id mod 256: Kamailio's hash_algo=0. With two equal nodes, even → first. */
export const callIdByteSum = (id: string) => [...Buffer.from(id)].reduce((a, b) => a + b, 0) & 0xff;

/** A call-id that Kamailio (hash_algo 0, `nodes` equal-weight enabled nodes) maps to node `index`. */
export function callIdFor(index: number, nodes = 2, prefix = 'c'): string {
  for (;;) {
    const id = `${prefix}-${randomBytes(6).toString('hex')}@uac`;
    if (callIdByteSum(id) % nodes === index) return id;
  }
}
