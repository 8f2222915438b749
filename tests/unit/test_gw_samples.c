/*
 * test_gw_samples.c - the panel-facing rows of a frame (samples.c), the
 * writer's path cache, the storage schema and its migration (store.c),
 * and the admin listener's pure parts (metrics.c): the Prometheus text and
 * the health verdict.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "privacy.h"
#include "samples.h"
#include "store.h"

/* ---- gw_samples_build ---- */

static struct pa_stream st_a[] = {
    {.name = "cam1", .viewers = 3, .bitrate = 2500000, .bytes_in = 10, .bytes_out = 30},
    {.name = "cam2", .viewers = UINT64_MAX, .bitrate = 1, .bytes_in = 2, .bytes_out = 4},
};
static struct pa_stream st_b[] = {
    {.name = "cam1", .viewers = 7, .bitrate = 800000, .bytes_in = 5, .bytes_out = 70},
};

static void frame_fixture(struct pa_frame *f, struct pa_vhost *vh, struct pa_app *ap,
                          struct pa_instance *in)
{
    memset(f, 0, sizeof *f);
    f->version = 1;
    f->seq = 9;
    f->ts_ms = 1700000000000ull;
    f->load.cpu_pct = 12.5;
    f->load.ram_used = 1000;
    f->load.ram_total = 4000;
    f->traffic.bytes_in = 11;
    f->traffic.bytes_out = 22;
    f->traffic.period_ms = 5000;
    f->n_conns = 42;
    in[0] = (struct pa_instance){.name = "_definst_", .streams = st_a, .n_streams = 2};
    in[1] = (struct pa_instance){.name = "other", .streams = st_b, .n_streams = 1};
    ap[0] = (struct pa_app){.name = "live", .instances = in, .n_instances = 2};
    ap[1] = (struct pa_app){.name = "empty", .instances = NULL, .n_instances = 0};
    vh[0] = (struct pa_vhost){.name = "_defaultVHost_", .apps = ap, .n_apps = 2};
    vh[1] = (struct pa_vhost){.name = "bare", .apps = NULL, .n_apps = 0};
    f->vhosts = vh;
    f->n_vhosts = 2;
}

static void test_build(void **state)
{
    (void)state;
    struct pa_frame f;
    struct pa_vhost vh[2];
    struct pa_app ap[2];
    struct pa_instance in[2];
    struct gw_viewer_agg aggs[2] = {
        {.cc = "DE", .asn = 3320, .conns = 40, .bytes_in = 1, .bytes_out = 2},
        {.cc = "XP", .asn = 0, .conns = 2, .bytes_in = 3, .bytes_out = 4},
    };
    struct gw_viewers v = {.aggs = aggs, .n = 2};
    struct gw_samples *s = NULL;

    frame_fixture(&f, vh, ap, in);
    assert_int_equal(gw_samples_build(&f, &v, &s), 0);
    assert_non_null(s);
    assert_true(s->cpu_pct == 12.5);
    assert_int_equal(s->ram_used, 1000);
    assert_int_equal(s->ram_total, 4000);
    assert_int_equal(s->bytes_in, 11);
    assert_int_equal(s->bytes_out, 22);
    assert_int_equal(s->period_ms, 5000);
    assert_int_equal(s->conns, 42);
    assert_int_equal(s->n_streams, 3);
    assert_string_equal(s->streams[0].vhost, "_defaultVHost_");
    assert_string_equal(s->streams[0].app, "live");
    assert_string_equal(s->streams[0].instance, "_definst_");
    assert_string_equal(s->streams[0].stream, "cam1");
    assert_int_equal(s->streams[0].viewers, 3);
    assert_int_equal(s->streams[0].bitrate, 2500000);
    assert_int_equal(s->streams[1].viewers, UINT64_MAX);
    assert_string_equal(s->streams[2].instance, "other");
    assert_string_equal(s->streams[2].stream, "cam1");
    assert_int_equal(s->streams[2].bytes_out, 70);
    /* names are copies inside the block, not pointers into the frame */
    assert_ptr_not_equal(s->streams[0].stream, st_a[0].name);
    assert_true((const char *)s->streams[2].stream > (const char *)s &&
                (const char *)s->streams[2].stream < (const char *)s + s->size);
    /* vhost/app/instance names shared by their streams */
    assert_ptr_equal(s->streams[0].app, s->streams[1].app);
    assert_int_equal(s->n_viewers, 2);
    assert_string_equal(s->viewers[0].cc, "DE");
    assert_int_equal(s->viewers[0].asn, 3320);
    assert_int_equal(s->viewers[1].conns, 2);
    assert_ptr_not_equal(s->viewers, aggs);
    free(s);

    /* no streams, no viewers */
    f.n_vhosts = 0;
    assert_int_equal(gw_samples_build(&f, NULL, &s), 0);
    assert_int_equal(s->n_streams, 0);
    assert_int_equal(s->n_viewers, 0);
    free(s);
    assert_int_equal(gw_samples_build(NULL, NULL, &s), GW_EINVAL);
    assert_null(s);
}

