// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The model of one TCP connection, grouped as the record is (tcp, prelogin,
// tls, login, authentication, work, mars, close, tracer), and the phase
// machine that feeds it. docs/connections.md describes every field.
#ifndef TDSBPF_AGGREGATOR_CONNECTION_H
#define TDSBPF_AGGREGATOR_CONNECTION_H

#include <algorithm>
#include <array>
#include <cstdarg>
#include <cstring>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tdsbpf/events.h>
#include <tdsbpf/events.hpp>

#include "aggregator/aggregator.h"
#include "json_writer.h"
#include "latency.h"

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
	four_way,	   // client FIN first, server FIN
	server_fin_first,  // the server sent the first FIN (abnormal)
	half_close,	   // one FIN and nothing more before the end
	reset,		   // a RST ended it (close.initiator says who)
	mars_benign_reset, // client RST right after the MARS sessions closed
	refused,	   // the server answered the SYN with a RST
	syn_unanswered,	   // SYN(s) and no SYN+ACK
	idle_timeout,	   // no event for --idle-timeout (or handshake timeout)
	still_open,	   // open when the tracer stopped
	unknown,	   // its end was not seen and events of it were lost: it may have closed
	evicted,	   // pushed out by --max-connections
	replaced,	   // a new SYN on the same ports; the end was not seen
};
const char* close_kind_name(CloseKind k);

enum class AuthMethod : uint8_t { unknown, sql, ntlm, kerberos, federated };
const char* auth_method_name(AuthMethod m);

enum class LoginOutcome : uint8_t {
	in_progress, // still logging in when the record was printed
	success,     // LOGINACK
	failed,	     // ERROR without LOGINACK
	aborted,     // closed before a reply
	timed_out,   // the client gave up after login_timeout_ms, or idle timeout
	not_seen,    // mid-stream: the login happened before the tracer
	not_started, // the TCP handshake never completed
	unknown,     // encrypted login (full or strict encryption)
	not_tds,     // the client does not speak TDS 7.x (see Speaks)
};

// What the client's first bytes on the port were, for a connection seen
// from its start: TDS 7.x or 8.0 (PRELOGIN, LOGIN7, TLS, SMP), a TDS
// 4.2/5.0 login (Sybase clients, very old drivers), or no TDS at all.
enum class Speaks : uint8_t { not_yet, tds, tds_pre7, not_tds };
const char* login_outcome_name(LoginOutcome o);

// What was encrypted: nothing, the login only, everything after the
// PRELOGIN (full), or everything from the first byte (TDS 8.0 strict).
// not_negotiated: no PRELOGIN at all (TDS 7.0/7.1 clients), so nothing
// was encrypted and nothing was offered.
enum class Encryption : uint8_t { unknown, off, login_only, full, strict, not_negotiated };
const char* encryption_name(Encryption e);
// A TLS cipher suite's IANA name (0xNNNN when not known here), and whether
// it is weak: RC4, 3DES, DES, NULL encryption, export-grade, anonymous.
std::string tls_cipher_name(uint16_t id);
bool tls_cipher_weak(uint16_t id);

enum class EndReason : uint8_t { none, closed, idle_timeout, handshake_timeout, finish, evicted, replaced };

// Direction index into the per-direction arrays (tdsbpf_dir).
constexpr int kC2S = TDSBPF_DIR_C2S;
constexpr int kS2C = TDSBPF_DIR_S2C;
constexpr int kNoSide = -1;
// How much longer than the close linger a refused attempt waits for the
// client to send the same SYN again (Windows retries twice, 0.5 s apart).
constexpr uint64_t kRefusedRetryWaitNs = 1'000'000'000ull;
const char* side_name(int dir); // "client", "server"

struct PhaseSpan {
	Phase phase;
	uint64_t start_ns;
};

