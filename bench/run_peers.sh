#!/usr/bin/env bash
# run_peers.sh [BUILD_DIR] - panelgate side by side with nghttpd and h2o, in
# one run, under the same load (panelgate-bench: mTLS HTTP/2 agents POSTing
# frames to /v1/stats):
#   panelgate  the gateway as it is: sqlite engine, sqlite_synchronous=SYNC
#              (full), geo databases when bench/make_bench_mmdb.pl can
#              write them, no rate limits
#   nghttpd    (Debian nghttp2-server) serving an empty file at /v1/stats:
#              it answers 200 (the generator takes --ack-status 200); -V
#              asks for the client certificate but does not verify it
#   h2o        (Debian h2o 2.2) an mruby handler answering a fixed 202;
#              this version has no setting to ask for client certificates
# Each server runs alone on core GW_CPU (0), one thread / worker, the load on
# LOAD_CPU (1); every TLS connection offers only SUITE (what the gateway
# negotiates: ECDHE-ECDSA-CHACHA20-POLY1305, TLS 1.2) so that all three pay
# the same record cipher.  The scenarios:
#   c<N>       N connections x IN_FLIGHT streams (10), the typical 2 KiB
#              frame, as fast as acks allow, N in CONNS_LIST ("10 100 300")
#   small, large   the small (0.5 KiB) and large (10 KiB) profile, 100 x 10
#   fleet      FLEET connections (500) at FLEET_RATE frames/s each (4: 2 000
#              frames/s), one in-flight frame: CPU share, p99, RSS per
#              connection
#   storm-full, storm-resume   100 connections, then all dropped and
#              reopened at once without / with their TLS sessions: seconds
#              until every one has delivered again, attempts, failures
# ROUNDS rounds (3), and inside each round every scenario on every server
# in turn (interleaved); each measurement starts a fresh server (and for
# panelgate a copy of a database with the agents registered once), waits
# WARMUP (2) s, measures DURATION (5) s.  Per measurement one line
# "<round> <scenario> <server> <panelgate-bench line>" in OUT (default
# docs/bench/peers.txt, kept beside the report); then bench/peers_report.py
# (Debian's /usr/bin/python3, python3-matplotlib for the plots) writes the
# medians, ratios and PNG plots into MD (docs/BENCHMARKS.md) and PLOTS
# (docs/bench/).  SERVERS ("panelgate nghttpd h2o") and SCENARIOS choose a
# subset; IDENTITIES (100) agents are registered, connections spread over
# them.  `make bench-peers` runs it on build/.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd -P)
ROOT=$(cd "$HERE/.." && pwd -P)
BUILD=$(cd "${1:-$ROOT/build}" && pwd -P)
BIN=$BUILD/bin
for p in panelgate panelgatectl panelgate-bench; do
    [[ -x $BIN/$p ]] || { echo "run_peers.sh: no $BIN/$p (build first: make build)" >&2; exit 1; }
done
# bench-only packages (Debian 12): installed here when missing, not by
# scripts/deps.sh, which lists what the build and the tests need
BENCH_PACKAGES=(nghttp2-server h2o python3-matplotlib)
if ! command -v nghttpd >/dev/null || ! command -v h2o >/dev/null ||
    ! /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "# run_peers: installing ${BENCH_PACKAGES[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            "${BENCH_PACKAGES[@]}" >&2 || { apt-get update >&2 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
                "${BENCH_PACKAGES[@]}" >&2; }
    fi
    for p in nghttpd h2o; do
        command -v "$p" >/dev/null || {
            echo "run_peers.sh: no $p: as root, apt-get install ${BENCH_PACKAGES[*]}" >&2
            exit 1
        }
    done
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
IN_FLIGHT=${IN_FLIGHT:-10}
CONNS_LIST=${CONNS_LIST:-10 100 300}
FLEET=${FLEET:-500}
FLEET_RATE=${FLEET_RATE:-4}
SYNC=${SYNC:-full}
SUITE=${SUITE:-TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256}
SERVERS=${SERVERS:-panelgate nghttpd h2o}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
IDENTITIES=${IDENTITIES:-100}
OUT=${OUT:-$ROOT/docs/bench/peers.txt}
MD=${MD:-$ROOT/docs/BENCHMARKS.md}
PLOTS=${PLOTS:-$ROOT/docs/bench}
if [[ -z ${SCENARIOS:-} ]]; then
    SCENARIOS=""
    for n in $CONNS_LIST; do SCENARIOS+="c$n "; done
    SCENARIOS+="small large fleet storm-full storm-resume"
