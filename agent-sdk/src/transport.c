/*
 * transport.c - one TLS + HTTP/2 connection to the gateway (client.c's):
 * a non-blocking TCP connect to the address of the gateway that client.c
 * chose (its candidate), the TLS handshake (tls_client.c), then an nghttp2 client session that carries
 * one POST /v1/stats per frame.  Answers and lost requests go back to
 * client.c (pa_client_answer, pa_client_lost) from nghttp2's stream-close
 * callback; nothing here touches the queue.
 *
 * Runs on the client's I/O thread only.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "client_internal.h"

#define BODY_KEEP 2048     /* bytes of an error body kept for its problem */
#define OUT_CHUNK 16384    /* HTTP/2 bytes handed to TLS at once */
/* Most an answer may carry: panelgate's answers are a few hundred bytes.
 * Beyond these the gateway is broken (or hostile) and the connection is
 * dropped rather than read on. */
#define MAX_HEADER_LIST 65536 /* RFC 9113 6.5.2 size: names + values + 32 each */
#define MAX_BODY 65536

struct req {
    struct req *prev, *next; /* the connection's open requests */
    struct pa_item *item;
    size_t off;           /* body bytes handed to nghttp2 */
    int status;
    int answered;         /* END_STREAM of the response seen */
    int has_ack;
    int acks;             /* panelgate-ack-seq fields seen */
    uint64_t ack_seq;
    int retry_after_s;
    size_t header_bytes;  /* of the response, RFC 9113 6.5.2 size */
    size_t body_bytes;
    char body[BODY_KEEP];
    size_t blen;
};

struct pa_conn {
    struct panelagent_client *cl;
    struct pa_tls *tls;
    const struct pa_opts *o;
    enum pa_conn_state state;
    int fd;
    const struct pa_gw *gw;
    int64_t deadline_ms;   /* connect + handshake */
    char addr[80];         /* the address connected to, for messages */
    struct pa_tls_io *io;
    int want_write;        /* TLS needs the socket writable */
    nghttp2_session *h2;
    uint8_t *out;          /* HTTP/2 bytes not yet accepted by TLS */
    size_t out_len, out_off;
    int streams;
    struct req *reqs;      /* open requests (freed with the connection) */
    int64_t goaway;        /* -1 or the error code received */
    int shutdown;
    int resumed;           /* the handshake resumed a session */
    int reported;          /* *connected reported (the gateway's SETTINGS) */
    int settings_seen;     /* the gateway's first SETTINGS arrived */
    uint32_t sent_goaway;  /* error code of a GOAWAY nghttp2 sent, 0: none */
    int failed;            /* a callback failed the session: reason in fail */
    int fail_code;
    char fail[320];
    char authority[300];
};

/* Fails the session from a callback: nghttp2 returns
 * NGHTTP2_ERR_CALLBACK_FAILURE and pa_conn_io reports |code| with |why|. */
