// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Faults on demand. One naming convention serves both ways of asking:
// the login name (user `fail_login`, or `DOMAIN\fail_login` with NTLM) and
// the `--fault NAME` flag (applies to every connection). Several faults can
// be combined with '+', e.g. `slow_login_500+fail_login`.
//
//   fail_login               ERROR 18456 (state 1, class 14), DONE with the
//                            error bit, no LOGINACK; then the server closes
//   slow_<phase>_<ms>        hold the reply to <phase> for <ms> milliseconds
//   rst_<phase>              reset the connection (SO_LINGER 0) at <phase>
//   fin_<phase>              close first with a FIN at <phase>
//                            (fin_tls: right after the ClientHello arrives)
//   redirect_<host>_<port>   login reply with ENVCHANGE routing (type 20) to
//                            host:port next to the LOGINACK, as Azure does;
//                            ignored when host:port is this server itself
//   idle_<seconds>           after login, keep the connection with TCP
//                            keep-alives and close it (FIN) after <seconds>
//
// Phases: prelogin (PRELOGIN received), tls (first TLS record received),
// login (LOGIN7 received), auth (credentials accepted: the NTLM AUTHENTICATE
// for integrated logins, the LOGIN7 itself for SQL logins), query (every
// request after login). The login name is only known from the login phase
// on, so prelogin/tls faults work through --fault only.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace tdslab {

enum class Phase { prelogin, tls, login, auth, query };
const char* phase_name(Phase p);

struct FaultPlan {
	bool fail_login = false;
	std::map<Phase, std::chrono::milliseconds> delays;
	std::optional<Phase> rst_at;
	std::optional<Phase> fin_at;
	std::optional<std::pair<std::string, std::uint16_t>> redirect;
	std::optional<std::chrono::seconds> idle_close;

	bool empty() const;
	void merge(const FaultPlan& other);
	std::string describe() const;
};

// Parses one fault name or a '+'-joined list. Returns nullopt and sets
// `error` when a part is not a fault name.
std::optional<FaultPlan> parse_faults(std::string_view names, std::string* error = nullptr);

// Faults requested through a login name. The domain part (`DOMAIN\`) is
// ignored; a name that is not a fault name means no fault.
FaultPlan faults_from_login_name(std::string_view login_name);

} // namespace tdslab
