// Findings about a connection, each with a stable code (docs/connections.md
// lists them all with what to do).
#include <cstdarg>
#include <cstdio>

#include "connection.h"

namespace tdsbpf {

namespace {

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, f);
	vsnprintf(buf, sizeof(buf), f, ap);
	va_end(ap);
	return buf;
}

const char* side(int dir)
{
	return dir == TDSBPF_DIR_C2S ? "client" : "server";
}

const char* login_error_meaning(uint32_t number)
{
	switch (number) {
	case 18456: return "login failed for the user (wrong password, unknown login, or no access; the server log has the real state)";
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

const char* phase_hint(Phase p)
{
	switch (p) {
	case Phase::tcp_handshake: return "the network or the server's accept queue";
	case Phase::prelogin: return "the server was slow to answer PRELOGIN (busy or thread-starved server)";
	case Phase::tls_handshake: return "TLS negotiation (certificate, cipher or CPU)";
	case Phase::login: return "the server processing the login (thread starvation, logon triggers, default database)";
	case Phase::authentication: return "SSPI round trips: the domain controller (slow, distant or queued authentication)";
	default: return "";
	}
}

void add(std::vector<Diagnosis>& out, const char* code, const char* severity, std::string message)
{
	out.push_back({code, severity, std::move(message)});
}

} // namespace

bool single_use(const Connection& c, const AggregatorConfig& cfg)
{
	if (c.close_initiator != TDSBPF_DIR_C2S)
		return false;
	if (c.close_kind != CloseKind::four_way && c.close_kind != CloseKind::half_close &&
	    c.close_kind != CloseKind::reset && c.close_kind != CloseKind::mars_benign_reset)
		return false;
	if (c.requests == 0 || c.requests > cfg.non_pooled_max_requests || c.reset_connection)
		return false;
	if (keepalive_count(c, 0) + keepalive_count(c, 1))
		return false;
	if (!c.last_server_payload_ns || !c.close_start_ns || c.close_start_ns < c.last_server_payload_ns)
		return false;
	if (c.pending_at_close)
		return false;
	return c.close_start_ns - c.last_server_payload_ns <= static_cast<uint64_t>(cfg.non_pooled_close_gap_ms) * 1000000ull;
}

std::vector<Diagnosis> diagnose(const Connection& c, const AggregatorConfig& cfg)
{
	std::vector<Diagnosis> out;
	Phase at = c.phase == Phase::close ? c.phase_at_close : c.phase;
	const char* at_name = phase_name(at);

	if (c.midstream)
		add(out, "midstream", "info",
		    fmt("The tracer started after this connection opened; it was first seen in phase %s, so its login was not seen.",
			phase_name(c.phases.empty() ? Phase::active : c.phases.front().phase)));

	switch (c.close_kind) {
	case CloseKind::syn_unanswered:
		add(out, "syn_unanswered", "error",
		    fmt("The client sent %u SYN(s) and the server never answered: SQL Server not listening on port %u, a firewall dropping the packets, or the wrong address.",
			c.syn_count, c.key.server_port));
		break;
	case CloseKind::refused:
		add(out, "connection_refused", "error",
		    fmt("The server answered the SYN with a reset: nothing listens on port %u (service stopped, wrong port, or a named instance on a dynamic port).",
			c.key.server_port));
		break;
	case CloseKind::server_fin_first:
	case CloseKind::reset:
		if (c.close_initiator == TDSBPF_DIR_S2C && (at == Phase::tls_handshake || at == Phase::prelogin) &&
		    !c.loginack_seen) {
			std::string alert;
			if (c.tls_alert)
				alert = fmt(" A TLS alert (level %u, description %u) was seen.", c.tls_alert_level, c.tls_alert_desc);
			add(out, "server_closed_during_tls", "error",
			    fmt("The server closed the connection first (%s) during %s: client and server most likely could not agree on a TLS version or cipher suite, or the server certificate is unusable.%s",
				c.close_kind == CloseKind::reset ? "RST" : "FIN", at == Phase::prelogin ? "the encryption negotiation" : "the TLS handshake",
				alert.c_str()));
		} else if (c.close_initiator == TDSBPF_DIR_S2C && c.close_kind == CloseKind::server_fin_first) {
			if (at != Phase::login_error)
				add(out, "server_closed_first", "warning",
				    fmt("The server sent the first FIN, in phase %s. Microsoft drivers close from the client side, so this is abnormal: the server or something between (firewall, load balancer) ended the connection.",
					at_name));
		} else if (c.close_initiator == TDSBPF_DIR_S2C) {
			add(out, "server_reset", at == Phase::active ? "warning" : "error",
			    fmt("The server reset the connection in phase %s: the server (or a device on the path) aborted it; check the SQL Server error log for the time of the reset.",
				at_name));
		} else if (c.close_initiator == TDSBPF_DIR_C2S && c.close_kind == CloseKind::reset) {
			bool fin_first = c.first_fin_dir == TDSBPF_DIR_C2S && c.fin_ns[TDSBPF_DIR_C2S] <= c.rst_ns;
			if (c.pending_at_close && fin_first)
				add(out, "client_reset_abnormal", "warning",
				    fmt("The client closed the connection %.1f ms after sending a request that had no response yet, and reset it when the late response came: a command timeout without an attention, or the application disposed of the connection mid-query.",
					ms(c.close_start_ns - c.pending_since_ns)));
			else if (c.pending_at_close)
				add(out, "client_reset_abnormal", "warning",
				    fmt("The client reset the connection %.1f ms after sending a request that had no response yet (phase %s): the application was killed, timed out or disposed of the connection mid-query.",
					ms(c.close_start_ns - c.pending_since_ns), at_name));
			else if (phase_rank(at) >= phase_rank(Phase::active))
				add(out, "client_reset", "info",
				    "The client closed the connection with a reset instead of a FIN. Many non-Microsoft drivers close this way; with no request in flight it is harmless.");
		}
		break;
	case CloseKind::four_way:
	case CloseKind::half_close:
		if (c.close_initiator == TDSBPF_DIR_C2S && c.pending_at_close)
			add(out, "request_abandoned", "warning",
			    fmt("The client closed the connection %.1f ms after sending a request that had no response yet: a command timeout without an attention, or the application disposed of the connection mid-query.",
				ms(c.close_start_ns - c.pending_since_ns)));
		break;
	case CloseKind::mars_benign_reset:
		add(out, "mars_benign_reset", "info",
		    "The client reset the connection right after the MARS session closed (SMP:FIN both ways): the server's SMP:FIN reached the client after its own FIN. This reset is benign.");
		break;
	default:
		break;
	}

	// Login
	if (c.outcome == LoginOutcome::failed) {
		const char* meaning = login_error_meaning(c.error_number);
		add(out, "login_failed", "error",
		    fmt("Login failed: error %u, state %u, class %u%s%s.", c.error_number, c.error_state, c.error_class,
			meaning ? ": " : "", meaning ? meaning : ""));
	}
	if (c.outcome == LoginOutcome::aborted) {
		const char* how = c.first_rst_dir >= 0 && (c.first_fin_dir < 0 || c.rst_ns < c.fin_ns[c.first_fin_dir]) ? "reset" : "closed";
		add(out, "closed_before_login", "error",
		    fmt("The %s %s the connection in phase %s, before the login finished.",
			side(c.close_initiator >= 0 ? c.close_initiator : 0), how, at_name));
	}
	if (c.outcome == LoginOutcome::timed_out) {
		uint64_t start = c.syn_ns ? c.syn_ns : c.first_ns;
		uint64_t end = c.close_start_ns ? c.close_start_ns : c.end_ns;
		add(out, "login_timed_out", "error",
		    fmt("No login answer after %.0f ms (phase %s): the client gave up (Login Timeout) or the tracer's idle timeout ended it. Look for a busy server, queued authentication or an unreachable domain controller.",
			ms(end - start), at_name));
	}
	if (c.loginack_seen && c.syn_ns && c.login_ack_ns >= c.syn_ns) {
		uint64_t total = c.login_ack_ns - c.syn_ns;
		if (total > static_cast<uint64_t>(cfg.slow_login_threshold_ms) * 1000000ull) {
			Phase worst = Phase::none;
			uint64_t worst_ns = 0;
			for (size_t i = 0; i < c.phases.size(); i++) {
				Phase p = c.phases[i].phase;
				if (phase_rank(p) >= phase_rank(Phase::login_ack))
					break;
				uint64_t end = i + 1 < c.phases.size() ? c.phases[i + 1].start_ns : c.login_ack_ns;
				uint64_t d = end - c.phases[i].start_ns;
				if (d >= worst_ns) {
					worst_ns = d;
					worst = p;
				}
			}
			add(out, "slow_login", "warning",
			    fmt("The login took %.1f ms from SYN to LOGINACK (threshold %u ms); most of it, %.1f ms, in %s: %s.",
				ms(total), cfg.slow_login_threshold_ms, ms(worst_ns), phase_name(worst), phase_hint(worst)));
		}
	}
	if (c.login7_plain && !c.tls_seen)
		add(out, "login_unencrypted", "warning",
		    "The LOGIN7 packet was sent without TLS (encryption not supported by one side): a SQL password in it is only obfuscated. Enable encryption on the server and the driver.");

	// TLS
	uint16_t tv = c.tls_server_version ? c.tls_server_version : 0;
	if (tv && tv < 0x0303)
		add(out, "weak_tls", "warning",
		    fmt("TLS %s was negotiated; TLS 1.0 and 1.1 are deprecated. Enable TLS 1.2 (or TDS 8.0 with TLS 1.3) on client and server.",
			tls_version_name(tv).c_str()));

	if (c.routing_seen)
		add(out, "redirected", "info",
		    fmt("The server redirected the client to %s:%u (ENVCHANGE routing: Always On read-only routing or an Azure SQL gateway). The work happens on a second connection.",
			c.routing_server.c_str(), c.routing_port));

	// Close patterns
	bool idle_keepalive_close = false;
	uint64_t ka = keepalive_count(c, 0) + keepalive_count(c, 1);
	if (ka && c.close_start_ns && c.close_start_ns >= c.last_keepalive_ns &&
	    (c.close_kind == CloseKind::four_way || c.close_kind == CloseKind::half_close ||
	     c.close_kind == CloseKind::server_fin_first ||
	     (c.close_kind == CloseKind::reset && c.close_initiator == TDSBPF_DIR_C2S)) &&
	    c.last_keepalive_ns >= c.last_payload_ns) {
		idle_keepalive_close = true;
		uint64_t idle_since = c.last_payload_ns ? c.last_payload_ns : c.first_ns;
		add(out, "idle_closed_after_keepalives", "info",
		    fmt("The connection sat idle (%llu keep-alives) and the %s closed it %.1f s after the last keep-alive: an idle pooled connection being retired (idle for at least %.1f s).",
			static_cast<unsigned long long>(ka), side(c.close_initiator), ms(c.close_start_ns - c.last_keepalive_ns) / 1000.0,
			ms(c.close_start_ns - idle_since) / 1000.0));
	}
	if (!idle_keepalive_close && single_use(c, cfg))
		add(out, "non_pooled_close", "info",
		    fmt("The client closed the connection %.1f ms after the last response, having run %llu request(s): a connection opened for a single piece of work. Connection pooling avoids the cost of a new login each time.",
			ms(c.close_start_ns - c.last_server_payload_ns), static_cast<unsigned long long>(c.requests)));

	if (c.end_reason == EndReason::idle_timeout && c.close_kind == CloseKind::idle_timeout)
		add(out, "idle_timeout", "info",
		    fmt("No packet for %u s: tdsbpf stopped following the connection (--idle-timeout); it may still be open.", cfg.idle_timeout_s));
	if (c.close_kind == CloseKind::evicted)
		add(out, "evicted", "warning",
		    "Too many connections were tracked (--max-connections): this one, the longest idle, was dropped from the table while still open.");

	// Work
	if (c.attentions)
		add(out, "attention", "warning",
		    fmt("The client sent %llu attention(s), %llu acknowledged by the server: a query was cancelled or hit the command timeout.",
			static_cast<unsigned long long>(c.attentions), static_cast<unsigned long long>(c.attention_acks)));

	// TCP health
	uint64_t r0 = retrans(c, 0), r1 = retrans(c, 1);
	if (r0 + r1 >= cfg.retrans_threshold && r0 + r1 > 0) {
		std::string share;
		if (c.stats_seen && c.stats.packets[0] + c.stats.packets[1])
			share = fmt(" (%.1f%% of %llu packets)", 100.0 * static_cast<double>(r0 + r1) / (c.stats.packets[0] + c.stats.packets[1]),
				    static_cast<unsigned long long>(c.stats.packets[0] + c.stats.packets[1]));
		add(out, "retransmissions", "warning",
		    fmt("%llu TCP retransmission(s): %llu from the client, %llu from the server%s: packet loss on the path slows requests and logins.",
			static_cast<unsigned long long>(r0 + r1), static_cast<unsigned long long>(r0), static_cast<unsigned long long>(r1),
			share.c_str()));
	}
	uint64_t z0 = zero_windows(c, 0), z1 = zero_windows(c, 1);
	if (z0)
		add(out, "zero_window", "warning",
		    fmt("The client advertised a zero TCP window %llu time(s): the application did not read results as fast as the server sent them (ASYNC_NETWORK_IO waits on the server).",
			static_cast<unsigned long long>(z0)));
	if (z1)
		add(out, "zero_window", "warning",
		    fmt("The server advertised a zero TCP window %llu time(s): it did not read what the client sent fast enough (busy server or large bulk load).",
			static_cast<unsigned long long>(z1)));
	if (c.resync_lost)
		add(out, "framing_lost", "info",
		    fmt("The tracer lost the TDS framing %llu time(s) (events dropped or headers out of reach); counts of requests may be low.",
			static_cast<unsigned long long>(c.resync_lost)));

	for (const auto& d : c.extra)
		out.push_back(d);
	return out;
}

} // namespace tdsbpf
