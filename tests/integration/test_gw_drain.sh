#!/usr/bin/env bash
# test_gw_drain.sh - SIGTERM while frames are in flight loses no
# acknowledged frame: four clients (two servers, several streams in flight
# each) send frames with distinct seqs; the gateway gets SIGTERM in the
# middle, sends GOAWAY, answers the requests it accepted and exits 0 within
# shutdown_timeout; every seq that got a 202 is in the database exactly
# once, nothing unsent is there, and the database is intact.
. "$(dirname "$0")/lib.sh"

SHUTDOWN_MS=10000
make_pki
gw_config "[server]" "shutdown_timeout_ms = $SHUTDOWN_MS"
gw_start
register_defaults
export PG_READY=$T/clients.ready PG_RESULTS=$T/results.json

cat >"$T/clients.py" <<'EOF'
import json, os, threading, time
import h2client as hc

ok = hc.Checks()
CLIENTS = ["nimble-01", "wowza-01", "nimble-01", "wowza-01"]
IN_FLIGHT = 6
READY_AFTER = 60          # acks in all before the test sends SIGTERM
template = hc.load_frame("wowza.json")
lock = threading.Lock()
acked_total = [0]
results = [None] * len(CLIENTS)


def body(seq, kind):
    template_k = dict(template, seq=seq)
    template_k["server"] = dict(template["server"], kind=kind)
    return hc.pack(template_k)


def client(i):
    cert = CLIENTS[i]
    kind = "nimble" if cert.startswith("nimble") else "wowza"
    base = (i + 1) * 1000000
    res = results[i] = {"cert": cert, "sent": [], "acked": [], "other": [], "unanswered": [],
                        "accepted_unanswered": [], "goaway_last": None, "error": None}
    try:
        c = hc.connect(cert)
    except Exception as e:
        res["error"] = "connect: %r" % e
        return
    inflight = {}
    k = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        while c.goaway is None and not c.closed and len(inflight) < IN_FLIGHT:
            k += 1
            seq = base + k
            try:
                sid = c.start(body(seq, kind))
            except (hc.ConnError, OSError) as e:
                break
            inflight[sid] = seq
            res["sent"].append(seq)
        c.pump(0.02)
        for sid in list(inflight):
            st = c.streams[sid]
            if st.done:
                seq = inflight.pop(sid)
                if st.ended and st.status == 202 and \
                        st.headers.get("panelgate-ack-seq") == str(seq):
                    res["acked"].append(seq)
                    with lock:
                        acked_total[0] += 1
                        if acked_total[0] == READY_AFTER:
                            open(os.environ["PG_READY"], "w").close()
                else:
                    res["other"].append([seq, st.status, st.reset])
        if c.closed or (c.goaway is not None and not inflight):
            break
    if c.goaway is not None:
        res["goaway_last"] = c.goaway.last_stream_id
    for sid, seq in inflight.items():
        res["unanswered"].append(seq)
        if c.goaway is not None and sid <= c.goaway.last_stream_id:
            res["accepted_unanswered"].append(seq)
    res["closed"] = c.closed
    res["close_reason"] = c.close_reason
    c.close()


threads = [threading.Thread(target=client, args=(i,)) for i in range(len(CLIENTS))]
for t in threads:
    t.start()
for t in threads:
    t.join(120)
json.dump(results, open(os.environ["PG_RESULTS"], "w"))
for r in results:
    ok(r and r["error"] is None, "client %s connected" % (r and r["cert"]), r and r["error"])
ok(all(r and r["goaway_last"] is not None for r in results), "every client got a GOAWAY",
   [r and r["goaway_last"] for r in results])
ok(all(r and not r["accepted_unanswered"] for r in results),
   "every request at or below the GOAWAY's last_stream_id was answered",
   [r and r["accepted_unanswered"] for r in results])
ok(all(r and not r["other"] for r in results), "no answer other than 202",
   [r and r["other"][:5] for r in results])
EOF

py_bg "$T/clients.out" "$T/clients.py"
pid=$PY_BG_PID
wait_until "$PG_TIMEOUT" test -e "$PG_READY" || fatal "clients sent their first frames"
t0=$(now_ms)
kill -TERM "$GW_PID"
if wait_until $((SHUTDOWN_MS / 1000 + 20)) not_alive "$GW_PID"; then
    elapsed=$(($(now_ms) - t0))
else
    elapsed=-1
    kill -KILL "$GW_PID" 2>/dev/null || true
fi
rc=0
wait "$GW_PID" 2>/dev/null || rc=$?
GW_PID=
check_eq "SIGTERM with frames in flight: gateway exits 0" "$rc" 0
check "... within shutdown_timeout_ms ($SHUTDOWN_MS ms; took $elapsed ms)" \
    test "$elapsed" -ge 0 -a "$elapsed" -le "$SHUTDOWN_MS"
check_log_clean
check "log: draining, then stopped" grep -q '"event":"stopped"' "$GW_LOG"
check "log: no drain_timeout" test "$(log_count '"event":"drain_timeout"')" = 0
py_bg_wait "$pid" "$T/clients.out" 120

py_checks - <<'EOF'
import json, os, sqlite3
import h2client as hc
ok = hc.Checks()
res = json.load(open(os.environ["PG_RESULTS"]))
db = sqlite3.connect(os.path.join(os.environ["PG_PKI"], "..", "pg.db"))
ids = dict(db.execute("SELECT name, id FROM servers"))
stored = {}
for sid, seq in db.execute("SELECT server_id, seq FROM frames"):
    stored.setdefault(sid, []).append(seq)
sent = acked = 0
missing, dup, phantom = [], [], []
for r in res:
    if not r:
        continue
    sid = ids[r["cert"]]
    have = stored.get(sid, [])
    counts = {}
    for s in have:
        counts[s] = counts.get(s, 0) + 1
    sent += len(r["sent"])
    acked += len(r["acked"])
    missing += [s for s in r["acked"] if counts.get(s, 0) == 0]
    dup += [s for s in r["acked"] if counts.get(s, 0) > 1]
all_sent = {(ids[r["cert"]], s) for r in res if r for s in r["sent"]}
phantom = [(sid, s) for sid, ss in stored.items() for s in ss if (sid, s) not in all_sent]
print("# sent %d frames, %d acknowledged (202), %d stored, %d in flight without an answer"
      % (sent, acked, sum(len(v) for v in stored.values()),
         sum(len(r["unanswered"]) for r in res if r)), flush=True)
ok(acked >= 60, "at least 60 frames acknowledged before and during the drain", acked)
ok(not missing, "every acknowledged seq is in the database", missing[:10])
ok(not dup, "... exactly once", dup[:10])
ok(not phantom, "nothing stored that was not sent", phantom[:10])
ok(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "PRAGMA integrity_check ok")
EOF

finish
