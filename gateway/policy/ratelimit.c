/*
 * ratelimit.c - token buckets and their bounded tables (see ratelimit.h).
 *
 * A bucket counts thousandths of a token: at r tokens per second it gains
 * exactly r thousandths per millisecond, so integer rates refill smoothly
 * (3/s yields a token every 333.3 ms on average, never early) and a wait is
 * an exact number of milliseconds.  Refill is computed from the elapsed
 * time and capped before any multiplication, so a gap of any length (or a
 * clock that stepped back) cannot overflow.
 *
 * Both tables are set-associative: a key hashes (SipHash-1-3 with a secret
 * key, so nobody can aim a flood at one set) to a set of GW_RL_WAYS slots.
 * Lookups and evictions touch one set only; the tables never grow.
 */
#include "ratelimit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "err.h"

/* ---- buckets ------------------------------------------------------------------ */

static uint64_t clamp(uint64_t v)
{
    return v > GW_RL_MAX ? GW_RL_MAX : v;
}

/* The bucket's level (thousandths) at |now|, without changing it. */
static uint64_t level_at(const struct gw_bucket *b, uint64_t per_s, uint64_t burst, int64_t now)
{
    uint64_t cap = burst * 1000;

    if (!b->primed)
        return cap;
    if (b->milli >= cap)
        return cap; /* the burst may have been lowered by a reload */
    if (now <= b->last_ms)
        return b->milli;
    uint64_t elapsed = (uint64_t)now - (uint64_t)b->last_ms;
    uint64_t room = cap - b->milli;
    /* per_s thousandths per millisecond; full after ceil(room / per_s) ms */
    if (elapsed >= (room + per_s - 1) / per_s)
        return cap;
    return b->milli + elapsed * per_s;
}

static void refill(struct gw_bucket *b, uint64_t per_s, uint64_t burst, int64_t now)
{
    b->milli = level_at(b, per_s, burst, now);
    b->last_ms = now; /* a clock that stepped back restarts from here */
    b->primed = true;
}

int64_t gw_rl_wait(struct gw_bucket *b, const struct gw_rl_rate *r, uint64_t cost,
                   int64_t now_ms)
{
    uint64_t per_s = clamp(r->per_s), burst = clamp(r->burst);

    if (per_s == 0)
        return 0;
    refill(b, per_s, burst, now_ms);
    if (cost > burst)
        return GW_RL_NEVER;
    uint64_t need = cost * 1000;
    if (b->milli >= need)
        return 0;
    return (int64_t)((need - b->milli + per_s - 1) / per_s);
}

int64_t gw_rl_take(struct gw_bucket *b, const struct gw_rl_rate *r, uint64_t cost,
                   int64_t now_ms)
{
    int64_t w = gw_rl_wait(b, r, cost, now_ms);

    if (w == 0 && r->per_s != 0)
        b->milli -= cost * 1000;
    return w;
}

uint64_t gw_rl_tokens(const struct gw_bucket *b, const struct gw_rl_rate *r, int64_t now_ms)
{
    uint64_t per_s = clamp(r->per_s), burst = clamp(r->burst);

    if (per_s == 0)
        return burst;
    return level_at(b, per_s, burst, now_ms) / 1000;
}

uint32_t gw_rl_retry_after_s(int64_t wait_ms)
{
    if (wait_ms <= 1000)
        return 1;
    if (wait_ms >= 86400 * 1000LL)
        return 86400;
    return (uint32_t)((wait_ms + 999) / 1000);
}

