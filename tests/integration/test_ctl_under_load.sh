#!/usr/bin/env bash
# test_ctl_under_load.sh - an operator's panelgatectl commands succeed while
# agents send (issue 11: at ~200 frames/s, revoke failed 20 of 27 times and
# list 43 of 60 with "database is locked": opening the database ran the
# schema in a deferred transaction, whose read-to-write upgrade SQLite
# fails at once when the gateway's writer committed in between).
#   - two agents post frames for ~8 s, about 200 frames/s in all;
#   - meanwhile list, show, activity, register, rotate-free changes and
#     revoke run again and again: every one exits 0;
#   - every frame the agents sent was answered 202 (nothing refused because
#     of the operator);
#   - the commands that only read (list, show, activity, export's read)
#     open the file read-only: they succeed while another connection holds
#     the write lock (they used to make the schema under it first and gave
#     up after 5 s with "database is locked"), on an auditor's 0444 copy in
#     a directory they may write and in one they may not (run as nobody
#     when the test runs as root, so the modes count), without changing the
#     copy; export, which records itself, refuses such a copy cleanly; a
#     registry of an older schema is reported as such, not upgraded.
. "$(dirname "$0")/lib.sh"

make_pki
gw_config "[storage]" "batch_max_frames = 8"
gw_start
register_defaults

# ---- the load ---------------------------------------------------------------------------
cat >"$T/load.py" <<'EOF_PY'
import time
import h2client as hc
ok = hc.Checks()
conns = {n: hc.connect(n) for n in ("nimble-01", "wowza-01")}
seq, sent, acked, other = 1_000_000, 0, 0, []
end = time.monotonic() + 8.0
while time.monotonic() < end:
    t0 = time.monotonic()
    # ten frames in flight per connection, then their answers: the
    # gateway commits them in a few group commits
    sids = []
    for name, c in conns.items():
        for _ in range(10):
            seq += 1
            sids.append((c, c.start(hc.pack(hc.minimal_frame(seq, name=name)))))
    for c, sid in sids:
        r = c.response(sid)
        sent += 1
        if r.status == 202:
            acked += 1
        else:
            other.append(r.status)
    # twenty frames per 100 ms at most: about 200 frames/s
    time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))
for c in conns.values():
    c.close()
print("# sent %d frames, %d acknowledged" % (sent, acked))
ok(sent >= 600, "the agents sent %d frames in 8 s (>= 600: the load was there)" % sent)
ok(acked == sent, "every frame answered 202 while panelgatectl ran", other[:10])
EOF_PY
py_bg "$T/load.out" "$T/load.py"
LOAD_PID=$PY_BG_PID

# ---- the operator -----------------------------------------------------------------------
# a CA of panelgatectl's own to issue the new servers' certificates
"$PANELGATECTL" --pki "$T/ctlpki" ca init >"$T/ca.out" 2>&1 || fatal "panelgatectl ca init"
ctl() { "$PANELGATECTL" --db "$PG_DB" --pki "$T/ctlpki" --actor tester "$@" >>"$T/ctl.out" 2>&1; }
declare -A runs=() fails=()
try() {
    local what=$1
    shift
    runs[$what]=$((${runs[$what]:-0} + 1))
    ctl "$@" || { fails[$what]=$((${fails[$what]:-0} + 1)); echo "# failed: $*: $(tail -1 "$T/ctl.out")"; }
}
i=0
while alive "$LOAD_PID" && ((i < 400)); do
    i=$((i + 1))
    try list list
    try show show nimble-01
    try activity activity --limit 5
    # every fourth round, and the first three: a slow build (ThreadSanitizer
    # makes each run several times slower) still gets its five in 8 s
    if ((i % 4 == 0 || i <= 3)); then
        try register register "spare-$i" --kind wowza --days 1
        try revoke revoke "spare-$i"
    fi
done
py_bg_wait "$LOAD_PID" "$T/load.out" 30
for what in list show activity register revoke; do
    n=${runs[$what]:-0} f=${fails[$what]:-0}
    check "panelgatectl $what under load: $((n - f)) of $n succeeded (want all, and at least 5 runs)" \
        test "$f" -eq 0 -a "$n" -ge 5
done

