// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The real packet programs, loaded into the kernel and driven with
// BPF_PROG_TEST_RUN: crafted conversations and every frame of the real
// captures go through XDP and tc, and the events read back from the ring
// buffer must be exactly those the host walk produces from the same frames.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "builder.h"
#include "capture_frames.h"
#include "event_json.h"
#include "host_parser.h"
#include "loader.h"
#include "privileges.h"
#include "require.h"
#include "tdsbpf.skel.h"

using namespace tdsbpf;
using namespace tdsbpf::test;
using namespace tb;

namespace {

std::string event_line(const tdsbpf_event& ev, std::size_t len)
{
	auto j = event_to_json(ev, len, false);
	if (ev.kind == TDSBPF_EV_WORK) {
		// the kernel's clock is not the frames' numbers: how many latencies,
		// and whether a request waits, are the same
		j["work"]["latencies_ns"] = j["work"]["latencies_ns"].size();
		j["work"]["pending_since_ns"] = j["work"]["pending_since_ns"] != 0;
	}
	if (ev.kind == TDSBPF_EV_EXCERPT && len >= TDSBPF_EXCERPT_HDR) {
		// an excerpt's bytes too: the kernel's copy (the password blanked)
		// must be the host's
		const auto& x = reinterpret_cast<const tdsbpf_excerpt_event&>(ev);
		std::string hex;
		char two[3];
		for (std::size_t i = 0; i < x.len && TDSBPF_EXCERPT_HDR + i < len; i++) {
			std::snprintf(two, sizeof(two), "%02x", x.data[i]);
			hex += two;
		}
		j["excerpt"] = {{"what", x.what}, {"tds71", x.tds71}, {"body_len", x.body_len}, {"data", hex}};
	}
	return j.dump();
}

// The loaded object, shared by all tests (loading verifies three programs).
class Kernel {
public:
	// features: the object loaded with --follow-browser and --write-pcap's
	// settings (a snap length of kSnaplen), a second copy.
	static constexpr uint32_t kSnaplen = 200;
	static Kernel* get(std::string& why, bool features = false)
	{
		static std::unique_ptr<Kernel> k[2];
		static std::string failure[2];
		static bool tried[2] = {false, false};
		int i = features ? 1 : 0;
		if (!tried[i]) {
			tried[i] = true;
			failure[i] = missing_privileges();
			if (failure[i].empty()) {
				auto* p = new Kernel();
				if (p->load(failure[i], features))
					k[i].reset(p);
				else
					delete p;
			}
		}
		why = failure[i];
		return k[i].get();
	}

	~Kernel()
	{
		if (rb_)
			ring_buffer__free(rb_);
		if (skel)
			tdsbpf_bpf__destroy(skel);
	}

	// Runs one frame; returns the program's verdict, or nothing when the
	// kernel refused the input (the program did not run).
	std::optional<int> run(bpf_program* prog, const Bytes& frame)
	{
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
			    .data_size_in = static_cast<uint32_t>(frame.size()), .repeat = 1);
		int err = bpf_prog_test_run_opts(bpf_program__fd(prog), &opts);
		ring_buffer__consume(rb_);
		if (err)
			return std::nullopt;
		return static_cast<int>(opts.retval);
	}

	std::vector<std::string> take()
	{
		std::vector<std::string> out;
		out.swap(events_);
		return out;
	}

	// Forget every flow (each test starts from an empty table).
	void reset()
	{
		int fd = bpf_map__fd(skel->maps.flows);
		tdsbpf_flow_key k{}, next{};
		while (bpf_map_get_next_key(fd, nullptr, &next) == 0)
			bpf_map_delete_elem(fd, &next);
		(void)k;
		ring_buffer__consume(rb_);
		events_.clear();
		stats.clear();
		records.clear();
		cgroups.clear();
	}

	uint64_t counter(tdsbpf_counter c) { return counter_sum(bpf_map__fd(skel->maps.counters), c); }

