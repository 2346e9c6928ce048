// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The pcapng writer: crafted Ethernet and raw IP frames carrying TDS,
// written with connection comments on two interfaces, then read back by the
// real tshark and capinfos (frames, comments, interface names, nanosecond
// timestamps, cut packets, the TDS dissector); files rotated by size and
// the oldest removed; the block layout byte by byte; and write errors (a
// missing directory, a full disk) reported with the path and the reason.
#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "builder.h"
#include "lab/process.h"
#include "pcapng.h"
#include "require.h"

namespace fs = std::filesystem;
using tb::Bytes;
using tdsbpf::kLinktypeEthernet;
using tdsbpf::kLinktypeRawIp;
using tdsbpf::PcapngWriter;

namespace {

// A private directory, removed with what is in it at scope exit.
struct ScratchDir : tdsbpf::lab::TempDir {
	ScratchDir() : tdsbpf::lab::TempDir("tdsbpf-pcapng") {}
};

std::string slurp(const fs::path& p)
{
	std::ifstream f(p, std::ios::binary);
	std::stringstream ss;
	ss << f.rdbuf();
	return ss.str();
}

struct Tool {
	int rc = -1;
	std::string out, err;
};

bool have(const char* tool)
{
	return tdsbpf::lab::run_quiet(std::string("command -v ") + tool) == 0;
}

#define NEED_TSHARK() \
	TDSBPF_REQUIRE(have("tshark") && have("capinfos"), "tshark is not installed (Debian package tshark)")

// argv with stdout and stderr apart; tshark's warning about running as root
// is not an error and is left out of err.
Tool run(const std::vector<std::string>& argv)
{
	ScratchDir t;
	tdsbpf::lab::SpawnOptions o;
	o.stdout_path = t.file("out");
	o.stderr_path = t.file("err");
	Tool r;
	pid_t pid = tdsbpf::lab::spawn(argv, o);
	if (pid < 0)
		return r;
	r.rc = tdsbpf::lab::wait_exit(pid, std::chrono::seconds(60));
	r.out = slurp(o.stdout_path);
	std::istringstream err(slurp(o.stderr_path));
	std::string line;
	while (std::getline(err, line))
		if (!line.empty() && line.find("Running as user") == std::string::npos)
			r.err += line + "\n";
	return r;
}

std::vector<std::string> split(const std::string& s, char sep)
{
	std::vector<std::string> v;
	std::string cur;
	for (char c : s) {
		if (c == sep) {
			v.push_back(cur);
			cur.clear();
		} else {
			cur += c;
		}
	}
	v.push_back(cur);
	return v;
}

// tshark's fields of every frame of file, one row per frame.
std::vector<std::vector<std::string>> fields(const std::string& file, const std::vector<std::string>& names,
					     const std::string& filter = {})
{
	std::vector<std::string> argv{"tshark", "-n", "-r", file, "-d", "tcp.port==1433,tds", "-T", "fields"};
	for (const auto& n : names) {
		argv.push_back("-e");
		argv.push_back(n);
	}
	if (!filter.empty()) {
		argv.push_back("-Y");
		argv.push_back(filter);
	}
	Tool r = run(argv);
	EXPECT_EQ(r.rc, 0) << file << ": " << r.err;
	EXPECT_EQ(r.err, "") << file;
	std::vector<std::vector<std::string>> rows;
	std::istringstream in(r.out);
	std::string line;
	while (std::getline(in, line))
		rows.push_back(split(line, '\t'));
	return rows;
}

// "1700000000.123456789": how tshark shows a nanosecond frame.time_epoch.
std::string epoch(std::uint64_t ns)
{
	char b[40];
	std::snprintf(b, sizeof b, "%llu.%09llu", static_cast<unsigned long long>(ns / 1000000000),
		      static_cast<unsigned long long>(ns % 1000000000));
	return b;
}

std::span<const std::uint8_t> bytes(const Bytes& b)
{
	return {b.data(), b.size()};
}

// A frame to write and what tshark should show of it.
struct Frame {
	std::uint32_t ifindex;
	std::string ifname;
	std::uint16_t linktype;
	std::uint64_t ts;
	Bytes data;
	std::size_t cut = 0; // keep only this prefix (0: all)
	std::string comment;
	std::string tds_type; // tds.type as tshark shows it ("" for none)
};

constexpr std::uint64_t kT0 = 1700000000123456789ULL;

// A connection on eth0 (Ethernet): handshake, PRELOGIN both ways, a SQL
// batch and its reply (cut); and one on a raw IP interface: PRELOGIN and a
// batch. The handshake's last ACK has no comment.
std::vector<Frame> two_connections()
{
	const Bytes pre_client = tb::prelogin({{0, {0x10, 0x00, 0x07, 0xd0, 0x00, 0x00}}, {1, {0x00}}});
	const Bytes pre_server = tb::prelogin({{0, {0x10, 0x00, 0x07, 0xd0, 0x00, 0x00}}, {1, {0x02}}});
	const Bytes reply = tb::cat({tb::tok_colmetadata_int(), tb::tok_done(0x10, 0xc1, 1, true)});

	tb::Conn a;
	tb::Conn b;
	b.caddr = {10, 9, 0, 5};
	b.saddr = {10, 9, 0, 6};
	b.cport = 41000;
	const std::string ca = "tdsbpf.connection_id=7";
	const std::string cb = "tdsbpf.connection_id=8";
	std::vector<Frame> f;
	auto eth = [&](Bytes d, std::string comment, std::string type, std::size_t cut = 0) {
		f.push_back({3, "eth0", kLinktypeEthernet, kT0 + f.size() * 1000003, std::move(d), cut,
			     std::move(comment), std::move(type)});
	};
	auto raw = [&](Bytes d, std::string comment, std::string type) {
		f.push_back({9, "tdsbpf-vs1", kLinktypeRawIp, kT0 + f.size() * 1000003, std::move(d), 0,
			     std::move(comment), std::move(type)});
	};
	// the client's data on the raw IP interface, mid-connection
	auto b_data = [&](const Bytes& payload) {
		Bytes p = b.ip(true, b.cseq, b.sseq, tb::ACK | tb::PSH, payload);
		b.cseq += static_cast<std::uint32_t>(payload.size());
		return p;
	};
	eth(a.syn(), ca, "");
	eth(a.synack(), ca, "");
	eth(a.ack(true), "", "");
	eth(a.data(true, tb::tds(0x12, 0x01, pre_client)), ca, "18");
	raw(b_data(tb::tds(0x12, 0x01, pre_client)), cb, "18");
	eth(a.data(false, tb::tds(0x04, 0x01, pre_server)), ca + " phase=prelogin", "4");
	eth(a.data(true, tb::tds(0x01, 0x01, tb::batch_body("SELECT 1"))), ca, "1");
	raw(b_data(tb::tds(0x01, 0x01, tb::batch_body("SELECT name FROM sys.databases"))), cb, "1");
	// the reply cut after the TDS header: tshark still knows the type
	eth(a.data(false, tb::tds(0x04, 0x01, reply)), ca, "4", 14 + 20 + 20 + 8 + 4);
	return f;
}

void write_all(PcapngWriter& w, const std::vector<Frame>& frames)
{
	for (const auto& f : frames) {
		auto d = bytes(f.data);
		if (f.cut)
			d = d.first(f.cut);
		w.packet(f.ifindex, f.ifname, f.linktype, f.ts, static_cast<std::uint32_t>(f.data.size()), d,
			 f.comment);
	}
}

// ---- tshark reads what was written --------------------------------------------

TEST(Pcapng, TsharkReadsFramesCommentsInterfacesAndTds)
{
	NEED_TSHARK();
	ScratchDir t;
	const std::string path = t.file("trace.pcapng");
	const auto frames = two_connections();
	{
		PcapngWriter w({.path = path, .application = "tdsbpf 9.9.9-test"});
		write_all(w, frames);
		w.close();
		EXPECT_EQ(w.packets(), frames.size());
		EXPECT_EQ(w.files(), 1u);
		EXPECT_EQ(w.current_path(), path);
	}

	auto rows = fields(path, {"frame.number", "frame.interface_name", "frame.comment", "frame.time_epoch",
				  "frame.len", "frame.cap_len", "tds.type", "ip.src"});
	ASSERT_EQ(rows.size(), frames.size());
	for (std::size_t i = 0; i < frames.size(); i++) {
		const auto& r = rows[i];
		const auto& f = frames[i];
		ASSERT_EQ(r.size(), 8u) << i;
		EXPECT_EQ(r[0], std::to_string(i + 1));
		EXPECT_EQ(r[1], f.ifname) << i;
		EXPECT_EQ(r[2], f.comment) << i;
		EXPECT_EQ(r[3], epoch(f.ts)) << i;
		EXPECT_EQ(r[4], std::to_string(f.data.size())) << i;
		EXPECT_EQ(r[5], std::to_string(f.cut ? f.cut : f.data.size())) << i;
		EXPECT_EQ(r[6], f.tds_type) << i;
		// frames 2, 6 and 9 are the server's
		const bool from_server = i == 1 || i == 5 || i == 8;
		EXPECT_EQ(r[7], f.linktype == kLinktypeRawIp ? "10.9.0.5" : from_server ? "10.0.0.2" : "10.0.0.1") << i;
	}

	// The dissector names the messages without the port hint too (1433 is
	// its port), and nothing is malformed.
	Tool v = run({"tshark", "-n", "-r", path, "-V"});
	EXPECT_EQ(v.rc, 0) << v.err;
	EXPECT_EQ(v.err, "");
	EXPECT_NE(v.out.find("Type: TDS7 pre-login message (18)"), std::string::npos);
	EXPECT_NE(v.out.find("Query: SELECT 1\n"), std::string::npos);
	EXPECT_NE(v.out.find("Packet size limited during capture"), std::string::npos);
	EXPECT_EQ(fields(path, {"frame.number"}, "_ws.malformed").size(), 0u);

	Tool c = run({"capinfos", "-M", path});
	EXPECT_EQ(c.rc, 0) << c.err;
	EXPECT_EQ(c.err, "");
	EXPECT_NE(c.out.find("File type:           pcapng\n"), std::string::npos) << c.out;
	EXPECT_NE(c.out.find("Number of packets:   " + std::to_string(frames.size()) + "\n"), std::string::npos)
		<< c.out;
	EXPECT_NE(c.out.find("Capture application: tdsbpf 9.9.9-test"), std::string::npos) << c.out;
	EXPECT_NE(c.out.find("Number of interfaces in file: 2"), std::string::npos) << c.out;
	EXPECT_NE(c.out.find("Name = eth0"), std::string::npos) << c.out;
	EXPECT_NE(c.out.find("Name = tdsbpf-vs1"), std::string::npos) << c.out;
	EXPECT_NE(c.out.find("Encapsulation = Ethernet (1 - ether)"), std::string::npos) << c.out;
	EXPECT_NE(c.out.find("Encapsulation = Raw IP (7 - rawip)"), std::string::npos) << c.out;
	EXPECT_NE(c.out.find("Time precision = nanoseconds (9)"), std::string::npos) << c.out;
}

// ---- rotation ---------------------------------------------------------------

TEST(Pcapng, RotatesBySizeIntoFilesTsharkReads)
{
	NEED_TSHARK();
	ScratchDir t;
	const std::string path = t.file("trace.pcapng");
	const std::uint64_t limit = 1200;
	std::vector<Frame> frames;
	for (int round = 0; round < 4; round++)
		for (auto& f : two_connections())
			frames.push_back(std::move(f));
	for (std::size_t i = 0; i < frames.size(); i++)
		frames[i].comment = "tdsbpf.connection_id=" + std::to_string(i);

	std::uint64_t files = 0;
	{
		PcapngWriter w({.path = path, .rotate_bytes = limit, .application = "tdsbpf"});
		write_all(w, frames);
		w.flush();
		files = w.files();
		EXPECT_EQ(w.packets(), frames.size());
		EXPECT_EQ(w.current_path(), t.file("trace." + std::to_string(files - 1) + ".pcapng"));
	}
	ASSERT_GE(files, 3u);

	std::vector<std::string> comments;
	for (std::uint64_t n = 0; n < files; n++) {
		std::string file = n == 0 ? path : t.file("trace." + std::to_string(n) + ".pcapng");
		ASSERT_TRUE(fs::exists(file)) << file;
		EXPECT_LE(fs::file_size(file), limit) << file;
		auto rows = fields(file, {"frame.interface_name", "frame.comment", "frame.time_epoch"});
		EXPECT_FALSE(rows.empty()) << file;
		for (const auto& r : rows) {
			ASSERT_EQ(r.size(), 3u) << file;
			// each file describes its own interfaces
			EXPECT_TRUE(r[0] == "eth0" || r[0] == "tdsbpf-vs1") << file << ": " << r[0];
			const auto& f = frames[comments.size()];
			EXPECT_EQ(r[0], f.ifname) << file;
			EXPECT_EQ(r[2], epoch(f.ts)) << file;
			comments.push_back(r[1]);
		}
	}
	EXPECT_FALSE(fs::exists(t.file("trace." + std::to_string(files) + ".pcapng")));
	ASSERT_EQ(comments.size(), frames.size());
	for (std::size_t i = 0; i < frames.size(); i++)
		EXPECT_EQ(comments[i], frames[i].comment);
}

std::vector<std::string> listing(const std::string& dir)
{
	std::vector<std::string> v;
	for (const auto& e : fs::directory_iterator(dir))
		v.push_back(e.path().filename().string());
	std::sort(v.begin(), v.end());
	return v;
}

TEST(Pcapng, KeepFilesRemovesTheOldest)
{
	ScratchDir t;
	const Bytes frame = tb::Conn().syn();
	PcapngWriter w({.path = t.file("trace.pcapng"), .rotate_bytes = 1, .keep_files = 2});
	// one packet a file: a file always takes its first packet
	for (std::uint64_t i = 0; i < 5; i++)
		w.packet(3, "eth0", kLinktypeEthernet, kT0 + i, 60, bytes(frame), "");
	w.close();
	EXPECT_EQ(w.files(), 5u);
	EXPECT_EQ(w.packets(), 5u);
	EXPECT_EQ(listing(t.path()), (std::vector<std::string>{"trace.3.pcapng", "trace.4.pcapng"}));

	if (have("tshark")) {
		EXPECT_EQ(fields(t.file("trace.3.pcapng"), {"frame.number"}).size(), 1u);
		EXPECT_EQ(fields(t.file("trace.4.pcapng"), {"frame.number"}).size(), 1u);
	}
}

TEST(Pcapng, NamesLaterFilesAfterTheFirst)
{
	ScratchDir t;
	const Bytes frame = tb::Conn().syn();
	PcapngWriter w({.path = t.file("trace"), .rotate_bytes = 1});
	EXPECT_EQ(w.current_path(), t.file("trace"));
	for (int i = 0; i < 3; i++)
		w.packet(1, "lo", kLinktypeEthernet, kT0, 60, bytes(frame), "");
	EXPECT_EQ(w.current_path(), t.file("trace.2"));
	w.close();
	EXPECT_EQ(listing(t.path()), (std::vector<std::string>{"trace", "trace.1", "trace.2"}));

	// a dot in the directory is not an extension
	fs::create_directory(t.file("run.d"));
	PcapngWriter d({.path = t.file("run.d/cap.v2.pcapng"), .rotate_bytes = 1});
	d.packet(1, "lo", kLinktypeEthernet, kT0, 60, bytes(frame), "");
	d.packet(1, "lo", kLinktypeEthernet, kT0, 60, bytes(frame), "");
	EXPECT_EQ(d.current_path(), t.file("run.d/cap.v2.1.pcapng"));
}

// ---- the bytes --------------------------------------------------------------

template <typename T> T at(const std::string& s, std::size_t off)
{
	T v{};
	std::memcpy(&v, s.data() + off, sizeof v);
	return v;
}

struct Block {
	std::uint32_t type;
	std::string body; // between the leading length and the trailing one
};

// Walks the file's blocks, checking the lengths at both ends.
std::vector<Block> blocks(const std::string& s)
{
	std::vector<Block> v;
	std::size_t off = 0;
	while (off < s.size()) {
		EXPECT_LE(off + 12, s.size());
		if (off + 12 > s.size())
			break;
		auto type = at<std::uint32_t>(s, off);
		auto len = at<std::uint32_t>(s, off + 4);
		EXPECT_EQ(len % 4, 0u) << "block at " << off;
		EXPECT_LE(off + len, s.size()) << "block at " << off;
		if (len < 12 || off + len > s.size())
			break;
		EXPECT_EQ(at<std::uint32_t>(s, off + len - 4), len) << "block at " << off;
		v.push_back({type, s.substr(off + 8, len - 12)});
		off += len;
	}
	return v;
}

// The options of a block body from off: code to value.
std::vector<std::pair<std::uint16_t, std::string>> options(const std::string& body, std::size_t off)
{
	std::vector<std::pair<std::uint16_t, std::string>> v;
	while (off + 4 <= body.size()) {
		auto code = at<std::uint16_t>(body, off);
		auto len = at<std::uint16_t>(body, off + 2);
		v.emplace_back(code, body.substr(off + 4, len));
		off += 4 + len + (4 - len % 4) % 4;
		if (code == 0)
			break;
	}
	EXPECT_EQ(off, body.size()) << "options end the block";
	return v;
}

TEST(Pcapng, BlocksAsTheSpecificationLaysThemOut)
{
	ScratchDir t;
	const std::string path = t.file("trace.pcapng");
	const Bytes frame = tb::Conn().data(true, tb::tds(0x01, 0x01, tb::batch_body(std::string(150, 'x'))));
	{
		PcapngWriter w({.path = path, .snaplen = 96, .application = "tdsbpf 1.2.0"});
		w.packet(3, "eth0", kLinktypeEthernet, 0x0000000123456789ULL, 0, bytes(frame),
			 "tdsbpf.connection_id=7");
		w.packet(3, "eth0", kLinktypeEthernet, kT0, 61, bytes(frame).first(61), "");
		w.packet(4, "eth1", kLinktypeRawIp, kT0 + 1, 40, bytes(frame).subspan(14, 40), "a");
	}
	const std::string s = slurp(path);
	auto b = blocks(s);
	ASSERT_EQ(b.size(), 6u);
	std::vector<std::uint32_t> types;
	for (const auto& x : b)
		types.push_back(x.type);
	EXPECT_EQ(types, (std::vector<std::uint32_t>{0x0A0D0D0A, 1, 6, 6, 1, 6}));

	// SHB: magic, version 1.0, unknown section length, shb_userappl
	EXPECT_EQ(at<std::uint32_t>(b[0].body, 0), 0x1A2B3C4Du);
	EXPECT_EQ(at<std::uint16_t>(b[0].body, 4), 1u);
	EXPECT_EQ(at<std::uint16_t>(b[0].body, 6), 0u);
	EXPECT_EQ(at<std::int64_t>(b[0].body, 8), -1);
	auto shb = options(b[0].body, 16);
	ASSERT_EQ(shb.size(), 2u);
	EXPECT_EQ(shb[0], (std::pair<std::uint16_t, std::string>{4, "tdsbpf 1.2.0"}));
	EXPECT_EQ(shb[1].first, 0u);

	// IDB: link type, snaplen, if_name, if_tsresol 9
	EXPECT_EQ(at<std::uint16_t>(b[1].body, 0), kLinktypeEthernet);
	EXPECT_EQ(at<std::uint32_t>(b[1].body, 4), 96u);
	auto idb = options(b[1].body, 8);
	ASSERT_EQ(idb.size(), 3u);
	EXPECT_EQ(idb[0], (std::pair<std::uint16_t, std::string>{2, "eth0"}));
	EXPECT_EQ(idb[1], (std::pair<std::uint16_t, std::string>{9, std::string(1, '\x09')}));
	EXPECT_EQ(idb[2].first, 0u);
	EXPECT_EQ(at<std::uint16_t>(b[4].body, 0), kLinktypeRawIp);

	// EPB: interface, timestamp in two halves, lengths (cut to snaplen; an
	// original length below the captured one is raised), data, comment
	EXPECT_EQ(at<std::uint32_t>(b[2].body, 0), 0u);
	EXPECT_EQ(at<std::uint32_t>(b[2].body, 4), 0x1u);
	EXPECT_EQ(at<std::uint32_t>(b[2].body, 8), 0x23456789u);
	EXPECT_EQ(at<std::uint32_t>(b[2].body, 12), 96u);
	EXPECT_EQ(at<std::uint32_t>(b[2].body, 16), 96u);
	EXPECT_EQ(b[2].body.substr(20, 96), std::string(frame.begin(), frame.begin() + 96));
	auto epb = options(b[2].body, 20 + 96);
	ASSERT_EQ(epb.size(), 2u);
	EXPECT_EQ(epb[0], (std::pair<std::uint16_t, std::string>{1, "tdsbpf.connection_id=7"}));
	EXPECT_EQ(epb[1].first, 0u);

	// 61 bytes of data padded to 64, no options
	EXPECT_EQ(at<std::uint32_t>(b[3].body, 12), 61u);
	EXPECT_EQ(b[3].body.size(), 20u + 64u);
	EXPECT_EQ(b[3].body.substr(20 + 61), std::string(3, '\0'));

	// the second interface is id 1
	EXPECT_EQ(at<std::uint32_t>(b[5].body, 0), 1u);
}

TEST(Pcapng, CutsLongStringsAtACharacterBoundary)
{
	ScratchDir t;
	const std::string path = t.file("trace.pcapng");
	// "é" (2 bytes) repeated: byte 65535 is the second byte of one
	std::string comment;
	while (comment.size() < 70000)
		comment += "\xc3\xa9";
	const Bytes frame = tb::Conn().syn();
	{
		PcapngWriter w({.path = path});
		w.packet(1, "lo", kLinktypeEthernet, kT0, 60, bytes(frame), comment);
	}
	auto b = blocks(slurp(path));
	ASSERT_EQ(b.size(), 3u);
	auto epb = options(b[2].body, 20 + ((frame.size() + 3) / 4) * 4);
	ASSERT_EQ(epb.size(), 2u);
	EXPECT_EQ(epb[0].second, comment.substr(0, 65534));
}

// ---- errors -----------------------------------------------------------------

TEST(Pcapng, UnwritablePathThrowsWithPathAndReason)
{
	ScratchDir t;
	const std::string path = t.file("no-such-directory/trace.pcapng");
	try {
		PcapngWriter w({.path = path});
		FAIL() << "opened " << path;
	} catch (const std::runtime_error& e) {
		EXPECT_EQ(std::string(e.what()),
			  "cannot write the packet capture to " + path + ": No such file or directory");
	}

	// a rotation into a directory that went away: the error, then the
	// writer still answers
	fs::create_directory(t.file("gone"));
	PcapngWriter w({.path = t.file("gone/trace.pcapng"), .rotate_bytes = 1});
	const Bytes frame = tb::Conn().syn();
	w.packet(1, "lo", kLinktypeEthernet, kT0, 60, bytes(frame), "");
	fs::remove_all(t.file("gone"));
	EXPECT_THROW(w.packet(1, "lo", kLinktypeEthernet, kT0, 60, bytes(frame), ""), std::runtime_error);
	EXPECT_THROW(w.packet(1, "lo", kLinktypeEthernet, kT0, 60, bytes(frame), ""), std::runtime_error);
	EXPECT_EQ(w.packets(), 1u);
	EXPECT_NO_THROW(w.flush());
}

TEST(Pcapng, FullDiskThrowsWithPathAndReason)
{
	ASSERT_TRUE(fs::exists("/dev/full"));
	const std::string want = "cannot write the packet capture to /dev/full: No space left on device";
	{
		PcapngWriter w({.path = "/dev/full"});
		try {
			w.flush();
			FAIL() << "flushed into /dev/full";
		} catch (const std::runtime_error& e) {
			EXPECT_EQ(std::string(e.what()), want);
		}
	}
	{
		// more than the stream buffers: packet() itself reports it
		PcapngWriter w({.path = "/dev/full"});
		const Bytes frame(1500, 0xab);
		std::string error;
		for (int i = 0; i < 200 && error.empty(); i++) {
			try {
				w.packet(1, "eth0", kLinktypeEthernet, kT0, 1500, bytes(frame),
					 "tdsbpf.connection_id=1");
			} catch (const std::runtime_error& e) {
				error = e.what();
			}
		}
		EXPECT_EQ(error, want);
		EXPECT_THROW(w.close(), std::runtime_error);
	}
}

} // namespace
