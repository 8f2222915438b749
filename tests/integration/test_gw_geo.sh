#!/usr/bin/env bash
# test_gw_geo.sh - the privacy reduction end to end: a gateway configured
# with small MaxMind-format databases (built here by
# tests/data/make_test_mmdb.pl) stores each frame's viewer connections as
# aggregates per (country, ASN) under "viewers", with no "conns"; reloads
# swap the databases (a reload that cannot open one keeps the running
# ones); --check-config opens them; and no viewer IP, as text or as 4/16-byte
# binary, is in the database files or the logs.
. "$(dirname "$0")/lib.sh"

make_pki
perl "$PANELGATE_SOURCE_DIR/tests/data/make_test_mmdb.pl" "$T" >"$T/mmdb.log" 2>&1 ||
    { cat "$T/mmdb.log"; fatal "test databases built (libmaxmind-db-writer-perl)"; }
COUNTRY_DB=$T/test-country.mmdb
ASN_DB=$T/test-asn.mmdb

# ---- --check-config opens the databases -------------------------------------------

gw_config "[geo]" "country_db = $COUNTRY_DB" "asn_db = $T/missing-asn.mmdb"
rc=0
"$PG_BIN" --config "$GW_CONF" --check-config >"$T/check.out" 2>"$T/check.err" || rc=$?
check_eq "--check-config with a missing asn_db exits 78" "$rc" 78
check "--check-config names the missing database" grep -q "asn_db $T/missing-asn.mmdb" "$T/check.err"
printf 'not a database\n' >"$T/garbage.mmdb"
gw_config "[geo]" "country_db = $T/garbage.mmdb"
rc=0
"$PG_BIN" --config "$GW_CONF" --check-config >"$T/check.out" 2>"$T/check.err" || rc=$?
check_eq "--check-config with a corrupt country_db exits 78" "$rc" 78
check "--check-config names the corrupt database" grep -q "country_db $T/garbage.mmdb" "$T/check.err"
gw_config "[geo]" "country_db = $COUNTRY_DB" "asn_db = $ASN_DB"
rc=0
"$PG_BIN" --config "$GW_CONF" --check-config >"$T/check.out" 2>"$T/check.err" || rc=$?
check_eq "--check-config with both databases exits 0" "$rc" 0

# ---- the gateway with both databases ---------------------------------------------------

gw_start
check "the start log names both databases" \
    grep -q '"event":"geo_databases".*country=PanelgateTest-Country/.*asn=PanelgateTest-ASN/' "$GW_LOG"
register_defaults
NIMBLE_ID=$(server_id nimble-01)
WOWZA_ID=$(server_id wowza-01)
export NIMBLE_ID WOWZA_ID PG_DB PG_VIEWERS=$T/viewers.json

cat >"$T/geo.py" <<'EOF'
"""geo.py PHASE: frames for test_gw_geo.sh and checks of what was stored."""
import ipaddress, json, os, sqlite3, sys
import h2client as hc

ok = hc.Checks()

# what tests/data/make_test_mmdb.pl maps (longest prefix wins)
COUNTRY = [("192.0.2.0/24", "DE"), ("198.51.100.0/24", "FR"), ("203.0.113.0/24", "US"),
           ("198.18.0.0/15", "NL"), ("198.51.100.128/25", "ZZ"), ("2001:db8:1::/48", "JP"),
           ("2001:db8:2::/48", "DE"), ("2001:db8:3::/48", "ZZ")]
ASN = [("192.0.2.0/24", 64500), ("198.51.100.0/24", 64501), ("2001:db8:1::/48", 64502),
       ("2001:db8:2::/48", 64500), ("198.18.0.0/15", 64510)]


def lpm(table, ip, miss):
    best, val = -1, miss
    for net, v in table:
        n = ipaddress.ip_network(net)
        if n.version == ip.version and ip in n and n.prefixlen > best:
            best, val = n.prefixlen, v
    return val


