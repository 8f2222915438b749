#!/usr/bin/env bash
# test_gw_tickets.sh - issue 13: session-ticket keys in [tls] ticket_key_file
# survive a restart and are shared by gateways.
#   - without a key file (the in-memory keys), a ticket taken before a
#     restart does not resume after it (the control);
#   - with one, the gateway makes the missing file with mode 0600, and an
#     mTLS client (openssl s_client, with its client certificate) resumes
#     across a restart ("Reused");
#   - two gateways sharing the file accept each other's tickets;
#   - the gateway rotates a due key: the old current key becomes previous
#     and a ticket it issued still resumes; a file installed by hand
#     (another gateway's rotation, a copy) is re-read, and a ticket of a key
#     no longer in it does not resume;
#   - a group/world-readable key file and a corrupt one are refused at
#     start with an error that names the file and what is wrong.
. "$(dirname "$0")/lib.sh"

make_pki
KEYS=$T/tickets.key

# probe_session IN|OUT FILE: one mTLS handshake as nimble-01 that writes
# (OUT) or offers (IN) the session in FILE; prints New or Reused.
probe_session() {
    local flag=-sess_out
    [[ $1 == IN ]] && flag=-sess_in
    tls_probe nimble-01 -alpn h2 "$flag" "$2" >/dev/null
    grep -aoE '^(New|Reused), TLSv1\.[23]' "$T/probe.out" | cut -d, -f1 | head -1 || true
}

# ticket_name FILE: the key name (first 4 bytes, hex) of the session
# ticket saved in FILE by s_client -sess_out.
ticket_name() {
    openssl sess_id -in "$1" -noout -text 2>/dev/null |
        awk '/TLS session ticket:/ { t = 1; next } t && /^ *0000 - / { print $3 $4 $5 $6; exit }' |
        tr -d '-' | tr 'A-F' 'a-f'
}

# key_field LABEL FIELD: a field (2 name, 3 created) of the key file's
# current/previous line.
key_field() { awk -v l="$1" -v f="$2" '$1 == l { print $f }' "$KEYS"; }

# ---- the control: in-memory keys die with the process ------------------------------------
gw_config
gw_start
register nimble-01 nimble "$PKI/nimble-01.crt"
gw_reload
check_eq "in-memory keys: first handshake is a full one" "$(probe_session OUT "$T/mem.sess")" New
check_eq "in-memory keys: the ticket resumes while the gateway runs" \
    "$(probe_session IN "$T/mem.sess")" Reused
gw_stop_check
gw_start
check_eq "in-memory keys: after a restart the ticket is refused (full handshake)" \
    "$(probe_session IN "$T/mem.sess")" New
gw_stop_check

# ---- a key file: tickets survive the restart ----------------------------------------------
gw_config "[tls]" "ticket_key_file = $KEYS"
umask 022 # the file is 0600 whatever the umask
gw_start
check "the missing key file was made" test -f "$KEYS"
check_eq "the key file's mode is 0600" "$(stat -c %a "$KEYS")" 600
check "started: the current key logged by name, never its bytes" \
    grep -qE '"event":"ticket_keys".*current=[0-9a-f]{8} ' "$GW_LOG"
check "the key bytes are in no log line" bash -c '! grep -qF "$(awk "\$1 == \"current\" { print \$4 }" "$0")" "$1"' \
    "$KEYS" "$GW_LOG"
check_eq "key file: first handshake is a full one" "$(probe_session OUT "$T/file.sess")" New
check_eq "key file: the ticket carries the current key's name" \
    "$(ticket_name "$T/file.sess")" "$(key_field current 2)"
gw_stop_check
gw_start
check_eq "key file: after a restart the ticket resumes (Reused)" \
    "$(probe_session IN "$T/file.sess")" Reused

# ---- two gateways on one file ---------------------------------------------------------------
# gateway B: its own listeners, port file and storage; the same registry and key file
GW2_CONF=$T/gw2.conf
GW2_LOG=$T/gw2.log
sed -e "s|^port_file = .*|port_file = $T/ports2|" -e "s|^sqlite_path = .*|sqlite_path = $T/pg2.db|" \
    "$GW_CONF" >"$GW2_CONF"
printf '[registry]\nregistry_path = %s\n' "$PG_DB" >>"$GW2_CONF"
"$PG_BIN" --config "$GW2_CONF" >/dev/null 2>>"$GW2_LOG" &
GW2_PID=$!
BG_PIDS+=("$GW2_PID")
gw2_ready() { alive "$GW2_PID" && [[ -s $T/ports2 ]] && grep -q '"event":"started"' "$GW2_LOG"; }
wait_until "$PG_TIMEOUT" gw2_ready || { cat "$GW2_LOG"; fatal "second gateway started"; }
PORT_A=$GW_PORT
PORT_B=$(awk '$1 == "127.0.0.1" { print $2; exit }' "$T/ports2")
check_eq "gateway B loaded the same current key" \
    "$(grep -oE '"event":"ticket_keys".*current=[0-9a-f]{8}' "$GW2_LOG" | grep -oE '[0-9a-f]{8}$')" \
    "$(key_field current 2)"
