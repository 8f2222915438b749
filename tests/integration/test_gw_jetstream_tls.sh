#!/usr/bin/env bash
# test_gw_jetstream_tls.sh - the JetStream engine's TLS and credentials
# ([jetstream] tls_ca_file, tls_cert_file/tls_key_file, user/password,
# token, creds_file) against real nats-server nodes (scripts/nats.sh),
# issue 12.
#  1. A 3-node cluster that requires TLS, a client certificate of the dev
#     CA and a user with a password: the gateway connects over tls:// with
#     the CA, its client certificate and the password and delivers a frame
#     (202); the node it is connected to is killed: it reconnects (over TLS
#     again) and delivers another; both are in the stream (read back by
#     jstool over TLS); panelgate-store connects the same way and stores
#     them.
#  2. Each wrong setting makes the start fail, and the log names the cause:
#     a CA the servers' certificate does not chain to, no client
#     certificate, one of another CA, a wrong password, no credentials; a nats:// URL to the
#     TLS servers works (TLS is switched on by the CA file).
#     Without tls_ca_file the system's CAs verify the servers (OpenSSL's
#     SSL_CERT_FILE pointed at the dev CA, then not).
#  3. A node that requires a token, over TLS with a certificate naming
#     localhost only: the right token to tls://localhost connects, a wrong
#     one fails the start naming the credentials; tls://127.0.0.1 fails
#     naming the address mismatch (the host of the URL is verified).
#  4. A node in operator mode (tests/integration/natsjwt.py): a .creds
#     file of its account connects and delivers a frame; one of an unknown
#     account, and a missing file, fail the start naming the cause; a file
#     holding only the seed is refused before anything is sent (a
#     recording listener shows the seed never leaves).
#  5. Neither the password nor the token (right or wrong) nor any
#     nkey seed is in any log of the gateway or the store.
# shellcheck disable=SC2034  # NATS_* and GW_ENV are read by nats.sh and lib.sh
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nats.sh"

JSTOOL=${JSTOOL:-$PANELGATE_BUILD_DIR/bin/jstool}
PANELGATE_STORE=${PANELGATE_STORE:-$PANELGATE_BUILD_DIR/bin/panelgate-store}
[[ -x $JSTOOL ]] || fatal "jstool built ($JSTOOL)"
[[ -x $PANELGATE_STORE ]] || fatal "panelgate-store built ($PANELGATE_STORE)"
STREAM=PGTLS
PREFIX=pgtls.frames
PASSWORD=pw-$(openssl rand -hex 12)
WRONG_PASSWORD=pw-$(openssl rand -hex 12)
TOKEN=tok-$(openssl rand -hex 12)
WRONG_TOKEN=tok-$(openssl rand -hex 12)

make_pki
# The nodes present the dev gateway certificate (SAN 127.0.0.1, serverAuth)
# and require a client certificate of the dev CA; the gateway's client
# certificate is spare-01 (clientAuth).
NATS_TLS_CERT=$PKI/gateway.crt
NATS_TLS_KEY=$PKI/gateway.key
NATS_TLS_CA=$PKI/ca.crt
NATS_TLS_VERIFY=1
NATS_USER=panelgate
NATS_PASSWORD=$PASSWORD
nats_cluster_start 3
check "the cluster's client URLs are tls:// ($NATS_URLS)" test "${NATS_URLS:0:6}" = tls://

CA_LINE="tls_ca_file = $PKI/ca.crt"
CERT_LINES=("tls_cert_file = $PKI/spare-01.crt" "tls_key_file = $PKI/spare-01.key")
USER_LINES=("user = panelgate" "password = $PASSWORD")
# js_config [JETSTREAM LINES...]: the engine on $NATS_URLS with those lines
js_config() {
    gw_config "[storage]" "storage_engine = jetstream" "retry_after_s = 1" \
        "[jetstream]" "stream = $STREAM" "subject_prefix = $PREFIX" "replicas = ${REPLICAS:-3}" \
        "connect_timeout_ms = 3000" "publish_timeout_ms = 3000" "$@"
}

