// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The packet programs' walk run on the host, over captured frames.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "host_walker.h"
#include "tdsbpf/events.hpp"

namespace tdsbpf {

// One event record as the ring buffer would carry it: a tdsbpf_event, or the
// larger record its kind names (tdsbpf_ntlm_event, tdsbpf_browser_event,
// tdsbpf_packet_event and its bytes).
using EventCallback = std::function<void(const tdsbpf_event& ev, std::size_t len)>;

struct HostParserConfig {
	std::vector<uint16_t> ports{TDSBPF_DEFAULT_PORT};
	std::size_t max_flows = 65536;
	uint64_t flush_interval_ns = 10'000'000'000ULL;
	// Count routine requests and replies in the flow entry and send them
	// as TDSBPF_EV_WORK records, as the packet programs do; false: an
	// event for every TDS packet (--every-request, --events).
	bool count_work = true;
	// The capture's current frame number, if known: the work a flow counted
	// is sent at the end with the frame of its last packet counted.
	uint64_t* frame = nullptr;
	// Trace the ports servers route their clients to (ENVCHANGE routing).
	bool follow_redirects = false;
	// Take SQL Server Browser datagrams (UDP 1434) and trace the TCP ports
	// their replies name.
	bool follow_browser = false;
	// Copy the first snaplen bytes of each packet taken as a
	// TDSBPF_EV_PACKET record (--write-pcap); 0: none.
	uint32_t snaplen = 0;
};

class HostParser {
public:
	HostParser(HostParserConfig cfg, EventCallback cb);
	~HostParser();
	HostParser(const HostParser&) = delete;
	HostParser& operator=(const HostParser&) = delete;

	// An Ethernet frame (802.1Q allowed) as the packet programs see one.
	void process_ethernet(std::span<const uint8_t> frame, uint32_t wire_len, uint64_t ts_ns, uint32_t ifindex = 0,
			      uint8_t hook = TDSBPF_HOOK_PCAP);

	// An IPv4/IPv6 packet without a link header (raw IP, cooked, loopback).
	void process_ip(std::span<const uint8_t> packet, uint32_t wire_len, uint64_t ts_ns, uint32_t ifindex = 0,
			uint8_t hook = TDSBPF_HOOK_PCAP);

	// An identical copy of a frame given before (a capture that holds the
	// same bytes twice): counted in its flow as a second sighting when the
	// flow has seen all of it (true), else left alone; never walked again.
	bool copy_ethernet(std::span<const uint8_t> frame, uint32_t wire_len, uint64_t ts_ns);
	bool copy_ip(std::span<const uint8_t> packet, uint32_t wire_len, uint64_t ts_ns);

	uint64_t counter(tdsbpf_counter c) const { return counters_[c]; }
	std::size_t flows() const { return flows_.size(); }
	// Flows not closed (closed ones stay until replaced: see TDSBPF_TCP_CLOSED).
	std::size_t open_flows() const;

	// Hooks for host_walker.c.
	tdsbpf_flow* flow_get(const tdsbpf_flow_key& k);
	tdsbpf_flow* flow_create(const tdsbpf_flow_key& k);
	void emit(const void* record, std::size_t len);
	bool is_server_port(uint16_t port) const { return (ports_[port >> 6] >> (port & 63)) & 1; }
	void follow_port(uint16_t port)
	{
		if (follow_redirects_)
			ports_[port >> 6] |= 1ULL << (port & 63);
	}
	bool follow_browser() const { return cfg_.follow_browser; }
	void browser_port(uint16_t port) { ports_[port >> 6] |= 1ULL << (port & 63); }
	// Browser requests by client end, the oldest forgotten past 4096 (as
	// the kernel's LRU map).
	void browser_asked(const tdsbpf_flow_key& k);
	bool browser_was_asked(const tdsbpf_flow_key& k) const { return asks_.count(k) != 0; }
	uint32_t snaplen() const { return cfg_.snaplen; }
	void capture(std::span<const uint8_t> frame, uint32_t wire_len, uint64_t ts_ns, uint32_t ifindex, uint8_t hook,
		     const tdsbpf_flow_key& key, uint8_t dir);
	void count(int c)
	{
		if (c >= 0 && c < TDSBPF_CNT_MAX)
			counters_[c]++;
	}
	uint64_t flush_interval_ns() const { return cfg_.flush_interval_ns; }
	bool count_work() const { return cfg_.count_work; }
	// At the end of a capture: the routine work the open flows counted
	// and have not sent yet, as TDSBPF_EV_WORK records.
	void send_counted_work();
	void work_counted()
	{
		if (current_ && cfg_.frame)
			current_->work_frame = *cfg_.frame;
	}
	tdsbpf_scratch* scratch() { return scratch_.get(); }

private:
	// packet behind an Ethernet header in frame_ (empty when too large)
	std::span<const uint8_t> with_ethernet(std::span<const uint8_t> packet);

	// The flow table: entries in a pool whose addresses never move (the walk
	// holds a flow's pointer through a frame), found by key through a flat
	// index, and linked from the most to the least recently used.
	struct Entry {
		tdsbpf_flow flow;
		tdsbpf_flow_key key;
		Entry *newer = nullptr, *older = nullptr; // LRU neighbours
		uint64_t work_frame = 0;		  // the frame of the last packet its work counted
	};
	Entry* current_ = nullptr; // the flow of the frame being walked
	std::deque<Entry> pool_;
	std::vector<Entry*> free_; // pool entries of forgotten flows
	absl::flat_hash_map<tdsbpf_flow_key, Entry*, FlowKeyHash, FlowKeyEq> flows_;
	Entry *newest_ = nullptr, *oldest_ = nullptr;
	void unlink(Entry* e);
	void link_newest(Entry* e);

	HostParserConfig cfg_;
	EventCallback cb_;
	uint64_t ports_[65536 / 64] = {};
	bool follow_redirects_ = false;
	uint64_t counters_[TDSBPF_CNT_MAX] = {};
	std::unique_ptr<tdsbpf_scratch> scratch_;
	std::vector<uint8_t> frame_; // frames copied here, aligned (see host_parser.cpp)
	std::vector<uint8_t> copy_;  // a packet record being built (capture)
	std::unordered_map<tdsbpf_flow_key, bool, FlowKeyHash, FlowKeyEq> asks_;
	std::list<tdsbpf_flow_key> asks_order_;
};

} // namespace tdsbpf
