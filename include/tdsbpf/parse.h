/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Parsers for the messages a TDS tracer looks into: PRELOGIN, TLS records
 * and hellos, LOGIN7, the first tokens of a server reply, SSPI blobs
 * (NTLM, SPNEGO, Kerberos), requests and the DONE token that ends a reply.
 *
 * They are pure functions over a bounded buffer: the walk (walk.h) copies
 * up to TDSBPF_BUF bytes of a message into sc->b, sets sc->n, and calls
 * a parser, which writes its result to sc->out (and sc->res). They never
 * touch packet memory, so the same code runs unchanged in the kernel, in
 * the offline reader and in unit tests on crafted bytes.
 *
 * In the BPF object they are global functions: the verifier checks each
 * of them once, whatever the number of places and paths that call them.
 * Every index into sc->b is checked against sc->n for correctness and
 * masked with TDSBPF_BUF_MASK for the verifier (the buffer has slack after
 * TDSBPF_BUF bytes, so a masked index can read a few bytes on).
 *
 * Loops: a cursor that moves by lengths read from the message is stored
 * in sc and read back at the top of each iteration. For the verifier a
 * value read from memory is unknown, so the iterations' states converge
 * instead of multiplying with every path that moved the cursor.
 *
 * The LOGIN7 password is never read: the parser skips its offset/length
 * pair and never looks at the bytes it points at.
 */
#ifndef TDSBPF_PARSE_H
#define TDSBPF_PARSE_H

#include "events.h"
#include "flow.h"

#ifndef TDSBPF_INLINE
#define TDSBPF_INLINE static inline __attribute__((always_inline))
#endif
/* A parser: a global function in BPF (verified once), static on the host. */
#ifndef TDSBPF_PARSER
#define TDSBPF_PARSER static __attribute__((noinline))
#endif

TDSBPF_INLINE __u16 tdsbpf_be16(const __u8 *b)
{
	return (__u16)((b[0] << 8) | b[1]);
}

TDSBPF_INLINE __u16 tdsbpf_le16(const __u8 *b)
{
	return (__u16)(b[0] | (b[1] << 8));
}

TDSBPF_INLINE __u32 tdsbpf_be32(const __u8 *b)
{
	return ((__u32)b[0] << 24) | ((__u32)b[1] << 16) | ((__u32)b[2] << 8) | b[3];
}

TDSBPF_INLINE __u32 tdsbpf_le32(const __u8 *b)
{
	return ((__u32)b[3] << 24) | ((__u32)b[2] << 16) | ((__u32)b[1] << 8) | b[0];
}

TDSBPF_INLINE __u64 tdsbpf_le64(const __u8 *b)
{
	return (__u64)tdsbpf_le32(b) | ((__u64)tdsbpf_le32(b + 4) << 32);
}

/*
 * The bytes at i, or 0 when [i, i + len) is not inside the n valid bytes.
 * The empty asm hides from the compiler that i < TDSBPF_BUF here, so it
 * keeps the mask, which is the bound the verifier needs.
 */
TDSBPF_INLINE const __u8 *tdsbpf_at(const struct tdsbpf_scratch *sc, __u32 i, __u32 len)
{
	if (i >= TDSBPF_BUF || len > 32 || i + len > sc->n)
		return 0;
	__asm__ __volatile__("" : "+r"(i));
	return sc->b + (i & TDSBPF_BUF_MASK);
}

/* ---- Frame headers ------------------------------------------------------ */

TDSBPF_INLINE int tdsbpf_tds_type_valid(__u8 type)
{
	switch (type) {
	case TDS_SQL_BATCH:
	case TDS_PRE7_LOGIN:
	case TDS_RPC:
	case TDS_REPLY:
	case TDS_ATTENTION:
	case TDS_BULK_LOAD:
	case TDS_FEDAUTH_TOKEN:
	case TDS_TRANSACTION_MGR:
	case TDS_LOGIN7:
	case TDS_SSPI:
	case TDS_PRELOGIN: return 1;
	}
	return 0;
}

/*
 * A plausible TDS header: a known type, no status bits beyond the defined
 * ones (0x04 is seen on real non-final packets, so it is allowed), a length
 * that can hold the header and fits the largest packet size, and window 0.
 */
TDSBPF_INLINE int tdsbpf_tds_header_valid(const __u8 *h)
{
	__u16 len = tdsbpf_be16(h + 2);

	if (!tdsbpf_tds_type_valid(h[0]))
		return 0;
	if (h[1] & 0xe0)
		return 0;
	if (len < 8 || len > 32768)
		return 0;
	return h[7] == 0;
}

/* A plausible TLS record header (SSL 3.0 .. TLS 1.3 record versions). */
TDSBPF_INLINE int tdsbpf_tls_header_valid(const __u8 *h)
{
	__u16 len = tdsbpf_be16(h + 3);

	if (h[0] < 20 || h[0] > 23)
		return 0;
	if (h[1] != 3 || h[2] > 4)
		return 0;
	return len > 0 && len <= 16384 + 2048;
}

