#!/usr/bin/env bash
# test_gw_h2conformance.sh - RFC 9113 (and RFC 7541) conformance probes in
# the spirit of h2spec, with hand-built frames (h2raw.py): connection
# preface, frame format and size, stream states and identifiers, every
# frame type's rules, flow control, CONTINUATION, HPACK errors, HTTP
# message rules (fields, pseudo-headers, content-length), concurrency.
#
# Each case runs on a fresh connection (after a SETTINGS exchange) and
# prints "ok - §<section> <what> [<what the gateway did>]".  Where the RFC
# allows more than one reaction (a stream error or a connection error) each
# is accepted and the line says which one happened.  Connection errors must
# be a GOAWAY with the right code followed by the close (RFC 9113 5.4.1 says
# SHOULD send GOAWAY; nghttp2 always does), except after an invalid preface
# (3.4: GOAWAY MAY be omitted).  After a stream error the same connection
# must still answer a request.  The "normal" requests are GET / (404) and
# POST /v1/stats with tests/data/nimble.json encoded by panelagent (202).
. "$(dirname "$0")/lib.sh"

make_pki
gw_config
gw_start
register_defaults
encode nimble
export PG_BODY=$T/nimble.msgpack

py_checks - <<'EOF'
import os
import time
import traceback

import h2client as hc
import h2raw as hr
from h2raw import (ACK, CANCEL, COMPRESSION_ERROR, DATA, ENHANCE_YOUR_CALM,
                   FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, GOAWAY, MAX_WINDOW, NO_ERROR, PING,
                   PROTOCOL_ERROR, REFUSED_STREAM, RST_STREAM, STREAM_CLOSED, Result)

ok = hc.Checks()
BODY = open(os.environ["PG_BODY"], "rb").read()
CASES = []
# builders of stream-error cases that ended in RST_STREAM on their own
# connection: replayed one after another on one shared connection at the end
STREAM_ERRORS = []


def case(sec, what, handshake=True, client_settings=()):
    def deco(fn):
        CASES.append((sec, what, fn, handshake, client_settings))
        return fn
    return deco


def conn_error(sec, what, codes):
    """A case whose builder(c) sends frames that are a connection error."""
    def deco(build):
        def run(c):
            build(c)
            return c.expect_goaway(codes)
        CASES.append((sec, "%s -> connection error %s" % (what, hr.codes_text(codes)), run, True,
                      ()))
        return build
    return deco


def stream_error(sec, what, codes, conn_ok=True):
    """A case whose builder(c) returns the stream id of a stream error.  A
    connection error with the same code is accepted when conn_ok (RFC 9113
    5.4.1).  After a RST_STREAM the connection must still serve GET /."""
    def deco(build):
        def run(c):
            sid = build(c)
            r = c.expect_stream_error(sid, codes, conn_error_ok=conn_ok)
            if r and r.kind == "rst":
                STREAM_ERRORS.append((sec, what, build, codes))
                f = c.expect_response(c.get(), status=404)
                if not f:
                    return Result(False, "rst", "%s, but then GET / failed: %s" % (r.detail,
                                                                                   f.detail))
                r.detail += "; GET / on the same connection -> 404"
            return r
        kind = "stream error" + (" (or connection error)" if conn_ok else "")
        CASES.append((sec, "%s -> %s %s" % (what, kind, hr.codes_text(codes)), run, True, ()))
        return build
    return deco


def ignored(sec, what):
    """A case whose builder(c) sends frames the gateway must ignore: a PING
    round trip follows with no RST_STREAM or GOAWAY in between, and GET /
    still works."""
    def deco(build):
        def run(c):
            mark = len(c.received)
            build(c)
            r = c.ping_roundtrip()
            bad = [f for f in c.received[mark:] if f.type in (RST_STREAM, GOAWAY)]
            if not r or bad:
                return Result(False, "error", "%s; %s" % (r.detail, c.account(mark)))
            g = c.expect_response(c.get(), status=404)
            if not g:
                return Result(False, "error", "then GET / failed: %s" % g.detail)
            return Result(True, "ignored", "ignored: PING answered, GET / -> 404")
        CASES.append((sec, "%s -> ignored" % what, run, True, ()))
        return build
    return deco


def fields(c, method="GET", path="/", extra=(), drop=(), content_type=None):
    f = [(":method", method), (":scheme", "https"), (":authority", c.authority),
         (":path", path)]
    f = [x for x in f if x[0] not in drop]
    if content_type:
        f.append(("content-type", content_type))
    return f + list(extra)


def send_get(c, f, sid=None, **kw):
    sid = c.new_sid() if sid is None else sid
    kw.setdefault("end_stream", True)
    c.send(hr.headers(sid, hr.encode_headers(f), **kw))
    return sid


def open_post(c, path="/v1/stats", extra=()):
    """An open stream: POST headers (content-type msgpack), no END_STREAM;
    the gateway waits for the body and does not answer yet."""
    return c.post_headers(path=path, extra=extra)


def block_of_len(c, n):
    """A valid GET / header block of exactly n bytes (a padding field)."""
    base = fields(c)
    k = n
    for _ in range(8):
        b = hr.encode_headers(base + [("x-pad", "a" * k)], huffman=False)
        if len(b) == n:
            return b
        k += n - len(b)
    raise ValueError("cannot build a %d-byte block" % n)


# ==== 3.4 connection preface ===================================================
@case("3.4", "valid preface: the gateway's first frame is SETTINGS and it ACKs ours",
      handshake=False)
def _(c):
    return c.handshake()


@case("3.4", "invalid connection preface -> connection closed (GOAWAY PROTOCOL_ERROR optional)",
      handshake=False)
def _(c):
    c.send(b"PRI * HTTP/1.1\r\n\r\nXX\r\n\r\n")
    return c.expect_goaway(PROTOCOL_ERROR, allow_close=True)


@case("3.4", "preface followed by PING instead of SETTINGS -> connection error PROTOCOL_ERROR "
      "(GOAWAY optional)", handshake=False)
