// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The exit (and SIGUSR1) summary.
#include <algorithm>
#include <cstdio>
#include <vector>

#include <nlohmann/json.hpp>

#include "aggregator/aggregator.h"

namespace tdsbpf {

namespace {

nlohmann::json endpoint_json(const EndpointSummary& e, bool server)
{
	nlohmann::json j;
	j[server ? "server" : "client.address"] = e.endpoint;
	j["connections"] = e.connections;
	j["login_outcome"] = e.login_outcome;
	j["auth_method"] = e.auth_method;
	j["encryption"] = e.encryption;
	j["tls_version"] = e.tls_version;
	j["mars"] = e.mars;
	j["redirects"] = e.redirects;
	j["resets"] = e.resets;
	j["retransmissions"] = e.retransmissions;
	if (e.logins_timed)
		j["login_ms"] = {{"count", e.logins_timed}, {"p50", e.login_p50_ms}, {"p99", e.login_p99_ms}};
	else
		j["login_ms"] = nullptr;
	j["diagnoses"] = e.diagnoses;
	return j;
}

// "a=3 b=1", most first, at most n
std::string top(const NameCounts& m, size_t n)
{
	std::vector<std::pair<std::string, uint64_t>> v(m.begin(), m.end());
	std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
	std::string out;
	for (size_t i = 0; i < v.size() && i < n; i++)
		out += (out.empty() ? "" : " ") + v[i].first + "=" + std::to_string(v[i].second);
	return out.empty() ? "-" : out;
}

void endpoint_table(std::string& out, const char* title, const std::vector<EndpointSummary>& v)
{
	if (v.empty())
		return;
	char line[256];
	out += std::string("   ") + title + "\n";
	std::snprintf(line, sizeof(line), "     %-40s %7s %9s %9s %7s %6s  %s\n", "", "conns", "login p50", "login p99",
		      "resets", "retr", "logins, encryption, top diagnoses");
	out += line;
	for (const auto& e : v) {
		char p50[16] = "-", p99[16] = "-";
		if (e.logins_timed) {
			std::snprintf(p50, sizeof(p50), "%.1f ms", e.login_p50_ms);
			std::snprintf(p99, sizeof(p99), "%.1f ms", e.login_p99_ms);
		}
		std::snprintf(line, sizeof(line), "     %-40s %7llu %9s %9s %7llu %6llu  ", e.endpoint.c_str(),
			      static_cast<unsigned long long>(e.connections), p50, p99,
			      static_cast<unsigned long long>(e.resets),
			      static_cast<unsigned long long>(e.retransmissions));
		out += line;
		out += top(e.login_outcome, 3) + "; " + top(e.encryption, 2) + "; " + top(e.diagnoses, 3) + "\n";
	}
}

} // namespace

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
		j["servers"] = nlohmann::json::array();
		for (const auto& e : s.servers)
			j["servers"].push_back(endpoint_json(e, true));
		j["clients"] = nlohmann::json::array();
		for (const auto& e : s.clients)
			j["clients"].push_back(endpoint_json(e, false));
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
	auto list = [&](const char* title, const NameCounts& m) {
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
	endpoint_table(out, "by server (connections that ended)", s.servers);
	endpoint_table(out, "by client, the 20 with the most connections", s.clients);
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
