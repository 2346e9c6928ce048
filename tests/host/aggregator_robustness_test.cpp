// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Out-of-order and lost events, mid-stream starts, port reuse, floods, and
// the diagnoses the seeds explain beyond their own traces.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <sstream>

#include "seeds.h"

namespace tdsbpf::test {
namespace {

using Strings = std::vector<std::string>;

const Strings kSqlPhases{"tcp_handshake", "prelogin", "tls_handshake", "login", "login_ack", "active", "close"};

// A TDS 7.4 SQL login with TLS for the login only, then the given tail.
Trace sql_login(uint16_t port = 50000, double t0 = 0)
{
	Trace t("192.0.2.10", port, "192.0.2.20", 1433);
	t.syn(t0 + 0.000, 1000)
		.synack(t0 + 0.0005, 5000, 1001)
		.hs_ack(t0 + 0.0010, 1001, 5001)
		.prelogin(t0 + 0.0012, C2S, 18, 0, 1000, TDS_ENCRYPT_OFF, 0)
		.prelogin(t0 + 0.0020, S2C, 16, 0, 4095, TDS_ENCRYPT_OFF, TDSBPF_VALUE_ABSENT)
		.tls_in_tds(t0 + 0.0030, C2S, 22, 1)
		.tls_in_tds(t0 + 0.0040, S2C, 22, 2)
		.tls_in_tds(t0 + 0.0050, C2S, 22, 16)
		.tls_in_tds(t0 + 0.0060, S2C, 20, 0)
		.tls(t0 + 0.0070, C2S, 23);
	return t;
}

TEST(Robustness, SmallReorderingGivesTheSameRecord)
{
	Trace ordered = seed_sql_login();
	auto expect = run(ordered.records());
	ASSERT_EQ(expect.size(), 1u);

	// Swap neighbours whose times are within 1 ms, as ingress and egress on
	// two CPUs would deliver them.
	std::vector<Record> recs = seed_sql_login().records();
	for (size_t i = 0; i + 1 < recs.size(); i += 2)
		if (recs[i + 1].base().ts_ns - recs[i].base().ts_ns < 1000000)
			std::swap(recs[i], recs[i + 1]);
	auto got = run(recs);
	ASSERT_EQ(got.size(), 1u);
	EXPECT_EQ(phase_names(got[0]), kSqlPhases);
	EXPECT_EQ(got[0]["phases"], expect[0]["phases"]);
	EXPECT_EQ(got[0]["close"], expect[0]["close"]);
	EXPECT_EQ(got[0]["login"], expect[0]["login"]);
}

// Many connections at once, their events interleaved by time; then some of
// them a few places late (within the reorder window, as another CPU's
// events come): the same records. Enough events wait at once that the
// queue holding them wraps around and grows while late ones go in.
TEST(Robustness, ManyInterleavedConnectionsReorderedGiveTheSameRecords)
{
	std::vector<Record> recs;
	for (int i = 0; i < 60; i++) {
		Trace t = sql_login(static_cast<uint16_t>(50000 + i), 0.00003 * i);
		t.loginack(0.0100 + 0.00003 * i, 0x74000004, 16, 0, 4095, 51)
			.request(0.0200 + 0.00003 * i, TDS_SQL_BATCH)
			.response(0.0210 + 0.00003 * i)
			.fin(0.0300 + 0.00003 * i, C2S, 2000, 9000)
			.fin(0.0301 + 0.00003 * i, S2C, 9000, 2001)
			.close_ack(0.0302 + 0.00003 * i, C2S, 2001, 9001);
		for (auto& r : t.records())
			recs.push_back(r);
	}
	std::stable_sort(recs.begin(), recs.end(),
			 [](const Record& a, const Record& b) { return a.base().ts_ns < b.base().ts_ns; });
	auto expect = run(recs);
	ASSERT_EQ(expect.size(), 60u);
	std::mt19937 rng(11);
	std::vector<Record> late = recs;
	for (size_t i = 8; i < late.size(); i += 1 + rng() % 5) {
		size_t back = 1 + rng() % 6; // moved this many places later
		if (i + back < late.size() && late[i + back].base().ts_ns - late[i].base().ts_ns < 1000000)
			std::rotate(late.begin() + static_cast<long>(i), late.begin() + static_cast<long>(i) + 1,
				    late.begin() + static_cast<long>(i + back) + 1);
	}
	ASSERT_NE(std::memcmp(&late[20].base(), &recs[20].base(), sizeof(tdsbpf_event)) |
			  std::memcmp(&late[40].base(), &recs[40].base(), sizeof(tdsbpf_event)),
		  0)
		<< "nothing was moved";
	auto got = run(late);
	ASSERT_EQ(got.size(), expect.size());
	for (size_t i = 0; i < got.size(); i++)
		EXPECT_EQ(got[i].dump(), expect[i].dump()) << i;
}

TEST(Robustness, LateEventBeyondTheWindowNeverMovesPhasesBack)
{
	Trace t = sql_login();
	t.loginack(0.0100, 0x74000004, 16, 0, 4095, 51).request(0.0200, TDS_SQL_BATCH).response(0.0210);
	std::vector<Record> recs = t.records();
	// The server's PRELOGIN answer and the client hello come 50 ms late.
	Record late1 = recs[4], late2 = recs[5];
	recs.erase(recs.begin() + 4, recs.begin() + 6);
	recs.push_back(late1);
	recs.push_back(late2);
	AggregatorConfig cfg;
	cfg.reorder_window_us = 500;
	auto r = run(recs, cfg);
	ASSERT_EQ(r.size(), 1u);
	// No phase appears twice and the order holds.
	auto names = phase_names(r[0]);
	EXPECT_EQ(names, (Strings{"tcp_handshake", "prelogin", "tls_handshake", "login", "login_ack", "active"}));
	double prev = -1;
	for (const auto& p : r[0]["phases"]) {
		EXPECT_GE(p["start_offset_ms"].get<double>(), prev);
		prev = p["start_offset_ms"].get<double>();
	}
	EXPECT_EQ(r[0]["login"]["outcome"], "success");
	EXPECT_EQ(r[0]["negotiated"]["server_version"], "16.0.4095.0"); // taken from the late event
}

TEST(Robustness, LostEventsSkipPhasesButKeepTheOutcome)
{
	// No PRELOGIN answer, no TLS, no LOGIN7 record: events lost.
	Trace t("192.0.2.10", 50001, "192.0.2.20", 1433);
	t.syn(0, 1)
		.synack(0.001, 2, 2)
		.hs_ack(0.002, 2, 3)
		.prelogin(0.003, C2S, 18, 0, 0, 0, 0)
		.loginack(0.050, 0x74000004, 16, 0, 1, 52)
		.request(0.060, TDS_RPC)
		.response(0.070)
		.fin(0.100, C2S, 0, 0)
		.close_ack(0.100, S2C, 0, 0)
		.fin(0.101, S2C, 0, 0)
		.close_ack(0.102, C2S, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(phase_names(r[0]), (Strings{"tcp_handshake", "prelogin", "login_ack", "active", "close"}));
	EXPECT_EQ(r[0]["login"]["outcome"], "success");
	EXPECT_EQ(r[0]["work"]["rpcs"], 1);
	EXPECT_EQ(r[0]["close"]["kind"], "four_way");
}

// Numbers the records as the kernel does (flow_seq from 1); then the ones
// at `lose` are dropped, as a full ring buffer would.
std::vector<Record> numbered_without(std::vector<Record> recs, std::vector<size_t> lose)
{
	uint32_t n = 0;
	for (auto& r : recs)
		r.base().flow_seq = ++n;
	std::sort(lose.rbegin(), lose.rend());
	for (size_t i : lose)
		recs.erase(recs.begin() + static_cast<long>(i));
	return recs;
}

TEST(LostEvents, GapsAreCountedAndSaidWhereTheyHappened)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51)
		.request(0.020, TDS_RPC)
		.response(0.021)
		.request(0.030, TDS_RPC)
		.response(0.031)
		.fin(0.100, C2S, 0, 0)
		.close_ack(0.100, S2C, 0, 0)
		.fin(0.101, S2C, 0, 0)
		.close_ack(0.102, C2S, 0, 0);
	// the second RPC and its answer are lost
	auto r = run(numbered_without(t.records(), {13, 14}));
	ASSERT_EQ(r.size(), 1u);
	const auto& tr = r[0]["tracer"];
	EXPECT_EQ(tr["events_lost"], 2);
	EXPECT_EQ(tr["start_lost"], false);
	EXPECT_EQ(tr["more_may_be_lost"], false);
	// a close soon after the last answer seen: a finding from something not
	// seen (no more requests), so it is hedged
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"events_lost", "non_pooled_close"}));
	EXPECT_EQ(r[0]["diagnoses"][1]["message"].get<std::string>().rfind(
			  "Events of this connection were lost, so this may be wrong: ", 0),
		  0u)
		<< r[0]["diagnoses"][1]["message"];
	EXPECT_NE(r[0]["diagnoses"][0]["message"].get<std::string>().find("2 event(s) of this connection were lost"),
		  std::string::npos);
	// what was seen stays a fact
	EXPECT_EQ(r[0]["login"]["outcome"], "success");
	EXPECT_EQ(r[0]["close"]["kind"], "four_way");

	// the same events, none lost: the finding is said plainly
	auto whole = run(numbered_without(t.records(), {}));
	ASSERT_EQ(whole.size(), 1u);
	EXPECT_EQ(whole[0]["tracer"]["events_lost"], 0);
	EXPECT_EQ(diagnosis_codes(whole[0]), (Strings{"non_pooled_close"}));
	EXPECT_EQ(whole[0]["diagnoses"][0]["message"].get<std::string>().find("Events of this"), std::string::npos);
}

