#!/usr/bin/env bash
# test_sdk_delivery.sh - libpanelagent delivers against a real gateway on
# loopback ($SDK_PROBE drives one panelagent_client):
#  (a) frames land once each under the registered server of the
#      certificate, each acked with its seq; a second run resumes the TLS
#      session;
#  (b) the gateway is restarted while frames flow, once with SIGTERM and
#      once with kill -9: every submitted frame is stored exactly once (the
#      seq sets compared) and none is reported undelivered;
#  (c) the gateway is down at start: frames queue, arrive when it comes up;
#  (d) queue overflow under REJECT_NEW (EAGAIN, counted) and DROP_OLDEST
#      (EDROPPED with the seq, counted), the dropped seqs never stored;
#  (e) storage locked -> 503 with retry-after 2: the frames are kept, not
#      resent before retry-after, and stored once after the lock goes;
#  (f) a seq file keeps seq increasing across probe restarts, even with
#      frames stored by an earlier run;
#  (g) a 400 (the gateway's name limit lowered): EREJECTED with the seq and
#      the problem's type and detail, not resent, not stored.
. "$(dirname "$0")/lib.sh"

SDK_PROBE=${SDK_PROBE:-$PANELGATE_BUILD_DIR/bin/sdk_probe}
[[ -x $SDK_PROBE ]] || fatal "no sdk_probe at $SDK_PROBE"

make_pki
gw_config
gw_start
register_defaults
NIMBLE_ID=$(server_id nimble-01)
WOWZA_ID=$(server_id wowza-01)

# Pins the listener to the port it got, so restarts come back on it.
sed -i "s/^listen = 127.0.0.1:0, \[::1\]:0$/listen = 127.0.0.1:$GW_PORT, [::1]:$GW_PORT6/" "$GW_CONF"
PORT=$GW_PORT PORT6=$GW_PORT6

# probe OUT CERT [ARGS...]: runs sdk_probe in the foreground.
probe() {
    local out=$1 cert=$2
    shift 2
    timeout 120 "$SDK_PROBE" --host 127.0.0.1 --port "$PORT" --name localhost \
        --ca "$PKI/ca.crt" --cert "$PKI/$cert.crt" --key "$PKI/$cert.key" \
        --backoff-initial 100 --backoff-max 1000 "$@" >"$out" 2>&1 || true
}
# probe_bg OUT CERT [ARGS...]: the same in the background; sets PROBE_PID.
probe_bg() {
    local out=$1 cert=$2
    shift 2
    timeout 120 "$SDK_PROBE" --host 127.0.0.1 --port "$PORT" --name localhost \
        --ca "$PKI/ca.crt" --cert "$PKI/$cert.crt" --key "$PKI/$cert.key" \
        --backoff-initial 100 --backoff-max 1000 "$@" >"$out" 2>&1 &
    PROBE_PID=$!
    BG_PIDS+=("$PROBE_PID")
}
probe_wait() {
    wait_until 120 not_alive "$PROBE_PID" || { kill -KILL "$PROBE_PID"; not_ok "probe still running"; }
    wait "$PROBE_PID" 2>/dev/null || true
}

# stat OUT NAME: a counter from the probe's stat line.
stat() { sed -nE "s/^stat .*\b$2=([0-9]+).*/\1/p" "$1" | tail -1; }
undelivered() { sed -nE 's/^close undelivered=([0-9]+)$/\1/p' "$1"; }
# seqs OUT KIND: sorted seqs of the probe's "submit ... rv=PANELAGENT_OK",
# "ack" or "error code=CODE" lines.
submitted() { sed -nE 's/^submit n=[0-9]+ rv=PANELAGENT_OK seq=([0-9]+)$/\1/p' "$1" | sort -n; }
acked() { sed -nE 's/^ack seq=([0-9]+)$/\1/p' "$1" | sort -n; }
errors() { sed -nE "s/^error code=$2 seq=([0-9]+) .*/\1/p" "$1" | sort -n; }
# stored_seqs SERVER_ID: every stored seq of the server, sorted (dupes shown).
stored_seqs() { sql "SELECT seq FROM frames WHERE server_id = $1 ORDER BY seq"; }
count_lines() { grep -c . <<<"$1" || true; }
in_set() { grep -qx "$1" <<<"$2"; }

