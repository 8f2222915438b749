/*
 * conn.c - one agent connection: socket events, the TLS glue over a
 * non-blocking socket (Debian's libevent 2.1 has no mbedTLS bufferevent),
 * the handshake with identity resolution, timers and teardown.
 *
 * The TLS layer talks to the socket directly through mbedtls_ssl_set_bio;
 * libevent only tells us when the socket is readable or writable.  Plaintext
 * from nghttp2 waits in c->out until mbedtls_ssl_write takes it (a write that
 * returned WANT_WRITE must be retried with the same bytes).
 *
 * Budgets at accept: a connection that has not authenticated yet (in the
 * handshake, or refused and lingering) is on app's unauthenticated list,
 * oldest first.  When max_handshakes or max_connections is full, the oldest
 * of them is shed for the newcomer, so idle or stalled connections can
 * never keep an agent out; authenticated connections are never shed.  The
 * TLS context's buffers are allocated only once the peer sends its first
 * byte, and after a burst of closes the freed memory is handed back to the
 * system (gw_conn_on_trim).
 */
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/net_sockets.h>
#include <mbedtls/x509.h>

#include "alloc.h"
#include "gw.h"
#include "hello.h"
#include "limiter.h"
#include "log.h"
#include "tls.h"
#include "wipe.h"
#include <panelproto/tlsutil.h>

#define OUT_CHUNK 16384 /* plaintext gathered from nghttp2 per TLS write */
#define CLOSE_GRACE_MS 5000 /* GOAWAY sent: how long to wait for the peer */
#define LINGER_MS 2000      /* refused: how long to drain before closing */
/* Connections closed since the peak that make a trim worth it: 256 set-up
 * TLS contexts are ~10 MB.  The trim waits TRIM_DELAY_MS so that one burst
 * of closes costs one trim. */
#define TRIM_AFTER_CLOSES 256
#define TRIM_DELAY_MS 1000
#define SHED_LOG_MS 1000    /* at most one connections_shed line per second */

void gw_conn_log_ctx(const struct gw_conn *c, struct gw_log_ctx *ctx)
{
    ctx->conn_id = c->id;
    ctx->server = c->server_name[0] ? c->server_name : NULL;
}

