#!/usr/bin/env bash
# demo.sh - the main job, end to end, on loopback:
#   1. a dev PKI (certs/dev-pki.sh into $BUILD_DIR/dev-pki);
#   2. the gateway on its embedded SQLite default, with nimble-01 and
#      wowza-01 registered by panelgatectl (SPKI pins), picked up live;
#   3. the two sample agents built on libpanelagent - nimble-agent (C++)
#      and wowza-agent (Java, when a JDK is installed) - each report three
#      frames over mTLS HTTP/2 and print the gateway's acknowledgements;
#   4. with curl, what the gateway does with a resend (same seq), a
#      malformed frame and a client with no certificate;
#   5. what was stored (frames, server and stream samples, geo buckets), a
#      check that no viewer IP is in the database, and the activity log;
#   6. SIGTERM: the gateway drains and exits 0.
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

nimble=$build/bin/nimble-agent
wowza=$build/bin/wowza-agent
[[ -x $agent && -x $gateway && -x $ctl && -x $nimble ]] || fail "run 'make' first"
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
# Small MaxMind-format country and ASN databases covering the documentation
# ranges the sample viewers come from (the test databases; no download).
geo_conf=""
if perl tests/data/make_test_mmdb.pl "$demo" >"$demo/mmdb.log" 2>&1; then
    geo_conf=$'[geo]\ncountry_db = '"$demo/test-country.mmdb"$'\nasn_db = '"$demo/test-asn.mmdb"
    echo "  geo databases: $demo/test-country.mmdb, $demo/test-asn.mmdb (test data)"
else
    echo "  no geo databases (libmaxmind-db-writer-perl missing): viewers counted only"
fi
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
[admin]
listen = 127.0.0.1:0
$geo_conf
EOF
"$gateway" --config "$demo/panelgate.conf" 2>"$demo/gateway.log" &
gw_pid=$!
trap 'kill "$gw_pid" 2>/dev/null || true' EXIT
wait_for 10 test -s "$demo/ports" || fail "the gateway did not start"
port=$(awk 'NR == 1 {print $2}' "$demo/ports")
wait_for 10 grep -q '"event":"admin_listening"' "$demo/gateway.log" || fail "no admin listener"
admin=$(grep '"event":"admin_listening"' "$demo/gateway.log" | tail -n 1 | sed -E 's/.*:([0-9]+) \(GET.*/\1/')
echo "  panelgate pid $gw_pid listening on 127.0.0.1:$port, storage $demo/panelgate.db,"
echo "  admin (metrics, health) on http://127.0.0.1:$admin/"

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

# --- 3. the sample agents ---------------------------------------------------------
# Their viewers connect from the addresses in the sample frames (tests/data),
# so step 5 can look for every one of them in the database files.  The
# agents' own addresses (server.ips: 192.0.2.10 and .20) are not viewer
# data and are stored, so they are left out of the viewers.
"$py" - tests/data/nimble.json tests/data/wowza.json >"$demo/viewer-ips" <<'EOF'
import json, sys
ips = {c["ip"] for p in sys.argv[1:] for c in json.load(open(p))["conns"]}
print("\n".join(sorted(ips - {"192.0.2.10", "192.0.2.20"})))
EOF
run_agent() { # run_agent ID PROGRAM
    local id=$1 prog=$2
    header "$id: $(basename "$prog") reports 3 frames, one a second (libpanelagent)"
    "$prog" --gateway "localhost:$port" --ca "$pki/ca.crt" --cert "$pki/$id.crt" \
        --key "$pki/$id.key" --server-name "$id.example.net" --seq-file "$demo/$id.seq" \
        --viewer-ips "$demo/viewer-ips" --viewers 60 --count 3 --interval 1 \
        >"$demo/$id.out" 2>&1 || { sed 's/^/  /' "$demo/$id.out"; fail "$id did not deliver every frame"; }
    sed 's/^/  /' "$demo/$id.out"
}
run_agent nimble-01 "$nimble"
if [[ -x $wowza ]]; then
    run_agent wowza-01 "$wowza"
    agent_frames=6
else
    header "wowza-01: skipped (no JDK: install default-jdk-headless)"
    agent_frames=3
fi

# --- 4. what the gateway does with bad input (curl) -------------------------------
post() { # post ID FILE: prints "HTTP <status>: <body>"
    local code
    code=$(curl -sS --http2 --cacert "$pki/ca.crt" --cert "$pki/$1.crt" --key "$pki/$1.key" \
        -H 'content-type: application/msgpack' --data-binary "@$2" \
        -o "$demo/response" -w '%{http_code}' "https://localhost:$port/v1/stats")
    echo "  HTTP $code: $(cat "$demo/response")"
}
"$agent" encode <tests/data/nimble.json >"$demo/nimble.msgpack"
header "nimble-01 posts tests/data/nimble.json with curl ($(stat -c %s "$demo/nimble.msgpack") bytes msgpack)"
out=$(post nimble-01 "$demo/nimble.msgpack"); echo "$out"
[[ $out == *"HTTP 202"* ]] || fail "expected 202"

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

