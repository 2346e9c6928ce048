// The connection table: ordering of events, creation and end of
// connections, timeouts, eviction, snapshots and the summary.
//
// Memory is bounded by: max_connections tracked connections (each with at
// most 256 MARS sessions and 512 latency samples), a reorder buffer of at
// most kMaxPending events, a list of recently closed keys (kMaxRecent) and
// the non-pooled history (kMaxClients clients).
#include <algorithm>
#include <cstring>
#include <deque>
#include <list>
#include <queue>
#include <string_view>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "connection.h"

namespace tdsbpf {

namespace {

constexpr size_t kMaxPending = 1 << 16;
constexpr size_t kMaxRecent = 1 << 16;
constexpr uint64_t kRecentTtlNs = 30ull * 1000000000ull;
constexpr size_t kMaxClients = 1 << 14;
constexpr uint64_t kScanEveryNs = 1000000000ull;

struct KeyHash {
	size_t operator()(const std::string& s) const { return std::hash<std::string_view>{}(s); }
};

std::string key_bytes(const tdsbpf_flow_key& k)
{
	return std::string(reinterpret_cast<const char*>(&k), sizeof(k));
}

struct Pending {
	uint64_t ts;
	uint64_t order;
	tdsbpf_event ev;
	std::shared_ptr<tdsbpf_ntlm_event> ntlm;
};

struct PendingLater {
	bool operator()(const Pending& a, const Pending& b) const
	{
		return a.ts != b.ts ? a.ts > b.ts : a.order > b.order;
	}
};

} // namespace

struct Aggregator::Impl {
	AggregatorConfig cfg;
	Sink& sink;
	Summary sum;
	uint64_t next_id = 1;
	uint64_t order = 0;
	uint64_t high_water = 0; // latest event time
	uint64_t last_scan = 0;

	std::priority_queue<Pending, std::vector<Pending>, PendingLater> pending;

	struct Entry {
		std::unique_ptr<Connection> conn;
		bool established = false;
		std::list<std::string>::iterator lru;
		bool lingering = false;
		bool fin_watched = false;
	};
	std::unordered_map<std::string, Entry, KeyHash> table;
	// Least recently active first; half-open connections in their own list so
	// that a SYN flood evicts its own kind before idle established ones.
	std::list<std::string> lru_halfopen, lru_established;
	struct Linger {
		uint64_t deadline;
		std::string key;
		uint64_t id;
	};
	std::deque<Linger> linger;
	std::deque<Linger> half_closed; // one FIN seen: ended after fin_timeout_s of silence
	std::unordered_map<std::string, uint64_t, KeyHash> recent; // key -> close time
	std::deque<std::pair<uint64_t, std::string>> recent_order;
	std::unordered_map<std::string, std::deque<uint64_t>, KeyHash> single_use_times; // client+server -> end times
	std::deque<std::string> single_use_order;

	Impl(AggregatorConfig c, Sink& s) : cfg(std::move(c)), sink(s) {}

	std::list<std::string>& list_of(const Entry& e) { return e.established ? lru_established : lru_halfopen; }

	void push(const tdsbpf_event& ev, std::shared_ptr<tdsbpf_ntlm_event> ntlm)
	{
		pending.push(Pending{ev.ts_ns, order++, ev, std::move(ntlm)});
		high_water = std::max<uint64_t>(high_water, ev.ts_ns);
		uint64_t window = static_cast<uint64_t>(cfg.reorder_window_us) * 1000ull;
		release(high_water > window ? high_water - window : 0);
		while (pending.size() > kMaxPending)
			release_one();
		advance(high_water > window ? high_water - window : 0);
	}

	void release(uint64_t upto)
	{
		while (!pending.empty() && pending.top().ts <= upto)
			release_one();
	}

	void release_one()
	{
		Pending p = pending.top();
		pending.pop();
		process(p.ev, p.ntlm.get());
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
		case TDSBPF_EV_SMP:
			return true;
		default:
			return false;
		}
	}

	static bool creates_connection(const tdsbpf_event& ev)
	{
		switch (ev.kind) {
		case TDSBPF_EV_TCP_CLOSE_ACK:
		case TDSBPF_EV_TCP_KEEPALIVE_ACK:
		case TDSBPF_EV_TCP_RETRANS:
		case TDSBPF_EV_RESYNC:
			return false;
		case TDSBPF_EV_FLOW_STATS:
			return !ev.u.stats.final;
		default:
			return true;
		}
	}

