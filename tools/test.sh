#!/usr/bin/env bash
# Sets up (packages, build) and runs every test. Tests that need root, BPF
# or a driver skip with a reason when it is missing; with
# TDSBPF_REQUIRE_BPF=1 (as CI sets it) such a skip is a failure.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${TDSBPF_BUILD_DIR:-$TOP/build}
"$TOP/tools/setup.sh" test
cd "$BUILD"
# the BPF and live tests share a lock (they check what is attached)
ctest --output-on-failure -j2 --timeout 600 "$@"
