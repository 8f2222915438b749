#!/usr/bin/env bash
# test_cli.sh - the panelagent CLI: encode/decode round trips of the sample
# frames, exit codes, error messages that name the field, and no viewer IP
# in any error output.
#
# env: PANELAGENT (the binary), PANELGATE_TEST_DATA (tests/data).
set -euo pipefail

: "${PANELAGENT:?set PANELAGENT to the panelagent binary}"
: "${PANELGATE_TEST_DATA:?set PANELGATE_TEST_DATA to tests/data}"
PA=$PANELAGENT
DATA=$PANELGATE_TEST_DATA

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# run <want-rc> <stdin-file> <args...>: runs $PA with stdout in out, stderr
# in err (and appended to all.err), checks the exit code.
run() {
    local want=$1 in=$2 rc=0
    shift 2
    "$PA" "$@" <"$in" >out 2>err || rc=$?
    cat err >>all.err
    [ "$rc" -eq "$want" ] || fail "panelagent $* < $in: exit $rc, want $want; stderr: $(cat err)"
}

# A rejected frame: exit 2, nothing on stdout, one line on stderr.
expect_frame_error() {
    local cmd=$1 in=$2
    run 2 "$in" "$cmd"
    [ ! -s out ] || fail "$cmd < $in: wrote to stdout on error"
    [ "$(wc -l <err)" -eq 1 ] || fail "$cmd < $in: want one line on stderr, got: $(cat err)"
    grep -Eq "^panelagent: $cmd: " err || fail "$cmd < $in: bad message: $(cat err)"
}

# decode errors end in "(<errname>, offset N)"
expect_decode_error() {
    expect_frame_error decode "$1"
    grep -Eq ' \([a-z_0-9]+, offset [0-9]+\)$' err || fail "decode < $1: bad message: $(cat err)"
}

PATH_RE='[a-z_]+(\[[0-9]+\])*(\.[a-z_]+(\[[0-9]+\])*)*'

: >all.err

# ---- round trips ----------------------------------------------------------
for s in nimble wowza; do
    run 0 "$DATA/$s.json" encode
    mv out "$s.mp"
    [ -s "$s.mp" ] && [ ! -s err ] || fail "encode $s"
    run 0 "$s.mp" decode
    mv out "$s.out.json"
    run 0 "$s.out.json" encode
    cmp -s "$s.mp" out || fail "$s: decode(encode(x)) does not re-encode to the same bytes"
    run 0 "$s.mp" decode --pretty
    mv out "$s.pretty.json"
    run 0 "$s.pretty.json" encode
    cmp -s "$s.mp" out || fail "$s: pretty JSON does not re-encode to the same bytes"
    mv out "$s.again.mp"
    run 0 "$s.again.mp" decode
    cmp -s "$s.out.json" out || fail "$s: JSON form is not stable"
    [ "$(wc -l <"$s.out.json")" -eq 1 ] || fail "$s: compact JSON is not one line"
done
echo "ok - round trips"

# ---- bad msgpack input ----------------------------------------------------
: >empty
expect_decode_error empty
grep -q '(empty, offset 0)' err || fail "empty input: $(cat err)"

size=$(stat -c %s nimble.mp)
for cut in 1 2 9 100 $((size / 2)) $((size - 1)); do
    head -c "$cut" nimble.mp >trunc
    expect_decode_error trunc
    grep -q '(truncated, offset' err || fail "truncated at $cut: $(cat err)"
done
# cut inside the viewer connections: the message names the connection
head -c $((size * 3 / 4)) nimble.mp >trunc
expect_decode_error trunc
grep -Eq "^panelagent: decode: conns\[[0-9]+\](\.[a-z]+)?: " err || fail "no path: $(cat err)"

printf 'garbage' >garbage
expect_decode_error garbage
head -c 4096 /dev/zero | tr '\0' '\301' >garbage
expect_decode_error garbage
# the sample with one byte of a viewer connection overwritten by 0xc1
cp nimble.mp garbage
# (the header byte of the last connection's "in" key, so the path names it)
off=$(/usr/bin/python3 -c 'import sys; print(open(sys.argv[1], "rb").read().rindex(b"\xa2in"))' garbage)
printf '\301' | dd of=garbage bs=1 seek="$off" conv=notrunc status=none
expect_decode_error garbage
grep -Eq "^panelagent: decode: conns\[299\](\.[a-z]+)?: " err || fail "no path: $(cat err)"
# the sample followed by more bytes
{ cat wowza.mp; printf '\x00'; } >garbage
expect_decode_error garbage
grep -q '(trailing, offset' err || fail "trailing: $(cat err)"
# one byte over max_frame_bytes (4 MiB): refused without reading further
head -c $((4 * 1024 * 1024 + 1)) /dev/zero >big
expect_decode_error big
grep -q '(too_big, offset' err || fail "too big: $(cat err)"
echo "ok - decode rejects bad input"

