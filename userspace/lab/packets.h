// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Builders for test traffic: Ethernet/802.1Q/IPv4/IPv6/TCP frames of one
// TCP connection, and the TDS, SMP and NTLM messages carried in them.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace tdsbpf::lab {

using Bytes = std::vector<uint8_t>;

inline void put_be16(Bytes& b, uint16_t v) { b.push_back(v >> 8); b.push_back(v & 0xff); }
inline void put_le16(Bytes& b, uint16_t v) { b.push_back(v & 0xff); b.push_back(v >> 8); }
inline void put_be32(Bytes& b, uint32_t v) { put_be16(b, v >> 16); put_be16(b, v & 0xffff); }
inline void put_le32(Bytes& b, uint32_t v) { put_le16(b, v & 0xffff); put_le16(b, v >> 16); }
inline void put_le64(Bytes& b, uint64_t v) { put_le32(b, v & 0xffffffff); put_le32(b, v >> 32); }
inline void append(Bytes& b, const Bytes& x) { b.insert(b.end(), x.begin(), x.end()); }
inline Bytes utf16(const std::string& s)
{
	Bytes b;
	for (char c : s)
		put_le16(b, static_cast<uint8_t>(c));
	return b;
}

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;

// One TCP connection between a client and a SQL Server port.
struct Conversation {
	bool v6 = false;
	int vlan = -1;
	uint16_t client_port = 50123;
	uint16_t server_port = 1433;
	uint32_t seq[2] = {1000000, 7000000}; // next sequence: [0] client, [1] server

	// dir 0: client to server. Advances that side's sequence.
	Bytes frame(int dir, uint8_t flags, const Bytes& payload = {}, uint16_t window = 64240)
	{
		Bytes f = raw(dir, flags, payload, seq[dir], seq[dir ^ 1], window);
		seq[dir] += static_cast<uint32_t>(payload.size()) + ((flags & (kSyn | kFin)) ? 1 : 0);
		return f;
	}

