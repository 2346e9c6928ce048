// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Live, on the lab's veth pair, with real programs: FreeTDS finding the
// lab's instance through its SQL Server Browser (--follow-browser), the
// packets written for Wireshark and read back by tshark (--write-pcap), and
// two services in two cgroups told apart in the records (owners).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e.h"
#include "lab/netns_lab.h"
#include "lab/process.h"
#include "lab_server.h"
#include "outputs.h"
#include "require.h"

using namespace std::chrono_literals;
using json = nlohmann::json;
using labtest::wait_until;
using tdsbpf::e2e::have;

namespace {

// Every record of an NDJSON file (connections, snapshots and lookups).
std::vector<json> records_in(const std::string& path)
{
	std::vector<json> out;
	std::ifstream in(path);
	for (std::string line; std::getline(in, line);) {
		auto j = json::parse(line, nullptr, false);
		if (j.is_object() && j.contains("tdsbpf.record"))
			out.push_back(std::move(j));
	}
	return out;
}

std::vector<json> of_kind(const std::vector<json>& v, const std::string& kind)
{
	std::vector<json> out;
	for (const auto& j : v)
		if (j["tdsbpf.record"] == kind)
			out.push_back(j);
	return out;
}

bool has_diagnosis(const json& r, const std::string& code)
{
	for (const auto& d : r["diagnoses"])
		if (d["code"] == code)
			return true;
	return false;
}

// The cgroup2 mount ("" if there is none).
std::string cgroup2_mount()
{
	std::ifstream mi("/proc/self/mountinfo");
	for (std::string line; std::getline(mi, line);) {
		if (line.find(" - cgroup2 ") == std::string::npos)
			continue;
		std::istringstream in(line);
		std::string f;
		for (int i = 0; i < 5 && in >> f; i++) {
		}
		return f;
	}
	return {};
}

// This process's cgroup v2 path ("/..." or "").
std::string own_cgroup()
{
	std::ifstream cg("/proc/self/cgroup");
	for (std::string line; std::getline(cg, line);)
		if (line.rfind("0::", 0) == 0)
			return line.substr(3);
	return {};
}

// Cgroups made for a test, removed at the end (their processes moved back
// to this test's cgroup first).
class Cgroups {
public:
	explicit Cgroups(std::string mount) : mount_(std::move(mount)) {}
	~Cgroups()
	{
		for (auto it = made_.rbegin(); it != made_.rend(); ++it) {
			std::ifstream procs(*it + "/cgroup.procs");
			for (std::string pid; std::getline(procs, pid);)
				std::ofstream(mount_ + own_cgroup() + "/cgroup.procs") << pid << "\n";
			for (int i = 0; i < 50 && rmdir(it->c_str()) != 0; i++)
				std::this_thread::sleep_for(50ms);
		}
	}
	// Makes mount/rel (and its parents); returns its directory.
	std::string make(const std::string& rel)
	{
		std::string path = mount_;
		std::istringstream parts(rel);
		for (std::string p; std::getline(parts, p, '/');) {
			if (p.empty())
				continue;
			path += "/" + p;
			if (mkdir(path.c_str(), 0755) == 0)
				made_.push_back(path);
		}
		return path;
	}

private:
	std::string mount_;
	std::vector<std::string> made_;
};

// argv run from inside a cgroup (its directory given): the shell moves
// itself there, then becomes the program.
std::vector<std::string> in_cgroup(const std::string& dir, std::vector<std::string> argv)
{
	std::vector<std::string> out = {"sh", "-c", "echo $$ > '" + dir + "/cgroup.procs' && exec \"$0\" \"$@\""};
	out.insert(out.end(), argv.begin(), argv.end());
	return out;
}

class LiveLookups : public ::testing::Test {
protected:
	void SetUp() override
	{
		TDSBPF_REQUIRE(geteuid() == 0, "needs root (network namespaces, BPF)");
		lab_ = std::make_unique<tdsbpf::lab::NetnsLab>("10.234");
		TDSBPF_REQUIRE(lab_->ok(), "cannot build the test network: " + lab_->error());
	}

	// The lab server on the server's address; its pid once it listens.
	pid_t start_server(std::vector<std::string> extra, const std::string& name = "server",
			   const std::string& cgroup = {})
	{
		std::vector<std::string> argv = {TDSBPF_LABSERVER_PATH, "--listen", lab_->server_ip(), "--ready-file",
						 dir_.file(name + ".ready")};
		argv.insert(argv.end(), extra.begin(), extra.end());
		// `ip netns exec` mounts a /sys of its own, without the cgroup
		// mounts: the move into the cgroup comes before it
		std::string ns = lab_->server_ns();
		if (!cgroup.empty()) {
			argv.insert(argv.begin(), {"ip", "netns", "exec", ns});
			argv = in_cgroup(cgroup, argv);
			ns.clear();
		}
		pid_t pid = lab_->spawn(ns, argv, dir_.file(name + ".out"), dir_.file(name + ".log"));
		return tdsbpf::lab::wait_for_file(dir_.file(name + ".ready"), 20000ms) ? pid : 0;
	}

