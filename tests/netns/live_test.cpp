// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// tdsbpf live, on a veth pair between two private namespaces: the lab
// server and tdsbpf on the server side (the sidecar case), FreeTDS tsql and
// a bare TCP client on the other. Checks the events, and that nothing stays
// attached after a clean stop or a kill -9.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lab_server.h"
#include "outputs.h"
#include "lab/netns_lab.h"
#include "require.h"

using nlohmann::json;
using namespace tdsbpf::test;

namespace {

bool have(const std::string& program)
{
	return std::system(("command -v " + program + " >/dev/null 2>&1").c_str()) == 0;
}

std::vector<json> read_events(const std::string& path)
{
	std::vector<json> out;
	std::ifstream in(path);
	std::string line;
	while (std::getline(in, line)) {
		auto j = json::parse(line, nullptr, false);
		if (j.is_object() && j.contains("event"))
			out.push_back(j);
	}
	return out;
}

// Nothing of tdsbpf on the interface or in the kernel any more.
void expect_nothing_attached(const tdsbpf::lab::NetnsLab& lab)
{
	std::string link = lab.sh(lab.server_ns(), "ip link show dev " + lab.server_if());
	EXPECT_EQ(link.find("xdp"), std::string::npos) << link;
	std::string tc = lab.sh(lab.server_ns(), "tc filter show dev " + lab.server_if() +
							 " egress; tc filter show dev " + lab.server_if() + " ingress");
	EXPECT_EQ(tc.find("tdsbpf"), std::string::npos) << tc;
	// programs are freed once their last link is gone (asynchronously)
	std::string progs;
	for (int i = 0; i < 50; i++) {
		progs = lab.sh(lab.server_ns(), "bpftool prog show");
		if (progs.find("tdsbpf_") == std::string::npos)
			break;
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
	}
	EXPECT_EQ(progs.find("tdsbpf_"), std::string::npos) << progs;
}

class LiveTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		TDSBPF_REQUIRE(geteuid() == 0, "needs root (network namespaces, BPF)");
		lab_ = std::make_unique<tdsbpf::lab::NetnsLab>();
		TDSBPF_REQUIRE(lab_->ok(), "cannot build the test network: " + lab_->error());
	}

	// Starts tdsbpf on the server side; false if it did not get ready.
	bool start_tracer(const std::vector<std::string>& extra = {})
	{
		return start_tracer_on({lab_->server_if()}, extra);
	}

	// Starts tdsbpf in the server's namespace on these of its interfaces.
	bool start_tracer_on(const std::vector<std::string>& ifaces, const std::vector<std::string>& extra = {})
	{
		std::vector<std::string> argv = {TDSBPF_BIN, "--ready-file", dir_.file("tracer.ready")};
		for (const auto& i : ifaces) {
			argv.push_back("--iface");
			argv.push_back(i);
		}
		argv.insert(argv.end(), extra.begin(), extra.end());
		tracer_ = lab_->spawn(lab_->server_ns(), argv, dir_.file("events.ndjson"), dir_.file("tracer.log"));
		return tdsbpf::lab::wait_for_file(dir_.file("tracer.ready"), std::chrono::milliseconds(60000));
	}

	// The lab server on the server side, port 1433; its pid, or 0.
	pid_t start_lab_server(const std::string& listen = {})
	{
		return labtest::start_lab_server(*lab_, dir_, listen);
	}

	std::string tracer_log() const
	{
		std::ifstream in(dir_.file("tracer.log"));
		return std::string(std::istreambuf_iterator<char>(in), {});
	}

	labtest::TempDir dir_;
	std::unique_ptr<tdsbpf::lab::NetnsLab> lab_;
	pid_t tracer_ = 0;
};

