// The Kamailio configurations this project runs, from one builder: `rtpengine-k8s local` (a SIP
// proxy between two SIPp, rtpengine nodes from the db_text table kamailio-sync writes, JSON-RPC
// over HTTP for rtpengine.reload) and the e2e tests' variants (Kamailio answering INVITEs itself,
// nodes from that table or from a fixed rtpengine_sock, control over kamcmd and the JSON-RPC FIFO).
// The rtpengine module's settings are docs/kamailio.md's recommendations, the same in every variant.

export interface KamailioCfgOptions {
  /** Where the rtpengine nodes come from: the db_text table (DB_URL) or a fixed list (RTPE_SOCK). */
  nodes: 'db' | 'sock';
  /**
   * `proxy`: INVITE/200/BYE relayed to CALLEE with offer/answer/delete on the way (npm start);
   * `uas`: Kamailio answers INVITE with 200 and rtpengine's SDP, BYE/CANCEL with 200 after delete.
   */
  sip: 'proxy' | 'uas';
  /** JSON-RPC over HTTP at HTTP_LISTEN (xhttp, loopback callers only). */
  http: boolean;
  /** kamcmd's binrpc socket (CTL_SOCK) and the JSON-RPC FIFO (JSONRPC_FIFO, JSONRPC_REPLY_DIR). */
  testControl: boolean;
  /** Worker processes (define CHILDREN overrides). */
  children: number;
}

const define = (name: string, value: string | number) => `#!ifndef ${name}\n#!define ${name} ${value}\n#!endif`;

/** The rtpengine module's parameters (docs/kamailio.md); timeout and retries can be defined per run. */
function rtpengineParams(o: KamailioCfgOptions): string[] {
  return [
    o.nodes === 'db' ? 'modparam("rtpengine", "db_url", DB_URL)' : 'modparam("rtpengine", "rtpengine_sock", RTPE_SOCK)',
    'modparam("rtpengine", "rtpengine_tout_ms", RTPE_TOUT_MS)',
    'modparam("rtpengine", "rtpengine_retr", RTPE_RETR)',
    'modparam("rtpengine", "rtpengine_disable_tout", 10)',
    'modparam("rtpengine", "rtpengine_allow_op", 1)',
    'modparam("rtpengine", "hash_table_size", 4096)',
    'modparam("rtpengine", "hash_table_tout", 14400)',
    ...(o.sip === 'uas' ? ['modparam("rtpengine", "write_sdp_pv", "$avp(rtpe_sdp)")'] : []),
  ];
}

const PROXY_ROUTES = `request_route {
	if (is_method("INVITE") && !has_totag()) {
		record_route();
		if (!rtpengine_offer("replace-origin replace-session-connection")) {
			xlog("L_ERR", "LOCAL offer-failed $ci\\n");
			sl_send_reply("503", "Media Relay Unavailable"); exit;
		}
		$du = CALLEE;
		t_on_reply("MEDIA");
		if (!t_relay()) { sl_reply_error(); }
		exit;
	}
	if (has_totag()) { loose_route(); }
	if (is_method("BYE")) {
		if (!rtpengine_delete()) {
			xlog("L_ERR", "LOCAL delete-failed $ci\\n");
			sl_send_reply("500", "Media Relay Delete Failed"); exit;
		}
	}
	if (is_method("ACK") && !t_check_trans()) { $du = CALLEE; forward(); exit; }
	$du = CALLEE;
	if (!t_relay()) { sl_reply_error(); }
}

onreply_route[MEDIA] {
	if (status =~ "^2" && has_body("application/sdp")) {
		if (!rtpengine_answer("replace-origin replace-session-connection")) { xlog("L_ERR", "LOCAL answer-failed $ci\\n"); }
	}
}`;

const UAS_ROUTES = `request_route {
	if (is_method("ACK")) { exit; }
	if (is_method("OPTIONS")) { sl_send_reply("200", "OK"); exit; }
	if (is_method("INVITE")) {
		if (!has_body("application/sdp")) { sl_send_reply("488", "No SDP"); exit; }
		if (!rtpengine_offer("replace-origin replace-session-connection")) {
			xlog("L_ERR", "rtpengine_offer failed for $ci\\n");
			sl_send_reply("503", "Media Relay Unavailable"); exit;
		}
		set_reply_body("$avp(rtpe_sdp)", "application/sdp");
		sl_send_reply("200", "OK"); exit;
	}
	if (is_method("BYE|CANCEL")) {
		if (!rtpengine_delete()) {
			xlog("L_ERR", "rtpengine_delete failed for $ci\\n");
			sl_send_reply("500", "Media Relay Delete Failed"); exit;
		}
		sl_send_reply("200", "OK"); exit;
	}
	sl_send_reply("405", "Method Not Allowed");
}`;