static int fail_session(struct pa_conn *c, int code, const char *why)
{
    if (!c->failed) {
        c->failed = 1;
        c->fail_code = code;
        snprintf(c->fail, sizeof c->fail, "%s", why);
    }
    return NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* ---- TCP --------------------------------------------------------------------- */

/* "host port P" or, when the name resolved to another text, "host
 * (address) port P". */
static void describe(struct pa_conn *c, const struct addrinfo *ai)
{
    char num[INET6_ADDRSTRLEN] = "";
    (void)getnameinfo(ai->ai_addr, ai->ai_addrlen, num, sizeof num, NULL, 0, NI_NUMERICHOST);
    if (num[0] == '\0' || strcmp(num, c->gw->host) == 0)
        snprintf(c->addr, sizeof c->addr, "%.60s", c->gw->host);
    else
        snprintf(c->addr, sizeof c->addr, "%.30s (%.46s)", c->gw->host, num);
}

int pa_conn_new(struct pa_conn **out, struct panelagent_client *cl, struct pa_tls *tls,
                const struct pa_opts *o, const struct pa_gw *gw, unsigned addr_idx,
                unsigned *n_addrs, int64_t now_ms, char *err, size_t errlen)
{
    struct addrinfo hints, *list = NULL, *ai;
    char port[8];
    struct pa_conn *c;
    int gai;
    unsigned n = 0;

    *out = NULL;
    *n_addrs = 0;
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        pa_seterr(err, errlen, "out of memory");
        return PANELAGENT_ECONNECT;
    }
    c->cl = cl;
    c->tls = tls;
    c->o = o;
    c->gw = gw;
    c->fd = -1;
    c->goaway = -1;
    c->state = PA_CONN_TCP;
    c->deadline_ms = now_ms + o->connect_timeout_ms;
    if (strchr(gw->host, ':') != NULL)
        snprintf(c->authority, sizeof c->authority, "[%s]:%" PRId64, gw->host, gw->port);
    else
        snprintf(c->authority, sizeof c->authority, "%s:%" PRId64, gw->host, gw->port);

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    snprintf(port, sizeof port, "%" PRId64, gw->port);
    gai = getaddrinfo(gw->host, port, &hints, &list);
    if (gai != 0) {
        pa_seterr(err, errlen, "cannot resolve %s: %s", gw->host, gai_strerror(gai));
        free(c);
        return PANELAGENT_ECONNECT;
    }
    for (ai = list; ai != NULL; ai = ai->ai_next)
        n++;
    *n_addrs = n;
    ai = list;
    for (unsigned k = 0; k < addr_idx % n; k++)
        ai = ai->ai_next;
    describe(c, ai);
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0) {
        pa_seterr(err, errlen, "cannot connect to %s port %" PRId64 ": socket: %s", c->addr,
                  gw->port, strerror(errno));
        goto fail;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        pa_seterr(err, errlen, "cannot connect to %s port %" PRId64 ": connect: %s", c->addr,
                  gw->port, strerror(errno));
        close(fd);
        goto fail;
    }
    c->fd = fd;
    freeaddrinfo(list);
    *out = c;
    return PANELAGENT_OK;
fail:
    freeaddrinfo(list);
    pa_conn_free(c);
    return PANELAGENT_ECONNECT;
}

void pa_conn_free(struct pa_conn *c)
{
    if (c == NULL)
        return;
    if (c->h2 != NULL)
        nghttp2_session_del(c->h2); /* calls no callbacks */
    while (c->reqs != NULL) {
        struct req *r = c->reqs;
        c->reqs = r->next;
        free(r);
    }
    pa_tls_io_free(c->io);
    if (c->fd >= 0)
        close(c->fd);
    free(c->out);
    free(c);
}

enum pa_conn_state pa_conn_state(const struct pa_conn *c)
{
    return c->state;
}

int pa_conn_fd(const struct pa_conn *c)
{
    return c->fd;
}

int64_t pa_conn_deadline(const struct pa_conn *c)
{
    /* the connect timeout covers TCP, TLS and the gateway's SETTINGS */
    if (c->state == PA_CONN_TCP || c->state == PA_CONN_TLS)
        return c->deadline_ms;
    return c->settings_seen ? -1 : c->deadline_ms;
}

int pa_conn_connected(const struct pa_conn *c)
{
    return c->reported;
}

int pa_conn_streams(const struct pa_conn *c)
{
    return c->streams;
}

int64_t pa_conn_goaway(const struct pa_conn *c)
{
    return c->goaway;
}

short pa_conn_events(const struct pa_conn *c)
{
    switch (c->state) {
    case PA_CONN_TCP: return POLLOUT;
    case PA_CONN_TLS: return c->want_write ? POLLOUT : POLLIN;
    default: break;
    }
    short ev = POLLIN;
    if (c->want_write || c->out_len > c->out_off ||
        (c->h2 != NULL && nghttp2_session_want_write(c->h2)))
        ev |= POLLOUT;
    return ev;
}

