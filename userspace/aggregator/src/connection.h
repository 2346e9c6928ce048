// The state kept for one TCP connection and the phase machine that feeds it.
#ifndef TDSBPF_AGGREGATOR_CONNECTION_H
#define TDSBPF_AGGREGATOR_CONNECTION_H

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <tdsbpf/events.h>

#include "aggregator/aggregator.h"

namespace tdsbpf {

// Phases in the order a connection goes through them. TDS 8.0 (strict)
// connections go tcp_handshake -> tls_handshake -> login: their PRELOGIN
// travels inside TLS. login_ack and login_error share a rank.
enum class Phase : uint8_t {
	none,
	tcp_handshake,
	prelogin,
	tls_handshake,
	login,
	authentication,
	login_ack,
	login_error,
	active,
	close,
};
int phase_rank(Phase p);
const char* phase_name(Phase p);

enum class CloseKind : uint8_t {
	none,
	four_way,          // client FIN first, server FIN
	server_fin_first,  // the server sent the first FIN (abnormal)
	half_close,        // one FIN and nothing more before the end
	reset,             // a RST ended it (close.initiator says who)
	mars_benign_reset, // client RST right after the MARS sessions closed
	refused,           // the server answered the SYN with a RST
	syn_unanswered,    // SYN(s) and no SYN+ACK
	idle_timeout,      // no event for --idle-timeout (or handshake timeout)
	still_open,        // open when the tracer stopped
	evicted,           // pushed out by --max-connections
	replaced,          // a new SYN on the same ports; the end was not seen
};
const char* close_kind_name(CloseKind k);

enum class AuthMethod : uint8_t { unknown, sql, ntlm, kerberos, federated };
const char* auth_method_name(AuthMethod m);

enum class LoginOutcome : uint8_t {
	in_progress, // still logging in when the record was printed
	success,     // LOGINACK
	failed,      // ERROR without LOGINACK
	aborted,     // closed before a reply
	timed_out,   // the client gave up after login_timeout_ms, or idle timeout
	not_seen,    // mid-stream: the login happened before the tracer
	not_started, // the TCP handshake never completed
	unknown,     // encrypted login (full or strict encryption)
};
const char* login_outcome_name(LoginOutcome o);

enum class EndReason : uint8_t { none, closed, idle_timeout, handshake_timeout, finish, evicted, replaced };

struct PhaseSpan {
	Phase phase;
	uint64_t start_ns;
};

struct PreloginInfo {
	bool seen = false;
	uint8_t major = 0, minor = 0;
	uint16_t build = 0, subbuild = 0;
	uint8_t encryption = TDSBPF_VALUE_ABSENT;
	uint8_t mars = TDSBPF_VALUE_ABSENT;
	uint8_t fedauth_required = TDSBPF_VALUE_ABSENT;
	std::string instance;
	bool has_version = false;
};

// Request/response pairing state of one stream: the connection without
// MARS, or one SMP session.
struct StreamState {
	bool in_msg[2] = {false, false};
	uint64_t pending_request_ns = 0; // first packet of an unanswered request
	bool pending = false;
};

struct SmpSession {
	uint16_t sid = 0;
	uint64_t opened_ns = 0;  // SMP:SYN (0: first seen in data)
	uint64_t closed_ns = 0;
	bool syn_seen = false;
	bool fin[2] = {false, false};
	uint64_t fin_ns[2] = {0, 0};
	uint64_t data_packets[2] = {0, 0};
	uint32_t last_seq[2] = {0, 0};
	uint32_t last_window[2] = {0, 0};
	uint64_t acks[2] = {0, 0};
	StreamState stream;
};

struct Diagnosis {
	std::string code;
	std::string severity; // info, warning, error
	std::string message;
};

// Latency figures with bounded memory: exact count/min/max, percentiles
// from the first kMaxSamples samples.
struct LatencyStats {
	static constexpr size_t kMaxSamples = 512;
	uint64_t count = 0;
	uint64_t min_ns = 0, max_ns = 0, sum_ns = 0;
	std::vector<uint32_t> samples_us;
	void add(uint64_t ns);
	uint64_t percentile_ns(double p) const;
};

struct Connection {
	uint64_t id = 0;
	tdsbpf_flow_key key{};
	uint32_t ifindex = 0;
	uint64_t first_ns = 0, last_ns = 0;
	uint64_t last_payload_ns = 0; // last TDS/TLS/SMP event
	uint64_t last_server_payload_ns = 0;
	uint64_t events = 0;
	bool midstream = false;

	// Phases
	Phase phase = Phase::none;
	std::vector<PhaseSpan> phases;
	Phase phase_at_close = Phase::none;

	// TCP handshake
	uint32_t syn_count = 0;
	uint32_t syn_seq = 0;
	uint64_t syn_ns = 0, synack_ns = 0, hs_ack_ns = 0;

	// PRELOGIN / TLS
	PreloginInfo pre[2]; // by dir
	bool prelogin_answered = false;
	bool tls_seen = false;
	bool strict = false;
	bool alpn_tds8 = false;
	uint16_t tls_client_version = 0; // client hello legacy_version
	uint16_t tls_server_version = 0; // negotiated
	bool tls_alert = false;
	uint8_t tls_alert_level = 0, tls_alert_desc = 0;
	bool tls_app_data_s2c = false;   // full encryption confirmed
	bool plaintext_after_login = false;

	// LOGIN7
	bool login_record_seen = false; // LOGIN7 seen, in clear or as TLS
	bool login7_plain = false;
	tdsbpf_login7 login7{};
	uint64_t login_ns = 0;