	void process(const tdsbpf_event& ev, const tdsbpf_ntlm_event* ntlm)
	{
		std::string key = key_bytes(ev.key);
		auto it = table.find(key);
		if (it != table.end() && is_new_syn(*it->second.conn, ev)) {
			Connection& old = *it->second.conn;
			bool closed = old.fin[0] || old.fin[1] || old.rst[0] || old.rst[1] || old.complete;
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
			sum.connections_seen++;
			it = table.emplace(key, std::move(e)).first;
			lru_halfopen.push_back(key);
			it->second.lru = std::prev(lru_halfopen.end());
		}
		Entry& e = it->second;
		Connection& c = *e.conn;
		apply_event(c, ev, ntlm, cfg);

		// Most recently active last; splice keeps the node (no allocation).
		bool established = c.synack_ns || c.hs_ack_ns || c.phase != Phase::tcp_handshake;
		std::list<std::string>& from = list_of(e);
		e.established = established;
		list_of(e).splice(list_of(e).end(), from, e.lru);

		if (sink.wants_lines()) {
			TimelineLine l;
			l.connection_id = c.id;
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
		if ((c.fin[0] || c.fin[1]) && !c.complete && !e.fin_watched) {
			e.fin_watched = true;
			half_closed.push_back({c.last_ns + fin_timeout_ns(), key, c.id});
		}
		if (c.complete && !e.lingering) {
			e.lingering = true;
			linger.push_back({c.complete_ns + static_cast<uint64_t>(cfg.close_linger_ms) * 1000000ull, key, c.id});
		}
	}

	uint64_t fin_timeout_ns() const { return static_cast<uint64_t>(cfg.fin_timeout_s) * 1000000000ull; }

	bool evict_one(uint64_t now)
	{
		std::list<std::string>& l = lru_halfopen.empty() ? lru_established : lru_halfopen;
		if (l.empty())
			return false;
		auto it = table.find(l.front());
		if (it == table.end()) {
			l.pop_front();
			return true;
		}
		sum.connections_evicted++;
		bool half_open = !it->second.established;
		if (sum.connections_evicted == 1)
			spdlog::warn("more than {} connections: evicting the least recently active ones (--max-connections)",
				     cfg.max_connections);
		end(it, EndReason::evicted, now, /*print=*/!half_open);
		return true;
	}

	void end(std::unordered_map<std::string, Entry, KeyHash>::iterator it, EndReason why, uint64_t now, bool print = true)
	{
		Connection& c = *it->second.conn;
		conclude(c, why, now, cfg);
		if (why == EndReason::evicted)
			c.close_kind = CloseKind::evicted;
		if (single_use(c, cfg))
			note_single_use(c);
		std::vector<Diagnosis> diags = diagnose(c, cfg);
		sum.connections_ended++;
		sum.by_login_outcome[login_outcome_name(c.outcome)]++;
		sum.by_close_kind[close_kind_name(c.close_kind)]++;
		for (const auto& d : diags)
			sum.by_diagnosis[d.code]++;
		if (print)
			sink.on_connection(make_record(c, cfg, true, diags), true);
		bool closed = c.fin[0] || c.fin[1] || c.rst[0] || c.rst[1] || c.complete;
		if (closed)
			remember_closed(it->first, c.end_ns);
		list_of(it->second).erase(it->second.lru);
		table.erase(it);
	}

	void remember_closed(const std::string& key, uint64_t ts)
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
	void note_single_use(Connection& c)
	{
		std::string k(reinterpret_cast<const char*>(c.key.client_addr), 16);
		k.append(reinterpret_cast<const char*>(c.key.server_addr), 16);
		k.append(reinterpret_cast<const char*>(&c.key.server_port), 2);
		auto [it, inserted] = single_use_times.try_emplace(k);
		if (inserted) {
			single_use_order.push_back(k);
			while (single_use_order.size() > kMaxClients) {
				single_use_times.erase(single_use_order.front());
				single_use_order.pop_front();
			}
		}
		std::deque<uint64_t>& times = it->second;
		uint64_t window = static_cast<uint64_t>(cfg.non_pooled_window_s) * 1000000000ull;
		uint64_t now = c.end_ns;
		while (!times.empty() && times.front() + window < now)
			times.pop_front();
		times.push_back(now);
		while (times.size() > cfg.non_pooled_min_connections + 1)
			times.pop_front();
		if (cfg.non_pooled_min_connections && times.size() >= cfg.non_pooled_min_connections) {
			char buf[400];
			snprintf(buf, sizeof(buf),
				 "Client %s opened and closed at least %zu connections to %s:%u within %u s, each for a few requests: it does not pool connections. Every new connection pays a TCP, TLS and login round; enable connection pooling (keep one connection string, dispose connections promptly so they go back to the pool).",
				 addr_string(c.key.client_addr, c.key.family).c_str(), times.size(),
				 addr_string(c.key.server_addr, c.key.family).c_str(), c.key.server_port, cfg.non_pooled_window_s);
			c.extra.push_back({"non_pooled_client", "warning", buf});
		}
	}

	void advance(uint64_t now)
	{
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
			auto it = table.find(lru_halfopen.front());
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
			auto it = table.find(lru_established.front());
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
				conclude(copy, EndReason::finish, now, cfg);
				copy.close_kind = CloseKind::still_open;
				sink.on_connection(make_record(copy, cfg, false, diagnose(copy, cfg)), false);
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
			spdlog::debug("dropping a malformed event record ({} bytes, kind {})", len, len >= sizeof(tdsbpf_event) ? ev.kind : 0);
		return;
	}
	m.sum.events++;
	std::shared_ptr<tdsbpf_ntlm_event> ntlm;
	if (ev.kind == TDSBPF_EV_NTLM_AUTH) {
		if (len < sizeof(tdsbpf_ntlm_event)) {
			m.sum.events_malformed++;
			return;
		}
		ntlm = std::make_shared<tdsbpf_ntlm_event>();
		std::memcpy(ntlm.get(), &ev, sizeof(tdsbpf_ntlm_event));
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
}

void Aggregator::finish(uint64_t now_ns)
{
	Impl& m = *impl_;
	while (!m.pending.empty())
		m.release_one();
	uint64_t now = std::max(now_ns, m.high_water);
	// Oldest first, so the output reads in the order connections began.
	std::vector<std::pair<uint64_t, std::string>> order;
	for (auto& [k, e] : m.table)
		order.emplace_back(e.conn->id, k);
	std::sort(order.begin(), order.end());
	for (auto& [id, k] : order) {
		auto it = m.table.find(k);
		if (it != m.table.end())
			m.end(it, it->second.lingering ? EndReason::closed : EndReason::finish, now);
	}
}

void Aggregator::note_drops(uint64_t kernel_drops, uint64_t user_drops)
{
	impl_->sum.kernel_drops = kernel_drops;
	impl_->sum.user_drops = user_drops;
}

Summary Aggregator::summary() const
{
	Summary s = impl_->sum;
	s.connections_open = impl_->table.size();
	return s;
}

} // namespace tdsbpf
