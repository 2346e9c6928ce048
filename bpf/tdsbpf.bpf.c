// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet programs: XDP on ingress, tc on egress (and on ingress where XDP
 * cannot attach). Each keeps only TCP to or from the configured SQL Server
 * ports, runs the shared walk (include/tdsbpf/walk.h) and always passes
 * the packet on.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "tdsbpf/events.h"

/* The message parsers are global functions here: each is verified once. */
#define TDSBPF_PARSER __attribute__((noinline))
#include "tdsbpf/flow.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The event layout this object was built for; the loader checks it. */
const volatile __u32 event_abi = TDSBPF_EVENT_ABI;

/* Set by the loader before load. */
const volatile __u64 flush_interval_ns = 10ULL * 1000 * 1000 * 1000;
/* Wake the reader once this many bytes wait in the ring buffer. */
const volatile __u64 wakeup_bytes = 256 * 1024;
/* Trace the ports that servers route their clients to (--follow-redirects). */
const volatile __u8 follow_redirects = 0;
/* Watch SQL Browser replies and trace the ports they name (--follow-browser). */
const volatile __u8 follow_browser = 0;
/* Count routine requests and replies in the flow entry (off: --every-request). */
const volatile __u8 count_work = 1;
/* Copy the first this many bytes of each packet out (--write-pcap); 0: none. */
const volatile __u32 capture_snaplen = 0;

/*
 * The SQL Server ports as a bitmap over all 65536 ports: a packet's test
 * is two array reads, with no map lookup. Writable at run time through the
 * skeleton's mmapped .bss.
 */
__u64 server_ports[65536 / 64];

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TDSBPF_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct tdsbpf_pkt {
	void *ctx;
	void *data;
	void *data_end;
	__u64 now;
	__u32 pkt_len;
	__u32 ifindex;
	__u8 hook;
	/*
	 * Which load helper to use. A full 64-bit constant on the stack, so
	 * that the verifier knows its value inside the walk's subprograms and
	 * never sees the helper the program type may not call.
	 */
	__u64 is_xdp;
};

static __always_inline int tdsbpf_load(struct tdsbpf_pkt *p, __u32 off, void *dst, __u32 len)
{
	if (p->is_xdp)
		return bpf_xdp_load_bytes((struct xdp_md *)p->ctx, off, dst, len);
	return bpf_skb_load_bytes(p->ctx, off, dst, len);
}

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tdsbpf_flow_key);
	__type(value, struct tdsbpf_flow);
} flows SEC(".maps");

/* Working memory of the walk (see struct tdsbpf_scratch in flow.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tdsbpf_scratch);
} scratch SEC(".maps");

static __always_inline struct tdsbpf_scratch *tdsbpf_scratch(struct tdsbpf_pkt *p)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&scratch, &zero);
}

/* Holds one zeroed flow that new flows are copied from (never written). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tdsbpf_flow);
} zero_flow SEC(".maps");

static __always_inline int tdsbpf_pull(struct tdsbpf_pkt *p, __u32 len)
{
	struct __sk_buff *skb = p->ctx;

	if (p->is_xdp)
		return -1;
	if (bpf_skb_pull_data(skb, len) < 0)
		return -1;
	p->data = (void *)(long)skb->data;
	p->data_end = (void *)(long)skb->data_end;
	return 0;
}

static __always_inline int tdsbpf_is_server_port(struct tdsbpf_pkt *p, __u16 port)
{
	return (server_ports[(port >> 6) & 1023] >> (port & 63)) & 1;
}

static __always_inline void tdsbpf_follow_port(struct tdsbpf_pkt *p, __u16 port)
{
	if (follow_redirects)
		__sync_fetch_and_or(&server_ports[(port >> 6) & 1023], 1ULL << (port & 63));
}

static __always_inline int tdsbpf_follow_browser(struct tdsbpf_pkt *p)
{
	return follow_browser;
}

static __always_inline void tdsbpf_browser_port(struct tdsbpf_pkt *p, __u16 port)
{
	__sync_fetch_and_or(&server_ports[(port >> 6) & 1023], 1ULL << (port & 63));
}

/* Browser requests by client end (the server address zeroed), oldest forgotten. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct tdsbpf_flow_key);
	__type(value, __u64);
} browser_asks SEC(".maps");

static __always_inline void tdsbpf_browser_asked(struct tdsbpf_pkt *p, const struct tdsbpf_flow_key *k)
{
	__u64 now = p->now;

	bpf_map_update_elem(&browser_asks, k, &now, BPF_ANY);
}

static __always_inline int tdsbpf_browser_was_asked(struct tdsbpf_pkt *p, const struct tdsbpf_flow_key *k)
{
	return bpf_map_lookup_elem(&browser_asks, k) != 0;
}

/*
 * The cgroup of the socket a packet leaves from; only tc at egress has
 * one (a SYN+ACK's is its listener's).
 */
