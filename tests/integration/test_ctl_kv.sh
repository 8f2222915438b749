#!/usr/bin/env bash
# test_ctl_kv.sh - panelgatectl on the JetStream engine's registry bucket
# and activity stream (issue 12; gateway/storage/regkv.h), on a real 3-node
# cluster, against panelgatectl on an SQLite file.
#  1. The same command sequence (register two servers, refusals, rotate,
#     revoke twice, list, show, activity with filters, export, erase,
#     purge; text and --json) on an SQLite file (--db) and on the bucket
#     (--config with storage_engine = jetstream): stdout, stderr and exit
#     statuses match once times, fingerprints, serials and the details only
#     the cluster's rows carry (docs/STORAGE.md) are normalised.
#  2. The bucket holds what the contract says: schema 1, next_id, the
#     server.* records (a '.' as =2e), the pin.* index; the activity stream
#     one message per row on <prefix>.<id> / <prefix>.0.
#  3. Two panelgatectl registering at once, many rounds: never the same id;
#     two registering one key at once: exactly one wins, the other is
#     "pinned already"; a pinned key is refused.
#  4. erase purges the server's messages from the frames stream (and only
#     its), with the count; purge --older-than 0 empties it.
#  5. An orphan pin index (its server gone) is taken over after the grace,
#     at once when its id is not the record's; a bucket value that breaks
#     the layout is refused with its key named, never its value.
#  6. An erase that fails half way (its frames stream's only node down)
#     leaves the server revoked, and run again once the node is back it
#     completes: the messages leave the frames stream, the key and the pin
#     the bucket, and one erase row counts them.
#  7. import-registry copies the SQLite file's servers and pins into a new
#     bucket (the same list --json, ids kept, next_id past the file's last
#     id, one import_registry row); a bucket that handed out ids is
#     refused; an import stopped half way (a pin index in the way) is run
#     again to the end.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nats.sh"

JSTOOL=${JSTOOL:-$PANELGATE_BUILD_DIR/bin/jstool}
CTL=${PANELGATECTL:-$PANELGATE_BUILD_DIR/bin/panelgatectl}
[[ -x $JSTOOL ]] || fatal "jstool built ($JSTOOL)"
[[ -x $CTL ]] || fatal "panelgatectl built ($CTL)"
BUCKET=pgkv_reg
ASTREAM=PGKV_ACT
APREFIX=pgkv.act
FSTREAM=PGKV_FRAMES
FPREFIX=pgkv.frames

make_pki
nats_cluster_start 3

# the SQLite side: a gateway's file (frames table and all), made by a
# gateway run once; an empty copy of it is the "store" database that
# export reads frames from on the cluster side
gw_config
gw_start
gw_stop
sql "VACUUM INTO '$T/store.db'"

gw_config "[storage]" "storage_engine = jetstream" "[jetstream]" "servers = $NATS_URLS" \
    "replicas = 3" "registry_bucket = $BUCKET" "activity_stream = $ASTREAM" \
    "activity_subject_prefix = $APREFIX" "stream = $FSTREAM" "subject_prefix = $FPREFIX" \
    "connect_timeout_ms = 2000"
KV_CONF=$T/kv.conf
cp "$GW_CONF" "$KV_CONF"

