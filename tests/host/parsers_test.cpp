// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The message parsers of parse.h on crafted bytes, through the host wrappers.
#include <gtest/gtest.h>

#include <cstring>

#include "builder.h"
#include "host_walker.h"

using namespace tb;

namespace {

struct Sc {
	tdsbpf_scratch s;
	explicit Sc(const Bytes& b, uint32_t arg = 0, uint32_t end = 0)
	{
		std::memset(&s, 0, sizeof(s));
		size_t n = std::min<size_t>(b.size(), TDSBPF_BUF - 1);
		std::memcpy(s.b, b.data(), n);
		s.n = (uint32_t)n;
		// the parser's input: each reads the one member it takes
		s.in.start = s.in.tds71 = s.in.type = arg;
		s.in.body = s.n; // for parse_tail_done: all of it the packet's
		s.end = end;
	}
	tdsbpf_scratch* operator->() { return &s; }
	tdsbpf_scratch* get() { return &s; }
};

Bytes guid(uint8_t base)
{
	Bytes g;
	for (int i = 0; i < 16; i++)
		g.push_back((uint8_t)(base + i));
	return g;
}

} // namespace

// ---- PRELOGIN -------------------------------------------------------------

TEST(Prelogin, ClientAllOptions)
{
	Bytes trace = cat({guid(0x10), guid(0x40)});
	le32(trace, 7);
	Bytes thread;
	be32(thread, 0x00001f40);
	Bytes body = prelogin({{0, {0x0f, 0x00, 0x07, 0xd0, 0x00, 0x02}},
			       {1, {0x00}},
			       {2, {'S', 'Q', 'L', 'E', 'X', 'P', 'R', 'E', 'S', 'S', 0}},
			       {3, thread},
			       {4, {0x01}},
			       {5, trace},
			       {6, {0x01}}});
	Sc sc(body);
	ASSERT_EQ(tdsbpf_host_parse_prelogin(sc.get()), 0);
	const auto& p = sc->out.prelogin;
	EXPECT_EQ(p.version_major, 15);
	EXPECT_EQ(p.version_minor, 0);
	EXPECT_EQ(p.version_build, 2000);
	EXPECT_EQ(p.version_subbuild, 2);
	EXPECT_EQ(p.encryption, TDS_ENCRYPT_OFF);
	EXPECT_EQ(p.instance_len, 10); // "SQLEXPRESS": stops at the NUL
	EXPECT_EQ(std::string((const char*)p.instance, 10), "SQLEXPRESS");
	EXPECT_EQ(p.thread_id, 0x1f40u);
	EXPECT_EQ(p.mars, 1);
	EXPECT_EQ(0, std::memcmp(p.connection_id, guid(0x10).data(), 16));
	EXPECT_EQ(0, std::memcmp(p.activity_id, guid(0x40).data(), 16));
	EXPECT_EQ(p.activity_seq, 7u);
	EXPECT_EQ(p.fedauth_required, 1);
	EXPECT_EQ(p.present, 0x7f);
}

TEST(Prelogin, ServerVersionEncryptionOnly)
{
	// SQL Server 2000 answer as in the sql2000 capture: 8.0.2039, NOT_SUP
	Bytes body = prelogin({{0, {0x08, 0x00, 0x07, 0xf7, 0x00, 0x00}}, {1, {0x02}}});
	Sc sc(body);
	ASSERT_EQ(tdsbpf_host_parse_prelogin(sc.get()), 0);
	const auto& p = sc->out.prelogin;
	EXPECT_EQ(p.version_major, 8);
	EXPECT_EQ(p.version_build, 2039);
	EXPECT_EQ(p.encryption, TDS_ENCRYPT_NOT_SUP);
	EXPECT_EQ(p.mars, TDSBPF_VALUE_ABSENT);
	EXPECT_EQ(p.fedauth_required, TDSBPF_VALUE_ABSENT);
	EXPECT_EQ(p.present, 0x03);
	EXPECT_EQ(p.instance_len, 0);
}

TEST(Prelogin, EncryptionValues)
{
	for (uint8_t v : {0x00, 0x01, 0x02, 0x03, 0x81}) {
		Sc sc(prelogin({{1, {v}}}));
		ASSERT_EQ(tdsbpf_host_parse_prelogin(sc.get()), 0);
		EXPECT_EQ(sc->out.prelogin.encryption, v);
	}
}

TEST(Prelogin, LongInstanceIsCut)
{
	Bytes inst;
	for (int i = 0; i < 30; i++)
		inst.push_back((uint8_t)('A' + i % 26));
	inst.push_back(0);
	Sc sc(prelogin({{2, inst}}));
	ASSERT_EQ(tdsbpf_host_parse_prelogin(sc.get()), 0);
	EXPECT_EQ(sc->out.prelogin.instance_len, 16);
	EXPECT_EQ(std::string((const char*)sc->out.prelogin.instance, 16), "ABCDEFGHIJKLMNOP");
}

