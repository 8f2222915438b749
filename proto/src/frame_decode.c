/*
 * frame_decode.c - strict decoder of the v1 stats frame (docs/PROTOCOL.md).
 *
 * One pass over the input with the cursor in mpread.c, straight into the
 * plain struct of frame.h.  Every map of the schema is described by a field
 * table and walked by decode_object(); the only recursion is along the
 * schema and the config tree, both bounded by limits.max_depth.  Every
 * allocation is sized from a count the cursor has already checked against
 * the bytes left, and is charged against limits.max_arena_bytes.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <panelproto/frame.h>
#include <panelproto/mpread.h>

#define MAX_SEGS (PA_LIMIT_MAX_DEPTH + 2)

/* A path names schema keys (SEG_KEY) and array indexes; a key the schema
 * does not know is named by its position in its map (SEG_POS, "<key 3>"),
 * never by its bytes: whatever a peer puts there - a viewer's address,
 * say - must not come back in an error (docs/PRIVACY.md).  Keys of the
 * config tree, the server's own configuration that is stored with the
 * frame, are shown escaped and truncated (SEG_PEER). */
enum seg_kind { SEG_KEY, SEG_PEER, SEG_POS, SEG_INDEX };

struct seg {
    enum seg_kind kind;
    const char *s; /* SEG_KEY: NUL-terminated; SEG_PEER: raw bytes */
    uint32_t len;  /* SEG_PEER */
    uint32_t idx;  /* SEG_INDEX, SEG_POS */
};

struct unknown_key {
    const uint8_t *p;
    uint32_t len;
    uint32_t map; /* which schema map it was found in */
};

struct dec {
    struct mp_reader r;
    const uint8_t *tok; /* first byte of the token being looked at */
    const struct pa_frame_limits *lim;
    struct pa_arena *a;
    size_t arena_used0;
    struct pa_frame_error *err;
    uint32_t depth;
    struct seg path[MAX_SEGS];
    uint32_t npath;
    uint32_t n_apps, n_instances, n_streams, n_config, n_unknown;
    uint32_t n_maps;             /* schema maps opened so far */
    struct unknown_key *unknown; /* max_unknown_keys slots, lazily */
    bool over_cap;
};

/* ---- errors and paths ------------------------------------------------ */

static void push_key(struct dec *d, const char *key)
{
    if (d->npath < MAX_SEGS)
        d->path[d->npath] = (struct seg){.kind = SEG_KEY, .s = key};
    d->npath++;
}

static void push_peer(struct dec *d, const uint8_t *p, uint32_t len)
{
    if (d->npath < MAX_SEGS)
        d->path[d->npath] = (struct seg){.kind = SEG_PEER, .s = (const char *)p, .len = len};
    d->npath++;
}

static void push_pos(struct dec *d, uint32_t pos)
{
    if (d->npath < MAX_SEGS)
        d->path[d->npath] = (struct seg){.kind = SEG_POS, .idx = pos};
    d->npath++;
}

static void push_index(struct dec *d, uint32_t idx)
{
    if (d->npath < MAX_SEGS)
        d->path[d->npath] = (struct seg){.kind = SEG_INDEX, .idx = idx};
    d->npath++;
}

static void pop(struct dec *d)
{
    d->npath--;
}

