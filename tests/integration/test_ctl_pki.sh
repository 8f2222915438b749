#!/usr/bin/env bash
# test_ctl_pki.sh - panelgatectl end to end: a CA, the gateway's
# certificate and two agents made by panelgatectl (one key generated on the
# panel host, one from a CSR made "on the agent host" with openssl) verify
# with openssl and are accepted by the real gateway; a rotated agent
# connects with its new certificate, with its old one only during the
# overlap; a revoked agent is refused at its next handshake and its live
# connection is closed; every error case exits non-zero naming what was
# wrong; the activity log shows each change with its actor.
#
# Registry changes reach the running gateway by polling
# meta.registry_generation ([registry] poll_interval_ms, 200 here); when a
# change is not picked up in time (or the gateway has no polling) the test
# falls back to SIGHUP, and says at the end which path it exercised.
. "$(dirname "$0")/lib.sh"

CTL=${PANELGATECTL:-$PANELGATE_BUILD_DIR/bin/panelgatectl}
[[ -x $CTL ]] || fatal "no panelgatectl binary at $CTL"
ACTOR_DEFAULT=${SUDO_USER:-$(id -un)}
AGENT_HOST=$T/agent-host # where the CSR's private key lives: never in $PKI
VIEW=$T/view             # names for h2client.py: VIEW/<name>.crt/.key
mkdir -p "$AGENT_HOST" "$VIEW"

# ctl ARGS...: panelgatectl on this test's database and PKI; stdout in
# $T/ctl.out, stderr in $T/ctl.err; sets CTL_RC.
ctl() {
    CTL_RC=0
    "$CTL" --db "$PG_DB" --pki "$PKI" "$@" >"$T/ctl.out" 2>"$T/ctl.err" || CTL_RC=$?
    check_log_clean_file "$T/ctl.err"
}

# ctl_ok WHAT ARGS...: ctl, and it must exit 0.
ctl_ok() {
    local what=$1
    shift
    ctl "$@"
    if ((CTL_RC == 0)); then
        ok "$what"
    else
        not_ok "$what: exit $CTL_RC: $(cat "$T/ctl.err")"
    fi
}

# ctl_fails WHAT RC PATTERN ARGS...: exits RC ("nz" = any non-zero) with a
# message on stderr matching the extended regex PATTERN.
ctl_fails() {
    local what=$1 want=$2 pat=$3 rc_ok=0
    shift 3
    "$CTL" "$@" >"$T/ctl.out" 2>"$T/ctl.err" && CTL_RC=0 || CTL_RC=$?
    if [[ $want == nz ]]; then ((CTL_RC != 0)) && rc_ok=1; else ((CTL_RC == want)) && rc_ok=1; fi
    if ((rc_ok)) && grep -Eq -- "$pat" "$T/ctl.err"; then
        ok "$what: exit $CTL_RC, '$(head -1 "$T/ctl.err")'"
    else
        not_ok "$what: want exit $want and /$pat/, got exit $CTL_RC: $(cat "$T/ctl.err")"
    fi
    check_log_clean_file "$T/ctl.err"
}

# Sanitizer builds: panelgatectl's stderr must stay free of reports.
check_log_clean_file() {
    if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$1"; then
        not_ok "panelgatectl ran without sanitizer reports"
        head -40 "$1"
    fi
}

# post CERTBASE FRAME: POSTs FRAME with CERTBASE.crt/.key; prints the
# HTTP status ("000" when there was none: the handshake failed).
post() {
    curl -sS --http2 --max-time 10 --cacert "$PKI/ca.crt" --cert "$1.crt" --key "$1.key" \
        -H 'content-type: application/msgpack' --data-binary @"$2" -o /dev/null \
        -w '%{http_code}' "https://127.0.0.1:$GW_PORT/v1/stats" 2>"$T/curl.err" || true
}
posts_202() { [[ $(post "$1" "$2") == 202 ]]; }

# probe CERTBASE: one TLS handshake with openssl s_client; prints the alert
# name the client got ("none" when the handshake completed).
probe() {
    timeout "$PG_TIMEOUT" openssl s_client -connect "127.0.0.1:$GW_PORT" -servername localhost \
        -CAfile "$PKI/ca.crt" -verify_return_error -cert "$1.crt" -key "$1.key" -alpn h2 \
        </dev/null >"$T/probe.out" 2>&1 || true
    local a
    a=$(grep -oE 'alert number [0-9]+' "$T/probe.out" | head -1 | grep -oE '[0-9]+$') || true
    alert_name "${a:-none}"
}
denied() { [[ $(probe "$1") == access_denied ]]; }
revoked() { [[ $(probe "$1") == certificate_revoked ]]; }

