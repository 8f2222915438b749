#!/usr/bin/env bash
# test_sdk_refusals.sh - refusals that retrying cannot fix, seen through
# libpanelagent ($SDK_PROBE): the gateway's certificate from another CA
# (EGATEWAY_CERT), the wrong name (EGATEWAY_CERT), the wrong pin
# (EGATEWAY_PIN), an unregistered agent (ENOT_REGISTERED), a revoked one
# (EREVOKED, at a full handshake and when a resumed session is re-checked).
# Each is reported exactly once over several seconds, the connection
# attempts stay within what REFUSED_BACKOFF_MS (doubling) allows, and the
# frames stay queued: reported EUNDELIVERED at close.  The right pin and
# an empty name (no name check) connect.
. "$(dirname "$0")/lib.sh"

SDK_PROBE=${SDK_PROBE:-$PANELGATE_BUILD_DIR/bin/sdk_probe}
[[ -x $SDK_PROBE ]] || fatal "no sdk_probe at $SDK_PROBE"

make_pki
gw_config
gw_start
register_defaults
register spare-01 nimble "$PKI/spare-01.crt"
gw_reload
revoke spare-01

RUN_MS=6000
BACKOFF_MS=1000
# attempts at 0, ~1, ~3, ~7 s (each wait 3/4..1 of 1, 2, 4 s): 3 or 4 in 6 s
MAX_ATTEMPTS=4

probe() {
    local out=$1 cert=$2
    shift 2
    timeout 60 "$SDK_PROBE" --host 127.0.0.1 --port "$GW_PORT" --name localhost \
        --ca "$PKI/ca.crt" --cert "$PKI/$cert.crt" --key "$PKI/$cert.key" \
        --backoff-initial 100 --backoff-max 1000 --refused-backoff "$BACKOFF_MS" "$@" \
        >"$out" 2>&1 || true
}
stat() { sed -nE "s/^stat .*\b$2=([0-9]+).*/\1/p" "$1" | tail -1; }
submitted() { sed -nE 's/^submit n=[0-9]+ rv=PANELAGENT_OK seq=([0-9]+)$/\1/p' "$1" | sort -n; }
errors() { sed -nE "s/^error code=$2 seq=([0-9]+) .*/\1/p" "$1" | sort -n; }
n_errors() { grep -c '^error ' "$1" || true; }

# refused LABEL CODE CERT [PROBE ARGS...]: 2 frames, RUN_MS, close at once.
refused() {
    local label=$1 code=$2 cert=$3 out=$T/$1.out
    shift 3
    probe "$out" "$cert" --frames 2 --run "$RUN_MS" --close-timeout 0 "$@"
    check_eq "$label: client created" "$(head -1 "$out")" "new rv=PANELAGENT_OK err="
    local n
    n=$(grep -c "^error code=$code seq=0 " "$out" || true)
    check_eq "$label: $code reported exactly once in $((RUN_MS / 1000)) s ($(grep -m1 "^error code=$code" "$out" | cut -c1-160))" "$n" 1
    check_eq "$label: no other connection error" \
        "$(grep '^error ' "$out" | grep -vc -e "code=$code seq=0 " -e 'code=PANELAGENT_EUNDELIVERED' || true)" 0
    local f
    f=$(stat "$out" connect_failures)
    check "$label: $f connection attempts, within the refusal backoff (2..$MAX_ATTEMPTS)" \
        test "$f" -ge 2 -a "$f" -le "$MAX_ATTEMPTS"
    check_eq "$label: nothing acked" "$(stat "$out" acked)" 0
    check_eq "$label: no session established" "$(stat "$out" connects)" 0
    check_eq "$label: both frames stayed queued" "$(stat "$out" queued)" 2
    check_eq "$label: reported EUNDELIVERED with their seqs at close" \
        "$(errors "$out" PANELAGENT_EUNDELIVERED)" "$(submitted "$out")"
    check_eq "$label: close returns 2" "$(sed -nE 's/^close undelivered=([0-9]+)$/\1/p' "$out")" 2
    REFUSED_ATTEMPTS=$f
}

refused wrong_ca PANELAGENT_EGATEWAY_CERT nimble-01 --ca "$PKI/rogue-ca.crt"
check "wrong_ca: the reason says the certificate did not verify" \
    grep -q "^error code=PANELAGENT_EGATEWAY_CERT seq=0 detail=the gateway's certificate did not verify" "$T/wrong_ca.out"
