#!/usr/bin/env bash
# test_gw_storage.sh - the panel-facing tables (docs/STORAGE.md) hold
# exactly what the frames carried: server_samples (load, traffic, viewer
# connections), stream_samples along stream_paths (vhost/app/instance/
# stream), geo_samples (the viewers buckets, with the test geo databases);
# values are checked against the frames as sent.  A resent frame (same seq)
# adds nothing anywhere; two streams of the same path in one frame are
# added together; values above 2^63-1 saturate.  A storage schema 1 file
# (frames only) is migrated at start: its frames stay, the new tables start
# empty.  The example queries of STORAGE.md run on the result.  No viewer
# IP in the database files.
. "$(dirname "$0")/lib.sh"

perl "$PANELGATE_SOURCE_DIR/tests/data/make_test_mmdb.pl" "$T" >"$T/mmdb.log" 2>&1 ||
    { cat "$T/mmdb.log"; fatal "test databases built (libmaxmind-db-writer-perl)"; }
make_pki

# ---- a schema-1 file: frames only, as the gateway wrote it before --------
sqlite3 "$PG_DB" "CREATE TABLE frames(server_id INTEGER NOT NULL, seq INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL, reported_name TEXT,
    body BLOB NOT NULL, PRIMARY KEY(server_id, seq)) WITHOUT ROWID;
  CREATE INDEX frames_received ON frames(received_ms);
  INSERT INTO frames VALUES(999, 1, 1, 1, 'old', x'80');" || fatal "schema-1 file"

gw_config "[geo]" "country_db = $T/test-country.mmdb" "asn_db = $T/test-asn.mmdb"
gw_start
register_defaults
check_eq "migration: storage_schema_version 2" \
    "$(sql "SELECT value FROM meta WHERE key = 'storage_schema_version'")" 2
check_eq "migration: the old frame stays" "$(sql "SELECT reported_name FROM frames WHERE server_id = 999")" old
check_eq "migration: the new tables start empty (no backfill)" \
    "$(sql "SELECT (SELECT count(*) FROM server_samples) + (SELECT count(*) FROM stream_samples) + (SELECT count(*) FROM geo_samples)")" 0
export NID=$(server_id nimble-01) WID=$(server_id wowza-01) PG_DB

py_checks - <<'EOF'
import os, sqlite3, time
import h2client as hc
ok = hc.Checks()
NID, WID = int(os.environ["NID"]), int(os.environ["WID"])
BIG = 2**64 - 1

def frame(seq, cpu, streams, conns, kind="nimble"):
    d = hc.minimal_frame(seq, name="edge-%d.example" % seq, kind=kind, conns=conns)
    d["ts"] = 1700000000000 + seq * 5000
    d["load"] = {"cpu": cpu, "ram_used": 1000 + seq, "ram_total": 8000}
    d["traffic"] = {"in": 10 * seq, "out": BIG if seq == 3 else 20 * seq, "period_ms": 5000}
    vh = {}
    for v, a, i, s, viewers, bitrate, bin_, bout in streams:
        vh.setdefault(v, {}).setdefault(a, {}).setdefault(i, []).append(
            {"name": s, "viewers": viewers, "bitrate": bitrate, "in": bin_, "out": bout})
    d["vhosts"] = [{"name": v, "apps": [{"name": a, "instances": [{"name": i, "streams": ss}
                    for i, ss in insts.items()]} for a, insts in apps.items()]}
                   for v, apps in vh.items()]
    return d

S = [("_defaultVHost_", "live", "_definst_", "cam1", 5, 2500000, 100, 500),
     ("_defaultVHost_", "live", "_definst_", "cam2", 0, 800000, 50, 0),
     ("_defaultVHost_", "vod", "_definst_", "cam1", 2, 1000000, 10, 20),
     ("edge", "live", "_definst_", "cam1", 7, 3000000, 70, 700)]
C = [("192.0.2.10", 100, 1000), ("192.0.2.11", 1, 2),        # DE / 64500
     ("198.51.100.7", 5, 50),                                 # FR / 64501
     ("10.1.2.3", 7, 70), ("2001:db8:1::5", 9, 90)]           # XP / 0, JP / 64502
