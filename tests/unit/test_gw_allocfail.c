/*
 * test_gw_allocfail.c - allocation-failure sweeps over the gateway core
 * (issue 11): each operation below runs with the nth gw_malloc / gw_calloc
 * / gw_realloc failing (base/alloc.h), for n = 1, 2, 3, ... until a run
 * reaches the end without the injected failure having happened.  Every run
 * must end cleanly: the operation returns GW_ENOMEM (or refuses on the
 * wire: a 503, an ended HTTP/2 session, a frame reported FAILED), leaves no
 * half-built object behind, leaks nothing (make sanitize runs this under
 * LeakSanitizer), and what survives it still works.
 *
 * The operations are real ones on real inputs:
 *   config    gw_config_defaults + gw_config_load of a file with strings
 *             and [ratelimit.server] sections
 *   registry  gw_registry_load of a temporary SQLite registry with three
 *             servers (registered with gw_regdb_register)
 *   reduce    pa_frame_decode of a Nimble-style frame into an arena on
 *             gw_pa_mem, gw_privacy_reduce, gw_privacy_encode,
 *             gw_samples_build (what h2.c does to a body)
 *   h2        one connection's nghttp2 session (gw_h2_session_new) fed a
 *             request made by an nghttp2 client, as fuzz_gw_h2.c drives it,
 *             with a stand-in sink that stores at once
 *   sink      gw_sink_new on the SQLite backend (temporary file, samples
 *             on), gw_sink_item_new, submit, the commit on the writer
 *             thread, and the done callback on the loop
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <nghttp2/nghttp2.h>

#include "alloc.h"
#include "config.h"
#include "gw.h"
#include "log.h"
#include "privacy.h"
#include "regdb.h"
#include "registry.h"
#include "samples.h"
#include "sink.h"
#include "testutil.h"

/* A sweep that has not ended by then is a bug of its own. */
#define MAX_RUNS 20000

static char g_dir[64];

static void path_in_dir(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", g_dir, name);
}

/* A Nimble-style frame, encoded (with the C library's allocator: it is the
 * input, not the code under test). */
static void nimble_body(struct pa_buf *out, uint32_t n_conns, uint64_t seed)
{
    struct pa_arena a;
    pa_arena_init(&a, 0, NULL);
    pa_buf_init(out, NULL);
    struct pa_frame *f = tu_frame_nimble(&a, n_conns, seed);
    assert_int_equal(pa_frame_encode(f, out), 0);
    pa_arena_cleanup(&a);
}

/* Runs |op| with allocation n failing, n = 1, 2, ...: |op| returns whether
 * the injected failure happened in it (gw_alloc_injected() read before it
 * disarms) and checks the rest itself.  Returns the number of allocations
 * the operation needs. */
typedef bool (*op_fn)(long n, void *ud);

static long sweep(const char *name, op_fn op, void *ud)
{
    long n;
    for (n = 1; n <= MAX_RUNS; n++) {
        if (!op(n, ud))
            break;
    }
    assert_true(n <= MAX_RUNS);
    print_message("%s: %ld allocation(s), each failed once\n", name, n - 1);
    assert_true(n > 1); /* it allocates: the sweep tested something */
    return n - 1;
}

/* Arms the switch; returns whether it fired, and disarms. */
static bool disarm(void)
{
    bool fired = gw_alloc_injected() != 0;
    gw_alloc_fail_nth(0);
    return fired;
}

/* ---- config -------------------------------------------------------------- */

