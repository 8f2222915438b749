#!/usr/bin/env bash
# test_gw_backpressure.sh - backpressure instead of unbounded buffers or
# crashes (issue 6, Storage):
#  (a) storage outage: another process holds an exclusive lock on the
#      database and busy_timeout_ms is small: frames get 503 problem+json
#      storage_unavailable with retry-after, the gateway logs sink_failing
#      and keeps running; once the lock is released the same frames (same
#      seqs) get 202 and are stored once.
#  (b) queue full: queue_max_frames = 4 and a busy_timeout_ms long enough
#      that the writer thread waits on the lock: of more concurrent frames
#      than the queue holds, the extra ones get 503 queue_full with
#      retry-after at once while the others wait; after the lock is
#      released the waiting ones get 202, nothing acknowledged is missing
#      and the refused ones get 202 when resent.
. "$(dirname "$0")/lib.sh"

RETRY_S=2
make_pki
export PG_DB PG_STATE=$T/state RETRY_S
export PYTHONPATH=$T:$PYTHONPATH # bp.py, for the scripts on stdin
mkdir -p "$PG_STATE"

# lock_take NAME / lock_release NAME
lock_take() {
    # dblock.py holds BEGIN EXCLUSIVE on $PG_DB until NAME.release appears
    py_bg "$T/lock.$1.out" "$LIB_DIR/dblock.py" "$PG_DB" "$PG_STATE/$1.locked" \
        "$PG_STATE/$1.release" 40
    LOCK_PID=$PY_BG_PID
    wait_until 20 test -e "$PG_STATE/$1.locked" || fatal "lock $1: BEGIN EXCLUSIVE on the database"
}
lock_release() {
    touch "$PG_STATE/$1.release"
    py_bg_wait "$LOCK_PID" "$T/lock.$1.out" 20
}

# common helpers for the python parts
cat >"$T/bp.py" <<'EOF'
import os
import h2client as hc
template = hc.load_frame("nimble.json")
RETRY = os.environ["RETRY_S"]


def body(seq):
    return hc.pack(dict(template, seq=seq))


def is_503(r, ptype):
    return hc.problem_ok(r, 503, ptype) and r.headers.get("retry-after") == RETRY


def stored(seqs):
    import sqlite3
    db = sqlite3.connect(os.environ["PG_DB"], timeout=10)
    sid = db.execute("SELECT id FROM servers WHERE name = 'nimble-01'").fetchone()[0]
    got = {}
    for (s,) in db.execute("SELECT seq FROM frames WHERE server_id = ?", (sid,)):
        if s in seqs:
            got[s] = got.get(s, 0) + 1
    return got, db.execute("PRAGMA integrity_check").fetchone()[0]
EOF

# ---- (a) storage outage ------------------------------------------------------
gw_config "[storage]" "busy_timeout_ms = 100" "retry_after_s = $RETRY_S"
gw_start
register_defaults
lock_take a
py_checks - <<'EOF'
import time
import h2client as hc
from bp import body, is_503
ok = hc.Checks()
c = hc.connect("nimble-01")
rs = [c.post(body(s)) for s in (1, 2, 3)]
ok(all(is_503(r, "storage_unavailable") for r in rs),
   "(a) locked database: frames get 503 storage_unavailable problem+json, retry-after %s"
   % rs[0].headers.get("retry-after"), rs)
ok(c.ping(5), "(a) the connection still answers")
c.close()
EOF
check "(a) gateway still running during the outage" alive "$GW_PID"
check "(a) log: sink_failing warning" wait_log '"event":"sink_failing"' 1 5
lock_release a
py_checks - <<'EOF'
import time
import h2client as hc
from bp import body, is_503, stored, RETRY
ok = hc.Checks()
c = hc.connect("nimble-01")
# an agent retries after retry-after: give the gateway a few rounds of it
deadline = time.monotonic() + 4 * int(RETRY) + 2
pending, answers = {1, 2, 3}, {}
while pending and time.monotonic() < deadline:
    for s in sorted(pending):
        r = answers[s] = c.post(body(s))
        if r.status == 202 and r.headers.get("panelgate-ack-seq") == str(s):
            pending.discard(s)
    if pending:
        time.sleep(0.5)
ok(not pending, "(a) lock released: the same seqs (1, 2, 3) get 202 within %ss" % (4 * int(RETRY) + 2),
   [(s, answers[s].status, answers[s].body[:90]) for s in sorted(pending)])
