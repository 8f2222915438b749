#!/usr/bin/env bash
# test_sdk_cli.sh - the panelagent CLI on libpanelagent end to end:
# `panelagent keygen` makes a key and CSR on the "agent host", `panelgatectl
# register --csr` issues its certificate, and `panelagent send` delivers
# JSON and msgpack frames to the real gateway on loopback ("ack seq=N",
# exit 0, the rows stored under that server with those seqs); --every
# resends with fresh seqs and times; an unregistered identity gets an
# "error not_registered" line and exit 1 within --timeout; an invalid frame
# exits 2 before anything is sent; usage errors exit 64.
. "$(dirname "$0")/lib.sh"

CTL=${PANELGATECTL:-$PANELGATE_BUILD_DIR/bin/panelgatectl}
[[ -x $CTL ]] || fatal "no panelgatectl binary at $CTL"
PA=$PANELAGENT
AGENT=$T/agent-host
mkdir -p "$AGENT"

# pa WANT-RC WHAT ARGS...: runs panelagent with stdout in $T/pa.out and
# stderr in $T/pa.err; checks the exit status; sets PA_RC and PA_MS.
pa() {
    local want=$1 what=$2 t0
    shift 2
    t0=$(now_ms)
    PA_RC=0
    timeout 120 "$PA" "$@" >"$T/pa.out" 2>"$T/pa.err" </dev/null || PA_RC=$?
    PA_MS=$(($(now_ms) - t0))
    if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|runtime error:' "$T/pa.err"; then
        not_ok "$what: sanitizer report"
        head -40 "$T/pa.err"
    fi
    if ((PA_RC == want)); then
        ok "$what: exit $PA_RC"
    else
        not_ok "$what: exit $PA_RC, want $want; stdout: $(head -5 "$T/pa.out"); stderr: $(head -5 "$T/pa.err")"
    fi
}

rows() { sql "SELECT count(*) FROM frames WHERE $1"; }

# ctl WHAT ARGS...: panelgatectl on this test's database and PKI; fatal on failure.
ctl() {
    local what=$1
    shift
    if "$CTL" --db "$PG_DB" --pki "$PKI" "$@" >"$T/ctl.out" 2>"$T/ctl.err"; then
        ok "panelgatectl $what"
    else
        fatal "panelgatectl $what: $(cat "$T/ctl.err")"
    fi
}

# the panel's PKI, made with panelgatectl as an operator would
mkdir -p "$PKI"
ctl "ca init" ca init --cn "panelgate sdk test CA"
ctl "cert gateway" cert gateway --dns localhost --ip 127.0.0.1 --ip ::1
gw_config
gw_start

# ---- keygen on the agent host ------------------------------------------------------------
pa 0 "keygen --key --csr --cn sdk-01" keygen --key "$AGENT/sdk-01.key" --csr "$AGENT/sdk-01.csr" --cn sdk-01
check_eq "the key is 0600" "$(stat -c %a "$AGENT/sdk-01.key")" 600
check "the CSR verifies and names CN=sdk-01" bash -c \
    "openssl req -in '$AGENT/sdk-01.csr' -noout -verify 2>&1 | grep -q 'verify OK' &&
     openssl req -in '$AGENT/sdk-01.csr' -noout -subject | grep -q 'CN *= *sdk-01'"
check "the CSR's key is the key file's" test \
    "$(openssl req -in "$AGENT/sdk-01.csr" -noout -pubkey)" = "$(openssl pkey -in "$AGENT/sdk-01.key" -pubout)"
cp "$AGENT/sdk-01.key" "$T/key.before"
pa 1 "keygen refuses an existing key" keygen --key "$AGENT/sdk-01.key" --csr "$T/other.csr" --cn sdk-01
check "the existing key is intact" cmp -s "$AGENT/sdk-01.key" "$T/key.before"
check "no CSR written for the refused key" test ! -e "$T/other.csr"
pa 64 "keygen with a bad common name" keygen --key "$T/x.key" --csr "$T/x.csr" --cn 'a,b'
check "nothing left behind by the bad common name" test ! -e "$T/x.key" -a ! -e "$T/x.csr"
pa 64 "keygen without --cn" keygen --key "$T/x.key" --csr "$T/x.csr"
pa 64 "keygen with an unknown option" keygen --key "$T/x.key" --csr "$T/x.csr" --cn x --bogus