	tdsbpf_bpf* skel = nullptr;
	std::vector<tdsbpf_stats> stats; // the counters of every FLOW_STATS record since reset
	std::vector<Bytes> records;	 // packet copies and Browser datagrams, whole, since reset
	std::vector<uint64_t> cgroups;	 // the cgroup ids of SYN and SYN+ACK events, since reset

private:
	bool load(std::string& why, bool features)
	{
		skel = tdsbpf_bpf__open();
		if (!skel) {
			why = "cannot open the BPF object";
			return false;
		}
		// no periodic counters: kernel and host clocks differ
		skel->rodata->flush_interval_ns = 0;
		if (features) {
			skel->rodata->follow_browser = 1;
			skel->rodata->capture_snaplen = kSnaplen;
		}
		bpf_map__set_max_entries(skel->maps.events, 4 * 1024 * 1024);
		int err = tdsbpf_bpf__load(skel);
		if (err) {
			why = std::string("cannot load the BPF object: ") + std::strerror(-err);
			return false;
		}
		skel->bss->server_ports[1433 >> 6] |= 1ULL << (1433 & 63);
		rb_ = ring_buffer__new(
			bpf_map__fd(skel->maps.events),
			[](void* ctx, void* data, size_t len) -> int {
				auto* self = static_cast<Kernel*>(ctx);
				const auto* ev = static_cast<tdsbpf_event*>(data);
				// the socket's cgroup is the kernel's alone (BPF_PROG_TEST_RUN
				// gives tc a socket of the calling process): kept apart
				if ((ev->kind == TDSBPF_EV_TCP_SYN || ev->kind == TDSBPF_EV_TCP_SYNACK) &&
				    ev->u.tcp.cgroup_id) {
					self->cgroups.push_back(ev->u.tcp.cgroup_id);
					tdsbpf_event copy = *ev;
					copy.u.tcp.cgroup_id = 0;
					self->events_.push_back(event_line(copy, sizeof(copy)));
				} else {
					self->events_.push_back(event_line(*ev, len));
				}
				if (ev->kind == TDSBPF_EV_PACKET || ev->kind == TDSBPF_EV_BROWSER)
					self->records.emplace_back(static_cast<uint8_t*>(data),
								   static_cast<uint8_t*>(data) + len);
				if (ev->kind == TDSBPF_EV_FLOW_STATS)
					self->stats.push_back(ev->u.stats);
				return 0;
			},
			this, nullptr);
		if (!rb_) {
			why = "cannot map the ring buffer";
			return false;
		}
		return true;
	}

	ring_buffer* rb_ = nullptr;
	std::vector<std::string> events_;
};

std::vector<std::string> host_events(const std::vector<Bytes>& frames)
{
	std::vector<std::string> out;
	HostParserConfig cfg;
	cfg.flush_interval_ns = 0;
	HostParser hp(cfg, [&](const tdsbpf_event& ev, std::size_t len) { out.push_back(event_line(ev, len)); });
	uint64_t ts = 1;
	for (const auto& f : frames)
		hp.process_ethernet(f, static_cast<uint32_t>(f.size()), ts++);
	return out;
}

enum class Prog { xdp, tc_egress, tc_ingress };

bpf_program* program(Kernel* k, Prog p)
{
	switch (p) {
	case Prog::xdp: return k->skel->progs.tdsbpf_xdp;
	case Prog::tc_egress: return k->skel->progs.tdsbpf_tc_egress;
	case Prog::tc_ingress: return k->skel->progs.tdsbpf_tc_ingress;
	}
	return nullptr;
}

