// Small formatting helpers shared by the record, the timeline and the tests.
#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "connection.h"

namespace tdsbpf {

std::string addr_string(const uint8_t* addr, uint8_t family)
{
	char buf[INET6_ADDRSTRLEN] = {0};
	if (family == 6) {
		inet_ntop(AF_INET6, addr, buf, sizeof(buf));
		return buf;
	}
	// IPv4 by hand: inet_ntop costs thousands of instructions a call
	char* p = buf;
	for (int i = 0; i < 4; i++) {
		unsigned v = addr[i];
		if (v >= 100)
			*p++ = static_cast<char>('0' + v / 100);
		if (v >= 10)
			*p++ = static_cast<char>('0' + v / 10 % 10);
		*p++ = static_cast<char>('0' + v % 10);
		if (i < 3)
			*p++ = '.';
	}
	return std::string(buf, static_cast<size_t>(p - buf));
}

std::string endpoint_string(const uint8_t* addr, uint8_t family, uint16_t port)
{
	std::string a = addr_string(addr, family);
	if (family == 6)
		return "[" + a + "]:" + std::to_string(port);
	return a + ":" + std::to_string(port);
}

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
	// the date of the last call: a record's times mostly share their day
	thread_local int64_t last_day = -1;
	thread_local char date[11];
	int64_t day = static_cast<int64_t>(secs / 86400);
	if (day != last_day) {
		int y;
		unsigned mo, d;
		civil_from_days(day, y, mo, d);
		char* q = put_digits(date, static_cast<unsigned>(y), 4);
		*q++ = '-';
		q = put_digits(q, mo, 2);
		*q++ = '-';
		q = put_digits(q, d, 2);
		*q = 'T';
		last_day = day;
	}
	unsigned sod = static_cast<unsigned>(secs % 86400);
	char* p = buf;
	std::memcpy(p, date, 11);
	p += 11;
	p = put_digits(p, sod / 3600, 2);
	*p++ = ':';
	p = put_digits(p, sod / 60 % 60, 2);
	*p++ = ':';
	p = put_digits(p, sod % 60, 2);
	*p++ = '.';
	p = put_digits(p, us, 6);
	*p++ = 'Z';
	return static_cast<size_t>(p - buf);
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

std::string tls_version_name(uint16_t v)
{
	switch (v) {
	case 0x0300: return "SSL 3.0";
	case 0x0301: return "1.0";
	case 0x0302: return "1.1";
	case 0x0303: return "1.2";
	case 0x0304: return "1.3";
	default: {
		char buf[16];
		snprintf(buf, sizeof(buf), "0x%04x", v);
		return buf;
	}
	}
}

// 0x74000004 -> "7.4"; 0x730A0003 -> "7.3B" (TDS 7.3 revision B)
std::string tds_version_name(uint32_t v)
{
	switch (v) {
	case 0x70000000: return "7.0";
	case 0x71000000: return "7.1";
	case 0x71000001: return "7.1 Rev 1";
	case 0x72090002: return "7.2";
	case 0x730A0003: return "7.3A";
	case 0x730B0003: return "7.3B";
	case 0x74000004: return "7.4";
	case 0x08000000: return "8.0";
	default: {
		char buf[24];
		snprintf(buf, sizeof(buf), "0x%08x", v);
		return buf;
	}
	}
}

// NTLM names: UTF-16LE (unicode flag) or OEM bytes, printed as UTF-8.
std::string utf16le_or_oem(const uint8_t* p, size_t len, bool unicode)
{
	std::string out;
	if (!unicode) {
		for (size_t i = 0; i < len; i++)
			out += (p[i] >= 0x20 && p[i] < 0x7f) ? static_cast<char>(p[i]) : '?';
		return out;
	}
	for (size_t i = 0; i + 1 < len; i += 2) {
		uint32_t cp = p[i] | (p[i + 1] << 8);
		if (cp >= 0xD800 && cp <= 0xDBFF && i + 3 < len) {
			uint32_t lo = p[i + 2] | (p[i + 3] << 8);
			if (lo >= 0xDC00 && lo <= 0xDFFF) {
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				i += 2;
			} else {
				cp = 0xFFFD;
			}
		} else if (cp >= 0xD800 && cp <= 0xDFFF) {
			cp = 0xFFFD;
		}
		if (cp < 0x20)
			cp = '?';
		if (cp < 0x80) {
			out += static_cast<char>(cp);
		} else if (cp < 0x800) {
			out += static_cast<char>(0xC0 | (cp >> 6));
			out += static_cast<char>(0x80 | (cp & 0x3F));
		} else if (cp < 0x10000) {
			out += static_cast<char>(0xE0 | (cp >> 12));
			out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
			out += static_cast<char>(0x80 | (cp & 0x3F));
		} else {
			out += static_cast<char>(0xF0 | (cp >> 18));
			out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
			out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
			out += static_cast<char>(0x80 | (cp & 0x3F));
		}
	}
	return out;
}

// Network Monitor's form: CWR ECE URG ACK PSH RST SYN FIN, most significant
// bit first, '.' for a clear flag: "...A...F".
std::string tcp_flags_string(uint8_t flags)
{
	static const char letters[] = "CEUAPRSF";
	std::string s(8, '.');
	for (int i = 0; i < 8; i++)
		if (flags & (0x80 >> i))
			s[i] = letters[i];
	return s;
}

bool is_request_type(uint8_t type)
{
	return type == TDS_SQL_BATCH || type == TDS_RPC || type == TDS_ATTENTION || type == TDS_BULK_LOAD ||
	       type == TDS_TRANSACTION_MGR;
}

} // namespace tdsbpf
