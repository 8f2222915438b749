/*
 * tls.c - mbedTLS server configuration: certificates, agent CA, suites,
 * tickets, ALPN.  Builds against mbedTLS 2.28 (Debian 12) and 3.x.
 */
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/version.h>

#include <panelproto/tlsutil.h>
#include "alloc.h"
#include "clock.h"
#include "config.h"
#include "err.h"
#include "ticket.h"

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define GW_MBEDTLS3 1
#endif

struct gw_tls_global {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
    mbedtls_ssl_ticket_context ticket; /* in-memory keys: no ticket_key_file */
    int ticket_ready;
    struct gw_ticket *ticket_file; /* [tls] ticket_key_file */
#endif
};

struct gw_tls {
    int refs;
    struct gw_tls_global *g;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt cert;
    mbedtls_x509_crt ca;
    mbedtls_pk_context key;
    int ciphersuites[32];
};

static const char *const alpn_h2[] = {"h2", NULL};

/* Server preference order.  ChaCha20-Poly1305 first (≈1.5x AES-GCM with
 * Debian's mbedTLS here), then AES-GCM.  ECDHE only, AEAD only. */
static const int default_suites[] = {
#if defined(GW_MBEDTLS3) && defined(MBEDTLS_SSL_PROTO_TLS1_3)
    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
    MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
#endif
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    0,
};

#if !defined(GW_MBEDTLS3)
static const mbedtls_ecp_group_id curves[] = {
    MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_NONE,
};
#else
static const uint16_t groups[] = {
    MBEDTLS_SSL_IANA_TLS_GROUP_X25519, MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1, MBEDTLS_SSL_IANA_TLS_GROUP_NONE,
};
#endif

const char *gw_tls_strerror(int ret, char *buf, size_t n)
{
    mbedtls_strerror(ret, buf, n);
    return buf;
}

static int fail(char *err, size_t errlen, int ret, const char *what, const char *file)
{
    char e[128];
    mbedtls_strerror(ret, e, sizeof e);
    snprintf(err, errlen, "%s%s%s: %s", what, file ? " " : "", file ? file : "", e);
    return GW_ETLS;
}

int gw_tls_global_new(struct gw_tls_global **out, const struct gw_config *cfg, char *err,
                      size_t errlen)
{
    static const char pers[] = "panelgate";
    struct gw_tls_global *g;
    int ret;

    *out = NULL;
    g = gw_calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return GW_ENOMEM;
    }
    mbedtls_entropy_init(&g->entropy);
    mbedtls_ctr_drbg_init(&g->drbg);
    ret = mbedtls_ctr_drbg_seed(&g->drbg, mbedtls_entropy_func, &g->entropy,
                                (const unsigned char *)pers, sizeof pers - 1);
    if (ret != 0) {
        fail(err, errlen, ret, "seeding the RNG", NULL);
        gw_tls_global_free(g);
        return GW_ETLS;
    }
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
    mbedtls_ssl_ticket_init(&g->ticket);
    if (cfg->session_tickets && cfg->ticket_key_file) {
        int rv = gw_ticket_new(&g->ticket_file, cfg->ticket_key_file, cfg->ticket_lifetime_s,
                               mbedtls_ctr_drbg_random, &g->drbg, gw_now_ms() / 1000, err,
                               errlen);
        if (rv != 0) {
            gw_tls_global_free(g);
            return rv;
        }
    } else if (cfg->session_tickets) {
        /* mbedTLS keeps two keys and rotates them every lifetime. */
        ret = mbedtls_ssl_ticket_setup(&g->ticket, mbedtls_ctr_drbg_random, &g->drbg,
                                       MBEDTLS_CIPHER_AES_256_GCM, cfg->ticket_lifetime_s);
        if (ret != 0) {
            fail(err, errlen, ret, "setting up session tickets", NULL);
            gw_tls_global_free(g);
            return GW_ETLS;
        }
        g->ticket_ready = 1;
    }
#else
    (void)cfg;
#endif
    *out = g;
    return 0;
}