# --- 5. what was stored ----------------------------------------------------------
header "stored in $demo/panelgate.db"
sqlite3 -header -column "$demo/panelgate.db" \
    "SELECT s.name AS server, f.seq, f.reported_name,
            strftime('%Y-%m-%d %H:%M:%S', f.ts_ms / 1000, 'unixepoch') AS frame_time,
            length(f.body) AS stored_bytes
     FROM frames f JOIN servers s ON s.id = f.server_id ORDER BY s.name"
header "what the panel queries (docs/STORAGE.md)"
echo "  server_samples: load and traffic per frame"
sqlite3 -header -column "$demo/panelgate.db" \
    "SELECT v.name AS server, count(*) AS frames, round(avg(s.cpu_pct), 1) AS avg_cpu,
            max(s.ram_used) / 1048576 AS max_ram_mib, sum(s.bytes_out) AS bytes_out,
            sum(s.conns) AS viewer_conns
     FROM servers v JOIN server_samples s ON s.server_id = v.id
     GROUP BY v.name ORDER BY v.name" | sed 's/^/  /'
echo "  stream_samples: viewers per stream in each server's latest frame"
sqlite3 -header -column "$demo/panelgate.db" \
    "SELECT v.name AS server, p.vhost, p.app, p.instance, p.stream, x.viewers,
            x.bitrate / 1000 AS kbps
     FROM servers v
     JOIN stream_samples x ON x.server_id = v.id
       AND x.seq = (SELECT max(seq) FROM stream_samples WHERE server_id = v.id)
     JOIN stream_paths p ON p.id = x.stream_id
     ORDER BY v.name, x.viewers DESC LIMIT 12" | sed 's/^/  /'
echo "  geo_samples: viewer connections per country and ASN (no address is kept)"
sqlite3 -header -column "$demo/panelgate.db" \
    "SELECT cc AS country, asn, sum(conns) AS conns, sum(bytes_out) AS bytes_out
     FROM geo_samples GROUP BY cc, asn ORDER BY conns DESC" | sed 's/^/  /'
geo_rows=$(sqlite3 "$demo/panelgate.db" "SELECT count(*) FROM geo_samples")
[[ $geo_rows -gt 0 ]] || fail "no geo aggregates stored"
rows=$(sqlite3 "$demo/panelgate.db" "SELECT count(*) FROM frames")
want=$((agent_frames + 1))
[[ $rows == "$want" ]] || fail "expected $want stored frames (the resend is stored once), got $rows"
"$py" - "$demo" <<'EOF' || fail "privacy check"
import glob, ipaddress, sys
demo = sys.argv[1]
ips = set(open(demo + "/viewer-ips").read().split())
blob = b"".join(open(p, "rb").read() for p in glob.glob(demo + "/panelgate.db*"))
found = [ip for ip in ips if ip.encode() in blob or ipaddress.ip_address(ip).packed in blob]
print("  viewer IPs sent: %d; found in the database files (as text or binary): %d"
      % (len(ips), len(found)))
sys.exit(1 if found else 0)
EOF

header "metrics (curl http://127.0.0.1:$admin/metrics, a few of them)"
curl -sS "http://127.0.0.1:$admin/metrics" >"$demo/metrics" || fail "GET /metrics"
grep -E '^panelgate_(frames_(accepted|duplicate|rejected)_total|sink_frames_stored_total|sink_failing) |^panelgate_handshakes_refused_total\{' \
    "$demo/metrics" | sed 's/^/  /'
echo "  GET /healthz: $(curl -sS "http://127.0.0.1:$admin/healthz")"

refusal_logged() { "$ctl" --db "$demo/panelgate.db" activity --action handshake_refused | grep -q refused; }
wait_for 10 refusal_logged || fail "the refused handshake is not in the activity log"
echo "  \$ panelgatectl --db $demo/panelgate.db activity"
"$ctl" --db "$demo/panelgate.db" activity | sed 's/^/  /'

# --- 6. stop ----------------------------------------------------------------------
header "SIGTERM"
kill -TERM "$gw_pid"
rc=0
wait "$gw_pid" || rc=$?
trap - EXIT
tail -n 1 "$demo/gateway.log" | sed 's/^/  log: /'
[[ $rc == 0 ]] || fail "the gateway exited $rc"
echo "  the gateway drained and exited 0"

header "demo: all steps passed"