def _(c):
    c.send(hr.PREFACE + hr.ping())
    return c.expect_goaway(PROTOCOL_ERROR, allow_close=True)


# ==== 4.1 frame format ===========================================================
@ignored("4.1", "frame of unknown type 0x20 on stream 0")
def _(c):
    c.send(hr.frame(0x20, 0, 0, b"unknown"))


@ignored("4.1", "PING with undefined flags 0xfe set")
def _(c):
    c.send(hr.ping(b"flags!!!", flags=0xFE))


@ignored("4.1", "PING with the reserved bit of the stream identifier set")
def _(c):
    c.send(hr.ping(b"reserved", reserved=True))


# ==== 4.2 frame size =============================================================
def body_of_len(n, seq=4242):
    """A valid frame of exactly n bytes: nimble.json plus an unknown
    top-level key (skipped by the gateway, PROTOCOL.md 5.8)."""
    d = hc.load_frame("nimble.json", seq=seq)
    k = 0
    for _ in range(8):
        d["x_pad"] = "p" * k
        b = hc.pack(d)
        if len(b) == n:
            return b
        k += n - len(b)
    raise ValueError("cannot build a %d-byte frame" % n)


@case("4.2", "POST /v1/stats in one DATA frame of exactly 16384 bytes -> 202")
def _(c):
    sid = open_post(c)
    c.send(hr.data(sid, body_of_len(hr.DEFAULT_MAX_FRAME_SIZE), end=True))
    return c.expect_response(sid, status=202)


@case("6.1", "POST /v1/stats in padded DATA frames (pad 0, 1 and 255 bytes) -> 202")
def _(c):
    sid = open_post(c)
    a, b = len(BODY) // 3, 2 * len(BODY) // 3
    c.send(hr.data(sid, BODY[:a], pad=0), hr.data(sid, BODY[a:b], pad=1),
           hr.data(sid, BODY[b:], end=True, pad=255))
    return c.expect_response(sid, status=202)


@stream_error("4.2", "DATA of 16385 bytes (> SETTINGS_MAX_FRAME_SIZE) on an open stream",
              FRAME_SIZE_ERROR)
def _(c):
    sid = open_post(c)
    c.send(hr.data(sid, b"\0" * 16385))
    return sid


@conn_error("4.2", "HEADERS of 16385 bytes (> SETTINGS_MAX_FRAME_SIZE)", FRAME_SIZE_ERROR)
def _(c):
    c.send(hr.headers(c.new_sid(), block_of_len(c, 16385), end_stream=True))


# ==== 4.3 / RFC 7541 header compression ============================================
def long_field_frames(c, n):
    """GET / with one x-pad field whose value is a literal of n octets (no
    Huffman coding), split into HEADERS + CONTINUATION frames of 16 KiB."""
    blk = hr.encode_headers(fields(c) + [("x-pad", "p" * n)], huffman=False)
    chunks = [blk[i:i + 16384] for i in range(0, len(blk), 16384)]
    sid = c.new_sid()
    out = [hr.headers(sid, chunks[0], end_stream=True, end_headers=len(chunks) == 1)]
    out += [hr.continuation(sid, x, end_headers=i == len(chunks) - 2)
            for i, x in enumerate(chunks[1:])]
    return sid, out


# PROTOCOL.md 2.2: a header list over SETTINGS_MAX_HEADER_LIST_SIZE is a 431 and
# the connection stays, as long as no single string literal is longer than
# 65 536 octets on the wire; nghttp2 cannot decode a longer one (NGHTTP2_HD_MAX_NV)
# and that is a COMPRESSION_ERROR of the connection, whatever the setting says.
@case("4.3", "one 65 536-octet header value (list > SETTINGS_MAX_HEADER_LIST_SIZE) -> 431, "
      "connection kept")
def _(c):
    sid, frames = long_field_frames(c, 65536)
    c.send(*frames)
    r = c.expect_response(sid, status=431)
    if not r:
        return r
    g = c.expect_response(c.get(), status=404)
    if not g:
        return Result(False, "error", "431, but then GET / failed: %s" % g.detail)
    r.detail += "; GET / on the same connection -> 404"
    return r


@conn_error("4.3", "one 65 537-octet header value (longer than nghttp2's HPACK string limit)",
            COMPRESSION_ERROR)
def _(c):
    c.send(*long_field_frames(c, 65537)[1])


def bad_block(c, tail):
    """GET / fields, then hand-made HPACK bytes."""
    return hr.encode_headers(fields(c)) + tail


@conn_error("4.3", "header block with an invalid fragment (string longer than the block)",
            COMPRESSION_ERROR)
def _(c):
    c.send(hr.headers(c.new_sid(), bad_block(c, b"\x00\x05ab"), end_stream=True))


@conn_error("RFC7541 2.3.3", "indexed field with index 70 (past both tables)", COMPRESSION_ERROR)
def _(c):
    c.send(hr.headers(c.new_sid(), bad_block(c, b"\xc6"), end_stream=True))


@conn_error("RFC7541 6.1", "indexed field with index 0", COMPRESSION_ERROR)
def _(c):
    c.send(hr.headers(c.new_sid(), bad_block(c, b"\x80"), end_stream=True))


@conn_error("RFC7541 2.3.3", "literal with a name index past both tables", COMPRESSION_ERROR)
def _(c):
    c.send(hr.headers(c.new_sid(), bad_block(c, b"\x7f\x07\x01x"), end_stream=True))


@conn_error("RFC7541 4.2", "dynamic table size update to 4097 (> SETTINGS_HEADER_TABLE_SIZE)",
            COMPRESSION_ERROR)
def _(c):
    c.send(hr.headers(c.new_sid(), b"\x3f\xe2\x1f" + hr.encode_headers(fields(c)),
                      end_stream=True))


@conn_error("RFC7541 4.2", "dynamic table size update after a field", COMPRESSION_ERROR)
def _(c):
    c.send(hr.headers(c.new_sid(), bad_block(c, b"\x20"), end_stream=True))


