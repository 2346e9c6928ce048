#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Sets up (packages, build) and traces SQL Server connections live:
#   sudo tools/run.sh                 # the default route's interface, port 1433
#   sudo tools/run.sh --iface eth0 --port 1433 --format text
# Every argument goes to tdsbpf (see tdsbpf --help).
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$TOP/tools/setup.sh" run
exec "${TDSBPF_BUILD_DIR:-$TOP/build}/userspace/tdsbpf" "$@"
