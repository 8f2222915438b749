/*
 * regkv.h - the registry and the activity log of the JetStream engine: a
 * key-value bucket ([jetstream] registry_bucket) and a stream
 * ([jetstream] activity_stream) on the cluster of [jetstream], laid out as
 * docs/STORAGE.md ("The registry bucket and the activity stream") says.
 *
 * The write side mirrors regdb.h function by function, with the same
 * structs, codes and activity rows, so panelgatectl runs every command on
 * either backend with the same output.  Every change is a compare-and-set
 * on what was read (the bucket stream's last sequence: docs/STORAGE.md
 * says why not the key's revision), retried when another writer got there
 * first.
 *
 * The record codec (gw_regkv_rec_*) is pure and also used by the gateway's
 * watcher (regkv_watch.h), which turns the server.* records into registry
 * snapshots.
 *
 * Functions return 0, or a negative GW_E* (err.h) with a reason in err:
 * GW_ESTORAGE (the cluster: no answer, no leader, a timeout), GW_EEXIST,
 * GW_ENOTFOUND, GW_EPINNED, GW_EINVAL (a bad argument, or a value in the
 * bucket that breaks the layout, naming its key), GW_ENOMEM.
 */
#ifndef GW_REGKV_H
#define GW_REGKV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "regdb.h"
#include "registry.h"

struct gw_config;
struct gw_js;
struct gw_regkv;

/* The layout version, the value of key "schema". */
#define GW_REGKV_SCHEMA "1"
/* Pins one server record holds at most (newest first). */
#define GW_REGKV_MAX_PINS 8
/* Longest key: "server." + a 255-byte name with every byte escaped. */
#define GW_REGKV_KEY_MAX (7 + 3 * 255 + 1)

/* ---- keys and the record codec (pure) ---- */

/* "server.<name>" with each '.' written "=2e".  GW_EINVAL unless
 * gw_regdb_name_ok(name) and the key fits in n bytes. */
int gw_regkv_server_key(const char *name, char *buf, size_t n);

/* "pin.<64 hex>" into buf (>= 4 + 64 + 1 bytes). */
void gw_regkv_pin_key(const uint8_t spki[GW_SPKI_LEN], char *buf);

/* The record's JSON text (docs/STORAGE.md), NUL-terminated, in a buffer
 * the caller frees with gw_free; *len (optional) gets its length.  NULL on
 * GW_ENOMEM. */
char *gw_regkv_rec_encode(const struct gw_regdb_server *s, size_t *len);

/* Parses a server record: exactly the layout, every field present and of
 * its type, 1..GW_REGKV_MAX_PINS pins, no pin twice, a name that
 * gw_regdb_name_ok.  |len| bytes, no NUL needed.  0, or GW_EINVAL with
 * the field named in err (never the value), or GW_ENOMEM. */
int gw_regkv_rec_decode(const void *data, size_t len, struct gw_regdb_server *out, char *err,
                        size_t errlen);

/* The snapshot entries of one record: one struct gw_server per pin (id,
 * name, kind, status, spki, pin_not_after as gw_registry_find wants it),
 * into out[0..*n), at most GW_REGKV_MAX_PINS. */
void gw_regkv_rec_entries(const struct gw_regdb_server *s, struct gw_server *out, size_t *n);

/* ---- the bucket and the stream ---- */

/* Binds the bucket and the activity stream of |cfg| on connection |js|
 * (not owned; it must outlive the handle).  With |create|, makes what is
 * missing (bucket, schema key, activity stream) and checks what is there
 * (GW_ECONFIG naming each difference: replicas, subjects, another layout
 * version); without it, a missing bucket is GW_ENOTFOUND ("no registry on
 * this cluster: run panelgatectl register first" or the like). */
int gw_regkv_open(struct gw_regkv **out, struct gw_js *js, const struct gw_config *cfg,
                  bool create, char *err, size_t errlen);
void gw_regkv_free(struct gw_regkv *k);

