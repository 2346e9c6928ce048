// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// SQL Server Browser lookups: see browser.h. The record's fields are in
// docs/connections.md ("Browser lookups").
#include "browser.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace tdsbpf {

namespace {

unsigned long long ull(uint64_t v)
{
	return static_cast<unsigned long long>(v);
}

bool same_addr(const uint8_t* a, const uint8_t* b)
{
	return std::memcmp(a, b, 16) == 0;
}

// A record that is not a connection's, for the sinks (which only ask for
// its two forms).
class LookupRecord : public ConnectionRecord {
public:
	LookupRecord(uint64_t id, std::string_view json, std::string_view text) : id_(id), json_(json), text_(text) {}
	uint64_t connection_id() const override { return id_; }
	bool final() const override { return true; }
	std::string_view json() const override { return json_; }
	std::string_view text() const override { return text_; }

private:
	uint64_t id_;
	std::string_view json_, text_;
};

std::string describe_request(const SsrpMessage& m)
{
	switch (m.kind) {
	case SsrpKind::clnt_ucast_inst: return "where instance " + m.requested_instance + " listens";
	case SsrpKind::clnt_ucast_dac: return "the admin (DAC) port of instance " + m.requested_instance;
	case SsrpKind::clnt_ucast_ex: return "every instance on the server";
	case SsrpKind::clnt_bcast_ex: return "every instance on the network (broadcast)";
	default: return "something that is not an SSRP request";
	}
}

} // namespace

BrowserTracker::BrowserTracker(const AggregatorConfig& cfg, Sink& sink, Summary& sum, IfName ifname)
    : cfg_(cfg), sink_(sink), sum_(sum), ifname_(std::move(ifname))
{
}

bool BrowserTracker::broadcast(const Lookup& l) const
{
	return l.request_ns && l.request.kind == SsrpKind::clnt_bcast_ex;
}

void BrowserTracker::on_datagram(const tdsbpf_browser_event& ev)
{
	const tdsbpf_event& b = ev.base;
	std::size_t n = std::min<std::size_t>(ev.data_len, sizeof(ev.data));
	bool from_server = b.dir == TDSBPF_DIR_S2C;
	SsrpMessage msg = parse_ssrp({ev.data, n}, from_server);
	// only the first bytes of a long answer were copied: cut short by us,
	// not wrong
	if (n < b.payload_len && msg.truncated)
		msg.problem.clear();
	if (!from_server) {
		Lookup l;
		l.id = next_id_++;
		l.key = b.key;
		l.ifindex = b.ifindex;
		l.request_ns = b.ts_ns;
		l.request = std::move(msg);
		// a request with a flaw (no NUL after the instance name) is still
		// a lookup: the Browser may answer it
		if (l.request.kind == SsrpKind::unknown) {
			report(l, b.ts_ns);
			return;
		}
		if (waiting_.size() >= kMaxWaiting) {
			report(waiting_.front(), b.ts_ns);
			waiting_.pop_front();
		}
		waiting_.push_back(std::move(l));
		return;
	}
	Response r;
	std::memcpy(r.addr, b.key.server_addr, 16);
	r.ts = b.ts_ns;
	r.msg = std::move(msg);
	// the newest request from this client's port: a unicast one to this
	// server, or a broadcast any server may answer
	auto it = waiting_.end();
	for (auto w = waiting_.rbegin(); w != waiting_.rend(); ++w) {
		if (w->key.family != b.key.family || w->key.client_port != b.key.client_port ||
		    !same_addr(w->key.client_addr, b.key.client_addr))
			continue;
		if (!broadcast(*w) && !same_addr(w->key.server_addr, b.key.server_addr))
			continue;
		it = std::prev(w.base());
		break;
	}
	if (it == waiting_.end()) {
		// an answer to a request not seen (sent before tracing began, or
		// made up): reported, its ports not followed (the kernel does not
		// either)
		Lookup l;
		l.id = next_id_++;
		l.key = b.key;
		l.ifindex = b.ifindex;
		l.responses.push_back(std::move(r));
		report(l, b.ts_ns);
		return;
	}
	Lookup& l = *it;
	// the ports the kernel followed, and those past what it looked at
	for (uint16_t p : ev.followed)
		if (p && std::find(l.followed.begin(), l.followed.end(), p) == l.followed.end())
			l.followed.push_back(p);
	for (const SsrpInstance& i : r.msg.instances) {
		if (!i.tcp_port)
			continue;
		if (std::find(l.followed.begin(), l.followed.end(), *i.tcp_port) == l.followed.end())
			l.followed.push_back(*i.tcp_port);
		if (cfg_.on_browser_port)
			cfg_.on_browser_port(*i.tcp_port);
	}
	remember(l, r);
	if (l.responses.size() < kMaxResponses)
		l.responses.push_back(std::move(r));
	if (!broadcast(l)) {
		report(l, b.ts_ns);
		waiting_.erase(it);
	}
}

