// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// --metrics-addr against Debian's real Prometheus: two SQL Server hosts
// (lab servers in two namespaces), each traced by its own tdsbpf and
// scraped by its own Prometheus; a third Prometheus, on the clients' host,
// federates both, and PromQL over it gives the totals of what the clients
// did. promtool checks the page itself.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lab/netns_lab.h"
#include "lab_server.h"
#include "outputs.h"
#include "require.h"

using nlohmann::json;

namespace {

bool have(const char* program)
{
	return std::system((std::string("command -v ") + program + " >/dev/null 2>&1").c_str()) == 0;
}

// A second server host on the lab's client side: namespace tdsbpf-ms<n>
// joined to the client's namespace by the veth pair tdsbpf-mvs<n> /
// tdsbpf-mvc<n>, with a /24 of its own. Removed at scope exit.
class SecondHost {
public:
	explicit SecondHost(const tdsbpf::lab::NetnsLab& lab)
	{
		std::string n = std::to_string(getpid() % 100000);
		int net = 1 + getpid() % 250;
		ns_ = "tdsbpf-ms" + n;
		if_ = "tdsbpf-mvs" + n;
		peer_ = "tdsbpf-mvc" + n;
		ip_ = "10.232." + std::to_string(net) + ".1";
		std::string client_ip = "10.232." + std::to_string(net) + ".2";
		for (const std::string& s :
		     {"ip netns add " + ns_, "ip link add " + if_ + " type veth peer name " + peer_,
		      "ip link set " + if_ + " netns " + ns_, "ip link set " + peer_ + " netns " + lab.client_ns(),
		      "ip -n " + ns_ + " addr add " + ip_ + "/24 dev " + if_,
		      "ip -n " + lab.client_ns() + " addr add " + client_ip + "/24 dev " + peer_,
		      "ip -n " + ns_ + " link set lo up", "ip -n " + ns_ + " link set " + if_ + " up",
		      "ip -n " + lab.client_ns() + " link set " + peer_ + " up"}) {
			if (std::system((s + " >/dev/null 2>&1").c_str()) != 0) {
				error_ = "'" + s + "' failed";
				return;
			}
		}
	}
	~SecondHost()
	{
		std::system(("ip netns del " + ns_ + " >/dev/null 2>&1").c_str());
		std::system(("ip link del " + if_ + " >/dev/null 2>&1").c_str());
	}
	bool ok() const { return error_.empty(); }
	const std::string& error() const { return error_; }
	const std::string& ns() const { return ns_; }
	const std::string& iface() const { return if_; }
	const std::string& ip() const { return ip_; }

private:
	std::string ns_, if_, peer_, ip_, error_;
};

class MetricsTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		TDSBPF_REQUIRE(geteuid() == 0, "needs root (network namespaces, BPF)");
		TDSBPF_REQUIRE(have("prometheus") && have("promtool"),
			       "Prometheus not installed (Debian package prometheus)");
		TDSBPF_REQUIRE(have("curl"), "curl not installed");
		lab_ = std::make_unique<tdsbpf::lab::NetnsLab>();
		TDSBPF_REQUIRE(lab_->ok(), "cannot build the test network: " + lab_->error());
	}

	// tdsbpf in ns on iface, metrics on 127.0.0.1:9433 there.
	pid_t start_tracer(const std::string& ns, const std::string& iface, const std::string& tag)
	{
		pid_t pid = lab_->spawn(ns,
					{TDSBPF_BIN, "--iface", iface, "--metrics-addr", "127.0.0.1:9433",
					 "--ready-file", dir_.file(tag + ".ready")},
					dir_.file(tag + ".ndjson"), dir_.file(tag + ".log"));
		return tdsbpf::lab::wait_for_file(dir_.file(tag + ".ready"), std::chrono::milliseconds(60000)) ? pid
													       : 0;
	}

	pid_t start_server(const std::string& ns, const std::string& ip, const std::string& tag)
	{
		pid_t pid = lab_->spawn(ns,
					{TDSBPF_LABSERVER_PATH, "--listen", ip, "--port", "1433", "--ready-file",
					 dir_.file(tag + ".ready")},
					dir_.file(tag + ".out"), dir_.file(tag + ".log"));
		return tdsbpf::lab::wait_for_file(dir_.file(tag + ".ready"), std::chrono::milliseconds(20000)) ? pid
													       : 0;
	}

	// A Prometheus in ns listening on listen, with this scrape config.
	pid_t start_prometheus(const std::string& ns, const std::string& listen, const std::string& tag,
			       const std::string& scrape_configs)
	{
		std::string conf = dir_.file(tag + ".yml");
		std::ofstream(conf) << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
				    << scrape_configs;
		return lab_->spawn(ns,
				   {"prometheus", "--config.file=" + conf,
				    "--storage.tsdb.path=" + dir_.file(tag + "-data"), "--web.listen-address=" + listen,
				    "--log.level=warn"},
				   dir_.file(tag + ".out"), dir_.file(tag + ".log"));
	}

	// The load client from the client's namespace to host: n connections,
	// one request each, logging in as user.
	void connect(const std::string& host, int n, const std::string& user)
	{
		auto r = labtest::run_command({"ip", "netns", "exec", lab_->client_ns(), TDSBPF_LOADCLIENT_PATH,
					       "--host", host, "--connections", "1", "--count", std::to_string(n),
					       "--requests-per-connection", "1", "--user", user, "--json"},
					      {}, "", std::chrono::seconds(60));
		(void)r; // failed logins make it exit 1; the metrics say what happened
	}

	// An instant PromQL query against the Prometheus at addr in ns: the
	// result vector, or null.
	json query(const std::string& ns, const std::string& addr, const std::string& promql)
	{
		// the query goes through a file: no shell quoting of its quotes
		std::string file = dir_.file("query.promql");
		std::ofstream(file) << promql;
		int st = 0;
		std::string out = lab_->sh(
			ns, "curl -s --max-time 5 http://" + addr + "/api/v1/query --data-urlencode query@" + file,
			&st);
		auto j = json::parse(out, nullptr, false);
		if (st != 0 || !j.is_object() || j.value("status", "") != "success")
			return nullptr;
		return j["data"]["result"];
	}

	// The value of a one-sample (or empty: 0) query result.
	static double value_of(const json& result)
	{
		if (!result.is_array() || result.empty())
			return 0;
		return std::stod(result[0]["value"][1].get<std::string>());
	}

	labtest::TempDir dir_;
	std::unique_ptr<tdsbpf::lab::NetnsLab> lab_;
};

