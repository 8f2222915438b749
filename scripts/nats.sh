# nats.sh - a local NATS JetStream cluster on loopback, for the integration
# tests (tests/integration/nats.sh adapts it to lib.sh) and `make
# demo-cluster` (scripts/demo_cluster.sh).  Source it, set NATS_DIR, then:
#
#   nats_cluster_start [N]   N (default 3; 1: a single server, no cluster)
#                            nats-server processes with
#                            JetStream, free loopback ports, store directories
#                            under $NATS_DIR/<i>; waits until the cluster has a
#                            JetStream meta leader.  Sets NATS_URLS (every
#                            client URL, comma-separated) and NATS_URL (node
#                            1's); NATS_MPORT[i] is node i's monitoring port.
#   nats_wait_ready [SECONDS]  every running node (one at least) answers
#                            /healthz with JetStream on and the meta group
#                            has a leader
#   nats_kill I              kill -9 node I (1-based), waits for it to go
#   nats_start_node I        starts node I again (same ports and store)
#   nats_stop_all            SIGTERM every node, bounded, then SIGKILL
#   nats_kill_all            SIGKILL every node still running (for traps)
#   nats_store_dirs          prints the store directories (for byte scans)
#
# Client-side security, read by nats_cluster_start (set them before it; they
# apply to every node, routes stay plain on loopback):
#   NATS_TLS_CERT, NATS_TLS_KEY  the server certificate and key: clients must
#                            use TLS (NATS_URLS are tls://...)
#   NATS_TLS_CA              the CA file client certificates are checked
#                            against; with NATS_TLS_VERIFY=1 every client
#                            must present one signed by it
#   NATS_USER, NATS_PASSWORD one user with a password
#   NATS_TOKEN               an authorization token
#   NATS_EXTRA_CONF          a file of more settings, appended (e.g. an
#                            operator-mode setup: tests/integration/natsjwt.py)
# At most one of user and token.  The settings go into
# $NATS_DIR/client.conf (0600), never on a command line.
#
# Every wait is bounded (NATS_TIMEOUT seconds, default 30).  A function that
# fails calls nats_fail with the reason, then returns 1.  Three hooks the
# caller may redefine after sourcing: nats_note MESSAGE (a node started or
# was killed; default: printed), nats_started PID (a node process started;
# default: nothing) and nats_fail MESSAGE (default: printed on stderr).
# shellcheck disable=SC2034  # variables for the callers

NATS_SERVER=${NATS_SERVER:-$(command -v nats-server || true)}
NATS_TIMEOUT=${NATS_TIMEOUT:-30}
NATS_DIR=${NATS_DIR:-}
NATS_N=0
NATS_PIDS=()
NATS_CPORT=()  # client ports
NATS_RPORT=()  # route (cluster) ports
NATS_MPORT=()  # monitoring ports
NATS_URLS=
NATS_URL=
NATS_TLS_CERT=${NATS_TLS_CERT:-}
NATS_TLS_KEY=${NATS_TLS_KEY:-}
NATS_TLS_CA=${NATS_TLS_CA:-}
NATS_TLS_VERIFY=${NATS_TLS_VERIFY:-}
NATS_USER=${NATS_USER:-}
NATS_PASSWORD=${NATS_PASSWORD:-}
NATS_TOKEN=${NATS_TOKEN:-}
NATS_EXTRA_CONF=${NATS_EXTRA_CONF:-}

nats_note() { echo "$*"; }
nats_started() { :; }
nats_fail() { echo "nats: $*" >&2; }

_nats_alive() { # PID: exists and is not a zombie
    local st
    st=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}
_nats_gone() { ! _nats_alive "$1"; }
_nats_wait() { # SECONDS COMMAND...: polls COMMAND every 0.05 s, bounded
    local deadline=$((SECONDS + $1 + 1)) # SECONDS counts whole seconds: +1
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}

# nats_free_ports N: N distinct free TCP ports on 127.0.0.1 (bound all at
# once, then released, so they differ from each other).
nats_free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# nats_routes I: the route URLs of every node but I.
nats_routes() {
    local i r=
    for ((i = 1; i <= NATS_N; i++)); do
        ((i == $1)) && continue
        r+="${r:+,}nats://127.0.0.1:${NATS_RPORT[i]}"
    done
    echo "$r"
}

