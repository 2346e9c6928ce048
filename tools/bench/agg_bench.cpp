// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// tdsbpf-agg-bench: the aggregator alone. Reads captures through the host
// walk into memory first (not timed), then feeds their events to a fresh
// Aggregator per round and times only on_event/tick/finish, with the JSON
// sink writing to /dev/null. The captures' rounds are interleaved so that
// machine noise hits every capture alike.
//
//   tdsbpf-agg-bench [--rounds N] NAME=FILE [NAME=FILE...]
//
// Prints one JSON object per (round, capture):
//   {"name":..,"round":..,"events":..,"records":..,"cpu_ns":..,"wall_ns":..}
//
// Only the aggregator's stable public API is used (AggregatorConfig,
// make_sink, Aggregator, on_event, tick, finish, summary): its insides are
// being rewritten and this bench must measure whichever version is built.
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "aggregator/aggregator.h"
#include "host_parser.h"
#include "reader.h"

namespace {

uint64_t now_ns(clockid_t id)
{
	timespec ts{};
	clock_gettime(id, &ts);
	return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// Every event of a capture, back to back, each at an 8-byte aligned offset
// (the records are read as tdsbpf_event in place).
struct Events {
	std::string name;
	std::vector<uint64_t> blob;			  // uint64_t storage for alignment
	std::vector<std::pair<std::size_t, uint32_t>> at; // offset in bytes, length
	uint64_t last_ts = 0;
};

Events load(const std::string& name, const std::string& path)
{
	Events e;
	e.name = name;
	std::vector<uint8_t> bytes;
	tdsbpf::HostParserConfig pc; // the defaults of tdsbpf --read
	tdsbpf::HostParser parser(pc, [&](const tdsbpf_event& ev, std::size_t len) {
		std::size_t off = bytes.size();
		bytes.resize(off + ((len + 7) & ~std::size_t{7}));
		std::memcpy(bytes.data() + off, &ev, len);
		e.at.emplace_back(off, static_cast<uint32_t>(len));
		e.last_ts = std::max<uint64_t>(e.last_ts, ev.ts_ns);
	});
	tdsbpf::read_capture(path, parser);
	parser.send_counted_work(); // as tdsbpf --read does at the end
	e.blob.resize((bytes.size() + 7) / 8);
	if (!bytes.empty())
		std::memcpy(e.blob.data(), bytes.data(), bytes.size());
	return e;
}

} // namespace

int main(int argc, char** argv)
{
	int rounds = 5;
	std::vector<std::pair<std::string, std::string>> inputs;
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		if (a == "--rounds" && i + 1 < argc) {
			char* end = nullptr;
			long n = std::strtol(argv[++i], &end, 10);
			rounds = *end == '\0' && n >= 1 && n <= 1000 ? static_cast<int>(n) : 0; // 0: usage below
		} else if (auto eq = a.find('='); eq != std::string::npos && eq > 0) {
			inputs.emplace_back(a.substr(0, eq), a.substr(eq + 1));
		} else {
			std::fprintf(stderr, "usage: %s [--rounds N] NAME=FILE [NAME=FILE...]\n", argv[0]);
			return 2;
		}
	}
	if (inputs.empty() || rounds < 1) {
		std::fprintf(stderr, "usage: %s [--rounds N] NAME=FILE [NAME=FILE...]\n", argv[0]);
		return 2;
	}
	std::vector<Events> all;
	try {
		for (auto& [name, path] : inputs)
			all.push_back(load(name, path));
	} catch (const std::exception& ex) {
		std::fprintf(stderr, "%s\n", ex.what());
		return 2;
	}
	std::FILE* devnull = std::fopen("/dev/null", "w");
	if (!devnull) {
		std::perror("/dev/null");
		return 2;
	}
	for (int r = 0; r < rounds; r++) {
		for (std::size_t k = 0; k < all.size(); k++) {
			// alternate the order so neither capture always runs first
			const Events& e = all[(k + static_cast<std::size_t>(r)) % all.size()];
			tdsbpf::AggregatorConfig cfg;
			cfg.format = tdsbpf::OutputFormat::json;
			auto sink = tdsbpf::make_sink(tdsbpf::OutputFormat::json, devnull);
			uint64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID), wall0 = now_ns(CLOCK_MONOTONIC);
			uint64_t records = 0, events = 0;
			{
				tdsbpf::Aggregator agg(cfg, *sink);
				const auto* base = reinterpret_cast<const uint8_t*>(e.blob.data());
				std::size_t n = 0;
				for (auto [off, len] : e.at) {
					const auto* ev = reinterpret_cast<const tdsbpf_event*>(base + off);
					agg.on_event(*ev, len);
					// the live loop ticks ten times a second; about every
					// 100k events at the rates measured here
					if (++n % 100000 == 0)
						agg.tick(ev->ts_ns);
				}
				agg.finish(e.last_ts);
				std::fflush(devnull);
				auto s = agg.summary();
				records = s.connections_ended;
				events = s.events;
			} // the destructor's work counts too: it is part of a run
			uint64_t cpu = now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0, wall = now_ns(CLOCK_MONOTONIC) - wall0;
			std::printf("{\"name\":\"%s\",\"round\":%d,\"events\":%llu,\"records\":%llu,\"cpu_ns\":%llu,"
				    "\"wall_ns\":%llu}\n",
				    e.name.c_str(), r, static_cast<unsigned long long>(events),
				    static_cast<unsigned long long>(records), static_cast<unsigned long long>(cpu),
				    static_cast<unsigned long long>(wall));
			std::fflush(stdout);
		}
	}
	std::fclose(devnull);
	return 0;
}
