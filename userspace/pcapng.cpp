// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The pcapng writer (see pcapng.h): blocks are built in memory, then go
// through one buffered stdio stream per file.
#include "pcapng.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <spdlog/spdlog.h>

namespace tdsbpf {

namespace {

constexpr std::uint32_t kSectionHeader = 0x0A0D0D0A;
constexpr std::uint32_t kInterfaceDescription = 0x00000001;
constexpr std::uint32_t kEnhancedPacket = 0x00000006;
constexpr std::uint32_t kByteOrderMagic = 0x1A2B3C4D;

constexpr std::uint16_t kOptEndOfOpt = 0;
constexpr std::uint16_t kOptComment = 1;
constexpr std::uint16_t kShbUserAppl = 4;
constexpr std::uint16_t kIfName = 2;
constexpr std::uint16_t kIfTsresol = 9;
// if_tsresol: the exponent of 10 of the time unit, here 10^-9 s
constexpr std::uint8_t kNanoseconds = 9;

// An option's length is 16 bits.
constexpr std::size_t kMaxOption = 0xFFFF;
// Wireshark refuses packets longer than this (WTAP_MAX_PACKET_SIZE_STANDARD):
// a longer one is kept cut, not written whole into a file nobody can read.
constexpr std::size_t kMaxCaptured = 262144;
constexpr std::size_t kStreamBuffer = 64 * 1024;

std::size_t pad4(std::size_t n)
{
	return (4 - n % 4) % 4;
}

template <typename T> void put(std::vector<std::uint8_t>& b, T v)
{
	std::uint8_t raw[sizeof v];
	std::memcpy(raw, &v, sizeof v);
	b.insert(b.end(), raw, raw + sizeof v);
}

void put_bytes(std::vector<std::uint8_t>& b, const void* p, std::size_t n)
{
	const auto* u = static_cast<const std::uint8_t*>(p);
	b.insert(b.end(), u, u + n);
	b.insert(b.end(), pad4(n), 0);
}

// Starts a block: its type, and a total length set by end_block.
void begin_block(std::vector<std::uint8_t>& b, std::uint32_t type)
{
	b.clear();
	put(b, type);
	put<std::uint32_t>(b, 0);
}

// The total length is at both ends, so readers can walk the file backwards.
void end_block(std::vector<std::uint8_t>& b)
{
	b.insert(b.end(), pad4(b.size()), 0);
	auto total = static_cast<std::uint32_t>(b.size() + 4);
	put(b, total);
	std::memcpy(b.data() + 4, &total, sizeof total);
}

void option(std::vector<std::uint8_t>& b, std::uint16_t code, const void* value, std::size_t len)
{
	put(b, code);
	put(b, static_cast<std::uint16_t>(len));
	put_bytes(b, value, len);
}

// String options are UTF-8 without a terminating NUL; one too long for an
// option is cut before the character that would not fit.
void string_option(std::vector<std::uint8_t>& b, std::uint16_t code, std::string_view s)
{
	std::size_t n = s.size();
	if (n > kMaxOption) {
		n = kMaxOption;
		while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80)
			n--;
	}
	option(b, code, s.data(), n);
}

void end_options(std::vector<std::uint8_t>& b)
{
	put(b, kOptEndOfOpt);
	put<std::uint16_t>(b, 0);
}

} // namespace

PcapngWriter::PcapngWriter(PcapngOptions options) : opt_(std::move(options))
{
	path_ = opt_.path;
	open_next();
}

PcapngWriter::~PcapngWriter()
{
	if (file_)
		std::fclose(file_);
}

void PcapngWriter::fail(int err) const
{
	throw std::runtime_error("cannot write the packet capture to " + path_ + ": " + std::strerror(err));
}

void PcapngWriter::write_block(const std::vector<std::uint8_t>& b)
{
	if (std::fwrite(b.data(), 1, b.size(), file_) != b.size()) {
		error_ = errno;
		fail(error_);
	}
	bytes_ += b.size();
}

