/*
 * test_gw_registry.c - registry schema and snapshot (gateway/storage/registry.h)
 * against real SQLite files in a scratch directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "registry.h"
#include "testutil.h"

#define NOW 1732838400 /* injected clock */

struct fx {
    char dir[64];
    char path[128];
    sqlite3 *db; /* read-write, schema created */
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "gwreg.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof f->path, "%s/reg.db", f->dir);
    if (sqlite3_open(f->path, &f->db) != SQLITE_OK)
        return -1;
    char err[256];
    if (gw_registry_schema(f->db, err, sizeof err) != 0) {
        fprintf(stderr, "schema: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    char p[192];
    sqlite3_close(f->db);
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < TU_ARRAY_LEN(sfx); i++) {
        snprintf(p, sizeof p, "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "sql: %s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

static int64_t add_server(sqlite3 *db, const char *name, const char *kind, const char *status)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO servers(name, kind, status, created_at)"
                                        " VALUES(?, ?, ?, ?)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, NOW - 100);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    return sqlite3_last_insert_rowid(db);
}

/* not_after 0 = NULL (no expiry). */
static int add_pin(sqlite3 *db, int64_t server_id, const uint8_t spki[GW_SPKI_LEN],
                   size_t spki_len, int64_t not_after)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO server_pins(spki_sha256, server_id,"
                                        " not_after, created_at) VALUES(?, ?, ?, ?)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_blob(st, 1, spki, (int)spki_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, server_id);
    if (not_after)
        sqlite3_bind_int64(st, 3, not_after);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_int64(st, 4, NOW - 100);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc;
}

static void spki_of(uint8_t out[GW_SPKI_LEN], uint64_t seed)
{
    struct tu_rng r = {seed};
    for (size_t i = 0; i < GW_SPKI_LEN; i += 8) {
        uint64_t v = tu_rng_next(&r);
        memcpy(out + i, &v, 8);
    }
}

static struct gw_registry *load_ok(const char *path)
{
    struct gw_registry *r = NULL;
    char err[256] = "";
    int rc = gw_registry_load(path, &r, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "load: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(r);
    return r;
}

static int count_rows(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* ------------------------------------------------------------------ tests */

static void test_schema_idempotent(void **state)
{
    struct fx *f = *state;
    char err[256];
    /* fx_setup ran it once; again, and once more inside a caller's
     * transaction (panelgatectl does that). */
    assert_int_equal(gw_registry_schema(f->db, err, sizeof err), 0);
    exec_ok(f->db, "BEGIN");
    assert_int_equal(gw_registry_schema(f->db, err, sizeof err), 0);
    exec_ok(f->db, "COMMIT");

    assert_int_equal(count_rows(f->db, "SELECT count(*) FROM sqlite_master WHERE type='table'"
                                       " AND name IN ('servers','server_pins','activity','meta')"),
                     4);
    assert_int_equal(count_rows(f->db, "SELECT count(*) FROM sqlite_master WHERE type='index'"
                                       " AND tbl_name='activity'"),
                     1);
    assert_int_equal(count_rows(f->db, "SELECT count(*) FROM meta WHERE key='schema_version'"
                                       " AND value='1'"),
                     1);
    assert_int_equal(count_rows(f->db, "SELECT count(*) FROM meta WHERE"
                                       " key='registry_generation' AND value=0"),
                     1);
    assert_int_equal(count_rows(f->db, "SELECT count(*) FROM meta"), 2);

    /* the constraints hold */
    char *msg = NULL;
    assert_int_not_equal(sqlite3_exec(f->db, "INSERT INTO servers(name, kind, created_at)"
                                             " VALUES('x', 'apache', 1)",
                                      NULL, NULL, &msg),
                         SQLITE_OK);
    sqlite3_free(msg);
    int64_t id = add_server(f->db, "ok", "wowza", "active");
    uint8_t k[GW_SPKI_LEN];
    spki_of(k, 1);
    assert_int_not_equal(add_pin(f->db, id, k, 31, 0), SQLITE_DONE);
    assert_int_equal(add_pin(f->db, id, k, 32, 0), SQLITE_DONE);
    assert_int_not_equal(add_pin(f->db, id, k, 32, 0), SQLITE_DONE); /* unique */
    exec_ok(f->db, "INSERT INTO activity(at, actor, action, server_id) VALUES(1, 'cli', 'x', 1)");

    /* a newer schema is refused, not silently used */
    exec_ok(f->db, "UPDATE meta SET value='2' WHERE key='schema_version'");
    assert_int_equal(gw_registry_schema(f->db, err, sizeof err), GW_EINVAL);
    assert_non_null(strstr(err, "version"));
    /* ...and the failed call left no transaction open */
    assert_int_equal(sqlite3_get_autocommit(f->db), 1);
}

static void test_load_statuses(void **state)
{
    struct fx *f = *state;
    uint8_t k[7][GW_SPKI_LEN];
    for (int i = 0; i < 7; i++)
        spki_of(k[i], 100 + (uint64_t)i);

    int64_t a = add_server(f->db, "nimble-edge-01", "nimble", "active");
    int64_t b = add_server(f->db, "wowza-old", "wowza", "revoked");
    assert_int_equal(add_pin(f->db, a, k[0], 32, 0), SQLITE_DONE);        /* no expiry */
    assert_int_equal(add_pin(f->db, a, k[1], 32, NOW + 3600), SQLITE_DONE); /* future */
    assert_int_equal(add_pin(f->db, a, k[2], 32, NOW - 1), SQLITE_DONE);    /* expired */
    assert_int_equal(add_pin(f->db, b, k[3], 32, 0), SQLITE_DONE);        /* revoked */
    assert_int_equal(add_pin(f->db, b, k[4], 32, NOW - 1), SQLITE_DONE);    /* both */
    assert_int_equal(add_pin(f->db, a, k[6], 32, -5), SQLITE_DONE);  /* <= 0: long past */

    struct gw_registry *r = load_ok(f->path);
    assert_int_equal(gw_registry_count(r), 6);

    const char *why = "unset";
    const struct gw_server *s = gw_registry_find(r, k[0], NOW, &why);
    assert_non_null(s);
    assert_null(why);
    assert_int_equal(s->id, a);
    assert_string_equal(s->name, "nimble-edge-01");
    assert_string_equal(s->kind, "nimble");
    assert_int_equal(s->status, GW_SERVER_ACTIVE);
    assert_memory_equal(s->spki, k[0], GW_SPKI_LEN);
    assert_int_equal(s->pin_not_after, 0);

    s = gw_registry_find(r, k[1], NOW, &why);
    assert_non_null(s);
    assert_int_equal(s->pin_not_after, NOW + 3600);
    /* exactly at not_after it is still valid; one second later it is not */
    assert_non_null(gw_registry_find(r, k[1], NOW + 3600, NULL));
    assert_null(gw_registry_find(r, k[1], NOW + 3601, &why));
    assert_string_equal(why, "pin_expired");

    assert_null(gw_registry_find(r, k[2], NOW, &why));
    assert_string_equal(why, "pin_expired");
    assert_null(gw_registry_find(r, k[3], NOW, &why));
    assert_string_equal(why, "revoked");
    assert_null(gw_registry_find(r, k[4], NOW, &why));
    assert_string_equal(why, "revoked");
    assert_null(gw_registry_find(r, k[5], NOW, &why));
    assert_string_equal(why, "unregistered");
    assert_null(gw_registry_find(r, k[5], NOW, NULL)); /* why is optional */
    assert_null(gw_registry_find(r, k[6], NOW, &why));
    assert_string_equal(why, "pin_expired");

    /* by id, whatever the status or expiry: the name of a gateway's row */
    assert_string_equal(gw_registry_by_id(r, a)->name, "nimble-edge-01");
    assert_string_equal(gw_registry_by_id(r, b)->name, "wowza-old");
    assert_null(gw_registry_by_id(r, b + 1));
    assert_null(gw_registry_by_id(r, 0));
    assert_null(gw_registry_by_id(NULL, a));

    assert_ptr_equal(gw_registry_ref(r), r);
    gw_registry_unref(r);
    gw_registry_unref(r);
    gw_registry_unref(NULL);
}

static void test_empty_registry(void **state)
{
    struct fx *f = *state;
    struct gw_registry *r = load_ok(f->path);
    uint8_t k[GW_SPKI_LEN] = {0};
    const char *why = NULL;
    assert_int_equal(gw_registry_count(r), 0);
    assert_null(gw_registry_find(r, k, NOW, &why));
    assert_string_equal(why, "unregistered");
    gw_registry_unref(r);
}

static void test_many_pins(void **state)
{
    struct fx *f = *state;
    const int n = 10000;
    exec_ok(f->db, "BEGIN");
    int64_t ids[100];
    for (int i = 0; i < 100; i++) {
        char name[32];
        snprintf(name, sizeof name, "srv-%03d", i);
        ids[i] = add_server(f->db, name, i % 2 ? "wowza" : "nimble", "active");
    }
    for (int i = 0; i < n; i++) {
        uint8_t k[GW_SPKI_LEN];
        spki_of(k, 1000000 + (uint64_t)i);
        assert_int_equal(add_pin(f->db, ids[i % 100], k, 32, 0), SQLITE_DONE);
    }
    exec_ok(f->db, "COMMIT");

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct gw_registry *r = load_ok(f->path);
    assert_int_equal(gw_registry_count(r), (size_t)n);
    for (int i = 0; i < n; i++) {
        uint8_t k[GW_SPKI_LEN];
        spki_of(k, 1000000 + (uint64_t)i);
        const struct gw_server *s = gw_registry_find(r, k, NOW, NULL);
        assert_non_null(s);
        assert_int_equal(s->id, ids[i % 100]);
        assert_memory_equal(s->spki, k, GW_SPKI_LEN);
        /* a near miss (last byte flipped) is unknown */
        k[GW_SPKI_LEN - 1] ^= 1;
        const char *why = NULL;
        assert_null(gw_registry_find(r, k, NOW, &why));
        assert_string_equal(why, "unregistered");
    }
    for (int i = 0; i < 100; i++) {
        char name[32];
        snprintf(name, sizeof name, "srv-%03d", i);
        assert_string_equal(gw_registry_by_id(r, ids[i])->name, name);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    /* generous: sanitizer builds are several times slower */
    assert_true(ms < 5000.0);
    gw_registry_unref(r);
}

/* Keys that share the 8 bytes used as the hash still resolve exactly. */
static void test_hash_collisions(void **state)
{
    struct fx *f = *state;
    int64_t id = add_server(f->db, "collide", "nimble", "active");
    uint8_t k[64][GW_SPKI_LEN];
    for (int i = 0; i < 64; i++) {
        memset(k[i], 0xab, GW_SPKI_LEN);
        k[i][20] = (uint8_t)i;
        if (i % 2 == 0)
            assert_int_equal(add_pin(f->db, id, k[i], 32, 0), SQLITE_DONE);
    }
    struct gw_registry *r = load_ok(f->path);
    assert_int_equal(gw_registry_count(r), 32);
    for (int i = 0; i < 64; i++) {
        const struct gw_server *s = gw_registry_find(r, k[i], NOW, NULL);
        if (i % 2 == 0) {
            assert_non_null(s);
            assert_memory_equal(s->spki, k[i], GW_SPKI_LEN);
        } else {
            assert_null(s);
        }
    }
    gw_registry_unref(r);
}

static void test_missing_file(void **state)
{
    struct fx *f = *state;
    char path[192];
    snprintf(path, sizeof path, "%s/no-such-registry.db", f->dir);
    struct gw_registry *r = (struct gw_registry *)(uintptr_t)1;
    char err[512] = "";
    assert_int_equal(gw_registry_load(path, &r, err, sizeof err), GW_ESTORAGE);
    assert_null(r);
    assert_non_null(strstr(err, path));
    struct stat sb;
    assert_int_equal(stat(path, &sb), -1); /* not created */

    assert_int_equal(gw_registry_load(NULL, &r, err, sizeof err), GW_EINVAL);
    assert_null(r);
}

static void test_not_a_registry(void **state)
{
    struct fx *f = *state;
    char path[192];
    snprintf(path, sizeof path, "%s/other.db", f->dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    exec_ok(db, "CREATE TABLE t(x)");
    sqlite3_close(db);

    struct gw_registry *r = NULL;
    char err[512] = "";
    assert_int_equal(gw_registry_load(path, &r, err, sizeof err), GW_ESTORAGE);
    assert_null(r);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "server_pins"));
    unlink(path);
}

/* Issue 11 (fuzz_gw_registry): a value with a NUL byte inside or after it
 * was read as C text, cut at the NUL: a name "edge\0evil" loaded as "edge"
 * (two such rows would be two servers of one name in every log line), and
 * in a file made by hand "wowza\0" and "active\0x" passed as wowza and
 * active.  Each is refused now, as any other value the schema forbids. */
static int load_one_row(const char *path, bool real_schema, const char *name, int nlen,
                        const char *kind, int klen, const char *status, int slen, char *err,
                        size_t errlen)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    uint8_t k[GW_SPKI_LEN];
    unlink(path);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (real_schema)
        assert_int_equal(gw_registry_schema(db, err, errlen), 0);
    else
        exec_ok(db, "CREATE TABLE servers(id, name, kind, status, created_at);"
                    "CREATE TABLE server_pins(spki_sha256, server_id, not_after, created_at)");
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO servers(id, name, kind, status, created_at)"
                                        " VALUES(1, ?, ?, ?, 0)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, name, nlen, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kind, klen, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, status, slen, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    spki_of(k, 11);
    assert_int_equal(add_pin(db, 1, k, GW_SPKI_LEN, 0), SQLITE_DONE);
    sqlite3_close(db);

    struct gw_registry *r = NULL;
    err[0] = '\0';
    int rv = gw_registry_load(path, &r, err, errlen);
    if (rv == 0)
        assert_non_null(r);
    else
        assert_null(r);
    gw_registry_unref(r);
    return rv;
}

static void test_nul_in_values_issue11(void **state)
{
    struct fx *f = *state;
    char path[192], err[512];
    snprintf(path, sizeof path, "%s/nul.db", f->dir);

    /* the control: the same rows without the NUL load */
    assert_int_equal(load_one_row(path, true, "edge", 4, "wowza", 5, "active", 6, err,
                                  sizeof err), 0);
    assert_int_equal(load_one_row(path, false, "edge", 4, "wowza", 5, "revoked", 7, err,
                                  sizeof err), 0);

    /* the real schema lets a NUL into a name */
    assert_int_equal(load_one_row(path, true, "edge\0evil", 9, "nimble", 6, "active", 6, err,
                                  sizeof err), GW_EINVAL);
    assert_non_null(strstr(err, "name has a NUL byte"));
    /* a file made by hand, without the CHECKs */
    assert_int_equal(load_one_row(path, false, "edge", 4, "wowza\0", 6, "active", 6, err,
                                  sizeof err), GW_EINVAL);
    assert_non_null(strstr(err, "kind is not nimble or wowza"));
    assert_int_equal(load_one_row(path, false, "edge", 4, "nimble", 6, "active\0x", 8, err,
                                  sizeof err), GW_EINVAL);
    assert_non_null(strstr(err, "status is not active or revoked"));
    unlink(path);
}

/* Each load is a fresh snapshot; an older one stays as it was. */
static void test_reload_sees_changes(void **state)
{
    struct fx *f = *state;
    uint8_t k1[GW_SPKI_LEN], k2[GW_SPKI_LEN];
    spki_of(k1, 7);
    spki_of(k2, 8);
    exec_ok(f->db, "PRAGMA journal_mode=WAL"); /* as the gateway runs it */
    int64_t a = add_server(f->db, "a", "nimble", "active");
    assert_int_equal(add_pin(f->db, a, k1, 32, 0), SQLITE_DONE);

    struct gw_registry *old = load_ok(f->path);
    const struct gw_server *s_old = gw_registry_find(old, k1, NOW, NULL);
    assert_non_null(s_old);
    assert_null(gw_registry_find(old, k2, NOW, NULL));

    int64_t b = add_server(f->db, "b", "wowza", "active");
    assert_int_equal(add_pin(f->db, b, k2, 32, 0), SQLITE_DONE);
    exec_ok(f->db, "UPDATE servers SET status='revoked' WHERE name='a'");

    struct gw_registry *cur = load_ok(f->path);
    const char *why = NULL;
    assert_null(gw_registry_find(cur, k1, NOW, &why));
    assert_string_equal(why, "revoked");
    const struct gw_server *s = gw_registry_find(cur, k2, NOW, NULL);
    assert_non_null(s);
    assert_int_equal(s->id, b);

    /* the old snapshot is immutable: a connection holding it is unaffected
     * until the gateway re-checks it against the new one */
    assert_ptr_equal(gw_registry_find(old, k1, NOW, NULL), s_old);
    assert_int_equal(s_old->status, GW_SERVER_ACTIVE);

    /* ON DELETE CASCADE with foreign_keys on: the pin goes with its server */
    exec_ok(f->db, "PRAGMA foreign_keys=ON");
    exec_ok(f->db, "DELETE FROM servers WHERE name='b'");
    gw_registry_unref(cur);
    cur = load_ok(f->path);
    assert_null(gw_registry_find(cur, k2, NOW, &why));
    assert_string_equal(why, "unregistered");
    assert_int_equal(gw_registry_count(cur), 1);

    gw_registry_unref(old);
    gw_registry_unref(cur);
}

/* gw_registry_build: the JetStream watcher's snapshots, with the load's
 * checks (a pin twice, a status or kind out of range) */
static void test_build(void **state)
{
    struct gw_server e[3];
    struct gw_registry *r = NULL;
    char err[256];
    const char *why;
    (void)state;

    memset(e, 0, sizeof e);
    for (int i = 0; i < 3; i++) {
        e[i].id = i + 1;
        snprintf(e[i].name, sizeof e[i].name, "edge-%d", i);
        snprintf(e[i].kind, sizeof e[i].kind, "%s", i ? "wowza" : "nimble");
        e[i].status = i == 2 ? GW_SERVER_REVOKED : GW_SERVER_ACTIVE;
        memset(e[i].spki, 0x10 + i, GW_SPKI_LEN);
    }
    e[1].pin_not_after = NOW - 1;
    assert_int_equal(gw_registry_build(e, 3, &r, err, sizeof err), 0);
    assert_int_equal(gw_registry_count(r), 3);
    assert_non_null(gw_registry_find(r, e[0].spki, NOW, NULL));
    assert_null(gw_registry_find(r, e[1].spki, NOW, &why));
    assert_string_equal(why, "pin_expired");
    assert_null(gw_registry_find(r, e[2].spki, NOW, &why));
    assert_string_equal(why, "revoked");
    assert_string_equal(gw_registry_lookup(r, e[2].spki)->name, "edge-2");
    for (int i = 0; i < 3; i++)
        assert_string_equal(gw_registry_by_id(r, i + 1)->name, e[i].name);
    assert_null(gw_registry_by_id(r, 4));
    gw_registry_unref(r);

    /* empty: a valid snapshot that admits nobody */
    assert_int_equal(gw_registry_build(NULL, 0, &r, err, sizeof err), 0);
    assert_int_equal(gw_registry_count(r), 0);
    assert_null(gw_registry_by_id(r, 1));
    assert_null(gw_registry_find(r, e[0].spki, NOW, &why));
    assert_string_equal(why, "unregistered");
    gw_registry_unref(r);

    /* one pin on two servers */
    memcpy(e[2].spki, e[0].spki, GW_SPKI_LEN);
    r = (struct gw_registry *)1;
    assert_int_equal(gw_registry_build(e, 3, &r, err, sizeof err), GW_EINVAL);
    assert_null(r);
    assert_non_null(strstr(err, "appears twice"));
    memset(e[2].spki, 0x12, GW_SPKI_LEN);

    e[1].status = 0;
    assert_int_equal(gw_registry_build(e, 3, &r, err, sizeof err), GW_EINVAL);
    e[1].status = GW_SERVER_ACTIVE;
    snprintf(e[1].kind, sizeof e[1].kind, "other");
    assert_int_equal(gw_registry_build(e, 3, &r, err, sizeof err), GW_EINVAL);
    assert_null(r);
}

static void test_spki_hex(void **state)
{
    (void)state;
    uint8_t k[GW_SPKI_LEN];
    for (int i = 0; i < GW_SPKI_LEN; i++)
        k[i] = (uint8_t)(i * 17 + 3);
    char buf[2 * GW_SPKI_LEN + 1];
    memset(buf, 'Z', sizeof buf);
    gw_spki_hex(k, buf);
    assert_string_equal(buf, "031425364758697a8b9cadbecfe0f102132435465768798a9bacbdcedff00112");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema_idempotent, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_load_statuses, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_empty_registry, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_many_pins, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_hash_collisions, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_not_a_registry, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_nul_in_values_issue11, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reload_sees_changes, fx_setup, fx_teardown),
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_spki_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