// The phases a connection went through, in order. Phases only move
// forward, so there are at most nine; kept inline (no allocation).
class PhaseList {
public:
	static constexpr size_t kMax = 10;
	size_t size() const { return n_; }
	bool empty() const { return n_ == 0; }
	PhaseSpan operator[](size_t i) const { return {phase_[i], start_[i]}; }
	PhaseSpan front() const { return (*this)[0]; }
	PhaseSpan back() const { return (*this)[n_ - 1]; }
	void push_back(PhaseSpan s)
	{
		if (n_ == kMax)
			n_--; // cannot happen (ranks only grow); keep the newest
		phase_[n_] = s.phase;
		start_[n_] = s.start_ns;
		n_++;
	}
	void set_back_phase(Phase p) { phase_[n_ - 1] = p; }

private:
	uint64_t start_[kMax];
	Phase phase_[kMax];
	uint8_t n_ = 0;
};

// Text of at most N bytes kept inline (the kernel cuts these names to 16
// bytes), always NUL-terminated.
template <size_t N> class ShortText {
public:
	void assign(const char* p, size_t n)
	{
		len_ = static_cast<uint8_t>(std::min(n, N));
		std::memcpy(buf_, p, len_);
		buf_[len_] = 0;
	}
	void clear() { assign("", 0); }
	bool empty() const { return len_ == 0; }
	const char* c_str() const { return buf_; }
	operator std::string_view() const { return {buf_, len_}; }

private:
	char buf_[N + 1] = {};
	uint8_t len_ = 0;
};

// A part of the model that most connections never need: allocated when
// first used, copied deeply with the connection (snapshots copy it).
template <typename T> class Rare {
public:
	Rare() = default;
	Rare(const Rare& o) : p_(o.p_ ? std::make_unique<T>(*o.p_) : nullptr) {}
	Rare& operator=(const Rare& o)
	{
		p_ = o.p_ ? std::make_unique<T>(*o.p_) : nullptr;
		return *this;
	}
	Rare(Rare&&) noexcept = default;
	Rare& operator=(Rare&&) noexcept = default;
	const T* get() const { return p_.get(); }
	T& mut()
	{
		if (!p_)
			p_ = std::make_unique<T>();
		return *p_;
	}

private:
	std::unique_ptr<T> p_;
};

struct TcpState {
	uint32_t syn_count = 0;
	uint32_t syn_seq = 0;
	uint64_t syn_ns = 0, synack_ns = 0, hs_ack_ns = 0;
	uint32_t keepalives[2] = {0, 0};
	uint32_t retrans_events[2] = {0, 0};
	uint32_t zero_window_events[2] = {0, 0};
	uint64_t last_keepalive_ns = 0; // the last one before the close began
	bool stats_seen = false;
	tdsbpf_stats stats{}; // the kernel's flow counters (last FLOW_STATS)
	// Retransmissions of one segment in a row, per direction: the segment
	// (its sequence and size) and how many times it went again.
	uint32_t stuck_seq[2] = {0, 0};
	uint16_t stuck_len[2] = {0, 0};
	uint16_t stuck_times[2] = {0, 0};
	uint64_t stuck_last_ns[2] = {0, 0};

	// Counts from events and from the kernel's counters, whichever saw more.
	uint64_t retrans(int dir) const;
	uint64_t zero_windows(int dir) const;
	uint64_t keepalive_count(int dir) const;
	uint64_t keepalive_total() const { return keepalive_count(0) + keepalive_count(1); }
	// Second sightings of packets already counted (the kernel's counters only).
	uint64_t duplicates(int dir) const { return stats_seen ? stats.duplicates[dir] : 0; }
};

struct PreloginSide {
	bool seen = false;
	bool has_version = false;
	uint8_t major = 0, minor = 0;
	uint16_t build = 0, subbuild = 0;
	uint8_t encryption = TDSBPF_VALUE_ABSENT;
	uint8_t mars = TDSBPF_VALUE_ABSENT;
	uint8_t fedauth_required = TDSBPF_VALUE_ABSENT;
	ShortText<16> instance;
};