# ---- registration by CSR --------------------------------------------------------------------
ctl "register sdk-01 --kind nimble --csr" register sdk-01 --kind nimble --csr "$AGENT/sdk-01.csr"
CRT=$PKI/agents/sdk-01.crt
[[ -s $CRT ]] || fatal "no certificate at $CRT ($(cat "$T/ctl.out"))"
check "the issued certificate carries the keygen key" test \
    "$(openssl x509 -in "$CRT" -noout -pubkey)" = "$(openssl pkey -in "$AGENT/sdk-01.key" -pubout)"
# a CA-valid certificate for a key that is not registered
pa 0 "keygen for stranger-01" keygen --key "$AGENT/stranger-01.key" --csr "$AGENT/stranger-01.csr" --cn stranger-01
ctl "cert agent stranger-01 --csr (not registered)" cert agent stranger-01 --csr "$AGENT/stranger-01.csr"
gw_reload
SDK_ID=$(server_id sdk-01)
[[ -n $SDK_ID ]] || fatal "sdk-01 has no server id"

SEND=(send --gateway "127.0.0.1:$GW_PORT" --name localhost --ca "$PKI/ca.crt"
      --cert "$CRT" --key "$AGENT/sdk-01.key")

# ---- one JSON frame --------------------------------------------------------------------------
t_send=$(now_ms)
pa 0 "send nimble.json" "${SEND[@]}" --timeout 20 "$PANELGATE_TEST_DATA/nimble.json"
check "one 'ack seq=N' line and nothing else on stdout" grep -Eqx 'ack seq=[0-9]+' "$T/pa.out"
check_eq "stdout has one line" "$(wc -l <"$T/pa.out")" 1
seq1=$(sed -nE 's/^ack seq=([0-9]+)$/\1/p' "$T/pa.out" | head -1)
seq1=${seq1:-0}
check_eq "the row is stored under sdk-01 with the acked seq" \
    "$(rows "server_id = $SDK_ID AND seq = $seq1")" 1
check_eq "no row for that seq under another server" "$(rows "server_id <> $SDK_ID AND seq = $seq1")" 0
check "seq is not the file's (48213): the client's own" test "$seq1" != 48213 -a "$seq1" -gt 0
check_eq "stored reported_name is the frame's" \
    "$(sql "SELECT reported_name FROM frames WHERE server_id = $SDK_ID AND seq = $seq1")" \
    edge-fra-03.example.net
check "ts is the time of sending, not the file's" test \
    "$(sql "SELECT ts_ms >= $t_send - 1000 AND ts_ms <= $(now_ms) + 1000 FROM frames WHERE server_id = $SDK_ID AND seq = $seq1")" = 1

# ---- msgpack from stdin and from a file, --every ------------------------------------------------
"$PA" encode <"$PANELGATE_TEST_DATA/wowza.json" >"$T/wowza.msgpack" || fatal "panelagent encode"
PA_RC=0
"$PA" "${SEND[@]}" --timeout 20 - <"$T/wowza.msgpack" >"$T/pa.out" 2>"$T/pa.err" || PA_RC=$?
check_eq "send - (msgpack on stdin): exit 0" "$PA_RC" 0
seq2=$(sed -nE 's/^ack seq=([0-9]+)$/\1/p' "$T/pa.out" | head -1)
check "stdin frame acked with a higher seq" test "${seq2:-0}" -gt "$seq1"
check_eq "its row is stored" "$(rows "server_id = $SDK_ID AND seq = ${seq2:-0}")" 1

pa 0 "send --every 0.3 --count 3 (two files a round)" "${SEND[@]}" --every 0.3 --count 3 \
    --timeout 20 "$T/wowza.msgpack" "$PANELGATE_TEST_DATA/nimble.json"
