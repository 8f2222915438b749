/*
 * regdb_rights.c - data rights on the registry file (regdb.h): retention
 * (purge, in chunks), erasure of one server and everything it stored, and
 * export (portability) of it from one read snapshot.  These need the
 * frames table, i.e. the registry in the same file as the frames.
 */
#include "regdb.h"
#include "err.h"
#include "regdb_int.h"
#include "samples.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------ retention */

static int frames_exist(sqlite3 *db, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;
    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'frames'",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = gw_regdb_dberr(db, "looking for the frames table", err, errlen);
        goto out;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rv = 0;
    else if (rc == SQLITE_DONE) {
        gw_seterr(err, errlen,
                  "database: no frames table (give the gateway's [storage] sqlite_path file)");
        rv = GW_EINVAL;
    } else
        rv = gw_regdb_dberr(db, "looking for the frames table", err, errlen);
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
        return GW_ESTORAGE;
    *yes = v >= 2;
    return 0;
}

/* Writes |rec|'s row with these counts, or brings it up to date, inside
 * the caller's transaction; *row_id gets its id.  Nothing (0) when there
 * is no row yet and nothing to say. */
static int purge_record(sqlite3 *db, int64_t cutoff_ms, const struct gw_regdb_purge_rec *rec,
                        int64_t frames, int64_t paths, int complete, int64_t *row_id,
                        char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    char details[160], q[192];
    const char *tbl = rec->table ? rec->table : "activity";
    int rv = GW_ESTORAGE;

    *row_id = rec->row_id;
    if (rec->row_id == 0 && frames == 0 && paths == 0 && !rec->always)
        return 0;
    if (rec->actor == NULL || *rec->actor == '\0') {
        gw_seterr(err, errlen, "purge: no actor for the activity row");
        return GW_EINVAL;
    }
    snprintf(details, sizeof details,
             "{\"received_before_ms\":%lld,\"frames\":%lld,\"stream_paths\":%lld,"
             "\"complete\":%s}",
             (long long)cutoff_ms, (long long)frames, (long long)paths,
             complete ? "true" : "false");
    if (rec->row_id != 0) {
        snprintf(q, sizeof q, "UPDATE %s SET details = ?2 WHERE id = ?1 AND action = 'purge'",
                 tbl);
        if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
            goto dberr;
        sqlite3_bind_int64(st, 1, rec->row_id);
        sqlite3_bind_text(st, 2, details, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            goto dberr;
        if (sqlite3_changes(db) == 1) {
            rv = 0;
            goto out;
        }
        /* the row is gone (deleted by hand): write it again */
        sqlite3_finalize(st);
        st = NULL;
    }
    snprintf(q, sizeof q,
             "INSERT INTO %s(at, actor, action, server_id, details)"
             " VALUES(?1, ?2, 'purge', NULL, ?3)",
             tbl);
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_int64(st, 1, rec->at);
    sqlite3_bind_text(st, 2, rec->actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, details, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto dberr;
    *row_id = sqlite3_last_insert_rowid(db);
    rv = 0;
    goto out;
dberr:
    rv = gw_regdb_dberr(db, "recording the purge", err, errlen);
out:
    sqlite3_finalize(st);
    return rv;
}

int gw_regdb_purge_step(sqlite3 *db, int64_t cutoff_ms, unsigned limit,
                        struct gw_regdb_purge_rec *rec, int64_t *deleted, char *err,
                        size_t errlen)
{
    struct gw_store_tx t = {0};
    int rv, derived = 0;
    int64_t n, row_id = 0;

    *deleted = 0;
    if (limit == 0)
        limit = GW_REGDB_PURGE_CHUNK;
    if ((rv = gw_store_tx_begin(&t, db, err, errlen)) != 0)
        goto out;
    if ((rv = has_samples(db, &derived, err, errlen)) != 0)
        goto out;
    for (size_t i = 0; derived && i < sizeof purge_derived_sql / sizeof *purge_derived_sql; i++)
        if ((rv = gw_regdb_exec_int(db, purge_derived_sql[i], cutoff_ms, limit,
                                    "purging samples", NULL, err, errlen)) != 0)
            goto out;
    if ((rv = gw_regdb_exec_int(db,
                                "DELETE FROM frames WHERE (server_id, seq) IN"
                                " (SELECT server_id, seq" PURGE_CHUNK_KEYS,
                                cutoff_ms, limit, "purging frames", &n, err, errlen)) != 0)
        goto out;
    /* the count goes in with the deletion it counts */
    if (rec != NULL && (rv = purge_record(db, cutoff_ms, rec, rec->frames + n, rec->paths, 0,
                                          &row_id, err, errlen)) != 0)
        goto out;
    if ((rv = gw_store_tx_commit(&t, err, errlen)) != 0)
        goto out;
    if (rec != NULL) {
        rec->frames += n;
        rec->row_id = row_id;
    }
    *deleted = n;
    rv = 0;
out:
    gw_store_tx_rollback(&t);
    return rv;
}

int gw_regdb_purge_paths(sqlite3 *db, int64_t cutoff_ms, struct gw_regdb_purge_rec *rec,
                         int64_t *deleted, char *err, size_t errlen)
{
    struct gw_store_tx t = {0};
    int rv, derived = 0;
    int64_t n = 0, row_id = 0;

    *deleted = 0;
    if ((rv = gw_store_tx_begin(&t, db, err, errlen)) != 0)
        goto out;
    if ((rv = has_samples(db, &derived, err, errlen)) != 0)
        goto out;
    if (derived) {
        /* last_ms lags the last use by less than GW_PATH_TOUCH_MS */
        if ((rv = gw_regdb_exec_int(db, "DELETE FROM stream_paths WHERE last_ms < ?1 - ?2",
                                    cutoff_ms, GW_PATH_TOUCH_MS, "purging stream paths", &n, err,
                                    errlen)) != 0)
            goto out;
        if (n > 0 && (rv = gw_store_exec(db, gw_store_bump_paths_sql, err, errlen)) != 0)
            goto out;
    }
    if (rec != NULL && (rv = purge_record(db, cutoff_ms, rec, rec->frames, rec->paths + n, 1,
                                          &row_id, err, errlen)) != 0)
        goto out;
    if ((rv = gw_store_tx_commit(&t, err, errlen)) != 0)
        goto out;
    if (rec != NULL) {
        rec->paths += n;
        rec->row_id = row_id;
    }
    *deleted = n;
    rv = 0;
out:
    gw_store_tx_rollback(&t);
    return rv;
}

int gw_regdb_purge_frames(sqlite3 *db, int64_t cutoff_ms, unsigned chunk,
                          struct gw_regdb_purge_rec *rec, char *err, size_t errlen)
{
    int64_t n = 0;
    int rv;

    if (chunk == 0)
        chunk = GW_REGDB_PURGE_CHUNK;
    /* each chunk commits its count with it: what was deleted stays
     * deleted and counted, even when the next chunk never comes */
    do {
        if ((rv = gw_regdb_purge_step(db, cutoff_ms, chunk, rec, &n, err, errlen)) != 0)
            return rv;
    } while (n == (int64_t)chunk);
    return 0;
}

int gw_regdb_purge_run(sqlite3 *db, int64_t cutoff_ms, unsigned chunk,
                       struct gw_regdb_purge_rec *rec, char *err, size_t errlen)
{
    int64_t paths = 0;
    int rv = gw_regdb_purge_frames(db, cutoff_ms, chunk, rec, err, errlen);
    /* paths only once every old sample is gone */
    if (rv == 0)
        rv = gw_regdb_purge_paths(db, cutoff_ms, rec, &paths, err, errlen);
    return rv;
}

int gw_regdb_purge(sqlite3 *db, int64_t cutoff_ms, unsigned chunk, const char *actor,
                   int64_t now, int64_t *n_deleted, char *err, size_t errlen)
{
    struct gw_regdb_purge_rec rec = {.actor = actor, .at = now, .always = 1};
    int rv;

    if (n_deleted != NULL)
        *n_deleted = 0;
    if (db == NULL || actor == NULL || *actor == '\0') {
        gw_seterr(err, errlen, "purge: missing argument");
        return GW_EINVAL;
    }
    if (!sqlite3_get_autocommit(db)) {
        gw_seterr(err, errlen, "purge: runs its own transactions");
        return GW_EINVAL;
    }
    if ((rv = frames_exist(db, err, errlen)) != 0)
        return rv;
    rv = gw_regdb_purge_run(db, cutoff_ms, chunk, &rec, err, errlen);
    if (n_deleted != NULL)
        *n_deleted = rec.frames;
    return rv;
}

/* ------------------------------------------------------ erasure */

/* A server's rows besides frames, activity and pins (storage schema 2). */
static const char *const erase_tables[] = {
    "server_samples", "stream_samples", "geo_samples", "stream_paths",
};

/* Deletes server |id|'s samples, stream paths and frames (the rows a
 * server's data is made of, in both erasures), inside the caller's
 * transaction; *samples and *frames get the counts. */
static int erase_data(sqlite3 *db, int64_t id, int derived, int64_t *samples, int64_t *frames,
                      char *err, size_t errlen)
{
    int64_t n;
    int rv;

    *samples = *frames = 0;
    for (size_t i = 0; derived && i < sizeof erase_tables / sizeof *erase_tables; i++) {
        char q[160];
        snprintf(q, sizeof q, "DELETE FROM %s WHERE server_id = ?1", erase_tables[i]);
        if ((rv = gw_regdb_exec_int(db, q, id, 0, "erasing samples", &n, err, errlen)) != 0)
            return rv;
        *samples += n;
    }
    return gw_regdb_exec_int(db, "DELETE FROM frames WHERE server_id = ?1", id, 0,
                             "erasing frames", frames, err, errlen);
}

int gw_regdb_erase_data(sqlite3 *db, int64_t id, int64_t *n_frames, int64_t *n_samples,
                        char *err, size_t errlen)
{
    struct gw_store_tx t = {0};
    int rv, derived = 0;
    int64_t frames = 0, samples = 0;

    if (n_frames != NULL)
        *n_frames = 0;
    if (n_samples != NULL)
        *n_samples = 0;
    if (db == NULL || id <= 0) {
        gw_seterr(err, errlen, "erase: bad argument");
        return GW_EINVAL;
    }
    if ((rv = frames_exist(db, err, errlen)) != 0)
        return rv;
    if ((rv = gw_store_tx_begin(&t, db, err, errlen)) != 0 ||
        (rv = has_samples(db, &derived, err, errlen)) != 0 ||
        (rv = erase_data(db, id, derived, &samples, &frames, err, errlen)) != 0)
        goto out;
    /* a writer caching path ids of this server forgets them */
    if (derived && (rv = gw_store_exec(db, gw_store_bump_paths_sql, err, errlen)) != 0)
        goto out;
    if ((rv = gw_store_tx_commit(&t, err, errlen)) != 0)
        goto out;
    if (n_frames != NULL)
        *n_frames = frames;
    if (n_samples != NULL)
        *n_samples = samples;
    rv = 0;
out:
    gw_store_tx_rollback(&t);
    return rv;
}

int gw_regdb_erase(sqlite3 *db, const char *name, const char *actor, int64_t now,
                   int64_t *n_frames, int64_t *n_activity, char *err, size_t errlen)
{
    struct gw_store_tx t = {0};
    struct gw_regdb_jbuf jb = {0};
    int rv;
    int64_t id, frames = 0, acts = 0, pins = 0, orphans = 0, samples = 0, n;

    if (n_frames != NULL)
        *n_frames = 0;
    if (n_activity != NULL)
        *n_activity = 0;
    if (db == NULL || actor == NULL || *actor == '\0') {
        gw_seterr(err, errlen, "erase: missing argument");
        return GW_EINVAL;
    }
    if ((rv = gw_regdb_check_name(name, err, errlen)) != 0)
        return rv;
    if ((rv = frames_exist(db, err, errlen)) != 0)
        return rv;
    if ((rv = gw_store_tx_begin(&t, db, err, errlen)) != 0)
        goto out;
    if ((rv = gw_regdb_find_server(db, name, &id, NULL, 0, err, errlen)) != 0)
        goto out;
    int derived = 0;
    if ((rv = has_samples(db, &derived, err, errlen)) != 0)
        goto out;
    if ((rv = erase_data(db, id, derived, &samples, &frames, err, errlen)) != 0 ||
        (rv = gw_regdb_exec_int(db, "DELETE FROM activity WHERE server_id = ?1", id, 0,
                                "erasing activity", &acts, err, errlen)) != 0 ||
        (rv = gw_regdb_exec_int(db, "DELETE FROM server_pins WHERE server_id = ?1", id, 0,
                                "erasing pins", &pins, err, errlen)) != 0 ||
        (rv = gw_regdb_exec_int(db, "DELETE FROM servers WHERE id = ?1", id, 0,
                                "erasing the server", NULL, err, errlen)) != 0)
        goto out;
    /* rows of servers erased earlier that landed after their erasure: the
     * gateway's writer refuses them in its own transaction (sink_sqlite.c),
     * an older gateway did not (frames in flight in its queue): every id
     * up to the highest ever given that is no longer registered, looked
     * up by key (never a scan of a whole table) */
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
        if ((rv = gw_regdb_exec_int(db, q, id, 0, "erasing late rows", &n, err, errlen)) != 0)
            goto out;
        orphans += n;
    }
    if ((rv = gw_regdb_exec_int(db,
                                "DELETE FROM activity WHERE server_id IS NOT NULL"
                                " AND server_id <> ?1"
                                " AND server_id NOT IN (SELECT id FROM servers)",
                                0, 0, "erasing late activity", &n, err, errlen)) != 0 ||
        (rv = gw_regdb_exec_int(db,
                                "INSERT OR REPLACE INTO meta(key, value)"
                                " VALUES('server_id_floor',"
                                " MAX(?1, COALESCE((SELECT CAST(value AS INTEGER) FROM meta"
                                " WHERE key = 'server_id_floor'), 0)))",
                                id, 0, "keeping erased ids", NULL, err, errlen)) != 0)
        goto out;
    /* the gateway's writer forgets its cached path ids of this server */
    if (derived && (rv = gw_store_exec(db, gw_store_bump_paths_sql, err, errlen)) != 0)
        goto out;
    orphans += n;
    gw_regdb_jb_raw(&jb, "{");
    gw_regdb_jb_kstr(&jb, "server", name);
    gw_regdb_jb_kint(&jb, "frames", frames);
    if (derived)
        gw_regdb_jb_kint(&jb, "samples", samples);
    gw_regdb_jb_kint(&jb, "pins", pins);
    gw_regdb_jb_kint(&jb, "activity_rows", acts);
    if (orphans > 0)
        gw_regdb_jb_kint(&jb, "orphan_rows", orphans);
    gw_regdb_jb_raw(&jb, "}");
    if (jb.oom) {
        gw_seterr(err, errlen, "erase: out of memory");
        rv = GW_ESTORAGE;
        goto out;
    }
    if ((rv = gw_regdb_bump_generation(db, err, errlen)) != 0 ||
        (rv = gw_activity_add(db, now, actor, "erase", 0, gw_regdb_jb_text(&jb), err,
                              errlen)) != 0 ||
        (rv = gw_store_tx_commit(&t, err, errlen)) != 0)
        goto out;
    if (n_frames != NULL)
        *n_frames = frames;
    if (n_activity != NULL)
        *n_activity = acts;
    rv = 0;
out:
    gw_store_tx_rollback(&t);
    gw_regdb_jb_free(&jb);
    return rv;
}

/* ------------------------------------------------------ export */

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

int gw_regdb_export_frames(sqlite3 *db, int64_t server_id, const struct gw_regdb_export_ops *ops,
                           void *ud, int64_t *n, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;
    *n = 0;
    if ((rv = frames_exist(db, err, errlen)) != 0)
        return rv;
    rv = GW_ESTORAGE;
    if (sqlite3_prepare_v2(db,
                           "SELECT seq, ts_ms, received_ms, reported_name, body FROM frames"
                           " WHERE server_id = ?1 ORDER BY seq < 0, seq", /* as uint64 */
                           -1, &st, NULL) != SQLITE_OK) {
        rv = gw_regdb_dberr(db, "reading frames", err, errlen);
        goto out;
    }
    sqlite3_bind_int64(st, 1, server_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct gw_regdb_frame f = {
            .seq = (uint64_t)sqlite3_column_int64(st, 0), /* bit pattern (sink_sqlite.c) */
            .ts_ms = (uint64_t)sqlite3_column_int64(st, 1),
            .received_ms = sqlite3_column_int64(st, 2),
            .reported_name = (const char *)sqlite3_column_text(st, 3),
        };
        f.body = sqlite3_column_blob(st, 4);
        f.body_len = (size_t)sqlite3_column_bytes(st, 4);
        ++*n;
        if (ops->frame != NULL && ops->frame(&f, ud) != 0) {
            gw_seterr(err, errlen, "export stopped");
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        rv = gw_regdb_dberr(db, "reading frames", err, errlen);
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

int gw_regdb_export(sqlite3 *db, const char *name, const struct gw_regdb_export_ops *ops,
                    void *ud, const char *format, const char *actor, int64_t now,
                    char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    struct gw_regdb_server *s = NULL;
    int rv = GW_ESTORAGE, in_tx = 0;
    int64_t n_frames = 0;

    if (db == NULL || ops == NULL || !sqlite3_get_autocommit(db)) {
        gw_seterr(err, errlen, "export: bad argument");
        return GW_EINVAL;
    }
    if ((rv = gw_regdb_check_name(name, err, errlen)) != 0)
        return rv;
    if ((rv = frames_exist(db, err, errlen)) != 0)
        return rv;
    rv = GW_ESTORAGE;
    s = malloc(sizeof *s);
    if (s == NULL) {
        gw_seterr(err, errlen, "export: out of memory");
        goto out;
    }
    /* one read snapshot for everything */
    if (gw_store_exec(db, "BEGIN", err, errlen) != 0)
        goto out;
    in_tx = 1;
    if ((rv = gw_regdb_show(db, name, s, err, errlen)) != 0)
        goto out;
    rv = GW_ESTORAGE;
    if (ops->server != NULL && ops->server(s, ud) != 0) {
        gw_seterr(err, errlen, "export stopped");
        goto out;
    }
    /* every pin (gw_regdb_show keeps 8) */
    if (sqlite3_prepare_v2(db, GW_REGDB_PINS_SQL, -1, &st, NULL) != SQLITE_OK) {
        rv = gw_regdb_dberr(db, "reading pins", err, errlen);
        goto out;
    }
    sqlite3_bind_int64(st, 1, s->id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct gw_regdb_pin p;
        gw_regdb_pin_row(st, &p);
        if (ops->pin != NULL && ops->pin(&p, ud) != 0) {
            gw_seterr(err, errlen, "export stopped");
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        rv = gw_regdb_dberr(db, "reading pins", err, errlen);
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rv = gw_regdb_export_frames(db, s->id, ops, ud, &n_frames, err, errlen)) != 0)
        goto out;
    rv = GW_ESTORAGE;
    struct gw_activity_filter filt = {.server = name};
    struct export_act a = {.ops = ops, .ud = ud};
    if ((rv = gw_activity_query(db, &filt, export_act_one, &a, err, errlen)) != 0)
        goto out;
    if (a.stopped) {
        gw_seterr(err, errlen, "export stopped");
        rv = GW_ESTORAGE;
        goto out;
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    in_tx = 0;
    rv = 0;
    if (actor != NULL) {
        struct gw_regdb_jbuf jb = {0};
        gw_regdb_jb_raw(&jb, "{");
        gw_regdb_jb_kstr(&jb, "format", format ? format : "");
        gw_regdb_jb_kint(&jb, "frames", n_frames);
        gw_regdb_jb_raw(&jb, "}");
        if (jb.oom)
            rv = GW_ESTORAGE;
        else
            rv = gw_activity_add(db, now, actor, "export", s->id, gw_regdb_jb_text(&jb), err,
                                 errlen);
        gw_regdb_jb_free(&jb);
    }
out:
    sqlite3_finalize(st);
    if (in_tx)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    free(s);
    return rv;
}
