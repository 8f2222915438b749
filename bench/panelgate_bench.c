/*
 * panelgate_bench.c - panelgate-bench, the gateway's load generator: agents
 * on mutual-TLS HTTP/2 connections posting frames to /v1/stats.
 *
 *  - identities: --identities K registered agents (certificate
 *    <agent-dir>/<prefix>NNN.crt and .key, NNN = 001, 002, ...), spread
 *    over --clients N connections (connection i is identity i mod K + 1;
 *    K defaults to N: one connection per agent);
 *  - --in-flight M frames unanswered per connection at most, each on its
 *    own stream;
 *  - a frame profile (--profile small | typical | large | wide: about
 *    0.5 KiB, 2 KiB, 10 KiB, and a 40-stream, 200-viewer frame), or
 *    --streams / --conns by hand;
 *  - a fixed rate (--rate R frames/s per connection) or, without it, as
 *    fast as the answers allow (every answer sends the next frame);
 *  - a fresh seq per frame: each identity's counter starts at the Unix time
 *    in microseconds and counts up, so it grows across runs as the protocol
 *    wants;
 *  - a reconnect storm after the window (--storm full | resume): every
 *    connection is dropped at once and reopened at once, offering the TLS
 *    session it had (resume) or not (full), and the run goes on until each
 *    has a frame acknowledged again (or --storm-timeout).
 *
 * It has to cost far less per frame than the gateway, so it is one thread
 * with epoll over plain mbedTLS and nghttp2 (the libraries the gateway and
 * the SDK use), and sends a frame encoded once per identity by
 * libpanelagent's builders, only patching each copy's seq in place.
 * (Through libpanelagent itself, decoding and encoding every frame again
 * cost the generator about as much CPU per frame as the gateway spends.)
 * Connects and handshakes are non-blocking: at most --open-parallel
 * handshakes are in progress while the connections are first opened; a
 * storm opens them all at once, as a fleet does (or --storm-parallel at a
 * time).  A handshake not done in --handshake-timeout seconds is abandoned
 * and tried again, as an agent would.  The client's side of a full mTLS
 * handshake costs this one thread milliseconds of CPU (ECDHE, the
 * certificate's signature, the server's chain), so a storm of many full
 * handshakes can be bounded by the generator rather than the server:
 * storm_loadgen_cpu_s says how much of the storm it spent.
 *
 * Answers: --ack-status (202; nghttpd, which serves a file, answers 200) is
 * an acknowledgement; a 503 or 429 is counted and the same frame is sent
 * again 200 ms later (sooner than retry-after: a benchmark keeps the
 * pressure on); any other answer is counted and the slot moves on to the
 * next frame.  A connection lost while measuring is counted (conn_errors)
 * and reopened only with --reconnect-ms.
 *
 * After --warmup seconds (handshakes, first frames) a window of --duration
 * seconds is measured: acknowledgements in it and their latency (request
 * sent to answer complete: p50, p99, p999), the other answers, errors by
 * kind (connect, handshake, handshake timeout, connection lost), the CPU
 * used in it by this process and, with --gw-pid, by the server
 * (/proc/PID/stat, every thread) and its memory (/proc/PID/status: VmRSS
 * before the first connection and at the end of the window, VmHWM), and
 * with --watch-pid (repeatable) by other processes together (NATS nodes).
 * --lat-file writes every latency of the window, in microseconds, one a
 * line (for plots).  Output: one line of key=value pairs starting with
 * "panelgate-bench", which bench/run_engines.sh and bench/run_peers.sh
 * parse.  Exit 0 when the run completed, 1 on a setup error (an option, a
 * certificate, a refused handshake while opening).
 *
 * Built with the gateway; run by hand, by bench/run_engines.sh and
 * bench/run_peers.sh, and for a few seconds by
 * tests/integration/test_bench_loadgen.sh.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>
#include <nghttp2/nghttp2.h>

#include <panelagent.h>

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define PRIV(m) private_##m
#else
#define PRIV(m) m
#endif

#define MAX_WATCH 8
#define MAX_CLIENTS 50000
#define OUT_CAP (64 * 1024)
#define RETRY_US 200000
#define STORM_BACKOFF_US 100000 /* plus up to as much again, at random */
#define SENTINEL_SEQ 0x7eadbeefcafe1234ull

