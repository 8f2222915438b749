#!/usr/bin/env bash
# test_gw_revoke.sh - revocation reaches live connections: a client keeps a
# connection open (202), the server is revoked in the registry + SIGHUP,
# the client gets GOAWAY and the connection closes; a request whose body
# was still arriving is not stored as the revoked server's; a new
# handshake, and a resumption of the old TLS session, are refused with
# certificate_revoked; another server's connection is not disturbed; a
# reload that names another registry_path keeps the running registry.
. "$(dirname "$0")/lib.sh"

make_pki
gw_config
gw_start
register_defaults
NIMBLE_ID=$(server_id nimble-01)
export PG_READY=$T/client.ready PG_REVOKED=$T/revoked.done

cat >"$T/client.py" <<'EOF'
import os, ssl, time
import h2client as hc

ok = hc.Checks()


def wait_file(p, s):
    end = time.monotonic() + s
    while not os.path.exists(p) and time.monotonic() < end:
        time.sleep(0.05)
    return os.path.exists(p)


ctx = hc.context("nimble-01")
c = hc.Conn(ctx=ctx)
r = c.post(hc.pack(hc.minimal_frame(1)))
ok(r.status == 202, "live connection: frame 1 -> 202", r)
# a resumed session works before the revocation
c2 = hc.Conn(ctx=ctx, session=c.session)
ok(c2.session_reused, "a second connection resumes the TLS session (ticket)")
r = c2.post(hc.pack(hc.minimal_frame(2)))
ok(r.status == 202, "resumed connection: frame 2 -> 202", r)
c2.close()
session = c.session
w = hc.connect("wowza-01")
r = w.post(hc.pack(hc.minimal_frame(1, kind="wowza")))
ok(r.status == 202, "wowza-01 connection: frame -> 202", r)

# a request in progress: headers and half of the body before the revocation
body = hc.pack(hc.load_frame("nimble.json", seq=3))
half = len(body) // 2
sid = c.start(None, end=False)
c.send_body(sid, body[:half], end=False)
ok(c.ping(), "live connection answers PING before the revocation")

open(os.environ["PG_READY"], "w").close()
ok(c.wait_goaway(60), "revoked + SIGHUP -> the live connection gets GOAWAY",
   "closed=%s reason=%s" % (c.closed, c.close_reason))
if c.goaway is not None:
    ok(int(c.goaway.error_code) == 0, "GOAWAY error code NO_ERROR", c.goaway.error_code)
    ok(c.goaway.last_stream_id >= sid,
       "GOAWAY last_stream_id %d covers the request in progress (%d)" % (c.goaway.last_stream_id, sid))
    ok(c.goaway.additional_data == b"revoked", "GOAWAY debug data says why", c.goaway.additional_data)
# finish the request that was in progress
c.send_body(sid, body[half:], end=True)
r = c.response(sid, timeout=20)
ok(r.status != 202, "the request still arriving at the revocation is not acknowledged "
   "(got %s)" % r.status, r)
if r.status is not None and r.status != 202:
    ok(hc.problem_ok(r, 403, "revoked"), "... it gets 403 urn:panelgate:problem:revoked", r)
ok(c.wait_closed(30), "then the gateway closes the revoked connection",
   "still open %s" % c.close_reason)
c.close()

ok(wait_file(os.environ["PG_REVOKED"], 60), "(the test revoked nimble-01)")
# a new full handshake
try:
    hc.Conn(ctx=hc.context("nimble-01"))
    ok(False, "new handshake of the revoked server is refused")
except ssl.SSLError as e:
    ok("CERTIFICATE_REVOKED" in str(e).upper(), "new handshake of the revoked server -> certificate_revoked (%s)"
       % e.reason, e)
# resuming the old session: the registry is consulted again
try:
    cr = hc.Conn(ctx=ctx, session=session)
    reused = cr.session_reused
    r = cr.post(hc.pack(hc.minimal_frame(4)), timeout=10)
    ok(r.status is None, "resuming the revoked server's TLS session is refused "
       "(resumed=%s, then: %s)" % (reused, cr.close_reason), r)
    cr.close()
except (ssl.SSLError, OSError) as e:
    ok("CERTIFICATE_REVOKED" in str(e).upper() or "EOF" in str(e).upper() or "RESET" in str(e).upper(),
       "resuming the revoked server's TLS session is refused (%s)" % e, e)

# the other server was not disturbed by the reload
ok(not w.closed and w.goaway is None, "wowza-01's connection got no GOAWAY",
   "closed=%s goaway=%s" % (w.closed, w.goaway))
r = w.post(hc.pack(hc.minimal_frame(2, kind="wowza")))
ok(r.status == 202, "wowza-01's connection still serves frames after the reload (202)", r)
w.close()
EOF

py_bg "$T/client.out" "$T/client.py"
pid=$PY_BG_PID
wait_until "$PG_TIMEOUT" test -e "$PG_READY" || fatal "client connected and sent its first frame"
revoke nimble-01
touch "$PG_REVOKED"
py_bg_wait "$pid" "$T/client.out" 90

check "the gateway logged the disconnection (disconnected, reason=revoked)" \
    grep -q '"event":"disconnected".*reason=revoked' "$GW_LOG"
check "the 'reloaded' line counts 1 disconnected" grep -q '"event":"reloaded".*disconnected=1' "$GW_LOG"
a=$(tls_probe nimble-01)
check_eq "openssl s_client with nimble-01 after revocation -> certificate_revoked" "$(alert_name "$a")" certificate_revoked
check "handshake_refused reason=revoked logged with the fingerprint" \
    grep -q "\"event\":\"handshake_refused\".*reason=revoked spki_sha256=$(spki "$PKI/nimble-01.crt")" "$GW_LOG"
check_eq "nimble-01's frames 1 and 2 stored, the in-progress frame 3 not" \
    "$(sql "SELECT group_concat(seq) FROM (SELECT seq FROM frames WHERE server_id = $NIMBLE_ID ORDER BY seq)")" "1,2"

# ---- [registry] registry_path changes only at restart -------------------------------------
# A reload whose file names another registry (a copy without servers) keeps
# reading the running one, which the gateway also polls and logs activity to.
sql "VACUUM INTO '$T/other.db'"
sqlite3 "$T/other.db" "DELETE FROM server_pins; DELETE FROM servers"
pins0=$(grep '"event":"reloaded"' "$GW_LOG" | tail -1 | grep -oE 'registry=[0-9]+')
gw_config "[registry]" "registry_path = $T/other.db"
gw_reload
check "a reload that changes registry_path logs reload_ignored naming it" \
    grep -qF '"event":"reload_ignored","msg":"storage and session-ticket settings change only at restart; kept the running [registry] registry_path"' "$GW_LOG"
check_eq "... and reads the running registry: the same pins, nobody disconnected" \
    "$(grep '"event":"reloaded"' "$GW_LOG" | tail -1 | grep -oE 'registry=[0-9]+ .*disconnected=[0-9]+')" \
    "$pins0 servers_pinned disconnected=0"
check_eq "wowza-01 (not in the other file) still completes a handshake" "$(tls_probe wowza-01)" none
check "no listen reload_ignored (the listeners did not change)" \
    test "$(log_count 'reload_ignored.*listen addresses')" -eq 0

finish
