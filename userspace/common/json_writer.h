// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// A streaming JSON writer: appends to a growable buffer, no document tree,
// no allocation once the buffer has grown to a record's size. Strings are
// escaped per RFC 8259 and made valid UTF-8 (each byte of an invalid
// sequence becomes U+FFFD), so text from the wire is safe in any record.
// The small calls are inline: a member with a literal key is a few stores.
#ifndef TDSBPF_AGGREGATOR_JSON_WRITER_H
#define TDSBPF_AGGREGATOR_JSON_WRITER_H

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace tdsbpf {

// Nanoseconds written as milliseconds with microsecond precision
// ("3.175"), without a floating-point conversion.
struct Millis {
	uint64_t ns;
};

// A growable byte buffer that is reused from record to record.
class JsonBuffer {
public:
	JsonBuffer() = default;
	JsonBuffer(const JsonBuffer&) = delete;
	JsonBuffer& operator=(const JsonBuffer&) = delete;

	void clear() { len_ = 0; }
	size_t size() const { return len_; }
	const char* data() const { return buf_.get(); }
	std::string_view view() const { return {buf_.get(), len_}; }

	// Room for n more bytes; returns where they go (commit them with advance).
	char* reserve(size_t n)
	{
		if (len_ + n > cap_)
			grow(n);
		return buf_.get() + len_;
	}
	void advance(size_t n) { len_ += n; }
	void put(const char* s, size_t n)
	{
		std::memcpy(reserve(n), s, n);
		len_ += n;
	}
	void put(std::string_view s) { put(s.data(), s.size()); }
	void put(char c)
	{
		*reserve(1) = c;
		len_++;
	}

private:
	void grow(size_t n);
	std::unique_ptr<char[]> buf_;
	size_t len_ = 0, cap_ = 0;
};

class JsonWriter {
public:
	explicit JsonWriter(JsonBuffer& out) : out_(out) {}

	JsonWriter& begin_object() { return open('{'); }
	JsonWriter& end_object() { return close('}'); }
	JsonWriter& begin_array() { return open('['); }
	JsonWriter& end_array() { return close(']'); }
	// The key of the next value (an object member). Keys are the program's
	// own names: written as they are, not escaped.
	JsonWriter& key(std::string_view k)
	{
		char* p = out_.reserve(k.size() + 4);
		size_t n = 0;
		if (comma_)
			p[n++] = ',';
		p[n++] = '"';
		std::memcpy(p + n, k.data(), k.size());
		n += k.size();
		p[n++] = '"';
		p[n++] = ':';
		out_.advance(n);
		comma_ = false;
		return *this;
	}

	// A string value. Short ones of plain ASCII (most of a record: names,
	// addresses, enums) take one reservation and one copy.
	JsonWriter& value(std::string_view s)
	{
		if (s.size() > kShort || !plain(s))
			return escaped(s);
		char* p = out_.reserve(kShort + 3);
		size_t n = 0;
		if (comma_)
			p[n++] = ',';
		p[n++] = '"';
		if (!s.empty())
			std::memcpy(p + n, s.data(), s.size());
		n += s.size();
		p[n++] = '"';
		out_.advance(n);
		comma_ = true;
		return *this;
	}
	JsonWriter& value(const char* s) { return value(std::string_view(s)); }
	JsonWriter& value(bool b) { return literal(b ? std::string_view("true") : std::string_view("false")); }
	JsonWriter& value(uint64_t v);
	JsonWriter& value(uint32_t v) { return value(static_cast<uint64_t>(v)); }
	JsonWriter& value(uint16_t v) { return value(static_cast<uint64_t>(v)); }
	JsonWriter& value(uint8_t v) { return value(static_cast<uint64_t>(v)); }
	JsonWriter& value(int64_t v);
	JsonWriter& value(int v) { return value(static_cast<int64_t>(v)); }
	// Shortest decimal form that reads back as the same double (no exponent).
	JsonWriter& value(double v);
	JsonWriter& value(Millis v);
	JsonWriter& null() { return literal("null"); }

	template <typename T> JsonWriter& member(std::string_view k, const T& v)
	{
		key(k);
		return value(v);
	}
	JsonWriter& null_member(std::string_view k)
	{
		key(k);
		return null();
	}

	// Appends s as a JSON string's contents (escaped, valid UTF-8).
	static void escape(JsonBuffer& out, std::string_view s);
	static void escape(std::string& out, std::string_view s);

	// 1 for the bytes that go into a JSON string as they are.
	static constexpr std::array<uint8_t, 256> kPlain = [] {
		std::array<uint8_t, 256> t{};
		for (int c = 0x20; c < 0x80; c++)
			t[static_cast<size_t>(c)] = c != '"' && c != '\\';
		return t;
	}();

private:
	static constexpr size_t kShort = 64;
	// No control byte, '"', '\\' or byte above 0x7F: eight bytes at a time
	// (a byte's high bit is set in bad when it is one of those).
	static bool plain(std::string_view s)
	{
		constexpr uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
		const char* p = s.data();
		size_t n = s.size(), i = 0;
		uint64_t bad = 0;
		for (; i + 8 <= n; i += 8) {
			uint64_t w;
			std::memcpy(&w, p + i, 8);
			uint64_t quote = w ^ (ones * '"'), bslash = w ^ (ones * '\\');
			bad |= ((w - ones * 0x20) & ~w) | w | ((quote - ones) & ~quote) | ((bslash - ones) & ~bslash);
		}
		unsigned ok = (bad & highs) == 0;
		for (; i < n; i++)
			ok &= kPlain[static_cast<unsigned char>(p[i])];
		return ok;
	}
	JsonWriter& escaped(std::string_view s);
	template <typename Int> JsonWriter& integer(Int v);
	JsonWriter& open(char c)
	{
		char* p = out_.reserve(2);
		size_t n = 0;
		if (comma_)
			p[n++] = ',';
		p[n++] = c;
		out_.advance(n);
		comma_ = false;
		return *this;
	}
	JsonWriter& close(char c)
	{
		out_.put(c);
		comma_ = true;
		return *this;
	}
	JsonWriter& literal(std::string_view s)
	{
		if (comma_)
			out_.put(',');
		out_.put(s);
		comma_ = true;
		return *this;
	}

	JsonBuffer& out_;
	bool comma_ = false; // a value was written at this level: the next one needs a comma
};

} // namespace tdsbpf

#endif
