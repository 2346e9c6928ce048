// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The lab server's SQL Browser (--browser): FreeTDS finds the instance's
// port through it, lists it, and fails without it; raw requests of every
// kind, checked with the tracer's own SSRP parser; and Wireshark on a
// capture of the exchange. Each test runs in a network namespace of its
// own (tests/support/private-netns), so UDP 1434 on its 127.0.0.1 is free.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "lab_server.h"
#include "ssrp.h"

namespace labtest {
namespace {

using Datagram = std::vector<std::uint8_t>;
using namespace std::chrono_literals;

bool have_program(const std::string& name)
{
	return run_command({"sh", "-c", "command -v " + name}, {}, {}, std::chrono::seconds(5)).exit_code == 0;
}

#define REQUIRE_TSQL()             \
	if (!have_program("tsql")) \
	LAB_DRIVER_MISSING("FreeTDS tsql not installed (Debian package freetds-bin)")

// One datagram to 127.0.0.1:port and the reply, if one comes within `wait`.
std::optional<Datagram> ask(int port, const Datagram& request, std::chrono::milliseconds wait = 500ms)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return std::nullopt;
	sockaddr_in to{};
	to.sin_family = AF_INET;
	to.sin_port = htons(static_cast<std::uint16_t>(port));
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	std::optional<Datagram> reply;
	if (sendto(fd, request.data(), request.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) ==
	    static_cast<ssize_t>(request.size())) {
		pollfd p{fd, POLLIN, 0};
		if (poll(&p, 1, static_cast<int>(wait.count())) == 1) {
			Datagram buf(65536);
			ssize_t n = recv(fd, buf.data(), buf.size(), 0);
			if (n >= 0) {
				buf.resize(static_cast<std::size_t>(n));
				reply = std::move(buf);
			}
		}
	}
	close(fd);
	return reply;
}

Datagram datagram(std::uint8_t type, const std::string& tail)
{
	Datagram d(1 + tail.size());
	d[0] = type;
	std::copy(tail.begin(), tail.end(), d.begin() + 1);
	return d;
}

std::size_t count_of(const std::string& text, const std::string& what)
{
	std::size_t n = 0;
	for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size()))
		++n;
	return n;
}

// tsql with a freetds.conf of the test's own (nothing from /etc/freetds).
CommandResult run_tsql(const TempDir& dir, const std::vector<std::string>& args, const std::string& input,
		       std::chrono::milliseconds timeout, const std::string& conf_text = "")
{
	std::string conf = dir.file("freetds.conf");
	std::ofstream(conf) << "[global]\n\ttds version = 7.4\n\tencryption = request\n" << conf_text;
	std::vector<std::string> argv = {"tsql"};
	argv.insert(argv.end(), args.begin(), args.end());
	return run_command(argv, {{"FREETDSCONF", conf}, {"FREETDS", conf}, {"TDSDUMP", ""}, {"TDSVER", "7.4"}}, input,
			   timeout);
}

std::vector<std::string> lab_browser(std::vector<std::string> more = {})
{
	std::vector<std::string> args = {"--browser", "--instance", "LAB"};
	args.insert(args.end(), more.begin(), more.end());
	return args;
}

} // namespace

TEST(LabBrowser, TsqlConnectsByInstanceName)
{
	REQUIRE_TSQL();
	LabServer server(lab_browser());
	ASSERT_TRUE(server.started()) << server.log();
	ASSERT_NE(server.port(), 1433);
	TempDir dir;
	// host\instance on the command line, in another case than announced
	auto r = run_tsql(dir, {"-S", "127.0.0.1\\lab", "-U", "sa", "-P", "lab"}, "SELECT n FROM rows(3)\ngo\nexit\n",
			  15s);
	ASSERT_FALSE(r.timed_out) << r.output;
	EXPECT_NE(r.output.find("(3 rows affected)"), std::string::npos) << r.output;
	EXPECT_TRUE(server.wait_for_log("browser: <- CLNT_UCAST_INST 'lab' from 127.0.0.1:"));
	EXPECT_TRUE(server.wait_for_log("login ok for 'sa'"));

	// instance = in a freetds.conf entry
	auto c = run_tsql(dir, {"-S", "labinst", "-U", "sa", "-P", "lab"}, "SELECT @@SERVERNAME\ngo\nexit\n", 15s,
			  "[labinst]\n\thost = 127.0.0.1\n\tinstance = LAB\n");
	EXPECT_NE(c.output.find("TDSLAB"), std::string::npos) << c.output;
	EXPECT_TRUE(server.wait_for_log("browser: <- CLNT_UCAST_INST 'LAB' from 127.0.0.1:"));
	EXPECT_EQ(count_of(server.log(), "login ok for 'sa'"), 2u);
}

