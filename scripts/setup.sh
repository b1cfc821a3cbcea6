#!/usr/bin/env bash
# Installs the system packages that building, testing and benchmarking ferrokv need on Debian
# or Ubuntu. Safe to run any number of times: it installs only what is missing.
#
#   clang, libclang-dev   bindgen (used by librocksdb-sys) needs libclang
#   librocksdb-dev        the RocksDB library ferrokv links (see .cargo/config.toml)
#   redis-tools           redis-cli and redis-benchmark, to talk to and measure ferrokv
#   tcl                   tclsh, which runs Redis's own test suite (scripts/redis-tests.sh)
#   python3, redis-py     the emulated-cluster test drives redis-py's RedisCluster client
#                         (from PyPI with pip; Debian's python3-redis where pip may not install)
#
# redis-server, which only the benchmark needs, is installed by bench/redis-benchmark.sh
# (`scripts/setup.sh --bench`): on a machine with systemd, Debian starts it as a service on
# port 6379, where ferrokv listens by default.
set -euo pipefail

packages=(clang libclang-dev librocksdb-dev redis-tools tcl python3)
if [ "${1:-}" = "--bench" ]; then
    packages+=(redis-server)
fi

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! python3 -c 'import redis.cluster' 2>/dev/null; then
    echo "setup: installing redis-py"
    python3 -m pip install --quiet 'redis>=4.1' 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages 'redis>=4.1' 2>/dev/null ||
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends python3-redis
    python3 -c 'import redis.cluster'
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install the Rust toolchain from https://rustup.rs and run this again" >&2
    exit 1
fi
echo "setup: system packages present"
