// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// One event as a line of the timeline, in the words of the seeds' traces.
#include <cstdio>

#include "connection.h"

namespace tdsbpf {

namespace {


std::string tls_desc(const tdsbpf_tls& t)
{
	char buf[160];
	std::string s;
	switch (t.content_type) {
	case TLS_CT_CHANGE_CIPHER_SPEC: s = "TLS:Change Cipher Spec"; break;
	case TLS_CT_ALERT:
		snprintf(buf, sizeof(buf), "TLS:Alert level %u description %u", t.alert_level, t.alert_desc);
		s = buf;
		break;
	case TLS_CT_HANDSHAKE: {
		s = "TLS:HandShake: ";
		s += TLS_HS_IN_CLEAR(t.handshake_type) ? tls_handshake_name(t.handshake_type)
						       : "Encrypted Handshake Message";
		if (t.handshake_type == TLS_HS_CLIENT_HELLO && t.hello_version)
			s += " (TLS " + tls_version_name(t.hello_version) + ")";
		if (t.handshake_type == TLS_HS_SERVER_HELLO)
			s += " (TLS " + tls_version_name(t.selected_version ? t.selected_version : t.hello_version) +
			     ")";
		if (t.flags & TDSBPF_TLS_ALPN_TDS8)
			s += ", ALPN tds/8.0";
		break;
	}
	case TLS_CT_APPLICATION_DATA:
		snprintf(buf, sizeof(buf), "TLS:Application Data, Length = %u", t.record_length);
		s = buf;
		break;
	default:
		snprintf(buf, sizeof(buf), "TLS:Record type %u", t.content_type);
		s = buf;
		break;
	}
	// the messages and records after the first, in the same packet or record
	for (const std::string& n : tls_chain_names(t))
		s += "; " + n;
	return s;
}

} // namespace

std::string describe_event(const tdsbpf_event& ev, const tdsbpf_ntlm_event* ntlm, bool redact)
{
	char buf[320];
	int dir = ev.dir & 1;
	switch (ev.kind) {
	case TDSBPF_EV_TCP_SYN:
	case TDSBPF_EV_TCP_SYNACK:
	case TDSBPF_EV_TCP_HANDSHAKE_ACK:
	case TDSBPF_EV_TCP_FIN:
	case TDSBPF_EV_TCP_RST:
	case TDSBPF_EV_TCP_CLOSE_ACK:
		snprintf(buf, sizeof(buf), "TCP:Flags=%s, PayloadLen=%u, Seq=%u, Ack=%u, Win=%u",
			 tcp_flags_string(ev.tcp_flags).c_str(), ev.payload_len, ev.seq, ev.ack, ev.window);
		return buf;
	case TDSBPF_EV_TCP_KEEPALIVE:
	case TDSBPF_EV_TCP_KEEPALIVE_ACK:
		snprintf(buf, sizeof(buf), "TCP:[%s]Flags=%s, PayloadLen=%u, Seq=%u, Ack=%u",
			 ev.kind == TDSBPF_EV_TCP_KEEPALIVE ? "Keep alive" : "Keep alive ack",
			 tcp_flags_string(ev.tcp_flags).c_str(), ev.payload_len, ev.seq, ev.ack);
		return buf;
	case TDSBPF_EV_TCP_RETRANS:
		snprintf(buf, sizeof(buf), "TCP:[Retransmit]Flags=%s, PayloadLen=%u, Seq=%u",
			 tcp_flags_string(ev.tcp_flags).c_str(), ev.payload_len, ev.seq);
		return buf;
	case TDSBPF_EV_TCP_ZERO_WINDOW:
		snprintf(buf, sizeof(buf), "TCP:[Zero window]Flags=%s, Seq=%u, Ack=%u",
			 tcp_flags_string(ev.tcp_flags).c_str(), ev.seq, ev.ack);
		return buf;
	case TDSBPF_EV_FLOW_STATS:
		snprintf(buf, sizeof(buf), "STATS:%s bytes %llu/%llu packets %u/%u",
			 ev.u.stats.final ? "final" : "periodic", static_cast<unsigned long long>(ev.u.stats.bytes[0]),
			 static_cast<unsigned long long>(ev.u.stats.bytes[1]), ev.u.stats.packets[0],
			 ev.u.stats.packets[1]);
		return buf;
	case TDSBPF_EV_WORK:
		snprintf(buf, sizeof(buf),
			 "WORK:%u batch(es), %u RPC(s), %u response(s), %u latenc%s, %u event(s) counted",
			 ev.u.work.sql_batches, ev.u.work.rpcs, ev.u.work.responses, ev.u.work.n,
			 ev.u.work.n == 1 ? "y" : "ies", ev.u.work.events);
		return buf;
	case TDSBPF_EV_RESYNC:
		return ev.flags & TDSBPF_F_LOST_SYNC ? "TRACER:TDS framing lost" : "TRACER:TDS framing regained";
	case TDSBPF_EV_SMP: {
		const tdsbpf_smp& m = ev.u.smp;
		std::string f;
		if (m.flags & SMP_SYN)
			f += "SYN";
		if (m.flags & SMP_ACK)
			f += f.empty() ? "ACK" : "|ACK";
		if (m.flags & SMP_FIN)
			f += f.empty() ? "FIN" : "|FIN";
		if (m.flags & SMP_DATA)
			f += f.empty() ? "DATA" : "|DATA";
		snprintf(buf, sizeof(buf), "SMP:%s, Sid = %u, Length = %u, SeqNum = %u, Wndw = %u", f.c_str(), m.sid,
			 m.length, m.seq, m.window);
		return buf;
	}
	case TDSBPF_EV_TLS: return tls_desc(ev.u.tls);
	case TDSBPF_EV_TDS_DONE:
		snprintf(buf, sizeof(buf), "TDS:Done, Status = 0x%02x%s%s, RowCount = %llu%s", ev.u.done.status,
			 ev.u.done.status & TDS_DONE_ATTN ? " (attention ack)" : "",
			 ev.u.done.status & TDS_DONE_ERROR ? " (error)" : "",
			 static_cast<unsigned long long>(ev.u.done.rows),
			 ev.u.done.flags & TDSBPF_TAIL_INPROC_ROWS ? " (of the DONEINPROC before it)" : "");
		return buf;
	case TDSBPF_EV_NTLM_AUTH: {
		if (!ntlm)
			return "NLMP:NTLM AUTHENTICATE MESSAGE";
		bool uni = ntlm->encoding & TDSBPF_NTLM_UNICODE;
		auto nm = [&](const uint8_t* p, uint16_t l) {
			return redact ? std::string("<redacted>") : utf16le_or_oem(p, l, TDSBPF_NTLM_NAME_MAX, uni);
		};
		return "NLMP:NTLM AUTHENTICATE MESSAGE Domain: " + nm(ntlm->domain, ntlm->domain_len) +
		       ", User: " + nm(ntlm->user, ntlm->user_len) +
		       ", Workstation: " + nm(ntlm->workstation, ntlm->workstation_len);
	}
	case TDSBPF_EV_TDS: {
		const tdsbpf_tds& t = ev.u.tds;
		std::string s;
		if (t.detail == TDSBPF_D_TLS)
			return tls_desc(t.d.tls) + " (in TDS:" + tds_type_title(t.type, dir) + ")";
		snprintf(buf, sizeof(buf), "TDS:%s, SPID = %u, PacketID = %u, Status = 0x%02x, Length = %u",
			 tds_type_title(t.type, dir), t.spid, t.packet_id, t.status, t.length);
		s = buf;
		if (ev.flags & TDSBPF_F_IN_SMP) {
			snprintf(buf, sizeof(buf), " [SMP:DATA Sid = %u, SeqNum = %u, Wndw = %u]", t.smp_sid, t.smp_seq,
				 t.smp_window);
			s += buf;
		}
		if (t.status & (TDS_STATUS_RESETCONNECTION | TDS_STATUS_RESETCONNECTIONSKIPTRAN))
			s += ", ResetConnection";
		switch (t.detail) {
		case TDSBPF_D_PRELOGIN: {
			const tdsbpf_prelogin& p = t.d.prelogin;
			snprintf(buf, sizeof(buf), ": Version = %u.%u.%u, Encryption = %u, MARS = %u", p.version_major,
				 p.version_minor, p.version_build, p.encryption, p.mars);
			s += buf;
			break;
		}
		case TDSBPF_D_LOGIN7: {
			const tdsbpf_login7& l = t.d.login7;
			snprintf(buf, sizeof(buf), ": TDS %s, PacketSize = %u, IntegratedSecurity = %u%s%s",
				 tds_version_name(l.tds_version).c_str(), l.packet_size,
				 (l.option_flags2 & 0x80) ? 1 : 0, (l.type_flags & 0x20) ? ", ReadOnlyIntent" : "",
				 (l.flags & TDSBPF_L7_FEDAUTH) ? ", FedAuth" : "");
			s += buf;
			break;
		}
		case TDSBPF_D_REPLY: {
			const tdsbpf_reply& r = t.d.reply;
			if (r.tokens & TDSBPF_TOK_LOGINACK) {
				snprintf(buf, sizeof(buf), ": LOGINACK TDS %s, Server %u.%u.%u",
					 tds_version_name(r.loginack_tds_version).c_str(), r.server_version[0],
					 r.server_version[1], (r.server_version[2] << 8) | r.server_version[3]);
				s += buf;
			}
			if (r.tokens & TDSBPF_TOK_ERROR) {
				snprintf(buf, sizeof(buf), ": ERROR %u, State %u, Class %u", r.error_number,
					 r.error_state, r.error_class);
				s += buf;
			}
			if (r.tokens & TDSBPF_TOK_SSPI)
				s += r.sspi_ntlm_type == 2 ? ": NTLM CHALLENGE MESSAGE" : ": SSPI token";
			if (r.tokens & TDSBPF_TOK_FEDAUTHINFO)
				s += ": FEDAUTHINFO";
			if (r.tokens & TDSBPF_TOK_ROUTING) {
				snprintf(buf, sizeof(buf), ": Routing to %s:%u",
					 ascii_text(r.routing_server, r.routing_server_len, sizeof(r.routing_server))
						 .c_str(),
					 r.routing_port);
				s += buf;
			}
			break;
		}
		case TDSBPF_D_SSPI:
			s += t.d.sspi.ntlm_type == 3   ? ": NTLM AUTHENTICATE"
			     : t.d.sspi.ntlm_type == 1 ? ": NTLM NEGOTIATE"
						       : ": SSPI";
			break;
		default: break;
		}
		return s;
	}
	default: snprintf(buf, sizeof(buf), "EVENT:kind %u", ev.kind); return buf;
	}
}

} // namespace tdsbpf