/* ---- SipHash-1-3 of a 16-byte key ---------------------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                           \
    do {                                                                                   \
        v0 += v1;                                                                          \
        v1 = ROTL(v1, 13);                                                                 \
        v1 ^= v0;                                                                          \
        v0 = ROTL(v0, 32);                                                                 \
        v2 += v3;                                                                          \
        v3 = ROTL(v3, 16);                                                                 \
        v3 ^= v2;                                                                          \
        v0 += v3;                                                                          \
        v3 = ROTL(v3, 21);                                                                 \
        v3 ^= v0;                                                                          \
        v2 += v1;                                                                          \
        v1 = ROTL(v1, 17);                                                                 \
        v1 ^= v2;                                                                          \
        v2 = ROTL(v2, 32);                                                                 \
    } while (0)

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t siphash16(const uint8_t in[16], uint64_t k0, uint64_t k1)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;

    for (int i = 0; i < 2; i++) {
        uint64_t m = le64(in + 8 * i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t m = (uint64_t)16 << 56;
    v3 ^= m;
    SIPROUND;
    v0 ^= m;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint32_t sets_for(uint32_t size)
{
    uint32_t n = (size + GW_RL_WAYS - 1) / GW_RL_WAYS;
    return n ? n : 1;
}

/* ---- per-source-address table ------------------------------------------------- */

struct addr_entry {
    uint8_t key[GW_RL_KEY_LEN];
    struct gw_bucket b; /* primed = slot in use */
};

struct gw_rl_addrs {
    uint32_t nsets, used;
    uint64_t k0, k1, evictions;
    struct addr_entry e[];
};

int gw_rl_addrs_new(struct gw_rl_addrs **out, uint32_t size, uint64_t k0, uint64_t k1)
{
    uint32_t nsets = sets_for(size);
    struct gw_rl_addrs *t =
        gw_calloc(1, sizeof *t + (size_t)nsets * GW_RL_WAYS * sizeof(struct addr_entry));

    *out = NULL;
    if (!t)
        return GW_ENOMEM;
    t->nsets = nsets;
    t->k0 = k0;
    t->k1 = k1;
    *out = t;
    return 0;
}

void gw_rl_addrs_free(struct gw_rl_addrs *t)
{
    gw_free(t);
}

uint32_t gw_rl_addrs_capacity(const struct gw_rl_addrs *t)
{
    return t->nsets * GW_RL_WAYS;
}

uint32_t gw_rl_addrs_used(const struct gw_rl_addrs *t)
{
    return t->used;
}

uint64_t gw_rl_addrs_evictions(const struct gw_rl_addrs *t)
{
    return t->evictions;
}

/* |key|'s slot, made when missing (possibly by evicting the slot that would
 * lose the least: the most tokens, then the least recently used). */
static struct addr_entry *addr_slot(struct gw_rl_addrs *t, const uint8_t key[GW_RL_KEY_LEN],
                                    const struct gw_rl_rate *r, int64_t now)
{
    struct addr_entry *set = &t->e[(siphash16(key, t->k0, t->k1) % t->nsets) * GW_RL_WAYS];
    struct addr_entry *free_slot = NULL, *victim = NULL;
    uint64_t per_s = clamp(r->per_s), burst = clamp(r->burst), best = 0;

    for (unsigned i = 0; i < GW_RL_WAYS; i++) {
        struct addr_entry *s = &set[i];
        if (!s->b.primed) {
            if (!free_slot)
                free_slot = s;
            continue;
        }
        if (memcmp(s->key, key, GW_RL_KEY_LEN) == 0)
            return s;
        uint64_t lvl = per_s ? level_at(&s->b, per_s, burst, now) : 0;
        if (!victim || lvl > best || (lvl == best && s->b.last_ms < victim->b.last_ms)) {
            victim = s;
            best = lvl;
        }
    }
    if (free_slot) {
        t->used++;
        victim = free_slot;
    } else {
        t->evictions++;
    }
    memset(victim, 0, sizeof *victim);
    memcpy(victim->key, key, GW_RL_KEY_LEN);
    return victim;
}

int64_t gw_rl_addrs_take(struct gw_rl_addrs *t, const uint8_t key[GW_RL_KEY_LEN],
                         const struct gw_rl_rate *r, int64_t now_ms)
{
    struct addr_entry *s = addr_slot(t, key, r, now_ms);
    int64_t w = gw_rl_take(&s->b, r, 1, now_ms);

    s->b.primed = true; /* in use even when the rate is unlimited */
    return w;
}

