// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The counters behind --metrics-addr and their Prometheus text rendering.
#include "aggregator/metrics.h"

#include <charconv>

#include "aggregator/aggregator.h"

namespace tdsbpf {

namespace {

// Upper bounds in seconds. A login takes from a millisecond (a pooled
// SQL login on a LAN) to the drivers' 15 s login timeout and beyond.
const std::vector<double> kLoginBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
					  0.5,	 1,	 2.5,	5,    10,    15,   30};
// A request's latency: first request packet to first response packet.
const std::vector<double> kRequestBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
					    0.1,    0.25,    0.5,    1,	    2.5,    5,	   10,	 30,	60};

std::string number(double v)
{
	char buf[32];
	auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::general);
	return std::string(buf, r.ptr);
}

// A label value in the text format: backslash, double quote and newline
// escaped.
void label_value(std::string& out, std::string_view v)
{
	for (char ch : v) {
		if (ch == '\\')
			out += "\\\\";
		else if (ch == '"')
			out += "\\\"";
		else if (ch == '\n')
			out += "\\n";
		else
			out += ch;
	}
}

class Page {
public:
	void family(const char* name, const char* type, const char* help)
	{
		name_ = name;
		out_ += "# HELP ";
		out_ += name;
		out_ += ' ';
		out_ += help;
		out_ += "\n# TYPE ";
		out_ += name;
		out_ += ' ';
		out_ += type;
		out_ += '\n';
	}

	// One sample of the current family; labels as name, value pairs.
	void sample(std::initializer_list<std::pair<const char*, std::string_view>> labels, double v,
		    const char* suffix = "")
	{
		out_ += name_;
		out_ += suffix;
		bool first = true;
		for (const auto& [k, val] : labels) {
			out_ += first ? '{' : ',';
			first = false;
			out_ += k;
			out_ += "=\"";
			label_value(out_, val);
			out_ += '"';
		}
		if (!first)
			out_ += '}';
		out_ += ' ';
		out_ += number(v);
		out_ += '\n';
	}

	void histogram(std::string_view server, const Histogram& h)
	{
		uint64_t cumulative = 0;
		for (size_t i = 0; i < h.bounds().size(); i++) {
			cumulative += i < h.counts().size() ? h.counts()[i] : 0;
			std::string le = number(h.bounds()[i]);
			sample({{"server", server}, {"le", le}}, static_cast<double>(cumulative), "_bucket");
		}
		sample({{"server", server}, {"le", "+Inf"}}, static_cast<double>(h.count()), "_bucket");
		sample({{"server", server}}, h.sum(), "_sum");
		sample({{"server", server}}, static_cast<double>(h.count()), "_count");
	}

	std::string take() { return std::move(out_); }

private:
	std::string out_;
	const char* name_ = "";
};

} // namespace

void Histogram::observe(double seconds)
{
	if (counts_.empty())
		counts_.assign(bounds_->size(), 0);
	size_t i = 0;
	while (i < bounds_->size() && seconds > (*bounds_)[i])
		i++;
	if (i < counts_.size())
		counts_[i]++;
	count_++;
	sum_ += seconds;
}

Metrics::Metrics(uint32_t max_servers) : max_servers_(max_servers ? max_servers : 1) {}

uint32_t Metrics::server(const std::string& endpoint)
{
	auto it = index_.find(endpoint);
	if (it != index_.end())
		return it->second;
	if (servers_.size() >= max_servers_) {
		if (other_ == UINT32_MAX) {
			other_ = static_cast<uint32_t>(servers_.size());
			servers_.push_back({"other", 0, 0, Histogram(&kLoginBounds), Histogram(&kRequestBounds)});
		}
		return other_;
	}
	uint32_t i = static_cast<uint32_t>(servers_.size());
	servers_.push_back({endpoint, 0, 0, Histogram(&kLoginBounds), Histogram(&kRequestBounds)});
	index_.emplace(endpoint, i);
	return i;
}

void Metrics::bump(Counts& m, uint32_t server, std::string_view a, std::string_view b, std::string_view c)
{
	auto it = m.find(KeyView{server, {a, b, c}});
	if (it == m.end())
		it = m.emplace(Key{server, {std::string(a), std::string(b), std::string(c)}}, 0).first;
	it->second++;
}

void Metrics::connection_started(uint32_t server)
{
	servers_[server].started++;
}

void Metrics::login(uint32_t server, std::string_view outcome, std::string_view method, std::string_view encryption,
		    std::string_view tls_version, const uint64_t* duration_ns)
{
	bump(logins_, server, outcome, method, encryption);
	if (!tls_version.empty())
		bump(tls_, server, tls_version);
	if (duration_ns)
		servers_[server].login_seconds.observe(static_cast<double>(*duration_ns) / 1e9);
}

void Metrics::request(uint32_t server, uint64_t latency_ns, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		servers_[server].request_seconds.observe(static_cast<double>(latency_ns) / 1e9);
}

void Metrics::connection_ended(uint32_t server, std::string_view login_outcome, std::string_view close_kind,
			       std::string_view method)
{
	servers_[server].ended++;
	bump(ended_, server, login_outcome, close_kind, method);
}

void Metrics::diagnosis(uint32_t server, std::string_view code, std::string_view severity)
{
	bump(diagnoses_, server, code, severity);
}

void Metrics::browser_lookup(std::string_view outcome)
{
	auto it = browser_.find(outcome);
	if (it == browser_.end())
		it = browser_.emplace(std::string(outcome), 0).first;
	it->second++;
}

