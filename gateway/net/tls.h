/*
 * tls.h - the gateway's mbedTLS server configuration.
 *
 * struct gw_tls_global lives as long as the process: the RNG and the session
 * ticket keys (so tickets survive a reload; with [tls] ticket_key_file
 * they come from a file and survive a restart too, ticket.h).  struct gw_tls is one loaded
 * set of certificate, key and agent CA(s) with its mbedtls_ssl_config; a
 * reload builds a new one for new connections while live connections keep
 * a reference to the one they started with.
 *
 * Policy: TLS 1.2 (and 1.3 with mbedTLS 3), ECDHE + AEAD suites only, the
 * server's order (ChaCha20-Poly1305 first: faster than AES-GCM with Debian's
 * mbedTLS on this class of hardware), client certificate required, ALPN h2,
 * no renegotiation, session tickets.
 */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "err.h"

struct gw_config;
struct gw_tls_global;
struct gw_tls;

int gw_tls_global_new(struct gw_tls_global **out, const struct gw_config *cfg, char *err,
                      size_t errlen);
void gw_tls_global_free(struct gw_tls_global *g);

/* With [tls] ticket_key_file: re-reads the key file when it changed and
 * rotates it when its current key is due (ticket.h); *changed says whether
 * the keys in use changed.  Without one: nothing.  Returns 0 or a GW_E*
 * code with the reason in err (the keys in use are kept). */
int gw_tls_global_refresh_tickets(struct gw_tls_global *g, int *changed, char *err,
                                  size_t errlen);
/* The key-file context, or NULL when the keys are in memory only. */
struct gw_ticket *gw_tls_global_ticket_keys(struct gw_tls_global *g);

/* Loads cert, key and CA from |cfg| and builds a server configuration.
 * Returns 0 or a GW_E* code (GW_ETLS, GW_ECONFIG for tls.ciphersuites,
 * GW_ENOMEM) with a reason naming the file or key in err. */
int gw_tls_new(struct gw_tls **out, struct gw_tls_global *g, const struct gw_config *cfg,
               char *err, size_t errlen);
struct gw_tls *gw_tls_ref(struct gw_tls *t);
void gw_tls_unref(struct gw_tls *t);

const mbedtls_ssl_config *gw_tls_conf(const struct gw_tls *t);

/* SHA-256 of the certificate's SubjectPublicKeyInfo (DER).  Returns 0 or
 * GW_ETLS. */
int gw_tls_spki_sha256(const mbedtls_x509_crt *crt, uint8_t out[32]);

/* A short reason for a handshake failure code / verify flags, for logs. */
const char *gw_tls_reason(int ret, uint32_t verify_flags);

/* mbedtls_strerror into buf; returns buf. */
const char *gw_tls_strerror(int ret, char *buf, size_t n);

#endif /* GW_TLS_H */
