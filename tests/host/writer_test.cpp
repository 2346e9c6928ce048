// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The record's building blocks: the JSON writer (escaping, UTF-8 from the
// wire, numbers) and the latency histogram (its stated error bound).
#include <gtest/gtest.h>

#include <cmath>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "connection.h"
#include "json_writer.h"
#include "events_builder.h"
#include "seeds.h"
#include "latency.h"

namespace tdsbpf::test {
namespace {

std::string write_string(std::string_view s)
{
	JsonBuffer out;
	JsonWriter w(out);
	w.begin_object().member("s", s).end_object();
	return std::string(out.view());
}

TEST(JsonWriter, NestedValuesAndCommas)
{
	JsonBuffer buf;
	JsonWriter w(buf);
	w.begin_object()
		.member("a", uint64_t{1})
		.key("b")
		.begin_array()
		.value(true)
		.null()
		.value(-3)
		.begin_object()
		.end_object()
		.end_array()
		.member("c", 2.5)
		.member("d", Millis{3175000})
		.member("e", Millis{3100999})
		.member("f", Millis{4000000})
		.end_object();
	std::string out(buf.view());
	EXPECT_EQ(out, R"({"a":1,"b":[true,null,-3,{}],"c":2.5,"d":3.175,"e":3.1,"f":4})");
	EXPECT_TRUE(nlohmann::json::accept(out));
}

TEST(JsonWriter, EscapesControlCharactersQuotesAndBackslashes)
{
	EXPECT_EQ(write_string("a\"b\\c\nd\te\x01"), R"({"s":"a\"b\\c\nd\te\u0001"})");
}

TEST(JsonWriter, InvalidUtf8BecomesReplacementCharacters)
{
	// 0xFF never starts a sequence; "\xC3" alone is cut short; "\xED\xA0\x80"
	// is a UTF-16 surrogate; "\xC0\xAF" an overlong '/'.
	std::string out = write_string(std::string("ok\xFF|\xC3|\xED\xA0\x80|\xC0\xAF|\xC3\xA9|\xF0\x9F\x98\x80"));
	auto j = nlohmann::json::parse(out); // throws on invalid UTF-8
	std::string s = j["s"];
	EXPECT_EQ(
		s,
		"ok\xEF\xBF\xBD|\xEF\xBF\xBD|\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD|\xEF\xBF\xBD\xEF\xBF\xBD|\xC3\xA9|\xF0\x9F\x98\x80");
}

TEST(JsonWriter, EveryByteStringParses)
{
	std::mt19937 rng(7);
	for (int i = 0; i < 2000; i++) {
		std::string s(static_cast<size_t>(rng() % 40), '\0');
		for (char& ch : s)
			ch = static_cast<char>(rng());
		std::string out = write_string(s);
		EXPECT_TRUE(nlohmann::json::accept(out)) << out;
	}
}

TEST(JsonWriter, ShortAndLongStringsEscapeAlike)
{
	// every byte that needs care, at every place of strings around the
	// short path's limit and the eight-byte steps
	for (size_t n = 1; n <= 80; n++)
		for (size_t at = 0; at < n; at++)
			for (char b : {'\x01', '\x1f', '"', '\\', '\x7f', '\n', 'a'}) {
				std::string s(n, 'x');
				s[at] = b;
				ASSERT_EQ(write_string(s), "{\"s\":" + nlohmann::json(s).dump() + "}")
					<< n << " " << at;
			}
	std::string accented = "caf\xC3\xA9";
	EXPECT_EQ(write_string(accented), "{\"s\":\"caf\xC3\xA9\"}");
	std::string broken = "ab\xFF";
	EXPECT_EQ(write_string(broken), "{\"s\":\"ab\xEF\xBF\xBD\"}");
}

// the truncation is what the test checks, through a format passed on
#pragma GCC diagnostic push
#if defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#else
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
TEST(FormatTo, WritesWhatSnprintfWrites)
{
	auto check = [](size_t cap, const char* f, auto... a) {
		std::vector<char> want(cap + 1, '#'), got(cap + 1, '#');
		std::snprintf(want.data(), cap, f, a...);
		size_t n = format_to(got.data(), cap, f, a...);
		EXPECT_EQ(std::string(got.data()), std::string(want.data())) << f;
		EXPECT_EQ(n, std::strlen(want.data())) << f;
		EXPECT_EQ(got[cap], '#') << "wrote past the buffer: " << f;
	};
	check(200, "plain text, then an empty string: %s", "");
	check(200, "%s and %s", "one", "");
	check(200, "%u, then words after the last conversion", 5u);
	check(200, "%u %d %d %llu %zu", 4294967295u, -7, 0, 18446744073709551615ull, size_t{12});
	check(200, "%.1f ms, %.0f%%, %.3f", 0.05, 99.5, 1234.0005);
	check(200, "%.1f %.1f %.1f %.0f %.0f", 0.25, 0.35, 2.45, 0.5, 1.5);
	check(200, "%s", static_cast<const char*>(nullptr));
	check(200, "%02x and %5u go through vsnprintf: %s", 10u, 3u, "yes");
	check(12, "truncated: %s %u", "a long word", 123456u);
	check(5, "%llu", 1234567890ull);
	check(1, "%s", "nothing fits");
}
#pragma GCC diagnostic pop

// UTF-16LE as the wire has it, unit by unit: printable ASCII kept, a
// control character '?', a surrogate pair one code point, a lone surrogate
// U+FFFD, an odd last byte dropped.
std::string utf16_reference(const std::vector<uint8_t>& b)
{
	std::string out;
	auto put = [&out](uint32_t cp) {
		if (cp < 0x80) {
			out += static_cast<char>(cp);
		} else if (cp < 0x800) {
			out += static_cast<char>(0xC0 | (cp >> 6));
			out += static_cast<char>(0x80 | (cp & 0x3F));
		} else if (cp < 0x10000) {
			out += static_cast<char>(0xE0 | (cp >> 12));
			out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
			out += static_cast<char>(0x80 | (cp & 0x3F));
		} else {
			out += static_cast<char>(0xF0 | (cp >> 18));
			out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
			out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
			out += static_cast<char>(0x80 | (cp & 0x3F));
		}
	};
	for (size_t i = 0; i + 1 < b.size(); i += 2) {
		uint32_t cp = b[i] | (b[i + 1] << 8);
		if (cp >= 0xD800 && cp <= 0xDBFF && i + 3 < b.size()) {
			uint32_t lo = b[i + 2] | (b[i + 3] << 8);
			if (lo >= 0xDC00 && lo <= 0xDFFF) {
				put(0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00));
				i += 2;
				continue;
			}
			cp = 0xFFFD;
		} else if (cp >= 0xD800 && cp <= 0xDFFF) {
			cp = 0xFFFD;
		}
		put(cp < 0x20 ? '?' : cp);
	}
	return out;
}

