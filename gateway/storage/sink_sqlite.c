/*
 * sink_sqlite.c - the embedded storage backend: one SQLite file in WAL
 * mode, one transaction per batch (group commit), one savepoint per item.
 *
 * The connection is opened by gw_sink_new on the caller's thread, then used
 * only by the sink's writer thread, and closed after that thread is joined:
 * one thread at a time, so SQLITE_OPEN_NOMUTEX.
 *
 *   frames(server_id, seq, ts_ms, received_ms, reported_name, body)
 *   PRIMARY KEY(server_id, seq) WITHOUT ROWID
 *
 * and, in the same transaction, only for a frame whose frames row was
 * really inserted (never for a duplicate), its derived rows (store.h,
 * docs/STORAGE.md): one server_samples row, one stream_samples row per
 * stream path (streams of the same path in one frame are added together)
 * and one geo_samples row per viewers bucket.  Stream paths are looked up
 * in stream_paths through a bounded in-memory cache (samples.h); the cache
 * is emptied after a failed batch or a rejected item (their inserts were
 * rolled back) and when meta.stream_paths_generation moves (a purge or
 * erase deleted paths).
 *
 * seq and ts_ms are uint64 on the wire; SQLite integers are int64, so both
 * are stored as the int64 with the same bit pattern ((int64_t)v, two's
 * complement): values above INT64_MAX read back negative and must be cast
 * to uint64_t by readers (panelgatectl export does).  The primary key stays
 * unique because the mapping is a bijection.
 *
 * Before an item is written, its server is looked up in the registry
 * (servers, in this file or the attached registry file) inside the same
 * transaction: a frame of a server that is no longer registered completes
 * GW_SINK_UNREGISTERED, one of a revoked server GW_SINK_REVOKED, and an
 * activity row of a server no longer registered GW_SINK_UNREGISTERED,
 * nothing of them written.  BEGIN IMMEDIATE takes the write lock of every
 * database of the connection, the attached registry included, and
 * panelgatectl's erase and revoke take the same lock, so the registry
 * cannot change between this read and the batch's commit: a frame either
 * commits before an erase (which then deletes it) or is refused; none is
 * stored after it, nor after a revocation (issue 11).  One lookup per
 * server per batch (by key, in a table of a few thousand rows).  The
 * check is off when cfg->no_registry_check is set (not a file key):
 * panelgate-store writes a database without a registry, and the registry
 * of the scale-out shape is checked where frames are admitted.
 *
 * Each item is written inside its own SAVEPOINT, so that one bad row does
 * not cost the batch: an item whose insert fails with a row-level error (a
 * constraint, SQLITE_TOOBIG, SQLITE_MISMATCH, SQLITE_RANGE from a bind: see
 * gw_sqlite_error in store.h) is rolled back to its savepoint, marked GW_SINK_REJECTED and logged
 * (sink_item_failed), and the rest of the batch commits.  A storage error
 * (SQLITE_BUSY, SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY, ...), or any
 * failure of BEGIN, COMMIT or a savepoint, fails the batch: it is rolled
 * back and every item marked GW_SINK_FAILED; the next batch simply tries
 * again.  The failure is logged once when storage starts failing (and
 * again if the error changes), and once when it recovers.
 */
#include "alloc.h"
#include "sink.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "clock.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "regdb.h"
#include "registry.h"
#include "samples.h"
#include "store.h"

/* Paths cached by the writer; a miss costs one indexed SELECT. */
#define PATH_CACHE_ENTRIES 65536

/* The files of the database, as opened: replaced when the path names
 * another inode or nothing. */
enum { F_DB, F_WAL, F_SHM, F_N };
static const char *const file_suffix[F_N] = {"", "-wal", "-shm"};

struct file_id {
    dev_t dev;
    ino_t ino;
    int known;
};

struct sq {
    /* the settings, kept to reopen */
    char *path;
    char *registry_path; /* NULL: the registry shares the file */
    int sync_normal;
    int busy_ms;
    int64_t cache_kib;   /* PRAGMA cache_size = -cache_kib (config.h) */
    int64_t mmap_bytes;  /* PRAGMA mmap_size */
    uint32_t autockpt;   /* PRAGMA wal_autocheckpoint (pages) */
    int samples;
    int check_registry; /* 0: cfg->no_registry_check (panelgate-store) */
    struct file_id ids[F_N];
    int replaced;       /* 1 + the F_* found replaced, 0 = none */
    int saved;          /* ... and the old WAL was checkpointed through db */

    sqlite3 *db;        /* NULL while closed after a replacement */
    pthread_mutex_t db_mu; /* db's open and close against sq_interrupt */
    sqlite3_stmt *begin;
    sqlite3_stmt *insert;
    sqlite3_stmt *insert_activity;
    sqlite3_stmt *commit;
    sqlite3_stmt *rollback;
    sqlite3_stmt *savepoint, *release, *rollback_to; /* around each item */
    sqlite3_stmt *sel_server; /* is the item's server registered, active */
    int64_t seen_id;          /* the last server looked up in this batch */
    int seen_admit;           /* ... its verdict (see admitted) */
    size_t n_refused;         /* items of this batch refused by admitted */
    int64_t refused_id;       /* ... the server of the first one */
    uint64_t refused_unlogged; /* refused items not logged yet */
    int64_t refused_log_ms;   /* gw_mono_ms of the last sink_refused line */
    /* derived rows (NULL when cfg->store_samples is off) */
    sqlite3_stmt *ins_server, *ins_stream, *ins_geo;
    sqlite3_stmt *sel_path, *ins_path, *touch_path, *paths_gen;
    struct gw_path_cache *paths;
    int64_t paths_generation;
    const char *table;  /* the table the last insert was for (logs) */
    const char *activity_table; /* main.activity, or reg.activity (a registry of its own) */
    int failing;        /* last batch failed */
    int last_rc;        /* extended code of the last failure */
    char err[256];      /* text of the last failure */
};


