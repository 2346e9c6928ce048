// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The text view's block for a connection, rendered from the model: the
// same facts as the JSON record, in the order a reader scans them.
#include <charconv>
#include <cstdarg>
#include <cstdio>

#include "connection.h"

namespace tdsbpf {

namespace {

class TextBlock {
public:
	explicit TextBlock(std::string& out) : out_(out) {}
	TextBlock& operator<<(std::string_view s)
	{
		out_ += s;
		return *this;
	}
	TextBlock& operator<<(const char* s)
	{
		out_ += s;
		return *this;
	}
	TextBlock& operator<<(const std::string& s)
	{
		out_ += s;
		return *this;
	}
	TextBlock& operator<<(uint64_t v)
	{
		char buf[24];
		out_.append(buf, std::to_chars(buf, buf + sizeof(buf), v).ptr);
		return *this;
	}
	TextBlock& operator<<(uint32_t v) { return *this << static_cast<uint64_t>(v); }
	TextBlock& operator<<(uint16_t v) { return *this << static_cast<uint64_t>(v); }
	TextBlock& operator<<(uint8_t v) { return *this << static_cast<uint64_t>(v); }
	TextBlock& operator<<(bool b) { return *this << (b ? "true" : "false"); }
	TextBlock& operator<<(double v)
	{
		char buf[64];
		out_.append(buf, std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed).ptr);
		return *this;
	}
	TextBlock& printf(const char* f, ...) __attribute__((format(printf, 2, 3)))
	{
		char buf[256];
		va_list ap;
		va_start(ap, f);
		int n = vsnprintf(buf, sizeof(buf), f, ap);
		va_end(ap);
		if (n > 0)
			out_.append(buf, std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1));
		return *this;
	}

private:
	std::string& out_;
};

std::string version_text(const PreloginSide& p)
{
	if (!p.seen || !p.has_version)
		return "-";
	char buf[48];
	snprintf(buf, sizeof(buf), "%u.%u.%u.%u", p.major, p.minor, p.build, p.subbuild);
	return buf;
}

std::string protocol_version(const Connection& c)
{
	if (c.login.ack_tds_version)
		return tds_version_name(c.login.ack_tds_version);
	if (c.login.login7_plain && c.login.login7.tds_version)
		return tds_version_name(c.login.login7.tds_version);
	return "-";
}

} // namespace