static void arm_timer(struct gw_conn *c, uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

void gw_conn_touch(struct gw_conn *c)
{
    if (c->state == GW_CONN_H2)
        arm_timer(c, c->app->cfg->idle_timeout_ms);
}

static void arm_write(struct gw_conn *c, bool on)
{
    if (on == c->write_armed)
        return;
    if (on)
        event_add(c->ev_write, NULL);
    else
        event_del(c->ev_write);
    c->write_armed = on;
}

/* ---- the unauthenticated list ------------------------------------------------ */

static void unauth_link(struct gw_conn *c)
{
    struct gw_app *app = c->app;

    c->unauth_prev = app->unauth_newest;
    c->unauth_next = NULL;
    if (app->unauth_newest)
        app->unauth_newest->unauth_next = c;
    else
        app->unauth_oldest = c;
    app->unauth_newest = c;
    app->n_unauth++;
    c->unauth = true;
}

static void unauth_unlink(struct gw_conn *c)
{
    struct gw_app *app = c->app;

    if (!c->unauth)
        return;
    if (c->unauth_prev)
        c->unauth_prev->unauth_next = c->unauth_next;
    else
        app->unauth_oldest = c->unauth_next;
    if (c->unauth_next)
        c->unauth_next->unauth_prev = c->unauth_prev;
    else
        app->unauth_newest = c->unauth_prev;
    c->unauth_prev = c->unauth_next = NULL;
    app->n_unauth--;
    c->unauth = false;
}

/* Closes the oldest unauthenticated connection to make room for a new one;
 * |reason| names the budget that is full.  One warn line a second at most,
 * with counts only: no address (the peer proved nothing, and a flood would
 * otherwise write a line per connection). */
static void shed_oldest(struct gw_app *app, const char *reason)
{
    int64_t now = gw_mono_ms();

    if (strcmp(reason, "max_handshakes") == 0)
        app->stats.conns_shed_handshakes++;
    else
        app->stats.conns_shed_limit++;
    app->shed_unlogged++;
    gw_conn_close(app->unauth_oldest);
    if (app->shed_log_ms != 0 && now - app->shed_log_ms < SHED_LOG_MS)
        return;
    app->shed_log_ms = now;
    gw_log(GW_LOG_WARN, NULL, "connections_shed",
           "reason=%s shed_since_last=%llu handshaking=%u open=%u: the oldest connections "
           "that had not authenticated were closed for new ones",
           reason, (unsigned long long)app->shed_unlogged, app->n_unauth, app->n_conns);
    app->shed_unlogged = 0;
}

/* ---- BIO callbacks -------------------------------------------------------- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    const struct gw_conn *c = ctx;
    return pa_sock_send(c->fd, buf, len);
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct gw_conn *c = ctx;
    int n = pa_sock_recv(c->fd, buf, len);
    if (n > 0 && !c->hello.done) {
        gw_hello_feed(&c->hello, buf, (size_t)n);
        if (c->hello.bad)
            return MBEDTLS_ERR_SSL_BAD_HS_CLIENT_HELLO;
    }
    return n;
}

/* ---- refusals -------------------------------------------------------------- */

/* Refused handshakes are logged at most refusal_log_per_s per second; the
 * rest are counted and summarised in the next line that gets through. */
static void log_refusal(struct gw_conn *c, const char *reason)
{
    struct gw_app *app = c->app;
    int64_t now = gw_mono_ms(); /* the bucket refills over an interval */
    double rate = app->cfg->refusal_log_per_s;
    char hex[2 * GW_SPKI_LEN + 1] = "";
    struct gw_log_ctx ctx;

    app->refusal_tokens += (double)(now - app->refusal_last_ms) * rate / 1000.0;
    if (app->refusal_tokens > rate)
        app->refusal_tokens = rate;
    app->refusal_last_ms = now;
    if (app->refusal_tokens < 1.0) {
        app->refusal_suppressed++;
        return;
    }
    app->refusal_tokens -= 1.0;
    if (c->have_spki)
        gw_spki_hex(c->spki, hex);
    gw_conn_log_ctx(c, &ctx);
    gw_log(GW_LOG_WARN, &ctx, "handshake_refused",
           "reason=%s spki_sha256=%s peer=%s suppressed_since_last=%llu", reason,
           hex[0] ? hex : "-", c->peer, (unsigned long long)app->refusal_suppressed);
    app->refusal_suppressed = 0;
}

/* After a fatal alert: close our sending side and read (and drop) what the
 * peer still sends for a moment.  Closing a socket with unread bytes makes
 * the kernel send a reset, which can destroy the alert before the peer
 * reads it. */
static void linger(struct gw_conn *c)
{
    arm_write(c, false);
    if (c->h2) {
        nghttp2_session_del(c->h2);
        c->h2 = NULL;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = GW_CONN_LINGER;
    arm_timer(c, LINGER_MS);
}

static void drain_linger(struct gw_conn *c)
{
    unsigned char buf[4096];

    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        gw_conn_close(c); /* EOF or error: the peer is done */
        return;
    }
}

/* The alert for a registry refusal: certificate_revoked for a revoked
 * server or a pin whose rotation overlap has ended (the agent learns that
 * its key is gone for good), access_denied otherwise (unregistered,
 * banned). */
static bool revoked_reason(const char *reason)
{
    return strcmp(reason, "revoked") == 0 || strcmp(reason, "pin_expired") == 0;
}

static unsigned char refusal_alert(const char *reason)
{
    if (strcmp(reason, "cert_expired") == 0 || strcmp(reason, "cert_not_yet_valid") == 0)
        return MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED;
    return revoked_reason(reason) ? MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED
                                   : MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED;
}

static void refuse(struct gw_conn *c, const char *reason, bool send_alert)
{
    struct gw_stats *st = &c->app->stats;
    /* A key in a chain that did not verify proves nothing: anyone who has a
     * server's public key can put it in a self-signed certificate.  The
     * refusal is recorded with the key but not under that server. */
    const struct gw_server *known =
        c->have_spki && c->identity_ok ? gw_registry_lookup(c->app->reg, c->spki) : NULL;

    gw_refusals_note(&c->app->refusals, reason, c->have_spki ? c->spki : NULL,
                     known ? known->id : 0, c->peer, gw_now_ms());

    st->handshakes_refused++;
    if (strcmp(reason, "unregistered") == 0 || strcmp(reason, "pin_expired") == 0)
        st->refused_unregistered++;
    else if (strcmp(reason, "revoked") == 0)
        st->refused_revoked++;
    else if (strcmp(reason, "alpn") == 0)
        st->refused_alpn++;
    if (send_alert)
        mbedtls_ssl_send_alert_message(&c->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                       refusal_alert(reason));
    log_refusal(c, reason);
    linger(c);
}

/* Called by mbedTLS for each certificate of the chain, the root first and
 * the agent's own certificate (depth 0) last.  The registry is consulted
 * only for a chain that verified.  A revoked server (or an old pin past
 * its overlap) sets BADCERT_REVOKED, which mbedTLS turns into a
 * certificate_revoked alert; any other refusal sets BADCERT_OTHER, which
 * it turns into access_denied (ssl_parse_certificate_verify checks OTHER
 * first, and only one flag is ever set here). */
static int verify_cb(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    struct gw_conn *c = ctx;
    const char *why = NULL;

    /* not yet valid: certificate_expired, as RFC 5246 7.2.2 asks (mbedTLS
     * would send certificate_unknown) */
    if (*flags & MBEDTLS_X509_BADCERT_FUTURE)
        *flags |= MBEDTLS_X509_BADCERT_EXPIRED;
    if (depth != 0) {
        if (*flags)
            c->chain_bad = true;
        return 0;
    }
    c->verified = true;
    if (gw_tls_spki_sha256(crt, c->spki) == 0)
        c->have_spki = true;
    if (*flags || c->chain_bad)
        return 0;
    c->identity_ok = true;
    const struct gw_server *srv =
        c->have_spki ? gw_registry_find(c->app->reg, c->spki, gw_now_ms() / 1000, &why) : NULL;
    if (!srv) {
        c->refusal = why ? why : "unregistered";
        *flags |= revoked_reason(c->refusal) ? MBEDTLS_X509_BADCERT_REVOKED
                                             : MBEDTLS_X509_BADCERT_OTHER;
    } else if (gw_limiter_banned(c->app->limiter, srv->id) > 0) {
        c->refusal = "banned"; /* rate-limit escalation, until the ban ends */
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
    }
    return 0;
}

/* ---- handshake -------------------------------------------------------------- */

static void start_h2(struct gw_conn *c);
static void read_tls(struct gw_conn *c);

/* Sets up the TLS context once the peer has sent a byte: its record
 * buffers and handshake state (~38 KB with Debian's mbedTLS, whose buffers
 * are fixed at 16 KiB each way) are not spent on a connection that sends
 * nothing.  True when the context is ready; false when no byte has come
 * yet, or when the peer left or the setup failed (|c| closed, freed). */
static bool tls_start(struct gw_conn *c)
{
    unsigned char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return false;
    if (n <= 0) { /* the peer went away, as in handshake() */
        c->app->stats.handshakes_refused++;
        gw_conn_close(c);
        return false;
    }
    if (mbedtls_ssl_setup(&c->ssl, gw_tls_conf(c->tls)) != 0) {
        gw_conn_close(c);
        return false;
    }
    mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
    mbedtls_ssl_set_verify(&c->ssl, verify_cb, c);
    c->ssl_ready = true;
    return true;
}

static void handshake(struct gw_conn *c)
{
    if (!c->ssl_ready && !tls_start(c))
        return;
    int ret = mbedtls_ssl_handshake(&c->ssl);

    if (ret == MBEDTLS_ERR_SSL_WANT_READ) {
        arm_write(c, false);
        return;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
        arm_write(c, true);
        return;
    }
    if (ret != 0) {
        uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
        const char *reason = c->refusal ? c->refusal : gw_tls_reason(ret, flags);
        if (ret == MBEDTLS_ERR_SSL_BAD_HS_CLIENT_HELLO && c->hello.alpn_seen &&
            !c->hello.h2_offered)
            reason = "alpn"; /* mbedTLS sent no_application_protocol */
        if (ret == MBEDTLS_ERR_NET_CONN_RESET || ret == MBEDTLS_ERR_SSL_CONN_EOF) {
            /* the peer went away: not worth an operator's attention */
            c->app->stats.handshakes_refused++;
            gw_conn_close(c);
            return;
        }
        /* mbedTLS sends its own alert for every failure but a missing
         * client certificate (RFC 5246 7.4.6: handshake_failure) */
        if (ret == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE)
            mbedtls_ssl_send_alert_message(&c->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                           MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE);
        else if (c->hello.bad)
            mbedtls_ssl_send_alert_message(&c->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                           MBEDTLS_SSL_ALERT_MSG_ILLEGAL_PARAMETER);
        /* nor for a record it cannot parse (an unknown content type, say):
         * RFC 5246 6 / RFC 8446 5 ask for unexpected_message */
        else if (ret == MBEDTLS_ERR_SSL_INVALID_RECORD || ret == MBEDTLS_ERR_SSL_UNEXPECTED_RECORD)
            mbedtls_ssl_send_alert_message(&c->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
                                           MBEDTLS_SSL_ALERT_MSG_UNEXPECTED_MESSAGE);
        refuse(c, reason, false);
        return;
    }
    arm_write(c, false);

    /* A resumed session skips certificate verification: resolve the
     * identity from the session's peer certificate in every case, and
     * check its validity period again - the ticket may have been issued
     * before the certificate expired. */
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ssl);
    const struct gw_server *srv = NULL;
    const char *why = "no_client_cert";
    bool resumed = !c->verified;
    if (peer && gw_tls_spki_sha256(peer, c->spki) == 0) {
        c->have_spki = true;
        c->identity_ok = true; /* verified now, or when the ticket was issued */
        if (mbedtls_x509_time_is_past(&peer->valid_to))
            why = "cert_expired";
        else if (mbedtls_x509_time_is_future(&peer->valid_from))
            why = "cert_not_yet_valid";
        else
            srv = gw_registry_find(c->app->reg, c->spki, gw_now_ms() / 1000, &why);
    }
    if (!srv) {
        refuse(c, why, true);
        return;
    }
    if (gw_limiter_banned(c->app->limiter, srv->id) > 0) { /* a resumed session, say */
        refuse(c, "banned", true);
        return;
    }
    c->server_id = srv->id;
    snprintf(c->server_name, sizeof c->server_name, "%s", srv->name);

    c->app->stats.handshakes_ok++;
    c->app->stats.handshakes_resumed += resumed;
    start_h2(c);
}