static __always_inline __u64 tdsbpf_cgroup_id(struct tdsbpf_pkt *p)
{
	if (p->is_xdp || p->hook != TDSBPF_HOOK_TC_EGRESS)
		return 0;
	return bpf_skb_cgroup_id((struct __sk_buff *)p->ctx);
}

static __always_inline struct tdsbpf_flow *tdsbpf_flow_get(struct tdsbpf_pkt *p, const struct tdsbpf_flow_key *k)
{
	return bpf_map_lookup_elem(&flows, k);
}

static __always_inline struct tdsbpf_flow *tdsbpf_flow_create(struct tdsbpf_pkt *p, const struct tdsbpf_flow_key *k)
{
	__u32 zero = 0;
	struct tdsbpf_flow *init = bpf_map_lookup_elem(&zero_flow, &zero);

	if (!init)
		return 0;
	if (bpf_map_update_elem(&flows, k, init, BPF_ANY) < 0)
		return 0;
	return bpf_map_lookup_elem(&flows, k);
}

static __always_inline struct tdsbpf_event *tdsbpf_reserve_event(struct tdsbpf_pkt *p)
{
	return bpf_ringbuf_reserve(&events, sizeof(struct tdsbpf_event), 0);
}

static __always_inline struct tdsbpf_ntlm_event *tdsbpf_reserve_ntlm(struct tdsbpf_pkt *p)
{
	return bpf_ringbuf_reserve(&events, sizeof(struct tdsbpf_ntlm_event), 0);
}

static __always_inline struct tdsbpf_browser_event *tdsbpf_reserve_browser(struct tdsbpf_pkt *p)
{
	return bpf_ringbuf_reserve(&events, sizeof(struct tdsbpf_browser_event), 0);
}

static __always_inline void tdsbpf_count(struct tdsbpf_pkt *p, enum tdsbpf_counter c)
{
	__u32 k = c;
	__u64 *v = bpf_map_lookup_elem(&counters, &k);

	if (v)
		*v += 1;
}

/*
 * Batched wake-ups: routine records (requests, replies, TLS data) do not
 * wake the reader until enough bytes wait; records that change a
 * connection's phase use the default, which wakes a reader that is idle.
 * The reader also polls with a short timeout, so nothing waits for long.
 */
static __always_inline void tdsbpf_submit(struct tdsbpf_pkt *p, void *rec, int urgent)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	tdsbpf_count(p, TDSBPF_CNT_EVENTS);
	if (urgent)
		flags = 0;
	else if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(rec, flags);
}

static __always_inline void tdsbpf_discard(struct tdsbpf_pkt *p, void *rec)
{
	bpf_ringbuf_discard(rec, BPF_RB_NO_WAKEUP);
}

static __always_inline __u64 tdsbpf_flush_interval_ns(struct tdsbpf_pkt *p)
{
	return flush_interval_ns;
}

static __always_inline int tdsbpf_count_work(struct tdsbpf_pkt *p)
{
	return count_work;
}

static __always_inline void tdsbpf_work_counted(struct tdsbpf_pkt *p) {}

static __always_inline long tdsbpf_loop(__u32 n, long (*fn)(__u32, void *), void *ctx)
{
	return bpf_loop(n, fn, ctx, 0);
}

static __always_inline void tdsbpf_stamp(struct tdsbpf_pkt *p)
{
	p->now = bpf_ktime_get_ns();
}

/*
 * The short path's clock: the time of the last tick, a few loads, where
 * bpf_ktime_get_ns reads the clock source (a paravirtual clock in a VM
 * costs more than the rest of the short path).
 */
static __always_inline __u64 tdsbpf_coarse_now(struct tdsbpf_pkt *p)
{
	return bpf_ktime_get_coarse_ns();
}

/* A packet copy is built here, then put in the ring buffer at its own size. */
struct tdsbpf_capture_buf {
	struct tdsbpf_packet_event hdr;
	__u8 data[TDSBPF_SNAPLEN_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tdsbpf_capture_buf);
} capture_buf SEC(".maps");