TEST(LostEvents, LostSynIsNotMidstream)
{
	// The SYN, SYN+ACK and ACK were lost; the kernel saw them (the first
	// event to arrive is number 4 and has no mid-stream mark).
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51);
	auto r = run(numbered_without(t.records(), {0, 1, 2}));
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["midstream"], false);
	EXPECT_EQ(r[0]["tracer"]["start_lost"], true);
	EXPECT_EQ(r[0]["tracer"]["events_lost"], 3);
	EXPECT_FALSE(has_diagnosis(r[0], "midstream"));
	EXPECT_TRUE(has_diagnosis(r[0], "events_lost"));
	EXPECT_NE(r[0]["diagnoses"][0]["message"].get<std::string>().find("it is not mid-stream"), std::string::npos);

	// a connection the kernel itself met mid-stream still is one
	Trace m("192.0.2.10", 50020, "192.0.2.20", 1433);
	m.midstream().request(0.1, TDS_RPC).response(0.2);
	auto mr = run(numbered_without(m.records(), {}));
	ASSERT_EQ(mr.size(), 1u);
	EXPECT_EQ(mr[0]["midstream"], true);
	EXPECT_EQ(mr[0]["tracer"]["start_lost"], false);
}

TEST(LostEvents, DropsWhileOpenMakeTheEndUnknown)
{
	// Logging in when the ring buffer overflowed; no answer and no close
	// arrived after that.
	AggregatorConfig cfg;
	CollectSink sink;
	Aggregator agg(cfg, sink);
	Trace t = sql_login();
	auto recs = numbered_without(t.records(), {});
	for (auto& r : recs)
		agg.on_event(r.base(), r.len);
	agg.note_drops(5000, 0);
	agg.finish(recs.back().base().ts_ns + 1'000'000'000ull);
	ASSERT_EQ(sink.records.size(), 1u);
	const auto& c = sink.records[0];
	EXPECT_EQ(c["close"]["kind"], "unknown");    // not still_open
	EXPECT_EQ(c["login"]["outcome"], "unknown"); // not in_progress
	EXPECT_EQ(c["tracer"]["more_may_be_lost"], true);
	EXPECT_EQ(c["tracer"]["events_lost"], 0);
	EXPECT_TRUE(has_diagnosis(c, "events_lost"));

	// without drops: still open, still logging in
	auto plain = run(recs);
	ASSERT_EQ(plain.size(), 1u);
	EXPECT_EQ(plain[0]["close"]["kind"], "still_open");
	EXPECT_EQ(plain[0]["login"]["outcome"], "in_progress");
	EXPECT_EQ(plain[0]["tracer"]["more_may_be_lost"], false);
}

// The text view's timeline has a line per packet, none for the kernel's
// counters (periodic or final); they go into the connection's block.
TEST(TextView, NoCounterLinesInTheTimeline)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51)
		.stats(5.0, 100, 200, 3, 4, false)
		.fin(9.0, C2S, 0, 0)
		.close_ack(9.0, S2C, 0, 0)
		.fin(9.001, S2C, 0, 0)
		.close_ack(9.002, C2S, 0, 0)
		.stats(9.002, 150, 250, 5, 6, true);
	AggregatorConfig cfg;
	CollectSink sink;
	sink.lines = true;
	Aggregator agg(cfg, sink);
	feed(agg, t.records());
	ASSERT_EQ(sink.records.size(), 1u);
	ASSERT_FALSE(sink.timeline.empty());
	EXPECT_EQ(sink.timeline.size(), t.records().size() - 2);
	for (const auto& l : sink.timeline)
		EXPECT_EQ(l.description.find("STATS"), std::string::npos) << l.description;
	EXPECT_EQ(sink.records[0]["tcp"]["bytes"]["client_to_server"], 150);
}

// The connection's block names each direction's counts (bytes, packets,
// keep-alives, retransmissions), not "150/250".
TEST(TextView, EachDirectionIsNamed)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51)
		.keepalive(2.0, S2C)
		.retrans(3.0, C2S)
		.fin(9.0, C2S, 0, 0)
		.close_ack(9.0, S2C, 0, 0)
		.fin(9.001, S2C, 0, 0)
		.close_ack(9.002, C2S, 0, 0)
		.stats(9.002, 150, 250, 5, 6, true);
	std::ostringstream out;
	TextSink sink(out);
	Aggregator agg({}, sink);
	feed(agg, t.records());
	std::string s = out.str();
	EXPECT_NE(s.find("   tcp       client→server 150 B in 5 packets, 0 keep-alives, 1 retransmissions\n"),
		  std::string::npos)
		<< s;
	EXPECT_NE(s.find("             server→client 250 B in 6 packets, 1 keep-alives, 0 retransmissions\n"),
		  std::string::npos)
		<< s;
	EXPECT_EQ(s.find("keep-alives 0/"), std::string::npos) << s;
}

TEST(LostEvents, NoLoginVerdictWithoutItsAnswer)
{
	// closed during the login, as far as was seen: the answer may be among
	// the lost events, so the login is not called aborted
	Trace t = sql_login();
	t.fin(0.5, C2S, 0, 0).close_ack(0.5, S2C, 0, 0).fin(0.501, S2C, 0, 0).close_ack(0.502, C2S, 0, 0);
	auto r = run(numbered_without(t.records(), {9}));
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["login"]["outcome"], "unknown");
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"events_lost"}));
	// none lost: aborted, and said
	auto whole = run(numbered_without(t.records(), {}));
	ASSERT_EQ(whole.size(), 1u);
	EXPECT_EQ(whole[0]["login"]["outcome"], "aborted");
	EXPECT_EQ(diagnosis_codes(whole[0]), (Strings{"closed_before_login"}));
}

TEST(Robustness, PreloginAnswerReadAsAReplyIsNotALoginReply)
{
	// A server PRELOGIN answer whose option table a token walk misread as
	// an ERROR: it must not fail the login.
	Trace t("192.0.2.10", 50010, "192.0.2.20", 1433);
	t.syn(0, 1)
		.synack(0.001, 2, 2)
		.hs_ack(0.002, 2, 3)
		.prelogin(0.003, C2S, 18, 0, 0, TDS_ENCRYPT_OFF, 0)
		.login_error(0.004, 0, 0, 0)
		.tls_in_tds(0.005, C2S, 22, 1)
		.tls_in_tds(0.006, S2C, 22, 2)
		.tls(0.007, C2S, 23)
		.loginack(0.010, 0x74000004, 16, 0, 1, 51);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["login"]["outcome"], "success");
	EXPECT_EQ(phase_names(r[0]),
		  (Strings{"tcp_handshake", "prelogin", "tls_handshake", "login", "login_ack", "active"}));
}

TEST(Robustness, LostFinEndsStillOpenAtFinish)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["close"]["kind"], "still_open");
	EXPECT_EQ(r[0]["phase"], "active");
	EXPECT_TRUE(diagnosis_codes(r[0]).empty());
}

TEST(Robustness, MidstreamCloseWithoutTheAcksIsPrintedAfterTheLinger)
{
	// For a connection it has no state for, the kernel reports the FINs
	// but not the ACKs.
	Trace t("10.10.10.104", 4657, "10.10.10.22", 1433);
	t.midstream().fin(4.1529661, C2S, 413460761u, 280398321u).fin(4.1529661, S2C, 280398321u, 413460762u);
	CollectSink sink;
	Aggregator agg({}, sink);
	for (auto& rec : t.records())
		agg.on_event(rec.base(), rec.len);
	agg.tick(at(4.5));
	EXPECT_TRUE(sink.records.empty()); // still lingering
	agg.tick(at(4.7));
	ASSERT_EQ(sink.records.size(), 1u);
	EXPECT_EQ(sink.records[0]["close"]["kind"], "four_way");
}

TEST(Robustness, HalfCloseEndsAfterTheFinTimeout)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51).fin(1.0, C2S, 0, 0).close_ack(1.0, S2C, 0, 0);
	CollectSink sink;
	Aggregator agg({}, sink);
	for (auto& rec : t.records())
		agg.on_event(rec.base(), rec.len);
	agg.tick(at(50));
	EXPECT_TRUE(sink.records.empty());
	agg.tick(at(62));
	ASSERT_EQ(sink.records.size(), 1u);
	EXPECT_EQ(sink.records[0]["close"]["kind"], "half_close");
	EXPECT_EQ(sink.records[0]["close"]["initiator"], "client");
}

TEST(Robustness, TracerStartedMidConnection)
{
	Trace t("192.0.2.10", 50002, "192.0.2.20", 1433);
	t.midstream()
		.request(0, TDS_RPC, TDS_STATUS_EOM | TDS_STATUS_RESETCONNECTION)
		.response(0.004)
		.request(0.010, TDS_SQL_BATCH)
		.response(0.012);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["midstream"], true);
	EXPECT_EQ(phase_names(r[0]), (Strings{"active"}));
	EXPECT_EQ(r[0]["login"]["outcome"], "not_seen");
	EXPECT_EQ(r[0]["work"]["reset_connection"], 1);
	EXPECT_EQ(r[0]["pooling"]["verdict"], "pooled"); // RESETCONNECTION: a pool handed it out again
	EXPECT_EQ(r[0]["work"]["rpcs"], 1);
	EXPECT_EQ(r[0]["work"]["sql_batches"], 1);
	EXPECT_DOUBLE_EQ(r[0]["work"]["latency_ms"]["max"].get<double>(), 4.0);
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"midstream"}));
}

TEST(Robustness, PortReuseAfterCloseIsANewConnection)
{
	Trace t = sql_login(50003);
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51)
		.fin(0.100, C2S, 0, 0)
		.close_ack(0.100, S2C, 0, 0)
		.fin(0.101, S2C, 0, 0)
		.close_ack(0.102, C2S, 0, 0)
		// The same ports again 100 ms later (before the close's linger ends).
		.syn(0.200, 777777)
		.synack(0.201, 1, 777778)
		.hs_ack(0.202, 777778, 2)
		.prelogin(0.203, C2S, 18, 0, 0, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 2u);
	EXPECT_EQ(r[0]["close"]["kind"], "four_way");
	EXPECT_EQ(r[0]["login"]["outcome"], "success");
	EXPECT_EQ(r[1]["midstream"], false);
	EXPECT_EQ(phase_names(r[1]), (Strings{"tcp_handshake", "prelogin"}));
	EXPECT_EQ(r[1]["tcp"]["syn_count"], 1);
	EXPECT_NE(r[0]["tdsbpf.connection_id"], r[1]["tdsbpf.connection_id"]);
}

TEST(Robustness, PortReuseWithoutSeenCloseReplacesTheOldOne)
{
	Trace t = sql_login(50004);
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51).syn(5.0, 424242);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 2u);
	EXPECT_EQ(r[0]["close"]["kind"], "replaced");
	EXPECT_EQ(r[1]["close"]["kind"], "syn_unanswered");
}

