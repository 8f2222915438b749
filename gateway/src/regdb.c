/*
 * regdb.c - the write side of the registry and the activity log (regdb.h).
 *
 * Every change to servers or server_pins runs in one transaction that also
 * advances meta.registry_generation and appends its activity row, so the
 * gateway (which polls the generation) never sees a change without its log
 * entry, nor a log entry for a change that did not happen.  When the caller
 * already holds a transaction (panelgatectl adds a cert_issued row next to
 * a registration), the change runs in a savepoint inside it instead.
 *
 * Activity details are JSON text; the ones built here are escaped by hand
 * (gw_core does not link cJSON).
 */
#include "regdb.h"
#include "err.h"
#include "problem.h"
#include "samples.h"
#include "store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUSY_TIMEOUT_MS 5000


static int dberr(sqlite3 *db, const char *what, char *err, size_t errlen)
{
    gw_seterr(err, errlen, "database: %s: %s", what, sqlite3_errmsg(db));
    return GW_REG_EFAIL;
}

/* ------------------------------------------------------------ open */

static int exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        gw_seterr(err, errlen, "database: %s: %s", sql, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return GW_REG_EFAIL;
    }
    return 0;
}

int gw_regdb_open(const char *path, int create, sqlite3 **out, char *err, size_t errlen)
{
    int rv = GW_REG_EFAIL;
    sqlite3 *db = NULL;
    char serr[256];

    if (out == NULL)
        return GW_REG_EARG;
    *out = NULL;
    if (path == NULL || *path == '\0') {
        gw_seterr(err, errlen, "database: no path");
        return GW_REG_EARG;
    }
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        if (!create && rc == SQLITE_CANTOPEN)
            gw_seterr(err, errlen, "database %s: cannot open (missing or unreadable)", path);
        else
            gw_seterr(err, errlen, "database %s: cannot open: %s", path,
                   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        goto out;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    /* journal_mode answers with a row; sqlite3_exec ignores it. */
    char *msg = NULL;
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, &msg) != SQLITE_OK) {
        gw_seterr(err, errlen, "database %s: %s", path, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        goto out;
    }
    if (exec_sql(db, "PRAGMA foreign_keys=ON", err, errlen) != 0)
        goto out;
    if (gw_registry_schema(db, serr, sizeof serr) != 0) {
        gw_seterr(err, errlen, "database %s: %s", path, serr);
        goto out;
    }
    /* The gateway polls this row; registry.c's schema does not make it. */
    if (exec_sql(db,
                 "INSERT OR IGNORE INTO meta(key, value) VALUES('registry_generation', 0)",
                 err, errlen) != 0)
        goto out;
    *out = db;
    db = NULL;
    rv = 0;
out:
    sqlite3_close(db);
    return rv;
}

int gw_regdb_name_ok(const char *name)
{
    if (name == NULL || name[0] == '\0' || name[0] == '.' || name[0] == '-')
        return 0;
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok || n >= 255)
            return 0;
    }
    return 1;
}

static int kind_ok(const char *kind)
{
    return kind != NULL && (strcmp(kind, "nimble") == 0 || strcmp(kind, "wowza") == 0);
}

/* ---------------------------------------------------- transactions */

/* A transaction of its own, or a savepoint in the caller's. */
struct tx {
    sqlite3 *db;
    int nested;
    int open;
};

static int tx_begin(struct tx *t, sqlite3 *db, char *err, size_t errlen)
{
    t->db = db;
    t->nested = !sqlite3_get_autocommit(db);
    t->open = 0;
    if (exec_sql(db, t->nested ? "SAVEPOINT gw_regdb" : "BEGIN IMMEDIATE", err, errlen) != 0)
        return GW_REG_EFAIL;
    t->open = 1;
    return 0;
}

static int tx_commit(struct tx *t, char *err, size_t errlen)
{
    if (exec_sql(t->db, t->nested ? "RELEASE gw_regdb" : "COMMIT", err, errlen) != 0)
        return GW_REG_EFAIL;
    t->open = 0;
    return 0;
}

static void tx_rollback(struct tx *t)
{
    if (!t->open)
        return;
    if (t->nested) {
        sqlite3_exec(t->db, "ROLLBACK TO gw_regdb", NULL, NULL, NULL);
        sqlite3_exec(t->db, "RELEASE gw_regdb", NULL, NULL, NULL);
    } else if (!sqlite3_get_autocommit(t->db)) {
        sqlite3_exec(t->db, "ROLLBACK", NULL, NULL, NULL);
    }
    t->open = 0;
}

static int bump_generation(sqlite3 *db, char *err, size_t errlen)
{
    /* meta.value has TEXT affinity: the number is stored as its decimal
     * text, and read back with CAST. */
    return exec_sql(db,
                    "INSERT OR REPLACE INTO meta(key, value) VALUES('registry_generation',"
                    " COALESCE((SELECT CAST(value AS INTEGER) FROM meta"
                    " WHERE key = 'registry_generation'), 0) + 1)",
                    err, errlen);
}

