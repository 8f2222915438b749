#!/usr/bin/env bash
# demo.sh - the main job, end to end, on loopback:
#   1. a dev PKI (certs/dev-pki.sh into $BUILD_DIR/dev-pki);
#   2. the gateway on its embedded SQLite default, with nimble-01 and
#      wowza-01 registered by panelgatectl (SPKI pins), picked up live;
#   3. the sample Nimble-style and Wowza-style frames (tests/data) encoded by
#      panelagent and sent over mTLS HTTP/2 with curl: 202 once committed;
#      a resend (same seq), a malformed frame and an agent with no
#      certificate show what the gateway does with each;
#   4. what was stored, a check that no viewer IP is in the database, and
#      the activity log;
#   5. SIGTERM: the gateway drains and exits 0.
# Run after a build (`make demo` does both).  Exits non-zero when a step
# fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"
build=${BUILD_DIR:-build}
agent=$build/bin/panelagent
gateway=$build/bin/panelgate
ctl=$build/bin/panelgatectl
pki=$build/dev-pki
demo=$build/demo
py=/usr/bin/python3

header() { printf '\n== %s ==\n' "$*"; }
fail() {
    echo "demo: FAILED: $*" >&2
    [[ -f $demo/gateway.log ]] && tail -n 5 "$demo/gateway.log" | sed 's/^/  log: /' >&2
    exit 1
}
spki() { openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1; }
wait_for() { # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do ((SECONDS < deadline)) || return 1; sleep 0.1; done
}

[[ -x $agent && -x $gateway && -x $ctl ]] || fail "run 'make' first"
rm -rf "$demo"
mkdir -p "$demo"

# --- 1. identities -------------------------------------------------------------
header "dev PKI ($pki)"
bash certs/dev-pki.sh "$pki" >/dev/null
for id in nimble-01 wowza-01; do
    printf '  %-10s spki-sha256 %s\n' "$id" "$(spki "$pki/$id.crt")"
done

# --- 2. the gateway ------------------------------------------------------------
header "gateway"
cat >"$demo/panelgate.conf" <<EOF
[server]
listen = 127.0.0.1:0
port_file = $demo/ports
[tls]
cert_file = $pki/gateway.crt
key_file = $pki/gateway.key
client_ca_file = $pki/ca.crt
[storage]
sqlite_path = $demo/panelgate.db
[registry]
poll_interval_ms = 200
[log]
activity_interval_ms = 500
EOF
"$gateway" --config "$demo/panelgate.conf" 2>"$demo/gateway.log" &
gw_pid=$!
trap 'kill "$gw_pid" 2>/dev/null || true' EXIT
wait_for 10 test -s "$demo/ports" || fail "the gateway did not start"
port=$(awk 'NR == 1 {print $2}' "$demo/ports")
echo "  panelgate pid $gw_pid listening on 127.0.0.1:$port, storage $demo/panelgate.db"

# Register both agents by the public keys of their certificates; the
# gateway notices the registry change on its next poll, no signal needed.
for id in nimble-01 wowza-01; do
    "$ctl" --db "$demo/panelgate.db" --actor demo register "$id" --kind "${id%-01}" \
        --cert "$pki/$id.crt" >/dev/null || fail "panelgatectl register $id"
done
wait_for 10 grep -q '"event":"registry_reloaded"' "$demo/gateway.log" ||
    fail "the gateway did not pick up the registrations"
echo "  \$ panelgatectl --db $demo/panelgate.db list"
"$ctl" --db "$demo/panelgate.db" list | sed 's/^/  /'

# --- 3. frames over mTLS HTTP/2 --------------------------------------------------
post() { # post ID FILE: prints "HTTP <status>: <body>"
    local code
    code=$(curl -sS --http2 --cacert "$pki/ca.crt" --cert "$pki/$1.crt" --key "$pki/$1.key" \
        -H 'content-type: application/msgpack' --data-binary "@$2" \
        -o "$demo/response" -w '%{http_code}' "https://localhost:$port/v1/stats")
    echo "  HTTP $code: $(cat "$demo/response")"
}
for id in nimble-01 wowza-01; do
    name=${id%-01}
    "$agent" encode <"tests/data/$name.json" >"$demo/$name.msgpack"
    header "$id sends tests/data/$name.json ($(stat -c %s "$demo/$name.msgpack") bytes msgpack)"
    out=$(post "$id" "$demo/$name.msgpack")
    echo "$out"
    [[ $out == *"HTTP 202"* ]] || fail "$id: expected 202"
done

header "nimble-01 resends the same frame (same seq)"
out=$(post nimble-01 "$demo/nimble.msgpack"); echo "$out"
[[ $out == *"HTTP 202"* ]] || fail "a resend must be acknowledged"

header "nimble-01 sends a truncated frame"
head -c 3000 "$demo/nimble.msgpack" >"$demo/truncated.msgpack"
out=$(post nimble-01 "$demo/truncated.msgpack"); echo "$out"
[[ $out == *"HTTP 400"* ]] || fail "a truncated frame must get 400"

header "an agent without a client certificate"
if curl -sS --http2 --cacert "$pki/ca.crt" "https://localhost:$port/v1/stats" 2>"$demo/nocert.err"; then
    fail "a connection without a client certificate was accepted"
fi
sed 's/^/  /' "$demo/nocert.err"
grep '"handshake_refused"' "$demo/gateway.log" | tail -n 1 | sed 's/^/  log: /'

# --- 4. what was stored ----------------------------------------------------------
header "stored in $demo/panelgate.db"
sqlite3 -header -column "$demo/panelgate.db" \
    "SELECT s.name AS server, f.seq, f.reported_name,
            strftime('%Y-%m-%d %H:%M:%S', f.ts_ms / 1000, 'unixepoch') AS frame_time,
            length(f.body) AS stored_bytes
     FROM frames f JOIN servers s ON s.id = f.server_id ORDER BY s.name"
rows=$(sqlite3 "$demo/panelgate.db" "SELECT count(*) FROM frames")
[[ $rows == 2 ]] || fail "expected 2 stored frames (the resend is stored once), got $rows"
"$py" - "$demo" tests/data/nimble.json tests/data/wowza.json <<'EOF' || fail "privacy check"
import glob, ipaddress, json, sys
demo, samples = sys.argv[1], sys.argv[2:]
ips = {c["ip"] for s in samples for c in json.load(open(s))["conns"]}
blob = b"".join(open(p, "rb").read() for p in glob.glob(demo + "/panelgate.db*"))
found = [ip for ip in ips if ip.encode() in blob or ipaddress.ip_address(ip).packed in blob]
print("  viewer IPs sent: %d; found in the database files (as text or binary): %d"
      % (len(ips), len(found)))
sys.exit(1 if found else 0)
EOF

refusal_logged() { "$ctl" --db "$demo/panelgate.db" activity --action handshake_refused | grep -q refused; }
wait_for 10 refusal_logged || fail "the refused handshake is not in the activity log"
echo "  \$ panelgatectl --db $demo/panelgate.db activity"
"$ctl" --db "$demo/panelgate.db" activity | sed 's/^/  /'

# --- 5. stop ----------------------------------------------------------------------
header "SIGTERM"
kill -TERM "$gw_pid"
rc=0
wait "$gw_pid" || rc=$?
trap - EXIT
tail -n 1 "$demo/gateway.log" | sed 's/^/  log: /'
[[ $rc == 0 ]] || fail "the gateway exited $rc"
echo "  the gateway drained and exited 0"

header "demo: all steps passed"
