#!/usr/bin/env bash
# test_sdk_failover.sh - an agent given two gateways (PANELAGENT_OPT_GATEWAYS,
# issue 12): gateways A and B on one 3-node JetStream cluster (one stream)
# and its registry bucket; the agent is sdk_probe (libpanelagent).
#  1. The agent sends frames continuously, to A first; A is stopped, then
#     killed (-9) with frames in flight.  The agent carries on with B: every frame it submitted is
#     acknowledged, the frames A had in flight went to B with their seqs,
#     and each seq is in the stream exactly once (read back with jstool).
#  2. A is down when the agent starts: it goes to B at once (a backoff of
#     BACKOFF_INITIAL_MS = 10 minutes would show), one connect failure.
# The stream's duplicate window is what keeps a frame A published but never
# answered once when B publishes it again (same Nats-Msg-Id).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nats.sh"

SDK_PROBE=${SDK_PROBE:-$PANELGATE_BUILD_DIR/bin/sdk_probe}
[[ -x $SDK_PROBE ]] || fatal "no sdk_probe at $SDK_PROBE"
JSTOOL=${JSTOOL:-$PANELGATE_BUILD_DIR/bin/jstool}
[[ -x $JSTOOL ]] || fatal "jstool built ($JSTOOL)"
STREAM=PGFAIL

make_pki
nats_cluster_start 3
js_lines=("[storage]" "storage_engine = jetstream" "retry_after_s = 1" "[jetstream]"
    "servers = $NATS_URLS" "stream = $STREAM" "subject_prefix = pgfail.frames" "replicas = 3"
    "publish_timeout_ms = 3000" "connect_timeout_ms = 3000")

# gateway A; the registry: the cluster's bucket, which both gateways watch
GW_CONF=$T/a.conf GW_LOG=$T/a.log
gw_config "${js_lines[@]}"
kv_register_defaults
gw_start
check "A: the stream is ready" wait_log '"event":"jetstream_ready"' 1 10
A_PID=$GW_PID A_PORT=$GW_PORT
BG_PIDS+=("$A_PID")
sed -i "s/^listen = 127.0.0.1:0, \[::1\]:0$/listen = 127.0.0.1:$A_PORT, [::1]:$GW_PORT6/" "$T/a.conf"

# gateway B
GW_CONF=$T/b.conf GW_LOG=$T/b.log
gw_config "${js_lines[@]}"
sed -i "s|^sqlite_path = .*|sqlite_path = $T/b.db|" "$T/b.conf"
gw_start
check "B: the stream is ready" wait_log '"event":"jetstream_ready"' 1 10
B_PID=$GW_PID B_PORT=$GW_PORT
BG_PIDS+=("$B_PID")
note "A pid $A_PID port $A_PORT, B pid $B_PID port $B_PORT"

# probe_bg OUT [ARGS...]: the agent (nimble-01) on the list "A,B".
probe_bg() {
    local out=$1
    shift
    timeout 150 "$SDK_PROBE" --gateways "127.0.0.1:$A_PORT,127.0.0.1:$B_PORT" --name localhost \
        --ca "$PKI/ca.crt" --cert "$PKI/nimble-01.crt" --key "$PKI/nimble-01.key" \
        --server nimble-01 --log 2 "$@" >"$out" 2>&1 &
    PROBE_PID=$!
    BG_PIDS+=("$PROBE_PID")
}
acks() { local n; n=$(grep -c '^ack seq=' "$1" 2>/dev/null) || true; echo "${n:-0}"; }
acks_at_least() { (($(acks "$1") >= $2)); }

# ---- 1. A killed -9 mid-stream --------------------------------------------------
probe_bg "$T/run1.out" --frames 400 --interval 15 --in-flight 8 --until-done --run 120000 \
    --backoff-initial 200 --backoff-max 2000 --request-timeout 5000 --close-timeout 10000
