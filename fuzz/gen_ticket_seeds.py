#!/usr/bin/env python3
"""gen_ticket_seeds.py DIR - seeds for fuzz_gw_ticket.

First byte even: a ticket key file (good ones, with comments, blanks, tabs
and upper-case hex; and bad ones: wrong magic, short or long fields, a
duplicate line, equal names).  First byte odd: a session ticket in
ticket.c's layout (name, IV, length, ciphertext, tag) under the fuzz
target's fixed key names, with consistent and inconsistent lengths.  The
tickets do not authenticate (the generator has no AES-GCM): the fuzzer
starts from the layout.  Files are named by their SHA-1.
"""
import hashlib
import os
import struct
import sys

K = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
M = "panelgate-ticket-keys 1\n"

files = [
    M + f"current 0badc0de 1800000000 {K}\n",
    M + f"current 0badc0de 1800000000 {K}\nprevious 0ddba11a 1799990000 {K}\n",
    "# comment\n\n  " + M + f"current\t0BADC0DE  1700000000 {K}\n",
    M + f"current 0badc0de 1 {K}\nprevious 0badc0de 2 {K}\n",
    M + f"current 0badc0de 1800000000 {K}\ncurrent 0badc0de 1800000000 {K}\n",
    M + f"current 0badc0d 1800000000 {K}\n",
    M + f"current 0badc0de -1 {K}\n",
    M + f"current 0badc0de 99999999999999999999 {K}\n",
    M + f"current 0badc0de 1800000000 {K[:-2]}\n",
    M + "previous 0badc0de 1800000000 " + K + "\n",
    "panelgate-ticket-keys 2\n",
    "",
]

tickets = []
for name in (b"\x0b\xad\xc0\xde", b"\x0d\xdb\xa1\x1a", b"\x00\x00\x00\x00"):
    for n in (0, 1, 120, 600):
        body = bytes((i * 7 + 3) & 0xFF for i in range(n))
        tickets.append(name + bytes(range(12)) + struct.pack(">H", n) + body + bytes(16))
base = tickets[2]
tickets += [base[:-1], base + b"\x00", base[:17], b"", bytes(33)]


def write(d, data):
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def main():
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    for t in files:
        write(d, b"\x00" + t.encode())
    for t in tickets:
        write(d, b"\x01" + t)


if __name__ == "__main__":
    main()
