// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Kerberos for real: a MIT realm of the test's own (krb5kdc, its database
// and stash, principals and a keytab made with kadmin.local, all in a
// temporary directory), a ticket from kinit, and FreeTDS tsql logging in to
// the lab server with it, which verifies the ticket through GSS-API with the
// keytab of its MSSQLSvc principal. The KDC, the lab server and tsql share
// the test's network namespace (tests/support/private-netns); tsql alone
// gets a mount namespace whose /etc/hosts names the server, as
// `ip netns exec` does with /etc/netns/<ns>/hosts, so the name FreeTDS
// turns into an SPN needs no DNS. Nothing under /etc is read by Kerberos
// or changed.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "lab_server.h"

namespace labtest {
namespace {

using namespace std::chrono_literals;

constexpr const char* kRealm = "TDSBPF.TEST";
// FreeTDS asks for MSSQLSvc/<name>:<port>, where a name without a dot is
// first made canonical (getaddrinfo with AI_CANONNAME) and a name with one
// is taken as it is; the test connects to the short name, as users do.
constexpr const char* kShortHost = "sql";
constexpr const char* kHost = "sql.lab.tdsbpf.test";

bool have_program(const std::string& name)
{
	return run_command({"sh", "-c", "command -v " + name}, {}, {}, std::chrono::seconds(5)).exit_code == 0;
}

std::string slurp(const std::string& path)
{
	std::ifstream f(path);
	std::stringstream ss;
	ss << f.rdbuf();
	return ss.str();
}

std::string spn_for(int port)
{
	return "MSSQLSvc/" + std::string(kHost) + ":" + std::to_string(port);
}

// Sets environment variables for this process and what it starts (the lab
// server inherits them: it has no other way in), and puts back the old
// values at scope exit.
class ScopedEnv {
public:
	void set(const std::string& name, const std::string& value)
	{
		if (!saved_.count(name)) {
			const char* old = std::getenv(name.c_str());
			saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
		}
		setenv(name.c_str(), value.c_str(), 1);
	}
	~ScopedEnv()
	{
		for (const auto& [name, old] : saved_) {
			if (old)
				setenv(name.c_str(), old->c_str(), 1);
			else
				unsetenv(name.c_str());
		}
	}

private:
	std::map<std::string, std::optional<std::string>> saved_;
};

// The realm: krb5.conf and kdc.conf in `dir` (KRB5_CONFIG and
// KRB5_KDC_PROFILE point there, KRB5CCNAME and the replay cache too), a
// database made by kdb5_util, and krb5kdc on 127.0.0.1:88 of the test's
// namespace. The KDC dies with the test: stopped in the destructor, and by
// its parent-death signal should the test itself die.
class Realm {
public:
	explicit Realm(const TempDir& dir) : dir_(dir)
	{
		const std::string d = dir.path();
		std::ofstream(dir.file("krb5.conf"))
			<< "[libdefaults]\n"
			<< "\tdefault_realm = " << kRealm << "\n"
			<< "\tdns_lookup_kdc = false\n"
			<< "\tdns_lookup_realm = false\n"
			<< "\tdns_canonicalize_hostname = false\n"
			<< "\trdns = false\n"
			<< "[realms]\n\t" << kRealm << " = {\n\t\tkdc = 127.0.0.1:88\n\t}\n"
			<< "[domain_realm]\n\t.lab.tdsbpf.test = " << kRealm << "\n";
		std::ofstream(dir.file("kdc.conf")) << "[kdcdefaults]\n"
						    << "\tkdc_listen = 127.0.0.1:88\n"
						    << "\tkdc_tcp_listen = 127.0.0.1:88\n"
						    << "[realms]\n\t" << kRealm << " = {\n"
						    << "\t\tdatabase_name = " << d << "/principal\n"
						    << "\t\tkey_stash_file = " << d << "/stash\n"
						    << "\t\tacl_file = " << d << "/kadm5.acl\n"
						    << "\t}\n"
						    << "[logging]\n\tkdc = FILE:" << d << "/kdc.log\n";
		env_.set("KRB5_CONFIG", dir.file("krb5.conf"));
		env_.set("KRB5_KDC_PROFILE", dir.file("kdc.conf"));
		env_.set("KRB5CCNAME", "FILE:" + dir.file("ccache"));
		env_.set("KRB5RCACHEDIR", d);
		env_.set("KRB5_KTNAME", "FILE:" + dir.file("no-default.keytab"));

		auto db = run_command({"kdb5_util", "create", "-s", "-r", kRealm, "-P", "tdsbpf-master-key"}, {}, {},
				      30s);
		if (db.exit_code != 0) {
			error_ = "kdb5_util create: " + db.output;
			return;
		}
		tdsbpf::lab::SpawnOptions opt;
		opt.stdout_path = dir.file("krb5kdc.out");
		kdc_ = tdsbpf::lab::spawn({"setpriv", "--pdeathsig", "KILL", "--", "krb5kdc", "-n"}, opt);
		for (int i = 0; i < 200; ++i) {
			if (kdc_log().find("commencing operation") != std::string::npos)
				return;
			std::this_thread::sleep_for(25ms);
		}
		error_ = "krb5kdc did not start: " + slurp(dir.file("krb5kdc.out")) + kdc_log();
	}

