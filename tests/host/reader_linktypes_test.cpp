// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The capture reader on crafted pcap files, one per link type: each must give
// the same events as the Ethernet file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "builder.h"
#include "event_json.h"
#include "reader.h"

using namespace tb;
namespace fs = std::filesystem;

namespace {

struct Pkt {
	Bytes ip;
	bool c2s;
};

// A short conversation as IP packets: handshake, PRELOGIN both ways, LOGIN7,
// LOGINACK, a batch and its reply, four-way close.
std::vector<Pkt> conversation(bool v6)
{
	Conn k;
	k.v6 = v6;
	if (v6) {
		k.caddr = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
		k.saddr = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
	}
	std::vector<Pkt> v;
	auto add = [&](bool c2s, uint32_t seq, uint32_t ack, uint8_t fl, const Bytes& pl) {
		v.push_back({k.ip(c2s, seq, ack, fl, pl), c2s});
	};
	auto data = [&](bool c2s, const Bytes& pl) {
		uint32_t& s = c2s ? k.cseq : k.sseq;
		add(c2s, s, c2s ? k.sseq : k.cseq, ACK | PSH, pl);
		s += (uint32_t)pl.size();
	};
	add(true, k.cseq++, 0, SYN, {});
	add(false, k.sseq++, k.cseq, SYN | ACK, {});
	add(true, k.cseq, k.sseq, ACK, {});
	data(true, tds(TDS_PRELOGIN, 1, prelogin({{0, {0x11, 0, 0, 0, 0, 0}}, {1, {0}}})));
	data(false, tds(TDS_REPLY, 1, prelogin({{0, {16, 0, 2, 0x58, 0, 0}}, {1, {2}}})));
	data(true, tds(TDS_LOGIN7, 1, login7(Login7{})));
	data(false, tds(TDS_REPLY, 1, cat({tok_loginack(0x74000004, {16, 0, 2, 0x58}), tok_done(0, 0, 0)})));
	data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 1")));
	data(false, tds(TDS_REPLY, 1, cat({tok_colmetadata_int(), Bytes{0xd1, 1, 0, 0, 0}, tok_done(0x10, 0xc1, 1)})));
	add(true, k.cseq++, k.sseq, FIN | ACK, {});
	add(false, k.sseq, k.cseq, ACK, {});
	add(false, k.sseq++, k.cseq, FIN | ACK, {});
	add(true, k.cseq, k.sseq, ACK, {});
	return v;
}

Bytes wrap(int linktype, const Pkt& p, bool v6)
{
	uint16_t et = v6 ? 0x86dd : 0x0800;
	Bytes b;
	switch (linktype) {
	case 1: // Ethernet; vlan variant marked by linktype -1 below
	case -1:
		b = {0x02, 0, 0, 0, 0, (uint8_t)(p.c2s ? 2 : 1), 0x02, 0, 0, 0, 0, (uint8_t)(p.c2s ? 1 : 2)};
		if (linktype == -1) {
			be16(b, 0x8100);
			be16(b, 7);
		}
		be16(b, et);
		break;
	case 113:			// Linux cooked v1
		be16(b, p.c2s ? 4 : 0); // outgoing / to us
		be16(b, 1);		// ARPHRD_ETHER
		be16(b, 6);
		append(b, {0x02, 0, 0, 0, 0, 1, 0, 0});
		be16(b, et);
		break;
	case 276: // Linux cooked v2
		be16(b, et);
		be16(b, 0);
		be32(b, 2); // ifindex
		be16(b, 1);
		put8(b, p.c2s ? 4 : 0);
		put8(b, 6);
		append(b, {0x02, 0, 0, 0, 0, 1, 0, 0});
		break;
	case 0: // null: host-order address family
		le32(b, v6 ? 30 : 2);
		break;
	case 108: // loop: network order
		be32(b, v6 ? 30 : 2);
		break;
	default: // raw IP (101, 228, 229)
		break;
	}
	append(b, p.ip);
	return b;
}

fs::path write_pcap(const fs::path& dir, int linktype, bool v6)
{
	fs::path f = dir / ("lt" + std::to_string(linktype) + (v6 ? "-v6" : "-v4") + ".pcap");
	Bytes b;
	le32(b, 0xa1b2c3d4);
	le16(b, 2);
	le16(b, 4);
	le32(b, 0);
	le32(b, 0);
	le32(b, 65535);
	le32(b, linktype == -1 ? 1 : linktype);
	uint32_t sec = 1700000000, usec = 0;
	for (auto& p : conversation(v6)) {
		Bytes rec = wrap(linktype, p, v6);
		// 10 ms apart: well inside the periodic counters' interval
		le32(b, sec);
		le32(b, usec);
		usec += 10000;
		le32(b, (uint32_t)rec.size());
		le32(b, (uint32_t)rec.size());
		append(b, rec);
	}
	std::ofstream(f, std::ios::binary).write((const char*)b.data(), (std::streamsize)b.size());
	return f;
}

std::vector<nlohmann::json> read_events(const fs::path& f, tdsbpf::ReadStats* st = nullptr)
{
	std::vector<nlohmann::json> out;
	tdsbpf::HostParser p({}, [&](const tdsbpf_event& ev, std::size_t len) {
		if (ev.kind == TDSBPF_EV_EXCERPT)
			return; // not an event line (see tdsbpf --events)
		auto j = tdsbpf::event_to_json(ev, len, true);
		j.erase("vlan");
		out.push_back(j);
	});
	auto s = tdsbpf::read_capture(f.string(), p);
	if (st)
		*st = s;
	return out;
}

class LinkTypes : public ::testing::Test {
protected:
	void SetUp() override
	{
		dir = fs::temp_directory_path() / ("tdsbpf-lt-" + std::to_string(::getpid()));
		fs::create_directories(dir);
	}
	void TearDown() override { fs::remove_all(dir); }
	fs::path dir;
};

} // namespace