static const char config_text[] =
    "[server]\n"
    "listen = 127.0.0.1:8443\n"
    "[tls]\n"
    "cert_file = /etc/panelgate/gateway.crt\n"
    "key_file = /etc/panelgate/gateway.key\n"
    "client_ca_file = /etc/panelgate/agent-ca.crt\n"
    "[storage]\n"
    "sqlite_path = /var/lib/panelgate/pg.db\n"
    "queue_max_frames = 100\n"
    "batch_max_frames = 50\n"
    "[registry]\n"
    "registry_path = /var/lib/panelgate/registry.db\n"
    "[ratelimit]\n"
    "frames_per_s = 7\n"
    "[ratelimit.wowza]\n"
    "frames_per_s = 10\n"
    "[ratelimit.server edge-fra-01]\n"
    "frames_per_s = 50\n"
    "frames_burst = 200\n"
    "[ratelimit.server edge-fra-02]\n"
    "frames_per_s = 51\n"
    "[ratelimit.server edge-fra-03]\n"
    "frames_burst = 300\n"
    "[ratelimit.server edge-fra-04]\n"
    "frames_burst = 301\n"
    "[ratelimit.server edge-fra-05]\n"
    "frames_burst = 302\n"
    "[admin]\n"
    "listen = 127.0.0.1:8445\n";

static bool op_config(long n, void *ud)
{
    const char *path = ud;
    struct gw_config c;
    char err[512] = "";

    memset(&c, 0, sizeof c);
    gw_alloc_fail_nth(n);
    int rv = gw_config_defaults(&c);
    if (rv == 0)
        rv = gw_config_load(&c, path, err, sizeof err);
    bool fired = disarm();
    if (!fired) {
        assert_int_equal(rv, 0);
        assert_string_equal(c.sqlite_path, "/var/lib/panelgate/pg.db");
        assert_int_equal(c.n_rl_servers, 5);
    } else {
        if (rv != GW_ENOMEM)
            fail_msg("allocation %ld: gw_config_load returned %d (%s), not GW_ENOMEM", n, rv,
                     err);
    }
    gw_config_cleanup(&c);

    /* the struct is reusable after a cleanup */
    memset(&c, 0, sizeof c);
    assert_int_equal(gw_config_defaults(&c), 0);
    if (gw_config_load(&c, path, err, sizeof err) != 0)
        fail_msg("gw_config_load after a failure: %s", err);
    gw_config_cleanup(&c);
    return fired;
}

static void test_config(void **state)
{
    (void)state;
    char path[128];
    path_in_dir(path, sizeof path, "panelgate.conf");
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(config_text, fp);
    fclose(fp);
    sweep("config", op_config, path);
    unlink(path);
}

/* ---- registry -------------------------------------------------------------- */

static bool op_registry(long n, void *ud)
{
    const char *path = ud;
    struct gw_registry *r = (struct gw_registry *)(uintptr_t)1;
    char err[512] = "";

    gw_alloc_fail_nth(n);
    int rv = gw_registry_load(path, &r, err, sizeof err);
    bool fired = disarm();
    if (!fired || rv == 0) {
        if (rv != 0)
            fail_msg("allocation %ld: gw_registry_load: %d %s", n, rv, err);
        assert_int_equal(gw_registry_count(r), 3);
        gw_registry_unref(r);
    } else {
        if (rv != GW_ENOMEM)
            fail_msg("allocation %ld: gw_registry_load returned %d (%s), not GW_ENOMEM", n, rv,
                     err);
        assert_null(r);
        assert_true(err[0] != '\0');
    }
    return fired;
}

static void test_registry(void **state)
{
    (void)state;
    char path[128], err[256] = "";
    sqlite3 *db = NULL;
    path_in_dir(path, sizeof path, "registry.db");
    assert_int_equal(gw_regdb_open(path, 1, &db, err, sizeof err), 0);
    static const char *const names[] = {"nimble-edge-01", "wowza-origin-01", "nimble-edge-02"};
    for (size_t i = 0; i < TU_ARRAY_LEN(names); i++) {
        uint8_t spki[GW_SPKI_LEN];
        memset(spki, (int)(i + 1), sizeof spki);
        if (gw_regdb_register(db, names[i], i == 1 ? "wowza" : "nimble", spki, "test", NULL,
                              1732838400000 + (int64_t)i, NULL, err, sizeof err) != 0)
            fail_msg("register: %s", err);
    }
    sqlite3_close(db);
    sweep("registry", op_registry, path);
}

