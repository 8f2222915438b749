/*
 * regdb.h - the write side of the registry and the activity log, in the
 * SQLite file the gateway reads (tables in registry.c's schema).
 *
 * Used by panelgatectl (register, rotate, revoke, list, show, activity) and
 * by the gateway's sink thread (activity rows).  Every change to servers or
 * server_pins also advances meta.registry_generation in the same
 * transaction; the gateway polls that value and reloads its registry
 * snapshot when it moves (docs/OPERATIONS.md).
 *
 * Functions return 0, or a negative GW_E* (err.h) with a reason in err:
 * GW_ESTORAGE (SQLite or I/O), GW_EEXIST (a server of that name exists),
 * GW_ENOTFOUND (no server of that name), GW_EPINNED (that public key is
 * pinned already), GW_EINVAL (a bad argument: name, kind), GW_ENOMEM.
 *
 * Implemented by regdb.c (open, statements, transactions), regdb_servers.c (register,
 * rotate, revoke, list, show), regdb_activity.c (the activity log) and
 * regdb_rights.c (purge, erase, export), over regdb_int.h.
 */
#ifndef GW_REGDB_H
#define GW_REGDB_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "err.h"
#include "registry.h"

/* Opens (creating when |create|) the database and makes sure the schema
 * exists.  WAL, busy timeout 5 s.  For the commands that write: the
 * schema step takes the write lock. */
int gw_regdb_open(const char *path, int create, sqlite3 **out, char *err, size_t errlen);

/* Opens an existing database read-only (SQLITE_OPEN_READONLY), for the
 * commands that only read: nothing is created, upgraded or locked for
 * writing, so it never waits for the gateway's writer nor holds it up,
 * and works on a file (or a copy in a directory) the caller cannot write.
 * A WAL file in a directory where its -shm cannot be made, with no -wal
 * beside it (a copy: nothing uncommitted can be missing), is read as
 * immutable.  The registry must be there in the version this build
 * knows: an older or newer one is GW_EINVAL with a reason that says so,
 * and is left as it is. */
int gw_regdb_open_ro(const char *path, sqlite3 **out, char *err, size_t errlen);

/* A registered server's name: 1..255 bytes of [A-Za-z0-9._-], not starting
 * with '.' or '-'. */
int gw_regdb_name_ok(const char *name);

/* Adds server |name| of |kind| with one pin; records "register" in the
 * activity log by |actor|.  *id_out (optional) gets the new id. */
int gw_regdb_register(sqlite3 *db, const char *name, const char *kind,
                      const uint8_t spki[GW_SPKI_LEN], const char *actor, const char *details,
                      int64_t now, int64_t *id_out, char *err, size_t errlen);

/* Adds a new pin to |name| and limits every other pin of it to
 * not_after = now + overlap_s (keeping an earlier not_after); records
 * "rotate". */
int gw_regdb_rotate(sqlite3 *db, const char *name, const uint8_t spki[GW_SPKI_LEN],
                    int64_t overlap_s, const char *actor, int64_t now, char *err,
                    size_t errlen);

/* Marks |name| revoked; records "revoke".  Revoking twice is not an error. */
int gw_regdb_revoke(sqlite3 *db, const char *name, const char *actor, int64_t now, char *err,
                    size_t errlen);

struct gw_regdb_pin {
    uint8_t spki[GW_SPKI_LEN];
    int64_t created_at;
    int64_t not_after; /* 0 = none */
};

struct gw_regdb_server {
    int64_t id;
    char name[256];
    char kind[16];
    char status[16];
    int64_t created_at;
    struct gw_regdb_pin pins[8]; /* newest first */
    unsigned n_pins;             /* pins stored (capped at 8) */
    unsigned n_pins_total;
};

typedef int (*gw_regdb_server_fn)(const struct gw_regdb_server *s, void *ud);

