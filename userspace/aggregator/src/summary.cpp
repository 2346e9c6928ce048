// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The exit (and SIGUSR1) summary.
#include <algorithm>
#include <vector>

#include <nlohmann/json.hpp>

#include "aggregator/aggregator.h"

namespace tdsbpf {

std::string format_summary(const Summary& s, OutputFormat format)
{
	if (format == OutputFormat::json) {
		nlohmann::json j;
		j["tdsbpf.record"] = "summary";
		j["events"] = s.events;
		j["events_submitted"] = s.events_submitted;
		j["events_malformed"] = s.events_malformed;
		j["events_late"] = s.events_late;
		j["connections"] = {{"seen", s.connections_seen},
				    {"ended", s.connections_ended},
				    {"open", s.connections_open},
				    {"evicted", s.connections_evicted}};
		j["snapshots"] = s.snapshots;
		j["dropped"] = {{"kernel", s.kernel_drops}, {"user", s.user_drops}};
		j["by_login_outcome"] = s.by_login_outcome;
		j["by_close_kind"] = s.by_close_kind;
		j["diagnoses"] = s.by_diagnosis;
		if (s.output)
			j["output"] = {{"to", s.output->to},
				       {"records_dropped", s.output->dropped},
				       {"reconnects", s.output->reconnects}};
		if (s.events_output)
			j["events_output"] = {{"to", s.events_output->to},
					      {"events_dropped", s.events_output->dropped},
					      {"reconnects", s.events_output->reconnects}};
		return j.dump() + "\n";
	}
	std::string out = "== tdsbpf summary\n";
	out += "   connections: " + std::to_string(s.connections_seen) + " seen, " +
	       std::to_string(s.connections_ended) + " ended, " + std::to_string(s.connections_open) + " open, " +
	       std::to_string(s.connections_evicted) + " evicted\n";
	auto list = [&](const char* title, const std::map<std::string, uint64_t>& m) {
		std::vector<std::pair<std::string, uint64_t>> v(m.begin(), m.end());
		std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
		out += std::string("   ") + title + ":";
		if (v.empty())
			out += " none";
		size_t shown = 0;
		for (const auto& [k, n] : v) {
			if (shown++ == 10)
				break;
			out += " " + k + "=" + std::to_string(n);
		}
		out += "\n";
	};
	list("login outcome", s.by_login_outcome);
	list("close kind", s.by_close_kind);
	list("top diagnoses", s.by_diagnosis);
	out += "   events: " + std::to_string(s.events_submitted) + " made, " + std::to_string(s.events) + " taken, " +
	       std::to_string(s.events_malformed) + " malformed, " + std::to_string(s.events_late) +
	       " late; dropped by the kernel " + std::to_string(s.kernel_drops) + ", by user space " +
	       std::to_string(s.user_drops) + "\n";
	auto output = [&](const char* title, const std::optional<OutputSummary>& o, const char* what) {
		if (o)
			out += std::string("   ") + title + ": " + o->to + ", " + std::to_string(o->dropped) + " " +
			       what + " dropped, " + std::to_string(o->reconnects) + " reconnects\n";
	};
	output("output", s.output, "records");
	output("events output", s.events_output, "events");
	return out;
}

void print_summary(std::FILE* out, const Summary& s, OutputFormat format)
{
	std::string text = format_summary(s, format);
	fwrite(text.data(), 1, text.size(), out);
	fflush(out);
}

} // namespace tdsbpf