// accepted: when given, gets the frames the kernel took (BPF_PROG_TEST_RUN
// refuses some malformed skbs before the program runs); otherwise every
// frame must be taken.
std::vector<std::string> kernel_events(Kernel* k, Prog p, const std::vector<Bytes>& frames,
				       std::vector<Bytes>* accepted = nullptr)
{
	k->reset();
	for (const auto& f : frames) {
		auto verdict = k->run(program(k, p), f);
		if (!verdict) {
			EXPECT_TRUE(accepted) << "BPF_PROG_TEST_RUN refused a frame of " << f.size() << " bytes";
			continue;
		}
		if (accepted)
			accepted->push_back(f);
		// the programs never drop: XDP_PASS, or TC_ACT_UNSPEC
		if (p == Prog::xdp)
			EXPECT_EQ(*verdict, XDP_PASS);
		else
			EXPECT_EQ(*verdict, -1);
	}
	return k->take();
}

// A login with NTLM, MARS, a split header, a keep-alive, a retransmission,
// a zero window and a four-way close.
// The PRELOGIN of a real client or server: every option but FEDAUTHREQUIRED
// and NONCEOPT, a TRACEID included.
Bytes prelogin_of(uint8_t major, uint8_t minor, uint16_t build, uint8_t encryption, uint8_t mars)
{
	Bytes trace(36);
	for (int i = 0; i < 36; i++)
		trace[i] = static_cast<uint8_t>(i + 1);
	return prelogin({{0, {major, minor, static_cast<uint8_t>(build >> 8), static_cast<uint8_t>(build), 0, 0}},
			 {1, {encryption}},
			 {2, {'M', 'S', 'S', 'Q', 'L', 'S', 'E', 'R', 'V', 'E', 'R', 0}},
			 {3, {0, 0, 0x12, 0x34}},
			 {4, {mars}},
			 {5, trace}});
}

std::vector<Bytes> crafted_conversation(bool v6, int vlan)
{
	Conn c;
	c.v6 = v6;
	c.vlan = vlan >= 0;
	c.vlan_id = static_cast<uint16_t>(vlan);
	c.pad = true;
	std::vector<Bytes> f;
	f.push_back(c.next(true, SYN));
	f.push_back(c.next(false, SYN | ACK));
	f.push_back(c.next(true, ACK));
	f.push_back(c.next(true, PSH | ACK, tds(18, 1, prelogin_of(7, 0, 1234, 0, 1))));
	f.push_back(c.next(false, PSH | ACK, tds(4, 1, prelogin_of(16, 0, 1000, 2, 1))));
	Login7 l;
	l.user = "";
	l.flags2 = 0x83; // integrated security
	l.sspi = ntlm_negotiate();
	l.password = "Pw-Blank-Me"; // the excerpt of this LOGIN7 has it blanked, in both walks
	f.push_back(c.next(true, PSH | ACK, tds(16, 1, login7(l))));
	Bytes challenge = tok_sspi(ntlm_challenge());
	f.push_back(c.next(false, PSH | ACK, tds(4, 1, challenge)));
	f.push_back(c.next(true, PSH | ACK, tds(17, 1, ntlm_authenticate("CONTOSO", "joe33", "WS01"))));
	Bytes reply = tok_loginack(0x74000004, {16, 0, 0x03, 0xe8});
	append(reply, tok_env_packet_size("4096", "4096"));
	append(reply, tok_done(0, 0xc1, 0));
	f.push_back(c.next(false, PSH | ACK, tds(4, 1, reply, 55)));
	// MARS: SMP SYN, a batch in SMP DATA, its reply, an SMP ACK
	f.push_back(c.next(true, PSH | ACK, smp(0x01, 0, 0, 4)));
	f.push_back(c.next(true, PSH | ACK, smp(0x08, 0, 1, 4, tds(1, 1, batch_body("select 1")))));
	Bytes rows = {0x81, 0x01, 0x00};
	append(rows, tok_done(0x10, 0xc1, 1));
	f.push_back(c.next(false, PSH | ACK, smp(0x08, 0, 1, 5, tds(4, 1, rows, 55))));
	f.push_back(c.next(true, PSH | ACK, smp(0x02, 0, 1, 6)));
	// two TDS packets with the second header split across two segments
	Bytes two = tds(1, 1, batch_body("select 2"));
	Bytes second = tds(1, 1, batch_body("select 3"));
	append(two, second);
	std::size_t cut = two.size() - second.size() + 3; // 3 bytes of the second header
	f.push_back(c.next(true, PSH | ACK, Bytes(two.begin(), two.begin() + static_cast<long>(cut))));
	f.push_back(c.next(true, PSH | ACK, Bytes(two.begin() + static_cast<long>(cut), two.end())));
	// a reply spread over three segments, its DONE in the last one
	Bytes big = {0x81, 0x01, 0x00};
	big.resize(3000, 0x20);
	append(big, tok_done(0x10, 0xc1, 42));
	Bytes bigpkt = tds(4, 1, big, 55);
	f.push_back(c.next(false, ACK, Bytes(bigpkt.begin(), bigpkt.begin() + 1400)));
	f.push_back(c.next(false, ACK, Bytes(bigpkt.begin() + 1400, bigpkt.begin() + 2800)));
	f.push_back(c.next(false, PSH | ACK, Bytes(bigpkt.begin() + 2800, bigpkt.end())));
	// a retransmission of the last client segment
	Conn back = c;
	back.cseq -= static_cast<uint32_t>(two.size() - cut);
	f.push_back(back.next(true, PSH | ACK, Bytes(two.begin() + static_cast<long>(cut), two.end())));
	// keep-alive and its answer, a zero window
	f.push_back(c.frame(true, c.cseq - 1, c.sseq, ACK, {0}));
	f.push_back(c.next(false, ACK));
	f.push_back(c.next(true, ACK, {}, 0));
	f.push_back(c.next(true, ACK, {}, 5000));
	// attention and its acknowledgement
	f.push_back(c.next(true, PSH | ACK, tds(6, 1, {})));
	f.push_back(c.next(false, PSH | ACK, tds(4, 1, tok_done(0x20, 0xc1, 0), 55)));
	// SMP FIN both ways, then the four-way close
	f.push_back(c.next(true, PSH | ACK, smp(0x04, 0, 2, 6)));
	f.push_back(c.next(false, PSH | ACK, smp(0x04, 0, 2, 6)));
	f.push_back(c.next(true, FIN | ACK));
	f.push_back(c.next(false, ACK));
	f.push_back(c.next(false, FIN | ACK));
	f.push_back(c.next(true, ACK));
	return f;
}

