// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// tdsbpf live with its records sent elsewhere (--output, --events-output),
// to real peers started by the test in the lab's server namespace:
// Debian's rsyslog (RFC 5424 over TCP with octet counting, and over UDP),
// socat reading NDJSON from TCP and from a Unix socket, and a file that is
// moved away and reopened on SIGHUP. The peer is late, killed mid-run and
// started again, or away while the buffer fills: the tracer connects again,
// never stops taking events, and counts what it had to drop, exactly.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lab/netns_lab.h"
#include "lab_server.h"
#include "outputs.h"
#include "require.h"

using labtest::wait_until;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

bool have(const std::string& program)
{
	return std::system(("command -v " + program + " >/dev/null 2>&1").c_str()) == 0;
}

std::vector<std::string> lines_of(const std::string& path)
{
	std::vector<std::string> out;
	std::ifstream in(path);
	for (std::string line; std::getline(in, line);)
		if (!line.empty())
			out.push_back(line);
	return out;
}

// A message as rsyslog parsed it: the fields of its RFC 5424 header and MSG.
struct SyslogMessage {
	std::string version, facility, severity, hostname, app, procid, msgid, sd, msg;
};

constexpr int kSyslogPort = 5514;

// rsyslogd in the server's namespace, with a configuration of its own:
// imtcp and imudp on 127.0.0.1, every message written to one file as the
// fields rsyslog parsed (so a message it did not take as RFC 5424 shows),
// records up to 64 KiB (rsyslog's default limit is 8 KiB), its own pid file
// and work directory, nothing from the system.
class Rsyslog {
public:
	Rsyslog(tdsbpf::lab::NetnsLab& lab, const tdsbpf::lab::TempDir& dir) : lab_(lab), dir_(dir)
	{
		std::filesystem::create_directories(dir.file("rsyslog-work"));
		std::ofstream(dir.file("rsyslog.conf"))
			<< "global(workDirectory=\"" << dir.file("rsyslog-work") << "\" maxMessageSize=\"64k\")\n"
			<< "module(load=\"imtcp\")\nmodule(load=\"imudp\")\n"
			<< "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"" << kSyslogPort << "\")\n"
			<< "input(type=\"imudp\" address=\"127.0.0.1\" port=\"" << kSyslogPort << "\")\n"
			<< "template(name=\"fields\" type=\"string\" string=\"%protocol-version%|%syslogfacility-text%|"
			   "%syslogseverity-text%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\\n\")\n"
			<< "action(type=\"omfile\" file=\"" << dir.file("syslog.log") << "\" template=\"fields\")\n";
	}

	// Starts it; false if it does not listen within 10 s.
	bool start()
	{
		std::filesystem::remove(dir_.file("rsyslog.pid"));
		pid_ = lab_.spawn(lab_.server_ns(),
				  {"rsyslogd", "-n", "-f", dir_.file("rsyslog.conf"), "-i", dir_.file("rsyslog.pid")},
				  dir_.file("rsyslog.out"), {}, true);
		return wait_until(
			[&] {
				return !lab_.sh(lab_.server_ns(), "ss -Hltn sport = :" + std::to_string(kSyslogPort))
						.empty() &&
				       !lab_.sh(lab_.server_ns(), "ss -Hlun sport = :" + std::to_string(kSyslogPort))
						.empty();
			},
			10s);
	}

	// kill -9: what it holds in memory is lost (the test waits for the file
	// first), and the tracer's connection is closed by the kernel.
	void kill9()
	{
		lab_.stop(pid_, SIGKILL);
		pid_ = 0;
	}

	void stop()
	{
		if (pid_ > 0)
			lab_.stop(pid_, SIGTERM);
		pid_ = 0;
	}

	std::string log() const { return labtest::slurp(dir_.file("rsyslog.out")); }