/* A plausible SMP header; DATA frames must hold at least a TDS header. */
TDSBPF_INLINE int tdsbpf_smp_header_valid(const __u8 *h)
{
	__u8 flags = h[1];
	__u32 len = tdsbpf_le32(h + 4);

	if (h[0] != SMP_SMID)
		return 0;
	if (flags == SMP_DATA)
		return len >= 16 + 8 && len <= 16 + 32768;
	if (flags == SMP_SYN || flags == SMP_ACK || flags == SMP_FIN)
		return len == 16;
	return 0;
}

/* ---- PRELOGIN --------------------------------------------------------- */

#define TDSBPF_PRELOGIN_OPTIONS_MAX 12

/*
 * A plaintext PRELOGIN payload (after the 8-byte TDS header) in sc->b.
 * Fills sc->out.prelogin; returns 0, or -1 when the option table did not
 * end within the bytes (the options found before are still filled in).
 */
TDSBPF_PARSER int tdsbpf_parse_prelogin(struct tdsbpf_scratch *sc)
{
	struct tdsbpf_prelogin *out;
	const __u8 *e, *v;
	int i;

	if (!sc)
		return -1;
	out = &sc->out.prelogin;
	out->encryption = TDSBPF_VALUE_ABSENT;
	out->mars = TDSBPF_VALUE_ABSENT;
	out->fedauth_required = TDSBPF_VALUE_ABSENT;
	for (i = 0; i < TDSBPF_PRELOGIN_OPTIONS_MAX; i++) {
		__u32 at = (__u32)i * 5;
		__u16 off, len;
		__u8 tok;

		e = tdsbpf_at(sc, at, 1);
		if (!e)
			return -1;
		tok = e[0];
		if (tok == TDS_PL_TERMINATOR)
			return 0;
		e = tdsbpf_at(sc, at, 5);
		if (!e)
			return -1;
		off = tdsbpf_be16(e + 1);
		len = tdsbpf_be16(e + 3);
		if (tok < 16)
			out->present |= (__u16)(1u << tok);
		switch (tok) {
		case TDS_PL_VERSION: /* major, minor, build (BE), subbuild */
			v = tdsbpf_at(sc, off, 6);
			if (len >= 6 && v) {
				out->version_major = v[0];
				out->version_minor = v[1];
				out->version_build = tdsbpf_be16(v + 2);
				out->version_subbuild = tdsbpf_be16(v + 4);
			}
			break;
		case TDS_PL_ENCRYPTION:
			v = tdsbpf_at(sc, off, 1);
			if (len >= 1 && v)
				out->encryption = v[0];
			break;
		case TDS_PL_INSTOPT: { /* a NUL-terminated instance name */
			__u32 k;

			for (k = 0; k < sizeof(out->instance); k++) {
				v = tdsbpf_at(sc, off + k, 1);
				if (k >= len || !v || v[0] == 0)
					break;
				out->instance[k] = v[0];
			}
			out->instance_len = (__u8)k;
			break;
		}
		case TDS_PL_THREADID:
			v = tdsbpf_at(sc, off, 4);
			if (len >= 4 && v)
				out->thread_id = tdsbpf_be32(v);
			break;
		case TDS_PL_MARS:
			v = tdsbpf_at(sc, off, 1);
			if (len >= 1 && v)
				out->mars = v[0];
			break;
		case TDS_PL_TRACEID: /* connection id (16), activity id (16) + sequence (4) */
			v = tdsbpf_at(sc, off, 32);
			if (len >= 36 && v) {
				__builtin_memcpy(out->connection_id, v, 16);
				__builtin_memcpy(out->activity_id, v + 16, 16);
				v = tdsbpf_at(sc, off + 32, 4);
				if (v)
					out->activity_seq = tdsbpf_le32(v);
			}
			break;
		case TDS_PL_FEDAUTHREQUIRED:
			v = tdsbpf_at(sc, off, 1);
			if (len >= 1 && v)
				out->fedauth_required = v[0];
			break;
		default: break;
		}
	}
	return -1;
}

/* ---- TLS ---------------------------------------------------------------- */

#define TDSBPF_TLS_EXT_MAX	24
#define TDSBPF_TLS_ALPN_ENTRIES 4

/* "tds/8.0" */
TDSBPF_INLINE int tdsbpf_is_alpn_tds8(const __u8 *b)
{
	return b[0] == 't' && b[1] == 'd' && b[2] == 's' && b[3] == '/' && b[4] == '8' && b[5] == '.' && b[6] == '0';
}

/* Looks for "tds/8.0" in an ALPN extension body at pos (protocol list). */
TDSBPF_INLINE int tdsbpf_alpn_has_tds8(struct tdsbpf_scratch *sc, __u32 start, __u32 end)
{
	const __u8 *b;
	__u32 pos;
	int i;

	sc->pos2 = start + 2; /* skip the list length */
	for (i = 0; i < TDSBPF_TLS_ALPN_ENTRIES; i++) {
		__u8 n;

		pos = sc->pos2;
		b = tdsbpf_at(sc, pos, 8);
		if (pos >= end || !b)
			return 0;
		n = b[0];
		if (n == 7 && pos + 8 <= end && tdsbpf_is_alpn_tds8(b + 1))
			return 1;
		sc->pos2 = pos + 1 + (__u32)n;
	}
	return 0;
}

