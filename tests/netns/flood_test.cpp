// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// A SYN flood (spoofed sources, never answered) at the lab's wire speed,
// with tdsbpf reading and with its reader stalled and a small ring buffer:
// memory stays bounded in user space (--max-connections) and the kernel
// (the flow table and ring buffer are fixed-size maps); every SYN is
// accounted for, taken or counted as dropped; and afterwards a real login
// is traced whole again.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/if_ether.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lab/netns_lab.h"
#include "lab/packets.h"
#include "lab_server.h"
#include "outputs.h"
#include "require.h"

using nlohmann::json;
using namespace tdsbpf::test;

namespace {

uint64_t status_kib(pid_t pid, const std::string& field)
{
	std::ifstream in("/proc/" + std::to_string(pid) + "/status");
	std::string line;
	while (std::getline(in, line))
		if (line.rfind(field + ":", 0) == 0)
			return std::stoull(line.substr(field.size() + 1));
	return 0;
}

// Kernel memory of the BPF maps a process holds (the memlock each map
// charges, from /proc/PID/fdinfo), in KiB.
uint64_t bpf_map_kib(pid_t pid)
{
	uint64_t bytes = 0;
	std::string dir = "/proc/" + std::to_string(pid) + "/fdinfo";
	for (const auto& e : std::filesystem::directory_iterator(dir)) {
		std::ifstream in(e.path());
		std::string line;
		bool map = false;
		uint64_t memlock = 0;
		while (std::getline(in, line)) {
			map |= line.rfind("map_type:", 0) == 0;
			if (line.rfind("memlock:", 0) == 0)
				memlock = std::stoull(line.substr(8));
		}
		if (map)
			bytes += memlock;
	}
	return bytes / 1024;
}

// n SYNs from n different (address, port) pairs in 10.64.0.0/10 to the
// server's port 1433, sent on the client's end of the veth pair.
bool syn_flood(const tdsbpf::lab::NetnsLab& lab, uint32_t n)
{
	int fd = -1;
	{
		tdsbpf::lab::NetnsGuard in(lab.client_ns());
		fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
		if (fd < 0)
			return false;
		sockaddr_ll to{};
		to.sll_family = AF_PACKET;
		to.sll_ifindex = static_cast<int>(if_nametoindex(lab.client_if().c_str()));
		to.sll_halen = 6;
		if (bind(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
			close(fd);
			return false;
		}
	}
	tdsbpf::lab::Conn c;
	c.pad = true;
	if (inet_pton(AF_INET, lab.server_ip().c_str(), c.saddr.data()) != 1)
		return false;
	tdsbpf::lab::Bytes f = c.next(true, tdsbpf::lab::SYN);
	const std::size_t src = 14 + 12, sport = 14 + 20;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t host = 0x0a400000u | (i >> 14); // 10.64.x.y, 16384 ports each
		f[src] = static_cast<uint8_t>(host >> 24);
		f[src + 1] = static_cast<uint8_t>(host >> 16);
		f[src + 2] = static_cast<uint8_t>(host >> 8);
		f[src + 3] = static_cast<uint8_t>(host);
		uint16_t port = static_cast<uint16_t>(20000 + (i & 16383));
		f[sport] = static_cast<uint8_t>(port >> 8);
		f[sport + 1] = static_cast<uint8_t>(port);
		while (send(fd, f.data(), f.size(), 0) < 0) {
			if (errno != ENOBUFS && errno != EAGAIN) {
				close(fd);
				return false;
			}
			std::this_thread::sleep_for(std::chrono::microseconds(50));
		}
	}
	close(fd);
	return true;
}

class FloodTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		TDSBPF_REQUIRE(geteuid() == 0, "needs root (network namespaces, BPF)");
		TDSBPF_REQUIRE(std::system("command -v tsql >/dev/null 2>&1") == 0,
			       "FreeTDS tsql not installed (Debian package freetds-bin)");
		lab_ = std::make_unique<tdsbpf::lab::NetnsLab>();
		TDSBPF_REQUIRE(lab_->ok(), "cannot build the test network: " + lab_->error());
		server_ = labtest::start_lab_server(*lab_, dir_);
		ASSERT_GT(server_, 0) << "lab server did not start";
		std::ofstream(dir_.file("freetds.conf"))
			<< "[lab]\n\thost = " << lab_->server_ip() << "\n\tport = 1433\n\ttds version = 7.4\n";
	}

	void TearDown() override
	{
		if (server_)
			lab_->stop(server_, SIGTERM);
	}

	void tsql_login()
	{
		std::string conf = dir_.file("freetds.conf");
		auto r = labtest::run_command(
			{"ip", "netns", "exec", lab_->client_ns(), "tsql", "-S", "lab", "-U", "sa", "-P", "lab"},
			{{"FREETDSCONF", conf}, {"FREETDS", conf}}, "SELECT 1\ngo\nexit\n", std::chrono::seconds(30));
		ASSERT_EQ(r.exit_code, 0) << r.output;
	}

	// The flood with tdsbpf tracing (stalled or not), then a real login.
	// Returns the tracer's records and fills its summary and peak memory.
	std::vector<json> run(const std::vector<std::string>& options, bool stall, uint32_t syns, json& summary,
			      uint64_t& peak_kib)
	{
		return run_with(
			options, stall, [&] { EXPECT_TRUE(syn_flood(*lab_, syns)); }, summary, peak_kib);
	}

	template <typename Load>
	std::vector<json> run_with(const std::vector<std::string>& options, bool stall, Load load, json& summary,
				   uint64_t& peak_kib)
	{
		std::string tag = std::to_string(runs_++);
		std::vector<std::string> argv = {TDSBPF_BIN, "--iface", lab_->server_if(), "--ready-file",
						 dir_.file("ready" + tag)};
		argv.insert(argv.end(), options.begin(), options.end());
		pid_t tracer = lab_->spawn(lab_->server_ns(), argv, dir_.file("out" + tag), dir_.file("err" + tag));
		EXPECT_TRUE(tdsbpf::lab::wait_for_file(dir_.file("ready" + tag), std::chrono::milliseconds(60000)))
			<< labtest::slurp(dir_.file("err" + tag));
		if (stall)
			kill(tracer, SIGSTOP);
		load();
		kernel_map_kib_ = bpf_map_kib(tracer);
		if (stall)
			kill(tracer, SIGCONT);
		// the reader catches up, then a real client comes
		std::this_thread::sleep_for(std::chrono::milliseconds(1500));
		tsql_login();
		std::this_thread::sleep_for(std::chrono::milliseconds(1500));
		peak_kib = status_kib(tracer, "VmHWM");
		EXPECT_EQ(lab_->stop(tracer, SIGINT), 0) << labtest::slurp(dir_.file("err" + tag));
		std::string log = labtest::slurp(dir_.file("err" + tag));
		summary = labtest::summary_in(log);
		EXPECT_TRUE(summary.is_object()) << log;
		return labtest::read_connection_records(dir_.file("out" + tag));
	}

	// The record of the login after the load: the last connection the
	// client's address opened.
	const json* latest_login(const std::vector<json>& records) const
	{
		const json* last = nullptr;
		for (const auto& r : records)
			if (r["client.address"] == lab_->client_ip() &&
			    (!last || r["start_time"].get<std::string>() > (*last)["start_time"].get<std::string>()))
				last = &r;
		return last;
	}

	// The real client's record: whole, nothing lost. Returns its events.
	uint64_t expect_whole_login(const std::vector<json>& records)
	{
		const json* real = latest_login(records);
		EXPECT_NE(real, nullptr);
		if (!real)
			return 0;
		EXPECT_EQ((*real)["login"]["outcome"], "success") << real->dump();
		EXPECT_EQ((*real)["close"]["kind"], "four_way") << real->dump();
		EXPECT_EQ((*real)["tracer"]["events_lost"], 0) << real->dump();
		EXPECT_EQ((*real)["tracer"]["more_may_be_lost"], false) << real->dump();
		return (*real)["tracer"]["events"];
	}

	// The load client from the client's namespace: one request per
	// connection, 16 at once, as fast as the lab goes, for `seconds` or
	// `count` connections. Returns the connections it made (logins that
	// succeeded and failed).
	uint64_t churn(double seconds, uint64_t count)
	{
		std::vector<std::string> argv = {"ip",
						 "netns",
						 "exec",
						 lab_->client_ns(),
						 TDSBPF_LOADCLIENT_PATH,
						 "--host",
						 lab_->server_ip(),
						 "--connections",
						 "16",
						 "--requests-per-connection",
						 "1",
						 "--json"};
		if (count) {
			argv.push_back("--count");
			argv.push_back(std::to_string(count));
		} else {
			argv.push_back("--duration");
			argv.push_back(std::to_string(seconds));
		}
		auto r = labtest::run_command(argv, {}, "", std::chrono::seconds(180));
		EXPECT_EQ(r.exit_code, 0) << r.output;
		auto report =
			json::parse(r.output.substr(std::min(r.output.find('{'), r.output.size())), nullptr, false);
		EXPECT_TRUE(report.is_object()) << r.output;
		if (!report.is_object())
			return 0;
		return report["connections_ok"].get<uint64_t>() + report["connections_failed"].get<uint64_t>();
	}

	labtest::TempDir dir_;
	std::unique_ptr<tdsbpf::lab::NetnsLab> lab_;
	pid_t server_ = 0;
	uint64_t kernel_map_kib_ = 0; // BPF map memory of the last run's tracer
	int runs_ = 0;		      // tracers started, naming their files
};

