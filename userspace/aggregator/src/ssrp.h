// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// SQL Server Browser datagrams (SSRP, [MC-SQLR]; UDP port 1434): the four
// client requests and the server's reply, parsed into what a trace reader
// wants to know: which instance was asked for, and which instances, ports
// and pipes came back. The bytes come from the wire, so anything goes: the
// parser is bounded (at most kSsrpMaxInstances instances, strings cut at
// kSsrpMaxString bytes and made printable) and reports what is wrong in
// `problem` instead of failing.
#ifndef TDSBPF_AGGREGATOR_SSRP_H
#define TDSBPF_AGGREGATOR_SSRP_H

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tdsbpf {

inline constexpr std::uint16_t kSsrpPort = 1434;
inline constexpr std::size_t kSsrpMaxInstances = 64;
inline constexpr std::size_t kSsrpMaxString = 256;

enum class SsrpKind {
	unknown,
	clnt_bcast_ex,	 // 0x02: broadcast "which instances are there?"
	clnt_ucast_ex,	 // 0x03: the same question to one machine
	clnt_ucast_inst, // 0x04 + instance name: "where does this instance listen?"
	svr_resp,	 // 0x05 + RESP_SIZE + "ServerName;...;;" for each instance
	clnt_ucast_dac,	 // 0x0F 0x01 + instance name: "where is its admin connection?"
	svr_resp_dac,	 // 0x05 0x06 0x00 0x01 + port: the 6-byte answer to 0x0F
};

struct SsrpInstance {
	std::string server_name, instance_name, version;
	std::optional<bool> clustered;	       // IsClustered Yes/No
	std::optional<std::uint16_t> tcp_port; // absent: no tcp entry, or no valid port
	std::string pipe;		       // np
	// Every other protocol entry as "name=parameters" (via, rpc, spx,
	// adsp, bv, or a name this parser does not know).
	std::vector<std::string> other_protocols;
};

struct SsrpMessage {
	SsrpKind kind = SsrpKind::unknown;
	std::string requested_instance; // CLNT_UCAST_INST, CLNT_UCAST_DAC
	// SVR_RESP: the instances in the order sent; the ones after the
	// first kSsrpMaxInstances are not kept.
	std::vector<SsrpInstance> instances;
	std::optional<std::uint16_t> dac_port; // SVR_RESP (DAC)
	// The bytes ended before the message did (RESP_SIZE not reached, no
	// NUL after the instance name, a DAC reply under 6 bytes). A caller
	// that passed a prefix of the datagram expects this; for a whole
	// datagram it means the datagram was cut short.
	bool truncated = false;
	// Why this is not a valid message ("RESP_SIZE 900 but 120 bytes",
	// "port 99999 is not a port", ...): the first thing found wrong, or
	// empty when the message is valid.
	std::string problem;
};

// bytes: a UDP payload, or a prefix of it. from_server: the datagram came
// from port 1434 (a reply); a message whose type does not fit the direction
// is still parsed, with a problem saying so. Never throws.
SsrpMessage parse_ssrp(std::span<const std::uint8_t> bytes, bool from_server);

std::string_view ssrp_kind_name(SsrpKind kind);

} // namespace tdsbpf

#endif
