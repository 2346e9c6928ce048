/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * TCP: the per-flow state machine of one segment (handshake, data, FIN, RST,
 * keep-alives, windows), which hands data segments to the framing walk.
 *
 * A part of walk.h, included by it in order; include walk.h, not this.
 */
#ifndef TDSBPF_WALK_TCP_H
#define TDSBPF_WALK_TCP_H

#ifndef TDSBPF_WALK_H
#error "include tdsbpf/walk.h, not its parts"
#endif

TDSBPF_INLINE void tdsbpf_close_flow(struct tdsbpf_walk *w)
{
	tdsbpf_emit_stats(w, 1);
	w->flow->state = TDSBPF_TCP_CLOSED;
	w->flow = 0;
}

/* Segments of a flow we track: the TCP part of the story. */
TDSBPF_NOINLINE void tdsbpf_tcp(struct tdsbpf_walk *w)
{
	struct tdsbpf_flow *f = w->flow;
	__u8 dir = w->l4->dir & 1;
	__u8 other = dir ^ 1;
	struct tdsbpf_dir_state *ds = &f->d[dir];
	struct tdsbpf_dir_state *os = &f->d[other];
	__u8 fl = w->l4->flags;
	__u32 usual_ttl;
	__u32 plen = w->l4->plen;
	__u32 seq = w->l4->seq;
	__u32 skip = 0;

	if (ds->point_hook != w->p->hook || ds->point_ifindex != w->p->ifindex) {
		if (ds->point_hook && tdsbpf_seen_before(w->l4, ds)) {
			ds->dups++;
			w->sc->seen_twice = 1;
			return;
		}
		/* this side's first packet, or one seen here first: its point moves here */
		ds->point_hook = w->p->hook;
		ds->point_ifindex = w->p->ifindex;
	}
	/* a close: what the flow counted goes before it */
	if (fl & (TDSBPF_TCP_FIN | TDSBPF_TCP_RST))
		tdsbpf_work_before(w, 1);
	ds->packets++;
	ds->bytes += plen;
	if (plen > ds->largest)
		ds->largest = (__u16)(plen > 0xffff ? 0xffff : plen);
	usual_ttl = ds->ttl;
	ds->ttl = w->l4->ttl;
	tdsbpf_note_ack(ds, w->l4);

	if (fl & TDSBPF_TCP_RST) {
		tdsbpf_emit_rst(w, usual_ttl);
		tdsbpf_close_flow(w);
		return;
	}

	if (fl & TDSBPF_TCP_SYN) {
		if (!(fl & TDSBPF_TCP_ACK)) {
			tdsbpf_emit_open(w, TDSBPF_EV_TCP_SYN);
			f->state = TDSBPF_TCP_SYN_SENT;
			f->syn_seq = seq;
		} else {
			tdsbpf_emit_open(w, TDSBPF_EV_TCP_SYNACK);
			if (f->state < TDSBPF_TCP_SYN_RCVD)
				f->state = TDSBPF_TCP_SYN_RCVD;
		}
		ds->next_seq = seq + 1;
		ds->seq_valid = 1;
		ds->next_frame = seq + 1;
		ds->synced = 1;
		ds->carry_len = 0;
		return;
	}

	/* the advertised window: report when it closes */
	if (w->l4->window == 0) {
		if (!ds->zero_window) {
			ds->zero_window = 1;
			ds->zero_windows++;
			tdsbpf_emit_tcp(w, TDSBPF_EV_TCP_ZERO_WINDOW, 1);
		}
	} else {
		ds->zero_window = 0;
	}

	/* keep-alive: 0 or 1 byte one below the next expected sequence */
	if (plen <= 1 && !(fl & TDSBPF_TCP_FIN) && ds->seq_valid && seq == ds->next_seq - 1) {
		ds->keepalives++;
		ds->ka_pending = 1;
		tdsbpf_emit_tcp(w, TDSBPF_EV_TCP_KEEPALIVE, 0);
		return;
	}

	if (plen == 0 && !(fl & TDSBPF_TCP_FIN)) {
		if (!(fl & TDSBPF_TCP_ACK))
			return;
		if (f->state == TDSBPF_TCP_SYN_RCVD && dir == TDSBPF_DIR_C2S && os->seq_valid &&
		    w->l4->ack == os->next_seq) {
			f->state = TDSBPF_TCP_ESTABLISHED;
			tdsbpf_emit_tcp(w, TDSBPF_EV_TCP_HANDSHAKE_ACK, 1);
		} else if (os->ka_pending && w->l4->ack == os->next_seq) {
			os->ka_pending = 0;
			tdsbpf_emit_tcp(w, TDSBPF_EV_TCP_KEEPALIVE_ACK, 0);
		} else if (os->fin_seen && !os->fin_acked && w->l4->ack == os->fin_seq + 1) {
			os->fin_acked = 1;
			tdsbpf_emit_tcp(w, TDSBPF_EV_TCP_CLOSE_ACK, 1);
			if (ds->fin_seen && ds->fin_acked)
				tdsbpf_close_flow(w);
		}
		return;
	}

	if (plen) {
		if (f->state == TDSBPF_TCP_SYN_RCVD && dir == TDSBPF_DIR_C2S)
			f->state = TDSBPF_TCP_ESTABLISHED;
		if (ds->seq_valid && tdsbpf_seq_before(seq, ds->next_seq)) {
			__u32 seen = ds->next_seq - seq;
			struct tdsbpf_event *ev;

			ds->retrans++;
			ev = tdsbpf_begin(w, TDSBPF_EV_TCP_RETRANS);
			if (ev) {
				ev->u.tcp.retrans_bytes = seen < plen ? seen : plen;
				tdsbpf_submit(w->p, ev, 0);
			}
			skip = seen < plen ? seen : plen;
		}
		if (skip < plen) {
			w->sc->skip = skip;
			tdsbpf_walk_frames(w);
		}
		if (!ds->seq_valid || tdsbpf_seq_before(ds->next_seq, seq + plen)) {
			ds->next_seq = seq + plen;
			ds->seq_valid = 1;
		}
	}

	if (fl & TDSBPF_TCP_FIN) {
		if (!ds->fin_seen || ds->fin_seq != seq + plen) {
			ds->fin_seen = 1;
			ds->fin_seq = seq + plen;
			tdsbpf_emit_tcp(w, TDSBPF_EV_TCP_FIN, 1);
		}
		ds->next_seq = seq + plen + 1;
		ds->seq_valid = 1;
		if (os->fin_seen && (fl & TDSBPF_TCP_ACK) && w->l4->ack == os->fin_seq + 1)
			os->fin_acked = 1;
	}
}

#endif /* TDSBPF_WALK_TCP_H */
