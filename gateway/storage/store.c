/*
 * store.c - the storage schema and its migration (store.h).
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* Version 1: frames only.  Also run for version 2 (IF NOT EXISTS). */
static const char v1_sql[] =
    "CREATE TABLE IF NOT EXISTS meta("
    " key TEXT PRIMARY KEY,"
    " value TEXT);"
    "CREATE TABLE IF NOT EXISTS frames("
    " server_id INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"          /* uint64 as its int64 bit pattern */
    " ts_ms INTEGER NOT NULL,"        /* idem */
    " received_ms INTEGER NOT NULL,"
    " reported_name TEXT,"
    " body BLOB NOT NULL,"
    " PRIMARY KEY(server_id, seq)) WITHOUT ROWID;"
    /* retention purges by receipt time (regdb_rights.c gw_regdb_purge_step) */
    "CREATE INDEX IF NOT EXISTS frames_received ON frames(received_ms);";

/* Version 2: the derived tables.  Keys only, no secondary index on the
 * sample tables: each costs a B-tree insert per row (docs/STORAGE.md has
 * the measurements).  server_samples' key leads with (server_id, ts_ms), so
 * it is also the per-server time index of the frames. */
static const char v2_sql[] =
    "CREATE TABLE IF NOT EXISTS server_samples("
    " server_id INTEGER NOT NULL,"
    " ts_ms INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"
    " cpu_pct REAL NOT NULL,"
    " ram_used INTEGER NOT NULL,"
    " ram_total INTEGER NOT NULL,"
    " bytes_in INTEGER NOT NULL,"
    " bytes_out INTEGER NOT NULL,"
    " period_ms INTEGER NOT NULL,"
    " conns INTEGER NOT NULL,"
    " PRIMARY KEY(server_id, ts_ms, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS stream_paths("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " server_id INTEGER NOT NULL,"
    " vhost TEXT NOT NULL,"
    " app TEXT NOT NULL,"
    " instance TEXT NOT NULL,"
    " stream TEXT NOT NULL,"
    " last_ms INTEGER NOT NULL,"
    " UNIQUE(server_id, vhost, app, instance, stream));"
    "CREATE TABLE IF NOT EXISTS stream_samples("
    " server_id INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"
    " stream_id INTEGER NOT NULL,"
    " viewers INTEGER NOT NULL,"
    " bitrate INTEGER NOT NULL,"
    " bytes_in INTEGER NOT NULL,"
    " bytes_out INTEGER NOT NULL,"
    " PRIMARY KEY(server_id, seq, stream_id)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS geo_samples("
    " server_id INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"
    " cc TEXT NOT NULL,"
    " asn INTEGER NOT NULL,"
    " conns INTEGER NOT NULL,"
    " bytes_in INTEGER NOT NULL,"
    " bytes_out INTEGER NOT NULL,"
    " PRIMARY KEY(server_id, seq, cc, asn)) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO meta(key, value) VALUES('stream_paths_generation', 0);"
    "INSERT OR REPLACE INTO meta(key, value) VALUES('storage_schema_version', '"
    STR(GW_STORE_VERSION) "');";

const char gw_store_bump_paths_sql[] =
    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'stream_paths_generation'";

static int table_exists(sqlite3 *db, const char *name, int *yes, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
        gw_seterr(err, errlen, "storage schema: %s", sqlite3_errmsg(db));
        goto out;
    }
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        gw_seterr(err, errlen, "storage schema: %s", sqlite3_errmsg(db));
        goto out;
    }
    *yes = rc == SQLITE_ROW;
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