/* As gw_regdb_register, gw_regdb_rotate, gw_regdb_revoke, gw_regdb_list
 * (by name), gw_regdb_show.  A rotation that would keep more than
 * GW_REGKV_MAX_PINS pins drops the oldest expired ones; when none has
 * expired it is GW_EINVAL ("N pins still valid"). */
int gw_regkv_register(struct gw_regkv *k, const char *name, const char *kind,
                      const uint8_t spki[GW_SPKI_LEN], const char *actor, const char *details,
                      int64_t now, int64_t *id_out, char *err, size_t errlen);
int gw_regkv_rotate(struct gw_regkv *k, const char *name, const uint8_t spki[GW_SPKI_LEN],
                    int64_t overlap_s, const char *actor, int64_t now, char *err,
                    size_t errlen);
int gw_regkv_revoke(struct gw_regkv *k, const char *name, const char *actor, int64_t now,
                    char *err, size_t errlen);
int gw_regkv_list(struct gw_regkv *k, gw_regdb_server_fn fn, void *ud, char *err,
                  size_t errlen);
int gw_regkv_show(struct gw_regkv *k, const char *name, struct gw_regdb_server *out, char *err,
                  size_t errlen);

/* Appends one row to the activity stream and waits for its ack.
 * |server_id| 0 = none; |server| the server's name or NULL; |details|
 * JSON object text or NULL.  The gateway's sink calls it too. */
int gw_regkv_activity_add(struct gw_regkv *k, int64_t at, const char *actor,
                          const char *action, int64_t server_id, const char *server,
                          const char *details, char *err, size_t errlen);

/* As gw_activity_query: the newest |limit| rows of the filter, handed out
 * oldest first; row ids are stream sequences. */
int gw_regkv_activity_query(struct gw_regkv *k, const struct gw_activity_filter *f,
                            gw_activity_fn fn, void *ud, char *err, size_t errlen);

/* As gw_regdb_erase, on the cluster (docs/STORAGE.md, "erase"):
 * *n_frames gets the messages purged from the frames stream, *n_activity
 * the activity rows purged.  Resumable: it revokes the record first and
 * deletes the key last, so after a failure (the server is left revoked)
 * the same call does the rest; its counts are what that call purged. */
int gw_regkv_erase(struct gw_regkv *k, const char *name, const char *actor, int64_t now,
                   int64_t *n_frames, int64_t *n_activity, char *err, size_t errlen);

/* The frames stream below the first message received at or after
 * |cutoff_ms|, then the "purge" row (docs/STORAGE.md, "purge"); *n gets
 * the messages purged. */
int gw_regkv_purge(struct gw_regkv *k, int64_t cutoff_ms, const char *actor, int64_t now,
                   int64_t *n, char *err, size_t errlen);

/* ---- import: an SQLite registry into a new bucket (panelgatectl
 * import-registry; docs/DEPLOY.md, "Moving between the engines") ---- */

/* The file's server of that name, or NULL. */
typedef const struct gw_regdb_server *(*gw_regkv_import_fn)(const char *name, void *ud);

/* Whether the bucket can take the import: it has no next_id (no id was
 * handed out here) and every server.* key holds exactly the record the
 * import would write for |known|'s server of that name (left by an import
 * that stopped half way); *n_present counts those.  GW_EEXIST naming the
 * first key that differs. */
int gw_regkv_import_check(struct gw_regkv *k, gw_regkv_import_fn known, void *ud,
                          size_t *n_present, char *err, size_t errlen);

/* Writes server |s| as it is (its id, status, created_at and pins, newest
 * first, at most GW_REGKV_MAX_PINS): the pin index keys, then the record,
 * each a compare-and-set like a registration's.  No activity row.
 * *written is false when the bucket holds exactly that record already. */
int gw_regkv_import(struct gw_regkv *k, const struct gw_regdb_server *s, bool *written,
                    char *err, size_t errlen);

/* Sets next_id (absent until now) to |last_id|, the last id handed out, so
 * that the next registration gets a larger one; GW_EEXIST when it is set. */
int gw_regkv_import_next_id(struct gw_regkv *k, int64_t last_id, char *err, size_t errlen);

#endif /* GW_REGKV_H */
