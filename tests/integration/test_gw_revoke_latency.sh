#!/usr/bin/env bash
# test_gw_revoke_latency.sh - with the default settings a revocation made
# with panelgatectl reaches a live connection within a second (issue 11:
# with the 2 s poll, 16-20 frames were still acknowledged after `revoke`
# and the GOAWAY came about a second later).  Three servers send a frame
# every 20 ms; each is revoked in turn; for each, the GOAWAY arrives less
# than 1000 ms after `panelgatectl revoke` returned, and no frame sent more
# than 1000 ms after it is acknowledged.
. "$(dirname "$0")/lib.sh"

make_pki
gw_config       # [registry] poll_interval_ms left at its default
gw_start
register_defaults
register spare-01 wowza "$PKI/spare-01.crt"
gw_reload
export PG_STATE=$T

cat >"$T/agent.py" <<'EOF_PY'
import os, sys, time
import h2client as hc
ok = hc.Checks()
name, st = sys.argv[1], os.environ["PG_STATE"]
kind = "nimble" if name.startswith("nimble") else "wowza"
c = hc.connect(name)
r = c.post(hc.pack(hc.minimal_frame(1, name=name, kind=kind)))
ok(r.status == 202, "%s: 202 before the revocation" % name, r)
open("%s/%s.ready" % (st, name), "w").close()
acked, seq, goaway_at = [], 1, None
end = time.time() + 20
while time.time() < end:
    seq += 1
    t = time.time()
    try:
        r = c.post(hc.pack(hc.minimal_frame(seq, name=name, kind=kind)), timeout=5)
        if r.status == 202:
            acked.append(t)
    except Exception:
        pass
    if c.goaway is not None or c.closed:
        goaway_at = time.time()
        break
    time.sleep(0.02)
# the test writes the time panelgatectl returned right after it did: the
# GOAWAY may come first
rf, revoked = "%s/%s.revoked" % (st, name), None
wait_end = time.time() + 5
while revoked is None and time.time() < wait_end:
    try:
        revoked = float(open(rf).read())
    except (OSError, ValueError):
        time.sleep(0.02)
ok(revoked is not None and goaway_at is not None,
   "%s: revoked, and the connection got GOAWAY" % name, (revoked, goaway_at))
if revoked is not None and goaway_at is not None:
    lat = (goaway_at - revoked) * 1000
    ok(lat < 1000, "%s: GOAWAY %.0f ms after panelgatectl revoke returned (< 1000)" % (name, lat))
    late = [a for a in acked if a > revoked + 1.0]
    ok(not late, "%s: no frame sent more than 1 s after the revocation was acknowledged "
       "(%d were)" % (name, len(late)))
c.close()
EOF_PY

for s in nimble-01 wowza-01 spare-01; do
    py_bg "$T/$s.out" "$T/agent.py" "$s"
    eval "pid_${s//-/_}=$PY_BG_PID"
done
for s in nimble-01 wowza-01 spare-01; do
    wait_until 20 test -e "$T/$s.ready" || fatal "$s connected"
done
for s in nimble-01 wowza-01 spare-01; do
    sleep 0.7
    "$PANELGATECTL" --db "$PG_DB" --actor tester revoke "$s" >>"$T/ctl.out" 2>&1 ||
        not_ok "panelgatectl revoke $s: $(tail -1 "$T/ctl.out")"
    date +%s.%N >"$T/$s.revoked"
done
for s in nimble-01 wowza-01 spare-01; do
    v=pid_${s//-/_}
    py_bg_wait "${!v}" "$T/$s.out" 30
done
gw_stop_check
finish
