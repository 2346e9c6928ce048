// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "seeds.h"

namespace tdsbpf::test {

Trace seed_sql_login()
{
	Trace t("10.10.10.10", 60123, "10.10.10.120", 1433);
	t.syn(116.5776698, 4050702293u)			       // 6127 ......S.
		.synack(116.5776698, 4095166896u, 4050702294u) // 6128 ...A..S.
		.hs_ack(116.5786458, 4050702294u, 4095166897u) // 6129 ...A....
		// 6130/6131 driver handshake: login-only encryption (the LOGIN7 goes
		// as TLS data, the batch after it in clear), so both say OFF.
		.prelogin(116.5786458, C2S, 7, 1, 0, TDS_ENCRYPT_OFF, 0)
		.prelogin(116.5805998, S2C, 8, 0, 2039, TDS_ENCRYPT_OFF, TDSBPF_VALUE_ABSENT)
		.tls_in_tds(116.5835288, C2S, 22, 1)		   // 6132 Client Hello
		.tls_in_tds(116.5845058, S2C, 22, 2)		   // 6133 Server Hello. Certificate. Server Hello Done
		.tls_in_tds(116.5864588, C2S, 22, 16)		   // 6134 Client Key Exchange; Cipher Change Spec
		.tls_in_tds(116.5923178, S2C, 20, 0)		   // 6135 Cipher Change Spec; Encrypted Handshake
		.tls(116.5932948, C2S, 23)			   // 6136 SSL Application Data: the LOGIN7
		.loginack(116.5962248, 0x71000001, 8, 0, 2039, 96) // 6137 SPID = 96
		.request(116.5991538, TDS_SQL_BATCH)		   // 6138
		.response(116.5991538, TDS_STATUS_EOM, 96)	   // 6139
		.fin(116.9097008, C2S, 4050702956u, 4095168204u)   // 6362 ...A...F
		.close_ack(116.9097008, S2C, 4095168204u, 4050702957u)	// 6363 ...A....
		.fin(116.9097008, S2C, 4095168204u, 4050702957u)	// 6364 ...A...F
		.close_ack(116.9106778, C2S, 4050702957u, 4095168205u); // 6366 ...A....
	return t;
}

Trace seed_kerberos_login()
{
	Trace t("10.10.10.10", 49299, "10.10.10.20", 1433);
	t.syn(16.9554967, 2243174743u)							      // 216
		.synack(16.9561482, 329197620u, 2243174744u)				      // 217
		.hs_ack(16.9562004, 2243174744u, 329197621u)				      // 218
		.prelogin(16.9567950, C2S, 7, 4, 0, TDS_ENCRYPT_OFF, 0)			      // 219
		.prelogin(17.0035332, S2C, 15, 0, 4236, TDS_ENCRYPT_OFF, TDSBPF_VALUE_ABSENT) // 220
		.tls_in_tds(17.0041297, C2S, 22, 1)					      // 221 Client Hello
		.tls_in_tds(17.0081618, S2C, 22, 2)					      // 222 Server Hello ...
		.tls_in_tds(17.0102991, C2S, 22, 16)					      // 223 Client Key Exchange
		.tls_in_tds(17.0120222, S2C, 20, 0)					      // 224 Cipher Change Spec
		.tls(17.0264540, C2S, 23)			      // 236 TDS:Data, the LOGIN7 with the SPNEGO token
		.sspi_token(17.0280923)				      // 238 Response SPID 0 PacketID 0: SSPI token
		.loginack(17.0294294, 0x74000004, 15, 0, 4236, 57)    // 239 SPID = 57
		.fin(18.5494518, C2S, 2243178543u, 329199489u)	      // 242
		.close_ack(18.5501180, S2C, 329199489u, 2243178544u)  // 243
		.fin(18.5502723, S2C, 329199489u, 2243178544u)	      // 244
		.close_ack(18.5502896, C2S, 2243178544u, 329199490u); // 245
	return t;
}

Trace seed_ntlm_login()
{
	Trace t("10.10.10.120", 64444, "10.10.10.55", 57139);
	t.syn(1181.9915832, 2766542083u)				  // 76078 [Bad CheckSum] ......S.
		.synack(1181.9922255, 3862866646u, 2766542084u)		  // 76079
		.hs_ack(1181.9924272, 2766542084u, 3862866647u)		  // 76080
		.prelogin(1181.9936195, C2S, 7, 3, 0, TDS_ENCRYPT_OFF, 0) // 76081
		.prelogin(1181.9945238, S2C, 10, 50, 6000, TDS_ENCRYPT_OFF, TDSBPF_VALUE_ABSENT) // 76082
		.tls_in_tds(1181.9953108, C2S, 22, 1)						 // 76083
		.tls_in_tds(1181.9967001, S2C, 22, 2)						 // 76084
		.tls_in_tds(1181.9978947, C2S, 22, 16)						 // 76085
		.tls_in_tds(1182.0010146, S2C, 20, 0)						 // 76086
		.tls(1182.0069763, C2S, 23)							 // 76096 the LOGIN7
		.sspi_challenge(1182.0093903)				     // 76097 NTLM CHALLENGE MESSAGE
		.ntlm_auth(1182.0102507, "CONTOSO", "joe33", "10.10.10.120") // 76098 NTLM AUTHENTICATE
		.loginack(1182.0274716, 0x730A0003, 10, 50, 6000, 315)	     // 76100 SPID = 315
		.request(1182.0324639, TDS_SQL_BATCH);			     // 76102
	return t;
}

Trace seed_mars_open()
{
	Trace t("10.10.10.10", 52965, "10.10.10.22", 1433);
	t.syn(568.0608108, 661832900u, 0xC2)				    // 6704 CE....S.
		.synack(568.0608483, 492910518u, 661832901u, 0x52)	    // 6713 .E.A..S.
		.hs_ack(568.0613015, 661832901u, 492910519u)		    // 6754
		.prelogin(568.0615479, C2S, 7, 4, 0, TDS_ENCRYPT_OFF, 1)    // 6777, MARS asked for
		.prelogin(568.0616817, S2C, 16, 0, 600, TDS_ENCRYPT_OFF, 0) // 6786
		.tls_in_tds(568.0622426, C2S, 22, 1)			    // 6833
		.tls_in_tds(568.0627953, S2C, 22, 2)			    // 6873
		.tls_in_tds(568.0643795, C2S, 22, 16)			    // 6977
		.tls_in_tds(568.0655160, S2C, 20, 0)			    // 7045
		.tls(568.0679639, C2S, 23)				    // 7233 TDS:Data (the LOGIN7)
		.sspi_challenge(568.0684467)				    // 7275 NTLM CHALLENGE
		.ntlm_auth(568.0692389, "CONTOSO", "joe133", "JOEWKS")	    // 7331 NTLM AUTHENTICATE
		.loginack(568.2162145, 0x74000004, 16, 0, 600, 255)	    // 17978 SPID = 255
		.smp(568.2170301, C2S, SMP_SYN, 0, 0, 4)		    // 18024 SMP:SYN, Sid = 0
		.in_smp(0)
		.request(568.2170301, TDS_SQL_BATCH)	    // 18028
		.response(568.2173641, TDS_STATUS_EOM, 255) // 18038
		.request(568.2178650, TDS_SQL_BATCH)	    // 18079
		.response(568.5121135, 0, 255, 1)	    // 40874 Response, PacketID 1
		.response(568.5121237, 0, 255, 2)	    // 40876 Continuous Response
		.in_smp(-1)
		.smp(568.5124644, C2S, SMP_ACK, 0, 34, 40) // 40911 SMP:ACK SeqNum 34 Wndw 40
		.in_smp(0)
		.response(568.5128422, TDS_STATUS_EOM, 255, 3) // 40950 Continuous Response
		.response(569.9165034, TDS_STATUS_EOM, 255, 1) // 93665 Response
		.in_smp(-1);
	return t;
}

void seed_mars_close_server_order(Trace& t)
{
	t.smp(569.9170056, C2S, SMP_FIN, 0, 559, 614)		// 93689
		.smp(569.9170640, S2C, SMP_FIN, 0, 610, 563)	// 93691
		.fin(569.9173178, C2S, 661892741u, 493774858u)	// 93692 ...A...F
		.rst(569.9173178, C2S, 661892742u, 493774874u); // 93704 ...A.R..
}

void seed_mars_close_client_order(Trace& t)
{
	t.smp(569.9170056, C2S, SMP_FIN, 0, 559, 614)		// 12346
		.fin(569.9173178, C2S, 661892741u, 493774858u)	// 12352
		.smp(569.9170640, S2C, SMP_FIN, 0, 610, 563)	// 12361
		.rst(569.9173178, C2S, 661892742u, 493774874u); // 12374
}

Trace seed_normal_close()
{
	Trace t("10.10.10.104", 4657, "10.10.10.22", 1433);
	t.midstream()
		.fin(4.1529661, C2S, 413460761u, 280398321u)	    // 50 ...A...F
		.close_ack(4.1529661, S2C, 280398321u, 413460762u)  // 51
		.fin(4.1529661, S2C, 280398321u, 413460762u)	    // 52
		.close_ack(4.2330441, C2S, 413460762u, 280398322u); // 54
	return t;
}

Trace seed_nonpooled_close(uint16_t client_port, double s)
{
	Trace t("10.10.10.104", client_port, "10.10.10.22", 1433);
	t.midstream()
		.request(s + 9.1949581, TDS_SQL_BATCH)			// 364
		.response(s + 9.1949581, TDS_STATUS_EOM, 130)		// 365 SPID = 130
		.request(s + 9.3043331, TDS_SQL_BATCH)			// 366
		.response(s + 9.3072631, TDS_STATUS_EOM, 130)		// 367
		.fin(s + 9.4078491, C2S, 157672648u, 192890973u)	// 375
		.close_ack(s + 9.4078491, S2C, 192890973u, 157672649u)	// 376
		.fin(s + 9.4078491, S2C, 192890973u, 157672649u)	// 379
		.close_ack(s + 9.5221071, C2S, 157672649u, 192890974u); // 397
	return t;
}

Trace seed_idle_close()
{
	Trace t("10.10.10.45", 51708, "10.10.10.51", 1433);
	t.midstream()
		.keepalive(16.3641802, C2S)	   // 1314 [Keep alive]
		.keepalive_ack(16.3677083, S2C)	   // 1317 [Keep alive ack]
		.keepalive(16.4269375, S2C)	   // 1327 [Keep alive]
		.keepalive_ack(16.4269637, C2S)	   // 1328 [Keep alive ack]
		.fin(26.7918499, C2S, 0, 0)	   // 1881 ...A...F
		.close_ack(26.7929474, S2C, 0, 0)  // 1886
		.fin(26.7929474, S2C, 0, 0)	   // 1888 ...A...F
		.close_ack(26.7929947, C2S, 0, 0); // 1890
	return t;
}

} // namespace tdsbpf::test