/* ---- HTTP/2 callbacks ------------------------------------------------------------ */

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud)
{
    struct pa_conn *c = ud;
    (void)flags;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct req *r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (r == NULL)
        return 0;
    r->header_bytes += namelen + valuelen + 32;
    if (r->header_bytes > MAX_HEADER_LIST) {
        char why[128];
        snprintf(why, sizeof why, "the gateway sent more than %d bytes of response headers",
                 MAX_HEADER_LIST);
        return fail_session(c, PANELAGENT_EPROTOCOL, why);
    }
    char v[32];
    int is_ack = namelen == 17 && memcmp(name, "panelgate-ack-seq", 17) == 0;
    if (valuelen >= sizeof v) { /* nothing we read is that long */
        if (is_ack) {
            r->acks++;
            r->has_ack = 0;
        }
        return 0;
    }
    memcpy(v, value, valuelen);
    v[valuelen] = '\0';
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        int st = atoi(v);
        if (st >= 200) /* 1xx are interim */
            r->status = st;
    } else if (is_ack) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        /* two of them: which one is meant?  Neither. */
        if (++r->acks == 1 && errno == 0 && end != v && *end == '\0' && v[0] >= '0' &&
            v[0] <= '9') {
            r->has_ack = 1;
            r->ack_seq = n;
        } else {
            r->has_ack = 0;
        }
    } else if (namelen == 11 && memcmp(name, "retry-after", 11) == 0) {
        char *end;
        long n = strtol(v, &end, 10);
        if (end != v && *end == '\0' && n >= 0)
            r->retry_after_s = n > 3600 ? 3600 : (int)n;
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *ud)
{
    struct pa_conn *c = ud;
    (void)flags;
    struct req *r = nghttp2_session_get_stream_user_data(s, id);
    if (r == NULL)
        return 0;
    r->body_bytes += len;
    if (r->body_bytes > MAX_BODY) {
        char why[128];
        snprintf(why, sizeof why, "the gateway sent a response body of more than %d bytes",
                 MAX_BODY);
        return fail_session(c, PANELAGENT_EPROTOCOL, why);
    }
    if (r->blen < sizeof r->body - 1) {
        size_t n = sizeof r->body - 1 - r->blen;
        if (n > len)
            n = len;
        memcpy(r->body + r->blen, data, n);
        r->blen += n;
    }
    return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct pa_conn *c = ud;

    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct req *r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
        if (r != NULL && r->status != 0)
            r->answered = 1;
    } else if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
        c->settings_seen = 1;
    } else if (f->hd.type == NGHTTP2_GOAWAY) {
        c->goaway = f->goaway.error_code;
        c->state = PA_CONN_CLOSING;
        pa_client_log(c->cl, PANELAGENT_LOG_INFO, "GOAWAY from the gateway (error %u)",
                      f->goaway.error_code);
    }
    return 0;
}

/* The value of a JSON string member |key| in |body| (no nesting needed:
 * problem+json is flat), escapes reduced to printable ASCII. */
static void json_member(const char *body, const char *key, char *dst, size_t n)
{
    char pat[32];
    const char *p;

    dst[0] = '\0';
    snprintf(pat, sizeof pat, "\"%s\"", key);
    if ((p = strstr(body, pat)) == NULL)
        return;
    p += strlen(pat);
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    if (*p++ != ':')
        return;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    if (*p++ != '"')
        return;
    size_t k = 0;
    for (; *p && *p != '"' && k + 1 < n; p++) {
        char ch = *p;
        if (ch == '\\' && p[1]) {
            p++;
            ch = *p == 'n' || *p == 't' || *p == 'r' ? ' ' : *p;
            if (*p == 'u')
                ch = '?';
        }
        dst[k++] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
    }
    dst[k] = '\0';
}

static void problem_of(struct req *r, char *dst, size_t n)
{
    char type[96], detail[128];

    r->body[r->blen] = '\0';
    json_member(r->body, "type", type, sizeof type);
    json_member(r->body, "detail", detail, sizeof detail);
    if (type[0] && detail[0])
        snprintf(dst, n, "%s: %s", type, detail);
    else if (type[0] || detail[0])
        snprintf(dst, n, "%s", type[0] ? type : detail);
    else
        snprintf(dst, n, "no problem details");
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *ud)
{
    struct pa_conn *c = ud;
    struct req *r = nghttp2_session_get_stream_user_data(s, id);

    if (r == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    c->streams--;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    int rv = 0;
    if (r->answered) {
        struct pa_answer a;
        char why[320];
        memset(&a, 0, sizeof a);
        a.status = r->status;
        a.has_ack = r->has_ack;
        a.ack_seq = r->ack_seq;
        a.retry_after_s = r->retry_after_s;
        if (r->status >= 300)
            problem_of(r, a.problem, sizeof a.problem);
        why[0] = '\0';
        int code = pa_client_answer(c->cl, r->item, &a, why, sizeof why);
        if (code != PANELAGENT_OK)
            rv = fail_session(c, code, why);
    } else {
        pa_client_lost(c->cl, r->item, error_code);
    }
    free(r);
    return rv;
}

/* A GOAWAY of ours with an error code: nghttp2 found the gateway broke
 * HTTP/2 (bad frames, flow control, compression, floods). */
static int on_frame_sent(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct pa_conn *c = ud;
    (void)s;
    if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR &&
        c->sent_goaway == 0)
        c->sent_goaway = f->goaway.error_code;
    return 0;
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)s;
    (void)id;
    (void)ud;
    struct req *r = src->ptr;
    size_t left = r->item->len - r->off;
    if (len > left)
        len = left;
    memcpy(buf, r->item->data + r->off, len);
    r->off += len;
    if (r->off == r->item->len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)len;
}

