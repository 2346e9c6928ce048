/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Event records: the common header of every record, the flow's event numbers,
 * and the TCP-level events (open, close, reset, periodic counters).
 *
 * A part of walk.h, included by it in order; include walk.h, not this.
 */
#ifndef TDSBPF_WALK_EMIT_H
#define TDSBPF_WALK_EMIT_H

#ifndef TDSBPF_WALK_H
#error "include tdsbpf/walk.h, not its parts"
#endif

TDSBPF_INLINE void tdsbpf_fill_base(struct tdsbpf_walk *w, struct tdsbpf_event *ev, __u8 kind)
{
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->ts_ns = w->p->now;
	__builtin_memcpy(&ev->key, w->key, sizeof(ev->key));
	ev->ifindex = w->p->ifindex;
	ev->kind = kind;
	ev->dir = w->l4->dir;
	ev->tcp_flags = w->l4->flags;
	ev->hook = w->p->hook;
	ev->seq = w->l4->seq;
	ev->ack = w->l4->ack;
	ev->payload_len = w->l4->plen;
	ev->window = w->l4->window;
	if (w->flow && w->flow->midstream)
		ev->flags |= TDSBPF_F_MIDSTREAM;
}

/*
 * The next number of the flow's events, taken whether or not the record
 * fits in the ring buffer (atomic: both directions of a flow can be on two
 * CPUs at once). 0 without flow state.
 */
TDSBPF_INLINE __u32 tdsbpf_next_seq(struct tdsbpf_walk *w)
{
	if (!w->flow)
		return 0;
	return __sync_fetch_and_add(&w->flow->ev_seq, 1) + 1;
}

/* ---- Routine work counted in the flow entry (struct tdsbpf_work) -------- */

/*
 * A TDSBPF_EV_WORK record of what the flow counted (ev: a whole event
 * record), and the count started over; the pairing state stays. Also used
 * by user space on the flows still open at the end of a run.
 */
TDSBPF_INLINE void tdsbpf_work_record(struct tdsbpf_flow *f, const struct tdsbpf_flow_key *key, struct tdsbpf_event *ev)
{
	struct tdsbpf_work *k = &f->work;
	__u64 pending_ns;
	__u8 flags;

	__builtin_memset(ev, 0, sizeof(*ev));
	__builtin_memcpy(&ev->key, key, sizeof(ev->key));
	ev->kind = TDSBPF_EV_WORK;
	ev->hook = f->d[0].point_hook;
	ev->ifindex = f->d[0].point_ifindex;
	if (f->midstream)
		ev->flags |= TDSBPF_F_MIDSTREAM;
	k->flags &= TDSBPF_WORK_ROWS | TDSBPF_WORK_PENDING | TDSBPF_WORK_TLS | TDSBPF_WORK_IN_REQUEST;
	if (f->tls_client_run)
		k->flags |= TDSBPF_WORK_CLIENT_RUN;
	if (f->d[TDSBPF_DIR_C2S].in_msg)
		k->flags |= TDSBPF_WORK_IN_C2S;
	if (f->d[TDSBPF_DIR_S2C].in_msg)
		k->flags |= TDSBPF_WORK_IN_S2C;
	__builtin_memcpy(&ev->u.work, k, sizeof(*k));
	ev->ts_ns = k->last_c2s_ns > k->last_s2c_ns ? k->last_c2s_ns : k->last_s2c_ns;
	/* the counts start over; the pairing state stays */
	pending_ns = k->pending_ns;
	flags = k->flags & (TDSBPF_WORK_PENDING | TDSBPF_WORK_TLS | TDSBPF_WORK_IN_REQUEST);
	__builtin_memset(k, 0, sizeof(*k));
	k->pending_ns = pending_ns;
	k->flags = flags;
}

/*
 * Sends what the flow counted (before any other event of the flow, so that
 * user space applies the counts in order). A record the ring buffer has no
 * room for is lost, its number taken: user space sees the gap.
 */
