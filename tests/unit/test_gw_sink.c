/*
 * test_gw_sink.c - the sink queue and writer thread (gateway/storage/sink.h)
 * and the SQLite backend, with a real event loop and real SQLite files.
 *
 * Two backends:
 *   - gw_sink_sqlite_ops itself (or wrapped to count write_batch calls, or
 *     behind the stub's gate, to decide what one batch holds);
 *   - a stub, in this file only, whose write_batch blocks on a gate: a test
 *     double that makes the queue's bounds deterministic.
 *
 * libevent locking is switched on in main() before any event_base exists,
 * as sink.h requires; SQLite's allocator is wrapped there too (before
 * SQLite initialises), so that a test can make it fail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "clock.h"
#include "config.h"
#include "registry.h"
#include "sink.h"
#include "testutil.h"

#define MAX_SEQ 4096

struct fx {
    char dir[64];
    char path[128];
    struct gw_config cfg;
    struct event_base *base;
    pthread_t loop_thread;
    /* touched by done callbacks, i.e. on the loop thread only */
    int done;
    int n_status[5]; /* STORED, DUPLICATE, FAILED, REJECTED, refused (server
                        erased or revoked) */
    int wrong_thread;
    int status_of[MAX_SEQ];
};

static int status_idx(enum gw_sink_status s)
{
    if (s == GW_SINK_UNREGISTERED || s == GW_SINK_REVOKED)
        return 4;
    return s == GW_SINK_STORED ? 0 : s == GW_SINK_DUPLICATE ? 1 : s == GW_SINK_REJECTED ? 3 : 2;
}

/* The registry in |path| with servers 1..64 (the ids the tests store
 * under): the SQLite backend stores frames of registered servers only. */
