// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "load_runner.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <thread>

namespace tdslab {

namespace {

using SteadyClock = std::chrono::steady_clock;

double ms_since(SteadyClock::time_point t0)
{
	return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
}

// Hands out request start times spaced 1/rate apart, shared by all workers,
// so the offered load does not depend on how many workers there are.
class RateSchedule {
public:
	RateSchedule(double rate, SteadyClock::time_point start)
	    : interval_ns_(rate > 0 ? static_cast<std::int64_t>(1e9 / rate) : 0), start_(start)
	{
	}
	void wait_turn()
	{
		if (interval_ns_ == 0)
			return;
		std::int64_t slot = next_.fetch_add(1);
		auto when = start_ + std::chrono::nanoseconds(slot * interval_ns_);
		std::this_thread::sleep_until(when);
	}

private:
	std::int64_t interval_ns_;
	SteadyClock::time_point start_;
	std::atomic<std::int64_t> next_{0};
};

struct Shared {
	const LoadPlan& plan;
	SteadyClock::time_point start;
	SteadyClock::time_point stop_at;
	RateSchedule schedule;
	std::atomic<std::uint64_t> started{0};
	std::mutex mu;
	LoadReport report;

	bool should_stop() const { return SteadyClock::now() >= stop_at; }
	// Claims one request; false when --count is used up.
	bool claim()
	{
		if (plan.max_requests == 0)
			return true;
		return started.fetch_add(1) < plan.max_requests;
	}
};

void worker(Shared& sh)
{
	LoadReport local;
	while (!sh.should_stop()) {
		if (sh.plan.max_requests && sh.started.load() >= sh.plan.max_requests)
			break;
		TdsClient client(sh.plan.client);
		auto t0 = SteadyClock::now();
		try {
			client.connect_and_login();
			local.login_ms.push_back(ms_since(t0));
			++local.connections_ok;
		} catch (const std::exception& e) {
			++local.connections_failed;
			// A failed login uses up one request of --count, so a run against a
			// refusing server still ends.
			if (sh.plan.max_requests)
				sh.started.fetch_add(1);
			if (local.first_error.empty())
				local.first_error = e.what();
			// Do not spin on a dead server.
			std::this_thread::sleep_for(std::chrono::milliseconds(20));
			continue;
		}
		std::uint64_t done_here = 0;
		bool broken = false;
		while (!sh.should_stop() && !broken) {
			if (sh.plan.requests_per_connection && done_here >= sh.plan.requests_per_connection)
				break;
			if (!sh.claim())
				break;
			sh.schedule.wait_turn();
			if (sh.should_stop())
				break;
			auto r0 = SteadyClock::now();
			try {
				ResponseSummary s = client.execute(sh.plan.query);
				local.request_ms.push_back(ms_since(r0));
				local.rows += s.rows;
				if (s.errors.empty())
					++local.requests_ok;
				else {
					++local.requests_failed;
					if (local.first_error.empty())
						local.first_error = "server error: " + s.errors.front().text;
				}
			} catch (const std::exception& e) {
				++local.requests_failed;
				if (local.first_error.empty())
					local.first_error = e.what();
				broken = true;
			}
			++done_here;
		}
		client.close();
	}
	std::lock_guard<std::mutex> lock(sh.mu);
	LoadReport& r = sh.report;
	r.connections_ok += local.connections_ok;
	r.connections_failed += local.connections_failed;
	r.requests_ok += local.requests_ok;
	r.requests_failed += local.requests_failed;
	r.rows += local.rows;
	r.login_ms.insert(r.login_ms.end(), local.login_ms.begin(), local.login_ms.end());
	r.request_ms.insert(r.request_ms.end(), local.request_ms.begin(), local.request_ms.end());
	if (r.first_error.empty())
		r.first_error = local.first_error;
}

std::string fmt(const char* f, double v)
{
	char buf[64];
	std::snprintf(buf, sizeof buf, f, v);
	return buf;
}

} // namespace

double LoadReport::percentile(const std::vector<double>& sorted, double p) const
{
	if (sorted.empty())
		return 0;
	std::size_t idx = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size()))) - 1;
	return sorted[std::min(idx, sorted.size() - 1)];
}

std::string LoadReport::text() const
{
	auto rate = [&](std::uint64_t n) { return elapsed_s > 0 ? static_cast<double>(n) / elapsed_s : 0.0; };
	std::string s;
	s += "elapsed            " + fmt("%.2f s", elapsed_s) + "\n";
	s += "connections        " + std::to_string(connections_ok) + " ok, " + std::to_string(connections_failed) +
	     " failed (" + fmt("%.1f", rate(connections_ok)) + " connections/s)\n";
	s += "requests           " + std::to_string(requests_ok) + " ok, " + std::to_string(requests_failed) +
	     " failed (" + fmt("%.1f", rate(requests_ok)) + " requests/s), " + std::to_string(rows) + " rows\n";
	s += "login latency      p50 " + fmt("%.3f", percentile(login_ms, 50)) + " ms, p99 " +
	     fmt("%.3f", percentile(login_ms, 99)) + " ms\n";
	s += "request latency    p50 " + fmt("%.3f", percentile(request_ms, 50)) + " ms, p99 " +
	     fmt("%.3f", percentile(request_ms, 99)) + " ms\n";
	if (!first_error.empty())
		s += "first error        " + first_error + "\n";
	return s;
}

std::string LoadReport::json() const
{
	auto rate = [&](std::uint64_t n) { return elapsed_s > 0 ? static_cast<double>(n) / elapsed_s : 0.0; };
	std::string err;
	for (char c : first_error) {
		if (c == '"' || c == '\\')
			err.push_back('\\');
		if (static_cast<unsigned char>(c) >= 0x20)
			err.push_back(c);
	}
	return "{\"elapsed_s\":" + fmt("%.3f", elapsed_s) + ",\"connections_ok\":" + std::to_string(connections_ok) +
	       ",\"connections_failed\":" + std::to_string(connections_failed) +
	       ",\"connections_per_s\":" + fmt("%.2f", rate(connections_ok)) +
	       ",\"requests_ok\":" + std::to_string(requests_ok) +
	       ",\"requests_failed\":" + std::to_string(requests_failed) +
	       ",\"requests_per_s\":" + fmt("%.2f", rate(requests_ok)) + ",\"rows\":" + std::to_string(rows) +
	       ",\"login_p50_ms\":" + fmt("%.3f", percentile(login_ms, 50)) +
	       ",\"login_p99_ms\":" + fmt("%.3f", percentile(login_ms, 99)) +
	       ",\"request_p50_ms\":" + fmt("%.3f", percentile(request_ms, 50)) +
	       ",\"request_p99_ms\":" + fmt("%.3f", percentile(request_ms, 99)) + ",\"first_error\":\"" + err + "\"}";
}

LoadReport run_load(const LoadPlan& plan)
{
	auto start = SteadyClock::now();
	Shared sh{plan, start, start + plan.duration, RateSchedule(plan.rate, start), {}, {}, {}};
	std::vector<std::thread> threads;
	threads.reserve(plan.concurrency);
	for (unsigned i = 0; i < plan.concurrency; ++i)
		threads.emplace_back(worker, std::ref(sh));
	for (auto& t : threads)
		t.join();
	LoadReport r = std::move(sh.report);
	r.elapsed_s = std::chrono::duration<double>(SteadyClock::now() - start).count();
	std::sort(r.login_ms.begin(), r.login_ms.end());
	std::sort(r.request_ms.begin(), r.request_ms.end());
	return r;
}

} // namespace tdslab