# ---- 1. the same sequence on both backends ----
# seq DIR ARGS...: runs the sequence in DIR (its own PKI, relative paths so
# the outputs name the same files) with the backend ARGS; every command's
# exit status, stdout and stderr into DIR/out
seq_run() {
    local dir=$1 frames_db=$2
    shift 2
    BACKEND=("$@")
    mkdir -p "$dir"
    (
        cd "$dir"
        "$CTL" --pki pki ca init >/dev/null
        cp "$PKI/wowza-01.crt" "$PKI/nimble-01.crt" .
        n=0
        c() {
            n=$((n + 1))
            local rc=0
            "$CTL" --pki pki --actor alice "${BACKEND[@]}" "$@" >"o.$n" 2>"e.$n" || rc=$?
            { echo "### $n: $* -> $rc"; cat "o.$n"; echo "--- stderr"; cat "e.$n"; } >>out
        }
        c register a-1 --kind nimble
        c register b.eu --kind wowza --cert wowza-01.crt
        c register c-1 --kind nimble --cert wowza-01.crt
        c register a-1 --kind nimble --cert nimble-01.crt
        c --json register d-1 --kind nimble --cert nimble-01.crt
        c rotate a-1 --overlap 1h
        c --json rotate d-1 --overlap 30m
        c rotate nope
        c revoke b.eu
        c revoke b.eu
        c --json revoke d-1
        c rotate b.eu
        c list
        c --json list
        c show a-1
        c --json show b.eu
        c show nope
        c activity
        c activity --server a-1
        c activity --action register
        c activity --action cert_issued --limit 2
        c --json activity --server b.eu
        c activity --server nope
        c activity --since 1d --until 2099-01-01
        # two frames of b.eu where export reads them (received in 2100: no
        # purge below touches them)
        bid=$("$CTL" "${BACKEND[@]}" --json show b.eu | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
        sqlite3 "$frames_db" "INSERT INTO frames VALUES($bid, 1, 1000, 4102444800000, 'b-eu', X'81a16101'),
            ($bid, 2, 2000, 4102444800001, NULL, X'81a16102')"
        c export b.eu --out b.json
        cat b.json >>out
        c export b.eu
        c erase a-1 --yes
        c --json erase d-1 --yes
        c erase a-1 --yes
        c purge --older-than 0
        c --json purge --older-than 0
        c list
        c activity
    )
}
seq_run "$T/sq" "$PG_DB" --db "$PG_DB"
seq_run "$T/kv" "$T/store.db" --config "$KV_CONF" --db "$T/store.db"

# normalise: times, fingerprints, serials, the certificates' validity; the
# erase and purge rows' details where the contract differs from the SQLite
# log's (server_id and no samples on erase; no stream_paths or complete on
# purge: docs/STORAGE.md)
norm() {
    sed -E -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z/TIME/g' \
        -e 's/[0-9a-f]{64}/HEX64/g' -e 's/[0-9a-f]{16}\xe2\x80\xa6/HEX16…/g' \
        -e 's/"received_before_ms":[0-9]+/"received_before_ms":MS/g' \
        -e 's/(serial"?[:[:space:]]+"?)[0-9a-f]+/\1SERIAL/g' \
        -e 's/\.[0-9a-f]{16}\.(crt|key)/.SERIAL.\1/g' \
        -e 's/"old_pins_not_after":[0-9]+/"old_pins_not_after":T/g' \
        -e 's/pin\.[0-9a-f]+/pin.HEX/g' \
        -e 's/,"server_id":[0-9]+//g' -e 's/,"samples":[0-9]+//g' \
        -e 's/,"stream_paths":[0-9]+//g' -e 's/,"complete":(true|false)//g' \
        -e 's/"(id|seq)":[[:space:]]*[0-9]+/"\1":N/g' \
        -e 's/[ \t]+$//' "$1"
}
norm "$T/sq/out" >"$T/sq.norm"
norm "$T/kv/out" >"$T/kv.norm"
if diff -u "$T/sq.norm" "$T/kv.norm" >"$T/seq.diff"; then
    ok "the same sequence: the same output on SQLite and on the bucket ($(grep -c '^###' "$T/sq.norm") commands)"
else
    not_ok "the same sequence: the same output on SQLite and on the bucket"
    head -60 "$T/seq.diff"
fi
check "  the sequence did what it should (a-1 erased, b.eu revoked, a refusal named the key's server)" \
    grep -q "already pinned to server b.eu" "$T/kv/out"
check "  export of b.eu on the bucket: server and pins (bucket), frames (store), activity (stream)" \
    "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["server"]["name"]=="b.eu" and len(d["pins"])==1 and len(d["activity"])>=2 and [f["seq"] for f in d["frames"]]==[1,2] and d["frames"][0]["frame"]=={"a":1}, d' "$T/kv/b.json"
"$CTL" --config "$KV_CONF" --pki "$T/kv/pki" cert gateway --dns gw.example >/dev/null ||
    fatal "cert gateway on the bucket's config"
"$CTL" --config "$KV_CONF" --json activity --action cert_issued >"$T/ci.json"
check "cert gateway with the jetstream config: its cert_issued row is on the stream" \
    "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert any(x["details"]["profile"]=="server" and x.get("server") is None for x in r), r' "$T/ci.json"
rc=0
"$CTL" --config "$KV_CONF" export b.eu >"$T/nodb.out" 2>"$T/nodb.err" || rc=$?
check_eq "export on the bucket without --db (the store's frames): exit 1" "$rc" 1
check "  and says to give --db" grep -q -- "--db FILE" "$T/nodb.err"

# ---- 2. what the bucket and the stream hold ----
"$JSTOOL" dump "$NATS_URLS" "KV_$BUCKET" >"$T/kv.dump" 2>&1 || fatal "jstool dump KV_$BUCKET"
check "the bucket is KV_$BUCKET on 3 replicas" grep -q "^stream replicas=3" "$T/kv.dump"
check "  with schema, next_id, server.b=2eeu and a pin index" \
    bash -c "grep -q ' \\\$KV.$BUCKET.schema ' '$T/kv.dump' && grep -q ' \\\$KV.$BUCKET.next_id ' '$T/kv.dump' && grep -q ' \\\$KV.$BUCKET.server.b=2eeu ' '$T/kv.dump' && grep -q ' \\\$KV.$BUCKET.pin.[0-9a-f]\{64\} ' '$T/kv.dump'"
"$JSTOOL" dump "$NATS_URLS" "$ASTREAM" >"$T/act.dump" 2>&1 || fatal "jstool dump $ASTREAM"
check "the activity stream on 3 replicas, rows on $APREFIX.<id> and $APREFIX.0" \
    bash -c "grep -q '^stream replicas=3' '$T/act.dump' && grep -q ' $APREFIX.0 ' '$T/act.dump' && grep -q ' $APREFIX.2 ' '$T/act.dump'"
check "  nothing of the erased a-1 (id 1) is left in it" \
    bash -c "! grep -q ' $APREFIX.1 ' '$T/act.dump'"

# ---- 3. concurrent registrations ----
mkdir -p "$T/c1" "$T/c2"
"$CTL" --pki "$T/c1/pki" ca init >/dev/null
"$CTL" --pki "$T/c2/pki" ca init >/dev/null
ROUNDS=20
fails=0
for i in $(seq 1 $ROUNDS); do
    "$CTL" --config "$KV_CONF" --pki "$T/c1/pki" --json register "x$i" --kind nimble \
        >"$T/c1/$i.json" 2>"$T/c1/$i.err" &
    p1=$!
    "$CTL" --config "$KV_CONF" --pki "$T/c2/pki" --json register "y$i" --kind wowza \
        >"$T/c2/$i.json" 2>"$T/c2/$i.err" &
    p2=$!
    wait "$p1" || fails=$((fails + 1))
    wait "$p2" || fails=$((fails + 1))
done
check_eq "two panelgatectl registering at once, $ROUNDS rounds: every registration made" "$fails" 0
"$CTL" --config "$KV_CONF" --json list >"$T/all.json" || fatal "list after the rounds"
check "  no two servers share an id, and each has the id its register printed" \
    "$PY" - "$T/all.json" "$T" "$ROUNDS" <<'EOF'
import json, sys
servers = json.load(open(sys.argv[1]))
ids = [s["id"] for s in servers]
assert len(ids) == len(set(ids)), ids
by = {s["name"]: s["id"] for s in servers}
for i in range(1, int(sys.argv[3]) + 1):
    for d, p in (("c1", "x"), ("c2", "y")):
        r = json.load(open("%s/%s/%d.json" % (sys.argv[2], d, i)))
        assert by[p + str(i)] == r["id"], (p, i, r["id"])
EOF
# one key, two names, at once
wins=0
refused=0
for i in $(seq 1 6); do
    "$CTL" --config "$KV_CONF" --pki "$PKI" register "k$i-a" --kind nimble --cert "$PKI/spare-01.crt" \
        >/dev/null 2>"$T/ka.err" &
    p1=$!
    "$CTL" --config "$KV_CONF" --pki "$PKI" register "k$i-b" --kind nimble --cert "$PKI/spare-01.crt" \
        >/dev/null 2>"$T/kb.err" &
    p2=$!
    r1=0 r2=0
    wait "$p1" || r1=$?
    wait "$p2" || r2=$?
    if ((r1 == 0)); then wins=$((wins + 1)); fi
    if ((r2 == 0)); then wins=$((wins + 1)); fi
    if grep -q "already pinned" "$T/ka.err" "$T/kb.err"; then refused=$((refused + 1)); fi
    # free the key for the next round
    for n in "k$i-a" "k$i-b"; do
        "$CTL" --config "$KV_CONF" erase "$n" --yes >/dev/null 2>&1 || true
    done
done
check_eq "one key registered under two names at once, 6 rounds: exactly one wins each" "$wins" 6
check_eq "  and the other is refused as pinned already" "$refused" 6
rc=0
"$CTL" --config "$KV_CONF" --pki "$PKI" register z-1 --kind wowza --cert "$PKI/wowza-01.crt" \
    >/dev/null 2>"$T/pinned.err" || rc=$?
check_eq "a register of a pinned key: exit 1" "$rc" 1
check "  pinned already, to b.eu" grep -q "already pinned to server b.eu" "$T/pinned.err"

# ---- 4. erase and purge on the frames stream ----
"$JSTOOL" add-stream "$NATS_URLS" "$FSTREAM" "$FPREFIX.>" 3 >/dev/null || fatal "frames stream"
X_ID=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$T/c1/1.json")
Y_ID=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$T/c2/1.json")
printf '\x81\xa1a\x01' >"$T/body"
for i in 1 2 3; do
    "$JSTOOL" pub "$NATS_URLS" "$FPREFIX.$X_ID" "$T/body" "Panelgate-Server-Id=$X_ID" >/dev/null
done
for i in 1 2; do
    "$JSTOOL" pub "$NATS_URLS" "$FPREFIX.$Y_ID" "$T/body" "Panelgate-Server-Id=$Y_ID" >/dev/null
done
"$CTL" --config "$KV_CONF" --json erase x1 --yes >"$T/erase.json" 2>"$T/erase.err" ||
    { cat "$T/erase.err"; fatal "erase x1"; }
check "erase x1: 3 frames purged from the stream" \
    "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["frames"]==3, d' "$T/erase.json"
"$JSTOOL" dump "$NATS_URLS" "$FSTREAM" >"$T/frames.dump"
check "  the stream keeps only y1's 2 messages" \
    bash -c "grep -q 'msgs=2 ' '$T/frames.dump' && ! grep -q ' $FPREFIX.$X_ID ' '$T/frames.dump'"
"$CTL" --config "$KV_CONF" --json activity --action erase --limit 1 >"$T/erow.json"
check "  the erase row names x1, its id and the counts" \
    "$PY" -c '
import json,sys
r=json.load(open(sys.argv[1]))[-1]; d=r["details"]
assert d["server"]=="x1" and d["server_id"]==int(sys.argv[2]) and d["frames"]==3 and d["pins"]==1 and d["activity_rows"]==2, r
' "$T/erow.json" "$X_ID"
"$CTL" --config "$KV_CONF" purge --older-than 0 >"$T/purge.out" || fatal "purge"
check "purge --older-than 0: the 2 frames left" grep -q "^purged 2 frames" "$T/purge.out"
"$JSTOOL" dump "$NATS_URLS" "$FSTREAM" >"$T/frames2.dump"
check "  the frames stream is empty" grep -q "msgs=0 " "$T/frames2.dump"

# ---- 5. orphans and bad values ----
# an index whose server does not exist (a writer that died half way)
OHEX=$(spki "$PKI/stranger-01.crt")
printf '{"server":"ghost","id":99999}' >"$T/orphan.json"
"$JSTOOL" pub "$NATS_URLS" "\$KV.$BUCKET.pin.$OHEX" "$T/orphan.json" >/dev/null || fatal "orphan pin"
rc=0
"$CTL" --config "$KV_CONF" register s-1 --kind nimble --cert "$PKI/stranger-01.crt" \
    >/dev/null 2>"$T/o1.err" || rc=$?
check_eq "a fresh index without its record (a registration in progress?): refused" "$rc" 1
sleep 4.5 # 2 x connect_timeout_ms, and a little
rc=0
"$CTL" --config "$KV_CONF" register s-1 --kind nimble --cert "$PKI/stranger-01.crt" \
    >/dev/null 2>"$T/o2.err" || rc=$?
check_eq "  the same orphan, older than the grace: taken over" "$rc" 0
# an index of a record with another id: an orphan at once
SHEX=$(spki "$PKI/noeku.crt")
printf '{"server":"b.eu","id":424242}' >"$T/orphan2.json"
"$JSTOOL" pub "$NATS_URLS" "\$KV.$BUCKET.pin.$SHEX" "$T/orphan2.json" >/dev/null || fatal "orphan pin 2"
rc=0
"$CTL" --config "$KV_CONF" register s-2 --kind nimble --cert "$PKI/noeku.crt" \
    >/dev/null 2>"$T/o3.err" || rc=$?
check_eq "an index naming a server of another id: taken over at once" "$rc" 0
rc=0
"$CTL" --config "$KV_CONF" register s-3 --kind nimble --cert "$PKI/noeku.crt" \
    >/dev/null 2>"$T/o4.err" || rc=$?
check_eq "  and the index is s-2's now: the key again is refused" "$rc" 1
check "  as pinned to s-2" grep -q "already pinned to server s-2" "$T/o4.err"

printf '{"id":7,"name":"bad","kind":"nimble","status":"paused","created_at":1,"pins":[]}' >"$T/bad.json"
"$JSTOOL" pub "$NATS_URLS" "\$KV.$BUCKET.server.bad" "$T/bad.json" >/dev/null || fatal "bad value"
rc=0
"$CTL" --config "$KV_CONF" list >"$T/bad.out" 2>"$T/bad.err" || rc=$?
check_eq "list with a value that breaks the layout: exit 1" "$rc" 1
check "  the key is named" grep -q "key server.bad: server record: status" "$T/bad.err"
check "  never the value" bash -c "! grep -q paused '$T/bad.err'"
rc=0
"$CTL" --config "$KV_CONF" show bad >"$T/bad2.out" 2>"$T/bad2.err" || rc=$?
check_eq "show of it: exit 1" "$rc" 1
check "  naming the key" grep -q "key server.bad" "$T/bad2.err"

# ---- 6. an erase that fails half way, then completes ----
# A second configuration whose frames stream has one replica: with its node
# stopped, the bucket and the activity stream (3 replicas) still answer and
# the erase fails at the frames purge (a stream-info or purge timeout, as
# right after a node restart).
H_STREAM=PGKV_F1
H_PREFIX=pgkv.f1
sed -e "s/^stream = .*/stream = $H_STREAM/" -e "s/^subject_prefix = .*/subject_prefix = $H_PREFIX/" \
    "$KV_CONF" >"$T/kv1.conf"
"$JSTOOL" add-stream "$NATS_URLS" "$H_STREAM" "$H_PREFIX.>" 1 >/dev/null || fatal "stream $H_STREAM"
"$CTL" --config "$T/kv1.conf" --pki "$T/c1/pki" --json register h-1 --kind nimble >"$T/h1.json" ||
    fatal "register h-1"
H_ID=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$T/h1.json")
for i in 1 2 3; do
    "$JSTOOL" pub "$NATS_URLS" "$H_PREFIX.$H_ID" "$T/body" "Panelgate-Server-Id=$H_ID" >/dev/null
done
"$JSTOOL" dump "$NATS_URLS" "$H_STREAM" >"$T/h.dump" || fatal "jstool dump $H_STREAM"
H_NODE=$(sed -nE '1s/.* leader=pg-nats-([0-9]+)$/\1/p' "$T/h.dump")
[[ -n $H_NODE ]] || fatal "the node of $H_STREAM (in $(head -1 "$T/h.dump"))"
nats_kill "$H_NODE"
KV_CONF=$T/kv1.conf kv_ctl show h-1 # the bucket answers (a leader elected if it was there)
rc=0
"$CTL" --config "$T/kv1.conf" --actor test erase h-1 --yes >"$T/he1.out" 2>"$T/he1.err" || rc=$?
check_eq "erase with the frames stream's node down: exit 1" "$rc" 1
check "  the frames stream is named" grep -q "$H_STREAM" "$T/he1.err"
# show reads the activity stream too, which may be electing a leader with
# the node gone: retried, but not past an "unknown server"
for ((i = 0; i < 20; i++)); do
    "$CTL" --config "$T/kv1.conf" --json show h-1 >"$T/hs.json" 2>"$T/hs.err" && break
    grep -q "unknown server" "$T/hs.err" && break
    sleep 0.5
done
check "  h-1 is still in the bucket, revoked (every gateway cuts it)" \
    "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["status"]=="revoked", d' "$T/hs.json"
nats_start_node "$H_NODE"
nats_wait_ready || fatal "the cluster after node $H_NODE's restart"
for ((i = 0; i < 40; i++)); do
    "$JSTOOL" dump "$NATS_URLS" "$H_STREAM" >"$T/h2.dump" 2>/dev/null && break
    sleep 0.25
done
rc=0
"$CTL" --config "$T/kv1.conf" --actor test --json erase h-1 --yes >"$T/he2.json" 2>"$T/he2.err" || rc=$?
check_eq "the same erase again, the node back: exit 0" "$rc" 0
[[ $rc == 0 ]] || cat "$T/he2.err"
check "  its 3 frames purged, counted" \
    "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["frames"]==3, d' "$T/he2.json"
"$JSTOOL" dump "$NATS_URLS" "$H_STREAM" >"$T/h3.dump" || fatal "jstool dump $H_STREAM"
check "  the frames stream holds none of h-1's messages" \
    bash -c "grep -q 'msgs=0 ' '$T/h3.dump' && ! grep -q ' $H_PREFIX.$H_ID ' '$T/h3.dump'"
rc=0
"$CTL" --config "$T/kv1.conf" show h-1 >/dev/null 2>"$T/hs2.err" || rc=$?
check "  the key is gone from the bucket" grep -q "unknown server h-1" "$T/hs2.err"
H_HEX=$(spki "$T/c1/pki/agents/h-1.crt")
"$JSTOOL" dump "$NATS_URLS" "KV_$BUCKET" >"$T/kv2.dump" || fatal "jstool dump KV_$BUCKET"
check "  and so is its pin (only a purge marker, no value, under pin.<hex>)" \
    "$PY" -c '
import sys
for l in open(sys.argv[1]):
    f = l.split()
    if len(f) > 1 and f[1].endswith(".pin." + sys.argv[2]):
        assert f[-1] == "0", l
' "$T/kv2.dump" "$H_HEX"
"$CTL" --config "$T/kv1.conf" --json activity --action erase >"$T/herow.json"
check "  one erase row for h-1, with its count" \
    "$PY" -c '
import json,sys
r=[x["details"] for x in json.load(open(sys.argv[1])) if x["details"]["server"]=="h-1"]
assert len(r)==1 and r[0]["frames"]==3 and r[0]["server_id"]==int(sys.argv[2]), r
' "$T/herow.json" "$H_ID"

# ---- 7. import-registry: the SQLite file into a new bucket ----
SQ=(--db "$PG_DB" --pki "$T/sq/pki" --actor alice)
"$CTL" "${SQ[@]}" register e-1 --kind nimble >/dev/null || fatal "register e-1 (SQLite)"
"$CTL" "${SQ[@]}" rotate e-1 --overlap 1h >/dev/null || fatal "rotate e-1 (SQLite)"
"$CTL" "${SQ[@]}" register f.x --kind wowza >/dev/null || fatal "register f.x (SQLite)"
LAST_ID=$(sql "SELECT MAX(COALESCE(MAX(id), 0), COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'server_id_floor'), 0)) FROM servers")
sed -e "s/^registry_bucket = .*/registry_bucket = pgkv_imp/" "$KV_CONF" >"$T/imp.conf"
rc=0
"$CTL" --config "$T/imp.conf" --db "$PG_DB" --actor test --json import-registry >"$T/imp.json" \
    2>"$T/imp.err" || rc=$?
check_eq "import-registry into a new bucket: exit 0" "$rc" 0
[[ $rc == 0 ]] || cat "$T/imp.err"
check "  3 servers, 4 pins, the file's last id $LAST_ID" \
    "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert (d["servers"],d["pins"],d["last_id"],d["already_there"])==(3,4,int(sys.argv[2]),0), d' "$T/imp.json" "$LAST_ID"
"$CTL" --db "$PG_DB" --json list >"$T/imp.sq.json" || fatal "list (SQLite)"
"$CTL" --config "$T/imp.conf" --json list >"$T/imp.kv.json" || fatal "list (bucket)"
check "  list --json: the same on the bucket as on the file (ids, statuses, times, pins)" \
    cmp -s "$T/imp.sq.json" "$T/imp.kv.json"
check "  (b.eu revoked, e-1 with both its pins)" \
    "$PY" -c 'import json,sys; d={s["name"]:s for s in json.load(open(sys.argv[1]))}; assert d["b.eu"]["status"]=="revoked" and len(d["e-1"]["pins"])==2 and d["e-1"]["pins"][1]["not_after"], d' "$T/imp.kv.json"
rc=0
"$CTL" --config "$T/imp.conf" --db "$PG_DB" import-registry >/dev/null 2>"$T/imp2.err" || rc=$?
check_eq "import-registry again, into that bucket: exit 1" "$rc" 1
check "  it is not empty" grep -q "bucket pgkv_imp is not empty" "$T/imp2.err"
"$CTL" --config "$T/imp.conf" --pki "$T/c1/pki" --json register g-1 --kind nimble >"$T/g1.json" ||
    fatal "register g-1 on the imported bucket"
check "a registration on the imported bucket gets the id after the file's last ($LAST_ID)" \
    "$PY" -c 'import json,sys; assert json.load(open(sys.argv[1]))["id"]==int(sys.argv[2])+1' "$T/g1.json" "$LAST_ID"
"$CTL" --config "$T/imp.conf" --json activity --action import_registry >"$T/imp.act.json"
check "  one import_registry row, with the counts" \
    "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert len(r)==1 and r[0]["details"]["servers"]==3 and r[0]["actor"]=="test", r' "$T/imp.act.json"
# stopped half way: a pin index in the way of the last server (f.x)
FX_HEX=$(spki "$T/sq/pki/agents/f.x.crt")
KV_BUCKET=pgkv_imp2 kv_put "pin.$FX_HEX" '{"server":"zzz","id":777}'
sed -e "s/^registry_bucket = .*/registry_bucket = pgkv_imp2/" "$KV_CONF" >"$T/imp2.conf"
rc=0
"$CTL" --config "$T/imp2.conf" --db "$PG_DB" import-registry >/dev/null 2>"$T/imp3.err" || rc=$?
check_eq "an import that stops at f.x (its key pinned by another index): exit 1" "$rc" 1
check "  saying how far it got" grep -q "server f.x: .*(2 of 3 servers imported; run import-registry again" "$T/imp3.err"
KV_BUCKET=pgkv_imp2 kv_del "pin.$FX_HEX"
rc=0
"$CTL" --config "$T/imp2.conf" --db "$PG_DB" --json import-registry >"$T/imp4.json" 2>"$T/imp4.err" ||
    rc=$?
check_eq "  run again: exit 0" "$rc" 0
[[ $rc == 0 ]] || cat "$T/imp4.err"
check "  the 2 servers already there kept, f.x added" \
    "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["already_there"]==2 and d["servers"]==3, d' "$T/imp4.json"
"$CTL" --config "$T/imp2.conf" --json list >"$T/imp2.kv.json" || fatal "list (bucket 2)"
check "  and the bucket lists what the file does" cmp -s "$T/imp.sq.json" "$T/imp2.kv.json"

finish
