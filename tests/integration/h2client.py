#!/usr/bin/python3
"""h2client.py - a small HTTP/2 over mutual TLS client for panelgate's
integration tests (python3-h2 4.x + the standard ssl module).

Run it with /usr/bin/python3 (Debian's interpreter, which has the `h2`
module).  Import it from a test script:

    import h2client as hc
    c = hc.connect("nimble-01")          # PG_PKI/nimble-01.{crt,key}, PG_PORT
    r = c.post(hc.pack(frame))           # -> Response(status, headers, body)
    c.close()

What it offers:
  - Conn: one TLS connection (client certificate, ALPN h2 or none, the
    gateway verified against the dev CA), several requests on it, responses
    with status/headers/body, GOAWAY and RST_STREAM observed, a body streamed
    in chunks that stops as soon as the gateway answers, raw frames for
    hostile cases.  Every wait has a timeout.
  - pack()/unpack(): a minimal MessagePack writer/reader, so tests can build
    any frame (valid or not) without msgpack-python.
  - load_frame(): a sample JSON frame (tests/data) as a dict with addresses
    as bytes, ready for pack().
  - Checks: prints "ok - ..." / "not ok - ..." lines that lib.sh counts.

python-h2 closes its state machine when a GOAWAY arrives and would then
refuse the responses a graceful server still sends on accepted streams
(RFC 9113 6.8).  Conn feeds h2 one frame at a time and reopens the state
machine after a GOAWAY so those responses are seen; it refuses to open new
streams itself after a GOAWAY unless told otherwise.

Environment (set by lib.sh): PG_PKI (directory of ca.crt and <name>.crt/key),
PG_HOST (default 127.0.0.1), PG_PORT, PG_PORT6, PG_TIMEOUT (seconds, default
30), PANELGATE_TEST_DATA.
"""
import ipaddress
import json
import os
import select
import socket
import ssl
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack

TIMEOUT = float(os.environ.get("PG_TIMEOUT", "30"))

# HTTP/2 frame types and flags used by the raw helpers
FT_DATA, FT_HEADERS, FT_RST_STREAM, FT_SETTINGS, FT_PING, FT_GOAWAY, FT_CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x9)
FL_END_STREAM, FL_END_HEADERS = 0x1, 0x4


# ---- MessagePack ----------------------------------------------------------

class Raw:
    """Bytes that pack() copies verbatim (to build invalid MessagePack)."""

    def __init__(self, b):
        self.b = bytes(b)


def _pack(o, out):
    if isinstance(o, Raw):
        out += o.b
    elif o is None:
        out.append(0xC0)
    elif o is True:
        out.append(0xC3)
    elif o is False:
        out.append(0xC2)
    elif isinstance(o, int):
        if 0 <= o < 0x80:
            out.append(o)
        elif -32 <= o < 0:
            out.append(o & 0xFF)
        elif o >= 0:
            for lim, tag, fmt in ((0xFF, 0xCC, ">B"), (0xFFFF, 0xCD, ">H"),
                                  (0xFFFFFFFF, 0xCE, ">I"), (0xFFFFFFFFFFFFFFFF, 0xCF, ">Q")):
                if o <= lim:
                    out.append(tag)
                    out += struct.pack(fmt, o)
                    break
            else:
                raise ValueError("integer too large for MessagePack")
        else:
            for lim, tag, fmt in ((-0x80, 0xD0, ">b"), (-0x8000, 0xD1, ">h"),
                                  (-0x80000000, 0xD2, ">i"), (-0x8000000000000000, 0xD3, ">q")):
                if o >= lim:
                    out.append(tag)
                    out += struct.pack(fmt, o)
                    break
            else:
                raise ValueError("integer too small for MessagePack")
    elif isinstance(o, float):
        out.append(0xCB)
        out += struct.pack(">d", o)
    elif isinstance(o, str):
        b = o.encode("utf-8")
        n = len(b)
        if n < 32:
            out.append(0xA0 | n)
        elif n <= 0xFF:
            out += bytes((0xD9, n))
        elif n <= 0xFFFF:
            out.append(0xDA)
            out += struct.pack(">H", n)
        else:
            out.append(0xDB)
            out += struct.pack(">I", n)
        out += b
    elif isinstance(o, (bytes, bytearray)):
        n = len(o)
        if n <= 0xFF:
            out += bytes((0xC4, n))
        elif n <= 0xFFFF:
            out.append(0xC5)
            out += struct.pack(">H", n)
        else:
            out.append(0xC6)
            out += struct.pack(">I", n)
        out += o
    elif isinstance(o, (list, tuple)):
        n = len(o)
        if n < 16:
            out.append(0x90 | n)
        elif n <= 0xFFFF:
            out.append(0xDC)
            out += struct.pack(">H", n)
        else:
            out.append(0xDD)
            out += struct.pack(">I", n)
        for x in o:
            _pack(x, out)
    elif isinstance(o, dict):
        n = len(o)
        if n < 16:
            out.append(0x80 | n)
        elif n <= 0xFFFF:
            out.append(0xDE)
            out += struct.pack(">H", n)
        else:
            out.append(0xDF)
            out += struct.pack(">I", n)
        for k, v in o.items():
            _pack(k, out)
            _pack(v, out)
    else:
        raise TypeError("cannot pack %r" % type(o))