void BrowserTracker::remember(const Lookup& l, const Response& r)
{
	for (const SsrpInstance& i : r.msg.instances) {
		if (!i.tcp_port)
			continue;
		Answer a{};
		std::memcpy(a.client, l.key.client_addr, 16);
		std::memcpy(a.server, r.addr, 16);
		a.family = l.key.family;
		a.port = *i.tcp_port;
		a.ts = r.ts;
		auto o = std::make_shared<Connection::BrowserOrigin>();
		o->instance = i.instance_name;
		o->lookup_ms =
			l.request_ns && r.ts >= l.request_ns ? static_cast<double>(r.ts - l.request_ns) / 1e6 : -1;
		a.origin = std::move(o);
		if (answers_.size() >= kMaxAnswers)
			answers_.pop_front();
		answers_.push_back(std::move(a));
	}
}

std::shared_ptr<const Connection::BrowserOrigin> BrowserTracker::origin_for(const tdsbpf_flow_key& k, uint64_t ts)
{
	while (!answers_.empty() && answers_.front().ts + kAnswerMemoryNs < ts)
		answers_.pop_front();
	for (auto a = answers_.rbegin(); a != answers_.rend(); ++a) {
		if (a->family == k.family && a->port == k.server_port && same_addr(a->client, k.client_addr) &&
		    same_addr(a->server, k.server_addr))
			return a->origin;
	}
	return nullptr;
}

void BrowserTracker::advance(uint64_t now)
{
	uint64_t wait = static_cast<uint64_t>(cfg_.browser_timeout_ms) * 1000000ull;
	while (!waiting_.empty() && waiting_.front().request_ns + wait <= now) {
		report(waiting_.front(), now);
		waiting_.pop_front();
	}
}

void BrowserTracker::finish(uint64_t now)
{
	// a request younger than the wait is not unanswered: the run ended first
	while (!waiting_.empty()) {
		Lookup& l = waiting_.front();
		l.unfinished = l.responses.empty() &&
			       now < l.request_ns + static_cast<uint64_t>(cfg_.browser_timeout_ms) * 1000000ull;
		report(l, now);
		waiting_.pop_front();
	}
}

