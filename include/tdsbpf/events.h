/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The wire format between the packet programs and user space.
 *
 * This header is compiled both for the BPF target and for the host, so it
 * uses only fixed-width kernel types and no C++ or libc headers. Every
 * struct has explicit padding so that both compilers agree on the layout;
 * the host build checks the sizes with static_assert.
 *
 * Byte order: every multi-byte field in an event is in host order, already
 * converted from whatever the wire used (TDS headers are big-endian, LOGIN7
 * and SMP are little-endian), except the raw addresses in the flow key and
 * the raw UTF-16 bytes of the NTLM names.
 */
#ifndef TDSBPF_EVENTS_H
#define TDSBPF_EVENTS_H

#include <linux/types.h>

#include "protocol.h"

#define TDSBPF_EVENT_ABI 8

/* Direction of a packet relative to the SQL Server port, never the hook. */
enum tdsbpf_dir {
	TDSBPF_DIR_C2S = 0, /* client to server: destination port is a server port */
	TDSBPF_DIR_S2C = 1, /* server to client */
};

/* Where a packet was seen. */
enum tdsbpf_hook {
	TDSBPF_HOOK_XDP = 1,
	TDSBPF_HOOK_TC_INGRESS = 2,
	TDSBPF_HOOK_TC_EGRESS = 3,
	TDSBPF_HOOK_PCAP = 4, /* offline reader */
};

enum tdsbpf_event_kind {
	TDSBPF_EV_TCP_SYN = 1,		 /* client SYN */
	TDSBPF_EV_TCP_SYNACK = 2,	 /* server SYN+ACK */
	TDSBPF_EV_TCP_HANDSHAKE_ACK = 3, /* client ACK that completes the handshake */
	TDSBPF_EV_TCP_FIN = 4,		 /* FIN, either side (dir tells) */
	TDSBPF_EV_TCP_RST = 5,		 /* RST, either side */
	TDSBPF_EV_TCP_CLOSE_ACK = 6,	 /* pure ACK of the other side's FIN */
	TDSBPF_EV_TCP_KEEPALIVE = 7,	 /* 0/1 byte at next_seq - 1 */
	TDSBPF_EV_TCP_KEEPALIVE_ACK = 8, /* the answer to a keep-alive */
	TDSBPF_EV_TCP_RETRANS = 9,	 /* payload at or below data already seen */
	TDSBPF_EV_TCP_ZERO_WINDOW = 10,	 /* advertised window went to zero */
	TDSBPF_EV_TDS = 11,		 /* start of a TDS packet (maybe inside SMP DATA) */
	TDSBPF_EV_TLS = 12,		 /* a bare TLS record, not inside a TDS packet */
	TDSBPF_EV_SMP = 13,		 /* SMP SYN/ACK/FIN (DATA comes as TDSBPF_EV_TDS) */
	TDSBPF_EV_NTLM_AUTH = 14,	 /* NTLM AUTHENTICATE names (struct tdsbpf_ntlm_event) */
	TDSBPF_EV_FLOW_STATS = 15,	 /* counters, on close and periodically */
	TDSBPF_EV_TDS_DONE = 16,	 /* final DONE of a reply packet that ended in a later segment */
	TDSBPF_EV_RESYNC = 17,		 /* framing lost or regained in one direction */
	TDSBPF_EV_BROWSER = 18,		 /* a SQL Server Browser datagram (struct tdsbpf_browser_event) */
	TDSBPF_EV_PACKET = 19,		 /* a copy of a packet for --write-pcap (struct tdsbpf_packet_event) */
	TDSBPF_EV_EXCERPT = 20,		 /* a TDS message's first bytes, for its text (struct tdsbpf_excerpt_event) */
	TDSBPF_EV_WORK = 21, /* routine requests and replies counted in the flow entry (struct tdsbpf_work) */
	TDSBPF_EV_KIND_MAX
};

/* tdsbpf_event.flags */
#define TDSBPF_F_MIDSTREAM   0x0001 /* flow state was created without a SYN */
#define TDSBPF_F_TRUNCATED   0x0002 /* details cut short: the bytes were not in this segment */
#define TDSBPF_F_IN_SMP	     0x0004 /* TDS packet carried in an SMP DATA frame */
#define TDSBPF_F_CARRIED     0x0008 /* frame header was split across two segments */
#define TDSBPF_F_LOST_SYNC   0x0010 /* RESYNC: framing lost (else regained) */
#define TDSBPF_F_TAIL_IN_SEG 0x0020 /* TDS: the packet ends inside this segment */