/* Calls fn for every server, by name; stops early when fn returns non-zero. */
int gw_regdb_list(sqlite3 *db, gw_regdb_server_fn fn, void *ud, char *err, size_t errlen);

int gw_regdb_show(sqlite3 *db, const char *name, struct gw_regdb_server *out, char *err,
                  size_t errlen);

/* ---- activity log ---- */

/* Appends one row.  |server_id| 0 = none.  |details| is JSON text or NULL. */
int gw_activity_add(sqlite3 *db, int64_t at, const char *actor, const char *action,
                    int64_t server_id, const char *details, char *err, size_t errlen);

struct gw_activity_filter {
    const char *server; /* name, or NULL */
    const char *action; /* or NULL */
    int64_t since;      /* Unix seconds, 0 = no bound */
    int64_t until;      /* 0 = no bound */
    unsigned limit;     /* 0 = no limit */
};

struct gw_activity_row {
    int64_t id;
    int64_t at;
    const char *actor;
    const char *action;
    const char *server; /* name or NULL (NULL too when the server was erased) */
    const char *details;
};

typedef int (*gw_activity_fn)(const struct gw_activity_row *row, void *ud);

/* Oldest first. */
int gw_activity_query(sqlite3 *db, const struct gw_activity_filter *f, gw_activity_fn fn,
                      void *ud, char *err, size_t errlen);

/* ---- data rights: retention, erasure, portability ----
 * These need the frames table, i.e. the registry in the same file as the
 * frames ([storage] sqlite_path, the default). */

#define GW_REGDB_PURGE_CHUNK 5000

/* The "purge" activity row of one purge, kept true at every commit: it is
 * written in the transaction of the first chunk that deletes something (of
 * the first chunk when |always|) and brought up to date in each later
 * chunk's transaction and in gw_regdb_purge_paths', so whatever is deleted
 * is counted by the same commit, and a purge that stops half way (killed,
 * or the database failing) leaves one row saying what it did, with
 * "complete":false.  Details: {"received_before_ms":cutoff,"frames":n,
 * "stream_paths":p,"complete":bool}.  Start the counters at 0. */
struct gw_regdb_purge_rec {
    const char *table; /* the activity table; NULL = "activity" */
    const char *actor;
    int64_t at;        /* the row's time, Unix seconds */
    int always;        /* a row even when nothing is deleted (panelgatectl) */
    /* kept by the steps: what is committed so far */
    int64_t row_id;    /* 0 until the row is written */
    int64_t frames, paths;
};

/* Deletes up to |limit| frames with received_ms < |cutoff_ms|, and their
 * derived rows (server_samples, stream_samples, geo_samples), in one
 * transaction of its own that also writes or updates |rec|'s row (NULL:
 * none); *deleted gets how many frames.  The building block of the chunked
 * purge (the gateway's sink thread uses it too). */
int gw_regdb_purge_step(sqlite3 *db, int64_t cutoff_ms, unsigned limit,
                        struct gw_regdb_purge_rec *rec, int64_t *deleted, char *err,
                        size_t errlen);

/* Deletes the stream_paths rows no sample can use any more once every frame
 * received before |cutoff_ms| is gone (last_ms older than cutoff_ms -
 * GW_PATH_TOUCH_MS), in a transaction of its own, and advances
 * meta.stream_paths_generation when it deleted any.  The same transaction
 * completes |rec|'s row (NULL: none).  Nothing to delete on a storage
 * schema 1 file. */
int gw_regdb_purge_paths(sqlite3 *db, int64_t cutoff_ms, struct gw_regdb_purge_rec *rec,
                         int64_t *deleted, char *err, size_t errlen);

/* The chunks of a purge: gw_regdb_purge_step with |chunk| rows (0 =
 * GW_REGDB_PURGE_CHUNK) until a chunk deletes fewer, each its own
 * transaction with |rec|'s row; |rec|'s counters say what is committed,
 * also after an error.  The stream paths are left to the caller. */
