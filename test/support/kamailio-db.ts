// kamailio-sync tests on the shared Kamailio harness (kamailio.ts): a config whose rtpengine nodes
// come from a db_text table (db_mode 1), with JSON-RPC over HTTP (xhttp) and the jsonrpcs FIFO,
// INVITE → rtpengine_offer, BYE → rtpengine_delete; plus EndpointSlice objects for the API stand-in.
import type { KubeApiServer } from './kube-apiserver.js';
import { startKamailio, type KamailioHandle } from './kamailio.js';
import { freePort } from './ports.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const KAMAILIO_DB_CFG = `#!KAMAILIO
# kamailio-sync test config: rtpengine nodes from db_text (db_mode 1), JSON-RPC over HTTP + FIFO.
#!ifndef SIP_LISTEN
#!define SIP_LISTEN udp:127.0.0.1:5060
#!endif
#!ifndef HTTP_LISTEN
#!define HTTP_LISTEN tcp:127.0.0.1:5071
#!endif
#!ifndef CTL_SOCK
#!define CTL_SOCK "unix:/run/kamailio/kamailio_ctl"
#!endif
#!ifndef JSONRPC_FIFO
#!define JSONRPC_FIFO "/run/kamailio/kamailio_rpc.fifo"
#!endif
#!ifndef JSONRPC_REPLY_DIR
#!define JSONRPC_REPLY_DIR "/run/kamailio/"
#!endif
#!ifndef DB_URL
#!define DB_URL "text:///var/lib/kamailio/db"
#!endif
#!ifndef SERVER_ID
#!define SERVER_ID 1
#!endif

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
loadmodule "ctl.so"
loadmodule "db_text.so"
loadmodule "xhttp.so"
loadmodule "jsonrpcs.so"
loadmodule "rtpengine.so"

modparam("ctl", "binrpc", CTL_SOCK)
modparam("db_text", "db_mode", 1)
modparam("jsonrpcs", "transport", 0)
modparam("jsonrpcs", "fifo_name", JSONRPC_FIFO)
modparam("jsonrpcs", "fifo_reply_dir", JSONRPC_REPLY_DIR)
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
	if ($si != "127.0.0.1") { xhttp_reply("403", "Forbidden", "text/plain", "no"); exit; }
	if ($hu =~ "^/RPC") { jsonrpc_dispatch(); exit; }
	xhttp_reply("404", "Not Found", "text/plain", "not found");
}
`;

export interface KamailioDb extends KamailioHandle {
  dbDir: string;
  httpPort: number;
  /** JSON-RPC over HTTP endpoint (xhttp). */
  rpcUrl: string;
  /** The jsonrpcs FIFO and its reply directory. */
  fifo: string;
  replyDir: string;
}

/** Start Kamailio over an existing db_text directory (it must hold `version` and `rtpengine`). */
export async function startKamailioDb(opts: { dbDir: string; serverId?: number }): Promise<KamailioDb> {
  const httpPort = await freePort();
  // fifo_reply_dir is used verbatim (Kamailio appends the reply name without a slash).
  const replyDir = mkdtempSync(join(tmpdir(), 'kamrpl-')) + '/';
  const k = await startKamailio({
    config: KAMAILIO_DB_CFG,
    settleMs: 1500,
    defines: {
      HTTP_LISTEN: `tcp:127.0.0.1:${httpPort}`,
      DB_URL: `"text://${opts.dbDir}"`,
      SERVER_ID: opts.serverId ?? 1 + Math.floor(Math.random() * 1000),
      JSONRPC_REPLY_DIR: `"${replyDir}"`,
    },
  }).catch((e: unknown) => { rmSync(replyDir, { recursive: true, force: true }); throw e; });
  const stop = k.stop;
  return Object.assign(k, {
    dbDir: opts.dbDir, httpPort, rpcUrl: `http://127.0.0.1:${httpPort}/RPC`, fifo: k.jsonrpcFifo, replyDir,
    stop: async () => { await stop(); rmSync(replyDir, { recursive: true, force: true }); },
  });
}

// ------------------------------------------------------------------ rtpengine pods for the stand-in

/**
 * The stand-in's EndpointSlice controller derives the slices, as on a cluster: a Service selecting
 * `app=<service>` whose UDP port `ng` targets the container port named `ng` (a regular container, so
 * resolved on every server version), and one running pod per rtpengine with its own ng port.
 */
export function addRtpengineService(api: KubeApiServer, namespace: string, service: string, o: { control?: boolean } = {}): void {
  const ports = [{ name: 'ng', port: 2223, targetPort: 'ng', protocol: 'UDP' }, ...(o.control ? [{ name: 'control', port: 8080, targetPort: 'control', protocol: 'TCP' }] : [])];
  api.store.create('services', { metadata: { name: service, namespace }, spec: { selector: { app: service }, ports } });
}

/** A running, Ready (unless `ready: false`) rtpengine pod at `ip` (default 127.0.0.1) serving ng on `ngPort`. */
export function addRtpenginePod(api: KubeApiServer, namespace: string, service: string, name: string, ngPort: number, o: { ip?: string; ready?: boolean; controlPort?: number } = {}): void {
  const ports = [{ name: 'ng', containerPort: ngPort, protocol: 'UDP' }, ...(o.controlPort ? [{ name: 'control', containerPort: o.controlPort, protocol: 'TCP' }] : [])];
  api.store.addPod({
    namespace, name, nodeName: 'node-a', podIP: o.ip ?? '127.0.0.1', ready: o.ready ?? true, labels: { app: service },
    containers: [{ name: 'rtpengine', image: 'rtpengine', ports }],
  });
}

/** A pod starts terminating (graceful delete: deletionTimestamp set, the kubelet not done yet). */
export function terminatePod(api: KubeApiServer, namespace: string, name: string): void {
  api.store.delete('pods', namespace, name, { graceful: true });
}