TEST(Utf16, DecodedAsUnitByUnitWhateverTheMix)
{
	// runs of printable ASCII (the fast path) broken by every other kind of
	// unit, at every alignment and length
	const uint16_t others[] = {0x0000, 0x0001, 0x001F, 0x0020, 0x007E, 0x007F, 0x0080, 0x00E9,
				   0x0120, 0x20AC, 0xD83D, 0xDE00, 0xDC00, 0xFFFF, 0x4100};
	std::mt19937 rng(5);
	for (int round = 0; round < 3000; round++) {
		std::vector<uint8_t> b;
		size_t units = rng() % 40;
		for (size_t u = 0; u < units; u++) {
			uint16_t v = rng() % 4 ? static_cast<uint16_t>(0x20 + rng() % 0x5F)
					       : others[rng() % std::size(others)];
			if (v == 0xD83D && rng() % 2) { // a real pair now and then
				b.push_back(0x3D), b.push_back(0xD8), b.push_back(0x00), b.push_back(0xDE);
				continue;
			}
			b.push_back(static_cast<uint8_t>(v)), b.push_back(static_cast<uint8_t>(v >> 8));
		}
		if (rng() % 5 == 0)
			b.push_back(0x41); // an odd byte at the end
		std::string got(b.size() / 2 * 3 + 4, '\0');
		got.resize(utf16le_to(got.data(), b.data(), b.size()));
		ASSERT_EQ(got, utf16_reference(b)) << "round " << round;
	}
}

TEST(IsoTime, MatchesGmtimeAcrossSecondsAndDays)
{
	// in turn, so that each call's second, day or both differ from the last
	const uint64_t s = 1000000000, base = 1764547199 * s; // 2025-11-30T23:59:59Z
	for (uint64_t ns : std::initializer_list<uint64_t>{base, base + s - 1, base + s, base + s + 1, base + 5, 0,
							   base + 86400 * s * 400 + 123456789, base + 1000}) {
		time_t secs = static_cast<time_t>(ns / 1000000000ull);
		struct tm tm {};
		gmtime_r(&secs, &tm);
		char want[40];
		size_t n = strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm);
		std::snprintf(want + n, sizeof(want) - n, ".%06uZ", static_cast<unsigned>(ns % 1000000000ull / 1000));
		EXPECT_EQ(iso_time(ns), want);
	}
}