TEST_F(LiveTest, RealDriverTrafficBecomesEvents)
{
	TDSBPF_REQUIRE(have("tsql"), "FreeTDS tsql not installed (Debian package freetds-bin)");
	pid_t server = start_lab_server();
	ASSERT_GT(server, 0) << "lab server did not start";
	ASSERT_TRUE(start_tracer({"--events"})) << tracer_log();

	// FreeTDS: login-only TLS, a 20000-row result (many TDS packets, GSO
	// super-packets at tc egress), then a small query
	std::string conf = dir_.file("freetds.conf");
	std::ofstream(conf) << "[lab]\n\thost = " << lab_->server_ip() << "\n\tport = 1433\n"
			    << "\ttds version = 7.4\n\tencryption = request\n";
	auto r = labtest::run_command(
		{"ip", "netns", "exec", lab_->client_ns(), "tsql", "-S", "lab", "-U", "sa", "-P", "lab"},
		{{"FREETDSCONF", conf}, {"FREETDS", conf}}, "SELECT n FROM rows(20000)\ngo\nSELECT 1\ngo\nexit\n",
		std::chrono::seconds(30));
	ASSERT_EQ(r.exit_code, 0) << r.output;
	ASSERT_NE(r.output.find("20000"), std::string::npos) << r.output;
	// a bare TCP connection: handshake and close, no TDS at all
	int st = -1;
	lab_->sh(lab_->client_ns(), "bash -c \"exec 3<>/dev/tcp/" + lab_->server_ip() + "/1433; exec 3>&-\"", &st);
	std::this_thread::sleep_for(std::chrono::milliseconds(500));

	EXPECT_EQ(lab_->stop(tracer_, SIGINT), 0) << tracer_log();
	lab_->stop(server, SIGTERM);

	auto events = read_events(dir_.file("events.ndjson"));
	ASSERT_FALSE(events.empty()) << tracer_log();
	// group by client
	std::map<std::string, std::vector<json>> by_client;
	for (const auto& e : events)
		by_client[e["client"].get<std::string>()].push_back(e);
	ASSERT_EQ(by_client.size(), 2u);

	const std::vector<json>* tsql = nullptr;
	const std::vector<json>* bare = nullptr;
	for (const auto& [client, evs] : by_client) {
		bool tds = false;
		for (const auto& e : evs)
			tds |= e["event"] == "tds";
		(tds ? tsql : bare) = &evs;
	}
	ASSERT_TRUE(tsql && bare);

	// the handshake, in order, at the right hooks
	ASSERT_GE(tsql->size(), 3u);
	EXPECT_EQ((*tsql)[0]["event"], "tcp_syn");
	EXPECT_EQ((*tsql)[1]["event"], "tcp_synack");
	EXPECT_EQ((*tsql)[2]["event"], "tcp_handshake_ack");
	bool prelogin_c = false, prelogin_s = false, tls_in_tds = false, login_tls = false, loginack = false;
	bool rows = false, resync = false, closed = false;
	int batches = 0;
	for (const auto& e : *tsql) {
		// client-to-server is seen at XDP ingress, the rest at tc egress
		EXPECT_EQ(e["hook"], e["dir"] == "c2s" ? "xdp" : "tc_egress") << e.dump();
		std::string ev = e["event"];
		resync |= ev == "resync";
		closed |= ev == "tcp_fin" || ev == "tcp_rst";
		if (ev == "tls" && e["dir"] == "c2s" && e["tls"]["content_type"] == 23)
			login_tls = true;
		if (ev == "tds_done" && e["done"]["rows"] == 20000)
			rows = true;
		if (ev != "tds")
			continue;
		const auto& t = e["tds"];
		if (t.contains("done") && t["done"]["rows"] == 20000)
			rows = true;
		if (t["type"] == "sql_batch")
			batches++;
		if (!t.contains("detail"))
			continue;
		const auto& d = t["detail"];
		if (t["type"] == "prelogin" && d.contains("encryption"))
			prelogin_c = true;
		if (e["dir"] == "s2c" && d.contains("version") && d["version"] == "16.0.1000.0")
			prelogin_s = true;
		if (d.contains("content_type") && d["content_type"] == 22)
			tls_in_tds = true;
		if (d.contains("tokens"))
			for (const auto& tok : d["tokens"])
				loginack |= tok == "loginack";
	}
	EXPECT_TRUE(prelogin_c);
	EXPECT_TRUE(prelogin_s);
	EXPECT_TRUE(tls_in_tds);
	EXPECT_TRUE(login_tls);
	EXPECT_TRUE(loginack);
	EXPECT_EQ(batches, 2);
	EXPECT_TRUE(rows) << "the final DONE of the 20000-row reply was not found";
	EXPECT_FALSE(resync) << "the walk lost the framing";
	EXPECT_TRUE(closed);

	ASSERT_GE(bare->size(), 4u);
	EXPECT_EQ((*bare)[0]["event"], "tcp_syn");
	EXPECT_EQ((*bare)[1]["event"], "tcp_synack");
	EXPECT_EQ((*bare)[2]["event"], "tcp_handshake_ack");
	bool fin = false;
	for (const auto& e : *bare)
		fin |= e["event"] == "tcp_fin";
	EXPECT_TRUE(fin);

	expect_nothing_attached(*lab_);
}