	~Realm()
	{
		if (kdc_ > 0)
			tdsbpf::lab::stop(kdc_, SIGTERM, 5s);
		if (::testing::Test::HasFailure())
			std::printf("---- KDC log ----\n%s---- end of KDC log ----\n", kdc_log().c_str());
	}

	Realm(const Realm&) = delete;
	Realm& operator=(const Realm&) = delete;

	const std::string& error() const { return error_; }
	std::string kdc_log() const { return slurp(dir_.file("kdc.log")); }

	bool add_user(const std::string& name, const std::string& password)
	{
		return kadmin("addprinc -pw " + password + " " + name, "created.");
	}
	// A service principal with a random key, exported to `keytab`.
	bool add_service(const std::string& principal, const std::string& keytab)
	{
		return kadmin("addprinc -randkey " + principal, "created.") &&
		       kadmin("ktadd -k " + keytab + " " + principal, "added to keytab");
	}
	CommandResult kinit(const std::string& user, const std::string& password)
	{
		return run_command({"kinit", user}, {}, password + "\n", 15s);
	}
	std::string klist() { return run_command({"klist"}, {}, {}, 10s).output; }

private:
	// kadmin.local exits 0 also when the query failed: its output tells.
	bool kadmin(const std::string& query, const std::string& success)
	{
		auto r = run_command({"kadmin.local", "-q", query}, {}, {}, 30s);
		bool ok = r.exit_code == 0 && r.output.find(success) != std::string::npos;
		EXPECT_TRUE(ok) << query << ": " << r.output;
		return ok;
	}

	const TempDir& dir_;
	ScopedEnv env_;
	std::string error_;
	pid_t kdc_ = -1;
};

#define REQUIRE_KERBEROS_TOOLS()                                                                             \
	do {                                                                                                 \
		if (!have_program("tsql"))                                                                   \
			LAB_DRIVER_MISSING("FreeTDS tsql not installed (Debian package freetds-bin)");       \
		if (!have_program("krb5kdc") || !have_program("kdb5_util"))                                  \
			LAB_DRIVER_MISSING("MIT KDC not installed (Debian package krb5-kdc)");               \
		if (!have_program("kadmin.local"))                                                           \
			LAB_DRIVER_MISSING("kadmin.local not installed (Debian package krb5-admin-server)"); \
		if (!have_program("kinit"))                                                                  \
			LAB_DRIVER_MISSING("kinit not installed (Debian package krb5-user)");                \
	} while (0)

// The lab's side of every test: a realm with user joe and his ticket, and
// lab servers with the keytab of MSSQLSvc/<host>:<port>. A server starts
// before its principal exists (its port is the kernel's choice and part of
// the SPN): it reads the keytab when a login comes.
class LabKerberos : public ::testing::Test {
protected:
	void SetUp() override
	{
		REQUIRE_KERBEROS_TOOLS();
		realm_.emplace(dir_);
		ASSERT_EQ(realm_->error(), "");
		ASSERT_TRUE(realm_->add_user("joe", "joe-password"));
		auto k = realm_->kinit("joe", "joe-password");
		ASSERT_EQ(k.exit_code, 0) << k.output;
	}

