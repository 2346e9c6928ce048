// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Socket owners from cgroup ids (see owners.h): what a cgroup path says,
// and the ids looked up by file handle or by a walk of the cgroup2 tree.
#include "owners.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

namespace tdsbpf {

namespace {

// NAME_MAX: no longer component exists on a real file system
constexpr std::size_t kNameMax = 255;
// the kernel's FILEID_KERNFS (include/linux/exportfs.h, not in the uapi)
constexpr int kFileidKernfs = 0xfe;
// each level of the walk holds one descriptor open
constexpr unsigned kMaxDepth = 128;

bool is_hex(std::string_view s)
{
	for (char c : s)
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	return true;
}

// What every runtime here names its containers by: 64 lowercase hex digits.
bool is_container_id(std::string_view s)
{
	return s.size() == 64 && is_hex(s);
}

// A UUID in lowercase, as the API server makes them, or the 32 hex digits
// the kubelet gives a static pod.
bool is_pod_uid(std::string_view s)
{
	if (s.size() == 32)
		return is_hex(s);
	if (s.size() != 36)
		return false;
	for (std::size_t i = 0; i < s.size(); ++i) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !is_hex(s.substr(i, 1)))
			return false;
	}
	return true;
}

// A unit whose processes can own sockets, in systemd's characters.
bool is_unit_name(std::string_view s)
{
	std::string_view stem;
	for (std::string_view suffix : {".service", ".scope", ".socket"})
		if (s.size() > suffix.size() && s.ends_with(suffix))
			stem = s.substr(0, s.size() - suffix.size());
	if (stem.empty() || s.size() > kNameMax)
		return false;
	for (char c : stem)
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
		      c == '-' || c == '_' || c == '.' || c == '\\' || c == '@'))
			return false;
	return true;
}

struct ScopePrefix {
	std::string_view prefix;
	const char* runtime;
	bool bare; // also without ".scope": the runtime's cgroupfs form
};

// Container cgroups under the systemd driver are <prefix><id>.scope; CRI-O
// and Podman under cgroupfs name them <prefix><id>. Their conmon cgroups
// (crio-conmon-<id>, libpod-conmon-<id>) are not containers and fail the
// id check.
constexpr std::array<ScopePrefix, 5> kScopePrefixes{{
	{"docker-", "docker", false},
	{"cri-containerd-", "containerd", false},
	{"crio-", "cri-o", true},
	{"libpod-", "podman", true},
	{"nerdctl-", "containerd", false},
}};

const char* scoped_container(std::string_view name, std::string_view& id)
{
	bool scope = name.ends_with(".scope");
	if (scope)
		name.remove_suffix(6);
	for (const auto& p : kScopePrefixes)
		if ((scope || p.bare) && name.starts_with(p.prefix) && is_container_id(name.substr(p.prefix.size()))) {
			id = name.substr(p.prefix.size());
			return p.runtime;
		}
	return nullptr;
}

bool is_qos(std::string_view s)
{
	return s == "burstable" || s == "besteffort";
}

// The kubelet's systemd driver: kubepods.slice, kubepods-<qos>.slice,
// kubepods[-<qos>]-pod<uid>.slice with the UID's dashes made underscores
// (a dash separates slice levels), all maybe behind the prefix of its
// --cgroup-root (kubelet-kubepods-...). True when the name is one.
bool kube_slice(std::string_view name, Owner& o)
{
	if (!name.ends_with(".slice"))
		return false;
	name.remove_suffix(6);
	std::vector<std::string_view> words;
	while (true) {
		auto dash = name.find('-');
		words.push_back(name.substr(0, dash));
		if (dash == std::string_view::npos)
			break;
		name.remove_prefix(dash + 1);
	}
	std::size_t i = 0;
	while (i < words.size() && words[i] != "kubepods")
		++i;
	if (i == words.size())
		return false;
	++i;
	std::string_view qos;
	if (i < words.size() && is_qos(words[i]))
		qos = words[i++];
	std::string uid;
	if (i < words.size() && words[i].starts_with("pod")) {
		uid = words[i++].substr(3);
		for (char& c : uid)
			if (c == '_')
				c = '-';
		if (!is_pod_uid(uid))
			return false;
	}
	if (i != words.size())
		return false;
	if (!uid.empty()) {
		o.pod_uid = uid;
		o.pod_qos = qos.empty() ? "guaranteed" : std::string(qos);
	} else if (!qos.empty()) {
		o.pod_qos = qos;
	}
	return true;
}

} // namespace

