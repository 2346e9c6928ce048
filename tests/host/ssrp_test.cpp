// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The SQL Server Browser (SSRP) parser on crafted datagrams: the examples
// of [MC-SQLR] section 4, every message kind, and bytes that break the rules.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "ssrp.h"

using namespace tdsbpf;

namespace {

using Datagram = std::vector<std::uint8_t>;

Datagram bytes(std::initializer_list<int> v)
{
	Datagram d;
	for (int b : v)
		d.push_back(static_cast<std::uint8_t>(b));
	return d;
}

Datagram request(std::uint8_t type, const std::string& tail)
{
	Datagram d(1 + tail.size());
	d[0] = type;
	std::copy(tail.begin(), tail.end(), d.begin() + 1);
	return d;
}

// SVR_RESP with RESP_SIZE = the data's length (or the one given).
Datagram reply(const std::string& data, int size = -1)
{
	std::size_t n = size < 0 ? data.size() : static_cast<std::size_t>(size);
	Datagram d(3 + data.size());
	d[0] = 0x05;
	d[1] = static_cast<std::uint8_t>(n & 0xFF);
	d[2] = static_cast<std::uint8_t>(n >> 8);
	std::copy(data.begin(), data.end(), d.begin() + 3);
	return d;
}

SsrpMessage client(const Datagram& d)
{
	return parse_ssrp(d, false);
}
SsrpMessage server(const Datagram& d)
{
	return parse_ssrp(d, true);
}

const std::string kYukonStd =
	"ServerName;ILSUNG1;InstanceName;YUKONSTD;IsClustered;No;Version;9.00.1399.06;tcp;57137;;";
const std::string kYukonDev = "ServerName;ILSUNG1;InstanceName;YUKONDEV;IsClustered;No;Version;9.00.1399.06;"
			      "np;\\\\ILSUNG1\\pipe\\MSSQL$YUKONDEV\\sql\\query;;";
const std::string kDefault = "ServerName;ILSUNG1;InstanceName;MSSQLSERVER;IsClustered;No;Version;9.00.1399.06;"
			     "tcp;1433;np;\\\\ILSUNG1\\pipe\\sql\\query;;";

// Every string the parser hands out: short, and printable UTF-8.
void expect_clean(const std::string& s)
{
	EXPECT_LE(s.size(), kSsrpMaxString);
	for (std::size_t i = 0; i < s.size(); i++) {
		auto c = static_cast<unsigned char>(s[i]);
		ASSERT_FALSE(c < 0x20 || c == 0x7F) << "control byte in '" << s << "'";
		if (c < 0x80)
			continue;
		std::size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
		ASSERT_GE(c, 0xC2u) << s;
		ASSERT_LE(i + n, s.size()) << s;
		for (std::size_t k = 1; k < n; k++)
			ASSERT_EQ(static_cast<unsigned char>(s[i + k]) & 0xC0, 0x80) << s;
		i += n - 1;
	}
}

void expect_bounded(const SsrpMessage& m)
{
	EXPECT_LE(m.instances.size(), kSsrpMaxInstances);
	expect_clean(m.requested_instance);
	expect_clean(m.problem.substr(0, kSsrpMaxString));
	for (const auto& i : m.instances) {
		expect_clean(i.server_name);
		expect_clean(i.instance_name);
		expect_clean(i.version);
		expect_clean(i.pipe);
		EXPECT_LE(i.other_protocols.size(), 16u);
		for (const auto& o : i.other_protocols)
			expect_clean(o);
	}
}

} // namespace

// ---- requests ---------------------------------------------------------------

TEST(Ssrp, Broadcast)
{
	auto m = client(bytes({0x02}));
	EXPECT_EQ(m.kind, SsrpKind::clnt_bcast_ex);
	EXPECT_EQ(m.problem, "");
	EXPECT_FALSE(m.truncated);
}

TEST(Ssrp, UnicastEnumeration)
{
	auto m = client(bytes({0x03})); // [MC-SQLR] 4.1
	EXPECT_EQ(m.kind, SsrpKind::clnt_ucast_ex);
	EXPECT_EQ(m.problem, "");
	EXPECT_EQ(client(bytes({0x03, 0x00})).problem, "1 bytes after the one-byte request");
}

