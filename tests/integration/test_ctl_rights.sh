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
export PG_DB

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
        f["vhosts"] = [{"name": "vh", "apps": [{"name": "live", "instances": [
            {"name": "_definst_", "streams": [
                {"name": cert + "-cam", "viewers": seq, "bitrate": 1000, "in": 1, "out": 2},
                {"name": "seq%d" % seq, "viewers": 1, "bitrate": 1, "in": 1, "out": 1}]}]}]}]
        r = c.post(hc.pack(f))
        ok(r.status == 202, "%s frame %d -> 202" % (cert, seq), r)
    c.close()
EOF
stored() { [[ $(sql "SELECT count(*) FROM frames") == 9 ]]; }
wait_until 10 stored || fatal "9 frames stored"
sql "INSERT INTO activity(at, actor, action, server_id, details)
     VALUES (unixepoch(), 'tester', 'note', $NID, '{\"x\":1}'),
            (unixepoch(), 'tester', 'note', $WID, '{\"x\":2}')"

# samples: one server sample, 2 stream samples, 1 geo bucket per frame
samples() { sql "SELECT (SELECT count(*) FROM server_samples WHERE server_id = $1) || ' ' ||
    (SELECT count(*) FROM stream_samples WHERE server_id = $1) || ' ' ||
    (SELECT count(*) FROM geo_samples WHERE server_id = $1) || ' ' ||
    (SELECT count(*) FROM stream_paths WHERE server_id = $1)"; }
check_eq "nimble-01: 6 server, 12 stream, 6 geo samples, 7 stream paths" "$(samples "$NID")" "6 12 6 7"
check_eq "wowza-01: 3 server, 6 stream, 3 geo samples, 4 stream paths" "$(samples "$WID")" "3 6 3 4"

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
# the export carries the derived tables through the bodies: every sample
# row of the database is in the exported frames (docs/STORAGE.md)
import os, sqlite3
db = sqlite3.connect(os.environ["PG_DB"], timeout=10)
nid = db.execute("SELECT id FROM servers WHERE name = 'nimble-01'").fetchone()[0]
by_seq = {x["seq"]: x["frame"] for x in d["frames"]}
srv = db.execute("SELECT seq, cpu_pct, ram_used, ram_total, bytes_in, bytes_out, period_ms FROM server_samples"
                 " WHERE server_id = ? ORDER BY seq", (nid,)).fetchall()
ok(srv and all((by_seq[r[0]]["load"]["cpu"], by_seq[r[0]]["load"]["ram_used"], by_seq[r[0]]["load"]["ram_total"],
                by_seq[r[0]]["traffic"]["in"], by_seq[r[0]]["traffic"]["out"], by_seq[r[0]]["traffic"]["period_ms"])
               == r[1:] for r in srv), "export: every server sample is in its exported frame", srv)
st = db.execute("SELECT x.seq, p.vhost, p.app, p.instance, p.stream, x.viewers, x.bitrate, x.bytes_in, x.bytes_out"
                " FROM stream_samples x JOIN stream_paths p ON p.id = x.stream_id WHERE x.server_id = ?", (nid,)).fetchall()
def streams_of(fr):
    return {(v["name"], a["name"], i["name"], s["name"], s["viewers"], s["bitrate"], s["in"], s["out"])
            for v in fr.get("vhosts", []) for a in v.get("apps", []) for i in a.get("instances", [])
            for s in i.get("streams", [])}
ok(len(st) == 12 and all(r[1:] in streams_of(by_seq[r[0]]) for r in st),
   "export: every stream sample (with its path) is in its exported frame", st)
geo = db.execute("SELECT seq, cc, asn, conns, bytes_in, bytes_out FROM geo_samples WHERE server_id = ?", (nid,)).fetchall()
ok(len(geo) == 6 and all({"cc": r[1], "asn": r[2], "conns": r[3], "in": r[4], "out": r[5]} in by_seq[r[0]]["viewers"]
                         for r in geo), "export: every geo sample is in its exported frame's viewers", geo)
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

# issue 11: --out never follows a symbolic link and never overwrites an
# existing file unless --force, which replaces a regular file (a new 0600
# file renamed over it) and still never follows a link
echo keep >"$T/victim"
chmod 644 "$T/victim"
ln -s "$T/victim" "$T/link.json"
victim() { echo "$(cat "$T/victim") $(stat -c %a "$T/victim")"; }
ctl export nimble-01 --out "$T/link.json"
check_eq "export --out SYMLINK -> 1 (issue 11)" "$CTL_RC" 1
check "... naming the file: already exists" grep -qF "$T/link.json: already exists" "$T/ctl.err"
check_eq "... the link's target is untouched" "$(victim)" "keep 644"
ctl export nimble-01 --out "$T/link.json" --force
check_eq "export --out SYMLINK --force -> 1 (issue 11)" "$CTL_RC" 1
check "... naming the file: a symbolic link" grep -qF "$T/link.json: not a regular file (a symbolic link)" "$T/ctl.err"
check_eq "... the link's target is untouched" "$(victim)" "keep 644"
check "... and the link is still there" test -L "$T/link.json"
echo old >"$T/old.json"
chmod 644 "$T/old.json"
ctl export nimble-01 --out "$T/old.json"
check_eq "export --out EXISTING -> 1 (issue 11)" "$CTL_RC" 1
check "... naming the file: refusing to overwrite it" \
    grep -qF "$T/old.json: already exists; refusing to overwrite it" "$T/ctl.err"
check_eq "... the file is untouched" "$(cat "$T/old.json") $(stat -c %a "$T/old.json")" "old 644"
ctl_ok "export --out EXISTING --force (issue 11)" export nimble-01 --out "$T/old.json" --force
check_eq "... replaces it with the export, mode 0600" \
    "$(stat -c %a "$T/old.json") $(head -c 10 "$T/old.json")" '600 {"server":'
if "$PY" -m json.tool "$T/old.json" >/dev/null; then ok "... which parses with json.tool"; else not_ok "... which parses with json.tool"; fi
check "... and leaves no temporary file" bash -c "! compgen -G '$T/old.json.*' >/dev/null"
ctl_ok "export --out NEW --force (issue 11)" export nimble-01 --format msgpack --out "$T/new.mp" --force
check_eq "... a new file, mode 0600" "$(stat -c %a "$T/new.mp")" 600
ctl export nimble-01 --force
check_eq "export --force without --out -> 64" "$CTL_RC" 64
check_eq "the refused exports recorded nothing" \
    "$(sql "SELECT count(*) FROM activity WHERE action = 'export' AND server_id = $NID")" 5

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
check_eq "purge: the purged frames' samples are gone, the rest stay" "$(samples "$NID")" "4 8 4 7"
check_eq "purge: no sample of a purged seq" \
    "$(sql "SELECT count(*) FROM (SELECT seq FROM server_samples WHERE server_id = $NID AND seq <= 2
            UNION ALL SELECT seq FROM stream_samples WHERE server_id = $NID AND seq <= 2
            UNION ALL SELECT seq FROM geo_samples WHERE server_id = $NID AND seq <= 2)")" 0
check_eq "the other server's frames are untouched" "$(sql "SELECT count(*) FROM frames WHERE server_id = $WID")" 3
check_eq "the other server's samples are untouched" "$(samples "$WID")" "3 6 3 4"
# stream paths: kept while samples may use them; a path last used long
# before the cutoff goes (nimble-01's seq1/seq2 paths, aged by hand)
sql "UPDATE stream_paths SET last_ms = last_ms - 40 * $DAY WHERE server_id = $NID AND stream IN ('seq1', 'seq2')"
gen0=$(sql "SELECT value FROM meta WHERE key = 'stream_paths_generation'")
ctl_ok "purge --older-than 30d again (stream paths)" --json purge --older-than 30d
check_eq "purge: the two unused stream paths are gone" \
    "$(sql "SELECT group_concat(stream) FROM (SELECT stream FROM stream_paths WHERE server_id = $NID ORDER BY stream)")" \
    "nimble-01-cam,seq3,seq4,seq5,seq6"
check_eq "purge: stream_paths_generation advanced (the gateway forgets cached ids)" \
    "$(sql "SELECT value - $gen0 FROM meta WHERE key = 'stream_paths_generation'")" 1
sql "DELETE FROM activity WHERE action = 'purge' AND json_extract(details, '\$.frames') = 0"
check_eq "purge recorded with its count, complete" \
    "$(sql "SELECT actor || ' ' || json_extract(details, '\$.frames') || ' ' || json_extract(details, '\$.complete') FROM activity WHERE action = 'purge'")" "tester 2 1"

# ---- erase -------------------------------------------------------------------
ctl erase nimble-01
check_eq "erase without --yes -> 64" "$CTL_RC" 64
check_eq "... and nothing is erased" "$(sql "SELECT count(*) FROM frames WHERE server_id = $NID")" 4
ctl erase nobody --yes
check_eq "erase of an unknown server -> 1" "$CTL_RC" 1
ctl_ok "erase nimble-01 --yes" erase nimble-01 --yes
check_eq "no frames of the erased server" "$(sql "SELECT count(*) FROM frames WHERE server_id = $NID")" 0
check_eq "no samples or stream paths of the erased server" "$(samples "$NID")" "0 0 0 0"
rows_of_nid=0
for t in $(sql "SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) c
                WHERE m.type = 'table' AND c.name = 'server_id'"); do
    rows_of_nid=$((rows_of_nid + $(sql "SELECT count(*) FROM $t WHERE server_id = $NID")))
done
check_eq "no row with the erased server's id in any table ($(sql "SELECT count(*) FROM sqlite_master m JOIN pragma_table_info(m.name) c WHERE m.type = 'table' AND c.name = 'server_id'") tables)" "$rows_of_nid" 0
check_eq "the erased server's stream names are gone" \
    "$(sql "SELECT count(*) FROM stream_paths WHERE stream = 'nimble-01-cam'")" 0
check_eq "no pins of the erased server" "$(sql "SELECT count(*) FROM server_pins WHERE server_id = $NID")" 0
check_eq "no servers row" "$(sql "SELECT count(*) FROM servers WHERE name = 'nimble-01'")" 0
check_eq "no activity rows of the erased server" "$(sql "SELECT count(*) FROM activity WHERE server_id = $NID")" 0
check_eq "one erase row, no server, the name and counts in details" \
    "$(sql "SELECT actor, server_id IS NULL, json_extract(details, '\$.server'), json_extract(details, '\$.frames') FROM activity WHERE action = 'erase'")" \
    "tester|1|nimble-01|4"
check_eq "the erase row counts the samples" \
    "$(sql "SELECT json_extract(details, '\$.samples') FROM activity WHERE action = 'erase'")" 21
check_eq "the other server's frames are untouched" "$(sql "SELECT count(*) FROM frames WHERE server_id = $WID")" 3
check_eq "the other server's samples are untouched by the erase" "$(samples "$WID")" "3 6 3 4"
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
check_eq "retention removes the old frame's samples too" \
    "$(sql "SELECT count(*) FROM server_samples WHERE server_id = $WID AND seq = 1") $(sql "SELECT count(*) FROM stream_samples WHERE server_id = $WID AND seq = 1")" "0 0"
gpurge() { [[ $(sql "SELECT count(*) FROM activity WHERE action = 'purge' AND actor = 'gateway'") -ge 1 ]]; }
if wait_until 5 gpurge; then ok "the gateway's purge is in the activity log"; else not_ok "the gateway's purge is in the activity log"; fi
check_eq "gateway purge details" \
    "$(sql "SELECT json_extract(details, '\$.frames') || ' ' || json_extract(details, '\$.complete') FROM activity WHERE action = 'purge' AND actor = 'gateway' LIMIT 1")" "1 1"

gw_stop_check

# ---- purge --older-than 0 (issue 11): every frame received before now --------
# one frame received a moment ago, one "from the future" (a clock stepped back)
sql "INSERT INTO frames VALUES ($WID, 900, 0, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) - 1, NULL, x'80'),
                               ($WID, 901, 0, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) + 600000, NULL, x'80')"
before=$(sql "SELECT count(*) FROM frames")
ctl_ok "purge --older-than 0 (issue 11)" --json purge --older-than 0
check_eq "... deletes every frame received before now" \
    "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["frames"])' "$T/ctl.out")" $((before - 1))
check_eq "... and keeps the one received after now" "$(sql "SELECT group_concat(seq) FROM frames")" 901
check_eq "... recorded" \
    "$(sql "SELECT json_extract(details, '\$.frames') || ' ' || json_extract(details, '\$.complete') FROM activity WHERE action = 'purge' AND actor = 'tester' ORDER BY id DESC LIMIT 1")" \
    "$((before - 1)) 1"
ctl purge --older-than 0s
check_eq "purge --older-than 0s -> 0" "$CTL_RC" 0

# no viewer IP anywhere in the database file
if grep -aqF -e 203.0.113.77 -e 2001:db8::77 "$PG_DB"* 2>/dev/null; then
    not_ok "no viewer IP text in the database files"
else
    ok "no viewer IP text in the database files"
fi
finish
