#!/usr/bin/env bash
# test_gw_jetstream.sh - the JetStream engine on a real 3-node cluster
# (issue 12): storage_engine = jetstream, replicas 3.
#  1. Two agents send frames (some seqs twice): every 202 seq is in the
#     stream exactly once (read back with jstool, libnats alone), with the
#     contract's subject and headers; a resend is 202 too.
#  2. One node is killed (-9) under load and restarted: the agents see only
#     202 and 503; no acknowledged frame is missing.
#  3. All nodes are killed: POST is 503 with retry-after, /healthz 503;
#     they come back: delivery resumes; every seq never acknowledged is
#     resent (same seq): all 202, and the stream holds each sent seq exactly
#     once (the duplicate window drops what had landed unacknowledged).
#  4. No viewer IP in the store directories, the gateway's log or the
#     nodes' logs (text and binary forms; a control finds a server IP).
#  5. A stream that exists with other replicas makes the start fail with
#     both values named.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nats.sh"

JSTOOL=${JSTOOL:-$PANELGATE_BUILD_DIR/bin/jstool}
[[ -x $JSTOOL ]] || fatal "jstool built ($JSTOOL)"
STREAM=PGTEST
PREFIX=pgtest.frames

make_pki
nats_cluster_start 3
js_config() {
    gw_config "[storage]" "storage_engine = jetstream" "retry_after_s = 2" \
        "[jetstream]" "servers = $NATS_URLS" "stream = ${1:-$STREAM}" \
        "subject_prefix = ${2:-$PREFIX}" "replicas = 3" "publish_timeout_ms = 3000" \
        "connect_timeout_ms = 3000" "max_in_flight = 64"
}
js_config
# the registry is the cluster's bucket: there before the gateway starts
kv_register_defaults
gw_start
check "the gateway created the stream and is ready" wait_log '"event":"jetstream_ready"' 1 5
# stopped before its first frame: nothing was ever published (libnats 3.4
# then has no table of pending publishes, and asking it for one crashed)
gw_stop
check_eq "stopped before any frame: exits 0" "$GW_RC" 0
gw_start
check "started again: the stream is there" wait_log '"event":"jetstream_ready"' 2 5
export PG_STATE=$T/state
mkdir -p "$PG_STATE"

# clients.py send NAME SECONDS: two agents (nimble-01, wowza-01), 8 frames in
#   flight each, distinct seqs, for SECONDS (or until $PG_STATE/stop);
#   every seq is written to NAME.<cert>.sent before it is sent, to .acked on
#   its 202, to .refused on its 503 (which must carry retry-after).  Any
#   other answer is a failure.  The first 20 acked seqs are sent once more
#   and must get 202 again (duplicate).
# clients.py resend: every sent and unacknowledged seq, again, until 202.
cat >"$T/clients.py" <<'EOF'
import glob, os, sys, threading, time
import h2client as hc

ST = os.environ["PG_STATE"]
CERTS = ["nimble-01", "wowza-01"]
IN_FLIGHT = 8
template = hc.load_frame("wowza.json")


def body(seq, cert):
    d = dict(template, seq=seq)
    d["server"] = dict(template["server"], kind="nimble" if cert.startswith("nimble") else "wowza")
    return hc.pack(d)