# ---- readers never wait for a writer ------------------------------------------------------
# dblock.py holds the write lock (BEGIN EXCLUSIVE: in WAL, readers go on)
py_bg "$T/lock.out" "$LIB_DIR/dblock.py" "$PG_DB" "$T/locked" "$T/release" 60
LOCK_PID=$PY_BG_PID
wait_until "$PG_TIMEOUT" test -e "$T/locked" || fatal "dblock.py took the write lock"
for args in "list" "show nimble-01" "activity --limit 5" "--json list"; do
    rc=0
    # shellcheck disable=SC2086  # the words of one command
    "$PANELGATECTL" --db "$PG_DB" --pki "$T/ctlpki" --actor tester $args >"$T/rd.out" 2>"$T/rd.err" || rc=$?
    check_eq "panelgatectl $args while a writer holds the lock: exit 0 $(head -c 200 "$T/rd.err")" "$rc" 0
done
check "... and the lock was still held throughout (the readers did not wait for it)" alive "$LOCK_PID"
touch "$T/release"
py_bg_wait "$LOCK_PID" "$T/lock.out" 30

# ---- an auditor's read-only copy ----------------------------------------------------------
# as root, file modes do not stop a writer: the readers then run as nobody
as_reader() {
    if ((EUID == 0)); then setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; else "$@"; fi
}
audit() { # DIR ARGS...: panelgatectl on DIR/copy.db as the reader
    local d=$1
    shift
    AUDIT_RC=0
    as_reader "$PANELGATECTL" --db "$d/copy.db" --pki "$d" --actor auditor "$@" \
        >"$T/audit.out" 2>"$T/audit.err" || AUDIT_RC=$?
}
for kind in rw ro; do
    d=$T/audit-$kind
    mkdir -p "$d"
    sql ".backup '$d/copy.db'"
    sqlite3 "$d/copy.db" "PRAGMA journal_mode=WAL" >/dev/null # as the gateway's file is
    chmod 0444 "$d/copy.db"
    if [[ $kind == rw ]]; then chmod 0777 "$d"; else chmod 0555 "$d"; fi
    sum0=$(sha256sum <"$d/copy.db")
    what="0444 copy in a $([[ $kind == rw ]] && echo writable || echo read-only) directory"
    audit "$d" list
    check_eq "list on a $what: exit 0 $(head -c 200 "$T/audit.err")" "$AUDIT_RC" 0
    check "... lists nimble-01" grep -q '^nimble-01 ' "$T/audit.out"
    audit "$d" show nimble-01
    check_eq "show nimble-01 on a $what: exit 0 $(head -c 200 "$T/audit.err")" "$AUDIT_RC" 0
    audit "$d" --json activity --limit 3
    check_eq "activity on a $what: exit 0 $(head -c 200 "$T/audit.err")" "$AUDIT_RC" 0
    audit "$d" export nimble-01 --out "$T/audit-rw/export-$kind.json"
    check_eq "export on a $what: refused (it records itself; exit 1)" "$AUDIT_RC" 1
    check "... saying the export could not be recorded" grep -q 'recording the export' "$T/audit.err"
    check "... and handing nothing over" test ! -e "$T/audit-rw/export-$kind.json"
    check_eq "the copy is unchanged" "$(sha256sum <"$d/copy.db")" "$sum0"
done
check "no -wal or -shm made beside the copy in the read-only directory" \
    test ! -e "$T/audit-ro/copy.db-wal" -a ! -e "$T/audit-ro/copy.db-shm"

# ---- an older registry is reported, not upgraded -------------------------------------------
sql ".backup '$T/old.db'"
sqlite3 "$T/old.db" "DROP TABLE activity"
"$PANELGATECTL" --db "$T/old.db" list >"$T/old.out" 2>"$T/old.err" && rc=0 || rc=$?
check_eq "list on a registry without its activity table: exit 1" "$rc" 1
check "... saying it is of an older schema and is not upgraded ($(cat "$T/old.err"))" \
    grep -q 'older schema (no activity table); read-only commands do not upgrade it' "$T/old.err"
check_eq "... and the file is left as it was (no activity table)" \
    "$(sqlite3 "$T/old.db" "SELECT count(*) FROM sqlite_master WHERE name = 'activity'")" 0
sqlite3 "$T/old.db" "UPDATE meta SET value = '0' WHERE key = 'schema_version'"
sqlite3 "$T/old.db" "CREATE TABLE activity(id INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, server_id INTEGER, details TEXT)"
"$PANELGATECTL" --db "$T/old.db" show nimble-01 >"$T/old.out" 2>"$T/old.err" && rc=0 || rc=$?
check "show on a registry of schema version 0: exit 1, naming both versions ($(cat "$T/old.err"))" \
    test "$rc" -eq 1 -a -n "$(grep 'registry schema version 0, this panelgatectl reads 1: it is older' "$T/old.err")"

gw_stop_check
finish
