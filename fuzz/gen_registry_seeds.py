#!/usr/bin/env python3
"""gen_registry_seeds.py DIR - seed row lists for fuzz_gw_registry.

Each file is a schema byte and records in fuzz_gw_registry.c's format
(a server: op 1 and id, name, kind, status; a pin: op 0 and spki,
server_id, not_after; each value a type byte and its bytes): registries
that load (active and revoked servers, pins with and without expiry, a
probe chain of colliding pins, the real schema), and ones that must not
(a pin twice, a 31-byte pin, a pin as TEXT, a bad kind or status, an
empty name, a NUL inside a name, "active" with a byte after it, servers
sharing an id, a table or column missing).  Files are named by their
SHA-1, like the other corpora.
"""
import hashlib
import os
import struct
import sys

NULL = b"\x00"


def small(v):
    return b"\x01" + struct.pack("b", v)


def i64(v):
    return b"\x02" + struct.pack("<q", v)


def real(v):
    return b"\x03" + struct.pack("<d", v)


def text(b):
    return b"\x04" + bytes([len(b)]) + b


def blob(b):
    return b"\x05" + bytes([len(b)]) + b


GOOD = {"nimble": 0, "wowza": 1, "active": 2, "revoked": 3, "edge-1": 4, "a": 5}


def good(word, as_blob=False):
    return b"\x06" + bytes([GOOD[word] | (0x80 if as_blob else 0)])


def pin(k):
    return b"\x07" + bytes([k])


def server(id_, name, kind=None, status=None):
    return (b"\x01" + id_ + name + (kind or good("nimble")) +
            (status or good("active")))


def pinrow(spki, sid, not_after=NULL):
    return b"\x00" + spki + sid + not_after


def main(out):
    os.makedirs(out, exist_ok=True)
    ok = server(small(1), good("edge-1")) + pinrow(pin(1), small(1))
    seeds = [
        b"\x00" + ok,
        b"\x01" + ok,                                          # the real schema
        b"\x00" + server(small(1), text(b"edge-1"), good("wowza"), good("revoked")) +
        pinrow(pin(2), small(1), i64(1900000000)) + pinrow(pin(3), small(1), small(-5)),
        b"\x00" + server(small(2), good("a"), good("nimble", True), good("active", True)) +
        b"".join(pinrow(pin(0x80 | k), small(2)) for k in range(1, 9)),  # one probe chain
        b"\x00" + ok + pinrow(pin(1), small(1)),               # a pin twice
        b"\x00" + server(small(1), good("a")) + pinrow(blob(b"\x01" * 31), small(1)),
        b"\x00" + server(small(1), good("a")) + pinrow(text(b"\x01" * 32), small(1)),
        b"\x00" + server(small(1), good("a"), text(b"nginx")) + pinrow(pin(4), small(1)),
        b"\x00" + server(small(1), good("a"), None, text(b"gone")) + pinrow(pin(4), small(1)),
        b"\x00" + server(small(1), text(b"")) + pinrow(pin(5), small(1)),
        b"\x00" + server(small(1), text(b"edge\x00evil")) + pinrow(pin(5), small(1)),
        b"\x00" + server(small(1), good("a"), None, text(b"active\x00x")) +
        pinrow(pin(5), small(1)),
        b"\x00" + server(small(1), good("a"), blob(b"wowza\x00")) + pinrow(pin(5), small(1)),
        b"\x00" + server(small(1), text(b"x" * 255)) + pinrow(pin(6), small(1), real(1e300)),
        b"\x00" + server(small(1), good("a")) + server(small(1), good("edge-1")) +
        pinrow(pin(7), small(1)),                              # servers sharing an id
        b"\x00" + server(small(1), good("a")) + pinrow(pin(8), small(9)),  # an orphan pin
        b"\x02" + ok,                                          # no server_pins
        b"\x03" + ok,                                          # no status column
    ]
    for data in seeds:
        name = hashlib.sha1(data).hexdigest()
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(seeds)} seeds in {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/gw_registry")
