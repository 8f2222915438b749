#!/usr/bin/env bash
# test_gw_ratelimit.sh - rate limits end to end:
#   - a server over its frames/s bucket gets 429 rate_limited with
#     retry-after; the same frame sent again after that many seconds is
#     accepted (202);
#   - a body over a server's bytes/s bucket (a [ratelimit.server NAME]
#     override) gets 429 at its headers;
#   - a flood of 200 TCP connections from 127.0.0.2 is closed at accept
#     (before TLS) beyond the per-address burst, while a registered agent on
#     127.0.0.1 still connects and gets 202;
#   - escalation: repeated 429s ban a server (a [ratelimit.wowza] override
#     gives it a small bucket): its connection gets GOAWAY
#     (ENHANCE_YOUR_CALM), a new handshake is refused with access_denied
#     during the ban and accepted after it;
#   - a reload applies new limits (and table sizes) to live servers;
#   - the activity log holds handshake_throttled, rate_limited,
#     rate_limit_ban and handshake_refused (reason banned) rows.
. "$(dirname "$0")/lib.sh"

make_pki
# nimble-01: default limits (1/s, burst 3); wowza-01: burst 2 by kind;
# spare-01 (nimble): bytes limited by its own section
gw_config "[http2]" "max_body_bytes = 64k" \
    "[ratelimit]" \
    "frames_per_s = 1" "frames_burst = 3" "bytes_burst = 64k" \
    "handshakes_per_s_per_addr = 5" "handshakes_burst_per_addr = 20" \
    "abuse_threshold = 8" "abuse_window_s = 10" "ban_s = 3" \
    "[ratelimit.wowza]" "frames_burst = 2" \
    "[ratelimit.server spare-01]" "bytes_per_s = 1k" "frames_burst = 10"
gw_start
register nimble-01 nimble "$PKI/nimble-01.crt"
register wowza-01 wowza "$PKI/wowza-01.crt"
register spare-01 nimble "$PKI/spare-01.crt"
gw_reload
WOWZA_ID=$(server_id wowza-01)
NIMBLE_ID=$(server_id nimble-01)
SPARE_ID=$(server_id spare-01)

# ---- 429 with retry-after, then the retry succeeds ---------------------------------------
py_checks - <<'EOF'
import time
import h2client as hc

ok = hc.Checks()
c = hc.connect("nimble-01")
for seq in (1, 2, 3):
    r = c.post(hc.pack(hc.minimal_frame(seq)))
    ok(r.status == 202, "nimble-01 frame %d within the burst (3) -> 202" % seq, r)
body = hc.pack(hc.minimal_frame(4))
r = c.post(body)
ok(hc.problem_ok(r, 429, "rate_limited"), "frame 4 over frames_burst -> 429 rate_limited", r)
ra = r.headers.get("retry-after", "")
ok(ra.isdigit() and int(ra) >= 1, "429 carries retry-after in whole seconds (%r)" % ra, r)
j = r.json() or {}
ok("frames" in j.get("detail", ""), "the detail names the frames bucket", j)
ok(not c.closed and c.goaway is None, "the connection stays usable after a 429")
time.sleep(int(ra) if ra.isdigit() else 1)
r = c.post(body)
ok(r.status == 202, "the same frame after retry-after seconds -> 202", r)
c.close()

# bytes: spare-01 may send 1 KiB/s with a 64 KiB burst, charged per body
s = hc.connect("spare-01")
junk = b"\x00" * 40000
r = s.post(junk)
ok(r.status == 400, "spare-01: a 40 KB body within the bytes burst is read (400: not a frame)", r)
r = s.post(junk)
ok(hc.problem_ok(r, 429, "rate_limited"), "spare-01: the next 40 KB body is over bytes/s -> 429 "
   "at its headers", r)
ra = r.headers.get("retry-after", "")
ok(ra.isdigit() and 14 <= int(ra) <= 17, "retry-after is the time the bytes take to refill "
   "(~16 s for 16 KB at 1 KiB/s): %r" % ra, r)
ok("bytes" in (r.json() or {}).get("detail", ""), "the detail names the bytes bucket", r)
r = s.post(hc.pack(hc.minimal_frame(1, name="spare")))
ok(r.status == 202, "spare-01: a small frame still fits the bytes left -> 202", r)
s.close()
EOF

