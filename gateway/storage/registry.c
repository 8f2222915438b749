/*
 * registry.c - the registry schema and an immutable in-memory snapshot of
 * every pinned server, keyed by the SHA-256 of the certificate's SPKI.
 *
 * The snapshot is an array of struct gw_server (one per pin) plus an
 * open-addressing hash table (linear probing, load factor <= 1/2) of slot
 * indices.  The keys are SHA-256 outputs, uniformly random, so the first 8
 * bytes are the hash; each slot keeps them too, so a probe compares one
 * uint64 before touching the entry.  A lookup is one or two cache misses,
 * and a 100k-pin snapshot loads in well under a second.
 *
 * Pure: no sockets, no globals, time passed in.  The snapshot is shared by
 * refcount on the loop thread only (no atomics).
 */
#include "registry.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "store.h"

#define SCHEMA_VERSION GW_REGISTRY_SCHEMA_VERSION
/* A reload may wait this long for a writer's WAL recovery to finish. */
#define LOAD_BUSY_TIMEOUT_MS 2000

struct id_ent {
    int64_t id;
    uint32_t idx; /* entry index */
};

struct slot {
    uint64_t h;   /* first 8 bytes of the SPKI hash */
    uint32_t idx; /* entry index + 1; 0 = empty */
};

struct gw_registry {
    int refs;
    size_t n;               /* entries */
    struct gw_server *srv;  /* n entries, one per pin */
    struct slot *slots;     /* mask + 1 slots */
    size_t mask;
    struct id_ent *by_id;   /* n entries, by server id (gw_registry_by_id) */
};


