// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The connection table: ordering of events, creation and end of
// connections, timeouts, eviction, snapshots and the summary.
//
// Memory is bounded by: max_connections tracked connections (each with at
// most 256 MARS sessions and a latency histogram), a reorder buffer of at
// most kMaxPending events, a list of recently closed keys (kMaxRecent) and
// the non-pooled history (kMaxClients clients).
//
// The hot path (an event for a known connection) allocates nothing: the
// table is a flat hash map keyed by the flow key's bytes, the reorder
// buffer a heap in a vector, the LRU lists are spliced in place, and a
// record is rendered into buffers that are reused.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <list>
#include <string_view>

#include <absl/container/flat_hash_map.h>
#include <spdlog/spdlog.h>

#include "browser.h"
#include "connection.h"
#include "machine.h"

namespace tdsbpf {

namespace {

constexpr size_t kMaxPending = 1 << 16;
constexpr size_t kMaxRecent = 1 << 16;
constexpr uint64_t kRecentTtlNs = 30ull * 1000000000ull;
constexpr size_t kMaxClients = 1 << 14;
constexpr uint64_t kScanEveryNs = 1000000000ull;

// The flow key as a hash-map key: its 40 bytes, padding included (the
// walk zeroes the whole key before filling it).
struct FlowKey {
	tdsbpf_flow_key k;
	bool operator==(const FlowKey& o) const { return flow_key_equal(k, o.k); }
	template <typename H> friend H AbslHashValue(H h, const FlowKey& f)
	{
		return H::combine(std::move(h), flow_key_hash(f.k));
	}
};

// A client address and a server endpoint, for the non-pooled history.
struct ClientServerKey {
	uint8_t client[16];
	uint8_t server[16];
	uint16_t port;
	bool operator==(const ClientServerKey& o) const
	{
		return std::memcmp(client, o.client, 16) == 0 && std::memcmp(server, o.server, 16) == 0 &&
		       port == o.port;
	}
	template <typename H> friend H AbslHashValue(H h, const ClientServerKey& k)
	{
		h = H::combine_contiguous(std::move(h), k.client, 16);
		h = H::combine_contiguous(std::move(h), k.server, 16);
		return H::combine(std::move(h), k.port);
	}
};

struct Pending {
	uint64_t ts;
	tdsbpf_event ev;
	std::unique_ptr<tdsbpf_ntlm_event> ntlm;
	// a larger record whole (Browser datagram, packet copy)
	std::unique_ptr<std::vector<uint8_t>> record;
	uint64_t frame = 0; // the capture's frame (--read)
};

// Events held for the reorder window, in (time, arrival) order: a ring that
// doubles when full (a std::deque of these 216-byte elements allocates a
// block every second one). They mostly arrive in order: appended at the
// back, taken from the front; one from another CPU that is late goes in
// after every event of its time or earlier.
class PendingQueue {
public:
	bool empty() const { return n_ == 0; }
	size_t size() const { return n_; }
	Pending& front() { return at(0); }
	const Pending& back() const { return buf_[(head_ + n_ - 1) & (buf_.size() - 1)]; }
	void push(uint64_t ts, const tdsbpf_event& ev, std::unique_ptr<tdsbpf_ntlm_event> ntlm,
		  std::unique_ptr<std::vector<uint8_t>> record, uint64_t frame)
	{
		if (n_ == buf_.size())
			grow();
		size_t i = n_;
		if (n_ && back().ts > ts) {
			// the first one later than ts, and the later ones one step back
			size_t lo = 0, hi = n_;
			while (lo < hi) {
				size_t mid = (lo + hi) / 2;
				if (at(mid).ts <= ts)
					lo = mid + 1;
				else
					hi = mid;
			}
			i = lo;
			for (size_t j = n_; j > i; j--)
				at(j) = std::move(at(j - 1));
		}
		Pending& p = at(i);
		p.ts = ts;
		p.ev = ev;
		p.ntlm = std::move(ntlm);
		p.record = std::move(record);
		p.frame = frame;
		n_++;
	}
	void pop_front()
	{
		Pending& p = at(0);
		p.ntlm.reset();
		p.record.reset();
		head_ = (head_ + 1) & (buf_.size() - 1);
		n_--;
	}

private:
	Pending& at(size_t i) { return buf_[(head_ + i) & (buf_.size() - 1)]; }
	void grow()
	{
		std::vector<Pending> bigger(std::max<size_t>(64, buf_.size() * 2));
		for (size_t i = 0; i < n_; i++)
			bigger[i] = std::move(at(i));
		buf_ = std::move(bigger);
		head_ = 0;
	}
	std::vector<Pending> buf_; // a power of two long
	size_t head_ = 0, n_ = 0;
};


} // namespace

struct Aggregator::Impl {
	AggregatorConfig cfg;
	Sink& sink;
	Summary sum;
	uint64_t next_id = 1;
	uint64_t high_water = 0; // latest event time
	// The latest reading of the ring buffer's drop count that had grown:
	// those drops happened at most this late (the reader may have been
	// stalled since the reading before).
	uint64_t last_drops_ns = 0;

