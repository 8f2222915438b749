/*
 * builder.c - panelagent_frame_*: the frame builder, and pa_builder_encode.
 *
 * A panelagent_frame keeps its own growable representation, not a struct
 * pa_frame: server ips and conns are plain arrays (already in the codec's
 * layout), the vhost -> app -> instance -> stream tree is four flat arrays
 * of nodes that point to their parent (found by name through one hash table
 * per level), and the config tree is one flat array of nodes with a stack of
 * the open containers.  pa_builder_encode turns that into a struct pa_frame
 * in a scratch arena (strings and the ip/conn arrays are shared, not copied)
 * and runs pa_frame_encode_checked, so the result is checked exactly as the
 * gateway checks it.
 *
 * Every setter validates first, then reserves everything it needs (array
 * capacity, hash slots, copies of strings), and only then changes the
 * frame, so a failed call, ENOMEM included, leaves it as it was.
 */
#include <arpa/inet.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frame.h"
#include "internal.h"
#include "mpread.h"

#define NONE UINT32_MAX

/* Longest config key shown in an error path, like the decoder. */

/* Levels of the stream tree. */
enum { L_VHOST, L_APP, L_INST, L_STREAM, N_LEVELS };

static const char *const level_key[N_LEVELS] = {"vhosts", "apps", "instances", "streams"};
static const char *const level_what[N_LEVELS] = {"vhosts", "applications",
                                                 "application instances", "streams"};

/* A vhost, app, instance or stream; the counters only for streams. */
struct tnode {
    char *name;
    uint32_t parent;     /* index one level up; NONE for vhosts */
    uint32_t pos;        /* index among its siblings */
    uint32_t n_children; /* nodes one level down */
    uint64_t viewers, bitrate, bytes_in, bytes_out;
};

/* A config value.  The root map is implicit (parent NONE). */
struct cnode {
    char *name; /* key in a map; NULL in an array */
    uint32_t parent;
    uint32_t pos;
    uint32_t n_children;
    enum pa_cval_type type;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double f;
        char *s;
    } v;
};

/* Open addressing over node indices, keyed by (parent, name).  slot holds
 * index + 1, 0 is empty; cap is a power of two, at most half full. */
struct htab {
    uint32_t *slot;
    uint32_t cap;
    uint32_t n;
};

/* How to read (parent, name) of entry i of a node array. */
struct keyview {
    const char *base;
    size_t stride;
};

struct panelagent_frame {
    const struct pa_allocator *mem; /* NULL: the C library */
    struct pa_frame_limits lim;
    char err[256];

    bool has_server, has_load, has_traffic;
    char *server_name, *server_version;
    int kind;
    struct pa_ip *ips;
    uint32_t n_ips, cap_ips;
    uint64_t ts_ms;
    double cpu;
    uint64_t ram_used, ram_total;
    uint64_t t_in, t_out, t_period;

    struct tnode *lv[N_LEVELS];
    uint32_t n_lv[N_LEVELS], cap_lv[N_LEVELS];
    struct htab h_lv[N_LEVELS];

    struct pa_conn *conns;
    uint32_t n_conns, cap_conns;

    struct cnode *cfg;
    uint32_t n_cfg, cap_cfg;
    uint32_t root_children;
    struct htab h_cfg;
    uint32_t open[PA_LIMIT_MAX_DEPTH + 1]; /* open containers, innermost last */
    uint32_t n_open;
};

/* ---- memory -------------------------------------------------------------- */

static void *xmalloc(const struct pa_allocator *m, size_t n)
{
    return m ? m->malloc(n, m->ud) : malloc(n);
}

static void *xrealloc(const struct pa_allocator *m, void *p, size_t n)
{
    return m ? m->realloc(p, n, m->ud) : realloc(p, n);
}

static void xfree(const struct pa_allocator *m, void *p)
{
    if (p == NULL)
        return;
    if (m)
        m->free(p, m->ud);
    else
        free(p);
}