static void start_h2(struct gw_conn *c)
{
    struct gw_log_ctx ctx;
    const char *alpn = mbedtls_ssl_get_alpn_protocol(&c->ssl);

    /* ALPN offered without h2 already failed the handshake inside mbedTLS
     * (no_application_protocol); no ALPN at all means prior knowledge. */
    if (gw_h2_session_new(c) != 0) {
        gw_conn_log_ctx(c, &ctx);
        gw_log(GW_LOG_ERROR, &ctx, "h2_init_failed", "cannot create the HTTP/2 session");
        gw_conn_close(c);
        return;
    }
    c->state = GW_CONN_H2;
    unauth_unlink(c); /* authenticated: never shed */
    gw_conn_touch(c);
    gw_conn_log_ctx(c, &ctx);
    gw_log(GW_LOG_INFO, &ctx, "connected", "tls=%s suite=%s alpn=%s peer=%s",
           mbedtls_ssl_get_version(&c->ssl), mbedtls_ssl_get_ciphersuite(&c->ssl),
           alpn ? alpn : "none", c->peer);
    /* records may already sit decrypted-ready in mbedTLS's buffer */
    read_tls(c);
}

/* ---- data path -------------------------------------------------------------- */

static void close_gracefully(struct gw_conn *c)
{
    mbedtls_ssl_close_notify(&c->ssl);
    gw_conn_close(c);
}