static int start_h2(struct pa_conn *c, char *err, size_t errlen)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 16},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST},
    };
    int rv;

    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        pa_seterr(err, errlen, "out of memory");
        return PANELAGENT_EPROTOCOL;
    }
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_sent);
    rv = nghttp2_session_client_new(&c->h2, cbs, c);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0 ||
        nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0) {
        pa_seterr(err, errlen, "cannot start HTTP/2: %s", nghttp2_strerror(rv));
        return PANELAGENT_EPROTOCOL;
    }
    c->out = malloc(OUT_CHUNK);
    if (c->out == NULL) {
        pa_seterr(err, errlen, "out of memory");
        return PANELAGENT_EPROTOCOL;
    }
    c->state = PA_CONN_H2;
    return PANELAGENT_OK;
}

int pa_conn_slots(const struct pa_conn *c, int max_in_flight)
{
    /* not before the gateway's SETTINGS: it may still refuse a resumed
     * session right after the handshake */
    if (c->state != PA_CONN_H2 || c->shutdown || c->h2 == NULL || !c->reported)
        return 0;
    uint32_t peer = nghttp2_session_get_remote_settings(c->h2,
                                                        NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    int64_t cap = max_in_flight;
    if ((int64_t)peer < cap)
        cap = peer;
    return cap > c->streams ? (int)(cap - c->streams) : 0;
}

int pa_conn_submit(struct pa_conn *c, struct pa_item *it)
{
    char clen[24];
    struct req *r;
    int32_t id;

    if (c->state != PA_CONN_H2)
        return PANELAGENT_EPROTOCOL;
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return PANELAGENT_ENOMEM;
    r->item = it;
    r->retry_after_s = -1;
    snprintf(clen, sizeof clen, "%zu", it->len);
#define NV(n, v)                                                                              \
    {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),                               \
     NGHTTP2_NV_FLAG_NO_COPY_NAME}
    const nghttp2_nv hdrs[] = {
        NV(":method", "POST"),
        NV(":scheme", "https"),
        NV(":authority", c->authority),
        NV(":path", "/v1/stats"),
        NV("content-type", "application/msgpack"),
        NV("content-length", clen),
        NV("user-agent", "panelagent/" PANELAGENT_VERSION_STRING),
    };
#undef NV
    nghttp2_data_provider dp = {.source = {.ptr = r}, .read_callback = read_body};
    id = nghttp2_submit_request(c->h2, NULL, hdrs, sizeof hdrs / sizeof hdrs[0], &dp, r);
    if (id < 0) {
        free(r);
        return id == NGHTTP2_ERR_NOMEM ? PANELAGENT_ENOMEM : PANELAGENT_EPROTOCOL;
    }
    c->streams++;
    r->next = c->reqs;
    if (c->reqs != NULL)
        c->reqs->prev = r;
    c->reqs = r;
    return PANELAGENT_OK;
}

void pa_conn_shutdown(struct pa_conn *c)
{
    if (c->state == PA_CONN_H2 || c->state == PA_CONN_CLOSING) {
        if (c->h2 != NULL)
            (void)nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
        c->shutdown = 1;
        c->state = PA_CONN_CLOSING;
    }
}

/* ---- I/O ----------------------------------------------------------------------------- */

/* nghttp2_session_mem_send() failed with |n|: the reason one of our
 * callbacks recorded, or nghttp2's own. */