const HTTP_ROUTE = `event_route[xhttp:request] {
	if ($si != "127.0.0.1") { xhttp_reply("403", "Forbidden", "text/plain", "no"); exit; }
	if ($hu =~ "^/RPC") { jsonrpc_dispatch(); exit; }
	xhttp_reply("404", "Not Found", "text/plain", "not found");
}`;

/** A kamailio.cfg for Debian's Kamailio 5.6; every address and path is a define with a default. */
export function kamailioConfig(o: KamailioCfgOptions): string {
  const proxy = o.sip === 'proxy';
  const modules = ['kex', 'corex', 'tm', 'sl', ...(proxy ? ['rr', 'siputils'] : []), 'pv', 'textops', 'xlog',
    ...(o.testControl ? ['ctl', 'cfg_rpc'] : []), ...(o.nodes === 'db' ? ['db_text'] : []), ...(o.http ? ['xhttp'] : []), 'jsonrpcs', 'rtpengine'];
  // jsonrpcs transport: 1 = HTTP only, 2 = FIFO only, 0 = both.
  const transport = o.http && o.testControl ? 0 : o.http ? 1 : 2;
  return [
    '#!KAMAILIO',
    `# rtpengine-k8s: ${proxy ? 'INVITE -> rtpengine_offer -> callee; 200 -> rtpengine_answer; BYE -> rtpengine_delete' : 'INVITE -> rtpengine_offer, answered here; BYE/CANCEL -> rtpengine_delete'}; nodes from ${o.nodes === 'db' ? 'db_text (DB_URL)' : 'RTPE_SOCK'}.`,
    define('SIP_LISTEN', 'udp:127.0.0.1:5060'),
    ...(o.http ? [define('HTTP_LISTEN', 'tcp:127.0.0.1:5071')] : []),
    ...(proxy ? [define('CALLEE', '"sip:127.0.0.1:5090"')] : []),
    o.nodes === 'db' ? define('DB_URL', '"text:///var/lib/kamailio/db"') : define('RTPE_SOCK', '"udp:127.0.0.1:2223 udp:127.0.0.1:2224"'),
    ...(o.testControl ? [define('CTL_SOCK', '"unix:/run/kamailio/kamailio_ctl"'), define('JSONRPC_FIFO', '"/run/kamailio/kamailio_rpc.fifo"'), define('JSONRPC_REPLY_DIR', '"/run/kamailio/"')] : []),
    define('SERVER_ID', 1),
    define('CHILDREN', o.children),
    define('RTPE_TOUT_MS', 1000),
    define('RTPE_RETR', 2),
    '',
    'debug=2',
    'log_stderror=yes',
    'fork=yes',
    'children=CHILDREN',
    ...(o.http ? ['tcp_children=1'] : []),
    'auto_aliases=no',
    'listen=SIP_LISTEN',
    ...(o.http ? ['listen=HTTP_LISTEN', 'tcp_accept_no_cl=yes'] : []),
    'server_id=SERVER_ID',
    '',
    ...modules.map((m) => `loadmodule "${m}.so"`),
    '',
    ...(o.testControl ? ['modparam("ctl", "binrpc", CTL_SOCK)'] : []),
    ...(o.nodes === 'db' ? ['modparam("db_text", "db_mode", 1)'] : []),
    `modparam("jsonrpcs", "transport", ${transport})`,
    ...(o.testControl ? ['modparam("jsonrpcs", "fifo_name", JSONRPC_FIFO)', 'modparam("jsonrpcs", "fifo_reply_dir", JSONRPC_REPLY_DIR)'] : []),
    ...rtpengineParams(o),
    '',
    proxy ? PROXY_ROUTES : UAS_ROUTES,
    ...(o.http ? ['', HTTP_ROUTE] : []),
    '',
  ].join('\n');
}

/** `rtpengine-k8s local`'s Kamailio. */
export const LOCAL_KAMAILIO_CFG = kamailioConfig({ nodes: 'db', sip: 'proxy', http: true, testControl: false, children: 4 });
