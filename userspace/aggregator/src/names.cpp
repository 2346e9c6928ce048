// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Names of the model's enums, as the record spells them.
#include "connection.h"

namespace tdsbpf {

int phase_rank(Phase p)
{
	switch (p) {
	case Phase::none: return 0;
	case Phase::tcp_handshake: return 1;
	case Phase::prelogin: return 2;
	case Phase::tls_handshake: return 3;
	case Phase::login: return 4;
	case Phase::authentication: return 5;
	case Phase::login_ack: return 6;
	case Phase::login_error: return 6;
	case Phase::active: return 7;
	case Phase::close: return 8;
	}
	return 0;
}

const char* phase_name(Phase p)
{
	switch (p) {
	case Phase::none: return "none";
	case Phase::tcp_handshake: return "tcp_handshake";
	case Phase::prelogin: return "prelogin";
	case Phase::tls_handshake: return "tls_handshake";
	case Phase::login: return "login";
	case Phase::authentication: return "authentication";
	case Phase::login_ack: return "login_ack";
	case Phase::login_error: return "login_error";
	case Phase::active: return "active";
	case Phase::close: return "close";
	}
	return "none";
}

const char* close_kind_name(CloseKind k)
{
	switch (k) {
	case CloseKind::none: return "none";
	case CloseKind::four_way: return "four_way";
	case CloseKind::server_fin_first: return "server_fin_first";
	case CloseKind::half_close: return "half_close";
	case CloseKind::reset: return "reset";
	case CloseKind::mars_benign_reset: return "mars_benign_reset";
	case CloseKind::refused: return "refused";
	case CloseKind::syn_unanswered: return "syn_unanswered";
	case CloseKind::idle_timeout: return "idle_timeout";
	case CloseKind::still_open: return "still_open";
	case CloseKind::unknown: return "unknown";
	case CloseKind::evicted: return "evicted";
	case CloseKind::replaced: return "replaced";
	}
	return "none";
}

const char* auth_method_name(AuthMethod m)
{
	switch (m) {
	case AuthMethod::unknown: return "unknown";
	case AuthMethod::sql: return "sql";
	case AuthMethod::ntlm: return "ntlm";
	case AuthMethod::kerberos: return "kerberos";
	case AuthMethod::federated: return "federated";
	}
	return "unknown";
}

const char* login_outcome_name(LoginOutcome o)
{
	switch (o) {
	case LoginOutcome::in_progress: return "in_progress";
	case LoginOutcome::not_tds: return "not_tds";
	case LoginOutcome::success: return "success";
	case LoginOutcome::failed: return "failed";
	case LoginOutcome::aborted: return "aborted";
	case LoginOutcome::timed_out: return "timed_out";
	case LoginOutcome::not_seen: return "not_seen";
	case LoginOutcome::not_started: return "not_started";
	case LoginOutcome::unknown: return "unknown";
	}
	return "unknown";
}

const char* encryption_name(Encryption e)
{
	switch (e) {
	case Encryption::unknown: return "unknown";
	case Encryption::off: return "off";
	case Encryption::login_only: return "login_only";
	case Encryption::full: return "full";
	case Encryption::strict: return "strict";
	case Encryption::not_negotiated: return "not_negotiated";
	}
	return "unknown";
}

const char* side_name(int dir)
{
	return dir == kC2S ? "client" : "server";
}

} // namespace tdsbpf
