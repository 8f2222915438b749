/*
 * tls_client.c - the TLS side of a connection to the gateway: the panel CA,
 * this agent's certificate and key, ECDHE + AEAD suites, ALPN h2, SNI and
 * the name check, session resumption, the optional SPKI pin, and the
 * translation of mbedTLS failures into panelagent's reported codes.
 * Builds against mbedTLS 2.28 (Debian 12) and 3.x.
 *
 * One struct pa_tls per client (its own entropy and DRBG: no global state);
 * one struct pa_tls_io per connection.  Both are used by the client's I/O
 * thread only, after pa_tls_new.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#include "client_internal.h"
#include <panelproto/tlsutil.h>

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define PA_MBEDTLS3 1
#define PRIV(x) MBEDTLS_PRIVATE(x)
#else
#define PRIV(x) x
#endif

/* TLS alert descriptions (RFC 5246 7.2). */
enum {
    ALERT_BAD_CERT = 42,
    ALERT_UNSUPPORTED_CERT = 43,
    ALERT_CERT_REVOKED = 44,
    ALERT_CERT_EXPIRED = 45,
    ALERT_CERT_UNKNOWN = 46,
    ALERT_UNKNOWN_CA = 48,
    ALERT_ACCESS_DENIED = 49,
};

struct pa_tls {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    char *name;       /* GATEWAY_NAME: SNI and the name checked; NULL: each
                         gateway's host (SNI, and checked unless check_name
                         is 0) */
    int check_name;
    int has_pin;
    uint8_t pin[PA_PIN_LEN];
    int have_session;
    mbedtls_ssl_session session;
};

struct pa_tls_io {
    struct pa_tls *t;
    int fd;
    mbedtls_ssl_context ssl;
    int offered_session;
    uint32_t verify_flags; /* what our check of the gateway found */
};

static const char *const alpn_h2[] = {"h2", NULL};

static const int suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

#if !defined(PA_MBEDTLS3)
static const mbedtls_ecp_group_id curves[] = {
    MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_NONE,
};
#else
static const uint16_t groups[] = {
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1, MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1, MBEDTLS_SSL_IANA_TLS_GROUP_NONE,
};
#endif

static void mbed_err(char *err, size_t errlen, const char *what, const char *file, int ret)
{
    char e[128];
    mbedtls_strerror(ret, e, sizeof e);
    pa_seterr(err, errlen, "%s%s%s: %s", what, file ? " " : "", file ? file : "", e);
}

/* Verification callback: remembers what failed, and drops the name
 * mismatch when the name check is off (SNI is still sent). */
static int verify_cb(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    struct pa_tls_io *io = ctx;
    (void)crt;
    if (depth == 0 && !io->t->check_name)
        *flags &= ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH;
    io->verify_flags |= *flags;
    return 0;
}

int pa_tls_new(struct pa_tls **out, const struct pa_opts *o, char *err, size_t errlen)
{
    static const char pers[] = "panelagent";
    struct pa_tls *t;
    int ret, rv = PANELAGENT_ECONFIG;

    *out = NULL;
    t = calloc(1, sizeof *t);
    if (t == NULL) {
        pa_seterr(err, errlen, "out of memory");
        return PANELAGENT_ENOMEM;
    }
    mbedtls_entropy_init(&t->entropy);
    mbedtls_ctr_drbg_init(&t->drbg);
    mbedtls_ssl_config_init(&t->conf);
    mbedtls_x509_crt_init(&t->ca);
    mbedtls_x509_crt_init(&t->cert);
    mbedtls_pk_init(&t->key);
    mbedtls_ssl_session_init(&t->session);

    ret = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
                                (const unsigned char *)pers, sizeof pers - 1);
    if (ret != 0) {
        mbed_err(err, errlen, "seeding the RNG", NULL, ret);
        rv = PANELAGENT_EINTERNAL;
        goto fail;
    }
    if ((ret = mbedtls_x509_crt_parse_file(&t->ca, o->ca_file)) != 0) {
        mbed_err(err, errlen, "PANELAGENT_OPT_CA_FILE", o->ca_file, ret);
        goto fail;
    }
    if ((ret = mbedtls_x509_crt_parse_file(&t->cert, o->cert_file)) != 0) {
        mbed_err(err, errlen, "PANELAGENT_OPT_CERT_FILE", o->cert_file, ret);
        goto fail;
    }