/*
 * A TLS record whose first bytes are in sc->b: its type, version and
 * length; for a ClientHello or ServerHello also the hello version, the
 * version the server selected (supported_versions) and whether ALPN names
 * tds/8.0. Fills sc->out.tls; returns 0, or -1 if not a valid record.
 */
TDSBPF_PARSER int tdsbpf_parse_tls(struct tdsbpf_scratch *sc)
{
	struct tdsbpf_tls *out;
	const __u8 *b;
	__u32 pos, end;
	int client, i;

	if (!sc)
		return -1;
	out = &sc->out.tls;
	b = tdsbpf_at(sc, 0, 5);
	if (!b || !tdsbpf_tls_header_valid(b))
		return -1;
	out->content_type = b[0];
	out->record_version = tdsbpf_be16(b + 1);
	out->record_length = tdsbpf_be16(b + 3);
	if (b[0] == 21) {
		b = tdsbpf_at(sc, 5, 2);
		/* alerts in clear have 2 bytes; encrypted ones are longer */
		if (b && out->record_length == 2) {
			out->alert_level = b[0];
			out->alert_desc = b[1];
		}
		return 0;
	}
	if (b[0] != 22)
		return 0;
	b = tdsbpf_at(sc, 5, 1);
	if (!b)
		return 0;
	out->handshake_type = b[0];
	/* later handshake records carry encrypted Finished messages: only hellos */
	if (b[0] != 1 && b[0] != 2)
		return 0;
	client = b[0] == 1;
	b = tdsbpf_at(sc, 9, 2);
	if (!b)
		return 0;
	out->hello_version = tdsbpf_be16(b);
	pos = 9 + 2 + 32;	   /* record 5, handshake 4, version 2, random 32 */
	b = tdsbpf_at(sc, pos, 1); /* session id */
	if (!b)
		return 0;
	pos += 1 + (__u32)b[0];
	if (client) {
		b = tdsbpf_at(sc, pos, 2); /* cipher suites */
		if (!b)
			return 0;
		pos += 2 + (__u32)tdsbpf_be16(b);
		b = tdsbpf_at(sc, pos, 1); /* compression methods */
		if (!b)
			return 0;
		pos += 1 + (__u32)b[0];
	} else {
		pos += 2 + 1; /* one cipher suite, one compression method */
	}
	b = tdsbpf_at(sc, pos, 2); /* extensions length */
	if (!b)
		return 0;
	sc->end = pos + 2 + (__u32)tdsbpf_be16(b);
	sc->pos = pos + 2;
	sc->res.tls.alpn = 0;
	out->flags |= TDSBPF_TLS_HELLO_PARSED;
	for (i = 0; i < TDSBPF_TLS_EXT_MAX; i++) {
		__u16 type, len;

		/* the cursor goes through memory: see "Loops" at the top */
		pos = sc->pos;
		end = sc->end;
		b = tdsbpf_at(sc, pos, 6);
		if (pos + 4 > end || !b)
			break;
		type = tdsbpf_be16(b);
		len = tdsbpf_be16(b + 2);
		if (type == 0x0010)
			sc->res.tls.alpn = ((pos + 4) << 16) | len; /* looked at after the walk */
		else if (type == 0x002b && !client && len == 2)
			out->selected_version = tdsbpf_be16(b + 4);
		sc->pos = pos + 4 + (__u32)len;
	}
	pos = sc->res.tls.alpn >> 16;
	if (pos && tdsbpf_alpn_has_tds8(sc, pos, pos + (sc->res.tls.alpn & 0xffff)))
		out->flags |= TDSBPF_TLS_ALPN_TDS8;
	return 0;
}

/* ---- SSPI / NTLM -------------------------------------------------------- */

#define TDSBPF_SSPI_SCAN 200 /* offsets of an SSPI blob searched for NTLMSSP */

TDSBPF_INLINE int tdsbpf_is_ntlmssp(const __u8 *b)
{
	return b[0] == 'N' && b[1] == 'T' && b[2] == 'L' && b[3] == 'M' && b[4] == 'S' && b[5] == 'S' && b[6] == 'P' &&
	       b[7] == 0;
}

/*
 * An SSPI blob at sc->b[sc->in.start...] (its end is sc->n): raw NTLMSSP,
 * NTLMSSP wrapped in SPNEGO, SPNEGO without NTLMSSP (Kerberos), or a raw
 * Kerberos GSS token. Returns the TDSBPF_SSPI_* kind; for NTLM, sc->res.sspi
 * has the offset of "NTLMSSP" in sc->b and its message type.
 */
