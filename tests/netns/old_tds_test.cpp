// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Old TDS clients, traced. FreeTDS tsql with `tds version = 7.0` sends its
// LOGIN7 first, with no PRELOGIN, and the lab server answers in TDS 7.0
// (LOGINACK 0x07000000, 4-byte DONE row counts); with 7.1 it sends a
// PRELOGIN and takes login-only TLS. tdsbpf watches the server side's
// interface of a NetnsLab; the record must tell that nothing was negotiated
// (7.0), name the version, count the request and its rows in the old DONE
// layout, and warn that the SQL password went only obfuscated.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
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

const json* diagnosis(const json& record, const std::string& code)
{
	for (const auto& d : record["diagnoses"])
		if (d.value("code", "") == code)
			return &d;
	return nullptr;
}

class OldTds : public ::testing::Test {
protected:
	void SetUp() override
	{
		TDSBPF_REQUIRE(geteuid() == 0, "needs root (network namespaces, BPF)");
		TDSBPF_REQUIRE(have("tsql"), "FreeTDS tsql not installed (Debian package freetds-bin)");
		lab_ = std::make_unique<tdsbpf::lab::NetnsLab>();
		TDSBPF_REQUIRE(lab_->ok(), "cannot build the test network: " + lab_->error());
	}

	void TearDown() override
	{
		if (HasFailure()) {
			std::printf("---- lab server log ----\n%s\n---- tdsbpf log ----\n%s\n---- records ----\n%s\n",
				    labtest::slurp(dir_.file("server.log")).c_str(),
				    labtest::slurp(dir_.file("tracer.log")).c_str(),
				    labtest::slurp(dir_.file("conns.ndjson")).c_str());
		}
		lab_.reset();
	}

	// The lab server on port 1433 and tdsbpf on the server side's interface.
	void start()
	{
		lab_->spawn(lab_->server_ns(),
			    {TDSBPF_LABSERVER_PATH, "--listen", lab_->server_ip(), "--port", "1433", "--ready-file",
			     dir_.file("server.ready"), "--verbose"},
			    dir_.file("server.out"), dir_.file("server.log"));
		ASSERT_TRUE(tdsbpf::lab::wait_for_file(dir_.file("server.ready"), 20000ms))
			<< labtest::slurp(dir_.file("server.log"));
		tracer_ = lab_->spawn(
			lab_->server_ns(),
			{TDSBPF_BIN, "--iface", lab_->server_if(), "--ready-file", dir_.file("tracer.ready")},
			dir_.file("conns.ndjson"), dir_.file("tracer.log"));
		ASSERT_TRUE(tdsbpf::lab::wait_for_file(dir_.file("tracer.ready"), 60000ms))
			<< labtest::slurp(dir_.file("tracer.log"));
	}

	// tsql from the client namespace at a TDS version.
	labtest::CommandResult tsql(const std::string& version, const std::string& encryption)
	{
		std::ofstream(dir_.file("freetds.conf"))
			<< "[lab]\n\thost = " << lab_->server_ip() << "\n\tport = 1433\n\ttds version = " << version
			<< "\n\tencryption = " << encryption << "\n";
		return labtest::run_command({"ip", "netns", "exec", lab_->client_ns(), "tsql", "-S", "lab", "-U", "sa",
					     "-P", "lab-password"},
					    {{"FREETDSCONF", dir_.file("freetds.conf")}, {"TDSDUMP", ""}},
					    "SELECT n FROM rows(5)\ngo\nexit\n", 20s);
	}

	// tdsbpf's records once the connection has closed.
	std::vector<json> records()
	{
		// a closed connection's record comes 500 ms (close linger) after its close
		std::this_thread::sleep_for(1200ms);
		EXPECT_EQ(lab_->stop(tracer_, SIGINT), 0) << labtest::slurp(dir_.file("tracer.log"));
		return labtest::read_connection_records(dir_.file("conns.ndjson"));
	}

	labtest::TempDir dir_;
	std::unique_ptr<tdsbpf::lab::NetnsLab> lab_;
	pid_t tracer_ = 0;
};

