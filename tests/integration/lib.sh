# lib.sh - shared helpers of the gateway integration tests (test_gw_*.sh).
#
# Source it from a test script:  . "$(dirname "$0")/lib.sh"
#
# It makes a scratch directory under the current directory ($T; ctest runs
# each test in build/tests/integration/<name>/), builds a PKI there ($PKI),
# starts and stops the gateway (never on a fixed port: port 0 + port file),
# registers and revokes servers, and counts checks.  Every wait is bounded
# (PG_TIMEOUT seconds, default 30); an EXIT trap kills whatever the test
# started that is still running.
#
# Run the tests from a build directory (ctest does): dev-pki.sh refuses to
# write keys into the source tree outside build*/.
#
# env: PANELGATE_BUILD_DIR (bin/panelgate, bin/panelagent), PANELAGENT,
#      PANELGATE_TEST_DATA, PANELGATE_SOURCE_DIR (all set by ctest; defaults
#      derived from this file's location for runs by hand).

# shellcheck disable=SC2034,SC2119,SC2120  # variables and optional arguments for the test scripts
set -euo pipefail

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
PANELGATE_SOURCE_DIR=${PANELGATE_SOURCE_DIR:-$(cd "$LIB_DIR/../.." && pwd -P)}
PANELGATE_BUILD_DIR=${PANELGATE_BUILD_DIR:-$PANELGATE_SOURCE_DIR/build}
PANELGATE_TEST_DATA=${PANELGATE_TEST_DATA:-$PANELGATE_SOURCE_DIR/tests/data}
PANELAGENT=${PANELAGENT:-$PANELGATE_BUILD_DIR/bin/panelagent}
PG_BIN=$PANELGATE_BUILD_DIR/bin/panelgate
PY=/usr/bin/python3 # Debian's interpreter: it has python3-h2
H2CLIENT=$LIB_DIR/h2client.py
PG_TIMEOUT=${PG_TIMEOUT:-30}
export PANELGATE_TEST_DATA PANELAGENT PG_TIMEOUT
export PYTHONPATH=$LIB_DIR${PYTHONPATH:+:$PYTHONPATH}
export PYTHONDONTWRITEBYTECODE=1

[[ -x $PG_BIN ]] || { echo "lib.sh: no gateway binary at $PG_BIN" >&2; exit 1; }
[[ -x $PANELAGENT ]] || { echo "lib.sh: no panelagent binary at $PANELAGENT" >&2; exit 1; }
"$PY" -c 'import h2' 2>/dev/null || { echo "lib.sh: $PY has no h2 module (apt install python3-h2)" >&2; exit 1; }

# ---- checks -------------------------------------------------------------------

PASS=0
FAIL=0

ok() {
    PASS=$((PASS + 1))
    echo "ok - $*"
}

not_ok() {
    FAIL=$((FAIL + 1))
    echo "not ok - $*"
}

# check WHAT CMD...: runs CMD; ok when it succeeds.
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}

# check_eq WHAT GOT WANT
check_eq() {
    if [[ $2 == "$3" ]]; then ok "$1"; else not_ok "$1: got '$2', want '$3'"; fi
}

note() { echo "# $*"; }

# py_checks SCRIPT [ARGS...]: runs a python check script (stdin when SCRIPT
# is -), echoes its output and adds its "ok - " / "not ok - " lines to the
# counts.  A script that dies without a "not ok" line counts one failure.
py_checks() {
    local out=$T/py.$RANDOM$RANDOM.out rc=0
    "$PY" "$@" >"$out" 2>&1 || rc=$?
    py_tally "$out" "$rc"
}

# py_tally OUTFILE RC: echoes a python script's output and counts its lines.
py_tally() {
    local p f
    cat "$1"
    p=$(grep -c '^ok - ' "$1" || true)
    f=$(grep -c '^not ok - ' "$1" || true)
    PASS=$((PASS + p))
    FAIL=$((FAIL + f))
    if (($2 != 0 && f == 0)); then
        not_ok "python check script exited $2"
    fi
    return 0
}

# py_bg OUTFILE SCRIPT [ARGS...]: starts a python script in the background
# (killed at exit if still running); sets PY_BG_PID.
py_bg() {
    local out=$1
    shift
    "$PY" "$@" >"$out" 2>&1 &
    PY_BG_PID=$!
    BG_PIDS+=("$PY_BG_PID")
}