TDSBPF_PARSER int tdsbpf_classify_sspi(struct tdsbpf_scratch *sc)
{
	const __u8 *b;
	__u32 start, i, oid;

	if (!sc)
		return TDSBPF_SSPI_UNKNOWN;
	start = sc->in.start;
	sc->res.sspi.ntlm_at = 0;
	sc->res.sspi.ntlm_type = 0;
	if (start + 8 > sc->n)
		return start >= sc->n ? TDSBPF_SSPI_NONE : TDSBPF_SSPI_UNKNOWN;
	/* one 32-bit compare per position ("NTLM"), the rest checked once */
	for (i = 0; i < TDSBPF_SSPI_SCAN; i++) {
		b = tdsbpf_at(sc, start + i, 12);
		if (!b)
			break;
		if (tdsbpf_le32(b) == 0x4d4c544e)
			break;
	}
	/*
	 * Through memory (and sc->n, sc->in.start read again), so that the
	 * verifier forgets which iteration left the loop and what it learnt
	 * there: the rest is then checked once, not once per exit.
	 */
	sc->pos = i;
	__asm__ __volatile__("" ::: "memory");
	i = sc->pos;
	start = sc->in.start;
	b = tdsbpf_at(sc, start + i, 12);
	if (b && tdsbpf_is_ntlmssp(b)) {
		sc->res.sspi.ntlm_at = start + i;
		sc->res.sspi.ntlm_type = b[8];
		return TDSBPF_SSPI_NTLM;
	}
	b = tdsbpf_at(sc, start, 16);
	if (!b)
		return TDSBPF_SSPI_UNKNOWN;
	/* negTokenResp continuation of a SPNEGO exchange */
	if (b[0] == 0xa1)
		return TDSBPF_SSPI_SPNEGO;
	if (b[0] != 0x60)
		return TDSBPF_SSPI_UNKNOWN;
	/* GSS-API InitialContextToken: [APPLICATION 0], a DER length, the mechanism OID */
	oid = 2;
	if (b[1] & 0x80)
		oid += b[1] & 0x7f;
	if (oid > 6)
		return TDSBPF_SSPI_UNKNOWN;
	b = tdsbpf_at(sc, start + oid, 8);
	if (!b || b[0] != 0x06)
		return TDSBPF_SSPI_UNKNOWN;
	/* SPNEGO 1.3.6.1.5.5.2 */
	if (b[1] == 0x06 && b[2] == 0x2b && b[3] == 0x06 && b[4] == 0x01 && b[5] == 0x05 && b[6] == 0x05 &&
	    b[7] == 0x02)
		return TDSBPF_SSPI_SPNEGO;
	/* Kerberos 1.2.840.113554.1.2.2 or Microsoft's 1.2.840.48018.1.2.2 */
	if (b[1] == 0x09 && b[2] == 0x2a && b[3] == 0x86 && b[4] == 0x48)
		return TDSBPF_SSPI_KERBEROS;
	return TDSBPF_SSPI_UNKNOWN;
}

/*
 * An NTLM AUTHENTICATE message at sc->b[sc->in.start]: for domain, user and
 * workstation, sc->res.ntlm.name[i] = length << 16 | offset (offset from the
 * start of the NTLM message), and sc->res.ntlm.flags the negotiate flags (0 when they
 * lie beyond the bytes at hand). The
 * challenge responses and the session key are never looked at. Returns 0,
 * or -1 when this is not an AUTHENTICATE.
 */
TDSBPF_PARSER int tdsbpf_parse_ntlm_auth(struct tdsbpf_scratch *sc)
{
	const __u8 *h;
	int i;

	if (!sc)
		return -1;
	h = tdsbpf_at(sc, sc->in.start, 12);
	if (!h || !tdsbpf_is_ntlmssp(h) || tdsbpf_le32(h + 8) != 3)
		return -1;
	for (i = 0; i < 3; i++) {
		/* security buffers: len u16, maxlen u16, offset u32 at 28, 36, 44 */
		h = tdsbpf_at(sc, sc->in.start + 28 + 8 * (__u32)i, 8);
		if (!h)
			return -1;
		sc->res.ntlm.name[i] = ((__u32)tdsbpf_le16(h) << 16) | (tdsbpf_le32(h + 4) & 0xffff);
	}
	h = tdsbpf_at(sc, sc->in.start + 60, 4);
	sc->res.ntlm.flags = h ? tdsbpf_le32(h) : 0;
	return 0;
}

/* ---- LOGIN7 --------------------------------------------------------- */

/* One more item of the TLS chain (see struct tdsbpf_tls). */
TDSBPF_INLINE void tdsbpf_tls_chain_add(struct tdsbpf_tls *out, __u8 item)
{
	__u8 n = out->chain_n;

	if (n < TDSBPF_TLS_CHAIN)
		out->chain[n] = item;
	if (n < 255)
		out->chain_n = n + 1;
}

/*
 * What follows the first handshake message of the TLS record at sc->b[0]:
 * the other messages of that record when it is a handshake in clear, then
 * the records after it, as far as the sc->n bytes go; sc->in.body is how
 * many bytes the packet (or record) has, so that a walk stopped by the end
 * of the bytes read says so. Fills sc->out.tls.chain*; returns 0, or -1
 * if sc->b does not start with a record.
 */
