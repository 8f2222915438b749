/*
 * testutil.h - header-only helpers for the frame codec tests and fuzz target.
 *
 * Every test_*.c is its own executable, so everything here is static inline
 * and only what a test uses gets compiled in.  Four parts:
 *
 *   tu_rng      seeded splitmix64 PRNG (seed from PANELGATE_SEED)
 *   tu_alloc    struct pa_allocator that counts calls/bytes and can fail
 *               the Nth call
 *   builders    realistic Nimble-style and Wowza-style frames, a minimal
 *               frame and random valid frames, all built in a pa_arena
 *   tu_frame_eq deep equality of two struct pa_frame (floats bitwise)
 *   tu_node     a tiny msgpack tree writer on top of msgpack-c's packer,
 *               with raw byte pokes, ext values and duplicate keys, for
 *               hand-crafting hostile input (skip it with TU_NO_MSGPACK)
 *
 * Builders abort() on allocation failure: they are test fixtures, not code
 * under test.  The fuzz target includes this header as
 * "../tests/unit/testutil.h" with TU_NO_MSGPACK defined.
 */
#ifndef PANELGATE_TESTUTIL_H
#define PANELGATE_TESTUTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <panelproto/frame.h>

#define TU_ARRAY_LEN(x) (sizeof(x) / sizeof((x)[0]))

/* ------------------------------------------------------------------ PRNG */

struct tu_rng {
    uint64_t s;
};

