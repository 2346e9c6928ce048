// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Reading back what tdsbpf wrote: its files, its connection records, its
// exit summary.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lab/netns_lab.h"

namespace labtest {

// The lab server in the lab's server namespace, port 1433, listening on
// `listen` (default: the server address), its files in dir; its pid once
// it listens, or 0.
pid_t start_lab_server(tdsbpf::lab::NetnsLab& lab, const tdsbpf::lab::TempDir& dir, const std::string& listen = {});

// A whole file ("" if it cannot be read).
std::string slurp(const std::string& path);

// The connection records (tdsbpf.record "connection") of an NDJSON file;
// other lines (snapshots, events, anything not JSON) are passed over.
std::vector<nlohmann::json> read_connection_records(const std::string& path);

// The last JSON summary in a log (stderr); null if there is none.
nlohmann::json summary_in(const std::string& log);

} // namespace labtest
