// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// What tdsbpf keeps of its privileges once attached: by default only what
// attaching again needs (an interface that returns, the tc ingress program
// loaded then, tc filters removed at exit); with a user named, nothing.
#pragma once

#include <string>

namespace tdsbpf {

// Empty when the process may load and attach programs; otherwise says
// which privileges are missing.
std::string missing_privileges();

// Capabilities kept after attaching when running on as root (CAP_BPF,
// CAP_PERFMON, CAP_NET_ADMIN). Every other one is dropped from the
// effective, permitted, inheritable, ambient and bounding sets, and
// no_new_privs is set. Throws std::runtime_error when that fails.
void drop_to_attach_only();

// Switches to the user (name or numeric uid) and its primary group with
// no capabilities left at all. Throws std::runtime_error with what went
// wrong (an unknown user, a failed switch).
void become_user(const std::string& user);

// Whether become_user would find the user (checked before attaching).
bool known_user(const std::string& user);

// "CAP_BPF, CAP_NET_ADMIN" for the effective set now ("none" if empty).
std::string effective_capabilities();

} // namespace tdsbpf