check "the agent delivers through A (50 acks)" wait_until 30 acks_at_least "$T/run1.out" 50
# stopped first, so that frames are in flight on A (sent, never answered)
# when it dies: they must reach B with their seqs (RETRIES counts them)
kill -STOP "$A_PID"
sleep 0.5
kill -KILL "$A_PID"
wait "$A_PID" 2>/dev/null || true
at_kill=$(acks "$T/run1.out")
note "A killed after $at_kill acks"
wait "$PROBE_PID" || true
out=$T/run1.out
check "the agent connected to A first" grep -q "msg=connected to 127.0.0.1 port $A_PORT" "$out"
check "then to B" grep -q "msg=connected to 127.0.0.1 port $B_PORT" "$out"
check "frames were still unsent when A died (the kill was mid-stream)" \
    test "$at_kill" -lt 400
check "close: nothing undelivered" grep -q '^close undelivered=0$' "$out"
check "the agent reported no frame error (EREJECTED, EDROPPED, EUNDELIVERED)" \
    bash -c "! grep -E '^error code=\\S+ seq=[1-9]' '$out'"

"$JSTOOL" dump "$NATS_URLS" "$STREAM" >"$T/dump1.txt" 2>"$T/dump1.err" ||
    fatal "jstool dump ($(cat "$T/dump1.err"))"
py_checks - "$out" "$T/dump1.txt" "$NIMBLE_ID" <<'EOF'
import re, sys
import h2client as hc
ok = hc.Checks()
out, dump, sid = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(out).read()
submitted = re.findall(r"^submit n=\d+ rv=PANELAGENT_OK seq=(\d+)$", text, re.M)
acked = re.findall(r"^ack seq=(\d+)$", text, re.M)
ok(len(submitted) == 400, "400 frames submitted", len(submitted))
ok(len(acked) == len(set(acked)), "each seq acknowledged once (%d acks)" % len(acked))
ok(set(acked) == set(submitted), "every submitted frame acknowledged",
   sorted(set(submitted) - set(acked))[:5])
st = re.search(r"^stat .*retries=(\d+) connects=(\d+)", text, re.M)
ok(st is not None and int(st.group(2)) >= 2, "two connections or more (A, then B)",
   st.group(0) if st else text[-300:])
ok(st is not None and int(st.group(1)) > 0, "the frames in flight on A were resent (retries=%s)"
   % (st.group(1) if st else "?"))
rows = [l.split() for l in open(dump).read().split("\n")[1:] if l]
seqs = [r[4] for r in rows if r[3] == sid]
count = {}
for s in seqs:
    count[s] = count.get(s, 0) + 1
ok(not [s for s, n in count.items() if n > 1], "no seq twice in the stream",
   [s for s, n in count.items() if n > 1][:5])
ok(set(count) == set(submitted), "the stream holds every submitted seq, nothing else "
   "(%d messages)" % len(seqs), (sorted(set(submitted) - set(count))[:5],
                                 sorted(set(count) - set(submitted))[:5]))
EOF

# ---- 2. A down at start -----------------------------------------------------------
# A 10-minute backoff: only an immediate move to the next candidate
# delivers within the run.
probe_bg "$T/run2.out" --frames 5 --until-done --run 60000 \
    --backoff-initial 600000 --backoff-max 600000 --close-timeout 5000
wait "$PROBE_PID" || true
out=$T/run2.out
check "A down: the agent tried A" grep -q "cannot connect to 127.0.0.1 port $A_PORT" "$out"
check "A down: it connected to B" grep -q "msg=connected to 127.0.0.1 port $B_PORT" "$out"
check_eq "A down: all 5 frames acknowledged (no backoff before B)" "$(acks "$out")" 5
check "A down: one connect failure, one connection" \
    grep -Eq '^stat .* connects=1 connect_failures=1 ' "$out"
check "A down: ECONNECT reported once" \
    test "$(grep -c '^error code=PANELAGENT_ECONNECT seq=0' "$out")" -eq 1

GW_PID=$B_PID GW_LOG=$T/b.log
gw_stop_check
GW_LOG=$T/a.log check_log_clean
nats_stop_all
finish