TEST_F(MetricsTest, PrometheusFederatesTwoTracedHosts)
{
	SecondHost b(*lab_);
	ASSERT_TRUE(b.ok()) << b.error();
	const std::string& a_ns = lab_->server_ns();
	ASSERT_GT(start_server(a_ns, lab_->server_ip(), "server-a"), 0);
	ASSERT_GT(start_server(b.ns(), b.ip(), "server-b"), 0);
	ASSERT_GT(start_tracer(a_ns, lab_->server_if(), "tracer-a"), 0) << labtest::slurp(dir_.file("tracer-a.log"));
	ASSERT_GT(start_tracer(b.ns(), b.iface(), "tracer-b"), 0) << labtest::slurp(dir_.file("tracer-b.log"));

	// promtool's own lint of the page (names, types, help, histograms)
	int st = 0;
	std::string lint = lab_->sh(a_ns, "curl -sf http://127.0.0.1:9433/metrics | promtool check metrics", &st);
	EXPECT_EQ(st, 0) << lint;

	// one Prometheus per host scrapes its tracer; the clients' host
	// federates both, each under a site label
	const std::string local = "  - job_name: tdsbpf\n    static_configs:\n      - targets: ['127.0.0.1:9433']\n";
	start_prometheus(a_ns, lab_->server_ip() + ":9090", "prom-a", local);
	start_prometheus(b.ns(), b.ip() + ":9090", "prom-b", local);
	start_prometheus(lab_->client_ns(), "127.0.0.1:9090", "prom-global",
			 "  - job_name: federate\n    honor_labels: true\n    metrics_path: /federate\n"
			 "    params:\n      'match[]': ['{job=\"tdsbpf\"}']\n    static_configs:\n"
			 "      - targets: ['" +
				 lab_->server_ip() +
				 ":9090']\n        labels: {site: a}\n"
				 "      - targets: ['" +
				 b.ip() + ":9090']\n        labels: {site: b}\n");

	// what the clients do: 5 logins to host a; 3 to host b and 2 that fail
	connect(lab_->server_ip(), 5, "sa");
	connect(b.ip(), 3, "sa");
	connect(b.ip(), 2, "fail_login");

	// the federation catches up within a few scrapes
	const std::string g = "127.0.0.1:9090";
	json r;
	for (int i = 0; i < 90; i++) {
		r = query(lab_->client_ns(), g, "sum(tdsbpf_connections_total)");
		if (value_of(r) == 10)
			break;
		std::this_thread::sleep_for(std::chrono::seconds(1));
	}
	ASSERT_EQ(value_of(r), 10) << r.dump() << "\n" << labtest::slurp(dir_.file("prom-global.log"));

	// both tracers are there, by site
	EXPECT_EQ(value_of(query(lab_->client_ns(), g, "count(count by (site) (tdsbpf_build_info))")), 2);
	// logins by outcome, over both hosts, and per host
	EXPECT_EQ(value_of(query(lab_->client_ns(), g, "sum(tdsbpf_logins_total{outcome=\"success\"})")), 8);
	EXPECT_EQ(value_of(query(lab_->client_ns(), g, "sum(tdsbpf_logins_total{outcome=\"failed\"})")), 2);
	EXPECT_EQ(value_of(query(lab_->client_ns(), g, "sum(tdsbpf_logins_total{site=\"b\",outcome=\"failed\"})")), 2)
		<< query(lab_->client_ns(), g, "tdsbpf_logins_total").dump();
	// the logins that went through are SQL logins (their LOGIN7 is under
	// TLS, the method is inferred from the answer), as the records say
	EXPECT_EQ(
		value_of(query(
			lab_->client_ns(), g,
			"sum(tdsbpf_logins_total{outcome=\"success\",auth_method=\"sql\",encryption=\"login_only\"})")),
		8);
	EXPECT_EQ(value_of(query(lab_->client_ns(), g, "sum(tdsbpf_logins_total{site=\"a\"})")), 5);
	// the server label is the endpoint the clients connected to
	EXPECT_EQ(
		value_of(query(lab_->client_ns(), g, "sum(tdsbpf_connections_total{server=\"" + b.ip() + ":1433\"})")),
		5);
	// one request on each connection that logged in, and its latency
	EXPECT_EQ(value_of(query(lab_->client_ns(), g, "sum(tdsbpf_request_duration_seconds_count)")), 8);
	EXPECT_GT(value_of(query(lab_->client_ns(), g, "sum(tdsbpf_request_duration_seconds_sum)")), 0);
	// every login's duration, and all of them under a second on the lab
	EXPECT_EQ(value_of(query(lab_->client_ns(), g, "sum(tdsbpf_login_duration_seconds_count)")), 10);
	EXPECT_EQ(value_of(query(lab_->client_ns(), g, "sum(tdsbpf_login_duration_seconds_bucket{le=\"1\"})")), 10);
	// the failed logins are diagnosed, on host b only
	EXPECT_EQ(value_of(query(lab_->client_ns(), g, "sum(tdsbpf_diagnoses_total{code=\"login_failed\"})")), 2);
	// nothing lost, everything the kernel made was taken, nothing open
	EXPECT_EQ(value_of(query(lab_->client_ns(), g, "sum(tdsbpf_events_dropped_total)")), 0);
	EXPECT_EQ(
		value_of(query(lab_->client_ns(), g, "sum(tdsbpf_events_submitted_total) - sum(tdsbpf_events_total)")),
		0);
	EXPECT_EQ(value_of(query(lab_->client_ns(), g, "sum(tdsbpf_connections_open)")), 0);
	EXPECT_EQ(value_of(query(lab_->client_ns(), g, "sum(tdsbpf_interfaces_traced)")), 2);

	// every query of the Grafana dashboard runs and finds data (the
	// dashboard's variables as Grafana fills them: all servers, a range)
	std::ifstream in(TDSBPF_GRAFANA_DASHBOARD);
	json dash = json::parse(in, nullptr, false);
	ASSERT_TRUE(dash.is_object());
	int queries = 0;
	for (const auto& panel : dash["panels"]) {
		for (const auto& target : panel["targets"]) {
			std::string expr = target["expr"];
			for (auto [var, val] :
			     {std::pair<std::string, std::string>{"$server", ".*"}, {"$__rate_interval", "1m"}})
				for (size_t at; (at = expr.find(var)) != std::string::npos;)
					expr.replace(at, var.size(), val);
			// a rate needs two samples of a series in the federation: a
			// series first federated a moment ago may have one yet
			json result;
			for (int i = 0; i < 20; i++) {
				result = query(lab_->client_ns(), g, expr);
				if (result.is_array() && !result.empty())
					break;
				std::this_thread::sleep_for(std::chrono::seconds(1));
			}
			EXPECT_TRUE(result.is_array() && !result.empty())
				<< panel["title"] << ": " << expr << " -> " << result.dump();
			queries++;
		}
	}
	EXPECT_GE(queries, 10);
}

