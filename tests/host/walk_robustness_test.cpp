// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Garbage, truncated, oversized and mutated input through every parser and
// through the walk, with a fixed seed. Nothing may crash or read out of
// bounds (run a -DTDSBPF_SANITIZE=ON build to check the latter); results
// must stay inside their fields' ranges.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>

#include "builder.h"
#include "event_json.h"
#include "host_walker.h"

using namespace tb;

namespace {

using Parser = int (*)(tdsbpf_scratch*);

struct Named {
	const char* name;
	Parser fn;
};

const Named kParsers[] = {
	{"prelogin", tdsbpf_host_parse_prelogin},     {"tls", tdsbpf_host_parse_tls},
	{"classify_sspi", tdsbpf_host_classify_sspi}, {"ntlm_auth", tdsbpf_host_parse_ntlm_auth},
	{"login7", tdsbpf_host_parse_login7},	      {"features", tdsbpf_host_parse_features},
	{"reply", tdsbpf_host_parse_reply},	      {"tail_done", tdsbpf_host_parse_tail_done},
	{"request", tdsbpf_host_parse_request},	      {"tls_chain", tdsbpf_host_parse_tls_chain},
};

// Valid messages to mutate.
std::vector<Bytes> corpus()
{
	Login7 l;
	l.sspi = spnego_init(ntlm_negotiate(), false);
	Bytes feat{0x02};
	le32(feat, 2);
	append(feat, {2, 0});
	l.features = cat({feat, Bytes{0xff}});
	return {
		prelogin({{0, {15, 0, 7, 0xd0, 0, 0}}, {1, {0}}, {2, {'A', 0}}, {4, {1}}, {5, Bytes(36, 1)}, {6, {1}}}),
		tls_client_hello(true, true),
		tls_server_hello(0x0304, true),
		ntlm_authenticate("CORP", "alice", "WS01"),
		ntlm_challenge(),
		spnego_init(Bytes(60, 0x6e), true),
		kerberos_raw(),
		login7(l),
		cat({tok_env_database("db"), tok_loginack(0x74000004, {16, 0, 2, 0x58}),
		     tok_env_packet_size("8000", "4096"), tok_env_routing(1433, "server"), tok_sspi(ntlm_challenge()),
		     tok_error(18456, 1, 14, "failed"), tok_done(0x20, 0, 0)}),
		tok_done(0x10, 0xc1, 5),
		rpc_by_id(10),
		rpc_by_name("sp_executesql"),
		batch_body("select 1"),
	};
}

void fill(tdsbpf_scratch& s, const Bytes& b, uint32_t n)
{
	std::memset(&s, 0, sizeof(s));
	n = std::min<uint32_t>(n, std::min<size_t>(b.size(), TDSBPF_BUF - 1));
	std::memcpy(s.b, b.data(), n);
	s.n = n;
}

// Every parser input at once: each parser reads the one member it takes.
void set_in(tdsbpf_scratch& s, uint32_t v)
{
	s.in.start = s.in.tds71 = s.in.type = s.in.body = v;
}

void check_bounds(const tdsbpf_scratch& s, const char* name)
{
	const auto& p = s.out.prelogin;
	if (std::string(name) == "prelogin") {
		ASSERT_LE(p.instance_len, sizeof(p.instance));
	}
	if (std::string(name) == "reply") {
		ASSERT_LE(s.out.reply.routing_server_len, sizeof(s.out.reply.routing_server));
	}
	if (std::string(name) == "classify_sspi" && s.res.sspi.ntlm_type) {
		// an NTLM type is only reported with the signature inside the bytes
		ASSERT_LE(s.res.sspi.ntlm_at + 8, s.n);
		ASSERT_EQ(0, std::memcmp(s.b + s.res.sspi.ntlm_at, "NTLMSSP", 8));
	}
}

} // namespace

