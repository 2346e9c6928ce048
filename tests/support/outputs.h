// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Reading back what tdsbpf wrote: its files, its connection records, its
// exit summary.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace labtest {

// A whole file ("" if it cannot be read).
std::string slurp(const std::string& path);

// The connection records (tdsbpf.record "connection") of an NDJSON file;
// other lines (snapshots, events, anything not JSON) are passed over.
std::vector<nlohmann::json> read_connection_records(const std::string& path);

// The last JSON summary in a log (stderr); null if there is none.
nlohmann::json summary_in(const std::string& log);

} // namespace labtest