static int register_servers(const char *path)
{
    sqlite3 *db = NULL;
    char err[256];
    int rc = sqlite3_open(path, &db) == SQLITE_OK && gw_registry_schema(db, err, sizeof err) == 0 &&
             sqlite3_exec(db,
                          "WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i"
                          " WHERE x < 64) INSERT OR IGNORE INTO servers(id, name, kind,"
                          " created_at) SELECT x, 'host-' || x, 'nimble', 0 FROM i",
                          NULL, NULL, NULL) == SQLITE_OK
                 ? 0
                 : -1;
    sqlite3_close(db);
    return rc;
}

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "gwsink.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof f->path, "%s/pg.db", f->dir);
    f->cfg.sqlite_path = f->path;
    f->cfg.sqlite_synchronous = GW_SYNC_FULL;
    f->cfg.queue_max_frames = 4096;
    f->cfg.queue_max_bytes = 64u << 20;
    f->cfg.batch_max_frames = 512;
    f->cfg.busy_timeout_ms = 5000;
    f->cfg.registry_path = NULL;
    f->base = event_base_new();
    if (f->base == NULL)
        return -1;
    f->loop_thread = pthread_self();
    for (int i = 0; i < MAX_SEQ; i++)
        f->status_of[i] = 99;
    if (register_servers(f->path) != 0)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    char p[192];
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < TU_ARRAY_LEN(sfx); i++) {
        snprintf(p, sizeof p, "%s%s", f->path, sfx[i]);
        unlink(p);
        snprintf(p, sizeof p, "%s/reg.db%s", f->dir, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    event_base_free(f->base);
    free(f);
    return 0;
}

static void on_done(struct gw_sink_item *it, void *ud)
{
    struct fx *f = ud;
    if (!pthread_equal(pthread_self(), f->loop_thread))
        f->wrong_thread++;
    f->done++;
    f->n_status[status_idx(it->status)]++;
    if (it->seq < MAX_SEQ)
        f->status_of[it->seq] = it->status;
}

static struct gw_sink_item *item(struct fx *f, int64_t server, uint64_t seq, size_t len)
{
    uint8_t body[2048];
    assert_true(len <= sizeof body);
    for (size_t i = 0; i < len; i++)
        body[i] = (uint8_t)(seq + i);
    char name[64];
    snprintf(name, sizeof name, "host-%lld", (long long)server);
    struct gw_sink_item *it = gw_sink_item_new(name, body, len);
    assert_non_null(it);
    it->server_id = server;
    it->seq = seq;
    it->ts_ms = 1732838400000ull + seq;
    it->received_ms = 1732838400123;
    it->done = on_done;
    it->ud = f;
    return it;
}

static void submit_ok(struct gw_sink *s, struct gw_sink_item *it)
{
    assert_int_equal(gw_sink_submit(s, it), 0);
}

/* ---- running the loop until enough items completed --------------------- */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Runs the loop until |target| items completed or |timeout_ms| passed.  The
 * sink's wake event is never added, so a 1 ms timer keeps the loop alive
 * and bounds each iteration (the gateway has its listeners for that). */
static void run_until(struct fx *f, int target, int timeout_ms)
{
    double deadline = now_s() + timeout_ms / 1e3;
    struct event *t = event_new(f->base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = {0, 1000};
    assert_non_null(t);
    assert_int_equal(event_add(t, &tv), 0);
    while (f->done < target && now_s() <= deadline)
        event_base_loop(f->base, EVLOOP_ONCE);
    event_free(t);
    assert_int_equal(f->done, target);
}

static struct gw_sink *sink_new(struct fx *f, const struct gw_sink_ops *ops)
{
    struct gw_sink *s = NULL;
    char err[256] = "";
    int rc = gw_sink_new(&s, f->base, ops, &f->cfg, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "gw_sink_new: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(s);
    return s;
}

/* ---- reading the database back ------------------------------------------ */

static int64_t query_i64(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* ---- backends for the thread/queue logic -------------------------------- */

struct stub {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int gate_open;
    int in_write;  /* a batch is inside write_batch */
    int batches;
    int fail;      /* fail every batch while set (statuses left untouched) */
};
static struct stub g_stub;

static int stub_open(void **state, const struct gw_config *cfg, char *err, size_t errlen)
{
    (void)cfg;
    (void)err;
    (void)errlen;
    *state = &g_stub;
    return 0;
}

/* Writer thread: holds the batch until the test opens the gate; returns
 * the fail flag as it was then. */
static int gate_wait(struct stub *b)
{
    pthread_mutex_lock(&b->mu);
    b->in_write = 1;
    pthread_cond_broadcast(&b->cv);
    while (!b->gate_open)
        pthread_cond_wait(&b->cv, &b->mu);
    b->batches++;
    b->in_write = 0;
    int fail = b->fail;
    pthread_mutex_unlock(&b->mu);
    return fail;
}

static int stub_write_batch(void *state, struct gw_sink_item **items, size_t n)
{
    int fail = gate_wait(state);
    for (size_t i = 0; i < n; i++)
        items[i]->status = GW_SINK_STORED; /* a sloppy backend: the sink must
                                              still report FAILED on -1 */
    return fail ? -1 : 0;
}

static void stub_close(void *state)
{
    (void)state;
}

static const struct gw_sink_ops stub_ops = {
    .name = "stub",
    .open = stub_open,
    .write_batch = stub_write_batch,
    .close = stub_close,
};

static void stub_reset(int gate_open)
{
    pthread_mutex_lock(&g_stub.mu);
    g_stub.gate_open = gate_open;
    g_stub.in_write = 0;
    g_stub.batches = 0;
    g_stub.fail = 0;
    pthread_mutex_unlock(&g_stub.mu);
}

static void stub_set(int gate_open, int fail)
{
    pthread_mutex_lock(&g_stub.mu);
    g_stub.gate_open = gate_open;
    g_stub.fail = fail;
    pthread_cond_broadcast(&g_stub.cv);
    pthread_mutex_unlock(&g_stub.mu);
}

static void stub_wait_in_write(void)
{
    pthread_mutex_lock(&g_stub.mu);
    while (!g_stub.in_write)
        pthread_cond_wait(&g_stub.cv, &g_stub.mu);
    pthread_mutex_unlock(&g_stub.mu);
}

/* The real SQLite backend, counting write_batch calls (writer thread only;
 * read after gw_sink_free has joined it). */
static int g_wrap_calls;
static size_t g_wrap_max;

static int wrap_open(void **state, const struct gw_config *cfg, char *err, size_t errlen)
{
    return gw_sink_sqlite_ops.open(state, cfg, err, errlen);
}

static int wrap_write_batch(void *state, struct gw_sink_item **items, size_t n)
{
    g_wrap_calls++;
    if (n > g_wrap_max)
        g_wrap_max = n;
    return gw_sink_sqlite_ops.write_batch(state, items, n);
}

static void wrap_close(void *state)
{
    gw_sink_sqlite_ops.close(state);
}

static const struct gw_sink_ops wrap_ops = {
    .name = "sqlite-counted",
    .open = wrap_open,
    .write_batch = wrap_write_batch,
    .close = wrap_close,
};

/* The real backend behind the stub's gate, so that a test decides what one
 * batch holds: a first item waits at the gate while the next ones queue up
 * behind it and then go to SQLite together. */
static int gated_write_batch(void *state, struct gw_sink_item **items, size_t n)
{
    (void)gate_wait(&g_stub);
    return wrap_write_batch(state, items, n);
}

static const struct gw_sink_ops gated_ops = {
    .name = "sqlite-gated",
    .open = wrap_open,
    .write_batch = gated_write_batch,
    .close = wrap_close,
};

/* SQLite's allocator, wrapped so that a test can make one large allocation
 * fail (SQLITE_NOMEM in the middle of a batch): while g_sqlite_fail_from is
 * not 0, requests of at least that many bytes get NULL.  Installed in
 * main() before SQLite initialises. */
static sqlite3_mem_methods g_sqlite_mem;
static atomic_int g_sqlite_fail_from;

static void *mem_malloc(int n)
{
    int lim = atomic_load(&g_sqlite_fail_from);
    return lim > 0 && n >= lim ? NULL : g_sqlite_mem.xMalloc(n);
}

static void *mem_realloc(void *p, int n)
{
    int lim = atomic_load(&g_sqlite_fail_from);
    return lim > 0 && n >= lim ? NULL : g_sqlite_mem.xRealloc(p, n);
}

static int wrap_sqlite_malloc(void)
{
    static sqlite3_mem_methods m;
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &g_sqlite_mem) != SQLITE_OK)
        return -1;
    m = g_sqlite_mem;
    m.xMalloc = mem_malloc;
    m.xRealloc = mem_realloc;
    return sqlite3_config(SQLITE_CONFIG_MALLOC, &m) == SQLITE_OK ? 0 : -1;
}

/* ------------------------------------------------------------------ tests */

static void test_store_on_loop_thread(void **state)
{
    struct fx *f = *state;
    struct gw_sink *s = sink_new(f, &gw_sink_sqlite_ops);
    for (uint64_t i = 1; i <= 10; i++)
        submit_ok(s, item(f, 7, i, 100 + i));
    /* an empty body is stored as an empty blob, a missing name as NULL */
    struct gw_sink_item *it = gw_sink_item_new(NULL, NULL, 0);
    assert_non_null(it);
    it->server_id = 7;
    it->seq = 11;
    it->done = on_done;
    it->ud = f;
    submit_ok(s, it);
    /* uint64 seq and ts above INT64_MAX keep their bits */
    it = item(f, 8, UINT64_MAX, 10);
    it->ts_ms = UINT64_MAX - 1;
    submit_ok(s, it);
    /* no callback at all is fine too */
    it = item(f, 8, 5, 10);
    it->done = NULL;
    submit_ok(s, it);

    run_until(f, 12, 10000);
    assert_int_equal(f->n_status[0], 12);
    assert_int_equal(f->wrong_thread, 0);
    size_t fr = 99, by = 99;
    /* the done=NULL item may complete after the last callback we waited for */
    for (int i = 0; i < 1000; i++) {
        gw_sink_pending(s, &fr, &by);
        if (fr == 0)
            break;
        usleep(1000);
    }
    assert_int_equal(fr, 0);
    assert_int_equal(by, 0);
    assert_int_equal(gw_sink_failing(s), 0);
    gw_sink_free(s);

    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames"), 13);
    assert_int_equal(query_i64(f->path, "SELECT sum(length(body)) FROM frames WHERE server_id=7"
                                        " AND seq<=10"),
                     1055);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames WHERE seq=3 AND"
                                        " server_id=7 AND ts_ms=1732838400003 AND"
                                        " received_ms=1732838400123 AND"
                                        " reported_name='host-7' AND length(body)=103 AND"
                                        " substr(body,1,3)=x'030405'"),
                     1);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames WHERE seq=11 AND"
                                        " reported_name IS NULL AND typeof(body)='blob'"
                                        " AND length(body)=0"),
                     1);
    assert_int_equal((uint64_t)query_i64(f->path, "SELECT seq FROM frames WHERE server_id=8"
                                                  " AND ts_ms<0"),
                     UINT64_MAX);
    assert_int_equal((uint64_t)query_i64(f->path, "SELECT ts_ms FROM frames WHERE server_id=8"
                                                  " AND seq=-1"),
                     UINT64_MAX - 1);
    /* the backend set the file up as documented */
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM sqlite_master WHERE name IN"
                                        " ('frames','servers','server_pins','activity','meta')"),
                     5);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_duplicates(void **state)
{
    struct fx *f = *state;
    struct gw_sink *s = sink_new(f, &gw_sink_sqlite_ops);

    submit_ok(s, item(f, 1, 5, 50));
    run_until(f, 1, 10000);
    assert_int_equal(f->status_of[5], GW_SINK_STORED);

    /* the same (server, seq) again, twice: acknowledged, not stored */
    struct gw_sink_item *it = item(f, 1, 5, 60);
    it->body[0] = 0xee;
    submit_ok(s, it);
    submit_ok(s, item(f, 1, 5, 50));
    /* (1, 6) twice back to back (often one batch): first stored, second dup */
    submit_ok(s, item(f, 1, 6, 50));
    submit_ok(s, item(f, 1, 6, 50));
    /* the same seq from another server is a different frame */
    submit_ok(s, item(f, 2, 5, 50));
    run_until(f, 6, 10000);
    assert_int_equal(f->n_status[0], 3);
    assert_int_equal(f->n_status[1], 3);
    assert_int_equal(f->n_status[2], 0);
    gw_sink_free(s);

    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames"), 3);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames WHERE server_id=1 AND"
                                        " seq=5 AND length(body)=50 AND"
                                        " substr(body,1,1)=x'05'"),
                     1);
}

