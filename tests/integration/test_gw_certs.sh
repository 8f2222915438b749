#!/usr/bin/env bash
# test_gw_certs.sh - the TLS front door: every kind of bad client
# certificate fails the handshake with the matching alert (openssl s_client
# shows it, curl fails), CA-valid but unregistered certificates get
# access_denied, revoked ones certificate_revoked, ALPN without h2 gets no_application_protocol, no ALPN
# at all means HTTP/2 with prior knowledge; each refusal is logged as a
# handshake_refused event with its reason (and the SPKI fingerprint for
# registry refusals).  Issue 11 regressions:
#   - a not-yet-valid certificate gets certificate_expired (RFC 5246
#     7.2.2), not certificate_unknown;
#   - a session ticket issued while the certificate was valid does not
#     resume it once it has expired (certificate_expired, reason
#     cert_expired); resumed handshakes are counted in
#     panelgate_handshakes_total{resumed="true"};
#   - ALPN without h2 is counted as reason="alpn", not "other";
#   - certificates whose chain does not verify but that carry nimble-01's
#     public key (rogue CA, impostor CA, tampered, expired) are never
#     recorded in the activity log as nimble-01's.
. "$(dirname "$0")/lib.sh"

make_pki
gw_config "[log]" "activity_interval_ms = 200"
gw_start
register nimble-01 nimble "$PKI/nimble-01.crt"
register noeku-01 nimble "$PKI/noeku.crt"   # registered: only its EKU is wrong
register spare-01 wowza "$PKI/spare-01.crt"
gw_reload
revoke spare-01
encode nimble

# ---- the control: a good certificate ----------------------------------------------------
a=$(tls_probe nimble-01)
check_eq "nimble-01 (valid, registered): handshake completes, no alert" "$a" none
check "nimble-01: ALPN h2 selected" grep -q 'ALPN protocol: h2' "$T/probe.out"
curl_post nimble-01 "$T/nimble.msgpack"
check_eq "nimble-01: curl POST -> 202" "$CURL_CODE" 202

# ---- refusals -------------------------------------------------------------------------------
# refused CERT WANT-ALERTS REASON [SPKI]: the handshake fails with one of
# the alerts (space-separated names), curl fails too, and one more
# handshake_refused line with reason=REASON (and spki_sha256=SPKI) appears.
refused() {
    local cert=$1 want=$2 reason=$3 pin=${4:-} n a name label
    label=$cert
    [[ $cert == - ]] && label="no client certificate"
    n=$(log_count '"event":"handshake_refused"')
    a=$(tls_probe "$cert")
    name=$(alert_name "$a")
    if [[ " $want " == *" $name "* ]]; then
        ok "$label: handshake refused with alert $name"
    else
        not_ok "$label: want alert $want, got $name: $(grep -m1 -iE 'alert|error' "$T/probe.out" || true)"
    fi
    if wait_log '"event":"handshake_refused"' $((n + 1)) 10; then
        local line
        line=$(grep '"event":"handshake_refused"' "$GW_LOG" | sed -n "$((n + 1))p")
        if [[ $line == *"reason=$reason "* ]]; then
            ok "$label: logged handshake_refused reason=$reason"
        else
            not_ok "$label: log reason: want $reason in: $line"
        fi
        if [[ -n $pin ]]; then
            check "$label: the log line carries spki_sha256=$pin" grep -q "spki_sha256=$pin" <<<"$line"
        fi
    else
        not_ok "$label: no handshake_refused log line"
    fi
    # curl must fail the same way (no HTTP status at all)
    if [[ $cert == - ]]; then
        CURL_RC=0
        CURL_CODE=$(curl -sS --http2 --max-time "$PG_TIMEOUT" --cacert "$PKI/ca.crt" \
            -H 'content-type: application/msgpack' --data-binary @"$T/nimble.msgpack" \
            -o /dev/null -w '%{http_code}' "https://127.0.0.1:$GW_PORT/v1/stats" 2>"$T/curl.err") || CURL_RC=$?
    else
        curl_post "$cert" "$T/nimble.msgpack"
    fi
    if [[ $CURL_RC -ne 0 && $CURL_CODE == 000 ]]; then
        ok "$label: curl fails in the handshake (exit $CURL_RC: $(tr "\n" " " <"$T/curl.err" | head -c 100))"
    else
        not_ok "$label: curl exit $CURL_RC, HTTP $CURL_CODE"
    fi
}

