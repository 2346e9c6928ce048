// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The real captures (../shared/captures, described in its INDEX.md) through
// the host walk, the capture reader and the tdsbpf binary.
//
// Expected values come from reading the traces with tshark
// (`tshark -r FILE -d tcp.port==1433,tds -V`), not from this program.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "lab/process.h"
#include "outputs.h"
#include "builder.h"
#include "event_json.h"
#include "host_parser.h"
#include "reader.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kDir = TDSBPF_CAPTURES_DIR;
const std::string kSql2000 = "sql2000-tds71-full-connection.pcap";
const std::string kSql2022 = "sql2022-tds74-tls-login.pcap";
const std::string kSql2022Select = "sql2022-tds74-tls-login-select.pcap";
const std::string kMidstream = "rpc-requests-midstream.pcap";

bool require_tools()
{
	const char* e = std::getenv("TDSBPF_REQUIRE_BPF");
	return e && std::string(e) == "1";
}

#define NEED_CAPTURES()                                                                                         \
	do {                                                                                                    \
		ASSERT_TRUE(fs::is_directory(kDir)) << "capture folder " << kDir                                \
						    << " is missing: the tests need the shared "                \
						       "captures next to the source tree (../shared/captures)"; \
	} while (0)

#define NEED_TOOL(tool)                                                                          \
	do {                                                                                     \
		if (std::system("command -v " tool " >/dev/null 2>&1") != 0) {                   \
			if (require_tools())                                                     \
				FAIL() << tool " is not installed (apt-get install tshark) and " \
					       "TDSBPF_REQUIRE_BPF=1";                           \
			GTEST_SKIP() << tool " is not installed (Debian package tshark)";        \
		}                                                                                \
	} while (0)

fs::path cap(const std::string& name)
{
	return kDir / name;
}

struct Proc {
	int rc = -1;
	std::string out, err;
};

std::string slurp(const fs::path& p)
{
	std::ifstream f(p, std::ios::binary);
	std::stringstream ss;
	ss << f.rdbuf();
	return ss.str();
}

std::string quote(const std::string& s)
{
	std::string q = "'";
	for (char c : s)
		q += c == '\'' ? std::string("'\\''") : std::string(1, c);
	return q + "'";
}

// A private directory, removed with what is in it at scope exit.
struct ScratchDir : tdsbpf::lab::TempDir {
	ScratchDir() : tdsbpf::lab::TempDir("tdsbpf-captures") {}
};

Proc run(const std::string& cmd)
{
	ScratchDir t;
	Proc r;
	int st = std::system((cmd + " >" + quote((fs::path(t.path()) / "out").string()) + " 2>" +
			      quote((fs::path(t.path()) / "err").string()))
				     .c_str());
	r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	r.out = slurp(fs::path(t.path()) / "out");
	r.err = slurp(fs::path(t.path()) / "err");
	return r;
}

Proc tdsbpf_read(const fs::path& file, const std::string& extra = "")
{
	return run(std::string(TDSBPF_BIN) + " --read " + quote(file.string()) + " " + extra);
}

std::vector<json> ndjson(const std::string& s)
{
	std::vector<json> v;
	std::istringstream in(s);
	std::string line;
	while (std::getline(in, line)) {
		if (line.empty())
			continue;
		v.push_back(json::parse(line)); // throws on a line that is not JSON
	}
	return v;
}

std::vector<json> connections(const std::vector<json>& recs)
{
	std::vector<json> c;
	for (auto& r : recs)
		if (r.value("tdsbpf.record", "") == "connection")
			c.push_back(r);
	return c;
}

struct Walked {
	std::vector<json> events;
	std::map<int, int> tds_types; // TDS packets by type (NTLM records stand for their SSPI packet)
	tdsbpf::ReadStats stats;
};

Walked walk(const fs::path& file)
{
	Walked w;
	tdsbpf::HostParserConfig pc;
	pc.count_work = false; // every TDS packet's event, to compare with tshark's packets
	tdsbpf::HostParser p(pc, [&](const tdsbpf_event& ev, std::size_t len) {
		w.events.push_back(tdsbpf::event_to_json(ev, len));
		if (ev.kind == TDSBPF_EV_TDS || ev.kind == TDSBPF_EV_NTLM_AUTH)
			w.tds_types[ev.u.tds.type]++;
	});
	w.stats = tdsbpf::read_capture(file.string(), p);
	return w;
}

std::vector<std::string> phase_names(const json& c)
{
	std::vector<std::string> v;
	for (auto& p : c["phases"])
		v.push_back(p["name"]);
	return v;
}

} // namespace

// ---- (a) the walk agrees with tshark on the TDS packets -------------------

TEST(Captures, FolderHasTheIndexedFiles)
{
	NEED_CAPTURES();
	for (auto& n : {kSql2000, kSql2022, kSql2022Select, kMidstream})
		EXPECT_TRUE(fs::is_regular_file(cap(n))) << cap(n) << " is missing";
}

TEST(Captures, TdsTypesAgreeWithTshark)
{
	NEED_CAPTURES();
	NEED_TOOL("tshark");
	int files = 0;
	for (auto& e : fs::directory_iterator(kDir)) {
		auto ext = e.path().extension().string();
		if (ext != ".pcap" && ext != ".pcapng")
			continue;
		files++;
		// tshark marks the second copy of each frame of an "any" capture as a
		// retransmission and does not decode it as TDS again; our reader drops
		// the copy. Both count each TDS packet once.
		Proc t = run("tshark -r " + quote(e.path().string()) +
			     " -d tcp.port==1433,tds -Y tds -T fields -e tds.type");
		ASSERT_EQ(t.rc, 0) << t.err;
		std::map<int, int> want;
		std::istringstream in(t.out);
		std::string line;
		while (std::getline(in, line)) {
			std::stringstream ls(line);
			std::string v;
			while (std::getline(ls, v, ','))
				if (!v.empty())
					want[std::stoi(v)]++;
		}
		Walked w = walk(e.path());
		EXPECT_FALSE(want.empty()) << e.path();
		EXPECT_EQ(w.tds_types, want) << e.path().filename();
	}
	EXPECT_GE(files, 4);
}

TEST(Captures, TdsTypesMatchIndex)
{
	NEED_CAPTURES();
	// INDEX.md: TDS packet types per file
	std::map<std::string, std::map<int, int>> index{
		{kSql2000, {{1, 1}, {16, 1}, {18, 1}, {4, 3}}},
		{kSql2022, {{1, 2}, {18, 5}, {4, 4}}},
		{kSql2022Select, {{1, 3}, {18, 5}, {4, 5}}},
		{kMidstream, {{1, 3}, {3, 17}, {4, 10}}},
	};
	for (auto& [name, types] : index)
		EXPECT_EQ(walk(cap(name)).tds_types, types) << name;
}

TEST(Captures, AnyCaptureDuplicatesSkipped)
{
	NEED_CAPTURES();
	// cooked v1 "any" captures: 44 and 50 frames, every one twice
	auto a = walk(cap(kSql2022));
	EXPECT_EQ(a.stats.frames, 44u);
	EXPECT_EQ(a.stats.duplicates, 22u);
	EXPECT_EQ(a.stats.linktype, 113);
	auto b = walk(cap(kSql2022Select));
	EXPECT_EQ(b.stats.frames, 50u);
	EXPECT_EQ(b.stats.duplicates, 25u);
	auto c = walk(cap(kSql2000));
	EXPECT_EQ(c.stats.frames, 13u);
	EXPECT_EQ(c.stats.duplicates, 0u);
	EXPECT_EQ(c.stats.linktype, 1);
	for (auto* w : {&a, &b, &c}) {
		EXPECT_FALSE(w->stats.truncated);
		for (auto& e : w->events)
			EXPECT_NE(e["event"], "tcp_retransmission") << e.dump();
	}
}