	// The messages tdsbpf sent (APP-NAME tdsbpf), every one so far.
	std::vector<SyslogMessage> messages() const
	{
		std::vector<SyslogMessage> out;
		for (const auto& line : lines_of(dir_.file("syslog.log"))) {
			std::vector<std::string> f;
			std::size_t at = 0;
			for (int i = 0; i < 8; i++) {
				auto bar = line.find('|', at);
				if (bar == std::string::npos)
					break;
				f.push_back(line.substr(at, bar - at));
				at = bar + 1;
			}
			if (f.size() != 8 || f[4] != "tdsbpf")
				continue;
			out.push_back({f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], line.substr(at)});
		}
		return out;
	}

	std::size_t count(const std::string& msgid) const
	{
		std::size_t n = 0;
		for (const auto& m : messages())
			n += m.msgid == msgid;
		return n;
	}

private:
	tdsbpf::lab::NetnsLab& lab_;
	const tdsbpf::lab::TempDir& dir_;
	pid_t pid_ = 0;
};

class OutputsTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		TDSBPF_REQUIRE(geteuid() == 0, "needs root (network namespaces, BPF)");
		lab_ = std::make_unique<tdsbpf::lab::NetnsLab>();
		TDSBPF_REQUIRE(lab_->ok(), "cannot build the test network: " + lab_->error());
		server_ = labtest::start_lab_server(*lab_, dir_);
		ASSERT_GT(server_, 0) << "lab server did not start: " << labtest::slurp(dir_.file("server.log"));
	}

	// tdsbpf on the server side's interface, records (standard output) to
	// tracer.out, its log to tracer.log; false if it did not get ready.
	bool start_tracer(const std::vector<std::string>& extra)
	{
		std::vector<std::string> argv = {TDSBPF_BIN, "--iface", lab_->server_if(), "--ready-file",
						 dir_.file("tracer.ready")};
		argv.insert(argv.end(), extra.begin(), extra.end());
		tracer_ = lab_->spawn(lab_->server_ns(), argv, dir_.file("tracer.out"), dir_.file("tracer.log"));
		return tdsbpf::lab::wait_for_file(dir_.file("tracer.ready"), 60000ms);
	}

	// SIGINT; its exit status.
	int stop_tracer()
	{
		int rc = lab_->stop(tracer_, SIGINT, 20000);
		tracer_ = 0;
		return rc;
	}

	std::string tracer_log() const { return labtest::slurp(dir_.file("tracer.log")); }
	json summary() const { return labtest::summary_in(tracer_log()); }

	// n connections from the client's namespace, one request each, through
	// the lab's load client, at_once at a time; returns how many it made
	// (with more than one at a time, a few more than n).
	uint64_t logins(uint64_t n, const std::string& user = "sa", unsigned at_once = 1)
	{
		auto r = labtest::run_command({"ip", "netns", "exec", lab_->client_ns(), TDSBPF_LOADCLIENT_PATH,
					       "--host", lab_->server_ip(), "--connections", std::to_string(at_once),
					       "--requests-per-connection", "1", "--count", std::to_string(n), "--user",
					       user, "--json"},
					      {}, "", 120s);
		auto report =
			json::parse(r.output.substr(std::min(r.output.find('{'), r.output.size())), nullptr, false);
		EXPECT_TRUE(report.is_object()) << r.output;
		if (!report.is_object())
			return 0;
		return report["connections_ok"].get<uint64_t>() + report["connections_failed"].get<uint64_t>();
	}

	// Connections the tracer has ended so far (a summary asked for with
	// SIGUSR1 and read from its log); -1 if none came within timeout.
	int64_t ended_now(std::chrono::milliseconds timeout = 3000ms)
	{
		std::size_t before = tracer_log().size();
		kill(tracer_, SIGUSR1);
		int64_t ended = -1;
		wait_until(
			[&] {
				std::string log = tracer_log();
				if (log.size() <= before)
					return false;
				json s = labtest::summary_in(log.substr(before));
				if (!s.is_object())
					return false;
				ended = s["connections"]["ended"];
				return true;
			},
			timeout);
		return ended;
	}

	labtest::TempDir dir_;
	std::unique_ptr<tdsbpf::lab::NetnsLab> lab_;
	pid_t server_ = 0;
	pid_t tracer_ = 0;
};

