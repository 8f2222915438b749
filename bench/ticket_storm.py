#!/usr/bin/python3
"""ticket_storm.py BUILD_DIR - the restart storm, with and without a ticket key file.

N registered agents (panelgatectl cert agent bench-NNN) each complete one mTLS
handshake with the gateway and keep their TLS session (a session ticket);
the gateway is restarted (SIGTERM, start again); then all N reconnect at
once (CONCURRENCY handshakes in flight) offering their tickets.  Two modes,
interleaved in each of ROUNDS rounds:

  memory   no [tls] ticket_key_file: the restarted gateway has new keys, so
           every ticket is refused and every agent does a full handshake
  keyfile  [tls] ticket_key_file: the keys survive, the agents resume

Per mode, the median over the rounds of: the wall time until all N have
completed their handshake, the gateway's CPU time spent on the storm
(/proc/PID/task/*/schedstat of the restarted process, every thread, from
"started" to the last handshake) per handshake, and how many resumed
(panelgate_handshakes_total{resumed="true"} on the admin listener, the
server's own count; the client's session_reused agrees).  The gateway runs
pinned to GW_CPU (0), this script and its client threads to LOAD_CPU (1).
The client is Python's ssl (OpenSSL): its cost is on the other core and not
in the gateway's figures.  Handshakes only: no frames are sent.

Knobs (environment): AGENTS (200), CONCURRENCY (32), ROUNDS (3), GW_CPU,
LOAD_CPU, DIR (scratch, default a temporary directory, removed after).
Prints one line per round and mode, then the medians and ratios, and
`uptime` before and after.
"""
import concurrent.futures
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
BIN = os.path.join(BUILD, "bin")
AGENTS = int(os.environ.get("AGENTS", "200"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "32"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
GW_CPU = os.environ.get("GW_CPU", "0")
LOAD_CPU = int(os.environ.get("LOAD_CPU", "1"))


RUNNING = []  # gateways to stop on the way out


def die(msg):
    for p in RUNNING:
        if p.poll() is None:
            p.kill()
            p.wait()
    print(f"ticket_storm.py: {msg}", file=sys.stderr)
    sys.exit(1)


def cpu_s(pid):
    """CPU seconds of every thread of pid: the first field of each
    /proc/PID/task/TID/schedstat (nanoseconds; /proc/PID/stat counts ticks
    of 10 ms, too coarse for a few hundred resumed handshakes)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended meanwhile
    return total / 1e9


class Gateway:
    def __init__(self, conf, log):
        self.conf, self.log, self.proc = conf, log, None

    def start(self):
        d = os.path.dirname(self.conf)
        ports = os.path.join(d, "ports")
        if os.path.exists(ports):
            os.unlink(ports)
        n0 = self.count('"event":"started"')
        self.proc = subprocess.Popen(
            ["taskset", "-c", GW_CPU, os.path.join(BIN, "panelgate"), "--config", self.conf],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "a"))
        RUNNING.append(self.proc)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                die(f"the gateway exited at start (see {self.log})")
            if os.path.exists(ports) and os.path.getsize(ports) > 0 and \
                    self.count('"event":"started"') > n0:
                break
            time.sleep(0.02)
        else:
            die("the gateway did not start within 30 s")
        with open(ports) as f:
            self.port = int(f.readline().split()[1])
        m = re.findall(r'"event":"admin_listening".*:(\d+) \(GET', open(self.log).read())
        self.admin = int(m[-1])

    def count(self, pat):
        try:
            return open(self.log).read().count(pat)
        except FileNotFoundError:
            return 0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def resumed(self):
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=10).read()
        m = re.search(rb'^panelgate_handshakes_total\{resumed="true"\} (\d+)', body, re.M)
        return int(m.group(1)) if m else 0


def handshake(ctx, port, session):
    """One mTLS handshake; returns (session, reused)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            # TLS 1.2: the NewSessionTicket comes with the handshake
            return s.session, s.session_reused


def main():
    for p in ("panelgate", "panelgatectl"):
        if not os.access(os.path.join(BIN, p), os.X_OK):
            die(f"no {BIN}/{p} (build first: make build)")
    os.sched_setaffinity(0, {LOAD_CPU})
    own = "DIR" not in os.environ
    top = os.environ.get("DIR") or tempfile.mkdtemp(prefix="ticket_storm.")
    os.makedirs(top, exist_ok=True)
    pki = os.path.join(top, "pki")
    agents_dir = os.path.join(pki, ".pki", "agents")
    ctl = [os.path.join(BIN, "panelgatectl"), "--pki", os.path.join(pki, ".pki"), "--actor", "bench"]
    try:
        env = dict(os.environ, PANELGATECTL=os.path.join(BIN, "panelgatectl"))
        subprocess.run(["bash", os.path.join(ROOT, "certs", "dev-pki.sh"), pki], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        names = [f"bench-{i:03d}" for i in range(1, AGENTS + 1)]
        for n in names:
            if not os.path.exists(os.path.join(agents_dir, n + ".crt")):
                subprocess.run(ctl + ["cert", "agent", n], check=True, stdout=subprocess.DEVNULL)
        ctxs = []
        for n in names:
            c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            c.maximum_version = ssl.TLSVersion.TLSv1_2
            c.load_verify_locations(os.path.join(pki, "ca.crt"))
            c.load_cert_chain(os.path.join(agents_dir, n + ".crt"), os.path.join(agents_dir, n + ".key"))
            c.set_alpn_protocols(["h2"])
            ctxs.append(c)
        print("# uptime before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
        print(f"# {AGENTS} agents, {CONCURRENCY} handshakes in flight, gateway on cpu {GW_CPU}, "
              f"client on cpu {LOAD_CPU}, {ROUNDS} rounds")
        # the agents registered once, into a template copied for every run
        tdir = os.path.join(top, "template")
        os.makedirs(tdir, exist_ok=True)
        tconf = os.path.join(tdir, "gw.conf")
        with open(tconf, "w") as f:
            f.write(f"[tls]\ncert_file = {pki}/gateway.crt\nkey_file = {pki}/gateway.key\n"
                    f"client_ca_file = {pki}/ca.crt\n[storage]\nsqlite_path = {tdir}/pg.db\n")
        for n in names:
            subprocess.run(ctl + ["--config", tconf, "register", n, "--kind", "nimble", "--cert",
                                  os.path.join(agents_dir, n + ".crt")],
                           check=True, stdout=subprocess.DEVNULL)
        results = {"memory": [], "keyfile": []}
        for rnd in range(1, ROUNDS + 1):
            for mode in ("memory", "keyfile"):
                d = os.path.join(top, f"{mode}.{rnd}")
                shutil.rmtree(d, ignore_errors=True)
                os.makedirs(d)
                conf = os.path.join(d, "gw.conf")
                lines = ["[server]", "listen = 127.0.0.1:0", f"port_file = {d}/ports",
                         "max_connections = 10000",
                         "[tls]", f"cert_file = {pki}/gateway.crt", f"key_file = {pki}/gateway.key",
                         f"client_ca_file = {pki}/ca.crt"]
                if mode == "keyfile":
                    lines.append(f"ticket_key_file = {d}/tickets.key")
                lines += ["[ratelimit]", "frames_per_s = 0", "bytes_per_s = 0",
                          "handshakes_per_s_per_addr = 0",
                          "[admin]", "listen = 127.0.0.1:0", "[log]", "log_level = info",
                          "refusal_log_per_s = 1", "[storage]", f"sqlite_path = {d}/pg.db"]
                with open(conf, "w") as f:
                    f.write("\n".join(lines) + "\n")
                shutil.copy(os.path.join(tdir, "pg.db"), os.path.join(d, "pg.db"))
                gw = Gateway(conf, os.path.join(d, "gw.log"))
                gw.start()
                with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
                    sessions = [s for s, _ in pool.map(lambda i: handshake(ctxs[i], gw.port, None),
                                                       range(AGENTS))]
                gw.stop()
                gw.start()  # the restart
                c0 = cpu_s(gw.proc.pid)
                t0 = time.monotonic()
                with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
                    out = list(pool.map(lambda i: handshake(ctxs[i], gw.port, sessions[i]),
                                        range(AGENTS)))
                wall = time.monotonic() - t0
                cpu = cpu_s(gw.proc.pid) - c0
                resumed = gw.resumed()
                client_reused = sum(1 for _, r in out if r)
                gw.stop()
                r = {"wall_s": wall, "gw_cpu_ms": cpu * 1000, "ms_per_hs": cpu * 1000 / AGENTS,
                     "resumed": resumed, "client_reused": client_reused}
                results[mode].append(r)
                print(f"round={rnd} mode={mode} agents={AGENTS} wall_s={wall:.3f} "
                      f"gw_cpu_ms={cpu * 1000:.0f} gw_ms_per_handshake={cpu * 1000 / AGENTS:.2f} "
                      f"resumed={resumed} client_reused={client_reused}", flush=True)
                shutil.rmtree(d, ignore_errors=True)
        print("# uptime after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
        med = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in results.items()}
        print("| mode | reconnect of all agents (s) | gateway CPU (ms) | CPU per handshake (ms) | resumed |")
        print("| --- | --- | --- | --- | --- |")
        for m in ("memory", "keyfile"):
            x = med[m]
            print(f"| {m} | {x['wall_s']:.2f} | {x['gw_cpu_ms']:.0f} | {x['ms_per_hs']:.2f} | "
                  f"{x['resumed']:.0f} / {AGENTS} |")
        a, b = med["memory"], med["keyfile"]
        print(f"ratios memory/keyfile: wall {a['wall_s'] / b['wall_s']:.1f}x, "
              f"gateway CPU {a['gw_cpu_ms'] / max(b['gw_cpu_ms'], 1e-9):.1f}x")
    finally:
        for p in RUNNING:
            if p.poll() is None:
                p.kill()
                p.wait()
        if own:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
