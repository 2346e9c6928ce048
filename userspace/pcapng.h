// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// A pcapng writer (draft-ietf-opsawg-pcapng): the packets tdsbpf keeps, in
// a file Wireshark and tshark open, with each packet's connection in its
// comment.
//
// Each file is one section: a Section Header Block, then an Interface
// Description Block the first time an interface is met in that file, then
// one Enhanced Packet Block per packet (nanosecond timestamps). Fields are in
// host byte order, as the section's byte-order magic tells readers.
//
// With rotate_bytes, a new file is started before one would grow past that
// size (a file holds at least one packet, so a larger packet still goes
// out); later files are named <stem>.<n><ext> beside the first
// (trace.pcapng, trace.1.pcapng, trace.2.pcapng, ...). With keep_files, only
// the newest N files are kept. Files are created 0640: packets carry data.
//
// A failed write (disk full, a removed directory) throws std::runtime_error
// naming the file and the reason. The file may then end in a partial block
// (readers show the packets before it): the caller is expected to stop.
#pragma once

#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tdsbpf {

// Link types of the IDB (the LINKTYPE_ registry).
constexpr std::uint16_t kLinktypeEthernet = 1;
constexpr std::uint16_t kLinktypeRawIp = 101;

struct PcapngOptions {
	std::string path{};		// the first file
	std::uint64_t rotate_bytes = 0; // 0: never rotate; else start a new file before one would exceed this size
	unsigned keep_files = 0;	// 0: keep all; else keep only the newest N files (older ones removed)
	std::uint32_t snaplen = 0;	// written in each IDB (0: unknown); longer data is cut to it
	std::string application{};	// shb_userappl, e.g. "tdsbpf 1.2.0" (empty: no option)
};

class PcapngWriter {
public:
	// Opens the first file and writes its section header; throws
	// std::runtime_error("cannot write the packet capture to PATH: REASON").
	explicit PcapngWriter(PcapngOptions options);
	// Closes the file; a late write error is lost here: call close() to see it.
	~PcapngWriter();
	PcapngWriter(const PcapngWriter&) = delete;
	PcapngWriter& operator=(const PcapngWriter&) = delete;

	// One packet. ifindex and linktype (kLinktypeEthernet or kLinktypeRawIp)
	// identify the interface: its IDB (if_name = ifname, nanosecond
	// if_tsresol, snaplen, linktype) is written the first time the pair
	// appears in each file. ts_unix_ns: wall-clock time since the epoch.
	// orig_len: the frame's full length; data: the captured prefix (a
	// smaller orig_len is taken as data's size). comment: the packet's
	// opt_comment (empty: none); strings longer than an option holds are cut
	// at a UTF-8 character boundary.
	void packet(std::uint32_t ifindex, std::string_view ifname, std::uint16_t linktype, std::uint64_t ts_unix_ns,
		    std::uint32_t orig_len, std::span<const std::uint8_t> data, std::string_view comment);
	// Hands what is buffered to the kernel; throws on a write error, now or
	// earlier in the current file.
	void flush();
	// Flushes and closes the current file; throws as flush() does. Later
	// packets open the next file.
	void close();

	std::uint64_t packets() const { return packets_; } // packets written, in all files
	std::uint64_t files() const { return files_; }	   // files opened so far
	const std::string& current_path() const { return path_; }

private:
	void open_next();
	void remove_old_files();
	void write_block(const std::vector<std::uint8_t>& b);
	[[noreturn]] void fail(int err) const;

	PcapngOptions opt_;
	std::FILE* file_ = nullptr;
	std::string path_;	    // the current (or last) file
	std::uint64_t bytes_ = 0;   // written to the current file
	int error_ = 0;		    // errno of a failed write to the current file
	std::uint64_t in_file_ = 0; // packets in the current file
	std::uint64_t packets_ = 0;
	std::uint64_t files_ = 0;
	// (ifindex, linktype) to the interface id of the current file's IDBs
	std::map<std::pair<std::uint32_t, std::uint16_t>, std::uint32_t> interfaces_;
	std::deque<std::string> kept_;	  // the files on disk, oldest first
	std::vector<std::uint8_t> block_; // the block being built
};

} // namespace tdsbpf