constexpr uint32_t kSyns = 120000;

TEST_F(FloodTest, SynFloodWithTheReaderKeepingUp)
{
	json s;
	uint64_t peak = 0;
	auto records = run({"--max-connections", "20000"}, false, kSyns, s, peak);
	// recovered: the login after the flood is whole
	uint64_t login_events = expect_whole_login(records);
	// every SYN reached user space or was counted as dropped, exactly; the
	// real login adds its own events
	uint64_t taken = s["events"], dropped = s["dropped"]["kernel"];
	EXPECT_EQ(taken + dropped, kSyns + login_events) << s.dump();
	EXPECT_EQ(s["events_submitted"], taken) << s.dump();
	// at most --max-connections tracked: the rest evicted and counted
	EXPECT_EQ(s["connections"]["seen"], s["connections"]["ended"]) << s.dump();
	EXPECT_GE(s["connections"]["evicted"].get<uint64_t>() + dropped, kSyns - 20000) << s.dump();
	EXPECT_LT(peak, 96u * 1024) << "peak resident memory " << peak << " KiB";
}

TEST_F(FloodTest, SynFloodWithTheReaderStalled)
{
	json s;
	uint64_t peak = 0;
	auto records = run({"--max-connections", "20000", "--ringbuf-mb", "1"}, true, kSyns, s, peak);
	// recovered: the login after the flood is whole
	uint64_t login_events = expect_whole_login(records);
	uint64_t taken = s["events"], dropped = s["dropped"]["kernel"];
	EXPECT_GT(dropped, 0u) << s.dump();
	EXPECT_EQ(taken + dropped, kSyns + login_events) << s.dump();
	EXPECT_EQ(s["events_submitted"], taken) << s.dump();
	EXPECT_LT(peak, 96u * 1024) << "peak resident memory " << peak << " KiB";
	// what was taken of the flood is said to be incomplete, not unanswered
	// as a fact
	for (const auto& r : records) {
		if (r["client.address"] != lab_->client_ip()) {
			EXPECT_EQ(r["tracer"]["more_may_be_lost"], true) << r.dump();
		}
	}
}

