// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// One client connection of the lab server as a state machine fed by bytes.
// It performs no system calls: the event loop hands it what the socket read,
// takes the bytes it wants to send and carries out the close it asks for.
// That keeps every protocol decision testable with crafted input. (Kerberos
// logins are the exception: GSS-API reads the keytab and its replay cache.)
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "faults.h"
#include "gssapi_auth.h"
#include "query_engine.h"
#include "smp.h"
#include "tds_tokens.h"
#include "tds_wire.h"
#include "tls_channel.h"

namespace tdslab {

using Clock = std::chrono::steady_clock;

enum class EncryptionMode {
	off,	       // answer ENCRYPT_OFF: TLS handshake, encrypted LOGIN7, then plaintext
	on,	       // answer ENCRYPT_ON: everything after the handshake encrypted
	required,      // answer ENCRYPT_REQ: same as on, the client must not refuse
	not_supported, // answer ENCRYPT_NOT_SUP: no TLS at all
	strict,	       // TDS 8.0: TLS first, ALPN tds/8.0, PRELOGIN/LOGIN7 inside
};
const char* encryption_mode_name(EncryptionMode m);
std::optional<EncryptionMode> parse_encryption_mode(std::string_view s);

struct ServerSettings {
	EncryptionMode encryption = EncryptionMode::off;
	std::shared_ptr<TlsContext> tls7; // TLS inside PRELOGIN packets
	std::shared_ptr<TlsContext> tls8; // TDS 8.0 strict
	FaultPlan faults;		  // --fault: every connection
	std::uint16_t own_port = 1433;	  // to ignore redirects to ourselves
	std::string server_name = "TDSLAB";
	std::uint8_t version_major = 16;
	std::uint8_t version_minor = 0;
	std::uint16_t version_build = 1000;
	KerberosSettings kerberos; // keytab empty: Kerberos logins are refused (18452)
	bool verbose = false;
};

enum class CloseAction {
	none,
	fin_after_flush, // orderly close once the outbox is written
	fin_now,	 // FIN first, dropping nothing already queued
	rst_now,	 // SO_LINGER 0: RST
};

class Connection {
public:
	Connection(const ServerSettings& settings, std::uint16_t spid, std::string peer);

	// Bytes read from the socket.
	void on_bytes(ByteView data, Clock::time_point now);
	// The peer closed its sending side.
	void on_peer_closed();
	// Called when the deadline from next_deadline() has passed.
	void on_timer(Clock::time_point now);

	// Bytes to write now (empty while a slow_* fault holds the reply).
	Bytes take_output();
	bool output_held() const { return hold_until_.has_value(); }
	CloseAction close_action() const { return close_; }
	std::optional<Clock::time_point> next_deadline() const;
	// Set once the login name asked for idle_<n>: the loop enables keep-alives.
	bool wants_keepalive() const { return wants_keepalive_; }
	const std::string& peer() const { return peer_; }
	const std::string& last_error() const { return last_error_; }

private:
	enum class Stage {
		expect_prelogin, // first bytes: PRELOGIN, a TLS ClientHello in strict mode, or a TDS 7.0 LOGIN7
		strict_handshake,
		tls_in_prelogin, // TDS 7.x handshake carried in PRELOGIN packets
		expect_login7,
		expect_sspi, // NTLM AUTHENTICATE, or the next Kerberos/SPNEGO token
		logged_in,
		closed,
	};

	static constexpr std::size_t kPreLoginMessageLimit = 256 * 1024;
	static constexpr std::size_t kRequestMessageLimit = 16 * 1024 * 1024;

	struct PendingBatch; // a request waiting for WAITFOR to elapse
	struct Channel {     // the request stream of the connection or of one SMP session
		PacketSplitter packets;
		MessageAssembler assembler;
		std::optional<SmpSession> smp;
		std::shared_ptr<PendingBatch> pending;
	};

	void on_decided_bytes(ByteView data, Clock::time_point now);
	void pump(Clock::time_point now);
	void on_plain_bytes(ByteView data);
	void handle_strict_handshake(ByteView data);
	void handle_packet(Channel& ch, Packet&& p, Clock::time_point now);
	void handle_message(Channel& ch, Message&& m, Clock::time_point now);
	void handle_smp_frame(SmpFrame&& f, Clock::time_point now);
	void handle_prelogin(const Message& m, Clock::time_point now);
	void handle_tls_packet(const Packet& p, Clock::time_point now);
	void handle_login7_without_prelogin(const Message& m, Clock::time_point now);
	void handle_login7(const Message& m, Clock::time_point now);
	void handle_sspi(const Message& m, Clock::time_point now);
	void kerberos_step(ByteView token, Clock::time_point now);
	void refuse_integrated_login(const std::string& why); // ERROR 18452, then FIN
	// `sspi_reply`: the last token of a Kerberos exchange (mutual
	// authentication), sent in the same message as the LOGINACK.
	void finish_login(const std::string& login_name, Clock::time_point now, ByteView sspi_reply = {});
	void handle_request(Channel& ch, const Message& m, Clock::time_point now);
	void handle_attention(Channel& ch);
	void run_results(Channel& ch, std::shared_ptr<PendingBatch> batch, Clock::time_point now);

	// Fault checks at a phase; return true when the connection stops here.
	bool apply_phase_faults(Phase phase, Clock::time_point now);
	void send_message(Channel& ch, std::uint8_t type, ByteView payload);
	void send_raw(ByteView data); // through TLS when the outbound side is encrypted
	void flush_smp(Channel& ch);
	void fail(const std::string& why); // protocol error: log and close
	void log_debug(const std::string& text) const;
	void log_info(const std::string& text) const;

	const ServerSettings& settings_;
	std::uint16_t spid_;
	std::string peer_;
	Stage stage_ = Stage::expect_prelogin;
	FaultPlan faults_;
	std::map<Phase, bool> delayed_; // slow_<phase> applied once per connection

	Bytes first_bytes_; // until they show TDS 7.x (PRELOGIN) or 8.0 (TLS)
	bool first_bytes_decided_ = false;
	std::unique_ptr<TlsChannel> tls_;
	bool inbound_tls_ = false;
	bool outbound_tls_ = false;
	bool login_only_tls_ = false;
	bool saw_tls_record_ = false;
	bool mars_requested_ = false;
	bool mars_active_ = false;

	Channel main_;
	SmpFrameSplitter smp_frames_;
	std::map<std::uint16_t, Channel> sessions_;

	std::uint32_t tds_version_ = tds_version::v7_4; // negotiated, LOGIN7 numbering
	bool read_only_intent_ = false;
	std::size_t packet_size_ = kDefaultPacketSize;
	std::string login_database_ = "master";
	std::vector<std::uint8_t> requested_features_; // FeatureExt ids from LOGIN7
	static constexpr std::uint8_t kFeatureUtf8Support = 0x0A;
	SessionFacts session_;
	bool ntlm_spnego_ = false;
	std::unique_ptr<GssAcceptor> kerberos_; // set while a Kerberos/SPNEGO login is under way

	Bytes out_;
	std::optional<Clock::time_point> hold_until_;
	std::optional<Clock::time_point> idle_close_at_;
	Bytes held_input_; // bytes that arrived while a reply was held
	CloseAction close_ = CloseAction::none;
	bool wants_keepalive_ = false;
	std::string last_error_;
};

} // namespace tdslab