int gw_conn_flush(struct gw_conn *c)
{
    for (;;) {
        if (c->out_off < c->out.len) {
            int n = mbedtls_ssl_write(&c->ssl, c->out.data + c->out_off, c->out.len - c->out_off);
            if (n == MBEDTLS_ERR_SSL_WANT_WRITE || n == MBEDTLS_ERR_SSL_WANT_READ) {
                arm_write(c, true);
                return 0;
            }
            if (n < 0) {
                gw_conn_close(c);
                return GW_ECLOSED;
            }
            c->out_off += (size_t)n;
            continue;
        }
        c->out.len = 0;
        c->out_off = 0;
        if (c->h2_failed) { /* fail_session's output is out */
            close_gracefully(c);
            return GW_ECLOSED;
        }
        if (!c->h2)
            break;
        while (c->out.len < OUT_CHUNK) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(c->h2, &data);
            if (n < 0) {
                gw_conn_close(c);
                return GW_ECLOSED;
            }
            if (n == 0)
                break;
            if (pa_buf_append(&c->out, data, (size_t)n) != 0) {
                gw_conn_close(c);
                return GW_ECLOSED;
            }
        }
        if (c->out.len == 0)
            break;
    }
    arm_write(c, false);
    if (c->h2 && !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
        close_gracefully(c);
        return GW_ECLOSED;
    }
    return 0;
}

