/*
 * bench_conn.c - panelgate-bench's connections: identities (key pair, TLS
 * configuration, the frame encoded once), non-blocking connect and mbedTLS
 * handshake, nghttp2 client session, the slots that keep frames in flight,
 * reconnects and the storm's bookkeeping.  See panelgate_bench.c for what
 * the generator does and reports.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/net_sockets.h>
#include <mbedtls/version.h>

#include <panelagent.h>

#include "bench.h"

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define PRIV(m) private_##m
#else
#define PRIV(m) m
#endif

#define RETRY_US 200000
#define STORM_BACKOFF_US 100000 /* plus up to as much again, at random */
#define SENTINEL_SEQ 0x7eadbeefcafe1234ull

struct bench_run run = {.host = "127.0.0.1", .authority = "localhost", .ack_status = 202};
struct bench_stats stats;
mbedtls_ctr_drbg_context bench_drbg;
mbedtls_x509_crt bench_ca;

int64_t bench_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- TLS -------------------------------------------------------------------------- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    ssize_t n = send(*(int *)ctx, buf, len, MSG_NOSIGNAL);
    if (n >= 0)
        return (int)n;
    return errno == EAGAIN || errno == EINTR ? MBEDTLS_ERR_SSL_WANT_WRITE : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    ssize_t n = recv(*(int *)ctx, buf, len, 0);
    if (n >= 0)
        return (int)n;
    return errno == EAGAIN || errno == EINTR ? MBEDTLS_ERR_SSL_WANT_READ : MBEDTLS_ERR_NET_RECV_FAILED;
}

/* Hands the buffered HTTP/2 bytes to TLS.  A write that returned WANT_WRITE
 * is repeated with the same length, as mbedTLS requires.  -1 when the
 * connection failed. */
static int flush_out(struct conn *c)
{
    while (c->out_len > 0) {
        if (c->out_pending == 0)
            c->out_pending = c->out_len < 16384 ? c->out_len : 16384;
        int r = mbedtls_ssl_write(&c->ssl, c->out, c->out_pending);
        if (r == MBEDTLS_ERR_SSL_WANT_WRITE || r == MBEDTLS_ERR_SSL_WANT_READ)
            return 0;
        if (r <= 0)
            return -1;
        memmove(c->out, c->out + r, c->out_len - (size_t)r);
        c->out_len -= (size_t)r;
        c->out_pending = 0;
    }
    return 0;
}

/* ---- HTTP/2 ----------------------------------------------------------------------- */

static ssize_t h2_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
    struct conn *c = ud;
    (void)s;
    (void)flags;
    size_t room = BENCH_OUT_CAP - c->out_len;
    if (room == 0)
        return NGHTTP2_ERR_WOULDBLOCK;
    if (len > room)
        len = room;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return (ssize_t)len;
}

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct slot *sl = src->ptr;
    const struct ident *a = sl->c->id;
    (void)s;
    (void)id;
    (void)ud;
    size_t n = a->body_len - sl->off;
    if (n > len)
        n = len;
    memcpy(buf, a->body + sl->off, n);
    /* the seq of this request, patched into its own copy of the bytes */
    for (size_t i = 0; i < 8; i++) {
        size_t at = a->seq_at + i;
        if (at >= sl->off && at < sl->off + n)
            buf[at - sl->off] = (uint8_t)(sl->seq >> (56 - 8 * i));
    }
    sl->off += n;
    if (sl->off == a->body_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int send_frame(struct conn *c, struct slot *sl, int64_t now)
{
    const nghttp2_nv hdr[] = {
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}
        NV(":method", "POST"),
        NV(":scheme", "https"),
        NV(":authority", run.authority),
        NV(":path", "/v1/stats"),
        NV("content-type", "application/msgpack"),
        NV("content-length", c->id->clen),
#undef NV
    };
    nghttp2_data_provider dp = {.source.ptr = sl, .read_callback = body_read};
    sl->off = 0;
    sl->status = 0;
    sl->st = SLOT_SENT;
    sl->sent_us = now;
    return nghttp2_submit_request(c->h2, NULL, hdr, sizeof hdr / sizeof hdr[0], &dp, sl) < 0 ? -1 : 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud)
{
    (void)flags;
    (void)ud;
    if (f->hd.type != NGHTTP2_HEADERS || namelen != 7 || memcmp(name, ":status", 7) != 0)
        return 0;
    struct slot *sl = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (sl != NULL && valuelen == 3)
        sl->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
    return 0;
}