static void test_i64(void **state)
{
    (void)state;
    assert_int_equal(gw_samples_i64(0), 0);
    assert_int_equal(gw_samples_i64(INT64_MAX), INT64_MAX);
    assert_int_equal(gw_samples_i64((uint64_t)INT64_MAX + 1), INT64_MAX);
    assert_int_equal(gw_samples_i64(UINT64_MAX), INT64_MAX);
}

/* ---- the path cache ---- */

static void test_path_cache(void **state)
{
    (void)state;
    struct gw_path_cache *c = gw_path_cache_new(16, 42);
    assert_non_null(c);
    struct gw_stream_sample a = {.vhost = "v", .app = "live", .instance = "i", .stream = "s"};
    struct gw_stream_sample b = {.vhost = "v", .app = "liv", .instance = "ei", .stream = "s"};
    assert_null(gw_path_cache_get(c, 1, &a));
    assert_int_equal(gw_path_cache_put(c, 1, &a, 100, 5), 0);
    struct gw_path_entry *e = gw_path_cache_get(c, 1, &a);
    assert_non_null(e);
    assert_int_equal(e->id, 100);
    assert_int_equal(e->last_ms, 5);
    /* the same names under another server, and names that only differ in
     * where one ends and the next begins, are other keys */
    assert_null(gw_path_cache_get(c, 2, &a));
    assert_null(gw_path_cache_get(c, 1, &b));
    assert_int_equal(gw_path_cache_put(c, 1, &a, 100, 9), 0);
    assert_int_equal(gw_path_cache_count(c), 1);
    assert_int_equal(gw_path_cache_get(c, 1, &a)->last_ms, 9);

    /* bounded: the 17th entry empties the cache first */
    char names[20][8];
    for (int i = 0; i < 16; i++) {
        snprintf(names[i], sizeof names[i], "s%d", i);
        struct gw_stream_sample x = {.vhost = "v", .app = "a", .instance = "i", .stream = names[i]};
        assert_int_equal(gw_path_cache_put(c, 7, &x, i, 0), 0);
    }
    assert_true(gw_path_cache_count(c) <= 16);
    assert_int_equal(gw_path_cache_count(c), 1); /* emptied at the 16th new key, then 1 */
    gw_path_cache_clear(c);
    assert_int_equal(gw_path_cache_count(c), 0);
    assert_null(gw_path_cache_get(c, 1, &a));
    gw_path_cache_free(c);
    gw_path_cache_free(NULL);
}

/* ---- schema and migration ---- */