# 1. the right CA, client certificate and password
js_config "servers = $NATS_URLS" "$CA_LINE" "${CERT_LINES[@]}" "${USER_LINES[@]}"
# the registry: the cluster's bucket, written by panelgatectl over the same
# TLS and credentials (a gateway starts only on one)
kv_register_defaults
gw_start
check "over TLS with a client certificate and a password: the stream is ready" \
    wait_log '"event":"jetstream_ready"' 1 10
encode wowza
curl_post wowza-01 "$T/wowza.msgpack"
check_eq "a frame over the TLS connection: 202" "$CURL_CODE" 202
# the node the gateway is connected to is killed: it reconnects to another
# (over TLS again, with the certificate and the password) and delivers
gw_node() { # the node whose /connz lists the client named "panelgate" (0: none)
    local i
    for ((i = 1; i <= NATS_N; i++)); do
        if curl -fsS --max-time 2 "http://127.0.0.1:${NATS_MPORT[i]}/connz" 2>/dev/null |
            grep -q '"name": *"panelgate"'; then
            echo "$i"
            return
        fi
    done
    echo 0
}
NODE=$(gw_node)
check "the gateway's connection is on a node ($NODE)" test "$NODE" -ge 1
((NODE >= 1)) || fatal "no node has the gateway's connection"
nats_kill "$NODE"
check "its node killed: reconnected over TLS" wait_log '"event":"jetstream_reconnected"' 1 20
sed 's/"seq": 917,/"seq": 918,/' "$PANELGATE_TEST_DATA/wowza.json" | "$PANELAGENT" encode \
    >"$T/wowza918.msgpack" || fatal "panelagent encode (seq 918)"
post918() { curl_post wowza-01 "$T/wowza918.msgpack"; [[ $CURL_CODE == 202 ]]; }
check "after the reconnect: a new frame gets 202" wait_until 20 post918
nats_start_node "$NODE"
check "the cluster is whole again" nats_wait_ready 30
export JSTOOL_CA=$PKI/ca.crt JSTOOL_CERT=$PKI/spare-01.crt JSTOOL_KEY=$PKI/spare-01.key
export JSTOOL_USER=panelgate JSTOOL_PASSWORD=$PASSWORD
# Right after a node rejoins, nats-server 2.9 may answer a stream info from
# the rejoining replica's state for a moment (seen: msgs=1 while both
# publishes had been acknowledged, and panelgate-store below read both):
# read until the two are there, for a few seconds.
both_ids() {
    "$JSTOOL" dump "$NATS_URLS" "$STREAM" >"$T/dump.txt" 2>"$T/dump.err" || true
    [[ $(awk 'NR > 1 { print $3 }' "$T/dump.txt" | tr '\n' ' ') == "$WOWZA_ID.917 $WOWZA_ID.918 " ]]
}
wait_until 10 both_ids || true
check "jstool reads the stream over TLS ($(cat "$T/dump.err"))" test ! -s "$T/dump.err"
check_eq "the stream holds both frames (Nats-Msg-Id <id>.917, <id>.918)" \
    "$(awk 'NR > 1 { print $3 }' "$T/dump.txt" | tr '\n' ' ')" "$WOWZA_ID.917 $WOWZA_ID.918 "
unset JSTOOL_CA JSTOOL_CERT JSTOOL_KEY JSTOOL_USER JSTOOL_PASSWORD
gw_stop_check