fi
OWN_DIR=0
if [[ -z ${DIR:-} ]]; then
    DIR=$(mktemp -d)
    OWN_DIR=1
fi
mkdir -p "$DIR" "$(dirname "$OUT")"
DIR=$(cd "$DIR" && pwd -P)

SRV_PID=
# shellcheck source=lib.sh
. "$HERE/lib.sh"
stop_server() {
    [[ -n $SRV_PID ]] || return 0
    kill -TERM "$SRV_PID" 2>/dev/null || true
    wait_for 30 not_alive "$SRV_PID" || kill -KILL "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=
}
cleanup() {
    [[ -n $SRV_PID ]] && alive "$SRV_PID" && kill -KILL "$SRV_PID" 2>/dev/null
    ((OWN_DIR)) && rm -rf "$DIR"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
die() {
    echo "run_peers.sh: $*" >&2
    exit 1
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- identities: IDENTITIES agents, registered once in a template database --------
PKI=$DIR/pki
AGENTS=$PKI/.pki/agents
CTL=("$BIN/panelgatectl" --pki "$PKI/.pki" --actor bench)
PANELGATECTL=$BIN/panelgatectl bash "$ROOT/certs/dev-pki.sh" "$PKI" >"$DIR/pki.log" 2>&1 ||
    die "certs/dev-pki.sh (see $DIR/pki.log)"
geo=()
if perl "$HERE/make_bench_mmdb.pl" "$DIR" 2>/dev/null; then
    geo=("[geo]" "country_db = $DIR/bench-country.mmdb" "asn_db = $DIR/bench-asn.mmdb")
else
    echo "# no libmaxmind-db-writer-perl: no geo databases, viewers reduced to counts"
fi
gw_conf() { # DIR: the gateway's configuration, on stdout
    printf '%s\n' "[server]" "listen = 127.0.0.1:0" "port_file = $1/ports" \
        "[tls]" "cert_file = $PKI/gateway.crt" "key_file = $PKI/gateway.key" \
        "client_ca_file = $PKI/ca.crt" \
        "[ratelimit]" "frames_per_s = 0" "bytes_per_s = 0" "global_frames_per_s = 0" \
        "handshakes_per_s_per_addr = 0" \
        "[admin]" "listen = 127.0.0.1:0" "${geo[@]}" \
        "[storage]" "storage_engine = sqlite" "sqlite_path = $1/pg.db" \
        "sqlite_synchronous = $SYNC" "retry_after_s = 1"
}
mkdir -p "$DIR/template"
gw_conf "$DIR/template" >"$DIR/template/gw.conf"
for ((i = 1; i <= IDENTITIES; i++)); do
    n=$(printf 'bench-%03d' "$i")
    [[ -f $AGENTS/$n.crt ]] || "${CTL[@]}" cert agent "$n" >/dev/null || die "panelgatectl cert agent $n"
    "${CTL[@]}" --config "$DIR/template/gw.conf" register "$n" --kind nimble \
        --cert "$AGENTS/$n.crt" >/dev/null || die "panelgatectl register $n"
done
mkdir -p "$DIR/htdocs/v1"
: >"$DIR/htdocs/v1/stats"

# start_server SERVER D: starts it pinned; sets SRV_PID, SRV_PORT, ACK
start_server() {
    local s=$1 d=$2
    case $s in
    panelgate)
        cp "$DIR/template/pg.db" "$d/pg.db"
        gw_conf "$d" >"$d/gw.conf"
        taskset -c "$GW_CPU" "$BIN/panelgate" --config "$d/gw.conf" 2>"$d/server.log" &
        SRV_PID=$!
        wait_for 15 test -s "$d/ports" || die "panelgate did not start (see $d/server.log)"
        wait_for 15 grep -q '"event":"started"' "$d/server.log" || die "panelgate: no 'started' line"
        SRV_PORT=$(awk 'NR == 1 { print $2 }' "$d/ports")
        ACK=202
        ;;
    nghttpd)
        SRV_PORT=$((20000 + RANDOM % 20000))
        until port_free "$SRV_PORT"; do SRV_PORT=$((20000 + RANDOM % 20000)); done
        taskset -c "$GW_CPU" nghttpd -n 1 -V -d "$DIR/htdocs" --address 127.0.0.1 \
            "$SRV_PORT" "$PKI/gateway.key" "$PKI/gateway.crt" >"$d/server.log" 2>&1 &
        SRV_PID=$!
        ACK=200
        ;;
    h2o)
        SRV_PORT=$((20000 + RANDOM % 20000))
        until port_free "$SRV_PORT"; do SRV_PORT=$((20000 + RANDOM % 20000)); done
        cat >"$d/h2o.conf" <<EOF