// The client PRELOGIN's TRACEID and THREADID: what its driver logs.
struct ClientTrace {
	uint8_t connection_id[16]; // ClientConnectionId (GUID bytes)
	uint8_t activity_id[16];   // ActivityId (GUID bytes)
	uint32_t activity_seq;
	uint32_t thread_id;
};

struct PreloginState {
	PreloginSide side[2]; // by direction: the client's and the server's
	bool answered = false;
	bool trace_seen = false, thread_seen = false;
	ClientTrace trace{};
	const PreloginSide& client() const { return side[kC2S]; }
	const PreloginSide& server() const { return side[kS2C]; }
};

struct TlsState {
	bool seen = false;   // a handshake record
	bool strict = false; // TLS first: TDS 8.0
	bool alpn_tds8 = false;
	uint16_t client_version = 0; // client hello legacy_version
	uint16_t server_version = 0; // negotiated
	bool alert = false;
	uint8_t alert_level = 0, alert_desc = 0;
	bool app_data_s2c = false; // full encryption confirmed
};

// The login's milestones after the TCP handshake, each the first time it
// was seen (0: not seen). The TCP ones are in TcpState, the answer is the
// LOGINACK's or the ERROR's time; login_steps() makes the waterfall.
enum class Milestone : uint8_t {
	prelogin,	// the client's PRELOGIN
	prelogin_reply, // the server's
	tls_client_hello,
	tls_server_hello,  // the server's first flight
	tls_client_finish, // the client's second flight (key exchange, Finished)
	tls_server_finish, // the server's last flight (Change Cipher Spec, Finished)
	login7,		   // the LOGIN7 (or its TLS record)
	auth_challenge,	   // the server's first SSPI token or FEDAUTHINFO
	auth_response,	   // the client's answer (NTLM AUTHENTICATE, a token)
	count
};
constexpr size_t kMilestones = static_cast<size_t>(Milestone::count);

struct LoginSteps {
	uint64_t at[kMilestones] = {};
	void mark(Milestone m, uint64_t ts)
	{
		uint64_t& t = at[static_cast<size_t>(m)];
		if (!t && ts)
			t = ts;
	}
	uint64_t operator[](Milestone m) const { return at[static_cast<size_t>(m)]; }
};

// One step of the login's waterfall: from one milestone seen to the next,
// named for the one it ends at, and whose turn it was.
struct LoginStep {
	const char* name;  // "tcp_syn_ack", "prelogin", "prelogin_reply", ...
	const char* owner; // "client", "server", "network"
	uint64_t start_ns, end_ns;
};

struct LoginState {
	LoginSteps steps;	   // the waterfall's milestones
	bool seen = false;	   // LOGIN7 seen, in clear or as TLS
	bool login7_plain = false; // in clear: its fields are known
	tdsbpf_login7 login7{};
	uint64_t start_ns = 0;
	LoginOutcome outcome = LoginOutcome::in_progress;
	bool ack_seen = false;
	uint64_t ack_ns = 0;
	uint32_t ack_tds_version = 0;
	uint8_t server_prog_version[4] = {0, 0, 0, 0};
	bool error_seen = false;
	uint64_t error_ns = 0;
	uint32_t error_number = 0;
	uint8_t error_state = 0, error_class = 0;
	uint32_t packet_size = 0;
	bool routing_seen = false;
	uint16_t routing_port = 0;
	ShortText<16> routing_server;
	uint64_t opaque_first_reply_ns = 0; // an encrypted login's first answer
	uint64_t opaque_end_ns = 0;	    // an inferred outcome: the server reply it is read from
	bool opaque_second_trip = false;    // ... after a second round trip (integrated login)
	// An encrypted login's first turns, from its login flight: record bytes
	// of the login flight, its answer, the client's next flight and its
	// answer (saturating). Their sizes tell an NTLM round trip from a request.
	uint16_t opaque_turn_bytes[4] = {};
	bool opaque_candidate = false;	  // that second client flight may be an NTLM AUTHENTICATE
	bool opaque_held_latency = false; // ... and its answer's latency waits to be settled
	uint64_t opaque_answer_ns = 0;	  // the answer to that flight
	uint64_t opaque_latency_ns = 0;
	uint16_t spid = 0;	      // the session id in the server's login reply header (0: not seen)
	bool plaintext_after = false; // TDS in clear after the LOGIN7
	// The outcome was worked out from the shape of an encrypted
	// conversation, not read from a LOGINACK or an ERROR token.
	bool inferred = false;
};