// TDS 7.0: LOGIN7 first, in clear; nothing negotiated.
TEST_F(OldTds, Tds70LoginWithoutPrelogin)
{
	ASSERT_NO_FATAL_FAILURE(start());
	auto r = tsql("7.0", "request");
	ASSERT_NE(r.output.find("n\n1\n2\n3\n4\n5\n(5 rows affected)"), std::string::npos) << r.output;
	auto recs = records();
	ASSERT_EQ(recs.size(), 1u) << labtest::slurp(dir_.file("conns.ndjson"));
	const json& rec = recs[0];
	SCOPED_TRACE(rec.dump());

	auto phases = phase_names(rec);
	EXPECT_EQ(std::count(phases.begin(), phases.end(), "prelogin"), 0);
	EXPECT_EQ(std::count(phases.begin(), phases.end(), "tls_handshake"), 0);
	EXPECT_EQ(std::count(phases.begin(), phases.end(), "login"), 1);
	const json& neg = rec["negotiated"];
	EXPECT_EQ(neg["encryption"], "not_negotiated");
	EXPECT_TRUE(neg["client_encryption"].is_null());
	EXPECT_TRUE(neg["server_encryption"].is_null());
	EXPECT_TRUE(neg["tls_version"].is_null());
	EXPECT_EQ(neg["tds_version_login7"], "7.0");
	// LOGINACK numbers 7.0 0x07000000 ([MS-TDS] 2.2.7.14): still TDS 7.0.
	EXPECT_EQ(neg["tds_version_loginack"], "7.0");
	EXPECT_EQ(rec["network.protocol.version"], "7.0");

	EXPECT_EQ(rec["login"]["outcome"], "success");
	EXPECT_EQ(rec["authentication"]["method"], "sql");
	EXPECT_EQ(rec["authentication"]["inferred"], false);
	EXPECT_EQ(rec["authentication"]["integrated_security"], false);
	EXPECT_EQ(rec["work"]["sql_batches"], 1);
	EXPECT_EQ(rec["work"]["requests"], 1);
	EXPECT_EQ(rec["work"]["rows"], 5); // from a 4-byte DONE row count

	const json* unencrypted = diagnosis(rec, "login_unencrypted");
	ASSERT_NE(unencrypted, nullptr) << rec["diagnoses"].dump();
	const std::string message = unencrypted->value("message", "");
	EXPECT_NE(message.find("SQL password"), std::string::npos) << message;
	EXPECT_NE(message.find("obfuscated"), std::string::npos) << message;
	EXPECT_NE(message.find("no PRELOGIN"), std::string::npos) << message;
}

// TDS 7.1 with login-only TLS: the LOGIN7 is hidden, the LOGINACK is not;
// the rows come in the 7.1 layout after it.
TEST_F(OldTds, Tds71LoginOnlyTls)
{
	ASSERT_NO_FATAL_FAILURE(start());
	auto r = tsql("7.1", "request");
	ASSERT_NE(r.output.find("(5 rows affected)"), std::string::npos) << r.output;
	auto recs = records();
	ASSERT_EQ(recs.size(), 1u) << labtest::slurp(dir_.file("conns.ndjson"));
	const json& rec = recs[0];
	SCOPED_TRACE(rec.dump());

	auto phases = phase_names(rec);
	EXPECT_EQ(std::count(phases.begin(), phases.end(), "prelogin"), 1);
	EXPECT_EQ(rec["negotiated"]["encryption"], "login_only");
	EXPECT_EQ(rec["negotiated"]["tds_version_loginack"], "7.1 Rev 1");
	EXPECT_EQ(rec["network.protocol.version"], "7.1 Rev 1");
	EXPECT_EQ(rec["login"]["outcome"], "success");
	EXPECT_EQ(rec["work"]["sql_batches"], 1);
	EXPECT_EQ(rec["work"]["rows"], 5);
	EXPECT_EQ(diagnosis(rec, "login_unencrypted"), nullptr) << rec["diagnoses"].dump();
}

} // namespace
