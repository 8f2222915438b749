/*
 * fuzz_gw_registry.c - the registry loader (gateway/storage/registry.c) on
 * database files made by hand or by another tool: the input is read as a
 * schema choice and a list of rows, written into a fresh SQLite file, and
 * gw_registry_load runs over it.
 *
 * Input: byte 0 picks the schema:
 *   0  the tables with their columns but no types or constraints (any
 *      value of any type in any column, pins twice, orphan pins, servers
 *      sharing an id)
 *   1  the real schema (gw_registry_schema): rows it forbids fail to insert
 *   2  no server_pins table            3  servers without a status column
 * then records until the input ends: one byte whose low bit says a server
 * (id, name, kind, status) or a pin (spki_sha256, server_id, not_after),
 * then the values, each a type byte and its bytes (see value()).
 *
 * The oracle, from SQL over the same file: the load succeeds exactly when
 * every joined row is one the loader documents as valid (a 32-byte BLOB
 * pin, a name of 1 to 255 bytes without NUL, kind nimble or wowza, status
 * active or revoked, byte for byte), no pin appears twice and the join has
 * no more rows than server_pins; on success every row is found as stored,
 * on failure *out is NULL and err says why.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "registry.h"

struct in {
    const uint8_t *p;
    size_t n;
};

static int take(struct in *in, void *out, size_t len)
{
    if (in->n < len)
        return -1;
    memcpy(out, in->p, len);
    in->p += len;
    in->n -= len;
    return 0;
}

static uint8_t byte(struct in *in)
{
    uint8_t b = 0;
    (void)take(in, &b, 1);
    return b;
}

static const char *const good_text[] = {
    "nimble", "wowza", "active", "revoked", "edge-1", "a",
};

/* Binds one value of the input to parameter |i|. */
static void value(sqlite3_stmt *st, int i, struct in *in)
{
    uint8_t t = byte(in), buf[256], k;
    int64_t v;
    double d;
    size_t len;

    switch (t % 8) {
    case 0:
        sqlite3_bind_null(st, i);
        break;
    case 1: /* a small integer: ids that match, dates around 0 */
        sqlite3_bind_int64(st, i, (int8_t)byte(in));
        break;
    case 2:
        v = 0;
        (void)take(in, &v, sizeof v);
        sqlite3_bind_int64(st, i, v);
        break;
    case 3:
        d = 0;
        (void)take(in, &d, sizeof d);
        sqlite3_bind_double(st, i, d);
        break;
    case 4: /* text of any bytes, NUL included */
    case 5: /* the same bytes as a BLOB */
        len = byte(in);
        if (len > in->n)
            len = in->n;
        (void)take(in, buf, len);
        if (t % 8 == 4)
            sqlite3_bind_text(st, i, (const char *)buf, (int)len, SQLITE_TRANSIENT);
        else
            sqlite3_bind_blob(st, i, buf, (int)len, SQLITE_TRANSIENT);
        break;
    case 6: /* a value the loader accepts, as TEXT or as BLOB */
        k = byte(in);
        len = strlen(good_text[k % 6]);
        if (k & 0x80)
            sqlite3_bind_blob(st, i, good_text[k % 6], (int)len, SQLITE_STATIC);
        else
            sqlite3_bind_text(st, i, good_text[k % 6], (int)len, SQLITE_STATIC);
        break;
    default: /* a 32-byte pin from one byte; with the top bit, every such
              * pin has the same low hash bits (one long probe chain) */
        k = byte(in);
        memset(buf, 0, GW_SPKI_LEN);
        if (k & 0x80) {
            buf[7] = k;
            buf[31] = k;
        } else {
            memset(buf, k, GW_SPKI_LEN);
        }
        sqlite3_bind_blob(st, i, buf, GW_SPKI_LEN, SQLITE_TRANSIENT);
        break;
    }
}

static const char *const schemas[] = {
    "CREATE TABLE servers(id, name, kind, status, created_at);"
    "CREATE TABLE server_pins(spki_sha256, server_id, not_after, created_at);",
    NULL, /* gw_registry_schema */
    "CREATE TABLE servers(id, name, kind, status, created_at);",
    "CREATE TABLE servers(id, name, kind, created_at);"
    "CREATE TABLE server_pins(spki_sha256, server_id, not_after, created_at);",
};

static int64_t one_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

#define JOIN " FROM server_pins p JOIN servers s ON s.id = p.server_id"
#define VALID                                                                                   \
    "(typeof(p.spki_sha256) = 'blob' AND length(p.spki_sha256) = 32"                            \
    " AND coalesce(length(CAST(s.name AS BLOB)) BETWEEN 1 AND 255, 0)"                          \
    " AND instr(CAST(s.name AS BLOB), x'00') = 0"                                               \
    " AND coalesce(CAST(s.kind AS BLOB) IN (CAST('nimble' AS BLOB), CAST('wowza' AS BLOB)), 0)" \
    " AND coalesce(CAST(s.status AS BLOB) IN (CAST('active' AS BLOB),"                          \
    " CAST('revoked' AS BLOB)), 0))"