TEST(Ssrp, InstanceRequest)
{
	// [MC-SQLR] 4.2
	auto m = client(bytes({0x04, 0x59, 0x55, 0x4b, 0x4f, 0x4e, 0x53, 0x54, 0x44, 0x00}));
	EXPECT_EQ(m.kind, SsrpKind::clnt_ucast_inst);
	EXPECT_EQ(m.requested_instance, "YUKONSTD");
	EXPECT_EQ(m.problem, "");
	EXPECT_FALSE(m.truncated);
}

TEST(Ssrp, DacRequest)
{
	// [MC-SQLR] 4.3
	auto m = client(bytes({0x0f, 0x01, 0x59, 0x55, 0x4b, 0x4f, 0x4e, 0x53, 0x54, 0x44, 0x00}));
	EXPECT_EQ(m.kind, SsrpKind::clnt_ucast_dac);
	EXPECT_EQ(m.requested_instance, "YUKONSTD");
	EXPECT_EQ(m.problem, "");

	auto v2 = client(request(0x0f, std::string("\x02LAB", 4) + '\0'));
	EXPECT_EQ(v2.requested_instance, "LAB");
	EXPECT_EQ(v2.problem, "DAC PROTOCOLVERSION 2, not 1");

	auto cut = client(bytes({0x0f}));
	EXPECT_TRUE(cut.truncated);
	EXPECT_EQ(cut.problem, "CLNT_UCAST_DAC ends before its PROTOCOLVERSION");
}

TEST(Ssrp, RequestNameRules)
{
	auto no_nul = client(request(0x04, "LAB"));
	EXPECT_EQ(no_nul.requested_instance, "LAB");
	EXPECT_TRUE(no_nul.truncated);
	EXPECT_EQ(no_nul.problem, "instance name without its NUL terminator");

	// The Slammer worm's shape: type 0x04 and hundreds of bytes, no NUL.
	auto worm = client(request(0x04, std::string(375, '\x01')));
	EXPECT_FALSE(worm.truncated);
	EXPECT_EQ(worm.problem, "instance name of 375 bytes without a NUL (at most 32)");
	EXPECT_EQ(worm.requested_instance, std::string(kSsrpMaxString, '?'));

	auto long_name = client(request(0x04, std::string(33, 'A') + '\0'));
	EXPECT_EQ(long_name.requested_instance, std::string(33, 'A'));
	EXPECT_EQ(long_name.problem, "instance name of 33 bytes (at most 32)");

	EXPECT_EQ(client(request(0x04, std::string(32, 'A') + '\0')).problem, "");
	EXPECT_EQ(client(request(0x04, std::string(1, '\0'))).problem, "empty instance name");
	EXPECT_EQ(client(request(0x04, std::string("LAB\0xy", 6))).problem, "2 bytes after the instance name");
	EXPECT_EQ(client(request(0x04, std::string("L\x07"
						   "B",
						   3) +
					       '\0'))
			  .requested_instance,
		  "L?B");
}

// ---- replies ----------------------------------------------------------------

TEST(Ssrp, SpecExampleThreeInstances)
{
	// [MC-SQLR] 4.1: 05 47 01 ... three instances, one without tcp.
	Datagram d = reply(kYukonStd + kYukonDev + kDefault);
	ASSERT_EQ(d[1], 0x47);
	ASSERT_EQ(d[2], 0x01);
	auto m = server(d);
	EXPECT_EQ(m.kind, SsrpKind::svr_resp);
	EXPECT_EQ(m.problem, "");
	EXPECT_FALSE(m.truncated);
	ASSERT_EQ(m.instances.size(), 3u);

	const auto& a = m.instances[0];
	EXPECT_EQ(a.server_name, "ILSUNG1");
	EXPECT_EQ(a.instance_name, "YUKONSTD");
	EXPECT_EQ(a.clustered, false);
	EXPECT_EQ(a.version, "9.00.1399.06");
	EXPECT_EQ(a.tcp_port, 57137);
	EXPECT_EQ(a.pipe, "");

	const auto& b = m.instances[1];
	EXPECT_EQ(b.instance_name, "YUKONDEV");
	EXPECT_FALSE(b.tcp_port.has_value()); // named pipes only
	EXPECT_EQ(b.pipe, "\\\\ILSUNG1\\pipe\\MSSQL$YUKONDEV\\sql\\query");

	const auto& c = m.instances[2];
	EXPECT_EQ(c.instance_name, "MSSQLSERVER");
	EXPECT_EQ(c.tcp_port, 1433);
	EXPECT_EQ(c.pipe, "\\\\ILSUNG1\\pipe\\sql\\query");
	EXPECT_TRUE(c.other_protocols.empty());
}