TEST_F(LiveTest, ConnectionRecordsFromTheAggregator)
{
	TDSBPF_REQUIRE(have("tsql"), "FreeTDS tsql not installed (Debian package freetds-bin)");
	pid_t server = start_lab_server();
	ASSERT_GT(server, 0) << "lab server did not start";
	ASSERT_TRUE(start_tracer()) << tracer_log();
	std::string conf = dir_.file("freetds.conf");
	std::ofstream(conf) << "[lab]\n\thost = " << lab_->server_ip() << "\n\tport = 1433\n\ttds version = 7.4\n";
	auto r = labtest::run_command(
		{"ip", "netns", "exec", lab_->client_ns(), "tsql", "-S", "lab", "-U", "fail_login", "-P", "lab"},
		{{"FREETDSCONF", conf}, {"FREETDS", conf}}, "SELECT 1\ngo\nexit\n", std::chrono::seconds(30));
	std::this_thread::sleep_for(std::chrono::milliseconds(1500));
	EXPECT_EQ(lab_->stop(tracer_, SIGINT), 0) << tracer_log();
	lab_->stop(server, SIGTERM);
	std::ifstream in(dir_.file("events.ndjson"));
	std::string line;
	std::vector<json> conns;
	while (std::getline(in, line)) {
		auto j = json::parse(line, nullptr, false);
		if (j.is_object())
			conns.push_back(j);
	}
	ASSERT_EQ(conns.size(), 1u) << tracer_log();
	std::string all = conns[0].dump();
	EXPECT_NE(all.find("18456"), std::string::npos) << all;
	EXPECT_NE(all.find("login_failed"), std::string::npos) << all;
	expect_nothing_attached(*lab_);
}

// ---- one packet, several traced points: counted once -------------------------

namespace {

// A connection whose every packet passed two traced points: one SYN, no
// retransmission, and in each direction every packet counted once and its
// second sighting counted apart (but for the last ACK, which ends the flow).
void expect_counted_once(const json& c)
{
	const json& t = c["tcp"];
	EXPECT_EQ(t["syn_count"], 1) << t.dump();
	EXPECT_EQ(t["retransmissions"]["client_to_server"], 0) << t.dump();
	EXPECT_EQ(t["retransmissions"]["server_to_client"], 0) << t.dump();
	for (const auto& d : c["diagnoses"])
		EXPECT_NE(d["code"], "retransmissions") << d.dump();
	ASSERT_TRUE(t["packets"].is_object()) << t.dump();
	for (const char* dir : {"client_to_server", "server_to_client"}) {
		int64_t packets = t["packets"][dir], dups = t["duplicates_ignored"][dir];
		EXPECT_GT(packets, 5) << dir << " " << t.dump();
		EXPECT_LE(dups, packets) << dir << " " << t.dump();
		EXPECT_GE(dups, packets - 1) << dir << " " << t.dump();
	}
	EXPECT_EQ(c["login"]["outcome"], "success");
	EXPECT_EQ(c["work"]["sql_batches"], 1);
	EXPECT_EQ(c["close"]["kind"], "four_way");
}

// FreeTDS tsql from the server's namespace to addr: a login and a
// 3000-row reply.
labtest::CommandResult tsql_to(const tdsbpf::lab::NetnsLab& lab, const labtest::TempDir& dir, const std::string& addr)
{
	std::string conf = dir.file("freetds.conf");
	std::ofstream(conf) << "[lab]\n\thost = " << addr << "\n\tport = 1433\n\ttds version = 7.4\n";
	return labtest::run_command(
		{"ip", "netns", "exec", lab.server_ns(), "tsql", "-S", "lab", "-U", "sa", "-P", "lab"},
		{{"FREETDSCONF", conf}, {"FREETDS", conf}}, "SELECT n FROM rows(3000)\ngo\nexit\n",
		std::chrono::seconds(30));
}

} // namespace