struct AuthState {
	AuthMethod method = AuthMethod::unknown;
	bool inferred = false;
	bool integrated_known = false;
	bool integrated_security = false;
	bool fedauth_seen = false;
	bool ntlm_seen = false;
	uint32_t sspi_server_tokens = 0;
	uint32_t sspi_client_packets = 0;
	struct NtlmNames {
		std::string domain, user, workstation;
	};
	Rare<NtlmNames> ntlm; // set with ntlm_seen
};

// Text read from excerpts (tdsbpf_excerpt_event): the names a client put in
// a LOGIN7 in clear, the database and language the server set at login,
// the server's name from its messages, and the words of the login's error
// and of the last error. Kept aside (most connections have none of it) and
// packed: the fields one after another in one string.
class Texts {
public:
	enum Field : uint8_t {
		kHost,
		kApp,
		kUser,
		kServer,
		kLibrary,
		kLanguage,
		kDatabase,	 // the LOGIN7's
		kEnvDatabase,	 // ENVCHANGE in the login's reply
		kEnvLanguage,	 // ditto
		kServerName,	 // the server's messages' server name
		kLoginErrorText, // the login's error: its text, server, procedure
		kLoginErrorServer,
		kLoginErrorProc,
		kLastErrorText, // the last error's
		kLastErrorServer,
		kLastErrorProc,
		kLoginInfo0, // the INFO messages of the login's reply: their texts
		kLoginInfoLast = kLoginInfo0 + 3,
		kFields
	};
	static constexpr size_t kLoginInfos = kLoginInfoLast - kLoginInfo0 + 1;
	// An error's numbers; number 0: none read.
	struct Message {
		uint32_t number = 0;
		uint8_t state = 0, cls = 0;
		uint32_t line = 0;
	};

	std::string_view get(Field f) const
	{
		uint16_t begin = f ? end_[f - 1] : 0;
		return std::string_view(blob_).substr(begin, end_[f] - begin);
	}
	std::string_view operator[](Field f) const { return get(f); }
	void set(Field f, std::string_view v);

	bool login7 = false; // a LOGIN7's names were read
	Message login_error, last_error;
	std::vector<Message> login_info; // ... and numbers (at most kLoginInfos)

private:
	std::string blob_;
	uint16_t end_[kFields] = {};
};

// What the server's certificate (the first of its chain) says.
struct TlsCertificate {
	std::string subject, issuer, key_type;
	int64_t not_before = 0, not_after = 0; // Unix seconds
	int key_bits = 0;
	bool self_signed = false;
	bool fallback = false; // SQL Server's own SSL_Self_Signed_Fallback
};

// The TLS posture read from the hello flights in clear (excerpts): what the
// client offered, what the server chose, and the server's certificate when
// TLS 1.2 or older shows it. Kept aside: allocated when a hello is read.
struct TlsPosture {
	bool client_seen = false;
	uint16_t client_max_version = 0;    // the highest offered (supported_versions, else legacy_version)
	uint16_t offered = 0;		    // cipher suites offered (GREASE values left out)
	std::vector<uint16_t> weak_offered; // RC4, 3DES, DES, NULL, EXPORT, anonymous ones (at most 16)
	std::string sni, alpn;		    // alpn: the names, comma-separated
	bool server_seen = false;
	uint16_t cipher = 0;	     // chosen
	uint16_t server_version = 0; // supported_versions, else legacy_version
	// the certificate
	enum class Cert : uint8_t { not_seen, read, cut, hidden } cert = Cert::not_seen;
	TlsCertificate certificate; // when read
	// The server's flight while its certificate runs on past the first
	// excerpt: the TLS bytes so far (TDS headers taken out), until read.
	struct Flight {
		std::vector<uint8_t> bytes;
		uint32_t next = 0;     // the stream offset of the next byte expected
		uint32_t tds_left = 0; // TDS 7.x: body bytes left of the current packet
		uint8_t hdr[8] = {};   // ... and a packet header arriving in parts
		uint8_t hdr_have = 0;
		bool framed = false; // TDS 7.x: the records travel in PRELOGIN packets
		bool over = false;   // ... and a packet of another type came: no more of it
	};
	Flight flight; // bytes empty: none wanted
};

