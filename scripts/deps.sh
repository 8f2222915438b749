#!/usr/bin/env bash
# deps.sh - installs the Debian 12 packages panelgate needs to build and test.
#
# Installs exactly the missing ones from PACKAGES (one apt-get update, then
# one apt-get install); does nothing, and calls no apt-get, when all are
# present.  As a non-root user it prints the command to run and exits 1.
# PANELGATE_SKIP_DEPS=1 skips the check (e.g. on a non-Debian machine with
# the libraries installed by hand).
set -euo pipefail

# The one list.  Add new packages here.
PACKAGES=(
    # toolchain
    build-essential cmake pkg-config clang libclang-rt-14-dev
    # libraries
    libmsgpack-dev libcjson-dev libcmocka-dev libmbedtls-dev libnghttp2-dev
    libevent-dev libsqlite3-dev libinih-dev libmaxminddb-dev
    # the JetStream engine (cnats) and the NATS cluster its tests start
    libnats-dev nats-server
    # the Java (JNI) binding and the Wowza-style example
    default-jdk-headless
    # tools used by tests and the demo
    sqlite3 nghttp2-client curl python3-h2 openssl gnutls-bin
    # signs the operator-mode JWTs of test_gw_jetstream_tls.sh (tests/integration/natsjwt.py)
    python3-cryptography
    # steps the gateway's wall clock in test_gw_clock.sh (libfaketime)
    faketime
    # builds the small MaxMind-format test databases (tests/data/make_test_mmdb.pl)
    libmaxmind-db-writer-perl
    # gcore: test_gw_memscan.sh dumps the live gateway and searches the core
    gdb
)

if [[ "${PANELGATE_SKIP_DEPS:-0}" == 1 ]]; then
    exit 0
fi
if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: not a Debian system (no dpkg-query); make sure these (or their" \
         "equivalents) are installed: ${PACKAGES[*]}" >&2
    exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null || true)
    if [[ "$status" != *"ok installed"* ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    exit 0
fi

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [[ "$(id -u)" != 0 ]]; then
    {
        echo "deps: missing Debian packages: ${missing[*]}"
        echo "deps: install them as root with:"
        echo "    apt-get update && $cmd"
    } >&2
    exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"

still=()
for pkg in "${missing[@]}"; do
    status=$(dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null || true)
    [[ "$status" == *"ok installed"* ]] || still+=("$pkg")
done
if ((${#still[@]} > 0)); then
    echo "deps: still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi
echo "deps: done"