#if defined(PA_MBEDTLS3)
    ret = mbedtls_pk_parse_keyfile(&t->key, o->key_file, NULL, mbedtls_ctr_drbg_random,
                                   &t->drbg);
#else
    ret = mbedtls_pk_parse_keyfile(&t->key, o->key_file, NULL);
#endif
    if (ret != 0) {
        mbed_err(err, errlen, "PANELAGENT_OPT_KEY_FILE", o->key_file, ret);
        goto fail;
    }
#if defined(PA_MBEDTLS3)
    ret = mbedtls_pk_check_pair(&t->cert.pk, &t->key, mbedtls_ctr_drbg_random, &t->drbg);
#else
    ret = mbedtls_pk_check_pair(&t->cert.pk, &t->key);
#endif
    if (ret != 0) {
        pa_seterr(err, errlen,
                  "PANELAGENT_OPT_KEY_FILE %s does not match the certificate in %s",
                  o->key_file, o->cert_file);
        goto fail;
    }

    ret = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT,
                                      MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0) {
        mbed_err(err, errlen, "TLS defaults", NULL, ret);
        rv = PANELAGENT_EINTERNAL;
        goto fail;
    }
#if defined(PA_MBEDTLS3)
    mbedtls_ssl_conf_min_tls_version(&t->conf, MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_groups(&t->conf, groups);
#else
    mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_curves(&t->conf, curves);
#endif
    mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
    mbedtls_ssl_conf_ciphersuites(&t->conf, suites);
    mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
    mbedtls_ssl_conf_session_tickets(&t->conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
#endif
    if ((ret = mbedtls_ssl_conf_own_cert(&t->conf, &t->cert, &t->key)) != 0) {
        mbed_err(err, errlen, "own certificate", NULL, ret);
        goto fail;
    }
    if ((ret = mbedtls_ssl_conf_alpn_protocols(&t->conf, (const char **)alpn_h2)) != 0) {
        mbed_err(err, errlen, "ALPN", NULL, ret);
        rv = PANELAGENT_EINTERNAL;
        goto fail;
    }
    t->check_name = !(o->name != NULL && o->name[0] == '\0');
    if (o->name != NULL && o->name[0] != '\0' && (t->name = strdup(o->name)) == NULL) {
        pa_seterr(err, errlen, "out of memory");
        rv = PANELAGENT_ENOMEM;
        goto fail;
    }
    t->has_pin = o->has_pin;
    memcpy(t->pin, o->pin, sizeof t->pin);
    *out = t;
    return PANELAGENT_OK;
fail:
    pa_tls_free(t);
    return rv;
}

void pa_tls_free(struct pa_tls *t)
{
    if (t == NULL)
        return;
    mbedtls_ssl_session_free(&t->session);
    mbedtls_ssl_config_free(&t->conf);
    mbedtls_pk_free(&t->key);
    mbedtls_x509_crt_free(&t->cert);
    mbedtls_x509_crt_free(&t->ca);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_entropy_free(&t->entropy);
    free(t->name);
    free(t);
}

uint64_t pa_tls_random(struct pa_tls *t)
{
    static _Thread_local uint64_t lcg = 0x853c49e6748fea9bull;
    uint64_t v = 0;
    if (t == NULL) /* a client without TLS (tests, the fuzz target) */
        return (lcg = lcg * 6364136223846793005ull + 1442695040888963407ull) >> 11;
    if (mbedtls_ctr_drbg_random(&t->drbg, (unsigned char *)&v, sizeof v) != 0)
        v = (uint64_t)(uintptr_t)&v * 0x9e3779b97f4a7c15ull; /* jitter only */
    return v;
}

void pa_tls_forget_session(struct pa_tls *t)
{
    if (t->have_session) {
        mbedtls_ssl_session_free(&t->session);
        mbedtls_ssl_session_init(&t->session);
        t->have_session = 0;
    }
}

/* ---- BIO over the non-blocking socket ------------------------------------------ */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    const struct pa_tls_io *io = ctx;
    return pa_sock_send(io->fd, buf, len);
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    const struct pa_tls_io *io = ctx;
    return pa_sock_recv(io->fd, buf, len);
}

