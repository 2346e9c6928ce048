// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

namespace tdsbpf::lab {

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void exec_child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env)
{
	for (const auto& [k, v] : env)
		setenv(k.c_str(), v.c_str(), 1);
	std::vector<char*> args;
	for (const auto& a : argv)
		args.push_back(const_cast<char*>(a.c_str()));
	args.push_back(nullptr);
	execvp(args[0], args.data());
	std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
	_exit(127);
}

// Waits for pid up to the deadline; the wait status, or false.
bool reap(pid_t pid, Clock::time_point until, int& status, const std::atomic<bool>* cancel)
{
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return true;
		if (r < 0)
			return false;
		if (Clock::now() >= until || (cancel && *cancel))
			return false;
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	}
}

int kill_group(pid_t pid)
{
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	int status = 0;
	waitpid(pid, &status, 0);
	return -1;
}

} // namespace

pid_t spawn(const std::vector<std::string>& argv, const SpawnOptions& opt)
{
	std::vector<std::string> full;
	if (!opt.netns.empty())
		full = {"ip", "netns", "exec", opt.netns};
	full.insert(full.end(), argv.begin(), argv.end());
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		int flags = O_WRONLY | O_CREAT | (opt.append ? O_APPEND : O_TRUNC);
		int in = open(opt.stdin_path.c_str(), O_RDONLY);
		int out = open(opt.stdout_path.c_str(), flags, 0644);
		int err = opt.stderr_path.empty() ? out : open(opt.stderr_path.c_str(), flags, 0644);
		if (in < 0 || out < 0 || err < 0)
			_exit(126);
		dup2(in, 0);
		dup2(out, 1);
		dup2(err, 2);
		exec_child(full, opt.env);
	}
	if (pid > 0)
		setpgid(pid, pid); // also from here: no race with a kill of the group
	return pid;
}

int wait_exit(pid_t pid, milliseconds timeout, const std::atomic<bool>* cancel)
{
	int status = 0;
	if (reap(pid, Clock::now() + timeout, status, cancel))
		return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	return kill_group(pid);
}

int stop(pid_t pid, int sig, milliseconds timeout)
{
	kill(pid, sig);
	return wait_exit(pid, timeout);
}

CommandResult run_command(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
			  const std::string& input, milliseconds timeout)
{
	CommandResult result;
	int out_pipe[2], in_pipe[2];
	if (pipe2(out_pipe, O_CLOEXEC) != 0)
		return result;
	if (pipe2(in_pipe, O_CLOEXEC) != 0) {
		close(out_pipe[0]);
		close(out_pipe[1]);
		return result;
	}
	auto start = Clock::now();
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		dup2(in_pipe[0], 0);
		dup2(out_pipe[1], 1);
		dup2(out_pipe[1], 2);
		exec_child(argv, env);
	}
	setpgid(pid, pid);
	close(out_pipe[1]);
	close(in_pipe[0]);
	if (!input.empty()) {
		signal(SIGPIPE, SIG_IGN);
		ssize_t ignored = write(in_pipe[1], input.data(), input.size());
		(void)ignored;
	}
	close(in_pipe[1]);

	auto until = start + timeout;
	char buf[4096];
	for (;;) {
		auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now()).count();
		if (left <= 0) {
			result.timed_out = true;
			kill(-pid, SIGKILL);
			break;
		}
		pollfd p{out_pipe[0], POLLIN, 0};
		if (poll(&p, 1, static_cast<int>(std::min<long long>(left, 200))) > 0) {
			ssize_t n = read(out_pipe[0], buf, sizeof buf);
			if (n <= 0)
				break; // EOF: the child closed its output
			result.output.append(buf, static_cast<size_t>(n));
		}
	}
	close(out_pipe[0]);
	int status = 0;
	if (reap(pid, Clock::now() + (result.timed_out ? milliseconds(2000) : timeout), status, nullptr)) {
		if (WIFEXITED(status))
			result.exit_code = WEXITSTATUS(status);
	} else {
		kill_group(pid);
	}
	result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
	return result;
}

int run_quiet(const std::string& cmd)
{
	int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string run_capture(const std::string& cmd, int* status)
{
	std::string out;
	FILE* p = popen((cmd + " 2>&1").c_str(), "r");
	if (!p) {
		if (status)
			*status = -1;
		return out;
	}
	std::array<char, 4096> buf;
	while (size_t n = fread(buf.data(), 1, buf.size(), p))
		out.append(buf.data(), n);
	int rc = pclose(p);
	if (status)
		*status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
	return out;
}

bool wait_for_file(const std::string& path, milliseconds timeout)
{
	auto until = Clock::now() + timeout;
	struct stat st;
	while (Clock::now() < until) {
		if (stat(path.c_str(), &st) == 0 && st.st_size > 0)
			return true;
		std::this_thread::sleep_for(std::chrono::milliseconds(50));
	}
	return false;
}

TempDir::TempDir(const char* prefix)
{
	std::string tmpl = std::string("/tmp/") + prefix + "-XXXXXX";
	if (!mkdtemp(tmpl.data()))
		throw std::runtime_error(std::string("cannot make a temporary directory: ") + std::strerror(errno));
	path_ = tmpl;
}

TempDir::~TempDir()
{
	std::error_code ec;
	std::filesystem::remove_all(path_, ec);
}

} // namespace tdsbpf::lab