TEST(Captures, Sql2000EventDetails)
{
	NEED_CAPTURES();
	auto w = walk(cap(kSql2000));
	std::vector<json> tds;
	for (auto& e : w.events)
		if (e["event"] == "tds")
			tds.push_back(e);
	ASSERT_EQ(tds.size(), 6u);
	// frame 4: client PRELOGIN 8.0.341, ENCRYPT_OFF, instance MSSQLServer
	EXPECT_EQ(tds[0]["tds"]["type"], "prelogin");
	EXPECT_EQ(tds[0]["tds"]["detail"]["encryption"], 0);
	EXPECT_EQ(tds[0]["tds"]["detail"]["version"], "8.0.341.0");
	// frame 5: server answer 8.0.2039, NOT_SUP
	EXPECT_EQ(tds[1]["tds"]["detail"]["encryption"], 2);
	EXPECT_EQ(tds[1]["tds"]["detail"]["version"], "8.0.2039.0");
	// frame 6: LOGIN7 TDS 7.1 (0x71000001), packet size 0, SQL authentication
	const json& l7 = tds[2]["tds"]["detail"];
	EXPECT_EQ(tds[2]["tds"]["type"], "login7");
	EXPECT_EQ(l7["tds_version"], "0x71000001");
	EXPECT_EQ(l7["packet_size"], 0);
	EXPECT_EQ(l7["integrated_security"], false);
	EXPECT_EQ(l7["sspi"], "none");
	// frame 7: LOGINACK 7.1, server 8.0.2039, ENVCHANGE packet size 4096, final DONE 0
	const json& ack = tds[3]["tds"];
	EXPECT_EQ(ack["detail"]["tds_version"], "0x71000001");
	EXPECT_EQ(ack["detail"]["server_version"], "8.0.2039");
	EXPECT_EQ(ack["detail"]["packet_size"], 4096);
	EXPECT_EQ(ack["detail"]["first_token"], 0xe3); // ENVCHANGE (database) comes first
	EXPECT_EQ(ack["done"]["status"], 0);
	// frame 8: TDS 7.1 batch: no ALL_HEADERS
	EXPECT_EQ(tds[4]["tds"]["type"], "sql_batch");
	EXPECT_EQ(tds[4]["tds"]["detail"]["all_headers_length"], 0);
	// frame 9: COLMETADATA, ROW, DONE with status 0x10 (count valid) and 1 row
	EXPECT_EQ(tds[5]["dir"], "s2c");
	EXPECT_EQ(tds[5]["tds"]["detail"]["first_token"], 0x81);
	EXPECT_EQ(tds[5]["tds"]["done"]["status"], 0x10);
	EXPECT_EQ(tds[5]["tds"]["done"]["rows"], 1);
}

// ---- (b) connections, phases and outcomes ---------------------------------

// --version says what it is; a bad command line exits 2 with a message,
// whatever CLI11's own code for it would be.
TEST(CapturesBinary, VersionAndBadCommandLines)
{
	Proc v = run(std::string(TDSBPF_BIN) + " --version");
	EXPECT_EQ(v.rc, 0) << v.err;
	EXPECT_EQ(v.out.rfind("tdsbpf ", 0), 0u) << v.out;
	for (const char* bad : {" --no-such-flag", " --format xml", " --port 0", " --read"}) {
		Proc r = run(std::string(TDSBPF_BIN) + bad);
		EXPECT_EQ(r.rc, 2) << bad << ": " << r.err;
		EXPECT_FALSE(r.err.empty()) << bad;
	}
}

// Nothing is silently adjusted or ignored: each bad value is refused, with
// the option named. None of these attaches anything (the interface given
// does not exist, and the values are refused before it is looked up).
TEST(CapturesBinary, BadValuesAreRefused)
{
	const std::string none = " --iface tdsbpfnoiface";
	const std::string rd = " --read /nonexistent.pcap";
	const std::pair<std::string, std::string> cases[] = {
		{" --ringbuf-mb 3" + none, "--ringbuf-mb: must be a power of two"},
		{" --ringbuf-mb 2048" + none, "--ringbuf-mb"},
		{" --max-connections 0" + rd, "--max-connections"},
		{" --duration -5" + none, "--duration: must be a number of seconds"},
		{" --duration 0" + none, "--duration"},
		{" --duration soon" + none, "--duration"},
		{" --slow-login-ms 0" + rd, "--slow-login-ms"},
		{" --max-flows 0" + rd, "--max-flows"},
		{" --idle-timeout -1" + rd, "--idle-timeout"},
		// what only live tracing means is refused with --read
		{none + rd, "--iface excludes --read"},
		{" --duration 5" + rd, "excludes"},
		{" --ringbuf-mb 4" + rd, "excludes"},
		{" --attach tc" + rd, "excludes"},
		{" --ready-file /tmp/x" + rd, "excludes"},
		{" --metrics-addr :9433" + rd, "excludes"},
		// not an address to listen at, or nothing to count
		{" --metrics-addr 9433" + none, "--metrics-addr 9433: must be HOST:PORT"},
		{" --metrics-addr localhost:9433" + none, "is not an IPv4 address"},
		{" --metrics-addr [::1:9433" + none, "--metrics-addr"},
		{" --metrics-addr :70000" + none, "the port must be a number from 1 to 65535"},
		{" --metrics-addr :9433 --events" + none, "--metrics-addr counts connections"},
		// checked before anything is attached
		{" --ready-file /nonexistent/dir/ready" + none, "--ready-file /nonexistent/dir/ready: cannot write"},
		// the packet file: opened first, its settings checked
		{" --write-pcap /nonexistent/dir/x.pcapng" + none,
		 "cannot write the packet capture to /nonexistent/dir/x.pcapng: No such file or directory"},
		{" --write-pcap /tmp/x.pcapng --snaplen 10" + none, "--snaplen"},
		{" --write-pcap /tmp/x.pcapng --snaplen 5000" + none, "--snaplen"},
		{" --snaplen 100" + none, "--snaplen requires --write-pcap"},
		{" --write-pcap-diagnosed" + none, "requires --write-pcap"},
		{" --write-pcap /tmp/x.pcapng --events" + none, "--write-pcap labels packets with their connections"},
		{" --metrics-owner-labels" + none, "requires --metrics-addr"},
		{" --cgroup-root /sys/fs/cgroup" + rd, "excludes"},
	};
	for (const auto& [args, says] : cases) {
		Proc r = run(std::string(TDSBPF_BIN) + args);
		EXPECT_EQ(r.rc, 2) << args << ": " << r.err;
		EXPECT_NE(r.err.find(says), std::string::npos) << args << ": " << r.err;
	}
}

// Runs tdsbpf with its standard output on fd `out`; returns the exit status
// and what it wrote to stderr.
Proc run_with_stdout(const std::vector<std::string>& args, int out)
{
	labtest::TdsbpfRun r = labtest::run_tdsbpf(args, -1, out);
	return Proc{r.rc, {}, r.err};
}

// An output that cannot be written ends the run with status 1 and says
// why, for records, the text view and raw events alike; nothing pretends
// to have succeeded.
TEST(CapturesBinary, WriteErrorsEndTheRun)
{
	NEED_CAPTURES();
	int full = open("/dev/full", O_WRONLY);
	ASSERT_GE(full, 0);
	for (std::vector<std::string> extra : {std::vector<std::string>{}, {"--format", "text"}, {"--events"}}) {
		std::vector<std::string> args{"--read", cap(kSql2000).string()};
		args.insert(args.end(), extra.begin(), extra.end());
		Proc r = run_with_stdout(args, full);
		EXPECT_EQ(r.rc, 1) << r.err;
		EXPECT_NE(r.err.find("to standard output: No space left on device"), std::string::npos) << r.err;
	}
	close(full);

	// a reader that went away: the pipe's read end is closed
	int p[2];
	ASSERT_EQ(pipe(p), 0);
	close(p[0]);
	Proc r = run_with_stdout({"--read", cap(kSql2000).string()}, p[1]);
	close(p[1]);
	EXPECT_EQ(r.rc, 1) << r.err;
	EXPECT_NE(r.err.find("Broken pipe"), std::string::npos) << r.err;
}

