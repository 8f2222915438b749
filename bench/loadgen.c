/*
 * loadgen.c - a load generator for the gateway: --clients agents, each its
 * own registered identity (certificate <agent-dir>/<prefix>NNN.crt and
 * .key, NNN = 001, 002, ...) on its own mutual-TLS HTTP/2 connection,
 * keeping --in-flight frames unanswered each: every answer sends the next
 * frame, so the rate is what the answers allow.
 *
 * It has to cost far less per frame than the gateway, so it is one thread
 * with poll(2) over plain mbedTLS and nghttp2 (the libraries the gateway
 * and the SDK use), and sends a frame encoded once per agent by
 * libpanelagent's builders (a busy edge server's: --streams streams over 2
 * vhosts x 2 apps, --conns viewer connections over 20 networks, a small
 * config map; about 2 KiB of msgpack), only patching each copy's seq in
 * place.  (Through libpanelagent itself, decoding and encoding every frame
 * again cost the generator about as much CPU per frame as the gateway
 * spends.)  seq starts at the Unix time in microseconds and counts up, so it
 * grows across runs as the protocol wants.  A 503 or 429 is counted and
 * the same frame is sent again 200 ms later, as an agent would (sooner than
 * retry-after: a benchmark keeps the pressure on); any other answer but 202
 * is counted and the slot moves on to the next frame.  A connection the
 * gateway closes is counted and not reopened.
 *
 * After --warmup seconds (handshakes, first frames) a window of --duration
 * seconds is measured: 202s in it and their latency (request sent to answer
 * complete: median and p99), the other answers, and the CPU used in it by
 * this process and, with --gw-pid, by the gateway (/proc/PID/stat, every
 * thread; and its main thread, the event loop, alone: gw_loop_cpu) and,
 * with --watch-pid (repeatable), by other processes together (the NATS
 * nodes).  Output: one line of key=value pairs, which
 * bench/run_engines.sh parses.  Exit 0 when the run completed, 1 on a
 * setup error (an option, a certificate, a handshake).
 *
 * Built with the gateway; run by hand, by bench/run_engines.sh and for a
 * second or two by tests/integration/test_bench_loadgen.sh.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#include "bench_frame.h"

#define MAX_WATCH 8
#define OUT_CAP (256 * 1024)
#define RETRY_US 200000

enum slot_state { SLOT_IDLE, SLOT_SENT, SLOT_WAIT };

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

/* One agent: its TLS session, its HTTP/2 session, its frame. */
struct conn {
    int fd;
    int dead;
    mbedtls_ssl_context ssl;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
    nghttp2_session *h2;
    uint8_t *body; /* the frame; its seq at seq_at (8 bytes, big endian) */
    size_t body_len, seq_at;
    char clen[24];
    uint64_t next_seq;
    struct slot *slots;
    uint8_t out[OUT_CAP]; /* HTTP/2 bytes not yet taken by mbedtls_ssl_write */
    size_t out_len, out_pending; /* pending: the length of a write to repeat */
};

struct stats {
    uint64_t ok, r503, r429, r_other, conn_errors;
    uint32_t *lat_us;
    size_t n_lat, cap_lat;
};

static int measuring; /* 1 inside the window */
static struct stats st;
static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;
static mbedtls_x509_crt ca;
static const char *authority = "localhost";

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

/* utime + stime from a /proc stat file, seconds; -1 when it cannot be
 * read. */
