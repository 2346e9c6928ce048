// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Socket owners from cgroup paths (userspace/owners.h): systemd services and
// scopes, Docker, containerd, CRI-O and Podman containers, Kubernetes pods
// under both kubelet cgroup drivers, and hostile paths that must neither
// crash nor yield an id that is not one. Real cgroups are resolved in
// netns/owners_resolve_test.cpp (root).
#include <cctype>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "owners.h"

using tdsbpf::describe_cgroup_path;
using tdsbpf::Owner;

namespace {

const std::string kId = "3f2b9c1d5e7a4b6c8d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e";
const std::string kId2 = "a94c0e3b7d1f25c68e0b4a97d3f1c52e86b0a4d9c73e15f20b8a6d4c93e7f105";
const std::string kUid = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
const std::string kUidUnderscores = "1c2d3e4f_5a6b_4c7d_8e9f_0a1b2c3d4e5f";

struct Case {
	const char* name;
	std::string path;
	std::string unit;
	std::string container;
	std::string runtime;
	std::string pod;
	std::string qos;
};

std::vector<Case> cases()
{
	return {
		{"SystemdService", "/system.slice/mssql-server.service", "mssql-server.service", "", "", "", ""},
		{"SessionScope", "/user.slice/user-1000.slice/session-3.scope", "session-3.scope", "", "", "", ""},
		{"NestedInService", "/system.slice/foo.service/sub", "foo.service", "", "", "", ""},
		{"TemplateInstance", "/system.slice/system-getty.slice/getty@tty1.service", "getty@tty1.service", "",
		 "", "", ""},
		{"UserService", "/user.slice/user-1000.slice/user@1000.service/app.slice/sqlcmd.service",
		 "sqlcmd.service", "", "", "", ""},
		{"SocketUnit", "/system.slice/sshd.socket", "sshd.socket", "", "", "", ""},
		{"SliceOnly", "/system.slice", "", "", "", "", ""},
		{"DockerSystemd", "/system.slice/docker-" + kId + ".scope", "docker-" + kId + ".scope", kId, "docker",
		 "", ""},
		{"DockerCgroupfs", "/docker/" + kId, "", kId, "docker", "", ""},
		{"DockerInDocker", "/docker/" + kId + "/docker/" + kId2, "", kId2, "docker", "", ""},
		{"ContainerdKubeletSystemd",
		 "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kUidUnderscores +
			 ".slice/cri-containerd-" + kId + ".scope",
		 "cri-containerd-" + kId + ".scope", kId, "containerd", kUid, "burstable"},
		{"BestEffortPodSlice",
		 "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + kUidUnderscores + ".slice", "",
		 "", "", kUid, "besteffort"},
		{"QosSliceOnly", "/kubepods.slice/kubepods-burstable.slice", "", "", "", "", "burstable"},
		{"KubepodsOnly", "/kubepods.slice", "", "", "", "", ""},
		{"GuaranteedSystemd",
		 "/kubepods.slice/kubepods-pod" + kUidUnderscores + ".slice/cri-containerd-" + kId + ".scope",
		 "cri-containerd-" + kId + ".scope", kId, "containerd", kUid, "guaranteed"},
		{"KubeletCgroupRoot",
		 "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
		 "kubelet-kubepods-besteffort-pod" +
			 kUidUnderscores + ".slice/cri-containerd-" + kId + ".scope",
		 "cri-containerd-" + kId + ".scope", kId, "containerd", kUid, "besteffort"},
		{"CriO",
		 "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kUidUnderscores + ".slice/crio-" +
			 kId + ".scope",
		 "crio-" + kId + ".scope", kId, "cri-o", kUid, "burstable"},
		{"CriOConmon",
		 "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kUidUnderscores +
			 ".slice/crio-conmon-" + kId + ".scope",
		 "crio-conmon-" + kId + ".scope", "", "", kUid, "burstable"},
		{"CriOCgroupfs", "/kubepods/burstable/pod" + kUid + "/crio-" + kId, "", kId, "cri-o", kUid,
		 "burstable"},
		{"Podman", "/machine.slice/libpod-" + kId + ".scope", "libpod-" + kId + ".scope", kId, "podman", "",
		 ""},
		{"PodmanRootless",
		 "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + kId + ".scope/container",
		 "libpod-" + kId + ".scope", kId, "podman", "", ""},
		{"PodmanCgroupfs", "/libpod_parent/libpod-" + kId, "", kId, "podman", "", ""},
		{"PodmanConmon", "/machine.slice/libpod-conmon-" + kId + ".scope", "libpod-conmon-" + kId + ".scope",
		 "", "", "", ""},
		{"Nerdctl", "/system.slice/nerdctl-" + kId + ".scope", "nerdctl-" + kId + ".scope", kId, "containerd",
		 "", ""},
		{"KubeletCgroupfsBestEffort", "/kubepods/besteffort/pod" + kUid + "/" + kId, "", kId, "containerd",
		 kUid, "besteffort"},
		{"KubeletCgroupfsGuaranteed", "/kubepods/pod" + kUid + "/" + kId, "", kId, "containerd", kUid,
		 "guaranteed"},
		{"KubeletCgroupfsPodOnly", "/kubepods/burstable/pod" + kUid, "", "", "", kUid, "burstable"},
		{"StaticPodUid", "/kubepods/burstable/pod0123456789abcdef0123456789abcdef/" + kId, "", kId,
		 "containerd", "0123456789abcdef0123456789abcdef", "burstable"},
		{"DoubleSlashes", "//system.slice//docker-" + kId + ".scope/", "docker-" + kId + ".scope", kId,
		 "docker", "", ""},
		{"Root", "/", "", "", "", "", ""},
		{"Empty", "", "", "", "", "", ""},
	};
}

TEST(Owners, DescribesPaths)
{
	for (const Case& c : cases()) {
		SCOPED_TRACE(c.name);
		Owner o = describe_cgroup_path(42, c.path);
		EXPECT_EQ(o.cgroup_id, 42u);
		EXPECT_EQ(o.cgroup_path, c.path);
		EXPECT_EQ(o.systemd_unit, c.unit);
		EXPECT_EQ(o.container_id, c.container);
		EXPECT_EQ(o.container_runtime, c.runtime);
		EXPECT_EQ(o.pod_uid, c.pod);
		EXPECT_EQ(o.pod_qos, c.qos);
	}
}

// Strings that look like ids but are not: wrong length, upper case, not
// hex, in the wrong place, or with something after them.
TEST(Owners, InventsNoContainerId)
{
	std::string upper = kId;
	for (char& c : upper)
		c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
	std::string not_hex = kId;
	not_hex[10] = 'g';
	const std::vector<std::string> paths = {
		"/system.slice/docker-" + kId.substr(1) + ".scope", // 63 digits
		"/system.slice/docker-" + kId + "0.scope",	    // 65 digits
		"/system.slice/docker-" + upper + ".scope",
		"/system.slice/docker-" + not_hex + ".scope",
		"/system.slice/docker-" + kId + ".scope.bak",
		"/system.slice/docker-" + kId + ".service",
		"/system.slice/docker.service",
		"/system.slice/docker-.scope",
		"/" + kId, // a bare id not under /docker or a pod
		"/system.slice/" + kId,
		"/notdocker/" + kId,
		"/docker/" + kId + "x",
		"/kubepods/burstable/" + kId, // no pod directory
		"/kubepods/burstable/podnot-a-uid/" + kId,
		"/kubepods.slice/cri-containerd-" + kId.substr(0, 12) + ".scope",
		"/docker-" + kId + "/x", // a prefix without the id alone
		"/system.slice/crio-conmon-" + kId + ".scope",
		"/system.slice/cri-containerd-" + kId + kId + ".scope",
	};
	for (const auto& p : paths) {
		SCOPED_TRACE(p);
		Owner o = describe_cgroup_path(7, p);
		EXPECT_EQ(o.container_id, "");
		EXPECT_EQ(o.container_runtime, "");
	}
}

TEST(Owners, RejectsMalformedPods)
{
	const std::vector<std::string> paths = {
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1c2d3e4f_5a6b.slice",
		"/kubepods.slice/kubepods-pod" + kUid + ".slice", // dashes split slice levels: not a UID
		"/kubepods.slice/kubepods-burstable-podZZ2d3e4f_5a6b_4c7d_8e9f_0a1b2c3d4e5f.slice",
		"/kubepods.slice/kubepods-burstable-pod" + kUidUnderscores + "-extra.slice",
		"/kubepods/pod",
		"/kubepods/guaranteed/pod" + kUid, // the kubelet has no such directory
		"/kubepods/burstable/pod" + kUid + "0",
	};
	for (const auto& p : paths) {
		SCOPED_TRACE(p);
		EXPECT_EQ(describe_cgroup_path(7, p).pod_uid, "");
	}
	EXPECT_EQ(describe_cgroup_path(7, "/kubepods/guaranteed/pod" + kUid).pod_qos, "");
}

TEST(Owners, RejectsBadUnitNames)
{
	const std::vector<std::string> paths = {"/system.slice/.service",   "/system.slice/a b.service",
						"/system.slice/x.service~", "/system.slice/x.slice",
						"/system.slice/x.mount",    "/system.slice/caf\xc3\xa9.service"};
	for (const auto& p : paths) {
		SCOPED_TRACE(p);
		EXPECT_EQ(describe_cgroup_path(1, p).systemd_unit, "");
	}
	EXPECT_EQ(describe_cgroup_path(1, "/system.slice/" + std::string(256 - 8, 'a') + ".service").systemd_unit, "");
	std::string longest = std::string(255 - 8, 'a') + ".service";
	EXPECT_EQ(describe_cgroup_path(1, "/system.slice/" + longest).systemd_unit, longest);
}

// "." and ".." cannot be cgroup names: such a path is kept but not read.
TEST(Owners, DotComponentsAreNotInterpreted)
{
	const std::vector<std::string> paths = {"/docker/" + kId + "/..", "/docker/../docker/" + kId,
						"/system.slice/./mssql-server.service", "../docker/" + kId, "/.."};
	for (const auto& p : paths) {
		SCOPED_TRACE(p);
		Owner o = describe_cgroup_path(9, p);
		EXPECT_EQ(o.cgroup_path, p);
		EXPECT_EQ(o.systemd_unit, "");
		EXPECT_EQ(o.container_id, "");
		EXPECT_EQ(o.pod_uid, "");
		EXPECT_EQ(o.pod_qos, "");
	}
	// names that merely start with dots are names
	EXPECT_EQ(describe_cgroup_path(9, "/system.slice/...service").systemd_unit, "...service");
}

TEST(Owners, HostileInput)
{
	// very long: many components, and one huge component
	std::string deep;
	for (int i = 0; i < 20000; ++i)
		deep += "/kubepods-burstable-pod" + kUidUnderscores + ".slice";
	deep += "/docker-" + kId + ".scope";
	Owner o = describe_cgroup_path(1, deep);
	EXPECT_EQ(o.container_id, kId);
	EXPECT_EQ(o.pod_uid, kUid);
	EXPECT_EQ(o.cgroup_path.size(), deep.size());

	std::string huge = "/system.slice/" + std::string(1 << 20, 'a') + ".service";
	EXPECT_EQ(describe_cgroup_path(1, huge).systemd_unit, "");
	std::string huge_docker = "/docker/" + std::string(1 << 20, 'f');
	EXPECT_EQ(describe_cgroup_path(1, huge_docker).container_id, "");
	std::string slashes(1 << 20, '/');
	EXPECT_EQ(describe_cgroup_path(1, slashes).systemd_unit, "");

	// bytes that are not UTF-8, and NULs
	std::string bytes = "/system.slice/\xff\xfe\x80.service/docker-" + kId + ".scope";
	o = describe_cgroup_path(1, bytes);
	EXPECT_EQ(o.cgroup_path, bytes);
	EXPECT_EQ(o.container_id, kId);
	EXPECT_EQ(o.systemd_unit, "docker-" + kId + ".scope");
	std::string nul = std::string("/docker/") + std::string(1, '\0') + kId.substr(1);
	EXPECT_EQ(describe_cgroup_path(1, nul).container_id, "");
	std::string with_nul = "/system.slice/a" + std::string(1, '\0') + ".service";
	EXPECT_EQ(describe_cgroup_path(1, with_nul).systemd_unit, "");

	// every byte value as a one-byte name, and as an id's first digit
	for (int b = 0; b < 256; ++b) {
		std::string c(1, static_cast<char>(b));
		bool digit = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f');
		EXPECT_EQ(describe_cgroup_path(1, "/docker/" + c + kId.substr(1)).container_id,
			  digit ? c + kId.substr(1) : "");
		describe_cgroup_path(1, "/" + c + "/" + c + c);
	}
}

// Without a cgroup2 mount nothing resolves, and nothing is walked.
TEST(Owners, ResolverWithoutCgroup2)
{
	for (const char* root : {"/proc", "/nonexistent/tdsbpf-owners", ""}) {
		SCOPED_TRACE(root);
		tdsbpf::OwnerResolver r(root);
		EXPECT_FALSE(r.available());
		EXPECT_EQ(r.root(), "");
		EXPECT_FALSE(r.resolve(1).has_value());
		EXPECT_FALSE(r.resolve(12345).has_value());
		EXPECT_EQ(r.scans(), 0u);
	}
}

} // namespace
