#!/usr/bin/env bash
# test_ctl_rights.sh - the data-rights commands end to end: frames of two
# servers (with viewer IPs) go through the gateway; panelgatectl export
# (json and msgpack) gives back everything stored for one server with the
# viewers aggregates and no viewer IP; purge --older-than removes only old
# frames; erase removes one server's frames, pins and activity, leaves an
# "erase" row, does not touch the other server, and the erased server's
# next handshake is refused; [storage] retention_days removes old frames
# without operator action.  Every one of them is in the activity log.
. "$(dirname "$0")/lib.sh"

CTL=${PANELGATECTL:-$PANELGATE_BUILD_DIR/bin/panelgatectl}
[[ -x $CTL ]] || fatal "no panelgatectl binary at $CTL"

# ctl ARGS...: panelgatectl on this test's database as actor "tester";
# stdout in $T/ctl.out, stderr in $T/ctl.err; sets CTL_RC.
ctl() {
    CTL_RC=0
    "$CTL" --db "$PG_DB" --actor tester "$@" >"$T/ctl.out" 2>"$T/ctl.err" || CTL_RC=$?
}
ctl_ok() {
    local what=$1
    shift
    ctl "$@"
    if ((CTL_RC == 0)); then ok "$what"; else not_ok "$what: exit $CTL_RC: $(cat "$T/ctl.err")"; fi
}

make_pki
gw_config
gw_start
register_defaults
NID=$(server_id nimble-01)
WID=$(server_id wowza-01)

# 6 frames of nimble-01 and 3 of wowza-01, each with two viewer IPs
py_checks - <<'EOF'
import h2client as hc
ok = hc.Checks()
for cert, kind, n in (("nimble-01", "nimble", 6), ("wowza-01", "wowza", 3)):
    c = hc.connect(cert)
    for seq in range(1, n + 1):
        f = hc.minimal_frame(seq, name=cert + ".example", kind=kind,
                             conns=[("203.0.113.77", 100, 1000), ("2001:db8::77", 5, 50)])
        r = c.post(hc.pack(f))
        ok(r.status == 202, "%s frame %d -> 202" % (cert, seq), r)
    c.close()
EOF
stored() { [[ $(sql "SELECT count(*) FROM frames") == 9 ]]; }
wait_until 10 stored || fatal "9 frames stored"
sql "INSERT INTO activity(at, actor, action, server_id, details)
     VALUES (unixepoch(), 'tester', 'note', $NID, '{\"x\":1}'),
            (unixepoch(), 'tester', 'note', $WID, '{\"x\":2}')"

# ---- export ------------------------------------------------------------------
ctl_ok "export nimble-01 --format json --out FILE" export nimble-01 --format json --out "$T/n.json"
check_eq "export file is owner-only" "$(stat -c %a "$T/n.json")" 600
ctl_ok "export nimble-01 --format msgpack --out FILE" export nimble-01 --format msgpack --out "$T/n.mp"
ctl_ok "export nimble-01 (json to stdout)" export nimble-01
if "$PY" -m json.tool "$T/ctl.out" >/dev/null; then ok "stdout export parses with json.tool"; else not_ok "stdout export parses with json.tool"; fi
if "$PY" -m json.tool "$T/n.json" >/dev/null; then ok "json export parses with json.tool"; else not_ok "json export parses with json.tool"; fi
ctl export nimble-01 --format xml
check_eq "export --format xml -> 64" "$CTL_RC" 64
ctl export nobody --format json
check_eq "export of an unknown server -> 1" "$CTL_RC" 1

py_checks - "$T/n.json" "$T/n.mp" <<'EOF'
import json, sys
import h2client as hc
ok = hc.Checks()
raw = open(sys.argv[1], "rb").read()
mp = open(sys.argv[2], "rb").read()
d = json.loads(raw)
ok(sorted(d) == ["activity", "frames", "pins", "server"], "json export: server, pins, frames, activity", sorted(d))
ok(d["server"]["name"] == "nimble-01" and d["server"]["kind"] == "nimble", "json export: the server row", d["server"])
ok(len(d["pins"]) == 1 and len(d["pins"][0]["spki_sha256"]) == 64, "json export: its pin", d["pins"])
ok([f["seq"] for f in d["frames"]] == [1, 2, 3, 4, 5, 6], "json export: frames 1..6", [f["seq"] for f in d["frames"]])
f = d["frames"][0]
ok(set(f) == {"seq", "ts_ms", "received_ms", "reported_name", "frame"}, "json frame fields", sorted(f))
ok(f["ts_ms"] == 1700000000000 and f["reported_name"] == "nimble-01.example", "json frame ts_ms and reported_name", f)
fr = f["frame"]
ok("conns" not in fr and fr.get("viewers") and fr["viewers"][0]["conns"] == 2
   and fr["viewers"][0]["in"] == 105, "json frame: viewers aggregate, no conns", fr)
ok(fr["server"]["name"] == "nimble-01.example" and fr["load"]["cpu"] == 12.5, "json frame: the stored body decoded", fr)
acts = [a["action"] for a in d["activity"]]
ok("note" in acts and all(a.get("details") != {"x": 2} for a in d["activity"]), "json export: its own activity rows only", d["activity"])
for ip in (b"203.0.113.77", b"2001:db8::77"):
    ok(ip not in raw and ip not in mp, "no viewer IP %s in the exports" % ip.decode())
for ip in (bytes([203, 0, 113, 77]), bytes.fromhex("20010db8000000000000000000000077")):
    ok(ip not in mp, "no binary viewer IP in the msgpack export")
