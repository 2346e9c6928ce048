// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The per-connection JSON record, written straight from the model with a
// streaming writer. Field names follow OpenTelemetry's semantic conventions
// where one exists (client.address, server.port, network.type, ...); the
// rest is grouped by subject. docs/connections.md and
// connection.schema.json describe every field.
#include <charconv>
#include <initializer_list>
#include <cstdio>

#include "json_writer.h"
#include "connection.h"

namespace tdsbpf {

namespace {

// Numbers joined by dots ("16.0.1000.6"), written into buf (48 bytes).
std::string_view dotted(char* buf, std::initializer_list<unsigned> parts)
{
	char* p = buf;
	for (unsigned v : parts) {
		if (p != buf)
			*p++ = '.';
		p = std::to_chars(p, buf + 47, v).ptr;
	}
	return std::string_view(buf, static_cast<size_t>(p - buf));
}

class RecordWriter {
public:
	RecordWriter(JsonBuffer& out, const RecordContext& r) : w_(out), r_(r), c_(r.c) {}
	void write();

private:
	void time(std::string_view k, uint64_t ns)
	{
		char buf[32];
		w_.key(k).value(std::string_view(buf, iso_time(buf, ns)));
	}
	void time_or_null(std::string_view k, uint64_t ns)
	{
		if (ns)
			time(k, ns);
		else
			w_.null_member(k);
	}
	void dir_pair(std::string_view k, uint64_t c2s, uint64_t s2c)
	{
		w_.key(k).begin_object().member("client_to_server", c2s).member("server_to_client", s2c).end_object();
	}
	void side_or_null(std::string_view k, int dir)
	{
		if (dir >= 0)
			w_.member(k, side_name(dir));
		else
			w_.null_member(k);
	}
	void version(std::string_view k, const PreloginSide& p);
	void encryption_value(std::string_view k, const PreloginSide& p);
	void bool_option(std::string_view k, const PreloginSide& p, uint8_t v);
	// An error's numbers, and its words when an excerpt had them (the
	// login's error or the last one, of the same number): hidden by
	// --redact, as they name users and values.
	void error(std::string_view k, uint32_t number, uint8_t state, uint8_t cls, const Texts* tx, bool login)
	{
		w_.key(k).begin_object().member("number", number).member("state", state).member("class", cls);
		const Texts::Message* m = tx ? (login ? &tx->login_error : &tx->last_error) : nullptr;
		if (m && m->number == number) {
			bool red = r_.cfg.redact;
			std::string_view text = tx->get(login ? Texts::kLoginErrorText : Texts::kLastErrorText);
			w_.member("message", red ? std::string_view("<redacted>") : text);
			text_or_null("server", tx->get(login ? Texts::kLoginErrorServer : Texts::kLastErrorServer));
			text_or_null("procedure", tx->get(login ? Texts::kLoginErrorProc : Texts::kLastErrorProc));
			w_.member("line", m->line);
		} else {
			w_.null_member("message").null_member("server").null_member("procedure").null_member("line");
		}
		w_.end_object();
	}
	void text_or_null(std::string_view k, std::string_view v, bool secret = false)
	{
		if (v.empty())
			w_.null_member(k);
		else
			w_.member(k, secret && r_.cfg.redact ? std::string_view("<redacted>") : std::string_view(v));
	}
	void client_names();

	void endpoints();
	void phases(uint64_t end_ns);
	void login();
	void negotiated();
	void tls();
	void authentication();
	void work();
	void mars();
	void close();
	void tcp();
	void diagnoses();
	void owners();
	void ids();

