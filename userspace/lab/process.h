// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Child processes for the lab (tdsbpf demo, the tests, the benchmarks):
// started in their own process group (optionally in a network namespace),
// waited for with a deadline, and killed with their group when it passes.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace tdsbpf::lab {

using std::chrono::milliseconds;

struct SpawnOptions {
	std::string netns; // run through `ip netns exec` when set
	std::string stdin_path = "/dev/null";
	std::string stdout_path = "/dev/null";
	std::string stderr_path;		// empty: with stdout
	bool append = false;			// append to the output files (else truncate)
	std::map<std::string, std::string> env; // added to the environment
};

// Starts argv; returns the pid (the leader of a new process group), or -1.
pid_t spawn(const std::vector<std::string>& argv, const SpawnOptions& opt = {});

// Waits for pid up to timeout; after it (or when *cancel turns true) kills
// the process group. Returns the exit status, or -1 when killed.
int wait_exit(pid_t pid, milliseconds timeout, const std::atomic<bool>* cancel = nullptr);

// Sends sig to pid and waits up to timeout, then kills its group.
int stop(pid_t pid, int sig, milliseconds timeout);

struct CommandResult {
	int exit_code = -1; // -1: killed by the timeout or a signal
	bool timed_out = false;
	std::string output; // stdout and stderr interleaved
	double seconds = 0;
};

// Runs argv to the end with input on stdin; kills it after timeout.
CommandResult run_command(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
			  const std::string& input = {}, milliseconds timeout = std::chrono::seconds(20));

// A shell command with its output thrown away; returns the exit status.
int run_quiet(const std::string& cmd);
// A shell command's output (stdout and stderr); its status in *status.
std::string run_capture(const std::string& cmd, int* status = nullptr);

// Waits until path exists and is not empty; false after timeout.
bool wait_for_file(const std::string& path, milliseconds timeout);

// A directory under /tmp, removed with its contents at scope exit.
class TempDir {
public:
	explicit TempDir(const char* prefix = "tdsbpf-lab");
	~TempDir();
	TempDir(const TempDir&) = delete;
	TempDir& operator=(const TempDir&) = delete;
	const std::string& path() const { return path_; }
	std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
	std::string path_;
};

} // namespace tdsbpf::lab