	Bytes raw(int dir, uint8_t flags, const Bytes& payload, uint32_t s, uint32_t a, uint16_t window) const
	{
		Bytes tcp;
		put_be16(tcp, dir == 0 ? client_port : server_port);
		put_be16(tcp, dir == 0 ? server_port : client_port);
		put_be32(tcp, s);
		put_be32(tcp, (flags & kAck) ? a : 0);
		tcp.push_back(5 << 4);
		tcp.push_back(flags);
		put_be16(tcp, window);
		put_be16(tcp, 0); // checksum: not checked by the tracer
		put_be16(tcp, 0);
		append(tcp, payload);

		Bytes f(12, 0);
		f[0] = 0x02; // locally administered MACs
		f[6] = 0x02;
		f[5] = dir == 0 ? 2 : 1;
		f[11] = dir == 0 ? 1 : 2;
		if (vlan >= 0) {
			put_be16(f, 0x8100);
			put_be16(f, static_cast<uint16_t>(vlan));
		}
		uint8_t c4[4] = {10, 9, 0, 2}, s4[4] = {10, 9, 0, 1};
		uint8_t c6[16] = {0xfd, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
		uint8_t s6[16] = {0xfd, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
		if (!v6) {
			put_be16(f, 0x0800);
			Bytes ip = {0x45, 0};
			put_be16(ip, static_cast<uint16_t>(20 + tcp.size()));
			put_be32(ip, 0x00004000); // id 0, DF
			ip.push_back(64);
			ip.push_back(6);
			put_be16(ip, 0);
			const uint8_t* src = dir == 0 ? c4 : s4;
			const uint8_t* dst = dir == 0 ? s4 : c4;
			ip.insert(ip.end(), src, src + 4);
			ip.insert(ip.end(), dst, dst + 4);
			append(f, ip);
		} else {
			put_be16(f, 0x86dd);
			Bytes ip = {0x60, 0, 0, 0};
			put_be16(ip, static_cast<uint16_t>(tcp.size()));
			ip.push_back(6);
			ip.push_back(64);
			const uint8_t* src = dir == 0 ? c6 : s6;
			const uint8_t* dst = dir == 0 ? s6 : c6;
			ip.insert(ip.end(), src, src + 16);
			ip.insert(ip.end(), dst, dst + 16);
			append(f, ip);
		}
		append(f, tcp);
		while (f.size() < 60)
			f.push_back(0); // Ethernet padding, as on a real wire
		return f;
	}
};

inline Bytes tds_packet(uint8_t type, uint8_t status, const Bytes& body, uint16_t spid = 0, uint8_t id = 1)
{
	Bytes b = {type, status};
	put_be16(b, static_cast<uint16_t>(body.size() + 8));
	put_be16(b, spid);
	b.push_back(id);
	b.push_back(0);
	append(b, body);
	return b;
}

// PRELOGIN options: VERSION, ENCRYPTION, INSTOPT, THREADID, MARS, TRACEID
inline Bytes prelogin_body(uint8_t major, uint8_t minor, uint16_t build, uint8_t encryption, uint8_t mars)
{
	Bytes opts, data;
	auto add = [&](uint8_t token, const Bytes& value) {
		opts.push_back(token);
		put_be16(opts, 0); // patched below
		put_be16(opts, static_cast<uint16_t>(value.size()));
		append(data, value);
	};
	add(0, {major, minor, static_cast<uint8_t>(build >> 8), static_cast<uint8_t>(build), 0, 0});
	add(1, {encryption});
	add(2, {'M', 'S', 'S', 'Q', 'L', 'S', 'E', 'R', 'V', 'E', 'R', 0});
	add(3, {0, 0, 0x12, 0x34});
	add(4, {mars});
	Bytes trace(36);
	for (int i = 0; i < 36; i++)
		trace[i] = static_cast<uint8_t>(i + 1);
	add(5, trace);
	opts.push_back(0xff);
	uint16_t off = static_cast<uint16_t>(opts.size());
	for (std::size_t i = 0; i + 5 <= opts.size(); i += 5) {
		opts[i + 1] = off >> 8;
		opts[i + 2] = off & 0xff;
		off = static_cast<uint16_t>(off + ((opts[i + 3] << 8) | opts[i + 4]));
	}
	append(opts, data);
	return opts;
}

inline Bytes ntlm_negotiate()
{
	Bytes b = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};
	put_le32(b, 1);
	put_le32(b, 0xe2088297);
	b.resize(40, 0);
	return b;
}

inline Bytes ntlm_challenge()
{
	Bytes b = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};
	put_le32(b, 2);
	b.resize(56, 0);
	return b;
}

inline Bytes ntlm_authenticate(const std::string& domain, const std::string& user, const std::string& ws)
{
	Bytes d = utf16(domain), u = utf16(user), w = utf16(ws);
	Bytes nt(24, 0x5a);
	Bytes b = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};
	put_le32(b, 3);
	uint32_t off = 64;
	auto buf = [&](const Bytes& x) {
		put_le16(b, static_cast<uint16_t>(x.size()));
		put_le16(b, static_cast<uint16_t>(x.size()));
		put_le32(b, off);
		off += static_cast<uint32_t>(x.size());
	};
	buf({});   // LM response (empty)
	buf(nt);   // NT response
	buf(d);
	buf(u);
	buf(w);
	buf({});   // session key
	put_le32(b, 0xe2088215); // negotiate flags: unicode
	append(b, nt);
	append(b, d);
	append(b, u);
	append(b, w);
	return b;
}

