// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// tdsbpf-bench-bare: attaches the bare XDP_PASS and tc pass programs to one
// interface the way tdsbpf attaches its own (XDP link in native mode, tcx
// egress link), writes a ready file, and holds them until SIGINT/SIGTERM.
// The live benchmark rows use it as the "a BPF program is there at all"
// anchor: its run time per packet is the floor tdsbpf's is compared with.
//
//   tdsbpf-bench-bare --iface IF [--ready-file F] [--xdp-only] [--generic]
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tc_pass.skel.h"
#include "xdp_pass.skel.h"

// tcx attach point (Linux 6.6+); not in older uapi headers (as in loader.cpp).
#define BENCH_TCX_EGRESS 47

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

int main(int argc, char **argv)
{
	const char *iface = NULL, *ready = NULL;
	int xdp_only = 0, generic = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--iface") && i + 1 < argc)
			iface = argv[++i];
		else if (!strcmp(argv[i], "--ready-file") && i + 1 < argc)
			ready = argv[++i];
		else if (!strcmp(argv[i], "--xdp-only"))
			xdp_only = 1;
		else if (!strcmp(argv[i], "--generic"))
			generic = 1;
		else {
			fprintf(stderr, "usage: %s --iface IF [--ready-file F] [--xdp-only] [--generic]\n", argv[0]);
			return 2;
		}
	}
	if (!iface) {
		fprintf(stderr, "--iface is required\n");
		return 2;
	}
	int ifindex = (int)if_nametoindex(iface);
	if (!ifindex) {
		fprintf(stderr, "unknown interface %s\n", iface);
		return 2;
	}
	libbpf_set_print(quiet_print);
	struct xdp_pass_bpf *x = xdp_pass_bpf__open_and_load();
	struct tc_pass_bpf *t = xdp_only ? NULL : tc_pass_bpf__open_and_load();
	if (!x || (!xdp_only && !t)) {
		fprintf(stderr, "cannot load the bare programs: %s\n", strerror(errno));
		return 2;
	}
	LIBBPF_OPTS(bpf_link_create_opts, xo, .flags = generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE);
	int xl = bpf_link_create(bpf_program__fd(x->progs.xdp_pass), ifindex, BPF_XDP, &xo);
	if (xl < 0) {
		fprintf(stderr, "cannot attach XDP to %s: %s\n", iface, strerror(errno));
		return 2;
	}
	int tl = -1;
	if (t) {
		tl = bpf_link_create(bpf_program__fd(t->progs.tc_pass), ifindex, (enum bpf_attach_type)BENCH_TCX_EGRESS,
				     NULL);
		if (tl < 0) {
			fprintf(stderr, "cannot attach tcx egress to %s: %s\n", iface, strerror(errno));
			return 2;
		}
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (ready) {
		// written whole under another name and renamed, so a reader never
		// sees it half written
		char tmp[4096];
		snprintf(tmp, sizeof(tmp), "%s.tmp", ready);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "ready\n") < 0 || fclose(f) != 0 || rename(tmp, ready) != 0) {
			fprintf(stderr, "cannot write %s\n", ready);
			return 2;
		}
	}
	// bounded: the suite stops it, but a lost parent must not leave it forever
	for (int i = 0; i < 3600 * 10 && !stop; i++)
		usleep(100000);
	if (tl >= 0)
		close(tl);
	close(xl);
	tc_pass_bpf__destroy(t);
	xdp_pass_bpf__destroy(x);
	return 0;
}
