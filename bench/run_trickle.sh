#!/usr/bin/env bash
# run_trickle.sh [BUILD_DIR] - what [storage] commit_delay_ms buys at fleet
# rates: bench_sink submitting RATE frames/s (default 2000, the issue-13
# fleet of 10 000 agents reporting every 5 s) from SERVERS servers (10000)
# on the shipped schema, for each delay of DELAYS ("0 2 5 10"), RUNS runs
# each (default 3), interleaved, each pinned with taskset to one core (CPU,
# default the last one) together with its writer thread.  Prints every run
# and, per delay, the medians of:
#   frames_per_commit    frames per transaction (the sink's
#                        panelgate_sink_batch_frames, sum / count)
#   cpu_us_per_frame     both threads; writer_us_per_frame the writer's part
#   ack_p50_ms, ack_p99_ms   submit to the done callback
# and the ratio of cpu_us_per_frame and writer_us_per_frame against the
# first delay.  Other knobs: FRAMES (16000 timed frames after a warm-up
# round of one frame per server), STREAMS (6), CONNS (50: the typical
# ~2 KiB frame), SYNC (full), EXTRA (more bench_sink options, for example
# "--cache-kib 65536"), DIR (scratch, default a mktemp directory).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd -P)
BUILD=${1:-$HERE/../build}
BIN=$BUILD/bin/bench_sink
[[ -x $BIN ]] || { echo "run_trickle.sh: no $BIN (build first: cmake --build $BUILD)" >&2; exit 1; }
RUNS=${RUNS:-3}
RATE=${RATE:-2000}
FRAMES=${FRAMES:-16000}
SERVERS=${SERVERS:-10000}
STREAMS=${STREAMS:-6}
CONNS=${CONNS:-50}
SYNC=${SYNC:-full}
DELAYS=${DELAYS:-0 2 5 10}
EXTRA=${EXTRA:-}
CPU=${CPU:-$(($(nproc) - 1))}
OWN_DIR=0
if [[ -z ${DIR:-} ]]; then
    DIR=$(mktemp -d)
    OWN_DIR=1
fi
trap '((OWN_DIR)) && rm -rf "$DIR"' EXIT

echo "# bench_sink --rate $RATE on CPU $CPU, $RUNS runs per delay, $FRAMES frames each," \
    "$SERVERS servers ($(nproc) CPUs, $(uname -r)), sync=$SYNC ${EXTRA:+extra: $EXTRA}"
echo "# start: $(uptime)"
declare -A m
keys=(frames_per_commit cpu_us_per_frame writer_us_per_frame loop_us_per_frame ack_p50_ms ack_p99_ms)
for ((r = 1; r <= RUNS; r++)); do
    for d in $DELAYS; do
        # shellcheck disable=SC2086 # EXTRA is a list of options
        line=$(taskset -c "$CPU" "$BIN" --db "$DIR/bench.db" --variant pk --frames "$FRAMES" \
            --servers "$SERVERS" --streams "$STREAMS" --conns "$CONNS" --sync "$SYNC" \
            --rate "$RATE" --commit-delay "$d" $EXTRA)
        echo "$line"
        for k in "${keys[@]}"; do
            m[$d.$k]+="$(sed -nE "s/.*(^| )$k=([^ ]+).*/\\2/p" <<<"$line") "
        done
    done
done
echo "# end: $(uptime)"
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
first=${DELAYS%% *}
for d in $DELAYS; do
    for k in "${keys[@]}"; do m[$d.m.$k]=$(median "${m[$d.$k]}"); done
    printf 'median commit_delay_ms=%-3s frames_per_commit=%s cpu_us_per_frame=%s writer_us_per_frame=%s loop_us_per_frame=%s ack_p50_ms=%s ack_p99_ms=%s' \
        "$d" "${m[$d.m.frames_per_commit]}" "${m[$d.m.cpu_us_per_frame]}" "${m[$d.m.writer_us_per_frame]}" \
        "${m[$d.m.loop_us_per_frame]}" "${m[$d.m.ack_p50_ms]}" "${m[$d.m.ack_p99_ms]}"
    awk -v c="${m[$d.m.cpu_us_per_frame]}" -v c0="${m[$first.m.cpu_us_per_frame]}" \
        -v w="${m[$d.m.writer_us_per_frame]}" -v w0="${m[$first.m.writer_us_per_frame]}" \
        'BEGIN { printf " cpu_ratio=%.2f writer_ratio=%.2f\n", c / c0, w / w0 }'
done
