/*
 * frame_json.c - JSON text <-> struct pa_frame, for the panelagent CLI.
 *
 * Reading goes through cJSON after a cheap pre-scan that bounds nesting and
 * refuses "\u0000" (cJSON would recurse up to 1000 levels, and cut a string
 * at the NUL).  Writing is done by hand into a pa_buf so that 64-bit
 * integers stay exact.  Semantic checks are left to the decoder.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <panelproto/frame_json.h>

#include <arpa/inet.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define TWO_POW_53 9007199254740992.0
#define U64_2_53 ((uint64_t)1 << 53)

/* ---- errors and paths ------------------------------------------------ */

struct jctx {
    struct pa_arena *a;
    struct pa_frame_error *err;
    size_t plen;
    char path[256];
};

static void copy_trunc(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src);
    if (len >= n)
        len = n - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static int set_err(struct pa_frame_error *err, int code, size_t offset,
                   const char *path, const char *msg)
{
    if (err) {
        err->code = code;
        err->offset = offset;
        copy_trunc(err->path, sizeof err->path, path);
        copy_trunc(err->msg, sizeof err->msg, msg);
    }
    return code;
}

static void path_add(struct jctx *c, const char *s, size_t n)
{
    pa_path_put(c->path, sizeof c->path, &c->plen, s, n);
}

/* Appends ".key" ("key" at the root) as the decoder does (pa_path_put_key).
 * Returns the old length for path_pop(). */
static size_t path_key(struct jctx *c, const char *key)
{
    size_t old = c->plen;

    if (old)
        path_add(c, ".", 1);
    pa_path_put_key(c->path, sizeof c->path, &c->plen, (const uint8_t *)key, strlen(key));
    return old;
}

static size_t path_index(struct jctx *c, size_t i)
{
    size_t old = c->plen;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "[%zu]", i);
    path_add(c, buf, (size_t)n);
    return old;
}

