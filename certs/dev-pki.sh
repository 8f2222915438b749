#!/usr/bin/env bash
# dev-pki.sh OUT_DIR - a throw-away development PKI, made with panelgatectl.
#
# panelgatectl keeps its PKI directory in OUT_DIR/.pki (ca.key, ca.crt,
# serial, gateway.*, agents/*); the files the demo and the tests use are
# copied from it into OUT_DIR:
#   ca.key ca.crt                P-256 ECDSA dev CA "panelgate dev CA", 10 years
#   gateway.key gateway.crt      CN=panelgate-dev, SAN localhost, 127.0.0.1, ::1;
#                                serverAuth
#   nimble-01.key nimble-01.crt  agent client certificates, CN=<name>;
#   wowza-01.key  wowza-01.crt   clientAuth
# The agents are NOT registered anywhere: each test registers them into its
# own database (panelgatectl register NAME --kind K --cert OUT_DIR/NAME.crt,
# or SQL).  Keys are 0600.  Idempotent: a second run changes nothing; what
# is missing, or expires within a day (checked when openssl is installed),
# is made again.  Refuses to write into the source tree except under
# build*/: keys are never committed.
#
# panelgatectl is $PANELGATECTL, else the bin/panelgatectl of the build tree
# OUT_DIR lies in, else build/bin/panelgatectl of this checkout, else
# build/bin or ../build/bin from the current directory.
set -euo pipefail

AGENTS=(nimble-01 wowza-01)
CA_DAYS=3650
LEAF_DAYS=825

die() { echo "dev-pki: $*" >&2; exit 1; }

[[ $# -eq 1 && -n "$1" ]] || die "usage: $0 OUT_DIR"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
out=$(realpath -m -- "$1")
case "$out/" in
    "$root"/build*/*) ;;
    "$root"/*) die "refusing to write keys into the source tree ($out); use build/..." ;;
esac

ctl=${PANELGATECTL:-}
if [[ -z $ctl ]]; then
    d=$out
    while [[ $d != / && -z $ctl ]]; do
        [[ -f $d/CMakeCache.txt && -x $d/bin/panelgatectl ]] && ctl=$d/bin/panelgatectl
        d=$(dirname "$d")
    done
    for c in "$root/build/bin/panelgatectl" build/bin/panelgatectl ../build/bin/panelgatectl; do
        [[ -z $ctl && -x $c ]] && ctl=$(realpath -- "$c")
    done
fi
[[ -n $ctl && -x $ctl ]] || die "panelgatectl not found: build it first (make), or set PANELGATECTL"

mkdir -p "$out"
cd "$out"
pki=$out/.pki
changed=0

# fresh FILE: FILE exists and, when openssl can tell, is valid for a day more.
fresh() {
    [[ -s $1 ]] || return 1
    command -v openssl >/dev/null || return 0
    openssl x509 -in "$1" -noout -checkend 86400 >/dev/null 2>&1
}

# run ARGS...: panelgatectl on the dev PKI; its output only on failure.
run() {
    local log
    log=$("$ctl" --pki "$pki" --actor dev-pki "$@" 2>&1) || { echo "$log" >&2; die "panelgatectl $* failed"; }
}

# --- CA (a new CA makes every identity new) ---------------------------------------
if ! { [[ -s $pki/ca.key ]] && fresh "$pki/ca.crt" && [[ -s $pki/serial ]]; }; then
    echo "dev-pki: making the CA"
    rm -rf "$pki"
    run ca init --cn "panelgate dev CA" --days "$CA_DAYS"
    changed=1
fi

# --- leaves ---------------------------------------------------------------------------
# leaf KEY CRT ARGS...: keeps KEY+CRT when both are there and fresh, else
# removes them and runs panelgatectl ARGS to make them again.
leaf() {
    local key=$1 crt=$2
    shift 2
    if [[ -s $key ]] && fresh "$crt"; then
        return 0
    fi
    echo "dev-pki: issuing ${crt##*/}"
    rm -f "$key" "$crt"
    run "$@"
    changed=1
}
leaf "$pki/gateway.key" "$pki/gateway.crt" \
    cert gateway --cn panelgate-dev --dns localhost --ip 127.0.0.1 --ip ::1 --days "$LEAF_DAYS"
for a in "${AGENTS[@]}"; do
    leaf "$pki/agents/$a.key" "$pki/agents/$a.crt" cert agent "$a" --days "$LEAF_DAYS"
done

# --- publish into OUT_DIR (copies: the tests check modes with stat) ---------------------
# publish SRC DST MODE: copies when the content differs; sets the mode.
publish() {
    if ! cmp -s "$1" "$2"; then
        rm -f "$2"
        (umask 077 && cp "$1" "$2")
        changed=1
    fi
    chmod "$3" "$2"
}
publish "$pki/ca.key" ca.key 600
publish "$pki/ca.crt" ca.crt 644
publish "$pki/gateway.key" gateway.key 600
publish "$pki/gateway.crt" gateway.crt 644
for a in "${AGENTS[@]}"; do
    publish "$pki/agents/$a.key" "$a.key" 600
    publish "$pki/agents/$a.crt" "$a.crt" 644
done

# --- self-check (when openssl is there) -----------------------------------------------------
if command -v openssl >/dev/null; then
    openssl verify -CAfile ca.crt -purpose sslserver gateway.crt >/dev/null ||
        die "gateway.crt does not verify as a TLS server certificate"
    for a in "${AGENTS[@]}"; do
        openssl verify -CAfile ca.crt -purpose sslclient "$a.crt" >/dev/null ||
            die "$a.crt does not verify as a TLS client certificate"
    done
fi

if ((changed)); then
    echo "dev-pki: ready in $out"
else
    echo "dev-pki: up to date in $out"
fi
