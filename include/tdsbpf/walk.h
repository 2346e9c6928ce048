/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * From a link-layer frame to events: Ethernet/802.1Q, IPv4/IPv6 and TCP,
 * the per-flow TCP state, and the framing walk that finds every TDS packet,
 * SMP frame and TLS record header in a TCP stream.
 *
 * Shared by the packet programs and the host (offline reader, tests). The
 * including file defines, before including this header:
 *
 *   struct tdsbpf_pkt {            // one frame
 *       void *data, *data_end;      // directly readable bytes (link header first)
 *       __u32 pkt_len;              // whole frame length (may exceed data_end - data)
 *       __u64 now;                  // timestamp for events
 *       __u32 ifindex;
 *       __u8 hook;                  // enum tdsbpf_hook
 *       ...anything else the hooks need
 *   };
 *   int  tdsbpf_load(p, off, dst, len);         // copy bytes (see parse.h)
 *   int  tdsbpf_pull(p, len);                   // make len bytes directly readable, 0 on success
 *   int  tdsbpf_is_server_port(p, port);        // port (host order) is a SQL Server port
 *   void tdsbpf_follow_port(p, port);           // a server routed its client to this port
 *                                               // (--follow-redirects: trace it from now on)
 *   int  tdsbpf_follow_browser(p);              // SQL Server Browser datagrams are wanted
 *   void tdsbpf_browser_port(p, port);          // the Browser named this TCP port: trace it
 *   void tdsbpf_browser_asked(p, key);          // a Browser request from key's client end
 *   int  tdsbpf_browser_was_asked(p, key);      // ... was seen lately (key: server address zero)
 *   struct tdsbpf_browser_event *tdsbpf_reserve_browser(p);
 *   int  tdsbpf_capturing(p);                   // packets are copied out (--write-pcap)
 *   void tdsbpf_capture(p, key, dir);           // a copy of this packet (p->now may be 0)
 *   __u64 tdsbpf_cgroup_id(p);                  // the local socket's cgroup at egress, else 0
 *   struct tdsbpf_flow *tdsbpf_flow_get(p, key);
 *   struct tdsbpf_flow *tdsbpf_flow_create(p, key);   // new zeroed state (replacing any)
 *   struct tdsbpf_event *tdsbpf_reserve_event(p);
 *   struct tdsbpf_ntlm_event *tdsbpf_reserve_ntlm(p);
 *   void tdsbpf_submit(p, void *record, int urgent);
 *   void tdsbpf_count(p, enum tdsbpf_counter c);
 *   void tdsbpf_discard(p, void *record);        // drop a reserved record
 *   struct tdsbpf_scratch *tdsbpf_scratch(p);   // per-CPU working memory (flow.h)
 *   __u64 tdsbpf_flush_interval_ns(p);           // 0 = no periodic counters
 *   long tdsbpf_loop(n, long (*fn)(__u32, void *), void *ctx);  // bpf_loop semantics
 *   void tdsbpf_stamp(p);                        // set p->now (called only for SQL Server packets
 *                                                // that take the full walk)
 *   __u64 tdsbpf_coarse_now(p);                  // a cheap clock: at most TDSBPF_CLOCK_SLACK_NS
 *                                                // behind what tdsbpf_stamp would set now
 *
 * and then calls tdsbpf_process(p) for each frame.
 */
#ifndef TDSBPF_WALK_H
#define TDSBPF_WALK_H

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "events.h"
#include "flow.h"
#include "parse.h"

#ifndef TDSBPF_NOINLINE
#define TDSBPF_NOINLINE static __attribute__((noinline))
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define tdsbpf_ntohs(x) __builtin_bswap16(x)
#define tdsbpf_ntohl(x) __builtin_bswap32(x)
#else
#define tdsbpf_ntohs(x) (x)
#define tdsbpf_ntohl(x) (x)
#endif

#define TDSBPF_TCP_FIN 0x01
#define TDSBPF_TCP_SYN 0x02
#define TDSBPF_TCP_RST 0x04
#define TDSBPF_TCP_PSH 0x08
#define TDSBPF_TCP_ACK 0x10


/* Everything the per-frame handlers need about the current segment. */
struct tdsbpf_walk {
	struct tdsbpf_pkt *p;
	struct tdsbpf_flow *flow;
	const struct tdsbpf_flow_key *key;
	struct tdsbpf_l4 *l4;        /* in the scratch area */
	struct tdsbpf_scratch *sc;
};

TDSBPF_INLINE int tdsbpf_seq_before(__u32 a, __u32 b)
{
	return (__s32)(a - b) < 0;
}

/* ---- Second sightings --------------------------------------------------- */

/*
 * One packet can pass several traced points: on the loopback it leaves
 * (tc egress) and comes back in (XDP) on the same interface; between two
 * traced interfaces (both ends of a veth pair, a port and its bridge, a
 * router's two sides) it is seen on each. The walk counts it once: each
 * side of a flow has a point (hook and interface) where its packets show
 * first, the point of its first packet. A packet seen at another point is
 * a second sighting when the flow has already counted everything in it:
 * every sequence number it carries (a SYN or FIN counts for one) and an
 * ACK at least as new as the highest this side sent. It changes nothing
 * and is counted apart (dups). Anything newer seen elsewhere first moves
 * the point there (the path changed, or a hook was attached late).
 *
 * A resend at the point itself is a retransmission, as before: a packet
 * is not seen twice at one hook, and a sender resends from where it sent.
 * A RST is never a second sighting: the first one ends the flow.
 */
TDSBPF_INLINE int tdsbpf_seen_before(const struct tdsbpf_l4 *l4, const struct tdsbpf_dir_state *ds)
{
	__u8 fl = l4->flags;
	__u32 end = l4->seq + l4->plen + ((fl & (TDSBPF_TCP_SYN | TDSBPF_TCP_FIN)) ? 1 : 0);

	if (!ds->seq_valid || (fl & TDSBPF_TCP_RST) || tdsbpf_seq_before(ds->next_seq, end))
		return 0;
	if ((fl & TDSBPF_TCP_ACK) && (!ds->ack_valid || tdsbpf_seq_before(ds->ack_hi, l4->ack)))
		return 0;
	return 1;
}

/*
 * A packet of a closed flow seen at another point than this side's first,
 * that carries nothing newer than what the flow counted: the closing
 * packet (its RST included) or its last ACK seen a second time.
 */
TDSBPF_INLINE int tdsbpf_seen_closing(const struct tdsbpf_l4 *l4, const struct tdsbpf_dir_state *ds)
{
	__u8 fl = l4->flags;
	__u32 end = l4->seq + l4->plen + ((fl & (TDSBPF_TCP_SYN | TDSBPF_TCP_FIN)) ? 1 : 0);

	if (!ds->seq_valid || tdsbpf_seq_before(ds->next_seq, end))
		return 0;
	if ((fl & TDSBPF_TCP_ACK) && (!ds->ack_valid || tdsbpf_seq_before(ds->ack_hi, l4->ack)))
		return 0;
	return 1;
}

/* The highest ACK this side sent, for tdsbpf_seen_before. */
TDSBPF_INLINE void tdsbpf_note_ack(struct tdsbpf_dir_state *ds, const struct tdsbpf_l4 *l4)
{
	if ((l4->flags & TDSBPF_TCP_ACK) && (!ds->ack_valid || tdsbpf_seq_before(ds->ack_hi, l4->ack))) {
		ds->ack_hi = l4->ack;
		ds->ack_valid = 1;
	}
}