TEST(JsonWriter, DoublesReadBackExactlyAndNeverAsExponents)
{
	for (double v : {0.0, 0.001, 3.175, 294.248, 1234567.891, 1e-6, 4.0}) {
		JsonBuffer buf;
		JsonWriter(buf).value(v);
		std::string out(buf.view());
		EXPECT_EQ(out.find('e'), std::string::npos) << out;
		EXPECT_DOUBLE_EQ(nlohmann::json::parse(out).get<double>(), v) << out;
	}
	JsonBuffer buf;
	JsonWriter(buf).value(std::nan(""));
	EXPECT_EQ(buf.view(), "null");
}

TEST(LatencyHistogram, BucketsCoverEveryValueOnce)
{
	for (uint64_t v : {uint64_t{0}, uint64_t{15}, uint64_t{16}, uint64_t{17}, uint64_t{1000}, uint64_t{123456789},
			   uint64_t{1} << 40, ~uint64_t{0}}) {
		uint32_t b = LatencyHistogram::bucket_of(v);
		EXPECT_LE(LatencyHistogram::bucket_low(b), v);
		EXPECT_GE(LatencyHistogram::bucket_high(b), v);
	}
	for (uint32_t b = 0; b < 900; b++)
		EXPECT_EQ(LatencyHistogram::bucket_high(b) + 1, LatencyHistogram::bucket_low(b + 1)) << b;
}

TEST(LatencyHistogram, PercentilesWithinTheStatedErrorOverAWholeConnection)
{
	// 100,000 requests (the old sample buffer kept the first 512): a slow
	// tail late in the connection must show in p99.
	std::mt19937_64 rng(11);
	std::lognormal_distribution<double> fast(std::log(400e3), 0.5); // ~0.4 ms
	std::vector<uint64_t> all;
	LatencyHistogram h;
	for (int i = 0; i < 100000; i++) {
		uint64_t ns = i >= 97000 ? 250000000 + rng() % 50000000 : static_cast<uint64_t>(fast(rng));
		all.push_back(ns);
		h.add(ns);
	}
	std::sort(all.begin(), all.end());
	for (double p : {50.0, 90.0, 99.0, 99.9}) {
		size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(all.size())));
		double exact = static_cast<double>(all[rank - 1]);
		double got = static_cast<double>(h.percentile_ns(p));
		EXPECT_LE(std::fabs(got - exact) / exact, LatencyHistogram::kRelativeError) << "p" << p;
	}
	EXPECT_GE(h.percentile_ns(99), 250000000u);
	EXPECT_EQ(h.count(), 100000u);
	EXPECT_EQ(h.min_ns(), all.front());
	EXPECT_EQ(h.max_ns(), all.back());
}

TEST(TextView, RenderedFromTheModelWithEveryFieldFilled)
{
	std::ostringstream out;
	TextSink sink(out);
	Aggregator agg({}, sink);
	feed(agg, seed_sql_login().records());
	std::string s = out.str();
	// no field of the summary block is missing ("-" where the JSON has a value)
	auto recs = run(seed_sql_login().records());
	ASSERT_EQ(recs.size(), 1u);
	const auto& r = recs[0];
	EXPECT_NE(s.find("login     " + r["login"]["outcome"].get<std::string>()), std::string::npos) << s;
	EXPECT_NE(s.find("auth      " + r["authentication"]["method"].get<std::string>()), std::string::npos) << s;
	EXPECT_NE(s.find("encryption " + r["negotiated"]["encryption"].get<std::string>()), std::string::npos) << s;
	EXPECT_NE(s.find("close     " + r["close"]["kind"].get<std::string>()), std::string::npos) << s;
	EXPECT_NE(s.find("driver " + r["negotiated"]["client_driver_version"].get<std::string>()), std::string::npos)
		<< s;
	EXPECT_NE(s.find("requests " + std::to_string(r["work"]["requests"].get<int>())), std::string::npos) << s;
	for (const auto& d : r["diagnoses"])
		EXPECT_NE(s.find(d["code"].get<std::string>() + ": " + d["message"].get<std::string>()),
			  std::string::npos);
}

} // namespace
} // namespace tdsbpf::test
