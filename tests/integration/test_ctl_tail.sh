#!/usr/bin/env bash
# test_ctl_tail.sh - panelgatectl tail (issue 12): follows the JetStream
# engine's frames stream on a real 3-node cluster, beside a gateway on the
# jetstream engine and panelgate-store on its durable consumer.
#  1. Usage and errors: no --config (64), exclusive start options (64), an
#     SQLite-engine config (1, names the engine), an unreachable cluster
#     (1, says no server answered), a missing stream (1).
#  2. --from-start --count N prints exactly the N frames sent: one valid
#     JSON object per line with stream_seq, server_id, seq, ts_ms,
#     received_ms (the store's received_ms for the same frame) and frame
#     (the stored body: no conns, viewers buckets, the frame's seq and ts);
#     no viewer IP anywhere in the output.
#  3. --server NAME and --server ID keep one server's frames; --last N the
#     newest N.
#  4. Follow: a tail started before frames are sent prints the new ones
#     (and none of the old), then exits 0 at --count.
#  5. A message that breaks the contract (jstool pub): one stderr line with
#     its stream sequence and reason; the frames around it are printed.
#  6. SIGINT and SIGTERM end a tail without --count: exit 0.  No tail leaves
#     a consumer behind (one killed with -9 not for long); the store's
#     durable consumer got every frame (rows in its file, nothing pending).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nats.sh"

JSTOOL=${JSTOOL:-$PANELGATE_BUILD_DIR/bin/jstool}
PANELGATE_STORE=${PANELGATE_STORE:-$PANELGATE_BUILD_DIR/bin/panelgate-store}
CTL=${PANELGATECTL:-$PANELGATE_BUILD_DIR/bin/panelgatectl}
[[ -x $JSTOOL ]] || fatal "jstool built ($JSTOOL)"
[[ -x $PANELGATE_STORE ]] || fatal "panelgate-store built ($PANELGATE_STORE)"
[[ -x $CTL ]] || fatal "panelgatectl built ($CTL)"
STREAM=PGTAIL
PREFIX=pgtail.frames
CONSUMER=pgtail-store
STORE_DB=$T/store.db
export T STORE_DB

make_pki
nats_cluster_start 3
JS_KEYS=("servers = $NATS_URLS" "stream = $STREAM" "subject_prefix = $PREFIX" "replicas = 3"
    "consumer = $CONSUMER" "connect_timeout_ms = 3000" "publish_timeout_ms = 3000")

# ---- 1. usage and errors (before the stream exists) ----
gw_config "[storage]" "storage_engine = jetstream" "[jetstream]" "${JS_KEYS[@]}"
rc=0
"$CTL" tail --from-start >"$T/u.out" 2>"$T/u.err" || rc=$?
check_eq "tail without --config: exit 64" "$rc" 64
check "  and says it needs --config" grep -q -- "needs --config" "$T/u.err"
rc=0
"$CTL" --config "$GW_CONF" tail --from-start --last 3 >"$T/u.out" 2>"$T/u.err" || rc=$?
check_eq "--from-start with --last: exit 64" "$rc" 64
rc=0
"$CTL" --config "$GW_CONF" tail --count 0 >"$T/u.out" 2>"$T/u.err" || rc=$?
check_eq "--count 0: exit 64" "$rc" 64
rc=0
"$CTL" --config "$GW_CONF" tail --from-start >"$T/u.out" 2>"$T/u.err" || rc=$?
check_eq "no stream yet: exit 1" "$rc" 1
check "  and says there is no stream $STREAM" grep -q "no stream $STREAM" "$T/u.err"
cp "$GW_CONF" "$T/js.conf"
gw_config
rc=0
"$CTL" --config "$GW_CONF" tail >"$T/u.out" 2>"$T/u.err" || rc=$?
check_eq "an SQLite-engine config: exit 1" "$rc" 1
check "  and names the engine" grep -q "storage_engine is sqlite" "$T/u.err"
read -r DEAD_PORT < <(nats_free_ports 1)
gw_config "[storage]" "storage_engine = jetstream" "[jetstream]" \
    "servers = nats://127.0.0.1:$DEAD_PORT" "connect_timeout_ms = 500"
rc=0
timeout 20 "$CTL" --config "$GW_CONF" tail >"$T/u.out" 2>"$T/u.err" || rc=$?
check_eq "an unreachable cluster: exit 1" "$rc" 1
check "  and says so" grep -qi "jetstream" "$T/u.err"
note "unreachable: $(head -1 "$T/u.err")"
cp "$T/js.conf" "$GW_CONF"

