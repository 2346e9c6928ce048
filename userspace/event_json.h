// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// One event as a JSON object: the --events debug view, and what tests compare.
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "tdsbpf/events.h"

namespace tdsbpf {

const char* event_kind_name(uint8_t kind);
const char* tds_type_name(uint8_t type);
std::string address_string(const uint8_t* addr, uint8_t family);

// ts: include the timestamp (tests that compare kernel and host leave it out).
// redact: leave out the NTLM names.
nlohmann::json event_to_json(const tdsbpf_event& ev, std::size_t len, bool ts = true,
			     bool redact = false);

} // namespace tdsbpf
