#!/usr/bin/env bash
# test_gw_durability.sh - kill -9 while agents send loses no acknowledged
# frame (issue 6, Storage): four clients (two servers, several streams in
# flight each) send frames with distinct seqs as fast as they can and
# append every seq that got a 202 to a file the moment it is acknowledged;
# the gateway (SQLite, synchronous=full, the default) gets SIGKILL in the
# middle.  After a restart on the same database every acknowledged seq is
# in `frames` exactly once, nothing is there that was not sent, and
# PRAGMA integrity_check is ok.  Then the clients resend every seq that was
# not acknowledged (same seqs): all get 202, and the row count equals the
# number of distinct seqs sent.  Two rounds (two kills).
. "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-2}
make_pki
gw_config "[storage]" "sqlite_synchronous = full"
gw_start
register_defaults
export PG_STATE=$T/state
mkdir -p "$PG_STATE"

# clients.py send ROUND: stream frames until the connection dies (or a
# deadline); $PG_STATE/ROUND.<i>.sent gets each seq before it is sent,
# .acked each seq as its 202 arrives.  $PG_STATE/ROUND.ready appears after
# READY_AFTER acks in all.
# clients.py resend: every sent and unacknowledged seq of every round,
# again; each must get 202 (appended to resend.<cert>.acked).
cat >"$T/clients.py" <<'EOF'
import glob, os, sys, threading, time
import h2client as hc

CLIENTS = ["nimble-01", "wowza-01", "nimble-01", "wowza-01"]
IN_FLIGHT = 8
READY_AFTER = 150
ST = os.environ["PG_STATE"]
template = hc.load_frame("wowza.json")


def body(seq, cert):
    d = dict(template, seq=seq)
    d["server"] = dict(template["server"], kind="nimble" if cert.startswith("nimble") else "wowza")
    return hc.pack(d)


