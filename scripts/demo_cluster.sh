#!/usr/bin/env bash
# demo_cluster.sh - the scale-out shape (docs/DEPLOY.md), end to end, on
# loopback:
#   1. a dev PKI (certs/dev-pki.sh);
#   2. a 3-node NATS cluster with JetStream (scripts/nats.sh, the harness
#      the integration tests use), and the registry on it: nimble-01 and
#      wowza-01 registered by panelgatectl --config in the cluster's
#      registry bucket;
#   3. two gateways on the jetstream engine (stream replicas 3), each
#      watching the bucket;
#   4. panelgate-store, the durable consumer, writing the stream into the
#      panel's SQLite file;
#   5. the sample agents report to both gateways (nimble-01 to gateway 1,
#      wowza-01 to gateway 2) and the node leading the stream is killed -9
#      while they do; then each agent goes to the other gateway (as after a
#      load balancer's reconnect), and curl posts one frame to both;
#   6. with the node still down: the store's tables (frames per server,
#      distinct (server_id, seq) = rows = frames acknowledged: every frame
#      once) and the stream's state (messages, leader, replicas);
#   6b. a registration and a revocation made with panelgatectl reach both
#      gateways (spare-01: admitted by both, revoked, refused by both);
#   7. SIGTERM: the store, the gateways and the nodes stop.
# Everything lives in $BUILD_DIR/demo-cluster (removed at the start); an
# EXIT trap kills whatever is still running.  Run after a build (`make
# demo-cluster` does both).  Exits non-zero when a step fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"
build=${BUILD_DIR:-build}
bin=$build/bin
demo=$build/demo-cluster
pki=$demo/pki
panel=$demo/panel.db
stream=PANELGATE_FRAMES
py=/usr/bin/python3

header() { printf '\n== %s ==\n' "$*"; }
fail() {
    echo "demo-cluster: FAILED: $*" >&2
    local f
    for f in "$demo"/gateway1.log "$demo"/gateway2.log "$demo"/store.log; do
        [[ -f $f ]] && tail -n 3 "$f" | sed "s|^|  $(basename "$f"): |" >&2
    done
    exit 1
}
wait_for() { # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1 + 1)); shift
    until "$@"; do ((SECONDS < deadline)) || return 1; sleep 0.1; done
}
alive() { # PID: running (a child that exited and is not reaped yet is not)
    local st
    st=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}
not_alive() { ! alive "$1"; }

for prog in panelgate panelgatectl panelgate-store nimble-agent jstool; do
    [[ -x $bin/$prog ]] || fail "$bin/$prog missing: run 'make' first"
done
wowza=$bin/wowza-agent
# shellcheck source=nats.sh
. scripts/nats.sh
command -v nats-server >/dev/null || fail "nats-server missing (scripts/deps.sh installs it)"

