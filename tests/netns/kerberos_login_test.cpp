// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// A real Kerberos login, traced. The lab's server namespace has a MIT KDC
// (krb5kdc, its database and configuration in a temporary directory) and
// the lab server with the keytab of MSSQLSvc/sql.lab.tdsbpf.test:1433; the
// client namespace has kinit's ticket and FreeTDS tsql, which logs in with
// it (no user name); tdsbpf watches the server side's interface. The record
// must say Kerberos, integrated security, an authentication phase and no
// NTLM names, for a login in the clear, one with login-only TLS (the
// LOGIN7 hidden) and a ticket the server refuses.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lab/netns_lab.h"
#include "e2e.h"
#include "events_builder.h"
#include "lab_server.h"
#include "outputs.h"
#include "require.h"

using nlohmann::json;
using namespace std::chrono_literals;
using tdsbpf::e2e::have;
using tdsbpf::test::phase_names;

namespace {

constexpr const char* kRealm = "TDSBPF.TEST";
constexpr const char* kHost = "sql.lab.tdsbpf.test";
const std::string kSpn = std::string("MSSQLSvc/") + kHost + ":1433";

class KerberosLogin : public ::testing::Test {
protected:
	void SetUp() override
	{
		TDSBPF_REQUIRE(geteuid() == 0, "needs root (network namespaces, BPF)");
		TDSBPF_REQUIRE(have("tsql"), "FreeTDS tsql not installed (Debian package freetds-bin)");
		TDSBPF_REQUIRE(have("krb5kdc") && have("kdb5_util"), "MIT KDC not installed (Debian package krb5-kdc)");
		TDSBPF_REQUIRE(have("kadmin.local"), "kadmin.local not installed (Debian package krb5-admin-server)");
		TDSBPF_REQUIRE(have("kinit"), "kinit not installed (Debian package krb5-user)");
		lab_ = std::make_unique<tdsbpf::lab::NetnsLab>();
		TDSBPF_REQUIRE(lab_->ok(), "cannot build the test network: " + lab_->error());
		make_realm();
	}

	void TearDown() override
	{
		if (HasFailure()) {
			std::printf("---- lab server log ----\n%s\n---- KDC log ----\n%s\n---- tdsbpf log ----\n%s\n",
				    labtest::slurp(dir_.file("server.log")).c_str(),
				    labtest::slurp(dir_.file("kdc.log")).c_str(),
				    labtest::slurp(dir_.file("tracer.log")).c_str());
		}
		// the KDC, the server and tdsbpf go with the namespaces
		lab_.reset();
	}

	// What every Kerberos program here is given: the realm's files, never
	// the machine's.
	std::map<std::string, std::string> krb5_env() const
	{
		return {{"KRB5_CONFIG", dir_.file("krb5.conf")},
			{"KRB5_KDC_PROFILE", dir_.file("kdc.conf")},
			{"KRB5CCNAME", "FILE:" + dir_.file("ccache")},
			{"KRB5RCACHEDIR", dir_.path()},
			{"KRB5_KTNAME", "FILE:" + dir_.file("no-default.keytab")}};
	}

	std::vector<std::string> with_env(const std::vector<std::string>& argv) const
	{
		std::vector<std::string> out = {"env"};
		for (const auto& [k, v] : krb5_env())
			out.push_back(k + "=" + v);
		out.insert(out.end(), argv.begin(), argv.end());
		return out;
	}

	void kadmin(const std::string& query, const std::string& success)
	{
		auto r = labtest::run_command({"kadmin.local", "-q", query}, krb5_env(), {}, 30s);
		ASSERT_NE(r.output.find(success), std::string::npos) << query << ": " << r.output;
	}

