// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The phase machine: one event at a time moves a connection through its
// phases. Phases only move forward (by rank), so a late or lost event never
// sends a connection back to an earlier phase; close is final. The
// subjects' handlers are in machine_login.cpp and machine_work.cpp.
#include <algorithm>

#include "machine.h"

namespace tdsbpf {

namespace machine {

void enter(Connection& c, Phase p, uint64_t ts)
{
	if (c.phase == Phase::close)
		return;
	if (!c.phases.empty())
		ts = std::max(ts, c.phases.back().start_ns); // a late event: keep spans ordered
	if (p == Phase::close) {
		c.close.phase = c.phase;
		c.close.start_ns = ts;
		c.close.pending_request = c.work.stream.pending;
		for (const auto& [sid, s] : c.mars.sessions()) {
			(void)sid;
			c.close.pending_request = c.close.pending_request || s.stream.pending;
		}
		c.close.pending_since_ns = c.work.stream.pending ? c.work.stream.pending_request_ns : 0;
		for (const auto& [sid, s] : c.mars.sessions()) {
			(void)sid;
			if (s.stream.pending &&
			    (!c.close.pending_since_ns || s.stream.pending_request_ns < c.close.pending_since_ns))
				c.close.pending_since_ns = s.stream.pending_request_ns;
		}
		c.phases.push_back({p, ts});
		c.phase = p;
		return;
	}
	if (p == Phase::login_ack && c.phase == Phase::login_error) {
		// An ERROR in an early packet of a reply that ends with LOGINACK.
		c.phases.set_back_phase(Phase::login_ack);
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

} // namespace machine

namespace {

using namespace machine;

// Where a connection first seen at this event starts.
Phase initial_phase(const tdsbpf_event& ev)
{
	switch (ev.kind) {
	case TDSBPF_EV_TCP_SYN:
	case TDSBPF_EV_TCP_SYNACK:
	case TDSBPF_EV_TCP_HANDSHAKE_ACK: return Phase::tcp_handshake;
	case TDSBPF_EV_TDS:
		if (ev.dir == TDSBPF_DIR_C2S && ev.u.tds.type == TDS_PRELOGIN)
			return ev.u.tds.detail == TDSBPF_D_TLS ? Phase::tls_handshake : Phase::prelogin;
		if (ev.u.tds.detail == TDSBPF_D_TLS && ev.u.tds.d.tls.content_type == TLS_CT_HANDSHAKE)
			return Phase::tls_handshake;
		if (ev.dir == TDSBPF_DIR_C2S && ev.u.tds.type == TDS_LOGIN7)
			return ev.u.tds.detail == TDSBPF_D_SSPI ? Phase::authentication : Phase::login;
		return Phase::active;
	case TDSBPF_EV_TLS:
		if (ev.u.tls.content_type == TLS_CT_HANDSHAKE)
			return Phase::tls_handshake;
		return Phase::active;
	default: return Phase::active;
	}
}

} // namespace

bool is_new_syn(const Connection& c, const tdsbpf_event& ev)
{
	if (ev.kind != TDSBPF_EV_TCP_SYN || c.tracer.events == 0)
		return false;
	// The refused SYN again, same initial sequence number: the client
	// retrying the same attempt (Windows does, twice, half a second apart),
	// not a new connection.
	if (c.refused_attempt() && ev.seq == c.tcp.syn_seq)
		return false;
	if (c.close.fin[0] || c.close.fin[1] || c.close.rst[0] || c.close.rst[1] || c.complete)
		return true;
	if (c.tcp.syn_count == 0) {
		// Seen mid-stream: a SYN now means the ports are used again. A
		// connection first seen at its SYN+ACK gets its SYN late.
		return c.midstream && ev.ts_ns > c.first_ns;
	}
	return ev.seq != c.tcp.syn_seq; // same sequence: a retransmitted SYN
}

void apply_event(Connection& c, const tdsbpf_event& ev, const tdsbpf_ntlm_event* ntlm)
{
	uint64_t ts = ev.ts_ns;
	int dir = ev.dir & 1;
	if (c.tracer.events == 0) {
		c.first_ns = ts;
		c.last_ns = ts;
		c.key = ev.key;
		c.ifindex = ev.ifindex;
		Phase p = initial_phase(ev);
		if (ev.flow_seq > 1 && !(ev.flags & TDSBPF_F_MIDSTREAM)) {
			// the kernel saw this connection from its SYN, but its first
			// events never reached user space (the ring buffer was full)
			c.tracer.start_lost = true;
			c.midstream = false;
		} else {
			c.midstream = p != Phase::tcp_handshake ||
				      (ev.flags & TDSBPF_F_MIDSTREAM && ev.kind != TDSBPF_EV_TCP_SYN);
		}
		enter(c, p, ts);
	}
	c.tracer.events++;
	if (ev.flow_seq) {
		TracerState& t = c.tracer;
		// Flow state made again mid-connection (evicted from the kernel's
		// table): numbering starts over. Only after a long run, so that
		// two early events swapped on their way are not taken for it.
		// (A flow that sent work records is past its first events.)
		if (ev.flow_seq == 1 && (ev.flags & TDSBPF_F_MIDSTREAM) && (t.seq_max > 64 || t.work_records)) {
			// what the forgotten entry had counted and not sent is gone
			if (t.work_records)
				t.counts_lost = true;
			t.lost_earlier += t.seq_max > t.seq_seen ? t.seq_max - t.seq_seen : 0;
			t.seq_max = 0;
			t.seq_seen = 0;
		}
		t.seq_seen++;
		t.seq_max = std::max(t.seq_max, ev.flow_seq);
	}
	if (ts < c.first_ns)
		c.first_ns = ts;
	c.last_ns = std::max(c.last_ns, ts);
	if (!c.ifindex)
		c.ifindex = ev.ifindex;
	if (ev.flags & TDSBPF_F_TRUNCATED)
		c.tracer.truncated++;

	// the client's first bytes, for a connection seen from its start
	if (dir == TDSBPF_DIR_C2S && c.tracer.client_speaks == Speaks::not_yet && !c.midstream) {
		switch (ev.kind) {
		case TDSBPF_EV_TDS:
		case TDSBPF_EV_NTLM_AUTH:
			c.tracer.client_speaks = ev.u.tds.type == TDS_PRE7_LOGIN ? Speaks::tds_pre7 : Speaks::tds;
			break;
		case TDSBPF_EV_TLS:
		case TDSBPF_EV_SMP: c.tracer.client_speaks = Speaks::tds; break;
		case TDSBPF_EV_RESYNC:
			if (ev.flags & TDSBPF_F_LOST_SYNC)
				c.tracer.client_speaks = Speaks::not_tds;
			break;
		default: break;
		}
	}

	switch (ev.kind) {
	case TDSBPF_EV_TCP_SYN:
		if (c.tcp.syn_count++ == 0) {
			c.tcp.syn_seq = ev.seq;
			c.tcp.syn_ns = ts;
		}
		enter(c, Phase::tcp_handshake, ts);
		break;
	case TDSBPF_EV_TCP_SYNACK:
		if (!c.tcp.synack_ns)
			c.tcp.synack_ns = ts;
		break;
	case TDSBPF_EV_TCP_HANDSHAKE_ACK:
		if (!c.tcp.hs_ack_ns)
			c.tcp.hs_ack_ns = ts;
		break;
	case TDSBPF_EV_TCP_FIN:
		if (!c.close.fin[dir]) {
			c.close.fin[dir] = true;
			c.close.fin_ns[dir] = ts;
			if (c.close.first_fin_dir < 0)
				c.close.first_fin_dir = dir;
		}
		enter(c, Phase::close, ts);
		// FIN both ways: over, whether or not the last ACK is reported (it is
		// not for connections the kernel met mid-stream). The linger still
		// takes it if it comes.
		if (c.close.fin[0] && c.close.fin[1])
			mark_complete(c, ts);
		break;
	case TDSBPF_EV_TCP_CLOSE_ACK:
		if (c.close.fin[0] && c.close.fin[1]) {
			int second = c.close.first_fin_dir == 0 ? 1 : 0;
			if (dir != second) {
				c.close.final_ack = true;
				mark_complete(c, ts);
			}
		}
		break;
	case TDSBPF_EV_TCP_RST:
		if (!c.close.rst[dir]) {
			c.close.rst[dir] = true;
			if (c.close.first_rst_dir < 0) {
				c.close.first_rst_dir = dir;
				c.close.rst_ns = ts;
				c.close.rst_ttl = ev.u.tcp.ttl;
				c.close.rst_usual_ttl = ev.u.tcp.usual_ttl;
				// a segment sent again and again in the last minute, unanswered
				for (int d = 0; d < 2; d++) {
					const TcpState& t = c.tcp;
					if (t.stuck_times[d] > c.close.rst_stuck_times &&
					    ts - t.stuck_last_ns[d] <= 60'000'000'000ull) {
						c.close.rst_stuck_dir = d;
						c.close.rst_stuck_times = t.stuck_times[d];
						c.close.rst_stuck_len = t.stuck_len[d];
					}
				}
			}
		}
		enter(c, Phase::close, ts);
		// a refused attempt lingers longer: the client may send the same
		// SYN again (see is_new_syn), and those retries belong to it
		mark_complete(c, c.refused_attempt() ? ts + kRefusedRetryWaitNs : ts);
		break;
	case TDSBPF_EV_TCP_KEEPALIVE:
		c.tcp.keepalives[dir]++;
		// a side that sent its FIN keeps probing (FIN_WAIT2): those are not
		// the idle period that led to the close
		if (!c.close.start_ns)
			c.tcp.last_keepalive_ns = ts;
		break;
	case TDSBPF_EV_TCP_RETRANS:
		c.tcp.retrans_events[dir]++;
		if (c.tcp.stuck_times[dir] && c.tcp.stuck_seq[dir] == ev.seq) {
			if (c.tcp.stuck_times[dir] < UINT16_MAX)
				c.tcp.stuck_times[dir]++;
		} else {
			c.tcp.stuck_seq[dir] = ev.seq;
			c.tcp.stuck_times[dir] = 1;
			c.tcp.stuck_len[dir] = static_cast<uint16_t>(std::min<uint32_t>(ev.payload_len, UINT16_MAX));
		}
		c.tcp.stuck_last_ns[dir] = ts;
		break;
	case TDSBPF_EV_TCP_ZERO_WINDOW: c.tcp.zero_window_events[dir]++; break;
	case TDSBPF_EV_FLOW_STATS:
		c.tcp.stats = ev.u.stats;
		c.tcp.stats_seen = true;
		if (ev.u.stats.final)
			mark_complete(c, ts);
		break;
	case TDSBPF_EV_RESYNC:
		if (ev.flags & TDSBPF_F_LOST_SYNC)
			c.tracer.resync_lost++;
		else
			c.tracer.resync_regained++;
		break;
	case TDSBPF_EV_TDS: on_tds(c, ev, dir, ts); break;
	case TDSBPF_EV_TLS: on_tls(c, ev.u.tls, dir, ts, false); break;
	case TDSBPF_EV_SMP: on_smp(c, ev.u.smp, dir, ts); break;
	case TDSBPF_EV_NTLM_AUTH:
		// The record stands in for the carrier SSPI packet's own TDS event.
		if (ev.u.tds.type == TDS_SSPI || ev.u.tds.detail == TDSBPF_D_SSPI)
			on_tds(c, ev, dir, ts);
		if (ntlm)
			on_ntlm(c, *ntlm, ts);
		break;
	case TDSBPF_EV_TDS_DONE: on_done(c, ev.u.done.status, ev.u.done.rows, ev.u.done.flags); break;
	case TDSBPF_EV_WORK:
		c.tracer.work_records++;
		on_work(c, ev.u.work);
		break;
	default: break;
	}
}

} // namespace tdsbpf