# panelgate-store, with the same [jetstream] settings
STORE_DB=$T/store.db
STORE_LOG=$T/store.log
{
    echo "[tls]"
    echo "cert_file = $PKI/gateway.crt"
    echo "key_file = $PKI/gateway.key"
    echo "client_ca_file = $PKI/ca.crt"
    echo "[storage]"
    echo "sqlite_path = $STORE_DB"
    echo "[jetstream]"
    printf '%s\n' "servers = $NATS_URLS" "stream = $STREAM" "subject_prefix = $PREFIX" \
        "replicas = 3" "connect_timeout_ms = 3000" "consumer = pgtls-store" "$CA_LINE" \
        "${CERT_LINES[@]}" "${USER_LINES[@]}"
    echo "[log]"
    echo "log_level = debug"
} >"$T/store.conf"
"$PANELGATE_STORE" --config "$T/store.conf" >>"$T/store.out" 2>>"$STORE_LOG" &
STORE_PID=$!
BG_PIDS+=("$STORE_PID")
store_rows() { sqlite3 -batch -cmd '.timeout 10000' "$STORE_DB" "SELECT count(*) FROM frames" 2>/dev/null || echo -1; }
rows_are() { [[ $(store_rows) == "$1" ]]; }
check "panelgate-store over TLS: started" wait_until 20 grep -q '"event":"started"' "$STORE_LOG"
check "panelgate-store stored both frames" wait_until 20 rows_are 2
kill -TERM "$STORE_PID" 2>/dev/null || true
wait_until 20 not_alive "$STORE_PID" || kill -KILL "$STORE_PID" 2>/dev/null || true
rc=0
wait "$STORE_PID" 2>/dev/null || rc=$?
check_eq "panelgate-store exits 0 on SIGTERM" "$rc" 0

# 2. start failures, each naming its cause
N_FAIL=0
# start_fails WHAT PATTERN [JETSTREAM LINES...]: the gateway with those
# lines must exit non-zero (not by the timeout) and log PATTERN (ERE)
start_fails() {
    local what=$1 pat=$2 rc=0 log
    shift 2
    N_FAIL=$((N_FAIL + 1))
    log=$T/fail.$N_FAIL.log
    js_config "$@"
    timeout 30 "$PG_BIN" --config "$GW_CONF" >>"$T/gw.out" 2>"$log" || rc=$?
    check "$what: the start fails (exit $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
    if grep -Eq -- "$pat" "$log"; then
        ok "$what: the log names the cause (/$pat/)"
    else
        not_ok "$what: the log names the cause (/$pat/): $(grep -E 'start_failed|jetstream' "$log" | tail -2)"
    fi
}
start_fails "a CA the servers' certificate does not chain to" \
    '"event":"start_failed".*TLS to the NATS server failed: .*unable to get local issuer certificate.*tls_ca_file' \
    "servers = $NATS_URLS" "tls_ca_file = $PKI/rogue-ca.crt" "${CERT_LINES[@]}" "${USER_LINES[@]}"
start_fails "no client certificate, the servers require one" \
    '"event":"start_failed".*closed the TLS connection.*requires a client certificate and none is set \(\[jetstream\] tls_cert_file' \
    "servers = $NATS_URLS" "$CA_LINE" "${USER_LINES[@]}"
start_fails "a client certificate of another CA" \
    '"event":"start_failed".*closed the TLS connection.*requires a client certificate and refuses \[jetstream\] tls_cert_file' \
    "servers = $NATS_URLS" "$CA_LINE" "tls_cert_file = $PKI/rogue.crt" \
    "tls_key_file = $PKI/rogue.key" "${USER_LINES[@]}"
start_fails "a wrong password" \
    '"event":"start_failed".*refused the credentials \(Authorization Violation\): check \[jetstream\] user/password' \
    "servers = $NATS_URLS" "$CA_LINE" "${CERT_LINES[@]}" "user = panelgate" \
    "password = $WRONG_PASSWORD"
start_fails "no credentials, the servers require them" \
    '"event":"start_failed".*requires credentials \(Authorization Violation\): none is set' \
    "servers = $NATS_URLS" "$CA_LINE" "${CERT_LINES[@]}"