TEST(Ssrp, SpecExampleOneInstance)
{
	// [MC-SQLR] 4.2: 05 58 00 ...
	Datagram d = reply(kYukonStd);
	ASSERT_EQ(d[1], 0x58);
	auto m = server(d);
	EXPECT_EQ(m.problem, "");
	ASSERT_EQ(m.instances.size(), 1u);
	EXPECT_EQ(m.instances[0].tcp_port, 57137);
}

TEST(Ssrp, SqlServer2022Instance)
{
	auto m = server(reply("ServerName;X;InstanceName;Y;IsClustered;No;Version;16.0.1000.6;tcp;1433;"
			      "np;\\\\X\\pipe\\sql\\query;;"));
	EXPECT_EQ(m.problem, "");
	ASSERT_EQ(m.instances.size(), 1u);
	EXPECT_EQ(m.instances[0].server_name, "X");
	EXPECT_EQ(m.instances[0].instance_name, "Y");
	EXPECT_EQ(m.instances[0].version, "16.0.1000.6");
	EXPECT_EQ(m.instances[0].tcp_port, 1433);
	EXPECT_EQ(m.instances[0].pipe, "\\\\X\\pipe\\sql\\query");
}

TEST(Ssrp, KeysAnyCaseAndOtherProtocols)
{
	auto m = server(reply("servername;S;INSTANCENAME;I;isclustered;YES;version;8.00.194;"
			      "rpc;S;via;S,0:1433;bv;item;group;item;group;org;future;x;tcp;2301;;"));
	EXPECT_EQ(m.problem, "");
	ASSERT_EQ(m.instances.size(), 1u);
	const auto& i = m.instances[0];
	EXPECT_EQ(i.clustered, true);
	EXPECT_EQ(i.tcp_port, 2301);
	EXPECT_EQ(i.other_protocols,
		  (std::vector<std::string>{"rpc=S", "via=S,0:1433", "bv=item;group;item;group;org", "future=x"}));
}

TEST(Ssrp, DacReply)
{
	// [MC-SQLR] 4.3: port 0xDF32
	auto m = server(bytes({0x05, 0x06, 0x00, 0x01, 0x32, 0xdf}));
	EXPECT_EQ(m.kind, SsrpKind::svr_resp_dac);
	EXPECT_EQ(m.dac_port, 57138);
	EXPECT_EQ(m.problem, "");
	EXPECT_FALSE(m.truncated);

	auto cut = server(bytes({0x05, 0x06, 0x00, 0x01, 0x32}));
	EXPECT_EQ(cut.kind, SsrpKind::svr_resp_dac);
	EXPECT_TRUE(cut.truncated);
	EXPECT_FALSE(cut.dac_port.has_value());

	EXPECT_EQ(server(bytes({0x05, 0x06, 0x00, 0x01, 0x00, 0x00})).problem, "port 0 is not a port");
	EXPECT_EQ(server(bytes({0x05, 0x06, 0x00, 0x02, 0x32, 0xdf})).problem, "DAC PROTOCOLVERSION 2, not 1");
	EXPECT_EQ(server(bytes({0x05, 0x06, 0x00, 0x01, 0x32, 0xdf, 0x00})).problem,
		  "1 bytes after the 6-byte DAC reply");
}

TEST(Ssrp, WhatIsWrongWithAReply)
{
	const std::string head = "ServerName;S;InstanceName;I;IsClustered;No;Version;16.0.1000.6;";
	struct Case {
		std::string data;
		std::string problem;
	};
	const std::vector<Case> cases = {
		{head + "tcp;99999;;", "port 99999 is not a port"},
		{head + "tcp;14x;;", "port 14x is not a port"},
		{head + "tcp;0;;", "port 0 is not a port"},
		{head + "tcp;1433;tcp;1434;;", "instance 1 lists tcp twice"},
		{"ServerName;S;InstanceName;I;IsClustered;Maybe;Version;1.0;;",
		 "instance 1: IsClustered 'Maybe' is neither Yes nor No"},
		{"ServerName;S;InstanceName;I;IsClustered;No;Version;v16;;",
		 "instance 1: Version 'v16' is not 1 to 16 digits and dots"},
		{"ServerName;S;InstanceName;I;IsClustered;No;tcp;1433;;", "instance 1 has no Version"},
		{head + "tcp;1433;;" + "ServerName;T;tcp;1;;", "instance 2 has no InstanceName"},
		{head + "tcp;1433;", "instance 1 does not end with ;;"},
		{head + "tcp;1433", "instance 1 does not end with ;;"},
		{head + "np;" + std::string(300, 'p') + ";;", "instance 1: np parameters longer than 255 bytes"},
		{";;" + head + ";", "an empty instance (;;) at byte 3"},
		{"hello", "RESP_DATA ends in a field without its ';' at byte 3"},
	};
	for (const auto& c : cases) {
		auto m = server(reply(c.data));
		EXPECT_EQ(m.problem, c.problem) << c.data;
		EXPECT_FALSE(m.truncated) << c.data;
		expect_bounded(m);
	}
	auto bad_port = server(reply(head + "tcp;99999;;"));
	ASSERT_EQ(bad_port.instances.size(), 1u);
	EXPECT_FALSE(bad_port.instances[0].tcp_port.has_value());
	EXPECT_EQ(bad_port.instances[0].instance_name, "I");

	EXPECT_EQ(server(reply("")).problem, "RESP_DATA is empty");
	EXPECT_EQ(server(reply(kYukonStd + "xyz", static_cast<int>(kYukonStd.size()))).problem,
		  "RESP_SIZE 88 but 91 bytes");
}