static inline uint64_t tu_rng_next(struct tu_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform-enough value in [0, n); 0 when n is 0. */
static inline uint32_t tu_rng_below(struct tu_rng *r, uint32_t n)
{
    return n ? (uint32_t)(tu_rng_next(r) % n) : 0;
}

/* true with probability 1/n */
static inline bool tu_rng_one_in(struct tu_rng *r, uint32_t n)
{
    return tu_rng_below(r, n) == 0;
}

/* A uint64 spread over magnitudes, hitting msgpack's int-form boundaries. */
static inline uint64_t tu_rng_u64(struct tu_rng *r)
{
    static const uint64_t edge[] = {
        0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffffull,
        0x100000000ull, UINT64_MAX - 1, UINT64_MAX,
    };
    switch (tu_rng_below(r, 4)) {
    case 0:
        return edge[tu_rng_below(r, (uint32_t)TU_ARRAY_LEN(edge))];
    case 1:
        return tu_rng_below(r, 200);
    case 2:
        return tu_rng_next(r) >> tu_rng_below(r, 64);
    default:
        return tu_rng_next(r);
    }
}

/* PANELGATE_SEED (decimal or 0x hex) or |dflt|. */
static inline uint64_t tu_seed(uint64_t dflt)
{
    const char *s = getenv("PANELGATE_SEED");
    if (s != NULL && *s != '\0')
        return strtoull(s, NULL, 0);
    return dflt;
}

static inline bool tu_quick(void)
{
    const char *s = getenv("PANELGATE_QUICK");
    return s != NULL && *s != '\0' && strcmp(s, "0") != 0;
}

/* ------------------------------------------------------------- allocator */

/* Counts calls and bytes; fails call number |fail_at| (1-based; 0 never)
 * or every call from |fail_from| on (0 never).  Blocks carry a 16-byte
 * header holding their size so live bytes are exact. */
struct tu_alloc {
    struct pa_allocator pa;
    long fail_at;
    long fail_from;
    long calls;     /* malloc + realloc calls */
    long failures;  /* calls that returned NULL on purpose */
    long live;      /* blocks outstanding */
    size_t live_bytes;
    size_t peak_bytes;
    size_t total_bytes; /* bytes ever requested */
    size_t max_request;
};

#define TU_HDR 16u

static inline bool tu_alloc_should_fail(struct tu_alloc *t, size_t n)
{
    t->calls++;
    if (n > t->max_request)
        t->max_request = n;
    if ((t->fail_at != 0 && t->calls == t->fail_at) ||
        (t->fail_from != 0 && t->calls >= t->fail_from)) {
        t->failures++;
        return true;
    }
    return false;
}

static inline void tu_alloc_account(struct tu_alloc *t, size_t add, size_t sub)
{
    t->live_bytes = t->live_bytes + add - sub;
    t->total_bytes += add;
    if (t->live_bytes > t->peak_bytes)
        t->peak_bytes = t->live_bytes;
}

static inline void *tu_alloc_malloc(size_t n, void *ud)
{
    struct tu_alloc *t = ud;
    if (tu_alloc_should_fail(t, n) || n > SIZE_MAX - TU_HDR)
        return NULL;
    unsigned char *p = malloc(n + TU_HDR);
    if (p == NULL)
        return NULL;
    memcpy(p, &n, sizeof n);
    t->live++;
    tu_alloc_account(t, n, 0);
    return p + TU_HDR;
}

static inline void *tu_alloc_realloc(void *q, size_t n, void *ud)
{
    struct tu_alloc *t = ud;
    if (tu_alloc_should_fail(t, n) || n > SIZE_MAX - TU_HDR)
        return NULL;
    size_t old = 0;
    unsigned char *base = NULL;
    if (q != NULL) {
        base = (unsigned char *)q - TU_HDR;
        memcpy(&old, base, sizeof old);
    }
    unsigned char *p = realloc(base, n + TU_HDR);
    if (p == NULL)
        return NULL;
    memcpy(p, &n, sizeof n);
    if (q == NULL)
        t->live++;
    tu_alloc_account(t, n, old);
    return p + TU_HDR;
}

static inline void tu_alloc_free(void *q, void *ud)
{
    struct tu_alloc *t = ud;
    if (q == NULL)
        return;
    unsigned char *base = (unsigned char *)q - TU_HDR;
    size_t old;
    memcpy(&old, base, sizeof old);
    t->live--;
    t->live_bytes -= old;
    free(base);
}

static inline void tu_alloc_init(struct tu_alloc *t)
{
    memset(t, 0, sizeof *t);
    t->pa.malloc = tu_alloc_malloc;
    t->pa.realloc = tu_alloc_realloc;
    t->pa.free = tu_alloc_free;
    t->pa.ud = t;
}

/* -------------------------------------------------------- frame builders */

static inline void *tu_new(struct pa_arena *a, size_t count, size_t size)
{
    void *p = pa_arena_calloc(a, count ? count : 1, size);
    if (p == NULL) {
        fprintf(stderr, "testutil: arena allocation failed\n");
        abort();
    }
    return p;
}

static inline const char *tu_dup(struct pa_arena *a, const char *s)
{
    char *p = pa_arena_strndup(a, s, strlen(s));
    if (p == NULL) {
        fprintf(stderr, "testutil: arena allocation failed\n");
        abort();
    }
    return p;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static inline const char *tu_fmt(struct pa_arena *a, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    return tu_dup(a, tmp);
}

static inline struct pa_ip tu_ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    struct pa_ip ip;
    memset(&ip, 0, sizeof ip);
    ip.family = 4;
    ip.addr[0] = a;
    ip.addr[1] = b;
    ip.addr[2] = c;
    ip.addr[3] = d;
    return ip;
}

/* 2001:db8:<g2>::<lo> */
static inline struct pa_ip tu_ip6(uint16_t g2, uint16_t lo)
{
    struct pa_ip ip;
    memset(&ip, 0, sizeof ip);
    ip.family = 6;
    ip.addr[0] = 0x20;
    ip.addr[1] = 0x01;
    ip.addr[2] = 0x0d;
    ip.addr[3] = 0xb8;
    ip.addr[4] = (uint8_t)(g2 >> 8);
    ip.addr[5] = (uint8_t)g2;
    ip.addr[14] = (uint8_t)(lo >> 8);
    ip.addr[15] = (uint8_t)lo;
    return ip;
}

static inline struct pa_cval tu_cv_nil(void)
{
    struct pa_cval v;
    memset(&v, 0, sizeof v);
    v.type = PA_CV_NIL;
    return v;
}

static inline struct pa_cval tu_cv_bool(bool b)
{
    struct pa_cval v = tu_cv_nil();
    v.type = PA_CV_BOOL;
    v.v.b = b;
    return v;
}

static inline struct pa_cval tu_cv_uint(uint64_t u)
{
    struct pa_cval v = tu_cv_nil();
    v.type = PA_CV_UINT;
    v.v.u = u;
    return v;
}

/* |i| must be negative (PA_CV_INT holds negative integers only). */
static inline struct pa_cval tu_cv_int(int64_t i)
{
    struct pa_cval v = tu_cv_nil();
    v.type = PA_CV_INT;
    v.v.i = i;
    return v;
}

static inline struct pa_cval tu_cv_float(double f)
{
    struct pa_cval v = tu_cv_nil();
    v.type = PA_CV_FLOAT;
    v.v.f = f;
    return v;
}

static inline struct pa_cval tu_cv_str(struct pa_arena *a, const char *s)
{
    struct pa_cval v = tu_cv_nil();
    v.type = PA_CV_STR;
    v.v.s = tu_dup(a, s);
    return v;
}

static inline struct pa_cval tu_cv_arr(struct pa_arena *a, uint32_t n)
{
    struct pa_cval v = tu_cv_nil();
    v.type = PA_CV_ARRAY;
    v.v.arr.items = tu_new(a, n, sizeof *v.v.arr.items);
    v.v.arr.n = n;
    return v;
}

static inline struct pa_cval tu_cv_map(struct pa_arena *a, uint32_t n)
{
    struct pa_cval v = tu_cv_nil();
    v.type = PA_CV_MAP;
    v.v.map.kv = tu_new(a, n, sizeof *v.v.map.kv);
    v.v.map.n = n;
    return v;
}

static inline void tu_cv_set(struct pa_arena *a, struct pa_cval *map, uint32_t i,
                             const char *key, struct pa_cval val)
{
    map->v.map.kv[i].key = tu_dup(a, key);
    map->v.map.kv[i].val = val;
}

static inline struct pa_frame *tu_frame_new(struct pa_arena *a)
{
    struct pa_frame *f = tu_new(a, 1, sizeof *f);
    f->config.type = PA_CV_MAP;
    return f;
}

/* The smallest valid frame: required fields only. */
static inline struct pa_frame *tu_frame_min(struct pa_arena *a)
{
    struct pa_frame *f = tu_frame_new(a);
    f->version = PA_PROTOCOL_VERSION;
    f->seq = 1;
    f->ts_ms = 1732838400000ull;
    f->server.name = tu_dup(a, "s");
    f->server.kind = PA_KIND_NIMBLE;
    f->server.version = tu_dup(a, "1");
    f->load.cpu_pct = 0.0;
    f->load.ram_used = 0;
    f->load.ram_total = 1;
    f->traffic.period_ms = 5000;
    return f;
}

static inline void tu_fill_stream(struct tu_rng *r, struct pa_stream *s)
{
    s->viewers = tu_rng_below(r, 2000);
    s->bitrate = 500000u + tu_rng_below(r, 8000000u);
    s->bytes_in = s->bitrate / 8u * 5u;
    s->bytes_out = s->bytes_in * s->viewers;
}

static inline void tu_fill_conns(struct pa_arena *a, struct tu_rng *r,
                                 struct pa_frame *f, uint32_t n)
{
    f->conns = n ? tu_new(a, n, sizeof *f->conns) : NULL;
    f->n_conns = n;
    for (uint32_t i = 0; i < n; i++) {
        struct pa_conn *c = &f->conns[i];
        if (i % 3 == 2)
            c->ip = tu_ip6((uint16_t)(i >> 8), (uint16_t)(i + 1));
        else
            c->ip = tu_ip4(198, 51, (uint8_t)(100 + i / 250), (uint8_t)(1 + i % 250));
        c->bytes_in = tu_rng_below(r, 4096);
        c->bytes_out = (uint64_t)tu_rng_below(r, 1u << 30) * (1 + i % 5);
    }
}

/*
 * Nimble Streamer-style frame: one vhost, apps live/vod/abr with a
 * _definst_ instance each, a dozen streams, |n_conns| viewers (every third
 * one IPv6), IPv4 + IPv6 server addresses and a three-level config tree.
 */
static inline struct pa_frame *tu_frame_nimble(struct pa_arena *a,
                                               uint32_t n_conns, uint64_t seed)
{
    struct tu_rng r = {seed};
    struct pa_frame *f = tu_frame_new(a);
    f->version = PA_PROTOCOL_VERSION;
    f->seq = 1000 + seed;
    f->ts_ms = 1732838400000ull + seed * 5000u;
    f->server.name = tu_dup(a, "nimble-edge-01.fra.example.net");
    f->server.n_ips = 3;
    f->server.ips = tu_new(a, 3, sizeof *f->server.ips);
    f->server.ips[0] = tu_ip4(203, 0, 113, 10);
    f->server.ips[1] = tu_ip6(0, 0x10);
    f->server.ips[2] = tu_ip4(10, 0, 0, 5);
    f->server.kind = PA_KIND_NIMBLE;
    f->server.version = tu_dup(a, "4.1.2-3");
    f->load.cpu_pct = 37.25;
    f->load.ram_used = 6ull << 30;
    f->load.ram_total = 16ull << 30;
    f->traffic.bytes_in = 1234567890123ull;
    f->traffic.bytes_out = 9876543210987ull;
    f->traffic.period_ms = 5000;

    /* config: {rtmp:{port,enabled}, hls:{segment_s,dvr_window_s,abr:[..]},
     *          cache:{size_mb,path,ratio,offset}, transcoder:{gpu,profiles},
     *          workers, logging } */
    struct pa_cval cfg = tu_cv_map(a, 6);
    struct pa_cval rtmp = tu_cv_map(a, 2);
    tu_cv_set(a, &rtmp, 0, "port", tu_cv_uint(1935));
    tu_cv_set(a, &rtmp, 1, "enabled", tu_cv_bool(true));
    struct pa_cval hls = tu_cv_map(a, 3);
    tu_cv_set(a, &hls, 0, "segment_s", tu_cv_uint(6));
    tu_cv_set(a, &hls, 1, "dvr_window_s", tu_cv_float(3600.5));
    struct pa_cval abr = tu_cv_arr(a, 3);
    abr.v.arr.items[0] = tu_cv_uint(4500000);
    abr.v.arr.items[1] = tu_cv_uint(2500000);
    abr.v.arr.items[2] = tu_cv_uint(800000);
    tu_cv_set(a, &hls, 2, "abr", abr);
    struct pa_cval cache = tu_cv_map(a, 4);
    tu_cv_set(a, &cache, 0, "size_mb", tu_cv_uint(2048));
    tu_cv_set(a, &cache, 1, "path", tu_cv_str(a, "/var/cache/nimble"));
    tu_cv_set(a, &cache, 2, "ratio", tu_cv_float(0.75));
    tu_cv_set(a, &cache, 3, "offset", tu_cv_int(-3));
    struct pa_cval tc = tu_cv_map(a, 2);
    tu_cv_set(a, &tc, 0, "gpu", tu_cv_nil());
    struct pa_cval profiles = tu_cv_arr(a, 4);
    static const char *const prof[] = {"1080p", "720p", "480p", "audio"};
    for (uint32_t i = 0; i < 4; i++) {
        struct pa_cval p = tu_cv_map(a, 2);
        tu_cv_set(a, &p, 0, "name", tu_cv_str(a, prof[i]));
        tu_cv_set(a, &p, 1, "height", tu_cv_uint(i == 3 ? 0 : 1080u - i * 300u));
        profiles.v.arr.items[i] = p;
    }
    tu_cv_set(a, &tc, 1, "profiles", profiles);
    tu_cv_set(a, &cfg, 0, "rtmp", rtmp);
    tu_cv_set(a, &cfg, 1, "hls", hls);
    tu_cv_set(a, &cfg, 2, "cache", cache);
    tu_cv_set(a, &cfg, 3, "transcoder", tc);
    tu_cv_set(a, &cfg, 4, "workers", tu_cv_uint(8));
    tu_cv_set(a, &cfg, 5, "logging", tu_cv_bool(false));
    f->config = cfg;

    static const char *const apps[] = {"live", "vod", "abr"};
    static const uint32_t nstreams[] = {8, 3, 2};
    f->n_vhosts = 1;
    f->vhosts = tu_new(a, 1, sizeof *f->vhosts);
    f->vhosts[0].name = tu_dup(a, "default");
    f->vhosts[0].n_apps = 3;
    f->vhosts[0].apps = tu_new(a, 3, sizeof(struct pa_app));
    for (uint32_t i = 0; i < 3; i++) {
        struct pa_app *app = &f->vhosts[0].apps[i];
        app->name = tu_dup(a, apps[i]);
        app->n_instances = 1;
        app->instances = tu_new(a, 1, sizeof *app->instances);
        struct pa_instance *in = &app->instances[0];
        in->name = tu_dup(a, "_definst_");
        in->n_streams = nstreams[i];
        in->streams = tu_new(a, nstreams[i], sizeof *in->streams);
        for (uint32_t k = 0; k < nstreams[i]; k++) {
            in->streams[k].name = tu_fmt(a, "%s_cam%u", apps[i], k + 1);
            tu_fill_stream(&r, &in->streams[k]);
        }
    }
    /* an idle stream with zero counters */
    f->vhosts[0].apps[1].instances[0].streams[2].viewers = 0;
    f->vhosts[0].apps[1].instances[0].streams[2].bytes_out = 0;

    tu_fill_conns(a, &r, f, n_conns);
    return f;
}

/*
 * Wowza Streaming Engine-style frame: three vhosts (one with a non-ASCII
 * name), several applications each with _definst_ and extra instances,
 * streams with multibyte names, |n_conns| viewers, a config tree with
 * negative, float, string, array and nested map values.
 */
static inline struct pa_frame *tu_frame_wowza(struct pa_arena *a,
                                              uint32_t n_conns, uint64_t seed)
{
    struct tu_rng r = {seed ^ 0x5157u};
    struct pa_frame *f = tu_frame_new(a);
    f->version = PA_PROTOCOL_VERSION;
    f->seq = 77 + seed;
    f->ts_ms = 1732838405000ull + seed;
    f->server.name = tu_dup(a, "wse-origin-3.ams");
    f->server.n_ips = 2;
    f->server.ips = tu_new(a, 2, sizeof *f->server.ips);
    f->server.ips[0] = tu_ip6(0x42, 0x3);
    f->server.ips[1] = tu_ip4(192, 0, 2, 33);
    f->server.kind = PA_KIND_WOWZA;
    f->server.version = tu_dup(a, "4.8.27+2 build20240627");
    f->load.cpu_pct = 100.0;
    f->load.ram_used = 31ull << 30;
    f->load.ram_total = 32ull << 30;
    f->traffic.bytes_in = 4000000000ull;
    f->traffic.bytes_out = 0;
    f->traffic.period_ms = 10000;

    struct pa_cval cfg = tu_cv_map(a, 4);
    struct pa_cval srv = tu_cv_map(a, 3);
    tu_cv_set(a, &srv, 0, "Name", tu_cv_str(a, "Wowza Streaming Engine"));
    tu_cv_set(a, &srv, 1, "HandlerThreadPool", tu_cv_uint(64));
    tu_cv_set(a, &srv, 2, "TransportThreadPool", tu_cv_uint(32));
    struct pa_cval jvm = tu_cv_map(a, 3);
    tu_cv_set(a, &jvm, 0, "HeapSize", tu_cv_str(a, "8000M"));
    tu_cv_set(a, &jvm, 1, "GCPauseTarget", tu_cv_float(0.2));
    struct pa_cval opts = tu_cv_arr(a, 3);
    opts.v.arr.items[0] = tu_cv_str(a, "-XX:+UseG1GC");
    opts.v.arr.items[1] = tu_cv_str(a, "-Dcom.wowza.locale=ж日本");
    opts.v.arr.items[2] = tu_cv_arr(a, 0);
    tu_cv_set(a, &jvm, 2, "Options", opts);
    struct pa_cval hostports = tu_cv_arr(a, 2);
    for (uint32_t i = 0; i < 2; i++) {
        struct pa_cval hp = tu_cv_map(a, 4);
        tu_cv_set(a, &hp, 0, "Port", tu_cv_uint(i ? 443u : 1935u));
        tu_cv_set(a, &hp, 1, "SSL", tu_cv_bool(i != 0));
        tu_cv_set(a, &hp, 2, "Timeout", tu_cv_int(-1));
        tu_cv_set(a, &hp, 3, "Extra", tu_cv_map(a, 0));
        hostports.v.arr.items[i] = hp;
    }
    tu_cv_set(a, &cfg, 0, "Server", srv);
    tu_cv_set(a, &cfg, 1, "JVM", jvm);
    tu_cv_set(a, &cfg, 2, "HostPorts", hostports);
    tu_cv_set(a, &cfg, 3, "Comment", tu_cv_nil());
    f->config = cfg;

    static const char *const vh[] = {"_defaultVHost_", "vhost-eu", "вхост-азия"};
    static const char *const apps[] = {"live", "vod", "liveedge", "webrtc"};
    static const char *const streams[] = {"myStream", "камера-1", "直播流",
                                          "stream-é", "🎥 main", "lobby"};
    f->n_vhosts = 3;
    f->vhosts = tu_new(a, 3, sizeof *f->vhosts);
    for (uint32_t v = 0; v < 3; v++) {
        struct pa_vhost *vhost = &f->vhosts[v];
        vhost->name = tu_dup(a, vh[v]);
        vhost->n_apps = v == 2 ? 0 : 4 - v; /* last vhost has no apps */
        vhost->apps = vhost->n_apps ? tu_new(a, vhost->n_apps, sizeof *vhost->apps) : NULL;
        for (uint32_t p = 0; p < vhost->n_apps; p++) {
            struct pa_app *app = &vhost->apps[p];
            app->name = tu_dup(a, apps[p]);
            app->n_instances = p == 3 ? 0 : 1 + (p + v) % 3;
            app->instances = app->n_instances
                                 ? tu_new(a, app->n_instances, sizeof *app->instances)
                                 : NULL;
            for (uint32_t i = 0; i < app->n_instances; i++) {
                struct pa_instance *in = &app->instances[i];
                in->name = i == 0 ? tu_dup(a, "_definst_") : tu_fmt(a, "instance%u", i);
                in->n_streams = (i + p + v) % 4; /* some instances are idle */
                in->streams = in->n_streams
                                  ? tu_new(a, in->n_streams, sizeof *in->streams)
                                  : NULL;
                for (uint32_t s = 0; s < in->n_streams; s++) {
                    in->streams[s].name =
                        tu_fmt(a, "%s_%u", streams[(s + i + p) % 6], s);
                    tu_fill_stream(&r, &in->streams[s]);
                }
            }
        }
    }
    tu_fill_conns(a, &r, f, n_conns);
    /* extremes on a couple of viewers */
    if (n_conns > 1) {
        f->conns[0].bytes_in = UINT64_MAX;
        f->conns[1].bytes_out = UINT64_MAX;
    }
    return f;
}

/* Random valid UTF-8 text of 1..max_bytes bytes; no NUL, no '~'. */
static inline const char *tu_rand_text(struct pa_arena *a, struct tu_rng *r,
                                       uint32_t max_bytes, const char *suffix)
{
    char buf[2048];
    size_t suf = suffix ? strlen(suffix) : 0;
    if (max_bytes > sizeof buf - 1)
        max_bytes = sizeof buf - 1;
    uint32_t target = tu_rng_one_in(r, 16) ? max_bytes
                      : 1 + tu_rng_below(r, max_bytes < 24 ? max_bytes : 24);
    if (target + suf > max_bytes)
        target = max_bytes > suf ? (uint32_t)(max_bytes - suf) : 0;
    size_t n = 0;
    for (;;) {
        uint32_t cp;
        switch (tu_rng_below(r, 8)) {
        case 0:
            cp = 0x80 + tu_rng_below(r, 0x800 - 0x80);
            break;
        case 1:
            do
                cp = 0x800 + tu_rng_below(r, 0x10000 - 0x800);
            while (cp >= 0xd800 && cp <= 0xdfff);
            break;
        case 2:
            cp = 0x10000 + tu_rng_below(r, 0x110000 - 0x10000);
            break;
        default:
            do
                cp = 0x20 + tu_rng_below(r, 0x5f); /* printable ASCII */
            while (cp == '~');
            break;
        }
        uint8_t u[4];
        size_t k;
        if (cp < 0x80) {
            u[0] = (uint8_t)cp;
            k = 1;
        } else if (cp < 0x800) {
            u[0] = (uint8_t)(0xc0 | cp >> 6);
            u[1] = (uint8_t)(0x80 | (cp & 0x3f));
            k = 2;
        } else if (cp < 0x10000) {
            u[0] = (uint8_t)(0xe0 | cp >> 12);
            u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
            u[2] = (uint8_t)(0x80 | (cp & 0x3f));
            k = 3;
        } else {
            u[0] = (uint8_t)(0xf0 | cp >> 18);
            u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
            u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
            u[3] = (uint8_t)(0x80 | (cp & 0x3f));
            k = 4;
        }
        if (n + k > target) {
            if (n == 0 && suf == 0) { /* never empty */
                buf[n++] = 'x';
            }
            break;
        }
        memcpy(buf + n, u, k);
        n += k;
    }
    if (suf)
        memcpy(buf + n, suffix, suf);
    n += suf;
    char *s = pa_arena_strndup(a, buf, n);
    if (s == NULL)
        abort();
    return s;
}

static inline double tu_rand_double(struct tu_rng *r)
{
    static const double edge[] = {0.0, -0.0, 1.0, -1.5, 0.1, 1e308, -1e-308,
                                  4.9e-324, 1.7976931348623157e308, 3.0e9};
    uint64_t bits;
    double d;
    switch (tu_rng_below(r, 3)) {
    case 0:
        return edge[tu_rng_below(r, (uint32_t)TU_ARRAY_LEN(edge))];
    case 1:
        return (double)(int32_t)tu_rng_next(r) / 1024.0;
    default:
        do {
            bits = tu_rng_next(r);
            memcpy(&d, &bits, sizeof d);
        } while ((bits & 0x7ff0000000000000ull) == 0x7ff0000000000000ull);
        return d;
    }
}

static inline void tu_rand_cval(struct pa_arena *a, struct tu_rng *r,
                                struct pa_cval *v, uint32_t depth_left,
                                uint32_t *budget)
{
    uint32_t pick = tu_rng_below(r, depth_left > 0 && *budget > 4 ? 8 : 6);
    if (*budget > 0)
        (*budget)--;
    switch (pick) {
    case 0:
        *v = tu_cv_nil();
        break;
    case 1:
        *v = tu_cv_bool(tu_rng_one_in(r, 2));
        break;
    case 2:
        *v = tu_cv_uint(tu_rng_u64(r));
        break;
    case 3: {
        int64_t i = -(int64_t)(tu_rng_u64(r) >> 1) - 1;
        if (tu_rng_one_in(r, 8))
            i = INT64_MIN;
        *v = tu_cv_int(i);
        break;
    }
    case 4:
        *v = tu_cv_float(tu_rand_double(r));
        break;
    case 5: {
        *v = tu_cv_nil();
        v->type = PA_CV_STR;
        v->v.s = tu_rng_one_in(r, 8) ? tu_dup(a, "") : tu_rand_text(a, r, 300, NULL);
        break;
    }
    case 6: {
        uint32_t n = tu_rng_below(r, *budget < 6 ? *budget : 6);
        *v = tu_cv_arr(a, n);
        for (uint32_t i = 0; i < n; i++)
            tu_rand_cval(a, r, &v->v.arr.items[i], depth_left - 1, budget);
        break;
    }
    default: {
        uint32_t n = tu_rng_below(r, *budget < 6 ? *budget : 6);
        *v = tu_cv_map(a, n);
        for (uint32_t i = 0; i < n; i++) {
            char suf[16];
            snprintf(suf, sizeof suf, "~%u", i);
            v->v.map.kv[i].key = tu_rand_text(a, r, 40, suf);
            tu_rand_cval(a, r, &v->v.map.kv[i].val, depth_left - 1, budget);
        }
        break;
    }
    }
}

/*
 * A random frame valid under the default limits.  |scale| 0 makes small
 * frames, 1 medium ones (up to a few hundred connections).
 */
static inline struct pa_frame *tu_frame_random(struct pa_arena *a,
                                               struct tu_rng *r, unsigned scale)
{
    struct pa_frame *f = tu_frame_new(a);
    uint32_t k = scale ? 4 : 1;
    f->version = PA_PROTOCOL_VERSION;
    f->seq = tu_rng_u64(r);
    if (f->seq == 0)
        f->seq = 1;
    f->ts_ms = tu_rng_u64(r);
    f->server.name = tu_rand_text(a, r, 255, NULL);
    f->server.n_ips = tu_rng_below(r, 2 * k + 1);
    f->server.ips = f->server.n_ips ? tu_new(a, f->server.n_ips, sizeof(struct pa_ip)) : NULL;
    for (uint32_t i = 0; i < f->server.n_ips; i++) {
        struct pa_ip *ip = &f->server.ips[i];
        ip->family = tu_rng_one_in(r, 2) ? 4 : 6;
        for (uint32_t b = 0; b < (ip->family == 4 ? 4u : 16u); b++)
            ip->addr[b] = (uint8_t)tu_rng_next(r);
    }
    f->server.kind = tu_rng_one_in(r, 2) ? PA_KIND_NIMBLE : PA_KIND_WOWZA;
    f->server.version = tu_rand_text(a, r, tu_rng_one_in(r, 10) ? 1024 : 20, NULL);
    switch (tu_rng_below(r, 4)) {
    case 0:
        f->load.cpu_pct = tu_rng_one_in(r, 2) ? 0.0 : 100.0;
        break;
    default:
        f->load.cpu_pct = (double)tu_rng_below(r, 100001) / 1000.0;
        break;
    }
    f->load.ram_total = tu_rng_u64(r);
    if (f->load.ram_total == 0)
        f->load.ram_total = 1;
    f->load.ram_used = tu_rng_one_in(r, 5) ? f->load.ram_total
                                           : f->load.ram_total / (1 + tu_rng_below(r, 8));
    f->traffic.bytes_in = tu_rng_u64(r);
    f->traffic.bytes_out = tu_rng_u64(r);
    f->traffic.period_ms = tu_rng_u64(r);

    if (!tu_rng_one_in(r, 3)) {
        uint32_t budget = 10 + tu_rng_below(r, 40 * k);
        uint32_t n = 1 + tu_rng_below(r, 6);
        f->config = tu_cv_map(a, n);
        for (uint32_t i = 0; i < n; i++) {
            char suf[16];
            snprintf(suf, sizeof suf, "~%u", i);
            f->config.v.map.kv[i].key = tu_rand_text(a, r, 40, suf);
            tu_rand_cval(a, r, &f->config.v.map.kv[i].val, 1 + tu_rng_below(r, 6), &budget);
        }
    }

    f->n_vhosts = tu_rng_below(r, 2 * k + 1);
    f->vhosts = f->n_vhosts ? tu_new(a, f->n_vhosts, sizeof *f->vhosts) : NULL;
    for (uint32_t v = 0; v < f->n_vhosts; v++) {
        struct pa_vhost *vh = &f->vhosts[v];
        vh->name = tu_rand_text(a, r, 255, NULL);
        vh->n_apps = tu_rng_below(r, k + 2);
        vh->apps = vh->n_apps ? tu_new(a, vh->n_apps, sizeof *vh->apps) : NULL;
        for (uint32_t p = 0; p < vh->n_apps; p++) {
            struct pa_app *app = &vh->apps[p];
            app->name = tu_rand_text(a, r, 255, NULL);
            app->n_instances = tu_rng_below(r, 3);
            app->instances = app->n_instances
                                 ? tu_new(a, app->n_instances, sizeof *app->instances)
                                 : NULL;
            for (uint32_t i = 0; i < app->n_instances; i++) {
                struct pa_instance *in = &app->instances[i];
                in->name = tu_rand_text(a, r, 255, NULL);
                in->n_streams = tu_rng_below(r, 2 * k + 1);
                in->streams = in->n_streams
                                  ? tu_new(a, in->n_streams, sizeof *in->streams)
                                  : NULL;
                for (uint32_t s = 0; s < in->n_streams; s++) {
                    struct pa_stream *st = &in->streams[s];
                    st->name = tu_rand_text(a, r, 255, NULL);
                    st->viewers = tu_rng_u64(r);
                    st->bitrate = tu_rng_u64(r);
                    st->bytes_in = tu_rng_u64(r);
                    st->bytes_out = tu_rng_u64(r);
                }
            }
        }
    }

    uint32_t nc = tu_rng_one_in(r, 3) ? 0 : tu_rng_below(r, scale ? 400 : 12);
    f->n_conns = nc;
    f->conns = nc ? tu_new(a, nc, sizeof *f->conns) : NULL;
    for (uint32_t i = 0; i < nc; i++) {
        struct pa_conn *c = &f->conns[i];
        c->ip.family = tu_rng_one_in(r, 3) ? 6 : 4;
        for (uint32_t b = 0; b < (c->ip.family == 4 ? 4u : 16u); b++)
            c->ip.addr[b] = (uint8_t)tu_rng_next(r);
        c->bytes_in = tu_rng_u64(r);
        c->bytes_out = tu_rng_u64(r);
    }
    return f;
}

/* ------------------------------------------------------------- equality */

#define TU_EQ_IGNORE_UNKNOWN 1u /* don't compare n_unknown */

struct tu_why {
    char *buf;
    size_t n;
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static inline bool tu_neq(struct tu_why *w, const char *fmt, ...)
{
    if (w->buf != NULL && w->n > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->buf, w->n, fmt, ap);
        va_end(ap);
    }
    return false;
}

static inline bool tu_str_eq(const char *x, const char *y)
{
    if (x == NULL || y == NULL)
        return x == y;
    return strcmp(x, y) == 0;
}

static inline bool tu_ip_eq(const struct pa_ip *x, const struct pa_ip *y)
{
    if (x->family != y->family)
        return false;
    size_t n = x->family == 4 ? 4 : x->family == 6 ? 16 : sizeof x->addr;
    return memcmp(x->addr, y->addr, n) == 0;
}

static inline bool tu_cval_eq(const struct pa_cval *x, const struct pa_cval *y,
                              struct tu_why *w, const char *path)
{
    if (x->type != y->type)
        return tu_neq(w, "%s: type %d != %d", path, (int)x->type, (int)y->type);
    switch (x->type) {
    case PA_CV_NIL:
        return true;
    case PA_CV_BOOL:
        return x->v.b == y->v.b ? true : tu_neq(w, "%s: bool", path);
    case PA_CV_INT:
        return x->v.i == y->v.i ? true
               : tu_neq(w, "%s: int %lld != %lld", path, (long long)x->v.i,
                        (long long)y->v.i);
    case PA_CV_UINT:
        return x->v.u == y->v.u ? true
               : tu_neq(w, "%s: uint %llu != %llu", path,
                        (unsigned long long)x->v.u, (unsigned long long)y->v.u);
    case PA_CV_FLOAT:
        return memcmp(&x->v.f, &y->v.f, sizeof(double)) == 0
                   ? true
                   : tu_neq(w, "%s: float %a != %a", path, x->v.f, y->v.f);
    case PA_CV_STR:
        return tu_str_eq(x->v.s, y->v.s) ? true : tu_neq(w, "%s: string", path);
    case PA_CV_ARRAY:
        if (x->v.arr.n != y->v.arr.n)
            return tu_neq(w, "%s: %u != %u items", path, x->v.arr.n, y->v.arr.n);
        for (uint32_t i = 0; i < x->v.arr.n; i++) {
            char p[200];
            snprintf(p, sizeof p, "%s[%u]", path, i);
            if (!tu_cval_eq(&x->v.arr.items[i], &y->v.arr.items[i], w, p))
                return false;
        }
        return true;
    case PA_CV_MAP:
        if (x->v.map.n != y->v.map.n)
            return tu_neq(w, "%s: %u != %u keys", path, x->v.map.n, y->v.map.n);
        for (uint32_t i = 0; i < x->v.map.n; i++) {
            char p[200];
            snprintf(p, sizeof p, "%s.{%u}", path, i);
            if (!tu_str_eq(x->v.map.kv[i].key, y->v.map.kv[i].key))
                return tu_neq(w, "%s: key", p);
            if (!tu_cval_eq(&x->v.map.kv[i].val, &y->v.map.kv[i].val, w, p))
                return false;
        }
        return true;
    }
    return tu_neq(w, "%s: bad type %d", path, (int)x->type);
}

#define TU_CMP_U(field, name)                                                  \
    do {                                                                       \
        if ((x->field) != (y->field))                                          \
            return tu_neq(&w, "%s: %llu != %llu", name,                        \
                          (unsigned long long)(x->field),                      \
                          (unsigned long long)(y->field));                     \
    } while (0)

/*
 * Deep equality of two frames: every scalar, string, IP (family + used
 * bytes), the vhost tree, connections and the config tree, floats compared
 * bitwise.  On a difference writes the first one into |why| (may be NULL).
 */
static inline bool tu_frame_eq(const struct pa_frame *x, const struct pa_frame *y,
                               unsigned flags, char *why, size_t why_len)
{
    struct tu_why w = {why, why_len};
    char p[200];
    if (why != NULL && why_len > 0)
        why[0] = '\0';
    if (x == NULL || y == NULL)
        return x == y ? true : tu_neq(&w, "one frame is NULL");
    TU_CMP_U(version, "v");
    TU_CMP_U(seq, "seq");
    TU_CMP_U(ts_ms, "ts");
    if (!tu_str_eq(x->server.name, y->server.name))
        return tu_neq(&w, "server.name");
    TU_CMP_U(server.n_ips, "server.ips count");
    for (uint32_t i = 0; i < x->server.n_ips; i++)
        if (!tu_ip_eq(&x->server.ips[i], &y->server.ips[i]))
            return tu_neq(&w, "server.ips[%u]", i);
    TU_CMP_U(server.kind, "server.kind");
    if (!tu_str_eq(x->server.version, y->server.version))
        return tu_neq(&w, "server.version");
    if (memcmp(&x->load.cpu_pct, &y->load.cpu_pct, sizeof(double)) != 0)
        return tu_neq(&w, "load.cpu: %a != %a", x->load.cpu_pct, y->load.cpu_pct);
    TU_CMP_U(load.ram_used, "load.ram_used");
    TU_CMP_U(load.ram_total, "load.ram_total");
    TU_CMP_U(traffic.bytes_in, "traffic.in");
    TU_CMP_U(traffic.bytes_out, "traffic.out");
    TU_CMP_U(traffic.period_ms, "traffic.period_ms");
    if (!tu_cval_eq(&x->config, &y->config, &w, "config"))
        return false;
    TU_CMP_U(n_vhosts, "vhosts count");
    for (uint32_t v = 0; v < x->n_vhosts; v++) {
        const struct pa_vhost *vx = &x->vhosts[v], *vy = &y->vhosts[v];
        if (!tu_str_eq(vx->name, vy->name))
            return tu_neq(&w, "vhosts[%u].name", v);
        if (vx->n_apps != vy->n_apps)
            return tu_neq(&w, "vhosts[%u].apps: %u != %u", v, vx->n_apps, vy->n_apps);
        for (uint32_t a = 0; a < vx->n_apps; a++) {
            const struct pa_app *ax = &vx->apps[a], *ay = &vy->apps[a];
            snprintf(p, sizeof p, "vhosts[%u].apps[%u]", v, a);
            if (!tu_str_eq(ax->name, ay->name))
                return tu_neq(&w, "%s.name", p);
            if (ax->n_instances != ay->n_instances)
                return tu_neq(&w, "%s.instances: %u != %u", p, ax->n_instances,
                              ay->n_instances);
            for (uint32_t i = 0; i < ax->n_instances; i++) {
                const struct pa_instance *ix = &ax->instances[i], *iy = &ay->instances[i];
                if (!tu_str_eq(ix->name, iy->name))
                    return tu_neq(&w, "%s.instances[%u].name", p, i);
                if (ix->n_streams != iy->n_streams)
                    return tu_neq(&w, "%s.instances[%u].streams: %u != %u", p, i,
                                  ix->n_streams, iy->n_streams);
                for (uint32_t s = 0; s < ix->n_streams; s++) {
                    const struct pa_stream *sx = &ix->streams[s], *sy = &iy->streams[s];
                    if (!tu_str_eq(sx->name, sy->name) || sx->viewers != sy->viewers ||
                        sx->bitrate != sy->bitrate || sx->bytes_in != sy->bytes_in ||
                        sx->bytes_out != sy->bytes_out)
                        return tu_neq(&w, "%s.instances[%u].streams[%u]", p, i, s);
                }
            }
        }
    }
    TU_CMP_U(n_conns, "conns count");
    for (uint32_t i = 0; i < x->n_conns; i++) {
        const struct pa_conn *cx = &x->conns[i], *cy = &y->conns[i];
        if (!tu_ip_eq(&cx->ip, &cy->ip))
            return tu_neq(&w, "conns[%u].ip", i);
        if (cx->bytes_in != cy->bytes_in || cx->bytes_out != cy->bytes_out)
            return tu_neq(&w, "conns[%u] counters", i);
    }
    if (!(flags & TU_EQ_IGNORE_UNKNOWN))
        TU_CMP_U(n_unknown, "n_unknown");
    return true;
}

#undef TU_CMP_U

/* Hex dump of at most 64 bytes (for failure messages). */
static inline const char *tu_hex(const uint8_t *p, size_t n, char *buf, size_t buflen)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && i < 64 && o + 4 < buflen; i++)
        o += (size_t)snprintf(buf + o, buflen - o, "%02x", p[i]);
    if (n > 64 && o + 4 < buflen)
        snprintf(buf + o, buflen - o, "...");
    return buf;
}

