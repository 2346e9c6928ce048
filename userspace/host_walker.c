/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The shared walk with host hooks: see host_walker.h. */
#include <string.h>

#include "host_walker.h"

struct tdsbpf_pkt {
	void *data;
	void *data_end;
	__u32 pkt_len;
	__u64 now;
	__u32 ifindex;
	__u8 hook;
	struct tdsbpf_host *h;
	/* records handed out by reserve and not yet submitted */
	__u8 slot;
	struct tdsbpf_event ev[4];
	struct tdsbpf_ntlm_event ntlm;
	struct tdsbpf_browser_event browser;
	struct tdsbpf_excerpt_event excerpt;
};

static int tdsbpf_load(struct tdsbpf_pkt *p, __u32 off, void *dst, __u32 len)
{
	__u32 have = (__u32)((char *)p->data_end - (char *)p->data);

	/* bytes past the captured length are not there, as past a short skb */
	if (off > have || len > have - off)
		return -1;
	memcpy(dst, (char *)p->data + off, len);
	return 0;
}

static int tdsbpf_pull(struct tdsbpf_pkt *p, __u32 len)
{
	(void)p;
	(void)len;
	return -1; /* a captured frame is all the bytes there are */
}

static int tdsbpf_is_server_port(struct tdsbpf_pkt *p, __u16 port)
{
	return tdsbpf_host_is_server_port(p->h, port);
}

static void tdsbpf_follow_port(struct tdsbpf_pkt *p, __u16 port)
{
	tdsbpf_host_follow_port(p->h, port);
}

static int tdsbpf_follow_browser(struct tdsbpf_pkt *p)
{
	return tdsbpf_host_follow_browser(p->h);
}

static void tdsbpf_browser_port(struct tdsbpf_pkt *p, __u16 port)
{
	tdsbpf_host_browser_port(p->h, port);
}

static void tdsbpf_browser_asked(struct tdsbpf_pkt *p, const struct tdsbpf_flow_key *k)
{
	tdsbpf_host_browser_asked(p->h, k);
}

static int tdsbpf_browser_was_asked(struct tdsbpf_pkt *p, const struct tdsbpf_flow_key *k)
{
	return tdsbpf_host_browser_was_asked(p->h, k);
}

static __u64 tdsbpf_cgroup_id(struct tdsbpf_pkt *p)
{
	(void)p;
	return 0; /* a capture has no sockets */
}

static int tdsbpf_capturing(struct tdsbpf_pkt *p)
{
	return tdsbpf_host_snaplen(p->h) != 0;
}

static void tdsbpf_capture(struct tdsbpf_pkt *p, const struct tdsbpf_flow_key *key, __u8 dir)
{
	tdsbpf_host_capture(p->h, p->data, (__u32)((char *)p->data_end - (char *)p->data), p->pkt_len, p->now,
			    p->ifindex, p->hook, key, dir);
}

static struct tdsbpf_flow *tdsbpf_flow_get(struct tdsbpf_pkt *p, const struct tdsbpf_flow_key *k)
{
	return tdsbpf_host_flow_get(p->h, k);
}

static struct tdsbpf_flow *tdsbpf_flow_create(struct tdsbpf_pkt *p, const struct tdsbpf_flow_key *k)
{
	return tdsbpf_host_flow_create(p->h, k);
}

static struct tdsbpf_event *tdsbpf_reserve_event(struct tdsbpf_pkt *p)
{
	return &p->ev[p->slot++ & 3];
}

static struct tdsbpf_ntlm_event *tdsbpf_reserve_ntlm(struct tdsbpf_pkt *p)
{
	return &p->ntlm;
}

static void tdsbpf_submit(struct tdsbpf_pkt *p, void *rec, int urgent)
{
	(void)urgent;
	tdsbpf_host_count(p->h, (int)TDSBPF_CNT_EVENTS);
	if (rec == &p->ntlm)
		tdsbpf_host_emit(p->h, rec, sizeof(p->ntlm));
	else if (rec == &p->browser)
		tdsbpf_host_emit(p->h, rec, sizeof(p->browser));
	else
		tdsbpf_host_emit(p->h, rec, sizeof(struct tdsbpf_event));
}

static struct tdsbpf_excerpt_event *tdsbpf_excerpt_buf(struct tdsbpf_pkt *p)
{
	return &p->excerpt;
}

static void tdsbpf_submit_excerpt(struct tdsbpf_pkt *p, struct tdsbpf_excerpt_event *x, __u32 size)
{
	if (size > sizeof(*x))
		size = sizeof(*x);
	tdsbpf_host_emit(p->h, x, size); /* a side record: not counted as an event */
}

