// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "lab_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace labtest {

namespace {

using SteadyClock = std::chrono::steady_clock;

std::string read_file(const std::string& path)
{
	std::ifstream f(path);
	std::stringstream ss;
	ss << f.rdbuf();
	return ss.str();
}

// Waits for `pid` up to `timeout`; returns its wait status or nullopt.
std::optional<int> wait_pid(int pid, std::chrono::milliseconds timeout)
{
	auto until = SteadyClock::now() + timeout;
	for (;;) {
		int status = 0;
		int rc = waitpid(pid, &status, WNOHANG);
		if (rc == pid)
			return status;
		if (rc < 0)
			return std::nullopt;
		if (SteadyClock::now() >= until)
			return std::nullopt;
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	}
}

} // namespace

LabServer::LabServer(std::vector<std::string> extra_args, std::string dir)
{
	if (dir.empty()) {
		own_dir_.emplace();
		dir_ = own_dir_->path();
	} else {
		dir_ = std::move(dir);
	}
	log_path_ = dir_ + "/server.log";
	std::string ready = dir_ + "/ready";
	std::filesystem::remove(ready);
	std::vector<std::string> argv = {labserver_path(), "--listen", "127.0.0.1",  "--port",	  "0",
					 "--ready-file",   ready,      "--cert-out", cert_file(), "--verbose"};
	argv.insert(argv.end(), extra_args.begin(), extra_args.end());
	pid_ = fork();
	if (pid_ == 0) {
		int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, 0);
		std::vector<char*> args;
		for (const auto& a : argv)
			args.push_back(const_cast<char*>(a.c_str()));
		args.push_back(nullptr);
		execv(args[0], args.data());
		_exit(127);
	}
	auto until = SteadyClock::now() + std::chrono::seconds(10);
	while (SteadyClock::now() < until) {
		std::ifstream f(ready);
		int port = 0;
		if (f >> port && port > 0) {
			port_ = port;
			return;
		}
		int status = 0;
		if (waitpid(pid_, &status, WNOHANG) == pid_) {
			pid_ = -1;
			return; // exited early; log() says why
		}
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	}
}

LabServer::~LabServer()
{
	if (pid_ > 0) {
		kill(pid_, SIGKILL);
		wait_pid(pid_, std::chrono::seconds(5));
	}
	if (::testing::Test::HasFailure()) {
		std::string text = log();
		if (text.size() > 6000)
			text = "...\n" + text.substr(text.size() - 6000);
		std::printf("---- lab server log (%s) ----\n%s\n---- end of server log ----\n", log_path_.c_str(),
			    text.c_str());
	}
}

std::string LabServer::log() const
{
	return read_file(log_path_);
}

bool LabServer::wait_for_log(const std::string& text, std::chrono::milliseconds timeout) const
{
	auto until = SteadyClock::now() + timeout;
	do {
		if (log().find(text) != std::string::npos)
			return true;
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
	} while (SteadyClock::now() < until);
	return false;
}

int LabServer::stop(std::chrono::milliseconds timeout)
{
	if (pid_ <= 0)
		return -1;
	kill(pid_, SIGTERM);
	auto status = wait_pid(pid_, timeout);
	if (!status) {
		kill(pid_, SIGKILL);
		wait_pid(pid_, std::chrono::seconds(5));
		pid_ = -1;
		return -1;
	}
	pid_ = -1;
	return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

std::string labserver_path()
{
	return TDSBPF_LABSERVER_PATH;
}
std::string loadclient_path()
{
	return TDSBPF_LOADCLIENT_PATH;
}
std::string drivers_dir()
{
	return TDSBPF_LAB_DRIVERS_DIR;
}
std::string node_modules_dir()
{
	return TDSBPF_LAB_NODE_MODULES;
}

bool drivers_required()
{
	const char* v = std::getenv("TDSBPF_REQUIRE_BPF");
	return v && std::string(v) == "1";
}

} // namespace labtest