/*
 * A flow as client and server, whatever the packet's direction. IPv4
 * addresses use the first 4 bytes of each address and zero the rest.
 * Aligned to 8 bytes (it always sits at such an offset): copies of it are
 * five 8-byte moves.
 */
struct tdsbpf_flow_key {
	__u8 client_addr[16];
	__u8 server_addr[16];
	__u16 client_port; /* host order */
	__u16 server_port; /* host order */
	__u8 family;	   /* 4 or 6 */
	__u8 vlan_valid;
	__u16 vlan_id;
} __attribute__((aligned(8)));

/* What the details union of a TDS event holds. */
enum tdsbpf_detail {
	TDSBPF_D_NONE = 0,
	TDSBPF_D_PRELOGIN = 1, /* plaintext PRELOGIN, either direction */
	TDSBPF_D_TLS = 2,      /* TLS record carried in a TDS packet (or a bare one) */
	TDSBPF_D_LOGIN7 = 3,
	TDSBPF_D_REPLY = 4,   /* first tokens of a server reply */
	TDSBPF_D_SSPI = 5,    /* client SSPI packet (type 17) */
	TDSBPF_D_REQUEST = 6, /* SQL batch / RPC */
};

#define TDSBPF_VALUE_ABSENT 0xff /* an option that was not present */

/* tdsbpf_prelogin.present: bit (1 << token) for each option seen */
struct tdsbpf_prelogin {
	__u8 version_major;
	__u8 version_minor;
	__u16 version_build;
	__u16 version_subbuild;
	__u8 encryption;       /* TDSBPF_VALUE_ABSENT when missing */
	__u8 mars;	       /* 0/1, TDSBPF_VALUE_ABSENT when missing */
	__u8 fedauth_required; /* TDSBPF_VALUE_ABSENT when missing */
	__u8 instance_len;     /* bytes copied into instance (may include the NUL) */
	__u16 present;
	__u8 instance[16];	/* INSTOPT, cut to 16 bytes */
	__u8 connection_id[16]; /* TRACEID: client connection id (GUID bytes) */
	__u8 activity_id[16];	/* TRACEID: activity id (GUID bytes) */
	__u32 activity_seq;
	__u32 thread_id;
};

/* TLS record details. */
#define TDSBPF_TLS_ALPN_TDS8	0x01 /* ALPN offers or selects "tds/8.0" */
#define TDSBPF_TLS_HELLO_PARSED 0x02
#define TDSBPF_TLS_CHAIN	9
#define TDSBPF_TLS_RECORD	0x80 /* | content type: a record that is not a handshake in clear */
#define TDSBPF_TLS_ENCRYPTED_HS 0xff
struct tdsbpf_tls {
	__u8 content_type;    /* 20 change_cipher_spec, 21 alert, 22 handshake, 23 data */
	__u8 handshake_type;  /* first handshake message type (1 client hello, 2 server hello) */
	__u16 record_version; /* e.g. 0x0303 */
	__u16 record_length;
	__u16 hello_version;	/* client_hello/server_hello legacy_version */
	__u16 selected_version; /* server hello supported_versions, or 0 */
	__u8 flags;
	__u8 alert_level; /* for alerts in clear */
	__u8 alert_desc;
	/*
	 * What follows the first handshake message in the bytes read (the TDS
	 * packet, or the record): the other messages of a handshake record in
	 * clear, then each later record, in order. chain[i] is a handshake
	 * message type, TDSBPF_TLS_ENCRYPTED_HS (a handshake record after Change
	 * Cipher Spec), or TDSBPF_TLS_RECORD | content type for other records.
	 * chain_n counts all found (only the first TDSBPF_TLS_CHAIN are kept);
	 * chain_more: the walk stopped before the packet's end (bytes not read).
	 */
	__u8 chain_n;
	__u8 chain_more;
	__u8 chain[TDSBPF_TLS_CHAIN];
};