# ---- bad JSON input ---------------------------------------------------------
# a negative byte count on the 8th viewer connection (one connection a line)
awk '/"conns": \[/ { c = 1; print; next }
     c && /"ip":/ && ++n == 8 { sub(/"out": /, "\"out\": -") } { print }' \
    "$DATA/nimble.json" >neg.json
grep -q '"out": -' neg.json || fail "could not make neg.json"
expect_frame_error encode neg.json
grep -Eq '^panelagent: encode: conns\[7\]\.out: ' err || fail "negative out: $(cat err)"

# a semantic error found by the real decoder (encode_checked)
sed 's/"seq": 48213/"seq": 0/' "$DATA/nimble.json" >seq0.json
expect_frame_error encode seq0.json
grep -Eq '^panelagent: encode: seq: ' err || fail "seq 0: $(cat err)"
# an invalid viewer IP: named by its path, its text never echoed
awk '/"conns": \[/ { c = 1; print; next }
     c && /"ip":/ && ++n == 3 { sub(/"ip": "[^"]*"/, "\"ip\": \"198.51.100.999\"") } { print }' \
    "$DATA/nimble.json" >badip.json
expect_frame_error encode badip.json
grep -Eq '^panelagent: encode: conns\[2\]\.ip: ' err || fail "bad ip: $(cat err)"
grep -q '198.51.100.999' err && fail "encode echoed an IP: $(cat err)"
printf '{"v": 1,' >trunc.json
expect_frame_error encode trunc.json
grep -q '(invalid, offset' err || fail "invalid JSON: $(cat err)"
expect_frame_error encode empty
echo "ok - encode rejects bad frames"

# ---- usage ------------------------------------------------------------------
run 0 /dev/null --help
grep -q '^usage: panelagent' out && grep -q 'exit status' out || fail "--help: $(cat out)"
for c in 0 1 2 64; do grep -Eq "^  $c +[a-zA-Z]" out || fail "--help does not document exit $c"; done
run 0 /dev/null --version
[ "$(cat out)" = "panelagent 0.1.0 (protocol v1)" ] || fail "--version: $(cat out)"
run 64 /dev/null frobnicate
grep -q 'usage:' err || fail "unknown command: no usage"
[ ! -s out ] || fail "unknown command wrote to stdout"
run 64 /dev/null
run 64 /dev/null --bogus
run 64 "$DATA/wowza.json" encode --bogus
run 64 nimble.mp decode --pretty --bogus
run 0 "$DATA/wowza.json" encode --limits-defaults
cmp -s wowza.mp out || fail "--limits-defaults changed the output"
# binary output to a terminal is refused unless --force (script(1) gives a pty)
if command -v script >/dev/null 2>&1; then
    script -qec "\"$PA\" encode < \"$DATA/wowza.json\"; echo rc=\$?" /dev/null >tty.out 2>&1 || true
    grep -aq 'refusing to write binary to a terminal' tty.out && grep -aq 'rc=1' tty.out ||
        fail "encode to a terminal: $(cat -v tty.out)"
    script -qec "\"$PA\" encode --force < \"$DATA/wowza.json\"; echo rc=\$?" /dev/null >tty.out 2>&1 || true
    grep -aq 'rc=0' tty.out || fail "encode --force to a terminal: $(cat -v tty.out)"
fi
echo "ok - usage"

# ---- privacy: no viewer IP in any error output ----------------------------
grep -ho '"ip": "[^"]*"' "$DATA/nimble.json" "$DATA/wowza.json" | cut -d'"' -f4 | sort -u >ips
[ "$(wc -l <ips)" -ge 100 ] || fail "expected the sample viewer IPs"
if grep -qwFf ips all.err; then
    fail "a viewer IP appears in stderr: $(grep -owFf ips all.err | head -3)"
fi
echo "ok - no viewer IP in error output"
echo "PASS"