static int send_failed(const struct pa_conn *c, ssize_t n, char *err, size_t errlen)
{
    if (c->failed) {
        pa_seterr(err, errlen, "%s", c->fail);
        return c->fail_code;
    }
    pa_seterr(err, errlen, "HTTP/2: %s", nghttp2_strerror((int)n));
    return PANELAGENT_EPROTOCOL;
}

static int flush_out(struct pa_conn *c, char *err, size_t errlen)
{
    for (;;) {
        if (c->out_off == c->out_len) {
            c->out_off = c->out_len = 0;
            /* gather what nghttp2 has, up to one chunk */
            while (c->out_len < OUT_CHUNK) {
                const uint8_t *p;
                ssize_t n = nghttp2_session_mem_send(c->h2, &p);
                if (n < 0)
                    return send_failed(c, n, err, errlen);
                if (n == 0)
                    break;
                if ((size_t)n > OUT_CHUNK - c->out_len) {
                    uint8_t *bigger = realloc(c->out, c->out_len + (size_t)n);
                    if (bigger == NULL) {
                        pa_seterr(err, errlen, "out of memory");
                        return PANELAGENT_EPROTOCOL;
                    }
                    c->out = bigger;
                }
                memcpy(c->out + c->out_len, p, (size_t)n);
                c->out_len += (size_t)n;
            }
            if (c->out_len == 0)
                return PANELAGENT_OK;
        }
        int ww;
        int n = pa_tls_write(c->io, c->out + c->out_off, c->out_len - c->out_off, &ww, err,
                             errlen);
        if (n == PANELAGENT_EAGAIN) {
            c->want_write = ww;
            return PANELAGENT_OK;
        }
        if (n < 0)
            return n;
        c->out_off += (size_t)n;
        if (c->out_len > OUT_CHUNK && c->out_off == c->out_len) {
            uint8_t *smaller = realloc(c->out, OUT_CHUNK);
            if (smaller != NULL)
                c->out = smaller;
        }
    }
}

/* Hands bytes from the gateway to nghttp2. */
static int recv_bytes(struct pa_conn *c, const uint8_t *buf, size_t n, int *connected,
                      int *resumed, char *err, size_t errlen)
{
    ssize_t r = nghttp2_session_mem_recv(c->h2, buf, n);
    if (r < 0) {
        if (c->failed) {
            pa_seterr(err, errlen, "%s", c->fail);
            return c->fail_code;
        }
        pa_seterr(err, errlen, "HTTP/2 from the gateway: %s", nghttp2_strerror((int)r));
        return PANELAGENT_EPROTOCOL;
    }
    /* Connected once the gateway's SETTINGS arrived: a refusal of a
     * resumed session arrives as an alert just after the handshake
     * instead, and bytes that are not HTTP/2 never get this far. */
    if (!c->reported && c->settings_seen) {
        c->reported = 1;
        *connected = 1;
        *resumed = c->resumed;
    }
    return PANELAGENT_OK;
}

static int read_in(struct pa_conn *c, int *connected, int *resumed, char *err, size_t errlen)
{
    uint8_t buf[16384];

    for (;;) {
        int ww;
        int n = pa_tls_read(c->io, buf, sizeof buf, &ww, err, errlen);
        if (n == PANELAGENT_EAGAIN) {
            if (ww)
                c->want_write = 1;
            return PANELAGENT_OK;
        }
        if (n == 0) {
            pa_seterr(err, errlen, "the gateway closed the connection");
            return PANELAGENT_ECONNECT;
        }
        if (n < 0)
            return n;
        int rv = recv_bytes(c, buf, (size_t)n, connected, resumed, err, errlen);
        if (rv != PANELAGENT_OK)
            return rv;
    }
}

