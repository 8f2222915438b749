#!/usr/bin/env bash
# run_engines.sh [BUILD_DIR] - frames/s per gateway core on each storage
# engine, in one run: the same load (panelgate-bench: CLIENTS registered
# agents over mTLS + HTTP/2, IN_FLIGHT frames in flight each, a 2 KiB
# frame with 50 viewer connections) against
#   sqlite   storage_engine = sqlite (the registry in the same file);
#            sqlite@N: the same with [storage] commit_delay_ms = N
#   js-r1    storage_engine = jetstream, replicas 1, one NATS node
#   js-r3    storage_engine = jetstream, replicas 3, a 3-node cluster
#            (scripts/nats.sh)
# The gateway runs pinned to core GW_CPU (default 0), the load generator
# and every nats-server to LOAD_CPU (default 1).  ROUNDS rounds (default 5),
# the engines interleaved inside each; every round starts from nothing (a
# new database, new NATS nodes and stores, a new gateway), registers the
# agents, waits WARMUP seconds (3: handshakes, first frames), then measures
# DURATION seconds (10).  Per round and engine one panelgate-bench line;
# then, per engine, the median over the rounds of:
#   acks_per_s          frames acknowledged (202) per second
#   per_gw_core         acks/s divided by the gateway's CPU seconds per
#                       second (/proc/PID/stat, every thread): what one
#                       gateway core takes when it is the limit
#   gw_us_per_frame     gateway CPU per frame
#   loop_us_per_frame   the same, of its event loop (main thread) alone
#   p50_ms, p99_ms      ack latency (submit to 202)
#   gw_cpu, loadgen_cpu, nats_cpu   CPU seconds per second of each
#   frames_per_commit   the gateway's panelgate_sink_batch_frames, sum /
#                       count over the whole run (warm-up included)
# and the ratios of per_gw_core, gw_us_per_frame and p50 against the
# first engine of ENGINES.
# Other knobs: CLIENTS (16), IN_FLIGHT (8), INTERVAL_MS (0; N: each slot
# sends a frame every N ms, a fleet's fixed rate: panelgate-bench --rate
# IN_FLIGHT*1000/N per connection), STREAMS (6), CONNS (50), SYNC
# (sqlite_synchronous, full), ENGINES ("sqlite js-r1 js-r3"), DIR (scratch;
# default a mktemp directory, removed at the end; /dev/shm puts the
# database on tmpfs), PERF_DIR (when set, `perf record PERF_ARGS` (-g) on
# the gateway, from LOAD_CPU, for the warmup and the window of each run:
# PERF_DIR/ENGINE.ROUND.data, for `perf report -i`; needs root and
# linux-perf).  Geo databases with 20
# networks come from bench/make_bench_mmdb.pl when
# libmaxmind-db-writer-perl is installed (the run says when not).
# Registration is one function, register_agents, which runs `panelgatectl
# --config GATEWAY.CONF register`: the SQLite file, or the JetStream
# engine's registry bucket.
# `make bench-engines` runs it on build/.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd -P)
ROOT=$(cd "$HERE/.." && pwd -P)
BUILD=$(cd "${1:-$ROOT/build}" && pwd -P)
BIN=$BUILD/bin
for p in panelgate panelgatectl panelgate-bench; do
    [[ -x $BIN/$p ]] || { echo "run_engines.sh: no $BIN/$p (build first: make build)" >&2; exit 1; }
done
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CLIENTS=${CLIENTS:-16}
IN_FLIGHT=${IN_FLIGHT:-8}
INTERVAL_MS=${INTERVAL_MS:-0}
STREAMS=${STREAMS:-6}
CONNS=${CONNS:-50}
SYNC=${SYNC:-full}
ENGINES=${ENGINES:-sqlite js-r1 js-r3}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OWN_DIR=0
if [[ -z ${DIR:-} ]]; then
    DIR=$(mktemp -d)
    OWN_DIR=1
fi
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd -P)

# --- processes -------------------------------------------------------------------
# shellcheck source=../scripts/nats.sh
. "$ROOT/scripts/nats.sh"
real_nats=${NATS_SERVER:-}
[[ -x $real_nats ]] || { echo "run_engines.sh: nats-server missing (scripts/deps.sh)" >&2; exit 1; }
# every node on LOAD_CPU: taskset execs the server, so the pid nats.sh
# keeps is the server's
NATS_SERVER=$DIR/nats-server-pinned
printf '#!/bin/sh\nexec taskset -c %s "%s" "$@"\n' "$LOAD_CPU" "$real_nats" >"$NATS_SERVER"
chmod +x "$NATS_SERVER"
nats_note() { :; }
nats_fail() { echo "run_engines.sh: nats: $*" >&2; }

