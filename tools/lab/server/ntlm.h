// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// NTLMSSP messages as carried in LOGIN7's SSPI field, SSPI tokens (0xED) and
// SSPI packets (type 17). The lab never verifies a response: it only has to
// look like a server that accepts integrated logins. [MS-NLMP] message layout.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "byte_io.h"

namespace tdslab {

enum class NtlmMessageType : std::uint32_t { negotiate = 1, challenge = 2, authenticate = 3 };

struct NtlmMessage {
	NtlmMessageType type;
	bool in_spnego = false; // the blob was wrapped in SPNEGO/GSS-API
	std::uint32_t flags = 0;
	// AUTHENTICATE only:
	std::string domain;
	std::string user;
	std::string workstation;
};

// Finds an NTLMSSP message inside an SSPI blob (raw, or wrapped in SPNEGO).
// Returns nullopt when there is none (e.g. a Kerberos token); throws
// WireError when the NTLM message itself is malformed.
std::optional<NtlmMessage> parse_ntlm(ByteView sspi_blob);

// The server's CHALLENGE. `wrap_in_spnego` answers a SPNEGO negotiate with a
// NegTokenResp (accept-incomplete, mech NTLMSSP) around it.
Bytes build_ntlm_challenge(std::uint32_t client_flags, bool wrap_in_spnego);

// Client side, for the load client and tests: a NEGOTIATE, and an AUTHENTICATE
// with placeholder responses (the lab server does not check them).
Bytes build_ntlm_negotiate();
Bytes build_ntlm_authenticate(std::string_view domain, std::string_view user, std::string_view workstation);

} // namespace tdslab
