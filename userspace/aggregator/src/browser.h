// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// SQL Server Browser lookups (--follow-browser): a client's SSRP request
// and the answers it got, reported as one record of their own, and the
// answers remembered for a while so that the connection the client makes
// next, to the port it was told, names its instance.
#ifndef TDSBPF_AGGREGATOR_BROWSER_H
#define TDSBPF_AGGREGATOR_BROWSER_H

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "connection.h"
#include "ssrp.h"

namespace tdsbpf {

class BrowserTracker {
public:
	using IfName = std::function<std::string_view(uint32_t ifindex, uint64_t now)>;

	BrowserTracker(const AggregatorConfig& cfg, Sink& sink, Summary& sum, IfName ifname);

	// One datagram (a TDSBPF_EV_BROWSER record), in time order.
	void on_datagram(const tdsbpf_browser_event& ev);
	// Requests unanswered for browser_timeout_ms, and broadcasts whose time
	// to collect answers is over, are reported.
	void advance(uint64_t now);
	// Everything still waiting is reported.
	void finish(uint64_t now);
	// The instance a recent answer told this client is on the connection's
	// server port (null: none).
	std::shared_ptr<const Connection::BrowserOrigin> origin_for(const tdsbpf_flow_key& k, uint64_t ts);

	// Limits: lookups waiting for answers, and answers remembered.
	static constexpr std::size_t kMaxWaiting = 1024;
	static constexpr std::size_t kMaxResponses = 16; // kept per lookup (a broadcast's)
	static constexpr std::size_t kMaxAnswers = 4096;
	static constexpr uint64_t kAnswerMemoryNs = 30'000'000'000ull;

	struct Response {
		uint8_t addr[16] = {};
		uint64_t ts = 0;
		SsrpMessage msg;
	};
	struct Lookup {
		uint64_t id = 0;
		tdsbpf_flow_key key{}; // the request's (or the first answer's) endpoints
		uint32_t ifindex = 0;
		uint64_t request_ns = 0; // 0: the request was not seen
		SsrpMessage request;
		std::vector<Response> responses;
		std::vector<uint16_t> followed;
		bool unfinished = false; // the run ended before the wait did
	};

private:
	bool broadcast(const Lookup& l) const;
	void report(Lookup& l, uint64_t now);
	void remember(const Lookup& l, const Response& r);

	const AggregatorConfig& cfg_;
	Sink& sink_;
	Summary& sum_;
	IfName ifname_;
	uint64_t next_id_ = 1;
	std::deque<Lookup> waiting_; // oldest first
	struct Answer {
		uint8_t client[16];
		uint8_t server[16];
		uint8_t family;
		uint16_t port;
		uint64_t ts;
		std::shared_ptr<const Connection::BrowserOrigin> origin;
	};
	std::deque<Answer> answers_;
	JsonBuffer json_;
	std::string text_;
};

} // namespace tdsbpf

#endif
