/*
 * h2.c - the HTTP/2 side of a connection: nghttp2 server session callbacks
 * turned into `POST /v1/stats` requests (docs/PROTOCOL.md, section 3).
 *
 * A request is checked as soon as its headers end (431, 403, 404, 405, 415,
 * 429, 503, 413 are answered at once; the rest of such a request is read and
 * dropped, up to one body's worth); its body is counted while it streams and
 * answered 413 the moment it passes the limit, followed by RST_STREAM
 * (NO_ERROR) so the agent stops sending.  A complete body is decoded with
 * the shared codec, reduced (no viewer IP survives), and handed to the sink;
 * the 202 goes out when the sink reports the commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <panelproto/frame.h>
#include "alloc.h"
#include "gw.h"
#include "limiter.h"
#include "log.h"
#include "privacy.h"
#include "samples.h"
#include "problem.h"
#include "sink.h"

enum stream_state {
    ST_HEADERS,   /* headers arriving */
    ST_BODY,      /* accepted so far, body arriving */
    ST_ANSWERED,  /* a response is submitted; any further body is ignored */
    ST_WAIT_SINK, /* the frame is with the sink */
};

struct gw_stream {
    struct gw_conn *c;
    struct gw_stream *prev, *next;
    int32_t id;
    enum stream_state state;
    bool is_post, is_head, path_ok, ct_ok, encoding_bad, headers_too_big;
    bool req_done;  /* END_STREAM received */
    bool stop_body; /* answered while a body we will not read is still
                       coming (413, 408, 503): ask the agent to stop */
    size_t discarded; /* body bytes ignored after an early answer */
    int64_t content_length; /* -1 when absent */
    uint32_t header_bytes;
    struct pa_buf body;
    struct pa_buf resp;
    size_t resp_off;
    struct event *timer; /* request timeout */
    struct gw_sink_item *item;
    int32_t win_before; /* our send window when a SETTINGS frame began */
};

/* ---- stream bookkeeping ------------------------------------------------ */

/* Body memory is charged as it is allocated (the buffer's capacity, not
 * the bytes received, and never a declared content-length before the bytes
 * arrive), against the connection's max_conn_buffer_bytes and the
 * gateway's max_total_buffer_bytes. */
static void body_charge(struct gw_stream *s, size_t old_cap, size_t new_cap)
{
    struct gw_conn *c = s->c;
    c->body_bytes = c->body_bytes - old_cap + new_cap;
    c->app->body_bytes = c->app->body_bytes - old_cap + new_cap;
}

static void body_release(struct gw_stream *s)
{
    if (s->body.data) {
        /* the body holds viewer IPs: wipe what was written before the heap
         * reuses it (the rest of the block was never touched) */
        explicit_bzero(s->body.data, s->body.len);
        body_charge(s, s->body.cap, 0);
    }
    pa_buf_cleanup(&s->body);
}

#define BODY_MIN_CAP 16384u

/* Appends to the body, growing it by hand rather than with realloc so the
 * old block can be wiped before it is freed.  The block doubles from
 * BODY_MIN_CAP as bytes arrive, up to the declared length or |max|.
 * Returns 0, GW_EFULL when the new block would pass a budget (*gateway_wide
 * says whether it is the gateway's or the connection's; nothing changes),
 * or GW_ENOMEM. */
