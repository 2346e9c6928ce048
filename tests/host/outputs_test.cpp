// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Where records and events go (--output, --events-output): the SPEC parser,
// the syslog message (RFC 5424, RFC 6587 octet counting), bad SPECs refused
// by the binary, files appended to, records and events to two files at
// once, a Unix socket read by the test, and SIGHUP opening the file again
// while a capture is read from a pipe. The network outputs against real
// peers (rsyslog, socat) are in netns/outputs_test.cpp.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lab/process.h"
#include "outputs.h"
#include "outlets.h"

namespace fs = std::filesystem;
using nlohmann::json;
using tdsbpf::OutputSpec;

namespace {

const fs::path kCaptures = TDSBPF_CAPTURES_DIR;
const fs::path kSql2000 = kCaptures / "sql2000-tds71-full-connection.pcap";
const fs::path kMidstream = kCaptures / "rpc-requests-midstream.pcap";

std::string slurp(const fs::path& p)
{
	std::ifstream f(p, std::ios::binary);
	std::stringstream ss;
	ss << f.rdbuf();
	return ss.str();
}

std::vector<json> ndjson(const std::string& s)
{
	std::vector<json> v;
	std::istringstream in(s);
	std::string line;
	while (std::getline(in, line))
		if (!line.empty())
			v.push_back(json::parse(line)); // throws on a line that is not JSON
	return v;
}

// A private directory, removed with what is in it at scope exit.
struct TempDir : tdsbpf::lab::TempDir {
	TempDir() : tdsbpf::lab::TempDir("tdsbpf-outputs") {}
};

using Proc = labtest::TdsbpfRun;

// tdsbpf with args, its stdin from in_fd (or /dev/null); on_start, when
// given, is called with its pid while it runs.
Proc run_tdsbpf(const std::vector<std::string>& args, int in_fd = -1, const std::function<void(pid_t)>& on_start = {})
{
	return labtest::run_tdsbpf(args, in_fd, -1, on_start);
}

// ---- the SPEC ------------------------------------------------------------------

TEST(OutputSpec, EveryForm)
{
	EXPECT_EQ(tdsbpf::parse_output_spec("-").kind, OutputSpec::Kind::standard_output);
	EXPECT_EQ(tdsbpf::parse_output_spec("stdout").kind, OutputSpec::Kind::standard_output);
	OutputSpec f = tdsbpf::parse_output_spec("file:/var/log/tdsbpf/records.ndjson");
	EXPECT_EQ(f.kind, OutputSpec::Kind::file);
	EXPECT_EQ(f.path, "/var/log/tdsbpf/records.ndjson");
	EXPECT_FALSE(f.network());
	OutputSpec rel = tdsbpf::parse_output_spec("file:records:today.ndjson");
	EXPECT_EQ(rel.path, "records:today.ndjson");
	OutputSpec u = tdsbpf::parse_output_spec("unix:/run/vector.sock");
	EXPECT_EQ(u.kind, OutputSpec::Kind::unix_stream);
	EXPECT_EQ(u.path, "/run/vector.sock");
	EXPECT_TRUE(u.network());
	OutputSpec t = tdsbpf::parse_output_spec("tcp:logs.example.net:5170");
	EXPECT_EQ(t.kind, OutputSpec::Kind::tcp);
	EXPECT_EQ(t.host, "logs.example.net");
	EXPECT_EQ(t.port, "5170");
	EXPECT_FALSE(t.syslog());
	OutputSpec s6 = tdsbpf::parse_output_spec("syslog:[fd00::1]:514");
	EXPECT_EQ(s6.kind, OutputSpec::Kind::syslog_tcp);
	EXPECT_EQ(s6.host, "fd00::1");
	EXPECT_EQ(s6.port, "514");
	EXPECT_TRUE(s6.syslog());
	OutputSpec su = tdsbpf::parse_output_spec("syslog+udp:10.0.0.1:514");
	EXPECT_EQ(su.kind, OutputSpec::Kind::syslog_udp);
	EXPECT_EQ(su.host, "10.0.0.1");
	EXPECT_EQ(su.text, "syslog+udp:10.0.0.1:514");
}

TEST(OutputSpec, WhatIsWrongIsSaid)
{
	const std::pair<std::string, std::string> bad[] = {
		{"", "is not an output"},
		{"records.ndjson", "is not an output"},
		{"http://x:80", "'http:' is not a kind of output"},
		{"file:", "no path"},
		{"unix:", "no path"},
		{"unix:/" + std::string(200, 'a'), "at most 107 bytes"},
		{"tcp:host", "no port"},
		{"tcp:host:", "no port"},
		{"tcp::5170", "no host"},
		{"tcp:host:0", "from 1 to 65535"},
		{"tcp:host:65536", "from 1 to 65535"},
		{"tcp:host:http", "from 1 to 65535"},
		{"tcp:fd00::1:514", "in brackets"},
		{"syslog:[fd00::1:514", "ends with ']'"},
		{"syslog:[fd00::1]514", "no port"},
		{"syslog+udp:10.0.0.1", "no port"},
	};
	for (const auto& [spec, says] : bad) {
		try {
			tdsbpf::parse_output_spec(spec);
			ADD_FAILURE() << spec << " was taken";
		} catch (const std::invalid_argument& e) {
			EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << spec << ": " << e.what();
		}
	}
}

// ---- syslog ------------------------------------------------------------------

TEST(Syslog, Rfc5424Message)
{
	tdsbpf::SyslogHeader h;
	h.severity = tdsbpf::kSyslogWarning;
	h.time_ns = 1764633600123456789ULL; // 2025-12-02T00:00:00.123456789Z
	h.hostname = "db 01\x7f.example";   // space and DEL are not PRINTUSASCII
	h.procid = 4242;
	h.msgid = "connection";
	std::string m = tdsbpf::format_syslog(h, R"({"a":1})");
	// PRI = local0 (16) * 8 + warning (4)
	EXPECT_EQ(m, R"(<132>1 2025-12-02T00:00:00.123456Z db01.example tdsbpf 4242 connection - {"a":1})");

	h.facility = 16;
	h.severity = tdsbpf::kSyslogInfo;
	h.hostname = "";
	h.procid = 0;
	h.msgid = "event";
	h.time_ns = 0;
	EXPECT_EQ(tdsbpf::format_syslog(h, "x"), "<134>1 1970-01-01T00:00:00.000000Z - tdsbpf - event - x");
	h.hostname = std::string(300, 'h');
	std::string longhost = tdsbpf::format_syslog(h, "x");
	EXPECT_NE(longhost.find(" " + std::string(255, 'h') + " tdsbpf "), std::string::npos);
	EXPECT_EQ(longhost.find(std::string(256, 'h')), std::string::npos);
}

TEST(Syslog, OctetCountingFraming)
{
	EXPECT_EQ(tdsbpf::octet_counted("<134>1 - - - - - - hi"), "21 <134>1 - - - - - - hi");
	EXPECT_EQ(tdsbpf::octet_counted(""), "0 ");
	// the count is of octets, not characters
	EXPECT_EQ(tdsbpf::octet_counted("\xc3\xa9"), "2 \xc3\xa9");
}

TEST(Syslog, SeverityFromTheDiagnoses)
{
	EXPECT_EQ(tdsbpf::record_severity(R"({"diagnoses":[]})"), tdsbpf::kSyslogInfo);
	EXPECT_EQ(tdsbpf::record_severity(R"({"diagnoses":[{"code":"x","severity":"info"}]})"), tdsbpf::kSyslogInfo);
	EXPECT_EQ(tdsbpf::record_severity(
			  R"({"diagnoses":[{"code":"a","severity":"info"},{"code":"b","severity":"warning"}]})"),
		  tdsbpf::kSyslogWarning);
	EXPECT_EQ(tdsbpf::record_severity(
			  R"({"diagnoses":[{"code":"a","severity":"warning"},{"code":"b","severity":"error"}]})"),
		  tdsbpf::kSyslogError);
	// text inside a string (an application name, say) is not a diagnosis
	EXPECT_EQ(tdsbpf::record_severity(R"({"app":"\"severity\":\"error\"","diagnoses":[]})"), tdsbpf::kSyslogInfo);
}

// The records of the real captures carry the severities their diagnoses say.
TEST(Syslog, SeverityOfRealRecords)
{
	ASSERT_TRUE(fs::is_directory(kCaptures)) << kCaptures;
	for (const fs::path& cap : {kSql2000, kMidstream}) {
		Proc r = run_tdsbpf({"--read", cap.string()});
		ASSERT_EQ(r.rc, 0) << r.err;
		std::istringstream in(r.out);
		std::string line;
		while (std::getline(in, line)) {
			json j = json::parse(line);
			int want = tdsbpf::kSyslogInfo;
			for (const auto& d : j["diagnoses"])
				want = std::min(want, d["severity"] == "error"	   ? tdsbpf::kSyslogError
						      : d["severity"] == "warning" ? tdsbpf::kSyslogWarning
										   : tdsbpf::kSyslogInfo);
			EXPECT_EQ(tdsbpf::record_severity(line), want) << line;
		}
	}
}

// ---- the binary ---------------------------------------------------------------

// Refused with status 2 and the option named, before anything is attached
// (the interface does not exist: it would be the error otherwise).
TEST(OutputsBinary, BadSpecsAreRefused)
{
	TempDir t;
	const std::string none = "--iface tdsbpfnoiface";
	const std::string rd = "--read " + kSql2000.string();
	const std::string sock = (fs::path(t.path()) / "s.sock").string();
	const std::pair<std::string, std::string> cases[] = {
		{"--output bogus " + none, "--output: 'bogus' is not an output"},
		{"--output ftp:x:21 " + rd, "--output: 'ftp:' is not a kind of output"},
		{"--output tcp:127.0.0.1 " + none, "--output: tcp:127.0.0.1: no port"},
		{"--output syslog::514 " + rd, "--output: syslog::514: no host"},
		{"--output tcp:127.0.0.1:70000 " + none, "from 1 to 65535"},
		{"--events-output syslog+udp:10.0.0.1 " + rd, "--events-output: syslog+udp:10.0.0.1: no port"},
		{"--output file:/nonexistent/dir/records.ndjson " + none,
		 "--output file:/nonexistent/dir/records.ndjson: cannot open /nonexistent/dir/records.ndjson: No such file"},
		{"--events-output file:/nonexistent/e.ndjson " + rd,
		 "--events-output file:/nonexistent/e.ndjson: cannot open"},
		{"--output file:" + fs::path(t.path()).string() + " " + rd, "Is a directory"},
		{"--output syslog:127.0.0.1:514 --format text " + none,
		 "syslog takes the JSON records, not --format text"},
		{"--output file:" + (fs::path(t.path()) / "x").string() +
			 " --events-output file:" + (fs::path(t.path()) / "x").string() + " " + rd,
		 "the same file as --output"},
		{"--events --events-output unix:" + sock + " " + rd, "--events excludes --events-output"},
		{"--output-buffer-mb 0 --output tcp:127.0.0.1:9 " + none, "--output-buffer-mb"},
		{"--output-buffer-mb 2048 " + rd, "--output-buffer-mb"},
	};
	for (const auto& [args, says] : cases) {
		std::vector<std::string> argv;
		std::istringstream in(args);
		for (std::string a; in >> a;)
			argv.push_back(a);
		Proc r = run_tdsbpf(argv);
		EXPECT_EQ(r.rc, 2) << args << ": " << r.err;
		EXPECT_NE(r.err.find(says), std::string::npos) << args << ": " << r.err;
		EXPECT_EQ(r.err.find("tdsbpfnoiface"), std::string::npos) << args << ": " << r.err;
	}
}

// A file is appended to, and holds what standard output would have; the
// raw events go to their own file at the same time.
TEST(OutputsBinary, FilesAppendedToRecordsAndEventsApart)
{
	ASSERT_TRUE(fs::is_directory(kCaptures)) << kCaptures;
	TempDir t;
	Proc plain = run_tdsbpf({"--read", kMidstream.string()});
	Proc events = run_tdsbpf({"--read", kMidstream.string(), "--events"});
	ASSERT_EQ(plain.rc, 0) << plain.err;
	ASSERT_EQ(events.rc, 0) << events.err;
	ASSERT_EQ(ndjson(plain.out).size(), 12u);

	std::string rec = (fs::path(t.path()) / "records.ndjson").string(),
		    ev = (fs::path(t.path()) / "events.ndjson").string();
	for (int i = 0; i < 2; i++) {
		Proc r = run_tdsbpf(
			{"--read", kMidstream.string(), "--output", "file:" + rec, "--events-output", "file:" + ev});
		ASSERT_EQ(r.rc, 0) << r.err;
		EXPECT_TRUE(r.out.empty()) << r.out;
		json s = json::parse(r.err.substr(r.err.rfind("{\"by_close_kind\"")));
		EXPECT_EQ(s["output"], json({{"to", "file:" + rec}, {"records_dropped", 0}, {"reconnects", 0}}));
		EXPECT_EQ(s["events_output"], json({{"to", "file:" + ev}, {"events_dropped", 0}, {"reconnects", 0}}));
	}
	EXPECT_EQ(slurp(rec), plain.out + plain.out);
	EXPECT_EQ(slurp(ev), events.out + events.out);
	EXPECT_EQ(fs::status(rec).permissions() & fs::perms::others_all, fs::perms::none);

	// --events alone: events instead of records, to --output
	Proc r = run_tdsbpf({"--read", kMidstream.string(), "--events", "--output", "file:" + ev});
	ASSERT_EQ(r.rc, 0) << r.err;
	EXPECT_EQ(slurp(ev), events.out + events.out + events.out);
	EXPECT_NE(r.err.find("\"output\":{\"events_dropped\":0,\"reconnects\":0}"), std::string::npos) << r.err;

	// the text view to a file
	Proc text = run_tdsbpf({"--read", kSql2000.string(), "--format", "text"});
	std::string tf = (fs::path(t.path()) / "timeline.txt").string();
	r = run_tdsbpf({"--read", kSql2000.string(), "--format", "text", "--output", "file:" + tf});
	ASSERT_EQ(r.rc, 0) << r.err;
	EXPECT_EQ(slurp(tf), text.out);
	EXPECT_NE(r.err.find("   output: file:" + tf + ", 0 records dropped, 0 reconnects"), std::string::npos)
		<< r.err;
}

// A Unix stream socket the test listens on (no network needed): NDJSON
// lines, the same as standard output's; and one nobody listens on: the
// records are counted as dropped, the run is not failed.
TEST(OutputsBinary, UnixSocketGetsTheRecords)
{
	ASSERT_TRUE(fs::is_directory(kCaptures)) << kCaptures;
	TempDir t;
	std::string path = (fs::path(t.path()) / "records.sock").string();
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_GE(ls, 0);
	sockaddr_un sa{};
	sa.sun_family = AF_UNIX;
	std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
	ASSERT_EQ(bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0) << std::strerror(errno);
	ASSERT_EQ(listen(ls, 4), 0);
	std::string got;
	std::thread reader([&] {
		int c = accept(ls, nullptr, nullptr);
		if (c < 0)
			return;
		char buf[4096];
		for (ssize_t n; (n = read(c, buf, sizeof(buf))) > 0;)
			got.append(buf, static_cast<std::size_t>(n));
		close(c);
	});
	Proc r = run_tdsbpf({"--read", kMidstream.string(), "--output", "unix:" + path});
	shutdown(ls, SHUT_RDWR);
	reader.join();
	close(ls);
	ASSERT_EQ(r.rc, 0) << r.err;
	Proc plain = run_tdsbpf({"--read", kMidstream.string()});
	EXPECT_EQ(got, plain.out);
	EXPECT_NE(r.err.find("\"output\":{\"reconnects\":0,\"records_dropped\":0,\"to\":\"unix:" + path + "\"}"),
		  std::string::npos)
		<< r.err;

	auto start = std::chrono::steady_clock::now();
	r = run_tdsbpf(
		{"--read", kMidstream.string(), "--output", "unix:" + (fs::path(t.path()) / "nobody.sock").string()});
	double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
	EXPECT_EQ(r.rc, 0) << r.err;
	EXPECT_NE(r.err.find("cannot connect: No such file or directory"), std::string::npos) << r.err;
	EXPECT_NE(r.err.find("records dropped: 12 (not sent by the end of the run)"), std::string::npos) << r.err;
	EXPECT_NE(r.err.find("\"records_dropped\":12"), std::string::npos) << r.err;
	// the last attempt to send gets 2 s, not more
	EXPECT_LT(secs, 5.0);
}

// ---- SIGHUP ------------------------------------------------------------------

// A pcap file cut into its global header and its frames.
struct Pcap {
	std::string header;
	std::vector<std::string> frames;
};

Pcap split_pcap(const fs::path& p)
{
	std::string b = slurp(p);
	Pcap out;
	out.header = b.substr(0, 24);
	bool swapped = static_cast<uint8_t>(b[0]) == 0xa1 || static_cast<uint8_t>(b[0]) == 0x4d;
	EXPECT_FALSE(swapped) << p << ": big-endian files are not split here";
	for (std::size_t at = 24; at + 16 <= b.size();) {
		uint32_t len;
		std::memcpy(&len, b.data() + at + 8, 4);
		if (swapped)
			len = __builtin_bswap32(len);
		out.frames.push_back(b.substr(at, 16 + len));
		at += 16 + len;
	}
	return out;
}

// A frame's time (a little-endian pcap file, microseconds).
uint64_t frame_ns(const std::string& frame)
{
	uint32_t sec, usec;
	std::memcpy(&sec, frame.data(), 4);
	std::memcpy(&usec, frame.data() + 4, 4);
	return sec * 1'000'000'000ULL + usec * 1000ULL;
}

// Whether pid waits for more input on a pipe (it has taken all there was).
bool waits_on_pipe(pid_t pid)
{
	for (int i = 0; i < 500; i++) {
		std::string w = slurp("/proc/" + std::to_string(pid) + "/wchan");
		if (w.find("pipe_read") != std::string::npos || w.find("pipe_wait") != std::string::npos)
			return true;
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	}
	return false;
}

// logrotate's way: the file is moved, tdsbpf gets SIGHUP, and what comes
// after goes to a new file of the same name; the run goes on. The capture
// comes through a pipe, half before the SIGHUP and half after; events are
// written as they come, so each file has its half.
TEST(OutputsBinary, SighupOpensTheFileAgain)
{
	ASSERT_TRUE(fs::is_directory(kCaptures)) << kCaptures;
	TempDir t;
	Pcap cap = split_pcap(kSql2000);
	ASSERT_EQ(cap.frames.size(), 13u);
	Proc whole = run_tdsbpf({"--read", kSql2000.string(), "--events"});
	ASSERT_EQ(whole.rc, 0) << whole.err;

	std::string file = (fs::path(t.path()) / "events.ndjson").string(), moved = file + ".1";
	int p[2];
	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	bool waited = false;
	Proc r = run_tdsbpf({"--read", "-", "--events", "--output", "file:" + file, "--verbose"}, p[0], [&](pid_t pid) {
		close(p[0]);
		std::string first = cap.header;
		for (std::size_t i = 0; i < 7; i++)
			first += cap.frames[i];
		EXPECT_EQ(write(p[1], first.data(), first.size()), static_cast<ssize_t>(first.size()));
		waited = waits_on_pipe(pid);
		fs::rename(file, moved);
		kill(pid, SIGHUP);
		std::this_thread::sleep_for(std::chrono::milliseconds(200));
		std::string rest;
		for (std::size_t i = 7; i < cap.frames.size(); i++)
			rest += cap.frames[i];
		EXPECT_EQ(write(p[1], rest.data(), rest.size()), static_cast<ssize_t>(rest.size()));
		close(p[1]);
	});
	ASSERT_TRUE(waited) << "tdsbpf did not wait on the pipe";
	EXPECT_EQ(r.rc, 0) << r.err;
	EXPECT_NE(r.err.find("--output file:" + file + ": opened again (SIGHUP)"), std::string::npos) << r.err;
	std::string before = slurp(moved), after = slurp(file);
	EXPECT_EQ(before + after, whole.out);
	auto b = ndjson(before), a = ndjson(after);
	ASSERT_FALSE(b.empty());
	ASSERT_FALSE(a.empty());
	// the cut is between the 7th and the 8th frame
	EXPECT_LE(b.back()["ts_ns"].get<uint64_t>(), frame_ns(cap.frames[6]));
	EXPECT_GE(a.front()["ts_ns"].get<uint64_t>(), frame_ns(cap.frames[7]));
}

// Without a file, SIGHUP changes nothing: the run goes on.
TEST(OutputsBinary, SighupWithoutAFileIsHarmless)
{
	ASSERT_TRUE(fs::is_directory(kCaptures)) << kCaptures;
	Pcap cap = split_pcap(kSql2000);
	int p[2];
	ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
	Proc r = run_tdsbpf({"--read", "-", "--verbose"}, p[0], [&](pid_t pid) {
		close(p[0]);
		std::string first = cap.header + cap.frames[0];
		EXPECT_EQ(write(p[1], first.data(), first.size()), static_cast<ssize_t>(first.size()));
		EXPECT_TRUE(waits_on_pipe(pid));
		kill(pid, SIGHUP);
		std::this_thread::sleep_for(std::chrono::milliseconds(200));
		std::string rest;
		for (std::size_t i = 1; i < cap.frames.size(); i++)
			rest += cap.frames[i];
		EXPECT_EQ(write(p[1], rest.data(), rest.size()), static_cast<ssize_t>(rest.size()));
		close(p[1]);
	});
	EXPECT_EQ(r.rc, 0) << r.err;
	EXPECT_EQ(ndjson(r.out).size(), 1u) << r.out;
	EXPECT_NE(r.err.find("SIGHUP: no file output to open again"), std::string::npos) << r.err;
}

} // namespace
