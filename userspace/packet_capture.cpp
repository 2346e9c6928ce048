// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "packet_capture.h"

#include <spdlog/spdlog.h>

#include <stdexcept>

namespace tdsbpf {

PacketCapture::PacketCapture(PacketCaptureOptions o) : opt_(std::move(o))
{
	out_ = std::make_unique<PcapngWriter>(opt_.file);
	stats_.files = out_->files();
}

const std::string& PacketCapture::name_of(uint32_t ifindex)
{
	auto [it, inserted] = names_.try_emplace(ifindex);
	if (inserted) {
		if (opt_.ifname)
			it->second = opt_.ifname(ifindex);
		if (it->second.empty())
			it->second = ifindex ? "if" + std::to_string(ifindex) : "capture";
	}
	return it->second;
}

void PacketCapture::write(uint64_t connection_id, uint64_t ts, uint32_t ifindex, uint32_t orig_len, uint8_t dir,
			  std::span<const uint8_t> bytes, const std::string& note)
{
	if (!out_) {
		stats_.write_failed++;
		return;
	}
	comment_.clear();
	if (connection_id)
		comment_ = "tdsbpf.connection_id=" + std::to_string(connection_id);
	else
		comment_ = "tdsbpf: no connection record";
	comment_ += dir == TDSBPF_DIR_C2S ? " client->server" : " server->client";
	if (!note.empty())
		comment_ += "; " + note;
	try {
		// the packet programs (and the capture walk) see Ethernet frames
		out_->packet(ifindex, name_of(ifindex), kLinktypeEthernet, ts, orig_len, bytes, comment_);
		stats_.written++;
		stats_.files = out_->files();
	} catch (const std::exception& e) {
		error_ = e.what();
		spdlog::error("{}; no more packets are written (the records go on)", error_);
		out_.reset();
		stats_.write_failed++;
	}
}

void PacketCapture::packet(uint64_t connection_id, const tdsbpf_packet_event& pk, std::span<const uint8_t> bytes)
{
	const tdsbpf_event& b = pk.base;
	if (!opt_.diagnosed_only) {
		write(connection_id, b.ts_ns, b.ifindex, pk.orig_len, b.dir, bytes);
		return;
	}
	if (!connection_id) {
		stats_.discarded++;
		return;
	}
	Pending& p = held_[connection_id];
	if (p.bytes + bytes.size() > opt_.per_connection_bytes || held_bytes_ + bytes.size() > opt_.total_bytes) {
		p.not_kept++;
		stats_.not_kept++;
		return;
	}
	p.packets.push_back(Held{b.ts_ns, b.ifindex, pk.orig_len, b.dir, b.hook, {bytes.begin(), bytes.end()}});
	p.bytes += bytes.size();
	held_bytes_ += bytes.size();
}

void PacketCapture::write_held(uint64_t connection_id, Pending& p)
{
	for (std::size_t i = 0; i < p.packets.size(); i++) {
		const Held& h = p.packets[i];
		std::string note;
		if (i + 1 == p.packets.size() && p.not_kept)
			note = std::to_string(p.not_kept) +
			       " more packets of this connection were not kept (buffer full)";
		write(connection_id, h.ts, h.ifindex, h.orig_len, h.dir, h.bytes, note);
	}
}

void PacketCapture::connection_end(uint64_t connection_id, bool diagnosed)
{
	if (!opt_.diagnosed_only)
		return;
	auto it = held_.find(connection_id);
	if (it == held_.end())
		return;
	if (diagnosed)
		write_held(connection_id, it->second);
	else
		stats_.discarded += it->second.packets.size();
	held_bytes_ -= it->second.bytes;
	held_.erase(it);
}

void PacketCapture::flush()
{
	if (!out_)
		return;
	try {
		out_->flush();
	} catch (const std::exception& e) {
		error_ = e.what();
		spdlog::error("{}; no more packets are written (the records go on)", error_);
		out_.reset();
	}
}

void PacketCapture::finish()
{
	// connections still open at the end were reported as still open (and
	// their diagnoses decided then, through connection_end)
	for (auto& [id, p] : held_)
		stats_.discarded += p.packets.size();
	held_.clear();
	held_bytes_ = 0;
	flush();
}

} // namespace tdsbpf
