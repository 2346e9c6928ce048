// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// One event as a JSON object: the --events debug view, and what tests compare.
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "tdsbpf/events.h"
#include "tdsbpf/events.hpp"

namespace tdsbpf {

// ts: include the timestamp (tests that compare kernel and host leave it out).
// redact: leave out the NTLM names.
nlohmann::json event_to_json(const tdsbpf_event& ev, std::size_t len, bool ts = true, bool redact = false);

} // namespace tdsbpf