/* -------------------------------------------------------- msgpack writer */
#ifndef TU_NO_MSGPACK
#include <msgpack.h>

/* All tu_node memory; freed at once by tu_pool_free. */
struct tu_pool {
    void **blk;
    size_t n, cap;
};

static inline void *tu_pool_alloc(struct tu_pool *p, size_t n)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        void **b = realloc(p->blk, cap * sizeof *b);
        if (b == NULL)
            abort();
        p->blk = b;
        p->cap = cap;
    }
    void *m = calloc(1, n ? n : 1);
    if (m == NULL)
        abort();
    p->blk[p->n++] = m;
    return m;
}

static inline void tu_pool_free(struct tu_pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->blk[i]);
    free(p->blk);
    memset(p, 0, sizeof *p);
}

enum tu_t {
    TU_NIL,
    TU_BOOL,
    TU_UINT, /* packed in the shortest unsigned form */
    TU_INT,  /* packed by msgpack_pack_int64 (shortest form) */
    TU_F32,
    TU_F64,
    TU_STR,
    TU_BIN,
    TU_EXT,
    TU_ARR,
    TU_MAP, /* kids holds key, value, key, value ...; n counts pairs */
    TU_RAW, /* bytes written as they are */
};

struct tu_node {
    enum tu_t t;
    int8_t ext;
    bool b;
    uint64_t u;
    int64_t i;
    double f;
    const void *p; /* str/bin/ext/raw bytes, referenced not copied */
    size_t len;
    struct tu_node *kids;
    uint32_t n;   /* items (array) or pairs (map) */
    uint32_t cap; /* kid slots */
    int64_t count; /* >= 0: array/map header count to write instead of n */
};