TDSBPF_NOINLINE void tdsbpf_flush_work(struct tdsbpf_walk *w)
{
	struct tdsbpf_flow *f = w->flow;
	struct tdsbpf_event *ev;
	__u32 seq;

	if (!f || !f->work.events)
		return;
	seq = __sync_fetch_and_add(&f->ev_seq, 1) + 1;
	ev = tdsbpf_reserve_event(w->p);
	if (!ev) {
		tdsbpf_count(w->p, TDSBPF_CNT_RINGBUF_DROPS);
		__builtin_memset(&f->work, 0, sizeof(f->work));
		f->quiet = 0;
		return;
	}
	tdsbpf_work_record(f, w->key, ev);
	ev->flow_seq = seq;
	tdsbpf_submit(w->p, ev, 0);
}

/*
 * Before an event whose handling in user space reads or changes the work's
 * state (a TDS packet's, a TLS record's, an SMP frame's, a pending DONE's, a
 * FIN or a RST): what was counted goes first, and, with end, the counting
 * ends (user space takes the pairing over). The periodic counters send it
 * too, without ending it; the other TCP events (keep-alives,
 * retransmissions, windows) need neither.
 */
TDSBPF_INLINE void tdsbpf_work_before(struct tdsbpf_walk *w, int end)
{
	if (!w->flow)
		return;
	if (w->flow->work.events)
		tdsbpf_flush_work(w);
	if (end)
		w->flow->quiet = 0;
}

TDSBPF_INLINE struct tdsbpf_event *tdsbpf_begin(struct tdsbpf_walk *w, __u8 kind)
{
	__u32 seq = tdsbpf_next_seq(w);
	struct tdsbpf_event *ev = tdsbpf_reserve_event(w->p);

	if (!ev) {
		tdsbpf_count(w->p, TDSBPF_CNT_RINGBUF_DROPS);
		return 0;
	}
	tdsbpf_fill_base(w, ev, kind);
	ev->flow_seq = seq;
	return ev;
}

/* An event with nothing but the TCP facts. */
TDSBPF_NOINLINE void tdsbpf_emit_tcp(struct tdsbpf_walk *w, __u8 kind, int urgent)
{
	struct tdsbpf_event *ev = tdsbpf_begin(w, kind);

	if (ev)
		tdsbpf_submit(w->p, ev, urgent);
}

/*
 * A RST, with its IP TTL and the TTL of the packet before it from the same
 * side: a device on the path that injects a RST rarely sits as many hops
 * away as the peer.
 */
TDSBPF_NOINLINE void tdsbpf_emit_rst(struct tdsbpf_walk *w, __u32 usual_ttl)
{
	struct tdsbpf_event *ev = tdsbpf_begin(w, TDSBPF_EV_TCP_RST);

	if (!ev)
		return;
	ev->u.tcp.ttl = w->l4->ttl;
	ev->u.tcp.usual_ttl = (__u8)usual_ttl;
	tdsbpf_submit(w->p, ev, 1);
}

/* A SYN or SYN+ACK: with the local socket's cgroup when it leaves this host. */
TDSBPF_NOINLINE void tdsbpf_emit_open(struct tdsbpf_walk *w, __u8 kind)
{
	struct tdsbpf_event *ev = tdsbpf_begin(w, kind);

	if (!ev)
		return;
	ev->u.tcp.cgroup_id = tdsbpf_cgroup_id(w->p);
	tdsbpf_submit(w->p, ev, 1);
}

TDSBPF_NOINLINE void tdsbpf_emit_stats(struct tdsbpf_walk *w, __u8 final)
{
	struct tdsbpf_flow *f = w->flow;
	struct tdsbpf_event *ev;
	int i;

	if (!f)
		return;
	tdsbpf_work_before(w, 0);
	ev = tdsbpf_begin(w, TDSBPF_EV_FLOW_STATS);
	if (!ev)
		return;
	for (i = 0; i < 2; i++) {
		ev->u.stats.bytes[i] = f->d[i].bytes;
		ev->u.stats.packets[i] = f->d[i].packets;
		ev->u.stats.retrans[i] = f->d[i].retrans;
		ev->u.stats.keepalives[i] = f->d[i].keepalives;
		ev->u.stats.zero_windows[i] = f->d[i].zero_windows;
		ev->u.stats.duplicates[i] = f->d[i].dups;
		ev->u.stats.largest[i] = f->d[i].largest;
	}
	ev->u.stats.first_ns = f->first_ns;
	ev->u.stats.final = final;
	f->last_flush_ns = w->p->now;
	tdsbpf_submit(w->p, ev, final);
}

#endif /* TDSBPF_WALK_EMIT_H */
