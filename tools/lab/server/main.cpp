// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// tdsbpf-labserver: a small TDS server that real drivers accept as SQL
// Server, with encryption modes and faults chosen on the command line.
// See docs/lab.md.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "server.h"

namespace {

bool parse_version(const std::string& text, tdslab::ServerSettings& s)
{
	unsigned major = 0, minor = 0, build = 0;
	if (std::sscanf(text.c_str(), "%u.%u.%u", &major, &minor, &build) != 3 || major > 255 || minor > 255 ||
	    build > 65535) {
		return false;
	}
	s.version_major = static_cast<std::uint8_t>(major);
	s.version_minor = static_cast<std::uint8_t>(minor);
	s.version_build = static_cast<std::uint16_t>(build);
	return true;
}

// An instance name the Browser can announce: what SQL Server accepts
// (letters, digits, _ $ #, a letter or _ first, at most 16), so nothing in
// it can break the ';'-separated reply.
bool valid_instance_name(const std::string& name)
{
	if (name.empty() || name.size() > 16)
		return false;
	auto letter = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
	if (!letter(name[0]))
		return false;
	return std::all_of(name.begin(), name.end(),
			   [&](char c) { return letter(c) || (c >= '0' && c <= '9') || c == '$' || c == '#'; });
}

} // namespace