static inline struct tu_node tu_n(enum tu_t t)
{
    struct tu_node x;
    memset(&x, 0, sizeof x);
    x.t = t;
    x.count = -1;
    return x;
}

static inline struct tu_node tu_nil(void) { return tu_n(TU_NIL); }
static inline struct tu_node tu_bool(bool b) { struct tu_node x = tu_n(TU_BOOL); x.b = b; return x; }
static inline struct tu_node tu_uint(uint64_t u) { struct tu_node x = tu_n(TU_UINT); x.u = u; return x; }
static inline struct tu_node tu_int(int64_t i) { struct tu_node x = tu_n(TU_INT); x.i = i; return x; }
static inline struct tu_node tu_f32(float f) { struct tu_node x = tu_n(TU_F32); x.f = f; return x; }
static inline struct tu_node tu_f64(double f) { struct tu_node x = tu_n(TU_F64); x.f = f; return x; }

static inline struct tu_node tu_strn(const void *s, size_t len)
{
    struct tu_node x = tu_n(TU_STR);
    x.p = s;
    x.len = len;
    return x;
}

static inline struct tu_node tu_str(const char *s) { return tu_strn(s, strlen(s)); }

static inline struct tu_node tu_bin(const void *p, size_t len)
{
    struct tu_node x = tu_n(TU_BIN);
    x.p = p;
    x.len = len;
    return x;
}