# ---- handshake flood from 127.0.0.2 ------------------------------------------------------------
py_checks - <<'EOF'
import os, select, socket, time
import h2client as hc

ok = hc.Checks()
port = int(os.environ["PG_PORT"])
t0 = time.monotonic()
socks = []
for i in range(200):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.2", 0))
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", port))
    except OSError as e:
        ok(False, "TCP connect %d from 127.0.0.2" % i, e)
        s.close()
        continue
    socks.append(s)
ok(len(socks) == 200, "200 TCP connections from 127.0.0.2 (%.2f s)" % (time.monotonic() - t0))

# meanwhile a registered agent from 127.0.0.1 gets in (spare-01: nimble-01
# spent its frames above)
c = hc.connect("spare-01")
r = c.post(hc.pack(hc.minimal_frame(100, name="spare")))
ok(r.status == 202, "during the flood spare-01 (127.0.0.1) connects and gets 202", r)
c.close()

# the throttled ones were closed at once: EOF, without a byte of TLS
deadline = time.monotonic() + 3
closed = set()
while time.monotonic() < deadline and len(closed) < len(socks):
    live = [s for s in socks if s not in closed]
    r, _, _ = select.select(live, [], [], 0.2)
    for s in r:
        try:
            d = s.recv(100)
        except OSError:
            d = b""
        if d:
            ok(False, "a throttled connection got bytes", d)
        closed.add(s)
n_closed, n_open = len(closed), len(socks) - len(closed)
hc_note = "closed %d, still open (waiting for a ClientHello) %d" % (n_closed, n_open)
ok(n_closed >= 150, "most of the flood is closed at accept: " + hc_note)
ok(20 <= n_open <= 50, "the burst (20) and a few refilled tokens got through: " + hc_note)
for s in socks:
    s.close()
EOF
check "handshake_throttled logged with the address" \
    grep -q '"event":"handshake_throttled".*addr=127.0.0.2 ' "$GW_LOG"
check "no throttling of 127.0.0.1" bash -c "! grep -q 'handshake_throttled.*addr=127.0.0.1 ' '$GW_LOG'"

# ---- escalation: many 429s -> GOAWAY, a ban, then admitted again -------------------------------
py_checks - <<'EOF'
import ssl, time
import h2client as hc

ok = hc.Checks()
w = hc.connect("wowza-01")
statuses = []
seq = 1
while w.goaway is None and not w.closed and seq <= 40:
    r = w.post(hc.pack(hc.minimal_frame(seq, kind="wowza")), timeout=10)
    statuses.append(r.status)
    seq += 1
w.wait_goaway(5)
ok(statuses[:2] == [202, 202], "wowza-01: 2 frames within its kind's burst -> 202", statuses)
n429 = statuses.count(429)
ok(n429 == 8, "then 429s until abuse_threshold (8) is reached (%d)" % n429, statuses)
ok(w.goaway is not None, "the 8th 429 bans the server: its connection gets GOAWAY",
   "closed=%s %s" % (w.closed, w.close_reason))
if w.goaway is not None:
    ok(int(w.goaway.error_code) == 0xb, "GOAWAY ENHANCE_YOUR_CALM", w.goaway.error_code)
    ok(w.goaway.additional_data == b"rate_limited", "GOAWAY debug data rate_limited",
       w.goaway.additional_data)
ok(w.wait_closed(15), "the banned connection is closed", w.close_reason)
w.close()
t_ban = time.monotonic()

try:
    x = hc.Conn(ctx=hc.context("wowza-01"))
    r = x.post(hc.pack(hc.minimal_frame(100, kind="wowza")), timeout=5)
    ok(False, "a handshake during the ban is refused", r)
except (ssl.SSLError, OSError) as e:
    ok("ACCESS_DENIED" in str(e).upper(), "a handshake during the ban -> access_denied (%s)" % e, e)

# nimble-01 is not affected by wowza-01's ban
n = hc.connect("nimble-01")
r = n.post(hc.pack(hc.minimal_frame(101)))
ok(r.status == 202, "another server is not affected by the ban (202)", r)
n.close()