// The records as rsyslog took them: RFC 5424, APP-NAME tdsbpf, MSGID
// connection, facility local0, the severity of the worst diagnosis, our
// host name and pid, and MSG the record's JSON; the raw events over UDP,
// MSGID event, all of them.
TEST_F(OutputsTest, SyslogRecordsAndEventsReachRsyslog)
{
	TDSBPF_REQUIRE(have("rsyslogd"), "rsyslog not installed (Debian package rsyslog)");
	Rsyslog rsyslog(*lab_, dir_);
	ASSERT_TRUE(rsyslog.start()) << rsyslog.log();
	std::string to = "127.0.0.1:" + std::to_string(kSyslogPort);
	ASSERT_TRUE(start_tracer({"--output", "syslog:" + to, "--events-output", "syslog+udp:" + to})) << tracer_log();
	ASSERT_EQ(logins(2), 2u);
	ASSERT_EQ(logins(1, "fail_login"), 1u);
	EXPECT_TRUE(wait_until([&] { return rsyslog.count("connection") == 3; }, 20000ms)) << tracer_log();
	pid_t tracer = tracer_;
	ASSERT_EQ(stop_tracer(), 0) << tracer_log();
	json s = summary();
	ASSERT_TRUE(s.is_object()) << tracer_log();
	EXPECT_EQ(s["output"], json({{"to", "syslog:" + to}, {"records_dropped", 0}, {"reconnects", 0}})) << s.dump();
	EXPECT_EQ(s["events_output"]["events_dropped"], 0) << s.dump();
	// the last datagrams sent at exit
	uint64_t events = s["events"];
	EXPECT_TRUE(wait_until([&] { return rsyslog.count("event") == events; }, 5000ms))
		<< rsyslog.count("event") << " of " << events;
	rsyslog.stop();

	char host[256] = {};
	gethostname(host, sizeof(host) - 1);
	std::size_t failed = 0, connections = 0;
	for (const auto& m : rsyslog.messages()) {
		EXPECT_EQ(m.version, "1");
		EXPECT_EQ(m.facility, "local0");
		EXPECT_EQ(m.hostname, host);
		EXPECT_EQ(m.procid, std::to_string(tracer));
		EXPECT_EQ(m.sd, "-");
		json j = json::parse(m.msg, nullptr, false);
		ASSERT_TRUE(j.is_object()) << m.msg;
		if (m.msgid == "event") {
			EXPECT_TRUE(j.contains("event")) << m.msg;
			EXPECT_EQ(m.severity, "info");
			continue;
		}
		ASSERT_EQ(m.msgid, "connection");
		connections++;
		EXPECT_EQ(j["tdsbpf.record"], "connection");
		std::string worst = "info";
		for (const auto& d : j["diagnoses"]) {
			if (d["severity"] == "error")
				worst = "err";
			else if (d["severity"] == "warning" && worst != "err")
				worst = "warning";
		}
		EXPECT_EQ(m.severity, worst) << m.msg;
		if (j["login"]["outcome"] == "failed") {
			failed++;
			EXPECT_EQ(m.severity, "err");
		}
	}
	EXPECT_EQ(connections, 3u);
	EXPECT_EQ(failed, 1u);
	// nothing went to standard output
	EXPECT_TRUE(labtest::read_connection_records(dir_.file("tracer.out")).empty());
}

// rsyslog starts after tdsbpf: the records wait in the buffer, and go once
// it is there (the back-off finds it); nothing dropped.
TEST_F(OutputsTest, SyslogStartedLateGetsTheBufferedRecords)
{
	TDSBPF_REQUIRE(have("rsyslogd"), "rsyslog not installed (Debian package rsyslog)");
	Rsyslog rsyslog(*lab_, dir_);
	ASSERT_TRUE(start_tracer({"--output", "syslog:127.0.0.1:" + std::to_string(kSyslogPort)})) << tracer_log();
	ASSERT_EQ(logins(3), 3u);
	ASSERT_TRUE(wait_until([&] { return ended_now() == 3; }, 15000ms)) << tracer_log();
	EXPECT_NE(tracer_log().find("cannot connect: Connection refused"), std::string::npos) << tracer_log();
	ASSERT_TRUE(rsyslog.start()) << rsyslog.log();
	EXPECT_TRUE(wait_until([&] { return rsyslog.count("connection") == 3; }, 30000ms)) << tracer_log();
	ASSERT_EQ(stop_tracer(), 0) << tracer_log();
	json s = summary();
	EXPECT_EQ(s["output"]["records_dropped"], 0) << s.dump();
	EXPECT_EQ(s["output"]["reconnects"], 0) << s.dump();
	EXPECT_EQ(rsyslog.count("connection"), 3u);
}

