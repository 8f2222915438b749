#!/usr/bin/env python3
"""peers_report.py OUT LATDIR BENCHMARKS.md PLOTDIR - bench/run_peers.sh's
report: the medians over the rounds of each scenario on each server, the
ratios against nghttpd and h2o, and PNG plots (throughput against
connections, the ack-latency distribution) when matplotlib is there.

OUT holds "# ..." header lines and one line per measurement:
"<round> <scenario> <server> panelgate-bench k=v k=v ...".  LATDIR holds
lat.<scenario>.<server>.r<round>: one latency (us) a line, sorted.
"""
import os
import statistics
import sys

SERVERS = ["panelgate", "nghttpd", "h2o"]


def load(path):
    head, rows = [], {}
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("#"):
            head.append(line[2:])
            continue
        parts = line.split()
        if len(parts) < 4 or parts[3] != "panelgate-bench":
            continue
        kv = dict(p.split("=", 1) for p in parts[4:] if "=" in p)
        rows.setdefault((parts[1], parts[2]), []).append(kv)
    return head, rows


def med(rows, key):
    vals = []
    for kv in rows:
        try:
            vals.append(float(kv[key]))
        except (KeyError, ValueError):
            pass
    return statistics.median(vals) if vals else None


def fmt(v, nd=0):
    if v is None:
        return "–"
    if nd == 0:
        return f"{v:,.0f}".replace(",", " ")
    return f"{v:.{nd}f}"


def table(hdr, lines):
    out = ["| " + " | ".join(hdr) + " |", "| " + " | ".join("---" for _ in hdr) + " |"]
    out += ["| " + " | ".join(l) + " |" for l in lines]
    return "\n".join(out)


