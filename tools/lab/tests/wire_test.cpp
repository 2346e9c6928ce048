// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Unit tests of the lab's wire code on crafted bytes, real capture bytes and
// garbage. No sockets, no child processes.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "capture_bytes.h"
#include "connection.h"
#include "faults.h"
#include "ntlm.h"
#include "query_engine.h"
#include "smp.h"
#include "tds_tokens.h"
#include "tds_wire.h"

namespace tdslab {
namespace {

Bytes from_hex(std::string_view hex)
{
	Bytes out;
	for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
		out.push_back(static_cast<std::uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
	}
	return out;
}

ByteView payload_of(const Bytes& packet)
{
	return ByteView(packet).subspan(kHeaderSize);
}

TEST(LabWire, HeaderRoundTrip)
{
	PacketHeader h{18, 0x01, 0x0123, 0x0035, 7, 0};
	ByteWriter w;
	encode_header(w, h);
	ASSERT_EQ(w.size(), 8u);
	EXPECT_EQ(w.buffer()[2], 0x01); // length is big-endian
	EXPECT_EQ(w.buffer()[3], 0x23);
	PacketHeader d = decode_header(w.buffer());
	EXPECT_EQ(d.type, 18);
	EXPECT_EQ(d.length, 0x0123);
	EXPECT_EQ(d.spid, 0x35);
	EXPECT_EQ(d.packet_id, 7);
}

TEST(LabWire, SplitterReassemblesByteByByte)
{
	Bytes payload(3000, 0xAB);
	Bytes stream = packetize(1, payload, 1024);
	PacketSplitter s;
	MessageAssembler a;
	std::optional<Message> msg;
	int packets = 0;
	for (std::uint8_t b : stream) {
		s.feed(ByteView(&b, 1));
		while (auto p = s.next()) {
			++packets;
			if (auto m = a.add(std::move(*p)))
				msg = std::move(m);
		}
	}
	EXPECT_EQ(packets, 3); // 1016 + 1016 + 968 payload bytes
	ASSERT_TRUE(msg);
	EXPECT_EQ(msg->type, 1);
	EXPECT_EQ(msg->payload, payload);
}

TEST(LabWire, SplitterRejectsGarbageHeaders)
{
	PacketSplitter bad_type;
	Bytes junk = {0x47, 0x45, 0x54, 0x20, 0x2F, 0x20, 0x48, 0x54}; // "GET / HT"
	bad_type.feed(junk);
	EXPECT_THROW(bad_type.next(), WireError);

	PacketSplitter short_len;
	Bytes tiny = {0x12, 0x01, 0x00, 0x04, 0, 0, 0, 0}; // length below the header size
	short_len.feed(tiny);
	EXPECT_THROW(short_len.next(), WireError);

	PacketSplitter capped(4096);
	Bytes huge = {0x01, 0x01, 0xFF, 0xFF, 0, 0, 0, 0}; // 65535 > negotiated size
	capped.feed(huge);
	EXPECT_THROW(capped.next(), WireError);

	PacketSplitter truncated;
	Bytes partial = {0x12, 0x01, 0x00, 0x40, 0, 0, 1, 0, 0xAA};
	truncated.feed(partial);
	EXPECT_FALSE(truncated.next()); // waits for more, no throw
}

TEST(LabWire, AssemblerRefusesTypeChangeMidMessage)
{
	MessageAssembler a;
	Packet p1;
	p1.header = {1, 0x00, 9, 0, 1, 0};
	p1.payload = {1};
	EXPECT_FALSE(a.add(std::move(p1)));
	Packet p2;
	p2.header = {3, 0x01, 9, 0, 2, 0};
	p2.payload = {2};
	EXPECT_THROW(a.add(std::move(p2)), WireError);
}

TEST(LabWire, PreloginFromRealServerDecodes)
{
	Bytes packet = from_hex(labtest::kSql2022PreloginReply);
	auto options = decode_prelogin(payload_of(packet));
	ASSERT_GE(options.size(), 5u);
	EXPECT_EQ(options[0].token, prelogin_token::version);
	EXPECT_EQ(options[0].data[0], 16); // SQL Server 2022
	const auto* enc = find_option(options, prelogin_token::encryption);
	ASSERT_TRUE(enc);
	EXPECT_EQ(enc->data[0], static_cast<std::uint8_t>(Encryption::off));
	const auto* thread = find_option(options, prelogin_token::threadid);
	ASSERT_TRUE(thread);
	EXPECT_TRUE(thread->data.empty()); // real servers answer THREADID empty
}

TEST(LabWire, PreloginRoundTripAndBadOffsets)
{
	std::vector<PreloginOption> in = {{0, {16, 0, 3, 232, 0, 0}}, {1, {2}}, {4, {1}}};
	Bytes enc = encode_prelogin(in);
	auto out = decode_prelogin(enc);
	ASSERT_EQ(out.size(), 3u);
	EXPECT_EQ(out[2].data, Bytes{1});

	Bytes past_end = {0x00, 0x00, 0x10, 0x00, 0x06, 0xFF}; // option points beyond the payload
	EXPECT_THROW(decode_prelogin(past_end), WireError);
	Bytes no_end = {0x00, 0x00, 0x05, 0x00, 0x00}; // no terminator
	EXPECT_THROW(decode_prelogin(no_end), WireError);
}

TEST(LabWire, Login7RoundTripKeepsPasswordOpaque)
{
	Login7Request req;
	req.user_name = "alice";
	req.password = "S3cret!";
	req.app_name = "unit";
	req.database = "lab";
	req.packet_size = 8000;
	Bytes body = encode_login7(req);
	Login7 l = decode_login7(body);
	EXPECT_EQ(l.user_name, "alice");
	EXPECT_EQ(l.app_name, "unit");
	EXPECT_EQ(l.database, "lab");
	EXPECT_EQ(l.packet_size, 8000u);
	EXPECT_EQ(l.tds_version, 0x74000004u);
	EXPECT_FALSE(l.integrated_security());
	// The password is on the wire only in obfuscated form.
	ByteWriter plain;
	plain.utf16("S3cret!");
	auto it = std::search(body.begin(), body.end(), plain.buffer().begin(), plain.buffer().end());
	EXPECT_EQ(it, body.end());
}

TEST(LabWire, Login7TruncatedOrLyingLengthsThrow)
{
	Login7Request req;
	req.user_name = "bob";
	Bytes body = encode_login7(req);
	EXPECT_THROW(decode_login7(ByteView(body).first(50)), WireError);
	Bytes lying = body;
	lying[40] = 0xF0; // user name offset far past the end
	lying[41] = 0xFF;
	EXPECT_THROW(decode_login7(lying), WireError);
}

TEST(LabWire, SqlBatchWithAndWithoutAllHeaders)
{
	Bytes with = encode_sql_batch("SELECT 1");
	EXPECT_EQ(decode_sql_batch(with), "SELECT 1");
	ByteWriter bare;
	bare.utf16("SELECT 2"); // TDS 7.1 style: no ALL_HEADERS
	EXPECT_EQ(decode_sql_batch(bare.buffer()), "SELECT 2");
}

TEST(LabWire, RealSelectBatchDecodes)
{
	Bytes packet = from_hex(labtest::kSql2022SelectBatch);
	std::string sql = decode_sql_batch(payload_of(packet));
	EXPECT_EQ(sql.rfind("SELECT * FROM Inventory", 0), 0u) << sql;
}

TEST(LabWire, RpcExecuteSqlDecodes)
{
	ByteWriter w;
	w.bytes(encode_all_headers());
	w.u16le(0xFFFF);
	w.u16le(proc_id::sp_executesql);
	w.u16le(0);
	w.b_varchar("@statement");
	w.u8(0);
	w.u8(0xE7);
	w.u16le(8000);
	w.bytes(ByteView(kDefaultCollation, 5));
	ByteWriter text;
	text.utf16("SELECT 7");
	w.u16le(static_cast<std::uint16_t>(text.size()));
	w.bytes(text.buffer());
	RpcRequest rpc = decode_rpc(w.buffer());
	EXPECT_EQ(rpc_display_name(rpc), "sp_executesql");
	ASSERT_EQ(rpc.params.size(), 1u);
	ASSERT_TRUE(rpc.params[0].text);
	EXPECT_EQ(*rpc.params[0].text, "SELECT 7");
}

TEST(LabTokens, RealLoginReplyParsesAndOurOrderMatches)
{
	Bytes packet = from_hex(labtest::kSql2022LoginReply);
	ResponseSummary real = read_response(payload_of(packet));
	EXPECT_TRUE(real.login_ack);
	EXPECT_EQ(real.tds_version, 0x74000004u);
	EXPECT_EQ(real.packet_size, 4096u);
	ASSERT_EQ(real.infos.size(), 2u);
	EXPECT_EQ(real.infos[0].number, 5701u);
	EXPECT_EQ(real.infos[1].number, 5703u);
	EXPECT_TRUE(real.final_done);

	// The token sequence the lab server sends for a login, token bytes only.
	ServerSettings settings;
	Connection c(settings, 51, "test");
	// A plaintext login: PRELOGIN without TLS, LOGIN7, and collect the reply.
	std::vector<PreloginOption> pre = {{prelogin_token::version, {1, 0, 0, 0, 0, 0}},
					   {prelogin_token::encryption, {2}}};
	auto now = Clock::now();
	c.on_bytes(packetize(18, encode_prelogin(pre), 4096), now);
	Login7Request req;
	req.user_name = "sa";
	req.features = {{0x0A, {0x01}}}; // UTF-8 support, as tedious, pymssql and FreeTDS ask
	ASSERT_EQ(decode_login7(encode_login7(req)).features, std::vector<std::uint8_t>{0x0A});
	c.on_bytes(packetize(16, encode_login7(req), 4096), now);
	Bytes out = c.take_output();
	PacketSplitter s;
	s.feed(out);
	auto prelogin_reply = s.next();
	ASSERT_TRUE(prelogin_reply);
	auto login_reply = s.next();
	ASSERT_TRUE(login_reply);
	std::vector<std::uint8_t> ours, theirs;
	auto token_order = [](ByteView payload) {
		std::vector<std::uint8_t> order;
		ByteReader r(payload);
		while (r.remaining()) {
			std::uint8_t t = r.u8();
			order.push_back(t);
			if (t == token::done)
				break;
			if (t == token::featureextack) {
				while (r.u8() != 0xFF)
					r.skip(r.u32le());
				continue;
			}
			r.skip(r.u16le());
		}
		return order;
	};
	ours = token_order(login_reply->payload);
	theirs = token_order(payload_of(packet));
	// ENVCHANGE INFO ENVCHANGE ENVCHANGE INFO LOGINACK ENVCHANGE FEATUREEXTACK DONE
	EXPECT_EQ(ours, theirs);
	EXPECT_EQ(theirs.size(), 9u);
}

TEST(LabTokens, RealSelectReplyParses)
{
	Bytes packet = from_hex(labtest::kSql2022SelectReply);
	ResponseSummary s = read_response(payload_of(packet));
	ASSERT_EQ(s.rows, 1u); // id=2, name='orange', quantity=154
	EXPECT_EQ(std::get<std::int64_t>(s.first_rows[0][0]), 2);
	EXPECT_EQ(std::get<std::string>(s.first_rows[0][1]), "orange");
	EXPECT_EQ(std::get<std::int64_t>(s.first_rows[0][2]), 154);
	EXPECT_TRUE(s.final_done);
	EXPECT_EQ(s.done_row_count, 1u);
}

TEST(LabTokens, ResultSetRoundTrip)
{
	TokenWriter t;
	std::vector<Column> cols = {{"n", ColumnType::int32}, {"s", ColumnType::nvarchar}, {"b", ColumnType::bigint}};
	t.colmetadata(cols);
	t.row(cols, {std::int64_t{-5}, std::string("h\xC3\xA9llo"), std::int64_t{1} << 40});
	t.row(cols, {std::monostate{}, std::monostate{}, std::monostate{}});
	t.done(token::done, done_status::count, curcmd::select, 2);
	ResponseSummary s = read_response(t.take());
	ASSERT_EQ(s.rows, 2u);
	EXPECT_EQ(std::get<std::int64_t>(s.first_rows[0][0]), -5);
	EXPECT_EQ(std::get<std::string>(s.first_rows[0][1]), "h\xC3\xA9llo");
	EXPECT_EQ(std::get<std::int64_t>(s.first_rows[0][2]), std::int64_t{1} << 40);
	EXPECT_TRUE(std::holds_alternative<std::monostate>(s.first_rows[1][1]));
	EXPECT_EQ(s.done_row_count, 2u);
}

TEST(LabTokens, GarbageTokenStreamThrowsWireError)
{
	std::mt19937 rng(1234);
	for (int i = 0; i < 2000; ++i) {
		Bytes junk(rng() % 64);
		for (auto& b : junk)
			b = static_cast<std::uint8_t>(rng());
		try {
			read_response(junk);
		} catch (const WireError&) {
		}
	}
	SUCCEED();
}

TEST(LabSmp, HeaderAndWindow)
{
	SmpSession server(0);
	server.note_peer_window(2); // the client allows two DATA frames
	for (int i = 0; i < 3; ++i)
		server.queue_packet(Bytes(10, static_cast<std::uint8_t>(i)));
	Bytes frames = server.drain();
	EXPECT_EQ(frames.size(), 2 * (kSmpHeaderSize + 10));
	EXPECT_TRUE(server.has_queued());
	SmpHeader first = decode_smp_header(ByteView(frames).first(16));
	EXPECT_EQ(first.flags, smp_flag::data);
	EXPECT_EQ(first.seqnum, 1u);
	EXPECT_EQ(first.window, 4u);
	server.note_peer_window(6); // SMP:ACK from the client
	EXPECT_EQ(server.drain().size(), kSmpHeaderSize + 10);
	EXPECT_EQ(server.sent_seq(), 3u);
}

TEST(LabSmp, ReceiverChecksSequenceAndAcks)
{
	SmpSession s(1);
	SmpHeader h;
	h.flags = smp_flag::data;
	h.sid = 1;
	h.seqnum = 2; // skipped 1
	EXPECT_THROW(s.accept_data(h), WireError);
	h.seqnum = 1;
	s.accept_data(h);
	EXPECT_TRUE(s.ack_if_needed().empty()); // window 4, 3 left
	h.seqnum = 2;
	s.accept_data(h);
	h.seqnum = 3;
	s.accept_data(h);
	Bytes ack = s.ack_if_needed(); // 1 left: re-announce
	ASSERT_EQ(ack.size(), kSmpHeaderSize);
	SmpHeader a = decode_smp_header(ack);
	EXPECT_EQ(a.flags, smp_flag::ack);
	EXPECT_EQ(a.window, 7u);
	h.seqnum = 9;
	EXPECT_THROW(s.accept_data(h), WireError);
}

TEST(LabSmp, SplitterRejectsBadFrames)
{
	SmpFrameSplitter s;
	Bytes bad = {0x53, 0x03, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0}; // SYN|ACK is not a valid flag value
	s.feed(bad);
	EXPECT_THROW(s.next(), WireError);
	SmpFrameSplitter t;
	Bytes long_syn = {0x53, 0x01, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0};
	t.feed(long_syn);
	EXPECT_THROW(t.next(), WireError);
}

TEST(LabNtlm, NegotiateChallengeAuthenticate)
{
	Bytes neg = build_ntlm_negotiate();
	auto m = parse_ntlm(neg);
	ASSERT_TRUE(m);
	EXPECT_EQ(m->type, NtlmMessageType::negotiate);
	EXPECT_FALSE(m->in_spnego);

	Bytes wrapped = {0x60, 0x48, 0x06, 0x06, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x02};
	wrapped.insert(wrapped.end(), neg.begin(), neg.end());
	auto w = parse_ntlm(wrapped);
	ASSERT_TRUE(w);
	EXPECT_TRUE(w->in_spnego);

	Bytes challenge = build_ntlm_challenge(m->flags, false);
	auto c = parse_ntlm(challenge);
	ASSERT_TRUE(c);
	EXPECT_EQ(c->type, NtlmMessageType::challenge);
	Bytes spnego = build_ntlm_challenge(m->flags, true);
	EXPECT_EQ(spnego[0], 0xA1); // NegTokenResp
	EXPECT_EQ(parse_ntlm(spnego)->type, NtlmMessageType::challenge);

	Bytes auth = build_ntlm_authenticate("CORP", "joe", "WS1");
	auto a = parse_ntlm(auth);
	ASSERT_TRUE(a);
	EXPECT_EQ(a->type, NtlmMessageType::authenticate);
	EXPECT_EQ(a->domain, "CORP");
	EXPECT_EQ(a->user, "joe");
	EXPECT_EQ(a->workstation, "WS1");

	EXPECT_FALSE(parse_ntlm(Bytes{0x60, 0x01, 0x02})); // Kerberos-like: no NTLM inside
	Bytes broken = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0, 3, 0, 0, 0, 1};
	EXPECT_THROW(parse_ntlm(broken), WireError);
}

TEST(LabFaults, NamesParse)
{
	auto p = parse_faults("slow_login_1500+fail_login");
	ASSERT_TRUE(p);
	EXPECT_TRUE(p->fail_login);
	EXPECT_EQ(p->delays.at(Phase::login).count(), 1500);
	EXPECT_EQ(parse_faults("rst_tls")->rst_at, Phase::tls);
	EXPECT_EQ(parse_faults("fin_prelogin")->fin_at, Phase::prelogin);
	auto r = parse_faults("redirect_127.0.0.1_14330");
	ASSERT_TRUE(r && r->redirect);
	EXPECT_EQ(r->redirect->first, "127.0.0.1");
	EXPECT_EQ(r->redirect->second, 14330);
	EXPECT_EQ(parse_faults("idle_5")->idle_close->count(), 5);
	std::string error;
	EXPECT_FALSE(parse_faults("slow_lunch_5", &error));
	EXPECT_NE(error.find("phase"), std::string::npos);
	EXPECT_FALSE(parse_faults("redirect_host_99999"));
	EXPECT_TRUE(faults_from_login_name("CORP\\Fail_Login").fail_login);
	EXPECT_TRUE(faults_from_login_name("alice").empty());
}

TEST(LabQuery, Conventions)
{
	SessionFacts s;
	s.user = "u";
	s.version_text = "v";
	auto r = run_batch("SELECT 1", s);
	ASSERT_EQ(r.size(), 1u);
	EXPECT_EQ(std::get<std::int64_t>(r[0].rows[0][0]), 1);
	r = run_batch("select n from ROWS(1000)", s);
	EXPECT_EQ(r[0].generated_rows, 1000u);
	r = run_batch("SELECT 'a;b' AS x, @@VERSION; WAITFOR DELAY '00:00:01.5'; RAISERROR('boom', 16, 1)", s);
	ASSERT_EQ(r.size(), 3u);
	EXPECT_EQ(r[0].columns[0].name, "x");
	EXPECT_EQ(std::get<std::string>(r[0].rows[0][0]), "a;b");
	EXPECT_EQ(r[1].delay.count(), 1500);
	ASSERT_TRUE(r[2].error);
	EXPECT_EQ(r[2].error->text, "boom");
	r = run_batch("SELECT nonsense_column", s);
	ASSERT_TRUE(r[0].error);
	EXPECT_EQ(r[0].error->number, 207u);
	EXPECT_EQ(run_batch("   ", s).size(), 1u);
	s.params["@p1"] = std::int64_t{5};
	r = run_batch("SELECT @P1 AS a", s);
	ASSERT_FALSE(r[0].error);
	EXPECT_EQ(std::get<std::int64_t>(r[0].rows[0][0]), 5);
}

// Whatever a client sends, the connection ends in an orderly close and the
// state machine never lets an exception escape.
TEST(LabConnection, SurvivesGarbage)
{
	ServerSettings settings;
	std::mt19937 rng(42);
	for (int i = 0; i < 500; ++i) {
		Connection c(settings, 51, "fuzz");
		Bytes junk(1 + rng() % 300);
		for (auto& b : junk)
			b = static_cast<std::uint8_t>(rng());
		if (i % 3 == 0)
			junk[0] = 0x12; // look like PRELOGIN to get past the first check
		if (i % 3 == 0 && junk.size() > 3)
			junk[1] = 0x01;
		EXPECT_NO_THROW(c.on_bytes(junk, Clock::now()));
		EXPECT_NO_THROW(c.on_peer_closed());
	}
}

TEST(LabConnection, OversizedAndTruncatedPackets)
{
	ServerSettings settings;
	Connection big(settings, 51, "t");
	Bytes header = {0x12, 0x01, 0x00, 0x07, 0, 0, 0, 0}; // length 7 < header
	big.on_bytes(header, Clock::now());
	EXPECT_NE(big.close_action(), CloseAction::none);
	EXPECT_NE(big.last_error().find("length"), std::string::npos);

	Connection truncated(settings, 52, "t");
	Bytes part = {0x12, 0x01, 0x00, 0x40, 0, 0, 0, 0, 0x00, 0x00};
	truncated.on_bytes(part, Clock::now());
	EXPECT_EQ(truncated.close_action(), CloseAction::none); // waits for the rest
	truncated.on_peer_closed();
	EXPECT_EQ(truncated.close_action(), CloseAction::fin_after_flush);
}

TEST(LabConnection, OversizedMessageBeforeLoginIsRefused)
{
	ServerSettings settings;
	Connection c(settings, 51, "t");
	Bytes chunk(32000, 0);
	Bytes one = packetize(18, chunk, 32767); // not EOM: clear the bit
	one[1] = 0;
	for (int i = 0; i < 10 && c.close_action() == CloseAction::none; ++i)
		c.on_bytes(one, Clock::now());
	EXPECT_NE(c.close_action(), CloseAction::none);
	EXPECT_NE(c.last_error().find("larger than"), std::string::npos) << c.last_error();
}

TEST(LabConnection, FailLoginFaultByName)
{
	ServerSettings settings;
	Connection c(settings, 51, "t");
	auto now = Clock::now();
	std::vector<PreloginOption> pre = {{prelogin_token::version, {1, 0, 0, 0, 0, 0}},
					   {prelogin_token::encryption, {2}}};
	c.on_bytes(packetize(18, encode_prelogin(pre), 4096), now);
	Login7Request req;
	req.user_name = "fail_login";
	c.on_bytes(packetize(16, encode_login7(req), 4096), now);
	PacketSplitter s;
	s.feed(c.take_output());
	s.next(); // PRELOGIN reply
	auto reply = s.next();
	ASSERT_TRUE(reply);
	ResponseSummary r = read_response(reply->payload);
	EXPECT_FALSE(r.login_ack);
	ASSERT_EQ(r.errors.size(), 1u);
	EXPECT_EQ(r.errors[0].number, 18456u);
	EXPECT_EQ(r.errors[0].state, 1);
	EXPECT_EQ(r.errors[0].severity, 14);
	EXPECT_EQ(c.close_action(), CloseAction::fin_after_flush);
}

// Logs a plaintext client in and returns the connection ready for requests.
std::unique_ptr<Connection> logged_in_connection(const ServerSettings& settings)
{
	auto c = std::make_unique<Connection>(settings, 51, "t");
	std::vector<PreloginOption> pre = {{prelogin_token::version, {1, 0, 0, 0, 0, 0}},
					   {prelogin_token::encryption, {2}}};
	c->on_bytes(packetize(18, encode_prelogin(pre), 4096), Clock::now());
	Login7Request req;
	req.user_name = "sa";
	c->on_bytes(packetize(16, encode_login7(req), 4096), Clock::now());
	c->take_output();
	return c;
}

ResponseSummary next_reply(Connection& c)
{
	PacketSplitter s;
	s.feed(c.take_output());
	MessageAssembler a;
	while (auto p = s.next()) {
		if (auto m = a.add(std::move(*p)))
			return read_response(m->payload);
	}
	throw WireError("no reply");
}

TEST(LabConnection, ResetConnectionRestoresLoginDatabase)
{
	ServerSettings settings;
	auto c = logged_in_connection(settings);
	c->on_bytes(packetize(1, encode_sql_batch("USE scratch"), 4096), Clock::now());
	next_reply(*c);
	c->on_bytes(packetize(1, encode_sql_batch("SELECT DB_NAME()"), 4096), Clock::now());
	EXPECT_EQ(std::get<std::string>(next_reply(*c).first_rows.at(0).at(0)), "scratch");
	// A pooled connection handed out again: status 0x09 = EOM | RESETCONNECTION.
	c->on_bytes(packetize(1, encode_sql_batch("SELECT DB_NAME()"), 4096, 0, status::reset_connection),
		    Clock::now());
	Bytes out = c->take_output();
	ByteView payload = ByteView(out).subspan(kHeaderSize);
	ASSERT_GE(payload.size(), 4u);
	EXPECT_EQ(payload[0], token::envchange);
	EXPECT_EQ(payload[3], envchange_type::reset_ack);
	EXPECT_EQ(std::get<std::string>(read_response(payload).first_rows.at(0).at(0)), "master");
}

TEST(LabConnection, IgnoredRequestIsNotRun)
{
	ServerSettings settings;
	auto c = logged_in_connection(settings);
	Bytes batch = packetize(1, encode_sql_batch("SELECT n FROM rows(5)"), 4096);
	batch[1] |= status::ignore; // single packet: EOM | IGNORE
	c->on_bytes(batch, Clock::now());
	ResponseSummary r = next_reply(*c);
	EXPECT_EQ(r.rows, 0u);
	EXPECT_TRUE(r.final_done);
}

TEST(LabConnection, AttentionDuringWaitforAndIdle)
{
	ServerSettings settings;
	auto c = logged_in_connection(settings);
	auto now = Clock::now();
	c->on_bytes(packetize(1, encode_sql_batch("SELECT 1; WAITFOR DELAY '00:00:30'; SELECT 2"), 4096), now);
	EXPECT_TRUE(c->take_output().empty()); // held by WAITFOR
	ASSERT_TRUE(c->next_deadline());
	Bytes attention = {0x06, 0x01, 0x00, 0x08, 0x00, 0x00, 0x01, 0x00};
	c->on_bytes(attention, now);
	PacketSplitter s;
	s.feed(c->take_output());
	MessageAssembler a;
	std::vector<ResponseSummary> replies;
	while (auto p = s.next()) {
		if (auto m = a.add(std::move(*p)))
			replies.push_back(read_response(m->payload));
	}
	ASSERT_EQ(replies.size(), 2u); // the cut-short response, then the acknowledgement
	EXPECT_EQ(replies[0].rows, 1u);
	EXPECT_FALSE(replies[0].attention_ack);
	EXPECT_TRUE(replies[1].attention_ack);
	EXPECT_FALSE(c->next_deadline());
	// Attention with nothing running: acknowledged alone.
	c->on_bytes(attention, now);
	EXPECT_TRUE(next_reply(*c).attention_ack);
}

TEST(LabConnection, MarsSessionsOverSmp)
{
	ServerSettings settings;
	Connection c(settings, 51, "t");
	std::vector<PreloginOption> pre = {{prelogin_token::version, {1, 0, 0, 0, 0, 0}},
					   {prelogin_token::encryption, {2}},
					   {prelogin_token::mars, {1}}};
	c.on_bytes(packetize(18, encode_prelogin(pre), 4096), Clock::now());
	auto pre_reply = decode_prelogin(ByteView(c.take_output()).subspan(kHeaderSize));
	EXPECT_EQ(find_option(pre_reply, prelogin_token::mars)->data, Bytes{1});
	Login7Request req;
	req.user_name = "sa";
	c.on_bytes(packetize(16, encode_login7(req), 4096), Clock::now());
	c.take_output();

	SmpSession s0(0), s1(1);
	Bytes in = s0.make_syn();
	Bytes syn1 = s1.make_syn();
	in.insert(in.end(), syn1.begin(), syn1.end());
	s0.queue_packet(packetize(1, encode_sql_batch("SELECT n FROM rows(5000)"), 4096));
	s1.queue_packet(packetize(1, encode_sql_batch("SELECT 42"), 4096));
	Bytes d0 = s0.drain(), d1 = s1.drain();
	in.insert(in.end(), d0.begin(), d0.end());
	in.insert(in.end(), d1.begin(), d1.end());
	c.on_bytes(in, Clock::now());

	SmpFrameSplitter frames;
	frames.feed(c.take_output());
	std::map<std::uint16_t, int> data_frames;
	std::uint32_t last_seq0 = 0;
	while (auto f = frames.next()) {
		if (f->header.flags == smp_flag::data) {
			++data_frames[f->header.sid];
			if (f->header.sid == 0)
				last_seq0 = f->header.seqnum;
		}
	}
	// rows(5000) needs 7 packets: session 0 stops at the client's
	// window (4) until an ACK; session 1 is answered meanwhile.
	EXPECT_EQ(data_frames[0], 4);
	EXPECT_EQ(last_seq0, 4u);
	EXPECT_EQ(data_frames[1], 1);
	SmpHeader ack;
	ack.flags = smp_flag::ack;
	ack.sid = 0;
	ack.seqnum = 1;
	ack.window = 100;
	c.on_bytes(encode_smp_frame(ack), Clock::now());
	frames.feed(c.take_output());
	int more = 0;
	while (auto f = frames.next())
		more += f->header.flags == smp_flag::data;
	EXPECT_GT(more, 0);
	// FIN both ways.
	c.on_bytes(s1.make_fin(), Clock::now());
	frames.feed(c.take_output());
	auto fin = frames.next();
	ASSERT_TRUE(fin);
	EXPECT_EQ(fin->header.flags, smp_flag::fin);
	EXPECT_EQ(fin->header.sid, 1);
}

// ---- TDS 7.0 and 7.1 ----

TEST(LabOldTds, NegotiatedVersion)
{
	EXPECT_EQ(negotiate_tds_version(0x70000000), tds_version::v7_0);
	EXPECT_EQ(negotiate_tds_version(0x71000000), tds_version::v7_1);
	EXPECT_EQ(negotiate_tds_version(0x71000001), tds_version::v7_1_rev1);
	EXPECT_EQ(negotiate_tds_version(0x72090002), tds_version::v7_2);
	EXPECT_EQ(negotiate_tds_version(0x730B0003), tds_version::v7_3b);
	EXPECT_EQ(negotiate_tds_version(0x74000004), tds_version::v7_4);
	EXPECT_EQ(negotiate_tds_version(0x75000000), tds_version::v7_4); // newer than the server
	EXPECT_EQ(negotiate_tds_version(0x08000000), tds_version::v7_4); // TDS 8.0 (strict)
	EXPECT_EQ(negotiate_tds_version(0x00000070), tds_version::v7_4); // byte-swapped nonsense
	// The server-to-client numbering of [MS-TDS] 2.2.7.14.
	EXPECT_EQ(loginack_tds_version(tds_version::v7_0), 0x07000000u);
	EXPECT_EQ(loginack_tds_version(tds_version::v7_1), 0x07010000u);
	EXPECT_EQ(loginack_tds_version(tds_version::v7_1_rev1), 0x71000001u);
	EXPECT_EQ(loginack_tds_version(tds_version::v7_4), 0x74000004u);
}

TEST(LabOldTds, ShortLogin7FixedPart)
{
	Login7Request req;
	req.tds_version = 0x70000000;
	req.user_name = "old";
	req.database = "lab";
	Bytes body = encode_login7(req);
	EXPECT_EQ(body[36], 86); // the first variable field follows an 86-byte fixed part
	Login7 l = decode_login7(body);
	EXPECT_EQ(l.tds_version, 0x70000000u);
	EXPECT_EQ(l.user_name, "old");
	EXPECT_EQ(l.database, "lab");
	EXPECT_TRUE(l.sspi.empty());
	Bytes short_body(body.begin(), body.begin() + 80); // shorter than even the old fixed part
	short_body[0] = 80;
	EXPECT_THROW(decode_login7(short_body), WireError);
}

// Token types of a reply, and the ENVCHANGE types among them.
struct TokenWalk {
	std::vector<std::uint8_t> tokens;
	std::vector<std::uint8_t> envchanges;
};

TokenWalk walk_login_reply(ByteView payload)
{
	TokenWalk w;
	ByteReader r(payload);
	while (r.remaining()) {
		std::uint8_t t = r.u8();
		w.tokens.push_back(t);
		if (t == token::done)
			break;
		std::uint16_t len = r.u16le();
		if (t == token::envchange)
			w.envchanges.push_back(payload[r.position()]);
		r.skip(len);
	}
	return w;
}

Bytes run_request(Connection& c, std::string_view sql)
{
	c.on_bytes(packetize(1, encode_sql_batch(sql), 4096), Clock::now());
	Bytes out = c.take_output();
	PacketSplitter s;
	s.feed(out);
	MessageAssembler a;
	while (auto p = s.next()) {
		if (auto m = a.add(std::move(*p)))
			return m->payload;
	}
	throw WireError("no reply");
}

// A TDS 7.0 client opens with its LOGIN7; the reply and every result are
// laid out as 7.0 has them.
TEST(LabOldTds, Tds70LoginWithoutPrelogin)
{
	ServerSettings settings;
	Connection c(settings, 51, "t");
	Login7Request req;
	req.tds_version = 0x70000000;
	req.user_name = "sa";
	c.on_bytes(packetize(16, encode_login7(req), 4096), Clock::now());
	Bytes out = c.take_output();
	ASSERT_GT(out.size(), kHeaderSize);
	EXPECT_EQ(decode_header(out).spid, 51); // a session from the first reply on
	EXPECT_EQ(out[0], 4);
	ByteView payload = ByteView(out).subspan(kHeaderSize);
	ResponseSummary r = read_response(payload, 16, tds_version::v7_0); // throws if a width is wrong
	EXPECT_TRUE(r.login_ack);
	EXPECT_EQ(r.tds_version, 0x07000000u);
	ASSERT_EQ(r.infos.size(), 2u);
	EXPECT_EQ(r.infos[1].line, 1u);
	EXPECT_TRUE(r.final_done);
	TokenWalk w = walk_login_reply(payload);
	// No collation yet: character set and Unicode sort order instead.
	const std::vector<std::uint8_t> envchanges = {
		envchange_type::database,	    envchange_type::charset,  envchange_type::unicode_locale,
		envchange_type::unicode_comparison, envchange_type::language, envchange_type::packet_size};
	EXPECT_EQ(w.envchanges, envchanges);
	EXPECT_EQ(std::count(w.tokens.begin(), w.tokens.end(), token::featureextack), 0);
	EXPECT_EQ(w.tokens.back(), token::done);
	EXPECT_EQ(payload[payload.size() - 9], token::done); // a 9-byte DONE ends it

	Bytes rows = run_request(c, "SELECT n FROM rows(2)");
	// COLMETADATA: count 1, UserType u16, flags, INTN 4, name "n".
	const Bytes meta = {0x81, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x26, 0x04, 0x01, 'n', 0x00};
	ASSERT_GE(rows.size(), meta.size() + 9);
	EXPECT_TRUE(std::equal(meta.begin(), meta.end(), rows.begin()));
	const Bytes done = {0xFD, 0x10, 0x00, 0xC1, 0x00, 0x02, 0x00, 0x00, 0x00};
	EXPECT_TRUE(std::equal(done.begin(), done.end(), rows.end() - 9));
	EXPECT_EQ(rows.size(), meta.size() + 2 * 6 + 9);

	// nvarchar without a collation, bigint as numeric(19,0).
	Bytes mixed = run_request(c, "SELECT N'x' AS s, 5000000000 AS big, -5000000000 AS neg");
	ResponseSummary m = read_response(mixed, 16, tds_version::v7_0);
	ASSERT_EQ(m.rows, 1u);
	EXPECT_EQ(std::get<std::string>(m.first_rows[0][0]), "x");
	EXPECT_EQ(std::get<std::int64_t>(m.first_rows[0][1]), 5000000000);
	EXPECT_EQ(std::get<std::int64_t>(m.first_rows[0][2]), -5000000000);
	const Bytes numeric = {0x6C, 9, 19, 0};
	EXPECT_NE(std::search(mixed.begin(), mixed.end(), numeric.begin(), numeric.end()), mixed.end());
	EXPECT_THROW(read_response(mixed, 16, tds_version::v7_4), WireError); // not the 7.4 layout

	// ERROR tokens carry 2-byte line numbers too.
	ResponseSummary e = read_response(run_request(c, "RAISERROR('old', 16, 1)"), 16, tds_version::v7_0);
	ASSERT_EQ(e.errors.size(), 1u);
	EXPECT_EQ(e.errors[0].line, 1u);
}

// TDS 7.1 Rev 1 after a PRELOGIN: collations are there, the 7.2 widths not;
// RESETCONNECTION (new in 7.1) is honoured without the 7.2 acknowledgement.
TEST(LabOldTds, Tds71Tokens)
{
	ServerSettings settings;
	Connection c(settings, 51, "t");
	std::vector<PreloginOption> pre = {{prelogin_token::version, {8, 0, 0, 0, 0, 0}},
					   {prelogin_token::encryption, {2}}};
	c.on_bytes(packetize(18, encode_prelogin(pre), 4096), Clock::now());
	c.take_output();
	Login7Request req;
	req.tds_version = 0x71000001;
	req.user_name = "sa";
	c.on_bytes(packetize(16, encode_login7(req), 4096), Clock::now());
	Bytes out = c.take_output();
	ByteView payload = ByteView(out).subspan(kHeaderSize);
	ResponseSummary r = read_response(payload, 16, tds_version::v7_1_rev1);
	EXPECT_EQ(r.tds_version, 0x71000001u);
	TokenWalk w = walk_login_reply(payload);
	EXPECT_EQ(w.envchanges, (std::vector<std::uint8_t>{envchange_type::database, envchange_type::collation,
							   envchange_type::language, envchange_type::packet_size}));

	Bytes mixed = run_request(c, "SELECT N'x' AS s, 5000000000 AS big");
	ResponseSummary m = read_response(mixed, 16, tds_version::v7_1_rev1);
	EXPECT_EQ(std::get<std::string>(m.first_rows[0][0]), "x");
	EXPECT_EQ(std::get<std::int64_t>(m.first_rows[0][1]), 5000000000);
	const Bytes done = {0xFD, 0x10, 0x00, 0xC1, 0x00, 0x01, 0x00, 0x00, 0x00};
	EXPECT_TRUE(std::equal(done.begin(), done.end(), mixed.end() - 9));

	c.on_bytes(packetize(1, encode_sql_batch("SELECT 1"), 4096, 0, status::reset_connection), Clock::now());
	Bytes reset = c.take_output();
	EXPECT_EQ(reset[kHeaderSize], token::colmetadata); // no ENVCHANGE 18 before 7.2
}

TEST(LabOldTds, LoginWithoutPreloginRefusedWhenEncryptionRequired)
{
	ServerSettings settings;
	settings.encryption = EncryptionMode::required;
	Connection c(settings, 51, "t");
	Login7Request req;
	req.tds_version = 0x70000000;
	req.user_name = "sa";
	c.on_bytes(packetize(16, encode_login7(req), 4096), Clock::now());
	EXPECT_TRUE(c.take_output().empty());
	EXPECT_EQ(c.close_action(), CloseAction::fin_after_flush);
}

// What drivers send after login, and what SQL Server would answer.
TEST(LabQuery, DriverMetadataQueries)
{
	SessionFacts s;
	s.spid = 53;
	s.user = "sa";
	s.server_name = "TDSLAB";
	s.app_name = "TSQL";

	// FreeTDS: "set textsize N" and the next statement without a ';'.
	EXPECT_EQ(split_statements("set textsize 64512 select @@spid use [lab]"),
		  (std::vector<std::string>{"set textsize 64512", "select @@spid", "use [lab]"}));
	EXPECT_EQ(split_statements("set ansi_nulls on\nset textsize 2147483647").size(), 1u); // tedious' options
	EXPECT_EQ(split_statements("SET @x = (SELECT 1)").size(), 1u);
	EXPECT_EQ(split_statements("select 1 select 'two'").size(), 2u);
	EXPECT_EQ(split_statements("SELECT a FROM t UNION ALL SELECT b").size(), 1u);
	auto r = run_batch("set textsize 64512 select @@spid", s);
	ASSERT_EQ(r.size(), 2u);
	EXPECT_EQ(std::get<std::int64_t>(r[1].rows.at(0).at(0)), 53);

	r = run_batch("SELECT SERVERPROPERTY('ProductVersion') AS v, SERVERPROPERTY('engineedition') e, "
		      "SERVERPROPERTY('InstanceName'), CAST(SERVERPROPERTY('ProductMajorVersion') AS int) AS major, "
		      "CONVERT(varchar(10), @@SPID) AS spid_text, APP_NAME(), @@TRANCOUNT, @@MICROSOFTVERSION, "
		      "SERVERPROPERTY('Collation')",
		      s);
	ASSERT_FALSE(r[0].error) << r[0].error->text;
	const auto& row = r[0].rows.at(0);
	EXPECT_EQ(r[0].columns[0].name, "v");
	EXPECT_EQ(std::get<std::string>(row[0]), "16.0.1000.0");
	EXPECT_EQ(r[0].columns[1].name, "e");
	EXPECT_EQ(std::get<std::int64_t>(row[1]), 3);
	EXPECT_TRUE(std::holds_alternative<std::monostate>(row[2])); // the default instance
	EXPECT_EQ(std::get<std::int64_t>(row[3]), 16);
	EXPECT_EQ(std::get<std::string>(row[4]), "53");
	EXPECT_EQ(std::get<std::string>(row[5]), "TSQL");
	EXPECT_EQ(std::get<std::int64_t>(row[6]), 0);
	EXPECT_EQ(std::get<std::int64_t>(row[7]), (16 << 24) | 1000);
	EXPECT_EQ(std::get<std::string>(row[8]), "SQL_Latin1_General_CP1_CI_AS");

	// sp_server_info: by name alone as the first statement, or with EXEC.
	r = run_batch("sp_server_info 2", s);
	ASSERT_EQ(r[0].rows.size(), 1u);
	EXPECT_EQ(std::get<std::string>(r[0].rows[0][1]), "DBMS_VER");
	r = run_batch("SELECT 1; EXEC master.dbo.sp_server_info @attribute_id = 1", s);
	ASSERT_EQ(r[1].rows.size(), 1u);
	EXPECT_EQ(std::get<std::string>(r[1].rows[0][2]), "Microsoft SQL Server");
	EXPECT_GT(run_batch("exec sp_server_info", s)[0].rows.size(), 20u);

	// sp_datatype_info as FreeTDS ODBC asks for it at connect (SQL_VARCHAR, ODBC 3).
	auto types = run_procedure("sys.sp_datatype_info_100", {std::int64_t{12}, std::int64_t{3}}, s);
	ASSERT_TRUE(types);
	ASSERT_EQ(types->columns.size(), 20u);
	EXPECT_EQ(types->columns[2].name, "PRECISION");
	ASSERT_EQ(types->rows.size(), 1u);
	EXPECT_EQ(std::get<std::string>(types->rows[0][0]), "varchar");
	EXPECT_EQ(std::get<std::int64_t>(types->rows[0][2]), 8000);
	EXPECT_EQ(run_procedure("sp_datatype_info", {}, s)->rows.size(), 26u);
	EXPECT_FALSE(run_procedure("sp_who", {}, s));
	// Rendered for an old client, the result set is still readable.
	TokenWriter t(tds_version::v7_0);
	t.colmetadata(types->columns);
	for (const auto& v : types->rows)
		t.row(types->columns, v);
	t.done(token::done, done_status::count, curcmd::select, types->rows.size());
	EXPECT_EQ(read_response(t.take(), 16, tds_version::v7_0).rows, 1u);
}

} // namespace
} // namespace tdslab