static double cpu_stat_s(const char *path)
{
    char buf[1024];
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

/* CPU of process |pid|, all its threads. */
static double cpu_pid_s(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    return cpu_stat_s(path);
}

/* CPU of the main thread of process |pid| alone: the gateway's event loop
 * (the sink's writer and libraries' threads are the others). */
static double cpu_main_thread_s(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/stat", pid, pid);
    return cpu_stat_s(path);
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
    struct conn *c = sl->c;
    (void)s;
    (void)id;
    (void)ud;
    size_t n = c->body_len - sl->off;
    if (n > len)
        n = len;
    memcpy(buf, c->body + sl->off, n);
    /* the seq of this request, patched into its own copy of the bytes */
    for (size_t i = 0; i < 8; i++) {
        size_t at = c->seq_at + i;
        if (at >= sl->off && at < sl->off + n)
            buf[at - sl->off] = (uint8_t)(sl->seq >> (56 - 8 * i));
    }
    sl->off += n;
    if (sl->off == c->body_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int send_frame(struct conn *c, struct slot *sl)
{
    const nghttp2_nv hdr[] = {
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}
        NV(":method", "POST"),
        NV(":scheme", "https"),
        NV(":authority", authority),
        NV(":path", "/v1/stats"),
        NV("content-type", "application/msgpack"),
        NV("content-length", c->clen),
#undef NV
    };
    nghttp2_data_provider dp = {.source.ptr = sl, .read_callback = body_read};
    sl->off = 0;
    sl->status = 0;
    sl->st = SLOT_SENT;
    sl->sent_us = mono_us();
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
    if (sl->status == 202) {
        if (measuring) {
            st.ok++;
            record_latency((uint32_t)(now - sl->sent_us));
        }
        sl->seq = c->next_seq++;
        sl->st = SLOT_IDLE;
    } else if (sl->status == 503 || sl->status == 429) {
        if (measuring && sl->status == 503)
            st.r503++;
        else if (measuring)
            st.r429++;
        sl->st = SLOT_WAIT; /* the same seq again, a little later */
        sl->retry_at_us = now + RETRY_US;
    } else {
        if (measuring)
            st.r_other++;
        sl->seq = c->next_seq++;
        sl->st = SLOT_WAIT;
        sl->retry_at_us = now + RETRY_US;
    }
    return 0;
}

/* ---- setup ------------------------------------------------------------------------ */

/* Connects agent |id| and completes its handshake (blocking), then makes
 * the socket non-blocking and starts HTTP/2.  Message in |err| on
 * failure. */
static int conn_open(struct conn *c, const char *host, int port, const char *dir,
                     const char *id, char *err, size_t errlen)
{
    char crt[4200], key[4200];
    int r;
    snprintf(crt, sizeof crt, "%s/%s.crt", dir, id);
    snprintf(key, sizeof key, "%s/%s.key", dir, id);
    if ((r = mbedtls_x509_crt_parse_file(&c->cert, crt)) != 0) {
        snprintf(err, errlen, "%.400s: -0x%04x", crt, (unsigned)-r);
        return -1;
    }
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    r = mbedtls_pk_parse_keyfile(&c->key, key, NULL, mbedtls_ctr_drbg_random, &drbg);
#else
    r = mbedtls_pk_parse_keyfile(&c->key, key, NULL);
#endif
    if (r != 0) {
        snprintf(err, errlen, "%.400s: -0x%04x", key, (unsigned)-r);
        return -1;
    }
    static const char *alpn[] = {"h2", NULL};
    if (mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0 ||
        mbedtls_ssl_conf_own_cert(&c->conf, &c->cert, &c->key) != 0 ||
        mbedtls_ssl_conf_alpn_protocols(&c->conf, alpn) != 0) {
        snprintf(err, errlen, "TLS configuration");
        return -1;
    }
    mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&c->conf, &ca, NULL);
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &drbg);
    if (mbedtls_ssl_setup(&c->ssl, &c->conf) != 0 ||
        mbedtls_ssl_set_hostname(&c->ssl, authority) != 0) {
        snprintf(err, errlen, "TLS setup");
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "--host %s: not an IPv4 address", host);
        return -1;
    }
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(err, errlen, "connect %s:%d: %s", host, port, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    mbedtls_ssl_set_bio(&c->ssl, &c->fd, bio_send, bio_recv, NULL);
    while ((r = mbedtls_ssl_handshake(&c->ssl)) != 0) {
        if (r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE) {
            snprintf(err, errlen, "TLS handshake: -0x%04x (registered? the right CA?)",
                     (unsigned)-r);
            return -1;
        }
    }
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);

    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return -1;
    nghttp2_session_callbacks_set_send_callback(cb, h2_send);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    r = nghttp2_session_client_new(&c->h2, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (r != 0 || nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, NULL, 0) != 0) {
        snprintf(err, errlen, "nghttp2 session");
        return -1;
    }
    return 0;
}

