/*
 * ctl_tail_cmd.c - panelgatectl tail: follows the JetStream engine's
 * frames stream as a panel consumer would, one JSON object per frame on
 * stdout.
 *
 * It reads through an ephemeral ordered push consumer (libnats' Ordered
 * subscription: AckNone, flow control and heartbeats, recreated by the
 * library after a gap or a lost server), so it acknowledges nothing, never
 * touches the store's durable consumer, and leaves nothing on the server:
 * the consumer is deleted when the subscription ends, and an abandoned one
 * (kill -9) is removed by the server after its inactivity threshold.
 *
 * Each message is read against the contract by gw_js_msg_read (js_msg.h,
 * the same reader panelgate-store uses); its body is printed as export
 * prints a stored body (ctl_body_json).  A message that breaks the
 * contract is one line on stderr (stream sequence, reason) and is skipped.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>
#include <panelproto/arena.h>

#include "alloc.h"
#include "config.h"
#include "ctl.h"
#include "ctl_kv.h"
#include "js.h"
#include "js_msg.h"

/* How long one wait for a message lasts: how soon a signal is seen. */
#define TAIL_WAIT_MS 250

static volatile sig_atomic_t g_tail_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_tail_stop = 1;
}

/* On a libnats thread: one stderr line per change (stdio locks); none
 * once tail is closing the connection itself (|ud|: struct tail's
 * closing). */
static void on_js_event(enum gw_js_event ev, const char *url, void *ud)
{
    if (atomic_load((atomic_bool *)ud))
        return;
    if (ev == GW_JS_DISCONNECTED)
        fprintf(stderr, "panelgatectl: tail: lost the NATS server; reconnecting\n");
    else if (ev == GW_JS_RECONNECTED)
        fprintf(stderr, "panelgatectl: tail: connected again, to %s\n", url);
}

struct tail {
    struct gw_config cfg;
    bool cfg_ok;
    struct gw_js *js;
    atomic_bool closing; /* set before the connection is closed */
    natsSubscription *sub;
    char filter[512];
    unsigned long long count; /* 0 = for ever */
    unsigned long long last;  /* --last N, 0 = not given */
    int64_t since;            /* --since, Unix seconds; 0 = not given */
};

static bool all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* --server NAME|ID -> the server's id: a registered NAME first, else a
 * decimal ID as it is (a server erased since, or no registry at hand). */
static int server_id_of(struct ctl *c, const char *v, int64_t *out)
{
    char err[1024];
    unsigned long long id = 0;
    bool numeric = all_digits(v) && ctl_parse_uint(v, INT64_MAX, &id) == 0 && id > 0;
    /* the cluster's registry bucket first, then the configuration's file */
    if (c->kv != NULL && gw_regdb_name_ok(v)) {
        int rv = ctl_kv_find_id(c, v, out, err, sizeof err);
        if (rv == 0)
            return EX_OK;
        if (rv != GW_ENOTFOUND)
            return ctl_fail("--server %s: %s", v, err);
    }
    const char *path = c->db_path[0] != '\0' ? c->db_path : ctl_kv_sqlite_path(c);
    if (path != NULL && gw_regdb_name_ok(v)) {
        if (gw_regdb_open_ro(path, &c->db, err, sizeof err) != 0) {
            if (!numeric)
                return ctl_fail("--server %s: %s", v, err);
        } else {
            struct gw_regdb_server s;
            int rv = gw_regdb_show(c->db, v, &s, err, sizeof err);
            if (rv == 0) {
                *out = s.id;
                return EX_OK;
            }
            if (rv != GW_ENOTFOUND || !numeric)
                return ctl_fail("--server %s: %s", v, err);
        }
    }
    if (!numeric)
        return ctl_usage_err(c->cmd, "bad --server '%s': a registered NAME (with --config) or "
                             "the numeric server ID", v);
    *out = (int64_t)id;
    return EX_OK;
}

