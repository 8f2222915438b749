/*
 * samples.c - the panel-facing rows of one frame, and the writer's bounded
 * cache of stream paths (samples.h).
 *
 * The block: [struct gw_samples][streams][viewers][names], one malloc.
 * Every vhost, app and instance name is copied once and shared by the
 * entries of its streams, so the block is about as large as the part of
 * the body it describes.
 */
#include "samples.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"

/* Rounds |n| up to a multiple of 8 (the alignment of every part). */
static size_t align8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

static int add(size_t *acc, size_t n)
{
    if (n > SIZE_MAX - *acc)
        return GW_ENOMEM;
    *acc += n;
    return 0;
}

int gw_samples_build(const struct pa_frame *f, const struct gw_viewers *v,
                     struct gw_samples **out)
{
    size_t n_streams = 0, strbytes = 0;
    uint32_t n_viewers = v != NULL ? v->n : 0;

    *out = NULL;
    if (f == NULL)
        return GW_EINVAL;
    for (uint32_t i = 0; i < f->n_vhosts; i++) {
        const struct pa_vhost *vh = &f->vhosts[i];
        if (add(&strbytes, strlen(vh->name) + 1) != 0)
            return GW_ENOMEM;
        for (uint32_t j = 0; j < vh->n_apps; j++) {
            const struct pa_app *ap = &vh->apps[j];
            if (add(&strbytes, strlen(ap->name) + 1) != 0)
                return GW_ENOMEM;
            for (uint32_t k = 0; k < ap->n_instances; k++) {
                const struct pa_instance *in = &ap->instances[k];
                if (add(&strbytes, strlen(in->name) + 1) != 0)
                    return GW_ENOMEM;
                for (uint32_t m = 0; m < in->n_streams; m++)
                    if (add(&strbytes, strlen(in->streams[m].name) + 1) != 0)
                        return GW_ENOMEM;
                n_streams += in->n_streams;
            }
        }
    }
    /* n_viewers (uint32) times a small struct always fits a 64-bit size_t */
    if (n_streams > UINT32_MAX || n_streams > SIZE_MAX / sizeof(struct gw_stream_sample))
        return GW_ENOMEM;

    size_t off_streams = align8(sizeof(struct gw_samples));
    size_t off_viewers = off_streams;
    if (add(&off_viewers, align8(n_streams * sizeof(struct gw_stream_sample))) != 0)
        return GW_ENOMEM;
    size_t off_str = off_viewers;
    if (add(&off_str, align8((size_t)n_viewers * sizeof(struct gw_viewer_agg))) != 0)
        return GW_ENOMEM;
    size_t total = off_str;
    if (add(&total, strbytes) != 0)
        return GW_ENOMEM;

    char *blk = gw_malloc(total ? total : 1);
    if (blk == NULL)
        return GW_ENOMEM;
    struct gw_samples *s = (struct gw_samples *)(void *)blk;
    memset(s, 0, sizeof *s);
    s->cpu_pct = f->load.cpu_pct;
    s->ram_used = f->load.ram_used;
    s->ram_total = f->load.ram_total;
    s->bytes_in = f->traffic.bytes_in;
    s->bytes_out = f->traffic.bytes_out;
    s->period_ms = f->traffic.period_ms;
    /* the buckets hold every connection once (privacy.h), and the stored
     * form (stored.h) has no conns but the buckets */
    s->conns = f->n_conns;
    if (n_viewers) {
        uint64_t sum = 0;
        for (uint32_t i = 0; i < n_viewers; i++)
            sum = v->aggs[i].conns > UINT64_MAX - sum ? UINT64_MAX : sum + v->aggs[i].conns;
        s->conns = sum;
    }
    s->n_streams = (uint32_t)n_streams;
    s->n_viewers = n_viewers;
    s->streams = (struct gw_stream_sample *)(void *)(blk + off_streams);
    s->viewers = (struct gw_viewer_agg *)(void *)(blk + off_viewers);
    s->size = total;
    if (n_viewers)
        memcpy(s->viewers, v->aggs, (size_t)n_viewers * sizeof *v->aggs);

    char *p = blk + off_str;
    size_t n = 0;
#define COPY(dst, src)                                                                         \
    do {                                                                                       \
        size_t l_ = strlen(src) + 1;                                                           \
        memcpy(p, (src), l_);                                                                  \
        (dst) = p;                                                                             \
        p += l_;                                                                               \
    } while (0)
    for (uint32_t i = 0; i < f->n_vhosts; i++) {
        const struct pa_vhost *vh = &f->vhosts[i];
        const char *vname;
        COPY(vname, vh->name);
        for (uint32_t j = 0; j < vh->n_apps; j++) {
            const struct pa_app *ap = &vh->apps[j];
            const char *aname;
            COPY(aname, ap->name);
            for (uint32_t k = 0; k < ap->n_instances; k++) {
                const struct pa_instance *in = &ap->instances[k];
                const char *iname;
                COPY(iname, in->name);
                for (uint32_t m = 0; m < in->n_streams; m++) {
                    const struct pa_stream *st = &in->streams[m];
                    struct gw_stream_sample *e = &s->streams[n++];
                    e->vhost = vname;
                    e->app = aname;
                    e->instance = iname;
                    COPY(e->stream, st->name);
                    e->viewers = st->viewers;
                    e->bitrate = st->bitrate;
                    e->bytes_in = st->bytes_in;
                    e->bytes_out = st->bytes_out;
                }
            }
        }
    }
#undef COPY
    *out = s;
    return 0;
}

