// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "tls_channel.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace tdslab {

namespace {

std::string openssl_errors()
{
	std::string text;
	while (unsigned long e = ERR_get_error()) {
		char buf[256];
		ERR_error_string_n(e, buf, sizeof buf);
		if (!text.empty())
			text += "; ";
		text += buf;
	}
	return text.empty() ? "unknown OpenSSL error" : text;
}

[[noreturn]] void fail(const std::string& what)
{
	throw std::runtime_error(what + ": " + openssl_errors());
}

void add_extension(X509* cert, int nid, const char* value)
{
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
	X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
	if (!ext)
		fail("X509V3_EXT_conf_nid");
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
}

// A certificate with this subject CN, valid until valid_days from now
// (from an hour ago, or a year before that end if it is earlier), signed
// by signer (its own key when null: self-signed); san_names more DNS names.
X509* make_certificate(EVP_PKEY* key, const char* cn, X509* signer, EVP_PKEY* signer_key, long serial, bool ca,
		       int valid_days = 365, int san_names = 0)
{
	constexpr long kDay = 24 * 3600;
	X509* cert = X509_new();
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
	X509_gmtime_adj(X509_getm_notBefore(cert), std::min(-3600L, (valid_days - 365) * kDay));
	X509_gmtime_adj(X509_getm_notAfter(cert), valid_days * kDay);
	X509_set_pubkey(cert, key);
	X509_NAME* name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("tdsbpf lab"), -1,
				   -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
	X509_set_issuer_name(cert, signer ? X509_get_subject_name(signer) : name);
	if (ca) {
		add_extension(cert, NID_basic_constraints, "critical,CA:TRUE");
	} else {
		std::string san = "DNS:localhost,IP:127.0.0.1";
		for (int i = 0; i < san_names; i++)
			san += ",DNS:sqlnode" + std::to_string(i) + ".corp.example.com";
		add_extension(cert, NID_subject_alt_name, san.c_str());
		add_extension(cert, NID_basic_constraints, "critical,CA:FALSE");
		add_extension(cert, NID_ext_key_usage, "serverAuth");
	}
	if (!X509_sign(cert, signer_key ? signer_key : key, EVP_sha256()))
		fail("signing certificate");
	return cert;
}

// A throwaway certificate, made once per process and shared by the TDS 7.x
// and TDS 8.0 contexts, issued by a throwaway CA as a server's certificate
// is (a self-signed one is what SQL Server falls back to; the lab makes
// that one when asked, with --cert). ECDSA P-256 keeps start-up instant (an
// RSA key takes a second or more); every driver the lab is tested with
// accepts it. Clients in the lab trust any certificate
// (TrustServerCertificate / no CA check).
void use_generated(SSL_CTX* ctx)
{
	static EVP_PKEY* key = nullptr;
	static X509* cert = nullptr;
	static X509* ca = nullptr;
	if (!cert) {
		EVP_PKEY* ca_key = EVP_EC_gen("P-256");
		key = EVP_EC_gen("P-256");
		if (!key || !ca_key)
			fail("generating EC key");
		ca = make_certificate(ca_key, "tdsbpf lab CA", nullptr, nullptr, 1, true);
		cert = make_certificate(key, "localhost", ca, ca_key, 2, false);
		EVP_PKEY_free(ca_key);
	}
	// the chain goes with the certificate, as a server's does
	if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
	    SSL_CTX_add1_chain_cert(ctx, ca) != 1) {
		fail("installing generated certificate");
	}
}

// A self-signed RSA 2048 certificate as setup describes, made once per
// process and shared by the TDS 7.x and TDS 8.0 contexts.
void use_self_signed(SSL_CTX* ctx, const TlsServerSetup& setup)
{
	static EVP_PKEY* key = nullptr;
	static X509* cert = nullptr;
	if (!cert) {
		key = EVP_RSA_gen(2048);
		if (!key)
			fail("generating RSA key");
		cert = make_certificate(key, setup.self_signed_cn.c_str(), nullptr, nullptr, 3, false, setup.valid_days,
					setup.san_names);
	}
	if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1)
		fail("installing generated certificate");
}

int select_tds8_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
		     unsigned int inlen, void*)
{
	static const unsigned char tds8[] = "tds/8.0";
	// `in` is a list of length-prefixed protocol names.
	for (unsigned int i = 0; i < inlen;) {
		unsigned int len = in[i];
		if (i + 1 + len > inlen)
			break;
		if (len == 7 && std::memcmp(in + i + 1, tds8, 7) == 0) {
			*out = in + i + 1;
			*outlen = static_cast<unsigned char>(len);
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + len;
	}
	// No ALPN match: [MS-TDS] says a server then assumes TDS 8.0 anyway.
	return SSL_TLSEXT_ERR_NOACK;
}

SSL_CTX* new_ctx(bool server, TlsFlavor flavor)
{
	SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!ctx)
		fail("SSL_CTX_new");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (flavor == TlsFlavor::tds7) {
		// SQL Server negotiates at most TLS 1.2 inside PRELOGIN; TLS 1.3's
		// post-handshake tickets would also arrive after the wrapped phase ended.
		SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	}
	// No session tickets (TLS 1.2 NewSessionTicket, TLS 1.3 post-handshake
	// tickets): SQL Server sends none, and the handshake flights stay as small
	// as a real server's.
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
}

// The TLS 1.2 suites allowed (TLS 1.3's are not affected).
void set_ciphers(SSL_CTX* ctx, const std::string& ciphers)
{
	if (!ciphers.empty() && SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1)
		fail("cipher list '" + ciphers + "'");
}

} // namespace

