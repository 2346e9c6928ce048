// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "byte_io.h"

#include <algorithm>
#include <cstdio>

namespace tdslab {

void ByteReader::need(std::size_t n) const
{
	if (n > remaining()) {
		throw WireError("truncated: need " + std::to_string(n) + " bytes at offset " + std::to_string(pos_) +
				", have " + std::to_string(remaining()));
	}
}

void ByteReader::seek(std::size_t pos)
{
	if (pos > data_.size()) {
		throw WireError("offset " + std::to_string(pos) + " beyond end " + std::to_string(data_.size()));
	}
	pos_ = pos;
}

void ByteReader::skip(std::size_t n)
{
	need(n);
	pos_ += n;
}

std::uint8_t ByteReader::u8()
{
	need(1);
	return data_[pos_++];
}

std::uint16_t ByteReader::u16le()
{
	need(2);
	std::uint16_t v = static_cast<std::uint16_t>(data_[pos_] | (data_[pos_ + 1] << 8));
	pos_ += 2;
	return v;
}

std::uint16_t ByteReader::u16be()
{
	need(2);
	std::uint16_t v = static_cast<std::uint16_t>((data_[pos_] << 8) | data_[pos_ + 1]);
	pos_ += 2;
	return v;
}

std::uint32_t ByteReader::u32le()
{
	need(4);
	std::uint32_t v = 0;
	for (int i = 3; i >= 0; --i)
		v = (v << 8) | data_[pos_ + i];
	pos_ += 4;
	return v;
}

std::uint32_t ByteReader::u32be()
{
	need(4);
	std::uint32_t v = 0;
	for (int i = 0; i < 4; ++i)
		v = (v << 8) | data_[pos_ + i];
	pos_ += 4;
	return v;
}

std::uint64_t ByteReader::u64le()
{
	need(8);
	std::uint64_t v = 0;
	for (int i = 7; i >= 0; --i)
		v = (v << 8) | data_[pos_ + i];
	pos_ += 8;
	return v;
}

ByteView ByteReader::bytes(std::size_t n)
{
	need(n);
	ByteView v = data_.subspan(pos_, n);
	pos_ += n;
	return v;
}

std::string ByteReader::utf16(std::size_t chars)
{
	if (chars > remaining() / 2)
		need(chars * 2);
	return utf16le_to_utf8(bytes(chars * 2));
}

void ByteWriter::u16le(std::uint16_t v)
{
	buf_.push_back(static_cast<std::uint8_t>(v));
	buf_.push_back(static_cast<std::uint8_t>(v >> 8));
}

void ByteWriter::u16be(std::uint16_t v)
{
	buf_.push_back(static_cast<std::uint8_t>(v >> 8));
	buf_.push_back(static_cast<std::uint8_t>(v));
}

void ByteWriter::u32le(std::uint32_t v)
{
	for (int i = 0; i < 4; ++i)
		buf_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

void ByteWriter::u32be(std::uint32_t v)
{
	for (int i = 3; i >= 0; --i)
		buf_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

void ByteWriter::u64le(std::uint64_t v)
{
	for (int i = 0; i < 8; ++i)
		buf_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

void ByteWriter::utf16(std::string_view text)
{
	for (char16_t c : utf8_to_utf16(text))
		u16le(static_cast<std::uint16_t>(c));
}

void ByteWriter::b_varchar(std::string_view text)
{
	std::u16string u = utf8_to_utf16(text);
	if (u.size() > 255)
		u.resize(255);
	u8(static_cast<std::uint8_t>(u.size()));
	for (char16_t c : u)
		u16le(static_cast<std::uint16_t>(c));
}

void ByteWriter::us_varchar(std::string_view text)
{
	std::u16string u = utf8_to_utf16(text);
	if (u.size() > 65535)
		u.resize(65535);
	u16le(static_cast<std::uint16_t>(u.size()));
	for (char16_t c : u)
		u16le(static_cast<std::uint16_t>(c));
}

void ByteWriter::patch_u16le(std::size_t pos, std::uint16_t v)
{
	buf_.at(pos) = static_cast<std::uint8_t>(v);
	buf_.at(pos + 1) = static_cast<std::uint8_t>(v >> 8);
}

void ByteWriter::patch_u16be(std::size_t pos, std::uint16_t v)
{
	buf_.at(pos) = static_cast<std::uint8_t>(v >> 8);
	buf_.at(pos + 1) = static_cast<std::uint8_t>(v);
}

void ByteWriter::patch_u32le(std::size_t pos, std::uint32_t v)
{
	for (int i = 0; i < 4; ++i)
		buf_.at(pos + i) = static_cast<std::uint8_t>(v >> (8 * i));
}

void ByteQueue::consume(std::size_t n)
{
	pos_ += std::min(n, size());
	if (pos_ == buf_.size()) {
		buf_.clear();
		pos_ = 0;
	} else if (pos_ > 65536) {
		buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
		pos_ = 0;
	}
}

Bytes ByteQueue::take_all()
{
	Bytes rest(buf_.begin() + static_cast<std::ptrdiff_t>(pos_), buf_.end());
	buf_.clear();
	pos_ = 0;
	return rest;
}

std::u16string utf8_to_utf16(std::string_view text)
{
	std::u16string out;
	out.reserve(text.size());
	std::size_t i = 0;
	while (i < text.size()) {
		unsigned char c = static_cast<unsigned char>(text[i]);
		char32_t cp = 0xFFFD;
		std::size_t len = 1;
		if (c < 0x80) {
			cp = c;
		} else if ((c >> 5) == 0x6 && i + 1 < text.size()) {
			cp = ((c & 0x1F) << 6) | (text[i + 1] & 0x3F);
			len = 2;
		} else if ((c >> 4) == 0xE && i + 2 < text.size()) {
			cp = ((c & 0x0F) << 12) | ((text[i + 1] & 0x3F) << 6) | (text[i + 2] & 0x3F);
			len = 3;
		} else if ((c >> 3) == 0x1E && i + 3 < text.size()) {
			cp = ((c & 0x07) << 18) | ((text[i + 1] & 0x3F) << 12) | ((text[i + 2] & 0x3F) << 6) |
			     (text[i + 3] & 0x3F);
			len = 4;
		}
		i += len;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			out.push_back(static_cast<char16_t>(0xD800 + (cp >> 10)));
			out.push_back(static_cast<char16_t>(0xDC00 + (cp & 0x3FF)));
		} else {
			out.push_back(static_cast<char16_t>(cp));
		}
	}
	return out;
}

static void append_utf8(std::string& out, char32_t cp)
{
	if (cp < 0x80) {
		out.push_back(static_cast<char>(cp));
	} else if (cp < 0x800) {
		out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
		out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
	} else if (cp < 0x10000) {
		out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
		out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
		out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
	} else {
		out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
		out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
		out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
		out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
	}
}

std::string utf16le_to_utf8(ByteView data)
{
	std::string out;
	out.reserve(data.size() / 2);
	for (std::size_t i = 0; i + 1 < data.size(); i += 2) {
		char32_t unit = static_cast<char32_t>(data[i] | (data[i + 1] << 8));
		if (unit >= 0xD800 && unit < 0xDC00 && i + 3 < data.size()) {
			char32_t low = static_cast<char32_t>(data[i + 2] | (data[i + 3] << 8));
			if (low >= 0xDC00 && low < 0xE000) {
				append_utf8(out, 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00));
				i += 2;
				continue;
			}
		}
		if (unit >= 0xD800 && unit < 0xE000)
			unit = 0xFFFD;
		append_utf8(out, unit);
	}
	return out;
}

std::string hex_dump(ByteView data, std::size_t max_bytes)
{
	std::string out;
	char buf[4];
	for (std::size_t i = 0; i < data.size() && i < max_bytes; ++i) {
		std::snprintf(buf, sizeof buf, "%02x", data[i]);
		if (i)
			out.push_back(' ');
		out += buf;
	}
	if (data.size() > max_bytes)
		out += " ...";
	return out;
}

} // namespace tdslab