@conn_error("RFC7541 5.2", "Huffman string containing the EOS symbol", COMPRESSION_ERROR)
def _(c):
    c.send(hr.headers(c.new_sid(), bad_block(c, b"\x00\x84\xff\xff\xff\xff\x01x"),
                      end_stream=True))


@conn_error("RFC7541 5.2", "Huffman padding longer than 7 bits", COMPRESSION_ERROR)
def _(c):
    # 'a' (00011) then 11 bits of 1s
    c.send(hr.headers(c.new_sid(), bad_block(c, b"\x00\x82\x1f\xff\x01x"), end_stream=True))


@conn_error("RFC7541 5.2", "Huffman padding of zeros (not the EOS prefix)", COMPRESSION_ERROR)
def _(c):
    # 'a' (00011) then 000
    c.send(hr.headers(c.new_sid(), bad_block(c, b"\x00\x81\x18\x01x"), end_stream=True))


@case("RFC7541 6", "every HPACK representation (two size updates, static and dynamic indices, "
      "literals with/without/never indexing, Huffman and raw) -> 404 twice, the second request "
      "made of dynamic-table indices")
def _(c):
    def s(t):
        return bytes((len(t),)) + t
    auth = c.authority.encode()
    blk = (b"\x20\x3f\xe1\x1f"                 # size update 0, then 4096
           b"\x82\x87\x84"                       # :method GET, :scheme https, :path /
           b"\x41" + s(auth) +                    # :authority, incremental, indexed name
           b"\x40" + s(b"x-new") + s(b"one") +     # incremental, new name
           b"\x0f\x2b" + s(b"h2raw") +             # without indexing, user-agent (58)
           b"\x00" + s(b"x-plain") + s(b"two") +   # without indexing, new name
           b"\x10" + s(b"x-secret") + s(b"3") +    # never indexed, new name
           b"\xbe")                                # dynamic 62: x-new: one
    huff = hr.encode_headers([("x-huff", "www.example.com")], huffman=True)
    sid = c.new_sid()
    c.send(hr.headers(sid, blk + huff, end_stream=True))
    r = c.expect_response(sid, status=404)
    if not r:
        return r
    sid = c.new_sid()
    c.send(hr.headers(sid, b"\x82\x87\x84\xbf\xbe", end_stream=True))  # 63 :authority, 62 x-new
    return c.expect_response(sid, status=404)


# ==== 5.1 stream states ===========================================================
@conn_error("5.1", "idle: DATA on stream 1", PROTOCOL_ERROR)
def _(c):
    c.send(hr.data(1, b"test", end=True))


@conn_error("5.1", "idle: RST_STREAM on stream 1", PROTOCOL_ERROR)
def _(c):
    c.send(hr.rst_stream(1, CANCEL))


@conn_error("5.1", "idle: WINDOW_UPDATE on stream 1", PROTOCOL_ERROR)
def _(c):
    c.send(hr.window_update(1, 100))


@conn_error("5.1", "idle: CONTINUATION on stream 1 (no HEADERS before)", PROTOCOL_ERROR)
def _(c):
    c.send(hr.continuation(1, hr.encode_headers(fields(c))))


@ignored("5.1", "idle: PRIORITY on stream 3")
def _(c):
    c.send(hr.priority(3, 0, 16))


def half_closed_remote(c):
    """A stream the client has ended (valid POST) whose 202 is pending."""
    sid = c.post_headers()
    frames = c.body_frames(sid, BODY)
    return sid, frames


@stream_error("5.1", "half-closed (remote): DATA after END_STREAM", STREAM_CLOSED)
def _(c):
    sid, frames = half_closed_remote(c)
    c.send(*frames, hr.data(sid, b"test", end=True))
    return sid


@stream_error("5.1", "half-closed (remote): HEADERS after END_STREAM", STREAM_CLOSED)
def _(c):
    sid, frames = half_closed_remote(c)
    c.send(*frames, hr.headers(sid, hr.encode_headers([("x-late", "1")]), end_stream=True))
    return sid


@stream_error("5.1", "half-closed (remote): CONTINUATION after END_STREAM",
              (STREAM_CLOSED, PROTOCOL_ERROR))
def _(c):
    sid, frames = half_closed_remote(c)
    c.send(*frames, hr.continuation(sid, hr.encode_headers([("x-late", "1")])))
    return sid


@case("5.1", "half-closed (remote): WINDOW_UPDATE, PRIORITY and RST_STREAM are allowed")
def _(c):
    sid = c.get()
    mark = len(c.received)
    c.send(hr.window_update(sid, 1000), hr.priority(sid, 0, 32))
    r = c.expect_response(sid, status=404)
    c.send(hr.rst_stream(sid, CANCEL))
    p = c.ping_roundtrip()
    bad = [f for f in c.received[mark:] if f.type == GOAWAY]
    if r and p and not bad:
        return Result(True, "ok", "404, no error")
    return Result(False, "error", "%s / %s / %s" % (r.detail, p.detail, c.account(mark)))


@ignored("5.1", "closed: PRIORITY on a stream whose exchange has ended")
def _(c):
    sid = c.get()
    c.expect_response(sid)
    c.send(hr.priority(sid, 0, 100))


@stream_error("5.1", "closed: DATA after the client's RST_STREAM", STREAM_CLOSED)
def _(c):
    sid = c.post_headers(path="/")
    c.send(hr.rst_stream(sid, CANCEL), hr.data(sid, b"test", end=True))
    return sid


@stream_error("5.1", "closed: HEADERS after the client's RST_STREAM", STREAM_CLOSED)
def _(c):
    sid = c.post_headers(path="/")
    c.send(hr.rst_stream(sid, CANCEL),
           hr.headers(sid, hr.encode_headers(fields(c)), end_stream=True))
    return sid


@conn_error("5.1", "closed: DATA on a stream whose exchange has ended", STREAM_CLOSED)
def _(c):
    sid = c.get()
    c.expect_response(sid)
    c.send(hr.data(sid, b"test", end=True))