TEST(Prelogin, UnterminatedTableAndOutOfRangeOffsets)
{
	Bytes body = prelogin({{0, {8, 0, 7, 0xf7, 0, 0}}, {1, {0x02}}});
	// cut the 0xFF terminator and values: table incomplete
	Sc cut(Bytes(body.begin(), body.begin() + 7));
	EXPECT_EQ(tdsbpf_host_parse_prelogin(cut.get()), -1);
	EXPECT_EQ(cut->out.prelogin.present, 0x01); // VERSION entry seen, its value not
	EXPECT_EQ(cut->out.prelogin.version_major, 0);
	EXPECT_EQ(cut->out.prelogin.encryption, TDSBPF_VALUE_ABSENT);
	// an option pointing past the bytes leaves the value absent
	Bytes bad{0x01, 0x01, 0x00, 0x00, 0x01, 0xff};
	Sc sc(bad);
	EXPECT_EQ(tdsbpf_host_parse_prelogin(sc.get()), 0);
	EXPECT_EQ(sc->out.prelogin.encryption, TDSBPF_VALUE_ABSENT);
	EXPECT_EQ(sc->out.prelogin.present, 0x02);
	// more options than the parser walks: returns -1 without an end
	Bytes many;
	for (int i = 0; i < 20; i++)
		append(many, Bytes{0x09, 0x00, 0x00, 0x00, 0x00});
	many.push_back(0xff);
	Sc m(many);
	EXPECT_EQ(tdsbpf_host_parse_prelogin(m.get()), -1);
}

// ---- TLS --------------------------------------------------------------------

TEST(Tls, ClientHelloWithAlpnTds8)
{
	Sc sc(tls_client_hello(true, true));
	ASSERT_EQ(tdsbpf_host_parse_tls(sc.get()), 0);
	const auto& t = sc->out.tls;
	EXPECT_EQ(t.content_type, 22);
	EXPECT_EQ(t.handshake_type, 1);
	EXPECT_EQ(t.record_version, 0x0301);
	EXPECT_EQ(t.hello_version, 0x0303);
	EXPECT_EQ(t.selected_version, 0);
	EXPECT_EQ(t.flags, TDSBPF_TLS_HELLO_PARSED | TDSBPF_TLS_ALPN_TDS8);
	EXPECT_EQ(t.record_length, tls_client_hello(true, true).size() - 5);
}

TEST(Tls, ClientHelloWithoutTds8)
{
	for (bool other : {false, true}) {
		Sc sc(tls_client_hello(false, other));
		ASSERT_EQ(tdsbpf_host_parse_tls(sc.get()), 0);
		EXPECT_EQ(sc->out.tls.flags, TDSBPF_TLS_HELLO_PARSED) << "alpn h2: " << other;
		EXPECT_EQ(sc->out.tls.handshake_type, 1);
	}
}

TEST(Tls, ServerHelloTls13AndLegacy12)
{
	Sc s13(tls_server_hello(0x0304, true));
	ASSERT_EQ(tdsbpf_host_parse_tls(s13.get()), 0);
	EXPECT_EQ(s13->out.tls.handshake_type, 2);
	EXPECT_EQ(s13->out.tls.hello_version, 0x0303);
	EXPECT_EQ(s13->out.tls.selected_version, 0x0304);
	EXPECT_EQ(s13->out.tls.flags, TDSBPF_TLS_HELLO_PARSED | TDSBPF_TLS_ALPN_TDS8);

	Sc s12(tls_server_hello(0, false));
	ASSERT_EQ(tdsbpf_host_parse_tls(s12.get()), 0);
	EXPECT_EQ(s12->out.tls.handshake_type, 2);
	EXPECT_EQ(s12->out.tls.hello_version, 0x0303);
	EXPECT_EQ(s12->out.tls.selected_version, 0);
	EXPECT_EQ(s12->out.tls.flags, TDSBPF_TLS_HELLO_PARSED);
}

TEST(Tls, AlertsAndApplicationData)
{
	Sc alert(tls_record(21, {0x02, 0x28}));
	ASSERT_EQ(tdsbpf_host_parse_tls(alert.get()), 0);
	EXPECT_EQ(alert->out.tls.content_type, 21);
	EXPECT_EQ(alert->out.tls.alert_level, 2);
	EXPECT_EQ(alert->out.tls.alert_desc, 40);
	EXPECT_EQ(alert->out.tls.record_length, 2);

	Sc enc_alert(tls_record(21, Bytes(26, 0x99)));
	ASSERT_EQ(tdsbpf_host_parse_tls(enc_alert.get()), 0);
	EXPECT_EQ(enc_alert->out.tls.alert_level, 0);
	EXPECT_EQ(enc_alert->out.tls.alert_desc, 0);

	Sc data(tls_record(23, Bytes(300, 0x17)));
	ASSERT_EQ(tdsbpf_host_parse_tls(data.get()), 0);
	EXPECT_EQ(data->out.tls.content_type, 23);
	EXPECT_EQ(data->out.tls.record_length, 300);
	EXPECT_EQ(data->out.tls.handshake_type, 0);
	EXPECT_EQ(data->out.tls.flags, 0);

	Sc ccs(tls_record(20, {0x01}));
	ASSERT_EQ(tdsbpf_host_parse_tls(ccs.get()), 0);
	EXPECT_EQ(ccs->out.tls.content_type, 20);
}

