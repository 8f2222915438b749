/*
 * store_activity.c - panelgate-store follows the activity stream and runs
 * its own retention (store_activity.h).
 */
#include "store_activity.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>
#include <sqlite3.h>

#include "alloc.h"
#include "clock.h"
#include "config.h"
#include "err.h"
#include "js.h"
#include "js_msg.h"
#include "log.h"
#include "regdb.h"
#include "sink.h"
#include "store.h"

/* How long a missing stream or a failing subscription waits before the
 * next try. */
#define RETRY_MS 2000
#define POS_KEY "activity_stream_seq"

struct gw_storeact {
    const struct gw_config *cfg;
    struct gw_js *js;       /* not owned */
    sqlite3 *db;
    sqlite3_stmt *sel_erased;
    natsSubscription *sub;  /* NULL until subscribed, and after a failure */
    int64_t next_try_ms;    /* gw_mono_ms of the next subscription try */
    int waiting;            /* the "waiting" line is logged */
    uint64_t pos;           /* the position saved in the database */
    uint64_t pending_pos;   /* skipped rows above pos, not saved yet */
    struct gw_storeact_counts n;
};

static int dberr(sqlite3 *db, const char *what, char *err, size_t errlen)
{
    gw_seterr(err, errlen, "database: %s: %s", what, sqlite3_errmsg(db));
    return GW_ESTORAGE;
}

int gw_storeact_open(struct gw_storeact **out, const struct gw_config *cfg, struct gw_js *js,
                     char *err, size_t errlen)
{
    struct gw_storeact *a = NULL;
    int rv = GW_ESTORAGE;

    *out = NULL;
    if ((a = gw_calloc(1, sizeof *a)) == NULL)
        return gw_fail(GW_ENOMEM, err, errlen, "out of memory");
    a->cfg = cfg;
    a->js = js;
    if (sqlite3_open_v2(cfg->sqlite_path, &a->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rv = dberr(a->db, cfg->sqlite_path, err, errlen);
        goto out;
    }
    sqlite3_extended_result_codes(a->db, 1);
    sqlite3_busy_timeout(a->db, (int)cfg->busy_timeout_ms);
    if ((rv = gw_store_exec(a->db,
                            "CREATE TABLE IF NOT EXISTS erased_servers("
                            " server_id INTEGER PRIMARY KEY,"
                            " erased_at INTEGER NOT NULL,"
                            " stream_seq INTEGER NOT NULL)",
                            err, errlen)) != 0)
        goto out;
    if (sqlite3_prepare_v3(a->db, "SELECT 1 FROM erased_servers WHERE server_id = ?1", -1,
                           SQLITE_PREPARE_PERSISTENT, &a->sel_erased, NULL) != SQLITE_OK) {
        rv = dberr(a->db, "erased_servers", err, errlen);
        goto out;
    }
    *out = a;
    a = NULL;
    rv = 0;
out:
    gw_storeact_free(a);
    return rv;
}

void gw_storeact_free(struct gw_storeact *a)
{
    if (a == NULL)
        return;
    natsSubscription_Destroy(a->sub);
    sqlite3_finalize(a->sel_erased);
    sqlite3_close(a->db);
    gw_free(a);
}

void gw_storeact_counts(const struct gw_storeact *a, struct gw_storeact_counts *out)
{
    *out = a->n;
}

/* ---- the position ---- */

static int read_pos(sqlite3 *db, uint64_t *pos, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = GW_ESTORAGE;
    *pos = 0;
    if (sqlite3_prepare_v2(db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = '" POS_KEY "'",
                           -1, &st, NULL) != SQLITE_OK)
        return dberr(db, "reading the activity position", err, errlen);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *pos = (uint64_t)sqlite3_column_int64(st, 0);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        rv = 0;
    else
        rv = dberr(db, "reading the activity position", err, errlen);
    sqlite3_finalize(st);
    return rv;
}

/* Inside the caller's transaction. */
static int write_pos(sqlite3 *db, uint64_t pos, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv = 0;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO meta(key, value) VALUES('" POS_KEY "', ?1)",
                           -1, &st, NULL) != SQLITE_OK)
        return dberr(db, "saving the activity position", err, errlen);
    sqlite3_bind_int64(st, 1, (int64_t)pos);
    if (sqlite3_step(st) != SQLITE_DONE)
        rv = dberr(db, "saving the activity position", err, errlen);
    sqlite3_finalize(st);
    return rv;
}