@conn_error("5.1", "closed: HEADERS on a stream whose exchange has ended", STREAM_CLOSED)
def _(c):
    sid = c.get()
    c.expect_response(sid)
    send_get(c, fields(c), sid=sid)


# ==== 5.1.1 stream identifiers =======================================================
@conn_error("5.1.1", "HEADERS on even-numbered stream 2", PROTOCOL_ERROR)
def _(c):
    send_get(c, fields(c), sid=2)


@conn_error("5.1.1", "HEADERS on stream 3 after stream 5 (decreasing id)", PROTOCOL_ERROR)
def _(c):
    send_get(c, fields(c), sid=5)
    send_get(c, fields(c), sid=3)


# ==== 5.1.2 stream concurrency ===========================================================
@case("5.1.2", "one stream over SETTINGS_MAX_CONCURRENT_STREAMS -> stream error REFUSED_STREAM "
      "or PROTOCOL_ERROR (then the connection stays usable), or connection error PROTOCOL_ERROR; "
      "no stream within the limit is refused")
def _(c):
    limit = c.server_settings.get(hr.SETTINGS_MAX_CONCURRENT_STREAMS)
    if not limit or limit > 1000:
        return Result(False, "settings", "no usable SETTINGS_MAX_CONCURRENT_STREAMS: %r" % limit)
    block = hr.encode_headers(fields(c, "POST", "/v1/stats", content_type="application/msgpack"))
    sids = [c.new_sid() for _ in range(limit + 1)]
    c.send(*[hr.headers(s, block) for s in sids])
    r = c.expect_stream_error(sids[-1], (REFUSED_STREAM, PROTOCOL_ERROR))
    early = [f for f in c.received if f.type == RST_STREAM and f.sid != sids[-1]]
    if early:
        return Result(False, "rst", "streams within the limit were reset: %s" % c.account())
    if r and r.kind == "goaway" and r.frame.last_sid != sids[-2]:
        return Result(False, "goaway", "%s: last stream id %d, want %d" % (
            r.detail, r.frame.last_sid, sids[-2]))
    if not r or r.kind != "rst":
        return r
    c.send(hr.rst_stream(sids[0], CANCEL))
    g = c.expect_response(c.get(), status=404)
    if not g:
        return Result(False, "rst", "%s, but after closing one stream GET / failed: %s" % (
            r.detail, g.detail))
    return Result(True, "rst", "stream %d of %d: %s; after one RST_STREAM from us GET / -> 404"
                  % (limit + 1, limit + 1, r.detail))


# ==== 5.3.1 stream dependencies =============================================================
@stream_error("5.3.1", "HEADERS depending on its own stream", PROTOCOL_ERROR)
def _(c):
    sid = c.new_sid()
    return send_get(c, fields(c), sid=sid, priority=(sid, 16, False))


@stream_error("5.3.1", "PRIORITY making an idle stream depend on itself", PROTOCOL_ERROR)
def _(c):
    sid = c.new_sid()
    c.send(hr.priority(sid, sid, 16))
    return sid


# ==== 5.5 extensions =======================================================================
@conn_error("5.5", "unknown frame type inside a header block (HEADERS without END_HEADERS)",
            PROTOCOL_ERROR)
def _(c):
    sid = c.new_sid()
    blk = hr.encode_headers(fields(c))
    c.send(hr.headers(sid, blk[:5], end_stream=True, end_headers=False),
           hr.frame(0x20, 0, sid, b"unknown"), hr.continuation(sid, blk[5:]))


# ==== 6.1 DATA ===============================================================================
@conn_error("6.1", "DATA on stream 0", PROTOCOL_ERROR)
def _(c):
    c.send(hr.data(0, b"test"))


@conn_error("6.1", "DATA whose pad length equals the payload length", PROTOCOL_ERROR)
def _(c):
    sid = open_post(c)
    c.send(hr.data(sid, b"test", pad=(5, 0)))   # payload 1 + 4 bytes, pad length 5


@conn_error("6.1", "DATA whose pad length exceeds the payload", PROTOCOL_ERROR)
def _(c):
    sid = open_post(c)
    c.send(hr.data(sid, b"", end=True, pad=(200, 10)))


# ==== 6.2 HEADERS =============================================================================
@case("6.2", "HEADERS with padding and a priority block -> 404")
def _(c):
    sid = c.new_sid()
    send_get(c, fields(c), sid=sid, pad=17, priority=(0, 200, True))
    return c.expect_response(sid, status=404)


@conn_error("6.2", "HEADERS on stream 0", PROTOCOL_ERROR)
def _(c):
    send_get(c, fields(c), sid=0)


@conn_error("6.2", "HEADERS whose pad length exceeds the payload", PROTOCOL_ERROR)
def _(c):
    blk = hr.encode_headers(fields(c))
    c.send(hr.headers(c.new_sid(), blk, end_stream=True, pad=(len(blk) + 1, 0)))


@conn_error("6.2", "HEADERS without END_HEADERS followed by DATA on the same stream",
            PROTOCOL_ERROR)
def _(c):
    sid = c.new_sid()
    c.send(hr.headers(sid, hr.encode_headers(fields(c, "POST", "/v1/stats",
                                                    content_type="application/msgpack")),
                      end_headers=False), hr.data(sid, b"test", end=True))


@conn_error("6.2", "HEADERS without END_HEADERS followed by PRIORITY", PROTOCOL_ERROR)
def _(c):
    sid = c.new_sid()
    c.send(hr.headers(sid, hr.encode_headers(fields(c)), end_stream=True, end_headers=False),
           hr.priority(sid, 0, 16))


@conn_error("6.2", "HEADERS without END_HEADERS followed by HEADERS on another stream",
            PROTOCOL_ERROR)
def _(c):
    a, b = c.new_sid(), c.new_sid()
    blk = hr.encode_headers(fields(c))
    c.send(hr.headers(a, blk, end_stream=True, end_headers=False),
           hr.headers(b, blk, end_stream=True))


