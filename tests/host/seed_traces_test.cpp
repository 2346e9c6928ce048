// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Every trace of the seed documents, fed as events; the expectations are
// read off the traces (frame times, who sent what), not off the program.
#include <gtest/gtest.h>

#include "seeds.h"

namespace tdsbpf::test {
namespace {

using Strings = std::vector<std::string>;

nlohmann::json only_record(const Trace& t, AggregatorConfig cfg = {})
{
	auto recs = run(const_cast<Trace&>(t).records(), cfg);
	EXPECT_EQ(recs.size(), 1u);
	return recs.empty() ? nlohmann::json() : recs[0];
}

double phase_ms(const nlohmann::json& r, const std::string& name)
{
	for (const auto& p : r["phases"])
		if (p["name"] == name)
			return p["duration_ms"].get<double>();
	ADD_FAILURE() << "no phase " << name;
	return -1;
}

TEST(SeedTrace, SqlAuthenticationLogin)
{
	auto r = only_record(seed_sql_login());
	EXPECT_EQ(r["client.address"], "10.10.10.10");
	EXPECT_EQ(r["client.port"], 60123);
	EXPECT_EQ(r["server.address"], "10.10.10.120");
	EXPECT_EQ(r["server.port"], 1433);
	EXPECT_EQ(r["network.type"], "ipv4");
	EXPECT_EQ(r["db.system.name"], "microsoft.sql_server");
	EXPECT_EQ(r["db.system"], "mssql");
	EXPECT_EQ(r["midstream"], false);
	EXPECT_EQ(phase_names(r),
		  (Strings{"tcp_handshake", "prelogin", "tls_handshake", "login", "login_ack", "active", "close"}));
	// Frame 6127 at 116.5776698 s after midnight of the seeds' date.
	EXPECT_EQ(r["start_time"], "2024-06-05T00:01:56.577669Z");
	EXPECT_DOUBLE_EQ(r["duration_ms"].get<double>(), 333.008);	   // 6127 .. 6366
	EXPECT_DOUBLE_EQ(phase_ms(r, "tcp_handshake"), 0.976);		   // 6127 .. 6130
	EXPECT_DOUBLE_EQ(phase_ms(r, "prelogin"), 4.883);		   // 6130 .. 6132
	EXPECT_DOUBLE_EQ(phase_ms(r, "tls_handshake"), 9.766);		   // 6132 .. 6136
	EXPECT_DOUBLE_EQ(phase_ms(r, "login"), 2.93);			   // 6136 .. 6137
	EXPECT_DOUBLE_EQ(phase_ms(r, "active"), 313.476);		   // 6137 .. 6362
	EXPECT_DOUBLE_EQ(r["login"]["duration_ms"].get<double>(), 18.555); // SYN 6127 .. LOGINACK 6137
	EXPECT_EQ(r["login"]["slow"], false);
	EXPECT_EQ(r["login"]["outcome"], "success");
	EXPECT_EQ(r["authentication"]["method"], "sql");
	EXPECT_EQ(r["negotiated"]["encryption"], "login_only");
	EXPECT_EQ(r["negotiated"]["tls_version"], "1.2");
	EXPECT_EQ(r["work"]["sql_batches"], 1);
	EXPECT_EQ(r["work"]["responses"], 1);
	EXPECT_DOUBLE_EQ(r["work"]["latency_ms"]["max"].get<double>(), 0.0); // 6138 and 6139 share a time
	EXPECT_EQ(r["close"]["kind"], "four_way");
	EXPECT_EQ(r["close"]["initiator"], "client");
	EXPECT_EQ(r["close"]["phase"], "active");
	// One batch, then the client's FIN 310 ms after the response.
	EXPECT_EQ(diagnosis_codes(r), (Strings{"non_pooled_close"}));
	EXPECT_EQ(r["pooling"]["verdict"], "not_pooled");
	EXPECT_NE(r["pooling"]["evidence"].get<std::string>().find("after the last of its 1 request(s)"),
		  std::string::npos);
}

TEST(SeedTrace, KerberosLogin)
{
	auto r = only_record(seed_kerberos_login());
	EXPECT_EQ(r["server.address"], "10.10.10.20");
	EXPECT_EQ(r["client.port"], 49299);
	EXPECT_EQ(phase_names(r), (Strings{"tcp_handshake", "prelogin", "tls_handshake", "login", "authentication",
					   "login_ack", "active", "close"}));
	EXPECT_EQ(r["authentication"]["method"], "kerberos");
	EXPECT_EQ(r["authentication"]["sspi_server_tokens"], 1); // frame 238
	EXPECT_EQ(r["login"]["outcome"], "success");
	EXPECT_DOUBLE_EQ(r["login"]["duration_ms"].get<double>(), 73.932); // 216 .. 239
	EXPECT_DOUBLE_EQ(phase_ms(r, "prelogin"), 47.334);	// 219 .. 221: the server took 46.7 ms to answer
	EXPECT_DOUBLE_EQ(phase_ms(r, "authentication"), 1.337); // 238 .. 239
	EXPECT_EQ(r["negotiated"]["tds_version_loginack"], "7.4");
	EXPECT_EQ(r["network.protocol.version"], "7.4");
	EXPECT_EQ(r["close"]["kind"], "four_way");
	EXPECT_EQ(r["close"]["initiator"], "client");
	EXPECT_TRUE(diagnosis_codes(r).empty()) << r["diagnoses"].dump();
}

TEST(SeedTrace, NtlmLogin)
{
	auto r = only_record(seed_ntlm_login());
	EXPECT_EQ(r["client.address"], "10.10.10.120");
	EXPECT_EQ(r["server.port"], 57139);
	EXPECT_EQ(phase_names(r), (Strings{"tcp_handshake", "prelogin", "tls_handshake", "login", "authentication",
					   "login_ack", "active"}));
	EXPECT_EQ(r["authentication"]["method"], "ntlm");
	EXPECT_EQ(r["authentication"]["ntlm"]["domain"], "CONTOSO");
	EXPECT_EQ(r["authentication"]["ntlm"]["user"], "joe33");
	EXPECT_EQ(r["authentication"]["ntlm"]["workstation"], "10.10.10.120");
	EXPECT_EQ(r["login"]["outcome"], "success");
	EXPECT_DOUBLE_EQ(r["login"]["duration_ms"].get<double>(), 35.888); // 76078 .. 76100
	EXPECT_DOUBLE_EQ(phase_ms(r, "authentication"), 18.081);	   // 76097 .. 76100: the DC's share
	EXPECT_EQ(r["authentication"]["sspi_server_tokens"], 1);	   // 76097 CHALLENGE
	EXPECT_EQ(r["authentication"]["sspi_client_packets"], 1);	   // 76098 AUTHENTICATE
	EXPECT_EQ(r["negotiated"]["tds_version_loginack"], "7.3A");
	EXPECT_EQ(r["work"]["sql_batches"], 1); // 76102
	EXPECT_EQ(r["close"]["kind"], "still_open");
	EXPECT_TRUE(diagnosis_codes(r).empty()) << r["diagnoses"].dump();
}

TEST(SeedTrace, NtlmNamesRedacted)
{
	AggregatorConfig cfg;
	cfg.redact = true;
	auto r = only_record(seed_ntlm_login(), cfg);
	EXPECT_EQ(r["authentication"]["ntlm"]["user"], "<redacted>");
	EXPECT_EQ(r["authentication"]["ntlm"]["domain"], "<redacted>");
	EXPECT_EQ(r["authentication"]["ntlm"]["workstation"], "<redacted>");
	EXPECT_EQ(r.dump().find("joe33"), std::string::npos);
}

void expect_mars(const nlohmann::json& r)
{
	EXPECT_EQ(phase_names(r), (Strings{"tcp_handshake", "prelogin", "tls_handshake", "login", "authentication",
					   "login_ack", "active", "close"}));
	EXPECT_EQ(r["negotiated"]["mars_requested"], true);
	EXPECT_EQ(r["negotiated"]["mars_used"], true);
	EXPECT_DOUBLE_EQ(r["login"]["duration_ms"].get<double>(), 155.403); // 6704 .. 17978
	EXPECT_EQ(r["authentication"]["ntlm"]["user"], "joe133");
	EXPECT_EQ(r["authentication"]["ntlm"]["workstation"], "JOEWKS");
	ASSERT_EQ(r["mars"]["sessions"].size(), 1u);
	const auto& s = r["mars"]["sessions"][0];
	EXPECT_EQ(s["sid"], 0);
	EXPECT_EQ(s["syn_seen"], true);
	EXPECT_EQ(s["open_time"], "2024-06-05T00:09:28.217030Z");  // 18024
	EXPECT_EQ(s["close_time"], "2024-06-05T00:09:29.917064Z"); // 93691, the second SMP:FIN
	EXPECT_EQ(s["end"], "fin_both");
	EXPECT_EQ(s["data_packets"]["client_to_server"], 2); // 18028, 18079
	EXPECT_EQ(s["data_packets"]["server_to_client"], 5); // 18038, 40874, 40876, 40950, 93665
	EXPECT_EQ(s["acks"]["client_to_server"], 1);	     // 40911
	EXPECT_EQ(r["work"]["sql_batches"], 2);
	EXPECT_DOUBLE_EQ(r["work"]["latency_ms"]["min"].get<double>(), 0.334);	 // 18028 .. 18038
	EXPECT_DOUBLE_EQ(r["work"]["latency_ms"]["max"].get<double>(), 294.248); // 18079 .. 40874
	EXPECT_EQ(r["close"]["kind"], "mars_benign_reset");
	EXPECT_EQ(r["close"]["reset_by"], "client");
	EXPECT_EQ(r["close"]["first_fin"], "client");
	EXPECT_TRUE(has_diagnosis(r, "mars_benign_reset"));
	EXPECT_FALSE(has_diagnosis(r, "client_reset"));
	EXPECT_FALSE(has_diagnosis(r, "client_reset_abnormal"));
	EXPECT_FALSE(has_diagnosis(r, "server_reset"));
}

TEST(SeedTrace, MarsOpenAckAndFinServerSideOrder)
{
	Trace t = seed_mars_open();
	seed_mars_close_server_order(t);
	auto r = only_record(t);
	expect_mars(r);
	// Its last response came 0.8 ms before the SMP:FIN: a connection closed
	// right after its work.
	EXPECT_EQ(diagnosis_codes(r), (Strings{"mars_benign_reset", "non_pooled_close"}));
}

TEST(SeedTrace, MarsFinClientSideOrder)
{
	Trace t = seed_mars_open();
	seed_mars_close_client_order(t);
	expect_mars(only_record(t));
}

TEST(SeedTrace, MarsFinClientSideOrderWithoutReordering)
{
	// Taken exactly in the client's capture order: the server's SMP:FIN after
	// the client's FIN.
	Trace t = seed_mars_open();
	seed_mars_close_client_order(t);
	AggregatorConfig cfg;
	cfg.reorder_window_us = 0;
	expect_mars(only_record(t, cfg));
}

TEST(SeedTrace, NormalPooledClose)
{
	auto r = only_record(seed_normal_close());
	EXPECT_EQ(r["midstream"], true);
	EXPECT_EQ(phase_names(r), (Strings{"active", "close"}));
	EXPECT_EQ(r["close"]["kind"], "four_way");
	EXPECT_EQ(r["close"]["initiator"], "client");
	EXPECT_EQ(r["login"]["outcome"], "not_seen");
	EXPECT_DOUBLE_EQ(r["duration_ms"].get<double>(), 80.078); // 50 .. 54
	EXPECT_EQ(diagnosis_codes(r), (Strings{"midstream"}));
}

TEST(SeedTrace, NonPooledCloseAfterTwoBatches)
{
	auto r = only_record(seed_nonpooled_close());
	EXPECT_EQ(phase_names(r), (Strings{"active", "close"}));
	EXPECT_EQ(r["work"]["sql_batches"], 2);
	EXPECT_EQ(r["work"]["responses"], 2);
	EXPECT_DOUBLE_EQ(r["work"]["latency_ms"]["min"].get<double>(), 0.0);  // 364 .. 365
	EXPECT_DOUBLE_EQ(r["work"]["latency_ms"]["max"].get<double>(), 2.93); // 366 .. 367
	EXPECT_EQ(r["close"]["kind"], "four_way");
	EXPECT_EQ(r["close"]["initiator"], "client");
	EXPECT_DOUBLE_EQ(r["close"]["idle_before_close_ms"].get<double>(), 100.586); // 367 .. 375
	EXPECT_EQ(diagnosis_codes(r), (Strings{"midstream", "non_pooled_close"}));
}

TEST(SeedTrace, NonPooledClientOpensConnectionAfterConnection)
{
	std::vector<Record> all;
	for (int i = 0; i < 3; i++) {
		Trace t = seed_nonpooled_close(static_cast<uint16_t>(4647 + i), 1.0 * i);
		all.insert(all.end(), t.records().begin(), t.records().end());
	}
	std::stable_sort(all.begin(), all.end(),
			 [](const Record& a, const Record& b) { return a.base().ts_ns < b.base().ts_ns; });
	auto recs = run(all);
	ASSERT_EQ(recs.size(), 3u);
	EXPECT_FALSE(has_diagnosis(recs[0], "non_pooled_client"));
	EXPECT_FALSE(has_diagnosis(recs[1], "non_pooled_client"));
	EXPECT_TRUE(has_diagnosis(recs[2], "non_pooled_client"));
	EXPECT_EQ(recs[2]["client.port"], 4649);
}

TEST(SeedTrace, IdleCloseAfterKeepAlives)
{
	auto r = only_record(seed_idle_close());
	EXPECT_EQ(phase_names(r), (Strings{"active", "close"}));
	EXPECT_EQ(r["tcp"]["keepalives"]["client_to_server"], 1); // 1314
	EXPECT_EQ(r["tcp"]["keepalives"]["server_to_client"], 1); // 1327
	EXPECT_EQ(r["close"]["kind"], "four_way");
	EXPECT_EQ(r["close"]["initiator"], "client");
	EXPECT_EQ(r["close"]["after_keepalives"], true);
	EXPECT_EQ(diagnosis_codes(r), (Strings{"midstream", "idle_closed_after_keepalives"}));
	// 1881 came 10.36 s after the keep-alive of 1327.
	EXPECT_NE(r["diagnoses"][1]["message"].get<std::string>().find("10.4 s after the last keep-alive"),
		  std::string::npos)
		<< r["diagnoses"][1]["message"];
}

} // namespace
} // namespace tdsbpf::test