/* Begins the transaction that applies row |seq|: *done = 1 (and nothing
 * open) when the saved position is at or past it already. */
static int begin_row(struct gw_storeact *a, struct gw_store_tx *t, uint64_t seq, int *done,
                     char *err, size_t errlen)
{
    uint64_t saved = 0;
    int rv;
    *done = 0;
    if ((rv = gw_store_tx_begin(t, a->db, err, errlen)) != 0 ||
        (rv = read_pos(a->db, &saved, err, errlen)) != 0)
        return rv;
    if (saved >= seq) {
        gw_store_tx_rollback(t);
        a->pos = saved;
        *done = 1;
    }
    return 0;
}

/* Saves pending_pos (rows skipped since the last applied one). */
static int flush_pos(struct gw_storeact *a, char *err, size_t errlen)
{
    struct gw_store_tx t = {0};
    int rv, done = 0;
    if (a->pending_pos <= a->pos)
        return 0;
    if ((rv = begin_row(a, &t, a->pending_pos, &done, err, errlen)) != 0 || done)
        goto out;
    if ((rv = write_pos(a->db, a->pending_pos, err, errlen)) != 0 ||
        (rv = gw_store_tx_commit(&t, err, errlen)) != 0)
        goto out;
    a->pos = a->pending_pos;
out:
    gw_store_tx_rollback(&t);
    return rv;
}

/* ---- purges ---- */

void gw_storeact_retention(struct gw_storeact *a, int64_t cutoff_ms)
{
    char err[256];
    struct gw_regdb_purge_rec rec = {.actor = "panelgate-store", .at = gw_now_ms() / 1000};
    int rv = gw_regdb_purge_run(a->db, cutoff_ms, 0, &rec, err, sizeof err);
    gw_sink_log_retention(rv, err, rec.frames, rec.paths);
}

/* ---- one row ---- */

enum row_kind { ROW_SKIP, ROW_ERASE, ROW_PURGE };

/* An integer-valued JSON number in [lo, INT64_MAX] (exact up to 2^53). */
static int json_int(const cJSON *v, int64_t lo, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < (double)lo || d > 9007199254740992.0)
        return -1;
    *out = (int64_t)d;
    return 0;
}

/* Reads a row against the layout (docs/STORAGE.md, "The activity
 * stream"); what it asks of the stores into *kind and *arg. */
static int parse_row(const char *data, int len, enum row_kind *kind, int64_t *arg, char *why,
                     size_t whylen)
{
    cJSON *j = len > 0 ? cJSON_ParseWithLength(data, (size_t)len) : NULL;
    int64_t v = 0;
    int rv = GW_EINVAL;

    *kind = ROW_SKIP;
    *arg = 0;
    if (!cJSON_IsObject(j)) {
        gw_seterr(why, whylen, "not a JSON object");
        goto out;
    }
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(j, "action");
    const cJSON *actor = cJSON_GetObjectItemCaseSensitive(j, "actor");
    const cJSON *sid = cJSON_GetObjectItemCaseSensitive(j, "server_id");
    const cJSON *server = cJSON_GetObjectItemCaseSensitive(j, "server");
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(j, "details");
    if (json_int(cJSON_GetObjectItemCaseSensitive(j, "at"), 0, &v) != 0 ||
        !cJSON_IsString(actor) || !cJSON_IsString(action) ||
        !(cJSON_IsNull(sid) || json_int(sid, 1, &v) == 0) ||
        !(cJSON_IsNull(server) || cJSON_IsString(server)) ||
        !(cJSON_IsNull(details) || cJSON_IsObject(details))) {
        gw_seterr(why, whylen, "at, actor, action, server_id, server or details missing or "
                               "not of its type");
        goto out;
    }
    if (strcmp(action->valuestring, "erase") == 0) {
        if (!cJSON_IsObject(details) ||
            json_int(cJSON_GetObjectItemCaseSensitive(details, "server_id"), 1, arg) != 0) {
            gw_seterr(why, whylen, "erase: details.server_id missing or not an id");
            goto out;
        }
        *kind = ROW_ERASE;
    } else if (strcmp(action->valuestring, "purge") == 0) {
        if (!cJSON_IsObject(details) ||
            json_int(cJSON_GetObjectItemCaseSensitive(details, "received_before_ms"), 0, arg) !=
                0) {
            gw_seterr(why, whylen, "purge: details.received_before_ms missing or not a time");
            goto out;
        }
        *kind = ROW_PURGE;
    }
    rv = 0;
out:
    cJSON_Delete(j);
    return rv;
}