# pickup WHAT CHECK...: waits for the gateway to act on a registry change
# (CHECK passes once it has); polling first, then SIGHUP.
PICKUP_POLL=0
PICKUP_HUP=0
POLL_WAIT=0
pickup() {
    local what=$1 n
    shift
    n=$(log_count '"event":"registry_reloaded"')
    if ((POLL_WAIT > 0)) && wait_until "$POLL_WAIT" "$@"; then
        PICKUP_POLL=$((PICKUP_POLL + 1))
        if (($(log_count '"event":"registry_reloaded"') > n)); then
            note "$what: picked up by polling (registry_reloaded)"
        else
            note "$what: picked up without SIGHUP (no registry_reloaded line yet)"
        fi
        return 0
    fi
    note "$what: not picked up by polling within ${POLL_WAIT}s: SIGHUP"
    gw_reload
    PICKUP_HUP=$((PICKUP_HUP + 1))
    wait_until 5 "$@"
}

# ---- the PKI -------------------------------------------------------------------------------
ctl_ok "ca init" ca init --cn "panelgate test CA"
check "ca init wrote ca.key, ca.crt, serial" test -s "$PKI/ca.key" -a -s "$PKI/ca.crt" -a -s "$PKI/serial"
check_eq "ca.key is 0600" "$(stat -c %a "$PKI/ca.key")" 600
check "ca.key is not printed" bash -c "! grep -q 'PRIVATE KEY' '$T/ctl.out'"
ctl_ok "cert gateway --dns localhost --ip 127.0.0.1 --ip ::1" \
    cert gateway --dns localhost --ip 127.0.0.1 --ip ::1
check_eq "gateway.key is 0600" "$(stat -c %a "$PKI/gateway.key")" 600
check "openssl verify -purpose sslserver gateway.crt" \
    openssl verify -CAfile "$PKI/ca.crt" -purpose sslserver "$PKI/gateway.crt"
check "gateway.crt names localhost, 127.0.0.1 and ::1" bash -c \
    "openssl x509 -in '$PKI/gateway.crt' -noout -ext subjectAltName | tr -d ' \n' | grep -q 'DNS:localhost,IPAddress:127.0.0.1,IPAddress:0:0:0:0:0:0:0:1'"
ctl_fails "cert gateway again refuses to overwrite gateway.key" 1 "gateway.key.*refusing" \
    --pki "$PKI" cert gateway --dns localhost

ctl_ok "register nimble-01 --kind nimble (key generated here)" register nimble-01 --kind nimble
check_eq "agents/nimble-01.key is 0600" "$(stat -c %a "$PKI/agents/nimble-01.key")" 600
check "register prints no private key" bash -c "! grep -q 'PRIVATE KEY' '$T/ctl.out'"

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=wowza-01 \
    -keyout "$AGENT_HOST/wowza-01.key" -out "$AGENT_HOST/wowza-01.csr" 2>/dev/null ||
    fatal "openssl req (the agent host's CSR)"
for a in nimble-01 wowza-01; do
    ln -sf "$PKI/agents/$a.crt" "$VIEW/$a.crt"
done
ln -sf "$PKI/agents/nimble-01.key" "$VIEW/nimble-01.key"
ln -sf "$AGENT_HOST/wowza-01.key" "$VIEW/wowza-01.key"
ln -sf "$PKI/ca.crt" "$VIEW/ca.crt"

check "openssl verify -purpose sslclient agents/nimble-01.crt" \
    openssl verify -CAfile "$PKI/ca.crt" -purpose sslclient "$PKI/agents/nimble-01.crt"
check_eq "the registered pin is nimble-01.crt's SPKI" \
    "$(sql "SELECT lower(hex(spki_sha256)) FROM server_pins WHERE server_id = (SELECT id FROM servers WHERE name = 'nimble-01')")" \
    "$(spki "$PKI/agents/nimble-01.crt")"

# ---- the gateway ----------------------------------------------------------------------------
# Optional settings the gateway may not know yet: probe each with --check-config.
extra=()
try_key() {
    gw_config "${extra[@]}" "$@"
    if "$PG_BIN" --config "$GW_CONF" --check-config >/dev/null 2>&1; then
        extra+=("$@")
        return 0
    fi
    return 1
}
if try_key "[registry]" "poll_interval_ms = 200"; then
    POLL_WAIT=5
    note "the gateway polls the registry every 200 ms"