/* The HTTP/2 error code (RFC 9113 7) for one of nghttp2_session_mem_recv's
 * fatal errors. */
static uint32_t h2_error_code(ssize_t rv)
{
    switch (rv) {
    case NGHTTP2_ERR_FLOODED:                /* SETTINGS or PING flood */
    case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS: /* [http2] max_continuations */
        return NGHTTP2_ENHANCE_YOUR_CALM;
    case NGHTTP2_ERR_HEADER_COMP:
        return NGHTTP2_COMPRESSION_ERROR;
    case NGHTTP2_ERR_FLOW_CONTROL:
        return NGHTTP2_FLOW_CONTROL_ERROR;
    case NGHTTP2_ERR_CALLBACK_FAILURE:
    case NGHTTP2_ERR_NOMEM:
        return NGHTTP2_INTERNAL_ERROR;
    default:
        return NGHTTP2_PROTOCOL_ERROR;
    }
}

/* After a fatal HTTP/2 error (RFC 9113 5.4.1: send GOAWAY, then close):
 * what nghttp2 still has queued goes out - unless that queue is the flood
 * that ended the session - then a GOAWAY of our own, as nghttp2 queues
 * none for several of its fatal errors (a SETTINGS or PING flood, too many
 * CONTINUATION frames).  A second GOAWAY after nghttp2's is allowed (6.8)
 * and names the same last stream.  The session takes nothing more; the
 * connection stays only until that output is written, CLOSE_GRACE_MS at
 * most (the timer), then closes. */
