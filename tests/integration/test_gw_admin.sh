#!/usr/bin/env bash
# test_gw_admin.sh - the admin listener and the storage alarm:
#  - GET /metrics is Prometheus text (every sample line parses, every
#    family has a TYPE) and its counters move when frames are stored;
#  - GET /healthz is 200 "ok"; while another process holds an exclusive
#    lock on the database (storage failing) it is 503 with the reason,
#    panelgate_sink_failing is 1, and after the lock is gone and a frame
#    got through it is 200 again;
#  - the alarm: one "storage_failing" line at level error and one
#    "storage_recovered" at info for the outage, and one "storage_outage"
#    row in the activity log;
#  - a frame the database refuses on its own (a trigger) is answered 500
#    storage_rejected without retry-after and counted, the frames around it
#    are stored, and storage is not failing;
#  - no viewer IP in /metrics; other paths 404, other methods 501;
#  - [admin] listen = (empty) turns the listener off.
. "$(dirname "$0")/lib.sh"

make_pki
export PG_DB PG_STATE=$T/state
mkdir -p "$PG_STATE"
gw_config "[storage]" "busy_timeout_ms = 100" "retry_after_s = 1"
gw_start
register_defaults
APORT=$(admin_port)
[[ $APORT =~ ^[0-9]+$ ]] || fatal "admin_listening line with the port (got '$APORT')"
check "the admin listener is on 127.0.0.1 only" grep -q '"event":"admin_listening".*"msg":"127.0.0.1:' "$GW_LOG"
export APORT

# get PATH -> body in $T/get.body, status in GET_CODE
get() {
    GET_CODE=$(curl -sS --max-time 10 -o "$T/get.body" -w '%{http_code}' "http://127.0.0.1:$APORT$1" \
        "${@:2}" 2>"$T/get.err") || GET_CODE=000
}

cat >"$T/prom.py" <<'EOF'
"""prom.py: parse Prometheus text from a file; helpers for the checks."""
import re, sys
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"'
                  r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*\})? (-?[0-9.eE+]+|NaN|[+-]Inf)$')


def parse(path):
    """{name{labels}: value}; raises on any line that does not parse."""
    out, types = {}, {}
    for ln in open(path).read().splitlines():
        if ln.startswith("# TYPE "):
            _, _, name, typ = ln.split(" ", 3)
            types[name] = typ
            continue
        if ln.startswith("#") or not ln:
            continue
        m = LINE.match(ln)
        if not m:
            raise ValueError("bad line: %r" % ln)
        name = m.group(1)
        for sfx in ("_bucket", "_sum", "_count"):  # a histogram's samples
            if name not in types and name.endswith(sfx) and \
                    types.get(name[:-len(sfx)]) == "histogram":
                name = name[:-len(sfx)]
        if name not in types:
            raise ValueError("no TYPE before %r" % ln)
        out[m.group(1) + (m.group(2) or "")] = float(m.group(4))
    return out
EOF
export PYTHONPATH=$T:$PYTHONPATH

# ---- /metrics before and after frames ----------------------------------------
get /metrics
check_eq "GET /metrics -> 200" "$GET_CODE" 200
cp "$T/get.body" "$T/m0.txt"
check "content-type is the Prometheus text format" \
    bash -c "curl -sSI --max-time 10 http://127.0.0.1:$APORT/metrics | tr -d '\r' | grep -qi '^content-type: text/plain; version=0.0.4'"
get /healthz
check_eq "GET /healthz -> 200" "$GET_CODE" 200
check_eq "GET /healthz body" "$(cat "$T/get.body")" ok

py_checks - <<'EOF'
import h2client as hc
ok = hc.Checks()
c = hc.connect("nimble-01")
for seq in (1, 2, 3):
    f = hc.minimal_frame(seq, conns=[("203.0.113.99", 1, 2), ("198.51.100.42", 3, 4),
                                     ("2001:db8:77::9", 5, 6)])
    r = c.post(hc.pack(f))
    ok(r.status == 202, "frame %d -> 202" % seq, r)
r = c.post(hc.pack(hc.minimal_frame(3)))
ok(r.status == 202, "frame 3 again -> 202 (duplicate)", r)
r = c.request(b"", path="/nope")
ok(r.status == 404, "a request to another path -> 404", r)
c.close()
EOF
get /metrics
cp "$T/get.body" "$T/m1.txt"
py_checks - "$T/m0.txt" "$T/m1.txt" <<'EOF'
import sys
import h2client as hc
from prom import parse
ok = hc.Checks()
try:
    a, b = parse(sys.argv[1]), parse(sys.argv[2])
    ok(True, "/metrics parses as Prometheus text (%d samples)" % len(b))
except ValueError as e:
    ok(False, "/metrics parses as Prometheus text", e)
    raise SystemExit(1)
