#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Sets up (packages, build) and runs every test. Tests that need root, BPF
# or a driver skip with a reason when it is missing; with
# TDSBPF_REQUIRE_BPF=1 (as CI sets it) such a skip is a failure. Then, in
# the second build (build-fuzz: clang, ASan, UBSan), each fuzz target for
# a bounded time and the host tests under the sanitizers; arguments, if
# any, go to the first ctest only and leave that part out.
# `tools/test.sh --soak [ARGS]` instead: the same set-up, then only the
# soak run (tools/soak/run ARGS; 10 minutes unless --minutes N), which is
# not part of the default run.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${TDSBPF_BUILD_DIR:-$TOP/build}
FUZZ_BUILD=${TDSBPF_FUZZ_BUILD_DIR:-$TOP/build-fuzz}
"$TOP/tools/setup.sh" test
if [ "${1:-}" = "--soak" ]; then
	shift
	exec "$TOP/tools/soak/run" --build "$BUILD" "$@"
fi
cd "$BUILD"
rc=0
# the BPF and live tests share a lock (they check what is attached)
ctest --output-on-failure -j2 --timeout 600 "$@" || rc=$?
if [ $# -eq 0 ]; then
	ctest --test-dir "$FUZZ_BUILD" --output-on-failure -j2 --timeout 600 -L '^(fuzz|sanitize)$' || rc=$?
fi
exit $rc
