// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The live end-to-end matrix: for every scenario, the lab server, tdsbpf
// (connection records) and tcpdump run in the server namespace of a
// NetnsLab, a real driver in the client namespace. Then:
//  - the connection records: phases in order, authentication, encryption,
//    MARS, request counts, close kind, diagnoses (docs/connections.md);
//  - tshark's TDS dissection of the same capture: message counts agree with
//    what tdsbpf counted (what both can see; see compare_with_tshark);
//  - `tdsbpf --read` of the capture gives the same records, timing aside.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e.h"
#include "lab_server.h"
#include "lab/netns_lab.h"
#include "require.h"

using nlohmann::json;
using namespace tdsbpf::test;
using tdsbpf::e2e::have;

namespace {

const char* kOdbcDriver = "/usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so";

std::string slurp(const std::string& path)
{
	std::ifstream in(path);
	return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<json> read_records(const std::string& path)
{
	std::vector<json> out;
	std::ifstream in(path);
	std::string line;
	while (std::getline(in, line)) {
		auto j = json::parse(line, nullptr, false);
		if (j.is_object() && j.value("tdsbpf.record", "") == "connection")
			out.push_back(j);
	}
	return out;
}

std::vector<std::string> phase_names(const json& c)
{
	std::vector<std::string> out;
	for (const auto& p : c["phases"])
		out.push_back(p["name"]);
	return out;
}

// The documented order of phases (docs/connections.md, "Phases").
const std::vector<std::string> kPhaseOrder = {"tcp_handshake", "prelogin", "tls_handshake", "login",
					       "authentication", "login_ack", "login_error", "active", "close"};

void expect_phases_in_order(const json& c, const std::vector<std::string>& required)
{
	auto names = phase_names(c);
	int last = -1;
	for (const auto& n : names) {
		auto it = std::find(kPhaseOrder.begin(), kPhaseOrder.end(), n);
		ASSERT_NE(it, kPhaseOrder.end()) << "unknown phase " << n;
		int idx = static_cast<int>(it - kPhaseOrder.begin());
		EXPECT_GT(idx, last) << "phase " << n << " out of order in " << c["phases"].dump();
		last = idx;
	}
	for (const auto& r : required)
		EXPECT_NE(std::find(names.begin(), names.end(), r), names.end())
			<< "phase " << r << " missing: " << c["phases"].dump();
	// offsets never go back
	double prev = -1;
	for (const auto& p : c["phases"]) {
		EXPECT_GE(p["start_offset_ms"].get<double>(), prev);
		prev = p["start_offset_ms"].get<double>();
	}
}

bool has_diag(const json& c, const std::string& code)
{
	for (const auto& d : c["diagnoses"])
		if (d["code"] == code)
			return true;
	return false;
}

std::string diag_message(const json& c, const std::string& code)
{
	for (const auto& d : c["diagnoses"])
		if (d["code"] == code)
			return d["message"];
	return {};
}

// Removes what depends on when and where the record was made: times,
// durations, latencies, the interface name, and the diagnoses' messages
// (they quote durations; codes and severities stay).
json without_timing(json j)
{
	if (j.is_object()) {
		json out = json::object();
		for (auto& [k, v] : j.items()) {
			if (k.find("time") != std::string::npos || k.find("duration") != std::string::npos ||
			    k.find("_ms") != std::string::npos || k == "latency" || k == "network.interface.name" ||
			    k == "message")
				continue;
			out[k] = without_timing(v);
		}
		return out;
	}
	if (j.is_array()) {
		json out = json::array();
		for (auto& v : j)
			out.push_back(without_timing(v));
		return out;
	}
	return j;
}

struct Scenario {
	std::vector<std::string> server_args; // extra lab server flags
	bool second_server = false;            // a second lab server on 14331 (redirect target)
	std::vector<std::string> ports = {"1433"};
};

Scenario with_args(std::initializer_list<std::string> args)
{
	Scenario s;
	s.server_args = args;
	return s;
}

class E2E : public ::testing::Test {
protected:
	void SetUp() override
	{
		TDSBPF_REQUIRE(geteuid() == 0, "needs root (network namespaces, BPF)");
		TDSBPF_REQUIRE(have("tcpdump"), "tcpdump not installed");
		TDSBPF_REQUIRE(have("tshark"), "tshark not installed");
		lab_ = std::make_unique<tdsbpf::lab::NetnsLab>();
		TDSBPF_REQUIRE(lab_->ok(), "cannot build the test network: " + lab_->error());
	}

	void TearDown() override
	{
		// processes first (NetnsLab kills what is left), then the namespaces
		lab_.reset();
	}

	std::string ip() const { return lab_->server_ip(); }

	// Lab server(s), tdsbpf and tcpdump on the server side; false (with the
	// logs in the failure message) if one of them did not get ready.
	void start(const Scenario& s)
	{
		std::vector<std::string> argv = {TDSBPF_LABSERVER_PATH, "--listen", ip(), "--port", "1433", "--ready-file",
						 dir_.file("server.ready")};
		argv.insert(argv.end(), s.server_args.begin(), s.server_args.end());
		servers_.push_back(lab_->spawn(lab_->server_ns(), argv, dir_.file("server.out"), dir_.file("server.log")));
		ASSERT_TRUE(tdsbpf::lab::wait_for_file(dir_.file("server.ready"), std::chrono::milliseconds(20000))) << slurp(dir_.file("server.log"));
		if (s.second_server) {
			servers_.push_back(lab_->spawn(lab_->server_ns(),
						       {TDSBPF_LABSERVER_PATH, "--listen", ip(), "--port", "14331", "--ready-file",
							dir_.file("server2.ready")},
						       dir_.file("server2.out"), dir_.file("server2.log")));
			ASSERT_TRUE(tdsbpf::lab::wait_for_file(dir_.file("server2.ready"), std::chrono::milliseconds(20000))) << slurp(dir_.file("server2.log"));
		}
		std::vector<std::string> targv = {TDSBPF_BIN, "--iface", lab_->server_if(), "--ready-file",
						  dir_.file("tracer.ready")};
		std::string filter;
		for (const auto& p : s.ports) {
			targv.insert(targv.end(), {"--port", p});
			filter += (filter.empty() ? "" : " or ") + std::string("tcp port ") + p;
		}
		tracer_ = lab_->spawn(lab_->server_ns(), targv, dir_.file("conns.ndjson"), dir_.file("tracer.log"));
		tcpdump_ = lab_->spawn(lab_->server_ns(),
				       {"tcpdump", "-i", lab_->server_if(), "-w", dir_.file("cap.pcap"), "-U", filter},
				       dir_.file("tcpdump.out"), dir_.file("tcpdump.log"));
		ASSERT_TRUE(tdsbpf::lab::wait_for_file(dir_.file("tracer.ready"), std::chrono::milliseconds(60000))) << slurp(dir_.file("tracer.log"));
		for (int i = 0; i < 100 && slurp(dir_.file("tcpdump.log")).find("listening on") == std::string::npos; i++)
			std::this_thread::sleep_for(std::chrono::milliseconds(50));
		ASSERT_NE(slurp(dir_.file("tcpdump.log")).find("listening on"), std::string::npos)
			<< slurp(dir_.file("tcpdump.log"));
	}

	// Stops everything and reads the records.
	std::vector<json> stop()
	{
		// a closed connection's record comes 500 ms (close linger) after its close
		std::this_thread::sleep_for(std::chrono::milliseconds(1200));
		EXPECT_EQ(lab_->stop(tracer_, SIGINT), 0) << slurp(dir_.file("tracer.log"));
		lab_->stop(tcpdump_, SIGINT);
		for (pid_t s : servers_)
			lab_->stop(s, SIGTERM);
		servers_.clear();
		return read_records(dir_.file("conns.ndjson"));
	}

	labtest::CommandResult client(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
				      const std::string& input = {},
				      std::chrono::milliseconds timeout = std::chrono::seconds(30))
	{
		std::vector<std::string> full = {"ip", "netns", "exec", lab_->client_ns()};
		full.insert(full.end(), argv.begin(), argv.end());
		return labtest::run_command(full, env, input, timeout);
	}

	// FreeTDS tsql with `encryption = <enc>`; `input` goes to its stdin.
	labtest::CommandResult tsql(const std::string& user, const std::string& enc,
				    const std::string& input = "SELECT 1\ngo\nSELECT 2\ngo\nexit\n", int port = 1433)
	{
		std::string conf = dir_.file("freetds.conf");
		std::ofstream(conf) << "[lab]\n\thost = " << ip() << "\n\tport = " << port
				    << "\n\ttds version = 7.4\n\tencryption = " << enc << "\n";
		return client({"tsql", "-S", "lab", "-U", user, "-P", "lab"},
			      {{"FREETDSCONF", conf}, {"FREETDS", conf}, {"TDSDUMP", ""}}, input);
	}

	// tests/lab/drivers/*.py, unchanged, through the host shim.
	labtest::CommandResult python_driver(const std::string& script, std::vector<std::string> args,
					     std::map<std::string, std::string> env = {})
	{
		std::vector<std::string> argv = {"/usr/bin/python3", std::string(TDSBPF_LAB_DRIVERS_DIR) + "/run_py_driver.py", ip(),
						 std::string(TDSBPF_LAB_DRIVERS_DIR) + "/" + script};
		argv.insert(argv.end(), args.begin(), args.end());
		return client(argv, env);
	}

	// tests/lab/drivers/tedious_query.js, unchanged, with the host preload.
	labtest::CommandResult tedious(std::vector<std::string> args)
	{
		std::vector<std::string> argv = {"node", "-r", std::string(TDSBPF_LAB_DRIVERS_DIR) + "/tedious_host.js",
						 std::string(TDSBPF_LAB_DRIVERS_DIR) + "/tedious_query.js"};
		argv.insert(argv.end(), args.begin(), args.end());
		return client(argv, {{"NODE_PATH", TDSBPF_LAB_NODE_MODULES}, {"E2E_SERVER_HOST", ip()}});
	}

	bool tedious_installed() const
	{
		return std::filesystem::exists(std::string(TDSBPF_LAB_NODE_MODULES) + "/tedious/package.json");
	}

	// tshark's TDS messages per connection (client port): type -> messages,
	// a message being a TDS packet with the EOM bit. Frames whose TDS
	// headers tshark could not find (TLS records, SMP frames) give none.
	std::map<int, std::map<int, int>> tshark_messages()
	{
		auto r = labtest::run_command({"tshark", "-n", "-r", dir_.file("cap.pcap"), "-d", "tcp.port==1433,tds", "-Y",
					       "tds", "-T", "fields", "-e", "tcp.srcport", "-e",
					       "tcp.dstport", "-e", "tds.type", "-e", "tds.status"},
					      {}, {}, std::chrono::seconds(60));
		EXPECT_EQ(r.exit_code, 0) << r.output;
		std::map<int, std::map<int, int>> out;
		std::istringstream in(r.output);
		std::string line;
		while (std::getline(in, line)) {
			std::vector<std::string> f;
			std::stringstream ls(line);
			std::string x;
			while (std::getline(ls, x, '\t'))
				f.push_back(x);
			if (f.size() < 4 || f[0].empty() || !isdigit(static_cast<unsigned char>(f[0][0])))
				continue; // a tshark warning line
			int sport = std::stoi(f[0]), dport = std::stoi(f[1]);
			int cport = sport == 1433 ? dport : sport;
			// several TDS packets in one frame: comma-separated values
			std::vector<std::string> types, stats;
			std::stringstream ts(f[2]), ss(f[3]);
			while (std::getline(ts, x, ','))
				types.push_back(x);
			while (std::getline(ss, x, ','))
				stats.push_back(x);
			for (size_t i = 0; i < types.size(); i++) {
				if (types[i].empty())
					continue;
				int st = i < stats.size() && !stats[i].empty() ? std::stoi(stats[i], nullptr, 0) : 1;
				if (st & 1)
					out[cport][std::stoi(types[i], nullptr, 0)]++;
			}
		}
		return out;
	}

	// (a) The capture dissected by tshark against the records. tshark and
	// tdsbpf both see TDS headers only where they are in clear: with full
	// encryption everything after the TLS handshake is TLS application data
	// for both, and under MARS tshark does not parse SMP (so it sees no TDS
	// headers inside SMP:DATA). So:
	//  - clear requests (`clear` true): SQL batches (1), RPCs (3),
	//    attentions (6) and transaction-manager requests (14) are equal;
	//    responses (4) in tshark = tdsbpf's responses (those of the active
	//    phase) + the PRELOGIN reply + the server's SSPI tokens + the login
	//    reply; recent tshark also dissects the TDS inside SMP:DATA (MARS);
	//  - encrypted work: tshark finds no request message at all, and tdsbpf
	//    counted none as clear batches/RPCs (only encrypted_requests);
	//  - always: one PRELOGIN (18) from the client whenever tdsbpf saw the
	//    prelogin phase (a PRELOGIN carrying TLS is type 18 too, but only the
	//    EOM ones count and the handshake flights are not counted by tdsbpf, so
	//    only "at least one" is comparable).
	void compare_with_tshark(const std::vector<json>& conns, bool clear)
	{
		auto ts = tshark_messages();
		for (const auto& c : conns) {
			int cport = c["client.port"];
			if (c["server.port"] != 1433)
				continue; // tshark decodes port 1433 only
			const auto& t = ts[cport];
			auto n = [&](int type) { return t.count(type) ? t.at(type) : 0; };
			const auto& w = c["work"];
			auto names = phase_names(c);
			bool prelogin = std::find(names.begin(), names.end(), "prelogin") != names.end();
			SCOPED_TRACE("client port " + std::to_string(cport) + " tshark: " + json(t).dump());
			if (prelogin) {
				EXPECT_GE(n(18), 1);
			}
			if (clear) {
				EXPECT_EQ(n(1), w["sql_batches"].get<int>());
				EXPECT_EQ(n(3), w["rpcs"].get<int>());
				EXPECT_EQ(n(6), w["attentions"].get<int>());
				EXPECT_EQ(n(14), w["transaction_manager"].get<int>());
				// server messages: the PRELOGIN reply, each SSPI token (NTLM
				// CHALLENGE), the login reply, then the responses of `active`
				bool login_reply = c["login"]["outcome"] == "success" || c["login"]["outcome"] == "failed";
				EXPECT_EQ(n(4), w["responses"].get<int>() + (prelogin ? 1 : 0) + (login_reply ? 1 : 0) +
							c["authentication"]["sspi_server_tokens"].get<int>());
			} else {
				EXPECT_EQ(n(1) + n(3), 0);
				EXPECT_EQ(w["sql_batches"].get<int>() + w["rpcs"].get<int>(), 0);
			}
		}
	}

	// (b) `tdsbpf --read` of the capture: the same records, timing aside.
	void compare_with_read(const std::vector<json>& live, const std::vector<std::string>& ports = {"1433"})
	{
		std::vector<std::string> argv = {TDSBPF_BIN, "--read", dir_.file("cap.pcap")};
		for (const auto& p : ports)
			argv.insert(argv.end(), {"--port", p});
		auto r = labtest::run_command(argv, {}, {}, std::chrono::seconds(60));
		ASSERT_EQ(r.exit_code, 0) << r.output;
		std::ofstream(dir_.file("read.ndjson")) << r.output;
		auto offline = read_records(dir_.file("read.ndjson"));
		ASSERT_EQ(offline.size(), live.size()) << r.output;
		auto key = [](const json& c) { return c["client.port"].get<int>() * 100000 + c["server.port"].get<int>(); };
		std::map<int, json> by;
		for (const auto& c : offline)
			by[key(c)] = without_timing(c);
		for (const auto& c : live) {
			ASSERT_TRUE(by.count(key(c))) << c.dump();
			json a = without_timing(c), b = by[key(c)];
			EXPECT_EQ(a, b) << "live vs --read differ:\n live: " << a.dump() << "\n read: " << b.dump()
					<< "\n patch: " << json::diff(a, b).dump();
		}
	}

	std::string logs() { return slurp(dir_.file("tracer.log")) + slurp(dir_.file("server.log")); }

	labtest::TempDir dir_;
	std::unique_ptr<tdsbpf::lab::NetnsLab> lab_;
	pid_t tracer_ = 0, tcpdump_ = 0;
	std::vector<pid_t> servers_;
};

#define NEED_TSQL() TDSBPF_REQUIRE(have("tsql"), "FreeTDS tsql not installed (Debian package freetds-bin)")
#define NEED_TEDIOUS()                                                                                 \
	TDSBPF_REQUIRE(have("node") && tedious_installed(),                                              \
		       "node or tedious missing (npm install into " TDSBPF_LAB_NODE_MODULES ")")

// ---- plain login and query ------------------------------------------------

// tsql, `encryption = request` against a server in mode off: login-only TLS.
TEST_F(E2E, TsqlLoginOnlyTlsSqlLoginAndQueries)
{
	NEED_TSQL();
	ASSERT_NO_FATAL_FAILURE(start({}));
	auto r = tsql("sa", "request");
	EXPECT_EQ(r.exit_code, 0) << r.output;
	auto conns = stop();
	ASSERT_EQ(conns.size(), 1u) << logs();
	const auto& c = conns[0];
	expect_phases_in_order(c, {"tcp_handshake", "prelogin", "tls_handshake", "login", "login_ack", "active", "close"});
	EXPECT_EQ(c["login"]["outcome"], "success");
	EXPECT_EQ(c["authentication"]["method"], "sql");
	EXPECT_EQ(c["negotiated"]["encryption"], "login_only");
	EXPECT_EQ(c["negotiated"]["tls_version"], "1.2");
	EXPECT_EQ(c["work"]["sql_batches"], 2);
	EXPECT_EQ(c["work"]["requests"], 2);
	EXPECT_EQ(c["close"]["kind"], "four_way");
	EXPECT_EQ(c["close"]["initiator"], "client");
	EXPECT_FALSE(has_diag(c, "login_unencrypted"));
	compare_with_tshark(conns, true);
	compare_with_read(conns);
}

// pymssql (FreeTDS db-lib): login-only TLS, a 3-row result.
TEST_F(E2E, PymssqlQuery)
{
	ASSERT_NO_FATAL_FAILURE(start({}));
	auto r = python_driver("pymssql_query.py", {"1433", "sa", "SELECT n FROM rows(3)"});
	TDSBPF_REQUIRE(r.exit_code != 77, "python3-pymssql missing: " + r.output);
	EXPECT_EQ(r.exit_code, 0) << r.output;
	EXPECT_NE(r.output.find("DONE 3"), std::string::npos) << r.output;
	auto conns = stop();
	ASSERT_EQ(conns.size(), 1u) << logs();
	const auto& c = conns[0];
	expect_phases_in_order(c, {"tcp_handshake", "prelogin", "login", "login_ack", "active", "close"});
	EXPECT_EQ(c["login"]["outcome"], "success");
	EXPECT_EQ(c["authentication"]["method"], "sql");
	EXPECT_GE(c["work"]["sql_batches"].get<int>(), 1);
	EXPECT_EQ(c["work"]["rows"].is_number() ? c["work"]["rows"].get<int>() : -1, 3);
	EXPECT_TRUE(c["close"]["kind"] == "four_way" || c["close"]["kind"] == "reset") << c["close"].dump();
	compare_with_tshark(conns, true);
	compare_with_read(conns);
}

// tedious, encrypt false: tedious then offers no encryption at all
// (ENCRYPT_NOT_SUP), so the LOGIN7 goes in clear. It sends its session
// options as a first batch, then the test's batch and an sp_executesql RPC.
TEST_F(E2E, TediousEncryptOffBatchAndRpc)
{
	NEED_TEDIOUS();
	ASSERT_NO_FATAL_FAILURE(start({}));
	auto r = tedious({"1433", "false", "sa"});
	EXPECT_EQ(r.exit_code, 0) << r.output;
	EXPECT_NE(r.output.find("RPC 7"), std::string::npos) << r.output;
	auto conns = stop();
	ASSERT_EQ(conns.size(), 1u) << logs();
	const auto& c = conns[0];
	expect_phases_in_order(c, {"tcp_handshake", "prelogin", "login", "login_ack", "active", "close"});
	EXPECT_EQ(c["login"]["outcome"], "success");
	EXPECT_EQ(c["authentication"]["method"], "sql");
	EXPECT_EQ(c["negotiated"]["encryption"], "off");
	EXPECT_EQ(c["negotiated"]["client_encryption"], "not_supported");
	EXPECT_TRUE(has_diag(c, "login_unencrypted")) << c["diagnoses"].dump();
	EXPECT_EQ(c["work"]["sql_batches"], 2);
	EXPECT_EQ(c["work"]["rpcs"], 1);
	EXPECT_EQ(c["work"]["requests"], 3);
	// the 25 rows of the batch; the RPC's row count is in a DONEINPROC, not
	// in the final DONE(PROC) of its reply, which is what `rows` sums
	EXPECT_EQ(c["work"]["rows"], 25);
	compare_with_tshark(conns, true);
	compare_with_read(conns);
}

// ---- full encryption ------------------------------------------------------

// tsql `encryption = require` against `--encryption required`: everything is TLS.
TEST_F(E2E, TsqlFullEncryption)
{
	NEED_TSQL();
	ASSERT_NO_FATAL_FAILURE(start(with_args({"--encryption", "required"})));
	auto r = tsql("sa", "require");
	EXPECT_EQ(r.exit_code, 0) << r.output;
	auto conns = stop();
	ASSERT_EQ(conns.size(), 1u) << logs();
	const auto& c = conns[0];
	expect_phases_in_order(c, {"tcp_handshake", "prelogin", "tls_handshake", "login", "active", "close"});
	EXPECT_EQ(c["negotiated"]["encryption"], "full");
	EXPECT_EQ(c["negotiated"]["server_encryption"], "required");
	EXPECT_EQ(c["login"]["outcome"], "unknown");
	EXPECT_EQ(c["authentication"]["method"], "unknown");
	// the two batches are exchanges of TLS records
	EXPECT_EQ(c["work"]["encrypted_requests"], 2);
	EXPECT_EQ(c["work"]["sql_batches"], 0);
	compare_with_tshark(conns, false);
	compare_with_read(conns);
}

// tedious encrypt true: full encryption from a Node driver.
TEST_F(E2E, TediousEncryptOn)
{
	NEED_TEDIOUS();
	ASSERT_NO_FATAL_FAILURE(start({}));
	auto r = tedious({"1433", "true", "sa"});
	EXPECT_EQ(r.exit_code, 0) << r.output;
	auto conns = stop();
	ASSERT_EQ(conns.size(), 1u) << logs();
	const auto& c = conns[0];
	expect_phases_in_order(c, {"tcp_handshake", "prelogin", "tls_handshake", "login", "active", "close"});
	EXPECT_EQ(c["negotiated"]["encryption"], "full");
	EXPECT_EQ(c["login"]["outcome"], "unknown");
	// session options batch, the query batch, the RPC: three exchanges
	EXPECT_EQ(c["work"]["encrypted_requests"], 3);
	compare_with_tshark(conns, false);
	compare_with_read(conns);
}

// ---- MARS -----------------------------------------------------------------

// FreeTDS ODBC (pyodbc) with MARS_Connection=Yes: two SMP sessions.
TEST_F(E2E, PyodbcMarsSessions)
{
	TDSBPF_REQUIRE(std::filesystem::exists(kOdbcDriver), "FreeTDS ODBC driver missing (Debian package tdsodbc)");
	ASSERT_NO_FATAL_FAILURE(start({}));
	auto r = python_driver("pyodbc_mars.py", {"1433", kOdbcDriver});
	TDSBPF_REQUIRE(r.exit_code != 77, "python3-pyodbc missing: " + r.output);
	EXPECT_EQ(r.exit_code, 0) << r.output;
	EXPECT_NE(r.output.find("DONE"), std::string::npos) << r.output;
	auto conns = stop();
	ASSERT_EQ(conns.size(), 1u) << logs();
	const auto& c = conns[0];
	expect_phases_in_order(c, {"tcp_handshake", "prelogin", "login", "login_ack", "active", "close"});
	EXPECT_EQ(c["negotiated"]["mars_requested"], true);
	EXPECT_EQ(c["negotiated"]["mars_used"], true);
	const auto& sessions = c["mars"]["sessions"];
	EXPECT_GE(sessions.size(), 2u) << c["mars"].dump();
	std::set<int> sids;
	for (const auto& s : sessions) {
		sids.insert(s["sid"].get<int>());
		EXPECT_TRUE(s["syn_seen"].get<bool>()) << s.dump();
		EXPECT_GT(s["data_packets"]["client_to_server"].get<int>(), 0) << s.dump();
	}
	EXPECT_EQ(sids.size(), sessions.size());
	EXPECT_GE(c["work"]["requests"].get<int>(), 3); // two SELECTs and the sp_prepexec RPC
	EXPECT_GE(c["work"]["rpcs"].get<int>(), 1);
	// tshark dissects the TDS packets inside SMP:DATA too
	compare_with_tshark(conns, true);
	compare_with_read(conns);
}

// ---- logins -----------------------------------------------------------------

// tsql NTLM login (DOMAIN\user), login-only TLS: the SSPI exchange is in clear.
TEST_F(E2E, TsqlNtlmLogin)
{
	NEED_TSQL();
	ASSERT_NO_FATAL_FAILURE(start({}));
	auto r = tsql("CORP\\joe", "request");
	EXPECT_EQ(r.exit_code, 0) << r.output;
	auto conns = stop();
	ASSERT_EQ(conns.size(), 1u) << logs();
	const auto& c = conns[0];
	expect_phases_in_order(c, {"tcp_handshake", "prelogin", "tls_handshake", "login", "authentication", "login_ack",
				   "active", "close"});
	EXPECT_EQ(c["login"]["outcome"], "success");
	EXPECT_EQ(c["authentication"]["method"], "ntlm");
	ASSERT_TRUE(c["authentication"]["ntlm"].is_object()) << c["authentication"].dump();
	EXPECT_EQ(c["authentication"]["ntlm"]["domain"], "CORP");
	EXPECT_EQ(c["authentication"]["ntlm"]["user"], "joe");
	EXPECT_GE(c["authentication"]["sspi_server_tokens"].get<int>(), 1);
	EXPECT_GE(c["authentication"]["sspi_client_packets"].get<int>(), 1);
	compare_with_tshark(conns, true);
	compare_with_read(conns);
}

// tedious NTLM (domain option), encrypt false.
TEST_F(E2E, TediousNtlmLogin)
{
	NEED_TEDIOUS();
	ASSERT_NO_FATAL_FAILURE(start({}));
	auto r = tedious({"1433", "false", "ann", "CORP"});
	EXPECT_EQ(r.exit_code, 0) << r.output;
	auto conns = stop();
	ASSERT_EQ(conns.size(), 1u) << logs();
	const auto& c = conns[0];
	expect_phases_in_order(c, {"tcp_handshake", "prelogin", "login", "authentication", "login_ack", "active", "close"});
	EXPECT_EQ(c["login"]["outcome"], "success");
	EXPECT_EQ(c["authentication"]["method"], "ntlm");
	ASSERT_TRUE(c["authentication"]["ntlm"].is_object()) << c["authentication"].dump();
	EXPECT_EQ(c["authentication"]["ntlm"]["domain"], "CORP");
	EXPECT_EQ(c["authentication"]["ntlm"]["user"], "ann");
	compare_with_tshark(conns, true);
	compare_with_read(conns);
}

// pymssql, a refused login: 18456, the server closes first.
TEST_F(E2E, PymssqlFailedLogin)
{
	ASSERT_NO_FATAL_FAILURE(start({}));
	auto r = python_driver("pymssql_query.py", {"1433", "fail_login", "SELECT 1"});
	TDSBPF_REQUIRE(r.exit_code != 77, "python3-pymssql missing: " + r.output);
	EXPECT_NE(r.output.find("18456"), std::string::npos) << r.output;
	auto conns = stop();
	ASSERT_GE(conns.size(), 1u) << logs();
	for (const auto& c : conns) { // FreeTDS may try twice
		expect_phases_in_order(c, {"tcp_handshake", "prelogin", "login", "login_error", "close"});
		EXPECT_EQ(c["login"]["outcome"], "failed");
		ASSERT_TRUE(c["login"]["error"].is_object()) << c["login"].dump();
		EXPECT_EQ(c["login"]["error"]["number"], 18456);
		EXPECT_EQ(c["login"]["error"]["class"], 14);
		EXPECT_TRUE(has_diag(c, "login_failed")) << c["diagnoses"].dump();
		// The lab server closes right after the error and FreeTDS closes as
		// soon as it reads it: on a loaded machine either FIN can go first.
		// compare_with_read below checks the record against the capture.
		EXPECT_TRUE(c["close"]["initiator"] == "server" || c["close"]["initiator"] == "client") << c["close"].dump();
		EXPECT_FALSE(has_diag(c, "server_closed_first")) << "expected after a failed login";
	}
	compare_with_tshark(conns, true);
	compare_with_read(conns);
}

// pymssql, a login held 1.2 s by the server: slow_login naming the phase.
TEST_F(E2E, PymssqlSlowLogin)
{
	ASSERT_NO_FATAL_FAILURE(start({}));
	auto r = python_driver("pymssql_query.py", {"1433", "slow_login_1200", "SELECT 1"});
	TDSBPF_REQUIRE(r.exit_code != 77, "python3-pymssql missing: " + r.output);
	EXPECT_EQ(r.exit_code, 0) << r.output;
	auto conns = stop();
	ASSERT_EQ(conns.size(), 1u) << logs();
	const auto& c = conns[0];
	expect_phases_in_order(c, {"tcp_handshake", "prelogin", "login", "login_ack", "active", "close"});
	EXPECT_EQ(c["login"]["outcome"], "success");
	EXPECT_TRUE(c["login"]["slow"].get<bool>());
	EXPECT_GE(c["login"]["duration_ms"].get<double>(), 1200.0);
	ASSERT_TRUE(has_diag(c, "slow_login")) << c["diagnoses"].dump();
	// the server held the LOGIN7's reply: the login phase had the time
	std::string m = diag_message(c, "slow_login");
	EXPECT_NE(m.find("login"), std::string::npos) << m;
	EXPECT_EQ(m.find("tls_handshake"), std::string::npos) << m;
	EXPECT_EQ(m.find("tcp_handshake"), std::string::npos) << m;
	double login_ms = 0;
	for (const auto& p : c["phases"])
		if (p["name"] == "login")
			login_ms = p["duration_ms"];
	EXPECT_GE(login_ms, 1100.0) << c["phases"].dump();
	compare_with_tshark(conns, true);
	compare_with_read(conns);
}

// ---- closes -------------------------------------------------------------------

// The server closes (FIN) right after the ClientHello: a failed TLS negotiation.
TEST_F(E2E, TsqlServerFinDuringTls)
{
	NEED_TSQL();
	ASSERT_NO_FATAL_FAILURE(start(with_args({"--fault", "fin_tls"})));
	auto r = tsql("sa", "request");
	EXPECT_NE(r.exit_code, 0) << r.output;
	auto conns = stop();
	ASSERT_GE(conns.size(), 1u) << logs();
	for (const auto& c : conns) {
		expect_phases_in_order(c, {"tcp_handshake", "prelogin", "tls_handshake", "close"});
		EXPECT_EQ(c["close"]["kind"], "server_fin_first");
		EXPECT_EQ(c["close"]["first_fin"], "server");
		EXPECT_EQ(c["close"]["phase"], "tls_handshake");
		EXPECT_TRUE(has_diag(c, "server_closed_during_tls")) << c["diagnoses"].dump();
		EXPECT_TRUE(has_diag(c, "closed_before_login")) << c["diagnoses"].dump();
		EXPECT_EQ(c["login"]["outcome"], "aborted");
	}
	compare_with_tshark(conns, true);
	compare_with_read(conns);
}

// The server resets the connection when the LOGIN7 arrives.
TEST_F(E2E, TsqlServerReset)
{
	NEED_TSQL();
	ASSERT_NO_FATAL_FAILURE(start({}));
	auto r = tsql("rst_login", "off");
	EXPECT_NE(r.exit_code, 0) << r.output;
	auto conns = stop();
	ASSERT_GE(conns.size(), 1u) << logs();
	for (const auto& c : conns) {
		expect_phases_in_order(c, {"tcp_handshake", "prelogin", "login", "close"});
		EXPECT_EQ(c["close"]["kind"], "reset");
		EXPECT_EQ(c["close"]["reset_by"], "server");
		EXPECT_EQ(c["close"]["phase"], "login");
		EXPECT_TRUE(has_diag(c, "server_reset")) << c["diagnoses"].dump();
		EXPECT_TRUE(has_diag(c, "closed_before_login")) << c["diagnoses"].dump();
	}
	compare_with_tshark(conns, true);
	compare_with_read(conns);
}

// A SYN to a port where nothing listens (traced as a SQL Server port).
TEST_F(E2E, SynToClosedPortIsRefused)
{
	Scenario s;
	s.ports = {"1433", "1434"};
	ASSERT_NO_FATAL_FAILURE(start(s));
	int st = -1;
	lab_->sh(lab_->client_ns(), "bash -c \"exec 3<>/dev/tcp/" + ip() + "/1434\"", &st);
	EXPECT_NE(st, 0);
	auto conns = stop();
	ASSERT_EQ(conns.size(), 1u) << logs();
	const auto& c = conns[0];
	EXPECT_EQ(c["server.port"], 1434);
	expect_phases_in_order(c, {"tcp_handshake"});
	EXPECT_EQ(c["close"]["kind"], "refused");
	EXPECT_EQ(c["login"]["outcome"], "not_started");
	EXPECT_TRUE(has_diag(c, "connection_refused")) << c["diagnoses"].dump();
	compare_with_read(conns, s.ports);
}

// tedious follows an ENVCHANGE routing to a second lab server.
TEST_F(E2E, TediousRedirect)
{
	NEED_TEDIOUS();
	Scenario s;
	s.second_server = true;
	s.ports = {"1433", "14331"};
	ASSERT_NO_FATAL_FAILURE(start(s));
	// "localhost": see drivers/tedious_host.js
	auto r = tedious({"1433", "false", "redirect_localhost_14331", "", "redirect"});
	EXPECT_EQ(r.exit_code, 0) << r.output;
	// (tedious clears routingData once it has followed it: "ROUTED none")
	EXPECT_NE(r.output.find("DONE"), std::string::npos) << r.output;
	auto conns = stop();
	ASSERT_EQ(conns.size(), 2u) << logs();
	const json* gateway = nullptr;
	const json* target = nullptr;
	for (const auto& c : conns)
		(c["server.port"] == 1433 ? gateway : target) = &c;
	ASSERT_TRUE(gateway && target);
	EXPECT_EQ((*gateway)["login"]["outcome"], "success");
	EXPECT_TRUE(has_diag(*gateway, "redirected")) << (*gateway)["diagnoses"].dump();
	ASSERT_TRUE((*gateway)["negotiated"]["redirect"].is_object()) << (*gateway)["negotiated"].dump();
	EXPECT_EQ((*gateway)["negotiated"]["redirect"]["server"], "localhost");
	EXPECT_EQ((*gateway)["negotiated"]["redirect"]["port"], 14331);
	EXPECT_EQ((*target)["login"]["outcome"], "success");
	EXPECT_FALSE(has_diag(*target, "redirected"));
	EXPECT_GE((*target)["work"]["requests"].get<int>(), 1);
	compare_with_tshark(conns, true);
	compare_with_read(conns, s.ports);
}

// A connection left idle: the server turns keep-alives on (fault idle_<n>:
// 1 s idle, 1 s interval), tsql runs one batch, stays idle 3.5 s and then
// closes it, as a pool retires an idle connection.
TEST_F(E2E, TsqlIdleClosedAfterKeepalives)
{
	NEED_TSQL();
	ASSERT_NO_FATAL_FAILURE(start({}));
	std::string conf = dir_.file("freetds.conf");
	std::ofstream(conf) << "[lab]\n\thost = " << ip() << "\n\tport = 1433\n\ttds version = 7.4\n\tencryption = off\n";
	// tsql reads its input from a pipe that stays open while it is idle
	auto r = client({"sh", "-c", "(printf 'SELECT 1\\ngo\\n'; sleep 3.5; printf 'exit\\n') | tsql -S lab -U idle_30 -P lab"},
			{{"FREETDSCONF", conf}, {"FREETDS", conf}, {"TDSDUMP", ""}});
	EXPECT_EQ(r.exit_code, 0) << r.output;
	auto conns = stop();
	ASSERT_EQ(conns.size(), 1u) << logs() << r.output;
	const auto& c = conns[0];
	expect_phases_in_order(c, {"tcp_handshake", "prelogin", "login", "login_ack", "active", "close"});
	EXPECT_EQ(c["login"]["outcome"], "success");
	EXPECT_EQ(c["negotiated"]["encryption"], "off");
	EXPECT_EQ(c["work"]["requests"], 1);
	EXPECT_GE(c["tcp"]["keepalives"]["server_to_client"].get<int>(), 2) << c["tcp"].dump();
	EXPECT_EQ(c["close"]["kind"], "four_way");
	EXPECT_TRUE(c["close"]["after_keepalives"].get<bool>()) << c["close"].dump();
	EXPECT_TRUE(has_diag(c, "idle_closed_after_keepalives")) << c["diagnoses"].dump();
	EXPECT_FALSE(has_diag(c, "non_pooled_close")) << c["diagnoses"].dump();
	compare_with_tshark(conns, true);
	compare_with_read(conns);
}

// The same, but the server retires the idle connection: fault idle_3 closes
// it (FIN) 3 s after the login, after two keep-alives.
TEST_F(E2E, TsqlIdleClosedByServerAfterKeepalives)
{
	NEED_TSQL();
	ASSERT_NO_FATAL_FAILURE(start({}));
	std::string conf = dir_.file("freetds.conf");
	std::ofstream(conf) << "[lab]\n\thost = " << ip() << "\n\tport = 1433\n\ttds version = 7.4\n\tencryption = off\n";
	auto r = client({"sh", "-c", "(printf 'SELECT 1\\ngo\\n'; sleep 4.5; printf 'exit\\n') | tsql -S lab -U idle_3 -P lab"},
			{{"FREETDSCONF", conf}, {"FREETDS", conf}, {"TDSDUMP", ""}});
	auto conns = stop();
	ASSERT_EQ(conns.size(), 1u) << logs() << r.output;
	const auto& c = conns[0];
	expect_phases_in_order(c, {"tcp_handshake", "prelogin", "login", "login_ack", "active", "close"});
	EXPECT_GE(c["tcp"]["keepalives"]["server_to_client"].get<int>(), 2) << c["tcp"].dump();
	EXPECT_EQ(c["close"]["initiator"], "server");
	EXPECT_EQ(c["close"]["kind"], "server_fin_first");
	EXPECT_TRUE(c["close"]["after_keepalives"].get<bool>()) << c["close"].dump();
	EXPECT_TRUE(has_diag(c, "idle_closed_after_keepalives")) << c["diagnoses"].dump();
	compare_with_tshark(conns, true);
	compare_with_read(conns);
}

} // namespace