TEST(Robustness, RetransmittedSynIsTheSameConnection)
{
	Trace t("192.0.2.10", 50005, "192.0.2.20", 1433);
	t.syn(0, 99).syn(1.0, 99).syn(3.0, 99);
	AggregatorConfig cfg;
	CollectSink sink;
	Aggregator agg(cfg, sink);
	for (auto& rec : t.records())
		agg.on_event(rec.base(), rec.len);
	agg.tick(at(3.0) + 10ull * 1000000000ull);
	EXPECT_TRUE(sink.records.empty()); // still within the handshake timeout
	agg.tick(at(3.0) + 31ull * 1000000000ull);
	ASSERT_EQ(sink.records.size(), 1u);
	auto& r = sink.records[0];
	EXPECT_EQ(r["tcp"]["syn_count"], 3);
	EXPECT_EQ(r["close"]["kind"], "syn_unanswered");
	EXPECT_EQ(r["login"]["outcome"], "not_started");
	EXPECT_EQ(diagnosis_codes(r), (Strings{"syn_unanswered"}));
}

TEST(Robustness, SynRefused)
{
	Trace t("192.0.2.10", 50006, "192.0.2.20", 1433);
	t.syn(0, 99).rst(0.0003, S2C, 0, 100);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["close"]["kind"], "refused");
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"connection_refused"}));
}

// A Windows client whose SYN is refused sends the same SYN (same initial
// sequence number) again, twice, half a second apart: one attempt.
Trace refused_three_times(uint16_t port)
{
	Trace t("192.0.2.10", port, "192.0.2.20", 1433);
	t.syn(0, 99)
		.rst(0.0003, S2C, 0, 100)
		.syn(0.5006, 99)
		.rst(0.5009, S2C, 0, 100)
		.syn(1.0012, 99)
		.rst(1.0015, S2C, 0, 100);
	return t;
}

TEST(Robustness, RefusedSynRetriedIsOneAttempt)
{
	auto r = run(refused_three_times(50016).records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["close"]["kind"], "refused");
	EXPECT_EQ(r[0]["tcp"]["syn_count"], 3);
	EXPECT_EQ(r[0]["login"]["outcome"], "not_started");
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"connection_refused"}));
	std::string msg = r[0]["diagnoses"][0]["message"];
	EXPECT_NE(msg.find("3 times in all"), std::string::npos) << msg;
}

TEST(Robustness, RefusedSynRetriedIsOneAttemptLive)
{
	// as the live tracer delivers them: events as they happen, a tick every 100 ms
	AggregatorConfig cfg;
	CollectSink sink;
	Aggregator agg(cfg, sink);
	auto recs = refused_three_times(50017).records();
	std::size_t i = 0;
	for (uint64_t now = at(0); now < at(4.0); now += 100'000'000ull) {
		for (; i < recs.size() && recs[i].base().ts_ns <= now; i++)
			agg.on_event(recs[i].base(), recs[i].len);
		agg.tick(now);
	}
	ASSERT_EQ(sink.records.size(), 1u);
	EXPECT_EQ(sink.records[0]["close"]["kind"], "refused");
	EXPECT_EQ(sink.records[0]["tcp"]["syn_count"], 3);
	// and it was printed within 2 s of the first reset, not at the end
	agg.finish(at(4.0));
	EXPECT_EQ(sink.records.size(), 1u);
}

TEST(Robustness, NewSynAfterARefusalIsANewAttempt)
{
	// another initial sequence number: the application connecting again
	Trace t("192.0.2.10", 50018, "192.0.2.20", 1433);
	t.syn(0, 99).rst(0.0003, S2C, 0, 100).syn(0.2, 5555).rst(0.2003, S2C, 0, 5556);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 2u);
	EXPECT_EQ(r[0]["tcp"]["syn_count"], 1);
	EXPECT_EQ(r[1]["tcp"]["syn_count"], 1);
	EXPECT_EQ(r[1]["close"]["kind"], "refused");
}

TEST(Robustness, HalfOpenFloodStaysBounded)
{
	AggregatorConfig cfg;
	cfg.max_connections = 64;
	CollectSink sink;
	Aggregator agg(cfg, sink);
	// A real connection first ...
	Trace good = sql_login(40000);
	good.loginack(0.010, 0x74000004, 16, 0, 1, 51);
	for (auto& rec : good.records())
		agg.on_event(rec.base(), rec.len);
	// ... then 20000 SYNs from spoofed ports, never answered.
	for (int i = 0; i < 20000; i++) {
		Trace t("198.51.100.7", static_cast<uint16_t>(1024 + i), "192.0.2.20", 1433);
		t.syn(0.020 + i * 1e-6, static_cast<uint32_t>(i));
		agg.on_event(t.records()[0].base(), t.records()[0].len);
		ASSERT_LE(agg.summary().connections_open, 64u);
	}
	agg.finish(at(1.0));
	EXPECT_GE(agg.summary().connections_evicted, 20000u - 64u);
	// The established connection survived the flood; evicted half-open ones
	// are counted, not printed.
	ASSERT_FALSE(sink.records.empty());
	EXPECT_EQ(sink.records[0]["client.port"], 40000);
	EXPECT_EQ(sink.records[0]["login"]["outcome"], "success");
	EXPECT_LE(sink.records.size(), 64u);
	EXPECT_EQ(agg.summary().connections_open, 0u);
	EXPECT_EQ(agg.summary().by_close_kind.at("evicted"), agg.summary().connections_evicted);
}

TEST(Robustness, OldestIdleEstablishedIsEvictedFirst)
{
	AggregatorConfig cfg;
	cfg.max_connections = 2;
	CollectSink sink;
	Aggregator agg(cfg, sink);
	Trace a("192.0.2.1", 1001, "192.0.2.20", 1433), b("192.0.2.2", 1002, "192.0.2.20", 1433),
		c("192.0.2.3", 1003, "192.0.2.20", 1433);
	a.midstream().request(0.0, TDS_SQL_BATCH);
	b.midstream().request(0.1, TDS_SQL_BATCH);
	a.request(0.2, TDS_SQL_BATCH);		   // a is now more recent than b
	c.midstream().request(0.3, TDS_SQL_BATCH); // evicts b
	std::vector<Record> all;
	for (Trace* t : {&a, &b, &c})
		all.insert(all.end(), t->records().begin(), t->records().end());
	std::stable_sort(all.begin(), all.end(),
			 [](const Record& x, const Record& y) { return x.base().ts_ns < y.base().ts_ns; });
	for (auto& rec : all)
		agg.on_event(rec.base(), rec.len);
	agg.finish(at(1.0));
	ASSERT_EQ(sink.records.size(), 3u);
	EXPECT_EQ(sink.records[0]["client.port"], 1002);
	EXPECT_EQ(sink.records[0]["close"]["kind"], "evicted");
	EXPECT_TRUE(has_diagnosis(sink.records[0], "evicted"));
	EXPECT_EQ(agg.summary().connections_evicted, 1u);
}

TEST(Robustness, LateEventsAfterTheCloseDoNotMakeAGhost)
{
	Trace t = seed_normal_close();
	t.close_ack(9.0, C2S, 0, 0).rst(9.1, S2C, 0, 0);
	CollectSink sink;
	Aggregator agg({}, sink);
	feed(agg, t.records());
	ASSERT_EQ(sink.records.size(), 1u);
	EXPECT_EQ(agg.summary().events_late, 2u);
}

TEST(Robustness, MalformedRecordsAreCounted)
{
	CollectSink sink;
	Aggregator agg({}, sink);
	Trace t = seed_ntlm_login();
	for (auto& rec : t.records())
		agg.on_event(rec.base(), rec.base().kind == TDSBPF_EV_NTLM_AUTH ? sizeof(tdsbpf_event) : rec.len);
	tdsbpf_event junk{};
	junk.kind = 200;
	agg.on_event(junk, sizeof(junk));
	agg.on_event(junk, 3);
	agg.finish(at(2000));
	EXPECT_EQ(agg.summary().events_malformed, 3u);
	ASSERT_EQ(sink.records.size(), 1u);
	EXPECT_TRUE(sink.records[0]["authentication"]["ntlm"].is_null());
	EXPECT_EQ(sink.records[0]["authentication"]["method"], "ntlm"); // from the CHALLENGE
}

TEST(Robustness, ShuffledWithinWindowManyConnections)
{
	// Ten seed logins on distinct ports, interleaved and jittered by up to
	// 1 ms: every connection gets its seed's phases.
	std::vector<Record> all;
	for (int i = 0; i < 10; i++) {
		Trace t = seed_kerberos_login();
		for (auto& rec : t.records()) {
			rec.base().key.client_port = static_cast<uint16_t>(49299 + i);
			all.push_back(rec);
		}
	}
	std::mt19937 rng(7);
	std::stable_sort(all.begin(), all.end(),
			 [](const Record& x, const Record& y) { return x.base().ts_ns < y.base().ts_ns; });
	for (size_t i = 0; i + 1 < all.size(); i++)
		if (all[i + 1].base().ts_ns - all[i].base().ts_ns < 1000000 && (rng() & 1))
			std::swap(all[i], all[i + 1]);
	auto r = run(all);
	ASSERT_EQ(r.size(), 10u);
	for (const auto& rec : r) {
		EXPECT_EQ(phase_names(rec), (Strings{"tcp_handshake", "prelogin", "tls_handshake", "login",
						     "authentication", "login_ack", "active", "close"}));
		EXPECT_EQ(rec["close"]["kind"], "four_way");
	}
}

// ---- Diagnoses the seeds explain ----

TEST(Diagnosis, ServerClosedFirstDuringTls)
{
	Trace t("192.0.2.10", 50100, "192.0.2.20", 1433);
	t.syn(0, 1)
		.synack(0.001, 2, 2)
		.hs_ack(0.002, 2, 3)
		.prelogin(0.003, C2S, 18, 0, 0, TDS_ENCRYPT_ON, 0)
		.prelogin(0.004, S2C, 11, 0, 0, TDS_ENCRYPT_ON, TDSBPF_VALUE_ABSENT)
		.tls_in_tds(0.005, C2S, 22, 1, 0x0303)
		.fin(0.006, S2C, 0, 0)
		.close_ack(0.006, C2S, 0, 0)
		.fin(0.007, C2S, 0, 0)
		.close_ack(0.007, S2C, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["close"]["kind"], "server_fin_first");
	EXPECT_EQ(r[0]["close"]["phase"], "tls_handshake");
	EXPECT_EQ(r[0]["login"]["outcome"], "aborted");
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"server_closed_during_tls", "closed_before_login"}));
}