/* ---- Event records -------------------------------------------------- */

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
	}
	ev->u.stats.first_ns = f->first_ns;
	ev->u.stats.final = final;
	f->last_flush_ns = w->p->now;
	tdsbpf_submit(w->p, ev, final);
}

/* ---- Frames ------------------------------------------------------------ */

/*
 * Copies up to want bytes at rel of this segment into sc->b for a parser
 * (at most TDSBPF_BUF - 1) and sets sc->n. Returns the number copied.
 */
TDSBPF_INLINE __u32 tdsbpf_fill(struct tdsbpf_walk *w, __u32 rel, __u32 want)
{
	struct tdsbpf_scratch *sc = w->sc;
	__u32 plen = w->l4->plen;
	__u32 n;

	sc->n = 0;
	if (rel >= plen)
		return 0;
	n = plen - rel;
	if (n > want)
		n = want;
	if (n > TDSBPF_BUF - 1)
		n = TDSBPF_BUF - 1;
	n &= TDSBPF_BUF_MASK;
	if (n == 0 || tdsbpf_load(w->p, w->l4->poff + rel, sc->b, n) < 0)
		return 0;
	sc->n = n;
	return n;
}

/* LOGIN7: the fixed part, then the SSPI blob and the feature block it points at. */
TDSBPF_INLINE void tdsbpf_login7_details(struct tdsbpf_walk *w, struct tdsbpf_event *ev,
					 __u32 body_rel, __u32 body_len)
{
	struct tdsbpf_scratch *sc = w->sc;
	struct tdsbpf_login7 *l7 = &ev->u.tds.d.login7;
	__u32 ext, ib;
	__u8 b[4];

	tdsbpf_fill(w, body_rel, body_len);
	if (tdsbpf_parse_login7(sc) < 0) {
		ev->flags |= TDSBPF_F_TRUNCATED;
		return;
	}
	__builtin_memcpy(l7, &sc->out.login7, sizeof(*l7));
	ext = sc->res[0];
	if (l7->tds_version < 0x72000000 && w->flow)
		w->flow->tds71 = 1;
	if (l7->sspi_length) {
		if (tdsbpf_fill(w, body_rel + l7->sspi_offset, l7->sspi_length) >= 8) {
			sc->arg = 0;
			l7->sspi_kind = (__u8)tdsbpf_classify_sspi(sc);
			l7->ntlm_type = (__u8)sc->res[1];
		} else {
			l7->sspi_kind = TDSBPF_SSPI_UNKNOWN;
			ev->flags |= TDSBPF_F_TRUNCATED;
		}
	}
	/* ibExtension points at a DWORD holding the offset of the FeatureExt block */
	ib = ext >> 16;
	if ((l7->option_flags3 & 0x10) && (ext & 0xffff) >= 4 && body_rel + ib + 4 <= w->l4->plen &&
	    tdsbpf_load(w->p, w->l4->poff + body_rel + ib, b, 4) == 0) {
		ib = tdsbpf_le32(b);
		if (ib < body_len && tdsbpf_fill(w, body_rel + ib, body_len - ib) > 0) {
			sc->out.login7.flags = 0;
			tdsbpf_parse_features(sc);
			l7->flags |= sc->out.login7.flags;
		}
	}
}

/*
 * Details of a TDS packet whose body starts at body_rel of this segment.
 * first: this packet starts a message (so its body starts with the
 * message's own header: ALL_HEADERS, the token stream, the LOGIN7 block).
 */
TDSBPF_NOINLINE void tdsbpf_tds_details(struct tdsbpf_walk *w, struct tdsbpf_event *ev,
					__u32 body_rel, __u32 body_len, __u32 first)
{
	struct tdsbpf_scratch *sc = w->sc;
	struct tdsbpf_tds *t = &ev->u.tds;
	__u8 type = t->type;
	__u32 n;

	if (body_len == 0 || body_rel >= w->l4->plen)
		return;
	if (w->l4->plen - body_rel < body_len)
		ev->flags |= TDSBPF_F_TRUNCATED;
	__builtin_memset(&sc->out, 0, sizeof(sc->out));

	/* TLS handshake records travel in PRELOGIN (and, before 7.2, reply) packets */
	if (type == TDS_PRELOGIN || type == TDS_REPLY) {
		n = tdsbpf_fill(w, body_rel, body_len);
		if (n >= 5 && tdsbpf_tls_header_valid(sc->b)) {
			tdsbpf_parse_tls(sc);
			t->detail = TDSBPF_D_TLS;
			__builtin_memcpy(&t->d, &sc->out, sizeof(t->d));
			return;
		}
	}
	if (!first)
		return;
	/* the server answers a PRELOGIN with a type-4 packet holding a PRELOGIN */
	if (type == TDS_REPLY && w->flow && w->flow->prelogin_pending) {
		w->flow->prelogin_pending = 0;
		type = TDS_PRELOGIN;
	}
	switch (type) {
	case TDS_PRELOGIN:
		if (w->flow)
			w->flow->prelogin_pending = w->l4->dir == TDSBPF_DIR_C2S;
		t->detail = TDSBPF_D_PRELOGIN;
		tdsbpf_fill(w, body_rel, body_len);
		if (tdsbpf_parse_prelogin(sc) < 0)
			ev->flags |= TDSBPF_F_TRUNCATED;
		break;
	case TDS_LOGIN7:
		/*
		 * Some drivers send the SSPI continuation (the NTLM AUTHENTICATE,
		 * a SPNEGO response) in a packet typed LOGIN7. Its body is a bare
		 * SSPI blob; a LOGIN7's starts with its own length.
		 */
		n = tdsbpf_fill(w, body_rel, 16);
		if (n >= 8 && tdsbpf_le32(sc->b) != body_len && tdsbpf_sspi_blob(sc->b))
			goto sspi;
		t->detail = TDSBPF_D_LOGIN7;
		tdsbpf_login7_details(w, ev, body_rel, body_len);
		return;
	case TDS_REPLY:
		t->detail = TDSBPF_D_REPLY;
		sc->arg = w->flow && w->flow->tds71;
		tdsbpf_parse_reply(sc);
		if ((sc->out.reply.tokens & TDSBPF_TOK_LOGINACK) && w->flow)
			w->flow->tds71 = sc->out.reply.loginack_tds_version < 0x72000000;
		/* an ENVCHANGE routing from the server: its client is about to
		 * connect to that port, SYN first */
		if ((sc->out.reply.tokens & TDSBPF_TOK_ROUTING) && sc->out.reply.routing_port &&
		    w->l4->dir == TDSBPF_DIR_S2C)
			tdsbpf_follow_port(w->p, sc->out.reply.routing_port);
		break;
	case TDS_SSPI:
	sspi:
		t->detail = TDSBPF_D_SSPI;
		tdsbpf_fill(w, body_rel, body_len);
		sc->arg = 0;
		sc->out.sspi.kind = (__u8)tdsbpf_classify_sspi(sc);
		sc->out.sspi.ntlm_type = (__u8)sc->res[1];
		sc->out.sspi.length = body_len;
		break;
	case TDS_SQL_BATCH:
	case TDS_RPC:
		t->detail = TDSBPF_D_REQUEST;
		tdsbpf_fill(w, body_rel, 32);
		sc->arg = type;
		sc->end = body_len;
		tdsbpf_parse_request(sc);
		break;
	default:
		return;
	}
	__builtin_memcpy(&t->d, &sc->out, sizeof(t->d));
}