/* Finalizes the statements and closes the connection (q stays). */
static void close_db(struct sq *q)
{
    sqlite3_finalize(q->begin);
    sqlite3_finalize(q->insert);
    sqlite3_finalize(q->insert_activity);
    sqlite3_finalize(q->commit);
    sqlite3_finalize(q->rollback);
    sqlite3_finalize(q->savepoint);
    sqlite3_finalize(q->release);
    sqlite3_finalize(q->rollback_to);
    sqlite3_finalize(q->sel_server);
    sqlite3_finalize(q->ins_server);
    sqlite3_finalize(q->ins_stream);
    sqlite3_finalize(q->ins_geo);
    sqlite3_finalize(q->sel_path);
    sqlite3_finalize(q->ins_path);
    sqlite3_finalize(q->touch_path);
    sqlite3_finalize(q->paths_gen);
    /* sq_interrupt may run on the main thread at any time: never against
     * a handle being closed */
    pthread_mutex_lock(&q->db_mu);
    sqlite3_close(q->db);
    q->begin = q->insert = q->insert_activity = q->commit = q->rollback = NULL;
    q->savepoint = q->release = q->rollback_to = q->sel_server = NULL;
    q->ins_server = q->ins_stream = q->ins_geo = NULL;
    q->sel_path = q->ins_path = q->touch_path = q->paths_gen = NULL;
    q->db = NULL;
    pthread_mutex_unlock(&q->db_mu);
}

static void sq_close(void *state)
{
    struct sq *q = state;
    if (q == NULL)
        return;
    close_db(q);
    pthread_mutex_destroy(&q->db_mu);
    gw_path_cache_free(q->paths);
    gw_free(q->path);
    gw_free(q->registry_path);
    gw_free(q);
}

static int exec(struct sq *q, const char *sql, const char *path, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(q->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        gw_seterr(err, errlen, "sqlite %s: %s: %s", path, sql, msg ? msg : sqlite3_errmsg(q->db));
        sqlite3_free(msg);
        return GW_ESTORAGE;
    }
    return 0;
}

