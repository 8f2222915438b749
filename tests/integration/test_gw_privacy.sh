#!/usr/bin/env bash
# test_gw_privacy.sh - no viewer IP leaves the gateway process: after the
# sample frames (and frames with extra-distinctive viewer addresses, some of
# them refused, one with a viewer IP as a map key) went through, every byte of the database files (while the
# gateway runs and after it stopped) and of its log is searched for each
# viewer IP, as text and as raw 4/16-byte binary; none may be found.  The
# connections' count and traffic must still be there: without [geo]
# databases, the stored body has no "conns" and one "viewers" aggregate
# ("--", asn 0) for the public addresses (docs/OPERATIONS.md section 6).
. "$(dirname "$0")/lib.sh"

make_pki
gw_config "[http2]" "max_body_bytes = 64k"
gw_start
register_defaults
NIMBLE_ID=$(server_id nimble-01)
WOWZA_ID=$(server_id wowza-01)
export NIMBLE_ID WOWZA_ID PG_VIEWERS=$T/viewers.json PG_DB

py_checks - <<'EOF'
import json, os
import h2client as hc

ok = hc.Checks()
# distinctive viewer addresses (documentation ranges; never a server address)
EXTRA = ["203.0.113.77", "2001:db8:dead:beef::77", "198.18.77.77", "2001:db8:77:77:77:77:77:77",
         "192.0.2.177", "2001:db8:beef::1234:77"]
REFUSED = ["203.0.113.78", "2001:db8:dead:beef::78"]   # only ever in refused frames
viewers, servers = set(EXTRA + REFUSED), set()
for name in ("nimble.json", "wowza.json"):
    d = hc.load_json(name)
    viewers |= {c["ip"] for c in d["conns"]}
    servers |= set(d["server"]["ips"])
servers |= {"127.0.0.1", "::1"}       # peer addresses the gateway may log
ok(not (set(EXTRA + REFUSED) & servers), "the distinctive viewer IPs are no server/peer address")
both = viewers & servers
# tests/data/gen_samples.py keeps the two apart, so every viewer IP is searched
ok(not both, "no sample viewer IP is also a server or peer address", sorted(both))
viewers -= servers
json.dump(sorted(viewers), open(os.environ["PG_VIEWERS"], "w"))

c = hc.connect("nimble-01")
r = c.post(hc.pack(hc.load_frame("nimble.json")))
ok(r.status == 202, "nimble sample -> 202", r)
extra = hc.minimal_frame(7001, conns=[(ip, 100 + i, 1000 + i) for i, ip in enumerate(EXTRA)])
extra["server"]["ips"] = [hc.ip_bytes("198.51.100.23")]
r = c.post(hc.pack(extra))
ok(r.status == 202, "frame with the distinctive viewer IPs -> 202", r)
# refused frames carrying viewer IPs: an error must not echo or log them
bad = hc.minimal_frame(7002, conns=[(REFUSED[0], 1, 2), (REFUSED[1], 3, 4)])
bad["conns"][1]["out"] = -4
r = c.post(hc.pack(bad))
ok(r.status == 400, "refused frame (conns[1].out negative) -> 400", r)
bad2 = hc.minimal_frame(7003, conns=[(REFUSED[0], 1, 2)])
bad2["conns"][0]["ip"] = hc.ip_bytes(REFUSED[1]) + b"\x00"
r = c.post(hc.pack(bad2))
ok(r.status == 400 and REFUSED[1] not in r.body.decode(), "refused frame (17-byte ip) -> 400", r)
# issue 11: a viewer IP sent as a map key inside a connection entry came
# back in the 400 detail ("conns[0].172.26.175.67: reserved byte 0xc1");
# an unknown key is named by its position, never by its bytes
bad3 = hc.minimal_frame(7005, conns=[(EXTRA[0], 1, 2)])
bad3["conns"][0][REFUSED[0]] = hc.Raw(b"\xc1")
r = c.post(hc.pack(bad3))
detail = r.body.decode(errors="replace")
ok(r.status == 400 and REFUSED[0] not in detail and "conns[0].<key " in detail,
   "viewer IP as a key in conns[0] -> 400 that names the key's position, not the key", r)
