// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Bounds-checked byte reading and appending for the TDS, SMP and NTLM codecs.
// TDS mixes byte orders (packet header big-endian, almost everything else
// little-endian), so every accessor names its order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tdslab {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

// Thrown when a peer's bytes do not fit the structure being decoded.
// Callers close the connection that sent them; nothing else depends on it.
class WireError : public std::runtime_error {
public:
	using std::runtime_error::runtime_error;
};

// Reads fields from a fixed buffer; every read checks the remaining length.
class ByteReader {
public:
	explicit ByteReader(ByteView data) : data_(data) {}

	std::size_t remaining() const { return data_.size() - pos_; }
	std::size_t position() const { return pos_; }
	void seek(std::size_t pos);
	void skip(std::size_t n);

	std::uint8_t u8();
	std::uint16_t u16le();
	std::uint16_t u16be();
	std::uint32_t u32le();
	std::uint32_t u32be();
	std::uint64_t u64le();
	ByteView bytes(std::size_t n);
	// UTF-16LE text of `chars` code units, narrowed to UTF-8.
	std::string utf16(std::size_t chars);
	// B_VARCHAR: u8 length in characters, then UTF-16LE.
	std::string b_varchar() { return utf16(u8()); }
	// US_VARCHAR: u16 length in characters, then UTF-16LE.
	std::string us_varchar() { return utf16(u16le()); }

private:
	void need(std::size_t n) const;
	ByteView data_;
	std::size_t pos_ = 0;
};

// Appends fields to a growing buffer.
class ByteWriter {
public:
	Bytes& buffer() { return buf_; }
	Bytes take() { return std::move(buf_); }
	std::size_t size() const { return buf_.size(); }

	void u8(std::uint8_t v) { buf_.push_back(v); }
	void u16le(std::uint16_t v);
	void u16be(std::uint16_t v);
	void u32le(std::uint32_t v);
	void u32be(std::uint32_t v);
	void u64le(std::uint64_t v);
	void bytes(ByteView v) { buf_.insert(buf_.end(), v.begin(), v.end()); }
	void bytes(std::string_view v) { buf_.insert(buf_.end(), v.begin(), v.end()); }
	void zeros(std::size_t n) { buf_.insert(buf_.end(), n, 0); }
	// UTF-8 text as UTF-16LE code units, no length prefix.
	void utf16(std::string_view text);
	void b_varchar(std::string_view text);
	void us_varchar(std::string_view text);
	// Overwrites a little-endian u16/u32 at `pos` (for lengths known later).
	void patch_u16le(std::size_t pos, std::uint16_t v);
	void patch_u16be(std::size_t pos, std::uint16_t v);
	void patch_u32le(std::size_t pos, std::uint32_t v);

private:
	Bytes buf_;
};

// Received bytes waiting to be cut into frames (TDS packets, SMP frames).
// Consumed bytes are dropped in batches, so cutting many small frames out of
// one large read stays linear.
class ByteQueue {
public:
	void append(ByteView data) { buf_.insert(buf_.end(), data.begin(), data.end()); }
	std::size_t size() const { return buf_.size() - pos_; }
	ByteView view() const { return ByteView(buf_).subspan(pos_); }
	void consume(std::size_t n);
	Bytes take_all();

private:
	Bytes buf_;
	std::size_t pos_ = 0;
};

// UTF-8 <-> UTF-16LE conversions; invalid input is replaced, never rejected,
// because names from clients only feed log lines and fault selection.
std::u16string utf8_to_utf16(std::string_view text);
std::string utf16le_to_utf8(ByteView data);

std::string hex_dump(ByteView data, std::size_t max_bytes = 64);

} // namespace tdslab