static void fail_session(struct gw_conn *c, ssize_t rv)
{
    const uint8_t *data;
    ssize_t n;

    if (rv != NGHTTP2_ERR_FLOODED)
        while ((n = nghttp2_session_mem_send(c->h2, &data)) > 0)
            if (pa_buf_append(&c->out, data, (size_t)n) != 0)
                break;
    uint32_t last = (uint32_t)nghttp2_session_get_last_proc_stream_id(c->h2) & 0x7fffffffu;
    uint32_t code = h2_error_code(rv);
    uint8_t ga[17] = {0, 0, 8, NGHTTP2_GOAWAY, 0, 0, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        ga[9 + i] = (uint8_t)(last >> (24 - 8 * i));
        ga[13 + i] = (uint8_t)(code >> (24 - 8 * i));
    }
    (void)pa_buf_append(&c->out, ga, sizeof ga); /* out of memory: just closed */
    c->h2_failed = true;
    c->state = GW_CONN_CLOSING;
    event_del(c->ev_read);
    arm_timer(c, CLOSE_GRACE_MS);
    gw_conn_flush(c);
}

/* Decrypted records go to nghttp2 straight from |buf|, which is wiped
 * before it goes out of scope: it held request bodies, viewer addresses
 * included (docs/PRIVACY.md: nothing of a frame stays in memory once it
 * is handled).  mbedtls_ssl_read wipes its own copy of what it hands out
 * (mbedTLS 2.24 and later, CVE-2020-36476), nghttp2 passes DATA payloads
 * to on_data_chunk as pointers into |buf|, and every frame this read
 * completed is decoded, reduced and its memory wiped (h2.c) before
 * nghttp2_session_mem_recv returns; what the copies of all that left in
 * the vector registers goes last. */
static void read_tls(struct gw_conn *c)
{
    unsigned char buf[16384];
    size_t used = 0;
    bool flush = true;

    for (;;) {
        int n = mbedtls_ssl_read(&c->ssl, buf, sizeof buf);
        if (n > 0) {
            if ((size_t)n > used)
                used = (size_t)n;
            ssize_t rv = nghttp2_session_mem_recv(c->h2, buf, (size_t)n);
            if (rv < 0) {
                struct gw_log_ctx ctx;
                gw_conn_log_ctx(c, &ctx);
                gw_log(GW_LOG_INFO, &ctx, "h2_error", "%s", nghttp2_strerror((int)rv));
                fail_session(c, rv);
                flush = false;
                break;
            }
            continue;
        }
        if (n == MBEDTLS_ERR_SSL_WANT_READ)
            break;
        if (n == MBEDTLS_ERR_SSL_WANT_WRITE) {
            arm_write(c, true);
            break;
        }
        /* 0 / close_notify / reset / anything else: the peer is gone */
        gw_conn_close(c);
        flush = false;
        break;
    }
    explicit_bzero(buf, used);
    gw_wipe_vector_regs();
    if (flush)
        gw_conn_flush(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->state == GW_CONN_HANDSHAKE)
        handshake(c);
    else if (c->state == GW_CONN_LINGER)
        drain_linger(c);
    else
        read_tls(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->state == GW_CONN_HANDSHAKE)
        handshake(c);
    else if (c->state != GW_CONN_LINGER)
        gw_conn_flush(c);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *c = arg;
    (void)fd;
    (void)what;
    /* as on_write: an answer is due in CLOSING too (after a GOAWAY, the
     * streams already accepted finish) */
    if (c->state == GW_CONN_H2 || c->state == GW_CONN_CLOSING)
        gw_conn_flush(c);
}

