#!/usr/bin/python3
"""Seeds for fuzz_gw_h2: client HTTP/2 byte streams (without the preface,
which the target sends itself), made with python3-h2.

    /usr/bin/python3 fuzz/gen_h2_seeds.py FRAME.msgpack OUTDIR

FRAME.msgpack is one valid encoded frame (panelagent encode < sample.json).
Files are named by the SHA-1 of their content.
"""
import hashlib
import os
import sys

import h2.config
import h2.connection

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def post(path=b"/v1/stats", ctype=b"application/msgpack", method=b"POST", extra=()):
    return [(b":method", method), (b":scheme", b"https"), (b":path", path),
            (b":authority", b"localhost"), (b"content-type", ctype), *extra]


def session(requests, tail=None):
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    for headers, body, chunk, trailers in requests:
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, headers, end_stream=body is None and trailers is None)
        if body is not None:
            for i in range(0, max(len(body), 1), chunk):
                last = i + chunk >= len(body) and trailers is None
                c.send_data(sid, body[i:i + chunk], end_stream=last)
        if trailers is not None:
            c.send_headers(sid, trailers, end_stream=True)
    if tail:
        tail(c)
    out = c.data_to_send()
    assert out.startswith(PREFACE)
    return out[len(PREFACE):]


def main():
    frame = open(sys.argv[1], "rb").read()
    outdir = sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    seeds = [
        session([(post(), frame, 16384, None)]),
        session([(post(), frame, 1000, None), (post(), frame[:100], 50, None)]),
        session([(post(method=b"GET"), None, 0, None)]),
        session([(post(path=b"/"), b"x", 1, None)]),
        session([(post(ctype=b"text/plain"), frame[:64], 64, None)]),
        session([(post(extra=[(b"content-length", str(len(frame)).encode())]), frame, 4096,
                  None)]),
        session([(post(), frame, 8192, [(b"x-trailer", b"1")])]),
        session([(post(extra=[(b"x-big", b"a" * 20000)]), frame[:10], 10, None)]),
        session([(post(), b"", 1, None)]),
        session([], tail=lambda c: (c.ping(b"12345678"),
                                   c.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 0}))),
        session([(post(), frame[:500], 100, None)],
                tail=lambda c: c.reset_stream(1)),
    ]
    for s in seeds:
        name = hashlib.sha1(s).hexdigest()
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(s)
    print(f"{len(seeds)} seeds in {outdir}")


if __name__ == "__main__":
    main()