/* LOGIN7 details. */
#define TDSBPF_SSPI_NONE     0
#define TDSBPF_SSPI_NTLM     1 /* raw NTLMSSP, or NTLMSSP found inside SPNEGO */
#define TDSBPF_SSPI_SPNEGO   2 /* SPNEGO without NTLMSSP: Kerberos */
#define TDSBPF_SSPI_KERBEROS 3 /* raw Kerberos GSS token */
#define TDSBPF_SSPI_UNKNOWN  4

#define TDSBPF_L7_FEDAUTH	0x01 /* FEATUREEXT carries FEDAUTH */
#define TDSBPF_L7_FEATURES_SEEN 0x02 /* the FEATUREEXT block was inside this segment */
struct tdsbpf_login7 {
	__u32 tds_version; /* as a number, e.g. 0x74000004 for 7.4 */
	__u32 packet_size;
	__u32 client_prog_ver;
	__u32 client_pid;
	__u8 option_flags1;
	__u8 option_flags2; /* 0x80 fIntSecurity */
	__u8 type_flags;    /* 0x20 read-only intent */
	__u8 option_flags3; /* 0x10 feature extension */
	__u16 sspi_offset;
	__u16 sspi_length;
	__u8 sspi_kind; /* TDSBPF_SSPI_* */
	__u8 ntlm_type; /* NTLM message type when sspi_kind is NTLM */
	__u8 flags;	/* TDSBPF_L7_* */
	__u8 pad;
	__u16 user_chars; /* length of the user name in UTF-16 chars */
	__u16 database_chars;
	__u32 total_length;
};

/* Server reply details: which tokens were seen before the walk stopped. */
#define TDSBPF_TOK_LOGINACK	 0x0001
#define TDSBPF_TOK_ERROR	 0x0002
#define TDSBPF_TOK_INFO		 0x0004
#define TDSBPF_TOK_ENVCHANGE	 0x0008
#define TDSBPF_TOK_ROUTING	 0x0010
#define TDSBPF_TOK_SSPI		 0x0020
#define TDSBPF_TOK_DONE		 0x0040
#define TDSBPF_TOK_FEDAUTHINFO	 0x0080
#define TDSBPF_TOK_COLMETADATA	 0x0100
#define TDSBPF_TOK_FEATUREEXTACK 0x0200
#define TDSBPF_TOK_PACKETSIZE	 0x0400
#define TDSBPF_TOK_RETURNSTATUS	 0x0800
#define TDSBPF_TOK_ROW		 0x1000
#define TDSBPF_TOK_SESSIONSTATE	 0x2000
#define TDSBPF_TOK_STOPPED	 0x8000 /* walk stopped at a token it cannot skip or past the bytes */

struct tdsbpf_reply {
	__u16 tokens; /* TDSBPF_TOK_* */
	__u8 first_token;
	__u8 error_state;
	__u32 error_number; /* first ERROR token */
	__u8 error_class;
	__u8 sspi_ntlm_type;	    /* NTLM message type in the SSPI token, 0 if none */
	__u16 done_status;	    /* DONE token met in the walk */
	__u32 loginack_tds_version; /* e.g. 0x74000004 */
	__u8 server_version[4];	    /* LOGINACK prog version: major, minor, build hi, build lo */
	__u16 routing_port;
	__u8 routing_server_len;
	__u8 interface;		 /* LOGINACK interface */
	__u8 routing_server[16]; /* ASCII, cut to 16 characters */
	__u32 packet_size;	 /* ENVCHANGE packet size */
	__u64 done_rows;
};

struct tdsbpf_sspi {
	__u8 kind; /* TDSBPF_SSPI_* */
	__u8 ntlm_type;
	__u16 pad;
	__u32 length;
};

struct tdsbpf_request {
	__u32 all_headers_length; /* 0 if the request has no ALL_HEADERS */
	__u16 rpc_proc_id;	  /* RPC by id (e.g. 10 sp_executesql), 0 otherwise */
	__u16 rpc_name_chars;	  /* RPC by name: its length, 0 otherwise */
	__u64 transaction_descriptor;
};

union tdsbpf_tds_detail {
	struct tdsbpf_prelogin prelogin;
	struct tdsbpf_tls tls;
	struct tdsbpf_login7 login7;
	struct tdsbpf_reply reply;
	struct tdsbpf_sspi sspi;
	struct tdsbpf_request request;
};

