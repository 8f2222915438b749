#!/usr/bin/env bash
# test_gw_tlsprobe.sh - the TLS front door seen by generic TLS probes
# (RFC 5246, RFC 8446, docs/PROTOCOL.md 2.1), with openssl s_client,
# gnutls-cli and hand-made records:
#   - TLS 1.0 / 1.1 refused with protocol_version; a TLS 1.3-only client
#     refused (Debian's mbedTLS 2.28 has no TLS 1.3);
#   - every suite that is not ECDHE + AEAD refused; each allowed suite works;
#     a default client gets ECDHE + ChaCha20-Poly1305 (server preference),
#     groups x25519/P-256/P-384 only; extended master secret and secure
#     renegotiation signalled;
#   - client-initiated renegotiation refused (no second handshake);
#   - session tickets resume (openssl, gnutls); a ticket of a server revoked
#     in between is refused with certificate_revoked;
#   - SNI with any name (or none) accepted; no heartbeat extension, and a
#     heartbeat record gets no answer; no compression;
#   - garbage instead of a ClientHello -> alert or close at once, no crash;
#   - 1000 half-open TCP connections that never send a ClientHello are
#     closed after handshake_timeout_ms while a valid client is served.
. "$(dirname "$0")/lib.sh"

HS_MS=3000 # handshake timeout: garbage must be refused well before it
make_pki
gw_config "[server]" "handshake_timeout_ms = $HS_MS"
gw_start
register_defaults

HAVE_GNUTLS=1
if ! command -v gnutls-cli >/dev/null 2>&1; then
    HAVE_GNUTLS=0
    note "SKIP gnutls-cli probes: gnutls-cli not installed (apt install gnutls-bin; scripts/deps.sh installs it)"
fi

# ossl [S_CLIENT ARGS...]: one openssl s_client handshake with the client
# certificate $CERT (default nimble-01), stdin $OSSL_IN (default /dev/null);
# output in $T/ossl.out.  Sets ALERT (alert number received, or none),
# CIPHER (negotiated suite, "(NONE)" when the handshake failed), PROTO.
ossl() {
    local cert=${CERT:-nimble-01}
    timeout 20 openssl s_client -connect "127.0.0.1:$GW_PORT" -CAfile "$PKI/ca.crt" \
        -cert "$PKI/$cert.crt" -key "$PKI/$cert.key" "$@" \
        <"${OSSL_IN:-/dev/null}" >"$T/ossl.out" 2>&1 || true
    ALERT=$(grep -aoE 'alert number [0-9]+' "$T/ossl.out" | head -1 | grep -oE '[0-9]+$') || true
    ALERT=${ALERT:-none}
    CIPHER=$(grep -aE '^(New|Reused), ' "$T/ossl.out" | head -1 | sed -E 's/.*Cipher is //') || true
    PROTO=$(grep -aE '^ +Protocol +:' "$T/ossl.out" | head -1 | sed -E 's/.*: *//') || true
}

# handshake_ok: the last ossl completed a handshake.
handshake_ok() { [[ -n $CIPHER && $CIPHER != "(NONE)" && $ALERT == none ]]; }

first_error() { grep -am1 -E 'alert|error|errno' "$T/ossl.out" || echo "no error line"; }

# gnutls [GNUTLS-CLI ARGS...]: gnutls-cli as $CERT (default nimble-01);
# output in $T/gnutls.out.
gnutls() {
    local cert=${CERT:-nimble-01}
    timeout 20 gnutls-cli --x509cafile "$PKI/ca.crt" --x509certfile "$PKI/$cert.crt" \
        --x509keyfile "$PKI/$cert.key" --alpn h2 -p "$GW_PORT" --verify-hostname localhost \
        "$@" 127.0.0.1 </dev/null >"$T/gnutls.out" 2>&1 || true
}

S=(-servername localhost -alpn h2)