	// Whether events of c may have been dropped after the last one seen
	// (which no gap in its numbers can show): drops since it began, and
	// its close not seen whole.
	bool maybe_lost(const Connection& c) const
	{
		return !c.complete && last_drops_ns && last_drops_ns >= c.first_ns;
	}
	uint64_t last_scan = 0;

	PendingQueue pending; // held for the reorder window

	struct Entry {
		std::unique_ptr<Connection> conn;
		bool established = false;
		std::list<Connection*>::iterator lru;
		bool lingering = false;
		bool fin_watched = false;
		bool login_counted = false; // in the metrics
		bool redirect_noted = false;
		uint32_t metrics_server = 0;
	};
	// Logins answered with an ENVCHANGE routing, waiting for their client's
	// connection to the port named (bounded: the oldest go first).
	struct PendingRedirect {
		tdsbpf_flow_key from;
		uint64_t id;
		uint64_t ts;
		uint16_t port;
	};
	static constexpr size_t kMaxRedirects = 1024;
	static constexpr uint64_t kRedirectWindowNs = 30'000'000'000ull;
	std::deque<PendingRedirect> redirects;
	absl::flat_hash_map<FlowKey, Entry> table;
	// Least recently active first; half-open connections in their own list so
	// that a SYN flood evicts its own kind before idle established ones.
	std::list<Connection*> lru_halfopen, lru_established;
	struct Linger {
		uint64_t deadline;
		FlowKey key;
		uint64_t id;
	};
	std::deque<Linger> linger;
	std::deque<Linger> half_closed;		       // one FIN seen: ended after fin_timeout_s of silence
	absl::flat_hash_map<FlowKey, uint64_t> recent; // key -> close time
	std::deque<std::pair<uint64_t, FlowKey>> recent_order;
	absl::flat_hash_map<ClientServerKey, std::deque<uint64_t>> single_use_times; // end times
	std::deque<ClientServerKey> single_use_order;
	// New connections per client address over the last 60 s, by second.
	struct ChurnCount {
		uint64_t second = 0; // the newest second counted
		uint32_t total = 0;  // over the 60 s ending with it
		uint16_t per_second[60] = {};
	};
	absl::flat_hash_map<ClientServerKey, ChurnCount> churn; // server part zero: per client address
	std::deque<ClientServerKey> churn_order;
	// Reused for every record.
	JsonBuffer json_buf;
	std::string text_buf;
	absl::flat_hash_map<uint32_t, std::string> ifnames; // ifindex -> name, refreshed every minute
	uint64_t ifnames_at = 0;

	BrowserTracker browser;

	// The summary by server endpoint and by client address, of the
	// connections that ended. Client addresses past kMaxSummaryClients count as
	// "other" (a flood of addresses cannot grow this without bound).
	struct EndpointStats {
		EndpointSummary s;
		LatencyHistogram login;
	};
	static constexpr size_t kMaxSummaryClients = 4096;
	absl::flat_hash_map<std::string, EndpointStats> by_server, by_client;

	void count_endpoint(const Connection& c, const std::vector<Diagnosis>& diags)
	{
		char sbuf[kAddrChars], cbuf[kAddrChars];
		std::string_view server(sbuf, endpoint_chars(sbuf, c.key.server_addr, c.key.family, c.key.server_port));
		std::string_view client(cbuf, addr_chars(cbuf, c.key.client_addr, c.key.family));
		auto stats = [](absl::flat_hash_map<std::string, EndpointStats>& m,
				std::string_view k) -> EndpointStats& {
			auto it = m.find(absl::string_view(k.data(), k.size()));
			return it != m.end() ? it->second : m[std::string(k)];
		};
		EndpointStats& by_s = stats(by_server, server);
		if (by_client.size() >= kMaxSummaryClients &&
		    !by_client.contains(absl::string_view(client.data(), client.size())))
			client = "other";
		EndpointStats& by_c = stats(by_client, client);
		auto d = c.login_duration_ns();
		for (EndpointStats* e : {&by_s, &by_c}) {
			EndpointSummary& s = e->s;
			s.connections++;
			bump(s.login_outcome, login_outcome_name(c.login.outcome));
			if (c.login.outcome == LoginOutcome::success || c.login.outcome == LoginOutcome::failed)
				bump(s.auth_method, auth_method_name(c.auth.method));
			bump(s.encryption, encryption_name(c.encryption()));
			if (c.tls.server_version)
				bump(s.tls_version, tls_version_name(c.tls.server_version));
			if (!c.mars.sessions().empty())
				s.mars++;
			if (c.login.routing_seen)
				s.redirects++;
			if (c.close.kind == CloseKind::reset)
				s.resets++;
			s.retransmissions += c.tcp.retrans(0) + c.tcp.retrans(1);
			for (const auto& dg : diags)
				bump(s.diagnoses, dg.code);
			if (d)
				e->login.add(*d);
		}
	}