# py_bg_wait PID OUTFILE [SECONDS]: waits (bounded) for a py_bg script,
# then tallies its output like py_checks.
py_bg_wait() {
    local pid=$1 out=$2 s=${3:-$PG_TIMEOUT} rc=0
    if ! wait_until "$s" not_alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        echo "not ok - python script still running after ${s}s: killed" >>"$out"
    fi
    wait "$pid" 2>/dev/null || rc=$?
    py_tally "$out" "$rc"
}

# finish: stops the gateway if it still runs (that is a check too), prints
# the totals and exits non-zero on any failure.
finish() {
    if [[ -n ${GW_PID:-} ]] && alive "$GW_PID"; then
        gw_stop_check
    fi
    echo "$PASS passed, $FAIL failed"
    if ((FAIL == 0)); then exit 0; fi
    exit 1
}

# fatal WHAT: a failure after which the test cannot go on.
fatal() {
    not_ok "$*"
    [[ -f ${GW_LOG:-/nonexistent} ]] && { echo "--- last lines of the gateway log:"; tail -n 20 "$GW_LOG"; }
    finish
}

# ---- processes and waits ----------------------------------------------------------

BG_PIDS=()

# alive PID: the process exists and is not a zombie.
alive() {
    local st
    st=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}

now_ms() {
    local t=${EPOCHREALTIME//[!0-9]/} # microseconds, whatever the locale's decimal point
    echo $((10#$t / 1000))
}

# wait_until SECONDS CMD...: polls CMD every 50 ms; 0 when it succeeded.
wait_until() {
    local limit=$(($(now_ms) + $1 * 1000))
    shift
    while ! "$@"; do
        (($(now_ms) < limit)) || return 1
        sleep 0.05
    done
}

not_alive() { ! alive "$1"; }

cleanup() {
    local p
    for p in ${GW_PID:-} "${BG_PIDS[@]}"; do
        if [[ -n $p ]] && alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
    done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- scratch and PKI ------------------------------------------------------------------

T=$PWD/scratch
rm -rf "$T"
mkdir -p "$T"
PKI=$T/pki
export PG_PKI=$PKI

spki() {
    openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1
}

# make_pki: the dev PKI (ca, gateway, nimble-01, wowza-01) plus, in $PKI:
#   stranger-01  CA-valid client certificate of its own key, not registered
#   spare-01     another CA-valid one (for tests that register/revoke it)
#   expired      nimble-01's key and name, validity 2020..2021
#   notyet       nimble-01's key and name, validity 2099..
#   rogue        nimble-01's key and name, signed by an unrelated CA
#   wrongsig     nimble-01's key and name, issuer name of the dev CA but
#                signed by a different key (an impostor CA of the same name)
#   tampered     a valid nimble-01 certificate with one byte of its name
#                changed after signing
#   noeku        own key, serverAuth only (no clientAuth EKU)
# Bad certificates reuse a registered key where they can, so that what
# refuses them is the certificate check, not the registry.
make_pki() {
    bash "$PANELGATE_SOURCE_DIR/certs/dev-pki.sh" "$PKI" >"$T/pki.log" 2>&1 ||
        { cat "$T/pki.log"; fatal "dev PKI (certs/dev-pki.sh)"; }
    local d=$PKI/extra
    mkdir -p "$d/newcerts"
    : >"$d/index.txt"
    cat >"$d/openssl.cnf" <<EOF
[ca]
default_ca = dev
[dev]
dir = $d
database = $d/index.txt
new_certs_dir = $d/newcerts
serial = $d/serial
default_md = sha256
policy = pol
unique_subject = no
copy_extensions = none
email_in_dn = no
[pol]
commonName = supplied
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_noaki]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
[serveronly]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    openssl rand -hex 16 >"$d/serial"
    local ec=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256)
    (
        cd "$PKI"
        umask 077
        openssl genpkey "${ec[@]}" -out rogue-ca.key 2>/dev/null
        openssl genpkey "${ec[@]}" -out impostor-ca.key 2>/dev/null
        for k in stranger-01 spare-01 noeku; do openssl genpkey "${ec[@]}" -out $k.key 2>/dev/null; done
        openssl req -config "$d/openssl.cnf" -new -x509 -key rogue-ca.key -days 3650 \
            -subj "/CN=rogue CA" -extensions ca_ext -out rogue-ca.crt
        # same subject as the dev CA, different key
        openssl req -config "$d/openssl.cnf" -new -x509 -key impostor-ca.key -days 3650 \
            -subj "$(openssl x509 -in ca.crt -noout -subject -nameopt compat | sed 's/^subject=//')" \
            -extensions ca_ext -out impostor-ca.crt
    ) || fatal "extra PKI: CAs"
    # issue NAME KEY CN CA PROFILE [START END]
    issue() {
        local name=$1 key=$2 cn=$3 ca=$4 prof=$5 dates=()
        if [[ $# -ge 7 ]]; then dates=(-startdate "$6" -enddate "$7"); else dates=(-days 30); fi
        cp "$PKI/$key.key" "$PKI/$name.key" 2>/dev/null || true
        if ! { openssl req -config "$d/openssl.cnf" -new -key "$PKI/$key.key" -subj "/CN=$cn" \
            -out "$d/$name.csr" &&
            openssl ca -batch -config "$d/openssl.cnf" -name dev -cert "$PKI/$ca.crt" \
                -keyfile "$PKI/$ca.key" -in "$d/$name.csr" -out "$PKI/$name.crt" -notext \
                -extensions "$prof" "${dates[@]}" >>"$d/ca.log" 2>&1; }; then
            cat "$d/ca.log"
            fatal "extra PKI: issuing $name"
        fi
    }
    issue stranger-01 stranger-01 stranger-01 ca client
    issue spare-01 spare-01 spare-01 ca client
    issue expired nimble-01 nimble-01 ca client 20200101000000Z 20210101000000Z
    issue notyet nimble-01 nimble-01 ca client 20990101000000Z 20991231000000Z
    issue rogue nimble-01 nimble-01 rogue-ca client
    issue wrongsig nimble-01 nimble-01 impostor-ca client_noaki
    issue noeku noeku noeku-01 ca serveronly
    # tampered: change one byte of the subject name inside a signed cert
    cp "$PKI/nimble-01.key" "$PKI/tampered.key"
    "$PY" - "$PKI/nimble-01.crt" "$PKI/tampered.crt" <<'EOF' || fatal "extra PKI: tampered"
import base64, sys
pem = open(sys.argv[1]).read()
der = bytearray(base64.b64decode("".join(l for l in pem.splitlines() if "-----" not in l)))
i = der.rfind(b"nimble-01")          # the subject CN (after the issuer)
der[i + len("nimble-0")] = ord("2")  # nimble-01 -> nimble-02
b64 = base64.b64encode(bytes(der)).decode()
open(sys.argv[2], "w").write("-----BEGIN CERTIFICATE-----\n" +
    "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64)) + "\n-----END CERTIFICATE-----\n")
EOF
    chmod 600 "$PKI"/*.key
}

# ---- the gateway -----------------------------------------------------------------

GW_PID=
GW_CONF=$T/gw.conf
GW_LOG=$T/gw.log
PG_DB=$T/pg.db

# gw_config [LINES...]: writes $GW_CONF: listeners on 127.0.0.1:0 and [::1]:0,
# the dev PKI, $PG_DB, debug logs; each extra argument is one more line
# (sections may repeat, e.g. gw_config "[http2]" "max_body_bytes = 64k").
# Unless the lines set up [ratelimit] themselves, the per-server and
# per-address limits are off: the tests open many connections and send
# frames fast from one address (test_gw_ratelimit.sh tests the limits).
# Unless they set up [admin], the admin listener takes any free loopback
# port (its default, 127.0.0.1:8445, would collide between tests run in
# parallel); admin_port reads it from the log.
gw_config() {
    local rl=1 adm=1 l
    for l in "$@"; do [[ $l == "[ratelimit]" ]] && rl=0; [[ $l == "[admin]" ]] && adm=0; done
    {
        echo "[server]"
        echo "listen = 127.0.0.1:0, [::1]:0"
        echo "port_file = $T/ports"
        echo "[tls]"
        echo "cert_file = $PKI/gateway.crt"
        echo "key_file = $PKI/gateway.key"
        echo "client_ca_file = $PKI/ca.crt"
        echo "[storage]"
        echo "sqlite_path = $PG_DB"
        echo "[log]"
        echo "log_level = debug"
        echo "refusal_log_per_s = 1000"
        if ((rl)); then
            echo "[ratelimit]"
            echo "frames_per_s = 0"
            echo "bytes_per_s = 0"
            echo "handshakes_per_s_per_addr = 0"
        fi
        if ((adm)); then
            echo "[admin]"
            echo "listen = 127.0.0.1:0"
        fi
        for l in "$@"; do echo "$l"; done
    } >"$GW_CONF"
}

# GW_ENV: extra VAR=VALUE words for the gateway's environment (a test that
# runs it under libfaketime sets them).
GW_ENV=()

# gw_start: starts the gateway on $GW_CONF (stderr appended to $GW_LOG),
# waits for its port file; sets GW_PID, GW_PORT (127.0.0.1), GW_PORT6 (::1)
# and exports them as PG_PORT/PG_PORT6 for python.
gw_start() {
    rm -f "$T/ports"
    [[ -f $GW_CONF ]] || gw_config
    local n0
    n0=$(log_count '"event":"started"')
    env "${GW_ENV[@]}" "$PG_BIN" --config "$GW_CONF" >>"$T/gw.out" 2>>"$GW_LOG" &
    GW_PID=$!
    export PG_GW_PID=$GW_PID
    wait_until "$PG_TIMEOUT" gw_ready "$n0" ||
        fatal "gateway started (port file and 'started' log line within ${PG_TIMEOUT}s)"
    GW_PORT=$(awk '$1 == "127.0.0.1" { print $2; exit }' "$T/ports")
    GW_PORT6=$(awk '$1 == "::1" { print $2; exit }' "$T/ports")
    export PG_PORT=$GW_PORT PG_PORT6=$GW_PORT6 PG_HOST=127.0.0.1
    note "gateway pid $GW_PID on 127.0.0.1:$GW_PORT and [::1]:$GW_PORT6"
}

# admin_port: the port of the admin listener, from the last admin_listening
# log line.
admin_port() {
    grep '"event":"admin_listening"' "$GW_LOG" | tail -1 | sed -E 's/.*:([0-9]+) \(GET.*/\1/'
}

gw_ready() {
    alive "$GW_PID" || fatal "gateway exited during start (see $GW_LOG)"
    [[ -s $T/ports ]] && (($(wc -l <"$T/ports") >= 2)) && (($(log_count '"event":"started"') > $1))
}

# gw_stop [SECONDS]: SIGTERM, waits for the exit; sets GW_RC (the exit
# status, or 137 after a SIGKILL when it did not stop in time) and
# GW_STOP_MS (time to exit).
gw_stop() {
    local limit=${1:-$PG_TIMEOUT} t0
    GW_RC=0
    [[ -n $GW_PID ]] || return 0
    t0=$(now_ms)
    kill -TERM "$GW_PID" 2>/dev/null || true
    if ! wait_until "$limit" not_alive "$GW_PID"; then
        note "gateway did not exit within ${limit}s of SIGTERM: killing it"
        kill -KILL "$GW_PID" 2>/dev/null || true
    fi
    wait "$GW_PID" 2>/dev/null || GW_RC=$?
    GW_STOP_MS=$(($(now_ms) - t0))
    GW_PID=
}

# gw_stop_check: gw_stop, then checks exit 0 and a clean log.
gw_stop_check() {
    gw_stop "$@"
    check_eq "gateway exits 0 on SIGTERM (in ${GW_STOP_MS} ms)" "$GW_RC" 0
    check_log_clean
}

# check_log_clean: no sanitizer report or crash in the gateway's stderr.
check_log_clean() {
    if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|runtime error:|SUMMARY: .*Sanitizer|Assertion .* failed' "$GW_LOG"; then
        not_ok "gateway log free of sanitizer reports and assertion failures"
        grep -E -A30 'ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|runtime error:|Assertion .* failed' "$GW_LOG" | head -60
    else
        ok "gateway log free of sanitizer reports and assertion failures"
    fi
}

# log_count PATTERN: lines of $GW_LOG matching the extended regex.
log_count() {
    local n
    n=$(grep -Ec -- "$1" "$GW_LOG" 2>/dev/null) || true
    echo "${n:-0}"
}

# wait_log PATTERN [N] [SECONDS]: waits until at least N (default 1) lines
# match.
wait_log() {
    local pat=$1 n=${2:-1} s=${3:-$PG_TIMEOUT}
    wait_until "$s" _log_at_least "$pat" "$n"
}
_log_at_least() { (($(log_count "$1") >= $2)); }

# gw_reload: SIGHUP, then waits for the next "reloaded" (or fails on
# "reload_failed").
gw_reload() {
    local n f
    n=$(log_count '"event":"reloaded"')
    f=$(log_count '"event":"reload_failed"')
    kill -HUP "$GW_PID"
    wait_until "$PG_TIMEOUT" _reload_done "$n" "$f" || fatal "gateway reload (no 'reloaded' line)"
    (($(log_count '"event":"reload_failed"') == f)) || fatal "gateway reload failed: $(grep reload_failed "$GW_LOG" | tail -1)"
}
_reload_done() {
    (($(log_count '"event":"reloaded"') > $1 || $(log_count '"event":"reload_failed"') > $2))
}

# ---- registry and storage -----------------------------------------------------------

# sql SQL...: runs statements on $PG_DB (waits for locks).
sql() {
    sqlite3 -batch -cmd '.timeout 10000' "$PG_DB" "$@"
}

# register NAME KIND CERTFILE: adds a server and its pin (no reload).
register() {
    local pin
    pin=$(spki "$3")
    sql "PRAGMA foreign_keys=ON; BEGIN;
         INSERT INTO servers(name, kind, created_at) VALUES ('$1', '$2', unixepoch());
         INSERT INTO server_pins(spki_sha256, server_id, not_after, created_at)
           VALUES (X'$pin', (SELECT id FROM servers WHERE name = '$1'), NULL, unixepoch());
         COMMIT;"
}

server_id() { sql "SELECT id FROM servers WHERE name = '$1'"; }

# revoke NAME: marks it revoked and reloads the gateway.
revoke() {
    sql "UPDATE servers SET status = 'revoked' WHERE name = '$1'"
    gw_reload
}

# register_defaults: nimble-01 (nimble) and wowza-01 (wowza), then reload.
register_defaults() {
    register nimble-01 nimble "$PKI/nimble-01.crt"
    register wowza-01 wowza "$PKI/wowza-01.crt"
    gw_reload
}

# encode NAME: tests/data/NAME.json -> $T/NAME.msgpack (panelagent encode).
encode() {
    "$PANELAGENT" encode <"$PANELGATE_TEST_DATA/$1.json" >"$T/$1.msgpack" ||
        fatal "panelagent encode $1.json"
}

# ---- clients ----------------------------------------------------------------------------

# curl_post CERT FILE [CURL ARGS...]: POSTs FILE to /v1/stats over HTTP/2
# with PKI/CERT.{crt,key}; sets CURL_RC and CURL_CODE; response headers in
# $T/curl.hdr, body in $T/curl.body.
curl_post() {
    local cert=$1 file=$2
    shift 2
    CURL_RC=0
    CURL_CODE=$(curl -sS --http2 --max-time "$PG_TIMEOUT" --cacert "$PKI/ca.crt" \
        --cert "$PKI/$cert.crt" --key "$PKI/$cert.key" \
        -H 'content-type: application/msgpack' --data-binary @"$file" \
        -D "$T/curl.hdr" -o "$T/curl.body" -w '%{http_code}' \
        "$@" "https://127.0.0.1:$GW_PORT/v1/stats" 2>"$T/curl.err") || CURL_RC=$?
}

# header_value NAME FILE: value of a response header in a curl -D dump.
header_value() {
    tr -d '\r' <"$2" | awk -v n="$1" 'BEGIN { IGNORECASE = 1 } tolower($1) == tolower(n) ":" { $1 = ""; sub(/^ /, ""); print; exit }'
}

# tls_probe CERT [S_CLIENT ARGS...]: one TLS handshake with openssl
# s_client (-alpn h2 unless given other args; CERT "-" = no client
# certificate); output in $T/probe.out; prints the alert description
# number the client received ("none" when there was none).
tls_probe() {
    local cert=$1 args=()
    shift
    [[ $cert != - ]] && args+=(-cert "$PKI/$cert.crt" -key "$PKI/$cert.key")
    (($# > 0)) || set -- -alpn h2
    timeout "$PG_TIMEOUT" openssl s_client -connect "127.0.0.1:$GW_PORT" -servername localhost \
        -CAfile "$PKI/ca.crt" -verify_return_error "${args[@]}" "$@" \
        </dev/null >"$T/probe.out" 2>&1 || true
    local a
    a=$(grep -oE 'alert number [0-9]+' "$T/probe.out" | head -1 | grep -oE '[0-9]+$') || true
    echo "${a:-none}"
}

alert_name() {
    case $1 in
    40) echo handshake_failure ;; 42) echo bad_certificate ;; 43) echo unsupported_certificate ;;
    44) echo certificate_revoked ;; 45) echo certificate_expired ;; 46) echo certificate_unknown ;; 48) echo unknown_ca ;;
    49) echo access_denied ;; 51) echo decrypt_error ;; 120) echo no_application_protocol ;;
    none) echo none ;; *) echo "alert_$1" ;;
    esac
}