check_eq "six acks" "$(grep -Ecx 'ack seq=[0-9]+' "$T/pa.out")" 6
check_eq "six distinct seqs" "$(sed -nE 's/^ack seq=//p' "$T/pa.out" | sort -u | wc -l)" 6
check "all above the earlier ones" bash -c \
    "sed -nE 's/^ack seq=//p' '$T/pa.out' | awk -v m='${seq2:-0}' '\$1 <= m { exit 1 }'"
seqs=$(sed -nE 's/^ack seq=//p' "$T/pa.out" | paste -sd, -)
check_eq "six rows stored" "$(rows "server_id = $SDK_ID AND seq IN (${seqs:-0})")" 6
check "the rounds were about 0.3 s apart (fresh times)" test \
    "$(sql "SELECT max(ts_ms) - min(ts_ms) >= 450 FROM frames WHERE server_id = $SDK_ID AND seq IN (${seqs:-0})")" = 1
check "three rounds take at least 0.6 s" test "$PA_MS" -ge 600

# ---- refusals -----------------------------------------------------------------------------------
pa 1 "send as an unregistered identity (stranger-01), --timeout 3" \
    send --gateway "127.0.0.1:$GW_PORT" --name localhost --ca "$PKI/ca.crt" \
    --cert "$PKI/agents/stranger-01.crt" --key "$AGENT/stranger-01.key" --timeout 3 \
    "$PANELGATE_TEST_DATA/nimble.json"
check "an 'error not_registered seq=0: ...' line" grep -Eq '^error not_registered seq=0: .+' "$T/pa.out"
check "no ack line" bash -c "! grep -q '^ack' '$T/pa.out'"
check "gave up within the timeout (${PA_MS} ms)" test "$PA_MS" -lt 10000
check_eq "nothing stored for the stranger" \
    "$(rows "server_id NOT IN (SELECT id FROM servers WHERE name IN ('sdk-01'))")" 0

n_before=$(rows "1")
printf '{"v": 1, "seq": 1}' >"$T/bad.json"
pa 2 "an invalid frame exits 2 before sending" "${SEND[@]}" --timeout 5 \
    "$PANELGATE_TEST_DATA/nimble.json" "$T/bad.json"
check "the message names the file and the field" grep -q 'bad.json: ts' "$T/pa.err"
check_eq "nothing was sent" "$(rows "1")" "$n_before"
check "no ack line for the good file either" bash -c "! grep -q '^ack' '$T/pa.out'"

# ---- usage ----------------------------------------------------------------------------------------
pa 64 "send without --gateway" send --ca "$PKI/ca.crt" --cert "$CRT" --key "$AGENT/sdk-01.key" x.json
pa 64 "send without --key" send --gateway "127.0.0.1:$GW_PORT" --ca "$PKI/ca.crt" --cert "$CRT" x.json
pa 64 "send --every abc" "${SEND[@]}" --every abc x.json
pa 64 "send --every 0" "${SEND[@]}" --every 0 x.json
pa 64 "send --count 0" "${SEND[@]}" --count 0 x.json
pa 64 "send --timeout -1" "${SEND[@]}" --timeout -1 x.json
pa 64 "send --gateway host:99999" send --gateway "127.0.0.1:99999" --ca "$PKI/ca.crt" --cert "$CRT" --key "$AGENT/sdk-01.key" x.json
pa 64 "send --pin not-hex" "${SEND[@]}" --pin nothex "$PANELGATE_TEST_DATA/nimble.json"
pa 64 "send with an unknown option" "${SEND[@]}" --bogus x.json
pa 64 "send --timeout without a value" "${SEND[@]}" --timeout
check "usage errors print the usage" grep -q '^usage: panelagent' "$T/pa.err"
pa 0 "--help" --help
check "--help documents send and keygen" bash -c \
    "grep -q '^  send --gateway' '$T/pa.out' && grep -q '^  keygen --key FILE --csr FILE --cn NAME' '$T/pa.out'"

finish
