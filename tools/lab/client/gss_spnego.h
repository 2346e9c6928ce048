// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The client side of an integrated login through GSS-API's SPNEGO
// mechanism, restricted to NTLM (Debian's gss-ntlmssp plugin): the tokens
// are the ones a real GSS-API stack makes, SPNEGO-wrapped NTLM as Windows
// clients send it when Kerberos is not available. Credentials come from
// the file NTLM_USER_FILE names (DOMAIN:user:password lines).
#ifndef TDSLAB_GSS_SPNEGO_H
#define TDSLAB_GSS_SPNEGO_H

#include <memory>
#include <string>

#include "byte_io.h"

namespace tdslab {

class GssSpnegoInitiator {
public:
	// `service` is a host-based service name, e.g. MSSQLSvc@sql.example.
	// Throws std::runtime_error when GSS-API or its NTLM plugin says no.
	explicit GssSpnegoInitiator(const std::string& service);
	~GssSpnegoInitiator();
	GssSpnegoInitiator(const GssSpnegoInitiator&) = delete;
	GssSpnegoInitiator& operator=(const GssSpnegoInitiator&) = delete;

	// The next token to send, given the server's last one (empty at first).
	Bytes step(ByteView from_server);

private:
	struct Impl;
	std::unique_ptr<Impl> impl_;
};

} // namespace tdslab

#endif
