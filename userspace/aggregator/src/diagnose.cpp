// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Findings about a connection. Each rule below is one function that looks
// at the model and, when its pattern is there, adds a finding with its
// code, severity and sentence; the table at the end runs them in order.
// A new diagnosis is a new rule here, a row in docs/connections.md and in
// the schema's code list, and a test. Every sentence says what was seen,
// which side owns it and what to do.
#include <cstdarg>
#include <cstdio>

#include "connection.h"

namespace tdsbpf {

namespace {

struct Findings {
	const Connection& c;
	const AggregatorConfig& cfg;
	std::vector<Diagnosis>& out;
	Phase at; // the phase before the close
	const char* at_name;
	// The rule running now concludes from something not seen; with events
	// of the connection lost, its sentence says so.
	bool from_absence = false;

	void add(const char* code, const char* severity, const char* f, ...) __attribute__((format(printf, 4, 5)))
	{
		char buf[640];
		size_t n = 0;
		if (from_absence && c.tracer.lossy())
			n = format_to(buf, sizeof(buf), "Events of this connection were lost, so this may be wrong: ");
		va_list ap;
		va_start(ap, f);
		n += vformat_to(buf + n, sizeof(buf) - n, f, ap);
		va_end(ap);
		out.push_back({code, severity, std::string(buf, n)});
	}
	bool has(const char* code) const
	{
		for (const Diagnosis& d : out)
			if (d.code == code)
				return true;
		return false;
	}
};

using Rule = void (*)(Findings&);

unsigned long long ull(uint64_t v)
{
	return static_cast<unsigned long long>(v);
}

const char* login_error_meaning(uint32_t number)
{
	switch (number) {
	case 18456:
		return "login failed for the user (wrong password, unknown login, or no access; the server log has the real state)";
	case 18452: return "the login is from an untrusted domain and cannot be used with Windows authentication";
	case 18470: return "the login is disabled";
	case 18486: return "the account is locked out";
	case 18487: return "the password has expired";
	case 18488: return "the password must be changed";
	case 4060: return "the database named in the login cannot be opened";
	case 4064: return "the login's default database cannot be opened";
	case 17892: return "a logon trigger refused the login";
	case 18401: return "the server is in script upgrade mode";
	case 40613: return "the database is not currently available";
	case 40615: return "a firewall rule refused the client address";
	default: return nullptr;
	}
}

// ---- The rules ----------------------------------------------------------

void midstream(Findings& f)
{
	if (f.c.midstream)
		f.add("midstream", "info",
		      "The tracer started after this connection opened; it was first seen in phase %s, so its login was not seen.",
		      phase_name(f.c.phases.empty() ? Phase::active : f.c.phases.front().phase));
}

void syn_unanswered(Findings& f)
{
	if (f.c.close.kind == CloseKind::syn_unanswered)
		f.add("syn_unanswered", "error",
		      "The client sent %u SYN(s) and the server never answered: SQL Server not listening on port %u, a firewall dropping the packets, or the wrong address.",
		      f.c.tcp.syn_count, f.c.key.server_port);
}

void connection_refused(Findings& f)
{
	if (f.c.close.kind != CloseKind::refused)
		return;
	if (f.c.tcp.syn_count > 1)
		f.add("connection_refused", "error",
		      "The server answered the SYN with a reset; the client sent the same SYN (same initial sequence number) %u times in all: one attempt, retried. Nothing listens on port %u (service stopped, wrong port, or a named instance on a dynamic port).",
		      f.c.tcp.syn_count, f.c.key.server_port);
	else
		f.add("connection_refused", "error",
		      "The server answered the SYN with a reset: nothing listens on port %u (service stopped, wrong port, or a named instance on a dynamic port).",
		      f.c.key.server_port);
}

bool server_ended(const Connection& c)
{
	return c.close.initiator == kS2C &&
	       (c.close.kind == CloseKind::server_fin_first || c.close.kind == CloseKind::reset);
}

bool during_tls(const Findings& f)
{
	return (f.at == Phase::tls_handshake || f.at == Phase::prelogin) && !f.c.login.ack_seen;
}

// A RST whose IP TTL is not its side's: a device on the path made it. The
// same sender's packets keep one TTL; a route change moves it by a hop or
// so, so a difference of 2 or more is asked for.
bool injected_reset(const CloseState& cl)
{
	if (cl.first_rst_dir < 0 || !cl.rst_usual_ttl || !cl.rst_ttl)
		return false;
	int diff = static_cast<int>(cl.rst_ttl) - static_cast<int>(cl.rst_usual_ttl);
	return diff <= -2 || diff >= 2;
}

// The connection ended with such a reset: the side whose address it bore
// did not end it.
bool ended_by_injected_reset(const CloseState& cl)
{
	return cl.kind == CloseKind::reset && injected_reset(cl);
}

void server_closed_during_tls(Findings& f)
{
	const Connection& c = f.c;
	if (!server_ended(c) || !during_tls(f) || ended_by_injected_reset(c.close))
		return;
	char alert[96] = "";
	if (c.tls.alert)
		snprintf(alert, sizeof(alert), " A TLS alert (level %u, description %u) was seen.", c.tls.alert_level,
			 c.tls.alert_desc);
	f.add("server_closed_during_tls", "error",
	      "The server closed the connection first (%s) during %s: client and server most likely could not agree on a TLS version or cipher suite, or the server certificate is unusable.%s",
	      c.close.kind == CloseKind::reset ? "RST" : "FIN",
	      f.at == Phase::prelogin ? "the encryption negotiation" : "the TLS handshake", alert);
}

void server_closed_first(Findings& f)
{
	const Connection& c = f.c;
	if (c.close.initiator == kS2C && c.close.kind == CloseKind::server_fin_first && !during_tls(f) &&
	    f.at != Phase::login_error && !(c.login.outcome == LoginOutcome::failed && c.login.inferred))
		f.add("server_closed_first", "warning",
		      "The server sent the first FIN, in phase %s. Microsoft drivers close from the client side, so this is abnormal: the server or something between (firewall, load balancer) ended the connection.",
		      f.at_name);
}

void server_reset(Findings& f)
{
	const Connection& c = f.c;
	if (c.close.initiator == kS2C && c.close.kind == CloseKind::reset && !during_tls(f) &&
	    !ended_by_injected_reset(c.close))
		f.add("server_reset", f.at == Phase::active ? "warning" : "error",
		      "The server reset the connection in phase %s: the server (or a device on the path) aborted it; check the SQL Server error log for the time of the reset.",
		      f.at_name);
}

void client_reset(Findings& f)
{
	const Connection& c = f.c;
	if (c.close.initiator != kC2S || c.close.kind != CloseKind::reset || ended_by_injected_reset(c.close))
		return; // a reset the client did not send is reset_injected's
	bool fin_first = c.close.first_fin_dir == kC2S && c.close.fin_ns[kC2S] <= c.close.rst_ns;
	double waited = ms(c.close.start_ns - c.close.pending_since_ns);
	if (c.close.pending_request && fin_first)
		f.add("client_reset_abnormal", "warning",
		      "The client closed the connection %.1f ms after sending a request that had no response yet, and reset it when the late response came: a command timeout without an attention, or the application disposed of the connection mid-query.",
		      waited);
	else if (c.close.pending_request)
		f.add("client_reset_abnormal", "warning",
		      "The client reset the connection %.1f ms after sending a request that had no response yet (phase %s): the application was killed, timed out or disposed of the connection mid-query.",
		      waited, f.at_name);
	else if (phase_rank(f.at) >= phase_rank(Phase::active))
		f.add("client_reset", "info",
		      "The client closed the connection with a reset instead of a FIN. Many non-Microsoft drivers close this way; with no request in flight it is harmless.");
}

void request_abandoned(Findings& f)
{
	const Connection& c = f.c;
	if ((c.close.kind == CloseKind::four_way || c.close.kind == CloseKind::half_close) &&
	    c.close.initiator == kC2S && c.close.pending_request)
		f.add("request_abandoned", "warning",
		      "The client closed the connection %.1f ms after sending a request that had no response yet: a command timeout without an attention, or the application disposed of the connection mid-query.",
		      ms(c.close.start_ns - c.close.pending_since_ns));
}

void mars_benign_reset(Findings& f)
{
	if (f.c.close.kind == CloseKind::mars_benign_reset)
		f.add("mars_benign_reset", "info",
		      "The client reset the connection right after the MARS session closed (SMP:FIN both ways): the server's SMP:FIN reached the client after its own FIN. This reset is benign.");
}

void login_failed(Findings& f)
{
	const LoginState& l = f.c.login;
	if (l.outcome != LoginOutcome::failed)
		return;
	if (l.inferred) {
		f.add("login_failed", "error",
		      "Login probably failed (inferred: the login is encrypted): the server answered the client's login%s and then closed the connection, with nothing from the client in between. SQL Server does this after a failed login; the error (usually 18456) and its state, which says why, are in the server's error log at %s.",
		      l.opaque_second_trip
			      ? " and the client's one flight after it (an integrated login's second round trip)"
			      : " once",
		      f.c.close.start_ns ? iso_time(f.c.close.start_ns).c_str() : "this time");
		return;
	}
	const char* meaning = login_error_meaning(l.error_number);
	f.add("login_failed", "error", "Login failed: error %u, state %u, class %u%s%s.", l.error_number, l.error_state,
	      l.error_class, meaning ? ": " : "", meaning ? meaning : "");
}

void closed_before_login(Findings& f)
{
	const Connection& c = f.c;
	if (c.login.outcome != LoginOutcome::aborted)
		return;
	bool reset = c.close.first_rst_dir >= 0 &&
		     (c.close.first_fin_dir < 0 || c.close.rst_ns < c.close.fin_ns[c.close.first_fin_dir]);
	f.add("closed_before_login", "error", "The %s %s the connection in phase %s, before the login finished.",
	      side_name(c.close.initiator >= 0 ? c.close.initiator : kC2S), reset ? "reset" : "closed", f.at_name);
}

void login_timed_out(Findings& f)
{
	const Connection& c = f.c;
	if (c.login.outcome != LoginOutcome::timed_out)
		return;
	uint64_t start = c.tcp.syn_ns ? c.tcp.syn_ns : c.first_ns;
	uint64_t end = c.close.start_ns ? c.close.start_ns : c.end_ns;
	f.add("login_timed_out", "error",
	      "No login answer after %.0f ms (phase %s): the client gave up (Login Timeout) or the tracer's idle timeout ended it. Look for a busy server, queued authentication or an unreachable domain controller.",
	      ms(end - start), f.at_name);
}

// What a slow step of the login means and what to do, by its owner.
const char* step_hint(const LoginStep& s)
{
	std::string_view n = s.name;
	if (n == "tcp_syn_ack")
		return "the SYN+ACK came late: a slow or lossy network path, or a server whose listen queue is full (SYN retries cost 1 s, then 2 s)";
	if (n == "tcp_ack")
		return "the client's ACK came late: the network between them";
	if (n == "auth_challenge")
		return "the server was slow to answer the login's first SSPI step: a busy or thread-starved server, or the domain controller behind it";
	if (n == "login_answer")
		return "the server was slow to finish the login: a busy or thread-starved server, logon triggers, an unavailable default database, or, for an integrated login, a slow or distant domain controller";
	if (n.substr(0, 4) == "tls_")
		return std::string_view(s.owner) == "server"
			       ? "the server was slow in the TLS handshake: its CPU, or a certificate it must load or check"
			       : "the client was slow in the TLS handshake: certificate validation and revocation checks (CRL or OCSP fetches), or its CPU";
	if (std::string_view(s.owner) == "server")
		return "the server was slow to answer: a busy or thread-starved server (its CPU, waits and error log), or the network in between";
	return "the client was slow to send it: work on the client host before it (DNS lookups, certificate revocation checks, a busy or starved thread pool, a slow driver), or the network in between";
}

void slow_login(Findings& f)
{
	const Connection& c = f.c;
	if (!c.login.ack_seen || !c.tcp.syn_ns || c.login.ack_ns < c.tcp.syn_ns)
		return;
	uint64_t total = c.login.ack_ns - c.tcp.syn_ns;
	if (total <= static_cast<uint64_t>(f.cfg.slow_login_threshold_ms) * 1000000ull)
		return;
	std::vector<LoginStep> steps = c.login_steps();
	const LoginStep* worst = nullptr;
	for (const LoginStep& s : steps)
		if (!worst || s.end_ns - s.start_ns > worst->end_ns - worst->start_ns)
			worst = &s;
	if (!worst)
		return;
	f.add("slow_login", "warning",
	      "The login took %.1f ms from SYN to LOGINACK (threshold %u ms); its longest step, %.1f ms, was %s, the %s's turn: %s.",
	      ms(total), f.cfg.slow_login_threshold_ms, ms(worst->end_ns - worst->start_ns), worst->name, worst->owner,
	      step_hint(*worst));
}

void login_unencrypted(Findings& f)
{
	const Connection& c = f.c;
	if (!c.login.login7_plain || c.tls.seen)
		return;
	const char* why = c.encryption() == Encryption::not_negotiated
				  ? "no PRELOGIN: a TDS 7.0/7.1 client, which negotiates no encryption"
				  : "encryption not supported by one side";
	switch (c.auth.method) {
	case AuthMethod::sql:
		f.add("login_unencrypted", "warning",
		      "The LOGIN7 packet was sent without TLS (%s): the SQL password in it is only obfuscated, readable by anyone on the path. Enable encryption on the server and the driver.",
		      why);
		break;
	case AuthMethod::ntlm:
	case AuthMethod::kerberos:
	case AuthMethod::federated:
		f.add("login_unencrypted", "warning",
		      "The LOGIN7 packet was sent without TLS (%s). It carries no password (%s authentication), but the user, host and application names and everything after the login travel in clear. Enable encryption on the server and the driver.",
		      why, auth_method_name(c.auth.method));
		break;
	default:
		f.add("login_unencrypted", "warning",
		      "The LOGIN7 packet was sent without TLS (%s): whatever it carries, a SQL password included, travels in clear or only obfuscated. Enable encryption on the server and the driver.",
		      why);
		break;
	}
}

void login_reply_not_taken(Findings& f)
{
	// The server accepted the login and the client said nothing more, then
	// closed about when a driver's login timeout runs out after the SYN:
	// the driver most likely never took the LOGINACK.
	const Connection& c = f.c;
	if (c.login.outcome != LoginOutcome::success || c.work.requests || c.work.encrypted_requests ||
	    c.close.initiator != kC2S || !c.close.start_ns || !c.tcp.syn_ns || c.tcp.keepalive_total())
		return;
	uint64_t after_syn = c.close.start_ns - c.tcp.syn_ns;
	uint64_t timeout = static_cast<uint64_t>(f.cfg.login_timeout_ms) * 1000000ull;
	if (after_syn < timeout * 9 / 10 || after_syn > timeout * 3 / 2)
		return;
	f.add("login_reply_not_taken", "warning",
	      "The server accepted the login (LOGINACK %.1f ms after the SYN), but the client sent nothing more and closed the connection %.1f s after the SYN, about its login timeout (%u ms): the driver probably did not take the reply (a TLS or protocol problem on the client side, or a reply that never reached it). Look at the client's error for this time.",
	      ms(c.login.ack_ns - c.tcp.syn_ns), ms(after_syn) / 1000.0, f.cfg.login_timeout_ms);
}

void weak_tls(Findings& f)
{
	uint16_t v = f.c.tls.server_version;
	if (v && v < 0x0303)
		f.add("weak_tls", "warning",
		      "TLS %s was negotiated; TLS 1.0 and 1.1 are deprecated. Enable TLS 1.2 (or TDS 8.0 with TLS 1.3) on client and server.",
		      tls_version_name(v).c_str());
}

// The TLS posture: the certificate and the cipher suites.
void tls_posture(Findings& f)
{
	const TlsPosture* p = f.c.tls_posture.get();
	if (!p)
		return;
	if (p->cert == TlsPosture::Cert::read && p->certificate.fallback)
		f.add("tls_self_signed_fallback", "warning",
		      "The server presented SQL Server's self-signed fallback certificate (%s): the connection is encrypted, but the client cannot know it talks to this server (it trusts the certificate blindly, TrustServerCertificate=yes). Owner: the server: give SQL Server a certificate from a CA the clients trust (SQL Server Configuration Manager, the instance's protocols, Certificate), then have the drivers validate it.",
		      p->certificate.subject.c_str());
	else if (p->cert == TlsPosture::Cert::read && p->certificate.self_signed)
		f.add("tls_self_signed", "warning",
		      "The server presented a self-signed certificate (%s): the connection is encrypted, but a client can only accept it by trusting it blindly or pinning it. Owner: the server: use a certificate from a CA the clients trust.",
		      p->certificate.subject.c_str());
	if (p->cert == TlsPosture::Cert::read && p->certificate.not_after > 0) {
		int64_t now = static_cast<int64_t>(f.c.first_ns / 1000000000ull);
		double days = static_cast<double>(p->certificate.not_after - now) / 86400.0;
		if (days < 0)
			f.add("tls_certificate_expired", "error",
			      "The server's certificate (%s) expired %.0f day(s) before this connection: clients that validate it refuse to connect. Owner: the server: renew the certificate and restart SQL Server.",
			      p->certificate.subject.c_str(), -days);
		else if (days < 30)
			f.add("tls_certificate_expired", "warning",
			      "The server's certificate (%s) expires in %.0f day(s): once it has, clients that validate it refuse to connect. Owner: the server: renew it now.",
			      p->certificate.subject.c_str(), days);
	}
	if (p->server_seen && tls_cipher_weak(p->cipher)) {
		std::string name = tls_cipher_name(p->cipher);
		const char* what =
			name.find("WITH_NULL") != std::string::npos
				? "it encrypts nothing: the login, its password and every query cross the network readable, while both ends report the connection as encrypted"
			: name.find("_anon_") != std::string::npos
				? "it authenticates no one: whoever sits on the path can pose as the server and read everything"
				: "its protection is broken or close to it";
		f.add("tls_weak_cipher", name.find("WITH_NULL") != std::string::npos ? "error" : "warning",
		      "The server chose the weak cipher suite %s: %s. Owner: the server's TLS settings (Windows' cipher suite order, or OpenSSL's on Linux): disable RC4, 3DES, DES, NULL, anonymous and export suites.",
		      name.c_str(), what);
	} else if (!p->weak_offered.empty())
		f.add("tls_weak_ciphers_offered", "info",
		      "The client offered %zu weak cipher suite(s) (%s%s) among %u; the server chose %s. Owner: the client's TLS settings: a server that allowed them could be talked into one.",
		      p->weak_offered.size(), tls_cipher_name(p->weak_offered[0]).c_str(),
		      p->weak_offered.size() > 1 ? ", ..." : "", p->offered,
		      p->server_seen ? tls_cipher_name(p->cipher).c_str() : "(its answer was not seen)");
	// TDS 7.x tops out at TLS 1.2 by design; with TDS 8.0 a lower answer to
	// a 1.3 offer is the server's (or its operating system's) doing
	if (f.c.tls.strict && p->client_seen && p->server_seen && p->client_max_version >= 0x0304 &&
	    p->server_version && p->server_version < 0x0304)
		f.add("tls_version_downgrade", "info",
		      "With TDS 8.0 the client offered TLS 1.3 and the server answered with TLS %s. Owner: the server: SQL Server 2022 does TLS 1.3 where its operating system does (Windows Server 2022 and later, or OpenSSL 1.1.1 and later on Linux) and it is enabled there.",
		      tls_version_name(p->server_version).c_str());
}

void redirected(Findings& f)
{
	const LoginState& l = f.c.login;
	if (l.routing_seen)
		f.add("redirected", "info",
		      "The server redirected the client to %s:%u (ENVCHANGE routing: Always On read-only routing or an Azure SQL gateway). The work happens on a second connection.",
		      l.routing_server.c_str(), l.routing_port);
}

void idle_closed_after_keepalives(Findings& f)
{
	const Connection& c = f.c;
	uint64_t ka = c.tcp.keepalive_total();
	CloseKind k = c.close.kind;
	bool close_kind = k == CloseKind::four_way || k == CloseKind::half_close || k == CloseKind::server_fin_first ||
			  (k == CloseKind::reset && c.close.initiator == kC2S);
	if (!ka || !c.close.start_ns || c.close.start_ns < c.tcp.last_keepalive_ns || !close_kind ||
	    c.tcp.last_keepalive_ns < c.last_payload_ns)
		return;
	uint64_t idle_since = c.last_payload_ns ? c.last_payload_ns : c.first_ns;
	f.add("idle_closed_after_keepalives", "info",
	      "The connection sat idle (%llu keep-alives) and the %s closed it %.1f s after the last keep-alive: an idle pooled connection being retired (idle for at least %.1f s).",
	      ull(ka), side_name(c.close.initiator), ms(c.close.start_ns - c.tcp.last_keepalive_ns) / 1000.0,
	      ms(c.close.start_ns - idle_since) / 1000.0);
}

void non_pooled_close(Findings& f)
{
	const Connection& c = f.c;
	if (!f.has("idle_closed_after_keepalives") && single_use(c, f.cfg))
		f.add("non_pooled_close", "info",
		      "The client closed the connection %.1f ms after the last response, having run %llu request(s): a connection opened for a single piece of work. Connection pooling avoids the cost of a new login each time.",
		      ms(c.close.start_ns - c.last_server_payload_ns), ull(c.work.requests));
}

void idle_timeout(Findings& f)
{
	if (f.c.end_reason == EndReason::idle_timeout && f.c.close.kind == CloseKind::idle_timeout)
		f.add("idle_timeout", "info",
		      "No packet for %u s: tdsbpf stopped following the connection (--idle-timeout); it may still be open.",
		      f.cfg.idle_timeout_s);
}

void evicted(Findings& f)
{
	if (f.c.close.kind == CloseKind::evicted)
		f.add("evicted", "warning",
		      "Too many connections were tracked (--max-connections): this one, the longest idle, was dropped from the table while still open.");
}

void attention(Findings& f)
{
	// attentions after a reply had ended cancel nothing (see the record's
	// work.attentions_after_reply): only those that interrupted a request
	const WorkState& w = f.c.work;
	uint64_t interrupting = w.attentions - w.attentions_after_reply;
	if (interrupting)
		f.add("attention", "warning",
		      "The client sent %llu attention(s) while a request was running (%llu acknowledged by the server): a query was cancelled by the application or hit its command timeout. Look for the timeout in the application's log and at the query's duration on the server.",
		      ull(interrupting), ull(w.attention_acks));
}

void retransmissions(Findings& f)
{
	const TcpState& t = f.c.tcp;
	uint64_t r0 = t.retrans(0), r1 = t.retrans(1);
	if (r0 + r1 == 0 || r0 + r1 < f.cfg.retrans_threshold)
		return;
	char share[96] = "";
	uint64_t packets = t.stats_seen ? uint64_t{t.stats.packets[0]} + t.stats.packets[1] : 0;
	if (packets)
		format_to(share, sizeof(share), " (%.1f%% of %llu packets)",
			  100.0 * static_cast<double>(r0 + r1) / static_cast<double>(packets), ull(packets));
	f.add("retransmissions", "warning",
	      "%llu TCP retransmission(s): %llu from the client, %llu from the server%s: packet loss on the path slows requests and logins.",
	      ull(r0 + r1), ull(r0), ull(r1), share);
}

void reset_injected(Findings& f)
{
	const CloseState& cl = f.c.close;
	if (!injected_reset(cl))
		return;
	const char* side = side_name(cl.first_rst_dir);
	f.add("reset_injected", "warning",
	      "The reset from the %s's side came with IP TTL %u, while the %s's other packets had TTL %u: it was most likely made by a device on the path (a firewall, load balancer or intrusion prevention system closing the connection), not by the %s. Owner: the network. Look for an idle or policy timeout on the devices between client and server at this time.",
	      side, cl.rst_ttl, side, cl.rst_usual_ttl, side);
}

// A RST after the same segment went out again and again: the path stopped
// carrying it.
void reset_after_retransmissions(Findings& f)
{
	const CloseState& cl = f.c.close;
	if (cl.first_rst_dir < 0 || cl.rst_stuck_dir < 0 || cl.rst_stuck_times < 3)
		return;
	const TcpState& t = f.c.tcp;
	uint16_t largest = t.stats_seen ? t.stats.largest[cl.rst_stuck_dir ^ 1] : 0;
	bool full_size = cl.rst_stuck_len >= 1200 && cl.rst_stuck_len > largest;
	f.add("reset_after_retransmissions", "error",
	      "The %s sent one segment (%u bytes) %u times without its being acknowledged, then the %s reset the connection: the path stopped delivering packets%s. Owner: the network.%s",
	      side_name(cl.rst_stuck_dir), cl.rst_stuck_len, cl.rst_stuck_times, side_name(cl.first_rst_dir),
	      full_size ? ", and this was a full-size segment larger than any the other side got through" : "",
	      full_size
		      ? " Check the path MTU (a device dropping large packets without an ICMP answer, a VPN or tunnel lowering it)."
		      : " Check the links and devices between client and server at this time.");
}

// The LOGINACK came after the client had closed: it gave up on the login.
void late_login_ack(Findings& f)
{
	const Connection& c = f.c;
	if (!c.login.ack_seen)
		return;
	uint64_t gave_up = 0;
	if (c.close.fin[kC2S])
		gave_up = c.close.fin_ns[kC2S];
	if (c.close.first_rst_dir == kC2S && (!gave_up || c.close.rst_ns < gave_up))
		gave_up = c.close.rst_ns;
	if (!gave_up || gave_up >= c.login.ack_ns)
		return;
	uint64_t start = c.tcp.syn_ns ? c.tcp.syn_ns : c.login.start_ns;
	f.add("late_login_ack", "warning",
	      "The server accepted the login %.1f ms after the client had closed the connection (%.1f ms after %s): the client gave up first, its login timeout shorter than the %.1f ms the server took. Owner: the server's login path (see the waterfall: authentication, a slow domain controller, a busy server); a longer login timeout on the client only hides it.",
	      ms(c.login.ack_ns - gave_up), start ? ms(gave_up - start) : 0.0, c.tcp.syn_ns ? "its SYN" : "its LOGIN7",
	      start ? ms(c.login.ack_ns - start) : 0.0);
}

// An NTLM AUTHENTICATE without a user: an anonymous login.
void ntlm_anonymous(Findings& f)
{
	const AuthState& a = f.c.auth;
	const AuthState::NtlmNames* n = a.ntlm.get();
	if (!a.ntlm_seen || !n || !n->user.empty())
		return;
	f.add("ntlm_anonymous", "warning",
	      "The NTLM AUTHENTICATE carried no user name: an anonymous login, which SQL Server refuses. Owner: the client: the process had no Windows credentials to offer (a local or service account without a domain identity, a double hop without delegation). Run it as a domain account, or use Kerberos delegation.");
}

void zero_window(Findings& f)
{
	uint64_t z0 = f.c.tcp.zero_windows(kC2S), z1 = f.c.tcp.zero_windows(kS2C);
	if (z0)
		f.add("zero_window", "warning",
		      "The client advertised a zero TCP window %llu time(s): the application did not read results as fast as the server sent them (ASYNC_NETWORK_IO waits on the server).",
		      ull(z0));
	if (z1)
		f.add("zero_window", "warning",
		      "The server advertised a zero TCP window %llu time(s): it did not read what the client sent fast enough (busy server or large bulk load).",
		      ull(z1));
}

// The client's first bytes were not TDS 7.x: what the connection is, in
// place of login findings that would not apply.
void not_tds(Findings& f)
{
	const Connection& c = f.c;
	if (c.tracer.client_speaks == Speaks::tds_pre7)
		f.add("not_tds7", "warning",
		      "Not TDS 7.x: the client's first message is a TDS 4.2/5.0 login (packet type 2), as Sybase clients (TDS 5.0) and drivers older than SQL Server 7.0 send. SQL Server has not accepted it since 2005, so the login, the work and the encryption of this record stay empty. Client side: find the application at %s and give it a driver for SQL Server.",
		      endpoint_string(c.key.client_addr, c.key.family, c.key.client_port).c_str());
	else if (c.tracer.client_speaks == Speaks::not_tds)
		f.add("not_tds7", "warning",
		      "Not TDS: the client's first bytes on this port are neither a TDS packet, nor a TLS record, nor an SMP frame. Another protocol talks to the SQL Server port (a health check, a port scanner, a misdirected application). Client side: find out what runs at %s.",
		      endpoint_string(c.key.client_addr, c.key.family, c.key.client_port).c_str());
}

void framing_lost(Findings& f)
{
	// a conversation that never was TDS has no framing to lose
	if (f.c.tracer.client_speaks == Speaks::not_tds && f.c.tracer.resync_lost <= 1)
		return;
	if (f.c.tracer.resync_lost)
		f.add("framing_lost", "info",
		      "The tracer lost the TDS framing %llu time(s) (events dropped or headers out of reach); counts of requests may be low.",
		      ull(f.c.tracer.resync_lost));
}

void non_pooled_client(Findings& f)
{
	const Connection& c = f.c;
	if (!c.history.single_use_recent)
		return;
	f.add("non_pooled_client", "warning",
	      "Client %s opened and closed at least %u connections to %s:%u within %u s, each for a few requests: it does not pool connections. Every new connection pays a TCP, TLS and login round; enable connection pooling (keep one connection string, dispose connections promptly so they go back to the pool).",
	      addr_string(c.key.client_addr, c.key.family).c_str(), c.history.single_use_recent,
	      addr_string(c.key.server_addr, c.key.family).c_str(), c.key.server_port, f.cfg.non_pooled_window_s);
}

void connection_churn(Findings& f)
{
	const Connection& c = f.c;
	if (!c.history.client_new_per_minute)
		return;
	f.add("connection_churn", "warning",
	      "Client %s opened about %u new connections in the last minute (this one included). At that rate its ephemeral ports run out: each closed connection holds its port in TIME_WAIT (60 s on Linux, 240 s on Windows) and the default range is about 28,000 ports (Linux) or 16,000 (Windows); new connections then fail. Owner: the client application; pool its connections.",
	      addr_string(c.key.client_addr, c.key.family).c_str(), c.history.client_new_per_minute);
}

void events_lost(Findings& f)
{
	const TracerState& t = f.c.tracer;
	uint64_t n = t.events_lost();
	if (n && t.start_lost)
		f.add("events_lost", "warning",
		      "%llu event(s) of this connection were lost because tdsbpf's ring buffer was full, its first ones among them (the kernel saw it open; it is not mid-stream); phases, counts and findings below rest on what arrived. Owner: this tracer (user space fell behind). Raise --ringbuf-mb, and look for what stalls tdsbpf (CPU, a slow output).",
		      ull(n));
	else if (n)
		f.add("events_lost", "warning",
		      "%llu event(s) of this connection were lost because tdsbpf's ring buffer was full%s; phases, counts and findings below rest on what arrived. Owner: this tracer (user space fell behind). Raise --ringbuf-mb, and look for what stalls tdsbpf (CPU, a slow output).",
		      ull(n), t.maybe_lost ? ", and more may be" : "");
	else if (t.maybe_lost)
		f.add("events_lost", "warning",
		      "tdsbpf's ring buffer was full while this connection was traced: none of its events is known lost, but its last ones (its close) may be. Owner: this tracer (user space fell behind). Raise --ringbuf-mb, and look for what stalls tdsbpf (CPU, a slow output).");
}

// In the order findings are listed in a record. from_absence: the rule
// concludes from something not seen, which lost events can fake.
struct RuleRow {
	Rule rule;
	bool from_absence;
};
constexpr RuleRow kRules[] = {
	{events_lost, false},
	{midstream, false},
	{not_tds, false},
	{syn_unanswered, true},
	{connection_refused, false},
	{server_closed_during_tls, true},
	{server_closed_first, true},
	{server_reset, false},
	{client_reset, true},
	{request_abandoned, true},
	{mars_benign_reset, false},
	{login_failed, false},
	{closed_before_login, true},
	{login_timed_out, true},
	{slow_login, false},
	{login_unencrypted, false},
	{login_reply_not_taken, true},
	{weak_tls, false},
	{tls_posture, false},
	{redirected, false},
	{idle_closed_after_keepalives, true},
	{non_pooled_close, true},
	{idle_timeout, false},
	{evicted, false},
	{attention, false},
	{retransmissions, false},
	{reset_injected, false},
	{reset_after_retransmissions, false},
	{late_login_ack, false},
	{ntlm_anonymous, false},
	{zero_window, false},
	{framing_lost, false},
	{non_pooled_client, true},
	{connection_churn, false},
};

} // namespace

bool single_use(const Connection& c, const AggregatorConfig& cfg)
{
	if (c.close.initiator != kC2S || ended_by_injected_reset(c.close))
		return false;
	if (c.close.kind != CloseKind::four_way && c.close.kind != CloseKind::half_close &&
	    c.close.kind != CloseKind::reset && c.close.kind != CloseKind::mars_benign_reset)
		return false;
	if (c.work.requests == 0 || c.work.requests > cfg.non_pooled_max_requests || c.work.reset_connection)
		return false;
	if (c.tcp.keepalive_total())
		return false;
	if (!c.last_server_payload_ns || !c.close.start_ns || c.close.start_ns < c.last_server_payload_ns)
		return false;
	if (c.close.pending_request)
		return false;
	return c.close.start_ns - c.last_server_payload_ns <=
	       static_cast<uint64_t>(cfg.non_pooled_close_gap_ms) * 1000000ull;
}

PoolingVerdict pooling_verdict(const Connection& c, const AggregatorConfig& cfg)
{
	char buf[200];
	const WorkState& w = c.work;
	if (w.reset_connection) {
		format_to(buf, sizeof(buf),
			  "%llu request(s) carried RESETCONNECTION: a pool handed the connection out again",
			  static_cast<unsigned long long>(w.reset_connection));
		return {"pooled", buf};
	}
	if (w.idle_reuses) {
		format_to(buf, sizeof(buf), "%llu request(s) came after the connection sat idle for a second or more",
			  static_cast<unsigned long long>(w.idle_reuses));
		return {"pooled", buf};
	}
	if (single_use(c, cfg)) {
		format_to(buf, sizeof(buf), "the client closed it %.1f ms after the last of its %llu request(s)",
			  ms(c.close.start_ns - c.last_server_payload_ns), static_cast<unsigned long long>(w.requests));
		return {"not_pooled", buf};
	}
	return {"unknown", c.close.kind == CloseKind::still_open
				   ? "still open, no reuse seen yet"
				   : "no reuse seen, and not closed right after its work"};
}

std::vector<Diagnosis> diagnose(const Connection& c, const AggregatorConfig& cfg)
{
	std::vector<Diagnosis> out;
	out.reserve(8);
	Phase at = c.phase_before_close();
	Findings f{c, cfg, out, at, phase_name(at)};
	for (const RuleRow& r : kRules) {
		f.from_absence = r.from_absence;
		r.rule(f);
	}
	return out;
}

} // namespace tdsbpf