TDSBPF_PARSER int tdsbpf_parse_tls_chain(struct tdsbpf_scratch *sc)
{
	struct tdsbpf_tls *out;
	const __u8 *b;
	__u32 pos, end, next, state, at, need;
	int i;

	if (!sc)
		return -1;
	out = &sc->out.tls;
	out->chain_n = 0;
	out->chain_more = 0;
	b = tdsbpf_at(sc, 0, 6);
	if (!b || !tdsbpf_tls_header_valid(b))
		return -1;
	/* the cursor goes through memory: see "Loops" at the top */
	sc->pos = 5;
	sc->end = 5 + (__u32)tdsbpf_be16(b + 3);
	/* state bit 0: at a message of a handshake record in clear; bit 1: after Change Cipher Spec */
	if (b[0] == TLS_CT_HANDSHAKE && TLS_HS_IN_CLEAR(b[5]))
		sc->pos2 = 1;
	else
		sc->pos2 = b[0] == TLS_CT_CHANGE_CIPHER_SPEC ? 2 : 0;
	at = 0;
	need = 0;
	for (i = 0; i < TDSBPF_TLS_CHAIN + 1; i++) {
		pos = sc->pos;
		end = sc->end;
		state = sc->pos2;
		next = end;
		if (state & 1) {
			at = pos;
			need = 4;
			b = tdsbpf_at(sc, pos, 4);
			if (!b)
				break;
			next = pos + 4 + ((__u32)b[1] << 16 | (__u32)b[2] << 8 | b[3]);
			if (next < end) {
				/* another message in the same record */
				at = next;
				need = 1;
				b = tdsbpf_at(sc, next, 1);
				if (!b)
					break;
				tdsbpf_tls_chain_add(out, b[0]);
				sc->pos = next;
				continue;
			}
			next = end;
		}
		/* the next record */
		at = next;
		need = 6;
		b = tdsbpf_at(sc, next, 6);
		if (!b || !tdsbpf_tls_header_valid(b))
			break;
		sc->end = next + 5 + (__u32)tdsbpf_be16(b + 3);
		sc->pos = next + 5;
		state &= 2;
		if (b[0] == TLS_CT_CHANGE_CIPHER_SPEC) {
			state = 2;
			tdsbpf_tls_chain_add(out, TDSBPF_TLS_RECORD | b[0]);
		} else if (b[0] == TLS_CT_HANDSHAKE && !state && TLS_HS_IN_CLEAR(b[5])) {
			state = 1;
			tdsbpf_tls_chain_add(out, b[5]);
		} else if (b[0] == TLS_CT_HANDSHAKE) {
			tdsbpf_tls_chain_add(out, TDSBPF_TLS_ENCRYPTED_HS);
		} else {
			tdsbpf_tls_chain_add(out, TDSBPF_TLS_RECORD | b[0]);
		}
		sc->pos2 = state;
		at = sc->pos2 & 1 ? sc->pos : sc->end; /* where the next step reads */
		need = 1;
	}
	/* stopped where the packet goes on but the bytes read do not: say so */
	if (at < sc->in.body && (i == TDSBPF_TLS_CHAIN + 1 || at + need > sc->n))
		out->chain_more = 1;
	return 0;
}

#define TDSBPF_LOGIN7_FIXED 94
#define TDSBPF_FEATURES_MAX 8

/*
 * The fixed part of a LOGIN7 in sc->b. Fills sc->out.login7 (but for the
 * SSPI kind and the feature flags, which need bytes further on: see
 * tdsbpf_parse_features and tdsbpf_classify_sspi). sc->res.login7.extension gets
 * ibExtension << 16 | cbExtension. Returns 0, or -1 when the fixed part
 * is not all there.
 */
TDSBPF_PARSER int tdsbpf_parse_login7(struct tdsbpf_scratch *sc)
{
	struct tdsbpf_login7 *out;
	const __u8 *f;

	if (!sc || sc->n < TDSBPF_LOGIN7_FIXED)
		return -1;
	out = &sc->out.login7;
	f = sc->b;
	out->total_length = tdsbpf_le32(f + 0);
	/* the TDS version is sent little-endian: 7.4 arrives as 04 00 00 74 */
	out->tds_version = tdsbpf_le32(f + 4);
	out->packet_size = tdsbpf_le32(f + 8);
	out->client_prog_ver = tdsbpf_le32(f + 12);
	out->client_pid = tdsbpf_le32(f + 16);
	out->option_flags1 = f[24];
	out->option_flags2 = f[25];
	out->type_flags = f[26];
	out->option_flags3 = f[27];
	/* 44/46 are the password's offset and length: deliberately unused */
	out->user_chars = tdsbpf_le16(f + 42);
	out->database_chars = tdsbpf_le16(f + 70);
	out->sspi_offset = tdsbpf_le16(f + 78);
	out->sspi_length = tdsbpf_le16(f + 80);
	sc->res.login7.extension = ((__u32)tdsbpf_le16(f + 56) << 16) | tdsbpf_le16(f + 58);
	return 0;
}