struct tdsbpf_tds {
	__u8 type;
	__u8 status;
	__u16 length; /* header included */
	__u16 spid;
	__u8 packet_id;
	__u8 window;
	__u8 detail;	/* TDSBPF_D_* */
	__u8 smp_flags; /* valid with TDSBPF_F_IN_SMP */
	__u16 smp_sid;
	__u32 smp_seq;
	__u32 smp_window;
	/*
	 * An EOM server reply whose last 13 bytes are a DONE/DONEPROC/DONEINPROC
	 * token: when the packet ends inside the segment that holds its header,
	 * that DONE is reported here (tail_token != 0); when it ends in a later
	 * segment, it comes as a separate TDSBPF_EV_TDS_DONE event. Either way
	 * each reply packet's final DONE is reported exactly once.
	 * tail_flags: TDSBPF_TAIL_* (below).
	 */
	__u8 tail_token;
	__u8 tail_flags;
	__u16 tail_done_status;
	__u64 tail_done_rows;
	union tdsbpf_tds_detail d;
};

struct tdsbpf_smp {
	__u8 flags;
	__u8 pad;
	__u16 sid;
	__u32 length;
	__u32 seq;
	__u32 window;
};

/*
 * A stored procedure's reply ends DONEINPROC (its last statement, with that
 * statement's row count), RETURNSTATUS, DONEPROC (count bit clear). When the
 * packet ends so, the rows reported with the final DONE are the DONEINPROC's
 * and this flag is set: they are counted although the DONEPROC's count bit
 * is clear.
 */
#define TDSBPF_TAIL_INPROC_ROWS 0x01

/* The DONE token found in the last bytes of a server reply packet. */
struct tdsbpf_done {
	__u8 token;   /* 0xFD, 0xFE or 0xFF */
	__u8 flags;   /* TDSBPF_TAIL_* */
	__u16 status; /* 0x01 more, 0x02 error, 0x10 count, 0x20 attention */
	__u16 cur_cmd;
	__u16 pad2;
	__u64 rows;
};

struct tdsbpf_stats {
	__u64 bytes[2]; /* TCP payload bytes per direction */
	__u32 packets[2];
	__u32 retrans[2];
	__u32 keepalives[2];
	__u32 zero_windows[2];
	__u64 first_ns;
	__u8 final; /* 1 when sent on close */
	__u8 pad;
	__u16 largest[2]; /* the largest TCP payload of one segment per direction (as seen: GRO joins) */
	__u16 pad2;
	/* second sightings of packets already counted, left out of every count above */
	__u32 duplicates[2];
};

/*
 * Routine work a flow's entry counted instead of sending an event per TDS
 * packet (TDSBPF_EV_WORK). Once user space has seen a request and its reply
 * on a connection, a later SQL batch or RPC that starts when nothing is in
 * flight, and its reply, are routine while every packet of theirs changes
 * nothing but these counts: not in SMP, no attention, no ERROR, LOGINACK,
 * routing or packet-size token in the reply's first bytes, no attention
 * acknowledged, no TLS record, an answer within 4.29 s. The first packet
 * that is not routine (or any other event of the flow, or the close) sends
 * what was counted first, so user space applies it in order; so do a full
 * set of latencies, the periodic counters and, for flows still open, the
 * end of the run. The counts are those since the last such event; the
 * rest is the state after the last packet counted.
 */
#define TDSBPF_WORK_LATENCIES  9
#define TDSBPF_WORK_ROWS       0x01 /* a DONE counted rows (rows is meaningful, even 0) */
#define TDSBPF_WORK_IN_C2S     0x02 /* a client message has begun and not ended */
#define TDSBPF_WORK_IN_S2C     0x04 /* a reply has begun and not ended */
#define TDSBPF_WORK_PENDING    0x08 /* a request waits for its reply, since pending_ns */
/*
 * An encrypted connection's TLS application data (full encryption, TDS
 * 8.0), counted the same way once four runs of client records have reached
 * user space (the login's turns are over): each new run of client records
 * is a request (in sql_batches), the server's first record after it its
 * reply. IN_REQUEST: the last run has not been answered; CLIENT_RUN: the
 * last record was the client's.
 */
