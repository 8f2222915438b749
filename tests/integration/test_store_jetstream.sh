#!/usr/bin/env bash
# test_store_jetstream.sh - panelgate-store, the JetStream engine's
# panel-side store (issue 12), on a real 3-node cluster beside a gateway on
# the jetstream engine (duplicate_window_s = 1).
#  1. Two agents send several hundred frames (20 seqs each sent twice)
#     while two store instances share the durable consumer; one instance is
#     killed (-9) while it holds fetched, uncommitted messages (its SQLite
#     write waits on a lock another process holds) and is restarted:
#     every acknowledged frame is in the store's file exactly once, and the
#     killed instance's messages were delivered again (ack_wait_ms = 2000).
#  2. A resend of old seqs after the duplicate window: 202, a second
#     message in the stream, one row in the store.
#  3. No viewer IP in the store's database (and -wal) or its logs.
#  4. SIGTERM while both instances are inside a batch: each exits 0 after
#     the batch is committed and acknowledged (nothing left pending).
#  5. A consumer that exists with another ack wait: a warning naming both.
#  6. A gateway on the SQLite engine fed the same frames writes the same
#     rows: frames (but received_ms), server_samples, stream_samples (by
#     path), stream_paths (but last_ms), geo_samples.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nats.sh"

JSTOOL=${JSTOOL:-$PANELGATE_BUILD_DIR/bin/jstool}
PANELGATE_STORE=${PANELGATE_STORE:-$PANELGATE_BUILD_DIR/bin/panelgate-store}
[[ -x $JSTOOL ]] || fatal "jstool built ($JSTOOL)"
[[ -x $PANELGATE_STORE ]] || fatal "panelgate-store built ($PANELGATE_STORE)"
STREAM=PGSTORE
PREFIX=pgstore.frames
CONSUMER=pgstore-test
STORE_DB=$T/store.db
REF_DB=$T/ref.db
export PG_STATE=$T/state STORE_DB REF_DB T
mkdir -p "$PG_STATE"

make_pki
perl "$PANELGATE_SOURCE_DIR/tests/data/make_test_mmdb.pl" "$T" >"$T/mmdb.log" 2>&1 ||
    { cat "$T/mmdb.log"; fatal "test geo databases built (libmaxmind-db-writer-perl)"; }
GEO=("[geo]" "country_db = $T/test-country.mmdb" "asn_db = $T/test-asn.mmdb")
nats_cluster_start 3
JS_KEYS=("servers = $NATS_URLS" "stream = $STREAM" "subject_prefix = $PREFIX" "replicas = 3"
    "duplicate_window_s = 1" "consumer = $CONSUMER" "connect_timeout_ms = 3000"
    "publish_timeout_ms = 3000")

# the gateway on the jetstream engine; the registry is the cluster's bucket
gw_config "[storage]" "storage_engine = jetstream" "retry_after_s = 1" \
    "[jetstream]" "${JS_KEYS[@]}" "${GEO[@]}"
kv_register_defaults
gw_start
check "the gateway created the stream" wait_log '"event":"jetstream_ready"' 1 10
# the reference gateway (SQLite engine) gets the same servers with the same
# ids (1, 2) in its own file
CTL=${PANELGATE_CTL:-$PANELGATE_BUILD_DIR/bin/panelgatectl}
"$CTL" --db "$REF_DB" register nimble-01 --kind nimble --cert "$PKI/nimble-01.crt" >/dev/null &&
    "$CTL" --db "$REF_DB" register wowza-01 --kind wowza --cert "$PKI/wowza-01.crt" >/dev/null ||
    fatal "the reference gateway's registry (panelgatectl register)"
check_eq "the reference registry's ids are the bucket's" \
    "$(sqlite3 "$REF_DB" "SELECT group_concat(id) FROM (SELECT id FROM servers ORDER BY name)")" "$NIMBLE_ID,$WOWZA_ID"

