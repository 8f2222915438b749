#!/usr/bin/env bash
# test_gw_errors.sh - requests the gateway must refuse, each with the right
# status and application/problem+json body, on ONE connection that keeps
# serving valid frames afterwards: malformed frames (400 naming the field),
# oversized bodies (413 before the body is all read), wrong media type
# (415), unknown path (404), wrong method (405 + allow), oversized header
# list (431), empty body (400 empty), a content-length that lies (stream
# error); finally a CONTINUATION flood (GOAWAY) that must not hurt the
# next connection.
. "$(dirname "$0")/lib.sh"

make_pki
gw_config "[http2]" "max_body_bytes = 64k" "max_header_list_size = 8k"
gw_start
register_defaults
NIMBLE_ID=$(server_id nimble-01)

py_checks - <<'EOF'
import json, os, time
import h2client as hc

ok = hc.Checks()
MAX_BODY = 65536
MAX_HDR = 8192
sample = hc.load_json("nimble.json")
VIEWER_IPS = [c["ip"] for c in sample["conns"]]
seq = [100000]


def valid():
    seq[0] += 1
    return hc.pack(hc.load_frame("nimble.json", seq=seq[0]))


c = hc.connect("nimble-01")
ok(c.remote_settings.get(0x6) == MAX_HDR, "SETTINGS_MAX_HEADER_LIST_SIZE advertised as 8192",
   c.remote_settings)


def conn():
    """The shared connection; a new one (and a failure) if it died."""
    global c
    if c.closed or c.goaway is not None:
        ok(False, "the shared connection survived", "closed=%s goaway=%s reason=%s" %
           (c.closed, c.goaway, c.close_reason))
        c = hc.connect("nimble-01")
    return c


def still_works(after):
    r = conn().post(valid())
    ok(r.status == 202, "after %s the same connection serves a valid frame (202)" % after, r)


def no_ip(r, what):
    text = r.body.decode("utf-8", "replace")
    leaked = [ip for ip in VIEWER_IPS if ip in text]
    ok(not leaked, "%s: no viewer IP in the answer" % what, leaked[:3])


# ---- 400: malformed frames ------------------------------------------------------
f = hc.load_frame("nimble.json", seq=777)
f["conns"][3]["out"] = -5
r = conn().post(hc.pack(f))
ok(hc.problem_ok(r, 400, "frame:range"),
   "conns[3].out = -5 -> 400 application/problem+json type urn:panelgate:problem:frame:range", r)
j = r.json() or {}
ok(j.get("detail") == "conns[3].out: negative", "detail names the field: conns[3].out: negative",
   j.get("detail"))
ok(isinstance(j.get("offset"), int) and 0 < j["offset"] < len(hc.pack(f)),
   "problem has the byte offset", j.get("offset"))
no_ip(r, "400 range")
still_works("a 400")

good = hc.pack(hc.load_frame("nimble.json", seq=778))
f_missing = hc.load_frame("nimble.json", seq=779)
del f_missing["server"]["kind"]
f_ip = hc.load_frame("nimble.json", seq=780)
f_ip["conns"][0]["ip"] = b"\x01\x02\x03\x04\x05"
f_c1 = hc.load_frame("nimble.json", seq=781)
f_c1["conns"][299]["in"] = hc.Raw(b"\xc1")
f_ext = hc.load_frame("nimble.json", seq=782)
f_ext["ts"] = hc.Raw(b"\xd4\x01\x00")
f_ver = hc.load_frame("nimble.json", seq=783, v=2)
f_seq0 = hc.load_frame("nimble.json", seq=0)
f_utf8 = hc.load_frame("nimble.json", seq=784)
f_utf8["vhosts"][0]["name"] = hc.Raw(b"\xa2\xc3\x28")
f_nil = hc.load_frame("nimble.json", seq=785)
f_nil["load"]["ram_total"] = None
cases = [
    # (what, body, token, exact detail or None)
    ("truncated body", good[:100], "truncated", None),
    ("one byte after the frame", good + b"\x00", "trailing", None),
    ("top level not a map", b"\x01", "type", None),
    ("server.kind missing", hc.pack(f_missing), "missing", "server.kind: missing"),
    ("5-byte viewer address", hc.pack(f_ip), "ip",
     "conns[0].ip: IP address must be 4 or 16 bytes, got 5"),
    ("0xc1 in conns[299].in", hc.pack(f_c1), "invalid", None),
    ("extension type as ts", hc.pack(f_ext), "ext", None),
    ("v = 2", hc.pack(f_ver), "version", None),
    ("seq = 0", hc.pack(f_seq0), "range", None),
    ("invalid UTF-8 in vhosts[0].name", hc.pack(f_utf8), "utf8", None),
    ("nil as load.ram_total", hc.pack(f_nil), "type", None),
]
for what, body, token, detail in cases:
    r = conn().post(body)
    ok(hc.problem_ok(r, 400, "frame:" + token), "%s -> 400 frame:%s" % (what, token), r)
    j = r.json() or {}
    if detail:
        ok(j.get("detail") == detail, "%s: detail %r" % (what, detail), j.get("detail"))
    no_ip(r, what)