	// tdsbpf on one side's interface (in that side's namespace), records to
	// NAME.out, its log to NAME.log; 0 if it did not get ready.
	// host_view: the network namespace only (nsenter), the rest of the
	// host as it is, as tdsbpf runs on a host: `ip netns exec` would give
	// it a /sys without the cgroup mounts.
	pid_t start_tracer(bool client_side, std::vector<std::string> extra, const std::string& name = "tracer",
			   bool host_view = false)
	{
		std::vector<std::string> argv = {TDSBPF_BIN, "--iface",
						 client_side ? lab_->client_if() : lab_->server_if(), "--ready-file",
						 dir_.file(name + ".ready")};
		argv.insert(argv.end(), extra.begin(), extra.end());
		std::string ns = client_side ? lab_->client_ns() : lab_->server_ns();
		if (host_view) {
			argv.insert(argv.begin(), {"nsenter", "--net=/run/netns/" + ns});
			ns.clear();
		}
		pid_t pid = lab_->spawn(ns, argv, dir_.file(name + ".out"), dir_.file(name + ".log"));
		return tdsbpf::lab::wait_for_file(dir_.file(name + ".ready"), 60000ms) ? pid : 0;
	}

	std::string log(const std::string& name) const { return labtest::slurp(dir_.file(name + ".log")); }

	// tsql in the client's namespace with a freetds.conf of the test's own.
	tdsbpf::lab::CommandResult tsql(const std::vector<std::string>& args, std::chrono::milliseconds timeout,
					const std::string& cgroup = {})
	{
		std::string conf = dir_.file("freetds.conf");
		std::ofstream(conf) << "[global]\n\ttds version = 7.4\n\tencryption = request\n";
		std::vector<std::string> argv = {"tsql"};
		argv.insert(argv.end(), args.begin(), args.end());
		argv.insert(argv.begin(), {"ip", "netns", "exec", lab_->client_ns()});
		if (!cgroup.empty())
			argv = in_cgroup(cgroup, argv);
		return tdsbpf::lab::run_command(argv, {{"FREETDSCONF", conf}, {"FREETDS", conf}, {"TDSVER", "7.4"}},
						"SELECT 1\ngo\nexit\n", timeout);
	}

	labtest::TempDir dir_;
	std::unique_ptr<tdsbpf::lab::NetnsLab> lab_;
};

#define REQUIRE_TSQL() TDSBPF_REQUIRE(have("tsql"), "FreeTDS tsql not installed (Debian package freetds-bin)")

} // namespace

