#!/usr/bin/env bash
# test_gw_basic.sh - the happy path with real clients: a valid frame over
# mTLS HTTP/2 (curl, nghttp, python-h2) gets 202 with the acked seq and
# lands once in SQLite under the connection's registered server; duplicates
# are acknowledged and stored once; the name a frame reports never decides
# where it is stored.
. "$(dirname "$0")/lib.sh"

make_pki
gw_config
gw_start
register_defaults
NIMBLE_ID=$(server_id nimble-01)
WOWZA_ID=$(server_id wowza-01)
note "registered nimble-01 as id $NIMBLE_ID, wowza-01 as id $WOWZA_ID"

encode nimble
encode wowza

# edit_frame IN.json OUT.msgpack PY-EXPR...: edits the JSON form (variable d)
# with python statements, then encodes it with panelagent.
edit_frame() {
    local in=$1 out=$2
    shift 2
    "$PY" - "$PANELGATE_TEST_DATA/$in" "$@" <<'EOF' | "$PANELAGENT" encode >"$out" || fatal "edit_frame $in"
import json, sys
d = json.load(open(sys.argv[1]))
for stmt in sys.argv[2:]:
    exec(stmt)
json.dump(d, sys.stdout)
EOF
}

rows() { sql "SELECT count(*) FROM frames WHERE $1"; }

# ---- curl ---------------------------------------------------------------------------
curl_post nimble-01 "$T/nimble.msgpack"
check_eq "curl: nimble frame -> exit 0" "$CURL_RC" 0
check_eq "curl: nimble frame -> 202" "$CURL_CODE" 202
check_eq "curl: body is {\"seq\":48213}" "$(cat "$T/curl.body")" '{"seq":48213}'
check_eq "curl: panelgate-ack-seq header" "$(header_value panelgate-ack-seq "$T/curl.hdr")" 48213
check_eq "curl: content-type application/json" "$(header_value content-type "$T/curl.hdr")" application/json
check_eq "one row for (nimble-01, 48213)" "$(rows "server_id = $NIMBLE_ID AND seq = 48213")" 1
check_eq "stored row: ts_ms and reported_name from the frame" \
    "$(sql "SELECT ts_ms || '|' || reported_name FROM frames WHERE server_id = $NIMBLE_ID AND seq = 48213")" \
    "1754990000000|edge-fra-03.example.net"
check "stored row: received_ms is now (within 10 min)" \
    test "$(sql "SELECT abs(received_ms - unixepoch() * 1000) < 600000 FROM frames WHERE seq = 48213")" = 1
check_eq "no row under any other server id" "$(rows "server_id <> $NIMBLE_ID")" 0
first_received=$(sql "SELECT received_ms FROM frames WHERE server_id = $NIMBLE_ID AND seq = 48213")

# ---- duplicate ---------------------------------------------------------------------
curl_post nimble-01 "$T/nimble.msgpack"
check_eq "curl: duplicate seq -> 202" "$CURL_CODE" 202
check_eq "curl: duplicate answered with the same body" "$(cat "$T/curl.body")" '{"seq":48213}'
check_eq "duplicate: still one row" "$(rows "seq = 48213")" 1
check_eq "duplicate: the first copy is kept" \
    "$(sql "SELECT received_ms FROM frames WHERE server_id = $NIMBLE_ID AND seq = 48213")" "$first_received"

# ---- nghttp --------------------------------------------------------------------------
edit_frame nimble.json "$T/nimble2.msgpack" 'd["seq"] = 48214'
ng_rc=0
timeout "$PG_TIMEOUT" nghttp -v --cert "$PKI/nimble-01.crt" --key "$PKI/nimble-01.key" \
    -H 'content-type: application/msgpack' -d "$T/nimble2.msgpack" \
    "https://127.0.0.1:$GW_PORT/v1/stats" >"$T/nghttp.out" 2>&1 || ng_rc=$?
check_eq "nghttp: exit 0" "$ng_rc" 0
check "nghttp: :status 202" grep -q 'recv (stream_id=[0-9]*) :status: 202' "$T/nghttp.out"
check "nghttp: panelgate-ack-seq 48214" grep -q 'recv (stream_id=[0-9]*) panelgate-ack-seq: 48214' "$T/nghttp.out"
check "nghttp: body {\"seq\":48214}" grep -q '{"seq":48214}' "$T/nghttp.out"
check_eq "nghttp: one row for (nimble-01, 48214)" "$(rows "server_id = $NIMBLE_ID AND seq = 48214")" 1

