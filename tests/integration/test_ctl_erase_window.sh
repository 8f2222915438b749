#!/usr/bin/env bash
# test_ctl_erase_window.sh - erase and revoke leave no window (issue 11: for
# about 1.9 s after "panelgatectl erase NAME --yes", frames of the still
# connected agent were answered 202 and stored under the erased server's
# id, where no export could see them).  The storage now refuses a frame
# whose server is no longer registered, or revoked, in the very write
# transaction that would insert it, so either the frame commits before the
# erase (and the erase deletes it) or it is refused.
#   - nimble-01 posts frames without pause (8 in flight, with streams and
#     viewers, so every sample table gets rows), wowza-01 too;
#   - erase nimble-01 --yes while it does: no frame that nimble-01 started
#     after erase returned is answered 202; those that are answered get
#     403 not_registered; its connection gets GOAWAY; once its frames are
#     all answered, and again once the gateway has drained and stopped, no
#     row of its id is left in frames, the sample tables, stream_paths or
#     activity;
#   - revoke wowza-01 while it sends: no frame started after revoke
#     returned is answered 202 (403 revoked), and none is stored after the
#     revocation committed.
. "$(dirname "$0")/lib.sh"
export PG_DB

CTL=${PANELGATECTL:-$PANELGATE_BUILD_DIR/bin/panelgatectl}
[[ -x $CTL ]] || fatal "no panelgatectl binary at $CTL"

make_pki
# the gateway notices registry changes late (1.5 s instead of 250 ms): the
# window between the command's commit and the cut of the connection is
# wide, and only the storage's own check can close it
gw_config "[registry]" "poll_interval_ms = 1500"
gw_start
register_defaults
NID=$(server_id nimble-01)
WID=$(server_id wowza-01)

# sender.py NAME KIND READY DONE: posts frames on one connection, 8 in
# flight, until 3 s after the file DONE appears (or the connection ends);
# READY is made after the first 50 answers.  Each frame remembers whether
# DONE existed when it was started.
cat >"$T/sender.py" <<'EOF_PY'
import collections, os, sys, time
import h2client as hc

name, kind, ready, done = sys.argv[1:5]
ok = hc.Checks()
c = hc.connect(name)
tmpl = hc.load_frame("nimble.json" if kind == "nimble" else "wowza.json")
seq, inflight, answered = 0, [], 0
before = collections.Counter()
after = collections.Counter()
after_sent = 0
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    now_after = os.path.exists(done)
    if now_after and deadline - time.monotonic() > 3:
        deadline = time.monotonic() + 3
    while len(inflight) < 8 and not c.closed and c.goaway is None and c.send_error is None:
        seq += 1
        f = dict(tmpl)
        f["seq"] = seq
        try:
            sid = c.start(hc.pack(f))
        except hc.ConnError:
            break
        inflight.append((sid, os.path.exists(done)))
    c.pump(0.005)
    still = []
    for sid, was_after in inflight:
        st = c.streams[sid]
        if not st.done and not c.closed:
            still.append((sid, was_after))
            continue
        r = hc.Response(st)
        if r.status is None:
            key = "reset" if r.reset is not None else "no answer"
        elif r.status == 202:
            key = "202"
        else:
            j = r.json() or {}
            key = "%s %s" % (r.status, str(j.get("type", "")).rsplit(":", 1)[-1])
        (after if was_after else before)[key] += 1
        after_sent += was_after
        answered += 1
        if answered == 50:
            open(ready, "w").close()
    inflight = still
    if (c.closed or c.goaway is not None) and not inflight:
        break
if answered < 50:
    open(ready, "w").close()
print("# %s: %d frames; before the operator's command returned: %s; after: %s; "
      "goaway=%s closed=%s" % (name, seq, dict(before), dict(after),
                               c.goaway is not None, c.closed), flush=True)
ok(before["202"] >= 50, "%s: frames were acknowledged before the command (%d)" % (name, before["202"]))
ok(after["202"] == 0, "%s: no frame started after the command returned is answered 202"
   % name, dict(after))
refusal = "403 not_registered" if kind == "nimble" else "403 revoked"
others = {k: v for k, v in after.items() if k not in (refusal, "reset", "no answer")}
ok(not others, "%s: frames started after the command get %s or none (closed)" % (name, refusal),
   dict(after))
ok(c.wait_goaway(10) or c.closed, "%s: the gateway cut the connection (GOAWAY)" % name)
c.close()
EOF_PY

count_rows() { # ID: rows of that server id in frames, the sample tables, stream_paths, activity
    sql "SELECT (SELECT count(*) FROM frames WHERE server_id = $1) || ' ' ||
                (SELECT count(*) FROM server_samples WHERE server_id = $1) || ' ' ||
                (SELECT count(*) FROM stream_samples WHERE server_id = $1) || ' ' ||
                (SELECT count(*) FROM geo_samples WHERE server_id = $1) || ' ' ||
                (SELECT count(*) FROM stream_paths WHERE server_id = $1) || ' ' ||
                (SELECT count(*) FROM activity WHERE server_id = $1)"
}

# ---- erase while nimble-01 sends ---------------------------------------------------------
py_bg "$T/nimble.out" "$T/sender.py" nimble-01 nimble "$T/n.ready" "$T/n.done"
NPID=$PY_BG_PID
wait_until "$PG_TIMEOUT" test -e "$T/n.ready" || fatal "nimble-01 sent its first frames"
"$CTL" --db "$PG_DB" --actor tester erase nimble-01 --yes >"$T/erase.out" 2>&1 ||
    fatal "panelgatectl erase nimble-01 --yes: $(cat "$T/erase.out")"
touch "$T/n.done"
note "$(cat "$T/erase.out")"
py_bg_wait "$NPID" "$T/nimble.out" 60
check_eq "every frame answered: no row of the erased server (frames, server/stream/geo samples, stream paths, activity)" \
    "$(count_rows "$NID")" "0 0 0 0 0 0"
check "the erase counted the frames it deleted (> 0)" \
    test "$(sql "SELECT json_extract(details, '\$.frames') FROM activity WHERE action = 'erase'")" -gt 0

# ---- revoke while wowza-01 sends ---------------------------------------------------------
py_bg "$T/wowza.out" "$T/sender.py" wowza-01 wowza "$T/w.ready" "$T/w.done"
WPID=$PY_BG_PID
wait_until "$PG_TIMEOUT" test -e "$T/w.ready" || fatal "wowza-01 sent its first frames"
"$CTL" --db "$PG_DB" --actor tester revoke wowza-01 >"$T/revoke.out" 2>&1 ||
    fatal "panelgatectl revoke wowza-01: $(cat "$T/revoke.out")"
REVOKED_MS=$(now_ms)
WFRAMES=$(sql "SELECT count(*) FROM frames WHERE server_id = $WID")
touch "$T/w.done"
py_bg_wait "$WPID" "$T/wowza.out" 60
check_eq "no frame of wowza-01 stored after revoke returned" \
    "$(sql "SELECT count(*) FROM frames WHERE server_id = $WID")" "$WFRAMES"
check_eq "... none received after it either" \
    "$(sql "SELECT count(*) FROM frames WHERE server_id = $WID AND received_ms > $REVOKED_MS")" 0

gw_stop_check
check_eq "after the gateway drained and stopped: still no row of the erased server" \
    "$(count_rows "$NID")" "0 0 0 0 0 0"
check_eq "... and no frame of wowza-01 beyond those stored when revoke returned" \
    "$(sql "SELECT count(*) FROM frames WHERE server_id = $WID")" "$WFRAMES"
finish
