// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Who owns a socket, from the cgroup v2 id the tc program reads with
// bpf_skb_cgroup_id: the socket's cgroup, whose id is (on 64-bit kernels)
// the inode number of that cgroup's directory on the cgroup2 mount. From
// the cgroup's path come the systemd unit, the container and its runtime,
// and the Kubernetes pod and its QoS class, where the path shows them.
//
// Paths follow what systemd, Docker, containerd, CRI-O, Podman and the
// kubelet (systemd and cgroupfs drivers) name their cgroups. A name is
// taken only when it has the exact form: a container id is 64 lowercase hex
// digits, a pod UID a UUID (or the 32 hex digits of a static pod), a unit
// name only systemd's characters.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace tdsbpf {

struct Owner {
	std::uint64_t cgroup_id = 0;
	// Relative to the cgroup2 mount (in a cgroup namespace, to its root),
	// e.g. "/system.slice/mssql-server.service"; "/" for the root; empty
	// when unknown. The bytes as the file system has them: not
	// necessarily UTF-8.
	std::string cgroup_path;
	// The innermost .service, .scope or .socket unit on the path
	// ("mssql-server.service", "session-3.scope", "docker-<id>.scope");
	// empty if none.
	std::string systemd_unit;
	// The innermost container on the path: docker-<id>.scope,
	// cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope,
	// nerdctl-<id>.scope (systemd driver), /docker/<id> and
	// /kubepods/.../pod<uid>/<id> (cgroupfs driver).
	std::string container_id;
	std::string container_runtime; // "docker", "containerd", "cri-o", "podman", or empty
	// From kubepods-...-pod<uid>.slice (the UID's dashes restored) or
	// /kubepods/.../pod<uid>.
	std::string pod_uid;
	std::string pod_qos; // "guaranteed", "burstable", "besteffort", or empty
};

// What a cgroup path says; no file system access. A path with "." or ".."
// components names no real cgroup: only the id and the path are kept.
Owner describe_cgroup_path(std::uint64_t id, std::string_view path);

// Resolves cgroup ids to owners on one cgroup2 mount. Not thread-safe: one
// per thread, or guarded by its user.
//
// A miss is looked up with open_by_handle_at (the cgroup file handle is the
// 8-byte id), which answers at once whether the cgroup exists; that needs
// CAP_DAC_READ_SEARCH, which tdsbpf no longer has once it has dropped its
// privileges. Without it a miss walks the tree (at most kMaxScanDirs
// directories, never across symlinks or mounts), at most once per rescan
// interval, so that a flood of unknown ids cannot make it walk the tree
// for each: misses inside the interval are nullopt. The cache keeps at most
// kMaxCached ids. A cached owner is returned until a walk finds its cgroup
// gone (cgroup ids are never reused), so an owner stays known for a while
// after its cgroup is removed.
class OwnerResolver {
public:
	static constexpr std::size_t kMaxScanDirs = 100000;
	static constexpr std::size_t kMaxCached = 65536;

	// cgroup_root: the cgroup2 mount. When it is not one but
	// <cgroup_root>/unified is (systemd's hybrid layout), that is used.
	explicit OwnerResolver(std::string cgroup_root = "/sys/fs/cgroup");
	~OwnerResolver();
	OwnerResolver(const OwnerResolver&) = delete;
	OwnerResolver& operator=(const OwnerResolver&) = delete;

	// The owner of a cgroup id; nullopt when no cgroup with that id exists
	// (any more), or not found yet (see above). Never throws.
	std::optional<Owner> resolve(std::uint64_t cgroup_id);

	// Whether the root is a cgroup2 mount; if not, resolve() is always nullopt.
	bool available() const { return root_fd_ >= 0; }
	// The cgroup2 mount in use (empty when not available).
	const std::string& root() const { return root_; }

	void set_rescan_interval(std::chrono::milliseconds interval) { rescan_interval_ = interval; }
	// Whether misses try open_by_handle_at first (on by default; turned off
	// for good when the kernel refuses it).
	void set_file_handles(bool on) { file_handles_ = on; }
	bool file_handles() const { return file_handles_ && handles_work_; }

	// Walks of the tree so far.
	std::uint64_t scans() const { return scans_; }
	std::size_t cached() const { return cache_.size(); }

private:
	std::optional<std::string> path_by_handle(std::uint64_t id, bool& gone);
	void scan(std::uint64_t wanted);
	void remember(std::uint64_t id, const std::string& path);

	std::string root_;
	std::string root_link_; // the root as /proc/self/fd shows it
	int root_fd_ = -1;
	std::uint64_t root_dev_ = 0;
	std::uint64_t root_ino_ = 0;
	bool handles_work_ = false; // the kernel gives cgroup file handles
	bool file_handles_ = true;
	std::chrono::milliseconds rescan_interval_{100};
	std::optional<std::chrono::steady_clock::time_point> last_scan_;
	std::uint64_t scans_ = 0;
	std::unordered_map<std::uint64_t, std::string> cache_; // id -> path
};

} // namespace tdsbpf
