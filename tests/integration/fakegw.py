#!/usr/bin/python3
"""fakegw.py - a scripted, misbehaving gateway for the SDK's tests
(test_sdk_hostile.sh): mutual TLS with the test PKI's gateway certificate
(client certificates verified against its CA), HTTP/2 with python3-h2, and
one way of breaking the protocol chosen with --scenario:

  ok            202 + panelgate-ack-seq for every request
  goaway-calm   GOAWAY ENHANCE_YOUR_CALM (debug data "rate_limited") right
                after the first request of a connection, then close
  goaway        GOAWAY NO_ERROR (last stream 0) right after the first
                request of a connection, then close
  goaway-error  the same with PROTOCOL_ERROR
  silent        takes the requests, never answers
  rst           RST_STREAM REFUSED_STREAM (odd requests) / INTERNAL_ERROR
                (even ones) instead of an answer
  500           500 problem+json
  storage-rejected  500 problem+json of type storage_rejected (not retryable)
  wrong-ack     202 whose panelgate-ack-seq is the request's seq + 1
  garbage       bytes that are not HTTP/2 right after the TLS handshake
  mute          the TLS handshake, then nothing at all (no SETTINGS)
  huge-headers  202 + the right ack, with ~2 MB of extra header fields
  huge-body     202 + the right ack, with a 32 MiB body
  no-alpn       selects no ALPN protocol
  http1         offers only http/1.1 via ALPN (no overlap with h2), answers
                HTTP/1.1 to whatever comes

The misbehaviour applies to the first --bad N requests (per-request
scenarios) or connections (the others); afterwards the fake behaves like
`ok`, so the test can see the frame delivered in the end.

It writes its port to --port-file and one line per event to stdout:

  accept n=1 t=MS                  (TCP connection accepted)
  conn n=1 t=MS alpn=h2            (TLS handshake done)
  req conn=1 n=1 stream=1 seq=1700000000123 t=MS
  answer conn=1 n=1 what=500 t=MS
  closed conn=1 t=MS

seq is read from the msgpack frame (its "seq" field).  t is milliseconds
since the fake started.

    /usr/bin/python3 fakegw.py --scenario S --pki DIR --port-file F [--bad N]
"""
import argparse
import os
import socket
import ssl
import sys
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

T0 = time.monotonic()
OUT = threading.Lock()
COUNT = threading.Lock()
N_CONNS = 0
N_REQS = 0

CONN_SCENARIOS = {"goaway-calm", "goaway", "goaway-error", "silent", "garbage", "mute", "no-alpn", "http1"}


def now():
    return int((time.monotonic() - T0) * 1000)


def out(line):
    with OUT:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def frame_seq(body):
    """The "seq" field of a msgpack stats frame (the top-level map's)."""
    i = body.find(b"\xa3seq")
    if i < 0:
        return -1
    b, i = body, i + 4
    t = b[i]
    if t <= 0x7F:
        return t
    widths = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
    if t in widths:
        w = widths[t]
        return int.from_bytes(b[i + 1:i + 1 + w], "big")
    return -1