GW_PID=
# shellcheck source=lib.sh
. "$HERE/lib.sh"
cleanup() {
    [[ -n $GW_PID ]] && alive "$GW_PID" && kill -KILL "$GW_PID" 2>/dev/null
    nats_kill_all
    ((OWN_DIR)) && rm -rf "$DIR"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
die() {
    echo "run_engines.sh: $*" >&2
    exit 1
}

# --- identities --------------------------------------------------------------------
PKI=$DIR/pki
AGENTS=$PKI/.pki/agents
CTL=("$BIN/panelgatectl" --pki "$PKI/.pki" --actor bench)
PANELGATECTL=$BIN/panelgatectl bash "$ROOT/certs/dev-pki.sh" "$PKI" >"$DIR/pki.log" 2>&1 ||
    die "certs/dev-pki.sh (see $DIR/pki.log)"
names=()
for ((i = 1; i <= CLIENTS; i++)); do
    n=$(printf 'bench-%03d' "$i")
    names+=("$n")
    [[ -f $AGENTS/$n.crt ]] || "${CTL[@]}" cert agent "$n" >/dev/null || die "panelgatectl cert agent $n"
done

# register_agents CONF: registers every bench agent, pinning the certificate
# issued above, in the registry that CONF's gateway reads: `panelgatectl
# --config` writes wherever the configuration says the registry is (the
# SQLite file, or with storage_engine = jetstream the cluster's bucket).
register_agents() {
    local n
    for n in "${names[@]}"; do
        "${CTL[@]}" --config "$1" register "$n" --kind nimble --cert "$AGENTS/$n.crt" >/dev/null ||
            die "panelgatectl --config $1 register $n"
    done
}

geo=()
if perl "$HERE/make_bench_mmdb.pl" "$DIR" 2>/dev/null; then
    geo=("[geo]" "country_db = $DIR/bench-country.mmdb" "asn_db = $DIR/bench-asn.mmdb")
else
    echo "# no libmaxmind-db-writer-perl: no geo databases, viewers reduced to counts"
fi

# gw_conf ENGINE DIR: the gateway's configuration for ENGINE, on stdout.
gw_conf() {
    local d=$2
    printf '%s\n' "[server]" "listen = 127.0.0.1:0" "port_file = $d/ports" \
        "[tls]" "cert_file = $PKI/gateway.crt" "key_file = $PKI/gateway.key" \
        "client_ca_file = $PKI/ca.crt" \
        "[ratelimit]" "frames_per_s = 0" "bytes_per_s = 0" "global_frames_per_s = 0" \
        "handshakes_per_s_per_addr = 0" \
        "[admin]" "listen = 127.0.0.1:0" "${geo[@]}" \
        "[storage]" "sqlite_path = $d/pg.db" "sqlite_synchronous = $SYNC" "retry_after_s = 1"
    case $1 in
    sqlite) echo "storage_engine = sqlite" ;;
    sqlite@*) printf '%s\n' "storage_engine = sqlite" "commit_delay_ms = ${1#sqlite@}" ;;
    js-r1 | js-r3)
        printf '%s\n' "storage_engine = jetstream" \
            "[jetstream]" "servers = $NATS_URLS" "replicas = ${1#js-r}" \
            "connect_timeout_ms = 3000"
        ;;
    esac
}

# run_one ENGINE ROUND: one measurement; prints the panelgate-bench line.
# Runs in this shell (not in $(...)), so the EXIT trap knows what it
# started.
run_one() {
    local e=$1 d=$DIR/$1.$2 watch=() i port
    rm -rf "$d"
    mkdir -p "$d"
    case $e in
    sqlite | sqlite@*) ;;
    js-r1 | js-r3)
        # shellcheck disable=SC2034 # read by nats.sh
        NATS_DIR=$d/nats
        nats_cluster_start "${e#js-r}" || die "$e: NATS (see $d/nats/*/server.log)"
        ;;
    *) die "unknown engine $e (sqlite, js-r1, js-r3)" ;;
    esac
    if [[ $e != sqlite* ]]; then
        for ((i = 1; i <= NATS_N; i++)); do watch+=(--watch-pid "${NATS_PIDS[i]}"); done
    fi
    gw_conf "$e" "$d" >"$d/gw.conf"
    register_agents "$d/gw.conf"
    taskset -c "$GW_CPU" "$BIN/panelgate" --config "$d/gw.conf" 2>"$d/gw.log" &
    GW_PID=$!
    wait_for 15 test -s "$d/ports" || die "$e: the gateway did not start (see $d/gw.log)"
    wait_for 15 grep -q '"event":"started"' "$d/gw.log" || die "$e: no 'started' line in $d/gw.log"
    port=$(awk 'NR == 1 { print $2 }' "$d/ports")
    local perf_pid=
    if [[ -n ${PERF_DIR:-} ]]; then
        mkdir -p "$PERF_DIR"
        # on LOAD_CPU, for the warmup and the window; root, as the
        # gateway refuses ptrace to anyone else (docs/OPERATIONS.md)
        # shellcheck disable=SC2086 # PERF_ARGS is a list of options
        taskset -c "$LOAD_CPU" perf record ${PERF_ARGS:--g} -p "$GW_PID" \
            -o "$PERF_DIR/$e.$2.data" -- sleep $((WARMUP + DURATION)) \
            >"$PERF_DIR/$e.$2.log" 2>&1 &
        perf_pid=$!
    fi
    local rate=()
    ((INTERVAL_MS)) && rate=(--rate "$(awk -v n="$IN_FLIGHT" -v i="$INTERVAL_MS" 'BEGIN { printf "%g", n * 1000 / i }')")
    taskset -c "$LOAD_CPU" "$BIN/panelgate-bench" --port "$port" --ca "$PKI/ca.crt" \
        --agent-dir "$AGENTS" --clients "$CLIENTS" --in-flight "$IN_FLIGHT" "${rate[@]}" \
        --warmup "$WARMUP" --duration "$DURATION" --streams "$STREAMS" --conns "$CONNS" \
        --gw-pid "$GW_PID" "${watch[@]}" >"$d/loadgen.line" || die "$e: panelgate-bench failed"
    [[ -z $perf_pid ]] || wait "$perf_pid" || die "$e: perf record failed (see $PERF_DIR/$e.$2.log)"
    local aport fpc=
    aport=$(grep '"event":"admin_listening"' "$d/gw.log" | tail -1 | sed -E 's/.*:([0-9]+) \(GET.*/\1/')
    if [[ -n $aport ]] && curl -sf "http://127.0.0.1:$aport/metrics" >"$d/metrics.txt"; then
        fpc=$(awk '$1 == "panelgate_sink_batch_frames_sum" { s = $2 }
                   $1 == "panelgate_sink_batch_frames_count" { c = $2 }
                   END { if (c > 0) printf "%.1f", s / c }' "$d/metrics.txt")
    fi
    echo "$(<"$d/loadgen.line") frames_per_commit=${fpc:-?}"
    kill -TERM "$GW_PID"
    wait_for 30 not_alive "$GW_PID" || kill -KILL "$GW_PID"
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=
    [[ $e == sqlite* ]] || nats_stop_all
    rm -rf "$d"
}