/* ---- decode + privacy reduction + samples ----------------------------------- */

static bool op_reduce(long n, void *ud)
{
    const struct pa_buf *body = ud;
    struct pa_arena a;
    struct pa_buf stored;
    struct pa_frame *f = NULL;
    struct gw_viewers v;
    struct gw_samples *sm = NULL;

    pa_arena_init(&a, 0, &gw_pa_mem);
    pa_buf_init(&stored, &gw_pa_mem);
    gw_alloc_fail_nth(n);
    int rv = pa_frame_decode(body->data, body->len, NULL, &a, &f, NULL);
    if (rv == PA_FE_NOMEM)
        rv = GW_ENOMEM;
    else if (rv == 0)
        rv = gw_privacy_reduce(NULL, f->conns, f->n_conns, &a, &v);
    if (rv == 0)
        rv = gw_privacy_encode(f, &v, &stored);
    if (rv == 0)
        rv = gw_samples_build(f, &v, &sm);
    bool fired = disarm();
    if (!fired) {
        assert_int_equal(rv, 0);
        assert_true(stored.len > 0);
        assert_non_null(sm);
        assert_true(sm->n_viewers > 0);
    } else {
        if (rv != GW_ENOMEM)
            fail_msg("allocation %ld: returned %d, not GW_ENOMEM", n, rv);
        assert_null(sm);
    }
    gw_free(sm);
    pa_buf_cleanup(&stored);
    pa_arena_cleanup(&a);
    return fired;
}

static void test_reduce(void **state)
{
    (void)state;
    struct pa_buf body;
    nimble_body(&body, 40, 7);
    sweep("reduce", op_reduce, &body);
    pa_buf_cleanup(&body);
}

/* ---- one HTTP/2 connection ------------------------------------------------- */

/* The stand-in sink: stores every frame at once (writer thread). */
static atomic_int g_stub_items;

static int stub_open(void **state, const struct gw_config *cfg, char *err, size_t errlen)
{
    (void)cfg;
    (void)err;
    (void)errlen;
    *state = NULL;
    return 0;
}

static int stub_write(void *state, struct gw_sink_item **items, size_t n)
{
    (void)state;
    for (size_t i = 0; i < n; i++)
        items[i]->status = GW_SINK_STORED;
    atomic_fetch_add(&g_stub_items, (int)n);
    return 0;
}

static void stub_close(void *state)
{
    (void)state;
}

static const struct gw_sink_ops stub_ops = {
    .name = "stub", .open = stub_open, .write_batch = stub_write, .close = stub_close};

struct h2fx {
    struct gw_app app;
    struct pa_buf body;
};

/* The agent's side: an nghttp2 client that writes the request and reads
 * the answer's :status. */
struct client {
    nghttp2_session *h2;
    const struct pa_buf *body;
    size_t off;
    int status;
    bool closed; /* GOAWAY or RST_STREAM from the gateway */
};

static ssize_t client_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                           size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                           void *user_data)
{
    struct client *cl = user_data;
    size_t left = cl->body->len - cl->off, k = left < length ? left : length;
    (void)session;
    (void)stream_id;
    (void)source;
    memcpy(buf, cl->body->data + cl->off, k);
    cl->off += k;
    if (cl->off == cl->body->len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)k;
}

static int client_header(nghttp2_session *session, const nghttp2_frame *frame,
                         const uint8_t *name, size_t namelen, const uint8_t *value,
                         size_t valuelen, uint8_t flags, void *user_data)
{
    struct client *cl = user_data;
    (void)session;
    (void)frame;
    (void)flags;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0 && valuelen == 3)
        cl->status = atoi((const char *)value);
    return 0;
}

static int client_frame(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct client *cl = user_data;
    (void)session;
    if (frame->hd.type == NGHTTP2_GOAWAY || frame->hd.type == NGHTTP2_RST_STREAM)
        cl->closed = true;
    return 0;
}

