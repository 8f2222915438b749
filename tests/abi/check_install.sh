#!/usr/bin/env bash
# check_install.sh SOURCE_DIR BUILD_DIR CC [EXTRA_CFLAGS] - the install
# step of `make install` into a scratch DESTDIR, then a tiny program built only from what
# `pkg-config --cflags --libs panelagent` says (PKG_CONFIG_PATH and
# PKG_CONFIG_SYSROOT_DIR pointed at the scratch tree) runs against the
# installed library and calls panelagent_version.  Also checks the SONAME
# links, the headers and the installed CLI.
set -euo pipefail
src=$1 build=$2 cc=$3 extra=${4:-}
export LC_ALL=C
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "ok - $*"; }

dest=$work/root
prefix=/usr/local
# The install step of `make install` (cmake --install), on the tree under
# test as it is: a test must not rebuild what it tests.
if ! DESTDIR="$dest" cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1; then
    cat "$work/install.log"
    fail "cmake --install (make install) DESTDIR=$dest"
fi
ok "cmake --install (what make install runs) DESTDIR=... PREFIX=$prefix"

root=$dest$prefix
[[ -f $root/lib/pkgconfig/panelagent.pc ]] || fail "no lib/pkgconfig/panelagent.pc"
[[ -f $root/lib/libpanelagent.so.0.1.0 ]] || fail "no lib/libpanelagent.so.0.1.0"
[[ $(readlink "$root/lib/libpanelagent.so.0") == libpanelagent.so.0.1.0 ]] ||
    fail "libpanelagent.so.0 is not a link to libpanelagent.so.0.1.0"
[[ $(readlink "$root/lib/libpanelagent.so") == libpanelagent.so.0 ]] ||
    fail "libpanelagent.so is not a link to libpanelagent.so.0"
ok "lib/libpanelagent.so -> .so.0 -> .so.0.1.0"
cmp -s "$root/include/panelagent.h" "$src/agent-sdk/include/panelagent.h" ||
    fail "include/panelagent.h is not the public header"
if [[ -f $src/agent-sdk/include/panelagent.hpp ]]; then
    cmp -s "$root/include/panelagent.hpp" "$src/agent-sdk/include/panelagent.hpp" ||
        fail "include/panelagent.hpp is not installed"
fi
ok "headers installed"
grep -qx "prefix=$prefix" "$root/lib/pkgconfig/panelagent.pc" || fail "panelagent.pc: prefix is not $prefix"

export PKG_CONFIG_PATH=$root/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
pc=${PKG_CONFIG:-pkg-config}
[[ $("$pc" --modversion panelagent) == 0.1.0 ]] || fail "pkg-config --modversion panelagent"
read -r -a flags <<<"$("$pc" --cflags --libs panelagent)"
printf '%s\n' "${flags[@]}" | grep -qx -- "-I$root/include" || fail "cflags: ${flags[*]}"
printf '%s\n' "${flags[@]}" | grep -qx -- "-L$root/lib" || fail "libs: ${flags[*]}"
printf '%s\n' "${flags[@]}" | grep -qx -- "-lpanelagent" || fail "libs: ${flags[*]}"
"$pc" --static --libs panelagent | grep -q -- '-lmbedtls .*-lnghttp2' || fail "--static --libs lacks mbedTLS/nghttp2"
[[ ${#flags[@]} -eq 3 ]] || fail "pkg-config --cflags --libs gives more than -I, -L, -l: ${flags[*]}"
ok "pkg-config --cflags --libs panelagent: ${flags[*]}"

read -r -a xflags <<<"$extra"
"$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror "${xflags[@]}" \
    "$(dirname "$0")/version_probe.c" "${flags[@]}" -Wl,-rpath,"$root/lib" -o "$work/probe" ||
    fail "building version_probe.c with the pkg-config flags"
out=$("$work/probe") || fail "version_probe exited $?"
[[ $out == "0.1.0 protocol=1 "* ]] || fail "version_probe printed '$out'"
ldd "$work/probe" | grep -q "libpanelagent.so.0 => $root/lib/libpanelagent.so.0" ||
    fail "the probe did not load the installed library: $(ldd "$work/probe" | grep panelagent)"
ok "a program built with pkg-config runs against the installed library: $out"

"$root/bin/panelagent" --version >/dev/null || fail "installed bin/panelagent --version"
used=$(ldd "$root/bin/panelagent" | awk '$1 == "libpanelagent.so.0" { print $3 }')
[[ -n $used && $(realpath "$used") == $(realpath "$root/lib/libpanelagent.so.0") ]] ||
    fail "installed CLI does not use the installed library: $(ldd "$root/bin/panelagent" | grep panelagent)"
ok "installed bin/panelagent runs on the installed library"