static int64_t q1(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void test_schema_new_and_migrate(void **state)
{
    (void)state;
    sqlite3 *db = NULL;
    char err[256];
    int v = -1;

    /* a new file gets version 2 */
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(gw_store_version(db, &v, err, sizeof err), 0);
    assert_int_equal(v, 0);
    assert_int_equal(gw_store_schema(db, err, sizeof err), 0);
    assert_int_equal(gw_store_version(db, &v, err, sizeof err), 0);
    assert_int_equal(v, 2);
    assert_int_equal(q1(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('server_samples',"
                            "'stream_samples','geo_samples','stream_paths')"),
                     4);
    /* no secondary index on the sample tables: keys only */
    assert_int_equal(q1(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND"
                            " tbl_name IN ('server_samples','stream_samples','geo_samples')"
                            " AND sql IS NOT NULL"),
                     0);
    assert_int_equal(gw_store_schema(db, err, sizeof err), 0); /* idempotent */
    sqlite3_close(db);

    /* a version-1 file (frames only, no version row) keeps its frames */
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
                     "INSERT INTO meta VALUES('schema_version','1');"
                     "CREATE TABLE frames(server_id INTEGER NOT NULL, seq INTEGER NOT NULL,"
                     " ts_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL, reported_name TEXT,"
                     " body BLOB NOT NULL, PRIMARY KEY(server_id, seq)) WITHOUT ROWID;"
                     "INSERT INTO frames VALUES(1, 1, 5, 6, 'x', x'80');",
                     NULL, NULL, NULL),
        SQLITE_OK);
    assert_int_equal(gw_store_version(db, &v, err, sizeof err), 0);
    assert_int_equal(v, 1);
    assert_int_equal(gw_store_schema(db, err, sizeof err), 0);
    assert_int_equal(gw_store_version(db, &v, err, sizeof err), 0);
    assert_int_equal(v, 2);
    assert_int_equal(q1(db, "SELECT count(*) FROM frames"), 1);
    assert_int_equal(q1(db, "SELECT count(*) FROM server_samples"), 0); /* no backfill */
    assert_int_equal(q1(db, "SELECT count(*) FROM sqlite_master WHERE name = 'frames_received'"),
                     1);
    assert_int_equal(q1(db, "SELECT CAST(value AS INTEGER) FROM meta"
                            " WHERE key = 'stream_paths_generation'"),
                     0);
    assert_int_equal(q1(db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'"),
                     1); /* the registry's own version is not touched */

    /* a newer version is refused, and nothing changes */
    assert_int_equal(sqlite3_exec(db, "UPDATE meta SET value = '3' WHERE key ="
                                      " 'storage_schema_version'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(gw_store_schema(db, err, sizeof err), GW_EINVAL);
    assert_non_null(strstr(err, "version 3"));
    sqlite3_close(db);
}

/* ---- metrics and health ---- */

/* The registry watcher's lines appear with the JetStream engine only. */
static void test_metrics_registry_watch(void **state)
{
    (void)state;
    struct gw_metrics m;
    struct pa_buf out;
    memset(&m, 0, sizeof m);
    m.version = "0.1.0";
    pa_buf_init(&out, NULL);
    assert_int_equal(gw_metrics_render(&m, &out), 0);
    assert_int_equal(pa_buf_append(&out, "", 1), 0);
    assert_null(strstr((const char *)out.data, "panelgate_registry_watch_up"));
    pa_buf_cleanup(&out);

    m.registry_watched = true;
    m.registry_watch_up = false;
    m.registry_snapshots = 4;
    m.registry_bad_records = 1;
    pa_buf_init(&out, NULL);
    assert_int_equal(gw_metrics_render(&m, &out), 0);
    assert_int_equal(pa_buf_append(&out, "", 1), 0);
    const char *t = (const char *)out.data;
    assert_non_null(strstr(t, "\npanelgate_registry_watch_up 0\n"));
    assert_non_null(strstr(t, "\npanelgate_registry_snapshots_total 4\n"));
    assert_non_null(strstr(t, "\npanelgate_registry_records_refused_total 1\n"));
    pa_buf_cleanup(&out);
}

static void test_metrics_text(void **state)
{
    (void)state;
    struct gw_metrics m;
    struct pa_buf out;
    memset(&m, 0, sizeof m);
    m.version = "0.1.0";
    m.stats.frames_accepted = 7;
    m.stats.handshakes_refused = 5;
    m.stats.refused_unregistered = 2;
    m.stats.refused_revoked = 1;
    m.stats.responses[0] = 7; /* 202 */
    m.stats.responses[GW_N_STATUS] = 1;
    m.sink.frames_stored = 6;
    m.sink.batch_items[0] = 2;                         /* 2 commits of 1 */
    m.sink.batch_items[gw_sink_batch_bucket(3)] = 1;   /* 1 of 3 (le 4) */
    m.sink.batch_items[GW_SINK_BATCH_BUCKETS - 1] = 1; /* 1 of 2000 */
    m.sink.batch_items_sum = 2005;
    m.sink.failing = 1;
    m.sink.failing_since_ms = 1700000000123;
    m.sink.queue_max_frames = 4096;
    m.conns_open = 3;
    m.conns_unauth = 2;
    m.stats.conns_shed_handshakes = 11;
    m.stats.conns_shed_limit = 4;
    pa_buf_init(&out, NULL);
    assert_int_equal(gw_metrics_render(&m, &out), 0);
    assert_int_equal(pa_buf_append(&out, "", 1), 0);
    const char *t = (const char *)out.data;
    assert_non_null(strstr(t, "\npanelgate_frames_accepted_total 7\n"));
    assert_non_null(strstr(t, "\npanelgate_sink_frames_stored_total 6\n"));
    assert_non_null(strstr(t, "\npanelgate_sink_failing 1\n"));
    assert_non_null(strstr(t, "\n# TYPE panelgate_sink_batch_frames histogram\n"));
    assert_non_null(strstr(t, "\npanelgate_sink_batch_frames_bucket{le=\"1\"} 2\n"));
    assert_non_null(strstr(t, "\npanelgate_sink_batch_frames_bucket{le=\"2\"} 2\n"));
    assert_non_null(strstr(t, "\npanelgate_sink_batch_frames_bucket{le=\"4\"} 3\n"));
    assert_non_null(strstr(t, "\npanelgate_sink_batch_frames_bucket{le=\"1024\"} 3\n"));
    assert_non_null(strstr(t, "\npanelgate_sink_batch_frames_bucket{le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(t, "\npanelgate_sink_batch_frames_sum 2005\n"));
    assert_non_null(strstr(t, "\npanelgate_sink_batch_frames_count 4\n"));
    assert_non_null(strstr(t, "\npanelgate_sink_failing_since_seconds 1700000000\n"));
    assert_non_null(strstr(t, "\npanelgate_connections_open 3\n"));
    assert_non_null(strstr(t, "\npanelgate_connections_handshaking 2\n"));
    assert_non_null(strstr(t, "\npanelgate_connections_shed_total{reason=\"max_handshakes\"} 11\n"));
    assert_non_null(strstr(t, "\npanelgate_connections_shed_total{reason=\"max_connections\"} 4\n"));
    assert_non_null(strstr(t, "panelgate_handshakes_refused_total{reason=\"unregistered\"} 2\n"));
    assert_non_null(strstr(t, "panelgate_handshakes_refused_total{reason=\"other\"} 2\n"));
    assert_non_null(strstr(t, "panelgate_responses_total{status=\"202\"} 7\n"));
    assert_non_null(strstr(t, "panelgate_responses_total{status=\"other\"} 1\n"));
    assert_non_null(strstr(t, "panelgate_build_info{version=\"0.1.0\"} 1\n"));
    /* every sample line is "name[{labels}] value" and has a TYPE line */
    char *copy = strdup(t), *save = NULL;
    int samples = 0;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        samples++;
        char name[128];
        size_t n = strcspn(line, "{ ");
        assert_true(n > 0 && n < sizeof name);
        memcpy(name, line, n);
        name[n] = '\0';
        /* a histogram's samples carry its family's TYPE line */
        static const char *const hsfx[] = {"_bucket", "_sum", "_count"};
        for (size_t h = 0; h < sizeof hsfx / sizeof hsfx[0]; h++) {
            size_t hl = strlen(hsfx[h]);
            if (n > hl && strcmp(name + n - hl, hsfx[h]) == 0) {
                char fam[160];
                snprintf(fam, sizeof fam, "# TYPE %.*s histogram", (int)(n - hl), name);
                if (strstr(t, fam) != NULL)
                    name[n - hl] = '\0';
            }
        }
        char type_line[200];
        snprintf(type_line, sizeof type_line, "# TYPE %s ", name);
        assert_non_null(strstr(t, type_line));
        const char *val = strrchr(line, ' ');
        assert_non_null(val);
        char *end = NULL;
        strtod(val + 1, &end);
        assert_true(end != val + 1 && *end == '\0');
    }
    assert_true(samples > 30);
    free(copy);
    pa_buf_cleanup(&out);
}

/* The JetStream connection's lines: only for an engine with a connection. */
static void test_metrics_engine(void **state)
{
    (void)state;
    struct gw_metrics m;
    struct pa_buf out;
    memset(&m, 0, sizeof m);
    m.version = "0.1.0";
    m.sink.engine_connected = -1; /* SQLite */
    pa_buf_init(&out, NULL);
    assert_int_equal(gw_metrics_render(&m, &out), 0);
    assert_int_equal(pa_buf_append(&out, "", 1), 0);
    assert_null(strstr((const char *)out.data, "panelgate_jetstream_"));
    m.sink.engine_connected = 1;
    m.sink.engine_disconnects = 3;
    m.sink.engine_reconnects = 2;
    out.len = 0;
    assert_int_equal(gw_metrics_render(&m, &out), 0);
    assert_int_equal(pa_buf_append(&out, "", 1), 0);
    const char *t = (const char *)out.data;
    assert_non_null(strstr(t, "\npanelgate_jetstream_connected 1\n"));
    assert_non_null(strstr(t, "\npanelgate_jetstream_disconnects_total 3\n"));
    assert_non_null(strstr(t, "\npanelgate_jetstream_reconnects_total 2\n"));
    pa_buf_cleanup(&out);
}

static void test_health(void **state)
{
    (void)state;
    struct gw_metrics m;
    char why[200];
    memset(&m, 0, sizeof m);
    m.sink.queue_max_frames = 4;
    m.sink.queue_max_bytes = 1000;
    assert_int_equal(gw_health(&m, why, sizeof why), 200);
    assert_string_equal(why, "ok");
    m.sink.queue_frames = 4;
    assert_int_equal(gw_health(&m, why, sizeof why), 503);
    assert_non_null(strstr(why, "queue full"));
    m.sink.queue_frames = 1;
    m.sink.queue_bytes = 1000;
    assert_int_equal(gw_health(&m, why, sizeof why), 503);
    m.sink.queue_bytes = 10;
    m.sink.failing = 1;
    snprintf(m.sink.reason, sizeof m.sink.reason, "database is locked (code 5)");
    assert_int_equal(gw_health(&m, why, sizeof why), 503);
    assert_string_equal(why, "storage failing: database is locked (code 5)");
    m.sink.failing = 0;
    m.draining = true;
    assert_int_equal(gw_health(&m, why, sizeof why), 503);
    assert_string_equal(why, "draining");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_i64),
        cmocka_unit_test(test_path_cache),
        cmocka_unit_test(test_schema_new_and_migrate),
        cmocka_unit_test(test_metrics_text),
        cmocka_unit_test(test_metrics_registry_watch),
        cmocka_unit_test(test_metrics_engine),
        cmocka_unit_test(test_health),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
