#!/usr/bin/env bash
# test_gw_memscan.sh - issue 11 (privacy): no viewer IP is left in the
# gateway's memory once its frame is handled, whatever became of the frame.
#
# Frames whose viewer addresses are unique markers (10.123.K.201 and
# 2001:db8:7e57:K:5ca1:ab1e:K:c0de, K one per case) go through every path a
# body can take: accepted (202), duplicate seq, malformed after the IPs
# (400), the IPs sent as text (400 type), too large while streaming and by
# its content-length (413), wrong content-type (415, body read and dropped),
# reset by the agent mid-body, connection closed mid-body, request timeout
# (408), rate-limited at the body's end and at the headers (429), refused by
# storage after the decode and at the headers (503).  Once every answer is
# in, the live process is dumped with gdb's gcore (two agent connections
# idle and open: what their TLS contexts still hold counts) and the core is
# searched for each marker as text, MessagePack str, raw 4/16 bytes,
# MessagePack bin and IPv4-mapped IPv6 (memscan.py); then again once every
# connection is closed.  Zero hits are expected.  The cores hold the
# markers: each is deleted right after its scan.
#
# Then a gateway run as nobody shows it made itself non-dumpable
# (PR_SET_DUMPABLE 0): its /proc/PID files are owned by root, not by the
# uid it runs as, and its core size limit is 0.
. "$(dirname "$0")/lib.sh"

# the cores hold the markers (and are large): never left behind
ND=
trap 'cleanup; rm -f "$T"/core.*; [[ -z $ND ]] || rm -rf "$ND"' EXIT
command -v gcore >/dev/null || fatal "gcore (gdb) is installed (scripts/deps.sh)"
command -v setpriv >/dev/null || fatal "setpriv (util-linux) is installed"

make_pki
gw_config "[server]" "request_timeout_ms = 2000" \
    "[http2]" "max_body_bytes = 64k" \
    "[storage]" "busy_timeout_ms = 200" \
    "[ratelimit]" "frames_per_s = 0" "bytes_per_s = 0" "handshakes_per_s_per_addr = 0" \
    "[ratelimit.server wowza-01]" "frames_per_s = 1" "frames_burst = 2" "bytes_per_s = 1" \
    "bytes_burst = 64k"
gw_start
register_defaults
ADMIN=$(admin_port)
export PG_DB PG_MARKERS=$T/markers.json PG_READY=$T/ready PG_DONE=$T/done

# Under AddressSanitizer (make sanitize) the searches are not made, only
# the paths run (and ASan watches them): gdb takes minutes over the
# shadow's terabytes of address space, and ASan's fake stacks (stack frames
# moved to mmap'd memory to catch use after return, not reused as the real
# stack is) keep 8-byte locals of the decode path with body bytes in them
# (seen: the 413 and 202 cases, in an anonymous mapping next to a return
# address), which the plain build's stack does not keep.  The plain build
# runs every search.
SAN=0
[[ $(ldd "$PG_BIN") == *libasan* ]] && SAN=1 # not ldd | grep -q: under pipefail grep's early exit fails ldd (SIGPIPE)
export PG_SAN=$SAN

conns_open() {
    curl -s --max-time 5 "http://127.0.0.1:$ADMIN/metrics" |
        awk '$1 == "panelgate_connections_open" { print $2 }'
}
conns_are() { [[ $(conns_open) == "$1" ]]; }

# the agents' side: runs in the background and keeps its two connections
# open (idle) until $PG_DONE appears
cat >"$T/agents.py" <<'EOF'
import json, os, sqlite3, time
import h2client as hc
import memscan

ok = hc.Checks()
GW = int(os.environ["PG_GW_PID"])
cases = []


def handled():
    """The last case is answered: its addresses must be gone from every
    mapping of the live gateway already (a later frame reusing the freed
    memory must not be what hides them)."""
    if not cases or os.environ["PG_SAN"] == "1":
        return
    c = cases[-1]
    hits = memscan.scan_live(GW, c["ips"])
    ok(not hits, "live memory right after case '%s': no trace of %s" % (c["case"], ", ".join(c["ips"])),
       "%d hits:\n#   %s" % (len(hits), "\n#   ".join(hits[:20])))


# the search itself works: the registered server names are in the
# registry's snapshot for as long as the gateway runs
if os.environ["PG_SAN"] == "1":
    ok.note("AddressSanitizer build: the memory searches are skipped (see the script's header)")
else:
    ctl = memscan.scan_live(GW, [], needles=[("control", "text", b"wowza-01")])
    ok(ctl, "control: the live search finds the text 'wowza-01' (the registry snapshot)")