static char *xstrdup(const struct pa_allocator *m, const char *s)
{
    size_t n = strlen(s);
    char *d = xmalloc(m, n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

/* |arr| with room for |need| elements (the same pointer when it has it), or
 * NULL with |arr| untouched. */
static void *grow(const struct pa_allocator *m, void *arr, uint32_t *cap, uint32_t need,
                  size_t elsize)
{
    if (need <= *cap && arr != NULL)
        return arr;
    size_t nc = *cap ? *cap : 8;
    while (nc < need)
        nc *= 2;
    if (nc > UINT32_MAX)
        nc = UINT32_MAX;
    if (nc < need || nc > SIZE_MAX / elsize)
        return NULL;
    void *p = xrealloc(m, arr, nc * elsize);
    if (p)
        *cap = (uint32_t)nc;
    return p;
}

/* ---- errors -------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int ferr(panelagent_frame *f, int code,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(f->err, sizeof f->err, fmt, ap) < 0)
        f->err[0] = '\0';
    va_end(ap);
    return code;
}

static int nomem(panelagent_frame *f)
{
    return ferr(f, PANELAGENT_ENOMEM, "out of memory");
}

/* Field paths are built as the decoder builds them (pa_path_* in frame.h). */
static void put_key(char *buf, size_t n, size_t *off, const char *key)
{
    pa_path_put_key(buf, n, off, (const uint8_t *)key, strlen(key));
}

/* A string of min..max bytes of valid UTF-8 (C strings hold no NUL). */
static int check_text(panelagent_frame *f, const char *path, const char *s, size_t min,
                      size_t max)
{
    if (s == NULL)
        return ferr(f, PANELAGENT_EINVAL, "%s: NULL string", path);
    size_t n = strlen(s);
    if (n < min)
        return ferr(f, PANELAGENT_EINVAL, "%s: empty", path);
    if (n > max)
        return ferr(f, PANELAGENT_ELIMIT, "%s: longer than %zu bytes", path, max);
    int rv = mp_check_text((const uint8_t *)s, n);
    if (rv == PA_FE_UTF8)
        return ferr(f, PANELAGENT_EINVAL, "%s: string is not valid UTF-8", path);
    if (rv != 0)
        return ferr(f, PANELAGENT_EINVAL, "%s: string contains a NUL byte", path);
    return 0;
}

static int parse_ip(const char *s, struct pa_ip *ip)
{
    memset(ip, 0, sizeof *ip);
    if (inet_pton(AF_INET, s, ip->addr) == 1) {
        ip->family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, s, ip->addr) == 1) {
        ip->family = 6;
        return 0;
    }
    return -1;
}

/* ---- hash tables ----------------------------------------------------------- */

#define VIEW(arr) ((struct keyview){(const char *)(arr), sizeof *(arr)})

/* tnode and cnode both start with name, parent. */
static const char *view_name(struct keyview v, uint32_t i)
{
    const char *name;
    memcpy(&name, v.base + (size_t)i * v.stride + offsetof(struct tnode, name), sizeof name);
    return name;
}

static uint32_t view_parent(struct keyview v, uint32_t i)
{
    uint32_t p;
    memcpy(&p, v.base + (size_t)i * v.stride + offsetof(struct tnode, parent), sizeof p);
    return p;
}

static uint32_t hash_key(uint32_t parent, const char *name)
{
    uint32_t h = 2166136261u;
    for (int k = 0; k < 4; k++) {
        h ^= (parent >> (8 * k)) & 0xffu;
        h *= 16777619u;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return h;
}

static uint32_t htab_find(const struct htab *t, struct keyview v, uint32_t parent,
                          const char *name)
{
    if (t->cap == 0)
        return NONE;
    for (uint32_t i = hash_key(parent, name) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        uint32_t s = t->slot[i];
        if (s == 0)
            return NONE;
        if (view_parent(v, s - 1) == parent && strcmp(view_name(v, s - 1), name) == 0)
            return s - 1;
    }
}

/* Cannot fail: the caller reserved room. */
static void htab_put(struct htab *t, struct keyview v, uint32_t idx)
{
    uint32_t i = hash_key(view_parent(v, idx), view_name(v, idx)) & (t->cap - 1);
    while (t->slot[i] != 0)
        i = (i + 1) & (t->cap - 1);
    t->slot[i] = idx + 1;
    t->n++;
}

/* Room for |extra| more entries; the table is unchanged on failure. */
static int htab_reserve(const struct pa_allocator *m, struct htab *t, struct keyview v,
                        uint32_t extra)
{
    uint64_t want = ((uint64_t)t->n + extra) * 2;
    if (want <= t->cap)
        return 0;
    uint64_t cap = t->cap ? t->cap : 16;
    while (cap < want)
        cap *= 2;
    if (cap > (1u << 30))
        return -1;
    struct htab nt = {.cap = (uint32_t)cap, .n = 0};
    nt.slot = xmalloc(m, (size_t)cap * sizeof *nt.slot);
    if (nt.slot == NULL)
        return -1;
    memset(nt.slot, 0, (size_t)cap * sizeof *nt.slot);
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->slot[i] != 0)
            htab_put(&nt, v, t->slot[i] - 1);
    xfree(m, t->slot);
    *t = nt;
    return 0;
}

/* ---- life cycle ------------------------------------------------------------ */

int pa_builder_frame_new_with(panelagent_frame **out, const struct pa_allocator *mem)
{
    if (out == NULL)
        return PANELAGENT_EINVAL;
    *out = NULL;
    panelagent_frame *f = xmalloc(mem, sizeof *f);
    if (f == NULL)
        return PANELAGENT_ENOMEM;
    memset(f, 0, sizeof *f);
    f->mem = mem;
    pa_frame_limits_default(&f->lim);
    *out = f;
    return PANELAGENT_OK;
}

int panelagent_frame_new(panelagent_frame **out)
{
    return pa_builder_frame_new_with(out, NULL);
}

void panelagent_frame_free(panelagent_frame *f)
{
    if (f == NULL)
        return;
    const struct pa_allocator *m = f->mem;
    xfree(m, f->server_name);
    xfree(m, f->server_version);
    xfree(m, f->ips);
    for (int L = 0; L < N_LEVELS; L++) {
        for (uint32_t i = 0; i < f->n_lv[L]; i++)
            xfree(m, f->lv[L][i].name);
        xfree(m, f->lv[L]);
        xfree(m, f->h_lv[L].slot);
    }
    xfree(m, f->conns);
    for (uint32_t i = 0; i < f->n_cfg; i++) {
        xfree(m, f->cfg[i].name);
        if (f->cfg[i].type == PA_CV_STR)
            xfree(m, f->cfg[i].v.s);
    }
    xfree(m, f->cfg);
    xfree(m, f->h_cfg.slot);
    xfree(m, f);
}

const char *panelagent_frame_error(const panelagent_frame *f)
{
    return f ? f->err : "";
}

/* ---- server, time, load, traffic -------------------------------------------- */

int panelagent_frame_set_server(panelagent_frame *f, const char *name, int kind,
                                const char *agent_version)
{
    int rv;

    if (f == NULL)
        return PANELAGENT_EINVAL;
    if ((rv = check_text(f, "server.name", name, 1, f->lim.max_name_len)) != 0)
        return rv;
    if (kind != PANELAGENT_KIND_NIMBLE && kind != PANELAGENT_KIND_WOWZA)
        return ferr(f, PANELAGENT_EINVAL,
                    "server.kind: unknown agent kind %d (PANELAGENT_KIND_NIMBLE or "
                    "PANELAGENT_KIND_WOWZA)",
                    kind);
    if ((rv = check_text(f, "server.version", agent_version, 1, f->lim.max_str_len)) != 0)
        return rv;
    char *n = xstrdup(f->mem, name);
    char *v = n ? xstrdup(f->mem, agent_version) : NULL;
    if (v == NULL) {
        xfree(f->mem, n);
        return nomem(f);
    }
    xfree(f->mem, f->server_name);
    xfree(f->mem, f->server_version);
    f->server_name = n;
    f->server_version = v;
    f->kind = kind;
    f->has_server = true;
    return PANELAGENT_OK;
}

static int add_server_ip(panelagent_frame *f, const struct pa_ip *ip)
{
    if (f->n_ips >= f->lim.max_server_ips)
        return ferr(f, PANELAGENT_ELIMIT, "server.ips: more than %u addresses",
                    f->lim.max_server_ips);
    struct pa_ip *a = grow(f->mem, f->ips, &f->cap_ips, f->n_ips + 1, sizeof *a);
    if (a == NULL)
        return nomem(f);
    f->ips = a;
    f->ips[f->n_ips++] = *ip;
    return PANELAGENT_OK;
}

int panelagent_frame_add_server_ip(panelagent_frame *f, const char *ip)
{
    struct pa_ip a;

    if (f == NULL)
        return PANELAGENT_EINVAL;
    if (ip == NULL)
        return ferr(f, PANELAGENT_EINVAL, "server.ips[%u]: NULL address", f->n_ips);
    if (parse_ip(ip, &a) != 0)
        return ferr(f, PANELAGENT_EINVAL, "server.ips[%u]: not an IP address", f->n_ips);
    return add_server_ip(f, &a);
}

int panelagent_frame_set_time(panelagent_frame *f, uint64_t ts_ms)
{
    if (f == NULL)
        return PANELAGENT_EINVAL;
    f->ts_ms = ts_ms;
    return PANELAGENT_OK;
}

int panelagent_frame_set_load(panelagent_frame *f, double cpu_pct, uint64_t ram_used,
                              uint64_t ram_total)
{
    if (f == NULL)
        return PANELAGENT_EINVAL;
    if (!isfinite(cpu_pct))
        return ferr(f, PANELAGENT_EINVAL, "load.cpu: not a finite number");
    if (cpu_pct < 0.0 || cpu_pct > 100.0)
        return ferr(f, PANELAGENT_EINVAL, "load.cpu: must be within 0..100");
    if (ram_total == 0)
        return ferr(f, PANELAGENT_EINVAL, "load.ram_total: must be >= 1");
    if (ram_used > ram_total)
        return ferr(f, PANELAGENT_EINVAL, "load.ram_used: exceeds load.ram_total");
    f->cpu = cpu_pct;
    f->ram_used = ram_used;
    f->ram_total = ram_total;
    f->has_load = true;
    return PANELAGENT_OK;
}

int panelagent_frame_set_traffic(panelagent_frame *f, uint64_t bytes_in, uint64_t bytes_out,
                                 uint64_t period_ms)
{
    if (f == NULL)
        return PANELAGENT_EINVAL;
    f->t_in = bytes_in;
    f->t_out = bytes_out;
    f->t_period = period_ms;
    f->has_traffic = true;
    return PANELAGENT_OK;
}

/* ---- the stream tree ---------------------------------------------------------- */

static uint32_t level_max(const panelagent_frame *f, int L)
{
    switch (L) {
    case L_VHOST: return f->lim.max_vhosts;
    case L_APP: return f->lim.max_apps;
    case L_INST: return f->lim.max_instances;
    default: return f->lim.max_streams;
    }
}

/* Room for one more node at level L (array and hash slot). */
static int level_reserve(panelagent_frame *f, int L)
{
    struct tnode *a = grow(f->mem, f->lv[L], &f->cap_lv[L], f->n_lv[L] + 1, sizeof *a);
    if (a == NULL)
        return -1;
    f->lv[L] = a;
    return htab_reserve(f->mem, &f->h_lv[L], VIEW(f->lv[L]), 1);
}

/* Appends a node that owns |name|; cannot fail after level_reserve.  The
 * name index keeps the first node of a name under one parent. */
static uint32_t level_commit(panelagent_frame *f, int L, uint32_t parent, char *name)
{
    uint32_t idx = f->n_lv[L];
    struct tnode *n = &f->lv[L][idx];
    memset(n, 0, sizeof *n);
    n->name = name;
    n->parent = parent;
    n->pos = L == L_VHOST ? idx : f->lv[L - 1][parent].n_children++;
    f->n_lv[L]++;
    if (htab_find(&f->h_lv[L], VIEW(f->lv[L]), parent, name) == NONE)
        htab_put(&f->h_lv[L], VIEW(f->lv[L]), idx);
    return idx;
}

int panelagent_frame_add_stream(panelagent_frame *f, const char *vhost, const char *app,
                                const char *instance, const char *stream, uint64_t viewers,
                                uint64_t bitrate_bps, uint64_t bytes_in, uint64_t bytes_out)
{
    const char *names[N_LEVELS] = {vhost, app, instance, stream};
    uint32_t found[N_LEVELS];
    char *copies[N_LEVELS] = {NULL, NULL, NULL, NULL};
    char path[224], where[240];
    size_t off = 0;
    uint32_t parent = NONE;
    int first_new = N_LEVELS, rv;

    if (f == NULL)
        return PANELAGENT_EINVAL;
    path[0] = '\0';
    for (int L = 0; L < N_LEVELS; L++) {
        uint32_t pos;
        found[L] = NONE;
        if (names[L] != NULL && (L == L_VHOST || parent != NONE))
            found[L] = htab_find(&f->h_lv[L], VIEW(f->lv[L]), parent, names[L]);
        if (found[L] != NONE)
            pos = f->lv[L][found[L]].pos;
        else if (L == L_VHOST)
            pos = f->n_lv[L_VHOST];
        else
            pos = parent == NONE ? 0 : f->lv[L - 1][parent].n_children;
        if (L > 0)
            pa_path_put(path, sizeof path, &off, ".", 1);
        pa_path_put(path, sizeof path, &off, level_key[L], strlen(level_key[L]));
        size_t list_off = off;
        pa_path_put_index(path, sizeof path, &off, pos);
        snprintf(where, sizeof where, "%s.name", path);
        if ((rv = check_text(f, where, names[L], 1, f->lim.max_name_len)) != 0)
            return rv;
        if (found[L] == NONE) {
            if (first_new == N_LEVELS)
                first_new = L;
            if (f->n_lv[L] >= level_max(f, L)) {
                path[list_off] = '\0';
                return ferr(f, PANELAGENT_ELIMIT, "%s: more than %u %s in the frame", path,
                            level_max(f, L), level_what[L]);
            }
        } else if (L == L_STREAM) {
            return ferr(f, PANELAGENT_EINVAL, "%s: stream already in the frame", where);
        }
        parent = found[L];
    }

    /* Reserve everything, then change the frame. */
    for (int L = first_new; L < N_LEVELS; L++) {
        if (level_reserve(f, L) != 0 || (copies[L] = xstrdup(f->mem, names[L])) == NULL) {
            for (int k = first_new; k <= L; k++)
                xfree(f->mem, copies[k]);
            return nomem(f);
        }
    }
    parent = first_new > 0 ? found[first_new - 1] : NONE;
    for (int L = first_new; L < N_LEVELS; L++)
        parent = level_commit(f, L, parent, copies[L]);
    struct tnode *s = &f->lv[L_STREAM][parent];
    s->viewers = viewers;
    s->bitrate = bitrate_bps;
    s->bytes_in = bytes_in;
    s->bytes_out = bytes_out;
    return PANELAGENT_OK;
}

/* ---- viewer connections ----------------------------------------------------------- */

static int add_conn(panelagent_frame *f, const struct pa_ip *ip, uint64_t in, uint64_t out)
{
    if (f->n_conns >= f->lim.max_conns)
        return ferr(f, PANELAGENT_ELIMIT, "conns: more than %u connections in the frame",
                    f->lim.max_conns);
    struct pa_conn *a = grow(f->mem, f->conns, &f->cap_conns, f->n_conns + 1, sizeof *a);
    if (a == NULL)
        return nomem(f);
    f->conns = a;
    f->conns[f->n_conns].ip = *ip;
    f->conns[f->n_conns].bytes_in = in;
    f->conns[f->n_conns].bytes_out = out;
    f->n_conns++;
    return PANELAGENT_OK;
}

int panelagent_frame_add_conn(panelagent_frame *f, const char *ip, uint64_t bytes_in,
                              uint64_t bytes_out)
{
    struct pa_ip a;

    if (f == NULL)
        return PANELAGENT_EINVAL;
    if (ip == NULL)
        return ferr(f, PANELAGENT_EINVAL, "conns[%u]: NULL address", f->n_conns);
    if (parse_ip(ip, &a) != 0)
        return ferr(f, PANELAGENT_EINVAL, "conns[%u]: not an IP address", f->n_conns);
    return add_conn(f, &a, bytes_in, bytes_out);
}

int panelagent_frame_add_conn_raw(panelagent_frame *f, const uint8_t *addr, size_t addr_len,
                                  uint64_t bytes_in, uint64_t bytes_out)
{
    struct pa_ip a;

    if (f == NULL)
        return PANELAGENT_EINVAL;
    if (addr == NULL || (addr_len != 4 && addr_len != 16))
        return ferr(f, PANELAGENT_EINVAL, "conns[%u]: address must be 4 or 16 bytes, got %zu",
                    f->n_conns, addr ? addr_len : (size_t)0);
    memset(&a, 0, sizeof a);
    a.family = addr_len == 4 ? 4 : 6;
    memcpy(a.addr, addr, addr_len);
    return add_conn(f, &a, bytes_in, bytes_out);
}

/* ---- the config tree ------------------------------------------------------------- */

static enum pa_cval_type container_type(const panelagent_frame *f, uint32_t idx)
{
    return idx == NONE ? PA_CV_MAP : f->cfg[idx].type;
}

static uint32_t innermost(const panelagent_frame *f)
{
    return f->n_open ? f->open[f->n_open - 1] : NONE;
}

/* "config" and the path of every open container. */
static size_t open_path(const panelagent_frame *f, char *buf, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    pa_path_put(buf, n, &off, "config", 6);
    for (uint32_t k = 0; k < f->n_open; k++) {
        const struct cnode *c = &f->cfg[f->open[k]];
        if (container_type(f, c->parent) == PA_CV_MAP) {
            pa_path_put(buf, n, &off, ".", 1);
            put_key(buf, n, &off, c->name);
        } else {
            pa_path_put_index(buf, n, &off, c->pos);
        }
    }
    return off;
}

/* Adds one value (a container is opened too).  |v| carries type and
 * scalar; |s| is the string of a PA_CV_STR. */
static int cfg_add(panelagent_frame *f, const char *key, const struct cnode *v, const char *s)
{
    char path[224];
    uint32_t parent = innermost(f);
    bool in_map = container_type(f, parent) == PA_CV_MAP;
    uint32_t pos = parent == NONE ? f->root_children : f->cfg[parent].n_children;
    bool container = v->type == PA_CV_MAP || v->type == PA_CV_ARRAY;
    size_t off = open_path(f, path, sizeof path);
    int rv;

    if (in_map) {
        if (key == NULL)
            return ferr(f, PANELAGENT_EINVAL, "%s: a value in a map needs a key", path);
        pa_path_put(path, sizeof path, &off, ".", 1);
        put_key(path, sizeof path, &off, key);
        if ((rv = check_text(f, path, key, 1, f->lim.max_name_len)) != 0)
            return rv == PANELAGENT_EINVAL && key[0] == '\0'
                       ? ferr(f, rv, "%s: empty key", path)
                       : rv;
        if (htab_find(&f->h_cfg, VIEW(f->cfg), parent, key) != NONE)
            return ferr(f, PANELAGENT_EINVAL, "%s: duplicate key", path);
    } else {
        pa_path_put_index(path, sizeof path, &off, pos);
        if (key != NULL)
            return ferr(f, PANELAGENT_EINVAL, "%s: a value in an array takes no key (NULL)",
                        path);
    }
    /* the config map itself counts one */
    if ((uint64_t)f->n_cfg + 2 > f->lim.max_config_nodes)
        return ferr(f, PANELAGENT_ELIMIT, "config: more than %u config values",
                    f->lim.max_config_nodes);
    /* config sits at depth 2; each open container adds one */
    if (container && 3u + f->n_open > f->lim.max_depth)
        return ferr(f, PANELAGENT_ELIMIT, "%s: nested deeper than %u", path, f->lim.max_depth);
    if (v->type == PA_CV_STR && (rv = check_text(f, path, s, 0, f->lim.max_str_len)) != 0)
        return rv;
    if (v->type == PA_CV_FLOAT && !isfinite(v->v.f))
        return ferr(f, PANELAGENT_EINVAL, "%s: not a finite number", path);

    /* reserve, then commit */
    char *kcopy = NULL, *scopy = NULL;
    struct cnode *a = grow(f->mem, f->cfg, &f->cap_cfg, f->n_cfg + 1, sizeof *a);
    if (a == NULL)
        return nomem(f);
    f->cfg = a;
    if ((in_map && (htab_reserve(f->mem, &f->h_cfg, VIEW(f->cfg), 1) != 0 ||
                    (kcopy = xstrdup(f->mem, key)) == NULL)) ||
        (v->type == PA_CV_STR && (scopy = xstrdup(f->mem, s)) == NULL)) {
        xfree(f->mem, kcopy);
        return nomem(f);
    }
    uint32_t idx = f->n_cfg++;
    struct cnode *c = &f->cfg[idx];
    *c = *v;
    c->name = kcopy;
    c->parent = parent;
    c->pos = pos;
    c->n_children = 0;
    if (scopy)
        c->v.s = scopy;
    if (parent == NONE)
        f->root_children++;
    else
        f->cfg[parent].n_children++;
    if (in_map)
        htab_put(&f->h_cfg, VIEW(f->cfg), idx);
    if (container)
        f->open[f->n_open++] = idx;
    return PANELAGENT_OK;
}

int panelagent_frame_config_str(panelagent_frame *f, const char *key, const char *v)
{
    struct cnode n = {.type = PA_CV_STR};
    return f ? cfg_add(f, key, &n, v) : PANELAGENT_EINVAL;
}

int panelagent_frame_config_i64(panelagent_frame *f, const char *key, int64_t v)
{
    struct cnode n = {.type = v < 0 ? PA_CV_INT : PA_CV_UINT};
    if (v < 0)
        n.v.i = v;
    else
        n.v.u = (uint64_t)v;
    return f ? cfg_add(f, key, &n, NULL) : PANELAGENT_EINVAL;
}

int panelagent_frame_config_f64(panelagent_frame *f, const char *key, double v)
{
    struct cnode n = {.type = PA_CV_FLOAT, .v.f = v};
    return f ? cfg_add(f, key, &n, NULL) : PANELAGENT_EINVAL;
}

int panelagent_frame_config_bool(panelagent_frame *f, const char *key, int v)
{
    struct cnode n = {.type = PA_CV_BOOL, .v.b = v != 0};
    return f ? cfg_add(f, key, &n, NULL) : PANELAGENT_EINVAL;
}

int panelagent_frame_config_begin_map(panelagent_frame *f, const char *key)
{
    struct cnode n = {.type = PA_CV_MAP};
    return f ? cfg_add(f, key, &n, NULL) : PANELAGENT_EINVAL;
}

int panelagent_frame_config_begin_array(panelagent_frame *f, const char *key)
{
    struct cnode n = {.type = PA_CV_ARRAY};
    return f ? cfg_add(f, key, &n, NULL) : PANELAGENT_EINVAL;
}

int panelagent_frame_config_end(panelagent_frame *f)
{
    if (f == NULL)
        return PANELAGENT_EINVAL;
    if (f->n_open == 0)
        return ferr(f, PANELAGENT_EINVAL, "config: no open map or array to end");
    f->n_open--;
    return PANELAGENT_OK;
}

/* ---- struct pa_frame ---------------------------------------------------------------- */

/* Start of each node's children in the next level's array: prefix sums. */
static uint32_t *child_starts(struct pa_arena *a, const struct tnode *nodes, uint32_t n)
{
    uint32_t *st = pa_arena_calloc(a, n ? n : 1, sizeof *st);
    if (st == NULL)
        return NULL;
    uint32_t sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        st[i] = sum;
        sum += nodes[i].n_children;
    }
    return st;
}

