// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "connection.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "ntlm.h"

namespace tdslab {

const char* encryption_mode_name(EncryptionMode m)
{
	switch (m) {
	case EncryptionMode::off: return "off";
	case EncryptionMode::on: return "on";
	case EncryptionMode::required: return "required";
	case EncryptionMode::not_supported: return "not-supported";
	case EncryptionMode::strict: return "strict";
	}
	return "?";
}

std::optional<EncryptionMode> parse_encryption_mode(std::string_view s)
{
	for (auto m : {EncryptionMode::off, EncryptionMode::on, EncryptionMode::required, EncryptionMode::not_supported,
		       EncryptionMode::strict}) {
		if (s == encryption_mode_name(m))
			return m;
	}
	if (s == "req")
		return EncryptionMode::required;
	if (s == "none" || s == "not_supported")
		return EncryptionMode::not_supported;
	return std::nullopt;
}

// A request whose remaining statements wait for a WAITFOR to elapse.
struct Connection::PendingBatch {
	explicit PendingBatch(std::uint32_t negotiated) : tokens(negotiated) {}
	std::vector<StatementResult> results;
	std::size_t next = 0;
	bool in_proc = false; // RPC: DONEINPROC per statement, then RETURNSTATUS + DONEPROC
	bool returns_handle = false;
	TokenWriter tokens;
	std::optional<Clock::time_point> due;
};

Connection::Connection(const ServerSettings& settings, std::uint16_t spid, std::string peer)
    : settings_(settings), spid_(spid), peer_(std::move(peer)), faults_(settings.faults)
{
	// Before login nobody has been authenticated: no message needs more than
	// a few kilobytes (the largest is a LOGIN7 with a Kerberos token).
	main_.assembler.set_limit(kPreLoginMessageLimit);
	session_.spid = spid;
	session_.server_name = settings.server_name;
	session_.version_major = settings.version_major;
	session_.version_minor = settings.version_minor;
	session_.version_build = settings.version_build;
	session_.version_text = "Microsoft SQL Server 2022 (RTM) - " + std::to_string(settings.version_major) + "." +
				std::to_string(settings.version_minor) + "." + std::to_string(settings.version_build) +
				".0 (X64) (tdsbpf lab server)";
}

void Connection::log_debug(const std::string& text) const
{
	if (settings_.verbose)
		spdlog::debug("conn spid={} {}: {}", spid_, peer_, text);
}

void Connection::log_info(const std::string& text) const
{
	spdlog::info("conn spid={} {}: {}", spid_, peer_, text);
}

void Connection::fail(const std::string& why)
{
	last_error_ = why;
	spdlog::warn("conn spid={} {}: closing: {}", spid_, peer_, why);
	stage_ = Stage::closed;
	if (close_ == CloseAction::none)
		close_ = CloseAction::fin_after_flush;
}

Bytes Connection::take_output()
{
	if (hold_until_)
		return {};
	return std::move(out_);
}

std::optional<Clock::time_point> Connection::next_deadline() const
{
	std::optional<Clock::time_point> d = hold_until_;
	auto consider = [&](std::optional<Clock::time_point> t) {
		if (t && (!d || *t < *d))
			d = t;
	};
	consider(idle_close_at_);
	if (main_.pending)
		consider(main_.pending->due);
	for (const auto& [sid, ch] : sessions_) {
		if (ch.pending)
			consider(ch.pending->due);
	}
	return d;
}

void Connection::on_peer_closed()
{
	if (stage_ != Stage::closed)
		log_debug("peer closed its side");
	stage_ = Stage::closed;
	if (close_ == CloseAction::none)
		close_ = CloseAction::fin_after_flush;
}

void Connection::on_bytes(ByteView data, Clock::time_point now)
{
	if (stage_ == Stage::closed)
		return;
	if (hold_until_) {
		// The reply is held on purpose; keep what arrives for later.
		held_input_.insert(held_input_.end(), data.begin(), data.end());
		return;
	}
	try {
		if (!first_bytes_decided_) {
			// TDS 7.x starts with a PRELOGIN packet, TDS 8.0 with a TLS record; the
			// first three bytes tell them apart, so wait until they are here.
			first_bytes_.insert(first_bytes_.end(), data.begin(), data.end());
			if (first_bytes_.empty() || (first_bytes_.size() < 3 && first_bytes_[0] == 0x16))
				return;
			first_bytes_decided_ = true;
			Bytes first = std::move(first_bytes_);
			first_bytes_.clear();
			if (looks_like_tls_handshake(first)) {
				if (!settings_.tls8) {
					fail("TLS ClientHello as first bytes, but TDS 8.0 is not configured");
					return;
				}
				log_debug("TDS 8.0: TLS first");
				tls_ = std::make_unique<TlsChannel>(settings_.tls8);
				inbound_tls_ = outbound_tls_ = true;
				stage_ = Stage::strict_handshake;
			} else if (settings_.encryption == EncryptionMode::strict) {
				fail("strict mode expects a TLS ClientHello first, got " + hex_dump(first, 8));
				return;
			}
			on_decided_bytes(first, now);
			return;
		}
		on_decided_bytes(data, now);
	} catch (const WireError& e) {
		fail(std::string("malformed input: ") + e.what());
	} catch (const std::exception& e) {
		fail(e.what());
	}
}

// Bytes after the TDS 7.x / 8.0 decision; exceptions go to on_bytes().
void Connection::on_decided_bytes(ByteView data, Clock::time_point now)
{
	if (stage_ == Stage::strict_handshake) {
		handle_strict_handshake(data);
	} else if (inbound_tls_) {
		tls_->feed_ciphertext(data);
		Bytes plain;
		if (!tls_->read_plaintext(plain)) {
			on_peer_closed();
			return;
		}
		on_plain_bytes(plain);
	} else {
		on_plain_bytes(data);
	}
	pump(now);
}

void Connection::handle_strict_handshake(ByteView data)
{
	if (!saw_tls_record_) {
		saw_tls_record_ = true;
		if (apply_phase_faults(Phase::tls, Clock::now()))
			return;
	}
	tls_->feed_ciphertext(data);
	bool done = tls_->handshake();
	Bytes c = tls_->take_ciphertext();
	out_.insert(out_.end(), c.begin(), c.end());
	if (!done)
		return;
	log_debug("TLS established (strict): " + tls_->describe() + ", ALPN '" + tls_->negotiated_alpn() + "'");
	stage_ = Stage::expect_prelogin;
	Bytes plain;
	if (!tls_->read_plaintext(plain)) {
		on_peer_closed();
		return;
	}
	on_plain_bytes(plain);
}

void Connection::on_plain_bytes(ByteView data)
{
	if (data.empty())
		return;
	if (mars_active_)
		smp_frames_.feed(data);
	else
		main_.packets.feed(data);
}

void Connection::pump(Clock::time_point now)
{
	while (stage_ != Stage::closed && !hold_until_ && close_ == CloseAction::none) {
		if (stage_ == Stage::logged_in && mars_requested_ && !mars_active_ && main_.packets.buffered() > 0 &&
		    main_.packets.first_byte() == kSmpId) {
			mars_active_ = true;
			log_debug("MARS: SMP starts");
			Bytes rest = main_.packets.take_rest();
			smp_frames_.feed(rest);
		}
		if (mars_active_) {
			auto f = smp_frames_.next();
			if (!f)
				return;
			handle_smp_frame(std::move(*f), now);
		} else {
			auto p = main_.packets.next();
			if (!p)
				return;
			handle_packet(main_, std::move(*p), now);
		}
	}
}

void Connection::handle_packet(Channel& ch, Packet&& p, Clock::time_point now)
{
	if (settings_.verbose) {
		log_debug(std::string("<- ") + packet_type_name(p.header.type) + " status=0x" +
			  hex_dump(ByteView(&p.header.status, 1)) + " len=" + std::to_string(p.header.length));
	}
	if (stage_ == Stage::tls_in_prelogin) {
		handle_tls_packet(p, now);
		return;
	}
	if (auto m = ch.assembler.add(std::move(p)))
		handle_message(ch, std::move(*m), now);
}

void Connection::handle_message(Channel& ch, Message&& m, Clock::time_point now)
{
	auto type = static_cast<PacketType>(m.type);
	switch (stage_) {
	case Stage::expect_prelogin:
		if (type == PacketType::login7 && !tls_) {
			handle_login7_without_prelogin(m, now);
			return;
		}
		if (type != PacketType::prelogin) {
			fail(std::string("expected PRELOGIN, got ") + packet_type_name(m.type));
			return;
		}
		handle_prelogin(m, now);
		return;
	case Stage::expect_login7:
		if (type != PacketType::login7) {
			fail(std::string("expected LOGIN7, got ") + packet_type_name(m.type));
			return;
		}
		handle_login7(m, now);
		return;
	case Stage::expect_sspi:
		if (type != PacketType::sspi) {
			fail(std::string("expected SSPI (NTLM AUTHENTICATE), got ") + packet_type_name(m.type));
			return;
		}
		handle_sspi(m, now);
		return;
	case Stage::logged_in:
		if (type == PacketType::attention) {
			handle_attention(ch);
		} else if (m.ignore) {
			// The client stopped sending this request (IGNORE bit): nothing runs,
			// a bare DONE closes the exchange it still waits for.
			log_debug(std::string(packet_type_name(m.type)) + " with IGNORE: not run");
			TokenWriter t(tds_version_);
			t.done(token::done, done_status::final, curcmd::none, 0);
			send_message(ch, 4, t.take());
		} else if (type == PacketType::sql_batch || type == PacketType::rpc) {
			if (apply_phase_faults(Phase::query, now))
				return;
			handle_request(ch, m, now);
		} else if (type == PacketType::transaction_manager) {
			// Transaction requests (BEGIN/COMMIT via TM): acknowledge with a DONE.
			TokenWriter t(tds_version_);
			t.done(token::done, done_status::final, curcmd::none, 0);
			send_message(ch, 4, t.take());
		} else {
			fail(std::string("unexpected ") + packet_type_name(m.type) + " after login");
		}
		return;
	default: fail("message in an unexpected state");
	}
}

bool Connection::apply_phase_faults(Phase phase, Clock::time_point now)
{
	if (faults_.rst_at == phase) {
		log_info(std::string("fault rst_") + phase_name(phase) + ": resetting");
		close_ = CloseAction::rst_now;
		stage_ = Stage::closed;
		return true;
	}
	if (faults_.fin_at == phase) {
		log_info(std::string("fault fin_") + phase_name(phase) + ": closing with FIN");
		close_ = CloseAction::fin_now;
		stage_ = Stage::closed;
		return true;
	}
	auto d = faults_.delays.find(phase);
	// Login phases are slowed once; slow_query_<ms> slows every request.
	if (d != faults_.delays.end() && (phase == Phase::query || !delayed_[phase])) {
		delayed_[phase] = true;
		log_info(std::string("fault slow_") + phase_name(phase) + ": holding the reply " +
			 std::to_string(d->second.count()) + " ms");
		hold_until_ = now + d->second;
		// The reply is produced now and released when the hold ends, so the
		// caller goes on; only new input waits.
	}
	return false;
}

void Connection::on_timer(Clock::time_point now)
{
	if (hold_until_ && now >= *hold_until_) {
		hold_until_.reset();
		Bytes input = std::move(held_input_);
		held_input_.clear();
		if (!input.empty())
			on_bytes(input, now);
		else {
			try {
				pump(now);
			} catch (const std::exception& e) {
				fail(e.what());
			}
		}
	}
	if (idle_close_at_ && now >= *idle_close_at_) {
		idle_close_at_.reset();
		log_info("fault idle: closing the idle connection");
		// MARS: the server ends its SMP sessions first, as it would on shutdown.
		for (auto& [sid, ch] : sessions_) {
			Bytes fin = ch.smp->make_fin();
			send_raw(fin);
		}
		sessions_.clear();
		stage_ = Stage::closed;
		close_ = CloseAction::fin_now;
		return;
	}
	auto run_due = [&](Channel& ch) {
		if (ch.pending && ch.pending->due && now >= *ch.pending->due) {
			auto batch = ch.pending;
			batch->due.reset();
			ch.pending.reset();
			run_results(ch, batch, now);
		}
	};
	if (stage_ == Stage::closed)
		return;
	try {
		run_due(main_);
		for (auto& [sid, ch] : sessions_)
			run_due(ch);
	} catch (const std::exception& e) {
		fail(e.what());
	}
}

void Connection::handle_prelogin(const Message& m, Clock::time_point now)
{
	auto options = decode_prelogin(m.payload);
	if (options.empty() || options.front().token != prelogin_token::version) {
		fail("PRELOGIN without VERSION as its first option");
		return;
	}
	if (apply_phase_faults(Phase::prelogin, now))
		return;

	std::uint8_t client_enc = static_cast<std::uint8_t>(Encryption::not_supported);
	if (auto* e = find_option(options, prelogin_token::encryption); e && !e->data.empty())
		client_enc = e->data[0] & 0x7F;
	if (auto* mars = find_option(options, prelogin_token::mars); mars && !mars->data.empty()) {
		mars_requested_ = mars->data[0] == 1;
	}

	const bool strict = tls_ != nullptr; // PRELOGIN arrived inside TDS 8.0 TLS
	Encryption reply = Encryption::not_supported;
	bool use_tls = false;
	if (strict) {
		// [MS-TDS] 2.2.6.5: in TDS 8.0 the client's value is ignored; TLS is already up.
		reply = Encryption::not_supported;
	} else {
		switch (settings_.encryption) {
		case EncryptionMode::off:
			if (client_enc == static_cast<std::uint8_t>(Encryption::not_supported)) {
				reply = Encryption::not_supported;
			} else if (client_enc == static_cast<std::uint8_t>(Encryption::off)) {
				reply = Encryption::off;
				use_tls = true;
				login_only_tls_ = true;
			} else {
				reply = Encryption::on;
				use_tls = true;
			}
			break;
		case EncryptionMode::on:
		case EncryptionMode::required:
			reply = settings_.encryption == EncryptionMode::on ? Encryption::on : Encryption::required;
			use_tls = client_enc != static_cast<std::uint8_t>(Encryption::not_supported);
			break;
		case EncryptionMode::not_supported: reply = Encryption::not_supported; break;
		case EncryptionMode::strict: break; // unreachable: plain PRELOGIN is refused in strict mode
		}
	}

	std::vector<PreloginOption> out;
	out.push_back({prelogin_token::version,
		       {settings_.version_major, settings_.version_minor,
			static_cast<std::uint8_t>(settings_.version_build >> 8),
			static_cast<std::uint8_t>(settings_.version_build), 0, 0}});
	out.push_back({prelogin_token::encryption, {static_cast<std::uint8_t>(reply)}});
	out.push_back({prelogin_token::instopt, {0}});
	// Real servers answer THREADID and TRACEID with empty values [cap].
	out.push_back({prelogin_token::threadid, {}});
	out.push_back({prelogin_token::mars, {static_cast<std::uint8_t>(mars_requested_ ? 1 : 0)}});
	if (find_option(options, prelogin_token::traceid))
		out.push_back({prelogin_token::traceid, {}});
	if (find_option(options, prelogin_token::fedauth_required))
		out.push_back({prelogin_token::fedauth_required, {0}});

	log_debug(std::string("PRELOGIN: client ") + encryption_name(client_enc) + ", reply " +
		  encryption_name(static_cast<std::uint8_t>(reply)) + (mars_requested_ ? ", MARS" : "") +
		  (login_only_tls_ ? " (login-only TLS)" : ""));
	send_message(main_, static_cast<std::uint8_t>(PacketType::tabular_result), encode_prelogin(out));
	if (use_tls) {
		tls_ = std::make_unique<TlsChannel>(settings_.tls7);
		stage_ = Stage::tls_in_prelogin;
	} else {
		stage_ = Stage::expect_login7;
	}
}

void Connection::handle_tls_packet(const Packet& p, Clock::time_point now)
{
	if (p.header.type != static_cast<std::uint8_t>(PacketType::prelogin)) {
		fail(std::string("expected a TLS handshake in a PRELOGIN packet, got ") +
		     packet_type_name(p.header.type));
		return;
	}
	if (!saw_tls_record_) {
		saw_tls_record_ = true;
		if (!looks_like_tls_handshake(p.payload)) {
			fail("PRELOGIN packet does not carry a TLS handshake: " + hex_dump(p.payload, 8));
			return;
		}
		if (apply_phase_faults(Phase::tls, now))
			return;
	}
	tls_->feed_ciphertext(p.payload);
	bool done = tls_->handshake();
	Bytes c = tls_->take_ciphertext();
	if (!c.empty()) {
		// The server's handshake flights go back in PRELOGIN packets too [cap].
		Bytes packets = packetize(static_cast<std::uint8_t>(PacketType::prelogin), c, packet_size_, 0);
		out_.insert(out_.end(), packets.begin(), packets.end());
	}
	if (!done)
		return;
	log_debug("TLS established: " + tls_->describe());
	stage_ = Stage::expect_login7;
	inbound_tls_ = true;
	outbound_tls_ = !login_only_tls_;
	// From here the client sends bare TLS records (the LOGIN7 first).
	Bytes rest = main_.packets.take_rest();
	if (!rest.empty()) {
		tls_->feed_ciphertext(rest);
		Bytes plain;
		tls_->read_plaintext(plain);
		on_plain_bytes(plain);
	}
}

// TDS 7.0 clients know no PRELOGIN: the LOGIN7 is their first message, in
// clear, and nothing about encryption is negotiated. SQL Server takes it when
// it does not insist on encryption; a server that does cannot encrypt this
// client's login and ends the connection.
void Connection::handle_login7_without_prelogin(const Message& m, Clock::time_point now)
{
	if (settings_.encryption == EncryptionMode::on || settings_.encryption == EncryptionMode::required) {
		log_info(std::string("LOGIN7 without PRELOGIN (a TDS 7.0 client), but encryption is ") +
			 encryption_mode_name(settings_.encryption) + ": closing");
		stage_ = Stage::closed;
		close_ = CloseAction::fin_after_flush;
		return;
	}
	log_debug("LOGIN7 without PRELOGIN: nothing negotiated, no TLS");
	stage_ = Stage::expect_login7; // replies carry the SPID from here on
	handle_login7(m, now);
}

void Connection::handle_login7(const Message& m, Clock::time_point now)
{
	if (login_only_tls_ && inbound_tls_) {
		// Login-only encryption: everything after the LOGIN7 is plaintext again.
		inbound_tls_ = false;
		outbound_tls_ = false;
	}
	Login7 login = decode_login7(m.payload);
	tds_version_ = negotiate_tds_version(login.tds_version);
	read_only_intent_ = (login.type_flags & 0x20) != 0;
	packet_size_ = login.packet_size == 0
			       ? kDefaultPacketSize
			       : std::clamp<std::size_t>(login.packet_size, kMinPacketSize, kMaxPacketSize);
	if (!login.database.empty())
		login_database_ = login.database;
	requested_features_ = login.features;
	session_.database = login_database_;

	const bool integrated = login.integrated_security() || !login.sspi.empty();
	session_.app_name = login.app_name;
	session_.host_name = login.host_name;
	char version_text[16];
	std::snprintf(version_text, sizeof(version_text), "%08x", login.tds_version);
	log_debug("LOGIN7: user '" + login.user_name + "' app '" + login.app_name + "' host '" + login.host_name +
		  "' db '" + login.database + "'" + (integrated ? " (integrated)" : "") + " tds 0x" + version_text +
		  (login.tds_version == tds_version_ ? std::string()
						     : " (speaking " + tds_version_name(tds_version_) + ")") +
		  (login.features.empty() ? std::string() : ", features " + hex_dump(login.features)));
	if (!integrated)
		faults_.merge(faults_from_login_name(login.user_name));
	if (apply_phase_faults(Phase::login, now))
		return;

	if (!integrated) {
		finish_login(login.user_name, now);
		return;
	}
	auto ntlm = parse_ntlm(login.sspi);
	if (!ntlm) {
		if (auto mech = initial_token_mechanism(login.sspi); mech != GssMechanism::none) {
			if (settings_.kerberos.keytab.empty()) {
				refuse_integrated_login(std::string(gss_mechanism_name(mech)) +
							" token, but no --kerberos-keytab");
				return;
			}
			log_debug(std::string(gss_mechanism_name(mech)) + " token of " +
				  std::to_string(login.sspi.size()) + " bytes in LOGIN7");
			kerberos_ = std::make_unique<GssAcceptor>(settings_.kerberos);
			kerberos_step(login.sspi, now);
			return;
		}
	}
	if (!ntlm || ntlm->type != NtlmMessageType::negotiate) {
		refuse_integrated_login("integrated login without an NTLM NEGOTIATE or a Kerberos/SPNEGO token");
		return;
	}
	ntlm_spnego_ = ntlm->in_spnego;
	TokenWriter t(tds_version_);
	t.sspi(build_ntlm_challenge(ntlm->flags, ntlm->in_spnego));
	send_message(main_, 4, t.take());
	log_debug(std::string("NTLM NEGOTIATE") + (ntlm->in_spnego ? " (SPNEGO)" : "") + " -> CHALLENGE");
	stage_ = Stage::expect_sspi;
}

void Connection::handle_sspi(const Message& m, Clock::time_point now)
{
	if (kerberos_) {
		kerberos_step(m.payload, now);
		return;
	}
	auto ntlm = parse_ntlm(m.payload);
	if (!ntlm || ntlm->type != NtlmMessageType::authenticate) {
		fail("SSPI packet without an NTLM AUTHENTICATE");
		return;
	}
	std::string name = ntlm->domain.empty() ? ntlm->user : ntlm->domain + "\\" + ntlm->user;
	log_debug("NTLM AUTHENTICATE: '" + name + "' from workstation '" + ntlm->workstation + "' (not verified)");
	faults_.merge(faults_from_login_name(ntlm->user));
	finish_login(name, now);
}

void Connection::kerberos_step(ByteView token, Clock::time_point now)
{
	GssAcceptor::Step step = kerberos_->step(token);
	switch (step.state) {
	case GssAcceptor::State::failed:
		kerberos_.reset();
		refuse_integrated_login("Kerberos: " + step.error);
		return;
	case GssAcceptor::State::continue_needed: {
		TokenWriter t(tds_version_);
		t.sspi(step.reply);
		send_message(main_, 4, t.take());
		log_debug("Kerberos: context continues, SSPI token of " + std::to_string(step.reply.size()) + " bytes");
		stage_ = Stage::expect_sspi;
		return;
	}
	case GssAcceptor::State::complete: break;
	}
	kerberos_.reset();
	log_debug("Kerberos: authenticated '" + step.principal + "'" +
		  (step.reply.empty()
			   ? std::string()
			   : ", mutual authentication token of " + std::to_string(step.reply.size()) + " bytes"));
	// Faults by login name work as with NTLM: the user part of user@REALM.
	faults_.merge(faults_from_login_name(step.principal.substr(0, step.principal.find('@'))));
	finish_login(step.principal, now, step.reply);
}

// What SQL Server answers when the SSPI exchange itself fails (the client
// never became anyone): 18452, not 18456.
void Connection::refuse_integrated_login(const std::string& why)
{
	TokenWriter t(tds_version_);
	Message16 err;
	err.number = 18452;
	err.state = 1;
	err.severity = 14;
	err.text = "Login failed. The login is from an untrusted domain and cannot be used with Integrated "
		   "authentication.";
	err.server = settings_.server_name;
	t.error(err);
	t.done(token::done, done_status::error, curcmd::none, 0);
	send_message(main_, 4, t.take());
	log_info("integrated login refused (18452): " + why);
	stage_ = Stage::closed;
	close_ = CloseAction::fin_after_flush;
}

void Connection::finish_login(const std::string& login_name, Clock::time_point now, ByteView sspi_reply)
{
	if (apply_phase_faults(Phase::auth, now))
		return;
	session_.user = login_name;
	TokenWriter t(tds_version_);
	if (!sspi_reply.empty())
		t.sspi(sspi_reply);
	if (faults_.fail_login) {
		Message16 err;
		err.number = 18456;
		err.state = 1;
		err.severity = 14;
		err.text = "Login failed for user '" + login_name + "'.";
		err.server = settings_.server_name;
		err.line = 1;
		t.error(err);
		t.done(token::done, done_status::error, curcmd::none, 0);
		send_message(main_, 4, t.take());
		log_info("fault fail_login: login failed for '" + login_name + "'");
		stage_ = Stage::closed;
		close_ = CloseAction::fin_after_flush;
		return;
	}

	// Token order as SQL Server 2022 sends it [cap].
	t.envchange(envchange_type::database, login_database_, "master");
	Message16 info;
	info.number = 5701;
	info.state = 2;
	info.severity = 0;
	info.text = "Changed database context to '" + login_database_ + "'.";
	info.server = settings_.server_name;
	info.line = 1;
	t.info(info);
	if (tds_version_ >= tds_version::v7_1) {
		t.envchange_collation(ByteView(kDefaultCollation, 5));
	} else {
		// TDS 7.0 predates collations: the server announces its character set
		// and its Unicode sort order (locale id, comparison flags) instead.
		t.envchange(envchange_type::charset, "iso_1", "");
		t.envchange(envchange_type::unicode_locale, "1033", "");
		t.envchange(envchange_type::unicode_comparison, "196609", "");
	}
	t.envchange(envchange_type::language, "us_english", "");
	info.number = 5703;
	info.state = 1;
	info.text = "Changed language setting to us_english.";
	t.info(info);
	t.loginack(loginack_tds_version(tds_version_), "Microsoft SQL Server", settings_.version_major,
		   settings_.version_minor, settings_.version_build);
	t.envchange(envchange_type::packet_size, std::to_string(packet_size_), std::to_string(packet_size_));
	if (!requested_features_.empty() && tds_version_ >= tds_version::v7_4) {
		// Acknowledge only what the lab really does: UTF-8 support (its answers
		// are UTF-16 anyway). Session recovery, column encryption, federated
		// auth etc. stay unacknowledged, which tells the client "not supported".
		std::vector<std::pair<std::uint8_t, Bytes>> acks;
		for (std::uint8_t id : requested_features_) {
			if (id == kFeatureUtf8Support)
				acks.push_back({id, Bytes{0x01}});
		}
		t.featureextack(acks);
	}

	bool redirected = false;
	if (faults_.redirect) {
		const auto& [host, port] = *faults_.redirect;
		bool self = port == settings_.own_port && (host == "127.0.0.1" || host == "localhost");
		// Routing exists from TDS 7.4; 7.1 to 7.3 clients get it only with
		// read-only intent, 7.0 never [MS-TDS 2.2.7.9].
		bool understood =
			tds_version_ >= tds_version::v7_4 || (tds_version_ >= tds_version::v7_1 && read_only_intent_);
		if (!self && !understood) {
			log_info("fault redirect: not sent, TDS " + tds_version_name(tds_version_) +
				 " without read-only intent");
		} else if (!self) {
			t.envchange_routing(host, port);
			redirected = true;
			log_info("fault redirect: routing the client to " + host + ":" + std::to_string(port));
		}
	}
	t.done(token::done, done_status::final, curcmd::none, 0);
	send_message(main_, 4, t.take());
	stage_ = Stage::logged_in;
	main_.assembler.set_limit(kRequestMessageLimit);
	log_debug("login ok for '" + login_name + "'" + (redirected ? " (redirected)" : "") +
		  (outbound_tls_ ? ", encrypted" : "") + (mars_requested_ ? ", MARS" : ""));
	if (faults_.idle_close && !redirected) {
		idle_close_at_ = now + *faults_.idle_close;
		wants_keepalive_ = true;
		log_info("fault idle: keep-alives on, closing after " + std::to_string(faults_.idle_close->count()) +
			 " s");
	}
}

void Connection::handle_request(Channel& ch, const Message& m, Clock::time_point now)
{
	if (ch.pending) {
		fail("new request while the previous one is still running");
		return;
	}
	auto batch = std::make_shared<PendingBatch>(tds_version_);
	if (m.first_status & (status::reset_connection | status::reset_connection_skip_tran)) {
		// A pooled connection is being reused: back to the login's state. The
		// acknowledgement (ENVCHANGE 18) exists from TDS 7.2 on.
		session_.database = login_database_;
		if (tds_version_ >= tds_version::v7_2)
			batch->tokens.envchange_reset_ack();
		log_debug("RESETCONNECTION honoured");
	}
	if (m.type == static_cast<std::uint8_t>(PacketType::sql_batch)) {
		std::string sql = decode_sql_batch(m.payload);
		log_debug("batch: " + sql.substr(0, 200));
		batch->results = run_batch(sql, session_);
	} else {
		RpcRequest rpc = decode_rpc(m.payload);
		std::string name = rpc_display_name(rpc);
		log_debug("rpc: " + name + " with " + std::to_string(rpc.params.size()) + " parameter(s)");
		batch->in_proc = true;
		// sp_executesql: the statement is the first parameter; sp_prepexec: the
		// second (after the handle), sp_execute: nothing the lab can run.
		std::optional<std::string> statement;
		std::size_t stmt_index = (rpc.proc_id == proc_id::sp_prepexec || rpc.proc_id == proc_id::sp_prepare ||
					  name == "sp_prepexec" || name == "sp_prepare")
						 ? 2
						 : 0;
		if (name == "sp_executesql" || name == "sp_prepexec" || name == "sp_prepare") {
			if (rpc.params.size() > stmt_index && rpc.params[stmt_index].text)
				statement = rpc.params[stmt_index].text;
		}
		batch->returns_handle = name == "sp_prepexec" || name == "sp_prepare";
		if (statement && name != "sp_prepare") {
			// The statement may refer to the RPC's own parameters (@P1, @x, ...).
			// Values may come unnamed (positional): then their names are the ones
			// in the declaration parameter ("@P1 int, @P2 nvarchar(3)").
			SessionFacts facts = session_;
			std::vector<std::string> declared;
			if (rpc.params.size() > 1 && rpc.params[1].text) {
				const std::string& decl = *rpc.params[1].text;
				for (std::size_t at = decl.find('@'); at != std::string::npos;
				     at = decl.find('@', at + 1)) {
					std::size_t end = at + 1;
					while (end < decl.size() &&
					       (std::isalnum(static_cast<unsigned char>(decl[end])) ||
						decl[end] == '_'))
						++end;
					declared.push_back(decl.substr(at, end - at));
				}
			}
			const std::size_t first_value = stmt_index + 1 + (stmt_index == 0 ? 1 : 0);
			for (std::size_t i = first_value; i < rpc.params.size(); ++i) {
				const RpcParam& p = rpc.params[i];
				std::string key = p.name.empty() && i - first_value < declared.size()
							  ? declared[i - first_value]
							  : p.name;
				std::transform(key.begin(), key.end(), key.begin(),
					       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
				if (p.integer)
					facts.params[key] = *p.integer;
				else if (p.text)
					facts.params[key] = *p.text;
				else
					facts.params[key] = std::monostate{};
			}
			batch->results = run_batch(*statement, facts);
		} else if (!statement) {
			// Catalog procedures ODBC drivers call by RPC get their result set.
			std::vector<Value> args;
			args.resize(rpc.params.size()); // NULL unless given
			for (std::size_t i = 0; i < rpc.params.size(); ++i) {
				if (rpc.params[i].integer)
					args[i].emplace<std::int64_t>(*rpc.params[i].integer);
				else if (rpc.params[i].text)
					args[i].emplace<std::string>(*rpc.params[i].text);
			}
			if (auto result = run_procedure(name, args, session_))
				batch->results.push_back(std::move(*result));
		}
	}
	run_results(ch, batch, now);
}

void Connection::run_results(Channel& ch, std::shared_ptr<PendingBatch> batch, Clock::time_point now)
{
	TokenWriter& t = batch->tokens;
	const std::uint8_t done_token = batch->in_proc ? token::doneinproc : token::done;
	while (batch->next < batch->results.size()) {
		StatementResult& r = batch->results[batch->next];
		if (r.delay.count() > 0) {
			auto delay = r.delay;
			r.delay = std::chrono::milliseconds(0); // run it once
			batch->due = now + delay;
			ch.pending = batch;
			log_debug("WAITFOR " + std::to_string(delay.count()) + " ms");
			return;
		}
		const bool last = batch->next + 1 == batch->results.size();
		std::uint16_t more = (last && !batch->in_proc) ? 0 : done_status::more;
		if (r.error) {
			t.error(*r.error);
			t.done(done_token, static_cast<std::uint16_t>(more | done_status::error), r.cmd, 0);
		} else if (r.new_database) {
			std::string old = session_.database;
			session_.database = *r.new_database;
			t.envchange(envchange_type::database, session_.database, old);
			Message16 info;
			info.number = 5701;
			info.state = 1;
			info.text = "Changed database context to '" + session_.database + "'.";
			info.server = settings_.server_name;
			info.line = 1;
			t.info(info);
			t.done(done_token, more, curcmd::none, 0);
		} else if (!r.columns.empty()) {
			t.colmetadata(r.columns);
			std::uint64_t count = 0;
			for (const auto& row : r.rows) {
				t.row(r.columns, row);
				++count;
			}
			for (std::uint64_t i = 1; i <= r.generated_rows; ++i) {
				t.row(r.columns, {static_cast<std::int64_t>(i)});
				++count;
			}
			t.done(done_token, static_cast<std::uint16_t>(more | done_status::count), r.cmd, count);
		} else {
			t.done(done_token, more, r.cmd, 0);
		}
		++batch->next;
	}
	if (batch->in_proc) {
		t.returnstatus(0);
		// Output parameter @handle of sp_prepare/sp_prepexec: a fixed handle,
		// the lab keeps no plans.
		if (batch->returns_handle)
			t.returnvalue_int("@handle", 0, 1);
		t.done(token::doneproc, done_status::final, curcmd::execute, 0);
	} else if (batch->results.empty()) {
		t.done(token::done, done_status::final, curcmd::none, 0);
	}
	send_message(ch, 4, t.take());
}

void Connection::handle_attention(Channel& ch)
{
	// Whatever was running stops; the client waits for DONE with the
	// attention bit, also when the request had already finished.
	if (ch.pending) {
		// First end the cancelled request's own response (what it produced so
		// far plus a closing DONE), then acknowledge the attention in a message
		// of its own: drivers such as tedious read the two separately.
		TokenWriter& partial = ch.pending->tokens;
		partial.done(token::done, done_status::final, curcmd::none, 0);
		Bytes first = partial.take();
		ch.pending.reset();
		send_message(ch, 4, first);
		log_debug("attention: request cancelled");
	} else {
		log_debug("attention: nothing running, acknowledged");
	}
	TokenWriter t(tds_version_);
	t.done(token::done, done_status::attention, curcmd::none, 0);
	send_message(ch, 4, t.take());
}

void Connection::handle_smp_frame(SmpFrame&& f, Clock::time_point now)
{
	const SmpHeader& h = f.header;
	if (settings_.verbose) {
		log_debug(std::string("<- SMP:") + smp_flag_name(h.flags) + " sid=" + std::to_string(h.sid) +
			  " seq=" + std::to_string(h.seqnum) + " wnd=" + std::to_string(h.window));
	}
	auto it = sessions_.find(h.sid);
	if (h.flags == smp_flag::syn) {
		if (it != sessions_.end()) {
			fail("SMP:SYN for session " + std::to_string(h.sid) + " which is already open");
			return;
		}
		Channel& ch = sessions_[h.sid];
		ch.smp.emplace(h.sid);
		ch.smp->note_peer_window(h.window);
		return;
	}
	if (it == sessions_.end()) {
		fail("SMP frame for unknown session " + std::to_string(h.sid));
		return;
	}
	Channel& ch = it->second;
	ch.smp->note_peer_window(h.window);
	switch (h.flags) {
	case smp_flag::ack: flush_smp(ch); return;
	case smp_flag::fin: {
		Bytes fin = ch.smp->make_fin();
		send_raw(fin);
		log_debug("SMP:FIN sid=" + std::to_string(h.sid) + " answered");
		sessions_.erase(it);
		return;
	}
	case smp_flag::data: {
		ch.smp->accept_data(h);
		ch.packets.feed(f.payload);
		while (stage_ != Stage::closed) {
			auto p = ch.packets.next();
			if (!p)
				break;
			handle_packet(ch, std::move(*p), now);
		}
		// The session may have been closed by a fault; look it up again.
		auto again = sessions_.find(h.sid);
		if (again != sessions_.end() && stage_ != Stage::closed) {
			flush_smp(again->second);
			Bytes ack = again->second.smp->ack_if_needed();
			if (!ack.empty())
				send_raw(ack);
		}
		return;
	}
	default: fail("SMP frame with unknown flags");
	}
}

void Connection::flush_smp(Channel& ch)
{
	Bytes frames = ch.smp->drain();
	if (!frames.empty())
		send_raw(frames);
}

void Connection::send_message(Channel& ch, std::uint8_t type, ByteView payload)
{
	// Before login the server has no session id to show yet (SPID 0 [cap]).
	const bool has_spid = stage_ != Stage::expect_prelogin;
	Bytes packets = packetize(type, payload, packet_size_, has_spid ? spid_ : 0);
	if (ch.smp) {
		// One TDS packet per SMP DATA frame.
		ByteReader r(packets);
		while (r.remaining() > 0) {
			PacketHeader hdr = decode_header(ByteView(packets).subspan(r.position(), kHeaderSize));
			auto one = r.bytes(hdr.length);
			ch.smp->queue_packet(Bytes(one.begin(), one.end()));
		}
		flush_smp(ch);
		return;
	}
	send_raw(packets);
}

void Connection::send_raw(ByteView data)
{
	if (outbound_tls_) {
		tls_->write_plaintext(data);
		Bytes c = tls_->take_ciphertext();
		out_.insert(out_.end(), c.begin(), c.end());
	} else {
		out_.insert(out_.end(), data.begin(), data.end());
	}
}

} // namespace tdslab
