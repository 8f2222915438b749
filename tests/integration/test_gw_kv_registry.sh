#!/usr/bin/env bash
# test_gw_kv_registry.sh - the JetStream engine's registry is the cluster's
# key-value bucket, and every gateway watches it (issue 12): gateways A and
# B on one 3-node cluster, agents on both.
#  1. A gateway started before anything was registered (no bucket) fails
#     with a clear error and never listens.
#  2. A revocation written to the bucket cuts nimble-01's live connections
#     on BOTH gateways (GOAWAY) within 1 s (the figure is printed; a broken
#     watcher, or one that waits for a poll or a SIGHUP, misses it), and
#     its next handshake is refused on both.
#  3. After a SIGHUP on A (the watcher stays), a new registration
#     (spare-01) is admitted on both within 1 s.
#  4. A value that breaks the layout is logged by key, never by value, and
#     the key keeps its previous record: the registry is not emptied and
#     wowza-01 is still admitted; the watcher still sees later changes.
#  5. A's only configured NATS node is killed (-9): A reconnects to
#     another node, reads the bucket again, and a revocation made while
#     the node is down reaches both gateways; the node comes back.
#  Their "disconnected" rows are in the activity stream, naming the server
#  as the SQLite log does; no SQLite file.
#  6. Both gateways stop cleanly (exit 0, no sanitizer report); their
#     handshake_refused rows (flushed at the stop) name the server too.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nats.sh"

[[ -x $KV_JSTOOL ]] || fatal "jstool built ($KV_JSTOOL)"
KV_BUCKET=pgkv_registry

make_pki
nats_cluster_start 3
# js_lines SERVERS: the [storage] and [jetstream] lines of a gateway
js_lines() {
    gw_config "[storage]" "storage_engine = jetstream" "retry_after_s = 1" "[jetstream]" \
        "servers = $1" "stream = PGKV" "subject_prefix = pgkv.frames" "replicas = 3" \
        "registry_bucket = $KV_BUCKET" "activity_stream = PGKV_ACTIVITY" \
        "activity_subject_prefix = pgkv.activity" "publish_timeout_ms = 3000" \
        "connect_timeout_ms = 3000"
}

# ---- 1. no bucket ------------------------------------------------------------------
GW_CONF=$T/a.conf GW_LOG=$T/a.log
js_lines "$NATS_URL"
rc=0
timeout 60 "$PG_BIN" --config "$GW_CONF" >/dev/null 2>>"$GW_LOG" || rc=$?
check "no bucket: the gateway does not start (exit $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
check "... and says why: no registry bucket $KV_BUCKET, register first" \
    grep -q "\"event\":\"start_failed\".*no registry bucket $KV_BUCKET.*register" "$GW_LOG"
check "... before it listened" test "$(log_count '"event":"started"')" -eq 0
# panelgatectl's configuration: every node (A's knows node 1 only)
GW_CONF=$T/ctl.conf js_lines "$NATS_URLS"
KV_CONF=$T/ctl.conf

# ---- start A and B ---------------------------------------------------------------
kv_register nimble-01 nimble "$PKI/nimble-01.crt"
kv_register wowza-01 wowza "$PKI/wowza-01.crt"
WOWZA_ID=$KV_ID
# A knows node 1 only (it learns the others from the cluster): step 5 kills it
gw_start
check "A: watching the bucket, 2 pins" wait_log "\"event\":\"registry_watching\".*$KV_BUCKET: 2 pins" 1 10
A_PID=$GW_PID A_PORT=$GW_PORT A_LOG=$GW_LOG
BG_PIDS+=("$A_PID")
GW_CONF=$T/b.conf GW_LOG=$T/b.log
js_lines "$NATS_URLS"
sed -i "s|^sqlite_path = .*|sqlite_path = $T/b.db|" "$T/b.conf"
gw_start
check "B: watching the bucket, 2 pins" wait_log "\"event\":\"registry_watching\".*$KV_BUCKET: 2 pins" 1 10
B_PID=$GW_PID B_PORT=$GW_PORT B_LOG=$GW_LOG
BG_PIDS+=("$B_PID")
export A_PORT B_PORT PG_STATE=$T/state
mkdir -p "$PG_STATE"