void gw_tls_global_free(struct gw_tls_global *g)
{
    if (!g)
        return;
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
    mbedtls_ssl_ticket_free(&g->ticket);
    gw_ticket_free(g->ticket_file);
#endif
    mbedtls_ctr_drbg_free(&g->drbg);
    mbedtls_entropy_free(&g->entropy);
    gw_free(g);
}

int gw_tls_global_refresh_tickets(struct gw_tls_global *g, int *changed, char *err,
                                  size_t errlen)
{
    if (changed)
        *changed = 0;
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
    if (g->ticket_file)
        return gw_ticket_refresh(g->ticket_file, gw_now_ms() / 1000, changed, err, errlen);
#else
    (void)g;
    (void)err;
    (void)errlen;
#endif
    return 0;
}

struct gw_ticket *gw_tls_global_ticket_keys(struct gw_tls_global *g)
{
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
    return g->ticket_file;
#else
    (void)g;
    return NULL;
#endif
}

static int parse_suites(struct gw_tls *t, const char *list, char *err, size_t errlen)
{
    size_t n = 0;

    if (!list) {
        memcpy(t->ciphersuites, default_suites, sizeof default_suites);
        return 0;
    }
    char *copy = gw_strdup(list), *save = NULL;
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return GW_ENOMEM;
    }
    for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        int id = mbedtls_ssl_get_ciphersuite_id(tok);
        int allowed = 0;
        for (size_t i = 0; default_suites[i]; i++)
            allowed |= default_suites[i] == id;
        if (!id || !allowed) {
            snprintf(err, errlen,
                     "tls.ciphersuites: %.64s is not an ECDHE+AEAD suite this build offers", tok);
            gw_free(copy);
            return GW_ECONFIG;
        }
        if (n + 1 >= sizeof t->ciphersuites / sizeof t->ciphersuites[0])
            break;
        t->ciphersuites[n++] = id;
    }
    gw_free(copy);
    if (n == 0) {
        snprintf(err, errlen, "tls.ciphersuites: empty list");
        return GW_ECONFIG;
    }
    t->ciphersuites[n] = 0;
    return 0;
}

int gw_tls_new(struct gw_tls **out, struct gw_tls_global *g, const struct gw_config *cfg,
               char *err, size_t errlen)
{
    struct gw_tls *t;
    int ret, rv = GW_ETLS;

    *out = NULL;
    t = gw_calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return GW_ENOMEM;
    }
    t->refs = 1;
    t->g = g;
    mbedtls_ssl_config_init(&t->conf);
    mbedtls_x509_crt_init(&t->cert);
    mbedtls_x509_crt_init(&t->ca);
    mbedtls_pk_init(&t->key);

    if ((ret = mbedtls_x509_crt_parse_file(&t->cert, cfg->cert_file)) != 0) {
        fail(err, errlen, ret, "tls.cert_file", cfg->cert_file);
        goto fail;
    }
#if defined(GW_MBEDTLS3)
    ret = mbedtls_pk_parse_keyfile(&t->key, cfg->key_file, NULL, mbedtls_ctr_drbg_random,
                                   &g->drbg);
#else
    ret = mbedtls_pk_parse_keyfile(&t->key, cfg->key_file, NULL);
#endif
    if (ret != 0) {
        fail(err, errlen, ret, "tls.key_file", cfg->key_file);
        goto fail;
    }
#if defined(GW_MBEDTLS3)
    ret = mbedtls_pk_check_pair(&t->cert.pk, &t->key, mbedtls_ctr_drbg_random, &g->drbg);
#else
    ret = mbedtls_pk_check_pair(&t->cert.pk, &t->key);
#endif
    if (ret != 0) {
        snprintf(err, errlen, "tls.key_file %s does not match the certificate in %s",
                 cfg->key_file, cfg->cert_file);
        goto fail;
    }
    if ((ret = mbedtls_x509_crt_parse_file(&t->ca, cfg->client_ca_file)) != 0) {
        fail(err, errlen, ret, "tls.client_ca_file", cfg->client_ca_file);
        goto fail;
    }
    if ((rv = parse_suites(t, cfg->ciphersuites, err, errlen)) != 0)
        goto fail;
    rv = GW_ETLS;

    ret = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_SERVER,
                                      MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0) {
        fail(err, errlen, ret, "TLS defaults", NULL);
        goto fail;
    }
