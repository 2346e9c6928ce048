// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Small formatting helpers shared by the record, the timeline and the tests.
#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "connection.h"

namespace tdsbpf {


// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm), so
// that a record's times need no gmtime_r call and no locale.
static void civil_from_days(int64_t z, int& y, unsigned& m, unsigned& d)
{
	z += 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const unsigned doe = static_cast<unsigned>(z - era * 146097);
	const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	const unsigned mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	y = static_cast<int>(static_cast<int64_t>(yoe) + era * 400 + (m <= 2));
}

static char* put_digits(char* p, unsigned v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = static_cast<char>('0' + v % 10);
		v /= 10;
	}
	return p + n;
}

size_t iso_time(char* buf, uint64_t ns)
{
	uint64_t secs = ns / 1000000000ull;
	unsigned us = static_cast<unsigned>((ns % 1000000000ull) / 1000);
	// the text up to the second of the last call ("2026-12-01T21:46:33."):
	// a record's times mostly share it
	thread_local uint64_t last_secs = ~0ull;
	thread_local char prefix[20];
	if (secs != last_secs) {
		int y;
		unsigned mo, d;
		civil_from_days(static_cast<int64_t>(secs / 86400), y, mo, d);
		char* q = put_digits(prefix, static_cast<unsigned>(y), 4);
		*q++ = '-';
		q = put_digits(q, mo, 2);
		*q++ = '-';
		q = put_digits(q, d, 2);
		*q++ = 'T';
		unsigned sod = static_cast<unsigned>(secs % 86400);
		q = put_digits(q, sod / 3600, 2);
		*q++ = ':';
		q = put_digits(q, sod / 60 % 60, 2);
		*q++ = ':';
		q = put_digits(q, sod % 60, 2);
		*q = '.';
		last_secs = secs;
	}
	std::memcpy(buf, prefix, 20);
	char* p = put_digits(buf + 20, us, 6);
	*p++ = 'Z';
	return static_cast<size_t>(p - buf);
}

namespace {

// Appends to a fixed buffer, dropping what does not fit (as snprintf).
struct Out {
	char* p;
	size_t room; // bytes left for text, the terminator excluded
	size_t n = 0;
	void put(const char* s, size_t len)
	{
		len = std::min(len, room - n);
		std::memcpy(p + n, s, len);
		n += len;
	}
	template <typename T> void number(T v)
	{
		char b[24];
		put(b, static_cast<size_t>(std::to_chars(b, b + sizeof(b), v).ptr - b));
	}
};

} // namespace

size_t vformat_to(char* buf, size_t cap, const char* f, va_list ap)
{
	if (cap == 0)
		return 0;
	va_list again;
	va_copy(again, ap);
	Out o{buf, cap - 1};
	for (const char* p = f; *p;) {
		const char* pct = std::strchr(p, '%');
		if (!pct) {
			o.put(p, std::strlen(p));
			break;
		}
		o.put(p, static_cast<size_t>(pct - p));
		const char* c = pct + 1;
		if (c[0] == '%') {
			o.put("%", 1);
		} else if (c[0] == 's') {
			const char* s = va_arg(ap, const char*);
			if (!s)
				s = "(null)";
			o.put(s, std::strlen(s));
		} else if (c[0] == 'u') {
			o.number(va_arg(ap, unsigned));
		} else if (c[0] == 'd') {
			o.number(va_arg(ap, int));
		} else if (c[0] == 'l' && c[1] == 'l' && c[2] == 'u') {
			o.number(va_arg(ap, unsigned long long));
			c += 2;
		} else if (c[0] == 'z' && c[1] == 'u') {
			o.number(va_arg(ap, size_t));
			c += 1;
		} else if (c[0] == '.' && c[1] >= '0' && c[1] <= '9' && c[2] == 'f') {
			// to_chars with a precision rounds as printf does
			char b[352];
			auto r = std::to_chars(b, b + sizeof(b), va_arg(ap, double), std::chars_format::fixed,
					       c[1] - '0');
			o.put(b, static_cast<size_t>(r.ptr - b));
			c += 2;
		} else {
			int n = std::vsnprintf(buf, cap, f, again);
			va_end(again);
			return n < 0 ? 0 : std::min(static_cast<size_t>(n), cap - 1);
		}
		p = c + 1;
	}
	va_end(again);
	buf[o.n] = 0;
	return o.n;
}

size_t format_to(char* buf, size_t cap, const char* f, ...)
{
	va_list ap;
	va_start(ap, f);
	size_t n = vformat_to(buf, cap, f, ap);
	va_end(ap);
	return n;
}

std::string iso_time(uint64_t ns)
{
	char buf[32];
	return std::string(buf, iso_time(buf, ns));
}

// Milliseconds with microsecond precision.
double ms(uint64_t ns)
{
	return static_cast<double>(ns / 1000) / 1000.0;
}

// Both addresses and both ports: the one conversation (a port reused by a
// later connection matches too; the record's frames tell them apart).
size_t wireshark_filter(char* buf, const tdsbpf_flow_key& k)
{
	std::string_view ip = k.family == 6 ? "ipv6.addr==" : "ip.addr==";
	char* p = buf;
	auto put = [&p](std::string_view s) {
		std::memcpy(p, s.data(), s.size());
		p += s.size();
	};
	put(ip);
	p += addr_chars(p, k.client_addr, k.family);
	put(" && ");
	put(ip);
	p += addr_chars(p, k.server_addr, k.family);
	put(" && tcp.port==");
	p = std::to_chars(p, p + 8, k.client_port).ptr;
	put(" && tcp.port==");
	p = std::to_chars(p, p + 8, k.server_port).ptr;
	if (k.vlan_valid) {
		put(" && vlan.id==");
		p = std::to_chars(p, p + 8, k.vlan_id).ptr;
	}
	return static_cast<size_t>(p - buf);
}

std::string wireshark_filter(const tdsbpf_flow_key& k)
{
	char buf[kWiresharkFilterChars];
	return std::string(buf, wireshark_filter(buf, k));
}

} // namespace tdsbpf