class BpfTest : public ::testing::TestWithParam<Prog> {
protected:
	void SetUp() override
	{
		std::string why;
		k_ = Kernel::get(why);
		TDSBPF_REQUIRE(k_ != nullptr, "needs root and BPF: " + why);
	}
	Kernel* k_ = nullptr;
};

TEST_P(BpfTest, CraftedConversationMatchesHost)
{
	for (bool v6 : {false, true}) {
		for (int vlan : {-1, 42}) {
			auto frames = crafted_conversation(v6, vlan);
			auto kernel = kernel_events(k_, GetParam(), frames);
			auto host = host_events(frames);
			ASSERT_EQ(kernel, host) << "v6=" << v6 << " vlan=" << vlan;
			// what the conversation holds, as the kernel saw it
			std::string all;
			for (const auto& e : kernel)
				all += e + "\n";
			EXPECT_NE(all.find("\"event\":\"tcp_syn\""), std::string::npos);
			EXPECT_NE(all.find("\"user\":\"joe33\""), std::string::npos);
			EXPECT_NE(all.find("\"domain\":\"CONTOSO\""), std::string::npos);
			EXPECT_NE(all.find("\"flags\":\"syn\""), std::string::npos);
			EXPECT_NE(all.find("\"rows\":42"), std::string::npos);
			EXPECT_NE(all.find("\"event\":\"tcp_keepalive\""), std::string::npos);
			EXPECT_NE(all.find("\"event\":\"tcp_keepalive_ack\""), std::string::npos);
			EXPECT_NE(all.find("\"event\":\"tcp_retransmission\""), std::string::npos);
			EXPECT_NE(all.find("\"event\":\"tcp_zero_window\""), std::string::npos);
			EXPECT_NE(all.find("\"event\":\"tcp_close_ack\""), std::string::npos);
			EXPECT_NE(all.find("\"final\":true"), std::string::npos);
			EXPECT_EQ(all.find("\"event\":\"resync\""), std::string::npos) << all;
			// the split header was joined: both batches of that segment pair are there
			int batches = 0;
			for (std::size_t at = all.find("\"type\":\"sql_batch\""); at != std::string::npos;
			     at = all.find("\"type\":\"sql_batch\"", at + 1))
				batches++;
			EXPECT_EQ(batches, 3) << all;
		}
	}
	EXPECT_EQ(k_->counter(TDSBPF_CNT_RINGBUF_DROPS), 0u);
}

