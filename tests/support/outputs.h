// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Reading back what tdsbpf wrote: its files, its connection records, its
// exit summary.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lab/netns_lab.h"

namespace labtest {

// The lab server in the lab's server namespace, port 1433, listening on
// `listen` (default: the server address), its files in dir; its pid once
// it listens, or 0.
pid_t start_lab_server(tdsbpf::lab::NetnsLab& lab, const tdsbpf::lab::TempDir& dir, const std::string& listen = {});

// Polls pred every 50 ms until it holds (true) or timeout passes (false).
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

// A whole file ("" if it cannot be read).
std::string slurp(const std::string& path);
// The body of the first ``` fenced block after the text `after` in a file
// (documentation examples), with its last newline; empty when not found.
std::string fenced_block(const std::string& path, const std::string& after);

// The connection records (tdsbpf.record "connection") of an NDJSON file;
// other lines (snapshots, events, anything not JSON) are passed over.
std::vector<nlohmann::json> read_connection_records(const std::string& path);

// The last JSON summary in a log (stderr); null if there is none.
nlohmann::json summary_in(const std::string& log);

// What a run of the tdsbpf binary gave: its exit status (-1: killed by a
// signal), its standard output (unless it went to out_fd) and error.
struct TdsbpfRun {
	int rc = -1;
	std::string out, err;
};

// Runs tdsbpf with args and waits for it: its stdin from in_fd (or
// /dev/null), its stdout to out_fd (or captured), its stderr captured.
// on_start, when given, is called with its pid while it runs. SIGPIPE is
// ignored here from then on (a test that writes to its stdin sees a closed
// pipe as an error, not a signal) and left as it was in tdsbpf.
TdsbpfRun run_tdsbpf(const std::vector<std::string>& args, int in_fd = -1, int out_fd = -1,
		     const std::function<void(pid_t)>& on_start = {});

} // namespace labtest