static void test_queue_full_by_frames(void **state)
{
    struct fx *f = *state;
    f->cfg.queue_max_frames = 4;
    f->cfg.batch_max_frames = 2;
    stub_reset(0);
    struct gw_sink *s = sink_new(f, &stub_ops);

    for (uint64_t i = 1; i <= 4; i++)
        submit_ok(s, item(f, 1, i, 10));
    stub_wait_in_write(); /* a batch is with the backend: still counted */
    struct gw_sink_item *extra = item(f, 1, 5, 10);
    assert_int_equal(gw_sink_submit(s, extra), GW_EFULL); /* refused, still ours */
    size_t fr, by;
    gw_sink_pending(s, &fr, &by);
    assert_int_equal(fr, 4);
    assert_int_equal(by, 40);

    stub_set(1, 0);
    run_until(f, 4, 10000);
    assert_int_equal(f->n_status[0], 4);
    gw_sink_pending(s, &fr, &by);
    assert_int_equal(fr, 0);
    assert_int_equal(by, 0);

    submit_ok(s, extra); /* room again */
    run_until(f, 5, 10000);
    assert_int_equal(f->n_status[0], 5);
    assert_int_equal(f->wrong_thread, 0);
    gw_sink_free(s);
    pthread_mutex_lock(&g_stub.mu);
    assert_true(g_stub.batches >= 3); /* batches of at most 2 */
    pthread_mutex_unlock(&g_stub.mu);
}