	// The realm: the KDC listens on the server's address, port 88; joe has a
	// password, the SQL service a key in the server's keytab, and joe's
	// ticket is in the ccache the client uses.
	void make_realm()
	{
		const std::string ip = lab_->server_ip(), d = dir_.path();
		std::ofstream(dir_.file("krb5.conf"))
			<< "[libdefaults]\n\tdefault_realm = " << kRealm
			<< "\n\tdns_lookup_kdc = false\n\tdns_lookup_realm = false\n"
			<< "\tdns_canonicalize_hostname = false\n\trdns = false\n"
			<< "[realms]\n\t" << kRealm << " = {\n\t\tkdc = " << ip << ":88\n\t}\n";
		std::ofstream(dir_.file("kdc.conf"))
			<< "[kdcdefaults]\n\tkdc_listen = " << ip << ":88\n\tkdc_tcp_listen = " << ip << ":88\n"
			<< "[realms]\n\t" << kRealm << " = {\n\t\tdatabase_name = " << d << "/principal\n"
			<< "\t\tkey_stash_file = " << d << "/stash\n\t\tacl_file = " << d << "/kadm5.acl\n\t}\n"
			<< "[logging]\n\tkdc = FILE:" << d << "/kdc.log\n";
		auto db = labtest::run_command({"kdb5_util", "create", "-s", "-r", kRealm, "-P", "tdsbpf-master-key"},
					       krb5_env(), {}, 30s);
		ASSERT_EQ(db.exit_code, 0) << db.output;
		kadmin("addprinc -pw joe-password joe", "created.");
		kadmin("addprinc -randkey " + kSpn, "created.");
		kadmin("ktadd -k " + dir_.file("sql.keytab") + " " + kSpn, "added to keytab");
		kadmin("addprinc -randkey MSSQLSvc/other.lab.tdsbpf.test:1433", "created.");
		// killed with the test even if it dies: NetnsLab stops it otherwise
		lab_->spawn(lab_->server_ns(), with_env({"setpriv", "--pdeathsig", "KILL", "--", "krb5kdc", "-n"}),
			    dir_.file("kdc.out"));
		for (int i = 0;
		     i < 200 && labtest::slurp(dir_.file("kdc.log")).find("commencing operation") == std::string::npos;
		     i++)
			std::this_thread::sleep_for(25ms);
		ASSERT_NE(labtest::slurp(dir_.file("kdc.log")).find("commencing operation"), std::string::npos)
			<< labtest::slurp(dir_.file("kdc.out"));
		auto k = labtest::run_command({"ip", "netns", "exec", lab_->client_ns(), "kinit", "joe"}, krb5_env(),
					      "joe-password\n", 15s);
		ASSERT_EQ(k.exit_code, 0) << k.output;
	}

	// The lab server on port 1433 with the keytab, and tdsbpf on the
	// server side's interface.
	void start(const std::vector<std::string>& server_args)
	{
		std::vector<std::string> argv = {TDSBPF_LABSERVER_PATH,
						 "--listen",
						 lab_->server_ip(),
						 "--port",
						 "1433",
						 "--ready-file",
						 dir_.file("server.ready"),
						 "--kerberos-keytab",
						 dir_.file("sql.keytab"),
						 "--verbose"};
		argv.insert(argv.end(), server_args.begin(), server_args.end());
		lab_->spawn(lab_->server_ns(), with_env(argv), dir_.file("server.out"), dir_.file("server.log"));
		ASSERT_TRUE(tdsbpf::lab::wait_for_file(dir_.file("server.ready"), 20000ms))
			<< labtest::slurp(dir_.file("server.log"));
		tracer_ = lab_->spawn(
			lab_->server_ns(),
			{TDSBPF_BIN, "--iface", lab_->server_if(), "--ready-file", dir_.file("tracer.ready")},
			dir_.file("conns.ndjson"), dir_.file("tracer.log"));
		ASSERT_TRUE(tdsbpf::lab::wait_for_file(dir_.file("tracer.ready"), 60000ms))
			<< labtest::slurp(dir_.file("tracer.log"));
	}

	// tsql from the client namespace, with no user name (Kerberos), to
	// `host = sql`: its own /etc/hosts (a mount namespace, as `ip netns
	// exec` makes for /etc/netns/<ns>/hosts) names the server, so FreeTDS
	// turns it into the SPN sql.lab.tdsbpf.test:1433 without DNS.
	labtest::CommandResult tsql(const std::string& encryption, const std::string& extra_conf = {})
	{
		std::ofstream(dir_.file("freetds.conf")) << "[lab]\n\thost = sql\n\tport = 1433\n\ttds version = 7.4\n"
							 << "\tencryption = " << encryption << "\n"
							 << extra_conf;
		std::ofstream(dir_.file("hosts"))
			<< lab_->server_ip() << "\t" << kHost << " sql\n127.0.0.1\tlocalhost\n";
		auto env = krb5_env();
		env["FREETDSCONF"] = dir_.file("freetds.conf");
		env["TDSDUMP"] = "";
		return labtest::run_command({"ip", "netns", "exec", lab_->client_ns(), "unshare", "--mount", "--", "sh",
					     "-c", "mount --bind \"$0\" /etc/hosts && exec \"$@\"", dir_.file("hosts"),
					     "tsql", "-S", "lab"},
					    env, "SELECT SUSER_NAME()\ngo\nexit\n", 20s);
	}

