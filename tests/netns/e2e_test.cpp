// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The live end-to-end matrix: for every scenario, the lab server, tdsbpf
// (connection records) and tcpdump run in the server namespace of a
// NetnsLab, a real driver in the client namespace. Then:
//  - the connection records: phases in order, authentication, encryption,
//    MARS, request counts, close kind, diagnoses (docs/connections.md);
//  - tshark's TDS dissection of the same capture: message counts agree with
//    what tdsbpf counted (what both can see; see compare_with_tshark);
//  - `tdsbpf --read` of the capture gives the same records, timing aside.
// A scenario is a row of kCases (a Case: what differs); Cases.Run does the
// steps they share. A new case is a new row.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e.h"
#include "lab_server.h"
#include "outputs.h"
#include "lab/netns_lab.h"
#include "require.h"

using nlohmann::json;
using namespace tdsbpf::test;
using tdsbpf::e2e::have;

namespace {

const char* kOdbcDriverPath = "/usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so";

std::vector<std::string> phase_names(const json& c)
{
	std::vector<std::string> out;
	for (const auto& p : c["phases"])
		out.push_back(p["name"]);
	return out;
}

// The documented order of phases (docs/connections.md, "Phases").
const std::vector<std::string> kPhaseOrder = {"tcp_handshake", "prelogin",	 "tls_handshake",
					      "login",	       "authentication", "login_ack",
					      "login_error",   "active",	 "close"};

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
			    k == "message" || k == "evidence" ||     // sentences that quote measured times
			    k == "owners" ||			     // sockets are live only
			    k == "first_frame" || k == "last_frame") // frames are a capture's only
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
	bool second_server = false;	      // a second lab server on 14331 (redirect target)
	std::vector<std::string> ports = {"1433"};
	std::vector<std::string> tracer_args;  // more options for tdsbpf (live and --read)
	std::vector<std::string> captured_too; // ports tcpdump captures that tdsbpf is not told of
};

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
		std::vector<std::string> argv = {
			TDSBPF_LABSERVER_PATH,	  "--listen", ip(), "--port", "1433", "--ready-file",
			dir_.file("server.ready")};
		argv.insert(argv.end(), s.server_args.begin(), s.server_args.end());
		servers_.push_back(
			lab_->spawn(lab_->server_ns(), argv, dir_.file("server.out"), dir_.file("server.log")));
		ASSERT_TRUE(tdsbpf::lab::wait_for_file(dir_.file("server.ready"), std::chrono::milliseconds(20000)))
			<< labtest::slurp(dir_.file("server.log"));
		if (s.second_server) {
			servers_.push_back(lab_->spawn(lab_->server_ns(),
						       {TDSBPF_LABSERVER_PATH, "--listen", ip(), "--port", "14331",
							"--ready-file", dir_.file("server2.ready")},
						       dir_.file("server2.out"), dir_.file("server2.log")));
			ASSERT_TRUE(tdsbpf::lab::wait_for_file(dir_.file("server2.ready"),
							       std::chrono::milliseconds(20000)))
				<< labtest::slurp(dir_.file("server2.log"));
		}
		std::vector<std::string> targv = {TDSBPF_BIN, "--iface", lab_->server_if(), "--ready-file",
						  dir_.file("tracer.ready")};
		std::string filter;
		for (const auto& p : s.ports) {
			targv.insert(targv.end(), {"--port", p});
			filter += (filter.empty() ? "" : " or ") + std::string("tcp port ") + p;
		}
		for (const auto& p : s.captured_too)
			filter += " or tcp port " + p;
		targv.insert(targv.end(), s.tracer_args.begin(), s.tracer_args.end());
		tracer_ = lab_->spawn(lab_->server_ns(), targv, dir_.file("conns.ndjson"), dir_.file("tracer.log"));
		tcpdump_ = lab_->spawn(lab_->server_ns(),
				       {"tcpdump", "-i", lab_->server_if(), "-w", dir_.file("cap.pcap"), "-U", filter},
				       dir_.file("tcpdump.out"), dir_.file("tcpdump.log"));
		ASSERT_TRUE(tdsbpf::lab::wait_for_file(dir_.file("tracer.ready"), std::chrono::milliseconds(60000)))
			<< labtest::slurp(dir_.file("tracer.log"));
		for (int i = 0;
		     i < 100 && labtest::slurp(dir_.file("tcpdump.log")).find("listening on") == std::string::npos; i++)
			std::this_thread::sleep_for(std::chrono::milliseconds(50));
		ASSERT_NE(labtest::slurp(dir_.file("tcpdump.log")).find("listening on"), std::string::npos)
			<< labtest::slurp(dir_.file("tcpdump.log"));
	}

	// Stops everything and reads the records.
	std::vector<json> stop()
	{
		// a closed connection's record comes 500 ms (close linger) after its close
		std::this_thread::sleep_for(std::chrono::milliseconds(1200));
		EXPECT_EQ(lab_->stop(tracer_, SIGINT), 0) << labtest::slurp(dir_.file("tracer.log"));
		lab_->stop(tcpdump_, SIGINT);
		for (pid_t s : servers_)
			lab_->stop(s, SIGTERM);
		servers_.clear();
		return labtest::read_connection_records(dir_.file("conns.ndjson"));
	}

