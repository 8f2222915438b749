#!/usr/bin/env bash
# selftest.sh GRAPH SRC - check_layers.py fails on a graph that breaks each
# rule: a link up the layers (gw_base -> gw_net, a cycle), the SDK's private
# directory on a gateway target's include path, the gateway linking the SDK.
set -euo pipefail
graph=$1 src=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

python3 "$here/check_layers.py" "$graph" "$src" >"$tmp/good.out" ||
    { echo "FAIL: the real graph does not pass"; cat "$tmp/good.out"; exit 1; }

# mutate: column 7 (links) of gw_base gets gw_net; column 6 (interface
# include dirs) of gw_store gets agent-sdk/src; gw_net links pa_agent_static
awk -F'\t' -v OFS='\t' -v sdk="$src/agent-sdk/src" '
    $2 == "gw_base"  { $7 = $7 ";gw_net" }
    $2 == "gw_store" { $6 = $6 ";" sdk }
    $2 == "gw_net"   { $7 = $7 ";pa_agent_static" }
    { print }' "$graph" >"$tmp/bad.tsv"
if python3 "$here/check_layers.py" "$tmp/bad.tsv" "$src" >"$tmp/bad.out"; then
    echo "FAIL: a graph with a link up the layers passes"; fail=1
fi
for want in "gw_base (layer 2) links gw_net (layer 6)" \
            "gw_base is in its own link closure" \
            "gw_store has the SDK's private agent-sdk/src on its include path" \
            "gw_net (gateway) links pa_agent_static (sdk)"; do
    if grep -qF "$want" "$tmp/bad.out"; then
        echo "ok: reported: $want"
    else
        echo "FAIL: not reported: $want"; fail=1
    fi
done
[ "$fail" = 0 ] || { cat "$tmp/bad.out"; exit 1; }