int main(int argc, char** argv)
{
	CLI::App app{"tdsbpf lab server: a TDS endpoint that drivers take for SQL Server (see docs/lab.md)"};
	tdslab::ListenOptions listen;
	std::string encryption = "off";
	std::vector<std::string> faults;
	std::string cert_file, key_file, version = "16.0.1000";
	std::string server_name = "TDSLAB";
	bool verbose = false;

	app.add_option("--port,-p", listen.port, "TCP port (0: any free port, written to --ready-file)")
		->default_val(1433);
	app.add_option("--listen,-l", listen.address, "address to listen on")->default_val("127.0.0.1");
	app.add_option("--ready-file", listen.ready_file, "file to write the bound port to once listening");
	app.add_option("--encryption,-e", encryption, "off | on | required | not-supported | strict")
		->default_val("off");
	app.add_option("--fault,-f", faults,
		       "fault for every connection, e.g. fail_login, slow_login_2000, rst_tls, fin_tls, "
		       "redirect_127.0.0.1_14330, idle_5 (repeatable; see docs/lab.md)");
	app.add_option("--cert", cert_file, "PEM certificate (default: one issued by a CA made at start)");
	std::string cert_out;
	app.add_option("--cert-out", cert_out,
		       "write the server certificate and its chain (PEM) here, for clients that verify it");
	app.add_option("--key", key_file, "PEM private key for --cert (default: the --cert file)");
	tdslab::TlsServerSetup tls;
	app.add_option("--self-signed", tls.self_signed_cn,
		       "serve a self-signed RSA 2048 certificate with this CN, made at start (e.g. "
		       "SSL_Self_Signed_Fallback, as SQL Server makes for itself)");
	app.add_option("--cert-days", tls.valid_days,
		       "--self-signed: days from now to the end of its validity (negative: expired)")
		->default_val(365)
		->check(CLI::Range(-3650, 3650));
	app.add_option("--cert-san-names", tls.san_names,
		       "--self-signed: this many more DNS names in it (a certificate longer than a segment)")
		->default_val(0)
		->check(CLI::Range(0, 2000));
	app.add_option(
		"--tls-ciphers", tls.ciphers,
		"OpenSSL cipher list for TLS 1.2, e.g. 'ECDHE-ECDSA-NULL-SHA:@SECLEVEL=0' (a weak-cipher server)");
	app.add_option("--server-version", version, "version to announce (major.minor.build)")
		->default_val("16.0.1000");
	app.add_option("--server-name", server_name, "server name in INFO/ERROR tokens")->default_val("TDSLAB");
	app.add_option("--keepalive-idle", listen.keepalive_idle_s, "TCP_KEEPIDLE seconds for idle_<n> connections")
		->default_val(1)
		->check(CLI::Range(1, 7200));
	app.add_option("--keepalive-interval", listen.keepalive_interval_s, "TCP_KEEPINTVL seconds")
		->default_val(1)
		->check(CLI::Range(1, 600));
	app.add_option("--keepalive-count", listen.keepalive_count, "TCP_KEEPCNT probes")
		->default_val(3)
		->check(CLI::Range(1, 100));
	auto* browser = app.add_flag("--browser", listen.browser.enabled,
				     "also answer SQL Browser (SSRP) requests on UDP port 1434 of the listen address");
	app.add_option("--instance", listen.browser.instance, "instance name the browser announces for the TCP port")
		->default_val("LAB")
		->needs(browser);
	app.add_option("--browser-port", listen.browser.port, "UDP port of the browser")
		->default_val(1434)
		->check(CLI::Range(1, 65535))
		->needs(browser);
	app.add_option("--browser-delay-ms", listen.browser.delay_ms, "answer browser requests this many ms late")
		->default_val(0)
		->check(CLI::Range(0, 3600000))
		->needs(browser);
	app.add_flag("--browser-silent", listen.browser.silent, "read browser requests, never answer")->needs(browser);
	tdslab::KerberosSettings kerberos;
	auto* keytab = app.add_option("--kerberos-keytab", kerberos.keytab,
				      "keytab with the service's keys (MSSQLSvc/host:port): integrated logins with a "
				      "Kerberos or SPNEGO token are then verified through GSS-API");
	app.add_option("--kerberos-principal", kerberos.principal,
		       "accept tickets for this service principal only (default: any key in the keytab)")
		->needs(keytab);
	app.add_flag("--verbose,-v", verbose, "log every packet and decision");
	CLI11_PARSE(app, argc, argv);

	auto logger = spdlog::stderr_logger_mt("labserver");
	spdlog::set_default_logger(logger);
	spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ labserver: %v");
	spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::info);

	tdslab::ServerSettings settings;
	settings.verbose = verbose;
	settings.server_name = server_name;
	settings.kerberos = kerberos;
	if (!kerberos.keytab.empty() && !std::ifstream(kerberos.keytab)) {
		// Not fatal: the keytab is read at each login, so it may come later.
		spdlog::warn("--kerberos-keytab {}: not readable now; Kerberos logins are refused (18452) until it is",
			     kerberos.keytab);
	}
	auto mode = tdslab::parse_encryption_mode(encryption);
	if (!mode) {
		std::cerr << "--encryption: '" << encryption
			  << "' is not one of off, on, required, not-supported, strict\n";
		return 2;
	}
	settings.encryption = *mode;
	if (!parse_version(version, settings)) {
		std::cerr << "--server-version: '" << version << "' is not major.minor.build (e.g. 16.0.1000)\n";
		return 2;
	}
	for (const auto& f : faults) {
		std::string error;
		auto plan = tdslab::parse_faults(f, &error);
		if (!plan) {
			std::cerr << "--fault: " << error << "\n";
			return 2;
		}
		settings.faults.merge(*plan);
	}
	if (listen.browser.enabled) {
		if (!valid_instance_name(listen.browser.instance)) {
			std::cerr << "--instance: '" << listen.browser.instance
				  << "' is not 1 to 16 letters, digits, _, $ or # starting with a letter or _\n";
			return 2;
		}
		if (server_name.empty() || server_name.size() > 255 || server_name.find(';') != std::string::npos) {
			std::cerr << "--server-name: the SQL Browser announces it: 1 to 255 bytes without ';'\n";
			return 2;
		}
	}
	if (!key_file.empty() && cert_file.empty()) {
		std::cerr << "--key needs --cert\n";
		return 2;
	}
	if (!tls.self_signed_cn.empty() && !cert_file.empty()) {
		std::cerr << "--self-signed and --cert: one certificate only\n";
		return 2;
	}
	tls.cert_file = cert_file;
	tls.key_file = key_file;

	try {
		settings.tls7 = tdslab::TlsContext::server(tdslab::TlsFlavor::tds7, tls);
		settings.tls8 = tdslab::TlsContext::server(tdslab::TlsFlavor::strict, tls);
		if (!cert_out.empty()) {
			std::ofstream f(cert_out);
			f << settings.tls8->certificate_pem();
			if (!f)
				throw std::runtime_error("cannot write --cert-out file " + cert_out);
		}
		tdslab::Server server(std::move(settings), listen);
		server.listen();
		return server.run();
	} catch (const std::exception& e) {
		spdlog::error("{}", e.what());
		return 1;
	}
}