static void client_new(struct client *cl, const struct pa_buf *body, struct pa_buf *wire)
{
    nghttp2_session_callbacks *cbs;
    memset(cl, 0, sizeof *cl);
    cl->body = body;
    assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
    nghttp2_session_callbacks_set_on_header_callback(cbs, client_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, client_frame);
    assert_int_equal(nghttp2_session_client_new(&cl->h2, cbs, cl), 0);
    nghttp2_session_callbacks_del(cbs);
    assert_int_equal(nghttp2_submit_settings(cl->h2, NGHTTP2_FLAG_NONE, NULL, 0), 0);
    char len[24];
    snprintf(len, sizeof len, "%zu", body->len);
    const nghttp2_nv nva[] = {
#define CNV(n, v) {(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE}
        CNV(":method", "POST"),
        CNV(":scheme", "https"),
        CNV(":authority", "gateway.example.net"),
        CNV(":path", "/v1/stats"),
        CNV("content-type", "application/msgpack"),
        CNV("content-length", len),
#undef CNV
    };
    nghttp2_data_provider prd = {.source.ptr = NULL, .read_callback = client_read};
    assert_true(nghttp2_submit_request(cl->h2, NULL, nva, TU_ARRAY_LEN(nva), &prd, NULL) > 0);
    pa_buf_init(wire, NULL);
    for (;;) {
        const uint8_t *p;
        ssize_t k = nghttp2_session_mem_send(cl->h2, &p);
        assert_true(k >= 0);
        if (k == 0)
            break;
        assert_int_equal(pa_buf_append(wire, p, (size_t)k), 0);
    }
    assert_int_equal(cl->off, body->len); /* the whole body fits the window */
}

static void noop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Runs |base| until *counter reaches |target| (10 s at most). */
static void loop_until(struct event_base *base, atomic_int *counter, int target)
{
    double deadline = now_s() + 10;
    struct event *t = event_new(base, -1, EV_PERSIST, noop, NULL);
    struct timeval tv = {0, 1000};
    assert_non_null(t);
    assert_int_equal(event_add(t, &tv), 0);
    while (atomic_load(counter) < target && now_s() <= deadline)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
}

/* One connection: the request in, whatever the session answers out.
 * Returns 0 (stored), the :status of an answer, -1 when the session
 * failed (the connection would be closed), -2 when the stream was reset
 * or the connection sent GOAWAY without answering, or a GW_E* code from
 * gw_h2_session_new. */
static int h2_once(struct h2fx *x, long n)
{
    struct client cl;
    struct pa_buf wire;
    struct gw_conn *c = calloc(1, sizeof *c);
    int result = 0;

    assert_non_null(c);
    client_new(&cl, &x->body, &wire);
    c->app = &x->app;
    c->id = 1;
    c->fd = -1;
    c->state = GW_CONN_H2;
    c->server_id = 1;
    pa_buf_init(&c->out, &gw_pa_mem);
    c->timer = evtimer_new(x->app.base, noop, c);
    assert_non_null(c->timer);
    int before = atomic_load(&g_stub_items);

    gw_alloc_fail_nth(n);
    int rv = gw_h2_session_new(c);
    if (rv != 0) {
        assert_null(c->h2);
        result = rv;
        goto out;
    }
    if (nghttp2_session_mem_recv(c->h2, wire.data, wire.len) != (ssize_t)wire.len) {
        result = -1;
    } else {
        /* what conn.c would write: the answers so far */
        for (;;) {
            const uint8_t *p;
            ssize_t k = nghttp2_session_mem_send(c->h2, &p);
            if (k < 0) {
                result = -1;
                break;
            }
            if (k == 0)
                break;
            assert_int_equal(nghttp2_session_mem_recv(cl.h2, p, (size_t)k), k);
        }
    }
    if (result == 0 && cl.status != 0)
        result = cl.status;
    if (result == 0 && cl.closed)
        result = -2; /* RST_STREAM or GOAWAY without an answer */
out:
    /* as gw_conn_close does: detach in-flight items, then free (the 202
     * itself would go out through TLS, which this test leaves out) */
    gw_h2_streams_free(c);
    nghttp2_session_del(c->h2);
    event_free(c->timer);
    pa_buf_cleanup(&c->out);
    free(c);
    if (result == 0) {
        /* neither answered nor failed: the frame must be with the sink */
        loop_until(x->app.base, &g_stub_items, before + 1);
        if (atomic_load(&g_stub_items) != before + 1)
            fail_msg("allocation %ld: the request got no answer and the sink no frame", n);
    }
    event_base_loop(x->app.base, EVLOOP_NONBLOCK);
    nghttp2_session_del(cl.h2);
    pa_buf_cleanup(&wire);
    return result;
}