// rsyslog is killed mid-run and started again: the tracer sees the
// connection go, goes on taking events (a SIGUSR1 summary comes at once),
// keeps the records of the outage and sends them once rsyslog is back.
TEST_F(OutputsTest, SyslogKilledAndRestartedLosesNothing)
{
	TDSBPF_REQUIRE(have("rsyslogd"), "rsyslog not installed (Debian package rsyslog)");
	Rsyslog rsyslog(*lab_, dir_);
	ASSERT_TRUE(rsyslog.start()) << rsyslog.log();
	ASSERT_TRUE(start_tracer({"--output", "syslog:127.0.0.1:" + std::to_string(kSyslogPort)})) << tracer_log();
	ASSERT_EQ(logins(2), 2u);
	ASSERT_TRUE(wait_until([&] { return rsyslog.count("connection") == 2; }, 20000ms)) << tracer_log();

	rsyslog.kill9();
	ASSERT_EQ(logins(3), 3u);
	// not held up: the connections of the outage are ended and counted
	EXPECT_TRUE(wait_until([&] { return ended_now(1000ms) == 5; }, 15000ms)) << tracer_log();
	EXPECT_TRUE(
		wait_until([&] { return tracer_log().find("the connection was lost") != std::string::npos; }, 5000ms))
		<< tracer_log();
	EXPECT_EQ(rsyslog.count("connection"), 2u);

	ASSERT_TRUE(rsyslog.start()) << rsyslog.log();
	EXPECT_TRUE(wait_until([&] { return rsyslog.count("connection") == 5; }, 30000ms)) << tracer_log();
	ASSERT_EQ(logins(1), 1u);
	EXPECT_TRUE(wait_until([&] { return rsyslog.count("connection") == 6; }, 20000ms)) << tracer_log();
	ASSERT_EQ(stop_tracer(), 0) << tracer_log();
	json s = summary();
	EXPECT_EQ(s["output"]["records_dropped"], 0) << s.dump();
	EXPECT_EQ(s["output"]["reconnects"], 1) << s.dump();
	EXPECT_NE(tracer_log().find("connected again"), std::string::npos) << tracer_log();
	// each connection once
	std::set<uint64_t> ids;
	for (const auto& m : rsyslog.messages())
		if (m.msgid == "connection")
			ids.insert(json::parse(m.msg)["tdsbpf.connection_id"].get<uint64_t>());
	EXPECT_EQ(ids.size(), 6u);
}

// NDJSON over TCP to socat (what Vector's socket source and Fluent Bit's
// tcp input read): every record, one per line; a SIGHUP with no file to
// reopen changes nothing.
TEST_F(OutputsTest, TcpNdjsonToSocat)
{
	TDSBPF_REQUIRE(have("socat"), "socat not installed (Debian package socat)");
	std::string got = dir_.file("tcp.ndjson");
	pid_t socat = lab_->spawn(lab_->server_ns(),
				  {"socat", "-u", "TCP-LISTEN:5170,bind=127.0.0.1,reuseaddr", "OPEN:" + got + ",creat"},
				  dir_.file("socat.log"));
	ASSERT_TRUE(
		wait_until([&] { return !lab_->sh(lab_->server_ns(), "ss -Hltn sport = :5170").empty(); }, 10000ms));
	ASSERT_TRUE(start_tracer({"--output", "tcp:127.0.0.1:5170"})) << tracer_log();
	ASSERT_EQ(logins(3), 3u);
	EXPECT_TRUE(wait_until([&] { return lines_of(got).size() == 3; }, 20000ms)) << tracer_log();
	kill(tracer_, SIGHUP);
	ASSERT_EQ(logins(1), 1u);
	EXPECT_TRUE(wait_until([&] { return lines_of(got).size() == 4; }, 20000ms)) << tracer_log();
	ASSERT_EQ(stop_tracer(), 0) << tracer_log();
	// socat ends with the connection
	EXPECT_EQ(lab_->stop(socat, SIGTERM, 5000) >= 0, true);
	auto records = labtest::read_connection_records(got);
	EXPECT_EQ(records.size(), 4u);
	EXPECT_EQ(lines_of(got).size(), 4u);
	for (const auto& r : records)
		EXPECT_EQ(r["login"]["outcome"], "success") << r.dump();
	json s = summary();
	EXPECT_EQ(s["output"], json({{"to", "tcp:127.0.0.1:5170"}, {"records_dropped", 0}, {"reconnects", 0}}))
		<< s.dump();
}