else
    note "the gateway has no [registry] poll_interval_ms: SIGHUP after each change"
fi
ACTIVITY_FLUSH=0
if try_key "[log]" "activity_interval_ms = 200"; then
    ACTIVITY_FLUSH=1
else
    note "the gateway has no [log] activity_interval_ms: refusals are not checked in the log"
fi
gw_config "${extra[@]}"
gw_start
encode nimble
encode wowza

check_eq "nimble-01 (generated key) POSTs -> 202" "$(post "$VIEW/nimble-01" "$T/nimble.msgpack")" 202

# register wowza-01 from its CSR while the gateway runs
ctl_ok "register wowza-01 --kind wowza --csr (key stays on the agent host)" \
    register wowza-01 --kind wowza --csr "$AGENT_HOST/wowza-01.csr" --actor ops-alice
check "--csr wrote no key into the PKI" test ! -e "$PKI/agents/wowza-01.key"
check "openssl verify -purpose sslclient agents/wowza-01.crt" \
    openssl verify -CAfile "$PKI/ca.crt" -purpose sslclient "$PKI/agents/wowza-01.crt"
check_eq "wowza-01.crt carries the CSR's public key" \
    "$(openssl x509 -in "$PKI/agents/wowza-01.crt" -noout -pubkey)" \
    "$(openssl pkey -in "$AGENT_HOST/wowza-01.key" -pubout)"
check "the running gateway admits wowza-01 (202)" pickup "register wowza-01" \
    posts_202 "$VIEW/wowza-01" "$T/wowza.msgpack"