static int apply_erase(struct gw_storeact *a, uint64_t seq, int64_t id, char *err, size_t errlen)
{
    struct gw_store_tx t = {0};
    sqlite3_stmt *st = NULL;
    int64_t frames = 0, samples = 0;
    int rv, done = 0;

    if ((rv = begin_row(a, &t, seq, &done, err, errlen)) != 0 || done)
        goto out;
    if ((rv = gw_regdb_erase_data(a->db, id, &frames, &samples, err, errlen)) != 0)
        goto out;
    if (sqlite3_prepare_v2(a->db,
                           "INSERT OR IGNORE INTO erased_servers(server_id, erased_at, stream_seq)"
                           " VALUES(?1, ?2, ?3)",
                           -1, &st, NULL) != SQLITE_OK) {
        rv = dberr(a->db, "erased_servers", err, errlen);
        goto out;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, gw_now_ms() / 1000);
    sqlite3_bind_int64(st, 3, (int64_t)seq);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rv = dberr(a->db, "erased_servers", err, errlen);
        goto out;
    }
    if ((rv = write_pos(a->db, seq, err, errlen)) != 0 ||
        (rv = gw_store_tx_commit(&t, err, errlen)) != 0)
        goto out;
    a->pos = seq;
    a->n.erased++;
    gw_log(GW_LOG_INFO, NULL, "activity_erase_applied",
           "activity row %" PRIu64 ": server id %" PRId64 " erased from the store (%" PRId64
           " frames, %" PRId64 " samples and paths); its later frames are dropped",
           seq, id, frames, samples);
out:
    sqlite3_finalize(st);
    gw_store_tx_rollback(&t);
    return rv;
}

static int apply_purge(struct gw_storeact *a, uint64_t seq, int64_t cutoff_ms, char *err,
                       size_t errlen)
{
    struct gw_store_tx t = {0};
    struct gw_regdb_purge_rec rec = {.actor = "panelgate-store", .at = gw_now_ms() / 1000};
    int64_t paths = 0;
    uint64_t saved = 0;
    int rv, done = 0;

    /* applied already by another instance on the file: not again (its
     * chunks would write a second purge row) */
    if ((rv = read_pos(a->db, &saved, err, errlen)) != 0)
        goto out;
    if (saved >= seq) {
        a->pos = saved;
        goto out;
    }
    /* a purge cut short is run again from the start: deleting what is
     * older than a time twice deletes nothing more */
    if ((rv = gw_regdb_purge_frames(a->db, cutoff_ms, 0, &rec, err, errlen)) != 0)
        goto out;
    /* the last step: the paths, the purge's row completed and the
     * position, in one commit */
    if ((rv = begin_row(a, &t, seq, &done, err, errlen)) != 0 || done)
        goto out;
    if ((rv = gw_regdb_purge_paths(a->db, cutoff_ms, &rec, &paths, err, errlen)) != 0 ||
        (rv = write_pos(a->db, seq, err, errlen)) != 0 ||
        (rv = gw_store_tx_commit(&t, err, errlen)) != 0)
        goto out;
    a->pos = seq;
    a->n.purged++;
    gw_log(GW_LOG_INFO, NULL, "activity_purge_applied",
           "activity row %" PRIu64 ": frames received before %" PRId64
           " removed (%" PRId64 " frames, %" PRId64 " stream paths)",
           seq, cutoff_ms, rec.frames, rec.paths);
out:
    gw_store_tx_rollback(&t);
    return rv;
}

/* One message: 0, or the error that leaves it (and what follows) for the
 * next subscription. */