static void record_latency(uint32_t us)
{
    if (stats.n_lat == stats.cap_lat) {
        size_t cap = stats.cap_lat ? 2 * stats.cap_lat : 65536;
        uint32_t *p = realloc(stats.lat_us, cap * sizeof *p);
        if (p == NULL)
            return;
        stats.lat_us = p;
        stats.cap_lat = cap;
    }
    stats.lat_us[stats.n_lat++] = us;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    struct conn *c = ud;
    (void)code;
    struct slot *sl = nghttp2_session_get_stream_user_data(s, id);
    if (sl == NULL)
        return 0;
    int64_t now = bench_mono_us();
    if (sl->status == (int)run.ack_status) {
        if (run.measuring) {
            stats.ok++;
            record_latency((uint32_t)(now - sl->sent_us));
        }
        if (c->storm_wait) {
            c->storm_wait = 0;
            run.storm_left--;
            run.storm_last = now;
        }
        sl->seq = c->id->next_seq++;
        sl->st = SLOT_IDLE;
    } else if (sl->status == 503 || sl->status == 429) {
        if (run.measuring && sl->status == 503)
            stats.r503++;
        else if (run.measuring)
            stats.r429++;
        sl->st = SLOT_WAIT; /* the same seq again, a little later */
        sl->retry_at_us = now + RETRY_US;
    } else {
        if (run.measuring)
            stats.r_other++;
        sl->seq = c->id->next_seq++;
        sl->st = SLOT_WAIT;
        sl->retry_at_us = now + RETRY_US;
    }
    return 0;
}

/* ---- identities ------------------------------------------------------------------- */

/* A frame of |streams| streams over 2 vhosts x 2 apps and |conns| viewer
 * connections over 20 networks, a small config map; seq SENTINEL_SEQ. */
int bench_make_frame(const char *name, unsigned streams, unsigned conns, uint8_t **out,
                      size_t *len)
{
    static const char *const vh[] = {"_defaultVHost_", "edge.example.net"};
    static const char *const ap[] = {"live", "vod"};
    panelagent_frame *f = NULL;
    int rv = panelagent_frame_new(&f);
    if (rv != PANELAGENT_OK)
        return rv;
    rv = panelagent_frame_set_server(f, name, PANELAGENT_KIND_NIMBLE, "4.1.2");
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_add_server_ip(f, "192.0.2.10");
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_set_load(f, 37.5, 6ull << 30, 16ull << 30);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_set_traffic(f, 123456789, 9876543210ull, 5000);
    for (unsigned i = 0; rv == PANELAGENT_OK && i < streams; i++) {
        char s[32];
        snprintf(s, sizeof s, "stream-%03u_720p", i);
        uint64_t viewers = 10 + i * 7 % 300;
        rv = panelagent_frame_add_stream(f, vh[i % 2], ap[i / 2 % 2], "_definst_", s, viewers,
                                         2500000 + i * 1000, 1562500, viewers * 1562500ull);
    }
    for (unsigned i = 0; rv == PANELAGENT_OK && i < conns; i++) {
        /* 198.18.N.x, N = 0..19 (bench/make_bench_mmdb.pl's networks);
         * every tenth private */
        uint8_t a[4] = {198, 18, (uint8_t)(i % 20), (uint8_t)(i % 250 + 1)};
        if (i % 10 == 9) {
            a[0] = 10;
            a[1] = 0;
            a[2] = 0;
        }
        rv = panelagent_frame_add_conn_raw(f, a, sizeof a, 4096 + i, 1562500 + i);
    }
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_config_begin_map(f, "server");
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_config_str(f, "edition", "nimble-streamer");
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_config_i64(f, "rtmp_port", 1935);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_config_bool(f, "hls_enabled", 1);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_config_end(f);
    if (rv == PANELAGENT_OK)
        rv = panelagent_frame_encode(f, SENTINEL_SEQ, out, len);
    panelagent_frame_free(f);
    return rv;
}

/* 1 + the offset of |pat| in |buf|; 0 when it is not there. */
static size_t find(const uint8_t *buf, size_t len, const uint8_t *pat, size_t n)
{
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, pat, n) == 0)
            return i + 1;
    return 0;
}

