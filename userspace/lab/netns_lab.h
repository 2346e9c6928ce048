// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// A private network for the lab: namespaces "tdsbpf-s<n>" (server) and
// "tdsbpf-c<n>" (client) joined by the veth pair "tdsbpf-vs<n>" /
// "tdsbpf-vc<n>", with a /24 of their own. The destructor removes
// everything it made, the processes started in it included, also when a
// test fails or the demo is interrupted. Needs root and iproute2.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "process.h"

namespace tdsbpf::lab {

class NetnsLab {
public:
	// subnet: the first two octets of the lab's /24 (the third comes from
	// the pid, so that parallel runs do not meet).
	explicit NetnsLab(const std::string& subnet = "10.231");
	~NetnsLab();
	NetnsLab(const NetnsLab&) = delete;
	NetnsLab& operator=(const NetnsLab&) = delete;

	bool ok() const { return error_.empty(); }
	const std::string& error() const { return error_; }

	const std::string& server_ns() const { return srv_; }
	const std::string& client_ns() const { return cli_; }
	const std::string& server_if() const { return vs_; }
	const std::string& client_if() const { return vc_; }
	const std::string& server_ip() const { return srv_ip_; }
	const std::string& client_ip() const { return cli_ip_; }

	// Starts argv in a namespace with stdout and stderr to files (stderr
	// with stdout when err is empty); the lab stops it at the end.
	pid_t spawn(const std::string& ns, const std::vector<std::string>& argv, const std::string& out,
		    const std::string& err = {}, bool append = false);
	// Sends sig and waits up to timeout_ms; returns the exit status, or -1.
	int stop(pid_t pid, int sig, int timeout_ms = 10000);
	// Runs a shell command in a namespace; returns its output (stdout+stderr).
	std::string sh(const std::string& ns, const std::string& cmd, int* status = nullptr) const;

private:
	void remove();
	std::string srv_, cli_, vs_, vc_, srv_ip_, cli_ip_, error_;
	std::vector<pid_t> children_;
};

// Enters a network namespace for this thread; the old one comes back at
// scope exit. Throws std::runtime_error when it cannot.
class NetnsGuard {
public:
	explicit NetnsGuard(const std::string& ns);
	~NetnsGuard();
	NetnsGuard(const NetnsGuard&) = delete;
	NetnsGuard& operator=(const NetnsGuard&) = delete;

private:
	int old_ = -1;
};

} // namespace tdsbpf::lab