# kv.py agent GW PORT CERT: connects, gets one 202, writes GW.CERT.ready,
#   then posts a frame every 20 ms until GOAWAY or close (20 s at most) and
#   writes the time it saw it (time.time()) to GW.CERT.cut
# kv.py try PORT CERT: one handshake and one POST: prints "202", the
#   status, or "refused: <error>"
# kv.py admitted SECONDS CERT: polls both gateways with fresh handshakes
#   until each answered 202 or SECONDS passed; prints "A=<ms> B=<ms>" (the
#   time from the start of the poll to the first 202 of each, -1 = never)
# kv.py refused SECONDS CERT: the same until both refuse the handshake
cat >"$T/kv.py" <<'EOF'
import os, sys, time
import h2client as hc

ST = os.environ["PG_STATE"]
PORTS = {"A": int(os.environ["A_PORT"]), "B": int(os.environ["B_PORT"])}


def kind(cert):
    return "wowza" if cert.startswith("wowza") else "nimble"


def one(port, cert, seq=1):
    try:
        c = hc.Conn(port=port, cert=cert, timeout=5)
    except Exception as e:
        return "refused: %s" % e
    try:
        r = c.post(hc.pack(hc.minimal_frame(seq, name=cert, kind=kind(cert))), timeout=5)
        return str(r.status)
    except Exception as e:
        return "refused: %s" % e
    finally:
        try:
            c.close()
        except Exception:
            pass


def agent(gw, port, cert):
    c = hc.Conn(port=port, cert=cert, timeout=5)
    r = c.post(hc.pack(hc.minimal_frame(1, name=cert, kind=kind(cert))), timeout=5)
    if r.status != 202:
        print("first POST: %s" % r.status)
        return 1
    open("%s/%s.%s.ready" % (ST, gw, cert), "w").close()
    seq, end = 1, time.time() + 20
    while time.time() < end and c.goaway is None and not c.closed:
        seq += 1
        try:
            c.post(hc.pack(hc.minimal_frame(seq, name=cert, kind=kind(cert))), timeout=5)
        except Exception:
            pass
        if c.goaway is not None or c.closed:
            break
        c.pump(0.02)
    if c.goaway is None and not c.closed:
        return 1
    with open("%s/%s.%s.cut" % (ST, gw, cert), "w") as f:
        f.write("%.6f %s\n" % (time.time(), c.goaway.additional_data.decode() if c.goaway else "closed"))
    return 0


def poll(seconds, cert, want):
    t0, got = time.time(), {}
    while len(got) < 2 and time.time() - t0 < seconds:
        for gw, port in PORTS.items():
            if gw not in got and (one(port, cert) == "202") == want:
                got[gw] = (time.time() - t0) * 1000
        time.sleep(0.01)
    print(" ".join("%s=%.0f" % (g, got.get(g, -1)) for g in sorted(PORTS)))