void gw_conn_flush_soon(struct gw_conn *c)
{
    event_active(c->ev_flush, EV_WRITE, 0);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *c = arg;
    struct gw_log_ctx ctx;
    (void)fd;
    (void)what;

    gw_conn_log_ctx(c, &ctx);
    switch (c->state) {
    case GW_CONN_HANDSHAKE:
        c->app->stats.handshake_timeouts++;
        gw_log(GW_LOG_INFO, &ctx, "handshake_timeout", "peer=%s", c->peer);
        gw_conn_close(c);
        return;
    case GW_CONN_H2:
        if (c->n_streams > 0) {
            gw_conn_touch(c);
            return;
        }
        gw_log(GW_LOG_DEBUG, &ctx, "idle_timeout", "closing an idle connection");
        gw_conn_goaway(c, NGHTTP2_NO_ERROR, "idle");
        gw_conn_flush(c);
        return;
    case GW_CONN_CLOSING:
    case GW_CONN_LINGER:
        gw_conn_close(c);
        return;
    }
}

void gw_conn_goaway(struct gw_conn *c, uint32_t error_code, const char *why)
{
    if (!c->h2 || c->state != GW_CONN_H2)
        return;
    nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2),
                          error_code, (const uint8_t *)why, strlen(why));
    c->state = GW_CONN_CLOSING;
    /* streams already accepted may finish; a peer that never lets the
     * session end is dropped after the grace period */
    uint32_t grace = c->app->cfg->request_timeout_ms + CLOSE_GRACE_MS;
    arm_timer(c, grace);
}

unsigned gw_conn_goaway_server(struct gw_conn *self, uint32_t error_code, const char *why)
{
    struct gw_app *app = self->app;
    int64_t id = self->server_id;
    unsigned n = 0;

    for (struct gw_conn *x = app->conns, *next; x; x = next) {
        next = x->next;
        if (x->server_id != id || x->state != GW_CONN_H2)
            continue;
        n++;
        gw_conn_goaway(x, error_code, why);
        if (x != self)
            gw_conn_flush(x); /* may free x */
    }
    return n;
}

/* ---- lifecycle ------------------------------------------------------------- */

/* Numeric host and port of |sa|: "?" and 0 for another family. */
static void sockaddr_text(const struct sockaddr *sa, socklen_t salen, char *host,
                          size_t hostlen, unsigned *port)
{
    snprintf(host, hostlen, "?");
    *port = 0;
    if (sa->sa_family == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        if (!inet_ntop(AF_INET, &in->sin_addr, host, (socklen_t)hostlen))
            snprintf(host, hostlen, "?");
        *port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6 && salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (!inet_ntop(AF_INET6, &in6->sin6_addr, host, (socklen_t)hostlen))
            snprintf(host, hostlen, "?");
        *port = ntohs(in6->sin6_port);
    }
}

void gw_sockname(int fd, char *host, size_t hostlen, unsigned *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        snprintf(host, hostlen, "?");
        *port = 0;
        return;
    }
    sockaddr_text((const struct sockaddr *)&ss, len, host, hostlen, port);
}

