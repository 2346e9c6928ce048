// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Test helpers: a lab server child process that is always killed, commands
// run with a timeout, temporary directories, and the driver-missing rule.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lab/process.h"

namespace labtest {

// Temporary directories and commands with a timeout: the lab library's.
using tdsbpf::lab::CommandResult;
using tdsbpf::lab::run_command;
using tdsbpf::lab::TempDir;

// The lab server on 127.0.0.1 and a free port (the kernel picks it; the
// server reports it through --ready-file). Killed in the destructor.
class LabServer {
public:
	explicit LabServer(std::vector<std::string> extra_args = {}, std::string dir = {});
	~LabServer();
	LabServer(const LabServer&) = delete;
	LabServer& operator=(const LabServer&) = delete;

	bool started() const { return port_ != 0; }
	int port() const { return port_; }
	std::string log() const;
	std::string cert_file() const { return dir_ + "/server-cert.pem"; }
	// Waits until the log contains `text` (the server logs asynchronously to
	// the client's view of the exchange).
	bool wait_for_log(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;
	// SIGTERM and wait; returns the exit status (or -1 if it had to be killed).
	int stop(std::chrono::milliseconds timeout = std::chrono::seconds(5));
	int pid() const { return pid_; }

private:
	std::optional<TempDir> own_dir_;
	std::string dir_;
	std::string log_path_;
	int pid_ = -1;
	int port_ = 0;
};

std::string labserver_path();
std::string loadclient_path();
std::string drivers_dir();
std::string node_modules_dir();

// True when TDSBPF_REQUIRE_BPF=1: a missing driver is then a failure.
bool drivers_required();

} // namespace labtest

// Skips the test (or fails it when drivers are required) with the reason.
#define LAB_DRIVER_MISSING(reason)                                                         \
	do {                                                                               \
		if (::labtest::drivers_required()) {                                       \
			FAIL() << "driver missing and TDSBPF_REQUIRE_BPF=1: " << (reason); \
		}                                                                          \
		GTEST_SKIP() << (reason);                                                  \
	} while (0)