/* Copies one NTLM name (rel: in this segment) into dst; returns its length. */
TDSBPF_INLINE __u16 tdsbpf_ntlm_name(struct tdsbpf_walk *w, __u32 rel, __u32 len, __u8 *dst)
{
	/* an even number of bytes, at most 62: whole UTF-16 characters */
	if (len > TDSBPF_NTLM_NAME_MAX - 2)
		len = TDSBPF_NTLM_NAME_MAX - 2;
	len &= TDSBPF_NTLM_NAME_MAX - 2;
	if (len == 0 || rel >= w->l4->plen || len > w->l4->plen - rel)
		return 0;
	if (tdsbpf_load(w->p, w->l4->poff + rel, dst, len) < 0)
		return 0;
	return (__u16)len;
}

/*
 * NTLM AUTHENTICATE in a client SSPI packet: emitted as the larger record
 * with the names, in place of the plain TDS event. Returns 0 when it took
 * the packet over (emitted, or counted as dropped).
 */
TDSBPF_NOINLINE int tdsbpf_emit_ntlm(struct tdsbpf_walk *w, const struct tdsbpf_event *tds,
				     __u32 body_rel, __u32 body_len)
{
	struct tdsbpf_scratch *sc = w->sc;
	struct tdsbpf_ntlm_event *ev;
	__u32 at, f;

	if (tds->u.tds.detail != TDSBPF_D_SSPI || tds->u.tds.d.sspi.ntlm_type != 3)
		return -1;
	/* sc->b still holds the SSPI body: find the AUTHENTICATE's fields */
	if (tdsbpf_fill(w, body_rel, body_len) < 12)
		return -1;
	sc->arg = 0;
	if (tdsbpf_classify_sspi(sc) != TDSBPF_SSPI_NTLM)
		return -1;
	at = sc->res[0];
	sc->arg = at;
	if (tdsbpf_parse_ntlm_auth(sc) < 0)
		return -1;
	ev = tdsbpf_reserve_ntlm(w->p);
	if (!ev) {
		tdsbpf_count(w->p, TDSBPF_CNT_RINGBUF_DROPS);
		return 0;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	__builtin_memcpy(&ev->base, tds, sizeof(ev->base));
	ev->base.kind = TDSBPF_EV_NTLM_AUTH; /* and the TDS event's flow_seq */
	ev->negotiate_flags = sc->res[3];
	ev->encoding = (sc->res[3] & 0x01) ? TDSBPF_NTLM_UNICODE : 0;
	f = sc->res[0];
	ev->domain_len = tdsbpf_ntlm_name(w, body_rel + at + (f & 0xffff), f >> 16, ev->domain);
	f = sc->res[1];
	ev->user_len = tdsbpf_ntlm_name(w, body_rel + at + (f & 0xffff), f >> 16, ev->user);
	f = sc->res[2];
	ev->workstation_len = tdsbpf_ntlm_name(w, body_rel + at + (f & 0xffff), f >> 16,
					       ev->workstation);
	tdsbpf_submit(w->p, ev, 1);
	return 0;
}

/*
 * The DONE token that ends a reply packet, whose end is at end (in this
 * segment). Returns 0 and fills sc->out.reply.done_* / sc->res[0].
 */
TDSBPF_INLINE int tdsbpf_tail_done(struct tdsbpf_walk *w, __u32 end)
{
	if (end < 13 || end > w->l4->plen)
		return -1;
	if (tdsbpf_fill(w, end - 13, 13) < 13)
		return -1;
	w->sc->arg = w->flow && w->flow->tds71;
	return tdsbpf_parse_tail_done(w->sc);
}

/*
 * One TDS packet whose header (hdr) starts at rel of this segment (rel is
 * negative when the header began in the previous segment). smp: the SMP
 * header it came in, or 0.
 */
TDSBPF_NOINLINE void tdsbpf_emit_tds(struct tdsbpf_walk *w, const __u8 *hdr, __s32 rel,
				     const __u8 *smp)
{
	struct tdsbpf_dir_state *ds = &w->flow->d[w->l4->dir & 1];
	struct tdsbpf_event *ev;
	struct tdsbpf_tds *t;
	__s32 body_rel = rel + 8;
	__s32 end;
	__u32 body_len;
	__u32 first;

	ev = tdsbpf_begin(w, TDSBPF_EV_TDS);
	if (!ev)
		return;
	t = &ev->u.tds;
	t->type = hdr[0];
	t->status = hdr[1];
	t->length = tdsbpf_be16(hdr + 2);
	t->spid = tdsbpf_be16(hdr + 4);
	t->packet_id = hdr[6];
	t->window = hdr[7];
	ev->frame_offset = rel < 0 ? 0 : (__u32)rel;
	if (rel < 0)
		ev->flags |= TDSBPF_F_CARRIED;
	body_len = t->length - 8;
	if (smp) {
		ev->flags |= TDSBPF_F_IN_SMP;
		t->smp_flags = smp[1];
		t->smp_sid = tdsbpf_le16(smp + 2);
		t->smp_seq = tdsbpf_le32(smp + 8);
		t->smp_window = tdsbpf_le32(smp + 12);
		/* interleaved MARS sessions: a message starts with packet id 1 (or 0) */
		first = hdr[6] <= 1;
	} else {
		first = !ds->in_msg;
		ds->in_msg = !(hdr[1] & TDS_STATUS_EOM);
	}
	if (body_rel >= 0 && (__u32)body_rel < w->l4->plen)
		tdsbpf_tds_details(w, ev, (__u32)body_rel, body_len, first);
	else if (body_len)
		ev->flags |= TDSBPF_F_TRUNCATED;

	/* the final DONE of a reply packet: here if it ends in this segment */
	if (t->type == TDS_REPLY && (t->status & TDS_STATUS_EOM) && w->l4->dir == TDSBPF_DIR_S2C) {
		end = rel + (__s32)t->length;
		if (end <= (__s32)w->l4->plen) {
			if (end >= 13 && tdsbpf_tail_done(w, (__u32)end) == 0) {
				t->tail_token = (__u8)w->sc->res[0];
				t->tail_done_status = w->sc->out.reply.done_status;
				t->tail_done_rows = w->sc->out.reply.done_rows;
			}
		} else {
			ds->tail_pending = 1;
			ds->tail_end = w->l4->seq + (__u32)end;
		}
	}
	if ((t->type == TDS_SSPI || t->detail == TDSBPF_D_SSPI) && w->l4->dir == TDSBPF_DIR_C2S && body_rel >= 0 &&
	    tdsbpf_emit_ntlm(w, ev, (__u32)body_rel, body_len) == 0) {
		tdsbpf_discard(w->p, ev);
		return;
	}
	tdsbpf_submit(w->p, ev, t->type != TDS_REPLY && t->type != TDS_SQL_BATCH && t->type != TDS_RPC);
}

TDSBPF_NOINLINE void tdsbpf_emit_tls(struct tdsbpf_walk *w, const __u8 *hdr, __s32 rel)
{
	struct tdsbpf_event *ev = tdsbpf_begin(w, TDSBPF_EV_TLS);

	if (!ev)
		return;
	ev->frame_offset = rel < 0 ? 0 : (__u32)rel;
	__builtin_memset(&w->sc->out, 0, sizeof(w->sc->out));
	if (rel >= 0 && tdsbpf_fill(w, (__u32)rel, 5 + (__u32)tdsbpf_be16(hdr + 3)) >= 5 &&
	    tdsbpf_parse_tls(w->sc) == 0) {
		__builtin_memcpy(&ev->u.tls, &w->sc->out.tls, sizeof(ev->u.tls));
	} else {
		if (rel < 0)
			ev->flags |= TDSBPF_F_CARRIED;
		ev->u.tls.content_type = hdr[0];
		ev->u.tls.record_version = tdsbpf_be16(hdr + 1);
		ev->u.tls.record_length = tdsbpf_be16(hdr + 3);
	}
	tdsbpf_submit(w->p, ev, hdr[0] != 23);
}

TDSBPF_NOINLINE void tdsbpf_emit_smp(struct tdsbpf_walk *w, const __u8 *hdr, __s32 rel)
{
	struct tdsbpf_event *ev = tdsbpf_begin(w, TDSBPF_EV_SMP);

	if (!ev)
		return;
	ev->frame_offset = rel < 0 ? 0 : (__u32)rel;
	ev->u.smp.flags = hdr[1];
	ev->u.smp.sid = tdsbpf_le16(hdr + 2);
	ev->u.smp.length = tdsbpf_le32(hdr + 4);
	ev->u.smp.seq = tdsbpf_le32(hdr + 8);
	ev->u.smp.window = tdsbpf_le32(hdr + 12);
	tdsbpf_submit(w->p, ev, 1);
}

/*
 * How many bytes of header a frame starting with these bytes needs, or 0
 * when the bytes cannot start a frame. have: bytes available in hdr.
 */
TDSBPF_INLINE __u32 tdsbpf_frame_need(const __u8 *hdr, __u32 have)
{
	if (have < 1)
		return 1;
	if (hdr[0] == SMP_SMID) {
		if (have >= 2 && hdr[1] == SMP_DATA)
			return 24;
		return 16;
	}
	if (hdr[0] >= 20 && hdr[0] <= 23)
		return 5;
	if (tdsbpf_tds_type_valid(hdr[0]))
		return 8;
	return 0;
}

/*
 * Validates and handles one frame whose first have (>= need) bytes are in
 * hdr. Returns its length on the wire, or 0 when it is not a valid frame.
 */
TDSBPF_INLINE __u32 tdsbpf_frame(struct tdsbpf_walk *w, const __u8 *hdr, __s32 rel)
{
	const __u8 *smp = 0;
	__u32 len;

	if (hdr[0] == SMP_SMID) {
		if (!tdsbpf_smp_header_valid(hdr))
			return 0;
		len = tdsbpf_le32(hdr + 4);
		if (hdr[1] != SMP_DATA) {
			tdsbpf_emit_smp(w, hdr, rel);
			return len;
		}
		if (!tdsbpf_tds_header_valid(hdr + 16))
			return 0;
		smp = hdr;
		hdr += 16;
		rel += 16;
	} else if (hdr[0] >= 20 && hdr[0] <= 23) {
		if (!tdsbpf_tls_header_valid(hdr))
			return 0;
		tdsbpf_emit_tls(w, hdr, rel);
		return 5 + (__u32)tdsbpf_be16(hdr + 3);
	} else {
		if (!tdsbpf_tds_header_valid(hdr))
			return 0;
		len = tdsbpf_be16(hdr + 2);
	}
	/* one call site for the TDS packet of both framings: verified once per caller */
	tdsbpf_emit_tds(w, hdr, rel, smp);
	return len;
}

/* Loads up to TDSBPF_FRAME_HDR bytes at rel into hdr[32]; returns how many. */
TDSBPF_INLINE __u32 tdsbpf_load_hdr(struct tdsbpf_walk *w, __u32 rel, __u8 *hdr)
{
	__u32 n = w->l4->plen - rel;

	if (rel >= w->l4->plen)
		return 0;
	if (n >= TDSBPF_FRAME_HDR) {
		if (tdsbpf_load(w->p, w->l4->poff + rel, hdr, TDSBPF_FRAME_HDR) < 0)
			return 0;
		return TDSBPF_FRAME_HDR;
	}
	n &= 31; /* hdr has room for 32 */
	if (n == 0 || n > TDSBPF_FRAME_HDR)
		return 0;
	if (tdsbpf_load(w->p, w->l4->poff + rel, hdr, n) < 0)
		return 0;
	return n;
}

TDSBPF_INLINE void tdsbpf_lose_sync(struct tdsbpf_walk *w, struct tdsbpf_dir_state *ds)
{
	ds->synced = 0;
	ds->carry_len = 0;
	ds->in_msg = 0;
	ds->tail_pending = 0;
	if (!ds->lost_sync) {
		struct tdsbpf_event *ev = tdsbpf_begin(w, TDSBPF_EV_RESYNC);

		ds->lost_sync = 1;
		if (ev) {
			ev->flags |= TDSBPF_F_LOST_SYNC;
			tdsbpf_submit(w->p, ev, 0);
		}
	}
}

/*
 * A frame header a resync may trust (stricter than the walk's checks), at
 * rel of the segment: a valid header, and when the frame it describes
 * ends inside the segment, bytes there that can start another frame.
 */
TDSBPF_INLINE int tdsbpf_resync_ok(struct tdsbpf_walk *w, const __u8 *hdr, __u32 have, __u32 rel)
{
	__u32 need = tdsbpf_frame_need(hdr, have);
	__u32 len, end;
	__u8 next[1];

	if (need == 0 || have < need)
		return 0;
	if (hdr[0] == SMP_SMID) {
		if (!tdsbpf_smp_header_valid(hdr) ||
		    (hdr[1] == SMP_DATA && !tdsbpf_tds_header_valid(hdr + 16)))
			return 0;
		len = tdsbpf_le32(hdr + 4);
	} else if (hdr[0] >= 20 && hdr[0] <= 23) {
		if (!tdsbpf_tls_header_valid(hdr))
			return 0;
		len = 5 + (__u32)tdsbpf_be16(hdr + 3);
	} else {
		if (!tdsbpf_tds_header_valid(hdr))
			return 0;
		len = tdsbpf_be16(hdr + 2);
	}
	end = rel + len;
	if (end >= w->l4->plen)
		return 1; /* ends with the segment, or in a later one */
	if (tdsbpf_load(w->p, w->l4->poff + end, next, 1) < 0)
		return 0;
	return tdsbpf_frame_need(next, 1) != 0;
}

/* The final DONE of a reply packet that began in an earlier segment. */
TDSBPF_NOINLINE void tdsbpf_pending_tail(struct tdsbpf_walk *w, struct tdsbpf_dir_state *ds)
{
	__s32 end = (__s32)(ds->tail_end - w->l4->seq);
	struct tdsbpf_event *ev;

	if (end > (__s32)w->l4->plen)
		return; /* ends in a later segment */
	ds->tail_pending = 0;
	if (end < 13 || tdsbpf_tail_done(w, (__u32)end) < 0)
		return;
	ev = tdsbpf_begin(w, TDSBPF_EV_TDS_DONE);
	if (!ev)
		return;
	ev->frame_offset = (__u32)end;
	ev->u.done.token = (__u8)w->sc->res[0];
	ev->u.done.status = w->sc->out.reply.done_status;
	ev->u.done.rows = w->sc->out.reply.done_rows;
	tdsbpf_submit(w->p, ev, 0);
}

#define TDSBPF_WALK_LOST ((__s32)0x80000000)
#define TDSBPF_WALK_KEEP ((__s32)0x7fffffff)

/*
 * A frame header split over two segments: join the part kept in carry with
 * the start of this segment and handle the frame. rel is where the frame
 * starts (-carry_len). Returns where the next frame starts, or
 * TDSBPF_WALK_LOST when the framing was lost.
 */
TDSBPF_NOINLINE __s32 tdsbpf_join_carry(struct tdsbpf_walk *w, struct tdsbpf_dir_state *ds,
					__s32 rel)
{
	__u8 *hdr = w->sc->hdr;
	__u32 k = ds->carry_len;
	__u32 plen = w->l4->plen;
	__u32 want, have, need, len;

	if (k >= TDSBPF_FRAME_HDR || rel + (__s32)k != 0) {
		tdsbpf_lose_sync(w, ds);
		return TDSBPF_WALK_LOST;
	}
	ds->carry_len = 0;
	want = TDSBPF_FRAME_HDR - k;
	if (want > plen)
		want = plen;
	want &= 31;
	/*
	 * The second half goes right after the first, loaded straight into
	 * the carry buffer (which has room for k + want <= 47 bytes): one
	 * verifier state for any k, where a byte-merging loop would fork one
	 * per value.
	 */
	if (want == 0 || want > TDSBPF_FRAME_HDR ||
	    tdsbpf_load(w->p, w->l4->poff, ds->carry + (k & 31), want) < 0) {
		tdsbpf_lose_sync(w, ds);
		return TDSBPF_WALK_LOST;
	}
	__builtin_memcpy(hdr, ds->carry, TDSBPF_FRAME_HDR);
	have = k + want;
	need = tdsbpf_frame_need(hdr, have);
	if (need == 0 || have < need) {
		/* still short (a tiny segment): keep what we have for the next one */
		if (need && have < TDSBPF_FRAME_HDR) {
			__builtin_memcpy(ds->carry, hdr, TDSBPF_FRAME_HDR);
			ds->carry_len = (__u8)have;
			return TDSBPF_WALK_KEEP; /* the frame still starts at next_frame */
		}
		tdsbpf_lose_sync(w, ds);
		return TDSBPF_WALK_LOST;
	}
	len = tdsbpf_frame(w, hdr, rel);
	if (len == 0) {
		tdsbpf_lose_sync(w, ds);
		return TDSBPF_WALK_LOST;
	}
	return rel + (__s32)len;
}

struct tdsbpf_frames {
	struct tdsbpf_walk *w;
	struct tdsbpf_dir_state *ds;
	__s32 done;  /* the walk of this segment is over (sync lost or header carried) */
};

/*
 * One frame of a segment (the cursor is w->sc->rel); returns 1 to stop.
 * The bpf_loop index is not needed: the cursor says where the frame is.
 */
static long tdsbpf_frame_step(__u32 index __attribute__((unused)), void *data)
{
	struct tdsbpf_frames *c = (struct tdsbpf_frames *)data;
	struct tdsbpf_walk *w = c->w;
	struct tdsbpf_dir_state *ds = c->ds;
	__u8 *hdr = w->sc->hdr;
	__s32 rel = w->sc->rel;
	__u32 have, need, len;

	if (rel < 0 || rel >= (__s32)w->l4->plen)
		return 1;
	have = tdsbpf_load_hdr(w, (__u32)rel, hdr);
	need = tdsbpf_frame_need(hdr, have);
	if (need == 0 || have == 0) {
		tdsbpf_lose_sync(w, ds);
		c->done = 1;
		return 1;
	}
	if (have < need) {
		/* the header continues in the next segment: keep its first part */
		have &= 31;
		if (have == 0 || have > TDSBPF_FRAME_HDR ||
		    tdsbpf_load(w->p, w->l4->poff + (__u32)rel, ds->carry, have) < 0) {
			tdsbpf_lose_sync(w, ds);
			c->done = 1;
			return 1;
		}
		ds->carry_len = (__u8)have;
		ds->next_frame = w->l4->seq + (__u32)rel;
		c->done = 1;
		return 1;
	}
	len = tdsbpf_frame(w, hdr, rel);
	if (len == 0) {
		tdsbpf_lose_sync(w, ds);
		c->done = 1;
		return 1;
	}
	w->sc->rel = rel + (__s32)len;
	return 0;
}

/*
 * Walks the frame headers of the new bytes of this segment, from skip on
 * (bytes before skip were seen already).
 */
TDSBPF_INLINE void tdsbpf_walk_frames(struct tdsbpf_walk *w)
{
	struct tdsbpf_dir_state *ds = &w->flow->d[w->l4->dir & 1];
	struct tdsbpf_frames c;
	__u8 *hdr = w->sc->hdr;
	__u32 skip = w->sc->skip;
	__u32 plen = w->l4->plen;
	__s32 rel;
	__u32 have;

	/* a reply packet that started earlier may end in this segment */
	if (ds->tail_pending)
		tdsbpf_pending_tail(w, ds);

	if (!ds->synced) {
		have = tdsbpf_load_hdr(w, skip, hdr);
		if (!tdsbpf_resync_ok(w, hdr, have, skip))
			return;
		ds->synced = 1;
		ds->next_frame = w->l4->seq + skip;
		if (ds->lost_sync) {
			struct tdsbpf_event *ev = tdsbpf_begin(w, TDSBPF_EV_RESYNC);

			ds->lost_sync = 0;
			if (ev) {
				ev->frame_offset = skip;
				tdsbpf_submit(w->p, ev, 0);
			}
		}
	}

	rel = (__s32)(ds->next_frame - w->l4->seq);

	/* the header of a frame was split: join the two halves */
	if (ds->carry_len) {
		rel = tdsbpf_join_carry(w, ds, rel);
		if (rel == TDSBPF_WALK_LOST || rel == TDSBPF_WALK_KEEP)
			return;
	}

	if (rel < (__s32)skip) {
		/* the next header lies in bytes we did not see */
		if (rel < 0) {
			tdsbpf_lose_sync(w, ds);
			return;
		}
	}
	if (rel >= (__s32)plen) {
		ds->next_frame = w->l4->seq + (__u32)rel;
		return; /* continuation segment */
	}

	c.w = w;
	c.ds = ds;
	c.done = 0;
	w->sc->rel = rel;
	tdsbpf_loop(TDSBPF_MAX_FRAMES_PER_SEGMENT, tdsbpf_frame_step, &c);
	if (c.done)
		return;
	rel = w->sc->rel;
	if (rel < (__s32)plen) {
		tdsbpf_count(w->p, TDSBPF_CNT_FRAMES_SKIPPED);
		tdsbpf_lose_sync(w, ds);
		return;
	}
	ds->next_frame = w->l4->seq + (__u32)rel;
}

/* ---- TCP ------------------------------------------------------------------ */

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
	ds->packets++;
	ds->bytes += plen;
	tdsbpf_note_ack(ds, w->l4);

	if (fl & TDSBPF_TCP_RST) {
		tdsbpf_emit_tcp(w, TDSBPF_EV_TCP_RST, 1);
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
		if (f->state == TDSBPF_TCP_SYN_RCVD && dir == TDSBPF_DIR_C2S &&
		    os->seq_valid && w->l4->ack == os->next_seq) {
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

/* ---- Frames to flows -------------------------------------------------- */

/*
 * A UDP datagram to or from the SQL Server Browser (port 1434), headers
 * checked as for TCP: returns -3 and fills l4 (dir C2S for a request,
 * the Browser's end as the server), or -1 (another UDP port), -2.
 */
TDSBPF_INLINE int tdsbpf_parse_udp(struct tdsbpf_pkt *p, struct tdsbpf_l4 *l4, __u32 off, __u32 ip_end)
{
	struct udphdr *udp = (struct udphdr *)((__u8 *)p->data + off);
	__u16 sport, dport;

	if ((void *)(udp + 1) > p->data_end)
		return -2;
	sport = tdsbpf_ntohs(udp->source);
	dport = tdsbpf_ntohs(udp->dest);
	if (dport == TDSBPF_BROWSER_PORT)
		l4->dir = TDSBPF_DIR_C2S;
	else if (sport == TDSBPF_BROWSER_PORT)
		l4->dir = TDSBPF_DIR_S2C;
	else
		return -1;
	l4->client_port = l4->dir == TDSBPF_DIR_C2S ? sport : dport;
	l4->server_port = TDSBPF_BROWSER_PORT;
	if (ip_end > p->pkt_len)
		ip_end = p->pkt_len;
	l4->poff = off + 8;
	if (l4->poff > ip_end)
		return -1;
	l4->plen = ip_end - l4->poff;
	l4->seq = 0;
	l4->ack = 0;
	l4->window = 0;
	l4->flags = 0;
	return -3;
}

/*
 * L2..L4 headers read directly (they are in the linear part of a frame or
 * pulled there); returns 0 and fills l4, or a negative value: -1 not
 * ours, -2 headers not directly readable. The addresses are copied later
 * (tdsbpf_fill_key), only for SQL Server packets.
 */
TDSBPF_INLINE int tdsbpf_parse_headers(struct tdsbpf_pkt *p, struct tdsbpf_l4 *l4)
{
	void *data = p->data;
	void *end = p->data_end;
	struct ethhdr *eth = (struct ethhdr *)data;
	__u32 off = sizeof(struct ethhdr);
	__u16 proto;
	__u32 ip_end;
	struct tcphdr *tcp;
	__u16 sport, dport;
	__u32 doff;

	if ((void *)(eth + 1) > end)
		return -2;
	proto = eth->h_proto;
	l4->vlan_valid = 0;
	l4->vlan_id = 0;
	if (proto == tdsbpf_ntohs(ETH_P_8021Q) || proto == tdsbpf_ntohs(ETH_P_8021AD)) {
		__u8 *vlan = (__u8 *)data + off;

		if ((void *)(vlan + 4) > end)
			return -2;
		l4->vlan_valid = 1;
		l4->vlan_id = ((vlan[0] & 0x0f) << 8) | vlan[1];
		proto = *(__u16 *)(vlan + 2);
		off += 4;
	}
	l4->l3off = (__u16)off;
	if (proto == tdsbpf_ntohs(ETH_P_IP)) {
		struct iphdr *ip = (struct iphdr *)((__u8 *)data + off);
		__u32 ihl;
		__u32 tot;

		if ((void *)(ip + 1) > end)
			return -2;
		if (ip->version != 4)
			return -1;
		if (ip->protocol != 6 && !(ip->protocol == 17 && tdsbpf_follow_browser(p)))
			return -1;
		proto = ip->protocol;
		/* fragments carry no TCP header we could trust */
		if (ip->frag_off & tdsbpf_ntohs(0x3fff))
			return -1;
		ihl = (__u32)ip->ihl * 4;
		if (ihl < 20)
			return -1;
		tot = tdsbpf_ntohs(ip->tot_len);
		/* GSO super-packets and BIG TCP can carry tot_len 0 */
		ip_end = tot ? off + tot : p->pkt_len;
		l4->family = 4;
		off += ihl & 0x3c;
	} else if (proto == tdsbpf_ntohs(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)((__u8 *)data + off);
		__u32 pl;

		if ((void *)(ip6 + 1) > end)
			return -2;
		if (ip6->nexthdr != 6 && !(ip6->nexthdr == 17 && tdsbpf_follow_browser(p)))
			return -1;
		proto = ip6->nexthdr;
		pl = tdsbpf_ntohs(ip6->payload_len);
		ip_end = pl ? off + 40 + pl : p->pkt_len;
		l4->family = 6;
		off += 40;
	} else {
		return -1;
	}
	if (proto == 17)
		return tdsbpf_parse_udp(p, l4, off, ip_end);
	tcp = (struct tcphdr *)((__u8 *)data + off);
	if ((void *)(tcp + 1) > end)
		return -2;
	sport = tdsbpf_ntohs(tcp->source);
	dport = tdsbpf_ntohs(tcp->dest);
	if (tdsbpf_is_server_port(p, dport))
		l4->dir = TDSBPF_DIR_C2S;
	else if (tdsbpf_is_server_port(p, sport))
		l4->dir = TDSBPF_DIR_S2C;
	else
		return -1;
	l4->client_port = l4->dir == TDSBPF_DIR_C2S ? sport : dport;
	l4->server_port = l4->dir == TDSBPF_DIR_C2S ? dport : sport;
	doff = (__u32)tcp->doff * 4;
	if (doff < 20)
		return -1;
	if (ip_end > p->pkt_len)
		ip_end = p->pkt_len;
	l4->poff = off + doff;
	if (l4->poff > ip_end)
		return -1;
	l4->plen = ip_end - l4->poff;
	l4->seq = tdsbpf_ntohl(tcp->seq);
	l4->ack = tdsbpf_ntohl(tcp->ack_seq);
	l4->window = tdsbpf_ntohs(tcp->window);
	l4->flags = ((__u8 *)tcp)[13];
	return 0;
}

/*
 * The flow key of a SQL Server packet, client and server in their places,
 * read directly from the headers parse_headers checked (bounds checked
 * again here: the verifier does not carry them across functions).
 */
TDSBPF_NOINLINE int tdsbpf_fill_key(struct tdsbpf_pkt *p, const struct tdsbpf_l4 *l4,
				  struct tdsbpf_flow_key *key)
{
	__u8 *ip = (__u8 *)p->data + (l4->l3off & 0x1f);
	__u8 *client = l4->dir == TDSBPF_DIR_C2S ? key->client_addr : key->server_addr;
	__u8 *server = l4->dir == TDSBPF_DIR_C2S ? key->server_addr : key->client_addr;

	__builtin_memset(key, 0, sizeof(*key));
	if (l4->family == 4) {
		if ((void *)(ip + 20) > p->data_end)
			return -1;
		__builtin_memcpy(client, ip + 12, 4);
		__builtin_memcpy(server, ip + 16, 4);
	} else {
		if ((void *)(ip + 40) > p->data_end)
			return -1;
		__builtin_memcpy(client, ip + 8, 16);
		__builtin_memcpy(server, ip + 24, 16);
	}
	key->family = l4->family;
	key->vlan_valid = l4->vlan_valid;
	key->vlan_id = l4->vlan_id;
	key->client_port = l4->client_port;
	key->server_port = l4->server_port;
	return 0;
}

/* ---- SQL Server Browser ------------------------------------------------ */

/*
 * The TCP ports an SSRP reply (SVR_RESP, MS-SQLR 2.2.5) names: each
 * instance's string holds "...;tcp;<port>;...". The bytes are in sc->b
 * (sc->n of them); the scan's state lives in sc so that bpf_loop's
 * callback is verified once. Ports found go to sc->res[0..3].
 */
struct tdsbpf_ssrp_scan {
	struct tdsbpf_scratch *sc;
	__u32 state;   /* bytes of ";tcp;" matched, then 5 while in the digits */
	__u32 port;
	__u32 digits;
	__u32 found;
};

TDSBPF_INLINE __u8 tdsbpf_ssrp_tag(__u32 k)
{
	return k == 1 ? 't' : k == 2 ? 'c' : k == 3 ? 'p' : ';';
}

static long tdsbpf_ssrp_step(__u32 i, void *data)
{
	struct tdsbpf_ssrp_scan *s = (struct tdsbpf_ssrp_scan *)data;
	struct tdsbpf_scratch *sc = s->sc;
	__u8 c;

	if (i >= sc->n || s->found >= 4)
		return 1;
	/* past the type and RESP_SIZE */
	if (i < 3)
		return 0;
	c = sc->b[i & TDSBPF_BUF_MASK];
	if (s->state == 5) {
		if (c >= '0' && c <= '9' && s->digits < 5) {
			s->port = s->port * 10 + (c - '0');
			s->digits++;
			return 0;
		}
		if (c == ';' && s->digits && s->port && s->port < 65536) {
			sc->res[s->found & 3] = s->port;
			s->found++;
		}
		/* ";tcp;" followed by "tcp;...": the tag again */
		s->state = c == ';' ? 1 : (c == 't' && !s->digits) ? 2 : 0;
		s->port = 0;
		s->digits = 0;
		return 0;
	}
	if (s->state < 5 && c == tdsbpf_ssrp_tag(s->state)) {
		s->state++;
		return 0;
	}
	s->state = c == ';' ? 1 : 0;
	return 0;
}

TDSBPF_INLINE __u32 tdsbpf_ssrp_ports(struct tdsbpf_scratch *sc)
{
	struct tdsbpf_ssrp_scan s = { sc, 0, 0, 0, 0 };

	sc->res[0] = sc->res[1] = sc->res[2] = sc->res[3] = 0;
	/* SVR_RESP: 0x05, RESP_SIZE (2 bytes), the instances' string */
	if (sc->n < 4 || sc->b[0] != 0x05)
		return 0;
	tdsbpf_loop(TDSBPF_BUF, tdsbpf_ssrp_step, &s);
	return s.found;
}

/*
 * A Browser datagram: a reply's TCP ports are traced from now on, before
 * the client can connect to them, and the datagram goes to user space,
 * which names the instances and times the exchange.
 */
TDSBPF_NOINLINE void tdsbpf_browser(struct tdsbpf_pkt *p, struct tdsbpf_l4 *l4,
				    struct tdsbpf_flow_key *key)
{
	struct tdsbpf_browser_event *ev;
	struct tdsbpf_scratch *sc;
	__u32 n = l4->plen;
	__u32 found = 0;
	int i;

	tdsbpf_stamp(p);
	if (tdsbpf_fill_key(p, l4, key) < 0)
		return;
	sc = tdsbpf_scratch(p);
	if (!sc)
		return;
	sc->n = 0;
	if (n > TDSBPF_BUF - 1)
		n = TDSBPF_BUF - 1;
	n &= TDSBPF_BUF_MASK;
	if (n && tdsbpf_load(p, l4->poff, sc->b, n) == 0)
		sc->n = n;
	/*
	 * Only an answer to a request seen from the same client address and
	 * port adds ports (a broadcast's answers come from other addresses):
	 * a datagram made up to look like an answer cannot make the tracer
	 * follow any port it names.
	 */
	__builtin_memcpy(&sc->key, key, sizeof(sc->key));
	__builtin_memset(sc->key.server_addr, 0, sizeof(sc->key.server_addr));
	if (l4->dir == TDSBPF_DIR_C2S)
		tdsbpf_browser_asked(p, &sc->key);
	else if (tdsbpf_browser_was_asked(p, &sc->key))
		found = tdsbpf_ssrp_ports(sc);
	for (i = 0; i < 4; i++) {
		if (i < (int)found)
			tdsbpf_browser_port(p, (__u16)sc->res[i]);
	}
	ev = tdsbpf_reserve_browser(p);
	if (!ev) {
		tdsbpf_count(p, TDSBPF_CNT_RINGBUF_DROPS);
		return;
	}
	__builtin_memset(&ev->base, 0, sizeof(ev->base));
	ev->base.ts_ns = p->now;
	__builtin_memcpy(&ev->base.key, key, sizeof(ev->base.key));
	ev->base.ifindex = p->ifindex;
	ev->base.kind = TDSBPF_EV_BROWSER;
	ev->base.dir = l4->dir;
	ev->base.hook = p->hook;
	ev->base.payload_len = l4->plen;
	ev->pad = 0;
	ev->pad2 = 0;
	for (i = 0; i < TDSBPF_BROWSER_FOLLOWED; i++)
		ev->followed[i] = i < (int)found ? (__u16)sc->res[i & 3] : 0;
	n = l4->plen;
	if (n > TDSBPF_BROWSER_MAX)
		n = TDSBPF_BROWSER_MAX;
	ev->data_len = 0;
	/* what the datagram does not fill is zero, not an older record's bytes */
	__builtin_memset(ev->data, 0, sizeof(ev->data));
	if (n && n <= TDSBPF_BROWSER_MAX && tdsbpf_load(p, l4->poff, ev->data, n) == 0)
		ev->data_len = (__u16)n;
	tdsbpf_submit(p, ev, 1);
}

/* The flow part of a frame: find or make the flow state, then TCP. */
TDSBPF_NOINLINE void tdsbpf_flow_segment(struct tdsbpf_walk *w)
{
	struct tdsbpf_pkt *p = w->p;
	__u8 flags = w->l4->flags;
	__u8 dir = w->l4->dir;

	if (w->flow && w->flow->state == TDSBPF_TCP_CLOSED) {
		struct tdsbpf_dir_state *cs = &w->flow->d[dir & 1];

		if (cs->point_hook && (cs->point_hook != p->hook || cs->point_ifindex != p->ifindex) &&
		    tdsbpf_seen_closing(w->l4, cs)) {
			cs->dups++;
			w->sc->seen_twice = 1;
			return;
		}
		/* anything else: as if the flow were gone (a new SYN replaces it) */
		w->flow = 0;
	}
	if (w->flow && (flags & (TDSBPF_TCP_SYN | TDSBPF_TCP_ACK)) == TDSBPF_TCP_SYN &&
	    dir == TDSBPF_DIR_C2S && w->flow->syn_seq != w->l4->seq) {
		/* a new SYN on a known flow: the port is reused by a new connection */
		tdsbpf_emit_stats(w, 1);
		w->flow = 0;
	}
	if (!w->flow) {
		int client_syn = (flags & (TDSBPF_TCP_SYN | TDSBPF_TCP_ACK)) == TDSBPF_TCP_SYN &&
				 dir == TDSBPF_DIR_C2S;

		if (!client_syn && !(flags & TDSBPF_TCP_SYN) && w->l4->plen == 0) {
			/*
			 * A bare ACK, FIN or RST of a connection that began before
			 * we were watching: report the close, keep no state.
			 */
			if (flags & TDSBPF_TCP_RST)
				tdsbpf_emit_tcp(w, TDSBPF_EV_TCP_RST, 1);
			else if (flags & TDSBPF_TCP_FIN)
				tdsbpf_emit_tcp(w, TDSBPF_EV_TCP_FIN, 1);
			return;
		}
		w->flow = tdsbpf_flow_create(p, w->key);
		if (!w->flow) {
			tdsbpf_count(p, TDSBPF_CNT_FLOW_INSERT_FAIL);
			return;
		}
		tdsbpf_count(p, TDSBPF_CNT_FLOWS_CREATED);
		w->flow->first_ns = p->now;
		w->flow->last_flush_ns = p->now;
		w->flow->midstream = !client_syn;
	}
	tdsbpf_tcp(w);
	if (w->flow) {
		__u64 every = tdsbpf_flush_interval_ns(p);

		if (every && p->now - w->flow->last_flush_ns >= every)
			tdsbpf_emit_stats(w, 0);
	}
}

/* The bytes of L2..L4 a frame can need: Ethernet, VLAN, IPv4 with options, TCP. */
#define TDSBPF_MAX_HEADERS (14 + 4 + 60 + 60)

/* How far tdsbpf_coarse_now may lag the precise clock (a tick is 1-10 ms). */
#ifndef TDSBPF_CLOCK_SLACK_NS
#define TDSBPF_CLOCK_SLACK_NS (20ULL * 1000 * 1000)
#endif

/*
 * The short path: a segment of a known flow that the full walk would only
 * count. Either a pure ACK (or a segment with no flag at all) that
 * acknowledges nothing the flow waits for, or a continuation segment: in
 * order, no frame header starting in it, nothing carried or pending from
 * the previous one. Any doubt sends the segment to the full walk, which
 * decides exactly; so the conditions here may be stricter than the walk's,
 * never looser. Returns 1 when the segment was taken (the flow entry holds
 * all it changes), 2 when it was a second sighting (counted as such), 0
 * with nothing changed otherwise.
 */
TDSBPF_INLINE int tdsbpf_short_path(struct tdsbpf_pkt *p, const struct tdsbpf_l4 *l4,
				    struct tdsbpf_flow *f)
{
	__u8 dir = l4->dir & 1;
	struct tdsbpf_dir_state *ds = &f->d[dir];
	struct tdsbpf_dir_state *os = &f->d[dir ^ 1];
	__u32 plen = l4->plen;
	__u32 seq = l4->seq;
	__u64 every;

	/* seen at another point than this side's first: a second sighting, or the walk decides */
	if (ds->point_hook != p->hook || ds->point_ifindex != p->ifindex) {
		if (!ds->point_hook || !tdsbpf_seen_before(l4, ds))
			return 0;
		ds->dups++;
		return 2;
	}
	/* SYN, FIN, RST, a closed window and the handshake's last ACK all report; a closed flow is the walk's */
	if ((l4->flags & (TDSBPF_TCP_SYN | TDSBPF_TCP_FIN | TDSBPF_TCP_RST)) || l4->window == 0 ||
	    f->state == TDSBPF_TCP_SYN_RCVD || f->state == TDSBPF_TCP_CLOSED)
		return 0;
	if (plen == 0) {
		/* a keep-alive probe, or the ACK of a keep-alive or of a FIN */
		if ((ds->seq_valid && seq == ds->next_seq - 1) || os->ka_pending ||
		    (os->fin_seen && !os->fin_acked))
			return 0;
	} else {
		/* retransmissions, gaps, headers, split headers and reply tails */
		if (!ds->seq_valid || seq != ds->next_seq || !ds->synced || ds->carry_len ||
		    ds->tail_pending || (__s32)(ds->next_frame - seq) < (__s32)plen)
			return 0;
	}
	/* the periodic counters: due soon (by the cheap clock) is left to the walk */
	every = tdsbpf_flush_interval_ns(p);
	if (every && tdsbpf_coarse_now(p) + TDSBPF_CLOCK_SLACK_NS - f->last_flush_ns >= every)
		return 0;
	ds->packets++;
	ds->bytes += plen;
	ds->zero_window = 0;
	tdsbpf_note_ack(ds, l4);
	if (plen)
		ds->next_seq = seq + plen;
	return 1;
}

/*
 * A segment's headers and flow key until the full walk copies them to the
 * scratch area; then the same stack holds the walk's handle. The BPF stack
 * of the deepest call chain (this frame included) is limited to 512 bytes.
 */
union tdsbpf_frame_stack {
	struct {
		struct tdsbpf_l4 l4;
		struct tdsbpf_flow_key key;
	} seg;
	struct tdsbpf_walk w;
};

/* The full walk of a SQL Server packet (flow: its entry, or 0 when new). */
TDSBPF_INLINE void tdsbpf_full(struct tdsbpf_pkt *p, union tdsbpf_frame_stack *u,
			       struct tdsbpf_flow *flow)
{
	struct tdsbpf_scratch *sc;

	tdsbpf_stamp(p);
	/* packets of the short path are counted in their flow entries only */
	tdsbpf_count(p, TDSBPF_CNT_PACKETS_SEEN);
	sc = tdsbpf_scratch(p);
	if (!sc)
		return;
	__builtin_memcpy(&sc->l4, &u->seg.l4, sizeof(sc->l4));
	__builtin_memcpy(&sc->key, &u->seg.key, sizeof(sc->key));
	sc->seen_twice = 0;
	u->w.p = p;
	u->w.sc = sc;
	u->w.l4 = &sc->l4;
	u->w.key = &sc->key;
	u->w.flow = flow;
	tdsbpf_flow_segment(&u->w);
}

TDSBPF_INLINE void tdsbpf_process(struct tdsbpf_pkt *p)
{
	union tdsbpf_frame_stack u;
	struct tdsbpf_l4 *l4 = &u.seg.l4;
	struct tdsbpf_flow *flow;
	int rc;

	rc = tdsbpf_parse_headers(p, l4);
	if (rc == -2) {
		__u32 want = p->pkt_len < TDSBPF_MAX_HEADERS ? p->pkt_len : TDSBPF_MAX_HEADERS;

		if (tdsbpf_pull(p, want) < 0) {
			tdsbpf_count(p, TDSBPF_CNT_PULL_FAIL);
			return;
		}
		rc = tdsbpf_parse_headers(p, l4);
		if (rc == -2)
			tdsbpf_count(p, TDSBPF_CNT_PULL_FAIL);
	}
	if (rc == -3) {
		tdsbpf_browser(p, l4, &u.seg.key);
		if (tdsbpf_capturing(p))
			tdsbpf_capture(p, &u.seg.key, l4->dir);
		return;
	}
	if (rc < 0)
		return;

	if (tdsbpf_fill_key(p, l4, &u.seg.key) < 0)
		return;
	flow = tdsbpf_flow_get(p, &u.seg.key);
	if (flow) {
		rc = tdsbpf_short_path(p, l4, flow);
		if (rc) {
			/* a packet is copied out once, where it is seen first */
			if (rc == 1 && tdsbpf_capturing(p))
				tdsbpf_capture(p, &u.seg.key, l4->dir);
			return;
		}
	}
	tdsbpf_full(p, &u, flow);
	if (tdsbpf_capturing(p)) {
		/* the walk's handle took the place of the key: the scratch area has it */
		struct tdsbpf_scratch *sc = tdsbpf_scratch(p);

		if (sc && !sc->seen_twice)
			tdsbpf_capture(p, &sc->key, sc->l4.dir);
	}
}

/*
 * A frame with the same bytes as one just walked, as some captures hold
 * (the reader finds them; the packet programs never see one skb twice at
 * a hook). When its flow has already counted all of it, it is a second
 * sighting, counted as one: returns 1. Otherwise (no flow, or it was not
 * all seen) returns 0 with nothing changed. Never walked again.
 */
TDSBPF_INLINE int tdsbpf_process_copy(struct tdsbpf_pkt *p)
{
	union tdsbpf_frame_stack u;
	struct tdsbpf_dir_state *ds;
	struct tdsbpf_flow *flow;

	if (tdsbpf_parse_headers(p, &u.seg.l4) < 0 || tdsbpf_fill_key(p, &u.seg.l4, &u.seg.key) < 0)
		return 0;
	flow = tdsbpf_flow_get(p, &u.seg.key);
	if (!flow)
		return 0;
	ds = &flow->d[u.seg.l4.dir & 1];
	if (!tdsbpf_seen_before(&u.seg.l4, ds))
		return 0;
	ds->dups++;
	return 1;
}

#endif /* TDSBPF_WALK_H */
