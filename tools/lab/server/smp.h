// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Session Multiplex Protocol (MARS), [MC-SMP]: 16-byte headers, framing of
// the post-login byte stream, and per-session sequence/window bookkeeping.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>

#include "byte_io.h"

namespace tdslab {

inline constexpr std::uint8_t kSmpId = 0x53;
inline constexpr std::size_t kSmpHeaderSize = 16;

namespace smp_flag {
inline constexpr std::uint8_t syn = 0x01;
inline constexpr std::uint8_t ack = 0x02;
inline constexpr std::uint8_t fin = 0x04;
inline constexpr std::uint8_t data = 0x08;
} // namespace smp_flag

struct SmpHeader {
	std::uint8_t flags = 0;
	std::uint16_t sid = 0;
	std::uint32_t length = kSmpHeaderSize; // includes the header
	std::uint32_t seqnum = 0;
	std::uint32_t window = 0;
};

SmpHeader decode_smp_header(ByteView sixteen_bytes);
Bytes encode_smp_frame(const SmpHeader& h, ByteView payload = {});
const char* smp_flag_name(std::uint8_t flags);

struct SmpFrame {
	SmpHeader header;
	Bytes payload;
};

// Splits the MARS byte stream into SMP frames; throws WireError on a bad header.
class SmpFrameSplitter {
public:
	void feed(ByteView data) { queue_.append(data); }
	std::optional<SmpFrame> next();
	std::size_t buffered() const { return queue_.size(); }

private:
	ByteQueue queue_;
};

// One SMP session's counters. Sequence numbers count DATA frames only.
// The sender may send DATA numbered up to the peer's last announced window;
// this side announces recv_seq + receive_window in every frame it sends.
class SmpSession {
public:
	explicit SmpSession(std::uint16_t sid, std::uint32_t receive_window = 4)
	    : sid_(sid), receive_window_(receive_window)
	{
	}

	std::uint16_t sid() const { return sid_; }

	// Every frame from the peer carries its current window.
	void note_peer_window(std::uint32_t window) { peer_window_ = window; }
	// A DATA frame from the peer. Throws WireError when its sequence number is
	// not the next one or lies beyond the window this side announced.
	void accept_data(const SmpHeader& h);

	// Queues one TDS packet for sending as a DATA frame.
	void queue_packet(Bytes tds_packet) { outbox_.push_back(std::move(tds_packet)); }
	// DATA frames that fit into the peer's window, in order.
	Bytes drain();
	bool has_queued() const { return !outbox_.empty(); }
	// An ACK frame when the peer is close to exhausting the window this side
	// announced and no DATA is going to carry a fresh one; otherwise empty.
	Bytes ack_if_needed();
	Bytes make_syn();
	Bytes make_ack();
	Bytes make_fin();

	std::uint32_t sent_seq() const { return send_seq_; }
	std::uint32_t received_seq() const { return recv_seq_; }
	std::uint32_t peer_window() const { return peer_window_; }

private:
	std::uint32_t our_window() const { return recv_seq_ + receive_window_; }
	SmpHeader control(std::uint8_t flags);

	std::uint16_t sid_;
	std::uint32_t receive_window_;
	std::uint32_t send_seq_ = 0;
	std::uint32_t recv_seq_ = 0;
	// [MC-SMP] 3.1.3: both high-water marks start at 4 before any frame says otherwise.
	std::uint32_t peer_window_ = 4;
	std::uint32_t announced_window_ = 4;
	std::deque<Bytes> outbox_;
};

} // namespace tdslab
