// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "ntlm.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace tdslab {

namespace {

constexpr char kSignature[8] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', '\0'};

namespace flag {
constexpr std::uint32_t unicode = 0x00000001;
constexpr std::uint32_t request_target = 0x00000004;
constexpr std::uint32_t ntlm = 0x00000200;
constexpr std::uint32_t always_sign = 0x00008000;
constexpr std::uint32_t target_type_domain = 0x00010000;
constexpr std::uint32_t extended_session_security = 0x00080000;
constexpr std::uint32_t target_info = 0x00800000;
constexpr std::uint32_t version = 0x02000000;
constexpr std::uint32_t key_128 = 0x20000000;
constexpr std::uint32_t key_56 = 0x80000000;
} // namespace flag

// A security buffer (len u16, maxlen u16, offset u32) inside a message.
std::string read_buffer_text(ByteView msg, std::size_t field_at, bool unicode)
{
	ByteReader r(msg);
	r.seek(field_at);
	std::uint16_t len = r.u16le();
	r.u16le();
	std::uint32_t offset = r.u32le();
	if (len == 0)
		return {};
	r.seek(offset);
	auto b = r.bytes(len);
	return unicode ? utf16le_to_utf8(b) : std::string(b.begin(), b.end());
}

// DER length octets.
void der_length(ByteWriter& w, std::size_t len)
{
	if (len < 0x80) {
		w.u8(static_cast<std::uint8_t>(len));
	} else if (len < 0x100) {
		w.u8(0x81);
		w.u8(static_cast<std::uint8_t>(len));
	} else {
		w.u8(0x82);
		w.u16be(static_cast<std::uint16_t>(len));
	}
}

Bytes der(std::uint8_t tag, ByteView content)
{
	ByteWriter w;
	w.u8(tag);
	der_length(w, content.size());
	w.bytes(content);
	return w.take();
}

Bytes concat(std::initializer_list<Bytes> parts)
{
	Bytes out;
	for (const auto& p : parts)
		out.insert(out.end(), p.begin(), p.end());
	return out;
}

void av_pair(ByteWriter& w, std::uint16_t id, std::string_view text)
{
	std::u16string u = utf8_to_utf16(text);
	w.u16le(id);
	w.u16le(static_cast<std::uint16_t>(u.size() * 2));
	for (char16_t c : u)
		w.u16le(static_cast<std::uint16_t>(c));
}

} // namespace

std::optional<NtlmMessage> parse_ntlm(ByteView blob)
{
	auto it = std::search(blob.begin(), blob.end(), std::begin(kSignature), std::end(kSignature));
	if (it == blob.end())
		return std::nullopt;
	std::size_t at = static_cast<std::size_t>(it - blob.begin());
	ByteView msg = blob.subspan(at);
	ByteReader r(msg);
	r.skip(8);
	std::uint32_t type = r.u32le();
	NtlmMessage m{};
	m.in_spnego = at > 0;
	switch (type) {
	case 1:
		m.type = NtlmMessageType::negotiate;
		m.flags = r.u32le();
		break;
	case 2:
		m.type = NtlmMessageType::challenge;
		r.seek(20);
		m.flags = r.u32le();
		break;
	case 3: {
		m.type = NtlmMessageType::authenticate;
		r.seek(60);
		m.flags = r.u32le();
		bool unicode = (m.flags & flag::unicode) != 0;
		m.domain = read_buffer_text(msg, 28, unicode);
		m.user = read_buffer_text(msg, 36, unicode);
		m.workstation = read_buffer_text(msg, 44, unicode);
		break;
	}
	default: throw WireError("NTLM message type " + std::to_string(type) + " unknown");
	}
	return m;
}