# ---- (a) delivery --------------------------------------------------------------------
probe "$T/a1.out" nimble-01 --frames 20 --in-flight 4 --run 30000 --until-done
check_eq "(a) client created" "$(head -1 "$T/a1.out")" "new rv=PANELAGENT_OK err="
S=$(submitted "$T/a1.out")
check_eq "(a) 20 frames submitted" "$(count_lines "$S")" 20
check_eq "(a) each one acked with its seq" "$(acked "$T/a1.out")" "$S"
check_eq "(a) stat acked=20" "$(stat "$T/a1.out" acked)" 20
check_eq "(a) stat last_acked_seq = the highest seq" "$(stat "$T/a1.out" last_acked_seq)" "$(tail -1 <<<"$S")"
check_eq "(a) stat queued=0 after the acks" "$(stat "$T/a1.out" queued)" 0
check_eq "(a) one TLS session" "$(stat "$T/a1.out" connects)" 1
check_eq "(a) nothing undelivered at close" "$(undelivered "$T/a1.out")" 0
check_eq "(a) stored once each under nimble-01" "$(stored_seqs "$NIMBLE_ID")" "$S"
check_eq "(a) nothing under wowza-01" "$(sql "SELECT count(*) FROM frames WHERE server_id = $WOWZA_ID")" 0
check_eq "(a) no error reported" "$(grep -c '^error' "$T/a1.out" || true)" 0
n=$(sql "SELECT count(*) FROM frames WHERE server_id = $NIMBLE_ID AND reported_name = 'probe'")
check_eq "(a) the reported name is kept as sent" "$n" 20

probe "$T/a2.out" wowza-01 --frames 3 --kind wowza --run 30000 --until-done
check_eq "(a) wowza-01: its 3 frames stored under wowza-01" \
    "$(stored_seqs "$WOWZA_ID")" "$(submitted "$T/a2.out")"

# resumption: an idle timeout shorter than the interval closes the
# connection between frames; the next connect resumes the TLS session
probe "$T/a3.out" nimble-01 --frames 3 --interval 600 --idle-timeout 100 --run 30000 --until-done
check_eq "(a) idle timeout: 3 frames acked over separate connections" "$(stat "$T/a3.out" acked)" 3
check "(a) ... $(stat "$T/a3.out" connects) connects, $(stat "$T/a3.out" resumed) resumed (>= 1)" \
    test "$(stat "$T/a3.out" resumed)" -ge 1 -a "$(stat "$T/a3.out" connects)" -ge 2

# seqs of a probe run stored for a server (only the range the run used)
stored_range() {
    local lo hi
    lo=$(head -1 <<<"$2")
    hi=$(tail -1 <<<"$2")
    sql "SELECT seq FROM frames WHERE server_id = $1 AND seq BETWEEN $lo AND $hi ORDER BY seq"
}

# gw_kill: SIGKILL, no drain.
gw_kill() {
    kill -KILL "$GW_PID"
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=
}
n_acks() { grep -c '^ack ' "$1" || true; }

# ---- (b) restarts while frames flow --------------------------------------------------------
probe_bg "$T/b.out" nimble-01 --frames 80 --interval 40 --in-flight 4 --run 90000 --until-done \
    --close-timeout 0
_at_least_acks() { (($(n_acks "$1") >= $2)); }
wait_until 30 _at_least_acks "$T/b.out" 10 || fatal "(b) first acks"
gw_stop
check_eq "(b) gateway stopped with SIGTERM while frames flow" "$GW_RC" 0
sleep 0.5
gw_start
wait_until 60 _at_least_acks "$T/b.out" 40 || fatal "(b) acks after the restart"
gw_kill
note "(b) gateway killed with SIGKILL after $(n_acks "$T/b.out") acks"
sleep 0.3
gw_start
probe_wait
S=$(submitted "$T/b.out")
check_eq "(b) 80 frames submitted" "$(count_lines "$S")" 80
check_eq "(b) all acked, each once" "$(acked "$T/b.out")" "$S"
check_eq "(b) stored exactly once each: the stored seqs are the submitted ones" \
    "$(stored_range "$NIMBLE_ID" "$S")" "$S"
check_eq "(b) nothing undelivered" "$(undelivered "$T/b.out")" 0
check "(b) reconnected after both restarts ($(stat "$T/b.out" connects) connects, $(stat "$T/b.out" retries) frames resent)" \
    test "$(stat "$T/b.out" connects)" -ge 3

