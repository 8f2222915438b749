#!/usr/bin/env bash
# test_store_activity.sh - panelgate-store follows the JetStream engine's
# activity stream (issue 12, docs/STORAGE.md "The activity stream") and
# runs its own retention, on a real 3-node cluster beside a gateway on the
# jetstream engine.  Activity rows are published with jstool as the
# contract lays them out.
#  1. No activity stream yet: the store waits for it quietly; once the
#     stream is there (panelgatectl register makes it with the registry
#     bucket, which the gateway needs to start) it follows it.
#  2. Rows of other actions are skipped; a row breaking the layout is
#     logged once, by its stream sequence, and skipped.
#  3. erase (details.server_id): the server's frames, samples and stream
#     paths leave the store's file, the other server's stay; a later frame
#     of that id (a gateway that has not seen the erase yet) is acknowledged
#     and dropped, logged once.
#  4. purge (details.received_before_ms): the frames received before the
#     cutoff go, the later ones stay.
#  5. kill -9 while a purge row is delivered and cannot be applied (the
#     store's file locked): restarted, it is applied exactly once; a
#     restart applies no row again; every frame is there once.
#  6. retention: retention_days deletes frames older than that (the store
#     under libfaketime two days ahead), with one "purged" line; not the
#     frames younger than it.
#  7. End to end with the writer of the rows: panelgatectl on the cluster
#     (the registry bucket the gateway admits from): its purge and its erase
#     reach the store's file, and the gateway refuses the erased server.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nats.sh"

JSTOOL=${JSTOOL:-$PANELGATE_BUILD_DIR/bin/jstool}
PANELGATE_STORE=${PANELGATE_STORE:-$PANELGATE_BUILD_DIR/bin/panelgate-store}
[[ -x $JSTOOL ]] || fatal "jstool built ($JSTOOL)"
[[ -x $PANELGATE_STORE ]] || fatal "panelgate-store built ($PANELGATE_STORE)"
FT_LIB=$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -1) || true
[[ -n $FT_LIB ]] || fatal "libfaketime not found (apt install faketime; scripts/deps.sh installs it)"
STREAM=PGSACT
PREFIX=pgsact.frames
ASTREAM=PGSACT_ACTIVITY
APREFIX=pgsact.activity
CONSUMER=pgsact-store
STORE_DB=$T/store.db
export STORE_DB T
make_pki
nats_cluster_start 3
JS_KEYS=("servers = $NATS_URLS" "stream = $STREAM" "subject_prefix = $PREFIX" "replicas = 3"
    "consumer = $CONSUMER" "activity_stream = $ASTREAM" "activity_subject_prefix = $APREFIX"
    "connect_timeout_ms = 3000" "publish_timeout_ms = 3000" "ack_wait_ms = 2000")

store_config() { # FILE [STORAGE LINE...]
    local f=$1
    shift
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
        printf '%s\n' "$@"
        echo "[jetstream]"
        printf '%s\n' "${JS_KEYS[@]}"
        echo "[log]"
        echo "log_level = debug"
    } >"$f"
}
store_config "$T/store.conf"