// Short connections (a login, one request, a close) at the lab's highest
// rate: with the reader keeping up every connection has its record and no
// event is lost; with it stalled behind a small ring buffer, every event is
// taken or counted as dropped, exactly; memory stays bounded in both; and a
// login afterwards is traced whole.
TEST_F(FloodTest, ConnectionChurnIsAccountedForExactly)
{
	json s;
	// keeping up
	uint64_t peak = 0, made = 0;
	auto records = run_with(
		{}, false, [&] { made = churn(4, 0); }, s, peak);
	uint64_t login_events = expect_whole_login(records);
	ASSERT_GE(made, 500u);
	EXPECT_EQ(s["dropped"]["kernel"], 0) << s.dump();
	EXPECT_EQ(s["connections"]["evicted"], 0) << s.dump();
	// one record for each connection made (and the login after), each whole;
	// every event taken is in a record
	EXPECT_EQ(records.size(), made + 1) << s.dump();
	std::map<uint64_t, uint64_t> per_connection; // events -> connections
	uint64_t in_records = 0;
	const json* login = latest_login(records);
	for (const auto& r : records) {
		uint64_t n = r["tracer"]["events"];
		in_records += n;
		EXPECT_EQ(r["tracer"]["events_lost"], 0) << r.dump();
		EXPECT_EQ(r["tracer"]["more_may_be_lost"], false) << r.dump();
		EXPECT_EQ(r["midstream"], false) << r.dump();
		if (&r != login)
			per_connection[n]++;
	}
	EXPECT_EQ(in_records, s["events"].get<uint64_t>()) << s.dump();
	EXPECT_EQ(s["events_submitted"], s["events"]) << s.dump();
	EXPECT_LT(peak, 96u * 1024) << "peak resident memory " << peak << " KiB";
	EXPECT_LT(kernel_map_kib_, 96u * 1024) << "BPF maps " << kernel_map_kib_ << " KiB";
	// the load client's connections differ a little (how their closes
	// interleave), within these bounds
	uint64_t least = per_connection.begin()->first, most = per_connection.rbegin()->first;
	EXPECT_GE(least + 3, most);

	// stalled, 1 MiB of ring buffer
	made = 0;
	records = run_with(
		{"--ringbuf-mb", "1"}, true, [&] { made = churn(0, 3000); }, s, peak);
	login_events = expect_whole_login(records);
	ASSERT_GE(made, 3000u);
	uint64_t taken = s["events"], dropped = s["dropped"]["kernel"];
	EXPECT_GT(dropped, 0u) << s.dump();
	EXPECT_EQ(s["dropped"]["user"], 0) << s.dump();
	// every event the kernel made was taken or counted as dropped: what it
	// put in the ring buffer all reached user space, and the total fits the
	// connections made
	EXPECT_EQ(s["events_submitted"], taken) << s.dump();
	EXPECT_GE(taken + dropped, made * least + login_events) << s.dump();
	EXPECT_LE(taken + dropped, made * most + login_events) << s.dump();
	in_records = 0;
	for (const auto& r : records)
		in_records += r["tracer"]["events"].get<uint64_t>();
	EXPECT_EQ(in_records, taken) << s.dump();
	EXPECT_LE(records.size(), made + 1);
	EXPECT_LT(peak, 96u * 1024) << "peak resident memory " << peak << " KiB";
	EXPECT_LT(kernel_map_kib_, 96u * 1024) << "BPF maps " << kernel_map_kib_ << " KiB";
}

} // namespace
