// The phase machine. Phases only move forward (by rank), so a late or lost
// event never sends a connection back to an earlier phase; close is final.
#include <algorithm>
#include <cstring>

#include "connection.h"

namespace tdsbpf {

int phase_rank(Phase p)
{
	switch (p) {
	case Phase::none: return 0;
	case Phase::tcp_handshake: return 1;
	case Phase::prelogin: return 2;
	case Phase::tls_handshake: return 3;
	case Phase::login: return 4;
	case Phase::authentication: return 5;
	case Phase::login_ack: return 6;
	case Phase::login_error: return 6;
	case Phase::active: return 7;
	case Phase::close: return 8;
	}
	return 0;
}

const char* phase_name(Phase p)
{
	switch (p) {
	case Phase::none: return "none";
	case Phase::tcp_handshake: return "tcp_handshake";
	case Phase::prelogin: return "prelogin";
	case Phase::tls_handshake: return "tls_handshake";
	case Phase::login: return "login";
	case Phase::authentication: return "authentication";
	case Phase::login_ack: return "login_ack";
	case Phase::login_error: return "login_error";
	case Phase::active: return "active";
	case Phase::close: return "close";
	}
	return "none";
}

const char* close_kind_name(CloseKind k)
{
	switch (k) {
	case CloseKind::none: return "none";
	case CloseKind::four_way: return "four_way";
	case CloseKind::server_fin_first: return "server_fin_first";
	case CloseKind::half_close: return "half_close";
	case CloseKind::reset: return "reset";
	case CloseKind::mars_benign_reset: return "mars_benign_reset";
	case CloseKind::refused: return "refused";
	case CloseKind::syn_unanswered: return "syn_unanswered";
	case CloseKind::idle_timeout: return "idle_timeout";
	case CloseKind::still_open: return "still_open";
	case CloseKind::evicted: return "evicted";
	case CloseKind::replaced: return "replaced";
	}
	return "none";
}

const char* auth_method_name(AuthMethod m)
{
	switch (m) {
	case AuthMethod::unknown: return "unknown";
	case AuthMethod::sql: return "sql";
	case AuthMethod::ntlm: return "ntlm";
	case AuthMethod::kerberos: return "kerberos";
	case AuthMethod::federated: return "federated";
	}
	return "unknown";
}

const char* login_outcome_name(LoginOutcome o)
{
	switch (o) {
	case LoginOutcome::in_progress: return "in_progress";
	case LoginOutcome::success: return "success";
	case LoginOutcome::failed: return "failed";
	case LoginOutcome::aborted: return "aborted";
	case LoginOutcome::timed_out: return "timed_out";
	case LoginOutcome::not_seen: return "not_seen";
	case LoginOutcome::not_started: return "not_started";
	case LoginOutcome::unknown: return "unknown";
	}
	return "unknown";
}

namespace {

constexpr size_t kMaxSessions = 256;

void enter(Connection& c, Phase p, uint64_t ts)
{
	if (c.phase == Phase::close)
		return;
	if (!c.phases.empty())
		ts = std::max(ts, c.phases.back().start_ns); // a late event: keep spans ordered
	if (p == Phase::close) {
		c.phase_at_close = c.phase;
		c.close_start_ns = ts;
		c.pending_at_close = c.stream.pending;
		for (const auto& [sid, s] : c.sessions) {
			(void)sid;
			c.pending_at_close = c.pending_at_close || s.stream.pending;
		}
		c.pending_since_ns = c.stream.pending ? c.stream.pending_request_ns : 0;
		for (const auto& [sid, s] : c.sessions) {
			(void)sid;
			if (s.stream.pending && (!c.pending_since_ns || s.stream.pending_request_ns < c.pending_since_ns))
				c.pending_since_ns = s.stream.pending_request_ns;
		}
		c.phases.push_back({p, ts});
		c.phase = p;
		return;
	}
	if (p == Phase::login_ack && c.phase == Phase::login_error) {
		// An ERROR in an early packet of a reply that ends with LOGINACK.
		c.phases.back().phase = Phase::login_ack;
		c.phase = p;
		return;
	}
	if (phase_rank(p) <= phase_rank(c.phase))
		return;
	c.phases.push_back({p, ts});
	c.phase = p;
}

void mark_complete(Connection& c, uint64_t ts)
{
	if (!c.complete) {
		c.complete = true;
		c.complete_ns = ts;
	}
}

SmpSession* session(Connection& c, uint16_t sid)
{
	auto it = c.sessions.find(sid);
	if (it != c.sessions.end())
		return &it->second;
	if (c.sessions.size() >= kMaxSessions) {
		c.sessions_dropped++;
		return nullptr;
	}
	SmpSession& s = c.sessions[sid];
	s.sid = sid;
	return &s;
}

void login_started(Connection& c, uint64_t ts)
{
	if (!c.login_record_seen) {
		c.login_record_seen = true;
		c.login_ns = ts;
	}
}

void attention_acked(Connection& c)
{
	if (c.pending_attentions > 0) {
		c.pending_attentions--;
		c.attention_acks++;
	}
}

// The final DONE of a reply packet (in the TDS event's tail, or a
// TDS_DONE event when the packet ended in a later segment).
void on_done(Connection& c, uint16_t status, uint64_t rows)
{
	c.done_tokens++;
	if (status & 0x10) {
		c.rows += rows;
		c.rows_seen = true;
	}
	if (status & 0x20)
		attention_acked(c);
}

void on_prelogin(Connection& c, const tdsbpf_prelogin& p, int dir, uint64_t ts)
{
	PreloginInfo& info = c.pre[dir];
	info.seen = true;
	if (dir == TDSBPF_DIR_S2C)
		c.prelogin_answered = true;
	if (p.present & 1) {
		info.has_version = true;
		info.major = p.version_major;
		info.minor = p.version_minor;
		info.build = p.version_build;
		info.subbuild = p.version_subbuild;
	}
	info.encryption = p.encryption;
	info.mars = p.mars;
	info.fedauth_required = p.fedauth_required;
	size_t n = std::min<size_t>(p.instance_len, sizeof(p.instance));
	info.instance.clear();
	for (size_t i = 0; i < n && p.instance[i]; i++)
		info.instance += (p.instance[i] >= 0x20 && p.instance[i] < 0x7f) ? static_cast<char>(p.instance[i]) : '?';
	if (dir == TDSBPF_DIR_C2S)
		enter(c, Phase::prelogin, ts);
}

void on_tls(Connection& c, const tdsbpf_tls& t, int dir, uint64_t ts, bool in_tds)
{
	c.last_payload_ns = ts;
	if (dir == TDSBPF_DIR_S2C)
		c.last_server_payload_ns = ts;
	switch (t.content_type) {
	case 22: // handshake
		c.tls_seen = true;
		if (t.flags & TDSBPF_TLS_ALPN_TDS8)
			c.alpn_tds8 = true;
		if (dir == TDSBPF_DIR_C2S && t.handshake_type == 1) {
			if (!in_tds && !c.pre[TDSBPF_DIR_C2S].seen)
				c.strict = true; // TLS first: TDS 8.0
			if (t.hello_version)
				c.tls_client_version = t.hello_version;
		}
		if (dir == TDSBPF_DIR_S2C && t.handshake_type == 2)
			c.tls_server_version = t.selected_version ? t.selected_version : t.hello_version;
		if (c.alpn_tds8)
			c.strict = true;
		enter(c, Phase::tls_handshake, ts);
		break;
	case 21: // alert in clear
		c.tls_alert = true;
		c.tls_alert_level = t.alert_level;
		c.tls_alert_desc = t.alert_desc;
		break;
	case 23: // application data
		if (dir == TDSBPF_DIR_C2S && !c.opaque_client_flight) {
			c.opaque_client_flight = true; // a new run of client records
			c.opaque_client_flights++;
		} else if (dir == TDSBPF_DIR_S2C) {
			c.opaque_client_flight = false;
		}
		if (dir == TDSBPF_DIR_C2S) {
			if (!c.login_record_seen && phase_rank(c.phase) < phase_rank(Phase::login)) {
				// The LOGIN7 as a TLS record (login-only or full encryption;
				// with TDS 8.0 the PRELOGIN inside TLS comes first).
				login_started(c, ts);
				enter(c, Phase::login, ts);
			} else if ((c.phase == Phase::active || (c.phase == Phase::close && c.phase_at_close == Phase::active)) &&
				   opaque(c)) {
				if (!c.opaque_in_request) {
					c.opaque_in_request = true;
					c.requests++;
					c.encrypted_requests++;
					c.stream.pending = true;
					c.stream.pending_request_ns = ts;
				}
			}
		} else {
			if (!c.strict && c.login_record_seen && !c.plaintext_after_login)
				c.tls_app_data_s2c = true; // full encryption
			if (c.strict)
				c.tls_app_data_s2c = true;
			// With TDS 8.0 the first client flight is the PRELOGIN, the
			// second the LOGIN7: the login is answered after the second.
			bool login_answer = !c.strict || c.opaque_client_flights >= 2;
			if ((c.phase == Phase::login || c.phase == Phase::authentication) && login_answer) {
				// An encrypted login's first answer: the outcome cannot be read.
				if (!c.opaque_first_reply_ns)
					c.opaque_first_reply_ns = ts;
				enter(c, Phase::active, ts);
			} else if (c.phase == Phase::active || c.phase == Phase::close) {
				if (c.opaque_in_request) {
					c.opaque_in_request = false;
					c.responses++;
					if (c.stream.pending) {
						c.latency.add(ts >= c.stream.pending_request_ns ? ts - c.stream.pending_request_ns : 0);
						c.stream.pending = false;
					}
				}
			}
		}
		break;
	default:
		break;
	}
}

void on_login7(Connection& c, const tdsbpf_login7& l, uint64_t ts)
{
	c.login7_plain = true;
	c.login7 = l;
	c.integrated_known = true;
	c.integrated_security = (l.option_flags2 & 0x80) != 0;
	c.method_inferred = false;
	if (l.flags & TDSBPF_L7_FEDAUTH)
		c.method = AuthMethod::federated;
	else if (!c.integrated_security)
		c.method = AuthMethod::sql;
	else if (l.sspi_kind == TDSBPF_SSPI_NTLM)
		c.method = AuthMethod::ntlm;
	else if (l.sspi_kind == TDSBPF_SSPI_SPNEGO || l.sspi_kind == TDSBPF_SSPI_KERBEROS)
		c.method = AuthMethod::kerberos;
	else
		c.method = AuthMethod::unknown;
	if (l.packet_size && !c.packet_size)
		c.packet_size = l.packet_size;
	login_started(c, ts);
	enter(c, Phase::login, ts);
}

void count_response(Connection& c, StreamState& st, uint64_t ts)
{
	c.responses++;
	if (st.pending) {
		c.latency.add(ts >= st.pending_request_ns ? ts - st.pending_request_ns : 0);
		st.pending = false;
	}
}

void count_request(Connection& c, StreamState& st, const tdsbpf_tds& t, uint64_t ts)
{
	switch (t.type) {
	case TDS_SQL_BATCH: c.sql_batches++; break;
	case TDS_RPC: c.rpcs++; break;
	case TDS_ATTENTION:
		c.attentions++;
		c.pending_attentions++;
		break;
	case TDS_BULK_LOAD: c.bulk_loads++; break;
	case TDS_TRANSACTION_MGR: c.tm_requests++; break;
	default: break;
	}
	if (t.status & (TDS_STATUS_RESETCONNECTION | TDS_STATUS_RESETCONNECTIONSKIPTRAN))
		c.reset_connection++;
	if (t.type == TDS_ATTENTION)
		return;
	c.requests++;
	if (!st.pending) {
		st.pending = true;
		st.pending_request_ns = ts;
	}
}

void on_reply(Connection& c, const tdsbpf_reply& r, const tdsbpf_tds& t, uint64_t ts)
{
	bool in_login = phase_rank(c.phase) < phase_rank(Phase::active) && c.phase != Phase::close;
	if (r.tokens & TDSBPF_TOK_PACKETSIZE && r.packet_size)
		c.packet_size = r.packet_size;
	if (!in_login) {
		if (r.tokens & TDSBPF_TOK_ERROR) {
			c.work_errors++;
			c.last_error_number = r.error_number;
			c.last_error_state = r.error_state;
			c.last_error_class = r.error_class;
		}
		if (r.done_status & 0x20)
			attention_acked(c);
		return;
	}
	if (r.tokens & TDSBPF_TOK_ROUTING) {
		c.routing_seen = true;
		c.routing_port = r.routing_port;
		size_t n = std::min<size_t>(r.routing_server_len, sizeof(r.routing_server));
		c.routing_server.assign(reinterpret_cast<const char*>(r.routing_server), n);
	}
	if (r.tokens & TDSBPF_TOK_SSPI) {
		c.sspi_server_tokens++;
		if (r.sspi_ntlm_type) {
			c.method = AuthMethod::ntlm;
			c.method_inferred = !c.login7_plain;
		} else if (c.method == AuthMethod::unknown || (c.method == AuthMethod::sql && c.method_inferred)) {
			c.method = AuthMethod::kerberos;
			c.method_inferred = true;
		}
		enter(c, Phase::authentication, ts);
	}
	if (r.tokens & TDSBPF_TOK_FEDAUTHINFO) {
		c.fedauth_seen = true;
		c.method = AuthMethod::federated;
		c.method_inferred = !c.login7_plain;
		enter(c, Phase::authentication, ts);
	}
	if (r.tokens & TDSBPF_TOK_LOGINACK) {
		if (!c.loginack_seen) {
			c.loginack_seen = true;
			c.login_ack_ns = ts;
			c.loginack_tds_version = r.loginack_tds_version;
			std::memcpy(c.server_prog_version, r.server_version, 4);
		}
		if (c.method == AuthMethod::unknown && !c.login7_plain && c.sspi_server_tokens == 0 &&
		    c.sspi_client_packets == 0 && !c.fedauth_seen && !c.ntlm_names) {
			c.method = AuthMethod::sql;
			c.method_inferred = true;
		}
		enter(c, Phase::login_ack, ts);
		if (t.status & TDS_STATUS_EOM)
			enter(c, Phase::active, ts);
	} else if (r.tokens & TDSBPF_TOK_ERROR && !c.loginack_seen) {
		if (!c.login_error_seen) {
			c.login_error_seen = true;
			c.error_number = r.error_number;
			c.error_state = r.error_state;
			c.error_class = r.error_class;
		}
		enter(c, Phase::login_error, ts);
	} else if (c.phase == Phase::login_ack && (t.status & TDS_STATUS_EOM)) {
		enter(c, Phase::active, ts); // the last packet of a long login reply
	}
}

void on_tds(Connection& c, const tdsbpf_event& ev, int dir, uint64_t ts)
{
	const tdsbpf_tds& t = ev.u.tds;
	c.last_payload_ns = ts;
	if (dir == TDSBPF_DIR_S2C)
		c.last_server_payload_ns = ts;
	SmpSession* s = nullptr;
	if (ev.flags & TDSBPF_F_IN_SMP) {
		s = session(c, t.smp_sid);
		if (s) {
			s->data_packets[dir]++;
			s->last_seq[dir] = t.smp_seq;
			s->last_window[dir] = t.smp_window;
			if (!s->opened_ns)
				s->opened_ns = ts;
		}
	}
	StreamState& st = s ? s->stream : c.stream;
	bool new_msg = !st.in_msg[dir];
	st.in_msg[dir] = !(t.status & TDS_STATUS_EOM);
	bool was_active = c.phase == Phase::active || (c.phase == Phase::close && c.phase_at_close == Phase::active);

	if (t.detail == TDSBPF_D_TLS) {
		on_tls(c, t.d.tls, dir, ts, true);
		return;
	}
	if (dir == TDSBPF_DIR_C2S) {
		switch (t.type) {
		case TDS_PRELOGIN:
			if (t.detail == TDSBPF_D_PRELOGIN)
				on_prelogin(c, t.d.prelogin, dir, ts);
			else
				enter(c, Phase::prelogin, ts);
			return;
		case TDS_LOGIN7:
			if (t.detail == TDSBPF_D_LOGIN7) {
				on_login7(c, t.d.login7, ts);
			} else {
				c.login7_plain = true;
				login_started(c, ts);
				enter(c, Phase::login, ts);
			}
			return;
		case TDS_SSPI:
			c.sspi_client_packets++;
			if (t.detail == TDSBPF_D_SSPI) {
				if (t.d.sspi.kind == TDSBPF_SSPI_NTLM || t.d.sspi.ntlm_type) {
					c.method = AuthMethod::ntlm;
					c.method_inferred = !c.login7_plain;
				} else if ((t.d.sspi.kind == TDSBPF_SSPI_SPNEGO || t.d.sspi.kind == TDSBPF_SSPI_KERBEROS) &&
					   c.method != AuthMethod::ntlm) {
					c.method = AuthMethod::kerberos;
					c.method_inferred = !c.login7_plain;
				}
			}
			enter(c, Phase::authentication, ts);
			return;
		case TDS_FEDAUTH_TOKEN:
			c.fedauth_seen = true;
			c.method = AuthMethod::federated;
			enter(c, Phase::authentication, ts);
			return;
		default:
			break;
		}
		if (is_request_type(t.type)) {
			if (c.login_record_seen)
				c.plaintext_after_login = true;
			if (new_msg)
				count_request(c, st, t, ts);
			enter(c, Phase::active, ts);
		}
		return;
	}
	// Server to client.
	if (t.detail == TDSBPF_D_PRELOGIN) {
		on_prelogin(c, t.d.prelogin, dir, ts);
		return;
	}
	if (t.type != TDS_REPLY)
		return;
	if (t.tail_token)
		on_done(c, t.tail_done_status, t.tail_done_rows);
	if (c.login_record_seen && !c.login7_plain)
		c.plaintext_after_login = true;
	if (c.phase == Phase::prelogin && !c.tls_seen && !c.login_record_seen && !c.prelogin_answered) {
		// The first reply after the client's PRELOGIN is the server's
		// PRELOGIN answer, also when the walk read it as a token stream: its
		// bytes are an option table. Only a LOGINACK (the answer and the
		// login events lost) is taken from it.
		c.prelogin_answered = true;
		if (t.detail != TDSBPF_D_REPLY || !(t.d.reply.tokens & TDSBPF_TOK_LOGINACK))
			return;
	}
	if (t.detail == TDSBPF_D_REPLY) {
		on_reply(c, t.d.reply, t, ts);
	} else if (c.phase == Phase::login_ack && (t.status & TDS_STATUS_EOM)) {
		enter(c, Phase::active, ts);
	}
	if (was_active && new_msg)
		count_response(c, st, ts);
}

void on_smp(Connection& c, const tdsbpf_smp& m, int dir, uint64_t ts)
{
	c.last_payload_ns = ts;
	SmpSession* s = session(c, m.sid);
	if (m.flags & SMP_SYN) {
		if (s && !s->syn_seen) {
			s->syn_seen = true;
			s->opened_ns = ts;
		}
		if (c.loginack_seen || c.midstream || phase_rank(c.phase) >= phase_rank(Phase::login))
			enter(c, Phase::active, ts);
	}
	if (!s)
		return;
	s->last_seq[dir] = m.seq;
	s->last_window[dir] = m.window;
	if (m.flags & SMP_ACK)
		s->acks[dir]++;
	if (m.flags & SMP_FIN) {
		if (!s->fin[dir]) {
			s->fin[dir] = true;
			s->fin_ns[dir] = ts;
		}
		if (dir == TDSBPF_DIR_C2S)
			c.smp_fin_client_ns = ts;
		if (s->fin[0] && s->fin[1] && !s->closed_ns)
			s->closed_ns = std::max(s->fin_ns[0], s->fin_ns[1]);
	}
}

void on_ntlm(Connection& c, const tdsbpf_ntlm_event& n, uint64_t ts)
{
	bool unicode = n.encoding & TDSBPF_NTLM_UNICODE;
	auto name = [&](const uint8_t* p, uint16_t len) {
		return utf16le_or_oem(p, std::min<size_t>(len, TDSBPF_NTLM_NAME_MAX), unicode);
	};
	c.ntlm_names = true;
	c.ntlm_domain = name(n.domain, n.domain_len);
	c.ntlm_user = name(n.user, n.user_len);
	c.ntlm_workstation = name(n.workstation, n.workstation_len);
	c.method = AuthMethod::ntlm;
	c.method_inferred = !c.login7_plain;
	enter(c, Phase::authentication, ts);
}

// Where a connection first seen at this event starts.
Phase initial_phase(const tdsbpf_event& ev)
{
	switch (ev.kind) {
	case TDSBPF_EV_TCP_SYN:
	case TDSBPF_EV_TCP_SYNACK:
	case TDSBPF_EV_TCP_HANDSHAKE_ACK:
		return Phase::tcp_handshake;
	case TDSBPF_EV_TDS:
		if (ev.dir == TDSBPF_DIR_C2S && ev.u.tds.type == TDS_PRELOGIN)
			return ev.u.tds.detail == TDSBPF_D_TLS ? Phase::tls_handshake : Phase::prelogin;
		if (ev.u.tds.detail == TDSBPF_D_TLS && ev.u.tds.d.tls.content_type == 22)
			return Phase::tls_handshake;
		if (ev.dir == TDSBPF_DIR_C2S && ev.u.tds.type == TDS_LOGIN7)
			return Phase::login;
		return Phase::active;
	case TDSBPF_EV_TLS:
		if (ev.u.tls.content_type == 22)
			return Phase::tls_handshake;
		return Phase::active;
	default:
		return Phase::active;
	}
}

} // namespace

bool is_new_syn(const Connection& c, const tdsbpf_event& ev)
{
	if (ev.kind != TDSBPF_EV_TCP_SYN || c.events == 0)
		return false;
	if (c.fin[0] || c.fin[1] || c.rst[0] || c.rst[1] || c.complete)
		return true;
	if (c.syn_count == 0) {
		// Seen mid-stream: a SYN now means the ports are used again. A
		// connection first seen at its SYN+ACK gets its SYN late.
		return c.midstream && ev.ts_ns > c.first_ns;
	}
	return ev.seq != c.syn_seq; // same sequence: a retransmitted SYN
}

void apply_event(Connection& c, const tdsbpf_event& ev, const tdsbpf_ntlm_event* ntlm, const AggregatorConfig& cfg)
{
	(void)cfg;
	uint64_t ts = ev.ts_ns;
	int dir = ev.dir & 1;
	if (c.events == 0) {
		c.first_ns = ts;
		c.last_ns = ts;
		c.key = ev.key;
		c.ifindex = ev.ifindex;
		Phase p = initial_phase(ev);
		c.midstream = p != Phase::tcp_handshake || (ev.flags & TDSBPF_F_MIDSTREAM && ev.kind != TDSBPF_EV_TCP_SYN);
		enter(c, p, ts);
	}
	c.events++;
	if (ts < c.first_ns)
		c.first_ns = ts;
	c.last_ns = std::max(c.last_ns, ts);
	if (!c.ifindex)
		c.ifindex = ev.ifindex;
	if (ev.flags & TDSBPF_F_TRUNCATED)
		c.truncated++;

	switch (ev.kind) {
	case TDSBPF_EV_TCP_SYN:
		if (c.syn_count++ == 0) {
			c.syn_seq = ev.seq;
			c.syn_ns = ts;
		}
		enter(c, Phase::tcp_handshake, ts);
		break;
	case TDSBPF_EV_TCP_SYNACK:
		if (!c.synack_ns)
			c.synack_ns = ts;
		break;
	case TDSBPF_EV_TCP_HANDSHAKE_ACK:
		if (!c.hs_ack_ns)
			c.hs_ack_ns = ts;
		break;
	case TDSBPF_EV_TCP_FIN:
		if (!c.fin[dir]) {
			c.fin[dir] = true;
			c.fin_ns[dir] = ts;
			if (c.first_fin_dir < 0)
				c.first_fin_dir = dir;
		}
		enter(c, Phase::close, ts);
		// FIN both ways: over, whether or not the last ACK is reported (it is
		// not for connections the kernel met mid-stream). The linger still
		// takes it if it comes.
		if (c.fin[0] && c.fin[1])
			mark_complete(c, ts);
		break;
	case TDSBPF_EV_TCP_CLOSE_ACK:
		if (c.fin[0] && c.fin[1]) {
			int second = c.first_fin_dir == 0 ? 1 : 0;
			if (dir != second) {
				c.final_ack = true;
				mark_complete(c, ts);
			}
		}
		break;
	case TDSBPF_EV_TCP_RST:
		if (!c.rst[dir]) {
			c.rst[dir] = true;
			if (c.first_rst_dir < 0) {
				c.first_rst_dir = dir;
				c.rst_ns = ts;
			}
		}
		enter(c, Phase::close, ts);
		mark_complete(c, ts);
		break;
	case TDSBPF_EV_TCP_KEEPALIVE:
		c.keepalives[dir]++;
		// a side that sent its FIN keeps probing (FIN_WAIT2): those are not
		// the idle period that led to the close
		if (!c.close_start_ns)
			c.last_keepalive_ns = ts;
		break;
	case TDSBPF_EV_TCP_RETRANS:
		c.retrans_events[dir]++;
		break;
	case TDSBPF_EV_TCP_ZERO_WINDOW:
		c.zero_window_events[dir]++;
		break;
	case TDSBPF_EV_FLOW_STATS:
		c.stats = ev.u.stats;
		c.stats_seen = true;
		if (ev.u.stats.final)
			mark_complete(c, ts);
		break;
	case TDSBPF_EV_RESYNC:
		if (ev.flags & TDSBPF_F_LOST_SYNC)
			c.resync_lost++;
		else
			c.resync_regained++;
		break;
	case TDSBPF_EV_TDS:
		on_tds(c, ev, dir, ts);
		break;
	case TDSBPF_EV_TLS:
		on_tls(c, ev.u.tls, dir, ts, false);
		break;
	case TDSBPF_EV_SMP:
		on_smp(c, ev.u.smp, dir, ts);
		break;
	case TDSBPF_EV_NTLM_AUTH:
		// The record stands in for the carrier SSPI packet's own TDS event.
		if (ev.u.tds.type == TDS_SSPI)
			on_tds(c, ev, dir, ts);
		if (ntlm)
			on_ntlm(c, *ntlm, ts);
		break;
	case TDSBPF_EV_TDS_DONE:
		on_done(c, ev.u.done.status, ev.u.done.rows);
		break;
	default:
		break;
	}
}

namespace {

bool mars_benign(const Connection& c)
{
	if (c.first_rst_dir != TDSBPF_DIR_C2S || !c.smp_fin_client_ns)
		return false;
	if (c.rst_ns > c.smp_fin_client_ns + 1000000000ull)
		return false;
	for (const auto& [sid, s] : c.sessions) {
		(void)sid;
		if ((s.syn_seen || s.data_packets[0]) && !s.fin[TDSBPF_DIR_C2S])
			return false;
		if (s.stream.pending)
			return false;
	}
	return true;
}

} // namespace

void conclude(Connection& c, EndReason why, uint64_t end_ns, const AggregatorConfig& cfg)
{
	c.end_reason = why;
	bool closed = c.fin[0] || c.fin[1] || c.rst[0] || c.rst[1];
	c.end_ns = (closed || why == EndReason::closed) ? c.last_ns : std::max(end_ns, c.last_ns);
	Phase before_close = c.phase == Phase::close ? c.phase_at_close : c.phase;
	bool established = c.synack_ns || c.hs_ack_ns || phase_rank(before_close) > phase_rank(Phase::tcp_handshake);

	// Close kind
	c.close_initiator = -1;
	if (c.first_rst_dir >= 0) {
		if (c.first_rst_dir == TDSBPF_DIR_S2C && !c.synack_ns && before_close == Phase::tcp_handshake) {
			c.close_kind = CloseKind::refused;
			c.close_initiator = TDSBPF_DIR_S2C;
		} else if (mars_benign(c)) {
			c.close_kind = CloseKind::mars_benign_reset;
			c.close_initiator = TDSBPF_DIR_C2S;
		} else if (c.fin[0] && c.fin[1] && c.final_ack) {
			// A RST after a completed four-way close changes nothing.
			c.close_kind = c.first_fin_dir == TDSBPF_DIR_S2C ? CloseKind::server_fin_first : CloseKind::four_way;
			c.close_initiator = c.first_fin_dir;
		} else {
			c.close_kind = CloseKind::reset;
			c.close_initiator = c.first_rst_dir;
		}
	} else if (c.first_fin_dir >= 0) {
		c.close_initiator = c.first_fin_dir;
		if (c.first_fin_dir == TDSBPF_DIR_S2C)
			c.close_kind = CloseKind::server_fin_first;
		else if (c.fin[TDSBPF_DIR_S2C])
			c.close_kind = CloseKind::four_way;
		else
			c.close_kind = CloseKind::half_close;
	} else if (c.syn_count > 0 && !established) {
		c.close_kind = CloseKind::syn_unanswered;
	} else {
		switch (why) {
		case EndReason::idle_timeout:
		case EndReason::handshake_timeout: c.close_kind = CloseKind::idle_timeout; break;
		case EndReason::evicted: c.close_kind = CloseKind::evicted; break;
		case EndReason::replaced: c.close_kind = CloseKind::replaced; break;
		default: c.close_kind = CloseKind::still_open; break;
		}
	}

	// Login outcome
	bool login_visible = c.pre[0].seen || c.pre[1].seen || c.tls_seen || c.login_record_seen || c.syn_count > 0;
	if (c.loginack_seen) {
		c.outcome = LoginOutcome::success;
	} else if (c.login_error_seen) {
		c.outcome = LoginOutcome::failed;
	} else if (c.midstream && !login_visible) {
		c.outcome = LoginOutcome::not_seen;
	} else if (!established) {
		c.outcome = LoginOutcome::not_started;
	} else if (c.opaque_first_reply_ns) {
		c.outcome = LoginOutcome::unknown;
	} else if (phase_rank(before_close) >= phase_rank(Phase::active)) {
		c.outcome = c.midstream ? LoginOutcome::not_seen : LoginOutcome::unknown;
	} else {
		uint64_t start = c.syn_ns ? c.syn_ns : c.first_ns;
		uint64_t limit = static_cast<uint64_t>(cfg.login_timeout_ms) * 1000000ull;
		if (why == EndReason::idle_timeout || why == EndReason::handshake_timeout)
			c.outcome = LoginOutcome::timed_out;
		else if (closed)
			c.outcome = (c.close_start_ns - start >= limit && c.first_fin_dir != TDSBPF_DIR_S2C &&
				     c.first_rst_dir != TDSBPF_DIR_S2C)
					? LoginOutcome::timed_out
					: LoginOutcome::aborted;
		else
			c.outcome = LoginOutcome::in_progress;
	}
}

} // namespace tdsbpf