// Request/response pairing state of one stream: the connection without
// MARS, or one SMP session.
struct StreamState {
	bool in_msg[2] = {false, false};
	bool pending = false;
	uint64_t pending_request_ns = 0; // first packet of an unanswered request
};

struct WorkState {
	uint64_t sql_batches = 0, rpcs = 0, attentions = 0, bulk_loads = 0, tm_requests = 0;
	uint64_t requests = 0, responses = 0;
	uint64_t encrypted_requests = 0;
	uint64_t idle_reuses = 0; // requests sent after the connection sat idle for a second or more
	uint64_t attention_acks = 0;
	uint64_t attentions_after_reply = 0; // sent when no reply was due or streaming
	uint64_t pending_attentions = 0;
	uint64_t reset_connection = 0;
	uint64_t done_tokens = 0, rows = 0;
	bool rows_seen = false;
	uint64_t errors = 0;
	uint32_t last_error_number = 0;
	uint8_t last_error_state = 0, last_error_class = 0;
	LatencyHistogram latency;
	StreamState stream; // non-MARS (and opaque) pairing
	bool opaque_in_request = false;
	bool opaque_client_flight = false;  // the last TLS data record came from the client
	uint32_t opaque_client_flights = 0; // runs of client TLS data records
};

struct SmpSession {
	uint16_t sid = 0;
	bool syn_seen = false;
	bool fin[2] = {false, false};
	uint64_t opened_ns = 0; // SMP:SYN (0: first seen in data)
	uint64_t closed_ns = 0;
	uint64_t fin_ns[2] = {0, 0};
	uint64_t data_packets[2] = {0, 0};
	uint64_t acks[2] = {0, 0};
	uint32_t last_seq[2] = {0, 0};
	uint32_t last_window[2] = {0, 0};
	StreamState stream;
};

struct MarsState {
	using Sessions = std::map<uint16_t, SmpSession>;
	Rare<Sessions> table;
	const Sessions& sessions() const
	{
		static const Sessions none;
		return table.get() ? *table.get() : none;
	}
	uint64_t sessions_dropped = 0;
	uint64_t client_fin_ns = 0; // the client's last SMP:FIN
};

struct CloseState {
	bool fin[2] = {false, false};
	bool rst[2] = {false, false};
	bool final_ack = false;
	bool pending_request = false; // a request was waiting for its response when the close began
	int first_fin_dir = kNoSide;
	int first_rst_dir = kNoSide;
	uint64_t fin_ns[2] = {0, 0};
	uint64_t rst_ns = 0;
	uint8_t rst_ttl = 0, rst_usual_ttl = 0; // the first RST's IP TTL, and its side's packets' before it (0: none)
	// when the first RST came: the segment some side had sent again and again just before
	int rst_stuck_dir = kNoSide;
	uint16_t rst_stuck_times = 0, rst_stuck_len = 0;
	uint64_t start_ns = 0;	       // when the close began
	uint64_t pending_since_ns = 0; // the oldest request waiting then
	Phase phase = Phase::none;     // the phase the close began in
	// Derived at the end
	CloseKind kind = CloseKind::none;
	int initiator = kNoSide;
};

