// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// tdsbpf-loadclient: opens TDS connections to a host:port and runs SQL
// batches at a set rate and concurrency, then prints throughput and latency.
// See docs/lab.md.
#include <CLI/CLI.hpp>

#include <iostream>

#include "load_runner.h"

int main(int argc, char** argv)
{
	CLI::App app{"tdsbpf load client: TDS connections and requests at a set rate (see docs/lab.md)"};
	tdslab::LoadPlan plan;
	std::string encryption = "off";
	double duration_s = 10;
	long timeout_ms = 5000;
	bool json = false;

	app.add_option("--host,-H", plan.client.host, "server address")->default_val("127.0.0.1");
	app.add_option("--port,-p", plan.client.port, "server port")->default_val(1433);
	app.add_option("--connections,-c", plan.concurrency, "connections open at once")
		->default_val(10)
		->check(CLI::Range(1u, 20000u));
	app.add_option("--duration,-d", duration_s, "seconds to run")->default_val(10)->check(CLI::Range(0.0, 86400.0));
	app.add_option("--count,-n", plan.max_requests, "stop after this many requests (0: run for --duration)")
		->default_val(0);
	app.add_option("--rate,-r", plan.rate, "requests per second over all connections (0: unlimited)")
		->default_val(0)
		->check(CLI::NonNegativeNumber);
	app.add_option("--requests-per-connection", plan.requests_per_connection,
		       "reconnect after this many requests (0: one connection per worker for the whole run)")
		->default_val(0);
	app.add_option("--query,-q", plan.query, "SQL batch to run")->default_val("SELECT 1");
	app.add_option("--encryption,-e", encryption, "off (login-only TLS) | on | not-supported | strict")
		->default_val("off");
	app.add_flag("--mars", plan.client.mars, "ask for MARS and send requests over SMP");
	app.add_option("--mars-sessions", plan.client.mars_sessions,
		       "SMP sessions per connection with --mars; requests rotate over them")
		->default_val(1)
		->check(CLI::Range(1u, 64u));
	app.add_option("--user,-U", plan.client.user, "login name (fault names work here)")->default_val("sa");
	app.add_option("--password,-P", plan.client.password, "password")->default_val("lab");
	app.add_option("--ntlm-domain", plan.client.ntlm_domain, "integrated login via NTLM in this domain");
	app.add_option("--spnego", plan.client.spnego_service,
		       "integrated login through GSS-API SPNEGO offering NTLM (gss-ntlmssp; credentials from the file "
		       "NTLM_USER_FILE names) for this host-based service, e.g. MSSQLSvc@sql.example")
		->excludes("--ntlm-domain");
	app.add_option("--database", plan.client.database, "initial database");
	app.add_option(
		"--tls-ciphers", plan.client.tls_ciphers,
		"OpenSSL cipher list offered for TLS 1.2, e.g. 'ALL:ECDHE-ECDSA-NULL-SHA:@SECLEVEL=0' (ALL, not DEFAULT: DEFAULT removes NULL suites for good)");
	app.add_option("--packet-size", plan.client.packet_size, "requested TDS packet size")
		->default_val(4096)
		->check(CLI::Range(512u, 32767u));
	app.add_option("--timeout-ms", timeout_ms, "timeout for each login and request")->default_val(5000);
	app.add_flag("--json", json, "print the report as one JSON object");
	CLI11_PARSE(app, argc, argv);

	auto enc = tdslab::parse_client_encryption(encryption);
	if (!enc) {
		std::cerr << "--encryption: '" << encryption << "' is not one of off, on, not-supported, strict\n";
		return 2;
	}
	plan.client.encryption = *enc;
	plan.client.timeout = std::chrono::milliseconds(timeout_ms);
	plan.duration = std::chrono::milliseconds(static_cast<long long>(duration_s * 1000));
	if (plan.max_requests && !app.count("--duration"))
		plan.duration = std::chrono::hours(24);

	tdslab::LoadReport report = tdslab::run_load(plan);
	std::cout << (json ? report.json() + "\n" : report.text());
	// Non-zero when nothing worked, so scripts notice a dead server.
	return report.connections_ok == 0 ? 1 : 0;
}
