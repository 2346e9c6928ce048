#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Installs what tdsbpf needs on Debian 12 (as root) and builds it into
# ./build (or $TDSBPF_BUILD_DIR). Run by tools/run.sh and tools/test.sh;
# safe to run again: packages already there are not reinstalled.
#
#   tools/setup.sh run    what tracing needs: the build toolchain and
#                         libraries; builds tdsbpf and the lab tools
#   tools/setup.sh test   also the tests' real peers and oracles (tshark,
#                         tcpdump, FreeTDS, pymssql, Node for tedious,
#                         rsyslog and socat for the output sinks) and
#                         clang's libFuzzer, clang-format-14 (the style
#                         check); builds everything, tests
#                         included, and the fuzz targets and the host tests
#                         with ASan and UBSan into ./build-fuzz (or
#                         $TDSBPF_FUZZ_BUILD_DIR)
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${TDSBPF_BUILD_DIR:-$TOP/build}
FUZZ_BUILD=${TDSBPF_FUZZ_BUILD_DIR:-$TOP/build-fuzz}
MODE=${1:-test}
case "$MODE" in
run | test) ;;
*)
	echo "usage: tools/setup.sh [run|test]" >&2
	exit 2
	;;
esac

# running: compilers, the BPF toolchain, libraries
PACKAGES=(build-essential cmake pkg-config clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev
	linux-libc-dev libspdlog-dev nlohmann-json3-dev libcli11-dev libpcap-dev libssl-dev
	libabsl-dev libxxhash-dev libcivetweb-dev libsystemd-dev help2man iproute2 libkrb5-dev)
if [ "$MODE" = test ]; then
	# testing: GoogleTest, the real peers and the oracles
	PACKAGES+=(libgtest-dev clang-format-14 tshark tcpdump freetds-bin tdsodbc unixodbc python3-pymssql
		python3-pyodbc python3-jsonschema time libclang-rt-14-dev prometheus curl rsyslog socat
		krb5-kdc krb5-admin-server krb5-user gss-ntlmssp)
fi

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# tedious (npm) needs node; keep a node that is already there
if [ "$MODE" = test ] && ! command -v npm >/dev/null 2>&1; then
	missing+=(nodejs npm)
fi

if ((${#missing[@]})); then
	if [ "$(id -u)" != 0 ]; then
		echo "tdsbpf setup: these Debian packages are missing and installing them needs root:" >&2
		echo "  ${missing[*]}" >&2
		exit 1
	fi
	echo "tdsbpf setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# tshark asks whether non-root users may capture: they may not
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# CI builds with warnings as errors
werror=OFF
[ "${CI:-}" = true ] && werror=ON
if [ "$MODE" = run ]; then
	cmake -S "$TOP" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTDSBPF_BUILD_TESTS=OFF >/dev/null
	cmake --build "$BUILD" -j"$(nproc)" --target tdsbpf tdsbpf-labserver tdsbpf-loadclient
else
	cmake -S "$TOP" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTDSBPF_BUILD_TESTS=ON \
		-DTDSBPF_WERROR="$werror" >/dev/null
	cmake --build "$BUILD" -j"$(nproc)"
	# the fuzz targets, and the host tests again under ASan and UBSan (clang)
	cmake -S "$TOP" -B "$FUZZ_BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTDSBPF_FUZZ=ON -DTDSBPF_WERROR="$werror" >/dev/null
	cmake --build "$FUZZ_BUILD" -j"$(nproc)" --target fuzz_targets host_tests
fi