static inline struct tu_node tu_ext(int8_t type, const void *p, size_t len)
{
    struct tu_node x = tu_n(TU_EXT);
    x.ext = type;
    x.p = p;
    x.len = len;
    return x;
}

static inline struct tu_node tu_raw(const void *p, size_t len)
{
    struct tu_node x = tu_n(TU_RAW);
    x.p = p;
    x.len = len;
    return x;
}

static inline struct tu_node tu_arr(void) { return tu_n(TU_ARR); }
static inline struct tu_node tu_map(void) { return tu_n(TU_MAP); }

/* A pool-owned copy of |len| bytes (for building raw pokes on the fly). */
static inline void *tu_pool_dup(struct tu_pool *pool, const void *p, size_t len)
{
    void *m = tu_pool_alloc(pool, len);
    if (len)
        memcpy(m, p, len);
    return m;
}

static inline void tu_kids_reserve(struct tu_pool *pool, struct tu_node *c, uint32_t slots)
{
    if (slots <= c->cap)
        return;
    uint32_t cap = c->cap ? c->cap : 8;
    while (cap < slots)
        cap *= 2;
    struct tu_node *k = tu_pool_alloc(pool, (size_t)cap * sizeof *k);
    if (c->kids != NULL)
        memcpy(k, c->kids, (size_t)c->cap * sizeof *k);
    c->kids = k;
    c->cap = cap;
}

