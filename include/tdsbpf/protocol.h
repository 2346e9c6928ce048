/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The wire protocols' numbers, named once for the kernel programs and user
 * space alike: TDS packet types and status bits ([MS-TDS] 2.2.3.1),
 * PRELOGIN options (2.2.6.5), tokens (2.2.7), ENVCHANGE types, DONE status
 * bits, SMP flags ([MS-SMP] 2.2.1), and the TLS content and handshake
 * types (RFC 8446, 5.1 and 4). Plain C for the BPF target.
 */
#ifndef TDSBPF_PROTOCOL_H
#define TDSBPF_PROTOCOL_H

/* TDS packet types (first byte of the 8-byte header). */
enum tdsbpf_tds_type {
	TDS_SQL_BATCH = 1,
	TDS_PRE7_LOGIN = 2,
	TDS_RPC = 3,
	TDS_REPLY = 4,
	TDS_ATTENTION = 6,
	TDS_BULK_LOAD = 7,
	TDS_FEDAUTH_TOKEN = 8,
	TDS_TRANSACTION_MGR = 14,
	TDS_LOGIN7 = 16,
	TDS_SSPI = 17,
	TDS_PRELOGIN = 18,
};

/* TDS header status bits. */
#define TDS_STATUS_EOM			   0x01
#define TDS_STATUS_IGNORE		   0x02
#define TDS_STATUS_RESETCONNECTION	   0x08
#define TDS_STATUS_RESETCONNECTIONSKIPTRAN 0x10

/* PRELOGIN option tokens. */
#define TDS_PL_VERSION	       0
#define TDS_PL_ENCRYPTION      1
#define TDS_PL_INSTOPT	       2
#define TDS_PL_THREADID	       3
#define TDS_PL_MARS	       4
#define TDS_PL_TRACEID	       5
#define TDS_PL_FEDAUTHREQUIRED 6
#define TDS_PL_TERMINATOR      0xff

/* Encryption values of the PRELOGIN ENCRYPTION option. */
#define TDS_ENCRYPT_OFF		0
#define TDS_ENCRYPT_ON		1
#define TDS_ENCRYPT_NOT_SUP	2
#define TDS_ENCRYPT_REQ		3
#define TDS_ENCRYPT_CLIENT_CERT 0x80

/* Tokens of a server reply. */
#define TDS_TOKEN_RETURNSTATUS	0x79
#define TDS_TOKEN_COLMETADATA	0x81
#define TDS_TOKEN_TABNAME	0xa4
#define TDS_TOKEN_COLINFO	0xa5
#define TDS_TOKEN_ORDER		0xa9
#define TDS_TOKEN_ERROR		0xaa
#define TDS_TOKEN_INFO		0xab
#define TDS_TOKEN_LOGINACK	0xad
#define TDS_TOKEN_FEATUREEXTACK 0xae
#define TDS_TOKEN_ROW		0xd1
#define TDS_TOKEN_NBCROW	0xd2
#define TDS_TOKEN_ENVCHANGE	0xe3
#define TDS_TOKEN_SESSIONSTATE	0xe4
#define TDS_TOKEN_SSPI		0xed
#define TDS_TOKEN_FEDAUTHINFO	0xee
#define TDS_TOKEN_DONE		0xfd
#define TDS_TOKEN_DONEPROC	0xfe
#define TDS_TOKEN_DONEINPROC	0xff

/* ENVCHANGE types the tracer reads. */
#define TDS_ENV_PACKETSIZE 4
#define TDS_ENV_ROUTING	   20

/* DONE status bits. */
#define TDS_DONE_MORE  0x01
#define TDS_DONE_ERROR 0x02
#define TDS_DONE_COUNT 0x10
#define TDS_DONE_ATTN  0x20

/* LOGIN7 feature extension ids. */
#define TDS_FEATURE_FEDAUTH    0x02
#define TDS_FEATURE_TERMINATOR 0xff

/* SMP (MARS) header: SMID and flags. */
#define SMP_SMID 0x53
#define SMP_SYN	 0x01
#define SMP_ACK	 0x02
#define SMP_FIN	 0x04
#define SMP_DATA 0x08

/* TLS record content types and handshake message types. */
#define TLS_CT_CHANGE_CIPHER_SPEC  20
#define TLS_CT_ALERT		   21
#define TLS_CT_HANDSHAKE	   22
#define TLS_CT_APPLICATION_DATA	   23
#define TLS_HS_CLIENT_HELLO	   1
#define TLS_HS_SERVER_HELLO	   2
#define TLS_HS_CERTIFICATE	   11
#define TLS_HS_CLIENT_KEY_EXCHANGE 16
/*
 * Handshake messages a TLS 1.2 record carries in clear: the hellos, New
 * Session Ticket and Certificate .. Client Key Exchange. Any other first byte
 * of a handshake record is taken for an encrypted message (Finished).
 */
#define TLS_HS_IN_CLEAR(t)	   ((t) == 1 || (t) == 2 || (t) == 4 || ((t) >= 11 && (t) <= 16))

#endif /* TDSBPF_PROTOCOL_H */