m = hc.unpack(mp)
ok(sorted(m) == ["activity", "frames", "pins", "server"], "msgpack export: one map, same keys", sorted(m))
ok(m["server"]["name"] == "nimble-01" and len(m["pins"]) == 1, "msgpack export: server and pin")
ok([x["seq"] for x in m["frames"]] == [1, 2, 3, 4, 5, 6], "msgpack export: frames 1..6")
ok(all(x["frame"] == y["frame"] for x, y in zip(m["frames"], d["frames"])),
   "msgpack export: each stored body equals the json one")
ok(len(m["activity"]) == len(d["activity"]) + 1, "msgpack export: activity (plus the json export's own row)",
   (len(m["activity"]), len(d["activity"])))
EOF
check_eq "export recorded (3 rows, actor tester)" \
    "$(sql "SELECT count(*) FROM activity WHERE action = 'export' AND actor = 'tester' AND server_id = $NID")" 3

# ---- purge -------------------------------------------------------------------
DAY=86400000
sql "UPDATE frames SET received_ms = received_ms - 40 * $DAY WHERE server_id = $NID AND seq <= 2;
     UPDATE frames SET received_ms = received_ms - 20 * $DAY WHERE server_id = $NID AND seq = 3;
     UPDATE frames SET received_ms = received_ms - 20 * $DAY WHERE server_id = $WID AND seq = 1;"
ctl purge
check_eq "purge without --older-than -> 64" "$CTL_RC" 64
ctl purge --older-than 30x
check_eq "purge --older-than 30x -> 64" "$CTL_RC" 64
ctl_ok "purge --older-than 30d" --json purge --older-than 30d
check_eq "purge reports 2 frames" "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["frames"])' "$T/ctl.out")" 2
check_eq "only the 40-day-old frames are gone" \
    "$(sql "SELECT group_concat(seq) FROM (SELECT seq FROM frames WHERE server_id = $NID ORDER BY seq)")" 3,4,5,6
check_eq "the other server's frames are untouched" "$(sql "SELECT count(*) FROM frames WHERE server_id = $WID")" 3
check_eq "purge recorded with its count" \
    "$(sql "SELECT actor || ' ' || json_extract(details, '\$.frames') FROM activity WHERE action = 'purge'")" "tester 2"

# ---- erase -------------------------------------------------------------------
ctl erase nimble-01
check_eq "erase without --yes -> 64" "$CTL_RC" 64
check_eq "... and nothing is erased" "$(sql "SELECT count(*) FROM frames WHERE server_id = $NID")" 4
ctl erase nobody --yes
check_eq "erase of an unknown server -> 1" "$CTL_RC" 1
ctl_ok "erase nimble-01 --yes" erase nimble-01 --yes
check_eq "no frames of the erased server" "$(sql "SELECT count(*) FROM frames WHERE server_id = $NID")" 0
check_eq "no pins of the erased server" "$(sql "SELECT count(*) FROM server_pins WHERE server_id = $NID")" 0
check_eq "no servers row" "$(sql "SELECT count(*) FROM servers WHERE name = 'nimble-01'")" 0
check_eq "no activity rows of the erased server" "$(sql "SELECT count(*) FROM activity WHERE server_id = $NID")" 0
check_eq "one erase row, no server, the name and counts in details" \
    "$(sql "SELECT actor, server_id IS NULL, json_extract(details, '\$.server'), json_extract(details, '\$.frames') FROM activity WHERE action = 'erase'")" \
    "tester|1|nimble-01|4"
check_eq "the other server's frames are untouched" "$(sql "SELECT count(*) FROM frames WHERE server_id = $WID")" 3
check_eq "the other server's activity is untouched" "$(sql "SELECT count(*) FROM activity WHERE server_id = $WID")" 1
ctl export nimble-01
check_eq "export of the erased server -> 1" "$CTL_RC" 1
ctl_ok "activity --action erase" --json activity --action erase
gw_reload
py_checks - <<'EOF'
import ssl
import h2client as hc
ok = hc.Checks()
try:
    hc.Conn(ctx=hc.context("nimble-01"))
    ok(False, "the erased server's next handshake is refused")
except ssl.SSLError as e:
    ok("ACCESS_DENIED" in str(e).upper(), "the erased server's next handshake -> access_denied", e)
c = hc.connect("wowza-01")
r = c.post(hc.pack(hc.minimal_frame(10, kind="wowza")))
ok(r.status == 202, "the other server still sends frames", r)
c.close()
EOF

# ---- retention in the gateway ---------------------------------------------------
# wowza-01 seq 1 is 20 days old: retention_days = 15 removes it by itself
gw_config "[storage]" "retention_days = 15" "retention_interval_s = 1"
gw_reload
gone() { [[ $(sql "SELECT count(*) FROM frames WHERE server_id = $WID AND seq = 1") == 0 ]]; }
if wait_until 10 gone; then ok "retention_days removes the old frame without operator action"; else not_ok "retention_days removes the old frame"; fi
check_eq "the recent frames stay" "$(sql "SELECT count(*) FROM frames WHERE server_id = $WID")" 3
gpurge() { [[ $(sql "SELECT count(*) FROM activity WHERE action = 'purge' AND actor = 'gateway'") -ge 1 ]]; }
if wait_until 5 gpurge; then ok "the gateway's purge is in the activity log"; else not_ok "the gateway's purge is in the activity log"; fi
check_eq "gateway purge details" \
    "$(sql "SELECT json_extract(details, '\$.frames') FROM activity WHERE action = 'purge' AND actor = 'gateway' LIMIT 1")" 1

gw_stop_check
# no viewer IP anywhere in the database file
if grep -aqF -e 203.0.113.77 -e 2001:db8::77 "$PG_DB"* 2>/dev/null; then
    not_ok "no viewer IP text in the database files"
else
    ok "no viewer IP text in the database files"
fi
finish
