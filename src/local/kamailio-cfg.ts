// The Kamailio configuration `rtpengine-k8s local` runs: a SIP proxy between the caller and the
// callee (both SIPp) whose rtpengine nodes come from the db_text table kamailio-sync writes, with
// JSON-RPC over HTTP for rtpengine.reload. Settings follow docs/kamailio.md's recommendations.
export const LOCAL_KAMAILIO_CFG = `#!KAMAILIO
# rtpengine-k8s local: INVITE -> rtpengine_offer -> callee; 200 -> rtpengine_answer; BYE -> rtpengine_delete.
#!ifndef SIP_LISTEN
#!define SIP_LISTEN udp:127.0.0.1:5060
#!endif
#!ifndef HTTP_LISTEN
#!define HTTP_LISTEN tcp:127.0.0.1:5071
#!endif
#!ifndef CALLEE
#!define CALLEE "sip:127.0.0.1:5090"
#!endif
#!ifndef DB_URL
#!define DB_URL "text:///var/lib/kamailio/db"
#!endif
#!ifndef SERVER_ID
#!define SERVER_ID 1
#!endif
#!ifndef CHILDREN
#!define CHILDREN 4
#!endif

debug=2
log_stderror=yes
fork=yes
children=CHILDREN
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
loadmodule "rr.so"
loadmodule "siputils.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "xlog.so"
loadmodule "db_text.so"
loadmodule "xhttp.so"
loadmodule "jsonrpcs.so"
loadmodule "rtpengine.so"

modparam("db_text", "db_mode", 1)
modparam("jsonrpcs", "transport", 1)
modparam("rtpengine", "db_url", DB_URL)
modparam("rtpengine", "rtpengine_tout_ms", 1000)
modparam("rtpengine", "rtpengine_retr", 2)
modparam("rtpengine", "rtpengine_disable_tout", 10)
modparam("rtpengine", "rtpengine_allow_op", 1)
modparam("rtpengine", "hash_table_size", 4096)
modparam("rtpengine", "hash_table_tout", 14400)

request_route {
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
}

event_route[xhttp:request] {
	if ($si != "127.0.0.1") { xhttp_reply("403", "Forbidden", "text/plain", "no"); exit; }
	if ($hu =~ "^/RPC") { jsonrpc_dispatch(); exit; }
	xhttp_reply("404", "Not Found", "text/plain", "not found");
}
`;