void gw_rl_addrs_move(struct gw_rl_addrs *dst, const struct gw_rl_addrs *src,
                      const struct gw_rl_rate *r, int64_t now_ms)
{
    uint32_t n = src->nsets * GW_RL_WAYS;

    for (uint32_t i = 0; i < n; i++) {
        const struct addr_entry *s = &src->e[i];
        if (s->b.primed)
            addr_slot(dst, s->key, r, now_ms)->b = s->b;
    }
}

int gw_rl_addr_key(const void *sa, size_t salen, uint8_t key[GW_RL_KEY_LEN])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    sa_family_t fam;

    if (salen < sizeof fam)
        return GW_EINVAL;
    memcpy(&fam, (const char *)sa + offsetof(struct sockaddr, sa_family), sizeof fam);
    memset(key, 0, GW_RL_KEY_LEN);
    if (fam == AF_INET && salen >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof in);
        memcpy(key, mapped, sizeof mapped);
        memcpy(key + 12, &in.sin_addr, 4);
        return 0;
    }
    if (fam == AF_INET6 && salen >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof in6);
        if (memcmp(in6.sin6_addr.s6_addr, mapped, sizeof mapped) == 0)
            memcpy(key, in6.sin6_addr.s6_addr, 16);
        else
            memcpy(key, in6.sin6_addr.s6_addr, 8);
        return 0;
    }
    return GW_EINVAL;
}

void gw_rl_addr_text(const uint8_t key[GW_RL_KEY_LEN], char *buf, size_t len)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char a[INET6_ADDRSTRLEN];

    if (memcmp(key, mapped, sizeof mapped) == 0) {
        if (!inet_ntop(AF_INET, key + 12, a, sizeof a))
            snprintf(a, sizeof a, "?");
        snprintf(buf, len, "%s", a);
        return;
    }
    if (!inet_ntop(AF_INET6, key, a, sizeof a))
        snprintf(a, sizeof a, "?");
    snprintf(buf, len, "%s/64", a);
}

/* ---- per-server table ------------------------------------------------------------ */

struct gw_rl_servers {
    uint32_t nsets, used;
    uint64_t k0, k1;
    struct gw_rl_server e[];
};

int gw_rl_servers_new(struct gw_rl_servers **out, uint32_t size, uint64_t k0, uint64_t k1)
{
    uint32_t nsets = sets_for(size);
    struct gw_rl_servers *t =
        gw_calloc(1, sizeof *t + (size_t)nsets * GW_RL_WAYS * sizeof(struct gw_rl_server));

    *out = NULL;
    if (!t)
        return GW_ENOMEM;
    t->nsets = nsets;
    t->k0 = k0;
    t->k1 = k1;
    *out = t;
    return 0;
}

void gw_rl_servers_free(struct gw_rl_servers *t)
{
    gw_free(t);
}

uint32_t gw_rl_servers_capacity(const struct gw_rl_servers *t)
{
    return t->nsets * GW_RL_WAYS;
}

uint32_t gw_rl_servers_used(const struct gw_rl_servers *t)
{
    return t->used;
}

static bool has_pending(const struct gw_rl_server *e)
{
    for (int v = 0; v < GW_RL_N_VERDICTS; v++)
        if (e->limited[v])
            return true;
    return false;
}

/* true when |a| is a better eviction victim than |b|: not banned before
 * banned (then the ban ending first), nothing to flush before counts not
 * yet written, then the fuller frames bucket, then the least recently
 * used. */
static bool better_victim(const struct gw_rl_server *a, const struct gw_rl_server *b,
                          int64_t now)
{
    int64_t ba = gw_rl_banned_ms(a, now), bb = gw_rl_banned_ms(b, now);
    if ((ba > 0) != (bb > 0))
        return ba == 0;
    if (ba > 0)
        return ba < bb;
    bool pa = has_pending(a), pb = has_pending(b);
    if (pa != pb)
        return !pa;
    uint64_t la = gw_rl_tokens(&a->fb, &a->frames, now);
    uint64_t lb = gw_rl_tokens(&b->fb, &b->frames, now);
    if (la != lb)
        return la > lb;
    return a->last_ms < b->last_ms;
}