TEST(Tls, InvalidRecordHeaders)
{
	for (Bytes b : {Bytes{0x18, 3, 3, 0, 1, 0}, Bytes{0x16, 2, 0, 0, 1, 0}, Bytes{0x16, 3, 5, 0, 1, 0},
			Bytes{0x16, 3, 3, 0, 0}, Bytes{0x16, 3, 3, 0x48, 0x01}, Bytes{0x16, 3, 3}}) {
		Sc sc(b);
		EXPECT_EQ(tdsbpf_host_parse_tls(sc.get()), -1);
	}
	// the largest valid length: 16384 + 2048
	Sc max(Bytes{0x17, 3, 3, 0x48, 0x00});
	EXPECT_EQ(tdsbpf_host_parse_tls(max.get()), 0);
	EXPECT_EQ(max->out.tls.record_length, 18432);
}

// A handshake message: type, 24-bit length, body.
Bytes hs_msg(uint8_t type, size_t len)
{
	Bytes m{type, 0, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)};
	m.resize(4 + len, 0x42);
	return m;
}

std::vector<int> chain_of(const tdsbpf_tls& t)
{
	std::vector<int> v;
	for (unsigned i = 0; i < t.chain_n && i < TDSBPF_TLS_CHAIN; i++)
		v.push_back(t.chain[i]);
	return v;
}

// What follows the first message in a packet: the client's second flight
// (Client Key Exchange, Change Cipher Spec, encrypted Finished), a server
// flight of three messages in one record, the server's last flight, and a
// walk cut short by the bytes read.
TEST(Tls, ChainNamesEveryRecordAndMessage)
{
	const int kCcs = TDSBPF_TLS_RECORD | 20, kData = TDSBPF_TLS_RECORD | 23, kEnc = TDSBPF_TLS_ENCRYPTED_HS;
	Bytes client = cat({tls_record(22, hs_msg(16, 66)), tls_record(20, {0x01}), tls_record(22, Bytes(40, 0x9c))});
	Sc c(client);
	ASSERT_EQ(tdsbpf_host_parse_tls(c.get()), 0);
	ASSERT_EQ(tdsbpf_host_parse_tls_chain(c.get()), 0);
	EXPECT_EQ(c->out.tls.handshake_type, 16);
	EXPECT_EQ(chain_of(c->out.tls), (std::vector<int>{kCcs, kEnc}));
	EXPECT_EQ(c->out.tls.chain_n, 2);
	EXPECT_EQ(c->out.tls.chain_more, 0);

	Bytes server = tls_record(22, cat({hs_msg(2, 70), hs_msg(11, 120), hs_msg(14, 0)}));
	Sc sv(server);
	ASSERT_EQ(tdsbpf_host_parse_tls_chain(sv.get()), 0);
	EXPECT_EQ(chain_of(sv->out.tls), (std::vector<int>{11, 14}));

	Bytes last = cat({tls_record(20, {0x01}), tls_record(22, Bytes(40, 0x0b)), tls_record(23, Bytes(30, 1))});
	Sc l(last);
	ASSERT_EQ(tdsbpf_host_parse_tls_chain(l.get()), 0);
	// after Change Cipher Spec a handshake record is encrypted, whatever its first byte
	EXPECT_EQ(chain_of(l->out.tls), (std::vector<int>{kEnc, kData}));

	// the packet is longer than the bytes read: the walk says it stopped
	Sc cut(Bytes(client.begin(), client.begin() + 75 + 6 + 3)); // into the third record's header
	cut->in.body = static_cast<uint32_t>(client.size());
	ASSERT_EQ(tdsbpf_host_parse_tls_chain(cut.get()), 0);
	EXPECT_EQ(chain_of(cut->out.tls), (std::vector<int>{kCcs}));
	EXPECT_EQ(cut->out.tls.chain_more, 1);

	// more items than are kept: all counted
	Bytes many = tls_record(22, hs_msg(16, 4));
	for (int i = 0; i < 12; i++)
		append(many, tls_record(23, Bytes(8, 1)));
	Sc m(many);
	ASSERT_EQ(tdsbpf_host_parse_tls_chain(m.get()), 0);
	EXPECT_EQ(m->out.tls.chain_n, TDSBPF_TLS_CHAIN + 1); // found; the first TDSBPF_TLS_CHAIN kept
	EXPECT_EQ(m->out.tls.chain_more, 1);		     // the walk's own limit, bytes left

	// not a record: nothing
	Sc bad(Bytes{0x30, 3, 3, 0, 4, 1, 2, 3, 4});
	EXPECT_EQ(tdsbpf_host_parse_tls_chain(bad.get()), -1);
	EXPECT_EQ(bad->out.tls.chain_n, 0);
}