	static std::vector<EndpointSummary> endpoint_list(const absl::flat_hash_map<std::string, EndpointStats>& m,
							  size_t top)
	{
		std::vector<EndpointSummary> v;
		v.reserve(m.size());
		for (const auto& [k, e] : m) {
			EndpointSummary s = e.s;
			s.endpoint = k;
			s.logins_timed = e.login.count();
			if (s.logins_timed) {
				// to the microsecond, as the records' times
				s.login_p50_ms = std::round(static_cast<double>(e.login.percentile_ns(50)) / 1e3) / 1e3;
				s.login_p99_ms = std::round(static_cast<double>(e.login.percentile_ns(99)) / 1e3) / 1e3;
			}
			v.push_back(std::move(s));
		}
		std::sort(v.begin(), v.end(), [](const EndpointSummary& a, const EndpointSummary& b) {
			return a.connections != b.connections ? a.connections > b.connections : a.endpoint < b.endpoint;
		});
		if (v.size() > top)
			v.resize(top);
		return v;
	}

	Impl(AggregatorConfig c, Sink& s)
	    : cfg(std::move(c)), sink(s),
	      browser(cfg, sink, sum, [this](uint32_t ifindex, uint64_t now) { return ifname(ifindex, now); })
	{
	}

	// A larger record: a Browser datagram, or a packet copy handed on with
	// the id of the connection it belongs to.
	void process_record(const std::vector<uint8_t>& rec)
	{
		const auto& ev = *reinterpret_cast<const tdsbpf_event*>(rec.data());
		if (ev.kind == TDSBPF_EV_BROWSER) {
			browser.on_datagram(*reinterpret_cast<const tdsbpf_browser_event*>(rec.data()));
			return;
		}
		if (ev.kind == TDSBPF_EV_EXCERPT) {
			// the text of the message whose event came just before
			tdsbpf_excerpt_event x{};
			std::memcpy(&x, rec.data(), std::min(rec.size(), sizeof(x)));
			auto it = table.find(FlowKey{ev.key});
			if (it != table.end())
				machine::on_excerpt(*it->second.conn, x);
			return;
		}
		const auto& pk = *reinterpret_cast<const tdsbpf_packet_event*>(rec.data());
		auto it = table.find(FlowKey{ev.key});
		uint64_t id = it != table.end() ? it->second.conn->id : 0;
		if (cfg.on_packet)
			cfg.on_packet(id, pk, {rec.data() + sizeof(pk), pk.cap_len});
	}

	std::list<Connection*>& list_of(const Entry& e) { return e.established ? lru_established : lru_halfopen; }

	void push(const tdsbpf_event& ev, std::unique_ptr<tdsbpf_ntlm_event> ntlm,
		  std::unique_ptr<std::vector<uint8_t>> record = nullptr)
	{
		uint64_t frame = cfg.frame_number ? cfg.frame_number() : 0;
		pending.push(ev.ts_ns, ev, std::move(ntlm), std::move(record), frame);
		high_water = std::max<uint64_t>(high_water, ev.ts_ns);
		uint64_t window = static_cast<uint64_t>(cfg.reorder_window_us) * 1000ull;
		release(high_water > window ? high_water - window : 0);
		while (pending.size() > kMaxPending)
			release_one();
		advance(high_water > window ? high_water - window : 0);
	}

	void release(uint64_t upto)
	{
		while (!pending.empty() && pending.front().ts <= upto)
			release_one();
	}

	void release_one()
	{
		const Pending& p = pending.front(); // processing never adds to pending
		if (p.record)
			process_record(*p.record);
		else
			process(p.ev, p.ntlm.get(), p.frame);
		pending.pop_front();
	}

	// Events that belong to the end of a TCP connection: after its record is
	// printed they are late (a retransmitted FIN, the final counters), not the
	// start of a new connection.
	static bool closing_kind(const tdsbpf_event& ev)
	{
		switch (ev.kind) {
		case TDSBPF_EV_TCP_SYNACK:
		case TDSBPF_EV_TCP_HANDSHAKE_ACK:
		case TDSBPF_EV_TCP_FIN:
		case TDSBPF_EV_TCP_RST:
		case TDSBPF_EV_TCP_CLOSE_ACK:
		case TDSBPF_EV_TCP_KEEPALIVE:
		case TDSBPF_EV_TCP_KEEPALIVE_ACK:
		case TDSBPF_EV_TCP_RETRANS:
		case TDSBPF_EV_TCP_ZERO_WINDOW:
		case TDSBPF_EV_FLOW_STATS:
		case TDSBPF_EV_RESYNC:
		case TDSBPF_EV_SMP: return true;
		default: return false;
		}
	}

