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
