// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// A blocking TDS client session for the load client: PRELOGIN, TLS (TDS 7.x
// inside PRELOGIN packets, or TDS 8.0 strict), LOGIN7 with SQL or NTLM
// login, SQL batches, and MARS session 0 over SMP. Built on the lab server's
// wire library so both ends share one codec.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "smp.h"
#include "tds_tokens.h"
#include "tds_wire.h"
#include "tls_channel.h"

namespace tdslab {

enum class ClientEncryption {
	off,	       // ENCRYPT_OFF: login-only TLS against servers that support it
	on,	       // ENCRYPT_ON: the whole connection
	not_supported, // ENCRYPT_NOT_SUP: no TLS
	strict,	       // TDS 8.0
};
std::optional<ClientEncryption> parse_client_encryption(std::string_view s);

struct ClientOptions {
	std::string host = "127.0.0.1";
	std::uint16_t port = 1433;
	ClientEncryption encryption = ClientEncryption::off;
	bool mars = false;
	unsigned mars_sessions = 1; // SMP sessions opened per connection (requests rotate over them)
	std::string user = "sa";
	std::string password = "lab";
	std::string ntlm_domain; // non-empty: integrated login via NTLM
	// non-empty: integrated login through GSS-API SPNEGO (NTLM inside) for
	// this host-based service name, e.g. MSSQLSvc@sql.example
	std::string spnego_service;
	std::string database;
	std::string tls_ciphers; // OpenSSL cipher list offered for TLS 1.2 (empty: the default)
	std::uint32_t packet_size = kDefaultPacketSize;
	std::chrono::milliseconds timeout{5000};
};

class ClientError : public std::runtime_error {
public:
	using std::runtime_error::runtime_error;
};

class TdsClient {
public:
	explicit TdsClient(ClientOptions options);
	~TdsClient();
	TdsClient(const TdsClient&) = delete;
	TdsClient& operator=(const TdsClient&) = delete;

	// TCP connect + PRELOGIN + TLS + LOGIN7 (+ SMP SYN with MARS).
	// Throws ClientError (login failures carry the server's message).
	void connect_and_login();
	ResponseSummary execute(std::string_view sql);
	// SMP FIN exchange with MARS, then close.
	void close();

private:
	void tcp_connect();
	void send_bytes(ByteView data); // raw socket
	void send_plain(ByteView data); // through TLS when the outbound side is encrypted
	struct MarsSession {		// one SMP session's flow control and TDS reassembly
		explicit MarsSession(std::uint16_t sid) : smp(sid) {}
		SmpSession smp;
		PacketSplitter packets;
		MessageAssembler assembler;
	};

	void send_message(std::uint8_t type, ByteView payload);
	Message read_message();
	// Reads SMP frames until a whole TDS message has arrived on session `sid`.
	Message read_session_message(MarsSession& s);
	void handle_frame(SmpFrame&& f);
	void read_more(); // one socket read into the plaintext stream
	void tls_handshake_in_prelogin();
	void tls_handshake_strict();

	ClientOptions opt_;
	int fd_ = -1;
	std::shared_ptr<TlsContext> tls_ctx_;
	std::unique_ptr<TlsChannel> tls_;
	bool tls_in_ = false;
	bool tls_out_ = false;
	bool mars_ = false;
	std::map<std::uint16_t, MarsSession> sessions_;
	std::uint16_t next_sid_ = 0; // session for the next request
	SmpFrameSplitter smp_frames_;
	PacketSplitter packets_;
	MessageAssembler assembler_;
	std::size_t packet_size_ = kDefaultPacketSize;
	std::chrono::steady_clock::time_point deadline_{};
};

} // namespace tdslab