# ==== 6.3 PRIORITY ==============================================================================
@conn_error("6.3", "PRIORITY on stream 0", PROTOCOL_ERROR)
def _(c):
    c.send(hr.priority(0, 1, 16))


@stream_error("6.3", "PRIORITY of length 4 on an open stream", FRAME_SIZE_ERROR)
def _(c):
    sid = open_post(c)
    c.send(hr.priority(sid, 0, 16, length=4))
    return sid


# ==== 6.4 RST_STREAM ==============================================================================
@conn_error("6.4", "RST_STREAM on stream 0", PROTOCOL_ERROR)
def _(c):
    c.send(hr.rst_stream(0, CANCEL))


@conn_error("6.4", "RST_STREAM on idle stream 5", PROTOCOL_ERROR)
def _(c):
    c.send(hr.rst_stream(5, CANCEL))


@conn_error("6.4", "RST_STREAM of length 3 on an open stream", FRAME_SIZE_ERROR)
def _(c):
    sid = open_post(c)
    c.send(hr.rst_stream(sid, CANCEL, length=3))


@conn_error("6.4", "RST_STREAM of length 5 on an open stream", FRAME_SIZE_ERROR)
def _(c):
    sid = open_post(c)
    c.send(hr.rst_stream(sid, CANCEL, length=5))


# ==== 6.5 SETTINGS ================================================================================
@conn_error("6.5", "SETTINGS with ACK and a 6-byte payload", FRAME_SIZE_ERROR)
def _(c):
    c.send(hr.settings(raw=b"\x00\x01\x00\x00\x10\x00", ack=True))


@conn_error("6.5", "SETTINGS on stream 1", PROTOCOL_ERROR)
def _(c):
    c.send(hr.settings([(hr.SETTINGS_INITIAL_WINDOW_SIZE, 100)], sid=1))


@conn_error("6.5", "SETTINGS of length 3 (not a multiple of 6)", FRAME_SIZE_ERROR)
def _(c):
    c.send(hr.settings(raw=b"\x00\x02\x00"))


@conn_error("6.5", "SETTINGS of length 8 (not a multiple of 6)", FRAME_SIZE_ERROR)
def _(c):
    c.send(hr.settings(raw=b"\x00\x04\x00\x00\xff\xff\x00\x00"))


@conn_error("6.5.2", "SETTINGS_ENABLE_PUSH = 2", PROTOCOL_ERROR)
def _(c):
    c.send(hr.settings([(hr.SETTINGS_ENABLE_PUSH, 2)]))


@conn_error("6.5.2", "SETTINGS_INITIAL_WINDOW_SIZE = 2^31", FLOW_CONTROL_ERROR)
def _(c):
    c.send(hr.settings([(hr.SETTINGS_INITIAL_WINDOW_SIZE, 2 ** 31)]))


@conn_error("6.5.2", "SETTINGS_MAX_FRAME_SIZE = 16383 (below the minimum)", PROTOCOL_ERROR)
def _(c):
    c.send(hr.settings([(hr.SETTINGS_MAX_FRAME_SIZE, 16383)]))


@conn_error("6.5.2", "SETTINGS_MAX_FRAME_SIZE = 2^24 (above the maximum)", PROTOCOL_ERROR)
def _(c):
    c.send(hr.settings([(hr.SETTINGS_MAX_FRAME_SIZE, 2 ** 24)]))


@case("6.5.2", "unknown setting 0xff42 is ignored: SETTINGS ACK, then GET / -> 404")
def _(c):
    c.send(hr.settings([(0xFF42, 7)]))
    r = c.expect_settings_ack()
    return c.expect_response(c.get(), status=404) if r else r


@case("6.5.3", "SETTINGS with several values (INITIAL_WINDOW_SIZE twice, MAX_FRAME_SIZE) "
      "-> SETTINGS ACK")
def _(c):
    c.send(hr.settings([(hr.SETTINGS_INITIAL_WINDOW_SIZE, 100),
                        (hr.SETTINGS_INITIAL_WINDOW_SIZE, 65535),
                        (hr.SETTINGS_MAX_FRAME_SIZE, 32768)]))
    r = c.expect_settings_ack()
    return c.expect_response(c.get(), status=404) if r else r


# ==== 6.7 PING ======================================================================================
@case("6.7", "PING -> PING with ACK and the same 8 bytes")
def _(c):
    c.send(hr.ping(b"\x01\x02\x03\x04\x05\x06\x07\x08"))
    return c.expect_ping_ack(b"\x01\x02\x03\x04\x05\x06\x07\x08")


@case("6.7", "PING with ACK set gets no answer")
def _(c):
    c.send(hr.ping(b"unasked!", ack=True), hr.ping(b"asked!!!"))
    r = c.expect_ping_ack(b"asked!!!")
    if not r and r.frame is not None and r.frame.payload == b"unasked!":
        return Result(False, "ping_ack", "the gateway acknowledged a PING ACK")
    return r


@conn_error("6.7", "PING on stream 1", PROTOCOL_ERROR)
def _(c):
    c.send(hr.ping(b"stream!!", sid=1))


@conn_error("6.7", "PING of length 6", FRAME_SIZE_ERROR)
def _(c):
    c.send(hr.ping(b"short!"))


# ==== 6.8 GOAWAY ======================================================================================
@conn_error("6.8", "GOAWAY on stream 1", PROTOCOL_ERROR)
def _(c):
    c.send(hr.goaway(0, NO_ERROR, sid=1))


# ==== 6.9 WINDOW_UPDATE ===============================================================================
@conn_error("6.9", "WINDOW_UPDATE with increment 0 on the connection", PROTOCOL_ERROR)
def _(c):
    c.send(hr.window_update(0, 0))


@stream_error("6.9", "WINDOW_UPDATE with increment 0 on an open stream", PROTOCOL_ERROR)
def _(c):
    sid = open_post(c)
    c.send(hr.window_update(sid, 0))
    return sid