# ---- the gateway, the store, frames ----
kv_register_defaults # the registry bucket, before the gateway starts
gw_start
check "the gateway created the stream" wait_log '"event":"jetstream_ready"' 1 10
{
    echo "[tls]"
    echo "cert_file = $PKI/gateway.crt"
    echo "key_file = $PKI/gateway.key"
    echo "client_ca_file = $PKI/ca.crt"
    echo "[storage]"
    echo "sqlite_path = $STORE_DB"
    echo "[jetstream]"
    printf '%s\n' "${JS_KEYS[@]}"
    echo "[log]"
    echo "log_level = debug"
} >"$T/store.conf"
"$PANELGATE_STORE" --config "$T/store.conf" >"$T/store.out" 2>"$T/store.log" &
STORE_PID=$!
BG_PIDS+=("$STORE_PID")
_store_started() { grep -q '"event":"started"' "$T/store.log"; }
wait_until "$PG_TIMEOUT" _store_started || { tail -5 "$T/store.log"; fatal "store started"; }

# send.py CERT FIRST N: frames FIRST..FIRST+N-1 of CERT, each until 202
# (nimble.json for nimble-01, wowza.json for wowza-01, ts varying with seq)
cat >"$T/send.py" <<'EOF'
import sys, time
import h2client as hc

cert, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = hc.load_frame("nimble.json" if cert.startswith("nimble") else "wowza.json")
ok = hc.Checks()
c = hc.connect(cert)
bad = []
for seq in range(first, first + n):
    body = hc.pack(dict(t, seq=seq, ts=t["ts"] + seq * 1000))
    for _ in range(20):
        r = c.response(c.start(body), timeout=15)
        if r.status == 202:
            break
        time.sleep(0.5)
    else:
        bad.append(seq)
c.close()
ok(not bad, "%s: frames %d..%d acknowledged" % (cert, first, first + n - 1), bad[:5])
EOF
py_checks "$T/send.py" nimble-01 1 10
py_checks "$T/send.py" wowza-01 1 5

consumers() { "$JSTOOL" consumers "$NATS_URLS" "$STREAM" 2>>"$T/jstool.err" | sed 's/consumers=//'; }
check_eq "before any tail: one consumer on the stream (the store's)" "$(consumers)" 1

# check.py OUT [EXPECT...]: the lines of OUT are the frames EXPECT (each
# "SERVER_ID:SEQ", in stream order), all fields right, no viewer IP.
cat >"$T/check.py" <<'EOF'
import json, os, sqlite3, sys, time
import h2client as hc

ok = hc.Checks()
out, want = sys.argv[1], sys.argv[2:]
text = open(out, encoding="utf-8").read()
lines = text.splitlines()
ok(len(lines) == len(want), "%s: %d lines, %d frames expected" % (os.path.basename(out), len(lines), len(want)))
objs, bad = [], []
for i, l in enumerate(lines):
    try:
        objs.append(json.loads(l))
    except ValueError as e:
        bad.append("line %d: %s" % (i + 1, e))
ok(not bad, "  every line is one JSON object", bad[:3])
got = ["%s:%s" % (o.get("server_id"), o.get("seq")) for o in objs]
ok(got == want, "  the frames, in stream order", (got[:6], want[:6]))
names = {int(os.environ["NIMBLE_ID"]): "nimble.json", int(os.environ["WOWZA_ID"]): "wowza.json"}
db = sqlite3.connect("file:%s?mode=ro" % os.environ["STORE_DB"], uri=True, timeout=10)
received = dict(((s, q), r) for s, q, r in db.execute("SELECT server_id, seq, received_ms FROM frames"))
now = int(time.time() * 1000)
fields, last_sseq = [], 0
for o in objs:
    f = o.get("frame", {})
    t = hc.load_json(names.get(o.get("server_id"), "wowza.json"))
    why = []
    if sorted(o) != ["frame", "received_ms", "seq", "server_id", "stream_seq", "ts_ms"]:
        why.append("keys %s" % sorted(o))
    if not isinstance(o.get("stream_seq"), int) or o["stream_seq"] <= last_sseq:
        why.append("stream_seq %r after %d" % (o.get("stream_seq"), last_sseq))
    last_sseq = o.get("stream_seq") or last_sseq
    if f.get("seq") != o.get("seq"):
        why.append("frame.seq %r" % f.get("seq"))
    if o.get("ts_ms") != t["ts"] + o.get("seq", 0) * 1000 or f.get("ts") != o.get("ts_ms"):
        why.append("ts_ms %r, frame.ts %r" % (o.get("ts_ms"), f.get("ts")))
    if not (now - 600000 < o.get("received_ms", 0) <= now + 1000):
        why.append("received_ms %r not recent" % o.get("received_ms"))
    r = received.get((o.get("server_id"), o.get("seq")))
    if r is not None and r != o.get("received_ms"):
        why.append("received_ms %r, the store has %r" % (o.get("received_ms"), r))
    if f.get("server", {}).get("name") != t["server"]["name"]:
        why.append("frame.server.name %r" % f.get("server", {}).get("name"))
    if "conns" in f or not f.get("viewers"):
        why.append("frame has conns or no viewers: %s" % sorted(f))
    if why:
        fields.append("%s: %s" % (got[len(fields)] if len(fields) < len(got) else "?", "; ".join(why)))
