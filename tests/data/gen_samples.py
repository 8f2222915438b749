#!/usr/bin/python3
"""Generates the sample stats frames nimble.json and wowza.json.

Deterministic (fixed seeds), standard library only:
    /usr/bin/python3 tests/data/gen_samples.py [outdir]
Viewer and server addresses come from the documentation ranges
(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32).
"""
import ipaddress
import json
import os
import random
import sys

V4_NETS = ("192.0.2", "198.51.100", "203.0.113")
PERIOD_MS = 5000


# The servers' own addresses (server.ips): never used for a viewer, so a
# privacy test can look for every viewer IP in what the gateway stored.
SERVER_IPS = {"198.51.100.23", "2001:db8:100::23", "203.0.113.10", "192.0.2.77",
              "2001:db8:200::10"}


def viewer_ip(rng):
    while True:
        if rng.random() < 0.7:
            ip = "%s.%d" % (rng.choice(V4_NETS), rng.randint(1, 254))
        else:
            groups = [0x2001, 0x0DB8] + [rng.choice((0, rng.randint(1, 0xFFFF)))
                                         for _ in range(6)]
            ip = ipaddress.IPv6Address(":".join("%x" % g for g in groups)).compressed
        if ip not in SERVER_IPS:
            return ip


def stream(rng, name, viewers, kbps):
    bitrate = kbps * 1000 + rng.randint(-50, 50) * 1000
    sec = PERIOD_MS // 1000
    return {"name": name, "viewers": viewers, "bitrate": bitrate,
            "in": bitrate * sec // 8, "out": viewers * bitrate * sec // 8}


def conns(rng, n, kbps):
    out = []
    for _ in range(n):
        out.append({"ip": viewer_ip(rng), "in": rng.randint(200, 6000),
                    "out": rng.randint(kbps // 4, kbps * 2) * 1000 * PERIOD_MS // 8000})
    return out


def split(rng, total, parts):
    """total viewers spread over parts streams (each >= 1)."""
    cuts = sorted(rng.sample(range(1, total), parts - 1))
    return [b - a for a, b in zip([0] + cuts, cuts + [total])]


def totals(frame):
    streams = [s for vh in frame["vhosts"] for app in vh["apps"]
               for inst in app["instances"] for s in inst.get("streams", [])]
    frame["traffic"]["in"] = sum(s["in"] for s in streams) + sum(c["in"] for c in frame["conns"])
    frame["traffic"]["out"] = sum(c["out"] for c in frame["conns"])


def nimble():
    rng = random.Random(4102)
    n = 300
    cams = ["live/cam%d" % i for i in range(1, 7)]
    abr = ["abr/show_1080p", "abr/show_720p", "abr/show_480p"]
    views = split(rng, n, len(cams) + len(abr))
    frame = {
        "v": 1, "seq": 48213, "ts": 1754990000000,
        "server": {"name": "edge-fra-03.example.net",
                   "ips": ["198.51.100.23", "2001:db8:100::23"],
                   "kind": "nimble", "version": "4.1.0-2"},
        "load": {"cpu": 37.25, "ram_used": 6442450944, "ram_total": 17179869184},
        "traffic": {"in": 0, "out": 0, "period_ms": PERIOD_MS},
        "config": {"cache_size_mb": 2048, "rtmp_port": 1935, "ssl_port": 443,
                   "worker_threads": 8, "hls": {"chunk_ms": 6000, "chunks": 3},
                   "dash": {"enabled": False}, "abr": {"renditions": ["1080p", "720p", "480p"]}},
        "vhosts": [{"name": "_defaultVHost_", "apps": [
            {"name": "live", "instances": [{"name": "_definst_", "streams": [
                stream(rng, c, v, 4500) for c, v in zip(cams, views)]}]},
            {"name": "abr", "instances": [{"name": "_definst_", "streams": [
                stream(rng, s, v, k) for s, v, k in zip(abr, views[len(cams):], (6000, 3000, 1200))]}]},
        ]}],
        "conns": conns(rng, n, 4500),
    }
    totals(frame)
    return frame


def wowza():
    rng = random.Random(4827)
    n = 250
    views = split(rng, n, 6)
    frame = {
        "v": 1, "seq": 917, "ts": 1754990002500,
        "server": {"name": "wse-ams-01.example.org",
                   "ips": ["203.0.113.10", "192.0.2.77", "2001:db8:200::10"],
                   "kind": "wowza", "version": "4.8.27"},
        "load": {"cpu": 61.5, "ram_used": 11811160064, "ram_total": 34359738368},
        "traffic": {"in": 0, "out": 0, "period_ms": PERIOD_MS},
        "config": {
            "vhosts": {"_defaultVHost_": {"applications": ["live", "vod", "dvr"],
                                          "host_ports": [1935, 443, 8086],
                                          "idle_timeout_s": -1}},
            "transcoder": {"enabled": True, "profiles": ["720p", "480p"]},
            "max_connections": 5000,
            "java_heap_mb": 8192,
            "load_balancer": {"weight": 0.75, "redirect": None},
            "dvr": {"window_s": 7200, "store": "/usr/local/WowzaStreamingEngine/dvr"},
        },
        "vhosts": [{"name": "_defaultVHost_", "apps": [
            {"name": "live", "instances": [
                {"name": "_definst_", "streams": [
                    stream(rng, "myStream", views[0], 3500),
                    stream(rng, "myStream_720p", views[1], 2500),
                    stream(rng, "myStream_480p", views[2], 1200)]},
                {"name": "studio", "streams": [stream(rng, "interview", views[3], 3000)]}]},
            {"name": "vod", "instances": [{"name": "_definst_", "streams": [
                stream(rng, "mp4:sample.mp4", views[4], 1800)]}]},
            {"name": "dvr", "instances": [
                {"name": "_definst_", "streams": [stream(rng, "camA", views[5], 2000)]},
                {"name": "archive"}]},
        ]}],
        "conns": conns(rng, n, 2500),
    }
    totals(frame)
    return frame


def dump(v, level=0):
    """Indented JSON, with scalars, flat objects and scalar lists on one line."""
    leaf = lambda x: not isinstance(x, (dict, list))
    items = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
    if items is None or all(leaf(x) for x in items):
        return json.dumps(v, separators=(", ", ": "))
    pad = "  " * (level + 1)
    if isinstance(v, dict):
        body = ["%s%s: %s" % (pad, json.dumps(k), dump(x, level + 1)) for k, x in v.items()]
        return "{\n" + ",\n".join(body) + "\n" + "  " * level + "}"
    body = [pad + dump(x, level + 1) for x in v]
    return "[\n" + ",\n".join(body) + "\n" + "  " * level + "]"


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for name, make in (("nimble", nimble), ("wowza", wowza)):
        with open(os.path.join(outdir, name + ".json"), "w") as f:
            f.write(dump(make()) + "\n")


if __name__ == "__main__":
    main()