PIDS=() # gateways, store, agents; the nodes are nats.sh's
cleanup() {
    local p
    for p in "${PIDS[@]}"; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
    nats_kill_all
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$demo"
mkdir -p "$demo"

# --- 1. identities -------------------------------------------------------------------
header "dev PKI ($pki)"
bash certs/dev-pki.sh "$pki" >"$demo/pki.log" 2>&1 || fail "certs/dev-pki.sh (see $demo/pki.log)"
# spare-01: a third agent identity, for the revocation below
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=spare-01 \
    -keyout "$pki/spare-01.key" -out "$demo/spare-01.csr" >/dev/null 2>&1 &&
    openssl x509 -req -in "$demo/spare-01.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
        -CAcreateserial -days 2 -out "$pki/spare-01.crt" \
        -extfile <(printf 'extendedKeyUsage = clientAuth\nsubjectAltName = DNS:spare-01\n') \
        >/dev/null 2>&1 || fail "spare-01's certificate"

# --- 2. the NATS cluster -----------------------------------------------------------
header "NATS: 3 nodes with JetStream on loopback (scripts/nats.sh)"
NATS_DIR=$demo/nats
nats_note() { echo "  $*"; }
nats_fail() { fail "$*"; }
nats_cluster_start 3
echo "  cluster ready (a JetStream meta leader); client URLs $NATS_URLS"

# --- 3. two gateways, one registry bucket ---------------------------------------------
gw_conf() { # I
    cat >"$demo/gateway$1.conf" <<EOF
[server]
listen = 127.0.0.1:0
port_file = $demo/gateway$1.ports
[tls]
cert_file = $pki/gateway.crt
key_file = $pki/gateway.key
client_ca_file = $pki/ca.crt
[storage]
storage_engine = jetstream
retry_after_s = 1
[jetstream]
servers = $NATS_URLS
stream = $stream
replicas = 3
connect_timeout_ms = 3000
publish_timeout_ms = 3000
[admin]
listen = 127.0.0.1:0
EOF
}
gw_conf 1
gw_conf 2
ctl() { "$bin/panelgatectl" --config "$demo/gateway1.conf" --actor demo "$@"; }
header "the registry: the cluster's bucket panelgate_registry (panelgatectl --config)"
for id in nimble-01 wowza-01; do
    ctl register "$id" --kind "${id%-01}" --cert "$pki/$id.crt" >/dev/null ||
        fail "panelgatectl register $id"
done
echo "  \$ panelgatectl --config $demo/gateway1.conf list"
ctl list | sed 's/^/  /'

header "two gateways on the jetstream engine, both watching the bucket"
GW_PID=() GW_PORT=() GW_ADMIN=()
for i in 1 2; do
    "$bin/panelgate" --config "$demo/gateway$i.conf" 2>"$demo/gateway$i.log" &
    GW_PID[i]=$!
    PIDS+=("$!")
    wait_for 15 test -s "$demo/gateway$i.ports" || fail "gateway $i did not start"
    wait_for 10 grep -q '"event":"jetstream_ready"' "$demo/gateway$i.log" ||
        fail "gateway $i: no jetstream_ready"
    wait_for 10 grep -q '"event":"admin_listening"' "$demo/gateway$i.log" || fail "gateway $i: no admin listener"
    GW_PORT[i]=$(awk 'NR == 1 {print $2}' "$demo/gateway$i.ports")
    GW_ADMIN[i]=$(grep '"event":"admin_listening"' "$demo/gateway$i.log" | tail -n 1 |
        sed -E 's/.*:([0-9]+) \(GET.*/\1/')
    echo "  gateway $i: pid ${GW_PID[i]}, 127.0.0.1:${GW_PORT[i]}, admin http://127.0.0.1:${GW_ADMIN[i]}/"
done
echo "  both: stream $stream, replicas 3; registry bucket panelgate_registry"
grep -h '"event":"jetstream_ready"' "$demo/gateway1.log" | head -n 1 | sed 's/^/  log: /'
grep -h '"event":"registry_watching"' "$demo/gateway1.log" | head -n 1 | sed 's/^/  log: /'

# try I ID: one frame from agent ID to gateway I; prints the HTTP status (000
# when the handshake was refused)
"$bin/panelagent" encode <tests/data/nimble.json >"$demo/nimble.msgpack"
try() {
    curl -sS --http2 --cacert "$pki/ca.crt" --cert "$pki/$2.crt" --key "$pki/$2.key" \
        -H 'content-type: application/msgpack' --data-binary "@$demo/nimble.msgpack" \
        -o /dev/null -w '%{http_code}' "https://localhost:${GW_PORT[$1]}/v1/stats" 2>/dev/null || true
}
both() { [[ $(try 1 "$1") == "$2" && $(try 2 "$1") == "$2" ]]; }

# --- 4. the store consumer -------------------------------------------------------------
header "panelgate-store: the stream into $panel"
cat >"$demo/store.conf" <<EOF
[tls]
# present for the file format; panelgate-store does not open them
cert_file = $pki/gateway.crt
key_file = $pki/gateway.key
client_ca_file = $pki/ca.crt
[storage]
sqlite_path = $panel
retry_after_s = 1
[jetstream]
servers = $NATS_URLS
stream = $stream
connect_timeout_ms = 3000
EOF
"$bin/panelgate-store" --config "$demo/store.conf" 2>"$demo/store.log" &
store_pid=$!
PIDS+=("$store_pid")
wait_for 15 grep -q '"event":"started"' "$demo/store.log" || fail "panelgate-store did not start"
echo "  panelgate-store pid $store_pid, durable consumer panelgate-store"
grep -h '"event":"consumer_created"' "$demo/store.log" | sed 's/^/  log: /'

# --- 5. agents on both gateways; a node killed meanwhile ----------------------------------
"$py" - tests/data/nimble.json tests/data/wowza.json >"$demo/viewer-ips" <<'EOF'
import json, sys
ips = {c["ip"] for p in sys.argv[1:] for c in json.load(open(p))["conns"]}
print("\n".join(sorted(ips - {"192.0.2.10", "192.0.2.20"})))
EOF
AGENTS=(nimble-01)
[[ -x $wowza ]] && AGENTS+=(wowza-01)
agent_start() { # ID GATEWAY COUNT INTERVAL ROUND: in the background, sets AGENT_PID
    local id=$1 prog=$bin/nimble-agent
    [[ $id == wowza-01 ]] && prog=$wowza
    "$prog" --gateway "localhost:${GW_PORT[$2]}" --ca "$pki/ca.crt" --cert "$pki/$id.crt" \
        --key "$pki/$id.key" --server-name "$id.example.net" --seq-file "$demo/$id.seq" \
        --viewer-ips "$demo/viewer-ips" --viewers 60 --count "$3" --interval "$4" \
        --close-timeout 30 >"$demo/$id.$5.out" 2>&1 &
    AGENT_PID=$!
    PIDS+=("$!")
}
agents_wait() { # ROUND: waits (bounded) for every agent of the round, shows what it printed
    local id pid rc
    for id in "${AGENTS[@]}"; do
        pid=${APID[$id]}
        wait_for 90 not_alive "$pid" || fail "$id ($1) did not finish in 90 s"
        rc=0
        wait "$pid" || rc=$?
        echo "  $id ($1): $(grep -c '^ack seq=' "$demo/$id.$1.out") acks, $(grep -c '^error ' "$demo/$id.$1.out" || true) errors, exit $rc"
        grep '^error ' "$demo/$id.$1.out" | head -n 3 | sed 's/^/    /' || true
        ((rc == 0)) || fail "$id did not deliver every frame ($demo/$id.$1.out)"
    done
}
# stream_state: one line per fact, from the monitoring endpoint of a live node
stream_state() {
    local i
    for ((i = 1; i <= NATS_N; i++)); do
        alive "${NATS_PIDS[i]}" || continue
        curl -fsS --max-time 3 "http://127.0.0.1:${NATS_MPORT[i]}/jsz?accounts=true&streams=true&consumers=true" |
            "$py" -c '
import json, sys
want = sys.argv[1]
for acc in json.load(sys.stdin).get("account_details") or []:
    for s in acc.get("stream_detail") or []:
        if s["name"] != want:
            continue
        st, cl = s["state"], s.get("cluster") or {}
        print("stream %s: %d messages (stream seq %d..%d), %d bytes" %
              (want, st["messages"], st["first_seq"], st["last_seq"], st["bytes"]))
        print("leader %s" % cl.get("leader", "?"))
        for r in cl.get("replicas") or []:
            print("replica %s: %s, last heard from %.1f s ago%s" %
                  (r["name"], "current" if r.get("current") else "not current",
                   r.get("active", 0) / 1e9, ", offline" if r.get("offline") else ""))
        for c in s.get("consumer_detail") or []:
            print("consumer %s: %d not yet delivered, %d delivered and not acknowledged" %
                  (c["name"], c.get("num_pending", 0), c.get("num_ack_pending", 0)))
        sys.exit(0)
sys.exit(1)' "$stream" && return 0
    done
    return 1
}
stream_leader() { stream_state | sed -n 's/^leader pg-nats-//p'; }

header "round 1: nimble-01 -> gateway 1, wowza-01 -> gateway 2, 12 frames each, one each 0.5 s"
[[ -x $wowza ]] || echo "  (wowza-01 skipped: no JDK; install default-jdk-headless)"
declare -A APID
agent_start nimble-01 1 12 0.5 round1
APID[nimble-01]=$AGENT_PID
if [[ -x $wowza ]]; then agent_start wowza-01 2 12 0.5 round1; APID[wowza-01]=$AGENT_PID; fi
wait_for 20 grep -q '^ack seq=' "$demo/nimble-01.round1.out" || fail "no frame acknowledged in round 1"
sleep 2
leader=$(stream_leader || true)
[[ $leader =~ ^[1-3]$ ]] || leader=2
KILLED=$leader
echo "  ... frames flowing; the stream's leader is node $KILLED: kill -9 it"
nats_kill "$KILLED"
agents_wait round1
echo "  (a frame answered 503 + retry-after meanwhile is resent by libpanelagent with the same"
echo "  seq: the frames_unavailable/failed counters below show how many there were)"
grep -h '"event":"jetstream_\(disconnected\|reconnected\)"' "$demo"/gateway[12].log | head -n 4 |
    sed 's/^/  log: /' || true

header "round 2: each agent to the other gateway (a load balancer's new choice), 3 frames each"
APID=()
agent_start nimble-01 2 3 0.3 round2
APID[nimble-01]=$AGENT_PID
if [[ -x $wowza ]]; then agent_start wowza-01 1 3 0.3 round2; APID[wowza-01]=$AGENT_PID; fi
agents_wait round2

header "curl: one frame (tests/data/nimble.json) to gateway 1, then the same to gateway 2"
post() { # GATEWAY: prints "gateway I: HTTP <status>: <body>"
    local code
    code=$(curl -sS --http2 --cacert "$pki/ca.crt" --cert "$pki/nimble-01.crt" --key "$pki/nimble-01.key" \
        -H 'content-type: application/msgpack' --data-binary "@$demo/nimble.msgpack" \
        -o "$demo/response" -w '%{http_code}' "https://localhost:${GW_PORT[$1]}/v1/stats")
    echo "  gateway $1: HTTP $code: $(cat "$demo/response")"
    [[ $code == 202 ]] || fail "expected 202 from gateway $1"
}
post 1
post 2
dups=$(curl -sS "http://127.0.0.1:${GW_ADMIN[2]}/metrics" | awk '$1 == "panelgate_frames_duplicate_total" {print $2}')
echo "  gateway 2 counted it as a duplicate (panelgate_frames_duplicate_total $dups):"
echo "  the stream's duplicate window saw Nats-Msg-Id <server id>.<seq> from gateway 1"

# --- 6. what the panel sees ------------------------------------------------------------------
acked=$(cat "$demo"/*.round[12].out | grep -c '^ack seq=')
want=$(( $(cat "$demo"/*.round[12].out | sed -n 's/^ack seq=\([0-9]*\).*/\1/p' | sort -u | wc -l) + 1 ))
stream_msgs() { "$bin/jstool" dump "$NATS_URLS" "$stream" 2>/dev/null | awk 'NR == 1 {sub("msgs=", "", $3); print $3}'; }
rows() { sqlite3 -cmd '.timeout 5000' "$panel" "SELECT count(*) FROM frames" 2>/dev/null || echo -1; }
caught_up() {
    local c
    c=$("$bin/jstool" consumer "$NATS_URLS" "$stream" panelgate-store 2>/dev/null) || return 1
    [[ $c == "pending=0 ack_pending=0 "* && $(rows) == "$(stream_msgs)" ]]
}
wait_for 30 caught_up || fail "the store did not catch up with the stream in 30 s"

header "the stream (node $KILLED still down)"
stream_state | sed 's/^/  /' || fail "no live node answered /jsz"
for i in 1 2; do
    curl -sS "http://127.0.0.1:${GW_ADMIN[i]}/metrics" |
        awk -v g="$i" '$1 ~ /^panelgate_frames_(accepted|duplicate|unavailable|failed)_total$/ {printf "  gateway %s: %s %s\n", g, $1, $2}'
done

header "the panel's file ($panel), written by panelgate-store"
echo "  frames per server id (the names: panelgatectl --config ... list, above):"
sqlite3 -header -column "$panel" \
    "SELECT server_id, count(*) AS frames, min(seq) AS first_seq, max(seq) AS last_seq
     FROM frames GROUP BY server_id ORDER BY server_id" | sed 's/^/  /'
echo "  every frame once:"
sqlite3 -header -column "$panel" \
    "SELECT count(*) AS rows, (SELECT count(*) FROM (SELECT DISTINCT server_id, seq FROM frames)) AS distinct_seqs,
            (SELECT count(*) FROM server_samples) AS server_samples FROM frames" | sed 's/^/  /'
got=$(rows)
distinct=$(sqlite3 "$panel" "SELECT count(*) FROM (SELECT DISTINCT server_id, seq FROM frames)")
echo "  agents' acks: $acked (distinct seqs $((want - 1))) + curl's frame 1 = $want frames acknowledged;"
echo "  stream messages: $(stream_msgs); rows: $got; distinct (server_id, seq): $distinct"
[[ $got == "$want" && $distinct == "$want" ]] ||
    fail "expected $want rows, one per acknowledged frame; got $got rows, $distinct distinct"
echo "  every acknowledged frame is in the panel's file exactly once"
grep -q '"event":"message_\(refused\|rejected\)"' "$demo/store.log" && fail "the store terminated a message"

# --- 6b. the registry: a change reaches both gateways (after the count above:
# spare-01's frame is not an agent's) -----------------------------------------------
header "a registration and a revocation reach both gateways"
ctl register spare-01 --kind nimble --cert "$pki/spare-01.crt" >/dev/null ||
    fail "panelgatectl register spare-01"
wait_for 5 both spare-01 202 || fail "spare-01 not admitted by both gateways"
echo "  spare-01 registered: gateway 1 $(try 1 spare-01), gateway 2 $(try 2 spare-01)"
ctl revoke spare-01 >/dev/null || fail "panelgatectl revoke spare-01"
wait_for 5 both spare-01 000 || fail "spare-01 not refused by both gateways"
echo "  spare-01 revoked: gateway 1 $(try 1 spare-01), gateway 2 $(try 2 spare-01) (handshake refused)"
grep -h '"event":"registry_reloaded"' "$demo/gateway2.log" | tail -n 1 | sed 's/^/  log: /'

# --- 7. stop ------------------------------------------------------------------------------------
header "SIGTERM: the store, the gateways, the nodes"
stop() { # NAME PID
    local rc=0
    kill -TERM "$2" 2>/dev/null || true
    wait_for 30 not_alive "$2" || { kill -KILL "$2"; fail "$1 did not exit in 30 s of SIGTERM"; }
    wait "$2" || rc=$?
    echo "  $1 exited $rc"
    ((rc == 0)) || fail "$1 exited $rc"
}
stop panelgate-store "$store_pid"
grep -h '"event":"stopped"' "$demo/store.log" | sed 's/^/  log: /'
stop "gateway 1" "${GW_PID[1]}"
stop "gateway 2" "${GW_PID[2]}"
nats_stop_all
echo "  nats nodes stopped"
trap - EXIT

header "demo-cluster: all steps passed (files in $demo)"
