// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "reader.h"

#include <pcap/pcap.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <cstdio>
#include <stdexcept>
#include <vector>

namespace tdsbpf {
namespace {

// Link types by their LINKTYPE_ numbers (as stored in files).
constexpr int kEthernet = 1;
constexpr int kNull = 0;
constexpr int kLoop = 108;
constexpr int kRaw = 101;
constexpr int kRawDlt = 12; // DLT_RAW as some systems write it
constexpr int kRawDlt14 = 14;
constexpr int kIpv4 = 228;
constexpr int kIpv6 = 229;
constexpr int kLinuxSll = 113;
constexpr int kLinuxSll2 = 276;

// Recently seen frames, to find copies: the same IP packet, byte for byte,
// again. An "any" capture holds two of every packet that crosses the
// loopback (going out, coming in), a capture of two interfaces or of a
// mirror port two of every packet that crosses both, and some captures
// repeat a frame by mistake. A sender's resend is not a copy: it comes
// after a timeout (200 ms and more) or after the receiver's duplicate
// ACKs, and mostly differs (IP ID, TCP timestamps, ACK, window). So a copy
// is the same bytes within 1 ms of the last time they were seen; or, when
// the frame is not as long as its IP header says (wire bytes past the IP
// packet other than Ethernet padding, or fewer), the same bytes at any
// distance among the last few frames: no sender resends a frame like that.
//
// The hash covers the first 128 bytes (IP and TCP headers whole, options
// included) and the length: the TCP checksum in them covers the rest, and
// a sender never sends other bytes at the same sequence number.
class DuplicateFilter {
public:
	bool seen(std::span<const uint8_t> l3, uint64_t ts_ns, bool odd_length)
	{
		uint64_t h = XXH3_64bits(l3.data(), std::min<std::size_t>(l3.size(), 128));
		for (auto& r : recent_) {
			uint64_t dt = ts_ns > r.ts ? ts_ns - r.ts : r.ts - ts_ns;
			if (r.len == l3.size() && r.hash == h && (dt <= 1'000'000 || odd_length)) {
				r.ts = ts_ns; // a run of copies: each near the one before
				return true;
			}
		}
		recent_[next_++ % recent_.size()] = {h, l3.size(), ts_ns};
		return false;
	}

private:
	struct Recent {
		uint64_t hash = 0;
		std::size_t len = 0;
		uint64_t ts = 0;
	};
	std::array<Recent, 8> recent_{};
	std::size_t next_ = 0;
};

// The frame's length on the wire does not match its IP header: bytes past
// the IP packet that are not the padding of a short Ethernet frame (with or
// without its checksum), or fewer bytes than the IP packet. GSO/GRO
// packets with a zero IP length say nothing.
bool odd_length(std::span<const uint8_t> ip, uint32_t l3_wire, uint32_t ethernet_wire)
{
	uint32_t ip_len = 0;
	if (ip.size() >= 20 && (ip[0] >> 4) == 4)
		ip_len = static_cast<uint32_t>((ip[2] << 8) | ip[3]);
	else if (ip.size() >= 40 && (ip[0] >> 4) == 6 && ((ip[4] << 8) | ip[5]))
		ip_len = 40 + static_cast<uint32_t>((ip[4] << 8) | ip[5]);
	if (ip_len == 0 || l3_wire == ip_len)
		return false;
	if (ethernet_wire && l3_wire > ip_len && ethernet_wire <= 64)
		return false; // padded to the 60-byte minimum (64 with the FCS)
	return true;
}

// The link types of a pcapng file's interfaces, in the order they are
// described (empty for a pcap file, or one that cannot be scanned here,
// such as standard input). Only block headers are read.
std::vector<int> pcapng_link_types(const std::string& path)
{
	std::vector<int> types;
	if (path == "-")
		return types;
	std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
	if (!f)
		return types;
	bool swap = false;
	auto u32 = [&swap](const uint8_t* p) {
		uint32_t v = p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
		return swap ? __builtin_bswap32(v) : v;
	};
	uint8_t h[12];
	for (bool first = true;; first = false) {
		if (std::fread(h, 1, 8, f.get()) != 8)
			break;
		uint32_t type = u32(h); // the section header's type reads the same both ways
		if (type == 0x0A0D0D0A) {
			if (std::fread(h + 8, 1, 4, f.get()) != 4)
				break;
			uint32_t bom = h[8] | (h[9] << 8) | (h[10] << 16) | (static_cast<uint32_t>(h[11]) << 24);
			if (bom != 0x1A2B3C4D && bom != 0x4D3C2B1A)
				break;
			swap = bom == 0x4D3C2B1A;
			uint32_t len = u32(h + 4);
			if (len < 28 || len % 4 || std::fseek(f.get(), static_cast<long>(len) - 12, SEEK_CUR) != 0)
				break;
			continue;
		}
		if (first)
			return types; // not pcapng
		uint32_t len = u32(h + 4);
		if (len < 12 || len % 4)
			break;
		long skip = static_cast<long>(len) - 8;
		if (type == 1) { // interface description: link type first
			uint8_t lt[4];
			if (std::fread(lt, 1, 4, f.get()) != 4)
				break;
			uint16_t v = static_cast<uint16_t>(lt[0] | (lt[1] << 8));
			types.push_back(swap ? __builtin_bswap16(v) : v);
			skip -= 4;
		}
		if (std::fseek(f.get(), skip, SEEK_CUR) != 0)
			break;
	}
	return types;
}

struct PcapCloser {
	void operator()(pcap_t* p) const { pcap_close(p); }
};

} // namespace

ReadStats read_capture(const std::string& path, HostParser& parser, uint64_t* current_frame)
{
	char err[PCAP_ERRBUF_SIZE] = {};
	std::unique_ptr<pcap_t, PcapCloser> pc(
		pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err));
	if (!pc)
		throw std::runtime_error("cannot read capture '" + path + "': " + err);