/* ------------------------------------------------------------ path cache */

struct slot {
    uint64_t h;
    int64_t server_id;
    char *key; /* "vhost\0app\0instance\0stream\0"; NULL = empty slot */
    size_t klen;
    struct gw_path_entry v;
};

struct gw_path_cache {
    struct slot *slots;
    uint32_t mask;  /* slots - 1; slots = 2 * cap */
    uint32_t cap;
    uint32_t count;
    uint64_t seed;
};

struct gw_path_cache *gw_path_cache_new(uint32_t cap, uint64_t seed)
{
    uint32_t c = 16;
    while (c < cap && c < (1u << 30))
        c <<= 1;
    struct gw_path_cache *pc = gw_calloc(1, sizeof *pc);
    if (pc == NULL)
        return NULL;
    pc->slots = gw_calloc((size_t)c * 2, sizeof *pc->slots);
    if (pc->slots == NULL) {
        gw_free(pc);
        return NULL;
    }
    pc->cap = c;
    pc->mask = c * 2 - 1;
    pc->seed = seed;
    return pc;
}

void gw_path_cache_clear(struct gw_path_cache *c)
{
    if (c == NULL || c->count == 0)
        return;
    for (uint32_t i = 0; i <= c->mask; i++) {
        gw_free(c->slots[i].key);
        c->slots[i].key = NULL;
    }
    c->count = 0;
}

void gw_path_cache_free(struct gw_path_cache *c)
{
    if (c == NULL)
        return;
    gw_path_cache_clear(c);
    gw_free(c->slots);
    gw_free(c);
}

uint32_t gw_path_cache_count(const struct gw_path_cache *c)
{
    return c ? c->count : 0;
}

/* FNV-1a over the server id and the four names (each with its NUL, so
 * ("ab","c") and ("a","bc") differ), started from the seed. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t key_hash(const struct gw_path_cache *c, int64_t server_id,
                         const struct gw_stream_sample *s, size_t *klen)
{
    const char *parts[4] = {s->vhost, s->app, s->instance, s->stream};
    uint64_t h = hash_bytes(c->seed ^ 0xcbf29ce484222325ull, &server_id, sizeof server_id);
    size_t total = 0;
    for (int i = 0; i < 4; i++) {
        size_t l = strlen(parts[i]) + 1;
        h = hash_bytes(h, parts[i], l);
        total += l;
    }
    *klen = total;
    /* final mix, so the low bits (the slot) depend on every byte */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static int key_eq(const struct slot *sl, int64_t server_id, const struct gw_stream_sample *s,
                  size_t klen)
{
    if (sl->server_id != server_id || sl->klen != klen)
        return 0;
    const char *parts[4] = {s->vhost, s->app, s->instance, s->stream};
    const char *k = sl->key;
    for (int i = 0; i < 4; i++) {
        size_t l = strlen(parts[i]) + 1;
        if (memcmp(k, parts[i], l) != 0)
            return 0;
        k += l;
    }
    return 1;
}

static struct slot *find(struct gw_path_cache *c, uint64_t h, int64_t server_id,
                         const struct gw_stream_sample *s, size_t klen)
{
    for (uint32_t i = (uint32_t)h & c->mask;; i = (i + 1) & c->mask) {
        struct slot *sl = &c->slots[i];
        if (sl->key == NULL || (sl->h == h && key_eq(sl, server_id, s, klen)))
            return sl;
    }
}

struct gw_path_entry *gw_path_cache_get(struct gw_path_cache *c, int64_t server_id,
                                        const struct gw_stream_sample *s)
{
    size_t klen;
    if (c == NULL || s == NULL)
        return NULL;
    uint64_t h = key_hash(c, server_id, s, &klen);
    struct slot *sl = find(c, h, server_id, s, klen);
    return sl->key != NULL ? &sl->v : NULL;
}

int gw_path_cache_put(struct gw_path_cache *c, int64_t server_id,
                      const struct gw_stream_sample *s, int64_t id, int64_t last_ms)
{
    size_t klen;
    if (c == NULL || s == NULL)
        return GW_EINVAL;
    uint64_t h = key_hash(c, server_id, s, &klen);
    struct slot *sl = find(c, h, server_id, s, klen);
    if (sl->key == NULL) {
        if (c->count >= c->cap) {
            gw_path_cache_clear(c);
            sl = find(c, h, server_id, s, klen);
        }
        char *k = gw_malloc(klen);
        if (k == NULL)
            return GW_ENOMEM;
        const char *parts[4] = {s->vhost, s->app, s->instance, s->stream};
        char *p = k;
        for (int i = 0; i < 4; i++) {
            size_t l = strlen(parts[i]) + 1;
            memcpy(p, parts[i], l);
            p += l;
        }
        sl->key = k;
        sl->klen = klen;
        sl->h = h;
        sl->server_id = server_id;
        c->count++;
    }
    sl->v.id = id;
    sl->v.last_ms = last_ms;
    return 0;
}
