#!/usr/bin/env bash
# test_bench_loadgen.sh - panelgate-bench (bench/panelgate_bench.c, what
# bench/run_engines.sh and bench/run_peers.sh measure with) against a real
# gateway for a few seconds, so the benchmark cannot rot unnoticed.  No
# speed is asserted, only counts and the report's parsing:
#  1. as fast as acks allow, 2 agents: it exits 0 and prints one report
#     line whose every field the scripts read is there with a number;
#     frames were acknowledged, nothing but 202 and 503 came back, every
#     acknowledged frame is in the database, each once, under its own seq;
#  2. a profile (small), a fixed rate and 4 connections over 2 identities:
#     about rate x connections x seconds frames, the profile's size;
#  3. a reconnect storm with resumption: every connection comes back and
#     delivers, and the reopened handshakes are resumed ones; without
#     resumption (full, one handshake at a time) none is;
#  4. a bad option, a port nobody listens on and an agent that is not
#     registered make it exit 1.
. "$(dirname "$0")/lib.sh"

BENCH=${PANELGATE_BENCH:-$PANELGATE_BUILD_DIR/bin/panelgate-bench}
PANELGATECTL=${PANELGATECTL:-$PANELGATE_BUILD_DIR/bin/panelgatectl}
[[ -x $BENCH ]] || fatal "panelgate-bench built ($BENCH)"

bash "$PANELGATE_SOURCE_DIR/certs/dev-pki.sh" "$PKI" >"$T/pki.log" 2>&1 ||
    { cat "$T/pki.log"; fatal "dev PKI (certs/dev-pki.sh)"; }
gw_config
gw_start
register_defaults
# the generator's agents are DIR/<prefix>NNN.{crt,key}
mkdir -p "$T/agents"
for pair in 001:nimble-01 002:wowza-01; do
    ln -s "$PKI/${pair#*:}.crt" "$T/agents/lg-${pair%%:*}.crt"
    ln -s "$PKI/${pair#*:}.key" "$T/agents/lg-${pair%%:*}.key"
done
lg=("$BENCH" --port "$GW_PORT" --ca "$PKI/ca.crt" --agent-dir "$T/agents" --agent-prefix lg-
    --warmup 0.5)

# field KEY: the number of KEY=... in $out, empty when it is missing or not a number
field() { sed -nE "s/.*(^| )$1=([0-9]+(\.[0-9]+)?)( .*|$)/\2/p" <<<"$out"; }
word() { sed -nE "s/.*(^| )$1=([^ ]+).*/\2/p" <<<"$out"; }

# 1. as fast as acks allow
rc=0
out=$("${lg[@]}" --in-flight 4 --duration 1.5 --clients 2 --gw-pid "$GW_PID" \
    --lat-file "$T/lat.txt" 2>"$T/bench.err") || rc=$?
echo "# $out"
check_eq "panelgate-bench exits 0" "$rc" 0
[[ -s $T/bench.err ]] && sed 's/^/# stderr: /' "$T/bench.err"
check "one report line, starting with 'panelgate-bench '" \
    test "$(wc -l <<<"$out")" = 1 -a "${out%% *}" = panelgate-bench
for k in clients identities in_flight frame_bytes seconds acks acks_per_s r503 r429 r_other \
    conn_errors err_connect err_handshake err_timeout err_closed handshakes resumed \
    lat_ms_p50 lat_ms_p99 lat_ms_p999 loadgen_cpu gw_cpu gw_cpu_s gw_frames_per_core \
    gw_cpu_us_per_frame gw_rss0_kb gw_rss_kb gw_hwm_kb; do
    check "field $k is a number" test -n "$(field "$k")"
done
check "the negotiated suite is named ($(word suite))" test -n "$(word suite)" -a "$(word suite)" != none
acks=$(field acks)
check "frames were acknowledged (acks=${acks:-none})" test "${acks:-0}" -gt 0
check_eq "no answer but 202 and 503 (r429, r_other)" "$(field r429) $(field r_other)" "0 0"
check_eq "no connection lost, no failed attempt" \
    "$(field conn_errors) $(field err_connect) $(field err_handshake) $(field err_timeout)" "0 0 0 0"
check_eq "one full handshake per connection" "$(field handshakes) $(field resumed)" "2 0"
check "a frame of about 2 KiB ($(field frame_bytes) bytes)" \
    test "$(field frame_bytes)" -ge 1800 -a "$(field frame_bytes)" -le 2600
check_eq "--lat-file: one latency per acknowledged frame" "$(wc -l <"$T/lat.txt")" "$acks"
check "p50 <= p99 <= p999" awk -v a="$(field lat_ms_p50)" -v b="$(field lat_ms_p99)" \
    -v c="$(field lat_ms_p999)" 'BEGIN { exit !(a <= b && b <= c) }'

