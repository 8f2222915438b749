#!/usr/bin/env bash
# demo.sh - a tour of what exists so far (interim, until the gateway lands):
#   1. the dev PKI (certs/dev-pki.sh into $BUILD_DIR/dev-pki) and the
#      identities a gateway registry would pin (SPKI SHA-256);
#   2. tests/data/{nimble,wowza}.json encoded to wire frames by panelagent,
#      decoded back, re-encoded byte for byte, summarised as a gateway would
#      see them;
#   3. one rejection: a truncated frame, exit 2 with the field path.
# Run from anywhere after a build (`make demo` does both).  Exits non-zero
# when any step fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"
build=${BUILD_DIR:-build}
agent=$build/bin/panelagent
pki=$build/dev-pki
demo=$build/demo

if [[ -x /usr/bin/python3 ]]; then
    py=/usr/bin/python3
else
    py=$(command -v python3 || true)
fi

header() { printf '\n== %s ==\n' "$*"; }
fail() { echo "demo: FAILED: $*" >&2; exit 1; }

[[ -x $agent ]] || fail "$agent not found: run 'make' first"
mkdir -p "$demo"

# --- 1. identities -------------------------------------------------------------
header "dev PKI ($pki)"
bash certs/dev-pki.sh "$pki"
for id in ca gateway nimble-01 wowza-01; do
    crt=$pki/$id.crt
    subject=$(openssl x509 -in "$crt" -noout -subject -nameopt RFC2253)
    spki=$(openssl x509 -in "$crt" -noout -pubkey |
           openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
    printf '  %-10s %-28s spki-sha256 %s\n' "$id" "$subject" "$spki"
done
echo "  (a gateway registry pins each agent by its spki-sha256)"

# --- 2. frames -----------------------------------------------------------------
# pretty: indented JSON on stdin -> stdout, at most 80 lines.
pretty() {
    "$py" -c '
import json, sys
lines = json.dumps(json.load(sys.stdin), indent=2).splitlines()
for l in lines[:80]:
    print("    " + l)
if len(lines) > 80:
    print("    ... (%d more lines)" % (len(lines) - 80))
'
}

summarize() {
    "$py" -c '
import json, sys
f = json.load(sys.stdin)
s = f["server"]
vh = f.get("vhosts", [])
streams = sum(len(i.get("streams", [])) for v in vh for a in v.get("apps", [])
              for i in a.get("instances", []))
conns = len(f.get("conns", []))
print("  gateway receives: server %r, kind %s, seq %s: %d vhost(s), %d stream(s), "
      "%d viewer connection(s)" % (s["name"], s["kind"], f["seq"], len(vh), streams, conns))
print("  (viewer IPs are reduced to per-country/ASN aggregates inside the gateway,"
      " never stored)")
'
}

for name in nimble wowza; do
    src=tests/data/$name.json
    wire=$demo/$name.msgpack
    back=$demo/$name.decoded.json
    header "$name: $src"
    [[ -f $src ]] || fail "$src is missing"

    "$agent" encode <"$src" >"$wire" || fail "panelagent encode < $src"
    echo "  encoded: $wire, $(stat -c %s "$wire") bytes (JSON: $(stat -c %s "$src") bytes)"

    "$agent" decode <"$wire" >"$back" || fail "panelagent decode < $wire"
    echo "  decoded:"
    if [[ -n $py ]]; then
        pretty <"$back" || fail "decode output is not JSON"
    else
        head -c 4000 "$back"; echo
    fi

    "$agent" encode <"$back" >"$demo/$name.re.msgpack" || fail "re-encoding $back"
    cmp -s "$wire" "$demo/$name.re.msgpack" ||
        fail "decode -> encode of $wire did not give the same bytes"
    echo "  round trip: decode -> encode gives the same $(stat -c %s "$wire") bytes"

    if [[ -n $py ]]; then
        summarize <"$back" || fail "summarising $back"
    fi
done

# --- 3. a rejection --------------------------------------------------------------
header "rejection: a truncated frame"
wire=$demo/nimble.msgpack
cut=$(($(stat -c %s "$wire") / 2))
head -c "$cut" "$wire" >"$demo/truncated.msgpack"
echo "  \$ head -c $cut $wire | panelagent decode"
set +e
"$agent" decode <"$demo/truncated.msgpack" >/dev/null 2>"$demo/truncated.err"
rc=$?
set -e
sed 's/^/  stderr: /' "$demo/truncated.err"
echo "  exit status: $rc"
[[ $rc -eq 2 ]] || fail "a truncated frame should exit 2, got $rc"
[[ -s $demo/truncated.err ]] || fail "a truncated frame should explain itself on stderr"

header "demo: all steps passed"