TEST(LabBrowser, TsqlListsTheInstance)
{
	REQUIRE_TSQL();
	LabServer server(lab_browser({"--server-name", "LABHOST", "--server-version", "15.0.2000"}));
	ASSERT_TRUE(server.started()) << server.log();
	TempDir dir;
	auto r = run_tsql(dir, {"-L", "-H", "127.0.0.1"}, "", 15s);
	EXPECT_EQ(r.exit_code, 0) << r.output;
	EXPECT_TRUE(std::regex_search(r.output, std::regex("ServerName LABHOST\n")));
	EXPECT_TRUE(std::regex_search(r.output, std::regex("InstanceName LAB\n"))) << r.output;
	EXPECT_TRUE(std::regex_search(r.output, std::regex("IsClustered No\n"))) << r.output;
	EXPECT_TRUE(std::regex_search(r.output, std::regex("Version 15\\.0\\.2000\\.0\n"))) << r.output;
	EXPECT_TRUE(std::regex_search(r.output, std::regex("tcp " + std::to_string(server.port()) + "\n"))) << r.output;
	EXPECT_TRUE(server.wait_for_log("browser: <- CLNT_UCAST_EX from 127.0.0.1:"));
}

TEST(LabBrowser, SilentBrowserFailsTheLogin)
{
	REQUIRE_TSQL();
	LabServer server(lab_browser({"--browser-silent"}));
	ASSERT_TRUE(server.started()) << server.log();
	TempDir dir;
	// FreeTDS asks 16 times, waiting 1 s for each answer, before it reports
	// "Unable to connect": 16 s. Three unanswered requests and no TCP
	// connection show the same, and keep the test short.
	auto r = run_tsql(dir, {"-S", "127.0.0.1\\LAB", "-U", "sa", "-P", "lab"}, "SELECT 1\ngo\nexit\n", 3500ms);
	EXPECT_EQ(r.output.find("(1 row affected)"), std::string::npos) << r.output;
	EXPECT_TRUE(r.timed_out || r.exit_code != 0) << r.output;
	std::string log = server.log();
	EXPECT_GE(count_of(log, "CLNT_UCAST_INST 'LAB' from 127.0.0.1:"), 3u) << log;
	EXPECT_EQ(count_of(log, "not answered (--browser-silent)"), count_of(log, "CLNT_UCAST_INST")) << log;
	EXPECT_EQ(log.find("accepted"), std::string::npos) << log;
	EXPECT_FALSE(ask(1434, datagram(0x03, "")).has_value());
}

TEST(LabBrowser, LateReplyMakesFreetdsAskAgain)
{
	REQUIRE_TSQL();
	// Later than FreeTDS's 1-s wait: it asks again, and takes the first
	// reply when it comes (a 1-s client such as SqlClient would fail).
	LabServer server(lab_browser({"--browser-delay-ms", "1500"}));
	ASSERT_TRUE(server.started()) << server.log();
	TempDir dir;
	auto r = run_tsql(dir, {"-S", "127.0.0.1\\LAB", "-U", "sa", "-P", "lab"}, "SELECT 1\ngo\nexit\n", 15s);
	EXPECT_NE(r.output.find("(1 row affected)"), std::string::npos) << r.output;
	EXPECT_GE(r.seconds, 1.4);
	EXPECT_GE(count_of(server.log(), "CLNT_UCAST_INST 'LAB'"), 2u) << server.log();
	EXPECT_TRUE(server.wait_for_log("SVR_RESP of 84 bytes in 1500 ms"));
}