/* ------------------------------------------------------------- schema */

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta("
    " key TEXT PRIMARY KEY,"
    " value TEXT);"
    "CREATE TABLE IF NOT EXISTS servers("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " kind TEXT NOT NULL CHECK(kind IN ('nimble','wowza')),"
    " status TEXT NOT NULL DEFAULT 'active' CHECK(status IN ('active','revoked')),"
    " created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS server_pins("
    " spki_sha256 BLOB PRIMARY KEY CHECK(length(spki_sha256)=32),"
    " server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,"
    " not_after INTEGER,"
    " created_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS server_pins_server ON server_pins(server_id);"
    "CREATE TABLE IF NOT EXISTS activity("
    " id INTEGER PRIMARY KEY,"
    " at INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " server_id INTEGER,"
    " details TEXT);"
    "CREATE INDEX IF NOT EXISTS activity_at ON activity(at);"
    "INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', '" SCHEMA_VERSION "');"
    /* advanced by every registry change (regdb.c); the gateway polls it */
    "INSERT OR IGNORE INTO meta(key, value) VALUES('registry_generation', 0);";

static int check_version(sqlite3 *db, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;
    int rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='schema_version'", -1,
                                &st, NULL);
    if (rc != SQLITE_OK) {
        gw_seterr(err, errlen, "registry schema: %s", sqlite3_errmsg(db));
        goto out;
    }
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        gw_seterr(err, errlen, "registry schema: schema_version missing (%s)",
               rc == SQLITE_DONE ? "no row" : sqlite3_errmsg(db));
        if (rc == SQLITE_DONE)
            rv = GW_EINVAL;
        goto out;
    }
    const unsigned char *v = sqlite3_column_text(st, 0);
    if (v == NULL || strcmp((const char *)v, SCHEMA_VERSION) != 0) {
        gw_seterr(err, errlen, "registry schema: version %.16s, this build knows " SCHEMA_VERSION,
               v ? (const char *)v : "NULL");
        rv = GW_EINVAL;
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

int gw_registry_schema(sqlite3 *db, char *err, size_t errlen)
{
    struct gw_store_tx tx;
    char *msg = NULL;
    int rv;

    if (db == NULL)
        return gw_fail(GW_EINVAL, err, errlen, "registry schema: no database");
    /* One write transaction (a savepoint inside a caller's): the schema
     * appears whole or not at all. */
    if ((rv = gw_store_tx_begin(&tx, db, err, errlen)) != 0)
        goto fail;
    if (sqlite3_exec(db, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
        gw_seterr(err, errlen, "registry schema: %s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        rv = GW_ESTORAGE;
        goto fail;
    }
    if ((rv = check_version(db, err, errlen)) != 0 ||
        (rv = gw_store_tx_commit(&tx, err, errlen)) != 0)
        goto fail;
    return 0;
fail:
    gw_store_tx_rollback(&tx);
    return rv;
}

/* ----------------------------------------------------------- snapshot */

static uint64_t spki_hash(const uint8_t spki[GW_SPKI_LEN])
{
    uint64_t h;
    memcpy(&h, spki, sizeof h);
    return h;
}

static void registry_free(struct gw_registry *r)
{
    if (r == NULL)
        return;
    gw_free(r->srv);
    gw_free(r->slots);
    gw_free(r->by_id);
    gw_free(r);
}

/* Inserts entry |i|; GW_EEXIST when its SPKI is already present. */
static int table_put(struct gw_registry *r, size_t i)
{
    uint64_t h = spki_hash(r->srv[i].spki);
    for (size_t p = (size_t)h & r->mask;; p = (p + 1) & r->mask) {
        struct slot *s = &r->slots[p];
        if (s->idx == 0) {
            s->h = h;
            s->idx = (uint32_t)(i + 1);
            return 0;
        }
        if (s->h == h && memcmp(r->srv[s->idx - 1].spki, r->srv[i].spki, GW_SPKI_LEN) == 0)
            return GW_EEXIST;
    }
}

/* Sizes the table for |n| pins: at most half full. */
static int alloc_table(struct gw_registry *r, size_t n, char *err, size_t errlen)
{
    size_t cap = 16;
    while (cap < n * 2) {
        if (cap > SIZE_MAX / 4 / sizeof(struct slot)) {
            return gw_fail(GW_EINVAL, err, errlen, "registry: too many pins (%zu)", n);
        }
        cap *= 2;
    }
    r->slots = gw_calloc(cap, sizeof *r->slots);
    r->srv = gw_calloc(n ? n : 1, sizeof *r->srv);
    if (r->slots == NULL || r->srv == NULL) {
        return gw_fail(GW_ENOMEM, err, errlen, "registry: out of memory for %zu pins", n);
    }
    r->mask = cap - 1;
    return 0;
}

static int cmp_by_id(const void *a, const void *b)
{
    const struct id_ent *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The index by server id, once every entry is in. */
static int index_ids(struct gw_registry *r, char *err, size_t errlen)
{
    r->by_id = gw_malloc((r->n ? r->n : 1) * sizeof *r->by_id);
    if (r->by_id == NULL)
        return gw_fail(GW_ENOMEM, err, errlen, "registry: out of memory for %zu pins", r->n);
    for (size_t i = 0; i < r->n; i++)
        r->by_id[i] = (struct id_ent){.id = r->srv[i].id, .idx = (uint32_t)i};
    qsort(r->by_id, r->n, sizeof *r->by_id, cmp_by_id);
    return 0;
}

/* Entry |i| (filled in) joins the table; a pin seen before is GW_EINVAL
 * naming it, with |where| ("registry FILE", "registry bucket") in front. */
static int put_entry(struct gw_registry *r, size_t i, const char *where, char *err,
                     size_t errlen)
{
    if (table_put(r, i) != 0) {
        char hex[2 * GW_SPKI_LEN + 1];
        gw_spki_hex(r->srv[i].spki, hex);
        return gw_fail(GW_EINVAL, err, errlen, "%s: pin %s appears twice", where, hex);
    }
    return 0;
}

/* True when column |i| of |st| is, byte for byte, |word| (a value with a
 * NUL inside or after the word is not it). */
static bool column_is(sqlite3_stmt *st, int i, const char *word)
{
    const unsigned char *v = sqlite3_column_text(st, i);
    size_t n = strlen(word);
    return v != NULL && (size_t)sqlite3_column_bytes(st, i) == n && memcmp(v, word, n) == 0;
}

/* Copies row |st| into |s| (zeroed); GW_EINVAL with err on a value the
 * schema forbids (a file made by hand or by another tool).  Text is taken
 * whole: a NUL inside a name would cut it short in every log line and
 * metric (two rows "edge\0a" and "edge\0b" would both read "edge"). */
static int read_row(sqlite3_stmt *st, struct gw_server *s, char *err, size_t errlen)
{
    s->id = sqlite3_column_int64(st, 2);

    const void *blob = sqlite3_column_blob(st, 0);
    int blen = sqlite3_column_bytes(st, 0);
    if (sqlite3_column_type(st, 0) != SQLITE_BLOB || blen != GW_SPKI_LEN || blob == NULL) {
        gw_seterr(err, errlen, "registry: server %lld has a pin that is not a 32-byte SHA-256",
               (long long)s->id);
        return GW_EINVAL;
    }
    memcpy(s->spki, blob, GW_SPKI_LEN);

    /* NULL = no expiry (0).  A stored value <= 0 is a date long past, not
     * "no expiry": keep it expired. */
    if (sqlite3_column_type(st, 1) == SQLITE_NULL) {
        s->pin_not_after = 0;
    } else {
        int64_t na = sqlite3_column_int64(st, 1);
        s->pin_not_after = na > 0 ? na : 1;
    }

    const unsigned char *name = sqlite3_column_text(st, 3);
    int nlen = sqlite3_column_bytes(st, 3);
    if (name == NULL || nlen <= 0 || (size_t)nlen >= sizeof s->name) {
        gw_seterr(err, errlen, "registry: server %lld: name empty or longer than %zu bytes",
               (long long)s->id, sizeof s->name - 1);
        return GW_EINVAL;
    }
    if (memchr(name, '\0', (size_t)nlen) != NULL) {
        gw_seterr(err, errlen, "registry: server %lld: name has a NUL byte", (long long)s->id);
        return GW_EINVAL;
    }
    memcpy(s->name, name, (size_t)nlen);

    if (column_is(st, 4, "nimble") || column_is(st, 4, "wowza")) {
        snprintf(s->kind, sizeof s->kind, "%s", (const char *)sqlite3_column_text(st, 4));
    } else {
        gw_seterr(err, errlen, "registry: server %lld: kind is not nimble or wowza",
               (long long)s->id);
        return GW_EINVAL;
    }

    if (column_is(st, 5, "active")) {
        s->status = GW_SERVER_ACTIVE;
    } else if (column_is(st, 5, "revoked")) {
        s->status = GW_SERVER_REVOKED;
    } else {
        gw_seterr(err, errlen, "registry: server %lld: status is not active or revoked",
               (long long)s->id);
        return GW_EINVAL;
    }
    return 0;
}

static int count_pins(sqlite3 *db, const char *db_path, size_t *n, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM server_pins", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        gw_seterr(err, errlen, "registry %s: %s", db_path, sqlite3_errmsg(db));
        goto out;
    }
    int64_t c = sqlite3_column_int64(st, 0);
    if (c < 0 || (uint64_t)c >= UINT32_MAX || (uint64_t)c > SIZE_MAX / sizeof(struct gw_server)) {
        gw_seterr(err, errlen, "registry %s: too many pins", db_path);
        rv = GW_EINVAL;
        goto out;
    }
    *n = (size_t)c;
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

/* Reads every pin into the table.  Called inside one read transaction, so
 * the rows match the count the table was sized for; each entry is hashed
 * while it is still in cache. */
static int read_pins(sqlite3 *db, const char *db_path, struct gw_registry *r, size_t cap,
                     char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT p.spki_sha256, p.not_after, s.id, s.name, s.kind, s.status"
                                " FROM server_pins p JOIN servers s ON s.id = p.server_id",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) {
        gw_seterr(err, errlen, "registry %s: %s", db_path, sqlite3_errmsg(db));
        goto out;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (r->n == cap) {
            gw_seterr(err, errlen, "registry %s: pins changed while loading", db_path);
            goto out;
        }
        if ((rv = read_row(st, &r->srv[r->n], err, errlen)) != 0)
            goto out;
        char where[300];
        snprintf(where, sizeof where, "registry %s", db_path);
        if ((rv = put_entry(r, r->n, where, err, errlen)) != 0)
            goto out;
        rv = GW_ESTORAGE;
        r->n++;
    }
    if (rc != SQLITE_DONE) {
        gw_seterr(err, errlen, "registry %s: %s", db_path, sqlite3_errmsg(db));
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

int gw_registry_load(const char *db_path, struct gw_registry **out, char *err, size_t errlen)
{
    int rv = GW_EINVAL;
    sqlite3 *db = NULL;
    struct gw_registry *r = NULL;

    if (out == NULL)
        return GW_EINVAL;
    *out = NULL;
    if (db_path == NULL || *db_path == '\0') {
        gw_seterr(err, errlen, "registry: no database path");
        goto out;
    }
    rv = GW_ESTORAGE;
    /* READONLY never creates the file: a missing registry is an error, not
     * an empty one that would refuse every agent. */
    int rc = sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        gw_seterr(err, errlen, "registry %s: cannot open: %s", db_path,
               db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        goto out;
    }
    sqlite3_busy_timeout(db, LOAD_BUSY_TIMEOUT_MS);

    r = gw_calloc(1, sizeof *r);
    if (r == NULL) {
        gw_seterr(err, errlen, "registry: out of memory");
        rv = GW_ENOMEM;
        goto out;
    }
    r->refs = 1;
    /* One read transaction: the count and the rows agree, and the snapshot
     * is consistent even while panelgatectl writes. */
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        gw_seterr(err, errlen, "registry %s: %s", db_path, sqlite3_errmsg(db));
        goto out;
    }
    size_t n = 0;
    if ((rv = count_pins(db, db_path, &n, err, errlen)) != 0 ||
        (rv = alloc_table(r, n, err, errlen)) != 0 ||
        (rv = read_pins(db, db_path, r, n, err, errlen)) != 0 ||
        (rv = index_ids(r, err, errlen)) != 0)
        goto out;
    *out = r;
    r = NULL;
    rv = 0;
out:
    registry_free(r);
    if (db != NULL) {
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL); /* ends the read */
        sqlite3_close(db);
    }
    return rv;
}

int gw_registry_build(const struct gw_server *srv, size_t n, struct gw_registry **out,
                      char *err, size_t errlen)
{
    int rv = GW_EINVAL;
    struct gw_registry *r = NULL;

    if (out == NULL)
        return GW_EINVAL;
    *out = NULL;
    if (srv == NULL && n > 0)
        return gw_fail(GW_EINVAL, err, errlen, "registry: no entries");
    if ((uint64_t)n >= UINT32_MAX || n > SIZE_MAX / sizeof *srv)
        return gw_fail(GW_EINVAL, err, errlen, "registry: too many pins (%zu)", n);
    r = gw_calloc(1, sizeof *r);
    if (r == NULL)
        return gw_fail(GW_ENOMEM, err, errlen, "registry: out of memory");
    r->refs = 1;
    if ((rv = alloc_table(r, n, err, errlen)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const struct gw_server *s = &srv[i];
        size_t nl = strnlen(s->name, sizeof s->name);
        if (nl == 0 || nl == sizeof s->name ||
            (s->status != GW_SERVER_ACTIVE && s->status != GW_SERVER_REVOKED) ||
            (strcmp(s->kind, "nimble") != 0 && strcmp(s->kind, "wowza") != 0)) {
            rv = gw_fail(GW_EINVAL, err, errlen,
                         "registry: server %lld: name, kind or status out of range",
                         (long long)s->id);
            goto out;
        }
        r->srv[i] = *s;
        if ((rv = put_entry(r, i, "registry", err, errlen)) != 0)
            goto out;
        r->n++;
    }
    if ((rv = index_ids(r, err, errlen)) != 0)
        goto out;
    *out = r;
    r = NULL;
    rv = 0;
out:
    registry_free(r);
    return rv;
}

int gw_registry_generation(sqlite3 *db, int64_t *gen, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;

    if (db == NULL || gen == NULL)
        return GW_EINVAL;
    *gen = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT CAST(value AS INTEGER) FROM meta"
                           " WHERE key = 'registry_generation'",
                           -1, &st, NULL) != SQLITE_OK)
        goto fail;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *gen = sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE)
        goto fail;
    rv = 0;
    goto out;
fail:
    gw_seterr(err, errlen, "database: registry_generation: %s", sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    return rv;
}

const struct gw_server *gw_registry_lookup(const struct gw_registry *r,
                                           const uint8_t spki[GW_SPKI_LEN])
{
    if (r == NULL || spki == NULL || r->slots == NULL)
        return NULL;
    uint64_t h = spki_hash(spki);
    for (size_t p = (size_t)h & r->mask;; p = (p + 1) & r->mask) {
        const struct slot *s = &r->slots[p];
        if (s->idx == 0)
            return NULL;
        if (s->h == h && memcmp(r->srv[s->idx - 1].spki, spki, GW_SPKI_LEN) == 0)
            return &r->srv[s->idx - 1];
    }
}

const struct gw_server *gw_registry_find(const struct gw_registry *r,
                                         const uint8_t spki[GW_SPKI_LEN], int64_t now,
                                         const char **why)
{
    const char *reason = "unregistered";
    const struct gw_server *found = gw_registry_lookup(r, spki);

    if (found != NULL) {
        if (found->status != GW_SERVER_ACTIVE) {
            reason = "revoked";
            found = NULL;
        } else if (found->pin_not_after != 0 && found->pin_not_after < now) {
            reason = "pin_expired";
            found = NULL;
        }
    }
    if (why != NULL)
        *why = found ? NULL : reason;
    return found;
}

const struct gw_server *gw_registry_by_id(const struct gw_registry *r, int64_t id)
{
    if (r == NULL || r->by_id == NULL || id <= 0)
        return NULL;
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct id_ent *e = &r->by_id[mid];
        if (e->id == id)
            return &r->srv[e->idx];
        if (e->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t gw_registry_count(const struct gw_registry *r)
{
    return r ? r->n : 0;
}

struct gw_registry *gw_registry_ref(struct gw_registry *r)
{
    if (r != NULL)
        r->refs++;
    return r;
}

void gw_registry_unref(struct gw_registry *r)
{
    if (r == NULL)
        return;
    if (--r->refs == 0)
        registry_free(r);
}

void gw_spki_hex(const uint8_t spki[GW_SPKI_LEN], char *buf)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < GW_SPKI_LEN; i++) {
        buf[2 * i] = hx[spki[i] >> 4];
        buf[2 * i + 1] = hx[spki[i] & 0xf];
    }
    buf[2 * GW_SPKI_LEN] = '\0';
}
