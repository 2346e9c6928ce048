// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Socket owners from real cgroups (userspace/owners.h): cgroups made under
// the cgroup2 mount are resolved by id (their directory's inode number),
// by file handle and by walking the tree; a cgroup made after a walk is
// found once the rescan interval has passed, one removed is gone after the
// next walk, unknown ids walk the tree at most once per interval, and a
// process moved into a cgroup is where /proc/<pid>/cgroup says. Every
// cgroup made is removed at the end, also when a check fails.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "lab/process.h"
#include "owners.h"
#include "require.h"

using namespace std::chrono_literals;
using tdsbpf::Owner;
using tdsbpf::OwnerResolver;

namespace {

// An id no cgroup has: ids count up from 1.
constexpr std::uint64_t kUnknownId = 0x7fffffffffff0000ULL;

std::string slurp(const std::string& path)
{
	std::ifstream in(path);
	std::stringstream ss;
	ss << in.rdbuf();
	return ss.str();
}

// The cgroup v2 line ("0::PATH") of /proc/<pid>/cgroup; empty if none.
std::string v2_cgroup(const std::string& pid)
{
	std::istringstream in(slurp("/proc/" + pid + "/cgroup"));
	std::string line;
	while (std::getline(in, line))
		if (line.rfind("0::", 0) == 0)
			return line.substr(3);
	return {};
}

// Writes text to an existing file; the errno on failure, else 0.
int write_text(const std::string& path, const std::string& text)
{
	int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	int err = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) ? 0 : errno;
	::close(fd);
	return err;
}

