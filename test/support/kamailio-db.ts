// Real Kamailio 5.6 for kamailio-sync tests: rtpengine nodes from a db_text table (db_mode 1),
// JSON-RPC over HTTP (xhttp) and the jsonrpcs FIFO, INVITE → rtpengine_offer, BYE → delete.
// Plus a minimal UDP SIP caller that tells which rtpengine took a call (by its media port block).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { createSocket, type Socket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePort } from './ports.js';

export const KAMAILIO_DB_CFG = `#!KAMAILIO
# kamailio-sync test config: rtpengine nodes from db_text (db_mode 1), JSON-RPC over HTTP + FIFO.
debug=2
log_stderror=yes
fork=yes
children=2
tcp_children=1
auto_aliases=no
listen=SIP_LISTEN
listen=HTTP_LISTEN
tcp_accept_no_cl=yes
server_id=SERVER_ID

loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "xlog.so"
loadmodule "db_text.so"
loadmodule "xhttp.so"
loadmodule "jsonrpcs.so"
loadmodule "rtpengine.so"

modparam("db_text", "db_mode", 1)
modparam("jsonrpcs", "transport", 0)
modparam("jsonrpcs", "fifo_name", RPC_FIFO)
modparam("jsonrpcs", "fifo_reply_dir", RPC_REPLY_DIR)
modparam("rtpengine", "db_url", DB_URL)
modparam("rtpengine", "rtpengine_tout_ms", 1000)
modparam("rtpengine", "rtpengine_retr", 2)
modparam("rtpengine", "rtpengine_disable_tout", 10)
modparam("rtpengine", "rtpengine_allow_op", 1)
modparam("rtpengine", "hash_table_size", 4096)
modparam("rtpengine", "hash_table_tout", 14400)
modparam("rtpengine", "write_sdp_pv", "$avp(rtpe_sdp)")

request_route {
	if (is_method("ACK")) { exit; }
	if (is_method("INVITE")) {
		if (!rtpengine_offer("replace-origin replace-session-connection")) {
			xlog("L_ERR", "rtpengine_offer failed for $ci\\n");
			sl_send_reply("503", "Media Relay Unavailable"); exit;
		}
		set_reply_body("$avp(rtpe_sdp)", "application/sdp");
		sl_send_reply("200", "OK"); exit;
	}
	if (is_method("BYE")) {
		if (!rtpengine_delete()) { sl_send_reply("500", "Delete Failed"); exit; }
		sl_send_reply("200", "OK"); exit;
	}
	sl_send_reply("405", "Method Not Allowed");
}

event_route[xhttp:request] {
	if ($hu =~ "^/RPC") { jsonrpc_dispatch(); exit; }
	xhttp_reply("404", "Not Found", "text/plain", "not found");
}
`;

export interface KamailioDb {
  dir: string;
  dbDir: string;
  sipPort: number;
  httpPort: number;
  rpcUrl: string;
  fifo: string;
  replyDir: string;
  logs(): string;
  stop(): Promise<void>;
}