TEST(CapturesBinary, Sql2000FullConnection)
{
	NEED_CAPTURES();
	Proc r = tdsbpf_read(cap(kSql2000));
	ASSERT_EQ(r.rc, 0) << r.err;
	auto conns = connections(ndjson(r.out));
	ASSERT_EQ(conns.size(), 1u) << r.out;
	const json& c = conns[0];
	EXPECT_EQ(c["client.address"], "217.77.3.70");
	EXPECT_EQ(c["client.port"], 1040);
	EXPECT_EQ(c["server.address"], "217.77.3.25");
	EXPECT_EQ(c["server.port"], 1433);
	EXPECT_EQ(c["midstream"], false);
	// every phase from the three-way handshake to the close
	EXPECT_EQ(phase_names(c),
		  (std::vector<std::string>{"tcp_handshake", "prelogin", "login", "login_ack", "active", "close"}));
	const json& n = c["negotiated"];
	EXPECT_EQ(n["client_encryption"], "off");
	EXPECT_EQ(n["server_encryption"], "not_supported");
	EXPECT_EQ(n["encryption"], "off"); // plaintext LOGIN7
	EXPECT_EQ(n["instance"], "MSSQLServer");
	EXPECT_EQ(n["server_version"], "8.0.2039.0");
	EXPECT_EQ(n["tds_version_login7"], "7.1 Rev 1"); // 0x71000001
	EXPECT_EQ(n["tds_version_loginack"], "7.1 Rev 1");
	EXPECT_EQ(n["packet_size"], 4096); // ENVCHANGE packet size 4096
	EXPECT_EQ(c["login"]["outcome"], "success");
	EXPECT_TRUE(c["login"]["error"].is_null());
	EXPECT_EQ(c["authentication"]["method"], "sql");
	EXPECT_EQ(c["work"]["sql_batches"], 1);
	EXPECT_EQ(c["work"]["rpcs"], 0);
	EXPECT_EQ(c["work"]["responses"], 1);
	EXPECT_EQ(c["work"]["rows"], 1); // DONE row count 1
	EXPECT_EQ(c["work"]["errors"], 0);
	EXPECT_EQ(c["close"]["kind"], "four_way");
	EXPECT_EQ(c["close"]["initiator"], "client");
	EXPECT_EQ(c["close"]["first_fin"], "client");
	// frames 1..13: 7 from the client (524 payload bytes), 6 from the server (476)
	EXPECT_EQ(c["tcp"]["packets"]["client_to_server"], 7);
	EXPECT_EQ(c["tcp"]["packets"]["server_to_client"], 6);
	EXPECT_EQ(c["tcp"]["bytes"]["client_to_server"], 524);
	EXPECT_EQ(c["tcp"]["bytes"]["server_to_client"], 476);
	EXPECT_EQ(c["tcp"]["retransmissions"]["client_to_server"], 0);
	// the LOGIN7 went in clear: the tool must say so
	bool warned = false;
	for (auto& d : c["diagnoses"])
		warned |= d["code"] == "login_unencrypted";
	EXPECT_TRUE(warned) << c["diagnoses"].dump();
}

TEST(CapturesBinary, Sql2022TlsLoginOnlyEncryption)
{
	NEED_CAPTURES();
	for (auto& [name, batches, rows] :
	     std::vector<std::tuple<std::string, int, json>>{{kSql2022, 2, nullptr}, {kSql2022Select, 3, 1}}) {
		Proc r = tdsbpf_read(cap(name));
		ASSERT_EQ(r.rc, 0) << r.err;
		auto conns = connections(ndjson(r.out));
		ASSERT_EQ(conns.size(), 1u) << name;
		const json& c = conns[0];
		EXPECT_EQ(c["client.address"], "10.128.0.3");
		EXPECT_EQ(c["server.address"], "172.17.0.2");
		EXPECT_EQ(c["midstream"], false);
		EXPECT_EQ(phase_names(c), (std::vector<std::string>{"tcp_handshake", "prelogin", "tls_handshake",
								    "login", "login_ack", "active", "close"}))
			<< name;
		const json& n = c["negotiated"];
		// PRELOGIN: client 17.10.1 ENCRYPT_OFF, MARS off; server 16.0.600 ENCRYPT_OFF
		EXPECT_EQ(n["client_encryption"], "off");
		EXPECT_EQ(n["server_encryption"], "off");
		EXPECT_EQ(n["encryption"], "login_only");
		EXPECT_EQ(n["client_driver_version"], "17.10.1.0");
		EXPECT_EQ(n["server_version"], "16.0.600.0");
		EXPECT_EQ(n["mars_requested"], false);
		// ServerHello TLS 1.2 (no supported_versions), LOGINACK 7.4
		EXPECT_EQ(n["tls_version"], "1.2");
		EXPECT_EQ(n["tds8_alpn"], false);
		EXPECT_EQ(n["tds_version_loginack"], "7.4");
		EXPECT_EQ(n["server_version_loginack"], "16.0.600");
		EXPECT_EQ(c["login"]["outcome"], "success");
		EXPECT_EQ(c["work"]["sql_batches"], batches) << name;
		EXPECT_EQ(c["work"]["rpcs"], 0);
		EXPECT_EQ(c["work"]["responses"], batches) << name;
		EXPECT_EQ(c["work"]["errors"], 0);
		EXPECT_EQ(c["work"]["rows"], rows) << name;
		// the client sends FIN first, the server answers FIN+ACK
		EXPECT_EQ(c["close"]["first_fin"], "client");
		EXPECT_EQ(c["close"]["initiator"], "client");
		EXPECT_EQ(c["close"]["kind"], "four_way");
		// the duplicated frames are not retransmissions
		EXPECT_EQ(c["tcp"]["retransmissions"]["client_to_server"], 0);
		EXPECT_EQ(c["tcp"]["retransmissions"]["server_to_client"], 0);
	}
	// login capture: 22 distinct frames, 13 from the client and 9 from the server
	Proc r = tdsbpf_read(cap(kSql2022));
	auto c = connections(ndjson(r.out));
	ASSERT_EQ(c.size(), 1u);
	EXPECT_EQ(c[0]["tcp"]["packets"]["client_to_server"], 13);
	EXPECT_EQ(c[0]["tcp"]["packets"]["server_to_client"], 9);
}

