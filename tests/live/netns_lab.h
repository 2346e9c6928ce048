// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// A private test network: namespaces "tdsbpf-s<n>" (server) and
// "tdsbpf-c<n>" (client) joined by a veth pair. Everything it creates,
// processes included, is removed by its destructor, also when a test fails.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace tdsbpf::test {

class NetnsLab {
public:
	NetnsLab();
	~NetnsLab();
	NetnsLab(const NetnsLab&) = delete;
	NetnsLab& operator=(const NetnsLab&) = delete;

	bool ok() const { return error_.empty(); }
	const std::string& error() const { return error_; }

	const std::string& server_ns() const { return srv_; }
	const std::string& client_ns() const { return cli_; }
	const std::string& server_if() const { return vs_; }
	const std::string& server_ip() const { return srv_ip_; }

	// Starts argv in a namespace with stdout and stderr to files; returns the pid.
	pid_t spawn(const std::string& ns, const std::vector<std::string>& argv, const std::string& out,
		    const std::string& err);
	// Sends sig and waits up to timeout_ms; returns the exit status, or -1.
	int stop(pid_t pid, int sig, int timeout_ms = 10000);
	// Runs a shell command in a namespace; returns its output (stdout+stderr).
	std::string sh(const std::string& ns, const std::string& cmd, int* status = nullptr) const;

private:
	std::string srv_, cli_, vs_, vc_, srv_ip_, cli_ip_, error_;
	std::vector<pid_t> children_;
};

// Waits until path exists; false after timeout_ms.
bool wait_for_file(const std::string& path, int timeout_ms);

} // namespace tdsbpf::test