	// A lab server and the service principal for its port, whose keys go to
	// keytab() (the server is told about that keytab unless `args` says
	// otherwise).
	LabServer& start_server(std::vector<std::string> args = {"--kerberos-keytab", "KEYTAB"})
	{
		for (auto& a : args) {
			if (a == "KEYTAB")
				a = keytab();
		}
		servers_.push_back(std::make_unique<LabServer>(args));
		LabServer& server = *servers_.back();
		EXPECT_TRUE(server.started()) << server.log();
		if (server.started()) {
			EXPECT_TRUE(realm_->add_service(spn_for(server.port()), keytab()));
		}
		return server;
	}

	std::string keytab() const { return dir_.file("sql.keytab"); }

	// tsql with no user name: FreeTDS then logs in with GSS-API (Kerberos).
	CommandResult run_tsql(const LabServer& server, const std::string& sql,
			       const std::string& encryption = "request", const std::string& extra_conf = {},
			       const std::map<std::string, std::string>& env = {})
	{
		std::string conf = dir_.file("freetds.conf"), hosts = dir_.file("hosts");
		std::ofstream(conf) << "[lab]\n\thost = " << kShortHost << "\n\tport = " << server.port()
				    << "\n\ttds version = 7.4\n\tencryption = " << encryption << "\n"
				    << extra_conf;
		std::ofstream(hosts) << "127.0.0.1\t" << kHost << " " << kShortHost << "\n127.0.0.1\tlocalhost\n";
		std::map<std::string, std::string> all = {{"FREETDSCONF", conf}, {"TDSDUMP", ""}};
		all.insert(env.begin(), env.end());
		return run_command({"unshare", "--mount", "--", "sh", "-c",
				    "mount --bind \"$0\" /etc/hosts && exec \"$@\"", hosts, "tsql", "-S", "lab"},
				   all, sql + "\ngo\nexit\n", 20s);
	}