struct TracerState {
	Speaks client_speaks = Speaks::not_yet;
	uint64_t events = 0;
	uint64_t resync_lost = 0, resync_regained = 0;
	uint64_t truncated = 0;
	// Loss: the kernel numbers each flow's events (flow_seq); a number
	// never seen is an event the ring buffer had no room for.
	uint32_t seq_max = 0;	   // highest flow_seq seen (this flow state)
	uint32_t seq_seen = 0;	   // events seen with a flow_seq
	uint64_t lost_earlier = 0; // lost under an earlier flow state (evicted, made again)
	bool start_lost = false;   // the kernel saw the start; its first events were lost
	bool maybe_lost = false;   // drops while it was open: more may be lost than counted
	uint32_t work_records = 0; // TDSBPF_EV_WORK records (routine work the kernel counted)
	bool counts_lost = false;  // its flow entry was made again while it counted: counts may be missing
	uint64_t events_lost() const { return lost_earlier + (seq_max > seq_seen ? seq_max - seq_seen : 0); }
	bool lossy() const { return maybe_lost || events_lost() > 0; }
};

// What the aggregator knows beyond one connection, for the record.
struct ClientHistory {
	// Single-use connections from this client to this server within the
	// window, this one included (0: not counted).
	uint32_t single_use_recent = 0;
	// New connections a minute from this client address when this one
	// opened (an estimate over the last 60 s; 0: below the threshold).
	uint32_t client_new_per_minute = 0;
};

struct Connection {
	uint64_t id = 0;
	tdsbpf_flow_key key{};
	uint32_t ifindex = 0;
	bool midstream = false;
	uint64_t first_ns = 0, last_ns = 0;
	uint64_t last_payload_ns = 0;		  // last TDS/TLS/SMP event
	uint64_t first_frame = 0, last_frame = 0; // in the capture read (--read), else 0
	uint64_t last_server_payload_ns = 0;

	Phase phase = Phase::none;
	PhaseList phases;

	TcpState tcp;
	PreloginState prelogin;
	TlsState tls;
	LoginState login;
	AuthState auth;
	Rare<Texts> texts;
	Rare<TlsPosture> tls_posture;
	WorkState work;
	MarsState mars;
	CloseState close;
	TracerState tracer;
	ClientHistory history;
	// The connection whose server routed this client here (ENVCHANGE
	// routing): this one went to the port it named, from the same client
	// address, soon after. Allocated only for such connections.
	struct RedirectOrigin {
		uint64_t id;
		tdsbpf_flow_key key;
	};
	std::shared_ptr<const RedirectOrigin> redirected_from;
	// The local process at each end (index: TDSBPF_DIR_C2S the client,
	// TDSBPF_DIR_S2C the server): the cgroup of the socket its SYN or
	// SYN+ACK left from. Only an end on this host, seen at egress, has one.
	struct Owner {
		uint64_t cgroup_id = 0;
		std::shared_ptr<const SocketOwner> who; // null: not resolved (gone, or no resolver)
	};
	Owner owners[2];
	// The Browser answer that named this server's port to this client
	// shortly before it connected. Allocated only for such connections.
	struct BrowserOrigin {
		std::string instance;
		double lookup_ms = -1; // request to answer; -1: the request was not seen
	};
	std::shared_ptr<const BrowserOrigin> browser;

	// Lifecycle
	bool complete = false;	  // the TCP close is over; lingering
	uint64_t complete_ns = 0; // the time the linger counts from
	// The server answered the SYN with a RST, before any SYN+ACK.
	bool refused_attempt() const
	{
		return close.first_rst_dir == TDSBPF_DIR_S2C && !tcp.synack_ns && tcp.syn_count &&
		       phase_before_close() == Phase::tcp_handshake;
	}
	EndReason end_reason = EndReason::none;
	uint64_t end_ns = 0;
	uint64_t last_snapshot_ns = 0;