	// Login reply
	LoginOutcome outcome = LoginOutcome::in_progress;
	uint64_t login_ack_ns = 0;
	uint32_t loginack_tds_version = 0;
	uint8_t server_prog_version[4] = {0, 0, 0, 0};
	bool loginack_seen = false;
	uint32_t error_number = 0;
	uint8_t error_state = 0, error_class = 0;
	bool login_error_seen = false;
	uint32_t packet_size = 0;
	bool routing_seen = false;
	std::string routing_server;
	uint16_t routing_port = 0;
	uint64_t opaque_first_reply_ns = 0;

	// Authentication
	AuthMethod method = AuthMethod::unknown;
	bool method_inferred = false;
	bool integrated_security = false;
	bool integrated_known = false;
	uint32_t sspi_server_tokens = 0;
	uint32_t sspi_client_packets = 0;
	bool fedauth_seen = false;
	bool ntlm_names = false;
	std::string ntlm_domain, ntlm_user, ntlm_workstation;

	// Work
	uint64_t sql_batches = 0, rpcs = 0, attentions = 0, bulk_loads = 0, tm_requests = 0;
	uint64_t requests = 0, responses = 0;
	uint64_t encrypted_requests = 0;
	uint64_t attention_acks = 0;
	uint64_t pending_attentions = 0;
	uint64_t reset_connection = 0;
	uint64_t done_tokens = 0, rows = 0;
	bool rows_seen = false;
	uint64_t work_errors = 0;
	uint32_t last_error_number = 0;
	uint8_t last_error_state = 0, last_error_class = 0;
	LatencyStats latency;
	StreamState stream;             // non-MARS (and opaque) pairing
	bool opaque_in_request = false;
	bool opaque_client_flight = false; // the last TLS data record came from the client
	uint32_t opaque_client_flights = 0; // runs of client TLS data records

	// MARS
	std::map<uint16_t, SmpSession> sessions;
	uint64_t sessions_dropped = 0;
	uint64_t smp_fin_client_ns = 0;

	// Close
	bool fin[2] = {false, false};
	uint64_t fin_ns[2] = {0, 0};
	int first_fin_dir = -1;
	bool rst[2] = {false, false};
	uint64_t rst_ns = 0;
	int first_rst_dir = -1;
	bool final_ack = false;
	uint64_t close_start_ns = 0;
	bool pending_at_close = false;  // a request was waiting for its response when the close began
	uint64_t pending_since_ns = 0;  // the oldest such request
	uint64_t keepalives[2] = {0, 0};
	uint64_t last_keepalive_ns = 0; // the last one before the close began
	uint64_t retrans_events[2] = {0, 0};
	uint64_t zero_window_events[2] = {0, 0};
	bool stats_seen = false;
	tdsbpf_stats stats{};
	uint64_t resync_lost = 0, resync_regained = 0;
	uint64_t truncated = 0;

	// Lifecycle
	bool complete = false;     // the TCP close is over; lingering
	uint64_t complete_ns = 0;
	EndReason end_reason = EndReason::none;
	uint64_t end_ns = 0;
	uint64_t last_snapshot_ns = 0;
	std::vector<Diagnosis> extra; // added by the aggregator (non_pooled_client)

	// Derived at the end
	CloseKind close_kind = CloseKind::none;
	int close_initiator = -1; // dir
};

// The phase machine: apply one event (already ordered) to a connection.
// ntlm is non-null for TDSBPF_EV_NTLM_AUTH.
void apply_event(Connection& c, const tdsbpf_event& ev, const tdsbpf_ntlm_event* ntlm,
		 const AggregatorConfig& cfg);
// Whether an event is the client opening a new connection on these ports.
bool is_new_syn(const Connection& c, const tdsbpf_event& ev);
// Work out close kind and login outcome once the connection ended.
void conclude(Connection& c, EndReason why, uint64_t end_ns, const AggregatorConfig& cfg);
// The diagnoses of a connection (concluded or a snapshot).
std::vector<Diagnosis> diagnose(const Connection& c, const AggregatorConfig& cfg);
// A client-closed connection that ran a few requests and closed right after
// the last response: the non-pooled pattern of the seeds.
bool single_use(const Connection& c, const AggregatorConfig& cfg);
// The JSON record (docs/connections.md).
nlohmann::json make_record(const Connection& c, const AggregatorConfig& cfg, bool final,
			   const std::vector<Diagnosis>& diags);
// Timeline description of one event ("TDS:Prelogin ...").
std::string describe_event(const tdsbpf_event& ev, const tdsbpf_ntlm_event* ntlm, bool redact);

// Helpers (util.cpp)
std::string addr_string(const uint8_t* addr, uint8_t family);
std::string endpoint_string(const uint8_t* addr, uint8_t family, uint16_t port);
std::string iso_time(uint64_t ns);
double ms(uint64_t ns);
std::string tls_version_name(uint16_t v);
std::string tds_version_name(uint32_t v);
std::string utf16le_or_oem(const uint8_t* p, size_t len, bool unicode);
std::string tcp_flags_string(uint8_t flags);
bool is_request_type(uint8_t type);
// Encryption mode: off, login_only, full, strict, unknown
std::string encryption_mode(const Connection& c);
bool opaque(const Connection& c);
uint64_t retrans(const Connection& c, int dir);
uint64_t zero_windows(const Connection& c, int dir);
uint64_t keepalive_count(const Connection& c, int dir);

} // namespace tdsbpf

#endif
