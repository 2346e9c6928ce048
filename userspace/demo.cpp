// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// `tdsbpf demo`: see demo.h.
#include "demo.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "aggregator/aggregator.h"
#include "lab/netns_lab.h"
#include "lab/process.h"
#include "loader.h"
#include "privileges.h"
#include "session.h"

namespace fs = std::filesystem;

namespace tdsbpf {
namespace {

std::atomic<bool> g_demo_stop{false};

void on_demo_signal(int)
{
	g_demo_stop = true;
}


std::string find_tool(const std::string& name, const std::string& build_subdir)
{
	std::error_code ec;
	fs::path self = fs::read_symlink("/proc/self/exe", ec);
	if (!ec) {
		fs::path cand = self.parent_path() / ".." / "tools" / build_subdir / name;
		if (fs::exists(cand))
			return fs::weakly_canonical(cand).string();
		cand = self.parent_path() / name; // installed side by side
		if (fs::exists(cand))
			return cand.string();
	}
	if (const char* path = std::getenv("PATH")) {
		std::stringstream ss(path);
		std::string dir;
		while (std::getline(ss, dir, ':'))
			if (!dir.empty() && access((dir + "/" + name).c_str(), X_OK) == 0)
				return dir + "/" + name;
	}
	return {};
}


// Lines from the tour thread, printed by the thread that prints the view.
class Notes {
public:
	void add(std::string s)
	{
		std::lock_guard<std::mutex> l(m_);
		q_.push_back(std::move(s));
	}
	void flush(std::FILE* out)
	{
		std::lock_guard<std::mutex> l(m_);
		for (auto& s : q_)
			std::fprintf(out, "%s\n", s.c_str());
		q_.clear();
		std::fflush(out);
	}
	// Waits (briefly) until the printing thread has shown what was added.
	void wait_shown()
	{
		for (int i = 0; i < 50; i++) {
			{
				std::lock_guard<std::mutex> l(m_);
				if (q_.empty())
					return;
			}
			std::this_thread::sleep_for(std::chrono::milliseconds(10));
		}
	}

private:
	std::mutex m_;
	std::deque<std::string> q_;
};

struct Step {
	std::string title;  // what it shows
	std::string expect; // the outcome tdsbpf should report
	std::vector<std::string> argv;
	int timeout_ms = 15000;
};

// The demo's lab: the private network and a working directory.
struct DemoLab {
	lab::NetnsLab net{"10.232"};
	lab::TempDir dir{"tdsbpf-demo"};
};

struct Tools {
	std::string labserver, loadclient, tsql;
};

// Both lab tools, or an error message; tsql is optional.
bool find_tools(Tools& t)
{
	t.labserver = find_tool("tdsbpf-labserver", "lab/server");
	if (t.labserver.empty()) {
		spdlog::error(
			"demo: tdsbpf-labserver not found (looked in ../tools/lab/server/ next to this binary and "
			"on PATH); build it: cmake --build build --target tdsbpf-labserver");
		return false;
	}
	t.loadclient = find_tool("tdsbpf-loadclient", "lab/client");
	if (t.loadclient.empty()) {
		spdlog::error("demo: tdsbpf-loadclient not found (looked in ../tools/lab/client/ next to this binary "
			      "and on PATH); build it: cmake --build build --target tdsbpf-loadclient");
		return false;
	}
	t.tsql = find_tool("tsql", "none");
	return true;
}

// Two lab servers: 1433 as SQL Server, 1434 failing every TLS negotiation.
bool start_servers(DemoLab& lab, const Tools& t)
{
	auto start = [&](const std::string& port, std::vector<std::string> extra) {
		std::string ready = lab.dir.file("ready-" + port);
		std::vector<std::string> a = {
			t.labserver,	    "--listen", lab.net.server_ip(),	"--port", port, "--ready-file", ready,
			"--keepalive-idle", "1",	"--keepalive-interval", "1"};
		a.insert(a.end(), extra.begin(), extra.end());
		lab.net.spawn(lab.net.server_ns(), a, lab.dir.file("labserver-" + port + ".log"));
		for (int i = 0; i < 200 && !g_demo_stop; i++) {
			if (lab::wait_for_file(ready, std::chrono::milliseconds(50)))
				return true;
		}
		return false;
	};
	return start("1433", {}) && start("1434", {"--fault", "fin_tls"});
}

// The tour: each step a client run from the client namespace.
std::vector<Step> tour_steps(DemoLab& lab, const Tools& t)
{
	const std::string host = lab.net.server_ip();
	const std::string& lc = t.loadclient;
	std::vector<Step> steps = {
		{"plain login and query: SQL login, login-only TLS, 2 batches",
		 "login success, auth sql, encryption login_only, close four_way",
		 {lc, "--host", host, "--port", "1433", "--connections", "1", "--count", "2"}},
		{"TLS login: the whole connection encrypted",
		 "encryption full, login unknown (encrypted), encrypted requests counted",
		 {lc, "--host", host, "--port", "1433", "--connections", "1", "--count", "2", "--encryption", "on"}},
		{"MARS: two SMP sessions on one connection",
		 "MARS requested and used, 2 sessions",
		 {lc, "--host", host, "--port", "1433", "--connections", "1", "--count", "4", "--mars",
		  "--mars-sessions", "2"}},
		{"failed login: the server refuses user fail_login",
		 "login failed 18456, diagnosis login_failed",
		 {lc, "--host", host, "--port", "1433", "--connections", "1", "--count", "1", "--user", "fail_login"}},
		{"server-first close: the server on port 1434 closes right after the ClientHello",
		 "close server_fin_first, diagnosis server_closed_during_tls",
		 {lc, "--host", host, "--port", "1434", "--connections", "1", "--count", "1"}},
	};
	if (!t.tsql.empty()) {
		std::ofstream(lab.dir.file("freetds.conf"))
			<< "[lab]\n\thost = " << host << "\n\tport = 1433\n\ttds version = 7.4\n\tencryption = off\n";
		steps.push_back({"idle connection: tsql logs in as idle_30 (the server turns on keep-alives, 1 s), "
				 "runs one batch, stays idle for 3.5 s, then closes it like a pool retiring it",
				 "keep-alives from the server, diagnosis idle_closed_after_keepalives",
				 {"sh", "-c",
				  "(printf 'SELECT 1\\ngo\\n'; sleep 3.5; printf 'exit\\n') | FREETDSCONF=" +
					  lab.dir.file("freetds.conf") + " tsql -S lab -U idle_30 -P lab"},
				 20000});
	} else {
		std::printf("(tsql not found: the idle keep-alive step is left out; install freetds-bin)\n");
	}
	return steps;
}

// Runs the steps one after the other (on the tour thread).
void run_steps(DemoLab& lab, const std::vector<Step>& steps, Notes& notes)
{
	int i = 0;
	for (const auto& s : steps) {
		if (g_demo_stop)
			break;
		i++;
		notes.add("\n== step " + std::to_string(i) + "/" + std::to_string(steps.size()) + ": " + s.title +
			  "\n   expect: " + s.expect);
		notes.wait_shown(); // the step's title before its first packet
		lab::SpawnOptions opt;
		opt.netns = lab.net.client_ns();
		opt.stdout_path = lab.dir.file("step" + std::to_string(i) + ".log");
		pid_t p = lab::spawn(s.argv, opt);
		int st = lab::wait_exit(p, std::chrono::milliseconds(s.timeout_ms), &g_demo_stop);
		notes.add("   (client exit status " + std::to_string(st) + ")");
		// let the close and its linger pass before the next step
		for (int k = 0; k < 8 && !g_demo_stop; k++)
			std::this_thread::sleep_for(std::chrono::milliseconds(100));
	}
}

// The tracer on the server side's veth while the tour runs: the live text
// view on stdout, the JSON records into `records`. Returns the exit status.
int trace_tour(DemoLab& lab, const std::vector<Step>& steps, std::string& records)
{
	std::unique_ptr<Sink> text_sink = make_sink(OutputFormat::text, stdout);
	char* json_buf = nullptr;
	size_t json_len = 0;
	std::FILE* json_out = open_memstream(&json_buf, &json_len);
	if (!json_out) {
		spdlog::error("demo: out of memory");
		return 1;
	}
	int rc = 0;
	{
		std::unique_ptr<Sink> json_sink = make_sink(OutputFormat::json, json_out);
		AggregatorConfig cfg;
		cfg.ifname = interface_name;
		cfg.format = OutputFormat::text;
		Aggregator text_agg(cfg, *text_sink);
		cfg.format = OutputFormat::json;
		Aggregator json_agg(cfg, *json_sink);

		std::optional<lab::NetnsGuard> in_server;
		std::optional<Session> session;
		try {
			in_server.emplace(lab.net.server_ns());
			LoaderConfig lc;
			lc.interfaces = {lab.net.server_if()};
			lc.ports = {1433, 1434};
			session.emplace(lc);
		} catch (const std::exception& e) {
			spdlog::error("demo: {}", e.what());
			rc = 2;
		}
		if (session) {
			std::printf("tracer attached to %s (%s), ports 1433 and 1434\n\n", lab.net.server_if().c_str(),
				    session->describe().c_str());
			std::fflush(stdout);

			Notes notes;
			std::atomic<bool> tour_done{false};
			std::thread tour([&] {
				run_steps(lab, steps, notes);
				tour_done = true;
			});
			std::optional<std::chrono::steady_clock::time_point> done_at;
			rc = session->run(
				[&](const tdsbpf_event& ev, std::size_t len) {
					text_agg.on_event(ev, len);
					json_agg.on_event(ev, len);
				},
				[&](uint64_t now) {
					text_agg.tick(now);
					json_agg.tick(now);
					std::fflush(stdout);
					notes.flush(stdout);
					if (tour_done && !done_at)
						done_at = std::chrono::steady_clock::now();
					// the last close's record comes after its 500 ms linger
					return !g_demo_stop &&
					       !(done_at && std::chrono::steady_clock::now() - *done_at >
								    std::chrono::milliseconds(1500));
				});
			tour.join();
			uint64_t drops = session->kernel_drops();
			uint64_t end = session->now_ns();
			session.reset(); // detached before the records are printed
			text_agg.note_drops(drops, 0);
			json_agg.note_drops(drops, 0);
			text_agg.finish(end);
			json_agg.finish(end);
			notes.flush(stdout);
			if (g_demo_stop) {
				std::printf("\ninterrupted: cleaning up\n");
				rc = 130;
			}
		}
	}
	std::fclose(json_out);
	records.assign(json_buf ? json_buf : "", json_len);
	std::free(json_buf);
	return rc;
}

// The records as printed, then a one-line digest of each.
void print_records(const std::string& records)
{
	std::printf("\n== the JSON records (one per connection, as `tdsbpf` prints them by default)\n%s",
		    records.c_str());
	std::printf("\n== digest\n");
	std::stringstream rs(records);
	std::string line;
	while (std::getline(rs, line)) {
		auto j = nlohmann::json::parse(line, nullptr, false);
		if (!j.is_object() || !j.contains("login"))
			continue;
		std::string diags;
		for (const auto& d : j["diagnoses"])
			diags += (diags.empty() ? "" : ",") + d["code"].get<std::string>();
		auto str = [](const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
		std::printf(
			"#%s port %s: login %s%s, auth %s, encryption %s, mars sessions %zu, requests %s, close %s, "
			"keep-alives client→server %s, server→client %s, diagnoses %s\n",
			str(j["tdsbpf.connection_id"]).c_str(), str(j["server.port"]).c_str(),
			str(j["login"]["outcome"]).c_str(),
			j["login"]["error"].is_object()	 ? (" " + str(j["login"]["error"]["number"])).c_str()
			: j["login"]["inferred"] == true ? " (inferred)"
							 : "",
			str(j["authentication"]["method"]).c_str(), str(j["negotiated"]["encryption"]).c_str(),
			j["mars"]["sessions"].size(), str(j["work"]["requests"]).c_str(),
			j["close"].is_object() ? str(j["close"]["kind"]).c_str() : "-",
			str(j["tcp"]["keepalives"]["client_to_server"]).c_str(),
			str(j["tcp"]["keepalives"]["server_to_client"]).c_str(), diags.empty() ? "-" : diags.c_str());
	}
}

void install_demo_signals()
{
	struct sigaction sa {};
	sa.sa_handler = on_demo_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, nullptr);
	sigaction(SIGTERM, &sa, nullptr);
	sigaction(SIGHUP, &sa, nullptr);
	signal(SIGPIPE, SIG_IGN);
}

} // namespace

int run_demo(int argc, char** argv)
{
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		if (a == "-h" || a == "--help") {
			std::printf(
				"usage: tdsbpf demo\n\n"
				"Builds a private network (namespaces tdsbpf-s<pid>/tdsbpf-c<pid>), starts the lab\n"
				"TDS server (tdsbpf-labserver) and traces a scripted tour of connections: a plain\n"
				"login and query, full TLS, MARS, a failed login, a server closing during TLS, an idle\n"
				"connection closed after keep-alives. Prints the live timelines, then the JSON\n"
				"records, and removes everything. Needs root; no SQL Server needed.\n");
			return 0;
		}
		spdlog::error("demo: unknown argument '{}' (try tdsbpf demo --help)", a);
		return 2;
	}
	std::string priv = missing_privileges();
	if (!priv.empty()) {
		spdlog::error("demo: {}", priv);
		return 2;
	}
	Tools tools;
	if (!find_tools(tools))
		return 2;
	install_demo_signals();

	const auto t0 = std::chrono::steady_clock::now();
	std::optional<DemoLab> lab;
	try {
		lab.emplace();
	} catch (const std::exception& e) {
		spdlog::error("demo: {}", e.what());
		return 2;
	}
	if (!lab->net.ok()) {
		spdlog::error("demo: {}", lab->net.error());
		return 2;
	}
	std::printf("tdsbpf demo: server namespace %s (%s on %s), client namespace %s (%s)\n",
		    lab->net.server_ns().c_str(), lab->net.server_ip().c_str(), lab->net.server_if().c_str(),
		    lab->net.client_ns().c_str(), lab->net.client_ip().c_str());
	if (!start_servers(*lab, tools)) {
		spdlog::error("demo: the lab server did not start ({})", tools.labserver);
		return g_demo_stop ? 130 : 2;
	}
	std::vector<Step> steps = tour_steps(*lab, tools);
	std::string records;
	int rc = trace_tour(*lab, steps, records);
	if (rc == 2)
		return rc;
	print_records(records);
	lab.reset();
	double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
	std::printf("\ndemo finished in %.1f s; namespaces, veth pair, lab servers and BPF programs removed\n", secs);
	std::fflush(stdout);
	return rc;
}

} // namespace tdsbpf