int gw_regdb_generation(sqlite3 *db, int64_t *gen, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_REG_EFAIL;
    if (db == NULL || gen == NULL)
        return GW_REG_EARG;
    *gen = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT CAST(value AS INTEGER) FROM meta"
                           " WHERE key = 'registry_generation'",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = dberr(db, "registry_generation", err, errlen);
        goto out;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *gen = sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE) {
        rv = dberr(db, "registry_generation", err, errlen);
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

/* ------------------------------------------------------ JSON text */

/* Activity details, built on pa_buf and gw_json_escape (problem.c) and
 * kept NUL-terminated so the text can be bound as it is. */
struct jbuf {
    struct pa_buf b;
    int oom;
};

static void jb_put(struct jbuf *j, const char *s, size_t n)
{
    if (j->oom || pa_buf_append(&j->b, s, n) != 0 || pa_buf_reserve(&j->b, 1) != 0) {
        j->oom = 1;
        return;
    }
    j->b.data[j->b.len] = '\0';
}

static void jb_raw(struct jbuf *j, const char *s)
{
    jb_put(j, s, strlen(s));
}

static const char *jb_text(const struct jbuf *j)
{
    return (const char *)j->b.data;
}

static void jb_free(struct jbuf *j)
{
    pa_buf_cleanup(&j->b);
}

static void jb_str(struct jbuf *j, const char *s)
{
    jb_put(j, "\"", 1);
    if (!j->oom && gw_json_escape(&j->b, s) != 0)
        j->oom = 1;
    jb_put(j, "\"", 1);
}

static void jb_key(struct jbuf *b, const char *k)
{
    jb_raw(b, b->b.len > 1 ? "," : "");
    jb_str(b, k);
    jb_put(b, ":", 1);
}

static void jb_kstr(struct jbuf *b, const char *k, const char *v)
{
    jb_key(b, k);
    jb_str(b, v);
}

static void jb_kint(struct jbuf *b, const char *k, int64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)v);
    jb_key(b, k);
    jb_raw(b, num);
}

/* ------------------------------------------------------ mutations */