void bench_ident_init(struct ident *a)
{
    mbedtls_x509_crt_init(&a->cert);
    mbedtls_pk_init(&a->key);
    mbedtls_ssl_config_init(&a->conf);
}

void bench_ident_cleanup(struct ident *a)
{
    mbedtls_ssl_config_free(&a->conf);
    mbedtls_x509_crt_free(&a->cert);
    mbedtls_pk_free(&a->key);
    panelagent_free(a->body);
}

/* Loads identity |a| (a->name set): its frame, its key pair, its TLS
 * configuration.  Message in |err| on failure. */
int bench_ident_load(struct ident *a, const char *dir, unsigned streams, unsigned conns,
                      uint64_t seq0, char *err, size_t errlen)
{
    static const uint8_t sentinel[9] = {0xcf, 0x7e, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0x12, 0x34};
    static const char *alpn[] = {"h2", NULL};
    char crt[4200], key[4200];
    int r;
    if (bench_make_frame(a->name, streams, conns, &a->body, &a->body_len) != 0 ||
        (a->seq_at = find(a->body, a->body_len, sentinel, sizeof sentinel)) == 0) {
        snprintf(err, errlen, "cannot build its frame");
        return -1;
    }
    snprintf(a->clen, sizeof a->clen, "%zu", a->body_len);
    a->next_seq = seq0;
    snprintf(crt, sizeof crt, "%s/%s.crt", dir, a->name);
    snprintf(key, sizeof key, "%s/%s.key", dir, a->name);
    if ((r = mbedtls_x509_crt_parse_file(&a->cert, crt)) != 0) {
        snprintf(err, errlen, "%.400s: -0x%04x", crt, (unsigned)-r);
        return -1;
    }
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    r = mbedtls_pk_parse_keyfile(&a->key, key, NULL, mbedtls_ctr_drbg_random, &bench_drbg);
#else
    r = mbedtls_pk_parse_keyfile(&a->key, key, NULL);
#endif
    if (r != 0) {
        snprintf(err, errlen, "%.400s: -0x%04x", key, (unsigned)-r);
        return -1;
    }
    if (mbedtls_ssl_config_defaults(&a->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0 ||
        mbedtls_ssl_conf_own_cert(&a->conf, &a->cert, &a->key) != 0 ||
        mbedtls_ssl_conf_alpn_protocols(&a->conf, alpn) != 0) {
        snprintf(err, errlen, "TLS configuration");
        return -1;
    }
    mbedtls_ssl_conf_authmode(&a->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&a->conf, &bench_ca, NULL);
    mbedtls_ssl_conf_rng(&a->conf, mbedtls_ctr_drbg_random, &bench_drbg);
    if (run.suites[0] != 0)
        mbedtls_ssl_conf_ciphersuites(&a->conf, run.suites);
    return 0;
}

/* ---- connections ------------------------------------------------------------------ */

static void set_events(struct conn *c)
{
    uint32_t ev = EPOLLIN;
    if (c->state == C_CONNECTING || (c->state == C_HANDSHAKE && c->want_write) ||
        (c->state == C_OPEN && c->out_len > 0))
        ev |= EPOLLOUT;
    if (c->fd < 0 || ev == c->events)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(run.epfd, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e);
    c->events = ev;
}

/* Closes what the connection has open (keeping its saved session); the
 * slots start again from their current seqs. */
void bench_conn_teardown(struct conn *c)
{
    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE)
        run.opening--;
    nghttp2_session_del(c->h2);
    c->h2 = NULL;
    if (c->ssl_live) {
        mbedtls_ssl_free(&c->ssl);
        c->ssl_live = 0;
    }
    if (c->fd >= 0)
        close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    c->events = 0;
    c->out_len = c->out_pending = 0;
    for (unsigned i = 0; i < run.in_flight; i++)
        c->slots[i].st = SLOT_IDLE;
}

static int64_t backoff_us(void)
{
    return STORM_BACKOFF_US + (int64_t)(random() % STORM_BACKOFF_US);
}

/* The connection (or an attempt at one) failed with |kind|: counted;
 * reopened later in a storm, with --reconnect-ms, or after a handshake
 * timeout while opening; otherwise it stays closed.  A refused handshake
 * while opening is a setup error (run.fatal). */
