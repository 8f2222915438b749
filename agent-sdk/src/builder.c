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
 * gateway checks it (builder_frame.c, with the import from msgpack).
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

#include "builder.h"
#include <panelproto/mpread.h>

const char *const pa_bld_level_key[N_LEVELS] = {"vhosts", "apps", "instances", "streams"};
const char *const pa_bld_level_what[N_LEVELS] = {"vhosts", "applications",
                                                 "application instances", "streams"};

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

char *pa_bld_xstrdup(const struct pa_allocator *m, const char *s)
{
    size_t n = strlen(s);
    char *d = xmalloc(m, n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

/* |arr| with room for |need| elements (the same pointer when it has it), or
 * NULL with |arr| untouched. */
void *pa_bld_grow(const struct pa_allocator *m, void *arr, uint32_t *cap, uint32_t need,
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

int pa_bld_ferr(panelagent_frame *f, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(f->err, sizeof f->err, fmt, ap) < 0)
        f->err[0] = '\0';
    va_end(ap);
    return code;
}

int pa_bld_nomem(panelagent_frame *f)
{
    return pa_bld_ferr(f, PANELAGENT_ENOMEM, "out of memory");
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
        return pa_bld_ferr(f, PANELAGENT_EINVAL, "%s: NULL string", path);
    size_t n = strlen(s);
    if (n < min)
        return pa_bld_ferr(f, PANELAGENT_EINVAL, "%s: empty", path);
    if (n > max)
        return pa_bld_ferr(f, PANELAGENT_ELIMIT, "%s: longer than %zu bytes", path, max);
    int rv = mp_check_text((const uint8_t *)s, n);
    if (rv == PA_FE_UTF8)
        return pa_bld_ferr(f, PANELAGENT_EINVAL, "%s: string is not valid UTF-8", path);
    if (rv != 0)
        return pa_bld_ferr(f, PANELAGENT_EINVAL, "%s: string contains a NUL byte", path);
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
        return pa_bld_ferr(f, PANELAGENT_EINVAL,
                    "server.kind: unknown agent kind %d (PANELAGENT_KIND_NIMBLE or "
                    "PANELAGENT_KIND_WOWZA)",
                    kind);
    if ((rv = check_text(f, "server.version", agent_version, 1, f->lim.max_str_len)) != 0)
        return rv;
    char *n = pa_bld_xstrdup(f->mem, name);
    char *v = n ? pa_bld_xstrdup(f->mem, agent_version) : NULL;
    if (v == NULL) {
        xfree(f->mem, n);
        return pa_bld_nomem(f);
    }
    xfree(f->mem, f->server_name);
    xfree(f->mem, f->server_version);
    f->server_name = n;
    f->server_version = v;
    f->kind = kind;
    f->has_server = true;
    return PANELAGENT_OK;
}

int pa_bld_add_server_ip(panelagent_frame *f, const struct pa_ip *ip)
{
    if (f->n_ips >= f->lim.max_server_ips)
        return pa_bld_ferr(f, PANELAGENT_ELIMIT, "server.ips: more than %u addresses",
                    f->lim.max_server_ips);
    struct pa_ip *a = pa_bld_grow(f->mem, f->ips, &f->cap_ips, f->n_ips + 1, sizeof *a);
    if (a == NULL)
        return pa_bld_nomem(f);
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
        return pa_bld_ferr(f, PANELAGENT_EINVAL, "server.ips[%u]: NULL address", f->n_ips);
    if (parse_ip(ip, &a) != 0)
        return pa_bld_ferr(f, PANELAGENT_EINVAL, "server.ips[%u]: not an IP address", f->n_ips);
    return pa_bld_add_server_ip(f, &a);
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
        return pa_bld_ferr(f, PANELAGENT_EINVAL, "load.cpu: not a finite number");
    if (cpu_pct < 0.0 || cpu_pct > 100.0)
        return pa_bld_ferr(f, PANELAGENT_EINVAL, "load.cpu: must be within 0..100");
    if (ram_total == 0)
        return pa_bld_ferr(f, PANELAGENT_EINVAL, "load.ram_total: must be >= 1");
    if (ram_used > ram_total)
        return pa_bld_ferr(f, PANELAGENT_EINVAL, "load.ram_used: exceeds load.ram_total");
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
int pa_bld_level_reserve(panelagent_frame *f, int L)
{
    struct tnode *a = pa_bld_grow(f->mem, f->lv[L], &f->cap_lv[L], f->n_lv[L] + 1, sizeof *a);
    if (a == NULL)
        return -1;
    f->lv[L] = a;
    return htab_reserve(f->mem, &f->h_lv[L], VIEW(f->lv[L]), 1);
}

/* Appends a node that owns |name|; cannot fail after level_reserve.  The
 * name index keeps the first node of a name under one parent. */
uint32_t pa_bld_level_commit(panelagent_frame *f, int L, uint32_t parent, char *name)
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
        pa_path_put(path, sizeof path, &off, pa_bld_level_key[L], strlen(pa_bld_level_key[L]));
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
                return pa_bld_ferr(f, PANELAGENT_ELIMIT, "%s: more than %u %s in the frame", path,
                            level_max(f, L), pa_bld_level_what[L]);
            }
        } else if (L == L_STREAM) {
            return pa_bld_ferr(f, PANELAGENT_EINVAL, "%s: stream already in the frame", where);
        }
        parent = found[L];
    }

    /* Reserve everything, then change the frame. */
    for (int L = first_new; L < N_LEVELS; L++) {
        if (pa_bld_level_reserve(f, L) != 0 || (copies[L] = pa_bld_xstrdup(f->mem, names[L])) == NULL) {
            for (int k = first_new; k <= L; k++)
                xfree(f->mem, copies[k]);
            return pa_bld_nomem(f);
        }
    }
    parent = first_new > 0 ? found[first_new - 1] : NONE;
    for (int L = first_new; L < N_LEVELS; L++)
        parent = pa_bld_level_commit(f, L, parent, copies[L]);
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
        return pa_bld_ferr(f, PANELAGENT_ELIMIT, "conns: more than %u connections in the frame",
                    f->lim.max_conns);
    struct pa_conn *a = pa_bld_grow(f->mem, f->conns, &f->cap_conns, f->n_conns + 1, sizeof *a);
    if (a == NULL)
        return pa_bld_nomem(f);
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
        return pa_bld_ferr(f, PANELAGENT_EINVAL, "conns[%u]: NULL address", f->n_conns);
    if (parse_ip(ip, &a) != 0)
        return pa_bld_ferr(f, PANELAGENT_EINVAL, "conns[%u]: not an IP address", f->n_conns);
    return add_conn(f, &a, bytes_in, bytes_out);
}