public:
	// ---- the drivers, run in the client namespace (what a case's `drive` calls)

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
		return client({"tsql", "-S", "lab", "-U", user, "-P", "lab"}, freetds_env(enc, port), input);
	}

	// FreeTDS tsql (encryption off) reading its input from `feeder`, a shell
	// command piped into it: the pipe stays open while the feeder sleeps, so
	// tsql stays connected and idle.
	labtest::CommandResult tsql_piped(const std::string& user, const std::string& feeder)
	{
		return client({"sh", "-c", feeder + " | tsql -S lab -U " + user + " -P lab"}, freetds_env("off", 1433));
	}

	// tsql_piped, with tools/lab/inject_reset.py playing a firewall in the
	// client's namespace: armed after `after` seconds, it resets the
	// connection towards the server, with an IP TTL of its own.
	labtest::CommandResult tsql_reset_by_firewall(const std::string& feeder, const std::string& after)
	{
		return tsql_piped("sa", "(/usr/bin/python3 " + std::string(TDSBPF_INJECT_RESET) + " --server " + ip() +
						" --after " + after + " --ttl 200 >&2 &) ; " + feeder);
	}

	// support/drivers/*.py, unchanged, through the host shim.
	labtest::CommandResult python_driver(const std::string& script, std::vector<std::string> args,
					     std::map<std::string, std::string> env = {})
	{
		std::vector<std::string> argv = {"/usr/bin/python3",
						 std::string(TDSBPF_LAB_DRIVERS_DIR) + "/run_py_driver.py", ip(),
						 std::string(TDSBPF_LAB_DRIVERS_DIR) + "/" + script};
		argv.insert(argv.end(), args.begin(), args.end());
		return client(argv, env);
	}

	// support/drivers/tedious_query.js, unchanged, with the host preload.
	labtest::CommandResult tedious(std::vector<std::string> args)
	{
		std::vector<std::string> argv = {"node", "-r", std::string(TDSBPF_LAB_DRIVERS_DIR) + "/tedious_host.js",
						 std::string(TDSBPF_LAB_DRIVERS_DIR) + "/tedious_query.js"};
		argv.insert(argv.end(), args.begin(), args.end());
		return client(argv, {{"NODE_PATH", TDSBPF_LAB_NODE_MODULES}, {"E2E_SERVER_HOST", ip()}});
	}

	// The lab's load client logging in through GSS-API SPNEGO offering NTLM
	// (gss-ntlmssp, credentials CORP\\kim from an NTLM_USER_FILE), then one
	// batch; `enc` is its --encryption.
	labtest::CommandResult spnego_client(const std::string& enc)
	{
		std::string users = dir_.file("ntlm_users");
		std::ofstream(users) << "CORP:kim:lab\n";
		return client({TDSBPF_LOADCLIENT_PATH, "--host", ip(), "--port", "1433", "--connections", "1",
			       "--count", "1", "--encryption", enc, "--spnego", "MSSQLSvc@" + ip(), "--json"},
			      {{"NTLM_USER_FILE", users}, {"KRB5CCNAME", "FILE:" + dir_.file("no_ticket")}});
	}

	// The lab's load client: one login and one batch with `enc` as its
	// --encryption, offering the TLS 1.2 suites of `ciphers`.
	labtest::CommandResult load_client(const std::string& enc, const std::string& ciphers)
	{
		return client({TDSBPF_LOADCLIENT_PATH, "--host", ip(), "--port", "1433", "--connections", "1",
			       "--count", "1", "--encryption", enc, "--tls-ciphers", ciphers, "--json"});
	}

	// The load client logging in as `user` (a lab fault name) with a login
	// timeout of `timeout_ms`; then a wait for the server's late answer.
	labtest::CommandResult load_client_giving_up(const std::string& user, const std::string& timeout_ms)
	{
		auto r = client({TDSBPF_LOADCLIENT_PATH, "--host", ip(), "--port", "1433", "--connections", "1",
				 "--count", "1", "--encryption", "not-supported", "--user", user, "--timeout-ms",
				 timeout_ms});
		std::this_thread::sleep_for(std::chrono::milliseconds(1500));
		return r;
	}

	// A bare TCP connect to `port` from the client namespace (bash's
	// /dev/tcp); exit_code is the shell's status.
	labtest::CommandResult tcp_connect(int port)
	{
		labtest::CommandResult r;
		r.output = lab_->sh(lab_->client_ns(),
				    "bash -c \"exec 3<>/dev/tcp/" + ip() + "/" + std::to_string(port) + "\"",
				    &r.exit_code);
		return r;
	}