TEST(Diagnosis, ServerFinFirstAfterLoginIsAbnormal)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51).fin(60, S2C, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["close"]["kind"], "server_fin_first");
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"server_closed_first"}));
}

TEST(Diagnosis, ClientResetWhenIdleIsBenign)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51).request(0.020, TDS_SQL_BATCH).response(0.030).rst(5.0, C2S, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["close"]["kind"], "reset");
	EXPECT_EQ(r[0]["close"]["reset_by"], "client");
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"client_reset"}));
	EXPECT_EQ(r[0]["diagnoses"][0]["severity"], "info");
}

TEST(Diagnosis, ClientResetWithRequestInFlightIsAbnormal)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51).request(0.020, TDS_SQL_BATCH).rst(30.0, C2S, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"client_reset_abnormal"}));
	EXPECT_EQ(r[0]["diagnoses"][0]["severity"], "warning");
}

TEST(Diagnosis, ClientGaveUpOnASlowQueryAndResetTheLateAnswer)
{
	// As the lab server showed with a query held 800 ms and a client timeout
	// of 300 ms: FIN with the batch unanswered, the late response, a RST.
	Trace t = sql_login();
	t.loginack(0.0100, 0x74000004, 16, 0, 1000, 51)
		.request(0.0100, TDS_SQL_BATCH)
		.fin(0.3093, C2S, 0, 0)
		.close_ack(0.3532, S2C, 0, 0)
		.response(0.8101)
		.rst(0.8101, C2S, 0, 0, 0x04);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["close"]["kind"], "reset");
	EXPECT_EQ(r[0]["close"]["first_fin"], "client");
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"client_reset_abnormal"}));
	EXPECT_NE(r[0]["diagnoses"][0]["message"].get<std::string>().find("299.3 ms after sending a request"),
		  std::string::npos)
		<< r[0]["diagnoses"][0]["message"];
}

TEST(Diagnosis, RequestAbandonedWithAFin)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51)
		.request(0.020, TDS_RPC)
		.fin(30.020, C2S, 0, 0)
		.close_ack(30.020, S2C, 0, 0)
		.fin(30.021, S2C, 0, 0)
		.close_ack(30.021, C2S, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["close"]["kind"], "four_way");
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"request_abandoned"}));
}

TEST(Diagnosis, ServerReset)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51).rst(5.0, S2C, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["close"]["reset_by"], "server");
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"server_reset"}));
}

TEST(Diagnosis, LoginFailed18456)
{
	// SQL Server 2000 style: no encryption, LOGIN7 in clear, then the error.
	Trace t("192.0.2.10", 50101, "192.0.2.20", 1433);
	t.syn(0, 1)
		.synack(0.001, 2, 2)
		.hs_ack(0.002, 2, 3)
		.prelogin(0.003, C2S, 8, 0, 0, TDS_ENCRYPT_OFF, TDSBPF_VALUE_ABSENT)
		.prelogin(0.004, S2C, 8, 0, 2039, TDS_ENCRYPT_NOT_SUP, TDSBPF_VALUE_ABSENT)
		.login7(0.005, 0x71000001, false, TDSBPF_SSPI_NONE)
		.login_error(0.020, 18456, 1, 14)
		.fin(0.021, C2S, 0, 0)
		.close_ack(0.021, S2C, 0, 0)
		.fin(0.022, S2C, 0, 0)
		.close_ack(0.022, C2S, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(phase_names(r[0]), (Strings{"tcp_handshake", "prelogin", "login", "login_error", "close"}));
	EXPECT_EQ(r[0]["login"]["outcome"], "failed");
	EXPECT_EQ(r[0]["login"]["error"]["number"], 18456);
	EXPECT_EQ(r[0]["login"]["error"]["state"], 1);
	EXPECT_EQ(r[0]["login"]["error"]["class"], 14);
	EXPECT_EQ(r[0]["authentication"]["method"], "sql");
	EXPECT_EQ(r[0]["authentication"]["inferred"], false);
	EXPECT_EQ(r[0]["negotiated"]["encryption"], "off");
	EXPECT_EQ(r[0]["negotiated"]["tds_version_login7"], "7.1 Rev 1");
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"login_failed", "login_unencrypted"}));
	EXPECT_NE(r[0]["diagnoses"][0]["message"].get<std::string>().find("18456"), std::string::npos);
}

TEST(Diagnosis, SlowLoginBlamesTheDomainController)
{
	Trace t = sql_login();
	t.sspi_challenge(0.0080)
		.ntlm_auth(0.0090, "CONTOSO", "joe33", "WKS1")
		.loginack(1.6090, 0x74000004, 16, 0, 1, 60);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["login"]["slow"], true);
	EXPECT_DOUBLE_EQ(r[0]["login"]["duration_ms"].get<double>(), 1609.0);
	ASSERT_EQ(diagnosis_codes(r[0]), (Strings{"slow_login"}));
	std::string msg = r[0]["diagnoses"][0]["message"];
	// the step from the client's AUTHENTICATE to the LOGINACK: the server's
	// (and its domain controller's) turn
	EXPECT_NE(msg.find("was login_answer, the server's turn"), std::string::npos) << msg;
	EXPECT_NE(msg.find("domain controller"), std::string::npos) << msg;
	EXPECT_NE(msg.find("1600.0 ms"), std::string::npos) << msg;
	const nlohmann::json& steps = r[0]["login"]["steps"];
	ASSERT_FALSE(steps.empty());
	EXPECT_EQ(steps.back()["step"], "login_answer");
	EXPECT_EQ(steps.back()["owner"], "server");
	EXPECT_DOUBLE_EQ(steps.back()["duration_ms"].get<double>(), 1600.0);
	EXPECT_EQ(steps[steps.size() - 2]["step"], "auth_response");
	EXPECT_EQ(steps[steps.size() - 3]["step"], "auth_challenge");
}

TEST(Diagnosis, SlowLoginThresholdIsConfigurable)
{
	Trace t = sql_login();
	t.loginack(0.5, 0x74000004, 16, 0, 1, 60);
	AggregatorConfig cfg;
	EXPECT_FALSE(has_diagnosis(run(t.records(), cfg)[0], "slow_login"));
	cfg.slow_login_threshold_ms = 200;
	auto r = run(t.records(), cfg);
	ASSERT_TRUE(has_diagnosis(r[0], "slow_login"));
	EXPECT_NE(r[0]["diagnoses"][0]["message"].get<std::string>().find("was login_answer, the server's turn"),
		  std::string::npos);
}

TEST(Diagnosis, ClosedBeforeLoginFinished)
{
	Trace t = sql_login();
	t.fin(0.5, C2S, 0, 0).close_ack(0.5, S2C, 0, 0).fin(0.501, S2C, 0, 0).close_ack(0.502, C2S, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["login"]["outcome"], "aborted");
	EXPECT_EQ(r[0]["close"]["phase"], "login");
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"closed_before_login"}));
}

TEST(Diagnosis, LoginTimedOut)
{
	Trace t = sql_login();
	t.rst(15.2, C2S, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["login"]["outcome"], "timed_out");
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"login_timed_out"}));
}

TEST(Diagnosis, AttentionCancel)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51)
		.request(0.020, TDS_RPC)
		.request(30.020, TDS_ATTENTION)
		.response(30.021)
		.done(30.021, 0x20, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["work"]["attentions"], 1);
	EXPECT_EQ(r[0]["work"]["attention_acks"], 1);
	EXPECT_EQ(r[0]["work"]["rpcs"], 1);
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"attention"}));
}

TEST(Diagnosis, WeakTls)
{
	Trace t("192.0.2.10", 50102, "192.0.2.20", 1433);
	t.syn(0, 1)
		.synack(0.001, 2, 2)
		.hs_ack(0.002, 2, 3)
		.prelogin(0.003, C2S, 9, 0, 0, TDS_ENCRYPT_OFF, 0)
		.prelogin(0.004, S2C, 10, 50, 0, TDS_ENCRYPT_OFF, TDSBPF_VALUE_ABSENT)
		.tls_in_tds(0.005, C2S, 22, 1, 0x0301)
		.tls_in_tds(0.006, S2C, 22, 2, 0x0301)
		.tls(0.007, C2S, 23)
		.loginack(0.010, 0x730B0003, 10, 50, 1600, 51);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["negotiated"]["tls_version"], "1.0");
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"weak_tls"}));
}

TEST(Diagnosis, Redirection)
{
	Trace t = sql_login();
	t.routing(0.010, "replica2.contoso", 11001).fin(0.011, C2S, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["negotiated"]["redirect"]["server"], "replica2.contoso");
	EXPECT_EQ(r[0]["negotiated"]["redirect"]["port"], 11001);
	EXPECT_TRUE(has_diagnosis(r[0], "redirected"));
}