@conn_error("6.9", "WINDOW_UPDATE of length 3", FRAME_SIZE_ERROR)
def _(c):
    c.send(hr.window_update(0, 100, length=3))


@conn_error("6.9.1", "WINDOW_UPDATE taking the connection window past 2^31-1", FLOW_CONTROL_ERROR)
def _(c):
    c.send(hr.window_update(0, MAX_WINDOW), hr.window_update(0, MAX_WINDOW))


@stream_error("6.9.1", "WINDOW_UPDATE taking a stream window past 2^31-1", FLOW_CONTROL_ERROR)
def _(c):
    sid = open_post(c)
    c.send(hr.window_update(sid, MAX_WINDOW), hr.window_update(sid, MAX_WINDOW))
    return sid


@conn_error("6.9.2", "SETTINGS_INITIAL_WINDOW_SIZE change pushing an open stream's window "
            "past 2^31-1", FLOW_CONTROL_ERROR)
def _(c):
    sid = open_post(c)
    c.send(hr.window_update(sid, MAX_WINDOW - 65535),
           hr.settings([(hr.SETTINGS_INITIAL_WINDOW_SIZE, 65536)]))


def data_lens(c, sid):
    return list(c.stream(sid).data_frames)


@case("6.9.1", "client SETTINGS_INITIAL_WINDOW_SIZE=1: the response DATA comes 1 byte at a "
      "time, each after a WINDOW_UPDATE", client_settings=[(hr.SETTINGS_INITIAL_WINDOW_SIZE, 1)])
def _(c):
    sid = c.get()
    st = c.stream(sid)
    c.wait_for(lambda f: f.type == DATA and f.sid == sid)
    if data_lens(c, sid) != [1]:
        return Result(False, "data", "first DATA frames %s, want [1]: %s" % (data_lens(c, sid),
                                                                            c.account()))
    p = c.ping_roundtrip()   # nothing more may come meanwhile
    if not p or data_lens(c, sid) != [1]:
        return Result(False, "data", "more DATA without WINDOW_UPDATE: %s" % c.account())
    for i in range(2):
        c.send(hr.window_update(sid, 1))
        c.wait_for(lambda f: f.type == DATA and f.sid == sid)
    c.ping_roundtrip()
    if data_lens(c, sid) != [1, 1, 1]:
        return Result(False, "data", "after 2 WINDOW_UPDATE(1): DATA %s, want [1, 1, 1]" %
                      data_lens(c, sid))
    c.send(hr.window_update(sid, 100000))
    r = c.expect_response(sid, status=404)
    if not r:
        return r
    hc_ok = st.body.startswith(b"{") and b"not_found" in bytes(st.body)
    return Result(hc_ok, "data", "DATA %d bytes as 1,1,1 then %s; body intact=%s" % (
        len(st.body), data_lens(c, sid)[3:], hc_ok))


@case("6.9.2", "SETTINGS_INITIAL_WINDOW_SIZE raised after the request: the window of the open "
      "stream grows by the difference", client_settings=[(hr.SETTINGS_INITIAL_WINDOW_SIZE, 0)])
def _(c):
    sid = c.get()
    p = c.ping_roundtrip()
    if not p or data_lens(c, sid):
        return Result(False, "data", "DATA with a zero window: %s" % c.account())
    c.send(hr.settings([(hr.SETTINGS_INITIAL_WINDOW_SIZE, 1)]))
    c.wait_for(lambda f: f.type == DATA and f.sid == sid)
    c.ping_roundtrip()
    if data_lens(c, sid) != [1]:
        return Result(False, "data", "after INITIAL_WINDOW_SIZE 0 -> 1: DATA %s, want [1]" %
                      data_lens(c, sid))
    c.send(hr.settings([(hr.SETTINGS_INITIAL_WINDOW_SIZE, 65535)]))
    r = c.expect_response(sid, status=404)
    return r


@case("6.9.2", "SETTINGS_INITIAL_WINDOW_SIZE lowered below what was sent: the gateway tracks "
      "the negative window", client_settings=[(hr.SETTINGS_INITIAL_WINDOW_SIZE, 3)])
def _(c):
    sid = c.get()
    c.wait_for(lambda f: f.type == DATA and f.sid == sid)
    c.ping_roundtrip()
    if sum(data_lens(c, sid)) != 3:
        return Result(False, "data", "with a window of 3: DATA %s" % data_lens(c, sid))
    c.send(hr.settings([(hr.SETTINGS_INITIAL_WINDOW_SIZE, 1)]))  # window 1 - 3 = -2
    c.expect_settings_ack()
    c.send(hr.window_update(sid, 3))                             # -> 1
    c.wait_for(lambda f: f.type == DATA and f.sid == sid, 2)
    c.ping_roundtrip()
    got = data_lens(c, sid)[1:]
    if got != [1]:
        return Result(False, "data", "window -2 then +3: DATA %s, want [1]" % got)
    c.send(hr.window_update(sid, 100000))
    return c.expect_response(sid, status=404)


# ==== 6.10 CONTINUATION ===============================================================================
@case("6.10", "HEADERS + 2 CONTINUATION frames -> 404")
def _(c):
    sid = c.new_sid()
    blk = hr.encode_headers(fields(c, extra=[("x-a", "a" * 40), ("x-b", "b" * 40)]))
    c.send(hr.headers(sid, blk[:10], end_stream=True, end_headers=False),
           hr.continuation(sid, blk[10:30], end_headers=False),
           hr.continuation(sid, blk[30:]))
    return c.expect_response(sid, status=404)


@conn_error("6.10", "CONTINUATION after a HEADERS frame that had END_HEADERS", PROTOCOL_ERROR)
def _(c):
    sid = c.new_sid()
    c.send(hr.headers(sid, hr.encode_headers(fields(c, "POST", "/v1/stats",
                                                    content_type="application/msgpack"))),
           hr.continuation(sid, hr.encode_headers([("x-more", "1")])))


