// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "host_parser.h"

#include <algorithm>
#include <cstring>

namespace tdsbpf {

// The walk reads IP and TCP headers as structs, as the kernel does from
// its (NET_IP_ALIGN'd) buffers: frames are copied 2 bytes into an aligned
// buffer so that, after the 14-byte Ethernet header, those reads are aligned.
constexpr std::size_t kAlign = 2;

HostParser::HostParser(HostParserConfig cfg, EventCallback cb)
    : cfg_(std::move(cfg)), cb_(std::move(cb)), scratch_(std::make_unique<tdsbpf_scratch>())
{
	std::memset(scratch_.get(), 0, sizeof(tdsbpf_scratch));
	for (uint16_t p : cfg_.ports)
		ports_[p >> 6] |= 1ULL << (p & 63);
	follow_redirects_ = cfg_.follow_redirects;
	if (cfg_.max_flows == 0)
		cfg_.max_flows = 1;
	frame_.resize(kAlign + 14 + 262144);
}

HostParser::~HostParser() = default;

void HostParser::unlink(Entry* e)
{
	(e->newer ? e->newer->older : newest_) = e->older;
	(e->older ? e->older->newer : oldest_) = e->newer;
	e->newer = e->older = nullptr;
}

void HostParser::link_newest(Entry* e)
{
	e->newer = nullptr;
	e->older = newest_;
	if (newest_)
		newest_->newer = e;
	newest_ = e;
	if (!oldest_)
		oldest_ = e;
}

tdsbpf_flow* HostParser::flow_get(const tdsbpf_flow_key& k)
{
	auto it = flows_.find(k);
	if (it == flows_.end())
		return nullptr;
	Entry* e = it->second;
	if (newest_ != e) {
		unlink(e);
		link_newest(e);
	}
	current_ = e;
	return &e->flow;
}

tdsbpf_flow* HostParser::flow_create(const tdsbpf_flow_key& k)
{
	if (tdsbpf_flow* f = flow_get(k)) {
		std::memset(f, 0, sizeof(tdsbpf_flow));
		return f;
	}
	// like the kernel's LRU hash: a full table forgets its least recent flow
	while (flows_.size() >= cfg_.max_flows && oldest_) {
		Entry* g = oldest_;
		if (g->flow.work.events) {
			// what it counted goes out before it is forgotten
			tdsbpf_event ev;
			tdsbpf_host_work_record(&g->flow, &g->key, &ev);
			emit(&ev, sizeof(ev));
		}
		flows_.erase(g->key);
		unlink(g);
		free_.push_back(g);
	}
	Entry* e;
	if (!free_.empty()) {
		e = free_.back();
		free_.pop_back();
	} else {
		e = &pool_.emplace_back();
	}
	std::memset(&e->flow, 0, sizeof(e->flow));
	e->key = k;
	e->work_frame = 0;
	flows_.emplace(k, e);
	link_newest(e);
	current_ = e;
	return &e->flow;
}

std::size_t HostParser::open_flows() const
{
	std::size_t n = 0;
	for (const auto& [k, e] : flows_)
		n += e->flow.state != TDSBPF_TCP_CLOSED;
	return n;
}

void HostParser::send_counted_work()
{
	// least recently used first: the order the table would forget them in
	for (Entry* e = oldest_; e; e = e->newer) {
		if (!e->flow.work.events)
			continue;
		tdsbpf_event ev;
		tdsbpf_host_work_record(&e->flow, &e->key, &ev);
		if (cfg_.frame)
			*cfg_.frame = e->work_frame;
		emit(&ev, sizeof(ev));
	}
}

void HostParser::emit(const void* record, std::size_t len)
{
	if (cb_)
		cb_(*static_cast<const tdsbpf_event*>(record), len);
}

void HostParser::process_ethernet(std::span<const uint8_t> frame, uint32_t wire_len, uint64_t ts_ns, uint32_t ifindex,
				  uint8_t hook)
{
	if (frame.size() > frame_.size() - kAlign)
		return;
	// (an empty span may have no data at all: memcpy must not see it)
	if (!frame.empty() && frame.data() != frame_.data() + kAlign)
		std::memcpy(frame_.data() + kAlign, frame.data(), frame.size());
	tdsbpf_host_process(reinterpret_cast<tdsbpf_host*>(this), frame_.data() + kAlign,
			    static_cast<uint32_t>(frame.size()), wire_len, ts_ns, ifindex, hook);
}

std::span<const uint8_t> HostParser::with_ethernet(std::span<const uint8_t> packet)
{
	// up to the largest snap length captures use (jumbo frames, IPv6 with a
	// full 64 KiB payload, GRO'd packets caught by a local capture)
	if (packet.empty() || packet.size() > frame_.size() - kAlign - 14)
		return {};
	// the walk starts at an Ethernet header: give the packet one
	uint8_t* eth = frame_.data() + kAlign;
	uint8_t version = packet[0] >> 4;
	std::memset(eth, 0, 12);
	eth[12] = version == 6 ? 0x86 : 0x08;
	eth[13] = version == 6 ? 0xdd : 0x00;
	std::memcpy(eth + 14, packet.data(), packet.size());
	return {eth, packet.size() + 14};
}

void HostParser::process_ip(std::span<const uint8_t> packet, uint32_t wire_len, uint64_t ts_ns, uint32_t ifindex,
			    uint8_t hook)
{
	auto frame = with_ethernet(packet);
	if (!frame.empty())
		process_ethernet(frame, wire_len + 14, ts_ns, ifindex, hook);
}

bool HostParser::copy_ethernet(std::span<const uint8_t> frame, uint32_t wire_len, uint64_t ts_ns)
{
	if (frame.size() > frame_.size() - kAlign)
		return false;
	if (frame.data() != frame_.data() + kAlign)
		std::memcpy(frame_.data() + kAlign, frame.data(), frame.size());
	return tdsbpf_host_process_copy(reinterpret_cast<tdsbpf_host*>(this), frame_.data() + kAlign,
					static_cast<uint32_t>(frame.size()), wire_len, ts_ns) != 0;
}

bool HostParser::copy_ip(std::span<const uint8_t> packet, uint32_t wire_len, uint64_t ts_ns)
{
	auto frame = with_ethernet(packet);
	return !frame.empty() && copy_ethernet(frame, wire_len + 14, ts_ns);
}

void HostParser::browser_asked(const tdsbpf_flow_key& k)
{
	if (asks_.emplace(k, true).second) {
		asks_order_.push_back(k);
		if (asks_order_.size() > 4096) {
			asks_.erase(asks_order_.front());
			asks_order_.pop_front();
		}
	}
}

void HostParser::capture(std::span<const uint8_t> frame, uint32_t wire_len, uint64_t ts_ns, uint32_t ifindex,
			 uint8_t hook, const tdsbpf_flow_key& key, uint8_t dir)
{
	std::size_t n = std::min<std::size_t>({frame.size(), cfg_.snaplen, TDSBPF_SNAPLEN_MAX});
	if (n == 0)
		return;
	copy_.assign(sizeof(tdsbpf_packet_event) + n, 0);
	auto* rec = reinterpret_cast<tdsbpf_packet_event*>(copy_.data());
	rec->base.ts_ns = ts_ns;
	rec->base.key = key;
	rec->base.ifindex = ifindex;
	rec->base.kind = TDSBPF_EV_PACKET;
	rec->base.dir = dir;
	rec->base.hook = hook;
	rec->orig_len = std::max<uint32_t>(wire_len, static_cast<uint32_t>(frame.size()));
	rec->cap_len = static_cast<uint32_t>(n);
	std::memcpy(copy_.data() + sizeof(tdsbpf_packet_event), frame.data(), n);
	count(TDSBPF_CNT_EVENTS);
	emit(copy_.data(), copy_.size());
}

} // namespace tdsbpf

