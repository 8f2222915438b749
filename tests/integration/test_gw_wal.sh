#!/usr/bin/env bash
# test_gw_wal.sh - a WAL (or database) file deleted under a running gateway
# is noticed and costs no acknowledged frame (issue 11, Durability).
#
# (a) Two clients stream frames (distinct seqs, 503s resent with the same
#     seq later) and record every seq that got a 202.  Mid-stream the
#     -wal file is deleted.  The gateway logs wal_replaced, goes failing
#     with that reason (storage_failing, panelgate_sink_outages_total),
#     saves the old WAL's frames into the database file, reopens with a
#     new -wal (another inode) and recovers (storage_recovered,
#     panelgate_sink_reopens_total 1, /healthz 200).  The clients keep
#     sending; then SIGKILL.  Every acknowledged seq is in frames (count
#     by seq), integrity_check ok.
# (b) The -shm file deleted: noticed (shm_replaced), reopened, frames
#     acknowledged before and after are all stored.
# (c) The database file itself deleted: the gateway stays failing with
#     reason "database file deleted or replaced" (/healthz 503, frames
#     503) and writes nothing; a valid panelgate file put back at the path
#     is reopened, frames get 202 again and land in that file.
. "$(dirname "$0")/lib.sh"

make_pki
export PG_DB PG_STATE=$T/state
mkdir -p "$PG_STATE"
gw_config "[storage]" "retry_after_s = 1"
gw_start
register_defaults
APORT=$(admin_port)
[[ $APORT =~ ^[0-9]+$ ]] || fatal "admin_listening line with the port (got '$APORT')"

# get PATH -> body in $T/get.body, status in GET_CODE
get() {
    GET_CODE=$(curl -sS --max-time 10 -o "$T/get.body" -w '%{http_code}' \
        "http://127.0.0.1:$APORT$1" 2>"$T/get.err") || GET_CODE=000
}
metric() {
    get /metrics
    awk -v n="$1" '$1 == n { print $2; f = 1 } END { if (!f) print "none" }' "$T/get.body"
}
ino() { stat -c %i "$1" 2>/dev/null || echo none; }

# clients.py TAG: two connections stream frames until $PG_STATE/TAG.stop
# exists; a 202 appends the seq to TAG.<cert>.acked, a 503 puts it back to
# be resent (same seq) a little later.  TAG.acks holds the running count.
cat >"$T/clients.py" <<'EOF'
import os, sys, threading, time
import h2client as hc

tag = sys.argv[1]
ST = os.environ["PG_STATE"]
IN_FLIGHT = 4
template = hc.load_frame("nimble.json")
lock = threading.Lock()
total = [0]
other = []
n503 = [0]


def client(i, cert):
    acked = open("%s/%s.%s.acked" % (ST, tag, cert), "a", buffering=1)
    c = hc.connect(cert)
    base = (hash(tag) % 1000 + 1) * 10000000 + i * 1000000
    k = 0
    retry = []
    inflight = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not os.path.exists("%s/%s.stop" % (ST, tag)):
        while len(inflight) < IN_FLIGHT:
            if retry and retry[0][0] <= time.monotonic():
                seq = retry.pop(0)[1]
            else:
                k += 1
                seq = base + k
            inflight[c.start(hc.pack(dict(template, seq=seq)))] = seq
        c.pump(0.05)
        for sid in list(inflight):
            st = c.streams[sid]
            if not st.done:
                continue
            seq = inflight.pop(sid)
            if st.ended and st.status == 202 and st.headers.get("panelgate-ack-seq") == str(seq):
                acked.write("%d\n" % seq)
                with lock:
                    total[0] += 1
                    tmp = "%s/%s.acks.tmp" % (ST, tag)
                    open(tmp, "w").write("%d\n" % total[0])
                    os.replace(tmp, "%s/%s.acks" % (ST, tag))
            elif st.status == 503:
                with lock:
                    n503[0] += 1
                retry.append((time.monotonic() + 0.5, seq))
            else:
                other.append((seq, st.status))
        time.sleep(0.01)
    c.close()


ts = [threading.Thread(target=client, args=(i, cert))
      for i, cert in enumerate(["nimble-01", "wowza-01"])]
for t in ts:
    t.start()
for t in ts:
    t.join(150)
print("# %s: %d acknowledged, %d answered 503 (resent)" % (tag, total[0], n503[0]))
print("%s - %s: every answer was 202 or 503%s" % ("not ok" if other else "ok", tag,
      ": %r" % other[:5] if other else ""))
EOF

# check.py TAG...: every seq acknowledged in those rounds is in frames.
cat >"$T/check.py" <<'EOF'
import glob, os, sqlite3, sys
import h2client as hc
ok = hc.Checks()
ST = os.environ["PG_STATE"]
db = sqlite3.connect(os.environ["PG_DB"], timeout=10)
ids = dict(db.execute("SELECT name, id FROM servers"))
stored = set(db.execute("SELECT server_id, seq FROM frames"))
for tag in sys.argv[1:]:
    acked = set()
    for p in glob.glob("%s/%s.*.acked" % (ST, tag)):
        cert = os.path.basename(p).split(".")[1]
        acked |= {(ids[cert], int(x)) for x in open(p)}
    missing = sorted(acked - stored)
    print("# %s: %d acknowledged, %d of them stored, %d missing" %
          (tag, len(acked), len(acked) - len(missing), len(missing)))
    ok(acked and not missing, "%s: every frame that got a 202 is in frames" % tag, missing[:10])
ok(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "PRAGMA integrity_check ok")
EOF