// The client's next connection to the port a routing named is linked to
// the connection that was routed; another client's is not, nor one too late.
TEST(Diagnosis, RoutedConnectionIsLinkedToTheOneThatRoutedIt)
{
	Trace gateway = sql_login();
	gateway.routing(0.010, "replica2.contoso", 11001).fin(0.011, C2S, 0, 0);
	Trace target("192.0.2.10", 50001, "192.0.2.30", 11001);
	target.syn(0.020, 1).synack(0.0205, 2, 2).hs_ack(0.021, 2, 3);
	Trace stranger("192.0.2.11", 50002, "192.0.2.30", 11001);
	stranger.syn(0.022, 1).synack(0.0225, 2, 2).hs_ack(0.023, 2, 3);
	Trace late("192.0.2.10", 50003, "192.0.2.30", 11001);
	late.syn(40, 1).synack(40.0005, 2, 2).hs_ack(40.001, 2, 3);
	std::vector<Record> recs;
	for (Trace* t : {&gateway, &target, &stranger, &late})
		for (const auto& r : t->records())
			recs.push_back(r);
	std::stable_sort(recs.begin(), recs.end(),
			 [](const Record& a, const Record& b) { return a.base().ts_ns < b.base().ts_ns; });
	std::vector<uint16_t> routed;
	AggregatorConfig cfg;
	cfg.on_redirect = [&](uint16_t port) { routed.push_back(port); };
	auto r = run(recs, cfg);
	ASSERT_EQ(r.size(), 4u);
	std::map<int, nlohmann::json> by_port;
	for (const auto& c : r)
		by_port[c["client.port"].get<int>()] = c;
	EXPECT_TRUE(by_port[50000]["redirected_from"].is_null());
	ASSERT_TRUE(by_port[50001]["redirected_from"].is_object()) << by_port[50001].dump();
	EXPECT_EQ(by_port[50001]["redirected_from"]["tdsbpf.connection_id"], by_port[50000]["tdsbpf.connection_id"]);
	EXPECT_EQ(by_port[50001]["redirected_from"]["server.address"], "192.0.2.20");
	EXPECT_EQ(by_port[50001]["redirected_from"]["server.port"], 1433);
	EXPECT_TRUE(by_port[50002]["redirected_from"].is_null());
	EXPECT_TRUE(by_port[50003]["redirected_from"].is_null());
	EXPECT_EQ(routed, (std::vector<uint16_t>{11001}));
}

TEST(Diagnosis, RetransmissionsAndZeroWindows)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51)
		.request(0.020, TDS_SQL_BATCH)
		.retrans(0.3, C2S)
		.response(0.4, 0)
		.zero_window(0.5, C2S)
		.zero_window(0.6, C2S)
		.response(0.7, TDS_STATUS_EOM, 51, 2)
		.stats(0.8, 1000, 900000, 12, 700, false);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["tcp"]["retransmissions"]["client_to_server"], 1);
	EXPECT_EQ(r[0]["tcp"]["zero_windows"]["client_to_server"], 2);
	EXPECT_EQ(r[0]["tcp"]["bytes"]["server_to_client"], 900000);
	EXPECT_EQ(r[0]["tcp"]["packets"]["client_to_server"], 12);
	EXPECT_EQ(diagnosis_codes(r[0]), (Strings{"retransmissions", "zero_window"}));
	EXPECT_NE(r[0]["diagnoses"][1]["message"].get<std::string>().find("The client advertised"), std::string::npos);
	EXPECT_EQ(r[0]["work"]["responses"], 1); // one message in two packets
}

TEST(Diagnosis, IdleTimeoutEndsSilentConnections)
{
	AggregatorConfig cfg;
	cfg.idle_timeout_s = 10;
	CollectSink sink;
	Aggregator agg(cfg, sink);
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51);
	for (auto& rec : t.records())
		agg.on_event(rec.base(), rec.len);
	agg.tick(at(5.0));
	EXPECT_TRUE(sink.records.empty());
	agg.tick(at(11.0));
	ASSERT_EQ(sink.records.size(), 1u);
	EXPECT_EQ(sink.records[0]["close"]["kind"], "idle_timeout");
	EXPECT_EQ(diagnosis_codes(sink.records[0]), (Strings{"idle_timeout"}));
	EXPECT_EQ(agg.summary().connections_open, 0u);
}

TEST(Encryption, Tds8StrictIsOpaqueAfterTheHandshake)
{
	Trace t("2001:db8::10", 50200, "2001:db8::20", 1433);
	t.syn(0, 1)
		.synack(0.001, 2, 2)
		.hs_ack(0.002, 2, 3)
		.tls(0.003, C2S, 22, 1, 0x0304, TDSBPF_TLS_ALPN_TDS8)
		.tls(0.004, S2C, 22, 2, 0x0304, TDSBPF_TLS_ALPN_TDS8)
		.tls(0.006, C2S, 23) // PRELOGIN inside TLS
		.tls(0.007, S2C, 23) // its answer
		.tls(0.008, C2S, 23) // LOGIN7
		.tls(0.009, S2C, 23) // LOGINACK (or an error)
		.tls(0.020, C2S, 23) // a request
		.tls(0.021, C2S, 23)
		.tls(0.025, S2C, 23)
		.fin(0.1, C2S, 0, 0)
		.close_ack(0.1, S2C, 0, 0)
		.fin(0.1, S2C, 0, 0)
		.close_ack(0.1, C2S, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["network.type"], "ipv6");
	EXPECT_EQ(r[0]["client.address"], "2001:db8::10");
	EXPECT_EQ(r[0]["negotiated"]["encryption"], "strict");
	EXPECT_EQ(r[0]["negotiated"]["tls_version"], "1.3");
	EXPECT_EQ(r[0]["negotiated"]["tds8_alpn"], true);
	EXPECT_EQ(phase_names(r[0]), (Strings{"tcp_handshake", "tls_handshake", "login", "active", "close"}));
	EXPECT_EQ(r[0]["phases"][2]["start_time"], "2024-06-05T00:00:00.006000Z");
	EXPECT_DOUBLE_EQ(r[0]["phases"][2]["duration_ms"].get<double>(), 3.0); // PRELOGIN .. the LOGIN7's answer
	// a request answered after the login's answer: a probable success
	EXPECT_EQ(r[0]["login"]["outcome"], "success");
	EXPECT_EQ(r[0]["login"]["inferred"], true);
	EXPECT_EQ(r[0]["work"]["encrypted_requests"], 1);
	EXPECT_EQ(r[0]["work"]["responses"], 1);
	EXPECT_DOUBLE_EQ(r[0]["work"]["latency_ms"]["max"].get<double>(), 5.0);
}

TEST(Encryption, FullEncryptionTds7)
{
	Trace t = sql_login();
	auto& recs = t.records();
	recs[3].base().u.tds.d.prelogin.encryption = TDS_ENCRYPT_ON;
	recs[4].base().u.tds.d.prelogin.encryption = TDS_ENCRYPT_ON;
	t.tls(0.010, S2C, 23).tls(0.020, C2S, 23).tls(0.030, S2C, 23);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["negotiated"]["encryption"], "full");
	EXPECT_EQ(r[0]["login"]["outcome"], "success"); // inferred: a request answered after the login's answer
	EXPECT_EQ(r[0]["login"]["inferred"], true);
	EXPECT_EQ(r[0]["work"]["encrypted_requests"], 1);
}

TEST(Encryption, FederatedAuthentication)
{
	Trace t("192.0.2.10", 50300, "192.0.2.20", 1433);
	t.syn(0, 1)
		.synack(0.001, 2, 2)
		.hs_ack(0.002, 2, 3)
		.prelogin(0.003, C2S, 18, 0, 0, TDS_ENCRYPT_OFF, 0)
		.prelogin(0.004, S2C, 16, 0, 0, TDS_ENCRYPT_OFF, TDSBPF_VALUE_ABSENT)
		.tls_in_tds(0.005, C2S, 22, 1)
		.tls_in_tds(0.006, S2C, 22, 2)
		.tls(0.007, C2S, 23)
		.reply(0.010, TDSBPF_TOK_FEDAUTHINFO)
		.loginack(0.050, 0x74000004, 16, 0, 1, 70);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["authentication"]["method"], "federated");
	EXPECT_EQ(phase_names(r[0]), (Strings{"tcp_handshake", "prelogin", "tls_handshake", "login", "authentication",
					      "login_ack", "active"}));
}

TEST(Work, DoneInTheReplyPacketsOwnEvent)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51)
		.request(0.020, TDS_SQL_BATCH)
		.response(0.021)
		.tail_done(0x10, 7)
		.request(0.030, TDS_RPC)
		.request(5.030, TDS_ATTENTION)
		.response(5.031)
		.tail_done(0x20, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["work"]["rows"], 7);
	EXPECT_EQ(r[0]["work"]["done_tokens"], 2);
	EXPECT_EQ(r[0]["work"]["attention_acks"], 1);
}

TEST(Work, RowsAndDoneCounts)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51)
		.request(0.020, TDS_SQL_BATCH)
		.response(0.021)
		.done(0.021, 0x10, 42)
		.request(0.030, TDS_BULK_LOAD)
		.response(0.031)
		.done(0.031, 0x10, 1000)
		.request(0.040, TDS_TRANSACTION_MGR)
		.response(0.041)
		.done(0.041, 0x00, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["work"]["rows"], 1042);
	EXPECT_EQ(r[0]["work"]["done_tokens"], 3);
	EXPECT_EQ(r[0]["work"]["bulk_loads"], 1);
	EXPECT_EQ(r[0]["work"]["transaction_manager"], 1);
	EXPECT_EQ(r[0]["work"]["requests"], 3);
	EXPECT_EQ(r[0]["work"]["latency_ms"]["count"], 3);
}


// An attention after the reply's last packet (a driver closing a result it
// did not read to the end) cancels nothing: counted apart, no diagnosis.
TEST(Diagnosis, AttentionAfterTheReplyEndedIsHarmless)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51)
		.request(0.020, TDS_SQL_BATCH)
		.response(0.030)
		.request(0.040, TDS_ATTENTION)
		.response(0.041)
		.tail_done(TDS_DONE_ATTN, 0)
		.fin(1.0, C2S, 0, 0)
		.fin(1.001, S2C, 0, 0)
		.close_ack(1.002, C2S, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["work"]["attentions"], 1);
	EXPECT_EQ(r[0]["work"]["attentions_after_reply"], 1);
	EXPECT_EQ(r[0]["work"]["attention_acks"], 1);
	EXPECT_FALSE(has_diagnosis(r[0], "attention")) << r[0]["diagnoses"].dump();
}

// One that interrupts a running request is a cancellation or a timeout.
TEST(Diagnosis, AttentionDuringARequestIsACancellation)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51)
		.request(0.020, TDS_SQL_BATCH)
		.request(30.020, TDS_ATTENTION)
		.response(30.030)
		.tail_done(TDS_DONE_ATTN, 0)
		.fin(31.0, C2S, 0, 0)
		.fin(31.001, S2C, 0, 0)
		.close_ack(31.002, C2S, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["work"]["attentions_after_reply"], 0);
	ASSERT_TRUE(has_diagnosis(r[0], "attention")) << r[0]["diagnoses"].dump();
	EXPECT_NE(r[0]["diagnoses"].dump().find("while a request was running"), std::string::npos);
}

