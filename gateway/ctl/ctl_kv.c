/*
 * ctl_kv.c - panelgatectl on the JetStream engine's registry bucket and
 * activity stream (ctl_kv.h): the ctl_reg_ops of regkv.h.  The connection
 * is made by the first command that opens the registry and lives until
 * panelgatectl exits.  Each change stands alone once made (regkv.h: a
 * compare-and-set of its own), so begin, commit and abort do nothing.
 */
#include "ctl_kv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "js.h"
#include "regkv.h"

struct ctl_kv {
    struct gw_config cfg;
    struct gw_js *js;
    struct gw_regkv *k;
    bool created; /* opened with create */
    char sqlite_path[PATH_BUF];
};

/* Connects and binds the registry: 0 or a GW_E* with the reason. */
static int kv_connect(struct ctl *c, bool create, char *err, size_t errlen)
{
    struct ctl_kv *kv = c->kv;
    int rv;
    if (kv->k != NULL && (kv->created || !create))
        return 0;
    if (kv->js == NULL &&
        (rv = gw_js_connect(&kv->js, &kv->cfg, "panelgatectl", NULL, NULL, err, errlen)) != 0)
        return rv;
    gw_regkv_free(kv->k);
    kv->k = NULL;
    if ((rv = gw_regkv_open(&kv->k, kv->js, &kv->cfg, create, err, errlen)) != 0)
        return rv;
    kv->created = create;
    return 0;
}