int pa_tls_io_new(struct pa_tls_io **out, struct pa_tls *t, int fd, const char *host)
{
    struct pa_tls_io *io;

    *out = NULL;
    io = calloc(1, sizeof *io);
    if (io == NULL)
        return PANELAGENT_ENOMEM;
    io->t = t;
    io->fd = fd;
    mbedtls_ssl_init(&io->ssl);
    if (mbedtls_ssl_setup(&io->ssl, &t->conf) != 0 ||
        mbedtls_ssl_set_hostname(&io->ssl, t->name ? t->name : host) != 0) {
        pa_tls_io_free(io);
        return PANELAGENT_ENOMEM;
    }
    mbedtls_ssl_set_verify(&io->ssl, verify_cb, io);
    mbedtls_ssl_set_bio(&io->ssl, io, bio_send, bio_recv, NULL);
    if (t->have_session && mbedtls_ssl_set_session(&io->ssl, &t->session) == 0)
        io->offered_session = 1;
    *out = io;
    return PANELAGENT_OK;
}

void pa_tls_io_free(struct pa_tls_io *io)
{
    if (io == NULL)
        return;
    mbedtls_ssl_free(&io->ssl);
    free(io);
}

/* ---- classification ---------------------------------------------------------- */

/* The description of the fatal alert just received. */
static int last_alert(const struct pa_tls_io *io)
{
    const unsigned char *msg = io->ssl.PRIV(in_msg);
    return msg != NULL ? msg[1] : -1;
}

static const char *alert_name(int a)
{
    switch (a) {
    case ALERT_BAD_CERT: return "bad_certificate";
    case ALERT_UNSUPPORTED_CERT: return "unsupported_certificate";
    case ALERT_CERT_REVOKED: return "certificate_revoked";
    case ALERT_CERT_EXPIRED: return "certificate_expired";
    case ALERT_CERT_UNKNOWN: return "certificate_unknown";
    case ALERT_UNKNOWN_CA: return "unknown_ca";
    case ALERT_ACCESS_DENIED: return "access_denied";
    case 40: return "handshake_failure";
    case 120: return "no_application_protocol";
    default: return "alert";
    }
}

static int classify_alert(struct pa_tls_io *io, char *err, size_t errlen)
{
    int a = last_alert(io), code;

    switch (a) {
    case ALERT_ACCESS_DENIED: code = PANELAGENT_ENOT_REGISTERED; break;
    case ALERT_CERT_REVOKED: code = PANELAGENT_EREVOKED; break;
    case ALERT_UNKNOWN_CA:
    case ALERT_BAD_CERT:
    case ALERT_CERT_EXPIRED:
    case ALERT_UNSUPPORTED_CERT:
    case ALERT_CERT_UNKNOWN: code = PANELAGENT_ECERT_REJECTED; break;
    default: code = PANELAGENT_ETLS; break;
    }
    pa_seterr(err, errlen, "the gateway sent the fatal alert %s (%d)", alert_name(a), a);
    if (code != PANELAGENT_ETLS)
        pa_tls_forget_session(io->t);
    return code;
}

static int classify(struct pa_tls_io *io, int ret, int in_handshake, char *err, size_t errlen)
{
    char e[128];

    if (ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE)
        return classify_alert(io, err, errlen);
    if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED || io->verify_flags != 0) {
        char info[256];
        uint32_t flags = io->verify_flags ? io->verify_flags
                                          : mbedtls_ssl_get_verify_result(&io->ssl);
        if (mbedtls_x509_crt_verify_info(info, sizeof info, "", flags) < 0)
            info[0] = '\0';
        for (char *p = info; *p; p++)
            if (*p == '\n')
                *p = *(p + 1) ? ';' : '\0';
        pa_seterr(err, errlen, "the gateway's certificate did not verify (%s)",
                  info[0] ? info : "unknown reason");
        return PANELAGENT_EGATEWAY_CERT;
    }
    if (ret == MBEDTLS_ERR_SSL_CONN_EOF || ret == MBEDTLS_ERR_NET_CONN_RESET ||
        ret == MBEDTLS_ERR_NET_RECV_FAILED || ret == MBEDTLS_ERR_NET_SEND_FAILED ||
        ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
        pa_seterr(err, errlen, "the gateway closed the connection%s",
                  in_handshake ? " during the TLS handshake" : "");
        return in_handshake ? PANELAGENT_ECONNECT : PANELAGENT_ECONNECT;
    }
    mbedtls_strerror(ret, e, sizeof e);
    pa_seterr(err, errlen, "TLS%s: %s", in_handshake ? " handshake" : "", e);
    return PANELAGENT_ETLS;
}