/*
 * A LOGIN7 FeatureExt block at sc->b[0] (id u8, length u32, data, ...,
 * 0xFF): sets TDSBPF_L7_FEATURES_SEEN and TDSBPF_L7_FEDAUTH in
 * sc->out.login7.flags. Returns 0.
 */
TDSBPF_PARSER int tdsbpf_parse_features(struct tdsbpf_scratch *sc)
{
	const __u8 *b;
	__u32 pos = 0;
	int i;

	if (!sc)
		return -1;
	sc->pos = 0;
	for (i = 0; i < TDSBPF_FEATURES_MAX; i++) {
		pos = sc->pos;
		b = tdsbpf_at(sc, pos, 1);
		if (!b)
			return 0;
		if (b[0] == TDS_FEATURE_TERMINATOR) {
			sc->out.login7.flags |= TDSBPF_L7_FEATURES_SEEN;
			return 0;
		}
		b = tdsbpf_at(sc, pos, 5);
		if (!b)
			return 0;
		if (b[0] == TDS_FEATURE_FEDAUTH)
			sc->out.login7.flags |= TDSBPF_L7_FEDAUTH;
		sc->pos = pos + 5 + tdsbpf_le32(b + 1);
	}
	return 0;
}

/* ---- Server reply tokens --------------------------------------------- */

#define TDSBPF_TOKENS_MAX 16

/* ENVCHANGE packet size: new value is a B_VARCHAR of decimal UTF-16 digits */
TDSBPF_INLINE __u32 tdsbpf_env_packet_size(const struct tdsbpf_scratch *sc, __u32 pos)
{
	const __u8 *b = tdsbpf_at(sc, pos, 13);
	__u32 n, v = 0, i;

	if (!b)
		return 0;
	n = b[0];
	if (n == 0 || n > 6)
		return 0;
	for (i = 0; i < 6; i++) {
		__u8 c = b[1 + 2 * i];

		if (i >= n)
			break;
		if (c < '0' || c > '9')
			return 0;
		v = v * 10 + (c - '0');
	}
	return v;
}

/* ENVCHANGE routing: value length u16, protocol u8, port u16, server B_USVARCHAR */
TDSBPF_INLINE void tdsbpf_env_routing(const struct tdsbpf_scratch *sc, __u32 pos, struct tdsbpf_reply *out)
{
	const __u8 *b = tdsbpf_at(sc, pos, 7);
	__u32 chars, i;

	if (!b)
		return;
	out->routing_port = tdsbpf_le16(b + 3);
	chars = tdsbpf_le16(b + 5);
	if (chars > sizeof(out->routing_server))
		chars = sizeof(out->routing_server);
	for (i = 0; i < sizeof(out->routing_server); i++) {
		b = tdsbpf_at(sc, pos + 7 + 2 * i, 2);
		if (i >= chars || !b)
			break;
		/* non-ASCII characters become '?': this is a label, not an address */
		out->routing_server[i] = b[1] ? '?' : b[0];
	}
	out->routing_server_len = (__u8)i;
}

