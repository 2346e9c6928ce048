// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The L2-L4 parse, TCP flow state and framing walk of walk.h on crafted
// Ethernet/802.1Q/IPv4/IPv6/TCP frames, through tdsbpf::HostParser.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "builder.h"
#include "events_builder.h"
#include "event_json.h"

using namespace tb;

namespace {

const tdsbpf_tds& T(const Rec& r)
{
	return r.ev().u.tds;
}

Bytes prelogin_client()
{
	return prelogin({{0, {0x11, 0, 0, 0, 0, 0}}, {1, {0x00}}, {4, {0x00}}});
}
Bytes prelogin_server()
{
	return prelogin({{0, {0x10, 0, 0x02, 0x58, 0, 0}}, {1, {0x00}}});
}

} // namespace

TEST(Walk, ThreeWayHandshake)
{
	Collector c;
	Conn k;
	c.feed(k.syn());
	c.feed(k.synack());
	c.feed(k.ack(true));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tcp_syn,tcp_synack,tcp_handshake_ack");
	EXPECT_EQ(ev[0].ev().dir, TDSBPF_DIR_C2S);
	EXPECT_EQ(ev[0].ev().seq, 1000u);
	EXPECT_EQ(ev[0].ev().tcp_flags, SYN);
	EXPECT_EQ(ev[1].ev().dir, TDSBPF_DIR_S2C);
	EXPECT_EQ(ev[1].ev().ack, 1001u);
	EXPECT_EQ(ev[2].ev().flags & TDSBPF_F_MIDSTREAM, 0);
	const auto& key = ev[1].ev().key;
	EXPECT_EQ(key.family, 4);
	EXPECT_EQ(key.client_port, 50000);
	EXPECT_EQ(key.server_port, 1433);
	EXPECT_EQ(key.client_addr[3], 1);
	EXPECT_EQ(key.server_addr[3], 2);
	EXPECT_EQ(key.vlan_valid, 0);
	EXPECT_EQ(c.p.flows(), 1u);
}

TEST(Walk, PreloginBothWaysWithDetails)
{
	Collector c;
	Conn k;
	handshake(c, k);
	c.feed(k.data(true, tds(TDS_PRELOGIN, 1, prelogin_client())));
	c.feed(k.data(false, tds(TDS_REPLY, 1, prelogin_server(), 0, 1)));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tds");
	EXPECT_EQ(T(ev[0]).type, TDS_PRELOGIN);
	EXPECT_EQ(T(ev[0]).detail, TDSBPF_D_PRELOGIN);
	EXPECT_EQ(T(ev[0]).d.prelogin.version_major, 0x11);
	EXPECT_EQ(T(ev[0]).d.prelogin.mars, 0);
	EXPECT_EQ(T(ev[0]).status, 1);
	EXPECT_EQ(ev[0].ev().frame_offset, 0u);
	EXPECT_EQ(ev[0].ev().flags, 0);
	// the server's type-4 answer is read as a PRELOGIN
	EXPECT_EQ(T(ev[1]).type, TDS_REPLY);
	EXPECT_EQ(T(ev[1]).detail, TDSBPF_D_PRELOGIN);
	EXPECT_EQ(T(ev[1]).d.prelogin.version_major, 16);
	EXPECT_EQ(T(ev[1]).d.prelogin.version_build, 600);
	EXPECT_EQ(T(ev[1]).d.prelogin.encryption, TDS_ENCRYPT_OFF);
}

TEST(Walk, TlsInPreloginAndBareTlsLogin)
{
	Collector c;
	Conn k;
	handshake(c, k);
	c.feed(k.data(true, tds(TDS_PRELOGIN, 1, prelogin({{1, {0x01}}}))));
	c.feed(k.data(false, tds(TDS_REPLY, 1, prelogin({{1, {0x01}}}))));
	c.feed(k.data(true, tds(TDS_PRELOGIN, 1, tls_client_hello(false))));
	c.feed(k.data(false, tds(TDS_PRELOGIN, 1, tls_server_hello(0, false))));
	// LOGIN7 as a bare TLS application-data record, then an alert
	c.feed(k.data(true, tls_record(23, Bytes(200, 0xab))));
	c.feed(k.data(false, tls_record(21, {0x02, 0x30})));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tds,tds,tds,tls,tls");
	EXPECT_EQ(T(ev[2]).detail, TDSBPF_D_TLS);
	EXPECT_EQ(T(ev[2]).d.tls.handshake_type, 1);
	EXPECT_EQ(T(ev[2]).d.tls.flags, TDSBPF_TLS_HELLO_PARSED);
	EXPECT_EQ(T(ev[3]).d.tls.handshake_type, 2);
	EXPECT_EQ(ev[4].ev().u.tls.content_type, 23);
	EXPECT_EQ(ev[4].ev().u.tls.record_length, 200);
	EXPECT_EQ(ev[4].ev().dir, TDSBPF_DIR_C2S);
	EXPECT_EQ(ev[5].ev().u.tls.content_type, 21);
	EXPECT_EQ(ev[5].ev().u.tls.alert_level, 2);
	EXPECT_EQ(ev[5].ev().u.tls.alert_desc, 0x30);
}

TEST(Walk, StrictTds8ClientHelloFirst)
{
	Collector c;
	Conn k;
	handshake(c, k);
	c.feed(k.data(true, tls_client_hello(true)));
	c.feed(k.data(false, tls_server_hello(0x0304, true)));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tls,tls");
	EXPECT_EQ(ev[0].ev().u.tls.flags, TDSBPF_TLS_HELLO_PARSED | TDSBPF_TLS_ALPN_TDS8);
	EXPECT_EQ(ev[1].ev().u.tls.selected_version, 0x0304);
	EXPECT_EQ(ev[1].ev().u.tls.flags, TDSBPF_TLS_HELLO_PARSED | TDSBPF_TLS_ALPN_TDS8);
}

TEST(Walk, Login7Details)
{
	struct Case {
		const char* name;
		Bytes sspi;
		uint8_t kind, ntlm_type;
	};
	std::vector<Case> cases{
		{"none", {}, TDSBPF_SSPI_NONE, 0},
		{"raw NTLM", ntlm_negotiate(), TDSBPF_SSPI_NTLM, 1},
		{"SPNEGO NTLM", spnego_init(ntlm_negotiate(), false), TDSBPF_SSPI_NTLM, 1},
		{"SPNEGO Kerberos", spnego_init(Bytes(80, 0x6e), true), TDSBPF_SSPI_SPNEGO, 0},
		{"raw Kerberos", kerberos_raw(), TDSBPF_SSPI_KERBEROS, 0},
	};
	for (auto& cs : cases) {
		Collector c;
		Conn k;
		handshake(c, k);
		Login7 l;
		l.sspi = cs.sspi;
		l.packet_size = 8000;
		l.flags2 = cs.sspi.empty() ? 0x03 : 0x83;
		l.type_flags = 0x20;
		l.user = cs.sspi.empty() ? "bob" : "";
		Bytes body = login7(l);
		c.feed(k.data(true, tds(TDS_LOGIN7, 1, body)));
		auto ev = c.take();
		ASSERT_EQ(kinds(ev), "tds") << cs.name;
		const auto& l7 = T(ev[0]).d.login7;
		EXPECT_EQ(T(ev[0]).detail, TDSBPF_D_LOGIN7) << cs.name;
		EXPECT_EQ(l7.tds_version, 0x74000004u);
		EXPECT_EQ(l7.packet_size, 8000u);
		EXPECT_EQ(l7.option_flags2 & 0x80, cs.sspi.empty() ? 0 : 0x80) << cs.name;
		EXPECT_EQ(l7.type_flags, 0x20);
		EXPECT_EQ(l7.sspi_length, cs.sspi.size()) << cs.name;
		EXPECT_EQ(l7.sspi_kind, cs.kind) << cs.name;
		EXPECT_EQ(l7.ntlm_type, cs.ntlm_type) << cs.name;
		EXPECT_EQ(l7.user_chars, cs.sspi.empty() ? 3 : 0);
		EXPECT_EQ(l7.total_length, body.size());
		EXPECT_EQ(ev[0].ev().flags & TDSBPF_F_TRUNCATED, 0) << cs.name;
	}
}

TEST(Walk, Login7FedAuthFeature)
{
	Collector c;
	Conn k;
	handshake(c, k);
	Login7 l;
	Bytes feat{0x02};
	le32(feat, 2);
	append(feat, {0x02, 0x00});
	l.features = cat({feat, Bytes{0xff}});
	c.feed(k.data(true, tds(TDS_LOGIN7, 1, login7(l))));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds");
	EXPECT_EQ(T(ev[0]).d.login7.option_flags3 & 0x10, 0x10);
	EXPECT_EQ(T(ev[0]).d.login7.flags, TDSBPF_L7_FEDAUTH | TDSBPF_L7_FEATURES_SEEN);
}

TEST(Walk, PasswordNeverInEvents)
{
	const std::string pw = "Zq9!PaSsW0rD-Secret";
	Collector c;
	Conn k;
	handshake(c, k);
	Login7 l;
	l.user = "carol";
	l.password = pw;
	Bytes body = login7(l);
	c.feed(k.data(true, tds(TDS_LOGIN7, 1, body)));
	auto ev = c.take();
	// the excerpt of the LOGIN7's text too, of this one and of a password change
	ASSERT_EQ(c.excerpts.size(), 1u);
	Conn k3;
	k3.cport = 50002;
	handshake(c, k3);
	Login7 change = l;
	change.password = "0ld-" + pw;
	change.change_password = pw;
	c.feed(k3.data(true, tds(TDS_LOGIN7, 1, login7(change))));
	for (auto& r : c.take())
		ev.push_back(r);
	ASSERT_EQ(c.excerpts.size(), 2u);
	// the same LOGIN7 cut over two segments
	Conn k2;
	k2.cport = 50001;
	handshake(c, k2);
	Bytes pkt = tds(TDS_LOGIN7, 1, body);
	c.feed(k2.data(true, Bytes(pkt.begin(), pkt.begin() + 120)));
	c.feed(k2.data(true, Bytes(pkt.begin() + 120, pkt.end())));
	for (auto& r : c.take())
		ev.push_back(r);
	ASSERT_EQ(c.excerpts.size(), 3u); // the cut one's first segment
	for (auto& r : c.excerpts)
		ev.push_back(r);
	ASSERT_GE(ev.size(), 2u);
	const Bytes obf = obfuscate_password(pw), wide = utf16(pw);
	const Bytes needles[] = {obf, wide, Bytes(pw.begin(), pw.end()),
				 // a part of it is enough to give it away
				 Bytes(obf.begin(), obf.begin() + 8), Bytes(obf.end() - 8, obf.end()),
				 Bytes(wide.begin() + 4, wide.begin() + 12)};
	// the password is in the wire bytes (the test is not vacuous)
	ASSERT_NE(std::search(pkt.begin(), pkt.end(), needles[0].begin(), needles[0].end()), pkt.end());
	for (auto& r : ev) {
		for (auto& n : needles)
			EXPECT_EQ(std::search(r.raw.begin(), r.raw.end(), n.begin(), n.end()), r.raw.end())
				<< "password bytes in a " << tdsbpf::event_kind_name(r.kind()) << " event";
	}
}