#define TDSBPF_WORK_TLS	       0x10
#define TDSBPF_WORK_IN_REQUEST 0x20
#define TDSBPF_WORK_CLIENT_RUN 0x40
struct tdsbpf_work {
	__u64 pending_ns;
	__u64 last_c2s_ns; /* the last client packet counted (0: none) */
	__u64 last_s2c_ns; /* the last server packet counted (0: none) */
	__u64 rows;	   /* rows the counted DONE tokens reported */
	__u32 sql_batches;
	__u32 rpcs;
	__u32 responses;			 /* replies begun (each answers the request pending, if any) */
	__u32 done_tokens;			 /* final DONEs of reply packets */
	__u32 events;				 /* the events these stand for (TDS packets, pending DONEs) */
	__u32 truncated;			 /* of them, TDS packets not wholly in the segment of their header */
	__u32 reset_connection;			 /* requests with RESETCONNECTION(SKIPTRAN) */
	__u32 idle_reuses;			 /* requests a second or more after the server's last packet */
	__u16 spid;				 /* a reply's SPID, 0: none */
	__u8 n;					 /* latencies held */
	__u8 flags;				 /* TDSBPF_WORK_* */
	__u32 latency_ns[TDSBPF_WORK_LATENCIES]; /* request to reply, one per reply that answered one */
};

struct tdsbpf_tcp {
	__u32 retrans_bytes; /* RETRANS: bytes already seen */
	__u8 ttl;	     /* RST: its IP TTL (hop limit) */
	__u8 usual_ttl;	     /* RST: the TTL of the packet before it from the same side (0: none) */
	__u16 pad;
	/*
	 * SYN and SYN+ACK seen leaving this host (tc egress): the cgroup v2 id
	 * of the local socket (the listener's for a SYN+ACK); 0 elsewhere.
	 */
	__u64 cgroup_id;
};

struct tdsbpf_event {
	__u64 ts_ns; /* CLOCK_MONOTONIC (live) or capture time (offline) */
	struct tdsbpf_flow_key key;
	__u32 ifindex;
	__u8 kind;	/* tdsbpf_event_kind */
	__u8 dir;	/* tdsbpf_dir */
	__u8 tcp_flags; /* FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 URG 0x20 ECE 0x40 CWR 0x80 */
	__u8 hook;	/* tdsbpf_hook */
	__u32 seq;	/* TCP sequence of the segment */
	__u32 ack;
	__u32 payload_len;  /* TCP payload bytes in this segment (or GSO/GRO super-segment) */
	__u32 frame_offset; /* offset of the frame in the TCP payload (TDS/TLS/SMP events) */
	__u16 window;	    /* raw TCP window field */
	__u16 flags;	    /* TDSBPF_F_* */
	/*
	 * The event's number among its flow's events, from 1; numbers are
	 * taken also by events the ring buffer had no room for, so a gap
	 * means events of this flow were lost. 0: no flow state (an event of
	 * a flow the table could not hold). A flow whose state was evicted
	 * and created again starts from 1 again, with TDSBPF_F_MIDSTREAM.
	 */
	__u32 flow_seq;
	union {
		struct tdsbpf_tds tds;
		struct tdsbpf_tls tls;
		struct tdsbpf_smp smp;
		struct tdsbpf_done done;
		struct tdsbpf_stats stats;
		struct tdsbpf_tcp tcp;
		struct tdsbpf_work work;
	} u;
};

/* NTLM AUTHENTICATE, a larger record of its own (kind TDSBPF_EV_NTLM_AUTH). */
#define TDSBPF_NTLM_NAME_MAX 64
#define TDSBPF_NTLM_UNICODE  0x01
struct tdsbpf_ntlm_event {
	struct tdsbpf_event base; /* base.kind == TDSBPF_EV_NTLM_AUTH, base.u.tds is the carrier */
	__u32 negotiate_flags;
	__u16 domain_len; /* bytes copied (UTF-16 or OEM) */
	__u16 user_len;
	__u16 workstation_len;
	__u8 encoding; /* TDSBPF_NTLM_UNICODE */
	__u8 pad;
	__u8 domain[TDSBPF_NTLM_NAME_MAX];
	__u8 user[TDSBPF_NTLM_NAME_MAX];
	__u8 workstation[TDSBPF_NTLM_NAME_MAX];
};