static void test_queue_full_by_bytes(void **state)
{
    struct fx *f = *state;
    f->cfg.queue_max_frames = 100;
    f->cfg.queue_max_bytes = 1000;
    stub_reset(0);
    struct gw_sink *s = sink_new(f, &stub_ops);

    for (uint64_t i = 1; i <= 3; i++)
        submit_ok(s, item(f, 1, i, 300));
    struct gw_sink_item *big = item(f, 1, 4, 300);
    assert_int_equal(gw_sink_submit(s, big), GW_EFULL);
    submit_ok(s, item(f, 1, 5, 100)); /* exactly 1000 */
    struct gw_sink_item *one = item(f, 1, 6, 1);
    assert_int_equal(gw_sink_submit(s, one), GW_EFULL);
    size_t fr, by;
    gw_sink_pending(s, &fr, &by);
    assert_int_equal(fr, 4);
    assert_int_equal(by, 1000);

    stub_set(1, 0);
    run_until(f, 4, 10000);
    /* larger than the whole queue: refused even when empty */
    struct gw_sink_item *huge = item(f, 1, 7, 1001);
    assert_int_equal(gw_sink_submit(s, huge), GW_EFULL);
    gw_sink_item_free(huge);
    submit_ok(s, big);
    submit_ok(s, one);
    run_until(f, 6, 10000);
    assert_int_equal(f->n_status[0], 6);
    gw_sink_free(s);
}

static void test_backend_failure_then_recovery(void **state)
{
    struct fx *f = *state;
    stub_reset(1);
    stub_set(1, 1);
    struct gw_sink *s = sink_new(f, &stub_ops);
    submit_ok(s, item(f, 1, 1, 10));
    submit_ok(s, item(f, 1, 2, 10));
    run_until(f, 2, 10000);
    /* the stub set STORED and returned -1: the sink reports FAILED */
    assert_int_equal(f->n_status[2], 2);
    assert_int_equal(gw_sink_failing(s), 1);

    stub_set(1, 0);
    submit_ok(s, item(f, 1, 1, 10));
    run_until(f, 3, 10000);
    assert_int_equal(f->status_of[1], GW_SINK_STORED);
    assert_int_equal(gw_sink_failing(s), 0);
    gw_sink_free(s);
}

static void test_group_commit(void **state)
{
    struct fx *f = *state;
    g_wrap_calls = 0;
    g_wrap_max = 0;
    struct gw_sink *s = sink_new(f, &wrap_ops);
    for (uint64_t i = 0; i < 1000; i++)
        submit_ok(s, item(f, 3, i, 200));
    run_until(f, 1000, 60000);
    assert_int_equal(f->n_status[0], 1000);
    assert_int_equal(f->wrong_thread, 0);
    gw_sink_free(s);
    /* each commit is an fsync; the queue fills while one is in progress */
    fprintf(stderr, "    group commit: 1000 frames in %d batches (largest %zu)\n",
            g_wrap_calls, g_wrap_max);
    assert_true(g_wrap_calls < 100);
    assert_true(g_wrap_max > 1 && g_wrap_max <= 512);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames"), 1000);
}

/* Root-proof storage failure: another connection holds the write lock, the
 * sink's BEGIN IMMEDIATE times out (SQLITE_BUSY) and the batch fails. */
static void test_storage_failure_busy(void **state)
{
    struct fx *f = *state;
    f->cfg.busy_timeout_ms = 50;
    struct gw_sink *s = sink_new(f, &gw_sink_sqlite_ops);

    sqlite3 *lock;
    assert_int_equal(sqlite3_open(f->path, &lock), SQLITE_OK);
    assert_int_equal(sqlite3_exec(lock, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);

    submit_ok(s, item(f, 9, 1, 10));
    submit_ok(s, item(f, 9, 2, 10));
    run_until(f, 2, 10000);
    assert_int_equal(f->n_status[2], 2);
    assert_int_equal(gw_sink_failing(s), 1);

    assert_int_equal(sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(lock);

    /* the agent retries with the same seq */
    submit_ok(s, item(f, 9, 1, 10));
    run_until(f, 3, 10000);
    assert_int_equal(f->status_of[1], GW_SINK_STORED);
    assert_int_equal(gw_sink_failing(s), 0);
    submit_ok(s, item(f, 9, 1, 10));
    run_until(f, 4, 10000);
    assert_int_equal(f->status_of[1], GW_SINK_DUPLICATE);
    gw_sink_free(s);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames"), 1);
}

static void exec_sql(const char *path, const char *sql)
{
    sqlite3 *db;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
    assert_int_equal(rc, SQLITE_OK);
}

/* Holds the writer at the gate with a first item (seq 1), so that what is
 * submitted next goes to SQLite as one batch once the gate opens. */
static void gate_first(struct fx *f, struct gw_sink *s, int64_t server)
{
    stub_reset(0);
    g_wrap_calls = 0;
    g_wrap_max = 0;
    submit_ok(s, item(f, server, 1, 10));
    stub_wait_in_write();
}

/* One bad row in a batch (a trigger refuses seq 13: SQLITE_CONSTRAINT) is
 * that item's problem alone: it is rejected, the rest of its batch is
 * committed, and storage is not failing. */
static void test_item_rejected_alone(void **state)
{
    struct fx *f = *state;
    struct gw_sink_stats st;
    struct gw_sink *s = sink_new(f, &gated_ops);
    exec_sql(f->path, "CREATE TRIGGER bad_row BEFORE INSERT ON frames WHEN NEW.seq = 13"
                      " BEGIN SELECT RAISE(ABORT, 'test: bad row'); END");

    gate_first(f, s, 5);
    for (uint64_t i = 10; i <= 15; i++)
        submit_ok(s, item(f, 5, i, 100));
    stub_set(1, 0);
    run_until(f, 7, 10000);
    gw_sink_get_stats(s, &st);
    assert_int_equal(gw_sink_failing(s), 0);
    gw_sink_free(s);

    assert_int_equal(g_wrap_calls, 2); /* seq 1, then 10..15 together */
    assert_int_equal(g_wrap_max, 6);
    assert_int_equal(f->status_of[13], GW_SINK_REJECTED);
    for (uint64_t i = 10; i <= 15; i++)
        if (i != 13)
            assert_int_equal(f->status_of[i], GW_SINK_STORED);
    assert_int_equal(f->n_status[0], 6);
    assert_int_equal(f->n_status[3], 1);
    assert_int_equal(st.failing, 0);
    assert_int_equal(st.batches, 2);
    assert_int_equal(st.batch_failures, 0);
    assert_int_equal(st.items_rejected, 1);
    assert_int_equal(st.items_failed, 0);
    assert_int_equal(st.frames_stored, 6);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames WHERE server_id=5 AND"
                                        " seq IN (1, 10, 11, 12, 14, 15)"),
                     6);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames WHERE seq=13"), 0);
}

