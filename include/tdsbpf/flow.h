/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-flow state of the framing walk, kept in the kernel's LRU hash (and
 * in the host reader's table). Internal to the walk: user space only sees
 * its counters through TDSBPF_EV_FLOW_STATS events, or by reading the map
 * at exit.
 */
#ifndef TDSBPF_FLOW_H
#define TDSBPF_FLOW_H

#include <linux/types.h>

#include "events.h"

/* The longest frame prefix the walk needs: SMP header + TDS header. */
#define TDSBPF_FRAME_HDR 24

/* TCP state of a flow, as far as the tracer needs it. */
enum tdsbpf_tcp_state {
	TDSBPF_TCP_NONE = 0,
	TDSBPF_TCP_SYN_SENT = 1,
	TDSBPF_TCP_SYN_RCVD = 2, /* SYN+ACK seen */
	TDSBPF_TCP_ESTABLISHED = 3,
	/*
	 * Closed (RST, or FIN both ways acknowledged), its final counters sent:
	 * the entry stays until a new SYN or the LRU replaces it, so that the
	 * closing packet seen again at another point (the loopback's XDP after
	 * its tc egress, a second traced interface) is known as a second
	 * sighting instead of reported again.
	 */
	TDSBPF_TCP_CLOSED = 4,
};

struct tdsbpf_dir_state {
	__u32 next_seq;	  /* next expected TCP sequence from this side */
	__u32 next_frame; /* TCP sequence where the next frame header starts */
	__u32 fin_seq;	  /* sequence number of this side's FIN */
	__u32 tail_end;	  /* sequence just past a reply packet whose final DONE is pending */
	__u8 seq_valid;
	__u8 synced; /* next_frame is known */
	__u8 fin_seen;
	__u8 fin_acked;
	__u8 zero_window;
	__u8 ka_pending; /* a keep-alive went out and its ACK has not come back */
	__u8 in_msg;	 /* a TDS message has started and not ended (no EOM yet) */
	__u8 tail_pending;
	__u8 lost_sync;	 /* framing was lost once: announce when it comes back */
	__u8 carry_len;	 /* bytes of a split frame header kept in carry */
	__u8 point_hook; /* where this side's packets are seen first: hook (0: not yet) */
	__u8 ack_valid;
	__u8 carry[2 * TDSBPF_FRAME_HDR]; /* a split header: first part, then the rest */
	__u32 point_ifindex;		  /* ... and interface */
	__u32 ack_hi;			  /* the highest ACK number this side sent */
	__u64 bytes;
	__u32 packets;
	__u32 retrans;
	__u32 keepalives;
	__u32 zero_windows;
	__u32 dups;    /* second sightings of its packets, not counted */
	__u16 largest; /* the largest payload of one of its segments */
	__u8 ttl;      /* the IP TTL (hop limit) of its last packet */
	__u8 pad2;
	/* the server's TLS hello flight, sent on in excerpts (TDSBPF_EXCERPT_MORE) */
	__u32 hello_base;  /* TCP sequence of its first byte */
	__u32 hello_seq;   /* of the next byte to send */
	__u16 hello_more;  /* bytes still wanted (0: none) */
	__u8 hello_chunks; /* MORE excerpts sent (at most TDSBPF_HELLO_CHUNKS) */
	__u8 pad3;
};

struct tdsbpf_flow {
	struct tdsbpf_dir_state d[2];
	__u64 first_ns;
	__u64 last_flush_ns;
	__u32 syn_seq;
	__u32 ev_seq;	       /* events numbered so far (tdsbpf_event.flow_seq) */
	__u8 state;	       /* enum tdsbpf_tcp_state */
	__u8 midstream;	       /* created without seeing the client's SYN */
	__u8 tds71;	       /* TDS 7.1 or older: DONE row counts are 4 bytes */
	__u8 prelogin_pending; /* the client sent a PRELOGIN: the next reply answers it */
	__u8 excerpts;	       /* excerpts sent (at most TDSBPF_EXCERPTS_PER_FLOW) */
	__u8 quiet;	       /* routine work is counted in work: 1 TDS packets, 2 TLS records */
	__u8 work_ready;       /* 1: a request went to user space as an event; 2: then a reply began */
	__u8 tls_client_run;   /* the last TLS application data record was the client's */
	__u8 tls_runs;	       /* runs of client TLS application data records (at most 255) */
	__u8 pad4[7];
	__u64 last_s2c_ns;	 /* when the server's last TDS packet or TLS record began */
	struct tdsbpf_work work; /* routine work counted since it was last sent (events.h) */
};

