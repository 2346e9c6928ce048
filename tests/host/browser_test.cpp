// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The SQL Server Browser (--follow-browser), packet copies (--write-pcap)
// and socket owners, through the host walk and the aggregator: the ports a
// Browser reply names are traced before the client connects, lookups are
// reported with their diagnoses and linked to the connection that follows,
// packet copies reach the capture with their connection's id.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>

#include "builder.h"
#include "events_builder.h"

using namespace tdsbpf;
using namespace tdsbpf::test;
using namespace tb;

namespace {

const std::string kReply =
	"ServerName;SQL1;InstanceName;LAB;IsClustered;No;Version;16.0.1000.6;tcp;14330;np;\\\\SQL1\\pipe\\MSSQL$LAB\\sql\\query;;";

Conn browser_conn(uint16_t client_port = 50001)
{
	Conn b;
	b.cport = client_port;
	b.sport = 1434;
	return b;
}

Conn tcp_conn(uint16_t port, uint16_t client_port = 50002)
{
	Conn t;
	t.cport = client_port;
	t.sport = port;
	return t;
}

HostParserConfig browsing()
{
	HostParserConfig cfg;
	cfg.follow_browser = true;
	cfg.flush_interval_ns = 0;
	return cfg;
}

const tdsbpf_browser_event& browser_of(const Rec& r)
{
	return *reinterpret_cast<const tdsbpf_browser_event*>(r.raw.data());
}

// The records of a collector into an aggregator, at 1 ms steps from
// kBaseNs; finish() one minute later.
std::vector<nlohmann::json> aggregate(std::vector<Rec> recs, AggregatorConfig cfg = {}, uint64_t step_ns = 1000000)
{
	CollectSink sink;
	Aggregator agg(cfg, sink);
	uint64_t ts = kBaseNs;
	for (auto& r : recs) {
		reinterpret_cast<tdsbpf_event*>(r.raw.data())->ts_ns = ts;
		agg.on_event(r.ev(), r.raw.size());
		ts += step_ns;
	}
	agg.finish(ts + 60'000'000'000ull);
	return sink.records;
}

const nlohmann::json* of_record(const std::vector<nlohmann::json>& v, const char* kind)
{
	for (const auto& j : v)
		if (j["tdsbpf.record"] == kind)
			return &j;
	return nullptr;
}

} // namespace

TEST(Browser, AReplyTracesItsPortBeforeTheClientConnects)
{
	Collector c(browsing());
	Conn b = browser_conn();
	c.feed(b.udp(true, ssrp_ucast_inst("LAB")));
	c.feed(b.udp(false, ssrp_response(kReply)));
	auto recs = c.take();
	ASSERT_EQ(recs.size(), 2u) << kinds(recs);
	EXPECT_EQ(recs[0].kind(), TDSBPF_EV_BROWSER);
	EXPECT_EQ(recs[0].ev().dir, TDSBPF_DIR_C2S);
	EXPECT_EQ(recs[0].ev().key.server_port, 1434);
	EXPECT_EQ(recs[0].ev().key.client_port, 50001);
	EXPECT_EQ(browser_of(recs[0]).followed[0], 0);
	ASSERT_EQ(recs[1].ev().dir, TDSBPF_DIR_S2C);
	EXPECT_EQ(browser_of(recs[1]).followed[0], 14330);
	EXPECT_EQ(browser_of(recs[1]).data_len, kReply.size() + 3);
	EXPECT_EQ(std::memcmp(browser_of(recs[1]).data + 3, kReply.data(), kReply.size()), 0);

	// the connection to the port named is traced from its SYN on
	Conn t = tcp_conn(14330);
	c.feed(t.syn());
	auto after = c.take();
	ASSERT_EQ(after.size(), 1u) << kinds(after);
	EXPECT_EQ(after[0].kind(), TDSBPF_EV_TCP_SYN);
	EXPECT_EQ(after[0].ev().key.server_port, 14330);
}

TEST(Browser, NothingWithoutTheFlag)
{
	HostParserConfig cfg;
	cfg.flush_interval_ns = 0;
	Collector c(cfg);
	Conn b = browser_conn();
	c.feed(b.udp(true, ssrp_ucast_inst("LAB")));
	c.feed(b.udp(false, ssrp_response(kReply)));
	Conn t = tcp_conn(14330);
	c.feed(t.syn());
	EXPECT_TRUE(c.take().empty());
}

TEST(Browser, OtherUdpIsLeftAlone)
{
	Collector c(browsing());
	Conn dns;
	dns.cport = 50003;
	dns.sport = 53;
	c.feed(dns.udp(true, Bytes(40, 0x11)));
	c.feed(dns.udp(false, ssrp_response(kReply))); // the right bytes on the wrong port
	Conn t = tcp_conn(14330);
	c.feed(t.syn());
	EXPECT_TRUE(c.take().empty());
}

TEST(Browser, SeveralInstancesOverIpv6)
{
	Collector c(browsing());
	Conn b = browser_conn();
	b.v6 = true;
	b.caddr = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	b.saddr = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
	std::string text = "ServerName;SQL1;InstanceName;A;IsClustered;No;Version;16.0.1000.6;tcp;14331;;"
			   "ServerName;SQL1;InstanceName;B;IsClustered;No;Version;15.0.2000.5;np;\\\\SQL1\\pipe\\b;;"
			   "ServerName;SQL1;InstanceName;C;IsClustered;Yes;Version;14.0.1000.169;tcp;14333;;";
	c.feed(b.udp(true, Bytes{0x03}));
	c.feed(b.udp(false, ssrp_response(text)));
	auto recs = c.take();
	ASSERT_EQ(recs.size(), 2u);
	const auto& r = browser_of(recs[1]);
	EXPECT_EQ(r.followed[0], 14331);
	EXPECT_EQ(r.followed[1], 14333);
	EXPECT_EQ(r.followed[2], 0);
	for (uint16_t port : {14331, 14333}) {
		Conn t = tcp_conn(port);
		t.v6 = true;
		t.caddr = b.caddr;
		t.saddr = b.saddr;
		c.feed(t.syn());
	}
	EXPECT_EQ(kinds(c.take()), "tcp_syn,tcp_syn");

	auto out = aggregate(recs);
	const auto* lookup = of_record(out, "browser");
	ASSERT_TRUE(lookup);
	EXPECT_EQ((*lookup)["outcome"], "answered");
	EXPECT_EQ((*lookup)["network.type"], "ipv6");
	EXPECT_EQ((*lookup)["request"]["type"], "clnt_ucast_ex");
	const auto& inst = (*lookup)["responses"][0]["instances"];
	ASSERT_EQ(inst.size(), 3u);
	EXPECT_EQ(inst[1]["tcp_port"], nullptr);
	EXPECT_EQ(inst[1]["named_pipe"], "\\\\SQL1\\pipe\\b");
	EXPECT_EQ(inst[2]["clustered"], true);
	EXPECT_EQ((*lookup)["followed_ports"], (nlohmann::json{14331, 14333}));
	EXPECT_TRUE(has_diagnosis(*lookup, "browser_no_tcp")) << lookup->dump();
}

TEST(Browser, TheLookupIsReportedAndNamesTheConnection)
{
	Collector c(browsing());
	Conn b = browser_conn();
	c.feed(b.udp(true, ssrp_ucast_inst("LAB")));
	c.feed(b.udp(false, ssrp_response(kReply)));
	Conn t = tcp_conn(14330);
	handshake(c, t); // its events dropped: the SYN comes again below
	c.take();
	Collector c2(browsing());
	c2.feed(b.udp(true, ssrp_ucast_inst("LAB")));
	c2.feed(b.udp(false, ssrp_response(kReply)));
	Conn t2 = tcp_conn(14330);
	c2.feed(t2.syn());
	c2.feed(t2.synack());
	c2.feed(t2.ack(true));
	c2.feed(t2.fin(true));
	c2.feed(t2.fin(false));
	c2.feed(t2.ack(true));
	auto out = aggregate(c2.take());
	const auto* lookup = of_record(out, "browser");
	ASSERT_TRUE(lookup);
	EXPECT_EQ((*lookup)["outcome"], "answered");
	EXPECT_EQ((*lookup)["request"]["instance"], "LAB");
	EXPECT_EQ((*lookup)["responses"][0]["latency_ms"], 1.0);
	EXPECT_EQ((*lookup)["responses"][0]["instances"][0]["instance_name"], "LAB");
	EXPECT_EQ((*lookup)["responses"][0]["instances"][0]["tcp_port"], 14330);
	EXPECT_EQ((*lookup)["responses"][0]["instances"][0]["version"], "16.0.1000.6");
	EXPECT_EQ((*lookup)["followed_ports"], (nlohmann::json{14330}));
	EXPECT_TRUE((*lookup)["diagnoses"].empty()) << lookup->dump();
	const auto* conn = of_record(out, "connection");
	ASSERT_TRUE(conn);
	EXPECT_EQ((*conn)["server.port"], 14330);
	EXPECT_EQ((*conn)["browser"]["instance"], "LAB");
	EXPECT_EQ((*conn)["browser"]["lookup_ms"], 1.0);
}

TEST(Browser, NoAnswerAndASlowAnswerAreDiagnosed)
{
	Collector c(browsing());
	Conn b = browser_conn();
	c.feed(b.udp(true, ssrp_ucast_inst("NOPE")));
	auto out = aggregate(c.take());
	const auto* lookup = of_record(out, "browser");
	ASSERT_TRUE(lookup);
	EXPECT_EQ((*lookup)["outcome"], "no_answer");
	EXPECT_TRUE((*lookup)["responses"].empty());
	ASSERT_TRUE(has_diagnosis(*lookup, "browser_no_answer")) << lookup->dump();
	EXPECT_NE((*lookup)["diagnoses"][0]["message"].get<std::string>().find("instance NOPE"), std::string::npos);

	// an answer 800 ms after the request
	c.feed(b.udp(true, ssrp_ucast_inst("LAB")));
	c.feed(b.udp(false, ssrp_response(kReply)));
	out = aggregate(c.take(), {}, 800'000'000);
	lookup = of_record(out, "browser");
	ASSERT_TRUE(lookup);
	EXPECT_EQ((*lookup)["outcome"], "answered");
	EXPECT_EQ((*lookup)["responses"][0]["latency_ms"], 800.0);
	EXPECT_TRUE(has_diagnosis(*lookup, "browser_slow")) << lookup->dump();

	// an answer whose request came before the trace began
	c.feed(b.udp(false, ssrp_response(kReply)));
	out = aggregate(c.take());
	lookup = of_record(out, "browser");
	ASSERT_TRUE(lookup);
	EXPECT_EQ((*lookup)["outcome"], "answer_only");
	EXPECT_EQ((*lookup)["request"], nullptr);
	EXPECT_EQ((*lookup)["responses"][0]["latency_ms"], nullptr);
}

TEST(Browser, HostileDatagramsAreNamedNotBelieved)
{
	Collector c(browsing());
	Conn b = browser_conn();
	std::mt19937 rng(7);
	std::vector<Rec> all;
	for (int i = 0; i < 300; i++) {
		Bytes junk(rng() % 1400);
		for (auto& x : junk)
			x = static_cast<uint8_t>(rng());
		if (i % 3 == 0 && !junk.empty())
			junk[0] = 0x05; // a reply's first byte, then anything
		c.feed(b.udp(i % 2 == 0, junk));
		for (auto& r : c.take())
			all.push_back(std::move(r));
	}
	// a port that is not a port, and digits that run on
	c.feed(b.udp(false, ssrp_response("ServerName;X;InstanceName;Y;IsClustered;No;Version;1;tcp;99999;;")));
	c.feed(b.udp(false, ssrp_response("ServerName;X;InstanceName;Y;IsClustered;No;Version;1;tcp;0;;")));
	c.feed(b.udp(false, ssrp_response("ServerName;X;tcp;1433999;;")));
	auto last = c.take();
	ASSERT_EQ(last.size(), 3u);
	for (const auto& r : last)
		EXPECT_EQ(browser_of(r).followed[0], 0);
	for (auto& r : last)
		all.push_back(std::move(r));
	auto out = aggregate(all);
	EXPECT_FALSE(out.empty());
	for (const auto& j : out) {
		ASSERT_EQ(j["tdsbpf.record"], "browser");
		EXPECT_TRUE(j["outcome"] == "not_ssrp" || j["outcome"] == "answer_only" || j["outcome"] == "answered" ||
			    j["outcome"] == "no_answer")
			<< j.dump();
	}
}

TEST(Capture, PacketCopiesFollowTheWalkWithTheirConnection)
{
	HostParserConfig cfg;
	cfg.flush_interval_ns = 0;
	cfg.snaplen = 80;
	Collector c(cfg);
	Conn t = tcp_conn(1433);
	std::vector<Bytes> frames{t.syn(),     t.synack(),
				  t.ack(true), t.data(true, tds(0x12, 1, prelogin({{0, Bytes{16, 0, 0, 0, 0, 0}}}))),
				  t.fin(true), t.fin(false),
				  t.ack(true)};
	for (const auto& f : frames)
		c.feed(f);
	auto recs = c.take();
	auto packets = of_kind(recs, TDSBPF_EV_PACKET);
	ASSERT_EQ(packets.size(), frames.size());
	for (std::size_t i = 0; i < frames.size(); i++) {
		const auto& pk = *reinterpret_cast<const tdsbpf_packet_event*>(packets[i].raw.data());
		EXPECT_EQ(pk.orig_len, frames[i].size());
		EXPECT_EQ(pk.cap_len, std::min<std::size_t>(frames[i].size(), 80));
		ASSERT_EQ(packets[i].raw.size(), sizeof(pk) + pk.cap_len);
		EXPECT_EQ(std::memcmp(packets[i].raw.data() + sizeof(pk), frames[i].data(), pk.cap_len), 0);
	}
	// each copy comes after the events of its own frame
	EXPECT_EQ(recs[0].kind(), TDSBPF_EV_TCP_SYN);
	EXPECT_EQ(recs[1].kind(), TDSBPF_EV_PACKET);
	EXPECT_EQ(c.p.counter(TDSBPF_CNT_EVENTS), recs.size());

	// the aggregator hands them on with the connection's id, then ends it
	AggregatorConfig ac;
	std::vector<uint64_t> ids;
	std::vector<std::pair<uint64_t, bool>> ended;
	ac.on_packet = [&](uint64_t id, const tdsbpf_packet_event&, std::span<const uint8_t> b) {
		ids.push_back(id);
		EXPECT_FALSE(b.empty());
	};
	ac.on_connection_end = [&](uint64_t id, bool diagnosed) { ended.emplace_back(id, diagnosed); };
	auto out = aggregate(recs, ac);
	ASSERT_EQ(out.size(), 1u);
	EXPECT_EQ(ids, std::vector<uint64_t>(frames.size(), out[0]["tdsbpf.connection_id"].get<uint64_t>()));
	ASSERT_EQ(ended.size(), 1u);
	EXPECT_EQ(ended[0].first, out[0]["tdsbpf.connection_id"].get<uint64_t>());
	// closed before any login: a warning
	EXPECT_TRUE(ended[0].second) << out[0].dump();
}

TEST(Owners, TheLocalEndIsNamedByItsCgroup)
{
	Trace t("10.0.0.1", 50000, "10.0.0.2", 1433);
	t.syn(0.0, 100).synack(0.001, 500, 101).hs_ack(0.002, 101, 501);
	t.fin(0.003, C2S, 101, 501).fin(0.004, S2C, 501, 102).close_ack(0.005, C2S, 102, 502);
	auto& recs = t.records();
	recs[0].base().u.tcp.cgroup_id = 4242; // the client's socket left from here
	recs[1].base().u.tcp.cgroup_id = 77;   // and the server's: both ends on this host
	AggregatorConfig cfg;
	std::vector<uint64_t> asked;
	cfg.resolve_owner = [&](uint64_t id) -> std::shared_ptr<const SocketOwner> {
		asked.push_back(id);
		if (id != 4242)
			return nullptr;
		auto o = std::make_shared<SocketOwner>();
		o->cgroup_path =
			"/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope";
		o->systemd_unit = "docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope";
		o->container_id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
		o->container_runtime = "docker";
		return o;
	};
	auto out = run(recs, cfg);
	ASSERT_EQ(out.size(), 1u);
	EXPECT_EQ(asked, (std::vector<uint64_t>{4242, 77}));
	const auto& client = out[0]["owners"]["client"];
	EXPECT_EQ(client["cgroup.id"], 4242);
	EXPECT_EQ(client["container.runtime"], "docker");
	EXPECT_EQ(client["container.id"], "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	EXPECT_EQ(client["k8s.pod.uid"], nullptr);
	const auto& server = out[0]["owners"]["server"];
	EXPECT_EQ(server["cgroup.id"], 77);
	EXPECT_EQ(server["cgroup.path"], nullptr); // gone before it was asked for

	// no cgroup on either packet (seen arriving, or --read): both null
	Trace u("10.0.0.1", 50001, "10.0.0.2", 1433);
	u.syn(0.0, 100).synack(0.001, 500, 101);
	out = run(u.records(), cfg);
	ASSERT_EQ(out.size(), 1u);
	EXPECT_EQ(out[0]["owners"]["client"], nullptr);
	EXPECT_EQ(out[0]["owners"]["server"], nullptr);
}

TEST(Browser, RecordsMatchTheSchema)
{
	Collector c(browsing());
	Conn b = browser_conn();
	std::vector<Rec> recs;
	auto add = [&] {
		for (auto& r : c.take())
			recs.push_back(std::move(r));
	};
	c.feed(b.udp(true, ssrp_ucast_inst("LAB")));
	c.feed(b.udp(false, ssrp_response(kReply)));
	c.feed(b.udp(true, Bytes{0x03}));
	c.feed(b.udp(
		false,
		ssrp_response(
			"ServerName;SQL1;InstanceName;B;IsClustered;No;Version;15.0.2000.5;np;\\\\SQL1\\pipe\\b;;")));
	c.feed(b.udp(true, Bytes{0x0f, 0x01, 'L', 'A', 'B', 0}));
	c.feed(b.udp(false, Bytes{0x05, 0x06, 0x00, 0x01, 0x34, 0x12}));
	c.feed(b.udp(true, ssrp_ucast_inst("NOPE")));
	c.feed(b.udp(true, Bytes{0x99, 1, 2, 3}));
	c.feed(b.udp(false, Bytes{0x05, 0xff, 0xff, 'x'}));
	add();
	Conn t = tcp_conn(14330);
	c.feed(t.syn());
	c.feed(t.synack());
	add();
	recs[recs.size() - 2].raw[offsetof(tdsbpf_event, u) + offsetof(tdsbpf_tcp, cgroup_id)] = 9;
	recs[recs.size() - 1].raw[offsetof(tdsbpf_event, u) + offsetof(tdsbpf_tcp, cgroup_id)] = 10;
	AggregatorConfig cfg;
	cfg.resolve_owner = [](uint64_t id) -> std::shared_ptr<const SocketOwner> {
		if (id != 9)
			return nullptr;
		auto o = std::make_shared<SocketOwner>();
		o->cgroup_path = "/kubepods.slice/kubepods-pod1c2d3e4f_0000_1111_2222_333344445555.slice";
		o->pod_uid = "1c2d3e4f-0000-1111-2222-333344445555";
		return o;
	};
	auto out = aggregate(recs, cfg);
	std::size_t browsers = 0;
	for (const auto& j : out)
		browsers += j["tdsbpf.record"] == "browser";
	EXPECT_GE(browsers, 5u);
	std::string path = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/tdsbpf-browser-" +
			   std::to_string(getpid()) + ".ndjson";
	{
		std::ofstream f(path);
		for (const auto& j : out)
			f << j.dump() << "\n";
	}
	std::string cmd =
		std::string("/usr/bin/python3 ") + TDSBPF_SCHEMA_CHECK + " " + TDSBPF_CONNECTION_SCHEMA + " " + path;
	int rc = std::system(cmd.c_str());
	rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
	ASSERT_NE(rc, 3) << "install the Debian package python3-jsonschema";
	EXPECT_EQ(rc, 0);
	std::remove(path.c_str());
}

// On the loopback a packet passes tc egress and then XDP: it is copied
// once, where it is seen first, on the short path and the full walk alike.
TEST(Capture, APacketSeenTwiceIsCopiedOnce)
{
	HostParserConfig cfg;
	cfg.flush_interval_ns = 0;
	cfg.snaplen = 128;
	Collector c(cfg);
	Conn t = tcp_conn(1433);
	std::vector<Bytes> frames{t.syn(),
				  t.synack(),
				  t.ack(true),
				  t.data(true, tds(0x12, 1, prelogin({{0, Bytes{16, 0, 0, 0, 0, 0}}}))),
				  t.data(false, Bytes(300, 0x04)),
				  t.data(false, Bytes(300, 0x04)),
				  t.ack(true),
				  t.fin(true),
				  t.fin(false),
				  t.ack(true)};
	uint64_t ts = 1;
	for (const auto& f : frames) {
		c.p.process_ethernet(f, static_cast<uint32_t>(f.size()), ts++, 1, TDSBPF_HOOK_TC_EGRESS);
		c.p.process_ethernet(f, static_cast<uint32_t>(f.size()), ts++, 1, TDSBPF_HOOK_XDP);
	}
	auto packets = of_kind(c.take(), TDSBPF_EV_PACKET);
	ASSERT_EQ(packets.size(), frames.size());
	for (const auto& p : packets)
		EXPECT_EQ(p.ev().hook, TDSBPF_HOOK_TC_EGRESS);
}