def pack(o):
    """MessagePack bytes of o (shortest integer forms, floats as float64,
    bytes as bin, Raw spliced in as is)."""
    out = bytearray()
    _pack(o, out)
    return bytes(out)


def unpack(b):
    """The value of one MessagePack document (bin -> bytes, str -> str);
    ValueError on malformed input or trailing bytes."""
    b = bytes(b)
    pos = [0]

    def take(n):
        if pos[0] + n > len(b):
            raise ValueError("truncated at %d" % pos[0])
        v = b[pos[0]:pos[0] + n]
        pos[0] += n
        return v

    def num(fmt):
        return struct.unpack(fmt, take(struct.calcsize(fmt)))[0]

    def val():
        t = take(1)[0]
        if t < 0x80:
            return t
        if t >= 0xE0:
            return t - 0x100
        if 0x80 <= t <= 0x8F:
            return mp(t & 0x0F)
        if 0x90 <= t <= 0x9F:
            return [val() for _ in range(t & 0x0F)]
        if 0xA0 <= t <= 0xBF:
            return take(t & 0x1F).decode("utf-8")
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if t in simple:
            return simple[t]
        ints = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
                0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q", 0xCA: ">f", 0xCB: ">d"}
        if t in ints:
            return num(ints[t])
        if t in (0xC4, 0xC5, 0xC6):
            return take(num({0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}[t]))
        if t in (0xD9, 0xDA, 0xDB):
            return take(num({0xD9: ">B", 0xDA: ">H", 0xDB: ">I"}[t])).decode("utf-8")
        if t in (0xDC, 0xDD):
            return [val() for _ in range(num(">H" if t == 0xDC else ">I"))]
        if t in (0xDE, 0xDF):
            return mp(num(">H" if t == 0xDE else ">I"))
        raise ValueError("unsupported MessagePack byte 0x%02x at %d" % (t, pos[0] - 1))

    def mp(n):
        d = {}
        for _ in range(n):
            k = val()
            d[k] = val()
        return d

    v = val()
    if pos[0] != len(b):
        raise ValueError("%d trailing bytes" % (len(b) - pos[0]))
    return v


# ---- frames ------------------------------------------------------------------

def ip_bytes(text):
    return ipaddress.ip_address(text).packed


def data_path(name):
    return os.path.join(os.environ.get("PANELGATE_TEST_DATA", "."), name)


def load_json(name_or_path):
    p = name_or_path if os.path.sep in name_or_path else data_path(name_or_path)
    with open(p, "rb") as f:
        return json.load(f)


def frame_from_json(d):
    """A JSON-form frame (addresses as text) -> dict for pack() (bytes)."""
    d = json.loads(json.dumps(d))  # deep copy
    srv = d.get("server", {})
    if "ips" in srv:
        srv["ips"] = [ip_bytes(x) for x in srv["ips"]]
    for c in d.get("conns", []):
        c["ip"] = ip_bytes(c["ip"])
    return d


def load_frame(name, **top):
    """tests/data/<name> (e.g. "nimble.json") as a packable dict; keyword
    arguments replace top-level keys (seq=..., ts=...)."""
    d = frame_from_json(load_json(name))
    d.update(top)
    return d


