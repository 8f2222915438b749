/*
 * registry.h - registered servers, pinned by the SHA-256 of their
 * certificate's SubjectPublicKeyInfo.
 *
 * The registry lives in SQLite (tables servers and server_pins, see
 * docs/OPERATIONS.md), or with the JetStream engine in a key-value bucket
 * (regkv_watch.h builds the snapshots).  The gateway loads an immutable in-memory snapshot at
 * start and at every reload, so a lookup on the event loop never touches
 * disk.  A snapshot is shared (refcounted) by the connections that resolved
 * their identity from it.
 */
#ifndef GW_REGISTRY_H
#define GW_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "err.h"

#define GW_SPKI_LEN 32

/* meta.schema_version of the registry tables this build makes and reads. */
#define GW_REGISTRY_SCHEMA_VERSION "1"

enum gw_server_status {
    GW_SERVER_ACTIVE = 1,
    GW_SERVER_REVOKED = 2,
};

struct gw_server {
    int64_t id;
    char name[256];
    char kind[16];   /* "nimble" | "wowza" */
    enum gw_server_status status;
    uint8_t spki[GW_SPKI_LEN];
    int64_t pin_not_after; /* Unix seconds; 0 = no expiry */
};

struct gw_registry;

/* Creates the registry tables (servers, server_pins) and the activity log
 * table when missing.  Used by the gateway at start and by panelgatectl.
 * Returns 0 or a GW_E* code (err.h): GW_ESTORAGE, GW_EINVAL for a file of
 * an unknown version; err filled. */
int gw_registry_schema(sqlite3 *db, char *err, size_t errlen);

/* Opens |db_path| read-only, loads every pin into a new snapshot.  Returns
 * 0 or a GW_E* code with a reason in err: GW_ESTORAGE (SQLite), GW_EINVAL
 * (a row the schema forbids, a pin twice), GW_ENOMEM.  *out is NULL on
 * failure. */
int gw_registry_load(const char *db_path, struct gw_registry **out, char *err, size_t errlen);

/* A new snapshot of the |n| entries srv[0..n) (one per pin, copied): the
 * JetStream engine's watcher builds it from the bucket's records.  The
 * checks of gw_registry_load: GW_EINVAL (a name empty or unterminated, a
 * kind or status out of range, a pin twice, naming it), GW_ENOMEM.  *out
 * is NULL on failure. */
int gw_registry_build(const struct gw_server *srv, size_t n, struct gw_registry **out,
                      char *err, size_t errlen);

/* meta.registry_generation of |db| (0 when absent): it advances with every
 * change of the pins, so a reader polls it to know when to load again.
 * Returns 0 or GW_ESTORAGE with a reason in err. */
int gw_registry_generation(sqlite3 *db, int64_t *gen, char *err, size_t errlen);

/* The server pinned by |spki| and active at time |now| (Unix seconds):
 * NULL when unknown, revoked, or the pin expired.  |why| (optional) gets
 * "unregistered", "revoked" or "pin_expired" on NULL. */
const struct gw_server *gw_registry_find(const struct gw_registry *r,
                                         const uint8_t spki[GW_SPKI_LEN],
                                         int64_t now, const char **why);

/* The pin's entry whatever its status or expiry (to attribute a refusal to
 * a server); NULL when the key is not pinned at all. */
const struct gw_server *gw_registry_lookup(const struct gw_registry *r,
                                           const uint8_t spki[GW_SPKI_LEN]);

/* An entry of server |id| (any of its pins: the id, name, kind and status
 * are the server's), whatever its status; NULL when no pin has that id.
 * O(log n): a name for the activity rows the gateway writes. */
const struct gw_server *gw_registry_by_id(const struct gw_registry *r, int64_t id);

size_t gw_registry_count(const struct gw_registry *r);

struct gw_registry *gw_registry_ref(struct gw_registry *r);
void gw_registry_unref(struct gw_registry *r);

/* Lower-case hex of an SPKI hash into buf (>= 65 bytes). */
void gw_spki_hex(const uint8_t spki[GW_SPKI_LEN], char *buf);

#endif /* GW_REGISTRY_H */
