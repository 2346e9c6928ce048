// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// No secret leaves tdsbpf: a SQL login with a known password sent in clear,
// traced live and read back from a capture in every output mode (records,
// text view, raw events, summaries, the log), never shows the password in
// any encoding; with --redact, an NTLM login's user, domain and workstation
// names and the client's host and application names do not show either.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "lab/netns_lab.h"
#include "lab_server.h"
#include "outputs.h"
#include "require.h"

using namespace tdsbpf::test;

namespace {

const std::string kPassword = "Tr4ce-Me-N0t!";

std::string utf16(const std::string& s)
{
	std::string o;
	for (char c : s) {
		o += c;
		o += '\0';
	}
	return o;
}

// LOGIN7's password: UTF-16LE, each byte's nibbles swapped, then XOR 0xA5.
std::string obfuscated(const std::string& s)
{
	std::string o;
	for (unsigned char c : utf16(s))
		o += static_cast<char>((((c << 4) | (c >> 4)) & 0xff) ^ 0xa5);
	return o;
}

std::string hex(const std::string& s, bool upper)
{
	const char* d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	std::string o;
	for (unsigned char c : s) {
		o += d[c >> 4];
		o += d[c & 15];
	}
	return o;
}

// Every form a secret could take in an output: as it is, UTF-16, the
// LOGIN7 obfuscation, and each of those in hex.
std::vector<std::pair<std::string, std::string>> forms(const std::string& secret, bool password)
{
	std::vector<std::pair<std::string, std::string>> f = {{"plain", secret}, {"utf-16", utf16(secret)}};
	if (password)
		f.push_back({"obfuscated", obfuscated(secret)});
	std::size_t n = f.size();
	for (std::size_t i = 0; i < n; i++) {
		f.push_back({f[i].first + " hex", hex(f[i].second, false)});
		f.push_back({f[i].first + " HEX", hex(f[i].second, true)});
	}
	return f;
}

class SecretsTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		TDSBPF_REQUIRE(geteuid() == 0, "needs root (network namespaces, BPF)");
		TDSBPF_REQUIRE(std::system("command -v tcpdump >/dev/null 2>&1") == 0, "tcpdump not installed");
		lab_ = std::make_unique<tdsbpf::lab::NetnsLab>();
		TDSBPF_REQUIRE(lab_->ok(), "cannot build the test network: " + lab_->error());
		server_ = labtest::start_lab_server(*lab_, dir_);
		ASSERT_GT(server_, 0) << "lab server did not start";
	}

	void TearDown() override
	{
		if (server_)
			lab_->stop(server_, SIGTERM);
	}

	// One login by the load client (login7 in clear: no encryption).
	void login(const std::vector<std::string>& extra)
	{
		std::vector<std::string> argv = {"ip",
						 "netns",
						 "exec",
						 lab_->client_ns(),
						 TDSBPF_LOADCLIENT_PATH,
						 "--host",
						 lab_->server_ip(),
						 "--encryption",
						 "not-supported",
						 "--count",
						 "1",
						 "--connections",
						 "1"};
		argv.insert(argv.end(), extra.begin(), extra.end());
		auto r = labtest::run_command(argv, {}, "", std::chrono::seconds(30));
		ASSERT_EQ(r.exit_code, 0) << r.output;
	}

	// tdsbpf live with these options while the login runs, with a summary
	// asked for on the way; returns stdout and stderr. With capture set, the
	// traffic is also written there by tcpdump.
	std::string traced(const std::vector<std::string>& options, const std::vector<std::string>& login_args,
			   const std::string& capture = {})
	{
		static int run = 0;
		std::string tag = std::to_string(run++);
		std::vector<std::string> argv = {TDSBPF_BIN, "--iface", lab_->server_if(), "--ready-file",
						 dir_.file("ready" + tag)};
		argv.insert(argv.end(), options.begin(), options.end());
		pid_t tracer = lab_->spawn(lab_->server_ns(), argv, dir_.file("out" + tag), dir_.file("err" + tag));
		pid_t dump = 0;
		if (!capture.empty()) {
			dump = lab_->spawn(lab_->server_ns(),
					   {"tcpdump", "-i", lab_->server_if(), "-w", capture, "-U", "tcp port 1433"},
					   dir_.file("dump.out"), dir_.file("dump.log"));
			for (int i = 0;
			     i < 100 && labtest::slurp(dir_.file("dump.log")).find("listening on") == std::string::npos;
			     i++)
				std::this_thread::sleep_for(std::chrono::milliseconds(50));
		}
		EXPECT_TRUE(tdsbpf::lab::wait_for_file(dir_.file("ready" + tag), std::chrono::milliseconds(60000)))
			<< labtest::slurp(dir_.file("err" + tag));
		login(login_args);
		std::this_thread::sleep_for(std::chrono::milliseconds(1200));
		kill(tracer, SIGUSR1);
		std::this_thread::sleep_for(std::chrono::milliseconds(300));
		EXPECT_EQ(lab_->stop(tracer, SIGINT), 0) << labtest::slurp(dir_.file("err" + tag));
		if (dump)
			lab_->stop(dump, SIGINT);
		return labtest::slurp(dir_.file("out" + tag)) + labtest::slurp(dir_.file("err" + tag));
	}

	// tdsbpf --read of a capture with these options; stdout and stderr.
	std::string read_back(const std::string& capture, const std::vector<std::string>& options)
	{
		std::vector<std::string> argv = {TDSBPF_BIN, "--read", capture};
		argv.insert(argv.end(), options.begin(), options.end());
		auto r = labtest::run_command(argv);
		EXPECT_EQ(r.exit_code, 0) << r.output;
		return r.output;
	}

	void expect_absent(const std::string& output, const std::string& what, const std::string& secret, bool password)
	{
		for (const auto& [form, bytes] : forms(secret, password))
			EXPECT_EQ(output.find(bytes), std::string::npos)
				<< what << ": " << secret << " (" << form << ") is in the output:\n"
				<< output;
	}

	labtest::TempDir dir_;
	std::unique_ptr<tdsbpf::lab::NetnsLab> lab_;
	pid_t server_ = 0;
};

