// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "netns_lab.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace tdsbpf::lab {

NetnsLab::NetnsLab(const std::string& subnet)
{
	std::string n = std::to_string(getpid() % 100000);
	srv_ = "tdsbpf-s" + n;
	cli_ = "tdsbpf-c" + n;
	vs_ = "tdsbpf-vs" + n;
	vc_ = "tdsbpf-vc" + n;
	// a /24 of its own per run, inside the namespaces only
	int net = 1 + getpid() % 250;
	srv_ip_ = subnet + "." + std::to_string(net) + ".1";
	cli_ip_ = subnet + "." + std::to_string(net) + ".2";
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
		if (run_quiet(s) != 0) {
			error_ = "cannot build the lab network (root and iproute2 needed): '" + s + "' failed";
			remove();
			return;
		}
	}
}

NetnsLab::~NetnsLab()
{
	// a polite stop first: the lab server and the tracer clean up after
	// themselves; then the group is killed
	for (pid_t pid : children_)
		if (pid > 0)
			lab::stop(pid, SIGTERM, std::chrono::milliseconds(2000));
	remove();
}

void NetnsLab::remove()
{
	// the veth pair goes with the namespaces; delete it too if a move failed
	run_quiet("ip netns del " + srv_);
	run_quiet("ip netns del " + cli_);
	run_quiet("ip link del " + vs_);
}

pid_t NetnsLab::spawn(const std::string& ns, const std::vector<std::string>& argv, const std::string& out,
		      const std::string& err, bool append)
{
	SpawnOptions opt;
	opt.netns = ns;
	opt.stdout_path = out;
	opt.stderr_path = err;
	opt.append = append;
	pid_t pid = lab::spawn(argv, opt);
	children_.push_back(pid);
	return pid;
}

int NetnsLab::stop(pid_t pid, int sig, int timeout_ms)
{
	int rc = lab::stop(pid, sig, std::chrono::milliseconds(timeout_ms));
	for (auto& c : children_)
		if (c == pid)
			c = 0;
	return rc;
}

std::string NetnsLab::sh(const std::string& ns, const std::string& cmd, int* status) const
{
	return run_capture("ip netns exec " + ns + " sh -c '" + cmd + "'", status);
}

NetnsGuard::NetnsGuard(const std::string& ns)
{
	old_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int fd = open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
	if (old_ < 0 || fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
		std::string why = std::strerror(errno);
		if (fd >= 0)
			close(fd);
		if (old_ >= 0)
			close(old_);
		old_ = -1;
		throw std::runtime_error("cannot enter namespace " + ns + ": " + why);
	}
	close(fd);
}

NetnsGuard::~NetnsGuard()
{
	if (old_ >= 0) {
		setns(old_, CLONE_NEWNET);
		close(old_);
	}
}

} // namespace tdsbpf::lab
