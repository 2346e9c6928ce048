// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The phase machine, login side: PRELOGIN, TLS, LOGIN7, SSPI and the
// login reply (LOGINACK, ERROR, routing).
#include <algorithm>
#include <cstring>

#include "machine.h"

namespace tdsbpf::machine {

void login_started(Connection& c, uint64_t ts)
{
	if (!c.login.seen) {
		c.login.seen = true;
		c.login.start_ns = ts;
		c.login.steps.mark(Milestone::login7, ts);
	}
}

void on_prelogin(Connection& c, const tdsbpf_prelogin& p, int dir, uint64_t ts)
{
	PreloginSide& info = c.prelogin.side[dir];
	info.seen = true;
	if (dir == TDSBPF_DIR_S2C)
		c.prelogin.answered = true;
	if (p.present & (1 << TDS_PL_VERSION)) {
		info.has_version = true;
		info.major = p.version_major;
		info.minor = p.version_minor;
		info.build = p.version_build;
		info.subbuild = p.version_subbuild;
	}
	info.encryption = p.encryption;
	info.mars = p.mars;
	if (dir == TDSBPF_DIR_C2S && (p.present & (1 << TDS_PL_TRACEID))) {
		c.prelogin.trace_seen = true;
		std::memcpy(c.prelogin.trace.connection_id, p.connection_id, 16);
		std::memcpy(c.prelogin.trace.activity_id, p.activity_id, 16);
		c.prelogin.trace.activity_seq = p.activity_seq;
	}
	if (dir == TDSBPF_DIR_C2S && (p.present & (1 << TDS_PL_THREADID))) {
		c.prelogin.thread_seen = true;
		c.prelogin.trace.thread_id = p.thread_id;
	}
	info.fedauth_required = p.fedauth_required;
	std::string name = ascii_text(p.instance, p.instance_len, sizeof(p.instance));
	info.instance.assign(name.data(), name.size());
	c.login.steps.mark(dir == TDSBPF_DIR_C2S ? Milestone::prelogin : Milestone::prelogin_reply, ts);
	if (dir == TDSBPF_DIR_C2S)
		enter(c, Phase::prelogin, ts);
}

namespace {

// The largest TLS record of a server's SSPI CHALLENGE answer: an NTLM
// CHALLENGE with a domain's target information (NetBIOS and DNS names of
// domain, computer and forest, a timestamp) is 150-350 bytes, SPNEGO's
// wrapping adds about 30 and TDS and TLS about 40.
constexpr uint32_t kChallengeRecordMax = 420;
// ... and the smallest: a CHALLENGE carrying target information (which
// NTLMv2 needs) is over 100 bytes before TDS and TLS add theirs.
constexpr uint32_t kChallengeRecordMin = 128;
// NTLM's AUTHENTICATE repeats the CHALLENGE's target information and adds
// the client's proof, names and session key; the LOGINACK reply that
// answers it carries the database and language changes, their INFO
// messages and the LOGINACK: each is at least this much larger than the
// CHALLENGE.
constexpr uint32_t kLarger = 64;

} // namespace

// The turns of an encrypted login, counted from its login flight (the
// first client flight of records, the second with TDS 8.0, whose first is
// the PRELOGIN): their record bytes, and whether the client's flight after
// the login's first answer may be an NTLM AUTHENTICATE (its answer's
// latency is then held until that is settled).
void note_opaque_turn(Connection& c, const tdsbpf_tls& t, int dir, uint64_t ts)
{
	int flight = static_cast<int>(c.work.opaque_client_flights) - (c.tls.strict ? 2 : 1);
	if (flight < 0 || !c.login.seen)
		return;
	if (flight >= 2) {
		// a third client flight: the second one's answer is complete
		settle_opaque_second_trip(c);
		return;
	}
	int turn = 2 * flight + (dir == TDSBPF_DIR_S2C ? 1 : 0);
	uint16_t* bytes = c.login.opaque_turn_bytes;
	bool first_of_turn = bytes[turn] == 0;
	bytes[turn] = static_cast<uint16_t>(std::min<uint32_t>(0xffff, bytes[turn] + t.record_length + 5u));
	if (turn != 3 || !first_of_turn || c.login.opaque_candidate || c.login.opaque_second_trip ||
	    !c.work.opaque_in_request || c.work.encrypted_requests != 1 || c.phase != Phase::active ||
	    c.login.ack_seen || c.login.error_seen)
		return;
	uint64_t challenge_ns = c.login.opaque_first_reply_ns, response_ns = c.work.stream.pending_request_ns;
	uint32_t s1 = bytes[1], c2 = bytes[2];
	if (s1 >= kChallengeRecordMin && s1 <= kChallengeRecordMax && c2 >= s1 + kLarger && challenge_ns &&
	    response_ns >= challenge_ns && response_ns - challenge_ns <= 1000000000ull) {
		c.login.opaque_candidate = true;
		c.login.opaque_answer_ns = ts;
	}
}

// Settles whether the client's flight after an encrypted login's first
// answer was the login's NTLM AUTHENTICATE: it was when the answer to it is
// larger than the first answer by what a LOGINACK reply has over a
// CHALLENGE. Then the login ends at that answer, the flight is no request,
// and from the first answer the login was authenticating. Called when the
// next client flight starts, and when the connection ends.
void settle_opaque_second_trip(Connection& c)
{
	LoginState& l = c.login;
	if (!l.opaque_candidate)
		return;
	l.opaque_candidate = false;
	WorkState& w = c.work;
	bool answered = l.opaque_turn_bytes[3] != 0 && l.opaque_held_latency;
	if (!answered || l.opaque_turn_bytes[3] < l.opaque_turn_bytes[1] + kLarger) {
		if (l.opaque_held_latency)
			w.latency.add(l.opaque_latency_ns);
		l.opaque_held_latency = false;
		return;
	}
	l.opaque_held_latency = false;
	l.opaque_second_trip = true;
	l.opaque_end_ns = l.opaque_answer_ns;
	l.steps.mark(Milestone::auth_challenge, l.opaque_first_reply_ns);
	l.steps.mark(Milestone::auth_response, l.opaque_answer_ns - l.opaque_latency_ns);
	// that flight was the login's AUTHENTICATE, not a request
	w.requests--;
	w.encrypted_requests--;
	w.responses--;
	if (c.auth.method == AuthMethod::unknown) {
		c.auth.method = AuthMethod::ntlm;
		c.auth.inferred = true;
	}
	// the span from the first answer was the authentication; active
	// begins with the answer to it
	PhaseList phases;
	for (size_t i = 0; i < c.phases.size(); i++) {
		PhaseSpan p = c.phases[i];
		if (p.phase == Phase::active && p.start_ns <= l.opaque_answer_ns) {
			phases.push_back({Phase::authentication, p.start_ns});
			phases.push_back({Phase::active, l.opaque_answer_ns});
		} else {
			phases.push_back(p);
		}
	}
	c.phases = phases;
}

void on_tls(Connection& c, const tdsbpf_tls& t, int dir, uint64_t ts, bool in_tds)
{
	c.last_payload_ns = ts;
	if (dir == TDSBPF_DIR_S2C)
		c.last_server_payload_ns = ts;
	// the handshake's flights: each side's first, then its second
	if (t.content_type == TLS_CT_HANDSHAKE || t.content_type == TLS_CT_CHANGE_CIPHER_SPEC) {
		LoginSteps& s = c.login.steps;
		if (dir == TDSBPF_DIR_C2S && t.content_type == TLS_CT_HANDSHAKE &&
		    t.handshake_type == TLS_HS_CLIENT_HELLO)
			s.mark(Milestone::tls_client_hello, ts);
		else if (dir == TDSBPF_DIR_S2C && t.content_type == TLS_CT_HANDSHAKE &&
			 t.handshake_type == TLS_HS_SERVER_HELLO)
			s.mark(Milestone::tls_server_hello, ts);
		else if (dir == TDSBPF_DIR_C2S && s[Milestone::tls_server_hello])
			s.mark(Milestone::tls_client_finish, ts);
		else if (dir == TDSBPF_DIR_S2C && s[Milestone::tls_client_finish])
			s.mark(Milestone::tls_server_finish, ts);
	}
	switch (t.content_type) {
	case TLS_CT_HANDSHAKE:
		c.tls.seen = true;
		if (t.flags & TDSBPF_TLS_ALPN_TDS8)
			c.tls.alpn_tds8 = true;
		if (dir == TDSBPF_DIR_C2S && t.handshake_type == TLS_HS_CLIENT_HELLO) {
			if (!in_tds && !c.prelogin.side[TDSBPF_DIR_C2S].seen)
				c.tls.strict = true; // TLS first: TDS 8.0
			if (t.hello_version)
				c.tls.client_version = t.hello_version;
		}
		if (dir == TDSBPF_DIR_S2C && t.handshake_type == TLS_HS_SERVER_HELLO)
			c.tls.server_version = t.selected_version ? t.selected_version : t.hello_version;
		if (c.tls.alpn_tds8)
			c.tls.strict = true;
		enter(c, Phase::tls_handshake, ts);
		break;
	case TLS_CT_ALERT: // in clear
		c.tls.alert = true;
		c.tls.alert_level = t.alert_level;
		c.tls.alert_desc = t.alert_desc;
		break;
	case TLS_CT_APPLICATION_DATA:
		if (dir == TDSBPF_DIR_C2S && !c.work.opaque_client_flight) {
			c.work.opaque_client_flight = true; // a new run of client records
			c.work.opaque_client_flights++;
		} else if (dir == TDSBPF_DIR_S2C) {
			c.work.opaque_client_flight = false;
		}
		note_opaque_turn(c, t, dir, ts);
		if (dir == TDSBPF_DIR_C2S) {
			if (!c.login.seen && phase_rank(c.phase) < phase_rank(Phase::login)) {
				// The LOGIN7 as a TLS record (login-only or full encryption;
				// with TDS 8.0 the PRELOGIN inside TLS comes first).
				login_started(c, ts);
				enter(c, Phase::login, ts);
			} else if ((c.phase == Phase::active ||
				    (c.phase == Phase::close && c.close.phase == Phase::active)) &&
				   c.opaque()) {
				if (!c.work.opaque_in_request) {
					note_idle_reuse(c, ts);
					c.work.opaque_in_request = true;
					c.work.requests++;
					c.work.encrypted_requests++;
					c.work.stream.pending = true;
					c.work.stream.pending_request_ns = ts;
				}
			}
		} else {
			if (!c.tls.strict && c.login.seen && !c.login.plaintext_after)
				c.tls.app_data_s2c = true; // full encryption
			if (c.tls.strict)
				c.tls.app_data_s2c = true;
			// With TDS 8.0 the first client flight is the PRELOGIN, the
			// second the LOGIN7: the login is answered after the second.
			bool login_answer = !c.tls.strict || c.work.opaque_client_flights >= 2;
			if ((c.phase == Phase::login || c.phase == Phase::authentication) && login_answer) {
				// An encrypted login's first answer: the outcome cannot be read.
				if (!c.login.opaque_first_reply_ns)
					c.login.opaque_first_reply_ns = ts;
				enter(c, Phase::active, ts);
			} else if (c.phase == Phase::active || c.phase == Phase::close) {
				if (c.work.opaque_in_request) {
					c.work.opaque_in_request = false;
					c.work.responses++;
					if (c.work.stream.pending) {
						uint64_t lat = ts >= c.work.stream.pending_request_ns
								       ? ts - c.work.stream.pending_request_ns
								       : 0;
						if (c.login.opaque_candidate && !c.login.opaque_held_latency) {
							// maybe the login's: held until settled
							c.login.opaque_latency_ns = lat;
							c.login.opaque_held_latency = true;
						} else {
							c.work.latency.add(lat);
						}
						c.work.stream.pending = false;
					}
				}
			}
		}
		break;
	default: break;
	}
}

void on_login7(Connection& c, const tdsbpf_login7& l, uint64_t ts)
{
	c.login.login7_plain = true;
	c.login.login7 = l;
	c.auth.integrated_known = true;
	c.auth.integrated_security = (l.option_flags2 & 0x80) != 0;
	c.auth.inferred = false;
	if (l.flags & TDSBPF_L7_FEDAUTH)
		c.auth.method = AuthMethod::federated;
	else if (!c.auth.integrated_security)
		c.auth.method = AuthMethod::sql;
	else if (l.sspi_kind == TDSBPF_SSPI_NTLM)
		c.auth.method = AuthMethod::ntlm;
	else if (l.sspi_kind == TDSBPF_SSPI_SPNEGO || l.sspi_kind == TDSBPF_SSPI_KERBEROS)
		c.auth.method = AuthMethod::kerberos;
	else
		c.auth.method = AuthMethod::unknown;
	if (l.packet_size && !c.login.packet_size)
		c.login.packet_size = l.packet_size;
	login_started(c, ts);
	enter(c, Phase::login, ts);
}

void on_reply(Connection& c, const tdsbpf_reply& r, const tdsbpf_tds& t, uint64_t ts)
{
	// a login reply can come after the client began to close (it gave up)
	Phase before = c.phase == Phase::close ? c.close.phase : c.phase;
	bool in_login = phase_rank(before) < phase_rank(Phase::active);
	if (!c.login.spid && t.spid)
		c.login.spid = t.spid; // the session's id, as the server's error log and sys.dm_exec_sessions show it
	if (r.tokens & TDSBPF_TOK_PACKETSIZE && r.packet_size)
		c.login.packet_size = r.packet_size;
	if (!in_login) {
		if (r.tokens & TDSBPF_TOK_ERROR) {
			c.work.errors++;
			c.work.last_error_number = r.error_number;
			c.work.last_error_state = r.error_state;
			c.work.last_error_class = r.error_class;
		}
		if (r.done_status & TDS_DONE_ATTN)
			attention_acked(c);
		return;
	}
	if (r.tokens & TDSBPF_TOK_ROUTING) {
		c.login.routing_seen = true;
		c.login.routing_port = r.routing_port;
		std::string server = ascii_text(r.routing_server, r.routing_server_len, sizeof(r.routing_server));
		c.login.routing_server.assign(server.data(), server.size());
	}
	if (r.tokens & (TDSBPF_TOK_SSPI | TDSBPF_TOK_FEDAUTHINFO))
		c.login.steps.mark(Milestone::auth_challenge, ts);
	if (r.tokens & TDSBPF_TOK_SSPI) {
		c.auth.sspi_server_tokens++;
		if (r.sspi_ntlm_type) {
			c.auth.method = AuthMethod::ntlm;
			c.auth.inferred = !c.login.login7_plain;
		} else if (c.auth.method == AuthMethod::unknown ||
			   (c.auth.method == AuthMethod::sql && c.auth.inferred)) {
			c.auth.method = AuthMethod::kerberos;
			c.auth.inferred = true;
		}
		enter(c, Phase::authentication, ts);
	}
	if (r.tokens & TDSBPF_TOK_FEDAUTHINFO) {
		c.auth.fedauth_seen = true;
		c.auth.method = AuthMethod::federated;
		c.auth.inferred = !c.login.login7_plain;
		enter(c, Phase::authentication, ts);
	}
	if (r.tokens & TDSBPF_TOK_LOGINACK) {
		if (!c.login.ack_seen) {
			c.login.ack_seen = true;
			c.login.ack_ns = ts;
			c.login.ack_tds_version = r.loginack_tds_version;
			std::memcpy(c.login.server_prog_version, r.server_version, 4);
		}
		if (c.auth.method == AuthMethod::unknown && !c.login.login7_plain && c.auth.sspi_server_tokens == 0 &&
		    c.auth.sspi_client_packets == 0 && !c.auth.fedauth_seen && !c.auth.ntlm_seen) {
			c.auth.method = AuthMethod::sql;
			c.auth.inferred = true;
		}
		enter(c, Phase::login_ack, ts);
		if (t.status & TDS_STATUS_EOM)
			enter(c, Phase::active, ts);
	} else if (r.tokens & TDSBPF_TOK_ERROR && !c.login.ack_seen) {
		if (!c.login.error_seen) {
			c.login.error_seen = true;
			c.login.error_ns = ts;
			c.login.error_number = r.error_number;
			c.login.error_state = r.error_state;
			c.login.error_class = r.error_class;
		}
		enter(c, Phase::login_error, ts);
	} else if (c.phase == Phase::login_ack && (t.status & TDS_STATUS_EOM)) {
		enter(c, Phase::active, ts); // the last packet of a long login reply
	}
}

void on_ntlm(Connection& c, const tdsbpf_ntlm_event& n, uint64_t ts)
{
	bool unicode = n.encoding & TDSBPF_NTLM_UNICODE;
	auto name = [&](const uint8_t* p, uint16_t len) {
		return utf16le_or_oem(p, len, TDSBPF_NTLM_NAME_MAX, unicode);
	};
	c.auth.ntlm_seen = true;
	c.login.steps.mark(Milestone::auth_response, ts);
	AuthState::NtlmNames& names = c.auth.ntlm.mut();
	names.domain = name(n.domain, n.domain_len);
	names.user = name(n.user, n.user_len);
	names.workstation = name(n.workstation, n.workstation_len);
	c.auth.method = AuthMethod::ntlm;
	c.auth.inferred = !c.login.login7_plain;
	enter(c, Phase::authentication, ts);
}

// A client SSPI packet (type 17): NTLM or Kerberos round trips.
void on_sspi(Connection& c, const tdsbpf_tds& t, uint64_t ts)
{
	c.auth.sspi_client_packets++;
	c.login.steps.mark(Milestone::auth_response, ts);
	if (t.detail == TDSBPF_D_SSPI) {
		if (t.d.sspi.kind == TDSBPF_SSPI_NTLM || t.d.sspi.ntlm_type) {
			c.auth.method = AuthMethod::ntlm;
			c.auth.inferred = !c.login.login7_plain;
		} else if ((t.d.sspi.kind == TDSBPF_SSPI_SPNEGO || t.d.sspi.kind == TDSBPF_SSPI_KERBEROS) &&
			   c.auth.method != AuthMethod::ntlm) {
			c.auth.method = AuthMethod::kerberos;
			c.auth.inferred = !c.login.login7_plain;
		}
	}
	enter(c, Phase::authentication, ts);
}

} // namespace tdsbpf::machine
