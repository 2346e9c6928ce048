// The per-connection JSON record. Field names follow OpenTelemetry's
// semantic conventions where one exists (client.address, server.port,
// network.type, db.system ...); the rest is grouped by subject.
#include <cstdio>

#include "connection.h"

namespace tdsbpf {

using nlohmann::json;

namespace {

json nullable_time(uint64_t ns)
{
	return ns ? json(iso_time(ns)) : json(nullptr);
}

json version_json(const PreloginInfo& p)
{
	if (!p.seen || !p.has_version)
		return nullptr;
	char buf[48];
	snprintf(buf, sizeof(buf), "%u.%u.%u.%u", p.major, p.minor, p.build, p.subbuild);
	return buf;
}

json enc_value(uint8_t e)
{
	if (e == TDSBPF_VALUE_ABSENT)
		return nullptr;
	switch (e & 0x7f) {
	case TDS_ENCRYPT_OFF: return "off";
	case TDS_ENCRYPT_ON: return "on";
	case TDS_ENCRYPT_NOT_SUP: return "not_supported";
	case TDS_ENCRYPT_REQ: return "required";
	default: return "other";
	}
}

json bool_opt(uint8_t v)
{
	if (v == TDSBPF_VALUE_ABSENT)
		return nullptr;
	return v != 0;
}

json dir_pair(uint64_t c2s, uint64_t s2c)
{
	return json{{"client_to_server", c2s}, {"server_to_client", s2c}};
}

json phases_json(const Connection& c, uint64_t end_ns)
{
	json arr = json::array();
	for (size_t i = 0; i < c.phases.size(); i++) {
		uint64_t start = c.phases[i].start_ns;
		uint64_t end = i + 1 < c.phases.size() ? c.phases[i + 1].start_ns : std::max(end_ns, start);
		arr.push_back({{"name", phase_name(c.phases[i].phase)},
			       {"start_time", iso_time(start)},
			       {"start_offset_ms", ms(start - c.first_ns)},
			       {"duration_ms", ms(end - start)}});
	}
	return arr;
}

const char* session_end(const SmpSession& s, const Connection& c, bool final)
{
	if (s.fin[0] && s.fin[1])
		return "fin_both";
	if (s.fin[0])
		return "fin_client";
	if (s.fin[1])
		return "fin_server";
	if (!final)
		return "open";
	if (c.first_rst_dir >= 0)
		return "reset";
	if (c.first_fin_dir >= 0)
		return "connection_closed";
	return "open";
}

} // namespace

json make_record(const Connection& c, const AggregatorConfig& cfg, bool final, const std::vector<Diagnosis>& diags)
{
	const tdsbpf_flow_key& k = c.key;
	json r;
	r["tdsbpf.record"] = final ? "connection" : "snapshot";
	r["tdsbpf.connection_id"] = c.id;
	r["db.system"] = "mssql";
	r["client.address"] = addr_string(k.client_addr, k.family);
	r["client.port"] = k.client_port;
	r["server.address"] = addr_string(k.server_addr, k.family);
	r["server.port"] = k.server_port;
	r["network.type"] = k.family == 6 ? "ipv6" : "ipv4";
	r["network.transport"] = "tcp";
	r["network.protocol.name"] = "tds";
	if (c.loginack_tds_version)
		r["network.protocol.version"] = tds_version_name(c.loginack_tds_version);
	else if (c.login7_plain && c.login7.tds_version)
		r["network.protocol.version"] = tds_version_name(c.login7.tds_version);
	else
		r["network.protocol.version"] = nullptr;
	std::string ifname = cfg.ifname ? cfg.ifname(c.ifindex) : std::string();
	r["network.interface.name"] = ifname.empty() ? (c.ifindex ? json(std::to_string(c.ifindex)) : json(nullptr)) : json(ifname);
	r["network.vlan.id"] = k.vlan_valid ? json(k.vlan_id) : json(nullptr);

	uint64_t end_ns = final ? c.end_ns : c.last_ns;
	r["start_time"] = iso_time(c.first_ns);
	r["end_time"] = iso_time(end_ns);
	r["duration_ms"] = ms(end_ns - c.first_ns);
	r["midstream"] = c.midstream;
	Phase at = c.phase == Phase::close ? c.phase_at_close : c.phase;
	r["phase"] = phase_name(c.phase);
	r["phases"] = phases_json(c, end_ns);

	// Login
	json login;
	login["outcome"] = login_outcome_name(c.outcome);
	if (c.loginack_seen && c.syn_ns && c.login_ack_ns >= c.syn_ns) {
		double d = ms(c.login_ack_ns - c.syn_ns);
		login["duration_ms"] = d;
		login["slow"] = c.login_ack_ns - c.syn_ns > static_cast<uint64_t>(cfg.slow_login_threshold_ms) * 1000000ull;
	} else {
		login["duration_ms"] = nullptr;
		login["slow"] = nullptr;
	}
	login["threshold_ms"] = cfg.slow_login_threshold_ms;
	login["start_time"] = nullable_time(c.syn_ns ? c.syn_ns : 0);
	login["ack_time"] = nullable_time(c.login_ack_ns);
	if (c.login_error_seen)
		login["error"] = {{"number", c.error_number}, {"state", c.error_state}, {"class", c.error_class}};
	else
		login["error"] = nullptr;
	r["login"] = login;

	// Negotiated
	json n;
	n["client_driver_version"] = version_json(c.pre[TDSBPF_DIR_C2S]);
	n["server_version"] = version_json(c.pre[TDSBPF_DIR_S2C]);
	if (c.loginack_seen) {
		char buf[32];
		snprintf(buf, sizeof(buf), "%u.%u.%u", c.server_prog_version[0], c.server_prog_version[1],
			 (c.server_prog_version[2] << 8) | c.server_prog_version[3]);
		n["server_version_loginack"] = buf;
	} else {
		n["server_version_loginack"] = nullptr;
	}
	n["tds_version_login7"] = c.login7_plain && c.login7.tds_version ? json(tds_version_name(c.login7.tds_version)) : json(nullptr);
	n["tds_version_loginack"] = c.loginack_tds_version ? json(tds_version_name(c.loginack_tds_version)) : json(nullptr);
	n["encryption"] = encryption_mode(c);
	n["client_encryption"] = c.pre[0].seen ? enc_value(c.pre[0].encryption) : json(nullptr);
	n["server_encryption"] = c.pre[1].seen ? enc_value(c.pre[1].encryption) : json(nullptr);
	n["tls_version"] = c.tls_server_version ? json(tls_version_name(c.tls_server_version)) : json(nullptr);
	n["tls_client_hello_version"] = c.tls_client_version ? json(tls_version_name(c.tls_client_version)) : json(nullptr);
	n["tds8_alpn"] = c.alpn_tds8;
	n["mars_requested"] = c.pre[0].seen ? bool_opt(c.pre[0].mars) : json(nullptr);
	n["mars_used"] = !c.sessions.empty();
	n["packet_size"] = c.packet_size ? json(c.packet_size) : json(nullptr);
	n["read_only_intent"] = c.login7_plain ? json((c.login7.type_flags & 0x20) != 0) : json(nullptr);
	n["instance"] = c.pre[0].seen && !c.pre[0].instance.empty() ? json(c.pre[0].instance) : json(nullptr);
	if (c.routing_seen)
		n["redirect"] = {{"server", c.routing_server}, {"port", c.routing_port}};
	else
		n["redirect"] = nullptr;
	r["negotiated"] = n;

	// Authentication
	json a;
	a["method"] = auth_method_name(c.method);
	a["inferred"] = c.method_inferred;
	a["integrated_security"] = c.integrated_known ? json(c.integrated_security) : json(nullptr);
	a["sspi_server_tokens"] = c.sspi_server_tokens;
	a["sspi_client_packets"] = c.sspi_client_packets;
	if (c.ntlm_names) {
		if (cfg.redact)
			a["ntlm"] = {{"domain", "<redacted>"}, {"user", "<redacted>"}, {"workstation", "<redacted>"}};
		else
			a["ntlm"] = {{"domain", c.ntlm_domain}, {"user", c.ntlm_user}, {"workstation", c.ntlm_workstation}};
	} else {
		a["ntlm"] = nullptr;
	}
	a["redacted"] = cfg.redact;
	a["outcome"] = login_outcome_name(c.outcome);
	r["authentication"] = a;

	// Work
	json w;
	w["sql_batches"] = c.sql_batches;
	w["rpcs"] = c.rpcs;
	w["attentions"] = c.attentions;
	w["attention_acks"] = c.attention_acks;
	w["bulk_loads"] = c.bulk_loads;
	w["transaction_manager"] = c.tm_requests;
	w["requests"] = c.requests;
	w["encrypted_requests"] = c.encrypted_requests;
	w["responses"] = c.responses;
	w["reset_connection"] = c.reset_connection;
	w["done_tokens"] = c.done_tokens;
	w["rows"] = c.rows_seen ? json(c.rows) : json(nullptr);
	w["errors"] = c.work_errors;
	if (c.work_errors)
		w["last_error"] = {{"number", c.last_error_number}, {"state", c.last_error_state}, {"class", c.last_error_class}};
	else
		w["last_error"] = nullptr;
	if (c.latency.count)
		w["latency_ms"] = {{"count", c.latency.count},
				   {"min", ms(c.latency.min_ns)},
				   {"p50", ms(c.latency.percentile_ns(50))},
				   {"p99", ms(c.latency.percentile_ns(99))},
				   {"max", ms(c.latency.max_ns)}};
	else
		w["latency_ms"] = nullptr;
	r["work"] = w;

	// MARS
	json sessions = json::array();
	for (const auto& [sid, s] : c.sessions) {
		sessions.push_back({{"sid", sid},
				    {"open_time", nullable_time(s.opened_ns)},
				    {"close_time", nullable_time(s.closed_ns ? s.closed_ns : std::max(s.fin_ns[0], s.fin_ns[1]))},
				    {"syn_seen", s.syn_seen},
				    {"data_packets", dir_pair(s.data_packets[0], s.data_packets[1])},
				    {"acks", dir_pair(s.acks[0], s.acks[1])},
				    {"end", session_end(s, c, final)}});
	}
	r["mars"] = {{"sessions", sessions}, {"sessions_not_tracked", c.sessions_dropped}};

	// Close
	if (final) {
		json cl;
		cl["kind"] = close_kind_name(c.close_kind);
		cl["initiator"] = c.close_initiator >= 0 ? json(c.close_initiator == 0 ? "client" : "server") : json(nullptr);
		cl["first_fin"] = c.first_fin_dir >= 0 ? json(c.first_fin_dir == 0 ? "client" : "server") : json(nullptr);
		cl["reset_by"] = c.first_rst_dir >= 0 ? json(c.first_rst_dir == 0 ? "client" : "server") : json(nullptr);
		cl["phase"] = c.phase == Phase::close ? json(phase_name(at)) : json(nullptr);
		cl["time"] = nullable_time(c.close_start_ns);
		cl["after_keepalives"] = (keepalive_count(c, 0) + keepalive_count(c, 1)) > 0 && c.last_keepalive_ns >= c.last_payload_ns &&
					 c.close_start_ns != 0;
		cl["idle_before_close_ms"] = c.close_start_ns && c.last_payload_ns && c.close_start_ns >= c.last_payload_ns
						     ? json(ms(c.close_start_ns - c.last_payload_ns))
						     : json(nullptr);
		r["close"] = cl;
	} else {
		r["close"] = nullptr;
	}

	// TCP
	json t;
	t["keepalives"] = dir_pair(keepalive_count(c, 0), keepalive_count(c, 1));
	t["retransmissions"] = dir_pair(retrans(c, 0), retrans(c, 1));
	t["zero_windows"] = dir_pair(zero_windows(c, 0), zero_windows(c, 1));
	t["bytes"] = c.stats_seen ? dir_pair(c.stats.bytes[0], c.stats.bytes[1]) : json(nullptr);
	t["packets"] = c.stats_seen ? dir_pair(c.stats.packets[0], c.stats.packets[1]) : json(nullptr);
	t["syn_count"] = c.syn_count;
	t["handshake_ms"] = c.syn_ns && c.hs_ack_ns >= c.syn_ns ? json(ms(c.hs_ack_ns - c.syn_ns)) : json(nullptr);
	r["tcp"] = t;

	r["tracer"] = {{"events", c.events}, {"framing_lost", c.resync_lost}, {"truncated", c.truncated}};

	json d = json::array();
	for (const auto& x : diags)
		d.push_back({{"code", x.code}, {"severity", x.severity}, {"message", x.message}});
	r["diagnoses"] = d;
	return r;
}

} // namespace tdsbpf