def markers(k, what):
    handled()
    ips = ["10.123.%d.201" % k, "2001:db8:7e57:%x:5ca1:ab1e:%x:c0de" % (k, k)]
    cases.append({"case": what, "ips": ips})
    return ips


def frame(seq, ips, n=1, name="edge-1"):
    """A valid frame with n connections from each of the addresses."""
    conns = [(ips[i % len(ips)], 100 + i, 1000 + i) for i in range(n * len(ips))]
    f = hc.minimal_frame(seq, name=name, conns=conns)
    f["server"]["ips"] = [hc.ip_bytes("198.51.100.201")]
    return f


a = hc.connect("nimble-01")
b = hc.connect("wowza-01")

ips = markers(1, "accepted (202)")
r = a.post(hc.pack(frame(9001, ips)))
ok(r.status == 202, "accepted -> 202", r)

ips = markers(2, "duplicate seq (202, not stored again)")
r = a.post(hc.pack(frame(9001, ips)))
ok(r.status == 202, "duplicate seq -> 202", r)

ips = markers(3, "malformed after the IPs (400)")
f = frame(9003, ips)
f["conns"][1]["out"] = -4
r = a.post(hc.pack(f))
ok(r.status == 400, "conns[1].out negative -> 400", r)

ips = markers(4, "IPs sent as text (400 type)")
f = frame(9004, ips)
for i, c in enumerate(f["conns"]):
    c["ip"] = ips[i]
r = a.post(hc.pack(f))
ok(r.status == 400, "conns[0].ip as a str -> 400", r)

ips = markers(5, "too large while streaming, no content-length (413)")
r = a.post(hc.pack(frame(9005, ips, n=1500)), content_length=None)
ok(r.status == 413, "body over max_body_bytes -> 413", r)

ips = markers(6, "too large by content-length (413 at the headers, body sent anyway)")
r = a.post(hc.pack(frame(9006, ips, n=1500)))
ok(r.status == 413, "content-length over max_body_bytes -> 413", r)

ips = markers(7, "wrong content-type (415, body read and dropped)")
r = a.post(hc.pack(frame(9007, ips)), content_type="application/json")
ok(r.status == 415, "content-type application/json -> 415", r)

