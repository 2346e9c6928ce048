// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// A TCP conversation to a SQL Server port built from the input: with or
// without the handshake, IPv4 or IPv6, with or without a VLAN tag,
// segments whose payloads are slices of the input, some retransmitted,
// lost, late, split, kept alive or acknowledged, then a FIN or RST close
// (or none). The frames go through the host walk (HostParser), its events
// into the aggregator and the --events view. The input format is in fuzz.h.
#include "fuzz.h"

using namespace tdsbpf::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
	Pipeline pipe(aggregator_config(conversation_aggregator_bits(data, size)));
	tdsbpf::HostParser parser({}, [&](const tdsbpf_event& ev, std::size_t len) { pipe.on_event(ev, len); });
	FrameFn frame = [&](std::span<const uint8_t> f, bool raw_ip, uint64_t ts) {
		if (raw_ip)
			parser.process_ip(f, static_cast<uint32_t>(f.size()), ts);
		else
			parser.process_ethernet(f, static_cast<uint32_t>(f.size()), ts);
	};
	uint64_t end = play_conversation(data, size, frame, [&](uint64_t ts) { pipe.tick(ts); });
	pipe.tick(end + 1'000'000'000ULL);
	parser.send_counted_work();
	pipe.finish(end + 2'000'000'000ULL);
	return 0;
}