	// The phase before the close (or the current one).
	Phase phase_before_close() const { return phase == Phase::close ? close.phase : phase; }
	bool closed() const { return close.fin[0] || close.fin[1] || close.rst[0] || close.rst[1]; }
	bool established() const;
	// Was active (the close began in the active phase, or is active now).
	bool active() const { return phase_before_close() == Phase::active; }
	Encryption encryption() const;
	// SYN to the LOGINACK, or to the ERROR of a failed login; none without both.
	std::optional<uint64_t> login_duration_ns() const;
	// The login's waterfall: SYN to the answer (or the last milestone seen).
	std::vector<LoginStep> login_steps() const;
	// Full or strict encryption: nothing after the TLS handshake is readable.
	bool opaque() const;
};

struct Diagnosis {
	std::string_view code; // a name of the program's own (static)
	const char* severity;  // info, warning, error
	std::string message;
};

// ---- The phase machine (machine_*.cpp) ----
// Apply one event (already ordered) to a connection. ntlm is non-null for
// TDSBPF_EV_NTLM_AUTH.
void apply_event(Connection& c, const tdsbpf_event& ev, const tdsbpf_ntlm_event* ntlm);
// Whether an event is the client opening a new connection on these ports.
bool is_new_syn(const Connection& c, const tdsbpf_event& ev);
// Work out close kind and login outcome once the connection ended.
void conclude(Connection& c, EndReason why, uint64_t end_ns, const AggregatorConfig& cfg);

// ---- Diagnoses (diagnose.cpp) ----
std::vector<Diagnosis> diagnose(const Connection& c, const AggregatorConfig& cfg);
// A client-closed connection that ran a few requests and closed right after
// the last response: the non-pooled pattern of the seeds.
bool single_use(const Connection& c, const AggregatorConfig& cfg);
// Whether a connection pool kept this connection: "pooled" (RESETCONNECTION
// seen, or reused after idle gaps), "not_pooled" (opened for one piece of
// work, closed by the client right after it), or "unknown"; and why.
struct PoolingVerdict {
	const char* verdict;
	std::string evidence;
};
PoolingVerdict pooling_verdict(const Connection& c, const AggregatorConfig& cfg);

// ---- Output (record_json.cpp, record_text.cpp, describe.cpp) ----
struct RecordContext {
	const Connection& c;
	const AggregatorConfig& cfg;
	const std::vector<Diagnosis>& diagnoses;
	bool final;
	std::string_view ifname; // empty: the number is printed
};
// The "diagnoses" member of a record.
void write_diagnoses(JsonWriter& w, const std::vector<Diagnosis>& diagnoses);
// Appends the JSON record (one line, no newline) to out.
void write_record_json(JsonBuffer& out, const RecordContext& r);
// Appends the text view's summary of a connection to out.
void write_record_text(std::string& out, const RecordContext& r);
// How a MARS session ended: fin_both, fin_client, fin_server, reset,
// connection_closed or open.
const char* session_end(const SmpSession& s, const Connection& c, bool final);
// Timeline description of one event ("TDS:Prelogin ...").
std::string describe_event(const tdsbpf_event& ev, const tdsbpf_ntlm_event* ntlm, bool redact);

// ---- Helpers (util.cpp) ----
std::string iso_time(uint64_t ns);
// A Wireshark display filter for one connection's packets.
std::string wireshark_filter(const tdsbpf_flow_key& k);
constexpr size_t kWiresharkFilterChars = 192;
size_t wireshark_filter(char* buf, const tdsbpf_flow_key& k); // into kWiresharkFilterChars bytes
// Writes "2026-12-01T21:46:33.123456Z" into buf (28 bytes at least); returns the length.
size_t iso_time(char* buf, uint64_t ns);
double ms(uint64_t ns);
// printf into buf (cap bytes, cut to fit, always terminated), for the
// conversions the findings' sentences use (%s %u %d %llu %zu %.Nf %%)
// without stdio's machinery; another conversion goes to vsnprintf.
// Returns the length written.
size_t vformat_to(char* buf, size_t cap, const char* f, va_list ap);
size_t format_to(char* buf, size_t cap, const char* f, ...) __attribute__((format(printf, 3, 4)));

} // namespace tdsbpf

#endif