/*
 * A SQL Server Browser (SSRP, UDP 1434) datagram, with --follow-browser. The
 * flow key names the Browser's end as the server (server_port 1434) and
 * the other end as the client; dir is C2S for a request. The TCP fields of
 * the base are zero; payload_len is the datagram's payload length.
 */
#define TDSBPF_BROWSER_PORT	1434
#define TDSBPF_BROWSER_MAX	1024
#define TDSBPF_BROWSER_FOLLOWED 4
struct tdsbpf_browser_event {
	struct tdsbpf_event base; /* base.kind == TDSBPF_EV_BROWSER */
	__u16 data_len;		  /* bytes of the payload in data */
	__u16 pad;
	/* TCP ports of the reply the packet program traces from now on */
	__u16 followed[TDSBPF_BROWSER_FOLLOWED];
	__u32 pad2;
	__u8 data[TDSBPF_BROWSER_MAX];
};

/*
 * A packet as seen, for --write-pcap: the frame's first cap_len bytes
 * (link header first) follow the header; the record is
 * sizeof(struct tdsbpf_packet_event) + cap_len bytes long.
 */
#define TDSBPF_SNAPLEN_MAX 4096
struct tdsbpf_packet_event {
	struct tdsbpf_event base; /* base.kind == TDSBPF_EV_PACKET; key, dir, hook, ifindex, ts */
	__u32 orig_len;		  /* the frame's length on the wire */
	__u32 cap_len;		  /* bytes that follow */
};

/*
 * The first bytes of a TDS message whose text user space reads: a LOGIN7 in
 * clear (host, application, user, database names), a reply holding a
 * LOGINACK or an ERROR (ENVCHANGE database and language, message texts), a
 * TLS ClientHello or ServerHello flight (offered and chosen cipher suites,
 * SNI, ALPN, the server's certificate when TLS 1.2 or older shows it; its
 * TDS packet's body, or for TDS 8.0 the records from the first).
 * It follows the message's TDS event (base is a copy of it, with kind
 * EXCERPT and flow_seq 0: a lost excerpt loses text, not events). The
 * record is TDSBPF_EXCERPT_HDR + len bytes; at most TDSBPF_EXCERPTS_PER_FLOW
 * are sent per connection. A LOGIN7's holds its obfuscated password: user
 * space reads the names and never shows the bytes.
 *
 * A server's hello flight rarely fits: its certificates run on past the
 * first segment (or TDSBPF_EXCERPT_MAX). Its next bytes follow, as they
 * arrive in order, in MORE excerpts of the raw TCP payload (TDS headers
 * included, for user space to strip), up to TDSBPF_HELLO_MORE bytes in
 * at most TDSBPF_HELLO_CHUNKS excerpts (an allowance of their own), until
 * the client speaks again; body_len then holds the chunk's offset from the
 * flight's first byte, so a gap shows.
 */
#define TDSBPF_EXCERPT_MAX	 2048
#define TDSBPF_EXCERPTS_PER_FLOW 8
#define TDSBPF_EXCERPT_LOGIN7	 1
#define TDSBPF_EXCERPT_REPLY	 2
#define TDSBPF_EXCERPT_TLS_HELLO 3
#define TDSBPF_EXCERPT_MORE	 4
#define TDSBPF_HELLO_MORE	 6144
#define TDSBPF_HELLO_CHUNKS	 8
struct tdsbpf_excerpt_event {
	struct tdsbpf_event base;
	__u8 what;	/* TDSBPF_EXCERPT_* */
	__u8 tds71;	/* the flow speaks TDS 7.1 or older (token layouts differ) */
	__u16 len;	/* bytes of data[] sent, from the TDS packet's body */
	__u32 body_len; /* the TDS packet's body length (more than len: cut); MORE: the offset */
	__u8 data[TDSBPF_EXCERPT_MAX];
};
#define TDSBPF_EXCERPT_HDR __builtin_offsetof(struct tdsbpf_excerpt_event, data)