void gw_conn_accept(struct gw_app *app, int fd, const struct sockaddr *sa, int salen)
{
    struct gw_conn *c;
    int one = 1;

    /* new connections per source address, before any TLS work (every
     * attempt counts, also one refused below) */
    if (!app->draining && !gw_limiter_accept(app->limiter, sa, (size_t)salen)) {
        app->stats.handshakes_throttled++;
        close(fd);
        return;
    }
    /* a full budget sheds the oldest unauthenticated connection: the new
     * one may be an agent, an old one still in its handshake most likely
     * is not (a reload that lowered a budget may shed several) */
    while (!app->draining && app->unauth_oldest &&
           (app->n_unauth >= app->cfg->max_handshakes ||
            app->n_conns >= app->cfg->max_connections))
        shed_oldest(app, app->n_unauth >= app->cfg->max_handshakes ? "max_handshakes"
                                                                    : "max_connections");
    /* every slot authenticated: the newcomer is refused */
    if (app->draining || app->n_conns >= app->cfg->max_connections) {
        app->stats.conns_refused_limit++;
        close(fd);
        return;
    }
    c = gw_calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->app = app;
    c->id = ++app->next_conn_id;
    c->fd = fd;
    c->state = GW_CONN_HANDSHAKE;
    pa_buf_init(&c->out, &gw_pa_mem);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    char a[INET6_ADDRSTRLEN];
    unsigned port;
    sockaddr_text(sa, salen > 0 ? (socklen_t)salen : 0, a, sizeof a, &port);
    if (sa->sa_family == AF_INET6)
        snprintf(c->peer, sizeof c->peer, "[%s]:%u", a, port);
    else if (sa->sa_family == AF_INET)
        snprintf(c->peer, sizeof c->peer, "%s:%u", a, port);
    else
        snprintf(c->peer, sizeof c->peer, "?");

    c->tls = gw_tls_ref(app->tls);
    mbedtls_ssl_init(&c->ssl);
    c->ev_read = event_new(app->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->ev_write = event_new(app->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    c->timer = evtimer_new(app->base, on_timer, c);
    c->ev_flush = event_new(app->base, -1, 0, on_flush, c);

    c->next = app->conns;
    if (app->conns)
        app->conns->prev = c;
    app->conns = c;
    app->n_conns++;
    if (app->n_conns > app->conns_peak)
        app->conns_peak = app->n_conns;
    unauth_link(c);
    app->stats.conns_accepted++;

    if (!c->ev_read || !c->ev_write || !c->timer || !c->ev_flush) {
        gw_conn_close(c);
        return;
    }
    event_add(c->ev_read, NULL); /* the TLS context comes with the first byte */
    arm_timer(c, app->cfg->handshake_timeout_ms);
}

void gw_conn_close(struct gw_conn *c)
{
    struct gw_app *app;

    if (!c)
        return;
    app = c->app;
    if (c->prev)
        c->prev->next = c->next;
    else
        app->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    app->n_conns--;
    unauth_unlink(c);

    gw_h2_streams_free(c);
    if (c->h2)
        nghttp2_session_del(c->h2);
    if (c->ev_read)
        event_free(c->ev_read);
    if (c->ev_write)
        event_free(c->ev_write);
    if (c->timer)
        event_free(c->timer);
    if (c->ev_flush)
        event_free(c->ev_flush);
    mbedtls_ssl_free(&c->ssl);
    gw_tls_unref(c->tls);
    close(c->fd);
    pa_buf_cleanup(&c->out);
    gw_free(c);

    if (app->trim_timer && app->conns_peak - app->n_conns >= TRIM_AFTER_CLOSES &&
        !evtimer_pending(app->trim_timer, NULL)) {
        struct timeval tv = {TRIM_DELAY_MS / 1000, (TRIM_DELAY_MS % 1000) * 1000};
        evtimer_add(app->trim_timer, &tv);
    }
    if (app->draining && app->n_conns == 0)
        event_base_loopexit(app->base, NULL);
}

/* glibc keeps what a burst of connections freed (their TLS buffers are
 * below its mmap threshold, so they sit in the heap between blocks still
 * in use) and returns only the top of the heap by itself: 2 000 idle
 * connections left ~76 MB resident after they had closed.  malloc_trim
 * hands every free page back (a few milliseconds on the loop, once per
 * burst: see TRIM_AFTER_CLOSES). */
void gw_conn_on_trim(evutil_socket_t fd, short what, void *arg)
{
    struct gw_app *app = arg;
    (void)fd;
    (void)what;

#ifdef __GLIBC__
    int64_t t0 = gw_mono_ms();
    int released = malloc_trim(0);
    gw_log(GW_LOG_DEBUG, NULL, "memory_trimmed", "connections=%u peak=%u released=%s in %lld ms",
           app->n_conns, app->conns_peak, released ? "yes" : "no",
           (long long)(gw_mono_ms() - t0));
#endif
    app->conns_peak = app->n_conns;
}
