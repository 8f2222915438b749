/*
 * regdb.c - the write side of the registry and the activity log (regdb.h):
 * opening the database, and what regdb_servers.c (registry changes,
 * list, show), regdb_activity.c (the activity log) and regdb_rights.c
 * (purge, erase, export) share (regdb_int.h): statements, transactions,
 * the registry generation, activity details as JSON text, lookups.
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
#include "regdb_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 5000

/* ------------------------------------------------------------ statements */

int gw_regdb_dberr(sqlite3 *db, const char *what, char *err, size_t errlen)
{
    gw_seterr(err, errlen, "database: %s: %s", what, sqlite3_errmsg(db));
    return GW_ESTORAGE;
}

int gw_regdb_exec_int(sqlite3 *db, const char *sql, int64_t a, int64_t b, const char *what,
                      int64_t *changes, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        rv = gw_regdb_dberr(db, what, err, errlen);
        goto out;
    }
    sqlite3_bind_int64(st, 1, a);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, b);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rv = gw_regdb_dberr(db, what, err, errlen);
        goto out;
    }
    if (changes != NULL)
        *changes = sqlite3_changes(db);
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

/* ------------------------------------------------------------ open */

int gw_regdb_open(const char *path, int create, sqlite3 **out, char *err, size_t errlen)
{
    int rv = GW_ESTORAGE;
    sqlite3 *db = NULL;
    char serr[256];

    if (out == NULL)
        return GW_EINVAL;
    *out = NULL;
    if (path == NULL || *path == '\0') {
        gw_seterr(err, errlen, "database: no path");
        return GW_EINVAL;
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
    if (gw_store_exec(db, "PRAGMA foreign_keys=ON", err, errlen) != 0)
        goto out;
    if (gw_registry_schema(db, serr, sizeof serr) != 0) {
        gw_seterr(err, errlen, "database %s: %s", path, serr);
        goto out;
    }
    /* The gateway polls this row; registry.c's schema does not make it. */
    if (gw_store_exec(db,
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

/* The registry tables a reader needs. */
static const char *const ro_tables[] = {"meta", "servers", "server_pins", "activity"};

/* Whether |db| holds the registry as this build knows it, read only.  The
 * first read is here: *rc gets SQLite's code when it fails (the caller
 * may retry as immutable). */
static int ro_check(sqlite3 *db, const char *path, int *rc, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    char missing[64] = "";
    int rv = GW_ESTORAGE, found = 0;

    *rc = sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                             -1, &st, NULL);
    for (size_t i = 0; *rc == SQLITE_OK && i < sizeof ro_tables / sizeof *ro_tables; i++) {
        sqlite3_bind_text(st, 1, ro_tables[i], -1, SQLITE_STATIC);
        *rc = sqlite3_step(st);
        if (*rc == SQLITE_ROW)
            found++;
        else if (*rc == SQLITE_DONE && strlen(missing) + strlen(ro_tables[i]) + 3 < sizeof missing)
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                     missing[0] ? ", " : "", ro_tables[i]);
        else if (*rc != SQLITE_DONE)
            break;
        *rc = sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (*rc != SQLITE_OK) {
        gw_seterr(err, errlen, "database %s: cannot read it: %s", path, sqlite3_errmsg(db));
        goto out;
    }
    rv = GW_EINVAL;
    if (found == 0) {
        gw_seterr(err, errlen, "database %s: no registry in it (not the gateway's file?)", path);
        goto out;
    }
    if (missing[0] != '\0') {
        gw_seterr(err, errlen,
                  "database %s: the registry is of an older schema (no %s table); read-only "
                  "commands do not upgrade it: a command that writes (register, revoke) or the "
                  "gateway's start does",
                  path, missing);
        goto out;
    }
    rv = GW_ESTORAGE;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &st,
                           NULL) != SQLITE_OK) {
        rv = gw_regdb_dberr(db, "reading the schema version", err, errlen);
        goto out;
    }
    *rc = sqlite3_step(st);
    if (*rc != SQLITE_ROW && *rc != SQLITE_DONE) {
        rv = gw_regdb_dberr(db, "reading the schema version", err, errlen);
        goto out;
    }
    const char *v = *rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    *rc = SQLITE_OK;
    rv = GW_EINVAL;
    if (v == NULL || strcmp(v, GW_REGISTRY_SCHEMA_VERSION) != 0) {
        long n = v ? strtol(v, NULL, 10) : 0;
        gw_seterr(err, errlen,
                  "database %s: registry schema version %.16s, this panelgatectl reads "
                  GW_REGISTRY_SCHEMA_VERSION "%s",
                  path, v ? v : "(none)",
                  n > atol(GW_REGISTRY_SCHEMA_VERSION)
                      ? ": it was written by a newer panelgate"
                      : ": it is older; read-only commands do not upgrade it: a command that "
                        "writes (register, revoke) or the gateway's start does");
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

/* "file:" and |path| percent-encoded, then "?immutable=1". */
static int immutable_uri(const char *path, char *out, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    const char *pre = "file:", *post = "?immutable=1";
    for (const char *p = pre; *p; p++)
        if (k + 1 < n)
            out[k++] = *p;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || strchr("/._-~", *p) != NULL;
        if (plain && k + 1 < n) {
            out[k++] = (char)*p;
        } else if (!plain && k + 3 < n) {
            out[k++] = '%';
            out[k++] = hex[*p >> 4];
            out[k++] = hex[*p & 15];
        } else {
            return GW_EINVAL;
        }
    }
    for (const char *p = post; *p; p++)
        if (k + 1 < n)
            out[k++] = *p;
    if (k + 1 >= n)
        return GW_EINVAL;
    out[k] = '\0';
    return 0;
}

static int ro_open1(const char *name, int uri, sqlite3 **db, char *err, size_t errlen,
                    const char *path)
{
    int rc = sqlite3_open_v2(name, db, SQLITE_OPEN_READONLY | (uri ? SQLITE_OPEN_URI : 0), NULL);
    if (rc != SQLITE_OK) {
        if (rc == SQLITE_CANTOPEN)
            gw_seterr(err, errlen, "database %s: cannot open (missing or unreadable)", path);
        else
            gw_seterr(err, errlen, "database %s: cannot open: %s", path,
                      *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
        return GW_ESTORAGE;
    }
    sqlite3_extended_result_codes(*db, 1);
    sqlite3_busy_timeout(*db, BUSY_TIMEOUT_MS);
    return 0;
}

/* A read-only connection could not set up the WAL index (-shm): the
 * directory is read-only, or the file cannot be made. */
static int shm_missing(int rc)
{
    return rc == SQLITE_READONLY_DIRECTORY || rc == SQLITE_READONLY_CANTINIT;
}

int gw_regdb_open_ro(const char *path, sqlite3 **out, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    char wal[4096], uri[3 * 4096];
    int rv, rc = SQLITE_OK;

    if (out == NULL)
        return GW_EINVAL;
    *out = NULL;
    if (path == NULL || *path == '\0')
        return gw_fail(GW_EINVAL, err, errlen, "database: no path");
    if ((rv = ro_open1(path, 0, &db, err, errlen, path)) != 0)
        goto out;
    rv = ro_check(db, path, &rc, err, errlen);
    /* A WAL file needs its -shm to be read; where that cannot be made (a
     * copy in a read-only directory) and no -wal holds commits the file
     * lacks, the file alone is the whole database. */
    if (rv != 0 && shm_missing(rc) &&
        snprintf(wal, sizeof wal, "%s-wal", path) < (int)sizeof wal && access(wal, F_OK) != 0 &&
        immutable_uri(path, uri, sizeof uri) == 0) {
        sqlite3_close(db);
        db = NULL;
        if ((rv = ro_open1(uri, 1, &db, err, errlen, path)) != 0)
            goto out;
        rv = ro_check(db, path, &rc, err, errlen);
    }
    if (rv != 0 && shm_missing(rc))
        gw_seterr(err, errlen,
                  "database %s: cannot read it in place (WAL mode, its -shm file cannot be "
                  "made here): copy it with sqlite3 DB '.backup COPY' and read the copy",
                  path);
    if (rv != 0)
        goto out;
    *out = db;
    db = NULL;
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

/* ---------------------------------------------------- transactions */

int gw_regdb_bump_generation(sqlite3 *db, char *err, size_t errlen)
{
    /* meta.value has TEXT affinity: the number is stored as its decimal
     * text, and read back with CAST. */
    return gw_store_exec(db,
                         "INSERT OR REPLACE INTO meta(key, value) VALUES('registry_generation',"
                         " COALESCE((SELECT CAST(value AS INTEGER) FROM meta"
                         " WHERE key = 'registry_generation'), 0) + 1)",
                         err, errlen);
}

/* ------------------------------------------------------ JSON text */

/* Activity details, built on pa_buf and gw_json_escape (problem.c) and
 * kept NUL-terminated so the text can be bound as it is. */

static void jb_put(struct gw_regdb_jbuf *j, const char *s, size_t n)
{
    if (j->oom || pa_buf_append(&j->b, s, n) != 0 || pa_buf_reserve(&j->b, 1) != 0) {
        j->oom = 1;
        return;
    }
    j->b.data[j->b.len] = '\0';
}

void gw_regdb_jb_raw(struct gw_regdb_jbuf *j, const char *s)
{
    jb_put(j, s, strlen(s));
}

const char *gw_regdb_jb_text(const struct gw_regdb_jbuf *j)
{
    return (const char *)j->b.data;
}

void gw_regdb_jb_free(struct gw_regdb_jbuf *j)
{
    pa_buf_cleanup(&j->b);
}

static void jb_str(struct gw_regdb_jbuf *j, const char *s)
{
    jb_put(j, "\"", 1);
    if (!j->oom && gw_json_escape(&j->b, s) != 0)
        j->oom = 1;
    jb_put(j, "\"", 1);
}

static void jb_key(struct gw_regdb_jbuf *b, const char *k)
{
    gw_regdb_jb_raw(b, b->b.len > 1 ? "," : "");
    jb_str(b, k);
    jb_put(b, ":", 1);
}

void gw_regdb_jb_kstr(struct gw_regdb_jbuf *b, const char *k, const char *v)
{
    jb_key(b, k);
    jb_str(b, v);
}

void gw_regdb_jb_kint(struct gw_regdb_jbuf *b, const char *k, int64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)v);
    jb_key(b, k);
    gw_regdb_jb_raw(b, num);
}

/* ------------------------------------------------------ lookups */

int gw_regdb_find_server(sqlite3 *db, const char *name, int64_t *id, char *status,
                         size_t slen, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;
    if (sqlite3_prepare_v2(db, "SELECT id, status FROM servers WHERE name = ?1", -1, &st,
                           NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
        rv = gw_regdb_dberr(db, "looking up a server", err, errlen);
        goto out;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        gw_seterr(err, errlen, "unknown server %s (not registered)", name);
        rv = GW_ENOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        rv = gw_regdb_dberr(db, "looking up a server", err, errlen);
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

int gw_regdb_check_name(const char *name, char *err, size_t errlen)
{
    if (gw_regdb_name_ok(name))
        return 0;
    gw_seterr(err, errlen, "bad server name '%.64s'", name ? name : "");
    return GW_EINVAL;
}

void gw_regdb_pin_row(sqlite3_stmt *st, struct gw_regdb_pin *p)
{
    memset(p, 0, sizeof *p);
    const void *blob = sqlite3_column_blob(st, 0);
    if (blob != NULL && sqlite3_column_bytes(st, 0) == GW_SPKI_LEN)
        memcpy(p->spki, blob, GW_SPKI_LEN);
    p->created_at = sqlite3_column_int64(st, 1);
    if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
        int64_t na = sqlite3_column_int64(st, 2);
        p->not_after = na > 0 ? na : 1; /* as registry.c: <= 0 is long past */
    }
}