@conn_error("6.10", "CONTINUATION followed by a frame other than CONTINUATION", PROTOCOL_ERROR)
def _(c):
    sid = c.new_sid()
    blk = hr.encode_headers(fields(c))
    c.send(hr.headers(sid, blk[:5], end_stream=True, end_headers=False),
           hr.continuation(sid, blk[5:10], end_headers=False), hr.ping())


@conn_error("6.10", "CONTINUATION on stream 0", PROTOCOL_ERROR)
def _(c):
    sid = c.new_sid()
    blk = hr.encode_headers(fields(c))
    c.send(hr.headers(sid, blk[:5], end_stream=True, end_headers=False),
           hr.continuation(0, blk[5:]))


@conn_error("6.10", "CONTINUATION on another stream than its HEADERS", PROTOCOL_ERROR)
def _(c):
    sid = c.new_sid()
    blk = hr.encode_headers(fields(c))
    c.send(hr.headers(sid, blk[:5], end_stream=True, end_headers=False),
           hr.continuation(sid + 2, blk[5:]))


# Issue 11: OPERATIONS.md section 7 said only the extra stream is reset.
# nghttp2 treats a stream over the acknowledged SETTINGS_MAX_CONCURRENT_STREAMS
# as a connection error (GOAWAY PROTOCOL_ERROR); the docs now say so, and
# this case holds the code to them.
@conn_error("5.1.2", "a 101st open stream (over the acknowledged max_concurrent_streams = 100)",
            PROTOCOL_ERROR)
def _(c):
    for _ in range(101):
        open_post(c)


# Issue 11: these closed the connection without a GOAWAY (RFC 9113 5.4.1
# asks for one before a connection error closes it).
@conn_error("6.10", "HEADERS + 9 CONTINUATION frames (over max_continuations = 8)",
            ENHANCE_YOUR_CALM)
def _(c):
    sid = c.new_sid()
    blk = hr.encode_headers(fields(c, extra=[("x-%d" % i, "v" * 20) for i in range(10)]))
    step = len(blk) // 10
    frames = [hr.headers(sid, blk[:step], end_stream=True, end_headers=False)]
    for i in range(1, 10):
        last = i == 9
        frames.append(hr.continuation(sid, blk[i * step:] if last else blk[i * step:(i + 1) * step],
                                      end_headers=last))
    c.send(*frames)


@conn_error("5.4.1", "3000 SETTINGS frames in one burst (a SETTINGS flood)", ENHANCE_YOUR_CALM)
def _(c):
    c.send(*[hr.settings([(0x4, 65535)]) for _ in range(3000)])


@conn_error("5.4.1", "3000 PING frames in one burst (a PING flood)", ENHANCE_YOUR_CALM)
def _(c):
    c.send(*[hr.ping(b"%08d" % i) for i in range(3000)])


# ==== 7 error codes =====================================================================================
@ignored("7", "RST_STREAM with unknown error code 0xff on an open stream")
def _(c):
    c.send(hr.rst_stream(open_post(c), 0xFF))


@case("7", "GOAWAY with unknown error code 0xff: no connection error in return")
def _(c):
    mark = len(c.received)
    c.send(hr.goaway(0, 0xFF), hr.ping(b"aftergoa"))
    c.wait_for(lambda f: f.type == GOAWAY or (f.type == PING and f.flags & ACK), 3)
    bad = [f for f in c.received[mark:] if f.type == GOAWAY and f.error_code != NO_ERROR]
    if bad:
        return Result(False, "goaway", c.account(mark))
    return Result(True, "ok", "PING answered" if c.ping_acks else
                  "connection closed gracefully (%s)" % c.account(mark))


# ==== 8.1 HTTP message framing ============================================================================
@stream_error("8.1", "a second HEADERS (trailers) without END_STREAM", PROTOCOL_ERROR)
def _(c):
    sid = open_post(c)
    c.send(hr.data(sid, BODY[:100]), hr.headers(sid, hr.encode_headers([("x-test", "ok")])))
    return sid


@case("8.1", "POST /v1/stats with trailers (HEADERS with END_STREAM after DATA) -> 202")
def _(c):
    sid = open_post(c)
    c.send(*c.body_frames(sid, BODY, end=False),
           hr.headers(sid, hr.encode_headers([("x-checksum", "none")]), end_stream=True))
    return c.expect_response(sid, status=202)


@stream_error("8.1", "pseudo-header field in trailers", PROTOCOL_ERROR)
def _(c):
    sid = open_post(c)
    c.send(hr.data(sid, BODY[:100]),
           hr.headers(sid, hr.encode_headers([(":path", "/v1/stats")]), end_stream=True))
    return sid


@stream_error("8.1.1", "content-length 462 bytes more than the body", PROTOCOL_ERROR)
def _(c):
    sid = c.post_headers(extra=[("content-length", str(len(BODY) + 462))])
    c.send(*c.body_frames(sid, BODY))
    return sid


@stream_error("8.1.1", "content-length 10 with 11 body bytes", PROTOCOL_ERROR)
def _(c):
    sid = c.post_headers(extra=[("content-length", "10")])
    c.send(hr.data(sid, b"0123456789a", end=True))
    return sid


@stream_error("8.1.1", "content-length 4 with DATA of 2 + 3 bytes", PROTOCOL_ERROR)
def _(c):
    sid = c.post_headers(extra=[("content-length", "4")])
    c.send(hr.data(sid, b"ab"), hr.data(sid, b"cde", end=True))
    return sid


@stream_error("8.1.1", "content-length 5 and HEADERS with END_STREAM (no DATA)", PROTOCOL_ERROR)
def _(c):
    return c.post_headers(extra=[("content-length", "5")], end_stream=True)


@stream_error("8.1.1", "content-length that is not a number (12a)", PROTOCOL_ERROR)
def _(c):
    sid = c.post_headers(extra=[("content-length", "12a")])
    c.send(hr.data(sid, b"0123456789ab", end=True))
    return sid