/* Appends an item to an array. */
static inline void tu_push(struct tu_pool *pool, struct tu_node *arr, struct tu_node v)
{
    tu_kids_reserve(pool, arr, arr->n + 1);
    arr->kids[arr->n++] = v;
}

/* Appends a key/value pair (any key node) to a map. */
static inline void tu_putk(struct tu_pool *pool, struct tu_node *map,
                           struct tu_node key, struct tu_node v)
{
    tu_kids_reserve(pool, map, 2 * (map->n + 1));
    map->kids[2 * map->n] = key;
    map->kids[2 * map->n + 1] = v;
    map->n++;
}

/* Appends "key": v (duplicates allowed, on purpose). */
static inline void tu_put(struct tu_pool *pool, struct tu_node *map,
                          const char *key, struct tu_node v)
{
    tu_putk(pool, map, tu_str(key), v);
}

static inline bool tu_key_is(const struct tu_node *k, const char *s, size_t len)
{
    return k->t == TU_STR && k->len == len && memcmp(k->p, s, len) == 0;
}

/*
 * Finds the node at |path| ("conns[17].out", "config.a.b[2]", "" = root).
 * With |parent|/|slot| also returns the containing node and the index of
 * the value in its kids.  NULL when the path does not exist.
 */
static inline struct tu_node *tu_find(struct tu_node *root, const char *path,
                                      struct tu_node **parent, uint32_t *slot)
{
    struct tu_node *cur = root;
    const char *s = path;
    while (*s != '\0') {
        if (*s == '.')
            s++;
        if (*s == '[') {
            char *end;
            unsigned long idx = strtoul(s + 1, &end, 10);
            if (*end != ']' || cur->t != TU_ARR || idx >= cur->n)
                return NULL;
            if (parent)
                *parent = cur;
            if (slot)
                *slot = (uint32_t)idx;
            cur = &cur->kids[idx];
            s = end + 1;
            continue;
        }
        size_t len = strcspn(s, ".[");
        if (cur->t != TU_MAP)
            return NULL;
        struct tu_node *next = NULL;
        for (uint32_t i = 0; i < cur->n; i++) {
            if (tu_key_is(&cur->kids[2 * i], s, len)) {
                if (parent)
                    *parent = cur;
                if (slot)
                    *slot = 2 * i + 1;
                next = &cur->kids[2 * i + 1];
                break;
            }
        }
        if (next == NULL)
            return NULL;
        cur = next;
        s += len;
    }
    return cur;
}