	static bool creates_connection(const tdsbpf_event& ev)
	{
		switch (ev.kind) {
		case TDSBPF_EV_TCP_CLOSE_ACK:
		case TDSBPF_EV_TCP_KEEPALIVE_ACK:
		case TDSBPF_EV_TCP_RETRANS:
		case TDSBPF_EV_RESYNC:
		case TDSBPF_EV_WORK: return false;
		case TDSBPF_EV_FLOW_STATS: return !ev.u.stats.final;
		default: return true;
		}
	}

	void process(const tdsbpf_event& ev, const tdsbpf_ntlm_event* ntlm, uint64_t frame = 0)
	{
		FlowKey key{ev.key};
		auto it = table.find(key);
		if (it != table.end() && is_new_syn(*it->second.conn, ev)) {
			Connection& old = *it->second.conn;
			bool closed = old.close.fin[0] || old.close.fin[1] || old.close.rst[0] || old.close.rst[1] ||
				      old.complete;
			end(it, closed ? EndReason::closed : EndReason::replaced, ev.ts_ns);
			recent.erase(key);
			it = table.end();
		}
		if (it == table.end()) {
			auto rit = recent.find(key);
			if (rit != recent.end() && closing_kind(ev)) {
				sum.events_late++;
				return;
			}
			if (!creates_connection(ev)) {
				sum.events_late++;
				return;
			}
			if (table.size() >= cfg.max_connections && !evict_one(ev.ts_ns))
				return;
			Entry e;
			e.conn = std::make_unique<Connection>();
			e.conn->id = next_id++;
			e.conn->key = ev.key;
			sum.connections_seen++;
			if (cfg.metrics) {
				e.metrics_server = cfg.metrics->server(
					endpoint_string(ev.key.server_addr, ev.key.family, ev.key.server_port));
				cfg.metrics->connection_started(e.metrics_server);
			}
			if (!redirects.empty())
				link_redirect(*e.conn, ev.ts_ns);
			e.conn->browser = browser.origin_for(ev.key, ev.ts_ns);
			note_new_connection(*e.conn, ev.ts_ns);
			it = table.emplace(key, std::move(e)).first;
			lru_halfopen.push_back(it->second.conn.get());
			it->second.lru = std::prev(lru_halfopen.end());
		}
		Entry& e = it->second;
		Connection& c = *e.conn;
		if (frame) {
			if (!c.first_frame)
				c.first_frame = frame;
			c.last_frame = std::max(c.last_frame, frame);
		}
		if (cfg.metrics) {
			uint64_t answered = c.work.latency.count(), waited = c.work.latency.sum_ns();
			apply_event(c, ev, ntlm);
			count_live(e, answered, waited);
		} else {
			apply_event(c, ev, ntlm);
		}
		if (c.login.routing_seen && !e.redirect_noted)
			note_redirect(e, ev.ts_ns);
		if ((ev.kind == TDSBPF_EV_TCP_SYN || ev.kind == TDSBPF_EV_TCP_SYNACK) && ev.u.tcp.cgroup_id &&
		    c.owners[ev.dir & 1].cgroup_id != ev.u.tcp.cgroup_id) {
			Connection::Owner& o = c.owners[ev.dir & 1];
			o.cgroup_id = ev.u.tcp.cgroup_id;
			o.who = cfg.resolve_owner ? cfg.resolve_owner(o.cgroup_id) : nullptr;
		}

		// Most recently active last; splice keeps the node (no allocation).
		bool established = c.tcp.synack_ns || c.tcp.hs_ack_ns || c.phase != Phase::tcp_handshake;
		std::list<Connection*>& from = list_of(e);
		e.established = established;
		list_of(e).splice(list_of(e).end(), from, e.lru);

		// the timeline shows packets; the kernel's counters (periodic and
		// final) are in the connection's block, not lines of their own
		if (sink.wants_lines() && ev.kind != TDSBPF_EV_FLOW_STATS) {
			TimelineLine l;
			l.connection_id = c.id;
			l.frame = frame;
			l.ts_ns = ev.ts_ns;
			l.offset_s = static_cast<double>(ev.ts_ns >= c.first_ns ? ev.ts_ns - c.first_ns : 0) / 1e9;
			l.from_client = ev.dir == TDSBPF_DIR_C2S;
			std::string cl = endpoint_string(c.key.client_addr, c.key.family, c.key.client_port);
			std::string sv = endpoint_string(c.key.server_addr, c.key.family, c.key.server_port);
			l.connection = cl + " -> " + sv;
			l.source = l.from_client ? cl : sv;
			l.destination = l.from_client ? sv : cl;
			l.description = describe_event(ev, ntlm, cfg.redact);
			sink.on_line(l);
		}
		if ((c.close.fin[0] || c.close.fin[1]) && !c.complete && !e.fin_watched) {
			e.fin_watched = true;
			half_closed.push_back({c.last_ns + fin_timeout_ns(), key, c.id});
		}
		if (c.complete && !e.lingering) {
			e.lingering = true;
			linger.push_back(
				{c.complete_ns + static_cast<uint64_t>(cfg.close_linger_ms) * 1000000ull, key, c.id});
		}
	}

