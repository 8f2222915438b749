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
#include "alloc.h"
#include "clock.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "ratelimit.h"
#include "registry.h"

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
    /* what it reads of the configuration (gw_limiter_reload) */
    struct gw_rl_config rl;
    struct gw_rl_rate addr_rate;  /* handshakes_per_s_per_addr, _burst */
    struct gw_rl_rate log_rate;   /* refusal_log_per_s */
};

static void set_config(struct gw_limiter *l, const struct gw_config *cfg)
{
    gw_rl_config_from(&l->rl, cfg);
    l->addr_rate.per_s = cfg->rl_handshakes_per_s;
    l->addr_rate.burst = cfg->rl_handshakes_burst;
    l->log_rate.per_s = cfg->refusal_log_per_s;
    l->log_rate.burst = cfg->refusal_log_per_s;
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
    struct gw_limiter *l = gw_calloc(1, sizeof *l);

    *out = NULL;
    if (!l)
        return GW_ENOMEM;
    hash_key(&l->k0, &l->k1);
    l->gen = 1;
    l->emit = emit;
    l->emit_ud = ud;
    set_config(l, cfg);
    gw_throttles_init(&l->throttles);
    if (gw_rl_addrs_new(&l->addrs, cfg->rl_addr_table_size, l->k0, l->k1) != 0 ||
        gw_rl_servers_new(&l->servers, cfg->rl_server_table_size, l->k0, l->k1) != 0) {
        gw_limiter_free(l);
        return GW_ENOMEM;
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
    gw_free(l);
}

/* The capacity a table of |size| entries gets (whole sets of ways). */
static uint32_t capacity_for(uint32_t size)
{
    uint32_t sets = (size + GW_RL_WAYS - 1) / GW_RL_WAYS;
    return (sets ? sets : 1) * GW_RL_WAYS;
}

int gw_limiter_reload(struct gw_limiter *l, const struct gw_config *cfg)
{
    int64_t now = gw_mono_ms();

    set_config(l, cfg);
    if (++l->gen == 0)
        l->gen = 1;
    if (gw_rl_addrs_capacity(l->addrs) != capacity_for(cfg->rl_addr_table_size)) {
        struct gw_rl_addrs *na;
        if (gw_rl_addrs_new(&na, cfg->rl_addr_table_size, l->k0, l->k1) != 0)
            return GW_ENOMEM;
        gw_rl_addrs_move(na, l->addrs, &l->addr_rate, now);
        gw_rl_addrs_free(l->addrs);
        l->addrs = na;
    }
    if (gw_rl_servers_capacity(l->servers) != capacity_for(cfg->rl_server_table_size)) {
        struct gw_rl_servers *ns;
        if (gw_rl_servers_new(&ns, cfg->rl_server_table_size, l->k0, l->k1) != 0)
            return GW_ENOMEM;
        gw_rl_servers_move(ns, l->servers, now);
        gw_rl_servers_free(l->servers);
        l->servers = ns;
    }
    return 0;
}

/* ---- accept ---------------------------------------------------------------- */

bool gw_limiter_accept(struct gw_limiter *l, const void *sa, size_t salen)
{
    uint8_t key[GW_RL_KEY_LEN];
    char addr[64];
    int64_t now = gw_mono_ms();

    if (!l || l->addr_rate.per_s == 0 || gw_rl_addr_key(sa, salen, key) != 0)
        return true;
    if (gw_rl_addrs_take(l->addrs, key, &l->addr_rate, now) == 0)
        return true;

    gw_rl_addr_text(key, addr, sizeof addr);
    gw_throttles_note(&l->throttles, addr, gw_now_ms());
    if (l->log_rate.per_s == 0 || gw_rl_take(&l->log_bucket, &l->log_rate, 1, now) != 0) {
        l->log_suppressed++;
        return false;
    }
    gw_log(GW_LOG_WARN, NULL, "handshake_throttled",
           "addr=%s over %u new connections/s (burst %u): closed before TLS; "
           "suppressed_since_last=%llu",
           addr, (unsigned)l->addr_rate.per_s, (unsigned)l->addr_rate.burst,
           (unsigned long long)l->log_suppressed);
    l->log_suppressed = 0;
    return false;
}

/* ---- servers ------------------------------------------------------------------ */

int64_t gw_limiter_banned(struct gw_limiter *l, int64_t server_id)
{
    struct gw_rl_server *e;
    int64_t now = gw_mono_ms();

    if (!l)
        return 0;
    e = gw_rl_servers_get(l->servers, server_id, false, now);
    return e ? gw_rl_banned_ms(e, now) : 0;
}

/* The entry of who's server, its limits resolved for the current
 * configuration. */
static struct gw_rl_server *entry_of(struct gw_limiter *l, const struct gw_limiter_who *who,
                                     int64_t now)
{
    struct gw_rl_server *e = gw_rl_servers_get(l->servers, who->server_id, true, now);

    if (e && e->gen != l->gen) {
        const struct gw_server *srv = who->spki ? gw_registry_lookup(who->reg, who->spki) : NULL;
        struct gw_rl_limits lim;
        gw_rl_resolve(&l->rl, who->server_name, srv ? srv->kind : NULL, &lim);
        gw_rl_server_set_limits(e, &lim);
        e->gen = l->gen;
    }
    return e;
}

void gw_limiter_ban_started(struct gw_limiter *l, const struct gw_limiter_who *who,
                            const char *why, unsigned n_conns)
{
    int64_t now_wall = gw_now_ms();
    char details[256];

    snprintf(details, sizeof details,
             "{\"reason\":\"%s\",\"strikes\":%u,\"window_s\":%u,\"ban_s\":%u,\"until\":%lld,"
             "\"connections\":%u}",
             why, l->rl.abuse_threshold, l->rl.abuse_window_s, l->rl.ban_s,
             (long long)(now_wall / 1000 + l->rl.ban_s), n_conns);
    l->emit(l->emit_ud, "rate_limit_ban", who->server_id, details, now_wall);
    gw_log(GW_LOG_WARN, &who->log, "rate_limit_ban",
           "%u 429s within %us: banned for %us, GOAWAY to %u connections", l->rl.abuse_threshold,
           l->rl.abuse_window_s, l->rl.ban_s, n_conns);
}

static void verdict(const struct gw_limiter_who *who, const struct gw_rl_result *res,
                    struct gw_limiter_verdict *v)
{
    v->why = gw_rl_verdict_name(res->verdict);
    if (res->verdict == GW_RL_OK)
        return;
    v->retry_after_s = gw_rl_retry_after_s(res->wait_ms);
    v->ban_started = res->ban_started;
    gw_log(GW_LOG_DEBUG, &who->log, "rate_limited", "bucket=%s retry_after=%u", v->why,
           v->retry_after_s);
}

void gw_limiter_request(struct gw_limiter *l, const struct gw_limiter_who *who,
                        int64_t content_length, struct gw_limiter_verdict *v)
{
    struct gw_rl_result res;
    struct gw_rl_server *e;
    int64_t now = gw_mono_ms();

    memset(v, 0, sizeof *v);
    v->why = "ok";
    if (!l || !(e = entry_of(l, who, now)))
        return;
    gw_rl_request(e, &l->global, &l->rl, content_length, now, &res);
    verdict(who, &res, v);
}

void gw_limiter_body(struct gw_limiter *l, const struct gw_limiter_who *who, size_t bytes,
                     struct gw_limiter_verdict *v)
{
    struct gw_rl_result res;
    struct gw_rl_server *e;
    int64_t now = gw_mono_ms();

    memset(v, 0, sizeof *v);
    v->why = "ok";
    if (!l || !(e = entry_of(l, who, now)))
        return;
    gw_rl_body(e, &l->rl, bytes, now, &res);
    verdict(who, &res, v);
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

void gw_limiter_flush(struct gw_limiter *l)
{
    struct flush_ctx f = {l, gw_mono_ms(), gw_now_ms()};

    if (!l)
        return;
    gw_throttles_flush(&l->throttles, l->emit, l->emit_ud);
    gw_rl_servers_each(l->servers, flush_server, &f);
}