# ---- protocol versions ------------------------------------------------------------------
for v in tls1 tls1_1; do
    ossl "${S[@]}" "-$v" -cipher 'DEFAULT:@SECLEVEL=0'
    check_eq "openssl -$v: refused with alert protocol_version (70)" "$ALERT" 70
done
ossl "${S[@]}" -tls1_3
if ! handshake_ok && [[ $ALERT == 40 || $ALERT == 70 ]]; then
    ok "openssl -tls1_3 (TLS 1.3 only): refused with alert $(alert_name "$ALERT")"
else
    not_ok "openssl -tls1_3: want a refusal (handshake_failure/protocol_version), got cipher '$CIPHER' protocol '$PROTO' alert $ALERT"
fi
ossl "${S[@]}"
check_eq "openssl default client: TLS 1.2 negotiated" "$PROTO" TLSv1.2

if ((HAVE_GNUTLS)); then
    for v in 1.0 1.1; do
        gnutls --priority "NORMAL:-VERS-ALL:+VERS-TLS$v:%VERIFY_ALLOW_SIGN_WITH_SHA1"
        check "gnutls-cli TLS $v only: refused with alert [70] protocol version" \
            grep -q 'Received alert \[70\]' "$T/gnutls.out"
    done
    gnutls --priority "NORMAL:-VERS-ALL:+VERS-TLS1.3"
    if grep -q 'Received alert \[\(40\|70\)\]' "$T/gnutls.out" && ! grep -q 'Handshake was completed' "$T/gnutls.out"; then
        ok "gnutls-cli TLS 1.3 only: refused ($(grep -o 'Received alert \[[0-9]*\]' "$T/gnutls.out"))"
    else
        not_ok "gnutls-cli TLS 1.3 only: want a refusal: $(grep -m2 -E 'Description|alert|Fatal' "$T/gnutls.out")"
    fi
fi

# ---- cipher suites ----------------------------------------------------------------------
# not ECDHE, or not AEAD, or not on the list (CCM, ARIA, Camellia): refused
for c in AES128-SHA AES256-SHA256 AES128-GCM-SHA256 AES256-GCM-SHA384 DHE-RSA-AES128-GCM-SHA256 \
    DHE-RSA-CHACHA20-POLY1305 ECDHE-ECDSA-AES128-SHA ECDHE-ECDSA-AES256-SHA \
    ECDHE-ECDSA-AES128-SHA256 ECDHE-ECDSA-AES256-SHA384 ECDHE-RSA-AES128-SHA \
    ECDHE-RSA-AES128-SHA256 ECDHE-ECDSA-AES128-CCM ECDHE-ECDSA-ARIA128-GCM-SHA256 \
    ECDHE-ECDSA-CAMELLIA128-SHA256 ECDHE-ECDSA-NULL-SHA ECDHE-ECDSA-DES-CBC3-SHA; do
    ossl "${S[@]}" -tls1_2 -cipher "$c:@SECLEVEL=0"
    if grep -aq 'no cipher match' "$T/ossl.out"; then
        note "SKIP suite $c: this openssl cannot offer it"
    elif ! handshake_ok && [[ $ALERT != none ]]; then
        ok "suite $c only: refused with alert $(alert_name "$ALERT")"
    else
        not_ok "suite $c only: want a refusal, got cipher '$CIPHER' alert $ALERT: $(first_error)"
    fi
done
for c in ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384 ECDHE-ECDSA-CHACHA20-POLY1305; do
    ossl "${S[@]}" -tls1_2 -cipher "$c"
    check_eq "suite $c only: negotiated" "$CIPHER" "$c"