TEST_P(BpfTest, EveryCaptureFrameMatchesHost)
{
	std::filesystem::path dir(TDSBPF_CAPTURES_DIR);
	ASSERT_TRUE(std::filesystem::is_directory(dir)) << "captures not found at " << dir;
	int files = 0;
	for (const auto& entry : std::filesystem::directory_iterator(dir)) {
		if (entry.path().extension() != ".pcap")
			continue;
		files++;
		std::string error;
		auto frames = capture_frames(entry.path(), error);
		ASSERT_TRUE(error.empty()) << entry.path() << ": " << error;
		ASSERT_FALSE(frames.empty()) << entry.path();
		auto kernel = kernel_events(k_, GetParam(), frames);
		auto host = host_events(frames);
		EXPECT_FALSE(kernel.empty()) << entry.path();
		EXPECT_EQ(kernel, host) << entry.path();
	}
	EXPECT_EQ(files, 4);
}

TEST_P(BpfTest, OtherTrafficIsIgnored)
{
	Conn c;
	c.sport = 80;
	std::vector<Bytes> frames = {c.next(true, SYN), c.next(false, SYN | ACK),
				     c.next(true, PSH | ACK, tds(18, 1, prelogin_of(7, 0, 1, 0, 0)))};
	// not TCP at all: an ARP frame and a UDP datagram to 1434
	Bytes arp(60, 0);
	arp[12] = 0x08;
	arp[13] = 0x06;
	frames.push_back(arp);
	Bytes udp = c.next(true, ACK);
	udp[14 + 9] = 17;
	frames.push_back(udp);
	EXPECT_TRUE(kernel_events(k_, GetParam(), frames).empty());
}

TEST_P(BpfTest, MalformedFramesMatchHostAndPass)
{
	// truncated at every length, and garbage after valid headers
	auto frames = crafted_conversation(false, -1);
	std::vector<Bytes> broken;
	uint32_t seed = 12345;
	for (const auto& f : frames) {
		for (std::size_t n = 14; n < f.size(); n += 7)
			broken.emplace_back(f.begin(), f.begin() + static_cast<long>(n));
		Bytes g = f;
		for (std::size_t i = 54; i < g.size(); i++) {
			seed = seed * 1103515245 + 12345;
			g[i] = static_cast<uint8_t>(seed >> 16);
		}
		broken.push_back(g);
	}
	std::vector<Bytes> accepted;
	auto kernel = kernel_events(k_, GetParam(), broken, &accepted);
	auto host = host_events(accepted);
	EXPECT_GT(accepted.size(), broken.size() / 2);
	EXPECT_EQ(kernel, host);
}

