// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// What the fuzz targets share: a cursor over the input, the input formats
// of the targets (decoded here, encoded by the seed writer), and the
// pipeline every event goes through (the aggregator with a sink that
// renders each record both ways, and the --events view).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "aggregator/aggregator.h"
#include "host_parser.h"

namespace tdsbpf::fuzz {

using Bytes = std::vector<uint8_t>;

// Reads the input front to back; past its end every read gives zeros.
class Input {
public:
	Input(const uint8_t* data, std::size_t size) : d_(data), n_(size) {}
	bool empty() const { return pos_ >= n_; }
	std::size_t left() const { return n_ - pos_; }
	uint8_t u8() { return pos_ < n_ ? d_[pos_++] : 0; }
	uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
	uint32_t u32() { return u16() | (static_cast<uint32_t>(u16()) << 16); }
	// up to n bytes (fewer at the end of the input)
	std::span<const uint8_t> take(std::size_t n)
	{
		n = n < left() ? n : left();
		std::span<const uint8_t> s(d_ + pos_, n);
		pos_ += n;
		return s;
	}

private:
	const uint8_t* d_;
	std::size_t n_;
	std::size_t pos_ = 0;
};

// Little-endian appends, for the seed writer.
inline void put8(Bytes& b, uint8_t v)
{
	b.push_back(v);
}
inline void put16(Bytes& b, uint16_t v)
{
	b.push_back(v & 0xff);
	b.push_back(v >> 8);
}
inline void put32(Bytes& b, uint32_t v)
{
	put16(b, v & 0xffff);
	put16(b, v >> 16);
}
inline void putbytes(Bytes& b, std::span<const uint8_t> x)
{
	b.insert(b.end(), x.begin(), x.end());
}

// A fixed start for the capture clock: 2023-11-14T22:13:20Z.
constexpr uint64_t kEpochNs = 1'700'000'000'000'000'000ULL;

// The gap before a segment or frame, from a 4-bit code: 16 us doubling
// up to about 0.26 s (14); 15 is 20 s, past the walk's and the aggregator's
// timers (stats flush, handshake and FIN timeouts, snapshots).
inline uint64_t gap_ns(uint8_t code)
{
	code &= 15;
	if (code == 15)
		return 20'000'000'000ULL;
	return (16ULL << code) * 1000ULL;
}

// ---- the aggregator's input ------------------------------------------------
//
//   config: u8 (kAgg* bits)
//   then ops, each an u8 (low two bits: which):
//     kOpEvent:  u16 length, then that many bytes, the record as the ring
//                buffer carries it (tdsbpf_event, tdsbpf_ntlm_event, or
//                anything else of any length)
//     kOpTick:   u32 milliseconds after the newest event: tick
//     kOpFinish: u32 milliseconds after the newest event: finish
//     kOpDrops:  u32 kernel drops, u32 user drops: note_drops, summary
enum : uint8_t {
	kAggRedact = 0x01,
	kAggText = 0x02,
	kAggFewConnections = 0x04, // max_connections 4: eviction
	kAggEmit = 0x08,	   // emit_interval_s 1: snapshots
	kAggIdle = 0x10,	   // idle_timeout_s 1
	kAggNoReorder = 0x20,	   // reorder_window_us 0
	kAggNoLinger = 0x40,	   // close_linger_ms 0
	kAggNonPooled = 0x80,	   // non_pooled_min_connections 1
};
enum : uint8_t { kOpEvent = 0, kOpTick = 1, kOpFinish = 2, kOpDrops = 3 };
AggregatorConfig aggregator_config(uint8_t bits);

// ---- the conversation's input ----------------------------------------------
//
//   flags: u8 (kConv* bits), client ISN: u32, server ISN: u32
//   then segments: ctl u8, length u16, payload (length bytes, or what is
//   left of the input)
//     ctl bit 0:    from the server (else the client)
//     ctl bits 1-3: what happens to the segment (kFate*)
//     ctl bits 4-7: the gap before it (gap_ns)
enum : uint8_t {
	kConvHandshake = 0x01,
	kConvV6 = 0x02,
	kConvVlan = 0x04,
	kConvCloseShift = 3, // bits 3-4: kClose*
	kConvRstByServer = 0x20,
	kConvRawIp = 0x40,   // frames without a link header (process_ip)
	kConvAggBits = 0x80, // one more u8 follows: the aggregator's kAgg* bits
};
enum : uint8_t { kCloseNone = 0, kCloseClientFin = 1, kCloseServerFin = 2, kCloseRst = 3 };
enum : uint8_t {
	kFateSend = 0,	     // sent once
	kFateRetransmit = 1, // sent, then sent again
	kFateLost = 2,	     // never seen: the sequence moves on
	kFateLate = 3,	     // sent after the next segment
	kFateSplit = 4,	     // sent as two segments
	kFateKeepalive = 5,  // a keep-alive probe and its answer first
	kFateZeroWindow = 6, // sent, then the other side's window goes to zero and back
	kFateAcked = 7,	     // sent, then a pure ACK from the other side
};
constexpr std::size_t kMaxSegment = 65000;

// A frame as the conversation plays it: an Ethernet frame, or an IP packet
// when raw_ip; ts on the capture clock.
using FrameFn = std::function<void(std::span<const uint8_t> frame, bool raw_ip, uint64_t ts)>;
using TickFn = std::function<void(uint64_t ts)>;
// Plays a conversation input: its frames, and a tick after each long gap.
// Returns the time after the last frame.
uint64_t play_conversation(const uint8_t* data, std::size_t size, const FrameFn& frame, const TickFn& tick);
// The aggregator bits a conversation input asks for (0 without kConvAggBits).
uint8_t conversation_aggregator_bits(const uint8_t* data, std::size_t size);

// ---- the frames' input -------------------------------------------------------
//
//   config: u8: bits 0-1 the flow table's size (1, 2, 64 or 65536 flows),
//           bit 2 also port 1434 and a high port as server ports,
//           bits 3-7 the aggregator's kAgg* bits 0-4
//   then frames: ctl u8, extra u8, length u16, bytes
//     ctl bit 0:    an IP packet (process_ip), else an Ethernet frame
//     ctl bits 1-2: the hook (XDP, tc ingress, tc egress, pcap)
//     ctl bits 4-7: the gap before it (gap_ns)
//     extra:        the frame was this many bytes longer on the wire
enum : uint8_t { kFrameIp = 0x01 };

// ---- the parsers' input ------------------------------------------------------
//
//   which parser: u8 (mod kParsers), arg: u16, end: u16, then the bytes
constexpr int kParsers = 9;

// ---- the pipeline -------------------------------------------------------------

// Events into the aggregator, whose sink renders every record as JSON
// (checked to parse) and as text, and every timeline line; each event also
// goes through the --events view.
class Pipeline {
public:
	explicit Pipeline(AggregatorConfig cfg);
	~Pipeline();
	void on_event(const tdsbpf_event& ev, std::size_t len);
	void tick(uint64_t now_ns) { agg_->tick(now_ns); }
	void finish(uint64_t now_ns);
	Aggregator& aggregator() { return *agg_; }

private:
	std::unique_ptr<Sink> sink_;
	std::unique_ptr<Aggregator> agg_;
	bool redact_;
};

} // namespace tdsbpf::fuzz
