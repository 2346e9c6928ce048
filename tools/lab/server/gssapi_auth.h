// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Kerberos for integrated logins: the lab server takes a LOGIN7 whose SSPI
// blob is a Kerberos or SPNEGO token to GSS-API (MIT krb5), with the keys of
// a keytab, so a driver holding a real ticket logs in for real. Unlike NTLM,
// nothing here is faked: a ticket the keytab cannot decrypt is refused.
// The GSS-API types stay in the .cpp, so the connection state machine and its
// tests see only bytes in and bytes out.
#pragma once

#include <memory>
#include <string>

#include "byte_io.h"

namespace tdslab {

struct KerberosSettings {
	std::string keytab;    // --kerberos-keytab; read at each login, so it may appear or change later
	std::string principal; // --kerberos-principal; empty: any service key in the keytab
};

// The mechanism an initial GSS-API context token names (RFC 2743 3.1: 0x60,
// a DER length, then the mechanism OID). Kerberos comes under its own OID or
// the one Microsoft registered for it; `none` for anything else (NTLMSSP,
// garbage).
enum class GssMechanism { none, kerberos, spnego };
GssMechanism initial_token_mechanism(ByteView blob);
const char* gss_mechanism_name(GssMechanism m);

// One server-side security context: one per connection, fed the client's
// tokens in order (the LOGIN7's SSPI blob, then each SSPI packet).
class GssAcceptor {
public:
	explicit GssAcceptor(KerberosSettings settings);
	~GssAcceptor();
	GssAcceptor(const GssAcceptor&) = delete;
	GssAcceptor& operator=(const GssAcceptor&) = delete;

	enum class State { continue_needed, complete, failed };
	struct Step {
		State state = State::failed;
		Bytes reply;	       // token for the client (an SSPI token); may be empty
		std::string principal; // complete: the client, as GSS-API displays it (user@REALM)
		std::string error;     // failed: GSS-API's major and minor status in words
	};
	Step step(ByteView token);

private:
	struct Impl;
	std::unique_ptr<Impl> impl_;
};

} // namespace tdslab