read -r DEAD_PORT < <(nats_free_ports 1)
start_fails "no server listening" \
    '"event":"start_failed".*no server of \[jetstream\] servers answered \(No server available for connection\)"' \
    "servers = nats://127.0.0.1:$DEAD_PORT" "${USER_LINES[@]}"

# a nats:// URL to the TLS nodes: the CA file switches TLS on
js_config "servers = ${NATS_URLS//tls:/nats:}" "$CA_LINE" "${CERT_LINES[@]}" "${USER_LINES[@]}"
gw_start
check "nats:// URLs with tls_ca_file: connected over TLS" \
    wait_log '"event":"jetstream_ready"' 2 10
gw_stop_check
# no tls_ca_file: the system's CAs (OpenSSL's default file, here the dev CA)
js_config "servers = $NATS_URLS" "${CERT_LINES[@]}" "${USER_LINES[@]}"
GW_ENV=("SSL_CERT_FILE=$PKI/ca.crt")
gw_start
check "no tls_ca_file: the system's CAs verify the servers" \
    wait_log '"event":"jetstream_ready"' 3 10
gw_stop_check
GW_ENV=()
start_fails "no tls_ca_file, the system's CAs do not have the servers' CA" \
    '"event":"start_failed".*TLS to the NATS server failed: .*unable to get local issuer certificate' \
    "servers = $NATS_URLS" "${CERT_LINES[@]}" "${USER_LINES[@]}"
nats_stop_all

