/*
 * regdb_servers.c - registry changes (register, rotate, revoke: each one
 * transaction with its generation bump and activity row, regdb.c) and
 * reading servers with their pins (list, show).
 */
#include "regdb.h"
#include "err.h"
#include "regdb_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int kind_ok(const char *kind)
{
    return kind != NULL && (strcmp(kind, "nimble") == 0 || strcmp(kind, "wowza") == 0);
}

/* ------------------------------------------------------ mutations */

/* The name of the server that pins |spki| ("" when none); 0 or EFAIL. */
static int pin_owner(sqlite3 *db, const uint8_t spki[GW_SPKI_LEN], char *owner, size_t olen,
                     char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;
    owner[0] = '\0';
    if (sqlite3_prepare_v2(db,
                           "SELECT s.name FROM server_pins p JOIN servers s ON s.id = p.server_id"
                           " WHERE p.spki_sha256 = ?1",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_blob(st, 1, spki, GW_SPKI_LEN, SQLITE_STATIC) != SQLITE_OK) {
        rv = gw_regdb_dberr(db, "looking up a pin", err, errlen);
        goto out;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *n = (const char *)sqlite3_column_text(st, 0);
        snprintf(owner, olen, "%s", n ? n : "?");
    } else if (rc != SQLITE_DONE) {
        rv = gw_regdb_dberr(db, "looking up a pin", err, errlen);
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

static int pin_in_use(sqlite3 *db, const uint8_t spki[GW_SPKI_LEN], char *err, size_t errlen)
{
    char owner[256];
    int rv = pin_owner(db, spki, owner, sizeof owner, err, errlen);
    if (rv != 0)
        return rv;
    if (owner[0] != '\0') {
        gw_seterr(err, errlen, "this public key is already pinned to server %s", owner);
        return GW_EPINNED;
    }
    return 0;
}

static int add_pin(sqlite3 *db, int64_t server_id, const uint8_t spki[GW_SPKI_LEN], int64_t now,
                   char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO server_pins(spki_sha256, server_id, not_after, created_at)"
                           " VALUES(?1, ?2, NULL, ?3)",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = gw_regdb_dberr(db, "adding a pin", err, errlen);
        goto out;
    }
    sqlite3_bind_blob(st, 1, spki, GW_SPKI_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, server_id);
    sqlite3_bind_int64(st, 3, now);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        if (sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_PRIMARYKEY ||
            sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_UNIQUE) {
            /* checked before; another writer won the race */
            char owner[256];
            sqlite3_reset(st);
            if (pin_owner(db, spki, owner, sizeof owner, err, errlen) == 0)
                gw_seterr(err, errlen, "this public key is already pinned to server %s",
                       owner[0] ? owner : "(another)");
            rv = GW_EPINNED;
        } else {
            rv = gw_regdb_dberr(db, "adding a pin", err, errlen);
        }
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

int gw_regdb_register(sqlite3 *db, const char *name, const char *kind,
                      const uint8_t spki[GW_SPKI_LEN], const char *actor, const char *details,
                      int64_t now, int64_t *id_out, char *err, size_t errlen)
{
    int rv = GW_ESTORAGE;
    sqlite3_stmt *st = NULL;
    struct gw_store_tx t = {0};
    struct gw_regdb_jbuf jb = {0};

    if (id_out != NULL)
        *id_out = 0;
    if (db == NULL || spki == NULL || actor == NULL || *actor == '\0') {
        gw_seterr(err, errlen, "register: missing argument");
        return GW_EINVAL;
    }
    if (!gw_regdb_name_ok(name)) {
        gw_seterr(err, errlen,
               "bad server name '%.64s': 1..255 of A-Z a-z 0-9 . _ -, not starting with . or -",
               name ? name : "");
        return GW_EINVAL;
    }
    if (!kind_ok(kind)) {
        gw_seterr(err, errlen, "bad kind '%.32s': nimble or wowza", kind ? kind : "");
        return GW_EINVAL;
    }
    if (details == NULL) {
        char hex[2 * GW_SPKI_LEN + 1];
        gw_spki_hex(spki, hex);
        gw_regdb_jb_raw(&jb, "{");
        gw_regdb_jb_kstr(&jb, "kind", kind);
        gw_regdb_jb_kstr(&jb, "spki_sha256", hex);
        gw_regdb_jb_raw(&jb, "}");
        if (jb.oom) {
            gw_seterr(err, errlen, "register: out of memory");
            goto out;
        }
        details = gw_regdb_jb_text(&jb);
    }

    if ((rv = gw_store_tx_begin(&t, db, err, errlen)) != 0)
        goto out;
    int64_t other;
    rv = gw_regdb_find_server(db, name, &other, NULL, 0, err, errlen);
    if (rv == 0) {
        gw_seterr(err, errlen, "server %s is already registered", name);
        rv = GW_EEXIST;
        goto out;
    }
    if (rv != GW_ENOTFOUND)
        goto out;
    if ((rv = pin_in_use(db, spki, err, errlen)) != 0)
        goto out;

    rv = GW_ESTORAGE;
    if (sqlite3_prepare_v2(db,
                           /* ids are never reused after an erasure */
                           "INSERT INTO servers(id, name, kind, status, created_at)"
                           " VALUES(MAX(COALESCE((SELECT MAX(id) FROM servers), 0),"
                           " COALESCE((SELECT CAST(value AS INTEGER) FROM meta"
                           " WHERE key = 'server_id_floor'), 0)) + 1, ?1, ?2, 'active', ?3)",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = gw_regdb_dberr(db, "adding a server", err, errlen);
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    if (sqlite3_step(st) != SQLITE_DONE) {
        if (sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_UNIQUE) {
            gw_seterr(err, errlen, "server %s is already registered", name);
            rv = GW_EEXIST;
        } else {
            rv = gw_regdb_dberr(db, "adding a server", err, errlen);
        }
        goto out;
    }
    int64_t id = sqlite3_last_insert_rowid(db);
    if ((rv = add_pin(db, id, spki, now, err, errlen)) != 0 ||
        (rv = gw_regdb_bump_generation(db, err, errlen)) != 0 ||
        (rv = gw_activity_add(db, now, actor, "register", id, details, err, errlen)) != 0 ||
        (rv = gw_store_tx_commit(&t, err, errlen)) != 0)
        goto out;
    if (id_out != NULL)
        *id_out = id;
    rv = 0;
out:
    sqlite3_finalize(st);
    gw_store_tx_rollback(&t);
    gw_regdb_jb_free(&jb);
    return rv;
}

int gw_regdb_rotate(sqlite3 *db, const char *name, const uint8_t spki[GW_SPKI_LEN],
                    int64_t overlap_s, const char *actor, int64_t now, char *err, size_t errlen)
{
    int rv = GW_ESTORAGE;
    struct gw_store_tx t = {0};
    struct gw_regdb_jbuf jb = {0};

    if (db == NULL || spki == NULL || actor == NULL || *actor == '\0' || overlap_s < 0) {
        gw_seterr(err, errlen, "rotate: bad argument");
        return GW_EINVAL;
    }
    if ((rv = gw_regdb_check_name(name, err, errlen)) != 0)
        return rv;
    if ((rv = gw_store_tx_begin(&t, db, err, errlen)) != 0)
        goto out;
    int64_t id;
    if ((rv = gw_regdb_find_server(db, name, &id, NULL, 0, err, errlen)) != 0 ||
        (rv = pin_in_use(db, spki, err, errlen)) != 0)
        goto out;

    int64_t not_after = now + overlap_s, limited;
    if ((rv = gw_regdb_exec_int(db,
                                "UPDATE server_pins SET not_after = ?1"
                                " WHERE server_id = ?2 AND (not_after IS NULL OR not_after > ?1)",
                                not_after, id, "limiting the old pins", &limited, err,
                                errlen)) != 0)
        goto out;
    rv = GW_ESTORAGE;

    char hex[2 * GW_SPKI_LEN + 1];
    gw_spki_hex(spki, hex);
    gw_regdb_jb_raw(&jb, "{");
    gw_regdb_jb_kstr(&jb, "spki_sha256", hex);
    gw_regdb_jb_kint(&jb, "overlap_s", overlap_s);
    gw_regdb_jb_kint(&jb, "old_pins_not_after", not_after);
    gw_regdb_jb_kint(&jb, "old_pins_limited", limited);
    gw_regdb_jb_raw(&jb, "}");
    if (jb.oom) {
        gw_seterr(err, errlen, "rotate: out of memory");
        goto out;
    }
    if ((rv = add_pin(db, id, spki, now, err, errlen)) != 0 ||
        (rv = gw_regdb_bump_generation(db, err, errlen)) != 0 ||
        (rv = gw_activity_add(db, now, actor, "rotate", id, gw_regdb_jb_text(&jb), err,
                              errlen)) != 0 ||
        (rv = gw_store_tx_commit(&t, err, errlen)) != 0)
        goto out;
    rv = 0;
out:
    gw_store_tx_rollback(&t);
    gw_regdb_jb_free(&jb);
    return rv;
}

int gw_regdb_revoke(sqlite3 *db, const char *name, const char *actor, int64_t now, char *err,
                    size_t errlen)
{
    int rv = GW_ESTORAGE;
    struct gw_store_tx t = {0};

    if (db == NULL || actor == NULL || *actor == '\0') {
        gw_seterr(err, errlen, "revoke: missing argument");
        return GW_EINVAL;
    }
    if ((rv = gw_regdb_check_name(name, err, errlen)) != 0)
        return rv;
    if ((rv = gw_store_tx_begin(&t, db, err, errlen)) != 0)
        goto out;
    int64_t id;
    char status[16];
    if ((rv = gw_regdb_find_server(db, name, &id, status, sizeof status, err, errlen)) != 0)
        goto out;
    if (strcmp(status, "revoked") == 0) {
        /* nothing changes: no generation bump, no activity row */
        rv = gw_store_tx_commit(&t, err, errlen);
        goto out;
    }
    if ((rv = gw_regdb_exec_int(db, "UPDATE servers SET status = 'revoked' WHERE id = ?1", id, 0,
                                "revoking", NULL, err, errlen)) != 0 ||
        (rv = gw_regdb_bump_generation(db, err, errlen)) != 0 ||
        (rv = gw_activity_add(db, now, actor, "revoke", id, "{\"status\":\"revoked\"}", err,
                              errlen)) != 0 ||
        (rv = gw_store_tx_commit(&t, err, errlen)) != 0)
        goto out;
    rv = 0;
out:
    gw_store_tx_rollback(&t);
    return rv;
}

/* ------------------------------------------------------ list, show */

static int read_pins(sqlite3 *db, struct gw_regdb_server *s, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;
    s->n_pins = 0;
    s->n_pins_total = 0;
    if (sqlite3_prepare_v2(db, GW_REGDB_PINS_SQL, -1, &st, NULL) != SQLITE_OK) {
        rv = gw_regdb_dberr(db, "reading pins", err, errlen);
        goto out;
    }
    sqlite3_bind_int64(st, 1, s->id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        s->n_pins_total++;
        if (s->n_pins >= sizeof s->pins / sizeof s->pins[0])
            continue;
        gw_regdb_pin_row(st, &s->pins[s->n_pins++]);
    }
    if (rc != SQLITE_DONE) {
        rv = gw_regdb_dberr(db, "reading pins", err, errlen);
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

static void read_server(sqlite3_stmt *st, struct gw_regdb_server *s)
{
    memset(s, 0, sizeof *s);
    s->id = sqlite3_column_int64(st, 0);
    const char *v = (const char *)sqlite3_column_text(st, 1);
    snprintf(s->name, sizeof s->name, "%s", v ? v : "");
    v = (const char *)sqlite3_column_text(st, 2);
    snprintf(s->kind, sizeof s->kind, "%s", v ? v : "");
    v = (const char *)sqlite3_column_text(st, 3);
    snprintf(s->status, sizeof s->status, "%s", v ? v : "");
    s->created_at = sqlite3_column_int64(st, 4);
}

/* One read transaction, so that servers and pins agree; none when the
 * caller holds one. */
static int read_begin(sqlite3 *db, int *in_tx, char *err, size_t errlen)
{
    *in_tx = 0;
    if (!sqlite3_get_autocommit(db))
        return 0;
    if (gw_store_exec(db, "BEGIN", err, errlen) != 0)
        return GW_ESTORAGE;
    *in_tx = 1;
    return 0;
}

#define SERVER_COLS "SELECT id, name, kind, status, created_at FROM servers"

int gw_regdb_list(sqlite3 *db, gw_regdb_server_fn fn, void *ud, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;
    struct gw_regdb_server *s = NULL;
    int in_tx = 0;

    if (db == NULL || fn == NULL)
        return GW_EINVAL;
    s = malloc(sizeof *s);
    if (s == NULL) {
        gw_seterr(err, errlen, "list: out of memory");
        goto out;
    }
    if (read_begin(db, &in_tx, err, errlen) != 0)
        goto out;
    if (sqlite3_prepare_v2(db, SERVER_COLS " ORDER BY name", -1, &st, NULL) != SQLITE_OK) {
        rv = gw_regdb_dberr(db, "listing servers", err, errlen);
        goto out;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_server(st, s);
        if (read_pins(db, s, err, errlen) != 0)
            goto out;
        if (fn(s, ud) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rv = gw_regdb_dberr(db, "listing servers", err, errlen);
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    if (in_tx)
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    free(s);
    return rv;
}

int gw_regdb_show(sqlite3 *db, const char *name, struct gw_regdb_server *out, char *err,
                  size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;
    int in_tx = 0;

    if (db == NULL || out == NULL || name == NULL)
        return GW_EINVAL;
    memset(out, 0, sizeof *out);
    if (read_begin(db, &in_tx, err, errlen) != 0)
        goto out;
    if (sqlite3_prepare_v2(db, SERVER_COLS " WHERE name = ?1", -1, &st, NULL) != SQLITE_OK) {
        rv = gw_regdb_dberr(db, "reading a server", err, errlen);
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        gw_seterr(err, errlen, "unknown server %s (not registered)", name);
        rv = GW_ENOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        rv = gw_regdb_dberr(db, "reading a server", err, errlen);
        goto out;
    }
    read_server(st, out);
    if (read_pins(db, out, err, errlen) != 0)
        goto out;
    rv = 0;
out:
    sqlite3_finalize(st);
    if (in_tx)
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return rv;
}