static bool op_h2(long n, void *ud)
{
    struct h2fx *x = ud;
    int result = h2_once(x, n);
    bool fired = disarm();
    if (!fired) {
        if (result != 0)
            fail_msg("no failure injected, yet the request ended with %d", result);
    } else if (result != 0 && result != 503 && result != -1 && result != -2 &&
               result != GW_ENOMEM) {
        fail_msg("allocation %ld: the request ended with %d, not stored, 503, a reset, a "
                 "failed session or GW_ENOMEM",
                 n, result);
    }
    /* the gateway goes on: the next connection is served */
    assert_int_equal(h2_once(x, 0), 0);
    assert_int_equal(x->app.body_bytes, 0);
    return fired;
}

static void test_h2(void **state)
{
    (void)state;
    struct h2fx *x = calloc(1, sizeof *x);
    char err[256];
    assert_non_null(x);
    x->app.base = event_base_new();
    x->app.cfg = calloc(1, sizeof *x->app.cfg);
    assert_non_null(x->app.base);
    assert_non_null(x->app.cfg);
    assert_int_equal(gw_config_defaults(x->app.cfg), 0);
    x->app.cfg->store_samples = true;
    if (gw_sink_new(&x->app.sink, x->app.base, &stub_ops, x->app.cfg, err, sizeof err) != 0)
        fail_msg("gw_sink_new: %s", err);
    nimble_body(&x->body, 20, 3);

    sweep("h2", op_h2, x);

    gw_sink_free(x->app.sink);
    gw_config_cleanup(x->app.cfg);
    free(x->app.cfg);
    event_base_free(x->app.base);
    pa_buf_cleanup(&x->body);
    free(x);
}

/* ---- the sink, on SQLite ------------------------------------------------- */

struct sinkfx {
    struct gw_config cfg;
    struct event_base *base;
    struct pa_buf body;
    uint64_t next_seq;
    atomic_int done;
    enum gw_sink_status last;
};

static void on_done(struct gw_sink_item *it, void *ud)
{
    struct sinkfx *x = ud;
    x->last = it->status;
    atomic_fetch_add(&x->done, 1);
}

/* An item for the fixture's frame with its samples, or NULL when an
 * allocation failed (nothing is left allocated then). */
static struct gw_sink_item *sink_item(struct sinkfx *x)
{
    struct pa_arena a;
    struct pa_frame *f = NULL;
    struct gw_viewers v;
    struct gw_samples *sm = NULL;
    struct gw_sink_item *it = NULL;

    pa_arena_init(&a, 0, NULL);
    assert_int_equal(pa_frame_decode(x->body.data, x->body.len, NULL, &a, &f, NULL), 0);
    assert_int_equal(gw_privacy_reduce(NULL, f->conns, f->n_conns, &a, &v), 0);
    if (gw_samples_build(f, &v, &sm) == 0) {
        it = gw_sink_item_new(f->server.name, x->body.data, x->body.len);
        if (!it) {
            gw_free(sm);
        } else {
            it->samples = sm;
            it->server_id = 1;
            it->seq = ++x->next_seq;
            it->ts_ms = 1732838400000ull + it->seq;
            it->received_ms = 1732838400123;
            it->done = on_done;
            it->ud = x;
        }
    }
    pa_arena_cleanup(&a);
    return it;
}

