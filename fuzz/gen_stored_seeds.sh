#!/bin/bash
# gen_stored_seeds.sh BUILD_DIR [DIR] - seeds for fuzz_gw_stored (default
# fuzz/corpus/gw_stored): the stored bodies test_gw_stored builds and reads
# (the sample frames and generated ones through the gateway path, under
# the geo database modes, then the refused variants of a small one), plus
# the wire frames of fuzz/corpus/frame (refused: they have conns), named
# by their SHA-1 like the other corpora.
set -euo pipefail
build=${1:?usage: gen_stored_seeds.sh BUILD_DIR [DIR]}
here=$(cd "$(dirname "$0")/.." && pwd)
out=${2:-$here/fuzz/corpus/gw_stored}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && PANELGATE_TEST_DATA="$here/tests/data" PANELGATE_STORED_SEEDS="$tmp" \
    "$build/bin/test_gw_stored" >/dev/null)
for f in "$tmp"/seed-* $(ls "$here"/fuzz/corpus/frame/* | head -8); do
    cp "$f" "$out/$(sha1sum "$f" | cut -c1-40)"
done
echo "$(ls "$out" | wc -l) seeds in $out"
