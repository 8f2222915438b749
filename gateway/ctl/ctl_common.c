/*
 * ctl_common.c - what panelgatectl's commands share (ctl.h): messages and
 * JSON output, the text table, parsing option values, opening the
 * database, the random generator and the CA, and the transaction of a
 * registry change.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "ctl.h"

#define MAX_DURATION_S (3650LL * 86400)

/* ------------------------------------------------------------ output */

/* One line on stderr: |prefix| and the message. */
__attribute__((format(printf, 2, 0)))
static void say(const char *prefix, const char *fmt, va_list ap)
{
    fputs(prefix, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int ctl_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say("panelgatectl: ", fmt, ap);
    va_end(ap);
    return EX_FAIL;
}

void ctl_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say("panelgatectl: warning: ", fmt, ap);
    va_end(ap);
}

/* UTC ISO-8601, "2026-11-29T02:20:54Z". */
const char *ctl_iso(int64_t t, char buf[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, 32, "%lld", (long long)t);
    return buf;
}

void ctl_json_print(cJSON *j)
{
    char *s = cJSON_Print(j);
    if (s != NULL) {
        puts(s);
        cJSON_free(s);
    }
}

void ctl_json_add_time(cJSON *o, const char *k, int64_t t)
{
    char b[32];
    if (t == 0)
        cJSON_AddNullToObject(o, k);
    else
        cJSON_AddStringToObject(o, k, ctl_iso(t, b));
}

int ctl_usage_err(const struct cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say("panelgatectl: ", fmt, ap);
    va_end(ap);
    if (cmd != NULL)
        fprintf(stderr, "usage: panelgatectl [global options] %s\n", cmd->synopsis);
    else
        fputs("Try 'panelgatectl --help'.\n", stderr);
    return EX_USAGE;
}

/* ------------------------------------------------------------ registry records */

cJSON *ctl_server_json(const struct gw_regdb_server *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)s->id);
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddStringToObject(o, "kind", s->kind);
    cJSON_AddStringToObject(o, "status", s->status);
    ctl_json_add_time(o, "created_at", s->created_at);
    return o;
}

cJSON *ctl_pin_json(const struct gw_regdb_pin *p)
{
    char hex[2 * GW_SPKI_LEN + 1];
    cJSON *o = cJSON_CreateObject();
    ctl_hex_of(p->spki, hex);
    cJSON_AddStringToObject(o, "spki_sha256", hex);
    ctl_json_add_time(o, "created_at", p->created_at);
    ctl_json_add_time(o, "not_after", p->not_after);
    return o;
}

cJSON *ctl_activity_json(const struct gw_activity_row *r, bool with_server)
{
    char t[32];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)r->id);
    cJSON_AddStringToObject(o, "at", ctl_iso(r->at, t));
    cJSON_AddStringToObject(o, "actor", r->actor);
    cJSON_AddStringToObject(o, "action", r->action);
    if (with_server) {
        if (r->server != NULL)
            cJSON_AddStringToObject(o, "server", r->server);
        else
            cJSON_AddNullToObject(o, "server");
    }
    cJSON *d = r->details ? cJSON_Parse(r->details) : NULL;
    if (d != NULL)
        cJSON_AddItemToObject(o, "details", d);
    else if (r->details != NULL)
        cJSON_AddStringToObject(o, "details", r->details);
    else
        cJSON_AddNullToObject(o, "details");
    return o;
}

/* ------------------------------------------------------------ parsing helpers */

int ctl_parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return GW_EINVAL;
    unsigned long long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return GW_EINVAL;
        unsigned d = (unsigned)(*s - '0');
        /* d > max first: max - d would wrap and let any value through */
        if (d > max || v > (max - d) / 10)
            return GW_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* "30s", "15m", "12h", "7d" (or "0") -> seconds. */