TEST(LabBrowser, EveryRequestKind)
{
	LabServer server(lab_browser());
	ASSERT_TRUE(server.started()) << server.log();
	const auto port = static_cast<std::uint16_t>(server.port());
	const std::string expected = "ServerName;TDSLAB;InstanceName;LAB;IsClustered;No;Version;16.0.1000.0;tcp;" +
				     std::to_string(port) + ";;";

	for (std::uint8_t type : {0x02, 0x03}) {
		auto reply = ask(1434, datagram(type, ""));
		ASSERT_TRUE(reply) << "no reply to type " << int(type);
		auto m = tdsbpf::parse_ssrp(*reply, true);
		EXPECT_EQ(m.kind, tdsbpf::SsrpKind::svr_resp);
		EXPECT_EQ(m.problem, "");
		ASSERT_EQ(m.instances.size(), 1u);
		EXPECT_EQ(m.instances[0].instance_name, "LAB");
		EXPECT_EQ(m.instances[0].tcp_port, port);
		EXPECT_EQ(std::string(reply->begin() + 3, reply->end()), expected);
	}

	auto inst = ask(1434, datagram(0x04, std::string("LaB", 3) + '\0'));
	ASSERT_TRUE(inst);
	auto m = tdsbpf::parse_ssrp(*inst, true);
	EXPECT_EQ(m.problem, "");
	ASSERT_EQ(m.instances.size(), 1u);
	EXPECT_EQ(m.instances[0].server_name, "TDSLAB");
	EXPECT_EQ(m.instances[0].version, "16.0.1000.0");
	EXPECT_EQ(m.instances[0].clustered, false);
	EXPECT_EQ(m.instances[0].tcp_port, port);

	// the DAC port is the instance's TCP port: the lab serves DAC there
	auto dac = ask(1434, datagram(0x0F, std::string("\x01LAB", 4) + '\0'));
	ASSERT_TRUE(dac);
	auto d = tdsbpf::parse_ssrp(*dac, true);
	EXPECT_EQ(d.kind, tdsbpf::SsrpKind::svr_resp_dac);
	EXPECT_EQ(d.problem, "");
	EXPECT_EQ(d.dac_port, port);

	// What SQL Server's Browser ignores gets no reply: an unknown instance,
	// a DAC request of another protocol version, a reply, garbage.
	const std::vector<Datagram> ignored = {
		datagram(0x04, std::string("NOPE", 4) + '\0'),
		datagram(0x0F, std::string("\x01NOPE", 5) + '\0'),
		datagram(0x0F, std::string("\x02LAB", 4) + '\0'),
		datagram(0x04, std::string(400, '\x01')),
		datagram(0x04, std::string(1, '\0')),
		datagram(0x03, "x"),
		datagram(0x05, "\x06"),
		datagram(0x12, "PRELOGIN"),
		{},
	};
	for (const auto& q : ignored)
		EXPECT_FALSE(ask(1434, q, 200ms).has_value()) << q.size() << " bytes";
	EXPECT_TRUE(server.wait_for_log("no reply: no instance of that name"));
	EXPECT_TRUE(ask(1434, datagram(0x03, "")).has_value()); // still answering
}

TEST(LabBrowser, OwnPortBusyPortAndStop)
{
	LabServer server(lab_browser({"--browser-port", "14340"}));
	ASSERT_TRUE(server.started()) << server.log();
	EXPECT_TRUE(server.wait_for_log("SQL Browser on 127.0.0.1:14340/udp: instance LAB -> tcp port " +
					std::to_string(server.port())));
	EXPECT_TRUE(ask(14340, datagram(0x03, "")).has_value());

	LabServer second(lab_browser({"--browser-port", "14340"}));
	EXPECT_FALSE(second.started());
	EXPECT_NE(second.log().find("port busy: 127.0.0.1:14340/udp is already in use"), std::string::npos)
		<< second.log();

	EXPECT_EQ(server.stop(), 0) << server.log();
	// the port is free again once the server is gone
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	sockaddr_in a{};
	a.sin_family = AF_INET;
	a.sin_port = htons(14340);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
	close(fd);

	// the browser's options need --browser; bad names are refused
	for (const std::vector<std::string>& args : {std::vector<std::string>{"--instance", "LAB"},
						     {"--browser-silent"},
						     {"--browser", "--instance", "9LAB"},
						     {"--browser", "--instance", "SEVENTEEN_LETTERS"},
						     {"--browser", "--server-name", "a;b"}}) {
		std::vector<std::string> argv = {labserver_path(), "--port", "0"};
		argv.insert(argv.end(), args.begin(), args.end());
		auto r = run_command(argv, {}, {}, 5s);
		EXPECT_NE(r.exit_code, 0) << r.output;
		EXPECT_FALSE(r.timed_out) << r.output;
	}
}

