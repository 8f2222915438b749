/*
 * regdb_activity.c - the activity log (regdb.h): appending a row, and
 * reading rows by server, action and time.
 */
#include "regdb.h"
#include "err.h"
#include "regdb_int.h"

#include <stdio.h>

int gw_activity_add(sqlite3 *db, int64_t at, const char *actor, const char *action,
                    int64_t server_id, const char *details, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;

    if (db == NULL || actor == NULL || *actor == '\0' || action == NULL || *action == '\0') {
        gw_seterr(err, errlen, "activity: actor and action are required");
        return GW_EINVAL;
    }
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO activity(at, actor, action, server_id, details)"
                           " VALUES(?1, ?2, ?3, ?4, ?5)",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = gw_regdb_dberr(db, "adding an activity row", err, errlen);
        goto out;
    }
    sqlite3_bind_int64(st, 1, at);
    sqlite3_bind_text(st, 2, actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, action, -1, SQLITE_STATIC);
    if (server_id > 0)
        sqlite3_bind_int64(st, 4, server_id);
    else
        sqlite3_bind_null(st, 4);
    if (details != NULL)
        sqlite3_bind_text(st, 5, details, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rv = gw_regdb_dberr(db, "adding an activity row", err, errlen);
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

/* The newest |limit| matching rows (all when 0), handed out oldest first. */
static const char activity_sql[] =
    "SELECT * FROM ("
    " SELECT a.id, a.at, a.actor, a.action, s.name, a.details"
    " FROM activity a LEFT JOIN servers s ON s.id = a.server_id"
    " WHERE (?1 IS NULL OR s.name = ?1)"
    "   AND (?2 IS NULL OR a.action = ?2)"
    "   AND (?3 = 0 OR a.at >= ?3)"
    "   AND (?4 = 0 OR a.at <= ?4)"
    " ORDER BY a.at DESC, a.id DESC LIMIT ?5)"
    " ORDER BY at, id";

int gw_activity_query(sqlite3 *db, const struct gw_activity_filter *f, gw_activity_fn fn,
                      void *ud, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;
    struct gw_activity_filter none = {0};

    if (db == NULL || fn == NULL)
        return GW_EINVAL;
    if (f == NULL)
        f = &none;
    if (sqlite3_prepare_v2(db, activity_sql, -1, &st, NULL) != SQLITE_OK) {
        rv = gw_regdb_dberr(db, "reading the activity log", err, errlen);
        goto out;
    }
    if (f->server != NULL)
        sqlite3_bind_text(st, 1, f->server, -1, SQLITE_STATIC);
    if (f->action != NULL)
        sqlite3_bind_text(st, 2, f->action, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, f->since);
    sqlite3_bind_int64(st, 4, f->until);
    sqlite3_bind_int64(st, 5, f->limit ? (int64_t)f->limit : -1);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct gw_activity_row row = {
            .id = sqlite3_column_int64(st, 0),
            .at = sqlite3_column_int64(st, 1),
            .actor = (const char *)sqlite3_column_text(st, 2),
            .action = (const char *)sqlite3_column_text(st, 3),
            .server = (const char *)sqlite3_column_text(st, 4),
            .details = (const char *)sqlite3_column_text(st, 5),
        };
        if (row.actor == NULL)
            row.actor = "";
        if (row.action == NULL)
            row.action = "";
        if (fn(&row, ud) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        rv = gw_regdb_dberr(db, "reading the activity log", err, errlen);
        goto out;
    }
    rv = 0;
out:
    sqlite3_finalize(st);
    return rv;
}