TEST_F(LiveTest, LoopbackSeesEachPacketTwiceAndCountsItOnce)
{
	// application and server on one host: tc egress and XDP both see every
	// packet on the namespace's own loopback
	TDSBPF_REQUIRE(have("tsql"), "FreeTDS tsql not installed (Debian package freetds-bin)");
	pid_t server = start_lab_server("127.0.0.1");
	ASSERT_GT(server, 0) << "lab server did not start";
	ASSERT_TRUE(start_tracer_on({"lo"})) << tracer_log();
	auto r = tsql_to(*lab_, dir_, "127.0.0.1");
	ASSERT_EQ(r.exit_code, 0) << r.output;
	ASSERT_NE(r.output.find("3000"), std::string::npos) << r.output;
	std::this_thread::sleep_for(std::chrono::milliseconds(1000));
	EXPECT_EQ(lab_->stop(tracer_, SIGINT), 0) << tracer_log();
	lab_->stop(server, SIGTERM);
	auto conns = labtest::read_connection_records(dir_.file("events.ndjson"));
	ASSERT_EQ(conns.size(), 1u) << tracer_log();
	expect_counted_once(conns[0]);
}

TEST_F(LiveTest, InterfaceAndItsBridgeCountEachPacketOnce)
{
	// the server's veth end made a port of a bridge that holds its address:
	// client packets come in at the port (XDP) and again at the bridge (XDP,
	// generic), server packets go out at the bridge and again at the port
	TDSBPF_REQUIRE(have("tsql"), "FreeTDS tsql not installed (Debian package freetds-bin)");
	std::string br = "tdsbpf-br" + std::to_string(getpid() % 100000);
	int st = -1;
	std::string out = lab_->sh(lab_->server_ns(),
				   "ip link add " + br + " type bridge && ip link set " + br + " up && ip addr del " +
					   lab_->server_ip() + "/24 dev " + lab_->server_if() + " && ip link set " +
					   lab_->server_if() + " master " + br + " && ip addr add " +
					   lab_->server_ip() + "/24 dev " + br,
				   &st);
	ASSERT_EQ(st, 0) << out; // the bridge goes with the namespace
	pid_t server = start_lab_server();
	ASSERT_GT(server, 0) << "lab server did not start";
	ASSERT_TRUE(start_tracer_on({lab_->server_if(), br})) << tracer_log();
	std::string conf = dir_.file("freetds.conf");
	std::ofstream(conf) << "[lab]\n\thost = " << lab_->server_ip() << "\n\tport = 1433\n\ttds version = 7.4\n";
	auto r = labtest::run_command(
		{"ip", "netns", "exec", lab_->client_ns(), "tsql", "-S", "lab", "-U", "sa", "-P", "lab"},
		{{"FREETDSCONF", conf}, {"FREETDS", conf}}, "SELECT n FROM rows(3000)\ngo\nexit\n",
		std::chrono::seconds(30));
	ASSERT_EQ(r.exit_code, 0) << r.output;
	std::this_thread::sleep_for(std::chrono::milliseconds(1000));
	EXPECT_EQ(lab_->stop(tracer_, SIGINT), 0) << tracer_log();
	lab_->stop(server, SIGTERM);
	auto conns = labtest::read_connection_records(dir_.file("events.ndjson"));
	ASSERT_EQ(conns.size(), 1u) << tracer_log();
	expect_counted_once(conns[0]);
}

TEST_F(LiveTest, KilledTracerLeavesNothingAttached)
{
	ASSERT_TRUE(start_tracer({"--events"})) << tracer_log();
	std::string link = lab_->sh(lab_->server_ns(), "ip link show dev " + lab_->server_if());
	EXPECT_NE(link.find("xdp"), std::string::npos) << "XDP not attached while running: " << link;
	lab_->stop(tracer_, SIGKILL);
	expect_nothing_attached(*lab_);
	// and it starts again at once
	std::remove(dir_.file("tracer.ready").c_str());
	ASSERT_TRUE(start_tracer({"--events"})) << tracer_log();
	EXPECT_EQ(lab_->stop(tracer_, SIGTERM), 0) << tracer_log();
	expect_nothing_attached(*lab_);
}

// One bare TCP connection from the client to the lab server.
void connect_once(const tdsbpf::lab::NetnsLab& lab)
{
	lab.sh(lab.client_ns(), "bash -c \"exec 3<>/dev/tcp/" + lab.server_ip() + "/1433; exec 3>&-\"");
	std::this_thread::sleep_for(std::chrono::milliseconds(300));
}

int count_events(const std::vector<json>& events, const std::string& kind)
{
	int n = 0;
	for (const auto& e : events)
		n += e["event"] == kind;
	return n;
}