static int kv_open(struct ctl *c, bool write, bool create)
{
    char err[1024];
    (void)write; /* the cluster has no read-only connection */
    if (kv_connect(c, create, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    return EX_OK;
}

static bool kv_is_open(const struct ctl *c)
{
    return c->kv->k != NULL;
}

static int kv_nothing(struct ctl *c)
{
    (void)c;
    return EX_OK;
}

static void kv_abort(struct ctl *c)
{
    (void)c;
}

static int kv_reg(struct ctl *c, const char *name, const char *kind,
                  const uint8_t spki[GW_SPKI_LEN], const char *details, int64_t now, int64_t *id,
                  char *err, size_t errlen)
{
    return gw_regkv_register(c->kv->k, name, kind, spki, c->actor, details, now, id, err,
                             errlen);
}

static int kv_rotate(struct ctl *c, const char *name, const uint8_t spki[GW_SPKI_LEN],
                     int64_t overlap_s, int64_t now, char *err, size_t errlen)
{
    return gw_regkv_rotate(c->kv->k, name, spki, overlap_s, c->actor, now, err, errlen);
}

static int kv_revoke(struct ctl *c, const char *name, int64_t now, char *err, size_t errlen)
{
    return gw_regkv_revoke(c->kv->k, name, c->actor, now, err, errlen);
}

static int kv_list(struct ctl *c, gw_regdb_server_fn fn, void *ud, char *err, size_t errlen)
{
    return gw_regkv_list(c->kv->k, fn, ud, err, errlen);
}

static int kv_show(struct ctl *c, const char *name, struct gw_regdb_server *out, char *err,
                   size_t errlen)
{
    return gw_regkv_show(c->kv->k, name, out, err, errlen);
}

static int kv_activity_add(struct ctl *c, int64_t at, const char *action, int64_t server_id,
                           const char *server, const char *details, char *err, size_t errlen)
{
    return gw_regkv_activity_add(c->kv->k, at, c->actor, action, server_id, server, details,
                                 err, errlen);
}

static int kv_activity_query(struct ctl *c, const struct gw_activity_filter *f,
                             gw_activity_fn fn, void *ud, char *err, size_t errlen)
{
    return gw_regkv_activity_query(c->kv->k, f, fn, ud, err, errlen);
}

static int kv_erase(struct ctl *c, const char *name, int64_t now, int64_t *n_frames,
                    int64_t *n_activity, char *err, size_t errlen)
{
    return gw_regkv_erase(c->kv->k, name, c->actor, now, n_frames, n_activity, err, errlen);
}

static int kv_purge(struct ctl *c, int64_t cutoff_ms, int64_t now, int64_t *n, char *err,
                    size_t errlen)
{
    return gw_regkv_purge(c->kv->k, cutoff_ms, c->actor, now, n, err, errlen);
}

struct exp_act {
    const struct gw_regdb_export_ops *ops;
    void *ud;
    bool stopped;
};

static int exp_act_one(const struct gw_activity_row *r, void *ud)
{
    struct exp_act *a = ud;
    if (a->ops->activity != NULL && a->ops->activity(r, a->ud) != 0) {
        a->stopped = true;
        return 1;
    }
    return 0;
}

/* The server and its pins from the bucket, the frames from the store's
 * database (--db), the rows from the stream. */
static int kv_export(struct ctl *c, const char *name, const struct gw_regdb_export_ops *ops,
                     void *ud, char *err, size_t errlen)
{
    struct gw_regdb_server s;
    sqlite3 *db = NULL;
    int64_t n = 0;
    int rv;
    if (c->db_path[0] == '\0')
        return gw_fail(GW_EINVAL, err, errlen,
                       "export on the JetStream registry: give --db FILE, a panelgate-store's "
                       "database (the frames are there)");
    if ((rv = gw_regkv_show(c->kv->k, name, &s, err, errlen)) != 0)
        return rv;
    if (sqlite3_open_v2(c->db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rv = gw_fail(GW_ESTORAGE, err, errlen, "database %s: %s", c->db_path,
                     db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(db, 5000);
    rv = GW_ESTORAGE;
    if (ops->server != NULL && ops->server(&s, ud) != 0)
        goto stopped;
    for (unsigned i = 0; i < s.n_pins; i++)
        if (ops->pin != NULL && ops->pin(&s.pins[i], ud) != 0)
            goto stopped;
    if ((rv = gw_regdb_export_frames(db, s.id, ops, ud, &n, err, errlen)) != 0)
        goto out;
    struct gw_activity_filter f = {.server = name};
    struct exp_act a = {.ops = ops, .ud = ud};
    if ((rv = gw_regkv_activity_query(c->kv->k, &f, exp_act_one, &a, err, errlen)) != 0)
        goto out;
    if (!a.stopped) {
        rv = 0;
        goto out;
    }
    rv = GW_ESTORAGE;
stopped:
    gw_seterr(err, errlen, "export stopped");
out:
    sqlite3_close(db);
    return rv;
}

static const struct ctl_reg_ops ctl_kv_reg = {
    .name = "jetstream",
    .atomic = false,
    .open = kv_open,
    .is_open = kv_is_open,
    .begin = kv_nothing,
    .commit = kv_nothing,
    .abort = kv_abort,
    .reg = kv_reg,
    .rotate = kv_rotate,
    .revoke = kv_revoke,
    .list = kv_list,
    .show = kv_show,
    .activity_add = kv_activity_add,
    .activity_query = kv_activity_query,
    .erase = kv_erase,
    .purge = kv_purge,
    .export = kv_export,
};

int ctl_kv_setup(struct ctl *c, struct gw_config *cfg)
{
    struct ctl_kv *kv = calloc(1, sizeof *kv);
    if (kv == NULL) {
        gw_config_cleanup(cfg);
        return ctl_fail("out of memory");
    }
    kv->cfg = *cfg; /* moved */
    const char *p = cfg->registry_path ? cfg->registry_path : cfg->sqlite_path;
    if (p != NULL)
        snprintf(kv->sqlite_path, sizeof kv->sqlite_path, "%s", p);
    c->kv = kv;
    c->reg = &ctl_kv_reg;
    return EX_OK;
}

void ctl_kv_free(struct ctl *c)
{
    struct ctl_kv *kv = c->kv;
    if (kv == NULL)
        return;
    gw_regkv_free(kv->k);
    gw_js_free(kv->js);
    gw_config_cleanup(&kv->cfg);
    free(kv);
    c->kv = NULL;
}

const char *ctl_kv_sqlite_path(const struct ctl *c)
{
    return c->kv != NULL && c->kv->sqlite_path[0] != '\0' ? c->kv->sqlite_path : NULL;
}

int ctl_kv_find_id(struct ctl *c, const char *name, int64_t *id, char *err, size_t errlen)
{
    struct gw_regdb_server s;
    int rv;
    if (c->kv == NULL)
        return GW_ENOTFOUND;
    if ((rv = kv_connect(c, false, err, errlen)) != 0 ||
        (rv = gw_regkv_show(c->kv->k, name, &s, err, errlen)) != 0)
        return rv;
    *id = s.id;
    return 0;
}

/* ------------------------------------------------------------ import-registry */

struct imp {
    struct gw_regdb_server *v;
    size_t n, cap;
};

static int imp_one(const struct gw_regdb_server *s, void *ud)
{
    struct imp *a = ud;
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        struct gw_regdb_server *nv = realloc(a->v, cap * sizeof *nv);
        if (nv == NULL)
            return 1;
        a->v = nv;
        a->cap = cap;
    }
    a->v[a->n++] = *s;
    return 0;
}

static const struct gw_regdb_server *imp_find(const char *name, void *ud)
{
    const struct imp *a = ud;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i].name, name) == 0)
            return &a->v[i];
    return NULL;
}

/* Every server of the file and the last id it handed out (an erased
 * server's id stays spent: meta.server_id_floor), from one read. */
static int imp_read(sqlite3 *db, struct imp *a, int64_t *last_id, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rv;
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return gw_fail(GW_ESTORAGE, err, errlen, "database: %s", sqlite3_errmsg(db));
    if ((rv = gw_regdb_list(db, imp_one, a, err, errlen)) != 0)
        goto out;
    rv = GW_ESTORAGE;
    if (sqlite3_prepare_v2(db,
                           "SELECT MAX(COALESCE((SELECT MAX(id) FROM servers), 0),"
                           " COALESCE((SELECT CAST(value AS INTEGER) FROM meta"
                           " WHERE key = 'server_id_floor'), 0))",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        gw_seterr(err, errlen, "database: the last server id: %s", sqlite3_errmsg(db));
        goto out;
    }
    *last_id = sqlite3_column_int64(st, 0);
    rv = 0;
out:
    sqlite3_finalize(st);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return rv;
}

int cmd_import_registry(struct ctl *c)
{
    struct imp a = {0};
    char err[1024], d[PATH_BUF + 256];
    int64_t last_id = 0, pins = 0;
    size_t present = 0, written = 0;
    int rv;
    if (c->kv == NULL)
        return ctl_usage_err(c->cmd, "import-registry copies into the JetStream engine's "
                                     "bucket: give --config FILE with [storage] "
                                     "storage_engine = jetstream");
    if (c->db_path[0] == '\0')
        return ctl_usage_err(c->cmd, "give --db FILE, the SQLite registry to copy");
    if ((rv = ctl_need_db_ro(c)) != EX_OK)
        return rv;
    if (imp_read(c->db, &a, &last_id, err, sizeof err) != 0) {
        rv = ctl_fail("%s: %s", c->db_path, err);
        goto out;
    }
    if ((rv = ctl_need_reg(c, true)) != EX_OK)
        goto out;
    rv = EX_FAIL;
    if (gw_regkv_import_check(c->kv->k, imp_find, &a, &present, err, sizeof err) != 0) {
        ctl_fail("%s", err);
        goto out;
    }
    for (size_t i = 0; i < a.n; i++) {
        const struct gw_regdb_server *s = &a.v[i];
        bool w = false;
        if (s->n_pins_total > s->n_pins)
            ctl_warn("server %s: %u pins, the %u newest imported", s->name, s->n_pins_total,
                     s->n_pins);
        if (gw_regkv_import(c->kv->k, s, &w, err, sizeof err) != 0) {
            ctl_fail("server %s: %s (%zu of %zu servers imported; run import-registry again "
                     "to go on)",
                     s->name, err, written + present, a.n);
            goto out;
        }
        written += w;
        pins += s->n_pins;
    }
    if (gw_regkv_import_next_id(c->kv->k, last_id, err, sizeof err) != 0) {
        ctl_fail("%s", err);
        goto out;
    }
    cJSON *o = cJSON_CreateObject();
    char *txt = NULL;
    if (o == NULL || cJSON_AddStringToObject(o, "from", c->db_path) == NULL ||
        cJSON_AddNumberToObject(o, "servers", (double)a.n) == NULL ||
        cJSON_AddNumberToObject(o, "pins", (double)pins) == NULL ||
        cJSON_AddNumberToObject(o, "last_id", (double)last_id) == NULL ||
        (txt = cJSON_PrintUnformatted(o)) == NULL) {
        cJSON_Delete(o);
        ctl_fail("out of memory");
        goto out;
    }
    snprintf(d, sizeof d, "%s", txt);
    cJSON_free(txt);
    if (c->reg->activity_add(c, (int64_t)time(NULL), "import_registry", 0, NULL, d, err,
                             sizeof err) != 0) {
        cJSON_Delete(o);
        ctl_fail("the import is done, but its activity row failed: %s", err);
        goto out;
    }
    if (c->json) {
        cJSON_AddNumberToObject(o, "already_there", (double)present);
        ctl_json_print(o);
    } else {
        printf("imported %zu servers (%lld pins) from %s into bucket %s; new registrations get "
               "ids above %lld\n",
               a.n, (long long)pins, c->db_path, c->kv->cfg.js_registry_bucket,
               (long long)last_id);
    }
    cJSON_Delete(o);
    rv = EX_OK;
out:
    free(a.v);
    return rv;
}