protected:
	// freetds.conf for the lab server, and the environment that makes FreeTDS read it.
	std::map<std::string, std::string> freetds_env(const std::string& enc, int port)
	{
		std::string conf = dir_.file("freetds.conf");
		std::ofstream(conf) << "[lab]\n\thost = " << ip() << "\n\tport = " << port
				    << "\n\ttds version = 7.4\n\tencryption = " << enc << "\n";
		return {{"FREETDSCONF", conf}, {"FREETDS", conf}, {"TDSDUMP", ""}};
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
		auto r = labtest::run_command({"tshark", "-n", "-r", dir_.file("cap.pcap"), "-d", "tcp.port==1433,tds",
					       "-Y", "tds", "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.dstport",
					       "-e", "tds.type", "-e", "tds.status"},
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
				bool login_reply =
					c["login"]["outcome"] == "success" || c["login"]["outcome"] == "failed";
				EXPECT_EQ(n(4), w["responses"].get<int>() + (prelogin ? 1 : 0) + (login_reply ? 1 : 0) +
							c["authentication"]["sspi_server_tokens"].get<int>());
			} else {
				EXPECT_EQ(n(1) + n(3), 0);
				EXPECT_EQ(w["sql_batches"].get<int>() + w["rpcs"].get<int>(), 0);
			}
		}
	}

	// (b) `tdsbpf --read` of the capture: the same records, timing aside.
	void compare_with_read(const std::vector<json>& live, const std::vector<std::string>& ports = {"1433"},
			       const std::vector<std::string>& options = {})
	{
		std::vector<std::string> argv = {TDSBPF_BIN, "--read", dir_.file("cap.pcap")};
		for (const auto& p : ports)
			argv.insert(argv.end(), {"--port", p});
		argv.insert(argv.end(), options.begin(), options.end());
		auto r = labtest::run_command(argv, {}, {}, std::chrono::seconds(60));
		ASSERT_EQ(r.exit_code, 0) << r.output;
		std::ofstream(dir_.file("read.ndjson")) << r.output;
		auto offline = labtest::read_connection_records(dir_.file("read.ndjson"));
		ASSERT_EQ(offline.size(), live.size()) << r.output;
		// a port's connection, and the midstream one after its reset
		auto key = [](const json& c) {
			return c["client.port"].dump() + ":" + c["server.port"].dump() + ":" + c["midstream"].dump();
		};
		std::map<std::string, json> by;
		for (const auto& c : offline)
			by[key(c)] = without_timing(c);
		for (const auto& c : live) {
			ASSERT_TRUE(by.count(key(c))) << c.dump();
			json a = without_timing(c), b = by[key(c)];
			EXPECT_EQ(a, b) << "live vs --read differ:\n live: " << a.dump() << "\n read: " << b.dump()
					<< "\n patch: " << json::diff(a, b).dump();
		}
		// (c) with an event for every TDS packet: the same records, byte for
		// byte (the summary's event counts differ, as they should)
		argv.push_back("--every-request");
		auto e = labtest::run_command(argv, {}, {}, std::chrono::seconds(60));
		ASSERT_EQ(e.exit_code, 0) << e.output;
		auto records = [](const std::string& out) {
			std::string keep;
			std::istringstream in(out);
			for (std::string line; std::getline(in, line);)
				if (line.find("\"tdsbpf.record\":\"connection\"") != std::string::npos)
					keep += line + "\n";
			return keep;
		};
		EXPECT_FALSE(records(r.output).empty()) << r.output;
		EXPECT_EQ(records(e.output), records(r.output)) << "routine work counted vs an event per packet differ";
	}

	std::string logs() { return labtest::slurp(dir_.file("tracer.log")) + labtest::slurp(dir_.file("server.log")); }

	labtest::TempDir dir_;
	std::unique_ptr<tdsbpf::lab::NetnsLab> lab_;
	pid_t tracer_ = 0, tcpdump_ = 0;
	std::vector<pid_t> servers_;
};

// ---- a case --------------------------------------------------------------------

// What a field of a record must be: a value (equal to it) or a predicate.
struct Is {
	template <class T>
	requires(!std::is_same_v<std::decay_t<T>, Is> && !std::is_same_v<std::decay_t<T>, json> &&
		 std::is_constructible_v<json, T>) Is(T&& value)
	    : Is(json(std::forward<T>(value)))
	{
	}
	Is(json value) : what(value.dump()), test([value](const json& x) { return x == value; }) {}
	Is(std::string w, std::function<bool(const json&)> t) : what(std::move(w)), test(std::move(t)) {}

	std::string what;
	std::function<bool(const json&)> test;
};

// A number >= n.
Is at_least(double n)
{
	return {">= " + json(n).dump(), [n](const json& x) { return x.is_number() && x.get<double>() >= n; }};
}

// One of several values.
Is one_of(std::vector<json> values)
{
	return {"one of " + json(values).dump(),
		[values](const json& x) { return std::find(values.begin(), values.end(), x) != values.end(); }};
}

// A JSON object.
Is an_object()
{
	return {"an object", [](const json& x) { return x.is_object(); }};
}

// A field of the record, by JSON pointer ("/login/outcome"; an absent field
// is null), and what it must be. kAssert stops the case when it fails: the
// fields after it (inside it) would be meaningless.
enum class OnFailure { kExpect, kAssert };
struct Field {
	std::string pointer;
	Is is;
	OnFailure on_failure = OnFailure::kExpect;
};

// What the case needs on this machine, checked before anything starts.
enum Need : unsigned {
	kTsql = 1,	 // FreeTDS tsql
	kTedious = 2,	 // node and tedious (the setup.npm_tedious fixture)
	kOdbcDriver = 4, // the FreeTDS ODBC driver (pyodbc is checked by the driver: exit 77)
	kGssNtlm = 8,	 // GSS-API's NTLM plugin (gss-ntlmssp)
};
constexpr const char* kGssNtlmPlugin = "/usr/lib/x86_64-linux-gnu/gssntlmssp/gssntlmssp.so";

// The driver's exit status.
enum class Exit { kZero, kNonZero, kAny };

// How many connection records: exactly n, or at least n.
struct Records {
	size_t n = 1;
	bool at_least = false;
	static Records exactly(size_t n) { return {n, false}; }
	static Records at_least_n(size_t n) { return {n, true}; }
};

// How the records compare with tshark's dissection (see compare_with_tshark).
enum class Tshark {
	kClear,	    // requests in clear: message counts equal
	kEncrypted, // full encryption: neither sees a request
	kSkip,	    // not compared
};

// One end-to-end case: the steps are the same for all (Cases.Run below),
// a case is what differs.
struct Case {
	std::string name; // the test is E2E/Cases.Run/<name>
	unsigned needs = 0;
	Scenario scenario; // lab server flags, a second server, the traced ports
	std::function<labtest::CommandResult(E2E&)> drive;
	// The Python driver exits 77 when its module is missing: the case then
	// skips, saying that this package is missing.
	std::string python_package;
	Exit exit = Exit::kZero;
	std::vector<std::string> output; // what the driver's output must contain
	Records records;
	// Phases that must be there, all in the documented order (the offsets
	// never going back); empty: the phases are not checked.
	std::vector<std::string> phases;
	// For every record: its fields, the diagnoses it must have and must not have.
	std::vector<Field> fields;
	std::vector<std::string> diagnoses;
	std::vector<std::string> no_diagnoses;
	Tshark tshark = Tshark::kClear;
	// What does not fit in the above, on all the records; after the checks above.
	std::function<void(const std::vector<json>&)> extra;
};