class Conn:
    def __init__(self, sock, n, args):
        self.sock = sock
        self.n = n
        self.args = args
        self.bad_conn = args.scenario in CONN_SCENARIOS and n <= args.bad
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None,
                                      validate_outbound_headers=False,
                                      normalize_outbound_headers=False))
        self.bodies = {}
        self.pending = {}  # stream -> remaining body bytes to send (huge-body)

    def send(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def run(self):
        sc = self.args.scenario
        if self.bad_conn and sc in ("garbage", "mute"):
            if sc == "garbage":
                self.sock.sendall(b"HTTP/1.1 400 Bad Request\r\nx: \xff\xfe\x00garbage\r\n\r\n"
                                  + os.urandom(4096))
            self.drain()
            return
        if self.bad_conn and sc in ("no-alpn", "http1"):
            try:
                data = self.sock.recv(65536)
                if data and sc == "http1":
                    self.sock.sendall(b"HTTP/1.1 505 HTTP Version Not Supported\r\n"
                                      b"content-length: 0\r\nconnection: close\r\n\r\n")
            except (OSError, ssl.SSLError):
                pass
            self.drain()
            return
        self.h2.initiate_connection()
        self.send()
        while True:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (OSError, ssl.SSLError):
                return
            if not data:
                return
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError as e:
                out(f"h2error conn={self.n} what={type(e).__name__} t={now()}")
                return
            for ev in events:
                if self.event(ev) == "close":
                    self.send()
                    return
            self.pump()
            self.send()

    def drain(self):
        """Reads until the client goes (bounded)."""
        self.sock.settimeout(1.0)
        end = time.monotonic() + self.args.linger
        while time.monotonic() < end:
            try:
                if not self.sock.recv(65536):
                    return
            except socket.timeout:
                continue
            except (OSError, ssl.SSLError):
                return

    def event(self, ev):
        global N_REQS
        if isinstance(ev, h2.events.RequestReceived):
            self.bodies[ev.stream_id] = bytearray()
        elif isinstance(ev, h2.events.DataReceived):
            self.bodies.setdefault(ev.stream_id, bytearray()).extend(ev.data)
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            body = bytes(self.bodies.pop(ev.stream_id, b""))
            seq = frame_seq(body)
            with COUNT:
                N_REQS += 1
                k = N_REQS
            out(f"req conn={self.n} n={k} stream={ev.stream_id} seq={seq} t={now()}")
            return self.answer(ev.stream_id, k, seq)
        elif isinstance(ev, h2.events.WindowUpdated):
            pass
        return None

    def respond(self, sid, status, headers=(), body=b""):
        hs = [(b":status", str(status).encode())] + list(headers)
        if body:
            self.h2.send_headers(sid, hs)
            self.pending[sid] = bytearray(body)
        else:
            self.h2.send_headers(sid, hs, end_stream=True)

    def pump(self):
        """Sends what flow control allows of pending bodies."""
        for sid in list(self.pending):
            buf = self.pending[sid]
            while buf:
                try:
                    w = min(self.h2.local_flow_control_window(sid),
                            self.h2.max_outbound_frame_size, len(buf))
                except h2.exceptions.StreamClosedError:
                    buf.clear()
                    break
                if w <= 0:
                    break
                self.h2.send_data(sid, bytes(buf[:w]), end_stream=len(buf) == w)
                del buf[:w]
                self.send()
            if not buf:
                del self.pending[sid]

    def ok(self, sid, seq, extra=(), body=None):
        ack = str(seq).encode()
        self.respond(sid, 202, [(b"content-type", b"application/json"),
                                (b"panelgate-ack-seq", ack)] + list(extra),
                     body if body is not None else b'{"seq":' + ack + b"}")

    def answer(self, sid, k, seq):
        sc, bad = self.args.scenario, None
        if sc in CONN_SCENARIOS:
            bad = self.bad_conn
        else:
            bad = k <= self.args.bad
        what = sc if bad and sc != "ok" else "202"
        out(f"answer conn={self.n} n={k} what={what} t={now()}")
        if not bad or sc == "ok":
            self.ok(sid, seq)
        elif sc == "goaway-calm":
            self.h2.close_connection(error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
                                     last_stream_id=0, additional_data=b"rate_limited")
            return "close"
        elif sc in ("goaway", "goaway-error"):
            code = (h2.errors.ErrorCodes.NO_ERROR if sc == "goaway" else
                    h2.errors.ErrorCodes.PROTOCOL_ERROR)
            self.h2.close_connection(error_code=code, last_stream_id=0)
            return "close"
        elif sc == "silent":
            pass
        elif sc == "rst":
            code = (h2.errors.ErrorCodes.REFUSED_STREAM if k % 2 else
                    h2.errors.ErrorCodes.INTERNAL_ERROR)
            self.h2.reset_stream(sid, error_code=code)
        elif sc == "500":
            self.respond(sid, 500, [(b"content-type", b"application/problem+json")],
                         b'{"type":"urn:panelgate:problem:internal","title":"Internal",'
                         b'"status":500,"detail":"fake failure"}')
        elif sc == "storage-rejected":
            self.respond(sid, 500, [(b"content-type", b"application/problem+json")],
                         b'{"type":"urn:panelgate:problem:storage_rejected",'
                         b'"title":"storage rejected the frame","status":500,'
                         b'"detail":"the frame could not be stored and will not be on a retry"}')
        elif sc == "wrong-ack":
            self.ok(sid, seq + 1)
        elif sc == "huge-headers":
            extra = [(b"x-pad-%d" % i, b"p" * 500) for i in range(4000)]
            self.ok(sid, seq, extra)
        elif sc == "huge-body":
            self.ok(sid, seq, body=b"b" * (32 << 20))
        return None


def serve(args):
    global N_CONNS
    pki = args.pki

    def ctx(alpn):
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        c.load_cert_chain(os.path.join(pki, "gateway.crt"), os.path.join(pki, "gateway.key"))
        c.load_verify_locations(os.path.join(pki, "ca.crt"))
        c.verify_mode = ssl.CERT_REQUIRED
        if alpn:
            c.set_alpn_protocols(alpn)
        return c

    good = ctx(["h2"])
    bad = {"no-alpn": ctx(None), "http1": ctx(["http/1.1"])}.get(args.scenario, good)

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(tmp, args.port_file)

    def one(raw, n):
        c = bad if n <= args.bad else good
        try:
            raw.settimeout(10)
            s = c.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as e:
            out(f"tlsfail n={n} t={now()} why={str(e)[:80]!r}")
            raw.close()
            return
        s.settimeout(1.0)
        out(f"conn n={n} t={now()} alpn={s.selected_alpn_protocol()}")
        try:
            Conn(s, n, args).run()
        except (OSError, ssl.SSLError, h2.exceptions.H2Error) as e:
            out(f"connerror conn={n} t={now()} why={type(e).__name__}")
        finally:
            out(f"closed conn={n} t={now()}")
            try:
                s.close()
            except OSError:
                pass

    while True:
        raw, _ = ls.accept()
        with COUNT:
            N_CONNS += 1
            n = N_CONNS
        out(f"accept n={n} t={now()}")
        threading.Thread(target=one, args=(raw, n), daemon=True).start()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--scenario", required=True)
    p.add_argument("--pki", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--bad", type=int, default=1)
    p.add_argument("--linger", type=float, default=30.0)
    args = p.parse_args()
    serve(args)


if __name__ == "__main__":
    main()
