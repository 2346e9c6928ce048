// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// `tdsbpf demo`: a private network (two namespaces and a veth pair), the lab
// server on one side, the tracer on its interface, a scripted tour of
// connections from the other side; the live text view, then the JSON
// records; everything removed at the end, on errors and on SIGINT.
#pragma once

namespace tdsbpf {

// argv[0] is "demo". Returns the process exit status.
int run_demo(int argc, char** argv);

} // namespace tdsbpf
