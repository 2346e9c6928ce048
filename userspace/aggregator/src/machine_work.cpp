// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The phase machine, work side: requests and responses, their pairing and
// latency, the final DONE of replies, and MARS (SMP) sessions.
#include <algorithm>

#include "machine.h"

namespace tdsbpf::machine {

namespace {

constexpr size_t kMaxSessions = 256;

SmpSession* session(Connection& c, uint16_t sid)
{
	MarsState::Sessions& sessions = c.mars.table.mut();
	auto it = sessions.find(sid);
	if (it != sessions.end())
		return &it->second;
	if (sessions.size() >= kMaxSessions) {
		c.mars.sessions_dropped++;
		return nullptr;
	}
	SmpSession& s = sessions[sid];
	s.sid = sid;
	return &s;
}


} // namespace

void attention_acked(Connection& c)
{
	if (c.work.pending_attentions > 0) {
		c.work.pending_attentions--;
		c.work.attention_acks++;
	}
}


// The final DONE of a reply packet (in the TDS event's tail, or a
// TDS_DONE event when the packet ended in a later segment). flags:
// TDSBPF_TAIL_* (rows from the DONEINPROC before a procedure's DONEPROC).
void on_done(Connection& c, uint16_t status, uint64_t rows, uint8_t flags)
{
	c.work.done_tokens++;
	if ((status & TDS_DONE_COUNT) || (flags & TDSBPF_TAIL_INPROC_ROWS)) {
		c.work.rows += rows;
		c.work.rows_seen = true;
	}
	if (status & TDS_DONE_ATTN)
		attention_acked(c);
}

void count_response(Connection& c, StreamState& st, uint64_t ts)
{
	c.work.responses++;
	if (st.pending) {
		c.work.latency.add(ts >= st.pending_request_ns ? ts - st.pending_request_ns : 0);
		st.pending = false;
	}
}

// A request after the connection sat idle for a second or more since its
// last response: a pool handing it out again (or an application keeping it).
void note_idle_reuse(Connection& c, uint64_t ts)
{
	if (c.work.requests && c.last_server_payload_ns && ts >= c.last_server_payload_ns + 1000000000ull)
		c.work.idle_reuses++;
}

namespace {

void count_request(Connection& c, StreamState& st, const tdsbpf_tds& t, uint64_t ts)
{
	switch (t.type) {
	case TDS_SQL_BATCH: c.work.sql_batches++; break;
	case TDS_RPC: c.work.rpcs++; break;
	case TDS_ATTENTION:
		c.work.attentions++;
		c.work.pending_attentions++;
		// An attention while a request waits for its reply, or while the
		// reply streams, cancels it. One after the reply's last packet (a
		// driver closing a result it did not read to the end) cancels
		// nothing.
		if (!st.pending && !st.in_msg[kS2C])
			c.work.attentions_after_reply++;
		break;
	case TDS_BULK_LOAD: c.work.bulk_loads++; break;
	case TDS_TRANSACTION_MGR: c.work.tm_requests++; break;
	default: break;
	}
	if (t.status & (TDS_STATUS_RESETCONNECTION | TDS_STATUS_RESETCONNECTIONSKIPTRAN))
		c.work.reset_connection++;
	if (t.type == TDS_ATTENTION)
		return;
	note_idle_reuse(c, ts);
	c.work.requests++;
	if (!st.pending) {
		st.pending = true;
		st.pending_request_ns = ts;
	}
}

} // namespace

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
	StreamState& st = s ? s->stream : c.work.stream;
	bool new_msg = !st.in_msg[dir];
	st.in_msg[dir] = !(t.status & TDS_STATUS_EOM);
	bool was_active = c.phase == Phase::active || (c.phase == Phase::close && c.close.phase == Phase::active);

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
			// an SSPI continuation sent in a LOGIN7-typed packet
			if (t.detail == TDSBPF_D_SSPI) {
				on_sspi(c, t, ts);
				return;
			}
			if (t.detail == TDSBPF_D_LOGIN7) {
				on_login7(c, t.d.login7, ts);
			} else {
				c.login.login7_plain = true;
				login_started(c, ts);
				enter(c, Phase::login, ts);
			}
			return;
		case TDS_SSPI: on_sspi(c, t, ts); return;
		case TDS_FEDAUTH_TOKEN:
			c.login.steps.mark(Milestone::auth_response, ts);
			c.auth.fedauth_seen = true;
			c.auth.method = AuthMethod::federated;
			enter(c, Phase::authentication, ts);
			return;
		default: break;
		}
		if (is_request_type(t.type)) {
			if (c.login.seen)
				c.login.plaintext_after = true;
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
		on_done(c, t.tail_done_status, t.tail_done_rows, t.tail_flags);
	if (c.login.seen && !c.login.login7_plain)
		c.login.plaintext_after = true;
	if (c.phase == Phase::prelogin && !c.tls.seen && !c.login.seen && !c.prelogin.answered) {
		// The first reply after the client's PRELOGIN is the server's
		// PRELOGIN answer, also when the walk read it as a token stream: its
		// bytes are an option table. Only a LOGINACK (the answer and the
		// login events lost) is taken from it.
		c.prelogin.answered = true;
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

namespace {

void add_latencies(WorkState& k, const tdsbpf_work& w)
{
	for (unsigned i = 0; i < std::min<unsigned>(w.n, TDSBPF_WORK_LATENCIES); i++)
		k.latency.add(w.latency_ns[i]);
}

} // namespace

// What the per-packet events of the routine work would have done: the same
// counts, then the pairing state after the last packet counted.
void on_work(Connection& c, const tdsbpf_work& w)
{
	WorkState& k = c.work;
	// this record stands for the events it counted, not for one more
	c.tracer.events += w.events;
	if (c.tracer.events)
		c.tracer.events--;
	c.tracer.truncated += w.truncated;
	uint64_t last = std::max(w.last_c2s_ns, w.last_s2c_ns);
	if (last)
		c.last_payload_ns = last;
	if (w.last_s2c_ns)
		c.last_server_payload_ns = w.last_s2c_ns;
	if (w.flags & TDSBPF_WORK_TLS) {
		// an encrypted connection's runs of records: requests where on_tls
		// would count them
		k.opaque_client_flights += w.sql_batches;
		k.opaque_client_flight = w.flags & TDSBPF_WORK_CLIENT_RUN;
		bool active = c.phase == Phase::active || (c.phase == Phase::close && c.close.phase == Phase::active);
		if (!active || !c.opaque())
			return;
		k.requests += w.sql_batches;
		k.encrypted_requests += w.sql_batches;
		k.responses += w.responses;
		k.idle_reuses += w.idle_reuses;
		add_latencies(k, w);
		k.opaque_in_request = w.flags & TDSBPF_WORK_IN_REQUEST;
		k.stream.pending = w.flags & TDSBPF_WORK_PENDING;
		if (k.stream.pending)
			k.stream.pending_request_ns = w.pending_ns;
		return;
	}
	k.sql_batches += w.sql_batches;
	k.rpcs += w.rpcs;
	k.requests += static_cast<uint64_t>(w.sql_batches) + w.rpcs;
	k.responses += w.responses;
	k.reset_connection += w.reset_connection;
	k.idle_reuses += w.idle_reuses;
	k.done_tokens += w.done_tokens;
	if (w.flags & TDSBPF_WORK_ROWS) {
		k.rows += w.rows;
		k.rows_seen = true;
	}
	add_latencies(k, w);
	if (!c.login.spid && w.spid)
		c.login.spid = w.spid;
	StreamState& st = k.stream;
	st.in_msg[TDSBPF_DIR_C2S] = w.flags & TDSBPF_WORK_IN_C2S;
	st.in_msg[TDSBPF_DIR_S2C] = w.flags & TDSBPF_WORK_IN_S2C;
	st.pending = w.flags & TDSBPF_WORK_PENDING;
	if (st.pending)
		st.pending_request_ns = w.pending_ns;
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
		if (c.login.ack_seen || c.midstream || phase_rank(c.phase) >= phase_rank(Phase::login))
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
			c.mars.client_fin_ns = ts;
		if (s->fin[0] && s->fin[1] && !s->closed_ns)
			s->closed_ns = std::max(s->fin_ns[0], s->fin_ns[1]);
	}
}

} // namespace tdsbpf::machine