// The same interface named twice is traced once: every packet is counted
// once, and the log says why.
TEST_F(LiveTest, InterfaceGivenTwiceIsTracedOnce)
{
	pid_t server = start_lab_server();
	ASSERT_GT(server, 0) << "lab server did not start";
	ASSERT_TRUE(start_tracer({"--iface", lab_->server_if(), "--events"})) << tracer_log();
	connect_once(*lab_);
	EXPECT_EQ(lab_->stop(tracer_, SIGINT), 0) << tracer_log();
	lab_->stop(server, SIGTERM);
	EXPECT_NE(tracer_log().find("is already traced"), std::string::npos) << tracer_log();
	auto events = read_events(dir_.file("events.ndjson"));
	EXPECT_EQ(count_events(events, "tcp_syn"), 1) << tracer_log();
	EXPECT_EQ(count_events(events, "tcp_synack"), 1);
	expect_nothing_attached(*lab_);
}

// With tc filters on a clsact qdisc: the qdisc tdsbpf added goes at exit;
// one that was there before stays, with what was on it.
TEST_F(LiveTest, ClsactQdiscRemovedOnlyIfTdsbpfAddedIt)
{
	const std::string dev = lab_->server_if();
	int st = -1;
	auto qdiscs = [&] { return lab_->sh(lab_->server_ns(), "tc qdisc show dev " + dev); };
	ASSERT_TRUE(start_tracer({"--attach", "tc", "--tc-api", "clsact"})) << tracer_log();
	EXPECT_NE(qdiscs().find("clsact"), std::string::npos) << qdiscs();
	std::string filters = lab_->sh(lab_->server_ns(), "tc filter show dev " + dev + " ingress");
	EXPECT_NE(filters.find("tdsbpf_tc_ingre"), std::string::npos) << filters; // names are cut at 15
	EXPECT_EQ(lab_->stop(tracer_, SIGINT), 0) << tracer_log();
	EXPECT_EQ(qdiscs().find("clsact"), std::string::npos) << qdiscs();
	expect_nothing_attached(*lab_);

	// a clsact qdisc of someone else's, with a filter of theirs
	lab_->sh(lab_->server_ns(),
		 "tc qdisc add dev " + dev + " clsact && tc filter add dev " + dev +
			 " egress prio 7 bpf da obj " TDSBPF_TC_PASS_OBJECT " sec tc",
		 &st);
	ASSERT_EQ(st, 0);
	std::remove(dir_.file("tracer.ready").c_str());
	ASSERT_TRUE(start_tracer({"--attach", "tc", "--tc-api", "clsact"})) << tracer_log();
	EXPECT_EQ(lab_->stop(tracer_, SIGINT), 0) << tracer_log();
	EXPECT_NE(qdiscs().find("clsact"), std::string::npos) << qdiscs();
	filters = lab_->sh(lab_->server_ns(), "tc filter show dev " + dev + " egress");
	EXPECT_NE(filters.find("tc_pass"), std::string::npos) << filters;
	expect_nothing_attached(*lab_);
}

// A traced interface that is removed is logged and detached, the others
// are still traced, and it is traced again when it is back.
TEST_F(LiveTest, RemovedInterfaceIsTracedAgainWhenBack)
{
	const std::string extra = "tdsbpfx0";
	auto add = "ip link add " + extra + " type veth peer name tdsbpfx1 && ip link set " + extra + " up";
	int st = -1;
	lab_->sh(lab_->server_ns(), add, &st);
	ASSERT_EQ(st, 0);
	pid_t server = start_lab_server();
	ASSERT_GT(server, 0) << "lab server did not start";
	ASSERT_TRUE(start_tracer({"--iface", extra, "--events"})) << tracer_log();

	lab_->sh(lab_->server_ns(), "ip link del " + extra);
	for (int i = 0; i < 50 && tracer_log().find("was removed") == std::string::npos; i++)
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
	EXPECT_NE(tracer_log().find("interface " + extra + " (ifindex"), std::string::npos) << tracer_log();
	connect_once(*lab_); // still traced on the lab's interface

	lab_->sh(lab_->server_ns(), add, &st);
	ASSERT_EQ(st, 0);
	for (int i = 0; i < 50 && tracer_log().find("is back: traced again") == std::string::npos; i++)
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
	EXPECT_NE(tracer_log().find("interface " + extra + " is back: traced again"), std::string::npos)
		<< tracer_log();
	std::string link = lab_->sh(lab_->server_ns(), "ip link show dev " + extra);
	EXPECT_NE(link.find("xdp"), std::string::npos) << link;
	connect_once(*lab_);
	EXPECT_EQ(lab_->stop(tracer_, SIGINT), 0) << tracer_log();
	lab_->stop(server, SIGTERM);
	auto events = read_events(dir_.file("events.ndjson"));
	EXPECT_EQ(count_events(events, "tcp_syn"), 2) << tracer_log();
	lab_->sh(lab_->server_ns(), "ip link del " + extra);
	expect_nothing_attached(*lab_);

	// asked to stop when nothing is left: it does, with status 1
	lab_->sh(lab_->server_ns(), add, &st);
	std::remove(dir_.file("tracer.ready").c_str());
	std::vector<std::string> argv = {
		TDSBPF_BIN, "--iface", extra, "--exit-when-iface-gone", "--ready-file", dir_.file("tracer.ready")};
	tracer_ = lab_->spawn(lab_->server_ns(), argv, dir_.file("events2.ndjson"), dir_.file("tracer2.log"));
	ASSERT_TRUE(tdsbpf::lab::wait_for_file(dir_.file("tracer.ready"), std::chrono::milliseconds(60000)));
	lab_->sh(lab_->server_ns(), "ip link del " + extra);
	EXPECT_EQ(lab_->stop(tracer_, 0, 10000), 1);
	std::ifstream in(dir_.file("tracer2.log"));
	std::string log((std::istreambuf_iterator<char>(in)), {});
	EXPECT_NE(log.find("no traced interface is left; stopping"), std::string::npos) << log;
}