#if defined(GW_MBEDTLS3)
    mbedtls_ssl_conf_min_tls_version(&t->conf, MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_groups(&t->conf, groups);
#else
    mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_curves(&t->conf, curves);
#endif
    mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &g->drbg);
    mbedtls_ssl_conf_ciphersuites(&t->conf, t->ciphersuites);
    mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
    if ((ret = mbedtls_ssl_conf_own_cert(&t->conf, &t->cert, &t->key)) != 0) {
        fail(err, errlen, ret, "tls.cert_file", cfg->cert_file);
        goto fail;
    }
    if ((ret = mbedtls_ssl_conf_alpn_protocols(&t->conf, (const char **)alpn_h2)) != 0) {
        fail(err, errlen, ret, "ALPN", NULL);
        goto fail;
    }
#if defined(MBEDTLS_SSL_RENEGOTIATION)
    mbedtls_ssl_conf_renegotiation(&t->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
    if (g->ticket_file)
        mbedtls_ssl_conf_session_tickets_cb(&t->conf, gw_ticket_write, gw_ticket_parse,
                                            g->ticket_file);
    else if (g->ticket_ready)
        mbedtls_ssl_conf_session_tickets_cb(&t->conf, mbedtls_ssl_ticket_write,
                                            mbedtls_ssl_ticket_parse, &g->ticket);
#endif
    *out = t;
    return 0;

fail:
    gw_tls_unref(t);
    return rv;
}

struct gw_tls *gw_tls_ref(struct gw_tls *t)
{
    t->refs++;
    return t;
}

void gw_tls_unref(struct gw_tls *t)
{
    if (!t || --t->refs > 0)
        return;
    mbedtls_ssl_config_free(&t->conf);
    mbedtls_x509_crt_free(&t->cert);
    mbedtls_x509_crt_free(&t->ca);
    mbedtls_pk_free(&t->key);
    gw_free(t);
}

const mbedtls_ssl_config *gw_tls_conf(const struct gw_tls *t)
{
    return &t->conf;
}

int gw_tls_spki_sha256(const mbedtls_x509_crt *crt, uint8_t out[32])
{
    return pa_spki_sha256(&crt->pk, out) == 0 ? 0 : GW_ETLS;
}

const char *gw_tls_reason(int ret, uint32_t flags)
{
    if (ret == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE || (flags & MBEDTLS_X509_BADCERT_MISSING))
        return "no_client_cert";
    if (flags & MBEDTLS_X509_BADCERT_OTHER)
        return "unregistered";
    /* FUTURE first: conn.c's verify callback adds EXPIRED to it, so that
     * mbedTLS sends certificate_expired (RFC 5246 7.2.2 gives that alert to
     * a certificate "expired or not currently valid") */
    if (flags & MBEDTLS_X509_BADCERT_FUTURE)
        return "cert_not_yet_valid";
    if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
        return "cert_expired";
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        return "cert_untrusted";
    if (flags & (MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE))
        return "cert_wrong_usage";
    if (flags)
        return "cert_invalid";
    switch (ret) {
    case MBEDTLS_ERR_SSL_NO_USABLE_CIPHERSUITE:
        return "no_shared_cipher";
#if defined(MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION)
    case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION:
        return "protocol_version";
#endif
    case MBEDTLS_ERR_SSL_PEER_VERIFY_FAILED:
    case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
        return "cert_invalid";
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
        return "peer_alert";
    case MBEDTLS_ERR_SSL_BAD_HS_CLIENT_HELLO:
        return "bad_client_hello"; /* conn.c names an ALPN list without h2 */
    case MBEDTLS_ERR_NET_CONN_RESET:
        return "reset";
    default:
        return "handshake_failed";
    }
}