// NDJSON over a Unix stream socket to socat.
TEST_F(OutputsTest, UnixNdjsonToSocat)
{
	TDSBPF_REQUIRE(have("socat"), "socat not installed (Debian package socat)");
	std::string sock = dir_.file("records.sock"), got = dir_.file("unix.ndjson");
	pid_t socat = lab_->spawn(lab_->server_ns(), {"socat", "-u", "UNIX-LISTEN:" + sock, "OPEN:" + got + ",creat"},
				  dir_.file("socat.log"));
	ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(sock); }, 10000ms));
	ASSERT_TRUE(start_tracer({"--output", "unix:" + sock, "--events-output", "file:" + dir_.file("events.ndjson")}))
		<< tracer_log();
	ASSERT_EQ(logins(2), 2u);
	EXPECT_TRUE(wait_until([&] { return lines_of(got).size() == 2; }, 20000ms)) << tracer_log();
	ASSERT_EQ(stop_tracer(), 0) << tracer_log();
	lab_->stop(socat, SIGTERM, 5000);
	EXPECT_EQ(labtest::read_connection_records(got).size(), 2u);
	// the raw events beside them, in their file
	json s = summary();
	EXPECT_EQ(lines_of(dir_.file("events.ndjson")).size(), s["events"].get<std::size_t>()) << s.dump();
	EXPECT_EQ(s["output"]["records_dropped"], 0) << s.dump();
}

// The events' peer is away and the buffer (1 MiB) overflows: what does not
// fit is dropped and counted, exactly (what the peer got plus what was
// dropped is every event), while the records go on to their own output
// untouched; the peer comes, gets what was kept, and the tracer says so.
TEST_F(OutputsTest, OverflowWhilePeerAwayIsCountedExactly)
{
	TDSBPF_REQUIRE(have("socat"), "socat not installed (Debian package socat)");
	ASSERT_TRUE(start_tracer({"--events-output", "tcp:127.0.0.1:5171", "--output-buffer-mb", "1"})) << tracer_log();
	// 16 at once: a few more than asked for may be made
	uint64_t made = logins(300, "sa", 16);
	ASSERT_GE(made, 300u);
	EXPECT_TRUE(wait_until([&] { return tracer_log().find("events dropped: ") != std::string::npos; }, 15000ms))
		<< tracer_log();
	std::string got = dir_.file("events.ndjson");
	pid_t socat = lab_->spawn(lab_->server_ns(),
				  {"socat", "-u", "TCP-LISTEN:5171,bind=127.0.0.1,reuseaddr", "OPEN:" + got + ",creat"},
				  dir_.file("socat.log"));
	// the back-off is at most 10 s
	EXPECT_TRUE(wait_until([&] { return tracer_log().find(": connected") != std::string::npos; }, 20000ms))
		<< tracer_log();
	ASSERT_EQ(stop_tracer(), 0) << tracer_log();
	lab_->stop(socat, SIGTERM, 5000);
	json s = summary();
	ASSERT_TRUE(s.is_object()) << tracer_log();
	uint64_t events = s["events"], dropped = s["events_output"]["events_dropped"];
	std::size_t received = 0;
	for (const auto& line : lines_of(got)) {
		EXPECT_TRUE(json::accept(line)) << line;
		received++;
	}
	EXPECT_GT(dropped, 0u) << s.dump();
	EXPECT_GT(received, 0u);
	EXPECT_EQ(received + dropped, events) << s.dump();
	// roughly what 1 MiB holds
	EXPECT_LE(labtest::slurp(got).size(), std::size_t{1} << 20);
	// the records were not held up by the events' trouble
	EXPECT_EQ(labtest::read_connection_records(dir_.file("tracer.out")).size(), made);
	EXPECT_EQ(s["output"]["records_dropped"], 0) << s.dump();
}