refused - "handshake_failure" no_client_cert
refused expired "certificate_expired" cert_expired
refused notyet "certificate_expired" cert_not_yet_valid
refused rogue "unknown_ca" cert_untrusted
refused wrongsig "unknown_ca bad_certificate decrypt_error" cert_untrusted
refused tampered "unknown_ca bad_certificate decrypt_error" cert_untrusted
refused noeku "unsupported_certificate" cert_wrong_usage
refused stranger-01 "access_denied" unregistered "$(spki "$PKI/stranger-01.crt")"
refused spare-01 "certificate_revoked" revoked "$(spki "$PKI/spare-01.crt")"

# ---- ALPN ------------------------------------------------------------------------------------
n=$(log_count '"event":"handshake_refused"')
a=$(tls_probe nimble-01 -alpn http/1.1)
check_eq "ALPN offered without h2 (http/1.1 only) -> no_application_protocol" "$(alert_name "$a")" no_application_protocol
check "ALPN without h2: logged as handshake_refused" wait_log '"event":"handshake_refused"' $((n + 1)) 10
check "ALPN without h2: logged with reason=alpn" \
    grep -q '"event":"handshake_refused".*reason=alpn ' "$GW_LOG"
a=$(tls_probe nimble-01 -alpn http/1.1,h2)
check_eq "ALPN http/1.1,h2 -> accepted" "$a" none
check "ALPN http/1.1,h2: h2 selected" grep -q 'ALPN protocol: h2' "$T/probe.out"
a=$(tls_probe nimble-01 -no_ticket)
check_eq "no ALPN extension (openssl s_client) -> handshake completes" "$a" none

# ---- refusals are a server's only when the chain verified --------------------------------
# rogue, wrongsig, tampered, expired and notyet all carry nimble-01's public
# key; none verified, so none may land in nimble-01's audit trail.  The
# revoked spare-01 verified: its refusal is its own (the control).
pin_nimble=$(spki "$PKI/nimble-01.crt")
refusal_rows() { sql "SELECT count(*) FROM activity WHERE action = 'handshake_refused' $1"; }
# activity rows are aggregated and written every activity_interval_ms
spare_recorded() { (($(refusal_rows "AND server_id = $(server_id spare-01)") >= 1)); }
wait_until 10 spare_recorded || true
check "control: the revoked spare-01's refusal is recorded under spare-01" \
    test "$(refusal_rows "AND server_id = $(server_id spare-01)")" -ge 1
check "certificates with nimble-01's key were refused and recorded (with the key, no server)" \
    test "$(refusal_rows "AND server_id IS NULL AND details LIKE '%$pin_nimble%'")" -ge 1
check_eq "no refusal is recorded under nimble-01" \
    "$(refusal_rows "AND server_id = $(server_id nimble-01)")" 0
check "panelgatectl activity --server nimble-01 lists no handshake_refused" \
    bash -c '! "$0" --db "$1" activity --server nimble-01 --action handshake_refused | grep -q handshake_refused' \
    "$PANELGATECTL" "$PG_DB"

# ---- metrics: resumed handshakes, ALPN refusals --------------------------------------------
# metric NAME: its value in a fresh GET /metrics ("" when absent).  The
# body goes to a file first: awk leaving early must not break curl's pipe.
metric() {
    curl -s --max-time 10 -o "$T/metrics.txt" "http://127.0.0.1:$(admin_port)/metrics" || true
    awk -v m="$1" '$1 == m { print $2; exit }' "$T/metrics.txt"
}
check_eq "panelgate_handshakes_refused_total{reason=\"alpn\"} counts the ALPN refusal" \
    "$(metric 'panelgate_handshakes_refused_total{reason="alpn"}')" 1