big = hc.minimal_frame(7004, conns=[(REFUSED[i % 2], i, i) for i in range(6000)])
r = c.post(hc.pack(big))
ok(r.status == 413, "frame over max_body_bytes with viewer IPs -> 413", r)
c.close()
w = hc.connect("wowza-01")
r = w.post(hc.pack(hc.load_frame("wowza.json")))
ok(r.status == 202, "wowza sample -> 202", r)
w.close()
EOF

# snapshot the database files while the gateway runs (the WAL has the pages)
mkdir -p "$T/live"
for f in "$PG_DB" "$PG_DB-wal" "$PG_DB-shm"; do [[ -e $f ]] && cp "$f" "$T/live/"; done
check "the live WAL file exists and is not empty" test -s "$T/live/pg.db-wal"
gw_stop_check

py_checks - "$T/live" "$PG_DB" "$PG_DB-wal" "$PG_DB-shm" "$GW_LOG" "$T/gw.out" <<'EOF'
import ipaddress, json, os, socket, sqlite3, sys
import h2client as hc

ok = hc.Checks()
viewers = json.load(open(os.environ["PG_VIEWERS"]))
files = hc.files_of(sys.argv[1:])
needles = hc.ip_needles(viewers)
print("# searching %d files for %d viewer IPs (%d patterns)" % (len(files), len(viewers),
      len(needles)), flush=True)
for path in files:
    data = open(path, "rb").read()
    hits = []
    for v, kind, n in needles:
        i = data.find(n)
        if i >= 0:
            hits.append("%s as %s at %d (context %s)" % (v, kind, i, data[max(0, i - 8):i + len(n) + 8].hex()))
    ok(not hits, "no viewer IP in %s (%d bytes)" % (os.path.relpath(path, os.path.dirname(os.environ["PG_DB"])),
                                                    len(data)), hits[:5])

# control: the method finds what is there (server.ips are stored, as binary)
ctl = ipaddress.ip_address("198.51.100.23").packed
found = [os.path.basename(p) for p in files if ctl in open(p, "rb").read()]
ok(found, "control: the search does find a server address (198.51.100.23, stored in server.ips) "
   "as binary: %s" % ", ".join(found))

db = sqlite3.connect(os.environ["PG_DB"])
nid, wid = int(os.environ["NIMBLE_ID"]), int(os.environ["WOWZA_ID"])
for sid, name, seq in [(nid, "nimble.json", 48213), (wid, "wowza.json", 917)]:
    row = db.execute("SELECT body FROM frames WHERE server_id = ? AND seq = ?", (sid, seq)).fetchone()
    ok(row is not None, "%s stored" % name)
    if row is None:
        continue
    stored = hc.unpack(row[0])
    orig = hc.load_json(name)
    ok("conns" not in stored, "%s: stored without conns" % name, sorted(stored))
    # the samples' viewers are all public (documentation ranges): one bucket
    want = [{"cc": "--", "asn": 0, "conns": len(orig["conns"]),
             "in": sum(c["in"] for c in orig["conns"]), "out": sum(c["out"] for c in orig["conns"])}]
    ok(stored.get("viewers") == want,
       "%s: all %d connections kept as one count with their traffic" % (name, len(orig["conns"])),
       stored.get("viewers"))
    ok([ipaddress.ip_address(b).compressed for b in stored["server"].get("ips", [])] ==
       [ipaddress.ip_address(a).compressed for a in orig["server"]["ips"]],
       "%s: the server's own addresses (server.ips) are kept" % name)
    ok(stored.get("vhosts") == orig.get("vhosts") and stored["traffic"] == orig["traffic"],
       "%s: streams and traffic stored as sent" % name)
row = db.execute("SELECT body FROM frames WHERE server_id = ? AND seq = 7001", (nid,)).fetchone()
body = hc.unpack(row[0]) if row else {}
ok("conns" not in body and body.get("viewers") ==
   [{"cc": "--", "asn": 0, "conns": 6, "in": sum(100 + i for i in range(6)),
     "out": sum(1000 + i for i in range(6))}],
   "distinctive frame: stored as one aggregate of its 6 connections", body.get("viewers"))
ok(db.execute("SELECT count(*) FROM frames WHERE seq IN (7002, 7003, 7004)").fetchone()[0] == 0,
   "refused frames not stored")
EOF

finish