// A connection still open when a capture ends lasts until its last packet,
// not until the end of the capture (an hour later here).
TEST(Record, StillOpenAtTheEndOfACaptureEndsAtItsLastPacket)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51).request(0.020, TDS_RPC).response(0.031);
	CollectSink sink;
	Aggregator agg({}, sink);
	for (auto& rec : t.records())
		agg.on_event(rec.base(), rec.len);
	agg.finish(at(4600));
	ASSERT_EQ(sink.records.size(), 1u);
	const auto& r = sink.records[0];
	EXPECT_EQ(r["close"]["kind"], "still_open");
	EXPECT_LT(r["duration_ms"].get<double>(), 100.0);
	EXPECT_EQ(r["end_time"], r["last_seen_time"]);
}

// TDS 7.0/7.1 clients send LOGIN7 with no PRELOGIN: nothing was negotiated,
// and an NTLM login carries no password to warn about.
TEST(Diagnosis, NoPreloginMeansNoEncryptionNegotiatedAndNoPasswordForNtlm)
{
	Trace t("192.0.2.10", 50200, "192.0.2.20", 1433);
	t.syn(0, 1)
		.synack(0.001, 2, 2)
		.hs_ack(0.002, 2, 3)
		.login7(0.003, 0x71000001, true, TDSBPF_SSPI_NTLM)
		.sspi_challenge(0.004)
		.ntlm_auth(0.005, "CORP", "ann", "WS1")
		.loginack(0.006, 0x71000001, 8, 0, 2039, 52)
		.fin(1.0, C2S, 0, 0)
		.fin(1.001, S2C, 0, 0)
		.close_ack(1.002, C2S, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["negotiated"]["encryption"], "not_negotiated");
	EXPECT_EQ(r[0]["authentication"]["method"], "ntlm");
	ASSERT_TRUE(has_diagnosis(r[0], "login_unencrypted")) << r[0]["diagnoses"].dump();
	std::string all = r[0]["diagnoses"].dump();
	EXPECT_NE(all.find("no PRELOGIN"), std::string::npos) << all;
	EXPECT_NE(all.find("carries no password"), std::string::npos) << all;
	EXPECT_EQ(all.find("password in it is only obfuscated"), std::string::npos) << all;
}

// A SQL login in clear still warns about the password.
TEST(Diagnosis, SqlLoginInClearWarnsAboutThePassword)
{
	Trace t("192.0.2.10", 50201, "192.0.2.20", 1433);
	t.syn(0, 1)
		.synack(0.001, 2, 2)
		.hs_ack(0.002, 2, 3)
		.prelogin(0.003, C2S, 18, 0, 0, TDS_ENCRYPT_NOT_SUP, 0)
		.prelogin(0.004, S2C, 16, 0, 0, TDS_ENCRYPT_NOT_SUP, TDSBPF_VALUE_ABSENT)
		.login7(0.005, 0x74000004, false, TDSBPF_SSPI_NONE)
		.loginack(0.006, 0x74000004, 16, 0, 1, 52)
		.fin(1.0, C2S, 0, 0)
		.fin(1.001, S2C, 0, 0)
		.close_ack(1.002, C2S, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["negotiated"]["encryption"], "off");
	EXPECT_NE(r[0]["diagnoses"].dump().find("SQL password in it is only obfuscated"), std::string::npos);
}

// The login succeeded, the client said nothing and closed at its login
// timeout: the driver did not take the reply.
TEST(Diagnosis, LoginReplyNotTaken)
{
	Trace t = sql_login();
	t.loginack(0.010, 0x74000004, 16, 0, 1, 51)
		.fin(15.001, C2S, 0, 0)
		.fin(15.002, S2C, 0, 0)
		.close_ack(15.003, C2S, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["login"]["outcome"], "success");
	EXPECT_TRUE(has_diagnosis(r[0], "login_reply_not_taken")) << r[0]["diagnoses"].dump();

	// a pooled connection closed unused minutes later is not that
	Trace p = sql_login(50001);
	p.loginack(0.010, 0x74000004, 16, 0, 1, 51)
		.fin(300.0, C2S, 0, 0)
		.fin(300.001, S2C, 0, 0)
		.close_ack(300.002, C2S, 0, 0);
	auto q = run(p.records());
	ASSERT_EQ(q.size(), 1u);
	EXPECT_FALSE(has_diagnosis(q[0], "login_reply_not_taken")) << q[0]["diagnoses"].dump();
}

// Full encryption up to the login's first answer: the handshake, PRELOGIN
// (ON, REQ), the TLS hellos, the login flight (9 ms) and its answer (10 ms).
// Full encryption up to the end of the TLS handshake.
Trace& full_tls_handshake(Trace& t)
{
	return t.syn(0, 1)
		.synack(0.001, 2, 2)
		.hs_ack(0.002, 2, 3)
		.prelogin(0.003, C2S, 18, 0, 0, TDS_ENCRYPT_ON, 0)
		.prelogin(0.004, S2C, 16, 0, 0, TDS_ENCRYPT_REQ, TDSBPF_VALUE_ABSENT)
		.tls_in_tds(0.005, C2S, 22, 1)
		.tls_in_tds(0.006, S2C, 22, 2);
}

Trace& full_tls_login(Trace& t)
{
	return full_tls_handshake(t).tls(0.009, C2S, 23).tls(0.010, S2C, 23);
}

// Full encryption: the server answers the login flight once and closes,
// no request between: a probable login failure, not an abnormal close.
TEST(Diagnosis, EncryptedLoginAnsweredThenClosedByTheServerIsAProbableFailure)
{
	Trace t("192.0.2.10", 50300, "192.0.2.20", 1433);
	t.syn(0, 1)
		.synack(0.001, 2, 2)
		.hs_ack(0.002, 2, 3)
		.prelogin(0.003, C2S, 18, 0, 0, TDS_ENCRYPT_ON, 0)
		.prelogin(0.004, S2C, 16, 0, 0, TDS_ENCRYPT_REQ, TDSBPF_VALUE_ABSENT)
		.tls_in_tds(0.005, C2S, 22, 1)
		.tls_in_tds(0.006, S2C, 22, 2)
		.tls_in_tds(0.007, C2S, 22, 16)
		.tls_in_tds(0.008, S2C, 20, 0)
		.tls(0.009, C2S, 23)
		.tls(0.010, S2C, 23)
		.fin(0.011, S2C, 0, 0)
		.close_ack(0.012, C2S, 0, 0)
		.fin(0.013, C2S, 0, 0)
		.close_ack(0.014, S2C, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["negotiated"]["encryption"], "full");
	EXPECT_EQ(r[0]["login"]["outcome"], "failed");
	EXPECT_EQ(r[0]["login"]["inferred"], true);
	EXPECT_TRUE(r[0]["login"]["error"].is_null());
	EXPECT_TRUE(has_diagnosis(r[0], "login_failed")) << r[0]["diagnoses"].dump();
	EXPECT_NE(r[0]["diagnoses"].dump().find("probably failed"), std::string::npos);
	EXPECT_FALSE(has_diagnosis(r[0], "server_closed_first")) << r[0]["diagnoses"].dump();

	// with a request after the login, the server's close is something else
	Trace u("192.0.2.10", 50301, "192.0.2.20", 1433);
	full_tls_login(u).tls(0.020, C2S, 23).tls(0.021, S2C, 23).fin(5.0, S2C, 0, 0).close_ack(5.001, C2S, 0, 0);
	auto q = run(u.records());
	ASSERT_EQ(q.size(), 1u);
	EXPECT_EQ(q[0]["login"]["outcome"], "unknown");
	EXPECT_EQ(q[0]["login"]["inferred"], false);
}

// Full encryption, the shapes of an integrated (NTLM) login inside TLS: one
// more round trip before the server's answer. Answered and closed by the
// server at once: a probable failure, its time the server's last answer.
// Answered, then a request answered and the client closing: a probable
// success, its time (at the earliest) the login's first answer.
TEST(Diagnosis, EncryptedIntegratedLoginShapes)
{
	// the login flight carries an NTLM NEGOTIATE, its answer is the CHALLENGE
	auto opening = [](Trace& t) -> Trace& { return full_tls_login(t).tls(0.011, C2S, 23); }; // AUTHENTICATE
	Trace failed("192.0.2.10", 50302, "192.0.2.20", 1433);
	opening(failed)
		.tls(0.030, S2C, 23) // ERROR
		.fin(0.031, S2C, 0, 0)
		.close_ack(0.032, C2S, 0, 0)
		.fin(0.033, C2S, 0, 0)
		.close_ack(0.034, S2C, 0, 0);
	auto f = run(failed.records());
	ASSERT_EQ(f.size(), 1u);
	EXPECT_EQ(f[0]["login"]["outcome"], "failed");
	EXPECT_EQ(f[0]["login"]["inferred"], true);
	EXPECT_DOUBLE_EQ(f[0]["login"]["duration_ms"].get<double>(), 30.0); // SYN .. the server's last answer
	EXPECT_TRUE(has_diagnosis(f[0], "login_failed")) << f[0]["diagnoses"].dump();
	EXPECT_NE(f[0]["diagnoses"].dump().find("integrated login's second round trip"), std::string::npos);
	EXPECT_FALSE(has_diagnosis(f[0], "server_closed_first")) << f[0]["diagnoses"].dump();
	EXPECT_EQ(phase_names(f[0]), (Strings{"tcp_handshake", "prelogin", "tls_handshake", "login", "authentication",
					      "login_error", "close"}));
	EXPECT_EQ(f[0]["close"]["phase"], "login_error");
	// the AUTHENTICATE flight was the login's, not a request
	EXPECT_EQ(f[0]["work"]["requests"], 0);
	EXPECT_EQ(f[0]["work"]["encrypted_requests"], 0);
	EXPECT_EQ(f[0]["work"]["responses"], 0);

	Trace ok("192.0.2.10", 50303, "192.0.2.20", 1433);
	opening(ok)
		.tls(0.030, S2C, 23) // LOGINACK
		.tls(0.040, C2S, 23) // a request
		.tls(0.041, S2C, 23)
		.fin(0.1, C2S, 0, 0)
		.close_ack(0.101, S2C, 0, 0)
		.fin(0.102, S2C, 0, 0)
		.close_ack(0.103, C2S, 0, 0);
	auto s = run(ok.records());
	ASSERT_EQ(s.size(), 1u);
	EXPECT_EQ(s[0]["login"]["outcome"], "success");
	EXPECT_EQ(s[0]["login"]["inferred"], true);
	EXPECT_DOUBLE_EQ(s[0]["login"]["duration_ms"].get<double>(), 10.0); // SYN .. the first answer
	EXPECT_FALSE(has_diagnosis(s[0], "login_failed")) << s[0]["diagnoses"].dump();

	// the client's flight left unanswered when the server closed: unknown
	Trace cut("192.0.2.10", 50304, "192.0.2.20", 1433);
	opening(cut).fin(0.5, S2C, 0, 0).close_ack(0.501, C2S, 0, 0);
	auto u = run(cut.records());
	ASSERT_EQ(u.size(), 1u);
	EXPECT_EQ(u[0]["login"]["outcome"], "unknown");
}

