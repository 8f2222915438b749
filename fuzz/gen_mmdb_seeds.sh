#!/bin/bash
# gen_mmdb_seeds.sh [DIR] - seeds for fuzz_gw_mmdb (default
# fuzz/corpus/gw_mmdb): the test databases of tests/data/make_test_mmdb.pl
# (country with an IPv6 tree, ASN, country IPv4-only), each whole and cut
# short before its metadata, named by their SHA-1 like the other corpora.
# They are fuzz inputs only: the tests that read mappings build their
# databases at test time.
set -euo pipefail
out=${1:-fuzz/corpus/gw_mmdb}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
perl "$here/tests/data/make_test_mmdb.pl" "$tmp" >/dev/null
for f in "$tmp"/*.mmdb; do
    cp "$f" "$out/$(sha1sum "$f" | cut -c1-40)"
    head -c $(( $(stat -c %s "$f") / 2 )) "$f" >"$tmp/cut"
    cp "$tmp/cut" "$out/$(sha1sum "$tmp/cut" | cut -c1-40)"
done
echo "$(ls "$out" | wc -l) seeds in $out"