static int body_append(struct gw_stream *s, const uint8_t *data, size_t len, size_t max,
                       bool *gateway_wide)
{
    struct pa_buf *b = &s->body;
    const struct gw_config *cfg = s->c->app->cfg;

    if (b->len + len > b->cap) {
        size_t need = b->len + len, cap = b->cap ? b->cap : BODY_MIN_CAP;
        while (cap < need)
            cap = cap > max / 2 ? max : cap * 2;
        if (cap > max)
            cap = max; /* a small max_body_bytes: no block larger than a body */
        if (s->content_length > 0 && (uint64_t)s->content_length < cap &&
            (uint64_t)s->content_length >= need)
            cap = (size_t)s->content_length; /* the last block is exact */
        if (cap < need)
            cap = need;
        if (s->c->body_bytes - b->cap + cap > cfg->max_conn_buffer_bytes) {
            *gateway_wide = false;
            return GW_EFULL;
        }
        if (s->c->app->body_bytes - b->cap + cap > cfg->max_total_buffer_bytes) {
            *gateway_wide = true;
            return GW_EFULL;
        }
        uint8_t *p = gw_malloc(cap);
        if (!p)
            return GW_ENOMEM;
        if (b->len)
            memcpy(p, b->data, b->len);
        if (b->data) {
            explicit_bzero(b->data, b->len);
            gw_free(b->data);
        }
        b->data = p;
        body_charge(s, b->cap, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static void stream_free(struct gw_stream *s)
{
    struct gw_conn *c = s->c;

    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    c->n_streams--;
    if (s->item)
        s->item->ud = NULL; /* stored anyway; nobody waits for the answer */
    if (s->timer)
        event_free(s->timer);
    body_release(s);
    pa_buf_cleanup(&s->resp);
    gw_free(s);
}

void gw_h2_streams_free(struct gw_conn *c)
{
    while (c->streams)
        stream_free(c->streams);
}

/* ---- responses --------------------------------------------------------- */

static ssize_t resp_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                         size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                         void *user_data)
{
    struct gw_stream *s = source->ptr;
    size_t left = s->resp.len - s->resp_off;
    size_t n = left < length ? left : length;
    (void)session;
    (void)stream_id;
    (void)user_data;

    if (n)
        memcpy(buf, s->resp.data + s->resp_off, n);
    s->resp_off += n;
    if (s->resp_off == s->resp.len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

#define NV(n, v)                                                                           \
    {                                                                                      \
        (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE         \
    }

/* Submits status + body.  extra_name/extra_value: one optional header. */

/* nghttp2's codes at the edge: NGHTTP2_ERR_NOMEM is GW_ENOMEM; any other
 * failure of a call that only queues a frame of ours is GW_EINTERNAL. */
static int from_nghttp2(int rv)
{
    if (rv == 0)
        return 0;
    return rv == NGHTTP2_ERR_NOMEM ? GW_ENOMEM : GW_EINTERNAL;
}

/* What a callback returns to nghttp2 for one of our codes: 0 goes on; any
 * failure ends the session (conn.c logs h2_error, writes what nghttp2 still
 * has queued and closes), as every failure that reaches a callback is a
 * fatal one (out of memory, a response that cannot be queued).  Problems
 * of one stream are answered on that stream before they get here. */
static int to_nghttp2(int rv)
{
    return rv == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int submit(struct gw_stream *s, int status, const char *ctype, const char *extra_name,
                  const char *extra_value, const char *extra2_name, const char *extra2_value)
{
    char st[8], len[24];
    nghttp2_nv nva[6];
    size_t n = 0;

    snprintf(st, sizeof st, "%d", status);
    snprintf(len, sizeof len, "%zu", s->resp.len);
    nva[n++] = (nghttp2_nv)NV(":status", st);
    nva[n++] = (nghttp2_nv)NV("content-type", ctype);
    nva[n++] = (nghttp2_nv)NV("content-length", len);
    nva[n++] = (nghttp2_nv)NV("cache-control", "no-store");
    if (extra_name)
        nva[n++] = (nghttp2_nv)NV(extra_name, extra_value);
    if (extra2_name)
        nva[n++] = (nghttp2_nv)NV(extra2_name, extra2_value);

    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = resp_read};
    gw_stats_count_status(&s->c->app->stats, status);
    s->state = ST_ANSWERED;
    /* an early answer keeps the request timer: the rest of the request
     * must still arrive in time */
    if (s->timer && s->req_done)
        event_del(s->timer);
    /* a response to HEAD has no content (RFC 9110 9.3.2) */
    return from_nghttp2(
        nghttp2_submit_response(s->c->h2, s->id, nva, n, s->is_head ? NULL : &prd));
}

static int respond_problem(struct gw_stream *s, int status, const char *type, const char *title,
                           const char *detail, long long offset)
{
    char retry[16];
    const char *xn = NULL, *xv = NULL;

    s->resp.len = 0;
    if (gw_problem_json(&s->resp, status, type, title, detail, offset) != 0)
        return GW_ENOMEM;
    if (status == 503 || status == 429) {
        snprintf(retry, sizeof retry, "%u", s->c->app->cfg->retry_after_s);
        xn = "retry-after";
        xv = retry;
    } else if (status == 405) {
        xn = "allow";
        xv = "POST";
    }
    if (status >= 400 && status < 500)
        s->c->app->stats.frames_rejected++;
    else if (status == 503)
        s->c->app->stats.frames_unavailable++;
    return submit(s, status, "application/problem+json", xn, xv, NULL, NULL);
}

/* Who the limiter is asked about: this connection's server. */
static void limiter_who(const struct gw_conn *c, struct gw_limiter_who *who)
{
    who->server_id = c->server_id;
    who->server_name = c->server_name;
    who->reg = c->app->reg;
    who->spki = c->have_spki ? c->spki : NULL;
    gw_conn_log_ctx(c, &who->log);
}

/* 429 rate_limited for the limiter's verdict |v|: counted; a ban it began
 * sends GOAWAY(ENHANCE_YOUR_CALM) to every connection of the server (this
 * one's goes out with the answer) and is recorded.  retry-after is
 * v->retry_after_s; v->why names the bucket (limiter.h).  The rest of the
 * body is not wanted: RST_STREAM(NO_ERROR) after the answer stops the
 * agent from sending it. */
static int respond_rate_limited(struct gw_stream *s, const struct gw_limiter_who *who,
                                const struct gw_limiter_verdict *v)
{
    struct gw_app *app = s->c->app;
    uint32_t retry_s = v->retry_after_s;
    const char *why = v->why;
    char retry[16], detail[128];

    app->stats.frames_rate_limited++;
    if (v->ban_started) {
        app->stats.rate_limit_bans++;
        unsigned n = gw_conn_goaway_server(s->c, NGHTTP2_ENHANCE_YOUR_CALM, "rate_limited");
        gw_limiter_ban_started(app->limiter, who, why, n);
    }

    if (strcmp(why, "banned") == 0)
        snprintf(detail, sizeof detail,
                 "too many 429s: this server is refused for %u more seconds", retry_s);
    else if (strcmp(why, "global") == 0)
        snprintf(detail, sizeof detail, "the gateway is over its total frames per second");
    else
        snprintf(detail, sizeof detail, "over this server's %s per second limit", why);
    snprintf(retry, sizeof retry, "%u", retry_s);
    s->resp.len = 0;
    if (gw_problem_json(&s->resp, 429, "rate_limited", "rate limited", detail, -1) != 0)
        return GW_ENOMEM;
    s->stop_body = true;
    return submit(s, 429, "application/problem+json", "retry-after", retry, NULL, NULL);
}

static int respond_accepted(struct gw_stream *s, uint64_t seq)
{
    char num[24], body[48];
    int n;

    snprintf(num, sizeof num, "%llu", (unsigned long long)seq);
    n = snprintf(body, sizeof body, "{\"seq\":%s}", num);
    s->resp.len = 0;
    if (pa_buf_append(&s->resp, body, (size_t)n) != 0)
        return GW_ENOMEM;
    s->c->app->stats.frames_accepted++;
    return submit(s, 202, "application/json", "panelgate-ack-seq", num, NULL, NULL);
}

/* 403 for a server that is no longer admitted: no longer registered
 * (erased), or revoked (a revoked server, or a key past its rotation
 * overlap).  Not retryable. */
static int respond_gone(struct gw_stream *s, bool unregistered)
{
    if (unregistered)
        return respond_problem(s, 403, "not_registered", "server not registered",
                               "this server is no longer registered; the frame was not stored",
                               -1);
    return respond_problem(s, 403, "revoked", "server revoked",
                           "this server's registration was revoked", -1);
}

/* ---- the frame ----------------------------------------------------------- */

static void on_sink_done(struct gw_sink_item *it, void *ud)
{
    struct gw_stream *s = ud;
    struct gw_conn *c;
    int rv;

    if (!s)
        return; /* the stream or its connection went away */
    c = s->c;
    s->item = NULL;
    if (it->status == GW_SINK_FAILED) {
        rv = respond_problem(s, 503, "storage_unavailable", "storage is unavailable",
                             "the frame was not stored; retry with the same seq", -1);
    } else if (it->status == GW_SINK_UNREGISTERED || it->status == GW_SINK_REVOKED) {
        /* the registry changed before the frame could commit (an erase, a
         * revocation): refused in that transaction, never stored */
        rv = respond_gone(s, it->status == GW_SINK_UNREGISTERED);
    } else if (it->status == GW_SINK_REJECTED) {
        /* storage works, this frame will never be stored: no retry-after */
        c->app->stats.frames_failed++;
        rv = respond_problem(s, 500, "storage_rejected", "storage rejected the frame",
                             "the frame could not be stored and will not be on a retry", -1);
    } else {
        if (it->status == GW_SINK_DUPLICATE)
            c->app->stats.frames_duplicate++;
        rv = respond_accepted(s, it->seq);
    }
    /* No answer could be made (out of memory): reset the stream rather
     * than leave it to its request timeout.  The agent resends the same
     * seq; a frame that was stored is then a duplicate, answered 202. */
    if (rv != 0 &&
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR) != 0)
        gw_conn_goaway(c, NGHTTP2_INTERNAL_ERROR, "out of memory");
    /* the rest of the batch may answer on this connection too */
    gw_conn_flush_soon(c);
}

static int frame_status(int code, const char **title)
{
    *title = pa_frame_strerror(code);
    if (code == PA_FE_TOO_BIG)
        return 413;
    if (code == PA_FE_NOMEM)
        return 503;
    return 400;
}

/* Decodes the complete body, drops every viewer IP, submits to the sink. */
static int process_frame(struct gw_stream *s)
{
    struct gw_conn *c = s->c;
    const struct gw_config *cfg = c->app->cfg;
    struct pa_arena arena;
    struct pa_frame *f = NULL;
    struct pa_frame_error err;
    struct pa_buf stored;
    int rv = GW_EINTERNAL;

    pa_arena_init(&arena, 0, &gw_pa_mem);
    pa_buf_init(&stored, &gw_pa_mem);
    /* the stored form is about the body less its connections: one block
     * of that size from the start rather than doublings from 256 bytes (a
     * failure here is the encoder's to report) */
    (void)pa_buf_reserve(&stored, s->body.len);
    int code = pa_frame_decode(s->body.data, s->body.len, &cfg->frame, &arena, &f, &err);
    body_release(s);
    if (code != 0) {
        char detail[sizeof err.path + sizeof err.msg + 4], type[32];
        const char *title;
        int status = frame_status(code, &title);
        pa_frame_error_format(&err, detail, sizeof detail);
        snprintf(type, sizeof type, "frame:%s", pa_frame_errname(code));
        rv = respond_problem(s, status, type, title, detail, (long long)err.offset);
        goto out;
    }

    /* Privacy: the connections become geo/ASN aggregates ("viewers"), the
     * stored form has no "conns"; then the decoded addresses are wiped. */
    struct gw_viewers viewers;
    struct gw_samples *samples = NULL;
    code = gw_privacy_reduce(c->app->geo, f->conns, f->n_conns, &arena, &viewers);
    if (code == 0)
        code = gw_privacy_encode(f, &viewers, &stored);
    /* the panel-facing rows, built here so the writer never decodes the
     * body again (samples.h); no viewer IP is in them */
    if (code == 0 && cfg->store_samples)
        code = gw_samples_build(f, &viewers, &samples);
    if (f->n_conns)
        explicit_bzero(f->conns, (size_t)f->n_conns * sizeof *f->conns);
    if (viewers.lookup_errors) {
        struct gw_log_ctx ctx;
        gw_conn_log_ctx(c, &ctx);
        gw_log(GW_LOG_WARN, &ctx, "geo_lookup_failed",
               "%u database lookups failed (counted as unknown); check [geo]",
               viewers.lookup_errors);
    }
    if (code != 0) {
        rv = respond_problem(s, 503, "overloaded", "out of memory", NULL, -1);
        goto out;
    }

    struct gw_sink_item *it = gw_sink_item_new(f->server.name, stored.data, stored.len);
    if (!it) {
        gw_free(samples);
        rv = respond_problem(s, 503, "overloaded", "out of memory", NULL, -1);
        goto out;
    }
    it->samples = samples;
    it->server_id = c->server_id;
    it->seq = f->seq;
    it->ts_ms = f->ts_ms;
    it->received_ms = gw_now_ms();
    it->done = on_sink_done;
    it->ud = s;
    if (gw_sink_submit(c->app->sink, it) != 0) {
        gw_sink_item_free(it);
        rv = respond_problem(s, 503, "queue_full", "storage queue is full",
                             "retry with the same seq after retry-after seconds", -1);
        goto out;
    }
    s->item = it;
    s->state = ST_WAIT_SINK;
    if (s->timer)
        event_del(s->timer);
    rv = 0;
out:
    pa_buf_cleanup(&stored);
    pa_arena_cleanup(&arena);
    return rv;
}

/* While storage is failing, requests are answered 503 at once, except one
 * per SINK_PROBE_MS that goes through to the sink: only a write can find
 * out that storage is back (and clear the failing state). */
#define SINK_PROBE_MS 1000

static bool sink_probe_due(struct gw_app *app)
{
    int64_t now = gw_mono_ms(); /* an interval: a wall-clock step must not stop the probes */
    if (now - app->sink_probe_ms < SINK_PROBE_MS)
        return false;
    app->sink_probe_ms = now;
    return true;
}

/* The headers are complete: answer now if the request cannot succeed. */
static int check_headers(struct gw_stream *s)
{
    struct gw_conn *c = s->c;
    const struct gw_config *cfg = c->app->cfg;
    char detail[96];
    struct gw_limiter_who who;
    struct gw_limiter_verdict verdict;

    if (s->headers_too_big) {
        snprintf(detail, sizeof detail, "header list larger than %u bytes",
                 cfg->max_header_list_size);
        return respond_problem(s, 431, "headers_too_large", "request headers too large", detail,
                               -1);
    }
    if (c->revoked)
        return respond_gone(s, c->unregistered);
    if (!s->path_ok)
        return respond_problem(s, 404, "not_found", "not found", "the only path is /v1/stats", -1);
    if (!s->is_post)
        return respond_problem(s, 405, "method_not_allowed", "method not allowed",
                               "use POST", -1);
    if (!s->ct_ok || s->encoding_bad)
        return respond_problem(s, 415, "unsupported_media_type", "unsupported media type",
                               s->encoding_bad ? "content-encoding is not supported"
                                               : "content-type must be application/msgpack",
                               -1);
    limiter_who(c, &who);
    gw_limiter_request(c->app->limiter, &who, s->content_length, &verdict);
    if (verdict.retry_after_s > 0)
        return respond_rate_limited(s, &who, &verdict);
    if (gw_sink_failing(c->app->sink) && !sink_probe_due(c->app))
        return respond_problem(s, 503, "storage_unavailable", "storage is unavailable",
                               "retry with the same seq after retry-after seconds", -1);
    if (s->content_length >= 0 && (uint64_t)s->content_length > cfg->max_body_bytes) {
        snprintf(detail, sizeof detail, "body larger than %zu bytes", cfg->max_body_bytes);
        s->stop_body = true;
        return respond_problem(s, 413, "frame:too_big", pa_frame_strerror(PA_FE_TOO_BIG),
                               detail, -1);
    }
    s->state = ST_BODY;
    return 0;
}

static int request_done(struct gw_stream *s)
{
    s->req_done = true;
    if (s->timer)
        event_del(s->timer);
    int rv;
    if (s->state == ST_HEADERS && (rv = check_headers(s)) != 0)
        return rv;
    if (s->state != ST_BODY)
        return 0;
    /* revoked while the body was arriving: nothing more from this server */
    if (s->c->revoked) {
        body_release(s);
        return respond_gone(s, s->c->unregistered);
    }
    /* bytes per second: charged for the whole body, now it is complete */
    struct gw_limiter_who who;
    struct gw_limiter_verdict verdict;
    limiter_who(s->c, &who);
    gw_limiter_body(s->c->app->limiter, &who, s->body.len, &verdict);
    if (verdict.retry_after_s > 0) {
        body_release(s);
        return respond_rate_limited(s, &who, &verdict);
    }
    return process_frame(s);
}

static void on_request_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct gw_stream *s = arg;
    struct gw_conn *c = s->c;
    (void)fd;
    (void)what;

    if (s->req_done)
        return;
    if (s->state == ST_ANSWERED) {
        /* answered early, and the agent never finished the request */
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    } else if (s->state == ST_HEADERS || s->state == ST_BODY) {
        body_release(s);
        s->stop_body = true;
        respond_problem(s, 408, "request_timeout", "request timeout",
                        "the request did not complete in time", -1);
    }
    gw_conn_flush(c);
}

/* ---- nghttp2 callbacks ---------------------------------------------------- */

static struct gw_stream *stream_of(nghttp2_session *h2, int32_t id)
{
    return nghttp2_session_get_stream_user_data(h2, id);
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame, void *ud)
{
    struct gw_conn *c = ud;
    struct gw_stream *s;

    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    s = gw_calloc(1, sizeof *s);
    if (!s)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    s->c = c;
    s->id = frame->hd.stream_id;
    s->content_length = -1;
    pa_buf_init(&s->body, &gw_pa_mem);
    pa_buf_init(&s->resp, &gw_pa_mem);
    s->timer = evtimer_new(c->app->base, on_request_timeout, s);
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->n_streams++;
    if (!s->timer || nghttp2_session_set_stream_user_data(h2, s->id, s) != 0) {
        stream_free(s);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    uint32_t ms = c->app->cfg->request_timeout_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
    return 0;
}

static bool media_type_is_msgpack(const uint8_t *v, size_t len)
{
    size_t b = 0, e = 0;
    while (e < len && v[e] != ';')
        e++;
    while (b < e && (v[b] == ' ' || v[b] == '\t'))
        b++;
    while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t'))
        e--;
    return e - b == 19 && strncasecmp((const char *)v + b, "application/msgpack", 19) == 0;
}

static bool name_is(const uint8_t *name, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(name, want, len) == 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud)
{
    struct gw_conn *c = ud;
    struct gw_stream *s = stream_of(h2, frame->hd.stream_id);
    (void)flags;

    if (!s || s->state != ST_HEADERS)
        return 0; /* trailers, or already answered */
    /* RFC 9113 6.5.2: name + value + 32 per field */
    s->header_bytes += (uint32_t)(namelen + valuelen + 32);
    if (s->header_bytes > c->app->cfg->max_header_list_size) {
        s->headers_too_big = true;
        return 0;
    }
    if (name_is(name, namelen, ":method")) {
        s->is_post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
        s->is_head = valuelen == 4 && memcmp(value, "HEAD", 4) == 0;
    } else if (name_is(name, namelen, ":path")) {
        s->path_ok = valuelen == 9 && memcmp(value, "/v1/stats", 9) == 0;
    } else if (name_is(name, namelen, "content-type")) {
        s->ct_ok = media_type_is_msgpack(value, valuelen);
    } else if (name_is(name, namelen, "content-encoding")) {
        if (!(valuelen == 8 && strncasecmp((const char *)value, "identity", 8) == 0))
            s->encoding_bad = true;
    } else if (name_is(name, namelen, "content-length")) {
        /* nghttp2 has already checked it is a number */
        int64_t v = 0;
        for (size_t i = 0; i < valuelen; i++) {
            if (v > (INT64_MAX - 9) / 10) {
                v = INT64_MAX;
                break;
            }
            v = v * 10 + (value[i] - '0');
        }
        s->content_length = v;
    }
    return 0;
}

/* RFC 9113 6.9.2: a SETTINGS_INITIAL_WINDOW_SIZE change that pushes any
 * stream's window past 2^31-1 is a connection error FLOW_CONTROL_ERROR;
 * nghttp2 1.52 only resets the stream.  The windows were noted when the
 * frame began (on_begin_frame). */
static void settings_overflow(nghttp2_session *h2, struct gw_conn *c,
                              const nghttp2_settings *set)
{
    int64_t delta = 0;
    bool changed = false;

    for (size_t i = 0; i < set->niv; i++) {
        if (set->iv[i].settings_id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE) {
            delta = (int64_t)set->iv[i].value - c->init_win_before;
            changed = true;
        }
    }
    if (!changed || delta <= 0)
        return;
    for (struct gw_stream *s = c->streams; s; s = s->next) {
        if (s->win_before >= 0 && s->win_before + delta > NGHTTP2_MAX_WINDOW_SIZE) {
            nghttp2_session_terminate_session(h2, NGHTTP2_FLOW_CONTROL_ERROR);
            return;
        }
    }
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *ud)
{
    struct gw_conn *c = ud;
    struct gw_stream *s;

    gw_conn_touch(c);
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK))
        settings_overflow(h2, c, &frame->settings);
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    s = stream_of(h2, frame->hd.stream_id);
    if (!s)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && s->state == ST_HEADERS &&
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        int rv = check_headers(s);
        if (rv != 0)
            return to_nghttp2(rv);
    }
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        return to_nghttp2(request_done(s));
    return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *ud)
{
    struct gw_conn *c = ud;
    struct gw_stream *s = stream_of(h2, stream_id);
    const struct gw_config *cfg = c->app->cfg;
    char detail[96];
    (void)flags;

    if (!s)
        return 0;
    if (s->state == ST_ANSWERED && !s->req_done && !s->stop_body) {
        /* answered at the headers (404, 415, ...): the body is read and
         * dropped like any other (RFC 9113 8.1), up to one body's worth */
        s->discarded += len;
        if (s->discarded > cfg->max_body_bytes) {
            s->stop_body = true;
            nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_NO_ERROR);
        }
        return 0;
    }
    if (s->state != ST_BODY)
        return 0;
    if (s->body.len + len > cfg->max_body_bytes) {
        body_release(s);
        s->stop_body = true;
        snprintf(detail, sizeof detail, "body larger than %zu bytes", cfg->max_body_bytes);
        return to_nghttp2(respond_problem(s, 413, "frame:too_big",
                                          pa_frame_strerror(PA_FE_TOO_BIG), detail, -1));
    }
    bool gateway_wide = false;
    int rv = body_append(s, data, len, cfg->max_body_bytes, &gateway_wide);
    if (rv == GW_EFULL) {
        body_release(s);
        s->stop_body = true;
        return to_nghttp2(respond_problem(s, 503, "overloaded", "too many bodies in flight",
                                          gateway_wide
                                              ? "the gateway buffers too much; retry with the "
                                                "same seq"
                                              : "this connection buffers too much; retry with "
                                                "the same seq",
                                          -1));
    }
    /* out of memory for one body: that stream is answered 503 and the
     * rest of its body dropped, the connection goes on.  (A
     * TEMPORAL_CALLBACK_FAILURE from this callback does not reset the
     * stream: nghttp2 would go on and hand over the next chunks, and the
     * body, one chunk short, would be decoded and answered 400.) */
    if (rv != 0) {
        body_release(s);
        s->stop_body = true;
        return to_nghttp2(respond_problem(s, 503, "overloaded", "out of memory",
                                          "retry with the same seq", -1));
    }
    return 0;
}