r0=$(metric 'panelgate_handshakes_total{resumed="true"}')
tls_probe nimble-01 -alpn h2 -sess_out "$T/n1.sess" >/dev/null
a=$(tls_probe nimble-01 -alpn h2 -sess_in "$T/n1.sess")
check "a ticket resumes the session (Reused)" grep -qE '^Reused, TLSv1\.2' "$T/probe.out"
check_eq "panelgate_handshakes_total{resumed=\"true\"} moved by the one resumption" \
    "$(metric 'panelgate_handshakes_total{resumed="true"}')" "$((r0 + 1))"

# ---- a ticket does not outlive its certificate --------------------------------------------
# shortlived: nimble-01's key, valid for a few more seconds; its ticket is
# taken while it is valid and offered again after it expired
d=$PKI/extra
end_s=$(($(date +%s) + 6))
issue shortlived nimble-01 nimble-01 ca client "$(date -u -d @$(($(date +%s) - 3600)) +%Y%m%d%H%M%SZ)" \
    "$(date -u -d @$end_s +%Y%m%d%H%M%SZ)"
a=$(tls_probe shortlived -alpn h2 -sess_out "$T/short.sess")
check_eq "shortlived (still valid): handshake completes" "$a" none
while (($(date +%s) <= end_s)); do sleep 0.2; done
n=$(log_count '"event":"handshake_refused".*reason=cert_expired ')
# -ign_eof: the alert comes after the resumed handshake completed; read
# until the gateway closes, or s_client may leave before it arrives
a=$(tls_probe shortlived -alpn h2 -ign_eof -sess_in "$T/short.sess")
check_eq "shortlived, expired since its ticket was issued: resumption refused with certificate_expired" \
    "$(alert_name "$a")" certificate_expired
check "shortlived: the refused resumption is logged with reason=cert_expired" \
    wait_log '"event":"handshake_refused".*reason=cert_expired ' $((n + 1)) 10
curl_post nimble-01 "$T/nimble.msgpack"
check_eq "nimble-01 with its own certificate still gets 202" "$CURL_CODE" 202

# ---- suites and versions -------------------------------------------------------------------
a=$(tls_probe nimble-01 -alpn h2 -tls1_2 -cipher ECDHE-ECDSA-AES128-SHA256)
check_eq "only a non-AEAD suite offered (ECDHE-ECDSA-AES128-SHA256) -> handshake_failure" \
    "$(alert_name "$a")" handshake_failure
a=$(tls_probe nimble-01 -alpn h2 -tls1_2)
check_eq "TLS 1.2 with ECDHE+AEAD -> accepted" "$a" none
check "the suite is ECDHE with an AEAD cipher" \
    grep -Eq 'Cipher is ECDHE-ECDSA-(CHACHA20-POLY1305|AES128-GCM-SHA256|AES256-GCM-SHA384)' "$T/probe.out"

py_checks - <<'EOF'
import ssl
import h2client as hc
ok = hc.Checks()
# no ALPN: HTTP/2 with prior knowledge
c = hc.connect("nimble-01", alpn=None)
ok(c.alpn is None, "python without ALPN: no protocol selected", c.alpn)
r = c.post(hc.pack(hc.minimal_frame(4242)))
ok(r.status == 202, "python without ALPN: HTTP/2 prior knowledge -> 202", r)
c.close()
# an expired certificate through python's ssl as well
try:
    hc.connect("expired")
    ok(False, "python with the expired certificate is refused")
except ssl.SSLError as e:
    ok("CERTIFICATE_EXPIRED" in str(e).upper(), "python with the expired certificate: %s" % e.reason, e)
EOF

gw_stop_check
refusals=$(grep -c '"event":"handshake_refused"' "$GW_LOG" || true)
stopped=$(grep '"event":"stopped"' "$GW_LOG" | tail -1)
check "the 'stopped' summary counts the refused handshakes (>= $refusals): $(grep -o 'handshakes_refused=[0-9]*' <<<"$stopped")" \
    test "$(grep -o 'handshakes_refused=[0-9]*' <<<"$stopped" | cut -d= -f2)" -ge "$refusals"
finish