# ---- (c) gateway down at start ---------------------------------------------------------------
gw_stop
probe_bg "$T/c.out" wowza-01 --kind wowza --frames 5 --run 60000 --until-done
sleep 1.5
check "(c) gateway down: the probe waits with its frames queued" alive "$PROBE_PID"
gw_start
probe_wait
S=$(submitted "$T/c.out")
check_eq "(c) the 5 queued frames are acked once the gateway is up" "$(acked "$T/c.out")" "$S"
check_eq "(c) ... and stored once each" "$(stored_range "$WOWZA_ID" "$S")" "$S"
check "(c) failed attempts counted (connect_failures=$(stat "$T/c.out" connect_failures))" \
    test "$(stat "$T/c.out" connect_failures)" -ge 1
n=$(grep -c '^error code=PANELAGENT_ECONNECT seq=0 ' "$T/c.out" || true)
check "(c) ECONNECT reported ($n times), not once per attempt" test "$n" -ge 1 -a "$n" -lt "$(stat "$T/c.out" connect_failures)" -o "$n" -eq 1

# ---- (d) queue overflow -------------------------------------------------------------------
gw_stop
probe "$T/d1.out" nimble-01 --frames 5 --queue-frames 3 --policy reject --run 300 --close-timeout 0
check_eq "(d) REJECT_NEW: submits 4 and 5 get EAGAIN" \
    "$(sed -nE 's/^submit n=([0-9]+) rv=PANELAGENT_EAGAIN .*/\1/p' "$T/d1.out" | tr '\n' ' ')" "4 5 "
check_eq "(d) REJECT_NEW: rejected_full=2" "$(stat "$T/d1.out" rejected_full)" 2
check_eq "(d) REJECT_NEW: 3 queued" "$(stat "$T/d1.out" queued)" 3
check_eq "(d) REJECT_NEW: the 3 queued reported undelivered at close, with their seqs" \
    "$(errors "$T/d1.out" PANELAGENT_EUNDELIVERED)" "$(submitted "$T/d1.out")"
check_eq "(d) REJECT_NEW: close returns 3" "$(undelivered "$T/d1.out")" 3

probe "$T/d2.out" nimble-01 --frames 5 --queue-frames 3 --policy drop --run 300 --close-timeout 0
S=$(submitted "$T/d2.out")
check_eq "(d) DROP_OLDEST: all 5 submits accepted" "$(count_lines "$S")" 5
check_eq "(d) DROP_OLDEST: dropped_oldest=2" "$(stat "$T/d2.out" dropped_oldest)" 2
check_eq "(d) DROP_OLDEST: the two oldest reported EDROPPED with their seqs" \
    "$(errors "$T/d2.out" PANELAGENT_EDROPPED)" "$(head -2 <<<"$S")"
check_eq "(d) DROP_OLDEST: the three newest undelivered at close" \
    "$(errors "$T/d2.out" PANELAGENT_EUNDELIVERED)" "$(tail -3 <<<"$S")"
gw_start

# ---- (e) 503 with retry-after --------------------------------------------------------------------
gw_stop
gw_config "[storage]" "busy_timeout_ms = 100" "retry_after_s = 2"
sed -i "s/^listen = 127.0.0.1:0, \\[::1\\]:0$/listen = 127.0.0.1:$PORT, [::1]:$PORT6/" "$GW_CONF"
gw_start
py_bg "$T/lock.out" "$LIB_DIR/dblock.py" "$PG_DB" "$T/locked" "$T/release"
LOCK_PID=$PY_BG_PID
wait_until 20 test -e "$T/locked" || fatal "(e) lock the database"
probe_bg "$T/e.out" nimble-01 --frames 3 --in-flight 3 --run 60000 --until-done --log 3
sleep 5
touch "$T/release"
py_bg_wait "$LOCK_PID" "$T/lock.out" 20
probe_wait
S=$(submitted "$T/e.out")
check_eq "(e) after the lock goes, the 3 frames are acked" "$(acked "$T/e.out")" "$S"
check_eq "(e) ... stored once each" "$(stored_range "$NIMBLE_ID" "$S")" "$S"
check "(e) the 503s were seen (retrying after ...)" grep -q 'HTTP 503.*retrying after' "$T/e.out"
check "(e) frames were resent (retries=$(stat "$T/e.out" retries))" test "$(stat "$T/e.out" retries)" -ge 1
# every resend of a frame came >= 2000 ms (retry-after) after its previous send
"$PY" - "$T/e.out" >"$T/e.check" <<'PY'
import re, sys
sends = {}
for line in open(sys.argv[1]):
    m = re.match(r"log t=(\d+) level=\d msg=sending frame (\d+) \(attempt (\d+)\)", line)
    if m:
        sends.setdefault(m.group(2), []).append(int(m.group(1)))