// The loopback: every frame leaves through tc egress and comes back in at
// XDP (BPF_PROG_TEST_RUN runs both on the loopback device). Each packet
// must count once: the events are those of one sighting, the second
// sightings are counted apart, and the host walk agrees.
TEST(BpfSecondSighting, LoopbackTcEgressThenXdpCountsOnce)
{
	std::string why;
	Kernel* k = Kernel::get(why);
	TDSBPF_REQUIRE(k != nullptr, "needs root and BPF: " + why);
	for (bool v6 : {false, true}) {
		auto frames = crafted_conversation(v6, -1);
		k->reset();
		for (const auto& f : frames) {
			ASSERT_TRUE(k->run(k->skel->progs.tdsbpf_tc_egress, f));
			ASSERT_TRUE(k->run(k->skel->progs.tdsbpf_xdp, f));
		}
		auto kernel = k->take();
		// the events of one sighting; only the count of second sightings
		// in the final counters tells the two runs apart
		auto without_duplicates = [](std::vector<std::string> lines) {
			for (auto& l : lines) {
				auto j = nlohmann::json::parse(l);
				if (j.contains("stats"))
					j["stats"].erase("duplicates_ignored");
				l = j.dump();
			}
			return lines;
		};
		EXPECT_EQ(without_duplicates(kernel), without_duplicates(host_events(frames))) << "v6=" << v6;

		// the host walk, given the same sightings, counts the same
		std::vector<tdsbpf_stats> host_stats;
		HostParserConfig cfg;
		cfg.flush_interval_ns = 0;
		std::vector<std::string> host;
		HostParser hp(cfg, [&](const tdsbpf_event& ev, std::size_t len) {
			host.push_back(event_line(ev, len));
			if (ev.kind == TDSBPF_EV_FLOW_STATS)
				host_stats.push_back(ev.u.stats);
		});
		uint64_t ts = 1;
		for (const auto& f : frames) {
			hp.process_ethernet(f, static_cast<uint32_t>(f.size()), ts++, 1, TDSBPF_HOOK_TC_EGRESS);
			hp.process_ethernet(f, static_cast<uint32_t>(f.size()), ts++, 1, TDSBPF_HOOK_XDP);
		}
		EXPECT_EQ(kernel, host);
		ASSERT_EQ(k->stats.size(), 1u);
		ASSERT_EQ(host_stats.size(), 1u);
		const tdsbpf_stats& s = k->stats[0];
		EXPECT_EQ(s.retrans[0], 1u); // the one resend in the conversation, not its second sighting
		EXPECT_EQ(s.retrans[1], 0u);
		EXPECT_EQ(s.keepalives[0], 1u);
		// every frame but the last ACK (it ended the flow) was seen twice
		EXPECT_EQ(s.duplicates[0] + s.duplicates[1], frames.size() - 1);
		EXPECT_EQ(s.duplicates[0] + 1, s.packets[0]);
		EXPECT_EQ(s.duplicates[1], s.packets[1]);
		for (int d = 0; d < 2; d++) {
			EXPECT_EQ(host_stats[0].duplicates[d], s.duplicates[d]);
			EXPECT_EQ(host_stats[0].packets[d], s.packets[d]);
			EXPECT_EQ(host_stats[0].bytes[d], s.bytes[d]);
		}
	}
	EXPECT_EQ(k->counter(TDSBPF_CNT_RINGBUF_DROPS), 0u);
}

INSTANTIATE_TEST_SUITE_P(Programs, BpfTest, ::testing::Values(Prog::xdp, Prog::tc_egress, Prog::tc_ingress),
			 [](const auto& info) {
				 switch (info.param) {
				 case Prog::xdp: return std::string("xdp");
				 case Prog::tc_egress: return std::string("tc_egress");
				 default: return std::string("tc_ingress");
				 }
			 });

} // namespace

