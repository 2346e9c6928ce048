// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Writes the fuzz targets' seed corpora, each in its target's input format
// (fuzz.h), from real captures and from crafted conversations in the style
// of the lab's traffic (a plain, a TLS, an NTLM, a Kerberos and a failed
// login, MARS, a redirect, RPCs with attention, TDS 7.1, FEDAUTH, and
// keep-alives, loss and retransmissions):
//
//   fuzz_make_seeds OUT_DIR [CAPTURE.pcap ...]
//
// OUT_DIR/<target>/<name> for the targets conversation, frames, parsers,
// aggregator and reader. A capture of lab traffic (tcpdump on the lab's
// veth, as tools/bench records) is read like the real ones, its first
// connections only. tools/fuzz/make-corpus runs this.
#include <pcap/pcap.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "builder.h"
#include "fuzz.h"
#include "reader.h"

using namespace tdsbpf::fuzz;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxSeed = 48 * 1024; // bytes per seed file, at most
constexpr std::size_t kMaxConnections = 16; // per capture

fs::path g_out;
std::set<std::string> g_written; // target/content, to write each seed once

void write_seed(const std::string& target, const std::string& name, const Bytes& b)
{
	if (b.empty() || b.size() > kMaxSeed)
		return;
	if (!g_written.insert(target + '\0' + std::string(b.begin(), b.end())).second)
		return;
	fs::create_directories(g_out / target);
	std::ofstream f(g_out / target / name, std::ios::binary | std::ios::trunc);
	f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

uint8_t gap_code(uint64_t dt_ns)
{
	for (uint8_t c = 0; c < 15; c++)
		if (gap_ns(c) >= dt_ns)
			return c;
	return 15;
}

// ---- frames of a capture -------------------------------------------------

struct Frame {
	uint64_t ts = 0;
	Bytes bytes; // as captured
	uint32_t wire = 0;
	std::size_t l3 = 0; // where the IP packet starts
	bool ethernet = false;
};

struct Capture {
	std::string name;
	int linktype = -1;
	Bytes file;
	std::vector<Frame> frames;
};

uint16_t be16at(const uint8_t* p)
{
	return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
uint32_t be32at(const uint8_t* p)
{
	return (static_cast<uint32_t>(be16at(p)) << 16) | be16at(p + 2);
}

Capture load_capture(const fs::path& path)
{
	Capture c;
	c.name = path.stem().string();
	std::ifstream f(path, std::ios::binary);
	c.file.assign(std::istreambuf_iterator<char>(f), {});
	char err[PCAP_ERRBUF_SIZE] = {};
	pcap_t* pc = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
	if (!pc) {
		std::fprintf(stderr, "fuzz_make_seeds: %s: %s\n", path.c_str(), err);
		return c;
	}
	c.linktype = pcap_datalink(pc);
	pcap_pkthdr* h;
	const u_char* d;
	while (pcap_next_ex(pc, &h, &d) == 1) {
		Frame fr;
		fr.ts = static_cast<uint64_t>(h->ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(h->ts.tv_usec);
		fr.bytes.assign(d, d + h->caplen);
		fr.wire = h->len;
		switch (c.linktype) {
		case 1:
			fr.ethernet = true;
			fr.l3 = 14;
			if (h->caplen >= 18 && (be16at(d + 12) == 0x8100 || be16at(d + 12) == 0x88a8))
				fr.l3 = 18;
			break;
		case 113: fr.l3 = 16; break;
		case 276: fr.l3 = 20; break;
		case 0:
		case 108: fr.l3 = 4; break;
		default: fr.l3 = 0;
		}
		if (fr.l3 < fr.bytes.size())
			c.frames.push_back(std::move(fr));
	}
	pcap_close(pc);
	return c;
}

// A TCP segment of a frame, when it is one.
struct Segment {
	bool v6 = false, vlan = false;
	Bytes src, dst;
	uint16_t sport = 0, dport = 0;
	uint32_t seq = 0, ack = 0;
	uint8_t flags = 0;
	Bytes payload;
};

bool tcp_segment(const Frame& fr, Segment& s)
{
	const uint8_t* p = fr.bytes.data() + fr.l3;
	std::size_t n = fr.bytes.size() - fr.l3;
	std::size_t l4, end;
	s.vlan = fr.ethernet && fr.l3 == 18;
	if (n >= 20 && (p[0] >> 4) == 4) {
		std::size_t ihl = (p[0] & 15) * 4u;
		if (p[9] != 6 || ihl < 20 || n < ihl + 20)
			return false;
		s.src.assign(p + 12, p + 16);
		s.dst.assign(p + 16, p + 20);
		l4 = ihl;
		end = std::min<std::size_t>(n, be16at(p + 2));
	} else if (n >= 60 && (p[0] >> 4) == 6) {
		if (p[6] != 6)
			return false;
		s.v6 = true;
		s.src.assign(p + 8, p + 24);
		s.dst.assign(p + 24, p + 40);
		l4 = 40;
		end = std::min<std::size_t>(n, 40u + be16at(p + 4));
	} else {
		return false;
	}
	const uint8_t* t = p + l4;
	std::size_t doff = (t[12] >> 4) * 4u;
	if (doff < 20 || l4 + doff > end)
		return false;
	s.sport = be16at(t);
	s.dport = be16at(t + 2);
	s.seq = be32at(t + 4);
	s.ack = be32at(t + 8);
	s.flags = t[13];
	s.payload.assign(p + l4 + doff, p + end);
	return true;
}

// ---- conversations -----------------------------------------------------------

struct ConvSeg {
	bool s2c = false;
	uint8_t fate = kFateSend;
	uint8_t gap = 0;
	Bytes payload;
};

struct Conv {
	uint8_t flags = 0;
	uint8_t agg = 0;
	uint32_t cisn = 1000, sisn = 500000;
	std::vector<ConvSeg> segs;
	void add(bool s2c, const Bytes& payload, uint8_t fate = kFateSend, uint8_t gap = 2)
	{
		segs.push_back({s2c, fate, gap, payload});
	}
};

Bytes encode(const Conv& c)
{
	Bytes b;
	put8(b, c.flags | (c.agg ? kConvAggBits : 0));
	if (c.agg)
		put8(b, c.agg);
	put32(b, c.cisn);
	put32(b, c.sisn);
	for (const auto& s : c.segs) {
		Bytes p = s.payload;
		if (p.size() > kMaxSegment)
			p.resize(kMaxSegment);
		put8(b, static_cast<uint8_t>((s.s2c ? 1 : 0) | (s.fate << 1) | (s.gap << 4)));
		put16(b, static_cast<uint16_t>(p.size()));
		putbytes(b, p);
	}
	return b;
}

// The connections to port 1433 in a capture, as conversation inputs.
std::vector<Conv> conversations(const Capture& cap)
{
	struct State {
		Conv conv;
		bool seen[2] = {false, false};
		uint32_t next[2] = {0, 0};
		uint64_t last_ts = 0;
		bool closed = false;
	};
	std::map<Bytes, State> by_key;
	std::vector<Bytes> order;
	for (const auto& fr : cap.frames) {
		Segment s;
		if (!tcp_segment(fr, s) || (s.sport != 1433 && s.dport != 1433))
			continue;
		bool s2c = s.sport == 1433;
		Bytes key = s2c ? s.dst : s.src;
		putbytes(key, s2c ? s.src : s.dst);
		put16(key, s2c ? s.dport : s.sport);
		auto [it, fresh] = by_key.try_emplace(key);
		State& st = it->second;
		if (fresh) {
			if (order.size() >= kMaxConnections) {
				by_key.erase(it);
				continue;
			}
			order.push_back(key);
			st.conv.flags = (s.v6 ? kConvV6 : 0) | (s.vlan ? kConvVlan : 0);
			st.last_ts = fr.ts;
		}
		if (st.closed)
			continue;
		int d = s2c ? 1 : 0;
		if (s.flags & 0x02) { // SYN
			if (!s2c) {
				st.conv.flags |= kConvHandshake;
				st.conv.cisn = s.seq;
			} else {
				st.conv.sisn = s.seq;
			}
			st.seen[d] = true;
			st.next[d] = s.seq + 1;
			continue;
		}
		if (!st.seen[d]) {
			st.seen[d] = true;
			st.next[d] = s.seq;
			(s2c ? st.conv.sisn : st.conv.cisn) = s.seq;
			if (!st.seen[1 - d] && (s.flags & 0x10)) {
				st.seen[1 - d] = true;
				st.next[1 - d] = s.ack;
				(s2c ? st.conv.cisn : st.conv.sisn) = s.ack;
			}
		}
		if (!s.payload.empty()) {
			uint32_t end = s.seq + static_cast<uint32_t>(s.payload.size());
			if (static_cast<int32_t>(end - st.next[d]) <= 0)
				continue; // seen before (a retransmission, or the second copy of an "any" capture)
			uint8_t gap = gap_code(fr.ts - st.last_ts);
			st.last_ts = fr.ts;
			int32_t hole = static_cast<int32_t>(s.seq - st.next[d]);
			if (hole > 0 && hole < 65536)
				st.conv.add(s2c, Bytes(static_cast<std::size_t>(hole), 0), kFateLost, 0);
			Bytes p = s.payload;
			if (hole < 0)
				p.erase(p.begin(),
					p.begin() + std::min<std::size_t>(p.size(), static_cast<std::size_t>(-hole)));
			st.conv.add(s2c, p, kFateSend, gap);
			st.next[d] = end;
		}
		if (s.flags & 0x04) { // RST
			st.conv.flags |= (kCloseRst << kConvCloseShift) | (s2c ? kConvRstByServer : 0);
			st.closed = true;
		} else if (s.flags & 0x01) { // FIN
			st.conv.flags |= (s2c ? kCloseServerFin : kCloseClientFin) << kConvCloseShift;
			st.closed = true;
		}
	}
	std::vector<Conv> out;
	for (const auto& k : order)
		if (!by_key[k].conv.segs.empty())
			out.push_back(by_key[k].conv);
	return out;
}

// ---- parser seeds from the TDS packets of a conversation --------------------

Bytes parser_input(int which, uint16_t arg, uint16_t end, const uint8_t* b, std::size_t n)
{
	Bytes in;
	put8(in, static_cast<uint8_t>(which));
	put16(in, arg);
	put16(in, end);
	putbytes(in, std::span<const uint8_t>(b, std::min<std::size_t>(n, TDSBPF_BUF)));
	return in;
}

void parser_seeds(const Conv& c, const std::string& name)
{
	int count = 0;
	auto seed = [&](int which, uint16_t arg, uint16_t end, const uint8_t* b, std::size_t n) {
		if (n == 0)
			return;
		write_seed("parsers", name + ".p" + std::to_string(which) + "-" + std::to_string(count++),
			   parser_input(which, arg, end, b, n));
	};
	for (int side = 0; side < 2; side++) {
		Bytes stream;
		for (const auto& s : c.segs) {
			if (s.s2c != (side == 1))
				continue;
			if (s.fate == kFateLost)
				break; // the stream has a hole: stop there
			putbytes(stream, s.payload);
		}
		bool prelogin_reply = side == 1;
		for (std::size_t pos = 0; pos + 8 <= stream.size();) {
			const uint8_t* h = stream.data() + pos;
			if (h[0] == SMP_SMID && pos + 16 <= stream.size()) {
				pos += 16; // an SMP header: the TDS packet follows
				continue;
			}
			std::size_t len = be16at(h + 2);
			if (len < 8 || pos + len > stream.size() || !tdsbpf_host_tds_type_valid(h[0]))
				break;
			const uint8_t* body = h + 8;
			std::size_t n = len - 8;
			bool tls = n >= 5 && body[0] >= 20 && body[0] <= 23 && body[1] == 3;
			switch (h[0]) {
			case TDS_PRELOGIN: seed(tls ? 1 : 0, 0, 0, body, n); break;
			case TDS_REPLY:
				if (tls) {
					seed(1, 0, 0, body, n);
				} else if (prelogin_reply) {
					seed(0, 0, 0, body, n);
				} else {
					seed(6, 0, 0, body, n);
					if (n >= 13)
						seed(7, 0, 0, body + n - 13, 13);
				}
				prelogin_reply = false;
				break;
			case TDS_LOGIN7: {
				seed(4, 0, 0, body, n);
				if (n >= 94) {
					std::size_t off = body[78] | (body[79] << 8), sl = body[80] | (body[81] << 8);
					if (sl && off + sl <= n)
						seed(2, 0, 0, body + off, sl);
					std::size_t ib = body[56] | (body[57] << 8);
					if ((body[27] & 0x10) && ib + 4 <= n) {
						std::size_t f = body[ib] | (body[ib + 1] << 8) | (body[ib + 2] << 16);
						if (f < n)
							seed(5, 0, 0, body + f, n - f);
					}
				}
				break;
			}
			case TDS_SSPI:
				seed(2, 0, 0, body, n);
				seed(3, 0, 0, body, n);
				break;
			case TDS_SQL_BATCH:
			case TDS_RPC: seed(8, h[0], static_cast<uint16_t>(n), body, n); break;
			default: break;
			}
			pos += len;
		}
	}
}

// ---- playing a conversation: frames, events, capture files --------------------

struct Played {
	std::vector<Frame> frames; // as Ethernet frames, or IP packets (l3 0)
	Bytes events;		   // aggregator input
};

Played play(const Bytes& conv)
{
	Played p;
	Bytes& ev = p.events;
	put8(ev, conversation_aggregator_bits(conv.data(), conv.size()));
	tdsbpf::HostParser parser({}, [&](const tdsbpf_event& e, std::size_t len) {
		put8(ev, kOpEvent);
		put16(ev, static_cast<uint16_t>(len));
		putbytes(ev, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&e), len));
	});
	uint64_t end = play_conversation(
		conv.data(), conv.size(),
		[&](std::span<const uint8_t> f, bool raw_ip, uint64_t ts) {
			Frame fr;
			fr.ts = ts;
			fr.bytes.assign(f.begin(), f.end());
			fr.wire = static_cast<uint32_t>(f.size());
			fr.ethernet = !raw_ip;
			fr.l3 = raw_ip ? 0 : (f.size() > 13 && be16at(f.data() + 12) == 0x8100 ? 18 : 14);
			if (raw_ip)
				parser.process_ip(f, fr.wire, ts);
			else
				parser.process_ethernet(f, fr.wire, ts);
			p.frames.push_back(std::move(fr));
		},
		[&](uint64_t) {
			put8(ev, kOpTick);
			put32(ev, 0);
		});
	(void)end;
	put8(ev, kOpTick);
	put32(ev, 1000);
	put8(ev, kOpDrops);
	put32(ev, 3);
	put32(ev, 1);
	put8(ev, kOpFinish);
	put32(ev, 2000);
	return p;
}

Bytes frames_input(const std::vector<Frame>& frames, uint8_t config)
{
	Bytes b;
	put8(b, config);
	uint64_t last = frames.empty() ? 0 : frames.front().ts;
	for (const auto& fr : frames) {
		bool ip = !fr.ethernet;
		std::size_t from = ip ? fr.l3 : 0;
		std::size_t len = fr.bytes.size() - from;
		if (b.size() + len + 4 > kMaxSeed)
			break;
		uint8_t gap = gap_code(fr.ts - last);
		last = fr.ts;
		put8(b, static_cast<uint8_t>((ip ? kFrameIp : 0) | (3 << 1) | (gap << 4)));
		put8(b,
		     static_cast<uint8_t>(std::min<uint32_t>(255, fr.wire - static_cast<uint32_t>(fr.bytes.size()))));
		put16(b, static_cast<uint16_t>(len));
		putbytes(b, std::span<const uint8_t>(fr.bytes.data() + from, len));
	}
	return b;
}

// The events the host walk gives for a capture, as aggregator input.
Bytes capture_events(const fs::path& path, uint8_t config)
{
	Bytes ev;
	put8(ev, config);
	int n = 0;
	tdsbpf::HostParser parser({}, [&](const tdsbpf_event& e, std::size_t len) {
		if (ev.size() + len + 3 > kMaxSeed)
			return;
		put8(ev, kOpEvent);
		put16(ev, static_cast<uint16_t>(len));
		putbytes(ev, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&e), len));
		if (++n % 16 == 0) {
			put8(ev, kOpTick);
			put32(ev, 0);
		}
	});
	try {
		tdsbpf::read_capture(path.string(), parser);
	} catch (const std::exception& e) {
		std::fprintf(stderr, "fuzz_make_seeds: %s\n", e.what());
	}
	return ev;
}