kv() { # KEY LINE: the value of KEY=... in a panelgate-bench line
    sed -nE "s/.*(^| )$1=([^ ]+).*/\\2/p" <<<"$2"
}
median() { tr ' ' '\n' <<<"$1" | { grep . || true; } | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "# run_engines: gateway on CPU $GW_CPU; panelgate-bench and nats-server on CPU $LOAD_CPU;" \
    "$ROUNDS rounds of ${DURATION}s (after ${WARMUP}s) per engine; $CLIENTS agents x $IN_FLIGHT in flight" \
    "$( ((INTERVAL_MS)) && echo ", one frame per slot every $INTERVAL_MS ms")"
echo "# $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), $(uname -r)," \
    "$("$real_nats" --version), sqlite_synchronous=$SYNC"
echo "# start: $(uptime)"
declare -A v
keys=(acks_per_s gw_frames_per_core gw_cpu_us_per_frame gw_loop_us_per_frame lat_ms_p50 lat_ms_p99 gw_cpu loadgen_cpu watch_cpu r503 frame_bytes frames_per_commit)
for ((r = 1; r <= ROUNDS; r++)); do
    for e in $ENGINES; do
        run_one "$e" "$r" >"$DIR/line"
        line=$(<"$DIR/line")
        echo "round $r $e: ${line#panelgate-bench }"
        for k in "${keys[@]}"; do v[$e.$k]+="$(kv "$k" "$line") "; done
    done
done
echo "# end: $(uptime)"
for e in $ENGINES; do
    for k in "${keys[@]}"; do v[$e.m.$k]=$(median "${v[$e.$k]}"); done
    printf 'median %-6s acks_per_s=%s per_gw_core=%s gw_us_per_frame=%s loop_us_per_frame=%s p50_ms=%s p99_ms=%s gw_cpu=%s loadgen_cpu=%s nats_cpu=%s r503=%s frame_bytes=%s frames_per_commit=%s\n' \
        "$e" "${v[$e.m.acks_per_s]}" "${v[$e.m.gw_frames_per_core]}" "${v[$e.m.gw_cpu_us_per_frame]}" \
        "${v[$e.m.gw_loop_us_per_frame]}" \
        "${v[$e.m.lat_ms_p50]}" "${v[$e.m.lat_ms_p99]}" "${v[$e.m.gw_cpu]}" "${v[$e.m.loadgen_cpu]}" \
        "${v[$e.m.watch_cpu]:-0}" "${v[$e.m.r503]}" "${v[$e.m.frame_bytes]}" "${v[$e.m.frames_per_commit]}"
done
base=${ENGINES%% *}
for e in $ENGINES; do
    [[ $e == "$base" ]] && continue
    awk -v e="$e" -v b="$base" -v f="${v[$e.m.gw_frames_per_core]}" -v f0="${v[$base.m.gw_frames_per_core]}" \
        -v c="${v[$e.m.gw_cpu_us_per_frame]}" -v c0="${v[$base.m.gw_cpu_us_per_frame]}" \
        -v l="${v[$e.m.lat_ms_p50]}" -v l0="${v[$base.m.lat_ms_p50]}" \
        'BEGIN { printf "ratio  %-6s per_gw_core=%.2f gw_us_per_frame=%.2f p50=%.2f (against %s)\n", e, f / f0, c / c0, l / l0, b }'
done