still_works("11 malformed frames")

# ---- 413: body over max_body_bytes, no content-length, streamed -----------------
cc = conn()
sid = cc.start(None, content_length=None, end=False)
big = os.urandom(1024 * 1024 - 1024)     # within the flow-control window
t0 = time.monotonic()
sent = cc.send_body(sid, big, end=True, chunk=4096, stop_on_answer=True,
                    pause_after=MAX_BODY + 8192)
r = cc.response(sid)
ok(hc.problem_ok(r, 413, "frame:too_big"),
   "streamed body over max_body_bytes (no content-length) -> 413 frame:too_big", r)
ok(r.answered_early and sent < len(big),
   "413 arrived while the client was still sending (sent %d of %d bytes)" % (sent, len(big)),
   "answered_early=%s" % r.answered_early)
cc.wait(lambda: cc.streams[sid].reset is not None, 5)
ok(cc.streams[sid].reset == 0, "then RST_STREAM(NO_ERROR) asks the client to stop",
   cc.streams[sid].reset)
still_works("a streamed 413")

# ---- 413: content-length declared too big -------------------------------------------
cc = conn()
sid = cc.start(None, content_length=10 * 1024 * 1024, end=False)
r = cc.response(sid, timeout=10)
ok(hc.problem_ok(r, 413, "frame:too_big"),
   "content-length 10 MiB (> 64 KiB) -> 413 before any body byte", r)
ok(r.answered_early and cc.streams[sid].sent == 0, "answered without a body byte sent")
cc.wait(lambda: cc.streams[sid].reset is not None, 5)
ok(cc.streams[sid].reset == 0, "then RST_STREAM(NO_ERROR)", cc.streams[sid].reset)
still_works("a declared-length 413")

# ---- 415 -------------------------------------------------------------------------------
for what, kw in [("content-type text/plain", dict(content_type="text/plain")),
                 ("no content-type", dict(content_type=None)),
                 ("content-type application/json", dict(content_type="application/json")),
                 ("content-encoding gzip", dict(extra=[("content-encoding", "gzip")]))]:
    r = conn().post(valid(), **kw)
    ok(hc.problem_ok(r, 415, "unsupported_media_type"), "%s -> 415" % what, r)
for ct in ["application/msgpack; charset=binary", "Application/MsgPack"]:
    r = conn().post(valid(), content_type=ct)
    ok(r.status == 202, "content-type %r -> 202 (type compared case-insensitively, "
       "parameters ignored)" % ct, r)

# ---- 404 / 405 -----------------------------------------------------------------------
for p in ["/v1/stat", "/v1/stats/", "/v1/stats?x=1", "/", "/V1/STATS"]:
    r = conn().post(valid(), path=p)
    ok(hc.problem_ok(r, 404, "not_found"), "POST %s -> 404" % p, r)
for m in ["GET", "PUT", "OPTIONS", "DELETE"]:
    body = valid() if m == "PUT" else None
    r = conn().request(body, method=m, content_type=None if body is None else "application/msgpack")
    ok(hc.problem_ok(r, 405, "method_not_allowed") and r.headers.get("allow") == "POST",
       "%s /v1/stats -> 405 problem+json with allow: POST" % m, r)