static inline struct tu_node *tu_at(struct tu_node *root, const char *path)
{
    return tu_find(root, path, NULL, NULL);
}

/* Replaces the value at |path|. */
static inline bool tu_set(struct tu_node *root, const char *path, struct tu_node v)
{
    struct tu_node *n = tu_at(root, path);
    if (n == NULL)
        return false;
    *n = v;
    return true;
}

/* Removes the map entry (or array item) at |path|. */
static inline bool tu_del(struct tu_node *root, const char *path)
{
    struct tu_node *parent = NULL;
    uint32_t slot = 0;
    if (tu_find(root, path, &parent, &slot) == NULL || parent == NULL)
        return false;
    if (parent->t == TU_MAP) {
        uint32_t pair = slot / 2;
        memmove(&parent->kids[2 * pair], &parent->kids[2 * pair + 2],
                (size_t)(parent->n - pair - 1) * 2 * sizeof(struct tu_node));
    } else {
        memmove(&parent->kids[slot], &parent->kids[slot + 1],
                (size_t)(parent->n - slot - 1) * sizeof(struct tu_node));
    }
    parent->n--;
    return true;
}

/* Appends "key": v to the map at |mappath|. */
static inline bool tu_add(struct tu_pool *pool, struct tu_node *root,
                          const char *mappath, const char *key, struct tu_node v)
{
    struct tu_node *m = tu_at(root, mappath);
    if (m == NULL || m->t != TU_MAP)
        return false;
    tu_put(pool, m, key, v);
    return true;
}

/* Reverses the key order of every map in the tree. */
static inline void tu_reverse_maps(struct tu_node *x)
{
    if (x->t == TU_ARR) {
        for (uint32_t i = 0; i < x->n; i++)
            tu_reverse_maps(&x->kids[i]);
    } else if (x->t == TU_MAP) {
        for (uint32_t i = 0; i < x->n / 2; i++) {
            uint32_t j = x->n - 1 - i;
            struct tu_node k = x->kids[2 * i], v = x->kids[2 * i + 1];
            x->kids[2 * i] = x->kids[2 * j];
            x->kids[2 * i + 1] = x->kids[2 * j + 1];
            x->kids[2 * j] = k;
            x->kids[2 * j + 1] = v;
        }
        for (uint32_t i = 0; i < x->n; i++)
            tu_reverse_maps(&x->kids[2 * i + 1]);
    }
}