const std::vector<std::vector<std::string>> kModes = {{}, {"--format", "text"}, {"--events"}};

TEST_F(SecretsTest, NoPasswordInAnyOutput)
{
	const std::vector<std::string> sql = {"--user", "sa", "--password", kPassword};
	std::string capture = dir_.file("sql.pcap");
	std::vector<std::string> outputs;
	outputs.push_back(traced({}, sql, capture));
	outputs.push_back(traced({"--format", "text"}, sql));
	outputs.push_back(traced({"--events"}, sql));
	// the test is not vacuous: the login was traced, and the obfuscated
	// password is in the capture
	EXPECT_NE(outputs[0].find("login_unencrypted"), std::string::npos) << outputs[0];
	EXPECT_NE(labtest::slurp(capture).find(obfuscated(kPassword)), std::string::npos);
	for (const auto& mode : kModes)
		outputs.push_back(read_back(capture, mode));
	for (std::size_t i = 0; i < outputs.size(); i++)
		expect_absent(outputs[i], "output " + std::to_string(i), kPassword, true);
}

TEST_F(SecretsTest, RedactHidesNamesInEveryOutput)
{
	const std::vector<std::string> ntlm = {"--user", "alice.lab", "--ntlm-domain", "LABDOMX"};
	std::string capture = dir_.file("ntlm.pcap");
	// without --redact the names are shown (so the search below can fail)
	std::string plain = traced({}, ntlm, capture);
	EXPECT_NE(plain.find("alice.lab"), std::string::npos) << plain;
	EXPECT_NE(plain.find("LABDOMX"), std::string::npos) << plain;
	EXPECT_NE(plain.find("tdsbpf-loadclient"), std::string::npos) << plain; // the LOGIN7's application name

	std::vector<std::string> outputs;
	for (const auto& mode : kModes) {
		std::vector<std::string> opts = mode;
		opts.push_back("--redact");
		outputs.push_back(traced(opts, ntlm));
		outputs.push_back(read_back(capture, opts));
	}
	for (std::size_t i = 0; i < outputs.size(); i++) {
		const std::string what = "redacted output " + std::to_string(i);
		EXPECT_NE(outputs[i].find(lab_->server_ip()), std::string::npos) << what << " shows no connection:\n"
										 << outputs[i];
		expect_absent(outputs[i], what, "alice.lab", false);  // user
		expect_absent(outputs[i], what, "LABDOMX", false);    // domain
		expect_absent(outputs[i], what, "LOADCLIENT", false); // workstation
		expect_absent(outputs[i], what, "loadclient", false); // host and application names
	}
}

} // namespace