done
ossl "${S[@]}"
check_eq "openssl default client: ECDHE + AEAD, ChaCha20-Poly1305 preferred" "$CIPHER" ECDHE-ECDSA-CHACHA20-POLY1305
check "openssl default client: ephemeral key X25519" grep -aq 'Server Temp Key: X25519' "$T/ossl.out"
check "extended master secret negotiated (RFC 7627)" grep -aq 'Extended master secret: yes' "$T/ossl.out"
check "secure renegotiation signalled (RFC 5746)" grep -aq 'Secure Renegotiation IS supported' "$T/ossl.out"
check "no TLS compression" grep -aqE '^Compression: NONE' "$T/ossl.out"
ossl "${S[@]}" -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305
check_eq "client listing AES-GCM first: the gateway's order wins (ChaCha20-Poly1305)" "$CIPHER" ECDHE-ECDSA-CHACHA20-POLY1305
# groups: x25519, then P-256, then P-384 (docs: P-256 is a MUST).  In TLS 1.2
# the client's list also covers the curve of the gateway's ECDSA P-256
# certificate (RFC 8422 5.1), so every offer below includes P-256.
for gw in "X25519:P-256 X25519" "P-256 ECDH, prime256v1" "P-384:P-256 ECDH, prime256v1" \
    "P-521:P-256 ECDH, prime256v1" "ffdhe2048:P-256 ECDH, prime256v1"; do
    g=${gw%% *} want=${gw#* }
    ossl "${S[@]}" -tls1_2 -groups "$g"
    got=$(grep -a 'Server Temp Key' "$T/ossl.out" | sed -E 's/^ *Server Temp Key: //; s/, [0-9]+ bits//') || true
    if handshake_ok && [[ $got == "$want" ]]; then
        ok "groups $g offered: ECDHE over $want"
    else
        not_ok "groups $g offered: want ECDHE over $want, got cipher '$CIPHER' key '$got' alert $ALERT: $(first_error)"
    fi
done
for g in P-521 ffdhe2048; do
    ossl "${S[@]}" -tls1_2 -groups "$g"
    if ! handshake_ok && [[ $ALERT != none ]]; then
        ok "group $g only: refused with alert $(alert_name "$ALERT")"
    else
        not_ok "group $g only: want a refusal, got cipher '$CIPHER': $(grep -a 'Server Temp Key' "$T/ossl.out" || first_error)"
    fi
done
if ((HAVE_GNUTLS)); then
    gnutls
    check "gnutls-cli default: TLS 1.2 + ECDHE + CHACHA20-POLY1305 ($(grep -o '(TLS1.*' "$T/gnutls.out" | head -1))" \
        grep -qE 'Description: \(TLS1\.2[^)]*\)-\(ECDHE-[^)]*\)-\([^)]*\)-\(CHACHA20-POLY1305\)' "$T/gnutls.out"
    gnutls --priority "NORMAL:-VERS-TLS1.3:-CIPHER-ALL:+AES-256-GCM"
    check "gnutls-cli AES-256-GCM only: ECDHE + AES-256-GCM" \
        grep -qE 'Description: \(TLS1\.2[^)]*\)-\(ECDHE-[^)]*\)-\([^)]*\)-\(AES-256-GCM\)' "$T/gnutls.out"
    for p in "NORMAL:-VERS-TLS1.3:-CIPHER-ALL:+AES-128-CBC:+AES-256-CBC" "NORMAL:-VERS-TLS1.3:-KX-ALL:+RSA" \
        "NORMAL:-VERS-TLS1.3:-KX-ALL:+DHE-RSA"; do
        gnutls --priority "$p"
        if grep -q 'Received alert' "$T/gnutls.out" && ! grep -q 'Handshake was completed' "$T/gnutls.out"; then
            ok "gnutls-cli $p: refused ($(grep -o 'Received alert \[[0-9]*\]' "$T/gnutls.out"))"
        else
            not_ok "gnutls-cli $p: want a refusal: $(grep -m2 -E 'Description|alert|Fatal' "$T/gnutls.out")"
        fi
    done
fi

# ---- renegotiation ----------------------------------------------------------------------
# s_client reads 'R' from stdin and starts a renegotiation (TLS 1.2).
printf 'R\n' >"$T/reneg.in"
(sleep 1; cat "$T/reneg.in"; sleep 2) | timeout 20 openssl s_client -connect "127.0.0.1:$GW_PORT" \
    -CAfile "$PKI/ca.crt" -cert "$PKI/nimble-01.crt" -key "$PKI/nimble-01.key" "${S[@]}" -tls1_2 \
    >"$T/reneg.out" 2>&1 || true
if grep -aq RENEGOTIATING "$T/reneg.out"; then
    if grep -aqiE 'no renegotiation|alert number 100|handshake failure|alert number 40' "$T/reneg.out" &&
        (($(grep -ac 'verify return:1' "$T/reneg.out") <= 2)); then
        ok "client-initiated renegotiation refused ($(grep -aoiE 'no renegotiation|alert number [0-9]+' "$T/reneg.out" | head -1)), no second handshake"
    else
        not_ok "client-initiated renegotiation: want a refusal, got: $(grep -a -A3 RENEGOTIATING "$T/reneg.out" | tr '\n' ' ' | cut -c1-300)"
    fi
else
    not_ok "renegotiation probe: s_client did not start a renegotiation: $(tail -3 "$T/reneg.out")"
fi
if ((HAVE_GNUTLS)); then
    gnutls --rehandshake
    if grep -q 'ReHandshake has failed' "$T/gnutls.out" && ! grep -qi 'Rehandshake was completed' "$T/gnutls.out"; then
        ok "gnutls-cli --rehandshake: renegotiation failed ($(grep -m1 'Fatal error\|alert' "$T/gnutls.out"))"
    else
        not_ok "gnutls-cli --rehandshake: want a failure: $(grep -i -m3 'handshake' "$T/gnutls.out" | tr '\n' ' ')"
    fi
fi

# ---- SNI ---------------------------------------------------------------------------------
ossl -servername anything.example.invalid -alpn h2
if handshake_ok && grep -aq 'ALPN protocol: h2' "$T/ossl.out"; then
    ok "SNI anything.example.invalid: accepted, ALPN h2"
else
    not_ok "SNI anything.example.invalid: want a handshake, got alert $ALERT: $(first_error)"
fi
ossl -noservername -alpn h2
if handshake_ok; then ok "no SNI: accepted"; else not_ok "no SNI: want a handshake, got alert $ALERT: $(first_error)"; fi
if ((HAVE_GNUTLS)); then
    gnutls --sni-hostname "$(printf 'x%.0s' {1..60}).example"
    check "gnutls-cli with a 68-byte SNI name: handshake completed" grep -q 'Handshake was completed' "$T/gnutls.out"
fi

# ---- session resumption -------------------------------------------------------------------
ossl "${S[@]}" -sess_out "$T/nimble.sess"
check "first handshake issues a session ticket ($(grep -a 'ticket lifetime' "$T/ossl.out" | sed 's/^ *//'))" \
    grep -aqE 'TLS session ticket lifetime hint: [1-9]' "$T/ossl.out"
ossl "${S[@]}" -sess_in "$T/nimble.sess"
check "openssl -sess_in: the session is resumed (Reused)" grep -aqE '^Reused, TLSv1\.2' "$T/ossl.out"
if ((HAVE_GNUTLS)); then
    CERT=wowza-01 gnutls --resume
    check "gnutls-cli --resume: resumed session" grep -q 'This is a resumed session' "$T/gnutls.out"
fi

# ---- raw records: heartbeat, compression, garbage -------------------------------------------
export PG_HS_MS=$HS_MS
py_checks - <<'EOF'
import os, socket, struct, time
import h2client as hc

ok = hc.Checks()
PORT = int(os.environ["PG_PORT"])
HS = int(os.environ["PG_HS_MS"]) / 1000.0


def ext(t, body):
    return struct.pack(">HH", t, len(body)) + body


def record(ctype, payload, version=0x0303):
    return struct.pack(">BHH", ctype, version, len(payload)) + payload


def client_hello(suites=(0xCCA9, 0xC02B, 0xC02C, 0x00FF), comp=b"\x00", version=0x0303,
                 rec_version=0x0301, heartbeat=False):
    sni = b"localhost"
    exts = [ext(0x0000, struct.pack(">HBH", len(sni) + 3, 0, len(sni)) + sni),
            ext(0x000A, b"\x00\x06\x00\x1d\x00\x17\x00\x18"),       # x25519, P-256, P-384
            ext(0x000B, b"\x01\x00"),
            ext(0x000D, b"\x00\x08\x04\x03\x05\x03\x06\x03\x08\x04"),
            ext(0x0010, b"\x00\x03\x02h2"), ext(0x0017, b""), ext(0x0023, b"")]
    if heartbeat:
        exts.append(ext(0x000F, b"\x01"))                           # peer_allowed_to_send
    cs = b"".join(struct.pack(">H", s) for s in suites)
    e = b"".join(exts)
    body = (struct.pack(">H", version) + os.urandom(32) + b"\x00" + struct.pack(">H", len(cs)) +
            cs + bytes((len(comp),)) + comp + struct.pack(">H", len(e)) + e)
    return record(22, b"\x01" + struct.pack(">I", len(body))[1:] + body, rec_version)


class Probe:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
        self.buf = b""
        self.records = []
        self.end = None

    def send(self, b):
        try:
            self.s.sendall(b)
        except OSError as e:
            self.end = self.end or "send failed: %r" % e

    def read(self, timeout, until=None):
        """Records until `until(record)`, the close, or timeout; seconds taken."""
        t0 = time.monotonic()
        while self.end is None and time.monotonic() - t0 < timeout:
            while len(self.buf) >= 5:
                n = struct.unpack(">H", self.buf[3:5])[0]
                if len(self.buf) < 5 + n:
                    break
                rec = (self.buf[0], self.buf[5:5 + n])
                self.records.append(rec)
                self.buf = self.buf[5 + n:]
                if until and until(rec):
                    return time.monotonic() - t0
            self.s.settimeout(max(0.01, min(0.2, timeout - (time.monotonic() - t0))))
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                continue
            except OSError as e:
                self.end = "reset (%s)" % e.__class__.__name__
                break
            if not d:
                self.end = "EOF"
                break
            self.buf += d
        return time.monotonic() - t0

    def alerts(self):
        return ["%d/%d" % (p[0], p[1]) for t, p in self.records if t == 21 and len(p) >= 2]

    def server_hello(self):
        for t, p in self.records:
            if t == 22 and p[:1] == b"\x02":
                b = p[4:]
                off = 35 + b[34]
                suite, comp = struct.unpack(">H", b[off:off + 2])[0], b[off + 2]
                exts, off = [], off + 3
                if off + 2 <= len(b):
                    end = off + 2 + struct.unpack(">H", b[off:off + 2])[0]
                    off += 2
                    while off + 4 <= end:
                        et, ln = struct.unpack(">HH", b[off:off + 4])
                        exts.append(et)
                        off += 4 + ln
                return {"suite": suite, "comp": comp, "exts": exts}
        return None

    def close(self):
        self.s.close()


def server_hello_done(rec):
    t, p = rec
    # ServerHelloDone (14) ends the server's first flight; it may share a record
    return t == 22 and b"\x0e\x00\x00\x00" in p


# -- heartbeat (RFC 6520): never negotiated, a request record gets no response
p = Probe()
p.send(client_hello(heartbeat=True))
p.read(5, until=server_hello_done)
sh = p.server_hello()
ok(sh is not None and 0x000F not in sh["exts"],
   "ClientHello with the heartbeat extension: the ServerHello has none", sh)
p.send(record(24, b"\x01\x40\x00" + b"A" * 16 + b"\0" * 16))  # request claiming 16384 bytes
dt = p.read(HS * 0.8)
hb = [t for t, _ in p.records if t == 24]
ok(not hb and (p.end or p.alerts()),
   "heartbeat request record during the handshake: no heartbeat response, connection refused "
   "(%s%s)" % ("alert " + ",".join(p.alerts()) + " " if p.alerts() else "", p.end or "open"),
   "records back: %s" % [t for t, _ in p.records])
ok("2/10" in p.alerts(),
   "RFC 5246 6: an unexpected record type gets an unexpected_message alert",
   "got alerts %s, then %s" % (p.alerts(), p.end))
p.close()

# -- compression (RFC 5246 7.4.1.2/7.4.1.3): null is the only method chosen
p = Probe()
p.send(client_hello(comp=b"\x01\x00"))
p.read(5, until=server_hello_done)
sh = p.server_hello()
ok(sh is not None and sh["comp"] == 0, "ClientHello offering DEFLATE then null: null chosen", sh)
p.close()
p = Probe()
p.send(client_hello(comp=b"\x01"))
p.read(5, until=server_hello_done)
sh = p.server_hello()
ok(sh is None and (p.alerts() or p.end),
   "ClientHello offering only DEFLATE (no null, RFC 5246 7.4.1.2 MUST include it): refused, "
   "not answered with a method the client did not offer",
   "ServerHello %s (compression_method %s not in the offered [1]); alerts %s" % (
       sh, sh and sh["comp"], p.alerts()))
p.close()

# -- garbage instead of a ClientHello: an alert or the close, at once
GARBAGE = [
    ("512 random bytes", os.urandom(512)),
    ("an HTTP/1.1 request", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("the HTTP/2 preface in clear text", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    ("a handshake record of length 65535", struct.pack(">BHH", 22, 0x0303, 0xFFFF) + b"\1" * 64),
    ("an SSLv2 ClientHello", bytes.fromhex("802e0103010015000000100700c00300800100800600400400800200"
                                           "80") + os.urandom(16)),
    ("a ClientHello without cipher suites", client_hello(suites=())),
    ("a ClientHello with its extension lengths overwritten", client_hello()[:-10] + b"\xff" * 10),
    ("an SSL 3.0 ClientHello", client_hello(version=0x0300, rec_version=0x0300)),
    ("an alert record first", record(21, b"\x02\x28")),
    ("an application data record first", record(23, b"hello")),
    ("a ChangeCipherSpec record first", record(20, b"\x01")),
    ("an empty handshake record", record(22, b"")),
    ("a handshake message of unknown type 99", record(22, b"\x63\x00\x00\x00")),
    ("a Finished message first", record(22, b"\x14\x00\x00\x0c" + os.urandom(12))),
]
for what, data in GARBAGE:
    p = Probe()
    p.send(data)
    dt = p.read(HS * 0.5)
    hello = p.server_hello()
    refused = (p.end is not None or p.alerts()) and hello is None
    ok(refused, "%s: refused within %.1f s (%s%s)" % (what, dt, "alert " + ",".join(p.alerts())
                                                       + ", " if p.alerts() else "",
                                                       p.end or "still open"),
       "after %.1f s: records %s, alerts %s, %s" % (dt, [t for t, _ in p.records], p.alerts(),
                                                    p.end or "still open"))
    p.close()

c = hc.connect("wowza-01")
r = c.post(hc.pack(hc.minimal_frame(int(time.time() * 1000), kind="wowza")))
ok(r.status == 202, "after the garbage a valid client still gets 202", r)
c.close()
EOF
check "gateway alive after the raw probes" alive "$GW_PID"

# ---- 1000 half-open connections ------------------------------------------------------------------
n_to=$(log_count '"event":"handshake_timeout"')
py_checks - <<'EOF'
import os, select, socket, time
import h2client as hc

ok = hc.Checks()
PORT = int(os.environ["PG_PORT"])
HS = int(os.environ["PG_HS_MS"]) / 1000.0
N = 1000

t0 = time.monotonic()
socks = {}
for _ in range(N):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", PORT))
    except BlockingIOError:
        pass
    socks[s.fileno()] = s
ok.note("%d TCP connections opened in %.2f s, none sends a byte" % (N, time.monotonic() - t0))

for v6, label in ((False, "127.0.0.1"), (True, "::1")):
    t1 = time.monotonic()
    try:
        c = hc.connect("wowza-01", v6=v6, timeout=HS)
        r = c.post(hc.pack(hc.minimal_frame(int(time.time() * 1000), kind="wowza")))
        c.close()
        ok(r.status == 202 and time.monotonic() - t0 < HS * 0.9,
           "while they hang, a valid client on %s gets 202 (in %.2f s)" % (label,
                                                                          time.monotonic() - t1), r)
    except Exception as e:  # noqa: BLE001
        ok(False, "while they hang, a valid client on %s gets 202" % label, repr(e))

poll = select.poll()
for fd in socks:
    poll.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
closed = {}
data = 0
deadline = t0 + HS + 10
while len(closed) < N and time.monotonic() < deadline:
    for fd, _ in poll.poll(200):
        try:
            d = socks[fd].recv(64)
        except BlockingIOError:
            continue
        except OSError:
            d = b""
        if d:
            data += 1
            continue
        closed[fd] = time.monotonic() - t0
        poll.unregister(fd)
t = sorted(closed.values())
ok(len(t) == N, "all %d half-open connections closed by the gateway (%d within %.0f s)" % (
    N, len(t), HS + 10))
if t:
    ok(t[0] >= HS * 0.9, "none closed before the handshake timeout (%.1f s): first at %.2f s, "
       "last at %.2f s" % (HS, t[0], t[-1]))
    ok(t[-1] <= HS + 5, "all closed within 5 s after the handshake timeout (last at %.2f s)" % t[-1])
ok(data == 0, "the gateway sent nothing on them", "%d sockets got bytes" % data)
for s in socks.values():
    s.close()
EOF
if wait_log '"event":"handshake_timeout"' $((n_to + 1000)) 10; then
    ok "the gateway logged 1000 handshake_timeout events"
else
    not_ok "handshake_timeout events: $(($(log_count '"event":"handshake_timeout"') - n_to)), want 1000"
fi
check "gateway alive after the half-open flood" alive "$GW_PID"

# ---- resumption after revocation ---------------------------------------------------------------
ossl "${S[@]}" -sess_out "$T/nimble2.sess"
check "a fresh nimble-01 session before the revocation" grep -aqE '^New, TLSv1\.2' "$T/ossl.out"
n=$(log_count 'reason=revoked')
revoke nimble-01
nc=$(log_count '"event":"connected".*"server":"nimble-01"')
OSSL_IN=/dev/null ossl "${S[@]}" -ign_eof -sess_in "$T/nimble2.sess"
if [[ $ALERT == 44 ]]; then
    ok "resuming the session of a server revoked in between (revoke + SIGHUP): alert certificate_revoked ($(grep -aoE '^(New|Reused)' "$T/ossl.out" | head -1) handshake, then refused)"
else
    not_ok "resumption after revocation: want alert 44 certificate_revoked, got alert $ALERT cipher '$CIPHER': $(first_error)"
fi
check_eq "no HTTP/2 session was started for it (no 'connected' log line)" \
    "$(log_count '"event":"connected".*"server":"nimble-01"')" "$nc"
if wait_log 'reason=revoked' $((n + 1)) 10; then
    ok "the refusal is logged as handshake_refused reason=revoked"
else
    not_ok "no handshake_refused reason=revoked line"
fi
ossl "${S[@]}"
check_eq "a full handshake of the revoked server: alert certificate_revoked" "$(alert_name "$ALERT")" certificate_revoked

finish
