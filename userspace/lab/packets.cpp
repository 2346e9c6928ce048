// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "lab/packets.h"

namespace tdsbpf::lab {


Bytes tds(uint8_t type, uint8_t status, const Bytes& body, uint16_t spid, uint8_t packet_id)
{
	Bytes b;
	put8(b, type);
	put8(b, status);
	be16(b, (uint16_t)(8 + body.size()));
	be16(b, spid);
	put8(b, packet_id);
	put8(b, 0);
	append(b, body);
	return b;
}

Bytes prelogin(const std::vector<std::pair<uint8_t, Bytes>>& opts)
{
	Bytes table, data;
	uint16_t off = (uint16_t)(opts.size() * 5 + 1);
	for (auto& [tok, val] : opts) {
		put8(table, tok);
		be16(table, (uint16_t)(off + data.size()));
		be16(table, (uint16_t)val.size());
		append(data, val);
	}
	put8(table, 0xff);
	append(table, data);
	return table;
}

Bytes obfuscate_password(const std::string& pw)
{
	Bytes b = utf16(pw);
	for (auto& c : b)
		c = (uint8_t)(((c << 4) | (c >> 4)) ^ 0xa5);
	return b;
}

Bytes login7(const Login7& l)
{
	Bytes f(94, 0);
	set_le32(f, 4, l.tds_version);
	set_le32(f, 8, l.packet_size);
	set_le32(f, 12, l.prog_ver);
	set_le32(f, 16, l.pid);
	f[24] = l.flags1;
	f[25] = l.flags2;
	f[26] = l.type_flags;
	f[27] = l.flags3 | (l.features.empty() ? 0 : 0x10);
	set_le32(f, 32, 0x0409);
	Bytes data;
	auto field = [&](size_t at, const Bytes& v, uint16_t chars) {
		set_le16(f, at, (uint16_t)(94 + data.size()));
		set_le16(f, at + 2, chars);
		append(data, v);
	};
	field(36, utf16(l.host), (uint16_t)l.host.size());
	field(40, utf16(l.user), (uint16_t)l.user.size());
	field(44, obfuscate_password(l.password), (uint16_t)l.password.size());
	field(48, utf16(l.app), (uint16_t)l.app.size());
	field(52, utf16(l.server), (uint16_t)l.server.size());
	size_t ext_dword = 0;
	if (!l.features.empty()) {
		ext_dword = data.size();
		field(56, Bytes(4, 0), 4);
	}
	field(60, utf16(l.library), (uint16_t)l.library.size());
	field(64, utf16(l.language), (uint16_t)l.language.size());
	field(68, utf16(l.database), (uint16_t)l.database.size());
	for (int i = 0; i < 6; i++)
		f[72 + i] = (uint8_t)(0x10 + i);
	set_le16(f, 78, (uint16_t)(94 + data.size()));
	set_le16(f, 80, (uint16_t)l.sspi.size());
	append(data, l.sspi);
	set_le16(f, 82, (uint16_t)(94 + data.size()));
	field(86, obfuscate_password(l.change_password), (uint16_t)l.change_password.size());
	if (!l.features.empty()) {
		set_le32(data, ext_dword, (uint32_t)(94 + data.size()));
		append(data, l.features);
	}
	append(f, data);
	set_le32(f, 0, (uint32_t)f.size());
	return f;
}

Bytes ntlm_negotiate()
{
	Bytes b{'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};
	le32(b, 1);
	le32(b, 0xe2088297);
	append(b, Bytes(16, 0));
	return b;
}

Bytes ntlm_challenge()
{
	Bytes b{'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};
	le32(b, 2);
	le16(b, 0);
	le16(b, 0);
	le32(b, 48); // target name
	le32(b, 0xe2898215);
	for (int i = 0; i < 8; i++)
		put8(b, (uint8_t)(0xc0 + i)); // server challenge
	append(b, Bytes(8, 0));
	le16(b, 0);
	le16(b, 0);
	le32(b, 48); // target info
	return b;
}

Bytes ntlm_authenticate(const std::string& domain, const std::string& user, const std::string& ws, uint32_t flags)
{
	Bytes hdr{'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};
	le32(hdr, 3);
	Bytes payload;
	Bytes lm(24, 0x11), nt(24, 0x22), d = utf16(domain), u = utf16(user), w = utf16(ws), key(16, 0x33);
	auto secbuf = [&](const Bytes& v) {
		le16(hdr, (uint16_t)v.size());
		le16(hdr, (uint16_t)v.size());
		le32(hdr, (uint32_t)(64 + payload.size()));
		append(payload, v);
	};
	secbuf(lm);
	secbuf(nt);
	secbuf(d);
	secbuf(u);
	secbuf(w);
	secbuf(key);
	le32(hdr, flags);
	append(hdr, payload);
	return hdr;
}

static Bytes der(uint8_t tag, const Bytes& content)
{
	Bytes b{tag};
	size_t n = content.size();
	if (n < 128) {
		put8(b, (uint8_t)n);
	} else if (n < 256) {
		put8(b, 0x81);
		put8(b, (uint8_t)n);
	} else {
		put8(b, 0x82);
		be16(b, (uint16_t)n);
	}
	append(b, content);
	return b;
}

static const Bytes kSpnegoOid{0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02};
static const Bytes kKrbOid{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02};
static const Bytes kNtlmOid{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a};

Bytes spnego_init(const Bytes& mech_token, bool kerberos_mech)
{
	Bytes mechs = der(0x30, kerberos_mech ? kKrbOid : kNtlmOid);
	Bytes init = cat({der(0xa0, mechs), der(0xa2, der(0x04, mech_token))});
	return der(0x60, cat({kSpnegoOid, der(0xa0, der(0x30, init))}));
}

Bytes kerberos_raw()
{
	// GSS InitialContextToken: Kerberos OID, TOK_ID 01 00, an AP-REQ-like body
	Bytes apreq = der(0x6e, der(0x30, Bytes(40, 0x5a)));
	return der(0x60, cat({kKrbOid, Bytes{0x01, 0x00}, apreq}));
}

static Bytes b_varchar(const std::string& s)
{
	Bytes b{(uint8_t)s.size()};
	append(b, utf16(s));
	return b;
}

static Bytes us_varchar(const std::string& s)
{
	Bytes b;
	le16(b, (uint16_t)s.size());
	append(b, utf16(s));
	return b;
}

static Bytes token(uint8_t tok, const Bytes& body)
{
	Bytes b{tok};
	le16(b, (uint16_t)body.size());
	append(b, body);
	return b;
}

Bytes tok_loginack(uint32_t tds_version, std::array<uint8_t, 4> ver, const std::string& prog)
{
	Bytes b{1};
	be32(b, tds_version);
	append(b, b_varchar(prog));
	b.insert(b.end(), ver.begin(), ver.end());
	return token(0xad, b);
}

Bytes tok_error(uint32_t number, uint8_t state, uint8_t cls, const std::string& msg, uint8_t tok)
{
	Bytes b;
	le32(b, number);
	put8(b, state);
	put8(b, cls);
	append(b, us_varchar(msg));
	append(b, b_varchar("SRV1"));
	append(b, b_varchar(""));
	le32(b, 1);
	return token(tok, b);
}

Bytes tok_env_routing(uint16_t port, const std::string& server)
{
	Bytes v{0};
	le16(v, port);
	append(v, us_varchar(server));
	Bytes b{20};
	le16(b, (uint16_t)v.size());
	append(b, v);
	le16(b, 0);
	return token(0xe3, b);
}

Bytes tok_env_packet_size(const std::string& n, const std::string& o)
{
	Bytes b{4};
	append(b, b_varchar(n));
	append(b, b_varchar(o));
	return token(0xe3, b);
}

Bytes tok_env_database(const std::string& db)
{
	Bytes b{1};
	append(b, b_varchar(db));
	append(b, b_varchar("master"));
	return token(0xe3, b);
}

Bytes tok_sspi(const Bytes& blob)
{
	return token(0xed, blob);
}

Bytes tok_done(uint16_t status, uint16_t cur_cmd, uint64_t rows, bool tds71, uint8_t tok)
{
	Bytes b{tok};
	le16(b, status);
	le16(b, cur_cmd);
	if (tds71)
		le32(b, (uint32_t)rows);
	else
		le64(b, rows);
	return b;
}

Bytes tok_colmetadata_int()
{
	Bytes b{0x81};
	le16(b, 1);
	le32(b, 0);
	le16(b, 0x0009);
	put8(b, 0x38);
	append(b, b_varchar("n"));
	return b;
}

Bytes all_headers(uint64_t txdesc, uint32_t outstanding)
{
	Bytes b;
	le32(b, 22);
	le32(b, 18);
	le16(b, 2);
	le64(b, txdesc);
	le32(b, outstanding);
	return b;
}

Bytes batch_body(const std::string& sql, bool with_headers, uint64_t txdesc)
{
	Bytes b;
	if (with_headers)
		b = all_headers(txdesc);
	append(b, utf16(sql));
	return b;
}

Bytes rpc_by_id(uint16_t proc_id)
{
	Bytes b = all_headers(0);
	le16(b, 0xffff);
	le16(b, proc_id);
	le16(b, 0);
	return b;
}

Bytes rpc_by_name(const std::string& name)
{
	Bytes b = all_headers(0);
	append(b, us_varchar(name));
	le16(b, 0);
	return b;
}

Bytes tls_record(uint8_t type, const Bytes& body, uint16_t version)
{
	Bytes b{type};
	be16(b, version);
	be16(b, (uint16_t)body.size());
	append(b, body);
	return b;
}

static Bytes handshake_msg(uint8_t type, const Bytes& body)
{
	Bytes b{type, (uint8_t)(body.size() >> 16)};
	be16(b, (uint16_t)body.size());
	append(b, body);
	return b;
}

static Bytes ext(uint16_t type, const Bytes& data)
{
	Bytes b;
	be16(b, type);
	be16(b, (uint16_t)data.size());
	append(b, data);
	return b;
}

static Bytes alpn(const std::vector<std::string>& names)
{
	Bytes list;
	for (auto& n : names) {
		put8(list, (uint8_t)n.size());
		list.insert(list.end(), n.begin(), n.end());
	}
	Bytes b;
	be16(b, (uint16_t)list.size());
	append(b, list);
	return b;
}

Bytes tls_client_hello(bool alpn_tds8, bool alpn_other)
{
	Bytes h;
	be16(h, 0x0303);
	append(h, Bytes(32, 0x42));
	put8(h, 32);
	append(h, Bytes(32, 0x24));
	be16(h, 4);
	be16(h, 0x1301);
	be16(h, 0xc02f);
	put8(h, 1);
	put8(h, 0);
	Bytes exts;
	Bytes sni;
	be16(sni, 8);
	put8(sni, 0);
	be16(sni, 5);
	for (char c : std::string("db1.x"))
		put8(sni, (uint8_t)c);
	append(exts, ext(0x0000, sni));
	append(exts, ext(0x002b, Bytes{4, 0x03, 0x04, 0x03, 0x03}));
	std::vector<std::string> names;
	if (alpn_other)
		names.push_back("h2");
	if (alpn_tds8)
		names.push_back("tds/8.0");
	if (!names.empty())
		append(exts, ext(0x0010, alpn(names)));
	be16(h, (uint16_t)exts.size());
	append(h, exts);
	return tls_record(22, handshake_msg(1, h), 0x0301);
}

Bytes tls_server_hello(uint16_t supported_version, bool alpn_tds8, uint16_t cipher)
{
	Bytes h;
	be16(h, 0x0303);
	append(h, Bytes(32, 0x77));
	put8(h, 32);
	append(h, Bytes(32, 0x24));
	be16(h, cipher);
	put8(h, 0);
	Bytes exts;
	if (supported_version) {
		Bytes v;
		be16(v, supported_version);
		append(exts, ext(0x002b, v));
	}
	if (alpn_tds8)
		append(exts, ext(0x0010, alpn({"tds/8.0"})));
	append(exts, ext(0xff01, Bytes{0}));
	be16(h, (uint16_t)exts.size());
	append(h, exts);
	return tls_record(22, handshake_msg(2, h));
}

Bytes tls_server_flight(const Bytes& certificate_der, uint16_t cipher)
{
	auto u24 = [](Bytes& b, size_t n) {
		put8(b, (uint8_t)(n >> 16));
		be16(b, (uint16_t)n);
	};
	Bytes list;
	u24(list, certificate_der.size());
	append(list, certificate_der);
	Bytes certs;
	u24(certs, list.size());
	append(certs, list);
	return cat({tls_server_hello(0, false, cipher), tls_record(22, handshake_msg(11, certs)),
		    tls_record(22, handshake_msg(14, {}))});
}

Bytes smp(uint8_t flags, uint16_t sid, uint32_t seq, uint32_t window, const Bytes& payload)
{
	Bytes b{0x53, flags};
	le16(b, sid);
	le32(b, (uint32_t)(16 + payload.size()));
	le32(b, seq);
	le32(b, window);
	append(b, payload);
	return b;
}

Bytes Conn::ip(bool c2s, uint32_t seq, uint32_t ack, uint8_t flags, const Bytes& payload, uint16_t win) const
{
	Bytes t;
	be16(t, c2s ? cport : sport);
	be16(t, c2s ? sport : cport);
	be32(t, seq);
	be32(t, ack);
	put8(t, 5 << 4);
	put8(t, flags);
	be16(t, win);
	be16(t, 0);
	be16(t, 0);
	append(t, payload);
	return ip_packet(c2s, 6, t);
}

Bytes Conn::ip_packet(bool c2s, uint8_t proto, const Bytes& l4) const
{
	const auto& src = c2s ? caddr : saddr;
	const auto& dst = c2s ? saddr : caddr;
	Bytes b;
	if (!v6) {
		put8(b, 0x45);
		put8(b, 0);
		be16(b, (uint16_t)(20 + l4.size()));
		be16(b, 0x1234);
		be16(b, 0x4000);
		put8(b, 64);
		put8(b, proto);
		be16(b, 0);
		b.insert(b.end(), src.begin(), src.begin() + 4);
		b.insert(b.end(), dst.begin(), dst.begin() + 4);
	} else {
		be32(b, 0x60000000);
		be16(b, (uint16_t)l4.size());
		put8(b, proto);
		put8(b, 64);
		b.insert(b.end(), src.begin(), src.end());
		b.insert(b.end(), dst.begin(), dst.end());
	}
	append(b, l4);
	return b;
}

Bytes Conn::link(const Bytes& ip, bool c2s) const
{
	Bytes b{0x02, 0, 0, 0, 0, (uint8_t)(c2s ? 2 : 1), 0x02, 0, 0, 0, 0, (uint8_t)(c2s ? 1 : 2)};
	if (vlan) {
		be16(b, 0x8100);
		be16(b, vlan_id);
	}
	be16(b, v6 ? 0x86dd : 0x0800);
	append(b, ip);
	if (pad && b.size() < 60)
		b.resize(60, 0);
	return b;
}

Bytes Conn::udp(bool c2s, const Bytes& payload) const
{
	Bytes u;
	be16(u, c2s ? cport : sport);
	be16(u, c2s ? sport : cport);
	be16(u, (uint16_t)(8 + payload.size()));
	be16(u, 0);
	append(u, payload);
	return link(ip_packet(c2s, 17, u), c2s);
}

Bytes Conn::frame(bool c2s, uint32_t seq, uint32_t ack, uint8_t flags, const Bytes& payload, uint16_t win) const
{
	return link(ip(c2s, seq, ack, flags, payload, win), c2s);
}

Bytes ssrp_ucast_inst(const std::string& instance)
{
	Bytes b{0x04};
	b.insert(b.end(), instance.begin(), instance.end());
	b.push_back(0);
	return b;
}

Bytes ssrp_response(const std::string& text)
{
	Bytes b{0x05};
	le16(b, (uint16_t)text.size());
	b.insert(b.end(), text.begin(), text.end());
	return b;
}

} // namespace tdsbpf::lab