	// A login answered with a routing: its client's next connection to the
	// port named is linked to it (and the port followed, if asked).
	void note_redirect(Entry& e, uint64_t ts)
	{
		const Connection& c = *e.conn;
		e.redirect_noted = true;
		if (!c.login.routing_port)
			return;
		if (redirects.size() >= kMaxRedirects)
			redirects.pop_front();
		redirects.push_back({c.key, c.id, ts, c.login.routing_port});
		if (cfg.on_redirect)
			cfg.on_redirect(c.login.routing_port);
	}

	// A new connection from the client of a recent routing, to the port it
	// named: routed there by that connection's server.
	void link_redirect(Connection& c, uint64_t ts)
	{
		while (!redirects.empty() && redirects.front().ts + kRedirectWindowNs < ts)
			redirects.pop_front();
		for (auto r = redirects.begin(); r != redirects.end(); ++r) {
			if (r->port != c.key.server_port || r->from.family != c.key.family ||
			    std::memcmp(r->from.client_addr, c.key.client_addr, sizeof(c.key.client_addr)) != 0)
				continue;
			// routed to the same port: another server (a readable
			// secondary), not the one that routed
			if (r->port == r->from.server_port &&
			    std::memcmp(r->from.server_addr, c.key.server_addr, sizeof(c.key.server_addr)) == 0)
				continue;
			c.redirected_from = std::make_shared<const Connection::RedirectOrigin>(
				Connection::RedirectOrigin{r->id, r->from});
			redirects.erase(r);
			return;
		}
	}

	// Metrics of what the last event did: a login answered, requests
	// answered (from the latency histogram's count and sum before it).
	void count_live(Entry& e, uint64_t answered, uint64_t waited)
	{
		const Connection& c = *e.conn;
		// answered in clear: a LOGINACK, or an error without one
		if (!e.login_counted && (c.login.ack_seen || c.login.error_seen))
			count_login(e, c.login.ack_seen ? LoginOutcome::success : LoginOutcome::failed);
		uint64_t n = c.work.latency.count() - answered;
		if (n)
			cfg.metrics->request(e.metrics_server, (c.work.latency.sum_ns() - waited) / n, n);
	}

	// A login's metrics, once: when it is answered in clear, else when the
	// connection ends (encrypted logins, logins never answered).
	void count_login(Entry& e, LoginOutcome outcome)
	{
		const Connection& c = *e.conn;
		e.login_counted = true;
		// no login to count: the handshake never ended, or it was before
		// the tracer, or it is still going on at exit
		if (outcome == LoginOutcome::not_started || outcome == LoginOutcome::not_seen ||
		    outcome == LoginOutcome::in_progress || outcome == LoginOutcome::not_tds)
			return;
		std::optional<uint64_t> d = c.login_duration_ns();
		std::string tls = c.tls.server_version ? tls_version_name(c.tls.server_version) : std::string();
		cfg.metrics->login(e.metrics_server, login_outcome_name(outcome), auth_method_name(c.auth.method),
				   encryption_name(c.encryption()), tls, d ? &*d : nullptr);
	}

	uint64_t fin_timeout_ns() const { return static_cast<uint64_t>(cfg.fin_timeout_s) * 1000000000ull; }

	bool evict_one(uint64_t now)
	{
		std::list<Connection*>& l = lru_halfopen.empty() ? lru_established : lru_halfopen;
		if (l.empty())
			return false;
		auto it = table.find(FlowKey{l.front()->key});
		if (it == table.end()) {
			l.pop_front();
			return true;
		}
		sum.connections_evicted++;
		bool half_open = !it->second.established;
		if (sum.connections_evicted == 1)
			spdlog::warn(
				"more than {} connections: evicting the least recently active ones (--max-connections)",
				cfg.max_connections);
		end(it, EndReason::evicted, now, /*print=*/!half_open);
		return true;
	}

