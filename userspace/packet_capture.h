// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// --write-pcap: the packets tdsbpf took, as pcapng for Wireshark, each
// with the id of its connection in the packet's comment, so that a
// record's tdsbpf.connection_id leads to its packets
// (frame.comment contains "tdsbpf.connection_id=7").
//
// With diagnosed_only, a connection's packets wait in memory until it
// ends, and are written only if its record got a warning or an error.
// The wait is bounded per connection and in all; what does not fit is
// counted, and the connection's last packet written says how many of its
// packets were left out.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "pcapng.h"
#include "tdsbpf/events.h"

namespace tdsbpf {

struct PacketCaptureOptions {
	PcapngOptions file;
	bool diagnosed_only = false;
	std::size_t per_connection_bytes = 1u << 20;	     // held per connection (diagnosed_only)
	std::size_t total_bytes = 64u << 20;		     // held in all
	std::function<std::string(uint32_t ifindex)> ifname; // "" for an index with no name
};

struct PacketCaptureStats {
	uint64_t written = 0;	   // packets in the files
	uint64_t not_kept = 0;	   // diagnosed_only: packets that did not fit the buffers
	uint64_t discarded = 0;	   // diagnosed_only: packets of connections with nothing to report
	uint64_t write_failed = 0; // packets lost to a failed write (the capture then stops)
	uint64_t files = 0;
};

class PacketCapture {
public:
	// Opens the first file; throws std::runtime_error naming it.
	explicit PacketCapture(PacketCaptureOptions o);

	// A packet copy, with the connection it belongs to (0: none tracked).
	void packet(uint64_t connection_id, const tdsbpf_packet_event& pk, std::span<const uint8_t> bytes);
	// A connection ended; diagnosed: its record has a warning or an error.
	void connection_end(uint64_t connection_id, bool diagnosed);
	// Pushes what the file's buffer holds to the file.
	void flush();
	// At the end, after every connection has ended: what is still held
	// belongs to no record and is counted as discarded.
	void finish();

	const PacketCaptureStats& stats() const { return stats_; }
	// The error that stopped the capture ("" while it runs).
	const std::string& error() const { return error_; }

private:
	struct Held {
		uint64_t ts;
		uint32_t ifindex;
		uint32_t orig_len;
		uint8_t dir;
		uint8_t hook;
		std::vector<uint8_t> bytes;
	};
	struct Pending {
		std::vector<Held> packets;
		std::size_t bytes = 0;
		uint64_t not_kept = 0;
	};
	void write(uint64_t connection_id, uint64_t ts, uint32_t ifindex, uint32_t orig_len, uint8_t dir,
		   std::span<const uint8_t> bytes, const std::string& note = {});
	void write_held(uint64_t connection_id, Pending& p);
	const std::string& name_of(uint32_t ifindex);

	PacketCaptureOptions opt_;
	std::unique_ptr<PcapngWriter> out_;
	std::unordered_map<uint64_t, Pending> held_;
	std::size_t held_bytes_ = 0;
	std::unordered_map<uint32_t, std::string> names_;
	PacketCaptureStats stats_;
	std::string error_;
	std::string comment_;
};

} // namespace tdsbpf
