// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The aggregator fed arbitrary event records, ticks and finishes, as the
// ring buffer and the main loop would hand them over; every record it
// prints is rendered as JSON and as text, every event through the --events
// view. The input format is in fuzz.h.
#include <cstring>
#include <memory>

#include "fuzz.h"

using namespace tdsbpf::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
	Input in(data, size);
	Pipeline pipe(aggregator_config(in.u8()));
	uint64_t newest = 0;
	while (!in.empty()) {
		uint8_t op = in.u8() & 3;
		switch (op) {
		case kOpEvent: {
			std::size_t len = in.u16();
			auto bytes = in.take(len);
			// a buffer of exactly the record's length, so that reading past
			// it is caught
			std::unique_ptr<uint8_t[]> rec(new uint8_t[bytes.size() ? bytes.size() : 1]);
			if (!bytes.empty())
				std::memcpy(rec.get(), bytes.data(), bytes.size());
			const auto* ev = reinterpret_cast<const tdsbpf_event*>(rec.get());
			if (bytes.size() >= sizeof(uint64_t) && ev->ts_ns > newest)
				newest = ev->ts_ns;
			pipe.on_event(*ev, bytes.size());
			break;
		}
		case kOpTick: pipe.tick(newest + in.u32() * 1'000'000ULL); break;
		case kOpFinish: pipe.finish(newest + in.u32() * 1'000'000ULL); break;
		case kOpDrops: {
			uint32_t kernel = in.u32();
			uint32_t user = in.u32();
			pipe.aggregator().note_drops(kernel, user);
			break;
		}
		}
	}
	pipe.finish(newest + 3'600'000'000'000ULL);
	return 0;
}