void BrowserTracker::report(Lookup& l, uint64_t now)
{
	const tdsbpf_flow_key& k = l.key;
	std::vector<Diagnosis> diags;
	char buf[640];
	std::string server = endpoint_string(k.server_addr, k.family, k.server_port);
	std::string what = l.request_ns ? describe_request(l.request) : "";
	bool valid_request = l.request_ns && l.request.kind != SsrpKind::unknown;
	const char* outcome = "answered";
	if (l.request_ns && !valid_request) {
		outcome = "not_ssrp";
		snprintf(buf, sizeof(buf),
			 "A datagram to the SQL Server Browser port (UDP 1434) of %s is not an SSRP request (%s). The "
			 "client that sent it owns it: something other than a SQL Server driver uses port 1434, or "
			 "its message is damaged.",
			 server.c_str(),
			 l.request.problem.empty() ? "unknown message type" : l.request.problem.c_str());
		diags.push_back({"browser_not_ssrp", "info", buf});
	} else if (l.responses.empty() && l.unfinished) {
		outcome = "unfinished";
	} else if (l.responses.empty()) {
		outcome = "no_answer";
		double s = cfg_.browser_timeout_ms / 1000.0;
		if (l.request.kind == SsrpKind::clnt_ucast_inst || l.request.kind == SsrpKind::clnt_ucast_dac)
			snprintf(
				buf, sizeof(buf),
				"The client asked the SQL Server Browser at %s %s and got no answer within %.1f s. The "
				"server side owns it: the SQL Server Browser service is stopped, UDP 1434 is blocked by "
				"a firewall on the way, or no instance of that name exists (the Browser does not answer "
				"for an instance it does not have). Start the Browser and open UDP 1434, or give the "
				"client the instance's port (host,port) instead of its name.",
				server.c_str(), what.c_str(), s);
		else
			snprintf(
				buf, sizeof(buf),
				"The client asked the SQL Server Browser at %s for %s and got no answer within %.1f s. "
				"The server side owns it: the SQL Server Browser service is stopped or UDP 1434 is "
				"blocked by a firewall on the way. Start the Browser and open UDP 1434.",
				server.c_str(), what.c_str(), s);
		diags.push_back({"browser_no_answer", "warning", buf});
	} else {
		if (!l.request_ns)
			outcome = "answer_only";
		const Response& first = l.responses.front();
		uint64_t ms = l.request_ns && first.ts >= l.request_ns ? (first.ts - l.request_ns) / 1000000ull : 0;
		if (l.request_ns && ms >= cfg_.browser_slow_ms) {
			snprintf(
				buf, sizeof(buf),
				"The SQL Server Browser at %s took %llu ms to answer (%s); the client's connection waits "
				"for it. The server side owns it: a busy or starved server host, or a slow network path "
				"for UDP. A fixed port in the connection string (host,port) avoids the lookup.",
				server.c_str(), ull(ms), what.c_str());
			diags.push_back({"browser_slow", "warning", buf});
		}
		for (const Response& r : l.responses) {
			if (!r.msg.problem.empty()) {
				snprintf(
					buf, sizeof(buf),
					"The answer from the SQL Server Browser at %s is not a valid SSRP reply (%s). The "
					"server side owns it: the service answering on UDP 1434 is not a SQL Server Browser, "
					"or its reply was damaged; a driver may fail to find the instance.",
					addr_string(r.addr, k.family).c_str(), r.msg.problem.c_str());
				diags.push_back({"browser_bad_answer", "warning", buf});
				break;
			}
			for (const SsrpInstance& i : r.msg.instances) {
				if (i.tcp_port)
					continue;
				snprintf(
					buf, sizeof(buf),
					"The SQL Server Browser at %s lists instance %s without a TCP port: TCP/IP is not "
					"enabled for it, so clients that connect over TCP cannot reach it by name. The "
					"server side owns it: enable TCP/IP for the instance (SQL Server Configuration "
					"Manager) and restart it.",
					addr_string(r.addr, k.family).c_str(), i.instance_name.c_str());
				diags.push_back({"browser_no_tcp", "warning", buf});
				break;
			}
		}
	}
	sum_.browser_lookups++;
	for (const Diagnosis& d : diags)
		bump(sum_.by_diagnosis, d.code);
	if (cfg_.metrics)
		cfg_.metrics->browser_lookup(outcome);

	std::string_view ifname = ifname_ ? ifname_(l.ifindex, now) : std::string_view{};
	uint64_t start = l.request_ns ? l.request_ns : (l.responses.empty() ? now : l.responses.front().ts);
	uint64_t end = l.responses.empty() ? (l.request_ns ? std::max(now, start) : start) : l.responses.back().ts;

	json_.clear();
	JsonWriter w(json_);
	char tb[40];
	auto time = [&](std::string_view key, uint64_t ns) {
		w.key(key).value(std::string_view(tb, iso_time(tb, ns)));
	};
	w.begin_object();
	w.member("tdsbpf.record", "browser");
	w.member("tdsbpf.lookup_id", l.id);
	write_endpoints(w, k, "udp", "ssrp");
	if (!ifname.empty())
		w.member("network.interface.name", ifname);
	else if (l.ifindex)
		w.member("network.interface.name", std::to_string(l.ifindex));
	else
		w.null_member("network.interface.name");
	time("start_time", start);
	time("end_time", end);
	w.member("outcome", outcome);
	if (l.request_ns) {
		w.key("request").begin_object().member("type", ssrp_kind_name(l.request.kind));
		if (!l.request.requested_instance.empty())
			w.member("instance", l.request.requested_instance);
		else
			w.null_member("instance");
		w.end_object();
	} else {
		w.null_member("request");
	}
	w.key("responses").begin_array();
	for (const Response& r : l.responses) {
		w.begin_object().member("server.address", addr_string(r.addr, k.family));
		time("time", r.ts);
		if (l.request_ns && r.ts >= l.request_ns)
			w.member("latency_ms", Millis{r.ts - l.request_ns});
		else
			w.null_member("latency_ms");
		w.key("instances").begin_array();
		for (const SsrpInstance& i : r.msg.instances) {
			w.begin_object()
				.member("server_name", i.server_name)
				.member("instance_name", i.instance_name)
				.member("version", i.version);
			if (i.clustered)
				w.member("clustered", *i.clustered);
			else
				w.null_member("clustered");
			if (i.tcp_port)
				w.member("tcp_port", *i.tcp_port);
			else
				w.null_member("tcp_port");
			if (!i.pipe.empty())
				w.member("named_pipe", i.pipe);
			else
				w.null_member("named_pipe");
			w.end_object();
		}
		w.end_array();
		if (r.msg.dac_port)
			w.member("dac_port", *r.msg.dac_port);
		else
			w.null_member("dac_port");
		if (!r.msg.problem.empty())
			w.member("problem", r.msg.problem);
		else
			w.null_member("problem");
		w.end_object();
	}
	w.end_array();
	w.key("followed_ports").begin_array();
	for (uint16_t p : l.followed)
		w.value(p);
	w.end_array();
	write_diagnoses(w, diags);
	w.end_object();

	text_.clear();
	auto line = [&](const char* f, auto... a) {
		char lb[512];
		int len = snprintf(lb, sizeof(lb), f, a...);
		if (len > 0)
			text_.append(lb, std::min<std::size_t>(static_cast<std::size_t>(len), sizeof(lb) - 1));
	};
	line("b%-5llu == browser lookup %s -> %s (udp)\n", ull(l.id),
	     endpoint_string(k.client_addr, k.family, k.client_port).c_str(), server.c_str());
	text_ += "   time      " + iso_time(start) + " .. " + iso_time(end) + "\n";
	text_ += "   asked     " + (l.request_ns ? what : std::string("(request not seen)")) + "\n";
	if (l.responses.empty())
		text_ += std::string("   answer    none (") + outcome + ")\n";
	for (const Response& r : l.responses) {
		std::string from = addr_string(r.addr, k.family);
		if (l.request_ns && r.ts >= l.request_ns)
			line("   answer    from %s in %.3f ms:", from.c_str(),
			     static_cast<double>(r.ts - l.request_ns) / 1e6);
		else
			line("   answer    from %s:", from.c_str());
		if (r.msg.dac_port)
			line(" admin port %u", static_cast<unsigned>(*r.msg.dac_port));
		for (const SsrpInstance& i : r.msg.instances) {
			text_ += " " + i.server_name + "\\" + i.instance_name;
			if (i.tcp_port)
				line(" tcp %u", static_cast<unsigned>(*i.tcp_port));
			else
				text_ += " (no tcp)";
			if (!i.version.empty())
				text_ += " version " + i.version;
			text_ += ";";
		}
		if (!r.msg.problem.empty())
			text_ += " not valid: " + r.msg.problem;
		text_ += "\n";
	}
	if (!l.followed.empty()) {
		text_ += "   traced    tcp";
		for (uint16_t p : l.followed)
			line(" %u", static_cast<unsigned>(p));
		text_ += " from now on\n";
	}
	for (const Diagnosis& d : diags)
		text_ += "   [" + std::string(d.severity) + "] " + std::string(d.code) + ": " + d.message + "\n";

	LookupRecord rec(l.id, json_.view(), text_);
	sink_.on_connection(rec);
}

} // namespace tdsbpf