cmd = sys.argv[1]
if cmd == "agent":
    sys.exit(agent(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
elif cmd == "try":
    print(one(int(sys.argv[2]), sys.argv[3]))
elif cmd == "admitted":
    poll(float(sys.argv[2]), sys.argv[3], True)
elif cmd == "refused":
    poll(float(sys.argv[2]), sys.argv[3], False)
EOF
kvpy() { "$PY" "$T/kv.py" "$@"; }
ms_of() { # "A=12 B=30" NAME -> the number
    sed -E "s/.*$2=(-?[0-9]+).*/\1/" <<<"$1"
}
both_within() { # "A=.. B=.." LIMIT_MS: both >= 0 and < LIMIT
    local a b
    a=$(ms_of "$1" A) b=$(ms_of "$1" B)
    ((a >= 0 && a < $2 && b >= 0 && b < $2))
}

check_eq "A admits nimble-01" "$(kvpy try "$A_PORT" nimble-01)" 202
check_eq "B admits nimble-01" "$(kvpy try "$B_PORT" nimble-01)" 202
check_eq "spare-01 (not registered) is refused" "$(kvpy try "$A_PORT" spare-01 | cut -c1-8)" "refused:"

# ---- 2. a revocation through the bucket --------------------------------------------
kvpy agent A "$A_PORT" nimble-01 >"$T/agentA.out" 2>&1 &
AG_A=$!
kvpy agent B "$B_PORT" nimble-01 >"$T/agentB.out" 2>&1 &
AG_B=$!
BG_PIDS+=("$AG_A" "$AG_B")
check "the agents are connected to A and B" wait_until 20 test -e "$PG_STATE/A.nimble-01.ready" -a -e "$PG_STATE/B.nimble-01.ready"
t_rev=$("$PY" -c 'import time; print("%.6f" % time.time())')
kv_revoke nimble-01
t_done=$("$PY" -c 'import time; print("%.6f" % time.time())')
wait "$AG_A" || true
wait "$AG_B" || true
cut_ms() { # GW: ms from the revocation's write to that agent's GOAWAY, or 99999
    local f=$PG_STATE/$1.nimble-01.cut
    [[ -s $f ]] || { echo 99999; return; }
    awk -v t="$t_rev" '{ printf "%d\n", ($1 - t) * 1000 }' "$f"
}
lat_a=$(cut_ms A) lat_b=$(cut_ms B)
note "revoke written in $(awk -v a="$t_rev" -v b="$t_done" 'BEGIN { printf "%d", (b - a) * 1000 }') ms (panelgatectl revoke); GOAWAY on A after ${lat_a} ms, on B after ${lat_b} ms"
check "A: the agent got GOAWAY 'revoked'" grep -q " revoked$" "$PG_STATE/A.nimble-01.cut"
check "B: the agent got GOAWAY 'revoked'" grep -q " revoked$" "$PG_STATE/B.nimble-01.cut"
check "A cut it within 1 s of the write ($lat_a ms)" test "$lat_a" -lt 1000
check "B cut it within 1 s of the write ($lat_b ms)" test "$lat_b" -lt 1000
r=$(kvpy try "$A_PORT" nimble-01)
check "A refuses nimble-01's next handshake (revoked)" grep -qi "revoked" <<<"$r"
r=$(kvpy try "$B_PORT" nimble-01)
check "B refuses nimble-01's next handshake (revoked)" grep -qi "revoked" <<<"$r"
check "A logged the disconnection at the registry change" \
    grep -q '"event":"disconnected".*reason=revoked at registry change' "$A_LOG"
# the gateways' activity rows are in the activity stream, not in a file
n_disc=0
disc_rows() {
    kv_ctl activity --action disconnected --server nimble-01
    n_disc=$(grep -c revoked <<<"$KV_OUT") || true
    ((n_disc >= 2))
}
check "the activity stream has a 'disconnected' row from each gateway" wait_until 10 disc_rows
note "activity rows 'disconnected' for nimble-01: $n_disc"
check "  naming the server, as the SQLite log does (its SERVER column)" \
    awk '$3 == "disconnected" && $4 != "nimble-01" { bad = 1 } END { exit bad }' <<<"$KV_OUT"
kv_ctl --json activity --action disconnected --server nimble-01
check "  and in --json: \"server\": \"nimble-01\", not null" \
    "$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); assert len(r)>=2 and all(x["server"]=="nimble-01" for x in r), r' "$KV_OUT"
check "neither gateway made an SQLite file (sqlite_path $PG_DB, $T/b.db)" test ! -e "$PG_DB" -a ! -e "$T/b.db"

# ---- 3. a new registration -----------------------------------------------------------
# after a SIGHUP on A: the reload keeps the watcher (it does not read a file)
GW_PID=$A_PID GW_LOG=$A_LOG
gw_reload
check "A reloaded on its snapshot (2 pins, the revoked one included)" \
    grep -q '"event":"reloaded","msg":"registry=2 servers_pinned' "$A_LOG"
kv_register spare-01 wowza "$PKI/spare-01.crt"
r=$(kvpy admitted 1 spare-01)
note "spare-01 admitted after: $r (ms after the write returned)"
check "spare-01 is admitted by both gateways within 1 s ($r)" both_within "$r" 1000

# ---- 4. a broken record ----------------------------------------------------------------
kv_put "$(kv_key wowza-01)" "{\"id\":$WOWZA_ID,\"name\":\"wowza-01\",\"kind\":\"BROKENVALUE\",\"status\":\"active\""
kv_put "$(kv_key broken-01)" 'not json BROKENVALUE'
check "A logged the broken key" wait_log "\"event\":\"registry_record_refused\".*key $(kv_key wowza-01):" 1 5
GW_LOG=$B_LOG
check "B logged the broken keys" wait_log '"event":"registry_record_refused".*key server.broken-01:' 1 5
GW_LOG=$A_LOG
check "no log line holds the broken value" bash -c "! grep -q BROKENVALUE '$A_LOG' '$B_LOG'"
check_eq "A still admits wowza-01 (its previous record)" "$(kvpy try "$A_PORT" wowza-01)" 202
check_eq "B still admits wowza-01 (its previous record)" "$(kvpy try "$B_PORT" wowza-01)" 202
pins() { curl -s "http://127.0.0.1:$1/metrics" | awk '$1 == "panelgate_registry_pins" { print $2 }'; }
GW_LOG=$B_LOG B_ADMIN=$(admin_port)
GW_LOG=$A_LOG A_ADMIN=$(admin_port)
check_eq "A: the registry still holds its 3 pins" "$(pins "$A_ADMIN")" 3
check_eq "B: the registry still holds its 3 pins" "$(pins "$B_ADMIN")" 3
check "A: /metrics counts the refused records" \
    grep -q '^panelgate_registry_records_refused_total 2$' <(curl -s "http://127.0.0.1:$A_ADMIN/metrics")
check "A: /metrics says the watcher is up" \
    grep -q '^panelgate_registry_watch_up 1$' <(curl -s "http://127.0.0.1:$A_ADMIN/metrics")
kv_put "$(kv_key wowza-01)" "$(kv_record wowza-01 wowza "$PKI/wowza-01.crt" "$WOWZA_ID")"
kv_del "$(kv_key broken-01)"

# ---- 5. a node killed -----------------------------------------------------------------
nats_kill 1
check "A lost its node" wait_log '"event":"registry_watch_lost"' 1 10
check "A read the bucket again on another node" wait_log '"event":"registry_watch_resumed"' 1 20
kv_revoke wowza-01
r=$(kvpy refused 10 wowza-01)
note "wowza-01 refused after (node 1 down): $r"
check "with node 1 down, a revocation reaches both gateways ($r)" both_within "$r" 10000
nats_start_node 1
nats_wait_ready
kv_put probe 1 # the bucket takes writes again (its leader may have moved)
kv_register stranger-01 nimble "$PKI/stranger-01.crt"
r=$(kvpy admitted 10 stranger-01)
check "node 1 back: a change still reaches both gateways ($r)" both_within "$r" 10000

# ---- 6. stop --------------------------------------------------------------------------
GW_PID=$B_PID GW_LOG=$B_LOG
gw_stop_check
GW_PID=$A_PID GW_LOG=$A_LOG
gw_stop_check
# the refusals of nimble-01's handshakes after its revocation, flushed at
# the stop: a row the gateway names from its registry snapshot (by id)
kv_ctl --json activity --action handshake_refused --server nimble-01
check "the gateways' handshake_refused rows for nimble-01 name it" \
    "$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); assert len(r)>=2 and all(x["server"]=="nimble-01" for x in r), r' "$KV_OUT"
finish