/* Counters kept per CPU in the "counters" map, indexed by this enum. */
enum tdsbpf_counter {
	TDSBPF_CNT_RINGBUF_DROPS = 0, /* events that could not be reserved */
	TDSBPF_CNT_PACKETS_SEEN,      /* SQL Server packets */
	TDSBPF_CNT_FLOWS_CREATED,
	TDSBPF_CNT_FLOW_INSERT_FAIL,
	TDSBPF_CNT_FRAMES_SKIPPED, /* more frames in a segment than the walk allows */
	TDSBPF_CNT_PULL_FAIL,	   /* headers not reachable */
	TDSBPF_CNT_EVENTS,	   /* events put in the ring buffer */
	TDSBPF_CNT_CAPTURE_DROPS,  /* packet copies (--write-pcap) that found no room */
	TDSBPF_CNT_EXCERPT_DROPS,  /* excerpts (message texts) that found no room */
	TDSBPF_CNT_MAX
};

/* Limits of the in-kernel walk. */
#define TDSBPF_MAX_FRAMES_PER_SEGMENT 16
#define TDSBPF_MAX_PORTS	      64
#define TDSBPF_DEFAULT_PORT	      1433

/*
 * The layout both compilers must agree on. A failure here means a struct
 * changed: fix the padding, or bump TDSBPF_EVENT_ABI and these figures.
 */
#ifdef __cplusplus
#define TDSBPF_LAYOUT(cond, what) static_assert(cond, what)
#else
#define TDSBPF_LAYOUT(cond, what) _Static_assert(cond, what)
#endif
#define TDSBPF_SIZE(t, n)      TDSBPF_LAYOUT(sizeof(struct t) == (n), "size of struct " #t)
#define TDSBPF_OFFSET(t, f, n) TDSBPF_LAYOUT(__builtin_offsetof(struct t, f) == (n), "offset of " #t "." #f)
TDSBPF_SIZE(tdsbpf_flow_key, 40);
TDSBPF_SIZE(tdsbpf_prelogin, 68);
TDSBPF_SIZE(tdsbpf_tls, 24);
TDSBPF_SIZE(tdsbpf_login7, 36);
TDSBPF_SIZE(tdsbpf_reply, 56);
TDSBPF_SIZE(tdsbpf_sspi, 8);
TDSBPF_SIZE(tdsbpf_request, 16);
TDSBPF_LAYOUT(sizeof(union tdsbpf_tds_detail) == 72, "size of union tdsbpf_tds_detail");
TDSBPF_SIZE(tdsbpf_tds, 104);
TDSBPF_SIZE(tdsbpf_smp, 16);
TDSBPF_SIZE(tdsbpf_done, 16);
TDSBPF_SIZE(tdsbpf_stats, 72);
TDSBPF_SIZE(tdsbpf_tcp, 16);
TDSBPF_SIZE(tdsbpf_work, 104);
TDSBPF_SIZE(tdsbpf_event, 184);
TDSBPF_SIZE(tdsbpf_ntlm_event, 392);
TDSBPF_SIZE(tdsbpf_browser_event, 1224);
TDSBPF_SIZE(tdsbpf_packet_event, 192);
TDSBPF_SIZE(tdsbpf_excerpt_event, 192 + TDSBPF_EXCERPT_MAX);
TDSBPF_OFFSET(tdsbpf_event, key, 8);
TDSBPF_OFFSET(tdsbpf_event, ifindex, 48);
TDSBPF_OFFSET(tdsbpf_event, kind, 52);
TDSBPF_OFFSET(tdsbpf_event, seq, 56);
TDSBPF_OFFSET(tdsbpf_event, frame_offset, 68);
TDSBPF_OFFSET(tdsbpf_event, flags, 74);
TDSBPF_OFFSET(tdsbpf_event, u, 80);
TDSBPF_OFFSET(tdsbpf_tds, tail_done_rows, 24);
TDSBPF_OFFSET(tdsbpf_tds, d, 32);
TDSBPF_OFFSET(tdsbpf_reply, done_rows, 48);
TDSBPF_OFFSET(tdsbpf_stats, first_ns, 48);
TDSBPF_OFFSET(tdsbpf_ntlm_event, negotiate_flags, 184);
TDSBPF_OFFSET(tdsbpf_ntlm_event, domain, 196);
#undef TDSBPF_SIZE
#undef TDSBPF_OFFSET

#endif /* TDSBPF_EVENTS_H */
