// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The C++ companion of events.h: names, formatting, the flow-key hash and
// bounded decoding of the strings an event carries. Every user-space part
// (the aggregator, --events, the reader, the tests) uses these, so an
// event reads the same wherever it is shown. Implemented in
// userspace/common/events.cpp.
#ifndef TDSBPF_EVENTS_HPP
#define TDSBPF_EVENTS_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "events.h"

namespace tdsbpf {

// Names as the JSON outputs spell them.
const char* event_kind_name(uint8_t kind); // "tcp_syn", "tds", ...
const char* hook_name(uint8_t hook);	   // "xdp", "tc_egress", ...
const char* tds_type_name(uint8_t type);   // "sql_batch", "prelogin", ...
const char* sspi_kind_name(uint8_t kind);  // "ntlm", "spnego", ...
// Names as a network trace shows them: "SQLBatch", "Prelogin(server)".
const char* tds_type_title(uint8_t type, int dir);

// Addresses of a flow key: "10.0.0.1", "fe80::1", "10.0.0.1:1433", "[fe80::1]:1433".
std::string addr_string(const uint8_t* addr, uint8_t family);
// The same written into buf (kAddrChars bytes at least, for an endpoint
// too); they return the length.
constexpr size_t kAddrChars = 56;
size_t addr_chars(char* buf, const uint8_t* addr, uint8_t family);
size_t endpoint_chars(char* buf, const uint8_t* addr, uint8_t family, uint16_t port);

class JsonWriter;
// A flow's two ends as OpenTelemetry attributes: client.address, client.port,
// server.address, server.port, network.type, then network.transport and
// network.protocol.name as given.
void write_endpoints(JsonWriter& w, const tdsbpf_flow_key& k, const char* transport, const char* protocol);
std::string endpoint_string(const uint8_t* addr, uint8_t family, uint16_t port);

// Versions: TLS 0x0303 -> "1.2"; TDS 0x74000004 -> "7.4" (unknown ones as hex).
std::string tls_version_name(uint16_t v);
// A TLS handshake message type as Wireshark names it ("Client Hello", ...).
std::string tls_handshake_name(uint8_t type);
// The items of a TLS event's chain (the messages and records after its first
// message), named: "Certificate", "Change Cipher Spec", "Encrypted Handshake
// Message", "Application Data", ...; and "..." last when the walk stopped
// before the packet's end.
std::vector<std::string> tls_chain_names(const tdsbpf_tls& t);
std::string tds_version_name(uint32_t v);
// A GUID as its wire bytes give it (Data1..3 little-endian).
std::string guid_string(const uint8_t* g);
// CWR ECE URG ACK PSH RST SYN FIN, '.' for a clear flag: "...A...F".
std::string tcp_flags_string(uint8_t flags);

// Bounded decoding of wire text into valid UTF-8. len is what the event
// says it holds and cap the size of the field in the event: a length
// beyond the field is never trusted.
// UTF-16LE (unicode) or OEM bytes; control characters become '?'.
std::string utf16le_or_oem(const uint8_t* p, size_t len, size_t cap, bool unicode);
// UTF-16LE of len bytes as UTF-8 into out (len / 2 * 3 bytes at most); returns
// the length written.
size_t utf16le_to(char* out, const uint8_t* p, size_t len);
// Single-byte text (instance and routing server names): printable ASCII
// kept, everything else '?', up to the first NUL.
std::string ascii_text(const uint8_t* p, size_t len, size_t cap);

// The one hash of a flow key (all 40 bytes; the walk zeroes the key before
// filling it, padding included), for every table keyed by flows: its five
// words multiplied and folded, inline (a table lookup per packet and per
// event calls it).
inline uint64_t flow_key_hash(const tdsbpf_flow_key& k)
{
	static_assert(sizeof(tdsbpf_flow_key) == 40);
	uint64_t w[5];
	std::memcpy(w, &k, sizeof(w));
	uint64_t h = 0x9e3779b97f4a7c15ull;
	for (uint64_t v : w)
		h = (h ^ v) * 0xff51afd7ed558ccdull;
	return h ^ (h >> 29);
}
inline bool flow_key_equal(const tdsbpf_flow_key& a, const tdsbpf_flow_key& b)
{
	return std::memcmp(&a, &b, sizeof(a)) == 0;
}
struct FlowKeyHash {
	size_t operator()(const tdsbpf_flow_key& k) const noexcept { return flow_key_hash(k); }
};
struct FlowKeyEq {
	bool operator()(const tdsbpf_flow_key& a, const tdsbpf_flow_key& b) const noexcept
	{
		return flow_key_equal(a, b);
	}
};

// A TDS packet type that carries a request (batch, RPC, attention, bulk
// load, transaction manager).
bool is_request_type(uint8_t type);

} // namespace tdsbpf

#endif