stored=$(sql "SELECT count(*) FROM frames")
distinct=$(sql "SELECT count(DISTINCT server_id || '.' || seq) FROM frames")
check "every acknowledged frame is stored ($stored stored, $acks acked in the window)" \
    test "$stored" -ge "${acks:-1}"
check_eq "each stored frame under a seq of its own" "$distinct" "$stored"
check_eq "seqs follow the clock in microseconds" \
    "$(sql "SELECT count(*) FROM frames WHERE seq < 1000000000000000")" 0

# 2. profile, rate, connections over fewer identities; then a storm
before=$(sql "SELECT count(*) FROM frames")
rc=0
out=$("${lg[@]}" --profile small --rate 20 --clients 4 --identities 2 --in-flight 2 \
    --duration 1 --storm resume --storm-timeout 5 --gw-pid "$GW_PID" 2>"$T/bench2.err") || rc=$?
echo "# $out"
[[ -s $T/bench2.err ]] && sed 's/^/# stderr: /' "$T/bench2.err"
check_eq "--profile small --rate 20 --storm resume: exits 0" "$rc" 0
check_eq "the small profile: 1 stream, 4 viewers" "$(word profile) $(field streams) $(field conns)" \
    "small 1 4"
check "a frame of about 0.5 KiB ($(field frame_bytes) bytes)" \
    test "$(field frame_bytes)" -ge 400 -a "$(field frame_bytes)" -le 700
check_eq "4 connections over 2 identities" "$(field clients) $(field identities)" "4 2"
# 4 connections x 20/s x 1 s = 80: the rate holds the count near it
acks=$(field acks)
check "--rate 20 on 4 connections for 1 s: about 80 frames (acks=${acks:-none})" \
    test "${acks:-0}" -ge 40 -a "${acks:-0}" -le 100
check_eq "the storm: every connection delivered again (storm_left)" "$(field storm_left)" 0
check "the storm reopened every connection ($(field storm_handshakes) handshakes)" \
    test "$(field storm_handshakes)" -ge 4
check "... resuming their sessions ($(field storm_resumed) resumed)" \
    test "$(field storm_resumed)" -ge 4
check "storm_s, storm_gw_cpu_s and storm_loadgen_cpu_s are numbers" \
    test -n "$(field storm_s)" -a -n "$(field storm_gw_cpu_s)" -a -n "$(field storm_loadgen_cpu_s)"
stored=$(($(sql "SELECT count(*) FROM frames") - before))
distinct=$(sql "SELECT count(DISTINCT server_id || '.' || seq) FROM frames")
check "shared identities: every acknowledged frame stored ($stored)" test "$stored" -ge "${acks:-1}"
check_eq "... each under a seq of its own" "$distinct" "$(sql "SELECT count(*) FROM frames")"

rc=0
out=$("${lg[@]}" --profile wide --clients 2 --in-flight 1 --duration 0.5 --storm full \
    --storm-parallel 1 --storm-timeout 5 2>"$T/bench3.err") || rc=$?
echo "# $out"
check_eq "--profile wide --storm full: exits 0" "$rc" 0
check_eq "the wide profile: 40 streams, 200 viewers" "$(field streams) $(field conns)" "40 200"
check_eq "a full storm, one handshake at a time: every connection back, none resumed" \
    "$(field storm_left) $(field storm_handshakes) $(field storm_resumed)" "0 2 0"

# 4. refusals
rc=0
"$BENCH" --port "$GW_PORT" --clients 0 >"$T/bad.out" 2>&1 || rc=$?
check_eq "a bad option: exit 1" "$rc" 1
check "... with the usage" grep -q '^usage: panelgate-bench' "$T/bad.out"
rc=0
"$BENCH" --dry-run --profile huge >"$T/bad2.out" 2>&1 || rc=$?
check_eq "an unknown profile: exit 1" "$rc" 1
rc=0
"$BENCH" --port 1 --ca "$PKI/ca.crt" --agent-dir "$T/agents" --agent-prefix lg- --clients 1 \
    >"$T/refused.out" 2>&1 || rc=$?
check_eq "nobody listening: exit 1" "$rc" 1
check "... naming the refused connect" grep -q 'agent lg-001: connect 127.0.0.1:1: ' "$T/refused.out"
# CA-valid, never registered
"$PANELGATECTL" --pki "$PKI/.pki" cert agent stranger-01 >/dev/null || fatal "panelgatectl cert agent"
ln -s "$PKI/.pki/agents/stranger-01.crt" "$T/agents/lg-003.crt"
ln -s "$PKI/.pki/agents/stranger-01.key" "$T/agents/lg-003.key"
rc=0
"${lg[@]}" --duration 1 --clients 3 >"$T/unreg.out" 2>&1 || rc=$?
check_eq "an agent that is not registered: exit 1" "$rc" 1
check "... naming it" grep -q 'agent lg-003: TLS handshake' "$T/unreg.out"
finish
