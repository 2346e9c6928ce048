// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "netns_lab.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <thread>

namespace tdsbpf::test {

namespace {

int run(const std::string& cmd)
{
	int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

} // namespace

NetnsLab::NetnsLab()
{
	std::string n = std::to_string(getpid() % 100000);
	srv_ = "tdsbpf-s" + n;
	cli_ = "tdsbpf-c" + n;
	vs_ = "tdsbpf-vs" + n;
	vc_ = "tdsbpf-vc" + n;
	// a /24 of its own per run, inside the namespaces only
	int net = 1 + getpid() % 250;
	srv_ip_ = "10.231." + std::to_string(net) + ".1";
	cli_ip_ = "10.231." + std::to_string(net) + ".2";
	const std::vector<std::string> steps = {
		"ip netns add " + srv_,
		"ip netns add " + cli_,
		"ip link add " + vs_ + " type veth peer name " + vc_,
		"ip link set " + vs_ + " netns " + srv_,
		"ip link set " + vc_ + " netns " + cli_,
		"ip -n " + srv_ + " addr add " + srv_ip_ + "/24 dev " + vs_,
		"ip -n " + cli_ + " addr add " + cli_ip_ + "/24 dev " + vc_,
		"ip -n " + srv_ + " link set lo up",
		"ip -n " + cli_ + " link set lo up",
		"ip -n " + srv_ + " link set " + vs_ + " up",
		"ip -n " + cli_ + " link set " + vc_ + " up",
	};
	for (const auto& s : steps) {
		if (run(s) != 0) {
			error_ = "failed: " + s;
			return;
		}
	}
}

NetnsLab::~NetnsLab()
{
	for (pid_t pid : children_)
		if (pid > 0 && kill(pid, 0) == 0)
			stop(pid, SIGKILL, 2000);
	// the veth pair goes with the namespaces; delete it too if a move failed
	run("ip netns del " + srv_);
	run("ip netns del " + cli_);
	run("ip link del " + vs_);
}

pid_t NetnsLab::spawn(const std::string& ns, const std::vector<std::string>& argv, const std::string& out,
		      const std::string& err)
{
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int in = open("/dev/null", O_RDONLY);
		dup2(in, 0);
		dup2(o, 1);
		dup2(e, 2);
		std::vector<std::string> full = {"ip", "netns", "exec", ns};
		full.insert(full.end(), argv.begin(), argv.end());
		std::vector<char*> args;
		for (auto& a : full)
			args.push_back(a.data());
		args.push_back(nullptr);
		execvp("ip", args.data());
		_exit(127);
	}
	children_.push_back(pid);
	return pid;
}

int NetnsLab::stop(pid_t pid, int sig, int timeout_ms)
{
	kill(pid, sig);
	auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	int status = 0;
	while (std::chrono::steady_clock::now() < until) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid) {
			for (auto& c : children_)
				if (c == pid)
					c = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		}
		if (r < 0)
			return -1;
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
	}
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	for (auto& c : children_)
		if (c == pid)
			c = 0;
	return -1;
}

std::string NetnsLab::sh(const std::string& ns, const std::string& cmd, int* status) const
{
	std::string full = "ip netns exec " + ns + " sh -c '" + cmd + "' 2>&1";
	std::string out;
	FILE* p = popen(full.c_str(), "r");
	if (!p)
		return out;
	std::array<char, 4096> buf;
	while (size_t n = fread(buf.data(), 1, buf.size(), p))
		out.append(buf.data(), n);
	int rc = pclose(p);
	if (status)
		*status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
	return out;
}

bool wait_for_file(const std::string& path, int timeout_ms)
{
	auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	struct stat st;
	while (std::chrono::steady_clock::now() < until) {
		if (stat(path.c_str(), &st) == 0 && st.st_size > 0)
			return true;
		std::this_thread::sleep_for(std::chrono::milliseconds(50));
	}
	return false;
}

} // namespace tdsbpf::test