sent = {}
c = hc.connect("nimble-01")
for seq in (1, 2, 3):
    ss = [s[:4] + (s[4] + seq, s[5], s[6] * seq, s[7] * seq) for s in S]
    if seq == 2:   # the same path twice in one frame: added together
        ss.append(("_defaultVHost_", "live", "_definst_", "cam1", 1, 1, 1, 1))
    if seq == 3:   # above 2^63-1: saturates
        ss[1] = ss[1][:4] + (BIG, 1, 1, 1)
    f = frame(seq, 10.0 + seq, ss, C)
    sent[seq] = (f, ss)
    r = c.post(hc.pack(f))
    ok(r.status == 202, "nimble-01 frame %d -> 202" % seq, r)
r = c.post(hc.pack(sent[2][0]))
ok(r.status == 202, "resent frame 2 -> 202", r)
r = c.post(hc.pack(frame(2, 99.0, [("x", "y", "z", "other", 1, 1, 1, 1)], [("192.0.2.99", 1, 1)])))
ok(r.status == 202, "a different frame with seq 2 -> 202 (duplicate)", r)
c.close()
w = hc.connect("wowza-01")
r = w.post(hc.pack(frame(1, 50.0, S[:1], [], kind="wowza")))
ok(r.status == 202, "wowza-01 frame 1 -> 202", r)
w.close()

db = sqlite3.connect(os.environ["PG_DB"], timeout=10)
q = lambda sql, *a: db.execute(sql, a).fetchall()
I64 = 2**63 - 1

# server_samples: one row per frame, values as sent
rows = q("SELECT seq, ts_ms, cpu_pct, ram_used, ram_total, bytes_in, bytes_out, period_ms, conns"
         " FROM server_samples WHERE server_id = ? ORDER BY ts_ms", NID)
want = [(s, 1700000000000 + s * 5000, 10.0 + s, 1000 + s, 8000, 10 * s,
         I64 if s == 3 else 20 * s, 5000, len(C)) for s in (1, 2, 3)]
ok(rows == want, "server_samples: one row per frame with load, traffic and conns as sent", rows)

# stream_samples joined to stream_paths: per frame, the streams as sent
for seq in (1, 2, 3):
    got = q("SELECT p.vhost, p.app, p.instance, p.stream, s.viewers, s.bitrate, s.bytes_in, s.bytes_out"
            " FROM stream_samples s JOIN stream_paths p ON p.id = s.stream_id"
            " WHERE s.server_id = ? AND s.seq = ? ORDER BY 1, 2, 3, 4", NID, seq)
    agg = {}
    for v, a, i, n, *vals in sent[seq][1]:
        prev = agg.get((v, a, i, n))
        vals = [min(x, I64) for x in vals]
        agg[(v, a, i, n)] = vals if prev is None else [min(x + y, I64) for x, y in zip(prev, vals)]
    exp = sorted(k + tuple(v) for k, v in agg.items())
    ok(got == exp, "stream_samples of frame %d: every path with its values as sent" % seq, (got, exp))
ok(q("SELECT count(*) FROM stream_paths WHERE server_id = ?", NID) == [(4,)],
   "stream_paths: 4 distinct paths for nimble-01, shared by its frames")
ok(q("SELECT count(*) FROM stream_paths WHERE server_id = ?", WID) == [(1,)],
   "stream_paths: wowza-01 has its own entry for the same names")

# geo_samples: the buckets of the test databases
geo = q("SELECT cc, asn, conns, bytes_in, bytes_out FROM geo_samples WHERE server_id = ? AND seq = 1"
        " ORDER BY cc, asn", NID)
ok(geo == [("DE", 64500, 2, 101, 1002), ("FR", 64501, 1, 5, 50), ("JP", 64502, 1, 9, 90),
           ("XP", 0, 1, 7, 70)], "geo_samples of frame 1: country/ASN buckets with conns and bytes", geo)