/** Start Kamailio over an existing db_text directory (it must hold `version` and `rtpengine`). */
export async function startKamailioDb(opts: { dbDir: string; serverId?: number }): Promise<KamailioDb> {
  const dir = mkdtempSync(join(tmpdir(), 'kamsync-'));
  const replyDir = join(dir, 'rpl');
  mkdirSync(replyDir);
  const sipPort = await freePort();
  const httpPort = await freePort();
  const fifo = join(dir, 'rpc.fifo');
  const cfg = join(dir, 'kamailio.cfg');
  writeFileSync(cfg, KAMAILIO_DB_CFG);
  const pidFile = join(dir, 'kamailio.pid');
  const args = ['-DD', '-E', '-f', cfg, '-P', pidFile, '-Y', dir,
    '-A', `SIP_LISTEN=udp:127.0.0.1:${sipPort}`, '-A', `HTTP_LISTEN=tcp:127.0.0.1:${httpPort}`,
    '-A', `SERVER_ID=${opts.serverId ?? 1 + Math.floor(Math.random() * 1000)}`,
    '-A', `DB_URL="text://${opts.dbDir}"`, '-A', `RPC_FIFO="${fifo}"`, '-A', `RPC_REPLY_DIR="${replyDir}/"`];
  const proc: ChildProcess = spawn('kamailio', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (c: Buffer) => { out = (out + c.toString()).slice(-200_000); };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  let exited = false;
  const exit = new Promise<void>((r) => proc.once('exit', () => { exited = true; r(); }));
  const stop = async () => {
    if (!exited) {
      let pid = proc.pid!;
      try { pid = Number(readFileSync(pidFile, 'utf8').trim()) || pid; } catch { /* not written yet */ }
      try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
      const k = setTimeout(() => { try { proc.kill('SIGKILL'); } catch { /* gone */ } }, 5000);
      await exit;
      clearTimeout(k);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const rpcUrl = `http://127.0.0.1:${httpPort}/RPC`;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (exited) { await stop(); throw new Error(`kamailio exited at start-up:\n${out.slice(-3000)}`); }
    try {
      const r = await fetch(rpcUrl, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', method: 'core.version', id: 1 }) });
      if (r.ok) {
        // Start-up pings of every node happen in the first worker; give them a moment.
        await new Promise((res) => setTimeout(res, 1500));
        return { dir, dbDir: opts.dbDir, sipPort, httpPort, rpcUrl, fifo, replyDir, logs: () => out, stop };
      }
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 150));
  }
  await stop();
  throw new Error(`kamailio did not answer JSON-RPC within 10 s:\n${out.slice(-3000)}`);
}

/** `kamailio -c` over the test config: proves the documented snippet parses. */
export function checkConfig(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kamsync-c-'));
  try {
    const cfg = join(dir, 'k.cfg');
    writeFileSync(cfg, KAMAILIO_DB_CFG);
    return execFileSync('kamailio', ['-c', '-f', cfg, '-A', 'SIP_LISTEN=udp:127.0.0.1:5060', '-A', 'HTTP_LISTEN=tcp:127.0.0.1:5071',
      '-A', 'SERVER_ID=1', '-A', `DB_URL="text://${dir}"`, '-A', `RPC_FIFO="${dir}/f"`, '-A', `RPC_REPLY_DIR="${dir}/"`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ minimal SIP caller

export interface SipResult { status: number; reason: string; body: string }

/** A UDP SIP user agent on loopback: INVITE with SDP and BYE, replies matched by Call-ID + CSeq. */
export class SipCaller {
  private sock!: Socket;
  private port = 0;
  private readonly waiters = new Map<string, (r: SipResult) => void>();
  private cseq = 1;
  readonly failures: Array<{ callId: string; method: string; status: number; reason: string }> = [];

  constructor(private readonly target: { host: string; port: number }) {}

  async open(): Promise<void> {
    this.sock = createSocket('udp4');
    this.sock.on('message', (m) => this.onMessage(m.toString('latin1')));
    await new Promise<void>((r) => this.sock.bind(0, '127.0.0.1', () => r()));
    this.port = this.sock.address().port;
  }

  close(): void { try { this.sock.close(); } catch { /* closed */ } }

  private onMessage(text: string): void {
    const [head = '', body = ''] = text.split('\r\n\r\n');
    const lines = head.split('\r\n');
    const m = /^SIP\/2\.0 (\d{3}) (.*)$/.exec(lines[0] ?? '');
    if (!m) return;
    const hdr = (n: string) => lines.find((l) => l.toLowerCase().startsWith(`${n.toLowerCase()}:`))?.slice(n.length + 1).trim() ?? '';
    const status = Number(m[1]);
    if (status < 200) return;
    const key = `${hdr('Call-ID')}|${hdr('CSeq')}`;
    this.waiters.get(key)?.({ status, reason: m[2]!, body });
  }

  private request(method: 'INVITE' | 'BYE', callId: string, fromTag: string, body: string, toTag = ''): Promise<SipResult> {
    const cseq = `${this.cseq++} ${method}`;
    const uri = `sip:rtpe@127.0.0.1:${this.target.port}`;
    const branch = `z9hG4bK${randomBytes(6).toString('hex')}`;
    const msg = [
      `${method} ${uri} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${this.port};branch=${branch};rport`,
      'Max-Forwards: 70',
      `From: <sip:caller@127.0.0.1>;tag=${fromTag}`,
      `To: <${uri}>${toTag ? `;tag=${toTag}` : ''}`,
      `Call-ID: ${callId}`,
      `CSeq: ${cseq}`,
      `Contact: <sip:caller@127.0.0.1:${this.port}>`,
      ...(body ? ['Content-Type: application/sdp'] : []),
      `Content-Length: ${Buffer.byteLength(body)}`,
      '', body,
    ].join('\r\n');
    const key = `${callId}|${cseq}`;
    return new Promise<SipResult>((resolve) => {
      let tries = 0;
      const send = () => { this.sock.send(Buffer.from(msg, 'latin1'), this.target.port, this.target.host); };
      const timer = setInterval(() => {
        if (++tries >= 8) { clearInterval(timer); this.waiters.delete(key); resolve({ status: 408, reason: 'Timeout (test UA)', body: '' }); return; }
        send();
      }, 500);
      this.waiters.set(key, (r) => { clearInterval(timer); this.waiters.delete(key); resolve(r); });
      send();
    }).then((r) => {
      if (r.status >= 300) this.failures.push({ callId, method, status: r.status, reason: r.reason });
      return r;
    });
  }

  /** INVITE with an audio offer; returns the answer's media port (which rtpengine took it). */
  async invite(callId: string, fromTag = `ft${randomBytes(3).toString('hex')}`): Promise<SipResult & { mediaPort?: number; fromTag: string }> {
    const sdp = ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 40000 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', ''].join('\r\n');
    const r = await this.request('INVITE', callId, fromTag, sdp);
    const mp = /m=audio (\d+)/.exec(r.body);
    return { ...r, fromTag, mediaPort: mp ? Number(mp[1]) : undefined };
  }

  bye(callId: string, fromTag: string): Promise<SipResult> {
    return this.request('BYE', callId, fromTag, '', 'tt1');
  }
}

// ------------------------------------------------------------------ EndpointSlice objects for the stand-in

export interface SliceEndpoint { ip: string; pod: string; ready?: boolean; serving?: boolean; terminating?: boolean }

/** A discovery.k8s.io/v1 EndpointSlice of Service `service` as the EndpointSlice controller writes it. */
export function endpointSliceObj(namespace: string, name: string, service: string, ngPort: number | Array<{ ip: string; port: number }>, eps: SliceEndpoint[]) {
  const port = typeof ngPort === 'number' ? ngPort : 0;
  return {
    metadata: { name, namespace, labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
    addressType: 'IPv4',
    endpoints: eps.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready ?? !e.terminating, serving: e.serving ?? true, terminating: e.terminating ?? false },
      targetRef: { kind: 'Pod', name: e.pod, namespace },
    })),
    ports: [{ name: 'ng', port, protocol: 'UDP' }],
  };
}
