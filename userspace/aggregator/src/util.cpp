// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Small formatting helpers shared by the record, the timeline and the tests.
#include <arpa/inet.h>

#include <algorithm>
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

// Both addresses and both ports: the one conversation (a port reused by a
// later connection matches too; the record's frames tell them apart).
std::string wireshark_filter(const tdsbpf_flow_key& k)
{
	const char* ip = k.family == 6 ? "ipv6.addr" : "ip.addr";
	std::string f = std::string(ip) + "==" + addr_string(k.client_addr, k.family) + " && " + ip +
			"==" + addr_string(k.server_addr, k.family) + " && tcp.port==" + std::to_string(k.client_port) +
			" && tcp.port==" + std::to_string(k.server_port);
	if (k.vlan_valid)
		f += " && vlan.id==" + std::to_string(k.vlan_id);
	return f;
}

} // namespace tdsbpf
