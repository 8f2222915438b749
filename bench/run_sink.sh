#!/usr/bin/env bash
# run_sink.sh [BUILD_DIR] - frames per second per core through the
# gateway's storage path (bench_sink), for each schema variant:
#   frames   the frames table only
#   pk       the shipped schema: derived tables, primary keys only
#   indexed  the shipped schema plus secondary indexes
# RUNS runs of each (default 5), interleaved, each pinned with taskset to
# one core (CPU, default the last one) together with its writer thread;
# prints every run and the median of each variant.  Other knobs: FRAMES
# (10000 timed frames after a warm-up round), SERVERS (1000), STREAMS (40),
# CONNS (200), BATCH (512), SYNC (full), DIR (scratch, default a mktemp
# directory, removed at the end).  Geo databases with 20 networks are made
# with bench/make_bench_mmdb.pl when libmaxmind-db-writer-perl is there;
# without it the viewers fall into 2 buckets (the run says so).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd -P)
BUILD=${1:-$HERE/../build}
BIN=$BUILD/bin/bench_sink
[[ -x $BIN ]] || { echo "run_sink.sh: no $BIN (build first: cmake --build $BUILD)" >&2; exit 1; }
RUNS=${RUNS:-5}
FRAMES=${FRAMES:-10000}
SERVERS=${SERVERS:-1000}
STREAMS=${STREAMS:-40}
CONNS=${CONNS:-200}
BATCH=${BATCH:-512}
SYNC=${SYNC:-full}
CPU=${CPU:-$(($(nproc) - 1))}
OWN_DIR=0
if [[ -z ${DIR:-} ]]; then
    DIR=$(mktemp -d)
    OWN_DIR=1
fi
trap '((OWN_DIR)) && rm -rf "$DIR"' EXIT

geo=()
if perl "$HERE/make_bench_mmdb.pl" "$DIR" 2>/dev/null; then
    geo=(--country-db "$DIR/bench-country.mmdb" --asn-db "$DIR/bench-asn.mmdb")
else
    echo "# no libmaxmind-db-writer-perl: no geo databases, viewers in 2 buckets"
fi

echo "# bench_sink on CPU $CPU, $RUNS runs per variant, $FRAMES frames each ($(nproc) CPUs, $(uname -r))"
declare -A rates
for ((r = 1; r <= RUNS; r++)); do
    for v in frames pk indexed; do
        line=$(taskset -c "$CPU" "$BIN" --db "$DIR/bench.db" --variant "$v" --frames "$FRAMES" \
            --servers "$SERVERS" --streams "$STREAMS" --conns "$CONNS" --batch "$BATCH" \
            --sync "$SYNC" "${geo[@]}")
        echo "$line"
        rates[$v]+="$(sed -E 's/.*frames_per_s=([0-9]+).*/\1/' <<<"$line") "
        rates[$v.w]+="$(sed -E 's/.*writer_us_per_frame=([0-9.]+).*/\1/' <<<"$line") "
        rates[$v.l]+="$(sed -E 's/.*loop_us_per_frame=([0-9.]+).*/\1/' <<<"$line") "
        rates[$v.c]+="$(sed -E 's/.*cpu_us_per_frame=([0-9.]+).*/\1/' <<<"$line") "
    done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# frames_per_s is wall clock on the pinned core; per_core_cpu is 1e6 /
# (CPU microseconds per frame, both threads), which other load on the
# machine disturbs less.
for v in frames pk indexed; do
    c=$(median "${rates[$v.c]}")
    printf 'median %-8s frames_per_s=%s per_core_cpu=%.0f cpu_us_per_frame=%s loop_us_per_frame=%s writer_us_per_frame=%s\n' \
        "$v" "$(median "${rates[$v]}")" "$(awk -v c="$c" 'BEGIN { print 1e6 / c }')" "$c" \
        "$(median "${rates[$v.l]}")" "$(median "${rates[$v.w]}")"
done