Owner describe_cgroup_path(std::uint64_t id, std::string_view path)
{
	Owner o;
	o.cgroup_id = id;
	o.cgroup_path = path;

	std::vector<std::string_view> parts;
	for (std::string_view rest = path; !rest.empty();) {
		auto slash = rest.find('/');
		std::string_view part = rest.substr(0, slash);
		if (part == "." || part == "..")
			return o;
		if (!part.empty())
			parts.push_back(part);
		if (slash == std::string_view::npos)
			break;
		rest.remove_prefix(slash + 1);
	}

	// Index of a cgroupfs pod<uid> directory: its children are containers.
	std::size_t pod_dir = parts.size();
	for (std::size_t i = 0; i < parts.size(); ++i) {
		std::string_view part = parts[i];
		if (part.size() > kNameMax)
			continue;
		if (is_unit_name(part))
			o.systemd_unit = part;
		std::string_view cid;
		if (const char* runtime = scoped_container(part, cid)) {
			o.container_id = cid;
			o.container_runtime = runtime;
		} else if (i > 0 && is_container_id(part) && parts[i - 1] == "docker") {
			o.container_id = part;
			o.container_runtime = "docker";
		} else if (i > 0 && is_container_id(part) && i - 1 == pod_dir) {
			// containerd names them so; a node with cri-dockerd and the
			// cgroupfs driver looks the same
			o.container_id = part;
			o.container_runtime = "containerd";
		}
		if (kube_slice(part, o))
			continue;
		// The kubelet's cgroupfs driver: /kubepods[/<qos>]/pod<uid>/<id>.
		if (part == "kubepods") {
			std::size_t j = i + 1;
			std::string_view qos;
			if (j < parts.size() && is_qos(parts[j]))
				qos = parts[j++];
			if (j < parts.size() && parts[j].starts_with("pod") && is_pod_uid(parts[j].substr(3))) {
				o.pod_uid = parts[j].substr(3);
				o.pod_qos = qos.empty() ? "guaranteed" : std::string(qos);
				pod_dir = j;
			} else if (!qos.empty()) {
				o.pod_qos = qos;
			}
		}
	}
	return o;
}

// ---- the resolver ------------------------------------------------------------

namespace {

struct UniqueFd {
	int fd;
	explicit UniqueFd(int f) : fd(f) {}
	~UniqueFd()
	{
		if (fd >= 0)
			::close(fd);
	}
	UniqueFd(const UniqueFd&) = delete;
	UniqueFd& operator=(const UniqueFd&) = delete;
	int release()
	{
		int f = fd;
		fd = -1;
		return f;
	}
};

struct DirCloser {
	void operator()(DIR* d) const { closedir(d); }
};

// Where an open descriptor is, as the kernel names it; empty if unknown.
std::string fd_path(int fd)
{
	char link[32];
	std::snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	std::string buf(4096, '\0');
	ssize_t n = readlink(link, buf.data(), buf.size());
	if (n <= 0 || static_cast<std::size_t>(n) >= buf.size())
		return {};
	buf.resize(static_cast<std::size_t>(n));
	return buf;
}

// The cgroup file handle: the 8-byte id.
struct CgroupHandle {
	alignas(file_handle) unsigned char bytes[sizeof(file_handle) + 8]{};
	file_handle* get() { return reinterpret_cast<file_handle*>(bytes); }
};

// One walk of the tree: every directory's inode number and path.
struct Walk {
	std::uint64_t dev;
	std::uint64_t wanted;
	std::size_t dirs = 0;
	bool truncated = false;
	std::unordered_map<std::uint64_t, std::string> found;

	Walk(std::uint64_t d, std::uint64_t w) : dev(d), wanted(w) {}

	void add(std::uint64_t ino, const std::string& path)
	{
		if (found.size() < OwnerResolver::kMaxCached || ino == wanted)
			found.emplace(ino, path.empty() ? "/" : path);
	}