TEST(Tls, HelloCutShortKeepsHeader)
{
	Bytes h = tls_client_hello(true);
	Sc sc(Bytes(h.begin(), h.begin() + 40)); // inside the random
	ASSERT_EQ(tdsbpf_host_parse_tls(sc.get()), 0);
	EXPECT_EQ(sc->out.tls.handshake_type, 1);
	EXPECT_EQ(sc->out.tls.hello_version, 0x0303);
	EXPECT_EQ(sc->out.tls.flags, 0);
}

// ---- SSPI -----------------------------------------------------------------

TEST(Sspi, Classify)
{
	struct Case {
		const char* name;
		Bytes blob;
		int kind;
		uint32_t ntlm_type;
		uint32_t ntlm_at;
	};
	Bytes sp_ntlm = spnego_init(ntlm_negotiate(), false);
	size_t at = 0;
	for (; at + 8 <= sp_ntlm.size(); at++)
		if (std::memcmp(&sp_ntlm[at], "NTLMSSP", 8) == 0)
			break;
	std::vector<Case> cases{
		{"raw NTLM negotiate", ntlm_negotiate(), TDSBPF_SSPI_NTLM, 1, 0},
		{"raw NTLM authenticate", ntlm_authenticate("D", "U", "W"), TDSBPF_SSPI_NTLM, 3, 0},
		{"SPNEGO NTLM", sp_ntlm, TDSBPF_SSPI_NTLM, 1, (uint32_t)at},
		{"SPNEGO Kerberos", spnego_init(Bytes(60, 0x6e), true), TDSBPF_SSPI_SPNEGO, 0, 0},
		{"raw Kerberos", kerberos_raw(), TDSBPF_SSPI_KERBEROS, 0, 0},
		{"negTokenResp", Bytes{0xa1, 0x20, 0x30, 0x1e, 0xa0, 0x03, 0x0a, 0x01, 0x01, 0, 0, 0, 0, 0, 0, 0},
		 TDSBPF_SSPI_SPNEGO, 0, 0},
		{"garbage", Bytes(40, 0x42), TDSBPF_SSPI_UNKNOWN, 0, 0},
	};
	ASSERT_GT(at, 10u);
	for (auto& c : cases) {
		Sc sc(c.blob);
		EXPECT_EQ(tdsbpf_host_classify_sspi(sc.get()), c.kind) << c.name;
		EXPECT_EQ(sc->res.sspi.ntlm_type, c.ntlm_type) << c.name;
		EXPECT_EQ(sc->res.sspi.ntlm_at, c.ntlm_at) << c.name;
	}
	// nothing at arg: none; a few bytes: unknown
	Sc empty(Bytes(10, 0), 10);
	EXPECT_EQ(tdsbpf_host_classify_sspi(empty.get()), TDSBPF_SSPI_NONE);
	Sc few(Bytes(12, 0), 6);
	EXPECT_EQ(tdsbpf_host_classify_sspi(few.get()), TDSBPF_SSPI_UNKNOWN);
}

TEST(Sspi, ClassifyAtOffset)
{
	Bytes b = cat({Bytes(30, 0xee), ntlm_challenge()});
	Sc sc(b, 30);
	EXPECT_EQ(tdsbpf_host_classify_sspi(sc.get()), TDSBPF_SSPI_NTLM);
	EXPECT_EQ(sc->res.sspi.ntlm_at, 30u);
	EXPECT_EQ(sc->res.sspi.ntlm_type, 2u);
}

TEST(Ntlm, AuthenticateSecurityBuffers)
{
	Bytes a = ntlm_authenticate("CORP", "alice", "WS01", 0xe2888215);
	Sc sc(a);
	ASSERT_EQ(tdsbpf_host_parse_ntlm_auth(sc.get()), 0);
	// domain after LM (24) and NT (24) responses at 64: offset 112, 8 bytes
	EXPECT_EQ(sc->res.ntlm.name[0], (8u << 16) | 112u);
	EXPECT_EQ(sc->res.ntlm.name[1], (10u << 16) | 120u);
	EXPECT_EQ(sc->res.ntlm.name[2], (8u << 16) | 130u);
	EXPECT_EQ(sc->res.ntlm.flags, 0xe2888215u);
	Sc neg(ntlm_negotiate());
	EXPECT_EQ(tdsbpf_host_parse_ntlm_auth(neg.get()), -1);
	Sc shortb(Bytes(a.begin(), a.begin() + 40));
	EXPECT_EQ(tdsbpf_host_parse_ntlm_auth(shortb.get()), -1);
}

