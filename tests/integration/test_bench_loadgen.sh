#!/usr/bin/env bash
# test_bench_loadgen.sh - bench_loadgen (bench/loadgen.c, what
# bench/run_engines.sh measures with) against a real gateway for about two
# seconds, so the benchmark cannot rot unnoticed.  No speed is asserted:
#  1. it exits 0 and prints one report line whose every field
#     run_engines.sh reads is there with a number;
#  2. frames were acknowledged, and nothing but 202 and 503 came back;
#  3. every acknowledged frame is in the database, each once, under its own
#     seq (the generator patches the seq into its one encoded frame);
#  4. a bad option and an agent that is not registered make it exit 1.
. "$(dirname "$0")/lib.sh"

LOADGEN=${BENCH_LOADGEN:-$PANELGATE_BUILD_DIR/bin/bench_loadgen}
PANELGATECTL=${PANELGATECTL:-$PANELGATE_BUILD_DIR/bin/panelgatectl}
[[ -x $LOADGEN ]] || fatal "bench_loadgen built ($LOADGEN)"

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
lg=("$LOADGEN" --port "$GW_PORT" --ca "$PKI/ca.crt" --agent-dir "$T/agents" --agent-prefix lg-
    --in-flight 4 --warmup 0.5 --duration 1.5)

rc=0
out=$("${lg[@]}" --clients 2 --gw-pid "$GW_PID" 2>"$T/loadgen.err") || rc=$?
echo "# $out"
check_eq "bench_loadgen exits 0" "$rc" 0
[[ -s $T/loadgen.err ]] && sed 's/^/# stderr: /' "$T/loadgen.err"
check "one report line, starting with 'loadgen '" test "$(wc -l <<<"$out")" = 1 -a "${out%% *}" = loadgen
# field VALUE: the number of KEY=..., empty when it is missing or not a number
field() { sed -nE "s/.*(^| )$1=([0-9]+(\.[0-9]+)?)( .*|$)/\2/p" <<<"$out"; }
for k in clients in_flight frame_bytes seconds acks acks_per_s r503 r429 r_other conn_errors \
    lat_ms_p50 lat_ms_p99 loadgen_cpu gw_cpu gw_frames_per_core gw_cpu_us_per_frame \
    gw_loop_cpu gw_loop_us_per_frame; do
    check "field $k is a number" test -n "$(field "$k")"
done
acks=$(field acks)
check "frames were acknowledged (acks=${acks:-none})" test "${acks:-0}" -gt 0
check_eq "no answer but 202 and 503 (r429, r_other)" "$(field r429) $(field r_other)" "0 0"
check_eq "no connection lost" "$(field conn_errors)" 0
check "a frame of about 2 KiB ($(field frame_bytes) bytes)" \
    test "$(field frame_bytes)" -ge 1800 -a "$(field frame_bytes)" -le 2600

stored=$(sql "SELECT count(*) FROM frames")
distinct=$(sql "SELECT count(DISTINCT server_id || '.' || seq) FROM frames")
check "every acknowledged frame is stored ($stored stored, $acks acked in the window)" \
    test "$stored" -ge "${acks:-1}"
check_eq "each stored frame under a seq of its own" "$distinct" "$stored"
check_eq "seqs follow the clock in microseconds" \
    "$(sql "SELECT count(*) FROM frames WHERE seq < 1000000000000000")" 0

rc=0
"$LOADGEN" --port "$GW_PORT" --clients 0 >"$T/bad.out" 2>&1 || rc=$?
check_eq "a bad option: exit 1" "$rc" 1
check "... with the usage" grep -q '^usage: bench_loadgen' "$T/bad.out"
# CA-valid, never registered
"$PANELGATECTL" --pki "$PKI/.pki" cert agent stranger-01 >/dev/null || fatal "panelgatectl cert agent"
ln -s "$PKI/.pki/agents/stranger-01.crt" "$T/agents/lg-003.crt"
ln -s "$PKI/.pki/agents/stranger-01.key" "$T/agents/lg-003.key"
rc=0
"${lg[@]}" --clients 3 >"$T/unreg.out" 2>&1 || rc=$?
check_eq "an agent that is not registered: exit 1" "$rc" 1
check "... naming it" grep -q 'agent lg-003: TLS handshake' "$T/unreg.out"
finish