void PrintTo(const Case& c, std::ostream* os)
{
	*os << c.name;
}

// ---- the cases -----------------------------------------------------------------

// A login in clear, then work, then the close: the phases most cases require.
const std::vector<std::string> kLoginAndWork = {"tcp_handshake", "prelogin", "login", "login_ack", "active", "close"};

// A row names only what it uses; the rest keeps Case's defaults (GCC would
// warn about every member a designated initializer leaves out).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
// A redirect case's two records: the gateway's (port 1433) and the
// target's; null where one is missing.
std::pair<const json*, const json*> gateway_and_target(const std::vector<json>& conns)
{
	const json* gateway = nullptr;
	const json* target = nullptr;
	for (const auto& c : conns)
		(c["server.port"] == 1433 ? gateway : target) = &c;
	return {gateway, target};
}

const std::vector<Case> kCases = {
	// ---- plain login and query ----

	// tsql, `encryption = request` against a server in mode off: login-only TLS.
	{
		.name = "TsqlLoginOnlyTlsSqlLoginAndQueries",
		.needs = kTsql,
		.drive = [](E2E& t) { return t.tsql("sa", "request"); },
		.phases = {"tcp_handshake", "prelogin", "tls_handshake", "login", "login_ack", "active", "close"},
		.fields = {{"/login/outcome", "success"},
			   {"/authentication/method", "sql"},
			   {"/negotiated/encryption", "login_only"},
			   {"/negotiated/tls_version", "1.2"},
			   {"/work/sql_batches", 2},
			   {"/work/requests", 2},
			   {"/close/kind", "four_way"},
			   {"/close/initiator", "client"}},
		.no_diagnoses = {"login_unencrypted"},
	},

	// pymssql (FreeTDS db-lib): login-only TLS, a 3-row result.
	{
		.name = "PymssqlQuery",
		.drive =
			[](E2E& t) {
				return t.python_driver("pymssql_query.py", {"1433", "sa", "SELECT n FROM rows(3)"});
			},
		.python_package = "python3-pymssql",
		.output = {"DONE 3"},
		.phases = kLoginAndWork,
		.fields = {{"/login/outcome", "success"},
			   {"/authentication/method", "sql"},
			   {"/work/sql_batches", at_least(1)},
			   {"/work/rows", 3},
			   {"/close/kind", one_of({"four_way", "reset"})}},
	},

	// tedious, encrypt false: tedious then offers no encryption at all
	// (ENCRYPT_NOT_SUP), so the LOGIN7 goes in clear. It sends its session
	// options as a first batch, then the test's batch and an sp_executesql RPC.
	{
		.name = "TediousEncryptOffBatchAndRpc",
		.needs = kTedious,
		.drive =
			[](E2E& t) {
				return t.tedious({"1433", "false", "sa"});
			},
		.output = {"RPC 7"},
		.phases = kLoginAndWork,
		.fields = {{"/login/outcome", "success"},
			   {"/authentication/method", "sql"},
			   {"/negotiated/encryption", "off"},
			   {"/negotiated/client_encryption", "not_supported"},
			   {"/work/sql_batches", 2},
			   {"/work/rpcs", 1},
			   {"/work/requests", 3},
			   // the 25 rows of the batch and the RPC's 1, whose count is in the
			   // DONEINPROC before its reply's RETURNSTATUS and DONEPROC
			   {"/work/rows", 26}},
		.diagnoses = {"login_unencrypted"},
	},

	// ---- full encryption ----

	// tsql `encryption = require` against `--encryption required`: everything is TLS.
	{
		.name = "TsqlFullEncryption",
		.needs = kTsql,
		.scenario = {.server_args = {"--encryption", "required"}},
		.drive = [](E2E& t) { return t.tsql("sa", "require"); },
		.phases = {"tcp_handshake", "prelogin", "tls_handshake", "login", "active", "close"},
		.fields = {{"/negotiated/encryption", "full"},
			   {"/negotiated/server_encryption", "required"},
			   // requests answered after the login's answer: a probable success
			   {"/login/outcome", "success"},
			   {"/login/inferred", true},
			   {"/authentication/method", "unknown"},
			   // the two batches are exchanges of TLS records
			   {"/work/encrypted_requests", 2},
			   {"/work/sql_batches", 0}},
		.tshark = Tshark::kEncrypted,
	},

	// tedious encrypt true: full encryption from a Node driver.
	{
		.name = "TediousEncryptOn",
		.needs = kTedious,
		.drive =
			[](E2E& t) {
				return t.tedious({"1433", "true", "sa"});
			},
		.phases = {"tcp_handshake", "prelogin", "tls_handshake", "login", "active", "close"},
		.fields = {{"/negotiated/encryption", "full"},
			   {"/login/outcome", "success"},
			   {"/login/inferred", true},
			   // session options batch, the query batch, the RPC: three exchanges
			   {"/work/encrypted_requests", 3}},
		.tshark = Tshark::kEncrypted,
	},

	// ---- MARS ----

	// FreeTDS ODBC (pyodbc) with MARS_Connection=Yes: two SMP sessions.
	{
		.name = "PyodbcMarsSessions",
		.needs = kOdbcDriver,
		.drive =
			[](E2E& t) {
				return t.python_driver("pyodbc_mars.py", {"1433", kOdbcDriverPath});
			},
		.python_package = "python3-pyodbc",
		.output = {"DONE"},
		.phases = kLoginAndWork,
		.fields = {{"/negotiated/mars_requested", true},
			   {"/negotiated/mars_used", true},
			   {"/work/requests", at_least(3)}, // two SELECTs and the sp_prepexec RPC
			   {"/work/rpcs", at_least(1)}},
		// tshark dissects the TDS packets inside SMP:DATA too
		.tshark = Tshark::kClear,
		.extra =
			[](const std::vector<json>& conns) {
				const auto& c = conns[0];
				const auto& sessions = c["mars"]["sessions"];
				EXPECT_GE(sessions.size(), 2u) << c["mars"].dump();
				std::set<int> sids;
				for (const auto& s : sessions) {
					sids.insert(s["sid"].get<int>());
					EXPECT_TRUE(s["syn_seen"].get<bool>()) << s.dump();
					EXPECT_GT(s["data_packets"]["client_to_server"].get<int>(), 0) << s.dump();
				}
				EXPECT_EQ(sids.size(), sessions.size());
			},
	},

	// ---- logins ----

	// tsql NTLM login (DOMAIN\user), login-only TLS: the SSPI exchange is in clear.
	{
		.name = "TsqlNtlmLogin",
		.needs = kTsql,
		.drive = [](E2E& t) { return t.tsql("CORP\\joe", "request"); },
		.phases = {"tcp_handshake", "prelogin", "tls_handshake", "login", "authentication", "login_ack",
			   "active", "close"},
		.fields = {{"/login/outcome", "success"},
			   {"/authentication/method", "ntlm"},
			   {"/authentication/ntlm", an_object(), OnFailure::kAssert},
			   {"/authentication/ntlm/domain", "CORP"},
			   {"/authentication/ntlm/user", "joe"},
			   {"/authentication/sspi_server_tokens", at_least(1)},
			   {"/authentication/sspi_client_packets", at_least(1)}},
	},

	// tsql NTLM with full encryption: the CHALLENGE and AUTHENTICATE are TLS
	// records; their sizes tell the login's second round trip from a request.
	{
		.name = "TsqlNtlmFullEncryption",
		.needs = kTsql,
		.scenario = {.server_args = {"--encryption", "required"}},
		.drive = [](E2E& t) { return t.tsql("CORP\\joe", "require"); },
		.phases = {"tcp_handshake", "prelogin", "tls_handshake", "login", "authentication", "active", "close"},
		.fields = {{"/negotiated/encryption", "full"},
			   {"/login/outcome", "success"},
			   {"/login/inferred", true},
			   {"/authentication/method", "ntlm"},
			   {"/authentication/inferred", true},
			   // the same two batches as with a SQL login: AUTHENTICATE is none
			   {"/work/encrypted_requests", 2}},
		.tshark = Tshark::kEncrypted,
	},

	// SPNEGO-wrapped NTLM from a real GSS-API stack (MIT's SPNEGO and
	// gss-ntlmssp), as Windows clients send it without a Kerberos ticket;
	// login-only TLS, so the SSPI exchange is in clear.
	{
		.name = "SpnegoNtlmLogin",
		.needs = kGssNtlm,
		.drive = [](E2E& t) { return t.spnego_client("off"); },
		.phases = {"tcp_handshake", "prelogin", "tls_handshake", "login", "authentication", "login_ack",
			   "active", "close"},
		.fields = {{"/login/outcome", "success"},
			   {"/authentication/method", "ntlm"},
			   {"/authentication/integrated_security", true},
			   {"/authentication/ntlm", an_object(), OnFailure::kAssert},
			   {"/authentication/ntlm/domain", "CORP"},
			   {"/authentication/ntlm/user", "kim"},
			   {"/authentication/sspi_server_tokens", 1},
			   {"/authentication/sspi_client_packets", 1},
			   {"/work/sql_batches", 1}},
	},

	// ---- TLS posture ----

	// tsql, login-only TLS, against a server presenting a certificate like
	// SQL Server's self-signed fallback, valid 10 more days.
	{
		.name = "TsqlSeesTheSelfSignedFallback",
		.needs = kTsql,
		.scenario = {.server_args = {"--self-signed", "SSL_Self_Signed_Fallback", "--cert-days", "10"}},
		.drive = [](E2E& t) { return t.tsql("sa", "request"); },
		.phases = kLoginAndWork,
		.fields = {{"/tls/certificate_seen", "read", OnFailure::kAssert},
			   {"/tls/certificate/subject", "CN=SSL_Self_Signed_Fallback,O=tdsbpf lab"},
			   {"/tls/certificate/self_signed", true},
			   {"/tls/certificate/sql_server_fallback", true},
			   {"/tls/certificate/key_type", "RSA"},
			   {"/tls/certificate/key_bits", 2048},
			   {"/tls/server/weak", false}},
		.diagnoses = {"tls_self_signed_fallback", "tls_certificate_expired"},
	},

	// tsql, login-only TLS: the server's certificate expired three days ago
	// and names 80 hosts, so the flight runs over more than a segment (and
	// over a 2 KiB excerpt): it is read whole all the same.
	{
		.name = "TsqlSeesAnExpiredLongCertificate",
		.needs = kTsql,
		.scenario = {.server_args = {"--self-signed", "sqlprod01.corp.example.com", "--cert-days", "-3",
					     "--cert-san-names", "80"}},
		.drive = [](E2E& t) { return t.tsql("sa", "request"); },
		.phases = kLoginAndWork,
		.fields = {{"/tls/certificate_seen", "read", OnFailure::kAssert},
			   {"/tls/certificate/subject", "CN=sqlprod01.corp.example.com,O=tdsbpf lab"},
			   {"/tls/certificate/self_signed", true},
			   {"/tls/certificate/sql_server_fallback", false}},
		.diagnoses = {"tls_self_signed", "tls_certificate_expired"},
	},

	// The load client, full encryption, offering everything OpenSSL has
	// (anonymous and NULL suites too) to a server that allows only a NULL
	// suite: the connection is "encrypted" and readable.
	{
		.name = "LoadClientGetsANullCipher",
		.scenario = {.server_args = {"--tls-ciphers", "ECDHE-ECDSA-NULL-SHA:@SECLEVEL=0"}},
		.drive = [](E2E& t) { return t.load_client("on", "ALL:ECDHE-ECDSA-NULL-SHA:@SECLEVEL=0"); },
		.phases = {"tcp_handshake", "prelogin", "tls_handshake", "login", "active", "close"},
		.fields = {{"/tls/server", an_object(), OnFailure::kAssert},
			   {"/tls/server/cipher_suite", "TLS_ECDHE_ECDSA_WITH_NULL_SHA"},
			   {"/tls/server/weak", true},
			   {"/negotiated/encryption", "full"}},
		.diagnoses = {"tls_weak_cipher"},
		.tshark = Tshark::kEncrypted,
	},

	// tedious NTLM (domain option), encrypt false.
	{
		.name = "TediousNtlmLogin",
		.needs = kTedious,
		.drive =
			[](E2E& t) {
				return t.tedious({"1433", "false", "ann", "CORP"});
			},
		.phases = {"tcp_handshake", "prelogin", "login", "authentication", "login_ack", "active", "close"},
		.fields = {{"/login/outcome", "success"},
			   {"/authentication/method", "ntlm"},
			   {"/authentication/ntlm", an_object(), OnFailure::kAssert},
			   {"/authentication/ntlm/domain", "CORP"},
			   {"/authentication/ntlm/user", "ann"}},
	},

	// pymssql, a refused login: 18456, the server closes first.
	{
		.name = "PymssqlFailedLogin",
		.drive =
			[](E2E& t) {
				return t.python_driver("pymssql_query.py", {"1433", "fail_login", "SELECT 1"});
			},
		.python_package = "python3-pymssql",
		.exit = Exit::kAny,
		.output = {"18456"},
		.records = Records::at_least_n(1), // FreeTDS may try twice
		.phases = {"tcp_handshake", "prelogin", "login", "login_error", "close"},
		.fields = {{"/login/outcome", "failed"},
			   {"/login/error", an_object(), OnFailure::kAssert},
			   {"/login/error/number", 18456},
			   {"/login/error/class", 14},
			   // The lab server closes right after the error and FreeTDS closes as
			   // soon as it reads it: on a loaded machine either FIN can go first.
			   // compare_with_read checks the record against the capture.
			   {"/close/initiator", one_of({"server", "client"})}},
		.diagnoses = {"login_failed"},
		// a server closing after a failed login is expected: no diagnosis for it
		.no_diagnoses = {"server_closed_first"},
	},

	// pymssql, a login held 1.2 s by the server: slow_login naming the phase.
	{
		.name = "PymssqlSlowLogin",
		.drive =
			[](E2E& t) {
				return t.python_driver("pymssql_query.py", {"1433", "slow_login_1200", "SELECT 1"});
			},
		.python_package = "python3-pymssql",
		.phases = kLoginAndWork,
		.fields = {{"/login/outcome", "success"},
			   {"/login/slow", true},
			   {"/login/duration_ms", at_least(1200.0)}},
		.extra =
			[](const std::vector<json>& conns) {
				const auto& c = conns[0];
				ASSERT_TRUE(has_diag(c, "slow_login")) << c["diagnoses"].dump();
				// the server held the LOGIN7's reply: the login phase had the time
				std::string m = diag_message(c, "slow_login");
				EXPECT_NE(m.find("login_answer, the server's turn"), std::string::npos) << m;
				EXPECT_EQ(m.find("tls_handshake"), std::string::npos) << m;
				EXPECT_EQ(m.find("tcp_handshake"), std::string::npos) << m;
				double login_ms = 0;
				for (const auto& p : c["phases"])
					if (p["name"] == "login")
						login_ms = p["duration_ms"];
				EXPECT_GE(login_ms, 1100.0) << c["phases"].dump();
			},
	},

	// ---- closes ----

	// The server closes (FIN) right after the ClientHello: a failed TLS negotiation.
	{
		.name = "TsqlServerFinDuringTls",
		.needs = kTsql,
		.scenario = {.server_args = {"--fault", "fin_tls"}},
		.drive = [](E2E& t) { return t.tsql("sa", "request"); },
		.exit = Exit::kNonZero,
		.records = Records::at_least_n(1),
		.phases = {"tcp_handshake", "prelogin", "tls_handshake", "close"},
		.fields = {{"/close/kind", "server_fin_first"},
			   {"/close/first_fin", "server"},
			   {"/close/phase", "tls_handshake"},
			   {"/login/outcome", "aborted"}},
		.diagnoses = {"server_closed_during_tls", "closed_before_login"},
	},

	// The server resets the connection when the LOGIN7 arrives.
	{
		.name = "TsqlServerReset",
		.needs = kTsql,
		.drive = [](E2E& t) { return t.tsql("rst_login", "off"); },
		.exit = Exit::kNonZero,
		.records = Records::at_least_n(1),
		.phases = {"tcp_handshake", "prelogin", "login", "close"},
		.fields = {{"/close/kind", "reset"}, {"/close/reset_by", "server"}, {"/close/phase", "login"}},
		.diagnoses = {"server_reset", "closed_before_login"},
	},

	// A SYN to a port where nothing listens (traced as a SQL Server port).
	{
		.name = "SynToClosedPortIsRefused",
		.scenario = {.ports = {"1433", "1434"}},
		.drive = [](E2E& t) { return t.tcp_connect(1434); },
		.exit = Exit::kNonZero,
		.phases = {"tcp_handshake"},
		.fields = {{"/server.port", 1434}, {"/close/kind", "refused"}, {"/login/outcome", "not_started"}},
		.diagnoses = {"connection_refused"},
		.tshark = Tshark::kSkip,
	},

	// tedious follows an ENVCHANGE routing to a second lab server.
	{
		.name = "TediousRedirect",
		.needs = kTedious,
		.scenario = {.second_server = true, .ports = {"1433", "14331"}},
		// "localhost": see drivers/tedious_host.js
		.drive =
			[](E2E& t) {
				return t.tedious({"1433", "false", "redirect_localhost_14331", "", "redirect"});
			},
		// (tedious clears routingData once it has followed it: "ROUTED none")
		.output = {"DONE"},
		.records = Records::exactly(2),
		// the gateway's record and the target's
		.extra =
			[](const std::vector<json>& conns) {
				auto [gateway, target] = gateway_and_target(conns);
				ASSERT_TRUE(gateway && target);
				EXPECT_EQ((*gateway)["login"]["outcome"], "success");
				EXPECT_TRUE(has_diag(*gateway, "redirected")) << (*gateway)["diagnoses"].dump();
				ASSERT_TRUE((*gateway)["negotiated"]["redirect"].is_object())
					<< (*gateway)["negotiated"].dump();
				EXPECT_EQ((*gateway)["negotiated"]["redirect"]["server"], "localhost");
				EXPECT_EQ((*gateway)["negotiated"]["redirect"]["port"], 14331);
				EXPECT_EQ((*target)["login"]["outcome"], "success");
				EXPECT_FALSE(has_diag(*target, "redirected"));
				EXPECT_GE((*target)["work"]["requests"].get<int>(), 1);
				// the two are linked: the target says who routed it there
				EXPECT_TRUE((*gateway)["redirected_from"].is_null());
				ASSERT_TRUE((*target)["redirected_from"].is_object()) << (*target).dump();
				EXPECT_EQ((*target)["redirected_from"]["tdsbpf.connection_id"],
					  (*gateway)["tdsbpf.connection_id"]);
				EXPECT_EQ((*target)["redirected_from"]["server.port"], 1433);
			},
	},

	// The same, with tdsbpf told of port 1433 only: --follow-redirects
	// traces 14331 from the moment the gateway's routing is read, so the
	// target's connection is seen whole, SYN first.
	{
		.name = "TediousRedirectFollowed",
		.needs = kTedious,
		.scenario = {.second_server = true,
			     .ports = {"1433"},
			     .tracer_args = {"--follow-redirects"},
			     .captured_too = {"14331"}},
		.drive =
			[](E2E& t) {
				return t.tedious({"1433", "false", "redirect_localhost_14331", "", "redirect"});
			},
		.output = {"DONE"},
		.records = Records::exactly(2),
		.extra =
			[](const std::vector<json>& conns) {
				auto [gateway, target] = gateway_and_target(conns);
				ASSERT_TRUE(gateway && target);
				EXPECT_EQ((*target)["server.port"], 14331);
				EXPECT_EQ((*target)["midstream"], false) << (*target).dump();
				EXPECT_EQ((*target)["tcp"]["syn_count"], 1) << (*target)["tcp"].dump();
				EXPECT_EQ((*target)["login"]["outcome"], "success");
				EXPECT_EQ((*target)["close"]["kind"], "four_way");
				ASSERT_TRUE((*target)["redirected_from"].is_object()) << (*target).dump();
				EXPECT_EQ((*target)["redirected_from"]["tdsbpf.connection_id"],
					  (*gateway)["tdsbpf.connection_id"]);
			},
	},

	// The load client gives up on a login after 400 ms (its login timeout)
	// while the server takes 1.5 s: the LOGINACK comes after the client's FIN.
	{
		.name = "LoadClientGivesUpBeforeTheLoginAck",
		.drive = [](E2E& t) { return t.load_client_giving_up("slow_login_1500", "400"); },
		.exit = Exit::kAny,
		.output = {"timed out"},
		.phases = {"tcp_handshake", "prelogin", "login", "close"},
		.fields = {{"/close/first_fin", "client"}, {"/close/phase", "login"}},
		.diagnoses = {"late_login_ack", "slow_login"},
	},

	// A firewall resets a connection in use: the server takes the RST, whose
	// IP TTL (200) is not the client's (64). tsql's next batch then meets the
	// server's own reset: tdsbpf ended the connection at the first reset, so
	// those last packets are a second, midstream record.
	{
		.name = "TsqlResetByAFirewall",
		.needs = kTsql,
		.drive =
			[](E2E& t) {
				return t.tsql_reset_by_firewall(
					"(printf 'SELECT 1\\ngo\\n'; sleep 1.5; printf 'SELECT 2\\ngo\\n'; sleep 1; "
					"printf 'SELECT 3\\ngo\\n'; sleep 0.5; printf 'exit\\n')",
					"1");
			},
		.exit = Exit::kAny,
		.output = {"inject_reset: reset"},
		.records = Records::exactly(2),
		.fields = {{"/close/kind", "reset"}},
		.no_diagnoses = {"client_reset", "non_pooled_close"},
		.tshark = Tshark::kSkip, // tshark counts by port: the two records share one
		.extra =
			[](const std::vector<json>& conns) {
				const json* reset = nullptr;
				for (const auto& c : conns)
					if (!c["midstream"].get<bool>())
						reset = &c;
				ASSERT_NE(reset, nullptr);
				const auto& c = *reset;
				EXPECT_EQ(c["login"]["outcome"], "success");
				EXPECT_EQ(c["close"]["reset_by"], "client") << c["close"].dump();
				EXPECT_EQ(c["close"]["reset_ttl"]["ttl"], 200);
				EXPECT_EQ(c["close"]["reset_ttl"]["usual_ttl"], 64);
				EXPECT_TRUE(has_diag(c, "reset_injected")) << c["diagnoses"].dump();
				EXPECT_NE(diag_message(c, "reset_injected").find("TTL 200"), std::string::npos);
			},
	},

	// A connection left idle: the server turns keep-alives on (fault idle_<n>:
	// 1 s idle, 1 s interval), tsql runs one batch, stays idle 3.5 s and then
	// closes it, as a pool retires an idle connection.
	{
		.name = "TsqlIdleClosedAfterKeepalives",
		.needs = kTsql,
		.drive =
			[](E2E& t) {
				return t.tsql_piped("idle_30",
						    "(printf 'SELECT 1\\ngo\\n'; sleep 3.5; printf 'exit\\n')");
			},
		.phases = kLoginAndWork,
		.fields = {{"/login/outcome", "success"},
			   {"/negotiated/encryption", "off"},
			   {"/work/requests", 1},
			   {"/tcp/keepalives/server_to_client", at_least(2)},
			   {"/close/kind", "four_way"},
			   {"/close/after_keepalives", true}},
		.diagnoses = {"idle_closed_after_keepalives"},
		.no_diagnoses = {"non_pooled_close"},
	},

	// The same, but the server retires the idle connection: fault idle_3 closes
	// it (FIN) 3 s after the login, after two keep-alives.
	{
		.name = "TsqlIdleClosedByServerAfterKeepalives",
		.needs = kTsql,
		.drive =
			[](E2E& t) {
				return t.tsql_piped("idle_3",
						    "(printf 'SELECT 1\\ngo\\n'; sleep 4.5; printf 'exit\\n')");
			},
		.exit = Exit::kAny,
		.phases = kLoginAndWork,
		.fields = {{"/tcp/keepalives/server_to_client", at_least(2)},
			   {"/close/initiator", "server"},
			   {"/close/kind", "server_fin_first"},
			   {"/close/after_keepalives", true}},
		.diagnoses = {"idle_closed_after_keepalives"},
	},
};
#pragma GCC diagnostic pop