# ---- wowza over IPv6 --------------------------------------------------------------------
CURL_RC=0
CURL_CODE=$(curl -sS --http2 --max-time "$PG_TIMEOUT" --cacert "$PKI/ca.crt" \
    --cert "$PKI/wowza-01.crt" --key "$PKI/wowza-01.key" -H 'content-type: application/msgpack' \
    --data-binary @"$T/wowza.msgpack" -D "$T/curl.hdr" -o "$T/curl.body" -w '%{http_code}' \
    "https://[::1]:$GW_PORT6/v1/stats" 2>"$T/curl.err") || CURL_RC=$?
check_eq "curl over [::1]: wowza frame -> 202 (exit $CURL_RC)" "$CURL_CODE" 202
check_eq "curl over [::1]: ack seq 917" "$(header_value panelgate-ack-seq "$T/curl.hdr")" 917
check_eq "wowza frame stored under wowza-01" "$(rows "server_id = $WOWZA_ID AND seq = 917")" 1
check_eq "wowza frame: reported_name" \
    "$(sql "SELECT reported_name FROM frames WHERE server_id = $WOWZA_ID AND seq = 917")" wse-ams-01.example.org

# ---- a frame naming another server ----------------------------------------------------
# wowza-01's connection sends a frame that calls itself nimble-01 (the other
# server's registered name), kind nimble, with a seq nimble-01 already used.
edit_frame wowza.json "$T/impostor.msgpack" 'd["seq"] = 48213' \
    'd["server"]["name"] = "nimble-01"' 'd["server"]["kind"] = "nimble"'
curl_post wowza-01 "$T/impostor.msgpack"
check_eq "frame naming nimble-01 sent by wowza-01 -> 202" "$CURL_CODE" 202
check_eq "... stored under wowza-01 (the connection's server)" \
    "$(rows "server_id = $WOWZA_ID AND seq = 48213 AND reported_name = 'nimble-01'")" 1
check_eq "... nimble-01's frame 48213 untouched" \
    "$(sql "SELECT reported_name || '|' || received_ms FROM frames WHERE server_id = $NIMBLE_ID AND seq = 48213")" \
    "edge-fra-03.example.net|$first_received"
check_eq "... nimble-01 still has exactly 2 frames" "$(rows "server_id = $NIMBLE_ID")" 2
check_eq "... no row under an unregistered server id" \
    "$(rows "server_id NOT IN (SELECT id FROM servers)")" 0

# ---- python-h2: several requests on one connection ---------------------------------------
py_checks - <<EOF
import h2client as hc
ok = hc.Checks()
c = hc.connect("nimble-01")
ok(c.alpn == "h2", "python: ALPN h2 negotiated", c.alpn)
# five frames in flight at once on one connection, then one more
sids = [c.start(hc.pack(hc.minimal_frame(seq, conns=[("198.18.0.%d" % seq, 1, 2)])))
        for seq in range(1, 6)]
rs = [c.response(s) for s in sids]
ok(all(r.status == 202 for r in rs), "python: 5 concurrent requests on one connection -> 202",
   [r.status for r in rs])
ok([r.headers.get("panelgate-ack-seq") for r in rs] == [str(s) for s in range(1, 6)],
   "python: each answer acks its own seq", [r.headers.get("panelgate-ack-seq") for r in rs])
ok([r.json() for r in rs] == [{"seq": s} for s in range(1, 6)], "python: JSON bodies {\"seq\":N}")
big = 2**64 - 1
r = c.post(hc.pack(hc.minimal_frame(big)))
ok(r.status == 202 and r.headers.get("panelgate-ack-seq") == str(big),
   "python: seq 2^64-1 -> 202, exact ack header", r)
ok(r.body == b'{"seq":%d}' % big, "python: seq 2^64-1 body exact", r.body)
ok(not c.closed and c.ping(), "python: connection still open after 6 requests")
c.close()
EOF
check_eq "python frames 1..5 stored under nimble-01" "$(rows "server_id = $NIMBLE_ID AND seq BETWEEN 1 AND 5")" 5
check_eq "seq 2^64-1 stored as int64 -1 (same bits)" "$(rows "server_id = $NIMBLE_ID AND seq = -1")" 1
check_eq "integrity_check" "$(sql 'PRAGMA integrity_check')" ok

finish
