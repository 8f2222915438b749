#!/usr/bin/python3
"""Seeds for fuzz_pa_h2client: programs of the target's operations (see the
comment at the top of fuzz/fuzz_pa_h2client.c for the format), each the
gateway's side of a session with the client's three requests (streams 1,
3, 5 carrying seq 1000, 1001, 1002): its SETTINGS and the ACK of the
client's, then answers on those streams.

    python3 fuzz/gen_pa_h2_seeds.py OUTDIR

Files are named by the SHA-1 of their content.  Keep the tables below in
step with the ones in the target.
"""
import hashlib
import os
import sys

# op numbers (low 4 bits of an op byte; the variant goes in the high 4)
SETTINGS, SETTINGS_ACK, HEADERS, CONTINUATION, DATA, RST, GOAWAY, PING = range(8)
WINDOW_UPDATE, PUSH_PROMISE, PRIORITY, OTHER, RAW, FEED, SUBMIT, ANSWER = range(8, 16)

STREAM = {1: 0, 3: 1, 5: 2, 7: 6, 9: 7, 0: 8, 2: 9, 4: 10, 11: 11}  # pick_stream()
CODE = {"NO_ERROR": 0, "PROTOCOL_ERROR": 1, "INTERNAL_ERROR": 2, "REFUSED_STREAM": 4,
        "ENHANCE_YOUR_CALM": 6}                                     # pick_code()
GOAWAY_LAST = {0: 0, 1: 1, 3: 2, 5: 3, 7: 4}
PROBLEM_STATUS = {400: 0, 429: 1, 503: 2, 500: 3, 413: 4, 408: 5, 401: 6, 404: 7}
PROBLEM_TYPE = {"rate_limited": 0, "queue_full": 1, "storage_rejected": 2,
                "frame:too_long": 3, "internal": 4, "not_registered": 5}
STATUS = {"202": 0, "400": 3, "429": 4, "503": 5, "500": 6, "200": 12, "100": 14}
SETTING_VALUE = {100: 3, 65535: 6, 16384: 5, 1 << 20: 8}


def op(kind, v=0):
    return bytes([kind | v << 4])


def problem(ptype, form=0, detail=0):
    return bytes([form | PROBLEM_TYPE[ptype] << 2 | detail << 5])


def server_settings():
    """MAX_CONCURRENT_STREAMS 100, INITIAL_WINDOW_SIZE 65535, then the ACK."""
    return (op(SETTINGS) + bytes([2, 3, SETTING_VALUE[100], 4, SETTING_VALUE[65535]]) +
            op(SETTINGS_ACK))


def ok(sid):
    return op(ANSWER) + bytes([STREAM[sid]])


def fail(sid, status, ptype, detail=0):
    """A problem answer; 429, 500, 408 and 404 come with retry-after: 1."""
    v = 1 | PROBLEM_STATUS[status] << 1
    return op(ANSWER, v) + bytes([STREAM[sid]]) + problem(ptype, detail=detail)


def headers(sid, status, ctype=None, ack=None, retry=None, pad=None, v=0, first=None):
    """HEADERS: ack is ("stream",) for the stream's seq or ("seq", n) for 1000 + n."""
    h = 0
    tail = b""
    if ctype is not None:
        h |= 1 | ctype << 1
    if ack is not None:
        h |= 8
        tail += bytes([0]) if ack[0] == "stream" else bytes([1, ack[1]])
    if retry is not None:
        h |= 32
        tail += bytes([retry])
    if pad is not None:
        h |= 64
        tail += bytes([pad])
    if first is not None:
        tail += bytes([first])
    return op(HEADERS, v) + bytes([STREAM[sid], STATUS[status], h]) + tail


def data_seq(sid, end=True):
    return op(DATA, 1 if end else 0) + bytes([STREAM[sid], 1])


def data_fill(sid, n, end=True, v=0):
    return op(DATA, v | (1 if end else 0)) + bytes([STREAM[sid], 3, n >> 8, n & 255])


def rst(sid, code):
    return op(RST) + bytes([STREAM[sid], CODE[code]])


def goaway(last, code, calm=False):
    return op(GOAWAY, 1 if calm else 0) + bytes([GOAWAY_LAST[last], CODE[code]])


PRE = server_settings()

SEEDS = [
    # the eleven sessions of the first seeds
    PRE + ok(1) + ok(3) + ok(5),
    PRE + ok(1),
    PRE + fail(1, 429, "rate_limited") + ok(3) + ok(5),
    PRE + fail(1, 400, "frame:too_long"),
    PRE + fail(3, 503, "queue_full"),
    PRE + fail(1, 500, "internal"),
    PRE + ok(1) + goaway(1, "NO_ERROR"),
    PRE + goaway(0, "ENHANCE_YOUR_CALM", calm=True),
    PRE + rst(1, "REFUSED_STREAM") + rst(3, "INTERNAL_ERROR") + ok(5),
    PRE + headers(1, "202", ctype=0, ack=("seq", 1)) + data_seq(1),
    PRE + op(PING) + b"pingpong" + headers(3, "202", ctype=0, ack=("stream",), pad=10) +
    data_seq(3),
    # and what they did not reach
    PRE + fail(1, 500, "storage_rejected") + fail(3, 401, "not_registered", detail=1),
    PRE + headers(1, "202", ctype=0, ack=("stream",), v=2, first=3) + op(CONTINUATION) +
    bytes([0]) + data_seq(1),
    PRE + headers(1, "100") + headers(1, "202", ctype=0, ack=("stream",)) + data_seq(1),
    PRE + ok(1) + op(FEED) + op(SUBMIT) + ok(7) + ok(3) + op(SUBMIT) + ok(9),
    PRE + headers(1, "202", ctype=0, ack=("stream",)) + data_fill(1, 40000, end=False) +
    op(FEED) + data_fill(1, 30000),
    PRE + op(WINDOW_UPDATE) + bytes([4]) + op(PUSH_PROMISE) + bytes([STREAM[1], STREAM[2]]),
    PRE + headers(5, "429", ctype=1, retry=3) + op(DATA, 1) + bytes([STREAM[5], 0]) +
    problem("rate_limited", form=1),
    PRE + goaway(3, "NO_ERROR") + ok(1) + ok(3) + ok(5) + op(SUBMIT),
    # two 37 KB headers in HEADERS + CONTINUATIONs of 16 KB: past the client's cap
    PRE + headers(1, "202", ctype=0, ack=("stream",), pad=250, v=2, first=0) +
    (op(CONTINUATION) + bytes([255])) * 5,
    b"",
]


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    for data in SEEDS:
        with open(os.path.join(outdir, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {outdir}")


if __name__ == "__main__":
    main()