int ctl_parse_duration(const char *s, int64_t *out)
{
    if (s == NULL || *s == '\0')
        return GW_EINVAL;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    size_t n = strlen(s);
    int64_t unit;
    switch (s[n - 1]) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return GW_EINVAL;
    }
    char num[24];
    if (n - 1 == 0 || n - 1 >= sizeof num)
        return GW_EINVAL;
    memcpy(num, s, n - 1);
    num[n - 1] = '\0';
    unsigned long long v;
    if (ctl_parse_uint(num, (unsigned long long)(MAX_DURATION_S / unit), &v) != 0)
        return GW_EINVAL;
    *out = (int64_t)v * unit;
    return 0;
}

/* Whether |s| has the form |pat|: a digit for each 'd', the other
 * characters as they are, nothing more. */
static bool form_is(const char *s, const char *pat)
{
    for (; *pat; s++, pat++)
        if (*pat == 'd' ? (*s < '0' || *s > '9') : *s != *pat)
            return false;
    return *s == '\0';
}

/* Unix seconds, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, or a duration ago.  A
 * bare date as an upper bound means the end of that day. */
static int parse_time1(const char *s, bool upper, int64_t now, int64_t *out);

/* As parse_time1, and after 1970-01-01T00:00:00Z (0 means "no bound" in a
 * filter). */
int ctl_parse_time(const char *s, bool upper, int64_t now, int64_t *out)
{
    return parse_time1(s, upper, now, out) == 0 && *out > 0 ? 0 : -1;
}

static int parse_time1(const char *s, bool upper, int64_t now, int64_t *out)
{
    unsigned long long u;
    if (ctl_parse_uint(s, (unsigned long long)INT64_MAX, &u) == 0) {
        *out = (int64_t)u;
        return 0;
    }
    int64_t d;
    if (ctl_parse_duration(s, &d) == 0) {
        *out = now - d;
        return 0;
    }
    struct tm tm = {0};
    int y, mo, da, h = 0, mi = 0, se = 0;
    /* The form first, a digit where 'd' is: sscanf alone would skip blanks
     * (any isspace, "\v4" read as 4) and take signs inside a field. */
    if (form_is(s, "dddd-dd-dd") && sscanf(s, "%4d-%2d-%2d", &y, &mo, &da) == 3) {
        if (upper) {
            h = 23;
            mi = 59;
            se = 59;
        }
    } else if (!form_is(s, "dddd-dd-ddTdd:dd:ddZ") ||
               sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ", &y, &mo, &da, &h, &mi, &se) != 6) {
        return GW_EINVAL;
    }
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = da;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    time_t t = timegm(&tm);
    struct tm back;
    if (t == (time_t)-1 || gmtime_r(&t, &back) == NULL || back.tm_year != tm.tm_year ||
        back.tm_mon != mo - 1 || back.tm_mday != da || back.tm_hour != h || back.tm_min != mi ||
        back.tm_sec != se)
        return GW_EINVAL;
    *out = (int64_t)t;
    return 0;
}

int ctl_join(char *out, size_t outlen, const char *a, const char *b)
{
    int n = snprintf(out, outlen, "%s/%s", a, b);
    return n < 0 || (size_t)n >= outlen ? GW_EINVAL : 0;
}

bool ctl_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

void ctl_hex_of(const uint8_t spki[GW_SPKI_LEN], char out[2 * GW_SPKI_LEN + 1])
{
    gw_spki_hex(spki, out);
}

/* ------------------------------------------------------------ context */

int ctl_need_db(struct ctl *c, bool create)
{
    char err[1024];
    if (c->db_path[0] == '\0')
        return ctl_usage_err(c->cmd, "no database: give --db FILE or --config FILE");
    int rv = gw_regdb_open(c->db_path, create, &c->db, err, sizeof err);
    if (rv != 0)
        return ctl_fail("%s", err);
    return EX_OK;
}