TEST(LabBrowser, WiresharkReadsTheExchange)
{
	REQUIRE_TSQL();
	if (!have_program("tshark"))
		LAB_DRIVER_MISSING("tshark not installed (Debian package tshark)");
	LabServer server(lab_browser());
	ASSERT_TRUE(server.started()) << server.log();
	TempDir dir;
	const std::string pcap = dir.file("browser.pcapng"), capture_log = dir.file("tshark.log");
	// The namespace's own loopback: nothing else is on it.
	tdsbpf::lab::SpawnOptions opt;
	opt.stdout_path = capture_log;
	pid_t tshark = tdsbpf::lab::spawn({"tshark", "-i", "lo", "-q", "-w", pcap}, opt);
	ASSERT_GT(tshark, 0);
	bool capturing = false;
	for (int i = 0; i < 200 && !capturing; ++i) {
		std::ifstream f(capture_log);
		std::string text((std::istreambuf_iterator<char>(f)), {});
		capturing = text.find("Capturing on") != std::string::npos;
		if (!capturing)
			std::this_thread::sleep_for(50ms);
	}
	if (!capturing)
		tdsbpf::lab::stop(tshark, SIGKILL, 2s);
	ASSERT_TRUE(capturing) << "tshark did not start capturing";
	// dumpcap says so a moment before its first packets are taken: the
	// Browser's datagram, the exchange's first, would be missed
	std::this_thread::sleep_for(1s);
	auto r = run_tsql(dir, {"-S", "127.0.0.1\\LAB", "-U", "sa", "-P", "lab"}, "SELECT 1\ngo\nexit\n", 15s);
	std::this_thread::sleep_for(300ms);
	tdsbpf::lab::stop(tshark, SIGINT, 5s);
	EXPECT_NE(r.output.find("(1 row affected)"), std::string::npos) << r.output;

	// One reading of every frame (tshark's start-up is most of its cost):
	// the protocols it sees, the UDP ports and payload, and whether it found
	// anything malformed or an error.
	auto read = run_command({"tshark",
				 "-r",
				 pcap,
				 "-d",
				 "tcp.port==" + std::to_string(server.port()) + ",tds",
				 "-T",
				 "fields",
				 "-E",
				 "separator=|",
				 "-e",
				 "frame.protocols",
				 "-e",
				 "udp.srcport",
				 "-e",
				 "udp.dstport",
				 "-e",
				 "udp.payload",
				 "-e",
				 "_ws.malformed",
				 "-e",
				 "_ws.expert.severity"},
				{}, {}, 30s);
	struct Frame {
		std::string protocols, sport, dport, payload, malformed, severity;
	};
	std::vector<Frame> frames;
	std::istringstream lines(read.output);
	for (std::string line; std::getline(lines, line);) {
		if (std::count(line.begin(), line.end(), '|') != 5)
			continue; // tshark's warning about running as root
		std::vector<std::string> f;
		std::istringstream cols(line);
		for (std::string col; std::getline(cols, col, '|');)
			f.push_back(col);
		f.resize(6);
		frames.push_back({f[0], f[1], f[2], f[3], f[4], f[5]});
	}
	ASSERT_GE(frames.size(), 10u) << read.output;

	// Wireshark (4.0) has no dissector for SSRP: the datagrams are UDP data.
	// None may be malformed or carry an error (severity PI_ERROR, 0x00800000),
	// and the reply's bytes, as Wireshark hands them out, must parse cleanly.
	std::vector<const Frame*> requests, replies;
	std::size_t tds = 0;
	for (const auto& f : frames) {
		EXPECT_EQ(f.malformed, "") << f.protocols;
		std::istringstream sev(f.severity);
		for (std::string v; std::getline(sev, v, ',');)
			EXPECT_LT(std::stoul(v), 0x00800000u) << f.protocols;
		if (f.dport == "1434")
			requests.push_back(&f);
		if (f.sport == "1434")
			replies.push_back(&f);
		if (f.protocols.find(":tds") != std::string::npos)
			++tds;
	}
	ASSERT_EQ(requests.size(), 1u) << read.output;
	ASSERT_EQ(replies.size(), 1u) << read.output;
	EXPECT_EQ(requests[0]->payload, "044c414200"); // 0x04 "LAB" NUL
	EXPECT_NE(replies[0]->protocols.find(":udp"), std::string::npos) << replies[0]->protocols;
	Datagram payload;
	const std::string& hex = replies[0]->payload;
	for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
		payload.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
	auto m = tdsbpf::parse_ssrp(payload, true);
	EXPECT_EQ(m.problem, "");
	ASSERT_EQ(m.instances.size(), 1u);
	EXPECT_EQ(m.instances[0].tcp_port, server.port());

	// and the connection to the port it announced reads as TDS
	EXPECT_GE(tds, 4u) << read.output;
}

} // namespace labtest