	void end(absl::flat_hash_map<FlowKey, Entry>::iterator it, EndReason why, uint64_t now, bool print = true)
	{
		Connection& c = *it->second.conn;
		c.tracer.maybe_lost = maybe_lost(c) || c.tracer.counts_lost;
		conclude(c, why, now, cfg);
		if (why == EndReason::evicted)
			c.close.kind = CloseKind::evicted;
		if (single_use(c, cfg))
			note_single_use(c);
		std::vector<Diagnosis> diags = diagnose(c, cfg);
		FlowKey key = it->first;
		sum.connections_ended++;
		bump(sum.by_login_outcome, login_outcome_name(c.login.outcome));
		bump(sum.by_close_kind, close_kind_name(c.close.kind));
		for (const auto& d : diags)
			bump(sum.by_diagnosis, d.code);
		count_endpoint(c, diags);
		if (cfg.metrics) {
			Entry& e = it->second;
			if (!e.login_counted)
				count_login(e, c.login.outcome);
			cfg.metrics->connection_ended(e.metrics_server, login_outcome_name(c.login.outcome),
						      close_kind_name(c.close.kind), auth_method_name(c.auth.method));
			for (const auto& d : diags)
				cfg.metrics->diagnosis(e.metrics_server, d.code, d.severity);
		}
		if (cfg.metrics && cfg.metrics->owner_labels()) {
			for (int side = 0; side < 2; side++) {
				const Connection::Owner& o = c.owners[side];
				if (!o.cgroup_id)
					continue;
				const SocketOwner* who = o.who.get();
				std::string_view label =
					!who			     ? std::string_view{}
					: !who->pod_uid.empty()	     ? std::string_view(who->pod_uid)
					: !who->container_id.empty() ? std::string_view(who->container_id)
					: !who->systemd_unit.empty() ? std::string_view(who->systemd_unit)
								     : std::string_view(who->cgroup_path);
				cfg.metrics->owner_connection(it->second.metrics_server,
							      side == TDSBPF_DIR_C2S ? "client" : "server", label);
			}
		}
		if (print)
			emit(c, diags, true);
		if (cfg.on_connection_end) {
			bool diagnosed = false;
			for (const auto& d : diags)
				diagnosed |= std::string_view(d.severity) != "info";
			cfg.on_connection_end(c.id, diagnosed);
		}
		bool closed = c.closed() || c.complete;
		uint64_t end_ns = c.end_ns;
		list_of(it->second).erase(it->second.lru);
		table.erase(it); // c is gone from here on
		if (closed)
			remember_closed(key, end_ns);
	}

	void remember_closed(const FlowKey& key, uint64_t ts)
	{
		recent[key] = ts;
		recent_order.emplace_back(ts, key);
		while (recent_order.size() > kMaxRecent) {
			auto& [t, k] = recent_order.front();
			auto r = recent.find(k);
			if (r != recent.end() && r->second == t)
				recent.erase(r);
			recent_order.pop_front();
		}
	}

	void expire_recent(uint64_t now)
	{
		while (!recent_order.empty() && recent_order.front().first + kRecentTtlNs <= now) {
			auto& [t, k] = recent_order.front();
			auto r = recent.find(k);
			if (r != recent.end() && r->second == t)
				recent.erase(r);
			recent_order.pop_front();
		}
	}

	// Per client and server: the times of single-use connections; enough of
	// them within the window make the non_pooled_client diagnosis.
	// Counts a new connection for its client address; when the rate over the
	// last minute reaches cfg.churn_per_minute, the connection carries it.
	void note_new_connection(Connection& c, uint64_t ts)
	{
		if (!cfg.churn_per_minute)
			return;
		ClientServerKey k{};
		std::memcpy(k.client, c.key.client_addr, 16);
		auto [it, inserted] = churn.try_emplace(k);
		if (inserted) {
			churn_order.push_back(k);
			while (churn_order.size() > kMaxClients) {
				churn.erase(churn_order.front());
				churn_order.pop_front();
			}
			it = churn.find(k);
		}
		ChurnCount& n = it->second;
		uint64_t second = ts / 1000000000ull;
		if (!inserted && second + 60 <= n.second)
			return; // older than the window (a late event)
		if (inserted) {
			n.second = second;
		} else if (second > n.second) {
			// the seconds that left the window
			for (uint64_t s = n.second + 1; s <= second && s <= n.second + 60; s++) {
				n.total -= n.per_second[s % 60];
				n.per_second[s % 60] = 0;
			}
			n.second = second;
		}
		if (n.per_second[second % 60] < UINT16_MAX) {
			n.per_second[second % 60]++;
			n.total++;
		}
		if (n.total >= cfg.churn_per_minute)
			c.history.client_new_per_minute = n.total;
	}

