// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "event_json.h"

#include "tdsbpf/events.hpp"
#include "ssrp.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>

namespace tdsbpf {

using nlohmann::json;


static std::string version4(uint32_t v)
{
	char buf[32];
	std::snprintf(buf, sizeof(buf), "0x%08x", v);
	return buf;
}

static json tls_json(const tdsbpf_tls& t)
{
	json j{{"content_type", t.content_type},
	       {"record_version", version4(t.record_version).substr(6)},
	       {"record_length", t.record_length}};
	if (t.content_type == TLS_CT_HANDSHAKE)
		j["handshake_type"] = t.handshake_type;
	if (t.flags & TDSBPF_TLS_HELLO_PARSED) {
		j["hello_version"] = version4(t.hello_version).substr(6);
		if (t.selected_version)
			j["selected_version"] = version4(t.selected_version).substr(6);
		j["alpn_tds8"] = (t.flags & TDSBPF_TLS_ALPN_TDS8) != 0;
	}
	if (t.content_type == TLS_CT_ALERT && t.record_length == 2)
		j["alert"] = {{"level", t.alert_level}, {"description", t.alert_desc}};
	if (t.chain_n || t.chain_more)
		j["then"] = tls_chain_names(t); // the messages and records after the first
	return j;
}


static json detail_json(const tdsbpf_tds& t)
{
	switch (t.detail) {
	case TDSBPF_D_PRELOGIN: {
		const auto& p = t.d.prelogin;
		json j{{"version", std::to_string(p.version_major) + "." + std::to_string(p.version_minor) + "." +
					   std::to_string(p.version_build) + "." + std::to_string(p.version_subbuild)}};
		if (p.encryption != TDSBPF_VALUE_ABSENT)
			j["encryption"] = p.encryption;
		if (p.mars != TDSBPF_VALUE_ABSENT)
			j["mars"] = p.mars;
		if (p.fedauth_required != TDSBPF_VALUE_ABSENT)
			j["fedauth_required"] = p.fedauth_required;
		if (p.present & (1 << TDS_PL_INSTOPT))
			j["instance"] = ascii_text(p.instance, p.instance_len, sizeof(p.instance));
		if (p.present & (1 << TDS_PL_THREADID))
			j["thread_id"] = p.thread_id;
		if (p.present & (1 << TDS_PL_TRACEID)) {
			j["connection_id"] = guid_string(p.connection_id);
			j["activity_id"] = guid_string(p.activity_id);
			j["activity_seq"] = p.activity_seq;
		}
		j["options"] = p.present;
		return j;
	}
	case TDSBPF_D_TLS: return tls_json(t.d.tls);
	case TDSBPF_D_LOGIN7: {
		const auto& l = t.d.login7;
		json j{{"tds_version", version4(l.tds_version)},
		       {"packet_size", l.packet_size},
		       {"client_prog_version", version4(l.client_prog_ver)},
		       {"client_pid", l.client_pid},
		       {"integrated_security", (l.option_flags2 & 0x80) != 0},
		       {"read_only_intent", (l.type_flags & 0x20) != 0},
		       {"feature_ext", (l.option_flags3 & 0x10) != 0},
		       {"fedauth", (l.flags & TDSBPF_L7_FEDAUTH) != 0},
		       {"user_chars", l.user_chars},
		       {"database_chars", l.database_chars},
		       {"sspi_length", l.sspi_length},
		       {"sspi", sspi_kind_name(l.sspi_kind)}};
		if (l.ntlm_type)
			j["ntlm_message"] = l.ntlm_type;
		return j;
	}
	case TDSBPF_D_REPLY: {
		const auto& r = t.d.reply;
		json tokens = json::array();
		static const std::pair<uint16_t, const char*> names[] = {{TDSBPF_TOK_LOGINACK, "loginack"},
									 {TDSBPF_TOK_ERROR, "error"},
									 {TDSBPF_TOK_INFO, "info"},
									 {TDSBPF_TOK_ENVCHANGE, "envchange"},
									 {TDSBPF_TOK_ROUTING, "routing"},
									 {TDSBPF_TOK_SSPI, "sspi"},
									 {TDSBPF_TOK_DONE, "done"},
									 {TDSBPF_TOK_FEDAUTHINFO, "fedauthinfo"},
									 {TDSBPF_TOK_COLMETADATA, "colmetadata"},
									 {TDSBPF_TOK_FEATUREEXTACK, "featureextack"},
									 {TDSBPF_TOK_PACKETSIZE, "packet_size"},
									 {TDSBPF_TOK_RETURNSTATUS, "returnstatus"},
									 {TDSBPF_TOK_ROW, "row"},
									 {TDSBPF_TOK_SESSIONSTATE, "sessionstate"}};
		for (const auto& [bit, name] : names)
			if (r.tokens & bit)
				tokens.push_back(name);
		json j{{"tokens", tokens}, {"first_token", r.first_token}};
		if (r.tokens & TDSBPF_TOK_LOGINACK) {
			j["tds_version"] = version4(r.loginack_tds_version);
			char v[32];
			std::snprintf(v, sizeof(v), "%u.%u.%u", r.server_version[0], r.server_version[1],
				      (r.server_version[2] << 8) | r.server_version[3]);
			j["server_version"] = v;
		}
		if (r.tokens & TDSBPF_TOK_ERROR)
			j["error"] = {{"number", r.error_number}, {"state", r.error_state}, {"class", r.error_class}};
		if (r.tokens & TDSBPF_TOK_ROUTING) {
			std::string server =
				ascii_text(r.routing_server, r.routing_server_len, sizeof(r.routing_server));
			j["routing"] = {{"server", server}, {"port", r.routing_port}};
		}
		if (r.tokens & TDSBPF_TOK_PACKETSIZE)
			j["packet_size"] = r.packet_size;
		if (r.sspi_ntlm_type)
			j["ntlm_message"] = r.sspi_ntlm_type;
		if (r.tokens & TDSBPF_TOK_DONE)
			j["done_status"] = r.done_status;
		if (r.tokens & TDSBPF_TOK_STOPPED)
			j["walk_stopped"] = true;
		return j;
	}
	case TDSBPF_D_SSPI: {
		json j{{"sspi", sspi_kind_name(t.d.sspi.kind)}, {"length", t.d.sspi.length}};
		if (t.d.sspi.ntlm_type)
			j["ntlm_message"] = t.d.sspi.ntlm_type;
		return j;
	}
	case TDSBPF_D_REQUEST: {
		const auto& q = t.d.request;
		json j{{"all_headers_length", q.all_headers_length}};
		if (q.rpc_proc_id)
			j["rpc_proc_id"] = q.rpc_proc_id;
		if (q.rpc_name_chars)
			j["rpc_name_chars"] = q.rpc_name_chars;
		if (q.transaction_descriptor)
			j["transaction_descriptor"] = q.transaction_descriptor;
		return j;
	}
	}
	return nullptr;
}

json event_to_json(const tdsbpf_event& ev, std::size_t len, bool ts, bool redact)
{
	// shorter than any record the packet programs send: nothing in it can
	// be read (the aggregator counts such records as malformed)
	if (len < sizeof(tdsbpf_event))
		return json{{"event", "malformed"}, {"length", len}};
	json j;
	if (ts) {
		// where it was seen: left out when comparing kernel and host events
		j["ts_ns"] = ev.ts_ns;
		j["hook"] = hook_name(ev.hook);
		if (ev.ifindex)
			j["ifindex"] = ev.ifindex;
	}
	j["event"] = event_kind_name(ev.kind);
	j["dir"] = ev.dir == TDSBPF_DIR_C2S ? "c2s" : "s2c";
	const auto& k = ev.key;
	j["client"] = endpoint_string(k.client_addr, k.family, k.client_port);
	j["server"] = endpoint_string(k.server_addr, k.family, k.server_port);
	if (k.vlan_valid)
		j["vlan"] = k.vlan_id;
	j["seq"] = ev.seq;
	j["ack"] = ev.ack;
	j["tcp_flags"] = ev.tcp_flags;
	j["payload_len"] = ev.payload_len;
	j["window"] = ev.window;
	j["flow_seq"] = ev.flow_seq;
	if (ev.flags)
		j["flags"] = ev.flags;
	switch (ev.kind) {
	case TDSBPF_EV_TDS:
	case TDSBPF_EV_NTLM_AUTH: {
		const auto& t = ev.u.tds;
		json tj{{"type", tds_type_name(t.type)},
			{"status", t.status},
			{"length", t.length},
			{"spid", t.spid},
			{"packet_id", t.packet_id}};
		if (ev.flags & TDSBPF_F_IN_SMP)
			tj["smp"] = {{"sid", t.smp_sid}, {"seq", t.smp_seq}, {"window", t.smp_window}};
		if (t.detail != TDSBPF_D_NONE)
			tj["detail"] = detail_json(t);
		if (t.tail_token)
			tj["done"] = {{"status", t.tail_done_status},
				      {"rows", t.tail_done_rows},
				      {"rows_from_doneinproc", (t.tail_flags & TDSBPF_TAIL_INPROC_ROWS) != 0}};
		j["tds"] = tj;
		j["offset"] = ev.frame_offset;
		if (ev.kind == TDSBPF_EV_NTLM_AUTH && len >= sizeof(tdsbpf_ntlm_event)) {
			const auto& n = reinterpret_cast<const tdsbpf_ntlm_event&>(ev);
			bool uni = n.encoding & TDSBPF_NTLM_UNICODE;
			if (redact) {
				j["ntlm"] = {{"redacted", true}};
			} else {
				j["ntlm"] = {{"domain", utf16le_or_oem(n.domain, n.domain_len, sizeof(n.domain), uni)},
					     {"user", utf16le_or_oem(n.user, n.user_len, sizeof(n.user), uni)},
					     {"workstation", utf16le_or_oem(n.workstation, n.workstation_len,
									    sizeof(n.workstation), uni)}};
			}
		}
		break;
	}
	case TDSBPF_EV_TLS:
		j["tls"] = tls_json(ev.u.tls);
		j["offset"] = ev.frame_offset;
		break;
	case TDSBPF_EV_SMP: {
		const auto& s = ev.u.smp;
		const char* f = s.flags == SMP_SYN   ? "syn"
				: s.flags == SMP_ACK ? "ack"
				: s.flags == SMP_FIN ? "fin"
						     : "data";
		j["smp"] = {{"flags", f}, {"sid", s.sid}, {"length", s.length}, {"seq", s.seq}, {"window", s.window}};
		break;
	}
	case TDSBPF_EV_TDS_DONE:
		j["done"] = {{"token", ev.u.done.token},
			     {"status", ev.u.done.status},
			     {"rows", ev.u.done.rows},
			     {"rows_from_doneinproc", (ev.u.done.flags & TDSBPF_TAIL_INPROC_ROWS) != 0}};
		break;
	case TDSBPF_EV_FLOW_STATS: {
		const auto& s = ev.u.stats;
		j["stats"] = {{"bytes", {s.bytes[0], s.bytes[1]}},
			      {"packets", {s.packets[0], s.packets[1]}},
			      {"retransmissions", {s.retrans[0], s.retrans[1]}},
			      {"keepalives", {s.keepalives[0], s.keepalives[1]}},
			      {"zero_windows", {s.zero_windows[0], s.zero_windows[1]}},
			      {"duplicates_ignored", {s.duplicates[0], s.duplicates[1]}},
			      {"largest_segment", {s.largest[0], s.largest[1]}},
			      {"final", s.final != 0}};
		break;
	}
	case TDSBPF_EV_WORK: {
		const auto& w = ev.u.work;
		json lat = json::array();
		for (unsigned i = 0; i < w.n && i < TDSBPF_WORK_LATENCIES; i++)
			lat.push_back(w.latency_ns[i]);
		j["work"] = {{"sql_batches", w.sql_batches},
			     {"rpcs", w.rpcs},
			     {"responses", w.responses},
			     {"done_tokens", w.done_tokens},
			     {"rows", w.rows},
			     {"rows_counted", (w.flags & TDSBPF_WORK_ROWS) != 0},
			     {"reset_connection", w.reset_connection},
			     {"idle_reuses", w.idle_reuses},
			     {"events", w.events},
			     {"truncated", w.truncated},
			     {"latencies_ns", lat},
			     {"pending_since_ns", (w.flags & TDSBPF_WORK_PENDING) ? w.pending_ns : 0},
			     {"spid", w.spid}};
		break;
	}
	case TDSBPF_EV_TCP_RETRANS: j["retransmitted_bytes"] = ev.u.tcp.retrans_bytes; break;
	case TDSBPF_EV_TCP_RST:
		j["ttl"] = ev.u.tcp.ttl;
		if (ev.u.tcp.usual_ttl)
			j["usual_ttl"] = ev.u.tcp.usual_ttl;
		break;
	case TDSBPF_EV_TCP_SYN:
	case TDSBPF_EV_TCP_SYNACK:
		if (ev.u.tcp.cgroup_id)
			j["cgroup_id"] = ev.u.tcp.cgroup_id;
		break;
	case TDSBPF_EV_BROWSER: {
		if (len < sizeof(tdsbpf_browser_event))
			break;
		const auto& b = reinterpret_cast<const tdsbpf_browser_event&>(ev);
		std::size_t n = std::min<std::size_t>(b.data_len, sizeof(b.data));
		SsrpMessage m = parse_ssrp({b.data, n}, ev.dir == TDSBPF_DIR_S2C);
		json bj{{"type", ssrp_kind_name(m.kind)}, {"length", n}};
		if (!m.requested_instance.empty())
			bj["instance"] = m.requested_instance;
		json inst = json::array();
		for (const auto& i : m.instances) {
			json ij{{"server_name", i.server_name}, {"instance_name", i.instance_name}};
			if (i.tcp_port)
				ij["tcp_port"] = *i.tcp_port;
			inst.push_back(std::move(ij));
		}
		if (!inst.empty())
			bj["instances"] = std::move(inst);
		if (m.dac_port)
			bj["dac_port"] = *m.dac_port;
		if (!m.problem.empty())
			bj["problem"] = m.problem;
		json followed = json::array();
		for (uint16_t p : b.followed)
			if (p)
				followed.push_back(p);
		if (!followed.empty())
			bj["followed"] = std::move(followed);
		j["browser"] = std::move(bj);
		break;
	}
	case TDSBPF_EV_PACKET:
		if (len >= sizeof(tdsbpf_packet_event)) {
			const auto& pk = reinterpret_cast<const tdsbpf_packet_event&>(ev);
			j["packet"] = {{"orig_len", pk.orig_len}, {"cap_len", pk.cap_len}};
		}
		break;
	case TDSBPF_EV_RESYNC: j["lost"] = (ev.flags & TDSBPF_F_LOST_SYNC) != 0; break;
	default: break;
	}
	return j;
}

} // namespace tdsbpf
