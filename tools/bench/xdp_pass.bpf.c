// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The floor the benchmarks compare against: an XDP program that only passes.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
