// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The C++ companion of events.h (include/tdsbpf/events.hpp).
#include "tdsbpf/events.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>
#include <cstring>


#include "json_writer.h"

namespace tdsbpf {

const char* event_kind_name(uint8_t kind)
{
	switch (kind) {
	case TDSBPF_EV_TCP_SYN: return "tcp_syn";
	case TDSBPF_EV_TCP_SYNACK: return "tcp_synack";
	case TDSBPF_EV_TCP_HANDSHAKE_ACK: return "tcp_handshake_ack";
	case TDSBPF_EV_TCP_FIN: return "tcp_fin";
	case TDSBPF_EV_TCP_RST: return "tcp_rst";
	case TDSBPF_EV_TCP_CLOSE_ACK: return "tcp_close_ack";
	case TDSBPF_EV_TCP_KEEPALIVE: return "tcp_keepalive";
	case TDSBPF_EV_TCP_KEEPALIVE_ACK: return "tcp_keepalive_ack";
	case TDSBPF_EV_TCP_RETRANS: return "tcp_retransmission";
	case TDSBPF_EV_TCP_ZERO_WINDOW: return "tcp_zero_window";
	case TDSBPF_EV_TDS: return "tds";
	case TDSBPF_EV_TLS: return "tls";
	case TDSBPF_EV_SMP: return "smp";
	case TDSBPF_EV_NTLM_AUTH: return "ntlm_authenticate";
	case TDSBPF_EV_FLOW_STATS: return "flow_stats";
	case TDSBPF_EV_TDS_DONE: return "tds_done";
	case TDSBPF_EV_RESYNC: return "resync";
	case TDSBPF_EV_BROWSER: return "browser";
	case TDSBPF_EV_PACKET: return "packet";
	case TDSBPF_EV_EXCERPT: return "excerpt";
	case TDSBPF_EV_WORK: return "work";
	}
	return "unknown";
}

const char* hook_name(uint8_t hook)
{
	switch (hook) {
	case TDSBPF_HOOK_XDP: return "xdp";
	case TDSBPF_HOOK_TC_INGRESS: return "tc_ingress";
	case TDSBPF_HOOK_TC_EGRESS: return "tc_egress";
	case TDSBPF_HOOK_PCAP: return "pcap";
	}
	return "unknown";
}

const char* tds_type_name(uint8_t type)
{
	switch (type) {
	case TDS_SQL_BATCH: return "sql_batch";
	case TDS_PRE7_LOGIN: return "pre7_login";
	case TDS_RPC: return "rpc";
	case TDS_REPLY: return "reply";
	case TDS_ATTENTION: return "attention";
	case TDS_BULK_LOAD: return "bulk_load";
	case TDS_FEDAUTH_TOKEN: return "fedauth_token";
	case TDS_TRANSACTION_MGR: return "transaction_manager";
	case TDS_LOGIN7: return "login7";
	case TDS_SSPI: return "sspi";
	case TDS_PRELOGIN: return "prelogin";
	}
	return "unknown";
}

const char* sspi_kind_name(uint8_t k)
{
	switch (k) {
	case TDSBPF_SSPI_NONE: return "none";
	case TDSBPF_SSPI_NTLM: return "ntlm";
	case TDSBPF_SSPI_SPNEGO: return "spnego";
	case TDSBPF_SSPI_KERBEROS: return "kerberos";
	}
	return "unknown";
}

const char* tds_type_title(uint8_t type, int dir)
{
	switch (type) {
	case TDS_SQL_BATCH: return "SQLBatch";
	case TDS_PRE7_LOGIN: return "Pre7Login";
	case TDS_RPC: return "RPCRequest";
	case TDS_REPLY: return "Response";
	case TDS_ATTENTION: return "Attention";
	case TDS_BULK_LOAD: return "BulkLoad";
	case TDS_FEDAUTH_TOKEN: return "FedAuthToken";
	case TDS_TRANSACTION_MGR: return "TransactionManager";
	case TDS_LOGIN7: return "Login7";
	case TDS_SSPI: return "SSPI";
	case TDS_PRELOGIN: return dir == TDSBPF_DIR_C2S ? "Prelogin" : "Prelogin(server)";
	default: return "Unknown";
	}
}

size_t addr_chars(char* buf, const uint8_t* addr, uint8_t family)
{
	if (family == 6) {
		if (!inet_ntop(AF_INET6, addr, buf, INET6_ADDRSTRLEN))
			return 0;
		return std::strlen(buf);
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
	return static_cast<size_t>(p - buf);
}

size_t endpoint_chars(char* buf, const uint8_t* addr, uint8_t family, uint16_t port)
{
	char* p = buf;
	if (family == 6)
		*p++ = '[';
	p += addr_chars(p, addr, family);
	if (family == 6)
		*p++ = ']';
	*p++ = ':';
	p = std::to_chars(p, buf + kAddrChars, port).ptr;
	return static_cast<size_t>(p - buf);
}

std::string addr_string(const uint8_t* addr, uint8_t family)
{
	char buf[kAddrChars];
	return std::string(buf, addr_chars(buf, addr, family));
}

std::string endpoint_string(const uint8_t* addr, uint8_t family, uint16_t port)
{
	char buf[kAddrChars];
	return std::string(buf, endpoint_chars(buf, addr, family, port));
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
	case 0x07000000: return "7.0"; // as a 7.0 server's LOGINACK writes it ([MS-TDS] 2.2.7.14)
	case 0x71000000: return "7.1";
	case 0x07010000: return "7.1";
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

std::string guid_string(const uint8_t* g)
{
	// GUID bytes on the wire: Data1..3 little-endian, Data4 as is
	char buf[40];
	std::snprintf(buf, sizeof(buf), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", g[3],
		      g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
	return buf;
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

size_t utf16le_to(char* out, const uint8_t* p, size_t len)
{
	char* o = out;
	size_t i = 0;
	// four printable ASCII units at a time (names and messages mostly are):
	// each 16-bit lane below 0x80 and, less 0x20, not negative
	constexpr uint64_t high = 0xFF80FF80FF80FF80ull, ones = 0x0020002000200020ull, signs = 0x8000800080008000ull;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		std::memcpy(&w, p + i, 8);
		if ((w & high) || ((w - ones) & signs))
			break;
		o[0] = static_cast<char>(w);
		o[1] = static_cast<char>(w >> 16);
		o[2] = static_cast<char>(w >> 32);
		o[3] = static_cast<char>(w >> 48);
		o += 4;
	}
	for (; i + 1 < len; i += 2) {
		uint32_t cp = p[i] | (p[i + 1] << 8);
		if (cp >= 0x20 && cp < 0x80) { // the common case
			*o++ = static_cast<char>(cp);
			continue;
		}
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
			*o++ = static_cast<char>(cp);
		} else if (cp < 0x800) {
			*o++ = static_cast<char>(0xC0 | (cp >> 6));
			*o++ = static_cast<char>(0x80 | (cp & 0x3F));
		} else if (cp < 0x10000) {
			*o++ = static_cast<char>(0xE0 | (cp >> 12));
			*o++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
			*o++ = static_cast<char>(0x80 | (cp & 0x3F));
		} else {
			*o++ = static_cast<char>(0xF0 | (cp >> 18));
			*o++ = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
			*o++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
			*o++ = static_cast<char>(0x80 | (cp & 0x3F));
		}
	}
	return static_cast<size_t>(o - out);
}

std::string utf16le_or_oem(const uint8_t* p, size_t len, size_t cap, bool unicode)
{
	std::string out;
	if (len > cap)
		len = cap;
	if (!unicode) {
		out.resize(len);
		for (size_t i = 0; i < len; i++)
			out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? static_cast<char>(p[i]) : '?';
		return out;
	}
	// at most 3 bytes of UTF-8 for each UTF-16 unit (a pair of units: 4)
	out.resize(len / 2 * 3);
	out.resize(utf16le_to(out.data(), p, len));
	return out;
}

std::string ascii_text(const uint8_t* p, size_t len, size_t cap)
{
	if (len > cap)
		len = cap;
	std::string out;
	for (size_t i = 0; i < len && p[i]; i++)
		out += (p[i] >= 0x20 && p[i] < 0x7f) ? static_cast<char>(p[i]) : '?';
	return out;
}

bool is_request_type(uint8_t type)
{
	return type == TDS_SQL_BATCH || type == TDS_RPC || type == TDS_ATTENTION || type == TDS_BULK_LOAD ||
	       type == TDS_TRANSACTION_MGR;
}

void write_endpoints(JsonWriter& w, const tdsbpf_flow_key& k, const char* transport, const char* protocol)
{
	char buf[kAddrChars];
	w.member("client.address", std::string_view(buf, addr_chars(buf, k.client_addr, k.family)));
	w.member("client.port", k.client_port);
	w.member("server.address", std::string_view(buf, addr_chars(buf, k.server_addr, k.family)));
	w.member("server.port", k.server_port);
	w.member("network.type", k.family == 6 ? "ipv6" : "ipv4");
	w.member("network.transport", transport);
	w.member("network.protocol.name", protocol);
}

std::string tls_handshake_name(uint8_t type)
{
	switch (type) {
	case 1: return "Client Hello";
	case 2: return "Server Hello";
	case 4: return "New Session Ticket";
	case 8: return "Encrypted Extensions";
	case 11: return "Certificate";
	case 12: return "Server Key Exchange";
	case 13: return "Certificate Request";
	case 14: return "Server Hello Done";
	case 15: return "Certificate Verify";
	case 16: return "Client Key Exchange";
	case 20: return "Finished";
	default: return "Encrypted Handshake Message";
	}
}

std::vector<std::string> tls_chain_names(const tdsbpf_tls& t)
{
	std::vector<std::string> out;
	unsigned kept = t.chain_n < TDSBPF_TLS_CHAIN ? t.chain_n : TDSBPF_TLS_CHAIN;
	for (unsigned i = 0; i < kept; i++) {
		uint8_t item = t.chain[i];
		if (item == TDSBPF_TLS_ENCRYPTED_HS) {
			out.emplace_back("Encrypted Handshake Message");
		} else if (item & TDSBPF_TLS_RECORD) {
			switch (item & 0x7f) {
			case TLS_CT_CHANGE_CIPHER_SPEC: out.emplace_back("Change Cipher Spec"); break;
			case TLS_CT_ALERT: out.emplace_back("Alert"); break;
			case TLS_CT_APPLICATION_DATA: out.emplace_back("Application Data"); break;
			default: out.emplace_back("Record type " + std::to_string(item & 0x7f)); break;
			}
		} else {
			out.push_back(tls_handshake_name(item));
		}
	}
	if (t.chain_n > kept)
		out.push_back(std::to_string(t.chain_n - kept) + " more");
	if (t.chain_more)
		out.emplace_back("...");
	return out;
}

} // namespace tdsbpf