// ---- LOGIN7 ----------------------------------------------------------------

TEST(Login7, FixedPart)
{
	Login7 l;
	l.tds_version = 0x74000004;
	l.packet_size = 8000;
	l.flags2 = 0x83;     // fIntSecurity
	l.type_flags = 0x20; // read-only intent
	l.user = "alice";
	l.database = "sales";
	l.pid = 0x1234;
	Bytes body = login7(l);
	Sc sc(body);
	ASSERT_EQ(tdsbpf_host_parse_login7(sc.get()), 0);
	const auto& o = sc->out.login7;
	EXPECT_EQ(o.total_length, body.size());
	EXPECT_EQ(o.tds_version, 0x74000004u);
	EXPECT_EQ(o.packet_size, 8000u);
	EXPECT_EQ(o.client_pid, 0x1234u);
	EXPECT_EQ(o.client_prog_ver, 0x07000000u);
	EXPECT_EQ(o.option_flags1, 0xe0);
	EXPECT_EQ(o.option_flags2 & 0x80, 0x80);
	EXPECT_EQ(o.type_flags & 0x20, 0x20);
	EXPECT_EQ(o.option_flags3, 0);
	EXPECT_EQ(o.user_chars, 5);
	EXPECT_EQ(o.database_chars, 5);
	EXPECT_EQ(o.sspi_length, 0);
	EXPECT_EQ(sc->res.login7.extension, 0u);
	// 7.1 as the sql2000 capture sends it: 00 00 00 71
	l.tds_version = 0x71000001;
	Sc s71(login7(l));
	ASSERT_EQ(tdsbpf_host_parse_login7(s71.get()), 0);
	EXPECT_EQ(s71->out.login7.tds_version, 0x71000001u);
	// fewer than 94 bytes: no fixed part
	Sc cut(Bytes(body.begin(), body.begin() + 93));
	EXPECT_EQ(tdsbpf_host_parse_login7(cut.get()), -1);
}

TEST(Login7, FeatureExtFedauth)
{
	Login7 l;
	Bytes feat{0x02};
	le32(feat, 2);
	append(feat, {0x02, 0x00}); // FEDAUTH: library ADAL, echo
	Bytes utf8{0x0a};
	le32(utf8, 0);
	l.features = cat({utf8, feat, Bytes{0xff}});
	Bytes body = login7(l);
	Sc sc(body);
	ASSERT_EQ(tdsbpf_host_parse_login7(sc.get()), 0);
	EXPECT_EQ(sc->out.login7.option_flags3 & 0x10, 0x10);
	uint32_t ib = sc->res.login7.extension >> 16, cb = sc->res.login7.extension & 0xffff;
	EXPECT_EQ(cb, 4u);
	uint32_t feat_off = body[ib] | body[ib + 1] << 8;
	Sc fs(Bytes(body.begin() + feat_off, body.end()));
	ASSERT_EQ(tdsbpf_host_parse_features(fs.get()), 0);
	EXPECT_EQ(fs->out.login7.flags, TDSBPF_L7_FEDAUTH | TDSBPF_L7_FEATURES_SEEN);
	// without FEDAUTH
	Sc nf(cat({utf8, Bytes{0xff}}));
	tdsbpf_host_parse_features(nf.get());
	EXPECT_EQ(nf->out.login7.flags, TDSBPF_L7_FEATURES_SEEN);
	// not terminated within the bytes: no SEEN flag
	Sc cut(Bytes(l.features.begin(), l.features.begin() + 8));
	tdsbpf_host_parse_features(cut.get());
	EXPECT_EQ(cut->out.login7.flags, 0);
}

// ---- Replies ---------------------------------------------------------------

TEST(Reply, LoginAck)
{
	Bytes body = cat({tok_env_database("sales"), tok_error(5701, 2, 0, "Changed database context", 0xab),
			  tok_loginack(0x74000004, {16, 0, 0x02, 0x58}), tok_env_packet_size("8000", "4096"),
			  tok_done(0, 0, 0)});
	Sc sc(body);
	ASSERT_EQ(tdsbpf_host_parse_reply(sc.get()), 0);
	const auto& r = sc->out.reply;
	EXPECT_EQ(r.first_token, 0xe3);
	EXPECT_EQ(r.tokens, TDSBPF_TOK_ENVCHANGE | TDSBPF_TOK_INFO | TDSBPF_TOK_LOGINACK | TDSBPF_TOK_PACKETSIZE |
				    TDSBPF_TOK_DONE);
	EXPECT_EQ(r.loginack_tds_version, 0x74000004u);
	EXPECT_EQ(r.interface, 1);
	EXPECT_EQ(r.server_version[0], 16);
	EXPECT_EQ(r.server_version[1], 0);
	EXPECT_EQ((r.server_version[2] << 8) | r.server_version[3], 600);
	EXPECT_EQ(r.packet_size, 8000u);
	EXPECT_EQ(r.error_number, 0u);
	EXPECT_EQ(r.done_status, 0);
}

