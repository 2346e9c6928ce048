// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Running tdsbpf as a service: under exactly the capabilities its systemd
// unit gives it (setpriv), telling readiness the way Type=notify wants
// (sd_notify on NOTIFY_SOCKET); and the Debian package built by CPack,
// installed with dpkg, run, checked by systemd-analyze, and purged.
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
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

// The value of a directive in deploy/systemd/tdsbpf.service.
std::string unit_value(const std::string& key)
{
	std::ifstream in(TDSBPF_SYSTEMD_UNIT);
	std::string line;
	while (std::getline(in, line))
		if (line.rfind(key + "=", 0) == 0)
			return line.substr(key.size() + 1);
	return {};
}

// A datagram socket at path, as systemd's notify socket is.
class NotifySocket {
public:
	explicit NotifySocket(const std::string& path) : path_(path)
	{
		fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		sockaddr_un a{};
		a.sun_family = AF_UNIX;
		std::snprintf(a.sun_path, sizeof(a.sun_path), "%s", path.c_str());
		if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
			close(fd_);
			fd_ = -1;
		}
	}
	~NotifySocket()
	{
		if (fd_ >= 0)
			close(fd_);
		unlink(path_.c_str());
	}
	bool ok() const { return fd_ >= 0; }
	// The next message, or "" after timeout_ms.
	std::string next(int timeout_ms)
	{
		pollfd p{fd_, POLLIN, 0};
		if (poll(&p, 1, timeout_ms) != 1)
			return {};
		char buf[4096];
		ssize_t n = recv(fd_, buf, sizeof(buf), 0);
		return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
	}

private:
	std::string path_;
	int fd_ = -1;
};

class ServiceTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		TDSBPF_REQUIRE(geteuid() == 0, "needs root (network namespaces, BPF, dpkg)");
		TDSBPF_REQUIRE(have("setpriv"), "setpriv not installed (Debian package util-linux)");
		TDSBPF_REQUIRE(have("tsql"), "FreeTDS tsql not installed (Debian package freetds-bin)");
	}
	labtest::TempDir dir_;
};

// The unit's capability bounding set is all the tracer has, from its first
// instruction (setpriv, as systemd would set it up): it loads, attaches,
// says READY=1 on the notify socket only once attached, traces a login
// whole, and says STOPPING=1 when stopped.
TEST_F(ServiceTest, TracesWithOnlyTheUnitsCapabilities)
{
	std::string caps = unit_value("CapabilityBoundingSet");
	ASSERT_EQ(caps, "CAP_BPF CAP_PERFMON CAP_NET_ADMIN");
	ASSERT_EQ(unit_value("Type"), "notify");
	// CAP_BPF CAP_PERFMON CAP_NET_ADMIN -> -all,+bpf,+perfmon,+net_admin
	std::string bound = "-all";
	std::istringstream words(caps);
	for (std::string c; words >> c;) {
		std::string name = c.substr(4);
		for (auto& ch : name)
			ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
		bound += ",+" + name;
	}

	tdsbpf::lab::NetnsLab lab;
	TDSBPF_REQUIRE(lab.ok(), "cannot build the test network: " + lab.error());
	ASSERT_GT(labtest::start_lab_server(lab, dir_), 0);
	NotifySocket notify(dir_.file("notify"));
	ASSERT_TRUE(notify.ok());
	pid_t tracer = lab.spawn(lab.server_ns(),
				 {"env", "NOTIFY_SOCKET=" + dir_.file("notify"), "setpriv", "--bounding-set=" + bound,
				  "--inh-caps=-all", "--", TDSBPF_BIN, "--iface", lab.server_if()},
				 dir_.file("records.ndjson"), dir_.file("tracer.log"));
	std::string ready = notify.next(60000);
	ASSERT_NE(ready.find("READY=1"), std::string::npos) << ready << labtest::slurp(dir_.file("tracer.log"));
	EXPECT_NE(ready.find("STATUS=tracing " + lab.server_if()), std::string::npos) << ready;
	// only the three, in every set
	std::ifstream st("/proc/" + std::to_string(tracer) + "/status");
	std::string line, bnd, eff;
	while (std::getline(st, line)) {
		if (line.rfind("CapBnd:", 0) == 0)
			bnd = line.substr(7);
		if (line.rfind("CapEff:", 0) == 0)
			eff = line.substr(7);
	}
	// CAP_NET_ADMIN 12, CAP_PERFMON 38, CAP_BPF 39
	const uint64_t three = (1ull << 12) | (1ull << 38) | (1ull << 39);
	EXPECT_EQ(std::stoull(bnd, nullptr, 16), three) << bnd;
	EXPECT_EQ(std::stoull(eff, nullptr, 16) & ~three, 0u) << eff;

	std::ofstream(dir_.file("freetds.conf"))
		<< "[lab]\n\thost = " << lab.server_ip() << "\n\tport = 1433\n\ttds version = 7.4\n";
	auto r = labtest::run_command(
		{"ip", "netns", "exec", lab.client_ns(), "tsql", "-S", "lab", "-U", "sa", "-P", "lab"},
		{{"FREETDSCONF", dir_.file("freetds.conf")}}, "SELECT 1\ngo\nexit\n", std::chrono::seconds(30));
	ASSERT_EQ(r.exit_code, 0) << r.output;
	std::this_thread::sleep_for(std::chrono::milliseconds(1500));
	EXPECT_EQ(lab.stop(tracer, SIGTERM), 0) << labtest::slurp(dir_.file("tracer.log"));
	std::string stopping;
	for (std::string m; (m = notify.next(2000)).size();)
		stopping += m;
	EXPECT_NE(stopping.find("STOPPING=1"), std::string::npos) << stopping;
	auto records = labtest::read_connection_records(dir_.file("records.ndjson"));
	ASSERT_EQ(records.size(), 1u) << labtest::slurp(dir_.file("tracer.log"));
	EXPECT_EQ(records[0]["login"]["outcome"], "success");
	EXPECT_EQ(records[0]["close"]["kind"], "four_way");
}