Bytes build_ntlm_challenge(std::uint32_t client_flags, bool wrap_in_spnego)
{
	const std::string target = "LAB";
	std::u16string target16 = utf8_to_utf16(target);

	ByteWriter info;
	av_pair(info, 2, "LAB");	      // MsvAvNbDomainName
	av_pair(info, 1, "TDSLAB");	      // MsvAvNbComputerName
	av_pair(info, 4, "lab.local");	      // MsvAvDnsDomainName
	av_pair(info, 3, "tdslab.lab.local"); // MsvAvDnsComputerName
	// MsvAvTimestamp: NTLMv2 clients put it into their response blob.
	auto since_1601 = std::chrono::duration_cast<std::chrono::microseconds>(
				  std::chrono::system_clock::now().time_since_epoch())
					  .count() *
				  10 +
			  116444736000000000LL;
	info.u16le(7);
	info.u16le(8);
	info.u64le(static_cast<std::uint64_t>(since_1601));
	info.u16le(0); // MsvAvEOL
	info.u16le(0);

	std::uint32_t flags = flag::unicode | flag::request_target | flag::ntlm | flag::always_sign |
			      flag::target_type_domain | flag::extended_session_security | flag::target_info |
			      flag::version | flag::key_128 | flag::key_56;
	// Keep the client's signing/sealing wishes so its key derivation matches.
	flags |= client_flags & 0x40000030;

	ByteWriter w;
	w.bytes(ByteView(reinterpret_cast<const std::uint8_t*>(kSignature), 8));
	w.u32le(2);
	const std::uint32_t payload_at = 56;
	w.u16le(static_cast<std::uint16_t>(target16.size() * 2));
	w.u16le(static_cast<std::uint16_t>(target16.size() * 2));
	w.u32le(payload_at);
	w.u32le(flags);
	// Fixed server challenge: the lab is deterministic and verifies nothing.
	w.bytes(std::string_view("TDSBPFLB", 8));
	w.zeros(8); // reserved
	w.u16le(static_cast<std::uint16_t>(info.size()));
	w.u16le(static_cast<std::uint16_t>(info.size()));
	w.u32le(payload_at + static_cast<std::uint32_t>(target16.size() * 2));
	// Version: 10.0 build 20348, NTLM revision 15.
	w.u8(10);
	w.u8(0);
	w.u16le(20348);
	w.zeros(3);
	w.u8(15);
	w.utf16(target);
	w.bytes(info.buffer());
	Bytes challenge = w.take();
	if (!wrap_in_spnego)
		return challenge;

	// NegTokenResp ::= [1] SEQUENCE { negState [0] accept-incomplete,
	//   supportedMech [1] NTLMSSP OID, responseToken [2] OCTET STRING }
	static const std::uint8_t neg_state[] = {0xA0, 0x03, 0x0A, 0x01, 0x01};
	static const std::uint8_t mech[] = {0xA1, 0x0C, 0x06, 0x0A, 0x2B, 0x06, 0x01,
					    0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0A};
	Bytes token = der(0xA2, der(0x04, challenge));
	Bytes seq = der(0x30, concat({Bytes(std::begin(neg_state), std::end(neg_state)),
				      Bytes(std::begin(mech), std::end(mech)), token}));
	return der(0xA1, seq);
}

Bytes build_ntlm_negotiate()
{
	ByteWriter w;
	w.bytes(ByteView(reinterpret_cast<const std::uint8_t*>(kSignature), 8));
	w.u32le(1);
	w.u32le(flag::unicode | flag::request_target | flag::ntlm | flag::always_sign |
		flag::extended_session_security | flag::key_128 | flag::key_56);
	w.zeros(16); // empty domain and workstation buffers
	return w.take();
}

Bytes build_ntlm_authenticate(std::string_view domain, std::string_view user, std::string_view workstation)
{
	std::u16string d = utf8_to_utf16(domain), u = utf8_to_utf16(user), ws = utf8_to_utf16(workstation);
	const std::uint8_t lm[24] = {};
	const std::uint8_t nt[24] = {}; // placeholder NTLMv1-sized response
	ByteWriter w;
	w.bytes(ByteView(reinterpret_cast<const std::uint8_t*>(kSignature), 8));
	w.u32le(3);
	std::uint32_t at = 64;
	auto buffer = [&](std::size_t len) {
		w.u16le(static_cast<std::uint16_t>(len));
		w.u16le(static_cast<std::uint16_t>(len));
		w.u32le(at);
		at += static_cast<std::uint32_t>(len);
	};
	buffer(sizeof lm);
	buffer(sizeof nt);
	buffer(d.size() * 2);
	buffer(u.size() * 2);
	buffer(ws.size() * 2);
	buffer(0); // session key
	w.u32le(flag::unicode | flag::ntlm);
	w.bytes(ByteView(lm, sizeof lm));
	w.bytes(ByteView(nt, sizeof nt));
	w.utf16(domain);
	w.utf16(user);
	w.utf16(workstation);
	return w.take();
}

} // namespace tdslab