// FreeTDS connects to host\LAB: it asks the lab's Browser for the port
// (14330), then connects there. Traced on the client's interface, the
// answer arrives (XDP) before the client's SYN leaves (tc): the connection
// is seen from its SYN, and its record names the instance. Without
// --follow-browser that port is not traced at all.
TEST_F(LiveLookups, TsqlByInstanceNameIsTracedFromItsSyn)
{
	REQUIRE_TSQL();
	ASSERT_GT(start_server({"--port", "14330", "--browser", "--instance", "LAB"}), 0) << log("server");
	pid_t tracer = start_tracer(true, {"--follow-browser"});
	ASSERT_GT(tracer, 0) << log("tracer");
	auto r = tsql({"-S", lab_->server_ip() + "\\LAB", "-U", "sa", "-P", "lab"}, 20s);
	EXPECT_EQ(r.exit_code, 0) << r.output;
	ASSERT_TRUE(wait_until([&] { return !labtest::read_connection_records(dir_.file("tracer.out")).empty(); }, 10s))
		<< log("tracer");
	ASSERT_EQ(lab_->stop(tracer, SIGINT, 20000), 0) << log("tracer");

	auto recs = records_in(dir_.file("tracer.out"));
	auto lookups = of_kind(recs, "browser");
	ASSERT_GE(lookups.size(), 1u) << dir_.file("tracer.out");
	const json& l = lookups[0];
	EXPECT_EQ(l["outcome"], "answered") << l.dump();
	EXPECT_EQ(l["client.address"], lab_->client_ip());
	EXPECT_EQ(l["server.address"], lab_->server_ip());
	EXPECT_EQ(l["request"]["type"], "clnt_ucast_inst") << l.dump();
	EXPECT_EQ(l["request"]["instance"], "LAB");
	ASSERT_EQ(l["responses"].size(), 1u);
	EXPECT_GE(l["responses"][0]["latency_ms"].get<double>(), 0.0);
	EXPECT_EQ(l["responses"][0]["instances"][0]["instance_name"], "LAB");
	EXPECT_EQ(l["responses"][0]["instances"][0]["tcp_port"], 14330);
	EXPECT_EQ(l["followed_ports"], json::array({14330}));
	EXPECT_TRUE(l["diagnoses"].empty()) << l.dump();

	auto conns = of_kind(recs, "connection");
	ASSERT_EQ(conns.size(), 1u);
	const json& c = conns[0];
	EXPECT_EQ(c["server.port"], 14330);
	EXPECT_EQ(c["midstream"], false);
	EXPECT_EQ(c["phases"][0]["name"], "tcp_handshake");
	EXPECT_EQ(c["tcp"]["syn_count"], 1);
	EXPECT_EQ(c["login"]["outcome"], "success") << c.dump();
	EXPECT_EQ(c["browser"]["instance"], "LAB") << c.dump();
	EXPECT_GE(c["browser"]["lookup_ms"].get<double>(), 0.0);
	EXPECT_NE(log("tracer").find("the SQL Server Browser named port 14330"), std::string::npos) << log("tracer");

	// the same without the flag: port 14330 stays untraced
	pid_t plain = start_tracer(true, {}, "plain");
	ASSERT_GT(plain, 0) << log("plain");
	r = tsql({"-S", lab_->server_ip() + "\\LAB", "-U", "sa", "-P", "lab"}, 20s);
	EXPECT_EQ(r.exit_code, 0) << r.output;
	std::this_thread::sleep_for(1500ms);
	ASSERT_EQ(lab_->stop(plain, SIGINT, 20000), 0) << log("plain");
	EXPECT_TRUE(records_in(dir_.file("plain.out")).empty()) << labtest::slurp(dir_.file("plain.out"));
}

// A Browser that never answers, and one that answers in 700 ms: each
// lookup is reported with the finding that fits, a slow answer still
// followed.
TEST_F(LiveLookups, SilentAndSlowBrowsersAreDiagnosed)
{
	REQUIRE_TSQL();
	pid_t server = start_server({"--port", "14330", "--browser", "--instance", "LAB", "--browser-silent"});
	ASSERT_GT(server, 0) << log("server");
	pid_t tracer = start_tracer(true, {"--follow-browser"});
	ASSERT_GT(tracer, 0) << log("tracer");
	// FreeTDS asks again every second; it is stopped after the third
	auto r = tsql({"-S", lab_->server_ip() + "\\LAB", "-U", "sa", "-P", "lab"}, 2500ms);
	EXPECT_NE(r.exit_code, 0) << r.output;
	// the unanswered lookups are reported 2 s after each was made
	ASSERT_TRUE(wait_until([&] { return !of_kind(records_in(dir_.file("tracer.out")), "browser").empty(); }, 10s))
		<< log("tracer");
	lab_->stop(server, SIGTERM, 5000);

	ASSERT_GT(start_server({"--port", "14330", "--browser", "--instance", "LAB", "--browser-delay-ms", "700"},
			       "slow"),
		  0)
		<< log("slow");
	r = tsql({"-S", lab_->server_ip() + "\\LAB", "-U", "sa", "-P", "lab"}, 20s);
	EXPECT_EQ(r.exit_code, 0) << r.output;
	ASSERT_TRUE(wait_until([&] { return !labtest::read_connection_records(dir_.file("tracer.out")).empty(); }, 10s))
		<< log("tracer");
	ASSERT_EQ(lab_->stop(tracer, SIGINT, 20000), 0) << log("tracer");

	auto lookups = of_kind(records_in(dir_.file("tracer.out")), "browser");
	std::size_t unanswered = 0, slow = 0;
	for (const auto& l : lookups) {
		if (l["outcome"] == "no_answer") {
			unanswered++;
			EXPECT_TRUE(has_diagnosis(l, "browser_no_answer")) << l.dump();
			EXPECT_EQ(l["request"]["instance"], "LAB");
		} else if (has_diagnosis(l, "browser_slow")) {
			slow++;
			EXPECT_EQ(l["outcome"], "answered");
			EXPECT_GE(l["responses"][0]["latency_ms"].get<double>(), 700.0) << l.dump();
		}
	}
	EXPECT_GE(unanswered, 2u) << dir_.file("tracer.out");
	EXPECT_EQ(slow, 1u) << dir_.file("tracer.out");
	auto conns = labtest::read_connection_records(dir_.file("tracer.out"));
	ASSERT_EQ(conns.size(), 1u);
	EXPECT_EQ(conns[0]["midstream"], false);
	EXPECT_EQ(conns[0]["login"]["outcome"], "success");
}