	// Takes fd. A directory that is gone, or that we may not read, is
	// skipped: the tree changes under the walk.
	void dir(int fd, std::string& path, unsigned depth)
	{
		std::unique_ptr<DIR, DirCloser> d(fdopendir(fd));
		if (!d) {
			::close(fd);
			return;
		}
		const std::size_t base = path.size();
		while (const dirent* e = readdir(d.get())) {
			std::string_view name = e->d_name;
			if (name == "." || name == "..")
				continue;
			if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)
				continue;
			if (dirs >= OwnerResolver::kMaxScanDirs) {
				truncated = true;
				return;
			}
			UniqueFd child(
				openat(dirfd(d.get()), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
			if (child.fd < 0)
				continue;
			++dirs;
			struct stat st {};
			if (fstat(child.fd, &st) != 0 || static_cast<std::uint64_t>(st.st_dev) != dev)
				continue;
			path.resize(base);
			path += '/';
			path += name;
			add(st.st_ino, path);
			if (depth < kMaxDepth)
				dir(child.release(), path, depth + 1);
			else
				truncated = true;
			path.resize(base);
		}
	}
};

} // namespace

OwnerResolver::OwnerResolver(std::string cgroup_root)
{
	for (const std::string& candidate : {cgroup_root, cgroup_root + "/unified"}) {
		UniqueFd fd(::open(candidate.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
		if (fd.fd < 0)
			continue;
		struct statfs sfs {};
		struct stat st {};
		if (fstatfs(fd.fd, &sfs) != 0 || sfs.f_type != CGROUP2_SUPER_MAGIC || fstat(fd.fd, &st) != 0)
			continue;
		root_ = candidate;
		root_link_ = fd_path(fd.fd);
		root_dev_ = st.st_dev;
		root_ino_ = st.st_ino;
		root_fd_ = fd.release();
		break;
	}
	if (root_fd_ < 0 || root_link_.empty())
		return;
	// Handles are used only when the kernel's handle for the root is the
	// 8-byte id: on kernels that encode cgroups otherwise, a stale handle
	// would not mean that the cgroup is gone.
	CgroupHandle h;
	h.get()->handle_bytes = 8;
	int mount_id = 0;
	if (name_to_handle_at(root_fd_, "", h.get(), &mount_id, AT_EMPTY_PATH) == 0 &&
	    h.get()->handle_type == kFileidKernfs && h.get()->handle_bytes == 8) {
		std::uint64_t id = 0;
		std::memcpy(&id, h.get()->f_handle, sizeof(id));
		handles_work_ = id == root_ino_;
	}
	// Opening by handle needs CAP_DAC_READ_SEARCH: tried once here; when
	// privileges are dropped later, the first refusal turns handles off.
	if (handles_work_) {
		UniqueFd fd(open_by_handle_at(root_fd_, h.get(), O_PATH | O_CLOEXEC));
		handles_work_ = fd.fd >= 0;
	}
}

OwnerResolver::~OwnerResolver()
{
	if (root_fd_ >= 0)
		::close(root_fd_);
}

std::optional<Owner> OwnerResolver::resolve(std::uint64_t cgroup_id)
{
	// 0: the packet had no socket, or the socket no cgroup
	if (root_fd_ < 0 || cgroup_id == 0)
		return std::nullopt;
	try {
		if (auto it = cache_.find(cgroup_id); it != cache_.end())
			return describe_cgroup_path(cgroup_id, it->second);
		if (file_handles()) {
			bool gone = false;
			if (auto path = path_by_handle(cgroup_id, gone)) {
				remember(cgroup_id, *path);
				return describe_cgroup_path(cgroup_id, *path);
			}
			if (gone)
				return std::nullopt;
		}
		if (last_scan_ && std::chrono::steady_clock::now() - *last_scan_ < rescan_interval_)
			return std::nullopt;
		scan(cgroup_id);
		if (auto it = cache_.find(cgroup_id); it != cache_.end())
			return describe_cgroup_path(cgroup_id, it->second);
	} catch (...) {
		// out of memory: unknown this time
	}
	return std::nullopt;
}

// The path of a cgroup by its file handle. gone: the kernel says no cgroup
// has that id.
std::optional<std::string> OwnerResolver::path_by_handle(std::uint64_t id, bool& gone)
{
	CgroupHandle h;
	h.get()->handle_bytes = 8;
	h.get()->handle_type = kFileidKernfs;
	std::memcpy(h.get()->f_handle, &id, sizeof(id));
	UniqueFd fd(open_by_handle_at(root_fd_, h.get(), O_PATH | O_CLOEXEC));
	if (fd.fd < 0) {
		if (errno == ESTALE)
			gone = true;
		else if (errno == EPERM || errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL)
			handles_work_ = false;
		return std::nullopt;
	}
	// A cgroup outside the mount (a cgroup namespace's mount shows a
	// subtree) has no path here; one removed since is "... (deleted)".
	std::string where = fd_path(fd.fd);
	if (where.size() < root_link_.size() || where.compare(0, root_link_.size(), root_link_) != 0 ||
	    where.ends_with(" (deleted)"))
		return std::nullopt;
	std::string rel = where.substr(root_link_.size());
	if (root_link_ == "/")
		rel = where;
	if (rel.empty())
		return "/";
	if (rel[0] != '/')
		return std::nullopt;
	return rel;
}

void OwnerResolver::scan(std::uint64_t wanted)
{
	// counted and timed also when it fails halfway (out of memory)
	++scans_;
	last_scan_ = std::chrono::steady_clock::now();
	Walk walk(root_dev_, wanted);
	walk.add(root_ino_, "");
	std::string path;
	int fd = openat(root_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		walk.dir(fd, path, 0);
	else
		walk.truncated = true;
	// What a partial walk did not reach may still be there.
	if (walk.truncated)
		for (auto& [id, p] : cache_) {
			if (walk.found.size() >= kMaxCached)
				break;
			walk.found.emplace(id, std::move(p));
		}
	cache_ = std::move(walk.found);
	last_scan_ = std::chrono::steady_clock::now();
}

void OwnerResolver::remember(std::uint64_t id, const std::string& path)
{
	if (cache_.size() >= kMaxCached)
		cache_.erase(cache_.begin());
	cache_.emplace(id, path);
}

} // namespace tdsbpf
