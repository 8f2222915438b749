/*
 * pki.h - the panel's certificate authority, on mbedTLS's x509 writer.
 *
 * A PKI directory holds:
 *   ca.key      the CA's private key (0600), P-256 ECDSA by default
 *   ca.crt      the CA certificate (PEM)
 *   serial      the next serial number, hex (the CA's state)
 *   gateway.key gateway.crt           the gateway's server identity
 *   agents/NAME.key agents/NAME.crt   agent identities made here
 * Keys are written 0600 and never overwritten; a certificate is written to
 * a temporary file and renamed into place.
 *
 * Every function returns 0, or a negative GW_E* code (err.h: GW_EINVAL,
 * GW_EEXIST, GW_EIO, GW_ETLS) with a reason that names the file or the
 * argument at fault in err.  Nothing here prints.
 */
#ifndef GW_PKI_H
#define GW_PKI_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>

#include "err.h"

#define PKI_MAX_SANS 16

enum pki_key_type {
    PKI_KEY_EC_P256 = 0, /* default */
    PKI_KEY_RSA_3072 = 1,
};

enum pki_profile {
    PKI_PROFILE_SERVER = 1, /* extKeyUsage serverAuth, SANs */
    PKI_PROFILE_CLIENT = 2, /* extKeyUsage clientAuth, CN = server name */
};

struct pki_rng {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
};

int pki_rng_init(struct pki_rng *r, char *err, size_t errlen);
void pki_rng_free(struct pki_rng *r);

struct pki_ca {
    char dir[4096];
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
};

struct pki_issue {
    enum pki_profile profile;
    const char *common_name;          /* CN; required */
    const char *dns[PKI_MAX_SANS];    /* server profile: DNS SANs */
    unsigned n_dns;
    const char *ip[PKI_MAX_SANS];     /* server profile: IP SANs (numeric) */
    unsigned n_ip;
    unsigned days;                    /* validity from now */
};

/* Creates dir (0700 when new) with ca.key, ca.crt and serial.  Refuses when
 * ca.key or ca.crt already exists.  |cn| NULL means "panelgate panel CA". */
int pki_ca_init(const char *dir, const char *cn, enum pki_key_type kt, unsigned days,
                struct pki_rng *rng, char *err, size_t errlen);

/* Loads ca.crt and ca.key from dir; checks they match. */
int pki_ca_load(struct pki_ca *ca, const char *dir, struct pki_rng *rng, char *err,
                size_t errlen);
void pki_ca_free(struct pki_ca *ca);

/* Generates a key pair of type kt into |key| (initialised by the caller). */
int pki_key_generate(mbedtls_pk_context *key, enum pki_key_type kt, struct pki_rng *rng,
                     char *err, size_t errlen);

/* Writes |key| as PEM to path with mode 0600; refuses to overwrite. */
int pki_key_write(const mbedtls_pk_context *key, const char *path, char *err, size_t errlen);

/* Loads a private key (PEM or DER). */
int pki_key_load(mbedtls_pk_context *key, const char *path, struct pki_rng *rng, char *err,
                 size_t errlen);

/* Parses a PEM/DER CSR and verifies its self-signature.  On success *csr
 * holds it (caller frees with mbedtls_x509_csr_free). */
int pki_csr_load(mbedtls_x509_csr *csr, const char *path, char *err, size_t errlen);

/* Makes a CSR for |key| with subject CN=cn, PEM, into buf (NUL-terminated). */
int pki_csr_write(const mbedtls_pk_context *key, const char *cn, struct pki_rng *rng,
                  unsigned char *buf, size_t buflen, char *err, size_t errlen);

/* Issues a certificate for |subject_key| (public part used) signed by the
 * CA, with the next serial from dir/serial (which is advanced).  The PEM
 * certificate goes to buf (NUL-terminated). */
int pki_issue(struct pki_ca *ca, const struct pki_issue *req,
              mbedtls_pk_context *subject_key, struct pki_rng *rng, unsigned char *buf,
              size_t buflen, char *err, size_t errlen);

/* Writes a PEM string to path via a temporary file + rename (mode 0644). */
int pki_write_file(const char *path, const unsigned char *pem, char *err, size_t errlen);

/* SHA-256 of the DER SubjectPublicKeyInfo of |key| (the registry pin). */
int pki_spki_sha256(const mbedtls_pk_context *key, uint8_t out[32]);

/* Loads the first certificate of a PEM/DER file. */
int pki_crt_load(mbedtls_x509_crt *crt, const char *path, char *err, size_t errlen);

#endif /* GW_PKI_H */