refused wrong_name PANELAGENT_EGATEWAY_CERT nimble-01 --name gateway.example
check "wrong_name: the reason names the name mismatch" \
    grep -qi "^error code=PANELAGENT_EGATEWAY_CERT .*name" "$T/wrong_name.out"
refused wrong_pin PANELAGENT_EGATEWAY_PIN nimble-01 \
    --pin 0000000000000000000000000000000000000000000000000000000000000000
check "wrong_pin: the reason shows the gateway's key digest" \
    grep -q "^error code=PANELAGENT_EGATEWAY_PIN .*$(spki "$PKI/gateway.crt")" "$T/wrong_pin.out"

n0=$(log_count "handshake_refused.*reason=unregistered spki_sha256=$(spki "$PKI/stranger-01.crt")")
refused unregistered PANELAGENT_ENOT_REGISTERED stranger-01
check "unregistered: the alert was access_denied" \
    grep -q "^error code=PANELAGENT_ENOT_REGISTERED .*access_denied" "$T/unregistered.out"
n=$(($(log_count "handshake_refused.*reason=unregistered spki_sha256=$(spki "$PKI/stranger-01.crt")") - n0))
check_eq "unregistered: the gateway refused as many handshakes as the probe counted" "$n" "$REFUSED_ATTEMPTS"

n0=$(log_count "handshake_refused.*reason=revoked spki_sha256=$(spki "$PKI/spare-01.crt")")
refused revoked PANELAGENT_EREVOKED spare-01
check "revoked: the alert was certificate_revoked" \
    grep -q "^error code=PANELAGENT_EREVOKED .*certificate_revoked" "$T/revoked.out"
n=$(($(log_count "handshake_refused.*reason=revoked spki_sha256=$(spki "$PKI/spare-01.crt")") - n0))
check_eq "revoked: the gateway refused as many handshakes as the probe counted" "$n" "$REFUSED_ATTEMPTS"

# ---- what does connect ----------------------------------------------------------------------
probe "$T/pin_ok.out" nimble-01 --frames 1 --run 20000 --until-done --pin "$(spki "$PKI/gateway.crt")"
check_eq "the right pin: the frame is acked" "$(stat "$T/pin_ok.out" acked)" 1
check_eq "the right pin: no error" "$(n_errors "$T/pin_ok.out")" 0
probe "$T/noname.out" nimble-01 --frames 1 --run 20000 --until-done --name ""
check_eq "name \"\" (no name check; host 127.0.0.1): the frame is acked" "$(stat "$T/noname.out" acked)" 1

# ---- revoked while the agent runs: the resumed session is refused ----------------------------
# wowza-01 sends a frame, its idle connection closes; it is revoked; its
# next frame reconnects offering the saved session, which the gateway
# re-checks and refuses with certificate_revoked.
timeout 60 "$SDK_PROBE" --host 127.0.0.1 --port "$GW_PORT" --name localhost \
    --ca "$PKI/ca.crt" --cert "$PKI/wowza-01.crt" --key "$PKI/wowza-01.key" --kind wowza \
    --refused-backoff "$BACKOFF_MS" --idle-timeout 200 --frames 2 --interval 3000 \
    --run 7000 --close-timeout 0 >"$T/live.out" 2>&1 &
LIVE=$!
BG_PIDS+=("$LIVE")
_acked() { grep -q '^ack ' "$T/live.out"; }
wait_until 20 _acked || fatal "wowza-01: first frame acked"
revoke wowza-01
wait_until 30 not_alive "$LIVE" || not_ok "wowza-01 probe still running"
wait "$LIVE" 2>/dev/null || true
check_eq "live: the first frame was acked" "$(stat "$T/live.out" acked)" 1
check_eq "live: after the revocation EREVOKED is reported once" \
    "$(grep -c '^error code=PANELAGENT_EREVOKED seq=0 ' "$T/live.out" || true)" 1
check_eq "live: the second frame is reported undelivered at close" \
    "$(errors "$T/live.out" PANELAGENT_EUNDELIVERED)" "$(submitted "$T/live.out" | tail -1)"
check "live: the gateway refused wowza-01 as revoked" \
    grep -q "handshake_refused.*reason=revoked spki_sha256=$(spki "$PKI/wowza-01.crt")" "$GW_LOG"

# the probes' stderr (in their .out files) is free of sanitizer reports
bad=$(grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: .*Sanitizer' "$T"/*.out 2>/dev/null || true)
check_eq "sdk_probe output free of sanitizer reports" "$bad" ""

finish