static int parse_args(struct ctl *c, struct tail *t)
{
    unsigned starts = 0;
    starts += (c->given & BIT(O_FROM_START)) != 0;
    starts += (c->given & BIT(O_SINCE)) != 0;
    starts += (c->given & BIT(O_LAST)) != 0;
    if (starts > 1)
        return ctl_usage_err(c->cmd, "tail: --from-start, --since and --last exclude each other");
    if (c->val[O_NUM] != NULL &&
        (ctl_parse_uint(c->val[O_NUM], UINT64_MAX, &t->count) != 0 || t->count == 0))
        return ctl_usage_err(c->cmd, "bad --count '%s': a number of frames, 1 or more",
                             c->val[O_NUM]);
    if (c->val[O_LAST] != NULL &&
        (ctl_parse_uint(c->val[O_LAST], UINT64_MAX, &t->last) != 0 || t->last == 0))
        return ctl_usage_err(c->cmd, "bad --last '%s': a number of frames, 1 or more",
                             c->val[O_LAST]);
    if (c->val[O_SINCE] != NULL &&
        ctl_parse_time(c->val[O_SINCE], false, (int64_t)time(NULL), &t->since) != 0)
        return ctl_usage_err(c->cmd,
                             "bad --since '%s': Unix seconds, YYYY-MM-DD, "
                             "YYYY-MM-DDTHH:MM:SSZ or a duration ago (30s, 15m, 12h, 7d)",
                             c->val[O_SINCE]);
    if (c->val[O_CONFIG] == NULL)
        return ctl_usage_err(c->cmd, "tail: needs --config FILE (its [jetstream] section)");
    return EX_OK;
}

static int load_config(struct ctl *c, struct tail *t)
{
    char err[1024];
    const char *path = c->val[O_CONFIG];
    if (gw_config_defaults(&t->cfg) != 0)
        return ctl_fail("out of memory");
    t->cfg_ok = true;
    if (gw_config_load(&t->cfg, path, err, sizeof err) != 0 ||
        gw_config_validate(&t->cfg, err, sizeof err) != 0)
        return ctl_fail("%s", err);
    if (!gw_config_is_jetstream(&t->cfg))
        return ctl_fail("%s: [storage] storage_engine is %s: tail follows the JetStream "
                        "engine's stream (storage_engine = jetstream)",
                        path, t->cfg.storage_engine ? t->cfg.storage_engine : GW_ENGINE_SQLITE);
    if (t->cfg.js_servers == NULL || *t->cfg.js_servers == '\0')
        return ctl_fail("%s: [jetstream] servers: required, and not set", path);
    return EX_OK;
}

/* Connects, checks that the stream is there (tail never creates it), and
 * subscribes with an ordered consumer starting where the options say. */