static void conn_close(struct conn *c)
{
    nghttp2_session_del(c->h2);
    mbedtls_ssl_free(&c->ssl);
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->cert);
    mbedtls_pk_free(&c->key);
    if (c->fd >= 0)
        close(c->fd);
    free(c->slots);
    panelagent_free(c->body);
}

static void conn_fail(struct conn *c)
{
    if (!c->dead && measuring)
        st.conn_errors++;
    c->dead = 1;
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
            conn_fail(c);
            return;
        }
    }
}

/* Sends the frames whose slot is free (or whose wait is over), then what
 * nghttp2 has to send. */
static void conn_pump(struct conn *c, unsigned in_flight, int64_t now)
{
    for (unsigned i = 0; i < in_flight; i++) {
        struct slot *sl = &c->slots[i];
        if ((sl->st == SLOT_IDLE || (sl->st == SLOT_WAIT && now >= sl->retry_at_us)) &&
            send_frame(c, sl) != 0) {
            conn_fail(c);
            return;
        }
    }
    if (nghttp2_session_send(c->h2) != 0 || flush_out(c) != 0)
        conn_fail(c);
    if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2))
        conn_fail(c); /* GOAWAY and nothing left */
}

/* 1 + the offset of |pat| in |buf|; 0 when it is not there. */
static size_t find(const uint8_t *buf, size_t len, const uint8_t *pat, size_t n)
{
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, pat, n) == 0)
            return i + 1;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: bench_loadgen --port PORT --ca FILE --agent-dir DIR [options]\n"
            "  --host ADDR         the gateway's IPv4 address (127.0.0.1)\n"
            "  --name NAME         its certificate's name: SNI, :authority (localhost)\n"
            "  --agent-prefix P    certificates DIR/PNNN.crt + .key, NNN from 001 (bench-)\n"
            "  --clients N         agents, one connection each, 1..999 (16)\n"
            "  --in-flight N       unanswered frames per agent, 1..100 (8)\n"
            "  --warmup S          seconds before the window (2)\n"
            "  --duration S        seconds measured (10)\n"
            "  --streams N         streams per frame (6)\n"
            "  --conns N           viewer connections per frame (50)\n"
            "  --gw-pid PID        the gateway: its CPU (and its loop's) over the window\n"
            "  --watch-pid PID     another process whose CPU is added to watch_cpu\n"
            "                      (repeatable, up to %d)\n",
            MAX_WATCH);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *ca_file = NULL, *dir = NULL, *prefix = "bench-";
    long port = 0, gw_pid = 0, watch[MAX_WATCH];
    unsigned n_watch = 0, clients = 16, in_flight = 8, streams = 6, conns = 50;
    double warmup = 2, duration = 10;
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'h'},      {"port", required_argument, NULL, 'p'},
        {"name", required_argument, NULL, 'n'},      {"ca", required_argument, NULL, 'a'},
        {"agent-dir", required_argument, NULL, 'd'}, {"agent-prefix", required_argument, NULL, 'x'},
        {"clients", required_argument, NULL, 'c'},   {"in-flight", required_argument, NULL, 'i'},
        {"warmup", required_argument, NULL, 'w'},    {"duration", required_argument, NULL, 't'},
        {"streams", required_argument, NULL, 's'},   {"conns", required_argument, NULL, 'v'},
        {"gw-pid", required_argument, NULL, 'g'},    {"watch-pid", required_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'H'},            {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': port = strtol(optarg, NULL, 10); break;
        case 'n': authority = optarg; break;
        case 'a': ca_file = optarg; break;
        case 'd': dir = optarg; break;
        case 'x': prefix = optarg; break;
        case 'c': clients = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'i': in_flight = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'w': warmup = strtod(optarg, NULL); break;
        case 't': duration = strtod(optarg, NULL); break;
        case 's': streams = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'v': conns = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'g': gw_pid = strtol(optarg, NULL, 10); break;
        case 'W':
            if (n_watch == MAX_WATCH) {
                fprintf(stderr, "bench_loadgen: at most %d --watch-pid\n", MAX_WATCH);
                return 1;
            }
            watch[n_watch++] = strtol(optarg, NULL, 10);
            break;
        case 'H': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (port < 1 || port > 65535 || ca_file == NULL || dir == NULL || clients < 1 ||
        clients > 999 || in_flight < 1 || in_flight > 100 || warmup < 0 || duration <= 0 ||
        optind != argc) {
        usage(stderr);
        return 1;
    }

    int rv = 1;
    size_t frame_bytes = 0;
    unsigned opened = 0;
    struct conn *cs = calloc(clients, sizeof *cs);
    struct pollfd *pfd = calloc(clients, sizeof *pfd);
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_x509_crt_init(&ca);
    if (cs == NULL || pfd == NULL)
        goto out;
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0) != 0 ||
        mbedtls_x509_crt_parse_file(&ca, ca_file) != 0) {
        fprintf(stderr, "bench_loadgen: --ca %s: cannot load it\n", ca_file);
        goto out;
    }
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    uint64_t seq0 = (uint64_t)wall.tv_sec * 1000000 + (uint64_t)wall.tv_nsec / 1000;
    static const uint8_t sentinel[9] = {0xcf, 0x7e, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0x12, 0x34};
    for (; opened < clients; opened++) {
        struct conn *c = &cs[opened];
        char id[300], err[512];
        snprintf(id, sizeof id, "%s%03u", prefix, opened + 1);
        c->fd = -1;
        mbedtls_ssl_init(&c->ssl);
        mbedtls_ssl_config_init(&c->conf);
        mbedtls_x509_crt_init(&c->cert);
        mbedtls_pk_init(&c->key);
        c->slots = calloc(in_flight, sizeof *c->slots);
        if (c->slots == NULL || make_frame(id, streams, conns, &c->body, &c->body_len) != 0 ||
            (c->seq_at = find(c->body, c->body_len, sentinel, sizeof sentinel)) == 0) {
            fprintf(stderr, "bench_loadgen: cannot build the frame of %s\n", id);
            opened++;
            goto out;
        }
        frame_bytes = c->body_len;
        snprintf(c->clen, sizeof c->clen, "%zu", c->body_len);
        c->next_seq = seq0;
        for (unsigned k = 0; k < in_flight; k++) {
            c->slots[k].c = c;
            c->slots[k].seq = c->next_seq++;
        }
        if (conn_open(c, host, (int)port, dir, id, err, sizeof err) != 0) {
            fprintf(stderr, "bench_loadgen: agent %s: %s\n", id, err);
            opened++;
            goto out;
        }
    }

    int64_t start = mono_us(), t0 = 0, t1 = 0;
    int64_t win0 = start + (int64_t)(warmup * 1e6), win1 = win0 + (int64_t)(duration * 1e6);
    double self0 = 0, self1 = 0, gw0 = 0, gw1 = 0, loop0 = 0, loop1 = 0, w0 = 0, w1 = 0;
    for (;;) {
        int64_t now = mono_us();
        if (!measuring && t0 == 0 && now >= win0) {
            self0 = cpu_self_s();
            gw0 = gw_pid ? cpu_pid_s(gw_pid) : 0;
            loop0 = gw_pid ? cpu_main_thread_s(gw_pid) : 0;
            for (unsigned i = 0; i < n_watch; i++)
                w0 += cpu_pid_s(watch[i]);
            t0 = mono_us();
            measuring = 1;
        } else if (measuring && now >= win1) {
            measuring = 0;
            t1 = mono_us();
            self1 = cpu_self_s();
            gw1 = gw_pid ? cpu_pid_s(gw_pid) : 0;
            loop1 = gw_pid ? cpu_main_thread_s(gw_pid) : 0;
            for (unsigned i = 0; i < n_watch; i++)
                w1 += cpu_pid_s(watch[i]);
            break; /* what is still in flight does not count */
        }
        unsigned live = 0;
        for (unsigned i = 0; i < clients; i++) {
            struct conn *c = &cs[i];
            pfd[i].fd = c->dead ? -1 : c->fd;
            pfd[i].events = POLLIN | (c->out_len > 0 ? POLLOUT : 0);
            pfd[i].revents = 0;
            live += !c->dead;
        }
        if (live == 0) {
            fprintf(stderr, "bench_loadgen: the gateway closed every connection\n");
            break;
        }
        if (poll(pfd, clients, 10) < 0 && errno != EINTR)
            break;
        now = mono_us();
        for (unsigned i = 0; i < clients; i++) {
            struct conn *c = &cs[i];
            if (c->dead)
                continue;
            if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
                conn_read(c);
            if (!c->dead)
                conn_pump(c, in_flight, now);
        }
    }
    if (t1 == 0) {
        fprintf(stderr, "bench_loadgen: stopped before the end of the window\n");
        goto out;
    }

    double secs = (double)(t1 - t0) / 1e6;
    qsort(st.lat_us, st.n_lat, sizeof *st.lat_us, cmp_u32);
    double p50 = st.n_lat ? st.lat_us[(st.n_lat - 1) / 2] / 1e3 : 0;
    double p99 = st.n_lat ? st.lat_us[(st.n_lat * 99 + 99) / 100 - 1] / 1e3 : 0;
    printf("loadgen clients=%u in_flight=%u frame_bytes=%zu seconds=%.3f acks=%" PRIu64
           " acks_per_s=%.0f r503=%" PRIu64 " r429=%" PRIu64 " r_other=%" PRIu64
           " conn_errors=%" PRIu64 " lat_ms_p50=%.3f lat_ms_p99=%.3f loadgen_cpu=%.3f",
           clients, in_flight, frame_bytes, secs, st.ok, (double)st.ok / secs, st.r503, st.r429,
           st.r_other, st.conn_errors, p50, p99, (self1 - self0) / secs);
    if (gw_pid) {
        double gw_cpu = (gw1 - gw0) / secs;
        if (gw0 < 0 || gw1 < 0 || gw_cpu <= 0)
            printf(" gw_cpu=na");
        else
            printf(" gw_cpu=%.3f gw_frames_per_core=%.0f gw_cpu_us_per_frame=%.1f", gw_cpu,
                   (double)st.ok / secs / gw_cpu,
                   st.ok ? (gw1 - gw0) * 1e6 / (double)st.ok : 0);
        if (loop0 < 0 || loop1 < 0 || gw0 < 0 || gw1 < 0)
            printf(" gw_loop_cpu=na");
        else
            printf(" gw_loop_cpu=%.3f gw_loop_us_per_frame=%.1f", (loop1 - loop0) / secs,
                   st.ok ? (loop1 - loop0) * 1e6 / (double)st.ok : 0);
    }
    if (n_watch)
        printf(" watch_cpu=%.3f", (w1 - w0) / secs);
    printf("\n");
    fflush(stdout);
    rv = 0;
out:
    for (unsigned i = 0; i < opened; i++)
        conn_close(&cs[i]);
    free(cs);
    free(pfd);
    free(st.lat_us);
    mbedtls_x509_crt_free(&ca);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    return rv;
}
