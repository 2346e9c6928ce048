// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include "privileges.h"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <spdlog/spdlog.h>

namespace tdsbpf {
namespace {

// The capability numbers tdsbpf names (not all C libraries define the
// newer ones).
constexpr int kNetAdmin = 12;
constexpr int kSysAdmin = 21;
constexpr int kPerfmon = 38;
constexpr int kBpf = 39;

struct CapSets {
	uint64_t effective = 0, permitted = 0, inheritable = 0;
};

CapSets get_caps()
{
	__user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
	__user_cap_data_struct data[2]{};
	if (syscall(SYS_capget, &hdr, data) != 0)
		throw std::runtime_error(std::string("cannot read the capabilities: ") + std::strerror(errno));
	CapSets s;
	s.effective = data[0].effective | (static_cast<uint64_t>(data[1].effective) << 32);
	s.permitted = data[0].permitted | (static_cast<uint64_t>(data[1].permitted) << 32);
	s.inheritable = data[0].inheritable | (static_cast<uint64_t>(data[1].inheritable) << 32);
	return s;
}

void set_caps(const CapSets& s)
{
	__user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
	__user_cap_data_struct data[2]{};
	data[0].effective = static_cast<uint32_t>(s.effective);
	data[1].effective = static_cast<uint32_t>(s.effective >> 32);
	data[0].permitted = static_cast<uint32_t>(s.permitted);
	data[1].permitted = static_cast<uint32_t>(s.permitted >> 32);
	data[0].inheritable = static_cast<uint32_t>(s.inheritable);
	data[1].inheritable = static_cast<uint32_t>(s.inheritable >> 32);
	if (syscall(SYS_capset, &hdr, data) != 0)
		throw std::runtime_error(std::string("cannot drop capabilities: ") + std::strerror(errno));
}

int last_cap()
{
	int n = 40;
	if (FILE* f = std::fopen("/proc/sys/kernel/cap_last_cap", "r")) {
		if (std::fscanf(f, "%d", &n) != 1)
			n = 40;
		std::fclose(f);
	}
	return n;
}

// Bounding set: every capability not in keep that is still in it (needs
// CAP_SETPCAP, so before the permitted set loses it). Started with a
// bounding set already that small (systemd's CapabilityBoundingSet, which
// takes CAP_SETPCAP away too), there is nothing to drop. Without
// CAP_SETPCAP what is left stays in the bounding set, which no_new_privs
// (set first) keeps any exec from using. Ambient: cleared.
void limit_bounding(uint64_t keep)
{
	uint64_t left = 0;
	for (int c = 0; c <= last_cap() && c < 64; c++) {
		if ((keep >> c) & 1 || prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 1)
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) == 0)
			continue;
		if (errno != EPERM)
			throw std::runtime_error(std::string("cannot limit the capability bounding set: ") +
						 std::strerror(errno));
		left |= 1ULL << c;
	}
	if (left)
		spdlog::debug("privileges: the bounding set keeps {:#x} (no CAP_SETPCAP to drop it); no_new_privs "
			      "keeps any program run from using it",
			      left);
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

const char* cap_name(int c)
{
	switch (c) {
	case kNetAdmin: return "CAP_NET_ADMIN";
	case kSysAdmin: return "CAP_SYS_ADMIN";
	case kPerfmon: return "CAP_PERFMON";
	case kBpf: return "CAP_BPF";
	default: return nullptr;
	}
}

} // namespace

std::string missing_privileges()
{
	uint64_t eff = 0;
	try {
		eff = get_caps().effective;
	} catch (const std::exception&) {
	}
	auto has = [eff](int cap) { return (eff >> cap) & 1; };
	if (has(kSysAdmin) && has(kNetAdmin))
		return {};
	std::vector<std::string> missing;
	if (!has(kBpf) && !has(kSysAdmin))
		missing.push_back("CAP_BPF");
	if (!has(kPerfmon) && !has(kSysAdmin))
		missing.push_back("CAP_PERFMON");
	if (!has(kNetAdmin))
		missing.push_back("CAP_NET_ADMIN");
	if (missing.empty())
		return {};
	std::string s = "tdsbpf needs root, or the capabilities ";
	for (std::size_t i = 0; i < missing.size(); i++)
		s += (i ? ", " : "") + missing[i];
	s += " (missing now). Run it with sudo, or grant them: setcap cap_bpf,cap_perfmon,cap_net_admin+ep tdsbpf";
	return s;
}

void drop_to_attach_only()
{
	const uint64_t keep = (1ULL << kBpf) | (1ULL << kPerfmon) | (1ULL << kNetAdmin);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		throw std::runtime_error(std::string("cannot set no_new_privs: ") + std::strerror(errno));
	limit_bounding(keep);
	CapSets s = get_caps();
	s.effective &= keep;
	s.permitted &= keep;
	s.inheritable = 0;
	set_caps(s);
}

namespace {

const passwd* find_user(const std::string& user)
{
	const passwd* pw = getpwnam(user.c_str());
	if (!pw && !user.empty() && user.find_first_not_of("0123456789") == std::string::npos)
		pw = getpwuid(static_cast<uid_t>(std::strtoul(user.c_str(), nullptr, 10)));
	return pw;
}

} // namespace

bool known_user(const std::string& user)
{
	return find_user(user) != nullptr;
}

void become_user(const std::string& user)
{
	const passwd* pw = find_user(user);
	if (!pw)
		throw std::runtime_error("--user " + user + ": no such user");
	uid_t uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	if (uid == 0)
		throw std::runtime_error("--user " + user + ": that is root; name an unprivileged user");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		throw std::runtime_error(std::string("cannot set no_new_privs: ") + std::strerror(errno));
	limit_bounding(0);
	if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0)
		throw std::runtime_error("--user " + user + ": cannot switch to it: " + std::strerror(errno));
	// a switch away from uid 0 clears the capability sets; make sure
	set_caps(CapSets{});
	if (setuid(0) == 0)
		throw std::runtime_error("--user " + user + ": root could be regained; stopping");
}

std::string effective_capabilities()
{
	CapSets s = get_caps();
	std::string out;
	for (int c = 0; c < 64; c++) {
		if (!((s.effective >> c) & 1))
			continue;
		const char* n = cap_name(c);
		out += (out.empty() ? "" : ", ") + (n ? std::string(n) : "capability " + std::to_string(c));
	}
	return out.empty() ? "none" : out;
}

} // namespace tdsbpf
