// Small formatting helpers shared by the record, the timeline and the tests.
#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "connection.h"

namespace tdsbpf {

std::string addr_string(const uint8_t* addr, uint8_t family)
{
	char buf[INET6_ADDRSTRLEN] = {0};
	if (family == 6)
		inet_ntop(AF_INET6, addr, buf, sizeof(buf));
	else
		inet_ntop(AF_INET, addr, buf, sizeof(buf));
	return buf;
}

std::string endpoint_string(const uint8_t* addr, uint8_t family, uint16_t port)
{
	std::string a = addr_string(addr, family);
	if (family == 6)
		return "[" + a + "]:" + std::to_string(port);
	return a + ":" + std::to_string(port);
}

std::string iso_time(uint64_t ns)
{
	time_t secs = static_cast<time_t>(ns / 1000000000ull);
	unsigned long us = static_cast<unsigned long>((ns % 1000000000ull) / 1000);
	struct tm tm {};
	gmtime_r(&secs, &tm);
	char buf[64];
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06luZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, us);
	return buf;
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

static bool enc_on(uint8_t e)
{
	e &= 0x7f;
	return e == TDS_ENCRYPT_ON || e == TDS_ENCRYPT_REQ;
}

std::string encryption_mode(const Connection& c)
{
	if (c.strict)
		return "strict";
	const PreloginInfo& cl = c.pre[TDSBPF_DIR_C2S];
	const PreloginInfo& sv = c.pre[TDSBPF_DIR_S2C];
	if (c.tls_app_data_s2c)
		return "full";
	if (cl.seen && sv.seen && cl.encryption != TDSBPF_VALUE_ABSENT && sv.encryption != TDSBPF_VALUE_ABSENT) {
		uint8_t ce = cl.encryption & 0x7f, se = sv.encryption & 0x7f;
		if (ce == TDS_ENCRYPT_NOT_SUP || se == TDS_ENCRYPT_NOT_SUP)
			return c.tls_seen ? "login_only" : "off";
		if (enc_on(ce) || enc_on(se))
			return "full";
		return "login_only";
	}
	if (c.login7_plain)
		return "off";
	if (c.login_record_seen && c.plaintext_after_login)
		return "login_only";
	return "unknown";
}

// Full or strict encryption: nothing after the TLS handshake is readable.
bool opaque(const Connection& c)
{
	std::string m = encryption_mode(c);
	return m == "full" || m == "strict";
}

uint64_t retrans(const Connection& c, int dir)
{
	return std::max<uint64_t>(c.retrans_events[dir], c.stats_seen ? c.stats.retrans[dir] : 0);
}

uint64_t zero_windows(const Connection& c, int dir)
{
	return std::max<uint64_t>(c.zero_window_events[dir], c.stats_seen ? c.stats.zero_windows[dir] : 0);
}

uint64_t keepalive_count(const Connection& c, int dir)
{
	return std::max<uint64_t>(c.keepalives[dir], c.stats_seen ? c.stats.keepalives[dir] : 0);
}

void LatencyStats::add(uint64_t ns)
{
	if (count == 0 || ns < min_ns)
		min_ns = ns;
	if (ns > max_ns)
		max_ns = ns;
	count++;
	sum_ns += ns;
	if (samples_us.size() < kMaxSamples) {
		uint64_t us = ns / 1000;
		samples_us.push_back(us > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(us));
	}
}

// Nearest-rank percentile of the kept samples; min and max stay exact.
uint64_t LatencyStats::percentile_ns(double p) const
{
	if (samples_us.empty())
		return 0;
	std::vector<uint32_t> v = samples_us;
	std::sort(v.begin(), v.end());
	size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size()) + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > v.size())
		rank = v.size();
	uint64_t ns = static_cast<uint64_t>(v[rank - 1]) * 1000;
	return std::clamp(ns, min_ns, max_ns);
}

} // namespace tdsbpf