static int subscribe(struct ctl *c, struct tail *t, int64_t server_id)
{
    char err[1024];
    const struct gw_config *cfg = &t->cfg;
    jsErrCode jerr = 0;

    if (gw_js_connect(&t->js, cfg, "panelgatectl-tail", on_js_event, &t->closing, err,
                      sizeof err) != 0)
        return ctl_fail("%s", err);
    jsCtx *js = gw_js_ctx(t->js);
    jsStreamInfo *si = NULL;
    natsStatus s = js_GetStreamInfo(&si, js, cfg->js_stream, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
        return ctl_fail("jetstream: no stream %s (the gateway creates it when it starts)",
                        cfg->js_stream);
    if (s != NATS_OK)
        return ctl_fail("jetstream: stream %s: %s (JetStream error %d)", cfg->js_stream,
                        natsStatus_GetText(s), (int)jerr);

    if (server_id > 0) {
        if (gw_js_subject(cfg, server_id, t->filter, sizeof t->filter) != 0)
            return ctl_fail("jetstream: subject_prefix too long");
    } else if (snprintf(t->filter, sizeof t->filter, "%s.>", cfg->js_subject_prefix) >=
               (int)sizeof t->filter) {
        return ctl_fail("jetstream: subject_prefix too long");
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = cfg->js_stream;
    so.Ordered = true;
    if (c->given & (BIT(O_FROM_START) | BIT(O_LAST))) {
        so.Config.DeliverPolicy = js_DeliverAll; /* --last skips the older ones */
    } else if (c->given & BIT(O_SINCE)) {
        so.Config.DeliverPolicy = js_DeliverByStartTime;
        so.Config.OptStartTime = t->since * 1000000000;
    } else {
        so.Config.DeliverPolicy = js_DeliverNew;
    }
    jerr = 0;
    s = js_SubscribeSync(&t->sub, js, t->filter, NULL, &so, &jerr);
    if (s != NATS_OK)
        return ctl_fail("jetstream: an ordered consumer on %s (%s): %s (JetStream error %d)",
                        cfg->js_stream, t->filter, natsStatus_GetText(s), (int)jerr);
    return EX_OK;
}

/* One message: printed (returns 1), skipped with a line on stderr or by
 * --last (0), or EX_FAIL-worthy (-1: out of memory, stdout failed). */
static int one(struct tail *t, natsMsg *m)
{
    char why[256] = "";
    struct pa_arena a;
    struct gw_js_msg jm;
    int rv = -1;
    uint64_t sseq = gw_js_msg_stream_seq(m);

    if (t->last > 0) {
        jsMsgMetaData *meta = NULL;
        bool older = natsMsg_GetMetaData(&meta, m) == NATS_OK && meta != NULL &&
                     meta->NumPending >= t->last;
        jsMsgMetaData_Destroy(meta);
        if (older)
            return 0;
    }
    pa_arena_init(&a, 0, &gw_pa_mem);
    int code = gw_js_msg_read(&t->cfg, m, &a, &jm, why, sizeof why);
    if (code == GW_EINVAL) {
        fprintf(stderr, "panelgatectl: tail: stream message %" PRIu64 " skipped: %s\n", sseq,
                why);
        rv = 0;
        goto out;
    }
    if (code != 0) {
        ctl_fail("tail: stream message %" PRIu64 ": %s", sseq, why);
        goto out;
    }
    cJSON *body = ctl_body_json(jm.body, jm.body_len);
    cJSON *o = cJSON_CreateObject();
    char *txt = NULL;
    if (body != NULL && o != NULL) {
        cJSON_AddItemToObject(o, "stream_seq", ctl_json_int(0, sseq, 0));
        cJSON_AddItemToObject(o, "server_id", ctl_json_int(0, (uint64_t)jm.server_id, 0));
        cJSON_AddItemToObject(o, "seq", ctl_json_int(0, jm.seq, 0));
        cJSON_AddItemToObject(o, "ts_ms", ctl_json_int(0, jm.ts_ms, 0));
        cJSON_AddItemToObject(o, "received_ms",
                              ctl_json_int(jm.received_ms < 0, (uint64_t)jm.received_ms,
                                           jm.received_ms));
        cJSON_AddItemToObject(o, "frame", body);
        body = NULL;
        txt = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(body);
    cJSON_Delete(o);
    if (txt == NULL) {
        ctl_fail("tail: stream message %" PRIu64 ": out of memory", sseq);
        goto out;
    }
    /* a line at a time, so that a pipe sees each frame when it comes */
    bool ok = puts(txt) >= 0 && fflush(stdout) == 0;
    cJSON_free(txt);
    if (!ok) {
        ctl_fail("tail: cannot write the output");
        goto out;
    }
    rv = 1;
out:
    pa_arena_cleanup(&a);
    return rv;
}

int cmd_tail(struct ctl *c)
{
    struct tail t;
    int64_t server_id = 0;
    int rv;

    memset(&t, 0, sizeof t);
    atomic_init(&t.closing, false);
    if ((rv = parse_args(c, &t)) != EX_OK)
        return rv;
    if (c->val[O_SERVER] != NULL && (rv = server_id_of(c, c->val[O_SERVER], &server_id)) != EX_OK)
        return rv;
    if ((rv = load_config(c, &t)) != EX_OK || (rv = subscribe(c, &t, server_id)) != EX_OK)
        goto out;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    unsigned long long printed = 0;
    while (!g_tail_stop && (t.count == 0 || printed < t.count)) {
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, t.sub, TAIL_WAIT_MS);
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK) {
            /* a slow consumer: the ordered consumer starts again after the
             * last message delivered, so nothing is skipped; go on */
            if (s == NATS_SLOW_CONSUMER)
                continue;
            rv = ctl_fail("tail: reading the stream: %s", natsStatus_GetText(s));
            goto out;
        }
        int r = one(&t, m);
        natsMsg_Destroy(m);
        if (r < 0) {
            rv = EX_FAIL;
            goto out;
        }
        printed += (unsigned)r;
    }
    rv = EX_OK;
out:
    atomic_store(&t.closing, true);
    /* Unsubscribe deletes the ephemeral consumer on the server */
    if (t.sub != NULL)
        natsSubscription_Unsubscribe(t.sub);
    natsSubscription_Destroy(t.sub);
    gw_js_free(t.js);
    if (t.cfg_ok)
        gw_config_cleanup(&t.cfg);
    /* the registry's connection (--server NAME on the bucket) goes first:
     * after nats_Close its close callback never comes and gw_js_free
     * cannot free it */
    ctl_kv_free(c);
    nats_Close();
    return rv;
}