/* A storage error in the middle of a batch (SQLITE_NOMEM while one item's
 * row is built) is not one item's problem: the whole batch fails, nothing
 * of it is kept, not even a row that was rejected before it, and storage
 * is failing until a batch succeeds.  The trigger also makes SQLite undo
 * only the statement on SQLITE_NOMEM (it has a statement journal), not the
 * transaction: the backend must tell the error apart itself. */
static void test_item_storage_error_fails_batch(void **state)
{
    struct fx *f = *state;
    struct gw_sink_stats st;
    struct gw_sink *s = sink_new(f, &gated_ops);
    size_t big = 2u << 20;
    uint8_t *body = calloc(1, big);
    assert_non_null(body);
    exec_sql(f->path, "CREATE TRIGGER bad_row BEFORE INSERT ON frames WHEN NEW.seq = 13"
                      " BEGIN SELECT RAISE(ABORT, 'test: bad row'); END");

    gate_first(f, s, 6);
    submit_ok(s, item(f, 6, 20, 100));
    submit_ok(s, item(f, 6, 13, 100));
    struct gw_sink_item *it = gw_sink_item_new("host-6", body, big);
    assert_non_null(it);
    it->server_id = 6;
    it->seq = 22;
    it->done = on_done;
    it->ud = f;
    submit_ok(s, it);
    submit_ok(s, item(f, 6, 23, 100));
    atomic_store(&g_sqlite_fail_from, 1 << 20); /* the 2 MiB record */
    stub_set(1, 0);
    run_until(f, 5, 10000);
    atomic_store(&g_sqlite_fail_from, 0);
    gw_sink_get_stats(s, &st);
    assert_int_equal(f->status_of[1], GW_SINK_STORED);
    assert_int_equal(f->status_of[20], GW_SINK_FAILED);
    assert_int_equal(f->status_of[13], GW_SINK_FAILED);
    assert_int_equal(f->status_of[22], GW_SINK_FAILED);
    assert_int_equal(f->status_of[23], GW_SINK_FAILED);
    assert_int_equal(gw_sink_failing(s), 1);
    assert_int_equal(st.failing, 1);
    assert_int_equal(st.batch_failures, 1);
    assert_int_equal(st.items_failed, 4);
    assert_int_equal(st.items_rejected, 0);
    assert_non_null(strstr(st.reason, "out of memory"));

    /* resent, the good frames are stored: storage works again */
    submit_ok(s, item(f, 6, 20, 100));
    submit_ok(s, item(f, 6, 23, 100));
    run_until(f, 7, 10000);
    assert_int_equal(f->status_of[20], GW_SINK_STORED);
    assert_int_equal(f->status_of[23], GW_SINK_STORED);
    assert_int_equal(gw_sink_failing(s), 0);
    gw_sink_free(s);
    free(body);
    assert_int_equal(g_wrap_max, 4);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames WHERE seq IN (13, 22)"), 0);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames"), 3);
}

/* An activity row of |server| (seq only to track it in f->status_of). */
static struct gw_sink_item *activity(struct fx *f, int64_t server, uint64_t seq)
{
    struct gw_sink_item *it = gw_sink_activity_new("disconnected", server, NULL, "{}", 1732838400123);
    assert_non_null(it);
    it->seq = seq;
    it->done = on_done;
    it->ud = f;
    return it;
}

/* Issue 11: a frame whose server was erased (no longer in servers) or
 * revoked by the time its batch commits is refused in that transaction,
 * so nothing is stored under an erased id, nor after a revocation; an
 * activity row of an erased server is refused too, one of a revoked
 * server kept.  |separate|: the registry is a file of its own (attached),
 * and it is that file's servers table that counts, not a stale copy in
 * the frames file. */