def send_round(rnd):
    lock = threading.Lock()
    total = [0]
    errors = []

    def client(i):
        cert = CLIENTS[i]
        base = rnd * 10000000 + (i + 1) * 1000000
        sent = open("%s/%d.%d.%s.sent" % (ST, rnd, i, cert), "a", buffering=1)
        acked = open("%s/%d.%d.%s.acked" % (ST, rnd, i, cert), "a", buffering=1)
        try:
            c = hc.connect(cert)
        except Exception as e:
            errors.append("connect %s: %r" % (cert, e))
            return
        inflight = {}
        k = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not c.closed:
            while c.goaway is None and c.send_error is None and len(inflight) < IN_FLIGHT:
                k += 1
                seq = base + k
                sent.write("%d\n" % seq)     # recorded before a byte leaves
                try:
                    sid = c.start(body(seq, cert))
                except (hc.ConnError, OSError):
                    break
                inflight[sid] = seq
            c.pump(0.05)
            for sid in list(inflight):
                st = c.streams[sid]
                if st.done:
                    seq = inflight.pop(sid)
                    if st.ended and st.status == 202 and \
                            st.headers.get("panelgate-ack-seq") == str(seq):
                        acked.write("%d\n" % seq)
                        with lock:
                            total[0] += 1
                            if total[0] == READY_AFTER:
                                open("%s/%d.ready" % (ST, rnd), "w").close()
                    elif st.ended:
                        errors.append("seq %d: status %s" % (seq, st.status))
            if c.goaway is not None and not inflight:
                break
        c.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(CLIENTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    for e in errors[:10]:
        print("# client: %s" % e)
    # answers other than 202 before the kill would be a finding too
    print("%s - round %d: clients connected and got only 202 before the kill%s"
          % ("not ok" if errors else "ok", rnd, ": %d others" % len(errors) if errors else ""))


def resend():
    todo = {}
    for p in glob.glob(ST + "/*.sent"):
        rnd, i, cert = os.path.basename(p).split(".")[:3]
        sent = {int(x) for x in open(p)}
        acked = {int(x) for x in open(p[:-5] + ".acked")}
        todo.setdefault(cert, set()).update(sent - acked)
    for p in glob.glob(ST + "/resend.*.acked"):
        cert = os.path.basename(p).split(".")[1]
        todo[cert] = todo.get(cert, set()) - {int(x) for x in open(p)}
    bad = []
    n = 0
    for cert, seqs in sorted(todo.items()):
        out = open("%s/resend.%s.acked" % (ST, cert), "a", buffering=1)
        c = hc.connect(cert)
        seqs = sorted(seqs)
        for j in range(0, len(seqs), IN_FLIGHT):
            part = seqs[j:j + IN_FLIGHT]
            sids = [(c.start(body(s, cert)), s) for s in part]
            for sid, s in sids:
                r = c.response(sid)
                n += 1
                if r.status == 202 and r.headers.get("panelgate-ack-seq") == str(s):
                    out.write("%d\n" % s)
                else:
                    bad.append((cert, s, r.status, r.body[:80]))
        c.close()
    print("# resent %d unacknowledged frames" % n)
    print("%s - every resent frame (same seq) got 202%s"
          % ("not ok" if bad else "ok", ": %r" % bad[:5] if bad else ""))


if sys.argv[1] == "send":
    send_round(int(sys.argv[2]))
else:
    resend()
EOF

# check.py WHEN: the database against the clients' files.  after-kill:
# acked (before the kill) stored once, nothing unsent stored; final:
# every sent seq stored exactly once.
cat >"$T/check.py" <<'EOF'
import glob, os, sqlite3, sys
import h2client as hc
ok = hc.Checks()
when = sys.argv[1]
ST = os.environ["PG_STATE"]
db = sqlite3.connect(os.environ["PG_DB"], timeout=10)
ids = dict(db.execute("SELECT name, id FROM servers"))
rows = db.execute("SELECT server_id, seq FROM frames").fetchall()
count = {}
for r in rows:
    count[r] = count.get(r, 0) + 1
sent, acked = set(), set()
for p in glob.glob(ST + "/*.sent"):
    cert = os.path.basename(p).split(".")[2]
    sent |= {(ids[cert], int(x)) for x in open(p)}
for p in glob.glob(ST + "/*.acked"):
    cert = os.path.basename(p).split(".")[-2]
    acked |= {(ids[cert], int(x)) for x in open(p)}
missing = sorted(a for a in acked if a not in count)
dup = sorted(k for k, v in count.items() if v > 1)
phantom = sorted(k for k in count if k not in sent)
print("# %s: %d distinct seqs sent, %d acknowledged, %d rows stored (%d stored without an ack)"
      % (when, len(sent), len(acked), len(rows), len(set(count) - acked)), flush=True)
ok(not missing, "%s: every acknowledged seq is in frames" % when, missing[:10])
ok(not dup, "%s: ... and none twice" % when, dup[:10])
ok(not phantom, "%s: nothing stored that was not sent" % when, phantom[:10])
ok(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "%s: PRAGMA integrity_check ok" % when)
if when == "final":
    ok(len(rows) == len(sent) and set(count) == sent,
       "final: row count equals the distinct seqs sent", (len(rows), len(sent)))
EOF
export PG_DB

for rnd in $(seq 1 "$ROUNDS"); do
    py_bg "$T/clients.$rnd.out" "$T/clients.py" send "$rnd"
    pid=$PY_BG_PID
    wait_until "$PG_TIMEOUT" test -e "$PG_STATE/$rnd.ready" || fatal "round $rnd: clients got their first 150 acks"
    sleep 0.$((RANDOM % 5))
    kill -KILL "$GW_PID"
    rc=0
    wait "$GW_PID" 2>/dev/null || rc=$?
    GW_PID=
    check_eq "round $rnd: gateway killed by SIGKILL mid-stream" "$rc" 137
    py_bg_wait "$pid" "$T/clients.$rnd.out" 60
    check_log_clean
    gw_start
    py_checks "$T/check.py" "after kill $rnd"
    py_checks "$T/clients.py" resend
done
py_checks "$T/check.py" final
note "totals: $(cat "$PG_STATE"/*.sent | wc -l) frames sent, $(cat "$PG_STATE"/[0-9]*.acked | wc -l) acked before the kills, $(cat "$PG_STATE"/resend.*.acked 2>/dev/null | wc -l) acked on resend"
finish
