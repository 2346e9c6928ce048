// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "fuzz.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "event_json.h"

namespace tdsbpf::fuzz {
namespace {

[[noreturn]] void fail(const char* what, std::string_view detail)
{
	std::fprintf(stderr, "fuzz check failed: %s\n%.*s\n", what, static_cast<int>(detail.size()), detail.data());
	std::abort();
}

// Every log message is formatted (so formatting is covered) and dropped.
struct QuietLogs {
	QuietLogs()
	{
		auto logger = std::make_shared<spdlog::logger>("fuzz", std::make_shared<spdlog::sinks::null_sink_mt>());
		logger->set_level(spdlog::level::trace);
		spdlog::set_default_logger(logger);
	}
};
const QuietLogs quiet_logs;

class RenderSink : public Sink {
public:
	bool wants_lines() const override { return true; }
	void on_line(const TimelineLine& line) override
	{
		std::string s = format_line(line);
		if (s.empty())
			fail("an empty timeline line", line.description);
	}
	void on_connection(const ConnectionRecord& record) override
	{
		std::string_view j = record.json();
		if (j.find('\n') != std::string_view::npos)
			fail("a JSON record spans lines", j);
		nlohmann::json parsed = nlohmann::json::parse(j, nullptr, false);
		if (parsed.is_discarded() || !parsed.is_object())
			fail("a record is not a JSON object", j);
		std::string_view t = record.text();
		if (t.empty() || t.back() != '\n')
			fail("a text record does not end its last line", t);
		(void)record.connection_id();
		(void)record.final();
	}
};

} // namespace

AggregatorConfig aggregator_config(uint8_t bits)
{
	AggregatorConfig cfg;
	cfg.redact = bits & kAggRedact;
	cfg.format = (bits & kAggText) ? OutputFormat::text : OutputFormat::json;
	if (bits & kAggFewConnections)
		cfg.max_connections = 4;
	if (bits & kAggEmit)
		cfg.emit_interval_s = 1;
	if (bits & kAggIdle)
		cfg.idle_timeout_s = 1;
	if (bits & kAggNoReorder)
		cfg.reorder_window_us = 0;
	if (bits & kAggNoLinger)
		cfg.close_linger_ms = 0;
	if (bits & kAggNonPooled)
		cfg.non_pooled_min_connections = 1;
	cfg.ifname = [](uint32_t ifindex) { return ifindex == 1 ? std::string("lo") : std::string(); };
	return cfg;
}

Pipeline::Pipeline(AggregatorConfig cfg) : sink_(std::make_unique<RenderSink>()), redact_(cfg.redact)
{
	agg_ = std::make_unique<Aggregator>(std::move(cfg), *sink_);
}

Pipeline::~Pipeline() = default;

void Pipeline::on_event(const tdsbpf_event& ev, std::size_t len)
{
	agg_->on_event(ev, len);
	// the --events view, as tdsbpf prints it
	std::string line =
		event_to_json(ev, len, true, redact_).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
	if (line.empty() || line.front() != '{')
		fail("an event is not a JSON object", line);
}

void Pipeline::finish(uint64_t now_ns)
{
	agg_->finish(now_ns);
	Summary s = agg_->summary();
	if (s.connections_open != 0)
		fail("connections still open after finish", format_summary(s, OutputFormat::json));
	for (OutputFormat f : {OutputFormat::json, OutputFormat::text}) {
		std::string text = format_summary(s, f);
		if (text.empty())
			fail("an empty summary", "");
	}
	std::string j = format_summary(s, OutputFormat::json);
	if (nlohmann::json::parse(j, nullptr, false).is_discarded())
		fail("the summary is not JSON", j);
}

} // namespace tdsbpf::fuzz
