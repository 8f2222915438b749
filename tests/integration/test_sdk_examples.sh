#!/usr/bin/env bash
# test_sdk_examples.sh - the example agents and the C++/Java bindings
# against a real gateway on loopback.
#
# - nimble-agent (C++, panelagent.hpp; registered as kind nimble, with the
#   gateway pin) and wowza-agent (Java/JNI; kind wowza, with a seq file)
#   each deliver --count 3 frames: exit 0, one "ack" line per frame, the
#   rows stored under the right server (ids from panelgatectl list --json)
#   with the acked seqs, the stream tree of each simulated server in the
#   stored body, their viewer sessions reduced to aggregates.
# - None of the viewer IPs the agents used (given with --viewer-ips) is in
#   the database files (during and after the run) or in the gateway log,
#   as text or binary; a server address is (the control).
# - SIGTERM stops an agent cleanly (exit 0, every frame acked); a gateway
#   that is not there gives exit 1 with EUNDELIVERED lines.
# - The bindings' check programs (panelagent-hpp-check,
#   panelagent-java-check): builder rejections with their codes, QueueFull,
#   undelivered frames at close, callbacks that throw, then real delivery.
# In a sanitizer build (PANELGATE_SANITIZE in CMakeCache.txt) the JVM runs
# with the compiler's ASan runtime preloaded (an instrumented JNI library
# needs it first in the process) and ASan's SEGV handling and leak check
# off (the JVM uses SIGSEGV itself, and exits without freeing); when that
# cannot work (no shared libasan, or a probe run fails) the Java parts are
# skipped with the reason; in a ThreadSanitizer build (PANELGATE_TSAN)
# they are skipped.  The C++ parts always run.
. "$(dirname "$0")/lib.sh"

CTL=${PANELGATECTL:-$PANELGATE_BUILD_DIR/bin/panelgatectl}
NIMBLE_AGENT=${NIMBLE_AGENT:-$PANELGATE_BUILD_DIR/bin/nimble-agent}
WOWZA_AGENT=${WOWZA_AGENT:-$PANELGATE_BUILD_DIR/bin/wowza-agent}
HPP_CHECK=${PANELAGENT_HPP_CHECK:-$PANELGATE_BUILD_DIR/bin/panelagent-hpp-check}
JAVA_CHECK=${PANELAGENT_JAVA_CHECK:-$PANELGATE_BUILD_DIR/bin/panelagent-java-check}
[[ -x $CTL ]] || fatal "no panelgatectl at $CTL"
[[ -x $NIMBLE_AGENT ]] || fatal "no nimble-agent at $NIMBLE_AGENT (target nimble_agent)"
[[ -x $HPP_CHECK ]] || fatal "no panelagent-hpp-check at $HPP_CHECK"

JAVA=1
JAVA_ENV=(env) # prefix of every command that starts a JVM
SANITIZE=0
grep -q '^PANELGATE_SANITIZE:BOOL=ON' "$PANELGATE_BUILD_DIR/CMakeCache.txt" 2>/dev/null && SANITIZE=1
TSAN=0
grep -q '^PANELGATE_TSAN:BOOL=ON' "$PANELGATE_BUILD_DIR/CMakeCache.txt" 2>/dev/null && TSAN=1
if [[ ! -x $WOWZA_AGENT || ! -x $JAVA_CHECK ]]; then
    JAVA=0
    note "SKIP Java parts: no wowza-agent / panelagent-java-check (no JDK at configure time)"
elif ((TSAN)); then
    # the TSan runtime must start before the first thread; the JVM's
    # threads all exist before it loads libpanelagent
    JAVA=0
    note "SKIP Java parts: ThreadSanitizer build (its runtime cannot be loaded into a running JVM)"