	ReadStats st;
	st.linktype = pcap_datalink(pc.get());
	const char* name = pcap_datalink_val_to_name(st.linktype);
	st.linktype_name = name ? name : std::to_string(st.linktype);
	// libpcap reads one link type per file and stops at the first interface
	// of another: refuse such a file before anything of it is written
	std::vector<int> types = pcapng_link_types(path);
	for (std::size_t i = 1; i < types.size(); i++) {
		if (types[i] == types[0])
			continue;
		const char* other = pcap_datalink_val_to_name(types[i]);
		throw std::runtime_error(
			"capture '" + path + "' holds interfaces of different link types (interface 0 " +
			st.linktype_name + ", interface " + std::to_string(i) + " " +
			(other ? other : "link type " + std::to_string(types[i])) +
			"), and tdsbpf reads one link type per file: write each interface to a file of "
			"its own first, e.g. tshark -r FILE -Y 'frame.interface_id == " +
			std::to_string(i) + "' -w part.pcapng");
	}
	switch (st.linktype) {
	case kEthernet:
	case kNull:
	case kLoop:
	case kRaw:
	case kRawDlt:
	case kRawDlt14:
	case kIpv4:
	case kIpv6:
	case kLinuxSll:
	case kLinuxSll2: break;
	default:
		throw std::runtime_error("capture '" + path + "' has link type " + st.linktype_name +
					 ", which tdsbpf cannot read (Ethernet, Linux cooked v1/v2, raw IP and "
					 "loopback are supported)");
	}

	DuplicateFilter dups;
	pcap_pkthdr* hdr = nullptr;
	const u_char* data = nullptr;
	for (;;) {
		int rc = pcap_next_ex(pc.get(), &hdr, &data);
		if (rc == PCAP_ERROR_BREAK)
			break;
		if (rc == PCAP_ERROR) {
			st.truncated = true;
			st.warning = std::string("capture ends early after ") + std::to_string(st.frames) +
				     " frames: " + pcap_geterr(pc.get());
			break;
		}
		if (rc != 1)
			continue;
		st.frames++;
		if (current_frame)
			*current_frame = st.frames;
		uint64_t ts = static_cast<uint64_t>(hdr->ts.tv_sec) * 1'000'000'000ULL +
			      static_cast<uint64_t>(hdr->ts.tv_usec); // nanoseconds: opened with NANO precision
		uint32_t caplen = hdr->caplen;
		uint32_t wire = hdr->len;
		if (caplen < wire)
			st.short_frames++;
		std::span<const uint8_t> frame(data, caplen);

		// find where the IP packet (or the Ethernet frame) starts
		std::size_t l3 = 0;
		uint16_t proto = 0;
		bool ethernet = false;
		switch (st.linktype) {
		case kEthernet:
			ethernet = true;
			if (caplen < 14) {
				st.unsupported++;
				continue;
			}
			l3 = 14;
			proto = static_cast<uint16_t>((data[12] << 8) | data[13]);
			if ((proto == 0x8100 || proto == 0x88a8) && caplen >= 18) {
				l3 = 18;
				proto = static_cast<uint16_t>((data[16] << 8) | data[17]);
			}
			break;
		case kLinuxSll:
			if (caplen < 16) {
				st.unsupported++;
				continue;
			}
			l3 = 16;
			proto = static_cast<uint16_t>((data[14] << 8) | data[15]);
			break;
		case kLinuxSll2:
			if (caplen < 20) {
				st.unsupported++;
				continue;
			}
			l3 = 20;
			proto = static_cast<uint16_t>((data[0] << 8) | data[1]);
			break;
		case kNull:
		case kLoop: l3 = 4; break;
		default: l3 = 0; break;
		}
		if (!ethernet && proto == 0x8100 && caplen >= l3 + 4) {
			proto = static_cast<uint16_t>((data[l3 + 2] << 8) | data[l3 + 3]);
			l3 += 4;
		}
		if (caplen <= l3) {
			st.unsupported++;
			continue;
		}
		auto ip = frame.subspan(l3);
		uint8_t version = ip[0] >> 4;
		if (proto ? (proto != 0x0800 && proto != 0x86dd) : (version != 4 && version != 6)) {
			st.unsupported++;
			continue;
		}
		uint32_t l3_wire = wire > l3 ? static_cast<uint32_t>(wire - l3) : 0;
		if (dups.seen(ip, ts, odd_length(ip, l3_wire, ethernet ? wire : 0))) {
			// counted in its flow when the walk has seen all of it; never walked twice
			st.duplicates++;
			if (ethernet)
				parser.copy_ethernet(frame, wire, ts);
			else
				parser.copy_ip(ip, l3_wire, ts);
			continue;
		}
		if (ethernet)
			parser.process_ethernet(frame, wire, ts);
		else
			parser.process_ip(ip, wire > l3 ? static_cast<uint32_t>(wire - l3) : 0, ts);
	}
	return st;
}

} // namespace tdsbpf