TEST(CapturesBinary, RpcMidstreamTwelveConnections)
{
	NEED_CAPTURES();
	Proc r = tdsbpf_read(cap(kMidstream));
	ASSERT_EQ(r.rc, 0) << r.err;
	auto conns = connections(ndjson(r.out));
	ASSERT_EQ(conns.size(), 12u);
	// per client port, from the trace: batches, RPC messages, responses, RESETCONNECTION
	struct Want {
		int batches, rpcs, responses, resets;
	};
	std::map<int, Want> want{
		{1111, {1, 1, 2, 0}}, {2222, {1, 0, 1, 0}},  {3333, {0, 1, 0, 1}},  {4444, {0, 1, 0, 1}},
		{5555, {1, 6, 7, 0}}, {6666, {0, 1, 0, 0}},  {7777, {0, 1, 0, 1}},  {8888, {0, 1, 0, 1}},
		{9999, {0, 1, 0, 0}}, {11111, {0, 1, 0, 1}}, {22222, {0, 1, 0, 1}}, {33333, {0, 1, 0, 1}},
	};
	int batches = 0, rpcs = 0, responses = 0, resets = 0;
	for (auto& c : conns) {
		int port = c["client.port"];
		ASSERT_TRUE(want.count(port)) << port;
		const Want& w = want[port];
		EXPECT_EQ(c["midstream"], true) << port;
		EXPECT_EQ(c["login"]["outcome"], "not_seen") << port;
		EXPECT_EQ(c["close"]["kind"], "still_open") << port; // no FIN, no RST in the file
		EXPECT_EQ(c["server.port"], 1433);
		EXPECT_EQ(c["work"]["sql_batches"], w.batches) << port;
		EXPECT_EQ(c["work"]["rpcs"], w.rpcs) << port;
		EXPECT_EQ(c["work"]["responses"], w.responses) << port;
		EXPECT_EQ(c["work"]["reset_connection"], w.resets) << port;
		EXPECT_EQ(c["tracer"]["framing_lost"], 0) << port;
		batches += c["work"]["sql_batches"].get<int>();
		rpcs += c["work"]["rpcs"].get<int>();
		responses += c["work"]["responses"].get<int>();
		resets += c["work"]["reset_connection"].get<int>();
		want.erase(port);
	}
	EXPECT_TRUE(want.empty());
	// 3 batches; 17 RPC packets = 16 messages (port 6666: 8000 bytes without EOM, then 339 with EOM)
	EXPECT_EQ(batches, 3);
	EXPECT_EQ(rpcs, 16);
	EXPECT_EQ(responses, 10);
	EXPECT_EQ(resets, 7); // status 0x09 on 7 RPCs
}

TEST(Captures, MidstreamLargePacketOverSixSegments)
{
	NEED_CAPTURES();
	auto w = walk(cap(kMidstream));
	// port 6666: an 8000-byte RPC packet (status 0x04) whose header is in the 6th
	// segment, then packet 2 of the message
	std::vector<json> rpc6666;
	for (auto& e : w.events)
		if (e["event"] == "tds" && e["client"].get<std::string>().ends_with(":6666"))
			rpc6666.push_back(e);
	ASSERT_EQ(rpc6666.size(), 2u);
	EXPECT_EQ(rpc6666[0]["tds"]["length"], 8000);
	EXPECT_EQ(rpc6666[0]["tds"]["status"], 4);
	EXPECT_EQ(rpc6666[1]["tds"]["length"], 339);
	EXPECT_EQ(rpc6666[1]["tds"]["packet_id"], 2);
	EXPECT_EQ(rpc6666[1]["tds"]["status"], 1);
}

// ---- (c) truncated, bad and pcapng files ------------------------------------

namespace {

// Byte offsets of the records of a classic pcap file.
std::vector<size_t> record_offsets(const std::string& b)
{
	std::vector<size_t> v;
	size_t off = 24;
	while (off + 16 <= b.size()) {
		v.push_back(off);
		uint32_t incl = (uint8_t)b[off + 8] | (uint8_t)b[off + 9] << 8 | (uint8_t)b[off + 10] << 16 |
				(uint32_t)(uint8_t)b[off + 11] << 24;
		off += 16 + incl;
	}
	return v;
}

} // namespace

TEST(CapturesTruncated, CutInTheMiddleOfARecord)
{
	NEED_CAPTURES();
	ScratchDir t;
	std::string all = slurp(cap(kSql2000));
	auto recs = record_offsets(all);
	ASSERT_EQ(recs.size(), 13u);
	// cut inside record 9 (the batch's response): frames 1..8 are whole
	fs::path cut = fs::path(t.path()) / "cut.pcap";
	std::ofstream(cut, std::ios::binary) << all.substr(0, recs[8] + 16 + 20);
	auto w = walk(cut);
	EXPECT_TRUE(w.stats.truncated);
	EXPECT_FALSE(w.stats.warning.empty());
	EXPECT_EQ(w.stats.frames, 8u);
	EXPECT_EQ(w.tds_types, (std::map<int, int>{{18, 1}, {4, 2}, {16, 1}, {1, 1}}));

	// what was read is written, and the status says the file was cut
	Proc r = tdsbpf_read(cut);
	EXPECT_EQ(r.rc, 2) << r.err;
	EXPECT_NE(r.err.find("capture ends early after 8 frames"), std::string::npos) << r.err;
	auto conns = connections(ndjson(r.out));
	ASSERT_EQ(conns.size(), 1u);
	EXPECT_EQ(conns[0]["login"]["outcome"], "success");
	EXPECT_EQ(conns[0]["work"]["sql_batches"], 1);
	EXPECT_EQ(conns[0]["close"]["kind"], "still_open");
}

TEST(CapturesTruncated, EveryCutOffsetIsSafe)
{
	NEED_CAPTURES();
	ScratchDir t;
	std::string all = slurp(cap(kSql2000));
	auto recs = record_offsets(all);
	fs::path cut = fs::path(t.path()) / "cut.pcap";
	// every offset near a record boundary, a stride elsewhere
	std::vector<size_t> offsets;
	for (size_t n = 24; n < all.size(); n++) {
		bool near = std::any_of(recs.begin(), recs.end(),
					[&](size_t off) { return n + 4 >= off && n <= off + 20; });
		if (near || n % 11 == 0)
			offsets.push_back(n);
	}
	for (size_t n : offsets) {
		std::ofstream(cut, std::ios::binary | std::ios::trunc) << all.substr(0, n);
		auto w = walk(cut);
		size_t whole = std::count_if(recs.begin(), recs.end(), [&](size_t off) {
			return off + 16 <= n && [&] {
				uint32_t incl = (uint8_t)all[off + 8] | (uint8_t)all[off + 9] << 8;
				return off + 16 + incl <= n;
			}();
		});
		ASSERT_EQ(w.stats.frames, whole) << "cut at " << n;
		bool on_boundary = n == 24 || std::find(recs.begin(), recs.end(), n) != recs.end();
		ASSERT_EQ(w.stats.truncated, !on_boundary) << "cut at " << n;
	}
}

TEST(CapturesTruncated, NotACaptureAndMissingFile)
{
	NEED_CAPTURES();
	ScratchDir t;
	fs::path text = fs::path(t.path()) / "notes.pcap";
	std::ofstream(text) << "this is not a capture file, just some text long enough to fill a header\n";
	Proc r = tdsbpf_read(text);
	EXPECT_EQ(r.rc, 2);
	EXPECT_NE(r.err.find(text.string()), std::string::npos) << r.err;
	EXPECT_TRUE(r.out.empty()) << r.out;
	EXPECT_THROW(walk(text), std::runtime_error);

	fs::path missing = fs::path(t.path()) / "no-such-file.pcap";
	r = tdsbpf_read(missing);
	EXPECT_EQ(r.rc, 2);
	EXPECT_NE(r.err.find("no-such-file.pcap"), std::string::npos) << r.err;
	EXPECT_TRUE(r.out.empty()) << r.out;
	EXPECT_THROW(walk(missing), std::runtime_error);

	// only the global header: a valid, empty capture
	fs::path empty = fs::path(t.path()) / "empty.pcap";
	std::ofstream(empty, std::ios::binary) << slurp(cap(kSql2000)).substr(0, 24);
	auto w = walk(empty);
	EXPECT_EQ(w.stats.frames, 0u);
	EXPECT_FALSE(w.stats.truncated);
	// a header cut short is not a capture
	fs::path shorth = fs::path(t.path()) / "short.pcap";
	std::ofstream(shorth, std::ios::binary) << slurp(cap(kSql2000)).substr(0, 10);
	EXPECT_EQ(tdsbpf_read(shorth).rc, 2);
}

