// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Numbers for Prometheus: what the aggregator saw, counted as it happens
// (logins as they are answered, requests as their responses come,
// connections as they end), rendered in the Prometheus text format.
//
//   Metrics metrics;
//   cfg.metrics = &metrics;          // the aggregator counts into it
//   ...
//   std::string page = metrics.render(agg.summary(), tracer);
//
// Labels stay bounded: the server endpoint (never the client's port), and
// names from fixed sets (outcomes, close kinds, methods, diagnosis codes).
// At most max_servers endpoints get their own label value; the rest are
// counted under server="other".
//
// Like the aggregator, not thread-safe: count and render from the thread
// that reads the ring buffer, and hand the rendered text to the thread
// that serves it.
#ifndef TDSBPF_AGGREGATOR_METRICS_H
#define TDSBPF_AGGREGATOR_METRICS_H

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <functional>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace tdsbpf {

struct Summary;

// What only the tracer around the aggregator knows.
struct TracerCounters {
	bool live = false;
	uint64_t events_submitted = 0; // put in the ring buffer by the kernel
	uint64_t kernel_drops = 0;
	uint64_t user_drops = 0;
	uint64_t packets = 0; // SQL Server packets the kernel saw
	uint64_t flows_created = 0;
	uint64_t flow_insert_failures = 0;
	uint32_t interfaces = 0; // traced now
	double start_time_s = 0; // Unix time the tracer started
	std::string version;
};

// A Prometheus histogram with fixed upper bounds, in seconds.
class Histogram {
public:
	explicit Histogram(const std::vector<double>* bounds = nullptr) : bounds_(bounds) {}
	void observe(double seconds);
	const std::vector<double>& bounds() const { return *bounds_; }
	const std::vector<uint64_t>& counts() const { return counts_; } // per bucket, not cumulative
	uint64_t count() const { return count_; }
	double sum() const { return sum_; }

private:
	const std::vector<double>* bounds_;
	std::vector<uint64_t> counts_;
	uint64_t count_ = 0;
	double sum_ = 0;
};

class Metrics {
public:
	static constexpr uint32_t kDefaultMaxServers = 256;
	explicit Metrics(uint32_t max_servers = kDefaultMaxServers);

	// The label index of a server endpoint ("10.0.0.5:1433").
	uint32_t server(const std::string& endpoint);

	void connection_started(uint32_t server);
	// A login answered (or given up on): its outcome, method and encryption
	// names, the TLS version (empty: none), and its duration (SYN to the
	// answer) when known.
	void login(uint32_t server, std::string_view outcome, std::string_view method, std::string_view encryption,
		   std::string_view tls_version, const uint64_t* duration_ns);
	void request(uint32_t server, uint64_t latency_ns, uint64_t n = 1);
	void connection_ended(uint32_t server, std::string_view login_outcome, std::string_view close_kind,
			      std::string_view method);
	void diagnosis(uint32_t server, std::string_view code, std::string_view severity);
	// A SQL Server Browser lookup reported, by outcome.
	void browser_lookup(std::string_view outcome);
	// Connections by the local process at one end (--metrics-owner-labels:
	// off by default, as owners can be many). owner: the systemd unit, the
	// container id or the pod uid; at most max_servers distinct values,
	// the rest counted as "other".
	void set_owner_labels(bool on) { owner_labels_ = on; }
	bool owner_labels() const { return owner_labels_; }
	void owner_connection(uint32_t server, std::string_view side, std::string_view owner);

	// The whole page, Prometheus text format 0.0.4.
	std::string render(const Summary& s, const TracerCounters& t) const;

private:
	struct Server {
		std::string label;
		uint64_t started = 0, ended = 0;
		Histogram login_seconds, request_seconds;
	};
	// (server, label values...): looked up by string_view, so counting
	// allocates only the first time a combination is seen
	struct Key {
		uint32_t server;
		std::array<std::string, 3> labels;
	};
	struct KeyView {
		uint32_t server;
		std::array<std::string_view, 3> labels;
	};
	struct KeyLess {
		using is_transparent = void;
		static KeyView view(const Key& k) { return {k.server, {k.labels[0], k.labels[1], k.labels[2]}}; }
		static const KeyView& view(const KeyView& k) { return k; }
		template <typename A, typename B> bool operator()(const A& a, const B& b) const
		{
			const KeyView &x = view(a), &y = view(b);
			return std::tie(x.server, x.labels) < std::tie(y.server, y.labels);
		}
	};
	using Counts = std::map<Key, uint64_t, KeyLess>;
	static void bump(Counts& m, uint32_t server, std::string_view a, std::string_view b = {},
			 std::string_view c = {});
	uint32_t max_servers_;
	std::vector<Server> servers_;
	std::unordered_map<std::string, uint32_t> index_;
	Counts logins_;					       // server, outcome, method, encryption
	Counts ended_;					       // server, login outcome, close kind, method
	Counts diagnoses_;				       // server, code, severity
	Counts tls_;					       // server, version
	Counts owners_;					       // server, side, owner
	std::map<std::string, uint64_t, std::less<>> browser_; // outcome
	std::unordered_map<std::string, bool> owner_values_;
	bool owner_labels_ = false;
	uint32_t other_ = UINT32_MAX;
};

} // namespace tdsbpf

#endif
