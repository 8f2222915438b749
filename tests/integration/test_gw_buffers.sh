#!/usr/bin/env bash
# test_gw_buffers.sh - body memory is charged as it is allocated, and a
# declared content-length reserves nothing before its bytes arrive (issue
# 11: a buffer the size of the declared length was allocated at the first
# DATA byte, while the budget counted bytes received: 4 connections x 100
# streams declaring 4 MiB with one byte each reserved about 1.6 GB).
#   - 400 streams declaring 4 MiB each, one DATA byte each: the gateway's
#     data segment grows by less than 64 MiB (it grew by ~1.6 GB), and the
#     gateway serves a frame afterwards;
#   - the gateway-wide budget ([http2] max_total_buffer_bytes): two
#     connections, each within its own budget, together over the
#     gateway's: the second gets 503 overloaded naming the gateway, and is
#     served once the first body is gone.
. "$(dirname "$0")/lib.sh"

make_pki
gw_config "[http2]" "max_concurrent_streams = 100"
gw_start
register_defaults
export PG_GW_PID=$GW_PID

py_checks - <<'EOF_PY'
import os
import h2client as hc
ok = hc.Checks()

def vm_data_kb():
    for line in open("/proc/%s/status" % os.environ["PG_GW_PID"]):
        if line.startswith("VmData:"):
            return int(line.split()[1])
    return -1

before = vm_data_kb()
conns = [hc.connect("nimble-01") for _ in range(4)]
for c in conns:
    for _ in range(100):
        sid = c.start(None, content_length=4 << 20, end=False)
        c.send_body(sid, b"\x8a", end=False)
for c in conns:
    c.ping()          # the gateway has read everything sent before the ping
after = vm_data_kb()
grew = (after - before) // 1024
print("# VmData %d kB -> %d kB (+%d MiB) with 400 streams of one byte each" % (before, after, grew))
ok(before > 0 and grew < 64,
   "400 streams declaring 4 MiB with one byte each: the data segment grew %d MiB (< 64)" % grew)
for c in conns:
    c.close()
c = hc.connect("nimble-01")
r = c.post(hc.pack(hc.minimal_frame(1)))
ok(r.status == 202, "after they went away: a frame is stored (202)", r)
c.close()
EOF_PY
gw_stop_check

# ---- the gateway-wide budget ------------------------------------------------------------
rm -f "$GW_CONF"
gw_config "[http2]" "max_body_bytes = 700k" "max_conn_buffer_bytes = 1m" \
    "max_total_buffer_bytes = 1m"
gw_start
py_checks - <<'EOF_PY'
import h2client as hc
ok = hc.Checks()
a = hc.connect("nimble-01")
b = hc.connect("wowza-01")
n = 600000
sa = a.start(None, content_length=n, end=False)
a.send_body(sa, b"\x00" * (n - 1), end=False)
a.ping()
sb = b.start(None, content_length=n, end=False)
b.send_body(sb, b"\x00" * (n - 1), end=False, stop_on_answer=True)
r = b.response(sb)
detail = r.body.decode(errors="replace")
ok(r.status == 503 and "the gateway buffers too much" in detail,
   "two bodies of 600000 bytes, each within its connection's 1 MiB, together over the "
   "gateway's 1 MiB: 503 overloaded naming the gateway", r)
a.send_body(sa, b"\x00", end=True)
ra = a.response(sa)
ok(ra.status == 400, "the first body completes (400: it is no frame)", ra)
r = b.post(hc.pack(hc.minimal_frame(2, name="wowza-01", kind="wowza")))
ok(r.status == 202, "with the first body gone, the second connection is served (202)", r)
a.close()
b.close()
EOF_PY
gw_stop_check
finish
