// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The TLS posture of a connection, from the bytes of its hello flights in
// clear (an excerpt): the ClientHello's offer (versions, cipher suites,
// SNI, ALPN), the ServerHello's choice, and the first certificate of the
// server's Certificate message, read by OpenSSL's X.509 parser. Every
// length is checked against the bytes there are; what is cut short is
// left out, and a certificate cut short is said to be.
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <array>
#include <cstdio>
#include <ctime>
#include <string_view>
#include <utility>

#include "machine.h"

namespace tdsbpf {

namespace {

// Cipher suites by their IANA names (the TLS Cipher Suites registry): the
// ones SQL Server and its drivers negotiate, and the weak ones a client or
// server can still have enabled, sorted by number. Weak (tls_cipher_weak):
// RC4, RC2, 3DES, DES, NULL encryption, export-grade and anonymous key
// exchange, judged from the name.
constexpr std::pair<uint16_t, const char*> kSuites[] = {
	{0x0000, "TLS_NULL_WITH_NULL_NULL"},
	{0x0001, "TLS_RSA_WITH_NULL_MD5"},
	{0x0002, "TLS_RSA_WITH_NULL_SHA"},
	{0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5"},
	{0x0004, "TLS_RSA_WITH_RC4_128_MD5"},
	{0x0005, "TLS_RSA_WITH_RC4_128_SHA"},
	{0x0006, "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5"},
	{0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA"},
	{0x0009, "TLS_RSA_WITH_DES_CBC_SHA"},
	{0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"},
	{0x000b, "TLS_DH_DSS_EXPORT_WITH_DES40_CBC_SHA"},
	{0x000c, "TLS_DH_DSS_WITH_DES_CBC_SHA"},
	{0x000d, "TLS_DH_DSS_WITH_3DES_EDE_CBC_SHA"},
	{0x000e, "TLS_DH_RSA_EXPORT_WITH_DES40_CBC_SHA"},
	{0x000f, "TLS_DH_RSA_WITH_DES_CBC_SHA"},
	{0x0010, "TLS_DH_RSA_WITH_3DES_EDE_CBC_SHA"},
	{0x0011, "TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA"},
	{0x0012, "TLS_DHE_DSS_WITH_DES_CBC_SHA"},
	{0x0013, "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA"},
	{0x0014, "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA"},
	{0x0015, "TLS_DHE_RSA_WITH_DES_CBC_SHA"},
	{0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"},
	{0x0017, "TLS_DH_anon_EXPORT_WITH_RC4_40_MD5"},
	{0x0018, "TLS_DH_anon_WITH_RC4_128_MD5"},
	{0x0019, "TLS_DH_anon_EXPORT_WITH_DES40_CBC_SHA"},
	{0x001a, "TLS_DH_anon_WITH_DES_CBC_SHA"},
	{0x001b, "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA"},
	{0x002c, "TLS_PSK_WITH_NULL_SHA"},
	{0x002d, "TLS_DHE_PSK_WITH_NULL_SHA"},
	{0x002e, "TLS_RSA_PSK_WITH_NULL_SHA"},
	{0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA"},
	{0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"},
	{0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA"},
	{0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA"},
	{0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"},
	{0x003a, "TLS_DH_anon_WITH_AES_256_CBC_SHA"},
	{0x003b, "TLS_RSA_WITH_NULL_SHA256"},
	{0x003c, "TLS_RSA_WITH_AES_128_CBC_SHA256"},
	{0x003d, "TLS_RSA_WITH_AES_256_CBC_SHA256"},
	{0x0046, "TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA"},
	{0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"},
	{0x006b, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"},
	{0x006c, "TLS_DH_anon_WITH_AES_128_CBC_SHA256"},
	{0x006d, "TLS_DH_anon_WITH_AES_256_CBC_SHA256"},
	{0x0089, "TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA"},
	{0x008a, "TLS_PSK_WITH_RC4_128_SHA"},
	{0x008b, "TLS_PSK_WITH_3DES_EDE_CBC_SHA"},
	{0x008e, "TLS_DHE_PSK_WITH_RC4_128_SHA"},
	{0x008f, "TLS_DHE_PSK_WITH_3DES_EDE_CBC_SHA"},
	{0x0092, "TLS_RSA_PSK_WITH_RC4_128_SHA"},
	{0x0093, "TLS_RSA_PSK_WITH_3DES_EDE_CBC_SHA"},
	{0x009b, "TLS_DH_anon_WITH_SEED_CBC_SHA"},
	{0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256"},
	{0x009d, "TLS_RSA_WITH_AES_256_GCM_SHA384"},
	{0x009e, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"},
	{0x009f, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"},
	{0x00a6, "TLS_DH_anon_WITH_AES_128_GCM_SHA256"},
	{0x00a7, "TLS_DH_anon_WITH_AES_256_GCM_SHA384"},
	{0x00b0, "TLS_PSK_WITH_NULL_SHA256"},
	{0x00b1, "TLS_PSK_WITH_NULL_SHA384"},
	{0x00b4, "TLS_DHE_PSK_WITH_NULL_SHA256"},
	{0x00b5, "TLS_DHE_PSK_WITH_NULL_SHA384"},
	{0x00b8, "TLS_RSA_PSK_WITH_NULL_SHA256"},
	{0x00b9, "TLS_RSA_PSK_WITH_NULL_SHA384"},
	{0x00bf, "TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA256"},
	{0x00c5, "TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA256"},
	{0x1301, "TLS_AES_128_GCM_SHA256"},
	{0x1302, "TLS_AES_256_GCM_SHA384"},
	{0x1303, "TLS_CHACHA20_POLY1305_SHA256"},
	{0xc001, "TLS_ECDH_ECDSA_WITH_NULL_SHA"},
	{0xc002, "TLS_ECDH_ECDSA_WITH_RC4_128_SHA"},
	{0xc003, "TLS_ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA"},
	{0xc006, "TLS_ECDHE_ECDSA_WITH_NULL_SHA"},
	{0xc007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"},
	{0xc008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA"},
	{0xc009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"},
	{0xc00a, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"},
	{0xc00b, "TLS_ECDH_RSA_WITH_NULL_SHA"},
	{0xc00c, "TLS_ECDH_RSA_WITH_RC4_128_SHA"},
	{0xc00d, "TLS_ECDH_RSA_WITH_3DES_EDE_CBC_SHA"},
	{0xc010, "TLS_ECDHE_RSA_WITH_NULL_SHA"},
	{0xc011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA"},
	{0xc012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"},
	{0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"},
	{0xc014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"},
	{0xc015, "TLS_ECDH_anon_WITH_NULL_SHA"},
	{0xc016, "TLS_ECDH_anon_WITH_RC4_128_SHA"},
	{0xc017, "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA"},
	{0xc018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"},
	{0xc019, "TLS_ECDH_anon_WITH_AES_256_CBC_SHA"},
	{0xc023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"},
	{0xc024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"},
	{0xc027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"},
	{0xc028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"},
	{0xc02b, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
	{0xc02c, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
	{0xc02f, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
	{0xc030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
	{0xc033, "TLS_ECDHE_PSK_WITH_RC4_128_SHA"},
	{0xc034, "TLS_ECDHE_PSK_WITH_3DES_EDE_CBC_SHA"},
	{0xc039, "TLS_ECDHE_PSK_WITH_NULL_SHA"},
	{0xc03a, "TLS_ECDHE_PSK_WITH_NULL_SHA256"},
	{0xc03b, "TLS_ECDHE_PSK_WITH_NULL_SHA384"},
	{0xc046, "TLS_DH_anon_WITH_ARIA_128_CBC_SHA256"},
	{0xc047, "TLS_DH_anon_WITH_ARIA_256_CBC_SHA384"},
	{0xc05a, "TLS_DH_anon_WITH_ARIA_128_GCM_SHA256"},
	{0xc05b, "TLS_DH_anon_WITH_ARIA_256_GCM_SHA384"},
	{0xcca8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
	{0xcca9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
};

const char* find_suite(uint16_t id)
{
	auto it = std::lower_bound(std::begin(kSuites), std::end(kSuites), id,
				   [](const auto& s, uint16_t v) { return s.first < v; });
	return it != std::end(kSuites) && it->first == id ? it->second : nullptr;
}

} // namespace

std::string tls_cipher_name(uint16_t id)
{
	if (const char* name = find_suite(id))
		return name;
	char buf[8];
	std::snprintf(buf, sizeof(buf), "0x%04x", id);
	return buf;
}

bool tls_cipher_weak(uint16_t id)
{
	const char* name = find_suite(id);
	if (!name)
		return false;
	std::string_view n(name);
	for (std::string_view w : {"_anon_", "WITH_NULL", "RC4", "RC2", "3DES", "_DES_", "DES40", "EXPORT"})
		if (n.find(w) != std::string_view::npos)
			return true;
	return false;
}

} // namespace tdsbpf

namespace tdsbpf::machine {

namespace {

using Bytes = std::span<const uint8_t>;

uint32_t be(Bytes b, size_t at, size_t n)
{
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | b[at + i];
	return v;
}

// GREASE values (RFC 8701): 0x?a?a, not real suites or versions.
bool grease(uint16_t v)
{
	return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

// An X.509 name as one line (RFC 2253 form: CN=...,O=...).
std::string name_line(const X509_NAME* n)
{
	BIO* bio = BIO_new(BIO_s_mem());
	if (!bio)
		return {};
	X509_NAME_print_ex(bio, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	char* data = nullptr;
	long len = BIO_get_mem_data(bio, &data);
	std::string s(data ? data : "", len > 0 ? static_cast<size_t>(len) : 0);
	BIO_free(bio);
	return s.size() > 256 ? s.substr(0, 256) : s;
}

int64_t unix_time(const ASN1_TIME* t)
{
	struct tm tm = {};
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return static_cast<int64_t>(timegm(&tm));
}

// The certificates read last, by their bytes: a server presents the same
// one to every client, and OpenSSL's parse of it costs more than the rest
// of a connection's record. Compared whole, so a hit is the same bytes.
class CertCache {
public:
	const TlsCertificate* find(Bytes der) const
	{
		for (const auto& e : slots_)
			if (e.der.size() == der.size() && !der.empty() &&
			    std::memcmp(e.der.data(), der.data(), der.size()) == 0)
				return &e.fields;
		return nullptr;
	}
	void put(Bytes der, TlsCertificate f)
	{
		if (der.size() > kMaxDer)
			return;
		Slot& e = slots_[next_++ % slots_.size()];
		e.der.assign(der.begin(), der.end());
		e.fields = std::move(f);
	}

private:
	static constexpr size_t kMaxDer = 16384;
	struct Slot {
		std::vector<uint8_t> der;
		TlsCertificate fields;
	};
	std::array<Slot, 8> slots_;
	size_t next_ = 0;
};

void read_certificate(TlsPosture& p, Bytes der)
{
	thread_local CertCache cache;
	if (const TlsCertificate* known = cache.find(der)) {
		p.cert = TlsPosture::Cert::read;
		p.certificate = *known;
		return;
	}
	const unsigned char* at = der.data();
	X509* x = d2i_X509(nullptr, &at, static_cast<long>(der.size()));
	if (!x) {
		p.cert = TlsPosture::Cert::cut; // not a whole certificate in the bytes read
		return;
	}
	TlsCertificate f;
	f.subject = name_line(X509_get_subject_name(x));
	f.issuer = name_line(X509_get_issuer_name(x));
	f.not_before = unix_time(X509_get0_notBefore(x));
	f.not_after = unix_time(X509_get0_notAfter(x));
	f.self_signed = X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0;
	f.fallback = f.subject.find("CN=SSL_Self_Signed_Fallback") != std::string::npos;
	if (EVP_PKEY* key = X509_get0_pubkey(x)) {
		f.key_bits = EVP_PKEY_get_bits(key);
		int id = EVP_PKEY_get_base_id(key);
		f.key_type = id == EVP_PKEY_RSA	      ? "RSA"
			     : id == EVP_PKEY_EC      ? "EC"
			     : id == EVP_PKEY_ED25519 ? "Ed25519"
						      : OBJ_nid2sn(id);
	}
	X509_free(x);
	p.cert = TlsPosture::Cert::read;
	p.certificate = f;
	cache.put(der, std::move(f));
}


// A hello's start: legacy_version, random and session_id; the offset past
// them, 0 when the message is too short.
size_t past_session_id(Bytes m)
{
	if (m.size() < 2 + 32 + 1)
		return 0;
	size_t at = 34 + 1 + m[34];
	return at <= m.size() ? at : 0;
}

// Each extension of the block at at (its two bytes of length first), as
// far as the bytes go: fn(type, data).
template <typename Fn> void each_extension(Bytes m, size_t at, Fn fn)
{
	if (at + 2 > m.size())
		return;
	size_t end = std::min(m.size(), at + 2 + be(m, at, 2));
	for (at += 2; at + 4 <= end;) {
		size_t len = be(m, at + 2, 2);
		fn(static_cast<uint16_t>(be(m, at, 2)), m.subspan(at + 4, std::min(len, end - at - 4)));
		at += 4 + len;
	}
}

void read_client_hello(TlsPosture& p, Bytes m)
{
	// legacy_version, random, session_id, cipher_suites, compression, extensions
	size_t at = past_session_id(m);
	if (!at)
		return;
	p.client_seen = true;
	p.client_max_version = static_cast<uint16_t>(be(m, 0, 2));
	if (at + 2 > m.size())
		return;
	size_t n = be(m, at, 2);
	at += 2;
	for (size_t i = 0; i + 1 < n && at + i + 2 <= m.size(); i += 2) {
		uint16_t s = static_cast<uint16_t>(be(m, at + i, 2));
		if (grease(s))
			continue;
		p.offered++;
		if (tls_cipher_weak(s) && p.weak_offered.size() < 16)
			p.weak_offered.push_back(s);
	}
	at += n;
	if (at >= m.size())
		return;
	at += 1 + m[at]; // compression methods
	each_extension(m, at, [&](uint16_t type, Bytes e) {
		if (type == 0 && e.size() >= 5 && e[2] == 0) { // server_name: host_name
			size_t l = std::min<size_t>(be(e, 3, 2), e.size() - 5);
			p.sni = ascii_text(e.data() + 5, l, 255);
		} else if (type == 16 && e.size() >= 2) { // ALPN
			for (size_t i = 2; i < e.size();) {
				size_t l = e[i];
				if (i + 1 + l > e.size())
					break;
				if (!p.alpn.empty())
					p.alpn += ",";
				p.alpn += ascii_text(e.data() + i + 1, l, 64);
				i += 1 + l;
			}
		} else if (type == 43 && !e.empty()) { // supported_versions
			for (size_t i = 1; i + 1 < e.size() && i <= e[0]; i += 2) {
				uint16_t v = static_cast<uint16_t>(be(e, i, 2));
				if (!grease(v) && v > p.client_max_version && v <= 0x0304)
					p.client_max_version = v;
			}
		}
	});
}

void read_server_hello(TlsPosture& p, Bytes m)
{
	size_t at = past_session_id(m);
	if (!at)
		return;
	p.server_seen = true;
	p.server_version = static_cast<uint16_t>(be(m, 0, 2));
	if (at + 3 > m.size())
		return;
	p.cipher = static_cast<uint16_t>(be(m, at, 2));
	each_extension(m, at + 3, [&](uint16_t type, Bytes e) { // after the compression method
		if (type == 43 && e.size() == 2)
			p.server_version = static_cast<uint16_t>(be(e, 0, 2));
	});
}

} // namespace

bool read_tls_hello(Connection& c, std::span<const uint8_t> b, int dir)
{
	bool ended = false; // a ServerHelloDone, or a record that is not a handshake's
	TlsPosture& p = c.tls_posture.mut();
	// the handshake messages of the records in clear, in order; a message
	// may continue in the next record
	std::vector<uint8_t> hs;
	bool ran_out = false; // the bytes read ended inside a record
	size_t at = 0;
	for (; at + 5 <= b.size();) {
		size_t len = be(b, at + 3, 2);
		if (b[at] != 22) { // anything but a handshake record ends what is in clear
			ended = true;
			break;
		}
		size_t have = std::min(len, b.size() - at - 5);
		hs.insert(hs.end(), b.begin() + static_cast<long>(at + 5),
			  b.begin() + static_cast<long>(at + 5 + have));
		if (have < len) {
			ran_out = true;
			break;
		}
		at += 5 + len;
	}
	if (at < b.size() && at + 5 > b.size())
		ran_out = true;
	Bytes h(hs);
	for (at = 0; at + 4 <= h.size();) {
		uint8_t type = h[at];
		size_t len = be(h, at + 1, 3);
		bool whole = at + 4 + len <= h.size();
		Bytes m = h.subspan(at + 4, std::min(len, h.size() - at - 4));
		if (type == 14)
			ended = true;
		if (type == 1 && dir == TDSBPF_DIR_C2S) {
			read_client_hello(p, m);
		} else if (type == 2 && dir == TDSBPF_DIR_S2C) {
			read_server_hello(p, m);
			if (p.server_version >= 0x0304)
				p.cert = TlsPosture::Cert::hidden; // TLS 1.3 encrypts it
		} else if (type == 11 && dir == TDSBPF_DIR_S2C && p.cert == TlsPosture::Cert::not_seen) {
			// certificate_list, then the first certificate: its length and DER
			if (m.size() >= 6 && whole) {
				size_t cl = be(m, 3, 3);
				read_certificate(p, m.subspan(6, std::min(cl, m.size() - 6)));
			} else {
				p.cert = TlsPosture::Cert::cut;
			}
		}
		if (!whole)
			break;
		at += 4 + len;
	}
	// a server flight whose Certificate may lie beyond the bytes read (a
	// flight without one, a resumed session, ends in clear before that)
	if (dir == TDSBPF_DIR_S2C && p.server_seen && p.cert == TlsPosture::Cert::not_seen &&
	    p.server_version < 0x0304 && ran_out)
		p.cert = TlsPosture::Cert::cut;
	return ended;
}

namespace {

// Appends a chunk of the server's TCP stream to its flight, taking the TDS
// packet headers out when the records travel in PRELOGIN packets.
void append_flight(TlsPosture::Flight& f, Bytes chunk)
{
	for (size_t at = 0; at < chunk.size() && !f.over;) {
		if (!f.framed) {
			f.bytes.insert(f.bytes.end(), chunk.begin() + static_cast<long>(at), chunk.end());
			return;
		}
		if (f.tds_left == 0) {
			f.hdr[f.hdr_have++] = chunk[at++];
			if (f.hdr_have < sizeof(f.hdr))
				continue;
			f.hdr_have = 0;
			uint32_t len = be(Bytes(f.hdr), 2, 2);
			if (f.hdr[0] != 0x12 || len <= 8) { // not a PRELOGIN packet: the flight is over
				f.over = true;
				return;
			}
			f.tds_left = len - 8;
			continue;
		}
		size_t n = std::min<size_t>(f.tds_left, chunk.size() - at);
		f.bytes.insert(f.bytes.end(), chunk.begin() + static_cast<long>(at),
			       chunk.begin() + static_cast<long>(at + n));
		f.tds_left -= static_cast<uint32_t>(n);
		at += n;
	}
}

} // namespace

void on_tls_excerpt(Connection& c, const tdsbpf_excerpt_event& x)
{
	Bytes b(x.data, std::min<size_t>(x.len, sizeof(x.data)));
	int dir = x.base.dir & 1;
	if (x.what == TDSBPF_EXCERPT_TLS_HELLO) {
		bool ended = read_tls_hello(c, b, dir);
		TlsPosture& p = c.tls_posture.mut();
		if (dir != TDSBPF_DIR_S2C)
			return;
		p.flight = {};
		if ((p.cert != TlsPosture::Cert::cut && p.cert != TlsPosture::Cert::not_seen) || !p.server_seen ||
		    p.server_version >= 0x0304 || ended)
			return;
		// the certificate runs on, or is still to come: keep the flight for
		// the bytes that follow
		p.flight.bytes.assign(b.begin(), b.end());
		p.flight.next = static_cast<uint32_t>(b.size());
		p.flight.framed = !c.tls.strict;
		p.flight.tds_left =
			p.flight.framed && x.body_len > b.size() ? x.body_len - static_cast<uint32_t>(b.size()) : 0;
		return;
	}
	TlsPosture* p = c.tls_posture.get() ? &c.tls_posture.mut() : nullptr;
	if (!p || p->flight.bytes.empty() || dir != TDSBPF_DIR_S2C)
		return;
	if (x.body_len != p->flight.next) { // a chunk lost on the way: the certificate stays cut
		p->flight = {};
		return;
	}
	p->flight.next += static_cast<uint32_t>(b.size());
	append_flight(p->flight, b);
	p->cert = TlsPosture::Cert::not_seen;
	bool ended = read_tls_hello(c, p->flight.bytes, TDSBPF_DIR_S2C);
	if (ended || (p->cert != TlsPosture::Cert::not_seen && p->cert != TlsPosture::Cert::cut))
		p->flight = {}; // read, or a flight without a certificate
}

} // namespace tdsbpf::machine