// --write-pcap on the server's side: tshark reads the file, every packet
// carries the id of a record, each record's packets are all there (the
// kernel's own packet counts), and the TDS inside is dissected.
// --write-pcap-diagnosed keeps only the connection with a finding.
TEST_F(LiveLookups, WrittenPacketsAreEachRecordsPackets)
{
	REQUIRE_TSQL();
	TDSBPF_REQUIRE(have("tshark"), "tshark not installed (Debian package tshark)");
	ASSERT_GT(start_server({"--port", "1433"}), 0) << log("server");
	for (bool diagnosed_only : {false, true}) {
		std::string name = diagnosed_only ? "diagnosed" : "all";
		std::string file = dir_.file(name + ".pcapng");
		std::vector<std::string> args = {"--port",	 "1433", "--port",    "1435",
						 "--write-pcap", file,	 "--snaplen", "256"};
		if (diagnosed_only)
			args.push_back("--write-pcap-diagnosed");
		pid_t tracer = start_tracer(false, args, name);
		ASSERT_GT(tracer, 0) << log(name);
		auto ok = tsql({"-H", lab_->server_ip(), "-p", "1433", "-U", "sa", "-P", "lab"}, 20s);
		EXPECT_EQ(ok.exit_code, 0) << ok.output;
		// nothing listens on 1435: the server's kernel refuses it
		auto refused = tsql({"-H", lab_->server_ip(), "-p", "1435", "-U", "sa", "-P", "lab"}, 20s);
		EXPECT_NE(refused.exit_code, 0) << refused.output;
		ASSERT_TRUE(wait_until(
			[&] { return labtest::read_connection_records(dir_.file(name + ".out")).size() >= 2; }, 10s))
			<< log(name);
		ASSERT_EQ(lab_->stop(tracer, SIGINT, 20000), 0) << log(name);

		auto conns = labtest::read_connection_records(dir_.file(name + ".out"));
		std::map<uint64_t, json> by_id;
		uint64_t refused_id = 0, ok_id = 0;
		for (const auto& c : conns) {
			by_id[c["tdsbpf.connection_id"]] = c;
			(c["server.port"] == 1435 ? refused_id : ok_id) = c["tdsbpf.connection_id"];
		}
		ASSERT_TRUE(refused_id && ok_id) << labtest::slurp(dir_.file(name + ".out"));
		EXPECT_TRUE(has_diagnosis(by_id[refused_id], "connection_refused")) << by_id[refused_id].dump();

		auto t = tdsbpf::lab::run_command({"tshark", "-r", file, "-d", "tcp.port==1433,tds", "-T", "fields",
						   "-e", "frame.comment", "-e", "tds.type", "-e",
						   "frame.interface_name"},
						  {}, "", 60s);
		ASSERT_EQ(t.exit_code, 0) << t.output;
		std::map<uint64_t, uint64_t> frames;
		std::set<std::string> tds_types;
		std::istringstream lines(t.output);
		for (std::string line; std::getline(lines, line);) {
			if (line.rfind("Running as user", 0) == 0)
				continue;
			auto at = line.find("tdsbpf.connection_id=");
			ASSERT_NE(at, std::string::npos) << line;
			frames[std::stoull(line.substr(at + 21))]++;
			std::istringstream f(line);
			std::string comment, type, iface;
			std::getline(f, comment, '\t');
			std::getline(f, type, '\t');
			std::getline(f, iface, '\t');
			if (!type.empty())
				tds_types.insert(type);
			EXPECT_EQ(iface, lab_->server_if()) << line;
		}
		auto packets_of = [&](uint64_t id) {
			const json& p = by_id[id]["tcp"]["packets"];
			return p["client_to_server"].get<uint64_t>() + p["server_to_client"].get<uint64_t>();
		};
		EXPECT_EQ(frames[refused_id], packets_of(refused_id)) << name;
		if (!diagnosed_only) {
			EXPECT_EQ(frames.size(), 2u);
			EXPECT_EQ(frames[ok_id], packets_of(ok_id));
			// PRELOGIN (18), the login's reply (4), the batch (1)
			for (const char* type : {"18", "4", "1"})
				EXPECT_TRUE(tds_types.count(type)) << type << " missing; " << t.output;
		} else {
			EXPECT_EQ(frames.size(), 1u) << t.output;
			EXPECT_EQ(frames.count(ok_id), 0u);
			EXPECT_NE(log(name).find("of connections with no finding left out"), std::string::npos)
				<< log(name);
		}
	}
}