/* Submits one item and runs the loop until it is done; returns its status
 * or -1 when it could not be made or queued. */
static int sink_store_one(struct sinkfx *x, struct gw_sink *s)
{
    struct gw_sink_item *it = sink_item(x);
    if (!it)
        return -1;
    if (gw_sink_submit(s, it) != 0) {
        gw_sink_item_free(it);
        return -1;
    }
    int target = atomic_load(&x->done) + 1;
    loop_until(x->base, &x->done, target);
    assert_int_equal(atomic_load(&x->done), target);
    return (int)x->last;
}

static bool op_sink(long n, void *ud)
{
    struct sinkfx *x = ud;
    struct gw_sink *s = NULL;
    char err[512] = "";
    int st = -2;

    gw_alloc_fail_nth(n);
    int rv = gw_sink_new(&s, x->base, &gw_sink_sqlite_ops, &x->cfg, err, sizeof err);
    if (rv == 0)
        st = sink_store_one(x, s);
    bool fired = disarm();
    if (!fired) {
        if (rv != 0)
            fail_msg("gw_sink_new: %d %s", rv, err);
        assert_int_equal(st, GW_SINK_STORED);
    } else if (rv != 0) {
        if (rv != GW_ENOMEM)
            fail_msg("allocation %ld: gw_sink_new returned %d (%s), not GW_ENOMEM", n, rv, err);
        assert_null(s);
    } else if (st != GW_SINK_STORED && st != GW_SINK_FAILED && st != -1) {
        fail_msg("allocation %ld: the item ended %d, not stored, failed or refused", n, st);
    }
    /* the sink (or a new one) stores the next frame */
    if (!s) {
        if (gw_sink_new(&s, x->base, &gw_sink_sqlite_ops, &x->cfg, err, sizeof err) != 0)
            fail_msg("gw_sink_new after the failure: %s", err);
    }
    assert_int_equal(sink_store_one(x, s), GW_SINK_STORED);
    gw_sink_free(s);
    return fired;
}

static void test_sink(void **state)
{
    (void)state;
    struct sinkfx *x = calloc(1, sizeof *x);
    char path[128];
    assert_non_null(x);
    assert_int_equal(gw_config_defaults(&x->cfg), 0);
    path_in_dir(path, sizeof path, "pg.db");
    gw_free(x->cfg.sqlite_path);
    x->cfg.sqlite_path = gw_strdup(path);
    x->cfg.store_samples = true;
    x->cfg.busy_timeout_ms = 5000;
    x->base = event_base_new();
    assert_non_null(x->base);
    nimble_body(&x->body, 30, 11);
    {
        /* the backend stores frames of registered servers only: id 1 */
        sqlite3 *rdb = NULL;
        char rerr[256];
        assert_int_equal(sqlite3_open(path, &rdb), SQLITE_OK);
        assert_int_equal(gw_registry_schema(rdb, rerr, sizeof rerr), 0);
        assert_int_equal(sqlite3_exec(rdb,
                                      "INSERT INTO servers(id, name, kind, created_at)"
                                      " VALUES(1, 'nimble-edge-01', 'nimble', 0)",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(rdb);
    }

    sweep("sink", op_sink, x);

    /* every frame reported STORED is in the file */
    sqlite3 *db;
    sqlite3_stmt *stq;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM frames", -1, &stq, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(stq), SQLITE_ROW);
    assert_true(sqlite3_column_int64(stq, 0) > 0);
    sqlite3_finalize(stq);
    sqlite3_close(db);

    event_base_free(x->base);
    gw_config_cleanup(&x->cfg);
    pa_buf_cleanup(&x->body);
    free(x);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "gwallocfail.XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    if (evthread_use_pthreads() != 0) {
        fprintf(stderr, "evthread_use_pthreads failed\n");
        return 1;
    }
    gw_log_set_level(GW_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_reduce),
        cmocka_unit_test(test_h2),
        cmocka_unit_test(test_sink),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    libevent_global_shutdown();
    return rc;
}