ok(not fields, "  every field of every frame is right", fields[:3])
viewers = set()
for name in ("nimble.json", "wowza.json"):
    viewers |= {c["ip"] for c in hc.load_json(name)["conns"]}
hits, total = hc.find_ips([out], hc.ip_needles(viewers, v4_binary=False))
ok(not hits and viewers, "  no viewer IP in the output (%d addresses, %d bytes)" % (len(viewers), total), hits[:3])
EOF

# ---- 2. --from-start --count N ----
expect_all=()
for s in $(seq 1 10); do expect_all+=("$NIMBLE_ID:$s"); done
for s in $(seq 1 5); do expect_all+=("$WOWZA_ID:$s"); done
_stored() { (($(sqlite3 -batch -cmd '.timeout 10000' "$STORE_DB" "SELECT count(*) FROM frames" 2>/dev/null || echo 0) >= $1)); }
wait_until "$PG_TIMEOUT" _stored 15 || note "the store has not written the 15 frames yet"
rc=0
timeout 60 "$CTL" --config "$GW_CONF" tail --from-start --count 15 >"$T/all.out" 2>"$T/all.err" || rc=$?
check_eq "tail --from-start --count 15: exit 0" "$rc" 0
py_checks "$T/check.py" "$T/all.out" "${expect_all[@]}"
check "  nothing on stderr" test ! -s "$T/all.err"

# ---- 3. --server, --last ----
rc=0
timeout 60 "$CTL" --config "$GW_CONF" tail --from-start --server wowza-01 --count 5 >"$T/srv.out" 2>"$T/srv.err" || rc=$?
check_eq "tail --server wowza-01: exit 0" "$rc" 0
py_checks "$T/check.py" "$T/srv.out" "${expect_all[@]:10:5}"
rc=0
timeout 60 "$CTL" --config "$GW_CONF" tail --from-start --server "$NIMBLE_ID" --count 10 >"$T/id.out" 2>"$T/id.err" || rc=$?
check_eq "tail --server ID (nimble-01's): exit 0" "$rc" 0
py_checks "$T/check.py" "$T/id.out" "${expect_all[@]:0:10}"
rc=0
timeout 60 "$CTL" --config "$GW_CONF" tail --last 3 --count 3 >"$T/last.out" 2>"$T/last.err" || rc=$?
check_eq "tail --last 3 --count 3: exit 0" "$rc" 0
py_checks "$T/check.py" "$T/last.out" "${expect_all[@]:12:3}"
rc=0
timeout 60 "$CTL" --config "$GW_CONF" tail --last 2 --server nimble-01 --count 2 >"$T/last2.out" 2>"$T/last2.err" || rc=$?
check_eq "tail --last 2 --server nimble-01 --count 2: exit 0" "$rc" 0
py_checks "$T/check.py" "$T/last2.out" "${expect_all[@]:8:2}"
rc=0
"$CTL" --config "$GW_CONF" tail --server no-such-server >"$T/ns.out" 2>"$T/ns.err" || rc=$?
check_eq "tail --server an unknown name: exit 1" "$rc" 1
note "unknown server: $(cat "$T/ns.err")"