// --follow-browser and --write-pcap in the kernel: a Browser reply's port
// is traced from the packet that names it, and the copies of the packets
// are the frames' first bytes, as the host walk makes them.
TEST(BpfFeatures, BrowserAndPacketCopiesMatchHost)
{
	std::string why;
	Kernel* k = Kernel::get(why, true);
	TDSBPF_REQUIRE(k != nullptr, "needs root and BPF: " + why);
	const uint16_t port = 14330;
	auto& word = k->skel->bss->server_ports[port >> 6];
	word &= ~(1ULL << (port & 63));
	Conn b;
	b.sport = 1434;
	b.cport = 50001;
	Conn t;
	t.sport = port;
	t.cport = 50002;
	std::vector<Bytes> frames{
		b.udp(true, ssrp_ucast_inst("LAB")),
		b.udp(false,
		      ssrp_response("ServerName;SQL1;InstanceName;LAB;IsClustered;No;Version;16.0.1000.6;tcp;14330;;")),
		t.syn(),
		t.synack(),
		t.ack(true),
		t.data(true, tds(0x12, 1, prelogin({{0, Bytes{16, 0, 0, 0, 0, 0}}}))),
		t.data(false, Bytes(600, 0x04)),
		t.fin(true),
		t.fin(false),
		t.ack(true)};
	auto kernel = kernel_events(k, Prog::xdp, frames);
	EXPECT_TRUE(word & (1ULL << (port & 63))) << "the port named was not added";
	auto kernel_records = k->records;

	std::vector<std::string> host;
	std::vector<Bytes> host_records;
	HostParserConfig cfg;
	cfg.flush_interval_ns = 0;
	cfg.follow_browser = true;
	cfg.snaplen = Kernel::kSnaplen;
	HostParser hp(cfg, [&](const tdsbpf_event& ev, std::size_t len) {
		host.push_back(event_line(ev, len));
		if (ev.kind == TDSBPF_EV_PACKET || ev.kind == TDSBPF_EV_BROWSER)
			host_records.emplace_back(reinterpret_cast<const uint8_t*>(&ev),
						  reinterpret_cast<const uint8_t*>(&ev) + len);
	});
	uint64_t ts = 1;
	for (const auto& f : frames)
		hp.process_ethernet(f, static_cast<uint32_t>(f.size()), ts++);
	EXPECT_EQ(kernel, host);
	ASSERT_EQ(kernel_records.size(), host_records.size());
	std::size_t packets = 0;
	for (std::size_t i = 0; i < kernel_records.size(); i++) {
		const auto& kr = kernel_records[i];
		const auto& hr = host_records[i];
		ASSERT_EQ(kr.size(), hr.size()) << i;
		// past the base event (times, hooks and interfaces differ): the same bytes
		std::size_t from = sizeof(tdsbpf_event);
		EXPECT_TRUE(std::equal(kr.begin() + from, kr.end(), hr.begin() + from)) << i;
		const auto* ev = reinterpret_cast<const tdsbpf_event*>(kr.data());
		if (ev->kind != TDSBPF_EV_PACKET)
			continue;
		const auto* pk = reinterpret_cast<const tdsbpf_packet_event*>(kr.data());
		const Bytes& f = frames[packets++];
		EXPECT_EQ(pk->orig_len, f.size());
		EXPECT_EQ(pk->cap_len, std::min<std::size_t>(f.size(), Kernel::kSnaplen));
		EXPECT_TRUE(std::equal(f.begin(), f.begin() + pk->cap_len, kr.begin() + sizeof(tdsbpf_packet_event)));
	}
	EXPECT_EQ(packets, frames.size());
	EXPECT_EQ(k->counter(TDSBPF_CNT_RINGBUF_DROPS), 0u);
	word &= ~(1ULL << (port & 63));
}

// At tc egress a SYN and a SYN+ACK carry their socket's cgroup: under
// BPF_PROG_TEST_RUN, a socket of this process, so the cgroup this test
// runs in. XDP sees no socket.
TEST(BpfFeatures, EgressOpensCarryTheSocketsCgroup)
{
	std::string why;
	Kernel* k = Kernel::get(why);
	TDSBPF_REQUIRE(k != nullptr, "needs root and BPF: " + why);
	auto frames = crafted_conversation(false, -1);
	kernel_events(k, Prog::xdp, frames);
	EXPECT_TRUE(k->cgroups.empty());
	kernel_events(k, Prog::tc_egress, frames);
	ASSERT_EQ(k->cgroups.size(), 2u);
	EXPECT_EQ(k->cgroups[0], k->cgroups[1]);
	// the id is the inode of this process's cgroup directory on the cgroup2 mount
	std::string mount, path;
	{
		std::ifstream mi("/proc/self/mountinfo");
		for (std::string line; std::getline(mi, line);) {
			std::istringstream in(line);
			std::string f, point, rest;
			for (int i = 0; i < 5 && in >> f; i++)
				if (i == 4)
					point = f;
			if (line.find(" - cgroup2 ") != std::string::npos) {
				mount = point;
				break;
			}
		}
		std::ifstream cg("/proc/self/cgroup");
		for (std::string line; std::getline(cg, line);)
			if (line.rfind("0::", 0) == 0)
				path = line.substr(3);
	}
	if (mount.empty() || path.empty())
		GTEST_SKIP() << "no cgroup2 mount to compare the id with";
	struct stat st {};
	ASSERT_EQ(stat((mount + path).c_str(), &st), 0) << mount + path;
	EXPECT_EQ(k->cgroups[0], static_cast<uint64_t>(st.st_ino));
}