TEST(Ssrp, StringsArePrintableAndCut)
{
	std::string server_name = "Z\xc3\xbcrich"; // UTF-8: kept
	std::string instance = "Z\xfc"
			       "rich\x01\x7f"; // code page 1252 and control bytes: '?'
	std::string version = "16.0.1000.6";
	std::string pipe = "\\\\X\\pipe\\" + std::string(400, 'q');
	auto m = server(reply("ServerName;" + server_name + ";InstanceName;" + instance + ";IsClustered;No;Version;" +
			      version + ";np;" + pipe + ";;"));
	ASSERT_EQ(m.instances.size(), 1u);
	EXPECT_EQ(m.instances[0].server_name, "Z\xc3\xbcrich");
	EXPECT_EQ(m.instances[0].instance_name, "Z?rich??");
	EXPECT_EQ(m.instances[0].pipe.size(), kSsrpMaxString);
	EXPECT_EQ(m.problem, "instance 1: np parameters longer than 255 bytes");

	// A UTF-8 sequence cut by the 256-byte limit is not half kept.
	auto cut = server(reply("ServerName;" + std::string(255, 'a') +
				"\xc3\xbc;InstanceName;I;IsClustered;No;"
				"Version;1;;"));
	ASSERT_EQ(cut.instances.size(), 1u);
	EXPECT_EQ(cut.instances[0].server_name, std::string(255, 'a') + "?");
	expect_bounded(cut);
}

TEST(Ssrp, AtMost64Instances)
{
	std::string data;
	for (int i = 0; i < 100; i++)
		data += "ServerName;S;InstanceName;I" + std::to_string(i) + ";IsClustered;No;Version;1.0;tcp;" +
			std::to_string(2000 + i) + ";;";
	auto m = server(reply(data));
	EXPECT_EQ(m.problem, "");
	ASSERT_EQ(m.instances.size(), kSsrpMaxInstances);
	EXPECT_EQ(m.instances[63].instance_name, "I63");
	EXPECT_EQ(m.instances[63].tcp_port, 2063);
}

TEST(Ssrp, DirectionAndType)
{
	EXPECT_EQ(server(bytes({0x04, 'A', 0})).problem, "a client request (0x04) from port 1434");
	auto r = client(reply(kYukonStd));
	EXPECT_EQ(r.kind, SsrpKind::svr_resp);
	EXPECT_EQ(r.problem, "a server reply (0x05) not from port 1434");
	ASSERT_EQ(r.instances.size(), 1u); // still read

	auto u = server(bytes({0x12, 0x01, 0x00, 0x2f}));
	EXPECT_EQ(u.kind, SsrpKind::unknown);
	EXPECT_EQ(u.problem, "type 0x12 is not an SSRP message");

	auto e = server({});
	EXPECT_EQ(e.kind, SsrpKind::unknown);
	EXPECT_TRUE(e.truncated);
	EXPECT_EQ(e.problem, "empty datagram");
}