TEST(Walk, ServerRepliesThroughWalk)
{
	Collector c;
	Conn k;
	handshake(c, k);
	c.feed(k.data(true, tds(TDS_LOGIN7, 1, login7(Login7{}))));
	Bytes reply = cat({tok_env_database("master"), tok_loginack(0x74000004, {15, 0, 0x10, 0x8c}),
			   tok_env_packet_size("8000", "4096"), tok_env_routing(1444, "db2"), tok_done(0, 0, 0)});
	c.feed(k.data(false, tds(TDS_REPLY, 1, reply, 55)));
	c.feed(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 1"))));
	c.feed(k.data(false, tds(TDS_REPLY, 1, cat({tok_colmetadata_int(), tok_done(0x10, 0xc1, 1)}), 55)));
	c.feed(k.data(true, tds(TDS_ATTENTION, 1, {})));
	c.feed(k.data(false, tds(TDS_REPLY, 1, tok_done(0x20, 0, 0), 55)));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tds,tds,tds,tds,tds");
	const auto& r = T(ev[1]);
	EXPECT_EQ(r.detail, TDSBPF_D_REPLY);
	EXPECT_EQ(r.spid, 55);
	EXPECT_EQ(r.d.reply.tokens, TDSBPF_TOK_ENVCHANGE | TDSBPF_TOK_LOGINACK | TDSBPF_TOK_PACKETSIZE |
					    TDSBPF_TOK_ROUTING | TDSBPF_TOK_DONE);
	EXPECT_EQ(r.d.reply.packet_size, 8000u);
	EXPECT_EQ(r.d.reply.routing_port, 1444);
	EXPECT_EQ(r.d.reply.server_version[0], 15);
	EXPECT_EQ(r.tail_token, 0xfd);
	EXPECT_EQ(r.tail_done_status, 0);
	EXPECT_EQ(T(ev[2]).detail, TDSBPF_D_REQUEST);
	EXPECT_EQ(T(ev[2]).d.request.all_headers_length, 22u);
	EXPECT_EQ(T(ev[3]).d.reply.tokens, TDSBPF_TOK_COLMETADATA | TDSBPF_TOK_STOPPED);
	EXPECT_EQ(T(ev[3]).tail_token, 0xfd);
	EXPECT_EQ(T(ev[3]).tail_done_status, 0x10);
	EXPECT_EQ(T(ev[3]).tail_done_rows, 1u);
	EXPECT_EQ(T(ev[4]).type, TDS_ATTENTION);
	EXPECT_EQ(T(ev[4]).length, 8);
	EXPECT_EQ(T(ev[5]).d.reply.done_status, 0x20);
	EXPECT_EQ(T(ev[5]).tail_done_status, 0x20);
}

TEST(Walk, Tds71TailDoneAfterLoginAck)
{
	Collector c;
	Conn k;
	handshake(c, k);
	Login7 l;
	l.tds_version = 0x71000001;
	c.feed(k.data(true, tds(TDS_LOGIN7, 1, login7(l))));
	c.feed(k.data(false,
		      tds(TDS_REPLY, 1, cat({tok_loginack(0x71000001, {8, 0, 7, 0xf7}), tok_done(0, 0, 0, true)}))));
	c.feed(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 1", false))));
	c.feed(k.data(false,
		      tds(TDS_REPLY, 1,
			  cat({tok_colmetadata_int(), Bytes{0xd1, 1, 0, 0, 0}, tok_done(0x10, 0xc1, 1, true)}))));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tds,tds,tds");
	EXPECT_EQ(T(ev[1]).d.reply.loginack_tds_version, 0x71000001u);
	EXPECT_EQ(T(ev[1]).tail_token, 0xfd);
	EXPECT_EQ(T(ev[3]).tail_token, 0xfd);
	EXPECT_EQ(T(ev[3]).tail_done_status, 0x10);
	EXPECT_EQ(T(ev[3]).tail_done_rows, 1u);
}

TEST(Walk, RequestsRpcByIdAndName)
{
	Collector c;
	Conn k;
	handshake(c, k);
	c.feed(k.data(true, tds(TDS_RPC, 1, rpc_by_id(10))));
	c.feed(k.data(true, tds(TDS_RPC, 0x09, rpc_by_name("sp_who"))));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tds");
	EXPECT_EQ(T(ev[0]).d.request.rpc_proc_id, 10);
	EXPECT_EQ(T(ev[1]).d.request.rpc_name_chars, 6);
	EXPECT_EQ(T(ev[1]).status, 0x09); // EOM | RESETCONNECTION
}

TEST(Walk, NtlmAuthenticateNames)
{
	Collector c;
	Conn k;
	handshake(c, k);
	Bytes auth = ntlm_authenticate("CORP", "alice", "WS01");
	c.feed(k.data(true, tds(TDS_SSPI, 1, auth)));
	// SPNEGO-wrapped continuation: negTokenResp holding the AUTHENTICATE
	Bytes wrapped = cat({Bytes{0xa1, 0x81, (uint8_t)(auth.size() + 8), 0x30, 0x81, (uint8_t)(auth.size() + 5), 0xa2,
				   0x81, (uint8_t)(auth.size() + 2), 0x04, (uint8_t)0x81, (uint8_t)auth.size()},
			     auth});
	c.feed(k.data(true, tds(TDS_SSPI, 1, wrapped)));
	c.feed(k.data(true, tds(TDS_SSPI, 1, ntlm_negotiate())));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "ntlm_authenticate,ntlm_authenticate,tds");
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(ev[i].raw.size(), sizeof(tdsbpf_ntlm_event));
		const auto& n = ev[i].ntlm();
		EXPECT_EQ(n.base.u.tds.type, TDS_SSPI);
		EXPECT_EQ(n.base.u.tds.d.sspi.kind, TDSBPF_SSPI_NTLM);
		EXPECT_EQ(n.base.u.tds.d.sspi.ntlm_type, 3);
		EXPECT_EQ(n.encoding, TDSBPF_NTLM_UNICODE);
		EXPECT_EQ(n.negotiate_flags, 0xe2888215u);
		EXPECT_EQ(Bytes(n.domain, n.domain + n.domain_len), utf16("CORP"));
		EXPECT_EQ(Bytes(n.user, n.user + n.user_len), utf16("alice"));
		EXPECT_EQ(Bytes(n.workstation, n.workstation + n.workstation_len), utf16("WS01"));
	}
	EXPECT_EQ(T(ev[2]).d.sspi.kind, TDSBPF_SSPI_NTLM);
	EXPECT_EQ(T(ev[2]).d.sspi.ntlm_type, 1);
	EXPECT_EQ(T(ev[2]).d.sspi.length, ntlm_negotiate().size());
}

namespace {

// A conversation through the walk and the aggregator; the one record.
nlohmann::json one_record(const std::vector<Bytes>& frames, tdsbpf::AggregatorConfig cfg = {})
{
	Collector c;
	c.excerpts_inline = true;
	for (const auto& f : frames)
		c.feed(f);
	c.p.send_counted_work();
	tdsbpf::test::CollectSink sink;
	tdsbpf::Aggregator agg(cfg, sink);
	uint64_t ts = tdsbpf::test::kBaseNs;
	for (auto& r : c.take()) {
		reinterpret_cast<tdsbpf_event*>(r.raw.data())->ts_ns = ts += 1000000;
		agg.on_event(r.ev(), r.raw.size());
	}
	agg.finish(ts + 60'000'000'000ull);
	EXPECT_EQ(sink.records.size(), 1u);
	return sink.records.empty() ? nlohmann::json() : sink.records[0];
}

} // namespace

// Some drivers send the NTLM AUTHENTICATE (or a SPNEGO response) in a packet
// typed LOGIN7 (0x10) after the real LOGIN7: an SSPI continuation, not a
// second LOGIN7 with fields made of blob bytes. A real LOGIN7 whose length
// happens to start like a blob is still a LOGIN7.
TEST(Walk, SspiContinuationInALogin7Packet)
{
	Collector c;
	Conn k;
	handshake(c, k);
	Login7 l;
	l.flags2 |= 0x80; // integrated security
	l.user = "";
	l.sspi = ntlm_negotiate();
	c.feed(k.data(true, tds(TDS_LOGIN7, 1, login7(l))));
	c.feed(k.data(false, tds(TDS_REPLY, 1, tok_sspi(ntlm_challenge()))));
	Bytes auth = ntlm_authenticate("CORP", "alice", "WS01");
	c.feed(k.data(true, tds(TDS_LOGIN7, 1, auth)));
	Bytes wrapped = cat({Bytes{0xa1, 0x81, (uint8_t)(auth.size() + 8), 0x30, 0x81, (uint8_t)(auth.size() + 5), 0xa2,
				   0x81, (uint8_t)(auth.size() + 2), 0x04, (uint8_t)0x81, (uint8_t)auth.size()},
			     auth});
	c.feed(k.data(true, tds(TDS_LOGIN7, 1, wrapped)));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tds,ntlm_authenticate,ntlm_authenticate");
	EXPECT_EQ(T(ev[0]).detail, TDSBPF_D_LOGIN7);
	for (int i = 2; i < 4; i++) {
		const auto& n = ev[i].ntlm();
		EXPECT_EQ(n.base.u.tds.type, TDS_LOGIN7);
		EXPECT_EQ(n.base.u.tds.detail, TDSBPF_D_SSPI);
		EXPECT_EQ(n.base.u.tds.d.sspi.ntlm_type, 3);
		EXPECT_EQ(Bytes(n.user, n.user + n.user_len), utf16("alice"));
	}
	// LOGIN7s whose length's low byte is 0xa1 or 0x60 (or that spell 'N'):
	// their length is their body's, so they stay LOGIN7s
	for (uint8_t want : {uint8_t{0xa1}, uint8_t{0x60}, uint8_t{'N'}}) {
		Collector d;
		Conn m;
		handshake(d, m);
		Login7 big;
		// names add two bytes a character: one byte of SSPI blob makes the length odd
		if ((login7(big).size() & 1) != (want & 1))
			big.sspi = Bytes{0x00};
		while ((login7(big).size() & 0xff) != want)
			big.app += "x";
		d.feed(m.data(true, tds(TDS_LOGIN7, 1, login7(big))));
		auto e = d.take();
		ASSERT_EQ(e.size(), 1u);
		EXPECT_EQ(T(e[0]).detail, TDSBPF_D_LOGIN7) << (int)want;
	}
}

// Through the aggregator: the login stays integrated NTLM with its names.
TEST(Walk, SspiContinuationInALogin7PacketIsNtlmInTheRecord)
{
	Login7 l;
	l.flags2 |= 0x80;
	l.user = "";
	l.sspi = ntlm_negotiate();
	Conn k;
	auto rec =
		one_record({k.syn(), k.synack(), k.ack(true), k.data(true, tds(TDS_LOGIN7, 1, login7(l))),
			    k.data(false, tds(TDS_REPLY, 1, tok_sspi(ntlm_challenge()))),
			    k.data(true, tds(TDS_LOGIN7, 1, ntlm_authenticate("CORP", "alice", "WS01"))),
			    k.data(false, tds(TDS_REPLY, 1,
					      cat({tok_loginack(0x74000004, {16, 0, 0x03, 0xe8}), tok_done(0, 0, 0)}))),
			    k.fin(true), k.fin(false), k.ack(true)});
	EXPECT_EQ(rec["authentication"]["method"], "ntlm") << rec.dump();
	EXPECT_EQ(rec["authentication"]["integrated_security"], true);
	EXPECT_EQ(rec["authentication"]["ntlm"]["user"], "alice");
	EXPECT_EQ(rec["login"]["outcome"], "success");
	EXPECT_EQ(rec["authentication"]["sspi_client_packets"], 1);
}

TEST(Walk, NtlmLongNamesAreCut)
{
	Collector c;
	Conn k;
	handshake(c, k);
	std::string longuser(40, 'u'); // 80 bytes of UTF-16
	c.feed(k.data(true, tds(TDS_SSPI, 1, ntlm_authenticate("D", longuser, ""))));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "ntlm_authenticate");
	EXPECT_EQ(ev[0].ntlm().user_len, 62);
	EXPECT_EQ(ev[0].ntlm().workstation_len, 0);
	EXPECT_EQ(ev[0].ntlm().domain_len, 2);
}

TEST(Walk, SmpFrames)
{
	Collector c;
	Conn k;
	handshake(c, k);
	c.feed(k.data(true, smp(SMP_SYN, 0, 0, 4)));
	c.feed(k.data(true, smp(SMP_DATA, 0, 1, 4, tds(TDS_SQL_BATCH, 1, batch_body("select 2")))));
	c.feed(k.data(false, smp(SMP_ACK, 0, 1, 5)));
	c.feed(k.data(false, smp(SMP_DATA, 0, 1, 5, tds(TDS_REPLY, 1, tok_done(0x10, 0xc1, 7), 52))));
	c.feed(k.data(true, cat({smp(SMP_FIN, 0, 1, 5), smp(SMP_FIN, 1, 0, 4)})));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "smp,tds,smp,tds,smp,smp");
	EXPECT_EQ(ev[0].ev().u.smp.flags, SMP_SYN);
	EXPECT_EQ(ev[0].ev().u.smp.length, 16u);
	EXPECT_EQ(ev[0].ev().u.smp.window, 4u);
	EXPECT_EQ(ev[1].ev().flags & TDSBPF_F_IN_SMP, TDSBPF_F_IN_SMP);
	EXPECT_EQ(ev[1].ev().frame_offset, 16u);
	EXPECT_EQ(T(ev[1]).smp_flags, SMP_DATA);
	EXPECT_EQ(T(ev[1]).smp_seq, 1u);
	EXPECT_EQ(T(ev[1]).smp_window, 4u);
	EXPECT_EQ(T(ev[1]).type, TDS_SQL_BATCH);
	EXPECT_EQ(T(ev[1]).detail, TDSBPF_D_REQUEST);
	EXPECT_EQ(T(ev[1]).d.request.all_headers_length, 22u);
	EXPECT_EQ(ev[2].ev().u.smp.flags, SMP_ACK);
	EXPECT_EQ(ev[2].ev().dir, TDSBPF_DIR_S2C);
	EXPECT_EQ(T(ev[3]).tail_token, 0xfd);
	EXPECT_EQ(T(ev[3]).tail_done_rows, 7u);
	EXPECT_EQ(ev[4].ev().u.smp.flags, SMP_FIN);
	EXPECT_EQ(ev[5].ev().u.smp.sid, 1);
	EXPECT_EQ(ev[5].ev().frame_offset, 16u);
}

TEST(Walk, SeveralPacketsInOneSegment)
{
	Collector c;
	Conn k;
	handshake(c, k);
	Bytes p1 = tds(TDS_SQL_BATCH, 0, batch_body("select 1 union all "), 0, 1);
	Bytes p2 = tds(TDS_SQL_BATCH, 0, utf16("select 2 union all "), 0, 2);
	Bytes p3 = tds(TDS_SQL_BATCH, 1, utf16("select 3"), 0, 3);
	Bytes p4 = tds(TDS_RPC, 1, rpc_by_id(12), 0, 1);
	c.feed(k.data(true, cat({p1, p2, p3, p4})));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tds,tds,tds");
	EXPECT_EQ(ev[0].ev().frame_offset, 0u);
	EXPECT_EQ(ev[1].ev().frame_offset, p1.size());
	EXPECT_EQ(ev[2].ev().frame_offset, p1.size() + p2.size());
	EXPECT_EQ(ev[3].ev().frame_offset, p1.size() + p2.size() + p3.size());
	EXPECT_EQ(T(ev[0]).detail, TDSBPF_D_REQUEST);
	EXPECT_EQ(T(ev[1]).detail, TDSBPF_D_NONE); // continuation packets have no message header
	EXPECT_EQ(T(ev[2]).detail, TDSBPF_D_NONE);
	EXPECT_EQ(T(ev[3]).detail, TDSBPF_D_REQUEST);
	EXPECT_EQ(T(ev[3]).d.request.rpc_proc_id, 12);
	for (auto& e : ev)
		EXPECT_EQ(e.ev().flags & TDSBPF_F_TAIL_IN_SEG, 0); // not set by the walk for requests
}

