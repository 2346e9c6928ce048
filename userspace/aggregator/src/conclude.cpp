// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// What a connection comes to when it ends: how it closed, who closed it,
// and the login outcome; and the values derived from the model.
#include <algorithm>

#include "connection.h"
#include "machine.h"

namespace tdsbpf {

uint64_t TcpState::retrans(int dir) const
{
	return std::max<uint64_t>(retrans_events[dir], stats_seen ? stats.retrans[dir] : 0);
}

uint64_t TcpState::zero_windows(int dir) const
{
	return std::max<uint64_t>(zero_window_events[dir], stats_seen ? stats.zero_windows[dir] : 0);
}

uint64_t TcpState::keepalive_count(int dir) const
{
	return std::max<uint64_t>(keepalives[dir], stats_seen ? stats.keepalives[dir] : 0);
}

bool Connection::established() const
{
	return tcp.synack_ns || tcp.hs_ack_ns || phase_rank(phase_before_close()) > phase_rank(Phase::tcp_handshake);
}

static bool enc_on(uint8_t e)
{
	e &= 0x7f;
	return e == TDS_ENCRYPT_ON || e == TDS_ENCRYPT_REQ;
}

Encryption Connection::encryption() const
{
	if (tls.strict)
		return Encryption::strict;
	const PreloginSide& cl = prelogin.client();
	const PreloginSide& sv = prelogin.server();
	if (tls.app_data_s2c)
		return Encryption::full;
	if (cl.seen && sv.seen && cl.encryption != TDSBPF_VALUE_ABSENT && sv.encryption != TDSBPF_VALUE_ABSENT) {
		uint8_t ce = cl.encryption & 0x7f, se = sv.encryption & 0x7f;
		if (ce == TDS_ENCRYPT_NOT_SUP || se == TDS_ENCRYPT_NOT_SUP)
			return tls.seen ? Encryption::login_only : Encryption::off;
		if (enc_on(ce) || enc_on(se))
			return Encryption::full;
		return Encryption::login_only;
	}
	// a LOGIN7 in clear with no PRELOGIN before it: a TDS 7.0/7.1 client,
	// which negotiates no encryption at all (unless the tracer came late)
	if (login.login7_plain && !cl.seen && !sv.seen && !midstream && tcp.syn_count)
		return Encryption::not_negotiated;
	if (login.login7_plain)
		return Encryption::off;
	if (login.seen && login.plaintext_after)
		return Encryption::login_only;
	return Encryption::unknown;
}

std::optional<uint64_t> Connection::login_duration_ns() const
{
	uint64_t answer = login.ack_seen ? login.ack_ns : login.error_seen ? login.error_ns : login.opaque_end_ns;
	if (!answer || !tcp.syn_ns || answer < tcp.syn_ns)
		return std::nullopt;
	return answer - tcp.syn_ns;
}

std::vector<LoginStep> Connection::login_steps() const
{
	struct Point {
		uint64_t ns;
		const char* name;  // the step that ends here
		const char* owner; // whose turn it was
	};
	const LoginSteps& m = login.steps;
	uint64_t answer = login.ack_seen ? login.ack_ns : login.error_seen ? login.error_ns : login.opaque_end_ns;
	const Point points[] = {
		{tcp.syn_ns, "", ""},
		{tcp.synack_ns, "tcp_syn_ack", "server"}, // or the network: the SYN's path and the accept queue
		{tcp.hs_ack_ns, "tcp_ack", "network"},
		{m[Milestone::prelogin], "prelogin", "client"},
		{m[Milestone::prelogin_reply], "prelogin_reply", "server"},
		{m[Milestone::tls_client_hello], "tls_client_hello", "client"},
		{m[Milestone::tls_server_hello], "tls_server_hello", "server"},
		{m[Milestone::tls_client_finish], "tls_client_finish", "client"},
		{m[Milestone::tls_server_finish], "tls_server_finish", "server"},
		{m[Milestone::login7], "login7", "client"},
		{m[Milestone::auth_challenge], "auth_challenge", "server"},
		{m[Milestone::auth_response], "auth_response", "client"},
		{answer, "login_answer", "server"},
	};
	std::vector<LoginStep> steps;
	steps.reserve(std::size(points) - 1); // one allocation, not one per doubling
	uint64_t prev = 0;
	for (const Point& p : points) {
		if (!p.ns || (prev && p.ns < prev))
			continue; // not seen, or out of order (a late event): no step
		if (prev)
			steps.push_back({p.name, p.owner, prev, p.ns});
		prev = p.ns;
	}
	return steps;
}

void Texts::set(Field f, std::string_view v)
{
	uint16_t begin = f ? end_[f - 1] : 0, end = end_[f];
	size_t room = 0xffff - (blob_.size() - (end - begin));
	if (v.size() > room)
		v = v.substr(0, room);
	if (v.empty() && begin == end)
		return;
	if (begin == end && end == blob_.size())
		blob_.append(v); // the fields after this one are empty
	else
		blob_.replace(begin, end - begin, v);
	int delta = static_cast<int>(v.size()) - static_cast<int>(end - begin);
	for (int i = f; i < kFields; i++)
		end_[i] = static_cast<uint16_t>(end_[i] + delta);
}

bool Connection::opaque() const
{
	Encryption e = encryption();
	return e == Encryption::full || e == Encryption::strict;
}

namespace {

bool mars_benign(const Connection& c)
{
	if (c.close.first_rst_dir != TDSBPF_DIR_C2S || !c.mars.client_fin_ns)
		return false;
	if (c.close.rst_ns > c.mars.client_fin_ns + 1000000000ull)
		return false;
	for (const auto& [sid, s] : c.mars.sessions()) {
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
	bool closed = c.close.fin[0] || c.close.fin[1] || c.close.rst[0] || c.close.rst[1];
	// A connection that closed, or that was still open when the capture or
	// the tracer ended, ends at its last packet: the end of a capture says
	// nothing about it. Timeouts and evictions end when the tracer gave up.
	c.end_ns = (closed || why == EndReason::closed || why == EndReason::finish) ? c.last_ns
										    : std::max(end_ns, c.last_ns);
	Phase before_close = c.phase == Phase::close ? c.close.phase : c.phase;
	bool established =
		c.tcp.synack_ns || c.tcp.hs_ack_ns || phase_rank(before_close) > phase_rank(Phase::tcp_handshake);

	// Close kind
	c.close.initiator = -1;
	if (c.close.first_rst_dir >= 0) {
		if (c.close.first_rst_dir == TDSBPF_DIR_S2C && !c.tcp.synack_ns &&
		    before_close == Phase::tcp_handshake) {
			c.close.kind = CloseKind::refused;
			c.close.initiator = TDSBPF_DIR_S2C;
		} else if (mars_benign(c)) {
			c.close.kind = CloseKind::mars_benign_reset;
			c.close.initiator = TDSBPF_DIR_C2S;
		} else if (c.close.fin[0] && c.close.fin[1] && c.close.final_ack) {
			// A RST after a completed four-way close changes nothing.
			c.close.kind = c.close.first_fin_dir == TDSBPF_DIR_S2C ? CloseKind::server_fin_first
									       : CloseKind::four_way;
			c.close.initiator = c.close.first_fin_dir;
		} else {
			c.close.kind = CloseKind::reset;
			c.close.initiator = c.close.first_rst_dir;
		}
	} else if (c.close.first_fin_dir >= 0) {
		c.close.initiator = c.close.first_fin_dir;
		if (c.close.first_fin_dir == TDSBPF_DIR_S2C)
			c.close.kind = CloseKind::server_fin_first;
		else if (c.close.fin[TDSBPF_DIR_S2C])
			c.close.kind = CloseKind::four_way;
		else
			c.close.kind = CloseKind::half_close;
	} else if (c.tcp.syn_count > 0 && !established) {
		c.close.kind = CloseKind::syn_unanswered;
	} else {
		switch (why) {
		case EndReason::idle_timeout:
		case EndReason::handshake_timeout: c.close.kind = CloseKind::idle_timeout; break;
		case EndReason::evicted: c.close.kind = CloseKind::evicted; break;
		case EndReason::replaced: c.close.kind = CloseKind::replaced; break;
		default:
			// not seen to close; with events lost, it may have
			c.close.kind = c.tracer.lossy() ? CloseKind::unknown : CloseKind::still_open;
			break;
		}
	}

	// Login outcome
	bool login_visible =
		c.prelogin.side[0].seen || c.prelogin.side[1].seen || c.tls.seen || c.login.seen || c.tcp.syn_count > 0;
	bool speaks_tds7 = c.tracer.client_speaks == Speaks::tds || c.tracer.client_speaks == Speaks::not_yet;
	if (c.login.ack_seen && speaks_tds7) {
		c.login.outcome = LoginOutcome::success;
	} else if (!speaks_tds7) {
		c.login.outcome = LoginOutcome::not_tds;
	} else if (c.login.error_seen) {
		c.login.outcome = LoginOutcome::failed;
	} else if (c.midstream && !login_visible) {
		c.login.outcome = LoginOutcome::not_seen;
	} else if (!established) {
		c.login.outcome = LoginOutcome::not_started;
	} else if (c.login.opaque_first_reply_ns) {
		machine::settle_opaque_second_trip(c);
		// An encrypted login: the server's answers cannot be read, the
		// conversation's shape can. SQL Server refuses a login by answering
		// it and closing; an integrated (NTLM) login has one more round trip
		// inside TLS before that answer. So: the server closing after
		// answering the login flight (or, within a second, the one flight
		// after it), with nothing from the client since, is a probable
		// failure; requests
		// answered with the connection kept (or closed by the client), or
		// two or more answered, a probable success. Anything else stays
		// unknown.
		bool answered = !c.work.opaque_in_request;
		bool server_closed = c.close.initiator == kS2C && c.close.start_ns >= c.login.opaque_first_reply_ns;
		bool closed_at_once = c.close.start_ns >= c.last_server_payload_ns &&
				      c.close.start_ns - c.last_server_payload_ns <= 1000000000ull;
		if (server_closed && answered &&
		    (c.work.encrypted_requests == 0 || (c.work.encrypted_requests == 1 && closed_at_once))) {
			c.login.outcome = LoginOutcome::failed;
			c.login.inferred = true;
			c.login.opaque_end_ns = c.last_server_payload_ns;
			// the second round trip, told by its shape as it ended
			// (the phases then already say so), or by the server closing
			// right after answering the one flight that followed
			bool shaped = c.login.opaque_second_trip;
			bool second_trip = shaped || (c.work.encrypted_requests == 1 && c.work.requests == 1);
			c.login.opaque_second_trip = second_trip;
			if (second_trip && !shaped) {
				// that flight was the login's second round trip, not a request
				c.work.requests = 0;
				c.work.encrypted_requests = 0;
				c.work.responses = 0;
				c.work.latency = LatencyHistogram();
			}
			// what looked like work was the end of the login: the span from
			// the login's first answer is its authentication (second round
			// trip) and its failure
			PhaseList phases;
			for (size_t i = 0; i < c.phases.size(); i++) {
				PhaseSpan p = c.phases[i];
				if (p.phase != Phase::active) {
					phases.push_back(p);
					continue;
				}
				bool split = second_trip && !shaped;
				if (split && c.login.opaque_end_ns > p.start_ns)
					phases.push_back({Phase::authentication, p.start_ns});
				phases.push_back(
					{Phase::login_error, std::max(p.start_ns, split ? c.login.opaque_end_ns : 0)});
			}
			c.phases = phases;
			if (c.close.phase == Phase::active)
				c.close.phase = Phase::login_error;
			if (c.phase == Phase::active)
				c.phase = Phase::login_error;
		} else if (c.work.encrypted_requests >= 1 && c.work.responses >= 1 &&
			   (!server_closed || c.work.encrypted_requests >= 2)) {
			c.login.outcome = LoginOutcome::success;
			c.login.inferred = true;
			// the answer to the second round trip when its shape was
			// seen; else the first answer (a lower bound for a second
			// round trip not told from a request)
			if (!c.login.opaque_second_trip)
				c.login.opaque_end_ns = c.login.opaque_first_reply_ns;
		} else {
			c.login.outcome = LoginOutcome::unknown;
		}
	} else if (phase_rank(before_close) >= phase_rank(Phase::active)) {
		c.login.outcome = c.midstream ? LoginOutcome::not_seen : LoginOutcome::unknown;
	} else {
		uint64_t start = c.tcp.syn_ns ? c.tcp.syn_ns : c.first_ns;
		uint64_t limit = static_cast<uint64_t>(cfg.login_timeout_ms) * 1000000ull;
		if (why == EndReason::idle_timeout || why == EndReason::handshake_timeout)
			c.login.outcome = LoginOutcome::timed_out;
		else if (closed)
			c.login.outcome =
				(c.close.start_ns - start >= limit && c.close.first_fin_dir != TDSBPF_DIR_S2C &&
				 c.close.first_rst_dir != TDSBPF_DIR_S2C)
					? LoginOutcome::timed_out
					: LoginOutcome::aborted;
		else
			c.login.outcome = LoginOutcome::in_progress;
	}
	// Without its answer, a login whose events were lost cannot be told
	// apart from one that is still going, gave up or was never seen.
	if (c.tracer.lossy() && c.login.outcome != LoginOutcome::success && c.login.outcome != LoginOutcome::failed &&
	    c.login.outcome != LoginOutcome::not_tds)
		c.login.outcome = LoginOutcome::unknown;
}

} // namespace tdsbpf