TEST(CapturesPcapng, SameEventsAsPcap)
{
	NEED_CAPTURES();
	NEED_TOOL("editcap");
	ScratchDir t;
	for (auto& name : {kSql2000, kSql2022, kMidstream}) {
		fs::path ng = fs::path(t.path()) / (name + "ng");
		Proc c = run("editcap -F pcapng " + quote(cap(name).string()) + " " + quote(ng.string()));
		ASSERT_EQ(c.rc, 0) << c.err;
		auto a = walk(cap(name));
		auto b = walk(ng);
		EXPECT_EQ(b.events, a.events) << name;
		EXPECT_EQ(b.stats.frames, a.stats.frames);
		EXPECT_FALSE(b.stats.truncated);
		Proc r1 = tdsbpf_read(cap(name)), r2 = tdsbpf_read(ng);
		EXPECT_EQ(r2.rc, 0) << r2.err;
		EXPECT_EQ(connections(ndjson(r2.out)), connections(ndjson(r1.out))) << name;
	}
}

TEST(CapturesBinary, EventsViewIsNdjson)
{
	NEED_CAPTURES();
	Proc r = tdsbpf_read(cap(kSql2000), "--events");
	ASSERT_EQ(r.rc, 0) << r.err;
	auto ev = ndjson(r.out);
	std::vector<std::string> names;
	for (auto& e : ev)
		if (e.contains("event"))
			names.push_back(e["event"]);
	// frames 1..13 of the capture, as events
	EXPECT_EQ(names, (std::vector<std::string>{"tcp_syn", "tcp_synack", "tcp_handshake_ack", "tds", "tds", "tds",
						   "tds", "tds", "tds", "tcp_fin", "tcp_close_ack", "tcp_fin",
						   "tcp_close_ack", "flow_stats"}));
}

// ---- copies of a frame are not retransmissions -------------------------------