// ---- the steps every case goes through ---------------------------------------------

class Cases : public E2E, public ::testing::WithParamInterface<Case> {
protected:
	// One field of one record; false when a kAssert field failed.
	static bool check(const json& c, const Field& f)
	{
		json::json_pointer p(f.pointer);
		json v = c.contains(p) ? c.at(p) : json();
		json parent = c.contains(p.parent_pointer()) ? c.at(p.parent_pointer()) : json();
		bool ok = f.is.test(v);
		auto msg = [&] {
			return f.pointer + " is " + v.dump() + ", expected " + f.is.what + "\n in " + parent.dump();
		};
		if (f.on_failure == OnFailure::kAssert) {
			[&] { ASSERT_TRUE(ok) << msg(); }();
			return ok;
		}
		EXPECT_TRUE(ok) << msg();
		return true;
	}
};

TEST_P(Cases, Run)
{
	const Case& k = GetParam();
	if (k.needs & kTsql) {
		TDSBPF_REQUIRE(have("tsql"), "FreeTDS tsql not installed (Debian package freetds-bin)");
	}
	if (k.needs & kTedious) {
		TDSBPF_REQUIRE(have("node") && tedious_installed(),
			       "node or tedious missing (npm install into " TDSBPF_LAB_NODE_MODULES ")");
	}
	if (k.needs & kGssNtlm) {
		TDSBPF_REQUIRE(std::filesystem::exists(kGssNtlmPlugin),
			       "GSS-API NTLM plugin missing (Debian package gss-ntlmssp)");
	}
	if (k.needs & kOdbcDriver) {
		TDSBPF_REQUIRE(std::filesystem::exists(kOdbcDriverPath),
			       "FreeTDS ODBC driver missing (Debian package tdsodbc)");
	}

	ASSERT_NO_FATAL_FAILURE(start(k.scenario));
	auto r = k.drive(*this);
	if (!k.python_package.empty()) {
		TDSBPF_REQUIRE(r.exit_code != 77, k.python_package + " missing: " + r.output);
	}
	if (k.exit == Exit::kZero) {
		EXPECT_EQ(r.exit_code, 0) << r.output;
	} else if (k.exit == Exit::kNonZero) {
		EXPECT_NE(r.exit_code, 0) << r.output;
	}
	for (const auto& text : k.output)
		EXPECT_NE(r.output.find(text), std::string::npos) << "driver output lacks \"" << text << "\":\n"
								  << r.output;

	auto conns = stop();
	if (k.records.at_least) {
		ASSERT_GE(conns.size(), k.records.n) << logs() << r.output;
	} else {
		ASSERT_EQ(conns.size(), k.records.n) << logs() << r.output;
	}

	for (const auto& c : conns) {
		SCOPED_TRACE("record of client port " + c.value("client.port", json()).dump());
		if (!k.phases.empty())
			expect_phases_in_order(c, k.phases);
		for (const auto& f : k.fields)
			if (!check(c, f))
				return;
		for (const auto& d : k.diagnoses)
			EXPECT_TRUE(has_diag(c, d)) << d << " missing: " << c["diagnoses"].dump();
		for (const auto& d : k.no_diagnoses)
			EXPECT_FALSE(has_diag(c, d)) << d << " not expected: " << c["diagnoses"].dump();
	}
	if (k.extra) {
		bool had_fatal = HasFatalFailure();
		k.extra(conns);
		if (!had_fatal && HasFatalFailure())
			return;
	}

	if (k.tshark != Tshark::kSkip)
		compare_with_tshark(conns, k.tshark == Tshark::kClear);
	compare_with_read(conns, k.scenario.ports, k.scenario.tracer_args);
}

INSTANTIATE_TEST_SUITE_P(E2E, Cases, ::testing::ValuesIn(kCases),
			 [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

} // namespace
