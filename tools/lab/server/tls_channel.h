// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// TLS over memory BIOs: the caller moves ciphertext between the socket (or
// the PRELOGIN packets that carry the TDS 7.x handshake) and this object, so
// the same code serves the non-blocking server and the blocking load client.
#pragma once

#include <memory>
#include <string>

#include "byte_io.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace tdslab {

enum class TlsFlavor {
	tds7,	// handshake inside PRELOGIN packets; TLS 1.2 at most, as SQL Server does
	strict, // TDS 8.0: TLS first on the raw socket, ALPN "tds/8.0", TLS 1.2 or 1.3
};

// Where a server's certificate comes from, and what TLS 1.2 suites it allows.
struct TlsServerSetup {
	std::string cert_file, key_file; // PEM files; empty: one made at start
	// made at start: empty, an ECDSA P-256 certificate for CN=localhost
	// issued by a throwaway CA; else a self-signed RSA 2048 one with this
	// CN (as SQL Server's own SSL_Self_Signed_Fallback is)
	std::string self_signed_cn;
	int valid_days = 365; // ... its notAfter from now (negative: expired that long ago)
	int san_names = 0;    // ... and this many more DNS names (a longer certificate)
	std::string ciphers;  // OpenSSL cipher list for TLS 1.2 and older (empty: OpenSSL's default)
};

// A certificate and key; generated in memory when no files are given.
class TlsContext {
public:
	// Server context. Throws std::runtime_error.
	static std::shared_ptr<TlsContext> server(TlsFlavor flavor, const TlsServerSetup& setup = {});
	// Client context that accepts any certificate (lab use only); ciphers:
	// an OpenSSL cipher list for TLS 1.2 and older (empty: the default).
	static std::shared_ptr<TlsContext> client(TlsFlavor flavor, const std::string& ciphers = {});
	~TlsContext();
	TlsContext(const TlsContext&) = delete;
	TlsContext& operator=(const TlsContext&) = delete;

	SSL_CTX* native() const { return ctx_; }
	// The server certificate in PEM, for clients that must trust it
	// (TDS 8.0 drivers validate the certificate).
	std::string certificate_pem() const;
	bool is_server() const { return server_; }
	TlsFlavor flavor() const { return flavor_; }

private:
	TlsContext(SSL_CTX* ctx, bool server, TlsFlavor flavor) : ctx_(ctx), server_(server), flavor_(flavor) {}
	SSL_CTX* ctx_;
	bool server_;
	TlsFlavor flavor_;
};

class TlsChannel {
public:
	explicit TlsChannel(std::shared_ptr<TlsContext> ctx);
	~TlsChannel();
	TlsChannel(const TlsChannel&) = delete;
	TlsChannel& operator=(const TlsChannel&) = delete;

	// Ciphertext received from the peer.
	void feed_ciphertext(ByteView data);
	// Advances the handshake. Returns true once it is complete.
	// Throws std::runtime_error with OpenSSL's reason when it fails.
	bool handshake();
	bool handshake_done() const { return done_; }
	// Decrypted application data available so far (appended to `out`).
	// Returns false when the peer sent close_notify.
	bool read_plaintext(Bytes& out);
	void write_plaintext(ByteView data);
	// Ciphertext to send to the peer (handshake records or encrypted data).
	Bytes take_ciphertext();
	bool has_ciphertext() const;
	std::string negotiated_alpn() const;
	std::string describe() const; // "TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384"

private:
	std::shared_ptr<TlsContext> ctx_;
	SSL* ssl_ = nullptr;
	BIO* in_ = nullptr;  // peer -> us
	BIO* out_ = nullptr; // us -> peer
	bool done_ = false;
};

// True when `data` starts like a TLS handshake record (0x16 0x03 0x0X).
bool looks_like_tls_handshake(ByteView data);

} // namespace tdslab