int ctl_need_db_ro(struct ctl *c)
{
    char err[1024];
    if (c->db_path[0] == '\0')
        return ctl_usage_err(c->cmd, "no database: give --db FILE or --config FILE");
    if (gw_regdb_open_ro(c->db_path, &c->db, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    return EX_OK;
}

int ctl_need_reg(struct ctl *c, bool create)
{
    return c->reg->open(c, true, create);
}

int ctl_need_reg_ro(struct ctl *c)
{
    return c->reg->open(c, false, false);
}

bool ctl_have_reg(const struct ctl *c)
{
    return c->reg != NULL && (c->reg != &ctl_sqlite_reg || c->db_path[0] != '\0');
}

/* ------------------------------------------------------------ the SQLite backend */

static int sq_open(struct ctl *c, bool write, bool create)
{
    if (c->db != NULL)
        return EX_OK;
    return write ? ctl_need_db(c, create) : ctl_need_db_ro(c);
}

static bool sq_is_open(const struct ctl *c)
{
    return c->db != NULL;
}

static int sq_begin(struct ctl *c)
{
    return ctl_tx(c, "BEGIN IMMEDIATE");
}

static int sq_commit(struct ctl *c)
{
    return ctl_tx(c, "COMMIT");
}

static int sq_reg(struct ctl *c, const char *name, const char *kind,
                  const uint8_t spki[GW_SPKI_LEN], const char *details, int64_t now, int64_t *id,
                  char *err, size_t errlen)
{
    return gw_regdb_register(c->db, name, kind, spki, c->actor, details, now, id, err, errlen);
}

static int sq_rotate(struct ctl *c, const char *name, const uint8_t spki[GW_SPKI_LEN],
                     int64_t overlap_s, int64_t now, char *err, size_t errlen)
{
    return gw_regdb_rotate(c->db, name, spki, overlap_s, c->actor, now, err, errlen);
}

static int sq_revoke(struct ctl *c, const char *name, int64_t now, char *err, size_t errlen)
{
    return gw_regdb_revoke(c->db, name, c->actor, now, err, errlen);
}

static int sq_list(struct ctl *c, gw_regdb_server_fn fn, void *ud, char *err, size_t errlen)
{
    return gw_regdb_list(c->db, fn, ud, err, errlen);
}

static int sq_show(struct ctl *c, const char *name, struct gw_regdb_server *out, char *err,
                   size_t errlen)
{
    return gw_regdb_show(c->db, name, out, err, errlen);
}

static int sq_activity_add(struct ctl *c, int64_t at, const char *action, int64_t server_id,
                           const char *server, const char *details, char *err, size_t errlen)
{
    (void)server; /* the table joins it */
    return gw_activity_add(c->db, at, c->actor, action, server_id, details, err, errlen);
}

static int sq_activity_query(struct ctl *c, const struct gw_activity_filter *f,
                             gw_activity_fn fn, void *ud, char *err, size_t errlen)
{
    return gw_activity_query(c->db, f, fn, ud, err, errlen);
}

static int sq_erase(struct ctl *c, const char *name, int64_t now, int64_t *n_frames,
                    int64_t *n_activity, char *err, size_t errlen)
{
    return gw_regdb_erase(c->db, name, c->actor, now, n_frames, n_activity, err, errlen);
}

static int sq_purge(struct ctl *c, int64_t cutoff_ms, int64_t now, int64_t *n, char *err,
                    size_t errlen)
{
    return gw_regdb_purge(c->db, cutoff_ms, 0, c->actor, now, n, err, errlen);
}

static int sq_export(struct ctl *c, const char *name, const struct gw_regdb_export_ops *ops,
                     void *ud, char *err, size_t errlen)
{
    return gw_regdb_export(c->db, name, ops, ud, NULL, NULL, 0, err, errlen);
}

const struct ctl_reg_ops ctl_sqlite_reg = {
    .name = "sqlite",
    .atomic = true,
    .open = sq_open,
    .is_open = sq_is_open,
    .begin = sq_begin,
    .commit = sq_commit,
    .abort = ctl_tx_abort,
    .reg = sq_reg,
    .rotate = sq_rotate,
    .revoke = sq_revoke,
    .list = sq_list,
    .show = sq_show,
    .activity_add = sq_activity_add,
    .activity_query = sq_activity_query,
    .erase = sq_erase,
    .purge = sq_purge,
    .export = sq_export,
};

/* ------------------------------------------------------------ rng, CA */

int ctl_need_rng(struct ctl *c)
{
    char err[512];
    if (c->rng_ok)
        return EX_OK;
    if (pki_rng_init(&c->rng, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    c->rng_ok = true;
    return EX_OK;
}

int ctl_ca_paths(const struct ctl *c, char kp[PATH_BUF], char cp[PATH_BUF])
{
    if (ctl_join(kp, PATH_BUF, c->pki, "ca.key") != 0 ||
        ctl_join(cp, PATH_BUF, c->pki, "ca.crt") != 0)
        return ctl_fail("%s: path too long", c->pki);
    return EX_OK;
}

/* Loads the CA; "no CA in DIR" when it is not there. */
int ctl_need_ca(struct ctl *c, struct pki_ca *ca)
{
    char kp[PATH_BUF], cp[PATH_BUF], err[1024];
    int rv = ctl_ca_paths(c, kp, cp);
    if (rv != EX_OK)
        return rv;
    if (!ctl_exists(kp) || !ctl_exists(cp))
        return ctl_fail("no CA in %s: run 'panelgatectl ca init'", c->pki);
    rv = ctl_need_rng(c);
    if (rv != EX_OK)
        return rv;
    if (pki_ca_load(ca, c->pki, &c->rng, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    return EX_OK;
}

int ctl_check_name(struct ctl *c, const char *name)
{
    if (!gw_regdb_name_ok(name))
        return ctl_usage_err(c->cmd,
                             "bad server name '%s': 1 to 255 of A-Z a-z 0-9 . _ -, not "
                             "starting with '.' or '-'",
                             name);
    return EX_OK;
}

int ctl_tx(struct ctl *c, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rv = ctl_fail("database %s: %s: %s", c->db_path, sql,
                          msg ? msg : sqlite3_errmsg(c->db));
        sqlite3_free(msg);
        return rv;
    }
    return EX_OK;
}

void ctl_tx_abort(struct ctl *c)
{
    if (c->db != NULL && !sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ------------------------------------------------------------ the text table */

static size_t display_width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

int ctl_table_row(struct table *t, const char *const *cells)
{
    if (t->nrow == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **nc = realloc(t->cell, cap * t->ncol * sizeof *nc);
        if (nc == NULL)
            return GW_ENOMEM;
        t->cell = nc;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->ncol; i++) {
        t->cell[t->nrow * t->ncol + i] = strdup(cells[i] ? cells[i] : "-");
        if (t->cell[t->nrow * t->ncol + i] == NULL) {
            for (size_t j = 0; j < i; j++)
                free(t->cell[t->nrow * t->ncol + j]);
            return GW_ENOMEM;
        }
    }
    t->nrow++;
    return 0;
}

void ctl_table_print(const struct table *t, const char *indent)
{
    size_t w[16] = {0};
    for (size_t r = 0; r < t->nrow; r++)
        for (size_t i = 0; i < t->ncol && i < 16; i++) {
            size_t dw = display_width(t->cell[r * t->ncol + i]);
            if (dw > w[i])
                w[i] = dw;
        }
    for (size_t r = 0; r < t->nrow; r++) {
        fputs(indent, stdout);
        for (size_t i = 0; i < t->ncol; i++) {
            const char *s = t->cell[r * t->ncol + i];
            fputs(s, stdout);
            if (i + 1 < t->ncol)
                printf("%*s", (int)(w[i] - display_width(s) + 2), "");
        }
        putchar('\n');
    }
}

void ctl_table_free(struct table *t)
{
    for (size_t i = 0; i < t->nrow * t->ncol; i++)
        free(t->cell[i]);
    free(t->cell);
}
