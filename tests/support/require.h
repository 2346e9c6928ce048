// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Tests that need root, BPF or an external tool: they skip with a reason on
// machines that lack it, but with TDSBPF_REQUIRE_BPF=1 (CI) a skip is a
// failure, so CI really runs them.
#pragma once

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace tdsbpf::test {

inline bool require_mode()
{
	const char* v = std::getenv("TDSBPF_REQUIRE_BPF");
	return v && std::string(v) == "1";
}

// Use as: TDSBPF_REQUIRE(condition, "why it is needed");
#define TDSBPF_REQUIRE(cond, why)                                                       \
	do {                                                                            \
		if (!(cond)) {                                                          \
			if (::tdsbpf::test::require_mode())                             \
				FAIL() << "required (TDSBPF_REQUIRE_BPF=1): " << (why); \
			else                                                            \
				GTEST_SKIP() << (why);                                  \
		}                                                                       \
	} while (0)

} // namespace tdsbpf::test
