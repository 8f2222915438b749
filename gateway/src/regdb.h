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
 * Functions return 0, or a negative GW_REG_E* with a reason in err.
 */
#ifndef GW_REGDB_H
#define GW_REGDB_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "registry.h"

enum {
    GW_REG_OK = 0,
    GW_REG_EFAIL = -1,     /* SQLite or I/O failure */
    GW_REG_EEXISTS = -2,   /* a server of that name exists */
    GW_REG_ENOTFOUND = -3, /* no server of that name */
    GW_REG_EPINUSE = -4,   /* that public key is pinned already */
    GW_REG_EARG = -5,      /* bad argument (name, kind) */
};

/* Opens (creating when |create|) the database and makes sure the schema
 * exists.  WAL, busy timeout 5 s. */
int gw_regdb_open(const char *path, int create, sqlite3 **out, char *err, size_t errlen);

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

/* meta.registry_generation (0 when absent). */
int gw_regdb_generation(sqlite3 *db, int64_t *gen, char *err, size_t errlen);

#endif /* GW_REGDB_H */
