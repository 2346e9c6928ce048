// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#pragma once

#include <string>
#include <vector>

#include "lab/packets.h"

namespace tdsbpf::test {

using namespace tdsbpf::lab; // Bytes and the frame builders

// A capture's frames as Ethernet frames (cooked ones get an Ethernet
// header), without the second copy that "any" captures hold of each packet.
// Kept apart from the BPF headers: libpcap's bpf.h clashes with linux/bpf.h.
std::vector<Bytes> capture_frames(const std::string& path, std::string& error);

} // namespace tdsbpf::test