def send(name, seconds):
    bad = []
    counts = {"acked": 0, "refused": 0, "dup": 0}
    lock = threading.Lock()

    def client(i, cert):
        base = {"steady": 1, "kill1": 2, "down": 3}[name] * 10000000 + (i + 1) * 1000000
        files = {k: open("%s/%s.%s.%s" % (ST, name, cert, k), "a", buffering=1)
                 for k in ("sent", "acked", "refused")}
        deadline = time.monotonic() + seconds
        k, redo, acked = 0, [], []
        c = None
        while time.monotonic() < deadline and not os.path.exists(ST + "/stop"):
            if c is None or c.closed or c.goaway is not None:
                try:
                    c = hc.connect(cert)
                except Exception as e:
                    bad.append("connect %s: %r" % (cert, e))
                    time.sleep(0.2)
                    continue
            inflight = {}
            for _ in range(IN_FLIGHT):
                if redo:
                    seq = redo.pop()
                else:
                    k += 1
                    seq = base + k
                files["sent"].write("%d\n" % seq)
                try:
                    inflight[c.start(body(seq, cert))] = seq
                except (hc.ConnError, OSError):
                    break
            for sid, seq in inflight.items():
                try:
                    r = c.response(sid, timeout=15)
                except Exception as e:
                    bad.append("seq %d: %r" % (seq, e))
                    continue
                if r.status == 202 and r.headers.get("panelgate-ack-seq") == str(seq):
                    files["acked"].write("%d\n" % seq)
                    with lock:
                        counts["acked"] += 1
                    if len(acked) < 20:
                        acked.append(seq)
                        if len(acked) == 20:
                            redo = list(acked)  # the same seqs once more
                            with lock:
                                counts["dup"] += 20
                elif r.status == 503 and r.headers.get("retry-after"):
                    files["refused"].write("%d\n" % seq)
                    with lock:
                        counts["refused"] += 1
                else:
                    bad.append("seq %d: %s %s" % (seq, r.status, r.body[:80]))
        if c is not None:
            c.close()

    threads = [threading.Thread(target=client, args=(i, cert)) for i, cert in enumerate(CERTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    for e in bad[:10]:
        print("# client: %s" % e)
    print("# %s: %d acked (20 resent per agent), %d refused (503)" %
          (name, counts["acked"], counts["refused"]))
    print("%s - %s: only 202 or 503 + retry-after answers%s" %
          ("not ok" if bad else "ok", name, ": %d others" % len(bad) if bad else ""))
    if name == "down":
        print("%s - %s: nothing acknowledged while the cluster is down" %
              ("not ok" if counts["acked"] else "ok", name))
    else:
        print("%s - %s: frames were acknowledged" % ("ok" if counts["acked"] else "not ok", name))


def resend():
    bad, n = [], 0
    for cert in CERTS:
        sent, acked = set(), set()
        for p in glob.glob("%s/*.%s.sent" % (ST, cert)):
            sent |= {int(x) for x in open(p)}
        for p in glob.glob("%s/*.%s.acked" % (ST, cert)):
            acked |= {int(x) for x in open(p)}
        out = open("%s/resend.%s.acked" % (ST, cert), "a", buffering=1)
        todo = sorted(sent - acked)
        c = hc.connect(cert)
        for j in range(0, len(todo), IN_FLIGHT):
            part = todo[j:j + IN_FLIGHT]
            for sid, s in [(c.start(body(s, cert)), s) for s in part]:
                r = c.response(sid, timeout=15)
                n += 1
                if r.status == 202 and r.headers.get("panelgate-ack-seq") == str(s):
                    out.write("%d\n" % s)
                else:
                    bad.append((cert, s, r.status))
        c.close()
    print("# resent %d unacknowledged frames" % n)
    print("%s - every resent frame (same seq) got 202%s" %
          ("not ok" if bad else "ok", ": %r" % bad[:5] if bad else ""))


if sys.argv[1] == "send":
    send(sys.argv[2], float(sys.argv[3]))
else:
    resend()
EOF

# check_stream WHAT [all]: reads the stream back and checks every acked
# seq is there exactly once, no Msg-Id twice, nothing that was not sent,
# and the contract's subject and headers.  With "all": every sent seq is
# there (after the resend).
check_stream() {
    "$JSTOOL" dump "$NATS_URLS" "$STREAM" >"$T/dump.txt" 2>"$T/dump.err" ||
        { not_ok "$1: stream read back ($(cat "$T/dump.err"))"; return; }
    py_checks - "$1" "${2:-}" <<'EOF'
import glob, os, sys
import h2client as hc
ok = hc.Checks()
what, want_all = sys.argv[1], sys.argv[2] == "all"
st = os.environ["PG_STATE"]
ids = {"nimble-01": int(os.environ["NIMBLE_ID"]), "wowza-01": int(os.environ["WOWZA_ID"])}
lines = open(os.environ["T"] + "/dump.txt").read().split("\n")
head, rows = lines[0].split(), [l.split() for l in lines[1:] if l]
ok(head[1] == "replicas=3", "%s: the stream has 3 replicas (%s)" % (what, lines[0]))
count, badhdr = {}, []
for r in rows:
    sseq, subj, msgid, sid, seq, ts, recv, fmt, n = r
    count[msgid] = count.get(msgid, 0) + 1
    if (subj != "pgtest.frames." + sid or msgid != "%s.%s" % (sid, seq) or fmt != "1" or
            not ts.isdigit() or not recv.isdigit() or int(n) <= 0):
        badhdr.append(r)
ok(not badhdr, "%s: subject <prefix>.<server id>, Nats-Msg-Id <id>.<seq>, Panelgate-* headers on "
   "every message (%d)" % (what, len(rows)), badhdr[:3])
twice = [k for k, v in count.items() if v > 1]
ok(not twice, "%s: no Nats-Msg-Id twice in the stream" % what, twice[:5])
sent, acked = set(), set()
for cert, sid in ids.items():
    for p in glob.glob("%s/*.%s.sent" % (st, cert)):
        sent |= {"%d.%s" % (sid, x.strip()) for x in open(p)}
    for p in glob.glob("%s/*.%s.acked" % (st, cert)):
        acked |= {"%d.%s" % (sid, x.strip()) for x in open(p)}
missing = sorted(acked - set(count))
ok(not missing, "%s: every acknowledged frame (%d) is in the stream" % (what, len(acked)), missing[:5])
extra = sorted(set(count) - sent)
ok(not extra, "%s: nothing in the stream that was not sent" % what, extra[:5])
if want_all:
    ok(set(count) == sent, "%s: every sent seq (%d) is in the stream exactly once (%d messages)"
       % (what, len(sent), len(rows)))
EOF
}
export T

# 1. normal delivery, with resends
py_checks "$T/clients.py" send steady 4
check_stream "steady"

# 2. one node killed under load, then restarted
rm -f "$PG_STATE/stop"
py_bg "$T/kill1.out" "$T/clients.py" send kill1 14
sleep 3
nats_kill 2
sleep 4
nats_start_node 2
check "the cluster is whole again" nats_wait_ready 30
py_bg_wait "$PY_BG_PID" "$T/kill1.out" 60
check_stream "one node killed"

# 3. every node down (killed while idle: no write of an acked frame is
# pending in a node's process), then back
sleep 1
for i in 1 2 3; do nats_kill "$i"; done
wait_log '"event":"jetstream_disconnected"' 1 10 || true
encode wowza
curl_post wowza-01 "$T/wowza.msgpack"
check_eq "all nodes down: POST answered 503" "$CURL_CODE" 503
check "all nodes down: 503 carries retry-after" test -n "$(header_value retry-after "$T/curl.hdr")"
APORT=$(admin_port)
healthz() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$APORT/healthz"; }
healthz_is() { [[ $(healthz) == "$1" ]]; }
check "all nodes down: /healthz 503" wait_until 10 healthz_is 503
metric() { curl -s "http://127.0.0.1:$APORT/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print v }'; }
metric_is() { [[ $(metric "$1") == "$2" ]]; }
check_eq "all nodes down: panelgate_jetstream_connected 0" "$(metric panelgate_jetstream_connected)" 0
check "... and the disconnect counted" test "$(metric panelgate_jetstream_disconnects_total)" -ge 1
py_checks "$T/clients.py" send down 2
for i in 1 2 3; do nats_start_node "$i"; done
check "the cluster is back" nats_wait_ready 40
check "the gateway reconnected" wait_log '"event":"jetstream_reconnected"' 1 30
post_ok() { curl_post wowza-01 "$T/wowza.msgpack"; [[ $CURL_CODE == 202 ]]; }
check "delivery resumes (202) after the cluster is back" wait_until 30 post_ok
echo 917 >>"$PG_STATE/curl.wowza-01.sent" # wowza.json's seq, as curl sent it
echo 917 >>"$PG_STATE/curl.wowza-01.acked"
check "/healthz 200 again" wait_until 10 healthz_is 200
check "back: panelgate_jetstream_connected 1" wait_until 10 metric_is panelgate_jetstream_connected 1
check "... and the reconnect counted" test "$(metric panelgate_jetstream_reconnects_total)" -ge 1
py_checks "$T/clients.py" resend
check_stream "after the outage and the resend" all

# 4. no viewer IP in the store directories or any log
export PG_VIEWERS=$T/viewers.json
python3 - <<'EOF'
import json, os
d = json.load(open(os.path.join(os.environ["PANELGATE_TEST_DATA"], "wowza.json")))
json.dump(sorted({c["ip"] for c in d["conns"]}), open(os.environ["PG_VIEWERS"], "w"))
EOF
mapfile -t SCAN < <(find "$T/nats" -type f; echo "$GW_LOG")
py_checks - "${SCAN[@]}" <<'EOF'
import ipaddress, json, os, socket, sys
import h2client as hc
ok = hc.Checks()
viewers = json.load(open(os.environ["PG_VIEWERS"]))
hits, total = hc.find_ips(sys.argv[1:], hc.ip_needles(viewers, v4_binary=False))
ok(not hits, "no viewer IP (%d) in %d files of the nodes' stores and logs and the gateway log "
   "(%d bytes)" % (len(viewers), len(sys.argv) - 1, total), hits[:5])
ctl = ipaddress.ip_address("2001:db8:200::10").packed   # the server's own address, in the body
found = [p for p in sys.argv[1:] if ctl in open(p, "rb").read()]
ok(found, "control: the search finds the server address stored in the body (%d files)" % len(found))
EOF
gw_stop_check

# 5. a stream that exists with other replicas: the start fails, naming both
"$JSTOOL" add-stream "$NATS_URLS" OTHER "other.>" 1 || fatal "jstool add-stream"
js_config OTHER other
rc=0
timeout 30 "$PG_BIN" --config "$GW_CONF" >>"$T/gw.out" 2>>"$GW_LOG" || rc=$?
check "a stream with replicas 1 makes the start fail (exit $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
check "the start failure names replicas and both values" \
    grep -q 'jetstream: stream OTHER: replicas: configured 3, stream has 1' "$GW_LOG"

nats_stop_all
finish