static void format_path(const struct dec *d, char *buf, size_t n)
{
    size_t off = 0;
    uint32_t segs = d->npath < MAX_SEGS ? d->npath : MAX_SEGS;

    buf[0] = '\0';
    for (uint32_t i = 0; i < segs; i++) {
        const struct seg *s = &d->path[i];
        if (s->kind == SEG_INDEX) {
            pa_path_put_index(buf, n, &off, s->idx);
            continue;
        }
        if (i > 0)
            pa_path_put(buf, n, &off, ".", 1);
        if (s->kind == SEG_KEY) {
            pa_path_put(buf, n, &off, s->s, strlen(s->s));
        } else if (s->kind == SEG_POS) {
            char tmp[24];
            int k = snprintf(tmp, sizeof tmp, "<key %u>", s->idx);
            if (k > 0)
                pa_path_put(buf, n, &off, tmp, (size_t)k);
        } else {
            pa_path_put_key(buf, n, &off, (const uint8_t *)s->s, s->len);
        }
    }
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail(struct dec *d, int code, const char *fmt, ...)
{
    struct pa_frame_error *e = d->err;
    if (!e)
        return code;
    e->code = code;
    e->offset = d->r.start ? (size_t)(d->tok - d->r.start) : 0;
    format_path(d, e->path, sizeof e->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

static int fail_cursor(struct dec *d, int code)
{
    switch (code) {
    case PA_FE_TRUNCATED:
        return fail(d, code, "input ends inside a value, or a length exceeds the input");
    case PA_FE_EXT:
        return fail(d, code, "extension type not allowed");
    case PA_FE_TOO_DEEP:
        return fail(d, code, "nested deeper than %u", d->lim->max_depth);
    default:
        return fail(d, code, "reserved byte 0xc1");
    }
}

static int type_err(struct dec *d, const char *want, const struct mp_tok *t)
{
    return fail(d, PA_FE_TYPE, "expected %s, got %s", want, mp_kind_name(t->kind));
}

/* ---- tokens and memory ----------------------------------------------- */

static int next(struct dec *d, struct mp_tok *t)
{
    d->tok = d->r.p;
    int rv = mp_next(&d->r, t);
    return rv ? fail_cursor(d, rv) : 0;
}

static int enter(struct dec *d)
{
    if (d->depth >= d->lim->max_depth)
        return fail(d, PA_FE_TOO_DEEP, "nested deeper than %u", d->lim->max_depth);
    d->depth++;
    return 0;
}

/* NULL either when the frame would pass max_arena_bytes (d->over_cap set:
 * a property of the frame, reported as too_big) or when the allocator
 * failed (a property of the moment, reported as nomem). */
static void *dalloc(struct dec *d, size_t count, size_t size)
{
    size_t spent = d->a->used - d->arena_used0;
    if (spent >= d->lim->max_arena_bytes ||
        (size && count > (d->lim->max_arena_bytes - spent) / size)) {
        d->over_cap = true;
        return NULL;
    }
    return pa_arena_calloc(d->a, count, size);
}

static int nomem(struct dec *d)
{
    if (d->over_cap)
        return fail(d, PA_FE_TOO_BIG, "frame needs more than %zu bytes of memory",
                    d->lim->max_arena_bytes);
    return fail(d, PA_FE_NOMEM, "out of memory");
}

/* ---- scalar fields ----------------------------------------------------- */

static int want_uint(struct dec *d, uint64_t *out)
{
    struct mp_tok t;
    int rv = next(d, &t);
    if (rv)
        return rv;
    if (t.kind == MP_UINT) {
        *out = t.v.u;
        return 0;
    }
    if (t.kind == MP_INT)
        return fail(d, PA_FE_RANGE, "negative");
    return type_err(d, "unsigned integer", &t);
}

static int want_number(struct dec *d, double *out)
{
    struct mp_tok t;
    int rv = next(d, &t);
    if (rv)
        return rv;
    switch (t.kind) {
    case MP_UINT:
        *out = (double)t.v.u;
        return 0;
    case MP_INT:
        *out = (double)t.v.i;
        return 0;
    case MP_FLOAT:
        if (!isfinite(t.v.f))
            return fail(d, PA_FE_NONFINITE, "not a finite number");
        *out = t.v.f;
        return 0;
    default:
        return type_err(d, "number", &t);
    }
}

static int check_text(struct dec *d, const uint8_t *p, uint32_t len, const char *what)
{
    int rv = mp_check_text(p, len);
    if (rv == PA_FE_UTF8)
        return fail(d, rv, "%s is not valid UTF-8", what);
    if (rv == PA_FE_NUL)
        return fail(d, rv, "%s contains a NUL byte", what);
    return 0;
}

/* A str of 1..max bytes (0..max when allow_empty), copied into the arena. */
static int want_text(struct dec *d, uint32_t max, bool allow_empty, const char **out)
{
    struct mp_tok t;
    int rv = next(d, &t);
    if (rv)
        return rv;
    if (t.kind != MP_STR)
        return type_err(d, "str", &t);
    if (t.v.s.len == 0 && !allow_empty)
        return fail(d, PA_FE_INVALID, "empty");
    if (t.v.s.len > max)
        return fail(d, PA_FE_TOO_LONG, "longer than %u bytes", max);
    if ((rv = check_text(d, t.v.s.p, t.v.s.len, "string")) != 0)
        return rv;
    char *s = dalloc(d, (size_t)t.v.s.len + 1, 1);
    if (!s)
        return nomem(d);
    memcpy(s, t.v.s.p, t.v.s.len);
    s[t.v.s.len] = '\0';
    *out = s;
    return 0;
}

static int want_ip(struct dec *d, struct pa_ip *ip)
{
    struct mp_tok t;
    int rv = next(d, &t);
    if (rv)
        return rv;
    if (t.kind != MP_BIN)
        return type_err(d, "bin (IP address)", &t);
    if (t.v.s.len != 4 && t.v.s.len != 16)
        return fail(d, PA_FE_IP, "IP address must be 4 or 16 bytes, got %u", t.v.s.len);
    ip->family = t.v.s.len == 4 ? 4 : 6;
    memcpy(ip->addr, t.v.s.p, t.v.s.len);
    return 0;
}

/* ---- maps of the schema ---------------------------------------------- */

/* A key of a schema map; len is strlen(name), computed once by FIELD
 * rather than on every comparison. */
struct field {
    const char *name;
    uint32_t len;
    bool required;
};

#define FIELD(name, required) {name, sizeof(name) - 1, required}

struct schema;
typedef int (*field_fn)(struct dec *d, unsigned field, void *obj);

struct schema {
    const struct field *fields;
    unsigned n;
    field_fn decode;
};

static int read_key(struct dec *d, struct mp_tok *k)
{
    int rv = next(d, k);
    if (rv)
        return rv;
    if (k->kind != MP_STR)
        return fail(d, PA_FE_TYPE, "map key must be str, got %s", mp_kind_name(k->kind));
    return check_text(d, k->v.s.p, k->v.s.len, "key");
}

/* Peer-chosen keys (unknown keys, config keys) are names too. */
static int check_key_len(struct dec *d, const struct mp_tok *k)
{
    if (k->v.s.len > d->lim->max_name_len)
        return fail(d, PA_FE_TOO_LONG, "key longer than %u bytes", d->lim->max_name_len);
    return 0;
}

static unsigned lookup(const struct schema *s, const struct mp_tok *k)
{
    uint32_t len = k->v.s.len;
    const uint8_t *p = k->v.s.p;

    for (unsigned i = 0; i < s->n; i++) {
        const struct field *f = &s->fields[i];
        /* no key of the schema is empty: p[0] is there when lengths match */
        if (f->len == len && (uint8_t)f->name[0] == p[0] && memcmp(f->name, p, len) == 0)
            return i;
    }
    return s->n;
}

/* An unknown key of a schema map: bounded, checked for duplicates within
 * its map (slots from |first| on), its value skipped whole. */
static int skip_unknown(struct dec *d, const struct mp_tok *k, uint32_t first, uint32_t map)
{
    if (d->n_unknown >= d->lim->max_unknown_keys)
        return fail(d, PA_FE_TOO_MANY, "more than %u unknown keys in the frame",
                    d->lim->max_unknown_keys);
    if (!d->unknown) {
        d->unknown = dalloc(d, d->lim->max_unknown_keys, sizeof *d->unknown);
        if (!d->unknown)
            return nomem(d);
    }
    /* slots from |first| on also hold keys of maps nested in this one */
    for (uint32_t i = first; i < d->n_unknown; i++)
        if (d->unknown[i].map == map && d->unknown[i].len == k->v.s.len &&
            memcmp(d->unknown[i].p, k->v.s.p, k->v.s.len) == 0)
            return fail(d, PA_FE_DUPKEY, "duplicate key");
    d->unknown[d->n_unknown++] = (struct unknown_key){k->v.s.p, k->v.s.len, map};

    d->tok = d->r.p;
    int rv = mp_skip(&d->r, d->depth, d->lim->max_depth);
    return rv ? fail_cursor(d, rv) : 0;
}

static int decode_object(struct dec *d, const struct schema *s, void *obj)
{
    struct mp_tok t, k;
    uint32_t seen = 0, first_unknown = d->n_unknown, map = d->n_maps++;
    int rv;

    if ((rv = next(d, &t)) != 0)
        return rv;
    if (t.kind != MP_MAP)
        return type_err(d, "map", &t);
    if ((rv = enter(d)) != 0)
        return rv;

    for (uint32_t i = 0; i < t.v.n; i++) {
        if ((rv = read_key(d, &k)) != 0)
            return rv;
        unsigned f = lookup(s, &k);
        if (f < s->n) {
            push_key(d, s->fields[f].name);
            if (seen & (1u << f))
                return fail(d, PA_FE_DUPKEY, "duplicate key");
            seen |= 1u << f;
            rv = s->decode(d, f, obj);
        } else if ((rv = check_key_len(d, &k)) == 0) {
            push_pos(d, i);
            rv = skip_unknown(d, &k, first_unknown, map);
        }
        if (rv)
            return rv;
        pop(d);
    }

    for (unsigned f = 0; f < s->n; f++) {
        if (s->fields[f].required && !(seen & (1u << f))) {
            d->tok = d->r.p;
            push_key(d, s->fields[f].name);
            return fail(d, PA_FE_MISSING, "missing");
        }
    }
    d->depth--;
    return 0;
}

/* An array of schema maps.  |used| counts items of this kind over the
 * whole frame against |limit|. */
static int decode_array(struct dec *d, const struct schema *s, size_t elem_size,
                        uint32_t *used, uint32_t limit, const char *what,
                        void **items, uint32_t *count)
{
    struct mp_tok t;
    int rv;

    if ((rv = next(d, &t)) != 0)
        return rv;
    if (t.kind != MP_ARRAY)
        return type_err(d, "array", &t);
    if (t.v.n > limit - *used)
        return fail(d, PA_FE_TOO_MANY, "more than %u %s in the frame", limit, what);
    if ((rv = enter(d)) != 0)
        return rv;
    *used += t.v.n;

    unsigned char *arr = dalloc(d, t.v.n, elem_size);
    if (!arr)
        return nomem(d);
    for (uint32_t i = 0; i < t.v.n; i++) {
        push_index(d, i);
        if ((rv = decode_object(d, s, arr + (size_t)i * elem_size)) != 0)
            return rv;
        pop(d);
    }
    d->depth--;
    *items = arr;
    *count = t.v.n;
    return 0;
}

/* ---- config tree -------------------------------------------------------- */

static int decode_cval(struct dec *d, struct pa_cval *out, bool map_only);

static int config_dup(struct dec *d, const char *key)
{
    push_peer(d, (const uint8_t *)key, (uint32_t)strlen(key));
    return fail(d, PA_FE_DUPKEY, "duplicate key");
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int check_config_dups(struct dec *d, const struct pa_ckv *kv, uint32_t n)
{
    if (n <= 16) {
        for (uint32_t i = 1; i < n; i++)
            for (uint32_t j = 0; j < i; j++)
                if (strcmp(kv[i].key, kv[j].key) == 0)
                    return config_dup(d, kv[i].key);
        return 0;
    }
    const char **keys = dalloc(d, n, sizeof *keys);
    if (!keys)
        return nomem(d);
    for (uint32_t i = 0; i < n; i++)
        keys[i] = kv[i].key;
    qsort(keys, n, sizeof *keys, cmp_key);
    for (uint32_t i = 1; i < n; i++)
        if (strcmp(keys[i], keys[i - 1]) == 0)
            return config_dup(d, keys[i]);
    return 0;
}

static int decode_config_map(struct dec *d, uint32_t n, struct pa_cval *out)
{
    struct mp_tok k;
    int rv;

    if ((rv = enter(d)) != 0)
        return rv;
    struct pa_ckv *kv = dalloc(d, n, sizeof *kv);
    if (!kv)
        return nomem(d);
    for (uint32_t i = 0; i < n; i++) {
        if ((rv = read_key(d, &k)) != 0)
            return rv;
        if (k.v.s.len == 0)
            return fail(d, PA_FE_INVALID, "empty key");
        if ((rv = check_key_len(d, &k)) != 0)
            return rv;
        char *key = dalloc(d, (size_t)k.v.s.len + 1, 1);
        if (!key)
            return nomem(d);
        memcpy(key, k.v.s.p, k.v.s.len);
        kv[i].key = key;
        push_peer(d, k.v.s.p, k.v.s.len);
        if ((rv = decode_cval(d, &kv[i].val, false)) != 0)
            return rv;
        pop(d);
    }
    if ((rv = check_config_dups(d, kv, n)) != 0)
        return rv;
    d->depth--;
    out->type = PA_CV_MAP;
    out->v.map.kv = kv;
    out->v.map.n = n;
    return 0;
}

static int decode_cval(struct dec *d, struct pa_cval *out, bool map_only)
{
    struct mp_tok t;
    int rv;

    d->tok = d->r.p;
    if (d->n_config >= d->lim->max_config_nodes)
        return fail(d, PA_FE_TOO_MANY, "more than %u config values", d->lim->max_config_nodes);
    d->n_config++;
    if ((rv = next(d, &t)) != 0)
        return rv;
    if (map_only && t.kind != MP_MAP)
        return type_err(d, "map", &t);

    switch (t.kind) {
    case MP_NIL:
        out->type = PA_CV_NIL;
        return 0;
    case MP_BOOL:
        out->type = PA_CV_BOOL;
        out->v.b = t.v.b;
        return 0;
    case MP_UINT:
        out->type = PA_CV_UINT;
        out->v.u = t.v.u;
        return 0;
    case MP_INT:
        out->type = PA_CV_INT;
        out->v.i = t.v.i;
        return 0;
    case MP_FLOAT:
        if (!isfinite(t.v.f))
            return fail(d, PA_FE_NONFINITE, "not a finite number");
        out->type = PA_CV_FLOAT;
        out->v.f = t.v.f;
        return 0;
    case MP_STR: {
        if (t.v.s.len > d->lim->max_str_len)
            return fail(d, PA_FE_TOO_LONG, "longer than %u bytes", d->lim->max_str_len);
        if ((rv = check_text(d, t.v.s.p, t.v.s.len, "string")) != 0)
            return rv;
        char *s = dalloc(d, (size_t)t.v.s.len + 1, 1);
        if (!s)
            return nomem(d);
        memcpy(s, t.v.s.p, t.v.s.len);
        out->type = PA_CV_STR;
        out->v.s = s;
        return 0;
    }
    case MP_ARRAY: {
        if ((rv = enter(d)) != 0)
            return rv;
        struct pa_cval *items = dalloc(d, t.v.n, sizeof *items);
        if (!items)
            return nomem(d);
        for (uint32_t i = 0; i < t.v.n; i++) {
            push_index(d, i);
            if ((rv = decode_cval(d, &items[i], false)) != 0)
                return rv;
            pop(d);
        }
        d->depth--;
        out->type = PA_CV_ARRAY;
        out->v.arr.items = items;
        out->v.arr.n = t.v.n;
        return 0;
    }
    case MP_MAP:
        return decode_config_map(d, t.v.n, out);
    default:
        return type_err(d, "nil, bool, number, str, array or map", &t);
    }
}

/* ---- the schema ---------------------------------------------------------- */

static const struct field stream_fields[] = {
    FIELD("name", true), FIELD("viewers", true), FIELD("bitrate", true),
    FIELD("in", true),   FIELD("out", true),
};

static int stream_field(struct dec *d, unsigned f, void *obj)
{
    struct pa_stream *s = obj;
    switch (f) {
    case 0:
        return want_text(d, d->lim->max_name_len, false, &s->name);
    case 1:
        return want_uint(d, &s->viewers);
    case 2:
        return want_uint(d, &s->bitrate);
    case 3:
        return want_uint(d, &s->bytes_in);
    default:
        return want_uint(d, &s->bytes_out);
    }
}

static const struct schema stream_schema = {stream_fields, 5, stream_field};

static const struct field instance_fields[] = {FIELD("name", true), FIELD("streams", false)};

static int instance_field(struct dec *d, unsigned f, void *obj)
{
    struct pa_instance *in = obj;
    if (f == 0)
        return want_text(d, d->lim->max_name_len, false, &in->name);
    return decode_array(d, &stream_schema, sizeof(struct pa_stream), &d->n_streams,
                        d->lim->max_streams, "streams", (void **)&in->streams, &in->n_streams);
}

static const struct schema instance_schema = {instance_fields, 2, instance_field};

static const struct field app_fields[] = {FIELD("name", true), FIELD("instances", false)};

static int app_field(struct dec *d, unsigned f, void *obj)
{
    struct pa_app *app = obj;
    if (f == 0)
        return want_text(d, d->lim->max_name_len, false, &app->name);
    return decode_array(d, &instance_schema, sizeof(struct pa_instance), &d->n_instances,
                        d->lim->max_instances, "application instances",
                        (void **)&app->instances, &app->n_instances);
}

static const struct schema app_schema = {app_fields, 2, app_field};

static const struct field vhost_fields[] = {FIELD("name", true), FIELD("apps", false)};

static int vhost_field(struct dec *d, unsigned f, void *obj)
{
    struct pa_vhost *vh = obj;
    if (f == 0)
        return want_text(d, d->lim->max_name_len, false, &vh->name);
    return decode_array(d, &app_schema, sizeof(struct pa_app), &d->n_apps, d->lim->max_apps,
                        "applications", (void **)&vh->apps, &vh->n_apps);
}

static const struct schema vhost_schema = {vhost_fields, 2, vhost_field};

static const struct field conn_fields[] = {
    FIELD("ip", true), FIELD("in", true), FIELD("out", true),
};

static int conn_field(struct dec *d, unsigned f, void *obj)
{
    struct pa_conn *c = obj;
    if (f == 0)
        return want_ip(d, &c->ip);
    return want_uint(d, f == 1 ? &c->bytes_in : &c->bytes_out);
}

static const struct schema conn_schema = {conn_fields, 3, conn_field};

static const struct field server_fields[] = {
    FIELD("name", true), FIELD("ips", false), FIELD("kind", true), FIELD("version", true),
};

static int server_ips(struct dec *d, struct pa_frame *f)
{
    struct mp_tok t;
    int rv;

    if ((rv = next(d, &t)) != 0)
        return rv;
    if (t.kind != MP_ARRAY)
        return type_err(d, "array", &t);
    if (t.v.n > d->lim->max_server_ips)
        return fail(d, PA_FE_TOO_MANY, "more than %u addresses", d->lim->max_server_ips);
    if ((rv = enter(d)) != 0)
        return rv;
    f->server.ips = dalloc(d, t.v.n, sizeof *f->server.ips);
    if (!f->server.ips)
        return nomem(d);
    for (uint32_t i = 0; i < t.v.n; i++) {
        push_index(d, i);
        if ((rv = want_ip(d, &f->server.ips[i])) != 0)
            return rv;
        pop(d);
    }
    f->server.n_ips = t.v.n;
    d->depth--;
    return 0;
}

static int server_field(struct dec *d, unsigned field, void *obj)
{
    struct pa_frame *f = obj;
    const char *kind;
    int rv;

    switch (field) {
    case 0:
        return want_text(d, d->lim->max_name_len, false, &f->server.name);
    case 1:
        return server_ips(d, f);
    case 2:
        if ((rv = want_text(d, d->lim->max_name_len, false, &kind)) != 0)
            return rv;
        f->server.kind = pa_agent_kind_parse(kind, strlen(kind));
        if (f->server.kind == 0)
            return fail(d, PA_FE_INVALID, "unknown agent kind (nimble or wowza)");
        return 0;
    default:
        return want_text(d, d->lim->max_str_len, false, &f->server.version);
    }
}

static const struct schema server_schema = {server_fields, 4, server_field};

static const struct field load_fields[] = {
    FIELD("cpu", true), FIELD("ram_used", true), FIELD("ram_total", true),
};

static int load_field(struct dec *d, unsigned field, void *obj)
{
    struct pa_frame *f = obj;
    int rv;

    switch (field) {
    case 0:
        if ((rv = want_number(d, &f->load.cpu_pct)) != 0)
            return rv;
        if (f->load.cpu_pct < 0.0 || f->load.cpu_pct > 100.0)
            return fail(d, PA_FE_RANGE, "must be within 0..100");
        return 0;
    case 1:
        return want_uint(d, &f->load.ram_used);
    default:
        if ((rv = want_uint(d, &f->load.ram_total)) != 0)
            return rv;
        if (f->load.ram_total == 0)
            return fail(d, PA_FE_RANGE, "must be >= 1");
        return 0;
    }
}

static const struct schema load_schema = {load_fields, 3, load_field};

static const struct field traffic_fields[] = {
    FIELD("in", true), FIELD("out", true), FIELD("period_ms", true),
};

static int traffic_field(struct dec *d, unsigned field, void *obj)
{
    struct pa_frame *f = obj;
    uint64_t *dst[] = {&f->traffic.bytes_in, &f->traffic.bytes_out, &f->traffic.period_ms};
    return want_uint(d, dst[field]);
}

static const struct schema traffic_schema = {traffic_fields, 3, traffic_field};

static const struct field frame_fields[] = {
    FIELD("v", true),       FIELD("seq", true),     FIELD("ts", true),
    FIELD("server", true),  FIELD("load", true),    FIELD("traffic", true),
    FIELD("config", false), FIELD("vhosts", false), FIELD("conns", false),
};

static int frame_field(struct dec *d, unsigned field, void *obj)
{
    struct pa_frame *f = obj;
    uint64_t u;
    int rv;

    switch (field) {
    case 0:
        if ((rv = want_uint(d, &u)) != 0)
            return rv;
        if (u != PA_PROTOCOL_VERSION)
            return fail(d, PA_FE_VERSION, "version not supported (this decoder speaks %d)",
                        PA_PROTOCOL_VERSION);
        f->version = (uint32_t)u;
        return 0;
    case 1:
        if ((rv = want_uint(d, &f->seq)) != 0)
            return rv;
        if (f->seq == 0)
            return fail(d, PA_FE_RANGE, "must be >= 1");
        return 0;
    case 2:
        return want_uint(d, &f->ts_ms);
    case 3:
        return decode_object(d, &server_schema, f);
    case 4:
        if ((rv = decode_object(d, &load_schema, f)) != 0)
            return rv;
        if (f->load.ram_used > f->load.ram_total) {
            push_key(d, "ram_used");
            return fail(d, PA_FE_INVALID, "exceeds load.ram_total");
        }
        return 0;
    case 5:
        return decode_object(d, &traffic_schema, f);
    case 6:
        return decode_cval(d, &f->config, true);
    case 7: {
        uint32_t used = 0;
        return decode_array(d, &vhost_schema, sizeof(struct pa_vhost), &used,
                            d->lim->max_vhosts, "vhosts", (void **)&f->vhosts, &f->n_vhosts);
    }
    default: {
        uint32_t used = 0;
        return decode_array(d, &conn_schema, sizeof(struct pa_conn), &used, d->lim->max_conns,
                            "connections", (void **)&f->conns, &f->n_conns);
    }
    }
}

static const struct schema frame_schema = {frame_fields, 9, frame_field};

int pa_frame_decode(const uint8_t *buf, size_t len, const struct pa_frame_limits *lim,
                    struct pa_arena *a, struct pa_frame **out, struct pa_frame_error *err)
{
    struct pa_frame_limits defaults;
    struct dec d;
    int rv = PA_FE_ARG;

    if (out)
        *out = NULL;
    if (err)
        memset(err, 0, sizeof *err);
    if (!lim) {
        pa_frame_limits_default(&defaults);
        lim = &defaults;
    }

    memset(&d, 0, sizeof d);
    d.lim = lim;
    d.a = a;
    d.err = err;
    mp_reader_init(&d.r, buf, buf ? len : 0);
    d.tok = buf;

    if (!a || !out || (!buf && len) || pa_frame_limits_check(lim) != 0)
        return fail(&d, PA_FE_ARG, "invalid argument or limits");
    if (len == 0)
        return fail(&d, PA_FE_EMPTY, "empty frame");
    if (len > lim->max_frame_bytes)
        return fail(&d, PA_FE_TOO_BIG, "frame of %zu bytes exceeds the limit of %zu", len,
                    lim->max_frame_bytes);

    d.arena_used0 = a->used;
    struct pa_frame *f = dalloc(&d, 1, sizeof *f);
    if (!f)
        return nomem(&d);
    f->config.type = PA_CV_MAP;

    if ((rv = decode_object(&d, &frame_schema, f)) != 0)
        return rv;
    if (d.r.p != d.r.end) {
        d.tok = d.r.p;
        return fail(&d, PA_FE_TRAILING, "%zu bytes after the frame", (size_t)(d.r.end - d.r.p));
    }
    f->n_unknown = d.n_unknown;
    *out = f;
    return 0;
}