TEST(Reply, LoginFailed18456)
{
	Bytes body = cat({tok_error(18456, 1, 14, "Login failed for user 'x'."), tok_done(0x0002, 0, 0)});
	Sc sc(body);
	ASSERT_EQ(tdsbpf_host_parse_reply(sc.get()), 0);
	const auto& r = sc->out.reply;
	EXPECT_EQ(r.tokens, TDSBPF_TOK_ERROR | TDSBPF_TOK_DONE);
	EXPECT_EQ(r.first_token, 0xaa);
	EXPECT_EQ(r.error_number, 18456u);
	EXPECT_EQ(r.error_state, 1);
	EXPECT_EQ(r.error_class, 14);
	EXPECT_EQ(r.done_status, 0x0002);
}

TEST(Reply, FirstErrorWins)
{
	Bytes body = cat({tok_error(4060, 1, 11, "Cannot open database"), tok_error(18456, 1, 14, "Login failed")});
	Sc sc(body);
	tdsbpf_host_parse_reply(sc.get());
	EXPECT_EQ(sc->out.reply.error_number, 4060u);
	EXPECT_EQ(sc->out.reply.error_class, 11);
}

TEST(Reply, RoutingEnvchange)
{
	Bytes body = cat({tok_loginack(0x74000004, {16, 0, 0x10, 0x00}),
			  tok_env_routing(11002, "replica-2.contoso.database.windows.net"), tok_done(0, 0, 0)});
	Sc sc(body);
	tdsbpf_host_parse_reply(sc.get());
	const auto& r = sc->out.reply;
	EXPECT_EQ(r.tokens, TDSBPF_TOK_LOGINACK | TDSBPF_TOK_ENVCHANGE | TDSBPF_TOK_ROUTING | TDSBPF_TOK_DONE);
	EXPECT_EQ(r.routing_port, 11002);
	EXPECT_EQ(r.routing_server_len, 16);
	EXPECT_EQ(std::string((const char*)r.routing_server, 16), "replica-2.contos");
	// a short name
	Sc s2(tok_env_routing(1433, "db2"));
	tdsbpf_host_parse_reply(s2.get());
	EXPECT_EQ(s2->out.reply.routing_server_len, 3);
	EXPECT_EQ(std::string((const char*)s2->out.reply.routing_server, 3), "db2");
	EXPECT_EQ(s2->out.reply.routing_port, 1433);
}

TEST(Reply, PacketSizeValues)
{
	for (auto [s, v] :
	     std::vector<std::pair<std::string, uint32_t>>{{"4096", 4096}, {"32767", 32767}, {"512", 512}}) {
		Sc sc(tok_env_packet_size(s, "4096"));
		tdsbpf_host_parse_reply(sc.get());
		EXPECT_EQ(sc->out.reply.packet_size, v) << s;
		EXPECT_TRUE(sc->out.reply.tokens & TDSBPF_TOK_PACKETSIZE);
	}
	Sc bad(tok_env_packet_size("40x6", "4096"));
	tdsbpf_host_parse_reply(bad.get());
	EXPECT_EQ(bad->out.reply.packet_size, 0u);
}

TEST(Reply, SspiNtlmChallenge)
{
	Sc sc(tok_sspi(ntlm_challenge()));
	tdsbpf_host_parse_reply(sc.get());
	EXPECT_EQ(sc->out.reply.tokens, TDSBPF_TOK_SSPI);
	EXPECT_EQ(sc->out.reply.sspi_ntlm_type, 2);
	EXPECT_EQ(sc->out.reply.first_token, 0xed);
}

TEST(Reply, DoneWithAttention)
{
	Sc sc(tok_done(0x0020, 0, 0));
	tdsbpf_host_parse_reply(sc.get());
	EXPECT_EQ(sc->out.reply.tokens, TDSBPF_TOK_DONE);
	EXPECT_EQ(sc->out.reply.done_status, 0x0020);
}

TEST(Reply, ColMetadataStops)
{
	Bytes body = cat({tok_colmetadata_int(), tok_error(1, 1, 16, "x"), tok_done(0x10, 0xc1, 1)});
	Sc sc(body);
	tdsbpf_host_parse_reply(sc.get());
	EXPECT_EQ(sc->out.reply.tokens, TDSBPF_TOK_COLMETADATA | TDSBPF_TOK_STOPPED);
	EXPECT_EQ(sc->out.reply.first_token, 0x81);
	EXPECT_EQ(sc->out.reply.error_number, 0u);
}