// What the metrics server answers besides the page; and a metrics port
// already taken is a bad command line: exit 2 before anything is attached.
TEST_F(MetricsTest, MetricsServerAnswersAndItsPortIsItsOwn)
{
	pid_t first = start_tracer(lab_->server_ns(), lab_->server_if(), "first");
	ASSERT_GT(first, 0) << labtest::slurp(dir_.file("first.log"));
	auto status = [&](const std::string& args) {
		return lab_->sh(lab_->server_ns(), "curl -s -o /dev/null -w %{http_code} " + args);
	};
	EXPECT_EQ(status("http://127.0.0.1:9433/metrics"), "200");
	EXPECT_EQ(status("-I http://127.0.0.1:9433/metrics"), "200");
	EXPECT_EQ(status("http://127.0.0.1:9433/"), "200");
	EXPECT_EQ(status("http://127.0.0.1:9433/other"), "404");
	EXPECT_EQ(status("-X POST http://127.0.0.1:9433/metrics"), "405");
	std::string type =
		lab_->sh(lab_->server_ns(), "curl -s -o /dev/null -w %{content_type} http://127.0.0.1:9433/metrics");
	EXPECT_EQ(type, "text/plain; version=0.0.4; charset=utf-8");
	// the server's threads, which read from the network, hold no more than
	// the rest of tdsbpf once attached: CAP_NET_ADMIN, CAP_PERFMON, CAP_BPF
	const uint64_t three = (1ull << 12) | (1ull << 38) | (1ull << 39);
	int threads = 0;
	for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(first) + "/task")) {
		std::ifstream st(task.path() / "status");
		for (std::string line; std::getline(st, line);)
			if (line.rfind("CapEff:", 0) == 0) {
				EXPECT_EQ(std::stoull(line.substr(7), nullptr, 16) & ~three, 0u)
					<< "thread " << task.path().filename() << ": " << line;
				threads++;
			}
	}
	EXPECT_GE(threads, 2); // the tracer and at least one server thread

	pid_t second = lab_->spawn(lab_->server_ns(),
				   {TDSBPF_BIN, "--iface", lab_->server_if(), "--metrics-addr", "127.0.0.1:9433"},
				   dir_.file("second.out"), dir_.file("second.log"));
	EXPECT_EQ(lab_->stop(second, 0, 20000), 2);
	std::string log = labtest::slurp(dir_.file("second.log"));
	EXPECT_NE(log.find("--metrics-addr 127.0.0.1:9433: cannot listen"), std::string::npos) << log;
}

} // namespace