static void refusals(struct fx *f, int separate)
{
    struct gw_sink_stats st;
    char reg[192];
    const char *regdb = f->path;
    if (separate) {
        snprintf(reg, sizeof reg, "%s/reg.db", f->dir);
        assert_int_equal(register_servers(reg), 0);
        f->cfg.registry_path = reg;
        regdb = reg;
    }
    struct gw_sink *s = sink_new(f, &gated_ops);
    /* server 7 erased, 8 revoked, 9 untouched */
    exec_sql(regdb, "DELETE FROM servers WHERE id = 7;"
                    " UPDATE servers SET status = 'revoked' WHERE id = 8");
    gate_first(f, s, 9);
    submit_ok(s, item(f, 7, 10, 100));
    submit_ok(s, item(f, 8, 11, 100));
    submit_ok(s, item(f, 9, 12, 100));
    submit_ok(s, activity(f, 7, 13));
    submit_ok(s, activity(f, 8, 14));
    submit_ok(s, item(f, 7, 15, 100));
    submit_ok(s, item(f, 9, 16, 100));
    stub_set(1, 0);
    run_until(f, 8, 10000);
    gw_sink_get_stats(s, &st);
    assert_int_equal(gw_sink_failing(s), 0);
    gw_sink_free(s);

    assert_int_equal(g_wrap_calls, 2); /* seq 1, then 10..16 together */
    assert_int_equal(f->status_of[1], GW_SINK_STORED);
    assert_int_equal(f->status_of[10], GW_SINK_UNREGISTERED);
    assert_int_equal(f->status_of[11], GW_SINK_REVOKED);
    assert_int_equal(f->status_of[12], GW_SINK_STORED);
    assert_int_equal(f->status_of[13], GW_SINK_UNREGISTERED);
    assert_int_equal(f->status_of[14], GW_SINK_STORED);
    assert_int_equal(f->status_of[15], GW_SINK_UNREGISTERED);
    assert_int_equal(f->status_of[16], GW_SINK_STORED);
    assert_int_equal(f->n_status[4], 4);
    assert_int_equal(st.items_refused, 4);
    assert_int_equal(st.items_failed, 0);
    assert_int_equal(st.items_rejected, 0);
    assert_int_equal(st.frames_stored, 3);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames WHERE server_id IN (7, 8)"),
                     0);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames WHERE server_id = 9"), 3);
    assert_int_equal(query_i64(regdb, "SELECT count(*) FROM activity WHERE server_id = 7"), 0);
    assert_int_equal(query_i64(regdb, "SELECT count(*) FROM activity WHERE server_id = 8"), 1);
}

static void test_refused_not_admitted(void **state)
{
    refusals(*state, 0);
}

static void test_refused_not_admitted_own_registry(void **state)
{
    refusals(*state, 1);
}

/* The store consumer's database has no registry (the registry of the
 * scale-out shape is elsewhere): with no_registry_check set in the open
 * options, frames and activity rows of servers the file does not know,
 * erased or revoked are all stored; (server_id, seq) still drops
 * duplicates.  The gateway's default keeps the check (refusals above). */
static void test_registry_check_off(void **state)
{
    struct fx *f = *state;
    struct gw_sink_stats st;
    exec_sql(f->path, "DELETE FROM servers WHERE id = 7;"
                      " UPDATE servers SET status = 'revoked' WHERE id = 8");
    f->cfg.no_registry_check = true;
    struct gw_sink *s = sink_new(f, &gw_sink_sqlite_ops);
    submit_ok(s, item(f, 7, 10, 100));
    submit_ok(s, item(f, 8, 11, 100));
    submit_ok(s, item(f, 500, 12, 100)); /* never registered */
    submit_ok(s, activity(f, 7, 13));
    submit_ok(s, item(f, 500, 12, 100)); /* a duplicate, beyond any stream window */
    run_until(f, 5, 10000);
    gw_sink_get_stats(s, &st);
    gw_sink_free(s);
    assert_int_equal(f->status_of[10], GW_SINK_STORED);
    assert_int_equal(f->status_of[11], GW_SINK_STORED);
    assert_int_equal(f->status_of[13], GW_SINK_STORED);
    assert_int_equal(f->n_status[0], 4);
    assert_int_equal(f->n_status[1], 1);
    assert_int_equal(f->n_status[4], 0);
    assert_int_equal(st.items_refused, 0);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames"), 3);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames WHERE server_id = 500"), 1);
}

static void test_free_drains(void **state)
{
    struct fx *f = *state;
    struct gw_sink *s = sink_new(f, &gw_sink_sqlite_ops);
    for (uint64_t i = 0; i < 700; i++)
        submit_ok(s, item(f, 4, i, 64));
    gw_sink_free(s); /* no loop iteration at all */
    assert_int_equal(f->done, 700);
    assert_int_equal(f->n_status[0], 700);
    assert_int_equal(f->wrong_thread, 0);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames WHERE server_id=4"), 700);
    gw_sink_free(NULL);
}

/* ---- commit_delay_ms ------------------------------------------------------
 * A delay far longer than any test runs: only a full batch, a drain
 * deadline or the stop can end the writer's wait, so what a batch holds
 * does not depend on timing. */