/* The token walk of tdsbpf_parse_reply. */
TDSBPF_INLINE void tdsbpf_reply_tokens(struct tdsbpf_scratch *sc, struct tdsbpf_reply *out)
{
	const __u8 *b;
	__u32 pos;
	int i;

	for (i = 0; i < TDSBPF_TOKENS_MAX; i++) {
		__u8 tok;
		__u32 len;

		pos = sc->pos; /* through memory: see "Loops" at the top */
		b = tdsbpf_at(sc, pos, 3);
		if (!b)
			return;
		tok = b[0];
		if (i == 0)
			out->first_token = tok;
		len = tdsbpf_le16(b + 1);
		switch (tok) {
		case TDS_TOKEN_LOGINACK: /* interface, TDS version (BE), prog name, version */
			out->tokens |= TDSBPF_TOK_LOGINACK;
			b = tdsbpf_at(sc, pos + 3, 6);
			if (b) {
				out->interface = b[0];
				out->loginack_tds_version = tdsbpf_be32(b + 1);
				/* prog name is a B_VARCHAR of b[5] UTF-16 chars */
				b = tdsbpf_at(sc, pos + 3 + 6 + 2 * (__u32)b[5], 4);
				if (b)
					__builtin_memcpy(out->server_version, b, 4);
			}
			break;
		case TDS_TOKEN_ERROR:
			if (!(out->tokens & TDSBPF_TOK_ERROR)) {
				out->tokens |= TDSBPF_TOK_ERROR;
				b = tdsbpf_at(sc, pos + 3, 6);
				if (b) {
					out->error_number = tdsbpf_le32(b);
					out->error_state = b[4];
					out->error_class = b[5];
				}
			}
			break;
		case TDS_TOKEN_INFO: out->tokens |= TDSBPF_TOK_INFO; break;
		case TDS_TOKEN_ENVCHANGE:
			out->tokens |= TDSBPF_TOK_ENVCHANGE;
			/* routing and packet size are read after the walk */
			b = tdsbpf_at(sc, pos + 3, 1);
			if (b && b[0] == TDS_ENV_ROUTING) {
				out->tokens |= TDSBPF_TOK_ROUTING;
				sc->res.reply.routing_at = pos + 4;
			} else if (b && b[0] == TDS_ENV_PACKETSIZE) {
				out->tokens |= TDSBPF_TOK_PACKETSIZE;
				sc->res.reply.packet_size_at = pos + 4;
			}
			break;
		case TDS_TOKEN_SSPI: /* NTLM CHALLENGE or a Kerberos/SPNEGO reply */
			out->tokens |= TDSBPF_TOK_SSPI;
			b = tdsbpf_at(sc, pos + 3, 12);
			if (b && tdsbpf_is_ntlmssp(b))
				out->sspi_ntlm_type = b[8];
			else if (b && b[0] == 0xa1)
				out->sspi_ntlm_type = 0; /* SPNEGO: classified by the walk */
			break;
		case TDS_TOKEN_FEDAUTHINFO:  /* u32 length */
		case TDS_TOKEN_SESSIONSTATE: /* u32 length */
			out->tokens |= tok == TDS_TOKEN_FEDAUTHINFO ? TDSBPF_TOK_FEDAUTHINFO : TDSBPF_TOK_SESSIONSTATE;
			b = tdsbpf_at(sc, pos + 1, 4);
			if (!b || tdsbpf_le32(b) > 0xffff)
				goto stopped;
			len = tdsbpf_le32(b) + 2; /* the u32 length takes 2 more bytes */
			break;
		case TDS_TOKEN_ORDER:
		case TDS_TOKEN_TABNAME:
		case TDS_TOKEN_COLINFO: break;
		case TDS_TOKEN_RETURNSTATUS: /* a 4-byte value, no length */
			out->tokens |= TDSBPF_TOK_RETURNSTATUS;
			len = 2;
			break;
		case TDS_TOKEN_DONE:
		case TDS_TOKEN_DONEPROC:
		case TDS_TOKEN_DONEINPROC: /* status, cur cmd, row count (4 bytes before 7.2) */
			if (!(out->tokens & TDSBPF_TOK_DONE)) {
				out->tokens |= TDSBPF_TOK_DONE;
				out->done_status = len; /* the status is where a length would be */
			}
			len = sc->in.tds71 ? 6 : 10;
			break;
		case TDS_TOKEN_FEATUREEXTACK: { /* (id u8, length u32, data)... up to 0xFF */
			__u32 p2;
			int k;

			out->tokens |= TDSBPF_TOK_FEATUREEXTACK;
			/* routing and packet size ENVCHANGEs may follow it: skip it */
			sc->pos2 = pos + 1;
			for (k = 0; k < TDSBPF_FEATURES_MAX; k++) {
				p2 = sc->pos2;
				b = tdsbpf_at(sc, p2, 5);
				if (!b)
					goto stopped;
				if (b[0] == TDS_FEATURE_TERMINATOR)
					break;
				if (tdsbpf_le32(b + 1) > 0xffff)
					goto stopped;
				sc->pos2 = p2 + 5 + tdsbpf_le32(b + 1);
			}
			if (k == TDSBPF_FEATURES_MAX)
				goto stopped;
			len = sc->pos2 + 1 - pos - 3; /* past the 0xFF */
			break;
		}
		case TDS_TOKEN_COLMETADATA: out->tokens |= TDSBPF_TOK_COLMETADATA; goto stopped;
		case TDS_TOKEN_ROW:
		case TDS_TOKEN_NBCROW: out->tokens |= TDSBPF_TOK_ROW; goto stopped;
		default: goto stopped;
		}
		sc->pos = pos + 3 + len;
	}
	return;
stopped:
	out->tokens |= TDSBPF_TOK_STOPPED;
}

/*
 * The first tokens of a reply message at sc->b[0]; sc->in.tds71 is 1 for
 * TDS 7.1 and older (shorter DONE tokens). Notes what a connection's phases
 * depend on in sc->out.reply. Stops at a token whose length depends on
 * column metadata (COLMETADATA, ROW, NBCROW), at an unknown token, or at
 * the end of the bytes. Returns 0.
 */
TDSBPF_PARSER int tdsbpf_parse_reply(struct tdsbpf_scratch *sc)
{
	struct tdsbpf_reply *out;

	if (!sc)
		return -1;
	out = &sc->out.reply;
	sc->pos = 0;
	sc->res.reply.routing_at = 0;
	sc->res.reply.packet_size_at = 0;
	tdsbpf_reply_tokens(sc, out);
	if (sc->res.reply.routing_at)
		tdsbpf_env_routing(sc, sc->res.reply.routing_at, out);
	if (sc->res.reply.packet_size_at)
		out->packet_size = tdsbpf_env_packet_size(sc, sc->res.reply.packet_size_at);
	return 0;
}

/* Bytes of a reply packet's end looked at: DONEINPROC, RETURNSTATUS, DONEPROC. */
#define TDSBPF_TAIL_LOOK (13 + 5 + 13)

