// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Request latencies of a whole connection in bounded memory: exact count,
// sum, min and max, and a log-linear histogram for the percentiles.
#ifndef TDSBPF_AGGREGATOR_LATENCY_H
#define TDSBPF_AGGREGATOR_LATENCY_H

#include <cstdint>
#include <vector>

namespace tdsbpf {

// Values below 16 ns have a bucket each; above, every power of two is cut
// into 16 buckets, so a bucket spans at most 1/16 of its lower bound. A
// percentile is reported as its bucket's midpoint (clamped to the exact
// min and max): within 3.2 % of the true nearest-rank value. Only buckets
// that were hit are stored (a few dozen for a real workload), in order.
class LatencyHistogram {
public:
	static constexpr double kRelativeError = 1.0 / 32.0;

	void add(uint64_t ns);
	uint64_t count() const { return count_; }
	uint64_t min_ns() const { return min_; }
	uint64_t max_ns() const { return max_; }
	uint64_t sum_ns() const { return sum_; }
	// Nearest-rank percentile, p in (0, 100].
	uint64_t percentile_ns(double p) const;

	static uint32_t bucket_of(uint64_t ns);
	static uint64_t bucket_low(uint32_t b);
	static uint64_t bucket_high(uint32_t b); // inclusive

private:
	struct Bucket {
		uint16_t index;
		uint32_t count;
	};
	uint64_t count_ = 0, sum_ = 0, min_ = 0, max_ = 0;
	std::vector<Bucket> buckets_;
};

} // namespace tdsbpf

#endif