# ---- 4. follow: started first, then frames come ----
_tail_subscribed() { (($(consumers) >= 2)); }
timeout 60 "$CTL" --config "$GW_CONF" tail --count 4 >"$T/follow.out" 2>"$T/follow.err" &
TAIL_PID=$!
BG_PIDS+=("$TAIL_PID")
wait_until "$PG_TIMEOUT" _tail_subscribed || fatal "the following tail has its consumer"
check "the following tail has printed nothing yet" test ! -s "$T/follow.out"
py_checks "$T/send.py" nimble-01 11 2
py_checks "$T/send.py" wowza-01 6 2
rc=0
wait_until "$PG_TIMEOUT" not_alive "$TAIL_PID" || true
wait "$TAIL_PID" || rc=$?
check_eq "the following tail exits 0 after 4 new frames" "$rc" 0
py_checks "$T/check.py" "$T/follow.out" "$NIMBLE_ID:11" "$NIMBLE_ID:12" "$WOWZA_ID:6" "$WOWZA_ID:7"
expect_all+=("$NIMBLE_ID:11" "$NIMBLE_ID:12" "$WOWZA_ID:6" "$WOWZA_ID:7")

# ---- 5. a message breaking the contract ----
printf '\x81\xa1v\x01' >"$T/bad.body"
"$JSTOOL" pub "$NATS_URLS" "$PREFIX.$NIMBLE_ID" "$T/bad.body" "Panelgate-Format=2" \
    "Panelgate-Server-Id=$NIMBLE_ID" "Panelgate-Seq=99" "Nats-Msg-Id=$NIMBLE_ID.99" >"$T/pub.out" ||
    fatal "jstool pub"
BAD_SSEQ=$(sed 's/stream_seq=//' "$T/pub.out")
py_checks "$T/send.py" nimble-01 13 1
expect_all+=("$NIMBLE_ID:13")
rc=0
timeout 60 "$CTL" --config "$GW_CONF" tail --from-start --count 20 >"$T/bad.out" 2>"$T/bad.err" || rc=$?
check_eq "tail over a broken message: exit 0 after the 20 frames" "$rc" 0
py_checks "$T/check.py" "$T/bad.out" "${expect_all[@]}"
check_eq "  one stderr line, naming the message's stream sequence and the reason" \
    "$(cat "$T/bad.err")" \
    "panelgatectl: tail: stream message $BAD_SSEQ skipped: header Panelgate-Format: not 1"

# ---- 6. signals; nothing left behind; the store got everything ----
for sig in INT TERM; do
    "$CTL" --config "$GW_CONF" tail --from-start >"$T/sig.out" 2>"$T/sig.err" &
    TAIL_PID=$!
    BG_PIDS+=("$TAIL_PID")
    _printed() { (($(wc -l <"$T/sig.out") >= 20)); }
    wait_until "$PG_TIMEOUT" _printed || note "the tail did not print the 20 frames"
    kill -"$sig" "$TAIL_PID"
    rc=0
    wait_until "$PG_TIMEOUT" not_alive "$TAIL_PID" || kill -KILL "$TAIL_PID"
    wait "$TAIL_PID" || rc=$?
    check_eq "SIG$sig ends a tail without --count: exit 0" "$rc" 0
done
_one_consumer() { [[ $(consumers) == 1 ]]; }
check "no tail left a consumer on the stream (only the store's)" wait_until 10 _one_consumer
# kill -9: no unsubscribe; the servers drop the ephemeral consumer by themselves
"$CTL" --config "$GW_CONF" tail >"$T/k9.out" 2>"$T/k9.err" &
TAIL_PID=$!
BG_PIDS+=("$TAIL_PID")
wait_until "$PG_TIMEOUT" _tail_subscribed || fatal "the tail to be killed has its consumer"
kill -KILL "$TAIL_PID"
wait "$TAIL_PID" 2>/dev/null || true
check "a tail killed with -9 leaves no consumer behind for long (gone within ${PG_TIMEOUT}s)" \
    wait_until "$PG_TIMEOUT" _one_consumer
caught_up() {
    local c
    c=$("$JSTOOL" consumer "$NATS_URLS" "$STREAM" "$CONSUMER" 2>>"$T/jstool.err") || return 1
    [[ $c == "pending=0 ack_pending=0 "* ]] && _stored 20
}
check "the store's durable consumer got every frame (20 rows, nothing pending)" \
    wait_until "$PG_TIMEOUT" caught_up
check_eq "  exactly 20 rows" "$(sqlite3 -batch -cmd '.timeout 10000' "$STORE_DB" "SELECT count(*) FROM frames")" 20
kill -TERM "$STORE_PID"
wait_until "$PG_TIMEOUT" not_alive "$STORE_PID" || kill -KILL "$STORE_PID"
gw_stop_check
nats_stop_all
finish