TEST(Walk, OnePacketOverSeveralSegments)
{
	Collector c;
	Conn k;
	handshake(c, k);
	Bytes big = tds(TDS_SQL_BATCH, 1, batch_body(std::string(200, 'x')));
	ASSERT_EQ(big.size(), 8u + 22 + 400);
	Bytes next = tds(TDS_SQL_BATCH, 1, batch_body("select 9"));
	c.feed(k.data(true, Bytes(big.begin(), big.begin() + 150)));
	c.feed(k.data(true, Bytes(big.begin() + 150, big.begin() + 300)));
	c.feed(k.data(true, cat({Bytes(big.begin() + 300, big.end()), next})));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tds");
	EXPECT_EQ(T(ev[0]).length, big.size());
	EXPECT_EQ(ev[0].ev().flags & TDSBPF_F_TRUNCATED, TDSBPF_F_TRUNCATED);
	EXPECT_EQ(T(ev[0]).d.request.all_headers_length, 22u);
	EXPECT_EQ(ev[1].ev().frame_offset, big.size() - 300);
	EXPECT_EQ(ev[1].ev().flags, 0);
	EXPECT_EQ(T(ev[1]).detail, TDSBPF_D_REQUEST);
}

TEST(Walk, ReplyTailDoneInLaterSegment)
{
	Collector c;
	Conn k;
	handshake(c, k);
	Bytes rep = tds(TDS_REPLY, 1, cat({tok_colmetadata_int(), Bytes(300, 0xd1), tok_done(0x10, 0xc1, 300)}));
	c.feed(k.data(false, Bytes(rep.begin(), rep.begin() + 100)));
	c.feed(k.data(false, Bytes(rep.begin() + 100, rep.begin() + 200)));
	c.feed(k.data(false, Bytes(rep.begin() + 200, rep.end())));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tds_done");
	EXPECT_EQ(T(ev[0]).tail_token, 0);
	EXPECT_EQ(ev[1].ev().u.done.token, 0xfd);
	EXPECT_EQ(ev[1].ev().u.done.status, 0x10);
	EXPECT_EQ(ev[1].ev().u.done.rows, 300u);
	EXPECT_EQ(ev[1].ev().frame_offset, rep.size() - 200);
}

