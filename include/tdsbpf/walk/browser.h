/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The SQL Server Browser (SSRP on UDP 1434, --follow-browser): requests
 * noted, answers scanned for the TCP ports they name, and the Browser event.
 *
 * A part of walk.h, included by it in order; include walk.h, not this.
 */
#ifndef TDSBPF_WALK_BROWSER_H
#define TDSBPF_WALK_BROWSER_H

#ifndef TDSBPF_WALK_H
#error "include tdsbpf/walk.h, not its parts"
#endif

/*
 * The TCP ports an SSRP reply (SVR_RESP, MS-SQLR 2.2.5) names: each
 * instance's string holds "...;tcp;<port>;...". The bytes are in sc->b
 * (sc->n of them); the scan's state lives in sc so that bpf_loop's
 * callback is verified once. Ports found go to sc->res.browser.
 */
struct tdsbpf_ssrp_scan {
	struct tdsbpf_scratch *sc;
	__u32 state; /* bytes of ";tcp;" matched, then 5 while in the digits */
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
			sc->res.browser.port[s->found & 3] = s->port;
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
	struct tdsbpf_ssrp_scan s = {sc, 0, 0, 0, 0};

	__builtin_memset(&sc->res.browser, 0, sizeof(sc->res.browser));
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
TDSBPF_NOINLINE void tdsbpf_browser(struct tdsbpf_pkt *p, struct tdsbpf_l4 *l4, struct tdsbpf_flow_key *key)
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
			tdsbpf_browser_port(p, (__u16)sc->res.browser.port[i]);
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
		ev->followed[i] = i < (int)found ? (__u16)sc->res.browser.port[i & 3] : 0;
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

#endif /* TDSBPF_WALK_BROWSER_H */
