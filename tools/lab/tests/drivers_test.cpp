// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Real drivers, the load client and raw sockets against a lab server child
// process on 127.0.0.1. Each test starts its own server on a kernel-chosen
// port and kills it at the end, also when the test fails.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <thread>

#include "lab_server.h"
#include "smp.h"
#include "tds_client.h"
#include "tds_wire.h"

namespace labtest {
namespace {

const char* kOdbcDriver = "/usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so";

bool have_program(const std::string& name)
{
	return run_command({"sh", "-c", "command -v " + name}, {}, {}, std::chrono::seconds(5)).exit_code == 0;
}

// ---- FreeTDS tsql ----

// Runs tsql against the server with a generated freetds.conf.
CommandResult run_tsql(const LabServer& server, const TempDir& dir, const std::string& user, const std::string& sql,
		       const std::string& encryption)
{
	std::string conf = dir.file("freetds.conf");
	{
		std::ofstream f(conf);
		f << "[lab]\n\thost = 127.0.0.1\n\tport = " << server.port()
		  << "\n\ttds version = 7.4\n\tencryption = " << encryption << "\n";
	}
	return run_command({"tsql", "-S", "lab", "-U", user, "-P", "lab"},
			   {{"FREETDSCONF", conf}, {"FREETDS", conf}, {"TDSDUMP", ""}}, sql + "\ngo\nexit\n",
			   std::chrono::seconds(15));
}

#define REQUIRE_TSQL()             \
	if (!have_program("tsql")) \
	LAB_DRIVER_MISSING("FreeTDS tsql not installed (Debian package freetds-bin)")

TEST(LabDrivers, TsqlLoginOnlyEncryption)
{
	REQUIRE_TSQL();
	LabServer server({"--encryption", "off"});
	ASSERT_TRUE(server.started()) << server.log();
	TempDir dir;
	auto r = run_tsql(server, dir, "sa", "SELECT n FROM rows(1000)", "request");
	ASSERT_FALSE(r.timed_out) << r.output;
	EXPECT_NE(r.output.find("(1000 rows affected)"), std::string::npos) << r.output;
	EXPECT_NE(r.output.find("\n1000\n"), std::string::npos) << r.output;
	EXPECT_TRUE(server.wait_for_log("reply ENCRYPT_OFF (login-only TLS)"));
	EXPECT_TRUE(server.wait_for_log("TLS established"));
}

TEST(LabDrivers, TsqlFullEncryptionRequired)
{
	REQUIRE_TSQL();
	LabServer server({"--encryption", "required"});
	ASSERT_TRUE(server.started()) << server.log();
	TempDir dir;
	auto r = run_tsql(server, dir, "sa", "SELECT 1", "require");
	EXPECT_NE(r.output.find("(1 row affected)"), std::string::npos) << r.output;
	EXPECT_TRUE(server.wait_for_log("reply ENCRYPT_REQ"));
	EXPECT_TRUE(server.wait_for_log("login ok for 'sa', encrypted"));
}

TEST(LabDrivers, TsqlNoTlsWhenServerDoesNotSupportIt)
{
	REQUIRE_TSQL();
	LabServer server({"--encryption", "not-supported"});
	ASSERT_TRUE(server.started()) << server.log();
	TempDir dir;
	auto r = run_tsql(server, dir, "sa", "SELECT @@VERSION", "request");
	EXPECT_NE(r.output.find("tdsbpf lab server"), std::string::npos) << r.output;
	EXPECT_TRUE(server.wait_for_log("reply ENCRYPT_NOT_SUP"));
	EXPECT_EQ(server.log().find("TLS established"), std::string::npos);
}

TEST(LabDrivers, TsqlNtlmDomainUser)
{
	REQUIRE_TSQL();
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	TempDir dir;
	auto r = run_tsql(server, dir, "CORP\\joe", "SELECT SUSER_NAME()", "request");
	EXPECT_NE(r.output.find("CORP\\joe"), std::string::npos) << r.output;
	EXPECT_TRUE(server.wait_for_log("NTLM NEGOTIATE -> CHALLENGE"));
	EXPECT_TRUE(server.wait_for_log("NTLM AUTHENTICATE: 'CORP\\joe'"));
}

TEST(LabDrivers, TsqlFailedLogin)
{
	REQUIRE_TSQL();
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	TempDir dir;
	auto r = run_tsql(server, dir, "fail_login", "SELECT 1", "request");
	EXPECT_NE(r.output.find("Login failed for user 'fail_login'"), std::string::npos) << r.output;
	EXPECT_EQ(r.output.find("(1 row affected)"), std::string::npos) << r.output;
}

TEST(LabDrivers, TsqlFailedNtlmLogin)
{
	REQUIRE_TSQL();
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	TempDir dir;
	auto r = run_tsql(server, dir, "CORP\\fail_login", "SELECT 1", "request");
	EXPECT_NE(r.output.find("Login failed for user 'CORP\\fail_login'"), std::string::npos) << r.output;
}

// ---- FreeTDS ODBC (MARS) ----

TEST(LabDrivers, FreetdsOdbcMarsTwoSessions)
{
	if (!std::filesystem::exists(kOdbcDriver))
		LAB_DRIVER_MISSING("FreeTDS ODBC driver missing (Debian package tdsodbc)");
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	auto r = run_command(
		{"/usr/bin/python3", drivers_dir() + "/pyodbc_mars.py", std::to_string(server.port()), kOdbcDriver}, {},
		{}, std::chrono::seconds(20));
	if (r.exit_code == 77)
		LAB_DRIVER_MISSING("python3-pyodbc missing: " + r.output);
	EXPECT_EQ(r.exit_code, 0) << r.output;
	EXPECT_NE(r.output.find("FIRST 1"), std::string::npos) << r.output;
	EXPECT_NE(r.output.find("OTHER 42"), std::string::npos) << r.output;
	EXPECT_NE(r.output.find("REST 2999"), std::string::npos) << r.output;
	EXPECT_NE(r.output.find("PARAMS (5, 'txt')"), std::string::npos) << r.output;
	EXPECT_TRUE(server.wait_for_log("MARS: SMP starts"));
	std::string log = server.log();
	EXPECT_NE(log.find("<- SMP:SYN sid=0"), std::string::npos);
	EXPECT_NE(log.find("<- SMP:SYN sid=1"), std::string::npos);
	EXPECT_NE(log.find("<- SMP:ACK"), std::string::npos); // 3000 rows need more than one window
}

// ---- pymssql ----

CommandResult run_pymssql(const LabServer& server, const std::string& user, const std::string& sql,
			  const std::map<std::string, std::string>& env = {})
{
	return run_command(
		{"/usr/bin/python3", drivers_dir() + "/pymssql_query.py", std::to_string(server.port()), user, sql},
		env, {}, std::chrono::seconds(20));
}

TEST(LabDrivers, PymssqlQuery)
{
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	auto r = run_pymssql(server, "sa", "SELECT 'hello' AS greeting, 7 AS seven");
	if (r.exit_code == 77)
		LAB_DRIVER_MISSING("python3-pymssql missing: " + r.output);
	EXPECT_EQ(r.exit_code, 0) << r.output;
	EXPECT_NE(r.output.find("ROW hello|7"), std::string::npos) << r.output;
	EXPECT_NE(r.output.find("DONE 1"), std::string::npos) << r.output;
	auto rows = run_pymssql(server, "sa", "SELECT n FROM rows(500)");
	EXPECT_NE(rows.output.find("ROW 500\nDONE 500"), std::string::npos) << rows.output;
}

TEST(LabDrivers, PymssqlFullEncryption)
{
	LabServer server({"--encryption", "required"});
	ASSERT_TRUE(server.started()) << server.log();
	// pymssql connects by address, so FreeTDS applies the [global] section.
	TempDir dir;
	std::string conf = dir.file("freetds.conf");
	std::ofstream(conf) << "[global]\n\tencryption = require\n\ttds version = 7.4\n";
	auto r = run_pymssql(server, "sa", "SELECT n FROM rows(3)", {{"FREETDSCONF", conf}});
	if (r.exit_code == 77)
		LAB_DRIVER_MISSING("python3-pymssql missing: " + r.output);
	EXPECT_EQ(r.exit_code, 0) << r.output;
	EXPECT_NE(r.output.find("ROW 3\nDONE 3"), std::string::npos) << r.output;
	EXPECT_TRUE(server.wait_for_log("login ok for 'sa', encrypted"));
}

TEST(LabDrivers, PymssqlFailedLogin)
{
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	auto r = run_pymssql(server, "fail_login", "SELECT 1");
	if (r.exit_code == 77)
		LAB_DRIVER_MISSING("python3-pymssql missing: " + r.output);
	EXPECT_EQ(r.exit_code, 1) << r.output;
	EXPECT_NE(r.output.find("ERROR 18456"), std::string::npos) << r.output;
	EXPECT_NE(r.output.find("Login failed for user 'fail_login'"), std::string::npos) << r.output;
}

// ---- tedious ----

CommandResult run_tedious(const LabServer& server, const std::vector<std::string>& args,
			  const std::map<std::string, std::string>& extra_env = {})
{
	std::vector<std::string> argv = {"node", drivers_dir() + "/tedious_query.js", std::to_string(server.port())};
	argv.insert(argv.end(), args.begin(), args.end());
	std::map<std::string, std::string> env = {{"NODE_PATH", node_modules_dir()}};
	env.insert(extra_env.begin(), extra_env.end());
	return run_command(argv, env, {}, std::chrono::seconds(25));
}

#define REQUIRE_TEDIOUS()                                                                                           \
	do {                                                                                                        \
		if (!have_program("node"))                                                                          \
			LAB_DRIVER_MISSING("node not installed (Debian package nodejs)");                           \
		if (!std::filesystem::exists(node_modules_dir() + "/tedious/package.json"))                         \
			LAB_DRIVER_MISSING("tedious not installed in " + node_modules_dir() +                       \
					   " (ctest runs lab.setup.npm_tedious first; it needs the npm registry)"); \
	} while (0)

TEST(LabDrivers, TediousPlain)
{
	REQUIRE_TEDIOUS();
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	auto r = run_tedious(server, {"false", "sa"});
	EXPECT_EQ(r.exit_code, 0) << r.output;
	EXPECT_NE(r.output.find("ROWS 25"), std::string::npos) << r.output;
	EXPECT_NE(r.output.find("RPC 7"), std::string::npos) << r.output; // sp_executesql with @x = 7
	EXPECT_TRUE(server.wait_for_log("rpc: sp_executesql"));
	EXPECT_TRUE(server.wait_for_log("client ENCRYPT_NOT_SUP, reply ENCRYPT_NOT_SUP"));
}

TEST(LabDrivers, TediousEncrypted)
{
	REQUIRE_TEDIOUS();
	LabServer server({"--encryption", "on"});
	ASSERT_TRUE(server.started()) << server.log();
	auto r = run_tedious(server, {"true", "sa"});
	EXPECT_EQ(r.exit_code, 0) << r.output;
	EXPECT_NE(r.output.find("ROWS 25"), std::string::npos) << r.output;
	EXPECT_TRUE(server.wait_for_log("login ok for 'sa', encrypted"));
}

TEST(LabDrivers, TediousStrictTds8)
{
	REQUIRE_TEDIOUS();
	LabServer server({"--encryption", "strict"});
	ASSERT_TRUE(server.started()) << server.log();
	auto r = run_tedious(server, {"strict", "sa"}, {{"LAB_CA", server.cert_file()}});
	EXPECT_EQ(r.exit_code, 0) << r.output;
	EXPECT_NE(r.output.find("RPC 7"), std::string::npos) << r.output;
	EXPECT_TRUE(server.wait_for_log("ALPN 'tds/8.0'"));
}

TEST(LabDrivers, TediousNtlmWithDomain)
{
	REQUIRE_TEDIOUS();
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	auto r = run_tedious(server, {"true", "joe", "CORP"});
	EXPECT_EQ(r.exit_code, 0) << r.output;
	EXPECT_NE(r.output.find("ROWS 25"), std::string::npos) << r.output;
	EXPECT_TRUE(server.wait_for_log("NTLM AUTHENTICATE: 'CORP\\joe'"));
}

TEST(LabDrivers, TediousFailedLogin)
{
	REQUIRE_TEDIOUS();
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	auto r = run_tedious(server, {"false", "fail_login"});
	EXPECT_EQ(r.exit_code, 1) << r.output;
	EXPECT_NE(r.output.find("ERROR ELOGIN Login failed for user 'fail_login'"), std::string::npos) << r.output;
}

TEST(LabDrivers, TediousAttentionCancelsWaitfor)
{
	REQUIRE_TEDIOUS();
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	auto r = run_tedious(server, {"false", "sa", "", "cancel"});
	EXPECT_EQ(r.exit_code, 0) << r.output;
	EXPECT_NE(r.output.find("CANCELLED"), std::string::npos) << r.output;
	EXPECT_LT(r.seconds, 8.0);
	EXPECT_TRUE(server.wait_for_log("attention: request cancelled"));
}

TEST(LabDrivers, TediousResetConnection)
{
	REQUIRE_TEDIOUS();
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	auto r = run_tedious(server, {"false", "sa", "", "reset"});
	EXPECT_EQ(r.exit_code, 0) << r.output;
	EXPECT_NE(r.output.find("DB master"), std::string::npos) << r.output;
	EXPECT_TRUE(server.wait_for_log("RESETCONNECTION honoured"));
}

TEST(LabDrivers, TediousFollowsRedirect)
{
	REQUIRE_TEDIOUS();
	LabServer target;
	ASSERT_TRUE(target.started()) << target.log();
	LabServer gateway;
	ASSERT_TRUE(gateway.started()) << gateway.log();
	// The user name carries the fault; the target sees itself as the
	// destination and logs the client in normally.
	std::string user = "redirect_127.0.0.1_" + std::to_string(target.port());
	auto r = run_tedious(gateway, {"false", user});
	EXPECT_EQ(r.exit_code, 0) << r.output;
	EXPECT_NE(r.output.find("ROWS 25"), std::string::npos) << r.output;
	EXPECT_TRUE(gateway.wait_for_log("routing the client to 127.0.0.1:" + std::to_string(target.port())));
	EXPECT_TRUE(target.wait_for_log("login ok for '" + user + "'"));
}

// ---- load client ----

std::string run_loadclient_json(const LabServer& server, std::vector<std::string> args)
{
	std::vector<std::string> argv = {loadclient_path(), "--port", std::to_string(server.port()), "--json"};
	if (std::find(args.begin(), args.end(), "--timeout-ms") == args.end())
		args.insert(args.end(), {"--timeout-ms", "5000"});
	argv.insert(argv.end(), args.begin(), args.end());
	auto r = run_command(argv, {}, {}, std::chrono::seconds(30));
	return r.output;
}

long json_number(const std::string& json, const std::string& key)
{
	std::smatch m;
	if (std::regex_search(json, m, std::regex("\"" + key + "\":([0-9.]+)")))
		return std::lround(std::stod(m[1]));
	return -1;
}

TEST(LabLoadClient, AllModesCompleteTheirRequests)
{
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	const std::vector<std::vector<std::string>> modes = {
		{"--encryption", "not-supported"},
		{"--encryption", "off"},
		{"--encryption", "on", "--mars", "--query", "SELECT n FROM rows(300)"},
		{"--mars", "--mars-sessions", "3", "--requests-per-connection", "7"},
		{"--encryption", "strict"},
		{"--ntlm-domain", "CORP", "--user", "joe"},
		{"--requests-per-connection", "1"},
	};
	for (const auto& mode : modes) {
		std::vector<std::string> args = {"--connections", "4", "--count", "40"};
		args.insert(args.end(), mode.begin(), mode.end());
		std::string out = run_loadclient_json(server, args);
		EXPECT_EQ(json_number(out, "requests_ok"), 40) << ::testing::PrintToString(mode) << "\n" << out;
		EXPECT_EQ(json_number(out, "requests_failed"), 0) << out;
		EXPECT_EQ(json_number(out, "connections_failed"), 0) << out;
	}
	EXPECT_NE(server.log().find("MARS: SMP starts"), std::string::npos);
	EXPECT_NE(server.log().find("<- SMP:SYN sid=2"), std::string::npos);
	EXPECT_NE(server.log().find("SMP:FIN sid=2 answered"), std::string::npos);
}

// A thousand connections open at once, each doing a request now and then:
// the single-threaded server keeps them all.
TEST(LabLoadClient, ThousandConcurrentConnections)
{
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	std::string out = run_loadclient_json(server, {"--connections", "1000", "--duration", "3", "--rate", "1000",
						       "--encryption", "not-supported", "--timeout-ms", "15000"});
	EXPECT_EQ(json_number(out, "connections_ok"), 1000) << out;
	EXPECT_EQ(json_number(out, "connections_failed"), 0) << out;
	EXPECT_EQ(json_number(out, "requests_failed"), 0) << out;
	EXPECT_GT(json_number(out, "requests_ok"), 1000) << out;
}

// ---- faults ----

TEST(LabFaults, SlowLoginByName)
{
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	std::string out =
		run_loadclient_json(server, {"--count", "1", "--connections", "1", "--user", "slow_login_700"});
	EXPECT_EQ(json_number(out, "requests_ok"), 1) << out;
	EXPECT_GE(json_number(out, "login_p50_ms"), 700) << out;
	EXPECT_TRUE(server.wait_for_log("fault slow_login: holding the reply 700 ms"));
}

TEST(LabFaults, SlowTlsByFlag)
{
	LabServer server({"--fault", "slow_tls_600"});
	ASSERT_TRUE(server.started()) << server.log();
	std::string out = run_loadclient_json(server, {"--count", "1", "--connections", "1", "--encryption", "on"});
	EXPECT_EQ(json_number(out, "requests_ok"), 1) << out;
	EXPECT_GE(json_number(out, "login_p50_ms"), 600) << out;
}

TEST(LabFaults, ResetAtLoginByName)
{
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	std::string out = run_loadclient_json(server, {"--count", "1", "--connections", "1", "--user", "rst_login"});
	EXPECT_EQ(json_number(out, "connections_failed"), 1) << out;
	EXPECT_NE(out.find("reset"), std::string::npos) << out; // ECONNRESET
	EXPECT_TRUE(server.wait_for_log("fault rst_login: resetting"));
}

TEST(LabFaults, ServerFinDuringTlsHandshake)
{
	LabServer server({"--fault", "fin_tls"});
	ASSERT_TRUE(server.started()) << server.log();
	std::string out = run_loadclient_json(server, {"--count", "1", "--connections", "1", "--encryption", "on"});
	EXPECT_EQ(json_number(out, "connections_failed"), 1) << out;
	EXPECT_NE(out.find("server closed the connection"), std::string::npos) << out;
	EXPECT_TRUE(server.wait_for_log("fault fin_tls: closing with FIN"));
	if (have_program("tsql")) {
		TempDir dir;
		auto r = run_tsql(server, dir, "sa", "SELECT 1", "require");
		EXPECT_EQ(r.output.find("(1 row affected)"), std::string::npos) << r.output;
	}
}

TEST(LabFaults, LoginFailureByFlagAppliesToEveryone)
{
	LabServer server({"--fault", "fail_login"});
	ASSERT_TRUE(server.started()) << server.log();
	std::string out = run_loadclient_json(server, {"--count", "2", "--connections", "1", "--user", "alice"});
	EXPECT_EQ(json_number(out, "connections_failed"), 2) << out;
	EXPECT_NE(out.find("error 18456"), std::string::npos) << out;
}

// Every phase of the reset/FIN/slow families, through --fault, seen by the
// load client.
TEST(LabFaults, EveryPhaseByFlag)
{
	struct Case {
		std::string fault;
		std::vector<std::string> client_args;
		std::string expect_in_output; // the client's first error, or empty
		std::string metric;	      // a latency that must reach min_ms
		long min_ms;
	};
	const std::vector<Case> cases = {
		{"rst_prelogin", {}, "reset", "", 0},
		{"fin_prelogin", {}, "server closed the connection", "", 0},
		{"rst_tls", {"--encryption", "on"}, "reset", "", 0},
		{"rst_login", {}, "reset", "", 0},
		{"fin_login", {}, "server closed the connection", "", 0},
		{"rst_auth", {"--ntlm-domain", "CORP"}, "reset", "", 0},
		{"fin_auth", {}, "server closed the connection", "", 0},
		{"rst_query", {}, "reset", "", 0},
		{"fin_query", {}, "server closed the connection", "", 0},
		{"slow_prelogin_300", {}, "", "login_p50_ms", 300},
		{"slow_auth_300", {"--ntlm-domain", "CORP"}, "", "login_p50_ms", 300},
		{"slow_query_300", {}, "", "request_p50_ms", 300},
	};
	for (const auto& c : cases) {
		LabServer server({"--fault", c.fault});
		ASSERT_TRUE(server.started()) << server.log();
		std::vector<std::string> args = {"--count", "1", "--connections", "1"};
		args.insert(args.end(), c.client_args.begin(), c.client_args.end());
		std::string out = run_loadclient_json(server, args);
		if (!c.expect_in_output.empty()) {
			EXPECT_NE(out.find(c.expect_in_output), std::string::npos) << c.fault << ": " << out;
			EXPECT_EQ(json_number(out, "requests_ok"), 0) << c.fault << ": " << out;
		} else {
			EXPECT_EQ(json_number(out, "requests_ok"), 1) << c.fault << ": " << out;
			EXPECT_GE(json_number(out, c.metric), c.min_ms) << c.fault << ": " << out;
		}
		EXPECT_NE(server.log().find("fault " + c.fault.substr(0, c.fault.find('_', c.fault.find('_') + 1))),
			  std::string::npos)
			<< c.fault << "\n"
			<< server.log();
	}
}

TEST(LabFaults, IdleConnectionKeptAliveThenClosed)
{
	LabServer server({"--keepalive-idle", "1", "--keepalive-interval", "1"});
	ASSERT_TRUE(server.started()) << server.log();
	tdslab::ClientOptions opt;
	opt.port = static_cast<std::uint16_t>(server.port());
	opt.user = "idle_2";
	opt.encryption = tdslab::ClientEncryption::not_supported;
	tdslab::TdsClient client(opt);
	client.connect_and_login();
	EXPECT_TRUE(server.wait_for_log("keep-alives on, closing after 2 s"));
	if (have_program("ss")) {
		// The server's socket carries a keep-alive timer once its login reply
		// is acknowledged (before that the retransmit timer shows).
		CommandResult ss;
		for (int i = 0; i < 20; ++i) {
			ss = run_command({"ss", "-tnoH", "state", "established", "sport", "=",
					  ":" + std::to_string(server.port())},
					 {}, {}, std::chrono::seconds(5));
			if (ss.output.find("keepalive") != std::string::npos)
				break;
			std::this_thread::sleep_for(std::chrono::milliseconds(50));
		}
		EXPECT_NE(ss.output.find("keepalive"), std::string::npos) << ss.output;
	}
	std::this_thread::sleep_for(std::chrono::milliseconds(2600));
	EXPECT_THROW(client.execute("SELECT 1"), std::exception);
	EXPECT_TRUE(server.wait_for_log("closing the idle connection"));
}

// ---- the server process itself ----

int connect_loopback(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	sockaddr_in a{};
	a.sin_family = AF_INET;
	a.sin_port = htons(static_cast<std::uint16_t>(port));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

// Sends bytes, then waits (bounded) for the server to close the connection.
bool server_closes_after(int port, const std::vector<std::uint8_t>& bytes)
{
	int fd = connect_loopback(port);
	if (fd < 0)
		return false;
	ssize_t sent = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
	(void)sent;
	bool closed = false;
	char buf[1024];
	for (int i = 0; i < 50 && !closed; ++i) {
		pollfd p{fd, POLLIN, 0};
		if (poll(&p, 1, 100) == 1) {
			ssize_t n = recv(fd, buf, sizeof buf, 0);
			if (n <= 0)
				closed = true;
		}
	}
	close(fd);
	return closed;
}

TEST(LabServerProcess, SurvivesGarbageAndKeepsServing)
{
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	EXPECT_TRUE(server_closes_after(server.port(), {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '\r', '\n'}));
	EXPECT_TRUE(server_closes_after(server.port(), {0x12, 0x01, 0x00, 0x03, 0, 0, 0, 0})); // length < header
	EXPECT_TRUE(
		server_closes_after(server.port(), {0x12, 0x01, 0x00, 0x0D, 0, 0, 0, 0, 0x00, 0xFF, 0xFF, 0x00, 0x06}));
	std::vector<std::uint8_t> lying_login = {0x10, 0x01, 0x00, 0x10, 0, 0, 0, 0,
						 0xFF, 0xFF, 0xFF, 0x7F, 0, 0, 0, 0};
	EXPECT_TRUE(server_closes_after(server.port(), lying_login)); // LOGIN7 before PRELOGIN, absurd length
	// Truncated PRELOGIN, then the client goes away.
	int fd = connect_loopback(server.port());
	std::vector<std::uint8_t> half = {0x12, 0x01, 0x00, 0x40, 0, 0, 0, 0, 0x00};
	ASSERT_EQ(send(fd, half.data(), half.size(), MSG_NOSIGNAL), static_cast<ssize_t>(half.size()));
	close(fd);
	EXPECT_TRUE(server.wait_for_log("malformed input"));
	// Still serving.
	std::string out = run_loadclient_json(server, {"--count", "5", "--connections", "1"});
	EXPECT_EQ(json_number(out, "requests_ok"), 5) << out;
}

// Valid conversations, mutated at random (bytes flipped, cut, extended):
// the server closes the bad ones and keeps serving.
TEST(LabServerProcess, SurvivesMutatedConversations)
{
	using namespace tdslab;
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	std::vector<PreloginOption> pre = {{prelogin_token::version, {1, 0, 0, 0, 0, 0}},
					   {prelogin_token::encryption, {2}},
					   {prelogin_token::mars, {1}}};
	Login7Request login;
	login.user_name = "sa";
	Bytes prelogin = packetize(18, encode_prelogin(pre), 4096);
	Bytes logged_in = prelogin;
	Bytes l7 = packetize(16, encode_login7(login), 4096);
	logged_in.insert(logged_in.end(), l7.begin(), l7.end());
	Bytes batch = logged_in;
	Bytes b = packetize(1, encode_sql_batch("SELECT n FROM rows(10); WAITFOR DELAY '00:00:00.010'"), 4096);
	batch.insert(batch.end(), b.begin(), b.end());
	Bytes mars = logged_in;
	SmpSession smp(0);
	Bytes syn = smp.make_syn();
	smp.queue_packet(b);
	Bytes data = smp.drain();
	mars.insert(mars.end(), syn.begin(), syn.end());
	mars.insert(mars.end(), data.begin(), data.end());
	const std::vector<Bytes> seeds = {prelogin, logged_in, batch, mars};

	std::mt19937 rng(2024);
	for (int i = 0; i < 400; ++i) {
		Bytes m = seeds[rng() % seeds.size()];
		int edits = static_cast<int>(rng() % 5);
		for (int e = 0; e < edits; ++e) {
			switch (rng() % 3) {
			case 0:
				if (!m.empty())
					m[rng() % m.size()] = static_cast<std::uint8_t>(rng());
				break;
			case 1: m.resize(rng() % (m.size() + 1)); break;
			default:
				for (int k = static_cast<int>(rng() % 40); k > 0; --k)
					m.push_back(static_cast<std::uint8_t>(rng()));
			}
		}
		int fd = connect_loopback(server.port());
		ASSERT_GE(fd, 0) << "server stopped accepting after " << i << " mutated conversations";
		ssize_t sent = send(fd, m.data(), m.size(), MSG_NOSIGNAL);
		(void)sent;
		char buf[4096];
		pollfd p{fd, POLLIN, 0};
		if (poll(&p, 1, 5) == 1) {
			ssize_t got = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
			(void)got;
		}
		close(fd);
	}
	std::string out = run_loadclient_json(server, {"--count", "5", "--connections", "1"});
	EXPECT_EQ(json_number(out, "requests_ok"), 5) << out;
}

TEST(LabServerProcess, SigtermStopsCleanly)
{
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	EXPECT_EQ(server.stop(), 0);
	EXPECT_NE(server.log().find("stopping"), std::string::npos) << server.log();
}

TEST(LabServerProcess, BusyPortAndBadFlagsAreReported)
{
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	auto busy = run_command({labserver_path(), "--listen", "127.0.0.1", "--port", std::to_string(server.port())},
				{}, {}, std::chrono::seconds(10));
	EXPECT_EQ(busy.exit_code, 1) << busy.output;
	EXPECT_NE(busy.output.find("already in use"), std::string::npos) << busy.output;

	auto bad_mode = run_command({labserver_path(), "--encryption", "sometimes"}, {}, {}, std::chrono::seconds(10));
	EXPECT_EQ(bad_mode.exit_code, 2) << bad_mode.output;
	EXPECT_NE(bad_mode.output.find("not one of"), std::string::npos) << bad_mode.output;
	auto bad_fault = run_command({labserver_path(), "--fault", "slow_lunch_10"}, {}, {}, std::chrono::seconds(10));
	EXPECT_EQ(bad_fault.exit_code, 2) << bad_fault.output;
	EXPECT_NE(bad_fault.output.find("unknown phase"), std::string::npos) << bad_fault.output;
	auto bad_port = run_command({labserver_path(), "--port", "70000"}, {}, {}, std::chrono::seconds(10));
	EXPECT_NE(bad_port.exit_code, 0) << bad_port.output;
}

} // namespace
} // namespace labtest