// A stored procedure's reply: the rows of its last statement are in the
// DONEINPROC before RETURNSTATUS and DONEPROC; reported with the final DONE,
// in the packet's event and, when the packet ends in a later segment, in the
// DONE event; and counted in the record's rows.
namespace {

// The walk's event for every TDS packet (as --every-request and --events).
tdsbpf::HostParserConfig per_packet()
{
	tdsbpf::HostParserConfig cfg;
	cfg.count_work = false;
	return cfg;
}

// The records of a conversation whose frames come 1 ms apart (2 s before
// those whose index is in pauses), through the walk with the routine work
// counted in the flow entry or not, and the aggregator. kinds_out: the
// events' kinds.
std::vector<nlohmann::json> records_of(const std::vector<Bytes>& frames, bool count_work,
				       const std::set<std::size_t>& pauses = {}, std::string* kinds_out = nullptr)
{
	tdsbpf::HostParserConfig pc;
	pc.count_work = count_work;
	Collector c(pc);
	c.excerpts_inline = true;
	uint64_t ts = tdsbpf::test::kBaseNs;
	for (std::size_t i = 0; i < frames.size(); i++)
		c.feed(frames[i], ts += pauses.count(i) ? 2'000'000'000ull : 1'000'000ull);
	c.p.send_counted_work();
	auto recs = c.take();
	if (kinds_out)
		*kinds_out = kinds(recs);
	tdsbpf::test::CollectSink sink;
	tdsbpf::Aggregator agg({}, sink);
	for (auto& r : recs)
		agg.on_event(r.ev(), r.raw.size());
	agg.finish(ts + 60'000'000'000ull);
	return sink.records;
}

// The conversation (closed with a four-way close, or left open) with its
// routine work counted and with an event per packet: one record each,
// the same; the events' kinds of each.
struct Compared {
	nlohmann::json record;
	std::string counted_kinds, packet_kinds;
};
Compared compare_counting(std::vector<Bytes> f, Conn& k, const std::set<std::size_t>& pauses, bool closed,
			  const std::string& what)
{
	if (closed) {
		f.push_back(k.fin(true));
		f.push_back(k.fin(false));
		f.push_back(k.ack(true));
	}
	Compared c;
	auto counted = records_of(f, true, pauses, &c.counted_kinds);
	auto every = records_of(f, false, pauses, &c.packet_kinds);
	EXPECT_EQ(counted.size(), 1u) << what;
	EXPECT_EQ(every.size(), 1u) << what;
	if (counted.size() == 1 && every.size() == 1) {
		EXPECT_EQ(counted[0].dump(), every[0].dump()) << what;
		c.record = every[0];
	}
	return c;
}

int count_of(const std::string& all, const std::string& what)
{
	int n = 0;
	for (std::size_t at = all.find(what); at != std::string::npos; at = all.find(what, at + 1))
		n++;
	return n;
}

} // namespace

// A kept connection's routine requests and replies are counted in the flow
// entry and reach user space as a few WORK records: the connection's record
// is the same, field for field, as with an event for every packet. What is
// not routine (an ERROR, an attention and its acknowledgement) still comes
// as events, in order; what the open flow counted last is sent at the end.
TEST(Walk, RoutineWorkCountedInTheFlowGivesTheSameRecord)
{
	for (bool closed : {false, true}) {
		Conn k;
		std::set<std::size_t> pauses;
		std::vector<Bytes> f = {k.syn(), k.synack(), k.ack(true)};
		Login7 l;
		f.push_back(k.data(true, tds(TDS_LOGIN7, 1, login7(l))));
		f.push_back(k.data(false,
				   tds(TDS_REPLY, 1,
				       cat({tok_loginack(0x74000004, {16, 0, 0x10, 0x00}), tok_done(0, 0, 0)}), 55)));
		auto pair = [&](uint8_t type, uint8_t status, uint64_t rows) {
			f.push_back(k.data(
				true, tds(type, status, type == TDS_RPC ? rpc_by_id(10) : batch_body("select 1"))));
			f.push_back(k.ack(false));
			f.push_back(k.data(false, tds(TDS_REPLY, 1,
						      cat({tok_colmetadata_int(), tok_done(0x10, 0xc1, rows)}), 55)));
			f.push_back(k.ack(true));
		};
		for (int i = 0; i < 12; i++)
			pair(i % 3 ? TDS_SQL_BATCH : TDS_RPC, i == 5 && !closed ? 0x09 : 1, static_cast<uint64_t>(i));
		pauses.insert(f.size()); // the next request after 2 s idle: a reuse
		pair(TDS_SQL_BATCH, 1, 7);
		// an error
		f.push_back(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 1/0"))));
		f.push_back(k.data(false, tds(TDS_REPLY, 1,
					      cat({tok_error(8134, 1, 16, "Divide by zero error encountered."),
						   tok_done(0x02, 0xc1, 0)}),
					      55)));
		for (int i = 0; i < 3; i++)
			pair(TDS_RPC, 1, 3);
		// a reply of two packets, the second across two segments
		f.push_back(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select n from rows(60)"))));
		f.push_back(k.data(false, tds(TDS_REPLY, 0, cat({tok_colmetadata_int(), Bytes(200, 0xd1)}), 55)));
		Bytes second = tds(TDS_REPLY, 1, cat({Bytes(300, 0xd1), tok_done(0x10, 0xc1, 60)}), 55, 2);
		f.push_back(k.data(false, Bytes(second.begin(), second.begin() + 100)));
		f.push_back(k.data(false, Bytes(second.begin() + 100, second.end())));
		for (int i = 0; i < 4; i++)
			pair(TDS_SQL_BATCH, 1, 1);
		// a request cancelled: the attention and its acknowledgement
		f.push_back(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("waitfor delay '1:00'"))));
		f.push_back(k.data(true, tds(TDS_ATTENTION, 1, {})));
		f.push_back(k.data(false, tds(TDS_REPLY, 1, tok_done(0x20, 0, 0), 55)));
		for (int i = 0; i < 5; i++)
			pair(TDS_SQL_BATCH, 1, 2);
		f.push_back(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 2")))); // unanswered
		Compared c = compare_counting(f, k, pauses, closed, "closed=" + std::to_string(closed));
		const std::string &counted_kinds = c.counted_kinds, &packet_kinds = c.packet_kinds;
		ASSERT_TRUE(c.record.is_object());
		// what the record holds, so that the equality means something
		const auto& w = c.record["work"];
		EXPECT_EQ(w["requests"], 29) << w.dump();
		EXPECT_EQ(w["rpcs"], 7) << w.dump();
		EXPECT_EQ(w["responses"], 28) << w.dump();
		EXPECT_EQ(w["errors"], 1) << w.dump();
		EXPECT_EQ(w["attentions"], 1) << w.dump();
		EXPECT_EQ(w["attention_acks"], 1) << w.dump();
		EXPECT_EQ(w["rows"], 66 + 7 + 9 + 60 + 4 + 10) << w.dump();
		EXPECT_EQ(w["reset_connection"], closed ? 0 : 1) << w.dump();
		EXPECT_EQ(w["latency_ms"]["count"], 28) << w.dump();
		if (closed) { // the evidence when no request reset the connection
			EXPECT_NE(c.record["pooling"].dump().find("1 request(s) came after the connection sat idle"),
				  std::string::npos)
				<< c.record["pooling"].dump();
		}
		// and that the counting happened: a few WORK records for most of the packets
		EXPECT_GE(count_of(counted_kinds, "work"), 3) << counted_kinds;
		EXPECT_EQ(count_of(packet_kinds, "work"), 0) << packet_kinds;
		EXPECT_LT(count_of(counted_kinds, "tds"), count_of(packet_kinds, "tds") / 3) << counted_kinds;
	}
}

// An encrypted connection (full encryption, and TDS 8.0): once four runs of
// the client's TLS records have reached user space, the runs that follow and
// the server's answers are counted in the flow entry; the record is the same.
TEST(Walk, EncryptedRoutineWorkCountedInTheFlowGivesTheSameRecord)
{
	for (bool strict : {false, true}) {
		for (bool closed : {false, true}) {
			Conn k;
			std::set<std::size_t> pauses;
			std::vector<Bytes> f = {k.syn(), k.synack(), k.ack(true)};
			if (strict) {
				f.push_back(k.data(true, tls_client_hello(true)));
				f.push_back(k.data(false, tls_server_hello(0x0304, true)));
				f.push_back(
					k.data(true, cat({tls_record(20, {0x01}), tls_record(22, Bytes(40, 0x14))})));
			} else {
				f.push_back(k.data(true, tds(TDS_PRELOGIN, 1, prelogin({{1, {0x01}}}))));
				f.push_back(k.data(false, tds(TDS_REPLY, 1, prelogin({{1, {0x01}}}))));
				f.push_back(k.data(true, tds(TDS_PRELOGIN, 1, tls_client_hello(false))));
				f.push_back(k.data(false, tds(TDS_PRELOGIN, 1, tls_server_hello(0x0303, false))));
				f.push_back(k.data(
					true, tds(TDS_PRELOGIN, 1,
						  cat({tls_record(20, {0x01}), tls_record(22, Bytes(40, 0x14))}))));
				f.push_back(k.data(
					false, tds(TDS_PRELOGIN, 1,
						   cat({tls_record(20, {0x01}), tls_record(22, Bytes(40, 0x14))}))));
			}
			// runs of client records, each answered by one or more of the server's
			auto run = [&](std::size_t client, std::size_t server, std::size_t size) {
				for (std::size_t i = 0; i < client; i++)
					f.push_back(k.data(true, tls_record(23, Bytes(size, 0xab))));
				f.push_back(k.ack(false));
				for (std::size_t i = 0; i < server; i++)
					f.push_back(k.data(false, tls_record(23, Bytes(size + 40 * i, 0xcd))));
				f.push_back(k.ack(true));
			};
			if (strict)
				run(1, 1, 90); // the PRELOGIN inside TLS
			run(1, 1, 300);	       // the LOGIN7, and its answer
			for (int i = 0; i < 14; i++)
				run(1 + i % 2, 1 + i % 3, 60);
			pauses.insert(f.size()); // the next request after 2 s idle
			run(1, 2, 80);
			for (int i = 0; i < 12; i++)
				run(1, 1, 70);
			f.push_back(k.data(true, tls_record(23, Bytes(70, 0xab)))); // unanswered
			Compared c = compare_counting(f, k, pauses, closed,
						      "strict=" + std::to_string(strict) +
							      " closed=" + std::to_string(closed));
			const std::string &counted_kinds = c.counted_kinds, &packet_kinds = c.packet_kinds;
			ASSERT_TRUE(c.record.is_object());
			const auto& w = c.record["work"];
			EXPECT_EQ(c.record["negotiated"]["encryption"], strict ? "strict" : "full") << c.record.dump();
			EXPECT_GE(w["encrypted_requests"].get<int>(), 26) << w.dump();
			EXPECT_GE(w["latency_ms"]["count"].get<int>(), 25) << w.dump();
			EXPECT_GE(count_of(counted_kinds, "work"), 2) << counted_kinds;
			EXPECT_LT(count_of(counted_kinds, "tls"), count_of(packet_kinds, "tls") / 2) << counted_kinds;
		}
	}
}

// The kernel's flow table forgot a connection (least recently used) while
// its flow entry held routine work not yet sent: its record says counts may
// be missing, as for events the ring buffer dropped.
TEST(Walk, FlowEntryForgottenWhileCountingSaysCountsMayBeMissing)
{
	for (bool forgotten : {false, true}) {
		tdsbpf::test::Trace t("10.0.0.2", 50000, "10.0.0.1", 1433);
		t.syn(0.0, 100).synack(0.001, 500, 101).hs_ack(0.002, 101, 501);
		t.login7(0.01, 0x74000004, false, TDSBPF_SSPI_NONE);
		t.loginack(0.02, 0x74000004, 16, 0, 1000, 55);
		t.request(0.03, TDS_SQL_BATCH).response(0.031).tail_done(0x10, 1);
		uint32_t seq = 0;
		for (auto& r : t.records())
			r.base().flow_seq = ++seq;
		tdsbpf::test::Record w;
		w.base() = t.records().back().base();
		w.base().kind = TDSBPF_EV_WORK;
		w.base().u.work = {};
		w.base().u.work.sql_batches = 3;
		w.base().u.work.responses = 3;
		w.base().u.work.events = 6;
		w.base().u.work.last_s2c_ns = w.base().ts_ns + 3000000;
		w.base().ts_ns += 3000000;
		w.base().flow_seq = ++seq;
		t.records().push_back(w);
		if (forgotten) // the entry made again: numbering starts over, mid-stream
			t.midstream();
		t.request(0.5, TDS_SQL_BATCH).response(0.501);
		t.fin(0.6, TDSBPF_DIR_C2S, 200, 600)
			.fin(0.601, TDSBPF_DIR_S2C, 600, 201)
			.close_ack(0.602, TDSBPF_DIR_C2S, 201, 601);
		uint32_t again = forgotten ? 0 : seq;
		for (std::size_t i = t.records().size() - 5; i < t.records().size(); i++)
			t.records()[i].base().flow_seq = ++again;
		tdsbpf::test::CollectSink sink;
		tdsbpf::Aggregator agg({}, sink);
		for (auto& r : t.records())
			agg.on_event(r.base(), r.len);
		agg.finish(tdsbpf::test::at(60));
		ASSERT_EQ(sink.records.size(), 1u);
		const auto& rec = sink.records[0];
		EXPECT_EQ(rec["work"]["requests"], 5) << rec["work"].dump();
		EXPECT_EQ(rec["tracer"]["more_may_be_lost"], forgotten) << rec["tracer"].dump();
	}
}

// Several kept connections, their requests interleaved and left open at
// the end: each flow's counted work reaches user space at the end, so that
// every record is the same as with an event for every packet.
TEST(Walk, EveryOpenFlowSendsItsCountedWorkAtTheEnd)
{
	std::vector<Conn> conns(5);
	std::vector<Bytes> f;
	for (std::size_t i = 0; i < conns.size(); i++) {
		Conn& k = conns[i];
		k.cport = static_cast<uint16_t>(50000 + i);
		for (Bytes b : {k.syn(), k.synack(), k.ack(true)})
			f.push_back(b);
		Login7 l;
		f.push_back(k.data(true, tds(TDS_LOGIN7, 1, login7(l))));
		f.push_back(k.data(false,
				   tds(TDS_REPLY, 1,
				       cat({tok_loginack(0x74000004, {16, 0, 0x10, 0x00}), tok_done(0, 0, 0)}), 55)));
	}
	// in a changing order, so that the least recently used flow changes
	for (int round = 0; round < 7; round++)
		for (std::size_t j = 0; j < conns.size(); j++) {
			Conn& k = conns[(j * 3 + static_cast<std::size_t>(round)) % conns.size()];
			f.push_back(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 1"))));
			f.push_back(k.data(
				false, tds(TDS_REPLY, 1, cat({tok_colmetadata_int(), tok_done(0x10, 0xc1, 1)}), 55)));
			f.push_back(k.ack(true));
		}
	std::string counted_kinds;
	auto counted = records_of(f, true, {}, &counted_kinds);
	auto every = records_of(f, false);
	ASSERT_EQ(counted.size(), conns.size());
	ASSERT_EQ(every.size(), conns.size());
	EXPECT_GE(count_of(counted_kinds, "work"), static_cast<int>(conns.size())) << counted_kinds;
	for (std::size_t i = 0; i < conns.size(); i++) {
		EXPECT_EQ(counted[i]["work"]["requests"], 7) << counted[i]["work"].dump();
		EXPECT_EQ(counted[i].dump(), every[i].dump());
	}
}

TEST(Walk, FullFlowTableForgetsTheLeastRecentlyUsedFlow)
{
	// room for two flows: A and B open, A is used again, C opens. B, the
	// least recently used, is forgotten (its next packet starts a flow
	// mid-stream); A is not. Then the same with B used last.
	for (bool a_last : {true, false}) {
		tdsbpf::HostParserConfig cfg;
		cfg.max_flows = 2;
		Collector c(cfg);
		Conn a, b, n;
		a.cport = 50000;
		b.cport = 50001;
		n.cport = 50002;
		handshake(c, a);
		handshake(c, b);
		Conn& used = a_last ? a : b;
		c.feed(used.ack(true));
		handshake(c, n);
		c.take();
		Bytes hello = tds(TDS_PRELOGIN, 1, prelogin({{0, Bytes{16, 0, 0, 0, 0, 0}}}));
		// the kept one first (the other's new entry forgets the oldest again)
		Conn& other = a_last ? b : a;
		c.feed(used.data(true, hello));
		c.feed(other.data(true, hello));
		auto ev = of_kind(c.take(), TDSBPF_EV_TDS);
		ASSERT_EQ(ev.size(), 2u);
		EXPECT_FALSE(ev[0].ev().flags & TDSBPF_F_MIDSTREAM) << "kept, a_last " << a_last;
		EXPECT_TRUE(ev[1].ev().flags & TDSBPF_F_MIDSTREAM) << "forgotten, a_last " << a_last;
		EXPECT_EQ(c.p.flows(), 2u);
	}
}

TEST(Walk, ProcedureReplyRowsFromItsDoneInProc)
{
	Conn k;
	Bytes tail = cat(
		{tok_done(0x11, 0xc1, 25, false, 0xff), Bytes{0x79, 0, 0, 0, 0}, tok_done(0x00, 0xe0, 0, false, 0xfe)});
	Bytes big = tds(TDS_REPLY, 1, cat({tok_colmetadata_int(), Bytes(300, 0xd1), tail}), 55);
	std::vector<Bytes> frames = {k.syn(), k.synack(), k.ack(true)};
	frames.push_back(k.data(true, tds(TDS_RPC, 1, rpc_by_id(10))));
	frames.push_back(k.data(false, tds(TDS_REPLY, 1, cat({tok_colmetadata_int(), tail}), 55)));
	frames.push_back(k.data(true, tds(TDS_RPC, 1, rpc_by_id(10))));
	frames.push_back(k.data(false, Bytes(big.begin(), big.begin() + 200)));
	frames.push_back(k.data(false, Bytes(big.begin() + 200, big.end())));
	Collector c(per_packet());
	for (const auto& f : frames)
		c.feed(f);
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tcp_syn,tcp_synack,tcp_handshake_ack,tds,tds,tds,tds,tds_done");
	EXPECT_EQ(T(ev[4]).tail_token, 0xfe);
	EXPECT_EQ(T(ev[4]).tail_flags, TDSBPF_TAIL_INPROC_ROWS);
	EXPECT_EQ(T(ev[4]).tail_done_status, 0);
	EXPECT_EQ(T(ev[4]).tail_done_rows, 25u);
	EXPECT_EQ(ev[7].ev().u.done.token, 0xfe);
	EXPECT_EQ(ev[7].ev().u.done.flags, TDSBPF_TAIL_INPROC_ROWS);
	EXPECT_EQ(ev[7].ev().u.done.rows, 25u);
	EXPECT_EQ(one_record(frames)["work"]["rows"], 50);
}

TEST(Walk, TdsHeaderSplitAcrossSegments)
{
	for (size_t cut : {1u, 3u, 7u}) {
		Collector c;
		Conn k;
		handshake(c, k);
		Bytes a = tds(TDS_SQL_BATCH, 1, batch_body("select 1"));
		Bytes b = tds(TDS_RPC, 1, rpc_by_id(10));
		Bytes all = cat({a, b});
		c.feed(k.data(true, Bytes(all.begin(), all.begin() + a.size() + cut)));
		c.feed(k.data(true, Bytes(all.begin() + a.size() + cut, all.end())));
		auto ev = c.take();
		ASSERT_EQ(kinds(ev), "tds,tds") << "cut " << cut;
		EXPECT_EQ(T(ev[1]).type, TDS_RPC);
		EXPECT_EQ(T(ev[1]).length, b.size());
		EXPECT_EQ(ev[1].ev().flags & TDSBPF_F_CARRIED, TDSBPF_F_CARRIED);
		EXPECT_EQ(ev[1].ev().frame_offset, 0u);
		EXPECT_EQ(ev[1].ev().seq, k.cseq - (b.size() - cut));
		EXPECT_EQ(T(ev[1]).d.request.rpc_proc_id, 10) << "cut " << cut;
	}
}

TEST(Walk, SmpTdsHeaderSplitAcrossSegments)
{
	for (size_t cut : {5u, 10u, 16u, 20u, 23u}) {
		Collector c;
		Conn k;
		handshake(c, k);
		Bytes f1 = smp(SMP_ACK, 0, 0, 8);
		Bytes f2 = smp(SMP_DATA, 3, 2, 9, tds(TDS_SQL_BATCH, 1, batch_body("select 1")));
		Bytes all = cat({f1, f2});
		c.feed(k.data(true, Bytes(all.begin(), all.begin() + 16 + cut)));
		c.feed(k.data(true, Bytes(all.begin() + 16 + cut, all.end())));
		auto ev = c.take();
		ASSERT_EQ(kinds(ev), "smp,tds") << "cut " << cut;
		const auto& e = ev[1].ev();
		EXPECT_EQ(e.flags & TDSBPF_F_IN_SMP, TDSBPF_F_IN_SMP);
		EXPECT_EQ(T(ev[1]).smp_sid, 3);
		EXPECT_EQ(T(ev[1]).smp_seq, 2u);
		EXPECT_EQ(T(ev[1]).smp_window, 9u);
		EXPECT_EQ(T(ev[1]).type, TDS_SQL_BATCH);
		EXPECT_EQ(T(ev[1]).length, f2.size() - 16);
		// the TDS header starts 16 - cut bytes into the second segment (or before it)
		EXPECT_EQ(e.frame_offset, cut < 16 ? 16 - cut : 0u) << "cut " << cut;
		if (cut > 16) {
			EXPECT_EQ(e.flags & TDSBPF_F_CARRIED, TDSBPF_F_CARRIED);
		}
	}
}

TEST(Walk, TinySegmentsCarryTheHeader)
{
	// a header that comes one byte per segment
	Collector c;
	Conn k;
	handshake(c, k);
	Bytes a = tds(TDS_RPC, 1, rpc_by_id(10));
	for (size_t i = 0; i < 8; i++)
		c.feed(k.data(true, Bytes{a[i]}));
	c.feed(k.data(true, Bytes(a.begin() + 8, a.end())));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds");
	EXPECT_EQ(T(ev[0]).type, TDS_RPC);
	EXPECT_EQ(T(ev[0]).length, a.size());
}

TEST(Walk, KeepAliveAndItsAck)
{
	for (int bytes : {0, 1}) {
		Collector c(per_packet());
		Conn k;
		handshake(c, k);
		c.feed(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 1"))));
		c.feed(k.data(false, tds(TDS_REPLY, 1, tok_done(0, 0, 0))));
		c.take();
		c.feed(k.frame(true, k.cseq - 1, k.sseq, ACK, bytes ? Bytes{0x00} : Bytes{}));
		c.feed(k.frame(false, k.sseq, k.cseq, ACK, {}));
		auto ev = c.take();
		ASSERT_EQ(kinds(ev), "tcp_keepalive,tcp_keepalive_ack") << bytes;
		EXPECT_EQ(ev[0].ev().dir, TDSBPF_DIR_C2S);
		EXPECT_EQ(ev[0].ev().payload_len, (uint32_t)bytes);
		EXPECT_EQ(ev[1].ev().dir, TDSBPF_DIR_S2C);
		// the data after it is still framed
		c.feed(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 2"))));
		EXPECT_EQ(kinds(c.take()), "tds");
	}
}

TEST(Walk, RetransmissionIsNotFramedTwice)
{
	Collector c;
	Conn k;
	handshake(c, k);
	uint32_t seq = k.cseq;
	Bytes pkt = tds(TDS_SQL_BATCH, 1, batch_body("select 1"));
	c.feed(k.data(true, pkt));
	c.feed(k.frame(true, seq, k.sseq, ACK | PSH, pkt));
	// a retransmission that overlaps old and new bytes: only the new packet is framed
	Bytes next = tds(TDS_RPC, 1, rpc_by_id(10));
	c.feed(k.frame(true, seq, k.sseq, ACK | PSH, cat({pkt, next})));
	k.cseq += (uint32_t)next.size();
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tcp_retransmission,tcp_retransmission,tds");
	EXPECT_EQ(ev[1].ev().u.tcp.retrans_bytes, pkt.size());
	EXPECT_EQ(ev[2].ev().u.tcp.retrans_bytes, pkt.size());
	EXPECT_EQ(T(ev[3]).type, TDS_RPC);
	EXPECT_EQ(ev[3].ev().frame_offset, pkt.size());
}

TEST(Walk, ZeroWindow)
{
	Collector c;
	Conn k;
	handshake(c, k);
	c.feed(k.frame(false, k.sseq, k.cseq, ACK, {}, 0));
	c.feed(k.frame(false, k.sseq, k.cseq, ACK, {}, 0));
	c.feed(k.frame(false, k.sseq, k.cseq, ACK, {}, 4096));
	c.feed(k.frame(false, k.sseq, k.cseq, ACK, {}, 0));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tcp_zero_window,tcp_zero_window");
	EXPECT_EQ(ev[0].ev().dir, TDSBPF_DIR_S2C);
	EXPECT_EQ(ev[0].ev().window, 0);
}

TEST(Walk, FourWayCloseWithCloseAcks)
{
	Collector c;
	Conn k;
	handshake(c, k);
	c.feed(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 1"))));
	c.take();
	c.feed(k.fin(true));
	c.feed(k.ack(false));
	c.feed(k.fin(false));
	c.feed(k.ack(true));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tcp_fin,tcp_close_ack,tcp_fin,tcp_close_ack,flow_stats");
	EXPECT_EQ(ev[0].ev().dir, TDSBPF_DIR_C2S);
	EXPECT_EQ(ev[1].ev().dir, TDSBPF_DIR_S2C);
	EXPECT_EQ(ev[2].ev().dir, TDSBPF_DIR_S2C);
	EXPECT_EQ(ev[3].ev().dir, TDSBPF_DIR_C2S);
	const auto& st = ev[4].ev().u.stats;
	EXPECT_EQ(st.final, 1);
	EXPECT_EQ(st.packets[0], 5u); // SYN, ACK, batch, FIN, ACK
	EXPECT_EQ(st.packets[1], 3u); // SYN+ACK, ACK, FIN
	EXPECT_EQ(st.bytes[0], tds(TDS_SQL_BATCH, 1, batch_body("select 1")).size());
	// kept closed, for a second sighting of its last packets
	EXPECT_EQ(c.p.open_flows(), 0u);
	EXPECT_EQ(c.p.flows(), 1u);
}

TEST(Walk, Rst)
{
	Collector c;
	Conn k;
	handshake(c, k);
	c.feed(k.frame(true, k.cseq, k.sseq, RST | ACK, {}));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tcp_rst,flow_stats");
	EXPECT_EQ(ev[0].ev().dir, TDSBPF_DIR_C2S);
	EXPECT_EQ(ev[1].ev().u.stats.final, 1);
	EXPECT_EQ(c.p.open_flows(), 0u);
	// a RST of a flow we do not know: reported, no state kept
	Conn other;
	other.cport = 40000;
	c.feed(other.frame(false, 7, 8, RST, {}));
	ev = c.take();
	ASSERT_EQ(kinds(ev), "tcp_rst");
	EXPECT_EQ(ev[0].ev().dir, TDSBPF_DIR_S2C);
	EXPECT_EQ(c.p.flows(), 1u); // the first, closed
}

// On the loopback (tc egress, then XDP) the closing packets come twice:
// a RST, and the last ACK of a four-way close, are reported once.
TEST(Walk, ClosingPacketsSeenTwiceAreReportedOnce)
{
	for (bool rst : {true, false}) {
		Collector c;
		Conn k;
		std::vector<Bytes> frames{k.syn(), k.synack(), k.ack(true)};
		if (rst) {
			frames.push_back(k.frame(true, k.cseq, k.sseq, RST | ACK, {}));
		} else {
			frames.push_back(k.fin(true));
			frames.push_back(k.fin(false));
			frames.push_back(k.ack(true));
		}
		uint64_t ts = 1;
		for (const auto& f : frames) {
			c.p.process_ethernet(f, static_cast<uint32_t>(f.size()), ts++, 1, TDSBPF_HOOK_TC_EGRESS);
			c.p.process_ethernet(f, static_cast<uint32_t>(f.size()), ts++, 1, TDSBPF_HOOK_XDP);
		}
		auto ev = c.take();
		EXPECT_EQ(kinds(ev),
			  rst ? "tcp_syn,tcp_synack,tcp_handshake_ack,tcp_rst,flow_stats"
			      : "tcp_syn,tcp_synack,tcp_handshake_ack,tcp_fin,tcp_fin,tcp_close_ack,flow_stats")
			<< rst;
		// a new connection on the same ports after it: seen whole
		Conn again = k;
		again.cseq += 100000;
		c.feed(again.syn());
		EXPECT_EQ(kinds(c.take()), "tcp_syn");
	}
}

TEST(Walk, MidstreamResyncsOnValidHeader)
{
	Collector c;
	Conn k;
	// the middle of a packet first: not a header, no event
	c.feed(k.data(false, Bytes(100, 0x41)));
	EXPECT_EQ(kinds(c.take()), "");
	EXPECT_EQ(c.p.flows(), 1u);
	// then a valid reply header
	c.feed(k.data(false, tds(TDS_REPLY, 1, tok_done(0x10, 0xc1, 5))));
	c.feed(k.data(true, tds(TDS_RPC, 0x09, rpc_by_id(10))));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tds");
	EXPECT_EQ(ev[0].ev().flags & TDSBPF_F_MIDSTREAM, TDSBPF_F_MIDSTREAM);
	EXPECT_EQ(T(ev[0]).tail_done_rows, 5u);
	EXPECT_EQ(ev[1].ev().flags & TDSBPF_F_MIDSTREAM, TDSBPF_F_MIDSTREAM);
	EXPECT_EQ(T(ev[1]).d.request.rpc_proc_id, 10);
}

TEST(Walk, LostSyncAndRegained)
{
	Collector c;
	Conn k;
	handshake(c, k);
	c.feed(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 1"))));
	c.feed(k.data(true, Bytes(30, 0x99))); // where a header should be: garbage
	c.feed(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 2"))));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,resync,resync,tds");
	EXPECT_EQ(ev[1].ev().flags & TDSBPF_F_LOST_SYNC, TDSBPF_F_LOST_SYNC);
	EXPECT_EQ(ev[2].ev().flags & TDSBPF_F_LOST_SYNC, 0);
}

TEST(Walk, PortReuseNewSyn)
{
	Collector c;
	Conn k;
	handshake(c, k);
	c.feed(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 1"))));
	c.take();
	Conn k2 = k;
	k2.cseq = 900000;
	c.feed(k2.syn());
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "flow_stats,tcp_syn");
	EXPECT_EQ(ev[0].ev().u.stats.final, 1);
	EXPECT_EQ(ev[1].ev().seq, 900000u);
	// the same SYN again (a SYN retransmission) is not a new connection
	c.feed(k2.frame(true, 900000, 0, SYN, {}));
	EXPECT_EQ(kinds(c.take()), "tcp_syn");
	EXPECT_EQ(c.p.flows(), 1u);
}

TEST(Walk, NonSqlPortsIgnored)
{
	Collector c;
	Conn k;
	k.sport = 1434;
	k.cport = 50000;
	c.feed(k.syn());
	c.feed(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 1"))));
	EXPECT_EQ(kinds(c.take()), "");
	EXPECT_EQ(c.p.flows(), 0u);
	// but a configured port is traced
	tdsbpf::HostParserConfig cfg;
	cfg.ports = {1434, 5000};
	Collector c2(cfg);
	c2.feed(k.syn());
	EXPECT_EQ(kinds(c2.take()), "tcp_syn");
}

TEST(Walk, Ipv6AndVlan)
{
	Conn k6;
	k6.v6 = true;
	k6.caddr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
	k6.saddr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20};
	Conn kv;
	kv.vlan = true;
	kv.vlan_id = 42;
	Conn kboth = k6;
	kboth.vlan = true;
	kboth.vlan_id = 4095;
	for (Conn* k : {&k6, &kv, &kboth}) {
		Collector c;
		c.feed(k->syn());
		c.feed(k->synack());
		c.feed(k->ack(true));
		c.feed(k->data(true, tds(TDS_PRELOGIN, 1, prelogin_client())));
		auto ev = c.take();
		ASSERT_EQ(kinds(ev), "tcp_syn,tcp_synack,tcp_handshake_ack,tds");
		const auto& key = ev[3].ev().key;
		EXPECT_EQ(key.family, k->v6 ? 6 : 4);
		EXPECT_EQ(key.vlan_valid, k->vlan ? 1 : 0);
		if (k->vlan) {
			EXPECT_EQ(key.vlan_id, k->vlan_id);
		}
		EXPECT_EQ(0, std::memcmp(key.client_addr, k->caddr.data(), k->v6 ? 16 : 4));
		EXPECT_EQ(0, std::memcmp(key.server_addr, k->saddr.data(), k->v6 ? 16 : 4));
		EXPECT_EQ(T(ev[3]).d.prelogin.version_major, 0x11);
	}
}

TEST(Walk, MaxTdsPacketLength)
{
	Collector c;
	Conn k;
	handshake(c, k);
	// 32767 bytes: the largest negotiated packet size, over 25 segments
	Bytes big = tds(TDS_SQL_BATCH, 1, batch_body(std::string((32767 - 8 - 22) / 2, 'a')));
	big.resize(32767, 0);
	big[2] = 0x7f;
	big[3] = 0xff;
	for (size_t off = 0; off < big.size(); off += 1400)
		c.feed(k.data(true, Bytes(big.begin() + off, big.begin() + std::min(big.size(), off + 1400))));
	c.feed(k.data(true, tds(TDS_ATTENTION, 1, {})));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tds");
	EXPECT_EQ(T(ev[0]).length, 32767);
	EXPECT_EQ(T(ev[1]).type, TDS_ATTENTION);
	EXPECT_EQ(ev[1].ev().frame_offset, 0u);
	EXPECT_EQ(ev[1].ev().seq, k.cseq - 8);
}

TEST(Walk, MoreFramesThanTheLimit)
{
	Collector c;
	Conn k;
	handshake(c, k);
	Bytes seg;
	for (int i = 0; i < TDSBPF_MAX_FRAMES_PER_SEGMENT + 2; i++)
		append(seg, tds(TDS_ATTENTION, 1, {}));
	c.feed(k.data(true, seg));
	auto ev = c.take();
	EXPECT_EQ(of_kind(ev, TDSBPF_EV_TDS).size(), (size_t)TDSBPF_MAX_FRAMES_PER_SEGMENT);
	EXPECT_EQ(c.p.counter(TDSBPF_CNT_FRAMES_SKIPPED), 1u);
}

TEST(Walk, PeriodicFlowStats)
{
	tdsbpf::HostParserConfig cfg;
	cfg.flush_interval_ns = 5'000'000'000ULL;
	Collector c(cfg);
	Conn k;
	c.feed(k.syn(), 1'000'000'000ULL);
	c.feed(k.synack(), 2'000'000'000ULL);
	c.feed(k.ack(true), 6'500'000'000ULL);
	c.feed(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 1"))), 7'000'000'000ULL);
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tcp_syn,tcp_synack,tcp_handshake_ack,flow_stats,tds");
	EXPECT_EQ(ev[3].ev().u.stats.final, 0);
	EXPECT_EQ(ev[3].ev().u.stats.first_ns, 1'000'000'000ULL);
	EXPECT_EQ(ev[3].ev().u.stats.packets[0], 2u);
	EXPECT_EQ(ev[3].ev().u.stats.packets[1], 1u);
}

TEST(Walk, CloseWithFinAckFromServer)
{
	// the sql2022 captures' close: client FIN, server FIN+ACK, client ACK
	Collector c;
	Conn k;
	handshake(c, k);
	c.feed(k.fin(true));
	c.feed(k.fin(false));
	c.feed(k.ack(true));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tcp_fin,tcp_fin,tcp_close_ack,flow_stats");
	EXPECT_EQ(ev[0].ev().dir, TDSBPF_DIR_C2S);
	EXPECT_EQ(ev[1].ev().dir, TDSBPF_DIR_S2C);
	EXPECT_EQ(c.p.open_flows(), 0u);
	// a FIN repeated (retransmitted) is reported once
	Conn k2;
	k2.cport = 50002;
	handshake(c, k2);
	c.feed(k2.frame(true, k2.cseq, k2.sseq, FIN | ACK, {}));
	c.feed(k2.frame(true, k2.cseq, k2.sseq, FIN | ACK, {}));
	EXPECT_EQ(kinds(c.take()), "tcp_fin");
}

TEST(Walk, TlsRecordHeaderSplit)
{
	Collector c;
	Conn k;
	handshake(c, k);
	Bytes r1 = tls_record(23, Bytes(100, 1)), r2 = tls_record(23, Bytes(60, 2));
	Bytes all = cat({r1, r2});
	c.feed(k.data(true, Bytes(all.begin(), all.begin() + r1.size() + 2)));
	c.feed(k.data(true, Bytes(all.begin() + r1.size() + 2, all.end())));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tls,tls");
	EXPECT_EQ(ev[1].ev().u.tls.content_type, 23);
	EXPECT_EQ(ev[1].ev().u.tls.record_length, 60);
	EXPECT_EQ(ev[1].ev().flags & TDSBPF_F_CARRIED, TDSBPF_F_CARRIED);
}

TEST(Walk, MissingSegmentLosesThenRegainsSync)
{
	Collector c;
	Conn k;
	handshake(c, k);
	c.feed(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 1"))));
	// a segment that holds the next header is never seen (capture drop)
	k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 2")));
	Bytes big = tds(TDS_SQL_BATCH, 1, batch_body(std::string(100, 'y')));
	c.feed(k.data(true, Bytes(big.begin() + 50, big.end()))); // middle of a packet
	c.feed(k.data(true, tds(TDS_RPC, 1, rpc_by_id(10))));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,resync,resync,tds");
	EXPECT_EQ(ev[1].ev().flags & TDSBPF_F_LOST_SYNC, TDSBPF_F_LOST_SYNC);
	EXPECT_EQ(T(ev[3]).d.request.rpc_proc_id, 10);
}

TEST(Walk, GapInsideALongPacketKeepsSync)
{
	// a lost segment in the middle of a packet: the next header is still where
	// the packet's length says
	Collector c;
	Conn k;
	handshake(c, k);
	Bytes big = tds(TDS_SQL_BATCH, 1, batch_body(std::string(300, 'z')));
	c.feed(k.data(true, Bytes(big.begin(), big.begin() + 100)));
	k.data(true, Bytes(big.begin() + 100, big.begin() + 200)); // lost
	c.feed(k.data(true, cat({Bytes(big.begin() + 200, big.end()), tds(TDS_RPC, 1, rpc_by_id(13))})));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tds");
	EXPECT_EQ(T(ev[1]).d.request.rpc_proc_id, 13);
	EXPECT_EQ(ev[1].ev().frame_offset, big.size() - 200);
}

TEST(Walk, SnapLengthCutFrames)
{
	// the frame is captured only in part (caplen < wire length)
	Collector c;
	Conn k;
	handshake(c, k);
	Login7 l;
	l.user = "dave";
	Bytes f = k.data(true, tds(TDS_LOGIN7, 1, login7(l)));
	uint32_t wire = (uint32_t)f.size();
	f.resize(14 + 20 + 20 + 40); // headers and 40 bytes of the LOGIN7
	c.p.process_ethernet(std::span<const uint8_t>(f.data(), f.size()), wire, 0);
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds");
	EXPECT_EQ(T(ev[0]).type, TDS_LOGIN7);
	EXPECT_EQ(ev[0].ev().payload_len, wire - 54);
	EXPECT_EQ(ev[0].ev().flags & TDSBPF_F_TRUNCATED, TDSBPF_F_TRUNCATED);
	// the next packet is framed from the length in the header
	c.feed(k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 1"))));
	ev = c.take();
	ASSERT_EQ(kinds(ev), "tds");
	EXPECT_EQ(T(ev[0]).d.request.all_headers_length, 22u);
	// a frame cut inside the TCP header: nothing, counted as not reachable
	Bytes g = k.data(true, tds(TDS_ATTENTION, 1, {}));
	c.p.process_ethernet(std::span<const uint8_t>(g.data(), 40), (uint32_t)g.size(), 0);
	EXPECT_EQ(kinds(c.take()), "");
	EXPECT_EQ(c.p.counter(TDSBPF_CNT_PULL_FAIL), 1u);
}

TEST(Walk, Ipv4OptionsAndFragments)
{
	Collector c;
	Conn k;
	Bytes f = k.syn();
	// add 4 bytes of IPv4 options (NOP x4): ihl 6
	Bytes g(f.begin(), f.begin() + 14 + 20);
	g[14] = 0x46;
	uint16_t tot = (uint16_t)((g[16] << 8 | g[17]) + 4);
	g[16] = tot >> 8;
	g[17] = tot & 0xff;
	append(g, {1, 1, 1, 1});
	g.insert(g.end(), f.begin() + 34, f.end());
	c.feed(g);
	EXPECT_EQ(kinds(c.take()), "tcp_syn");
	// a fragment (MF set) is not parsed as TCP
	Conn k2;
	k2.cport = 50003;
	Bytes h = k2.syn();
	h[14 + 6] = 0x20;
	c.feed(h);
	EXPECT_EQ(kinds(c.take()), "");
}

// walk.h tdsbpf_resync_ok: "a TDS packet shorter than the segment must end
// where another frame could start". A midstream segment from the middle of a
// reply whose first 8 bytes happen to look like a TDS header, but whose
// "packet" ends on bytes that cannot start a frame, must not be taken as
// framing.
TEST(Walk, MidstreamResyncNeedsAFrameWhereThePacketEnds)
{
	Collector c;
	Conn k;
	Bytes seg{0x04, 0x01, 0x00, 0x10, 0x00, 0x00, 0x01, 0x00}; // REPLY, EOM, length 16
	append(seg, Bytes(8, 0x00));
	append(seg, Bytes(60, 0x41)); // where the next header would be: UTF-16 text
	c.feed(k.data(false, seg));
	auto ev = c.take();
	EXPECT_EQ(kinds(ev), "") << "a false header was trusted on resync";
	// a true header then gives framing
	c.feed(k.data(false, tds(TDS_REPLY, 1, tok_done(0x10, 0xc1, 2))));
	ev = c.take();
	ASSERT_FALSE(ev.empty());
	EXPECT_EQ(kinds(ev).substr(kinds(ev).size() - 3), "tds");
}

TEST(Walk, MidstreamResyncOnPacketEndingAtSegmentEnd)
{
	// the common case: a segment that holds whole packets
	Collector c;
	Conn k;
	Bytes two = cat({tds(TDS_REPLY, 0, Bytes(30, 0x41), 51, 3), tds(TDS_REPLY, 1, tok_done(0x10, 0xc1, 9), 51, 4)});
	c.feed(k.data(false, two));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tds");
	EXPECT_EQ(T(ev[1]).tail_done_rows, 9u);
	EXPECT_EQ(T(ev[1]).packet_id, 4);
}

TEST(Walk, HeaderLengthLimits)
{
	// lengths 8 and 32768 are the limits a header may carry; 7 and 32769 are not
	struct Case {
		uint16_t len;
		bool framed;
	};
	for (Case cs : {Case{8, true}, Case{32768, true}, Case{7, false}, Case{32769, false}, Case{0, false}}) {
		Collector c;
		Conn k;
		handshake(c, k);
		Bytes h{TDS_SQL_BATCH, 1, (uint8_t)(cs.len >> 8), (uint8_t)(cs.len & 0xff), 0, 0, 1, 0};
		c.feed(k.data(true, h));
		auto ev = c.take();
		EXPECT_EQ(kinds(ev), cs.framed ? "tds" : "resync") << cs.len;
	}
	// window byte and unknown status bits
	for (Bytes h :
	     {Bytes{1, 1, 0, 8, 0, 0, 1, 1}, Bytes{1, 0x21, 0, 8, 0, 0, 1, 0}, Bytes{5, 1, 0, 8, 0, 0, 1, 0}}) {
		Collector c;
		Conn k;
		handshake(c, k);
		c.feed(k.data(true, h));
		EXPECT_EQ(kinds(c.take()), "resync");
	}
	// status 0x04 (seen on real non-final packets) is allowed
	Collector c;
	Conn k;
	handshake(c, k);
	c.feed(k.data(true, Bytes{TDS_RPC, 0x04, 0, 8, 0, 0, 1, 0}));
	EXPECT_EQ(kinds(c.take()), "tds");
}

TEST(Walk, LoginFailureAndNtlmChallengeReplies)
{
	Collector c;
	Conn k;
	handshake(c, k);
	Login7 l;
	l.sspi = ntlm_negotiate();
	l.flags2 = 0x83;
	l.user = "";
	c.feed(k.data(true, tds(TDS_LOGIN7, 1, login7(l))));
	c.feed(k.data(false, tds(TDS_REPLY, 1, tok_sspi(ntlm_challenge()))));
	c.feed(k.data(true, tds(TDS_SSPI, 1, ntlm_authenticate("CORP", "eve", "PC7"))));
	c.feed(k.data(false,
		      tds(TDS_REPLY, 1,
			  cat({tok_error(18456, 1, 14, "Login failed for user 'CORP\\eve'."), tok_done(0x02, 0, 0)}))));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tds,ntlm_authenticate,tds");
	EXPECT_EQ(T(ev[0]).d.login7.sspi_kind, TDSBPF_SSPI_NTLM);
	EXPECT_EQ(T(ev[0]).d.login7.ntlm_type, 1);
	EXPECT_EQ(T(ev[1]).d.reply.tokens, TDSBPF_TOK_SSPI);
	EXPECT_EQ(T(ev[1]).d.reply.sspi_ntlm_type, 2);
	EXPECT_EQ(T(ev[1]).tail_token, 0); // no DONE ends the SSPI reply
	EXPECT_EQ(Bytes(ev[2].ntlm().user, ev[2].ntlm().user + ev[2].ntlm().user_len), utf16("eve"));
	EXPECT_EQ(T(ev[3]).d.reply.error_number, 18456u);
	EXPECT_EQ(T(ev[3]).d.reply.error_state, 1);
	EXPECT_EQ(T(ev[3]).d.reply.error_class, 14);
	EXPECT_EQ(T(ev[3]).tail_done_status, 0x02);
}

TEST(Walk, Login7SspiBeyondTheSegment)
{
	Collector c;
	Conn k;
	handshake(c, k);
	Login7 l;
	l.sspi = spnego_init(ntlm_negotiate(), false);
	l.flags2 = 0x83;
	Bytes pkt = tds(TDS_LOGIN7, 1, login7(l));
	size_t first = 8 + 94 + 10; // the fixed part and a little more
	c.feed(k.data(true, Bytes(pkt.begin(), pkt.begin() + first)));
	c.feed(k.data(true, Bytes(pkt.begin() + first, pkt.end())));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds");
	EXPECT_EQ(T(ev[0]).d.login7.option_flags2 & 0x80, 0x80);
	EXPECT_EQ(T(ev[0]).d.login7.sspi_length, l.sspi.size());
	EXPECT_EQ(T(ev[0]).d.login7.sspi_kind, TDSBPF_SSPI_UNKNOWN);
	EXPECT_EQ(ev[0].ev().flags & TDSBPF_F_TRUNCATED, TDSBPF_F_TRUNCATED);
}

TEST(EventJson, NtlmNamesAndRedaction)
{
	Collector c;
	Conn k;
	handshake(c, k);
	c.feed(k.data(true, tds(TDS_SSPI, 1, ntlm_authenticate("CORP", "alice", "WS01"))));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "ntlm_authenticate");
	auto j = tdsbpf::event_to_json(ev[0].ev(), ev[0].raw.size());
	EXPECT_EQ(j["event"], "ntlm_authenticate");
	EXPECT_EQ(j["ntlm"]["domain"], "CORP");
	EXPECT_EQ(j["ntlm"]["user"], "alice");
	EXPECT_EQ(j["ntlm"]["workstation"], "WS01");
	auto r = tdsbpf::event_to_json(ev[0].ev(), ev[0].raw.size(), true, true);
	std::string s = r.dump();
	EXPECT_EQ(s.find("alice"), std::string::npos) << s;
	EXPECT_EQ(s.find("CORP"), std::string::npos) << s;
	EXPECT_EQ(r["ntlm"]["redacted"], true);
	// a record shorter than an NTLM event is not read as one
	auto shortj = tdsbpf::event_to_json(ev[0].ev(), sizeof(tdsbpf_event));
	EXPECT_EQ(shortj.dump().find("alice"), std::string::npos);
}

TEST(EventJson, Login7JsonHasNoPassword)
{
	const std::string pw = "Hunter2!Hunter2";
	Collector c;
	Conn k;
	handshake(c, k);
	Login7 l;
	l.password = pw;
	c.feed(k.data(true, tds(TDS_LOGIN7, 1, login7(l))));
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds");
	std::string s = tdsbpf::event_to_json(ev[0].ev(), ev[0].raw.size()).dump();
	EXPECT_EQ(s.find("Hunter2"), std::string::npos) << s;
	EXPECT_EQ(s.find("password"), std::string::npos) << s;
}

// ---- Second sightings: one packet seen at several points ------------------

namespace {

// A frame as a hook sees it: where, and the bytes.
struct Sighting {
	Bytes frame;
	uint32_t ifindex;
	uint8_t hook;
};

// The conversation of a login-less session with a keep-alive and a reply
// over two segments, closed with FIN both ways: each frame, and who sent it.
std::vector<std::pair<bool, Bytes>> conversation(Conn& k)
{
	std::vector<std::pair<bool, Bytes>> f;
	f.push_back({true, k.syn()});
	f.push_back({false, k.synack()});
	f.push_back({true, k.ack(true)});
	f.push_back({true, k.data(true, tds(TDS_PRELOGIN, 1, prelogin_client()))});
	f.push_back({false, k.data(false, tds(TDS_REPLY, 1, prelogin_server()))});
	f.push_back({true, k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select n from t")))});
	Bytes reply = tds(TDS_REPLY, 1, cat({Bytes(1200, 0x00), tok_done(0x10, 0xc1, 5)}));
	Bytes first(reply.begin(), reply.begin() + 700), rest(reply.begin() + 700, reply.end());
	f.push_back({false, k.data(false, first)});
	f.push_back({false, k.data(false, rest)});
	f.push_back({true, k.ack(true)});
	f.push_back({true, k.frame(true, k.cseq - 1, k.sseq, ACK, {})}); // keep-alive
	f.push_back({false, k.ack(false)});				 // its answer
	f.push_back({true, k.fin(true)});
	f.push_back({false, k.ack(false)});
	f.push_back({false, k.fin(false)});
	f.push_back({true, k.ack(true)});
	return f;
}

// The loopback: every frame leaves through tc egress and comes back in at
// XDP on the same interface. A side's frames go out back to back; they come
// in before the other side answers (it answers what it received).
std::vector<Sighting> on_loopback(const std::vector<std::pair<bool, Bytes>>& frames)
{
	std::vector<Sighting> out;
	std::vector<Bytes> in_flight;
	bool last = frames.empty() ? true : frames.front().first;
	for (const auto& [c2s, f] : frames) {
		if (c2s != last) {
			for (auto& b : in_flight)
				out.push_back({b, 1, TDSBPF_HOOK_XDP});
			in_flight.clear();
			last = c2s;
		}
		out.push_back({f, 1, TDSBPF_HOOK_TC_EGRESS});
		in_flight.push_back(f);
	}
	for (auto& b : in_flight)
		out.push_back({b, 1, TDSBPF_HOOK_XDP});
	return out;
}

// A record with where it was seen, when, and the count of second sightings
// cleared: what must not depend on how many hooks saw the packets.
Bytes comparable(const Rec& r)
{
	Bytes b = r.raw;
	auto* ev = reinterpret_cast<tdsbpf_event*>(b.data());
	ev->ts_ns = 0;
	ev->ifindex = 0;
	ev->hook = 0;
	if (ev->kind == TDSBPF_EV_FLOW_STATS) {
		ev->u.stats.duplicates[0] = ev->u.stats.duplicates[1] = 0;
		ev->u.stats.first_ns = 0;
	}
	return b;
}

void feed(Collector& c, const Sighting& s, uint64_t ts)
{
	c.p.process_ethernet(s.frame, (uint32_t)s.frame.size(), ts, s.ifindex, s.hook);
}

} // namespace

TEST(SecondSighting, LoopbackCountsEachPacketOnce)
{
	Conn k1, k2;
	auto frames = conversation(k1);
	auto twice = on_loopback(conversation(k2));
	ASSERT_EQ(twice.size(), 2 * frames.size());

	Collector once, lo;
	uint64_t ts = 1000;
	for (const auto& [c2s, f] : frames) {
		(void)c2s;
		once.feed(f, ts += 10);
	}
	ts = 1000;
	for (const auto& s : twice)
		feed(lo, s, ts += 5);
	auto a = once.take(), b = lo.take();
	ASSERT_EQ(kinds(b), kinds(a));
	for (std::size_t i = 0; i < a.size(); i++)
		EXPECT_EQ(comparable(b[i]), comparable(a[i])) << "event " << i << " " << kinds({a[i]});
	EXPECT_TRUE(of_kind(b, TDSBPF_EV_TCP_RETRANS).empty());
	ASSERT_EQ(of_kind(b, TDSBPF_EV_TCP_SYN).size(), 1u);
	ASSERT_EQ(of_kind(b, TDSBPF_EV_TCP_KEEPALIVE).size(), 1u);
	auto st = of_kind(b, TDSBPF_EV_FLOW_STATS);
	ASSERT_EQ(st.size(), 1u);
	const auto& s = st[0].ev().u.stats;
	EXPECT_EQ(s.retrans[0] + s.retrans[1], 0u);
	EXPECT_EQ(s.keepalives[0], 1u);
	uint32_t c2s = 0, s2c = 0;
	for (const auto& [dir, f] : frames)
		(dir ? c2s : s2c)++;
	EXPECT_EQ(s.packets[0], c2s);
	EXPECT_EQ(s.packets[1], s2c);
	// every second sighting is counted as such; the last ACK's comes after
	// the final counters (the closed flow knows it, no event is made)
	EXPECT_EQ(s.duplicates[0], c2s - 1);
	EXPECT_EQ(s.duplicates[1], s2c);
	EXPECT_EQ(lo.p.open_flows(), 0u);
}

TEST(SecondSighting, TwoInterfacesInEitherOrder)
{
	// a router's two sides (or both ends of a veth pair): client frames in at
	// interface 2 (XDP) and out at 3 (tc egress); server frames the other way
	Conn k1, k2;
	auto frames = conversation(k1);
	auto again = conversation(k2);
	Collector once, both;
	uint64_t ts = 1000;
	for (const auto& [c2s, f] : frames) {
		(void)c2s;
		once.feed(f, ts += 10);
	}
	ts = 1000;
	for (const auto& [c2s, f] : again) {
		feed(both, {f, c2s ? 2u : 3u, TDSBPF_HOOK_XDP}, ts += 5);
		feed(both, {f, c2s ? 3u : 2u, TDSBPF_HOOK_TC_EGRESS}, ts += 5);
	}
	auto a = once.take(), b = both.take();
	ASSERT_EQ(kinds(b), kinds(a));
	for (std::size_t i = 0; i < a.size(); i++)
		EXPECT_EQ(comparable(b[i]), comparable(a[i])) << "event " << i;
	auto st = of_kind(b, TDSBPF_EV_FLOW_STATS);
	ASSERT_EQ(st.size(), 1u);
	// all but the last ACK's, which closed the flow
	EXPECT_EQ(st[0].ev().u.stats.duplicates[0], 7u);
	EXPECT_EQ(st[0].ev().u.stats.duplicates[1], 7u);
}

TEST(SecondSighting, ResendAtTheSamePointIsARetransmission)
{
	Collector c;
	Conn k;
	Sighting syn{k.syn(), 1, TDSBPF_HOOK_TC_EGRESS}, synack{k.synack(), 1, TDSBPF_HOOK_TC_EGRESS};
	Sighting hs{k.ack(true), 1, TDSBPF_HOOK_TC_EGRESS};
	uint64_t ts = 1000;
	for (auto* s : {&syn, &synack, &hs}) {
		feed(c, *s, ts += 10);
		feed(c, {s->frame, 1, TDSBPF_HOOK_XDP}, ts += 10);
	}
	c.take();
	Bytes body = tds(TDS_SQL_BATCH, 1, batch_body("select 1"));
	uint32_t seq = k.cseq;
	Bytes batch = k.data(true, body);
	feed(c, {batch, 1, TDSBPF_HOOK_TC_EGRESS}, ts += 10);
	// lost before it came back in: resent 200 ms later, with a new window
	Bytes resent = k.frame(true, seq, k.sseq, ACK | PSH, body, 4096);
	feed(c, {resent, 1, TDSBPF_HOOK_TC_EGRESS}, ts += 200'000'000);
	feed(c, {resent, 1, TDSBPF_HOOK_XDP}, ts += 10);
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tcp_retransmission");
	c.feed(k.frame(true, k.cseq, k.sseq, RST | ACK, {}), ts += 10);
	ev = c.take();
	ASSERT_EQ(kinds(ev), "tcp_rst,flow_stats");
	// the RST came in at the last point of the flow (pcap): not a second sighting
	const auto& s = ev[1].ev().u.stats;
	EXPECT_EQ(s.retrans[0], 1u);
	EXPECT_EQ(s.packets[0], 5u);	// SYN, ACK, batch, resend, RST
	EXPECT_EQ(s.duplicates[0], 3u); // SYN, ACK, the resend
	EXPECT_EQ(s.duplicates[1], 1u); // SYN+ACK
}

TEST(SecondSighting, NewDataElsewhereMovesThePoint)
{
	// the client's packets come in at interface 2, then at 3 (the route
	// changed): what is new at 3 is walked, and 2's late copies are not
	Collector c;
	Conn k;
	uint64_t ts = 1000;
	feed(c, {k.syn(), 2, TDSBPF_HOOK_XDP}, ts += 10);
	feed(c, {k.synack(), 2, TDSBPF_HOOK_TC_EGRESS}, ts += 10);
	feed(c, {k.ack(true), 2, TDSBPF_HOOK_XDP}, ts += 10);
	c.take();
	Bytes b1 = k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 1")));
	Bytes b2 = k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("select 2")));
	feed(c, {b1, 2, TDSBPF_HOOK_XDP}, ts += 10);
	feed(c, {b2, 3, TDSBPF_HOOK_XDP}, ts += 10);
	feed(c, {b2, 2, TDSBPF_HOOK_XDP}, ts += 10);
	Bytes update = k.frame(true, k.cseq, k.sseq, ACK, {}, 9000); // a window update
	feed(c, {update, 3, TDSBPF_HOOK_XDP}, ts += 10);
	auto ev = c.take();
	ASSERT_EQ(kinds(ev), "tds,tds");
	c.feed(k.frame(false, k.sseq, k.cseq, RST | ACK, {}), ts += 10);
	ev = c.take();
	ASSERT_EQ(kinds(ev), "tcp_rst,flow_stats");
	const auto& s = ev[1].ev().u.stats;
	EXPECT_EQ(s.retrans[0], 0u);
	EXPECT_EQ(s.packets[0], 5u);
	EXPECT_EQ(s.duplicates[0], 1u);
}


// Traffic on a traced port that is not TDS 7.x is named for what it is, not
// left as a login in progress with the framing lost.
TEST(NotTds, SybaseLoginIsNamed)
{
	Conn k;
	// a TDS 5.0 login: type 2, a 512-byte packet of the login record
	Bytes login{0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00};
	login.resize(512, 0x20);
	auto r = one_record(
		{k.syn(), k.synack(), k.ack(true), k.data(true, login), k.fin(true), k.fin(false), k.ack(true)});
	EXPECT_EQ(r["login"]["outcome"], "not_tds") << r.dump();
	ASSERT_TRUE(tdsbpf::test::has_diagnosis(r, "not_tds7")) << r.dump();
	EXPECT_FALSE(tdsbpf::test::has_diagnosis(r, "closed_before_login"));
	std::string msg;
	for (const auto& d : r["diagnoses"])
		if (d["code"] == "not_tds7")
			msg = d["message"];
	EXPECT_NE(msg.find("TDS 4.2/5.0 login"), std::string::npos) << msg;
}

TEST(NotTds, AnotherProtocolIsNamed)
{
	Conn k;
	std::string http = "GET /health HTTP/1.1\r\nHost: db1\r\n\r\n";
	auto r = one_record({k.syn(), k.synack(), k.ack(true), k.data(true, Bytes(http.begin(), http.end())),
			     k.fin(true), k.fin(false), k.ack(true)});
	EXPECT_EQ(r["login"]["outcome"], "not_tds") << r.dump();
	ASSERT_TRUE(tdsbpf::test::has_diagnosis(r, "not_tds7")) << r.dump();
	EXPECT_FALSE(tdsbpf::test::has_diagnosis(r, "framing_lost")) << r.dump();
	EXPECT_FALSE(tdsbpf::test::has_diagnosis(r, "closed_before_login")) << r.dump();
}

TEST(NotTds, RealTdsIsNotNamed)
{
	Conn k;
	auto r = one_record({k.syn(), k.synack(), k.ack(true),
			     k.data(true, tds(TDS_PRELOGIN, 1, prelogin({{0, Bytes{16, 0, 0, 0, 0, 0}}}))), k.fin(true),
			     k.fin(false), k.ack(true)});
	EXPECT_NE(r["login"]["outcome"], "not_tds") << r.dump();
	EXPECT_FALSE(tdsbpf::test::has_diagnosis(r, "not_tds7"));
	// mid-stream, the first bytes seen may be anywhere in a message: not judged
	Conn m;
	std::string junk = "0123456789abcdef";
	auto s = one_record({m.data(true, Bytes(junk.begin(), junk.end())), m.fin(true), m.fin(false), m.ack(true)});
	EXPECT_FALSE(tdsbpf::test::has_diagnosis(s, "not_tds7")) << s.dump();
}

// The words around a connection: the names in a LOGIN7 in clear, the
// database and language the server set, its name, and the texts of the
// login's error and of the last error, each hidden by --redact where it
// can name a person or a value.
TEST(Texts, NamesDatabaseAndMessagesReachTheRecord)
{
	Conn k;
	Login7 l;
	l.host = "WS01";
	l.app = "payroll";
	l.user = "carol";
	l.password = "s3cret";
	l.server = "db1\\SALES";
	l.library = "ODBC";
	l.database = "sales";
	std::vector<Bytes> frames = {
		k.syn(),
		k.synack(),
		k.ack(true),
		k.data(true, tds(TDS_LOGIN7, 1, login7(l))),
		k.data(false, tds(TDS_REPLY, 1,
				  cat({tok_env_database("sales"),
				       tok_error(5701, 2, 0, "Changed database context to 'sales'.", 0xab),
				       tok_loginack(0x74000004, {16, 0, 0x10, 0x87}), tok_done(0, 0, 0)}))),
		k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("INSERT dbo.y VALUES (1)"))),
		k.data(false, tds(TDS_REPLY, 1,
				  cat({tok_error(2627, 1, 14, "Violation of PRIMARY KEY constraint 'pk_y'."),
				       tok_done(0x02, 0, 0)}))),
		k.data(true, tds(TDS_SQL_BATCH, 1, batch_body("SELECT * FROM dbo.x"))),
		k.data(false, tds(TDS_REPLY, 1,
				  cat({tok_error(208, 1, 16, "Invalid object name 'dbo.x'."), tok_done(0x02, 0, 0)}))),
		k.fin(true),
		k.fin(false),
		k.ack(true)};
	auto r = one_record(frames);
	ASSERT_TRUE(r.is_object());
	const auto& n = r["login"]["client_names"];
	EXPECT_EQ(n["host"], "WS01") << n.dump();
	EXPECT_EQ(n["application"], "payroll");
	EXPECT_EQ(n["user"], "carol");
	EXPECT_EQ(n["server"], "db1\\SALES");
	EXPECT_EQ(n["library"], "ODBC");
	EXPECT_EQ(n["database"], "sales");
	EXPECT_EQ(r["negotiated"]["database"], "sales");
	EXPECT_EQ(r["negotiated"]["server_name"], "SRV1");
	EXPECT_EQ(r["db.namespace"], "sales");
	// the login reply's INFO message, words and numbers
	const auto& infos = r["login"]["messages"];
	ASSERT_EQ(infos.size(), 1u) << infos.dump();
	EXPECT_EQ(infos[0]["number"], 5701);
	EXPECT_EQ(infos[0]["state"], 2);
	EXPECT_EQ(infos[0]["class"], 0);
	EXPECT_EQ(infos[0]["message"], "Changed database context to 'sales'.");
	const auto& e = r["work"]["last_error"];
	EXPECT_EQ(e["number"], 208) << e.dump();
	EXPECT_EQ(e["message"], "Invalid object name 'dbo.x'.");
	EXPECT_EQ(e["server"], "SRV1");
	EXPECT_EQ(e["line"], 1);
	EXPECT_EQ(r["work"]["errors"], 2);
	EXPECT_EQ(r.dump().find("pk_y"), std::string::npos); // the earlier error's words gave way
	EXPECT_EQ(r.dump().find("s3cret"), std::string::npos);

	tdsbpf::AggregatorConfig red;
	red.redact = true;
	auto h = one_record(frames, red);
	std::string s = h.dump();
	for (const char* hidden : {"WS01", "payroll", "carol", "dbo.x"})
		EXPECT_EQ(s.find(hidden), std::string::npos) << hidden << " in " << s;
	EXPECT_EQ(h["work"]["last_error"]["message"], "<redacted>");
	EXPECT_EQ(h["login"]["messages"][0]["message"], "<redacted>");
	EXPECT_EQ(h["login"]["client_names"]["library"], "ODBC");

	// a refused login: its error's words
	Conn f;
	f.cport = 50123;
	auto failed = one_record({f.syn(), f.synack(), f.ack(true), f.data(true, tds(TDS_LOGIN7, 1, login7(l))),
				  f.data(false, tds(TDS_REPLY, 1,
						    cat({tok_error(18456, 1, 14, "Login failed for user 'carol'."),
							 tok_done(0x02, 0, 0)}))),
				  f.fin(false), f.fin(true), f.ack(false)});
	EXPECT_EQ(failed["login"]["outcome"], "failed");
	EXPECT_EQ(failed["login"]["error"]["number"], 18456);
	EXPECT_EQ(failed["login"]["error"]["message"], "Login failed for user 'carol'.");
	EXPECT_TRUE(failed["work"]["last_error"].is_null());
	EXPECT_TRUE(failed["login"]["messages"].empty());
}

// A LOGIN7 from TDS 7.1 (a fixed part of 86 bytes, no new-password field):
// its names read whole, its password never copied.
TEST(Texts, Tds71Login7Names)
{
	Conn k;
	Login7 l;
	l.tds_version = 0x71000001;
	l.host = "OLDBOX";
	l.password = "pw71";
	Bytes body = login7(l);
	// cut the 7.2 fields: the data follows byte 86
	Bytes b71(body.begin(), body.begin() + 86);
	Bytes data(body.begin() + 94, body.end());
	for (size_t at = 36; at < 86; at += 4) {
		if (at == 56 || at == 72 || at == 76)
			continue; // the extension, the client id
		uint16_t ib = (uint16_t)(b71[at] | (b71[at + 1] << 8));
		if (ib >= 94)
			ib -= 8;
		b71[at] = (uint8_t)ib;
		b71[at + 1] = (uint8_t)(ib >> 8);
	}
	b71.insert(b71.end(), data.begin(), data.end());
	uint32_t total = (uint32_t)b71.size();
	for (int i = 0; i < 4; i++)
		b71[i] = (uint8_t)(total >> (8 * i));
	auto r = one_record({k.syn(), k.synack(), k.ack(true), k.data(true, tds(TDS_LOGIN7, 1, b71)), k.fin(true)});
	EXPECT_EQ(r["login"]["client_names"]["host"], "OLDBOX") << r["login"].dump();
	EXPECT_EQ(r["login"]["client_names"]["application"], "app");
	EXPECT_EQ(r.dump().find("pw71"), std::string::npos);
}

// The hello flights in clear: what the client offered (versions, suites,
// SNI, ALPN) and what the server chose; TLS 1.3 hides the certificate.
TEST(Texts, TlsHelloFlights)
{
	auto hello = [](uint16_t port, uint16_t version, uint16_t cipher) {
		Conn k;
		k.cport = port;
		return one_record({k.syn(), k.synack(), k.ack(true),
				   k.data(true, tds(TDS_PRELOGIN, 1, tls_client_hello(false))),
				   k.data(false, tds(TDS_PRELOGIN, 1, tls_server_hello(version, false, cipher))),
				   k.fin(true), k.fin(false), k.ack(true)});
	};
	auto r = hello(50200, 0x0304, 0x1302);
	const auto& t = r["tls"];
	ASSERT_TRUE(t.is_object()) << r.dump();
	EXPECT_EQ(t["client"]["max_version"], "1.3");
	EXPECT_EQ(t["client"]["cipher_suites_offered"], 2);
	EXPECT_EQ(t["client"]["sni"], "db1.x");
	EXPECT_TRUE(t["client"]["alpn"].is_null());
	EXPECT_EQ(t["server"]["version"], "1.3");
	EXPECT_EQ(t["server"]["cipher_suite"], "TLS_AES_256_GCM_SHA384");
	EXPECT_EQ(t["certificate_seen"], "hidden");
	EXPECT_TRUE(t["certificate"].is_null());

	// TLS 1.2 with 3DES, and no certificate in the flight
	auto w = hello(50201, 0, 0x000a);
	EXPECT_EQ(w["tls"]["server"]["version"], "1.2");
	EXPECT_EQ(w["tls"]["server"]["cipher_suite"], "TLS_RSA_WITH_3DES_EDE_CBC_SHA");
	EXPECT_EQ(w["tls"]["server"]["weak"], true);
	EXPECT_EQ(w["tls"]["certificate_seen"], "not_seen");
	std::string d = w["diagnoses"].dump();
	EXPECT_NE(d.find("tls_weak_cipher"), std::string::npos) << d;
	// TDS 7.x (TLS in PRELOGIN packets) does no more than TLS 1.2: no finding
	EXPECT_EQ(d.find("tls_version_downgrade"), std::string::npos) << d;

	// TDS 8.0: the hellos come first, as bare records; a 1.3 offer answered with 1.2
	Conn k;
	k.cport = 50202;
	auto s8 =
		one_record({k.syn(), k.synack(), k.ack(true), k.data(true, tls_client_hello(true)),
			    k.data(false, tls_server_hello(0, true, 0xc02f)), k.fin(true), k.fin(false), k.ack(true)});
	EXPECT_EQ(s8["negotiated"]["encryption"], "strict") << s8.dump();
	EXPECT_EQ(s8["tls"]["client"]["alpn"], nlohmann::json::array({"tds/8.0"}));
	EXPECT_EQ(s8["tls"]["server"]["cipher_suite"], "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
	d = s8["diagnoses"].dump();
	EXPECT_NE(d.find("tls_version_downgrade"), std::string::npos) << d;
}

namespace {

// A certificate's DER: an EC key, subject CN=cn, and `names` DNS names
// (about 30 bytes each) to make it as long as a test needs.
Bytes certificate_der(const std::string& cn, int names)
{
	EVP_PKEY* key = EVP_EC_gen("P-256");
	X509* x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	std::string san;
	for (int i = 0; i < names; i++)
		san += (i ? ",DNS:" : "DNS:") + std::string("sqlnode") + std::to_string(i) + ".corp.example.com";
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
	if (X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str())) {
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	X509_sign(x, key, EVP_sha256());
	unsigned char* der = nullptr;
	int n = i2d_X509(x, &der);
	Bytes out(der, der + std::max(n, 0));
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(key);
	return out;
}

// The frames of a login whose server flight (payload) goes in segments of
// mss bytes; skip: the number of a segment the tracer does not see (-1: none).
std::vector<Bytes> flight_in_segments(Conn& k, const Bytes& client, const Bytes& payload, size_t mss, int skip = -1)
{
	std::vector<Bytes> f = {k.syn(), k.synack(), k.ack(true), k.data(true, client)};
	for (size_t at = 0, i = 0; at < payload.size(); at += mss, i++) {
		Bytes seg =
			k.data(false, Bytes(payload.begin() + static_cast<long>(at),
					    payload.begin() + static_cast<long>(std::min(payload.size(), at + mss))));
		if (static_cast<int>(i) != skip)
			f.push_back(seg);
	}
	f.push_back(k.fin(true));
	f.push_back(k.fin(false));
	f.push_back(k.ack(true));
	return f;
}

} // namespace

// A server certificate that runs on past the first segment (and past an
// excerpt's 2 KiB) is read from the segments that follow: in one PRELOGIN
// packet, across two, and as TDS 8.0's bare records; a segment the tracer
// missed leaves it cut, said so.
TEST(Texts, CertificateAcrossSegments)
{
	Bytes der = certificate_der("sqlprod01.corp.example.com", 100);
	ASSERT_GT(der.size(), 3000u);
	Bytes flight = tls_server_flight(der);
	Bytes client7 = tds(TDS_PRELOGIN, 1, tls_client_hello(false));
	auto check = [&](const nlohmann::json& r, const char* what) {
		EXPECT_EQ(r["tls"]["certificate_seen"], "read") << what << ": " << r["tls"].dump();
		EXPECT_EQ(r["tls"]["certificate"]["subject"], "CN=sqlprod01.corp.example.com") << what;
		EXPECT_EQ(r["tls"]["certificate"]["key_type"], "EC") << what;
	};
	// TDS 7.x, one PRELOGIN packet of the whole flight, segments of 1448
	Conn a;
	a.cport = 50300;
	check(one_record(flight_in_segments(a, client7, tds(TDS_PRELOGIN, 1, flight), 1448)), "one packet");
	// TDS 7.x, the flight in two PRELOGIN packets (a 2,048-byte packet size)
	size_t half = 2040;
	Bytes two = cat({tds(TDS_PRELOGIN, 0, Bytes(flight.begin(), flight.begin() + static_cast<long>(half))),
			 tds(TDS_PRELOGIN, 1, Bytes(flight.begin() + static_cast<long>(half), flight.end()), 0, 2)});
	Conn b;
	b.cport = 50301;
	check(one_record(flight_in_segments(b, client7, two, 1448)), "two packets");
	// ... in segments of 9000 bytes (a jumbo frame, or a GSO segment seen on egress)
	Conn c;
	c.cport = 50302;
	check(one_record(flight_in_segments(c, client7, two, 9000)), "one large segment");
	// TDS 8.0: bare records
	Conn d;
	d.cport = 50303;
	auto strict = one_record(flight_in_segments(d, tls_client_hello(true), flight, 1448));
	EXPECT_EQ(strict["negotiated"]["encryption"], "strict");
	check(strict, "TDS 8.0");
	// a segment missing: the certificate is cut, and no guess is made
	Conn e;
	e.cport = 50304;
	auto cut = one_record(flight_in_segments(e, client7, tds(TDS_PRELOGIN, 1, flight), 1448, 1));
	EXPECT_EQ(cut["tls"]["certificate_seen"], "cut") << cut["tls"].dump();
	EXPECT_TRUE(cut["tls"]["certificate"].is_null());
}

// Excerpts whose bytes are cut at every length or have bytes changed, of
// each kind the parsers read (a LOGIN7, a login reply with messages, the TLS
// hellos): every record is still written, and nothing is read past the
// bytes there are (the sanitizer build runs this too).
TEST(Texts, HostileExcerptsAreReadSafely)
{
	Login7 l;
	l.host = "WS01";
	l.app = "payroll";
	Bytes reply = cat({tok_env_database("sales"), tok_error(5701, 2, 0, "Changed database context.", 0xab),
			   tok_error(18456, 1, 14, "Login failed for user 'x'."),
			   tok_loginack(0x74000004, {16, 0, 0x10, 0x87}), tok_done(0, 0, 0)});
	const std::pair<uint8_t, Bytes> seeds[] = {
		{TDSBPF_EXCERPT_LOGIN7, login7(l)},
		{TDSBPF_EXCERPT_REPLY, reply},
		{TDSBPF_EXCERPT_TLS_HELLO, tls_client_hello(true, true)},
		{TDSBPF_EXCERPT_TLS_HELLO, tls_server_hello(0x0303, true, 0xc02f)},
	};
	tdsbpf::test::CollectSink sink;
	tdsbpf::Aggregator agg({}, sink);
	uint32_t seed = 7;
	uint16_t port = 40000;
	size_t fed = 0;
	for (const auto& [what, body] : seeds) {
		for (size_t cut = 0; cut <= body.size(); cut++) {
			for (int flip = 0; flip < 2; flip++) {
				Bytes b(body.begin(), body.begin() + static_cast<long>(cut));
				if (flip)
					for (auto& x : b) {
						seed = seed * 1103515245 + 12345;
						if ((seed >> 16) % 7 == 0)
							x = static_cast<uint8_t>(seed >> 8);
					}
				tdsbpf::test::Trace t("192.0.2.10", port++, "192.0.2.20", 1433);
				t.syn(0, 1).synack(0.001, 2, 2).hs_ack(0.002, 2, 3);
				tdsbpf::test::feed(agg, t.records());
				auto x = std::make_unique<tdsbpf_excerpt_event>();
				x->base = t.records().back().base();
				x->base.kind = TDSBPF_EV_EXCERPT;
				x->base.dir = what == TDSBPF_EXCERPT_REPLY || (what == TDSBPF_EXCERPT_TLS_HELLO &&
									       b.size() > 5 && body[5] == 2)
						      ? TDSBPF_DIR_S2C
						      : TDSBPF_DIR_C2S;
				x->what = what;
				x->len = static_cast<uint16_t>(b.size());
				x->body_len = static_cast<uint32_t>(body.size());
				if (!b.empty())
					std::memcpy(x->data, b.data(), b.size());
				// a record of exactly its length
				std::vector<uint8_t> rec(TDSBPF_EXCERPT_HDR + b.size());
				std::memcpy(rec.data(), x.get(), rec.size());
				agg.on_event(*reinterpret_cast<const tdsbpf_event*>(rec.data()), rec.size());
				fed++;
			}
		}
	}
	agg.finish(tdsbpf::test::kBaseNs + 3'600'000'000'000ull);
	EXPECT_EQ(sink.records.size(), fed);
	for (const auto& r : sink.records)
		EXPECT_TRUE(r.is_object());
}
