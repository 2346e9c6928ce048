// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Crafted bytes of SQL Server traffic, for the tests and the benchmarks:
// link/IP/TCP/UDP frames of one connection (Conn), TDS packets and the
// messages inside them (PRELOGIN, TLS hellos, LOGIN7, reply tokens, NTLM,
// SPNEGO/Kerberos blobs, requests, SMP headers) and SQL Server Browser
// datagrams. The one builder of such bytes in the tree.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace tdsbpf::lab {

using Bytes = std::vector<uint8_t>;

inline void put8(Bytes& b, uint8_t v)
{
	b.push_back(v);
}
inline void be16(Bytes& b, uint16_t v)
{
	b.push_back(v >> 8);
	b.push_back(v & 0xff);
}
inline void le16(Bytes& b, uint16_t v)
{
	b.push_back(v & 0xff);
	b.push_back(v >> 8);
}
inline void be32(Bytes& b, uint32_t v)
{
	be16(b, v >> 16);
	be16(b, v & 0xffff);
}
inline void le32(Bytes& b, uint32_t v)
{
	le16(b, v & 0xffff);
	le16(b, v >> 16);
}
inline void le64(Bytes& b, uint64_t v)
{
	le32(b, (uint32_t)v);
	le32(b, (uint32_t)(v >> 32));
}
inline void append(Bytes& b, const Bytes& x)
{
	b.insert(b.end(), x.begin(), x.end());
}
inline void set_le16(Bytes& b, size_t at, uint16_t v)
{
	b[at] = v & 0xff;
	b[at + 1] = v >> 8;
}
inline void set_le32(Bytes& b, size_t at, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[at + i] = (v >> (8 * i)) & 0xff;
}
inline Bytes utf16(const std::string& s)
{
	Bytes b;
	for (unsigned char c : s)
		le16(b, c);
	return b;
}
inline Bytes cat(std::initializer_list<Bytes> parts)
{
	Bytes b;
	for (auto& p : parts)
		append(b, p);
	return b;
}

// ---- TDS -------------------------------------------------------------------
Bytes tds(uint8_t type, uint8_t status, const Bytes& body, uint16_t spid = 0, uint8_t packet_id = 1);

// PRELOGIN payload from (token, value) options, in order, ended by 0xFF.
Bytes prelogin(const std::vector<std::pair<uint8_t, Bytes>>& opts);

struct Login7 {
	uint32_t tds_version = 0x74000004;
	uint32_t packet_size = 4096;
	uint32_t prog_ver = 0x07000000;
	uint32_t pid = 4242;
	uint8_t flags1 = 0xe0, flags2 = 0x03, type_flags = 0, flags3 = 0;
	std::string host = "WS01", user = "sa", password = "", app = "app", server = "db1", library = "lib",
		    language = "", database = "master";
	std::string change_password; // the new password of a password change
	Bytes sspi;
	Bytes features; // FeatureExt block (ids, lengths, data, 0xFF); sets flags3 0x10
};
Bytes login7(const Login7& l);
// The TDS obfuscation of a password (what goes on the wire).
Bytes obfuscate_password(const std::string& pw);

// ---- SSPI blobs ---------------------------------------------------------
Bytes ntlm_negotiate();
Bytes ntlm_challenge();
Bytes ntlm_authenticate(const std::string& domain, const std::string& user, const std::string& ws,
			uint32_t flags = 0xe2888215);
Bytes spnego_init(const Bytes& mech_token, bool kerberos_mech);
Bytes kerberos_raw();

// ---- Server tokens --------------------------------------------------------
Bytes tok_loginack(uint32_t tds_version, std::array<uint8_t, 4> ver, const std::string& prog = "Microsoft SQL Server");
Bytes tok_error(uint32_t number, uint8_t state, uint8_t cls, const std::string& msg, uint8_t token = 0xaa);
Bytes tok_env_routing(uint16_t port, const std::string& server);
Bytes tok_env_packet_size(const std::string& new_size, const std::string& old_size);
Bytes tok_env_database(const std::string& db);
Bytes tok_sspi(const Bytes& blob);
Bytes tok_done(uint16_t status, uint16_t cur_cmd, uint64_t rows, bool tds71 = false, uint8_t token = 0xfd);
Bytes tok_colmetadata_int();

