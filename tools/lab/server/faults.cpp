// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "faults.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace tdslab {

const char* phase_name(Phase p)
{
	switch (p) {
	case Phase::prelogin: return "prelogin";
	case Phase::tls: return "tls";
	case Phase::login: return "login";
	case Phase::auth: return "auth";
	case Phase::query: return "query";
	}
	return "?";
}

namespace {

std::optional<Phase> parse_phase(std::string_view s)
{
	for (Phase p : {Phase::prelogin, Phase::tls, Phase::login, Phase::auth, Phase::query}) {
		if (s == phase_name(p))
			return p;
	}
	return std::nullopt;
}

std::optional<std::uint64_t> parse_number(std::string_view s)
{
	std::uint64_t n = 0;
	auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
	if (ec != std::errc() || end != s.data() + s.size() || s.empty())
		return std::nullopt;
	return n;
}

std::optional<FaultPlan> parse_one(std::string_view name, std::string* error)
{
	auto bad = [&](const std::string& why) -> std::optional<FaultPlan> {
		if (error)
			*error = "fault '" + std::string(name) + "': " + why;
		return std::nullopt;
	};
	FaultPlan plan;
	if (name == "fail_login") {
		plan.fail_login = true;
		return plan;
	}
	auto rest_after = [&](std::string_view prefix) -> std::optional<std::string_view> {
		if (name.substr(0, prefix.size()) == prefix)
			return name.substr(prefix.size());
		return std::nullopt;
	};
	if (auto rest = rest_after("slow_")) {
		auto us = rest->rfind('_');
		if (us == std::string_view::npos)
			return bad("expected slow_<phase>_<ms>");
		auto phase = parse_phase(rest->substr(0, us));
		auto ms = parse_number(rest->substr(us + 1));
		if (!phase)
			return bad("unknown phase (prelogin, tls, login, auth, query)");
		if (!ms || *ms > 3600000)
			return bad("expected a delay in milliseconds (at most 3600000)");
		plan.delays[*phase] = std::chrono::milliseconds(*ms);
		return plan;
	}
	if (auto rest = rest_after("rst_")) {
		auto phase = parse_phase(*rest);
		if (!phase)
			return bad("unknown phase (prelogin, tls, login, auth, query)");
		plan.rst_at = phase;
		return plan;
	}
	if (auto rest = rest_after("fin_")) {
		auto phase = parse_phase(*rest);
		if (!phase)
			return bad("unknown phase (prelogin, tls, login, auth, query)");
		plan.fin_at = phase;
		return plan;
	}
	if (auto rest = rest_after("redirect_")) {
		auto us = rest->rfind('_');
		if (us == std::string_view::npos || us == 0)
			return bad("expected redirect_<host>_<port>");
		auto port = parse_number(rest->substr(us + 1));
		if (!port || *port == 0 || *port > 65535)
			return bad("port must be 1..65535");
		plan.redirect = std::make_pair(std::string(rest->substr(0, us)), static_cast<std::uint16_t>(*port));
		return plan;
	}
	if (auto rest = rest_after("idle_")) {
		auto secs = parse_number(*rest);
		if (!secs || *secs > 86400)
			return bad("expected idle_<seconds> (at most 86400)");
		plan.idle_close = std::chrono::seconds(*secs);
		return plan;
	}
	return bad("not a fault name");
}

} // namespace

bool FaultPlan::empty() const
{
	return !fail_login && delays.empty() && !rst_at && !fin_at && !redirect && !idle_close;
}

void FaultPlan::merge(const FaultPlan& o)
{
	fail_login = fail_login || o.fail_login;
	for (const auto& [p, d] : o.delays)
		delays[p] = d;
	if (o.rst_at)
		rst_at = o.rst_at;
	if (o.fin_at)
		fin_at = o.fin_at;
	if (o.redirect)
		redirect = o.redirect;
	if (o.idle_close)
		idle_close = o.idle_close;
}

std::string FaultPlan::describe() const
{
	std::string s;
	auto add = [&](const std::string& part) { s += (s.empty() ? "" : "+") + part; };
	if (fail_login)
		add("fail_login");
	for (const auto& [p, d] : delays)
		add(std::string("slow_") + phase_name(p) + "_" + std::to_string(d.count()));
	if (rst_at)
		add(std::string("rst_") + phase_name(*rst_at));
	if (fin_at)
		add(std::string("fin_") + phase_name(*fin_at));
	if (redirect)
		add("redirect_" + redirect->first + "_" + std::to_string(redirect->second));
	if (idle_close)
		add("idle_" + std::to_string(idle_close->count()));
	return s.empty() ? "none" : s;
}

std::optional<FaultPlan> parse_faults(std::string_view names, std::string* error)
{
	FaultPlan plan;
	std::size_t start = 0;
	while (start <= names.size()) {
		auto plus = names.find('+', start);
		std::string_view part =
			names.substr(start, plus == std::string_view::npos ? std::string_view::npos : plus - start);
		auto one = parse_one(part, error);
		if (!one)
			return std::nullopt;
		plan.merge(*one);
		if (plus == std::string_view::npos)
			break;
		start = plus + 1;
	}
	return plan;
}

FaultPlan faults_from_login_name(std::string_view login_name)
{
	auto slash = login_name.find_last_of("\\");
	if (slash != std::string_view::npos)
		login_name = login_name.substr(slash + 1);
	std::string lower(login_name);
	std::transform(lower.begin(), lower.end(), lower.begin(),
		       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
	auto plan = parse_faults(lower);
	return plan ? *plan : FaultPlan{};
}

} // namespace tdslab
