// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Raw link-layer frames (or IP packets) from the input, one after the
// other, through the host walk, its events into the aggregator and the
// --events view. A small flow table makes flows forget each other. The
// input format is in fuzz.h.
#include "fuzz.h"

using namespace tdsbpf::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
	static const std::size_t kFlows[4] = {1, 2, 64, 65536};
	static const uint8_t kHooks[4] = {TDSBPF_HOOK_XDP, TDSBPF_HOOK_TC_INGRESS, TDSBPF_HOOK_TC_EGRESS,
					  TDSBPF_HOOK_PCAP};
	Input in(data, size);
	uint8_t config = in.u8();
	tdsbpf::HostParserConfig pc;
	pc.max_flows = kFlows[config & 3];
	if (config & 4)
		pc.ports = {1433, 1434, 60000};
	Pipeline pipe(aggregator_config(config >> 3));
	tdsbpf::HostParser parser(pc, [&](const tdsbpf_event& ev, std::size_t len) { pipe.on_event(ev, len); });

	uint64_t ts = kEpochNs;
	while (!in.empty()) {
		uint8_t ctl = in.u8();
		uint8_t extra = in.u8();
		std::size_t len = in.u16();
		auto frame = in.take(len);
		if (frame.empty())
			frame = {}; // as an empty vector gives it: no data pointer

		uint32_t wire = static_cast<uint32_t>(frame.size()) + extra;
		uint8_t hook = kHooks[(ctl >> 1) & 3];
		uint8_t gap = ctl >> 4;
		ts += gap_ns(gap);
		if (ctl & kFrameIp)
			parser.process_ip(frame, wire, ts, 1, hook);
		else
			parser.process_ethernet(frame, wire, ts, 2, hook);
		if (gap >= 12)
			pipe.tick(ts);
	}
	pipe.tick(ts + 1'000'000'000ULL);
	parser.send_counted_work();
	pipe.finish(ts + 2'000'000'000ULL);
	return 0;
}