TEST(Robustness, RandomBytesThroughEveryParser)
{
	std::mt19937 rng(20240521);
	tdsbpf_scratch s;
	Bytes b(TDSBPF_BUF);
	for (auto& p : kParsers) {
		for (int it = 0; it < 4000; it++) {
			for (auto& x : b)
				x = (uint8_t)rng();
			uint32_t n = rng() % TDSBPF_BUF;
			fill(s, b, n);
			// the input/end: small, near n, or huge
			uint32_t pick = rng() % 4;
			set_in(s, pick == 0   ? 0
				  : pick == 1 ? rng() % 2
				  : pick == 2 ? rng() % (TDSBPF_BUF + 16)
					      : rng());
			s.end = rng() % 3 ? rng() % 70000 : rng();
			int rc = p.fn(&s);
			ASSERT_TRUE(rc >= -1 && rc <= TDSBPF_SSPI_UNKNOWN) << p.name << " rc " << rc;
			check_bounds(s, p.name);
		}
	}
}

TEST(Robustness, MutatedMessagesThroughEveryParser)
{
	std::mt19937 rng(7);
	tdsbpf_scratch s;
	auto msgs = corpus();
	for (auto& p : kParsers) {
		for (int it = 0; it < 3000; it++) {
			Bytes m = msgs[rng() % msgs.size()];
			int flips = 1 + rng() % 6;
			for (int f = 0; f < flips && !m.empty(); f++) {
				size_t at = rng() % m.size();
				switch (rng() % 3) {
				case 0: m[at] = (uint8_t)rng(); break;
				case 1: m[at] = 0xff; break;
				default: m[at] = 0; break;
				}
			}
			uint32_t n = rng() % 2 ? (uint32_t)m.size() : (uint32_t)(rng() % (m.size() + 1));
			fill(s, m, n);
			set_in(s, rng() % 3 ? 0 : rng() % 64);
			s.end = (uint32_t)m.size();
			p.fn(&s);
			check_bounds(s, p.name);
		}
	}
}

TEST(Robustness, EveryPrefixOfValidMessages)
{
	tdsbpf_scratch s;
	for (auto& m : corpus()) {
		for (size_t n = 0; n <= std::min<size_t>(m.size(), TDSBPF_BUF - 1); n++) {
			for (auto& p : kParsers) {
				fill(s, m, (uint32_t)n);
				s.end = (uint32_t)m.size();
				p.fn(&s);
				check_bounds(s, p.name);
			}
		}
	}
}

TEST(Robustness, FullBufferAndOversizedLengths)
{
	// the largest n; lengths in the bytes that point far beyond it
	tdsbpf_scratch s;
	Bytes b(TDSBPF_BUF - 1, 0xff);
	for (auto& p : kParsers) {
		fill(s, b, TDSBPF_BUF - 1);
		set_in(s, TDSBPF_BUF - 2);
		s.end = 0xffffffff;
		p.fn(&s);
		check_bounds(s, p.name);
	}
	// an SSPI blob right at the end of the buffer
	Bytes nt = ntlm_negotiate();
	Bytes tail(TDSBPF_BUF - 1, 0);
	std::copy(nt.begin(), nt.begin() + 12, tail.end() - 12);
	fill(s, tail, (uint32_t)tail.size());
	set_in(s, (uint32_t)(tail.size() - 12));
	EXPECT_EQ(tdsbpf_host_classify_sspi(&s), TDSBPF_SSPI_NTLM);
	EXPECT_EQ(s.res.sspi.ntlm_type, 1u);
	// a PRELOGIN whose TRACEID points at the last bytes
	Bytes pl = prelogin({{5, Bytes(36, 0x5a)}});
	fill(s, pl, (uint32_t)pl.size() - 1); // activity sequence cut by one byte
	EXPECT_EQ(tdsbpf_host_parse_prelogin(&s), 0);
	EXPECT_EQ(s.out.prelogin.connection_id[0], 0x5a);
	EXPECT_EQ(s.out.prelogin.activity_seq, 0u);
}