int panelagent_frame_add_conn_raw(panelagent_frame *f, const uint8_t *addr, size_t addr_len,
                                  uint64_t bytes_in, uint64_t bytes_out)
{
    struct pa_ip a;

    if (f == NULL)
        return PANELAGENT_EINVAL;
    if (addr == NULL || (addr_len != 4 && addr_len != 16))
        return pa_bld_ferr(f, PANELAGENT_EINVAL, "conns[%u]: address must be 4 or 16 bytes, got %zu",
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
int pa_bld_cfg_add(panelagent_frame *f, const char *key, const struct cnode *v, const char *s)
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
            return pa_bld_ferr(f, PANELAGENT_EINVAL, "%s: a value in a map needs a key", path);
        pa_path_put(path, sizeof path, &off, ".", 1);
        put_key(path, sizeof path, &off, key);
        if ((rv = check_text(f, path, key, 1, f->lim.max_name_len)) != 0)
            return rv == PANELAGENT_EINVAL && key[0] == '\0'
                       ? pa_bld_ferr(f, rv, "%s: empty key", path)
                       : rv;
        if (htab_find(&f->h_cfg, VIEW(f->cfg), parent, key) != NONE)
            return pa_bld_ferr(f, PANELAGENT_EINVAL, "%s: duplicate key", path);
    } else {
        pa_path_put_index(path, sizeof path, &off, pos);
        if (key != NULL)
            return pa_bld_ferr(f, PANELAGENT_EINVAL, "%s: a value in an array takes no key (NULL)",
                        path);
    }
    /* the config map itself counts one */
    if ((uint64_t)f->n_cfg + 2 > f->lim.max_config_nodes)
        return pa_bld_ferr(f, PANELAGENT_ELIMIT, "config: more than %u config values",
                    f->lim.max_config_nodes);
    /* config sits at depth 2; each open container adds one */
    if (container && 3u + f->n_open > f->lim.max_depth)
        return pa_bld_ferr(f, PANELAGENT_ELIMIT, "%s: nested deeper than %u", path, f->lim.max_depth);
    if (v->type == PA_CV_STR && (rv = check_text(f, path, s, 0, f->lim.max_str_len)) != 0)
        return rv;
    if (v->type == PA_CV_FLOAT && !isfinite(v->v.f))
        return pa_bld_ferr(f, PANELAGENT_EINVAL, "%s: not a finite number", path);

    /* reserve, then commit */
    char *kcopy = NULL, *scopy = NULL;
    struct cnode *a = pa_bld_grow(f->mem, f->cfg, &f->cap_cfg, f->n_cfg + 1, sizeof *a);
    if (a == NULL)
        return pa_bld_nomem(f);
    f->cfg = a;
    if ((in_map && (htab_reserve(f->mem, &f->h_cfg, VIEW(f->cfg), 1) != 0 ||
                    (kcopy = pa_bld_xstrdup(f->mem, key)) == NULL)) ||
        (v->type == PA_CV_STR && (scopy = pa_bld_xstrdup(f->mem, s)) == NULL)) {
        xfree(f->mem, kcopy);
        return pa_bld_nomem(f);
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
    return f ? pa_bld_cfg_add(f, key, &n, v) : PANELAGENT_EINVAL;
}

int panelagent_frame_config_i64(panelagent_frame *f, const char *key, int64_t v)
{
    struct cnode n = {.type = v < 0 ? PA_CV_INT : PA_CV_UINT};
    if (v < 0)
        n.v.i = v;
    else
        n.v.u = (uint64_t)v;
    return f ? pa_bld_cfg_add(f, key, &n, NULL) : PANELAGENT_EINVAL;
}

int panelagent_frame_config_f64(panelagent_frame *f, const char *key, double v)
{
    struct cnode n = {.type = PA_CV_FLOAT, .v.f = v};
    return f ? pa_bld_cfg_add(f, key, &n, NULL) : PANELAGENT_EINVAL;
}

int panelagent_frame_config_bool(panelagent_frame *f, const char *key, int v)
{
    struct cnode n = {.type = PA_CV_BOOL, .v.b = v != 0};
    return f ? pa_bld_cfg_add(f, key, &n, NULL) : PANELAGENT_EINVAL;
}

int panelagent_frame_config_begin_map(panelagent_frame *f, const char *key)
{
    struct cnode n = {.type = PA_CV_MAP};
    return f ? pa_bld_cfg_add(f, key, &n, NULL) : PANELAGENT_EINVAL;
}

int panelagent_frame_config_begin_array(panelagent_frame *f, const char *key)
{
    struct cnode n = {.type = PA_CV_ARRAY};
    return f ? pa_bld_cfg_add(f, key, &n, NULL) : PANELAGENT_EINVAL;
}

int panelagent_frame_config_end(panelagent_frame *f)
{
    if (f == NULL)
        return PANELAGENT_EINVAL;
    if (f->n_open == 0)
        return pa_bld_ferr(f, PANELAGENT_EINVAL, "config: no open map or array to end");
    f->n_open--;
    return PANELAGENT_OK;
}

