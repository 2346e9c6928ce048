// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Helpers shared by the end-to-end tests.
#pragma once

#include <string>
#include <thread>

#include "lab/netns_lab.h"

namespace tdsbpf::e2e {

inline bool have(const std::string& program)
{
	return std::system(("command -v " + program + " >/dev/null 2>&1").c_str()) == 0;
}

// What `ip netns list` / `ip link` / `bpftool prog` show of tdsbpf, to check
// that a run left nothing behind ("" when clean). Programs are freed
// asynchronously after their last link: retried for a few seconds.
inline std::string leftovers(const std::string& ns_prefix)
{
	auto run = [](const std::string& cmd) {
		std::string out;
		if (FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r")) {
			char buf[4096];
			while (size_t n = fread(buf, 1, sizeof buf, p))
				out.append(buf, n);
			pclose(p);
		}
		return out;
	};
	std::string left;
	for (int i = 0; i < 50; i++) {
		left = run("ip netns list | grep '^" + ns_prefix + "'; ip -o link show | grep '" + ns_prefix +
			   "'; bpftool prog show | grep 'tdsbpf_'");
		if (left.empty())
			break;
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
	}
	return left;
}

} // namespace tdsbpf::e2e