static int handle(struct gw_storeact *a, natsMsg *m, char *err, size_t errlen)
{
    char why[160] = "";
    enum row_kind kind;
    int64_t arg;
    uint64_t seq = gw_js_msg_stream_seq(m);

    if (seq == 0 || seq <= a->pos || seq <= a->pending_pos)
        return 0; /* dealt with already (another instance, or a redelivery) */
    if (parse_row(natsMsg_GetData(m), natsMsg_GetDataLength(m), &kind, &arg, why,
                  sizeof why) != 0) {
        a->n.refused++;
        a->pending_pos = seq;
        gw_log(GW_LOG_WARN, NULL, "activity_row_refused",
               "activity stream message %" PRIu64 " breaks the layout (%s); skipped", seq, why);
        return 0;
    }
    if (kind == ROW_ERASE)
        return apply_erase(a, seq, arg, err, errlen);
    if (kind == ROW_PURGE)
        return apply_purge(a, seq, arg, err, errlen);
    a->n.skipped++;
    a->pending_pos = seq;
    return 0;
}

static void drop_sub(struct gw_storeact *a)
{
    natsSubscription_Destroy(a->sub);
    a->sub = NULL;
    a->pending_pos = 0;
    a->next_try_ms = gw_mono_ms() + RETRY_MS;
}

static void subscribe(struct gw_storeact *a)
{
    const struct gw_config *cfg = a->cfg;
    char subject[512], err[256];
    jsErrCode jerr = 0;

    if (a->sub != NULL || gw_mono_ms() < a->next_try_ms)
        return;
    a->next_try_ms = gw_mono_ms() + RETRY_MS;
    if (read_pos(a->db, &a->pos, err, sizeof err) != 0) {
        if (!a->waiting)
            gw_log(GW_LOG_WARN, NULL, "activity_waiting", "%s; trying again", err);
        a->waiting = 1;
        return;
    }
    snprintf(subject, sizeof subject, "%s.>", cfg->js_activity_prefix);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = cfg->js_activity_stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = a->pos > 0 ? js_DeliverByStartSequence : js_DeliverAll;
    so.Config.OptStartSeq = a->pos > 0 ? a->pos + 1 : 0;
    natsStatus s = js_SubscribeSync(&a->sub, gw_js_ctx(a->js), subject, NULL, &so, &jerr);
    if (s != NATS_OK) {
        a->sub = NULL;
        /* the gateway or panelgatectl makes the stream: not ours to */
        if (!a->waiting)
            gw_log(GW_LOG_INFO, NULL, "activity_waiting",
                   "activity stream %s: %s (JetStream error %d); trying again every %d s",
                   cfg->js_activity_stream, natsStatus_GetText(s), (int)jerr, RETRY_MS / 1000);
        a->waiting = 1;
        return;
    }
    a->waiting = 0;
    a->pending_pos = 0;
    gw_log(GW_LOG_INFO, NULL, "activity_following",
           "following activity stream %s after sequence %" PRIu64, cfg->js_activity_stream,
           a->pos);
}

void gw_storeact_poll(struct gw_storeact *a, unsigned max)
{
    char err[256] = "";
    int rv = 0;

    subscribe(a);
    if (a->sub == NULL)
        return;
    for (unsigned i = 0; i < max && rv == 0; i++) {
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, a->sub, 0);
        if (s == NATS_TIMEOUT)
            break;
        if (s != NATS_OK) {
            gw_log(GW_LOG_WARN, NULL, "activity_failing",
                   "activity stream %s: %s; subscribing again from the saved position",
                   a->cfg->js_activity_stream, natsStatus_GetText(s));
            drop_sub(a);
            return;
        }
        rv = handle(a, m, err, sizeof err);
        natsMsg_Destroy(m);
    }
    if (rv == 0)
        rv = flush_pos(a, err, sizeof err);
    if (rv != 0) {
        /* the row is read again from the saved position */
        gw_log(GW_LOG_WARN, NULL, "activity_apply_failed",
               "applying the activity stream: %s; trying again from sequence %" PRIu64, err,
               a->pos + 1);
        drop_sub(a);
    }
}

int gw_storeact_erased(struct gw_storeact *a, int64_t id, int *yes, char *err, size_t errlen)
{
    int rc;
    *yes = 0;
    sqlite3_bind_int64(a->sel_erased, 1, id);
    rc = sqlite3_step(a->sel_erased);
    sqlite3_reset(a->sel_erased);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return dberr(a->db, "erased_servers", err, errlen);
    *yes = rc == SQLITE_ROW;
    return 0;
}

int gw_storeact_erase_again(struct gw_storeact *a, int64_t id, char *err, size_t errlen)
{
    return gw_regdb_erase_data(a->db, id, NULL, NULL, err, errlen);
}
