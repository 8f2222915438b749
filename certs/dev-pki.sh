#!/usr/bin/env bash
# dev-pki.sh OUT_DIR - a throw-away development PKI (openssl CLI).
#
# Interim: panelgatectl's PKI commands replace it.  Writes into OUT_DIR:
#   ca.key ca.crt                P-256 ECDSA dev CA, 10 years
#   gateway.key gateway.crt      CN=panelgate-dev, SAN localhost, 127.0.0.1, ::1;
#                                serverAuth
#   nimble-01.key nimble-01.crt  agent client certificates, CN=<name>;
#   wowza-01.key  wowza-01.crt   clientAuth
# Keys are 0600.  Idempotent: what exists, matches its key, chains to the CA
# and has not expired is kept; anything else is (re)made.  Refuses to write
# into the source tree except under build*/: keys are never committed.
set -euo pipefail

AGENTS=(nimble-01 wowza-01)
CA_DAYS=3650
LEAF_DAYS=825

die() { echo "dev-pki: $*" >&2; exit 1; }

[[ $# -eq 1 && -n "$1" ]] || die "usage: $0 OUT_DIR"
command -v openssl >/dev/null || die "openssl not found (scripts/deps.sh installs it)"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
out=$(realpath -m -- "$1")
case "$out/" in
    "$root"/build*/*) ;;
    "$root"/*) die "refusing to write keys into the source tree ($out); use build/..." ;;
esac
mkdir -p "$out"
cd "$out"

tmp=$(mktemp -d "$out/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
cnf=$tmp/openssl.cnf

changed=0

# new_key NAME: NAME.key, created 0600 and moved into place whole.
new_key() {
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -pkeyopt ec_param_enc:named_curve -out "$tmp/$1.key" 2>/dev/null)
    mv -f "$tmp/$1.key" "$1.key"
}

# key_matches NAME: NAME.crt carries NAME.key's public key.
key_matches() {
    [[ "$(openssl x509 -in "$1.crt" -noout -pubkey 2>/dev/null)" == \
       "$(openssl pkey -in "$1.key" -pubout 2>/dev/null)" ]]
}

serial() { echo "0x1$(openssl rand -hex 15)"; }

# --- CA ----------------------------------------------------------------------
if [[ -s ca.key && -s ca.crt ]] && key_matches ca &&
   openssl x509 -in ca.crt -noout -checkend 86400 >/dev/null; then
    :
else
    echo "dev-pki: making CA"
    new_key ca
    openssl req -config "$cnf" -new -x509 -key ca.key -sha256 -days "$CA_DAYS" \
        -subj "/CN=panelgate dev CA" -extensions ca -set_serial "$(serial)" \
        -out "$tmp/ca.crt"
    mv -f "$tmp/ca.crt" ca.crt
    changed=1
fi

# --- leaves --------------------------------------------------------------------
# leaf NAME CN PROFILE: keeps NAME.{key,crt} when valid, else issues them.
leaf() {
    local name=$1 cn=$2 profile=$3
    if [[ -s $name.key && -s $name.crt ]] && key_matches "$name" &&
       openssl verify -CAfile ca.crt "$name.crt" >/dev/null 2>&1 &&
       openssl x509 -in "$name.crt" -noout -checkend 86400 >/dev/null; then
        chmod 600 "$name.key"
        return 0
    fi
    echo "dev-pki: issuing $name ($profile, CN=$cn)"
    # Keep a readable key: the registry pins its SPKI.
    if ! { [[ -s $name.key ]] && openssl pkey -in "$name.key" -noout 2>/dev/null; }; then
        new_key "$name"
    fi
    chmod 600 "$name.key"
    openssl req -config "$cnf" -new -key "$name.key" -subj "/CN=$cn" -out "$tmp/$name.csr"
    openssl x509 -req -in "$tmp/$name.csr" -CA ca.crt -CAkey ca.key \
        -set_serial "$(serial)" -days "$LEAF_DAYS" -sha256 \
        -extfile "$cnf" -extensions "$profile" -out "$tmp/$name.crt" 2>/dev/null
    mv -f "$tmp/$name.crt" "$name.crt"
    changed=1
}

chmod 600 ca.key
leaf gateway panelgate-dev server
for a in "${AGENTS[@]}"; do
    leaf "$a" "$a" client
done

# --- self-check ----------------------------------------------------------------
openssl verify -CAfile ca.crt -purpose sslserver gateway.crt >/dev/null ||
    die "gateway.crt does not verify as a TLS server certificate"
for a in "${AGENTS[@]}"; do
    openssl verify -CAfile ca.crt -purpose sslclient "$a.crt" >/dev/null ||
        die "$a.crt does not verify as a TLS client certificate"
done

if ((changed)); then
    echo "dev-pki: ready in $out"
else
    echo "dev-pki: up to date in $out"
fi