static void conn_fail(struct conn *c, enum err_kind kind, const char *what, int code)
{
    int64_t now = bench_mono_us();
    int was_open = c->state == C_OPEN;
    stats.err[kind]++;
    if (run.phase == PH_STORM)
        run.storm_err++;
    if (was_open && run.measuring)
        stats.conn_errors++;
    bench_conn_teardown(c);
    if (run.phase == PH_OPEN && kind == E_CONNECT && run.fatal[0] == '\0')
        snprintf(run.fatal, sizeof run.fatal, "agent %s: %s %s:%d: %s", c->id->name, what, run.host,
                 run.port, code < 0 ? strerror(-code) : "failed");
    else if (run.phase == PH_OPEN && kind != E_TIMEOUT && run.fatal[0] == '\0')
        snprintf(run.fatal, sizeof run.fatal, "agent %s: %s: -0x%04x%s", c->id->name, what,
                 (unsigned)-code, kind == E_HANDSHAKE ? " (registered? the right CA?)" : "");
    if (run.phase == PH_STORM || kind == E_TIMEOUT || run.reconnect_us > 0) {
        c->state = C_WAIT;
        c->reopen_at_us = now + (run.phase == PH_STORM || run.reconnect_us == 0 ? backoff_us()
                                                                           : run.reconnect_us);
    } else {
        c->state = C_DEAD;
    }
}

/* Starts a non-blocking connect and the TLS session (offering the saved
 * session with --storm resume, in the storm). */
static void conn_start(struct conn *c, int64_t now)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)run.port)};
    inet_pton(AF_INET, run.host, &sa.sin_addr);
    c->attempt_us = now;
    c->state = C_CONNECTING;
    c->want_write = 0;
    run.opening++;
    if (run.phase == PH_STORM)
        run.storm_attempts++;
    mbedtls_ssl_init(&c->ssl);
    c->ssl_live = 1;
    c->offered = 0;
    if (mbedtls_ssl_setup(&c->ssl, &c->id->conf) != 0 ||
        mbedtls_ssl_set_hostname(&c->ssl, run.authority) != 0) {
        conn_fail(c, E_CONNECT, "TLS setup", 0);
        return;
    }
    if (run.phase == PH_STORM && run.storm == 2 && c->have_sess &&
        mbedtls_ssl_set_session(&c->ssl, &c->sess) == 0)
        c->offered = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        conn_fail(c, E_CONNECT, "socket", -errno);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    mbedtls_ssl_set_bio(&c->ssl, &c->fd, bio_send, bio_recv, NULL);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        conn_fail(c, E_CONNECT, "connect", -errno);
        return;
    }
    set_events(c);
}

static void conn_pump(struct conn *c, int64_t now);

static int h2_start(struct conn *c)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return -1;
    nghttp2_session_callbacks_set_send_callback(cb, h2_send);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    int r = nghttp2_session_client_new(&c->h2, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (r != 0 || nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, NULL, 0) != 0)
        return -1;
    return 0;
}

/* One handshake step; on completion notes whether the offered session was
 * resumed (its master secret kept), saves a new one, starts HTTP/2. */
static void conn_handshake(struct conn *c, int64_t now)
{
    int r = mbedtls_ssl_handshake(&c->ssl);
    c->want_write = r == MBEDTLS_ERR_SSL_WANT_WRITE;
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
        return;
    if (r != 0) {
        conn_fail(c, E_HANDSHAKE, "TLS handshake", r);
        return;
    }
    int resumed = c->offered && memcmp(c->ssl.PRIV(session)->PRIV(master), c->sess.PRIV(master),
                                       sizeof c->sess.PRIV(master)) == 0;
    if (!resumed) {
        if (c->have_sess)
            mbedtls_ssl_session_free(&c->sess);
        mbedtls_ssl_session_init(&c->sess);
        c->have_sess = mbedtls_ssl_get_session(&c->ssl, &c->sess) == 0;
    }
    stats.handshakes++;
    stats.resumed += resumed;
    if (run.phase == PH_STORM) {
        run.storm_handshakes++;
        run.storm_resumed += resumed;
    }
    if (run.suite[0] == '\0')
        snprintf(run.suite, sizeof run.suite, "%s", mbedtls_ssl_get_ciphersuite(&c->ssl));
    run.opening--;
    c->state = C_OPEN;
    if (h2_start(c) != 0) {
        conn_fail(c, E_CLOSED, "nghttp2 session", 0);
        return;
    }
    if (run.rate > 0) /* a phase of its own in the period */
        c->next_rate_us = now + (int64_t)((double)(random() % 1000000) / run.rate);
    conn_pump(c, now);
}

