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
#include "loader.h"

namespace fs = std::filesystem;

namespace tdsbpf {
namespace {

std::atomic<bool> g_demo_stop{false};

void on_demo_signal(int) { g_demo_stop = true; }

uint64_t now_ns(clockid_t id)
{
	timespec ts{};
	clock_gettime(id, &ts);
	return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

int quiet(const std::string& cmd)
{
	int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// Starts argv (in namespace ns unless empty) with stdout+stderr to `out`.
pid_t spawn(const std::string& ns, const std::vector<std::string>& argv, const std::string& out,
	    const std::string& input_file = {})
{
	std::vector<std::string> full;
	if (!ns.empty())
		full = {"ip", "netns", "exec", ns};
	full.insert(full.end(), argv.begin(), argv.end());
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		int in = open(input_file.empty() ? "/dev/null" : input_file.c_str(), O_RDONLY);
		int o = open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(in, 0);
		dup2(o, 1);
		dup2(o, 2);
		std::vector<char*> args;
		for (auto& a : full)
			args.push_back(a.data());
		args.push_back(nullptr);
		execvp(args[0], args.data());
		_exit(127);
	}
	return pid;
}

// Waits for pid; kills its process group after timeout_ms or on SIGINT.
int wait_child(pid_t pid, int timeout_ms)
{
	auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	int status = 0;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		if (r < 0)
			return -1;
		if (g_demo_stop || std::chrono::steady_clock::now() >= until) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
	}
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

// The private network: namespaces tdsbpf-s<pid> (server) and tdsbpf-c<pid>
// (client), veth tdsbpf-vs<pid>/tdsbpf-vc<pid>, a working directory, and the
// processes started in them. The destructor removes all of it.
class DemoLab {
public:
	DemoLab()
	{
		std::string n = std::to_string(getpid() % 100000);
		srv = "tdsbpf-s" + n;
		cli = "tdsbpf-c" + n;
		vs = "tdsbpf-vs" + n;
		vc = "tdsbpf-vc" + n;
		int net = 1 + getpid() % 250;
		srv_ip = "10.232." + std::to_string(net) + ".1";
		cli_ip = "10.232." + std::to_string(net) + ".2";
		char tmpl[] = "/tmp/tdsbpf-demo-XXXXXX";
		if (!mkdtemp(tmpl))
			throw std::runtime_error(std::string("cannot make a temporary directory: ") + std::strerror(errno));
		dir = tmpl;
		const std::vector<std::string> steps = {
			"ip netns add " + srv,
			"ip netns add " + cli,
			"ip link add " + vs + " type veth peer name " + vc,
			"ip link set " + vs + " netns " + srv,
			"ip link set " + vc + " netns " + cli,
			"ip -n " + srv + " addr add " + srv_ip + "/24 dev " + vs,
			"ip -n " + cli + " addr add " + cli_ip + "/24 dev " + vc,
			"ip -n " + srv + " link set lo up",
			"ip -n " + cli + " link set lo up",
			"ip -n " + srv + " link set " + vs + " up",
			"ip -n " + cli + " link set " + vc + " up",
		};
		for (const auto& s : steps)
			if (quiet(s) != 0) {
				cleanup();
				throw std::runtime_error("cannot build the demo network (is iproute2 installed?): '" + s +
							 "' failed");
			}
	}
	~DemoLab() { cleanup(); }
	DemoLab(const DemoLab&) = delete;
	DemoLab& operator=(const DemoLab&) = delete;

	pid_t start(const std::string& ns, const std::vector<std::string>& argv, const std::string& log)
	{
		pid_t p = spawn(ns, argv, log);
		procs.push_back(p);
		return p;
	}

	void cleanup()
	{
		for (pid_t p : procs) {
			if (p <= 0)
				continue;
			kill(-p, SIGTERM);
			kill(p, SIGTERM);
			int st = 0;
			for (int i = 0; i < 100 && waitpid(p, &st, WNOHANG) == 0; i++)
				std::this_thread::sleep_for(std::chrono::milliseconds(20));
			kill(-p, SIGKILL);
			kill(p, SIGKILL);
			waitpid(p, &st, WNOHANG);
		}
		procs.clear();
		if (!srv.empty()) {
			quiet("ip netns del " + srv);
			quiet("ip netns del " + cli);
			quiet("ip link del " + vs);
		}
		if (!dir.empty()) {
			std::error_code ec;
			fs::remove_all(dir, ec);
			dir.clear();
		}
		srv.clear();
	}

	std::string srv, cli, vs, vc, srv_ip, cli_ip, dir;
	std::vector<pid_t> procs;
};

// Enters a network namespace for this thread; restores the old one at scope exit.
class NetnsGuard {
public:
	explicit NetnsGuard(const std::string& ns)
	{
		old_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
		int fd = open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
		if (old_ < 0 || fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
			std::string why = std::strerror(errno);
			if (fd >= 0)
				close(fd);
			throw std::runtime_error("cannot enter namespace " + ns + ": " + why);
		}
		close(fd);
	}
	~NetnsGuard()
	{
		if (old_ >= 0) {
			setns(old_, CLONE_NEWNET);
			close(old_);
		}
	}

private:
	int old_ = -1;
};

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

} // namespace

int run_demo(int argc, char** argv)
{
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		if (a == "-h" || a == "--help") {
			std::printf("usage: tdsbpf demo\n\n"
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
	std::string labserver = find_tool("tdsbpf-labserver", "labserver");
	if (labserver.empty()) {
		spdlog::error("demo: tdsbpf-labserver not found (looked in ../tools/labserver/ next to this binary and "
			      "on PATH); build it: cmake --build build --target tdsbpf-labserver");
		return 2;
	}
	std::string loadclient = find_tool("tdsbpf-loadclient", "loadclient");
	if (loadclient.empty()) {
		spdlog::error("demo: tdsbpf-loadclient not found (looked in ../tools/loadclient/ next to this binary "
			      "and on PATH); build it: cmake --build build --target tdsbpf-loadclient");
		return 2;
	}
	std::string tsql = find_tool("tsql", "none");

	struct sigaction sa{};
	sa.sa_handler = on_demo_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, nullptr);
	sigaction(SIGTERM, &sa, nullptr);
	sigaction(SIGHUP, &sa, nullptr);
	signal(SIGPIPE, SIG_IGN);

	const auto t0 = std::chrono::steady_clock::now();
	std::optional<DemoLab> lab;
	try {
		lab.emplace();
	} catch (const std::exception& e) {
		spdlog::error("demo: {}", e.what());
		return 2;
	}
	std::printf("tdsbpf demo: server namespace %s (%s on %s), client namespace %s (%s)\n", lab->srv.c_str(),
		    lab->srv_ip.c_str(), lab->vs.c_str(), lab->cli.c_str(), lab->cli_ip.c_str());

	// Two lab servers: 1433 as SQL Server, 1434 failing every TLS negotiation.
	auto start_server = [&](const std::string& port, std::vector<std::string> extra) {
		std::string ready = lab->dir + "/ready-" + port;
		std::vector<std::string> a = {labserver, "--listen", lab->srv_ip, "--port", port, "--ready-file", ready,
					      "--keepalive-idle", "1", "--keepalive-interval", "1"};
		a.insert(a.end(), extra.begin(), extra.end());
		lab->start(lab->srv, a, lab->dir + "/labserver-" + port + ".log");
		struct stat st;
		for (int i = 0; i < 200 && !g_demo_stop; i++) {
			if (stat(ready.c_str(), &st) == 0 && st.st_size > 0)
				return true;
			std::this_thread::sleep_for(std::chrono::milliseconds(50));
		}
		return false;
	};
	if (!start_server("1433", {}) || !start_server("1434", {"--fault", "fin_tls"})) {
		spdlog::error("demo: the lab server did not start ({})", labserver);
		return 2;
	}

	// The tracer, in this process, on the server side's veth.
	std::unique_ptr<Sink> text_sink = make_sink(OutputFormat::text, stdout);
	char* json_buf = nullptr;
	size_t json_len = 0;
	std::FILE* json_out = open_memstream(&json_buf, &json_len);
	std::unique_ptr<Sink> json_sink = make_sink(OutputFormat::json, json_out);
	AggregatorConfig cfg;
	cfg.ifname = [](uint32_t ifindex) -> std::string {
		char name[IF_NAMESIZE] = {};
		if (ifindex && if_indextoname(ifindex, name))
			return name;
		return {};
	};
	cfg.format = OutputFormat::text;
	Aggregator text_agg(cfg, *text_sink);
	cfg.format = OutputFormat::json;
	Aggregator json_agg(cfg, *json_sink);

	int rc = 0;
	{
		std::optional<NetnsGuard> in_server;
		std::optional<Loader> loader;
		try {
			in_server.emplace(lab->srv);
			LoaderConfig lc;
			lc.interfaces = {lab->vs};
			lc.ports = {1433, 1434};
			loader.emplace(lc);
			loader->attach();
		} catch (const std::exception& e) {
			spdlog::error("demo: {}", e.what());
			std::fclose(json_out);
			std::free(json_buf);
			return 2;
		}
		std::printf("tracer attached to %s (%s ingress, %s egress), ports 1433 and 1434\n\n", lab->vs.c_str(),
			    loader->attachments()[0].ingress.c_str(), loader->attachments()[0].egress.c_str());
		std::fflush(stdout);

		const std::string host = lab->srv_ip;
		std::vector<Step> steps = {
			{"plain login and query: SQL login, login-only TLS, 2 batches",
			 "login success, auth sql, encryption login_only, close four_way",
			 {loadclient, "--host", host, "--port", "1433", "--connections", "1", "--count", "2"}},
			{"TLS login: the whole connection encrypted",
			 "encryption full, login unknown (encrypted), encrypted requests counted",
			 {loadclient, "--host", host, "--port", "1433", "--connections", "1", "--count", "2", "--encryption",
			  "on"}},
			{"MARS: two SMP sessions on one connection",
			 "MARS requested and used, 2 sessions",
			 {loadclient, "--host", host, "--port", "1433", "--connections", "1", "--count", "4", "--mars",
			  "--mars-sessions", "2"}},
			{"failed login: the server refuses user fail_login",
			 "login failed 18456, diagnosis login_failed",
			 {loadclient, "--host", host, "--port", "1433", "--connections", "1", "--count", "1", "--user",
			  "fail_login"}},
			{"server-first close: the server on port 1434 closes right after the ClientHello",
			 "close server_fin_first, diagnosis server_closed_during_tls",
			 {loadclient, "--host", host, "--port", "1434", "--connections", "1", "--count", "1"}},
		};
		if (!tsql.empty()) {
			std::ofstream(lab->dir + "/freetds.conf")
				<< "[lab]\n\thost = " << host << "\n\tport = 1433\n\ttds version = 7.4\n\tencryption = off\n";
			steps.push_back({"idle connection: tsql logs in as idle_30 (the server turns on keep-alives, 1 s), "
					 "runs one batch, stays idle for 3.5 s, then closes it like a pool retiring it",
					 "keep-alives from the server, diagnosis idle_closed_after_keepalives",
					 {"sh", "-c",
					  "(printf 'SELECT 1\\ngo\\n'; sleep 3.5; printf 'exit\\n') | FREETDSCONF=" + lab->dir +
						  "/freetds.conf tsql -S lab -U idle_30 -P lab"},
					 20000});
		} else {
			std::printf("(tsql not found: the idle keep-alive step is left out; install freetds-bin)\n");
		}

		Notes notes;
		std::atomic<bool> tour_done{false};
		std::thread tour([&] {
			int i = 0;
			for (const auto& s : steps) {
				if (g_demo_stop)
					break;
				i++;
				notes.add("\n== step " + std::to_string(i) + "/" + std::to_string(steps.size()) + ": " +
					  s.title + "\n   expect: " + s.expect);
				notes.wait_shown(); // the step's title before its first packet
				std::string log = lab->dir + "/step" + std::to_string(i) + ".log";
				pid_t p = spawn(lab->cli, s.argv, log);
				int st = wait_child(p, s.timeout_ms);
				notes.add("   (client exit status " + std::to_string(st) + ")");
				// let the close and its linger pass before the next step
				for (int k = 0; k < 8 && !g_demo_stop; k++)
					std::this_thread::sleep_for(std::chrono::milliseconds(100));
			}
			tour_done = true;
		});

		const uint64_t offset = now_ns(CLOCK_REALTIME) - now_ns(CLOCK_MONOTONIC);
		auto cb = [&](const tdsbpf_event& ev, std::size_t len) {
			alignas(8) unsigned char buf[sizeof(tdsbpf_ntlm_event)] = {};
			std::size_t n = len < sizeof(buf) ? len : sizeof(buf);
			std::memcpy(buf, &ev, n);
			auto* e = reinterpret_cast<tdsbpf_event*>(buf);
			e->ts_ns += offset;
			text_agg.on_event(*e, n);
			json_agg.on_event(*e, n);
		};
		std::optional<std::chrono::steady_clock::time_point> done_at;
		while (!g_demo_stop) {
			int n = loader->poll(100, cb);
			if (n < 0) {
				spdlog::error("demo: reading the ring buffer failed: {}", std::strerror(-n));
				rc = 1;
				break;
			}
			uint64_t now = now_ns(CLOCK_REALTIME);
			text_agg.tick(now);
			json_agg.tick(now);
			std::fflush(stdout);
			notes.flush(stdout);
			if (tour_done && !done_at)
				done_at = std::chrono::steady_clock::now();
			// the last close's record comes after its 500 ms linger
			if (done_at && std::chrono::steady_clock::now() - *done_at > std::chrono::milliseconds(1500))
				break;
		}
		tour.join();
		while (loader->poll(0, cb) > 0) {
		}
		uint64_t drops = loader->counters()[TDSBPF_CNT_RINGBUF_DROPS];
		loader->detach();
		loader.reset();
		text_agg.note_drops(drops, 0);
		json_agg.note_drops(drops, 0);
		text_agg.finish(now_ns(CLOCK_REALTIME));
		json_agg.finish(now_ns(CLOCK_REALTIME));
		notes.flush(stdout);
		if (g_demo_stop) {
			std::printf("\ninterrupted: cleaning up\n");
			rc = 130;
		}
	}
	std::fflush(json_out);
	std::string records(json_buf ? json_buf : "", json_len);
	std::fclose(json_out);
	std::free(json_buf);

	std::printf("\n== the JSON records (one per connection, as `tdsbpf` prints them by default)\n%s",
		    records.c_str());
	// a one-line digest per record
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
		std::printf("#%s port %s: login %s%s, auth %s, encryption %s, mars sessions %zu, requests %s, close %s, "
			    "keep-alives %s/%s, diagnoses %s\n",
			    str(j["tdsbpf.connection_id"]).c_str(), str(j["server.port"]).c_str(),
			    str(j["login"]["outcome"]).c_str(),
			    j["login"]["error"].is_object() ? (" " + str(j["login"]["error"]["number"])).c_str() : "",
			    str(j["authentication"]["method"]).c_str(), str(j["negotiated"]["encryption"]).c_str(),
			    j["mars"]["sessions"].size(), str(j["work"]["requests"]).c_str(),
			    j["close"].is_object() ? str(j["close"]["kind"]).c_str() : "-",
			    str(j["tcp"]["keepalives"]["client_to_server"]).c_str(),
			    str(j["tcp"]["keepalives"]["server_to_client"]).c_str(), diags.empty() ? "-" : diags.c_str());
	}
	lab.reset();
	double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
	std::printf("\ndemo finished in %.1f s; namespaces, veth pair, lab servers and BPF programs removed\n", secs);
	std::fflush(stdout);
	return rc;
}

} // namespace tdsbpf
