#!/usr/bin/env bash
# test_gw_drain_deadline.sh - SIGTERM honours shutdown_timeout_ms even when
# storage cannot commit (issue 11: with the database locked the drain
# waited for every queued batch's busy timeout in turn, far past the
# deadline).  Six frames wait in the sink, one per batch, behind an
# exclusive lock; SIGTERM; the gateway exits within the deadline plus at
# most one busy timeout, says how many items it left unstored
# (drain_deadline), and none of them was acknowledged.
. "$(dirname "$0")/lib.sh"

make_pki
gw_config "[server]" "shutdown_timeout_ms = 1000" \
    "[storage]" "busy_timeout_ms = 3000" "batch_max_frames = 1" "retry_after_s = 1"
gw_start
register_defaults
export PG_STATE=$T PG_DB

cat >"$T/agent.py" <<'EOF_PY'
import os, time
import h2client as hc
ok = hc.Checks()
st = os.environ["PG_STATE"]
c = hc.connect("nimble-01")
sids = [c.start(hc.pack(hc.minimal_frame(100 + i))) for i in range(6)]
open(st + "/sent", "w").close()
acked = []
for i, sid in enumerate(sids):
    try:
        r = c.response(sid, timeout=30)
        if r.status == 202:
            acked.append(100 + i)
    except Exception:
        pass
open(st + "/acked", "w").write(" ".join(str(s) for s in acked))
c.close()
EOF_PY
py_bg "$T/lock.out" "$LIB_DIR/dblock.py" "$PG_DB" "$T/locked" "$T/release"
LOCK_PID=$PY_BG_PID
wait_until 20 test -e "$T/locked" || fatal "exclusive lock on the database"
py_bg "$T/agent.out" "$T/agent.py"
AGENT_PID=$PY_BG_PID
wait_until 20 test -e "$T/sent" || fatal "the agent sent its frames"
sleep 0.5 # the first batch waits for the lock, the others are queued
gw_stop 30
check_eq "SIGTERM with storage locked: exit status 0" "$GW_RC" 0
check "the gateway stopped within shutdown_timeout_ms (1000) + one busy timeout (3000): ${GW_STOP_MS} ms" \
    test "$GW_STOP_MS" -lt 4500
check "drain_deadline logged with what was left unstored" \
    grep -qE '"event":"drain_deadline".*passed with [1-6] items not stored' "$GW_LOG"
py_bg_wait "$AGENT_PID" "$T/agent.out" 40
touch "$T/release"
py_bg_wait "$LOCK_PID" "$T/lock.out" 20
acked=$(cat "$T/acked" 2>/dev/null || true)
for s in $acked; do
    check "frame $s was acknowledged, so it is stored" \
        test "$(sql "SELECT count(*) FROM frames WHERE seq = $s")" -eq 1
done
check "no frame acknowledged while storage was locked (acked: '${acked}')" test -z "$acked"
finish