TEST(Robustness, RandomFramesThroughTheWalk)
{
	std::mt19937 rng(1433);
	Collector c;
	uint64_t events = 0;
	auto msgs = corpus();
	for (int it = 0; it < 20000; it++) {
		Conn k;
		k.cport = (uint16_t)(50000 + rng() % 8);
		k.v6 = rng() % 4 == 0;
		k.vlan = rng() % 5 == 0;
		bool c2s = rng() % 2;
		uint32_t seq = (c2s ? 1000 : 500000) + rng() % 4000;
		uint8_t flags = (uint8_t)(rng() % 8 == 0 ? rng() : (ACK | (rng() % 2 ? PSH : 0)));
		Bytes payload;
		switch (rng() % 4) {
		case 0:
			payload.resize(rng() % 1500);
			for (auto& x : payload)
				x = (uint8_t)rng();
			break;
		case 1: {
			uint8_t types[] = {1, 3, 4, 16, 17, 18};
			Bytes m = msgs[rng() % msgs.size()];
			payload = tds(types[rng() % 6], (uint8_t)(rng() % 2), m);
			if (rng() % 2)
				payload[2 + rng() % 2] = (uint8_t)rng();
			break;
		}
		case 2:
			payload = smp((uint8_t)(1 << (rng() % 4)), (uint16_t)(rng() % 3), rng() % 5, 4,
				      rng() % 2 ? tds(1, 1, msgs[rng() % msgs.size()]) : Bytes{});
			break;
		default: payload = tls_record((uint8_t)(20 + rng() % 4), msgs[rng() % msgs.size()]); break;
		}
		if (rng() % 3 == 0 && !payload.empty())
			payload.resize(rng() % payload.size());
		Bytes f = k.frame(c2s, seq, rng(), flags, payload, (uint16_t)(rng() % 3 ? 8192 : 0));
		// sometimes cut the frame (caplen < wire length) or lie in the IP length
		uint32_t wire = (uint32_t)f.size();
		if (rng() % 6 == 0)
			f.resize(rng() % f.size());
		if (rng() % 10 == 0 && f.size() > 20)
			f[16 + (k.vlan ? 4 : 0)] = (uint8_t)rng();
		c.p.process_ethernet(std::span<const uint8_t>(f.data(), f.size()), wire, (uint64_t)it * 1000);
		events += c.recs.size();
		c.recs.clear();
	}
	// pure garbage frames
	for (int it = 0; it < 5000; it++) {
		Bytes f(rng() % 200);
		for (auto& x : f)
			x = (uint8_t)rng();
		if (f.size() > 14 && rng() % 2) {
			f[12] = 0x08;
			f[13] = 0x00;
		}
		c.p.process_ethernet(std::span<const uint8_t>(f.data(), f.size()), (uint32_t)f.size() + rng() % 100, 0);
		c.p.process_ip(std::span<const uint8_t>(f.data(), f.size()), (uint32_t)f.size(), 0);
		c.recs.clear();
	}
	EXPECT_GT(events, 1000u); // the walk did see the SQL Server packets
	EXPECT_LE(c.p.flows(), 64u);
}

// An empty frame, as an empty vector gives it (no data pointer at all), is
// nothing to walk. Under UBSan (the build-fuzz host tests) copying from its
// null pointer was undefined behaviour.
TEST(Robustness, EmptyFrameWithoutData)
{
	Collector c;
	Bytes none;
	ASSERT_EQ(none.data(), nullptr);
	c.p.process_ethernet(std::span<const uint8_t>(none.data(), none.size()), 0, 0);
	c.p.process_ethernet(std::span<const uint8_t>(), 60, 0);
	c.p.process_ip(std::span<const uint8_t>(), 0, 0);
	EXPECT_TRUE(c.recs.empty());
	EXPECT_EQ(c.p.flows(), 0u);
}

TEST(Robustness, FlowTableLimit)
{
	tdsbpf::HostParserConfig cfg;
	cfg.max_flows = 4;
	Collector c(cfg);
	for (uint16_t port = 40000; port < 40010; port++) {
		Conn k;
		k.cport = port;
		c.feed(k.syn());
	}
	EXPECT_EQ(c.p.flows(), 4u);
	EXPECT_EQ(c.p.counter(TDSBPF_CNT_FLOWS_CREATED), 10u);
}