/* nghttp2 1.52 ignores a HEADERS frame whose stream id is lower than the
 * last one the client used.  RFC 9113 5.1.1 tells two cases apart: an id
 * the client skipped (never opened) is an unexpected stream identifier, a
 * connection error PROTOCOL_ERROR; an id it used before is a closed stream,
 * which nghttp2 already handles.  Skipped ids are kept as ranges; clients
 * number their streams consecutively, so there are few. */
static int on_begin_frame(nghttp2_session *h2, const nghttp2_frame_hd *hd, void *ud)
{
    struct gw_conn *c = ud;
    int32_t id = hd->stream_id;

    if (hd->type == NGHTTP2_SETTINGS && !(hd->flags & NGHTTP2_FLAG_ACK)) {
        /* see settings_overflow() */
        c->init_win_before = (int32_t)nghttp2_session_get_remote_settings(
            h2, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
        for (struct gw_stream *s = c->streams; s; s = s->next)
            s->win_before = nghttp2_session_get_stream_remote_window_size(h2, s->id);
        return 0;
    }
    if (hd->type != NGHTTP2_HEADERS || id <= 0 || (id & 1) == 0)
        return 0;
    if (id > c->last_client_sid) {
        int32_t next = c->last_client_sid + 2;
        if (c->last_client_sid == 0)
            next = 1;
        if (id > next && c->n_sid_gaps < sizeof c->sid_gaps / sizeof c->sid_gaps[0]) {
            c->sid_gaps[c->n_sid_gaps].lo = next;
            c->sid_gaps[c->n_sid_gaps].hi = id - 2;
            c->n_sid_gaps++;
        }
        c->last_client_sid = id;
        return 0;
    }
    for (unsigned i = 0; i < c->n_sid_gaps; i++) {
        if (id >= c->sid_gaps[i].lo && id <= c->sid_gaps[i].hi) {
            nghttp2_session_terminate_session(h2, NGHTTP2_PROTOCOL_ERROR);
            return 0;
        }
    }
    return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *frame, void *ud)
{
    struct gw_stream *s;
    (void)ud;

    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    s = stream_of(h2, frame->hd.stream_id);
    /* a body too large, or too slow, is still coming: ask the agent to stop
     * sending (RFC 9113 8.1); other early answers let the request finish */
    if (s && !s->req_done && s->stop_body)
        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code,
                           void *ud)
{
    struct gw_stream *s = stream_of(h2, stream_id);
    (void)error_code;
    (void)ud;

    if (s) {
        nghttp2_session_set_stream_user_data(h2, stream_id, NULL);
        stream_free(s);
    }
    return 0;
}

/* nghttp2's own allocations go through alloc.h too, so a failure sweep
 * covers them and the session's memory is the gateway's to count. */
static void *mem_malloc(size_t n, void *ud)
{
    (void)ud;
    return gw_malloc(n);
}

static void mem_free(void *p, void *ud)
{
    (void)ud;
    gw_free(p);
}

static void *mem_calloc(size_t count, size_t size, void *ud)
{
    (void)ud;
    return gw_calloc(count, size);
}

static void *mem_realloc(void *p, size_t n, void *ud)
{
    (void)ud;
    return gw_realloc(p, n);
}

static nghttp2_mem h2_mem = {NULL, mem_malloc, mem_free, mem_calloc, mem_realloc};

int gw_h2_session_new(struct gw_conn *c)
{
    const struct gw_config *cfg = c->app->cfg;
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    int rv = GW_ENOMEM;

    if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0)
        goto out;
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);

    nghttp2_option_set_stream_reset_rate_limit(opt, cfg->stream_reset_burst,
                                               cfg->stream_reset_rate);
    nghttp2_option_set_max_continuations(opt, cfg->max_continuations);
    /* the peer's own SETTINGS_MAX_CONCURRENT_STREAMS is irrelevant: a
     * server never opens streams (no push) */

    if ((rv = from_nghttp2(nghttp2_session_server_new3(&c->h2, cbs, c, opt, &h2_mem))) != 0)
        goto out;

    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg->initial_window_size},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg->max_header_list_size},
    };
    if ((rv = from_nghttp2(nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv,
                                                   sizeof iv / sizeof iv[0]))) != 0)
        goto out;
    /* let a whole frame's body flow on the connection without waiting for
     * WINDOW_UPDATE round trips */
    if ((rv = from_nghttp2(nghttp2_session_set_local_window_size(
             c->h2, NGHTTP2_FLAG_NONE, 0, (int32_t)cfg->initial_window_size))) != 0)
        goto out;
    rv = 0;
out:
    if (rv != 0 && c->h2) {
        nghttp2_session_del(c->h2);
        c->h2 = NULL;
    }
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    return rv;
}