d = lambda k: b.get(k, -1) - a.get(k, -1)
ok(d("panelgate_sink_frames_stored_total") == 3, "sink_frames_stored_total +3", d("panelgate_sink_frames_stored_total"))
ok(d("panelgate_frames_accepted_total") == 4, "frames_accepted_total +4", d("panelgate_frames_accepted_total"))
ok(d("panelgate_frames_duplicate_total") == 1, "frames_duplicate_total +1")
ok(d('panelgate_responses_total{status="202"}') == 4, 'responses_total{status="202"} +4')
ok(d('panelgate_responses_total{status="404"}') == 1, 'responses_total{status="404"} +1')
ok(b["panelgate_sink_failing"] == 0 and b["panelgate_sink_queue_max_frames"] == 4096,
   "sink_failing 0, queue_max_frames 4096")
ok(b['panelgate_handshakes_total{resumed="false"}'] >= 1 and b["panelgate_connections_accepted_total"] >= 1,
   "handshakes and connections counted")
ok(b["panelgate_registry_pins"] == 2, "registry_pins 2")
# frames per commit: a histogram whose buckets only grow, +Inf = _count,
# and whose _sum counts the 4 frames (the duplicate too) of the 4 batches
# or fewer they went in (activity rows may share them)
h = "panelgate_sink_batch_frames"
les = ["1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024", "+Inf"]
bk = [b.get('%s_bucket{le="%s"}' % (h, le), -1) for le in les]
ok(all(x >= 0 for x in bk) and bk == sorted(bk), "batch_frames buckets present, cumulative", bk)
ok(bk[-1] == b.get(h + "_count", -2), "batch_frames +Inf bucket = _count")
ok(d(h + "_sum") >= 4 and 1 <= d(h + "_count") <= d(h + "_sum"),
   "batch_frames: the frames in _sum, batches in _count", (d(h + "_sum"), d(h + "_count")))
EOF

# ---- storage failing: /healthz 503, then recovery --------------------------------
py_bg "$T/lock.out" "$LIB_DIR/dblock.py" "$PG_DB" "$PG_STATE/locked" "$PG_STATE/release"
LOCK_PID=$PY_BG_PID
wait_until 20 test -e "$PG_STATE/locked" || fatal "exclusive lock on the database"
py_checks - <<'EOF'
import h2client as hc
ok = hc.Checks()
c = hc.connect("nimble-01")
rs = [c.post(hc.pack(hc.minimal_frame(s))) for s in (10, 11, 12)]
ok(all(r.status == 503 for r in rs), "locked database: frames -> 503", rs)
c.close()
EOF
wait_log '"event":"storage_failing"' 1 5 || not_ok "storage_failing logged"
get /healthz
check_eq "storage failing: GET /healthz -> 503" "$GET_CODE" 503
check "storage failing: /healthz says why" grep -q '^storage failing: database is locked' "$T/get.body"
get /metrics
check "storage failing: panelgate_sink_failing 1" grep -qx 'panelgate_sink_failing 1' "$T/get.body"
check "storage failing: panelgate_sink_failing_since_seconds set" \
    grep -qE '^panelgate_sink_failing_since_seconds [1-9][0-9]{9}$' "$T/get.body"
# more refused frames during the same outage: still one alarm
py_checks - <<'EOF'
import h2client as hc
ok = hc.Checks()
c = hc.connect("nimble-01")
rs = [c.post(hc.pack(hc.minimal_frame(s))) for s in (13, 14)]
ok(all(r.status == 503 for r in rs), "still locked: frames -> 503", rs)
c.close()
EOF
sleep 1.2 # one probe per second goes to storage and fails again
py_checks - <<'EOF'
import h2client as hc
ok = hc.Checks()
c = hc.connect("nimble-01")
r = c.post(hc.pack(hc.minimal_frame(15)))
ok(r.status == 503, "the probe fails too -> 503", r)
c.close()
EOF
touch "$PG_STATE/release"
py_bg_wait "$LOCK_PID" "$T/lock.out" 20
py_checks - <<'EOF'
import time
import h2client as hc
ok = hc.Checks()
c = hc.connect("nimble-01")
deadline, r = time.monotonic() + 10, None
while time.monotonic() < deadline:
    r = c.post(hc.pack(hc.minimal_frame(10)))
    if r.status == 202:
        break
    time.sleep(0.3)
ok(r is not None and r.status == 202, "lock released: the frame is stored (202)", r)
c.close()
EOF
wait_log '"event":"storage_recovered"' 1 5 || not_ok "storage_recovered logged"
get /healthz
check_eq "recovered: GET /healthz -> 200" "$GET_CODE" 200
get /metrics
cp "$T/get.body" "$T/m2.txt"
check "recovered: panelgate_sink_failing 0" grep -qx 'panelgate_sink_failing 0' "$T/m2.txt"
check "recovered: panelgate_sink_outages_total 1" grep -qx 'panelgate_sink_outages_total 1' "$T/m2.txt"
check_eq "the alarm: one storage_failing line, at level error" \
    "$(log_count '"level":"error","event":"storage_failing"') $(log_count '"event":"storage_failing"')" "1 1"