ips = markers(8, "reset by the agent mid-body")
body = hc.pack(frame(9008, ips, n=200))
sid = a.start(None, content_length=None, end=False)
a.send_body(sid, body[:len(body) // 2], end=False)
a.reset_stream(sid)
ok(a.ping(), "stream reset mid-body: the connection goes on (PING answered)")

ips = markers(9, "connection closed mid-body")
c = hc.connect("nimble-01")
body = hc.pack(frame(9009, ips, n=200))
sid = c.start(None, content_length=None, end=False)
c.send_body(sid, body[:len(body) // 2], end=False)
ok(c.ping(), "connection closed mid-body: the body's first half was read (PING answered)")
c.sock.close()

ips = markers(10, "request timeout mid-body (408)")
body = hc.pack(frame(9010, ips, n=200))
sid = a.start(None, content_length=None, end=False)
a.send_body(sid, body[:len(body) // 2], end=False)
r = a.response(sid, timeout=15)
ok(r.status == 408, "half a body, then nothing -> 408 after request_timeout_ms", r)

# wowza-01: frames 1/s burst 2, bytes 1/s burst 64k
ips = markers(11, "accepted (202), spends wowza-01's byte bucket")
r = b.post(hc.pack(frame(9011, ips, n=900, name="edge-2")), content_length=None)
ok(r.status == 202, "wowza-01: a 55 KB frame -> 202", r)

ips = markers(12, "rate-limited at the body's end (429 bytes)")
r = b.post(hc.pack(frame(9012, ips, n=300, name="edge-2")), content_length=None)
ok(r.status == 429, "wowza-01: over its bytes bucket, found when the body is complete -> 429", r)

ips = markers(13, "rate-limited at the headers (429, body not read)")
r = b.post(hc.pack(frame(9013, ips, n=300, name="edge-2")))
ok(r.status == 429, "wowza-01: over its frames bucket -> 429 at the headers", r)

# storage locked: the writer fails after busy_timeout_ms (503 after the
# decode), then requests are refused at their headers while it fails
db = sqlite3.connect(os.environ["PG_DB"], timeout=20, isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
ips = markers(14, "refused by storage after the decode (503)")
r = a.post(hc.pack(frame(9014, ips)))
ok(r.status == 503, "storage locked -> 503", r)
ips = markers(15, "refused while storage fails (503 at the headers)")
r = a.post(hc.pack(frame(9015, ips)))
ok(r.status == 503, "storage failing -> 503", r)
db.execute("ROLLBACK")
db.close()

# the last frame on each connection: its records are the last the
# connection's TLS context decrypted
ips = markers(16, "accepted (202) once storage is back, last frame on its connection")
deadline = time.monotonic() + 20
while True:
    r = a.post(hc.pack(frame(9016, ips)))
    if r.status != 503 or time.monotonic() > deadline:
        break
    time.sleep(0.3)
ok(r.status == 202, "storage back -> 202", r)
ips = markers(17, "rate-limited (429), last frame on its connection")
r = b.post(hc.pack(frame(9017, ips, n=300, name="edge-2")))
ok(r.status == 429, "wowza-01: still over its buckets -> 429", r)
ok(a.ping() and b.ping(), "both connections still answer PING")
handled()

json.dump(cases, open(os.environ["PG_MARKERS"], "w"))
open(os.environ["PG_READY"], "w").close()
deadline = time.monotonic() + 300
while not os.path.exists(os.environ["PG_DONE"]) and time.monotonic() < deadline:
    time.sleep(0.05)
a.close()
b.close()
EOF

py_bg "$T/agents.out" "$T/agents.py"
AGENTS=$PY_BG_PID
wait_until 120 test -e "$T/ready" || { cat "$T/agents.out"; fatal "the agents' frames were all answered"; }
wait_until 10 conns_are 2 || not_ok "only the two idle agent connections are open (got $(conns_open))"


# scan LABEL: gcore of the live gateway, searched, then deleted
scan() {
    if ((SAN)); then
        note "gcore $1: skipped under AddressSanitizer"
        return 0
    fi
    local core=$T/core.$1
    rm -f "$core" "$core.$GW_PID"
    cp "/proc/$GW_PID/maps" "$T/maps.$1"
    if ! timeout 120 gcore -o "$core" "$GW_PID" >"$T/gcore.$1.log" 2>&1; then
        cat "$T/gcore.$1.log"
        rm -f "$core" "$core.$GW_PID"
        fatal "gcore of the gateway ($1)"
    fi
    [[ -f $core.$GW_PID ]] && mv "$core.$GW_PID" "$core"
    check "gcore wrote a core ($1)" test -s "$core"
    py_checks "$LIB_DIR/memscan.py" "$core" "$T/maps.$1" "$T/markers.json" "gcore $1" wowza-01
    rm -f "$core"
}

scan live
check "the gateway still runs after gcore" alive "$GW_PID"
touch "$T/done"
py_bg_wait "$AGENTS" "$T/agents.out" 30
wait_until 10 conns_are 0 || not_ok "every agent connection closed (got $(conns_open))"
scan closed
check_eq "stored: the accepted frames, each seq once" \
    "$(sql "SELECT group_concat(seq) FROM (SELECT seq FROM frames ORDER BY seq)")" "9001,9011,9016"
gw_stop_check

# ---- not dumpable ---------------------------------------------------------------
# a gateway run as nobody, from a working directory it cannot write; its
# own files in a directory of its own
ND=$(mktemp -d /tmp/pg-memscan.XXXXXX)
cp "$PKI/gateway.crt" "$PKI/gateway.key" "$PKI/ca.crt" "$ND/"
sed -e "s|$PKI/|$ND/|; s|$PG_DB|$ND/pg.db|; s|$T/ports|$ND/ports|" "$GW_CONF" >"$ND/gw.conf"
chown -R nobody:nogroup "$ND"
chmod 700 "$ND"
(cd / && exec setpriv --reuid=nobody --regid=nogroup --clear-groups \
    "$PG_BIN" --config "$ND/gw.conf" 2>>"$GW_LOG") &
GW_PID=$!
wait_until "$PG_TIMEOUT" test -s "$ND/ports" || fatal "the gateway started as nobody"
check_eq "the gateway runs as nobody" "$(awk '/^Uid:/ { print $2 }' "/proc/$GW_PID/status")" \
    "$(id -u nobody)"
check_eq "/proc/PID/status of the gateway is owned by root (not dumpable)" \
    "$(stat -c %u "/proc/$GW_PID/status")" 0
nobody_reads_maps() {
    setpriv --reuid=nobody --regid=nogroup --clear-groups cat "/proc/$GW_PID/maps" >/dev/null 2>&1
}
check "nobody (its own uid) cannot read its /proc/PID/maps (ptrace access refused)" \
    eval '! nobody_reads_maps'
check_eq "its core file size limit is 0" \
    "$(awk '/^Max core file size/ { print $5 " " $6 }' "/proc/$GW_PID/limits")" "0 0"
gw_stop_check
finish
