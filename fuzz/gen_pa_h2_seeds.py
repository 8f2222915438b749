#!/usr/bin/python3
"""Seeds for fuzz_pa_h2client: what a gateway sends to libpanelagent over
HTTP/2 (after TLS), made with python3-h2 playing the gateway.

    /usr/bin/python3 fuzz/gen_pa_h2_seeds.py OUTDIR

The fuzz target sends three requests first (streams 1, 3, 5 carrying seq
1000, 1001, 1002); each seed is the gateway's side of a session: its
SETTINGS (and the ACK of the client's), then answers on those streams.
Files are named by the SHA-1 of their content.
"""
import hashlib
import os
import sys

import h2.config
import h2.connection
import h2.errors

SEQS = {1: 1000, 3: 1001, 5: 1002}


def gateway():
    """A server connection that has seen the client's three requests."""
    cli = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    cli.initiate_connection()
    for sid in SEQS:
        cli.send_headers(sid, [(":method", "POST"), (":scheme", "https"),
                               (":authority", "gateway.invalid:8443"),
                               (":path", "/v1/stats"),
                               ("content-type", "application/msgpack")])
        cli.send_data(sid, b"frame", end_stream=True)
    srv = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=False, validate_outbound_headers=False))
    srv.initiate_connection()
    srv.receive_data(cli.data_to_send())
    return srv


def ok(srv, sid, seq=None, extra=()):
    seq = SEQS[sid] if seq is None else seq
    srv.send_headers(sid, [(":status", "202"), ("content-type", "application/json"),
                           ("panelgate-ack-seq", str(seq)), *extra])
    srv.send_data(sid, b'{"seq":%d}' % seq, end_stream=True)


def problem(srv, sid, status, ptype, detail, extra=()):
    srv.send_headers(sid, [(":status", str(status)),
                           ("content-type", "application/problem+json"), *extra])
    srv.send_data(sid, b'{"type":"urn:panelgate:problem:%s","title":"t","status":%d,'
                       b'"detail":"%s"}' % (ptype.encode(), status, detail.encode()),
                  end_stream=True)


def seed(build):
    srv = gateway()
    build(srv)
    return srv.data_to_send()


SEEDS = [
    lambda s: [ok(s, sid) for sid in SEQS],
    lambda s: ok(s, 1),
    lambda s: (problem(s, 1, 429, "rate_limited", "frames per second",
                       [("retry-after", "2")]), ok(s, 3), ok(s, 5)),
    lambda s: problem(s, 1, 400, "frame:too_long", "server.name: longer than 255 bytes"),
    lambda s: problem(s, 3, 503, "queue_full", "the queue to storage is full",
                      [("retry-after", "1")]),
    lambda s: problem(s, 1, 500, "internal", "a gateway bug"),
    lambda s: (ok(s, 1), s.close_connection(error_code=h2.errors.ErrorCodes.NO_ERROR,
                                            last_stream_id=1)),
    lambda s: s.close_connection(error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
                                 last_stream_id=0, additional_data=b"rate_limited"),
    lambda s: (s.reset_stream(1, h2.errors.ErrorCodes.REFUSED_STREAM),
               s.reset_stream(3, h2.errors.ErrorCodes.INTERNAL_ERROR), ok(s, 5)),
    lambda s: ok(s, 1, seq=1001),
    lambda s: (s.ping(b"pingpong"), ok(s, 3, extra=[("x-pad", "p" * 3000)])),
]


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    for build in SEEDS:
        data = seed(build)
        with open(os.path.join(outdir, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {outdir}")


if __name__ == "__main__":
    main()