check_eq "the alarm: one storage_recovered line, at level info" \
    "$(log_count '"level":"info","event":"storage_recovered"') $(log_count '"event":"storage_recovered"')" "1 1"
outage() { [[ $(sql "SELECT count(*) FROM activity WHERE action = 'storage_outage'") -ge 1 ]]; }
wait_until 5 outage || true
check_eq "activity log: one storage_outage row by the gateway" \
    "$(sql "SELECT count(*) || ' ' || min(actor) FROM activity WHERE action = 'storage_outage'")" "1 gateway"
check "activity log: the outage counts its 503s and failed batches, names the reason" \
    test "$(sql "SELECT json_extract(details, '\$.requests_503') >= 5 AND json_extract(details, '\$.failed_batches') >= 1
                 AND json_extract(details, '\$.reason') LIKE 'database is locked%'
                 AND json_extract(details, '\$.duration_ms') > 0 FROM activity WHERE action = 'storage_outage'")" = 1

# ---- one frame the database refuses: 500, storage not failing ---------------------
sql "CREATE TRIGGER bad_row BEFORE INSERT ON frames WHEN NEW.seq = 21
     BEGIN SELECT RAISE(ABORT, 'test: bad row'); END"
py_checks - <<'EOF'
import h2client as hc
ok = hc.Checks()
c = hc.connect("nimble-01")
rs = [c.post(hc.pack(hc.minimal_frame(s))) for s in (20, 21, 22)]
ok(rs[0].status == 202 and rs[2].status == 202, "the frames around a refused one -> 202", rs)
ok(hc.problem_ok(rs[1], 500, "storage_rejected") and "retry-after" not in rs[1].headers,
   "the refused frame -> 500 storage_rejected, no retry-after", rs[1])
c.close()
EOF
sql "DROP TRIGGER bad_row"
get /healthz
check_eq "a refused frame: GET /healthz -> 200" "$GET_CODE" 200
get /metrics
cp "$T/get.body" "$T/m3.txt"
py_checks - "$T/m2.txt" "$T/m3.txt" <<'EOF'
import sys
import h2client as hc
from prom import parse
ok = hc.Checks()
a, b = parse(sys.argv[1]), parse(sys.argv[2])
d = lambda k: b.get(k, -1) - a.get(k, -1)
ok(d("panelgate_frames_failed_total") == 1, "frames_failed_total +1", d("panelgate_frames_failed_total"))
ok(d('panelgate_responses_total{status="500"}') == 1, 'responses_total{status="500"} +1')
ok(d("panelgate_frames_accepted_total") == 2, "frames_accepted_total +2 (not the refused one)")
ok(d("panelgate_sink_items_rejected_total") == 1, "sink_items_rejected_total +1")
ok(d("panelgate_sink_items_failed_total") == 0 and d("panelgate_sink_batch_failures_total") == 0
   and b["panelgate_sink_failing"] == 0, "no failed batch, storage not failing")
EOF
check_eq "a refused frame: one sink_item_failed line" "$(log_count '"event":"sink_item_failed"')" 1
check_eq "a refused frame: not stored, its neighbours are" \
    "$(sql "SELECT group_concat(seq) FROM (SELECT seq FROM frames WHERE seq IN (20, 21, 22) ORDER BY seq)")" "20,22"

# ---- no viewer IP in /metrics; methods and paths ---------------------------------
if grep -qF -e 203.0.113.99 -e 198.51.100.42 -e 2001:db8:77::9 -e 2001:db8:77:0:0:0:0:9 "$T/m1.txt" "$T/m2.txt"; then
    not_ok "no viewer IP in /metrics"
else
    ok "no viewer IP in /metrics"
fi
check "no viewer IP in the gateway log" bash -c "! grep -qF -e 203.0.113.99 -e 198.51.100.42 -e 2001:db8:77::9 '$GW_LOG'"
get /other
check_eq "GET /other -> 404" "$GET_CODE" 404
get /metrics -X POST
check_eq "POST /metrics -> 501 (only GET and HEAD)" "$GET_CODE" 501
gw_stop_check

# ---- [admin] listen = (empty): off ------------------------------------------------
gw_config "[admin]" "listen ="
n0=$(log_count '"event":"admin_listening"')
gw_start
check_eq "empty [admin] listen: no admin listener" "$(log_count '"event":"admin_listening"')" "$n0"
gw_stop_check
finish