acks() {
    local n
    n=$(cat "$PG_STATE/$1.acks" 2>/dev/null) || true
    echo "${n:-0}"
}
# deleted_open: files of the database the gateway still has open although
# they are deleted (ls -l /proc/PID/fd says "(deleted)")
deleted_open() {
    local n
    n=$(ls -l "/proc/$GW_PID/fd" 2>/dev/null | grep -c "pg\.db.*(deleted)") || true
    echo "${n:-0}"
}
acks_at_least() { (($(acks "$1") >= $2)); }

# ---- (a) the WAL deleted mid-stream, then SIGKILL -----------------------------
py_bg "$T/clients.wal.out" "$T/clients.py" wal
cpid=$PY_BG_PID
wait_until "$PG_TIMEOUT" acks_at_least wal 200 || fatal "(a) clients got their first 200 acks"
wal_ino=$(ino "$PG_DB-wal")
check "(a) the gateway's -wal file exists" test "$wal_ino" != none
rm -f "$PG_DB-wal"
n0=$(acks wal)
note "(a) deleted $PG_DB-wal (inode $wal_ino) after $n0 acks"
check "(a) wal_replaced logged" wait_log '"event":"wal_replaced"' 1 10
check "(a) storage_failing logged with the reason" \
    wait_log '"event":"storage_failing".*WAL file .*deleted or replaced' 1 10
check "(a) storage_recovered logged" wait_log '"event":"storage_recovered"' 1 10
check_eq "(a) panelgate_sink_outages_total" "$(metric panelgate_sink_outages_total)" 1
check_eq "(a) panelgate_sink_reopens_total" "$(metric panelgate_sink_reopens_total)" 1
get /healthz
check_eq "(a) /healthz 200 again after the reopen" "$GET_CODE" 200
check "(a) a -wal file at the path again" test -e "$PG_DB-wal"
check_eq "(a) no deleted database file held open any more" "$(deleted_open)" 0
wait_until "$PG_TIMEOUT" acks_at_least wal $((n0 + 300)) || not_ok "(a) 300 more acks after the deletion"
note "(a) $(acks wal) acks before SIGKILL"
kill -KILL "$GW_PID"
rc=0
wait "$GW_PID" 2>/dev/null || rc=$?
GW_PID=
check_eq "(a) gateway killed by SIGKILL mid-stream" "$rc" 137
touch "$PG_STATE/wal.stop"
py_bg_wait "$cpid" "$T/clients.wal.out" 60
check_log_clean
py_checks "$T/check.py" wal

# ---- (b) the -shm file deleted ------------------------------------------------
gw_start
APORT=$(admin_port)
py_bg "$T/clients.shm.out" "$T/clients.py" shm
cpid=$PY_BG_PID
wait_until "$PG_TIMEOUT" acks_at_least shm 200 || fatal "(b) clients got their first 200 acks"
rm -f "$PG_DB-shm"
n0=$(acks shm)
check "(b) shm_replaced logged" wait_log '"event":"shm_replaced"' 1 10
check "(b) storage_recovered logged" wait_log '"event":"storage_recovered"' 2 10
check "(b) a -shm file at the path again" test -e "$PG_DB-shm"
check_eq "(b) no deleted database file held open any more" "$(deleted_open)" 0
wait_until "$PG_TIMEOUT" acks_at_least shm $((n0 + 200)) || not_ok "(b) 200 more acks after the deletion"
touch "$PG_STATE/shm.stop"
py_bg_wait "$cpid" "$T/clients.shm.out" 60
gw_stop_check
py_checks "$T/check.py" wal shm
for r in wal_replaced shm_replaced; do
    check_eq "storage_outage activity row with reason $r" \
        "$(sql "SELECT count(*) FROM activity WHERE action = 'storage_outage' AND details LIKE '%\"reason\":\"$r:%'")" 1
done

# ---- (c) the database file deleted, then a valid one put back -----------------
gw_start
APORT=$(admin_port)
encode nimble
curl_post nimble-01 "$T/nimble.msgpack"
check_eq "(c) a frame before the deletion: 202" "$CURL_CODE" 202
sql ".backup $T/restore.db"
rm -f "$PG_DB"
check "(c) database_replaced logged" wait_log '"event":"database_replaced"' 1 10
check "(c) storage_failing logged with the reason" \
    wait_log '"event":"storage_failing".*database file .*deleted or replaced' 1 10
get /healthz
check_eq "(c) /healthz 503 while the database file is gone" "$GET_CODE" 503
check "(c) ... saying why" grep -q "database file" "$T/get.body"
curl_post nimble-01 "$T/nimble.msgpack"
check_eq "(c) frames get 503 meanwhile" "$CURL_CODE" 503
sleep 1.5
check "(c) no file made at the path while it is gone" test ! -e "$PG_DB"
cp "$T/restore.db" "$T/restore2.db"
mv "$T/restore2.db" "$PG_DB"
check "(c) storage_recovered logged once a valid file is back" \
    wait_log '"event":"storage_recovered"' 3 10
"$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); d["seq"] = 777001; print(json.dumps(d))' \
    "$PANELGATE_TEST_DATA/nimble.json" | "$PANELAGENT" encode >"$T/n2.msgpack" || fatal "(c) encode seq 777001"
ok_202=0
for _ in $(seq 1 20); do
    curl_post nimble-01 "$T/n2.msgpack"
    if [[ $CURL_CODE == 202 ]]; then ok_202=1; break; fi
    sleep 0.5
done
check_eq "(c) a frame after the file is back: 202" "$ok_202" 1
check_eq "(c) ... stored in the file put back" \
    "$(sql "SELECT count(*) FROM frames WHERE seq = 777001")" 1
check_eq "(c) no deleted database file held open any more" "$(deleted_open)" 0
finish