int pa_conn_io(struct pa_conn *c, short revents, int64_t now_ms, int *connected, int *resumed,
               char *err, size_t errlen)
{
    int rv;

    *connected = 0;
    *resumed = 0;
    if (c->state == PA_CONN_TCP) {
        if (revents == 0) {
            if (now_ms >= c->deadline_ms) {
                pa_seterr(err, errlen, "connecting to %s timed out after %" PRId64 " ms",
                          c->authority, c->o->connect_timeout_ms);
                return PANELAGENT_ECONNECT;
            }
            return PANELAGENT_OK;
        }
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
            soerr = errno;
        if (soerr != 0) {
            pa_seterr(err, errlen, "cannot connect to %s port %" PRId64 ": connect: %s",
                      c->addr, c->gw->port, strerror(soerr));
            return PANELAGENT_ECONNECT;
        }
        if (pa_tls_io_new(&c->io, c->tls, c->fd, c->gw->host) != PANELAGENT_OK) {
            pa_seterr(err, errlen, "out of memory");
            return PANELAGENT_ETLS;
        }
        c->state = PA_CONN_TLS;
        revents = POLLOUT; /* start the handshake now */
    }
    if (c->state == PA_CONN_TLS) {
        if (revents == 0) {
            if (now_ms >= c->deadline_ms) {
                pa_seterr(err, errlen, "TLS handshake with %s timed out after %" PRId64 " ms",
                          c->authority, c->o->connect_timeout_ms);
                return PANELAGENT_ECONNECT;
            }
            return PANELAGENT_OK;
        }
        int ww;
        rv = pa_tls_handshake(c->io, &ww, &c->resumed, err, errlen);
        if (rv == PANELAGENT_EAGAIN) {
            c->want_write = ww;
            return PANELAGENT_OK;
        }
        if (rv != PANELAGENT_OK)
            return rv;
        c->want_write = 0;
        if ((rv = start_h2(c, err, errlen)) != PANELAGENT_OK)
            return rv;
        revents = POLLIN | POLLOUT;
    }
    /* open or closing */
    c->want_write = 0;
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        if ((rv = read_in(c, connected, resumed, err, errlen)) != PANELAGENT_OK)
            return rv;
    }
    if ((rv = flush_out(c, err, errlen)) != PANELAGENT_OK)
        return rv;
    if (c->sent_goaway != 0) {
        pa_seterr(err, errlen, "the gateway broke HTTP/2 (%s)",
                  nghttp2_http2_strerror(c->sent_goaway));
        return PANELAGENT_EPROTOCOL;
    }
    if (!c->settings_seen && now_ms >= c->deadline_ms) {
        pa_seterr(err, errlen,
                  "no HTTP/2 SETTINGS from %s within %" PRId64 " ms of connecting",
                  c->authority, c->o->connect_timeout_ms);
        return PANELAGENT_ECONNECT;
    }
    if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) &&
        c->out_off == c->out_len) {
        pa_seterr(err, errlen, "HTTP/2 session ended");
        if (c->shutdown)
            pa_tls_close_notify(c->io);
        return PANELAGENT_ECLOSED; /* a clean end */
    }
    return PANELAGENT_OK;
}

/* ---- without a socket (the fuzz target) ------------------------------------------------ */

int pa_conn_new_mem(struct pa_conn **out, struct panelagent_client *cl, const struct pa_opts *o)
{
    char err[160];
    struct pa_conn *c = calloc(1, sizeof *c);

    *out = NULL;
    if (c == NULL)
        return PANELAGENT_ENOMEM;
    c->cl = cl;
    c->o = o;
    c->fd = -1;
    c->goaway = -1;
    snprintf(c->authority, sizeof c->authority, "gateway.invalid:%" PRId64, o->port);
    if (start_h2(c, err, sizeof err) != PANELAGENT_OK) {
        pa_conn_free(c);
        return PANELAGENT_ENOMEM;
    }
    *out = c;
    return PANELAGENT_OK;
}

int pa_conn_feed(struct pa_conn *c, const uint8_t *data, size_t len, int *connected,
                 char *err, size_t errlen)
{
    int resumed = 0, rv;

    *connected = 0;
    if (len > 0 && (rv = recv_bytes(c, data, len, connected, &resumed, err, errlen)) != 0)
        return rv;
    for (;;) { /* what the client would send back, thrown away */
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(c->h2, &p);
        if (n < 0)
            return send_failed(c, n, err, errlen);
        if (n == 0)
            break;
    }
    if (c->sent_goaway != 0) {
        pa_seterr(err, errlen, "the gateway broke HTTP/2 (%s)",
                  nghttp2_http2_strerror(c->sent_goaway));
        return PANELAGENT_EPROTOCOL;
    }
    return PANELAGENT_OK;
}
