#!/usr/bin/env bash
# Installs what tdsbpf needs to build and test on Debian 12 (as root), and
# builds it into ./build. Sourced by tools/run.sh and tools/test.sh; safe to
# run again: packages already there are not reinstalled.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${TDSBPF_BUILD_DIR:-$TOP/build}

# build: compilers, BPF toolchain, libraries
PACKAGES=(build-essential cmake pkg-config clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev
	linux-libc-dev libspdlog-dev nlohmann-json3-dev libcli11-dev libpcap-dev libssl-dev
	libgtest-dev iproute2 libabsl-dev libxxhash-dev)
# tests: real peers and oracles
PACKAGES+=(tshark tcpdump freetds-bin tdsodbc unixodbc python3-pymssql python3-pyodbc
	python3-jsonschema)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# tedious (npm) needs node; keep a node that is already there
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

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

# BPF programs need the BPF filesystem only for pinning (not used), but
# bpftool's skeleton generation works without it.
cmake -S "$TOP" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
