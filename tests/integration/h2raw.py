#!/usr/bin/python3
"""h2raw.py - a raw HTTP/2 frame client over mutual TLS, for conformance
probes of panelgate in the spirit of h2spec (RFC 9113, RFC 7541).

python-h2 refuses to produce invalid frames; this client writes whatever
bytes it is given.  It builds frames by hand (any type, flags, stream id,
length, padding), encodes header blocks with the `hpack` module (never
indexing, so our encoder state cannot drift from the gateway's decoder even
when the gateway drops a block), reads and parses the gateway's frames, and
offers h2spec-like expectations that never wait longer than a timeout:

    import h2raw as hr
    c = hr.RawConn()                       # TLS + ALPN h2, PG_PKI/nimble-01
    c.handshake()                          # preface + SETTINGS, both ACKed
    c.send(hr.data(1, b"x"))               # DATA on an idle stream
    r = c.expect_goaway(hr.PROTOCOL_ERROR) # -> Result(ok, kind, detail)

Expectations return a Result (truthy when the reaction is one the RFC
allows) whose `detail` says what actually came back, frame by frame, so a
failing check can be reproduced from its output.

Run it with /usr/bin/python3 (Debian's interpreter, which has `hpack`).
Environment (set by lib.sh): PG_PKI, PG_HOST, PG_PORT, H2RAW_TIMEOUT
(seconds one expectation may wait; default 4).
"""
import os
import select
import socket
import ssl
import struct
import time

import hpack

import h2client as hc

TIMEOUT = float(os.environ.get("H2RAW_TIMEOUT", "4"))
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# ---- protocol constants -------------------------------------------------------

(DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY,
 WINDOW_UPDATE, CONTINUATION) = range(10)
FRAME_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE",
               "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"]

END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

ERROR_NAMES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
               "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
               "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
               "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
(NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT,
 STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR,
 ENHANCE_YOUR_CALM, INADEQUATE_SECURITY, HTTP_1_1_REQUIRED) = range(14)

(SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_MAX_CONCURRENT_STREAMS,
 SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE) = range(1, 7)

DEFAULT_MAX_FRAME_SIZE = 16384
MAX_WINDOW = 2 ** 31 - 1


def err_name(code):
    return ERROR_NAMES[code] if 0 <= code < len(ERROR_NAMES) else "0x%x" % code


def _codes(codes):
    return (codes,) if isinstance(codes, int) else tuple(codes)


def codes_text(codes):
    return "/".join(err_name(c) for c in _codes(codes))


# ---- frame builders -------------------------------------------------------------

def frame(ftype, flags, sid, payload=b"", length=None, reserved=False):
    """One frame as bytes.  length: a lying length field (the payload is sent
    as given); reserved: set the R bit of the stream identifier."""
    n = len(payload) if length is None else length
    sid_field = (sid & 0x7FFFFFFF) | (0x80000000 if reserved else 0)
    return struct.pack(">I", n)[1:] + bytes((ftype, flags)) + struct.pack(">I", sid_field) + \
        bytes(payload)


def _pad(payload, pad):
    """(flags, payload) with a padding length byte and pad zero bytes.
    pad may be (pad_length_field, actual_pad_bytes) to lie."""
    if pad is None:
        return 0, payload
    field, actual = pad if isinstance(pad, tuple) else (pad, pad)
    return PADDED, bytes((field,)) + payload + b"\0" * actual


def data(sid, body=b"", end=False, pad=None, flags=0):
    fl, payload = _pad(bytes(body), pad)
    return frame(DATA, flags | fl | (END_STREAM if end else 0), sid, payload)


