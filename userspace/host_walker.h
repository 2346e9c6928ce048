/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The frame walk of include/tdsbpf/walk.h compiled for the host: the same
 * code as the packet programs, with a flow table and an event callback in
 * place of the BPF maps. Used by the offline reader and the tests.
 */
#ifndef TDSBPF_HOST_WALKER_H
#define TDSBPF_HOST_WALKER_H

#include <stddef.h>
#include <linux/types.h>

#include "tdsbpf/events.h"
#include "tdsbpf/flow.h"

#ifdef __cplusplus
extern "C" {
#endif

struct tdsbpf_host;

/* Hooks the host side provides (implemented in C++, host_parser.cpp). */
struct tdsbpf_flow *tdsbpf_host_flow_get(struct tdsbpf_host *h, const struct tdsbpf_flow_key *k);
struct tdsbpf_flow *tdsbpf_host_flow_create(struct tdsbpf_host *h, const struct tdsbpf_flow_key *k);
void tdsbpf_host_emit(struct tdsbpf_host *h, const void *record, size_t len);
int tdsbpf_host_is_server_port(struct tdsbpf_host *h, __u16 port);
void tdsbpf_host_follow_port(struct tdsbpf_host *h, __u16 port);
void tdsbpf_host_count(struct tdsbpf_host *h, int counter);
int tdsbpf_host_follow_browser(struct tdsbpf_host *h);
void tdsbpf_host_browser_port(struct tdsbpf_host *h, __u16 port);
void tdsbpf_host_browser_asked(struct tdsbpf_host *h, const struct tdsbpf_flow_key *k);
int tdsbpf_host_browser_was_asked(struct tdsbpf_host *h, const struct tdsbpf_flow_key *k);
__u32 tdsbpf_host_snaplen(struct tdsbpf_host *h);
/* A copy of a frame for --write-pcap (caplen bytes of a wire_len frame). */
void tdsbpf_host_capture(struct tdsbpf_host *h, const void *frame, __u32 caplen, __u32 wire_len, __u64 ts_ns,
			 __u32 ifindex, __u8 hook, const struct tdsbpf_flow_key *key, __u8 dir);
__u64 tdsbpf_host_flush_interval_ns(struct tdsbpf_host *h);
int tdsbpf_host_count_work(struct tdsbpf_host *h);
void tdsbpf_host_work_counted(struct tdsbpf_host *h);
struct tdsbpf_scratch *tdsbpf_host_scratch(struct tdsbpf_host *h);

/*
 * Runs the walk over one Ethernet frame (frame: caplen bytes captured of
 * a frame that was wire_len bytes long).
 */
void tdsbpf_host_process(struct tdsbpf_host *h, const void *frame, __u32 caplen, __u32 wire_len, __u64 ts_ns,
			 __u32 ifindex, __u8 hook);

/*
 * An identical copy of a frame already given (tdsbpf_process_copy): 1 when
 * its flow counted it as a second sighting, 0 when it was left alone.
 */
int tdsbpf_host_process_copy(struct tdsbpf_host *h, const void *frame, __u32 caplen, __u32 wire_len, __u64 ts_ns);

/*
 * The TDSBPF_EV_WORK record of a flow's counted routine work (events.h),
 * its count started over: for flows still open at the end of a run. The
 * flow's work.events is 0 when there is nothing to send.
 */
void tdsbpf_host_work_record(struct tdsbpf_flow *f, const struct tdsbpf_flow_key *key, struct tdsbpf_event *ev);

/* The parsers on their own, for tests: each reads sc->b/sc->n (see parse.h). */
int tdsbpf_host_parse_prelogin(struct tdsbpf_scratch *sc);
int tdsbpf_host_parse_tls(struct tdsbpf_scratch *sc);
int tdsbpf_host_parse_tls_chain(struct tdsbpf_scratch *sc);
int tdsbpf_host_classify_sspi(struct tdsbpf_scratch *sc);
int tdsbpf_host_parse_ntlm_auth(struct tdsbpf_scratch *sc);
int tdsbpf_host_parse_login7(struct tdsbpf_scratch *sc);
int tdsbpf_host_parse_features(struct tdsbpf_scratch *sc);
int tdsbpf_host_parse_reply(struct tdsbpf_scratch *sc);
int tdsbpf_host_parse_tail_done(struct tdsbpf_scratch *sc);
int tdsbpf_host_parse_request(struct tdsbpf_scratch *sc);
/* Whether a byte is a TDS packet type a client or server sends (the walk's test). */
int tdsbpf_host_tds_type_valid(__u8 type);

#ifdef __cplusplus
}
#endif

#endif /* TDSBPF_HOST_WALKER_H */