void write_record_text(std::string& out, const RecordContext& r)
{
	const Connection& c = r.c;
	TextBlock t(out);
	uint64_t end_ns = r.final ? c.end_ns : c.last_ns;
	const tdsbpf_flow_key& k = c.key;
	t.printf("#%-5llu %s ", static_cast<unsigned long long>(c.id), r.final ? "== connection" : "== snapshot");
	t << endpoint_string(k.client_addr, k.family, k.client_port) << " -> "
	  << endpoint_string(k.server_addr, k.family, k.server_port) << (k.family == 6 ? " (ipv6)\n" : " (ipv4)\n");
	t << "   time      " << iso_time(c.first_ns) << " .. " << iso_time(end_ns) << " (" << ms(end_ns - c.first_ns)
	  << " ms)" << (c.midstream ? ", seen mid-stream" : "") << "\n";
	t << "   wireshark ";
	if (c.first_frame)
		t << "frames " << c.first_frame << ".." << c.last_frame << ", ";
	t << wireshark_filter(k) << "\n";
	if (const auto* o = c.redirected_from.get())
		t << "   routed    here by the server of #" << o->id << " ("
		  << endpoint_string(o->key.server_addr, o->key.family, o->key.server_port) << ")\n";
	if (const auto* b = c.browser.get()) {
		t << "   browser   instance " << b->instance << " named this port";
		if (b->lookup_ms >= 0)
			t.printf(" (lookup %.3f ms)", b->lookup_ms);
		t << "\n";
	}
	for (int side : {kC2S, kS2C}) {
		const Connection::Owner& o = c.owners[side];
		if (!o.cgroup_id)
			continue;
		t << (side == kC2S ? "   client    " : "   server    ");
		const SocketOwner* who = o.who.get();
		if (!who) {
			t << "cgroup " << o.cgroup_id << " (gone or not resolved)\n";
			continue;
		}
		t << who->cgroup_path;
		if (!who->systemd_unit.empty())
			t << ", unit " << who->systemd_unit;
		if (!who->container_id.empty())
			t << ", container " << who->container_id.substr(0, 12);
		if (!who->pod_uid.empty())
			t << ", pod " << who->pod_uid;
		t << "\n";
	}
	t << "   phases (name@start+duration, ms)\n            ";
	for (size_t i = 0; i < c.phases.size(); i++) {
		uint64_t start = c.phases[i].start_ns;
		uint64_t end = i + 1 < c.phases.size() ? c.phases[i + 1].start_ns : std::max(end_ns, start);
		t.printf(" %s@%.3f+%.3f", phase_name(c.phases[i].phase), ms(start - c.first_ns), ms(end - start));
	}
	t << "\n";

	const LoginState& l = c.login;
	t << "   login     " << login_outcome_name(l.outcome) << (l.inferred ? " (inferred)" : "") << ", ";
	if (auto d = c.login_duration_ns())
		t << ms(*d);
	else
		t << "-";
	t << " ms (threshold " << r.cfg.slow_login_threshold_ms << " ms)";
	const Texts* tx = c.texts.get();
	auto words = [&](bool login, uint32_t number) {
		const Texts::Message& m = login ? tx->login_error : tx->last_error;
		if (m.number == number && number)
			t << ": \""
			  << (r.cfg.redact ? std::string_view("<redacted>")
					   : tx->get(login ? Texts::kLoginErrorText : Texts::kLastErrorText))
			  << "\"";
	};
	if (l.error_seen) {
		t << ", error " << l.error_number << " state " << l.error_state << " class " << l.error_class;
		if (tx)
			words(true, l.error_number);
	}
	t << "\n";
	for (size_t i = 0; tx && i < tx->login_info.size(); i++)
		t << "             info " << tx->login_info[i].number << ": \""
		  << (r.cfg.redact ? std::string_view("<redacted>")
				   : tx->get(static_cast<Texts::Field>(Texts::kLoginInfo0 + i)))
		  << "\"\n";
	auto or_dash = [&](Texts::Field f) {
		std::string_view v = tx->get(f);
		return v.empty() ? std::string_view("-") : v;
	};
	if (tx && tx->login7) {
		auto secret = [&](Texts::Field f) {
			std::string_view v = or_dash(f);
			return r.cfg.redact && v != "-" ? std::string_view("<redacted>") : v;
		};
		t << "   client    host " << secret(Texts::kHost) << ", application \"" << secret(Texts::kApp)
		  << "\", user " << secret(Texts::kUser) << ", library " << or_dash(Texts::kLibrary)
		  << ", asked for server " << or_dash(Texts::kServer) << " database " << or_dash(Texts::kDatabase)
		  << "\n";
	}
	if (tx && (!tx->get(Texts::kServerName).empty() || !tx->get(Texts::kEnvDatabase).empty())) {
		t << "   server    " << or_dash(Texts::kServerName) << ", database " << or_dash(Texts::kEnvDatabase)
		  << ", language " << or_dash(Texts::kEnvLanguage) << "\n";
	}
	// the waterfall: each step, whose turn it was, and a bar to scale
	std::vector<LoginStep> steps = c.login_steps();
	uint64_t longest = 0;
	for (const LoginStep& s : steps)
		longest = std::max(longest, s.end_ns - s.start_ns);
	if (!steps.empty())
		t << "   waterfall (step, whose turn, ms)\n";
	for (const LoginStep& s : steps) {
		uint64_t d = s.end_ns - s.start_ns;
		std::string bar(longest ? static_cast<size_t>((d * 30 + longest - 1) / longest) : 0, '#');
		t.printf("             %-18s %-7s %10.3f %s\n", s.name, s.owner, ms(d), bar.c_str());
	}

	const AuthState& a = c.auth;
	t << "   auth      " << auth_method_name(a.method) << (a.inferred ? " (inferred)" : "");
	if (a.ntlm_seen && a.ntlm.get()) {
		const AuthState::NtlmNames& n = *a.ntlm.get();
		if (r.cfg.redact)
			t << ", <redacted>\\<redacted> from <redacted>";
		else
			t << ", " << n.domain << "\\" << n.user << " from " << n.workstation;
	}
	t << "\n";

	const PreloginSide& cl = c.prelogin.client();
	t << "   versions  driver " << version_text(cl) << ", server " << version_text(c.prelogin.server()) << ", TDS "
	  << protocol_version(c) << ", encryption " << encryption_name(c.encryption()) << ", TLS "
	  << (c.tls.server_version ? tls_version_name(c.tls.server_version) : std::string("-")) << ", MARS requested ";
	if (cl.seen && cl.mars != TDSBPF_VALUE_ABSENT)
		t << (cl.mars != 0);
	else
		t << "-";
	t << " used " << !c.mars.sessions().empty() << ", packet size ";
	if (l.packet_size)
		t << l.packet_size;
	else
		t << "-";
	t << "\n";

	if (const TlsPosture* p = c.tls_posture.get()) {
		t << "   tls      ";
		if (p->client_seen) {
			t << " offered up to TLS " << tls_version_name(p->client_max_version) << ", " << p->offered
			  << " suites (" << p->weak_offered.size() << " weak)";
			if (!p->sni.empty())
				t << ", SNI " << p->sni;
			if (!p->alpn.empty())
				t << ", ALPN " << p->alpn;
			t << ";";
		}
		if (p->server_seen)
			t << " chose TLS " << tls_version_name(p->server_version) << " " << tls_cipher_name(p->cipher)
			  << ";";
		switch (p->cert) {
		case TlsPosture::Cert::read:
			t << " certificate " << p->certificate.subject << " (" << p->certificate.key_type << " "
			  << static_cast<uint32_t>(std::max(p->certificate.key_bits, 0)) << ", until "
			  << iso_time(static_cast<uint64_t>(std::max<int64_t>(p->certificate.not_after, 0)) *
				      1000000000ull)
					.substr(0, 10)
			  << (p->certificate.fallback	   ? ", SQL Server's self-signed fallback"
			      : p->certificate.self_signed ? ", self-signed"
							   : "")
			  << ")";
			break;
		case TlsPosture::Cert::cut: t << " certificate not read whole"; break;
		case TlsPosture::Cert::hidden: t << " certificate hidden (TLS 1.3)"; break;
		default: break;
		}
		t << "\n";
	}

	if (l.spid || c.prelogin.trace_seen) {
		t << "   ids       spid " << (l.spid ? std::to_string(l.spid) : std::string("-"));
		if (c.prelogin.trace_seen)
			t << ", client connection " << guid_string(c.prelogin.trace.connection_id) << ", activity "
			  << guid_string(c.prelogin.trace.activity_id) << ":" << c.prelogin.trace.activity_seq;
		t << "\n";
	}

	const WorkState& w = c.work;
	t << "   work      requests " << w.requests;
	if (w.encrypted_requests)
		t << " (" << w.encrypted_requests << " encrypted)";
	t << ", batches " << w.sql_batches << ", rpcs " << w.rpcs << ", attentions " << w.attentions << ", bulk "
	  << w.bulk_loads << ", tm " << w.tm_requests << ", responses " << w.responses << ", resetconnection "
	  << w.reset_connection << ", rows ";
	if (w.rows_seen)
		t << w.rows;
	else
		t << "-";
	if (w.latency.count())
		t << ", latency ms min " << ms(w.latency.min_ns()) << " p50 " << ms(w.latency.percentile_ns(50))
		  << " p99 " << ms(w.latency.percentile_ns(99)) << " max " << ms(w.latency.max_ns());
	t << "\n";
	if (w.errors) {
		t << "   errors    " << w.errors << ", the last " << w.last_error_number << " state "
		  << w.last_error_state << " class " << w.last_error_class;
		if (tx)
			words(false, w.last_error_number);
		t << "\n";
	}

	for (const auto& [sid, s] : c.mars.sessions()) {
		uint64_t closed = s.closed_ns ? s.closed_ns : std::max(s.fin_ns[0], s.fin_ns[1]);
		t << "   mars      sid " << sid << " open " << (s.opened_ns ? iso_time(s.opened_ns) : std::string("-"))
		  << " close " << (closed ? iso_time(closed) : std::string("-")) << " data packets client→server "
		  << s.data_packets[0] << ", server→client " << s.data_packets[1] << " end "
		  << session_end(s, c, r.final) << "\n";
	}
	if (r.final) {
		const CloseState& cs = c.close;
		t << "   close     " << close_kind_name(cs.kind);
		if (cs.initiator >= 0)
			t << " by " << side_name(cs.initiator);
		if (c.phase == Phase::close)
			t << " in phase " << phase_name(cs.phase);
		if (c.tcp.syn_count > 1)
			t << ", SYNs " << c.tcp.syn_count;
		if (cs.first_rst_dir >= 0 && cs.rst_ttl) {
			t << ", the RST's IP TTL " << static_cast<unsigned>(cs.rst_ttl);
			if (cs.rst_usual_ttl)
				t << " (its side's packets: " << static_cast<unsigned>(cs.rst_usual_ttl) << ")";
		}
		t << "\n";
	}
	PoolingVerdict pv = pooling_verdict(c, r.cfg);
	t << "   pooling   " << pv.verdict << ": " << pv.evidence << "\n";
	// each direction's counts, labelled (the kernel's counters, where its
	// final FLOW_STATS came; keep-alives and retransmissions also from events)
	for (int dir : {kC2S, kS2C}) {
		t << (dir == kC2S ? "   tcp       client→server " : "             server→client ");
		if (c.tcp.stats_seen) {
			t << static_cast<uint64_t>(c.tcp.stats.bytes[dir]) << " B in "
			  << static_cast<uint64_t>(c.tcp.stats.packets[dir]) << " packets";
			if (c.tcp.stats.largest[dir])
				t << " (largest " << static_cast<uint64_t>(c.tcp.stats.largest[dir]) << " B)";
			t << ", ";
		}
		t << c.tcp.keepalive_count(dir) << " keep-alives, " << c.tcp.retrans(dir) << " retransmissions";
		if (c.tcp.zero_windows(dir))
			t << ", " << c.tcp.zero_windows(dir) << " zero windows";
		if (c.tcp.duplicates(dir))
			t << ", " << c.tcp.duplicates(dir) << " duplicates ignored";
		t << "\n";
	}
	for (const Diagnosis& d : r.diagnoses)
		t << "   [" << d.severity << "] " << d.code << ": " << d.message << "\n";
}

} // namespace tdsbpf