// LOGIN7 with user, a recognisable password, and an optional SSPI blob.
inline Bytes login7_body(uint32_t tds_version, const std::string& user, const std::string& password,
			 const Bytes& sspi = {}, bool read_only = false)
{
	Bytes host = utf16("WS01"), usr = utf16(user), app = utf16("app"), srv = utf16("srv"),
	      lib = utf16("lib"), lang, db = utf16("master");
	// obfuscate the password the way LOGIN7 does (swap nibbles, xor 0xA5)
	Bytes pwd = utf16(password);
	for (auto& c : pwd)
		c = static_cast<uint8_t>(((c << 4) | (c >> 4)) ^ 0xa5);
	Bytes b;
	put_le32(b, 0); // total length, patched
	put_le32(b, tds_version);
	put_le32(b, 4096);
	put_le32(b, 0x07000000);
	put_le32(b, 4242);
	put_le32(b, 0);
	b.push_back(0xe0);
	b.push_back(sspi.empty() ? 0x03 : 0x83);
	b.push_back(read_only ? 0x20 : 0x00);
	b.push_back(0x00);
	put_le32(b, 0);
	put_le32(b, 0x409);
	uint16_t off = 94;
	auto field = [&](const Bytes& x) {
		put_le16(b, off);
		put_le16(b, static_cast<uint16_t>(x.size() / 2));
		off = static_cast<uint16_t>(off + x.size());
	};
	field(host);
	field(sspi.empty() ? usr : Bytes{});
	field(sspi.empty() ? pwd : Bytes{});
	field(app);
	field(srv);
	put_le16(b, off); put_le16(b, 0); // extension
	field(lib);
	field(lang);
	field(db);
	for (int i = 0; i < 6; i++)
		b.push_back(0x11);
	put_le16(b, off); // SSPI
	put_le16(b, static_cast<uint16_t>(sspi.size()));
	off = static_cast<uint16_t>(off + sspi.size());
	put_le16(b, off); put_le16(b, 0); // attach db
	put_le16(b, off); put_le16(b, 0); // change password
	put_le32(b, 0);
	append(b, host);
	if (sspi.empty()) {
		append(b, usr);
		append(b, pwd);
	}
	append(b, app);
	append(b, srv);
	append(b, lib);
	append(b, db);
	append(b, sspi);
	uint32_t n = static_cast<uint32_t>(b.size());
	std::memcpy(b.data(), &n, 4);
	return b;
}

inline Bytes token_envchange_packetsize(const std::string& now, const std::string& before)
{
	Bytes v = {4, static_cast<uint8_t>(now.size())};
	append(v, utf16(now));
	v.push_back(static_cast<uint8_t>(before.size()));
	append(v, utf16(before));
	Bytes t = {0xe3};
	put_le16(t, static_cast<uint16_t>(v.size()));
	append(t, v);
	return t;
}

inline Bytes token_loginack(uint32_t tds_version_be, uint8_t major, uint8_t minor, uint16_t build)
{
	Bytes v = {1};
	put_be32(v, tds_version_be);
	Bytes name = utf16("Microsoft SQL Server");
	v.push_back(static_cast<uint8_t>(name.size() / 2));
	append(v, name);
	v.push_back(major);
	v.push_back(minor);
	v.push_back(build >> 8);
	v.push_back(build & 0xff);
	Bytes t = {0xad};
	put_le16(t, static_cast<uint16_t>(v.size()));
	append(t, v);
	return t;
}

inline Bytes token_error(uint32_t number, uint8_t state, uint8_t cls, const std::string& msg)
{
	Bytes v;
	put_le32(v, number);
	v.push_back(state);
	v.push_back(cls);
	put_le16(v, static_cast<uint16_t>(msg.size()));
	append(v, utf16(msg));
	v.push_back(0); // server name
	v.push_back(0); // proc name
	put_le32(v, 1);
	Bytes t = {0xaa};
	put_le16(t, static_cast<uint16_t>(v.size()));
	append(t, v);
	return t;
}

inline Bytes token_sspi(const Bytes& blob)
{
	Bytes t = {0xed};
	put_le16(t, static_cast<uint16_t>(blob.size()));
	append(t, blob);
	return t;
}

inline Bytes token_done(uint16_t status, uint64_t rows, uint8_t token = 0xfd)
{
	Bytes t = {token};
	put_le16(t, status);
	put_le16(t, 0xc1);
	put_le64(t, rows);
	return t;
}

inline Bytes all_headers()
{
	Bytes b;
	put_le32(b, 22);
	put_le32(b, 18);
	put_le16(b, 2);
	put_le64(b, 0);
	put_le32(b, 1);
	return b;
}

inline Bytes sql_batch_body(const std::string& sql)
{
	Bytes b = all_headers();
	append(b, utf16(sql));
	return b;
}

inline Bytes smp(uint8_t flags, uint16_t sid, uint32_t seq, uint32_t window, const Bytes& data = {})
{
	Bytes b = {0x53, flags};
	put_le16(b, sid);
	put_le32(b, static_cast<uint32_t>(16 + data.size()));
	put_le32(b, seq);
	put_le32(b, window);
	append(b, data);
	return b;
}

} // namespace tdsbpf::lab