# ---- rotation with an overlap ------------------------------------------------------------------
OVERLAP=8
old_serial=$(openssl x509 -in "$PKI/agents/nimble-01.crt" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//')
old_pin=$(spki "$PKI/agents/nimble-01.crt")
t_rot=$(date +%s)
ctl_ok "rotate nimble-01 --overlap ${OVERLAP}s" rotate nimble-01 --overlap "${OVERLAP}s"
OLD=$PKI/agents/nimble-01.$old_serial
check "the previous certificate and key are kept as agents/nimble-01.<serial>.crt/.key" \
    test -s "$OLD.crt" -a -s "$OLD.key"
check_eq "the kept key is still 0600" "$(stat -c %a "$OLD.key" 2>/dev/null)" 600
check "agents/nimble-01.crt is a new certificate for a new key" \
    test "$(spki "$PKI/agents/nimble-01.crt")" != "$old_pin"
check "openssl verify -purpose sslclient the rotated nimble-01.crt" \
    openssl verify -CAfile "$PKI/ca.crt" -purpose sslclient "$PKI/agents/nimble-01.crt"
check "the gateway admits the new nimble-01 certificate (202)" pickup "rotate nimble-01" \
    posts_202 "$VIEW/nimble-01" "$T/nimble.msgpack"
code=$(post "$OLD" "$T/nimble.msgpack")
if (($(date +%s) <= t_rot + OVERLAP - 1)); then
    check_eq "the old nimble-01 certificate still connects during the overlap (202)" "$code" 202
else
    not_ok "the overlap ended before the gateway picked the rotation up (test too slow)"
fi
past() { (($(date +%s) > $1)); }
wait_until $((OVERLAP + 5)) past $((t_rot + OVERLAP + 1)) || true
check_eq "after the overlap the old certificate is refused (certificate_revoked)" "$(probe "$OLD")" certificate_revoked
check_eq "... and curl with it gets no answer" "$(post "$OLD" "$T/nimble.msgpack")" 000
check "... logged handshake_refused reason=pin_expired" \
    grep -q "\"event\":\"handshake_refused\".*reason=pin_expired spki_sha256=$old_pin" "$GW_LOG"
check_eq "the new nimble-01 certificate still connects (202)" "$(post "$VIEW/nimble-01" "$T/nimble.msgpack")" 202

# ---- revocation: next handshake refused, live connection closed --------------------------------
export PG_PKI=$VIEW PG_READY=$T/live.ready
cat >"$T/live.py" <<'EOF'
import os
import h2client as hc

ok = hc.Checks()
c = hc.connect("wowza-01")
r = c.post(hc.pack(hc.minimal_frame(100, kind="wowza")))
ok(r.status == 202, "wowza-01 live connection: frame -> 202", r)
open(os.environ["PG_READY"], "w").close()
ok(c.wait_goaway(60), "revoked: the live wowza-01 connection gets GOAWAY",
   "closed=%s reason=%s" % (c.closed, c.close_reason))
ok(c.wait_closed(30), "... and is closed", c.close_reason)
c.close()
EOF
py_bg "$T/live.out" "$T/live.py"
live=$PY_BG_PID
wait_until "$PG_TIMEOUT" test -e "$PG_READY" || fatal "wowza-01 live connection"
ctl_ok "revoke wowza-01" revoke wowza-01
check "the gateway refuses wowza-01's next handshake (certificate_revoked)" pickup "revoke wowza-01" \
    revoked "$VIEW/wowza-01"
py_bg_wait "$live" "$T/live.out" 90
check "... logged handshake_refused reason=revoked" \
    grep -q "\"event\":\"handshake_refused\".*reason=revoked spki_sha256=$(spki "$PKI/agents/wowza-01.crt")" "$GW_LOG"
check_eq "nimble-01 is not disturbed (202)" "$(post "$VIEW/nimble-01" "$T/nimble.msgpack")" 202
# issue 11: the help says what the gateway sends a revoked server
"$CTL" revoke --help >"$T/help.out" 2>&1 || not_ok "revoke --help exits 0"
check "revoke --help: refused with certificate_revoked, not access_denied (issue 11)" \
    bash -c "grep -q 'refused (certificate_revoked)' '$T/help.out' && ! grep -q access_denied '$T/help.out'"
ctl_ok "revoke wowza-01 a second time is not an error" revoke wowza-01
check "... and says so" grep -q "already revoked" "$T/ctl.out"

# ---- error cases --------------------------------------------------------------------------------
ctl_fails "register an existing name" 1 "server nimble-01 is already registered" \
    --db "$PG_DB" --pki "$PKI" register nimble-01 --kind nimble
ctl_fails "rotate an unknown name" 1 "unknown server ghost-01" \
    --db "$PG_DB" --pki "$PKI" rotate ghost-01
ctl_fails "revoke an unknown name" 1 "unknown server ghost-01" \
    --db "$PG_DB" --pki "$PKI" revoke ghost-01
ctl_fails "show an unknown name" 1 "unknown server ghost-01" \
    --db "$PG_DB" --pki "$PKI" show ghost-01
mkdir -p "$T/empty-pki"
ctl_fails "register with no CA" 1 "no CA in $T/empty-pki: run 'panelgatectl ca init'" \
    --db "$PG_DB" --pki "$T/empty-pki" register spare-01 --kind nimble
ctl_fails "cert gateway with no CA" 1 "no CA in" \
    --pki "$T/empty-pki" cert gateway --dns localhost
cp "$AGENT_HOST/wowza-01.csr" "$T/tampered.csr"
"$PY" - "$T/tampered.csr" <<'EOF' || fatal "tampering the CSR"
import base64, sys
pem = open(sys.argv[1]).read()
der = bytearray(base64.b64decode("".join(l for l in pem.splitlines() if "-----" not in l)))
i = der.find(b"wowza-01")
der[i + 7] = ord("9")  # the signed subject: wowza-01 -> wowza-09
b64 = base64.b64encode(bytes(der)).decode()
open(sys.argv[1], "w").write("-----BEGIN CERTIFICATE REQUEST-----\n" +
    "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64)) + "\n-----END CERTIFICATE REQUEST-----\n")
EOF
ctl_fails "register with a tampered CSR" 1 "tampered.csr: CSR signature does not verify" \
    --db "$PG_DB" --pki "$PKI" register wowza-09 --kind wowza --csr "$T/tampered.csr"
ctl_fails "rotate with a tampered CSR" 1 "CSR signature does not verify" \
    --db "$PG_DB" --pki "$PKI" rotate nimble-01 --csr "$T/tampered.csr"
check_eq "the failed commands registered nothing" \
    "$(sql "SELECT count(*) FROM servers WHERE name IN ('wowza-09', 'spare-01')")" 0
: >"$T/a-file"
ctl_fails "ca init below a regular file (ENOTDIR)" 1 "$T/a-file/pki.*Not a directory" \
    --pki "$T/a-file/pki" ca init
# a PKI whose agents/ cannot be made: the files cannot be written
"$CTL" --pki "$T/pki2" ca init >/dev/null 2>&1 || not_ok "ca init in $T/pki2"
: >"$T/pki2/agents"
ctl_fails "register into a PKI whose agents/ is a file" 1 "pki2/agents.*not a directory" \
    --db "$PG_DB" --pki "$T/pki2" register spare-01 --kind nimble
check_eq "... nothing registered" "$(sql "SELECT count(*) FROM servers WHERE name = 'spare-01'")" 0
# issue 11: a directory given as a certificate or CSR is refused by name
# (mbedTLS said "Memory allocation failed"; ASan aborted)
ctl_fails "register --cert DIR (issue 11)" 1 "^panelgatectl: $AGENT_HOST: not a regular file\$" \
    --db "$PG_DB" --pki "$PKI" register spare-01 --kind nimble --cert "$AGENT_HOST"
ctl_fails "register --csr DIR (issue 11)" 1 "^panelgatectl: $AGENT_HOST: not a regular file\$" \
    --db "$PG_DB" --pki "$PKI" register spare-01 --kind nimble --csr "$AGENT_HOST"
ctl_fails "cert agent --csr DIR (issue 11)" 1 "^panelgatectl: /tmp: not a regular file\$" \
    --pki "$PKI" cert agent spare-01 --csr /tmp
ctl_fails "rotate --csr DIR (issue 11)" 1 "^panelgatectl: $AGENT_HOST: not a regular file\$" \
    --db "$PG_DB" --pki "$PKI" rotate nimble-01 --csr "$AGENT_HOST"
check "... and wrote no files" test ! -e "$PKI/agents/spare-01.crt" -a ! -e "$PKI/agents/spare-01.key"
ctl_fails "register with a bad kind" 64 "bad kind 'icecast'" \
    --db "$PG_DB" --pki "$PKI" register spare-01 --kind icecast
ctl_fails "register without --kind" 64 "--kind" \
    --db "$PG_DB" --pki "$PKI" register spare-01
ctl_fails "register a bad name" 64 "bad server name 'bad/name'" \
    --db "$PG_DB" --pki "$PKI" register bad/name --kind nimble
ctl_fails "rotate with a bad duration" 64 "bad duration '7x'" \
    --db "$PG_DB" --pki "$PKI" rotate nimble-01 --overlap 7x
ctl_fails "activity with a bad time" 64 "bad --since 'yesterday'" \
    --db "$PG_DB" activity --since yesterday
ctl_fails "no database given" 64 "no database" --pki "$PKI" list
ctl_fails "a database that does not exist" 1 "$T/none.db" --db "$T/none.db" list
ctl_fails "an unknown command" 64 "unknown command 'frobnicate'" frobnicate
ctl_fails "an option of another command" 64 "--overlap does not apply" --db "$PG_DB" list --overlap 1d

# ---- list, show, activity --------------------------------------------------------------------------
ctl_ok "list" list
check "list: a header and both servers" bash -c \
    "grep -Eq '^NAME +KIND +STATUS +CREATED +PINS +SPKI' '$T/ctl.out' &&
     grep -Eq '^nimble-01 +nimble +active +[0-9T:-]+Z +2 +[0-9a-f]{16}…' '$T/ctl.out' &&
     grep -Eq '^wowza-01 +wowza +revoked ' '$T/ctl.out'"
ctl_ok "list --json" list --json
check "list --json parses with python3 -m json.tool" bash -c "/usr/bin/python3 -m json.tool '$T/ctl.out' >/dev/null"
py_checks - "$T/ctl.out" "$(spki "$PKI/agents/nimble-01.crt")" <<'EOF'
import json, sys
ok = lambda c, m: print(("ok - " if c else "not ok - ") + m)
l = json.load(open(sys.argv[1]))
by = {s["name"]: s for s in l}
ok(sorted(by) == ["nimble-01", "wowza-01"], "list --json: both servers (%s)" % sorted(by))
n = by.get("nimble-01", {})
ok(n.get("spki_sha256") == sys.argv[2], "list --json: nimble-01's current pin, full fingerprint")
ok(len(n.get("pins", [])) == 2 and sum(p["expired"] for p in n["pins"]) == 1,
   "list --json: nimble-01 has 2 pins, the old one expired")
ok(by.get("wowza-01", {}).get("status") == "revoked", "list --json: wowza-01 revoked")
EOF
ctl_ok "show nimble-01" show nimble-01
check "show: pins with created/not_after, and its activity" bash -c \
    "grep -q 'not_after' '$T/ctl.out' && grep -q 'expired' '$T/ctl.out' && grep -Eq 'rotate' '$T/ctl.out'"

# the gateway writes refusals, aggregated, every activity_interval_ms
refusals_logged() {
    "$CTL" --db "$PG_DB" activity --action handshake_refused 2>/dev/null | grep -q revoked
}
if ((ACTIVITY_FLUSH)); then
    check "the gateway's refusals reach the activity log" wait_until 10 refusals_logged
fi
ctl_ok "activity" activity
cp "$T/ctl.out" "$T/activity.txt"
check "activity: register nimble-01 by $ACTOR_DEFAULT" \
    grep -Eq "Z +$ACTOR_DEFAULT +register +nimble-01 " "$T/activity.txt"
check "activity: register wowza-01 by ops-alice (--actor)" \
    grep -Eq "Z +ops-alice +register +wowza-01 " "$T/activity.txt"
check "activity: rotate nimble-01 by $ACTOR_DEFAULT" \
    grep -Eq "Z +$ACTOR_DEFAULT +rotate +nimble-01 " "$T/activity.txt"
check "activity: revoke wowza-01 by $ACTOR_DEFAULT" \
    grep -Eq "Z +$ACTOR_DEFAULT +revoke +wowza-01 " "$T/activity.txt"
check "activity: cert_issued rows" grep -Eq " cert_issued +nimble-01 +\{\"serial\"" "$T/activity.txt"
ctl_ok "activity --json" activity --json
check "activity --json parses with python3 -m json.tool" bash -c "/usr/bin/python3 -m json.tool '$T/ctl.out' >/dev/null"
py_checks - "$T/ctl.out" "$ACTOR_DEFAULT" "$ACTIVITY_FLUSH" <<'EOF'
import json, sys
ok = lambda c, m: print(("ok - " if c else "not ok - ") + m)
rows = json.load(open(sys.argv[1]))
acts = [(r["action"], r["server"], r["actor"]) for r in rows]
for want in [("register", "nimble-01", sys.argv[2]), ("register", "wowza-01", "ops-alice"),
             ("rotate", "nimble-01", sys.argv[2]), ("revoke", "wowza-01", sys.argv[2])]:
    ok(want in acts, "activity --json has %s" % (want,))
reg = [r for r in rows if r["action"] == "register" and r["server"] == "wowza-01"]
ok(reg and reg[0]["details"].get("kind") == "wowza" and reg[0]["details"].get("source") == "csr"
   and len(reg[0]["details"].get("spki_sha256", "")) == 64,
   "register details: kind, source, spki_sha256 (%s)" % (reg[0]["details"] if reg else None))
rot = [r for r in rows if r["action"] == "rotate"]
ok(rot and rot[0]["details"].get("overlap_s") == 8, "rotate details: overlap_s")
ok(all(r["at"].endswith("Z") for r in rows), "times are UTC ISO-8601")
ok([r["id"] for r in rows] == sorted(r["id"] for r in rows), "oldest first")
if sys.argv[3] == "1":
    ref = {(r["server"], (r["details"] or {}).get("reason")): r for r in rows
           if r["action"] == "handshake_refused"}
    ok(("nimble-01", "pin_expired") in ref,
       "activity: handshake_refused nimble-01 reason pin_expired (the old certificate)")
    ok(("wowza-01", "revoked") in ref, "activity: handshake_refused wowza-01 reason revoked")
    ok(all(r["actor"] == "gateway" and r["details"].get("count", 0) >= 1 for r in ref.values()),
       "handshake_refused rows are by 'gateway', with a count")
    ok(any(r["action"] == "disconnected" and r["server"] == "wowza-01" for r in rows),
       "activity: disconnected wowza-01 (its live connection)")
EOF
ctl_ok "activity --server nimble-01 --action rotate" activity --server nimble-01 --action rotate --json
check_eq "... one row" "$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/ctl.out")" 1
ctl_ok "activity --since 1h --limit 2" activity --since 1h --limit 2 --json
check_eq "... two rows" "$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/ctl.out")" 2
ctl_ok "activity --until 2000-01-01" activity --until 2000-01-01 --json
check_eq "... no rows" "$(tr -d ' \n\t' <"$T/ctl.out")" "[]"
ctl_fails "activity --server of an unknown name" 1 "unknown server ghost-01" \
    --db "$PG_DB" activity --server ghost-01

# --config reads the database path from the gateway's configuration
"$CTL" --config "$GW_CONF" list --json >"$T/cfg.out" 2>"$T/ctl.err" && rc=0 || rc=$?
check_eq "list --config GW_CONF finds the same database" "$rc:$(grep -c '"name"' "$T/cfg.out")" "0:2"

note "registry changes picked up by polling: $PICKUP_POLL, by the SIGHUP fallback: $PICKUP_HUP"
finish