# 3. a single node with a token, over TLS with a certificate that names
# localhost only (no IP address), without client certificates
if ! { openssl req -config "$PKI/extra/openssl.cnf" -new -key "$PKI/spare-01.key" \
    -subj /CN=localhost -out "$T/lh.csr" 2>/dev/null &&
    openssl x509 -req -in "$T/lh.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -set_serial 4242 \
        -days 2 -out "$T/lh.crt" \
        -extfile <(printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n') \
        2>/dev/null; }; then
    fatal "a server certificate for localhost"
fi
NATS_TLS_CERT=$T/lh.crt NATS_TLS_KEY=$PKI/spare-01.key NATS_TLS_CA='' NATS_TLS_VERIFY=''
NATS_USER='' NATS_PASSWORD=''
NATS_TOKEN=$TOKEN
NATS_DIR=$T/nats-token
REPLICAS=1
nats_cluster_start 1
LH_URL=tls://localhost:${NATS_CPORT[1]}
js_config "servers = $LH_URL" "$CA_LINE" "token = $TOKEN"
kv_register_defaults # this node's own registry bucket
gw_start
check "the right token over TLS to $LH_URL: the stream is ready" \
    wait_log '"event":"jetstream_ready"' 4 10
gw_stop_check
start_fails "a wrong token" \
    '"event":"start_failed".*refused the credentials \(Authorization Violation\): check \[jetstream\] token' \
    "servers = $LH_URL" "$CA_LINE" "token = $WRONG_TOKEN"
start_fails "a certificate that does not name the URL's host ($NATS_URL)" \
    '"event":"start_failed".*TLS to the NATS server failed: .*IP address mismatch' \
    "servers = $NATS_URL" "$CA_LINE" "token = $TOKEN"
nats_stop_all

# 4. a .creds file (user JWT + nkey seed) against a node in operator mode
# (natsjwt.py: an operator, a system account, an account with JetStream)
mkdir -p "$T/jwt"
"$PY" "$LIB_DIR/natsjwt.py" "$T/jwt" || fatal "operator-mode setup (natsjwt.py)"
NATS_TLS_CERT='' NATS_TLS_KEY='' NATS_TOKEN=''
NATS_EXTRA_CONF=$T/jwt/operator.conf
NATS_DIR=$T/nats-jwt
nats_cluster_start 1
js_config "servers = $NATS_URL" "creds_file = $T/jwt/app.creds"
kv_register_defaults # in the operator's account
gw_start
check "a .creds file of the operator's account: the stream is ready" \
    wait_log '"event":"jetstream_ready"' 5 10
curl_post wowza-01 "$T/wowza.msgpack"
check_eq "a frame with the .creds file's user: 202" "$CURL_CODE" 202
gw_stop_check
start_fails "a .creds file of an account the operator never signed" \
    '"event":"start_failed".*refused the credentials \(Authorization Violation\): check \[jetstream\] creds_file' \
    "servers = $NATS_URL" "creds_file = $T/jwt/stranger.creds"
start_fails "a .creds file that does not exist" \
    '"event":"start_failed".*creds_file [^ ]*/missing.creds: No such file' \
    "servers = $NATS_URL" "creds_file = $T/jwt/missing.creds"
nats_stop_all
# a file with the seed alone: libnats would send its first block, the
# seed, as the JWT.  A listener that speaks just enough NATS (INFO with a
# nonce, then -ERR) records what a client sends.
read -r FAKE_PORT < <(nats_free_ports 1)
cat >"$T/fake.py" <<'PY'
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
s.settimeout(0.5)
out = open(sys.argv[2], "ab", buffering=0)
end = time.monotonic() + 60
while time.monotonic() < end:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    c.settimeout(5)
    data = b""
    try:
        c.sendall(b'INFO {"server_id":"fake","version":"2.9.10","proto":1,"headers":true,'
                  b'"max_payload":1048576,"auth_required":true,"nonce":"abcdefghijk"}\r\n')
        while b"\r\n" not in data:
            d = c.recv(4096)
            if not d:
                break
            data += d
        c.sendall(b"-ERR 'Authorization Violation'\r\n")
    except OSError:  # the probe of the test closes at once
        pass
    out.write(data)
    c.close()
PY
py_bg "$T/fake.out" "$T/fake.py" "$FAKE_PORT" "$T/fake.connect"
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_until 10 port_open "$FAKE_PORT" || fatal "the recording listener is up"
start_fails "control: app.creds to the recording listener" \
    '"event":"start_failed".*refused the credentials' \
    "servers = nats://127.0.0.1:$FAKE_PORT" "creds_file = $T/jwt/app.creds"
check "control: the listener recorded the CONNECT with app.creds' JWT" \
    grep -qF "\"jwt\":\"$(sed -n 2p "$T/jwt/app.creds")\"" "$T/fake.connect"
start_fails "a .creds file with the seed alone" \
    '"event":"start_failed".*creds_file [^ ]*seed-only.creds: does not start with a user JWT' \
    "servers = nats://127.0.0.1:$FAKE_PORT" "creds_file = $T/jwt/seed-only.creds"
SEED=$(head -1 "$T/jwt/secrets")
check "... and the seed never went to the server" bash -c "! grep -qF '$SEED' '$T/fake.connect' 2>/dev/null"
kill -KILL "$PY_BG_PID" 2>/dev/null || true

# 5. no secret in any log of ours
LOGS=("$GW_LOG" "$T/gw.out" "$STORE_LOG" "$T/store.out" "$T"/fail.*.log)
for s in PASSWORD WRONG_PASSWORD TOKEN WRONG_TOKEN; do
    hits=$(grep -lF -- "${!s}" "${LOGS[@]}" 2>/dev/null || true)
    check "no $s in the gateway's or the store's logs (${#LOGS[@]} files)${hits:+: $hits}" \
        test -z "$hits"
done
hits=$(grep -lF -f "$T/jwt/secrets" "${LOGS[@]}" 2>/dev/null || true)
check "no nkey seed in the gateway's or the store's logs${hits:+: $hits}" test -z "$hits"
san=$(grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: .*Sanitizer' \
    "${LOGS[@]}" 2>/dev/null || true)
check "no sanitizer report in the failed starts' or the store's logs${san:+: $san}" test -z "$san"
# control: the search does find what the logs do hold
check "control: the search finds the stream's name in the gateway log" grep -qF "$STREAM" "$GW_LOG"
finish