int gw_regdb_purge_frames(sqlite3 *db, int64_t cutoff_ms, unsigned chunk,
                          struct gw_regdb_purge_rec *rec, char *err, size_t errlen);

/* A whole purge of |rec|: gw_regdb_purge_frames, then (only when every
 * chunk succeeded) gw_regdb_purge_paths.  What the gateway's retention,
 * the store's and gw_regdb_purge run. */
int gw_regdb_purge_run(sqlite3 *db, int64_t cutoff_ms, unsigned chunk,
                       struct gw_regdb_purge_rec *rec, char *err, size_t errlen);

/* Deletes every frame received before |cutoff_ms| (gateway clock, ms), in
 * chunks of |chunk| rows per transaction (0 = GW_REGDB_PURGE_CHUNK) so a
 * big purge never holds the write lock long, then the stream paths; records
 * one "purge" row by |actor| at |now| (s), always, as gw_regdb_purge_rec
 * says.  *n_deleted gets the frames deleted, also on an error. */
int gw_regdb_purge(sqlite3 *db, int64_t cutoff_ms, unsigned chunk, const char *actor,
                   int64_t now, int64_t *n_deleted, char *err, size_t errlen);

/* Erases server |name| in one transaction: its frames, its samples and
 * stream paths, its pins, its activity rows and its servers row, leaving
 * one "erase" row (server NULL, details {"server":name,"frames":n,
 * "samples":s,"pins":p,"activity_rows":m}).
 * Advances registry_generation: its next handshake is refused.  Server ids
 * are never reused after an erasure (meta.server_id_floor). */
int gw_regdb_erase(sqlite3 *db, const char *name, const char *actor, int64_t now,
                   int64_t *n_frames, int64_t *n_activity, char *err, size_t errlen);

/* Deletes what server |id| stored - its frames, samples of every kind and
 * stream paths - and nothing of the registry or the activity log (the
 * statements gw_regdb_erase runs for them), in one transaction, or a
 * savepoint inside the caller's; advances meta.stream_paths_generation.
 * For a database whose registry lives elsewhere: panelgate-store applies
 * an "erase" row of the JetStream engine's activity stream with it.
 * *n_frames and *n_samples (optional) get the counts. */
int gw_regdb_erase_data(sqlite3 *db, int64_t id, int64_t *n_frames, int64_t *n_samples,
                        char *err, size_t errlen);

struct gw_regdb_frame {
    uint64_t seq;
    uint64_t ts_ms;
    int64_t received_ms;
    const char *reported_name; /* or NULL */
    const uint8_t *body;       /* the stored msgpack */
    size_t body_len;
};

/* Callbacks for gw_regdb_export, in this order: server once, every pin
 * (newest first), every frame (by seq), every activity row (oldest
 * first).  A non-zero return stops the export (GW_ESTORAGE). */
struct gw_regdb_export_ops {
    int (*server)(const struct gw_regdb_server *s, void *ud);
    int (*pin)(const struct gw_regdb_pin *p, void *ud);
    int (*frame)(const struct gw_regdb_frame *f, void *ud);
    int (*activity)(const struct gw_activity_row *r, void *ud);
};

/* Only the frames part of gw_regdb_export: server |server_id|'s frames, by
 * seq, to ops->frame; *n gets how many.  For a database that holds frames
 * but not the registry (a panelgate-store's file, with the JetStream
 * engine's registry on the cluster). */
int gw_regdb_export_frames(sqlite3 *db, int64_t server_id, const struct gw_regdb_export_ops *ops,
                           void *ud, int64_t *n, char *err, size_t errlen);

/* Streams everything stored for |name| from one read snapshot, then records
 * "export" ({"format":format,"frames":n}) by |actor| when actor is not
 * NULL. */
int gw_regdb_export(sqlite3 *db, const char *name, const struct gw_regdb_export_ops *ops,
                    void *ud, const char *format, const char *actor, int64_t now,
                    char *err, size_t errlen);

#endif /* GW_REGDB_H */