static int find_server(sqlite3 *db, const char *name, int64_t *id, char *status, size_t slen,
                       char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_REG_EFAIL;
    if (sqlite3_prepare_v2(db, "SELECT id, status FROM servers WHERE name = ?1", -1, &st,
                           NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
        rv = dberr(db, "looking up a server", err, errlen);
        goto out;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        gw_seterr(err, errlen, "unknown server %s (not registered)", name);
        rv = GW_REG_ENOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        rv = dberr(db, "looking up a server", err, errlen);
        goto out;
    }
    *id = sqlite3_column_int64(st, 0);
    if (status != NULL) {
        const char *s = (const char *)sqlite3_column_text(st, 1);
        snprintf(status, slen, "%s", s ? s : "");
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

/* The name of the server that pins |spki| ("" when none); 0 or EFAIL. */
static int pin_owner(sqlite3 *db, const uint8_t spki[GW_SPKI_LEN], char *owner, size_t olen,
                     char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_REG_EFAIL;
    owner[0] = '\0';
    if (sqlite3_prepare_v2(db,
                           "SELECT s.name FROM server_pins p JOIN servers s ON s.id = p.server_id"
                           " WHERE p.spki_sha256 = ?1",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_blob(st, 1, spki, GW_SPKI_LEN, SQLITE_STATIC) != SQLITE_OK) {
        rv = dberr(db, "looking up a pin", err, errlen);
        goto out;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *n = (const char *)sqlite3_column_text(st, 0);
        snprintf(owner, olen, "%s", n ? n : "?");
    } else if (rc != SQLITE_DONE) {
        rv = dberr(db, "looking up a pin", err, errlen);
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

static int pin_in_use(sqlite3 *db, const uint8_t spki[GW_SPKI_LEN], char *err, size_t errlen)
{
    char owner[256];
    int rv = pin_owner(db, spki, owner, sizeof owner, err, errlen);
    if (rv != 0)
        return rv;
    if (owner[0] != '\0') {
        gw_seterr(err, errlen, "this public key is already pinned to server %s", owner);
        return GW_REG_EPINUSE;
    }
    return 0;
}

static int add_pin(sqlite3 *db, int64_t server_id, const uint8_t spki[GW_SPKI_LEN], int64_t now,
                   char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_REG_EFAIL;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO server_pins(spki_sha256, server_id, not_after, created_at)"
                           " VALUES(?1, ?2, NULL, ?3)",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = dberr(db, "adding a pin", err, errlen);
        goto out;
    }
    sqlite3_bind_blob(st, 1, spki, GW_SPKI_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, server_id);
    sqlite3_bind_int64(st, 3, now);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        if (sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_PRIMARYKEY ||
            sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_UNIQUE) {
            /* checked before; another writer won the race */
            char owner[256];
            sqlite3_reset(st);
            if (pin_owner(db, spki, owner, sizeof owner, err, errlen) == 0)
                gw_seterr(err, errlen, "this public key is already pinned to server %s",
                       owner[0] ? owner : "(another)");
            rv = GW_REG_EPINUSE;
        } else {
            rv = dberr(db, "adding a pin", err, errlen);
        }
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

int gw_regdb_register(sqlite3 *db, const char *name, const char *kind,
                      const uint8_t spki[GW_SPKI_LEN], const char *actor, const char *details,
                      int64_t now, int64_t *id_out, char *err, size_t errlen)
{
    int rv = GW_REG_EFAIL;
    sqlite3_stmt *st = NULL;
    struct tx t = {0};
    struct jbuf jb = {0};

    if (id_out != NULL)
        *id_out = 0;
    if (db == NULL || spki == NULL || actor == NULL || *actor == '\0') {
        gw_seterr(err, errlen, "register: missing argument");
        return GW_REG_EARG;
    }
    if (!gw_regdb_name_ok(name)) {
        gw_seterr(err, errlen,
               "bad server name '%.64s': 1..255 of A-Z a-z 0-9 . _ -, not starting with . or -",
               name ? name : "");
        return GW_REG_EARG;
    }
    if (!kind_ok(kind)) {
        gw_seterr(err, errlen, "bad kind '%.32s': nimble or wowza", kind ? kind : "");
        return GW_REG_EARG;
    }
    if (details == NULL) {
        char hex[2 * GW_SPKI_LEN + 1];
        gw_spki_hex(spki, hex);
        jb_raw(&jb, "{");
        jb_kstr(&jb, "kind", kind);
        jb_kstr(&jb, "spki_sha256", hex);
        jb_raw(&jb, "}");
        if (jb.oom) {
            gw_seterr(err, errlen, "register: out of memory");
            goto out;
        }
        details = jb_text(&jb);
    }

    if ((rv = tx_begin(&t, db, err, errlen)) != 0)
        goto out;
    int64_t other;
    rv = find_server(db, name, &other, NULL, 0, err, errlen);
    if (rv == 0) {
        gw_seterr(err, errlen, "server %s is already registered", name);
        rv = GW_REG_EEXISTS;
        goto out;
    }
    if (rv != GW_REG_ENOTFOUND)
        goto out;
    if ((rv = pin_in_use(db, spki, err, errlen)) != 0)
        goto out;

    rv = GW_REG_EFAIL;
    if (sqlite3_prepare_v2(db,
                           /* ids are never reused after an erasure */
                           "INSERT INTO servers(id, name, kind, status, created_at)"
                           " VALUES(MAX(COALESCE((SELECT MAX(id) FROM servers), 0),"
                           " COALESCE((SELECT CAST(value AS INTEGER) FROM meta"
                           " WHERE key = 'server_id_floor'), 0)) + 1, ?1, ?2, 'active', ?3)",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = dberr(db, "adding a server", err, errlen);
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    if (sqlite3_step(st) != SQLITE_DONE) {
        if (sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_UNIQUE) {
            gw_seterr(err, errlen, "server %s is already registered", name);
            rv = GW_REG_EEXISTS;
        } else {
            rv = dberr(db, "adding a server", err, errlen);
        }
        goto out;
    }
    int64_t id = sqlite3_last_insert_rowid(db);
    if ((rv = add_pin(db, id, spki, now, err, errlen)) != 0 ||
        (rv = bump_generation(db, err, errlen)) != 0 ||
        (rv = gw_activity_add(db, now, actor, "register", id, details, err, errlen)) != 0 ||
        (rv = tx_commit(&t, err, errlen)) != 0)
        goto out;
    if (id_out != NULL)
        *id_out = id;
    rv = 0;
out:
    sqlite3_finalize(st);
    tx_rollback(&t);
    jb_free(&jb);
    return rv;
}

/* Runs |sql|, a statement with one or two integer parameters (?1 = a,
 * ?2 = b when it has one); *changes (optional) gets the row count.  Errors
 * name |what|. */
static int exec_int(sqlite3 *db, const char *sql, int64_t a, int64_t b, const char *what,
                    int64_t *changes, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_REG_EFAIL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        rv = dberr(db, what, err, errlen);
        goto out;
    }
    sqlite3_bind_int64(st, 1, a);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, b);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rv = dberr(db, what, err, errlen);
        goto out;
    }
    if (changes != NULL)
        *changes = sqlite3_changes(db);
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

int gw_regdb_rotate(sqlite3 *db, const char *name, const uint8_t spki[GW_SPKI_LEN],
                    int64_t overlap_s, const char *actor, int64_t now, char *err, size_t errlen)
{
    int rv = GW_REG_EFAIL;
    struct tx t = {0};
    struct jbuf jb = {0};

    if (db == NULL || spki == NULL || actor == NULL || *actor == '\0' || overlap_s < 0) {
        gw_seterr(err, errlen, "rotate: bad argument");
        return GW_REG_EARG;
    }
    if (!gw_regdb_name_ok(name)) {
        gw_seterr(err, errlen, "bad server name '%.64s'", name ? name : "");
        return GW_REG_EARG;
    }
    if ((rv = tx_begin(&t, db, err, errlen)) != 0)
        goto out;
    int64_t id;
    if ((rv = find_server(db, name, &id, NULL, 0, err, errlen)) != 0 ||
        (rv = pin_in_use(db, spki, err, errlen)) != 0)
        goto out;

    int64_t not_after = now + overlap_s, limited;
    if ((rv = exec_int(db,
                       "UPDATE server_pins SET not_after = ?1"
                       " WHERE server_id = ?2 AND (not_after IS NULL OR not_after > ?1)",
                       not_after, id, "limiting the old pins", &limited, err, errlen)) != 0)
        goto out;
    rv = GW_REG_EFAIL;

    char hex[2 * GW_SPKI_LEN + 1];
    gw_spki_hex(spki, hex);
    jb_raw(&jb, "{");
    jb_kstr(&jb, "spki_sha256", hex);
    jb_kint(&jb, "overlap_s", overlap_s);
    jb_kint(&jb, "old_pins_not_after", not_after);
    jb_kint(&jb, "old_pins_limited", limited);
    jb_raw(&jb, "}");
    if (jb.oom) {
        gw_seterr(err, errlen, "rotate: out of memory");
        goto out;
    }
    if ((rv = add_pin(db, id, spki, now, err, errlen)) != 0 ||
        (rv = bump_generation(db, err, errlen)) != 0 ||
        (rv = gw_activity_add(db, now, actor, "rotate", id, jb_text(&jb), err, errlen)) != 0 ||
        (rv = tx_commit(&t, err, errlen)) != 0)
        goto out;
    rv = 0;
out:
    tx_rollback(&t);
    jb_free(&jb);
    return rv;
}

int gw_regdb_revoke(sqlite3 *db, const char *name, const char *actor, int64_t now, char *err,
                    size_t errlen)
{
    int rv = GW_REG_EFAIL;
    struct tx t = {0};

    if (db == NULL || actor == NULL || *actor == '\0') {
        gw_seterr(err, errlen, "revoke: missing argument");
        return GW_REG_EARG;
    }
    if (!gw_regdb_name_ok(name)) {
        gw_seterr(err, errlen, "bad server name '%.64s'", name ? name : "");
        return GW_REG_EARG;
    }
    if ((rv = tx_begin(&t, db, err, errlen)) != 0)
        goto out;
    int64_t id;
    char status[16];
    if ((rv = find_server(db, name, &id, status, sizeof status, err, errlen)) != 0)
        goto out;
    if (strcmp(status, "revoked") == 0) {
        /* nothing changes: no generation bump, no activity row */
        rv = tx_commit(&t, err, errlen);
        goto out;
    }
    if ((rv = exec_int(db, "UPDATE servers SET status = 'revoked' WHERE id = ?1", id, 0,
                       "revoking", NULL, err, errlen)) != 0 ||
        (rv = bump_generation(db, err, errlen)) != 0 ||
        (rv = gw_activity_add(db, now, actor, "revoke", id, "{\"status\":\"revoked\"}", err,
                              errlen)) != 0 ||
        (rv = tx_commit(&t, err, errlen)) != 0)
        goto out;
    rv = 0;
out:
    tx_rollback(&t);
    return rv;
}

/* ------------------------------------------------------ list, show */

static int read_pins(sqlite3 *db, struct gw_regdb_server *s, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_REG_EFAIL;
    s->n_pins = 0;
    s->n_pins_total = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT spki_sha256, created_at, not_after FROM server_pins"
                           " WHERE server_id = ?1 ORDER BY created_at DESC, rowid DESC",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = dberr(db, "reading pins", err, errlen);
        goto out;
    }
    sqlite3_bind_int64(st, 1, s->id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        s->n_pins_total++;
        if (s->n_pins >= sizeof s->pins / sizeof s->pins[0])
            continue;
        struct gw_regdb_pin *p = &s->pins[s->n_pins];
        memset(p, 0, sizeof *p);
        const void *blob = sqlite3_column_blob(st, 0);
        if (blob != NULL && sqlite3_column_bytes(st, 0) == GW_SPKI_LEN)
            memcpy(p->spki, blob, GW_SPKI_LEN);
        p->created_at = sqlite3_column_int64(st, 1);
        if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
            int64_t na = sqlite3_column_int64(st, 2);
            p->not_after = na > 0 ? na : 1; /* as registry.c: <= 0 is long past */
        }
        s->n_pins++;
    }
    if (rc != SQLITE_DONE) {
        rv = dberr(db, "reading pins", err, errlen);
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

static void read_server(sqlite3_stmt *st, struct gw_regdb_server *s)
{
    memset(s, 0, sizeof *s);
    s->id = sqlite3_column_int64(st, 0);
    const char *v = (const char *)sqlite3_column_text(st, 1);
    snprintf(s->name, sizeof s->name, "%s", v ? v : "");
    v = (const char *)sqlite3_column_text(st, 2);
    snprintf(s->kind, sizeof s->kind, "%s", v ? v : "");
    v = (const char *)sqlite3_column_text(st, 3);
    snprintf(s->status, sizeof s->status, "%s", v ? v : "");
    s->created_at = sqlite3_column_int64(st, 4);
}

#define SERVER_COLS "SELECT id, name, kind, status, created_at FROM servers"

int gw_regdb_list(sqlite3 *db, gw_regdb_server_fn fn, void *ud, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_REG_EFAIL;
    struct gw_regdb_server *s = NULL;
    int in_tx = 0;

    if (db == NULL || fn == NULL)
        return GW_REG_EARG;
    s = malloc(sizeof *s);
    if (s == NULL) {
        gw_seterr(err, errlen, "list: out of memory");
        goto out;
    }
    /* one read transaction: servers and pins agree */
    if (sqlite3_get_autocommit(db)) {
        if (exec_sql(db, "BEGIN", err, errlen) != 0)
            goto out;
        in_tx = 1;
    }
    if (sqlite3_prepare_v2(db, SERVER_COLS " ORDER BY name", -1, &st, NULL) != SQLITE_OK) {
        rv = dberr(db, "listing servers", err, errlen);
        goto out;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_server(st, s);
        if (read_pins(db, s, err, errlen) != 0)
            goto out;
        if (fn(s, ud) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rv = dberr(db, "listing servers", err, errlen);
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    if (in_tx)
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    free(s);
    return rv;
}

int gw_regdb_show(sqlite3 *db, const char *name, struct gw_regdb_server *out, char *err,
                  size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_REG_EFAIL;
    int in_tx = 0;

    if (db == NULL || out == NULL || name == NULL)
        return GW_REG_EARG;
    memset(out, 0, sizeof *out);
    if (sqlite3_get_autocommit(db)) {
        if (exec_sql(db, "BEGIN", err, errlen) != 0)
            goto out;
        in_tx = 1;
    }
    if (sqlite3_prepare_v2(db, SERVER_COLS " WHERE name = ?1", -1, &st, NULL) != SQLITE_OK) {
        rv = dberr(db, "reading a server", err, errlen);
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        gw_seterr(err, errlen, "unknown server %s (not registered)", name);
        rv = GW_REG_ENOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        rv = dberr(db, "reading a server", err, errlen);
        goto out;
    }
    read_server(st, out);
    if (read_pins(db, out, err, errlen) != 0)
        goto out;
    rv = 0;
out:
    sqlite3_finalize(st);
    if (in_tx)
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return rv;
}

/* ----------------------------------------------------- activity log */

int gw_activity_add(sqlite3 *db, int64_t at, const char *actor, const char *action,
                    int64_t server_id, const char *details, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_REG_EFAIL;

    if (db == NULL || actor == NULL || *actor == '\0' || action == NULL || *action == '\0') {
        gw_seterr(err, errlen, "activity: actor and action are required");
        return GW_REG_EARG;
    }
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO activity(at, actor, action, server_id, details)"
                           " VALUES(?1, ?2, ?3, ?4, ?5)",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = dberr(db, "adding an activity row", err, errlen);
        goto out;
    }
    sqlite3_bind_int64(st, 1, at);
    sqlite3_bind_text(st, 2, actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, action, -1, SQLITE_STATIC);
    if (server_id > 0)
        sqlite3_bind_int64(st, 4, server_id);
    else
        sqlite3_bind_null(st, 4);
    if (details != NULL)
        sqlite3_bind_text(st, 5, details, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rv = dberr(db, "adding an activity row", err, errlen);
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

/* The newest |limit| matching rows (all when 0), handed out oldest first. */
static const char activity_sql[] =
    "SELECT * FROM ("
    " SELECT a.id, a.at, a.actor, a.action, s.name, a.details"
    " FROM activity a LEFT JOIN servers s ON s.id = a.server_id"
    " WHERE (?1 IS NULL OR s.name = ?1)"
    "   AND (?2 IS NULL OR a.action = ?2)"
    "   AND (?3 = 0 OR a.at >= ?3)"
    "   AND (?4 = 0 OR a.at <= ?4)"
    " ORDER BY a.at DESC, a.id DESC LIMIT ?5)"
    " ORDER BY at, id";

int gw_activity_query(sqlite3 *db, const struct gw_activity_filter *f, gw_activity_fn fn,
                      void *ud, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_REG_EFAIL;
    struct gw_activity_filter none = {0};

    if (db == NULL || fn == NULL)
        return GW_REG_EARG;
    if (f == NULL)
        f = &none;
    if (sqlite3_prepare_v2(db, activity_sql, -1, &st, NULL) != SQLITE_OK) {
        rv = dberr(db, "reading the activity log", err, errlen);
        goto out;
    }
    if (f->server != NULL)
        sqlite3_bind_text(st, 1, f->server, -1, SQLITE_STATIC);
    if (f->action != NULL)
        sqlite3_bind_text(st, 2, f->action, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, f->since);
    sqlite3_bind_int64(st, 4, f->until);
    sqlite3_bind_int64(st, 5, f->limit ? (int64_t)f->limit : -1);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct gw_activity_row row = {
            .id = sqlite3_column_int64(st, 0),
            .at = sqlite3_column_int64(st, 1),
            .actor = (const char *)sqlite3_column_text(st, 2),
            .action = (const char *)sqlite3_column_text(st, 3),
            .server = (const char *)sqlite3_column_text(st, 4),
            .details = (const char *)sqlite3_column_text(st, 5),
        };
        if (row.actor == NULL)
            row.actor = "";
        if (row.action == NULL)
            row.action = "";
        if (fn(&row, ud) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rv = dberr(db, "reading the activity log", err, errlen);
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

/* ------------------------------------------- retention, erasure, export */

static int frames_exist(sqlite3 *db, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_REG_EFAIL;
    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'frames'",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = dberr(db, "looking for the frames table", err, errlen);
        goto out;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rv = 0;
    else if (rc == SQLITE_DONE) {
        gw_seterr(err, errlen,
                  "database: no frames table (give the gateway's [storage] sqlite_path file)");
        rv = GW_REG_EARG;
    } else
        rv = dberr(db, "looking for the frames table", err, errlen);
out:
    sqlite3_finalize(st);
    return rv;
}

/* The frames a purge chunk deletes: the oldest by receipt, in the order of
 * frames_received (whose entries carry the key), so every statement of the
 * chunk picks the same ones. */
#define PURGE_CHUNK_KEYS                                                                   \
    " FROM frames WHERE received_ms < ?1 ORDER BY received_ms, server_id, seq LIMIT ?2)"

/* The derived rows go first, while the frames still say which they are. */
static const char *const purge_derived_sql[] = {
    "DELETE FROM stream_samples WHERE (server_id, seq) IN (SELECT server_id, seq"
    PURGE_CHUNK_KEYS,
    "DELETE FROM geo_samples WHERE (server_id, seq) IN (SELECT server_id, seq"
    PURGE_CHUNK_KEYS,
    "DELETE FROM server_samples WHERE (server_id, ts_ms, seq) IN (SELECT server_id, ts_ms, seq"
    PURGE_CHUNK_KEYS,
};

/* 1 when |db| has the derived tables (storage schema 2). */
static int has_samples(sqlite3 *db, int *yes, char *err, size_t errlen)
{
    int v = 0;
    if (gw_store_version(db, &v, err, errlen) != 0)
        return GW_REG_EFAIL;
    *yes = v >= 2;
    return 0;
}

int gw_regdb_purge_step(sqlite3 *db, int64_t cutoff_ms, unsigned limit, int64_t *deleted,
                        char *err, size_t errlen)
{
    struct tx t = {0};
    int rv, derived = 0;

    *deleted = 0;
    if (limit == 0)
        limit = GW_REGDB_PURGE_CHUNK;
    if ((rv = tx_begin(&t, db, err, errlen)) != 0)
        goto out;
    if ((rv = has_samples(db, &derived, err, errlen)) != 0)
        goto out;
    for (size_t i = 0; derived && i < sizeof purge_derived_sql / sizeof *purge_derived_sql; i++)
        if ((rv = exec_int(db, purge_derived_sql[i], cutoff_ms, limit, "purging samples", NULL,
                           err, errlen)) != 0)
            goto out;
    int64_t n;
    if ((rv = exec_int(db, "DELETE FROM frames WHERE (server_id, seq) IN (SELECT server_id, seq"
                       PURGE_CHUNK_KEYS,
                       cutoff_ms, limit, "purging frames", &n, err, errlen)) != 0 ||
        (rv = tx_commit(&t, err, errlen)) != 0)
        goto out;
    *deleted = n;
    rv = 0;
out:
    tx_rollback(&t);
    return rv;
}

int gw_regdb_purge_paths(sqlite3 *db, int64_t cutoff_ms, int64_t *deleted, char *err,
                         size_t errlen)
{
    struct tx t = {0};
    int rv, derived = 0;
    int64_t n = 0;

    *deleted = 0;
    if ((rv = tx_begin(&t, db, err, errlen)) != 0)
        goto out;
    if ((rv = has_samples(db, &derived, err, errlen)) != 0)
        goto out;
    if (derived) {
        /* last_ms lags the last use by less than GW_PATH_TOUCH_MS */
        if ((rv = exec_int(db, "DELETE FROM stream_paths WHERE last_ms < ?1 - ?2", cutoff_ms,
                           GW_PATH_TOUCH_MS, "purging stream paths", &n, err, errlen)) != 0)
            goto out;
        if (n > 0 && (rv = exec_sql(db, gw_store_bump_paths_sql, err, errlen)) != 0)
            goto out;
    }
    if ((rv = tx_commit(&t, err, errlen)) != 0)
        goto out;
    *deleted = n;
    rv = 0;
out:
    tx_rollback(&t);
    return rv;
}

int gw_regdb_purge(sqlite3 *db, int64_t cutoff_ms, unsigned chunk, const char *actor,
                   int64_t now, int64_t *n_deleted, char *err, size_t errlen)
{
    int rv;
    int64_t total = 0, n;
    char details[128];

    if (n_deleted != NULL)
        *n_deleted = 0;
    if (db == NULL || actor == NULL || *actor == '\0') {
        gw_seterr(err, errlen, "purge: missing argument");
        return GW_REG_EARG;
    }
    if (!sqlite3_get_autocommit(db)) {
        gw_seterr(err, errlen, "purge: runs its own transactions");
        return GW_REG_EARG;
    }
    if ((rv = frames_exist(db, err, errlen)) != 0)
        return rv;
    if (chunk == 0)
        chunk = GW_REGDB_PURGE_CHUNK;
    int64_t paths = 0;
    do {
        if ((rv = gw_regdb_purge_step(db, cutoff_ms, chunk, &n, err, errlen)) != 0)
            break; /* what was deleted stays deleted; record it below */
        total += n;
    } while (n == (int64_t)chunk);
    /* paths only once every old sample is gone */
    if (rv == 0)
        rv = gw_regdb_purge_paths(db, cutoff_ms, &paths, err, errlen);
    snprintf(details, sizeof details,
             "{\"received_before_ms\":%lld,\"frames\":%lld,\"stream_paths\":%lld}",
             (long long)cutoff_ms, (long long)total, (long long)paths);
    if (n_deleted != NULL)
        *n_deleted = total;
    if (rv != 0) {
        if (total > 0)
            gw_activity_add(db, now, actor, "purge", 0, details, NULL, 0);
        return rv;
    }
    return gw_activity_add(db, now, actor, "purge", 0, details, err, errlen);
}

/* A server's rows besides frames, activity and pins (storage schema 2). */
static const char *const erase_tables[] = {
    "server_samples", "stream_samples", "geo_samples", "stream_paths",
};

int gw_regdb_erase(sqlite3 *db, const char *name, const char *actor, int64_t now,
                   int64_t *n_frames, int64_t *n_activity, char *err, size_t errlen)
{
    struct tx t = {0};
    struct jbuf jb = {0};
    int rv;
    int64_t id, frames = 0, acts = 0, pins = 0, orphans = 0, samples = 0, n;

    if (n_frames != NULL)
        *n_frames = 0;
    if (n_activity != NULL)
        *n_activity = 0;
    if (db == NULL || actor == NULL || *actor == '\0') {
        gw_seterr(err, errlen, "erase: missing argument");
        return GW_REG_EARG;
    }
    if (!gw_regdb_name_ok(name)) {
        gw_seterr(err, errlen, "bad server name '%.64s'", name ? name : "");
        return GW_REG_EARG;
    }
    if ((rv = frames_exist(db, err, errlen)) != 0)
        return rv;
    if ((rv = tx_begin(&t, db, err, errlen)) != 0)
        goto out;
    if ((rv = find_server(db, name, &id, NULL, 0, err, errlen)) != 0)
        goto out;
    int derived = 0;
    if ((rv = has_samples(db, &derived, err, errlen)) != 0)
        goto out;
    for (size_t i = 0; derived && i < sizeof erase_tables / sizeof *erase_tables; i++) {
        char q[160];
        snprintf(q, sizeof q, "DELETE FROM %s WHERE server_id = ?1", erase_tables[i]);
        if ((rv = exec_int(db, q, id, 0, "erasing samples", &n, err, errlen)) != 0)
            goto out;
        samples += n;
    }
    if ((rv = exec_int(db, "DELETE FROM frames WHERE server_id = ?1", id, 0, "erasing frames",
                       &frames, err, errlen)) != 0 ||
        (rv = exec_int(db, "DELETE FROM activity WHERE server_id = ?1", id, 0,
                       "erasing activity", &acts, err, errlen)) != 0 ||
        (rv = exec_int(db, "DELETE FROM server_pins WHERE server_id = ?1", id, 0,
                       "erasing pins", &pins, err, errlen)) != 0 ||
        (rv = exec_int(db, "DELETE FROM servers WHERE id = ?1", id, 0, "erasing the server",
                       NULL, err, errlen)) != 0)
        goto out;
    /* rows of servers erased earlier that landed after their erasure
     * (frames in flight in the gateway's queue): every id up to the
     * highest ever given that is no longer registered, looked up by key
     * (never a scan of a whole table) */
    for (size_t i = 0; i < sizeof erase_tables / sizeof *erase_tables + 1; i++) {
        const char *tbl = i == 0 ? "frames" : erase_tables[i - 1];
        char q[512];
        if (i > 0 && !derived)
            break;
        snprintf(q, sizeof q,
                 "WITH RECURSIVE ids(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM ids"
                 " WHERE x < max(?1, COALESCE((SELECT CAST(value AS INTEGER) FROM meta"
                 " WHERE key = 'server_id_floor'), 0)))"
                 " DELETE FROM %s WHERE server_id IN"
                 " (SELECT x FROM ids WHERE x NOT IN (SELECT id FROM servers))",
                 tbl);
        if ((rv = exec_int(db, q, id, 0, "erasing late rows", &n, err, errlen)) != 0)
            goto out;
        orphans += n;
    }
    if ((rv = exec_int(db,
                       "DELETE FROM activity WHERE server_id IS NOT NULL AND server_id <> ?1"
                       " AND server_id NOT IN (SELECT id FROM servers)",
                       0, 0, "erasing late activity", &n, err, errlen)) != 0 ||
        (rv = exec_int(db,
                       "INSERT OR REPLACE INTO meta(key, value) VALUES('server_id_floor',"
                       " MAX(?1, COALESCE((SELECT CAST(value AS INTEGER) FROM meta"
                       " WHERE key = 'server_id_floor'), 0)))",
                       id, 0, "keeping erased ids", NULL, err, errlen)) != 0)
        goto out;
    /* the gateway's writer forgets its cached path ids of this server */
    if (derived && (rv = exec_sql(db, gw_store_bump_paths_sql, err, errlen)) != 0)
        goto out;
    orphans += n;
    jb_raw(&jb, "{");
    jb_kstr(&jb, "server", name);
    jb_kint(&jb, "frames", frames);
    if (derived)
        jb_kint(&jb, "samples", samples);
    jb_kint(&jb, "pins", pins);
    jb_kint(&jb, "activity_rows", acts);
    if (orphans > 0)
        jb_kint(&jb, "orphan_rows", orphans);
    jb_raw(&jb, "}");
    if (jb.oom) {
        gw_seterr(err, errlen, "erase: out of memory");
        rv = GW_REG_EFAIL;
        goto out;
    }
    if ((rv = bump_generation(db, err, errlen)) != 0 ||
        (rv = gw_activity_add(db, now, actor, "erase", 0, jb_text(&jb), err, errlen)) != 0 ||
        (rv = tx_commit(&t, err, errlen)) != 0)
        goto out;
    if (n_frames != NULL)
        *n_frames = frames;
    if (n_activity != NULL)
        *n_activity = acts;
    rv = 0;
out:
    tx_rollback(&t);
    jb_free(&jb);
    return rv;
}

struct export_act {
    const struct gw_regdb_export_ops *ops;
    void *ud;
    int stopped;
};

static int export_act_one(const struct gw_activity_row *r, void *ud)
{
    struct export_act *a = ud;
    if (a->ops->activity != NULL && a->ops->activity(r, a->ud) != 0) {
        a->stopped = 1;
        return 1;
    }
    return 0;
}

int gw_regdb_export(sqlite3 *db, const char *name, const struct gw_regdb_export_ops *ops,
                    void *ud, const char *format, const char *actor, int64_t now,
                    char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    struct gw_regdb_server *s = NULL;
    int rv = GW_REG_EFAIL, in_tx = 0;
    int64_t n_frames = 0;

    if (db == NULL || ops == NULL || !sqlite3_get_autocommit(db)) {
        gw_seterr(err, errlen, "export: bad argument");
        return GW_REG_EARG;
    }
    if (!gw_regdb_name_ok(name)) {
        gw_seterr(err, errlen, "bad server name '%.64s'", name ? name : "");
        return GW_REG_EARG;
    }
    if ((rv = frames_exist(db, err, errlen)) != 0)
        return rv;
    rv = GW_REG_EFAIL;
    s = malloc(sizeof *s);
    if (s == NULL) {
        gw_seterr(err, errlen, "export: out of memory");
        goto out;
    }
    /* one read snapshot for everything */
    if (exec_sql(db, "BEGIN", err, errlen) != 0)
        goto out;
    in_tx = 1;
    if ((rv = gw_regdb_show(db, name, s, err, errlen)) != 0)
        goto out;
    rv = GW_REG_EFAIL;
    if (ops->server != NULL && ops->server(s, ud) != 0) {
        gw_seterr(err, errlen, "export stopped");
        goto out;
    }
    /* every pin (gw_regdb_show keeps 8) */
    if (sqlite3_prepare_v2(db,
                           "SELECT spki_sha256, created_at, not_after FROM server_pins"
                           " WHERE server_id = ?1 ORDER BY created_at DESC, rowid DESC",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = dberr(db, "reading pins", err, errlen);
        goto out;
    }
    sqlite3_bind_int64(st, 1, s->id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct gw_regdb_pin p;
        memset(&p, 0, sizeof p);
        const void *blob = sqlite3_column_blob(st, 0);
        if (blob != NULL && sqlite3_column_bytes(st, 0) == GW_SPKI_LEN)
            memcpy(p.spki, blob, GW_SPKI_LEN);
        p.created_at = sqlite3_column_int64(st, 1);
        if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
            int64_t na = sqlite3_column_int64(st, 2);
            p.not_after = na > 0 ? na : 1;
        }
        if (ops->pin != NULL && ops->pin(&p, ud) != 0) {
            gw_seterr(err, errlen, "export stopped");
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        rv = dberr(db, "reading pins", err, errlen);
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT seq, ts_ms, received_ms, reported_name, body FROM frames"
                           " WHERE server_id = ?1 ORDER BY seq < 0, seq", /* as uint64 */
                           -1, &st, NULL) != SQLITE_OK) {
        rv = dberr(db, "reading frames", err, errlen);
        goto out;
    }
    sqlite3_bind_int64(st, 1, s->id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct gw_regdb_frame f = {
            .seq = (uint64_t)sqlite3_column_int64(st, 0), /* bit pattern (sink_sqlite.c) */
            .ts_ms = (uint64_t)sqlite3_column_int64(st, 1),
            .received_ms = sqlite3_column_int64(st, 2),
            .reported_name = (const char *)sqlite3_column_text(st, 3),
        };
        f.body = sqlite3_column_blob(st, 4);
        f.body_len = (size_t)sqlite3_column_bytes(st, 4);
        n_frames++;
        if (ops->frame != NULL && ops->frame(&f, ud) != 0) {
            gw_seterr(err, errlen, "export stopped");
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        rv = dberr(db, "reading frames", err, errlen);
        goto out;
    }
    struct gw_activity_filter filt = {.server = name};
    struct export_act a = {.ops = ops, .ud = ud};
    if ((rv = gw_activity_query(db, &filt, export_act_one, &a, err, errlen)) != 0)
        goto out;
    if (a.stopped) {
        gw_seterr(err, errlen, "export stopped");
        rv = GW_REG_EFAIL;
        goto out;
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    in_tx = 0;
    rv = 0;
    if (actor != NULL) {
        struct jbuf jb = {0};
        jb_raw(&jb, "{");
        jb_kstr(&jb, "format", format ? format : "");
        jb_kint(&jb, "frames", n_frames);
        jb_raw(&jb, "}");
        if (jb.oom)
            rv = GW_REG_EFAIL;
        else
            rv = gw_activity_add(db, now, actor, "export", s->id, jb_text(&jb), err, errlen);
        jb_free(&jb);
    }
out:
    sqlite3_finalize(st);
    if (in_tx)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    free(s);
    return rv;
}
