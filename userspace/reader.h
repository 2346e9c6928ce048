// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Capture files (pcap, pcapng) through libpcap, into the host walk.
#pragma once

#include <cstdint>
#include <string>

#include "host_parser.h"

namespace tdsbpf {

struct ReadStats {
	uint64_t frames = 0;	   // frames read from the file
	uint64_t duplicates = 0;   // identical copies of a frame, not walked again (reader.cpp)
	uint64_t unsupported = 0;  // frames of a kind we do not parse (not IP)
	uint64_t short_frames = 0; // frames cut by the capture's snap length
	bool truncated = false;	   // the file ended in the middle of a record
	std::string warning;	   // what went wrong, when something did
	int linktype = -1;
	std::string linktype_name;
};

// Throws std::runtime_error with a clear message when the file cannot be
// read at all (missing, not a capture, an unsupported link type). A file
// that ends early is not an error: what was read is kept and stats say so.
// current_frame, when given, holds the number of the frame being walked
// (1 for the file's first, as Wireshark numbers them) while parser runs.
ReadStats read_capture(const std::string& path, HostParser& parser, uint64_t* current_frame = nullptr);

} // namespace tdsbpf