std::uint64_t inode(const std::string& path)
{
	struct stat st {};
	return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// Cgroups made by a test, removed at scope exit (innermost first), after
// any process left in them is moved back to this process's cgroup.
class Cgroups {
public:
	explicit Cgroups(std::string root) : root_(std::move(root)), home_(root_ + v2_cgroup("self")) {}
	~Cgroups()
	{
		for (auto it = made_.rbegin(); it != made_.rend(); ++it)
			remove_dir(*it);
	}
	Cgroups(const Cgroups&) = delete;
	Cgroups& operator=(const Cgroups&) = delete;

	// mkdir of root + rel; the errno on failure, else 0.
	int make(const std::string& rel)
	{
		if (::mkdir((root_ + rel).c_str(), 0755) != 0)
			return errno;
		made_.push_back(rel);
		return 0;
	}
	// rmdir now; false if it failed.
	bool remove(const std::string& rel)
	{
		for (auto it = made_.begin(); it != made_.end(); ++it)
			if (*it == rel) {
				made_.erase(it);
				return remove_dir(rel);
			}
		return false;
	}
	std::string full(const std::string& rel) const { return root_ + rel; }
	const std::string& home() const { return home_; }

private:
	bool remove_dir(const std::string& rel)
	{
		std::istringstream procs(slurp(full(rel) + "/cgroup.procs"));
		std::string pid;
		while (procs >> pid)
			write_text(home_ + "/cgroup.procs", pid);
		// a cgroup stays busy a moment after its last process left
		for (int i = 0; i < 100; ++i) {
			if (::rmdir(full(rel).c_str()) == 0 || errno == ENOENT)
				return true;
			if (errno != EBUSY)
				break;
			std::this_thread::sleep_for(10ms);
		}
		ADD_FAILURE() << "cannot remove the cgroup " << full(rel) << ": " << std::strerror(errno);
		return false;
	}

	std::string root_;
	std::string home_;
	std::vector<std::string> made_;
};

// A child process, killed at scope exit.
struct Child {
	pid_t pid = -1;
	~Child()
	{
		if (pid > 0)
			tdsbpf::lab::stop(pid, SIGKILL, 2000ms);
	}
};

class OwnersLive : public ::testing::Test {
protected:
	void SetUp() override
	{
		TDSBPF_REQUIRE(geteuid() == 0, "making cgroups needs root");
		OwnerResolver probe;
		TDSBPF_REQUIRE(probe.available(), "no cgroup2 mount at /sys/fs/cgroup (or /sys/fs/cgroup/unified)");
		root_ = probe.root();
		cgroups_.emplace(root_);
		slice_ = "/tdsbpf-owners-" + std::to_string(getpid()) + ".slice";
		int err = cgroups_->make(slice_);
		TDSBPF_REQUIRE(err == 0, "cannot make a cgroup under " + root_ + ": " + std::strerror(err));
		ASSERT_EQ(make(service("a")), 0);
	}
	void TearDown() override { cgroups_.reset(); }

	std::string service(const std::string& name) const { return slice_ + "/tdsbpf-lab-" + name + ".service"; }
	int make(const std::string& rel) { return cgroups_->make(rel); }
	std::uint64_t id(const std::string& rel) const { return inode(cgroups_->full(rel)); }

	std::string root_;
	std::string slice_;
	std::optional<Cgroups> cgroups_;
};

TEST_F(OwnersLive, ResolvesCgroups)
{
	const std::string a = service("a");
	ASSERT_NE(id(a), 0u);
	for (bool handles : {true, false}) {
		SCOPED_TRACE(handles ? "file handles" : "walk");
		OwnerResolver r;
		r.set_file_handles(handles);
		std::optional<Owner> o = r.resolve(id(a));
		ASSERT_TRUE(o.has_value());
		EXPECT_EQ(o->cgroup_id, id(a));
		EXPECT_EQ(o->cgroup_path, a);
		EXPECT_EQ(o->systemd_unit, "tdsbpf-lab-a.service");
		EXPECT_EQ(o->container_id, "");
		EXPECT_EQ(o->pod_uid, "");

		o = r.resolve(id(slice_));
		ASSERT_TRUE(o.has_value());
		EXPECT_EQ(o->cgroup_path, slice_);
		EXPECT_EQ(o->systemd_unit, "");

		o = r.resolve(inode(root_));
		ASSERT_TRUE(o.has_value());
		EXPECT_EQ(o->cgroup_path, "/");

		if (!handles) {
			EXPECT_EQ(r.scans(), 1u); // one walk; the rest from its cache
		} else if (r.file_handles()) {
			EXPECT_EQ(r.scans(), 0u);
		}
	}
}

TEST_F(OwnersLive, NewCgroupFoundAfterTheInterval)
{
	const auto interval = 500ms;
	OwnerResolver r;
	r.set_file_handles(false);
	r.set_rescan_interval(interval);
	ASSERT_TRUE(r.resolve(id(service("a"))).has_value());
	auto walked = std::chrono::steady_clock::now();
	ASSERT_EQ(r.scans(), 1u);

	const std::string b = service("b");
	ASSERT_EQ(make(b), 0);
	std::uint64_t b_id = id(b);
	std::optional<Owner> o = r.resolve(b_id);
	if (std::chrono::steady_clock::now() - walked < interval) {
		EXPECT_FALSE(o.has_value()) << "walked again inside the interval";
		EXPECT_EQ(r.scans(), 1u);
	}
	std::this_thread::sleep_until(walked + interval + 10ms);
	o = r.resolve(b_id);
	ASSERT_TRUE(o.has_value());
	EXPECT_EQ(o->cgroup_path, b);
	EXPECT_EQ(o->systemd_unit, "tdsbpf-lab-b.service");
	EXPECT_EQ(r.scans(), 2u);

	// Removed: still known from the cache until a walk finds it gone.
	ASSERT_TRUE(cgroups_->remove(b));
	EXPECT_TRUE(r.resolve(b_id).has_value());
	r.set_rescan_interval(0ms);
	EXPECT_FALSE(r.resolve(kUnknownId).has_value());
	EXPECT_EQ(r.scans(), 3u);
	EXPECT_FALSE(r.resolve(b_id).has_value());
	EXPECT_TRUE(r.resolve(id(service("a"))).has_value());

	// By file handle a new cgroup is found at once, without a walk.
	OwnerResolver h;
	if (h.file_handles()) {
		ASSERT_TRUE(h.resolve(id(service("a"))).has_value());
		const std::string c = service("c");
		ASSERT_EQ(make(c), 0);
		o = h.resolve(id(c));
		ASSERT_TRUE(o.has_value());
		EXPECT_EQ(o->cgroup_path, c);
		EXPECT_EQ(h.scans(), 0u);
	}
}

TEST_F(OwnersLive, UnknownIdsAreRateLimited)
{
	OwnerResolver r;
	r.set_file_handles(false);
	r.set_rescan_interval(10s);
	EXPECT_FALSE(r.resolve(kUnknownId).has_value());
	EXPECT_EQ(r.scans(), 1u);
	for (std::uint64_t i = 1; i <= 1000; ++i)
		EXPECT_FALSE(r.resolve(kUnknownId + i).has_value());
	EXPECT_EQ(r.scans(), 1u);
	// what the one walk found answers without another
	EXPECT_TRUE(r.resolve(id(service("a"))).has_value());
	EXPECT_EQ(r.scans(), 1u);
	EXPECT_GE(r.cached(), 3u);
	EXPECT_LE(r.cached(), OwnerResolver::kMaxCached);
	r.set_rescan_interval(0ms);
	EXPECT_FALSE(r.resolve(kUnknownId).has_value());
	EXPECT_EQ(r.scans(), 2u);
	// 0 is no cgroup: no walk for it
	EXPECT_FALSE(r.resolve(0).has_value());
	EXPECT_EQ(r.scans(), 2u);

	// By file handle the kernel says at once that the id is unknown.
	OwnerResolver h;
	if (h.file_handles()) {
		for (std::uint64_t i = 0; i < 1000; ++i)
			EXPECT_FALSE(h.resolve(kUnknownId + i).has_value());
		EXPECT_EQ(h.scans(), 0u);
	}
}

TEST_F(OwnersLive, ProcessInTheCgroup)
{
	const std::string a = service("a");
	Child child; // declared after the cgroups: killed before they are removed
	child.pid = tdsbpf::lab::spawn({"sleep", "5"});
	ASSERT_GT(child.pid, 0);
	const std::string pid = std::to_string(child.pid);
	ASSERT_EQ(write_text(cgroups_->full(a) + "/cgroup.procs", pid), 0);
	EXPECT_NE(slurp(cgroups_->full(a) + "/cgroup.procs").find(pid), std::string::npos);

	OwnerResolver r;
	std::optional<Owner> o = r.resolve(id(a));
	ASSERT_TRUE(o.has_value());
	EXPECT_EQ(v2_cgroup(pid), o->cgroup_path);
	EXPECT_EQ(o->cgroup_path, a);

	// back where it came from, then ended
	ASSERT_EQ(write_text(cgroups_->home() + "/cgroup.procs", pid), 0);
	EXPECT_EQ(root_ + v2_cgroup(pid), cgroups_->home());
	EXPECT_EQ(slurp(cgroups_->full(a) + "/cgroup.procs"), "");
	tdsbpf::lab::stop(child.pid, SIGKILL, 2000ms);
	child.pid = -1;
}

} // namespace