static inline void tu_pack(msgpack_packer *pk, const struct tu_node *x)
{
    switch (x->t) {
    case TU_NIL:
        msgpack_pack_nil(pk);
        break;
    case TU_BOOL:
        if (x->b)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case TU_UINT:
        msgpack_pack_uint64(pk, x->u);
        break;
    case TU_INT:
        msgpack_pack_int64(pk, x->i);
        break;
    case TU_F32:
        msgpack_pack_float(pk, (float)x->f);
        break;
    case TU_F64:
        msgpack_pack_double(pk, x->f);
        break;
    case TU_STR:
        msgpack_pack_str_with_body(pk, x->p, x->len);
        break;
    case TU_BIN:
        msgpack_pack_bin_with_body(pk, x->p, x->len);
        break;
    case TU_EXT:
        msgpack_pack_ext_with_body(pk, x->p, x->len, x->ext);
        break;
    case TU_RAW:
        msgpack_sbuffer_write(pk->data, x->p, x->len);
        break;
    case TU_ARR:
        msgpack_pack_array(pk, x->count >= 0 ? (size_t)x->count : x->n);
        for (uint32_t i = 0; i < x->n; i++)
            tu_pack(pk, &x->kids[i]);
        break;
    case TU_MAP:
        msgpack_pack_map(pk, x->count >= 0 ? (size_t)x->count : x->n);
        for (uint32_t i = 0; i < 2 * x->n; i++)
            tu_pack(pk, &x->kids[i]);
        break;
    }
}

/* Serializes |x| into a pool-owned buffer; *len gets its size. */
static inline uint8_t *tu_bytes(struct tu_pool *pool, const struct tu_node *x, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    tu_pack(&pk, x);
    uint8_t *out = tu_pool_dup(pool, sb.data, sb.size);
    *len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return out;
}

static inline struct tu_node tu_ip_node(const struct pa_ip *ip)
{
    return tu_bin(ip->addr, ip->family == 4 ? 4 : 16);
}

static inline struct tu_node tu_cval_tree(struct tu_pool *pool, const struct pa_cval *v)
{
    switch (v->type) {
    case PA_CV_NIL:
        return tu_nil();
    case PA_CV_BOOL:
        return tu_bool(v->v.b);
    case PA_CV_INT:
        return tu_int(v->v.i);
    case PA_CV_UINT:
        return tu_uint(v->v.u);
    case PA_CV_FLOAT:
        return tu_f64(v->v.f);
    case PA_CV_STR:
        return tu_str(v->v.s);
    case PA_CV_ARRAY: {
        struct tu_node a = tu_arr();
        for (uint32_t i = 0; i < v->v.arr.n; i++)
            tu_push(pool, &a, tu_cval_tree(pool, &v->v.arr.items[i]));
        return a;
    }
    case PA_CV_MAP: {
        struct tu_node m = tu_map();
        for (uint32_t i = 0; i < v->v.map.n; i++)
            tu_put(pool, &m, v->v.map.kv[i].key, tu_cval_tree(pool, &v->v.map.kv[i].val));
        return m;
    }
    }
    return tu_raw("\xc1", 1);
}

/*
 * The frame as a tree in canonical key order (docs/.schema-notes.md,
 * "Canonical encoding"), written independently of pa_frame_encode so the
 * two can be compared byte for byte.  Strings reference |f|'s memory.
 */
static inline struct tu_node tu_frame_tree(struct tu_pool *pool, const struct pa_frame *f)
{
    struct tu_node root = tu_map();
    tu_put(pool, &root, "v", tu_uint(f->version));
    tu_put(pool, &root, "seq", tu_uint(f->seq));
    tu_put(pool, &root, "ts", tu_uint(f->ts_ms));

    struct tu_node srv = tu_map();
    tu_put(pool, &srv, "name", tu_str(f->server.name));
    if (f->server.n_ips > 0) {
        struct tu_node ips = tu_arr();
        for (uint32_t i = 0; i < f->server.n_ips; i++)
            tu_push(pool, &ips, tu_ip_node(&f->server.ips[i]));
        tu_put(pool, &srv, "ips", ips);
    }
    tu_put(pool, &srv, "kind",
           tu_str(f->server.kind == PA_KIND_NIMBLE ? "nimble"
                  : f->server.kind == PA_KIND_WOWZA ? "wowza" : "?"));
    tu_put(pool, &srv, "version", tu_str(f->server.version));
    tu_put(pool, &root, "server", srv);

    struct tu_node load = tu_map();
    tu_put(pool, &load, "cpu", tu_f64(f->load.cpu_pct));
    tu_put(pool, &load, "ram_used", tu_uint(f->load.ram_used));
    tu_put(pool, &load, "ram_total", tu_uint(f->load.ram_total));
    tu_put(pool, &root, "load", load);

    struct tu_node tr = tu_map();
    tu_put(pool, &tr, "in", tu_uint(f->traffic.bytes_in));
    tu_put(pool, &tr, "out", tu_uint(f->traffic.bytes_out));
    tu_put(pool, &tr, "period_ms", tu_uint(f->traffic.period_ms));
    tu_put(pool, &root, "traffic", tr);

    if (f->config.type == PA_CV_MAP && f->config.v.map.n > 0)
        tu_put(pool, &root, "config", tu_cval_tree(pool, &f->config));

    if (f->n_vhosts > 0) {
        struct tu_node vhs = tu_arr();
        for (uint32_t v = 0; v < f->n_vhosts; v++) {
            const struct pa_vhost *vh = &f->vhosts[v];
            struct tu_node vn = tu_map();
            tu_put(pool, &vn, "name", tu_str(vh->name));
            if (vh->n_apps > 0) {
                struct tu_node apps = tu_arr();
                for (uint32_t a = 0; a < vh->n_apps; a++) {
                    const struct pa_app *app = &vh->apps[a];
                    struct tu_node an = tu_map();
                    tu_put(pool, &an, "name", tu_str(app->name));
                    if (app->n_instances > 0) {
                        struct tu_node insts = tu_arr();
                        for (uint32_t i = 0; i < app->n_instances; i++) {
                            const struct pa_instance *in = &app->instances[i];
                            struct tu_node inn = tu_map();
                            tu_put(pool, &inn, "name", tu_str(in->name));
                            if (in->n_streams > 0) {
                                struct tu_node sts = tu_arr();
                                for (uint32_t s = 0; s < in->n_streams; s++) {
                                    const struct pa_stream *st = &in->streams[s];
                                    struct tu_node sn = tu_map();
                                    tu_put(pool, &sn, "name", tu_str(st->name));
                                    tu_put(pool, &sn, "viewers", tu_uint(st->viewers));
                                    tu_put(pool, &sn, "bitrate", tu_uint(st->bitrate));
                                    tu_put(pool, &sn, "in", tu_uint(st->bytes_in));
                                    tu_put(pool, &sn, "out", tu_uint(st->bytes_out));
                                    tu_push(pool, &sts, sn);
                                }
                                tu_put(pool, &inn, "streams", sts);
                            }
                            tu_push(pool, &insts, inn);
                        }
                        tu_put(pool, &an, "instances", insts);
                    }
                    tu_push(pool, &apps, an);
                }
                tu_put(pool, &vn, "apps", apps);
            }
            tu_push(pool, &vhs, vn);
        }
        tu_put(pool, &root, "vhosts", vhs);
    }

    if (f->n_conns > 0) {
        struct tu_node cs = tu_arr();
        for (uint32_t i = 0; i < f->n_conns; i++) {
            struct tu_node cn = tu_map();
            tu_put(pool, &cn, "ip", tu_ip_node(&f->conns[i].ip));
            tu_put(pool, &cn, "in", tu_uint(f->conns[i].bytes_in));
            tu_put(pool, &cn, "out", tu_uint(f->conns[i].bytes_out));
            tu_push(pool, &cs, cn);
        }
        tu_put(pool, &root, "conns", cs);
    }
    return root;
}

#endif /* TU_NO_MSGPACK */

#endif /* PANELGATE_TESTUTIL_H */