// Strings from the wire are made valid UTF-8 by the events companion before
// any output sees them: a PRELOGIN instance name with byte 0xFF, a routing
// server with characters U+0080..U+00FF and NTLM names with lone
// surrogates and overlong lengths all give JSON that serialises.
TEST(WireStrings, EveryOutputGetsValidUtf8)
{
	alignas(8) tdsbpf_ntlm_event n{};
	tdsbpf_event& ev = n.base;
	ev.kind = TDSBPF_EV_TDS;
	ev.key.family = 4;
	ev.u.tds.type = TDS_PRELOGIN;
	ev.u.tds.detail = TDSBPF_D_PRELOGIN;
	ev.u.tds.d.prelogin.present = 1 << 2;
	const uint8_t inst[] = {'S', 'Q', 'L', 0xFF, 0xC3, 0x28, 'x'};
	std::memcpy(ev.u.tds.d.prelogin.instance, inst, sizeof(inst));
	ev.u.tds.d.prelogin.instance_len = 200; // more than the field holds
	std::string s = tdsbpf::event_to_json(ev, sizeof(ev)).dump();
	EXPECT_NE(s.find("\"instance\":\"SQL?"
			 "?(x"),
		  std::string::npos)
		<< s;

	ev.dir = TDSBPF_DIR_S2C;
	ev.u.tds.type = TDS_REPLY;
	ev.u.tds.detail = TDSBPF_D_REPLY;
	ev.u.tds.d.reply = {};
	ev.u.tds.d.reply.tokens = TDSBPF_TOK_ROUTING;
	for (int i = 0; i < 16; i++)
		ev.u.tds.d.reply.routing_server[i] = static_cast<uint8_t>(0x80 + i * 8);
	ev.u.tds.d.reply.routing_server_len = 255;
	EXPECT_NO_THROW(s = tdsbpf::event_to_json(ev, sizeof(ev)).dump());
	EXPECT_NE(s.find("\"routing\""), std::string::npos) << s;

	ev.kind = TDSBPF_EV_NTLM_AUTH;
	ev.u.tds.type = TDS_SSPI;
	ev.u.tds.detail = TDSBPF_D_NONE;
	n.encoding = TDSBPF_NTLM_UNICODE;
	const uint8_t lone_surrogate[] = {0x00, 0xD8, 'a', 0, 0x00, 0xDC};
	std::memcpy(n.user, lone_surrogate, sizeof(lone_surrogate));
	n.user_len = 60000; // beyond the field: cut to it
	std::memset(n.domain, 0xFF, sizeof(n.domain));
	n.domain_len = sizeof(n.domain);
	EXPECT_NO_THROW(s = tdsbpf::event_to_json(n.base, sizeof(n)).dump());
	EXPECT_NE(s.find("\"user\":\"\xEF\xBF\xBD"
			 "a\xEF\xBF\xBD"),
		  std::string::npos)
		<< s;
}

// A record shorter than a tdsbpf_event (none of the packet programs' sizes)
// is shown by its length only: nothing past it is read. Found by the
// aggregator fuzz target (under ASan, a heap overflow in the --events view).
TEST(EventView, ShortRecordIsNotRead)
{
	for (std::size_t len : {std::size_t{0}, std::size_t{12}, sizeof(tdsbpf_event) - 1}) {
		auto buf = std::make_unique<uint8_t[]>(len ? len : 1);
		std::memset(buf.get(), 0x0b, len); // kind TDS, were it read
		const auto& ev = *reinterpret_cast<const tdsbpf_event*>(buf.get());
		nlohmann::json j = tdsbpf::event_to_json(ev, len);
		EXPECT_EQ(j.value("event", ""), "malformed") << j.dump();
		EXPECT_EQ(j.value("length", std::size_t{999}), len) << j.dump();
		EXPECT_EQ(j.size(), 2u) << j.dump();
	}
}
