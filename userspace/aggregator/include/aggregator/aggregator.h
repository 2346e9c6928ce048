// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The connection aggregator: turns the event stream of the packet programs
// (or of the offline reader) into one record per TCP connection.
//
//   AggregatorConfig cfg;           // thresholds, limits, output format
//   NdjsonSink sink(stdout);        // or TextSink
//   Aggregator agg(cfg, sink);
//   agg.on_event(ev, len);          // for every ring-buffer record
//   agg.tick(now_ns);               // now and then: timeouts, snapshots
//   agg.finish(now_ns);             // at exit: the rest as still_open
//   print_summary(stderr, agg.summary(), OutputFormat::text);
//
// All times are Unix-epoch nanoseconds, the clock of tdsbpf_event.ts_ns.
// See docs/connections.md for every field of the output.
//
// Not thread-safe: call everything from the thread that reads the ring
// buffer (a SIGUSR1 handler should only set a flag that this thread sees).
// Sinks are called from within on_event, tick and finish.
#ifndef TDSBPF_AGGREGATOR_AGGREGATOR_H
#define TDSBPF_AGGREGATOR_AGGREGATOR_H

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tdsbpf/events.h>

#include "aggregator/metrics.h"
#include "aggregator/sink.h"

namespace tdsbpf {

enum class OutputFormat { json, text };

// The process behind a local socket, as far as its cgroup path shows it.
struct SocketOwner {
	std::string cgroup_path; // relative to the cgroup2 mount
	std::string systemd_unit;
	std::string container_id;
	std::string container_runtime;
	std::string pod_uid;
};

struct AggregatorConfig {
	// A login (SYN to LOGINACK) slower than this is diagnosed slow_login.
	// The seeds: "This exchange is allocated 1 second".
	uint32_t slow_login_threshold_ms = 1000;
	// A client that waits this long for a login reply and then closes has
	// timed out (the drivers' default Login Timeout is 15 s).
	uint32_t login_timeout_ms = 15000;
	// End connections silent for this long (no event at all, keep-alives
	// included). 0: never.
	uint32_t idle_timeout_s = 0;
	// End connections still in the TCP handshake after this long (SYN
	// unanswered, half-open). Always on, so a SYN flood stays bounded.
	uint32_t handshake_timeout_s = 30;
	// End connections that sent one FIN and then nothing for this long (the
	// other side's FIN never came or was not seen), like FIN_WAIT_2.
	uint32_t fin_timeout_s = 60;
	// Print a snapshot of connections alive longer than this, every this
	// long. 0: never.
	uint32_t emit_interval_s = 0;
	// Tracked connections at most; the oldest idle one is evicted first.
	size_t max_connections = 65536;
	// Hide the NTLM domain, user and workstation names.
	bool redact = false;
	OutputFormat format = OutputFormat::json;
	// Events of one connection may come slightly out of order (ingress and
	// egress on different CPUs): they are held and sorted for this long.
	uint32_t reorder_window_us = 2000;
	// After a connection closed, late events are still taken for this long
	// before the record is printed (final counters, a RST after a FIN).
	uint32_t close_linger_ms = 500;
	// Non-pooled detection. A connection is "single use" when the client
	// closes it with a FIN within non_pooled_close_gap_ms of the last
	// response, having run at most non_pooled_max_requests requests, with no
	// RESETCONNECTION and no keep-alives. non_pooled_min_connections such
	// connections from one client to one server within
	// non_pooled_window_s give the non_pooled_client diagnosis.
	uint32_t non_pooled_close_gap_ms = 1000;
	uint32_t non_pooled_max_requests = 10;
	uint32_t non_pooled_window_s = 60;
	uint32_t non_pooled_min_connections = 3;
	// New connections a minute from one client address (to any server) at
	// which its ephemeral ports are at risk: the connection_churn finding
	// (0: off). The field's rule of thumb is a thousand a minute.
	uint32_t churn_per_minute = 1000;
	// Retransmitted segments at or above this count (either way) give the
	// retransmissions diagnosis.
	uint32_t retrans_threshold = 1;
	// ifindex -> interface name for network.interface.name; empty: the
	// number is printed.
	std::function<std::string(uint32_t ifindex)> ifname;
	// Counted into as connections start, log in, run requests and end
	// (--metrics-addr); none: not counted.
	Metrics* metrics = nullptr;
	// Called once for each login answered with an ENVCHANGE routing, with
	// the port it sends the client to (--follow-redirects logs it).
	std::function<void(uint16_t port)> on_redirect;
	// Who owns a local socket, by the cgroup id its SYN or SYN+ACK left
	// with; called when that packet is taken (the cgroup may be gone by
	// the end). None, or nullptr returned: the record says only the id.
	std::function<std::shared_ptr<const SocketOwner>(uint64_t cgroup_id)> resolve_owner;
	// SQL Server Browser: a request with no answer after this long is
	// reported as unanswered; an answer slower than browser_slow_ms is
	// diagnosed slow.
	uint32_t browser_timeout_ms = 2000;
	uint32_t browser_slow_ms = 500;
	// Called once for each TCP port a Browser answer names (--follow-browser
	// adds it to the traced ports).
	std::function<void(uint16_t port)> on_browser_port;
	// Packet copies (TDSBPF_EV_PACKET, --write-pcap), in time order with
	// the other events: the connection they belong to (0: none tracked).
	std::function<void(uint64_t connection_id, const tdsbpf_packet_event& pkt, std::span<const uint8_t> bytes)>
		on_packet;
	// Reading a capture: the number of the frame whose events on_event is
	// being given (called from on_event); records and timeline lines then
	// name their frames. None: live.
	std::function<uint64_t()> frame_number;
	// Each connection as it ends (after its record), with whether it got a
	// diagnosis of severity warning or error.
	std::function<void(uint64_t connection_id, bool diagnosed)> on_connection_end;
};

// What an output (--output, --events-output) could not deliver; the
// caller fills it in (the aggregator does not know where records go).
struct OutputSummary {
	std::string to;		 // the SPEC
	uint64_t dropped = 0;	 // records (or events) not delivered
	uint64_t reconnects = 0; // connections made again after one was lost
};

// What the exit summary (and SIGUSR1) prints.
// One server endpoint's (or client address's) connections that ended, for
// the summary: what happened to them, counted.
// Counts by name (a login outcome, a diagnosis code, ...); found by a
// string_view without building a string.
using NameCounts = std::map<std::string, uint64_t, std::less<>>;

// Adds one to name's count.
inline void bump(NameCounts& m, std::string_view name)
{
	auto it = m.find(name);
	if (it == m.end())
		it = m.emplace(std::string(name), 0).first;
	it->second++;
}

struct EndpointSummary {
	std::string endpoint; // server "ADDRESS:PORT", client "ADDRESS" ("other" past the cap)
	uint64_t connections = 0;
	NameCounts login_outcome, auth_method, encryption, tls_version, diagnoses;
	uint64_t mars = 0, redirects = 0, resets = 0, retransmissions = 0;
	uint64_t logins_timed = 0;		   // logins with a duration
	double login_p50_ms = 0, login_p99_ms = 0; // of those (3.2 % relative error)
};

struct Summary {
	uint64_t events = 0;		// events taken by on_event
	uint64_t events_submitted = 0;	// put out by the kernel (or the capture walk), from note_submitted
	uint64_t events_malformed = 0;	// too short or unknown kind
	uint64_t events_late = 0;	// for connections already printed
	uint64_t browser_lookups = 0;	// SQL Server Browser exchanges reported
	uint64_t connections_seen = 0;	// created
	uint64_t connections_ended = 0; // printed as final
	uint64_t connections_open = 0;	// tracked now
	uint64_t connections_evicted = 0;
	uint64_t snapshots = 0;
	uint64_t kernel_drops = 0; // from note_drops
	uint64_t user_drops = 0;
	NameCounts by_login_outcome;
	NameCounts by_close_kind;
	NameCounts by_diagnosis;
	// by server endpoint (all), and the clients with the most connections
	std::vector<EndpointSummary> servers, clients;
	std::optional<OutputSummary> output;	    // the records' (--output)
	std::optional<OutputSummary> events_output; // the raw events' (--events-output)
};

// The sink for a format: NdjsonSink (json) or TextSink (text), writing to out.
std::unique_ptr<Sink> make_sink(OutputFormat format, std::FILE* out);

// The exit summary, as one JSON object on a line or as text.
void print_summary(std::FILE* out, const Summary& s, OutputFormat format);
std::string format_summary(const Summary& s, OutputFormat format);

class Aggregator {
public:
	Aggregator(AggregatorConfig cfg, Sink& sink);
	~Aggregator();
	Aggregator(const Aggregator&) = delete;
	Aggregator& operator=(const Aggregator&) = delete;

	// One ring-buffer record; len is its size in bytes (at least
	// sizeof(tdsbpf_ntlm_event) for TDSBPF_EV_NTLM_AUTH).
	void on_event(const tdsbpf_event& ev, size_t len);
	// Idle and handshake timeouts, lingering closes, snapshots. now_ns is on
	// the events' clock: wall-clock time live, the last packet's time when
	// reading a file (events also advance the clock by themselves).
	void tick(uint64_t now_ns);
	// Ends every tracked connection (close kind still_open) and prints it.
	void finish(uint64_t now_ns);
	// Totals of events lost before they reached the aggregator, read at
	// now_ns (on the events' clock; 0: not known). Drops since the last
	// call happened between the two calls: the records of connections open
	// then say that more of their events may be lost.
	void note_drops(uint64_t kernel_drops, uint64_t user_drops, uint64_t now_ns = 0);
	// Events the kernel (or the capture walk) has put out so far: with
	// nothing lost on the way, the events taken once all are read.
	void note_submitted(uint64_t events);
	Summary summary() const;

	struct Impl;

private:
	std::unique_ptr<Impl> impl_;
};

} // namespace tdsbpf

#endif