// Two services in two cgroups log in through the same server, itself in a
// cgroup of its own: each end of each record names its service, from the
// client's side and from the server's; with --metrics-owner-labels the
// metrics count them by service.
TEST_F(LiveLookups, TwoServicesInTwoCgroupsAreToldApart)
{
	REQUIRE_TSQL();
	TDSBPF_REQUIRE(have("curl"), "curl not installed (Debian package curl)");
	std::string mount = cgroup2_mount();
	TDSBPF_REQUIRE(!mount.empty(), "no cgroup2 mount");
	Cgroups cg(mount);
	std::string top = "tdsbpf-owners-" + std::to_string(getpid()) + ".slice";
	std::string a = cg.make(top + "/tdsbpf-app-a.service");
	std::string b = cg.make(top + "/tdsbpf-app-b.service");
	std::string s = cg.make(top + "/tdsbpf-sql.service");
	ASSERT_GT(start_server({"--port", "1433"}, "server", s), 0) << log("server");
	pid_t client_side =
		start_tracer(true, {"--metrics-addr", "127.0.0.1:9466", "--metrics-owner-labels"}, "client", true);
	ASSERT_GT(client_side, 0) << log("client");
	pid_t server_side = start_tracer(false, {}, "server-side", true);
	ASSERT_GT(server_side, 0) << log("server-side");
	for (const auto& dir : {a, b, a}) {
		auto r = tsql({"-H", lab_->server_ip(), "-p", "1433", "-U", "sa", "-P", "lab"}, 20s, dir);
		EXPECT_EQ(r.exit_code, 0) << r.output;
	}
	auto three = [&](const std::string& n) {
		return labtest::read_connection_records(dir_.file(n + ".out")).size() == 3;
	};
	ASSERT_TRUE(wait_until([&] { return three("client") && three("server-side"); }, 10s)) << log("client");
	std::string page;
	ASSERT_TRUE(wait_until(
		[&] {
			page = lab_->sh(lab_->client_ns(), "curl -s http://127.0.0.1:9466/metrics");
			return page.find("tdsbpf_owner_connections_total") != std::string::npos &&
			       page.find("tdsbpf-app-b.service") != std::string::npos;
		},
		5s))
		<< page;
	EXPECT_NE(page.find("tdsbpf_owner_connections_total{server=\"" + lab_->server_ip() +
			    ":1433\",side=\"client\",owner=\"tdsbpf-app-a.service\"} 2"),
		  std::string::npos)
		<< page;
	EXPECT_NE(page.find("side=\"client\",owner=\"tdsbpf-app-b.service\"} 1"), std::string::npos) << page;
	ASSERT_EQ(lab_->stop(client_side, SIGINT, 20000), 0) << log("client");
	ASSERT_EQ(lab_->stop(server_side, SIGINT, 20000), 0) << log("server-side");

	auto units = [](const std::vector<json>& recs, const char* side) {
		std::vector<std::string> out;
		for (const auto& r : recs) {
			const json& o = r["owners"][side];
			out.push_back(o.is_object() && o["systemd.unit"].is_string()
					      ? o["systemd.unit"].get<std::string>()
					      : "-");
		}
		return out;
	};
	auto from_client = labtest::read_connection_records(dir_.file("client.out"));
	auto from_server = labtest::read_connection_records(dir_.file("server-side.out"));
	std::vector<std::string> apps = {"tdsbpf-app-a.service", "tdsbpf-app-b.service", "tdsbpf-app-a.service"};
	// the client's side sees its SYNs leave; the server's SYN+ACKs arrive
	EXPECT_EQ(units(from_client, "client"), apps);
	EXPECT_EQ(units(from_client, "server"), std::vector<std::string>(3, "-"));
	// the server's side sees its SYN+ACKs leave, from the listener's cgroup
	EXPECT_EQ(units(from_server, "server"), std::vector<std::string>(3, "tdsbpf-sql.service"));
	EXPECT_EQ(units(from_server, "client"), std::vector<std::string>(3, "-"));
	const json& o = from_client[0]["owners"]["client"];
	EXPECT_EQ(o["cgroup.path"], "/" + top + "/tdsbpf-app-a.service") << o.dump();
	struct stat st {};
	ASSERT_EQ(stat(a.c_str(), &st), 0);
	EXPECT_EQ(o["cgroup.id"], static_cast<uint64_t>(st.st_ino));
}