# the mixed frame: (address, bucket with both databases); private ones are
# never looked up (10/8 and fc00::/7 are mapped to CN/64999 on purpose)
MIXED = [
    ("192.0.2.71", "DE", 64500), ("::ffff:192.0.2.78", "DE", 64500),
    ("2001:db8:2::77:88", "DE", 64500), ("198.51.100.77", "FR", 64501),
    ("198.51.100.177", "ZZ", 64501), ("203.0.113.177", "US", 0), ("198.18.77.88", "NL", 64510),
    ("2001:db8:1::77:88", "JP", 64502), ("2001:db8:3::77:88", "ZZ", 0),
    ("2001:db8:fe::77:88", "ZZ", 0), ("10.77.88.99", "XP", 0), ("192.168.77.88", "XP", 0),
    ("172.16.77.88", "XP", 0), ("100.64.77.88", "XP", 0), ("169.254.77.88", "XP", 0),
    ("127.77.88.99", "XP", 0), ("fe80::77:88", "XP", 0), ("fd12:3456::77:88", "XP", 0),
    ("::ffff:10.77.88.98", "XP", 0),
]


def bucket(cc, asn, mode):
    if cc == "XP":
        return ("XP", 0)
    return (cc if mode in ("both", "country") else "--", asn if mode in ("both", "asn") else 0)


def aggregate(rows, mode):
    """rows: (cc-with-both, asn-with-both, in, out) -> the expected viewers list."""
    acc = {}
    for cc, asn, i, o in rows:
        k = bucket(cc, asn, mode)
        a = acc.setdefault(k, [0, 0, 0])
        a[0] += 1
        a[1] += i
        a[2] += o
    return [{"cc": k[0], "asn": k[1], "conns": v[0], "in": v[1], "out": v[2]}
            for k, v in sorted(acc.items())]


def stored(sid, seq):
    db = sqlite3.connect(os.environ["PG_DB"])
    row = db.execute("SELECT body FROM frames WHERE server_id = ? AND seq = ?", (sid, seq)).fetchone()
    db.close()
    return hc.unpack(row[0]) if row else None


def check_mixed(seq, mode, cert="nimble-01"):
    conns = [(ip, 1000 + i, 100000 + i) for i, (ip, _, _) in enumerate(MIXED)]
    c = hc.connect(cert)
    r = c.post(hc.pack(hc.minimal_frame(seq, conns=conns)))
    c.close()
    ok(r.status == 202, "mixed frame seq %d -> 202" % seq, r)
    body = stored(int(os.environ["NIMBLE_ID"]), seq)
    ok(body is not None and "conns" not in body, "seq %d stored without conns" % seq)
    want = aggregate([(cc, asn, 1000 + i, 100000 + i) for i, (_, cc, asn) in enumerate(MIXED)], mode)
    got = body.get("viewers") if body else None
    ok(got == want, "seq %d: viewers are the %s aggregates" % (seq, mode),
       "\n  got  %s\n  want %s" % (got, want))


phase = sys.argv[1]
if phase == "both":
    # remember every viewer address for the scan at the end
    viewers = {ip for ip, _, _ in MIXED}
    for name in ("nimble.json", "wowza.json"):
        viewers |= {c["ip"] for c in hc.load_json(name)["conns"]}
    json.dump(sorted(viewers), open(os.environ["PG_VIEWERS"], "w"))

    check_mixed(1, "both")
    for cert, name, env in (("nimble-01", "nimble.json", "NIMBLE_ID"),
                            ("wowza-01", "wowza.json", "WOWZA_ID")):
        c = hc.connect(cert, v6=(cert == "wowza-01"))
        r = c.post(hc.pack(hc.load_frame(name)))
        c.close()
        ok(r.status == 202, "%s -> 202" % name, r)
        orig = hc.load_json(name)
        body = stored(int(os.environ[env]), orig["seq"])
        ok(body is not None and "conns" not in body, "%s stored without conns" % name)
        rows = []
        for x in orig["conns"]:
            ip = ipaddress.ip_address(x["ip"])
            rows.append((lpm(COUNTRY, ip, "ZZ"), lpm(ASN, ip, 0), x["in"], x["out"]))
        want = aggregate(rows, "both")
        got = body.get("viewers") if body else None
        ok(got == want, "%s: %d connections -> %d buckets, as the test databases map them"
           % (name, len(rows), len(want)), "\n  got  %s\n  want %s" % (got, want))
        ok(body and body["vhosts"] == orig["vhosts"] and body["traffic"] == orig["traffic"],
           "%s: streams and traffic stored as sent" % name)