/* Parsed L2..L4 of one frame. */
struct tdsbpf_l4 {
	__u32 poff; /* offset of the TCP payload in the frame */
	__u32 plen; /* TCP payload length */
	__u32 seq;
	__u32 ack;
	__u16 window;
	__u8 flags;
	__u8 dir;
	__u16 l3off; /* where the IP header starts */
	__u16 vlan_id;
	__u8 family; /* 4 or 6 */
	__u8 vlan_valid;
	__u16 client_port;
	__u16 server_port;
	__u8 ttl; /* IP TTL, or IPv6 hop limit */
	__u8 pad;
};

/* Bytes of a message the parsers look at, at most (see parse.h). */
#define TDSBPF_BUF	512
#define TDSBPF_BUF_MASK (TDSBPF_BUF - 1)

/*
 * What the parsers of parse.h take besides the bytes in sc->b, and what
 * they give back besides sc->out, one member per parser that has any, named
 * for it. Offsets are into sc->b unless said; "len << 16 | off" packs a
 * length and an offset in one word.
 */
struct tdsbpf_parser_in {
	__u32 start; /* classify_sspi: where the blob starts; parse_ntlm_auth: where the NTLM message does */
	__u32 tds71; /* parse_reply, parse_tail_done: 1 for TDS 7.1 and older (shorter DONE tokens) */
	__u32 type;  /* parse_request: the packet type (TDS_SQL_BATCH or TDS_RPC) */
	__u32 body;  /* parse_tail_done: how many of the bytes before the end are the packet's */
};

struct tdsbpf_parser_res {
	struct {
		__u32 alpn; /* the ALPN extension's data: off << 16 | len; 0 when absent */
	} tls;
	struct {
		__u32 extension; /* ibExtension << 16 | cbExtension */
	} login7;
	struct {
		__u32 ntlm_at;	 /* where "NTLMSSP" starts */
		__u32 ntlm_type; /* its message type; 0 when the blob is not NTLM */
	} sspi;
	struct {
		/* domain, user, workstation: len << 16 | off, off from the message's start */
		__u32 name[3];
		__u32 flags; /* NegotiateFlags; 0 when absent */
	} ntlm;
	struct {
		__u32 routing_at;     /* the routing ENVCHANGE's value; 0 when absent */
		__u32 packet_size_at; /* the packet size ENVCHANGE's value; 0 when absent */
	} reply;
	struct {
		__u32 token; /* DONE, DONEPROC or DONEINPROC */
		__u32 flags; /* TDSBPF_TAIL_* (events.h) */
	} tail;
	struct {
		__u32 port[4]; /* the TCP ports an SSRP answer names */
	} browser;
};

/*
 * Per-CPU working memory of the walk (one per thread on the host). The
 * segment's facts, the frame cursor and the bytes handed to the parsers
 * live here rather than on the BPF stack on purpose: values the verifier
 * reads back from a map are unknown to it, so paths that differ only in
 * offsets and lengths share verifier states instead of multiplying them.
 * It also keeps the 512-byte BPF stack free.
 */
struct tdsbpf_scratch {
	struct tdsbpf_l4 l4;
	struct tdsbpf_flow_key key;
	__u32 seen_twice; /* the segment was a second sighting (not copied out again) */
	__s32 rel;	  /* where the next frame starts in this segment */
	__u32 skip;	  /* bytes at the start of the segment seen before */
	__u32 pos;	  /* a parser's cursor */
	__u32 end;
	__u32 pos2;		      /* a nested cursor */
	__u32 n;		      /* valid bytes in b */
	struct tdsbpf_parser_in in;   /* what a parser takes besides b */
	struct tdsbpf_parser_res res; /* what it gives back besides out */
	__u8 hdr[32];		      /* the frame header being looked at */
	/* a message of this segment whose first bytes are copied out once its
	 * frames are walked (tdsbpf_emit_excerpt): what, where its body starts
	 * (rel) and its body's length; what 0: none */
	__u32 excerpt_what, excerpt_rel, excerpt_len;
	union tdsbpf_tds_detail out; /* a parser's result */
	/* message bytes; the slack lets a masked index read a few bytes on */
	__u8 b[TDSBPF_BUF + 64];
};

#endif /* TDSBPF_FLOW_H */