# HEAD on a connection of its own: an answer to HEAD carries no content
# (RFC 9110 9.3.2), so its HEADERS must end the stream.
hh = hc.connect("nimble-01")
r = hh.request(None, method="HEAD", content_type=None)
ok(r.status == 405 and r.headers.get("allow") == "POST", "HEAD /v1/stats -> 405, allow: POST", r)
ok(r.ended and r.body == b"" and hh.protocol_error is None,
   "HEAD: the 405 carries no body (RFC 9110 9.3.2)",
   "client saw: %s" % (hh.protocol_error or "%d body bytes" % len(r.body)))
hh.close()
r = conn().request(None, method="GET", path="/nope", content_type=None)
ok(hc.problem_ok(r, 404, "not_found"), "GET /nope -> 404 (path is checked before method)", r)

# ---- 431 -------------------------------------------------------------------------------
big_hdrs = [("x-pad-%d" % i, "p" * 3000) for i in range(4)]    # ~12 KiB > 8 KiB
r = conn().post(valid(), extra=big_hdrs)
ok(hc.problem_ok(r, 431, "headers_too_large"), "12 KiB header list (limit 8 KiB) -> 431", r)
r = conn().post(valid(), extra=[("x-pad", "p" * 2000)])
ok(r.status == 202, "a 2 KiB header list is fine (202)", r)
still_works("a 431")

# ---- empty bodies -------------------------------------------------------------------------
r = conn().request(None)  # HEADERS with END_STREAM, no DATA
ok(hc.problem_ok(r, 400, "frame:empty"), "POST without a body -> 400 frame:empty", r)
cc = conn()
sid = cc.start(None, content_length=0, end=False)
cc.end_stream(sid)        # an empty DATA frame with END_STREAM
r = cc.response(sid)
ok(hc.problem_ok(r, 400, "frame:empty"), "content-length: 0 and an empty DATA -> 400 frame:empty", r)

# ---- content-length that lies: a stream error, not a 400 -----------------------------
cc = conn()
body = valid()
sid = cc.start(None, content_length=len(body) + 10, end=False)
cc.send_body(sid, body, end=True)
r = cc.response(sid)
ok(r.reset == 1 and r.status is None,
   "content-length larger than the DATA sent -> RST_STREAM(PROTOCOL_ERROR)", r)

# ---- the connection still works ---------------------------------------------------------
cc = conn()
ok(not cc.closed and cc.goaway is None and cc.ping(),
   "the connection is still open after all of the above (PING answered)",
   "closed=%s goaway=%s" % (cc.closed, cc.goaway))
still_works("all of the above")
cc.close()

# ---- CONTINUATION flood: GOAWAY, and nothing else hurt -----------------------------------------
f = hc.connect("nimble-01")
sid = f.h2.get_next_available_stream_id()
block = f.header_block(f.headers_for(extra=[("x-pad", "q" * 600)]))
parts = [block[i:i + 20] for i in range(0, len(block), 20)]
raw = f.raw_frame(hc.FT_HEADERS, 0, sid, parts[0])
raw += b"".join(f.raw_frame(hc.FT_CONTINUATION, 0, sid, p) for p in parts[1:-1])
raw += f.raw_frame(hc.FT_CONTINUATION, hc.FL_END_HEADERS, sid, parts[-1])
ok(len(parts) > 20, "built a header block in %d frames (limit 8 CONTINUATION)" % len(parts))
f.send_raw(raw)
f.wait(lambda: f.goaway is not None or f.closed, 10)
ok(f.goaway is not None or f.closed, "CONTINUATION flood -> GOAWAY / connection closed",
   "goaway=%s closed=%s" % (f.goaway, f.closed))
if f.goaway is not None:
    ok(int(f.goaway.error_code) != 0, "the GOAWAY carries an error code (%s)" % f.goaway.error_code)
f.wait_closed(10)
ok(f.closed, "the flooding connection is closed")
f.close()
g = hc.connect("nimble-01")
r = g.post(valid())
ok(r.status == 202, "a new connection after the flood -> 202", r)
g.close()
print("# highest valid seq sent: %d" % seq[0])
EOF

check_eq "no malformed, oversized or refused frame was stored" \
    "$(sql "SELECT count(*) FROM frames WHERE seq < 100000")" 0
check "every stored frame belongs to nimble-01" \
    test "$(sql "SELECT count(*) FROM frames WHERE server_id <> $NIMBLE_ID")" = 0
check "the gateway logged an h2_error for the flood" grep -q '"event":"h2_error"' "$GW_LOG"

finish