// The program reading tdsbpf's records goes away while it traces: the next
// record cannot be written, tdsbpf says why and stops with status 1 instead
// of tracing on into nothing.
TEST_F(LiveTest, ReaderOfTheRecordsGoneEndsTheRun)
{
	pid_t server = start_lab_server();
	ASSERT_GT(server, 0) << "lab server did not start";
	std::string fifo = dir_.file("records.fifo");
	ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
	// the reader is there when tdsbpf opens the pipe, so its open does not
	// wait
	int reader = open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	ASSERT_GE(reader, 0);
	std::vector<std::string> argv = {TDSBPF_BIN, "--iface", lab_->server_if(), "--ready-file",
					 dir_.file("tracer.ready")};
	tracer_ = lab_->spawn(lab_->server_ns(), argv, fifo, dir_.file("tracer.log"));
	ASSERT_TRUE(tdsbpf::lab::wait_for_file(dir_.file("tracer.ready"), std::chrono::milliseconds(60000)))
		<< tracer_log();
	close(reader);
	auto load = labtest::run_command({"ip", "netns", "exec", lab_->client_ns(), TDSBPF_LOADCLIENT_PATH, "--host",
					  lab_->server_ip(), "--connections", "1", "--count", "3",
					  "--requests-per-connection", "1"},
					 {}, "", std::chrono::seconds(60));
	EXPECT_EQ(load.exit_code, 0) << load.output;
	// the records of those connections cannot be written: status 1, within
	// a few ticks, the reason named
	EXPECT_EQ(lab_->stop(tracer_, 0, 10000), 1) << tracer_log();
	tracer_ = 0;
	EXPECT_NE(tracer_log().find("cannot write the records to standard output: Broken pipe"), std::string::npos)
		<< tracer_log();
	lab_->stop(server, SIGTERM);
	expect_nothing_attached(*lab_);
}

// Connections still open when the run ends: what their flow entries have
// counted since they last sent it is read from the kernel's table after
// detaching, so their records hold every request answered while traced
// (without it, only the first one, which went to user space as events).
TEST_F(LiveTest, OpenConnectionsAtTheEndKeepTheirCountedRequests)
{
	pid_t server = start_lab_server();
	ASSERT_GT(server, 0) << "lab server did not start";
	ASSERT_TRUE(start_tracer({"--duration", "3"})) << tracer_log();
	// 3 connections, 6 requests a second in all, for longer than the run:
	// about 6 requests each while traced, fewer than a work record holds
	auto load = labtest::run_command({"ip", "netns", "exec", lab_->client_ns(), TDSBPF_LOADCLIENT_PATH, "--host",
					  lab_->server_ip(), "--connections", "3", "--rate", "6", "--duration", "5"},
					 {}, "", std::chrono::seconds(60));
	EXPECT_EQ(load.exit_code, 0) << load.output;
	EXPECT_EQ(lab_->stop(tracer_, 0, 20000), 0) << tracer_log();
	tracer_ = 0;
	auto records = labtest::read_connection_records(dir_.file("events.ndjson"));
	ASSERT_EQ(records.size(), 3u) << tracer_log();
	for (const auto& r : records) {
		EXPECT_EQ(r["close"]["kind"], "still_open") << r.dump();
		int requests = r["work"]["requests"].get<int>(), responses = r["work"]["responses"].get<int>();
		EXPECT_GE(requests, 3) << r["work"].dump();
		EXPECT_LE(requests, 9) << r["work"].dump();
		EXPECT_GE(responses, requests - 1) << r["work"].dump();
		EXPECT_EQ(r["work"]["latency_ms"]["count"].get<int>(), responses) << r["work"].dump();
	}
	lab_->stop(server, SIGTERM);
	expect_nothing_attached(*lab_);
}

