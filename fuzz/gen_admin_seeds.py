#!/usr/bin/env python3
"""gen_admin_seeds.py DIR - seed requests for fuzz_gw_admin.

Each file is one send-mode byte (0: whole; 0x80 | n: chunks of n + 1
bytes) and the bytes of one connection to the admin listener: GET and
HEAD of /metrics and /healthz in HTTP/1.0 and 1.1, a query, an absolute
URI, percent-encoding, an unknown path, methods it refuses, a body it does
not read, pipelined requests, folded, long and bad headers, bare LF line
ends, a bad version.  Files are named by their SHA-1, like the other
corpora.
"""
import hashlib
import os
import sys

CRLF = b"\r\n"


def req(line, headers=(b"Host: 127.0.0.1",), body=b"", eol=CRLF):
    return line + eol + b"".join(h + eol for h in headers) + eol + body


def main(out):
    os.makedirs(out, exist_ok=True)
    seeds = [
        b"\x00" + req(b"GET /metrics HTTP/1.1"),
        b"\x00" + req(b"GET /healthz HTTP/1.0", ()),
        b"\x00" + req(b"HEAD /healthz HTTP/1.1"),
        b"\x00" + req(b"GET /metrics?name[]=x&y=%00 HTTP/1.1"),
        b"\x00" + req(b"GET http://127.0.0.1:8445/healthz HTTP/1.1"),
        b"\x00" + req(b"GET /%6detrics HTTP/1.1"),
        b"\x00" + req(b"GET /../metrics/ HTTP/1.1"),
        b"\x00" + req(b"GET / HTTP/1.1", (b"Host: x", b"Connection: close")),
        b"\x00" + req(b"POST /metrics HTTP/1.1", (b"Content-Length: 5",), b"hello"),
        b"\x00" + req(b"PUT /healthz HTTP/1.1", (b"Transfer-Encoding: chunked",),
                      b"5\r\nhello\r\n0\r\n\r\n"),
        b"\x00" + req(b"OPTIONS * HTTP/1.1"),
        b"\x00" + req(b"CONNECT 127.0.0.1:1 HTTP/1.1"),
        b"\x00" + req(b"GET /metrics HTTP/1.1") + req(b"HEAD /healthz HTTP/1.1"),
        b"\x00" + req(b"GET /metrics HTTP/1.1", (b"Host: x", b"X-A: one", b" folded two")),
        b"\x00" + req(b"GET /metrics HTTP/1.1", (b"X-Long: " + b"a" * 9000,)),
        b"\x00" + req(b"GET /healthz HTTP/1.1", (b"NoColon",)),
        b"\x00" + req(b"GET /healthz HTTP/1.1", (b"Host: x",), eol=b"\n"),
        b"\x00" + req(b"GET /healthz HTTP/9.9"),
        b"\x00" + req(b"GET /healthz"),
        b"\x00" + b"GET /metrics HTTP/1.1\r\nHost: x\r\n",      # ends inside the headers
        b"\x85" + req(b"GET /metrics HTTP/1.1", (b"Host: x", b"Accept: */*")),
        b"\x80" + req(b"GET /healthz HTTP/1.1"),                 # one byte at a time
    ]
    for data in seeds:
        name = hashlib.sha1(data).hexdigest()
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(seeds)} seeds in {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/gw_admin")