static int build_tree(const panelagent_frame *f, struct pa_arena *a, struct pa_frame *pf)
{
    const struct tnode *vh = f->lv[L_VHOST], *ap = f->lv[L_APP], *in = f->lv[L_INST],
                       *st = f->lv[L_STREAM];
    uint32_t nv = f->n_lv[L_VHOST], na = f->n_lv[L_APP], ni = f->n_lv[L_INST],
             ns = f->n_lv[L_STREAM];

    if (nv == 0)
        return 0;
    struct pa_vhost *V = pa_arena_calloc(a, nv, sizeof *V);
    struct pa_app *A = pa_arena_calloc(a, na ? na : 1, sizeof *A);
    struct pa_instance *I = pa_arena_calloc(a, ni ? ni : 1, sizeof *I);
    struct pa_stream *S = pa_arena_calloc(a, ns ? ns : 1, sizeof *S);
    uint32_t *app0 = child_starts(a, vh, nv), *inst0 = child_starts(a, ap, na),
             *str0 = child_starts(a, in, ni);
    if (!V || !A || !I || !S || !app0 || !inst0 || !str0)
        return -1;
    for (uint32_t i = 0; i < nv; i++)
        V[i] = (struct pa_vhost){vh[i].name, A + app0[i], vh[i].n_children};
    for (uint32_t i = 0; i < na; i++)
        A[app0[ap[i].parent] + ap[i].pos] =
            (struct pa_app){ap[i].name, I + inst0[i], ap[i].n_children};
    for (uint32_t i = 0; i < ni; i++)
        I[inst0[in[i].parent] + in[i].pos] =
            (struct pa_instance){in[i].name, S + str0[i], in[i].n_children};
    for (uint32_t i = 0; i < ns; i++)
        S[str0[st[i].parent] + st[i].pos] = (struct pa_stream){
            st[i].name, st[i].viewers, st[i].bitrate, st[i].bytes_in, st[i].bytes_out};
    pf->vhosts = V;
    pf->n_vhosts = nv;
    return 0;
}

