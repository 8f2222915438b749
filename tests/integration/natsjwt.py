"""natsjwt.py - a NATS operator-mode (JWT) setup for the tests, without nsc.

    python3 natsjwt.py DIR

writes into DIR (files 0600):
  operator.conf   nats-server settings: the operator's JWT, the system
                  account, a MEMORY resolver preloaded with the accounts
                  SYS and APP (APP with JetStream, no limits)
  app.creds       a user of APP: its JWT and nkey seed, as nsc writes them
  stranger.creds  a user of an account the operator never signed
  seed-only.creds app.creds without its JWT (only the seed)
  secrets         the seeds, one a line (for "never logged" checks)

NKeys (github.com/nats-io/nkeys): base32 (no padding) of a prefix byte,
the 32-byte Ed25519 key and a CRC-16/XMODEM (little-endian).  JWTs
(github.com/nats-io/jwt, v2): base64url(header).base64url(claims).
base64url(Ed25519 signature of the first two parts by the issuer's seed).
Needs python3-cryptography.
"""
import base64
import hashlib
import json
import os
import sys
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PREFIX_SEED = 18 << 3
PREFIX = {"operator": 14 << 3, "account": 0, "user": 20 << 3}


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def b32(raw):
    raw += crc16(raw).to_bytes(2, "little")
    return base64.b32encode(raw).decode().rstrip("=")


def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Key:
    def __init__(self, kind):
        self.kind = kind
        self.priv = Ed25519PrivateKey.generate()
        raw = self.priv.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                      serialization.NoEncryption())
        pub = self.priv.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
        p = PREFIX[kind]
        self.seed = b32(bytes([PREFIX_SEED | (p >> 5), (p & 31) << 3]) + raw)
        self.pub = b32(bytes([p]) + pub)


def jwt(issuer, subject, name, nats):
    claims = {"iat": int(time.time()), "iss": issuer.pub, "name": name, "sub": subject.pub,
              "nats": dict(nats, version=2)}
    claims["jti"] = base64.b32encode(hashlib.sha256(
        json.dumps(claims, sort_keys=True).encode()).digest()).decode().rstrip("=")
    head = b64url(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = issuer.priv.sign((head + "." + body).encode())
    return head + "." + body + "." + b64url(sig)


UNLIMITED = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
             "wildcards": True, "conn": -1, "leaf": -1}
JETSTREAM = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}


def account(operator, name, jetstream):
    k = Key("account")
    limits = dict(UNLIMITED, **(JETSTREAM if jetstream else {}))
    return k, jwt(operator, k, name, {"type": "account", "limits": limits,
                                      "default_permissions": {"pub": {}, "sub": {}}})


def creds(account_key, name):
    u = Key("user")
    token = jwt(account_key, u, name, {"type": "user", "pub": {}, "sub": {}, "subs": -1,
                                       "data": -1, "payload": -1})
    text = ("-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n"
            "NKEYs are sensitive and should be treated as secrets.\n\n"
            "-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n\n"
            "*************************************************************\n") % (token, u.seed)
    return u, text


def write(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def main(out):
    op = Key("operator")
    sys_key, sys_jwt = account(op, "SYS", False)
    app_key, app_jwt = account(op, "APP", True)
    op_jwt = jwt(op, op, "PGTEST", {"type": "operator", "system_account": sys_key.pub})
    write(os.path.join(out, "operator.conf"),
          "operator: %s\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: {\n"
          "  %s: %s\n  %s: %s\n}\n" % (op_jwt, sys_key.pub, sys_key.pub, sys_jwt, app_key.pub,
                                       app_jwt))
    user, text = creds(app_key, "panelgate")
    write(os.path.join(out, "app.creds"), text)
    lone = Key("account")  # never signed by the operator, never preloaded
    stranger, stext = creds(lone, "stranger")
    write(os.path.join(out, "stranger.creds"), stext)
    write(os.path.join(out, "seed-only.creds"),
          "-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n" % user.seed)
    write(os.path.join(out, "secrets"), "\n".join([user.seed, stranger.seed, op.seed,
                                                   sys_key.seed, app_key.seed]) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