listen:
  host: 127.0.0.1
  port: $SRV_PORT
  ssl:
    certificate-file: $PKI/gateway.crt
    key-file: $PKI/gateway.key
    ocsp-update-interval: 0
num-threads: 1
user: $(id -un)
error-log: $d/server.log
hosts:
  default:
    paths:
      /:
        mruby.handler: |
          Proc.new do |env|
            [202, {}, []]
          end
EOF
        taskset -c "$GW_CPU" h2o -c "$d/h2o.conf" >>"$d/server.log" 2>&1 &
        SRV_PID=$!
        ACK=202
        ;;
    *) die "unknown server $s" ;;
    esac
    wait_for 15 port_open "$SRV_PORT" || die "$s did not listen (see $d/server.log)"
}

# run_one ROUND SCENARIO SERVER: one measurement; appends its line to OUT
run_one() {
    local r=$1 sc=$2 s=$3 d=$DIR/run args=()
    rm -rf "$d"
    mkdir -p "$d"
    case $sc in
    c*) args=(--clients "${sc#c}" --in-flight "$IN_FLIGHT") ;;
    small | large) args=(--clients 100 --in-flight "$IN_FLIGHT" --profile "$sc") ;;
    fleet) args=(--clients "$FLEET" --in-flight 1 --rate "$FLEET_RATE") ;;
    storm-full | storm-resume) args=(--clients 100 --in-flight 1 --storm "${sc#storm-}") ;;
    *) die "unknown scenario $sc" ;;
    esac
    local n=${args[1]} ids=$IDENTITIES
    ((ids <= n)) || ids=$n
    start_server "$s" "$d"
    local line rc=0
    line=$(taskset -c "$LOAD_CPU" "$BIN/panelgate-bench" --port "$SRV_PORT" --ca "$PKI/ca.crt" \
        --agent-dir "$AGENTS" --identities "$ids" --ciphersuite "$SUITE" \
        --ack-status "$ACK" --warmup "$WARMUP" --duration "$DURATION" --gw-pid "$SRV_PID" \
        --lat-file "$DIR/lat.$sc.$s.r$r" "${args[@]}" 2>"$d/bench.err") || rc=$?
    stop_server
    ((rc == 0)) || die "$sc on $s: panelgate-bench failed: $(head -c 400 "$d/bench.err")"
    echo "$r $sc $s $line" | tee -a "$OUT"
}

{
    echo "# run_peers: servers on CPU $GW_CPU, panelgate-bench on CPU $LOAD_CPU; $ROUNDS rounds of" \
        "${DURATION}s after ${WARMUP}s; suite $SUITE; sqlite_synchronous=$SYNC"
    echo "# $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), $(uname -r)," \
        "$(nghttpd --version 2>&1 | head -1), $(h2o --version | head -1)," \
        "mbedTLS $(sed -nE 's/^#define MBEDTLS_VERSION_STRING +"(.*)"/\1/p' /usr/include/mbedtls/version.h)," \
        "SQLite $(sqlite3 --version | cut -d' ' -f1)"
    echo "# start: $(uptime)"
} | tee "$OUT"
for ((r = 1; r <= ROUNDS; r++)); do
    for sc in $SCENARIOS; do
        for s in $SERVERS; do run_one "$r" "$sc" "$s"; done
    done
done
echo "# end: $(uptime)" | tee -a "$OUT"
mkdir -p "$DIR/lat"
cp "$DIR"/lat.* "$DIR/lat/" 2>/dev/null || true
/usr/bin/python3 "$HERE/peers_report.py" "$OUT" "$DIR/lat" "$MD" "$PLOTS"
