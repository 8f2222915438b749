#!/bin/bash
# gen_ctl_seeds.sh [DIR] - seeds for fuzz_ctl_parse (default
# fuzz/corpus/ctl_parse): option values, server names, and certificates,
# CSRs and keys in PEM and DER made with openssl in a scratch directory
# (throw-away P-256 and RSA-2048 keys; the files are the fuzz inputs, one
# selector byte first, see fuzz_ctl_parse.c).  Files are named by their
# SHA-1, like the other corpora.  Private keys are never committed, so the
# key seeds (selector 7) are written only with KEYS=1, for a local run.
set -euo pipefail
out=${1:-fuzz/corpus/ctl_parse}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

seed() { # SELECTOR-BYTE (octal escape) FILE|-  (- = the value from stdin)
    local f="$tmp/seed"
    { printf "$1"; if [ "$2" = - ]; then cat; else cat "$2"; fi; } >"$f"
    cp "$f" "$out/$(sha1sum "$f" | cut -c1-40)"
}
val() { printf '%s' "$2" | seed "$1" -; }

# 0 uint (variant in the high nibble picks the maximum), 1 duration,
# 2 time (variant bit 0: upper bound), 3 name
val '\000' 0;  val '\040' 36500;  val '\160' 18446744073709551615;  val '\060' 4294967296
val '\001' 30s; val '\001' 15m; val '\001' 12h; val '\001' 3650d; val '\001' 3651d; val '\001' 0
val '\002' 1764000000; val '\002' 2026-11-29; val '\022' 2026-11-29
val '\002' 2026-11-29T02:20:54Z; val '\002' 7d; val '\002' 2026-02-30; val '\022' 1970-01-01
val '\003' nimble-edge-01; val '\003' .hidden; val '\003' "$(printf 'a%.0s' $(seq 256))"

# certificates: a CA-signed leaf with SANs (PEM, DER), a self-signed RSA one
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/ca.key" 2>/dev/null
openssl req -new -x509 -key "$tmp/ca.key" -subj "/CN=seed CA" -days 30 -out "$tmp/ca.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/leaf.key" 2>/dev/null
openssl req -new -key "$tmp/leaf.key" -subj "/CN=edge-1/O=panel, \"seed\"" -out "$tmp/leaf.csr" \
    2>/dev/null
printf 'subjectAltName=DNS:gw.lan,IP:192.0.2.1\nextendedKeyUsage=clientAuth\n' >"$tmp/ext"
openssl x509 -req -in "$tmp/leaf.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -set_serial 0x00ff01 \
    -days 30 -extfile "$tmp/ext" -out "$tmp/leaf.crt" 2>/dev/null
openssl x509 -in "$tmp/leaf.crt" -outform DER -out "$tmp/leaf.der"
openssl req -in "$tmp/leaf.csr" -outform DER -out "$tmp/leaf.csr.der"
openssl genrsa -out "$tmp/rsa.key" 2048 2>/dev/null
openssl req -new -x509 -key "$tmp/rsa.key" -subj "/CN=rsa" -days 1 -out "$tmp/rsa.crt" 2>/dev/null
openssl req -new -key "$tmp/rsa.key" -subj "/CN=rsa" -sha1 -out "$tmp/sha1.csr" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$tmp/leaf.key" -outform DER -out "$tmp/leaf.key.der"

seed '\004' "$tmp/leaf.crt"; seed '\004' "$tmp/rsa.crt"
seed '\005' "$tmp/leaf.der"; seed '\005' "$tmp/ca.crt"
cat "$tmp/leaf.crt" "$tmp/ca.crt" >"$tmp/chain.pem"; seed '\005' "$tmp/chain.pem"
seed '\006' "$tmp/leaf.csr"; seed '\006' "$tmp/leaf.csr.der"; seed '\006' "$tmp/sha1.csr"
if [ "${KEYS:-0}" = 1 ]; then
    seed '\007' "$tmp/leaf.key"; seed '\007' "$tmp/leaf.key.der"; seed '\007' "$tmp/rsa.key"
fi
printf '\007-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n' >"$tmp/bad.key"
seed '' "$tmp/bad.key"
echo "$(ls "$out" | wc -l) seeds in $out"