// Full encryption, an integrated login whose second round trip has NTLM's
// shape: a small answer to the login flight (the CHALLENGE), then a client
// flight larger by what AUTHENTICATE adds. The login ends at the answer to
// that flight, which is no request; the phases show the authentication.
TEST(Diagnosis, EncryptedNtlmRoundTripToldByItsShape)
{
	auto opening = [](Trace& t) -> Trace& {
		return full_tls_handshake(t)
			.tls_data(0.009, C2S, 260)  // LOGIN7 with an NTLM NEGOTIATE
			.tls_data(0.010, S2C, 290)  // the CHALLENGE
			.tls_data(0.011, C2S, 540); // the AUTHENTICATE
	};
	Trace ok("192.0.2.10", 50310, "192.0.2.20", 1433);
	opening(ok)
		.tls_data(0.030, S2C, 480) // LOGINACK
		.tls_data(0.040, C2S, 120) // a request
		.tls_data(0.041, S2C, 200)
		.fin(0.1, C2S, 0, 0)
		.close_ack(0.101, S2C, 0, 0)
		.fin(0.102, S2C, 0, 0)
		.close_ack(0.103, C2S, 0, 0);
	auto s = run(ok.records());
	ASSERT_EQ(s.size(), 1u);
	EXPECT_EQ(s[0]["login"]["outcome"], "success");
	EXPECT_EQ(s[0]["login"]["inferred"], true);
	EXPECT_DOUBLE_EQ(s[0]["login"]["duration_ms"].get<double>(), 30.0); // SYN .. the answer to AUTHENTICATE
	EXPECT_EQ(s[0]["work"]["requests"], 1);
	EXPECT_EQ(s[0]["work"]["encrypted_requests"], 1);
	EXPECT_EQ(s[0]["work"]["responses"], 1);
	EXPECT_EQ(s[0]["work"]["latency_ms"]["count"], 1);
	EXPECT_EQ(s[0]["authentication"]["method"], "ntlm");
	EXPECT_EQ(s[0]["authentication"]["inferred"], true);
	EXPECT_EQ(phase_names(s[0]), (Strings{"tcp_handshake", "prelogin", "tls_handshake", "login", "authentication",
					      "active", "close"}));
	Strings steps;
	for (const auto& st : s[0]["login"]["steps"])
		steps.push_back(st["step"].get<std::string>());
	EXPECT_NE(std::find(steps.begin(), steps.end(), "auth_challenge"), steps.end())
		<< s[0]["login"]["steps"].dump();
	EXPECT_NE(std::find(steps.begin(), steps.end(), "auth_response"), steps.end()) << s[0]["login"]["steps"].dump();

	// the same shape refused: the login's answer is its error
	Trace refused("192.0.2.10", 50311, "192.0.2.20", 1433);
	opening(refused)
		.tls_data(0.030, S2C, 160) // ERROR
		.fin(0.031, S2C, 0, 0)
		.close_ack(0.032, C2S, 0, 0)
		.fin(0.033, C2S, 0, 0)
		.close_ack(0.034, S2C, 0, 0);
	auto f = run(refused.records());
	ASSERT_EQ(f.size(), 1u);
	EXPECT_EQ(f[0]["login"]["outcome"], "failed");
	EXPECT_EQ(f[0]["login"]["inferred"], true);
	EXPECT_DOUBLE_EQ(f[0]["login"]["duration_ms"].get<double>(), 30.0);
	EXPECT_EQ(f[0]["work"]["requests"], 0);
	EXPECT_EQ(phase_names(f[0]), (Strings{"tcp_handshake", "prelogin", "tls_handshake", "login", "authentication",
					      "login_error", "close"}));

	// a SQL login: its answer (LOGINACK with the database and language
	// changes) is larger than any CHALLENGE, so the next flight is a request
	// however large it is
	Trace sql("192.0.2.10", 50312, "192.0.2.20", 1433);
	full_tls_handshake(sql)
		.tls_data(0.009, C2S, 260)
		.tls_data(0.010, S2C, 470) // LOGINACK
		.tls_data(0.011, C2S, 800) // a session-options batch
		.tls_data(0.012, S2C, 100)
		.fin(0.1, C2S, 0, 0);
	auto q = run(sql.records());
	ASSERT_EQ(q.size(), 1u);
	EXPECT_EQ(q[0]["login"]["outcome"], "success");
	EXPECT_DOUBLE_EQ(q[0]["login"]["duration_ms"].get<double>(), 10.0);
	EXPECT_EQ(q[0]["work"]["encrypted_requests"], 1);
	EXPECT_EQ(q[0]["authentication"]["method"], "unknown");

	// a small LOGINACK reply and a large first request, but the request's
	// answer is no larger than the first answer: no LOGINACK reply, so that
	// flight was a request (and its latency counts)
	Trace small("192.0.2.10", 50313, "192.0.2.20", 1433);
	full_tls_handshake(small)
		.tls_data(0.009, C2S, 260)
		.tls_data(0.010, S2C, 400) // LOGINACK
		.tls_data(0.011, C2S, 800) // a session-options batch
		.tls_data(0.012, S2C, 150) // its DONEs
		.tls_data(0.020, C2S, 120) // a query
		.tls_data(0.021, S2C, 900)
		.fin(0.1, C2S, 0, 0);
	auto m = run(small.records());
	ASSERT_EQ(m.size(), 1u);
	EXPECT_EQ(m[0]["work"]["encrypted_requests"], 2);
	EXPECT_EQ(m[0]["work"]["latency_ms"]["count"], 2);
	EXPECT_DOUBLE_EQ(m[0]["login"]["duration_ms"].get<double>(), 10.0);
	EXPECT_EQ(m[0]["authentication"]["method"], "unknown");
	EXPECT_EQ(phase_names(m[0]),
		  (Strings{"tcp_handshake", "prelogin", "tls_handshake", "login", "active", "close"}));
}

// A failed login has its login time: SYN to the ERROR.
TEST(Record, FailedLoginHasItsDuration)
{
	Trace t = sql_login();
	t.login_error(0.250, 18456, 1, 14).fin(0.251, S2C, 0, 0).fin(0.252, C2S, 0, 0).close_ack(0.253, S2C, 0, 0);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["login"]["outcome"], "failed");
	EXPECT_DOUBLE_EQ(r[0]["login"]["duration_ms"].get<double>(), 250.0);
	EXPECT_EQ(r[0]["login"]["inferred"], false);
}

// Pooling verdicts: a connection kept across idle gaps is pooled; one still
// open with no reuse seen is unknown.
TEST(Pooling, IdleGapsMakePooledOpenIsUnknown)
{
	Trace t("192.0.2.10", 50010, "192.0.2.20", 1433);
	t.midstream().request(0, TDS_SQL_BATCH).response(0.002).request(5.0, TDS_SQL_BATCH).response(5.002);
	auto r = run(t.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["pooling"]["verdict"], "pooled");
	EXPECT_NE(
		r[0]["pooling"]["evidence"].get<std::string>().find("1 request(s) came after the connection sat idle"),
		std::string::npos);
	Trace u("192.0.2.10", 50011, "192.0.2.20", 1433);
	u.midstream().request(0, TDS_SQL_BATCH).response(0.002).request(0.5, TDS_SQL_BATCH).response(0.502);
	auto q = run(u.records());
	ASSERT_EQ(q.size(), 1u);
	EXPECT_EQ(q[0]["pooling"]["verdict"], "unknown");
}

// A client opening a thousand connections a minute gets connection_churn
// (its ephemeral ports are at risk); 999 do not.
TEST(Pooling, ChurnOfAThousandConnectionsAMinute)
{
	auto churn = [](int n) {
		std::vector<Record> all;
		for (int i = 0; i < n; i++) {
			Trace t("192.0.2.30", static_cast<uint16_t>(20000 + i), "192.0.2.20", 1433);
			double at = 0.05 * i; // 50 s for a thousand
			t.syn(at, 1).synack(at + 0.001, 2, 2).rst(at + 0.002, C2S, 2, 3);
			for (auto& rec : t.records())
				all.push_back(rec);
		}
		return run(all);
	};
	auto r = churn(1000);
	ASSERT_EQ(r.size(), 1000u);
	EXPECT_FALSE(has_diagnosis(r[998], "connection_churn")) << r[998]["diagnoses"].dump();
	ASSERT_TRUE(has_diagnosis(r[999], "connection_churn")) << r[999]["diagnoses"].dump();
	EXPECT_NE(r[999]["diagnoses"].dump().find("192.0.2.30 opened about 1000 new connections"), std::string::npos);
	auto fewer = churn(999);
	for (const auto& c : fewer)
		EXPECT_FALSE(has_diagnosis(c, "connection_churn"));
}