enum slot_state { SLOT_IDLE, SLOT_SENT, SLOT_WAIT };
enum conn_state { C_WAIT, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_DEAD };
enum phase { PH_OPEN, PH_RUN, PH_STORM };
enum err_kind { E_CONNECT, E_HANDSHAKE, E_TIMEOUT, E_CLOSED, E_KINDS };
static const char *const err_name[E_KINDS] = {"err_connect", "err_handshake", "err_timeout",
                                              "err_closed"};

struct conn;

/* One frame in flight (or waiting to be sent again). */
struct slot {
    struct conn *c;
    enum slot_state st;
    uint64_t seq;
    int64_t sent_us, retry_at_us;
    size_t off; /* body bytes handed to nghttp2 */
    int status;
};

/* One registered agent: its key pair, its TLS configuration, its frame
 * and its seq counter, shared by its connections. */
struct ident {
    char name[64];
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
    uint8_t *body; /* the frame; its seq at seq_at (8 bytes, big endian) */
    size_t body_len, seq_at;
    char clen[24];
    uint64_t next_seq;
};

/* One connection: its TLS session, its HTTP/2 session, its slots. */
struct conn {
    struct ident *id;
    enum conn_state state;
    int fd;
    uint32_t events; /* registered with epoll */
    int want_write;  /* the handshake waits to write */
    int ssl_live;
    mbedtls_ssl_context ssl;
    mbedtls_ssl_session sess; /* the last full handshake's, for --storm resume */
    int have_sess, offered;
    nghttp2_session *h2;
    struct slot *slots;
    int64_t attempt_us, reopen_at_us, next_rate_us;
    int storm_wait; /* reopened by the storm, no frame acknowledged since */
    uint8_t *out;   /* HTTP/2 bytes not yet taken by mbedtls_ssl_write */
    size_t out_len, out_pending; /* pending: the length of a write to repeat */
};

struct stats {
    uint64_t ok, r503, r429, r_other, conn_errors;
    uint64_t err[E_KINDS];
    uint64_t handshakes, resumed;
    uint32_t *lat_us;
    size_t n_lat, cap_lat;
};

/* The run's settings and state: one generator per process. */
static struct {
    const char *host, *authority;
    int port;
    unsigned clients, in_flight, open_parallel, storm_parallel, ack_status;
    double rate;
    int64_t hs_timeout_us, reconnect_us;
    int storm; /* 0 none, 1 full, 2 resume */
    enum phase phase;
    int measuring;
    unsigned opening; /* connects + handshakes in progress */
    unsigned storm_left;
    int64_t storm_t0, storm_last;
    uint64_t storm_attempts, storm_handshakes, storm_resumed, storm_err;
    char suite[80];
    int suites[2]; /* --ciphersuite, 0-terminated; {0}: the library's list */
    int epfd;
    char fatal[600];
} g = {.host = "127.0.0.1", .authority = "localhost", .ack_status = 202};

static struct stats st;
static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;
static mbedtls_x509_crt ca;

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double cpu_self_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime + stime of process |pid| (all its threads), seconds; -1 when it
 * cannot be read. */
