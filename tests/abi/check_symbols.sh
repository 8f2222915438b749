#!/usr/bin/env bash
# check_symbols.sh LIB ALLOWLIST HEADER - the dynamic symbols libpanelagent
# exports (nm -D --defined-only, with their version) are exactly the sorted
# allowlist, and the allowlist holds exactly the PANELAGENT_API functions of
# the public header, each in the PANELAGENT_0 version node.
#
# A new public function: add it to panelagent.h and to the allowlist
# (name@@PANELAGENT_0, keep the list sorted with LC_ALL=C sort).
set -euo pipefail
lib=$1 allow=$2 hdr=$3
export LC_ALL=C
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

LC_ALL=C sort -uc "$allow" || fail "$allow is not sorted (LC_ALL=C sort -u)"
got=$(nm -D --defined-only "$lib" | awk '{ print $NF }' | sort)
[[ -n $got ]] || fail "nm -D found no symbols in $lib"
if ! diff -u "$allow" <(printf '%s\n' "$got"); then
    fail "symbols exported by $lib differ from $allow (-: allowlist only, +: library only)"
fi
echo "ok - $lib exports exactly the $(wc -l <"$allow") symbols of $(basename "$allow")"

# the header's functions: the identifier before '(' of each PANELAGENT_API
# declaration (preprocessor lines left out)
api=$(grep -v '^[[:space:]]*#' "$hdr" | tr '\n' ' ' | grep -oE 'PANELAGENT_API[^;(]*\(' |
    sed -E 's/^.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*\($/\1/' | sort)
[[ $(printf '%s\n' "$api" | wc -l) -ge 30 ]] || fail "found too few PANELAGENT_API functions in $hdr"
listed=$(grep -v '^PANELAGENT_0$' "$allow" | sed -E 's/@@PANELAGENT_0$//' | sort)
if ! diff -u <(printf '%s\n' "$api") <(printf '%s\n' "$listed"); then
    fail "PANELAGENT_API functions of $(basename "$hdr") (-) and the allowlist (+) differ"
fi
if grep -v '^PANELAGENT_0$' "$allow" | grep -vqE '^panelagent_[a-z0-9_]+@@PANELAGENT_0$'; then
    fail "allowlist entries must be panelagent_*@@PANELAGENT_0"
fi
grep -qx 'PANELAGENT_0' "$allow" || fail "the PANELAGENT_0 version node is missing"
echo "ok - the allowlist is the header's $(printf '%s\n' "$api" | wc -l) functions, all in PANELAGENT_0"
