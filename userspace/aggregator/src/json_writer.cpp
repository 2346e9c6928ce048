#include "aggregator/json_writer.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstring>

namespace tdsbpf {

JsonWriter& JsonWriter::open(char c)
{
	separate();
	out_ += c;
	comma_ = false;
	return *this;
}

JsonWriter& JsonWriter::close(char c)
{
	out_ += c;
	comma_ = true;
	return *this;
}

JsonWriter& JsonWriter::key(std::string_view k)
{
	separate();
	out_ += '"';
	out_ += k;
	out_ += "\":";
	comma_ = false;
	return *this;
}

JsonWriter& JsonWriter::value(std::string_view s)
{
	separate();
	out_ += '"';
	escape(out_, s);
	out_ += '"';
	comma_ = true;
	return *this;
}

JsonWriter& JsonWriter::value(bool b)
{
	separate();
	out_ += b ? "true" : "false";
	comma_ = true;
	return *this;
}

JsonWriter& JsonWriter::value(uint64_t v)
{
	separate();
	char buf[24];
	auto r = std::to_chars(buf, buf + sizeof(buf), v);
	out_.append(buf, r.ptr);
	comma_ = true;
	return *this;
}

JsonWriter& JsonWriter::value(int64_t v)
{
	separate();
	char buf[24];
	auto r = std::to_chars(buf, buf + sizeof(buf), v);
	out_.append(buf, r.ptr);
	comma_ = true;
	return *this;
}

JsonWriter& JsonWriter::value(double v)
{
	if (!std::isfinite(v))
		return null();
	separate();
	char buf[352];
	auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
	out_.append(buf, r.ptr);
	comma_ = true;
	return *this;
}

JsonWriter& JsonWriter::value(Millis v)
{
	separate();
	uint64_t us = v.ns / 1000;
	char buf[32];
	auto r = std::to_chars(buf, buf + sizeof(buf), us / 1000);
	out_.append(buf, r.ptr);
	unsigned frac = static_cast<unsigned>(us % 1000);
	if (frac) {
		char f[4] = {'.', static_cast<char>('0' + frac / 100), static_cast<char>('0' + frac / 10 % 10),
			     static_cast<char>('0' + frac % 10)};
		size_t n = 4;
		while (f[n - 1] == '0')
			n--;
		out_.append(f, n);
	}
	comma_ = true;
	return *this;
}

JsonWriter& JsonWriter::null()
{
	separate();
	out_ += "null";
	comma_ = true;
	return *this;
}

JsonWriter& JsonWriter::raw(std::string_view json)
{
	separate();
	out_ += json;
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

} // namespace

// 1 for the bytes that go into a JSON string as they are.
constexpr auto kPlain = [] {
	std::array<uint8_t, 256> t{};
	for (int c = 0x20; c < 0x80; c++)
		t[static_cast<size_t>(c)] = c != '"' && c != '\\';
	return t;
}();

void JsonWriter::escape(std::string& out, std::string_view s)
{
	static const char hex[] = "0123456789abcdef";
	const auto* p = reinterpret_cast<const unsigned char*>(s.data());
	size_t n = s.size();
	size_t i = 0;
	while (i < n) {
		// a run of plain ASCII goes in one append
		size_t j = i;
		while (j < n && kPlain[p[j]])
			j++;
		if (j > i) {
			out.append(s.data() + i, j - i);
			i = j;
			if (i == n)
				break;
		}
		unsigned char c = p[i];
		if (c < 0x80) {
			switch (c) {
			case '"': out += "\\\""; break;
			case '\\': out += "\\\\"; break;
			case '\n': out += "\\n"; break;
			case '\r': out += "\\r"; break;
			case '\t': out += "\\t"; break;
			case '\b': out += "\\b"; break;
			case '\f': out += "\\f"; break;
			default: {
				char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
				out.append(esc, 6);
			}
			}
			i++;
			continue;
		}
		size_t len = utf8_sequence(p + i, n - i);
		if (len) {
			out.append(s.data() + i, len);
			i += len;
		} else {
			out += "\xEF\xBF\xBD"; // U+FFFD for a byte that starts no valid sequence
			i++;
		}
	}
}

} // namespace tdsbpf