TEST(Reply, Tds71DoneIsShorter)
{
	// two 9-byte DONEINPROCs then a LOGINACK: only read right with arg = 1
	Bytes body = cat({tok_done(0x11, 0xc1, 3, true, 0xff), tok_done(0x10, 0xc1, 3, true, 0xff),
			  tok_loginack(0x71000001, {8, 0, 0x07, 0xf7})});
	Sc sc(body, 1);
	tdsbpf_host_parse_reply(sc.get());
	EXPECT_EQ(sc->out.reply.tokens, TDSBPF_TOK_DONE | TDSBPF_TOK_LOGINACK);
	EXPECT_EQ(sc->out.reply.done_status, 0x11);
	EXPECT_EQ(sc->out.reply.loginack_tds_version, 0x71000001u);
	EXPECT_EQ(sc->out.reply.server_version[0], 8);
}

TEST(Reply, ReturnStatusSessionStateFeatureExtAck)
{
	Bytes ss{0xe4};
	le32(ss, 3);
	append(ss, {1, 2, 3});
	Bytes body = cat({Bytes{0x79, 0, 0, 0, 0}, ss, tok_done(0x10, 0, 2),
			  Bytes{0xae, 0x01, 0x04, 0, 0, 0, 1, 2, 3, 4, 0xff}});
	Sc sc(body);
	tdsbpf_host_parse_reply(sc.get());
	EXPECT_EQ(sc->out.reply.tokens, TDSBPF_TOK_RETURNSTATUS | TDSBPF_TOK_SESSIONSTATE | TDSBPF_TOK_DONE |
						TDSBPF_TOK_FEATUREEXTACK | TDSBPF_TOK_STOPPED);
}

TEST(TailDone, Tds72Thirteen)
{
	Sc sc(tok_done(0x0010, 0x00c1, 0x0000000100000002ULL));
	ASSERT_EQ(tdsbpf_host_parse_tail_done(sc.get()), 0);
	EXPECT_EQ(sc->res.tail.token, 0xfdu);
	EXPECT_EQ(sc->out.reply.done_status, 0x10);
	EXPECT_EQ(sc->out.reply.done_rows, 0x0000000100000002ULL);
	Sc proc(tok_done(0x0001, 0x00e0, 0, false, 0xfe));
	ASSERT_EQ(tdsbpf_host_parse_tail_done(proc.get()), 0);
	EXPECT_EQ(proc->res.tail.token, 0xfeu);
	EXPECT_EQ(proc->out.reply.done_status, 1);
}

TEST(TailDone, Tds71Nine)
{
	// 13 bytes before the end: 4 bytes of something, then a 9-byte DONE
	Bytes b = cat({Bytes{0x00, 0x00, 0x00, 0x00}, tok_done(0x0010, 0x00c1, 42, true)});
	ASSERT_EQ(b.size(), 13u);
	Sc sc(b, 1);
	ASSERT_EQ(tdsbpf_host_parse_tail_done(sc.get()), 0);
	EXPECT_EQ(sc->res.tail.token, 0xfdu);
	EXPECT_EQ(sc->out.reply.done_status, 0x10);
	EXPECT_EQ(sc->out.reply.done_rows, 42u);
	// the same bytes read as 7.2: byte 0 is not a DONE token
	Sc as72(b, 0);
	EXPECT_EQ(tdsbpf_host_parse_tail_done(as72.get()), -1);
}