	void note_single_use(Connection& c)
	{
		ClientServerKey k{};
		std::memcpy(k.client, c.key.client_addr, 16);
		std::memcpy(k.server, c.key.server_addr, 16);
		k.port = c.key.server_port;
		auto [it, inserted] = single_use_times.try_emplace(k);
		if (inserted) {
			single_use_order.push_back(k);
			while (single_use_order.size() > kMaxClients) {
				single_use_times.erase(single_use_order.front());
				single_use_order.pop_front();
			}
			it = single_use_times.find(k); // the erase above may have moved it
		}
		std::deque<uint64_t>& times = it->second;
		uint64_t window = static_cast<uint64_t>(cfg.non_pooled_window_s) * 1000000000ull;
		uint64_t now = c.end_ns;
		while (!times.empty() && times.front() + window < now)
			times.pop_front();
		times.push_back(now);
		while (times.size() > cfg.non_pooled_min_connections + 1)
			times.pop_front();
		if (cfg.non_pooled_min_connections && times.size() >= cfg.non_pooled_min_connections)
			c.history.single_use_recent = static_cast<uint32_t>(times.size());
	}

	std::string_view ifname(uint32_t ifindex, uint64_t now)
	{
		if (!cfg.ifname || !ifindex)
			return {};
		if (now >= ifnames_at + 60ull * 1000000000ull) {
			ifnames.clear(); // interfaces come, go and get renamed
			ifnames_at = now;
		}
		auto [it, inserted] = ifnames.try_emplace(ifindex);
		if (inserted)
			it->second = cfg.ifname(ifindex);
		return it->second;
	}

	// A record for the sink: rendered on demand into reused buffers.
	class Record final : public ConnectionRecord {
	public:
		Record(Impl& m, const RecordContext& r) : m_(m), r_(r) {}
		uint64_t connection_id() const override { return r_.c.id; }
		bool final() const override { return r_.final; }
		std::string_view json() const override
		{
			if (!json_) {
				m_.json_buf.clear();
				write_record_json(m_.json_buf, r_);
				json_ = true;
			}
			return m_.json_buf.view();
		}
		std::string_view text() const override
		{
			if (!text_) {
				m_.text_buf.clear();
				write_record_text(m_.text_buf, r_);
				text_ = true;
			}
			return m_.text_buf;
		}

	private:
		Impl& m_;
		const RecordContext& r_;
		mutable bool json_ = false, text_ = false;
	};

	void emit(const Connection& c, const std::vector<Diagnosis>& diags, bool final)
	{
		RecordContext ctx{c, cfg, diags, final, ifname(c.ifindex, c.last_ns)};
		Record r(*this, ctx);
		sink.on_connection(r);
	}