elif phase in ("country", "asn", "none"):
    check_mixed(int(sys.argv[2]), phase)
elif phase == "empty":
    c = hc.connect("nimble-01")
    r = c.post(hc.pack(hc.minimal_frame(int(sys.argv[2]))))
    c.close()
    ok(r.status == 202, "frame without connections -> 202", r)
    body = stored(int(os.environ["NIMBLE_ID"]), int(sys.argv[2]))
    ok(body is not None and "viewers" not in body and "conns" not in body,
       "a frame without connections is stored without viewers", body)
else:
    raise SystemExit("unknown phase " + phase)
EOF

py_checks "$T/geo.py" both
py_checks "$T/geo.py" empty 2

# ---- reloads -----------------------------------------------------------------------------

gw_config "[geo]" "country_db = $COUNTRY_DB"
gw_reload
check "the reload log: country only" grep -q '"event":"geo_databases".*asn=none' "$GW_LOG"
py_checks "$T/geo.py" country 3

gw_config "[geo]" "asn_db = $ASN_DB"
gw_reload
py_checks "$T/geo.py" asn 4

# a database that cannot be opened: the reload is refused, the running
# databases (ASN only) stay
gw_config "[geo]" "country_db = $T/missing-country.mmdb" "asn_db = $ASN_DB"
f0=$(log_count '"event":"reload_failed"')
kill -HUP "$GW_PID"
wait_log '"event":"reload_failed"' $((f0 + 1)) || not_ok "a reload with a missing database fails"
check "reload_failed names the missing database" grep -q 'reload_failed.*missing-country.mmdb' "$GW_LOG"
py_checks "$T/geo.py" asn 5

gw_config
gw_reload
check "the reload log: no databases" grep -q '"event":"geo_databases","msg":"country=none asn=none"' "$GW_LOG"
py_checks "$T/geo.py" none 6

# ---- no viewer IP anywhere -------------------------------------------------------------------

mkdir -p "$T/live"
for f in "$PG_DB" "$PG_DB-wal" "$PG_DB-shm"; do [[ -e $f ]] && cp "$f" "$T/live/"; done
gw_stop_check

py_checks - "$T/live" "$PG_DB" "$PG_DB-wal" "$PG_DB-shm" "$GW_LOG" "$T/gw.out" <<'EOF'
import ipaddress, json, os, sys

import h2client as hc

ok = hc.Checks()
viewers = json.load(open(os.environ["PG_VIEWERS"]))
files = hc.files_of(sys.argv[1:])
needles = hc.ip_needles(viewers)
print("# searching %d files for %d viewer IPs (%d patterns)" % (len(files), len(viewers), len(needles)))
for path in files:
    data = open(path, "rb").read()
    hits = ["%s as %s at %d" % (v, kind, data.find(n)) for v, kind, n in needles if n in data]
    ok(not hits, "no viewer IP in %s (%d bytes)" % (os.path.relpath(path, os.path.dirname(os.environ["PG_DB"])),
                                                    len(data)), hits[:5])
# control: the server's own address (server.ips of the samples) is stored, as binary
ctl = ipaddress.ip_address("198.51.100.23").packed
ok(any(ctl in open(p, "rb").read() for p in files),
   "control: the search finds a stored server address (198.51.100.23) as binary")
EOF

finish