#define DELAY_FOREVER_MS 600000u

/* An agent with one frame in flight: each ack schedules its next frame
 * a few milliseconds later (a trickle, not a burst). */
struct agent {
    struct fx *f;
    struct gw_sink *s;
    struct event *timer;
    int64_t server;
    uint64_t seq;
    int left; /* frames still to send */
};

static void agent_send(evutil_socket_t fd, short what, void *arg);

static void agent_done(struct gw_sink_item *it, void *ud)
{
    struct agent *a = ud;
    on_done(it, a->f);
    if (a->left > 0) {
        struct timeval tv = {0, 1000 * (suseconds_t)(1 + a->server % 4)};
        assert_int_equal(evtimer_add(a->timer, &tv), 0);
    }
}

static void agent_send(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct agent *a = arg;
    struct gw_sink_item *it = item(a->f, a->server, ++a->seq, 300);
    it->done = agent_done;
    it->ud = a;
    a->left--;
    submit_ok(a->s, it);
}

/* |n| agents (servers 1..n) send |rounds| frames each, one in flight,
 * through |s|; the loop runs until all are answered. */
static void trickle(struct fx *f, struct gw_sink *s, struct agent *ag, int n, int rounds)
{
    for (int i = 0; i < n; i++) {
        ag[i] = (struct agent){.f = f, .s = s, .server = i + 1, .left = rounds};
        ag[i].timer = evtimer_new(f->base, agent_send, &ag[i]);
        assert_non_null(ag[i].timer);
        struct timeval tv = {0, 1000 * (suseconds_t)(i + 1)};
        assert_int_equal(evtimer_add(ag[i].timer, &tv), 0);
    }
    run_until(f, n * rounds, 60000);
    for (int i = 0; i < n; i++)
        event_free(ag[i].timer);
}

static uint64_t batches_of(const struct gw_sink_stats *st)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < GW_SINK_BATCH_BUCKETS; i++)
        n += st->batch_items[i];
    return n;
}

/* Eight agents, one frame in flight each, batch_max_frames 8: the writer
 * waits for the eighth before it commits, every time - 40 frames in 5
 * transactions, each stored once.  Without the delay the first frame of
 * each round would commit alone. */
static void test_commit_delay_fills_batches(void **state)
{
    struct fx *f = *state;
    struct agent ag[8];
    struct gw_sink_stats st;
    f->cfg.batch_max_frames = 8;
    f->cfg.commit_delay_ms = DELAY_FOREVER_MS;
    g_wrap_calls = 0;
    g_wrap_max = 0;
    struct gw_sink *s = sink_new(f, &wrap_ops);
    trickle(f, s, ag, 8, 5);
    gw_sink_get_stats(s, &st);
    gw_sink_free(s);
    assert_int_equal(f->n_status[0], 40);
    assert_int_equal(f->wrong_thread, 0);
    fprintf(stderr, "    commit_delay_ms forever, batch_max_frames 8: 40 frames in %d batches\n",
            g_wrap_calls);
    assert_int_equal(g_wrap_calls, 5);
    /* ... and the metric says so: 5 batches, all of 8 (bucket le=8) */
    assert_int_equal(batches_of(&st), 5);
    assert_int_equal(st.batch_items[gw_sink_batch_bucket(8)], 5);
    assert_int_equal(st.batch_items_sum, 40);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames"), 40);
    assert_int_equal(query_i64(f->path, "SELECT count(DISTINCT server_id * 1000 + seq)"
                                        " FROM frames WHERE seq BETWEEN 1 AND 5"
                                        " AND server_id BETWEEN 1 AND 8"),
                     40);
}

/* A realistic delay with the default batch size: a trickle from several
 * agents still ends up in fewer transactions than frames. */
static void test_commit_delay_trickle(void **state)
{
    struct fx *f = *state;
    struct agent ag[6];
    struct gw_sink_stats st;
    f->cfg.commit_delay_ms = 100;
    struct gw_sink *s = sink_new(f, &gw_sink_sqlite_ops);
    trickle(f, s, ag, 6, 10);
    gw_sink_get_stats(s, &st);
    gw_sink_free(s);
    fprintf(stderr, "    commit_delay_ms 100: 60 frames in %llu batches\n",
            (unsigned long long)batches_of(&st));
    assert_int_equal(f->n_status[0], 60);
    assert_int_equal(st.batch_items_sum, 60);
    assert_true(batches_of(&st) < 60);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames"), 60);
}

/* 0 is the old behaviour: a lone frame commits at once (with the delay
 * "forever" this test would never finish).  One frame at a time, so
 * every frame is its own transaction. */
static void test_commit_delay_zero(void **state)
{
    struct fx *f = *state;
    struct gw_sink_stats st;
    f->cfg.commit_delay_ms = 0;
    struct gw_sink *s = sink_new(f, &gw_sink_sqlite_ops);
    for (uint64_t i = 1; i <= 10; i++) {
        submit_ok(s, item(f, 2, i, 100));
        run_until(f, (int)i, 10000);
    }
    gw_sink_get_stats(s, &st);
    gw_sink_free(s);
    assert_int_equal(f->n_status[0], 10);
    assert_int_equal(st.batch_items[0], 10);
    assert_int_equal(batches_of(&st), 10);
    assert_int_equal(st.batch_items_sum, 10);
}

