// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Builds event sequences the way the packet programs report them, from the
// rows of a trace (time offset, direction, what the row shows).
#ifndef TDSBPF_TESTS_EVENTS_BUILDER_H
#define TDSBPF_TESTS_EVENTS_BUILDER_H

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <tdsbpf/events.h>

#include "aggregator/aggregator.h"

namespace tdsbpf::test {

constexpr int C2S = TDSBPF_DIR_C2S;
constexpr int S2C = TDSBPF_DIR_S2C;

// 2024-06-05T00:00:00Z, the seeds' date: trace offsets are added to it.
constexpr uint64_t kBaseNs = 1717545600ull * 1000000000ull;

// Trace offset in seconds (7 decimals, as Network Monitor prints) -> ns.
uint64_t at(double offset_s);

struct Record {
	tdsbpf_ntlm_event ev{}; // large enough for every kind
	size_t len = sizeof(tdsbpf_event);
	tdsbpf_event& base() { return ev.base; }
	const tdsbpf_event& base() const { return ev.base; }
};

class Trace {
public:
	Trace(const char* client, uint16_t client_port, const char* server, uint16_t server_port);

	// TCP
	Trace& syn(double t, uint32_t seq, uint8_t flags = 0x02);
	Trace& synack(double t, uint32_t seq, uint32_t ack, uint8_t flags = 0x12);
	Trace& hs_ack(double t, uint32_t seq, uint32_t ack);
	Trace& fin(double t, int dir, uint32_t seq, uint32_t ack);
	Trace& close_ack(double t, int dir, uint32_t seq, uint32_t ack);
	Trace& rst(double t, int dir, uint32_t seq, uint32_t ack, uint8_t flags = 0x14);
	Trace& keepalive(double t, int dir);
	Trace& keepalive_ack(double t, int dir);
	Trace& retrans(double t, int dir);
	Trace& zero_window(double t, int dir);
	Trace& stats(double t, uint64_t bytes_c2s, uint64_t bytes_s2c, uint32_t pk_c2s, uint32_t pk_s2c, bool final);

	// TDS
	Trace& prelogin(double t, int dir, uint8_t major, uint8_t minor, uint16_t build, uint8_t encryption,
			uint8_t mars);
	Trace& tls_in_tds(double t, int dir, uint8_t content, uint8_t handshake, uint16_t version = 0x0303);
	Trace& tls(double t, int dir, uint8_t content, uint8_t handshake = 0, uint16_t version = 0x0303,
		   uint8_t flags = 0);
	// an application-data record of the given length (encrypted TDS)
	Trace& tls_data(double t, int dir, uint16_t record_length);
	Trace& login7(double t, uint32_t tds_version, bool integrated, uint8_t sspi_kind, bool read_only = false,
		      bool fedauth = false, uint32_t packet_size = 4096);
	Trace& loginack(double t, uint32_t tds_version, uint8_t major, uint8_t minor, uint16_t build, uint16_t spid,
			uint16_t extra_tokens = 0);
	Trace& reply(double t, uint16_t tokens, uint16_t spid = 0, uint8_t status = TDS_STATUS_EOM);
	Trace& login_error(double t, uint32_t number, uint8_t state, uint8_t cls);
	Trace& sspi_challenge(double t);
	Trace& sspi_token(double t); // Kerberos / SPNEGO reply token
	Trace& sspi_client(double t, uint8_t kind, uint8_t ntlm_type);
	Trace& ntlm_auth(double t, const std::string& domain, const std::string& user, const std::string& workstation);
	Trace& request(double t, uint8_t type, uint8_t status = TDS_STATUS_EOM);
	Trace& response(double t, uint8_t status = TDS_STATUS_EOM, uint16_t spid = 0, uint8_t packet_id = 1);
	// A DONE in a later segment than its reply packet's header.
	Trace& done(double t, uint16_t status, uint64_t rows);
	// The last reply packet ends in its own segment: its DONE rides along.
	Trace& tail_done(uint16_t status, uint64_t rows);
	Trace& routing(double t, const std::string& server, uint16_t port);

	// MARS
	Trace& smp(double t, int dir, uint8_t flags, uint16_t sid, uint32_t seq, uint32_t window);
	// The next TDS events are carried in SMP DATA of this session (-1: none).
	Trace& in_smp(int sid);
	// The next events carry TDSBPF_F_MIDSTREAM.
	Trace& midstream(bool on = true);

	std::vector<Record>& records() { return recs_; }
	Record& last() { return recs_.back(); }

private:
	Record& add(double t, uint8_t kind, int dir);
	Record& add_tds(double t, int dir, uint8_t type, uint8_t status, uint8_t detail);
	tdsbpf_flow_key key_{};
	std::vector<Record> recs_;
	int smp_sid_ = -1;
	uint32_t smp_seq_[2] = {0, 0};
	bool midstream_ = false;
};

// A sink that keeps what it is given.
class CollectSink : public Sink {
public:
	bool lines = false;
	bool wants_lines() const override { return lines; }
	void on_line(const TimelineLine& l) override { timeline.push_back(l); }
	void on_connection(const ConnectionRecord& r) override
	{
		(r.final() ? records : snapshots).push_back(nlohmann::json::parse(r.json()));
	}
	std::vector<nlohmann::json> records, snapshots;
	std::vector<TimelineLine> timeline;
};

// Feed the records (in the given order) and finish at the last one + 1 s.
void feed(Aggregator& agg, const std::vector<Record>& recs);
std::vector<nlohmann::json> run(const std::vector<Record>& recs, AggregatorConfig cfg = {});

// Helpers over a record.
std::vector<std::string> phase_names(const nlohmann::json& r);
std::vector<std::string> diagnosis_codes(const nlohmann::json& r);
bool has_diagnosis(const nlohmann::json& r, const std::string& code);

} // namespace tdsbpf::test

#endif
