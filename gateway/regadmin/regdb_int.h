/*
 * regdb_int.h - inside regdb (not for other modules): what regdb.c gives
 * regdb_servers.c, regdb_activity.c and regdb_rights.c.  Functions return
 * 0 or a negative GW_E* with a reason in err, as regdb.h's.
 */
#ifndef GW_REGDB_INT_H
#define GW_REGDB_INT_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "problem.h"
#include "regdb.h"
#include "store.h"

/* Puts "database: WHAT: <SQLite's message>" in err; returns GW_ESTORAGE. */
int gw_regdb_dberr(sqlite3 *db, const char *what, char *err, size_t errlen);

/* Runs |sql|, a statement with one or two integer parameters (?1 = a,
 * ?2 = b when it has one); *changes (optional) gets the row count.  Errors
 * name |what|. */
int gw_regdb_exec_int(sqlite3 *db, const char *sql, int64_t a, int64_t b, const char *what,
                      int64_t *changes, char *err, size_t errlen);

/* A transaction of its own, or a savepoint in the caller's.  Start from
 * {0}: a rollback of a transaction never begun does nothing. */
/* Advances meta.registry_generation (inside the change's transaction). */
int gw_regdb_bump_generation(sqlite3 *db, char *err, size_t errlen);

/* Activity details as a JSON object's text: "{", then keys and values,
 * then "}".  Start from {0}; oom is set when an append failed. */
struct gw_regdb_jbuf {
    struct pa_buf b;
    int oom;
};

void gw_regdb_jb_raw(struct gw_regdb_jbuf *j, const char *s);
void gw_regdb_jb_kstr(struct gw_regdb_jbuf *b, const char *k, const char *v);
void gw_regdb_jb_kint(struct gw_regdb_jbuf *b, const char *k, int64_t v);
const char *gw_regdb_jb_text(const struct gw_regdb_jbuf *j);
void gw_regdb_jb_free(struct gw_regdb_jbuf *j);

/* The id (and status, when |status| is not NULL) of server |name|;
 * GW_ENOTFOUND when there is none. */
int gw_regdb_find_server(sqlite3 *db, const char *name, int64_t *id, char *status,
                         size_t slen, char *err, size_t errlen);

/* GW_EINVAL with "bad server name" unless gw_regdb_name_ok(name). */
int gw_regdb_check_name(const char *name, char *err, size_t errlen);

/* A server's pins, newest first: spki_sha256, created_at, not_after. */
#define GW_REGDB_PINS_SQL                                                                  \
    "SELECT spki_sha256, created_at, not_after FROM server_pins"                           \
    " WHERE server_id = ?1 ORDER BY created_at DESC, rowid DESC"

/* One row of GW_REGDB_PINS_SQL into *p. */
void gw_regdb_pin_row(sqlite3_stmt *st, struct gw_regdb_pin *p);

#endif /* GW_REGDB_INT_H */