// A small ring buffer and a stalled reader: events are lost, and every
// record affected says so; none claims what the loss made up (mid-stream,
// still open, still logging in), and the loss is logged while it happens.
TEST_F(LiveTest, LostEventsAreMarkedWhereTheyHappened)
{
	pid_t server = start_lab_server();
	ASSERT_GT(server, 0) << "lab server did not start";
	ASSERT_TRUE(start_tracer({"--ringbuf-mb", "1"})) << tracer_log();
	ASSERT_EQ(kill(tracer_, SIGSTOP), 0);
	auto load = labtest::run_command({"ip", "netns", "exec", lab_->client_ns(), TDSBPF_LOADCLIENT_PATH, "--host",
					  lab_->server_ip(), "--connections", "8", "--count", "1500",
					  "--requests-per-connection", "1", "--json"},
					 {}, "", std::chrono::seconds(120));
	kill(tracer_, SIGCONT);
	ASSERT_EQ(load.exit_code, 0) << load.output;
	auto report = json::parse(load.output.substr(load.output.find('{')), nullptr, false);
	ASSERT_TRUE(report.is_object()) << load.output;
	int made = report["connections_ok"];
	ASSERT_GE(made, 1000);
	// said while running, not only at exit
	for (int i = 0; i < 50 && tracer_log().find("the ring buffer is full") == std::string::npos; i++)
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
	EXPECT_NE(tracer_log().find("the ring buffer is full"), std::string::npos) << tracer_log();
	std::this_thread::sleep_for(std::chrono::milliseconds(1500));
	EXPECT_EQ(lab_->stop(tracer_, SIGINT), 0) << tracer_log();
	lab_->stop(server, SIGTERM);

	std::vector<json> records = labtest::read_connection_records(dir_.file("events.ndjson"));
	ASSERT_FALSE(records.empty()) << tracer_log();
	EXPECT_LE(records.size(), static_cast<std::size_t>(made) + 1);
	int marked = 0;
	for (const auto& r : records) {
		const auto& t = r["tracer"];
		bool lossy = t["events_lost"] > 0 || t["more_may_be_lost"] == true;
		marked += lossy;
		// the tracer was there before every one of them
		EXPECT_EQ(r["midstream"], false) << r.dump();
		// every one closed: an end not seen is unknown, not still open
		EXPECT_NE(r["close"]["kind"], "still_open") << r.dump();
		EXPECT_NE(r["login"]["outcome"], "in_progress") << r.dump();
		if (r["close"]["kind"] == "unknown" || r["login"]["outcome"] == "unknown" || t["start_lost"] == true) {
			EXPECT_TRUE(lossy) << r.dump();
		}
		bool said = false;
		for (const auto& d : r["diagnoses"])
			said |= d["code"] == "events_lost";
		EXPECT_EQ(said, lossy) << r.dump();
		if (!lossy) {
			// a record with nothing lost is whole
			EXPECT_EQ(r["login"]["outcome"], "success") << r.dump();
			EXPECT_EQ(r["work"]["requests"], 1) << r.dump();
		}
	}
	EXPECT_GT(marked, 0);
	// the summary counts the drops
	json summary = labtest::summary_in(tracer_log());
	ASSERT_TRUE(summary.is_object()) << tracer_log();
	EXPECT_GT(summary["dropped"]["kernel"].get<uint64_t>(), 0u) << summary.dump();
	expect_nothing_attached(*lab_);
}

std::string proc_status(pid_t pid, const std::string& field)
{
	std::ifstream in("/proc/" + std::to_string(pid) + "/status");
	std::string line;
	while (std::getline(in, line))
		if (line.rfind(field + ":", 0) == 0)
			return line.substr(line.find_first_not_of(" \t", field.size() + 1));
	return {};
}