static double cpu_pid_s(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL)
        return -1;
    unsigned long long ut = 0, stime = 0;
    /* after ")": state is field 3; utime and stime are fields 14 and 15 */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stime) != 2)
        return -1;
    return (double)(ut + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* A "Key:   N kB" line of /proc/PID/status, in kB; -1 when unreadable. */
static long status_kb(long pid, const char *key)
{
    char path[64], line[256];
    long v = -1;
    size_t n = strlen(key);
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
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
    size_t room = OUT_CAP - c->out_len;
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
        NV(":authority", g.authority),
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
    if (st.n_lat == st.cap_lat) {
        size_t cap = st.cap_lat ? 2 * st.cap_lat : 65536;
        uint32_t *p = realloc(st.lat_us, cap * sizeof *p);
        if (p == NULL)
            return;
        st.lat_us = p;
        st.cap_lat = cap;
    }
    st.lat_us[st.n_lat++] = us;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    struct conn *c = ud;
    (void)code;
    struct slot *sl = nghttp2_session_get_stream_user_data(s, id);
    if (sl == NULL)
        return 0;
    int64_t now = mono_us();
    if (sl->status == (int)g.ack_status) {
        if (g.measuring) {
            st.ok++;
            record_latency((uint32_t)(now - sl->sent_us));
        }
        if (c->storm_wait) {
            c->storm_wait = 0;
            g.storm_left--;
            g.storm_last = now;
        }
        sl->seq = c->id->next_seq++;
        sl->st = SLOT_IDLE;
    } else if (sl->status == 503 || sl->status == 429) {
        if (g.measuring && sl->status == 503)
            st.r503++;
        else if (g.measuring)
            st.r429++;
        sl->st = SLOT_WAIT; /* the same seq again, a little later */
        sl->retry_at_us = now + RETRY_US;
    } else {
        if (g.measuring)
            st.r_other++;
        sl->seq = c->id->next_seq++;
        sl->st = SLOT_WAIT;
        sl->retry_at_us = now + RETRY_US;
    }
    return 0;
}

/* ---- identities ------------------------------------------------------------------- */

/* A frame of |streams| streams over 2 vhosts x 2 apps and |conns| viewer
 * connections over 20 networks, a small config map; seq SENTINEL_SEQ. */
static int make_frame(const char *name, unsigned streams, unsigned conns, uint8_t **out,
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

static void ident_init(struct ident *a)
{
    mbedtls_x509_crt_init(&a->cert);
    mbedtls_pk_init(&a->key);
    mbedtls_ssl_config_init(&a->conf);
}

static void ident_cleanup(struct ident *a)
{
    mbedtls_ssl_config_free(&a->conf);
    mbedtls_x509_crt_free(&a->cert);
    mbedtls_pk_free(&a->key);
    panelagent_free(a->body);
}

/* Loads identity |a| (a->name set): its frame, its key pair, its TLS
 * configuration.  Message in |err| on failure. */
static int ident_load(struct ident *a, const char *dir, unsigned streams, unsigned conns,
                      uint64_t seq0, char *err, size_t errlen)
{
    static const uint8_t sentinel[9] = {0xcf, 0x7e, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0x12, 0x34};
    static const char *alpn[] = {"h2", NULL};
    char crt[4200], key[4200];
    int r;
    if (make_frame(a->name, streams, conns, &a->body, &a->body_len) != 0 ||
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
    r = mbedtls_pk_parse_keyfile(&a->key, key, NULL, mbedtls_ctr_drbg_random, &drbg);
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
    mbedtls_ssl_conf_ca_chain(&a->conf, &ca, NULL);
    mbedtls_ssl_conf_rng(&a->conf, mbedtls_ctr_drbg_random, &drbg);
    if (g.suites[0] != 0)
        mbedtls_ssl_conf_ciphersuites(&a->conf, g.suites);
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
    epoll_ctl(g.epfd, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e);
    c->events = ev;
}

/* Closes what the connection has open (keeping its saved session); the
 * slots start again from their current seqs. */
static void conn_teardown(struct conn *c)
{
    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE)
        g.opening--;
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
    for (unsigned i = 0; i < g.in_flight; i++)
        c->slots[i].st = SLOT_IDLE;
}

static int64_t backoff_us(void)
{
    return STORM_BACKOFF_US + (int64_t)(random() % STORM_BACKOFF_US);
}

/* The connection (or an attempt at one) failed with |kind|: counted;
 * reopened later in a storm, with --reconnect-ms, or after a handshake
 * timeout while opening; otherwise it stays closed.  A refused handshake
 * while opening is a setup error (g.fatal). */
static void conn_fail(struct conn *c, enum err_kind kind, const char *what, int code)
{
    int64_t now = mono_us();
    int was_open = c->state == C_OPEN;
    st.err[kind]++;
    if (g.phase == PH_STORM)
        g.storm_err++;
    if (was_open && g.measuring)
        st.conn_errors++;
    conn_teardown(c);
    if (g.phase == PH_OPEN && kind == E_CONNECT && g.fatal[0] == '\0')
        snprintf(g.fatal, sizeof g.fatal, "agent %s: %s %s:%d: %s", c->id->name, what, g.host,
                 g.port, code < 0 ? strerror(-code) : "failed");
    else if (g.phase == PH_OPEN && kind != E_TIMEOUT && g.fatal[0] == '\0')
        snprintf(g.fatal, sizeof g.fatal, "agent %s: %s: -0x%04x%s", c->id->name, what,
                 (unsigned)-code, kind == E_HANDSHAKE ? " (registered? the right CA?)" : "");
    if (g.phase == PH_STORM || kind == E_TIMEOUT || g.reconnect_us > 0) {
        c->state = C_WAIT;
        c->reopen_at_us = now + (g.phase == PH_STORM || g.reconnect_us == 0 ? backoff_us()
                                                                           : g.reconnect_us);
    } else {
        c->state = C_DEAD;
    }
}

/* Starts a non-blocking connect and the TLS session (offering the saved
 * session with --storm resume, in the storm). */
static void conn_start(struct conn *c, int64_t now)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.port)};
    inet_pton(AF_INET, g.host, &sa.sin_addr);
    c->attempt_us = now;
    c->state = C_CONNECTING;
    c->want_write = 0;
    g.opening++;
    if (g.phase == PH_STORM)
        g.storm_attempts++;
    mbedtls_ssl_init(&c->ssl);
    c->ssl_live = 1;
    c->offered = 0;
    if (mbedtls_ssl_setup(&c->ssl, &c->id->conf) != 0 ||
        mbedtls_ssl_set_hostname(&c->ssl, g.authority) != 0) {
        conn_fail(c, E_CONNECT, "TLS setup", 0);
        return;
    }
    if (g.phase == PH_STORM && g.storm == 2 && c->have_sess &&
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
    st.handshakes++;
    st.resumed += resumed;
    if (g.phase == PH_STORM) {
        g.storm_handshakes++;
        g.storm_resumed += resumed;
    }
    if (g.suite[0] == '\0')
        snprintf(g.suite, sizeof g.suite, "%s", mbedtls_ssl_get_ciphersuite(&c->ssl));
    g.opening--;
    c->state = C_OPEN;
    if (h2_start(c) != 0) {
        conn_fail(c, E_CLOSED, "nghttp2 session", 0);
        return;
    }
    if (g.rate > 0) /* a phase of its own in the period */
        c->next_rate_us = now + (int64_t)((double)(random() % 1000000) / g.rate);
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
    for (unsigned i = 0; i < g.in_flight; i++) {
        struct slot *sl = &c->slots[i];
        if (!(sl->st == SLOT_IDLE || (sl->st == SLOT_WAIT && now >= sl->retry_at_us)))
            continue;
        if (g.rate > 0 && sl->st == SLOT_IDLE) {
            if (now < c->next_rate_us)
                continue;
            int64_t period = (int64_t)(1e6 / g.rate);
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

static void conn_event(struct conn *c, uint32_t ev, int64_t now)
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
static void scan(struct conn *cs, int64_t now)
{
    for (unsigned i = 0; i < g.clients; i++) {
        struct conn *c = &cs[i];
        switch (c->state) {
        case C_WAIT:
            if (now >= c->reopen_at_us &&
                (g.phase == PH_OPEN    ? g.opening < g.open_parallel
                 : g.phase == PH_STORM ? g.storm_parallel == 0 || g.opening < g.storm_parallel
                                       : 1))
                conn_start(c, now);
            break;
        case C_CONNECTING:
        case C_HANDSHAKE:
            if (now - c->attempt_us > g.hs_timeout_us)
                conn_fail(c, E_TIMEOUT, "handshake timeout", 0);
            break;
        case C_OPEN: {
            int due = g.rate > 0 && now >= c->next_rate_us;
            for (unsigned k = 0; !due && k < g.in_flight; k++)
                due = c->slots[k].st == SLOT_WAIT && now >= c->slots[k].retry_at_us;
            if (due)
                conn_pump(c, now);
            break;
        }
        case C_DEAD: break;
        }
    }
}

static unsigned count_state(const struct conn *cs, enum conn_state s)
{
    unsigned n = 0;
    for (unsigned i = 0; i < g.clients; i++)
        n += cs[i].state == s;
    return n;
}

/* ---- main ------------------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The |q|-quantile (0..1) of the sorted latencies, in ms. */
static double quantile_ms(double q)
{
    if (st.n_lat == 0)
        return 0;
    size_t i = (size_t)(q * (double)st.n_lat + 0.999999);
    if (i < 1)
        i = 1;
    if (i > st.n_lat)
        i = st.n_lat;
    return st.lat_us[i - 1] / 1e3;
}

static const struct profile {
    const char *name;
    unsigned streams, conns;
} profiles[] = {
    {"small", 1, 4},      /* about 0.5 KiB */
    {"typical", 6, 50},   /* about 2 KiB: a busy edge server */
    {"large", 30, 320},   /* about 10 KiB */
    {"wide", 40, 200},    /* 40 streams, 200 viewers: ~60 panel rows */
};

static void usage(FILE *to)
{
    fprintf(to,
            "usage: panelgate-bench --port PORT --ca FILE --agent-dir DIR [options]\n"
            "  --host ADDR          the server's IPv4 address (127.0.0.1)\n"
            "  --name NAME          its certificate's name: SNI, :authority (localhost)\n"
            "  --agent-prefix P     certificates DIR/PNNN.crt + .key, NNN from 001 (bench-)\n"
            "  --clients N          connections, 1..%d (16)\n"
            "  --identities K       agents the connections are spread over, 1..N (N)\n"
            "  --in-flight M        unanswered frames (streams) per connection, 1..100 (8)\n"
            "  --profile P          small (~0.5 KiB), typical (~2 KiB), large (~10 KiB),\n"
            "                       wide (40 streams, 200 viewers) (typical)\n"
            "  --streams N          streams per frame (the profile's)\n"
            "  --conns N            viewer connections per frame (the profile's)\n"
            "  --rate R             frames/s per connection; 0: as fast as acks allow (0)\n"
            "  --warmup S           seconds before the window (2)\n"
            "  --duration S         seconds measured (10)\n"
            "  --storm MODE         after the window, drop every connection and reopen\n"
            "                       all at once: full (no session offered) or resume\n"
            "                       (the saved TLS session offered); none (none)\n"
            "  --storm-timeout S    give the storm up after S seconds (60)\n"
            "  --storm-parallel N   handshakes in progress in the storm; 0: all at once (0)\n"
            "  --open-parallel N    handshakes in progress while first opening (32)\n"
            "  --handshake-timeout S  abandon a connect + handshake after S s (10)\n"
            "  --reconnect-ms MS    reopen a lost connection after MS ms; 0: never (0)\n"
            "  --ack-status CODE    the answer that acknowledges a frame (202)\n"
            "  --gw-pid PID         the server: its CPU over the window, its memory\n"
            "  --watch-pid PID      another process whose CPU is added to watch_cpu\n"
            "                       (repeatable, up to %d)\n"
            "  --lat-file FILE      every latency of the window (us), one a line\n"
            "  --ciphersuite NAME   offer only this suite (mbedTLS name, e.g.\n"
            "                       TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256)\n"
            "  --dry-run            build the frame, print its size, connect nowhere\n",
            MAX_CLIENTS, MAX_WATCH);
}

int main(int argc, char **argv)
{
    const char *ca_file = NULL, *dir = NULL, *prefix = "bench-", *lat_file = NULL;
    const char *profile = "typical";
    long port = 0, gw_pid = 0, watch[MAX_WATCH];
    unsigned n_watch = 0, identities = 0, streams = ~0u, conns = ~0u;
    double warmup = 2, duration = 10, storm_timeout = 60, hs_timeout = 10, reconnect_ms = 0;
    int dry_run = 0;
    g.clients = 16;
    g.in_flight = 8;
    g.open_parallel = 32;
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'h'},       {"port", required_argument, NULL, 'p'},
        {"name", required_argument, NULL, 'n'},       {"ca", required_argument, NULL, 'a'},
        {"agent-dir", required_argument, NULL, 'd'},  {"agent-prefix", required_argument, NULL, 'x'},
        {"clients", required_argument, NULL, 'c'},    {"in-flight", required_argument, NULL, 'i'},
        {"warmup", required_argument, NULL, 'w'},     {"duration", required_argument, NULL, 't'},
        {"streams", required_argument, NULL, 's'},    {"conns", required_argument, NULL, 'v'},
        {"gw-pid", required_argument, NULL, 'g'},     {"watch-pid", required_argument, NULL, 'W'},
        {"identities", required_argument, NULL, 'I'}, {"profile", required_argument, NULL, 'P'},
        {"rate", required_argument, NULL, 'r'},       {"storm", required_argument, NULL, 'S'},
        {"storm-timeout", required_argument, NULL, 'T'},
        {"storm-parallel", required_argument, NULL, 'Q'},
        {"open-parallel", required_argument, NULL, 'o'},
        {"handshake-timeout", required_argument, NULL, 'k'},
        {"reconnect-ms", required_argument, NULL, 'R'},
        {"ack-status", required_argument, NULL, 'A'}, {"lat-file", required_argument, NULL, 'L'},
        {"dry-run", no_argument, NULL, 'D'},          {"ciphersuite", required_argument, NULL, 'C'},          {"help", no_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    int opt, bad = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'h': g.host = optarg; break;
        case 'p': port = strtol(optarg, NULL, 10); break;
        case 'n': g.authority = optarg; break;
        case 'a': ca_file = optarg; break;
        case 'd': dir = optarg; break;
        case 'x': prefix = optarg; break;
        case 'c': g.clients = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'i': g.in_flight = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'w': warmup = strtod(optarg, NULL); break;
        case 't': duration = strtod(optarg, NULL); break;
        case 's': streams = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'v': conns = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'g': gw_pid = strtol(optarg, NULL, 10); break;
        case 'I': identities = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'P': profile = optarg; break;
        case 'r': g.rate = strtod(optarg, NULL); break;
        case 'S':
            if (strcmp(optarg, "none") == 0)
                g.storm = 0;
            else if (strcmp(optarg, "full") == 0)
                g.storm = 1;
            else if (strcmp(optarg, "resume") == 0)
                g.storm = 2;
            else
                bad = 1;
            break;
        case 'T': storm_timeout = strtod(optarg, NULL); break;
        case 'Q': g.storm_parallel = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'o': g.open_parallel = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'k': hs_timeout = strtod(optarg, NULL); break;
        case 'R': reconnect_ms = strtod(optarg, NULL); break;
        case 'A': g.ack_status = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'L': lat_file = optarg; break;
        case 'D': dry_run = 1; break;
        case 'C':
            g.suites[0] = mbedtls_ssl_get_ciphersuite_id(optarg);
            bad |= g.suites[0] == 0;
            break;
        case 'W':
            if (n_watch == MAX_WATCH) {
                fprintf(stderr, "panelgate-bench: at most %d --watch-pid\n", MAX_WATCH);
                return 1;
            }
            watch[n_watch++] = strtol(optarg, NULL, 10);
            break;
        case 'H': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    const struct profile *pf = NULL;
    for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; i++)
        if (strcmp(profile, profiles[i].name) == 0)
            pf = &profiles[i];
    if (identities == 0)
        identities = g.clients;
    if (pf != NULL && streams == ~0u)
        streams = pf->streams;
    if (pf != NULL && conns == ~0u)
        conns = pf->conns;
    struct sockaddr_in probe;
    if (bad || pf == NULL || (!dry_run && (port < 1 || port > 65535 || ca_file == NULL ||
                                           dir == NULL)) ||
        g.clients < 1 || g.clients > MAX_CLIENTS || identities > g.clients ||
        g.in_flight < 1 || g.in_flight > 100 || warmup < 0 || duration <= 0 || g.rate < 0 ||
        storm_timeout <= 0 || g.open_parallel < 1 || hs_timeout <= 0 || reconnect_ms < 0 ||
        g.ack_status < 100 || g.ack_status > 599 || streams > 10000 || conns > 100000 ||
        inet_pton(AF_INET, g.host, &probe.sin_addr) != 1 || optind != argc) {
        usage(stderr);
        return 1;
    }
    g.port = (int)port;
    g.hs_timeout_us = (int64_t)(hs_timeout * 1e6);
    g.reconnect_us = (int64_t)(reconnect_ms * 1e3);

    int rv = 1;
    struct conn *cs = calloc(g.clients, sizeof *cs);
    struct ident *ids = calloc(identities, sizeof *ids);
    struct epoll_event *evs = calloc(1024, sizeof *evs);
    unsigned loaded = 0;
    g.epfd = -1;
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_x509_crt_init(&ca);
    if (cs == NULL || ids == NULL || evs == NULL)
        goto out;
    if (dry_run) {
        uint8_t *body = NULL;
        size_t len = 0;
        if (make_frame("bench-001", streams, conns, &body, &len) != 0) {
            fprintf(stderr, "panelgate-bench: cannot build the frame\n");
            goto out;
        }
        panelagent_free(body);
        printf("panelgate-bench profile=%s streams=%u conns=%u frame_bytes=%zu\n", pf->name,
               streams, conns, len);
        rv = 0;
        goto out;
    }
    /* one descriptor per connection, and some */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < g.clients + 64u) {
        rl.rlim_cur = rl.rlim_max < g.clients + 64u ? rl.rlim_max : g.clients + 64u;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0) != 0 ||
        mbedtls_x509_crt_parse_file(&ca, ca_file) != 0) {
        fprintf(stderr, "panelgate-bench: --ca %s: cannot load it\n", ca_file);
        goto out;
    }
    g.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g.epfd < 0)
        goto out;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    srandom((unsigned)wall.tv_nsec);
    uint64_t seq0 = (uint64_t)wall.tv_sec * 1000000 + (uint64_t)wall.tv_nsec / 1000;
    for (; loaded < identities; loaded++) {
        struct ident *a = &ids[loaded];
        char err[512];
        ident_init(a);
        snprintf(a->name, sizeof a->name, "%.50s%03u", prefix, loaded + 1);
        if (ident_load(a, dir, streams, conns, seq0, err, sizeof err) != 0) {
            fprintf(stderr, "panelgate-bench: agent %s: %s\n", a->name, err);
            loaded++;
            goto out;
        }
    }
    for (unsigned i = 0; i < g.clients; i++) {
        struct conn *c = &cs[i];
        c->id = &ids[i % identities];
        c->fd = -1;
        c->state = C_WAIT;
        c->slots = calloc(g.in_flight, sizeof *c->slots);
        c->out = malloc(OUT_CAP);
        if (c->slots == NULL || c->out == NULL) {
            fprintf(stderr, "panelgate-bench: out of memory\n");
            goto out;
        }
        for (unsigned k = 0; k < g.in_flight; k++) {
            c->slots[k].c = c;
            c->slots[k].seq = c->id->next_seq++;
        }
    }

    long rss0 = gw_pid ? status_kb(gw_pid, "VmRSS") : -1, rss1 = -1, hwm = -1;
    int64_t scan_us = g.clients / 1000 < 1 ? 1000 : g.clients / 1000 > 10 ? 10000
                                                                           : g.clients;
    int64_t t_open = mono_us(), last_scan = 0, win0 = 0, win1 = 0, t0 = 0, t1 = 0, storm_end = 0;
    double self0 = 0, self1 = 0, gw0 = 0, gw1 = 0, w0 = 0, w1 = 0, gws0 = 0, gws1 = 0;
    double selfs0 = 0, selfs1 = 0;
    double open_s = 0;
    int done = 0;
    g.phase = PH_OPEN;
    while (!done) {
        int64_t now = mono_us();
        int scanned = now - last_scan >= scan_us;
        if (scanned) {
            scan(cs, now);
            last_scan = now;
        }
        if (g.fatal[0] != '\0') {
            fprintf(stderr, "panelgate-bench: %s\n", g.fatal);
            goto out;
        }
        if (g.phase == PH_OPEN && g.opening == 0 && count_state(cs, C_OPEN) == g.clients) {
            g.phase = PH_RUN;
            open_s = (double)(now - t_open) / 1e6;
            win0 = now + (int64_t)(warmup * 1e6);
            win1 = win0 + (int64_t)(duration * 1e6);
        } else if (g.phase == PH_OPEN && scanned && count_state(cs, C_DEAD) > 0) {
            fprintf(stderr, "panelgate-bench: a connection was lost while opening\n");
            goto out;
        }
        if (g.phase == PH_RUN && !g.measuring && t0 == 0 && now >= win0) {
            self0 = cpu_self_s();
            gw0 = gw_pid ? cpu_pid_s(gw_pid) : 0;
            for (unsigned i = 0; i < n_watch; i++)
                w0 += cpu_pid_s(watch[i]);
            t0 = mono_us();
            g.measuring = 1;
        } else if (g.phase == PH_RUN && g.measuring && now >= win1) {
            g.measuring = 0;
            t1 = mono_us();
            self1 = cpu_self_s();
            gw1 = gw_pid ? cpu_pid_s(gw_pid) : 0;
            rss1 = gw_pid ? status_kb(gw_pid, "VmRSS") : -1;
            for (unsigned i = 0; i < n_watch; i++)
                w1 += cpu_pid_s(watch[i]);
            if (!g.storm)
                break; /* what is still in flight does not count */
            /* the storm: every connection dropped, all reopened at once */
            g.phase = PH_STORM;
            gws0 = gw_pid ? cpu_pid_s(gw_pid) : 0;
            selfs0 = cpu_self_s();
            g.storm_t0 = mono_us();
            storm_end = g.storm_t0 + (int64_t)(storm_timeout * 1e6);
            for (unsigned i = 0; i < g.clients; i++) {
                struct conn *c = &cs[i];
                if (c->state == C_DEAD)
                    continue;
                conn_teardown(c);
                c->state = C_WAIT;
                c->reopen_at_us = g.storm_t0;
                c->storm_wait = 1;
                g.storm_left++;
            }
            scan(cs, g.storm_t0);
            last_scan = g.storm_t0;
        }
        if (g.phase == PH_STORM && (g.storm_left == 0 || now >= storm_end)) {
            gws1 = gw_pid ? cpu_pid_s(gw_pid) : 0;
            selfs1 = cpu_self_s();
            break;
        }
        if (g.phase != PH_OPEN && scanned && count_state(cs, C_DEAD) == g.clients) {
            fprintf(stderr, "panelgate-bench: the server closed every connection\n");
            break;
        }
        int n = epoll_wait(g.epfd, evs, 1024, 1);
        if (n < 0 && errno != EINTR)
            break;
        now = mono_us();
        for (int i = 0; i < n; i++)
            conn_event(evs[i].data.ptr, evs[i].events, now);
    }
    if (t1 == 0) {
        fprintf(stderr, "panelgate-bench: stopped before the end of the window\n");
        goto out;
    }
    hwm = gw_pid ? status_kb(gw_pid, "VmHWM") : -1;

    double secs = (double)(t1 - t0) / 1e6;
    qsort(st.lat_us, st.n_lat, sizeof *st.lat_us, cmp_u32);
    if (lat_file != NULL) {
        FILE *f = fopen(lat_file, "w");
        if (f == NULL) {
            fprintf(stderr, "panelgate-bench: --lat-file %s: %s\n", lat_file, strerror(errno));
            goto out;
        }
        for (size_t i = 0; i < st.n_lat; i++)
            fprintf(f, "%" PRIu32 "\n", st.lat_us[i]);
        fclose(f);
    }
    printf("panelgate-bench clients=%u identities=%u in_flight=%u profile=%s streams=%u conns=%u"
           " rate=%g frame_bytes=%zu suite=%s open_s=%.3f seconds=%.3f acks=%" PRIu64
           " acks_per_s=%.0f r503=%" PRIu64 " r429=%" PRIu64 " r_other=%" PRIu64
           " conn_errors=%" PRIu64,
           g.clients, identities, g.in_flight, pf->name, streams, conns, g.rate, ids[0].body_len,
           g.suite[0] ? g.suite : "none", open_s, secs, st.ok, (double)st.ok / secs, st.r503,
           st.r429, st.r_other, st.conn_errors);
    for (int k = 0; k < E_KINDS; k++)
        printf(" %s=%" PRIu64, err_name[k], st.err[k]);
    printf(" handshakes=%" PRIu64 " resumed=%" PRIu64
           " lat_ms_p50=%.3f lat_ms_p99=%.3f lat_ms_p999=%.3f loadgen_cpu=%.3f",
           st.handshakes, st.resumed, quantile_ms(0.50), quantile_ms(0.99), quantile_ms(0.999),
           (self1 - self0) / secs);
    if (gw_pid) {
        double gw_cpu = (gw1 - gw0) / secs;
        if (gw0 < 0 || gw1 < 0 || gw_cpu <= 0)
            printf(" gw_cpu=na");
        else
            printf(" gw_cpu=%.3f gw_cpu_s=%.3f gw_frames_per_core=%.0f gw_cpu_us_per_frame=%.1f",
                   gw_cpu, gw1 - gw0, (double)st.ok / secs / gw_cpu,
                   st.ok ? (gw1 - gw0) * 1e6 / (double)st.ok : 0);
        if (rss0 >= 0 && rss1 >= 0)
            printf(" gw_rss0_kb=%ld gw_rss_kb=%ld gw_hwm_kb=%ld gw_kb_per_conn=%.1f", rss0, rss1,
                   hwm, (double)(rss1 - rss0) / g.clients);
    }
    if (n_watch)
        printf(" watch_cpu=%.3f", (w1 - w0) / secs);
    if (g.storm) {
        unsigned left = g.storm_left;
        printf(" storm=%s storm_s=%.3f storm_left=%u storm_attempts=%" PRIu64
               " storm_failed=%" PRIu64 " storm_handshakes=%" PRIu64 " storm_resumed=%" PRIu64,
               g.storm == 2 ? "resume" : "full",
               (double)((left ? mono_us() : g.storm_last) - g.storm_t0) / 1e6, left,
               g.storm_attempts, g.storm_err, g.storm_handshakes, g.storm_resumed);
        printf(" storm_loadgen_cpu_s=%.3f", selfs1 - selfs0);
        if (gw_pid && gws0 >= 0 && gws1 >= 0)
            printf(" storm_gw_cpu_s=%.3f", gws1 - gws0);
    }
    printf("\n");
    fflush(stdout);
    rv = 0;
out:
    for (unsigned i = 0; cs != NULL && i < g.clients; i++) {
        if (cs[i].slots == NULL)
            break;
        conn_teardown(&cs[i]);
        if (cs[i].have_sess)
            mbedtls_ssl_session_free(&cs[i].sess);
        free(cs[i].slots);
        free(cs[i].out);
    }
    for (unsigned i = 0; i < loaded; i++)
        ident_cleanup(&ids[i]);
    if (g.epfd >= 0)
        close(g.epfd);
    free(cs);
    free(ids);
    free(evs);
    free(st.lat_us);
    mbedtls_x509_crt_free(&ca);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    return rv;
}