static int check_pin(struct pa_tls_io *io, char *err, size_t errlen)
{
    uint8_t digest[PA_SPKI_SHA256_LEN];
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&io->ssl);

    if (!io->t->has_pin)
        return PANELAGENT_OK;
    if (peer == NULL) {
        pa_seterr(err, errlen, "no gateway certificate to compare with the pin");
        return PANELAGENT_EGATEWAY_PIN;
    }
    if (pa_spki_sha256(&peer->pk, digest) != 0) {
        pa_seterr(err, errlen, "cannot hash the gateway's public key");
        return PANELAGENT_EGATEWAY_PIN;
    }
    if (memcmp(digest, io->t->pin, sizeof digest) != 0) {
        char hex[65];
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", digest[i]);
        pa_seterr(err, errlen, "the gateway's key (SPKI SHA-256 %s) is not the pinned one", hex);
        return PANELAGENT_EGATEWAY_PIN;
    }
    return PANELAGENT_OK;
}

int pa_tls_handshake(struct pa_tls_io *io, int *want_write, int *resumed, char *err,
                     size_t errlen)
{
    int ret = mbedtls_ssl_handshake(&io->ssl), rv;

    *want_write = 0;
    *resumed = 0;
    if (ret == MBEDTLS_ERR_SSL_WANT_READ)
        return PANELAGENT_EAGAIN;
    if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
        *want_write = 1;
        return PANELAGENT_EAGAIN;
    }
    if (ret != 0) {
        rv = classify(io, ret, 1, err, errlen);
        if (rv == PANELAGENT_EGATEWAY_CERT)
            pa_tls_forget_session(io->t);
        return rv;
    }
    if ((rv = check_pin(io, err, errlen)) != PANELAGENT_OK) {
        pa_tls_forget_session(io->t);
        return rv;
    }
    /* Only h2 was offered: a gateway that selects nothing (or answers
     * HTTP/1.1) cannot be spoken to.  Not a refusal of ours: transient. */
    const char *proto = mbedtls_ssl_get_alpn_protocol(&io->ssl);
    if (proto == NULL || strcmp(proto, "h2") != 0) {
        pa_seterr(err, errlen, "the gateway did not select HTTP/2 with ALPN (%s)",
                  proto == NULL ? "no protocol selected" : "another protocol");
        return PANELAGENT_EPROTOCOL;
    }
    /* A resumed session keeps the master secret of the one offered. */
    if (io->offered_session &&
        memcmp(io->ssl.PRIV(session)->PRIV(master), io->t->session.PRIV(master),
               sizeof io->t->session.PRIV(master)) == 0)
        *resumed = 1;
    if (!*resumed) {
        pa_tls_forget_session(io->t);
        if (mbedtls_ssl_get_session(&io->ssl, &io->t->session) == 0)
            io->t->have_session = 1;
        else {
            mbedtls_ssl_session_free(&io->t->session);
            mbedtls_ssl_session_init(&io->t->session);
        }
    }
    return PANELAGENT_OK;
}

int pa_tls_read(struct pa_tls_io *io, uint8_t *buf, size_t n, int *want_write, char *err,
                size_t errlen)
{
    int ret = mbedtls_ssl_read(&io->ssl, buf, n);

    *want_write = 0;
    if (ret > 0)
        return ret;
    if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
        return 0;
    if (ret == MBEDTLS_ERR_SSL_WANT_READ)
        return PANELAGENT_EAGAIN;
    if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
        *want_write = 1;
        return PANELAGENT_EAGAIN;
    }
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
    if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
        return PANELAGENT_EAGAIN;
#endif
    return classify(io, ret, 0, err, errlen);
}

int pa_tls_write(struct pa_tls_io *io, const uint8_t *buf, size_t n, int *want_write,
                 char *err, size_t errlen)
{
    int ret = mbedtls_ssl_write(&io->ssl, buf, n);

    *want_write = 0;
    if (ret > 0)
        return ret;
    if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
        *want_write = 1;
        return PANELAGENT_EAGAIN;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ)
        return PANELAGENT_EAGAIN;
    return classify(io, ret, 0, err, errlen);
}

void pa_tls_close_notify(struct pa_tls_io *io)
{
    (void)mbedtls_ssl_close_notify(&io->ssl);
}