struct gw_rl_server *gw_rl_servers_get(struct gw_rl_servers *t, int64_t id, bool create,
                                       int64_t now_ms)
{
    uint8_t key[16] = {0};
    uint64_t u = (uint64_t)id;
    struct gw_rl_server *set, *free_slot = NULL, *victim = NULL;

    if (id == 0)
        return NULL;
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)(u >> (8 * i));
    set = &t->e[(siphash16(key, t->k0, t->k1) % t->nsets) * GW_RL_WAYS];
    for (unsigned i = 0; i < GW_RL_WAYS; i++) {
        struct gw_rl_server *s = &set[i];
        if (s->id == id)
            return s;
        if (s->id == 0) {
            if (!free_slot)
                free_slot = s;
        } else if (!victim || better_victim(s, victim, now_ms)) {
            victim = s;
        }
    }
    if (!create)
        return NULL;
    if (free_slot) {
        t->used++;
        victim = free_slot;
    }
    memset(victim, 0, sizeof *victim);
    victim->id = id;
    victim->last_ms = now_ms;
    return victim;
}

void gw_rl_servers_each(struct gw_rl_servers *t, void (*fn)(struct gw_rl_server *e, void *ud),
                        void *ud)
{
    uint32_t n = t->nsets * GW_RL_WAYS;

    for (uint32_t i = 0; i < n; i++)
        if (t->e[i].id != 0)
            fn(&t->e[i], ud);
}

void gw_rl_servers_move(struct gw_rl_servers *dst, const struct gw_rl_servers *src,
                        int64_t now_ms)
{
    uint32_t n = src->nsets * GW_RL_WAYS;

    for (uint32_t i = 0; i < n; i++)
        if (src->e[i].id != 0)
            *gw_rl_servers_get(dst, src->e[i].id, true, now_ms) = src->e[i];
}

/* ---- limits and verdicts -------------------------------------------------------------- */

const char *gw_rl_verdict_name(enum gw_rl_verdict v)
{
    switch (v) {
    case GW_RL_OK:
        return "ok";
    case GW_RL_FRAMES:
        return "frames";
    case GW_RL_BYTES:
        return "bytes";
    case GW_RL_GLOBAL:
        return "global";
    case GW_RL_BANNED:
        return "banned";
    case GW_RL_N_VERDICTS:
        break;
    }
    return "?";
}

static void apply(struct gw_rl_limits *out, const struct gw_rl_override *o)
{
    if (o->set & GW_RL_SET_FRAMES_PER_S)
        out->frames_per_s = o->v.frames_per_s;
    if (o->set & GW_RL_SET_FRAMES_BURST)
        out->frames_burst = o->v.frames_burst;
    if (o->set & GW_RL_SET_BYTES_PER_S)
        out->bytes_per_s = o->v.bytes_per_s;
    if (o->set & GW_RL_SET_BYTES_BURST)
        out->bytes_burst = o->v.bytes_burst;
}

void gw_rl_config_from(struct gw_rl_config *out, const struct gw_config *cfg)
{
    out->base = cfg->rl;
    memcpy(out->kind, cfg->rl_kind, sizeof out->kind);
    out->servers = cfg->rl_servers;
    out->n_servers = cfg->n_rl_servers;
    out->global.per_s = cfg->rl_global_frames_per_s;
    out->global.burst = cfg->rl_global_frames_burst;
    out->abuse_threshold = cfg->rl_abuse_threshold;
    out->abuse_window_s = cfg->rl_abuse_window_s;
    out->ban_s = cfg->rl_ban_s;
}

void gw_rl_resolve(const struct gw_rl_config *rc, const char *name, const char *kind,
                   struct gw_rl_limits *out)
{
    *out = rc->base;
    if (kind) {
        for (int k = 0; k < GW_RL_N_KINDS; k++)
            if (strcmp(kind, gw_rl_kind_names[k]) == 0)
                apply(out, &rc->kind[k]);
    }
    if (name) {
        for (uint32_t i = 0; i < rc->n_servers; i++)
            if (strcmp(name, rc->servers[i].name) == 0)
                apply(out, &rc->servers[i].o);
    }
}

