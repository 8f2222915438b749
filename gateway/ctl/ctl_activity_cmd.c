/*
 * ctl_activity_cmd.c - the activity log in panelgatectl: rows as a table
 * or a JSON array (for activity and show), and the activity command with
 * its filters.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "ctl.h"

/* Activity rows into a table or a JSON array. */
struct act_ctx {
    bool json;
    bool with_server;
    cJSON *arr;
    struct table tab;
    int oom;
    unsigned n;
};

static int act_one(const struct gw_activity_row *r, void *ud)
{
    struct act_ctx *a = ud;
    char t[32];
    a->n++;
    if (a->json) {
        /* the server in JSON even when the table leaves it out (show) */
        cJSON_AddItemToArray(a->arr, ctl_activity_json(r, true));
        return 0;
    }
    const char *row[5];
    size_t i = 0;
    row[i++] = ctl_iso(r->at, t);
    row[i++] = r->actor;
    row[i++] = r->action;
    if (a->with_server)
        row[i++] = r->server;
    row[i++] = r->details ? r->details : "";
    if (ctl_table_row(&a->tab, row) != 0) {
        a->oom = 1;
        return 1;
    }
    return 0;
}

int ctl_run_activity(struct ctl *c, const struct gw_activity_filter *f, bool with_server,
                     cJSON *into, const char *indent)
{
    char err[1024];
    struct act_ctx a = {.json = into != NULL, .with_server = with_server, .arr = into,
                        .tab = {.ncol = with_server ? 5 : 4}};
    static const char *const head5[] = {"TIME", "ACTOR", "ACTION", "SERVER", "DETAILS"};
    static const char *const head4[] = {"TIME", "ACTOR", "ACTION", "DETAILS"};
    if (!a.json && ctl_table_row(&a.tab, with_server ? head5 : head4) != 0)
        return ctl_fail("out of memory");
    int rv = EX_OK;
    if (c->reg->activity_query(c, f, act_one, &a, err, sizeof err) != 0)
        rv = ctl_fail("%s", err);
    else if (a.oom)
        rv = ctl_fail("out of memory");
    else if (!a.json && a.n > 0)
        ctl_table_print(&a.tab, indent);
    else if (!a.json)
        printf("%s(no activity)\n", indent);
    ctl_table_free(&a.tab);
    return rv;
}

int cmd_activity(struct ctl *c)
{
    char err[1024];
    struct gw_activity_filter f = {0};
    int64_t now = (int64_t)time(NULL);
    static const char *const tfmt =
        "Unix seconds, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, or a duration ago like 1h";

    if (c->val[O_SINCE] && ctl_parse_time(c->val[O_SINCE], false, now, &f.since) != 0)
        return ctl_usage_err(c->cmd, "bad --since '%s': %s", c->val[O_SINCE], tfmt);
    if (c->val[O_UNTIL] && ctl_parse_time(c->val[O_UNTIL], true, now, &f.until) != 0)
        return ctl_usage_err(c->cmd, "bad --until '%s': %s", c->val[O_UNTIL], tfmt);
    if (f.since && f.until && f.since > f.until)
        return ctl_usage_err(c->cmd, "--since is after --until");
    if (c->val[O_LIMIT]) {
        unsigned long long v;
        if (ctl_parse_uint(c->val[O_LIMIT], UINT_MAX, &v) != 0 || v == 0)
            return ctl_usage_err(c->cmd, "bad --limit '%s': a number from 1", c->val[O_LIMIT]);
        f.limit = (unsigned)v;
    }
    f.action = c->val[O_ACTION];
    f.server = c->val[O_SERVER];
    int rv = ctl_need_reg_ro(c);
    if (rv != EX_OK)
        return rv;
    if (f.server != NULL) {
        struct gw_regdb_server s;
        if (c->reg->show(c, f.server, &s, err, sizeof err) != 0)
            return ctl_fail("%s", err);
    }
    if (c->json) {
        cJSON *arr = cJSON_CreateArray();
        rv = ctl_run_activity(c, &f, true, arr, "");
        if (rv == EX_OK)
            ctl_json_print(arr);
        cJSON_Delete(arr);
        return rv;
    }
    return ctl_run_activity(c, &f, true, NULL, "");
}
