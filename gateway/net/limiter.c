/*
 * limiter.c - the gateway's side of rate limiting (see limiter.h): the
 * limiter tables of the process, bans, counters, logs and activity rows.
 */
#include "limiter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "activity.h"
#include "gw.h"
#include "log.h"
#include "ratelimit.h"

struct gw_limiter {
    struct gw_rl_addrs *addrs;
    struct gw_rl_servers *servers;
    struct gw_bucket global;
    uint32_t gen;       /* configuration generation, never 0 */
    uint64_t k0, k1;    /* secret hash key of both tables */
    struct gw_throttles throttles;
    gw_activity_emit_fn emit; /* activity rows */
    void *emit_ud;
    struct gw_bucket log_bucket; /* throttled-connection log lines */
    uint64_t log_suppressed;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hash_key(uint64_t *k0, uint64_t *k1)
{
    uint64_t k[2];

    if (getrandom(k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
        /* no entropy yet (early boot): still unpredictable enough to spread
         * a flood, and logged */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
        clock_gettime(CLOCK_REALTIME, &ts);
        k[1] = (uint64_t)ts.tv_nsec * 0xbf58476d1ce4e5b9ull ^ (uint64_t)ts.tv_sec;
        gw_log(GW_LOG_WARN, NULL, "ratelimit_weak_key", "getrandom failed: %s", strerror(errno));
    }
    *k0 = k[0];
    *k1 = k[1];
}

int gw_limiter_new(struct gw_limiter **out, const struct gw_config *cfg, gw_activity_emit_fn emit,
                   void *ud)
{
    struct gw_limiter *l = calloc(1, sizeof *l);

    *out = NULL;
    if (!l)
        return -1;
    hash_key(&l->k0, &l->k1);
    l->gen = 1;
    l->emit = emit;
    l->emit_ud = ud;
    gw_throttles_init(&l->throttles);
    if (gw_rl_addrs_new(&l->addrs, cfg->rl_addr_table_size, l->k0, l->k1) != 0 ||
        gw_rl_servers_new(&l->servers, cfg->rl_server_table_size, l->k0, l->k1) != 0) {
        gw_limiter_free(l);
        return -1;
    }
    *out = l;
    return 0;
}

void gw_limiter_free(struct gw_limiter *l)
{
    if (!l)
        return;
    gw_rl_addrs_free(l->addrs);
    gw_rl_servers_free(l->servers);
    free(l);
}

static struct gw_rl_rate addr_rate(const struct gw_config *cfg)
{
    struct gw_rl_rate r = {cfg->rl_handshakes_per_s, cfg->rl_handshakes_burst};
    return r;
}

/* The capacity a table of |size| entries gets (whole sets of ways). */
static uint32_t capacity_for(uint32_t size)
{
    uint32_t sets = (size + GW_RL_WAYS - 1) / GW_RL_WAYS;
    return (sets ? sets : 1) * GW_RL_WAYS;
}

int gw_limiter_reload(struct gw_limiter *l, const struct gw_config *cfg)
{
    int64_t now = mono_ms();
    struct gw_rl_rate r = addr_rate(cfg);

    if (++l->gen == 0)
        l->gen = 1;
    if (gw_rl_addrs_capacity(l->addrs) != capacity_for(cfg->rl_addr_table_size)) {
        struct gw_rl_addrs *na;
        if (gw_rl_addrs_new(&na, cfg->rl_addr_table_size, l->k0, l->k1) != 0)
            return -1;
        gw_rl_addrs_move(na, l->addrs, &r, now);
        gw_rl_addrs_free(l->addrs);
        l->addrs = na;
    }
    if (gw_rl_servers_capacity(l->servers) != capacity_for(cfg->rl_server_table_size)) {
        struct gw_rl_servers *ns;
        if (gw_rl_servers_new(&ns, cfg->rl_server_table_size, l->k0, l->k1) != 0)
            return -1;
        gw_rl_servers_move(ns, l->servers, now);
        gw_rl_servers_free(l->servers);
        l->servers = ns;
    }
    return 0;
}

/* ---- accept ---------------------------------------------------------------- */

bool gw_limiter_accept(struct gw_app *app, const void *sa, size_t salen)
{
    struct gw_limiter *l = app->limiter;
    const struct gw_config *cfg = app->cfg;
    struct gw_rl_rate r = addr_rate(cfg);
    uint8_t key[GW_RL_KEY_LEN];
    char addr[64];
    int64_t now = mono_ms();

    if (!l || r.per_s == 0 || gw_rl_addr_key(sa, salen, key) != 0)
        return true;
    if (gw_rl_addrs_take(l->addrs, key, &r, now) == 0)
        return true;

    app->stats.handshakes_throttled++;
    gw_rl_addr_text(key, addr, sizeof addr);
    gw_throttles_note(&l->throttles, addr, gw_now_ms());
    struct gw_rl_rate lr = {cfg->refusal_log_per_s, cfg->refusal_log_per_s};
    if (lr.per_s == 0 || gw_rl_take(&l->log_bucket, &lr, 1, now) != 0) {
        l->log_suppressed++;
        return false;
    }
    gw_log(GW_LOG_WARN, NULL, "handshake_throttled",
           "addr=%s over %u new connections/s (burst %u): closed before TLS; "
           "suppressed_since_last=%llu",
           addr, cfg->rl_handshakes_per_s, cfg->rl_handshakes_burst,
           (unsigned long long)l->log_suppressed);
    l->log_suppressed = 0;
    return false;
}

/* ---- servers ------------------------------------------------------------------ */

int64_t gw_limiter_banned(struct gw_app *app, int64_t server_id)
{
    struct gw_rl_server *e;
    int64_t now = mono_ms();

    if (!app->limiter)
        return 0;
    e = gw_rl_servers_get(app->limiter->servers, server_id, false, now);
    return e ? gw_rl_banned_ms(e, now) : 0;
}

/* The entry of c's server, its limits resolved for the current
 * configuration. */
static struct gw_rl_server *entry_of(struct gw_conn *c, int64_t now)
{
    struct gw_limiter *l = c->app->limiter;
    struct gw_rl_server *e = gw_rl_servers_get(l->servers, c->server_id, true, now);

    if (e && e->gen != l->gen) {
        const struct gw_server *srv =
            c->have_spki ? gw_registry_lookup(c->app->reg, c->spki) : NULL;
        struct gw_rl_limits lim;
        gw_rl_resolve(c->app->cfg, c->server_name, srv ? srv->kind : NULL, &lim);
        gw_rl_server_set_limits(e, &lim);
        e->gen = l->gen;
    }
    return e;
}

/* The ban starts: GOAWAY to every connection of the server, an activity
 * row and a log line.  |c| is the connection inside whose callback this
 * runs: its GOAWAY goes out with the 429 (the caller flushes it). */
static void start_ban(struct gw_conn *c, const struct gw_rl_result *res)
{
    struct gw_app *app = c->app;
    const struct gw_config *cfg = app->cfg;
    int64_t id = c->server_id, now_wall = gw_now_ms();
    unsigned n = 0;
    char details[256];
    struct gw_log_ctx ctx;

    app->stats.rate_limit_bans++;
    for (struct gw_conn *x = app->conns, *next; x; x = next) {
        next = x->next;
        if (x->server_id != id || x->state != GW_CONN_H2)
            continue;
        n++;
        gw_conn_goaway(x, NGHTTP2_ENHANCE_YOUR_CALM, "rate_limited");
        if (x != c)
            gw_conn_flush(x); /* may free x */
    }
    snprintf(details, sizeof details,
             "{\"reason\":\"%s\",\"strikes\":%u,\"window_s\":%u,\"ban_s\":%u,\"until\":%lld,"
             "\"connections\":%u}",
             gw_rl_verdict_name(res->verdict), cfg->rl_abuse_threshold, cfg->rl_abuse_window_s,
             cfg->rl_ban_s, (long long)(now_wall / 1000 + cfg->rl_ban_s), n);
    app->limiter->emit(app->limiter->emit_ud, "rate_limit_ban", id, details, now_wall);
    gw_conn_log_ctx(c, &ctx);
    gw_log(GW_LOG_WARN, &ctx, "rate_limit_ban",
           "%u 429s within %us: banned for %us, GOAWAY to %u connections", cfg->rl_abuse_threshold,
           cfg->rl_abuse_window_s, cfg->rl_ban_s, n);
}

static uint32_t verdict(struct gw_conn *c, const struct gw_rl_result *res, const char **why)
{
    struct gw_log_ctx ctx;
    uint32_t retry = gw_rl_retry_after_s(res->wait_ms);

    c->app->stats.frames_rate_limited++;
    *why = gw_rl_verdict_name(res->verdict);
    gw_conn_log_ctx(c, &ctx);
    gw_log(GW_LOG_DEBUG, &ctx, "rate_limited", "bucket=%s retry_after=%u", *why, retry);
    if (res->ban_started)
        start_ban(c, res);
    return retry;
}

uint32_t gw_limiter_request(struct gw_conn *c, int64_t content_length, const char **why)
{
    struct gw_limiter *l = c->app->limiter;
    struct gw_rl_result res;
    struct gw_rl_server *e;
    int64_t now = mono_ms();

    *why = "ok";
    if (!l || !(e = entry_of(c, now)))
        return 0;
    gw_rl_request(e, &l->global, c->app->cfg, content_length, now, &res);
    return res.verdict == GW_RL_OK ? 0 : verdict(c, &res, why);
}

uint32_t gw_limiter_body(struct gw_conn *c, size_t bytes, const char **why)
{
    struct gw_limiter *l = c->app->limiter;
    struct gw_rl_result res;
    struct gw_rl_server *e;
    int64_t now = mono_ms();

    *why = "ok";
    if (!l || !(e = entry_of(c, now)))
        return 0;
    gw_rl_body(e, c->app->cfg, bytes, now, &res);
    return res.verdict == GW_RL_OK ? 0 : verdict(c, &res, why);
}

/* ---- activity log ------------------------------------------------------------- */

struct flush_ctx {
    struct gw_limiter *l;
    int64_t now_mono, now_wall;
};

static void flush_server(struct gw_rl_server *e, void *ud)
{
    struct flush_ctx *f = ud;
    uint64_t total = 0;
    char details[256];

    for (int v = 0; v < GW_RL_N_VERDICTS; v++)
        total += e->limited[v];
    if (total == 0)
        return;
    int64_t first = f->now_wall - (f->now_mono - e->limited_first_ms);
    int64_t last = f->now_wall - (f->now_mono - e->limited_last_ms);
    snprintf(details, sizeof details,
             "{\"count\":%llu,\"frames\":%u,\"bytes\":%u,\"global\":%u,\"banned\":%u,"
             "\"first\":%lld,\"last\":%lld}",
             (unsigned long long)total, e->limited[GW_RL_FRAMES], e->limited[GW_RL_BYTES],
             e->limited[GW_RL_GLOBAL], e->limited[GW_RL_BANNED], (long long)(first / 1000),
             (long long)(last / 1000));
    f->l->emit(f->l->emit_ud, "rate_limited", e->id, details, last);
    memset(e->limited, 0, sizeof e->limited);
}

void gw_limiter_flush(struct gw_app *app)
{
    struct gw_limiter *l = app->limiter;
    struct flush_ctx f = {l, mono_ms(), gw_now_ms()};

    if (!l)
        return;
    gw_throttles_flush(&l->throttles, l->emit, l->emit_ud);
    gw_rl_servers_each(l->servers, flush_server, &f);
}