namespace {

struct CapFrame {
	uint64_t ts_us;
	tb::Bytes bytes;
};

// An Ethernet pcap of the frames; each frame's length on the wire is its
// captured length.
fs::path write_ethernet_pcap(const fs::path& dir, const std::string& name, const std::vector<CapFrame>& frames)
{
	tb::Bytes b;
	tb::le32(b, 0xa1b2c3d4);
	tb::le16(b, 2);
	tb::le16(b, 4);
	tb::le32(b, 0);
	tb::le32(b, 0);
	tb::le32(b, 65535);
	tb::le32(b, 1);
	for (const auto& f : frames) {
		tb::le32(b, (uint32_t)(f.ts_us / 1000000));
		tb::le32(b, (uint32_t)(f.ts_us % 1000000));
		tb::le32(b, (uint32_t)f.bytes.size());
		tb::le32(b, (uint32_t)f.bytes.size());
		tb::append(b, f.bytes);
	}
	fs::path p = dir / name;
	std::ofstream(p, std::ios::binary).write((const char*)b.data(), (std::streamsize)b.size());
	return p;
}

// A login-less conversation whose server reply is the frame `reply`
// (index 5), followed by the given extra frames, then a four-way close.
std::vector<CapFrame> with_reply_copies(int copies, uint64_t gap_us, bool odd_length)
{
	using namespace tb;
	Conn k;
	std::vector<CapFrame> v;
	uint64_t t = 1'700'000'000'000'000ull;
	auto add = [&](Bytes f) { v.push_back({t += 300, std::move(f)}); };
	add(k.syn());
	add(k.synack());
	add(k.ack(true));
	add(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select n from t"))));
	Bytes reply = k.data(false, tds(TDS_REPLY, 1, cat({Bytes(300, 0x00), tok_done(0x10, 0xc1, 7)})));
	if (odd_length)
		append(reply, Bytes(6, 0xee)); // bytes past the IP packet: not Ethernet padding
	add(reply);
	for (int i = 0; i < copies; i++)
		v.push_back({t += gap_us, reply});
	add(k.ack(true));
	add(k.fin(true));
	add(k.ack(false));
	add(k.fin(false));
	add(k.ack(true));
	return v;
}

json only_connection(const fs::path& f)
{
	Proc r = tdsbpf_read(f);
	EXPECT_EQ(r.rc, 0) << r.err;
	auto conns = connections(ndjson(r.out));
	EXPECT_EQ(conns.size(), 1u) << r.out;
	return conns.empty() ? json() : conns[0];
}

bool has_diagnosis(const json& c, const std::string& code)
{
	for (const auto& d : c["diagnoses"])
		if (d["code"] == code)
			return true;
	return false;
}

} // namespace

TEST(CapturesCopies, FrameRepeatedAThousandTimesIsNotLoss)
{
	ScratchDir t;
	// the capture artefact: the same bytes a thousand times, 20 µs apart,
	// the frame longer than its IP packet
	json c = only_connection(
		write_ethernet_pcap(fs::path(t.path()), "repeat.pcap", with_reply_copies(1000, 20, true)));
	ASSERT_TRUE(c.is_object());
	EXPECT_EQ(c["tcp"]["retransmissions"]["server_to_client"], 0);
	EXPECT_EQ(c["tcp"]["retransmissions"]["client_to_server"], 0);
	EXPECT_EQ(c["tcp"]["duplicates_ignored"]["server_to_client"], 1000);
	EXPECT_EQ(c["tcp"]["duplicates_ignored"]["client_to_server"], 0);
	EXPECT_EQ(c["tcp"]["packets"]["server_to_client"], 4); // SYN+ACK, reply, ACK, FIN
	EXPECT_EQ(c["work"]["responses"], 1);
	EXPECT_FALSE(has_diagnosis(c, "retransmissions")) << c["diagnoses"].dump();
}

TEST(CapturesCopies, SpacedCopiesOfAnOddFrameAndRealResends)
{
	ScratchDir t;
	// 5 ms apart: no sender resends that fast, but a copy is only taken for
	// one at such a distance when the frame cannot be a sender's (odd length)
	json odd =
		only_connection(write_ethernet_pcap(fs::path(t.path()), "odd.pcap", with_reply_copies(20, 5000, true)));
	EXPECT_EQ(odd["tcp"]["retransmissions"]["server_to_client"], 0);
	EXPECT_EQ(odd["tcp"]["duplicates_ignored"]["server_to_client"], 20);
	// the same bytes, a well-formed frame, 300 ms apart: resends (a capture
	// cannot tell those from copies without the sender's IP ID changing, and
	// a resend is what a sender does after its timeout)
	json resent = only_connection(
		write_ethernet_pcap(fs::path(t.path()), "resent.pcap", with_reply_copies(2, 300000, false)));
	EXPECT_EQ(resent["tcp"]["retransmissions"]["server_to_client"], 2);
	EXPECT_EQ(resent["tcp"]["duplicates_ignored"]["server_to_client"], 0);
	EXPECT_TRUE(has_diagnosis(resent, "retransmissions")) << resent["diagnoses"].dump();
	// and a well-formed frame twice within a few microseconds: a copy
	json twice =
		only_connection(write_ethernet_pcap(fs::path(t.path()), "twice.pcap", with_reply_copies(1, 3, false)));
	EXPECT_EQ(twice["tcp"]["retransmissions"]["server_to_client"], 0);
	EXPECT_EQ(twice["tcp"]["duplicates_ignored"]["server_to_client"], 1);
}

TEST(CapturesRefused, SameSynRetriedAfterResetsIsOneAttempt)
{
	// a Windows client to a port nothing listens on: SYN, RST, and the same
	// SYN again half a second later, twice
	using namespace tb;
	ScratchDir t;
	Conn k;
	std::vector<CapFrame> v;
	uint64_t t0 = 1'700'000'000'000'000ull;
	for (int i = 0; i < 3; i++) {
		v.push_back({t0 + i * 500'000ull, k.frame(true, 4242, 0, SYN, {})});
		v.push_back({t0 + i * 500'000ull + 300, k.frame(false, 0, 4243, RST | ACK, {})});
	}
	json c = only_connection(write_ethernet_pcap(fs::path(t.path()), "refused.pcap", v));
	ASSERT_TRUE(c.is_object());
	EXPECT_EQ(c["close"]["kind"], "refused");
	EXPECT_EQ(c["tcp"]["syn_count"], 3);
	EXPECT_TRUE(has_diagnosis(c, "connection_refused")) << c["diagnoses"].dump();
}

// --read with --write-pcap: the packets of the capture that were taken, as
// pcapng, each with its record's connection id; tshark dissects the TDS in
// them as in the original, and the packets are each record's packets.
TEST(CapturesBinary, WritePcapOfARealCapture)
{
	NEED_CAPTURES();
	NEED_TOOL("tshark");
	tdsbpf::lab::TempDir dir;
	std::string out = dir.file("sql2000.pcapng");
	Proc r = tdsbpf_read(cap(kSql2000), "--write-pcap " + quote(out));
	ASSERT_EQ(r.rc, 0) << r.err;
	auto conns = connections(ndjson(r.out));
	ASSERT_EQ(conns.size(), 1u);
	uint64_t id = conns[0]["tdsbpf.connection_id"];
	const json& pk = conns[0]["tcp"]["packets"];
	uint64_t packets = pk["client_to_server"].get<uint64_t>() + pk["server_to_client"].get<uint64_t>();
	Proc t = run("tshark -r " + quote(out) + " -d tcp.port==1433,tds -T fields -e frame.comment -e tds.type");
	ASSERT_EQ(t.rc, 0) << t.err;
	std::istringstream lines(t.out);
	std::size_t frames = 0;
	std::map<int, int> types;
	for (std::string line; std::getline(lines, line);) {
		frames++;
		EXPECT_EQ(line.rfind("tdsbpf.connection_id=" + std::to_string(id) + " ", 0), 0u) << line;
		auto tab = line.find('\t');
		if (tab != std::string::npos && tab + 1 < line.size())
			types[std::stoi(line.substr(tab + 1))]++;
	}
	EXPECT_EQ(frames, packets);
	// as tshark reads the original: PRELOGIN, LOGIN7, a batch and the replies
	EXPECT_EQ(types, (std::map<int, int>{{1, 1}, {16, 1}, {18, 1}, {4, 3}}));
	EXPECT_NE(r.err.find("--write-pcap " + out + ": " + std::to_string(packets) + " packets in 1 file(s)"),
		  std::string::npos)
		<< r.err;
}

// Reading a capture, each record gives a Wireshark display filter and its
// first and last frames: the filter shows exactly the frames tshark
// numbers from the first to the last, and each timeline line names the
// frame it came from.
TEST(CapturesBinary, FramesAndAFilterLeadToThePackets)
{
	NEED_CAPTURES();
	NEED_TOOL("tshark");
	for (const auto& name : {kSql2000, kSql2022Select}) {
		Proc r = tdsbpf_read(cap(name));
		ASSERT_EQ(r.rc, 0) << r.err;
		auto conns = connections(ndjson(r.out));
		ASSERT_FALSE(conns.empty());
		for (const auto& c : conns) {
			const json& w = c["wireshark"];
			std::string filter = w["filter"];
			Proc t = run("tshark -r " + quote(cap(name).string()) + " -Y " + quote(filter) +
				     " -T fields -e frame.number");
			ASSERT_EQ(t.rc, 0) << t.err;
			std::vector<uint64_t> frames;
			std::istringstream in(t.out);
			for (std::string line; std::getline(in, line);)
				if (!line.empty())
					frames.push_back(std::stoull(line));
			ASSERT_FALSE(frames.empty()) << filter;
			EXPECT_EQ(w["first_frame"], frames.front()) << name << " " << filter;
			// the last frame that gave the record an event: one of the
			// connection's, at or after its last FIN (a last ACK, or a
			// capture's second copy of it, may follow)
			uint64_t last = w["last_frame"];
			EXPECT_TRUE(std::find(frames.begin(), frames.end(), last) != frames.end()) << last;
			Proc fin = run("tshark -r " + quote(cap(name).string()) + " -Y " +
				       quote("(" + filter + ") && tcp.flags.fin==1") + " -T fields -e frame.number");
			ASSERT_EQ(fin.rc, 0) << fin.err;
			uint64_t last_fin = 0;
			std::istringstream fins(fin.out);
			for (std::string line; std::getline(fins, line);)
				if (!line.empty())
					last_fin = std::stoull(line);
			EXPECT_GE(last, last_fin) << name;
		}
		// the text view: the PRELOGIN line names tshark's first PRELOGIN frame
		Proc text = tdsbpf_read(cap(name), "--format text");
		ASSERT_EQ(text.rc, 0) << text.err;
		Proc t = run("tshark -r " + quote(cap(name).string()) +
			     " -d tcp.port==1433,tds -Y tds.type==18 -T fields -e frame.number");
		ASSERT_EQ(t.rc, 0) << t.err;
		std::string first = t.out.substr(0, t.out.find('\n'));
		std::istringstream lines(text.out);
		std::string prelogin;
		for (std::string line; std::getline(lines, line);)
			if (line.find("TDS:Prelogin") != std::string::npos) {
				prelogin = line;
				break;
			}
		EXPECT_NE(prelogin.find(" f" + first + " "), std::string::npos) << prelogin << " vs frame " << first;
		EXPECT_NE(text.out.find("   wireshark frames "), std::string::npos) << text.out;
	}
}

// The text view names every TLS record and handshake message of a segment
// as Wireshark does, in order; where the bytes tdsbpf reads end before the
// packet does, its list is a prefix of Wireshark's and ends with "...".
TEST(CapturesBinary, TlsRecordsOfASegmentNamedAsWiresharkDoes)
{
	NEED_CAPTURES();
	NEED_TOOL("tshark");
	for (const auto& name : {kSql2022, kSql2022Select}) {
		Proc r = tdsbpf_read(cap(name), "--format text");
		ASSERT_EQ(r.rc, 0) << r.err;
		Proc t = run("tshark -r " + quote(cap(name).string()) +
			     " -Y tls -T fields -e frame.number -e _ws.col.Info");
		ASSERT_EQ(t.rc, 0) << t.err;
		std::map<std::string, std::string> info; // frame -> "Client Key Exchange, Change Cipher Spec, ..."
		std::istringstream tin(t.out);
		for (std::string line; std::getline(tin, line);) {
			auto tab = line.find('\t');
			if (tab != std::string::npos)
				info[line.substr(0, tab)] = line.substr(tab + 1);
		}
		int checked = 0;
		std::istringstream rin(r.out);
		for (std::string line; std::getline(rin, line);) {
			auto hs = line.find("TLS:HandShake: ");
			auto f = line.find(" f");
			if (hs == std::string::npos || f == std::string::npos)
				continue;
			std::string frame = line.substr(f + 2, line.find(' ', f + 2) - f - 2);
			// "Client Hello (TLS 1.2); Certificate; ... (in TDS:Prelogin)" -> names
			std::string list = line.substr(hs + 15);
			list = list.substr(0, list.find(" (in TDS"));
			std::vector<std::string> ours;
			for (size_t at = 0; at != std::string::npos;) {
				size_t semi = list.find("; ", at);
				std::string item = list.substr(at, semi == std::string::npos ? semi : semi - at);
				ours.push_back(item.substr(0, item.find(" (TLS")));
				at = semi == std::string::npos ? semi : semi + 2;
			}
			ASSERT_TRUE(info.count(frame)) << line;
			std::vector<std::string> theirs;
			std::istringstream ws(info[frame]);
			for (std::string item; std::getline(ws, item, ',');)
				theirs.push_back(item.substr(item.find_first_not_of(' ')));
			bool cut = ours.back() == "...";
			if (cut)
				ours.pop_back();
			ASSERT_LE(ours.size(), theirs.size()) << line << " | " << info[frame];
			if (!cut) {
				EXPECT_EQ(ours.size(), theirs.size()) << line << " | " << info[frame];
			}
			for (size_t i = 0; i < ours.size(); i++)
				EXPECT_EQ(ours[i], theirs[i]) << line << " | " << info[frame];
			checked++;
		}
		EXPECT_GE(checked, 4) << name;
	}
}

// The IDs that tie a connection to the server's log and the driver's: the
// SPID of the server's reply headers and the client PRELOGIN's TRACEID and
// THREADID, as tshark reads them; null where the capture has none.
TEST(CapturesBinary, IdsAsWiresharkReadsThem)
{
	NEED_CAPTURES();
	NEED_TOOL("tshark");
	Proc r = tdsbpf_read(cap(kSql2022Select));
	ASSERT_EQ(r.rc, 0) << r.err;
	auto conns = connections(ndjson(r.out));
	ASSERT_EQ(conns.size(), 1u);
	const json& ids = conns[0]["ids"];
	Proc t = run("tshark -r " + quote(cap(kSql2022Select).string()) +
		     " -Y tds.prelogin.option.traceid -T fields -e tds.prelogin.option.traceid -e "
		     "tds.prelogin.option.threadid");
	ASSERT_EQ(t.rc, 0) << t.err;
	std::string hex = t.out.substr(0, t.out.find('\t'));
	ASSERT_EQ(hex.size(), 72u) << t.out; // 36 bytes
	auto byte = [&](int i) { return hex.substr(2 * i, 2); };
	// GUID bytes on the wire: Data1..3 little-endian
	std::string guid = byte(3) + byte(2) + byte(1) + byte(0) + "-" + byte(5) + byte(4) + "-" + byte(7) + byte(6) +
			   "-" + byte(8) + byte(9) + "-" + byte(10) + byte(11) + byte(12) + byte(13) + byte(14) +
			   byte(15);
	EXPECT_EQ(ids["client_connection_id"], guid);
	EXPECT_EQ(ids["activity_id"].get<std::string>().size(), 36u);
	EXPECT_EQ(ids["client_thread_id"], std::stoul(t.out.substr(t.out.find('\t') + 1)));
	Proc s = run("tshark -r " + quote(cap(kSql2022Select).string()) +
		     " -d tcp.port==1433,tds -Y 'tds.type==4 && tds.channel!=0' -T fields -e tds.channel"); // the SPID
	ASSERT_EQ(s.rc, 0) << s.err;
	ASSERT_FALSE(s.out.empty());
	EXPECT_EQ(ids["spid"], std::stoul(s.out));

	// SQL Server 2000's client: a PRELOGIN with THREADID but no TRACEID
	Proc old = tdsbpf_read(cap(kSql2000));
	ASSERT_EQ(old.rc, 0) << old.err;
	auto oc = connections(ndjson(old.out));
	ASSERT_FALSE(oc.empty());
	EXPECT_TRUE(oc[0]["ids"]["client_connection_id"].is_null());
	EXPECT_TRUE(oc[0]["ids"]["activity_id"].is_null());
	Proc th = run("tshark -r " + quote(cap(kSql2000).string()) +
		      " -Y tds.prelogin.option.threadid -T fields -e tds.prelogin.option.threadid");
	ASSERT_EQ(th.rc, 0) << th.err;
	EXPECT_EQ(oc[0]["ids"]["client_thread_id"], std::stoul(th.out));
	EXPECT_EQ(oc[0]["ids"]["spid"], 52); // the LOGINACK's header
}

// The login's waterfall on a real SQL Server 2022 login: every step from the
// SYN to the LOGINACK, whose turn each was, and the longest one the client's
// (5.7 ms before its ClientHello, while the server answered the PRELOGIN in
// 2.2 ms), as tshark's frame times give them.
TEST(CapturesBinary, LoginWaterfallWithWhoseTurn)
{
	NEED_CAPTURES();
	NEED_TOOL("tshark");
	Proc r = tdsbpf_read(cap(kSql2022Select));
	ASSERT_EQ(r.rc, 0) << r.err;
	auto conns = connections(ndjson(r.out));
	ASSERT_EQ(conns.size(), 1u);
	const json& steps = conns[0]["login"]["steps"];
	std::vector<std::string> names, owners;
	double longest = 0, sum = 0;
	std::string longest_name;
	for (const auto& s : steps) {
		names.push_back(s["step"]);
		owners.push_back(s["owner"]);
		double d = s["duration_ms"];
		sum += d;
		if (d > longest) {
			longest = d;
			longest_name = s["step"];
		}
	}
	EXPECT_EQ(names, (std::vector<std::string>{"tcp_syn_ack", "tcp_ack", "prelogin", "prelogin_reply",
						   "tls_client_hello", "tls_server_hello", "tls_client_finish",
						   "tls_server_finish", "login7", "login_answer"}));
	EXPECT_EQ(owners, (std::vector<std::string>{"server", "network", "client", "server", "client", "server",
						    "client", "server", "client", "server"}));
	EXPECT_EQ(longest_name, "tls_client_hello");
	EXPECT_NEAR(sum, conns[0]["login"]["duration_ms"].get<double>(), 0.01); // the steps add up
	// the client's step as tshark times it: the server's PRELOGIN reply (frame 11) to the ClientHello (frame 15)
	Proc t = run("tshark -r " + quote(cap(kSql2022Select).string()) +
		     " -Y 'frame.number==11 || frame.number==15' -T fields -e frame.time_relative");
	ASSERT_EQ(t.rc, 0) << t.err;
	std::istringstream in(t.out);
	double a = 0, b = 0;
	in >> a >> b;
	EXPECT_NEAR(steps[4]["duration_ms"].get<double>(), (b - a) * 1000.0, 0.001);
}

// The names a LOGIN7 in clear carries and what the login reply sets, as
// tshark reads them: host, user, application, server and library from the
// SQL Server 2000 capture's LOGIN7; the database, the language and the
// server's name from each capture's login reply.
TEST(CapturesBinary, LoginNamesAndReplyTextAsTsharkReadsThem)
{
	NEED_CAPTURES();
	NEED_TOOL("tshark");
	auto fields = [](const std::string& name, const std::string& filter, const std::string& list) {
		Proc t = run("tshark -r " + quote(cap(name).string()) + " -d tcp.port==1433,tds -Y " + quote(filter) +
			     " -T fields -E separator='|' " + list);
		EXPECT_EQ(t.rc, 0) << t.err;
		std::vector<std::string> v;
		std::istringstream in(t.out.substr(0, t.out.find('\n')));
		for (std::string f; std::getline(in, f, '|');)
			v.push_back(f);
		return v;
	};
	Proc r = tdsbpf_read(cap(kSql2000));
	ASSERT_EQ(r.rc, 0) << r.err;
	auto conns = connections(ndjson(r.out));
	ASSERT_EQ(conns.size(), 1u);
	auto names = fields(kSql2000, "tds.type==16",
			    "-e tds.7login.clientname -e tds.7login.username -e tds.7login.appname "
			    "-e tds.7login.servername -e tds.7login.libraryname");
	ASSERT_EQ(names.size(), 5u);
	const json& n = conns[0]["login"]["client_names"];
	EXPECT_EQ(n["host"], names[0]) << n.dump();
	EXPECT_EQ(n["user"], names[1]);
	EXPECT_EQ(n["application"], names[2]);
	EXPECT_EQ(n["server"], names[3]);
	EXPECT_EQ(n["library"], names[4]);

	for (const auto& name : {kSql2000, kSql2022Select}) {
		Proc q = tdsbpf_read(cap(name));
		ASSERT_EQ(q.rc, 0) << q.err;
		auto c = connections(ndjson(q.out));
		ASSERT_EQ(c.size(), 1u);
		// the login reply: ENVCHANGE types and values, the INFO's server name
		auto reply = fields(name, "tds.envchange.type==1",
				    "-e tds.envchange.type -e tds.envchange.newvalue_string -e tds.info.servername");
		ASSERT_EQ(reply.size(), 3u) << name;
		std::map<std::string, std::string> env;
		std::istringstream types(reply[0]), values(reply[1]);
		for (std::string ty, va; std::getline(types, ty, ',');) {
			if (ty == "7")
				continue; // a collation: bytes, no string value
			if (std::getline(values, va, ','))
				env[ty] = va;
		}
		EXPECT_EQ(c[0]["negotiated"]["database"], env["1"]) << name;
		EXPECT_EQ(c[0]["negotiated"]["language"], env["2"]) << name;
		EXPECT_EQ(c[0]["negotiated"]["server_name"], reply[2].substr(0, reply[2].find(','))) << name;
		EXPECT_EQ(c[0]["db.namespace"], env["1"]) << name;
	}
	// the 2022 login was encrypted: its names were not seen
	Proc e = tdsbpf_read(cap(kSql2022Select));
	EXPECT_TRUE(connections(ndjson(e.out))[0]["login"]["client_names"].is_null());
}

// The TLS posture of the SQL Server 2022 captures, as tshark reads the hello
// flights: ODBC Driver 17 offered 65 suites, 13 of them RC4 or 3DES, with
// SNI localhost; the server chose ECDHE-RSA AES-128-GCM and presented
// SQL Server's self-signed fallback certificate, valid 2022-2052.
TEST(CapturesBinary, TlsPostureAsTsharkReadsIt)
{
	NEED_CAPTURES();
	NEED_TOOL("tshark");
	for (const auto& name : {kSql2022, kSql2022Select}) {
		Proc r = tdsbpf_read(cap(name));
		ASSERT_EQ(r.rc, 0) << r.err;
		auto conns = connections(ndjson(r.out));
		ASSERT_EQ(conns.size(), 1u);
		const json& t = conns[0]["tls"];
		ASSERT_TRUE(t.is_object()) << conns[0].dump();
		// tshark's names of every suite offered, and of the one chosen
		Proc v = run("tshark -r " + quote(cap(name).string()) +
			     " -d tcp.port==1433,tds -Y 'tls.handshake.type==1 || tls.handshake.type==2' -V");
		ASSERT_EQ(v.rc, 0) << v.err;
		std::vector<std::string> offered, chosen, weak;
		std::string sni, subject;
		bool in_server = false;
		std::istringstream in(v.out);
		for (std::string line; std::getline(in, line);) {
			if (line.find("Handshake Type: Server Hello") != std::string::npos)
				in_server = true;
			auto at = line.find("Cipher Suite: ");
			if (at != std::string::npos) {
				std::string n = line.substr(at + 14, line.find(" (0x") - at - 14);
				(in_server ? chosen : offered).push_back(n);
				for (const char* w : {"RC4", "3DES", "_DES_", "NULL", "EXPORT", "anon"})
					if (!in_server && n.find(w) != std::string::npos) {
						weak.push_back(n);
						break;
					}
			}
			if ((at = line.find("Server Name: ")) != std::string::npos)
				sni = line.substr(at + 13);
			if ((at = line.find("uTF8String: ")) != std::string::npos && subject.empty())
				subject = line.substr(at + 12);
		}
		ASSERT_EQ(chosen.size(), 1u) << name;
		EXPECT_EQ(t["client"]["cipher_suites_offered"], offered.size()) << name;
		EXPECT_EQ(t["client"]["weak_offered"], json(weak)) << name;
		EXPECT_EQ(t["client"]["sni"], sni) << name;
		EXPECT_EQ(t["server"]["cipher_suite"], chosen[0]) << name;
		EXPECT_EQ(t["server"]["weak"], false);
		EXPECT_EQ(t["certificate_seen"], "read") << t.dump();
		const json& c = t["certificate"];
		EXPECT_EQ(c["subject"], "CN=" + subject) << c.dump();
		EXPECT_EQ(c["issuer"], "CN=" + subject);
		EXPECT_EQ(c["not_before"], "2022-07-26T15:28:13.000000Z");
		EXPECT_EQ(c["not_after"], "2052-07-26T15:28:13.000000Z");
		EXPECT_EQ(c["self_signed"], true);
		EXPECT_EQ(c["sql_server_fallback"], true);
		EXPECT_EQ(c["key_type"], "RSA");
		bool fallback = false, weak_offered = false;
		for (const auto& d : conns[0]["diagnoses"]) {
			fallback = fallback || d["code"] == "tls_self_signed_fallback";
			weak_offered = weak_offered || d["code"] == "tls_weak_ciphers_offered";
		}
		EXPECT_TRUE(fallback) << conns[0]["diagnoses"].dump();
		EXPECT_TRUE(weak_offered) << conns[0]["diagnoses"].dump();
	}
}

// docs/connections.md's text summary is what `--read --format text` of the
// capture it names prints on standard error (less the read's info line).
TEST(CapturesBinary, TheDocumentedSummaryIsWhatItPrints)
{
	NEED_CAPTURES();
	std::string block = labtest::fenced_block(
		TDSBPF_CONNECTIONS_DOC, "In the text view (`tdsbpf --read sql2000-tds71-full-connection.pcap");
	ASSERT_FALSE(block.empty()) << TDSBPF_CONNECTIONS_DOC;
	Proc r = tdsbpf_read(cap(kSql2000), "--format text");
	ASSERT_EQ(r.rc, 0) << r.err;
	std::string err;
	std::istringstream in(r.err);
	for (std::string line; std::getline(in, line);)
		if (line.rfind("info:", 0) != 0)
			err += line + "\n";
	EXPECT_EQ(block, err);
}

// docs/connections.md's example record is what `--read` of the capture it
// names prints, field for field: the documentation cannot fall behind.
TEST(CapturesBinary, TheDocumentedExampleIsTheRecordOfItsCapture)
{
	NEED_CAPTURES();
	std::string block = labtest::fenced_block(TDSBPF_CONNECTIONS_DOC, "\n## Example\n");
	ASSERT_FALSE(block.empty()) << TDSBPF_CONNECTIONS_DOC;
	json documented = json::parse(block);
	Proc r = tdsbpf_read(cap(kSql2022Select));
	ASSERT_EQ(r.rc, 0) << r.err;
	auto conns = connections(ndjson(r.out));
	ASSERT_EQ(conns.size(), 1u);
	EXPECT_EQ(documented, conns[0]) << json::diff(documented, conns[0]).dump(1);
}

// The README's text example is what `--read --format text` of the capture
// it names prints, line for line.
TEST(CapturesBinary, TheReadmeTextExampleIsWhatItPrints)
{
	NEED_CAPTURES();
	std::string block = labtest::fenced_block(TDSBPF_README,
						  "(`tdsbpf --read sql2000-tds71-full-connection.pcap --format text`");
	ASSERT_FALSE(block.empty()) << TDSBPF_README;
	Proc r = tdsbpf_read(cap(kSql2000), "--format text");
	ASSERT_EQ(r.rc, 0) << r.err;
	EXPECT_EQ(block, r.out);
}