/*
 * The DONE token in the last bytes of a reply packet: sc->b holds the
 * sc->n bytes (13 to TDSBPF_TAIL_LOOK) before the packet's end, of which
 * the last sc->in.body are the packet's; sc->in.tds71 is 1 for TDS 7.1 (9-byte token, 4-byte
 * row count). Fills sc->out.reply.done_status and done_rows and
 * sc->res.tail; returns 0, or -1 if no DONE ends it. When the packet ends
 * DONEINPROC (with its count bit), RETURNSTATUS, DONEPROC, done_rows are
 * the DONEINPROC's and sc->res.tail.flags has TDSBPF_TAIL_INPROC_ROWS.
 */
TDSBPF_PARSER int tdsbpf_parse_tail_done(struct tdsbpf_scratch *sc)
{
	const __u8 *b, *r;
	__u32 len, at;

	if (!sc)
		return -1;
	len = sc->in.tds71 ? 9 : 13;
	if (sc->n < 13 || sc->n > TDSBPF_TAIL_LOOK)
		return -1;
	at = sc->n - len;
	b = tdsbpf_at(sc, at, len);
	if (!b || (b[0] != TDS_TOKEN_DONE && b[0] != TDS_TOKEN_DONEPROC && b[0] != TDS_TOKEN_DONEINPROC))
		return -1;
	/* DONE status uses bits 0x0001..0x0100 only */
	if (b[2] & 0xfe)
		return -1;
	sc->res.tail.token = b[0];
	sc->res.tail.flags = 0;
	sc->out.reply.done_status = tdsbpf_le16(b + 1);
	sc->out.reply.done_rows = sc->in.tds71 ? tdsbpf_le32(b + 5) : tdsbpf_le64(b + 5);
	if (b[0] != TDS_TOKEN_DONEPROC || at < len + 5 || sc->in.body < 2 * len + 5)
		return 0;
	r = tdsbpf_at(sc, at - len - 5, len + 5);
	if (r && r[0] == TDS_TOKEN_DONEINPROC && !(r[2] & 0xfe) && (tdsbpf_le16(r + 1) & TDS_DONE_COUNT) &&
	    r[len] == TDS_TOKEN_RETURNSTATUS) {
		sc->res.tail.flags = TDSBPF_TAIL_INPROC_ROWS;
		sc->out.reply.done_rows = sc->in.tds71 ? tdsbpf_le32(r + 5) : tdsbpf_le64(r + 5);
	}
	return 0;
}

/*
 * Whether 8 bytes start an SSPI blob: the NTLMSSP signature, a SPNEGO
 * negTokenResp ([1] then a SEQUENCE) or a GSS-API initial token
 * ([APPLICATION 0] then an OID), with short or long ASN.1 lengths.
 */
TDSBPF_INLINE int tdsbpf_sspi_blob(const __u8 *b)
{
	__u32 at;

	if (b[0] == 'N' && b[1] == 'T' && b[2] == 'L' && b[3] == 'M' && b[4] == 'S' && b[5] == 'S' && b[6] == 'P' &&
	    b[7] == 0)
		return 1;
	if (b[0] != 0xa1 && b[0] != 0x60)
		return 0;
	/* the length: one byte under 0x80, or 0x81/0x82 and that many */
	if (b[1] < 0x80)
		at = 2;
	else if (b[1] == 0x81 || b[1] == 0x82)
		at = 2 + (b[1] & 3);
	else
		return 0;
	return b[at & 7] == (b[0] == 0xa1 ? 0x30 : 0x06);
}

/* ---- Requests ------------------------------------------------------- */

/*
 * The start of a SQL batch or RPC in sc->b (sc->in.type: the packet type,
 * sc->end: the bytes of the message in this packet): ALL_HEADERS (7.2+)
 * and for RPC the procedure name length or id. Fills sc->out.request.
 */
TDSBPF_PARSER int tdsbpf_parse_request(struct tdsbpf_scratch *sc)
{
	struct tdsbpf_request *out;
	const __u8 *b;
	__u32 pos = 0, total;

	if (!sc)
		return -1;
	out = &sc->out.request;
	b = tdsbpf_at(sc, 0, 10);
	if (b) {
		total = tdsbpf_le32(b);
		/* a real ALL_HEADERS: the first header fits and has a known type */
		if (total >= 4 + 6 && total <= sc->end && tdsbpf_le32(b + 4) <= total - 4 && tdsbpf_le16(b + 8) >= 1 &&
		    tdsbpf_le16(b + 8) <= 3) {
			out->all_headers_length = total;
			pos = total;
			b = tdsbpf_at(sc, 10, 8);
			if (tdsbpf_le16(sc->b + 8) == 2 && b)
				out->transaction_descriptor = tdsbpf_le64(b);
		}
	}
	b = tdsbpf_at(sc, pos, 4);
	if (sc->in.type == TDS_RPC && b) {
		if (tdsbpf_le16(b) == 0xffff)
			out->rpc_proc_id = tdsbpf_le16(b + 2);
		else
			out->rpc_name_chars = tdsbpf_le16(b);
	}
	return 0;
}

#endif /* TDSBPF_PARSE_H */