// The summary by server endpoint and by client address: connections that
// ended, their login outcomes, methods, encryption, resets and login times;
// clients ranked by connections, and as a text table.
TEST(Summary, ByServerAndByClient)
{
	tdsbpf::test::CollectSink sink;
	tdsbpf::Aggregator agg({}, sink);
	auto login_ok = [](const char* client, uint16_t port, const char* server, double t0) {
		Trace t(client, port, server, 1433);
		t.syn(t0, 1)
			.synack(t0 + 0.001, 2, 2)
			.hs_ack(t0 + 0.002, 2, 3)
			.prelogin(t0 + 0.003, C2S, 18, 0, 0, TDS_ENCRYPT_OFF, 0)
			.prelogin(t0 + 0.004, S2C, 16, 0, 0, TDS_ENCRYPT_NOT_SUP, TDSBPF_VALUE_ABSENT)
			.login7(t0 + 0.005, 0x74000004, false, TDSBPF_SSPI_NONE)
			.loginack(t0 + 0.010, 0x74000004, 16, 0, 4000, 55)
			.fin(t0 + 0.100, C2S, 0, 0)
			.fin(t0 + 0.101, S2C, 0, 0)
			.close_ack(t0 + 0.102, C2S, 0, 0);
		return t;
	};
	feed(agg, login_ok("192.0.2.10", 50001, "192.0.2.20", 0).records());
	feed(agg, login_ok("192.0.2.10", 50002, "192.0.2.20", 1).records());
	feed(agg, login_ok("192.0.2.11", 50003, "192.0.2.21", 2).records());
	Trace bad("192.0.2.10", 50004, "192.0.2.20", 1433);
	bad.syn(3, 1)
		.synack(3.001, 2, 2)
		.hs_ack(3.002, 2, 3)
		.prelogin(3.003, C2S, 18, 0, 0, TDS_ENCRYPT_OFF, 0)
		.prelogin(3.004, S2C, 16, 0, 0, TDS_ENCRYPT_NOT_SUP, TDSBPF_VALUE_ABSENT)
		.login7(3.005, 0x74000004, false, TDSBPF_SSPI_NONE)
		.login_error(3.030, 18456, 1, 14)
		.rst(3.031, S2C, 0, 0);
	feed(agg, bad.records());
	agg.finish(tdsbpf::test::kBaseNs + 60'000'000'000ull);
	tdsbpf::Summary s = agg.summary();
	ASSERT_EQ(s.servers.size(), 2u);
	const auto& a = s.servers[0]; // the most connections first
	ASSERT_TRUE(a.login_outcome.count("success") && a.login_outcome.count("failed") && a.auth_method.count("sql") &&
		    a.encryption.count("off") && a.diagnoses.count("login_failed"))
		<< nlohmann::json::parse(tdsbpf::format_summary(s, tdsbpf::OutputFormat::json)).dump(1);
	EXPECT_EQ(a.endpoint, "192.0.2.20:1433");
	EXPECT_EQ(a.connections, 3u);
	EXPECT_EQ(a.login_outcome.at("success"), 2u);
	EXPECT_EQ(a.login_outcome.at("failed"), 1u);
	EXPECT_EQ(a.auth_method.at("sql"), 3u);
	EXPECT_EQ(a.encryption.at("off"), 3u);
	EXPECT_EQ(a.resets, 1u);
	EXPECT_EQ(a.logins_timed, 3u);
	EXPECT_NEAR(a.login_p50_ms, 10.0, 10.0 * 0.04);
	EXPECT_NEAR(a.login_p99_ms, 30.0, 30.0 * 0.04);
	EXPECT_EQ(a.diagnoses.at("login_failed"), 1u);
	EXPECT_EQ(s.servers[1].endpoint, "192.0.2.21:1433");
	EXPECT_EQ(s.servers[1].connections, 1u);
	ASSERT_EQ(s.clients.size(), 2u);
	EXPECT_EQ(s.clients[0].endpoint, "192.0.2.10");
	EXPECT_EQ(s.clients[0].connections, 3u);
	EXPECT_EQ(s.clients[1].endpoint, "192.0.2.11");

	auto j = nlohmann::json::parse(tdsbpf::format_summary(s, tdsbpf::OutputFormat::json));
	EXPECT_EQ(j["servers"][0]["server"], "192.0.2.20:1433");
	EXPECT_EQ(j["servers"][0]["login_ms"]["count"], 3);
	EXPECT_EQ(j["clients"][1]["client.address"], "192.0.2.11");
	std::string text = tdsbpf::format_summary(s, tdsbpf::OutputFormat::text);
	EXPECT_NE(text.find("by server"), std::string::npos) << text;
	EXPECT_NE(text.find("192.0.2.20:1433"), std::string::npos) << text;
	EXPECT_NE(text.find("success=2 failed=1"), std::string::npos) << text;
}


// The network's findings: a RST whose TTL is not its side's, a RST after one
// segment went out again and again, a LOGINACK after the client gave up, an
// NTLM login without a user.
TEST(Diagnosis, ResetsAndNetworkFindings)
{
	auto opened = [](uint16_t port) {
		Trace t("192.0.2.10", port, "192.0.2.20", 1433);
		t.syn(0, 1).synack(0.001, 2, 2).hs_ack(0.002, 2, 3);
		return t;
	};
	// a RST from the server's side with TTL 250 where its packets had 61
	Trace inj = opened(50400);
	inj.request(0.01, TDS_SQL_BATCH).response(0.012).rst(5.0, S2C, 0, 0);
	inj.last().base().u.tcp.ttl = 250;
	inj.last().base().u.tcp.usual_ttl = 61;
	auto r = run(inj.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_TRUE(has_diagnosis(r[0], "reset_injected")) << r[0]["diagnoses"].dump();
	EXPECT_EQ(r[0]["close"]["reset_ttl"]["ttl"], 250);
	EXPECT_EQ(r[0]["close"]["reset_ttl"]["usual_ttl"], 61);
	// ... not the server's doing: no server_reset blaming it
	EXPECT_FALSE(has_diagnosis(r[0], "server_reset")) << r[0]["diagnoses"].dump();
	// a client-side RST right after the work, made by a device: neither the
	// client's reset nor a connection opened for one piece of work
	Trace cinj = opened(50402);
	cinj.request(0.01, TDS_SQL_BATCH).response(0.012).rst(0.013, C2S, 0, 0);
	cinj.last().base().u.tcp.ttl = 200;
	cinj.last().base().u.tcp.usual_ttl = 64;
	r = run(cinj.records());
	EXPECT_TRUE(has_diagnosis(r[0], "reset_injected")) << r[0]["diagnoses"].dump();
	EXPECT_FALSE(has_diagnosis(r[0], "client_reset")) << r[0]["diagnoses"].dump();
	EXPECT_FALSE(has_diagnosis(r[0], "non_pooled_close")) << r[0]["diagnoses"].dump();
	EXPECT_NE(r[0]["pooling"]["verdict"], "not_pooled") << r[0]["pooling"].dump();
	// the same TTL (or one hop off): the server's own
	Trace own = opened(50401);
	own.request(0.01, TDS_SQL_BATCH).response(0.012).rst(5.0, S2C, 0, 0);
	own.last().base().u.tcp.ttl = 62;
	own.last().base().u.tcp.usual_ttl = 61;
	r = run(own.records());
	EXPECT_FALSE(has_diagnosis(r[0], "reset_injected")) << r[0]["diagnoses"].dump();
	EXPECT_TRUE(has_diagnosis(r[0], "server_reset")) << r[0]["diagnoses"].dump();

	// the server sends one 1448-byte segment five times, then the client resets
	Trace stuck = opened(50402);
	stuck.request(0.01, TDS_SQL_BATCH).response(0.012).stats(0.5, 100, 900, 3, 3, false);
	for (int i = 0; i < 5; i++) {
		stuck.retrans(1.0 + i, S2C);
		stuck.last().base().seq = 777000;
		stuck.last().base().payload_len = 1448;
	}
	stuck.rst(9.0, C2S, 0, 0);
	r = run(stuck.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_TRUE(has_diagnosis(r[0], "reset_after_retransmissions")) << r[0]["diagnoses"].dump();
	std::string d = r[0]["diagnoses"].dump();
	EXPECT_NE(d.find("1448 bytes) 5 times"), std::string::npos) << d;
	EXPECT_NE(d.find("path MTU"), std::string::npos) << d;
	// retransmissions of different segments: loss, not a dead path
	Trace lossy = opened(50403);
	lossy.request(0.01, TDS_SQL_BATCH).response(0.012);
	for (int i = 0; i < 5; i++) {
		lossy.retrans(1.0 + i, S2C);
		lossy.last().base().seq = 777000 + 1448 * i;
		lossy.last().base().payload_len = 1448;
	}
	lossy.rst(9.0, C2S, 0, 0);
	r = run(lossy.records());
	EXPECT_FALSE(has_diagnosis(r[0], "reset_after_retransmissions")) << r[0]["diagnoses"].dump();

	// the client closes at 15 s, the LOGINACK comes at 15.2 s
	Trace late = opened(50404);
	late.prelogin(0.003, C2S, 18, 0, 0, TDS_ENCRYPT_NOT_SUP, 0)
		.prelogin(0.004, S2C, 16, 0, 0, TDS_ENCRYPT_NOT_SUP, TDSBPF_VALUE_ABSENT)
		.login7(0.005, 0x74000004, false, TDSBPF_SSPI_NONE)
		.fin(15.0, C2S, 0, 0)
		.loginack(15.2, 0x74000004, 16, 0, 4000, 55)
		.rst(15.201, C2S, 0, 0);
	r = run(late.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_TRUE(has_diagnosis(r[0], "late_login_ack")) << r[0]["diagnoses"].dump();
	EXPECT_NE(r[0]["diagnoses"].dump().find("200.0 ms after the client had closed"), std::string::npos)
		<< r[0]["diagnoses"].dump();

	// NTLM without a user
	Trace anon = opened(50405);
	anon.prelogin(0.003, C2S, 18, 0, 0, TDS_ENCRYPT_NOT_SUP, 0)
		.prelogin(0.004, S2C, 16, 0, 0, TDS_ENCRYPT_NOT_SUP, TDSBPF_VALUE_ABSENT)
		.login7(0.005, 0x74000004, true, TDSBPF_SSPI_NTLM)
		.sspi_challenge(0.006)
		.ntlm_auth(0.007, "", "", "WS9")
		.login_error(0.010, 18452, 1, 14)
		.fin(0.011, S2C, 0, 0);
	r = run(anon.records());
	ASSERT_EQ(r.size(), 1u);
	EXPECT_TRUE(has_diagnosis(r[0], "ntlm_anonymous")) << r[0]["diagnoses"].dump();
}

} // namespace
} // namespace tdsbpf::test