TEST_F(LinkTypes, SameEventsForEveryLinkType)
{
	for (bool v6 : {false, true}) {
		tdsbpf::ReadStats est;
		auto ref = read_events(write_pcap(dir, 1, v6), &est);
		// what the conversation must give, from the frames above
		ASSERT_EQ(ref.size(), 14u) << (v6 ? "v6" : "v4");
		std::vector<std::string> names;
		for (auto& j : ref)
			names.push_back(j["event"]);
		EXPECT_EQ(names, (std::vector<std::string>{"tcp_syn", "tcp_synack", "tcp_handshake_ack", "tds", "tds",
							   "tds", "tds", "tds", "tds", "tcp_fin", "tcp_close_ack",
							   "tcp_fin", "tcp_close_ack", "flow_stats"}));
		EXPECT_EQ(est.frames, 13u);
		EXPECT_EQ(est.duplicates, 0u);
		EXPECT_EQ(est.unsupported, 0u);
		EXPECT_EQ(est.linktype, 1);
		for (int lt : {-1, 113, 276, 0, 108, 101, v6 ? 229 : 228}) {
			tdsbpf::ReadStats st;
			auto got = read_events(write_pcap(dir, lt, v6), &st);
			EXPECT_EQ(st.frames, 13u) << lt;
			EXPECT_FALSE(st.truncated) << lt;
			ASSERT_EQ(got.size(), ref.size()) << "link type " << lt << (v6 ? " v6" : " v4");
			for (size_t i = 0; i < ref.size(); i++)
				EXPECT_EQ(got[i], ref[i]) << "link type " << lt << " event " << i;
		}
	}
}