static __always_inline int tdsbpf_capturing(struct tdsbpf_pkt *p)
{
	return capture_snaplen != 0;
}

static __noinline void tdsbpf_capture(struct tdsbpf_pkt *p, const struct tdsbpf_flow_key *key, __u8 dir)
{
	struct tdsbpf_capture_buf *c;
	__u32 zero = 0;
	__u32 n = p->pkt_len;

	c = bpf_map_lookup_elem(&capture_buf, &zero);
	if (!c)
		return;
	if (n > capture_snaplen)
		n = capture_snaplen;
	if (n > TDSBPF_SNAPLEN_MAX)
		n = TDSBPF_SNAPLEN_MAX;
	if (n == 0 || tdsbpf_load(p, 0, c->data, n) < 0)
		return;
	if (!p->now)
		tdsbpf_stamp(p);
	__builtin_memset(&c->hdr, 0, sizeof(c->hdr));
	c->hdr.base.ts_ns = p->now;
	__builtin_memcpy(&c->hdr.base.key, key, sizeof(c->hdr.base.key));
	c->hdr.base.ifindex = p->ifindex;
	c->hdr.base.kind = TDSBPF_EV_PACKET;
	c->hdr.base.dir = dir;
	c->hdr.base.hook = p->hook;
	c->hdr.orig_len = p->pkt_len;
	c->hdr.cap_len = n;
	/* copies alone fill the buffer on the short path: they wake the reader as other records do */
	if (bpf_ringbuf_output(&events, c, sizeof(c->hdr) + n,
			       bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
											     : BPF_RB_NO_WAKEUP) < 0) {
		/* counted apart: a lost copy loses no connection's events */
		tdsbpf_count(p, TDSBPF_CNT_CAPTURE_DROPS);
		return;
	}
	tdsbpf_count(p, TDSBPF_CNT_EVENTS);
}

/* One excerpt's working memory: the record is sent from here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tdsbpf_excerpt_event);
} excerpt_buf SEC(".maps");

static __always_inline struct tdsbpf_excerpt_event *tdsbpf_excerpt_buf(struct tdsbpf_pkt *p)
{
	__u32 zero = 0;

	(void)p;
	return bpf_map_lookup_elem(&excerpt_buf, &zero);
}

static __always_inline void tdsbpf_submit_excerpt(struct tdsbpf_pkt *p, struct tdsbpf_excerpt_event *x, __u32 size)
{
	if (!x)
		return;
	if (size > sizeof(*x))
		size = sizeof(*x);
	/* not counted as an event: a side record, its losses counted apart */
	if (bpf_ringbuf_output(&events, x, size, 0) < 0)
		tdsbpf_count(p, TDSBPF_CNT_EXCERPT_DROPS);
}

#include "tdsbpf/walk.h"

SEC("xdp")
int tdsbpf_xdp(struct xdp_md *ctx)
{
	struct tdsbpf_pkt p;

	p.ctx = ctx;
	p.data = (void *)(long)ctx->data;
	p.data_end = (void *)(long)ctx->data_end;
	/* loaded without frags: the buffer is linear */
	p.pkt_len = (__u32)(ctx->data_end - ctx->data);
	p.now = 0;
	p.ifindex = ctx->ingress_ifindex;
	p.hook = TDSBPF_HOOK_XDP;
	p.is_xdp = 1;
	tdsbpf_process(&p);
	return XDP_PASS;
}

static __always_inline int tdsbpf_tc(struct __sk_buff *skb, __u8 hook)
{
	struct tdsbpf_pkt p;

	p.ctx = skb;
	p.data = (void *)(long)skb->data;
	p.data_end = (void *)(long)skb->data_end;
	p.pkt_len = skb->len;
	p.now = 0;
	p.ifindex = skb->ifindex;
	p.hook = hook;
	p.is_xdp = 0;
	tdsbpf_process(&p);
	/* TC_ACT_UNSPEC (and TCX_NEXT): carry on as if we were not here */
	return -1;
}

SEC("tc")
int tdsbpf_tc_egress(struct __sk_buff *skb)
{
	return tdsbpf_tc(skb, TDSBPF_HOOK_TC_EGRESS);
}

SEC("tc")
int tdsbpf_tc_ingress(struct __sk_buff *skb)
{
	return tdsbpf_tc(skb, TDSBPF_HOOK_TC_INGRESS);
}