got, integ = stored({1, 2, 3})
ok(got == {1: 1, 2: 1, 3: 1}, "(a) ... and are stored exactly once", got)
ok(integ == "ok", "(a) PRAGMA integrity_check ok")
c.close()
EOF
check "(a) log: sink_recovered" wait_log '"event":"sink_recovered"' 1 2
gw_stop_check

# ---- (b) queue full ----------------------------------------------------------
QMAX=4
NSEND=16
gw_config "[storage]" "busy_timeout_ms = 8000" "queue_max_frames = $QMAX" \
    "batch_max_frames = 2" "retry_after_s = $RETRY_S"
gw_start
lock_take b
rss0=$(awk '/^VmRSS/ { print $2 }' "/proc/$GW_PID/status")
export QMAX NSEND
nfail0=$(log_count '"event":"sink_failing"')
cat >"$T/b.py" <<'EOF'
import os, time
import h2client as hc
from bp import body, is_503, stored
ok = hc.Checks()
QMAX, NSEND, ST = int(os.environ["QMAX"]), int(os.environ["NSEND"]), os.environ["PG_STATE"]
seqs = list(range(1001, 1001 + NSEND))
conns = [hc.connect("nimble-01") for _ in range(2)]
sids = {}
for j, s in enumerate(seqs):
    c = conns[j % 2]
    sids[s] = (c, c.start(body(s)))
# the refused ones are answered at once; the queued ones wait for the lock
deadline = time.monotonic() + 5
def answered():
    return sum(1 for c, sid in sids.values() if c.streams[sid].done)
while answered() < NSEND - QMAX and time.monotonic() < deadline:
    for c in conns:
        c.pump(0.05)
early = {s: hc.Response(c.streams[sid]) for s, (c, sid) in sids.items() if c.streams[sid].done}
full = sorted(s for s, r in early.items() if is_503(r, "queue_full"))
ok(len(full) == NSEND - QMAX,
   "(b) %d of %d concurrent frames get 503 queue_full problem+json with retry-after at once (queue_max_frames %d)"
   % (len(full), NSEND, QMAX), [(s, r.status, r.body[:80]) for s, r in early.items()][:6])
ok(len(early) == len(full), "(b) ... and nothing else is answered while the writer waits",
   [(s, r.status) for s, r in early.items() if s not in full])
waiting = [s for s in seqs if s not in early]
open(ST + "/b.release", "w").close()          # the test's lock holder lets go
for c, sid in sids.values():
    c.wait(lambda: c.streams[sid].done, 20)
late = {s: hc.Response(sids[s][0].streams[sids[s][1]]) for s in waiting}
ok(len(waiting) == QMAX and all(r.status == 202 for r in late.values()),
   "(b) lock released: the %d waiting frames get 202" % len(waiting),
   [(s, r.status, r.body[:80]) for s, r in late.items()])
acked = {s for s, r in late.items() if r.status == 202}
got, integ = stored(set(seqs))
ok(all(got.get(s) == 1 for s in acked), "(b) every acknowledged frame is stored once", got)
ok(set(got) == acked, "(b) nothing refused is stored", sorted(set(got) - acked))
again = {s: conns[0].post(body(s)) for s in full}
ok(all(r.status == 202 for r in again.values()), "(b) the refused frames get 202 when resent",
   [(s, r.status, r.body[:80]) for s, r in again.items() if r.status != 202][:5])
got, integ = stored(set(seqs))
ok(got == {s: 1 for s in seqs}, "(b) all %d seqs stored exactly once" % NSEND, got)
ok(integ == "ok", "(b) PRAGMA integrity_check ok")
for c in conns:
    c.close()
EOF
py_bg "$T/b.out" "$T/b.py"
bpid=$PY_BG_PID
# the python part creates b.release itself once it saw the 503s
wait_until 20 test -e "$PG_STATE/b.release" || touch "$PG_STATE/b.release"
lock_release b
py_bg_wait "$bpid" "$T/b.out" 30
check "(b) gateway still running after the queue was full" alive "$GW_PID"
rss1=$(awk '/^VmRSS/ { print $2 }' "/proc/$GW_PID/status" 2>/dev/null || echo 0)
note "(b) gateway RSS ${rss0} kB before, ${rss1} kB after"
check_eq "(b) the writer waited for the lock without failing (no new sink_failing)" \
    "$(log_count '"event":"sink_failing"')" "$nfail0"
gw_stop_check
finish