# _nats_quote VALUE: a nats-server config string ("..." with \ and " escaped).
_nats_quote() {
    local v=${1//\\/\\\\}
    printf '"%s"' "${v//\"/\\\"}"
}

# _nats_client_conf: writes $NATS_DIR/client.conf from the NATS_TLS_* and
# credential variables (empty when none is set).
_nats_client_conf() {
    local f=$NATS_DIR/client.conf
    [[ -n $NATS_USER && -n $NATS_TOKEN ]] && { nats_fail "NATS_USER or NATS_TOKEN, not both"; return 1; }
    if [[ -n $NATS_TLS_CERT$NATS_TLS_KEY && ( -z $NATS_TLS_CERT || -z $NATS_TLS_KEY ) ]]; then
        nats_fail "NATS_TLS_CERT and NATS_TLS_KEY: both or neither"; return 1
    fi
    if [[ -n $NATS_TLS_VERIFY && ( -z $NATS_TLS_CA || -z $NATS_TLS_CERT ) ]]; then
        nats_fail "NATS_TLS_VERIFY needs NATS_TLS_CA and NATS_TLS_CERT"; return 1
    fi
    mkdir -p "$NATS_DIR"
    (
        umask 077
        {
            if [[ -n $NATS_TLS_CERT ]]; then
                echo "tls {"
                echo "  cert_file: $(_nats_quote "$NATS_TLS_CERT")"
                echo "  key_file: $(_nats_quote "$NATS_TLS_KEY")"
                [[ -n $NATS_TLS_CA ]] && echo "  ca_file: $(_nats_quote "$NATS_TLS_CA")"
                [[ -n $NATS_TLS_VERIFY ]] && echo "  verify: true"
                echo "  timeout: 5"
                echo "}"
            fi
            if [[ -n $NATS_USER ]]; then
                echo "authorization { user: $(_nats_quote "$NATS_USER"), password: $(_nats_quote "$NATS_PASSWORD") }"
            elif [[ -n $NATS_TOKEN ]]; then
                echo "authorization { token: $(_nats_quote "$NATS_TOKEN") }"
            fi
            if [[ -n $NATS_EXTRA_CONF ]]; then cat "$NATS_EXTRA_CONF"; fi
        } >"$f"
    )
}

nats_start_node() {
    local i=$1 dir=$NATS_DIR/$1
    mkdir -p "$dir"
    local cluster=() # one node: no cluster (JetStream refuses a cluster without routes)
    ((NATS_N > 1)) && cluster=(--cluster_name pg-test --cluster "nats://127.0.0.1:${NATS_RPORT[i]}"
        --routes "$(nats_routes "$i")")
    "$NATS_SERVER" -c "$NATS_DIR/client.conf" -n "pg-nats-$i" -a 127.0.0.1 -p "${NATS_CPORT[i]}" \
        -m "${NATS_MPORT[i]}" -js -sd "$dir/store" "${cluster[@]}" >>"$dir/server.log" 2>&1 &
    NATS_PIDS[i]=$!
    nats_started "$!"
    nats_note "nats node $i: pid ${NATS_PIDS[i]}, client ${NATS_CPORT[i]}, route ${NATS_RPORT[i]}, monitor ${NATS_MPORT[i]}"
}

nats_cluster_start() {
    local n=${1:-3} i ports
    [[ -x $NATS_SERVER ]] || { nats_fail "nats-server installed (scripts/deps.sh)"; return 1; }
    [[ -n $NATS_DIR ]] || { nats_fail "NATS_DIR set before nats_cluster_start"; return 1; }
    NATS_N=$n
    _nats_client_conf || return 1
    local scheme=nats
    [[ -n $NATS_TLS_CERT ]] && scheme=tls
    read -r -a ports <<<"$(nats_free_ports $((3 * n)))"
    NATS_URLS=
    for ((i = 1; i <= n; i++)); do
        NATS_CPORT[i]=${ports[3 * i - 3]}
        NATS_RPORT[i]=${ports[3 * i - 2]}
        NATS_MPORT[i]=${ports[3 * i - 1]}
        NATS_URLS+="${NATS_URLS:+,}$scheme://127.0.0.1:${NATS_CPORT[i]}"
    done
    NATS_URL=$scheme://127.0.0.1:${NATS_CPORT[1]}
    for ((i = 1; i <= n; i++)); do nats_start_node "$i"; done
    nats_wait_ready ||
        { nats_fail "nats cluster of $n ready (JetStream meta leader) within ${NATS_TIMEOUT}s"; return 1; }
}

# _nats_node_ready I: node I's JetStream is healthy and sees a meta leader
# with the whole cluster.
_nats_node_ready() {
    local m=${NATS_MPORT[$1]}
    curl -fsS --max-time 2 "http://127.0.0.1:$m/healthz?js-enabled-only=true" >/dev/null 2>&1 || return 1
    ((NATS_N > 1)) || return 0 # a single server has no meta group
    curl -fsS --max-time 2 "http://127.0.0.1:$m/jsz" 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
mc = d.get("meta_cluster") or {}
sys.exit(0 if mc.get("leader") else 1)'
}

_nats_all_ready() {
    local i up=0
    for ((i = 1; i <= NATS_N; i++)); do
        _nats_alive "${NATS_PIDS[i]}" || continue
        _nats_node_ready "$i" || return 1
        up=$((up + 1))
    done
    ((up > 0)) # not when every node died (a bad option, a port taken)
}

nats_wait_ready() {
    _nats_wait "${1:-$NATS_TIMEOUT}" _nats_all_ready
}

nats_kill() {
    local p=${NATS_PIDS[$1]}
    kill -KILL "$p" 2>/dev/null || true
    _nats_wait "$NATS_TIMEOUT" _nats_gone "$p" || { nats_fail "nats node $1 gone after kill -9"; return 1; }
    wait "$p" 2>/dev/null || true
    nats_note "nats node $1 killed (-9)"
}

nats_stop_all() {
    local i p
    for ((i = 1; i <= NATS_N; i++)); do
        p=${NATS_PIDS[i]:-}
        [[ -n $p ]] && _nats_alive "$p" && kill -TERM "$p" 2>/dev/null
    done
    for ((i = 1; i <= NATS_N; i++)); do
        p=${NATS_PIDS[i]:-}
        [[ -n $p ]] || continue
        if ! _nats_wait "$NATS_TIMEOUT" _nats_gone "$p"; then
            kill -KILL "$p" 2>/dev/null || true
        fi
        wait "$p" 2>/dev/null || true
    done
}

nats_kill_all() {
    local i p
    for ((i = 1; i <= NATS_N; i++)); do
        p=${NATS_PIDS[i]:-}
        [[ -n $p ]] && _nats_alive "$p" && kill -KILL "$p" 2>/dev/null
    done
    return 0
}

nats_store_dirs() {
    local i
    for ((i = 1; i <= NATS_N; i++)); do echo "$NATS_DIR/$i"; done
}
