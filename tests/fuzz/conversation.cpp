// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The conversation input (fuzz.h) played as frames.
#include <optional>

#include "builder.h"
#include "fuzz.h"

namespace tdsbpf::fuzz {

namespace {

class Conversation {
public:
	Conversation(uint8_t flags, const FrameFn& out) : out_(out), raw_ip_(flags & kConvRawIp)
	{
		c_.v6 = flags & kConvV6;
		c_.vlan = flags & kConvVlan;
		if (c_.v6) {
			c_.caddr = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
			c_.saddr = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
		}
	}

	tb::Conn& conn() { return c_; }
	uint64_t now() const { return ts_; }
	void wait(uint64_t ns) { ts_ += ns; }

	// one segment from a side, at seq (the sequence does not move)
	void send(bool c2s, uint32_t seq, uint8_t flags, std::span<const uint8_t> payload, uint16_t win = 8192)
	{
		tb::Bytes p(payload.begin(), payload.end());
		uint32_t ack = c2s ? c_.sseq : c_.cseq;
		tb::Bytes f = raw_ip_ ? c_.ip(c2s, seq, ack, flags, p, win) : c_.frame(c2s, seq, ack, flags, p, win);
		out_(f, raw_ip_, ts_);
		ts_ += 1000;
	}

	// a data segment that moves the side's sequence
	void data(bool c2s, std::span<const uint8_t> payload)
	{
		uint32_t& seq = c2s ? c_.cseq : c_.sseq;
		send(c2s, seq, tb::ACK | tb::PSH, payload);
		seq += static_cast<uint32_t>(payload.size());
	}

	void ack(bool c2s, uint16_t win = 8192) { send(c2s, c2s ? c_.cseq : c_.sseq, tb::ACK, {}, win); }

	void fin(bool c2s)
	{
		uint32_t& seq = c2s ? c_.cseq : c_.sseq;
		send(c2s, seq, tb::FIN | tb::ACK, {});
		seq++;
	}

	void rst(bool c2s) { send(c2s, c2s ? c_.cseq : c_.sseq, tb::RST | tb::ACK, {}); }

private:
	const FrameFn& out_;
	tb::Conn c_;
	bool raw_ip_;
	uint64_t ts_ = kEpochNs;
};

// A segment held back to go out after the next one.
struct Late {
	bool c2s;
	uint32_t seq;
	tb::Bytes payload;
};

} // namespace

uint8_t conversation_aggregator_bits(const uint8_t* data, std::size_t size)
{
	return size >= 2 && (data[0] & kConvAggBits) ? data[1] : 0;
}

uint64_t play_conversation(const uint8_t* data, std::size_t size, const FrameFn& frame, const TickFn& tick)
{
	Input in(data, size);
	uint8_t flags = in.u8();
	if (flags & kConvAggBits)
		in.u8();
	Conversation cv(flags, frame);
	tb::Conn& c = cv.conn();
	c.cseq = in.u32();
	c.sseq = in.u32();

	if (flags & kConvHandshake) {
		cv.send(true, c.cseq++, tb::SYN, {});
		cv.send(false, c.sseq++, tb::SYN | tb::ACK, {});
		cv.ack(true);
	}

	std::optional<Late> late;
	auto send_late = [&] {
		if (late) {
			cv.send(late->c2s, late->seq, tb::ACK | tb::PSH, late->payload);
			late.reset();
		}
	};
	while (!in.empty()) {
		uint8_t ctl = in.u8();
		bool c2s = !(ctl & 1);
		uint8_t fate = (ctl >> 1) & 7;
		uint8_t gap = ctl >> 4;
		std::size_t len = in.u16();
		auto payload = in.take(len < kMaxSegment ? len : kMaxSegment);
		uint32_t& seq = c2s ? c.cseq : c.sseq;
		uint32_t at = seq;

		cv.wait(gap_ns(gap));
		switch (fate) {
		case kFateSend: cv.data(c2s, payload); break;
		case kFateRetransmit:
			cv.data(c2s, payload);
			cv.wait(200'000'000);
			cv.send(c2s, at, tb::ACK | tb::PSH, payload);
			break;
		case kFateLost: seq += static_cast<uint32_t>(payload.size()); break;
		case kFateLate:
			send_late();
			late = Late{c2s, at, tb::Bytes(payload.begin(), payload.end())};
			seq += static_cast<uint32_t>(payload.size());
			continue; // goes out after the next segment
		case kFateSplit: {
			std::size_t half = payload.size() / 2;
			cv.data(c2s, payload.first(half));
			cv.data(c2s, payload.subspan(half));
			break;
		}
		case kFateKeepalive: {
			// a probe of the byte before the next one, and its answer
			cv.send(c2s, seq - 1, tb::ACK, payload.first(payload.empty() ? 0 : 1));
			cv.ack(!c2s);
			cv.data(c2s, payload);
			break;
		}
		case kFateZeroWindow:
			cv.data(c2s, payload);
			cv.ack(!c2s, 0);
			cv.wait(gap_ns(gap));
			cv.ack(!c2s, 8192);
			break;
		case kFateAcked:
			cv.data(c2s, payload);
			cv.ack(!c2s);
			break;
		}
		send_late();
		if (gap >= 12)
			tick(cv.now());
	}
	send_late();

	bool by_server = flags & kConvRstByServer;
	switch ((flags >> kConvCloseShift) & 3) {
	case kCloseNone: break;
	case kCloseClientFin:
		cv.fin(true);
		cv.ack(false);
		cv.fin(false);
		cv.ack(true);
		break;
	case kCloseServerFin:
		cv.fin(false);
		cv.ack(true);
		cv.fin(true);
		cv.ack(false);
		break;
	case kCloseRst: cv.rst(!by_server); break;
	}
	return cv.now();
}

} // namespace tdsbpf::fuzz