	JsonWriter w_;
	const RecordContext& r_;
	const Connection& c_;
};

void RecordWriter::version(std::string_view k, const PreloginSide& p)
{
	if (!p.seen || !p.has_version) {
		w_.null_member(k);
		return;
	}
	char buf[48];
	w_.key(k).value(dotted(buf, {p.major, p.minor, p.build, p.subbuild}));
}

void RecordWriter::encryption_value(std::string_view k, const PreloginSide& p)
{
	if (!p.seen || p.encryption == TDSBPF_VALUE_ABSENT) {
		w_.null_member(k);
		return;
	}
	const char* v = "other";
	switch (p.encryption & 0x7f) {
	case TDS_ENCRYPT_OFF: v = "off"; break;
	case TDS_ENCRYPT_ON: v = "on"; break;
	case TDS_ENCRYPT_NOT_SUP: v = "not_supported"; break;
	case TDS_ENCRYPT_REQ: v = "required"; break;
	default: break;
	}
	w_.member(k, v);
}

void RecordWriter::bool_option(std::string_view k, const PreloginSide& p, uint8_t v)
{
	if (!p.seen || v == TDSBPF_VALUE_ABSENT)
		w_.null_member(k);
	else
		w_.member(k, v != 0);
}

void RecordWriter::write()
{
	uint64_t end_ns = r_.final ? c_.end_ns : c_.last_ns;
	w_.begin_object();
	w_.member("tdsbpf.record", r_.final ? "connection" : "snapshot");
	w_.member("tdsbpf.connection_id", c_.id);
	endpoints();
	time("start_time", c_.first_ns);
	time("end_time", end_ns);
	time("last_seen_time", c_.last_ns);
	w_.member("duration_ms", Millis{end_ns - c_.first_ns});
	w_.member("midstream", c_.midstream);
	char filter[kWiresharkFilterChars];
	w_.key("wireshark").begin_object().member("filter", std::string_view(filter, wireshark_filter(filter, c_.key)));
	if (c_.first_frame)
		w_.member("first_frame", c_.first_frame).member("last_frame", c_.last_frame);
	else
		w_.null_member("first_frame").null_member("last_frame");
	w_.end_object();
	if (const auto* o = c_.redirected_from.get()) {
		const tdsbpf_flow_key& k = o->key;
		w_.key("redirected_from")
			.begin_object()
			.member("tdsbpf.connection_id", o->id)
			.member("server.address", addr_string(k.server_addr, k.family))
			.member("server.port", k.server_port)
			.end_object();
	} else {
		w_.null_member("redirected_from");
	}
	if (const auto* b = c_.browser.get()) {
		w_.key("browser").begin_object().member("instance", b->instance);
		if (b->lookup_ms >= 0)
			w_.member("lookup_ms", b->lookup_ms);
		else
			w_.null_member("lookup_ms");
		w_.end_object();
	} else {
		w_.null_member("browser");
	}
	owners();
	ids();
	w_.member("phase", phase_name(c_.phase));
	phases(end_ns);
	login();
	negotiated();
	tls();
	authentication();
	work();
	mars();
	close();
	{
		PoolingVerdict p = pooling_verdict(c_, r_.cfg);
		w_.key("pooling")
			.begin_object()
			.member("verdict", p.verdict)
			.member("evidence", p.evidence)
			.end_object();
	}
	tcp();
	w_.key("tracer")
		.begin_object()
		.member("events", c_.tracer.events)
		.member("framing_lost", c_.tracer.resync_lost)
		.member("truncated", c_.tracer.truncated)
		.member("events_lost", c_.tracer.events_lost())
		.member("start_lost", c_.tracer.start_lost)
		.member("more_may_be_lost", c_.tracer.maybe_lost)
		.end_object();
	diagnoses();
	w_.end_object();
}

void RecordWriter::endpoints()
{
	const tdsbpf_flow_key& k = c_.key;
	w_.member("db.system.name", "microsoft.sql_server");
	w_.member("db.system", "mssql");
	// the database the server set at login (else the one the client asked
	// for), after the instance the client named: OpenTelemetry's form
	if (const Texts* tx = c_.texts.get()) {
		std::string_view db = !tx->get(Texts::kEnvDatabase).empty() ? tx->get(Texts::kEnvDatabase)
									    : tx->get(Texts::kDatabase);
		if (!db.empty()) {
			std::string_view inst = c_.prelogin.client().instance;
			bool named = c_.prelogin.client().seen && !inst.empty() && inst != "MSSQLServer";
			w_.member("db.namespace", named ? std::string(inst) + "|" + std::string(db) : std::string(db));
		} else {
			w_.null_member("db.namespace");
		}
	} else {
		w_.null_member("db.namespace");
	}
	write_endpoints(w_, k, "tcp", "tds");
	if (c_.login.ack_tds_version)
		w_.member("network.protocol.version", tds_version_name(c_.login.ack_tds_version));
	else if (c_.login.login7_plain && c_.login.login7.tds_version)
		w_.member("network.protocol.version", tds_version_name(c_.login.login7.tds_version));
	else
		w_.null_member("network.protocol.version");
	if (!r_.ifname.empty())
		w_.member("network.interface.name", r_.ifname);
	else if (c_.ifindex)
		w_.member("network.interface.name", std::to_string(c_.ifindex));
	else
		w_.null_member("network.interface.name");
	if (k.vlan_valid)
		w_.member("network.vlan.id", k.vlan_id);
	else
		w_.null_member("network.vlan.id");
}

void RecordWriter::phases(uint64_t end_ns)
{
	w_.key("phases").begin_array();
	const auto& ps = c_.phases;
	for (size_t i = 0; i < ps.size(); i++) {
		uint64_t start = ps[i].start_ns;
		uint64_t end = i + 1 < ps.size() ? ps[i + 1].start_ns : std::max(end_ns, start);
		w_.begin_object().member("name", phase_name(ps[i].phase));
		time("start_time", start);
		w_.member("start_offset_ms", Millis{start - c_.first_ns})
			.member("duration_ms", Millis{end - start})
			.end_object();
	}
	w_.end_array();
}

// What the client named in its LOGIN7, when that was in clear: hidden by
// --redact but for the library, the language and the database.
void RecordWriter::client_names()
{
	const Texts* tx = c_.texts.get();
	if (!tx || !tx->login7) {
		w_.null_member("client_names");
		return;
	}
	w_.key("client_names").begin_object();
	text_or_null("host", tx->get(Texts::kHost), true);
	text_or_null("application", tx->get(Texts::kApp), true);
	text_or_null("user", tx->get(Texts::kUser), true);
	text_or_null("server", tx->get(Texts::kServer));
	text_or_null("library", tx->get(Texts::kLibrary));
	text_or_null("language", tx->get(Texts::kLanguage));
	text_or_null("database", tx->get(Texts::kDatabase));
	w_.end_object();
}

void RecordWriter::login()
{
	const LoginState& l = c_.login;
	w_.key("login").begin_object();
	w_.member("outcome", login_outcome_name(l.outcome));
	w_.member("inferred", l.inferred);
	if (auto d = c_.login_duration_ns()) {
		w_.member("duration_ms", Millis{*d});
		w_.member("slow", *d > static_cast<uint64_t>(r_.cfg.slow_login_threshold_ms) * 1000000ull);
	} else {
		w_.null_member("duration_ms").null_member("slow");
	}
	w_.member("threshold_ms", r_.cfg.slow_login_threshold_ms);
	time_or_null("start_time", c_.tcp.syn_ns);
	time_or_null("ack_time", l.ack_ns);
	const Texts* tx = c_.texts.get();
	if (l.error_seen)
		error("error", l.error_number, l.error_state, l.error_class, tx, true);
	else
		w_.null_member("error");
	client_names();
	// the INFO messages of the login's reply, when it was read
	w_.key("messages").begin_array();
	for (size_t i = 0; tx && i < tx->login_info.size(); i++) {
		const Texts::Message& m = tx->login_info[i];
		w_.begin_object().member("number", m.number).member("state", m.state).member("class", m.cls);
		w_.member("message", r_.cfg.redact ? std::string_view("<redacted>")
						   : tx->get(static_cast<Texts::Field>(Texts::kLoginInfo0 + i)));
		w_.end_object();
	}
	w_.end_array();
	// the waterfall: each step from one milestone seen to the next
	w_.key("steps").begin_array();
	uint64_t origin = c_.tcp.syn_ns ? c_.tcp.syn_ns : c_.first_ns;
	for (const LoginStep& s : c_.login_steps())
		w_.begin_object()
			.member("step", s.name)
			.member("owner", s.owner)
			.member("at_ms", Millis{s.start_ns >= origin ? s.start_ns - origin : 0})
			.member("duration_ms", Millis{s.end_ns - s.start_ns})
			.end_object();
	w_.end_array();
	w_.end_object();
}

void RecordWriter::negotiated()
{
	const LoginState& l = c_.login;
	const PreloginSide& cl = c_.prelogin.client();
	const PreloginSide& sv = c_.prelogin.server();
	w_.key("negotiated").begin_object();
	version("client_driver_version", cl);
	version("server_version", sv);
	if (l.ack_seen) {
		char buf[48];
		w_.key("server_version_loginack")
			.value(dotted(buf, {l.server_prog_version[0], l.server_prog_version[1],
					    static_cast<unsigned>((l.server_prog_version[2] << 8) |
								  l.server_prog_version[3])}));
	} else {
		w_.null_member("server_version_loginack");
	}
	if (l.login7_plain && l.login7.tds_version)
		w_.member("tds_version_login7", tds_version_name(l.login7.tds_version));
	else
		w_.null_member("tds_version_login7");
	if (l.ack_tds_version)
		w_.member("tds_version_loginack", tds_version_name(l.ack_tds_version));
	else
		w_.null_member("tds_version_loginack");
	w_.member("encryption", encryption_name(c_.encryption()));
	encryption_value("client_encryption", cl);
	encryption_value("server_encryption", sv);
	if (c_.tls.server_version)
		w_.member("tls_version", tls_version_name(c_.tls.server_version));
	else
		w_.null_member("tls_version");
	if (c_.tls.client_version)
		w_.member("tls_client_hello_version", tls_version_name(c_.tls.client_version));
	else
		w_.null_member("tls_client_hello_version");
	w_.member("tds8_alpn", c_.tls.alpn_tds8);
	bool_option("mars_requested", cl, cl.mars);
	w_.member("mars_used", !c_.mars.sessions().empty());
	if (l.packet_size)
		w_.member("packet_size", l.packet_size);
	else
		w_.null_member("packet_size");
	if (l.login7_plain)
		w_.member("read_only_intent", (l.login7.type_flags & 0x20) != 0);
	else
		w_.null_member("read_only_intent");
	if (cl.seen && !cl.instance.empty())
		w_.member("instance", std::string_view(cl.instance));
	else
		w_.null_member("instance");
	const Texts* tx = c_.texts.get();
	text_or_null("database", tx ? tx->get(Texts::kEnvDatabase) : std::string_view());
	text_or_null("language", tx ? tx->get(Texts::kEnvLanguage) : std::string_view());
	text_or_null("server_name", tx ? tx->get(Texts::kServerName) : std::string_view());
	if (l.routing_seen)
		w_.key("redirect")
			.begin_object()
			.member("server", std::string_view(l.routing_server))
			.member("port", l.routing_port)
			.end_object();
	else
		w_.null_member("redirect");
	w_.end_object();
}

// The TLS posture: what the client offered, what the server chose, and its
// certificate when the flight in clear showed it.
void RecordWriter::tls()
{
	const TlsPosture* p = c_.tls_posture.get();
	if (!p) {
		w_.null_member("tls");
		return;
	}
	w_.key("tls").begin_object();
	if (p->client_seen) {
		w_.key("client").begin_object();
		w_.member("max_version", tls_version_name(p->client_max_version));
		w_.member("cipher_suites_offered", p->offered);
		w_.key("weak_offered").begin_array();
		for (uint16_t s : p->weak_offered)
			w_.value(tls_cipher_name(s));
		w_.end_array();
		text_or_null("sni", p->sni);
		if (p->alpn.empty()) {
			w_.null_member("alpn");
		} else {
			w_.key("alpn").begin_array();
			std::string_view rest = p->alpn;
			for (size_t comma; !rest.empty();
			     rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1)) {
				comma = rest.find(',');
				w_.value(rest.substr(0, comma));
			}
			w_.end_array();
		}
		w_.end_object();
	} else {
		w_.null_member("client");
	}
	if (p->server_seen)
		w_.key("server")
			.begin_object()
			.member("version", tls_version_name(p->server_version))
			.member("cipher_suite", tls_cipher_name(p->cipher))
			.member("weak", tls_cipher_weak(p->cipher))
			.end_object();
	else
		w_.null_member("server");
	static const char* const kSeen[] = {"not_seen", "read", "cut", "hidden"};
	w_.member("certificate_seen", kSeen[static_cast<int>(p->cert)]);
	if (p->cert == TlsPosture::Cert::read) {
		w_.key("certificate").begin_object();
		w_.member("subject", std::string_view(p->certificate.subject));
		w_.member("issuer", std::string_view(p->certificate.issuer));
		time_or_null("not_before", p->certificate.not_before > 0
						   ? static_cast<uint64_t>(p->certificate.not_before) * 1000000000ull
						   : 0);
		time_or_null("not_after", p->certificate.not_after > 0
						  ? static_cast<uint64_t>(p->certificate.not_after) * 1000000000ull
						  : 0);
		text_or_null("key_type", p->certificate.key_type);
		w_.member("key_bits", p->certificate.key_bits);
		w_.member("self_signed", p->certificate.self_signed);
		w_.member("sql_server_fallback", p->certificate.fallback);
		w_.end_object();
	} else {
		w_.null_member("certificate");
	}
	w_.end_object();
}

void RecordWriter::authentication()
{
	const AuthState& a = c_.auth;
	w_.key("authentication").begin_object();
	w_.member("method", auth_method_name(a.method));
	w_.member("inferred", a.inferred);
	if (a.integrated_known)
		w_.member("integrated_security", a.integrated_security);
	else if (a.sspi_server_tokens || a.sspi_client_packets || a.ntlm_seen)
		// an encrypted LOGIN7 followed by SSPI: only an integrated login has
		// SSPI round trips (inferred, as the method is)
		w_.member("integrated_security", true);
	else
		w_.null_member("integrated_security");
	w_.member("sspi_server_tokens", a.sspi_server_tokens);
	w_.member("sspi_client_packets", a.sspi_client_packets);
	if (a.ntlm_seen && a.ntlm.get()) {
		bool red = r_.cfg.redact;
		const AuthState::NtlmNames& n = *a.ntlm.get();
		w_.key("ntlm")
			.begin_object()
			.member("domain", red ? std::string_view("<redacted>") : std::string_view(n.domain))
			.member("user", red ? std::string_view("<redacted>") : std::string_view(n.user))
			.member("workstation", red ? std::string_view("<redacted>") : std::string_view(n.workstation))
			.end_object();
	} else {
		w_.null_member("ntlm");
	}
	w_.member("redacted", r_.cfg.redact);
	w_.member("outcome", login_outcome_name(c_.login.outcome));
	w_.end_object();
}

void RecordWriter::work()
{
	const WorkState& k = c_.work;
	w_.key("work").begin_object();
	w_.member("sql_batches", k.sql_batches);
	w_.member("rpcs", k.rpcs);
	w_.member("attentions", k.attentions);
	w_.member("attention_acks", k.attention_acks);
	w_.member("attentions_after_reply", k.attentions_after_reply);
	w_.member("bulk_loads", k.bulk_loads);
	w_.member("transaction_manager", k.tm_requests);
	w_.member("requests", k.requests);
	w_.member("encrypted_requests", k.encrypted_requests);
	w_.member("responses", k.responses);
	w_.member("reset_connection", k.reset_connection);
	w_.member("done_tokens", k.done_tokens);
	if (k.rows_seen)
		w_.member("rows", k.rows);
	else
		w_.null_member("rows");
	w_.member("errors", k.errors);
	if (k.errors)
		error("last_error", k.last_error_number, k.last_error_state, k.last_error_class, c_.texts.get(), false);
	else
		w_.null_member("last_error");
	const LatencyHistogram& h = k.latency;
	if (h.count())
		w_.key("latency_ms")
			.begin_object()
			.member("count", h.count())
			.member("min", Millis{h.min_ns()})
			.member("p50", Millis{h.percentile_ns(50)})
			.member("p99", Millis{h.percentile_ns(99)})
			.member("max", Millis{h.max_ns()})
			.end_object();
	else
		w_.null_member("latency_ms");
	w_.end_object();
}


void RecordWriter::mars()
{
	w_.key("mars").begin_object().key("sessions").begin_array();
	for (const auto& [sid, s] : c_.mars.sessions()) {
		w_.begin_object().member("sid", sid);
		time_or_null("open_time", s.opened_ns);
		time_or_null("close_time", s.closed_ns ? s.closed_ns : std::max(s.fin_ns[0], s.fin_ns[1]));
		w_.member("syn_seen", s.syn_seen);
		dir_pair("data_packets", s.data_packets[0], s.data_packets[1]);
		dir_pair("acks", s.acks[0], s.acks[1]);
		w_.member("end", session_end(s, c_, r_.final)).end_object();
	}
	w_.end_array().member("sessions_not_tracked", c_.mars.sessions_dropped).end_object();
}

void RecordWriter::close()
{
	if (!r_.final) {
		w_.null_member("close");
		return;
	}
	const CloseState& cl = c_.close;
	w_.key("close").begin_object();
	w_.member("kind", close_kind_name(cl.kind));
	side_or_null("initiator", cl.initiator);
	side_or_null("first_fin", cl.first_fin_dir);
	side_or_null("reset_by", cl.first_rst_dir);
	if (c_.phase == Phase::close)
		w_.member("phase", phase_name(cl.phase));
	else
		w_.null_member("phase");
	time_or_null("time", cl.start_ns);
	if (cl.first_rst_dir >= 0 && cl.rst_ttl) {
		w_.key("reset_ttl").begin_object().member("ttl", cl.rst_ttl);
		if (cl.rst_usual_ttl)
			w_.member("usual_ttl", cl.rst_usual_ttl);
		else
			w_.null_member("usual_ttl");
		w_.end_object();
	} else {
		w_.null_member("reset_ttl");
	}
	w_.member("after_keepalives",
		  c_.tcp.keepalive_total() > 0 && c_.tcp.last_keepalive_ns >= c_.last_payload_ns && cl.start_ns != 0);
	if (cl.start_ns && c_.last_payload_ns && cl.start_ns >= c_.last_payload_ns)
		w_.member("idle_before_close_ms", Millis{cl.start_ns - c_.last_payload_ns});
	else
		w_.null_member("idle_before_close_ms");
	w_.end_object();
}

void RecordWriter::tcp()
{
	const TcpState& t = c_.tcp;
	w_.key("tcp").begin_object();
	dir_pair("keepalives", t.keepalive_count(0), t.keepalive_count(1));
	dir_pair("retransmissions", t.retrans(0), t.retrans(1));
	dir_pair("zero_windows", t.zero_windows(0), t.zero_windows(1));
	if (t.stats_seen) {
		dir_pair("bytes", t.stats.bytes[0], t.stats.bytes[1]);
		dir_pair("packets", t.stats.packets[0], t.stats.packets[1]);
		dir_pair("duplicates_ignored", t.stats.duplicates[0], t.stats.duplicates[1]);
		dir_pair("largest_segment", t.stats.largest[0], t.stats.largest[1]);
	} else {
		w_.null_member("bytes")
			.null_member("packets")
			.null_member("duplicates_ignored")
			.null_member("largest_segment");
	}
	w_.member("syn_count", t.syn_count);
	if (t.syn_ns && t.hs_ack_ns >= t.syn_ns)
		w_.member("handshake_ms", Millis{t.hs_ack_ns - t.syn_ns});
	else
		w_.null_member("handshake_ms");
	w_.end_object();
}

// What ties the connection to the server's logs and the client's: the SPID,
// and the client driver's ClientConnectionId, ActivityId and thread.
void RecordWriter::ids()
{
	const PreloginState& p = c_.prelogin;
	w_.key("ids").begin_object();
	if (c_.login.spid)
		w_.member("spid", c_.login.spid);
	else
		w_.null_member("spid");
	if (p.trace_seen) {
		w_.member("client_connection_id", guid_string(p.trace.connection_id));
		w_.member("activity_id", guid_string(p.trace.activity_id));
		w_.member("activity_sequence", p.trace.activity_seq);
	} else {
		w_.null_member("client_connection_id").null_member("activity_id").null_member("activity_sequence");
	}
	if (p.thread_seen)
		w_.member("client_thread_id", p.trace.thread_id);
	else
		w_.null_member("client_thread_id");
	w_.end_object();
}

void RecordWriter::owners()
{
	w_.key("owners").begin_object();
	for (int side = 0; side < 2; side++) {
		const Connection::Owner& o = c_.owners[side];
		const char* k = side == TDSBPF_DIR_C2S ? "client" : "server";
		if (!o.cgroup_id) {
			w_.null_member(k);
			continue;
		}
		w_.key(k).begin_object().member("cgroup.id", o.cgroup_id);
		const SocketOwner* who = o.who.get();
		auto text = [&](std::string_view key, const std::string* v) {
			if (v && !v->empty())
				w_.member(key, std::string_view(*v));
			else
				w_.null_member(key);
		};
		text("cgroup.path", who ? &who->cgroup_path : nullptr);
		text("systemd.unit", who ? &who->systemd_unit : nullptr);
		text("container.id", who ? &who->container_id : nullptr);
		text("container.runtime", who ? &who->container_runtime : nullptr);
		text("k8s.pod.uid", who ? &who->pod_uid : nullptr);
		w_.end_object();
	}
	w_.end_object();
}

void RecordWriter::diagnoses()
{
	write_diagnoses(w_, r_.diagnoses);
}

} // namespace

void write_diagnoses(JsonWriter& w, const std::vector<Diagnosis>& diagnoses)
{
	w.key("diagnoses").begin_array();
	for (const Diagnosis& d : diagnoses)
		w.begin_object()
			.member("code", d.code)
			.member("severity", d.severity)
			.member("message", d.message)
			.end_object();
	w.end_array();
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
	if (c.close.first_rst_dir >= 0)
		return "reset";
	if (c.close.first_fin_dir >= 0)
		return "connection_closed";
	return "open";
}

void write_record_json(JsonBuffer& out, const RecordContext& r)
{
	RecordWriter(out, r).write();
}

} // namespace tdsbpf