std::shared_ptr<TlsContext> TlsContext::server(TlsFlavor flavor, const TlsServerSetup& setup)
{
	SSL_CTX* ctx = new_ctx(true, flavor);
	std::shared_ptr<TlsContext> holder(new TlsContext(ctx, true, flavor));
	if (!setup.cert_file.empty()) {
		if (SSL_CTX_use_certificate_chain_file(ctx, setup.cert_file.c_str()) != 1)
			fail("loading certificate " + setup.cert_file);
		const std::string& k = setup.key_file.empty() ? setup.cert_file : setup.key_file;
		if (SSL_CTX_use_PrivateKey_file(ctx, k.c_str(), SSL_FILETYPE_PEM) != 1)
			fail("loading key " + k);
	} else if (!setup.self_signed_cn.empty()) {
		use_self_signed(ctx, setup);
	} else {
		use_generated(ctx);
	}
	set_ciphers(ctx, setup.ciphers);
	if (flavor == TlsFlavor::strict)
		SSL_CTX_set_alpn_select_cb(ctx, select_tds8_alpn, nullptr);
	return holder;
}

std::shared_ptr<TlsContext> TlsContext::client(TlsFlavor flavor, const std::string& ciphers)
{
	SSL_CTX* ctx = new_ctx(false, flavor);
	std::shared_ptr<TlsContext> holder(new TlsContext(ctx, false, flavor));
	set_ciphers(ctx, ciphers);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
	if (flavor == TlsFlavor::strict) {
		static const unsigned char alpn[] = "\x07tds/8.0";
		SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
	}
	return holder;
}

TlsContext::~TlsContext()
{
	SSL_CTX_free(ctx_);
}

std::string TlsContext::certificate_pem() const
{
	X509* cert = SSL_CTX_get0_certificate(ctx_);
	if (!cert)
		return {};
	BIO* mem = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(mem, cert);
	// and its chain: the issuer a verifying client needs
	STACK_OF(X509)* chain = nullptr;
	if (SSL_CTX_get0_chain_certs(ctx_, &chain) == 1 && chain)
		for (int i = 0; i < sk_X509_num(chain); i++)
			PEM_write_bio_X509(mem, sk_X509_value(chain, i));
	char* data = nullptr;
	long len = BIO_get_mem_data(mem, &data);
	std::string pem(data, static_cast<std::size_t>(len));
	BIO_free(mem);
	return pem;
}

TlsChannel::TlsChannel(std::shared_ptr<TlsContext> ctx) : ctx_(std::move(ctx))
{
	ssl_ = SSL_new(ctx_->native());
	if (!ssl_)
		fail("SSL_new");
	in_ = BIO_new(BIO_s_mem());
	out_ = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(in_, -1); // empty input means "want more", not EOF
	SSL_set_bio(ssl_, in_, out_);
	if (ctx_->is_server())
		SSL_set_accept_state(ssl_);
	else
		SSL_set_connect_state(ssl_);
}

TlsChannel::~TlsChannel()
{
	SSL_free(ssl_);
}

void TlsChannel::feed_ciphertext(ByteView data)
{
	if (!data.empty())
		BIO_write(in_, data.data(), static_cast<int>(data.size()));
}

bool TlsChannel::handshake()
{
	if (done_)
		return true;
	ERR_clear_error();
	int rc = SSL_do_handshake(ssl_);
	if (rc == 1) {
		done_ = true;
		return true;
	}
	int err = SSL_get_error(ssl_, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return false;
	fail("TLS handshake failed");
}

bool TlsChannel::read_plaintext(Bytes& out)
{
	std::uint8_t buf[16384];
	for (;;) {
		ERR_clear_error();
		int n = SSL_read(ssl_, buf, sizeof buf);
		if (n > 0) {
			out.insert(out.end(), buf, buf + n);
			continue;
		}
		int err = SSL_get_error(ssl_, n);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
			return true;
		if (err == SSL_ERROR_ZERO_RETURN)
			return false;
		fail("TLS read failed");
	}
}

void TlsChannel::write_plaintext(ByteView data)
{
	std::size_t off = 0;
	while (off < data.size()) {
		ERR_clear_error();
		int n = SSL_write(ssl_, data.data() + off, static_cast<int>(data.size() - off));
		if (n <= 0)
			fail("TLS write failed");
		off += static_cast<std::size_t>(n);
	}
}

Bytes TlsChannel::take_ciphertext()
{
	Bytes out;
	std::size_t pending = BIO_ctrl_pending(out_);
	if (pending == 0)
		return out;
	out.resize(pending);
	int n = BIO_read(out_, out.data(), static_cast<int>(pending));
	out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
	return out;
}

bool TlsChannel::has_ciphertext() const
{
	return BIO_ctrl_pending(out_) > 0;
}

std::string TlsChannel::negotiated_alpn() const
{
	const unsigned char* p = nullptr;
	unsigned int len = 0;
	SSL_get0_alpn_selected(ssl_, &p, &len);
	return p ? std::string(reinterpret_cast<const char*>(p), len) : std::string();
}

std::string TlsChannel::describe() const
{
	std::string s = SSL_get_version(ssl_);
	if (const char* c = SSL_get_cipher_name(ssl_))
		s += std::string(" ") + c;
	return s;
}

bool looks_like_tls_handshake(ByteView data)
{
	return data.size() >= 3 && data[0] == 0x16 && data[1] == 0x03 && data[2] <= 0x04;
}

} // namespace tdslab