	void advance(uint64_t now)
	{
		browser.advance(now);
		while (!linger.empty() && linger.front().deadline <= now) {
			Linger l = linger.front();
			linger.pop_front();
			auto it = table.find(l.key);
			if (it != table.end() && it->second.conn->id == l.id)
				end(it, EndReason::closed, now);
		}
		if (now < last_scan + kScanEveryNs)
			return;
		last_scan = now;
		expire_recent(now);
		// One FIN and then silence.
		while (cfg.fin_timeout_s && !half_closed.empty() && half_closed.front().deadline <= now) {
			Linger h = half_closed.front();
			half_closed.pop_front();
			auto it = table.find(h.key);
			if (it == table.end() || it->second.conn->id != h.id || it->second.lingering)
				continue;
			Connection& c = *it->second.conn;
			if (c.last_ns + fin_timeout_ns() <= now)
				end(it, EndReason::closed, now);
			else
				half_closed.push_back({c.last_ns + fin_timeout_ns(), h.key, h.id});
		}
		// Half-open: ended after handshake_timeout_s.
		uint64_t hs = static_cast<uint64_t>(cfg.handshake_timeout_s) * 1000000000ull;
		while (hs && !lru_halfopen.empty()) {
			auto it = table.find(FlowKey{lru_halfopen.front()->key});
			if (it == table.end()) {
				lru_halfopen.pop_front();
				continue;
			}
			if (it->second.conn->last_ns + hs > now)
				break;
			end(it, EndReason::handshake_timeout, now);
		}
		uint64_t idle = static_cast<uint64_t>(cfg.idle_timeout_s) * 1000000000ull;
		while (idle && !lru_established.empty()) {
			auto it = table.find(FlowKey{lru_established.front()->key});
			if (it == table.end()) {
				lru_established.pop_front();
				continue;
			}
			if (it->second.conn->last_ns + idle > now)
				break;
			end(it, EndReason::idle_timeout, now);
		}
		if (cfg.emit_interval_s) {
			uint64_t every = static_cast<uint64_t>(cfg.emit_interval_s) * 1000000000ull;
			for (auto& [k, e] : table) {
				(void)k;
				Connection& c = *e.conn;
				uint64_t since = c.last_snapshot_ns ? c.last_snapshot_ns : c.first_ns;
				if (e.lingering || now < since + every)
					continue;
				c.last_snapshot_ns = now;
				Connection copy = c;
				copy.tracer.maybe_lost = maybe_lost(copy) || copy.tracer.counts_lost;
				conclude(copy, EndReason::finish, now, cfg);
				copy.close.kind = CloseKind::still_open;
				emit(copy, diagnose(copy, cfg), false);
				sum.snapshots++;
			}
		}
	}
};

Aggregator::Aggregator(AggregatorConfig cfg, Sink& sink) : impl_(std::make_unique<Impl>(std::move(cfg), sink))
{
	if (impl_->cfg.max_connections == 0)
		impl_->cfg.max_connections = 1;
}

Aggregator::~Aggregator() = default;

void Aggregator::on_event(const tdsbpf_event& ev, size_t len)
{
	Impl& m = *impl_;
	if (len < sizeof(tdsbpf_event) || ev.kind == 0 || ev.kind >= TDSBPF_EV_KIND_MAX) {
		if (m.sum.events_malformed++ == 0)
			spdlog::debug("dropping a malformed event record ({} bytes, kind {})", len,
				      len >= sizeof(tdsbpf_event) ? ev.kind : 0);
		return;
	}
	// excerpts are side records (text for the records), not events
	if (ev.kind != TDSBPF_EV_EXCERPT)
		m.sum.events++;
	std::unique_ptr<tdsbpf_ntlm_event> ntlm;
	if (ev.kind == TDSBPF_EV_NTLM_AUTH) {
		if (len < sizeof(tdsbpf_ntlm_event)) {
			m.sum.events_malformed++;
			return;
		}
		ntlm = std::make_unique<tdsbpf_ntlm_event>();
		std::memcpy(ntlm.get(), &ev, sizeof(tdsbpf_ntlm_event));
	} else if (ev.kind == TDSBPF_EV_BROWSER || ev.kind == TDSBPF_EV_PACKET || ev.kind == TDSBPF_EV_EXCERPT) {
		std::size_t want = sizeof(tdsbpf_browser_event);
		if (ev.kind == TDSBPF_EV_EXCERPT) {
			const auto* x = reinterpret_cast<const tdsbpf_excerpt_event*>(&ev);
			want = len >= TDSBPF_EXCERPT_HDR && x->len <= TDSBPF_EXCERPT_MAX ? TDSBPF_EXCERPT_HDR + x->len
											 : SIZE_MAX;
		} else if (ev.kind == TDSBPF_EV_PACKET) {
			const auto* pk = reinterpret_cast<const tdsbpf_packet_event*>(&ev);
			want = len >= sizeof(tdsbpf_packet_event) && pk->cap_len <= TDSBPF_SNAPLEN_MAX
				       ? sizeof(tdsbpf_packet_event) + pk->cap_len
				       : SIZE_MAX;
		}
		if (len < want) {
			m.sum.events_malformed++;
			return;
		}
		// packet copies nobody takes are not held
		if (ev.kind == TDSBPF_EV_PACKET && !m.cfg.on_packet)
			return;
		const auto* bytes = reinterpret_cast<const uint8_t*>(&ev);
		m.push(ev, nullptr, std::make_unique<std::vector<uint8_t>>(bytes, bytes + want));
		return;
	}
	m.push(ev, std::move(ntlm));
}

void Aggregator::tick(uint64_t now_ns)
{
	Impl& m = *impl_;
	uint64_t window = static_cast<uint64_t>(m.cfg.reorder_window_us) * 1000ull;
	uint64_t upto = now_ns > window ? now_ns - window : 0;
	m.release(upto);
	m.advance(std::max(upto, m.high_water > window ? m.high_water - window : 0));
	m.sink.flush();
}

void Aggregator::finish(uint64_t now_ns)
{
	Impl& m = *impl_;
	while (!m.pending.empty())
		m.release_one();
	uint64_t now = std::max(now_ns, m.high_water);
	// Oldest first, so the output reads in the order connections began.
	std::vector<std::pair<uint64_t, FlowKey>> order;
	for (auto& [k, e] : m.table)
		order.emplace_back(e.conn->id, k);
	std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
	for (auto& [id, k] : order) {
		auto it = m.table.find(k);
		if (it != m.table.end())
			m.end(it, it->second.lingering ? EndReason::closed : EndReason::finish, now);
	}
	m.browser.finish(now);
	m.sink.flush();
}

void Aggregator::note_drops(uint64_t kernel_drops, uint64_t user_drops, uint64_t now_ns)
{
	Impl& m = *impl_;
	if (kernel_drops > m.sum.kernel_drops)
		m.last_drops_ns = now_ns ? now_ns : UINT64_MAX;
	m.sum.kernel_drops = kernel_drops;
	m.sum.user_drops = user_drops;
}

void Aggregator::note_submitted(uint64_t events)
{
	impl_->sum.events_submitted = events;
}

Summary Aggregator::summary() const
{
	Summary s = impl_->sum;
	s.connections_open = impl_->table.size();
	s.servers = Impl::endpoint_list(impl_->by_server, SIZE_MAX);
	s.clients = Impl::endpoint_list(impl_->by_client, 20);
	return s;
}

} // namespace tdsbpf