	TempDir dir_;
	std::optional<Realm> realm_;
	std::vector<std::unique_ptr<LabServer>> servers_;
};

const char* kUntrusted = "Login failed. The login is from an untrusted domain";

TEST_F(LabKerberos, TsqlLogsInWithATicket)
{
	LabServer& server = start_server();
	auto r = run_tsql(server, "SELECT SUSER_NAME()");
	ASSERT_FALSE(r.timed_out) << r.output;
	EXPECT_NE(r.output.find("\njoe@TDSBPF.TEST\n"), std::string::npos) << r.output;
	EXPECT_NE(r.output.find("(1 row affected)"), std::string::npos) << r.output;
	// The lab verified the ticket, answered FreeTDS's request for mutual
	// authentication, and knows who came.
	EXPECT_TRUE(server.wait_for_log("Kerberos token of "));
	EXPECT_TRUE(server.wait_for_log("Kerberos: authenticated 'joe@TDSBPF.TEST', mutual authentication token"));
	EXPECT_TRUE(server.wait_for_log("login ok for 'joe@TDSBPF.TEST'"));
	// FreeTDS asked the KDC for the SPN of the canonical name and the port.
	const std::string spn = spn_for(server.port()) + "@" + kRealm;
	EXPECT_NE(realm_->klist().find(spn), std::string::npos) << realm_->klist();
	EXPECT_NE(realm_->kdc_log().find("joe@TDSBPF.TEST for " + spn), std::string::npos);
}

// --kerberos-principal narrows the keytab to one service: a client told
// the SPN of the default port (as behind a port forward) gets in, one that
// asks for the SPN of the port it reached does not, though both keys are in
// the keytab.
TEST_F(LabKerberos, ServicePrincipalOption)
{
	const std::string default_port_spn = std::string("MSSQLSvc/") + kHost + ":1433";
	ASSERT_TRUE(realm_->add_service(default_port_spn, keytab()));
	LabServer& server = start_server({"--kerberos-keytab", "KEYTAB", "--kerberos-principal", default_port_spn});
	auto ok = run_tsql(server, "SELECT SUSER_NAME()", "request", "\tspn = " + default_port_spn + "\n");
	EXPECT_NE(ok.output.find("\njoe@TDSBPF.TEST\n"), std::string::npos) << ok.output;
	auto refused = run_tsql(server, "SELECT SUSER_NAME()");
	EXPECT_NE(refused.output.find(kUntrusted), std::string::npos) << refused.output;
	EXPECT_TRUE(server.wait_for_log("integrated login refused (18452): Kerberos: "));
}

// The ticket is genuine but for another service, whose key the lab does
// not have: GSS-API cannot decrypt it, and the login fails as on SQL Server.
TEST_F(LabKerberos, TicketForAnotherServiceIsRefused)
{
	LabServer& server = start_server();
	const std::string other = "MSSQLSvc/other.lab.tdsbpf.test:1433";
	ASSERT_TRUE(realm_->add_service(other, dir_.file("other.keytab")));
	auto r = run_tsql(server, "SELECT SUSER_NAME()", "request", "\tspn = " + other + "\n");
	EXPECT_NE(r.output.find(kUntrusted), std::string::npos) << r.output;
	EXPECT_EQ(r.output.find("joe@TDSBPF.TEST"), std::string::npos) << r.output;
	EXPECT_TRUE(server.wait_for_log("integrated login refused (18452): Kerberos: "));
	EXPECT_NE(server.log().find("MSSQLSvc/other.lab.tdsbpf.test:1433@TDSBPF.TEST not found in keytab"),
		  std::string::npos);
	EXPECT_EQ(server.log().find("login ok"), std::string::npos);
	// The KDC did issue that ticket: the refusal is the server's.
	EXPECT_NE(realm_->klist().find(other + "@" + kRealm), std::string::npos) << realm_->klist();
}

// Without a ticket FreeTDS cannot make a Kerberos token: it gives up
// before sending the LOGIN7.
TEST_F(LabKerberos, NoTicketNoLogin)
{
	LabServer& server = start_server();
	auto r = run_tsql(server, "SELECT SUSER_NAME()", "request", {},
			  {{"KRB5CCNAME", "FILE:" + dir_.file("empty-ccache")}});
	EXPECT_FALSE(r.timed_out) << r.output;
	EXPECT_NE(r.exit_code, 0) << r.output;
	EXPECT_NE(r.output.find("Adaptive Server connection failed"), std::string::npos) << r.output;
	EXPECT_EQ(r.output.find("joe@TDSBPF.TEST"), std::string::npos) << r.output;
	std::this_thread::sleep_for(200ms);
	EXPECT_EQ(server.log().find("<- LOGIN7"), std::string::npos);
}

// A server without a keytab, or with one it cannot read, refuses a real
// ticket with 18452.
TEST_F(LabKerberos, NoKeytabRefuses)
{
	LabServer& none = start_server({});
	auto r = run_tsql(none, "SELECT SUSER_NAME()");
	EXPECT_NE(r.output.find(kUntrusted), std::string::npos) << r.output;
	EXPECT_TRUE(none.wait_for_log("integrated login refused (18452): Kerberos token, but no --kerberos-keytab"));

	LabServer& missing = start_server({"--kerberos-keytab", dir_.file("missing.keytab")});
	EXPECT_TRUE(missing.wait_for_log("not readable now"));
	r = run_tsql(missing, "SELECT SUSER_NAME()");
	EXPECT_NE(r.output.find(kUntrusted), std::string::npos) << r.output;
	EXPECT_TRUE(missing.wait_for_log("integrated login refused (18452): Kerberos: no acceptor credentials"));
}

// A principal named as a fault fails after authentication, with 18456 as
// a known user without a login does.
TEST_F(LabKerberos, FaultByPrincipalName)
{
	LabServer& server = start_server();
	ASSERT_TRUE(realm_->add_user("fail_login", "fail-password"));
	auto k = realm_->kinit("fail_login", "fail-password");
	ASSERT_EQ(k.exit_code, 0) << k.output;
	auto r = run_tsql(server, "SELECT 1");
	EXPECT_NE(r.output.find("Login failed for user 'fail_login@TDSBPF.TEST'"), std::string::npos) << r.output;
	EXPECT_TRUE(server.wait_for_log("Kerberos: authenticated 'fail_login@TDSBPF.TEST'"));
	EXPECT_TRUE(server.wait_for_log("fault fail_login"));
}

// What Wireshark makes of the login: the LOGIN7 (in the clear, the server
// not offering TLS) has fIntSecurity and a GSS-API Kerberos AP-REQ for the
// lab's SPN in its SSPI field, and the reply carries an SSPI token (the
// AP-REP of mutual authentication).
TEST_F(LabKerberos, WiresharkSeesKerberosInLogin7)
{
	if (!have_program("tcpdump"))
		LAB_DRIVER_MISSING("tcpdump not installed (Debian package tcpdump)");
	if (!have_program("tshark"))
		LAB_DRIVER_MISSING("tshark not installed (Debian package tshark)");
	LabServer& server = start_server({"--kerberos-keytab", "KEYTAB", "--encryption", "not-supported"});
	const std::string port = std::to_string(server.port());
	const std::string pcap = dir_.file("login.pcap"), capture_log = dir_.file("tcpdump.log");
	// The namespace's own loopback: nothing but this test is on it. Without
	// --immediate-mode the last packets wait in a ring block that is handed
	// over only after a timeout, and are lost when tcpdump stops first.
	tdsbpf::lab::SpawnOptions opt;
	opt.stdout_path = capture_log;
	pid_t tcpdump = tdsbpf::lab::spawn({"setpriv", "--pdeathsig", "KILL", "--", "tcpdump", "-i", "lo",
					    "--immediate-mode", "-U", "-w", pcap, "tcp", "port", port},
					   opt);
	ASSERT_GT(tcpdump, 0);
	bool capturing = false;
	for (int i = 0; i < 200 && !capturing; ++i) {
		capturing = slurp(capture_log).find("listening on lo") != std::string::npos;
		if (!capturing)
			std::this_thread::sleep_for(25ms);
	}
	if (!capturing)
		tdsbpf::lab::stop(tcpdump, SIGKILL, 2s);
	ASSERT_TRUE(capturing) << "tcpdump did not start: " << slurp(capture_log);
	auto r = run_tsql(server, "SELECT SUSER_NAME()", "off");
	std::this_thread::sleep_for(200ms);
	tdsbpf::lab::stop(tcpdump, SIGINT, 5s);
	EXPECT_NE(r.output.find("\njoe@TDSBPF.TEST\n"), std::string::npos) << r.output;

	auto read = run_command({"tshark",
				 "-r",
				 pcap,
				 "-d",
				 "tcp.port==" + port + ",tds",
				 "-T",
				 "fields",
				 "-E",
				 "separator=|",
				 "-E",
				 "aggregator=,",
				 "-e",
				 "tds.type",
				 "-e",
				 "tds.7login.option_flags2",
				 "-e",
				 "gss-api.OID",
				 "-e",
				 "spnego.krb5.tok_id",
				 "-e",
				 "kerberos.msg_type",
				 "-e",
				 "kerberos.realm",
				 "-e",
				 "kerberos.SNameString",
				 "-e",
				 "tds.sspi",
				 "-e",
				 "_ws.malformed"},
				{}, {}, 30s);
	std::vector<std::vector<std::string>> logins, sspi_replies;
	std::istringstream lines(read.output);
	for (std::string line; std::getline(lines, line);) {
		if (std::count(line.begin(), line.end(), '|') != 8)
			continue; // tshark's warning about running as root
		std::vector<std::string> f(1);
		for (char c : line) {
			if (c == '|')
				f.emplace_back();
			else
				f.back() += c;
		}
		EXPECT_EQ(f[8], "") << line; // nothing malformed
		if (f[0] == "16")
			logins.push_back(f);
		if (f[0] == "4" && !f[7].empty())
			sspi_replies.push_back(f);
	}
	ASSERT_EQ(logins.size(), 1u) << read.output << slurp(capture_log);
	const auto& login = logins[0];
	EXPECT_TRUE(std::stoul(login[1], nullptr, 16) & 0x80) << "fIntSecurity: " << login[1];
	EXPECT_EQ(login[2], "1.2.840.113554.1.2.2"); // GSS-API, mechanism Kerberos 5
	EXPECT_EQ(login[3], "0x0001");		     // KRB5_AP_REQ
	EXPECT_EQ(login[4], "14");		     // krb-ap-req
	EXPECT_EQ(login[5], kRealm);
	EXPECT_EQ(login[6], "MSSQLSvc," + std::string(kHost) + ":" + port);
	EXPECT_EQ(sspi_replies.size(), 1u) << read.output;
}

} // namespace
} // namespace labtest