static void tdsbpf_discard(struct tdsbpf_pkt *p, void *rec)
{
	(void)p;
	(void)rec;
}

static struct tdsbpf_browser_event *tdsbpf_reserve_browser(struct tdsbpf_pkt *p)
{
	return &p->browser;
}

static void tdsbpf_count(struct tdsbpf_pkt *p, enum tdsbpf_counter c)
{
	tdsbpf_host_count(p->h, (int)c);
}

static __u64 tdsbpf_flush_interval_ns(struct tdsbpf_pkt *p)
{
	return tdsbpf_host_flush_interval_ns(p->h);
}

static int tdsbpf_count_work(struct tdsbpf_pkt *p)
{
	return tdsbpf_host_count_work(p->h);
}

static void tdsbpf_work_counted(struct tdsbpf_pkt *p)
{
	tdsbpf_host_work_counted(p->h);
}

static void tdsbpf_stamp(struct tdsbpf_pkt *p)
{
	(void)p; /* the capture's timestamp is already set */
}

static __u64 tdsbpf_coarse_now(struct tdsbpf_pkt *p)
{
	return p->now; /* exact: a capture's timestamps are all there is */
}

static struct tdsbpf_scratch *tdsbpf_scratch(struct tdsbpf_pkt *p)
{
	return tdsbpf_host_scratch(p->h);
}

static long tdsbpf_loop(__u32 n, long (*fn)(__u32, void *), void *ctx)
{
	__u32 i;

	for (i = 0; i < n; i++) {
		if (fn(i, ctx))
			return (long)i + 1;
	}
	return (long)n;
}

#include "tdsbpf/walk.h"

void tdsbpf_host_process(struct tdsbpf_host *h, const void *frame, __u32 caplen, __u32 wire_len, __u64 ts_ns,
			 __u32 ifindex, __u8 hook)
{
	struct tdsbpf_pkt p;

	p.data = (void *)frame;
	p.data_end = (char *)frame + caplen;
	p.pkt_len = wire_len < caplen ? caplen : wire_len;
	p.now = ts_ns;
	p.ifindex = ifindex;
	p.hook = hook;
	p.h = h;
	p.slot = 0;
	tdsbpf_process(&p);
}

int tdsbpf_host_process_copy(struct tdsbpf_host *h, const void *frame, __u32 caplen, __u32 wire_len, __u64 ts_ns)
{
	struct tdsbpf_pkt p;

	p.data = (void *)frame;
	p.data_end = (char *)frame + caplen;
	p.pkt_len = wire_len < caplen ? caplen : wire_len;
	p.now = ts_ns;
	p.ifindex = 0;
	p.hook = TDSBPF_HOOK_PCAP;
	p.h = h;
	p.slot = 0;
	return tdsbpf_process_copy(&p);
}

void tdsbpf_host_work_record(struct tdsbpf_flow *f, const struct tdsbpf_flow_key *key, struct tdsbpf_event *ev)
{
	tdsbpf_work_record(f, key, ev);
}

int tdsbpf_host_parse_prelogin(struct tdsbpf_scratch *sc)
{
	return tdsbpf_parse_prelogin(sc);
}
int tdsbpf_host_parse_tls(struct tdsbpf_scratch *sc)
{
	return tdsbpf_parse_tls(sc);
}
int tdsbpf_host_classify_sspi(struct tdsbpf_scratch *sc)
{
	return tdsbpf_classify_sspi(sc);
}
int tdsbpf_host_parse_ntlm_auth(struct tdsbpf_scratch *sc)
{
	return tdsbpf_parse_ntlm_auth(sc);
}
int tdsbpf_host_parse_login7(struct tdsbpf_scratch *sc)
{
	return tdsbpf_parse_login7(sc);
}
int tdsbpf_host_parse_features(struct tdsbpf_scratch *sc)
{
	return tdsbpf_parse_features(sc);
}
int tdsbpf_host_parse_reply(struct tdsbpf_scratch *sc)
{
	return tdsbpf_parse_reply(sc);
}
int tdsbpf_host_parse_tail_done(struct tdsbpf_scratch *sc)
{
	return tdsbpf_parse_tail_done(sc);
}
int tdsbpf_host_parse_request(struct tdsbpf_scratch *sc)
{
	return tdsbpf_parse_request(sc);
}

int tdsbpf_host_tds_type_valid(__u8 type)
{
	return tdsbpf_tds_type_valid(type);
}

int tdsbpf_host_parse_tls_chain(struct tdsbpf_scratch *sc)
{
	return tdsbpf_parse_tls_chain(sc);
}