// The .deb: CPack builds it from this build, dpkg installs it, the binary,
// man page, unit, defaults, schema and dashboard are where they belong,
// the installed binary reads a capture, systemd-analyze finds nothing
// wrong with the unit, and dpkg --purge takes everything away again.
TEST_F(ServiceTest, DebianPackageInstallsRunsAndPurges)
{
	TDSBPF_REQUIRE(have("cpack") && have("dpkg") && have("dpkg-shlibdeps"),
		       "cpack, dpkg and dpkg-shlibdeps are needed (cmake, dpkg-dev)");
	TDSBPF_REQUIRE(std::system("dpkg -s tdsbpf >/dev/null 2>&1") != 0,
		       "a tdsbpf package is installed already; this test would remove it");
	std::string out =
		labtest::run_command({"cpack", "-G", "DEB", "--config", TDSBPF_CPACK_CONFIG, "-B", dir_.file("deb")},
				     {}, "", std::chrono::seconds(300))
			.output;
	std::string deb = dir_.file("deb") + "/tdsbpf_" TDSBPF_PROJECT_VERSION "_amd64.deb";
	ASSERT_TRUE(std::ifstream(deb).good()) << out;
	auto install = labtest::run_command({"dpkg", "-i", deb}, {}, "", std::chrono::seconds(120));
	ASSERT_EQ(install.exit_code, 0) << install.output;
	struct Purge {
		~Purge() { std::system("dpkg --purge tdsbpf >/dev/null 2>&1"); }
	} purge;

	for (const char* f : {"/usr/sbin/tdsbpf", "/usr/share/man/man8/tdsbpf.8", "/lib/systemd/system/tdsbpf.service",
			      "/etc/default/tdsbpf", "/usr/share/tdsbpf/connection.schema.json",
			      "/usr/share/tdsbpf/grafana/tdsbpf-dashboard.json"})
		EXPECT_TRUE(std::ifstream(f).good()) << f;
	auto version = labtest::run_command({"/usr/sbin/tdsbpf", "--version"}, {}, "", std::chrono::seconds(10));
	EXPECT_EQ(version.output, "tdsbpf " TDSBPF_PROJECT_VERSION "\n");
	auto read = labtest::run_command({"/usr/sbin/tdsbpf", "--read",
					  std::string(TDSBPF_CAPTURES_DIR) + "/sql2022-tds74-tls-login-select.pcap"},
					 {}, "", std::chrono::seconds(30));
	EXPECT_EQ(read.exit_code, 0) << read.output;
	EXPECT_NE(read.output.find("\"tdsbpf.record\":\"connection\""), std::string::npos) << read.output;
	// it prints what it does not like (and exits 0 for much of it)
	if (have("systemd-analyze")) {
		auto v = labtest::run_command({"systemd-analyze", "verify", "/lib/systemd/system/tdsbpf.service"}, {},
					      "", std::chrono::seconds(60));
		EXPECT_EQ(v.exit_code, 0) << v.output;
		EXPECT_EQ(v.output, "") << v.output;
	}
	auto purged = labtest::run_command({"dpkg", "--purge", "tdsbpf"}, {}, "", std::chrono::seconds(120));
	EXPECT_EQ(purged.exit_code, 0) << purged.output;
	for (const char* f : {"/usr/sbin/tdsbpf", "/etc/default/tdsbpf", "/lib/systemd/system/tdsbpf.service"})
		EXPECT_FALSE(std::ifstream(f).good()) << f;
}

} // namespace
