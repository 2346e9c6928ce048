/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The framing walk: finding every TDS packet, SMP frame and TLS record header
 * in a segment, carrying a header split across segments, the parsers'
 * bytes, and the TDS/TLS/SMP/NTLM events that come out of it.
 *
 * A part of walk.h, included by it in order; include walk.h, not this.
 */
#ifndef TDSBPF_WALK_FRAMES_H
#define TDSBPF_WALK_FRAMES_H

#ifndef TDSBPF_WALK_H
#error "include tdsbpf/walk.h, not its parts"
#endif

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
TDSBPF_INLINE void tdsbpf_login7_details(struct tdsbpf_walk *w, struct tdsbpf_event *ev, __u32 body_rel, __u32 body_len)
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
	ext = sc->res.login7.extension;
	if (l7->tds_version < 0x72000000 && w->flow)
		w->flow->tds71 = 1;
	if (l7->sspi_length) {
		if (tdsbpf_fill(w, body_rel + l7->sspi_offset, l7->sspi_length) >= 8) {
			sc->in.start = 0;
			l7->sspi_kind = (__u8)tdsbpf_classify_sspi(sc);
			l7->ntlm_type = (__u8)sc->res.sspi.ntlm_type;
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
TDSBPF_NOINLINE void tdsbpf_tds_details(struct tdsbpf_walk *w, struct tdsbpf_event *ev, __u32 body_rel, __u32 body_len,
					__u32 first)
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
			sc->in.body = body_len;
			tdsbpf_parse_tls_chain(sc);
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
		sc->in.tds71 = w->flow && w->flow->tds71;
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
		sc->in.start = 0;
		sc->out.sspi.kind = (__u8)tdsbpf_classify_sspi(sc);
		sc->out.sspi.ntlm_type = (__u8)sc->res.sspi.ntlm_type;
		sc->out.sspi.length = body_len;
		break;
	case TDS_SQL_BATCH:
	case TDS_RPC:
		t->detail = TDSBPF_D_REQUEST;
		tdsbpf_fill(w, body_rel, 32);
		sc->in.type = type;
		sc->end = body_len;
		tdsbpf_parse_request(sc);
		break;
	default: return;
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
TDSBPF_NOINLINE int tdsbpf_emit_ntlm(struct tdsbpf_walk *w, const struct tdsbpf_event *tds, __u32 body_rel,
				     __u32 body_len)
{
	struct tdsbpf_scratch *sc = w->sc;
	struct tdsbpf_ntlm_event *ev;
	__u32 at, f;

	if (tds->u.tds.detail != TDSBPF_D_SSPI || tds->u.tds.d.sspi.ntlm_type != 3)
		return -1;
	/* sc->b still holds the SSPI body: find the AUTHENTICATE's fields */
	if (tdsbpf_fill(w, body_rel, body_len) < 12)
		return -1;
	sc->in.start = 0;
	if (tdsbpf_classify_sspi(sc) != TDSBPF_SSPI_NTLM)
		return -1;
	at = sc->res.sspi.ntlm_at;
	sc->in.start = at;
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
	ev->negotiate_flags = sc->res.ntlm.flags;
	ev->encoding = (sc->res.ntlm.flags & 0x01) ? TDSBPF_NTLM_UNICODE : 0;
	f = sc->res.ntlm.name[0];
	ev->domain_len = tdsbpf_ntlm_name(w, body_rel + at + (f & 0xffff), f >> 16, ev->domain);
	f = sc->res.ntlm.name[1];
	ev->user_len = tdsbpf_ntlm_name(w, body_rel + at + (f & 0xffff), f >> 16, ev->user);
	f = sc->res.ntlm.name[2];
	ev->workstation_len = tdsbpf_ntlm_name(w, body_rel + at + (f & 0xffff), f >> 16, ev->workstation);
	tdsbpf_submit(w->p, ev, 1);
	return 0;
}

/*
 * The DONE token that ends a reply packet, whose end is at end (in this
 * segment); at most body bytes before it are the packet's (the rest are its
 * header or an earlier packet). Returns 0 and fills sc->out.reply.done_* and
 * sc->res.tail.
 */
TDSBPF_INLINE int tdsbpf_tail_done(struct tdsbpf_walk *w, __u32 body, __u32 end)
{
	__u32 want;

	if (end < 13 || end > w->l4->plen)
		return -1;
	want = end < TDSBPF_TAIL_LOOK ? end : TDSBPF_TAIL_LOOK;
	if (tdsbpf_fill(w, end - want, want) < 13)
		return -1;
	w->sc->in.tds71 = w->flow && w->flow->tds71;
	w->sc->in.body = body;
	return tdsbpf_parse_tail_done(w->sc);
}

/* Blanking a secret in an excerpt, one byte a step (tdsbpf_loop). */
struct tdsbpf_blank {
	struct tdsbpf_excerpt_event *x;
	__u32 from;
};

static long tdsbpf_blank_step(__u32 i, void *data)
{
	struct tdsbpf_blank *b = data;

	b->x->data[(b->from + i) & (TDSBPF_EXCERPT_MAX - 1)] = 0;
	return 0;
}

/*
 * Zeroes the LOGIN7 field whose offset and length (in UTF-16 characters)
 * are at at of the copied body: the password and the new password never
 * leave the walk.
 */
TDSBPF_INLINE void tdsbpf_blank_field(struct tdsbpf_excerpt_event *x, __u32 at, __u32 len)
{
	struct tdsbpf_blank b;
	__u32 ib, n;

	if (at + 4 > len || at + 4 > TDSBPF_EXCERPT_MAX)
		return;
	ib = (__u32)x->data[at] | ((__u32)x->data[at + 1] << 8);
	n = 2 * ((__u32)x->data[at + 2] | ((__u32)x->data[at + 3] << 8));
	if (ib >= len)
		return;
	if (n > len - ib)
		n = len - ib;
	b.x = x;
	b.from = ib;
	tdsbpf_loop(n, tdsbpf_blank_step, &b);
}

/*
 * The first bytes of a message whose text user space reads (see struct
 * tdsbpf_excerpt_event), noted by tdsbpf_emit_tds: what of its body is in
 * this segment, up to TDSBPF_EXCERPT_MAX; or the next bytes of a server's
 * hello flight (MORE). Sent once the segment's frames are walked (one
 * place for the verifier to check), so after the message's own event.
 * Returns the bytes sent.
 */
TDSBPF_NOINLINE __u32 tdsbpf_emit_excerpt(struct tdsbpf_walk *w)
{
	struct tdsbpf_excerpt_event *x;
	__u32 what = w->sc->excerpt_what, body_rel = w->sc->excerpt_rel, body_len = w->sc->excerpt_len;
	__u32 len;

	if (body_rel >= w->l4->plen)
		return 0;
	len = w->l4->plen - body_rel;
	if (len > body_len)
		len = body_len;
	if (len > TDSBPF_EXCERPT_MAX)
		len = TDSBPF_EXCERPT_MAX;
	if (len == 0)
		return 0;
	x = tdsbpf_excerpt_buf(w->p);
	if (!x || tdsbpf_load(w->p, w->l4->poff + body_rel, x->data, len) < 0)
		return 0;
	if (what == TDSBPF_EXCERPT_LOGIN7) {
		tdsbpf_blank_field(x, 44, len); /* ibPassword, cchPassword */
		/* ibChangePassword, cchChangePassword: in a fixed part of 94
		 * bytes (TDS 7.2 on), which the first field's offset shows; before
		 * 7.2 the fixed part is 86 bytes and the data follows it */
		if (len >= 38 && ((__u32)x->data[36] | ((__u32)x->data[37] << 8)) >= 94)
			tdsbpf_blank_field(x, 86, len);
	}
	tdsbpf_fill_base(w, &x->base, TDSBPF_EV_EXCERPT);
	x->what = (__u8)what;
	x->tds71 = w->flow && w->flow->tds71;
	x->len = (__u16)len;
	x->body_len = body_len;
	if (what == TDSBPF_EXCERPT_MORE && w->flow)
		x->body_len = w->flow->d[TDSBPF_DIR_S2C].hello_seq - w->flow->d[TDSBPF_DIR_S2C].hello_base;
	tdsbpf_submit_excerpt(w->p, x, TDSBPF_EXCERPT_HDR + len);
	return len;
}

/*
 * One excerpt of a segment's (tdsbpf_loop): first the one the frame walk
 * noted; then, while the server's hello flight is wanted, its next bytes
 * from this segment. Returns 1 when there is nothing more to send.
 */
static long tdsbpf_excerpt_step(__u32 i, void *data)
{
	struct tdsbpf_walk *w = data;
	struct tdsbpf_dir_state *hs;
	__u32 rel, sent, plen = w->l4->plen, noted;

	(void)i;
	if (!w->flow)
		return 1;
	hs = &w->flow->d[TDSBPF_DIR_S2C];
	if (w->l4->dir != TDSBPF_DIR_S2C)
		hs->hello_more = 0; /* the client speaks: the server's flight is over */
	noted = w->sc->excerpt_what;
	if (!noted) {
		/* the server's hello flight, from where the last excerpt ended */
		if (!hs->hello_more)
			return 1;
		rel = hs->hello_seq - w->l4->seq;
		if ((__s32)rel < 0 || hs->hello_chunks >= TDSBPF_HELLO_CHUNKS) {
			hs->hello_more = 0; /* bytes not seen, or no allowance left: user space says cut */
			return 1;
		}
		if (rel >= plen)
			return 1;
		hs->hello_chunks++;
		w->sc->excerpt_what = TDSBPF_EXCERPT_MORE;
		w->sc->excerpt_rel = rel;
		w->sc->excerpt_len = hs->hello_more;
	}
	sent = tdsbpf_emit_excerpt(w);
	w->sc->excerpt_what = 0;
	if (noted == TDSBPF_EXCERPT_TLS_HELLO && w->l4->dir == TDSBPF_DIR_S2C && sent) {
		hs->hello_base = w->l4->seq + w->sc->excerpt_rel;
		hs->hello_seq = hs->hello_base + sent;
		hs->hello_more = TDSBPF_HELLO_MORE;
		hs->hello_chunks = 0;
	} else if (!noted) {
		hs->hello_seq += sent;
		hs->hello_more = sent && sent < hs->hello_more ? (__u16)(hs->hello_more - sent) : 0;
	}
	return 0;
}

/*
 * Asks for an excerpt of this segment's bytes from rel on (at most len),
 * sent once the frames are walked: the first such message of the segment,
 * within the connection's allowance.
 */
TDSBPF_INLINE void tdsbpf_note_excerpt(struct tdsbpf_walk *w, __u32 what, __u32 rel, __u32 len)
{
	if (w->sc->excerpt_what || !w->flow || w->flow->excerpts >= TDSBPF_EXCERPTS_PER_FLOW)
		return;
	w->flow->excerpts++;
	w->sc->excerpt_what = what;
	w->sc->excerpt_rel = rel;
	w->sc->excerpt_len = len;
}

/* A TLS ClientHello or ServerHello (handshake types 1 and 2). */
TDSBPF_INLINE int tdsbpf_tls_hello(const struct tdsbpf_tls *t)
{
	return t->content_type == 22 && (t->handshake_type == 1 || t->handshake_type == 2);
}

/* Whether a TDS packet's body (body_len bytes at body_rel) is cut short by the segment. */
TDSBPF_INLINE int tdsbpf_body_cut(struct tdsbpf_walk *w, __s32 body_rel, __u32 body_len)
{
	if (body_rel >= 0 && (__u32)body_rel < w->l4->plen)
		return w->l4->plen - (__u32)body_rel < body_len;
	return body_len != 0;
}

/* Whether routine work may be counted in this flow now (struct tdsbpf_work, events.h). */
TDSBPF_INLINE int tdsbpf_work_countable(struct tdsbpf_walk *w)
{
	struct tdsbpf_flow *f = w->flow;

	return tdsbpf_count_work(w->p) && !f->prelogin_pending && f->state == TDSBPF_TCP_ESTABLISHED &&
	       !f->d[0].fin_seen && !f->d[1].fin_seen;
}

/* What every packet counted adds, and whether the count is due to be sent (2) or not (1). */
TDSBPF_INLINE int tdsbpf_work_packet(struct tdsbpf_walk *w, const __u8 *hdr, __s32 rel)
{
	struct tdsbpf_work *k = &w->flow->work;

	w->flow->d[w->l4->dir & 1].in_msg = !(hdr[1] & TDS_STATUS_EOM);
	k->events++;
	if (tdsbpf_body_cut(w, rel + 8, (__u32)tdsbpf_be16(hdr + 2) - 8))
		k->truncated++;
	tdsbpf_work_counted(w->p);
	return k->n >= TDSBPF_WORK_LATENCIES ? 2 : 1;
}

/* A request counted now starts after the server sat silent for a second or more. */
TDSBPF_INLINE int tdsbpf_work_idle(const struct tdsbpf_flow *f, __u64 now)
{
	return f->last_s2c_ns && now >= f->last_s2c_ns + 1000000000ULL;
}

/* Whether the answer to the pending request (if any) came too late for 32 bits of ns. */
TDSBPF_INLINE int tdsbpf_work_too_late(const struct tdsbpf_work *k, __u64 now)
{
	return (k->flags & TDSBPF_WORK_PENDING) && now >= k->pending_ns && now - k->pending_ns > 0xffffffffULL;
}

/* A reply begins: the pending request, if any, is answered, its latency kept. */
TDSBPF_INLINE void tdsbpf_work_answered(struct tdsbpf_work *k, __u64 now)
{
	__u32 n = k->n;

	k->responses++;
	if (!(k->flags & TDSBPF_WORK_PENDING))
		return;
	k->flags &= ~TDSBPF_WORK_PENDING;
	if (n < TDSBPF_WORK_LATENCIES) {
		k->latency_ns[n] = now >= k->pending_ns ? (__u32)(now - k->pending_ns) : 0;
		k->n = (__u8)(n + 1);
	}
}

/*
 * Routine work: a client's TDS packet outside SMP (header hdr at rel of
 * this segment), counted in the flow entry instead of sent. Returns 0, with
 * nothing changed, when it goes the usual way (which sends what was
 * counted first and ends the counting), else as tdsbpf_work_packet.
 */
TDSBPF_NOINLINE int tdsbpf_count_request(struct tdsbpf_walk *w, const __u8 *hdr, __s32 rel)
{
	struct tdsbpf_flow *f = w->flow;
	struct tdsbpf_work *k = &f->work;
	__u64 now = w->p->now;

	if ((hdr[0] != TDS_SQL_BATCH && hdr[0] != TDS_RPC) || !tdsbpf_work_countable(w))
		return 0;
	if (f->quiet != 1) {
		/* a request that starts when nothing is in flight, after a
		 * request and its reply user space saw */
		if (f->quiet || f->d[TDSBPF_DIR_C2S].in_msg || f->work_ready != 2 || f->d[TDSBPF_DIR_S2C].in_msg)
			return 0;
		f->quiet = 1;
		k->flags &= ~(TDSBPF_WORK_PENDING | TDSBPF_WORK_TLS | TDSBPF_WORK_IN_REQUEST);
	}
	if (!f->d[TDSBPF_DIR_C2S].in_msg) {
		if (hdr[1] & (TDS_STATUS_RESETCONNECTION | TDS_STATUS_RESETCONNECTIONSKIPTRAN))
			k->reset_connection++;
		if (tdsbpf_work_idle(f, now))
			k->idle_reuses++;
		if (hdr[0] == TDS_SQL_BATCH)
			k->sql_batches++;
		else
			k->rpcs++;
		if (!(k->flags & TDSBPF_WORK_PENDING)) {
			k->flags |= TDSBPF_WORK_PENDING;
			k->pending_ns = now;
		}
		f->work_ready = 1;
	}
	k->last_c2s_ns = now;
	return tdsbpf_work_packet(w, hdr, rel);
}

/*
 * Routine work: a server's reply packet outside SMP, as tdsbpf_count_request.
 * Not routine: a TLS record in it, a reply whose first bytes hold an ERROR,
 * LOGINACK, routing or packet-size token, an attention acknowledged, an
 * answer after 4.29 s or more (more than the latency's 32 bits).
 */
TDSBPF_NOINLINE int tdsbpf_count_reply(struct tdsbpf_walk *w, const __u8 *hdr, __s32 rel)
{
	struct tdsbpf_scratch *sc = w->sc;
	struct tdsbpf_work *k;
	__u32 body_len = (__u32)tdsbpf_be16(hdr + 2) - 8;
	__s32 end = rel + (__s32)tdsbpf_be16(hdr + 2);
	__u32 first = !w->flow->d[TDSBPF_DIR_S2C].in_msg;
	__u32 n;

	if (hdr[0] != TDS_REPLY || w->flow->quiet != 1 || !tdsbpf_work_countable(w))
		return 0;
	k = &w->flow->work;
	if (first && tdsbpf_work_too_late(k, w->p->now))
		return 0;
	__builtin_memset(&sc->out, 0, sizeof(sc->out));
	if (body_len && rel + 8 >= 0 && (__u32)(rel + 8) < w->l4->plen) {
		n = tdsbpf_fill(w, (__u32)(rel + 8), first ? body_len : (body_len < 5 ? body_len : 5));
		if (n >= 5 && tdsbpf_tls_header_valid(sc->b))
			return 0;
		if (first) {
			sc->in.tds71 = w->flow->tds71;
			tdsbpf_parse_reply(sc);
			if ((sc->out.reply.tokens &
			     (TDSBPF_TOK_LOGINACK | TDSBPF_TOK_ERROR | TDSBPF_TOK_ROUTING | TDSBPF_TOK_PACKETSIZE)) ||
			    (sc->out.reply.done_status & TDS_DONE_ATTN))
				return 0;
		}
	}
	/* the packet's final DONE: here, or in a later segment (tdsbpf_pending_tail) */
	sc->res.tail.token = 0;
	if ((hdr[1] & TDS_STATUS_EOM) && end <= (__s32)w->l4->plen && end >= 13) {
		if (tdsbpf_tail_done(w, body_len, (__u32)end) != 0)
			sc->res.tail.token = 0;
		else if (sc->out.reply.done_status & TDS_DONE_ATTN)
			return 0;
	}
	if (first) {
		if (!k->spid)
			k->spid = tdsbpf_be16(hdr + 4);
		tdsbpf_work_answered(k, w->p->now);
		w->flow->work_ready = 2;
	}
	if (sc->res.tail.token) {
		k->done_tokens++;
		if ((sc->out.reply.done_status & TDS_DONE_COUNT) || (sc->res.tail.flags & TDSBPF_TAIL_INPROC_ROWS)) {
			k->rows += sc->out.reply.done_rows;
			k->flags |= TDSBPF_WORK_ROWS;
		}
	} else if ((hdr[1] & TDS_STATUS_EOM) && end > (__s32)w->l4->plen) {
		w->flow->d[TDSBPF_DIR_S2C].tail_pending = 1;
		w->flow->d[TDSBPF_DIR_S2C].tail_end = w->l4->seq + (__u32)end;
	}
	k->last_s2c_ns = w->p->now;
	w->flow->last_s2c_ns = w->p->now;
	return tdsbpf_work_packet(w, hdr, rel);
}

/*
 * A TLS application data record (bare, or in a TDS packet) from this side,
 * as user space follows them: runs of client records, each answered by
 * the server's.
 */
TDSBPF_INLINE void tdsbpf_tls_data_seen(struct tdsbpf_flow *f, __u32 dir)
{
	if (dir != TDSBPF_DIR_C2S) {
		f->tls_client_run = 0;
	} else if (!f->tls_client_run) {
		f->tls_client_run = 1;
		if (f->tls_runs < 255)
			f->tls_runs++;
	}
}

/*
 * Routine work of an encrypted connection (TDSBPF_WORK_TLS): a bare TLS
 * application data record counted instead of sent, once user space has seen
 * four runs of client records. Returns as tdsbpf_count_request.
 */
TDSBPF_NOINLINE int tdsbpf_count_tls(struct tdsbpf_walk *w, const __u8 *hdr)
{
	struct tdsbpf_flow *f = w->flow;
	struct tdsbpf_work *k;
	__u64 now = w->p->now;

	if (!f || hdr[0] != 23 || !tdsbpf_work_countable(w))
		return 0;
	k = &f->work;
	if (w->l4->dir == TDSBPF_DIR_C2S) {
		if (f->quiet != 2) {
			/* a new run of client records after the server's, past the login's turns */
			if (f->quiet || f->tls_client_run || f->tls_runs < 4)
				return 0;
			f->quiet = 2;
			k->flags = (k->flags & ~(TDSBPF_WORK_PENDING | TDSBPF_WORK_IN_REQUEST)) | TDSBPF_WORK_TLS;
		}
		if (!f->tls_client_run && !(k->flags & TDSBPF_WORK_IN_REQUEST)) {
			if (tdsbpf_work_idle(f, now))
				k->idle_reuses++;
			k->flags |= TDSBPF_WORK_IN_REQUEST | TDSBPF_WORK_PENDING;
			k->pending_ns = now;
			k->sql_batches++;
		}
		tdsbpf_tls_data_seen(f, TDSBPF_DIR_C2S);
		k->last_c2s_ns = now;
	} else {
		if (f->quiet != 2)
			return 0;
		if ((k->flags & TDSBPF_WORK_IN_REQUEST) && tdsbpf_work_too_late(k, now))
			return 0; /* a latency of 4.29 s or more: the usual way */
		if (k->flags & TDSBPF_WORK_IN_REQUEST) {
			k->flags &= ~TDSBPF_WORK_IN_REQUEST;
			tdsbpf_work_answered(k, now);
		}
		tdsbpf_tls_data_seen(f, TDSBPF_DIR_S2C);
		k->last_s2c_ns = now;
		f->last_s2c_ns = now;
	}
	k->events++;
	tdsbpf_work_counted(w->p);
	return k->n >= TDSBPF_WORK_LATENCIES ? 2 : 1;
}

/*
 * One TDS packet whose header (hdr) starts at rel of this segment (rel is
 * negative when the header began in the previous segment). smp: the SMP
 * header it came in, or 0.
 */
TDSBPF_NOINLINE void tdsbpf_emit_tds(struct tdsbpf_walk *w, const __u8 *hdr, __s32 rel, const __u8 *smp)
{
	struct tdsbpf_dir_state *ds = &w->flow->d[w->l4->dir & 1];
	struct tdsbpf_event *ev;
	struct tdsbpf_tds *t;
	__s32 body_rel = rel + 8;
	__s32 end;
	__u32 body_len;
	__u32 first;
	__u32 what;

	/* routine work outside SMP: counted, not sent */
	if (!smp && (w->flow->quiet || w->flow->work_ready == 2)) {
		first = w->l4->dir == TDSBPF_DIR_C2S ? tdsbpf_count_request(w, hdr, rel)
						     : tdsbpf_count_reply(w, hdr, rel);
		if (first == 2)
			tdsbpf_flush_work(w);
		if (first)
			return;
	}
	if (w->l4->dir == TDSBPF_DIR_S2C)
		w->flow->last_s2c_ns = w->p->now;
	tdsbpf_work_before(w, 1);
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
		/* a request and then a reply reach user space: routine work may be counted from now on */
		if (first && w->l4->dir == TDSBPF_DIR_C2S && (hdr[0] == TDS_SQL_BATCH || hdr[0] == TDS_RPC))
			w->flow->work_ready = 1;
		else if (first && w->l4->dir == TDSBPF_DIR_S2C && hdr[0] == TDS_REPLY && w->flow->work_ready)
			w->flow->work_ready = 2;
	}
	if (body_rel >= 0 && (__u32)body_rel < w->l4->plen)
		tdsbpf_tds_details(w, ev, (__u32)body_rel, body_len, first);
	else if (body_len)
		ev->flags |= TDSBPF_F_TRUNCATED;

	/* the final DONE of a reply packet: here if it ends in this segment */
	if (t->type == TDS_REPLY && (t->status & TDS_STATUS_EOM) && w->l4->dir == TDSBPF_DIR_S2C) {
		end = rel + (__s32)t->length;
		if (end <= (__s32)w->l4->plen) {
			if (end >= 13 && tdsbpf_tail_done(w, body_len, (__u32)end) == 0) {
				t->tail_token = (__u8)w->sc->res.tail.token;
				t->tail_flags = (__u8)w->sc->res.tail.flags;
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
	if (t->detail == TDSBPF_D_TLS && t->d.tls.content_type == 23)
		tdsbpf_tls_data_seen(w->flow, w->l4->dir & 1);
	/* a LOGIN7 in clear, a reply with a LOGINACK or an ERROR, a TLS hello:
	 * their text */
	what = 0;
	if (t->detail == TDSBPF_D_LOGIN7 && w->l4->dir == TDSBPF_DIR_C2S)
		what = TDSBPF_EXCERPT_LOGIN7;
	else if (t->detail == TDSBPF_D_REPLY && w->l4->dir == TDSBPF_DIR_S2C &&
		 (t->d.reply.tokens & (TDSBPF_TOK_LOGINACK | TDSBPF_TOK_ERROR)))
		what = TDSBPF_EXCERPT_REPLY;
	else if (t->detail == TDSBPF_D_TLS && tdsbpf_tls_hello(&t->d.tls))
		what = TDSBPF_EXCERPT_TLS_HELLO;
	if (what && body_rel >= 0)
		tdsbpf_note_excerpt(w, what, (__u32)body_rel, body_len);
	tdsbpf_submit(w->p, ev, t->type != TDS_REPLY && t->type != TDS_SQL_BATCH && t->type != TDS_RPC);
}

TDSBPF_NOINLINE void tdsbpf_emit_tls(struct tdsbpf_walk *w, const __u8 *hdr, __s32 rel)
{
	struct tdsbpf_event *ev;
	int counted;

	if (w->flow && hdr[0] == 23 && (w->flow->quiet == 2 || w->flow->tls_runs >= 4)) {
		counted = tdsbpf_count_tls(w, hdr);
		if (counted == 2)
			tdsbpf_flush_work(w);
		if (counted)
			return;
	}
	if (w->flow && w->l4->dir == TDSBPF_DIR_S2C)
		w->flow->last_s2c_ns = w->p->now;
	tdsbpf_work_before(w, 1);
	ev = tdsbpf_begin(w, TDSBPF_EV_TLS);
	if (!ev)
		return;
	if (w->flow && hdr[0] == 23)
		tdsbpf_tls_data_seen(w->flow, w->l4->dir & 1);
	ev->frame_offset = rel < 0 ? 0 : (__u32)rel;
	__builtin_memset(&w->sc->out, 0, sizeof(w->sc->out));
	if (rel >= 0 && tdsbpf_fill(w, (__u32)rel, 5 + (__u32)tdsbpf_be16(hdr + 3)) >= 5 &&
	    tdsbpf_parse_tls(w->sc) == 0) {
		w->sc->in.body = 5 + (__u32)tdsbpf_be16(hdr + 3);
		tdsbpf_parse_tls_chain(w->sc);
		__builtin_memcpy(&ev->u.tls, &w->sc->out.tls, sizeof(ev->u.tls));
		/* TDS 8.0: the hello flight's records, from this one on */
		if (tdsbpf_tls_hello(&ev->u.tls))
			tdsbpf_note_excerpt(w, TDSBPF_EXCERPT_TLS_HELLO, (__u32)rel, w->l4->plen - (__u32)rel);
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
	struct tdsbpf_event *ev;

	tdsbpf_work_before(w, 1);
	ev = tdsbpf_begin(w, TDSBPF_EV_SMP);

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
		if (!tdsbpf_smp_header_valid(hdr) || (hdr[1] == SMP_DATA && !tdsbpf_tds_header_valid(hdr + 16)))
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
	/* the header was in an earlier segment: all of this one up to end is the packet's */
	if (end < 13 || tdsbpf_tail_done(w, (__u32)end, (__u32)end) < 0)
		return;
	if (w->flow && w->flow->quiet == 1 && !(w->sc->out.reply.done_status & TDS_DONE_ATTN)) {
		/* routine work: counted */
		struct tdsbpf_work *k = &w->flow->work;

		k->done_tokens++;
		if ((w->sc->out.reply.done_status & TDS_DONE_COUNT) ||
		    (w->sc->res.tail.flags & TDSBPF_TAIL_INPROC_ROWS)) {
			k->rows += w->sc->out.reply.done_rows;
			k->flags |= TDSBPF_WORK_ROWS;
		}
		k->events++;
		tdsbpf_work_counted(w->p);
		return;
	}
	tdsbpf_work_before(w, 1);
	ev = tdsbpf_begin(w, TDSBPF_EV_TDS_DONE);
	if (!ev)
		return;
	ev->frame_offset = (__u32)end;
	ev->u.done.token = (__u8)w->sc->res.tail.token;
	ev->u.done.flags = (__u8)w->sc->res.tail.flags;
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
TDSBPF_NOINLINE __s32 tdsbpf_join_carry(struct tdsbpf_walk *w, struct tdsbpf_dir_state *ds, __s32 rel)
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
	if (want == 0 || want > TDSBPF_FRAME_HDR || tdsbpf_load(w->p, w->l4->poff, ds->carry + (k & 31), want) < 0) {
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
	__s32 done; /* the walk of this segment is over (sync lost or header carried) */
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
TDSBPF_INLINE void tdsbpf_walk_segment_frames(struct tdsbpf_walk *w)
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

/* How many excerpts one segment can send: the noted one, then a hello flight's bytes. */
#define TDSBPF_EXCERPTS_PER_SEGMENT 4

/* The segment's frames, then the excerpts they asked for. */
TDSBPF_INLINE void tdsbpf_walk_frames(struct tdsbpf_walk *w)
{
	w->sc->excerpt_what = 0;
	tdsbpf_walk_segment_frames(w);
	if (w->sc->excerpt_what || (w->flow && w->flow->d[TDSBPF_DIR_S2C].hello_more))
		tdsbpf_loop(TDSBPF_EXCERPTS_PER_SEGMENT, tdsbpf_excerpt_step, w);
}

#endif /* TDSBPF_WALK_FRAMES_H */