gaps = [b - a for t in sends.values() for a, b in zip(t, t[1:])]
n = sum(len(t) for t in sends.values())
print("ok - retry-after honoured: %d sends, shortest gap between sends of a frame %s ms"
      % (n, min(gaps) if gaps else "-") if gaps and min(gaps) >= 2000 else
      "not ok - resent before retry-after: gaps %s" % gaps)
print("ok - sends bounded by retry-after: %d for 3 frames over ~5 s" % n if n <= 3 * 5 else
      "not ok - %d sends for 3 frames over ~5 s" % n)
PY
py_tally "$T/e.check" 0

# ---- (f) seq file --------------------------------------------------------------------------------
probe "$T/f1.out" nimble-01 --seq-file "$T/seq" --frames 3 --run 30000 --until-done
S1=$(submitted "$T/f1.out")
check_eq "(f) run 1 with a seq file: 3 frames acked" "$(acked "$T/f1.out")" "$S1"
check "(f) the seq file holds a mark above every seq used ($(cat "$T/seq"))" \
    test "$(cat "$T/seq")" -gt "$(tail -1 <<<"$S1")"
# a mark far ahead of the clock (a previous life of this agent): seq
# continues above it, not from the clock
FUTURE=$(($(now_ms) + 100000000000))
echo "$FUTURE" >"$T/seq"
probe "$T/f2.out" nimble-01 --seq-file "$T/seq" --frames 3 --run 30000 --until-done
S2=$(submitted "$T/f2.out")
check "(f) run 2: seqs continue above the stored mark ($(head -1 <<<"$S2") > $FUTURE)" \
    test "$(head -1 <<<"$S2")" -gt "$FUTURE"
check_eq "(f) run 2: acked and stored" "$(stored_range "$NIMBLE_ID" "$S2")" "$S2"
probe "$T/f3.out" nimble-01 --seq-file "$T/seq" --frames 2 --run 30000 --until-done
check "(f) run 3: above run 2" test "$(head -1 <<<"$(submitted "$T/f3.out")")" -gt "$(tail -1 <<<"$S2")"
echo "garbage" >"$T/seq"
probe "$T/f4.out" nimble-01 --seq-file "$T/seq" --frames 1
check "(f) a corrupt seq file: client_new fails with ECONFIG naming the file" \
    grep -q "^new rv=PANELAGENT_ECONFIG err=seq file $T/seq is corrupt" "$T/f4.out"

# ---- (g) a frame the gateway refuses for good ------------------------------------------------
# The gateway's limit on names is lowered below the probe's server name
# ("probe"): 400 frame:too_long, which no resend can fix.
gw_stop
gw_config "[frame]" "max_name_len = 3"
sed -i "s/^listen = 127.0.0.1:0, \\[::1\\]:0$/listen = 127.0.0.1:$PORT, [::1]:$PORT6/" "$GW_CONF"
gw_start
probe "$T/g.out" nimble-01 --frames 2 --run 20000 --until-done
S=$(submitted "$T/g.out")
check_eq "(g) 400: both frames reported EREJECTED with their seqs" \
    "$(errors "$T/g.out" PANELAGENT_EREJECTED)" "$S"
check "(g) ... with the problem's type and detail" \
    grep -q '^error code=PANELAGENT_EREJECTED seq=[0-9]* detail=HTTP 400 urn:panelgate:problem:frame:too_long: server.name' "$T/g.out"
check_eq "(g) stat rejected=2" "$(stat "$T/g.out" rejected)" 2
check_eq "(g) not resent (retries=0)" "$(stat "$T/g.out" retries)" 0
check_eq "(g) gone from the queue: nothing undelivered at close" "$(undelivered "$T/g.out")" 0
check_eq "(g) nothing stored" "$(stored_range "$NIMBLE_ID" "$S")" ""

# the probes' stderr (in their .out files) is free of sanitizer reports
bad=$(grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: .*Sanitizer' "$T"/*.out 2>/dev/null || true)
check_eq "sdk_probe output free of sanitizer reports" "$bad" ""

finish
