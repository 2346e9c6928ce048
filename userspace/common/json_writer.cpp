// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "json_writer.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace tdsbpf {

void JsonBuffer::grow(size_t n)
{
	size_t cap = std::max<size_t>({cap_ * 2, len_ + n, 4096});
	auto b = std::make_unique<char[]>(cap);
	if (len_)
		std::memcpy(b.get(), buf_.get(), len_);
	buf_ = std::move(b);
	cap_ = cap;
}

JsonWriter& JsonWriter::escaped(std::string_view s)
{
	if (comma_)
		out_.put(',');
	out_.put('"');
	escape(out_, s);
	out_.put('"');
	comma_ = true;
	return *this;
}

template <typename Int> JsonWriter& JsonWriter::integer(Int v)
{
	if (comma_)
		out_.put(',');
	char* p = out_.reserve(24);
	out_.advance(static_cast<size_t>(std::to_chars(p, p + 24, v).ptr - p));
	comma_ = true;
	return *this;
}

JsonWriter& JsonWriter::value(uint64_t v)
{
	return integer(v);
}

JsonWriter& JsonWriter::value(int64_t v)
{
	return integer(v);
}

JsonWriter& JsonWriter::value(double v)
{
	if (!std::isfinite(v))
		return null();
	if (comma_)
		out_.put(',');
	char buf[352];
	auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
	out_.put(buf, static_cast<size_t>(r.ptr - buf));
	comma_ = true;
	return *this;
}

JsonWriter& JsonWriter::value(Millis v)
{
	if (comma_)
		out_.put(',');
	uint64_t us = v.ns / 1000;
	char* p = out_.reserve(32);
	char* e = std::to_chars(p, p + 24, us / 1000).ptr;
	unsigned frac = static_cast<unsigned>(us % 1000);
	if (frac) {
		e[0] = '.';
		e[1] = static_cast<char>('0' + frac / 100);
		e[2] = static_cast<char>('0' + frac / 10 % 10);
		e[3] = static_cast<char>('0' + frac % 10);
		e += 4;
		while (e[-1] == '0')
			e--;
	}
	out_.advance(static_cast<size_t>(e - p));
	comma_ = true;
	return *this;
}

namespace {

// Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF), or 0.
size_t utf8_sequence(const unsigned char* p, size_t n)
{
	unsigned char c = p[0];
	if (c >= 0xC2 && c <= 0xDF)
		return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
			return 0;
		if (c == 0xE0 && p[1] < 0xA0)
			return 0; // overlong
		if (c == 0xED && p[1] >= 0xA0)
			return 0; // surrogate
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
			return 0;
		if (c == 0xF0 && p[1] < 0x90)
			return 0; // overlong
		if (c == 0xF4 && p[1] >= 0x90)
			return 0; // above U+10FFFF
		return 4;
	}
	return 0;
}

void append(JsonBuffer& out, const char* p, size_t n)
{
	out.put(p, n);
}

void append(std::string& out, const char* p, size_t n)
{
	out.append(p, n);
}

constexpr const auto& kPlain = JsonWriter::kPlain;

template <typename Out> void escape_into(Out& out, std::string_view s)
{
	static const char hex[] = "0123456789abcdef";
	const auto* p = reinterpret_cast<const unsigned char*>(s.data());
	size_t n = s.size();
	size_t i = 0;
	while (i < n) {
		// a run of plain ASCII goes in one append; eight bytes at a time
		// while none of them is a control byte, '"', '\\' or above 0x7F
		size_t j = i;
#if defined(__SSE2__)
		// sixteen at a time: a signed compare flags both the control bytes
		// and those above 0x7F
		const __m128i space = _mm_set1_epi8(0x20), dq = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\');
		while (j + 16 <= n) {
			__m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + j));
			__m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, space),
						   _mm_or_si128(_mm_cmpeq_epi8(v, dq), _mm_cmpeq_epi8(v, bs)));
			int mask = _mm_movemask_epi8(bad);
			if (mask) {
				j += static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
				break;
			}
			j += 16;
		}
#endif
		constexpr uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
		while (j + 8 <= n) {
			uint64_t w;
			std::memcpy(&w, p + j, 8);
			uint64_t quote = w ^ (ones * '"'), bslash = w ^ (ones * '\\');
			uint64_t bad =
				((w - ones * 0x20) & ~w) | w | ((quote - ones) & ~quote) | ((bslash - ones) & ~bslash);
			if (bad & highs)
				break;
			j += 8;
		}
		while (j < n && kPlain[p[j]])
			j++;
		if (j > i) {
			append(out, s.data() + i, j - i);
			i = j;
			if (i == n)
				break;
		}
		unsigned char c = p[i];
		if (c < 0x80) {
			switch (c) {
			case '"': append(out, "\\\"", 2); break;
			case '\\': append(out, "\\\\", 2); break;
			case '\n': append(out, "\\n", 2); break;
			case '\r': append(out, "\\r", 2); break;
			case '\t': append(out, "\\t", 2); break;
			case '\b': append(out, "\\b", 2); break;
			case '\f': append(out, "\\f", 2); break;
			default: {
				char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
				append(out, esc, 6);
			}
			}
			i++;
			continue;
		}
		size_t len = utf8_sequence(p + i, n - i);
		if (len) {
			append(out, s.data() + i, len);
			i += len;
		} else {
			append(out, "\xEF\xBF\xBD", 3); // U+FFFD for a byte that starts no valid sequence
			i++;
		}
	}
}

} // namespace

void JsonWriter::escape(JsonBuffer& out, std::string_view s)
{
	escape_into(out, s);
}

void JsonWriter::escape(std::string& out, std::string_view s)
{
	escape_into(out, s);
}

} // namespace tdsbpf
