#!/usr/bin/env python3
"""gen_hello_seeds.py DIR - seed ClientHello records for fuzz_gw_hello.

Each file is one chunk-size byte followed by a TLS record: ClientHellos
with and without ALPN (with h2, without h2), SNI, empty extensions, a
session id, compression methods with and without null, and a record that
ends before the extensions.  Files are named by their SHA-1, like the
other corpora.
"""
import hashlib
import os
import struct
import sys


def ext(t, data=b""):
    return struct.pack(">HH", t, len(data)) + data


def alpn(*names):
    lst = b"".join(bytes([len(n)]) + n for n in names)
    return ext(16, struct.pack(">H", len(lst)) + lst)


def hello(exts=None, sid=b"", cm=b"\x00", rec_cut=None):
    body = b"\x03\x03" + bytes(range(32)) + bytes([len(sid)]) + sid
    body += struct.pack(">H", 4) + b"\xcc\xa9\xc0\x2b" + bytes([len(cm)]) + cm
    if exts is not None:
        e = b"".join(exts)
        body += struct.pack(">H", len(e)) + e
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    rec_len = len(hs) if rec_cut is None else rec_cut
    return b"\x16\x03\x01" + struct.pack(">H", rec_len) + hs


def main(out):
    os.makedirs(out, exist_ok=True)
    sni = ext(0, b"\x00\x09\x00\x00\x06gw.lan")
    seeds = [
        hello([sni, alpn(b"h2", b"http/1.1"), ext(23)]),
        hello([alpn(b"http/1.1")]),
        hello([ext(23), alpn(b"h2c", b"h2x", b"h")], sid=b"\xaa" * 32),
        hello([]),
        hello(None),
        hello([alpn(b"h2")], cm=b"\x01"),
        hello([alpn(b"h2")], cm=b"\x01\x00"),
        hello([alpn(b"h2")], rec_cut=44),
        hello([ext(0x3374, b"\x00\x03\x02h2")]),
    ]
    for i, s in enumerate(seeds):
        data = bytes([i * 5]) + s
        name = hashlib.sha1(data).hexdigest()
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/gw_hello")
