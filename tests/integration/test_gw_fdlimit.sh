#!/usr/bin/env bash
# test_gw_fdlimit.sh - file descriptors (issue 11: at the fd limit the loop
# spun at ~98 % CPU and wrote millions of accept_failed lines, 421 MB in
# 10 s).
#   - a max_connections that cannot fit the open-files limit is refused at
#     start (exit 78, the reason names max_connections), --check-config too;
#   - a soft limit below the hard one is raised to it;
#   - out of descriptors at run time (the limit lowered under the running
#     gateway with prlimit, 200 idle TCP connections): the gateway uses
#     little CPU, logs accept_failed a few times (not thousands), and once
#     the idle connections are gone an agent is served again.
. "$(dirname "$0")/lib.sh"

make_pki
gw_config "[server]" "max_connections = 1000" "handshake_timeout_ms = 60000"

# ---- the limit at start ---------------------------------------------------------------
rc=0
(ulimit -n 512 && exec "$PG_BIN" --config "$GW_CONF" --check-config) >"$T/check.out" 2>&1 || rc=$?
check_eq "max_connections 1000 with ulimit -n 512: --check-config exits 78" "$rc" 78
check "... and says why: $(head -c 200 "$T/check.out")" grep -q 'max_connections = 1000 needs 1064 file descriptors' "$T/check.out"
rc=0
(ulimit -n 512 && exec timeout 10 "$PG_BIN" --config "$GW_CONF") >"$T/start.out" 2>&1 || rc=$?
check_eq "... and the gateway does not start (exit 78)" "$rc" 78

# a soft limit under the hard one is raised
GW_PID=
(ulimit -Sn 256 && ulimit -Hn 4096 && exec "$PG_BIN" --config "$GW_CONF") >>"$T/gw.out" 2>>"$GW_LOG" &
GW_PID=$!
export PG_GW_PID=$GW_PID
wait_until "$PG_TIMEOUT" gw_ready 0 || fatal "gateway started with soft limit 256, hard 4096"
GW_PORT=$(awk '$1 == "127.0.0.1" { print $2; exit }' "$T/ports")
export PG_PORT=$GW_PORT PG_HOST=127.0.0.1
soft=$(awk '/^Max open files/ { print $4 }' "/proc/$GW_PID/limits")
check_eq "the soft open-files limit was raised to the hard one" "$soft" 4096
register_defaults

# ---- idle: no thread spins (the sink's writer waits for its next file check
# on a monotonic deadline; on the wrong clock it returned at once, 100 % CPU)
py_checks - <<'EOF_PY'
import os, time
import h2client as hc
ok = hc.Checks()
pid = os.environ["PG_GW_PID"]
hz = os.sysconf("SC_CLK_TCK")
def cpu():
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
c0, t0 = cpu(), time.monotonic()
time.sleep(2.0)
used = (cpu() - c0) / hz / (time.monotonic() - t0)
ok(used < 0.2, "idle, the gateway used %.0f %% of a core (< 20 %%: nothing spins)" % (used * 100))
EOF_PY

# ---- out of descriptors at run time ---------------------------------------------------
prlimit --pid "$GW_PID" --nofile=48:48 || fatal "prlimit on the gateway"
n0=$(log_count '"event":"accept_failed"')
py_checks - <<'EOF_PY'
import os, socket, time
import h2client as hc
ok = hc.Checks()
pid = os.environ["PG_GW_PID"]
hz = os.sysconf("SC_CLK_TCK")
def cpu():
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
socks = []
for _ in range(200):
    s = socket.create_connection(("127.0.0.1", int(os.environ["PG_PORT"])))
    socks.append(s)
time.sleep(0.5)        # the gateway is out of descriptors by now
c0, t0 = cpu(), time.monotonic()
time.sleep(2.0)
used = (cpu() - c0) / hz / (time.monotonic() - t0)
ok(used < 0.5, "out of descriptors with connections waiting: the gateway used %.0f %% of a "
   "core (< 50 %%: it does not spin)" % (used * 100))
for s in socks:
    s.close()
deadline, r = time.monotonic() + 20, None
while time.monotonic() < deadline:
    try:
        c = hc.connect("nimble-01")
        r = c.post(hc.pack(hc.minimal_frame(1)))
        c.close()
        if r.status == 202:
            break
    except Exception as e:
        r = e
    time.sleep(0.3)
ok(getattr(r, "status", None) == 202, "the idle connections gone: an agent is served again (202)", r)
EOF_PY
n=$(( $(log_count '"event":"accept_failed"') - n0 ))
check "accept_failed was logged, and rate-limited: $n lines (1..10)" test "$n" -ge 1 -a "$n" -le 10
check "the line says accepts are paused" grep -q 'out of file descriptors, accepts paused' "$GW_LOG"
gw_stop_check
finish