static int set_wal(struct sq *q, const char *path, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;
    if (sqlite3_prepare_v2(q->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        gw_seterr(err, errlen, "sqlite %s: journal_mode=WAL: %s", path, sqlite3_errmsg(q->db));
        goto out;
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    if (mode == NULL || strcasecmp(mode, "wal") != 0) {
        gw_seterr(err, errlen, "sqlite %s: journal_mode is %s, not wal", path,
               mode ? mode : "unknown");
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

static int prep(struct sq *q, sqlite3_stmt **st, const char *sql, const char *path, char *err,
                size_t errlen)
{
    if (sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
        gw_seterr(err, errlen, "sqlite %s: %s: %s", path, sql, sqlite3_errmsg(q->db));
        return GW_ESTORAGE;
    }
    return 0;
}

static int prep_samples(struct sq *q, const char *path, char *err, size_t errlen)
{
    gw_path_cache_clear(q->paths);
    q->paths_generation = -1; /* read at the first batch */
    if (prep(q, &q->ins_server,
             "INSERT INTO server_samples(server_id, ts_ms, seq, cpu_pct, ram_used, ram_total,"
             " bytes_in, bytes_out, period_ms, conns) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
             path, err, errlen) != 0 ||
        /* the same path twice in one frame: added together, saturating */
        prep(q, &q->ins_stream,
             "INSERT INTO stream_samples(server_id, seq, stream_id, viewers, bitrate, bytes_in,"
             " bytes_out) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
             " ON CONFLICT(server_id, seq, stream_id) DO UPDATE SET"
             " viewers = min(viewers + excluded.viewers, 9223372036854775807),"
             " bitrate = min(bitrate + excluded.bitrate, 9223372036854775807),"
             " bytes_in = min(bytes_in + excluded.bytes_in, 9223372036854775807),"
             " bytes_out = min(bytes_out + excluded.bytes_out, 9223372036854775807)",
             path, err, errlen) != 0 ||
        prep(q, &q->ins_geo,
             "INSERT INTO geo_samples(server_id, seq, cc, asn, conns, bytes_in, bytes_out)"
             " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
             path, err, errlen) != 0 ||
        prep(q, &q->sel_path,
             "SELECT id, last_ms FROM stream_paths WHERE server_id = ?1 AND vhost = ?2"
             " AND app = ?3 AND instance = ?4 AND stream = ?5",
             path, err, errlen) != 0 ||
        prep(q, &q->ins_path,
             "INSERT INTO stream_paths(server_id, vhost, app, instance, stream, last_ms)"
             " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
             path, err, errlen) != 0 ||
        prep(q, &q->touch_path,
             "UPDATE stream_paths SET last_ms = ?2 WHERE id = ?1 AND last_ms < ?2", path, err,
             errlen) != 0 ||
        prep(q, &q->paths_gen,
             "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'stream_paths_generation'",
             path, err, errlen) != 0)
        return GW_ESTORAGE;
    return 0;
}

/* The identity of the file at q->path + file_suffix[f]: 0, or -1 when
 * there is none (or it cannot be read). */
static int file_id_of(const struct sq *q, int f, struct file_id *id)
{
    char name[4096];
    struct stat sb;
    if ((size_t)snprintf(name, sizeof name, "%s%s", q->path, file_suffix[f]) >= sizeof name ||
        stat(name, &sb) != 0)
        return -1;
    id->dev = sb.st_dev;
    id->ino = sb.st_ino;
    id->known = 1;
    return 0;
}

/* The first file (F_*) no longer the one opened, or -1: a stat each, about
 * a microsecond.  A file not there at the open is recorded when it first
 * appears (SQLite makes -wal and -shm with the first transaction). */
static int files_changed(struct sq *q)
{
    for (int f = 0; f < F_N; f++) {
        struct file_id now;
        if (file_id_of(q, f, &now) != 0) {
            if (q->ids[f].known)
                return f;
            continue;
        }
        if (!q->ids[f].known)
            q->ids[f] = now;
        else if (now.dev != q->ids[f].dev || now.ino != q->ids[f].ino)
            return f;
    }
    return -1;
}

/* Opens q->db on q->path and prepares everything.  |create|: make the file
 * when missing (at start); a reopen after a replacement takes only a
 * panelgate database that is already there.  0, or a GW_E* code with the
 * reason in err (the connection closed again). */
static int open_db(struct sq *q, int create, char *err, size_t errlen)
{
    const char *path = q->path;
    int rv = GW_ESTORAGE;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db,
                             SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) |
                                 SQLITE_OPEN_NOMUTEX,
                             NULL);
    pthread_mutex_lock(&q->db_mu);
    q->db = db;
    pthread_mutex_unlock(&q->db_mu);
    if (rc != SQLITE_OK) {
        gw_seterr(err, errlen, "sqlite %s: cannot open: %s", path,
               q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(q->db, 1);
    sqlite3_busy_timeout(q->db, q->busy_ms);
    if (!create) {
        /* not an empty or foreign file: the frames table must be there */
        char verr[256];
        int version = 0;
        if (gw_store_version(q->db, &version, verr, sizeof verr) != 0 || version == 0) {
            gw_seterr(err, errlen, "sqlite %s: not a panelgate database%s%s", path,
                   version == 0 ? "" : ": ", version == 0 ? "" : verr);
            goto fail;
        }
    }
    if (set_wal(q, path, err, errlen) != 0)
        goto fail;
    if (exec(q, q->sync_normal ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL",
             path, err, errlen) != 0)
        goto fail;
    if (exec(q, "PRAGMA foreign_keys=ON", path, err, errlen) != 0)
        goto fail;
    {
        /* SQLite's defaults unless bench_sink measures others */
        char sql[128];
        snprintf(sql, sizeof sql,
                 "PRAGMA cache_size=-%lld; PRAGMA mmap_size=%lld; PRAGMA wal_autocheckpoint=%u",
                 (long long)q->cache_kib, (long long)q->mmap_bytes, q->autockpt);
        if (exec(q, sql, path, err, errlen) != 0)
            goto fail;
    }
    /* The registry shares the file unless registry_path names another. */
    if (q->registry_path == NULL) {
        char rerr[256];
        if (gw_registry_schema(q->db, rerr, sizeof rerr) != 0) {
            gw_seterr(err, errlen, "sqlite %s: %s", path, rerr);
            goto fail;
        }
    }
    {
        char serr[256];
        if (gw_store_schema(q->db, serr, sizeof serr) != 0) {
            gw_seterr(err, errlen, "sqlite %s: %s", path, serr);
            goto fail;
        }
    }
    /* Activity rows belong with the registry: attach it when it lives in a
     * file of its own. */
    const char *activity_table = "main.activity";
    if (q->registry_path != NULL) {
        sqlite3_stmt *at = NULL;
        rc = sqlite3_prepare_v2(q->db, "ATTACH DATABASE ?1 AS reg", -1, &at, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_text(at, 1, q->registry_path, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(at);
        sqlite3_finalize(at);
        if (rc != SQLITE_DONE) {
            gw_seterr(err, errlen, "sqlite %s: cannot attach registry %s: %s", path,
                   q->registry_path, sqlite3_errmsg(q->db));
            goto fail;
        }
        /* a registry of its own is made by panelgatectl; the prepare below
         * fails with "no such table" when it is not a registry */
        activity_table = "reg.activity";
    }
    q->activity_table = activity_table;
    char server_sql[96];
    snprintf(server_sql, sizeof server_sql,
             "SELECT status = 'active' FROM %s.servers WHERE id = ?1",
             strcmp(activity_table, "reg.activity") == 0 ? "reg" : "main");
    char activity_sql[160];
    snprintf(activity_sql, sizeof activity_sql,
             "INSERT INTO %s(at, actor, action, server_id, details)"
             " VALUES(?1, 'gateway', ?2, ?3, ?4)",
             activity_table);
    if (prep(q, &q->begin, "BEGIN IMMEDIATE", path, err, errlen) != 0 ||
        prep(q, &q->commit, "COMMIT", path, err, errlen) != 0 ||
        prep(q, &q->rollback, "ROLLBACK", path, err, errlen) != 0 ||
        prep(q, &q->savepoint, "SAVEPOINT item", path, err, errlen) != 0 ||
        prep(q, &q->release, "RELEASE item", path, err, errlen) != 0 ||
        prep(q, &q->rollback_to, "ROLLBACK TO item", path, err, errlen) != 0 ||
        prep(q, &q->insert,
             "INSERT OR IGNORE INTO frames(server_id, seq, ts_ms, received_ms, reported_name, body)"
             " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
             path, err, errlen) != 0 ||
        prep(q, &q->insert_activity, activity_sql, path, err, errlen) != 0 ||
        prep(q, &q->sel_server, server_sql, path, err, errlen) != 0)
        goto fail;
    if (q->samples && (rv = prep_samples(q, path, err, errlen)) != 0)
        goto fail;
    /* the files as they are now: the schema step made -wal and -shm */
    for (int f = 0; f < F_N; f++) {
        q->ids[f].known = 0;
        (void)file_id_of(q, f, &q->ids[f]);
    }
    if (!q->ids[F_DB].known) {
        gw_seterr(err, errlen, "sqlite %s: gone again right after the open", path);
        rv = GW_ESTORAGE;
        goto fail;
    }
    return 0;
fail:
    close_db(q);
    return rv;
}

static int sq_open(void **state, const struct gw_config *cfg, char *err, size_t errlen)
{
    struct sq *q = NULL;
    const char *path = cfg ? cfg->sqlite_path : NULL;
    int rv = GW_ENOMEM;

    *state = NULL;
    if (path == NULL || *path == '\0')
        return gw_fail(GW_ECONFIG, err, errlen, "sqlite: no sqlite_path");
    q = gw_calloc(1, sizeof *q);
    if (q == NULL)
        return gw_fail(GW_ENOMEM, err, errlen, "sqlite: out of memory");
    if (pthread_mutex_init(&q->db_mu, NULL) != 0) {
        gw_free(q);
        return gw_fail(GW_EINTERNAL, err, errlen, "sqlite: pthread_mutex_init failed");
    }
    q->path = gw_strdup(path);
    if (cfg->registry_path != NULL && strcmp(cfg->registry_path, path) != 0)
        q->registry_path = gw_strdup(cfg->registry_path);
    q->sync_normal = cfg->sqlite_synchronous == GW_SYNC_NORMAL;
    q->busy_ms = (int)(cfg->busy_timeout_ms > 600000 ? 600000 : cfg->busy_timeout_ms);
    /* 0 (a zeroed config) is SQLite's default */
    q->cache_kib = cfg->sqlite_cache_size >= 1024 ? (int64_t)(cfg->sqlite_cache_size / 1024) : 2000;
    q->mmap_bytes = (int64_t)cfg->sqlite_mmap_size;
    q->autockpt = cfg->sqlite_wal_autocheckpoint ? cfg->sqlite_wal_autocheckpoint : 1000;
    q->samples = cfg->store_samples;
    q->check_registry = !cfg->no_registry_check;
    if (q->path == NULL || (cfg->registry_path != NULL && strcmp(cfg->registry_path, path) != 0 &&
                            q->registry_path == NULL)) {
        gw_seterr(err, errlen, "sqlite: out of memory");
        goto fail;
    }
    if (q->samples) {
        /* a seed for the cache's hash: paths are chosen by agents */
        uint64_t seed = (uint64_t)(uintptr_t)q ^ ((uint64_t)sqlite3_sourceid()[0] << 32);
        sqlite3_randomness(sizeof seed, &seed);
        q->paths = gw_path_cache_new(PATH_CACHE_ENTRIES, seed);
        if (q->paths == NULL) {
            gw_seterr(err, errlen, "sqlite: out of memory");
            goto fail;
        }
    }
    if ((rv = open_db(q, 1, err, errlen)) != 0)
        goto fail;
    *state = q;
    return 0;
fail:
    sq_close(q);
    return rv;
}

/* Steps a statement that returns no rows; SQLITE_DONE or the error code. */
static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_DONE : rc;
}

/* One activity row of |it|'s action, server and time, with |details|. */
static int insert_activity_text(struct sq *q, const struct gw_sink_item *it,
                                const char *details, size_t len)
{
    sqlite3_stmt *st = q->insert_activity;
    q->table = "activity";
    int rc = sqlite3_bind_int64(st, 1, it->received_ms / 1000);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 2, it->action ? it->action : "unknown", -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = it->server_id ? sqlite3_bind_int64(st, 3, it->server_id) : sqlite3_bind_null(st, 3);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 4, details, (int)len, SQLITE_STATIC);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int insert_activity(struct sq *q, struct gw_sink_item *it)
{
    int rc = insert_activity_text(q, it, (const char *)it->body, it->body_len);
    if (rc == SQLITE_DONE)
        it->status = GW_SINK_STORED;
    return rc;
}

static int insert_samples(struct sq *q, const struct gw_sink_item *it);

static int insert_one(struct sq *q, struct gw_sink_item *it)
{
    sqlite3_stmt *st = q->insert;
    int rc;

    if (it->kind == GW_SINK_ACTIVITY)
        return insert_activity(q, it);
    q->table = "frames";
    rc = sqlite3_bind_int64(st, 1, it->server_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, (int64_t)it->seq); /* bit pattern, see top */
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, (int64_t)it->ts_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 4, it->received_ms);
    if (rc == SQLITE_OK)
        rc = it->reported_name ? sqlite3_bind_text(st, 5, it->reported_name, -1, SQLITE_STATIC)
                               : sqlite3_bind_null(st, 5);
    if (rc == SQLITE_OK) {
        /* bind_blob(NULL) would bind SQL NULL; an empty body is a blob. */
        if (it->body_len == 0 || it->body == NULL)
            rc = sqlite3_bind_zeroblob(st, 6, 0);
        else if (it->body_len > (size_t)0x7fffffff)
            rc = SQLITE_TOOBIG;
        else
            rc = sqlite3_bind_blob(st, 6, it->body, (int)it->body_len, SQLITE_STATIC);
    }
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        it->status = sqlite3_changes(q->db) == 0 ? GW_SINK_DUPLICATE : GW_SINK_STORED;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st); /* drop the SQLITE_STATIC pointers */
    /* derived rows only for a row really inserted: a duplicate adds none */
    if (rc == SQLITE_DONE && it->status == GW_SINK_STORED && it->samples != NULL &&
        q->ins_server != NULL)
        rc = insert_samples(q, it);
    return rc;
}

/* The id of |s|'s path for |server_id|: from the cache, else the table
 * (inserted when new).  last_ms is moved forward at most once per
 * GW_PATH_TOUCH_MS.  SQLITE_DONE or the error. */
static int path_id(struct sq *q, int64_t server_id, const struct gw_stream_sample *s,
                   int64_t now_ms, int64_t *id)
{
    struct gw_path_entry *e = gw_path_cache_get(q->paths, server_id, s);
    int64_t last = now_ms;
    int rc;

    q->table = "stream_paths";
    if (e != NULL) {
        *id = e->id;
        if (now_ms - e->last_ms < GW_PATH_TOUCH_MS)
            return SQLITE_DONE;
        last = e->last_ms;
    } else {
        int found = 0;
        sqlite3_stmt *st = q->sel_path;
        rc = sqlite3_bind_int64(st, 1, server_id);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_text(st, 2, s->vhost, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_text(st, 3, s->app, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_text(st, 4, s->instance, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_text(st, 5, s->stream, -1, SQLITE_STATIC);
        if (rc != SQLITE_OK)
            return rc;
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *id = sqlite3_column_int64(st, 0);
            last = sqlite3_column_int64(st, 1);
            found = 1;
            rc = SQLITE_DONE;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_DONE)
            return rc;
        if (!found) { /* not in the table: add it */
            st = q->ins_path;
            rc = sqlite3_bind_int64(st, 1, server_id);
            if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(st, 2, s->vhost, -1, SQLITE_STATIC);
            if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(st, 3, s->app, -1, SQLITE_STATIC);
            if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(st, 4, s->instance, -1, SQLITE_STATIC);
            if (rc == SQLITE_OK)
                rc = sqlite3_bind_text(st, 5, s->stream, -1, SQLITE_STATIC);
            if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(st, 6, now_ms);
            if (rc != SQLITE_OK)
                return rc;
            rc = sqlite3_step(st);
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            if (rc != SQLITE_DONE)
                return rc;
            *id = sqlite3_last_insert_rowid(q->db);
        }
    }
    if (now_ms - last >= GW_PATH_TOUCH_MS) {
        sqlite3_stmt *st = q->touch_path;
        rc = sqlite3_bind_int64(st, 1, *id);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(st, 2, now_ms);
        if (rc != SQLITE_OK)
            return rc;
        rc = step_done(st);
        if (rc != SQLITE_DONE)
            return rc;
        last = now_ms;
    }
    /* a full cache empties itself; on OOM the next frame looks it up again */
    (void)gw_path_cache_put(q->paths, server_id, s, *id, last);
    return SQLITE_DONE;
}

/* Binds v[0..n) to the parameters first, first + 1, ...  SQLITE_OK or the
 * error. */
static int bind_i64s(sqlite3_stmt *st, int first, const int64_t *v, int n)
{
    int rc = SQLITE_OK;
    for (int k = 0; k < n && rc == SQLITE_OK; k++)
        rc = sqlite3_bind_int64(st, first + k, v[k]);
    return rc;
}

/* The derived rows of a frame just inserted.  SQLITE_DONE or the error.
 * ts_ms and seq are stored as their int64 bit pattern, as in frames. */
static int insert_samples(struct sq *q, const struct gw_sink_item *it)
{
    const struct gw_samples *sm = it->samples;
    const int64_t key[3] = {it->server_id, (int64_t)it->ts_ms, (int64_t)it->seq};
    const int64_t who[2] = {it->server_id, (int64_t)it->seq};
    const int64_t load[6] = {
        gw_samples_i64(sm->ram_used),  gw_samples_i64(sm->ram_total),
        gw_samples_i64(sm->bytes_in),  gw_samples_i64(sm->bytes_out),
        gw_samples_i64(sm->period_ms), gw_samples_i64(sm->conns),
    };
    sqlite3_stmt *st = q->ins_server;
    int rc;

    q->table = "server_samples";
    rc = bind_i64s(st, 1, key, 3);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(st, 4, sm->cpu_pct);
    if (rc == SQLITE_OK)
        rc = bind_i64s(st, 5, load, 6);
    if (rc != SQLITE_OK || (rc = step_done(st)) != SQLITE_DONE)
        return rc;

    for (uint32_t i = 0; i < sm->n_streams; i++) {
        const struct gw_stream_sample *ss = &sm->streams[i];
        int64_t id = 0;
        if ((rc = path_id(q, it->server_id, ss, it->received_ms, &id)) != SQLITE_DONE)
            return rc;
        const int64_t row[7] = {
            who[0],                      who[1],
            id,                          gw_samples_i64(ss->viewers),
            gw_samples_i64(ss->bitrate), gw_samples_i64(ss->bytes_in),
            gw_samples_i64(ss->bytes_out),
        };
        st = q->ins_stream;
        q->table = "stream_samples";
        rc = bind_i64s(st, 1, row, 7);
        if (rc != SQLITE_OK || (rc = step_done(st)) != SQLITE_DONE)
            return rc;
    }
    for (uint32_t i = 0; i < sm->n_viewers; i++) {
        const struct gw_viewer_agg *v = &sm->viewers[i];
        const int64_t counts[4] = {
            (int64_t)v->asn,             gw_samples_i64(v->conns),
            gw_samples_i64(v->bytes_in), gw_samples_i64(v->bytes_out),
        };
        st = q->ins_geo;
        q->table = "geo_samples";
        rc = bind_i64s(st, 1, who, 2);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_text(st, 3, v->cc, -1, SQLITE_TRANSIENT);
        if (rc == SQLITE_OK)
            rc = bind_i64s(st, 4, counts, 4);
        if (rc != SQLITE_OK || (rc = step_done(st)) != SQLITE_DONE)
            return rc;
    }
    return SQLITE_DONE;
}

/* At the start of a batch (write lock held): forget cached path ids when
 * a purge or erase deleted paths since the last look. */
static int check_paths_generation(struct sq *q)
{
    int64_t gen = 0;
    int rc = sqlite3_step(q->paths_gen);
    if (rc == SQLITE_ROW) {
        gen = sqlite3_column_int64(q->paths_gen, 0);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(q->paths_gen);
    if (rc != SQLITE_DONE)
        return rc;
    if (gen != q->paths_generation) {
        gw_path_cache_clear(q->paths);
        q->paths_generation = gen;
    }
    return SQLITE_DONE;
}

/* |rc| and the connection's message for it, into buf. */
static void describe(struct sq *q, int rc, char *buf, size_t n)
{
    const char *msg = sqlite3_errmsg(q->db);
    const char *str = sqlite3_errstr(rc);
    /* The message names tables and columns, never values. */
    if (msg == NULL || strcmp(msg, str) == 0)
        snprintf(buf, n, "%s (code %d)", str, rc);
    else
        snprintf(buf, n, "%s (code %d): %s", str, rc, msg);
}

static void note_failure(struct sq *q, int rc, size_t n)
{
    describe(q, rc, q->err, sizeof q->err);
    if (!q->failing || q->last_rc != rc)
        gw_log(GW_LOG_WARN, NULL, "sink_failing",
               "sqlite batch of %zu frames failed, answering 503 until storage recovers: %s", n,
               q->err);
    q->failing = 1;
    q->last_rc = rc;
    gw_sink_note_error(q->err);
}

/* A GW_SINK_PURGE item: chunked deletes, each its own transaction that
 * also writes or updates the item's one "purge" row (regdb.h
 * gw_regdb_purge_rec: none when nothing was old enough), so a purge cut
 * short still has its row.  Runs between batches, never inside one. */
static void purge_one(struct sq *q, struct gw_sink_item *it)
{
    char err[256];
    struct gw_regdb_purge_rec rec = {
        .table = q->activity_table, .actor = "gateway", .at = it->received_ms / 1000};
    int rv = gw_regdb_purge_run(q->db, (int64_t)it->ts_ms, 0, &rec, err, sizeof err);

    gw_sink_log_retention(rv, err, rec.frames, rec.paths);
    it->status = rv == 0 ? GW_SINK_STORED : GW_SINK_FAILED;
}

static int write_frames(struct sq *q, struct gw_sink_item **items, size_t n);

/* ------------------------------------------------------ replaced files */

static const char *const replaced_event[F_N] = {"database_replaced", "wal_replaced",
                                                "shm_replaced"};
static const char *const replaced_reason[F_N] = {
    "database_replaced: the database file was deleted or replaced under the gateway; "
    "nothing is written until a panelgate database is back at sqlite_path",
    "wal_replaced: the WAL file was deleted or replaced under the gateway; its frames are "
    "saved into the database file, then the database is reopened",
    "shm_replaced: the -shm file was deleted or replaced under the gateway; the database is "
    "checkpointed and reopened",
};

/* Copies every committed frame of the WAL this connection has open - the
 * file at the path or one already unlinked - into the database file it
 * has open, and empties that WAL.  SQLITE_OK, or SQLITE_BUSY while a
 * reader still needs it (tried again at the next check). */
static int save_wal(struct sq *q, int *frames)
{
    int log = 0, ckpt = 0;
    /* FULL copies and counts; TRUNCATE then empties (its counts are 0) */
    int rc = sqlite3_wal_checkpoint_v2(q->db, "main", SQLITE_CHECKPOINT_FULL, &log, &ckpt);
    *frames = ckpt > 0 ? ckpt : 0;
    if (rc == SQLITE_OK)
        rc = sqlite3_wal_checkpoint_v2(q->db, "main", SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    return rc;
}

/* A file of the database (F_*) is not the one opened any more: logged,
 * the outage's reason, and the old WAL saved at once - acknowledged frames
 * in a WAL that is gone survive only through this checkpoint.  When the
 * database file itself was replaced, the checkpoint goes into the old one
 * (still open) and, above all, empties the -wal at the path, which must
 * never be replayed into the new file. */
static void found_replaced(struct sq *q, int f)
{
    if (q->replaced == 0) {
        int frames = 0;
        int rc = save_wal(q, &frames);
        q->saved = rc == SQLITE_OK;
        q->replaced = 1 + f;
        gw_log(GW_LOG_ERROR, NULL, replaced_event[f],
               "%s%s of the running gateway was deleted or replaced; %s: %s", q->path,
               file_suffix[f],
               q->saved ? "checkpointed the WAL the gateway had open" : "checkpoint failed",
               q->saved ? (frames ? "its frames are in the database file" : "it was empty")
                        : sqlite3_errmsg(q->db));
        if (q->saved && frames)
            gw_log(GW_LOG_INFO, NULL, "wal_saved", "%d WAL frames (pages) copied into %s",
                   frames, q->path);
    } else if (f == F_DB && q->replaced != 1 + F_DB) {
        /* the database file too, after its -wal or -shm: wait for it */
        q->replaced = 1 + F_DB;
        gw_log(GW_LOG_ERROR, NULL, replaced_event[F_DB],
               "%s of the running gateway was deleted or replaced", q->path);
    }
    gw_sink_note_error(replaced_reason[q->replaced - 1]);
    gw_sink_note_replaced();
}

/* sink ops check: the files still the ones opened?  After a replacement:
 * save the old WAL (until it works), close once the loop let go of its
 * connections (|reopen_ok|: the -shm is shared by every connection of the
 * process, so all of them must close for a new one to be mapped), then
 * reopen - at once after a -wal or -shm replacement, and after a database
 * replacement only on a panelgate database found at the path (never a new
 * empty one). */
static int sq_check(void *state, int reopen_ok)
{
    struct sq *q = state;
    char err[256];

    if (q->db != NULL) {
        int f = files_changed(q);
        if (f < 0 && q->replaced == 0)
            return 0;
        found_replaced(q, f >= 0 ? f : q->replaced - 1);
        if (!q->saved) {
            int frames = 0;
            if (save_wal(q, &frames) != SQLITE_OK && q->replaced != 1 + F_DB) {
                gw_log(GW_LOG_WARN, NULL, "wal_save_retry",
                       "checkpoint of %s before the reopen: %s; trying again", q->path,
                       sqlite3_errmsg(q->db));
                return GW_ESTORAGE;
            }
            q->saved = 1; /* (into a database file that is gone: best effort) */
        }
        if (!reopen_ok)
            return GW_ESTORAGE;
        close_db(q);
    }
    int what = q->replaced - 1;
    if (open_db(q, 0, err, sizeof err) != 0) {
        /* the reason stays the replacement's; the detail is logged when it
         * changes */
        if (strcmp(q->err, err) != 0)
            gw_log(GW_LOG_WARN, NULL, "storage_reopen_failed", "%s; trying again", err);
        snprintf(q->err, sizeof q->err, "%s", err);
        gw_sink_note_error(replaced_reason[what]);
        gw_sink_note_replaced();
        return GW_ESTORAGE;
    }
    gw_log(GW_LOG_INFO, NULL, "storage_reopened",
           "reopened %s after its %s file was replaced: a new WAL, frames are written again",
           q->path, what == F_DB ? "database" : what == F_WAL ? "-wal" : "-shm");
    q->replaced = 0;
    q->saved = 0;
    q->failing = 0;
    q->err[0] = '\0';
    gw_sink_note_reopened();
    return 0;
}

static int sq_write_batch(void *state, struct gw_sink_item **items, size_t n)
{
    struct sq *q = state;
    size_t n_purge = 0;
    for (size_t i = 0; i < n; i++)
        n_purge += items[i]->kind == GW_SINK_PURGE;
    if (n_purge == 0)
        return write_frames(q, items, n);
    /* the rest as one commit, in order, then the purges */
    int rv = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (items[i]->kind != GW_SINK_PURGE)
            k++;
    if (k > 0) {
        struct gw_sink_item **rest = gw_malloc(k * sizeof *rest);
        if (rest == NULL) {
            for (size_t i = 0; i < n; i++)
                items[i]->status = GW_SINK_FAILED;
            return GW_ESTORAGE;
        }
        k = 0;
        for (size_t i = 0; i < n; i++)
            if (items[i]->kind != GW_SINK_PURGE)
                rest[k++] = items[i];
        rv = write_frames(q, rest, k);
        gw_free(rest);
    }
    for (size_t i = 0; i < n; i++)
        if (items[i]->kind == GW_SINK_PURGE)
            purge_one(q, items[i]);
    return rv;
}

enum { ADMIT_UNKNOWN = 0, ADMIT_YES, ADMIT_REVOKED, ADMIT_GONE };

/* Whether the registry still takes |it|, read in the batch's transaction
 * (see the top): *refusal is GW_SINK_STORED when it does, else the status
 * the item completes with.  A frame needs its server registered and
 * active; an activity row only needs its server registered (the row that
 * says a revoked server was disconnected is kept), or none.  SQLITE_DONE
 * or the error. */
static int admitted(struct sq *q, const struct gw_sink_item *it, enum gw_sink_status *refusal)
{
    *refusal = GW_SINK_STORED;
    if (!q->check_registry || (it->kind == GW_SINK_ACTIVITY && it->server_id == 0))
        return SQLITE_DONE;
    if (q->seen_admit == ADMIT_UNKNOWN || q->seen_id != it->server_id) {
        sqlite3_stmt *st = q->sel_server;
        q->table = "servers";
        int rc = sqlite3_bind_int64(st, 1, it->server_id);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        int admit = rc == SQLITE_ROW ? (sqlite3_column_int(st, 0) ? ADMIT_YES : ADMIT_REVOKED)
                                     : ADMIT_GONE;
        sqlite3_reset(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return rc;
        q->seen_id = it->server_id;
        q->seen_admit = admit;
    }
    if (q->seen_admit == ADMIT_GONE)
        *refusal = GW_SINK_UNREGISTERED;
    else if (q->seen_admit == ADMIT_REVOKED && it->kind == GW_SINK_FRAME)
        *refusal = GW_SINK_REVOKED;
    if (*refusal != GW_SINK_STORED) {
        q->n_refused++;
        q->refused_id = it->server_id;
    }
    return SQLITE_DONE;
}

/* |it| inside its own savepoint: a row-level error undoes this item alone,
 * which completes GW_SINK_REJECTED while the batch goes on.  SQLITE_DONE,
 * or the error that fails the whole batch. */
static int write_item(struct sq *q, struct gw_sink_item *it)
{
    char why[256];
    enum gw_sink_status refusal;
    int rc = admitted(q, it, &refusal);
    if (rc != SQLITE_DONE)
        return rc;
    if (refusal != GW_SINK_STORED) {
        it->status = refusal;
        return SQLITE_DONE;
    }
    rc = step_done(q->savepoint);
    if (rc != SQLITE_DONE)
        return rc;
    rc = insert_one(q, it);
    if (rc == SQLITE_DONE)
        return step_done(q->release);
    /* some errors make SQLite roll the whole transaction back itself: then
     * the items before this one are gone too */
    if (gw_sqlite_error(rc) == GW_ESTORAGE || sqlite3_get_autocommit(q->db))
        return rc;
    describe(q, rc, why, sizeof why); /* before the rollback resets it */
    int rb = step_done(q->rollback_to);
    if (rb == SQLITE_DONE)
        rb = step_done(q->release);
    if (rb != SQLITE_DONE)
        return rb;
    /* Paths this item inserted are gone again.  Which ones is not tracked:
     * the whole cache goes, the simplest correct choice for something this
     * rare (it refills at one SELECT per path). */
    gw_path_cache_clear(q->paths);
    it->status = GW_SINK_REJECTED;
    /* the server id is the registry's, not the frame's; no value of the
     * row is logged */
    gw_log(GW_LOG_WARN, NULL, "sink_item_failed",
           "sqlite refused one %s row (server id %lld); that item is skipped, the rest of "
           "its batch goes on: %s",
           q->table ? q->table : "?", (long long)it->server_id, why);
    return SQLITE_DONE;
}

static int write_frames(struct sq *q, struct gw_sink_item **items, size_t n)
{
    int rc = step_done(q->begin);
    if (rc != SQLITE_DONE)
        goto fail;
    q->seen_admit = ADMIT_UNKNOWN; /* the registry may have changed since */
    q->n_refused = 0;
    if (q->paths != NULL && (rc = check_paths_generation(q)) != SQLITE_DONE)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        rc = write_item(q, items[i]);
        if (rc != SQLITE_DONE)
            goto fail;
    }
    /* A WAL deleted under us would take this commit with it: nothing is
     * acknowledged into a file that is gone (sq_check saves and reopens). */
    int f = files_changed(q);
    if (f >= 0) {
        step_done(q->rollback);
        gw_path_cache_clear(q->paths);
        for (size_t i = 0; i < n; i++)
            items[i]->status = GW_SINK_FAILED;
        found_replaced(q, f);
        return GW_ESTORAGE;
    }
    rc = step_done(q->commit);
    if (rc != SQLITE_DONE)
        goto fail;
    /* at most one line a second: an erased server's agent may go on
     * sending until the gateway cuts its connection */
    q->refused_unlogged += q->n_refused;
    if (q->n_refused > 0 && (q->refused_log_ms == 0 || gw_mono_ms() - q->refused_log_ms >= 1000)) {
        gw_log(GW_LOG_INFO, NULL, "sink_refused",
               "%llu items not stored since the last such line: their server was erased or "
               "revoked before they could commit (the last: server id %lld)",
               (unsigned long long)q->refused_unlogged, (long long)q->refused_id);
        q->refused_unlogged = 0;
        q->refused_log_ms = gw_mono_ms();
    }
    if (q->failing)
        gw_log(GW_LOG_INFO, NULL, "sink_recovered", "sqlite storage accepts frames again");
    q->failing = 0;
    q->err[0] = '\0';
    return 0;

fail:
    note_failure(q, rc, n);
    /* SQLite may have rolled back already (SQLITE_FULL, SQLITE_IOERR). */
    if (!sqlite3_get_autocommit(q->db))
        step_done(q->rollback);
    /* paths inserted or touched in this batch are gone again */
    gw_path_cache_clear(q->paths);
    for (size_t i = 0; i < n; i++)
        items[i]->status = GW_SINK_FAILED;
    return GW_ESTORAGE;
}


/* sqlite3_interrupt may come from another thread: the statement running
 * on the writer's connection stops with SQLITE_INTERRUPT. */
static void sq_interrupt(void *state)
{
    struct sq *q = state;
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->db_mu);
    if (q->db != NULL)
        sqlite3_interrupt(q->db);
    pthread_mutex_unlock(&q->db_mu);
}

const struct gw_sink_ops gw_sink_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .write_batch = sq_write_batch,
    .close = sq_close,
    .interrupt = sq_interrupt,
    .check = sq_check,
};