def headers(sid, block, end_stream=False, end_headers=True, pad=None, priority=None, flags=0):
    """priority: (depends_on, weight 1..256, exclusive)."""
    pl = b""
    fl = flags
    if priority is not None:
        dep, weight, excl = priority
        pl = struct.pack(">IB", (dep & 0x7FFFFFFF) | (0x80000000 if excl else 0), weight - 1)
        fl |= PRIORITY_FLAG
    # the pad length byte comes first, then the priority fields
    pfl, payload = _pad(pl + bytes(block), pad)
    fl |= pfl | (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
    return frame(HEADERS, fl, sid, payload)


def continuation(sid, block, end_headers=True):
    return frame(CONTINUATION, END_HEADERS if end_headers else 0, sid, block)


def priority(sid, depends_on=0, weight=16, exclusive=False, length=None):
    p = struct.pack(">IB", (depends_on & 0x7FFFFFFF) | (0x80000000 if exclusive else 0),
                    weight - 1)
    if length is not None:
        p = (p + b"\0" * length)[:length]
    return frame(PRIORITY, 0, sid, p)


def rst_stream(sid, code=CANCEL, length=None):
    p = struct.pack(">I", code)
    if length is not None:
        p = (p + b"\0" * length)[:length]
    return frame(RST_STREAM, 0, sid, p)


def settings(pairs=(), ack=False, sid=0, raw=None):
    p = raw if raw is not None else b"".join(struct.pack(">HI", k, v) for k, v in pairs)
    return frame(SETTINGS, ACK if ack else 0, sid, p)


def ping(payload=b"h2raw!!!", ack=False, sid=0, flags=0, reserved=False):
    return frame(PING, flags | (ACK if ack else 0), sid, payload, reserved=reserved)


def goaway(last_sid=0, code=NO_ERROR, debug=b"", sid=0):
    return frame(GOAWAY, 0, sid, struct.pack(">II", last_sid & 0x7FFFFFFF, code) + debug)


def window_update(sid, increment, length=None):
    p = struct.pack(">I", increment & 0x7FFFFFFF)
    if length is not None:
        p = (p + b"\0" * length)[:length]
    return frame(WINDOW_UPDATE, 0, sid, p)


def push_promise(sid, promised, block, end_headers=True):
    return frame(PUSH_PROMISE, END_HEADERS if end_headers else 0, sid,
                 struct.pack(">I", promised & 0x7FFFFFFF) + bytes(block))


def encode_headers(fields, huffman=True):
    """An HPACK block of (name, value) pairs (str or bytes, sent as given:
    no lower-casing, no validation), every field a never-indexed literal
    or a static-table index, so the dynamic table stays empty."""
    enc = hpack.Encoder()
    return enc.encode([(n, v, True) for n, v in fields], huffman=huffman)


# ---- parsed frames and results ------------------------------------------------------

class Frame:
    __slots__ = ("type", "flags", "sid", "payload", "headers", "t")

    def __init__(self, ftype, flags, sid, payload):
        self.type, self.flags, self.sid, self.payload = ftype, flags, sid, payload
        self.headers = None  # decoded header list (HEADERS ending a block)
        self.t = time.monotonic()

    @property
    def error_code(self):
        if self.type == RST_STREAM and len(self.payload) >= 4:
            return struct.unpack(">I", self.payload[:4])[0]
        if self.type == GOAWAY and len(self.payload) >= 8:
            return struct.unpack(">I", self.payload[4:8])[0]
        return None

    @property
    def last_sid(self):
        return struct.unpack(">I", self.payload[:4])[0] & 0x7FFFFFFF

    @property
    def debug(self):
        return self.payload[8:] if self.type == GOAWAY else b""

    def flow_len(self):
        return len(self.payload) if self.type == DATA else 0

    def describe(self):
        name = FRAME_NAMES[self.type] if self.type < len(FRAME_NAMES) else "type 0x%x" % self.type
        s = "%s(sid=%d" % (name, self.sid)
        if self.flags:
            s += ", flags=0x%x" % self.flags
        if self.type in (RST_STREAM, GOAWAY):
            s += ", %s" % err_name(self.error_code if self.error_code is not None else -1)
            if self.type == GOAWAY and len(self.payload) >= 8:
                s += ", last=%d" % self.last_sid
                if self.debug:
                    s += ", debug=%r" % self.debug[:60]
        elif self.type == SETTINGS:
            s += ", %s" % ",".join("%d=%d" % struct.unpack(">HI", self.payload[i:i + 6])
                                   for i in range(0, len(self.payload) - 5, 6))
        elif self.type == WINDOW_UPDATE and len(self.payload) == 4:
            s += ", +%d" % (struct.unpack(">I", self.payload)[0] & 0x7FFFFFFF)
        elif self.type == DATA:
            s += ", %d bytes" % len(self.payload)
        elif self.type == PING:
            s += ", %r" % self.payload
        if self.headers is not None:
            st = [v for k, v in self.headers if k == ":status"]
            s += ", :status=%s" % (st[0] if st else "?")
        return s + ")"


class Result:
    """The outcome of an expectation: truthy when allowed; kind is what
    happened ("goaway", "rst", "closed", "response", "ping_ack", "timeout",
    ...); detail is a readable account including the frames received."""

    def __init__(self, ok, kind, detail, frame=None):
        self.ok, self.kind, self.detail, self.frame = bool(ok), kind, detail, frame

    def __bool__(self):
        return self.ok

    def __repr__(self):
        return "%s: %s" % ("ok" if self.ok else "FAILED", self.detail)


class StreamState:
    def __init__(self):
        self.headers = None   # the response's header list
        self.status = None
        self.trailers = None
        self.body = bytearray()
        self.data_frames = []  # payload length of each DATA frame (padding included)
        self.ended = False
        self.reset = None      # RST_STREAM error code


# ---- the connection ---------------------------------------------------------------------

class RawConn:
    """One TLS connection speaking raw HTTP/2 frames.  Not thread-safe."""

    def __init__(self, cert="nimble-01", host=None, port=None, alpn=("h2",), ctx=None,
                 server_name="localhost", timeout=None):
        self.host = host or os.environ.get("PG_HOST", "127.0.0.1")
        self.port = int(port if port is not None else os.environ["PG_PORT"])
        self.timeout = TIMEOUT if timeout is None else timeout
        self.authority = "localhost:%d" % self.port
        ctx = ctx or hc.context(cert, alpn)
        raw = socket.create_connection((self.host, self.port), timeout=max(self.timeout, 10))
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=server_name)
        except BaseException:
            raw.close()
            raise
        self.sock.settimeout(self.timeout)
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 20
        self._inbuf = bytearray()
        self._block = None        # (sid, first frame, fragments) of a header block being read
        self.received = []        # every frame read, in order
        self.sent = []            # a description of every frame written
        self.closed = False
        self.close_reason = None
        self.send_error = None
        self.goaway = None        # the first GOAWAY frame
        self.server_settings = {}
        self.settings_seen = False
        self.settings_acks = 0
        self.ping_acks = []
        self.streams = {}
        self.next_sid = 1
        self.auto_conn_window = True  # WINDOW_UPDATE(0) as DATA is read
        self._unacked = 0
        self.hpack_error = None

    # -- writing
    def send(self, *frames):
        """Writes the frames (bytes) in one go.  False when the write failed
        (the gateway closed the connection)."""
        buf = b"".join(frames)
        for f in frames:
            self.sent.append(_describe_bytes(f))
        if self.closed or self.send_error:
            return False
        try:
            self.sock.sendall(buf)
            return True
        except (OSError, ssl.SSLError) as e:
            self.send_error = repr(e)
            return False

    def new_sid(self):
        sid = self.next_sid
        self.next_sid += 2
        return sid

    def request_fields(self, method="GET", path="/", extra=(), content_type=None):
        f = [(":method", method), (":scheme", "https"), (":authority", self.authority),
             (":path", path)]
        if content_type:
            f.append(("content-type", content_type))
        f.append(("user-agent", "h2raw/1 (panelgate conformance)"))
        return f + list(extra)

    def get(self, path="/", sid=None, extra=()):
        """GET path with END_STREAM; returns the stream id."""
        sid = sid or self.new_sid()
        self.send(headers(sid, encode_headers(self.request_fields("GET", path, extra)),
                          end_stream=True))
        return sid

    def post_headers(self, sid=None, path="/v1/stats", extra=(), end_stream=False):
        """The HEADERS of a POST (application/msgpack), no body yet."""
        sid = sid or self.new_sid()
        fields = self.request_fields("POST", path, extra, content_type="application/msgpack")
        self.send(headers(sid, encode_headers(fields), end_stream=end_stream))
        return sid

    def body_frames(self, sid, body, end=True, chunk=DEFAULT_MAX_FRAME_SIZE):
        out = []
        for off in range(0, max(len(body), 1), chunk):
            part = body[off:off + chunk]
            out.append(data(sid, part, end=end and off + chunk >= len(body)))
        return out

    def post(self, body, sid=None, path="/v1/stats", extra=()):
        """A whole POST (headers + body, END_STREAM); returns the stream id."""
        sid = self.post_headers(sid, path, extra)
        self.send(*self.body_frames(sid, body))
        return sid

    # -- reading
    def read_frame(self, timeout=None):
        """The next frame (after the automatic reactions), or None on timeout
        or when the connection ended (then self.closed is set)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            f = self._take_frame()
            if f is not None:
                self._handle(f)
                return f
            if self.closed:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                if not self.sock.pending():
                    r, _, _ = select.select([self.sock], [], [], left)
                    if not r:
                        return None
                chunk = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except (OSError, ssl.SSLError) as e:
                self._mark_closed("recv: %r" % e)
                continue
            if not chunk:
                self._mark_closed("EOF")
                continue
            self._inbuf += chunk

    def _take_frame(self):
        if len(self._inbuf) < 9:
            return None
        n = int.from_bytes(self._inbuf[0:3], "big")
        if len(self._inbuf) < 9 + n:
            return None
        ftype, flags = self._inbuf[3], self._inbuf[4]
        sid = int.from_bytes(self._inbuf[5:9], "big") & 0x7FFFFFFF
        payload = bytes(self._inbuf[9:9 + n])
        del self._inbuf[:9 + n]
        f = Frame(ftype, flags, sid, payload)
        self.received.append(f)
        return f

    def _mark_closed(self, why):
        if not self.closed:
            self.closed = True
            self.close_reason = why

    def stream(self, sid):
        st = self.streams.get(sid)
        if st is None:
            st = self.streams[sid] = StreamState()
        return st

    def _handle(self, f):
        """What a client does on its own: ACK SETTINGS and PING, track
        windows, decode header blocks, record responses."""
        if f.type == SETTINGS:
            if f.flags & ACK:
                self.settings_acks += 1
            else:
                self.settings_seen = True
                for i in range(0, len(f.payload) - 5, 6):
                    k, v = struct.unpack(">HI", f.payload[i:i + 6])
                    self.server_settings[k] = v
                self.send(settings(ack=True))
        elif f.type == PING:
            if f.flags & ACK:
                self.ping_acks.append(f.payload)
            else:
                self.send(ping(f.payload, ack=True))
        elif f.type == GOAWAY:
            if self.goaway is None:
                self.goaway = f
        elif f.type == RST_STREAM:
            st = self.stream(f.sid)
            if st.reset is None:
                st.reset = f.error_code
        elif f.type == DATA:
            st = self.stream(f.sid)
            payload = f.payload
            if f.flags & PADDED and payload:
                payload = payload[1:len(payload) - payload[0]]
            st.body += payload
            st.data_frames.append(len(f.payload))
            if f.flags & END_STREAM:
                st.ended = True
            self._unacked += len(f.payload)
            if self.auto_conn_window and self._unacked >= 16384:
                self.send(window_update(0, self._unacked))
                self._unacked = 0
        elif f.type in (HEADERS, PUSH_PROMISE, CONTINUATION):
            self._header_fragment(f)

    def _header_fragment(self, f):
        if f.type in (HEADERS, PUSH_PROMISE):
            p = f.payload
            if f.flags & PADDED and p:
                p = p[1:len(p) - p[0]]
            if f.type == HEADERS and f.flags & PRIORITY_FLAG:
                p = p[5:]
            if f.type == PUSH_PROMISE:
                p = p[4:]
            self._block = (f.sid, f, [p])
        elif self._block is not None:
            self._block[2].append(f.payload)
        else:
            return
        if not f.flags & END_HEADERS:
            return
        sid, first, frags = self._block
        self._block = None
        try:
            fields = self.dec.decode(b"".join(frags), raw=False)
        except Exception as e:  # noqa: BLE001 - any HPACK failure is reported, not raised
            self.hpack_error = repr(e)
            fields = []
        first.headers = fields
        if first.type != HEADERS:
            return
        st = self.stream(sid)
        if st.headers is None:
            st.headers = fields
            for k, v in fields:
                if k == ":status":
                    st.status = int(v) if v.isdigit() else -1
        else:
            st.trailers = fields
        if first.flags & END_STREAM:
            st.ended = True

    # -- waiting
    def wait_for(self, pred, timeout=None):
        """Reads frames until pred(frame) is true (returns that frame), the
        connection ends or timeout passes (returns None)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            f = self.read_frame(left)
            if f is None:
                if self.closed:
                    return None
                continue
            if pred(f):
                return f

    def handshake(self, client_settings=(), preface=PREFACE, timeout=None):
        """Sends the preface and a SETTINGS frame; waits for the gateway's
        SETTINGS (which we ACK) and for its ACK of ours.  Result."""
        first = []
        self.send(preface + settings(client_settings))
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not (self.settings_seen and self.settings_acks >= 1):
            f = self.read_frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                break
            first.append(f)
        if first and not (first[0].type == SETTINGS and not first[0].flags & ACK):
            return Result(False, "preface", "the gateway's first frame is %s, not SETTINGS" %
                          first[0].describe())
        if self.settings_seen and self.settings_acks >= 1:
            return Result(True, "ok", "SETTINGS exchanged")
        return Result(False, "timeout", "no SETTINGS exchange: %s" % self.account())

    def account(self, since=0):
        """What the gateway sent (from frame index since), and how it ended."""
        fr = [f.describe() for f in self.received[since:]]
        s = "received [%s]" % ", ".join(fr) if fr else "received nothing"
        if self.closed:
            s += ", then connection closed (%s)" % self.close_reason
        return s

    # -- expectations (h2spec style) ---------------------------------------------------
    def ping_roundtrip(self, timeout=None, payload=None):
        """Sends a PING and waits for its ACK: the gateway has processed
        everything sent before.  Result("ping_ack") unless an error came."""
        payload = payload or os.urandom(8)
        mark = len(self.received)
        self.send(ping(payload))
        f = self.wait_for(lambda f: f.type == GOAWAY or (f.type == PING and f.flags & ACK and
                                                          f.payload == payload), timeout)
        if f is not None and f.type == PING:
            return Result(True, "ping_ack", "PING acknowledged", f)
        return Result(False, "goaway" if f is not None else ("closed" if self.closed else "timeout"),
                      "no PING ACK: %s" % self.account(mark), f)

    def expect_goaway(self, codes, timeout=None, allow_close=False):
        """A connection error: GOAWAY with one of codes, then the connection
        closes (RFC 9113 5.4.1).  allow_close: a close without GOAWAY is
        accepted too (RFC 9113 3.4: invalid preface)."""
        codes = _codes(codes)
        mark = len(self.received)
        f = self.wait_for(lambda f: f.type == GOAWAY, timeout)
        if f is None:
            if self.closed and allow_close:
                return Result(True, "closed", "connection closed without GOAWAY")
            return Result(False, "closed" if self.closed else "timeout",
                          "want GOAWAY %s: %s" % (codes_text(codes), self.account(mark)))
        if f.error_code not in codes:
            return Result(False, "goaway", "want GOAWAY %s, got %s" % (codes_text(codes),
                                                                       f.describe()), f)
        closed = self.expect_connection_closed(timeout)
        if not closed:
            return Result(False, "goaway", "%s, but the connection stayed open: %s" % (
                f.describe(), closed.detail), f)
        return Result(True, "goaway", "GOAWAY %s%s, then closed" % (err_name(f.error_code),
                                                                    _debug_text(f)), f)

    def expect_connection_closed(self, timeout=None):
        """The gateway closes the connection (EOF or reset) within timeout."""
        mark = len(self.received)
        self.wait_for(lambda f: False, timeout)
        if self.closed:
            return Result(True, "closed", "connection closed (%s)" % self.close_reason)
        return Result(False, "timeout", "still open after %.1fs: %s" % (
            self.timeout if timeout is None else timeout, self.account(mark)))

    def expect_rst(self, sid, codes, timeout=None):
        """A stream error: RST_STREAM on sid with one of codes."""
        return self.expect_stream_error(sid, codes, timeout, conn_error_ok=False)

    def expect_stream_error(self, sid, codes, timeout=None, conn_error_ok=True):
        """RST_STREAM(sid) with one of codes; with conn_error_ok a GOAWAY with
        one of codes is accepted as well (RFC 9113 5.4.1: an endpoint MAY
        treat a stream error as a connection error).  kind tells which."""
        codes = _codes(codes)
        mark = len(self.received)
        f = self.wait_for(lambda f: f.type == GOAWAY or (f.type == RST_STREAM and f.sid == sid),
                          timeout)
        if f is None:
            return Result(False, "closed" if self.closed else "timeout",
                          "want RST_STREAM(%d) %s: %s" % (sid, codes_text(codes),
                                                          self.account(mark)))
        if f.type == RST_STREAM:
            return Result(f.error_code in codes, "rst",
                          "RST_STREAM %s" % err_name(f.error_code) if f.error_code in codes else
                          "want RST_STREAM(%d) %s, got %s" % (sid, codes_text(codes),
                                                               f.describe()), f)
        if conn_error_ok and f.error_code in codes:
            closed = self.expect_connection_closed()
            if closed:
                return Result(True, "goaway", "GOAWAY %s%s (connection error), then closed" %
                              (err_name(f.error_code), _debug_text(f)), f)
            return Result(False, "goaway", "%s but the connection stayed open" % f.describe(), f)
        return Result(False, "goaway", "want RST_STREAM(%d) %s%s, got %s" % (
            sid, codes_text(codes), " or GOAWAY" if conn_error_ok else "", f.describe()), f)

    def expect_response(self, sid, timeout=None, status=None):
        """The response on sid ends (END_STREAM).  status: the :status wanted
        (int or tuple).  Result.frame is None; .stream is the StreamState."""
        st = self.stream(sid)
        mark = len(self.received)
        self.wait_for(lambda f: st.ended or st.reset is not None or f.type == GOAWAY, timeout)
        want = _codes(status) if status is not None else None
        if st.ended and st.status is not None and (want is None or st.status in want):
            r = Result(True, "response", "response %d" % st.status)
        elif st.ended:
            r = Result(False, "response", "want status %s, got %s: %s" % (
                want, st.status, self.account(mark)))
        else:
            r = Result(False, "rst" if st.reset is not None else
                       ("goaway" if self.goaway is not None else
                        ("closed" if self.closed else "timeout")),
                       "no complete response on stream %d: %s" % (sid, self.account(mark)))
        r.stream = st
        return r

    def expect_ping_ack(self, payload, timeout=None):
        mark = len(self.received)
        f = self.wait_for(lambda f: f.type == GOAWAY or (f.type == PING and f.flags & ACK),
                          timeout)
        if f is None or f.type == GOAWAY:
            return Result(False, "goaway" if f else "timeout", "no PING ACK: %s" %
                          self.account(mark), f)
        if f.payload != payload:
            return Result(False, "ping_ack", "PING ACK with %r, want %r" % (f.payload, payload), f)
        return Result(True, "ping_ack", "PING ACK with the same 8 bytes", f)

    def expect_settings_ack(self, timeout=None):
        mark = len(self.received)
        n = self.settings_acks
        f = self.wait_for(lambda f: f.type == GOAWAY or self.settings_acks > n, timeout)
        if f is not None and f.type != GOAWAY:
            return Result(True, "settings_ack", "SETTINGS ACK", f)
        return Result(False, "goaway" if f else "timeout", "no SETTINGS ACK: %s" %
                      self.account(mark), f)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True


def _debug_text(f):
    return " %r" % f.debug.decode("utf-8", "replace")[:80] if f.debug else ""


def _describe_bytes(b):
    """A short text for frames we send (the preface shows as PREFACE)."""
    out = []
    b = bytes(b)
    if b.startswith(PREFACE):
        out.append("PREFACE")
        b = b[len(PREFACE):]
    while len(b) >= 9:
        n = int.from_bytes(b[0:3], "big")
        f = Frame(b[3], b[4], int.from_bytes(b[5:9], "big") & 0x7FFFFFFF, b[9:9 + n])
        d = f.describe()
        if len(b) - 9 < n:
            d += "[length field %d, %d bytes sent]" % (n, len(b) - 9)
        out.append(d)
        b = b[9 + n:]
    if b:
        out.append("raw %r" % b[:40])
    return " ".join(out)


def connect(client_settings=(), **kw):
    """A RawConn after a successful SETTINGS exchange (raises otherwise)."""
    c = RawConn(**kw)
    r = c.handshake(client_settings)
    if not r:
        c.close()
        raise hc.ConnError("HTTP/2 handshake: %s" % r.detail)
    return c