// An IPv6 packet of 65536 bytes (loopback MTU is 65536; payload_len 65496
// fits its 16 bits) carrying two TDS packets of 32738 bytes, then a batch.
TEST_F(LinkTypes, LargestIpv6PacketSameForEveryLinkType)
{
	Conn k;
	k.v6 = true;
	k.caddr = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	k.saddr = k.caddr;
	k.cport = 41000;
	std::vector<Pkt> conv;
	auto add = [&](bool c2s, uint32_t seq, uint32_t ack, uint8_t fl, const Bytes& pl) {
		conv.push_back({k.ip(c2s, seq, ack, fl, pl), c2s});
	};
	add(true, k.cseq++, 0, SYN, {});
	add(false, k.sseq++, k.cseq, SYN | ACK, {});
	add(true, k.cseq, k.sseq, ACK, {});
	Bytes body(32738 - 8, 0x20);
	Bytes big = cat({tds(TDS_SQL_BATCH, 0, body, 0, 1), tds(TDS_SQL_BATCH, 1, body, 0, 2)});
	add(true, k.cseq, k.sseq, ACK, big);
	k.cseq += (uint32_t)big.size();
	ASSERT_EQ(conv.back().ip.size(), 65536u);
	add(true, k.cseq, k.sseq, ACK | PSH, tds(TDS_SQL_BATCH, 1, batch_body("select 1")));

	auto write = [&](int lt) {
		fs::path f = dir / ("big" + std::to_string(lt) + ".pcap");
		Bytes b;
		le32(b, 0xa1b2c3d4);
		le16(b, 2);
		le16(b, 4);
		le32(b, 0);
		le32(b, 0);
		le32(b, 262144);
		le32(b, lt);
		uint32_t usec = 0;
		for (auto& p : conv) {
			Bytes rec = wrap(lt, p, true);
			le32(b, 1700000000);
			le32(b, usec += 10000);
			le32(b, (uint32_t)rec.size());
			le32(b, (uint32_t)rec.size());
			append(b, rec);
		}
		std::ofstream(f, std::ios::binary).write((const char*)b.data(), (std::streamsize)b.size());
		return f;
	};
	auto ref = read_events(write(1));
	std::vector<std::string> names;
	for (auto& j : ref)
		names.push_back(j["event"]);
	ASSERT_EQ(names, (std::vector<std::string>{"tcp_syn", "tcp_synack", "tcp_handshake_ack", "tds", "tds", "tds"}));
	for (int lt : {113, 276, 0, 101, 229}) {
		tdsbpf::ReadStats st;
		auto got = read_events(write(lt), &st);
		EXPECT_EQ(st.frames, 5u);
		std::vector<std::string> got_names;
		for (auto& j : got)
			got_names.push_back(j["event"].get<std::string>() + (j.contains("lost") ? "(lost)" : ""));
		EXPECT_EQ(got_names, names) << "link type " << lt
					    << ": the 65536-byte packet is not walked (HostParser::process_ip drops "
					       "packets over 65535 bytes)";
	}
}

namespace {

// A pcapng file: one section, an interface per entry of `linktypes`, and
// the conversation's frames, the client's on interface 0 and the server's
// on the last one.
fs::path write_pcapng(const fs::path& dir, const std::vector<int>& linktypes)
{
	fs::path f = dir / "mixed.pcapng";
	Bytes b;
	auto block = [&](uint32_t type, const Bytes& body) {
		uint32_t len = static_cast<uint32_t>(12 + body.size());
		le32(b, type);
		le32(b, len);
		append(b, body);
		le32(b, len);
	};
	Bytes shb;
	le32(shb, 0x1A2B3C4D);
	le16(shb, 1);
	le16(shb, 0);
	le32(shb, 0xffffffff);
	le32(shb, 0xffffffff);
	block(0x0A0D0D0A, shb);
	for (int lt : linktypes) {
		Bytes idb;
		le16(idb, static_cast<uint16_t>(lt));
		le16(idb, 0);
		le32(idb, 65535);
		block(1, idb);
	}
	uint64_t us = 1700000000ull * 1000000ull;
	for (auto& p : conversation(false)) {
		uint32_t iface = p.c2s ? 0 : static_cast<uint32_t>(linktypes.size() - 1);
		Bytes rec = wrap(linktypes[iface], p, false);
		Bytes epb;
		le32(epb, iface);
		le32(epb, static_cast<uint32_t>(us >> 32));
		le32(epb, static_cast<uint32_t>(us));
		us += 10000;
		le32(epb, static_cast<uint32_t>(rec.size()));
		le32(epb, static_cast<uint32_t>(rec.size()));
		append(epb, rec);
		while (epb.size() % 4)
			epb.push_back(0);
		block(6, epb);
	}
	std::ofstream(f, std::ios::binary).write((const char*)b.data(), (std::streamsize)b.size());
	return f;
}

// Interfaces of one link type are read as one capture; of different link
// types (which libpcap cannot read past) refused before anything is read.
TEST_F(LinkTypes, PcapngInterfacesOfDifferentLinkTypesAreRefused)
{
	auto same = read_events(write_pcapng(dir, {1, 1}));
	EXPECT_EQ(same, read_events(write_pcap(dir, 1, false)));

	fs::path mixed = write_pcapng(dir, {1, 113});
	std::size_t events = 0;
	tdsbpf::HostParser p({}, [&](const tdsbpf_event&, std::size_t) { events++; });
	try {
		tdsbpf::read_capture(mixed.string(), p);
		ADD_FAILURE() << "a capture of mixed link types was read";
	} catch (const std::runtime_error& e) {
		std::string what = e.what();
		EXPECT_NE(what.find("holds interfaces of different link types"), std::string::npos) << what;
		EXPECT_NE(what.find("interface 1 LINUX_SLL"), std::string::npos) << what;
	}
	EXPECT_EQ(events, 0u);
}

} // namespace