static void path_pop(struct jctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

/* Reports |code| at the current path, plus |key| when not NULL. */
static int fail(struct jctx *c, const char *key, int code, const char *msg)
{
    size_t old = key ? path_key(c, key) : c->plen;
    set_err(c->err, code, 0, c->path, msg);
    path_pop(c, old);
    return code;
}

/* Syntax is cJSON's job; this only refuses NUL bytes, "\u0000" and nesting
 * deeper than PA_JSON_MAX_DEPTH, before anything recurses. */
static int prescan(const char *s, size_t len, struct pa_frame_error *err)
{
    unsigned depth = 0;
    bool in_str = false;

    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '\0')
            return set_err(err, PA_FE_INVALID, i, "", "invalid JSON");
        if (in_str) {
            if (ch == '"') {
                in_str = false;
            } else if (ch == '\\') {
                if (i + 5 < len && s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0)
                    return set_err(err, PA_FE_NUL, i, "", "\\u0000 in a string");
                i++; /* an escaped character cannot end the string */
            }
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '[' || ch == '{') {
            if (++depth > PA_JSON_MAX_DEPTH)
                return set_err(err, PA_FE_TOO_DEEP, i, "", "nesting too deep");
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

/* ---- scalars ----------------------------------------------------------- */

/* A uint64 field: an integral JSON number in [0, 2^53], or a string of
 * decimal digits for anything up to UINT64_MAX. */
static int u64_of(struct jctx *c, const cJSON *v, const char *key, uint64_t *out)
{
    if (cJSON_IsString(v) && v->valuestring) {
        const char *s = v->valuestring;
        size_t n = strlen(s);
        uint64_t acc = 0;
        if (n == 0 || strspn(s, "0123456789") != n)
            return fail(c, key, PA_FE_TYPE, "not an unsigned integer string");
        if (n > 20)
            return fail(c, key, PA_FE_RANGE, "too big");
        for (size_t i = 0; i < n; i++) {
            unsigned d = (unsigned)(s[i] - '0');
            if (acc > (UINT64_MAX - d) / 10)
                return fail(c, key, PA_FE_RANGE, "too big");
            acc = acc * 10 + d;
        }
        *out = acc;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return fail(c, key, PA_FE_TYPE, "not an unsigned integer");
    double d = v->valuedouble;
    if (d < 0)
        return fail(c, key, PA_FE_RANGE, "negative");
    if (!isfinite(d) || d > TWO_POW_53)
        return fail(c, key, PA_FE_RANGE, "above 2^53: give it as a string");
    if ((double)(uint64_t)d != d)
        return fail(c, key, PA_FE_TYPE, "not an integer");
    *out = (uint64_t)d;
    return 0;
}

static int str_of(struct jctx *c, const cJSON *v, const char *key, const char **out)
{
    if (!cJSON_IsString(v) || !v->valuestring)
        return fail(c, key, PA_FE_TYPE, "not a string");
    *out = pa_arena_strndup(c->a, v->valuestring, strlen(v->valuestring));
    return *out ? 0 : fail(c, key, PA_FE_NOMEM, "out of memory");
}

static int ip_of(struct jctx *c, const cJSON *v, const char *key, struct pa_ip *ip)
{
    if (!cJSON_IsString(v) || !v->valuestring)
        return fail(c, key, PA_FE_TYPE, "not a string");
    memset(ip, 0, sizeof *ip);
    if (inet_pton(AF_INET, v->valuestring, ip->addr) == 1)
        ip->family = 4;
    else if (inet_pton(AF_INET6, v->valuestring, ip->addr) == 1)
        ip->family = 6;
    else
        return fail(c, key, PA_FE_IP, "not an IP address");
    return 0;
}

/* ---- objects and arrays ---------------------------------------------- */

struct field {
    const char *key;
    bool required;
};

/* Checks that |obj| is an object whose keys all appear in |fields|, each at
 * most once, and that the required ones are there; found[i] gets the value
 * of field i or NULL. */
static int get_fields(struct jctx *c, const cJSON *obj, const struct field *fields,
                      size_t n, const cJSON **found)
{
    if (!cJSON_IsObject(obj))
        return fail(c, NULL, PA_FE_TYPE, "not an object");
    for (size_t i = 0; i < n; i++)
        found[i] = NULL;
    for (const cJSON *it = obj->child; it; it = it->next) {
        const char *k = it->string ? it->string : "";
        size_t i = 0;
        while (i < n && strcmp(k, fields[i].key) != 0)
            i++;
        if (i == n)
            return fail(c, k, PA_FE_INVALID, "unknown key");
        if (found[i])
            return fail(c, k, PA_FE_DUPKEY, "duplicate key");
        found[i] = it;
    }
    for (size_t i = 0; i < n; i++)
        if (fields[i].required && !found[i])
            return fail(c, fields[i].key, PA_FE_MISSING, "missing");
    return 0;
}

static int count_items(struct jctx *c, const cJSON *v, uint32_t *n)
{
    size_t k = 0;
    for (const cJSON *it = v->child; it; it = it->next)
        k++;
    if (k > UINT32_MAX)
        return fail(c, NULL, PA_FE_TOO_MANY, "too many items");
    *n = (uint32_t)k;
    return 0;
}

typedef int (*item_fn)(struct jctx *c, const cJSON *v, void *item);

/* Parses the array |v| (under |key|) into a new arena array of |size|-byte
 * items, each filled by |fn|.  An empty array gives NULL, 0. */
static int list_of(struct jctx *c, const cJSON *v, const char *key, size_t size,
                   item_fn fn, void **items, uint32_t *count)
{
    size_t old = path_key(c, key);
    unsigned char *arr = NULL;
    uint32_t n = 0, i = 0;
    int rv;

    if (!cJSON_IsArray(v))
        rv = fail(c, NULL, PA_FE_TYPE, "not an array");
    else if ((rv = count_items(c, v, &n)) == 0 && n &&
             !(arr = pa_arena_calloc(c->a, n, size)))
        rv = fail(c, NULL, PA_FE_NOMEM, "out of memory");
    for (const cJSON *it = v->child; rv == 0 && it; it = it->next, i++) {
        size_t o = path_index(c, i);
        rv = fn(c, it, arr + (size_t)i * size);
        path_pop(c, o);
    }
    if (rv == 0) {
        *items = arr;
        *count = n;
    }
    path_pop(c, old);
    return rv;
}

static int ip_item(struct jctx *c, const cJSON *v, void *item)
{
    return ip_of(c, v, NULL, item);
}

static int stream_of(struct jctx *c, const cJSON *v, void *item)
{
    static const struct field fields[] = {
        {"name", true}, {"viewers", true}, {"bitrate", true}, {"in", true}, {"out", true},
    };
    const cJSON *fv[5];
    struct pa_stream *s = item;
    int rv;

    if ((rv = get_fields(c, v, fields, 5, fv)) || (rv = str_of(c, fv[0], "name", &s->name)) ||
        (rv = u64_of(c, fv[1], "viewers", &s->viewers)) ||
        (rv = u64_of(c, fv[2], "bitrate", &s->bitrate)) ||
        (rv = u64_of(c, fv[3], "in", &s->bytes_in)))
        return rv;
    return u64_of(c, fv[4], "out", &s->bytes_out);
}

/* {name, <list>?}: the shape vhost, app and instance share. */
static int named_of(struct jctx *c, const cJSON *v, const char **name, const char *list,
                    size_t size, item_fn fn, void **items, uint32_t *n)
{
    const struct field fields[] = {{"name", true}, {list, false}};
    const cJSON *fv[2];
    int rv;

    if ((rv = get_fields(c, v, fields, 2, fv)) || (rv = str_of(c, fv[0], "name", name)))
        return rv;
    return fv[1] ? list_of(c, fv[1], list, size, fn, items, n) : 0;
}

static int instance_of(struct jctx *c, const cJSON *v, void *item)
{
    struct pa_instance *in = item;
    void *p = NULL;
    int rv = named_of(c, v, &in->name, "streams", sizeof *in->streams, stream_of, &p,
                      &in->n_streams);
    in->streams = p;
    return rv;
}

static int app_of(struct jctx *c, const cJSON *v, void *item)
{
    struct pa_app *app = item;
    void *p = NULL;
    int rv = named_of(c, v, &app->name, "instances", sizeof *app->instances, instance_of,
                      &p, &app->n_instances);
    app->instances = p;
    return rv;
}

static int vhost_of(struct jctx *c, const cJSON *v, void *item)
{
    struct pa_vhost *vh = item;
    void *p = NULL;
    int rv = named_of(c, v, &vh->name, "apps", sizeof *vh->apps, app_of, &p, &vh->n_apps);
    vh->apps = p;
    return rv;
}

static int conn_of(struct jctx *c, const cJSON *v, void *item)
{
    static const struct field fields[] = {{"ip", true}, {"in", true}, {"out", true}};
    const cJSON *fv[3];
    struct pa_conn *cn = item;
    int rv;

    if ((rv = get_fields(c, v, fields, 3, fv)) || (rv = ip_of(c, fv[0], "ip", &cn->ip)) ||
        (rv = u64_of(c, fv[1], "in", &cn->bytes_in)))
        return rv;
    return u64_of(c, fv[2], "out", &cn->bytes_out);
}

/* ---- config ------------------------------------------------------------ */

/* |depth| counts the frame object as 1, like the decoder. */
static int cval_of(struct jctx *c, const cJSON *v, struct pa_cval *cv, unsigned depth)
{
    bool is_map = cJSON_IsObject(v);
    uint32_t n = 0, i = 0;
    void *p;
    int rv;

    if (depth > PA_JSON_MAX_DEPTH)
        return fail(c, NULL, PA_FE_TOO_DEEP, "nesting too deep");
    if (cJSON_IsNull(v)) {
        cv->type = PA_CV_NIL;
    } else if (cJSON_IsBool(v)) {
        cv->type = PA_CV_BOOL;
        cv->v.b = cJSON_IsTrue(v);
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!isfinite(d))
            return fail(c, NULL, PA_FE_NONFINITE, "not finite");
        if (d < -TWO_POW_53 || d > TWO_POW_53 || (double)(int64_t)d != d) {
            cv->type = PA_CV_FLOAT;
            cv->v.f = d;
        } else if (d < 0) {
            cv->type = PA_CV_INT;
            cv->v.i = (int64_t)d;
        } else {
            cv->type = PA_CV_UINT;
            cv->v.u = (uint64_t)d;
        }
    } else if (cJSON_IsString(v)) {
        cv->type = PA_CV_STR;
        return str_of(c, v, NULL, &cv->v.s);
    } else if (!is_map && !cJSON_IsArray(v)) {
        return fail(c, NULL, PA_FE_TYPE, "unsupported JSON value");
    } else {
        cv->type = is_map ? PA_CV_MAP : PA_CV_ARRAY;
        if ((rv = count_items(c, v, &n)) != 0 || n == 0)
            return rv;
        if (!(p = pa_arena_calloc(c->a, n, is_map ? sizeof(struct pa_ckv)
                                                  : sizeof(struct pa_cval))))
            return fail(c, NULL, PA_FE_NOMEM, "out of memory");
        if (is_map) {
            cv->v.map.kv = p;
            cv->v.map.n = n;
        } else {
            cv->v.arr.items = p;
            cv->v.arr.n = n;
        }
        for (const cJSON *it = v->child; it; it = it->next, i++) {
            const char *k = it->string ? it->string : "";
            size_t old = is_map ? path_key(c, k) : path_index(c, i);
            if (is_map && !(cv->v.map.kv[i].key = pa_arena_strndup(c->a, k, strlen(k))))
                rv = fail(c, NULL, PA_FE_NOMEM, "out of memory");
            else
                rv = cval_of(c, it, is_map ? &cv->v.map.kv[i].val : &cv->v.arr.items[i],
                             depth + 1);
            path_pop(c, old);
            if (rv)
                return rv;
        }
    }
    return 0;
}

/* ---- the frame --------------------------------------------------------- */

static int server_of(struct jctx *c, const cJSON *v, struct pa_frame *f)
{
    static const struct field fields[] = {
        {"name", true}, {"ips", false}, {"kind", true}, {"version", true},
    };
    const cJSON *fv[4];
    const char *kind = NULL;
    void *p = NULL;
    size_t old = path_key(c, "server");
    int rv;

    if ((rv = get_fields(c, v, fields, 4, fv)) ||
        (rv = str_of(c, fv[0], "name", &f->server.name)) ||
        (fv[1] && (rv = list_of(c, fv[1], "ips", sizeof(struct pa_ip), ip_item, &p,
                                &f->server.n_ips))) ||
        (rv = str_of(c, fv[2], "kind", &kind)))
        goto out;
    f->server.ips = p;
    f->server.kind = pa_agent_kind_parse(kind, strlen(kind));
    if (f->server.kind == 0)
        rv = fail(c, "kind", PA_FE_INVALID, "unknown agent kind");
    else
        rv = str_of(c, fv[3], "version", &f->server.version);
out:
    path_pop(c, old);
    return rv;
}

static int load_traffic_of(struct jctx *c, const cJSON *const *fv, struct pa_frame *f)
{
    static const struct field load[] = {{"cpu", true}, {"ram_used", true}, {"ram_total", true}};
    static const struct field traffic[] = {{"in", true}, {"out", true}, {"period_ms", true}};
    const cJSON *sub[3];
    size_t old = path_key(c, "load");
    int rv;

    if ((rv = get_fields(c, fv[0], load, 3, sub)) != 0)
        goto out;
    if (!cJSON_IsNumber(sub[0]))
        rv = fail(c, "cpu", PA_FE_TYPE, "not a number");
    else if (!isfinite(f->load.cpu_pct = sub[0]->valuedouble))
        rv = fail(c, "cpu", PA_FE_NONFINITE, "not finite");
    if (rv || (rv = u64_of(c, sub[1], "ram_used", &f->load.ram_used)) ||
        (rv = u64_of(c, sub[2], "ram_total", &f->load.ram_total)))
        goto out;
    path_pop(c, old);
    old = path_key(c, "traffic");
    if ((rv = get_fields(c, fv[1], traffic, 3, sub)) ||
        (rv = u64_of(c, sub[0], "in", &f->traffic.bytes_in)) ||
        (rv = u64_of(c, sub[1], "out", &f->traffic.bytes_out)))
        goto out;
    rv = u64_of(c, sub[2], "period_ms", &f->traffic.period_ms);
out:
    path_pop(c, old);
    return rv;
}

enum { F_V, F_SEQ, F_TS, F_SERVER, F_LOAD, F_TRAFFIC, F_CONFIG, F_VHOSTS, F_CONNS, F_N };

static int frame_of(struct jctx *c, const cJSON *v, struct pa_frame *f)
{
    static const struct field fields[F_N] = {
        {"v", true},      {"seq", true},     {"ts", true},     {"server", true}, {"load", true},
        {"traffic", true}, {"config", false}, {"vhosts", false}, {"conns", false},
    };
    const cJSON *fv[F_N];
    void *vh = NULL, *cn = NULL;
    uint64_t ver = 0;
    int rv;

    if ((rv = get_fields(c, v, fields, F_N, fv)) || (rv = u64_of(c, fv[F_V], "v", &ver)))
        return rv;
    if (ver > UINT32_MAX)
        return fail(c, "v", PA_FE_RANGE, "too big");
    f->version = (uint32_t)ver;
    if ((rv = u64_of(c, fv[F_SEQ], "seq", &f->seq)) ||
        (rv = u64_of(c, fv[F_TS], "ts", &f->ts_ms)) ||
        (rv = server_of(c, fv[F_SERVER], f)) || (rv = load_traffic_of(c, fv + F_LOAD, f)))
        return rv;

    f->config.type = PA_CV_MAP;
    if (fv[F_CONFIG]) {
        size_t old = path_key(c, "config");
        if (!cJSON_IsObject(fv[F_CONFIG]))
            rv = fail(c, NULL, PA_FE_TYPE, "not an object");
        else
            rv = cval_of(c, fv[F_CONFIG], &f->config, 2);
        path_pop(c, old);
    }
    if (rv || (fv[F_VHOSTS] && (rv = list_of(c, fv[F_VHOSTS], "vhosts", sizeof *f->vhosts,
                                             vhost_of, &vh, &f->n_vhosts))) ||
        (fv[F_CONNS] && (rv = list_of(c, fv[F_CONNS], "conns", sizeof *f->conns, conn_of,
                                      &cn, &f->n_conns))))
        return rv;
    f->vhosts = vh;
    f->conns = cn;
    return 0;
}

static bool is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

int pa_frame_from_json(const char *text, size_t len, struct pa_arena *a,
                       struct pa_frame **out, struct pa_frame_error *err)
{
    struct jctx c = {.a = a, .err = err};
    const char *end = NULL;
    cJSON *root = NULL;
    struct pa_frame *f;
    size_t blank = 0;
    int rv = PA_FE_ARG;

    set_err(err, 0, 0, "", "");
    if (out)
        *out = NULL;
    if (!text || !a || !out)
        return set_err(err, rv, 0, "", "NULL argument");
    while (blank < len && is_ws(text[blank]))
        blank++;
    if (blank == len)
        return set_err(err, PA_FE_EMPTY, 0, "", "no input");
    if ((rv = prescan(text, len, err)) != 0)
        return rv;

    /* not require_null_terminated: with a length, cJSON 1.7.15 then fails
     * input that is not followed by a NUL; trailing bytes are checked here */
    root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    while (root && end && end < text + len && is_ws(*end))
        end++;
    if (!root || end != text + len) {
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        rv = set_err(err, PA_FE_INVALID, off, "", "invalid JSON");
    } else if (!(f = pa_arena_calloc(a, 1, sizeof *f))) {
        rv = set_err(err, PA_FE_NOMEM, 0, "", "out of memory");
    } else if ((rv = frame_of(&c, root, f)) == 0) {
        *out = f;
    }
    cJSON_Delete(root);
    return rv;
}

/* ---- writing ------------------------------------------------------------ */

struct jw {
    struct pa_buf *b;
    bool pretty;
    bool first; /* nothing written yet in the open container */
    unsigned depth;
    int rv;
};

static void put(struct jw *w, const char *s, size_t n)
{
    if (w->rv == 0 && pa_buf_append(w->b, s, n) != 0)
        w->rv = PA_FE_NOMEM;
}

static void put_s(struct jw *w, const char *s)
{
    put(w, s, strlen(s));
}

static void newline(struct jw *w)
{
    if (!w->pretty)
        return;
    put(w, "\n", 1);
    for (unsigned i = 0; i < w->depth; i++)
        put(w, "  ", 2);
}

/* Before each member or element. */
static void sep(struct jw *w)
{
    if (!w->first)
        put(w, ",", 1);
    newline(w);
    w->first = false;
}

static void open_c(struct jw *w, char ch)
{
    put(w, &ch, 1);
    w->depth++;
    w->first = true;
}

static void close_c(struct jw *w, char ch)
{
    w->depth--;
    if (!w->first)
        newline(w);
    put(w, &ch, 1);
    w->first = false;
}

/* Length of the valid UTF-8 sequence at p (strict: no overlongs, no
 * surrogates, <= U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
    uint32_t cp = p[0] & (0x7fu >> len);

    if (p[0] < 0x80)
        return 1;
    if (p[0] < 0xc2 || p[0] > 0xf4 || n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static void put_str(struct jw *w, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n, start = 0, k;
    char ubuf[8];

    if (!s) {
        put_s(w, "null");
        return;
    }
    n = strlen(s);
    put(w, "\"", 1);
    for (size_t i = 0; i < n; i += k) {
        const char *esc = NULL;
        k = 1;
        if (p[i] == '"' || p[i] == '\\') {
            snprintf(ubuf, sizeof ubuf, "\\%c", p[i]);
            esc = ubuf;
        } else if (p[i] < 0x20) {
            snprintf(ubuf, sizeof ubuf, "\\u%04x", p[i]);
            esc = ubuf;
        } else if (p[i] >= 0x80 && (k = utf8_len(p + i, n - i)) == 0) {
            esc = "\\ufffd";
            k = 1;
        }
        if (esc) {
            put(w, s + start, i - start);
            put_s(w, esc);
            start = i + k;
        }
    }
    put(w, s + start, n - start);
    put(w, "\"", 1);
}

/* Exact digits; quoted when |quote_big| and above 2^53, so that JSON
 * readers that hold numbers as doubles keep the value. */
static void put_u64(struct jw *w, uint64_t v, bool quote_big)
{
    char buf[32];
    bool q = quote_big && v > U64_2_53;
    int n = snprintf(buf, sizeof buf, "%s%" PRIu64 "%s", q ? "\"" : "", v, q ? "\"" : "");
    put(w, buf, (size_t)n);
}

/* Shortest %.*g that reads back to d, with the locale's decimal point
 * turned into '.', and ".0" added when it would read as an integer. */
static void put_double(struct jw *w, double d)
{
    char buf[40];
    const char *dp = localeconv()->decimal_point;
    char *q;

    if (!isfinite(d)) {
        put_s(w, "null");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (dp && dp[0] && dp[0] != '.' && !dp[1] && (q = strchr(buf, dp[0])))
        *q = '.';
    put_s(w, buf);
    if (strspn(buf, "-0123456789") == strlen(buf))
        put(w, ".0", 2);
}

static void put_ip(struct jw *w, const struct pa_ip *ip)
{
    char buf[INET6_ADDRSTRLEN + 2] = "\"";
    int af = ip->family == 4 ? AF_INET : ip->family == 6 ? AF_INET6 : -1;

    if (af < 0 || !inet_ntop(af, ip->addr, buf + 1, INET6_ADDRSTRLEN)) {
        put_s(w, "null");
        return;
    }
    put_s(w, buf);
    put(w, "\"", 1);
}

static void key(struct jw *w, const char *k)
{
    sep(w);
    put_str(w, k);
    put(w, ": ", w->pretty ? 2 : 1);
}

static void key_u64(struct jw *w, const char *k, uint64_t v)
{
    key(w, k);
    put_u64(w, v, true);
}

static void key_str(struct jw *w, const char *k, const char *s)
{
    key(w, k);
    put_str(w, s);
}

/* Opens "k": [ when n > 0; returns whether it did. */
static bool key_list(struct jw *w, const char *k, uint32_t n)
{
    if (n) {
        key(w, k);
        open_c(w, '[');
    }
    return n > 0;
}

static void write_cval(struct jw *w, const struct pa_cval *cv, unsigned depth)
{
    char buf[32];

    if (depth > PA_JSON_MAX_DEPTH) {
        w->rv = w->rv ? w->rv : PA_FE_TOO_DEEP;
        return;
    }
    switch (cv->type) {
    case PA_CV_BOOL:
        put_s(w, cv->v.b ? "true" : "false");
        break;
    case PA_CV_INT:
        snprintf(buf, sizeof buf, "%" PRId64, cv->v.i);
        put_s(w, buf);
        break;
    case PA_CV_UINT:
        put_u64(w, cv->v.u, false);
        break;
    case PA_CV_FLOAT:
        put_double(w, cv->v.f);
        break;
    case PA_CV_STR:
        put_str(w, cv->v.s);
        break;
    case PA_CV_ARRAY:
        open_c(w, '[');
        for (uint32_t i = 0; i < cv->v.arr.n; i++) {
            sep(w);
            write_cval(w, &cv->v.arr.items[i], depth + 1);
        }
        close_c(w, ']');
        break;
    case PA_CV_MAP:
        open_c(w, '{');
        for (uint32_t i = 0; i < cv->v.map.n; i++) {
            key(w, cv->v.map.kv[i].key);
            write_cval(w, &cv->v.map.kv[i].val, depth + 1);
        }
        close_c(w, '}');
        break;
    case PA_CV_NIL:
    default:
        put_s(w, "null");
        break;
    }
}

static void write_instance(struct jw *w, const struct pa_instance *in)
{
    sep(w);
    open_c(w, '{');
    key_str(w, "name", in->name);
    if (key_list(w, "streams", in->n_streams)) {
        for (uint32_t i = 0; i < in->n_streams; i++) {
            const struct pa_stream *s = &in->streams[i];
            sep(w);
            open_c(w, '{');
            key_str(w, "name", s->name);
            key_u64(w, "viewers", s->viewers);
            key_u64(w, "bitrate", s->bitrate);
            key_u64(w, "in", s->bytes_in);
            key_u64(w, "out", s->bytes_out);
            close_c(w, '}');
        }
        close_c(w, ']');
    }
    close_c(w, '}');
}

static void write_vhost(struct jw *w, const struct pa_vhost *vh)
{
    sep(w);
    open_c(w, '{');
    key_str(w, "name", vh->name);
    if (key_list(w, "apps", vh->n_apps)) {
        for (uint32_t i = 0; i < vh->n_apps; i++) {
            const struct pa_app *app = &vh->apps[i];
            sep(w);
            open_c(w, '{');
            key_str(w, "name", app->name);
            if (key_list(w, "instances", app->n_instances)) {
                for (uint32_t j = 0; j < app->n_instances; j++)
                    write_instance(w, &app->instances[j]);
                close_c(w, ']');
            }
            close_c(w, '}');
        }
        close_c(w, ']');
    }
    close_c(w, '}');
}

static void write_frame(struct jw *w, const struct pa_frame *f)
{
    open_c(w, '{');
    key(w, "v");
    put_u64(w, f->version, false);
    key_u64(w, "seq", f->seq);
    key_u64(w, "ts", f->ts_ms);

    key(w, "server");
    open_c(w, '{');
    key_str(w, "name", f->server.name);
    if (key_list(w, "ips", f->server.n_ips)) {
        for (uint32_t i = 0; i < f->server.n_ips; i++) {
            sep(w);
            put_ip(w, &f->server.ips[i]);
        }
        close_c(w, ']');
    }
    key_str(w, "kind", pa_agent_kind_name(f->server.kind));
    key_str(w, "version", f->server.version);
    close_c(w, '}');

    key(w, "load");
    open_c(w, '{');
    key(w, "cpu");
    put_double(w, f->load.cpu_pct);
    key_u64(w, "ram_used", f->load.ram_used);
    key_u64(w, "ram_total", f->load.ram_total);
    close_c(w, '}');

    key(w, "traffic");
    open_c(w, '{');
    key_u64(w, "in", f->traffic.bytes_in);
    key_u64(w, "out", f->traffic.bytes_out);
    key_u64(w, "period_ms", f->traffic.period_ms);
    close_c(w, '}');

    /* present exactly when pa_frame_encode writes it */
    if (f->config.type != PA_CV_MAP || f->config.v.map.n) {
        key(w, "config");
        write_cval(w, &f->config, 2);
    }
    if (key_list(w, "vhosts", f->n_vhosts)) {
        for (uint32_t i = 0; i < f->n_vhosts; i++)
            write_vhost(w, &f->vhosts[i]);
        close_c(w, ']');
    }
    if (key_list(w, "conns", f->n_conns)) {
        for (uint32_t i = 0; i < f->n_conns; i++) {
            sep(w);
            open_c(w, '{');
            key(w, "ip");
            put_ip(w, &f->conns[i].ip);
            key_u64(w, "in", f->conns[i].bytes_in);
            key_u64(w, "out", f->conns[i].bytes_out);
            close_c(w, '}');
        }
        close_c(w, ']');
    }
    close_c(w, '}');
}

int pa_frame_to_json(const struct pa_frame *f, struct pa_buf *out, int flags)
{
    struct jw w = {.b = out, .pretty = (flags & PA_JSON_PRETTY) != 0, .first = true};
    size_t old;

    if (!f || !out)
        return PA_FE_ARG;
    old = out->len;
    write_frame(&w, f);
    if (w.rv)
        out->len = old;
    return w.rv;
}
