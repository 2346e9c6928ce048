// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "smp.h"

#include "tds_wire.h"

namespace tdslab {

SmpHeader decode_smp_header(ByteView sixteen_bytes)
{
	ByteReader r(sixteen_bytes);
	if (r.u8() != kSmpId)
		throw WireError("SMP header does not start with 0x53");
	SmpHeader h;
	h.flags = r.u8();
	h.sid = r.u16le();
	h.length = r.u32le();
	h.seqnum = r.u32le();
	h.window = r.u32le();
	return h;
}

Bytes encode_smp_frame(const SmpHeader& h, ByteView payload)
{
	ByteWriter w;
	w.u8(kSmpId);
	w.u8(h.flags);
	w.u16le(h.sid);
	w.u32le(static_cast<std::uint32_t>(kSmpHeaderSize + payload.size()));
	w.u32le(h.seqnum);
	w.u32le(h.window);
	w.bytes(payload);
	return w.take();
}

const char* smp_flag_name(std::uint8_t flags)
{
	switch (flags) {
	case smp_flag::syn: return "SYN";
	case smp_flag::ack: return "ACK";
	case smp_flag::fin: return "FIN";
	case smp_flag::data: return "DATA";
	default: return "?";
	}
}

std::optional<SmpFrame> SmpFrameSplitter::next()
{
	if (queue_.size() < kSmpHeaderSize)
		return std::nullopt;
	ByteView bytes = queue_.view();
	SmpHeader h = decode_smp_header(bytes.first(kSmpHeaderSize));
	if (h.flags != smp_flag::syn && h.flags != smp_flag::ack && h.flags != smp_flag::fin &&
	    h.flags != smp_flag::data) {
		throw WireError("SMP flags 0x" + hex_dump(ByteView(&h.flags, 1)) + " invalid");
	}
	if (h.length < kSmpHeaderSize || h.length > kSmpHeaderSize + kMaxPacketSize + 1 ||
	    (h.flags != smp_flag::data && h.length != kSmpHeaderSize)) {
		throw WireError("SMP length " + std::to_string(h.length) + " invalid for " + smp_flag_name(h.flags));
	}
	if (bytes.size() < h.length)
		return std::nullopt;
	SmpFrame f;
	f.header = h;
	f.payload.assign(bytes.begin() + kSmpHeaderSize, bytes.begin() + h.length);
	queue_.consume(h.length);
	return f;
}

void SmpSession::accept_data(const SmpHeader& h)
{
	if (h.seqnum != recv_seq_ + 1) {
		throw WireError("SMP session " + std::to_string(sid_) + ": DATA seqnum " + std::to_string(h.seqnum) +
				", expected " + std::to_string(recv_seq_ + 1));
	}
	if (h.seqnum > announced_window_) {
		throw WireError("SMP session " + std::to_string(sid_) + ": DATA seqnum " + std::to_string(h.seqnum) +
				" beyond window " + std::to_string(announced_window_));
	}
	recv_seq_ = h.seqnum;
}

SmpHeader SmpSession::control(std::uint8_t flags)
{
	SmpHeader h;
	h.flags = flags;
	h.sid = sid_;
	h.seqnum = send_seq_;
	h.window = our_window();
	announced_window_ = h.window;
	return h;
}

Bytes SmpSession::drain()
{
	Bytes out;
	while (!outbox_.empty() && send_seq_ + 1 <= peer_window_) {
		++send_seq_;
		SmpHeader h = control(smp_flag::data);
		Bytes frame = encode_smp_frame(h, outbox_.front());
		out.insert(out.end(), frame.begin(), frame.end());
		outbox_.pop_front();
	}
	return out;
}

Bytes SmpSession::ack_if_needed()
{
	// Re-announce before the peer is left with fewer than half the window.
	if (announced_window_ - recv_seq_ >= (receive_window_ + 1) / 2)
		return {};
	return make_ack();
}

Bytes SmpSession::make_syn()
{
	return encode_smp_frame(control(smp_flag::syn));
}
Bytes SmpSession::make_ack()
{
	return encode_smp_frame(control(smp_flag::ack));
}
Bytes SmpSession::make_fin()
{
	return encode_smp_frame(control(smp_flag::fin));
}

} // namespace tdslab
