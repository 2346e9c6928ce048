// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// `tdsbpf demo`: runs it, checks that its output shows every step's expected
// outcome, and that it left no namespace, link or BPF program behind.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e.h"
#include "lab_server.h"
#include "require.h"

using nlohmann::json;
using tdsbpf::e2e::have;

namespace {

std::set<std::string> tdsbpf_prog_ids()
{
	std::set<std::string> ids;
	auto r = labtest::run_command({"sh", "-c", "bpftool prog show | grep tdsbpf_ | cut -d: -f1"});
	std::istringstream in(r.output);
	std::string id;
	while (std::getline(in, id))
		if (!id.empty())
			ids.insert(id);
	return ids;
}

// Waits (up to 5 s) until the BPF programs loaded now are those of before.
void expect_no_program_left(const std::set<std::string>& before)
{
	std::set<std::string> after;
	for (int i = 0; i < 50; i++) {
		after = tdsbpf_prog_ids();
		bool extra = false;
		for (const auto& id : after)
			extra |= !before.count(id);
		if (!extra)
			break;
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
	}
	for (const auto& id : after)
		EXPECT_TRUE(before.count(id)) << "BPF program " << id << " left loaded";
}

TEST(Demo, TourShowsEveryOutcomeAndLeavesNothingBehind)
{
	TDSBPF_REQUIRE(geteuid() == 0, "needs root (network namespaces, BPF)");
	TDSBPF_REQUIRE(have("bpftool"), "bpftool not installed");
	auto before = tdsbpf_prog_ids();
	auto r = labtest::run_command({TDSBPF_BIN, "demo"}, {}, {}, std::chrono::seconds(120));
	ASSERT_FALSE(r.timed_out) << r.output;
	ASSERT_EQ(r.exit_code, 0) << r.output;
	EXPECT_LT(r.seconds, 60.0) << "the demo should take about a minute at most";
	const std::string& out = r.output;

	// the names it used
	std::smatch m;
	ASSERT_TRUE(
		std::regex_search(out, m,
				  std::regex("server namespace (tdsbpf-s[0-9]+) \\(([0-9.]+) on (tdsbpf-vs[0-9]+)\\), "
					     "client namespace (tdsbpf-c[0-9]+)")))
		<< out;
	std::string srv = m[1], vs = m[3], cli = m[4];

	// the live view: timelines and summaries
	EXPECT_NE(out.find("TDS:Prelogin"), std::string::npos);
	EXPECT_NE(out.find("TLS:HandShake: Client Hello"), std::string::npos);
	EXPECT_NE(out.find("SMP:SYN"), std::string::npos);
	EXPECT_NE(out.find("== connection"), std::string::npos);

	// the JSON records, one per step's connection
	std::vector<json> recs;
	std::istringstream in(out);
	std::string line;
	while (std::getline(in, line)) {
		auto j = json::parse(line, nullptr, false);
		if (j.is_object() && j.value("tdsbpf.record", "") == "connection")
			recs.push_back(j);
	}
	ASSERT_GE(recs.size(), 6u) << out;
	auto any = [&](auto pred) {
		for (const auto& c : recs)
			if (pred(c))
				return true;
		return false;
	};
	auto diag = [](const json& c, const std::string& code) {
		for (const auto& d : c["diagnoses"])
			if (d["code"] == code)
				return true;
		return false;
	};
	EXPECT_TRUE(any([](const json& c) {
		return c["login"]["outcome"] == "success" && c["negotiated"]["encryption"] == "login_only" &&
		       c["authentication"]["method"] == "sql" && c["close"]["kind"] == "four_way";
	})) << "plain login and query";
	EXPECT_TRUE(any([](const json& c) {
		return c["negotiated"]["encryption"] == "full" && c["work"]["encrypted_requests"].get<int>() >= 1;
	})) << "TLS login";
	EXPECT_TRUE(any([](const json& c) {
		return c["negotiated"]["mars_used"] == true && c["mars"]["sessions"].size() == 2;
	})) << "MARS";
	EXPECT_TRUE(any([&](const json& c) {
		return c["login"]["outcome"] == "failed" && c["login"]["error"].is_object() &&
		       c["login"]["error"]["number"] == 18456 && diag(c, "login_failed");
	})) << "failed login";
	EXPECT_TRUE(any([&](const json& c) {
		return c["close"]["kind"] == "server_fin_first" && diag(c, "server_closed_during_tls");
	})) << "server-first close during TLS";
	if (have("tsql")) {
		EXPECT_TRUE(any([&](const json& c) {
			return c["tcp"]["keepalives"]["server_to_client"].get<int>() >= 1 &&
			       diag(c, "idle_closed_after_keepalives");
		})) << "idle keep-alive close";
	}
	// the digest names the same outcomes
	for (const char* s : {"login_failed", "server_closed_during_tls", "mars sessions 2", "encryption full",
			      "encryption login_only", "login success (inferred), auth unknown, encryption full"})
		EXPECT_NE(out.find(s), std::string::npos) << s;

	// nothing left behind
	auto left = labtest::run_command({"sh", "-c",
					  "ip netns list | grep -E '^(" + srv + "|" + cli +
						  ")( |$)'; ip -o link show | grep -E '" + vs +
						  "'; ls -d /tmp/tdsbpf-demo-* 2>/dev/null"});
	EXPECT_EQ(left.output, "") << left.output;
	expect_no_program_left(before);
}

// Ctrl-C in the middle of the tour: it stops, cleans up, exits 130.
TEST(Demo, InterruptedTourCleansUp)
{
	TDSBPF_REQUIRE(geteuid() == 0, "needs root (network namespaces, BPF)");
	TDSBPF_REQUIRE(have("bpftool"), "bpftool not installed");
	auto before = tdsbpf_prog_ids();
	labtest::TempDir dir;
	std::string out_path = dir.file("demo.out");
	pid_t pid = fork();
	if (pid == 0) {
		int o = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(o, 1);
		dup2(o, 2);
		execl(TDSBPF_BIN, TDSBPF_BIN, "demo", static_cast<char*>(nullptr));
		_exit(127);
	}
	ASSERT_GT(pid, 0);
	auto slurp = [&] {
		std::ifstream in(out_path);
		return std::string(std::istreambuf_iterator<char>(in), {});
	};
	bool started = false;
	for (int i = 0; i < 600 && !started; i++) {
		started = slurp().find("== step 2/") != std::string::npos;
		if (!started)
			std::this_thread::sleep_for(std::chrono::milliseconds(100));
	}
	kill(pid, SIGINT);
	int status = 0;
	pid_t r = 0;
	for (int i = 0; i < 300 && r == 0; i++) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == 0)
			std::this_thread::sleep_for(std::chrono::milliseconds(100));
	}
	if (r == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		FAIL() << "tdsbpf demo did not stop within 30 s of SIGINT\n" << slurp();
	}
	std::string out = slurp();
	ASSERT_TRUE(started) << out;
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 130) << status << "\n" << out;
	EXPECT_NE(out.find("interrupted: cleaning up"), std::string::npos) << out;
	std::smatch m;
	ASSERT_TRUE(
		std::regex_search(out, m,
				  std::regex("server namespace (tdsbpf-s[0-9]+) \\(([0-9.]+) on (tdsbpf-vs[0-9]+)\\), "
					     "client namespace (tdsbpf-c[0-9]+)")))
		<< out;
	std::string srv = m[1], vs = m[3], cli = m[4];
	auto left = labtest::run_command(
		{"sh", "-c",
		 "ip netns list | grep -E '^(" + srv + "|" + cli + ")( |$)'; ip -o link show | grep -E '" + vs +
			 "'; pgrep -f '[t]dsbpf-labserver --listen " + std::string(m[2]) + "'"});
	EXPECT_EQ(left.output, "") << left.output;
	expect_no_program_left(before);
}

} // namespace