void gw_rl_server_set_limits(struct gw_rl_server *e, const struct gw_rl_limits *l)
{
    e->frames.per_s = l->frames_per_s;
    e->frames.burst = l->frames_burst;
    e->bytes.per_s = l->bytes_per_s;
    e->bytes.burst = l->bytes_burst;
}

int64_t gw_rl_banned_ms(const struct gw_rl_server *e, int64_t now_ms)
{
    return e->banned_until_ms > now_ms ? e->banned_until_ms - now_ms : 0;
}

/* Records a 429 with |verdict|; FRAMES and BYTES are strikes. */
static void refuse(struct gw_rl_server *e, const struct gw_rl_config *rc, enum gw_rl_verdict verdict,
                   int64_t wait_ms, int64_t now, struct gw_rl_result *res)
{
    res->verdict = verdict;
    res->wait_ms = wait_ms > 0 ? wait_ms : 1;
    if (!has_pending(e))
        e->limited_first_ms = now;
    e->limited[verdict]++;
    e->limited_last_ms = now;
    if ((verdict != GW_RL_FRAMES && verdict != GW_RL_BYTES) || rc->abuse_threshold == 0)
        return;
    if (e->strikes == 0 || now - e->window_ms >= (int64_t)rc->abuse_window_s * 1000) {
        e->strikes = 0;
        e->window_ms = now;
    }
    if (++e->strikes >= rc->abuse_threshold) {
        e->strikes = 0;
        e->banned_until_ms = now + (int64_t)rc->ban_s * 1000;
        res->ban_started = true;
    }
}

void gw_rl_request(struct gw_rl_server *e, struct gw_bucket *global, const struct gw_rl_config *rc,
                   int64_t content_length, int64_t now_ms, struct gw_rl_result *res)
{
    const struct gw_rl_rate *g = &rc->global;
    int64_t w, wg = 0;

    memset(res, 0, sizeof *res);
    e->last_ms = now_ms;
    w = gw_rl_banned_ms(e, now_ms);
    if (w > 0) {
        refuse(e, rc, GW_RL_BANNED, w, now_ms, res);
        return;
    }
    w = gw_rl_wait(&e->fb, &e->frames, 1, now_ms);
    if (global)
        wg = gw_rl_wait(global, g, 1, now_ms);
    if (w > 0) {
        refuse(e, rc, GW_RL_FRAMES, w > wg ? w : wg, now_ms, res);
        return;
    }
    /* a declared length over the burst is left to the 413 that follows */
    if (content_length > 0 && (uint64_t)content_length <= e->bytes.burst) {
        int64_t wb = gw_rl_wait(&e->bb, &e->bytes, (uint64_t)content_length, now_ms);
        if (wb > 0) {
            refuse(e, rc, GW_RL_BYTES, wb, now_ms, res);
            return;
        }
    }
    if (wg > 0) {
        refuse(e, rc, GW_RL_GLOBAL, wg, now_ms, res);
        return;
    }
    gw_rl_take(&e->fb, &e->frames, 1, now_ms);
    if (global)
        gw_rl_take(global, g, 1, now_ms);
}

void gw_rl_body(struct gw_rl_server *e, const struct gw_rl_config *rc, uint64_t bytes,
                int64_t now_ms, struct gw_rl_result *res)
{
    int64_t w;

    memset(res, 0, sizeof *res);
    e->last_ms = now_ms;
    w = gw_rl_banned_ms(e, now_ms);
    if (w > 0) {
        refuse(e, rc, GW_RL_BANNED, w, now_ms, res);
        return;
    }
    w = gw_rl_take(&e->bb, &e->bytes, bytes, now_ms);
    if (w > 0)
        refuse(e, rc, GW_RL_BYTES, w, now_ms, res);
}
