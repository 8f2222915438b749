#!/usr/bin/env bash
# test_gw_clock.sh - intervals run on the monotonic clock, so a step of the
# wall clock does not stretch them (issue 11: the failing-storage probe and
# the refused-handshake log bucket used CLOCK_REALTIME; a step back during
# an outage kept answering 503 after storage had recovered, and silenced
# the refusal log).  The gateway runs under libfaketime, whose wall clock
# the test steps back one hour in the middle of a storage outage
# (FAKETIME_TIMESTAMP_FILE; the monotonic clock is left alone).
#   - during the outage frames get 503; the clock steps back; the lock goes;
#     within a few probe intervals a frame is stored (202), and the outage
#     row's duration_ms is the real one (a few seconds, not negative);
#   - a refused handshake after the step is still logged (one before it
#     set the bucket's last refill time).
. "$(dirname "$0")/lib.sh"

FT_LIB=$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -1) || true # threads: the sink writer
[[ -n $FT_LIB ]] || fatal "libfaketime not found (apt install faketime; scripts/deps.sh installs it)"
echo "+0" >"$T/faketime"
GW_ENV=(LD_PRELOAD="$FT_LIB" FAKETIME_TIMESTAMP_FILE="$T/faketime" FAKETIME_NO_CACHE=1
        FAKETIME_DONT_FAKE_MONOTONIC=1)
# a sanitizer build must accept the preload ahead of its runtime
[[ -n ${ASAN_OPTIONS:-} ]] && GW_ENV+=(ASAN_OPTIONS="$ASAN_OPTIONS:verify_asan_link_order=0")

make_pki
gw_config "[storage]" "busy_timeout_ms = 100" "retry_after_s = 1"
gw_start
register_defaults
export PG_STATE=$T PG_DB

# the agent connects before the step: its certificate is younger than an
# hour, and after the step the gateway would find it not yet valid
cat >"$T/agent.py" <<'EOF_PY'
import os, time
import h2client as hc
ok = hc.Checks()
st = os.environ["PG_STATE"]
c = hc.connect("nimble-01")
r = c.post(hc.pack(hc.minimal_frame(1)))
ok(r.status == 202, "before the outage: 202", r)
open(st + "/connected", "w").close()
while not os.path.exists(st + "/locked"):
    time.sleep(0.02)
rs = [c.post(hc.pack(hc.minimal_frame(s))) for s in (2, 3)]
ok(all(r.status == 503 for r in rs), "locked database: frames -> 503", rs)
open(st + "/saw503", "w").close()
while not os.path.exists(st + "/released"):
    time.sleep(0.02)
deadline, r = time.monotonic() + 8, None
while time.monotonic() < deadline:
    r = c.post(hc.pack(hc.minimal_frame(4)))
    if r.status == 202:
        break
    time.sleep(0.2)
ok(r is not None and r.status == 202,
   "wall clock stepped back an hour, lock released: the frame is stored (202) "
   "within 8 s (the probe runs on the monotonic clock)", r)
c.close()
EOF_PY
# one refused handshake before the step: the refusal-log bucket has a
# last refill time from now on
a=$(tls_probe stranger-01)
check "before the step: stranger-01 refused ($(alert_name "$a")) and logged" \
    wait_log '"event":"handshake_refused"' 1 10
py_bg "$T/agent.out" "$T/agent.py"
AGENT_PID=$PY_BG_PID
wait_until 20 test -e "$T/connected" || fatal "the agent connected"
py_bg "$T/lock.out" "$LIB_DIR/dblock.py" "$PG_DB" "$T/locked" "$T/release"
LOCK_PID=$PY_BG_PID
wait_until 20 test -e "$T/saw503" || fatal "503 during the outage"
wait_log '"event":"storage_failing"' 1 5 || not_ok "storage_failing logged"
sleep 1.5                     # the outage lasts a moment
echo "-1h" >"$T/faketime"     # the gateway's wall clock steps back an hour
sleep 0.3
touch "$T/release"
py_bg_wait "$LOCK_PID" "$T/lock.out" 20
touch "$T/released"
py_bg_wait "$AGENT_PID" "$T/agent.out" 30
check "storage_recovered logged" wait_log '"event":"storage_recovered"' 1 5
dur=$(sql "SELECT json_extract(details, '\$.duration_ms') FROM activity
           WHERE action = 'storage_outage' ORDER BY rowid DESC LIMIT 1")
check "the storage_outage row's duration_ms ($dur) is the outage's real length (1.5..15 s)" \
    test -n "$dur" -a "${dur:-0}" -ge 1500 -a "${dur:-0}" -le 15000

# the refusal log keeps logging after the step (its bucket refills on the
# monotonic clock); any refused handshake will do
n=$(log_count '"event":"handshake_refused"')
a=$(tls_probe stranger-01)
check "after the step back, a refused handshake is still logged (alert $(alert_name "$a"))" \
    wait_log '"event":"handshake_refused"' $((n + 1)) 10

gw_stop_check
finish