/* Every joined row is in the snapshot as stored. */
static void check_rows(sqlite3 *db, const struct gw_registry *r)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT p.spki_sha256, s.id, CAST(s.name AS BLOB), s.kind, s.status,"
                           " p.not_after" JOIN,
                           -1, &st, NULL) != SQLITE_OK)
        abort();
    while (sqlite3_step(st) == SQLITE_ROW) {
        const struct gw_server *s = gw_registry_lookup(r, sqlite3_column_blob(st, 0));
        const char *status = (const char *)sqlite3_column_text(st, 4);
        if (s == NULL || s->id != sqlite3_column_int64(st, 1) ||
            strlen(s->name) != (size_t)sqlite3_column_bytes(st, 2) ||
            memcmp(s->name, sqlite3_column_blob(st, 2), strlen(s->name)) != 0 ||
            strcmp(s->kind, (const char *)sqlite3_column_text(st, 3)) != 0 ||
            s->status != (strcmp(status, "active") == 0 ? GW_SERVER_ACTIVE : GW_SERVER_REVOKED))
            abort();
        if (sqlite3_column_type(st, 5) == SQLITE_NULL ? s->pin_not_after != 0
                                                      : s->pin_not_after <= 0)
            abort();
        /* what the gateway asks at a handshake */
        const char *why = NULL;
        const struct gw_server *f = gw_registry_find(r, s->spki, 1700000000, &why);
        if ((f == NULL) == (why == NULL))
            abort();
    }
    sqlite3_finalize(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[256];
    struct in in = {data, size};
    sqlite3 *db = NULL;
    sqlite3_stmt *ins_srv = NULL, *ins_pin = NULL;
    struct gw_registry *r = NULL;
    char err[512];

    if (!path[0]) {
        const char *dir = getenv("TMPDIR"); /* /dev/shm makes it faster */
        snprintf(path, sizeof path, "%s/fuzz_gw_registry.%ld.db", dir && *dir ? dir : "/tmp",
                 (long)getpid());
    }
    unlink(path);
    if (size == 0)
        return 0;
    unsigned schema = byte(&in) % 4;

    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; BEGIN", NULL, NULL,
                     NULL) != SQLITE_OK)
        abort();
    if (schemas[schema] != NULL ? sqlite3_exec(db, schemas[schema], NULL, NULL, NULL)
                                : gw_registry_schema(db, err, sizeof err))
        abort();
    /* prepare fails where the schema lacks the table or column: those
     * records are skipped */
    sqlite3_prepare_v2(db, "INSERT INTO servers(id, name, kind, status, created_at)"
                           " VALUES(?, ?, ?, ?, 0)", -1, &ins_srv, NULL);
    sqlite3_prepare_v2(db, "INSERT INTO server_pins(spki_sha256, server_id, not_after, created_at)"
                           " VALUES(?, ?, ?, 0)", -1, &ins_pin, NULL);
    while (in.n > 0) {
        uint8_t op = byte(&in);
        sqlite3_stmt *st = op & 1 ? ins_srv : ins_pin;
        int nparam = op & 1 ? 4 : 3;
        if (st == NULL)
            continue;
        for (int i = 1; i <= nparam; i++)
            value(st, i, &in);
        (void)sqlite3_step(st); /* the real schema refuses some rows */
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    sqlite3_finalize(ins_srv);
    sqlite3_finalize(ins_pin);
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        abort();

    int64_t pins = -1, rows = -1, invalid = -1, dups = -1;
    if (schema <= 1) {
        pins = one_int(db, "SELECT count(*) FROM server_pins");
        rows = one_int(db, "SELECT count(*)" JOIN);
        invalid = one_int(db, "SELECT count(*)" JOIN " WHERE NOT " VALID);
        dups = one_int(db, "SELECT count(*) FROM (SELECT p.spki_sha256" JOIN
                           " GROUP BY p.spki_sha256 HAVING count(*) > 1)");
        if (pins < 0 || rows < 0 || invalid < 0 || dups < 0)
            abort();
    }

    err[0] = '\0';
    int rv = gw_registry_load(path, &r, err, sizeof err);
    if (rv != 0 && (r != NULL || err[0] == '\0'))
        abort();
    if (schema >= 2 && rv == 0) /* a table or column missing */
        abort();
    if (schema <= 1) {
        int want_ok = invalid == 0 && dups == 0 && rows <= pins;
        if ((rv == 0) != want_ok)
            abort();
        if (rv == 0) {
            if (gw_registry_count(r) != (size_t)rows)
                abort();
            check_rows(db, r);
        }
    }
    gw_registry_unref(r);
    sqlite3_close(db);
    unlink(path);
    return 0;
}