// Once attached, tdsbpf keeps only CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN
// (as root), or nothing at all as the user of --user; it traces on.
TEST_F(LiveTest, PrivilegesAreDroppedOnceAttached)
{
	pid_t server = start_lab_server();
	ASSERT_GT(server, 0) << "lab server did not start";
	ASSERT_TRUE(start_tracer({"--verbose"})) << tracer_log();
	EXPECT_EQ(proc_status(tracer_, "CapEff"), "000000c000001000");
	EXPECT_EQ(proc_status(tracer_, "CapPrm"), "000000c000001000");
	EXPECT_EQ(proc_status(tracer_, "CapBnd"), "000000c000001000");
	EXPECT_EQ(proc_status(tracer_, "NoNewPrivs"), "1");
	EXPECT_NE(tracer_log().find("privileges: kept CAP_NET_ADMIN, CAP_PERFMON, CAP_BPF"), std::string::npos)
		<< tracer_log();
	connect_once(*lab_);
	EXPECT_EQ(lab_->stop(tracer_, SIGINT), 0) << tracer_log();
	EXPECT_EQ(labtest::read_connection_records(dir_.file("events.ndjson")).size(), 1u) << tracer_log();
	expect_nothing_attached(*lab_);

	std::remove(dir_.file("tracer.ready").c_str());
	ASSERT_TRUE(start_tracer({"--user", "nobody", "--verbose"})) << tracer_log();
	EXPECT_EQ(proc_status(tracer_, "Uid").substr(0, 5), "65534");
	EXPECT_EQ(proc_status(tracer_, "CapEff"), "0000000000000000");
	EXPECT_EQ(proc_status(tracer_, "CapBnd"), "0000000000000000");
	connect_once(*lab_);
	EXPECT_EQ(lab_->stop(tracer_, SIGINT), 0) << tracer_log();
	lab_->stop(server, SIGTERM);
	EXPECT_EQ(labtest::read_connection_records(dir_.file("events.ndjson")).size(), 1u) << tracer_log();
	expect_nothing_attached(*lab_);

	// filters on a clsact qdisc must be removed as root: refused
	std::remove(dir_.file("tracer.ready").c_str());
	auto r = labtest::run_command({"ip", "netns", "exec", lab_->server_ns(), TDSBPF_BIN, "--iface",
				       lab_->server_if(), "--attach", "tc", "--tc-api", "clsact", "--user", "nobody"});
	EXPECT_EQ(r.exit_code, 2) << r.output;
	EXPECT_NE(r.output.find("--user cannot be used with tc filters on a clsact qdisc"), std::string::npos)
		<< r.output;
	auto nouser = labtest::run_command({TDSBPF_BIN, "--iface", lab_->server_if(), "--user", "tdsbpf-no-such-user"});
	EXPECT_EQ(nouser.exit_code, 2) << nouser.output;
	EXPECT_NE(nouser.output.find("no such user"), std::string::npos) << nouser.output;
	expect_nothing_attached(*lab_);
}

TEST_F(LiveTest, BadInputGetsAClearMessage)
{
	auto unknown = labtest::run_command({TDSBPF_BIN, "--iface", "tdsbpf-nosuch0"});
	EXPECT_EQ(unknown.exit_code, 2);
	EXPECT_NE(unknown.output.find("unknown interface 'tdsbpf-nosuch0'"), std::string::npos) << unknown.output;
	auto port = labtest::run_command({TDSBPF_BIN, "--port", "70000"});
	EXPECT_EQ(port.exit_code, 2);
	EXPECT_NE(port.output.find("--port"), std::string::npos) << port.output;
	auto missing = labtest::run_command({TDSBPF_BIN, "--read", "/nonexistent/x.pcap"});
	EXPECT_EQ(missing.exit_code, 2);
	EXPECT_NE(missing.output.find("cannot read capture"), std::string::npos) << missing.output;
	// an unprivileged run says which capabilities are missing
	if (have("setpriv")) {
		auto nopriv = labtest::run_command({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
						    "--inh-caps=-all", TDSBPF_BIN, "--iface", "lo"});
		EXPECT_EQ(nopriv.exit_code, 2);
		EXPECT_NE(nopriv.output.find("CAP_BPF"), std::string::npos) << nopriv.output;
	}
}

} // namespace