// logrotate: the file is moved, SIGHUP, and the next records go to a new
// file of the same name while the moved one keeps the earlier ones; the
// run goes on.
TEST_F(OutputsTest, SighupReopensTheMovedFile)
{
	std::string file = dir_.file("records.ndjson"), moved = file + ".1";
	ASSERT_TRUE(start_tracer({"--output", "file:" + file})) << tracer_log();
	ASSERT_EQ(logins(2), 2u);
	ASSERT_TRUE(wait_until([&] { return labtest::read_connection_records(file).size() == 2; }, 20000ms))
		<< tracer_log();
	std::filesystem::rename(file, moved);
	kill(tracer_, SIGHUP);
	ASSERT_TRUE(wait_until([&] { return tracer_log().find("opened again (SIGHUP)") != std::string::npos; }, 5000ms))
		<< tracer_log();
	EXPECT_TRUE(std::filesystem::exists(file));
	ASSERT_EQ(logins(3), 3u);
	EXPECT_TRUE(wait_until([&] { return labtest::read_connection_records(file).size() == 3; }, 20000ms))
		<< tracer_log();
	ASSERT_EQ(stop_tracer(), 0) << tracer_log();
	auto before = labtest::read_connection_records(moved), after = labtest::read_connection_records(file);
	EXPECT_EQ(before.size(), 2u);
	EXPECT_EQ(after.size(), 3u);
	std::set<uint64_t> ids;
	for (const auto* v : {&before, &after})
		for (const auto& r : *v)
			ids.insert(r["tdsbpf.connection_id"].get<uint64_t>());
	EXPECT_EQ(ids.size(), 5u);
	// the summary still goes to the log, not to the file
	EXPECT_TRUE(summary().is_object()) << tracer_log();
}

} // namespace

// The summary on its own sink: at every --emit-interval while tdsbpf runs,
// and at exit, each with the servers and clients whose connections ended.
TEST_F(OutputsTest, SummaryEveryIntervalOnItsOwnSink)
{
	std::string file = dir_.file("summaries.ndjson"), records = dir_.file("records.ndjson");
	ASSERT_TRUE(start_tracer(
		{"--output", "file:" + records, "--summary-output", "file:" + file, "--emit-interval", "1"}))
		<< tracer_log();
	ASSERT_EQ(logins(3), 3u);
	auto summaries = [&] {
		std::vector<nlohmann::json> v;
		std::ifstream in(file);
		for (std::string line; std::getline(in, line);)
			if (!line.empty())
				v.push_back(nlohmann::json::parse(line));
		return v;
	};
	// the three connections ended (their records are out), then a periodic summary counts them
	ASSERT_TRUE(wait_until([&] { return labtest::read_connection_records(records).size() == 3; }, 20000ms))
		<< tracer_log();
	ASSERT_TRUE(wait_until(
		[&] {
			auto v = summaries();
			return !v.empty() && !v.back()["servers"].empty() &&
			       v.back()["servers"][0]["connections"].get<int>() == 3;
		},
		10000ms))
		<< tracer_log();
	size_t periodic = summaries().size();
	ASSERT_EQ(stop_tracer(), 0) << tracer_log();
	auto v = summaries();
	EXPECT_GT(v.size(), periodic) << "no summary at exit";
	const auto& last = v.back();
	EXPECT_EQ(last["tdsbpf.record"], "summary");
	ASSERT_EQ(last["servers"].size(), 1u) << last.dump();
	const auto& s = last["servers"][0];
	EXPECT_EQ(s["server"], lab_->server_ip() + ":1433");
	EXPECT_EQ(s["connections"], 3);
	EXPECT_EQ(s["login_outcome"]["success"], 3);
	EXPECT_EQ(s["login_ms"]["count"], 3);
	EXPECT_GT(s["login_ms"]["p99"].get<double>(), 0.0);
	ASSERT_EQ(last["clients"].size(), 1u);
	EXPECT_EQ(last["clients"][0]["client.address"], lab_->client_ip());
	EXPECT_EQ(last["clients"][0]["connections"], 3);
	// not in the log
	EXPECT_EQ(tracer_log().find("\"tdsbpf.record\":\"summary\""), std::string::npos) << tracer_log();
}