time.sleep(max(0.0, 3.3 - (time.monotonic() - t_ban)))
w = hc.connect("wowza-01")
r = w.post(hc.pack(hc.minimal_frame(100, kind="wowza")))
ok(r.status == 202, "after ban_s (3 s) the server connects again and gets 202", r)
w.close()
EOF
check "rate_limit_ban logged" grep -q '"event":"rate_limit_ban".*"server":"wowza-01"' "$GW_LOG"
check "the refused handshake is logged with reason=banned" \
    grep -q '"event":"handshake_refused".*reason=banned ' "$GW_LOG"

# ---- a reload: new limits at the next request, tables resized --------------------------------
sed -i -e 's/^handshakes_burst_per_addr = 20$/&\naddr_table_size = 16\nserver_table_size = 8/' \
    -e 's/^\[ratelimit.wowza\]$/[ratelimit.server nimble-01]\nframes_burst = 1\n&/' "$GW_CONF"
gw_reload
py_checks - <<'EOF'
import h2client as hc

ok = hc.Checks()
c = hc.connect("nimble-01")
r = c.post(hc.pack(hc.minimal_frame(200)))
ok(r.status == 202, "after the reload nimble-01 has its own burst of 1: first frame -> 202", r)
r = c.post(hc.pack(hc.minimal_frame(201)))
ok(hc.problem_ok(r, 429, "rate_limited"), "... the second at once -> 429", r)
c.close()
w = hc.connect("wowza-01")
r = w.post(hc.pack(hc.minimal_frame(300, kind="wowza")))
ok(r.status == 202, "wowza-01 (its entry moved to the smaller table) -> 202", r)
w.close()
EOF

# ---- the activity log (written at the drain) -----------------------------------------------
gw_stop_check
details() { sql "SELECT group_concat(details, ' | ') FROM activity WHERE action = '$1' $2"; }
json_field() { "$PY" -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2]))' "$1" "$2"; }

d=$(details handshake_throttled "")
note "handshake_throttled: $d"
if [[ -n $d && $d != *"|"* ]]; then
    check_eq "one handshake_throttled row, for 127.0.0.2" "$(json_field "$d" addr)" 127.0.0.2
    c=$(json_field "$d" count)
    check "its count is the flood minus what got through ($c >= 150)" test "$c" -ge 150
else
    not_ok "one handshake_throttled row (got: $d)"
fi
d=$(details rate_limit_ban "AND server_id = $WOWZA_ID")
note "rate_limit_ban: $d"
check_eq "rate_limit_ban row for wowza-01: reason" "$(json_field "$d" reason)" frames
check_eq "rate_limit_ban row: ban_s" "$(json_field "$d" ban_s)" 3
check_eq "rate_limit_ban row: connections" "$(json_field "$d" connections)" 1
d=$(details rate_limited "AND server_id = $WOWZA_ID")
note "rate_limited (wowza-01): $d"
check_eq "rate_limited row for wowza-01 counts its 8 frames 429s" "$(json_field "$d" frames)" 8
d=$(details rate_limited "AND server_id = $NIMBLE_ID")
check_eq "rate_limited row for nimble-01: 2 (before and after the reload)" \
    "$(json_field "$d" frames)" 2
d=$(details rate_limited "AND server_id = $SPARE_ID")
check_eq "rate_limited row for spare-01: 1 bytes" "$(json_field "$d" bytes)" 1
check_eq "handshake_refused reason banned for wowza-01" \
    "$(sql "SELECT count(*) FROM activity WHERE action = 'handshake_refused' AND server_id = $WOWZA_ID AND details LIKE '%\"banned\"%'")" 1
check "panelgatectl shows the rows" bash -c \
    "'${PANELGATECTL:-$PANELGATE_BUILD_DIR/bin/panelgatectl}' --db '$PG_DB' activity --action rate_limit_ban | grep -q wowza-01"
check "the gateway's stop line counts throttled connections, 429s and the ban" \
    grep -Eq '"event":"stopped".*handshakes_throttled=[1-9][0-9]+ frames_rate_limited=11 rate_limit_bans=1' "$GW_LOG"

finish