TEST(Ssrp, Truncated)
{
	auto big = server(reply(std::string(120, 'x'), 900));
	EXPECT_TRUE(big.truncated);
	EXPECT_EQ(big.problem, "RESP_SIZE 900 but 120 bytes");
	EXPECT_TRUE(big.instances.empty());

	auto header = server(bytes({0x05, 0x47}));
	EXPECT_EQ(header.kind, SsrpKind::svr_resp);
	EXPECT_TRUE(header.truncated);

	// Every prefix of a three-instance reply: whole fields only, never a
	// port read from half its digits.
	const Datagram full = reply(kYukonStd + kYukonDev + kDefault);
	const auto whole = server(full);
	for (std::size_t n = 1; n < full.size(); n++) {
		Datagram prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
		auto m = server(prefix);
		SCOPED_TRACE(n);
		EXPECT_TRUE(m.truncated);
		EXPECT_EQ(m.kind, SsrpKind::svr_resp);
		ASSERT_LE(m.instances.size(), whole.instances.size());
		for (std::size_t i = 0; i < m.instances.size(); i++) {
			const auto& got = m.instances[i];
			const auto& want = whole.instances[i];
			if (got.tcp_port) {
				EXPECT_EQ(got.tcp_port, want.tcp_port);
			}
			if (!got.instance_name.empty()) {
				EXPECT_EQ(got.instance_name, want.instance_name);
			}
			if (!got.pipe.empty()) {
				EXPECT_EQ(got.pipe, want.pipe);
			}
		}
		if (n >= 3 + kYukonStd.size()) {
			ASSERT_GE(m.instances.size(), 1u);
			EXPECT_EQ(m.instances[0].tcp_port, 57137);
		}
	}
}

TEST(Ssrp, HostileBytes)
{
	std::mt19937 rng(1434);
	auto byte = [&] { return static_cast<std::uint8_t>(rng() & 0xFF); };
	const std::vector<std::string> words = {"ServerName",
						"InstanceName",
						"IsClustered",
						"Version",
						"tcp",
						"np",
						"via",
						"bv",
						"Yes",
						"No",
						"1433",
						"99999",
						"",
						"16.0",
						"\xff\xfe",
						"\xc3\xbc",
						std::string(300, 'x')};
	for (int round = 0; round < 20000; round++) {
		Datagram d;
		// the biggest datagram costs most to build: now and then
		const int shape = round % 100 == 3 ? 3 : round % 3;
		if (shape == 0) {
			// random bytes
			d.resize(rng() % 700);
			for (auto& b : d)
				b = byte();
		} else if (shape == 1) {
			// a plausible reply of random fields, with any RESP_SIZE
			std::string data;
			int fields = static_cast<int>(rng() % 200);
			for (int i = 0; i < fields; i++)
				data += words[rng() % words.size()] + (rng() % 8 ? ";" : ";;");
			d = reply(data, rng() % 3 ? -1 : static_cast<int>(rng() % 65536));
		} else if (shape == 2) {
			// a request type with a random tail
			static const std::uint8_t types[] = {0x02, 0x03, 0x04, 0x05, 0x0F};
			d.push_back(types[rng() % 5]);
			std::size_t n = rng() % 80;
			for (std::size_t i = 0; i < n; i++)
				d.push_back(rng() % 4 ? static_cast<std::uint8_t>('A' + rng() % 26) : byte());
		} else {
			// the biggest datagram: RESP_SIZE 65535, many short instances
			std::string data;
			while (data.size() < 65535)
				data += "ServerName;S;InstanceName;I;IsClustered;No;Version;1;tcp;" +
					std::to_string(rng() % 70000) + ";;";
			data.resize(65535);
			d = reply(data);
		}
		for (bool from_server : {false, true}) {
			auto m = parse_ssrp(d, from_server);
			expect_bounded(m);
			if (m.kind == SsrpKind::svr_resp_dac) {
				EXPECT_TRUE(m.instances.empty());
			}
			if (::testing::Test::HasFailure())
				return;
		}
	}
}

TEST(Ssrp, KindNames)
{
	EXPECT_EQ(ssrp_kind_name(SsrpKind::unknown), "unknown");
	EXPECT_EQ(ssrp_kind_name(SsrpKind::clnt_bcast_ex), "clnt_bcast_ex");
	EXPECT_EQ(ssrp_kind_name(SsrpKind::clnt_ucast_ex), "clnt_ucast_ex");
	EXPECT_EQ(ssrp_kind_name(SsrpKind::clnt_ucast_inst), "clnt_ucast_inst");
	EXPECT_EQ(ssrp_kind_name(SsrpKind::svr_resp), "svr_resp");
	EXPECT_EQ(ssrp_kind_name(SsrpKind::clnt_ucast_dac), "clnt_ucast_dac");
	EXPECT_EQ(ssrp_kind_name(SsrpKind::svr_resp_dac), "svr_resp_dac");
}
