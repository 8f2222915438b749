/*
 * store.h - the storage schema in the frames file ([storage] sqlite_path):
 * frames plus the panel-facing tables derived from them (docs/STORAGE.md).
 *
 *   frames(server_id, seq, ts_ms, received_ms, reported_name, body)
 *   server_samples(server_id, ts_ms, seq, cpu_pct, ram_used, ram_total,
 *                  bytes_in, bytes_out, period_ms, conns)
 *   stream_paths(id, server_id, vhost, app, instance, stream, last_ms)
 *   stream_samples(server_id, seq, stream_id, viewers, bitrate, bytes_in,
 *                  bytes_out)
 *   geo_samples(server_id, seq, cc, asn, conns, bytes_in, bytes_out)
 *
 * meta.storage_schema_version says which layout the file has: 1 (frames
 * only; a file written before the derived tables existed has no version
 * row and is taken as 1) or 2 (this one).  Opening a version-1 file
 * migrates it: the derived tables are created empty, the frames stay as
 * they are (no backfill).  meta.stream_paths_generation advances whenever
 * rows of stream_paths are deleted (purge, erase), so a writer caching path
 * ids knows to forget them.
 */
#ifndef GW_STORE_H
#define GW_STORE_H

#include <stddef.h>

#include <sqlite3.h>

#include "err.h"

#define GW_STORE_VERSION 2

/* Creates the storage tables when missing, migrates a version-1 file,
 * refuses a newer version (GW_EINVAL).  Inside a savepoint: all or nothing.
 * Returns 0 or a GW_E* code (err.h) with a reason in err. */
int gw_store_schema(sqlite3 *db, char *err, size_t errlen);

/* The layout of |db|: 0 (no frames table), 1 or 2.  Returns 0, or
 * GW_ESTORAGE (SQLite error) or GW_EINVAL (unknown version) with a reason
 * in err. */
int gw_store_version(sqlite3 *db, int *version, char *err, size_t errlen);

/* SQL that advances meta.stream_paths_generation (run it in the
 * transaction that deletes paths). */
extern const char gw_store_bump_paths_sql[];

/* Runs |sql| (no parameters, no rows wanted).  0, or GW_ESTORAGE with
 * "database: SQL: reason" in err. */
int gw_store_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);

/* One write transaction: BEGIN IMMEDIATE when |db| has none open, a
 * savepoint inside the caller's otherwise.  IMMEDIATE takes the write
 * lock up front, waiting the busy timeout for it: a deferred transaction
 * that reads and then writes fails at once (SQLITE_BUSY_SNAPSHOT) when
 * another connection - the gateway's writer, say - committed in between.
 * begin and commit return 0 or GW_ESTORAGE with "database: SQL: reason"
 * in err; rollback undoes what is still open (nothing after a commit). */
struct gw_store_tx {
    sqlite3 *db;
    int nested;
    int open;
};
int gw_store_tx_begin(struct gw_store_tx *t, sqlite3 *db, char *err, size_t errlen);
int gw_store_tx_commit(struct gw_store_tx *t, char *err, size_t errlen);
void gw_store_tx_rollback(struct gw_store_tx *t);

/* A SQLite result code (primary or extended) as a GW_E* code, for whoever
 * calls SQLite: 0 for SQLITE_OK, _ROW and _DONE; GW_EREJECTED for what is
 * wrong with the row itself and fails again on a retry (a constraint, a
 * value too big or of the wrong type, a bind out of range); GW_ESTORAGE
 * for everything else - the database busy or locked, the disk full,
 * failing I/O, a read-only or corrupt file, no memory, and SQLITE_ERROR,
 * which a missing or changed table gives for every row - so an unknown
 * failure is retried later rather than refused for good. */
int gw_sqlite_error(int rc);

#endif /* GW_STORE_H */
