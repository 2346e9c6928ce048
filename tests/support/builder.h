// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The tests' view of the packet builder (userspace/lab/packets.h, all of it
// in namespace tb) plus an event collector around tdsbpf::HostParser.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "host_parser.h"
#include "lab/packets.h"

namespace tb {

using namespace tdsbpf::lab;

// A recorded event: the record's bytes as emitted.
struct Rec {
	Bytes raw;
	const tdsbpf_event& ev() const { return *reinterpret_cast<const tdsbpf_event*>(raw.data()); }
	const tdsbpf_ntlm_event& ntlm() const { return *reinterpret_cast<const tdsbpf_ntlm_event*>(raw.data()); }
	const tdsbpf_excerpt_event& excerpt() const
	{
		return *reinterpret_cast<const tdsbpf_excerpt_event*>(raw.data());
	}
	uint8_t kind() const { return ev().kind; }
};

class Collector {
public:
	explicit Collector(tdsbpf::HostParserConfig cfg = {});
	void feed(const Bytes& frame, uint64_t ts = 0)
	{
		p.process_ethernet(std::span<const uint8_t>(frame.data(), frame.size()), (uint32_t)frame.size(), ts);
	}
	std::vector<Rec> take()
	{
		auto r = std::move(recs);
		recs.clear();
		return r;
	}
	std::vector<Rec> recs;
	// excerpts (the text of LOGIN7s and login replies) apart: a side record
	// most tests do not look at
	std::vector<Rec> excerpts;
	bool excerpts_inline = false; // in recs, in order, as the aggregator gets them
	tdsbpf::HostParser p;
};

std::vector<Rec> of_kind(const std::vector<Rec>& v, uint8_t kind);
std::string kinds(const std::vector<Rec>& v); // "SYN,TDS,..." for messages

// Drives a fresh Collector through SYN / SYN-ACK / ACK and drops those events.
void handshake(Collector& c, Conn& k);

} // namespace tb
