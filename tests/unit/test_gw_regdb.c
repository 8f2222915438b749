/*
 * test_gw_regdb.c - the registry's write side and the activity log
 * (gateway/regadmin/regdb.h) on real SQLite files in a scratch directory, read
 * back through the gateway's own snapshot (registry.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "regdb.h"
#include "registry.h"
#include "store.h"
#include "testutil.h"

#define NOW 1732838400 /* injected clock */

struct fx {
    char dir[64];
    char path[128];
    sqlite3 *db;
    char err[512];
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "gwregdb.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof f->path, "%s/reg.db", f->dir);
    if (gw_regdb_open(f->path, 1, &f->db, f->err, sizeof f->err) != 0) {
        fprintf(stderr, "open: %s\n", f->err);
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

static void pin_of(uint8_t out[GW_SPKI_LEN], uint8_t seed)
{
    for (size_t i = 0; i < GW_SPKI_LEN; i++)
        out[i] = (uint8_t)(seed * 31u + i * 7u + 1u);
}

static int64_t generation(struct fx *f)
{
    int64_t g = -1;
    assert_int_equal(gw_registry_generation(f->db, &g, f->err, sizeof f->err), 0);
    return g;
}

static int64_t count_rows(struct fx *f, const char *table)
{
    char sql[96];
    sqlite3_stmt *st;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    assert_int_equal(sqlite3_prepare_v2(f->db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void reg_ok(struct fx *f, const char *name, const char *kind, uint8_t seed, int64_t now,
                   int64_t *id)
{
    uint8_t pin[GW_SPKI_LEN];
    pin_of(pin, seed);
    int rc = gw_regdb_register(f->db, name, kind, pin, "alice", NULL, now, id, f->err,
                               sizeof f->err);
    if (rc != 0)
        fprintf(stderr, "register %s: %s\n", name, f->err);
    assert_int_equal(rc, 0);
}

/* ---------------------------------------------------------------- open */

static void test_open_missing_without_create(void **state)
{
    (void)state;
    char dir[64], path[128], err[256];
    snprintf(dir, sizeof dir, "gwregdb.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/none.db", dir);
    sqlite3 *db = (sqlite3 *)1;
    assert_int_equal(gw_regdb_open(path, 0, &db, err, sizeof err), GW_ESTORAGE);
    assert_null(db);
    assert_non_null(strstr(err, path));
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0); /* not created */
    /* with create: the schema and the generation row are there */
    assert_int_equal(gw_regdb_open(path, 1, &db, err, sizeof err), 0);
    int64_t g = -1;
    assert_int_equal(gw_registry_generation(db, &g, err, sizeof err), 0);
    assert_int_equal(g, 0);
    sqlite3_close(db);
    /* reopening an existing file without create works */
    assert_int_equal(gw_regdb_open(path, 0, &db, err, sizeof err), 0);
    sqlite3_close(db);
    char p[160];
    static const char *const sfx[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < TU_ARRAY_LEN(sfx); i++) {
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* Read-only opens (issue 11): nothing written, nothing upgraded, and an
 * older or newer registry is reported as such and left as it is. */
static void test_open_ro(void **state)
{
    struct fx *f = *state;
    sqlite3 *ro = NULL;
    uint8_t pin[GW_SPKI_LEN];
    char missing[192];

    pin_of(pin, 1);
    assert_int_equal(gw_regdb_register(f->db, "nimble-01", "nimble", pin, "t", NULL, NOW, NULL,
                                       f->err, sizeof f->err),
                     0);
    assert_int_equal(gw_regdb_open_ro(f->path, &ro, f->err, sizeof f->err), 0);
    assert_int_equal(sqlite3_db_readonly(ro, "main"), 1);
    struct gw_regdb_server sv;
    assert_int_equal(gw_regdb_show(ro, "nimble-01", &sv, f->err, sizeof f->err), 0);
    /* it cannot write, and never took the write lock: the writer can */
    assert_int_not_equal(sqlite3_exec(ro, "DELETE FROM servers", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(f->db, "BEGIN IMMEDIATE; COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(ro);
    ro = NULL;

    snprintf(missing, sizeof missing, "%s/none.db", f->dir);
    assert_int_equal(gw_regdb_open_ro(missing, &ro, f->err, sizeof f->err), GW_ESTORAGE);
    assert_null(ro);
    assert_non_null(strstr(f->err, "missing or unreadable"));
    assert_int_equal(access(missing, F_OK), -1); /* not created */

    /* an older registry: no activity table */
    assert_int_equal(sqlite3_exec(f->db, "DROP TABLE activity", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(gw_regdb_open_ro(f->path, &ro, f->err, sizeof f->err), GW_EINVAL);
    assert_null(ro);
    assert_non_null(strstr(f->err, "older schema (no activity table)"));
    assert_int_equal(count_rows(f, "sqlite_master WHERE name = 'activity'"), 0);

    /* a newer one */
    assert_int_equal(sqlite3_exec(f->db,
                                  "CREATE TABLE activity(id INTEGER PRIMARY KEY, at, actor,"
                                  " action, server_id, details);"
                                  " UPDATE meta SET value = '7' WHERE key = 'schema_version'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(gw_regdb_open_ro(f->path, &ro, f->err, sizeof f->err), GW_EINVAL);
    assert_non_null(strstr(f->err, "registry schema version 7, this panelgatectl reads 1: it was "
                                   "written by a newer panelgate"));
}

static void test_name_ok(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int ok;
    } cases[] = {
        {"nimble-01", 1}, {"a", 1},        {"A.b_c-9", 1},  {"9lives", 1},  {"_x", 1},
        {"", 0},          {".hidden", 0},  {"-opt", 0},     {"a b", 0},     {"a/b", 0},
        {"é", 0},         {"a;drop", 0},   {"x\n", 0},      {"quote\"", 0},
    };
    for (size_t i = 0; i < TU_ARRAY_LEN(cases); i++) {
        if (gw_regdb_name_ok(cases[i].name) != cases[i].ok)
            fail_msg("gw_regdb_name_ok(\"%s\") != %d", cases[i].name, cases[i].ok);
    }
    assert_false(gw_regdb_name_ok(NULL));
    char longname[300];
    memset(longname, 'a', sizeof longname);
    longname[255] = '\0';
    assert_true(gw_regdb_name_ok(longname));
    longname[255] = 'a';
    longname[256] = '\0';
    assert_false(gw_regdb_name_ok(longname));
}

/* ------------------------------------------------------------ register */

static void test_register(void **state)
{
    struct fx *f = *state;
    int64_t id = 0;
    reg_ok(f, "nimble-01", "nimble", 1, NOW, &id);
    assert_true(id > 0);

    struct gw_regdb_server s;
    assert_int_equal(gw_regdb_show(f->db, "nimble-01", &s, f->err, sizeof f->err), 0);
    assert_int_equal(s.id, id);
    assert_string_equal(s.name, "nimble-01");
    assert_string_equal(s.kind, "nimble");
    assert_string_equal(s.status, "active");
    assert_int_equal(s.created_at, NOW);
    assert_int_equal(s.n_pins, 1);
    assert_int_equal(s.n_pins_total, 1);
    uint8_t pin[GW_SPKI_LEN];
    pin_of(pin, 1);
    assert_memory_equal(s.pins[0].spki, pin, GW_SPKI_LEN);
    assert_int_equal(s.pins[0].created_at, NOW);
    assert_int_equal(s.pins[0].not_after, 0);

    /* the gateway's snapshot sees it */
    struct gw_registry *r = NULL;
    assert_int_equal(gw_registry_load(f->path, &r, f->err, sizeof f->err), 0);
    const char *why = NULL;
    const struct gw_server *g = gw_registry_find(r, pin, NOW + 1, &why);
    assert_non_null(g);
    assert_int_equal(g->id, id);
    assert_string_equal(g->name, "nimble-01");
    assert_string_equal(g->kind, "nimble");
    gw_registry_unref(r);
}

static void test_register_conflicts(void **state)
{
    struct fx *f = *state;
    reg_ok(f, "nimble-01", "nimble", 1, NOW, NULL);
    int64_t gen = generation(f);
    int64_t acts = count_rows(f, "activity");
    uint8_t pin[GW_SPKI_LEN];

    /* the same name again, with a fresh key */
    pin_of(pin, 2);
    int64_t id = 77;
    assert_int_equal(gw_regdb_register(f->db, "nimble-01", "wowza", pin, "alice", NULL, NOW,
                                       &id, f->err, sizeof f->err),
                     GW_EEXIST);
    assert_string_equal(f->err, "server nimble-01 is already registered");
    assert_int_equal(id, 0);

    /* another name, the key nimble-01 has */
    pin_of(pin, 1);
    assert_int_equal(gw_regdb_register(f->db, "wowza-01", "wowza", pin, "alice", NULL, NOW, NULL,
                                       f->err, sizeof f->err),
                     GW_EPINNED);
    assert_string_equal(f->err, "this public key is already pinned to server nimble-01");

    /* bad arguments */
    pin_of(pin, 3);
    assert_int_equal(gw_regdb_register(f->db, "bad name", "nimble", pin, "alice", NULL, NOW,
                                       NULL, f->err, sizeof f->err),
                     GW_EINVAL);
    assert_non_null(strstr(f->err, "bad server name"));
    assert_int_equal(gw_regdb_register(f->db, "ok-name", "icecast", pin, "alice", NULL, NOW,
                                       NULL, f->err, sizeof f->err),
                     GW_EINVAL);
    assert_non_null(strstr(f->err, "icecast"));
    assert_int_equal(gw_regdb_register(f->db, "ok-name", "nimble", pin, "", NULL, NOW, NULL,
                                       f->err, sizeof f->err),
                     GW_EINVAL);

    /* nothing of the failures stuck, and no transaction is left open */
    assert_int_equal(generation(f), gen);
    assert_int_equal(count_rows(f, "activity"), acts);
    assert_int_equal(count_rows(f, "servers"), 1);
    assert_int_equal(count_rows(f, "server_pins"), 1);
    assert_true(sqlite3_get_autocommit(f->db));
}

/* The caller's transaction: the change runs in a savepoint inside it and
 * goes away with a rollback. */
static void test_register_inside_caller_tx(void **state)
{
    struct fx *f = *state;
    assert_int_equal(sqlite3_exec(f->db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    reg_ok(f, "nimble-01", "nimble", 1, NOW, NULL);
    assert_false(sqlite3_get_autocommit(f->db)); /* still the caller's */
    assert_int_equal(gw_activity_add(f->db, NOW, "alice", "cert_issued", 0, "{}", f->err,
                                     sizeof f->err),
                     0);
    /* a failing change inside the transaction undoes only itself */
    uint8_t pin[GW_SPKI_LEN];
    pin_of(pin, 1);
    assert_int_equal(gw_regdb_register(f->db, "other", "nimble", pin, "alice", NULL, NOW, NULL,
                                       f->err, sizeof f->err),
                     GW_EPINNED);
    assert_false(sqlite3_get_autocommit(f->db));
    assert_int_equal(count_rows(f, "servers"), 1);
    assert_int_equal(sqlite3_exec(f->db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(count_rows(f, "servers"), 0);
    assert_int_equal(count_rows(f, "activity"), 0);
    assert_int_equal(generation(f), 0);

    assert_int_equal(sqlite3_exec(f->db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    reg_ok(f, "nimble-01", "nimble", 1, NOW, NULL);
    assert_int_equal(sqlite3_exec(f->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(count_rows(f, "servers"), 1);
    assert_int_equal(generation(f), 1);
}

/* -------------------------------------------------------------- rotate */

static void test_rotate_overlap(void **state)
{
    struct fx *f = *state;
    int64_t id;
    reg_ok(f, "nimble-01", "nimble", 1, NOW, &id);
    reg_ok(f, "wowza-01", "wowza", 9, NOW, NULL);
    uint8_t p1[GW_SPKI_LEN], p2[GW_SPKI_LEN], p9[GW_SPKI_LEN];
    pin_of(p1, 1);
    pin_of(p2, 2);
    pin_of(p9, 9);

    const int64_t t_rot = NOW + 100, overlap = 3600;
    assert_int_equal(gw_regdb_rotate(f->db, "nimble-01", p2, overlap, "bob", t_rot, f->err,
                                      sizeof f->err),
                     0);
    struct gw_regdb_server s;
    assert_int_equal(gw_regdb_show(f->db, "nimble-01", &s, f->err, sizeof f->err), 0);
    assert_int_equal(s.n_pins, 2);
    assert_int_equal(s.n_pins_total, 2);
    assert_memory_equal(s.pins[0].spki, p2, GW_SPKI_LEN); /* newest first */
    assert_int_equal(s.pins[0].created_at, t_rot);
    assert_int_equal(s.pins[0].not_after, 0);
    assert_memory_equal(s.pins[1].spki, p1, GW_SPKI_LEN);
    assert_int_equal(s.pins[1].not_after, t_rot + overlap);
    /* the other server's pin is untouched */
    assert_int_equal(gw_regdb_show(f->db, "wowza-01", &s, f->err, sizeof f->err), 0);
    assert_int_equal(s.pins[0].not_after, 0);

    /* the gateway's view: old pin accepted inside the overlap, refused after */
    struct gw_registry *r = NULL;
    assert_int_equal(gw_registry_load(f->path, &r, f->err, sizeof f->err), 0);
    const char *why = NULL;
    const struct gw_server *g = gw_registry_find(r, p1, t_rot + 1, &why);
    assert_non_null(g);
    assert_int_equal(g->id, id);
    assert_non_null(gw_registry_find(r, p1, t_rot + overlap, &why)); /* last second */
    assert_null(gw_registry_find(r, p1, t_rot + overlap + 1, &why));
    assert_string_equal(why, "pin_expired");
    g = gw_registry_find(r, p2, t_rot + overlap + 1000000, &why);
    assert_non_null(g);
    assert_int_equal(g->id, id);
    assert_non_null(gw_registry_find(r, p9, t_rot + overlap + 1, &why));
    gw_registry_unref(r);

    /* a second rotation: an earlier not_after is kept, a later one is cut */
    uint8_t p3[GW_SPKI_LEN];
    pin_of(p3, 3);
    assert_int_equal(gw_regdb_rotate(f->db, "nimble-01", p3, 86400 * 30, "bob", t_rot + 10,
                                     f->err, sizeof f->err),
                     0);
    assert_int_equal(gw_regdb_show(f->db, "nimble-01", &s, f->err, sizeof f->err), 0);
    assert_int_equal(s.n_pins, 3);
    assert_memory_equal(s.pins[0].spki, p3, GW_SPKI_LEN);
    assert_int_equal(s.pins[0].not_after, 0);
    assert_memory_equal(s.pins[1].spki, p2, GW_SPKI_LEN);
    assert_int_equal(s.pins[1].not_after, t_rot + 10 + 86400 * 30);
    assert_memory_equal(s.pins[2].spki, p1, GW_SPKI_LEN);
    assert_int_equal(s.pins[2].not_after, t_rot + overlap); /* kept */

    /* overlap 0: the old pins end now */
    uint8_t p4[GW_SPKI_LEN];
    pin_of(p4, 4);
    assert_int_equal(gw_regdb_rotate(f->db, "nimble-01", p4, 0, "bob", t_rot + 20, f->err,
                                     sizeof f->err),
                     0);
    assert_int_equal(gw_registry_load(f->path, &r, f->err, sizeof f->err), 0);
    assert_null(gw_registry_find(r, p3, t_rot + 21, &why));
    assert_string_equal(why, "pin_expired");
    assert_non_null(gw_registry_find(r, p4, t_rot + 21, &why));
    gw_registry_unref(r);
}

static void test_rotate_errors(void **state)
{
    struct fx *f = *state;
    reg_ok(f, "nimble-01", "nimble", 1, NOW, NULL);
    reg_ok(f, "wowza-01", "wowza", 2, NOW, NULL);
    int64_t gen = generation(f);
    uint8_t pin[GW_SPKI_LEN];

    pin_of(pin, 5);
    assert_int_equal(gw_regdb_rotate(f->db, "nimble-99", pin, 60, "bob", NOW, f->err,
                                     sizeof f->err),
                     GW_ENOTFOUND);
    assert_non_null(strstr(f->err, "nimble-99"));
    pin_of(pin, 2); /* wowza-01's key */
    assert_int_equal(gw_regdb_rotate(f->db, "nimble-01", pin, 60, "bob", NOW, f->err,
                                     sizeof f->err),
                     GW_EPINNED);
    assert_string_equal(f->err, "this public key is already pinned to server wowza-01");
    pin_of(pin, 1); /* its own current key */
    assert_int_equal(gw_regdb_rotate(f->db, "nimble-01", pin, 60, "bob", NOW, f->err,
                                     sizeof f->err),
                     GW_EPINNED);
    assert_non_null(strstr(f->err, "nimble-01"));
    pin_of(pin, 5);
    assert_int_equal(gw_regdb_rotate(f->db, "nimble-01", pin, -1, "bob", NOW, f->err,
                                     sizeof f->err),
                     GW_EINVAL);
    assert_int_equal(generation(f), gen);
    struct gw_regdb_server s;
    assert_int_equal(gw_regdb_show(f->db, "nimble-01", &s, f->err, sizeof f->err), 0);
    assert_int_equal(s.n_pins, 1);
    assert_int_equal(s.pins[0].not_after, 0); /* the failed rotations limited nothing */
}

/* Only 8 pins are returned; the total says how many there are. */
static void test_many_pins(void **state)
{
    struct fx *f = *state;
    reg_ok(f, "busy", "wowza", 100, NOW, NULL);
    for (uint8_t i = 1; i <= 11; i++) {
        uint8_t pin[GW_SPKI_LEN];
        pin_of(pin, (uint8_t)(100 + i));
        assert_int_equal(gw_regdb_rotate(f->db, "busy", pin, 60, "bob", NOW, f->err,
                                         sizeof f->err),
                         0);
    }
    struct gw_regdb_server s;
    assert_int_equal(gw_regdb_show(f->db, "busy", &s, f->err, sizeof f->err), 0);
    assert_int_equal(s.n_pins, 8);
    assert_int_equal(s.n_pins_total, 12);
    uint8_t newest[GW_SPKI_LEN];
    pin_of(newest, 111); /* same created_at: newest by insertion */
    assert_memory_equal(s.pins[0].spki, newest, GW_SPKI_LEN);
    assert_int_equal(s.pins[0].not_after, 0);
}

/* -------------------------------------------------------------- revoke */

static void test_revoke(void **state)
{
    struct fx *f = *state;
    reg_ok(f, "nimble-01", "nimble", 1, NOW, NULL);
    reg_ok(f, "wowza-01", "wowza", 2, NOW, NULL);
    int64_t gen = generation(f);
    assert_int_equal(gw_regdb_revoke(f->db, "nimble-01", "carol", NOW + 5, f->err, sizeof f->err),
                     0);
    assert_int_equal(generation(f), gen + 1);
    struct gw_regdb_server s;
    assert_int_equal(gw_regdb_show(f->db, "nimble-01", &s, f->err, sizeof f->err), 0);
    assert_string_equal(s.status, "revoked");

    struct gw_registry *r = NULL;
    assert_int_equal(gw_registry_load(f->path, &r, f->err, sizeof f->err), 0);
    uint8_t p1[GW_SPKI_LEN], p2[GW_SPKI_LEN];
    pin_of(p1, 1);
    pin_of(p2, 2);
    const char *why = NULL;
    assert_null(gw_registry_find(r, p1, NOW + 6, &why));
    assert_string_equal(why, "revoked");
    assert_non_null(gw_registry_find(r, p2, NOW + 6, &why));
    gw_registry_unref(r);

    /* twice: not an error, and nothing changes */
    int64_t acts = count_rows(f, "activity");
    assert_int_equal(gw_regdb_revoke(f->db, "nimble-01", "carol", NOW + 6, f->err, sizeof f->err),
                     0);
    assert_int_equal(generation(f), gen + 1);
    assert_int_equal(count_rows(f, "activity"), acts);
    assert_true(sqlite3_get_autocommit(f->db));

    assert_int_equal(gw_regdb_revoke(f->db, "ghost", "carol", NOW, f->err, sizeof f->err),
                     GW_ENOTFOUND);
    assert_non_null(strstr(f->err, "unknown server ghost"));
    assert_int_equal(gw_regdb_show(f->db, "ghost", &s, f->err, sizeof f->err), GW_ENOTFOUND);
    assert_non_null(strstr(f->err, "ghost"));
}

/* ---------------------------------------------------------- generation */

static void test_generation_per_mutation(void **state)
{
    struct fx *f = *state;
    assert_int_equal(generation(f), 0);
    reg_ok(f, "a", "nimble", 1, NOW, NULL);
    assert_int_equal(generation(f), 1);
    reg_ok(f, "b", "wowza", 2, NOW, NULL);
    assert_int_equal(generation(f), 2);
    uint8_t pin[GW_SPKI_LEN];
    pin_of(pin, 3);
    assert_int_equal(gw_regdb_rotate(f->db, "a", pin, 10, "x", NOW, f->err, sizeof f->err), 0);
    assert_int_equal(generation(f), 3);
    assert_int_equal(gw_regdb_revoke(f->db, "b", "x", NOW, f->err, sizeof f->err), 0);
    assert_int_equal(generation(f), 4);
    /* an activity row alone is no registry change */
    assert_int_equal(gw_activity_add(f->db, NOW, "gateway", "reload", 0, NULL, f->err,
                                     sizeof f->err),
                     0);
    assert_int_equal(generation(f), 4);
    /* the value is readable as an integer by a plain query, as the gateway does */
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->db,
                                        "SELECT CAST(value AS INTEGER) FROM meta"
                                        " WHERE key = 'registry_generation'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), 4);
    sqlite3_finalize(st);
    /* a second connection (panelgatectl run twice) keeps counting */
    sqlite3 *db2 = NULL;
    assert_int_equal(gw_regdb_open(f->path, 0, &db2, f->err, sizeof f->err), 0);
    assert_int_equal(gw_regdb_revoke(db2, "a", "y", NOW, f->err, sizeof f->err), 0);
    sqlite3_close(db2);
    assert_int_equal(generation(f), 5);
}

/* ------------------------------------------------------------ activity */

struct rows {
    int n;
    char text[16][640]; /* "action|actor|server|at" */
    char details[16][256];
    int stop_after;
};

static int collect(const struct gw_activity_row *row, void *ud)
{
    struct rows *r = ud;
    if (r->n < 16) {
        snprintf(r->text[r->n], sizeof r->text[r->n], "%s|%s|%s|%lld", row->action, row->actor,
                 row->server ? row->server : "-", (long long)(row->at - NOW));
        snprintf(r->details[r->n], sizeof r->details[r->n], "%s",
                 row->details ? row->details : "");
    }
    r->n++;
    return r->stop_after && r->n >= r->stop_after;
}

static void query(struct fx *f, const struct gw_activity_filter *flt, struct rows *out)
{
    memset(out, 0, sizeof *out);
    int rc = gw_activity_query(f->db, flt, collect, out, f->err, sizeof f->err);
    if (rc != 0)
        fprintf(stderr, "query: %s\n", f->err);
    assert_int_equal(rc, 0);
}

static void test_activity_rows(void **state)
{
    struct fx *f = *state;
    uint8_t pin[GW_SPKI_LEN];
    pin_of(pin, 1);
    assert_int_equal(gw_regdb_register(f->db, "nimble-01", "nimble", pin, "alice",
                                       "{\"serial\":\"1f\",\"kind\":\"nimble\"}", NOW, NULL,
                                       f->err, sizeof f->err),
                     0);
    reg_ok(f, "wowza-01", "wowza", 2, NOW + 10, NULL);
    pin_of(pin, 3);
    assert_int_equal(gw_regdb_rotate(f->db, "nimble-01", pin, 600, "bob", NOW + 20, f->err,
                                     sizeof f->err),
                     0);
    assert_int_equal(gw_regdb_revoke(f->db, "wowza-01", "carol", NOW + 30, f->err,
                                     sizeof f->err),
                     0);
    assert_int_equal(gw_activity_add(f->db, NOW + 40, "gateway", "handshake_refused", 0,
                                     "{\"reason\":\"unregistered\",\"count\":3}", f->err,
                                     sizeof f->err),
                     0);

    struct rows r;
    query(f, NULL, &r);
    assert_int_equal(r.n, 5);
    assert_string_equal(r.text[0], "register|alice|nimble-01|0");
    assert_string_equal(r.text[1], "register|alice|wowza-01|10");
    assert_string_equal(r.text[2], "rotate|bob|nimble-01|20");
    assert_string_equal(r.text[3], "revoke|carol|wowza-01|30");
    assert_string_equal(r.text[4], "handshake_refused|gateway|-|40");
    assert_string_equal(r.details[0], "{\"serial\":\"1f\",\"kind\":\"nimble\"}");

    /* the details built here are JSON with the facts */
    char hex[2 * GW_SPKI_LEN + 1];
    cJSON *j = cJSON_Parse(r.details[1]);
    assert_non_null(j);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "kind")), "wowza");
    pin_of(pin, 2);
    gw_spki_hex(pin, hex);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "spki_sha256")), hex);
    cJSON_Delete(j);
    j = cJSON_Parse(r.details[2]);
    assert_non_null(j);
    pin_of(pin, 3);
    gw_spki_hex(pin, hex);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "spki_sha256")), hex);
    assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "overlap_s")), 600);
    assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "old_pins_not_after")),
                     NOW + 620);
    cJSON_Delete(j);
    j = cJSON_Parse(r.details[3]);
    assert_non_null(j);
    cJSON_Delete(j);

    /* filters */
    struct gw_activity_filter flt = {.server = "nimble-01"};
    query(f, &flt, &r);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.text[0], "register|alice|nimble-01|0");
    assert_string_equal(r.text[1], "rotate|bob|nimble-01|20");

    flt = (struct gw_activity_filter){.action = "register"};
    query(f, &flt, &r);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.text[1], "register|alice|wowza-01|10");

    flt = (struct gw_activity_filter){.server = "nimble-01", .action = "revoke"};
    query(f, &flt, &r);
    assert_int_equal(r.n, 0);

    flt = (struct gw_activity_filter){.since = NOW + 10, .until = NOW + 30};
    query(f, &flt, &r); /* both bounds inclusive */
    assert_int_equal(r.n, 3);
    assert_string_equal(r.text[0], "register|alice|wowza-01|10");
    assert_string_equal(r.text[2], "revoke|carol|wowza-01|30");

    flt = (struct gw_activity_filter){.since = NOW + 31};
    query(f, &flt, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.text[0], "handshake_refused|gateway|-|40");

    flt = (struct gw_activity_filter){.until = NOW + 9};
    query(f, &flt, &r);
    assert_int_equal(r.n, 1);

    /* limit: the newest N, oldest first */
    flt = (struct gw_activity_filter){.limit = 2};
    query(f, &flt, &r);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.text[0], "revoke|carol|wowza-01|30");
    assert_string_equal(r.text[1], "handshake_refused|gateway|-|40");

    flt = (struct gw_activity_filter){.server = "nimble-01", .limit = 1};
    query(f, &flt, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.text[0], "rotate|bob|nimble-01|20");

    flt = (struct gw_activity_filter){.server = "nobody"};
    query(f, &flt, &r);
    assert_int_equal(r.n, 0);

    /* the callback can stop early */
    memset(&r, 0, sizeof r);
    r.stop_after = 2;
    assert_int_equal(gw_activity_query(f->db, NULL, collect, &r, f->err, sizeof f->err), 0);
    assert_int_equal(r.n, 2);

    /* actor and action are required */
    assert_int_equal(gw_activity_add(f->db, NOW, "", "x", 0, NULL, f->err, sizeof f->err),
                     GW_EINVAL);
    assert_int_equal(gw_activity_add(f->db, NOW, "x", NULL, 0, NULL, f->err, sizeof f->err),
                     GW_EINVAL);
}

/* The details built here stay valid JSON for any legal name; the actor is
 * a column of its own and is stored exactly as given. */
static void test_activity_details_json(void **state)
{
    struct fx *f = *state;
    reg_ok(f, "a.b_c-d", "nimble", 1, NOW, NULL);
    struct rows r;
    query(f, NULL, &r);
    assert_int_equal(r.n, 1);
    cJSON *j = cJSON_Parse(r.details[0]);
    assert_non_null(j);
    assert_true(cJSON_IsObject(j));
    cJSON_Delete(j);
    /* an actor with quotes is stored as given (it is a column) */
    uint8_t pin[GW_SPKI_LEN];
    pin_of(pin, 2);
    assert_int_equal(gw_regdb_register(f->db, "x", "wowza", pin, "o\"brien", NULL, NOW, NULL,
                                       f->err, sizeof f->err),
                     0);
    query(f, &(struct gw_activity_filter){.server = "x"}, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.text[0], "register|o\"brien|x|0");
}

/* ---------------------------------------------------------------- list */

struct names {
    int n;
    char name[8][256];
    char status[8][16];
    unsigned pins[8];
    int stop_after;
};

static int collect_server(const struct gw_regdb_server *s, void *ud)
{
    struct names *l = ud;
    if (l->n < 8) {
        snprintf(l->name[l->n], sizeof l->name[l->n], "%s", s->name);
        snprintf(l->status[l->n], sizeof l->status[l->n], "%s", s->status);
        l->pins[l->n] = s->n_pins_total;
    }
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

static void test_list(void **state)
{
    struct fx *f = *state;
    struct names l = {0};
    assert_int_equal(gw_regdb_list(f->db, collect_server, &l, f->err, sizeof f->err), 0);
    assert_int_equal(l.n, 0);

    reg_ok(f, "wowza-01", "wowza", 2, NOW, NULL);
    reg_ok(f, "nimble-01", "nimble", 1, NOW, NULL);
    reg_ok(f, "edge-7", "nimble", 3, NOW, NULL);
    uint8_t pin[GW_SPKI_LEN];
    pin_of(pin, 4);
    assert_int_equal(gw_regdb_rotate(f->db, "nimble-01", pin, 60, "x", NOW, f->err,
                                     sizeof f->err),
                     0);
    assert_int_equal(gw_regdb_revoke(f->db, "edge-7", "x", NOW, f->err, sizeof f->err), 0);

    memset(&l, 0, sizeof l);
    assert_int_equal(gw_regdb_list(f->db, collect_server, &l, f->err, sizeof f->err), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.name[0], "edge-7"); /* by name */
    assert_string_equal(l.status[0], "revoked");
    assert_string_equal(l.name[1], "nimble-01");
    assert_int_equal(l.pins[1], 2);
    assert_string_equal(l.name[2], "wowza-01");
    assert_string_equal(l.status[2], "active");
    assert_true(sqlite3_get_autocommit(f->db));

    memset(&l, 0, sizeof l);
    l.stop_after = 1;
    assert_int_equal(gw_regdb_list(f->db, collect_server, &l, f->err, sizeof f->err), 0);
    assert_int_equal(l.n, 1);
    assert_true(sqlite3_get_autocommit(f->db));
}

/* ------------------------------------------- retention, erasure, export */

static void frames_table(struct fx *f)
{
    assert_int_equal(sqlite3_exec(f->db,
                                  "CREATE TABLE frames(server_id INTEGER NOT NULL,"
                                  " seq INTEGER NOT NULL, ts_ms INTEGER NOT NULL,"
                                  " received_ms INTEGER NOT NULL, reported_name TEXT,"
                                  " body BLOB NOT NULL, PRIMARY KEY(server_id, seq))"
                                  " WITHOUT ROWID",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
}

/* n frames of |sid|, seq from |seq0|, received at received_ms. */
static void add_frames(struct fx *f, int64_t sid, int64_t seq0, int n, int64_t received_ms)
{
    sqlite3_stmt *st;
    static const uint8_t body[] = {0x81, 0xa1, 'v', 0x01}; /* {"v":1} */
    assert_int_equal(sqlite3_prepare_v2(f->db,
                                        "INSERT INTO frames VALUES(?1, ?2, ?3, ?4, 'edge', ?5)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(f->db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, sid);
        sqlite3_bind_int64(st, 2, seq0 + i);
        sqlite3_bind_int64(st, 3, 1000 + seq0 + i);
        sqlite3_bind_int64(st, 4, received_ms);
        sqlite3_bind_blob(st, 5, body, sizeof body, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    assert_int_equal(sqlite3_exec(f->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_finalize(st);
}

static int64_t count_where(struct fx *f, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void test_purge_chunks(void **state)
{
    struct fx *f = *state;
    int64_t a, b, n = -1;
    reg_ok(f, "a", "nimble", 1, NOW, &a);
    reg_ok(f, "b", "wowza", 2, NOW, &b);
    int64_t gen = generation(f);

    /* the frames table is required */
    assert_int_equal(gw_regdb_purge(f->db, 5000, 0, "ops", NOW, &n, f->err, sizeof f->err),
                     GW_EINVAL);
    assert_non_null(strstr(f->err, "frames"));
    frames_table(f);

    add_frames(f, a, 1, 250, 1000);  /* old */
    add_frames(f, b, 1, 23, 4999);   /* old, just */
    add_frames(f, a, 1000, 10, 5000); /* at the cutoff: kept */
    add_frames(f, b, 1000, 7, 9000);

    /* chunks of 100: 273 rows in 3 transactions; the count is exact */
    assert_int_equal(gw_regdb_purge(f->db, 5000, 100, "ops", NOW + 5, &n, f->err,
                                    sizeof f->err),
                     0);
    assert_int_equal(n, 273);
    assert_int_equal(count_rows(f, "frames"), 17);
    assert_int_equal(count_where(f, "SELECT min(received_ms) FROM frames"), 5000);
    assert_int_equal(sqlite3_get_autocommit(f->db), 1);
    /* a chunk that divides the count exactly, then nothing left */
    add_frames(f, a, 2000, 200, 10);
    assert_int_equal(gw_regdb_purge(f->db, 5000, 100, "ops", NOW + 6, &n, f->err,
                                    sizeof f->err),
                     0);
    assert_int_equal(n, 200);
    assert_int_equal(gw_regdb_purge(f->db, 5000, 0, "ops", NOW + 7, &n, f->err, sizeof f->err),
                     0);
    assert_int_equal(n, 0);
    assert_int_equal(count_rows(f, "frames"), 17);

    /* one "purge" row per purge, no server, counts in details */
    assert_int_equal(count_where(f, "SELECT count(*) FROM activity WHERE action = 'purge'"
                                    " AND actor = 'ops' AND server_id IS NULL"),
                     3);
    assert_int_equal(count_where(f, "SELECT json_extract(details, '$.frames') FROM activity"
                                    " WHERE action = 'purge' AND at = 1732838405"),
                     273);
    assert_int_equal(count_where(f, "SELECT json_extract(details, '$.received_before_ms')"
                                    " FROM activity WHERE action = 'purge' LIMIT 1"),
                     5000);
    /* the registry did not change */
    assert_int_equal(generation(f), gen);
    /* no actor, or inside a caller's transaction: refused */
    assert_int_equal(gw_regdb_purge(f->db, 5000, 0, "", NOW, &n, f->err, sizeof f->err),
                     GW_EINVAL);
    assert_int_equal(sqlite3_exec(f->db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(gw_regdb_purge(f->db, 5000, 0, "ops", NOW, &n, f->err, sizeof f->err),
                     GW_EINVAL);
    assert_int_equal(sqlite3_exec(f->db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
}

/* A commit hook that lets |left| more write transactions commit, then
 * turns every later one into a rollback: from the database's side, the
 * purging process died there. */
static int commit_allow(void *ud)
{
    int *left = ud;
    if (*left > 0) {
        (*left)--;
        return 0;
    }
    return 1;
}

/* Issue 11: a purge that stops after some chunks (killed; the database
 * failing for good) has deleted frames; its "purge" row must count them,
 * so it is written with the first chunk and updated with each. */
static void test_purge_issue11_row_survives(void **state)
{
    struct fx *f = *state;
    int64_t a, n = -1;
    frames_table(f);
    reg_ok(f, "a", "nimble", 1, NOW, &a);
    for (int chunks = 1; chunks <= 3; chunks++) {
        int left = chunks;
        add_frames(f, a, 100 * chunks, 5, 1000);
        sqlite3_commit_hook(f->db, commit_allow, &left);
        assert_int_not_equal(gw_regdb_purge(f->db, 5000, 1, "ops", NOW + chunks, &n, f->err,
                                            sizeof f->err),
                             0);
        sqlite3_commit_hook(f->db, NULL, NULL);
        /* nothing after those commits reached the database */
        assert_int_equal(count_rows(f, "frames"), 5 - chunks);
        char q[256];
        snprintf(q, sizeof q,
                 "SELECT count(*) FROM activity WHERE action = 'purge' AND at = %lld",
                 (long long)(NOW + chunks));
        assert_int_equal(count_where(f, q), 1);
        snprintf(q, sizeof q,
                 "SELECT json_extract(details, '$.frames') FROM activity"
                 " WHERE action = 'purge' AND at = %lld",
                 (long long)(NOW + chunks));
        assert_int_equal(count_where(f, q), chunks);
        snprintf(q, sizeof q,
                 "SELECT json_extract(details, '$.complete') = 0 AND actor = 'ops'"
                 " AND server_id IS NULL AND json_extract(details, '$.received_before_ms') = 5000"
                 " FROM activity WHERE action = 'purge' AND at = %lld",
                 (long long)(NOW + chunks));
        assert_int_equal(count_where(f, q), 1);
        assert_int_equal(sqlite3_exec(f->db, "DELETE FROM frames", NULL, NULL, NULL), SQLITE_OK);
    }
    /* a purge that finishes says so, in the same one row */
    add_frames(f, a, 1, 3, 1000);
    assert_int_equal(gw_regdb_purge(f->db, 5000, 1, "ops", NOW + 9, &n, f->err, sizeof f->err),
                     0);
    assert_int_equal(n, 3);
    assert_int_equal(count_where(f, "SELECT count(*) FROM activity WHERE action = 'purge'"
                                    " AND at = 1732838409"),
                     1);
    assert_int_equal(count_where(f, "SELECT json_extract(details, '$.frames') = 3"
                                    " AND json_extract(details, '$.complete') = 1"
                                    " FROM activity WHERE action = 'purge' AND at = 1732838409"),
                     1);
}

static void test_erase(void **state)
{
    struct fx *f = *state;
    int64_t a, b, c, nf = -1, na = -1;
    uint8_t pin[GW_SPKI_LEN];
    frames_table(f);
    reg_ok(f, "a", "nimble", 1, NOW, &a);
    reg_ok(f, "b", "wowza", 2, NOW, &b);
    pin_of(pin, 3);
    assert_int_equal(gw_regdb_rotate(f->db, "b", pin, 60, "alice", NOW + 1, f->err,
                                     sizeof f->err),
                     0);
    assert_int_equal(gw_activity_add(f->db, NOW + 2, "gateway", "disconnected", b, "{}",
                                     f->err, sizeof f->err),
                     0);
    add_frames(f, a, 1, 5, 1000);
    add_frames(f, b, 1, 12, 1000);
    int64_t gen = generation(f);

    assert_int_equal(gw_regdb_erase(f->db, "nobody", "ops", NOW, &nf, &na, f->err,
                                    sizeof f->err),
                     GW_ENOTFOUND);
    assert_int_equal(gw_regdb_erase(f->db, "-bad", "ops", NOW, &nf, &na, f->err,
                                    sizeof f->err),
                     GW_EINVAL);
    assert_int_equal(gw_regdb_erase(f->db, "b", "ops", NOW + 10, &nf, &na, f->err,
                                    sizeof f->err),
                     0);
    assert_int_equal(nf, 12);
    assert_int_equal(na, 3); /* register, rotate, disconnected */
    assert_true(generation(f) > gen);

    /* nothing of b is left but the erase record */
    char q[160];
    snprintf(q, sizeof q, "SELECT count(*) FROM frames WHERE server_id = %lld", (long long)b);
    assert_int_equal(count_where(f, q), 0);
    snprintf(q, sizeof q, "SELECT count(*) FROM activity WHERE server_id = %lld", (long long)b);
    assert_int_equal(count_where(f, q), 0);
    snprintf(q, sizeof q, "SELECT count(*) FROM server_pins WHERE server_id = %lld",
             (long long)b);
    assert_int_equal(count_where(f, q), 0);
    assert_int_equal(count_where(f, "SELECT count(*) FROM servers WHERE name = 'b'"), 0);
    assert_int_equal(count_where(f, "SELECT count(*) FROM activity WHERE action = 'erase'"
                                    " AND actor = 'ops' AND server_id IS NULL"
                                    " AND json_extract(details, '$.server') = 'b'"
                                    " AND json_extract(details, '$.frames') = 12"
                                    " AND json_extract(details, '$.pins') = 2"
                                    " AND json_extract(details, '$.activity_rows') = 3"),
                     1);
    /* a untouched */
    assert_int_equal(count_rows(f, "frames"), 5);
    assert_int_equal(count_rows(f, "server_pins"), 1);
    snprintf(q, sizeof q, "SELECT count(*) FROM activity WHERE server_id = %lld", (long long)a);
    assert_int_equal(count_where(f, q), 1);
    struct gw_regdb_server s;
    assert_int_equal(gw_regdb_show(f->db, "b", &s, f->err, sizeof f->err), GW_ENOTFOUND);

    /* b's id is never given to a new server; rows that land late for the
     * erased id go with the next erasure */
    assert_int_equal(gw_activity_add(f->db, NOW + 11, "gateway", "disconnected", b, "{}",
                                     f->err, sizeof f->err),
                     0);
    add_frames(f, b, 100, 2, 2000);
    reg_ok(f, "c", "nimble", 4, NOW + 12, &c);
    assert_true(c > b);
    assert_int_equal(gw_regdb_erase(f->db, "a", "ops", NOW + 13, &nf, &na, f->err,
                                    sizeof f->err),
                     0);
    assert_int_equal(nf, 5);
    assert_int_equal(count_rows(f, "frames"), 0);
    snprintf(q, sizeof q, "SELECT count(*) FROM activity WHERE server_id = %lld", (long long)b);
    assert_int_equal(count_where(f, q), 0);
    reg_ok(f, "d", "nimble", 5, NOW + 14, &a);
    assert_true(a > c);
}

/* gw_regdb_erase_data (panelgate-store's erase): the frames, samples and
 * stream paths of one id, nothing of another nor of the registry; inside a
 * caller's transaction it is a savepoint that goes with the caller's
 * rollback. */
static void test_erase_data(void **state)
{
    struct fx *f = *state;
    int64_t a, nf = -1, ns = -1;
    char q[512];
    assert_int_equal(gw_store_schema(f->db, f->err, sizeof f->err), 0);
    reg_ok(f, "a", "nimble", 1, NOW, &a);
    int64_t gen = generation(f);
    for (int64_t id = 7; id <= 8; id++) {
        add_frames(f, id, 1, 3, 1000);
        snprintf(q, sizeof q,
                 "INSERT INTO server_samples VALUES(%lld, 1, 1, 1.0, 1, 2, 3, 4, 5, 6);"
                 "INSERT INTO stream_paths(server_id, vhost, app, instance, stream, last_ms)"
                 " VALUES(%lld, 'v', 'a', 'i', 's', 1000);"
                 "INSERT INTO stream_samples VALUES(%lld, 1, last_insert_rowid(), 1, 2, 3, 4);"
                 "INSERT INTO geo_samples VALUES(%lld, 1, 'DE', 3320, 1, 2, 3);",
                 (long long)id, (long long)id, (long long)id, (long long)id);
        assert_int_equal(sqlite3_exec(f->db, q, NULL, NULL, NULL), SQLITE_OK);
    }
    int64_t paths_gen =
        count_where(f, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'stream_paths_generation'");

    assert_int_equal(gw_regdb_erase_data(f->db, 0, &nf, &ns, f->err, sizeof f->err), GW_EINVAL);
    /* the caller's rollback takes it back */
    assert_int_equal(sqlite3_exec(f->db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(gw_regdb_erase_data(f->db, 7, &nf, &ns, f->err, sizeof f->err), 0);
    assert_int_equal(count_where(f, "SELECT count(*) FROM frames WHERE server_id = 7"), 0);
    assert_int_equal(sqlite3_exec(f->db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(count_where(f, "SELECT count(*) FROM frames WHERE server_id = 7"), 3);

    assert_int_equal(gw_regdb_erase_data(f->db, 7, &nf, &ns, f->err, sizeof f->err), 0);
    assert_int_equal(nf, 3);
    assert_int_equal(ns, 4); /* one row in each of the four tables */
    static const char *const tables[] = {"frames", "server_samples", "stream_samples",
                                         "geo_samples", "stream_paths"};
    for (size_t i = 0; i < TU_ARRAY_LEN(tables); i++) {
        snprintf(q, sizeof q, "SELECT count(*) FROM %s WHERE server_id = 7", tables[i]);
        assert_int_equal(count_where(f, q), 0);
        snprintf(q, sizeof q, "SELECT count(*) FROM %s WHERE server_id = 8", tables[i]);
        assert_int_equal(count_where(f, q), i == 0 ? 3 : 1);
    }
    /* cached path ids are forgotten; the registry is not touched */
    assert_true(count_where(f, "SELECT CAST(value AS INTEGER) FROM meta"
                               " WHERE key = 'stream_paths_generation'") > paths_gen);
    assert_int_equal(generation(f), gen);
    assert_int_equal(count_rows(f, "servers"), 1);
    assert_int_equal(count_where(f, "SELECT count(*) FROM activity WHERE action = 'erase'"), 0);
    /* nothing left: not an error */
    assert_int_equal(gw_regdb_erase_data(f->db, 7, &nf, &ns, f->err, sizeof f->err), 0);
    assert_int_equal(nf, 0);
}

struct exp_seen {
    int servers, pins, frames, acts;
    int64_t server_id;
    uint64_t last_seq;
    int body_ok;
    int stop_at_frame;
};

static int ex_server(const struct gw_regdb_server *s, void *ud)
{
    struct exp_seen *e = ud;
    e->servers++;
    e->server_id = s->id;
    return strcmp(s->name, "a") != 0;
}

static int ex_pin(const struct gw_regdb_pin *p, void *ud)
{
    (void)p;
    ((struct exp_seen *)ud)->pins++;
    return 0;
}

static int ex_frame(const struct gw_regdb_frame *fr, void *ud)
{
    struct exp_seen *e = ud;
    e->frames++;
    if (fr->seq <= e->last_seq && e->frames > 1)
        e->body_ok = 0;
    e->last_seq = fr->seq;
    if (fr->body_len != 4 || fr->body[0] != 0x81 || fr->ts_ms != 1000 + fr->seq ||
        fr->reported_name == NULL || strcmp(fr->reported_name, "edge") != 0)
        e->body_ok = 0;
    return e->stop_at_frame && e->frames == e->stop_at_frame;
}

static int ex_act(const struct gw_activity_row *r, void *ud)
{
    struct exp_seen *e = ud;
    e->acts++;
    if (r->server == NULL || strcmp(r->server, "a") != 0)
        e->body_ok = 0;
    return 0;
}

static void test_export(void **state)
{
    struct fx *f = *state;
    int64_t a, b;
    uint8_t pin[GW_SPKI_LEN];
    static const struct gw_regdb_export_ops ops = {ex_server, ex_pin, ex_frame, ex_act};
    frames_table(f);
    reg_ok(f, "a", "nimble", 1, NOW, &a);
    reg_ok(f, "b", "wowza", 2, NOW, &b);
    for (uint8_t i = 0; i < 10; i++) { /* more pins than gw_regdb_show keeps */
        pin_of(pin, (uint8_t)(10 + i));
        assert_int_equal(gw_regdb_rotate(f->db, "a", pin, 60, "alice", NOW + 1 + i, f->err,
                                         sizeof f->err),
                         0);
    }
    add_frames(f, a, 1, 30, 1000);
    add_frames(f, b, 1, 4, 1000);
    /* a seq above INT64_MAX comes back as the uint64 */
    add_frames(f, a, INT64_MIN, 1, 1000);

    struct exp_seen e = {.body_ok = 1};
    assert_int_equal(gw_regdb_export(f->db, "a", &ops, &e, "json", "ops", NOW + 20, f->err,
                                     sizeof f->err),
                     0);
    assert_int_equal(e.servers, 1);
    assert_int_equal(e.server_id, a);
    assert_int_equal(e.pins, 11);
    assert_int_equal(e.frames, 31);
    assert_int_equal(e.acts, 11); /* register + 10 rotations */
    assert_int_equal(e.last_seq, (uint64_t)1 << 63);
    assert_int_equal(e.body_ok, 1); /* by seq as uint64, every field */
    /* recorded after the read: one "export" row for a */
    assert_int_equal(count_where(f, "SELECT count(*) FROM activity WHERE action = 'export'"
                                    " AND actor = 'ops'"
                                    " AND json_extract(details, '$.frames') = 31"
                                    " AND json_extract(details, '$.format') = 'json'"),
                     1);
    assert_int_equal(sqlite3_get_autocommit(f->db), 1);

    /* a callback stopping the export: an error, nothing recorded */
    struct exp_seen e2 = {.body_ok = 1, .stop_at_frame = 3};
    assert_int_equal(gw_regdb_export(f->db, "a", &ops, &e2, "json", "ops", NOW + 21, f->err,
                                     sizeof f->err),
                     GW_ESTORAGE);
    assert_int_equal(e2.frames, 3);
    assert_int_equal(e2.acts, 0);
    assert_int_equal(count_where(f, "SELECT count(*) FROM activity WHERE action = 'export'"), 1);
    assert_int_equal(sqlite3_get_autocommit(f->db), 1);
    /* unknown server; NULL actor records nothing */
    struct exp_seen e3 = {.body_ok = 1};
    assert_int_equal(gw_regdb_export(f->db, "zz", &ops, &e3, "json", "ops", NOW, f->err,
                                     sizeof f->err),
                     GW_ENOTFOUND);
    assert_int_equal(gw_regdb_export(f->db, "a", &ops, &e3, "json", NULL, NOW, f->err,
                                     sizeof f->err),
                     0);
    assert_int_equal(count_where(f, "SELECT count(*) FROM activity WHERE action = 'export'"), 1);
    assert_int_equal(e3.acts, 12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_missing_without_create),
        cmocka_unit_test(test_name_ok),
        cmocka_unit_test_setup_teardown(test_open_ro, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_register, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_register_conflicts, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_register_inside_caller_tx, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rotate_overlap, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rotate_errors, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_many_pins, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_revoke, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_generation_per_mutation, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_activity_rows, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_activity_details_json, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_list, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_purge_chunks, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_purge_issue11_row_survives, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_erase, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_erase_data, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_export, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