def minimal_frame(seq, name="edge-1", kind="nimble", conns=()):
    """The smallest valid frame (PROTOCOL.md 8.2); conns: (ip text, in, out)."""
    d = {"v": 1, "seq": seq, "ts": 1700000000000,
         "server": {"name": name, "kind": kind, "version": "4.1.2"},
         "load": {"cpu": 12.5, "ram_used": 1073741824, "ram_total": 4294967296},
         "traffic": {"in": 1000, "out": 2000, "period_ms": 5000}}
    if conns:
        d["conns"] = [{"ip": ip_bytes(ip), "in": i, "out": o} for ip, i, o in conns]
    return d


# ---- HTTP/2 connection ---------------------------------------------------------

def pki_path(name):
    return os.path.join(os.environ.get("PG_PKI", "."), name)


def context(cert="nimble-01", alpn=("h2",), ca="ca.crt"):
    """An ssl.SSLContext with the client certificate PG_PKI/<cert>.crt/.key
    (cert=None: none), verifying the gateway against PG_PKI/<ca>.  alpn=None
    sends no ALPN extension at all.  Reuse one context to resume sessions."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki_path(ca))
    ctx.check_hostname = True
    if cert:
        ctx.load_cert_chain(pki_path(cert + ".crt"), pki_path(cert + ".key"))
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


class Response:
    def __init__(self, st):
        self.stream_id = st.sid
        self.status = st.status
        self.headers = dict(st.headers)
        self.body = bytes(st.body)
        self.ended = st.ended
        self.reset = st.reset          # error code of a RST_STREAM, or None
        self.sent = st.sent            # body bytes the client sent
        self.answered_early = st.answered_early

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError:
            return None

    def __repr__(self):
        return "<Response stream=%d status=%s reset=%s headers=%s body=%r>" % (
            self.stream_id, self.status, self.reset, self.headers, self.body[:400])


class Stream:
    def __init__(self, sid):
        self.sid = sid
        self.status = None
        self.headers = {}
        self.body = bytearray()
        self.ended = False
        self.reset = None
        self.sent = 0
        self.req_done = False
        self.answered_early = False  # a response arrived before the request ended

    @property
    def done(self):
        return self.ended or self.reset is not None


class ConnError(Exception):
    pass


class Conn:
    """One HTTP/2 connection over TLS.  Not thread-safe: one thread each."""

    def __init__(self, port=None, host=None, ctx=None, cert="nimble-01", alpn=("h2",),
                 server_name="localhost", timeout=None, session=None, preface=True):
        self.host = host or os.environ.get("PG_HOST", "127.0.0.1")
        self.port = int(port if port is not None else os.environ["PG_PORT"])
        self.timeout = TIMEOUT if timeout is None else timeout
        self.ctx = ctx or context(cert, alpn)
        self.streams = {}
        self.goaway = None          # h2.events.ConnectionTerminated
        self.goaway_time = None
        self.closed = False
        self.close_reason = None
        self.send_error = None      # a write failed (reading may go on)
        self.protocol_error = None
        self.remote_settings = {}
        self.rst_received = []      # (stream id, error code)
        self._acks = []             # PING acks
        self._inbuf = bytearray()
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            self.sock = self.ctx.wrap_socket(raw, server_hostname=server_name, session=session)
        except BaseException:
            raw.close()
            raise
        self.sock.settimeout(self.timeout)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=False,
                                        normalize_outbound_headers=False)
        self.h2 = h2.connection.H2Connection(config=cfg)
        self.authority = "localhost:%d" % self.port
        if preface:
            self.h2.initiate_connection()
            self._flush()

    # -- TLS facts
    @property
    def alpn(self):
        return self.sock.selected_alpn_protocol()

    @property
    def session(self):
        return self.sock.session

    @property
    def session_reused(self):
        return self.sock.session_reused

    # -- I/O
    def _flush(self):
        data = self.h2.data_to_send()
        if data and not self.closed and self.send_error is None:
            try:
                self.sock.sendall(data)
            except (OSError, ssl.SSLError) as e:
                self._send_failed(e)

    def _send_failed(self, e):
        # The server may have closed its side after answering (GOAWAY, then
        # close): what it sent before is still to be read, so the
        # connection counts as closed only when reading ends.
        self.send_error = "send: %r" % e

    def send_raw(self, data):
        """Writes bytes as they are (after anything h2 has queued)."""
        self._flush()
        if self.closed or self.send_error is not None:
            return False
        try:
            self.sock.sendall(data)
            return True
        except (OSError, ssl.SSLError) as e:
            self._send_failed(e)
            return False

    def _mark_closed(self, why):
        if not self.closed:
            self.closed = True
            self.close_reason = why

    def pump(self, timeout=0.0):
        """Reads once what arrives within timeout and handles it.  True when
        something was read (or the connection ended)."""
        if self.closed:
            return False
        try:
            if not self.sock.pending():
                r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
                if not r:
                    return False
            data = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return False
        except (OSError, ssl.SSLError) as e:
            self._mark_closed("recv: %r" % e)
            return True
        if not data:
            self._mark_closed("eof" + (" after %s" % self.send_error if self.send_error else ""))
            return True
        self._feed(data)
        self._flush()
        return True

    def _feed(self, data):
        self._inbuf += data
        while len(self._inbuf) >= 9:
            n = int.from_bytes(self._inbuf[0:3], "big")
            if len(self._inbuf) < 9 + n:
                break
            frame = bytes(self._inbuf[:9 + n])
            del self._inbuf[:9 + n]
            if frame[3] == FT_RST_STREAM and n == 4:
                self.rst_received.append((int.from_bytes(frame[5:9], "big") & 0x7FFFFFFF,
                                          int.from_bytes(frame[9:13], "big")))
            try:
                events = self.h2.receive_data(frame)
            except h2.exceptions.ProtocolError as e:
                self.protocol_error = e
                self._mark_closed("h2 protocol error: %r" % e)
                return
            for ev in events:
                self._event(ev)

    def _event(self, ev):
        st = self.streams.get(getattr(ev, "stream_id", None) or -1)
        if isinstance(ev, h2.events.ResponseReceived):
            if st:
                hd = dict(ev.headers)
                try:
                    st.status = int(hd.get(":status", "0"))
                except ValueError:
                    st.status = -1
                st.headers = {k: v for k, v in ev.headers if not k.startswith(":")}
                if not st.req_done:
                    st.answered_early = True
        elif isinstance(ev, h2.events.DataReceived):
            if st:
                st.body += ev.data
            try:
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            except h2.exceptions.ProtocolError:
                pass
        elif isinstance(ev, h2.events.StreamEnded):
            if st:
                st.ended = True
        elif isinstance(ev, h2.events.StreamReset):
            if st and st.reset is None:
                st.reset = int(ev.error_code)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev
            self.goaway_time = time.monotonic()
            # keep reading the answers to the streams the server accepted
            self.h2.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        elif isinstance(ev, h2.events.PingAckReceived):
            self._acks.append(ev.ping_data)
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            for code, ch in ev.changed_settings.items():
                self.remote_settings[int(code)] = ch.new_value

    def wait(self, pred, timeout=None):
        """Pumps until pred() is true, the connection ends or timeout passes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                break
            self.pump(min(left, 1.0))
        return pred()

    def wait_settings(self, timeout=None):
        return self.wait(lambda: bool(self.remote_settings), timeout)

    def wait_goaway(self, timeout=None):
        return self.wait(lambda: self.goaway is not None, timeout)

    def wait_closed(self, timeout=None):
        """True when the server closed the connection (EOF or reset)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.closed and time.monotonic() < deadline:
            self.pump(min(1.0, max(0.0, deadline - time.monotonic())))
        return self.closed

    # -- requests
    def headers_for(self, method="POST", path="/v1/stats", content_type="application/msgpack",
                    content_length=None, extra=()):
        hd = [(":method", method), (":scheme", "https"), (":authority", self.authority),
              (":path", path)]
        if content_type is not None:
            hd.append(("content-type", content_type))
        if content_length is not None:
            hd.append(("content-length", str(content_length)))
        hd.append(("user-agent", "h2client/1 (panelgate tests)"))
        hd.extend(extra)
        return hd

    def start(self, body=None, method="POST", path="/v1/stats",
              content_type="application/msgpack", content_length="auto", extra=(),
              end=True, allow_after_goaway=False):
        """Opens a stream and sends the headers, then the body if one is
        given.  content_length: "auto" (len(body)), None (no header) or a
        value.  end=False leaves the request open (send_body later).
        Returns the stream id."""
        if self.closed or self.send_error is not None:
            raise ConnError("connection closed: %s" % (self.close_reason or self.send_error))
        if self.goaway is not None and not allow_after_goaway:
            raise ConnError("GOAWAY received")
        if content_length == "auto":
            content_length = len(body) if body is not None else None
        sid = self.h2.get_next_available_stream_id()
        st = self.streams[sid] = Stream(sid)
        hd = self.headers_for(method, path, content_type, content_length, extra)
        no_body = body is None or len(body) == 0
        self.h2.send_headers(sid, hd, end_stream=end and no_body)
        if end and no_body:
            st.req_done = True
        self._flush()
        if body:
            self.send_body(sid, body, end=end)
        return sid

    def send_body(self, sid, data, end=True, chunk=16384, stop_on_answer=False,
                  pause_after=None, timeout=None):
        """Sends data on stream sid in DATA frames of at most chunk bytes,
        waiting for flow-control window as needed.  stop_on_answer: stop as
        soon as the server answers or resets the stream.  pause_after: after
        that many bytes, wait (up to timeout) for an answer before going on.
        Returns the bytes sent."""
        st = self.streams[sid]
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        off = 0
        paused = False
        data = memoryview(bytes(data))
        while off < len(data):
            if stop_on_answer:
                self.pump(0)
                if st.status is not None or st.reset is not None:
                    break
                if pause_after is not None and off >= pause_after and not paused:
                    paused = True
                    self.wait(lambda: st.status is not None or st.reset is not None,
                              max(0.0, deadline - time.monotonic()))
                    continue
            if self.closed or self.send_error is not None:
                break
            try:
                win = self.h2.local_flow_control_window(sid)
            except h2.exceptions.ProtocolError:
                break  # the stream is closed
            n = min(chunk, len(data) - off, win, self.h2.max_outbound_frame_size)
            if n <= 0:
                if time.monotonic() > deadline:
                    raise ConnError("no flow-control window for stream %d" % sid)
                self.pump(0.2)
                continue
            last = off + n == len(data)
            try:
                self.h2.send_data(sid, data[off:off + n].tobytes(), end_stream=end and last)
            except h2.exceptions.ProtocolError:
                break  # reset by the server meanwhile
            off += n
            st.sent = off
            if end and last:
                st.req_done = True
            self._flush()
        return off

    def end_stream(self, sid):
        try:
            self.h2.end_stream(sid)
            self.streams[sid].req_done = True
        except h2.exceptions.ProtocolError:
            pass
        self._flush()

    def reset_stream(self, sid, code=0x8):
        try:
            self.h2.reset_stream(sid, code)
        except h2.exceptions.ProtocolError:
            pass
        self._flush()

    def response(self, sid, timeout=None):
        """Waits for stream sid to end (or be reset, or the connection to
        end) and returns its Response."""
        st = self.streams[sid]
        self.wait(lambda: st.done, timeout)
        return Response(st)

    def request(self, body=None, timeout=None, **kw):
        sid = self.start(body, **kw)
        return self.response(sid, timeout)

    def post(self, body, **kw):
        return self.request(body, **kw)

    def ping(self, timeout=None):
        """A PING round trip: True when the connection still answers."""
        if self.closed:
            return False
        before = len(self._acks)
        self.h2.ping(os.urandom(8))
        self._flush()
        return self.wait(lambda: len(self._acks) > before, timeout)

    # -- raw frames
    @staticmethod
    def raw_frame(ftype, flags, sid, payload=b""):
        return len(payload).to_bytes(3, "big") + bytes((ftype, flags)) + \
            (sid & 0x7FFFFFFF).to_bytes(4, "big") + payload

    def header_block(self, headers):
        """An HPACK block made with a fresh encoder that never indexes
        (so the connection's own HPACK state is not disturbed)."""
        enc = hpack.Encoder()
        enc.header_table_size = 0
        return enc.encode([hpack.NeverIndexedHeaderTuple(k, v) for k, v in headers])

    def close(self):
        if not self.closed:
            try:
                self.h2.close_connection()
                self._flush()
            except Exception:
                pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True


def connect(cert="nimble-01", v6=False, **kw):
    """A Conn to the gateway under test (PG_PORT, or PG_PORT6 on ::1 when v6)
    with PG_PKI/<cert> as client certificate; waits for its SETTINGS."""
    if v6:
        kw.setdefault("host", "::1")
        kw.setdefault("port", os.environ["PG_PORT6"])
    c = Conn(cert=cert, **kw)
    c.wait_settings(5)
    return c


# ---- checks ---------------------------------------------------------------------

class Checks:
    """check(cond, what, detail) prints "ok - what" or "not ok - what: detail"
    (lib.sh counts those lines)."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def __call__(self, cond, what, detail=None):
        if cond:
            self.passed += 1
            print("ok - %s" % what, flush=True)
        else:
            self.failed += 1
            print("not ok - %s%s" % (what, (": %s" % (detail,)) if detail is not None else ""),
                  flush=True)
        return bool(cond)

    def note(self, msg):
        print("# %s" % msg, flush=True)


def problem_ok(r, status, ptype):
    """True when r is an application/problem+json answer with that status
    and type (urn:panelgate:problem:<ptype>)."""
    if r.status != status:
        return False
    if r.headers.get("content-type", "").split(";")[0].strip() != "application/problem+json":
        return False
    j = r.json()
    return isinstance(j, dict) and j.get("type") == "urn:panelgate:problem:" + ptype and \
        j.get("status") == status and isinstance(j.get("title"), str)


# ---- command line -------------------------------------------------------------------

def ip_needles(viewers, v4_binary=True):
    """The byte strings a viewer address could be stored or logged as: its
    text forms (compressed, as given, IPv6 exploded) and its packed form
    (for IPv4 only when v4_binary: in tens of MB, 4 bytes may occur by
    chance); for an IPv4-mapped IPv6 address, the IPv4 address's forms
    too.  A list of (address, kind, bytes)."""
    out = []
    for v in sorted(viewers):
        ip = ipaddress.ip_address(v)
        fam = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        texts = {socket.inet_ntop(fam, ip.packed), v, ip.exploded}
        packed = [ip.packed] if ip.version == 6 or v4_binary else []
        if ip.version == 6 and ip.ipv4_mapped:
            texts.add(str(ip.ipv4_mapped))
            packed.append(ip.ipv4_mapped.packed)
        out += [(v, "text", t.encode()) for t in sorted(texts)]
        out += [(v, "binary", b) for b in packed]
    return out


def files_of(args):
    """The files named by |args|: a directory stands for its entries
    (sorted), a path that does not exist is skipped."""
    files = []
    for a in args:
        if os.path.isdir(a):
            files += [os.path.join(a, f) for f in sorted(os.listdir(a))]
        elif os.path.exists(a):
            files.append(a)
    return files


def find_ips(paths, needles):
    """Searches every file of |paths| for |needles| (ip_needles): the hits
    as "ADDR as KIND in PATH", and the bytes read."""
    hits, total = [], 0
    for p in paths:
        data = open(p, "rb").read()
        total += len(data)
        hits += ["%s as %s in %s" % (v, kind, p) for v, kind, n in needles if n in data]
    return hits, total


def _main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="POST one body to the gateway and print the answer")
    ap.add_argument("file", help="body file ('-' = stdin)")
    ap.add_argument("--cert", default="nimble-01")
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--path", default="/v1/stats")
    ap.add_argument("--method", default="POST")
    ap.add_argument("--no-alpn", action="store_true")
    a = ap.parse_args(argv)
    body = sys.stdin.buffer.read() if a.file == "-" else open(a.file, "rb").read()
    c = connect(a.cert, port=a.port, alpn=None if a.no_alpn else ("h2",))
    r = c.request(body, method=a.method, path=a.path)
    print(r.status)
    for k, v in r.headers.items():
        print("%s: %s" % (k, v))
    print()
    sys.stdout.write(r.body.decode("utf-8", "replace") + "\n")
    c.close()
    return 0 if r.status and r.status < 300 else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