	// tdsbpf's records once the connection has closed.
	std::vector<json> records()
	{
		// a closed connection's record comes 500 ms (close linger) after its close
		std::this_thread::sleep_for(1200ms);
		EXPECT_EQ(lab_->stop(tracer_, SIGINT), 0) << labtest::slurp(dir_.file("tracer.log"));
		return labtest::read_connection_records(dir_.file("conns.ndjson"));
	}

	// What every Kerberos login's record says, whatever its outcome.
	static void expect_kerberos(const json& r)
	{
		const json& auth = r["authentication"];
		EXPECT_EQ(auth["method"], "kerberos") << auth.dump();
		EXPECT_TRUE(auth["ntlm"].is_null()) << auth.dump();
		EXPECT_EQ(auth["sspi_server_tokens"], r["login"]["outcome"] == "success" ? 1 : 0) << auth.dump();
		EXPECT_EQ(auth["sspi_client_packets"], 0) << auth.dump();
	}

	labtest::TempDir dir_;
	std::unique_ptr<tdsbpf::lab::NetnsLab> lab_;
	pid_t tracer_ = 0;
};

// No TLS (the server does not offer it): tdsbpf reads the LOGIN7 with its
// fIntSecurity and Kerberos token, and the reply with the AP-REP and the
// LOGINACK.
TEST_F(KerberosLogin, InTheClear)
{
	ASSERT_NO_FATAL_FAILURE(start({"--encryption", "not-supported"}));
	auto r = tsql("off");
	EXPECT_NE(r.output.find("\njoe@TDSBPF.TEST\n"), std::string::npos) << r.output;
	auto recs = records();
	ASSERT_EQ(recs.size(), 1u) << labtest::slurp(dir_.file("conns.ndjson"));
	const json& rec = recs[0];
	SCOPED_TRACE(rec.dump());
	expect_kerberos(rec);
	EXPECT_EQ(rec["authentication"]["inferred"], false);
	EXPECT_EQ(rec["authentication"]["integrated_security"], true);
	EXPECT_EQ(rec["authentication"]["outcome"], "success");
	EXPECT_EQ(rec["login"]["outcome"], "success");
	EXPECT_TRUE(rec["login"]["error"].is_null());
	auto phases = phase_names(rec);
	auto at = [&](const std::string& name) { return std::find(phases.begin(), phases.end(), name); };
	ASSERT_NE(at("authentication"), phases.end());
	EXPECT_LT(at("login"), at("authentication"));
	EXPECT_LT(at("authentication"), at("login_ack"));
}

// Login-only TLS, the default: the LOGIN7 is encrypted, so tdsbpf sees no
// fIntSecurity; the SSPI token in the login reply shows an integrated
// login (only those have SSPI round trips) that is not NTLM, both inferred.
TEST_F(KerberosLogin, LoginOnlyTls)
{
	ASSERT_NO_FATAL_FAILURE(start({}));
	auto r = tsql("request");
	EXPECT_NE(r.output.find("\njoe@TDSBPF.TEST\n"), std::string::npos) << r.output;
	auto recs = records();
	ASSERT_EQ(recs.size(), 1u) << labtest::slurp(dir_.file("conns.ndjson"));
	const json& rec = recs[0];
	SCOPED_TRACE(rec.dump());
	expect_kerberos(rec);
	EXPECT_EQ(rec["authentication"]["inferred"], true);
	EXPECT_EQ(rec["authentication"]["integrated_security"], true);
	EXPECT_EQ(rec["login"]["outcome"], "success");
	auto phases = phase_names(rec);
	EXPECT_NE(std::find(phases.begin(), phases.end(), "authentication"), phases.end());
}

// A genuine ticket for a service whose key the server lacks: 18452.
TEST_F(KerberosLogin, RefusedTicket)
{
	ASSERT_NO_FATAL_FAILURE(start({"--encryption", "not-supported"}));
	auto r = tsql("off", "\tspn = MSSQLSvc/other.lab.tdsbpf.test:1433\n");
	EXPECT_NE(r.output.find("Msg 18452"), std::string::npos) << r.output;
	auto recs = records();
	ASSERT_EQ(recs.size(), 1u) << labtest::slurp(dir_.file("conns.ndjson"));
	const json& rec = recs[0];
	SCOPED_TRACE(rec.dump());
	expect_kerberos(rec);
	EXPECT_EQ(rec["authentication"]["integrated_security"], true);
	EXPECT_EQ(rec["authentication"]["outcome"], "failed");
	EXPECT_EQ(rec["login"]["outcome"], "failed");
	EXPECT_EQ(rec["login"]["error"]["number"], 18452);
	bool login_failed = false;
	for (const auto& d : rec["diagnoses"])
		login_failed |= d.value("code", "") == "login_failed";
	EXPECT_TRUE(login_failed);
}

} // namespace