int gw_store_version(sqlite3 *db, int *version, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int yes = 0, rv;

    *version = 0;
    if ((rv = table_exists(db, "frames", &yes, err, errlen)) != 0)
        return rv;
    if (!yes)
        return 0;
    if ((rv = table_exists(db, "meta", &yes, err, errlen)) != 0)
        return rv;
    rv = GW_ESTORAGE;
    if (!yes) {
        *version = 1;
        return 0;
    }
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'storage_schema_version'", -1,
                           &st, NULL) != SQLITE_OK) {
        gw_seterr(err, errlen, "storage schema: %s", sqlite3_errmsg(db));
        goto out;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        *version = 1; /* written before the version row existed */
        rv = 0;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        gw_seterr(err, errlen, "storage schema: %s", sqlite3_errmsg(db));
        goto out;
    }
    const char *v = (const char *)sqlite3_column_text(st, 0);
    if (v != NULL && strcmp(v, "1") == 0)
        *version = 1;
    else if (v != NULL && strcmp(v, STR(GW_STORE_VERSION)) == 0)
        *version = GW_STORE_VERSION;
    else {
        gw_seterr(err, errlen, "storage schema: version %.16s, this build knows 1 and "
                  STR(GW_STORE_VERSION), v ? v : "NULL");
        rv = GW_EINVAL;
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

int gw_store_schema(sqlite3 *db, char *err, size_t errlen)
{
    struct gw_store_tx tx;
    char *msg = NULL;
    int version = 0, rv;

    if (db == NULL)
        return gw_fail(GW_EINVAL, err, errlen, "storage schema: no database");
    /* the version is read inside the transaction: a concurrent migration
     * cannot slip in between */
    if ((rv = gw_store_tx_begin(&tx, db, err, errlen)) != 0 ||
        (rv = gw_store_version(db, &version, err, errlen)) != 0)
        goto fail;
    rv = GW_ESTORAGE;
    if (sqlite3_exec(db, v1_sql, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(db, v2_sql, NULL, NULL, &msg) != SQLITE_OK) {
        gw_seterr(err, errlen, "storage schema (from version %d): %s", version,
                  msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        goto fail;
    }
    if ((rv = gw_store_tx_commit(&tx, err, errlen)) != 0)
        goto fail;
    return 0;
fail:
    gw_store_tx_rollback(&tx);
    return rv;
}

int gw_store_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        gw_seterr(err, errlen, "database: %s: %s", sql, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return GW_ESTORAGE;
    }
    return 0;
}

int gw_store_tx_begin(struct gw_store_tx *t, sqlite3 *db, char *err, size_t errlen)
{
    t->db = db;
    t->nested = !sqlite3_get_autocommit(db);
    t->open = 0;
    int rv = gw_store_exec(db, t->nested ? "SAVEPOINT gw_tx" : "BEGIN IMMEDIATE", err, errlen);
    t->open = rv == 0;
    return rv;
}

int gw_store_tx_commit(struct gw_store_tx *t, char *err, size_t errlen)
{
    int rv = gw_store_exec(t->db, t->nested ? "RELEASE gw_tx" : "COMMIT", err, errlen);
    if (rv == 0)
        t->open = 0;
    return rv;
}

void gw_store_tx_rollback(struct gw_store_tx *t)
{
    if (!t->open)
        return;
    if (t->nested) {
        sqlite3_exec(t->db, "ROLLBACK TO gw_tx", NULL, NULL, NULL);
        sqlite3_exec(t->db, "RELEASE gw_tx", NULL, NULL, NULL);
    } else if (!sqlite3_get_autocommit(t->db)) {
        sqlite3_exec(t->db, "ROLLBACK", NULL, NULL, NULL);
    }
    t->open = 0;
}

int gw_sqlite_error(int rc)
{
    switch (rc & 0xff) { /* the primary code of an extended one */
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_CONSTRAINT: /* a key, a CHECK, a trigger's RAISE(ABORT) */
    case SQLITE_TOOBIG:     /* a value over SQLITE_MAX_LENGTH */
    case SQLITE_MISMATCH:   /* a value of the wrong type for its column */
    case SQLITE_RANGE:      /* a bind out of range */
        return GW_EREJECTED;
    default:
        /* BUSY, LOCKED, FULL, IOERR, READONLY, CORRUPT, NOTADB, CANTOPEN,
         * NOMEM, PROTOCOL, ... and plain SQLITE_ERROR: a dropped or changed
         * table fails every row alike, which is an outage to answer 503
         * (agents resend) and not a row to refuse (agents drop it). */
        return GW_ESTORAGE;
    }
}
