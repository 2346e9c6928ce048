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
 *   struct tdsbpf_excerpt_event *tdsbpf_excerpt_buf(p);   // working memory for one excerpt
 *   void tdsbpf_submit_excerpt(p, x, size);      // send its first size bytes (or count a drop)
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
 *   int  tdsbpf_count_work(p);                  // routine work is counted in the flow entry
 *   void tdsbpf_work_counted(p);                // ... and this packet was (the host notes its frame)
 *   void tdsbpf_stamp(p);                        // set p->now (called only for SQL Server packets
 *                                                // that take the full walk)
 *   __u64 tdsbpf_coarse_now(p);                  // a cheap clock: at most TDSBPF_CLOCK_SLACK_NS
 *                                                // behind what tdsbpf_stamp would set now
 *
 * and then calls tdsbpf_process(p) for each frame.
 *
 * The walk is in parts (walk/), included below in the order they build on
 * each other: flow_state.h (the segment and its flow, sequence checks,
 * second sightings), emit.h (event records), frames.h (the framing walk
 * and the TDS, TLS, SMP and NTLM events), tcp.h (the TCP state machine),
 * headers.h (link, IP, TCP and UDP headers to a flow key) and browser.h
 * (the SQL Server Browser). This file holds what joins them: the short
 * path for segments that change nothing, and tdsbpf_process.
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

/* The parts, in the order they build on each other. */
#include "walk/flow_state.h"
#include "walk/emit.h"
#include "walk/frames.h"
#include "walk/tcp.h"
#include "walk/headers.h"
#include "walk/browser.h"

/* ---- The segment, from frame to flow ------------------------------------ */

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
	if (w->flow && (flags & (TDSBPF_TCP_SYN | TDSBPF_TCP_ACK)) == TDSBPF_TCP_SYN && dir == TDSBPF_DIR_C2S &&
	    w->flow->syn_seq != w->l4->seq) {
		/* a new SYN on a known flow: the port is reused by a new connection */
		tdsbpf_emit_stats(w, 1);
		w->flow = 0;
	}
	if (!w->flow) {
		int client_syn = (flags & (TDSBPF_TCP_SYN | TDSBPF_TCP_ACK)) == TDSBPF_TCP_SYN && dir == TDSBPF_DIR_C2S;

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
 * the previous one (a hello flight's bytes wanted are pending). Any doubt sends the segment to the full walk, which
 * decides exactly; so the conditions here may be stricter than the walk's,
 * never looser. Returns 1 when the segment was taken (the flow entry holds
 * all it changes), 2 when it was a second sighting (counted as such), 0
 * with nothing changed otherwise.
 */
TDSBPF_INLINE int tdsbpf_short_path(struct tdsbpf_pkt *p, const struct tdsbpf_l4 *l4, struct tdsbpf_flow *f)
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
		if ((ds->seq_valid && seq == ds->next_seq - 1) || os->ka_pending || (os->fin_seen && !os->fin_acked))
			return 0;
	} else {
		/* retransmissions, gaps, headers, split headers and reply tails */
		if (!ds->seq_valid || seq != ds->next_seq || !ds->synced || ds->carry_len || ds->tail_pending ||
		    ds->hello_more || (__s32)(ds->next_frame - seq) < (__s32)plen)
			return 0;
	}
	/* the periodic counters: due soon (by the cheap clock) is left to the walk */
	every = tdsbpf_flush_interval_ns(p);
	if (every && tdsbpf_coarse_now(p) + TDSBPF_CLOCK_SLACK_NS - f->last_flush_ns >= every)
		return 0;
	ds->packets++;
	ds->bytes += plen;
	if (plen > ds->largest)
		ds->largest = (__u16)(plen > 0xffff ? 0xffff : plen);
	ds->ttl = l4->ttl;
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
TDSBPF_INLINE void tdsbpf_full(struct tdsbpf_pkt *p, union tdsbpf_frame_stack *u, struct tdsbpf_flow *flow)
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