STORE_PID=
STORE_N=0 # the current instance's log is $T/store$STORE_N.log
STORE_ENV=()
slog() { echo "$T/store$STORE_N.log"; }
slog_count() { # PATTERN [FILES...]: matching lines (of the current log by default)
    local pat=$1 n
    shift
    (($# > 0)) || set -- "$(slog)"
    n=$(cat "$@" 2>/dev/null | grep -Ec -- "$pat") || true
    echo "${n:-0}"
}
_slog_at_least() { (($(slog_count "$1") >= $2)); }
store_start() { # [CONF]
    STORE_N=$((STORE_N + 1))
    env "${STORE_ENV[@]}" "$PANELGATE_STORE" --config "${1:-$T/store.conf}" \
        >>"$T/store$STORE_N.out" 2>>"$(slog)" &
    STORE_PID=$!
    BG_PIDS+=("$!")
    wait_until "$PG_TIMEOUT" _slog_at_least '"event":"started"' 1 ||
        { tail -5 "$(slog)"; fatal "store $STORE_N started"; }
    note "store $STORE_N: pid $STORE_PID"
}
store_stop() { # SIGTERM, bounded; sets STORE_RC
    STORE_RC=0
    kill -TERM "$STORE_PID" 2>/dev/null || true
    wait_until "$PG_TIMEOUT" not_alive "$STORE_PID" || kill -KILL "$STORE_PID" 2>/dev/null || true
    wait "$STORE_PID" 2>/dev/null || STORE_RC=$?
}
store_kill() {
    kill -KILL "$STORE_PID"
    wait_until 10 not_alive "$STORE_PID" || fatal "store gone after kill -9"
    wait "$STORE_PID" 2>/dev/null || true
}
q() { sqlite3 -batch -cmd '.timeout 10000' "$STORE_DB" "$1" 2>/dev/null || echo -1; }
frames_of() { q "SELECT count(*) FROM frames WHERE server_id = $1"; }
rows_of() { # ID: frames, server_samples, stream_samples, geo_samples, stream_paths of it
    q "SELECT (SELECT count(*) FROM frames WHERE server_id = $1) || ' ' ||
              (SELECT count(*) FROM server_samples WHERE server_id = $1) || ' ' ||
              (SELECT count(*) FROM stream_samples WHERE server_id = $1) || ' ' ||
              (SELECT count(*) FROM geo_samples WHERE server_id = $1) || ' ' ||
              (SELECT count(*) FROM stream_paths WHERE server_id = $1)"
}
consumer_info() { "$JSTOOL" consumer "$NATS_URLS" "$STREAM" "$CONSUMER" 2>>"$T/jstool.err" || echo error; }
# caught_up ID N: the consumer has nothing pending or unacknowledged, and
# server ID has N frames in the store
caught_up() {
    [[ $(consumer_info) == "pending=0 ack_pending=0 "* ]] && (($(frames_of "$1") == $2))
}
# act SUBJECT_ID JSON: one activity row; sets ASEQ to its stream sequence
act() {
    printf '%s' "$2" >"$T/act.json"
    local out
    out=$("$JSTOOL" pub "$NATS_URLS" "$APREFIX.$1" "$T/act.json" 2>"$T/jstool.err") ||
        fatal "jstool pub: $(cat "$T/jstool.err")"
    ASEQ=${out#stream_seq=}
    note "activity row $ASEQ: $2"
}

# send.py CERT FIRST LAST: frames FIRST..LAST of CERT's sample frame, in
# order, each answered 202
cat >"$T/send.py" <<'EOF'
import sys
import h2client as hc
ok = hc.Checks()
cert, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tmpl = hc.load_frame({"nimble-01": "nimble.json", "wowza-01": "wowza.json"}[cert])
c = hc.connect(cert)
bad = []
for s in range(first, last + 1):
    d = dict(tmpl, seq=s, ts=tmpl["ts"] + s * 1000)
    r = c.post(hc.pack(d))
    if r.status != 202:
        bad.append("%d: %s" % (s, r.status))
c.close()
ok(not bad, "%s seqs %d..%d answered 202" % (cert, first, last), bad[:5])
EOF
send() { py_checks "$T/send.py" "$@"; }

# 1. the store first: the frames stream is made, the activity stream is not
store_start
check "no activity stream: the store says it waits for it" \
    wait_until 10 _slog_at_least '"event":"activity_waiting"' 1
sleep 4.5 # two more tries
check_eq "... once, not at every try" "$(slog_count '"event":"activity_waiting"')" 1
check "... and keeps running" alive "$STORE_PID"
gw_config "[storage]" "storage_engine = jetstream" "retry_after_s = 1" "[jetstream]" "${JS_KEYS[@]}"
# the registry bucket, and with it the activity stream (panelgatectl makes
# both): a gateway on the engine starts only once they are there
kv_register_defaults
check "the store follows the activity stream once it exists" \
    wait_until 15 _slog_at_least '"event":"activity_following"' 1
gw_start
send nimble-01 1 20
send wowza-01 1 20
check "frames are stored" wait_until 30 caught_up "$WOWZA_ID" 20
check_eq "the store's 20 frames of nimble-01, with samples" "$(rows_of "$NIMBLE_ID" | cut -d' ' -f1)" 20
BEFORE=$(rows_of "$NIMBLE_ID")
note "nimble-01 before the erase (frames server_samples stream_samples geo_samples stream_paths): $BEFORE"
read -r -a B <<<"$BEFORE"
check "control: nimble-01 has rows in every derived table" test "${B[1]}" -gt 0 -a "${B[2]}" -gt 0 -a "${B[3]}" -gt 0 -a "${B[4]}" -gt 0
WOWZA_BEFORE=$(rows_of "$WOWZA_ID")
NOW=$(date +%s)

# 2. other actions skipped; a broken row logged once by its sequence
act "$NIMBLE_ID" "{\"at\":$NOW,\"actor\":\"alice\",\"action\":\"revoke\",\"server_id\":$NIMBLE_ID,\"server\":\"nimble-01\",\"details\":null}"
act 0 '{"at":"yesterday","actor":"alice","action":"erase"}'
BROKEN=$ASEQ
act 0 "{\"at\":$NOW,\"actor\":\"alice\",\"action\":\"purge\",\"server_id\":null,\"server\":null,\"details\":{\"frames\":1}}"
BROKEN2=$ASEQ
check "the broken row is logged with its stream sequence" \
    wait_until 10 _slog_at_least "\"event\":\"activity_row_refused\".*message $BROKEN breaks" 1
check "a purge row without received_before_ms too" \
    wait_until 10 _slog_at_least "\"event\":\"activity_row_refused\".*message $BROKEN2 breaks" 1
check_eq "nothing deleted by the skipped and broken rows" "$(rows_of "$NIMBLE_ID") $(rows_of "$WOWZA_ID")" "$BEFORE $WOWZA_BEFORE"

# 3. erase
act 0 "{\"at\":$NOW,\"actor\":\"alice\",\"action\":\"erase\",\"server_id\":null,\"server\":null,\"details\":{\"server\":\"nimble-01\",\"server_id\":$NIMBLE_ID,\"frames\":20,\"pins\":1,\"activity_rows\":1}}"
ERASE=$ASEQ
check "the erase row is applied" wait_until 10 _slog_at_least "\"event\":\"activity_erase_applied\".*row $ERASE:" 1
check_eq "nimble-01's frames, samples and stream paths are gone from the store" "$(rows_of "$NIMBLE_ID")" "0 0 0 0 0"
check_eq "wowza-01's rows stay" "$(rows_of "$WOWZA_ID")" "$WOWZA_BEFORE"
check_eq "the id is remembered as erased" "$(q "SELECT count(*) FROM erased_servers WHERE server_id = $NIMBLE_ID")" 1
# a gateway that has not seen the erase still publishes nimble-01's frames
send nimble-01 21 25
send wowza-01 21 22
check "later frames of the erased id are acknowledged (consumer caught up)" \
    wait_until 30 caught_up "$WOWZA_ID" 22
check_eq "... and not stored" "$(rows_of "$NIMBLE_ID")" "0 0 0 0 0"
check_eq "... logged once" "$(slog_count '"event":"erased_frame_dropped"')" 1

# 4. purge: frames received before the cutoff go
sleep 0.05
CUT=$(now_ms)
sleep 0.05
send wowza-01 23 30
check "the new frames are stored" wait_until 30 caught_up "$WOWZA_ID" 30
OLD=$(q "SELECT count(*) FROM frames WHERE received_ms < $CUT")
check_eq "control: 22 frames received before the cutoff" "$OLD" 22
act 0 "{\"at\":$NOW,\"actor\":\"alice\",\"action\":\"purge\",\"server_id\":null,\"server\":null,\"details\":{\"received_before_ms\":$CUT,\"frames\":22}}"
PURGE1=$ASEQ
check "the purge row is applied" wait_until 10 _slog_at_least "\"event\":\"activity_purge_applied\".*row $PURGE1:" 1
check_eq "frames received before the cutoff are gone" "$(q "SELECT count(*) FROM frames WHERE received_ms < $CUT")" 0
check_eq "the 8 later ones stay (seqs 23..30)" "$(q "SELECT group_concat(seq) FROM (SELECT seq FROM frames ORDER BY seq)")" "23,24,25,26,27,28,29,30"
check_eq "their samples are gone with them" "$(q "SELECT count(*) FROM server_samples WHERE seq < 23")" 0

# 5. kill -9 while a purge row waits for the store's file
send wowza-01 31 34
check "frames 31..34 stored" wait_until 30 caught_up "$WOWZA_ID" 12
sleep 0.05
CUT2=$(now_ms)
sleep 0.05
send wowza-01 35 36
check "frames 35..36 stored" wait_until 30 caught_up "$WOWZA_ID" 14
rm -f "$T/lock.locked" "$T/lock.release"
py_bg "$T/lock.out" "$LIB_DIR/dblock.py" "$STORE_DB" "$T/lock.locked" "$T/lock.release" 60
LOCK_PID=$PY_BG_PID
wait_until "$PG_TIMEOUT" test -e "$T/lock.locked" || fatal "dblock.py took the store's write lock"
act 0 "{\"at\":$NOW,\"actor\":\"alice\",\"action\":\"purge\",\"server_id\":null,\"server\":null,\"details\":{\"received_before_ms\":$CUT2,\"frames\":4}}"
PURGE2=$ASEQ
sleep 2 # the row is delivered; the store waits for the lock
check_eq "the locked store has not applied it" "$(slog_count "activity_purge_applied.*row $PURGE2:")" 0
store_kill
note "store killed (-9) with purge row $PURGE2 delivered, not applied"
touch "$T/lock.release"
py_bg_wait "$LOCK_PID" "$T/lock.out" 30
store_start
check "restarted: it follows the stream after the last row it applied ($BROKEN2 < $PURGE1 < $PURGE2)" \
    wait_until 15 _slog_at_least "\"event\":\"activity_following\".*after sequence $PURGE1\"" 1
check "... and applies the purge row it had not applied" \
    wait_until 10 _slog_at_least "\"event\":\"activity_purge_applied\".*row $PURGE2:" 1
check_eq "frames received before the second cutoff are gone (35, 36 stay)" \
    "$(q "SELECT group_concat(seq) FROM (SELECT seq FROM frames ORDER BY seq)")" "35,36"
sleep 1.5
check_eq "no earlier row applied again" "$(slog_count '"event":"activity_(erase|purge)_applied"')" 1
store_stop
check_eq "SIGTERM: exits 0" "$STORE_RC" 0
store_start
check "a plain restart follows after the last row ($PURGE2)" \
    wait_until 15 _slog_at_least "\"event\":\"activity_following\".*after sequence $PURGE2\"" 1
sleep 1.5
check_eq "... and applies nothing again" "$(slog_count '"event":"activity_(erase|purge)_applied"')" 0
check_eq "each purge is recorded once in the store's activity table" \
    "$(q "SELECT count(*) FROM activity WHERE action = 'purge' AND actor = 'panelgate-store'")" 2
check_eq "each applied once over every run" "$(slog_count "activity_purge_applied.*row ($PURGE1|$PURGE2):" "$T"/store*.log)" 2
check_eq "the erase applied once over every run" "$(slog_count "activity_erase_applied" "$T"/store*.log)" 1
send nimble-01 26 26
send wowza-01 37 38
check "new frames after the restarts are stored (wowza) or dropped (erased nimble)" \
    wait_until 30 caught_up "$WOWZA_ID" 4
check_eq "no frame twice: rows = distinct (server, seq)" \
    "$(q "SELECT count(*) = count(DISTINCT server_id || '.' || seq) FROM frames")" 1
check_eq "the erased id still has nothing" "$(rows_of "$NIMBLE_ID")" "0 0 0 0 0"
store_stop
check_eq "SIGTERM: exits 0" "$STORE_RC" 0
check "the stopped line counts the dropped frames" grep -q '"event":"stopped".*dropped_erased=1 ' "$(slog)"

# 6. retention
store_config "$T/ret3.conf" "retention_days = 3"
STORE_ENV=(LD_PRELOAD="$FT_LIB" FAKETIME="+2d" FAKETIME_DONT_FAKE_MONOTONIC=1)
[[ -n ${ASAN_OPTIONS:-} ]] && STORE_ENV+=(ASAN_OPTIONS="$ASAN_OPTIONS:verify_asan_link_order=0")
store_start "$T/ret3.conf"
sleep 2
check_eq "retention_days = 3, two days on: nothing deleted" "$(frames_of "$WOWZA_ID")" 4
store_stop
store_config "$T/ret1.conf" "retention_days = 1"
store_start "$T/ret1.conf"
check "retention_days = 1, two days on: the purge runs" wait_until 10 _slog_at_least '"event":"purged"' 1
check_eq "... and deletes every frame (all older than a day)" "$(q "SELECT count(*) FROM frames")" 0
check_eq "... and their samples" "$(q "SELECT count(*) FROM server_samples")" 0
check_eq "... recorded as a purge by panelgate-store" \
    "$(q "SELECT count(*) FROM activity WHERE action = 'purge' AND actor = 'panelgate-store'")" 3
store_stop
check_eq "SIGTERM: exits 0" "$STORE_RC" 0
STORE_ENV=()

# 7. panelgatectl's own rows (on the bucket the gateway admits from)
CTL=${PANELGATECTL:-$PANELGATE_BUILD_DIR/bin/panelgatectl}
ctl() { "$CTL" --pki "$PKI" --actor ops --config "$GW_CONF" "$@"; }
check_eq "the bucket's id of wowza-01 is the one the frames carry" \
    "$(ctl --json show wowza-01 | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')" "$WOWZA_ID"
store_start
send wowza-01 100 104
check "frames 100..104 stored" wait_until 30 caught_up "$WOWZA_ID" 5
ctl purge --older-than 0 >"$T/ctl.out" 2>&1 || { cat "$T/ctl.out"; fatal "panelgatectl purge"; }
check "panelgatectl purge: its row is applied by the store" \
    wait_until 15 _slog_at_least '"event":"activity_purge_applied"' 1
check_eq "... which deleted the frames" "$(frames_of "$WOWZA_ID")" 0
send wowza-01 105 106
check "frames 105..106 stored" wait_until 30 caught_up "$WOWZA_ID" 2
ctl erase wowza-01 --yes >"$T/ctl.out" 2>&1 || { cat "$T/ctl.out"; fatal "panelgatectl erase"; }
check "panelgatectl erase: its row is applied by the store" \
    wait_until 15 _slog_at_least "\"event\":\"activity_erase_applied\".*server id $WOWZA_ID " 1
check_eq "... wowza-01 has nothing left in the store" "$(rows_of "$WOWZA_ID")" "0 0 0 0 0"
# the gateway watches the bucket: wowza-01 is cut and refused (a late frame
# of an erased id is step 3's)
encode wowza
gone() { curl_post wowza-01 "$T/wowza.msgpack"; [[ $CURL_CODE != 202 ]]; }
check "the gateway refuses wowza-01 once erased" wait_until 5 gone
store_stop
check_eq "SIGTERM: exits 0" "$STORE_RC" 0

for f in "$T"/store*.log; do
    if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: .*Sanitizer' "$f"; then
        not_ok "$(basename "$f") free of sanitizer reports"
        grep -E -A30 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f" | head -60
    else
        ok "$(basename "$f") free of sanitizer reports"
    fi
done
gw_stop_check
nats_stop_all
finish