// An NTLM AUTHENTICATE sent in a LOGIN7-typed packet: the kernel takes it
// as the SSPI continuation it is, as the host walk does.
TEST(BpfFeatures, SspiContinuationInALogin7PacketMatchesHost)
{
	std::string why;
	Kernel* k = Kernel::get(why);
	TDSBPF_REQUIRE(k != nullptr, "needs root and BPF: " + why);
	Conn c;
	Login7 l;
	l.flags2 |= 0x80;
	l.user = "";
	l.sspi = ntlm_negotiate();
	std::vector<Bytes> frames{c.syn(),
				  c.synack(),
				  c.ack(true),
				  c.data(true, tds(TDS_LOGIN7, 1, login7(l))),
				  c.data(false, tds(TDS_REPLY, 1, tok_sspi(ntlm_challenge()))),
				  c.data(true, tds(TDS_LOGIN7, 1, ntlm_authenticate("CORP", "alice", "WS01")))};
	for (Prog p : {Prog::xdp, Prog::tc_egress}) {
		auto kernel = kernel_events(k, p, frames);
		EXPECT_EQ(kernel, host_events(frames));
		ASSERT_FALSE(kernel.empty());
		EXPECT_NE(kernel.back().find("\"event\":\"ntlm_authenticate\""), std::string::npos) << kernel.back();
		EXPECT_NE(kernel.back().find("\"user\":\"alice\""), std::string::npos) << kernel.back();
	}
}

// A server hello flight longer than a segment: the kernel sends its next
// bytes in MORE excerpts, as the host walk does (segments of 1448 bytes,
// and on egress one of 9000, as a GSO segment is; XDP's test runs take
// frames of a page at most).
TEST(BpfFeatures, HelloFlightAcrossSegmentsMatchesHost)
{
	std::string why;
	Kernel* k = Kernel::get(why);
	TDSBPF_REQUIRE(k != nullptr, "needs root and BPF: " + why);
	Bytes der(3500, 0x30);
	Bytes flight = tds(TDS_PRELOGIN, 1, tls_server_flight(der));
	for (size_t mss : {size_t{1448}, size_t{9000}}) {
		Conn c;
		std::vector<Bytes> frames{c.syn(), c.synack(), c.ack(true),
					  c.data(true, tds(TDS_PRELOGIN, 1, tls_client_hello(false)))};
		for (size_t at = 0; at < flight.size(); at += mss)
			frames.push_back(c.data(
				false, Bytes(flight.begin() + static_cast<long>(at),
					     flight.begin() + static_cast<long>(std::min(flight.size(), at + mss)))));
		frames.push_back(c.data(true, tds(TDS_PRELOGIN, 1, tls_record(20, {1}))));
		for (Prog p : {Prog::xdp, Prog::tc_egress}) {
			if (p == Prog::xdp && mss > 1500)
				continue;
			auto kernel = kernel_events(k, p, frames);
			EXPECT_EQ(kernel, host_events(frames)) << "mss " << mss;
			std::string all;
			for (const auto& e : kernel)
				all += e + "\n";
			EXPECT_NE(all.find("\"what\":4"), std::string::npos) << all;
		}
	}
}