elif ((SANITIZE)); then
    cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$PANELGATE_BUILD_DIR/CMakeCache.txt")
    asan=$("${cc:-cc}" -print-file-name=libasan.so 2>/dev/null) || asan=
    if [[ $asan == /* && -e $asan ]]; then
        JAVA_ENV=(env "LD_PRELOAD=$asan" "ASAN_OPTIONS=handle_segv=0:allow_user_segv_handler=1:detect_leaks=0")
        note "sanitizer build: the JVM runs with LD_PRELOAD=$asan"
    else
        JAVA=0
        note "SKIP Java parts: sanitizer build and no shared ASan runtime of ${cc:-cc} to preload into the JVM"
    fi
fi

bash "$PANELGATE_SOURCE_DIR/certs/dev-pki.sh" "$PKI" >"$T/pki.log" 2>&1 ||
    { cat "$T/pki.log"; fatal "dev PKI (certs/dev-pki.sh)"; }
gw_config
gw_start
# a port where nothing listens
DEAD_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# ctl ARGS...: panelgatectl on the gateway's database; stdout in $T/ctl.out.
ctl() { "$CTL" --db "$PG_DB" --actor test_sdk_examples "$@" >"$T/ctl.out" 2>"$T/ctl.err"; }
check "panelgatectl register nimble-01 --kind nimble --cert" ctl register nimble-01 --kind nimble --cert "$PKI/nimble-01.crt"
check "panelgatectl register wowza-01 --kind wowza --cert" ctl register wowza-01 --kind wowza --cert "$PKI/wowza-01.crt"
gw_reload
ctl list --json || fatal "panelgatectl list --json: $(cat "$T/ctl.err")"
read -r NIMBLE_ID WOWZA_ID < <("$PY" -c '
import json, sys
by = {s["name"]: s for s in json.load(open(sys.argv[1]))}
assert by["nimble-01"]["kind"] == "nimble" and by["wowza-01"]["kind"] == "wowza", by
print(by["nimble-01"]["id"], by["wowza-01"]["id"])' "$T/ctl.out") || fatal "ids from panelgatectl list --json"
note "nimble-01 is server $NIMBLE_ID, wowza-01 is server $WOWZA_ID"
check "two different server ids" test "$NIMBLE_ID" != "$WOWZA_ID"

# Distinctive viewer addresses for each agent (documentation ranges; the
# simulated servers' own addresses are 192.0.2.10/20 and 2001:db8:ffff::10/20).
printf '%s\n' 203.0.113.151 203.0.113.152 198.51.100.153 2001:db8:51:151::1 2001:db8:51:152::2 \
    2001:db8:51:153:15:1:5:3 >"$T/nimble-ips.txt"
printf '%s\n' 198.51.100.161 203.0.113.162 198.51.100.163 2001:db8:61:161::1 2001:db8:61:162::2 \
    2001:db8:61:163:16:1:6:3 >"$T/wowza-ips.txt"
GW_PIN=$(spki "$PKI/gateway.crt")
COMMON=(--gateway "127.0.0.1:$GW_PORT" --ca "$PKI/ca.crt" --name localhost --interval 0.2
    --count 3 --streams 5 --viewers 30 --close-timeout 20)

# run_agent NAME OUT CMD...: runs an agent (bounded), sets AGENT_RC.
run_agent() {
    local name=$1 out=$2
    shift 2
    AGENT_RC=0
    timeout 120 "$@" >"$out" 2>"$out.err" || AGENT_RC=$?
    note "$name: exit $AGENT_RC; last lines:"
    tail -n 4 "$out" | sed 's/^/#   /'
    [[ -s $out.err ]] && sed 's/^/#   stderr: /' "$out.err" | head -n 20
    return 0
}

acked_seqs() { sed -nE 's/^ack seq=([0-9]+)$/\1/p' "$1" | sort -n | tr '\n' ' '; }

# ---- nimble-agent (C++) --------------------------------------------------------------------
run_agent nimble-agent "$T/nimble.out" "$NIMBLE_AGENT" "${COMMON[@]}" \
    --cert "$PKI/nimble-01.crt" --key "$PKI/nimble-01.key" --pin "$GW_PIN" \
    --server-name nimble-sim-01 --viewer-ips "$T/nimble-ips.txt"
check_eq "nimble-agent --count 3: exit 0" "$AGENT_RC" 0
check_eq "nimble-agent: 3 ack lines" "$(grep -c '^ack seq=' "$T/nimble.out")" 3
check_eq "nimble-agent: no error line" "$(grep -c '^error ' "$T/nimble.out")" 0
NIMBLE_SEQS=$(acked_seqs "$T/nimble.out")

# ---- wowza-agent (Java) --------------------------------------------------------------------
WOWZA_SEQS=
if ((JAVA && SANITIZE)); then
    # can this JVM host the instrumented JNI library?  A run that loads it and
    # reports to a port where nothing listens must end normally, with exit 1.
    probe_rc=0
    "${JAVA_ENV[@]}" timeout 120 "$WOWZA_AGENT" --gateway "127.0.0.1:$DEAD_PORT" --ca "$PKI/ca.crt" \
        --cert "$PKI/wowza-01.crt" --key "$PKI/wowza-01.key" --count 1 --close-timeout 0.1 \
        >"$T/probe.out" 2>&1 || probe_rc=$?
    if ((probe_rc != 1)) || ! grep -q '^done: built=1 ' "$T/probe.out"; then
        JAVA=0
        note "SKIP Java parts: the JVM cannot host the ASan-instrumented JNI library (probe exit $probe_rc):"
        head -n 5 "$T/probe.out" | sed 's/^/#   /'
    fi
fi
if ((JAVA)); then
    run_agent wowza-agent "$T/wowza.out" "${JAVA_ENV[@]}" "$WOWZA_AGENT" "${COMMON[@]}" \
        --cert "$PKI/wowza-01.crt" --key "$PKI/wowza-01.key" --seq-file "$T/wowza.seq" \
        --server-name wowza-sim-01 --viewer-ips "$T/wowza-ips.txt"
    check_eq "wowza-agent --count 3: exit 0" "$AGENT_RC" 0
    check_eq "wowza-agent: 3 ack lines" "$(grep -c '^ack seq=' "$T/wowza.out")" 3
    check_eq "wowza-agent: no error line" "$(grep -c '^error ' "$T/wowza.out")" 0
    WOWZA_SEQS=$(acked_seqs "$T/wowza.out")
    check "wowza-agent: --seq-file written" test -s "$T/wowza.seq"
fi

# snapshot the database files while the gateway runs (the WAL has the pages)
mkdir -p "$T/live"
for f in "$PG_DB" "$PG_DB-wal" "$PG_DB-shm"; do [[ -e $f ]] && cp "$f" "$T/live/"; done

export NIMBLE_ID WOWZA_ID NIMBLE_SEQS WOWZA_SEQS JAVA PG_DB
py_checks - <<'EOF'
import os, sqlite3
import h2client as hc

ok = hc.Checks()
db = sqlite3.connect(os.environ["PG_DB"])
db.execute("PRAGMA busy_timeout = 10000")

def tree(body):
    """{(vhost, app, instance, stream): (viewers, bitrate, in, out)}"""
    t = {}
    for v in body.get("vhosts", []):
        for a in v.get("apps", []):
            for i in a.get("instances", []):
                for s in i.get("streams", []):
                    t[(v["name"], a["name"], i["name"], s["name"])] = (s["viewers"], s["bitrate"], s["in"], s["out"])
    return t

agents = [("nimble", int(os.environ["NIMBLE_ID"]), os.environ["NIMBLE_SEQS"], "nimble-sim-01")]
if os.environ["JAVA"] == "1":
    agents.append(("wowza", int(os.environ["WOWZA_ID"]), os.environ["WOWZA_SEQS"], "wowza-sim-01"))
for kind, sid, seqs, name in agents:
    acked = sorted(int(s) for s in seqs.split())
    rows = db.execute("SELECT seq, reported_name, body FROM frames WHERE server_id = ? ORDER BY seq",
                      (sid,)).fetchall()
    ok([r[0] for r in rows] == acked and len(acked) == 3,
       "%s-agent: exactly its 3 acked seqs are stored under server %d" % (kind, sid),
       ([r[0] for r in rows], acked))
    other = db.execute("SELECT count(*) FROM frames WHERE server_id <> ? AND reported_name = ?",
                       (sid, name)).fetchone()[0]
    ok(other == 0, "%s-agent: no frame of it under another server" % kind, other)
    ok(all(r[1] == name for r in rows), "%s-agent: reported_name is --server-name %s" % (kind, name))
    for seq, _, blob in rows:
        b = hc.unpack(blob)
        t = tree(b)
        ok(b["server"]["kind"] == kind and b["server"]["version"].startswith(kind + "-agent/"),
           "%s seq %d: server.kind %s, version %s" % (kind, seq, b["server"]["kind"], b["server"]["version"]))
        if kind == "nimble":
            want = {("default", "live", "_definst_", "live/stream1"), ("default", "abr", "_definst_", "abr/stream2"),
                    ("default", "sport", "_definst_", "sport/stream3"), ("default", "live", "_definst_", "live/stream4"),
                    ("default", "abr", "_definst_", "abr/stream5")}
        else:
            want = {("_defaultVHost_", "live", "_definst_", "myStream"),
                    ("_defaultVHost_", "live", "_definst_", "myStream_720p"),
                    ("_defaultVHost_", "live", "_definst_", "myStream_480p"),
                    ("_defaultVHost_", "live", "studio", "interview"),
                    ("_defaultVHost_", "vod", "_definst_", "mp4:sample.mp4")}
        ok(set(t) == want, "%s seq %d: the stream tree of the simulated server" % (kind, seq), sorted(t))
        viewers = sum(v[0] for v in t.values())
        conns = sum(a["conns"] for a in b.get("viewers", []))
        ok("conns" not in b and conns == viewers and viewers <= 30,
           "%s seq %d: %d viewer sessions stored only as aggregates (%d conns)" % (kind, seq, viewers, conns),
           b.get("viewers"))
        ok(all(v[1] > 100000 for v in t.values()) and b["load"]["ram_total"] > 0 and 0 <= b["load"]["cpu"] <= 100,
           "%s seq %d: plausible bitrates and load" % (kind, seq), b["load"])
        ok(b["traffic"]["out"] == sum(v[3] for v in t.values()),
           "%s seq %d: traffic.out is the streams' sum" % (kind, seq))
        ok("config" in b and b["config"].get("product", "").lower().startswith(kind),
           "%s seq %d: the server's config map is stored" % (kind, seq), b.get("config"))
    if len(rows) == 3:
        first, later = hc.unpack(rows[0][2]), [hc.unpack(r[2]) for r in rows[1:]]
        ok(first["traffic"]["period_ms"] == 0 and all(150 <= l["traffic"]["period_ms"] <= 5000 for l in later),
           "%s: the first frame covers no period, the next ones the interval" % kind,
           [first["traffic"]["period_ms"]] + [l["traffic"]["period_ms"] for l in later])
EOF

# ---- signals and an absent gateway ---------------------------------------------------------
# stop_agent NAME OUT CMD...: starts an agent with no --count, waits for 2
# acks, sends SIGTERM; checks a clean exit 0.
stop_agent() {
    local name=$1 out=$2 pid rc=0
    shift 2
    "$@" >"$out" 2>"$out.err" &
    pid=$!
    BG_PIDS+=("$pid")
    if ! wait_until 60 _acks_at_least "$out" 2; then
        not_ok "$name: 2 acks within 60 s (without --count)"
        kill -KILL "$pid" 2>/dev/null || true
        return 0
    fi
    kill -TERM "$pid"
    if ! wait_until 30 not_alive "$pid"; then
        not_ok "$name: exits within 30 s of SIGTERM"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    check_eq "$name: SIGTERM -> clean stop, exit 0 (every frame acked)" "$rc" 0
    check "$name: said it stopped on the signal" grep -q '^signal: stopping' "$out"
    local built acked
    built=$(sed -nE 's/^done: built=([0-9]+) acked=([0-9]+) .*/\1/p' "$out")
    acked=$(sed -nE 's/^done: built=([0-9]+) acked=([0-9]+) .*/\2/p' "$out")
    check "$name: done line with built = acked ($built/$acked)" test -n "$built" -a "$built" = "$acked"
}
_acks_at_least() { (($(grep -c '^ack seq=' "$1" 2>/dev/null || true) >= $2)); }

SIGNAL_ARGS=(--gateway "127.0.0.1:$GW_PORT" --ca "$PKI/ca.crt" --name localhost --interval 0.3
    --viewers 5 --close-timeout 20)
stop_agent nimble-agent "$T/nimble-sig.out" "$NIMBLE_AGENT" "${SIGNAL_ARGS[@]}" \
    --cert "$PKI/nimble-01.crt" --key "$PKI/nimble-01.key" --viewer-ips "$T/nimble-ips.txt"
((JAVA)) && stop_agent wowza-agent "$T/wowza-sig.out" "${JAVA_ENV[@]}" "$WOWZA_AGENT" "${SIGNAL_ARGS[@]}" \
    --cert "$PKI/wowza-01.crt" --key "$PKI/wowza-01.key" --viewer-ips "$T/wowza-ips.txt"

DEAD_ARGS=(--gateway "127.0.0.1:$DEAD_PORT" --ca "$PKI/ca.crt" --name localhost --count 2 --interval 0.1
    --close-timeout 0.5)
run_agent "nimble-agent (no gateway)" "$T/nimble-dead.out" "$NIMBLE_AGENT" "${DEAD_ARGS[@]}" \
    --cert "$PKI/nimble-01.crt" --key "$PKI/nimble-01.key" --viewer-ips "$T/nimble-ips.txt"
check_eq "nimble-agent, no gateway: exit 1" "$AGENT_RC" 1
check_eq "nimble-agent, no gateway: 2 EUNDELIVERED lines" \
    "$(grep -c '^error seq=[1-9][0-9]* code=PANELAGENT_EUNDELIVERED' "$T/nimble-dead.out")" 2
if ((JAVA)); then
    run_agent "wowza-agent (no gateway)" "$T/wowza-dead.out" "${JAVA_ENV[@]}" "$WOWZA_AGENT" "${DEAD_ARGS[@]}" \
        --cert "$PKI/wowza-01.crt" --key "$PKI/wowza-01.key" --viewer-ips "$T/wowza-ips.txt"
    check_eq "wowza-agent, no gateway: exit 1" "$AGENT_RC" 1
    check_eq "wowza-agent, no gateway: 2 EUNDELIVERED lines" \
        "$(grep -c '^error seq=[1-9][0-9]* code=PANELAGENT_EUNDELIVERED' "$T/wowza-dead.out")" 2
fi
run_agent "nimble-agent (bad usage)" "$T/nimble-usage.out" "$NIMBLE_AGENT" --gateway nowhere
check_eq "nimble-agent without --ca/--cert/--key: exit 64" "$AGENT_RC" 64
run_agent "nimble-agent --help" "$T/nimble-help.out" "$NIMBLE_AGENT" --help
check_eq "nimble-agent --help: exit 0" "$AGENT_RC" 0
check "nimble-agent --help describes every option" grep -q -- '--close-timeout S' "$T/nimble-help.out"
if ((JAVA)); then
    run_agent "wowza-agent --help" "$T/wowza-help.out" "${JAVA_ENV[@]}" "$WOWZA_AGENT" --help
    check_eq "wowza-agent --help: exit 0" "$AGENT_RC" 0
    check "wowza-agent --help describes every option" grep -q -- '--viewer-ips FILE' "$T/wowza-help.out"
fi

# ---- the bindings' check programs -----------------------------------------------------------
# tally_prog NAME CMD...: runs a check program and counts its ok/not ok lines.
tally_prog() {
    local name=$1 out=$T/$1.out rc=0
    shift
    note "$name"
    timeout 180 "$@" >"$out" 2>&1 || rc=$?
    py_tally "$out" "$rc"
    ((rc == 0)) || not_ok "$name: exit $rc"
}
CHECK_ARGS=(--ca "$PKI/ca.crt" --dead-port "$DEAD_PORT" --gateway "127.0.0.1:$GW_PORT" --gateway-name localhost)
tally_prog panelagent-hpp-check "$HPP_CHECK" "${CHECK_ARGS[@]}" \
    --cert "$PKI/nimble-01.crt" --key "$PKI/nimble-01.key"
if ((JAVA)); then
    tally_prog panelagent-java-check "${JAVA_ENV[@]}" "$JAVA_CHECK" "${CHECK_ARGS[@]}" \
        --cert "$PKI/wowza-01.crt" --key "$PKI/wowza-01.key"
    check "java -Xcheck:jni reported no JNI misuse" bash -c "! grep -E 'WARNING in native method|FATAL ERROR in native method' '$T/panelagent-java-check.out'"
fi

# ---- no viewer IP anywhere ------------------------------------------------------------------
gw_stop_check
cat "$T/nimble-ips.txt" >"$T/viewer-ips.txt"
((JAVA)) && cat "$T/wowza-ips.txt" >>"$T/viewer-ips.txt"
# the agents' own output too: they print counts, never addresses
py_checks - "$T/viewer-ips.txt" "$T/live" "$PG_DB" "$PG_DB-wal" "$PG_DB-shm" "$GW_LOG" "$T/gw.out" \
    "$T"/{nimble,wowza}{,-sig,-dead}.out{,.err} <<'EOF'
import ipaddress, os, sys
import h2client as hc

ok = hc.Checks()
viewers = [l.strip() for l in open(sys.argv[1]) if l.strip()]
files = hc.files_of(sys.argv[2:])
needles = hc.ip_needles(viewers)
print("# searching %d files for %d viewer IPs (%d patterns)" % (len(files), len(viewers), len(needles)))
blobs = {p: open(p, "rb").read() for p in files}
for path, data in blobs.items():
    hits = ["%s as %s" % (v, k) for v, k, n in needles if n in data]
    ok(not hits, "no viewer IP in %s (%d bytes)" % (os.path.relpath(path, os.path.dirname(os.environ["PG_DB"])),
                                                   len(data)), hits[:5])
ctl = ipaddress.ip_address("192.0.2.10").packed
ok(any(ctl in d for d in blobs.values()),
   "control: nimble-agent's own address 192.0.2.10 (server.ips) is found as binary")
EOF

finish
