// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Clients of TDS 7.0 and 7.1 against the lab server: FreeTDS tsql with
// `tds version = 7.0` (a LOGIN7 with no PRELOGIN before it) and 7.1
// (PRELOGIN, then login-only TLS or none), pymssql and FreeTDS ODBC at those
// versions, tedious speaking 7.1, the queries drivers send right after login,
// and tshark's reading of a capture of each old exchange.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "lab_server.h"

namespace labtest {
namespace {

using namespace std::chrono_literals;

bool have_program(const std::string& name)
{
	return run_command({"sh", "-c", "command -v " + name}, {}, {}, 5s).exit_code == 0;
}

std::string slurp(const std::string& path)
{
	std::ifstream f(path);
	std::stringstream ss;
	ss << f.rdbuf();
	return ss.str();
}

#define REQUIRE_TSQL()             \
	if (!have_program("tsql")) \
	LAB_DRIVER_MISSING("FreeTDS tsql not installed (Debian package freetds-bin)")

// tsql at a given TDS version; TDSDUMP goes to `dump` when given (FreeTDS
// logs there what it made of the LOGINACK).
CommandResult run_tsql(const LabServer& server, const TempDir& dir, const std::string& version,
		       const std::string& encryption, const std::string& script, const std::string& dump = {})
{
	std::string conf = dir.file("freetds.conf");
	std::ofstream(conf) << "[lab]\n\thost = 127.0.0.1\n\tport = " << server.port()
			    << "\n\ttds version = " << version << "\n\tencryption = " << encryption << "\n";
	return run_command({"tsql", "-S", "lab", "-U", "sa", "-P", "lab"},
			   {{"FREETDSCONF", conf}, {"FREETDS", conf}, {"TDSDUMP", dump}}, script + "exit\n", 15s);
}

// TDS 7.0: the LOGIN7 is the first message, the server speaks 7.0 back
// (LOGINACK 0x07000000, which FreeTDS names "7.0"), and tsql prints the rows
// of every result, a bigint too (numeric(19,0) for this client).
TEST(LabOldTds, Tsql70LogsInWithoutPrelogin)
{
	REQUIRE_TSQL();
	LabServer server({"--encryption", "off"});
	ASSERT_TRUE(server.started()) << server.log();
	TempDir dir;
	auto r = run_tsql(server, dir, "7.0", "request",
			  "SELECT n FROM rows(3)\ngo\nSELECT 'lab' AS name, 5000000000 AS big, @@SPID AS spid\ngo\n",
			  dir.file("dump"));
	ASSERT_FALSE(r.timed_out) << r.output;
	EXPECT_NE(r.output.find("n\n1\n2\n3\n(3 rows affected)"), std::string::npos) << r.output;
	EXPECT_NE(r.output.find("name\tbig\tspid\nlab\t5000000000\t51\n(1 row affected)"), std::string::npos)
		<< r.output;
	EXPECT_NE(slurp(dir.file("dump")).find("server reports TDS version 7.0.0.0"), std::string::npos)
		<< slurp(dir.file("dump"));
	EXPECT_TRUE(server.wait_for_log("LOGIN7 without PRELOGIN: nothing negotiated, no TLS"));
	EXPECT_TRUE(server.wait_for_log("tds 0x70000000"));
	EXPECT_TRUE(server.wait_for_log("login ok for 'sa'"));
	EXPECT_EQ(server.log().find("PRELOGIN: client"), std::string::npos) << server.log();
	EXPECT_EQ(server.log().find("TLS established"), std::string::npos) << server.log();
}

// TDS 7.1: FreeTDS sends a PRELOGIN and takes login-only TLS; the LOGINACK
// (0x71000001) and everything after it come in clear.
TEST(LabOldTds, Tsql71LoginOnlyTls)
{
	REQUIRE_TSQL();
	LabServer server({"--encryption", "off"});
	ASSERT_TRUE(server.started()) << server.log();
	TempDir dir;
	auto r = run_tsql(server, dir, "7.1", "request", "SELECT n FROM rows(4)\ngo\nSELECT N'lab71' AS word\ngo\n",
			  dir.file("dump"));
	ASSERT_FALSE(r.timed_out) << r.output;
	EXPECT_NE(r.output.find("n\n1\n2\n3\n4\n(4 rows affected)"), std::string::npos) << r.output;
	EXPECT_NE(r.output.find("word\nlab71\n(1 row affected)"), std::string::npos) << r.output;
	EXPECT_NE(slurp(dir.file("dump")).find("server reports TDS version 71.0.0.1"), std::string::npos);
	EXPECT_TRUE(server.wait_for_log("reply ENCRYPT_OFF (login-only TLS)"));
	EXPECT_TRUE(server.wait_for_log("TLS established"));
	EXPECT_TRUE(server.wait_for_log("tds 0x71000001"));
	EXPECT_TRUE(server.wait_for_log("batch: SELECT n FROM rows(4)")); // in clear after the login
}

// A server that insists on encryption cannot have it with a client that
// negotiates nothing: it closes, and tsql reports the connection lost.
TEST(LabOldTds, Tsql70RefusedWhenEncryptionRequired)
{
	REQUIRE_TSQL();
	LabServer server({"--encryption", "required"});
	ASSERT_TRUE(server.started()) << server.log();
	TempDir dir;
	auto r = run_tsql(server, dir, "7.0", "request", "SELECT 1\ngo\n");
	EXPECT_EQ(r.output.find("(1 row affected)"), std::string::npos) << r.output;
	EXPECT_TRUE(
		server.wait_for_log("LOGIN7 without PRELOGIN (a TDS 7.0 client), but encryption is required: closing"));
}

// FreeTDS db-lib (pymssql) and FreeTDS ODBC (pyodbc) at 7.0 and 7.1: login,
// rows, and for ODBC the type information it asks for at connect
// (sp_datatype_info, answered with SQL Server's columns).
TEST(LabOldTds, PymssqlAndOdbcAtOldVersions)
{
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	const std::string port = std::to_string(server.port());
	for (const std::string& version : {std::string("7.0"), std::string("7.1")}) {
		SCOPED_TRACE(version);
		auto py =
			run_command({"/usr/bin/python3", "-c",
				     "import sys\n"
				     "try:\n    import pymssql\nexcept ImportError as e:\n    print(e); sys.exit(77)\n"
				     "c = pymssql.connect(server='127.0.0.1', port=" +
					     port + ", user='sa', password='lab', tds_version='" + version +
					     "', login_timeout=5)\n"
					     "cur = c.cursor()\ncur.execute('SELECT n FROM rows(3)')\n"
					     "print('ROWS', [r[0] for r in cur.fetchall()])\n"},
				    {}, {}, 20s);
		if (py.exit_code == 77)
			LAB_DRIVER_MISSING("python3-pymssql missing: " + py.output);
		EXPECT_EQ(py.exit_code, 0) << py.output;
		EXPECT_NE(py.output.find("ROWS [1, 2, 3]"), std::string::npos) << py.output;

		auto odbc = run_command(
			{"/usr/bin/python3", "-c",
			 "import sys\n"
			 "try:\n    import pyodbc\nexcept ImportError as e:\n    print(e); sys.exit(77)\n"
			 "c = pyodbc.connect('DRIVER=/usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so;"
			 "SERVER=127.0.0.1;PORT=" +
				 port + ";UID=sa;PWD=lab;TDS_Version=" + version +
				 "', timeout=5)\n"
				 "cur = c.cursor()\n"
				 "print('ROWS', [r[0] for r in cur.execute('SELECT n FROM rows(2)').fetchall()])\n"
				 "t = cur.getTypeInfo(pyodbc.SQL_WVARCHAR).fetchone()\n"
				 "print('TYPE', t[0], t[1], t[2])\n"},
			{}, {}, 20s);
		if (odbc.exit_code == 77)
			LAB_DRIVER_MISSING("python3-pyodbc missing: " + odbc.output);
		EXPECT_EQ(odbc.exit_code, 0) << odbc.output;
		EXPECT_NE(odbc.output.find("ROWS [1, 2]"), std::string::npos) << odbc.output;
		EXPECT_NE(odbc.output.find("TYPE nvarchar -9 4000"), std::string::npos) << odbc.output;
	}
	EXPECT_TRUE(server.wait_for_log("tds 0x70000000"));
	EXPECT_TRUE(server.wait_for_log("tds 0x71000001"));
	EXPECT_TRUE(server.wait_for_log("batch: sp_datatype_info -9,3"));
}

// tedious speaking TDS 7.1 (its oldest): a batch and an sp_executesql RPC
// whose row counts and column types it reads in the 7.1 layout.
TEST(LabOldTds, Tedious71)
{
	if (!have_program("node"))
		LAB_DRIVER_MISSING("node not installed (Debian package nodejs)");
	if (!std::filesystem::exists(node_modules_dir() + "/tedious/package.json"))
		LAB_DRIVER_MISSING("tedious not installed in " + node_modules_dir());
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	const std::string script =
		"const { Connection, Request, TYPES } = require('tedious');\n"
		"const c = new Connection({ server: '127.0.0.1', authentication: { type: 'default',\n"
		"  options: { userName: 'sa', password: 'lab' } }, options: { port: " +
		std::to_string(server.port()) +
		", encrypt: false, tdsVersion: '7_1', connectTimeout: 5000 } });\n"
		"const fail = e => { console.log('ERROR ' + e.message); process.exit(1); };\n"
		"c.on('error', fail);\n"
		"c.connect(e => {\n"
		"  if (e) return fail(e);\n"
		"  const b = new Request('SELECT n FROM rows(3)', (e2, count) => {\n"
		"    if (e2) return fail(e2);\n"
		"    console.log('COUNT ' + count);\n"
		"    const rpc = new Request('SELECT @x AS v', e3 => { if (e3) return fail(e3); c.close(); });\n"
		"    rpc.addParameter('x', TYPES.NVarChar, 'seven');\n"
		"    rpc.on('row', cols => console.log('RPC ' + cols[0].value));\n"
		"    c.execSql(rpc);\n"
		"  });\n"
		"  b.on('row', cols => console.log('ROW ' + cols[0].value));\n"
		"  c.execSqlBatch(b);\n"
		"});\n";
	auto r = run_command({"node", "-e", script}, {{"NODE_PATH", node_modules_dir()}}, {}, 25s);
	EXPECT_EQ(r.exit_code, 0) << r.output;
	EXPECT_NE(r.output.find("ROW 1\nROW 2\nROW 3\nCOUNT 3\nRPC seven"), std::string::npos) << r.output;
	EXPECT_TRUE(server.wait_for_log("tds 0x71000001"));
}

// What drivers ask right after login, answered as SQL Server would: the
// session's facts, SERVERPROPERTY, sp_server_info, and FreeTDS's "set
// textsize N" followed by a SELECT in the same statement.
TEST(LabOldTds, MetadataQueriesAfterLogin)
{
	REQUIRE_TSQL();
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	TempDir dir;
	auto r = run_tsql(
		server, dir, "7.0", "request",
		"set textsize 64512 select @@spid as spid\ngo\n"
		"SELECT SERVERPROPERTY('ProductVersion') AS v, CAST(SERVERPROPERTY('EngineEdition') AS int) AS e,"
		" db_name() AS db, @@TRANCOUNT AS tc\ngo\n"
		"sp_server_info 2\ngo\n");
	ASSERT_FALSE(r.timed_out) << r.output;
	EXPECT_NE(r.output.find("spid\n51\n"), std::string::npos) << r.output;
	EXPECT_NE(r.output.find("v\te\tdb\ttc\n16.0.1000.0\t3\tmaster\t0\n"), std::string::npos) << r.output;
	EXPECT_NE(r.output.find("2\tDBMS_VER\tMicrosoft SQL Server 2022 - 16.0.1000.0\n"), std::string::npos)
		<< r.output;
	EXPECT_EQ(r.output.find("Msg "), std::string::npos) << r.output; // no server error
}

// ---- tshark on captures of the old exchanges ----

struct Capture {
	std::string pcap;
	std::string log;
	pid_t pid = -1;
};

// tcpdump on the test's own loopback; --immediate-mode so that the last
// packets are written before it stops.
bool start_capture(const TempDir& dir, const LabServer& server, Capture& c)
{
	c.pcap = dir.file("old.pcap");
	c.log = dir.file("tcpdump.log");
	tdsbpf::lab::SpawnOptions opt;
	opt.stdout_path = c.log;
	c.pid = tdsbpf::lab::spawn({"setpriv", "--pdeathsig", "KILL", "--", "tcpdump", "-i", "lo", "--immediate-mode",
				    "-U", "-w", c.pcap, "tcp", "port", std::to_string(server.port())},
				   opt);
	for (int i = 0; i < 200 && c.pid > 0; ++i) {
		if (slurp(c.log).find("listening on lo") != std::string::npos)
			return true;
		std::this_thread::sleep_for(25ms);
	}
	if (c.pid > 0)
		tdsbpf::lab::stop(c.pid, SIGKILL, 2s);
	return false;
}

// The TDS fields tshark reads, one vector per TDS frame.
std::vector<std::vector<std::string>> tshark_fields(const std::string& pcap, int port,
						    const std::vector<std::string>& fields,
						    const std::vector<std::string>& prefs = {})
{
	std::vector<std::string> argv = {"tshark", "-r", pcap, "-d", "tcp.port==" + std::to_string(port) + ",tds"};
	for (const auto& p : prefs)
		argv.insert(argv.end(), {"-o", p});
	argv.insert(argv.end(), {"-Y", "tds", "-T", "fields", "-E", "separator=|", "-E", "aggregator=,"});
	for (const auto& f : fields)
		argv.insert(argv.end(), {"-e", f});
	auto read = run_command(argv, {}, {}, 30s);
	std::vector<std::vector<std::string>> out;
	std::istringstream lines(read.output);
	for (std::string line; std::getline(lines, line);) {
		if (static_cast<std::size_t>(std::count(line.begin(), line.end(), '|')) != fields.size() - 1)
			continue;
		std::vector<std::string> f(1);
		for (char ch : line) {
			if (ch == '|')
				f.emplace_back();
			else
				f.back() += ch;
		}
		out.push_back(f);
	}
	return out;
}

// The fields the old-TDS checks read, and their places.
const std::vector<std::string> kFields = {
	"tds.type",
	"tds.7login.version",
	"tds.7login.username",
	"tds.7login.appname",
	"tds.loginack.tdsversion",
	"tds.info.linenumber",
	"tds.colmetadata.usertype",
	"tds.colmetadata.collate_codepage",
	"tds.type_varbyte.data.int",
	"tds.type_varbyte.data.string",
	"tds.done.donerowcount",   // the 4-byte row count of TDS 7.0 and 7.1
	"tds.done.donerowcount64", // the 8-byte one from 7.2
	"_ws.malformed",
};
enum Field {
	kType,
	kVersion,
	kUser,
	kApp,
	kAckVersion,
	kInfoLine,
	kUserType,
	kCollationLcid,
	kInts,
	kStrings,
	kRowCount,
	kRowCount64,
	kMalformed
};

#define REQUIRE_CAPTURE_TOOLS()                                                               \
	do {                                                                                  \
		REQUIRE_TSQL();                                                               \
		if (!have_program("tcpdump"))                                                 \
			LAB_DRIVER_MISSING("tcpdump not installed (Debian package tcpdump)"); \
		if (!have_program("tshark"))                                                  \
			LAB_DRIVER_MISSING("tshark not installed (Debian package tshark)");   \
	} while (0)

// TDS 7.0 as Wireshark reads it. Wireshark 4.0 cannot dissect 7.0 on its
// own: it does not recognise LOGIN7's 0x70000000 (it then reads the login
// reply as 7.4 and loses its way at the first INFO), and it takes 7.0 as
// "older than TDS 7" (TDS 4.x token rules) when told or when it reads the
// LOGINACK. 7.1's rules are 7.0's (2-byte UserType and line numbers, 4-byte
// row counts) but for collations, so the capture is read as 7.1 with int
// columns only: every field comes out right only if the lab wrote the old
// layouts.
TEST(LabOldTds, TsharkReadsTds70Exchange)
{
	REQUIRE_CAPTURE_TOOLS();
	LabServer server;
	ASSERT_TRUE(server.started()) << server.log();
	TempDir dir;
	Capture cap;
	ASSERT_TRUE(start_capture(dir, server, cap)) << "tcpdump did not start: " << slurp(cap.log);
	auto r = run_tsql(server, dir, "7.0", "request",
			  "SELECT n FROM rows(3)\ngo\nSELECT 42 AS answer, -7 AS neg\ngo\n");
	std::this_thread::sleep_for(200ms);
	tdsbpf::lab::stop(cap.pid, SIGINT, 5s);
	EXPECT_NE(r.output.find("(3 rows affected)"), std::string::npos) << r.output;

	auto frames = tshark_fields(cap.pcap, server.port(), kFields, {"tds.protocol_type:TDS 7.1"});
	ASSERT_FALSE(frames.empty()) << slurp(cap.log);
	EXPECT_EQ(frames[0][kType], "16") << "the first TDS message is the LOGIN7 (no PRELOGIN)";
	std::vector<std::vector<std::string>> replies;
	for (const auto& f : frames) {
		EXPECT_EQ(f[kMalformed], "") << "malformed frame";
		if (f[kType] == "4")
			replies.push_back(f);
	}
	EXPECT_EQ(frames[0][kVersion], "0x70000000");
	EXPECT_EQ(frames[0][kUser], "sa");
	EXPECT_EQ(frames[0][kApp], "TSQL");
	ASSERT_EQ(replies.size(), 3u);
	EXPECT_EQ(replies[0][kAckVersion], "0x07000000");
	EXPECT_EQ(replies[0][kInfoLine], "1,1"); // 5701 and 5703, 2-byte line numbers
	EXPECT_EQ(replies[1][kUserType], "0");
	EXPECT_EQ(replies[1][kInts], "1,2,3");
	EXPECT_EQ(replies[1][kRowCount], "3"); // the 4-byte DONE row count
	EXPECT_EQ(replies[1][kRowCount64], "");
	EXPECT_EQ(replies[2][kInts], "42,-7");
	EXPECT_EQ(replies[2][kRowCount], "1");
}

// TDS 7.1 with no TLS (`encryption = off` against a server that offers
// none, so the LOGIN7 is readable): Wireshark recognises 7.1 by itself.
TEST(LabOldTds, TsharkReadsTds71Exchange)
{
	REQUIRE_CAPTURE_TOOLS();
	LabServer server({"--encryption", "not-supported"});
	ASSERT_TRUE(server.started()) << server.log();
	TempDir dir;
	Capture cap;
	ASSERT_TRUE(start_capture(dir, server, cap)) << "tcpdump did not start: " << slurp(cap.log);
	auto r =
		run_tsql(server, dir, "7.1", "off", "SELECT n FROM rows(2)\ngo\nSELECT 'lab' AS name, 9 AS nine\ngo\n");
	std::this_thread::sleep_for(200ms);
	tdsbpf::lab::stop(cap.pid, SIGINT, 5s);
	EXPECT_NE(r.output.find("name\tnine\nlab\t9\n"), std::string::npos) << r.output;

	auto frames = tshark_fields(cap.pcap, server.port(), kFields);
	std::vector<std::vector<std::string>> logins, replies;
	for (const auto& f : frames) {
		EXPECT_EQ(f[kMalformed], "") << "malformed frame";
		if (f[kType] == "16")
			logins.push_back(f);
		if (f[kType] == "4")
			replies.push_back(f);
	}
	ASSERT_EQ(logins.size(), 1u) << slurp(cap.log);
	EXPECT_EQ(logins[0][kVersion], "0x71000001");
	EXPECT_EQ(logins[0][kUser], "sa");
	ASSERT_EQ(replies.size(), 4u); // PRELOGIN reply, login reply, two results
	EXPECT_EQ(replies[1][kAckVersion], "0x71000001");
	EXPECT_EQ(replies[1][kInfoLine], "1,1");
	EXPECT_EQ(replies[2][kInts], "1,2");
	EXPECT_EQ(replies[2][kRowCount], "2");
	EXPECT_EQ(replies[2][kRowCount64], "");
	EXPECT_EQ(replies[3][kUserType], "0,0");
	EXPECT_EQ(replies[3][kCollationLcid], "1033"); // the nvarchar column's collation, new in 7.1
	EXPECT_EQ(replies[3][kStrings], "lab");
	EXPECT_EQ(replies[3][kInts], "9");
}

} // namespace
} // namespace labtest