def main():
    out_path, lat_dir, md_path, plot_dir = sys.argv[1:5]
    head, rows = load(out_path)
    scen = []
    for (sc, _s) in rows:
        if sc not in scen:
            scen.append(sc)
    servers = [s for s in SERVERS if any(k[1] == s for k in rows)]
    nrounds = max(len(v) for v in rows.values()) if rows else 0
    m = {(sc, s, k): med(v, k) for (sc, s), v in rows.items() for k in
         ["acks_per_s", "gw_cpu_us_per_frame", "gw_frames_per_core", "lat_ms_p50",
          "lat_ms_p99", "lat_ms_p999", "gw_cpu", "loadgen_cpu", "gw_kb_per_conn",
          "gw_hwm_kb", "frame_bytes", "storm_s", "storm_attempts", "storm_failed",
          "storm_handshakes", "storm_resumed", "storm_gw_cpu_s", "storm_loadgen_cpu_s", "r503", "err_closed",
          "err_timeout", "err_handshake", "clients"]}

    def g(sc, s, k):
        return m.get((sc, s, k))

    md = []
    md.append("# Benchmarks: panelgate beside nghttpd and h2o\n")
    md.append("Written by `bench/run_peers.sh` (`make bench-peers`) through bench/peers_report.py; "
              "the figures below are from the run whose header follows. Nothing here is "
              "asserted by the test suite (`integration_bench_loadgen` only checks that "
              "panelgate-bench works and reports).\n")
    md.append("## Machine and method\n")
    md.append("```\n" + "\n".join(head) + "\n```\n")
    md.append(
        "- Load: `panelgate-bench` (bench/panelgate_bench.c), one thread, mbedTLS + nghttp2, "
        "real client certificates (`IDENTITIES` registered agents, 100 by default, the connections "
        "spread over them), "
        "a fresh `seq` per frame, pinned to core 1; each server alone on core 0 "
        "(`taskset`), one worker thread; every connection offers only "
        "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256 (TLS 1.2), the suite the gateway "
        "negotiates, so all three pay the same record cipher.\n"
        "- panelgate: as it is on this branch (sqlite engine, `sqlite_synchronous = full`, "
        "geo databases of 20 networks, rate limits off), a fresh copy of a database with the "
        "agents registered for each measurement; its CPU is every thread's (loop and SQLite "
        "writer). nghttpd (nghttp2-server) serves an empty file at /v1/stats (200; it asks "
        "for the client certificate but does not verify it); h2o 2.2 answers a fixed 202 "
        "from an mruby handler (this version has no setting to ask for client certificates, so its "
        "handshakes are cheaper). They store nothing: they are the floor of HTTP/2 over TLS "
        "on this machine, not competitors.\n"
        f"- {nrounds} rounds; in each round every scenario runs on every server in turn "
        "(interleaved), each on a freshly started server; medians over the rounds. CPU and "
        "memory from /proc/PID/stat and /proc/PID/status. `µs/frame` is the server's CPU "
        "time over the window divided by the frames acknowledged in it; `per core` is "
        "frames/s divided by the server's CPU seconds per second.\n")
    md.append("Re-run: `make build && bash bench/run_peers.sh` (ROUNDS, DURATION, WARMUP, "
              "CONNS_LIST, FLEET, FLEET_RATE, SERVERS, SCENARIOS in the environment; see the "
              "script's header).\n")

    thr = [sc for sc in scen if sc.startswith("c") or sc in ("small", "large")]
    if thr:
        md.append("## Throughput: as fast as acks allow\n")
        md.append("N connections × 10 frames in flight each; the typical frame is ≈ 2 KiB "
                  "(6 streams, 50 viewer connections), small ≈ 0.5 KiB, large ≈ 10 KiB.\n")
        lines = []
        for sc in thr:
            for s in servers:
                if g(sc, s, "acks_per_s") is None:
                    continue
                lines.append([sc, s, fmt(g(sc, s, "frame_bytes")), fmt(g(sc, s, "acks_per_s")),
                              fmt(g(sc, s, "gw_cpu"), 2), fmt(g(sc, s, "gw_cpu_us_per_frame"), 1),
                              fmt(g(sc, s, "gw_frames_per_core")), fmt(g(sc, s, "lat_ms_p50"), 2),
                              fmt(g(sc, s, "lat_ms_p99"), 2), fmt(g(sc, s, "lat_ms_p999"), 2),
                              fmt(g(sc, s, "r503")), fmt(g(sc, s, "loadgen_cpu"), 2)])
        md.append(table(["scenario", "server", "bytes", "frames/s", "server CPU", "µs/frame",
                         "per core", "p50 ms", "p99 ms", "p999 ms", "503s", "load CPU"], lines)
                  + "\n")
        lines = []
        for sc in thr:
            pg = g(sc, "panelgate", "gw_cpu_us_per_frame")
            if pg is None:
                continue
            row = [sc]
            for s in ("nghttpd", "h2o"):
                o = g(sc, s, "gw_cpu_us_per_frame")
                row.append(fmt(pg / o, 1) + "×" if o else "–")
            for s in ("nghttpd", "h2o"):
                o = g(sc, s, "gw_frames_per_core")
                p = g(sc, "panelgate", "gw_frames_per_core")
                row.append(fmt(p / o, 2) if o and p else "–")
            lines.append(row)
        md.append("Ratios (panelgate's CPU per frame against theirs; panelgate's frames per "
                  "core as a fraction of theirs):\n")
        md.append(table(["scenario", "µs/frame vs nghttpd", "vs h2o", "per core vs nghttpd",
                         "vs h2o"], lines) + "\n")

    if "fleet" in scen:
        md.append("## A fleet at a fixed rate\n")
        c = g("fleet", servers[0], "clients")
        md.append(f"{fmt(c)} connections, each sending one frame at a fixed rate, one in "
                  "flight: the share of one core the server needs, the ack latency, and the "
                  "memory a connected agent costs (VmRSS after the window minus before the "
                  "first connection, per connection).\n")
        lines = []
        for s in servers:
            lines.append([s, fmt(g("fleet", s, "acks_per_s")), fmt(100 * (g("fleet", s, "gw_cpu") or 0), 1) + " %",
                          fmt(g("fleet", s, "gw_cpu_us_per_frame"), 1), fmt(g("fleet", s, "lat_ms_p50"), 2),
                          fmt(g("fleet", s, "lat_ms_p99"), 2), fmt(g("fleet", s, "lat_ms_p999"), 2),
                          fmt(g("fleet", s, "gw_kb_per_conn"), 1), fmt((g("fleet", s, "gw_hwm_kb") or 0) / 1024, 1)])
        md.append(table(["server", "frames/s", "of one core", "µs/frame", "p50 ms", "p99 ms",
                         "p999 ms", "KB per connection", "peak RSS MB"], lines) + "\n")

    st = [sc for sc in scen if sc.startswith("storm")]
    if st:
        md.append("## Reconnect storms\n")
        md.append("100 connected agents; every connection dropped at once and all reopened at "
                  "once, without (full) or with (resume) the TLS session each had; until every "
                  "one has a frame acknowledged again. An attempt abandoned after 10 s or "
                  "refused is retried after 100–200 ms. `CPU/handshake` is the server's CPU "
                  "over the storm divided by the handshakes completed in it (frames included); "
                  "`generator's ms` the same for panelgate-bench's own side (– in a run made "
                  "before it reported it).\n")
        lines = []
        for sc in st:
            for s in servers:
                hs = g(sc, s, "storm_handshakes")
                cpu = g(sc, s, "storm_gw_cpu_s")
                lcpu = g(sc, s, "storm_loadgen_cpu_s")
                lines.append([sc, s, fmt(g(sc, s, "storm_s"), 3), fmt(g(sc, s, "storm_attempts")),
                              fmt(g(sc, s, "storm_failed")), fmt(hs), fmt(g(sc, s, "storm_resumed")),
                              fmt(1e3 * cpu / hs, 2) if hs and cpu is not None else "–",
                              fmt(1e3 * lcpu / hs, 2) if hs and lcpu is not None else "–",
                              fmt(hs / g(sc, s, "storm_s"), 0) if hs and g(sc, s, "storm_s") else "–"])
        md.append(table(["storm", "server", "seconds", "attempts", "failed", "handshakes",
                         "resumed", "CPU/handshake ms", "generator's ms", "handshakes/s"], lines)
                  + "\n")

    plots = []
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        os.makedirs(plot_dir, exist_ok=True)
        conn_sc = sorted((sc for sc in scen if sc.startswith("c") and sc[1:].isdigit()),
                         key=lambda x: int(x[1:]))
        if conn_sc:
            fig, ax = plt.subplots(1, 2, figsize=(10, 4))
            for s in servers:
                xs = [int(sc[1:]) for sc in conn_sc if g(sc, s, "acks_per_s")]
                ax[0].plot(xs, [g(f"c{x}", s, "acks_per_s") for x in xs], "o-", label=s)
                ax[1].plot(xs, [g(f"c{x}", s, "gw_cpu_us_per_frame") for x in xs], "o-", label=s)
            for a, t in zip(ax, ["frames/s (server pinned to core 0)", "server CPU µs per frame"]):
                a.set_xscale("log")
                a.set_xlabel("connections (× 10 in flight)")
                a.set_title(t)
                a.grid(True, alpha=0.3)
                a.legend()
            fig.tight_layout()
            fig.savefig(os.path.join(plot_dir, "throughput_vs_connections.png"), dpi=90)
            plt.close(fig)
            plots.append(("throughput_vs_connections.png",
                          "Throughput and CPU per frame against connections (typical frame)"))
        lat_sc = "c100" if "c100" in scen else (conn_sc[-1] if conn_sc else None)
        if lat_sc:
            fig, ax = plt.subplots(figsize=(6, 4))
            drawn = 0
            for s in servers:
                files = sorted(f for f in os.listdir(lat_dir) if f.startswith(f"lat.{lat_sc}.{s}.r")) \
                    if os.path.isdir(lat_dir) else []
                if not files:
                    continue
                vals = sorted(int(x) for x in open(os.path.join(lat_dir, files[-1])) if x.strip())
                if not vals:
                    continue
                n = len(vals)
                ax.plot([v / 1e3 for v in vals], [(i + 1) / n for i in range(n)], label=s)
                drawn += 1
            ax.set_xscale("log")
            ax.set_xlabel("ack latency, ms (request sent to answer complete)")
            ax.set_ylabel("fraction of frames")
            ax.set_title(f"Ack latency distribution, {lat_sc[1:]} connections × 10 (last round)")
            ax.grid(True, alpha=0.3)
            if drawn:
                ax.legend()
            fig.tight_layout()
            if drawn:  # else (a report made again without the latencies) keep the PNG
                fig.savefig(os.path.join(plot_dir, "ack_latency_cdf.png"), dpi=90)
            plt.close(fig)
            if os.path.exists(os.path.join(plot_dir, "ack_latency_cdf.png")):
                plots.append(("ack_latency_cdf.png", "Ack latency distribution (CDF)"))
    except ImportError:
        md.append("(No plots: python3-matplotlib is not installed.)\n")
    if plots:
        md.append("## Plots\n")
        rel = os.path.relpath(plot_dir, os.path.dirname(os.path.abspath(md_path)))
        for f, t in plots:
            md.append(f"![{t}]({rel}/{f})\n")
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "BENCHMARKS.notes.md")
    if os.path.exists(notes):
        md.append(open(notes).read())
    with open(md_path, "w") as f:
        f.write("\n".join(md))


if __name__ == "__main__":
    main()