check_eq "A: a full handshake issues a ticket" "$(probe_session OUT "$T/a.sess")" New
GW_PORT=$PORT_B
check_eq "B resumes A's ticket" "$(probe_session IN "$T/a.sess")" Reused
rm -f "$T/b.sess"
check_eq "B: a full handshake issues a ticket" "$(probe_session OUT "$T/b.sess")" New
GW_PORT=$PORT_A
check_eq "A resumes B's ticket" "$(probe_session IN "$T/b.sess")" Reused
kill -TERM "$GW2_PID"
wait_until "$PG_TIMEOUT" not_alive "$GW2_PID" || fatal "gateway B stopped on SIGTERM"
rc=0
wait "$GW2_PID" || rc=$?
check_eq "gateway B exits 0" "$rc" 0
check "gateway B's log is free of sanitizer reports" \
    bash -c '! grep -Eq "ERROR: (Address|Leak)Sanitizer|runtime error:" "$0"' "$GW2_LOG"
gw_stop_check

# ---- rotation: the previous key still resumes its tickets ----------------------------------
# lifetime 60 s; a current key made 50 s ago is due in 10 s (time enough
# for a slow start to take a ticket first): its ticket, valid for 60 s
# from now, must resume after the gateway rotated the key
old_name=$(key_field current 2)
old_key=$(key_field current 4)
now=$(date +%s)
printf 'panelgate-ticket-keys 1\ncurrent %s %d %s\n' "$old_name" $((now - 50)) "$old_key" >"$KEYS"
gw_config "[tls]" "ticket_key_file = $KEYS" "ticket_lifetime_s = 60" "ticket_key_check_ms = 200"
gw_start
check_eq "before the rotation: a ticket of the current key" "$(probe_session OUT "$T/rot.sess")" New
check_eq "  ... named after it" "$(ticket_name "$T/rot.sess")" "$old_name"
check "the due key is rotated (ticket_keys_changed)" wait_log '"event":"ticket_keys_changed"' 1 40
check_eq "after the rotation the old current key is the previous one" \
    "$(key_field previous 2)" "$old_name"
new_name=$(key_field current 2)
check "  ... and a new current key was made" test -n "$new_name" -a "$new_name" != "$old_name"
check_eq "the rotated file is still mode 0600" "$(stat -c %a "$KEYS")" 600
check_eq "a ticket of the previous key resumes (Reused)" "$(probe_session IN "$T/rot.sess")" Reused
rm -f "$T/rot2.sess"
check_eq "a new full handshake ..." "$(probe_session OUT "$T/rot2.sess")" New
check_eq "  ... gets a ticket of the new current key" "$(ticket_name "$T/rot2.sess")" "$new_name"

# a file installed by hand (two fresh keys): re-read; the old tickets are refused
k1=$(openssl rand -hex 32)
k2=$(openssl rand -hex 32)
now=$(date +%s)
printf 'panelgate-ticket-keys 1\ncurrent 0badc0de %d %s\nprevious 0ddba11a %d %s\n' \
    "$now" "$k1" "$now" "$k2" >"$KEYS.new"
chmod 600 "$KEYS.new"
mv "$KEYS.new" "$KEYS"
check "a key file installed by hand is re-read" wait_log '"event":"ticket_keys_changed".*current=0badc0de' 1 10
check_eq "a ticket of a key no longer in the file does not resume" \
    "$(probe_session IN "$T/rot2.sess")" New
gw_stop_check

# ---- refused at start -----------------------------------------------------------------------
# start_refused WHAT PATTERN: the gateway exits at start with EX_CONFIG (78)
# and an error on stderr matching PATTERN.
start_refused() {
    local rc=0
    timeout "$PG_TIMEOUT" "$PG_BIN" --config "$GW_CONF" >/dev/null 2>"$T/refused.err" || rc=$?
    check_eq "$1: start refused (exit 78)" "$rc" 78
    check "$1: the error says so ($(head -c 200 "$T/refused.err"))" grep -qE -- "$2" "$T/refused.err"
}
chmod 644 "$KEYS"
start_refused "a world-readable key file" "ticket_key_file $KEYS: mode 0644 lets group or others"
chmod 640 "$KEYS"
start_refused "a group-readable key file" "ticket_key_file $KEYS: mode 0640"
chmod 600 "$KEYS"
sed -i 's/^current 0badc0de/current 0badc0dx/' "$KEYS"
start_refused "a corrupt key file" "ticket_key_file $KEYS: line 2: want one 'current'"
printf 'garbage\n' >"$KEYS"
start_refused "a file that is not a key file" "ticket_key_file $KEYS: line 1: not a panelgate ticket key file"

finish