// A classic pcap file (microsecond or nanosecond stamps, either byte order).
Bytes pcap_file(int linktype, const std::vector<std::pair<uint64_t, Bytes>>& recs, bool nano, bool big_endian)
{
	Bytes b;
	auto u16 = [&](uint16_t v) {
		if (big_endian) {
			b.push_back(v >> 8);
			b.push_back(v & 0xff);
		} else {
			put16(b, v);
		}
	};
	auto u32 = [&](uint32_t v) {
		if (big_endian) {
			u16(v >> 16);
			u16(v & 0xffff);
		} else {
			put32(b, v);
		}
	};
	u32(nano ? 0xa1b23c4d : 0xa1b2c3d4);
	u16(2);
	u16(4);
	u32(0);
	u32(0);
	u32(262144);
	u32(static_cast<uint32_t>(linktype));
	for (const auto& [ts, data] : recs) {
		u32(static_cast<uint32_t>(ts / 1'000'000'000ULL));
		u32(static_cast<uint32_t>(nano ? ts % 1'000'000'000ULL : ts % 1'000'000'000ULL / 1000));
		u32(static_cast<uint32_t>(data.size()));
		u32(static_cast<uint32_t>(data.size()));
		putbytes(b, data);
	}
	return b;
}

// A pcapng file: a section header, one interface, enhanced packet blocks.
Bytes pcapng_file(int linktype, const std::vector<std::pair<uint64_t, Bytes>>& recs)
{
	Bytes b;
	auto block = [&](uint32_t type, const Bytes& body) {
		uint32_t len = static_cast<uint32_t>(12 + body.size());
		put32(b, type);
		put32(b, len);
		putbytes(b, body);
		put32(b, len);
	};
	Bytes shb;
	put32(shb, 0x1a2b3c4d);
	put16(shb, 1);
	put16(shb, 0);
	put32(shb, 0xffffffff);
	put32(shb, 0xffffffff);
	block(0x0a0d0d0a, shb);
	Bytes idb;
	put16(idb, static_cast<uint16_t>(linktype));
	put16(idb, 0);
	put32(idb, 262144);
	put16(idb, 9); // if_tsresol: 10^-9
	put16(idb, 1);
	put8(idb, 9);
	put8(idb, 0);
	put16(idb, 0);
	put16(idb, 0); // opt_endofopt
	put16(idb, 0);
	block(0x00000001, idb);
	for (const auto& [ts, data] : recs) {
		Bytes epb;
		put32(epb, 0);
		put32(epb, static_cast<uint32_t>(ts >> 32));
		put32(epb, static_cast<uint32_t>(ts));
		put32(epb, static_cast<uint32_t>(data.size()));
		put32(epb, static_cast<uint32_t>(data.size()));
		putbytes(epb, data);
		while (epb.size() % 4)
			epb.push_back(0);
		block(0x00000006, epb);
	}
	return b;
}

// Frames re-framed for a link type: the IP packet behind that link's header.
Bytes relink(int linktype, const Frame& fr)
{
	Bytes ip(fr.bytes.begin() + static_cast<std::ptrdiff_t>(fr.l3), fr.bytes.end());
	bool v6 = !ip.empty() && (ip[0] >> 4) == 6;
	uint16_t proto = v6 ? 0x86dd : 0x0800;
	Bytes b;
	switch (linktype) {
	case 1:
		b = {0x02,
		     0,
		     0,
		     0,
		     0,
		     2,
		     0x02,
		     0,
		     0,
		     0,
		     0,
		     1,
		     static_cast<uint8_t>(proto >> 8),
		     static_cast<uint8_t>(proto)};
		break;
	case 0: // BSD loopback, host order
		put32(b, v6 ? 30 : 2);
		break;
	case 108: // OpenBSD loopback, network order
		b = {0, 0, 0, static_cast<uint8_t>(v6 ? 24 : 2)};
		break;
	case 113: // Linux cooked v1
		b = {0,
		     0,
		     0,
		     1,
		     0,
		     6,
		     2,
		     0,
		     0,
		     0,
		     0,
		     1,
		     0,
		     0,
		     static_cast<uint8_t>(proto >> 8),
		     static_cast<uint8_t>(proto)};
		break;
	case 276: // Linux cooked v2
		b = {static_cast<uint8_t>(proto >> 8),
		     static_cast<uint8_t>(proto),
		     0,
		     0,
		     0,
		     0,
		     0,
		     1,
		     0,
		     1,
		     0,
		     6,
		     2,
		     0,
		     0,
		     0,
		     0,
		     1,
		     0,
		     0};
		break;
	default: // raw IP
		break;
	}
	putbytes(b, ip);
	return b;
}

void reader_seeds(const std::vector<Frame>& frames, const std::string& name, bool all_links)
{
	std::vector<std::pair<uint64_t, Bytes>> eth;
	for (const auto& fr : frames)
		eth.emplace_back(fr.ts, relink(1, fr));
	write_seed("reader", name + ".pcapng", pcapng_file(1, eth));
	if (!all_links)
		return;
	for (int lt : {0, 108, 101, 228, 113, 276}) {
		std::vector<std::pair<uint64_t, Bytes>> recs;
		for (const auto& fr : frames) {
			bool v6 = fr.bytes.size() > fr.l3 && (fr.bytes[fr.l3] >> 4) == 6;
			if (lt == 228 && v6)
				continue;
			recs.emplace_back(fr.ts, relink(lt, fr));
		}
		write_seed("reader", name + ".link" + std::to_string(lt) + ".pcap",
			   pcap_file(lt, recs, lt == 113, lt == 108));
	}
}

// ---- crafted conversations in the style of the lab's ---------------------------

constexpr uint8_t kEom = TDS_STATUS_EOM;

Bytes pl_client(uint8_t enc, uint8_t mars)
{
	return tb::tds(TDS_PRELOGIN, kEom,
		       tb::prelogin({{TDS_PL_VERSION, {0x10, 0x00, 0x03, 0xe8, 0x00, 0x00}},
				     {TDS_PL_ENCRYPTION, {enc}},
				     {TDS_PL_INSTOPT, {0}},
				     {TDS_PL_THREADID, {0, 0, 0x1f, 0x40}},
				     {TDS_PL_MARS, {mars}}}));
}

Bytes pl_server(uint8_t enc, uint8_t mars)
{
	return tb::tds(TDS_REPLY, kEom,
		       tb::prelogin({{TDS_PL_VERSION, {0x10, 0x00, 0x03, 0xe8, 0x00, 0x00}},
				     {TDS_PL_ENCRYPTION, {enc}},
				     {TDS_PL_INSTOPT, {0}},
				     {TDS_PL_THREADID, {}},
				     {TDS_PL_MARS, {mars}}}));
}

Bytes login_ok(uint32_t tds_version = 0x74000004, bool tds71 = false)
{
	return tb::tds(TDS_REPLY, kEom,
		       tb::cat({tb::tok_env_database("lab"), tb::tok_loginack(tds_version, {16, 0, 0x03, 0xe8}),
				tb::tok_env_packet_size("4096", "4096"), tb::tok_done(0, 0, 0, tds71)}),
		       54);
}

Bytes result(uint64_t rows, bool tds71 = false)
{
	return tb::tds(
		TDS_REPLY, kEom,
		tb::cat({tb::tok_colmetadata_int(), Bytes{0xd1, 1, 0, 0, 0}, tb::tok_done(0x10, 0xc1, rows, tds71)}),
		54);
}

std::vector<std::pair<std::string, Conv>> lab_conversations()
{
	std::vector<std::pair<std::string, Conv>> v;
	tb::Login7 base;
	base.user = "lab";
	base.password = "lab";
	base.app = "fuzz-seed";

	{ // a plain SQL login, a batch, a FIN from the client
		Conv c;
		c.flags = kConvHandshake | (kCloseClientFin << kConvCloseShift);
		c.add(false, pl_client(TDS_ENCRYPT_OFF, 0));
		c.add(true, pl_server(TDS_ENCRYPT_NOT_SUP, 0));
		c.add(false, tb::tds(TDS_LOGIN7, kEom, tb::login7(base)));
		c.add(true, login_ok());
		c.add(false, tb::tds(TDS_SQL_BATCH, kEom, tb::batch_body("select 1")), kFateSend, 9);
		c.add(true, result(1));
		v.emplace_back("lab-sql-login", c);
	}
	{ // TLS in PRELOGIN, the LOGIN7 in a bare TLS record, IPv6, a RST from the client
		Conv c;
		c.flags = kConvHandshake | kConvV6 | (kCloseRst << kConvCloseShift);
		c.add(false, pl_client(TDS_ENCRYPT_ON, 0));
		c.add(true, pl_server(TDS_ENCRYPT_ON, 0));
		c.add(false, tb::tds(TDS_PRELOGIN, kEom, tb::tls_record(22, tb::tls_client_hello(false))));
		c.add(true, tb::tds(TDS_PRELOGIN, kEom, tb::tls_record(22, tb::tls_server_hello(0x0303))));
		c.add(false, tb::tds(TDS_PRELOGIN, kEom,
				     tb::cat({tb::tls_record(22, Bytes(70, 0x10)), tb::tls_record(20, {1}),
					      tb::tls_record(22, Bytes(40, 0x77))})));
		c.add(true, tb::tds(TDS_PRELOGIN, kEom,
				    tb::cat({tb::tls_record(20, {1}), tb::tls_record(22, Bytes(40, 0x66))})));
		c.add(false, tb::tls_record(23, Bytes(240, 0x5a)));
		c.add(true, login_ok());
		c.add(false, tb::tds(TDS_SQL_BATCH, kEom, tb::batch_body("select @@version")));
		c.add(true, result(1));
		v.emplace_back("lab-tls-login", c);
	}
	{ // TDS 8.0: TLS first, ALPN tds/8.0, then everything in records
		Conv c;
		c.flags = kConvHandshake | (kCloseServerFin << kConvCloseShift);
		c.add(false, tb::tls_record(22, tb::tls_client_hello(true)));
		c.add(true, tb::tls_record(22, tb::tls_server_hello(0x0304, true)));
		c.add(false, tb::tls_record(23, Bytes(300, 0x33)));
		c.add(true, tb::tls_record(23, Bytes(120, 0x44)));
		c.add(true, tb::tls_record(21, {1, 0}));
		v.emplace_back("lab-strict-tds8", c);
	}
	{ // NTLM: NEGOTIATE in LOGIN7, CHALLENGE in an SSPI token, AUTHENTICATE, VLAN
		Conv c;
		c.flags = kConvHandshake | kConvVlan | (kCloseServerFin << kConvCloseShift);
		c.agg = kAggText;
		tb::Login7 l = base;
		l.flags2 |= 0x80;
		l.user = "";
		l.sspi = tb::ntlm_negotiate();
		c.add(false, pl_client(TDS_ENCRYPT_NOT_SUP, 0));
		c.add(true, pl_server(TDS_ENCRYPT_NOT_SUP, 0));
		c.add(false, tb::tds(TDS_LOGIN7, kEom, tb::login7(l)));
		c.add(true, tb::tds(TDS_REPLY, kEom, tb::tok_sspi(tb::ntlm_challenge())));
		c.add(false, tb::tds(TDS_SSPI, kEom, tb::ntlm_authenticate("LAB", "alice", "WS01")));
		c.add(true, login_ok());
		v.emplace_back("lab-ntlm-login", c);
	}
	{ // Kerberos through SPNEGO, then a failed second leg
		Conv c;
		c.flags = kConvHandshake | (kCloseClientFin << kConvCloseShift);
		tb::Login7 l = base;
		l.flags2 |= 0x80;
		l.sspi = tb::spnego_init(tb::kerberos_raw(), true);
		c.add(false, tb::tds(TDS_LOGIN7, kEom, tb::login7(l)));
		c.add(true, tb::tds(TDS_REPLY, kEom,
				    tb::cat({tb::tok_sspi(Bytes{0xa1, 0x10, 0x30, 0x0e}),
					     tb::tok_error(18452, 1, 14,
							   "Login failed. The login is from an untrusted domain."),
					     tb::tok_done(TDS_DONE_ERROR, 0, 0)})));
		v.emplace_back("lab-kerberos-failed", c);
	}
	{ // a failed SQL login; the server closes first
		Conv c;
		c.flags = kConvHandshake | (kCloseServerFin << kConvCloseShift);
		c.agg = kAggRedact | kAggNoLinger;
		tb::Login7 l = base;
		l.user = "fail_login";
		c.add(false, pl_client(TDS_ENCRYPT_OFF, 0));
		c.add(true, pl_server(TDS_ENCRYPT_OFF, 0));
		c.add(false, tb::tds(TDS_LOGIN7, kEom, tb::login7(l)));
		c.add(true, tb::tds(TDS_REPLY, kEom,
				    tb::cat({tb::tok_error(18456, 1, 14, "Login failed for user 'fail_login'."),
					     tb::tok_done(TDS_DONE_ERROR, 0, 0)})));
		v.emplace_back("lab-failed-login", c);
	}
	{ // MARS: two SMP sessions, a batch on each, their FINs
		Conv c;
		c.flags = kConvHandshake | (kCloseClientFin << kConvCloseShift);
		c.add(false, pl_client(TDS_ENCRYPT_NOT_SUP, 1));
		c.add(true, pl_server(TDS_ENCRYPT_NOT_SUP, 1));
		c.add(false, tb::tds(TDS_LOGIN7, kEom, tb::login7(base)));
		c.add(true, login_ok());
		for (uint16_t sid = 0; sid < 2; sid++) {
			c.add(false, tb::smp(SMP_SYN, sid, 0, 4));
			c.add(false,
			      tb::smp(SMP_DATA, sid, 1, 4, tb::tds(TDS_SQL_BATCH, kEom, tb::batch_body("select 2"))));
			c.add(true, tb::smp(SMP_ACK, sid, 0, 5));
			c.add(true, tb::smp(SMP_DATA, sid, 1, 5, result(2)));
		}
		c.add(false, tb::cat({tb::smp(SMP_FIN, 0, 2, 6), tb::smp(SMP_FIN, 1, 2, 6)}));
		c.add(true, tb::cat({tb::smp(SMP_FIN, 0, 2, 6), tb::smp(SMP_FIN, 1, 2, 6)}));
		v.emplace_back("lab-mars", c);
	}
	{ // a redirect (ENVCHANGE routing), then the client leaves
		Conv c;
		c.flags = kConvHandshake | (kCloseClientFin << kConvCloseShift);
		c.add(false, tb::tds(TDS_LOGIN7, kEom, tb::login7(base)));
		c.add(true,
		      tb::tds(TDS_REPLY, kEom,
			      tb::cat({tb::tok_loginack(0x74000004, {16, 0, 0x03, 0xe8}),
				       tb::tok_env_routing(1533, "replica2.lab.example"), tb::tok_done(0, 0, 0)})));
		v.emplace_back("lab-redirect", c);
	}
	{ // mid-stream: RPCs, an attention, a reply in pieces, keep-alives, loss, retransmission, zero window
		Conv c;
		c.flags = (kCloseRst << kConvCloseShift) | kConvRstByServer;
		c.agg = kAggEmit | kAggIdle;
		c.cisn = 0xfffffc00; // the sequence wraps
		c.sisn = 0x7ffffff0;
		c.add(false,
		      tb::tds(TDS_RPC, kEom, tb::cat({tb::all_headers(0x1122334455667788ULL), tb::rpc_by_id(10)})));
		Bytes big = tb::tds(
			TDS_REPLY, kEom,
			tb::cat({tb::tok_colmetadata_int(), Bytes(3000, 0xd1), tb::tok_done(0x10, 0xe0, 1000)}), 54);
		c.add(true, Bytes(big.begin(), big.begin() + 1400), kFateSend, 4);
		c.add(true, Bytes(big.begin() + 1400, big.begin() + 2800), kFateRetransmit, 1);
		c.add(true, Bytes(big.begin() + 2800, big.end()), kFateZeroWindow, 1);
		c.add(false, tb::tds(TDS_RPC, kEom, tb::rpc_by_name("sp_who")), kFateAcked, 8);
		c.add(false, tb::tds(TDS_ATTENTION, kEom, {}), kFateLate, 10);
		c.add(true, tb::tds(TDS_REPLY, kEom, tb::tok_done(0x20, 0, 0)), kFateSend, 3);
		c.add(false, tb::tds(TDS_SQL_BATCH, kEom | TDS_STATUS_RESETCONNECTION, tb::batch_body("select 3")),
		      kFateSplit, 14);
		c.add(true, result(3), kFateKeepalive, 15);
		c.add(false, tb::tds(TDS_SQL_BATCH, kEom, tb::batch_body("select 4")), kFateLost, 5);
		c.add(true, result(4), kFateSend, 2);
		c.add(false, tb::tds(TDS_TRANSACTION_MGR, kEom, Bytes(10, 0)), kFateSend, 15);
		v.emplace_back("lab-rpc-attention-loss", c);
	}
	{ // TDS 7.1 (4-byte DONE row counts), raw IP frames
		Conv c;
		c.flags = kConvHandshake | kConvRawIp | (kCloseClientFin << kConvCloseShift);
		tb::Login7 l = base;
		l.tds_version = 0x71000001;
		c.add(false, tb::tds(TDS_LOGIN7, kEom, tb::login7(l)));
		c.add(true, login_ok(0x71000001, true));
		c.add(false, tb::tds(TDS_SQL_BATCH, kEom, tb::batch_body("select 5", false)));
		c.add(true, result(5, true));
		v.emplace_back("lab-tds71", c);
	}
	{ // FEDAUTH in the LOGIN7 feature extension, a large packet size
		Conv c;
		c.flags = kConvHandshake | (kCloseClientFin << kConvCloseShift);
		tb::Login7 l = base;
		l.packet_size = 32767;
		l.features = {0x02, 2, 0, 0, 0, 0x01, 0x00, 0x0a, 1, 0, 0, 0, 0x0b, 0xff};
		c.add(false, pl_client(TDS_ENCRYPT_ON, 0));
		c.add(true, pl_server(TDS_ENCRYPT_ON, 0));
		c.add(false, tb::tds(TDS_LOGIN7, kEom, tb::login7(l)));
		c.add(true,
		      tb::tds(TDS_REPLY, kEom, tb::cat({Bytes{0xee, 4, 0, 0, 0, 0, 0, 0, 0}, tb::tok_done(0, 0, 0)})));
		v.emplace_back("lab-fedauth", c);
	}
	{ // a SYN that nobody answers, then its retransmission
		Conv c;
		c.flags = kConvHandshake;
		v.emplace_back("lab-handshake-only", c);
	}
	return v;
}

void seeds_of_conversation(const std::string& name, const Conv& c, bool all_links)
{
	Bytes in = encode(c);
	write_seed("conversation", name, in);
	parser_seeds(c, name);
	Played p = play(in);
	write_seed("frames", name, frames_input(p.frames, 0x03));
	write_seed("aggregator", name, p.events);
	reader_seeds(p.frames, name, all_links);
}

} // namespace

int main(int argc, char** argv)
{
	if (argc < 2) {
		std::fprintf(stderr, "usage: fuzz_make_seeds OUT_DIR [CAPTURE.pcap ...]\n");
		return 2;
	}
	g_out = argv[1];
	fs::create_directories(g_out);

	bool first = true;
	for (const auto& [name, conv] : lab_conversations()) {
		seeds_of_conversation(name, conv, first);
		first = false;
	}

	for (int i = 2; i < argc; i++) {
		fs::path path = argv[i];
		Capture cap = load_capture(path);
		if (cap.frames.empty())
			continue;
		// the file itself, when small, and the first half of it (cut in a record)
		if (cap.file.size() <= kMaxSeed)
			write_seed("reader", cap.name + ".pcap", cap.file);
		Bytes half(cap.file.begin(),
			   cap.file.begin() + static_cast<std::ptrdiff_t>(std::min(cap.file.size() / 2, kMaxSeed)));
		write_seed("reader", cap.name + ".cut.pcap", half);
		std::vector<Frame> head(cap.frames.begin(),
					cap.frames.begin() + std::min<std::size_t>(cap.frames.size(), 64));
		reader_seeds(head, cap.name, false);

		write_seed("frames", cap.name, frames_input(cap.frames, 0x03));
		write_seed("frames", cap.name + ".small-table",
			   frames_input(cap.frames, 0x01 | 0x04 | (kAggFewConnections << 3)));
		write_seed("aggregator", cap.name, capture_events(path, 0));
		write_seed("aggregator", cap.name + ".text-redact",
			   capture_events(path, kAggText | kAggRedact | kAggFewConnections | kAggNoReorder));

		int n = 0;
		for (const auto& conv : conversations(cap)) {
			std::string name = cap.name + ".conn" + std::to_string(++n);
			write_seed("conversation", name, encode(conv));
			parser_seeds(conv, name);
		}
	}
	std::printf("fuzz_make_seeds: %zu seeds in %s\n", g_written.size(), g_out.c_str());
	return 0;
}