void PcapngWriter::open_next()
{
	if (files_ == 0) {
		path_ = opt_.path;
	} else {
		std::filesystem::path first(opt_.path);
		path_ = (first.parent_path() /
			 (first.stem().string() + "." + std::to_string(files_) + first.extension().string()))
				.string();
	}
	// open(2) rather than fopen: the mode (captures hold query text), no
	// leak into the children the tracer starts, and no symbolic link
	// followed (a link in a shared directory would have root truncate
	// whatever it points at). A file that was there keeps no wider mode.
	int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		fail(errno);
	if (::fchmod(fd, 0640) != 0) {
		int err = errno;
		::close(fd);
		fail(err);
	}
	file_ = ::fdopen(fd, "wb");
	if (!file_) {
		int err = errno;
		::close(fd);
		fail(err);
	}
	std::setvbuf(file_, nullptr, _IOFBF, kStreamBuffer);
	error_ = 0;
	files_++;
	bytes_ = 0;
	in_file_ = 0;
	interfaces_.clear();
	kept_.push_back(path_);

	// (not in block_: a rotation opens the file while a packet waits there)
	std::vector<std::uint8_t> shb;
	begin_block(shb, kSectionHeader);
	put(shb, kByteOrderMagic);
	put<std::uint16_t>(shb, 1); // version 1.0
	put<std::uint16_t>(shb, 0);
	put<std::int64_t>(shb, -1); // section length: not known while writing
	if (!opt_.application.empty()) {
		string_option(shb, kShbUserAppl, opt_.application);
		end_options(shb);
	}
	end_block(shb);
	write_block(shb);

	remove_old_files();
}

void PcapngWriter::remove_old_files()
{
	while (opt_.keep_files && kept_.size() > opt_.keep_files) {
		const std::string& old = kept_.front();
		// Someone else may have moved it away already: that is fine.
		if (::unlink(old.c_str()) != 0 && errno != ENOENT)
			spdlog::warn("cannot remove the old packet capture {}: {}", old, std::strerror(errno));
		kept_.pop_front();
	}
}

void PcapngWriter::packet(std::uint32_t ifindex, std::string_view ifname, std::uint16_t linktype,
			  std::uint64_t ts_unix_ns, std::uint32_t orig_len, std::span<const std::uint8_t> data,
			  std::string_view comment)
{
	std::size_t caplen = data.size();
	if (opt_.snaplen && caplen > opt_.snaplen)
		caplen = opt_.snaplen;
	if (caplen > kMaxCaptured)
		caplen = kMaxCaptured;
	if (orig_len < caplen)
		orig_len = static_cast<std::uint32_t>(caplen);

	// The interface description this packet would need in a file that has
	// not met the interface yet: its size counts for rotation.
	const auto key = std::make_pair(ifindex, linktype);
	std::vector<std::uint8_t> idb;
	begin_block(idb, kInterfaceDescription);
	put(idb, linktype);
	put<std::uint16_t>(idb, 0);
	put(idb, opt_.snaplen);
	if (!ifname.empty())
		string_option(idb, kIfName, ifname);
	option(idb, kIfTsresol, &kNanoseconds, 1);
	end_options(idb);
	end_block(idb);

	// The interface id (offset 8) is set once the file is known.
	begin_block(block_, kEnhancedPacket);
	put<std::uint32_t>(block_, 0);
	put(block_, static_cast<std::uint32_t>(ts_unix_ns >> 32));
	put(block_, static_cast<std::uint32_t>(ts_unix_ns));
	put(block_, static_cast<std::uint32_t>(caplen));
	put(block_, orig_len);
	put_bytes(block_, data.data(), caplen);
	if (!comment.empty()) {
		string_option(block_, kOptComment, comment);
		end_options(block_);
	}
	end_block(block_);

	if (file_ && opt_.rotate_bytes && in_file_ > 0) {
		std::uint64_t need = block_.size() + (interfaces_.count(key) ? 0 : idb.size());
		if (bytes_ + need > opt_.rotate_bytes)
			close();
	}
	// After a rotation, or after close(), or when the next file could not
	// be opened before.
	if (!file_)
		open_next();

	auto known = interfaces_.find(key);
	std::uint32_t id;
	if (known != interfaces_.end()) {
		id = known->second;
	} else {
		id = static_cast<std::uint32_t>(interfaces_.size());
		write_block(idb);
		interfaces_.emplace(key, id);
	}
	std::memcpy(block_.data() + 8, &id, sizeof id);
	write_block(block_);
	in_file_++;
	packets_++;
}

void PcapngWriter::flush()
{
	if (!file_)
		return;
	if (std::fflush(file_) != 0)
		fail(errno);
	// stdio drops what it could not write: the file stays short of it
	if (std::ferror(file_))
		fail(error_ ? error_ : EIO);
}

void PcapngWriter::close()
{
	if (!file_)
		return;
	std::FILE* f = file_;
	file_ = nullptr;
	int err = std::fflush(f) != 0 ? errno : std::ferror(f) ? (error_ ? error_ : EIO) : 0;
	if (err) {
		std::fclose(f);
		fail(err);
	}
	if (std::fclose(f) != 0)
		fail(errno);
}

} // namespace tdsbpf
