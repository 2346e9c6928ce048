// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Output: the JSON Schema holds for every record, NDJSON and text sinks,
// snapshots and the exit summary.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "outputs.h"
#include "seeds.h"

namespace tdsbpf::test {
namespace {

std::vector<std::vector<Record>> all_scenarios()
{
	std::vector<std::vector<Record>> v;
	v.push_back(seed_sql_login().records());
	v.push_back(seed_kerberos_login().records());
	v.push_back(seed_ntlm_login().records());
	Trace m1 = seed_mars_open();
	seed_mars_close_server_order(m1);
	v.push_back(m1.records());
	Trace m2 = seed_mars_open();
	seed_mars_close_client_order(m2);
	v.push_back(m2.records());
	v.push_back(seed_normal_close().records());
	v.push_back(seed_nonpooled_close().records());
	v.push_back(seed_idle_close().records());
	// Failures and odd ends, so that every optional part gets a value.
	Trace f("2001:db8::1", 50001, "2001:db8::2", 1433);
	f.syn(0, 1)
		.synack(0.001, 2, 2)
		.hs_ack(0.002, 2, 3)
		.prelogin(0.003, C2S, 8, 0, 0, TDS_ENCRYPT_OFF, TDSBPF_VALUE_ABSENT)
		.prelogin(0.004, S2C, 8, 0, 2039, TDS_ENCRYPT_NOT_SUP, TDSBPF_VALUE_ABSENT)
		.login7(0.005, 0x71000001, false, TDSBPF_SSPI_NONE, true)
		.login_error(0.020, 18456, 1, 14)
		.fin(0.021, S2C, 0, 0);
	v.push_back(f.records());
	Trace r("192.0.2.1", 50002, "192.0.2.2", 1433);
	r.syn(0, 1).rst(0.001, S2C, 0, 2);
	v.push_back(r.records());
	Trace s("192.0.2.1", 50003, "192.0.2.2", 1433);
	s.syn(0, 1).syn(1, 1);
	v.push_back(s.records());
	Trace w("192.0.2.1", 50004, "192.0.2.2", 1433);
	w.syn(0, 1)
		.synack(0.001, 2, 2)
		.hs_ack(0.002, 2, 3)
		.prelogin(0.003, C2S, 18, 0, 0, TDS_ENCRYPT_OFF, 1)
		.prelogin(0.004, S2C, 16, 0, 0, TDS_ENCRYPT_OFF, 0)
		.tls_in_tds(0.005, C2S, 22, 1, 0x0302)
		.tls_in_tds(0.006, S2C, 22, 2, 0x0302)
		.tls(0.007, C2S, 23)
		.routing(0.010, "replica.contoso", 1444)
		.request(0.020, TDS_SQL_BATCH)
		.request(0.021, TDS_ATTENTION)
		.response(0.030)
		.done(0.030, 0x30, 5)
		.retrans(0.031, S2C)
		.zero_window(0.032, C2S)
		.stats(0.033, 100, 200, 3, 4, true)
		.rst(0.040, C2S, 0, 0);
	v.push_back(w.records());
	return v;
}

int run_validator(const std::string& path)
{
	std::string cmd =
		std::string("/usr/bin/python3 ") + TDSBPF_SCHEMA_CHECK + " " + TDSBPF_CONNECTION_SCHEMA + " " + path;
	int rc = std::system(cmd.c_str());
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string temp_path(const char* name)
{
	const char* dir = std::getenv("TMPDIR");
	return std::string(dir ? dir : "/tmp") + "/tdsbpf-" + std::to_string(getpid()) + "-" + name;
}

TEST(Schema, EveryRecordValidates)
{
	std::string path = temp_path("records.ndjson");
	{
		std::ofstream out(path);
		NdjsonSink sink(out);
		AggregatorConfig cfg;
		cfg.emit_interval_s = 1;
		cfg.ifname = [](uint32_t i) { return i == 2 ? std::string("eth0") : std::string(); };
		for (const auto& recs : all_scenarios()) {
			Aggregator agg(cfg, sink);
			feed(agg, recs);
		}
		AggregatorConfig red;
		red.redact = true;
		Aggregator agg2(red, sink);
		feed(agg2, seed_ntlm_login().records());
	}
	std::ifstream in(path);
	std::string line;
	size_t lines = 0, snapshots = 0;
	while (std::getline(in, line)) {
		lines++;
		auto j = nlohmann::json::parse(line);
		if (j["tdsbpf.record"] == "snapshot")
			snapshots++;
	}
	EXPECT_GE(lines, 14u);
	EXPECT_GE(snapshots, 1u); // the MARS connection lives 1.9 s
	int rc = run_validator(path);
	ASSERT_NE(rc, 3) << "install the Debian package python3-jsonschema";
	EXPECT_EQ(rc, 0);
	std::remove(path.c_str());
}

TEST(Schema, ValidatorRejectsABrokenRecord)
{
	auto recs = run(seed_sql_login().records());
	ASSERT_EQ(recs.size(), 1u);
	std::string path = temp_path("broken.ndjson");
	{
		std::ofstream out(path);
		auto a = recs[0];
		a["close"]["kind"] = "vanished";
		auto b = recs[0];
		b.erase("phases");
		auto c = recs[0];
		c["diagnoses"].push_back(
			{{"code", "made_up"}, {"severity", "info"}, {"message", "not a real diagnosis"}});
		out << a.dump() << "\n" << b.dump() << "\n" << c.dump() << "\n";
	}
	int rc = run_validator(path);
	ASSERT_NE(rc, 3) << "install the Debian package python3-jsonschema";
	EXPECT_EQ(rc, 1);
	std::remove(path.c_str());
}

TEST(Output, NdjsonOneObjectPerLine)
{
	std::ostringstream out;
	NdjsonSink sink(out);
	Aggregator agg({}, sink);
	feed(agg, seed_sql_login().records());
	feed(agg, seed_kerberos_login().records());
	std::istringstream in(out.str());
	std::string line;
	std::vector<nlohmann::json> v;
	while (std::getline(in, line))
		v.push_back(nlohmann::json::parse(line));
	ASSERT_EQ(v.size(), 2u);
	EXPECT_EQ(v[0]["server.address"], "10.10.10.120");
	EXPECT_EQ(v[1]["server.address"], "10.10.10.20");
}

TEST(Output, TextTimelineLikeTheSeeds)
{
	std::ostringstream out;
	TextSink sink(out);
	Aggregator agg({}, sink);
	Trace t = seed_mars_open();
	seed_mars_close_server_order(t);
	feed(agg, t.records());
	std::string s = out.str();
	for (const char* want :
	     {"10.10.10.10:52965 > 10.10.10.22:1433  TCP:Flags=CE....S., PayloadLen=0, Seq=661832900",
	      "10.10.10.22:1433 > 10.10.10.10:52965  TCP:Flags=.E.A..S.", "TDS:Prelogin, SPID = 0, PacketID = 1",
	      "TLS:HandShake: Client Hello (TLS 1.2) (in TDS:Prelogin)",
	      "NLMP:NTLM AUTHENTICATE MESSAGE Domain: CONTOSO, User: joe133, Workstation: JOEWKS",
	      "SMP:SYN, Sid = 0, Length = 16, SeqNum = 0, Wndw = 4",
	      "SMP:ACK, Sid = 0, Length = 16, SeqNum = 34, Wndw = 40",
	      "SMP:FIN, Sid = 0, Length = 16, SeqNum = 559, Wndw = 614",
	      "TCP:Flags=...A...F, PayloadLen=0, Seq=661892741, Ack=493774858",
	      "TCP:Flags=...A.R.., PayloadLen=0, Seq=661892742, Ack=493774874",
	      "== connection 10.10.10.10:52965 -> 10.10.10.22:1433", "[info] mars_benign_reset:"})
		EXPECT_NE(s.find(want), std::string::npos) << "missing: " << want << "\n" << s;
	// Relative time of the SMP:SYN (frame 18024) from the SYN (6704).
	EXPECT_NE(s.find("   0.1562193  10.10.10.10:52965 > 10.10.10.22:1433  SMP:SYN"), std::string::npos) << s;
	// The summary comes after the last timeline line.
	EXPECT_LT(s.find("...A.R.."), s.find("== connection"));

	// docs/connections.md shows this very output
	std::string documented = labtest::fenced_block(TDSBPF_CONNECTIONS_DOC, "The seeds' MARS connection");
	ASSERT_FALSE(documented.empty());
	if (documented != s)
		std::ofstream("text-view-example.actual") << s; // beside the test, to compare or copy
	EXPECT_EQ(documented, s);
}

TEST(Output, TimelineLinesArriveBeforeTheConnectionEnds)
{
	CollectSink sink;
	sink.lines = true;
	AggregatorConfig cfg;
	cfg.reorder_window_us = 1000;
	Aggregator agg(cfg, sink);
	Trace t = seed_ntlm_login();
	for (auto& r : t.records())
		agg.on_event(r.base(), r.len);
	agg.tick(at(1182.1));
	EXPECT_EQ(sink.timeline.size(), t.records().size());
	EXPECT_TRUE(sink.records.empty());
	EXPECT_EQ(sink.timeline[0].description.rfind("TCP:Flags=......S.", 0), 0u);
}

TEST(Output, SnapshotsOfLongConnections)
{
	AggregatorConfig cfg;
	cfg.emit_interval_s = 5;
	CollectSink sink;
	Aggregator agg(cfg, sink);
	Trace t = seed_idle_close();
	// The main loop ticks twice a second.
	double next_tick = 16.5;
	for (auto& r : t.records()) {
		while (at(next_tick) < r.base().ts_ns) {
			agg.tick(at(next_tick));
			next_tick += 0.5;
		}
		agg.on_event(r.base(), r.len);
	}
	agg.finish(at(30));
	// First seen at 16.364 s and closed at 26.79 s: a snapshot at the first
	// tick 5 s after its start (21.5 s), another 5 s later (26.5 s).
	ASSERT_EQ(sink.snapshots.size(), 2u);
	EXPECT_EQ(sink.snapshots[0]["tdsbpf.record"], "snapshot");
	EXPECT_TRUE(sink.snapshots[0]["close"].is_null());
	EXPECT_EQ(sink.snapshots[0]["phase"], "active");
	ASSERT_EQ(sink.records.size(), 1u);
	EXPECT_EQ(agg.summary().snapshots, 2u);
}

TEST(Summary, CountsByOutcomeCloseKindAndDiagnosis)
{
	CollectSink sink;
	Aggregator agg({}, sink);
	for (const auto& recs : all_scenarios())
		feed(agg, recs);
	agg.note_drops(7, 3);
	Summary s = agg.summary();
	EXPECT_EQ(s.connections_seen, 12u);
	EXPECT_EQ(s.connections_ended, 12u);
	EXPECT_EQ(s.connections_open, 0u);
	EXPECT_EQ(s.kernel_drops, 7u);
	EXPECT_EQ(s.user_drops, 3u);
	EXPECT_EQ(s.by_close_kind.at("four_way"), 5u); // SQL, Kerberos, normal, non-pooled, idle
	EXPECT_EQ(s.by_close_kind.at("mars_benign_reset"), 2u);
	EXPECT_EQ(s.by_close_kind.at("refused"), 1u);
	EXPECT_EQ(s.by_login_outcome.at("success"), 6u);
	EXPECT_EQ(s.by_login_outcome.at("failed"), 1u);
	EXPECT_EQ(s.by_diagnosis.at("midstream"), 3u);
	EXPECT_EQ(s.by_diagnosis.at("login_failed"), 1u);

	auto j = nlohmann::json::parse(format_summary(s, OutputFormat::json));
	EXPECT_EQ(j["tdsbpf.record"], "summary");
	EXPECT_EQ(j["dropped"]["kernel"], 7);
	EXPECT_EQ(j["by_close_kind"]["refused"], 1);
	std::string text = format_summary(s, OutputFormat::text);
	EXPECT_NE(text.find("top diagnoses:"), std::string::npos);
	EXPECT_NE(text.find("dropped by the kernel 7, by user space 3"), std::string::npos) << text;
}

TEST(Output, MakeSinkByFormat)
{
	std::FILE* f = std::tmpfile();
	ASSERT_NE(f, nullptr);
	auto json = make_sink(OutputFormat::json, f);
	auto text = make_sink(OutputFormat::text, f);
	EXPECT_FALSE(json->wants_lines());
	EXPECT_TRUE(text->wants_lines());
	std::fclose(f);
}

TEST(Output, InterfaceNameFromTheResolver)
{
	AggregatorConfig cfg;
	cfg.ifname = [](uint32_t i) { return i == 2 ? std::string("eth0") : std::string(); };
	auto r = run(seed_sql_login().records(), cfg);
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(r[0]["network.interface.name"], "eth0");
}


// The Prometheus page as sample -> value ("name{labels}" as written).
std::map<std::string, double> page_samples(const std::string& page)
{
	std::map<std::string, double> out;
	std::istringstream in(page);
	std::string line;
	while (std::getline(in, line)) {
		if (line.empty() || line[0] == '#')
			continue;
		size_t sp = line.rfind(' ');
		out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
	}
	return out;
}

// The sum of every sample of a family whose labels include all of these.
double sum_of(const std::map<std::string, double>& samples, const std::string& name,
	      const std::vector<std::string>& labels = {})
{
	double sum = 0;
	for (const auto& [k, v] : samples) {
		if (k.compare(0, name.size(), name) != 0 || (k.size() > name.size() && k[name.size()] != '{'))
			continue;
		bool all = true;
		for (const auto& l : labels)
			all &= k.find(l) != std::string::npos;
		if (all)
			sum += v;
	}
	return sum;
}

// The metrics count what the records and the summary say, over the seeds'
// scenarios; the histograms are cumulative and end at their count.
TEST(Metrics, CountWhatTheRecordsSay)
{
	CollectSink sink;
	Metrics metrics;
	AggregatorConfig cfg;
	cfg.metrics = &metrics;
	Aggregator agg(cfg, sink);
	for (const auto& recs : all_scenarios())
		feed(agg, recs);
	TracerCounters t;
	t.events_submitted = agg.summary().events;
	t.kernel_drops = 7;
	t.version = "9.9";
	auto s = page_samples(metrics.render(agg.summary(), t));

	EXPECT_EQ(sum_of(s, "tdsbpf_connections_total"), 12);
	EXPECT_EQ(sum_of(s, "tdsbpf_connections_total", {"close_kind=\"four_way\""}), 5);
	EXPECT_EQ(sum_of(s, "tdsbpf_connections_total", {"close_kind=\"refused\""}), 1);
	EXPECT_EQ(sum_of(s, "tdsbpf_connections_total", {"login_outcome=\"success\""}), 6);
	EXPECT_EQ(sum_of(s, "tdsbpf_connections_started_total"), 12);
	EXPECT_EQ(sum_of(s, "tdsbpf_connections_open"), 0);
	// a login is counted when it is answered: the six that succeeded and
	// the one that failed; none for connections that never logged in or
	// whose login came before the tracer
	EXPECT_EQ(sum_of(s, "tdsbpf_logins_total", {"outcome=\"success\""}), 6);
	EXPECT_EQ(sum_of(s, "tdsbpf_logins_total", {"outcome=\"failed\""}), 1);
	EXPECT_EQ(sum_of(s, "tdsbpf_logins_total", {"auth_method=\"ntlm\""}),
		  sum_of(s, "tdsbpf_connections_total", {"auth_method=\"ntlm\""}));
	EXPECT_EQ(sum_of(s, "tdsbpf_diagnoses_total", {"code=\"login_failed\"", "severity=\"error\""}), 1);
	EXPECT_EQ(sum_of(s, "tdsbpf_diagnoses_total", {"code=\"midstream\""}), 3);
	EXPECT_EQ(sum_of(s, "tdsbpf_events_dropped_total", {"stage=\"kernel\""}), 7);
	EXPECT_EQ(sum_of(s, "tdsbpf_events_total"), sum_of(s, "tdsbpf_events_submitted_total"));
	EXPECT_EQ(s.at("tdsbpf_build_info{version=\"9.9\"}"), 1);
	// histograms: cumulative buckets (by their bound), +Inf equal to the count
	for (const char* h : {"tdsbpf_login_duration_seconds", "tdsbpf_request_duration_seconds"}) {
		std::string bucket = std::string(h) + "_bucket{";
		std::map<std::string, std::map<double, double>> by_server;
		for (const auto& [k, v] : s) {
			if (k.rfind(bucket, 0) != 0)
				continue;
			size_t le = k.find(",le=\"");
			std::string bound = k.substr(le + 5, k.size() - le - 7);
			by_server[k.substr(0, le)][bound == "+Inf" ? 1e300 : std::stod(bound)] = v;
		}
		ASSERT_FALSE(by_server.empty()) << h;
		for (const auto& [series, buckets] : by_server) {
			double last = 0;
			for (const auto& [bound, v] : buckets) {
				EXPECT_GE(v, last) << series << " le=" << bound;
				last = v;
			}
		}
	}
	double login_count = sum_of(s, "tdsbpf_login_duration_seconds_count");
	EXPECT_EQ(login_count, 7);
	EXPECT_EQ(sum_of(s, "tdsbpf_login_duration_seconds_bucket", {"le=\"+Inf\""}), login_count);
	EXPECT_GT(sum_of(s, "tdsbpf_request_duration_seconds_count"), 0);
	EXPECT_EQ(sum_of(s, "tdsbpf_request_duration_seconds_bucket", {"le=\"+Inf\""}),
		  sum_of(s, "tdsbpf_request_duration_seconds_count"));
}

TEST(Metrics, HistogramBucketsAreCumulative)
{
	Metrics m;
	uint32_t srv = m.server("10.0.0.5:1433");
	for (uint64_t ns : {50'000ull, 700'000ull, 700'000ull, 3'000'000'000ull, 90'000'000'000ull})
		m.request(srv, ns);
	auto s = page_samples(m.render(Summary{}, TracerCounters{}));
	auto b = [&](const char* le) {
		return s.at(std::string("tdsbpf_request_duration_seconds_bucket{server=\"10.0.0.5:1433\",le=\"") + le +
			    "\"}");
	};
	EXPECT_EQ(b("0.0001"), 1);
	EXPECT_EQ(b("0.0005"), 1);
	EXPECT_EQ(b("0.001"), 3);
	EXPECT_EQ(b("2.5"), 3);
	EXPECT_EQ(b("5"), 4);
	EXPECT_EQ(b("60"), 4);
	EXPECT_EQ(b("+Inf"), 5);
	EXPECT_EQ(s.at("tdsbpf_request_duration_seconds_count{server=\"10.0.0.5:1433\"}"), 5);
	EXPECT_NEAR(s.at("tdsbpf_request_duration_seconds_sum{server=\"10.0.0.5:1433\"}"), 93.00145, 1e-9);
}

// Labels stay bounded: past the cap every further server is "other"; and
// label values are escaped as the text format wants.
TEST(Metrics, ServersPastTheCapAreOtherAndLabelsAreEscaped)
{
	Metrics m(2);
	uint32_t a = m.server("a\"b\\c\nd"), b = m.server("10.0.0.6:1433");
	uint32_t c = m.server("10.0.0.7:1433"), d = m.server("10.0.0.8:1433");
	EXPECT_NE(a, b);
	EXPECT_EQ(c, d);
	EXPECT_EQ(m.server("10.0.0.6:1433"), b);
	for (uint32_t x : {a, b, c, d})
		m.connection_started(x);
	std::string page = m.render(Summary{}, TracerCounters{});
	auto s = page_samples(page);
	EXPECT_EQ(s.at("tdsbpf_connections_started_total{server=\"other\"}"), 2);
	EXPECT_EQ(s.at("tdsbpf_connections_started_total{server=\"a\\\"b\\\\c\\nd\"}"), 1);
	EXPECT_EQ(page.find("10.0.0.7"), std::string::npos);
}

} // namespace
} // namespace tdsbpf::test