/* The delay never holds a full batch, a drain (a deadline set) or the
 * stop: with it "forever", each of them still commits at once. */
static void test_commit_delay_not_for_drain(void **state)
{
    struct fx *f = *state;
    f->cfg.batch_max_frames = 4;
    f->cfg.commit_delay_ms = DELAY_FOREVER_MS;
    struct gw_sink *s = sink_new(f, &gw_sink_sqlite_ops);
    for (uint64_t i = 1; i <= 4; i++)
        submit_ok(s, item(f, 3, i, 100));
    run_until(f, 4, 10000); /* a full batch */
    submit_ok(s, item(f, 3, 5, 100));
    submit_ok(s, item(f, 3, 6, 100));
    gw_sink_set_deadline(s, gw_mono_ms() + 600000);
    run_until(f, 6, 10000); /* a drain began */
    submit_ok(s, item(f, 3, 7, 100));
    gw_sink_free(s); /* the stop */
    assert_int_equal(f->done, 7);
    assert_int_equal(f->n_status[0], 7);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames WHERE server_id=3"), 7);
}

/* Nor a queue full by bytes before it holds a batch: the refused submit
 * (503 for its agent) ends the wait, so the queue drains at once. */
static void test_commit_delay_not_when_full(void **state)
{
    struct fx *f = *state;
    f->cfg.queue_max_bytes = 1000;
    f->cfg.commit_delay_ms = DELAY_FOREVER_MS;
    struct gw_sink *s = sink_new(f, &gw_sink_sqlite_ops);
    for (uint64_t i = 1; i <= 3; i++)
        submit_ok(s, item(f, 5, i, 300));
    struct gw_sink_item *late = item(f, 5, 4, 300);
    assert_int_equal(gw_sink_submit(s, late), GW_EFULL);
    run_until(f, 3, 10000);
    submit_ok(s, late); /* room again */
    gw_sink_free(s);
    assert_int_equal(f->n_status[0], 4);
    assert_int_equal(query_i64(f->path, "SELECT count(*) FROM frames WHERE server_id=5"), 4);
}

static void test_new_errors(void **state)
{
    struct fx *f = *state;
    struct gw_sink *s = (struct gw_sink *)(uintptr_t)1;
    char err[512] = "";
    char path[192];

    snprintf(path, sizeof path, "%s/no/such/dir/pg.db", f->dir);
    f->cfg.sqlite_path = path;
    assert_int_equal(gw_sink_new(&s, f->base, &gw_sink_sqlite_ops, &f->cfg, err, sizeof err),
                     GW_ESTORAGE);
    assert_null(s);
    assert_non_null(strstr(err, path));

    f->cfg.sqlite_path = NULL;
    assert_int_equal(gw_sink_new(&s, f->base, &gw_sink_sqlite_ops, &f->cfg, err, sizeof err),
                     GW_ECONFIG);
    assert_null(s);

    f->cfg.sqlite_path = f->path;
    f->cfg.queue_max_frames = 0;
    assert_int_equal(gw_sink_new(&s, f->base, &gw_sink_sqlite_ops, &f->cfg, err, sizeof err),
                     GW_ECONFIG);
    assert_null(s);

    /* a file that is not a database */
    f->cfg.queue_max_frames = 16;
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 256; i++)
        fputs("not a database ", fp);
    fclose(fp);
    assert_int_equal(gw_sink_new(&s, f->base, &gw_sink_sqlite_ops, &f->cfg, err, sizeof err),
                     GW_ESTORAGE);
    assert_null(s);
    assert_non_null(strstr(err, f->path));
}

static void test_item_new(void **state)
{
    (void)state;
    const uint8_t b[3] = {1, 2, 3};
    struct gw_sink_item *it = gw_sink_item_new("n", b, 3);
    assert_non_null(it);
    assert_string_equal(it->reported_name, "n");
    assert_memory_equal(it->body, b, 3);
    assert_int_equal(it->body_len, 3);
    assert_null(it->next);
    gw_sink_item_free(it);
    it = gw_sink_item_new(NULL, NULL, 0);
    assert_non_null(it);
    assert_null(it->reported_name);
    assert_non_null(it->body);
    assert_int_equal(it->body_len, 0);
    gw_sink_item_free(it);
    gw_sink_item_free(NULL);
}

int main(void)
{
    if (wrap_sqlite_malloc() != 0) {
        fprintf(stderr, "cannot wrap the SQLite allocator\n");
        return 1;
    }
    if (evthread_use_pthreads() != 0) {
        fprintf(stderr, "evthread_use_pthreads failed\n");
        return 1;
    }
    pthread_mutex_init(&g_stub.mu, NULL);
    pthread_cond_init(&g_stub.cv, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_on_loop_thread, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_duplicates, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_queue_full_by_frames, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_queue_full_by_bytes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_backend_failure_then_recovery, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_storage_failure_busy, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_item_rejected_alone, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_item_storage_error_fails_batch, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_refused_not_admitted, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_refused_not_admitted_own_registry, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_registry_check_off, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_free_drains, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_commit_delay_fills_batches, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_commit_delay_trickle, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_commit_delay_zero, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_commit_delay_not_for_drain, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_commit_delay_not_when_full, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_new_errors, fx_setup, fx_teardown),
        cmocka_unit_test(test_item_new),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    libevent_global_shutdown();
    return rc;
}