// ---- Requests -------------------------------------------------------------
Bytes all_headers(uint64_t txdesc, uint32_t outstanding = 1);
Bytes batch_body(const std::string& sql, bool with_headers = true, uint64_t txdesc = 0x1122334455667788ULL);
Bytes rpc_by_id(uint16_t proc_id);
Bytes rpc_by_name(const std::string& name);

// ---- TLS ------------------------------------------------------------------
Bytes tls_client_hello(bool alpn_tds8, bool alpn_other = false);
Bytes tls_server_hello(uint16_t supported_version /* 0: none */, bool alpn_tds8 = false, uint16_t cipher = 0x1302);
Bytes tls_record(uint8_t type, const Bytes& body, uint16_t version = 0x0303);
// A TLS 1.2 server flight: ServerHello, Certificate (this one), ServerHelloDone.
Bytes tls_server_flight(const Bytes& certificate_der, uint16_t cipher = 0xc02f);

// ---- SMP ------------------------------------------------------------------
Bytes smp(uint8_t flags, uint16_t sid, uint32_t seq, uint32_t window, const Bytes& payload = {});

// ---- SQL Server Browser (SSRP, [MC-SQLR]) ------------------------------------
Bytes ssrp_ucast_inst(const std::string& instance); // CLNT_UCAST_INST
Bytes ssrp_response(const std::string& text);	    // SVR_RESP around "ServerName;...;;"

// ---- Link / IP / TCP --------------------------------------------------------
enum : uint8_t { FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10 };

struct Conn {
	bool v6 = false;
	bool vlan = false;
	uint16_t vlan_id = 100;
	std::array<uint8_t, 16> caddr{10, 0, 0, 1}, saddr{10, 0, 0, 2};
	uint16_t cport = 50000, sport = 1433;
	uint32_t cseq = 1000, sseq = 500000; // next sequence each side sends
	uint16_t window = 8192;
	bool pad = false; // pad frames to Ethernet's 60 bytes, as on a real wire (IP length < frame)

	// An Ethernet frame of one segment (does not move the sequence numbers).
	Bytes frame(bool c2s, uint32_t seq, uint32_t ack, uint8_t flags, const Bytes& payload,
		    uint16_t win = 8192) const;
	// The IP packet only (no link header).
	Bytes ip(bool c2s, uint32_t seq, uint32_t ack, uint8_t flags, const Bytes& payload, uint16_t win = 8192) const;
	// An Ethernet frame of a UDP datagram between the same ends (for the
	// SQL Server Browser, sport is 1434).
	Bytes udp(bool c2s, const Bytes& payload) const;
	// An IP packet of protocol proto around an L4 header and payload, and
	// the Ethernet (and VLAN) header before one.
	Bytes ip_packet(bool c2s, uint8_t proto, const Bytes& l4) const;
	Bytes link(const Bytes& ip, bool c2s) const;

	Bytes syn()
	{
		Bytes f = frame(true, cseq, 0, SYN, {});
		cseq++;
		return f;
	}
	Bytes synack()
	{
		Bytes f = frame(false, sseq, cseq, SYN | ACK, {});
		sseq++;
		return f;
	}
	Bytes ack(bool c2s) { return c2s ? frame(true, cseq, sseq, ACK, {}) : frame(false, sseq, cseq, ACK, {}); }
	// data from one side; moves that side's sequence
	Bytes data(bool c2s, const Bytes& payload, uint8_t flags = ACK | PSH)
	{
		Bytes f = c2s ? frame(true, cseq, sseq, flags, payload) : frame(false, sseq, cseq, flags, payload);
		(c2s ? cseq : sseq) += (uint32_t)payload.size();
		return f;
	}
	Bytes fin(bool c2s)
	{
		Bytes f = c2s ? frame(true, cseq, sseq, FIN | ACK, {}) : frame(false, sseq, cseq, FIN | ACK, {});
		(c2s ? cseq : sseq) += 1;
		return f;
	}
	// Any segment from one side: acknowledges the other side's next byte when
	// ACK is set, and moves this side's sequence past the payload (and a SYN
	// or FIN).
	Bytes next(bool c2s, uint8_t flags, const Bytes& payload = {}, uint16_t win = 8192)
	{
		uint32_t& mine = c2s ? cseq : sseq;
		Bytes f = frame(c2s, mine, (flags & ACK) ? (c2s ? sseq : cseq) : 0, flags, payload, win);
		mine += (uint32_t)payload.size() + ((flags & (SYN | FIN)) ? 1 : 0);
		return f;
	}
};

} // namespace tdsbpf::lab