# the store's configuration ([tls] must be there, it is not opened)
store_config() { # FILE ACK_WAIT_MS
    {
        echo "[tls]"
        echo "cert_file = $PKI/gateway.crt"
        echo "key_file = $PKI/gateway.key"
        echo "client_ca_file = $PKI/ca.crt"
        echo "[storage]"
        echo "sqlite_path = $STORE_DB"
        echo "batch_max_frames = 16"
        echo "busy_timeout_ms = 30000"
        echo "retry_after_s = 1"
        echo "[jetstream]"
        printf '%s\n' "${JS_KEYS[@]}"
        echo "ack_wait_ms = $2"
        echo "[log]"
        echo "log_level = debug"
    } >"$1"
}
store_config "$T/store.conf" 2000

STORE_PID=()
store_log_count() { # I PATTERN
    local n
    n=$(grep -Ec -- "$2" "$T/store$1.log" 2>/dev/null) || true
    echo "${n:-0}"
}
_store_started() { (($(store_log_count "$1" '"event":"started"') > $2)); }
store_start() { # I [CONF]
    local i=$1 n0
    n0=$(store_log_count "$i" '"event":"started"')
    "$PANELGATE_STORE" --config "${2:-$T/store.conf}" >>"$T/store$i.out" 2>>"$T/store$i.log" &
    STORE_PID[i]=$!
    BG_PIDS+=("$!")
    wait_until "$PG_TIMEOUT" _store_started "$i" "$n0" ||
        { tail -5 "$T/store$i.log"; fatal "store $i started"; }
    note "store $i: pid ${STORE_PID[i]}"
}
# store_stop I: SIGTERM, bounded wait; sets STORE_RC
store_stop() {
    local p=${STORE_PID[$1]}
    STORE_RC=0
    kill -TERM "$p" 2>/dev/null || true
    if ! wait_until "$PG_TIMEOUT" not_alive "$p"; then
        note "store $1 did not exit within ${PG_TIMEOUT}s of SIGTERM: killing it"
        kill -KILL "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || STORE_RC=$?
}
store_rows() { sqlite3 -batch -cmd '.timeout 10000' "$STORE_DB" "SELECT count(*) FROM frames" 2>/dev/null || echo -1; }
consumer_info() { "$JSTOOL" consumer "$NATS_URLS" "$STREAM" "$CONSUMER" 2>>"$T/jstool.err" || echo error; }
info_field() { # NAME INFO: the value of NAME=... in a consumer_info line
    local w
    for w in $2; do [[ $w == "$1="* ]] && { echo "${w#*=}"; return; }; done
    echo -1
}
ack_pending_at_least() { (($(info_field ack_pending "$(consumer_info)") >= $1)); }
# caught_up N: nothing pending or unacknowledged, and N rows in the store
caught_up() {
    local c
    c=$(consumer_info)
    [[ $c == "pending=0 ack_pending=0 "* ]] && (($(store_rows) == $1))
}
acked_count() { cat "$PG_STATE"/*.acked 2>/dev/null | sort -u | wc -l; }
lock_store() { # NAME: holds BEGIN EXCLUSIVE on the store's file until NAME.release
    rm -f "$PG_STATE/$1.locked" "$PG_STATE/$1.release"
    py_bg "$T/$1.lock.out" "$LIB_DIR/dblock.py" "$STORE_DB" "$PG_STATE/$1.locked" "$PG_STATE/$1.release" 60
    LOCK_PID=$PY_BG_PID
    wait_until "$PG_TIMEOUT" test -e "$PG_STATE/$1.locked" || fatal "dblock.py took the store's write lock"
}
unlock_store() { # NAME
    touch "$PG_STATE/$1.release"
    py_bg_wait "$LOCK_PID" "$T/$1.lock.out" 30
}

# frames.py: the frame of (cert, seq), the same bytes every time: nimble.json
# for nimble-01, wowza.json for wowza-01, with ts, the viewer connections,
# a stream's viewers and another stream's name varying with seq.
cat >"$T/frames.py" <<'EOF'
import copy
import h2client as hc

TEMPLATES = {"nimble-01": hc.load_frame("nimble.json"), "wowza-01": hc.load_frame("wowza.json")}


def frame(cert, seq):
    t = TEMPLATES[cert]
    d = copy.deepcopy(t)
    d["seq"] = seq
    d["ts"] = t["ts"] + (seq % 1000000) * 1000
    d["conns"] = [dict(c, **{"in": c["in"] + seq % 13})
                  for i, c in enumerate(t["conns"]) if (i + seq) % 4]
    streams = d["vhosts"][0]["apps"][0]["instances"][0]["streams"]
    streams[0]["viewers"] = seq % 97
    streams[-1]["name"] = "extra-%d" % (seq % 5)
    return hc.pack(d)
EOF

# clients.py send PHASE N PACE: two agents (nimble-01, wowza-01), N distinct
#   seqs each, 8 in flight, PACE seconds between rounds; the first 20 acked
#   seqs are sent once more (202 again).  Every 202 seq goes to
#   $PG_STATE/<cert>.acked; a 503 (with retry-after) is sent again; any
#   other answer is a failure.
# clients.py resend CERT SEQ...: each seq once more, 202 expected.
cat >"$T/clients.py" <<'EOF'
import os, sys, threading, time
import h2client as hc
import frames

ST = os.environ["PG_STATE"]
CERTS = ["nimble-01", "wowza-01"]


def post_all(cert, todo, acked_file, bad, counts, lock, pace=0.0, resend_first=0):
    out = open(acked_file, "a", buffering=1)
    c, first = None, []
    while todo:
        if c is None or c.closed or c.goaway is not None:
            try:
                c = hc.connect(cert)
            except Exception as e:
                bad.append("connect %s: %r" % (cert, e))
                time.sleep(0.2)
                continue
        part, todo[:] = todo[:8], todo[8:]
        try:
            sids = [(c.start(frames.frame(cert, s)), s) for s in part]
        except (hc.ConnError, OSError):
            todo[:0] = part
            c = None
            continue
        for sid, s in sids:
            try:
                r = c.response(sid, timeout=15)
            except Exception as e:
                bad.append("%s seq %d: %r" % (cert, s, e))
                continue
            if r.status == 202 and r.headers.get("panelgate-ack-seq") == str(s):
                out.write("%d\n" % s)
                with lock:
                    counts["acked"] += 1
                if len(first) < resend_first:
                    first.append(s)
                    if len(first) == resend_first:
                        todo[:0] = list(first)
            elif r.status == 503 and r.headers.get("retry-after"):
                with lock:
                    counts["refused"] += 1
                todo.append(s)
            else:
                bad.append("%s seq %d: %s %s" % (cert, s, r.status, r.body[:80]))
        time.sleep(pace)
    if c is not None:
        c.close()


def report(what, bad, counts):
    for e in bad[:10]:
        print("# client: %s" % e)
    print("# %s: %d answers 202, %d answers 503 (sent again)" % (what, counts["acked"], counts["refused"]))
    print("%s - %s: every frame answered 202 (503 only before a resend)%s" %
          ("not ok" if bad else "ok", what, ": %d others" % len(bad) if bad else ""))


def send(phase, n, pace):
    bad, counts, lock = [], {"acked": 0, "refused": 0}, threading.Lock()
    base = {"main": 1, "term": 2}[phase] * 1000000

    def agent(i, cert):
        todo = list(range(base + i * 100000 + 1, base + i * 100000 + n + 1))
        post_all(cert, todo, "%s/%s.acked" % (ST, cert), bad, counts, lock, pace,
                 20 if phase == "main" else 0)

    threads = [threading.Thread(target=agent, args=(i, c)) for i, c in enumerate(CERTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    report(phase, bad, counts)


def resend(cert, seqs, what):
    bad, counts, lock = [], {"acked": 0, "refused": 0}, threading.Lock()
    post_all(cert, list(seqs), "%s/%s.resent" % (ST, cert), bad, counts, lock)
    report(what, bad, counts)


if sys.argv[1] == "send":
    send(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
elif sys.argv[1] == "resend":
    resend(sys.argv[2], [int(x) for x in sys.argv[4:]], sys.argv[3])
EOF

# 1. two instances, one killed -9 in the middle of a batch, frames flowing
store_start 1
check "the first instance created the durable consumer" \
    test "$(store_log_count 1 '"event":"consumer_created"')" -eq 1
check_eq "the consumer has ack_wait_ms 2000" "$(info_field ack_wait_ms "$(consumer_info)")" 2000
py_bg "$T/main.out" "$T/clients.py" send main 300 0.1
SENDER=$PY_BG_PID
enough_rows() { (($(store_rows) >= 80)); }
check "frames reach the store's file" wait_until 30 enough_rows
lock_store kill
check "the store holds fetched messages it cannot commit (store's file locked)" \
    wait_until 15 ack_pending_at_least 1
INFO=$(consumer_info)
note "before the kill: $INFO"
kill -KILL "${STORE_PID[1]}"
wait_until 10 not_alive "${STORE_PID[1]}" || fatal "store 1 gone after kill -9"
wait "${STORE_PID[1]}" 2>/dev/null || true
note "store 1 killed (-9) with $(info_field ack_pending "$INFO") messages delivered and unacknowledged"
unlock_store kill # (an instance's start writes the schema: not while locked)
store_start 2
store_start 1
py_bg_wait "$SENDER" "$T/main.out" 120
WANT=$(acked_count)
note "$WANT distinct frames acknowledged by the gateway"
check "the store caught up: nothing pending or unacknowledged, $WANT rows" wait_until 40 caught_up "$WANT"
INFO=$(consumer_info)
"$JSTOOL" dump "$NATS_URLS" "$STREAM" >"$T/dump1.txt" 2>"$T/dump.err" || fatal "jstool dump: $(cat "$T/dump.err")"
MSGS=$(($(wc -l <"$T/dump1.txt") - 1))
note "consumer: $INFO; stream: $MSGS messages"
check "the killed instance's messages were delivered again (consumer deliveries $(info_field delivered "$INFO") > $MSGS messages)" \
    test "$(info_field delivered "$INFO")" -gt "$MSGS"

# every acknowledged (server, seq) is a row, and nothing else
check_acked() { # WHAT
    py_checks - "$1" <<'EOF'
import glob, os, sqlite3, sys
import h2client as hc
ok = hc.Checks()
ids = {"nimble-01": int(os.environ["NIMBLE_ID"]), "wowza-01": int(os.environ["WOWZA_ID"])}
acked = set()
for cert, sid in ids.items():
    for p in glob.glob("%s/%s.acked" % (os.environ["PG_STATE"], cert)):
        acked |= {(sid, int(x)) for x in open(p)}
db = sqlite3.connect("file:%s?mode=ro" % os.environ["STORE_DB"], uri=True, timeout=10)
rows = db.execute("SELECT server_id, seq FROM frames").fetchall()
got = set(rows)
ok(len(rows) == len(got) == len(acked), "%s: %d rows for %d acknowledged frames" %
   (sys.argv[1], len(rows), len(acked)))
ok(not (acked - got), "%s: every acknowledged frame is in the store" % sys.argv[1],
   sorted(acked - got)[:5])
ok(not (got - acked), "%s: nothing in the store that was not acknowledged" % sys.argv[1],
   sorted(got - acked)[:5])
EOF
}
check_acked "after kill -9 and restart"

# 2. old seqs again, after the duplicate window (1 s): a second message
# in the stream, still one row each
sleep 1.5
OLD=$(head -3 "$PG_STATE/wowza-01.acked" | tr '\n' ' ')
# shellcheck disable=SC2086  # three seqs, one word each
py_checks "$T/clients.py" resend wowza-01 "resend after the duplicate window" $OLD
"$JSTOOL" dump "$NATS_URLS" "$STREAM" >"$T/dump2.txt" 2>"$T/dump.err" || fatal "jstool dump: $(cat "$T/dump.err")"
TWICE=0
for s in $OLD; do
    n=$(awk -v id="$WOWZA_ID.$s" '$3 == id' "$T/dump2.txt" | wc -l)
    ((n == 2)) && TWICE=$((TWICE + 1))
done
check_eq "the stream holds a second message for each resent seq" "$TWICE" 3
check "the store caught up again, still $WANT rows" wait_until 30 caught_up "$WANT"

# 3. no viewer IP in the store's file, its -wal, the logs (a copy of the
# -wal now: it goes when the last instance closes the file)
cp "$STORE_DB-wal" "$T/store.db-wal.copy" 2>/dev/null || true
scan_viewers() {
    local files=() f
    for f in "$STORE_DB" "$STORE_DB-wal" "$T/store.db-wal.copy" "$T"/store*.log "$GW_LOG"; do
        [[ -f $f ]] && files+=("$f")
    done
    py_checks - "$1" "${files[@]}" <<'EOF'
import ipaddress, os, socket, sys
import h2client as hc
ok = hc.Checks()
viewers = set()
for name in ("nimble.json", "wowza.json"):
    viewers |= {c["ip"] for c in hc.load_json(name)["conns"]}
hits, total = hc.find_ips(sys.argv[2:], hc.ip_needles(viewers, v4_binary=False))
ok(not hits, "%s: no viewer IP (%d) in %s (%d bytes)" %
   (sys.argv[1], len(viewers), " ".join(os.path.basename(p) for p in sys.argv[2:]), total), hits[:5])
ctl = ipaddress.ip_address("2001:db8:200::10").packed   # the server's own address, in the body
found = [os.path.basename(p) for p in sys.argv[2:] if ctl in open(p, "rb").read()]
ok(found, "%s: control: the search finds the server address stored in the body (%s)" %
   (sys.argv[1], " ".join(found)))
EOF
}
scan_viewers "while running"

# 4. SIGTERM: instance 2 while idle; then instance 1, alone, inside a
# batch it cannot commit yet (the store's file locked): it exits 0 once the
# batch is committed and acknowledged
store_stop 2
check_eq "SIGTERM: idle instance 2 exits 0" "$STORE_RC" 0
lock_store term
py_checks "$T/clients.py" send term 20 0
check "instance 1 holds fetched messages (store's file locked)" wait_until 15 ack_pending_at_least 1
note "at SIGTERM: $(consumer_info)"
kill -TERM "${STORE_PID[1]}"
sleep 1.5 # longer than a fetch's wait (1 s): only the batch keeps it
check "SIGTERM: instance 1 still finishing its batch while the file is locked" alive "${STORE_PID[1]}"
unlock_store term
store_stop 1
check_eq "SIGTERM: instance 1 exits 0 after its batch" "$STORE_RC" 0
for i in 1 2; do
    check "instance $i logged its counts when it stopped" test "$(store_log_count "$i" '"event":"stopped"')" -ge 1
done
INFO=$(consumer_info)
note "after both stopped: $INFO"
check_eq "after both stopped: every message they had fetched was acknowledged" \
    "$(info_field ack_pending "$INFO")" 0
STATS=$(grep -h '"event":"stopped"' "$T/store1.log" "$T/store2.log" | sed -E 's/.*stored=([0-9]+) duplicates=([0-9]+).*/\1 \2/')
note "stopped: $(echo "$STATS" | tr '\n' ';')"
both_took() {
    local a b
    while read -r a b; do ((a + b > 0)) || return 1; done <<<"$STATS"
}
check "both instances after the restart took messages from the shared consumer" both_took
DUPS=$(awk '{ d += $2 } END { print d + 0 }' <<<"$STATS")
check "the resends after the window were dropped as duplicates by the store ($DUPS)" test "$DUPS" -ge 3

# 5. a consumer that exists with another ack wait: a warning naming both;
# this instance stores what the others left in the stream
store_config "$T/store3.conf" 3000
store_start 3 "$T/store3.conf"
check "another ack_wait_ms: warning with both values" grep -q \
    "\"event\":\"consumer_differs\".*ack_wait_ms: configured 3000, consumer has 2000" "$T/store3.log"
WANT=$(acked_count)
check "the store caught up again, $WANT rows" wait_until 30 caught_up "$WANT"
check_acked "after SIGTERM and a third instance"
store_stop 3
check_eq "instance 3 exits 0 on SIGTERM" "$STORE_RC" 0
scan_viewers "after the stop"
TERMED=$(cat "$T"/store[123].log | grep -Ec '"event":"message_(refused|rejected)"' || true)
check_eq "no message terminated (refused or rejected) by any instance" "$TERMED" 0
for f in "$T"/store[123].log; do
    if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: .*Sanitizer' "$f"; then
        not_ok "$(basename "$f") free of sanitizer reports"
        grep -E -A30 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f" | head -60
    else
        ok "$(basename "$f") free of sanitizer reports"
    fi
done
gw_stop_check

# 6. the reference: a gateway on the SQLite engine, the registry's copy,
# fed every frame the first one acknowledged
GW_CONF=$T/ref.conf
GW_LOG=$T/ref.log
PG_DB=$REF_DB
gw_config "[storage]" "storage_engine = sqlite" "${GEO[@]}"
gw_start
for cert in nimble-01 wowza-01; do
    mapfile -t SEQS < <(sort -un "$PG_STATE/$cert.acked")
    py_checks "$T/clients.py" resend "$cert" "reference gateway, $cert (${#SEQS[@]} frames)" "${SEQS[@]}"
done
gw_stop_check
py_checks - <<'EOF'
import os, sqlite3
import h2client as hc
ok = hc.Checks()
QUERIES = {
    "frames": "SELECT server_id, seq, ts_ms, reported_name, body FROM frames",
    "server_samples": "SELECT * FROM server_samples",
    "stream_paths": "SELECT server_id, vhost, app, instance, stream FROM stream_paths",
    "stream_samples": "SELECT s.server_id, s.seq, p.vhost, p.app, p.instance, p.stream, s.viewers,"
                      " s.bitrate, s.bytes_in, s.bytes_out FROM stream_samples s"
                      " LEFT JOIN stream_paths p ON p.id = s.stream_id",
    "geo_samples": "SELECT * FROM geo_samples",
}
dbs = {k: sqlite3.connect("file:%s?mode=ro" % os.environ[k], uri=True) for k in ("STORE_DB", "REF_DB")}
for table, q in QUERIES.items():
    got = sorted(dbs["STORE_DB"].execute(q).fetchall(), key=repr)
    want = sorted(dbs["REF_DB"].execute(q).fetchall(), key=repr)
    diff = [r for r in got if r not in want][:2] + [r for r in want if r not in got][:2]
    ok(got == want and len(want) > 0, "%s: the store's %d rows are the SQLite engine's %d" %
       (table, len(got), len(want)), [repr(r)[:160] for r in diff])
geo = dbs["REF_DB"].execute("SELECT count(*) FROM geo_samples WHERE cc != '' AND asn != 0").fetchone()[0]
ok(geo > 0, "control: geo_samples has rows with a country and an ASN (%d)" % geo)
EOF

nats_stop_all
finish