ok(q("SELECT count(*) FROM geo_samples WHERE server_id = ?", WID) == [(0,)],
   "geo_samples: none for a frame without connections")

# duplicates: nothing added anywhere
ok(q("SELECT count(*) FROM frames WHERE server_id = ?", NID) == [(3,)], "frames: 3 rows for 3 seqs")
ok(q("SELECT count(*) FROM server_samples WHERE server_id = ? AND seq = 2", NID) == [(1,)]
   and q("SELECT cpu_pct FROM server_samples WHERE server_id = ? AND seq = 2", NID) == [(12.0,)],
   "resent seq 2: still one server sample, the first one's values")
ok(q("SELECT count(*) FROM stream_samples WHERE server_id = ? AND seq = 2", NID) == [(4,)]
   and q("SELECT count(*) FROM stream_paths WHERE stream = 'other'") == [(0,)],
   "resent seq 2: no second stream sample, no path from the duplicate")
ok(q("SELECT sum(conns) FROM geo_samples WHERE server_id = ? AND seq = 2", NID) == [(5,)],
   "resent seq 2: no second geo sample")

# the example queries of docs/STORAGE.md run and agree with what was sent
cpu = q("SELECT s.ts_ms, s.cpu_pct, s.ram_used, s.ram_total FROM servers v"
        " JOIN server_samples s ON s.server_id = v.id"
        " WHERE v.name = 'nimble-01' AND s.ts_ms >= ? ORDER BY s.ts_ms", 1700000000000)
ok([r[1] for r in cpu] == [11.0, 12.0, 13.0], "STORAGE.md query: CPU/RAM of one server", cpu)
views = q("SELECT p.vhost || '/' || p.app || '/' || p.instance || '/' || p.stream AS path,"
          " s.ts_ms / 60000 * 60000 AS minute, total(x.viewers) AS viewers"
          " FROM server_samples s"
          " JOIN stream_samples x ON x.server_id = s.server_id AND x.seq = s.seq"
          " JOIN stream_paths p ON p.id = x.stream_id"
          " WHERE s.server_id IN (SELECT id FROM servers) AND s.ts_ms >= ?"
          " GROUP BY path, minute ORDER BY path, minute", 1700000000000)
ok(("edge/live/_definst_/cam1", 1699999980000, 8.0 + 9 + 10) in views,
   "STORAGE.md query: viewers per stream over time", views)
top = q("SELECT g.cc, g.asn, sum(g.conns) AS conns FROM servers v"
        " JOIN server_samples s ON s.server_id = v.id AND s.ts_ms >= ? AND s.ts_ms < ?"
        " JOIN geo_samples g ON g.server_id = s.server_id AND g.seq = s.seq"
        " GROUP BY g.cc, g.asn ORDER BY conns DESC, g.cc LIMIT 10",
        1700000000000, 1700000000000 + 86400000)
ok(top[0] == ("DE", 64500, 6), "STORAGE.md query: top countries/ASNs by connections", top)
traffic = q("SELECT v.name, s.ts_ms / 300000 * 300000 AS bucket, total(s.bytes_in), total(s.bytes_out)"
            " FROM servers v JOIN server_samples s ON s.server_id = v.id"
            " WHERE s.ts_ms >= ? GROUP BY v.name, bucket ORDER BY v.name, bucket", 1700000000000)
ok(traffic == [("nimble-01", 1699999800000, 60.0, float(20 + 40 + I64)),
               ("wowza-01", 1699999800000, 10.0, 20.0)],
   "STORAGE.md query: traffic per server per 5 minutes (total(): saturated values stay summable)",
   traffic)
ok(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "PRAGMA integrity_check ok")
EOF

gw_stop_check
if grep -aqF -e 192.0.2.10 -e 192.0.2.11 -e 198.51.100.7 -e 10.1.2.3 -e 2001:db8:1::5 -e 192.0.2.99 "$PG_DB"* 2>/dev/null; then
    not_ok "no viewer IP text in the database files"
else
    ok "no viewer IP text in the database files"
fi
finish
