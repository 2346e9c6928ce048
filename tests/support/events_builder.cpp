// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "events_builder.h"

#include <arpa/inet.h>

#include <cmath>
#include <cstring>

namespace tdsbpf::test {

uint64_t at(double offset_s)
{
	// Offsets carry 7 decimals (100 ns); round to that to stay exact.
	return kBaseNs + static_cast<uint64_t>(std::llround(offset_s * 1e7)) * 100ull;
}

Trace::Trace(const char* client, uint16_t client_port, const char* server, uint16_t server_port)
{
	if (std::strchr(client, ':')) {
		inet_pton(AF_INET6, client, key_.client_addr);
		inet_pton(AF_INET6, server, key_.server_addr);
		key_.family = 6;
	} else {
		inet_pton(AF_INET, client, key_.client_addr);
		inet_pton(AF_INET, server, key_.server_addr);
		key_.family = 4;
	}
	key_.client_port = client_port;
	key_.server_port = server_port;
}

Record& Trace::add(double t, uint8_t kind, int dir)
{
	recs_.emplace_back();
	Record& r = recs_.back();
	tdsbpf_event& e = r.base();
	e.ts_ns = at(t);
	e.key = key_;
	e.ifindex = 2;
	e.kind = kind;
	e.dir = static_cast<uint8_t>(dir);
	e.hook = TDSBPF_HOOK_PCAP;
	e.tcp_flags = 0x10;
	if (midstream_)
		e.flags |= TDSBPF_F_MIDSTREAM;
	return r;
}

Trace& Trace::syn(double t, uint32_t seq, uint8_t flags)
{
	Record& r = add(t, TDSBPF_EV_TCP_SYN, C2S);
	r.base().tcp_flags = flags;
	r.base().seq = seq;
	return *this;
}

Trace& Trace::synack(double t, uint32_t seq, uint32_t ack, uint8_t flags)
{
	Record& r = add(t, TDSBPF_EV_TCP_SYNACK, S2C);
	r.base().tcp_flags = flags;
	r.base().seq = seq;
	r.base().ack = ack;
	return *this;
}

Trace& Trace::hs_ack(double t, uint32_t seq, uint32_t ack)
{
	Record& r = add(t, TDSBPF_EV_TCP_HANDSHAKE_ACK, C2S);
	r.base().seq = seq;
	r.base().ack = ack;
	return *this;
}

Trace& Trace::fin(double t, int dir, uint32_t seq, uint32_t ack)
{
	Record& r = add(t, TDSBPF_EV_TCP_FIN, dir);
	r.base().tcp_flags = 0x11;
	r.base().seq = seq;
	r.base().ack = ack;
	return *this;
}

Trace& Trace::close_ack(double t, int dir, uint32_t seq, uint32_t ack)
{
	Record& r = add(t, TDSBPF_EV_TCP_CLOSE_ACK, dir);
	r.base().seq = seq;
	r.base().ack = ack;
	return *this;
}

Trace& Trace::rst(double t, int dir, uint32_t seq, uint32_t ack, uint8_t flags)
{
	Record& r = add(t, TDSBPF_EV_TCP_RST, dir);
	r.base().tcp_flags = flags;
	r.base().seq = seq;
	r.base().ack = ack;
	return *this;
}

Trace& Trace::keepalive(double t, int dir)
{
	add(t, TDSBPF_EV_TCP_KEEPALIVE, dir);
	return *this;
}

Trace& Trace::keepalive_ack(double t, int dir)
{
	add(t, TDSBPF_EV_TCP_KEEPALIVE_ACK, dir);
	return *this;
}

Trace& Trace::retrans(double t, int dir)
{
	add(t, TDSBPF_EV_TCP_RETRANS, dir);
	return *this;
}

Trace& Trace::zero_window(double t, int dir)
{
	add(t, TDSBPF_EV_TCP_ZERO_WINDOW, dir);
	return *this;
}

Trace& Trace::stats(double t, uint64_t b0, uint64_t b1, uint32_t p0, uint32_t p1, bool final)
{
	Record& r = add(t, TDSBPF_EV_FLOW_STATS, C2S);
	r.base().u.stats.bytes[0] = b0;
	r.base().u.stats.bytes[1] = b1;
	r.base().u.stats.packets[0] = p0;
	r.base().u.stats.packets[1] = p1;
	r.base().u.stats.final = final;
	return *this;
}

Record& Trace::add_tds(double t, int dir, uint8_t type, uint8_t status, uint8_t detail)
{
	Record& r = add(t, TDSBPF_EV_TDS, dir);
	r.base().tcp_flags = 0x18;
	tdsbpf_tds& tds = r.base().u.tds;
	tds.type = type;
	tds.status = status;
	tds.length = 8;
	tds.packet_id = 1;
	tds.detail = detail;
	if (smp_sid_ >= 0) {
		r.base().flags |= TDSBPF_F_IN_SMP;
		tds.smp_flags = SMP_DATA;
		tds.smp_sid = static_cast<uint16_t>(smp_sid_);
		tds.smp_seq = ++smp_seq_[dir];
		tds.smp_window = 4;
	}
	return r;
}

Trace& Trace::prelogin(double t, int dir, uint8_t major, uint8_t minor, uint16_t build, uint8_t encryption,
		       uint8_t mars)
{
	Record& r = add_tds(t, dir, dir == C2S ? TDS_PRELOGIN : TDS_REPLY, TDS_STATUS_EOM, TDSBPF_D_PRELOGIN);
	tdsbpf_prelogin& p = r.base().u.tds.d.prelogin;
	p.version_major = major;
	p.version_minor = minor;
	p.version_build = build;
	p.encryption = encryption;
	p.mars = mars;
	p.fedauth_required = TDSBPF_VALUE_ABSENT;
	p.present = 0x1 | 0x2 | (mars != TDSBPF_VALUE_ABSENT ? 0x10 : 0);
	return *this;
}

Trace& Trace::tls_in_tds(double t, int dir, uint8_t content, uint8_t handshake, uint16_t version)
{
	Record& r = add_tds(t, dir, TDS_PRELOGIN, TDS_STATUS_EOM, TDSBPF_D_TLS);
	tdsbpf_tls& s = r.base().u.tds.d.tls;
	s.content_type = content;
	s.handshake_type = handshake;
	s.record_version = 0x0303;
	if (handshake == 1 || handshake == 2) {
		s.hello_version = version > 0x0303 ? 0x0303 : version;
		s.selected_version = version > 0x0303 ? version : 0;
		s.flags = TDSBPF_TLS_HELLO_PARSED;
	}
	return *this;
}

Trace& Trace::tls(double t, int dir, uint8_t content, uint8_t handshake, uint16_t version, uint8_t flags)
{
	Record& r = add(t, TDSBPF_EV_TLS, dir);
	r.base().tcp_flags = 0x18;
	tdsbpf_tls& s = r.base().u.tls;
	s.content_type = content;
	s.handshake_type = handshake;
	s.record_version = 0x0303;
	s.record_length = 100;
	if (handshake == 1 || handshake == 2) {
		s.hello_version = version > 0x0303 ? 0x0303 : version;
		s.selected_version = version > 0x0303 ? version : 0;
		s.flags = TDSBPF_TLS_HELLO_PARSED;
	}
	s.flags |= flags;
	return *this;
}

Trace& Trace::tls_data(double t, int dir, uint16_t record_length)
{
	tls(t, dir, 23);
	recs_.back().base().u.tls.record_length = record_length;
	return *this;
}

Trace& Trace::login7(double t, uint32_t tds_version, bool integrated, uint8_t sspi_kind, bool read_only, bool fedauth,
		     uint32_t packet_size)
{
	Record& r = add_tds(t, C2S, TDS_LOGIN7, TDS_STATUS_EOM, TDSBPF_D_LOGIN7);
	tdsbpf_login7& l = r.base().u.tds.d.login7;
	l.tds_version = tds_version;
	l.packet_size = packet_size;
	l.option_flags2 = integrated ? 0x80 : 0;
	l.type_flags = read_only ? 0x20 : 0;
	l.sspi_kind = sspi_kind;
	l.flags = fedauth ? TDSBPF_L7_FEDAUTH : 0;
	return *this;
}

Trace& Trace::loginack(double t, uint32_t tds_version, uint8_t major, uint8_t minor, uint16_t build, uint16_t spid,
		       uint16_t extra_tokens)
{
	Record& r = add_tds(t, S2C, TDS_REPLY, TDS_STATUS_EOM, TDSBPF_D_REPLY);
	r.base().u.tds.spid = spid;
	tdsbpf_reply& rep = r.base().u.tds.d.reply;
	rep.tokens = TDSBPF_TOK_LOGINACK | TDSBPF_TOK_ENVCHANGE | TDSBPF_TOK_INFO | TDSBPF_TOK_DONE | extra_tokens;
	rep.loginack_tds_version = tds_version;
	rep.server_version[0] = major;
	rep.server_version[1] = minor;
	rep.server_version[2] = static_cast<uint8_t>(build >> 8);
	rep.server_version[3] = static_cast<uint8_t>(build & 0xff);
	return *this;
}

Trace& Trace::reply(double t, uint16_t tokens, uint16_t spid, uint8_t status)
{
	Record& r = add_tds(t, S2C, TDS_REPLY, status, TDSBPF_D_REPLY);
	r.base().u.tds.spid = spid;
	r.base().u.tds.d.reply.tokens = tokens;
	return *this;
}

Trace& Trace::login_error(double t, uint32_t number, uint8_t state, uint8_t cls)
{
	Record& r = add_tds(t, S2C, TDS_REPLY, TDS_STATUS_EOM, TDSBPF_D_REPLY);
	tdsbpf_reply& rep = r.base().u.tds.d.reply;
	rep.tokens = TDSBPF_TOK_ERROR | TDSBPF_TOK_DONE;
	rep.error_number = number;
	rep.error_state = state;
	rep.error_class = cls;
	rep.done_status = 0x02;
	return *this;
}

Trace& Trace::sspi_challenge(double t)
{
	Record& r = add_tds(t, S2C, TDS_REPLY, TDS_STATUS_EOM, TDSBPF_D_REPLY);
	r.base().u.tds.d.reply.tokens = TDSBPF_TOK_SSPI;
	r.base().u.tds.d.reply.sspi_ntlm_type = 2;
	return *this;
}

Trace& Trace::sspi_token(double t)
{
	Record& r = add_tds(t, S2C, TDS_REPLY, TDS_STATUS_EOM, TDSBPF_D_REPLY);
	r.base().u.tds.packet_id = 0;
	r.base().u.tds.length = 196;
	r.base().u.tds.d.reply.tokens = TDSBPF_TOK_SSPI;
	return *this;
}

Trace& Trace::sspi_client(double t, uint8_t kind, uint8_t ntlm_type)
{
	Record& r = add_tds(t, C2S, TDS_SSPI, TDS_STATUS_EOM, TDSBPF_D_SSPI);
	r.base().u.tds.d.sspi.kind = kind;
	r.base().u.tds.d.sspi.ntlm_type = ntlm_type;
	return *this;
}

static uint16_t put_utf16(uint8_t* dst, const std::string& s)
{
	size_t n = 0;
	for (char ch : s) {
		if (n + 2 > TDSBPF_NTLM_NAME_MAX)
			break;
		dst[n++] = static_cast<uint8_t>(ch);
		dst[n++] = 0;
	}
	return static_cast<uint16_t>(n);
}

Trace& Trace::ntlm_auth(double t, const std::string& domain, const std::string& user, const std::string& workstation)
{
	// The packet programs send this record in place of the SSPI packet's
	// own TDS event: base.u.tds is that packet.
	Record& r = add_tds(t, C2S, TDS_SSPI, TDS_STATUS_EOM, TDSBPF_D_SSPI);
	r.base().kind = TDSBPF_EV_NTLM_AUTH;
	r.len = sizeof(tdsbpf_ntlm_event);
	r.base().u.tds.d.sspi.kind = TDSBPF_SSPI_NTLM;
	r.base().u.tds.d.sspi.ntlm_type = 3;
	r.ev.encoding = TDSBPF_NTLM_UNICODE;
	r.ev.domain_len = put_utf16(r.ev.domain, domain);
	r.ev.user_len = put_utf16(r.ev.user, user);
	r.ev.workstation_len = put_utf16(r.ev.workstation, workstation);
	return *this;
}

Trace& Trace::request(double t, uint8_t type, uint8_t status)
{
	Record& r = add_tds(t, C2S, type, status,
			    type == TDS_SQL_BATCH || type == TDS_RPC ? TDSBPF_D_REQUEST : TDSBPF_D_NONE);
	r.base().u.tds.d.request.all_headers_length = 22;
	return *this;
}

Trace& Trace::response(double t, uint8_t status, uint16_t spid, uint8_t packet_id)
{
	Record& r = add_tds(t, S2C, TDS_REPLY, status, TDSBPF_D_NONE);
	r.base().u.tds.spid = spid;
	r.base().u.tds.packet_id = packet_id;
	return *this;
}

Trace& Trace::done(double t, uint16_t status, uint64_t rows)
{
	Record& r = add(t, TDSBPF_EV_TDS_DONE, S2C);
	r.base().u.done.token = 0xFD;
	r.base().u.done.status = status;
	r.base().u.done.rows = rows;
	return *this;
}

Trace& Trace::tail_done(uint16_t status, uint64_t rows)
{
	tdsbpf_tds& t = recs_.back().base().u.tds;
	t.tail_token = 0xFD;
	t.tail_done_status = status;
	t.tail_done_rows = rows;
	return *this;
}

Trace& Trace::routing(double t, const std::string& server, uint16_t port)
{
	Record& r = add_tds(t, S2C, TDS_REPLY, TDS_STATUS_EOM, TDSBPF_D_REPLY);
	tdsbpf_reply& rep = r.base().u.tds.d.reply;
	rep.tokens = TDSBPF_TOK_LOGINACK | TDSBPF_TOK_ENVCHANGE | TDSBPF_TOK_ROUTING | TDSBPF_TOK_DONE;
	rep.loginack_tds_version = 0x74000004;
	rep.routing_port = port;
	rep.routing_server_len = static_cast<uint8_t>(std::min<size_t>(server.size(), 16));
	std::memcpy(rep.routing_server, server.data(), rep.routing_server_len);
	return *this;
}

Trace& Trace::smp(double t, int dir, uint8_t flags, uint16_t sid, uint32_t seq, uint32_t window)
{
	Record& r = add(t, TDSBPF_EV_SMP, dir);
	r.base().tcp_flags = 0x18;
	tdsbpf_smp& m = r.base().u.smp;
	m.flags = flags;
	m.sid = sid;
	m.length = 16;
	m.seq = seq;
	m.window = window;
	return *this;
}

Trace& Trace::in_smp(int sid)
{
	smp_sid_ = sid;
	return *this;
}

Trace& Trace::midstream(bool on)
{
	midstream_ = on;
	return *this;
}

void feed(Aggregator& agg, const std::vector<Record>& recs)
{
	uint64_t last = 0;
	for (const Record& r : recs) {
		agg.on_event(r.base(), r.len);
		last = std::max<uint64_t>(last, r.base().ts_ns);
	}
	agg.finish(last + 1000000000ull);
}

std::vector<nlohmann::json> run(const std::vector<Record>& recs, AggregatorConfig cfg)
{
	CollectSink sink;
	Aggregator agg(cfg, sink);
	feed(agg, recs);
	return sink.records;
}

std::vector<std::string> phase_names(const nlohmann::json& r)
{
	std::vector<std::string> v;
	for (const auto& p : r.at("phases"))
		v.push_back(p.at("name").get<std::string>());
	return v;
}

std::vector<std::string> diagnosis_codes(const nlohmann::json& r)
{
	std::vector<std::string> v;
	for (const auto& d : r.at("diagnoses"))
		v.push_back(d.at("code").get<std::string>());
	return v;
}

bool has_diagnosis(const nlohmann::json& r, const std::string& code)
{
	for (const auto& c : diagnosis_codes(r))
		if (c == code)
			return true;
	return false;
}

} // namespace tdsbpf::test