/* Reads what TLS has, feeds it to nghttp2. */
static void conn_read(struct conn *c)
{
    uint8_t buf[32768];
    for (;;) {
        int r = mbedtls_ssl_read(&c->ssl, buf, sizeof buf);
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
            return;
        if (r <= 0 || nghttp2_session_mem_recv(c->h2, buf, (size_t)r) < 0) {
            conn_fail(c, E_CLOSED, "connection lost", r);
            return;
        }
    }
}

/* Sends the frames whose slot is free (or whose wait is over; with --rate,
 * one per period), then what nghttp2 has to send. */
static void conn_pump(struct conn *c, int64_t now)
{
    for (unsigned i = 0; i < run.in_flight; i++) {
        struct slot *sl = &c->slots[i];
        if (!(sl->st == SLOT_IDLE || (sl->st == SLOT_WAIT && now >= sl->retry_at_us)))
            continue;
        if (run.rate > 0 && sl->st == SLOT_IDLE) {
            if (now < c->next_rate_us)
                continue;
            int64_t period = (int64_t)(1e6 / run.rate);
            c->next_rate_us += period;
            if (c->next_rate_us < now - 1000000) /* far behind: no burst to catch up */
                c->next_rate_us = now + period;
        }
        if (send_frame(c, sl, now) != 0) {
            conn_fail(c, E_CLOSED, "nghttp2 submit", 0);
            return;
        }
    }
    if (nghttp2_session_send(c->h2) != 0 || flush_out(c) != 0) {
        conn_fail(c, E_CLOSED, "send", 0);
        return;
    }
    if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
        conn_fail(c, E_CLOSED, "GOAWAY", 0); /* and nothing left */
        return;
    }
    set_events(c);
}

void bench_conn_event(struct conn *c, uint32_t ev, int64_t now)
{
    if (c->state == C_CONNECTING) {
        int e = 0;
        socklen_t l = sizeof e;
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &l) != 0 || e != 0) {
            conn_fail(c, E_CONNECT, "connect", -e);
            return;
        }
        c->state = C_HANDSHAKE;
    }
    if (c->state == C_HANDSHAKE) {
        conn_handshake(c, now);
        if (c->state == C_HANDSHAKE)
            set_events(c);
        return;
    }
    if (c->state != C_OPEN)
        return;
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_read(c);
    if (c->state == C_OPEN)
        conn_pump(c, now);
}

/* Every few milliseconds: connections to (re)open, handshakes timed out,
 * retries and --rate periods due. */
void bench_scan(struct conn *cs, int64_t now)
{
    for (unsigned i = 0; i < run.clients; i++) {
        struct conn *c = &cs[i];
        switch (c->state) {
        case C_WAIT:
            if (now >= c->reopen_at_us &&
                (run.phase == PH_OPEN    ? run.opening < run.open_parallel
                 : run.phase == PH_STORM ? run.storm_parallel == 0 || run.opening < run.storm_parallel
                                       : 1))
                conn_start(c, now);
            break;
        case C_CONNECTING:
        case C_HANDSHAKE:
            if (now - c->attempt_us > run.hs_timeout_us)
                conn_fail(c, E_TIMEOUT, "handshake timeout", 0);
            break;
        case C_OPEN: {
            int due = run.rate > 0 && now >= c->next_rate_us;
            for (unsigned k = 0; !due && k < run.in_flight; k++)
                due = c->slots[k].st == SLOT_WAIT && now >= c->slots[k].retry_at_us;
            if (due)
                conn_pump(c, now);
            break;
        }
        case C_DEAD: break;
        }
    }
}

unsigned bench_count_state(const struct conn *cs, enum conn_state s)
{
    unsigned n = 0;
    for (unsigned i = 0; i < run.clients; i++)
        n += cs[i].state == s;
    return n;
}