/* Children of a container: the root's in root, node i's in kids[i]. */
static int build_config(const panelagent_frame *f, struct pa_arena *a, struct pa_frame *pf)
{
    pf->config.type = PA_CV_MAP;
    if (f->n_cfg == 0)
        return 0;
    void **kids = pa_arena_calloc(a, f->n_cfg, sizeof *kids);
    struct pa_ckv *root = pa_arena_calloc(a, f->root_children, sizeof *root);
    if (!kids || !root)
        return -1;
    for (uint32_t i = 0; i < f->n_cfg; i++) {
        const struct cnode *c = &f->cfg[i];
        if (c->type == PA_CV_MAP)
            kids[i] = pa_arena_calloc(a, c->n_children, sizeof(struct pa_ckv));
        else if (c->type == PA_CV_ARRAY)
            kids[i] = pa_arena_calloc(a, c->n_children, sizeof(struct pa_cval));
        else
            continue;
        if (kids[i] == NULL)
            return -1;
    }
    for (uint32_t i = 0; i < f->n_cfg; i++) {
        const struct cnode *c = &f->cfg[i];
        struct pa_cval *val;
        if (c->parent == NONE) {
            root[c->pos].key = c->name;
            val = &root[c->pos].val;
        } else if (f->cfg[c->parent].type == PA_CV_MAP) {
            struct pa_ckv *kv = kids[c->parent];
            kv[c->pos].key = c->name;
            val = &kv[c->pos].val;
        } else {
            val = (struct pa_cval *)kids[c->parent] + c->pos;
        }
        val->type = c->type;
        switch (c->type) {
        case PA_CV_BOOL: val->v.b = c->v.b; break;
        case PA_CV_INT: val->v.i = c->v.i; break;
        case PA_CV_UINT: val->v.u = c->v.u; break;
        case PA_CV_FLOAT: val->v.f = c->v.f; break;
        case PA_CV_STR: val->v.s = c->v.s; break;
        case PA_CV_ARRAY:
            val->v.arr.items = kids[i];
            val->v.arr.n = c->n_children;
            break;
        case PA_CV_MAP:
            val->v.map.kv = kids[i];
            val->v.map.n = c->n_children;
            break;
        default: break;
        }
    }
    pf->config.v.map.kv = root;
    pf->config.v.map.n = f->root_children;
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int pa_builder_encode(panelagent_frame *f, uint64_t seq, uint64_t now, struct pa_buf *out,
                      char *err, size_t errlen)
{
    struct pa_frame pf;
    struct pa_frame_error fe;
    struct pa_arena a;
    const char *missing = NULL;
    int rv = PANELAGENT_EINTERNAL;

    if (f == NULL || out == NULL) {
        pa_seterr(err, errlen, "invalid argument");
        return PANELAGENT_EINVAL;
    }
    if (!f->has_server)
        missing = "server: missing (panelagent_frame_set_server)";
    else if (!f->has_load)
        missing = "load: missing (panelagent_frame_set_load)";
    else if (!f->has_traffic)
        missing = "traffic: missing (panelagent_frame_set_traffic)";
    if (missing) {
        pa_seterr(err, errlen, "%s", missing);
        return ferr(f, PANELAGENT_EFRAME, "%s", missing);
    }

    memset(&pf, 0, sizeof pf);
    pf.version = PA_PROTOCOL_VERSION;
    pf.seq = seq;
    pf.ts_ms = f->ts_ms ? f->ts_ms : now;
    pf.server.name = f->server_name;
    pf.server.ips = f->ips;
    pf.server.n_ips = f->n_ips;
    pf.server.kind = (enum pa_agent_kind)f->kind;
    pf.server.version = f->server_version;
    pf.load.cpu_pct = f->cpu;
    pf.load.ram_used = f->ram_used;
    pf.load.ram_total = f->ram_total;
    pf.traffic.bytes_in = f->t_in;
    pf.traffic.bytes_out = f->t_out;
    pf.traffic.period_ms = f->t_period;
    pf.conns = f->conns;
    pf.n_conns = f->n_conns;

    pa_arena_init(&a, 0, f->mem);
    if (build_tree(f, &a, &pf) != 0 || build_config(f, &a, &pf) != 0) {
        pa_seterr(err, errlen, "out of memory");
        rv = nomem(f);
        goto out;
    }
    rv = pa_frame_encode_checked(&pf, &f->lim, out, &fe);
    if (rv == PA_FE_NOMEM) {
        pa_seterr(err, errlen, "out of memory");
        rv = nomem(f);
    } else if (rv != 0) {
        char text[sizeof fe.path + sizeof fe.msg + 8];
        pa_frame_error_format(&fe, text, sizeof text);
        pa_seterr(err, errlen, "%s", text);
        rv = ferr(f, PANELAGENT_EFRAME, "%s", text);
    } else {
        rv = PANELAGENT_OK;
    }
out:
    pa_arena_cleanup(&a);
    return rv;
}

int panelagent_frame_check(panelagent_frame *f)
{
    struct pa_buf b;

    if (f == NULL)
        return PANELAGENT_EINVAL;
    pa_buf_init(&b, f->mem);
    int rv = pa_builder_encode(f, 1, now_ms(), &b, NULL, 0);
    pa_buf_cleanup(&b);
    return rv;
}

int panelagent_frame_encode(panelagent_frame *f, uint64_t seq, uint8_t **out, size_t *len)
{
    struct pa_buf b;

    if (out)
        *out = NULL;
    if (len)
        *len = 0;
    if (f == NULL || out == NULL || len == NULL)
        return f ? ferr(f, PANELAGENT_EINVAL, "encode: NULL output") : PANELAGENT_EINVAL;
    if (seq == 0)
        return ferr(f, PANELAGENT_EINVAL, "seq: must be >= 1");
    /* the C library's allocator: the caller frees with panelagent_free */
    pa_buf_init(&b, NULL);
    int rv = pa_builder_encode(f, seq, now_ms(), &b, NULL, 0);
    if (rv != PANELAGENT_OK) {
        pa_buf_cleanup(&b);
        return rv;
    }
    *out = b.data;
    *len = b.len;
    return PANELAGENT_OK;
}

/* ---- from msgpack -------------------------------------------------------------------- */

static int import_node(panelagent_frame *f, int L, uint32_t parent, const char *name,
                       uint32_t *idx)
{
    char *copy;
    if (level_reserve(f, L) != 0 || (copy = xstrdup(f->mem, name)) == NULL)
        return -1;
    *idx = level_commit(f, L, parent, copy);
    return 0;
}

static int import_tree(panelagent_frame *f, const struct pa_frame *pf)
{
    uint32_t v, a, i, s;

    for (uint32_t vi = 0; vi < pf->n_vhosts; vi++) {
        const struct pa_vhost *V = &pf->vhosts[vi];
        if (import_node(f, L_VHOST, NONE, V->name, &v) != 0)
            return -1;
        for (uint32_t ai = 0; ai < V->n_apps; ai++) {
            const struct pa_app *A = &V->apps[ai];
            if (import_node(f, L_APP, v, A->name, &a) != 0)
                return -1;
            for (uint32_t ii = 0; ii < A->n_instances; ii++) {
                const struct pa_instance *I = &A->instances[ii];
                if (import_node(f, L_INST, a, I->name, &i) != 0)
                    return -1;
                for (uint32_t si = 0; si < I->n_streams; si++) {
                    const struct pa_stream *S = &I->streams[si];
                    if (import_node(f, L_STREAM, i, S->name, &s) != 0)
                        return -1;
                    f->lv[L_STREAM][s].viewers = S->viewers;
                    f->lv[L_STREAM][s].bitrate = S->bitrate;
                    f->lv[L_STREAM][s].bytes_in = S->bytes_in;
                    f->lv[L_STREAM][s].bytes_out = S->bytes_out;
                }
            }
        }
    }
    return 0;
}

/* Adds |v| under the innermost open container through cfg_add (the decoder
 * already applied every limit, so only ENOMEM can fail); recursion depth is
 * bounded by max_depth. */
static int import_cval(panelagent_frame *f, const char *key, const struct pa_cval *v)
{
    struct cnode n = {.type = v->type};
    const char *s = NULL;
    int rv;

    switch (v->type) {
    case PA_CV_BOOL: n.v.b = v->v.b; break;
    case PA_CV_INT: n.v.i = v->v.i; break;
    case PA_CV_UINT: n.v.u = v->v.u; break;
    case PA_CV_FLOAT: n.v.f = v->v.f; break;
    case PA_CV_STR: s = v->v.s; break;
    default: break;
    }
    if ((rv = cfg_add(f, key, &n, s)) != 0)
        return rv;
    if (v->type == PA_CV_MAP) {
        for (uint32_t k = 0; k < v->v.map.n; k++)
            if ((rv = import_cval(f, v->v.map.kv[k].key, &v->v.map.kv[k].val)) != 0)
                return rv;
        f->n_open--;
    } else if (v->type == PA_CV_ARRAY) {
        for (uint32_t k = 0; k < v->v.arr.n; k++)
            if ((rv = import_cval(f, NULL, &v->v.arr.items[k])) != 0)
                return rv;
        f->n_open--;
    }
    return 0;
}

static int import_frame(panelagent_frame *f, const struct pa_frame *pf)
{
    int rv;

    if ((rv = panelagent_frame_set_server(f, pf->server.name, (int)pf->server.kind,
                                          pf->server.version)) != 0)
        return rv;
    for (uint32_t k = 0; k < pf->server.n_ips; k++)
        if ((rv = add_server_ip(f, &pf->server.ips[k])) != 0)
            return rv;
    f->ts_ms = pf->ts_ms;
    if ((rv = panelagent_frame_set_load(f, pf->load.cpu_pct, pf->load.ram_used,
                                        pf->load.ram_total)) != 0 ||
        (rv = panelagent_frame_set_traffic(f, pf->traffic.bytes_in, pf->traffic.bytes_out,
                                           pf->traffic.period_ms)) != 0)
        return rv;
    if (import_tree(f, pf) != 0)
        return PANELAGENT_ENOMEM;
    if (pf->n_conns > 0) {
        struct pa_conn *c = grow(f->mem, f->conns, &f->cap_conns, pf->n_conns, sizeof *c);
        if (c == NULL)
            return PANELAGENT_ENOMEM;
        f->conns = c;
        memcpy(c, pf->conns, (size_t)pf->n_conns * sizeof *c);
        f->n_conns = pf->n_conns;
    }
    if (pf->config.type == PA_CV_MAP)
        for (uint32_t k = 0; k < pf->config.v.map.n; k++)
            if ((rv = import_cval(f, pf->config.v.map.kv[k].key,
                                  &pf->config.v.map.kv[k].val)) != 0)
                return rv;
    return PANELAGENT_OK;
}

int panelagent_frame_new_msgpack(panelagent_frame **out, const uint8_t *buf, size_t len,
                                 char *err, size_t errlen)
{
    struct pa_frame_limits lim;
    struct pa_frame_error fe;
    struct pa_frame *pf = NULL;
    struct pa_arena a;
    panelagent_frame *f = NULL;
    int rv;

    if (out)
        *out = NULL;
    if (out == NULL || (buf == NULL && len > 0)) {
        pa_seterr(err, errlen, "invalid argument");
        return PANELAGENT_EINVAL;
    }
    pa_frame_limits_default(&lim);
    pa_arena_init(&a, lim.max_arena_bytes, NULL);
    rv = pa_frame_decode(buf, len, &lim, &a, &pf, &fe);
    if (rv == PA_FE_NOMEM) {
        pa_seterr(err, errlen, "out of memory");
        rv = PANELAGENT_ENOMEM;
        goto out;
    }
    if (rv != 0) {
        char text[sizeof fe.path + sizeof fe.msg + 8];
        pa_frame_error_format(&fe, text, sizeof text);
        pa_seterr(err, errlen, "%s", text);
        rv = PANELAGENT_EFRAME;
        goto out;
    }
    if ((rv = panelagent_frame_new(&f)) != 0 || (rv = import_frame(f, pf)) != 0) {
        /* the decoder applied every rule the setters check: only ENOMEM */
        pa_seterr(err, errlen, "%s", f && f->err[0] ? f->err : "out of memory");
        if (rv != PANELAGENT_ENOMEM)
            rv = PANELAGENT_EINTERNAL;
        panelagent_frame_free(f);
        goto out;
    }
    *out = f;
    rv = PANELAGENT_OK;
out:
    pa_arena_cleanup(&a);
    return rv;
}
