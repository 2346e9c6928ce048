// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Drives many TdsClient sessions at once: a fixed number of workers, each
// holding one connection at a time, sharing one request-rate schedule.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "tds_client.h"

namespace tdslab {

struct LoadPlan {
	ClientOptions client;
	unsigned concurrency = 10;		   // connections open at once
	std::chrono::milliseconds duration{10000}; // stop after this long...
	std::uint64_t max_requests = 0;		   // ...or after this many requests (0: no limit)
	double rate = 0;			   // requests per second over all workers (0: as fast as possible)
	std::uint64_t requests_per_connection = 0; // reconnect after this many (0: keep the connection)
	std::string query = "SELECT 1";
};

struct LoadReport {
	double elapsed_s = 0;
	std::uint64_t connections_ok = 0;
	std::uint64_t connections_failed = 0;
	std::uint64_t requests_ok = 0;
	std::uint64_t requests_failed = 0;
	std::uint64_t rows = 0;
	std::vector<double> login_ms;	// sorted
	std::vector<double> request_ms; // sorted
	std::string first_error;

	double percentile(const std::vector<double>& sorted, double p) const;
	std::string text() const;
	std::string json() const;
};

LoadReport run_load(const LoadPlan& plan);

} // namespace tdslab
