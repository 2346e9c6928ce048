// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "latency.h"

#include <algorithm>

namespace tdsbpf {

uint32_t LatencyHistogram::bucket_of(uint64_t ns)
{
	if (ns < 16)
		return static_cast<uint32_t>(ns);
	uint32_t e = 63 - static_cast<uint32_t>(__builtin_clzll(ns)); // 4..63
	return (e - 3) * 16 + static_cast<uint32_t>((ns >> (e - 4)) & 15);
}

uint64_t LatencyHistogram::bucket_low(uint32_t b)
{
	if (b < 16)
		return b;
	uint32_t e = b / 16 + 3;
	return (uint64_t{16} + (b % 16)) << (e - 4);
}

uint64_t LatencyHistogram::bucket_high(uint32_t b)
{
	if (b < 16)
		return b;
	uint32_t e = b / 16 + 3;
	return bucket_low(b) + ((uint64_t{1} << (e - 4)) - 1);
}

void LatencyHistogram::add(uint64_t ns)
{
	if (count_ == 0 || ns < min_)
		min_ = ns;
	if (ns > max_)
		max_ = ns;
	count_++;
	sum_ += ns;
	uint16_t idx = static_cast<uint16_t>(bucket_of(ns));
	auto it = std::lower_bound(buckets_.begin(), buckets_.end(), idx,
				   [](const Bucket& b, uint16_t i) { return b.index < i; });
	if (it != buckets_.end() && it->index == idx)
		it->count++;
	else
		buckets_.insert(it, Bucket{idx, 1});
}

uint64_t LatencyHistogram::percentile_ns(double p) const
{
	if (count_ == 0)
		return 0;
	uint64_t rank = static_cast<uint64_t>(p / 100.0 * static_cast<double>(count_) + 0.999999);
	rank = std::clamp<uint64_t>(rank, 1, count_);
	uint64_t seen = 0;
	for (const Bucket& b : buckets_) {
		seen += b.count;
		if (seen >= rank) {
			uint64_t lo = bucket_low(b.index), hi = bucket_high(b.index);
			return std::clamp(lo + (hi - lo) / 2, min_, max_);
		}
	}
	return max_;
}

} // namespace tdsbpf