// A stored procedure's reply ends DONEINPROC (the last statement's rows),
// RETURNSTATUS, DONEPROC without the count bit: the rows are the DONEINPROC's.
TEST(TailDone, ProcedureRowsFromTheDoneInProcBeforeReturnStatus)
{
	Bytes rs = {0x79, 0, 0, 0, 0};
	Bytes end72 = cat({tok_done(0x0011, 0x00c1, 7, false, 0xff), rs, tok_done(0x0000, 0x00e0, 0, false, 0xfe)});
	ASSERT_EQ(end72.size(), 31u); // all that is looked at: 13 + 5 + 13
	Sc sc(end72);
	ASSERT_EQ(tdsbpf_host_parse_tail_done(sc.get()), 0);
	EXPECT_EQ(sc->res.tail.token, 0xfeu);
	EXPECT_EQ(sc->res.tail.flags, (uint32_t)TDSBPF_TAIL_INPROC_ROWS);
	EXPECT_EQ(sc->out.reply.done_status, 0); // the DONEPROC's
	EXPECT_EQ(sc->out.reply.done_rows, 7u);	 // the DONEINPROC's
	// TDS 7.1: 9-byte tokens, 23 bytes in all
	Bytes end71 = cat({tok_done(0x0010, 0x00c1, 9, true, 0xff), rs, tok_done(0x0000, 0x00e0, 0, true, 0xfe)});
	Sc s71(end71, 1);
	ASSERT_EQ(tdsbpf_host_parse_tail_done(s71.get()), 0);
	EXPECT_EQ(s71->res.tail.flags, (uint32_t)TDSBPF_TAIL_INPROC_ROWS);
	EXPECT_EQ(s71->out.reply.done_rows, 9u);
	// the DONEINPROC without the count bit (an UPDATE ... SET NOCOUNT ON): nothing taken from it
	Bytes nocount = end72;
	nocount[1] = 0x01;
	Sc nc(nocount);
	ASSERT_EQ(tdsbpf_host_parse_tail_done(nc.get()), 0);
	EXPECT_EQ(nc->res.tail.flags, 0u);
	EXPECT_EQ(nc->out.reply.done_rows, 0u);
	// a RETURNVALUE (not RETURNSTATUS) before the DONEPROC: not this shape
	Bytes other = end72;
	other[13] = 0xac;
	Sc ot(other);
	ASSERT_EQ(tdsbpf_host_parse_tail_done(ot.get()), 0);
	EXPECT_EQ(ot->res.tail.flags, 0u);
	// only the DONEPROC's 13 bytes: no look further back
	Sc only(Bytes(end72.end() - 13, end72.end()));
	ASSERT_EQ(tdsbpf_host_parse_tail_done(only.get()), 0);
	EXPECT_EQ(only->res.tail.flags, 0u);
	// only the DONEPROC and the RETURNSTATUS are the packet's: what is before
	// them is its header or an earlier packet, not looked at
	Sc part(end72);
	part->in.body = 18;
	ASSERT_EQ(tdsbpf_host_parse_tail_done(part.get()), 0);
	EXPECT_EQ(part->res.tail.flags, 0u);
	EXPECT_EQ(part->out.reply.done_rows, 0u);
	// more than the look-back is refused
	Sc big(cat({Bytes{0}, end72}));
	EXPECT_EQ(tdsbpf_host_parse_tail_done(big.get()), -1);
}

TEST(TailDone, Rejects)
{
	Bytes d = tok_done(0x0010, 0, 1);
	Sc shortb(Bytes(d.begin(), d.begin() + 12));
	EXPECT_EQ(tdsbpf_host_parse_tail_done(shortb.get()), -1);
	Bytes bad = d;
	bad[2] = 0x02; // status bits above 0x1ff
	Sc sb(bad);
	EXPECT_EQ(tdsbpf_host_parse_tail_done(sb.get()), -1);
	bad = d;
	bad[0] = 0xd1;
	Sc tok(bad);
	EXPECT_EQ(tdsbpf_host_parse_tail_done(tok.get()), -1);
}

// ---- Requests --------------------------------------------------------------

TEST(Request, BatchWithAllHeaders)
{
	Bytes body = batch_body("select 1", true, 0x1122334455667788ULL);
	Sc sc(body, TDS_SQL_BATCH, (uint32_t)body.size());
	ASSERT_EQ(tdsbpf_host_parse_request(sc.get()), 0);
	EXPECT_EQ(sc->out.request.all_headers_length, 22u);
	EXPECT_EQ(sc->out.request.transaction_descriptor, 0x1122334455667788ULL);
	EXPECT_EQ(sc->out.request.rpc_proc_id, 0);
	EXPECT_EQ(sc->out.request.rpc_name_chars, 0);
}

TEST(Request, BatchWithoutAllHeaders)
{
	Bytes body = batch_body("select @@version", false);
	Sc sc(body, TDS_SQL_BATCH, (uint32_t)body.size());
	ASSERT_EQ(tdsbpf_host_parse_request(sc.get()), 0);
	EXPECT_EQ(sc->out.request.all_headers_length, 0u);
	EXPECT_EQ(sc->out.request.transaction_descriptor, 0u);
}

TEST(Request, RpcByIdAndByName)
{
	Bytes id = rpc_by_id(10);
	Sc s1(id, TDS_RPC, (uint32_t)id.size());
	tdsbpf_host_parse_request(s1.get());
	EXPECT_EQ(s1->out.request.all_headers_length, 22u);
	EXPECT_EQ(s1->out.request.rpc_proc_id, 10);
	EXPECT_EQ(s1->out.request.rpc_name_chars, 0);

	Bytes name = rpc_by_name("dbo.GetOrders");
	Sc s2(name, TDS_RPC, (uint32_t)name.size());
	tdsbpf_host_parse_request(s2.get());
	EXPECT_EQ(s2->out.request.rpc_proc_id, 0);
	EXPECT_EQ(s2->out.request.rpc_name_chars, 13);

	// ALL_HEADERS longer than the message: not taken as headers
	Bytes lie = id;
	set_le32(lie, 0, 5000);
	Sc s3(lie, TDS_RPC, (uint32_t)lie.size());
	tdsbpf_host_parse_request(s3.get());
	EXPECT_EQ(s3->out.request.all_headers_length, 0u);
	EXPECT_EQ(s3->out.request.rpc_name_chars, 5000 & 0xffff);
}