@stream_error("8.1.1", "two different content-length fields", PROTOCOL_ERROR)
def _(c):
    sid = c.post_headers(extra=[("content-length", "4"), ("content-length", "5")])
    c.send(hr.data(sid, b"abcd", end=True))
    return sid


@case("8.1", "HEAD / -> 404 with no content (END_STREAM on HEADERS, no DATA)")
def _(c):
    sid = send_get(c, fields(c, "HEAD"))
    r = c.expect_response(sid, status=404)
    if r and (r.stream.body or r.stream.data_frames):
        return Result(False, "response", "HEAD answered with %d body bytes" % len(r.stream.body))
    return r


# ==== 8.2 HTTP fields ================================================================================
@stream_error("8.2.1", "uppercase field name (X-Upper)", PROTOCOL_ERROR)
def _(c):
    return send_get(c, fields(c, extra=[("X-Upper", "1")]))


for _name, _value in [("x-bad", "a\r\nx-injected: 1"), ("x-bad", "a\nb"), ("x-bad", "a\0b"),
                      ("x-bad", " leading-space"), ("x-bad", "trailing-tab\t"),
                      ("x y", "space in name"), ("x:y", "colon in name"), ("", "empty name")]:
    def _mk(n, v):
        @stream_error("8.2.1", "invalid field %r: %r (implementations SHOULD validate; a "
                      "message that fails MUST be malformed)" % (n, v), PROTOCOL_ERROR)
        def _(c):
            return send_get(c, fields(c, extra=[(n, v)]))
    _mk(_name, _value)

for _name, _value in [("connection", "keep-alive"), ("keep-alive", "timeout=5"),
                      ("proxy-connection", "keep-alive"), ("transfer-encoding", "chunked"),
                      ("upgrade", "h2c")]:
    def _mk(n, v):
        @stream_error("8.2.2", "connection-specific field %s: %s" % (n, v), PROTOCOL_ERROR)
        def _(c):
            return send_get(c, fields(c, extra=[(n, v)]))
    _mk(_name, _value)


@stream_error("8.2.2", "te: gzip (anything but trailers)", PROTOCOL_ERROR)
def _(c):
    return send_get(c, fields(c, extra=[("te", "gzip")]))


@case("8.2.2", "te: trailers is allowed -> 404")
def _(c):
    return c.expect_response(send_get(c, fields(c, extra=[("te", "trailers")])), status=404)


# ==== 8.3 pseudo-header fields ==========================================================================
@stream_error("8.3", "unknown pseudo-header :foo", PROTOCOL_ERROR)
def _(c):
    f = fields(c)
    return send_get(c, f[:4] + [(":foo", "bar")] + f[4:])


@stream_error("8.3", "response pseudo-header :status in a request", PROTOCOL_ERROR)
def _(c):
    f = fields(c)
    return send_get(c, f[:4] + [(":status", "200")] + f[4:])


@stream_error("8.3", "pseudo-header after a regular field", PROTOCOL_ERROR)
def _(c):
    f = fields(c, drop=(":authority",), extra=[("user-agent", "h2raw")])
    return send_get(c, f + [(":authority", c.authority)])


for _p in (":method", ":scheme", ":path"):
    def _mk(p):
        @stream_error("8.3.1", "request without %s" % p, PROTOCOL_ERROR)
        def _(c):
            return send_get(c, fields(c, drop=(p,)))
    _mk(_p)

for _p, _v in ((":method", "GET"), (":scheme", "https"), (":path", "/"),
               (":authority", "localhost")):
    def _mk(p, v):
        @stream_error("8.3.1", "request with %s twice" % p, PROTOCOL_ERROR)
        def _(c):
            f = fields(c)
            return send_get(c, f[:4] + [(p, v)] + f[4:])
    _mk(_p, _v)


@stream_error("8.3.1", "empty :path", PROTOCOL_ERROR)
def _(c):
    return send_get(c, [(k, "" if k == ":path" else v) for k, v in fields(c)])


# ==== 8.4 server push ======================================================================================
@conn_error("8.4", "PUSH_PROMISE from the client", PROTOCOL_ERROR)
def _(c):
    sid = open_post(c)
    c.send(hr.push_promise(sid, 2, hr.encode_headers(fields(c))))


# ==== run ==================================================================================================
def run_case(sec, what, fn, handshake, client_settings):
    label = "§%s %s" % (sec, what)
    c = None
    try:
        c = hr.RawConn()
        if handshake:
            h = c.handshake(client_settings)
            if not h:
                ok(False, label, "handshake: %s" % h.detail)
                return
        mark_sent = len(c.sent)
        r = fn(c)
        if r:
            ok(True, "%s [%s]" % (label, r.detail))
        else:
            ok(False, label, "%s; sent: %s" % (r.detail, " | ".join(c.sent[mark_sent:])[:1500]))
    except Exception as e:  # noqa: BLE001 - a crashed case is one failure, the rest go on
        ok(False, label, "exception %r: %s" % (e, traceback.format_exc().splitlines()[-3:]))
    finally:
        if c is not None:
            c.close()


t0 = time.monotonic()
for args in CASES:
    run_case(*args)

# all the stream errors, one after another, on one connection that then still
# takes a valid frame
c = hr.connect()
failed = []
for sec, what, build, codes in STREAM_ERRORS:
    sid = build(c)
    r = c.expect_stream_error(sid, codes, conn_error_ok=False)
    if not r:
        failed.append("§%s %s: %s" % (sec, what, r.detail))
        break
r = c.expect_response(c.post(BODY), status=202)
ok(not failed and r, "§5.4.2 after %d stream errors on one connection it still takes a valid "
   "POST /v1/stats (202)" % len(STREAM_ERRORS), "; ".join(failed) or r.detail)
c.close()
ok.note("%d cases in %.1f s" % (len(CASES), time.monotonic() - t0))
EOF

check "gateway still running after the conformance cases" alive "$GW_PID"
finish