void Metrics::owner_connection(uint32_t server, std::string_view side, std::string_view owner)
{
	if (!owner_labels_)
		return;
	std::string value(owner.empty() ? "unknown" : owner);
	// a label value must be UTF-8; cgroup names are bytes: anything but
	// printable ASCII becomes '_'
	for (char& ch : value)
		if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) > 0x7e)
			ch = '_';
	if (!owner_values_.count(value)) {
		if (owner_values_.size() >= max_servers_)
			value = "other";
		else
			owner_values_.emplace(value, true);
	}
	bump(owners_, server, side, value);
}

std::string Metrics::render(const Summary& s, const TracerCounters& t) const
{
	Page p;
	auto sv = [&](uint32_t i) { return std::string_view(servers_[i].label); };

	p.family("tdsbpf_connections_total", "counter",
		 "Connections that ended, by login outcome, close kind and authentication method.");
	for (const auto& [k, n] : ended_)
		p.sample({{"server", sv(k.server)},
			  {"login_outcome", k.labels[0]},
			  {"close_kind", k.labels[1]},
			  {"auth_method", k.labels[2]}},
			 static_cast<double>(n));
	p.family("tdsbpf_connections_started_total", "counter", "Connections whose first packet was seen.");
	for (uint32_t i = 0; i < servers_.size(); i++)
		p.sample({{"server", sv(i)}}, static_cast<double>(servers_[i].started));
	p.family("tdsbpf_connections_open", "gauge", "Connections tracked now, by server.");
	for (uint32_t i = 0; i < servers_.size(); i++)
		p.sample({{"server", sv(i)}}, static_cast<double>(servers_[i].started - servers_[i].ended));
	p.family("tdsbpf_logins_total", "counter",
		 "Logins answered or given up on, by outcome, authentication method and encryption.");
	for (const auto& [k, n] : logins_)
		p.sample({{"server", sv(k.server)},
			  {"outcome", k.labels[0]},
			  {"auth_method", k.labels[1]},
			  {"encryption", k.labels[2]}},
			 static_cast<double>(n));
	p.family("tdsbpf_login_duration_seconds", "histogram",
		 "Logins from the SYN to the LOGINACK or the login error, where both were seen.");
	for (uint32_t i = 0; i < servers_.size(); i++)
		p.histogram(sv(i), servers_[i].login_seconds);
	p.family("tdsbpf_request_duration_seconds", "histogram",
		 "Requests from their first packet to the first packet of the response.");
	for (uint32_t i = 0; i < servers_.size(); i++)
		p.histogram(sv(i), servers_[i].request_seconds);
	p.family("tdsbpf_diagnoses_total", "counter", "Diagnoses of connections that ended, by code and severity.");
	for (const auto& [k, n] : diagnoses_)
		p.sample({{"server", sv(k.server)}, {"code", k.labels[0]}, {"severity", k.labels[1]}},
			 static_cast<double>(n));
	p.family("tdsbpf_tls_logins_total", "counter", "Logins over TLS, by the TLS version the server chose.");
	for (const auto& [k, n] : tls_)
		p.sample({{"server", sv(k.server)}, {"version", k.labels[0]}}, static_cast<double>(n));

	if (owner_labels_) {
		p.family("tdsbpf_owner_connections_total", "counter",
			 "Connections that ended, by the local process at one end (side client or server): its systemd "
			 "unit, container id or pod uid.");
		for (const auto& [k, n] : owners_)
			p.sample({{"server", sv(k.server)}, {"side", k.labels[0]}, {"owner", k.labels[1]}},
				 static_cast<double>(n));
	}
	p.family("tdsbpf_browser_lookups_total", "counter", "SQL Server Browser lookups reported, by outcome.");
	for (const auto& [outcome, n] : browser_)
		p.sample({{"outcome", outcome}}, static_cast<double>(n));

	p.family("tdsbpf_connections_tracked", "gauge", "Connections the aggregator holds now (--max-connections).");
	p.sample({}, static_cast<double>(s.connections_open));
	p.family("tdsbpf_connections_evicted_total", "counter",
		 "Connections ended early because --max-connections were tracked.");
	p.sample({}, static_cast<double>(s.connections_evicted));
	p.family("tdsbpf_events_total", "counter", "Events that reached the aggregator.");
	p.sample({}, static_cast<double>(s.events));
	p.family("tdsbpf_events_malformed_total", "counter", "Events too short or of an unknown kind.");
	p.sample({}, static_cast<double>(s.events_malformed));
	p.family("tdsbpf_events_submitted_total", "counter", "Events the kernel put in the ring buffer.");
	p.sample({}, static_cast<double>(t.events_submitted));
	p.family("tdsbpf_events_dropped_total", "counter",
		 "Events lost: the ring buffer was full (kernel) or user space could not take them (user).");
	p.sample({{"stage", "kernel"}}, static_cast<double>(t.kernel_drops));
	p.sample({{"stage", "user"}}, static_cast<double>(t.user_drops));
	p.family("tdsbpf_kernel_packets_total", "counter", "SQL Server packets the kernel programs saw.");
	p.sample({}, static_cast<double>(t.packets));
	p.family("tdsbpf_kernel_flows_created_total", "counter", "Flows the kernel programs started to follow.");
	p.sample({}, static_cast<double>(t.flows_created));
	p.family("tdsbpf_kernel_flow_insert_failures_total", "counter",
		 "Flows the kernel could not add to its flow table.");
	p.sample({}, static_cast<double>(t.flow_insert_failures));
	p.family("tdsbpf_interfaces_traced", "gauge", "Interfaces with the programs attached now.");
	p.sample({}, t.interfaces);
	p.family("tdsbpf_start_time_seconds", "gauge", "When this tracer started, in seconds since the Unix epoch.");
	p.sample({}, t.start_time_s);
	p.family("tdsbpf_build_info", "gauge", "The tracer's version.");
	p.sample({{"version", t.version}}, 1);
	return p.take();
}

} // namespace tdsbpf