// ---- hooks of host_walker.c ------------------------------------------------

using tdsbpf::HostParser;

static HostParser* self(tdsbpf_host* h)
{
	return reinterpret_cast<HostParser*>(h);
}

extern "C" {

tdsbpf_flow* tdsbpf_host_flow_get(tdsbpf_host* h, const tdsbpf_flow_key* k)
{
	return self(h)->flow_get(*k);
}

tdsbpf_flow* tdsbpf_host_flow_create(tdsbpf_host* h, const tdsbpf_flow_key* k)
{
	return self(h)->flow_create(*k);
}

void tdsbpf_host_emit(tdsbpf_host* h, const void* record, size_t len)
{
	self(h)->emit(record, len);
}

int tdsbpf_host_is_server_port(tdsbpf_host* h, __u16 port)
{
	return self(h)->is_server_port(port) ? 1 : 0;
}

void tdsbpf_host_follow_port(tdsbpf_host* h, __u16 port)
{
	self(h)->follow_port(port);
}

int tdsbpf_host_follow_browser(tdsbpf_host* h)
{
	return self(h)->follow_browser() ? 1 : 0;
}

void tdsbpf_host_browser_port(tdsbpf_host* h, __u16 port)
{
	self(h)->browser_port(port);
}

void tdsbpf_host_browser_asked(tdsbpf_host* h, const tdsbpf_flow_key* k)
{
	self(h)->browser_asked(*k);
}

int tdsbpf_host_browser_was_asked(tdsbpf_host* h, const tdsbpf_flow_key* k)
{
	return self(h)->browser_was_asked(*k) ? 1 : 0;
}

__u32 tdsbpf_host_snaplen(tdsbpf_host* h)
{
	return self(h)->snaplen();
}

void tdsbpf_host_capture(tdsbpf_host* h, const void* frame, __u32 caplen, __u32 wire_len, __u64 ts_ns, __u32 ifindex,
			 __u8 hook, const tdsbpf_flow_key* key, __u8 dir)
{
	self(h)->capture({static_cast<const uint8_t*>(frame), caplen}, wire_len, ts_ns, ifindex, hook, *key, dir);
}

void tdsbpf_host_count(tdsbpf_host* h, int counter)
{
	self(h)->count(counter);
}

void tdsbpf_host_work_counted(tdsbpf_host* h)
{
	self(h)->work_counted();
}

int tdsbpf_host_count_work(tdsbpf_host* h)
{
	return self(h)->count_work() ? 1 : 0;
}

__u64 tdsbpf_host_flush_interval_ns(tdsbpf_host* h)
{
	return self(h)->flush_interval_ns();
}

tdsbpf_scratch* tdsbpf_host_scratch(tdsbpf_host* h)
{
	return self(h)->scratch();
}

} // extern "C"
